// The OCI runtime operations behind `berth-oci`: create/start/state/kill/delete/run/exec and friends,
// with runc's semantics. State lives in <root>/<id>/state.json; while <root>/<id>/exec.fifo exists the
// container is "created" (its init is set up and blocked before exec).

import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import {
  type CgroupPlan,
  cgroupPids,
  cgroupStats,
  compileDeviceFilter,
  destroyCgroup,
  freezeCgroup,
  oomKillCount,
  thawCgroup,
  updateCgroup,
} from "../cgroups/index.js";
import { planExec } from "../core/container-plan.js";
import { deviceCgroupRules } from "../core/defaults.js";
import { BerthError } from "../errors.js";
import type { Process, Resources, Spec } from "../oci/spec.js";
import { checkNamespacePaths, parseSpec } from "../oci/validate.js";
import { compileSeccomp } from "../seccomp/index.js";
import { type LaunchedContainer, launchContainer, mountPoints, processStartTime } from "./launch.js";
import { readHostFacts } from "./host-facts.js";
import { type ExitStatus, runFilesystemOps, startHelper, type StdioEntry } from "./helper.js";
import { type HookState, runHooks, runHooksWarnOnly } from "./hooks.js";

export const DEFAULT_OCI_ROOT = "/run/berth-oci";
const osSignals = constants.signals;

export type Status = "creating" | "created" | "running" | "paused" | "stopped";

export interface OciRecord {
  ociVersion: string;
  id: string;
  pid: number;
  pidStart: string;
  bundle: string;
  rootfs: string;
  created: string;
  annotations?: Record<string, string>;
  cgroup: CgroupPlan;
  config: Spec;
  /** Without a mount namespace: the mount points below the rootfs before create (not the container's). */
  hostMounts?: string[];
}

export interface OciState {
  ociVersion: string;
  id: string;
  status: Status;
  pid: number;
  bundle: string;
  rootfs: string;
  created: string;
  annotations?: Record<string, string>;
  owner: string;
}

const ID_PATTERN = /^[\w+\-.]+$/;

function fail(message: string): never {
  throw new BerthError(message, { exitCode: 1 });
}

export function checkId(id: string | undefined): string {
  if (!id) fail("container id cannot be empty");
  if (!ID_PATTERN.test(id) || id === "." || id === "..") fail(`invalid container id "${id}": use letters, digits, _ + - and .`);
  return id;
}

function stateDir(root: string, id: string): string {
  return join(root, checkId(id));
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(value));
  renameSync(tmp, path);
}

export function loadRecord(root: string, id: string): OciRecord {
  const dir = stateDir(root, id);
  try {
    return JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as OciRecord;
  } catch {
    fail(`container "${id}" does not exist`);
  }
}

function isZombieOrGone(pid: number, start: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[0] === "Z" || fields[0] === "X" || fields[19] !== start;
  } catch {
    return true;
  }
}

function isFrozen(cgroup: CgroupPlan): boolean {
  const freezer = cgroup.paths.freezer;
  try {
    if (freezer && cgroup.mode !== "v2") return readFileSync(join(freezer, "freezer.state"), "utf8").trim() === "FROZEN";
    if (cgroup.mode === "v2") return readFileSync(join(cgroup.primaryPath, "cgroup.freeze"), "utf8").trim() === "1";
  } catch {
    return false;
  }
  return false;
}

export function statusOf(root: string, record: OciRecord): Status {
  if (isZombieOrGone(record.pid, record.pidStart)) return "stopped";
  if (existsSync(join(root, record.id, "exec.fifo"))) return "created";
  return isFrozen(record.cgroup) ? "paused" : "running";
}

export function stateOf(root: string, record: OciRecord): OciState {
  const status = statusOf(root, record);
  return {
    ociVersion: record.ociVersion,
    id: record.id,
    status,
    pid: status === "stopped" ? 0 : record.pid,
    bundle: record.bundle,
    rootfs: record.rootfs,
    created: record.created,
    annotations: record.annotations,
    owner: "",
  };
}

function hookState(record: Pick<OciRecord, "ociVersion" | "id" | "bundle" | "annotations">, status: Status, pid?: number): HookState {
  return { ociVersion: record.ociVersion, id: record.id, status, pid, bundle: record.bundle, annotations: record.annotations };
}

// Valid spec fields berth-oci has no way to apply: refused by JSON path, never silently ignored.
const UNSUPPORTED_PROCESS_FIELDS = ["execCPUAffinity"] as const;
const UNSUPPORTED_LINUX_FIELDS = ["intelRdt", "memoryPolicy", "netDevices"] as const;

