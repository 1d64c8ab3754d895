// Starting and supervising a container's process for the engine. Today the native helper stays the
// container's parent (supervise mode) and the daemon holds its stdio pipes; the container monitor
// (native/monitor.c, src/runtime/monitor.ts) takes this role when it lands, so that containers and their
// logs outlive the daemon. The engine only sees `ContainerProcess`.

import { constants as fsConstants, closeSync, openSync, readSync, rmSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import type { CgroupPlan } from "../cgroups/index.js";
import { planExec } from "../core/container-plan.js";
import type { Process, Spec } from "../oci/spec.js";
import { compileSeccomp } from "../seccomp/index.js";
import { type ExitStatus, startHelper } from "../runtime/helper.js";
import { readHostFacts } from "../runtime/host-facts.js";
import { launchContainer } from "../runtime/launch.js";

export interface ContainerProcess {
  readonly pid: number;
  readonly cgroup: CgroupPlan;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Releases a created container's init to exec its command. */
  start(): Promise<void>;
  readonly exited: Promise<ExitStatus>;
  signal(sig: number): void;
  resize(rows: number, cols: number): void;
}

export interface CreateProcessOptions {
  id: string;
  spec: Spec;
  rootfs: string;
  lowerDirs: string[];
  upper: string;
  work: string;
  execFifo: string;
  openStdin: boolean;
  onCgroup?: (cgroup: CgroupPlan) => void;
  onPid?: (pid: number) => Promise<void>;
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Opens the exec fifo for reading without ever blocking the daemon, and waits for the init's byte. */
export async function releaseExecFifo(fifo: string, pid: number, timeoutMs = 10_000): Promise<void> {
  const fd = openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    const buf = Buffer.alloc(1);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if (readSync(fd, buf, 0, 1, null) === 1) return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      }
      if (!alive(pid)) throw new Error("the container's process ended before it started");
      if (Date.now() > deadline) throw new Error("timed out waiting for the container's process to start");
      await sleep(2);
    }
  } finally {
    closeSync(fd);
    rmSync(fifo, { force: true });
  }
}

export async function createProcess(o: CreateProcessOptions): Promise<ContainerProcess> {
  const tty = Boolean(o.spec.process?.terminal);
  const launched = await launchContainer({
    spec: o.spec,
    rootfs: o.rootfs,
    rootfsMounts: [{ source: "overlay", fstype: "overlay", data: `lowerdir=${o.lowerDirs.join(":")},upperdir=${o.upper},workdir=${o.work}` }],
    cgroupName: `berth-${o.id.slice(0, 12)}`,
    execFifo: o.execFifo,
    console: tty ? { mode: "proxy", rawHostTerminal: false } : undefined,
    dieWithController: false,
    stdio: [o.openStdin ? "pipe" : "ignore", "pipe", tty ? "ignore" : "pipe"],
    onCgroup: o.onCgroup,
    beforeRelease: o.onPid ? async (pid) => (o.onPid as (p: number) => Promise<void>)(pid) : undefined,
  });
  const run = launched.run;
  return {
    pid: run.pid,
    cgroup: launched.cgroup,
    stdin: run.helper.stdin,
    stdout: run.helper.stdout,
    stderr: run.helper.stderr,
    start: () => releaseExecFifo(o.execFifo, run.pid),
    exited: run.exited,
    signal: (sig) => {
      // The helper forwards; if it is gone (daemon restarted), signal directly.
      try { process.kill(run.pid, sig); } catch { run.signal(sig); }
    },
    resize: (rows, cols) => run.resize(rows, cols),
  };
}

/** A container found running after a daemon restart: no pipes, exit seen by polling. */
export function adoptProcess(pid: number, cgroup: CgroupPlan, pidStart: string, startTime: (pid: number) => string | undefined): ContainerProcess {
  const exited = (async (): Promise<ExitStatus> => {
    for (;;) {
      const st = startTime(pid);
      if (st === undefined || st !== pidStart || isZombie(pid)) return { exitCode: 255, signal: 0 };
      await sleep(200);
    }
  })();
  return {
    pid, cgroup, stdin: null, stdout: null, stderr: null,
    start: async () => {},
    exited,
    signal: (sig) => { try { process.kill(pid, sig); } catch { /* gone */ } },
    resize: () => {},
  };
}

function isZombie(pid: number): boolean {
  try {
    const stat = openSync(`/proc/${pid}/stat`, "r");
    const buf = Buffer.alloc(512);
    const n = readSync(stat, buf, 0, 512, 0);
    closeSync(stat);
    const text = buf.subarray(0, n).toString();
    const state = text.slice(text.lastIndexOf(")") + 2, text.lastIndexOf(")") + 3);
    return state === "Z" || state === "X";
  } catch {
    return true;
  }
}

export interface ExecProcessOptions {
  pid: number;
  spec: Spec;
  cgroup: CgroupPlan;
  proc: Process;
  openStdin: boolean;
}

export interface ExecProcess {
  readonly pid: number;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  readonly exited: Promise<ExitStatus>;
  signal(sig: number): void;
  resize(rows: number, cols: number): void;
  kill(): void;
}

/** Runs a process inside a running container (joins its namespaces and cgroup). */
export async function execProcess(o: ExecProcessOptions): Promise<ExecProcess> {
  const seccomp = o.spec.linux?.seccomp && !o.proc.capabilities?.bounding?.includes("CAP_SYS_ADMIN") ? compileSeccomp(o.spec.linux.seccomp, { arch: process.arch }) : undefined;
  const tty = Boolean(o.proc.terminal);
  const plan = planExec(o.proc, {
    pid: o.pid,
    namespaces: (o.spec.linux?.namespaces ?? []).map((n) => n.type),
    procsFiles: o.cgroup.procsFiles,
    host: readHostFacts(),
    seccomp,
    console: tty ? { mode: "proxy", rawHostTerminal: false } : undefined,
    detach: false,
    dieWithController: false,
    personality: o.spec.linux?.personality?.domain,
  });
  const run = await startHelper(plan, { stdio: [o.openStdin ? "pipe" : "ignore", "pipe", tty ? "ignore" : "pipe"] });
  await run.ready;
  return {
    pid: run.pid,
    stdin: run.helper.stdin,
    stdout: run.helper.stdout,
    stderr: run.helper.stderr,
    exited: run.exited,
    signal: (sig) => run.signal(sig),
    resize: (rows, cols) => run.resize(rows, cols),
    kill: () => { try { process.kill(run.pid, "SIGKILL"); } catch { /* gone */ } },
  };
}
