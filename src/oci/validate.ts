// config.json validation: types of every field Berth reads, then the rules runc enforces (its
// libcontainer/configs/validate and specconv), as small check functions, one per concern. Every error is
// one line that starts with the JSON path: `process.capabilities.bounding[2]: unknown capability "CAP_TEST"`.
// Unknown fields are ignored, as the runtime-spec requires. `null` for an optional field means "absent",
// as it does for runc's Go decoder.

import { readFileSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { BerthError, errnoName } from "../errors.js";
import { capabilityMask } from "../core/capabilities.js";
import { rlimitNumber, rlimitValue } from "../core/rlimits.js";
import { MS_BIND, parseMountOptions, PROPAGATION_FLAGS } from "./mount-options.js";
import type { Namespace, NamespaceType, Spec } from "./spec.js";

export const SUPPORTED_OCI_VERSIONS = "1.x";

const NAMESPACE_TYPES: readonly NamespaceType[] = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"];

/** The name the kernel uses in /proc/<pid>/ns/ links ("net:[4026531840]") for each config.json type. */
export const KERNEL_NAMESPACE_NAMES: Readonly<Record<NamespaceType, string>> = {
  pid: "pid",
  network: "net",
  mount: "mnt",
  ipc: "ipc",
  uts: "uts",
  user: "user",
  cgroup: "cgroup",
  time: "time",
};

export const SECCOMP_ACTIONS: readonly string[] = [
  "SCMP_ACT_KILL",
  "SCMP_ACT_KILL_PROCESS",
  "SCMP_ACT_KILL_THREAD",
  "SCMP_ACT_TRAP",
  "SCMP_ACT_ERRNO",
  "SCMP_ACT_TRACE",
  "SCMP_ACT_ALLOW",
  "SCMP_ACT_LOG",
  "SCMP_ACT_NOTIFY",
];
export const SECCOMP_OPERATORS: readonly string[] = [
  "SCMP_CMP_NE",
  "SCMP_CMP_LT",
  "SCMP_CMP_LE",
  "SCMP_CMP_EQ",
  "SCMP_CMP_GE",
  "SCMP_CMP_GT",
  "SCMP_CMP_MASKED_EQ",
];
export const SECCOMP_ARCHES: readonly string[] = [
  "SCMP_ARCH_X86",
  "SCMP_ARCH_X86_64",
  "SCMP_ARCH_X32",
  "SCMP_ARCH_ARM",
  "SCMP_ARCH_AARCH64",
  "SCMP_ARCH_MIPS",
  "SCMP_ARCH_MIPS64",
  "SCMP_ARCH_MIPS64N32",
  "SCMP_ARCH_MIPSEL",
  "SCMP_ARCH_MIPSEL64",
  "SCMP_ARCH_MIPSEL64N32",
  "SCMP_ARCH_PPC",
  "SCMP_ARCH_PPC64",
  "SCMP_ARCH_PPC64LE",
  "SCMP_ARCH_S390",
  "SCMP_ARCH_S390X",
  "SCMP_ARCH_PARISC",
  "SCMP_ARCH_PARISC64",
  "SCMP_ARCH_RISCV64",
  "SCMP_ARCH_LOONGARCH64",
  "SCMP_ARCH_M68K",
  "SCMP_ARCH_SH",
  "SCMP_ARCH_SHEB",
];
export const SECCOMP_FLAGS: readonly string[] = [
  "SECCOMP_FILTER_FLAG_TSYNC",
  "SECCOMP_FILTER_FLAG_LOG",
  "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
  "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];
const SCHED_POLICIES = ["SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE", "SCHED_DEADLINE"];
const SCHED_FLAGS = [
  "SCHED_FLAG_RESET_ON_FORK",
  "SCHED_FLAG_RECLAIM",
  "SCHED_FLAG_DL_OVERRUN",
  "SCHED_FLAG_KEEP_POLICY",
  "SCHED_FLAG_KEEP_PARAMS",
  "SCHED_FLAG_UTIL_CLAMP_MIN",
  "SCHED_FLAG_UTIL_CLAMP_MAX",
];
const IOPRIO_CLASSES = ["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"];
const HOOK_KINDS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] as const;

// ---- primitive checks ------------------------------------------------------------------------------

type Obj = Record<string, unknown>;

function fail(path: string, message: string): never {
  throw new BerthError(`${path}: ${message}`, { exitCode: 1 });
}

function kind(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}

function at(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/** Path of a map entry whose key may hold dots: `linux.sysctl["net.ipv4.ip_forward"]`. */
function entry(path: string, key: string): string {
  return `${path}[${JSON.stringify(key)}]`;
}

function obj(v: unknown, path: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(path, `must be an object, got ${kind(v)}`);
  return v as Obj;
}

function str(v: unknown, path: string): string {
  if (typeof v !== "string") fail(path, `must be a string, got ${kind(v)}`);
  // Strings travel to the helper NUL-terminated: an embedded NUL would silently cut them.
  if (v.includes("\0")) fail(path, "must not contain a NUL byte");
  return v;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== "boolean") fail(path, `must be a boolean, got ${kind(v)}`);
  return v;
}

// Integer ranges of the Go types. 2^63-1 and 2^64-1 round to 2^63 and 2^64 as doubles, hence the bounds.
type Range = readonly [number, number, string];
const U16: Range = [0, 0xffff, "an integer from 0 to 65535"];
const U32: Range = [0, 0xffffffff, "an integer from 0 to 4294967295"];
const I32: Range = [-(2 ** 31), 2 ** 31 - 1, "a 32-bit integer"];
const I64: Range = [-(2 ** 63), 2 ** 63, "a 64-bit integer"];
const U64: Range = [0, 2 ** 64, "a non-negative integer"];

function int(v: unknown, path: string, range: Range): number {
  if (typeof v !== "number" || !Number.isInteger(v)) fail(path, `must be ${range[2]}, got ${typeof v === "number" ? v : kind(v)}`);
  if (v < range[0] || v > range[1]) fail(path, `must be ${range[2]}, got ${v}`);
  return v;
}

function arr(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) fail(path, `must be an array, got ${kind(v)}`);
  return v;
}

