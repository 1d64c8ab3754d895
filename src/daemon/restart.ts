// Restart policies with docker's back-off: the delay starts at 100 ms and doubles after each quick
// exit; a container that ran for 10 s or more resets it.

export interface RestartPolicy {
  Name: "" | "no" | "always" | "on-failure" | "unless-stopped";
  MaximumRetryCount?: number;
}

export const BACKOFF_START_MS = 100;
export const BACKOFF_MAX_MS = 60_000;
export const BACKOFF_RESET_AFTER_MS = 10_000;

/** Parses `--restart no|always|unless-stopped|on-failure[:N]`. */
export function parseRestartPolicy(text: string): RestartPolicy {
  const [name, count, extra] = text.split(":");
  if (extra !== undefined) throw new Error(`invalid restart policy format "${text}"`);
  if (name === "no" || name === "always" || name === "unless-stopped") {
    if (count !== undefined) throw new Error(`maximum retry count cannot be used with restart policy '${name}'`);
    return { Name: name, MaximumRetryCount: 0 };
  }
  if (name === "on-failure") {
    if (count !== undefined && !/^\d+$/.test(count)) throw new Error(`invalid restart policy format "${text}": the count must be a number`);
    return { Name: "on-failure", MaximumRetryCount: count === undefined ? 0 : Number(count) };
  }
  throw new Error(`invalid restart policy "${text}": use no, always, unless-stopped or on-failure[:max-retries]`);
}

export function validateRestartPolicy(p: RestartPolicy | undefined, autoRemove: boolean): void {
  if (!p) return;
  if (!["", "no", "always", "on-failure", "unless-stopped"].includes(p.Name)) throw new Error(`invalid restart policy '${p.Name}'`);
  if (p.Name !== "on-failure" && (p.MaximumRetryCount ?? 0) > 0) throw new Error(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
  if ((p.MaximumRetryCount ?? 0) < 0) throw new Error("invalid restart policy: maximum retry count cannot be negative");
  if (autoRemove && p.Name !== "" && p.Name !== "no") throw new Error("conflicting options: cannot specify both --restart and --rm");
}

export interface RestartDecisionInput {
  policy: RestartPolicy | undefined;
  exitCode: number;
  /** The container was stopped by the user (stop/kill via API), or the daemon is shutting down. */
  manuallyStopped: boolean;
  /** Restarts done so far in this run of failures (docker's RestartCount). */
  restartCount: number;
}

export function shouldRestart(i: RestartDecisionInput): boolean {
  if (i.manuallyStopped) return false;
  switch (i.policy?.Name ?? "") {
    case "always":
    case "unless-stopped":
      return true;
    case "on-failure": {
      if (i.exitCode === 0) return false;
      const max = i.policy?.MaximumRetryCount ?? 0;
      return max === 0 || i.restartCount < max;
    }
    default:
      return false;
  }
}

/** The next delay: reset after a long enough run, otherwise double (capped). */
export function nextBackoff(previousMs: number, ranForMs: number): number {
  if (ranForMs >= BACKOFF_RESET_AFTER_MS || previousMs <= 0) return BACKOFF_START_MS;
  return Math.min(previousMs * 2, BACKOFF_MAX_MS);
}
