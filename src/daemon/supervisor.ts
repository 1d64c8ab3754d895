// Starting and supervising a container's process for the engine. Today the native helper stays the
// container's parent (supervise mode) and the daemon holds its stdio pipes; the container monitor
// (native/monitor.c, src/runtime/monitor.ts) takes this role when it lands, so that containers and their
// logs outlive the daemon. The engine only sees `ContainerProcess`.

import { constants as fsConstants, closeSync, openSync, readSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Readable, Writable } from "node:stream";
import type { CgroupPlan } from "../cgroups/index.js";
import { planExec } from "../core/container-plan.js";
import type { Process, Spec } from "../oci/spec.js";
import { compileSeccompCached } from "../seccomp/index.js";
import { type ExitStatus, startHelper } from "../runtime/helper.js";
import { readHostFacts } from "../runtime/host-facts.js";
import { launchContainer, processStartTime } from "../runtime/launch.js";
import { overlayMount } from "../runtime/overlay.js";
import type { Op } from "../core/plan.js";
import { type AttachChunk, attach as attachMonitor, type MonitorAttach, monitorAlive, readExitFile } from "../runtime/monitor.js";
import { EventEmitter } from "node:events";

export interface ContainerProcess {
  readonly pid: number;
  readonly cgroup: CgroupPlan;
  /** The monitor's pid and start time when the container has one (it outlives the daemon). */
  readonly monitor?: { pid: number; start: string };
  /** Whether the monitor writes the json-file log (else the engine does, from `output`). */
  readonly logsByMonitor: boolean;
  /** "data" (stream 1|2, chunk: Buffer) and "end". */
  readonly output: EventEmitter;
  writeStdin(data: Buffer): void;
  closeStdin(): void;
  /** Releases a created container's init to exec its command. */
  start(): Promise<void>;
  readonly exited: Promise<ExitStatus>;
  signal(sig: number): void;
  resize(rows: number, cols: number): void;
}