function strArr(v: unknown, path: string): string[] {
  return arr(v, path).map((s, i) => str(s, `${path}[${i}]`));
}

function strMap(v: unknown, path: string): Record<string, string> {
  const o = obj(v, path);
  for (const [k, val] of Object.entries(o)) str(val, entry(path, k));
  return o as Record<string, string>;
}

function absPath(v: unknown, path: string): string {
  const s = str(v, path);
  if (!s.startsWith("/")) fail(path, `must be an absolute path, got ${JSON.stringify(s)}`);
  return s;
}

function oneOf(v: unknown, path: string, allowed: readonly string[], what: string): string {
  const s = str(v, path);
  if (!allowed.includes(s)) fail(path, `unknown ${what} ${JSON.stringify(s)} (known: ${allowed.join(", ")})`);
  return s;
}

/** Reads an optional field: null counts as absent (and is removed, so the result matches the types). */
function opt<T>(o: Obj, key: string, path: string, check: (v: unknown, path: string) => T): T | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (v === null) {
    delete o[key];
    return undefined;
  }
  return check(v, at(path, key));
}

function req<T>(o: Obj, key: string, path: string, check: (v: unknown, path: string) => T): T {
  const v = o[key];
  if (v === undefined || v === null) fail(at(path, key), "required");
  return check(v, at(path, key));
}

const optInt = (o: Obj, key: string, path: string, range: Range) => opt(o, key, path, (v, p) => int(v, p, range));

/** A cpuset list: "0-3,7" (cgroup cpuset.cpus / sched_setaffinity). Empty means unset. */
export function isCpuList(s: string): boolean {
  if (s === "") return true;
  return s.split(",").every((part) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    return m !== null && (m[2] === undefined || Number(m[1]) <= Number(m[2]));
  });
}

function cpuList(v: unknown, path: string): string {
  const s = str(v, path);
  if (!isCpuList(s)) fail(path, `invalid CPU list ${JSON.stringify(s)} (want a list like "0-3,7")`);
  return s;
}

// ---- ociVersion ------------------------------------------------------------------------------------

