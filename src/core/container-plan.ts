// config (an OCI spec) + host facts -> the plan the native helper executes. Pure: every fact about the
// host comes in through `PlanContext`, so the whole list of steps can be asserted without root.

import { isAbsolute, join } from "node:path";
import { BerthError } from "../errors.js";
import type { Hook, IdMapping, Mount, Namespace, Process, Spec } from "../oci/spec.js";
import { capabilityMask } from "./capabilities.js";
import { DEFAULT_DEVICES } from "./defaults.js";
import { MS_BIND, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT, MS_SHARED, MS_SLAVE, MS_UNBINDABLE, parseMountOptions } from "../oci/mount-options.js";
import { type Op, type Plan, PlanFlag } from "./plan.js";
import { RLIMITS } from "./rlimits.js";

export const CLONE = {
  NEWNS: 0x00020000,
  NEWCGROUP: 0x02000000,
  NEWUTS: 0x04000000,
  NEWIPC: 0x08000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
} as const;

const NAMESPACE_FLAGS: Record<string, number> = {
  mount: CLONE.NEWNS,
  cgroup: CLONE.NEWCGROUP,
  uts: CLONE.NEWUTS,
  ipc: CLONE.NEWIPC,
  user: CLONE.NEWUSER,
  pid: CLONE.NEWPID,
  network: CLONE.NEWNET,
};

const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const SIGKILL = 9;

export interface HostFacts {
  /** /proc/sys/kernel/cap_last_cap */
  lastCap: number;
}

/** How the container sees its own cgroup, and where its pid goes (from the cgroup planner). */
export interface CgroupView {
  procsFiles: string[];
  mounts: { source: string; destination: string }[];
  symlinks?: { target: string; path: string }[];
}

export interface PlanContext {
  /** Absolute host path of the container's root directory (an overlay's merged dir, or the rootfs). */
  rootfs: string;
  /** Filesystems mounted onto `rootfs` first, inside the container's mount namespace (e.g. overlay). */
  /** `cwd`: the helper changes into it before mounting (relative overlay lowerdirs, src/runtime/overlay.ts). */
  rootfsMounts?: { source: string; fstype: string; data: string; flags?: number; cwd?: string }[];
  /** Directory relative mount sources are resolved against (the bundle). */
  bundle?: string;
  cgroup?: CgroupView;
  host: HostFacts;
  /** Whether a bind mount's source is a directory (stat on the host; injected to keep this pure). */
  isDirectory: (path: string) => boolean;
  /** create/start split: the child blocks on this fifo before exec. */
  execFifo?: string;
  /** With process.terminal: "proxy" = the helper copies the pty to its stdio; "socket" = send it. */
  console?: { mode: "proxy" | "socket"; socketPath?: string; rawHostTerminal?: boolean };
  /** The helper exits once the child waits on the exec fifo (create). */
  detach?: boolean;
  /** Foreground: the container dies with its helper, and the helper with its controller. */
  dieWithController?: boolean;
  noPivot?: boolean;
  /**
   * The mount point holding a host path (from /proc/self/mountinfo; injected to keep this pure). Asked
   * only for a shared rootfsPropagation: the mount holding the rootfs is then made private, as runc
   * does, since pivot_root refuses a new root whose parent mount is shared.
   */
  mountPointOf?: (path: string) => string | undefined;
  /**
   * cgroup v2 device rules compiled to eBPF (src/cgroups/device-filter.ts) and the cgroup dir to attach
   * the program to; the helper attaches it before clone, so the container never runs unfiltered.
   */
  deviceFilter?: { cgroup: string; program: Uint8Array };
  /** Compiled seccomp filter for spec.linux.seccomp, if any. */
  seccomp?: { program: Uint8Array; flags: number };
  /** Extra fds (3 .. 3+N-1) the container keeps (runc --preserve-fds). */
  preserveFds?: number;
  /** The state JSON given to createContainer/startContainer hooks ("@PID@" stands for the pid). */
  hookState?: (status: string) => string;
  /**
   * The helper stays as the container's monitor (log, attach socket, exit file) and outlives its
   * controller; see MonitorOp in plan.ts. Excludes `detach` and `dieWithController`.
   */
  monitor?: MonitorOptions;
}

