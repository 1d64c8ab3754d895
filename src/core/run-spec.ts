// docker-run-style options -> an OCI spec. `berth run` and the library produce config.json this way and
// hand it to the same runtime path as `berth-oci` (one path, not two). Pure: file contents and host
// facts are passed in.

import { availableParallelism } from "node:os";
import { BerthError } from "../errors.js";
import { expandCpuset, parseCpuset } from "../util/size.js";
import type { IdMapping, Namespace, Resources as LinuxResources, Spec } from "../oci/spec.js";
import { dockerDefaultProfile } from "../seccomp/index.js";
import { applyCapChanges, DOCKER_DEFAULT_CAPABILITIES } from "./capabilities.js";
import {
  DEFAULT_DEVICE_RULES,
  DEFAULT_PATH,
  DOCKER_MASKED_PATHS,
  DOCKER_READONLY_PATHS,
  dockerDefaultMounts,
} from "./defaults.js";
import { checkRlimitsRaisable, checkSysctls, type HostDevice, type NamespaceMode } from "./isolation.js";
import { dockerAdditionalGids, parseGroup, resolveUser } from "./users.js";

/** docker's bind propagation modes (-v's mode, --mount's bind-propagation). */
export type BindPropagation = "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave";

export interface RunOptions {
  /** The root filesystem directory. */
  rootfs: string;
  /** The command and its arguments. */
  command: string[];
  /** KEY=VALUE entries; later ones win. */
  env?: string[];
  workdir?: string;
  /** docker's -u: "name", "uid", "uid:gid", "name:group"... looked up in the rootfs. */
  user?: string;
  hostname?: string;
  tty?: boolean;
  /** Terminal size for tty (rows, columns). */
  consoleSize?: { rows: number; cols: number };
  network?: "none" | "host";
  /** Join this network namespace (--network container:X, or one Berth set up) instead of a new one. */
  networkNamespacePath?: string;
  readOnly?: boolean;
  /** Bytes. */
  memory?: number;
  /** Memory plus swap, bytes; -1 for unlimited swap (docker's --memory-swap). */
  memorySwap?: number;
  /** A fraction of CPUs, e.g. 0.5. */
  cpus?: number;
  cpuShares?: number;
  cpusetCpus?: string;
  pidsLimit?: number;
  privileged?: boolean;
  capAdd?: string[];
  capDrop?: string[];
  /** podman's --uidmap/--gidmap: run in a user namespace with these mappings. */
  uidMap?: IdMapping[];
  gidMap?: IdMapping[];
  /** Bind mounts: host source -> container destination; propagation as docker's (default rprivate). */
  binds?: { source: string; destination: string; readOnly?: boolean; propagation?: BindPropagation }[];
  /** Whether docker's default seccomp profile applies (true unless privileged or disabled). */
  seccomp?: boolean;
  /** The joined network namespace is another container's (--network container:X), not one made for this one. */
  networkShared?: boolean;
  domainname?: string;
  /** config.json rlimits (RLIMIT_* names), e.g. from --ulimit. */
  rlimits?: { type: string; soft: number; hard: number }[];
  /** /dev/shm's size in bytes (default 64 MiB). */
  shmSize?: number;
  /** Namespaced sysctls, written in the container before it starts. */
  sysctls?: Record<string, string>;
  /** --group-add: group names (looked up in the rootfs) or gids. */
  groupAdd?: string[];
  /** Default private; host leaves the namespace out; a path joins it. */
  pidMode?: NamespaceMode;
  ipcMode?: NamespaceMode;
  utsMode?: "private" | "host";
  cgroupnsMode?: "private" | "host";
  /** What /dev/shm is when the IPC namespace is not private: a host path bind-mounted (host: /dev/shm). */
  shmSource?: string;
  /** Host device nodes to create in the container, each allowed rwm in the device cgroup. */
  devices?: HostDevice[];
  /** Bytes (memory soft limit). */
  memoryReservation?: number;
  oomKillDisable?: boolean;
  /** Default: on unless privileged. */
  noNewPrivileges?: boolean;
  /** --security-opt systempaths=unconfined: no masked or read-only /proc paths. */
  systemPathsUnconfined?: boolean;
}