function checkVersion(spec: Obj): void {
  const v = req(spec, "ociVersion", "", str);
  const m = /^(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/.exec(v);
  if (!m) fail("ociVersion", `${JSON.stringify(v)} is not a semantic version (berth-oci supports ${SUPPORTED_OCI_VERSIONS})`);
  // Within a major version the spec only adds (optional) fields, which are ignored as unknown fields are:
  // only another major version means a config this runtime can't read.
  if (Number(m[1]) !== 1) {
    fail("ociVersion", `unsupported version ${JSON.stringify(v)} (berth-oci supports ${SUPPORTED_OCI_VERSIONS})`);
  }
}

// ---- root ------------------------------------------------------------------------------------------

function checkRoot(spec: Obj): void {
  const root = req(spec, "root", "", obj);
  const path = req(root, "path", "root", str);
  if (path === "") fail("root.path", "required");
  opt(root, "readonly", "root", bool);
}

// ---- process ---------------------------------------------------------------------------------------

function checkUser(process: Obj): void {
  const user = req(process, "user", "process", obj);
  const p = "process.user";
  req(user, "uid", p, (v, q) => int(v, q, U32));
  req(user, "gid", p, (v, q) => int(v, q, U32));
  optInt(user, "umask", p, U32);
  opt(user, "additionalGids", p, (v, q) => arr(v, q).map((g, i) => int(g, `${q}[${i}]`, U32)));
  opt(user, "username", p, str);
}

function checkArgsEnvCwd(process: Obj): void {
  const args = opt(process, "args", "process", strArr);
  if (args === undefined || args.length === 0) fail("process.args", "must have at least one element");
  if (args[0] === "") fail("process.args[0]", "must not be empty");
  opt(process, "env", "process", (v, p) =>
    strArr(v, p).forEach((e, i) => {
      // runc refuses these too: there is no name to set.
      if (e.indexOf("=") <= 0) fail(`${p}[${i}]`, `invalid environment variable ${JSON.stringify(e)} (want NAME=value)`);
    }),
  );
  req(process, "cwd", "process", absPath);
}

function checkCapabilities(process: Obj): void {
  const caps = opt(process, "capabilities", "process", obj);
  if (!caps) return;
  for (const set of ["bounding", "effective", "inheritable", "permitted", "ambient"]) {
    opt(caps, set, "process.capabilities", (v, p) => capabilityMask(strArr(v, p), p));
  }
}

function checkRlimits(process: Obj): void {
  const list = opt(process, "rlimits", "process", arr);
  if (!list) return;
  const seen = new Set<string>();
  list.forEach((item, i) => {
    const p = `process.rlimits[${i}]`;
    const r = obj(item, p);
    const type = req(r, "type", p, str);
    if (rlimitNumber(type) === undefined) fail(`${p}.type`, `unknown rlimit ${JSON.stringify(type)}`);
    if (seen.has(type)) fail(`${p}.type`, `duplicate rlimit ${JSON.stringify(type)}`);
    seen.add(type);
    const soft = req(r, "soft", p, (v, q) => int(v, q, U64));
    const hard = req(r, "hard", p, (v, q) => int(v, q, U64));
    if (rlimitValue(soft) > rlimitValue(hard)) fail(p, `soft limit ${soft} is greater than hard limit ${hard}`);
  });
}

function checkScheduler(process: Obj): void {
  const s = opt(process, "scheduler", "process", obj);
  if (!s) return;
  const p = "process.scheduler";
  const policy = req(s, "policy", p, (v, q) => oneOf(v, q, SCHED_POLICIES, "scheduler policy"));
  const nice = optInt(s, "nice", p, I32);
  if (nice !== undefined && (nice < -20 || nice > 19)) fail(`${p}.nice`, `must be from -20 to 19, got ${nice}`);
  const priority = optInt(s, "priority", p, I32);
  opt(s, "flags", p, (v, q) => strArr(v, q).forEach((f, i) => oneOf(f, `${q}[${i}]`, SCHED_FLAGS, "scheduler flag")));
  const runtime = optInt(s, "runtime", p, U64);
  const deadline = optInt(s, "deadline", p, U64);
  const period = optInt(s, "period", p, U64);
  // sched_setattr(2)'s rules, as runc checks them.
  if (priority && policy !== "SCHED_FIFO" && policy !== "SCHED_RR") {
    fail(`${p}.priority`, `only applies to SCHED_FIFO and SCHED_RR, not ${policy}`);
  }
  if (policy !== "SCHED_DEADLINE" && (runtime || deadline || period)) {
    fail(p, `runtime, deadline and period only apply to SCHED_DEADLINE, not ${policy}`);
  }
}

function checkProcess(spec: Obj): void {
  const process = opt(spec, "process", "", obj);
  if (!process) return;
  const p = "process";
  opt(process, "terminal", p, bool);
  opt(process, "consoleSize", p, (v, q) => {
    const c = obj(v, q);
    req(c, "height", q, (x, r) => int(x, r, U32));
    req(c, "width", q, (x, r) => int(x, r, U32));
  });
  checkUser(process);
  checkArgsEnvCwd(process);
  opt(process, "commandLine", p, str);
  checkCapabilities(process);
  checkRlimits(process);
  opt(process, "noNewPrivileges", p, bool);
  opt(process, "apparmorProfile", p, str);
  const oom = optInt(process, "oomScoreAdj", p, I32);
  if (oom !== undefined && (oom < -1000 || oom > 1000)) fail("process.oomScoreAdj", `must be from -1000 to 1000, got ${oom}`);
  opt(process, "selinuxLabel", p, str);
  opt(process, "ioPriority", p, (v, q) => {
    const io = obj(v, q);
    req(io, "class", q, (x, r) => oneOf(x, r, IOPRIO_CLASSES, "I/O priority class"));
    const prio = req(io, "priority", q, (x, r) => int(x, r, I32));
    if (prio < 0 || prio > 7) fail(`${q}.priority`, `must be from 0 to 7, got ${prio}`);
  });
  checkScheduler(process);
  opt(process, "execCPUAffinity", p, (v, q) => {
    const a = obj(v, q);
    opt(a, "initial", q, cpuList);
    opt(a, "final", q, cpuList);
  });
}

// ---- mounts ----------------------------------------------------------------------------------------

function idMappings(v: unknown, path: string): void {
  arr(v, path).forEach((item, i) => {
    const p = `${path}[${i}]`;
    const m = obj(item, p);
    req(m, "containerID", p, (x, q) => int(x, q, U32));
    req(m, "hostID", p, (x, q) => int(x, q, U32));
    const size = req(m, "size", p, (x, q) => int(x, q, U32));
    if (size === 0) fail(`${p}.size`, "must be greater than 0");
  });
}

/**
 * A mount destination as an absolute path inside the container. OCI 1.0 allowed relative destinations;
 * runc takes them relative to the rootfs, i.e. to "/".
 */
export function mountDestination(destination: string): string {
  return destination.startsWith("/") ? destination : `/${destination}`;
}

function checkMounts(spec: Obj): void {
  const mounts = opt(spec, "mounts", "", arr);
  if (!mounts) return;
  mounts.forEach((item, i) => {
    const p = `mounts[${i}]`;
    const m = obj(item, p);
    const dest = req(m, "destination", p, str);
    if (dest === "") fail(`${p}.destination`, "must not be empty");
    const source = opt(m, "source", p, str);
    opt(m, "type", p, str);
    const options = opt(m, "options", p, strArr) ?? [];
    options.forEach((o, j) => {
      if (o === "") fail(`${p}.options[${j}]`, "must not be empty");
    });
    const parsed = parseMountOptions(options);
    const bind = (parsed.flags & MS_BIND) !== 0;
    if (bind && !source) fail(`${p}.source`, "required for a bind mount");
    opt(m, "uidMappings", p, idMappings);
    opt(m, "gidMappings", p, idMappings);
    const hasUid = m.uidMappings !== undefined;
    const hasGid = m.gidMappings !== undefined;
    if (hasUid !== hasGid) fail(p, "uidMappings and gidMappings must be given together");
    if ((hasUid || parsed.idmap) && !bind) fail(p, 'an idmapped mount needs the "bind" or "rbind" option');
  });
}

// ---- hooks and annotations -------------------------------------------------------------------------

function checkHooks(spec: Obj): void {
  const hooks = opt(spec, "hooks", "", obj);
  if (!hooks) return;
  for (const k of HOOK_KINDS) {
    opt(hooks, k, "hooks", (v, path) =>
      arr(v, path).forEach((item, i) => {
        const p = `${path}[${i}]`;
        const h = obj(item, p);
        req(h, "path", p, absPath);
        opt(h, "args", p, strArr);
        opt(h, "env", p, strArr);
        const timeout = optInt(h, "timeout", p, I64);
        if (timeout !== undefined && timeout <= 0) fail(`${p}.timeout`, `must be greater than 0, got ${timeout}`);
      }),
    );
  }
}

// ---- linux -----------------------------------------------------------------------------------------

/** config.json namespace type -> the entry (path undefined = a new namespace). */
type NsMap = Map<NamespaceType, Namespace>;

function checkNamespaces(linux: Obj): NsMap {
  const map: NsMap = new Map();
  opt(linux, "namespaces", "linux", (v, path) =>
    arr(v, path).forEach((item, i) => {
      const p = `${path}[${i}]`;
      const ns = obj(item, p);
      const type = req(ns, "type", p, (x, q) => oneOf(x, q, NAMESPACE_TYPES, "namespace type")) as NamespaceType;
      if (map.has(type)) fail(`${p}.type`, `duplicate namespace ${JSON.stringify(type)}`);
      const nsPath = opt(ns, "path", p, absPath);
      map.set(type, { type, path: nsPath });
    }),
  );
  return map;
}

function checkUserMappings(linux: Obj, ns: NsMap): void {
  opt(linux, "uidMappings", "linux", idMappings);
  opt(linux, "gidMappings", "linux", idMappings);
  const user = ns.get("user");
  for (const key of ["uidMappings", "gidMappings"]) {
    const list = linux[key] as unknown[] | undefined;
    if (!user) {
      if (list !== undefined) fail(`linux.${key}`, 'set, but there is no "user" entry in linux.namespaces');
    } else if (user.path === undefined && (list === undefined || list.length === 0)) {
      // Joining a user namespace takes its mappings; a new one has none until we write them.
      fail(`linux.${key}`, "required with a new user namespace");
    }
  }
}

function checkDevices(linux: Obj): void {
  opt(linux, "devices", "linux", (v, path) =>
    arr(v, path).forEach((item, i) => {
      const p = `${path}[${i}]`;
      const d = obj(item, p);
      const type = req(d, "type", p, (x, q) => oneOf(x, q, ["c", "b", "u", "p"], "device type"));
      req(d, "path", p, absPath);
      // A FIFO has no device number; the others do.
      const major = optInt(d, "major", p, I64);
      const minor = optInt(d, "minor", p, I64);
      if (type !== "p") {
        if (major === undefined) fail(`${p}.major`, `required for a device of type "${type}"`);
        if (minor === undefined) fail(`${p}.minor`, `required for a device of type "${type}"`);
      }
      optInt(d, "fileMode", p, U32);
      optInt(d, "uid", p, U32);
      optInt(d, "gid", p, U32);
    }),
  );
}

export type CgroupsPath =
  | { kind: "systemd"; slice: string; prefix: string; name: string }
  | { kind: "path"; path: string };

/**
 * linux.cgroupsPath in either form runc accepts: "slice:prefix:name" (systemd driver) or a path
 * ("/a/b" from the cgroup root, "a/b" relative to the runtime's own cgroup). Throws on a malformed one.
 */
export function parseCgroupsPath(value: string, path = "linux.cgroupsPath"): CgroupsPath {
  if (value.includes(":")) {
    const parts = value.split(":");
    if (parts.length !== 3) fail(path, `${JSON.stringify(value)} must be "slice:prefix:name" for systemd or a path for cgroupfs`);
    const [slice, prefix, name] = parts;
    if (slice !== "" && !slice.endsWith(".slice")) fail(path, `${JSON.stringify(slice)} is not a systemd slice (must end in ".slice")`);
    if (name === "") fail(path, `${JSON.stringify(value)} has an empty name`);
    if (parts.some((s) => s.includes("/"))) fail(path, `${JSON.stringify(value)}: systemd names must not contain "/"`);
    return { kind: "systemd", slice, prefix, name };
  }
  return { kind: "path", path: value };
}

function checkResources(linux: Obj): void {
  const r = opt(linux, "resources", "linux", obj);
  if (!r) return;
  const P = "linux.resources";
  opt(r, "devices", P, (v, path) =>
    arr(v, path).forEach((item, i) => {
      const p = `${path}[${i}]`;
      const d = obj(item, p);
      req(d, "allow", p, bool);
      opt(d, "type", p, (x, q) => oneOf(x, q, ["a", "b", "c"], "device type"));
      // null means "any", like absent; keep it (the types allow it).
      if (d.major !== null) optInt(d, "major", p, I64);
      if (d.minor !== null) optInt(d, "minor", p, I64);
      const access = req(d, "access", p, str);
      if (!/^[rwm]+$/.test(access)) fail(`${p}.access`, `must be a combination of "r", "w" and "m", got ${JSON.stringify(access)}`);
    }),
  );
  opt(r, "memory", P, (v, p) => {
    const m = obj(v, p);
    const atLeastMinusOne = (key: string) => {
      const n = optInt(m, key, p, I64);
      if (n !== undefined && n < -1) fail(`${p}.${key}`, `must be -1 (unlimited) or a byte count, got ${n}`);
      return n;
    };
    const limit = atLeastMinusOne("limit");
    atLeastMinusOne("reservation");
    const swap = atLeastMinusOne("swap");
    optInt(m, "kernel", p, I64);
    optInt(m, "kernelTCP", p, I64);
    const swappiness = optInt(m, "swappiness", p, U64);
    if (swappiness !== undefined && swappiness > 100) fail(`${p}.swappiness`, `must be from 0 to 100, got ${swappiness}`);
    for (const k of ["disableOOMKiller", "useHierarchy", "checkBeforeUpdate"]) opt(m, k, p, bool);
    // OCI's swap is memory+swap (cgroup v1 memsw), so it cannot be below the memory limit.
    if (limit !== undefined && swap !== undefined && limit > 0 && swap > 0 && swap < limit) {
      fail(`${p}.swap`, `${swap} is less than memory.limit ${limit} (swap is the memory+swap total)`);
    }
  });
  opt(r, "cpu", P, (v, p) => {
    const c = obj(v, p);
    optInt(c, "shares", p, U64);
    optInt(c, "quota", p, I64);
    optInt(c, "burst", p, U64);
    optInt(c, "period", p, U64);
    optInt(c, "realtimeRuntime", p, I64);
    optInt(c, "realtimePeriod", p, U64);
    opt(c, "cpus", p, cpuList);
    opt(c, "mems", p, cpuList);
    optInt(c, "idle", p, I64);
  });
  opt(r, "pids", P, (v, p) => req(obj(v, p), "limit", p, (x, q) => int(x, q, I64)));
  opt(r, "blockIO", P, (v, p) => {
    const b = obj(v, p);
    optInt(b, "weight", p, U16);
    optInt(b, "leafWeight", p, U16);
    const device = (item: unknown, q: string): Obj => {
      const d = obj(item, q);
      req(d, "major", q, (x, s) => int(x, s, I64));
      req(d, "minor", q, (x, s) => int(x, s, I64));
      return d;
    };
    opt(b, "weightDevice", p, (x, q) =>
      arr(x, q).forEach((item, i) => {
        const d = device(item, `${q}[${i}]`);
        optInt(d, "weight", `${q}[${i}]`, U16);
        optInt(d, "leafWeight", `${q}[${i}]`, U16);
      }),
    );
    for (const k of ["throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"]) {
      opt(b, k, p, (x, q) =>
        arr(x, q).forEach((item, i) => req(device(item, `${q}[${i}]`), "rate", `${q}[${i}]`, (y, s) => int(y, s, U64))),
      );
    }
  });
  opt(r, "hugepageLimits", P, (v, path) =>
    arr(v, path).forEach((item, i) => {
      const p = `${path}[${i}]`;
      const h = obj(item, p);
      const size = req(h, "pageSize", p, str);
      if (!/^\d+(KB|MB|GB|TB|PB)$/.test(size)) fail(`${p}.pageSize`, `invalid page size ${JSON.stringify(size)} (want e.g. "2MB", "1GB")`);
      req(h, "limit", p, (x, q) => int(x, q, U64));
    }),
  );
  opt(r, "network", P, (v, p) => {
    const n = obj(v, p);
    optInt(n, "classID", p, U32);
    opt(n, "priorities", p, (x, q) =>
      arr(x, q).forEach((item, i) => {
        const e = obj(item, `${q}[${i}]`);
        req(e, "name", `${q}[${i}]`, str);
        req(e, "priority", `${q}[${i}]`, (y, s) => int(y, s, U32));
      }),
    );
  });
  opt(r, "rdma", P, (v, p) => {
    for (const [dev, limits] of Object.entries(obj(v, p))) {
      const l = obj(limits, entry(p, dev));
      optInt(l, "hcaHandles", entry(p, dev), U32);
      optInt(l, "hcaObjects", entry(p, dev), U32);
    }
  });
  opt(r, "unified", P, (v, p) => {
    for (const key of Object.keys(strMap(v, p))) {
      // Each key is a file in the container's cgroup directory: no way out of it.
      if (key === "" || key.includes("/") || key === "." || key === "..") fail(entry(p, key), "must be a cgroup file name (no slashes)");
    }
  });
}

function checkSeccomp(linux: Obj): void {
  const s = opt(linux, "seccomp", "linux", obj);
  if (!s) return;
  const P = "linux.seccomp";
  const action = (v: unknown, p: string) => oneOf(v, p, SECCOMP_ACTIONS, "seccomp action");
  const def = req(s, "defaultAction", P, action);
  // The notify listener would have to answer every syscall, including the ones runc itself still makes.
  if (def === "SCMP_ACT_NOTIFY") fail(`${P}.defaultAction`, "SCMP_ACT_NOTIFY cannot be the default action");
  optInt(s, "defaultErrnoRet", P, U32);
  opt(s, "architectures", P, (v, p) => strArr(v, p).forEach((a, i) => oneOf(a, `${p}[${i}]`, SECCOMP_ARCHES, "seccomp architecture")));
  opt(s, "flags", P, (v, p) => strArr(v, p).forEach((f, i) => oneOf(f, `${p}[${i}]`, SECCOMP_FLAGS, "seccomp flag")));
  const listener = opt(s, "listenerPath", P, str);
  opt(s, "listenerMetadata", P, str);
  let notify = false;
  opt(s, "syscalls", P, (v, path) =>
    arr(v, path).forEach((item, i) => {
      const p = `${path}[${i}]`;
      const sc = obj(item, p);
      const names = req(sc, "names", p, strArr);
      if (names.length === 0) fail(`${p}.names`, "must have at least one element");
      names.forEach((n, j) => {
        if (n === "") fail(`${p}.names[${j}]`, "must not be empty");
      });
      if (req(sc, "action", p, action) === "SCMP_ACT_NOTIFY") notify = true;
      optInt(sc, "errnoRet", p, U32);
      opt(sc, "args", p, (x, q) =>
        arr(x, q).forEach((a, j) => {
          const ap = `${q}[${j}]`;
          const arg = obj(a, ap);
          const index = req(arg, "index", ap, (y, r) => int(y, r, U32));
          if (index > 5) fail(`${ap}.index`, `must be from 0 to 5 (a syscall has 6 arguments), got ${index}`);
          req(arg, "value", ap, (y, r) => int(y, r, U64));
          optInt(arg, "valueTwo", ap, U64);
          req(arg, "op", ap, (y, r) => oneOf(y, r, SECCOMP_OPERATORS, "seccomp operator"));
        }),
      );
    }),
  );
  if (notify && !listener) fail(`${P}.listenerPath`, "required when an action is SCMP_ACT_NOTIFY");
}

// Sysctls in a namespace the container can own (runc's validate.sysctl). ipc: the SysV IPC and mqueue ones.
function sysctlNamespace(name: string): NamespaceType | undefined {
  // sysctl(8) allows "/" as the separator; "net/ipv4/conf/eth0.100/rp_filter" is "net.ipv4.conf.eth0/100.rp_filter".
  const first = name.search(/[./]/);
  const s = first >= 0 && name[first] === "/" ? name.replace(/[./]/g, (c) => (c === "/" ? "." : "/")) : name;
  if (/^kernel\.(msg|sem|shm)/.test(s) || s.startsWith("fs.mqueue.")) return "ipc";
  if (s.startsWith("net.")) return "network";
  if (s === "kernel.hostname" || s === "kernel.domainname") return "uts";
  return undefined;
}

function checkSysctl(linux: Obj, ns: NsMap): void {
  const sysctl = opt(linux, "sysctl", "linux", strMap);
  if (!sysctl) return;
  for (const name of Object.keys(sysctl)) {
    const p = entry("linux.sysctl", name);
    const need = sysctlNamespace(name);
    if (need === undefined) fail(p, "is not in a separate kernel namespace, so a container cannot set it");
    // A joined network namespace may still be the host's; checkNamespacePaths looks at that.
    if (!ns.has(need)) fail(p, `needs its own ${need} namespace (no "${need}" entry in linux.namespaces)`);
  }
}

function checkPathLists(linux: Obj, ns: NsMap): void {
  for (const key of ["maskedPaths", "readonlyPaths"]) {
    const list = opt(linux, key, "linux", (v, p) => arr(v, p).map((x, i) => absPath(x, `${p}[${i}]`)));
    // These mount over /proc and /sys entries: without a mount namespace that would hit the host's.
    if (list && list.length > 0 && !ns.has("mount")) fail(`linux.${key}`, 'needs its own mount namespace (no "mount" entry in linux.namespaces)');
  }
}

function checkLinuxMisc(linux: Obj, ns: NsMap): void {
  opt(linux, "cgroupsPath", "linux", (v, p) => parseCgroupsPath(str(v, p), p));
  opt(linux, "rootfsPropagation", "linux", (v, p) => {
    const s = str(v, p);
    if (s !== "") oneOf(s, p, Object.keys(PROPAGATION_FLAGS), "propagation");
  });
  opt(linux, "mountLabel", "linux", str);
  opt(linux, "personality", "linux", (v, p) => {
    const pers = obj(v, p);
    req(pers, "domain", p, (x, q) => oneOf(x, q, ["LINUX", "LINUX32"], "personality domain"));
    opt(pers, "flags", p, strArr);
  });
  opt(linux, "intelRdt", "linux", (v, p) => {
    const rdt = obj(v, p);
    const clos = opt(rdt, "closID", p, str);
    // closID names a directory under /sys/fs/resctrl.
    if (clos !== undefined && (clos === "." || clos === ".." || clos.includes("/"))) fail(`${p}.closID`, `invalid name ${JSON.stringify(clos)}`);
    opt(rdt, "l3CacheSchema", p, str);
    opt(rdt, "memBwSchema", p, str);
    opt(rdt, "schemata", p, strArr);
    opt(rdt, "enableCMT", p, bool);
    opt(rdt, "enableMBM", p, bool);
  });
  opt(linux, "timeOffsets", "linux", (v, p) => {
    const offsets = obj(v, p);
    for (const [clock, value] of Object.entries(offsets)) {
      const q = entry(p, clock);
      if (clock !== "boottime" && clock !== "monotonic") fail(q, 'unknown clock (known: boottime, monotonic)');
      const o = obj(value, q);
      optInt(o, "secs", q, I64);
      const ns = optInt(o, "nanosecs", q, U32);
      if (ns !== undefined && ns >= 1e9) fail(`${q}.nanosecs`, `must be less than 1000000000, got ${ns}`);
    }
    if (Object.keys(offsets).length > 0 && !ns.has("time")) fail(p, 'needs its own time namespace (no "time" entry in linux.namespaces)');
  });
}

function checkUts(spec: Obj, ns: NsMap): void {
  for (const key of ["hostname", "domainname"]) {
    const name = opt(spec, key, "", str);
    // As runc: any uts entry (new or joined) will do; without one we would rename the host.
    if (name && !ns.has("uts")) fail(key, 'needs its own uts namespace (no "uts" entry in linux.namespaces)');
  }
}

// ---- entry points ----------------------------------------------------------------------------------

/**
 * Checks a parsed config.json and returns it typed. Works on a copy: the argument is not changed.
 * Does not touch the filesystem (see checkNamespacePaths).
 */
export function validateSpec(input: unknown): Spec {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new BerthError(`config: must be a JSON object, got ${kind(input)}`, { exitCode: 1 });
  }
  const spec = structuredClone(input) as Obj;
  checkVersion(spec);
  checkRoot(spec);
  checkProcess(spec);
  checkMounts(spec);
  checkHooks(spec);
  opt(spec, "annotations", "", strMap);
  const linux = opt(spec, "linux", "", obj) ?? {};
  const ns = checkNamespaces(linux);
  checkUserMappings(linux, ns);
  checkDevices(linux);
  checkResources(linux);
  checkSeccomp(linux);
  checkSysctl(linux, ns);
  checkPathLists(linux, ns);
  checkLinuxMisc(linux, ns);
  checkUts(spec, ns);
  return spec as unknown as Spec;
}