export interface MonitorOptions {
  /** json-file log path; omitted = no log. */
  logPath?: string;
  /** Rotate when the log would exceed this many bytes (docker's --log-opt max-size); 0/omitted = never. */
  logMaxSize?: number;
  /** Files kept, the live one included (--log-opt max-file); default 1. */
  logMaxFiles?: number;
  /** Where the exit status is written when the container has ended. */
  exitFile: string;
  /** AF_UNIX socket for attach clients; omitted = none. */
  attachSocket?: string;
  /** Keep the container's stdin open for attach clients (-i); else it reads /dev/null. */
  stdin?: boolean;
}

/** What the process steps need: shared by planContainer and planExec. */
export interface ProcessContext {
  host: HostFacts;
  seccomp?: { program: Uint8Array; flags: number };
  preserveFds?: number;
  dieWithController?: boolean;
  personality?: string;
}

/** Where a namespace gets its own instance or is joined, and the clone flags. */
export function namespacePlan(namespaces: Namespace[]): { cloneFlags: number; unshareAfterCgroupJoin: number; joins: Namespace[] } {
  let cloneFlags = 0;
  let unshareAfterCgroupJoin = 0;
  const joins: Namespace[] = [];
  for (const ns of namespaces) {
    const flag = NAMESPACE_FLAGS[ns.type];
    if (flag === undefined) throw new BerthError(`linux.namespaces: namespace type "${ns.type}" is not supported`, { exitCode: 1 });
    if (ns.path) joins.push(ns);
    // The cgroup namespace is made after the child is in its cgroup, so that cgroup becomes its root.
    else if (ns.type === "cgroup") unshareAfterCgroupJoin |= flag;
    else cloneFlags |= flag;
  }
  // The user namespace is joined first: it owns the others.
  joins.sort((a, b) => (a.type === "user" ? -1 : b.type === "user" ? 1 : 0));
  return { cloneFlags, unshareAfterCgroupJoin, joins };
}

function idMap(mappings: IdMapping[] | undefined): string {
  return (mappings ?? []).map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join("");
}

function isMapped(mappings: IdMapping[] | undefined, id: number): boolean {
  return (mappings ?? []).some((m) => id >= m.containerID && id < m.containerID + m.size);
}

/** Mount ops for one spec mount, in order: the mount, a remount for bind flags, then propagation. */
export function mountOps(m: Mount, ctx: PlanContext, inUserNs: boolean, gidMappings: IdMapping[] | undefined): Op[] {
  const root = ctx.rootfs;
  const opts = parseMountOptions(m.options ?? []);
  const ops: Op[] = [];
  const isBind = (opts.flags & MS_BIND) !== 0 || m.type === "bind";
  // Recursive attributes (rro, rnosuid, ...) go after the mount; propagation changes come last.
  const recursive: Op[] = opts.recursive.set || opts.recursive.clear
    ? [{ op: "mountSetattr", root, target: m.destination, set: opts.recursive.set, clear: opts.recursive.clear }]
    : [];
  const propagationOps = (): Op[] => [
    ...recursive,
    ...opts.propagation.map((flags): Op => ({ op: "mount", source: "", root, target: m.destination, fstype: "", flags, data: "", create: "none" })),
  ];
  // Never run without something the config asked for: refuse what isn't implemented.
  if (opts.tmpcopyup && (m.type !== "tmpfs" || isBind)) {
    throw new BerthError(`mounts (destination ${m.destination}): the "tmpcopyup" option is only for tmpfs mounts`, { exitCode: 1 });
  }
  if (opts.idmap) throw new BerthError(`mounts (destination ${m.destination}): idmapped mounts ("idmap") are not supported`, { exitCode: 1 });

  if (m.type === "cgroup" || m.type === "cgroup2") return cgroupMountOps(m.destination, opts.flags, ctx);

  if (isBind) {
    const source = resolveSource(m.source ?? "", ctx.bundle);
    const create = ctx.isDirectory(source) ? "dir" : "file";
    ops.push({ op: "mount", source, root, target: m.destination, fstype: "", flags: MS_BIND | (opts.flags & MS_REC), data: "", create });
    const extra = opts.flags & ~(MS_BIND | MS_REC);
    if (extra !== 0) {
      ops.push({ op: "mount", source: "", root, target: m.destination, fstype: "", flags: MS_BIND | MS_REMOUNT | extra, data: "", create: "none" });
    }
    return [...ops, ...propagationOps()];
  }

  if (opts.tmpcopyup) {
    return [{ op: "tmpCopyUp", root, target: m.destination, flags: opts.flags, data: opts.data.join(",") }, ...propagationOps()];
  }

  let data = opts.data;
  // devpts refuses gid= for a group the user namespace doesn't map (runc drops it too).
  if (m.type === "devpts" && inUserNs) {
    data = data.filter((d) => !d.startsWith("gid=") || isMapped(gidMappings, Number(d.slice(4))));
  }
  ops.push({
    op: "mount",
    source: m.source ?? m.type ?? "none",
    root,
    target: m.destination,
    fstype: m.type ?? "",
    flags: opts.flags,
    data: data.join(","),
    create: "dir",
  });
  return [...ops, ...propagationOps()];
}

