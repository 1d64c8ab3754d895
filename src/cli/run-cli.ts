// What both CLIs do around commander: parse, take the exit code an action set, and turn a usage error
// (commander already printed it) or a thrown error into the CLI's own exit code.

import { type Command, CommanderError } from "commander";

const NOT_ERRORS = new Set(["commander.helpDisplayed", "commander.version", "commander.help"]);

export async function runCli(
  build: (setExit: (code: number) => void) => Command,
  argv: string[],
  usageErrorCode: number,
  onError: (err: unknown) => number,
): Promise<number> {
  let code = 0;
  const program = build((c) => { code = c; });
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return NOT_ERRORS.has(err.code) ? 0 : usageErrorCode;
    return onError(err);
  }
}
