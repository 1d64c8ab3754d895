// The engine: containers with durable records (<data-root>/containers/<id>/config.json, atomic),
// runtime state under <exec-root>, a per-container mutex, restart policies, health checks, logs,
// attach, exec, volumes and events. Usable without HTTP; src/api/ serves it as the Docker Engine API.

import { spawn, spawnSync } from "node:child_process";
import { EventEmitter } from "node:events";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { cgroupPids, cgroupStats, destroyCgroup, freezeCgroup, oomKilled, thawCgroup, updateCgroup } from "../cgroups/index.js";
import { buildRunSpec, checkCpusetCpus, mergeEnvEntries, runResources, type BindPropagation, type RunOptions } from "../core/run-spec.js";
import { checkDeviceEntry, checkNanoCpus, parseNamespaceMode, parseSecurityOpts, ulimitRlimit } from "../core/isolation.js";
import { BerthError } from "../errors.js";
import { canRaiseRlimits, hostDevice, ownRlimitsHard } from "../runtime/host-limits.js";
import { availableParallelism } from "node:os";
import type { Mount, Process, Resources, Spec } from "../oci/spec.js";
import { readHostFacts } from "../runtime/host-facts.js";
import { processStartTime } from "../runtime/launch.js";
import { overlayMount } from "../runtime/overlay.js";
import { dockerAdditionalGids, resolveUser } from "../core/users.js";
import { bindPropagationError } from "./bind-propagation.js";
import { initLayerPaths } from "./init-layer.js";
import { DEFAULT_PATH } from "../core/defaults.js";
import { attachDetachKeys, DetachScanner, execDetachKeys } from "./detach-keys.js";
import { diskOf, enableBlkioAccounting, readBlkio, readNetworks } from "./stats.js";
import { EventBus } from "./events.js";
import { containerMatches, type FilterableContainer, type Filters, validateContainerFilters } from "./filters.js";
import { HealthMonitor } from "./health.js";
import { HOST_IMAGE_ID, ImageBackend, type ResolvedImage } from "./images.js";
import { JsonLogWriter, type LogEntry, parseLogOpts, readLog, type ReadOptions } from "./jsonlog.js";
import { nextBackoff, shouldRestart, validateRestartPolicy } from "./restart.js";
import type { Change } from "./commit-changes.js";
import { adoptProcess, type ContainerProcess, createProcess, type ExecProcess, execProcess, type MonitorFiles } from "./supervisor.js";
import { monitorAlive, readExitFile } from "../runtime/monitor.js";
import { mountVolumes, unmountNow } from "./container-fs.js";
import type { BerthPrivate, ContainerConfig, ContainerRecord, HostConfig, MountPoint } from "./types.js";
import { badRequest, conflict, EngineError, humanDuration, KeyedMutex, NAME_PATTERN, newId, notFound, notModified, parseSignalArg, randomName, readJsonLinked, sweepJsonLinked, writeJsonLinked, ZERO_TIME } from "./util.js";
import { hasMountOptions, isMountPoint, type Volume, VolumeStore } from "./volumes.js";
import {
  type ContainerNetwork,
  connectContainer,
  containerNetworkSettings,
  disconnectContainer,
  endpointAliases,
  inspectNetwork,
  type NetworkContext,
  networkIdsByName,
  networkContext,
  parseAddHost,
  portSpecsFromDocker,
  type PortSpec,
  prepareContainerNetwork,
  publishAll,
  releaseContainerNetwork,
  restorePortProxies,
  sweepNetworks,
} from "../network/index.js";

/** A dir with no entries (false when it is missing or unreadable). */
function isEmptyDir(path: string): boolean {
  try {
    return readdirSync(path).length === 0;
  } catch {
    return false;
  }
}

export const DEFAULT_DATA_ROOT = "/var/lib/berth";
export const DEFAULT_EXEC_ROOT = "/run/berth";
const TINI = ["/usr/bin/tini-static", "/usr/bin/tini"];

export interface EngineOptions {
  dataRoot?: string;
  execRoot?: string;
  log?: (msg: string) => void;
}

export interface CreateRequest {
  name?: string;
  config: Partial<ContainerConfig> & { Image: string };
  hostConfig: Partial<HostConfig>;
  /** NetworkingConfig.EndpointsConfig, by network name ("default" for the default network). */
  endpoints?: Record<string, EndpointSettings | null>;
}

/** The part of docker's EndpointSettings a create request can set. */
export interface EndpointSettings {
  IPAMConfig?: { IPv4Address?: string } | null;
  Aliases?: string[] | null;
  MacAddress?: string;
}

/** What is live for a container whose process exists. */
interface Live {
  proc: ContainerProcess;
  log: JsonLogWriter;
  output: EventEmitter; // "data" (stream, chunk), "end"
  exitDone: Promise<void>;
  startedMs: number;
}

export interface ExecRecord {
  ID: string;
  ContainerID: string;
  Running: boolean;
  ExitCode: number | null;
  Pid: number;
  OpenStdin: boolean;
  OpenStdout: boolean;
  OpenStderr: boolean;
  CanRemove: boolean;
  DetachKeys: string;
  ProcessConfig: { tty: boolean; entrypoint: string; arguments: string[]; privileged: boolean; user: string };
  config: { Cmd: string[]; Env: string[]; WorkingDir: string; User: string; Tty: boolean; Privileged: boolean; AttachStdin: boolean; ConsoleSize?: [number, number] };
  proc?: ExecProcess;
  done?: Promise<void>;
}

export interface AttachStreams {
  /** Output from the container: stream 1 stdout, 2 stderr (0 for raw tty output). */
  onData: (stream: 1 | 2, chunk: Buffer) => void;
  onEnd: () => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function stripBerth(r: ContainerRecord): Omit<ContainerRecord, "berth"> {
  const { berth: _b, ...rest } = r;
  return rest;
}

/** The endpoint settings of the container's network (docker's CLI sends its "default" entry without --network). */
function endpointSettings(req: CreateRequest, net: string): NonNullable<BerthPrivate["endpoint"]> {
  const all = req.endpoints ?? {};
  const e = all[net] ?? (net === "default" ? all.bridge : net === "bridge" ? all.default : undefined) ?? {};
  // Before API 1.44 the MAC address was Config.MacAddress.
  const mac = e.MacAddress || (req.config as { MacAddress?: string }).MacAddress || undefined;
  if (mac && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac)) throw badRequest(`invalid MAC address: ${mac}`);
  return { ip: e.IPAMConfig?.IPv4Address || undefined, aliases: e.Aliases?.length ? [...e.Aliases] : undefined, mac };
}

/** PortBindings, and with PublishAllPorts every other exposed port on a free host port (as dockerd). */
function publishedPorts(h: HostConfig, exposed: Record<string, object> | undefined): PortSpec[] {
  const bound = portSpecsFromDocker(h.PortBindings);
  if (!h.PublishAllPorts) return bound;
  const keys = Object.keys(exposed ?? {}).map((k) => (k.includes("/") ? k : `${k}/tcp`));
  const taken = new Set(bound.map((b) => `${b.containerPort}/${b.proto}`));
  return [...bound, ...publishAll(keys.filter((k) => !taken.has(k)))];
}

function emptyState(): ContainerRecord["State"] {
  return { Status: "created", Running: false, Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: 0, ExitCode: 0, Error: "", StartedAt: ZERO_TIME, FinishedAt: ZERO_TIME };
}

/** docker's /dev/shm size when ShmSize is 0. */
const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

export function defaultHostConfig(h: Partial<HostConfig>): HostConfig {
  return {
    Binds: h.Binds ?? null,
    ContainerIDFile: h.ContainerIDFile ?? "",
    LogConfig: { Type: h.LogConfig?.Type || "json-file", Config: h.LogConfig?.Config ?? {} },
    NetworkMode: h.NetworkMode || "default",
    PortBindings: h.PortBindings ?? {},
    RestartPolicy: { Name: h.RestartPolicy?.Name ?? "no", MaximumRetryCount: h.RestartPolicy?.MaximumRetryCount ?? 0 },
    AutoRemove: h.AutoRemove ?? false,
    VolumeDriver: "",
    VolumesFrom: null,
    ConsoleSize: h.ConsoleSize ?? [0, 0],
    CapAdd: h.CapAdd ?? null,
    CapDrop: h.CapDrop ?? null,
    Dns: h.Dns ?? [], DnsOptions: h.DnsOptions ?? [], DnsSearch: h.DnsSearch ?? [],
    ExtraHosts: h.ExtraHosts?.length ? h.ExtraHosts : null, GroupAdd: h.GroupAdd?.length ? h.GroupAdd : null,
    IpcMode: h.IpcMode || "private", Cgroup: "", CgroupnsMode: h.CgroupnsMode || "private", Links: null, OomScoreAdj: 0, PidMode: h.PidMode ?? "",
    Privileged: h.Privileged ?? false,
    PublishAllPorts: h.PublishAllPorts ?? false,
    ReadonlyRootfs: h.ReadonlyRootfs ?? false,
    SecurityOpt: h.SecurityOpt ?? null,
    Tmpfs: h.Tmpfs,
    UTSMode: h.UTSMode ?? "", UsernsMode: "", ShmSize: h.ShmSize || DEFAULT_SHM_SIZE, Runtime: "berth", Isolation: "",
    CpuShares: h.CpuShares ?? 0,
    Memory: h.Memory ?? 0,
    NanoCpus: h.NanoCpus ?? 0,
    CgroupParent: "", BlkioWeight: 0,
    CpuPeriod: h.CpuPeriod ?? 0,
    CpuQuota: h.CpuQuota ?? 0,
    CpusetCpus: h.CpusetCpus ?? "",
    CpusetMems: "",
    MemoryReservation: h.MemoryReservation ?? 0,
    MemorySwap: h.MemorySwap ?? 0,
    MemorySwappiness: null,
    OomKillDisable: h.OomKillDisable ?? null,
    PidsLimit: h.PidsLimit ?? null,
    Ulimits: h.Ulimits?.length ? h.Ulimits : null,
    Sysctls: h.Sysctls && Object.keys(h.Sysctls).length > 0 ? h.Sysctls : undefined,
    Devices: h.Devices ?? [],
    MaskedPaths: h.MaskedPaths ?? undefined,
    ReadonlyPaths: h.ReadonlyPaths ?? undefined,
    Mounts: h.Mounts,
    Init: h.Init ?? null,
  };
}

/**
 * The HostConfig fields for isolation and limits beyond the basic ones, as run options: each is applied
 * by buildRunSpec or refused here (BerthError, worded for the user), never dropped.
 */
export function isolationRunOptions(r: Pick<ContainerRecord, "HostConfig" | "Config">, joins: { pid?: number; ipc?: number }): Partial<RunOptions> {
  const h = r.HostConfig;
  const sec = parseSecurityOpts(h.SecurityOpt ?? []);
  const refuse = (what: string) => { throw new BerthError(`${what} is not supported by Berth`); };
  // Fields Berth has no way to apply: refuse a non-default value rather than run without it.
  if (h.CpusetMems) refuse("--cpuset-mems");
  if (h.BlkioWeight) refuse("--blkio-weight");
  if (h.MemorySwappiness !== null && h.MemorySwappiness !== undefined && h.MemorySwappiness !== -1) refuse("--memory-swappiness");
  if (h.CgroupParent) refuse("--cgroup-parent");
  if (h.OomScoreAdj) refuse("--oom-score-adj");
  if (h.VolumesFrom?.length) refuse("--volumes-from");
  if (h.Links?.length) refuse("--link");
  if (h.UsernsMode && h.UsernsMode !== "host") refuse(`--userns ${h.UsernsMode}`);
  if (h.Cgroup) refuse("--cgroup");
  const extra = h as unknown as Record<string, unknown>;
  for (const [field, flag] of [["DeviceCgroupRules", "--device-cgroup-rule"], ["DeviceRequests", "--gpus"], ["BlkioWeightDevice", "--blkio-weight-device"],
    ["BlkioDeviceReadBps", "--device-read-bps"], ["BlkioDeviceWriteBps", "--device-write-bps"], ["BlkioDeviceReadIOps", "--device-read-iops"],
    ["BlkioDeviceWriteIOps", "--device-write-iops"], ["StorageOpt", "--storage-opt"]] as const) {
    const v = extra[field];
    if (v && (Array.isArray(v) ? v.length > 0 : typeof v === "object" && Object.keys(v).length > 0)) refuse(flag);
  }
  for (const field of ["KernelMemory", "KernelMemoryTCP", "CpuRealtimePeriod", "CpuRealtimeRuntime", "IOMaximumIOps", "IOMaximumBandwidth", "CpuCount", "CpuPercent"]) {
    if (typeof extra[field] === "number" && extra[field] !== 0) refuse(field);
  }
  const masked = h.MaskedPaths;
  const readonly = h.ReadonlyPaths;
  // docker's CLI turns --security-opt systempaths=unconfined into empty lists; other lists are not applied.
  const pathsUnconfined = Array.isArray(masked) && masked.length === 0 && Array.isArray(readonly) && readonly.length === 0;
  if (!pathsUnconfined && ((masked && masked.length > 0) || (readonly && readonly.length > 0) || Array.isArray(masked) !== Array.isArray(readonly))) {
    refuse("a custom MaskedPaths/ReadonlyPaths list");
  }
  const pidMode = parseNamespaceMode("pid", h.PidMode ?? "");
  const ipcMode = parseNamespaceMode("ipc", h.IpcMode ?? "");
  const utsMode = parseNamespaceMode("uts", h.UTSMode ?? "") as "private" | "host";
  const cgroupnsMode = parseNamespaceMode("cgroupns", h.CgroupnsMode ?? "") as "private" | "host";
  const joined = (type: "pid" | "ipc", mode: typeof pidMode) =>
    typeof mode === "object" ? { path: `/proc/${joins[type] ?? 0}/ns/${type}` } : mode;
  const devices = (h.Devices ?? []).map((d) => {
    checkDeviceEntry(d);
    return hostDevice(d.PathOnHost, d.PathInContainer || d.PathOnHost);
  });
  const net = h.NetworkMode;
  if (h.NanoCpus) checkNanoCpus(h.NanoCpus, availableParallelism());
  return {
    seccomp: !sec.seccompUnconfined,
    noNewPrivileges: sec.noNewPrivileges,
    systemPathsUnconfined: sec.systemPathsUnconfined || pathsUnconfined,
    networkShared: net.startsWith("container:"),
    domainname: r.Config.Domainname || undefined,
    rlimits: (h.Ulimits ?? []).map(ulimitRlimit),
    shmSize: h.ShmSize && h.ShmSize !== DEFAULT_SHM_SIZE ? h.ShmSize : undefined,
    sysctls: h.Sysctls,
    groupAdd: h.GroupAdd ?? undefined,
    pidMode: joined("pid", pidMode),
    ipcMode: joined("ipc", ipcMode),
    // The joined container's /dev/shm, reached through its init's root.
    shmSource: typeof ipcMode === "object" ? `/proc/${joins.ipc ?? 0}/root/dev/shm` : undefined,
    utsMode,
    cgroupnsMode,
    devices,
    memoryReservation: h.MemoryReservation > 0 ? h.MemoryReservation : undefined,
    oomKillDisable: h.OomKillDisable === true ? true : undefined,
  };
}