function resolveSource(source: string, bundle: string | undefined): string {
  if (isAbsolute(source) || !bundle) return source;
  return join(bundle, source);
}

/** A read-only view of the container's own cgroup: tmpfs with one bind per hierarchy (v1), or one bind (v2). */
function cgroupMountOps(destination: string, flags: number, ctx: PlanContext): Op[] {
  const root = ctx.rootfs;
  const view = ctx.cgroup;
  if (!view) return [];
  const ro = flags & MS_RDONLY;
  const bindFlags = flags & ~MS_RDONLY;
  const ops: Op[] = [];
  const single = view.mounts.length === 1 && view.mounts[0].destination === "/sys/fs/cgroup";
  if (!single) {
    ops.push({ op: "mount", source: "tmpfs", root, target: destination, fstype: "tmpfs", flags: bindFlags, data: "mode=755", create: "dir" });
  }
  for (const m of view.mounts) {
    const target = join(destination, m.destination.replace(/^\/sys\/fs\/cgroup/, ""));
    ops.push({ op: "mount", source: m.source, root, target, fstype: "", flags: MS_BIND | MS_REC, data: "", create: "dir" });
    ops.push({ op: "mount", source: "", root, target, fstype: "", flags: MS_BIND | MS_REMOUNT | bindFlags | ro, data: "", create: "none" });
  }
  for (const l of view.symlinks ?? []) {
    ops.push({ op: "symlink", root, target: l.target, path: join(destination, l.path.replace(/^\/sys\/fs\/cgroup/, "")) });
  }
  if (!single && ro) {
    ops.push({ op: "mount", source: "", root, target: destination, fstype: "", flags: MS_REMOUNT | MS_RDONLY | bindFlags, data: "", create: "none" });
  }
  return ops;
}

function deviceOps(spec: Spec, ctx: PlanContext, inUserNs: boolean): Op[] {
  const root = ctx.rootfs;
  const byPath = new Map<string, { type: string; path: string; major: number; minor: number; fileMode: number; uid: number; gid: number }>();
  for (const d of DEFAULT_DEVICES) byPath.set(d.path, { ...d });
  for (const d of spec.linux?.devices ?? []) {
    byPath.set(d.path, { type: d.type, path: d.path, major: d.major ?? 0, minor: d.minor ?? 0, fileMode: d.fileMode ?? 0o666, uid: d.uid ?? 0, gid: d.gid ?? 0 });
  }
  const ops: Op[] = [];
  for (const d of byPath.values()) {
    if (inUserNs) {
      // mknod is not allowed in a user namespace: bind the host's node instead (as runc does).
      ops.push({ op: "mount", source: d.path, root, target: d.path, fstype: "", flags: MS_BIND, data: "", create: "file" });
    } else {
      const kind = d.type === "b" ? S_IFBLK : d.type === "p" ? S_IFIFO : S_IFCHR;
      ops.push({ op: "mknod", root, path: d.path, mode: kind | (d.fileMode & 0o7777), major: d.major, minor: d.minor, uid: d.uid, gid: d.gid });
    }
  }
  return ops;
}

