// One error type for everything a user can get wrong or the host can refuse. `message` is the single
// line shown to the user; `exitCode` is what a CLI exits with (125 = the engine failed, docker's code).

export class BerthError extends Error {
  readonly exitCode: number;
  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "BerthError";
    this.exitCode = options.exitCode ?? 125;
  }
}

/** The error thrown for bad user input: says what, where, and (in `message`) what to do. */
export function badInput(message: string): BerthError {
  return new BerthError(message, { exitCode: 125 });
}

export function errnoName(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : undefined;
}