export interface MonitorFiles {
  logPath?: string;
  logMaxSize?: number;
  logMaxFiles?: number;
  exitFile: string;
  attachSocket: string;
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
  /** Run under the container monitor (survives the daemon); else the daemon holds the pipes. */
  monitor?: MonitorFiles;
  onCgroup?: (cgroup: CgroupPlan) => void;
  onPid?: (pid: number, monitorPid: number) => Promise<void>;
  /** Netlink requests for the container's network (src/network), run by the helper after clone. */
  parentOps?: Op[];
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

function pumpStreams(output: EventEmitter, stdout: Readable | null, stderr: Readable | null): void {
  let open = 0;
  const pump = (s: Readable | null, n: 1 | 2) => {
    if (!s) return;
    open++;
    let done = false;
    const fin = () => { if (done) return; done = true; if (--open === 0) output.emit("end"); };
    s.on("data", (c: Buffer) => output.emit("data", n, c));
    s.on("end", fin);
    s.on("close", fin);
    s.on("error", fin);
  };
  pump(stdout, 1);
  pump(stderr, 2);
  if (open === 0) output.emit("end");
}

/** Reads a monitor's attach socket into `output`; retries while the monitor lives. */
async function connectMonitor(socket: string, output: EventEmitter): Promise<MonitorAttach | undefined> {
  for (let i = 0; i < 50; i++) {
    try {
      const a = await attachMonitor(socket);
      a.output.on("data", (c: AttachChunk) => output.emit("data", c.stream === "stderr" ? 2 : 1, c.data));
      a.output.on("end", () => output.emit("end"));
      a.output.on("error", () => output.emit("end"));
      return a;
    } catch {
      await sleep(20);
    }
  }
  output.emit("end");
  return undefined;
}

/** Waits for the monitor's exit file (or the monitor's death without one: 255). */
async function waitExitFile(exitFile: string, monitorPid: number, monitorStart: string | undefined): Promise<ExitStatus> {
  for (;;) {
    const e = readExitFile(exitFile);
    if (e) return { exitCode: e.signal ? 0 : e.exitCode, signal: e.signal };
    if (!monitorAlive(monitorPid, monitorStart)) {
      const late = readExitFile(exitFile);
      if (late) return { exitCode: late.signal ? 0 : late.exitCode, signal: late.signal };
      return { exitCode: 255, signal: 0 };
    }
    await sleep(100);
  }
}

export async function createProcess(o: CreateProcessOptions): Promise<ContainerProcess> {
  const tty = Boolean(o.spec.process?.terminal);
  let monitorPid = 0;
  const launched = await launchContainer({
    spec: o.spec,
    rootfs: o.rootfs,
    // Beside upper/ and work/: the short lower-dir links, when the image has too many layers for absolute paths.
    rootfsMounts: [overlayMount(o.lowerDirs, o.upper, o.work, join(dirname(o.upper), "lower"))],
    cgroupName: `berth-${o.id.slice(0, 12)}`,
    execFifo: o.execFifo,
    console: tty ? { mode: "proxy", rawHostTerminal: false } : undefined,
    dieWithController: false,
    stdio: o.monitor ? undefined : [o.openStdin ? "pipe" : "ignore", "pipe", tty ? "ignore" : "pipe"],
    monitor: o.monitor ? { ...o.monitor, stdin: o.openStdin } : undefined,
    onCgroup: o.onCgroup,
    parentOps: o.parentOps,
    beforeRelease: async (pid) => { await o.onPid?.(pid, monitorPid); },
  });
  const run = launched.run;
  monitorPid = run.helper.pid as number;
  const output = new EventEmitter();
  output.setMaxListeners(0);
  if (!o.monitor) {
    pumpStreams(output, run.helper.stdout, run.helper.stderr);
    const stdin = run.helper.stdin;
    stdin?.on("error", () => {});
    return {
      pid: run.pid,
      cgroup: launched.cgroup,
      logsByMonitor: false,
      output,
      writeStdin: (d) => { stdin?.write(d); },
      closeStdin: () => { stdin?.end(); },
      start: () => releaseExecFifo(o.execFifo, run.pid),
      exited: run.exited,
      signal: (sig) => {
        try { process.kill(run.pid, sig); } catch { run.signal(sig); }
      },
      resize: (rows, cols) => run.resize(rows, cols),
    };
  }
  const files = o.monitor;
  const start = processStartTime(monitorPid) ?? "";
  const conn = await connectMonitor(files.attachSocket, output);
  const exited = Promise.race([run.exited.catch(() => waitExitFile(files.exitFile, monitorPid, start)), waitExitFile(files.exitFile, monitorPid, start)]);
  return {
    pid: run.pid,
    cgroup: launched.cgroup,
    monitor: { pid: monitorPid, start },
    logsByMonitor: true,
    output,
    writeStdin: (d) => conn?.write(d),
    closeStdin: () => conn?.closeStdin(),
    start: () => releaseExecFifo(o.execFifo, run.pid),
    exited,
    signal: (sig) => { try { process.kill(run.pid, sig); } catch { /* gone */ } },
    resize: (rows, cols) => conn?.resize(rows, cols),
  };
}

/**
 * A container found after a daemon restart. With a living monitor: reconnect to its attach socket and
 * take the exit status from its exit file. Without one (the daemon held the pipes): poll the pid.
 */
export async function adoptProcess(
  pid: number,
  cgroup: CgroupPlan,
  pidStart: string,
  startTime: (pid: number) => string | undefined,
  monitor?: { pid: number; start: string; files: MonitorFiles },
): Promise<ContainerProcess> {
  const output = new EventEmitter();
  output.setMaxListeners(0);
  if (monitor && monitorAlive(monitor.pid, monitor.start)) {
    const conn = await connectMonitor(monitor.files.attachSocket, output);
    return {
      pid, cgroup, monitor: { pid: monitor.pid, start: monitor.start }, logsByMonitor: true, output,
      writeStdin: (d) => conn?.write(d),
      closeStdin: () => conn?.closeStdin(),
      start: async () => {},
      exited: waitExitFile(monitor.files.exitFile, monitor.pid, monitor.start),
      signal: (sig) => { try { process.kill(pid, sig); } catch { /* gone */ } },
      resize: (rows, cols) => conn?.resize(rows, cols),
    };
  }
  const exited = (async (): Promise<ExitStatus> => {
    for (;;) {
      const st = startTime(pid);
      if (st === undefined || st !== pidStart || isZombie(pid)) return { exitCode: 255, signal: 0 };
      await sleep(200);
    }
  })();
  void exited.then(() => output.emit("end"));
  return {
    pid, cgroup, logsByMonitor: false, output,
    writeStdin: () => {},
    closeStdin: () => {},
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
  const seccomp = o.spec.linux?.seccomp && !o.proc.capabilities?.bounding?.includes("CAP_SYS_ADMIN") ? compileSeccompCached(o.spec.linux.seccomp, { arch: process.arch }) : undefined;
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