function parseModeOr400(flag: "pid" | "ipc", value: string): ReturnType<typeof parseNamespaceMode> {
  try {
    return parseNamespaceMode(flag, value);
  } catch (err) {
    throw badRequest((err as Error).message);
  }
}

const BIND_PROPAGATIONS = ["private", "rprivate", "shared", "rshared", "slave", "rslave"] as const satisfies readonly BindPropagation[];

/** docker's Binds entry: "src:dst[:opts]". */
export function parseBind(bind: string): { source: string; target: string; readOnly: boolean; named: boolean; propagation?: BindPropagation } {
  const parts = bind.split(":");
  if (parts.length < 2 || parts.length > 3) throw badRequest(`invalid volume specification: '${bind}'`);
  const [source, target, mode = "rw"] = parts;
  if (!target.startsWith("/")) throw badRequest(`invalid volume specification: '${bind}': mount path must be absolute`);
  const opts = mode.split(",");
  for (const o of opts) {
    if (!["ro", "rw", "z", "Z", "private", "rprivate", "shared", "rshared", "slave", "rslave", "nocopy", "consistent", "cached", "delegated"].includes(o)) {
      throw badRequest(`invalid volume specification: '${bind}': invalid mode: ${o}`);
    }
  }
  const propagation = opts.find((o): o is BindPropagation => (BIND_PROPAGATIONS as readonly string[]).includes(o));
  return { source, target, readOnly: opts.includes("ro"), named: !source.startsWith("/"), ...(propagation ? { propagation } : {}) };
}

/** "size=64m,mode=1777" -> mount options. */
export function tmpfsOptions(text: string): string[] {
  const out = ["nosuid", "nodev", "noexec"];
  for (const o of text.split(",").filter(Boolean)) {
    if (o === "exec") out.splice(out.indexOf("noexec"), 1);
    else if (o === "suid") out.splice(out.indexOf("nosuid"), 1);
    else if (/^(size|mode|uid|gid|nr_inodes|nr_blocks)=/.test(o) || ["ro", "rw", "noexec", "nosuid", "nodev"].includes(o)) out.push(o);
    else throw badRequest(`invalid tmpfs option "${o}"`);
  }
  return out;
}

function parseShortId(ref: string): boolean {
  return /^[a-f0-9]{1,64}$/.test(ref);
}

/**
 * The Command column of GET /containers/json, as dockerd builds it: arguments with a space in single
 * quotes, so `ps` shows `"sh -c 'while true; …"` and not a command line that reads differently.
 */
export function listCommand(path: string, args: string[]): string {
  return [path, ...args.map((a) => (a.includes(" ") ? `'${a}'` : a))].join(" ");
}

export class Engine {
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly events = new EventBus();
  readonly images: ImageBackend;
  readonly volumes: VolumeStore;
  readonly #records = new Map<string, ContainerRecord>();
  /** The disk holding the data root (MAJ:MIN) for block I/O accounting; null until looked up. */
  #dataDisk: string | undefined | null = null;
  readonly #names = new Map<string, string>(); // name (no slash) -> id
  readonly #live = new Map<string, Live>();
  readonly #mutex = new KeyedMutex();
  readonly #waiters = new EventEmitter();
  readonly #restartTimers = new Map<string, { timer: NodeJS.Timeout; backoff: number }>();
  readonly #backoff = new Map<string, number>();
  /** Containers between mounting their volumes' filesystems and running (or in a cp): users of those mounts too. */
  readonly #startingWithVolumes = new Set<string>();
  readonly #execs = new Map<string, ExecRecord>();
  readonly #health: HealthMonitor;
  readonly #log: (msg: string) => void;

  log(msg: string): void {
    this.#log(msg);
  }
  #shuttingDown = false;
  /** Containers run under the monitor (they outlive the daemon); BERTH_ENGINE_MONITOR=0 turns it off. */
  readonly useMonitor = process.env.BERTH_ENGINE_MONITOR !== "0";

  /** Bridge networks, addresses and published ports (src/network). */
  readonly net: NetworkContext;

  constructor(o: EngineOptions = {}) {
    this.dataRoot = o.dataRoot ?? DEFAULT_DATA_ROOT;
    this.execRoot = o.execRoot ?? DEFAULT_EXEC_ROOT;
    this.#log = o.log ?? (() => {});
    mkdirSync(join(this.dataRoot, "containers"), { recursive: true, mode: 0o711 });
    mkdirSync(join(this.execRoot, "engine"), { recursive: true, mode: 0o711 });
    this.images = new ImageBackend(this.dataRoot);
    this.volumes = new VolumeStore(this.dataRoot);
    this.net = networkContext({ dataRoot: this.dataRoot, execRoot: this.execRoot });
    this.#waiters.setMaxListeners(0);
    this.#health = new HealthMonitor(this);
  }

  // ---- records ----------------------------------------------------------------------------------