/** Parses and validates config.json text; `file` names it in a syntax error. */
export function parseSpec(text: string, file: string): Spec {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // V8's messages differ by error kind and often lack a position: find it ourselves.
    const where = jsonSyntaxError(text) ?? { offset: 0, message: err instanceof Error ? err.message : String(err) };
    const { line, column } = lineColumn(text, where.offset);
    throw new BerthError(`${file}: invalid JSON at line ${line} column ${column}: ${where.message}`, { exitCode: 1, cause: err });
  }
  return validateSpec(value);
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - (before.lastIndexOf("\n") + 1) + 1 };
}

/** The first JSON syntax error in `text` (offset and a short message), or null if it is valid JSON. */
export function jsonSyntaxError(text: string): { offset: number; message: string } | null {
  let i = 0;
  class Stop {
    constructor(readonly offset: number, readonly message: string) {}
  }
  const found = () => (i >= text.length ? "end of input" : JSON.stringify(text[i]));
  function expected(what: string): never {
    throw new Stop(i, `expected ${what}, found ${found()}`);
  }
  const ws = () => {
    while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) i++;
  };
  const string = () => {
    i++; // opening quote
    for (;;) {
      if (i >= text.length) expected('a closing "');
      const c = text[i];
      if (c === '"') {
        i++;
        return;
      }
      if (c < " ") throw new Stop(i, `control character ${JSON.stringify(c)} in a string (escape it)`);
      if (c === "\\") {
        i++;
        if (i < text.length && '"\\/bfnrt'.includes(text[i])) i++;
        else if (text[i] === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) i += 5;
        else throw new Stop(i - 1, "invalid escape sequence in a string");
      } else i++;
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') expected("a double-quoted property name");
        string();
        ws();
        if (text[i] !== ":") expected('":"');
        i++;
        value();
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") {
          i++;
          return;
        } else expected('"," or "}"');
      }
    } else if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") {
          i++;
          return;
        } else expected('"," or "]"');
      }
    } else if (c === '"') {
      string();
    } else if (c === "-" || (c >= "0" && c <= "9")) {
      const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
      if (!m) expected("a digit");
      i += m[0].length;
    } else {
      for (const lit of ["true", "false", "null"]) {
        if (text.startsWith(lit, i)) {
          i += lit.length;
          return;
        }
      }
      expected("a value");
    }
  };
  try {
    value();
    ws();
    if (i < text.length) throw new Stop(i, `unexpected ${found()} after the end of the value`);
    return null;
  } catch (e) {
    if (e instanceof Stop) return { offset: e.offset, message: e.message };
    throw e;
  }
}

