// Runs the native helper with a plan and speaks its line protocol on fd 3:
//   helper -> us: "pid N" | "created" | "started" | "error I ERRNO DETAIL" | "exit CODE SIGNAL"
//   us -> helper: "go" (after "pid"), "signal N", "resize ROWS COLS"

import { type ChildProcess, type IOType, spawn } from "node:child_process";
import { existsSync, openSync, readlinkSync } from "node:fs";
import type { Socket } from "node:net";
import type { Stream } from "node:stream";
import { fileURLToPath } from "node:url";
import { BerthError } from "../errors.js";
import { describeFailure, type HelperFailure } from "../core/plan-errors.js";
import { encodePlan, type Op, type Plan } from "../core/plan.js";

let foundPath: string | undefined;

export function helperPath(): string {
  if (process.env.BERTH_HELPER) return process.env.BERTH_HELPER;
  // Found once per process: a daemon asks for every container.
  if (foundPath) return foundPath;
  // From dist/src/runtime/ (tsc output) or dist/bundle/ (the one-file CLI bundles).
  const candidates = ["../../../native/build/berth-helper", "../../native/build/berth-helper"].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  const path = candidates.find((p) => existsSync(p)) ?? candidates[0];
  if (!existsSync(path)) {
    throw new BerthError(`the native helper is missing (${path}): build it with \`npm run build\``);
  }
  foundPath = path;
  return path;
}

export class HelperError extends BerthError {
  readonly failure: HelperFailure;
  constructor(failure: HelperFailure) {
    super(failure.message, { exitCode: failure.exitCode });
    this.failure = failure;
  }
}

export interface ExitStatus {
  exitCode: number;
  /** Signal number that killed the process, 0 if it exited. */
  signal: number;
}

export interface HelperRun {
  /** The container's init, as a host pid. */
  readonly pid: number;
  readonly helper: ChildProcess;
  /** Resolves when the process has exec'd ("started") or is blocked on the exec fifo ("created"). */
  readonly ready: Promise<"started" | "created">;
  /** Resolves with the container's exit status (foreground helpers only). */
  readonly exited: Promise<ExitStatus>;
  signal(sig: number): void;
  resize(rows: number, cols: number): void;
  /** Closes the control socket; a foreground helper then kills the container. */
  close(): void;
}

export type StdioEntry = IOType | number | Stream;

export interface StartHelperOptions {
  /** The container's stdin, stdout, stderr (without a terminal the container inherits these). */
  stdio: [StdioEntry, StdioEntry, StdioEntry];
  /** Our fds passed on to the container as 3, 4, ... (runc --preserve-fds). */
  extraFds?: number[];
  /** Runs after the child exists and before it is released (e.g. to set up its network). */
  beforeRelease?: (pid: number) => Promise<void>;
}

// CVE-2019-5736: each helper runs from a sealed in-memory copy of its binary; one started from the file
// makes that copy and re-executes itself (~3 ms). A process that keeps spares (the daemon) takes the
// sealed copy a spare made (/proc/PID/exe of a helper that re-executed), keeps it open and starts later
// helpers from it directly (/proc/<our pid>/fd/N). The helper checks that what it runs from is a memfd
// with every seal set (F_GET_SEALS) before it skips its own copy, so nothing else can make it skip.
let sealedCopy: string | undefined;

function keepSealedCopy(pid: number | undefined): void {
  if (sealedCopy || !pid || process.env.BERTH_HELPER) return;
  try {
    if (!readlinkSync(`/proc/${pid}/exe`).startsWith("/memfd:")) return;
    sealedCopy = `/proc/${process.pid}/fd/${openSync(`/proc/${pid}/exe`, "r")}`;
  } catch {
    // Not readable (the spare just ended): the next one is tried.
  }
}

function spawnHelper(stdio: StdioEntry[], extra: number[]): { helper: ChildProcess; control: Socket } {
  const helper = spawn(sealedCopy ?? helperPath(), [String(3 + extra.length)], {
    argv0: "berth-helper",
    stdio: [...stdio, ...extra, "pipe"],
    // Terminal signals go to us, and we decide what reaches the container.
    detached: true,
  });
  return { helper, control: helper.stdio[3 + extra.length] as Socket };
}

// A spare helper, spawned ahead for the next stdio-less launch (the engine's monitored containers).
// spawn() forks the whole Node process synchronously (~10 ms for a daemon's heap, more as it grows), and
// the helper then re-executes itself from a sealed copy before it reads a plan: a spare has done both
// and waits in its plan read. The next spare is spawned right after a plan is handed over, while that
// helper clones and sets up the container on the other CPU. A spare whose parent dies reads EOF and exits.
let spare: { helper: ChildProcess; control: Socket } | undefined;
let keepSpare = false;

function takeSpare(): { helper: ChildProcess; control: Socket } | undefined {
  const s = spare;
  spare = undefined;
  if (!s || s.helper.exitCode !== null || s.helper.signalCode !== null || s.control.destroyed) return undefined;
  keepSealedCopy(s.helper.pid);
  s.helper.removeAllListeners("exit");
  s.helper.ref();
  s.control.ref();
  return s;
}

