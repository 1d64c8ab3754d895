// The plan: the list of steps the native helper carries out between clone and exec, computed in
// TypeScript. The helper interprets it one op at a time and reports failures as (op index, errno); it
// decides nothing. Op codes and the encoding are shared with native/helper.c: change both together and
// bump PLAN_VERSION so a stale helper refuses the plan instead of misreading it.

export const PLAN_MAGIC = 0x48545242; // "BRTH" little-endian
export const PLAN_VERSION = 6;

/** Header flags: how the helper behaves around the container, not what it does inside it. */
export const PlanFlag = {
  /** Exit once the child is set up and waiting to exec (create); the caller's subreaper adopts it. */
  Detach: 1,
  /** Kill the child if the controller's socket closes (the caller died). */
  KillOnControlEof: 2,
  /** The child sends its pty master back; the helper copies between its own stdio and the pty. */
  TtyProxy: 4,
  /** While proxying, put the helper's stdin terminal in raw mode, restored on exit. */
  RawHostTerminal: 8,
  /**
   * After "started" the helper becomes the container's monitor (native/monitor.c, set up by the
   * `monitor` op): it outlives its controller, logs, serves attach and writes the exit file.
   */
  Monitor: 16,
} as const;

export const OpCode = {
  JoinNamespace: 1,
  Clone: 2,
  ParentWritePid: 10,
  ParentWriteProc: 11,
  Unshare: 20,
  SetHostname: 21,
  SetDomainname: 22,
  Mount: 23,
  Mknod: 24,
  Symlink: 25,
  MaskPath: 26,
  ReadonlyPath: 27,
  PivotRoot: 28,
  Chroot: 29,
  WriteFile: 30,
  Chdir: 31,
  Setrlimit: 32,
  SetUser: 33,
  Capabilities: 34,
  NoNewPrivileges: 35,
  Seccomp: 36,
  CloseFds: 37,
  Console: 38,
  Setsid: 39,
  OpenExecFifo: 40,
  Exec: 41,
  ParentDeathSignal: 42,
  Umask: 43,
  Personality: 45,
  Mkdir: 47,
  LinkUp: 50,
  Mkfifo: 51,
  Setxattr: 52,
  WaitExecFifo: 53,
  RunHook: 54,
  Netlink: 55,
  Monitor: 56,
  MountSetattr: 57,
  CgroupDeviceFilter: 58,
  ChrootInPlace: 59,
  TmpCopyUp: 60,
  Scheduler: 61,
  IoPriority: 62,
} as const;

/** Where a mount target is resolved: inside `root` with symlinks scoped to it (openat2 RESOLVE_IN_ROOT). */
export type Create = "none" | "dir" | "file";