function devSymlinkOps(spec: Spec, root: string): Op[] {
  const links: [string, string][] = [
    ["/proc/self/fd", "/dev/fd"],
    ["/proc/self/fd/0", "/dev/stdin"],
    ["/proc/self/fd/1", "/dev/stdout"],
    ["/proc/self/fd/2", "/dev/stderr"],
  ];
  if ((spec.mounts ?? []).some((m) => m.destination === "/dev/pts")) links.push(["pts/ptmx", "/dev/ptmx"]);
  return links.map(([target, path]) => ({ op: "symlink", root, target, path }));
}

/** The steps shared by a container's init and an exec'd process, from rlimits to execve. */
function processOps(proc: Process, ctx: ProcessContext): Op[] {
  const args = proc.args ?? [];
  if (args.length === 0) throw new BerthError("process.args: no command to run", { exitCode: 1 });
  const ops: Op[] = [];
  if (proc.oomScoreAdj !== undefined) ops.push({ op: "writeFile", path: "/proc/self/oom_score_adj", data: String(proc.oomScoreAdj), optional: false });
  for (const [i, r] of (proc.rlimits ?? []).entries()) {
    const resource = RLIMITS[r.type];
    if (resource === undefined) throw new BerthError(`process.rlimits[${i}].type: unknown rlimit "${r.type}"`, { exitCode: 1 });
    ops.push({ op: "setrlimit", resource, name: r.type, soft: toRlim(r.soft), hard: toRlim(r.hard) });
  }
  // While the process still holds CAP_SYS_NICE / CAP_SYS_ADMIN (before setUser), as runc.
  if (proc.scheduler) ops.push(schedulerOp(proc.scheduler));
  if (proc.ioPriority) ops.push({ op: "ioPriority", ioprio: (IOPRIO_CLASSES[proc.ioPriority.class] << 13) | proc.ioPriority.priority });
  if (ctx.personality) ops.push({ op: "personality", persona: ctx.personality === "LINUX32" ? 0x0008 : 0 });
  ops.push({ op: "umask", mask: proc.user.umask ?? 0o022 });
  ops.push({ op: "closeFds", from: 3 + (ctx.preserveFds ?? 0) });

  const seccompBeforeUser = ctx.seccomp && !proc.noNewPrivileges;
  // Without no_new_privs the filter must be loaded while CAP_SYS_ADMIN is still held.
  if (seccompBeforeUser && ctx.seccomp) ops.push({ op: "seccomp", program: ctx.seccomp.program, flags: ctx.seccomp.flags });
  ops.push({ op: "setUser", uid: proc.user.uid, gid: proc.user.gid, groups: proc.user.additionalGids ?? [], setGroups: true });
  ops.push({ op: "chdir", path: proc.cwd || "/" });
  const caps = proc.capabilities ?? {};
  const mask = (names: string[] | undefined, path: string) => capabilityMask(names ?? [], path) & ((1n << BigInt(ctx.host.lastCap + 1)) - 1n);
  const permitted = mask(caps.permitted, "process.capabilities.permitted");
  const inheritable = mask(caps.inheritable, "process.capabilities.inheritable");
  ops.push({
    op: "capabilities",
    bounding: mask(caps.bounding, "process.capabilities.bounding"),
    effective: mask(caps.effective, "process.capabilities.effective"),
    permitted,
    inheritable,
    // The kernel raises an ambient cap only if it is permitted and inheritable; runc ignores the rest
    // (its own `runc spec` asks for ambient caps without inheritable ones).
    ambient: mask(caps.ambient, "process.capabilities.ambient") & permitted & inheritable,
    lastCap: ctx.host.lastCap,
  });
  if (proc.noNewPrivileges) ops.push({ op: "noNewPrivileges" });
  if (!seccompBeforeUser && ctx.seccomp) ops.push({ op: "seccomp", program: ctx.seccomp.program, flags: ctx.seccomp.flags });
  // A uid change clears the parent-death signal: set it again right before exec.
  if (ctx.dieWithController) ops.push({ op: "parentDeathSignal", signal: SIGKILL });
  ops.push({ op: "exec", file: args[0], argv: args, env: proc.env ?? [] });

  return ops;
}