/** The first field of `proc` (at JSON path `at`) berth-oci can't apply, refused. */
export function refuseUnsupportedProcess(proc: Process | undefined, at: string): void {
  const fields = (proc ?? {}) as Record<string, unknown>;
  for (const f of UNSUPPORTED_PROCESS_FIELDS) {
    if (fields[f] !== undefined && fields[f] !== null) fail(`${at}${f}: not supported by berth-oci`);
  }
}

export function refuseUnsupported(spec: Spec): void {
  refuseUnsupportedProcess(spec.process, "process.");
  const linux = (spec.linux ?? {}) as Record<string, unknown>;
  for (const f of UNSUPPORTED_LINUX_FIELDS) {
    if (linux[f] !== undefined && linux[f] !== null) fail(`linux.${f}: not supported by berth-oci`);
  }
}

export function loadBundle(bundle: string): { spec: Spec; rootfs: string } {
  const file = join(bundle, "config.json");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    fail(`cannot read ${file}: no such file (is --bundle right?)`);
  }
  const spec = parseSpec(text, "config.json");
  checkNamespacePaths(spec);
  refuseUnsupported(spec);
  const rootPath = spec.root?.path;
  if (!rootPath) fail("root.path: required");
  const rootfs = isAbsolute(rootPath) ? rootPath : resolve(bundle, rootPath);
  if (!existsSync(rootfs)) fail(`root.path: ${rootfs} does not exist`);
  return { spec, rootfs };
}

const sharesHostMountNs = (spec: Spec) => !(spec.linux?.namespaces ?? []).some((n) => n.type === "mount");

function mountsBelow(rootfs: string): string[] {
  let dir = rootfs;
  try {
    dir = realpathSync(rootfs);
  } catch {
    // A bundle removed before delete: its mounts (if any) are still listed under the path as given.
  }
  return mountPoints().filter((mp) => mp.startsWith(dir + "/"));
}

/**
 * A container without a mount namespace made its mounts in the runtime's, below its rootfs, and they
 * outlive it (runc leaves them there): detach them, last made first, leaving those that were there before.
 */
function unmountContainerMounts(rootfs: string, before: string[] | undefined): void {
  if (!before) return;
  const keep = new Set(before);
  for (const mp of mountsBelow(rootfs).reverse()) {
    if (!keep.has(mp)) spawnSync("umount", ["--lazy", mp], { stdio: "ignore" });
  }
}

/**
 * runc's rule for --console-socket (its checkTerminal, for create, run and exec): the pty master is sent
 * there only for a detached process with a terminal, and every other mix is refused rather than ignored;
 * a foreground terminal is proxied to the runtime's own stdio instead.
 */
export function consoleFlagsError(o: { terminal: boolean; detached: boolean; consoleSocket?: string }): string | undefined {
  if (o.detached && o.terminal && !o.consoleSocket) {
    return "a terminal for a detached process (create, run -d, exec -d) needs --console-socket to send the pty master to";
  }
  if (o.consoleSocket && (!o.detached || !o.terminal)) {
    return "--console-socket is only for a detached process (create, run -d, exec -d) with a terminal (process.terminal, exec -t)";
  }
  return undefined;
}

const hostLsms = () => ({ apparmor: existsSync("/sys/kernel/security/apparmor"), selinux: existsSync("/sys/fs/selinux/enforce") });

/**
 * No LSM here to apply a process's profile or label with: create and exec both say so rather than
 * pretend (runc does the same on such hosts), and go on.
 */
export function unappliedLsmWarnings(proc: Process | undefined, host: { apparmor: boolean; selinux: boolean }): string[] {
  const out: string[] = [];
  if (proc?.apparmorProfile && !host.apparmor) out.push(`process.apparmorProfile "${proc.apparmorProfile}" is not applied: AppArmor is not enabled on this host`);
  if (proc?.selinuxLabel && !host.selinux) out.push(`process.selinuxLabel "${proc.selinuxLabel}" is not applied: SELinux is not enabled on this host`);
  return out;
}

export interface CreateOptions {
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  noPivot?: boolean;
  preserveFds?: number;
  stdio?: [StdioEntry, StdioEntry, StdioEntry];
  warn?: (msg: string) => void;
}