  #dir(id: string) {
    return join(this.dataRoot, "containers", id);
  }

  /** Saves the record: config.json, a symlink to the latest complete version (writeJsonLinked). */
  #save(r: ContainerRecord): void {
    writeJsonLinked(join(this.#dir(r.Id), "config.json"), r);
  }

  /** Resolves a name, full id or unique id prefix. */
  lookup(ref: string): ContainerRecord {
    const name = ref.startsWith("/") ? ref.slice(1) : ref;
    const byName = this.#names.get(name);
    if (byName) return this.#records.get(byName) as ContainerRecord;
    const exact = this.#records.get(ref);
    if (exact) return exact;
    if (parseShortId(ref)) {
      const hits = [...this.#records.keys()].filter((id) => id.startsWith(ref));
      if (hits.length === 1) return this.#records.get(hits[0]) as ContainerRecord;
      if (hits.length > 1) throw new EngineError(400, `multiple IDs found with provided prefix: ${ref}`);
    }
    throw notFound(`No such container: ${ref}`);
  }

  list(): ContainerRecord[] {
    return [...this.#records.values()];
  }

  inspect(ref: string, size = false): Record<string, unknown> {
    const r = this.lookup(ref);
    const out: Record<string, unknown> = { ...stripBerth(r), State: { ...r.State }, ExecIDs: this.#execIdsOf(r.Id) };
    if (size) Object.assign(out, this.#sizes(r));
    return out;
  }

  #execIdsOf(id: string): string[] | null {
    const ids = [...this.#execs.values()].filter((e) => e.ContainerID === id).map((e) => e.ID);
    return ids.length ? ids : null;
  }

  #sizes(r: ContainerRecord): { SizeRw: number; SizeRootFs: number } {
    const rw = duBytes(join(this.#dir(r.Id), "upper"));
    let base = 0;
    for (const d of r.berth.lowerDirs) base += duBytesCached(d);
    return { SizeRw: rw, SizeRootFs: rw + base };
  }

  #attrs(r: ContainerRecord, extra: Record<string, string> = {}): Record<string, string> {
    return { ...r.Config.Labels, image: r.Config.Image, name: r.Name.slice(1), ...extra };
  }

  #event(r: ContainerRecord, action: string, extra: Record<string, string> = {}) {
    this.events.publish("container", action, r.Id, this.#attrs(r, extra));
  }

  // ---- start-up and shutdown --------------------------------------------------------------------

  /** Loads records, cleans what a crash left, adopts running containers, applies restart policies. */
  async load(): Promise<void> {
    const root = join(this.dataRoot, "containers");
    for (const name of readdirSync(root)) {
      const dir = join(root, name);
      if (name.startsWith(".")) { rmSync(dir, { recursive: true, force: true }); continue; }
      const r = readJsonLinked<ContainerRecord>(join(dir, "config.json"));
      if (!r) {
        // A create cut short before its record was written: debris.
        rmSync(dir, { recursive: true, force: true });
        continue;
      }
      // Versions and temp links a save cut short left beside the record.
      sweepJsonLinked(join(dir, "config.json"));
      this.#records.set(r.Id, r);
      this.#names.set(r.Name.slice(1), r.Id);
    }
    // Runtime state dirs of containers that are gone (a removal cut short after its rename).
    const stateRoot = join(this.execRoot, "engine");
    for (const name of readdirSync(stateRoot)) {
      if (/^[0-9a-f]{64}$/.test(name) && !this.#records.has(name)) rmSync(join(stateRoot, name), { recursive: true, force: true });
    }
    this.#unmountStale();
    // Networks this data root used before: leases of containers gone while we were away are freed, the
    // table, bridges and DNS servers of those still running are put back.
    if (existsSync(join(this.dataRoot, "network", "state.json"))) {
      await sweepNetworks(this.net, { reconcile: true }).catch((err: Error) => this.#log(`network sweep: ${err.message}`));
    }
    for (const r of this.#records.values()) {
      try {
        await this.#recover(r);
      } catch (err) {
        this.#log(`recovering container ${r.Id.slice(0, 12)}: ${(err as Error).message}`);
      }
    }
    // Volume filesystems whose users all ended while the daemon was away (or whose start it never
    // finished): the users are the containers running now, so the count survives a restart.
    for (const v of this.volumes.list()) this.#releaseOptionedVolume(v);
    this.events.publish("daemon", "reload", "berth", {});
  }

  #unmountStale(): void {
    const mntRoot = join(this.execRoot, "mnt");
    let info = "";
    try { info = readFileSync("/proc/self/mountinfo", "utf8"); } catch { return; }
    const points = info.split("\n").map((l) => l.split(" ")[4]).filter((p) => p && p.startsWith(`${mntRoot}/`));
    for (const p of points.sort().reverse()) umount(p);
    rmSync(mntRoot, { recursive: true, force: true });
  }

  async #recover(r: ContainerRecord): Promise<void> {
    const b = r.berth;
    const alive = b.pid !== undefined && b.pidStart !== undefined && processStartTime(b.pid) === b.pidStart && !isZombie(b.pid);
    const wasActive = r.State.Running || r.State.Restarting || r.State.Paused;
    const files = this.#monitorFiles(r);
    const monitor = b.monitorPid && b.monitorStart ? { pid: b.monitorPid, start: b.monitorStart, files } : undefined;
    const monitorLives = monitor !== undefined && monitorAlive(monitor.pid, monitor.start);
    if ((alive || monitorLives) && r.State.Running && b.cgroup) {
      // Still running (the daemon was away): adopt it; its monitor kept logging meanwhile.
      const proc = await adoptProcess(b.pid as number, b.cgroup, b.pidStart as string, processStartTime, monitor);
      this.#attachLive(r, proc, Date.parse(r.State.StartedAt) || Date.now());
      // Its IPv6 published ports: the userland proxy lives in the daemon, so it starts again here.
      await restorePortProxies(this.net, r.Id).catch((err: Error) => this.#log(`port proxy of ${r.Id.slice(0, 12)}: ${err.message}`));
      this.#health.start(r);
      return;
    }
    // Ended while the daemon was away: the monitor's exit file has the status.
    const exit = readExitFile(files.exitFile);
    if (exit && r.State.Running) {
      r.State.ExitCode = exit.exitCode;
      r.State.FinishedAt = exit.finishedAt || new Date().toISOString();
    }
    // Anything half-started or left over: kill it and remove its cgroup.
    if (alive && b.pid) { try { process.kill(b.pid, "SIGKILL"); } catch { /* gone */ } }
    if (b.cgroup) await destroyCgroup(b.cgroup).catch(() => undefined);
    rmSync(join(this.execRoot, "engine", r.Id), { recursive: true, force: true });
    b.cgroup = undefined;
    b.pid = undefined;
    b.pidStart = undefined;
    b.monitorPid = undefined;
    b.monitorStart = undefined;
    if (wasActive) {
      Object.assign(r.State, { Status: "exited", Running: false, Paused: false, Restarting: false, Pid: 0, ExitCode: r.State.Running && !exit ? 255 : r.State.ExitCode, FinishedAt: exit?.finishedAt || new Date().toISOString() });
      if (b.cgroup === undefined && exit === undefined) r.State.Error = "the daemon was stopped while the container ran and its exit status is unknown";
      if (r.State.Health) r.State.Health.Status = "unhealthy";
    } else if (r.State.Status !== "created" && r.State.Status !== "exited" && r.State.Status !== "dead") {
      r.State.Status = "exited";
    }
    r.NetworkSettings = this.#networkSettingsOf(r);
    this.#save(r);
    if (r.HostConfig.AutoRemove && wasActive) {
      await this.remove(r.Id, { force: true, volumes: true }).catch(() => undefined);
      return;
    }
    const policy = r.HostConfig.RestartPolicy.Name;
    if (wasActive && (policy === "always" || (!b.manuallyStopped && (policy === "unless-stopped" || (policy === "on-failure" && r.State.ExitCode !== 0))))) {
      await this.start(r.Id).catch((err) => this.#log(`restarting ${r.Id.slice(0, 12)}: ${(err as Error).message}`));
    } else if (policy === "always" && !wasActive && r.State.StartedAt !== ZERO_TIME) {
      // As dockerd: `always` brings a container back when the daemon starts even after a `docker stop`
      // (that is what sets unless-stopped apart); one that never ran stays created.
      await this.start(r.Id).catch(() => undefined);
    }
  }

  /** Daemon shutdown: containers keep running (live restore); timers and health checks stop. */
  shutdown(): void {
    this.#shuttingDown = true;
    for (const t of this.#restartTimers.values()) clearTimeout(t.timer);
    this.#health.stopAll();
    for (const live of this.#live.values()) live.log.close();
  }

  // ---- create -----------------------------------------------------------------------------------

  async create(req: CreateRequest): Promise<{ Id: string; Warnings: string[] }> {
    const name = req.name ? req.name.replace(/^\//, "") : undefined;
    if (req.name !== undefined && req.name !== "" && !NAME_PATTERN.test(req.name)) {
      throw badRequest(`Invalid container name (${req.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    }
    if (!req.config.Image) throw badRequest("config.Image: no image given");
    const h = defaultHostConfig(req.hostConfig);
    if (h.UTSMode === "host" && req.config.Hostname) throw badRequest("Conflicting options: hostname and the UTS mode");
    try {
      validateRestartPolicy(h.RestartPolicy, h.AutoRemove);
      parseLogOpts(h.LogConfig.Config);
    } catch (err) {
      throw badRequest((err as Error).message);
    }
    if (h.LogConfig.Type !== "json-file" && h.LogConfig.Type !== "none") throw badRequest(`logging driver "${h.LogConfig.Type}" is not supported (json-file, none)`);
    const net = h.NetworkMode;
    // A missing network is found at start (dockerd 20.10's way: create succeeds, start answers 404), not
    // here: docker's CLI takes a 404 from create for a missing image and tries to pull it.
    if (net.startsWith("container:") && req.config.Hostname) throw badRequest("conflicting options: hostname and the network mode");
    // dockerd 20.10 takes -p with --network host (a warning) or none (silently) and runs without the ports.
    const warnings: string[] = [];
    if (req.hostConfig.PortBindings && Object.keys(req.hostConfig.PortBindings).length > 0 && net === "host") {
      warnings.push("Published ports are discarded when using host network mode");
    }
    const endpoint = endpointSettings(req, net);
    // dockerd's checks: aliases and a fixed address only on user-defined networks.
    const userDefined = !["none", "host", "default", "bridge"].includes(net) && !net.startsWith("container:");
    if (endpoint.aliases?.length && !userDefined) throw badRequest("network-scoped aliases are only supported for user-defined networks");
    if (endpoint.ip && !userDefined) throw badRequest("user specified IP address is supported on user defined networks only");
    if (endpoint.mac && (net === "host" || net === "none" || net.startsWith("container:"))) throw badRequest("conflicting options: mac-address and the network mode");
    try {
      for (const e of h.ExtraHosts ?? []) parseAddHost(e);
    } catch (err) {
      throw badRequest((err as Error).message);
    }
    const image = await this.images.resolve(req.config.Image);
    const id = newId();
    const reserveName = name ?? randomName((n) => this.#names.has(n));
    const holder = this.#names.get(reserveName);
    if (holder) throw conflict(`Conflict. The container name "/${reserveName}" is already in use by container "${holder}". You have to remove (or rename) that container to be able to reuse that name.`);
    this.#names.set(reserveName, id);
    try {
      const record = this.#buildRecord(id, reserveName, req, h, image);
      this.#checkIsolation(record);
      if (endpoint.ip || endpoint.aliases?.length || endpoint.mac) record.berth.endpoint = endpoint;
      const dir = this.#dir(id);
      for (const d of ["", "upper", "work", "rootfs"]) mkdirSync(join(dir, d), { mode: 0o711 });
      this.#prepareMounts(record, image);
      writeFileSync(join(dir, "state.json"), JSON.stringify({ id, image: image.id }));
      this.#save(record);
      this.#records.set(id, record);
    } catch (err) {
      this.#names.delete(reserveName);
      rmSync(this.#dir(id), { recursive: true, force: true });
      throw err;
    }
    const r = this.#records.get(id) as ContainerRecord;
    this.#event(r, "create");
    return { Id: id, Warnings: warnings };
  }

  /**
   * Refuses at create, as docker does, what start could not apply: the spec is built once (without the
   * network and joined namespaces, which start resolves) and thrown away.
   */
  #checkIsolation(r: ContainerRecord): void {
    const h = r.HostConfig;
    for (const [flag, mode] of [["pid", h.PidMode], ["ipc", h.IpcMode]] as const) {
      const m = parseModeOr400(flag, mode);
      if (typeof m === "object") this.lookup(m.container);
    }
    if (h.Init === true && !TINI.some((p) => existsSync(p))) return; // start says what is missing
    this.#spec(r);
  }

  #buildRecord(id: string, name: string, req: CreateRequest, h: HostConfig, image: ResolvedImage): ContainerRecord {
    const c = req.config;
    const ic = image.config;
    const entrypoint = c.Entrypoint && c.Entrypoint.length > 0 ? c.Entrypoint : c.Entrypoint && c.Entrypoint.length === 0 ? null : (ic.Entrypoint ?? null);
    const entrypointOverridden = c.Entrypoint !== undefined && c.Entrypoint !== null;
    const cmd = c.Cmd && c.Cmd.length > 0 ? c.Cmd : entrypointOverridden ? null : (ic.Cmd ?? null);
    const argv = [...(entrypoint ?? []), ...(cmd ?? [])];
    if (argv.length === 0) throw badRequest("no command specified");
    const healthcheck = c.Healthcheck || ic.Healthcheck ? { ...(ic.Healthcheck ?? {}), ...Object.fromEntries(Object.entries(c.Healthcheck ?? {}).filter(([, v]) => v !== undefined && v !== 0 && !(Array.isArray(v) && v.length === 0))) } : undefined;
    const config: ContainerConfig = {
      Hostname: c.Hostname || (h.NetworkMode === "host" || h.UTSMode === "host" ? readHostname() : id.slice(0, 12)),
      Domainname: c.Domainname ?? "",
      User: c.User || ic.User || "",
      AttachStdin: c.AttachStdin ?? false,
      AttachStdout: c.AttachStdout ?? false,
      AttachStderr: c.AttachStderr ?? false,
      // The image's ports and the request's (-p, --expose) together, as dockerd merges them.
      ExposedPorts: c.ExposedPorts || ic.ExposedPorts ? { ...(ic.ExposedPorts ?? {}), ...(c.ExposedPorts ?? {}) } : undefined,
      Tty: c.Tty ?? false,
      OpenStdin: c.OpenStdin ?? false,
      StdinOnce: c.StdinOnce ?? false,
      Env: mergeEnvEntries(ic.Env ?? [`PATH=${DEFAULT_PATH}`], c.Env ?? []),
      Cmd: cmd,
      Healthcheck: healthcheck,
      Image: c.Image,
      Volumes: { ...(ic.Volumes ?? {}), ...(c.Volumes ?? {}) },
      WorkingDir: c.WorkingDir || ic.WorkingDir || "",
      Entrypoint: entrypoint,
      OnBuild: null,
      Labels: { ...(ic.Labels ?? {}), ...(c.Labels ?? {}) },
      StopSignal: c.StopSignal || ic.StopSignal,
      StopTimeout: c.StopTimeout,
    };
    if (config.Volumes && Object.keys(config.Volumes).length === 0) config.Volumes = null;
    if (config.WorkingDir && !config.WorkingDir.startsWith("/")) throw badRequest(`the working directory '${config.WorkingDir}' is invalid, it needs to be an absolute path`);
    const stopSignal = config.StopSignal || "SIGTERM";
    parseSignalArg(stopSignal);
    const dir = this.#dir(id);
    return {
      Id: id,
      Created: new Date().toISOString(),
      Path: argv[0],
      Args: argv.slice(1),
      State: emptyState(),
      Image: image.id,
      ResolvConfPath: "",
      HostnamePath: "",
      HostsPath: "",
      LogPath: h.LogConfig.Type === "none" ? "" : join(dir, `${id}-json.log`),
      Name: `/${name}`,
      RestartCount: 0,
      Driver: "overlay2",
      Platform: "linux",
      MountLabel: "",
      ProcessLabel: "",
      AppArmorProfile: "",
      ExecIDs: null,
      HostConfig: h,
      GraphDriver: { Name: "overlay2", Data: { LowerDir: image.lowerDirs.join(":"), UpperDir: join(dir, "upper"), WorkDir: join(dir, "work"), MergedDir: join(dir, "rootfs") } },
      Mounts: [],
      Config: config,
      NetworkSettings: networkSettings(h.NetworkMode),
      berth: { lowerDirs: image.lowerDirs, imageName: image.name, manuallyStopped: false, anonVolumes: [], tmpfs: [], stopSignal },
    };
  }

  /** Resolves -v, --mount, --tmpfs and image VOLUMEs into Mounts; creates and populates volumes. */
  #prepareMounts(r: ContainerRecord, image: ResolvedImage): void {
    const mounts: MountPoint[] = [];
    const targets = new Set<string>();
    const add = (m: MountPoint) => {
      if (targets.has(m.Destination)) throw badRequest(`Duplicate mount point: ${m.Destination}`);
      targets.add(m.Destination);
      mounts.push(m);
    };
    type NewVolume = { labels?: Record<string, string>; options?: Record<string, string>; driver?: string };
    const useVolume = (name: string | undefined, target: string, readOnly: boolean, anonymous: boolean, noCopy = false, fresh: NewVolume = {}) => {
      // As dockerd, --mount's volume-opt/volume-label apply only when the volume is made here.
      const { volume, created } = this.volumes.create(name, { anonymous, ...fresh });
      if (created && anonymous) r.berth.anonVolumes.push(volume.Name);
      if (hasMountOptions(volume)) {
        if (!noCopy) (r.berth.copyUpOnMount ??= []).push(target);
      } else if (!volume.populated && !noCopy) {
        copyUp(image.lowerDirs, target, volume.Mountpoint);
        this.volumes.markPopulated(volume.Name);
      }
      add({ Type: "volume", Name: volume.Name, Source: volume.Mountpoint, Destination: target, Driver: "local", Mode: readOnly ? "ro" : "z", RW: !readOnly, Propagation: "" });
      if (created) this.events.publish("volume", "create", volume.Name, { driver: "local" });
    };
    for (const bind of r.HostConfig.Binds ?? []) {
      const b = parseBind(bind);
      if (b.named) {
        useVolume(b.source, b.target, b.readOnly, false, bind.includes("nocopy"));
      } else {
        if (!existsSync(b.source)) mkdirSync(b.source, { recursive: true });
        add({ Type: "bind", Source: b.source, Destination: b.target, Mode: bind.split(":")[2] ?? "", RW: !b.readOnly, Propagation: b.propagation ?? "rprivate" });
      }
    }
    for (const m of r.HostConfig.Mounts ?? []) {
      if (!m.Target?.startsWith("/")) throw badRequest(`invalid mount config: mount path must be absolute: ${m.Target}`);
      if (m.Type === "bind") {
        if (!m.Source?.startsWith("/")) throw badRequest("invalid mount config for type \"bind\": invalid mount path: source must be absolute");
        if (!existsSync(m.Source)) throw badRequest(`invalid mount config for type "bind": bind source path does not exist: ${m.Source}`);
        add({ Type: "bind", Source: m.Source, Destination: m.Target, Mode: "", RW: !m.ReadOnly, Propagation: m.BindOptions?.Propagation ?? "rprivate" });
      } else if (m.Type === "volume") {
        const vo = m.VolumeOptions;
        useVolume(m.Source || undefined, m.Target, Boolean(m.ReadOnly), !m.Source, vo?.NoCopy, { labels: vo?.Labels, options: vo?.DriverConfig?.Options ?? undefined, driver: vo?.DriverConfig?.Name || undefined });
      } else if (m.Type === "tmpfs") {
        const opts = ["nosuid", "nodev", "noexec"];
        if (m.TmpfsOptions?.SizeBytes) opts.push(`size=${m.TmpfsOptions.SizeBytes}`);
        if (m.TmpfsOptions?.Mode) opts.push(`mode=${m.TmpfsOptions.Mode.toString(8)}`);
        if (m.ReadOnly) opts.push("ro");
        r.berth.tmpfs.push({ target: m.Target, options: opts });
        add({ Type: "tmpfs", Source: "", Destination: m.Target, Mode: "", RW: !m.ReadOnly, Propagation: "" });
      } else {
        throw badRequest(`invalid mount config: mount type unknown: "${(m as { Type: string }).Type}"`);
      }
    }
    for (const [target, options] of Object.entries(r.HostConfig.Tmpfs ?? {})) {
      if (!target.startsWith("/")) throw badRequest(`invalid tmpfs mount path ${target}: it must be absolute`);
      if (targets.has(target)) throw badRequest(`Duplicate mount point: ${target}`);
      targets.add(target);
      r.berth.tmpfs.push({ target, options: tmpfsOptions(options) });
    }
    for (const target of Object.keys(r.Config.Volumes ?? {})) {
      if (targets.has(target)) continue;
      useVolume(undefined, target, false, true);
    }
    r.Mounts = mounts;
  }

  // ---- start ------------------------------------------------------------------------------------

  #monitorFiles(r: ContainerRecord): MonitorFiles {
    const lo = parseLogOpts(r.HostConfig.LogConfig.Config);
    return {
      logPath: r.LogPath || undefined,
      logMaxSize: lo.maxSize,
      logMaxFiles: lo.maxFile,
      exitFile: join(this.#dir(r.Id), "exit.json"),
      // Short: a Unix socket path has at most 107 bytes.
      attachSocket: join(this.execRoot, "attach", `${r.Id.slice(0, 24)}.sock`),
    };
  }

  async start(ref: string): Promise<void> {
    const r0 = this.lookup(ref);
    try {
      await this.#mutex.run(r0.Id, () => this.#start(this.lookup(r0.Id), false));
    } catch (err) {
      // docker removes an --rm container whose start failed (its client waits for the removal).
      if (r0.HostConfig.AutoRemove && !(err instanceof EngineError && err.status === 304) && !r0.State.Running) {
        await this.remove(r0.Id, { force: true, volumes: true }).catch(() => undefined);
      }
      throw err;
    }
  }

  /**
   * The spec of a container. `joins` are the host pids of the containers whose pid/ipc namespaces
   * --pid/--ipc container:NAME join (resolved at start; without them a placeholder serves for checks).
   */
  #spec(r: ContainerRecord, network?: ContainerNetwork, joins: { pid?: number; ipc?: number } = {}): Spec {
    const h = r.HostConfig;
    const c = r.Config;
    const lowerDirs = r.berth.lowerDirs;
    const read = (p: string) => {
      for (const d of lowerDirs) { try { return readFileSync(join(d, p), "utf8"); } catch { /* next */ } }
      return undefined;
    };
    let args = [r.Path, ...r.Args];
    const init = h.Init === true;
    const binds: RunOptions["binds"] = r.Mounts.filter((m) => m.Type !== "tmpfs").map((m) => ({
      source: m.Source, destination: m.Destination, readOnly: !m.RW,
      propagation: (BIND_PROPAGATIONS as readonly string[]).includes(m.Propagation) ? m.Propagation as BindPropagation : undefined,
    }));
    if (init) {
      const tini = TINI.find((p) => existsSync(p));
      if (!tini) throw new EngineError(500, "--init needs tini: install the tini package");
      // The mount point must exist as a file: make it in the container's own layer when the image lacks it.
      const upper = join(this.#dir(r.Id), "upper");
      if (!existsSync(join(upper, "sbin")) && !lowerDirs.some((d) => existsSync(join(d, "sbin")))) {
        // /sbin missing, or a symlink (usr/sbin) to a directory the image lacks.
        let target = "sbin";
        for (const d of lowerDirs) {
          try { if (lstatSync(join(d, "sbin")).isSymbolicLink()) { target = readlinkSync(join(d, "sbin")).replace(/^\/+/, ""); break; } } catch { /* next */ }
        }
        mkdirSync(join(upper, target), { recursive: true, mode: 0o755 });
      }
      binds.push({ source: tini, destination: "/sbin/docker-init", readOnly: true });
      args = ["/sbin/docker-init", "--", ...args];
    }
    const net = h.NetworkMode === "host" ? "host" : "none";
    // A bridge or user network: its /etc files, and for container: the namespace to join.
    if (network) binds.push(...network.binds);
    const cpus = h.NanoCpus ? h.NanoCpus / 1e9 : h.CpuQuota > 0 ? h.CpuQuota / (h.CpuPeriod || 100_000) : undefined;
    const opts: RunOptions = {
      rootfs: join(this.#dir(r.Id), "rootfs"),
      command: args,
      env: c.Env,
      workdir: c.WorkingDir || undefined,
      user: c.User || undefined,
      hostname: net === "host" || h.UTSMode === "host" ? undefined : c.Hostname,
      tty: c.Tty,
      consoleSize: c.Tty && h.ConsoleSize[0] > 0 ? { rows: h.ConsoleSize[0], cols: h.ConsoleSize[1] } : undefined,
      network: net,
      readOnly: h.ReadonlyRootfs,
      memory: h.Memory > 0 ? h.Memory : undefined,
      memorySwap: h.MemorySwap !== 0 && h.Memory > 0 ? h.MemorySwap : undefined,
      cpus,
      cpuShares: h.CpuShares > 0 ? h.CpuShares : undefined,
      cpusetCpus: h.CpusetCpus || undefined,
      pidsLimit: h.PidsLimit !== null && h.PidsLimit !== 0 ? h.PidsLimit : undefined,
      privileged: h.Privileged,
      capAdd: h.CapAdd ?? [],
      capDrop: h.CapDrop ?? [],
      binds,
      networkNamespacePath: network?.netnsPath,
    };
    let spec: Spec;
    try {
      Object.assign(opts, isolationRunOptions(r, joins));
      spec = buildRunSpec(opts, {
        id: r.Id, passwd: read("etc/passwd"), group: read("etc/group"), runtimeCapabilities: readHostFacts().runtimeCapabilities,
        ownRlimitsHard: ownRlimitsHard(), canRaiseRlimits: canRaiseRlimits(),
      });
    } catch (err) {
      throw badRequest((err as Error).message);
    }
    const tmpfs: Mount[] = r.berth.tmpfs.map((t) => ({ destination: t.target, type: "tmpfs", source: "tmpfs", options: t.options }));
    spec.mounts = [...(spec.mounts ?? []), ...tmpfs];
    if (c.Tty && spec.process) spec.process.terminal = true;
    return spec;
  }

  /** docker's "default" network is the default bridge, as in docker. */
  #networkMode(r: ContainerRecord): string {
    const mode = r.HostConfig.NetworkMode;
    return mode === "default" || mode === "" ? "bridge" : mode;
  }

  /**
   * `network connect`: a running container gets the interface now; any container keeps the network in
   * its record, so it is attached again at each start (dockerd's way; a created container too).
   */
  async connectNetwork(netRef: string, containerRef: string, cfg: { ip?: string; aliases?: string[] }): Promise<void> {
    const r0 = this.lookup(containerRef);
    await this.#mutex.run(r0.Id, async () => {
      const r = this.lookup(r0.Id);
      const mode = this.#networkMode(r);
      // dockerd's words for each mode that has no network of its own to add to.
      // A --network none container may join networks once it was disconnected from none (its record
      // then lists its networks), as dockerd allows.
      if (mode === "none" && !r.berth.networks) throw badRequest("container cannot be connected to multiple networks with one of the networks in private (none) mode");
      if (mode === "host" || mode.startsWith("container:")) throw badRequest("container sharing network namespace with another container or host cannot be connected to any other network");
      const net = await this.#findNetwork(netRef);
      if (net.Name === "host" || net.Name === "none") throw badRequest(`container cannot be connected to the ${net.Name} network`);
      if (net.Name === "bridge" && cfg.aliases?.length) throw badRequest("network-scoped aliases are only supported for user-defined networks");
      if (net.Name === "bridge" && cfg.ip) throw badRequest("user specified IP address is supported on user defined networks only");
      const attached = await this.#attachedByName(r);
      if (net.Name in attached) throw new EngineError(403, `endpoint with name ${r.Name.slice(1)} already exists in network ${net.Name}`);
      if (r.State.Running && r.State.Pid) {
        try {
          await connectContainer(this.net, net.Id, { containerId: r.Id, name: r.Name.slice(1), pid: r.State.Pid, ip: cfg.ip, aliases: cfg.aliases, dns: r.HostConfig.Dns ?? undefined });
        } catch (err) {
          throw badRequest((err as Error).message);
        }
      }
      attached[net.Name] = { ...(cfg.ip ? { ip: cfg.ip } : {}), ...(cfg.aliases?.length ? { aliases: cfg.aliases } : {}) };
      r.berth.networks = attached;
      r.NetworkSettings = this.#networkSettingsOf(r);
      this.#save(r);
      this.events.publish("network", "connect", net.Id, { container: r.Id, name: net.Name, type: net.Driver });
    });
  }

  /**
   * `network disconnect`: the interface goes now (if it runs) and the network leaves the record. As
   * dockerd 20.10: a stopped container (or -f) may drop a network that was removed since, by the name
   * its record has; a running one must name an existing network.
   */
  async disconnectNetwork(netRef: string, containerRef: string, force = false): Promise<void> {
    const r0 = this.lookup(containerRef);
    await this.#mutex.run(r0.Id, async () => {
      const r = this.lookup(r0.Id);
      const mode = this.#networkMode(r);
      if (mode === "host") throw badRequest("container cannot be disconnected from host network or connected to host network");
      if (mode === "none" && !r.berth.networks) {
        const none = await this.#findNetwork(netRef);
        if (none.Name !== "none") throw new EngineError(500, `container ${r.Id} is not connected to network ${none.Name}`);
        r.berth.networks = {};
        r.NetworkSettings = this.#networkSettingsOf(r);
        this.#save(r);
        this.events.publish("network", "disconnect", none.Id, { container: r.Id, name: none.Name, type: none.Driver });
        return;
      }
      if (mode.startsWith("container:")) {
        throw badRequest(`container ${r.Id.slice(0, 12)} uses --network ${mode}: it cannot be disconnected from it`);
      }
      let net: { Name: string; Id: string; Driver: string } | undefined;
      try {
        net = await this.#findNetwork(netRef);
      } catch (err) {
        if (r.State.Running && !force) throw err;
      }
      const attached = await this.#attachedByName(r);
      const name = net?.Name ?? netRef;
      if (!(name in attached)) {
        throw new EngineError(500, r.State.Running && net ? `container ${r.Id} is not connected to network ${name}` : `container ${r.Id} is not connected to the network ${netRef}`);
      }
      if (r.State.Running && net) {
        try {
          await disconnectContainer(this.net, net.Id, r.Id, { pid: r.State.Pid, dns: r.HostConfig.Dns ?? undefined });
        } catch (err) {
          if (!/is not connected/.test((err as Error).message)) throw badRequest((err as Error).message);
        }
      }
      delete attached[name];
      r.berth.networks = attached;
      r.NetworkSettings = this.#networkSettingsOf(r);
      this.#save(r);
      if (net) this.events.publish("network", "disconnect", net.Id, { container: r.Id, name: net.Name, type: net.Driver });
    });
  }

  async #findNetwork(ref: string): Promise<{ Name: string; Id: string; Driver: string }> {
    try {
      return await inspectNetwork(this.net, ref);
    } catch {
      throw notFound(`network ${ref} not found`);
    }
  }

  /** The container's attachments keyed by each network's name (NetworkMode may name one by id). */
  async #attachedByName(r: ContainerRecord): Promise<NonNullable<BerthPrivate["networks"]>> {
    const out: NonNullable<BerthPrivate["networks"]> = {};
    for (const [ref, cfg] of this.#attachments(r)) {
      const name = await inspectNetwork(this.net, ref).then((n) => n.Name, () => ref);
      out[name] = cfg;
    }
    return out;
  }

  /** The networks a container is attached to at start, in order (the first gets eth0, /etc files, ports). */
  #attachments(r: ContainerRecord): [string, { ip?: string; aliases?: string[]; mac?: string }][] {
    if (r.berth.networks) return Object.entries(r.berth.networks);
    const mode = this.#networkMode(r);
    if (mode === "none" || mode === "host" || mode.startsWith("container:")) return [];
    return [[mode, r.berth.endpoint ?? {}]];
  }

  /** inspect's NetworkSettings: the live endpoints while it runs, else the networks it will attach to. */
  #networkSettingsOf(r: ContainerRecord): ContainerRecord["NetworkSettings"] {
    const mode = this.#networkMode(r);
    if ((mode === "none" && !r.berth.networks) || mode === "host" || mode.startsWith("container:")) return networkSettings(r.HostConfig.NetworkMode);
    if (r.State.Running) {
      const live = containerNetworkSettings(this.net, r.Id, Object.keys(r.Config.ExposedPorts ?? {}));
      const networks = live.Networks as Record<string, Record<string, unknown>>;
      for (const [name, cfg] of this.#attachments(r)) if (cfg.ip && networks[name]) networks[name].IPAMConfig = { IPv4Address: cfg.ip };
      return live;
    }
    const settings = networkSettings(r.HostConfig.NetworkMode);
    const template = Object.values(settings.Networks as Record<string, Record<string, unknown>>)[0];
    const ids = networkIdsByName(this.net);
    settings.Networks = Object.fromEntries(this.#attachments(r).map(([name, cfg]) => [name, {
      ...template, NetworkID: ids[name] ?? "", IPAMConfig: cfg.ip ? { IPv4Address: cfg.ip } : null, Aliases: endpointAliases(name === "bridge", cfg.aliases ?? [], r.Id),
    }]));
    return settings;
  }

  async #prepareNetwork(r: ContainerRecord): Promise<ContainerNetwork | undefined> {
    let mode = this.#networkMode(r);
    const h = r.HostConfig;
    const attachments = this.#attachments(r);
    // Every network it attaches to must exist (dockerd answers 404 at start).
    for (const [name] of attachments) {
      try { await inspectNetwork(this.net, name); } catch { throw notFound(`network ${name} not found`); }
    }
    if (!mode.startsWith("container:") && mode !== "host") mode = attachments[0]?.[0] ?? "none";
    const endpoint = attachments[0]?.[1] ?? {};
    // container:NAME names one of this engine's containers, which must be running (dockerd's words).
    let joinTarget: { id: string; pid: number } | undefined;
    if (mode.startsWith("container:")) {
      const target = this.lookup(mode.slice("container:".length));
      if (!target.State.Running || !target.State.Pid) throw conflict(`cannot join network of a non running container: ${target.Id}`);
      joinTarget = { id: target.Id, pid: target.State.Pid };
    }
    try {
      return await prepareContainerNetwork(this.net, {
        joinTarget,
        containerId: r.Id,
        name: r.Name.replace(/^\//, ""),
        hostname: r.Config.Hostname || r.Id.slice(0, 12),
        mode,
        publish: publishedPorts(h, r.Config.ExposedPorts),
        ip: endpoint.ip,
        aliases: endpoint.aliases,
        mac: endpoint.mac,
        dns: h.Dns?.length ? h.Dns : undefined,
        dnsSearch: h.DnsSearch?.length ? h.DnsSearch : undefined,
        dnsOptions: h.DnsOptions?.length ? h.DnsOptions : undefined,
        addHosts: (h.ExtraHosts ?? []).map((e) => parseAddHost(e)),
        ownerIsContainer: true,
        stateRoot: join(this.execRoot, "containers"),
      });
    } catch (err) {
      throw new EngineError(500, `network setup for ${r.Id.slice(0, 12)}: ${(err as Error).message}`);
    }
  }

  /** The init pids of the containers whose pid/ipc namespaces --pid/--ipc container:NAME join; they must run. */
  #namespaceJoins(r: ContainerRecord): { pid?: number; ipc?: number } {
    const joins: { pid?: number; ipc?: number } = {};
    for (const [type, mode] of [["pid", r.HostConfig.PidMode], ["ipc", r.HostConfig.IpcMode]] as const) {
      const m = parseModeOr400(type, mode);
      if (typeof m !== "object") continue;
      const target = this.lookup(m.container);
      if (!target.State.Running || !target.State.Pid) throw conflict(`cannot join ${type.toUpperCase()} of a non running container: ${target.Id}`);
      joins[type] = target.State.Pid;
    }
    return joins;
  }

  async #start(r: ContainerRecord, isRestart: boolean): Promise<void> {
    if (r.State.Status === "removing") throw conflict(`container ${r.Id.slice(0, 12)} is being removed`);
    if (r.State.Running) {
      if (r.State.Paused) throw conflict(`cannot start a paused container, try unpause instead`);
      if (!isRestart) throw notModified("container already started");
      return;
    }
    const pending = this.#restartTimers.get(r.Id);
    if (pending) { clearTimeout(pending.timer); this.#restartTimers.delete(r.Id); }
    // dockerd checks the binds' propagation against the host's mounts at start, before the network.
    for (const m of r.Mounts) {
      const refused = m.Type === "bind" ? bindPropagationError(m.Source, m.Propagation) : undefined;
      if (refused) throw new EngineError(500, refused);
    }
    const joins = this.#namespaceJoins(r);
    const network = await this.#prepareNetwork(r);
    let spec: Spec;
    try {
      spec = this.#spec(r, network, joins);
    } catch (err) {
      await network?.release();
      throw err;
    }
    this.#startingWithVolumes.add(r.Id);
    try {
      this.#mountOptionedVolumes(r);
    } catch (err) {
      this.#startingWithVolumes.delete(r.Id);
      this.#releaseOptionedVolumes(r);
      await network?.release();
      throw err;
    }
    try {
      await this.#startMounted(r, isRestart, spec, network);
    } finally {
      this.#startingWithVolumes.delete(r.Id);
      // A start that failed leaves no mount behind (a running one keeps them: it is a user).
      if (!r.State.Running) this.#releaseOptionedVolumes(r);
    }
  }

  async #startMounted(r: ContainerRecord, isRestart: boolean, spec: Spec, network: ContainerNetwork | undefined): Promise<void> {
    const stateDir = join(this.execRoot, "engine", r.Id);
    rmSync(stateDir, { recursive: true, force: true });
    mkdirSync(stateDir, { recursive: true, mode: 0o711 });
    const dir = this.#dir(r.Id);
    if (this.useMonitor) mkdirSync(join(this.execRoot, "attach"), { recursive: true, mode: 0o700 });
    // A fresh work dir each time (overlay refuses a work dir another mount left busy). An empty one (as
    // create made it) is fresh: removing and making a dir again costs ~1-4 ms of journal on a busy disk.
    if (!isEmptyDir(join(dir, "work"))) {
      rmSync(join(dir, "work"), { recursive: true, force: true });
      mkdirSync(join(dir, "work"), { mode: 0o711 });
    }
    r.berth.manuallyStopped = false;
    // A start by the user (or the daemon's own at boot) begins a new run of failures, as dockerd resets
    // its restart manager: on-failure:N may restart N more times, and the back-off starts over.
    if (!isRestart) {
      r.RestartCount = 0;
      this.#backoff.delete(r.Id);
    }
    let proc: ContainerProcess;
    try {
      proc = await createProcess({
        id: r.Id,
        spec,
        rootfs: join(dir, "rootfs"),
        lowerDirs: r.berth.lowerDirs,
        upper: join(dir, "upper"),
        work: join(dir, "work"),
        execFifo: join(stateDir, "exec.fifo"),
        openStdin: r.Config.OpenStdin,
        monitor: this.useMonitor ? this.#monitorFiles(r) : undefined,
        onCgroup: (cg) => { r.berth.cgroup = cg; this.#save(r); },
        parentOps: network?.parentOps,
        onPid: async (pid, monitorPid) => {
          await network?.started(pid);
          // The other networks it is connected to (network connect), while the container waits to run.
          for (const [name, cfg] of this.#attachments(r).slice(1)) {
            await connectContainer(this.net, name, { containerId: r.Id, name: r.Name.replace(/^\//, ""), pid, ip: cfg.ip, aliases: cfg.aliases, dns: r.HostConfig.Dns ?? undefined });
          }
          r.berth.pid = pid;
          r.berth.pidStart = processStartTime(pid);
          if (this.useMonitor && monitorPid) { r.berth.monitorPid = monitorPid; r.berth.monitorStart = processStartTime(monitorPid); }
          this.#save(r);
        },
      });
    } catch (err) {
      await network?.release();
      await releaseContainerNetwork(this.net, r.Id).catch(() => undefined);
      r.berth.cgroup = undefined;
      r.berth.pid = undefined;
      const msg = (err as Error).message;
      Object.assign(r.State, { Error: msg, ExitCode: (err as { exitCode?: number }).exitCode === 127 ? 127 : (err as { exitCode?: number }).exitCode === 126 ? 126 : 128 });
      if (r.State.Status !== "created") r.State.Status = "exited";
      this.#save(r);
      this.#waiters.emit(`startfail:${r.Id}`);
      const code = (err as { exitCode?: number }).exitCode;
      throw new EngineError(code === 126 || code === 127 ? 400 : 500, `failed to create task for container: ${msg}`);
    }
    r.berth.cgroup = proc.cgroup;
    if (this.#dataDisk === null) this.#dataDisk = diskOf(this.dataRoot);
    enableBlkioAccounting(proc.cgroup, this.#dataDisk);
    if (proc.monitor) {
      r.berth.monitorPid = proc.monitor.pid;
      r.berth.monitorStart = proc.monitor.start;
    }
    // Not saved here: onPid saved the cgroup and pid, and until the save as running below a record that
    // is not running is recovered the same way (its process killed, its cgroup destroyed).
    const live = this.#attachLive(r, proc, Date.now());
    try {
      await proc.start();
    } catch (err) {
      proc.signal(9);
      await live.exitDone;
      this.#waiters.emit(`startfail:${r.Id}`);
      throw new EngineError(500, `failed to start container: ${(err as Error).message}`);
    }
    Object.assign(r.State, { Status: "running", Running: true, Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: proc.pid, ExitCode: 0, Error: "", StartedAt: new Date().toISOString() });
    r.NetworkSettings = this.#networkSettingsOf(r);
    if (r.Config.Healthcheck && r.Config.Healthcheck.Test?.[0] !== "NONE" && (r.Config.Healthcheck.Test?.length ?? 0) > 0) {
      r.State.Health = { Status: "starting", FailingStreak: 0, Log: r.State.Health?.Log ?? [] };
    } else {
      delete r.State.Health;
    }
    this.#save(r);
    this.#event(r, isRestart ? "start" : "start");
    this.#health.start(r);
  }

  /** Wires a process's output to the log and attach listeners, and its exit to handleExit. */
  #attachLive(r: ContainerRecord, proc: ContainerProcess, startedMs: number): Live {
    const log = new JsonLogWriter(r.LogPath && !proc.logsByMonitor ? r.LogPath : "/dev/null", r.LogPath ? parseLogOpts(r.HostConfig.LogConfig.Config) : {});
    const output = new EventEmitter();
    output.setMaxListeners(0);
    const drained = new Promise<void>((resolve) => {
      proc.output.on("data", (n: 1 | 2, chunk: Buffer) => {
        if (r.LogPath && !proc.logsByMonitor) log.write(n === 2 ? "stderr" : "stdout", chunk);
        output.emit("data", r.Config.Tty ? 1 : n, chunk);
      });
      proc.output.once("end", () => resolve());
    });
    let resolveDone!: () => void;
    const exitDone = new Promise<void>((res) => { resolveDone = res; });
    const live: Live = { proc, log, output, exitDone, startedMs };
    this.#live.set(r.Id, live);
    this.#waiters.emit(`live:${r.Id}`, live);
    void proc.exited.then(
      async (st) => {
        await Promise.race([drained, sleep(2000)]);
        await this.#handleExit(r, live, st.signal ? 128 + st.signal : st.exitCode);
      },
      async (err: Error) => {
        await this.#handleExit(r, live, 128, err.message);
      },
    ).finally(resolveDone);
    return live;
  }

  async #handleExit(r: ContainerRecord, live: Live, code: number, error = ""): Promise<void> {
    if (this.#shuttingDown) return;
    this.#health.stop(r.Id);
    live.log.close();
    const oom = r.berth.cgroup ? oomKilled(r.berth.cgroup) : false;
    if (r.berth.cgroup) await destroyCgroup(r.berth.cgroup).catch(() => undefined);
    await releaseContainerNetwork(this.net, r.Id).catch(() => undefined);
    this.#live.delete(r.Id);
    // An --rm container's is removed with it (remove(), after the removal is answered).
    if (!r.HostConfig.AutoRemove) rmSync(join(this.execRoot, "engine", r.Id), { recursive: true, force: true });
    r.berth.cgroup = undefined;
    r.berth.pid = undefined;
    r.berth.pidStart = undefined;
    const exitCode = oom && code === 137 ? 137 : code;
    Object.assign(r.State, { Status: "exited", Running: false, Paused: false, Restarting: false, OOMKilled: oom, Pid: 0, ExitCode: exitCode, Error: error, FinishedAt: new Date().toISOString() });
    this.#releaseOptionedVolumes(r);
    r.NetworkSettings = this.#networkSettingsOf(r);
    if (r.State.Health) r.State.Health.Status = "unhealthy";
    if (!this.#records.has(r.Id)) return;
    this.#save(r);
    live.output.emit("end");
    if (oom) this.#event(r, "oom");
    this.#event(r, "die", { exitCode: String(exitCode) });
    this.#waiters.emit(`exit:${r.Id}`, exitCode);
    const ranFor = Date.now() - live.startedMs;
    if (r.HostConfig.AutoRemove) {
      void this.remove(r.Id, { force: true, volumes: true }).catch(() => undefined);
      return;
    }
    if (shouldRestart({ policy: r.HostConfig.RestartPolicy, exitCode, manuallyStopped: r.berth.manuallyStopped, restartCount: r.RestartCount })) {
      const delay = nextBackoff(this.#backoff.get(r.Id) ?? 0, ranFor);
      this.#backoff.set(r.Id, delay);
      r.State.Restarting = true;
      r.State.Status = "restarting";
      this.#save(r);
      const timer = setTimeout(() => {
        this.#restartTimers.delete(r.Id);
        void this.#mutex.run(r.Id, async () => {
          if (!this.#records.has(r.Id) || !r.State.Restarting || r.berth.manuallyStopped) return;
          r.RestartCount++;
          try {
            await this.#start(r, true);
          } catch (err) {
            Object.assign(r.State, { Restarting: false, Status: "exited", Error: (err as Error).message });
            this.#save(r);
          }
        });
      }, delay);
      this.#restartTimers.set(r.Id, { timer, backoff: delay });
    } else if (ranFor >= 10_000) {
      this.#backoff.delete(r.Id);
    }
  }

  // ---- stop, kill, restart, wait ----------------------------------------------------------------

  stop(ref: string, timeoutSec?: number, signal?: string): Promise<void> {
    const r0 = this.lookup(ref);
    return this.#mutex.run(r0.Id, () => this.#stop(this.lookup(r0.Id), timeoutSec, signal));
  }

  async #stop(r: ContainerRecord, timeoutSec?: number, signal?: string): Promise<void> {
    r.berth.manuallyStopped = true;
    const pending = this.#restartTimers.get(r.Id);
    if (pending) {
      clearTimeout(pending.timer);
      this.#restartTimers.delete(r.Id);
      Object.assign(r.State, { Restarting: false, Status: "exited" });
      this.#save(r);
      return;
    }
    const live = this.#live.get(r.Id);
    if (!live || !r.State.Running) {
      this.#save(r);
      throw notModified("container already stopped");
    }
    this.#save(r);
    if (r.State.Paused && r.berth.cgroup) {
      await thawCgroup(r.berth.cgroup).catch(() => undefined);
      r.State.Paused = false;
    }
    const sig = parseSignalArg(signal ?? r.berth.stopSignal, "SIGTERM");
    const t = timeoutSec ?? r.Config.StopTimeout ?? 10;
    live.proc.signal(sig);
    this.#event(r, "kill", { signal: String(sig) });
    const exited = await Promise.race([live.exitDone.then(() => true), sleep(t < 0 ? 2 ** 30 : t * 1000).then(() => false)]);
    if (!exited) {
      live.proc.signal(9);
      this.#event(r, "kill", { signal: "9" });
      if (r.berth.cgroup) for (const pid of cgroupPids(r.berth.cgroup)) { try { process.kill(pid, 9); } catch { /* gone */ } }
      await live.exitDone;
    }
    this.#event(r, "stop");
  }

  kill(ref: string, signal?: string): Promise<void> {
    const r0 = this.lookup(ref);
    const sig = parseSignalArg(signal, "SIGKILL");
    return this.#mutex.run(r0.Id, async () => {
      const r = this.lookup(r0.Id);
      const live = this.#live.get(r.Id);
      if (!live || !r.State.Running) throw conflict(`Cannot kill container: ${ref}: container ${r.Id} is not running`);
      if (sig === 9 || sig === 15 || sig === 2) { r.berth.manuallyStopped = true; this.#save(r); }
      if (r.State.Paused && sig === 9 && r.berth.cgroup) await thawCgroup(r.berth.cgroup).catch(() => undefined);
      live.proc.signal(sig);
      this.#event(r, "kill", { signal: String(sig) });
      if (sig === 9) await Promise.race([live.exitDone, sleep(5000)]);
    });
  }

  restart(ref: string, timeoutSec?: number, signal?: string): Promise<void> {
    const r0 = this.lookup(ref);
    return this.#mutex.run(r0.Id, async () => {
      const r = this.lookup(r0.Id);
      if (r.State.Running) await this.#stop(r, timeoutSec, signal).catch((e) => { if (!(e instanceof EngineError && e.status === 304)) throw e; });
      await this.#start(r, false);
      this.#event(r, "restart");
    });
  }

  /** docker wait: resolves with the exit code once the condition holds. */
  async wait(ref: string, condition = "not-running", signal?: AbortSignal): Promise<{ StatusCode: number; Error?: { Message: string } | null; OOMKilled?: boolean }> {
    const r = this.lookup(ref);
    if (!["not-running", "next-exit", "removed", ""].includes(condition)) throw badRequest(`invalid condition: "${condition}"`);
    if ((condition === "not-running" || condition === "") && !r.State.Running && !r.State.Restarting) return { StatusCode: r.State.ExitCode, Error: null };
    return new Promise((resolve, reject) => {
      const ev = condition === "removed" ? `removed:${r.Id}` : `exit:${r.Id}`;
      const onEv = (code: number) => {
        cleanup();
        // OOMKilled is Berth's addition (docker clients ignore it): `berth run` reports the OOM kill.
        resolve({ StatusCode: code ?? r.State.ExitCode, Error: null, ...(r.State.OOMKilled ? { OOMKilled: true } : {}) });
      };
      const onAbort = () => { cleanup(); reject(new Error("aborted")); };
      const cleanup = () => { this.#waiters.off(ev, onEv); signal?.removeEventListener("abort", onAbort); };
      this.#waiters.on(ev, onEv);
      signal?.addEventListener("abort", onAbort);
    });
  }

  // ---- remove, rename, pause, update --------------------------------------------------------------

  remove(ref: string, o: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    const r0 = this.lookup(ref);
    return this.#mutex.run(r0.Id, async () => {
      const r = this.#records.get(r0.Id);
      if (!r) return;
      if (r.State.Status === "removing") throw conflict(`removal of container ${r.Id.slice(0, 12)} is already in progress`);
      if ((r.State.Running || r.State.Restarting) && !o.force) {
        throw conflict(`cannot remove container "${r.Name}": container is ${r.State.Paused ? "paused" : r.State.Restarting ? "restarting" : "running"}: stop the container before removing or force remove`);
      }
      r.berth.manuallyStopped = true;
      const pending = this.#restartTimers.get(r.Id);
      if (pending) { clearTimeout(pending.timer); this.#restartTimers.delete(r.Id); }
      const live = this.#live.get(r.Id);
      if (live) {
        if (r.State.Paused && r.berth.cgroup) await thawCgroup(r.berth.cgroup).catch(() => undefined);
        live.proc.signal(9);
        if (r.berth.cgroup) for (const pid of cgroupPids(r.berth.cgroup)) { try { process.kill(pid, 9); } catch { /* gone */ } }
        await live.exitDone;
      }
      // Not saved: the rename below is the removal, and a crash before it recovers the record as it was
      // last saved (a "removing" record was recovered as exited as well).
      r.State.Status = "removing";
      for (const e of [...this.#execs.values()]) if (e.ContainerID === r.Id) this.#execs.delete(e.ID);
      // Rename away first: a crash mid-delete leaves a trash dir that load() removes, never half a record.
      const trash = join(this.dataRoot, "containers", `.trash-${r.Id}`);
      renameSync(this.#dir(r.Id), trash);
      this.#records.delete(r.Id);
      if (this.#names.get(r.Name.slice(1)) === r.Id) this.#names.delete(r.Name.slice(1));
      // The rename was the removal; deleting the files (the upper layer can be large) needn't hold up
      // the client. A trash dir left by a crash is removed by load().
      void rm(trash, { recursive: true, force: true }).catch((err: Error) => this.#log(`removing ${trash}: ${err.message}`));
      // Its runtime state dir likewise (nothing makes it again: the id is gone; load() removes leftovers).
      void rm(join(this.execRoot, "engine", r.Id), { recursive: true, force: true }).catch(() => undefined);
      if (o.volumes) {
        for (const v of r.berth.anonVolumes) {
          if (this.volumeUsers(v).length === 0) {
            try { this.volumes.remove(v, []); this.events.publish("volume", "destroy", v, { driver: "local" }); } catch { /* gone */ }
          }
        }
      }
      this.#event(r, "destroy");
      this.#waiters.emit(`removed:${r.Id}`, r.State.ExitCode);
      this.#waiters.emit(`exit:${r.Id}`, r.State.ExitCode);
    });
  }

  rename(ref: string, newName: string): Promise<void> {
    const r0 = this.lookup(ref);
    if (!newName || !NAME_PATTERN.test(newName)) throw badRequest(`Invalid container name (${newName}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    const name = newName.replace(/^\//, "");
    return this.#mutex.run(r0.Id, async () => {
      const r = this.lookup(r0.Id);
      const old = r.Name.slice(1);
      if (old === name) throw badRequest(`Renaming a container with the same name as its current name`);
      const holder = this.#names.get(name);
      if (holder) throw conflict(`Conflict. The container name "/${name}" is already in use by container "${holder}". You have to remove (or rename) that container to be able to reuse that name.`);
      this.#names.set(name, r.Id);
      this.#names.delete(old);
      r.Name = `/${name}`;
      this.#save(r);
      this.#event(r, "rename", { oldName: `/${old}` });
    });
  }

  pause(ref: string): Promise<void> {
    const r0 = this.lookup(ref);
    return this.#mutex.run(r0.Id, async () => {
      const r = this.lookup(r0.Id);
      if (!r.State.Running || !r.berth.cgroup) throw conflict(`Container ${r.Id} is not running`);
      if (r.State.Paused) throw conflict(`Container ${r.Id} is already paused`);
      await freezeCgroup(r.berth.cgroup);
      Object.assign(r.State, { Paused: true, Status: "paused" });
      this.#save(r);
      this.#event(r, "pause");
    });
  }

  unpause(ref: string): Promise<void> {
    const r0 = this.lookup(ref);
    return this.#mutex.run(r0.Id, async () => {
      const r = this.lookup(r0.Id);
      if (!r.State.Paused || !r.berth.cgroup) throw conflict(`Container ${r.Id} is not paused`);
      await thawCgroup(r.berth.cgroup);
      Object.assign(r.State, { Paused: false, Status: "running" });
      this.#save(r);
      this.#event(r, "unpause");
    });
  }

  update(ref: string, u: Partial<HostConfig>): Promise<{ Warnings: string[] }> {
    const r0 = this.lookup(ref);
    return this.#mutex.run(r0.Id, async () => {
      const r = this.lookup(r0.Id);
      const h = r.HostConfig;
      const next: HostConfig = { ...h };
      for (const k of ["Memory", "MemorySwap", "NanoCpus", "CpuShares", "CpusetCpus", "CpuQuota", "CpuPeriod", "PidsLimit", "MemoryReservation"] as const) {
        if (u[k] !== undefined && u[k] !== null && !(k !== "PidsLimit" && u[k] === 0 && k !== "CpuShares")) (next as unknown as Record<string, unknown>)[k] = u[k];
      }
      if (u.RestartPolicy && u.RestartPolicy.Name) {
        try { validateRestartPolicy(u.RestartPolicy, h.AutoRemove); } catch (err) { throw badRequest((err as Error).message); }
        next.RestartPolicy = u.RestartPolicy;
      }
      if (next.NanoCpus && (next.CpuQuota || next.CpuPeriod) && (u.NanoCpus || u.CpuQuota)) {
        if (u.NanoCpus) { next.CpuQuota = 0; next.CpuPeriod = 0; } else next.NanoCpus = 0;
      }
      let res: Resources;
      try {
        if (u.NanoCpus) checkNanoCpus(u.NanoCpus, availableParallelism());
        if (u.CpusetCpus) checkCpusetCpus(u.CpusetCpus, availableParallelism());
        const cpus = next.NanoCpus ? next.NanoCpus / 1e9 : next.CpuQuota > 0 ? next.CpuQuota / (next.CpuPeriod || 100_000) : undefined;
        res = runResources({
          rootfs: "", command: [],
          memory: next.Memory > 0 ? next.Memory : undefined,
          memorySwap: next.MemorySwap !== 0 && next.Memory > 0 ? next.MemorySwap : undefined,
          cpus, cpuShares: next.CpuShares > 0 ? next.CpuShares : undefined,
          cpusetCpus: next.CpusetCpus || undefined,
          pidsLimit: next.PidsLimit !== null && next.PidsLimit !== 0 ? next.PidsLimit : undefined,
          memoryReservation: next.MemoryReservation > 0 ? next.MemoryReservation : undefined,
        });
      } catch (err) {
        throw badRequest((err as Error).message);
      }
      delete res.devices;
      if (r.State.Running && r.berth.cgroup) {
        try { updateCgroup(r.berth.cgroup, res); } catch (err) { throw new EngineError(500, `Cannot update container ${r.Id}: ${(err as Error).message}`); }
      }
      r.HostConfig = next;
      this.#save(r);
      this.#event(r, "update");
      return { Warnings: [] };
    });
  }

  // ---- list -------------------------------------------------------------------------------------

  #filterable(r: ContainerRecord): FilterableContainer {
    return {
      id: r.Id,
      name: r.Name.slice(1),
      labels: r.Config.Labels,
      status: r.State.Status,
      exitCode: r.State.ExitCode,
      image: r.Config.Image,
      imageId: r.Image,
      health: r.State.Health?.Status ?? "none",
      volumes: r.Mounts.map((m) => m.Name ?? m.Source).concat(r.Mounts.map((m) => m.Destination)),
      networks: Object.entries((r.NetworkSettings as { Networks?: Record<string, { NetworkID?: string }> }).Networks ?? {}).flatMap(([name, n]) => (n.NetworkID ? [name, n.NetworkID] : [name])),
      ports: r.State.Running ? apiPorts((r.NetworkSettings as { Ports?: PortMap }).Ports) : [],
      created: Date.parse(r.Created),
    };
  }

  statusText(r: ContainerRecord): string {
    const s = r.State;
    if (s.Restarting) return `Restarting (${s.ExitCode}) ${humanDuration(Date.now() - Date.parse(s.FinishedAt))} ago`;
    if (s.Running) {
      const health = s.Health ? (s.Health.Status === "starting" ? " (health: starting)" : ` (${s.Health.Status})`) : "";
      return `Up ${humanDuration(Date.now() - Date.parse(s.StartedAt))}${s.Paused ? " (Paused)" : ""}${health}`;
    }
    if (s.Status === "removing") return "Removal In Progress";
    if (s.Status === "dead") return "Dead";
    if (s.StartedAt === ZERO_TIME) return "Created";
    return `Exited (${s.ExitCode}) ${humanDuration(Date.now() - Date.parse(s.FinishedAt))} ago`;
  }

  listJson(o: { all?: boolean; limit?: number; size?: boolean; filters?: Filters }): Record<string, unknown>[] {
    const f = o.filters ?? {};
    validateContainerFilters(f);
    const find = (ref: string) => { try { return this.#filterable(this.lookup(ref)); } catch { return undefined; } };
    let rows = this.list()
      // A limit lists the last containers of any state, as dockerd (`ps -n`/`-l` include stopped ones).
      .filter((r) => o.all || (o.limit ?? 0) > 0 || r.State.Running || r.State.Restarting || (f.status && f.status.length > 0) || (f.exited && f.exited.length > 0))
      .filter((r) => containerMatches(this.#filterable(r), f, find))
      .sort((a, b) => Date.parse(b.Created) - Date.parse(a.Created));
    if (o.limit && o.limit > 0) rows = rows.slice(0, o.limit);
    return rows.map((r) => ({
      Id: r.Id,
      Names: [r.Name],
      Image: r.Config.Image,
      ImageID: r.Image,
      Command: listCommand(r.Path, r.Args),
      Created: Math.floor(Date.parse(r.Created) / 1000),
      Ports: r.State.Running ? apiPorts((r.NetworkSettings as { Ports?: PortMap }).Ports) : [],
      Labels: r.Config.Labels,
      State: r.State.Status,
      Status: this.statusText(r),
      HostConfig: { NetworkMode: r.HostConfig.NetworkMode },
      NetworkSettings: { Networks: (r.NetworkSettings as { Networks: unknown }).Networks },
      Mounts: r.Mounts,
      ...(o.size ? this.#sizes(r) : {}),
    }));
  }

  // ---- logs and attach --------------------------------------------------------------------------

  isRunning(id: string): boolean {
    return this.#live.has(id);
  }

  async logs(ref: string, o: ReadOptions, emit: (e: LogEntry) => void, signal?: AbortSignal): Promise<void> {
    const r = this.lookup(ref);
    if (r.HostConfig.LogConfig.Type === "none" || !r.LogPath) {
      throw new EngineError(501, `configured logging driver does not support reading`);
    }
    await readLog(r.LogPath, o, emit, () => !this.#live.has(r.Id) && !r.State.Restarting, signal);
  }

  /**
   * Attaches to a container's live output (and stdin). Returns a detach function. `onEnd` runs when
   * the container's process ends.
   */
  attach(ref: string, s: AttachStreams, o: { stdin?: Readable; logs?: boolean; stream?: boolean; stdout?: boolean; stderr?: boolean; detachKeys?: string | null }): { detach: () => void; ready: Promise<void> } {
    const r = this.lookup(ref);
    // docker looks for the detach keys only with a tty (without one, stdin is passed on as it is).
    const scanner = r.Config.Tty && o.stdin ? new DetachScanner(attachDetachKeys(o.detachKeys)) : undefined;
    let live = this.#live.get(r.Id);
    const wantOut = o.stdout ?? true;
    const wantErr = o.stderr ?? true;
    let detached = false;
    let cleanup = () => {};
    const onData = (n: 1 | 2, chunk: Buffer) => {
      if ((n === 1 && wantOut) || (n === 2 && wantErr)) s.onData(n, chunk);
    };
    const ready = (async () => {
      if (o.logs && r.LogPath) {
        await readLog(r.LogPath, { stdout: wantOut, stderr: wantErr }, (e) => s.onData(e.stream === "stdout" ? 1 : 2, Buffer.from(e.log)), () => true);
      }
      if (o.stream === false) { s.onEnd(); return; }
      // A client attaching before start (docker run) waits for the process.
      const bind = (l: Live) => {
        live = l;
        const onEnd = () => { if (!detached) s.onEnd(); };
        l.output.on("data", onData);
        l.output.once("end", onEnd);
        let stdinPipe: (() => void) | undefined;
        if (o.stdin && r.Config.OpenStdin) {
          const onChunk = (c: Buffer) => {
            if (detached) return;
            const { data, detached: keys } = scanner ? scanner.push(c) : { data: c, detached: false };
            if (data.length > 0) l.proc.writeStdin(data);
            if (!keys) return;
            // The detach keys: stop attaching (the container keeps running) and close the stream.
            detached = true;
            cleanup();
            this.#event(r, "detach");
            s.onEnd();
          };
          // As docker: a client's end of stdin closes the container's stdin (StdinOnce) only without a
          // tty; with one, the client may just have detached.
          const onStdinEnd = () => { if (r.Config.StdinOnce && !r.Config.Tty) l.proc.closeStdin(); };
          o.stdin.on("data", onChunk);
          o.stdin.on("end", onStdinEnd);
          o.stdin.resume();
          stdinPipe = () => { o.stdin?.off("data", onChunk); o.stdin?.off("end", onStdinEnd); };
        } else {
          o.stdin?.resume();
        }
        cleanup = () => { l.output.off("data", onData); l.output.off("end", onEnd); stdinPipe?.(); };
      };
      if (live) bind(live);
      else {
        const onStart = (l: Live) => { this.#waiters.off(`removed:${r.Id}`, onGone); this.#waiters.off(`startfail:${r.Id}`, onGone); if (!detached) bind(l); };
        const onGone = () => { cleanup(); if (!detached) s.onEnd(); };
        this.#waiters.once(`live:${r.Id}`, onStart);
        this.#waiters.once(`removed:${r.Id}`, onGone);
        this.#waiters.once(`startfail:${r.Id}`, onGone);
        cleanup = () => { this.#waiters.off(`live:${r.Id}`, onStart); this.#waiters.off(`removed:${r.Id}`, onGone); this.#waiters.off(`startfail:${r.Id}`, onGone); };
      }
    })();
    this.#event(r, "attach");
    return { detach: () => { detached = true; cleanup(); }, ready };
  }

  resize(ref: string, rows: number, cols: number): void {
    const r = this.lookup(ref);
    const live = this.#live.get(r.Id);
    if (!live) throw conflict(`cannot resize container ${r.Id.slice(0, 12)}: it is not running`);
    live.proc.resize(rows, cols);
  }

  // ---- exec -------------------------------------------------------------------------------------

  execCreate(ref: string, c: { Cmd?: string[]; Env?: string[]; WorkingDir?: string; User?: string; Tty?: boolean; Privileged?: boolean; AttachStdin?: boolean; AttachStdout?: boolean; AttachStderr?: boolean; DetachKeys?: string; ConsoleSize?: [number, number] }): { Id: string } {
    const r = this.lookup(ref);
    if (!r.State.Running) throw conflict(`container ${r.Id} is not running`);
    if (r.State.Paused) throw conflict(`container ${r.Id} is paused, unpause the container before exec`);
    if (!c.Cmd || c.Cmd.length === 0) throw badRequest("No exec command specified");
    if (c.DetachKeys) execDetachKeys(c.DetachKeys);
    const id = newId();
    const e: ExecRecord = {
      ID: id,
      ContainerID: r.Id,
      Running: false,
      ExitCode: null,
      Pid: 0,
      OpenStdin: Boolean(c.AttachStdin),
      OpenStdout: c.AttachStdout ?? true,
      OpenStderr: c.AttachStderr ?? true,
      CanRemove: false,
      DetachKeys: c.DetachKeys ?? "",
      ProcessConfig: { tty: Boolean(c.Tty), entrypoint: c.Cmd[0], arguments: c.Cmd.slice(1), privileged: Boolean(c.Privileged), user: c.User ?? "" },
      config: { Cmd: c.Cmd, Env: c.Env ?? [], WorkingDir: c.WorkingDir ?? "", User: c.User ?? "", Tty: Boolean(c.Tty), Privileged: Boolean(c.Privileged), AttachStdin: Boolean(c.AttachStdin), ConsoleSize: c.ConsoleSize },
    };
    this.#execs.set(id, e);
    this.#event(r, `exec_create: ${c.Cmd.join(" ")}`, { execID: id });
    return { Id: id };
  }

  execInspect(id: string): Record<string, unknown> {
    const e = this.#execs.get(id);
    if (!e) throw notFound(`No such exec instance: ${id}`);
    const { proc: _p, done: _d, config: _c, ...rest } = e;
    return rest;
  }

  /** The process spec for an exec (or a health check) in a container. */
  execProcessSpec(r: ContainerRecord, c: ExecRecord["config"]): Process {
    const spec = this.#spec(r);
    const base = spec.process as Process;
    let user = base.user;
    if (c.User) {
      const read = (p: string) => {
        try { return readFileSync(`/proc/${r.State.Pid}/root/${p}`, "utf8"); } catch { return undefined; }
      };
      try {
        const u = resolveUser(c.User, read("etc/passwd"), read("etc/group"));
        user = { uid: u.uid, gid: u.gid, additionalGids: dockerAdditionalGids(u), umask: 0o022 };
      } catch (err) {
        throw badRequest((err as Error).message);
      }
    }
    const caps = c.Privileged ? readHostFacts().runtimeCapabilities : undefined;
    return {
      ...base,
      terminal: c.Tty,
      consoleSize: c.Tty && c.ConsoleSize && c.ConsoleSize[0] > 0 ? { height: c.ConsoleSize[0], width: c.ConsoleSize[1] } : undefined,
      args: c.Cmd,
      env: mergeEnvEntries(base.env ?? [], c.Env),
      cwd: c.WorkingDir || base.cwd || "/",
      user,
      capabilities: caps ? { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] } : base.capabilities,
      noNewPrivileges: c.Privileged ? false : base.noNewPrivileges,
    };
  }

  /** Starts an exec; resolves with its process once running. */
  async execStart(id: string, o: { detach?: boolean } = {}): Promise<ExecRecord> {
    const e = this.#execs.get(id);
    if (!e) throw notFound(`No such exec instance: ${id}`);
    if (e.Running || e.ExitCode !== null) throw conflict(`Exec command ${id} has already run`);
    const r = this.lookup(e.ContainerID);
    if (!r.State.Running || !r.berth.cgroup) throw conflict(`container ${r.Id} is not running`);
    const spec = this.#spec(r);
    if (e.config.Privileged && spec.linux) spec.linux.seccomp = undefined;
    // As dockerd: an exec that cannot start has exit code 126 whatever the cause (a missing command too),
    // and the client reads it from the exec's inspect.
    let procSpec: Process;
    try {
      procSpec = this.execProcessSpec(r, e.config);
    } catch (err) {
      e.ExitCode = 126;
      throw new EngineError(500, (err as Error).message);
    }
    e.Running = true;
    let proc: ExecProcess;
    try {
      proc = await execProcess({ pid: r.State.Pid, spec, cgroup: r.berth.cgroup, proc: procSpec, openStdin: e.OpenStdin && !o.detach });
    } catch (err) {
      e.Running = false;
      e.ExitCode = 126;
      throw badRequest(`OCI runtime exec failed: exec failed: unable to start container process: ${(err as Error).message}: unknown`);
    }
    e.proc = proc;
    e.Pid = proc.pid;
    this.#event(r, `exec_start: ${e.config.Cmd.join(" ")}`, { execID: id });
    e.done = proc.exited.then(
      (st) => { e.ExitCode = st.signal ? 128 + st.signal : st.exitCode; },
      () => { e.ExitCode = 126; },
    ).finally(() => {
      e.Running = false;
      this.#event(r, "exec_die", { execID: id, exitCode: String(e.ExitCode) });
    });
    return e;
  }

  /** The client of an exec detached with the detach keys: the exec keeps running. */
  execDetached(id: string): void {
    const e = this.#execs.get(id);
    const r = e ? this.#records.get(e.ContainerID) : undefined;
    if (e && r) this.#event(r, "exec_detach", { execID: id });
  }

  execResize(id: string, rows: number, cols: number): void {
    const e = this.#execs.get(id);
    if (!e) throw notFound(`No such exec instance: ${id}`);
    if (!e.proc) throw conflict(`Exec ${id} is not running`);
    e.proc.resize(rows, cols);
  }

  /** Runs a command in the container to completion (health checks). */
  async runInContainer(r: ContainerRecord, cmd: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }> {
    if (!r.State.Running || !r.berth.cgroup) return { exitCode: -1, output: "container is not running" };
    const spec = this.#spec(r);
    const config = { Cmd: cmd, Env: [], WorkingDir: "", User: "", Tty: false, Privileged: false, AttachStdin: false };
    const proc = await execProcess({ pid: r.State.Pid, spec, cgroup: r.berth.cgroup, proc: this.execProcessSpec(r, config), openStdin: false });
    let output = "";
    const add = (c: Buffer) => { if (output.length < 4096) output += c.toString(); };
    proc.stdout?.on("data", add);
    proc.stderr?.on("data", add);
    const result = proc.exited.then((st) => (st.signal ? 128 + st.signal : st.exitCode), () => 126);
    const timedOut = await Promise.race([result.then(() => false), sleep(timeoutMs).then(() => true)]);
    if (timedOut) {
      proc.kill();
      return { exitCode: -1, output: `Health check exceeded timeout (${timeoutMs / 1000}s)` };
    }
    return { exitCode: await result, output };
  }

  /** For health.ts: record a result and publish status changes. */
  healthResult(r: ContainerRecord, entry: { Start: string; End: string; ExitCode: number; Output: string }, retries: number, inStartPeriod: boolean): void {
    if (!r.State.Health || !r.State.Running) return;
    const h = r.State.Health;
    h.Log.push(entry);
    if (h.Log.length > 5) h.Log.splice(0, h.Log.length - 5);
    const before = h.Status;
    if (entry.ExitCode === 0) {
      h.FailingStreak = 0;
      h.Status = "healthy";
    } else if (!(inStartPeriod && h.Status === "starting")) {
      h.FailingStreak++;
      if (h.FailingStreak >= retries) h.Status = "unhealthy";
    }
    this.#save(r);
    if (h.Status !== before) this.#event(r, `health_status: ${h.Status}`);
  }

  // ---- top, stats -------------------------------------------------------------------------------

  async top(ref: string, psArgs = "-ef"): Promise<{ Titles: string[]; Processes: string[][] }> {
    const r = this.lookup(ref);
    if (!r.State.Running || !r.berth.cgroup) throw conflict(`Container ${r.Id} is not running`);
    const pids = new Set(cgroupPids(r.berth.cgroup));
    const out = await runCapture("ps", psArgs.split(/\s+/).filter(Boolean));
    if (out.code !== 0) throw new EngineError(500, `Error running ps: ${out.stderr.trim()}`);
    const lines = out.stdout.split("\n").filter(Boolean);
    const titles = lines[0].trim().split(/\s+/);
    const pidCol = titles.indexOf("PID");
    if (pidCol < 0) throw new EngineError(500, `Couldn't find PID field in ps output`);
    const procs: string[][] = [];
    for (const line of lines.slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (!pids.has(Number(fields[pidCol]))) continue;
      const row = fields.slice(0, titles.length - 1);
      row.push(fields.slice(titles.length - 1).join(" "));
      procs.push(row);
    }
    this.#event(r, "top");
    return { Titles: titles, Processes: procs };
  }

  stats(ref: string, prev?: Record<string, unknown>): Record<string, unknown> {
    const r = this.lookup(ref);
    const now = new Date().toISOString();
    const zeroCpu = { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } };
    const base = {
      read: now,
      preread: (prev?.read as string) ?? ZERO_TIME,
      name: r.Name,
      id: r.Id,
      pids_stats: {},
      blkio_stats: { io_service_bytes_recursive: null, io_serviced_recursive: null, io_queue_recursive: null, io_service_time_recursive: null, io_wait_time_recursive: null, io_merged_recursive: null, io_time_recursive: null, sectors_recursive: null },
      num_procs: 0,
      storage_stats: {},
      precpu_stats: (prev?.cpu_stats as unknown) ?? zeroCpu,
      networks: undefined,
    };
    if (!r.State.Running || !r.berth.cgroup) return { ...base, read: ZERO_TIME, cpu_stats: zeroCpu, memory_stats: {} };
    const s = cgroupStats(r.berth.cgroup);
    const cpus = readOnlineCpus();
    return {
      ...base,
      blkio_stats: readBlkio(r.berth.cgroup),
      networks: r.State.Pid ? readNetworks(r.State.Pid) : undefined,
      pids_stats: { current: s.pids?.current ?? 0, limit: s.pids?.limit ?? 0 },
      cpu_stats: {
        cpu_usage: { total_usage: s.cpu?.usageNs ?? 0, usage_in_kernelmode: s.cpu?.systemNs ?? 0, usage_in_usermode: s.cpu?.userNs ?? 0 },
        system_cpu_usage: systemCpuNs(),
        online_cpus: cpus,
        throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
      },
      memory_stats: {
        usage: s.memory?.usage ?? 0,
        max_usage: s.memory?.maxUsage ?? 0,
        limit: s.memory?.limit && s.memory.limit < 2 ** 62 ? s.memory.limit : hostMemory(),
        stats: s.memory?.stat ?? {},
      },
    };
  }

  // ---- filesystem: cp, export, diff ---------------------------------------------------------------

  /**
   * Runs fn with a host path to the container's root filesystem. A stopped container's is mounted in a
   * directory of its own under <exec-root>/mnt, with its volumes and bind mounts at their targets when
   * `volumes` is set (cp reads and writes what the container would, as docker's); everything is
   * unmounted, in reverse, and the directory removed before this returns, also on errors.
   */
  async withRootfs<T>(ref: string, fn: (root: string) => Promise<T>, o: { volumes?: boolean } = {}): Promise<T> {
    const r = this.lookup(ref);
    if (r.State.Running && r.State.Pid) return fn(`/proc/${r.State.Pid}/root`);
    return this.#mutex.run(r.Id, async () => {
      if (r.State.Running && r.State.Pid) return fn(`/proc/${r.State.Pid}/root`);
      const mntRoot = join(this.execRoot, "mnt");
      mkdirSync(mntRoot, { recursive: true });
      const mnt = mkdtempSync(join(mntRoot, `${r.Id.slice(0, 12)}-`));
      const mounted: string[] = [];
      try {
        const dir = this.#dir(r.Id);
        const work = join(dir, "work");
        rmSync(work, { recursive: true, force: true });
        mkdirSync(work);
        const m = overlayMount(r.berth.lowerDirs, join(dir, "upper"), work, join(dir, "lower"));
        const res = await runCapture("mount", ["-t", "overlay", "overlay", "-o", m.data, mnt], undefined, m.cwd);
        if (res.code !== 0) throw new EngineError(500, `cannot mount the container's filesystem: ${res.stderr.trim()}`);
        mounted.push(mnt);
        if (o.volumes) {
          // As dockerd's cp: a volume with a filesystem of its own (tmpfs, bind) is mounted meanwhile.
          this.#startingWithVolumes.add(r.Id);
          try {
            this.#mountOptionedVolumes(r, false);
            mountVolumes(mnt, r.Mounts, mounted);
          } catch (err) {
            throw new EngineError(500, (err as Error).message);
          }
        }
        return await fn(mnt);
      } finally {
        for (const p of mounted.reverse()) unmountNow(p);
        if (this.#startingWithVolumes.delete(r.Id)) this.#releaseOptionedVolumes(r);
        // Not recursive: were anything still mounted there, its files would go.
        try { rmdirSync(mnt); } catch (err) { this.#log(`cp: cannot remove ${mnt}: ${(err as Error).message}`); }
      }
    });
  }

  /** docker diff: [{Path, Kind}] with Kind 0 changed, 1 added, 2 deleted. */
  changes(ref: string): { Path: string; Kind: number }[] {
    const r = this.lookup(ref);
    const upper = join(this.#dir(r.Id), "upper");
    const out: { Path: string; Kind: number }[] = [];
    const inLower = (rel: string) => r.berth.lowerDirs.some((d) => { try { lstatSync(join(d, rel)); return true; } catch { return false; } });
    const skip = initLayerPaths(upper, inLower);
    const walk = (rel: string) => {
      let names: string[];
      try { names = readdirSync(join(upper, rel)); } catch { return; }
      for (const n of names.sort()) {
        const p = rel ? `${rel}/${n}` : n;
        if (skip.has(p)) continue;
        const st = lstatSync(join(upper, p));
        if (st.isCharacterDevice() && st.rdev === 0) { out.push({ Path: `/${p}`, Kind: 2 }); continue; }
        out.push({ Path: `/${p}`, Kind: inLower(p) ? 0 : 1 });
        if (st.isDirectory()) walk(p);
      }
    };
    walk("");
    return out;
  }

  /** docker commit: the container's changes as a new image on top of its image. */
  async commit(ref: string, o: { repo?: string; tag?: string; comment?: string; author?: string; pause?: boolean; overrides?: Partial<ContainerConfig>; changes?: Change[] }): Promise<string> {
    const r = this.lookup(ref);
    const paused = o.pause !== false && r.State.Running && !r.State.Paused && r.berth.cgroup;
    if (paused && r.berth.cgroup) await freezeCgroup(r.berth.cgroup);
    try {
      const { commitContainer } = await import("./commit.js");
      mkdirSync(join(this.dataRoot, "tmp"), { recursive: true });
      const id = await commitContainer({
        store: this.images.store, imageId: r.Image, upper: join(this.#dir(r.Id), "upper"), tmpDir: join(this.dataRoot, "tmp"),
        skip: initLayerPaths(join(this.#dir(r.Id), "upper"), (rel) => r.berth.lowerDirs.some((d) => { try { lstatSync(join(d, rel)); return true; } catch { return false; } })),
        // The built-in host image is a directory, not a stored image: its rootfs becomes the base layer.
        baseRootfs: r.Image === HOST_IMAGE_ID ? r.berth.lowerDirs[0] : undefined,
        containerConfig: r.Config, repo: o.repo, tag: o.tag, comment: o.comment, author: o.author, overrides: o.overrides, changes: o.changes,
      });
      this.#event(r, "commit");
      return id;
    } finally {
      if (paused && r.berth.cgroup) await thawCgroup(r.berth.cgroup).catch(() => undefined);
    }
  }

  // ---- prune, volumes, info ---------------------------------------------------------------------

  async prune(filters: Filters): Promise<{ ContainersDeleted: string[]; SpaceReclaimed: number }> {
    const deleted: string[] = [];
    let space = 0;
    for (const r of this.list()) {
      if (r.State.Running || r.State.Restarting) continue;
      if (filters.label && !filters.label.every((l) => (l.includes("=") ? r.Config.Labels[l.split("=")[0]] === l.slice(l.indexOf("=") + 1) : l in r.Config.Labels))) continue;
      if (filters.until && filters.until.some((u) => Date.parse(r.Created) > (/^\d+$/.test(u) ? Number(u) * 1000 : Date.parse(u)))) continue;
      space += duBytes(join(this.#dir(r.Id), "upper"));
      await this.remove(r.Id, {}).then(() => deleted.push(r.Id), () => undefined);
    }
    return { ContainersDeleted: deleted, SpaceReclaimed: space };
  }

  /**
   * Mounts the filesystems of r's volumes that have type/device/o (dockerd's local driver, on a
   * container's start), and copies the image's content into a freshly mounted empty one.
   */
  #mountOptionedVolumes(r: ContainerRecord, copyUpFresh = true): void {
    for (const m of r.Mounts) {
      if (m.Type !== "volume" || !m.Name) continue;
      const v = this.volumes.get(m.Name);
      if (!v || !hasMountOptions(v)) continue;
      const fresh = this.volumes.mountOptioned(v);
      if (fresh && copyUpFresh && r.berth.copyUpOnMount?.includes(m.Destination)) copyUp(r.berth.lowerDirs, m.Destination, v.Mountpoint);
    }
  }

  /** Unmounts r's volume filesystems that no other container uses now (running, or starting). */
  #releaseOptionedVolumes(r: ContainerRecord): void {
    for (const m of r.Mounts) {
      if (m.Type !== "volume" || !m.Name) continue;
      const v = this.volumes.get(m.Name);
      if (v) this.#releaseOptionedVolume(v);
    }
  }

  #releaseOptionedVolume(v: Volume): void {
    if (!hasMountOptions(v) || !isMountPoint(v.Mountpoint)) return;
    const inUse = this.list().some((c) => (c.State.Running || this.#startingWithVolumes.has(c.Id)) && c.Mounts.some((m) => m.Type === "volume" && m.Name === v.Name));
    if (!inUse) this.volumes.unmountOptioned(v);
  }

  volumeUsers(name: string): string[] {
    return this.list().filter((r) => r.Mounts.some((m) => m.Type === "volume" && m.Name === name)).map((r) => r.Id);
  }

  removeVolume(name: string, force = false): void {
    this.volumes.remove(name, this.volumeUsers(name), force);
    this.events.publish("volume", "destroy", name, { driver: "local" });
  }

  pruneVolumes(filters: Filters): { VolumesDeleted: string[]; SpaceReclaimed: number } {
    const all = (filters.all ?? []).some((v) => v === "true" || v === "1");
    const deleted: string[] = [];
    let space = 0;
    for (const v of this.volumes.list()) {
      if (!all && !v.anonymous) continue;
      if (this.volumeUsers(v.Name).length > 0) continue;
      if (filters.label && !filters.label.every((l) => (l.includes("=") ? v.Labels[l.split("=")[0]] === l.slice(l.indexOf("=") + 1) : l in v.Labels))) continue;
      space += duBytes(v.Mountpoint);
      try { this.removeVolume(v.Name); deleted.push(v.Name); } catch { /* in use meanwhile */ }
    }
    return { VolumesDeleted: deleted, SpaceReclaimed: space };
  }

  counts(): { total: number; running: number; paused: number; stopped: number } {
    const all = this.list();
    const running = all.filter((r) => r.State.Running && !r.State.Paused).length;
    const paused = all.filter((r) => r.State.Paused).length;
    return { total: all.length, running, paused, stopped: all.length - running - paused };
  }

  diskUsageContainers(): Record<string, unknown>[] {
    return this.listJson({ all: true, size: true });
  }
}

type PortMap = Record<string, { HostIp: string; HostPort: string }[] | null>;

/**
 * /containers/json's Ports from NetworkSettings.Ports: one entry per host binding, and an exposed port
 * without one as just its number and protocol, as dockerd lists them.
 */
export function apiPorts(ports: PortMap | undefined): { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[] {
  const out: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[] = [];
  for (const [key, bindings] of Object.entries(ports ?? {})) {
    const [port, type = "tcp"] = key.split("/");
    const PrivatePort = Number(port);
    if (!bindings || bindings.length === 0) out.push({ PrivatePort, Type: type });
    else for (const b of bindings) out.push({ IP: b.HostIp || "0.0.0.0", PrivatePort, PublicPort: Number(b.HostPort), Type: type });
  }
  return out;
}

// ---- host helpers ---------------------------------------------------------------------------------

function networkSettings(mode: string): Record<string, unknown> {
  const net = mode === "default" ? "bridge" : mode;
  return {
    Bridge: "", SandboxID: "", SandboxKey: "", HairpinMode: false, LinkLocalIPv6Address: "", LinkLocalIPv6PrefixLen: 0,
    Ports: {}, SecondaryIPAddresses: null, SecondaryIPv6Addresses: null,
    EndpointID: "", Gateway: "", GlobalIPv6Address: "", GlobalIPv6PrefixLen: 0, IPAddress: "", IPPrefixLen: 0, IPv6Gateway: "", MacAddress: "",
    Networks: { [net]: { IPAMConfig: null, Links: null, Aliases: null, NetworkID: net, EndpointID: "", Gateway: "", IPAddress: "", IPPrefixLen: 0, IPv6Gateway: "", GlobalIPv6Address: "", GlobalIPv6PrefixLen: 0, MacAddress: "", DriverOpts: null } },
  };
}

function readHostname(): string {
  try { return readFileSync("/proc/sys/kernel/hostname", "utf8").trim(); } catch { return "localhost"; }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const st = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return st === "Z" || st === "X";
  } catch {
    return true;
  }
}

/** Detaches a mount before returning (lazily: a busy one goes too), so that its directory may be removed. */
export function umount(path: string): void {
  spawnSync("umount", ["-l", path], { stdio: "ignore" });
}

export function runCapture(cmd: string, args: string[], input?: Buffer, cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: [input ? "pipe" : "ignore", "pipe", "pipe"], cwd });
    let stdout = "";
    let stderr = "";
    p.stdout?.on("data", (d: Buffer) => { stdout += d.toString(); });
    p.stderr?.on("data", (d: Buffer) => { stderr += d.toString(); });
    p.on("error", (err) => resolve({ code: 127, stdout, stderr: err.message }));
    p.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
    if (input) p.stdin?.end(input);
  });
}

/** Copies the image's content at `target` into an empty volume (docker's copy-up on first use). */
function copyUp(lowerDirs: string[], target: string, dest: string): void {
  if (readdirSync(dest).length > 0) return;
  // Layers are stacked: copy bottom-up so upper layers win (whiteouts are not followed: rare here).
  for (const d of [...lowerDirs].reverse()) {
    const src = join(d, target);
    try {
      if (!statSync(src).isDirectory()) continue;
    } catch {
      continue;
    }
    spawnSyncCp(src, dest);
  }
}

function spawnSyncCp(src: string, dest: string): void {
  // cp -a keeps owners, modes, links and xattrs.
  spawnSync("cp", ["-a", `${src}/.`, `${dest}/`], { stdio: "ignore" });
}

export function duBytes(path: string): number {
  let total = 0;
  const walk = (p: string) => {
    let st;
    try { st = lstatSync(p); } catch { return; }
    if (st.isDirectory()) {
      let names: string[] = [];
      try { names = readdirSync(p); } catch { /* unreadable */ }
      for (const n of names) walk(join(p, n));
    } else if (st.isFile()) total += st.size;
    else if (st.isSymbolicLink()) { try { total += readlinkSync(p).length; } catch { /* gone */ } }
  };
  walk(path);
  return total;
}

const duCache = new Map<string, number>();
function duBytesCached(path: string): number {
  let v = duCache.get(path);
  if (v === undefined) { v = duBytes(path); duCache.set(path, v); }
  return v;
}

function readOnlineCpus(): number {
  try {
    const text = readFileSync("/sys/devices/system/cpu/online", "utf8").trim();
    let n = 0;
    for (const part of text.split(",")) {
      const [a, b] = part.split("-").map(Number);
      n += b === undefined ? 1 : b - a + 1;
    }
    return n;
  } catch {
    return 1;
  }
}

function systemCpuNs(): number {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
    const ticks = line.split(/\s+/).slice(1, 8).map(Number).reduce((a, b) => a + b, 0);
    return ticks * (1e9 / 100);
  } catch {
    return 0;
  }
}

export function hostMemory(): number {
  try {
    const m = /MemTotal:\s+(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