// include/uapi/linux/sched.h and ioprio.h.
const SCHED_POLICIES: Record<string, number> = {
  SCHED_OTHER: 0, SCHED_FIFO: 1, SCHED_RR: 2, SCHED_BATCH: 3, SCHED_ISO: 4, SCHED_IDLE: 5, SCHED_DEADLINE: 6,
};
const SCHED_FLAGS: Record<string, number> = {
  SCHED_FLAG_RESET_ON_FORK: 0x01, SCHED_FLAG_RECLAIM: 0x02, SCHED_FLAG_DL_OVERRUN: 0x04, SCHED_FLAG_KEEP_POLICY: 0x08,
  SCHED_FLAG_KEEP_PARAMS: 0x10, SCHED_FLAG_UTIL_CLAMP_MIN: 0x20, SCHED_FLAG_UTIL_CLAMP_MAX: 0x40,
};
const IOPRIO_CLASSES: Record<string, number> = { IOPRIO_CLASS_RT: 1, IOPRIO_CLASS_BE: 2, IOPRIO_CLASS_IDLE: 3 };

function schedulerOp(s: NonNullable<Process["scheduler"]>): Op {
  const policy = SCHED_POLICIES[String(s.policy)];
  if (policy === undefined) throw new BerthError(`process.scheduler.policy: unknown policy ${JSON.stringify(s.policy)}`, { exitCode: 1 });
  let flags = 0;
  for (const [i, f] of ((s.flags as string[] | undefined) ?? []).entries()) {
    if (SCHED_FLAGS[f] === undefined) throw new BerthError(`process.scheduler.flags[${i}]: unknown flag ${JSON.stringify(f)}`, { exitCode: 1 });
    flags |= SCHED_FLAGS[f];
  }
  const n = (k: string) => Number(s[k] ?? 0);
  return { op: "scheduler", policy, flags, nice: n("nice"), priority: n("priority"), runtime: n("runtime"), deadline: n("deadline"), period: n("period") };
}