// ---- namespace paths (reads the filesystem) --------------------------------------------------------

/** What checkNamespacePaths reads; tests pass a fake. */
export interface NamespaceFs {
  readlink(path: string): string;
  realpath(path: string): string;
  readFile(path: string): string;
  /** "dev:ino" of the file (following symlinks). */
  identity(path: string): string;
}

export const realNamespaceFs: NamespaceFs = {
  readlink: (p) => readlinkSync(p),
  realpath: (p) => realpathSync(p),
  readFile: (p) => readFileSync(p, "utf8"),
  identity: (p) => {
    const st = statSync(p, { bigint: true });
    return `${st.dev}:${st.ino}`;
  },
};

/**
 * The namespace kind of `path` ("net", "mnt"...), from the /proc/<pid>/ns link text ("net:[4026531840]")
 * or, for a bind-mounted namespace file (ip netns's /run/netns/x), from the nsfs entry in mountinfo.
 * undefined if it is not a namespace.
 */
function namespaceKind(path: string, fs: NamespaceFs, depth = 0): string | undefined {
  let link: string | undefined;
  try {
    link = fs.readlink(path);
  } catch (err) {
    if (errnoName(err) !== "EINVAL") throw err; // EINVAL: exists but is not a symlink
  }
  const fromLink = link && /^([a-z_]+):\[\d+\]$/.exec(link);
  if (fromLink) return fromLink[1];
  if (link !== undefined) {
    // A symlink to somewhere else: judge its target (by hand, since realpath cannot pass through the
    // "net:[...]" pseudo-links). 40 hops, as the kernel's ELOOP limit.
    if (depth >= 40) return undefined;
    return namespaceKind(resolve(dirname(path), link), fs, depth + 1);
  }
  const real = fs.realpath(path);
  for (const line of fs.readFile("/proc/self/mountinfo").split("\n")) {
    // id parent major:minor root mountpoint options ... - fstype source superopts
    const fields = line.split(" ");
    const dash = fields.indexOf("-");
    if (dash < 0 || fields[dash + 1] !== "nsfs") continue;
    const mountPoint = fields[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const m = /^([a-z_]+):\[\d+\]$/.exec(fields[3]);
    if (mountPoint === real && m) return m[1];
  }
  return undefined;
}

/**
 * Checks every linux.namespaces[].path: it exists and is a namespace of that type. Also refuses net.*
 * sysctls when the joined network namespace is the runtime's own (runc's isHostNetNS).
 */
export function checkNamespacePaths(spec: Spec, fs: NamespaceFs = realNamespaceFs): void {
  const list = spec.linux?.namespaces ?? [];
  list.forEach((ns, i) => {
    if (ns.path === undefined) return;
    const p = `linux.namespaces[${i}].path`;
    let got: string | undefined;
    try {
      got = namespaceKind(ns.path, fs);
    } catch (err) {
      const code = errnoName(err);
      if (code === "ENOENT") fail(p, `${JSON.stringify(ns.path)} does not exist`);
      fail(p, `cannot read ${JSON.stringify(ns.path)}: ${code ?? String(err)}`);
    }
    const want = KERNEL_NAMESPACE_NAMES[ns.type];
    if (got === undefined) fail(p, `${JSON.stringify(ns.path)} is not a namespace file`);
    if (got !== want) fail(p, `${JSON.stringify(ns.path)} is a ${got} namespace, not ${want}`);
  });
  const net = list.find((ns) => ns.type === "network");
  const netSysctl = Object.keys(spec.linux?.sysctl ?? {}).find((k) => sysctlNamespace(k) === "network");
  if (net?.path !== undefined && netSysctl !== undefined) {
    if (fs.identity(net.path) === fs.identity("/proc/self/ns/net")) {
      fail(entry("linux.sysctl", netSysctl), "not allowed in the host's network namespace");
    }
  }
}