function writePidFile(path: string | undefined, pid: number): void {
  if (!path) return;
  // runc writes it atomically: engines poll for it.
  const tmp = join(resolve(path, ".."), `.${process.pid}.pid`);
  writeFileSync(tmp, String(pid));
  renameSync(tmp, path);
}

async function launch(root: string, id: string, o: CreateOptions, foreground: boolean): Promise<{ record: OciRecord; launched: LaunchedContainer }> {
  const bundle = resolve(o.bundle);
  const { spec, rootfs } = loadBundle(bundle);
  for (const msg of unappliedLsmWarnings(spec.process, hostLsms())) o.warn?.(msg);
  const dir = stateDir(root, id);
  mkdirSync(root, { recursive: true, mode: 0o711 });
  try {
    mkdirSync(dir, { mode: 0o711 });
  } catch {
    fail(`container with id exists: ${id}`);
  }
  const consoleError = consoleFlagsError({ terminal: Boolean(spec.process?.terminal), detached: !foreground, consoleSocket: o.consoleSocket });
  if (consoleError) {
    rmSync(dir, { recursive: true, force: true });
    fail(consoleError);
  }
  const base = { ociVersion: spec.ociVersion, id, bundle, annotations: spec.annotations };
  const hostMounts = sharesHostMountNs(spec) ? mountsBelow(rootfs) : undefined;
  let launched: LaunchedContainer | undefined;
  try {
    launched = await launchContainer({
      spec,
      rootfs,
      bundle,
      cgroupName: id,
      execFifo: foreground ? undefined : join(dir, "exec.fifo"),
      console: spec.process?.terminal
        ? o.consoleSocket ? { mode: "socket", socketPath: resolve(o.consoleSocket) } : { mode: "proxy", rawHostTerminal: Boolean(process.stdin.isTTY) }
        : undefined,
      detach: !foreground,
      dieWithController: foreground,
      noPivot: o.noPivot,
      preserveFds: o.preserveFds,
      stdio: o.stdio,
      hookState: (status) => JSON.stringify(hookState(base, status as Status, 0)).replace('"pid":0', '"pid":@PID@'),
      beforeRelease: async (pid, cgroup) => {
        const record: OciRecord = { ...base, pid, pidStart: processStartTime(pid) ?? "", rootfs, created: new Date().toISOString(), cgroup, config: spec, hostMounts };
        writeJsonAtomic(join(dir, "state.json"), record);
        await runHooks(spec.hooks?.prestart, hookState(base, "created", pid), "prestart");
        await runHooks(spec.hooks?.createRuntime, hookState(base, "created", pid), "createRuntime");
      },
    });
    const record = loadRecord(root, id);
    record.cgroup = launched.cgroup;
    writeJsonAtomic(join(dir, "state.json"), record);
    writePidFile(o.pidFile, launched.run.pid);
    return { record, launched };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    unmountContainerMounts(rootfs, hostMounts);
    // Runtime-spec lifecycle: a create that fails (a prestart/createRuntime/createContainer hook, or
    // anything else once the container is being made) stops it and continues at poststop, as runc's destroy.
    await runHooksWarnOnly(spec.hooks?.poststop, hookState(base, "stopped"), "poststop", o.warn ?? (() => {}));
    throw err;
  }
}

export async function ociCreate(root: string, id: string, o: CreateOptions): Promise<void> {
  const { launched } = await launch(root, id, o, false);
  const ready = await launched.run.ready;
  if (ready !== "created") fail(`container ${id} did not reach the created state`);
}

export async function ociStart(root: string, id: string, warn: (msg: string) => void = () => {}): Promise<void> {
  const record = loadRecord(root, id);
  const status = statusOf(root, record);
  if (status !== "created") fail(`cannot start a container that is ${status}; only a created container can be started`);
  const fifo = join(root, id, "exec.fifo");
  // Opening the fifo for reading releases the init blocked on opening it for writing.
  const fd = openSync(fifo, "r");
  try {
    readSync(fd, Buffer.alloc(1), 0, 1, null);
  } finally {
    closeSync(fd);
    rmSync(fifo, { force: true });
  }
  await runHooksWarnOnly(record.config.hooks?.poststart, hookState(record, "running", record.pid), "poststart", warn);
}

export function ociState(root: string, id: string): OciState {
  return stateOf(root, loadRecord(root, id));
}

export function parseSignal(sig: string | undefined): number {
  const s = (sig ?? "SIGTERM").toUpperCase();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    // 0, as runc: no signal, only the check that the container's process still exists.
    if (n > 64) fail(`invalid signal "${sig}"`);
    return n;
  }
  const name = s.startsWith("SIG") ? s : `SIG${s}`;
  const n = (osSignals as Record<string, number>)[name];
  if (n === undefined) fail(`invalid signal "${sig}": use a name like SIGTERM or KILL, or a number`);
  return n;
}