export function planContainer(spec: Spec, ctx: PlanContext): Plan {
  const proc = spec.process;
  if (!proc || !proc.args || proc.args.length === 0) throw new BerthError("process.args: no command to run", { exitCode: 1 });
  const linux = spec.linux ?? {};
  const ns = namespacePlan(linux.namespaces ?? []);
  const inUserNs = (ns.cloneFlags & CLONE.NEWUSER) !== 0 || ns.joins.some((n) => n.type === "user");
  const newMountNs = (ns.cloneFlags & CLONE.NEWNS) !== 0;
  // A mount namespace joined by path is set up like a new one, as runc does (its mounts change too).
  const joinedMountNs = ns.joins.some((n) => n.type === "mount");
  // No "mount" entry: the container inherits the runtime's mount namespace (the spec's MUST; runc does
  // it). Its mounts are then made in the host's table under the rootfs (berth-oci delete detaches
  // them; runc leaves them), the host's propagation is left alone, and a plain chroot enters the
  // rootfs: pivot_root, or a move onto "/", would change the host's root.
  const hostMountNs = !newMountNs && !joinedMountNs;
  if (hostMountNs && spec.root?.readonly) {
    throw new BerthError('root.readonly: needs its own mount namespace (no "mount" entry in linux.namespaces)', { exitCode: 1 });
  }
  const root = ctx.rootfs;
  const ops: Op[] = [];

  // -- in the helper, before clone
  if (ctx.monitor) ops.push(monitorOp(ctx, proc));
  if (ctx.execFifo) ops.push({ op: "mkfifo", path: ctx.execFifo, mode: 0o622 });
  // Before any setns: the cgroup dir is a host path.
  if (ctx.deviceFilter) ops.push({ op: "cgroupDeviceFilter", cgroup: ctx.deviceFilter.cgroup, program: ctx.deviceFilter.program, replace: false });
  const nsNames: Record<string, string> = { user: "user", mount: "mnt", pid: "pid", network: "net", ipc: "ipc", uts: "uts", cgroup: "cgroup" };
  for (const j of ns.joins) {
    ops.push({ op: "joinNamespace", path: j.path as string, nstype: NAMESPACE_FLAGS[j.type], name: nsNames[j.type] ?? j.type });
  }
  ops.push({ op: "clone", flags: ns.cloneFlags });

  // -- in the helper, after clone, while the child waits
  for (const path of ctx.cgroup?.procsFiles ?? []) ops.push({ op: "parentWritePid", path });
  if (ns.cloneFlags & CLONE.NEWUSER) {
    ops.push({ op: "parentWriteProc", file: "uid_map", data: idMap(linux.uidMappings) });
    ops.push({ op: "parentWriteProc", file: "gid_map", data: idMap(linux.gidMappings) });
  }

  // -- in the child
  if (ctx.dieWithController) ops.push({ op: "parentDeathSignal", signal: SIGKILL });
  if (ns.cloneFlags & CLONE.NEWUSER) ops.push({ op: "setUser", uid: 0, gid: 0, groups: [], setGroups: false });
  if (ns.unshareAfterCgroupJoin) ops.push({ op: "unshare", flags: ns.unshareAfterCgroupJoin });
  ops.push({ op: "setsid" });
  if (spec.hostname !== undefined && spec.hostname !== "") ops.push({ op: "sethostname", name: spec.hostname });
  if (spec.domainname) ops.push({ op: "setdomainname", name: spec.domainname });
  if (ns.cloneFlags & CLONE.NEWNET) ops.push({ op: "linkUp", name: "lo" });

  // Nothing mounted below may propagate back to the host. runc's order: the configured propagation on
  // "/" first, then again on the new root after pivot_root. Unbindable would refuse the rootfs bind
  // below (runc 1.1 fails there), so until pivot_root it is private.
  const rootPropagation = rootfsPropagationFlags(linux.rootfsPropagation);
  const preRootPropagation = rootPropagation & MS_UNBINDABLE ? MS_REC | MS_PRIVATE : rootPropagation;
  if (!hostMountNs) ops.push({ op: "mount", source: "", root: "", target: "/", fstype: "", flags: preRootPropagation, data: "", create: "none" });
  if (!hostMountNs && preRootPropagation & MS_SHARED) {
    // pivot_root refuses a new root whose parent mount is shared; the rootfs bind would also propagate.
    const parent = ctx.mountPointOf?.(root);
    if (parent) ops.push({ op: "mount", source: "", root: "", target: parent, fstype: "", flags: MS_PRIVATE, data: "", create: "none" });
  }
  for (const m of ctx.rootfsMounts ?? []) {
    if (m.cwd) ops.push({ op: "chdir", path: m.cwd });
    ops.push({ op: "mount", source: m.source, root: "", target: root, fstype: m.fstype, flags: m.flags ?? 0, data: m.data, create: "none" });
  }
  // pivot_root needs the new root to be a mount point.
  if (!hostMountNs) ops.push({ op: "mount", source: root, root: "", target: root, fstype: "", flags: MS_BIND | MS_REC, data: "", create: "none" });

  const mounts = spec.mounts ?? [];
  for (const m of mounts) ops.push(...mountOps(m, ctx, inUserNs, linux.gidMappings));
  const devIsTmpfs = mounts.some((m) => m.destination === "/dev" && m.type === "tmpfs");
  if (devIsTmpfs) {
    ops.push(...deviceOps(spec, ctx, inUserNs));
    ops.push(...devSymlinkOps(spec, root));
    if (proc.terminal) ops.push({ op: "mknod", root, path: "/dev/console", mode: S_IFREG | 0o600, major: 0, minor: 0, uid: 0, gid: 0 });
  }
  if (proc.cwd && proc.cwd !== "/") ops.push({ op: "mkdir", root, path: proc.cwd, mode: 0o755 });
  if (ctx.execFifo) ops.push({ op: "openExecFifo", path: ctx.execFifo });
  // createContainer hooks: in the container's namespaces, before pivot_root, path as the runtime sees it.
  ops.push(...hookOps(spec.hooks?.createContainer, "createContainer", ctx.hookState?.("created") ?? ""));

  ops.push(hostMountNs ? { op: "chrootInPlace", root } : ctx.noPivot ? { op: "chroot", root } : { op: "pivotRoot", root });
  // From here on paths are inside the container.
  if (linux.rootfsPropagation && !hostMountNs) {
    ops.push({ op: "mount", source: "", root: "/", target: "/", fstype: "", flags: rootPropagation, data: "", create: "none" });
  }
  if (proc.terminal) {
    if (!ctx.console) throw new BerthError("process.terminal is set but no console was provided (use --console-socket)", { exitCode: 1 });
    const size = proc.consoleSize ?? { height: 0, width: 0 };
    ops.push({ op: "console", mode: ctx.console.mode, socketPath: ctx.console.socketPath ?? "", rows: size.height, cols: size.width, devConsole: true });
  }
  if (spec.root?.readonly) {
    ops.push({ op: "mount", source: "", root: "/", target: "/", fstype: "", flags: MS_BIND | MS_REMOUNT | MS_RDONLY, data: "", create: "none" });
  }
  // Sysctls before /proc/sys is made read-only (runc's order): engines set e.g.
  // net.ipv4.ip_unprivileged_port_start and also list /proc/sys in readonlyPaths.
  for (const [key, value] of Object.entries(linux.sysctl ?? {})) {
    ops.push({ op: "writeFile", path: "/proc/sys/" + key.replace(/\./g, "/"), data: value, optional: false });
  }
  for (const p of linux.readonlyPaths ?? []) ops.push({ op: "readonlyPath", root: "/", path: p });
  for (const p of linux.maskedPaths ?? []) ops.push({ op: "maskPath", root: "/", path: p });
  const processSteps = processOps(proc, { ...ctx, personality: linux.personality?.domain });
  const startHooks = hookOps(spec.hooks?.startContainer, "startContainer", ctx.hookState?.("running") ?? "");
  if (startHooks.length > 0) {
    // startContainer hooks run after `start`, right before the user's program (as runc does).
    const exec = processSteps.pop() as Op;
    processSteps.push(...(ctx.execFifo ? [{ op: "waitExecFifo" } as Op] : []), ...startHooks, exec);
  }
  ops.push(...processSteps);

  return { flags: planFlags(proc, ctx), ops };
}