export type Op =
  | { op: "joinNamespace"; path: string; nstype: number; name: string }
  | { op: "clone"; flags: number }
  | { op: "parentWritePid"; path: string }
  | { op: "parentWriteProc"; file: string; data: string }
  | { op: "unshare"; flags: number }
  | { op: "sethostname"; name: string }
  | { op: "setdomainname"; name: string }
  | {
      op: "mount";
      source: string;
      root: string;
      target: string;
      fstype: string;
      flags: number;
      data: string;
      create: Create;
    }
  | { op: "mknod"; root: string; path: string; mode: number; major: number; minor: number; uid: number; gid: number }
  | { op: "symlink"; root: string; target: string; path: string }
  | { op: "maskPath"; root: string; path: string }
  | { op: "readonlyPath"; root: string; path: string }
  | { op: "pivotRoot"; root: string }
  | { op: "chroot"; root: string }
  /** chroot(root) without moving any mount: for a container that shares the runtime's mount namespace. */
  | { op: "chrootInPlace"; root: string }
  | { op: "writeFile"; path: string; data: string; optional: boolean }
  | { op: "chdir"; path: string }
  | { op: "setrlimit"; resource: number; name: string; soft: bigint; hard: bigint }
  | { op: "setUser"; uid: number; gid: number; groups: number[]; setGroups: boolean }
  | { op: "capabilities"; bounding: bigint; effective: bigint; permitted: bigint; inheritable: bigint; ambient: bigint; lastCap: number }
  | { op: "noNewPrivileges" }
  | { op: "seccomp"; program: Uint8Array; flags: number }
  | { op: "closeFds"; from: number }
  /** devConsole: bind the terminal on /dev/console (the init only: an exec's would stay stacked there after it ends). */
  | { op: "console"; mode: "proxy" | "socket"; socketPath: string; rows: number; cols: number; devConsole: boolean }
  | { op: "setsid" }
  | { op: "openExecFifo"; path: string }
  | { op: "exec"; file: string; argv: string[]; env: string[] }
  | { op: "parentDeathSignal"; signal: number }
  | { op: "umask"; mask: number }
  | { op: "personality"; persona: number }
  | { op: "mkdir"; root: string; path: string; mode: number }
  | { op: "linkUp"; name: string }
  | { op: "mkfifo"; path: string; mode: number }
  | { op: "setxattr"; root: string; path: string; name: string; value: Uint8Array }
  | { op: "waitExecFifo" }
  /**
   * cgroup v2 device rules: load `program` (eBPF, BPF_PROG_TYPE_CGROUP_DEVICE, from
   * src/cgroups/device-filter.ts) and attach it to the cgroup dir `cgroup` (BPF_CGROUP_DEVICE,
   * BPF_F_ALLOW_MULTI). Before clone, or in a plan without clone. `replace` (an update): afterwards
   * detach the device programs attached to that dir before. Errors name the step as detail:
   * "BPF_PROG_LOAD [verifier line]", "open", "BPF_PROG_ATTACH", "BPF_PROG_QUERY", "BPF_PROG_DETACH".
   */
  | { op: "cgroupDeviceFilter"; cgroup: string; program: Uint8Array; replace: boolean }
  /** mount_setattr(AT_RECURSIVE) on a mount inside root: the r* options (rro, rnosuid, ...). */
  | { op: "mountSetattr"; root: string; target: string; set: number; clear: number }
  /**
   * runc's "tmpcopyup": a tmpfs on `target` (inside root, made if missing) that starts with a copy of
   * what the directory held (owners, modes, times; hard links become copies).
   */
  | { op: "tmpCopyUp"; root: string; target: string; flags: number; data: string }
  /** process.scheduler: sched_setattr(2) on the process (policy and flags as the kernel's numbers). */
  | { op: "scheduler"; policy: number; flags: number; nice: number; priority: number; runtime: number; deadline: number; period: number }
  /** process.ioPriority: ioprio_set(IOPRIO_WHO_PROCESS, self, class << 13 | priority). */
  | { op: "ioPriority"; ioprio: number }
  /** `state` is the hook's stdin; "@PID@" in it becomes the container's host pid. */
  | { op: "runHook"; kind: string; index: number; path: string; argv: string[]; env: string[]; state: string; timeout: number }
  /**
   * One rtnetlink request (src/network/netlink.ts), sent from a socket in `netns` ("" = the helper's
   * own, "@CHILD@" = the new container's). After the clone the parent helper runs these while the child
   * waits; without a clone they run as a batch. `pidOffset` (>0): the child's pid is written there as a
   * u32; `ifname`: resolved to an index in that netns and written at `ifindexOffset`; `ignoreErrno`: an
   * errno that counts as success (e.g. EEXIST). `what` only words errors.
   */
  | { op: "netlink"; netns: string; message: Uint8Array; pidOffset: number; ifname: string; ifindexOffset: number; ignoreErrno: number; what: string }
  | MonitorOp;