function refillSpare(): void {
  if (!keepSpare || spare) return;
  let s: { helper: ChildProcess; control: Socket };
  try {
    s = spawnHelper(["ignore", "ignore", "ignore"], []);
  } catch {
    return;
  }
  s.helper.on("error", () => {});
  s.control.on("error", () => {});
  s.helper.once("exit", () => { if (spare === s) spare = undefined; });
  // An idle spare never keeps the process alive.
  s.helper.unref();
  s.control.unref();
  spare = s;
}

/**
 * Keep one helper started ahead for launches without stdio (monitor mode): for a long-lived engine.
 * Off: the spare is ended (it would also end by itself when this process exits).
 */
export function keepSpareHelper(on: boolean): void {
  keepSpare = on;
  if (on) return refillSpare();
  const s = spare;
  spare = undefined;
  s?.control.destroy();
  s?.helper.kill("SIGKILL");
}

/** Spawns the helper, sends the plan and resolves once the container process exists and was released. */
export function startHelper(plan: Plan, options: StartHelperOptions): Promise<HelperRun> {
  const extra = options.extraFds ?? [];
  const stdioLess = extra.length === 0 && options.stdio.every((e) => e === "ignore");
  const { helper, control } = (stdioLess && takeSpare()) || spawnHelper(options.stdio, extra);
  control.write(encodePlan(plan));
  if (stdioLess) refillSpare();

  return new Promise((resolveStart, rejectStart) => {
    let pid = 0;
    let failure: HelperFailure | undefined;
    let buffered = "";
    let settledStart = false;
    let resolveReady!: (v: "started" | "created") => void;
    let rejectReady!: (e: Error) => void;
    let resolveExit!: (v: ExitStatus) => void;
    let rejectExit!: (e: Error) => void;
    const ready = new Promise<"started" | "created">((res, rej) => { resolveReady = res; rejectReady = rej; });
    const exited = new Promise<ExitStatus>((res, rej) => { resolveExit = res; rejectExit = rej; });
    // Callers that only await one of them must not see an unhandled rejection from the other.
    ready.catch(() => {});
    exited.catch(() => {});

    const fail = (err: Error) => {
      if (!settledStart) { settledStart = true; rejectStart(err); }
      rejectReady(err);
      rejectExit(err);
    };
    const run: HelperRun = {
      get pid() { return pid; },
      helper,
      ready,
      exited,
      signal: (sig) => { if (!control.destroyed) control.write(`signal ${sig}\n`); },
      resize: (rows, cols) => { if (!control.destroyed) control.write(`resize ${rows} ${cols}\n`); },
      close: () => control.destroy(),
    };

    const onLine = (line: string) => {
      const [word, ...rest] = line.split(" ");
      if (word === "pid") {
        pid = Number(rest[0]);
        const release = options.beforeRelease ? options.beforeRelease(pid) : Promise.resolve();
        release.then(
          () => {
            control.write("go\n");
            settledStart = true;
            resolveStart(run);
          },
          (err: Error) => { control.destroy(); fail(err); },
        );
      } else if (word === "error") {
        const index = Number(rest[0]);
        const errno = Number(rest[1]);
        failure = describeFailure(index >= 0 ? plan.ops[index] : undefined, errno, rest.slice(2).join(" "));
        fail(new HelperError(failure));
      } else if (word === "started" || word === "created") {
        resolveReady(word);
      } else if (word === "exit") {
        if (failure) return;
        resolveExit({ exitCode: Number(rest[0]), signal: Number(rest[1]) });
      }
    };
    control.setEncoding("utf8");
    control.on("data", (chunk: string) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        onLine(line);
      }
    });
    control.on("error", () => {});
    helper.on("error", (err) => fail(new BerthError(`cannot run the native helper: ${err.message}`)));
    // The helper's last lines may still be buffered when it exits: conclude once both are done.
    let helperExit: string | undefined;
    let controlClosed = false;
    const conclude = () => {
      if (helperExit === undefined || !controlClosed) return;
      if (failure) return fail(new HelperError(failure));
      fail(new BerthError(`the native helper ended unexpectedly (${helperExit})`));
    };
    control.on("close", () => { controlClosed = true; conclude(); });
    helper.on("exit", (code, signal) => { helperExit = signal ?? `exit ${code}`; conclude(); });
  });
}

/**
 * Runs filesystem ops Node cannot do itself (mknod, setxattr, ...) in the helper, without any clone:
 * a plan with no clone step is carried out by the helper in its own process, in order.
 */
export function runFilesystemOps(ops: Op[]): Promise<void> {
  if (ops.length === 0) return Promise.resolve();
  const helper = spawn(helperPath(), ["3"], { stdio: ["ignore", "ignore", "inherit", "pipe"] });
  const control = helper.stdio[3] as Socket;
  control.write(encodePlan({ flags: 0, ops }));
  return new Promise((resolve, reject) => {
    let text = "";
    control.setEncoding("utf8");
    control.on("data", (d: string) => { text += d; });
    control.on("error", () => {});
    helper.on("error", (err) => reject(new BerthError(`cannot run the native helper: ${err.message}`)));
    helper.on("close", () => {
      const line = text.split("\n").find((l) => l.startsWith("error ") || l === "done");
      if (line === "done") return resolve();
      if (line) {
        const [, index, errno, ...detail] = line.split(" ");
        const i = Number(index);
        return reject(new HelperError(describeFailure(i >= 0 ? ops[i] : undefined, Number(errno), detail.join(" "))));
      }
      reject(new BerthError("the native helper ended without an answer"));
    });
  });
}