function monitorOp(ctx: PlanContext, proc: Process): Op {
  const m = ctx.monitor as MonitorOptions;
  // The monitor must outlive the controller and must get the pty master itself.
  if (ctx.detach || ctx.dieWithController) throw new BerthError("a monitored container can't be detached (create) or die with its controller", { exitCode: 1 });
  if (proc.terminal && ctx.console?.mode !== "proxy") throw new BerthError("a monitored container with a terminal needs the console in proxy mode", { exitCode: 1 });
  const logMaxFiles = m.logMaxFiles ?? 1;
  if (!Number.isInteger(logMaxFiles) || logMaxFiles < 1) throw new BerthError(`invalid max-file ${m.logMaxFiles}: must be a positive integer`, { exitCode: 1 });
  const logMaxSize = m.logMaxSize ?? 0;
  if (!Number.isInteger(logMaxSize) || logMaxSize < 0) throw new BerthError(`invalid max-size ${m.logMaxSize}: must be a number of bytes`, { exitCode: 1 });
  return {
    op: "monitor",
    logPath: m.logPath ?? "",
    logMaxSize,
    logMaxFiles,
    exitFile: m.exitFile,
    attachSocket: m.attachSocket ?? "",
    stdin: m.stdin ?? false,
  };
}

function planFlags(proc: Process, ctx: { detach?: boolean; dieWithController?: boolean; console?: PlanContext["console"]; monitor?: MonitorOptions }): number {
  let flags = 0;
  if (ctx.monitor) flags |= PlanFlag.Monitor;
  if (ctx.detach) flags |= PlanFlag.Detach;
  if (ctx.dieWithController) flags |= PlanFlag.KillOnControlEof;
  if (proc.terminal && ctx.console?.mode === "proxy") {
    flags |= PlanFlag.TtyProxy;
    if (ctx.console.rawHostTerminal) flags |= PlanFlag.RawHostTerminal;
  }
  return flags;
}