/**
 * Before clone (first, before any setns, so the paths are host paths): with PlanFlag.Monitor the
 * helper opens the json-file log (`logPath`, "" = none; rotated at `logMaxSize` bytes, 0 = never,
 * keeping `logMaxFiles` files: log, log.1, ...), removes a stale `exitFile`, binds `attachSocket`
 * ("" = none; mode 0600) and makes the pipes that become the container's stdin (with `stdin`, else
 * /dev/null), stdout and stderr (with a terminal, the pty master is used instead).
 *
 * Log lines: docker's json-file, `{"log":"...","stream":"stdout"|"stderr","time":"<RFC 3339 nano>"}`,
 * one per line of output (lines over 16 KiB are split, a last partial line is flushed at the end).
 *
 * Exit file, written atomically once the init was reaped and its output drained:
 * `{"exitCode":N,"signal":S,"oomKilled":false,"finishedAt":"<RFC 3339 nano>"}`, exitCode being
 * docker's (128+S when killed by signal S). OOM is for the daemon to decide from the cgroup.
 *
 * Attach socket framing, both ways: an 8-byte header [type, 0, 0, 0, length u32 big-endian] and
 * `length` bytes (the header of docker's multiplexed streams, so stdout/stderr frames can be passed
 * on as they are). Monitor -> client: type 1 stdout, 2 stderr (a terminal's output is 1), live from
 * the moment of connecting. Client -> monitor: 0 stdin data, 1 close the container's stdin, 2 resize
 * (payload: rows u16, cols u16, big-endian). A client that falls ~200 KiB behind is disconnected;
 * the connection is closed after the exit file is written. See src/runtime/monitor.ts.
 */
export interface MonitorOp {
  op: "monitor";
  logPath: string;
  logMaxSize: number;
  logMaxFiles: number;
  exitFile: string;
  attachSocket: string;
  stdin: boolean;
}

/** Frame types on the attach socket (see MonitorOp). */
export const AttachFrame = {
  Stdout: 1,
  Stderr: 2,
  Stdin: 0,
  CloseStdin: 1,
  Resize: 2,
} as const;

export interface Plan {
  flags: number;
  ops: Op[];
}

// ---- encoding ------------------------------------------------------------------------------------
// u32 magic, u32 version, u32 flags, u32 op count; each op: u32 code, u32 field count, fields as
// (u32 length, bytes). Strings carry a trailing NUL; numbers are u64 little-endian; string lists are
// NUL-separated strings in one field.

type Field = string | bigint | number | Uint8Array | string[];