export function ociKill(root: string, id: string, signal: string | undefined, all: boolean): void {
  const record = loadRecord(root, id);
  const sig = parseSignal(signal);
  const status = statusOf(root, record);
  // runc's words: containerd's shim and dockerd match "container not running" to treat a kill of an
  // exited container as "process already finished" rather than an unknown error.
  if (status === "stopped") fail(`container not running: "${id}" has stopped`);
  const pids = all ? cgroupPids(record.cgroup) : [record.pid];
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
    }
  }
}

export async function ociDelete(root: string, id: string, force: boolean, warn: (msg: string) => void = () => {}): Promise<void> {
  const dir = stateDir(root, id);
  if (!existsSync(join(dir, "state.json"))) {
    // A create that died before writing its state leaves only the directory.
    if (existsSync(dir) && force) return void rmSync(dir, { recursive: true, force: true });
    fail(`container "${id}" does not exist`);
  }
  const record = loadRecord(root, id);
  const status = statusOf(root, record);
  if (status !== "stopped" && !force) fail(`cannot delete container "${id}" that is ${status}: stop it first or use --force`);
  if (status !== "stopped") {
    if (status === "paused") await thawCgroup(record.cgroup).catch(() => undefined);
    try { process.kill(record.pid, "SIGKILL"); } catch { /* already gone */ }
  }
  // destroyCgroup kills whatever is left in the cgroup and removes it.
  await destroyCgroup(record.cgroup);
  unmountContainerMounts(record.rootfs, record.hostMounts);
  rmSync(dir, { recursive: true, force: true });
  await runHooksWarnOnly(record.config.hooks?.poststop, hookState(record, "stopped"), "poststop", warn);
}

/**
 * create + start in the foreground: returns the exit status of the container's process. `keep` (runc's
 * --keep): the stopped container stays, for state and list, until delete.
 */
export async function ociRun(root: string, id: string, o: CreateOptions, detach: boolean, keep = false): Promise<number> {
  if (detach) {
    await ociCreate(root, id, o);
    await ociStart(root, id, o.warn);
    return 0;
  }
  const { record, launched } = await launch(root, id, o, true);
  const forward = (sig: NodeJS.Signals) => () => launched.run.signal(osSignals[sig]);
  const sigs: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"];
  const handlers = sigs.map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  const onWinch = () => { try { process.kill(launched.run.helper.pid as number, "SIGWINCH"); } catch { /* gone */ } };
  process.on("SIGWINCH", onWinch);
  let status: ExitStatus;
  try {
    await launched.run.ready;
    await runHooksWarnOnly(record.config.hooks?.poststart, hookState(record, "running", record.pid), "poststart", o.warn ?? (() => {}));
    status = await launched.run.exited;
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
    process.off("SIGWINCH", onWinch);
    if (!keep) await ociDelete(root, id, true, o.warn);
  }
  return status.signal ? 128 + status.signal : status.exitCode;
}

export interface ExecOptions {
  consoleSocket?: string;
  detach?: boolean;
  pidFile?: string;
  preserveFds?: number;
  ignorePaused?: boolean;
  stdio?: [StdioEntry, StdioEntry, StdioEntry];
  warn?: (msg: string) => void;
}

