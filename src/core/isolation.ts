// docker's namespace, sysctl, ulimit, device and security options: parsing and the checks that refuse
// what a container can't be given, with docker's words where docker has them. Pure: host facts (the
// runtime's own rlimits, CPU count, a device's numbers) are passed in. Every option here is either
// applied (run-spec.ts) or refused; none is dropped.

import { BerthError } from "../errors.js";
import { DOCKER_ULIMITS, RLIM_INFINITY_NUMBER } from "./rlimits.js";

/** A namespace's mode: a new one, the host's, or one joined by path (another container's). */
export type NamespaceMode = "private" | "host" | { path: string };

/**
 * docker's --pid/--ipc/--uts/--cgroupns value: "" (default), private (ipc: also shareable), host,
 * container:NAME (pid and ipc only). Returns the mode, or { container: NAME } to be resolved by the caller.
 */
export function parseNamespaceMode(flag: "pid" | "ipc" | "uts" | "cgroupns", value: string): "private" | "host" | { container: string } {
  if (value === "" || value === "private" || (flag === "ipc" && value === "shareable")) return "private";
  if (value === "host") return "host";
  if (flag === "ipc" && value.startsWith("container:")) {
    // Joining the IPC namespace alone would share System V IPC but not the other container's /dev/shm
    // (POSIX shared memory), which lives in its mount namespace and can't be bind-mounted from another.
    throw new BerthError(`--ipc ${value} is not supported: Berth can't share the other container's /dev/shm (use --ipc host, or run both in one container)`);
  }
  if (flag === "pid" && value.startsWith("container:") && value.length > "container:".length) {
    return { container: value.slice("container:".length) };
  }
  const allowed = flag === "pid" ? "host or container:NAME" : flag === "ipc" ? "private, shareable or host" : flag === "uts" ? "host" : "private or host";
  throw new BerthError(`invalid --${flag} mode "${value}": use ${allowed}`);
}

/**
 * docker's --security-opt entries. Berth applies seccomp=unconfined, no-new-privileges and
 * systempaths=unconfined; apparmor and label options are accepted only where they ask for nothing
 * (this host has neither LSM). Anything else is refused rather than ignored.
 */
export function parseSecurityOpts(opts: readonly string[]): { seccompUnconfined: boolean; noNewPrivileges?: boolean; systemPathsUnconfined: boolean } {
  const out: { seccompUnconfined: boolean; noNewPrivileges?: boolean; systemPathsUnconfined: boolean } = { seccompUnconfined: false, systemPathsUnconfined: false };
  for (const opt of opts) {
    if (opt === "no-new-privileges") { out.noNewPrivileges = true; continue; }
    if (opt === "disable") continue; // label=disable's old form: no labels, which is what Berth does
    const sep = opt.includes("=") ? "=" : opt.includes(":") ? ":" : undefined;
    if (sep === undefined) throw new BerthError(`invalid --security-opt: ${JSON.stringify(opt)}`);
    const key = opt.slice(0, opt.indexOf(sep));
    const value = opt.slice(opt.indexOf(sep) + 1);
    switch (key) {
      case "seccomp":
        if (value !== "unconfined") throw new BerthError(`invalid --security-opt ${JSON.stringify(opt)}: Berth applies docker's default seccomp profile or none (seccomp=unconfined); custom profiles are not supported`);
        out.seccompUnconfined = true;
        break;
      case "no-new-privileges":
        if (!["true", "false", "1", "0"].includes(value)) throw new BerthError(`invalid --security-opt: ${JSON.stringify(opt)}`);
        out.noNewPrivileges = value === "true" || value === "1";
        break;
      case "systempaths":
        if (value !== "unconfined") throw new BerthError(`invalid --security-opt: ${JSON.stringify(opt)}`);
        out.systemPathsUnconfined = true;
        break;
      case "apparmor":
        if (value !== "unconfined") throw new BerthError(`invalid --security-opt ${JSON.stringify(opt)}: Berth does not apply AppArmor profiles (only apparmor=unconfined is accepted)`);
        break;
      case "label":
        if (value !== "disable") throw new BerthError(`invalid --security-opt ${JSON.stringify(opt)}: Berth does not apply SELinux labels (only label=disable is accepted)`);
        break;
      default:
        throw new BerthError(`invalid --security-opt: ${JSON.stringify(opt)}`);
    }
  }
  return out;
}

const IPC_SYSCTLS = new Set(["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"]);

/**
 * docker's rule (opts.ValidateSysctl + the daemon's namespace checks): only namespaced sysctls, and only
 * when the container has its own namespace of that kind (writing them otherwise changes the host's, or
 * another container's).
 */
export function checkSysctls(sysctls: Record<string, string>, ns: { privateNet: boolean; privateIpc: boolean }): void {
  for (const [key, value] of Object.entries(sysctls)) {
    if (!/^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$/.test(key) || key.includes("..")) throw new BerthError(`invalid sysctl name "${key}"`);
    if (/[\n\0]/.test(value)) throw new BerthError(`invalid value for sysctl ${key}: it may not contain a newline`);
    if (IPC_SYSCTLS.has(key) || key.startsWith("fs.mqueue.")) {
      if (!ns.privateIpc) throw new BerthError(`sysctl "${key}" is not allowed when the container shares an IPC namespace (--ipc host or container:)`);
    } else if (key.startsWith("net.")) {
      if (!ns.privateNet) throw new BerthError(`sysctl "${key}" is not allowed when the container does not have its own network namespace (--network host or container:)`);
    } else {
      throw new BerthError(`sysctl "${key}" is not allowed: it is not namespaced, so it would change the host (allowed: net.*, kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*)`);
    }
  }
}

