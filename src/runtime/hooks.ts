// OCI hooks that run in the runtime's namespaces: the state JSON on stdin, args/env as given, a timeout.

import { spawn } from "node:child_process";
import { BerthError } from "../errors.js";
import type { Hook } from "../oci/spec.js";

export interface HookState {
  ociVersion: string;
  id: string;
  status: string;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}

export function runHook(hook: Hook, state: HookState, kind: string, index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const argv = hook.args && hook.args.length > 0 ? hook.args : [hook.path];
    const env = Object.fromEntries((hook.env ?? []).map((e) => {
      const eq = e.indexOf("=");
      return eq < 0 ? [e, ""] : [e.slice(0, eq), e.slice(eq + 1)];
    }));
    const child = spawn(hook.path, argv.slice(1), { argv0: argv[0], env, stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => { if (stderr.length < 4096) stderr += d; });
    let timer: NodeJS.Timeout | undefined;
    if (hook.timeout && hook.timeout > 0) {
      timer = setTimeout(() => child.kill("SIGKILL"), hook.timeout * 1000);
    }
    const where = `hooks.${kind}[${index}] (${hook.path})`;
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new BerthError(`${where}: cannot run: ${err.message}`, { exitCode: 1 }));
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      const why = signal === "SIGKILL" && hook.timeout ? `timed out after ${hook.timeout}s` : signal ? `killed by ${signal}` : `exited ${code}`;
      const detail = stderr.trim().split("\n").pop();
      reject(new BerthError(`${where}: ${why}${detail ? `: ${detail}` : ""}`, { exitCode: 1 }));
    });
    child.stdin.on("error", () => {});
    child.stdin.end(JSON.stringify(state));
  });
}

/** Runs the hooks of one kind in order; the first failure stops the rest and is thrown. */
export async function runHooks(hooks: Hook[] | undefined, state: HookState, kind: string): Promise<void> {
  for (const [i, hook] of (hooks ?? []).entries()) await runHook(hook, state, kind, i);
}

/** Runs every hook of one kind; failures are reported through `warn` and do not stop the others. */
export async function runHooksWarnOnly(hooks: Hook[] | undefined, state: HookState, kind: string, warn: (msg: string) => void): Promise<void> {
  for (const [i, hook] of (hooks ?? []).entries()) {
    try {
      await runHook(hook, state, kind, i);
    } catch (err) {
      warn((err as Error).message);
    }
  }
}