export interface ExecContext extends ProcessContext {
  /** The container's init (host pid) whose namespaces are joined. */
  pid: number;
  /** The namespace types the container has (created or joined), from its config. */
  namespaces: string[];
  /** cgroup.procs files of the container's cgroup. */
  procsFiles: string[];
  console?: PlanContext["console"];
  detach?: boolean;
}

// Joined in this order: the user namespace owns the rest, and the mount namespace goes last because
// after it /proc is the container's and the other /proc/<pid>/ns paths would name other processes.
const EXEC_JOIN_ORDER = ["user", "ipc", "uts", "network", "pid", "cgroup", "mount"];

/** A process started inside a running container (exec): join its namespaces and cgroup, then exec. */
export function planExec(proc: Process, ctx: ExecContext): Plan {
  if (!proc.args || proc.args.length === 0) throw new BerthError("process.args: no command to run", { exitCode: 1 });
  const nsNames: Record<string, string> = { user: "user", mount: "mnt", pid: "pid", network: "net", ipc: "ipc", uts: "uts", cgroup: "cgroup" };
  const ops: Op[] = [];
  for (const type of EXEC_JOIN_ORDER) {
    if (!ctx.namespaces.includes(type)) continue;
    ops.push({ op: "joinNamespace", path: `/proc/${ctx.pid}/ns/${nsNames[type]}`, nstype: NAMESPACE_FLAGS[type], name: nsNames[type] });
  }
  ops.push({ op: "clone", flags: 0 });
  for (const path of ctx.procsFiles) ops.push({ op: "parentWritePid", path });
  if (ctx.dieWithController) ops.push({ op: "parentDeathSignal", signal: SIGKILL });
  ops.push({ op: "setsid" });
  // Joining a mount namespace puts the process at its root; a container that shares the runtime's has
  // its root only as its init's chroot, so the exec'd process takes the same one (else it runs in the host's /).
  if (!ctx.namespaces.includes("mount")) ops.push({ op: "chrootInPlace", root: `/proc/${ctx.pid}/root` });
  if (proc.terminal) {
    if (!ctx.console) throw new BerthError("process.terminal is set but no console was provided (use --console-socket)", { exitCode: 1 });
    const size = proc.consoleSize ?? { height: 0, width: 0 };
    ops.push({ op: "console", mode: ctx.console.mode, socketPath: ctx.console.socketPath ?? "", rows: size.height, cols: size.width, devConsole: false });
  }
  ops.push(...processOps(proc, ctx));
  return { flags: planFlags(proc, ctx), ops };
}

function hookOps(hooks: Hook[] | undefined, kind: string, state: string): Op[] {
  return (hooks ?? []).map((h, index) => ({
    op: "runHook",
    kind,
    index,
    path: h.path,
    argv: h.args && h.args.length > 0 ? h.args : [h.path],
    env: h.env ?? [],
    state,
    timeout: h.timeout ?? 0,
  }));
}

function toRlim(v: number): bigint {
  // JSON can't carry 2^64-1 exactly; anything at or above 2^63 means unlimited.
  return v < 0 || v >= 2 ** 63 ? (1n << 64n) - 1n : BigInt(Math.floor(v));
}

function rootfsPropagationFlags(value: string | undefined): number {
  switch (value ?? "") {
    case "": case "rprivate": return MS_REC | MS_PRIVATE;
    case "private": return MS_PRIVATE;
    case "rslave": return MS_REC | MS_SLAVE;
    case "slave": return MS_SLAVE;
    case "rshared": return MS_REC | MS_SHARED;
    case "shared": return MS_SHARED;
    case "runbindable": return MS_REC | MS_UNBINDABLE;
    case "unbindable": return MS_UNBINDABLE;
    default: throw new BerthError(`linux.rootfsPropagation: unknown propagation "${value}"`, { exitCode: 1 });
  }
}