function fieldsOf(op: Op): [number, Field[]] {
  const create = (c: Create) => (c === "none" ? 0 : c === "dir" ? 1 : 2);
  switch (op.op) {
    case "joinNamespace": return [OpCode.JoinNamespace, [op.path, op.nstype]];
    case "clone": return [OpCode.Clone, [op.flags]];
    case "parentWritePid": return [OpCode.ParentWritePid, [op.path]];
    case "parentWriteProc": return [OpCode.ParentWriteProc, [op.file, op.data]];
    case "unshare": return [OpCode.Unshare, [op.flags]];
    case "sethostname": return [OpCode.SetHostname, [op.name]];
    case "setdomainname": return [OpCode.SetDomainname, [op.name]];
    case "mount": return [OpCode.Mount, [op.source, op.root, op.target, op.fstype, op.flags, op.data, create(op.create)]];
    case "mknod": return [OpCode.Mknod, [op.root, op.path, op.mode, op.major, op.minor, op.uid, op.gid]];
    case "symlink": return [OpCode.Symlink, [op.root, op.target, op.path]];
    case "maskPath": return [OpCode.MaskPath, [op.root, op.path]];
    case "readonlyPath": return [OpCode.ReadonlyPath, [op.root, op.path]];
    case "pivotRoot": return [OpCode.PivotRoot, [op.root]];
    case "chroot": return [OpCode.Chroot, [op.root]];
    case "chrootInPlace": return [OpCode.ChrootInPlace, [op.root]];
    case "writeFile": return [OpCode.WriteFile, [op.path, op.data, op.optional ? 1 : 0]];
    case "chdir": return [OpCode.Chdir, [op.path]];
    case "setrlimit": return [OpCode.Setrlimit, [op.resource, op.soft, op.hard]];
    case "setUser": return [OpCode.SetUser, [op.uid, op.gid, op.setGroups ? 1 : 0, u32Array(op.groups)]];
    case "capabilities":
      return [OpCode.Capabilities, [op.bounding, op.effective, op.permitted, op.inheritable, op.ambient, op.lastCap]];
    case "noNewPrivileges": return [OpCode.NoNewPrivileges, []];
    case "seccomp": return [OpCode.Seccomp, [op.program, op.flags]];
    case "closeFds": return [OpCode.CloseFds, [op.from]];
    case "console": return [OpCode.Console, [op.mode === "proxy" ? 1 : 2, op.socketPath, op.rows, op.cols, op.devConsole ? 1 : 0]];
    case "setsid": return [OpCode.Setsid, []];
    case "openExecFifo": return [OpCode.OpenExecFifo, [op.path]];
    case "exec": return [OpCode.Exec, [op.file, op.argv, op.env]];
    case "parentDeathSignal": return [OpCode.ParentDeathSignal, [op.signal]];
    case "umask": return [OpCode.Umask, [op.mask]];
    case "personality": return [OpCode.Personality, [op.persona]];
    case "mkdir": return [OpCode.Mkdir, [op.root, op.path, op.mode]];
    case "linkUp": return [OpCode.LinkUp, [op.name]];
    case "mkfifo": return [OpCode.Mkfifo, [op.path, op.mode]];
    case "setxattr": return [OpCode.Setxattr, [op.root, op.path, op.name, op.value]];
    case "waitExecFifo": return [OpCode.WaitExecFifo, []];
    case "cgroupDeviceFilter": return [OpCode.CgroupDeviceFilter, [op.cgroup, op.program, op.replace ? 1 : 0]];
    case "mountSetattr": return [OpCode.MountSetattr, [op.root, op.target, op.set, op.clear]];
    case "tmpCopyUp": return [OpCode.TmpCopyUp, [op.root, op.target, op.flags, op.data]];
    case "scheduler": return [OpCode.Scheduler, [op.policy, op.flags, op.nice, op.priority, op.runtime, op.deadline, op.period]];
    case "ioPriority": return [OpCode.IoPriority, [op.ioprio]];
    case "runHook": return [OpCode.RunHook, [op.path, op.argv, op.env, op.state, op.timeout]];
    case "netlink": return [OpCode.Netlink, [op.netns, op.message, op.pidOffset, op.ifname, op.ifindexOffset, op.ignoreErrno]];
    case "monitor":
      return [OpCode.Monitor, [op.logPath, op.logMaxSize, op.logMaxFiles, op.exitFile, op.attachSocket, op.stdin ? 1 : 0]];
  }
}

function u32Array(values: number[]): Uint8Array {
  const out = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => out.writeUInt32LE(v >>> 0, i * 4));
  return out;
}

function encodeField(f: Field): Buffer {
  if (typeof f === "string") return Buffer.from(f + "\0", "utf8");
  if (Array.isArray(f)) return Buffer.from(f.map((s) => s + "\0").join(""), "utf8");
  if (f instanceof Uint8Array) return Buffer.from(f);
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(f)));
  return b;
}

/** The bytes sent to the helper: a u32 length prefix, then the plan. */
export function encodePlan(plan: Plan): Buffer {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(20);
  header.writeUInt32LE(PLAN_MAGIC, 4);
  header.writeUInt32LE(PLAN_VERSION, 8);
  header.writeUInt32LE(plan.flags, 12);
  header.writeUInt32LE(plan.ops.length, 16);
  parts.push(header);
  for (const op of plan.ops) {
    const [code, fields] = fieldsOf(op);
    const head = Buffer.alloc(8);
    head.writeUInt32LE(code, 0);
    head.writeUInt32LE(fields.length, 4);
    parts.push(head);
    for (const f of fields) {
      const bytes = encodeField(f);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(bytes.length, 0);
      parts.push(len, bytes);
    }
  }
  const out = Buffer.concat(parts);
  out.writeUInt32LE(out.length - 4, 0);
  return out;
}