export interface RunFacts {
  /** Container id; the default hostname is its first 12 characters, as docker does. */
  id: string;
  /** The rootfs's /etc/passwd and /etc/group, when present. */
  passwd?: string;
  group?: string;
  /** Capabilities the runtime itself holds (its bounding set): --privileged grants these. */
  runtimeCapabilities: string[];
  /** How many CPUs --cpuset-cpus may name (0..n-1). Default: os.availableParallelism(). */
  cpuCount?: number;
  /** The runtime's own hard rlimits (RLIMIT_* -> value); with canRaiseRlimits false none may be raised. */
  ownRlimitsHard?: Record<string, number>;
  canRaiseRlimits?: boolean;
}

/**
 * --cpuset-cpus against the host's CPUs, with docker's wording. Through the daemon an unknown CPU was
 * only found by the cgroup write at start ("cpuset.cpus=7: ERANGE"); the CLI's own check does not see a
 * create request from docker's CLI or dockerode.
 */
export function checkCpusetCpus(list: string, cpuCount: number): void {
  const missing = expandCpuset(list).filter((c) => c >= cpuCount);
  if (missing.length > 0) {
    throw new BerthError(`Requested CPUs are not available - requested ${list}, available: ${cpuCount === 1 ? "0" : `0-${cpuCount - 1}`}`);
  }
}

const CPU_PERIOD = 100_000;

export function runResources(o: RunOptions): LinuxResources {
  const r: LinuxResources = {};
  if (o.memory !== undefined) {
    if (o.memory < 6 * 1024 * 1024) throw new BerthError("invalid --memory: the minimum allowed is 6MB");
    r.memory = { limit: o.memory };
  }
  if (o.memorySwap !== undefined) {
    if (o.memory === undefined) throw new BerthError("invalid --memory-swap: it needs --memory as well");
    if (o.memorySwap !== -1 && o.memorySwap < o.memory) {
      throw new BerthError("invalid --memory-swap: it is memory plus swap, so it must be at least --memory (or -1 for unlimited swap)");
    }
    r.memory = { ...r.memory, swap: o.memorySwap };
  }
  if (o.cpus !== undefined || o.cpuShares !== undefined || o.cpusetCpus !== undefined) {
    r.cpu = {};
    if (o.cpus !== undefined) {
      if (!(o.cpus > 0)) throw new BerthError(`invalid --cpus ${o.cpus}: must be a positive number of CPUs, e.g. 0.5`);
      r.cpu.quota = Math.round(o.cpus * CPU_PERIOD);
      r.cpu.period = CPU_PERIOD;
    }
    if (o.cpuShares !== undefined) r.cpu.shares = o.cpuShares;
    if (o.cpusetCpus !== undefined) r.cpu.cpus = o.cpusetCpus;
  }
  if (o.memoryReservation !== undefined) {
    if (o.memoryReservation < 6 * 1024 * 1024) throw new BerthError("invalid --memory-reservation: the minimum allowed is 6MB");
    if (o.memory !== undefined && o.memoryReservation > o.memory) {
      throw new BerthError("Minimum memory limit can not be less than memory reservation limit, see usage");
    }
    r.memory = { ...r.memory, reservation: o.memoryReservation };
  }
  if (o.oomKillDisable) r.memory = { ...r.memory, disableOOMKiller: true };
  if (o.pidsLimit !== undefined) r.pids = { limit: o.pidsLimit };
  r.devices = o.privileged ? [{ allow: true, access: "rwm" }] : DEFAULT_DEVICE_RULES.map((d) => ({ ...d }));
  if (!o.privileged) for (const d of o.devices ?? []) r.devices.push({ allow: true, type: d.type, major: d.major, minor: d.minor, access: "rwm" });
  return r;
}

function envKey(entry: string): string {
  const eq = entry.indexOf("=");
  return eq < 0 ? entry : entry.slice(0, eq);
}