/** docker's Ulimits entry ({Name: "nofile", Soft, Hard}) -> a config.json rlimit; -1 is unlimited. */
export function ulimitRlimit(u: { Name: string; Soft: number; Hard: number }): { type: string; soft: number; hard: number } {
  const type = Object.prototype.hasOwnProperty.call(DOCKER_ULIMITS, u.Name) ? DOCKER_ULIMITS[u.Name] : undefined;
  if (type === undefined) throw new BerthError(`invalid ulimit type: ${u.Name}`);
  const value = (v: number) => (v === -1 ? RLIM_INFINITY_NUMBER : v);
  if (!Number.isInteger(u.Soft) || !Number.isInteger(u.Hard) || u.Soft < -1 || u.Hard < -1) throw new BerthError(`invalid ulimit ${u.Name}=${u.Soft}:${u.Hard}: limits are whole numbers (-1 for unlimited)`);
  if (value(u.Soft) > value(u.Hard)) throw new BerthError(`ulimit soft limit must be less than or equal to hard limit: ${u.Soft} > ${u.Hard}`);
  return { type, soft: value(u.Soft), hard: value(u.Hard) };
}

const ULIMIT_NAME: Record<string, string> = Object.fromEntries(Object.entries(DOCKER_ULIMITS).map(([k, v]) => [v, k]));

/**
 * Without CAP_SYS_RESOURCE a hard limit can be lowered but not raised above the runtime's own: say so
 * now instead of failing in setrlimit (or, worse, keeping the runtime's limit).
 */
export function checkRlimitsRaisable(rlimits: readonly { type: string; hard: number }[], ownHard: Readonly<Record<string, number>>, canRaise: boolean): void {
  if (canRaise) return;
  for (const r of rlimits) {
    const own = ownHard[r.type];
    if (own !== undefined && r.hard > own) {
      const shown = (v: number) => (v >= RLIM_INFINITY_NUMBER ? "unlimited" : String(v));
      throw new BerthError(`ulimit ${ULIMIT_NAME[r.type] ?? r.type}: hard limit ${shown(r.hard)} is above the daemon's own (${shown(own)}), and without CAP_SYS_RESOURCE it cannot be raised`);
    }
  }
}

/** docker's check of --cpus against the host (daemon/daemon_unix.go verifyPlatformContainerResources). */
export function checkNanoCpus(nanoCpus: number, cpuCount: number): void {
  if (nanoCpus < 0 || (nanoCpus > 0 && nanoCpus < 1e7) || nanoCpus > cpuCount * 1e9) {
    throw new BerthError(`Range of CPUs is from 0.01 to ${cpuCount.toFixed(2)}, as there are only ${cpuCount} CPUs available`);
  }
}

/** docker's --device value: /dev/host[:/dev/container][:permissions]. */
export function parseDeviceFlag(value: string): { PathOnHost: string; PathInContainer: string; CgroupPermissions: string } {
  const parts = value.split(":");
  const isPerm = (s: string) => /^[rwm]{1,3}$/.test(s);
  let perms = "rwm";
  let inContainer: string | undefined;
  if (parts.length === 3) { inContainer = parts[1]; perms = parts[2]; }
  else if (parts.length === 2) { if (isPerm(parts[1])) perms = parts[1]; else inContainer = parts[1]; }
  else if (parts.length !== 1) throw new BerthError(`invalid device specification: ${value}`);
  if (!isPerm(perms)) throw new BerthError(`invalid device specification: ${value}`);
  return { PathOnHost: parts[0], PathInContainer: inContainer || parts[0], CgroupPermissions: perms };
}

/** A host device node as the spec needs it (the caller stats the host path). */
export interface HostDevice {
  /** Path in the container. */
  path: string;
  type: "c" | "b";
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

/** Linux's dev_t encoding (glibc's gnu_dev_major/minor) as Node's stat reports it in rdev. */
export function devMajorMinor(rdev: number): { major: number; minor: number } {
  const dev = BigInt(rdev);
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}

/** A Devices entry's check beyond the stat: absolute paths; permissions the runtime can honour. */
export function checkDeviceEntry(d: { PathOnHost?: string; PathInContainer?: string; CgroupPermissions?: string }): void {
  if (!d.PathOnHost?.startsWith("/")) throw new BerthError(`invalid device ${JSON.stringify(d.PathOnHost ?? "")}: the host path must be absolute`);
  if (d.PathInContainer && !d.PathInContainer.startsWith("/")) throw new BerthError(`invalid device ${d.PathOnHost}:${d.PathInContainer}: the container path must be absolute`);
  const perms = d.CgroupPermissions || "rwm";
  if (!/^[rwm]{1,3}$/.test(perms)) throw new BerthError(`invalid device permissions "${perms}" for ${d.PathOnHost}: use a combination of r, w and m`);
  // The runtime allows every device it creates rwm (as runc's AllowedDevices), so a narrower rule would
  // be overridden: refuse it instead of granting more than was asked.
  if ([..."rwm"].some((c) => !perms.includes(c))) throw new BerthError(`device ${d.PathOnHost}: permissions "${perms}" are not supported, only rwm`);
}