/** Runs `proc` inside the running container; returns its exit code (0 at once with detach). */
export async function ociExec(root: string, id: string, proc: Process, o: ExecOptions): Promise<number> {
  const record = loadRecord(root, id);
  const status = statusOf(root, record);
  if (status === "stopped") fail(`cannot exec in container "${id}": it has stopped`);
  // As runc: the new process would join the frozen cgroup and freeze with it until resume.
  if (status === "paused" && !o.ignorePaused) fail(`cannot exec in container "${id}": it is paused (--ignore-paused to exec anyway)`);
  const consoleError = consoleFlagsError({ terminal: Boolean(proc.terminal), detached: Boolean(o.detach), consoleSocket: o.consoleSocket });
  if (consoleError) fail(consoleError);
  refuseUnsupportedProcess(proc, "process.");
  for (const msg of unappliedLsmWarnings(proc, hostLsms())) o.warn?.(msg);
  const seccomp = record.config.linux?.seccomp ? compileSeccomp(record.config.linux.seccomp, { arch: process.arch }) : undefined;
  const plan = planExec(proc, {
    pid: record.pid,
    namespaces: (record.config.linux?.namespaces ?? []).map((n) => n.type),
    procsFiles: record.cgroup.procsFiles,
    host: readHostFacts(),
    seccomp,
    preserveFds: o.preserveFds,
    console: proc.terminal ? o.consoleSocket ? { mode: "socket", socketPath: resolve(o.consoleSocket) } : { mode: "proxy", rawHostTerminal: Boolean(process.stdin.isTTY) } : undefined,
    detach: o.detach,
    dieWithController: !o.detach,
    personality: record.config.linux?.personality?.domain,
  });
  const extraFds = Array.from({ length: o.preserveFds ?? 0 }, (_, i) => 3 + i);
  const run = await startHelper(plan, { stdio: o.stdio ?? ["inherit", "inherit", "inherit"], extraFds });
  writePidFile(o.pidFile, run.pid);
  await run.ready;
  if (o.detach) return 0;
  const onWinch = () => { try { process.kill(run.helper.pid as number, "SIGWINCH"); } catch { /* gone */ } };
  process.on("SIGWINCH", onWinch);
  const handlers = (["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as NodeJS.Signals[]).map((s) => [s, () => run.signal(osSignals[s])] as const);
  for (const [s, h] of handlers) process.on(s, h);
  try {
    const st = await run.exited;
    return st.signal ? 128 + st.signal : st.exitCode;
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
    process.off("SIGWINCH", onWinch);
  }
}

export function ociList(root: string): OciState[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const out: OciState[] = [];
  for (const name of names) {
    try {
      out.push(stateOf(root, JSON.parse(readFileSync(join(root, name, "state.json"), "utf8")) as OciRecord));
    } catch {
      // a container being created or deleted right now
    }
  }
  return out;
}

export function ociPs(root: string, id: string): number[] {
  return cgroupPids(loadRecord(root, id).cgroup);
}

export async function ociPause(root: string, id: string): Promise<void> {
  const record = loadRecord(root, id);
  const status = statusOf(root, record);
  if (status !== "running" && status !== "created") fail(`cannot pause a container that is ${status}`);
  await freezeCgroup(record.cgroup);
}

export async function ociResume(root: string, id: string): Promise<void> {
  const record = loadRecord(root, id);
  if (statusOf(root, record) !== "paused") fail(`container "${id}" is not paused`);
  await thawCgroup(record.cgroup);
}

export async function ociUpdate(root: string, id: string, resources: Resources): Promise<void> {
  const record = loadRecord(root, id);
  if (statusOf(root, record) === "stopped") fail(`container "${id}" is stopped`);
  const merged = { ...record.config.linux?.resources, ...resources };
  const linux = { ...record.config.linux, resources: merged };
  // New device rules replace the old ones; the container's own device nodes stay allowed, as at create.
  const effective = resources.devices ? { ...resources, devices: deviceCgroupRules({ ...record.config, linux }) } : resources;
  const { deviceFilter } = updateCgroup(record.cgroup, effective);
  if (deviceFilter) {
    const program = compileDeviceFilter(deviceFilter.rules);
    await runFilesystemOps([{ op: "cgroupDeviceFilter", cgroup: deviceFilter.cgroup, program, replace: true }]);
  }
  record.config.linux = linux;
  writeJsonAtomic(join(root, id, "state.json"), record);
}

export function ociStats(root: string, id: string): { type: "stats"; id: string; data: unknown } {
  const record = loadRecord(root, id);
  const s = cgroupStats(record.cgroup);
  return { type: "stats", id, data: runcStats(s) };
}

/** How many of the container's processes the kernel has OOM-killed so far (events reports each increase). */
export function ociOomKills(root: string, id: string): number {
  return oomKillCount(loadRecord(root, id).cgroup);
}

/** The subset of runc's events --stats JSON that engines read. */
function runcStats(s: ReturnType<typeof cgroupStats>): unknown {
  return {
    cpu: { usage: { total: s.cpu?.usageNs ?? 0, user: s.cpu?.userNs ?? 0, kernel: s.cpu?.systemNs ?? 0 } },
    memory: { usage: { usage: s.memory?.usage ?? 0, limit: s.memory?.limit ?? 0, max: s.memory?.maxUsage ?? 0 }, stats: s.memory?.stat ?? {} },
    pids: { current: s.pids?.current ?? 0, limit: s.pids?.limit ?? 0 },
  };
}