/** Later entries replace earlier ones with the same key, keeping the first position. */
export function mergeEnvEntries(...lists: string[][]): string[] {
  const out = new Map<string, string>();
  for (const list of lists) for (const e of list) out.set(envKey(e), e);
  return [...out.values()];
}

export function buildRunSpec(o: RunOptions, facts: RunFacts): Spec {
  if (o.command.length === 0) throw new BerthError("no command given: say what to run, e.g. `berth run host sh -c 'echo hi'`");
  const user = resolveUser(o.user ?? "0", facts.passwd, facts.group);
  if (o.cpusetCpus !== undefined) checkCpusetCpus(parseCpuset(o.cpusetCpus, "--cpuset-cpus"), facts.cpuCount ?? availableParallelism());
  if (o.utsMode === "host" && o.hostname !== undefined) throw new BerthError("conflicting options: hostname and the UTS mode (--uts host uses the host's)");
  if (o.utsMode === "host" && o.domainname) throw new BerthError("conflicting options: domainname and the UTS mode (--uts host uses the host's)");
  const hostname = o.hostname ?? (o.network === "host" || o.utsMode === "host" ? undefined : facts.id.slice(0, 12));
  const env = mergeEnvEntries(
    [`PATH=${DEFAULT_PATH}`],
    hostname ? [`HOSTNAME=${hostname}`] : [],
    o.tty ? ["TERM=xterm"] : [],
    [`HOME=${user.home || "/"}`],
    o.env ?? [],
  );

  const caps = o.privileged
    ? [...facts.runtimeCapabilities]
    : applyCapChanges([...DOCKER_DEFAULT_CAPABILITIES], o.capAdd ?? [], o.capDrop ?? []);
  const nsEntry = (type: Namespace["type"], mode: NamespaceMode | undefined): Namespace[] =>
    mode === "host" ? [] : mode === undefined || mode === "private" ? [{ type }] : [{ type, path: mode.path }];
  const namespaces: Namespace[] = [
    ...nsEntry("pid", o.pidMode), ...nsEntry("ipc", o.ipcMode), ...nsEntry("uts", o.utsMode), { type: "mount" }, ...nsEntry("cgroup", o.cgroupnsMode),
  ];
  const privateIpc = o.ipcMode === undefined || o.ipcMode === "private";
  if (o.sysctls) checkSysctls(o.sysctls, { privateNet: o.network !== "host" && !o.networkShared, privateIpc });
  if (o.rlimits && facts.ownRlimitsHard) checkRlimitsRaisable(o.rlimits, facts.ownRlimitsHard, facts.canRaiseRlimits ?? false);
  const additionalGids = dockerAdditionalGids(user);
  for (const g of o.groupAdd ?? []) {
    const gid = /^\d+$/.test(g) ? Number(g) : parseGroup(facts.group ?? "").find((e) => e.name === g)?.gid;
    if (gid === undefined) throw new BerthError(`Unable to find group ${g}: no matching entries in the image's /etc/group (use a numeric gid)`);
    if (gid > 2 ** 31 - 1) throw new BerthError(`invalid --group-add ${g}: gid out of range (0-${2 ** 31 - 1})`);
    if (!additionalGids.includes(gid)) additionalGids.push(gid);
  }
  if (o.network !== "host") namespaces.push(o.networkNamespacePath ? { type: "network", path: o.networkNamespacePath } : { type: "network" });
  const userNs = (o.uidMap?.length ?? 0) > 0 || (o.gidMap?.length ?? 0) > 0;
  if (userNs) {
    if (!o.uidMap?.length || !o.gidMap?.length) throw new BerthError("--uidmap and --gidmap go together: give both");
    // An id outside the mappings failed late and obscurely in the helper ("set uid=5000 ...: invalid argument").
    const unmapped = (id: number, maps: IdMapping[]) => !maps.some((m) => id >= m.containerID && id < m.containerID + m.size);
    const ranges = (maps: IdMapping[]) => maps.map((m) => (m.size === 1 ? `${m.containerID}` : `${m.containerID}-${m.containerID + m.size - 1}`)).join(", ");
    if (unmapped(user.uid, o.uidMap)) {
      throw new BerthError(`user ${o.user ?? "0"}: uid ${user.uid} is not mapped in the user namespace (--uidmap maps ${ranges(o.uidMap)})`);
    }
    const gid = additionalGids.find((g) => unmapped(g, o.gidMap as IdMapping[]));
    if (gid !== undefined) {
      throw new BerthError(`user ${o.user ?? "0"}: gid ${gid} is not mapped in the user namespace (--gidmap maps ${ranges(o.gidMap)})`);
    }
    namespaces.push({ type: "user" });
  }

  const mounts = dockerDefaultMounts();
  const shm = mounts.find((m) => m.destination === "/dev/shm");
  if (shm && !privateIpc) {
    if (o.shmSize !== undefined) throw new BerthError("--shm-size needs the container's own IPC namespace (not --ipc host or container:)");
    // The shared namespace's POSIX shared memory lives in its /dev/shm: share that too, as docker does.
    const source = o.shmSource ?? (o.ipcMode === "host" ? "/dev/shm" : undefined);
    if (source === undefined) throw new BerthError("joining an IPC namespace needs its /dev/shm to share");
    Object.assign(shm, { type: "bind", source, options: ["rbind", "nosuid", "noexec", "nodev"] });
  } else if (shm && o.shmSize !== undefined) {
    if (!Number.isInteger(o.shmSize) || o.shmSize <= 0) throw new BerthError(`invalid --shm-size ${o.shmSize}: must be a positive number of bytes`);
    shm.options = (shm.options ?? []).map((opt) => (opt.startsWith("size=") ? `size=${o.shmSize}` : opt));
  }
  for (const b of o.binds ?? []) {
    if (!b.destination.startsWith("/")) throw new BerthError(`invalid bind mount destination "${b.destination}": it must be an absolute path`);
    mounts.push({ destination: b.destination, type: "bind", source: b.source, options: ["rbind", b.readOnly ? "ro" : "rw", b.propagation ?? "rprivate"] });
  }
  // As dockerd: a shared bind needs a shared root to keep its peer link, a slave one at least a slave root
  // (a private root cuts the link before the bind is made).
  const propagations = (o.binds ?? []).map((b) => b.propagation ?? "rprivate");
  const rootfsPropagation = propagations.some((p) => p.endsWith("shared")) ? "shared" : propagations.some((p) => p.endsWith("slave")) ? "rslave" : undefined;

  const spec: Spec = {
    ociVersion: "1.2.0",
    process: {
      terminal: o.tty ?? false,
      consoleSize: o.tty && o.consoleSize ? { height: o.consoleSize.rows, width: o.consoleSize.cols } : undefined,
      user: { uid: user.uid, gid: user.gid, additionalGids, umask: 0o022 },
      args: o.command,
      env,
      cwd: o.workdir ?? "/",
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      noNewPrivileges: o.noNewPrivileges ?? !o.privileged,
      rlimits: o.rlimits?.length ? o.rlimits.map((r) => ({ ...r })) : undefined,
    },
    root: { path: o.rootfs, readonly: o.readOnly ?? false },
    hostname,
    domainname: o.domainname || undefined,
    mounts,
    linux: {
      namespaces,
      rootfsPropagation,
      uidMappings: userNs ? o.uidMap : undefined,
      gidMappings: userNs ? o.gidMap : undefined,
      resources: runResources(o),
      maskedPaths: o.privileged || o.systemPathsUnconfined ? [] : [...DOCKER_MASKED_PATHS],
      readonlyPaths: o.privileged || o.systemPathsUnconfined ? [] : [...DOCKER_READONLY_PATHS],
      sysctl: o.sysctls && Object.keys(o.sysctls).length > 0 ? { ...o.sysctls } : undefined,
      devices: o.devices?.length ? o.devices.map((d) => ({ ...d })) : undefined,
      seccomp: o.privileged || o.seccomp === false ? undefined : dockerDefaultProfile(caps),
    },
  };
  if (o.workdir !== undefined && !o.workdir.startsWith("/")) {
    throw new BerthError(`invalid -w "${o.workdir}": the working directory must be an absolute path`);
  }
  return spec;
}
