// Docker's JSON shapes for containers (as the Engine API returns them) and Berth's private additions.

import type { CgroupPlan } from "../cgroups/index.js";
import type { RestartPolicy } from "./restart.js";

export interface HealthConfig {
  Test?: string[];
  Interval?: number; // ns
  Timeout?: number;
  Retries?: number;
  StartPeriod?: number;
  StartInterval?: number;
}

export interface ContainerConfig {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  ExposedPorts?: Record<string, object>;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[];
  Cmd: string[] | null;
  Healthcheck?: HealthConfig;
  Image: string;
  Volumes: Record<string, object> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  OnBuild: null;
  Labels: Record<string, string>;
  StopSignal?: string;
  StopTimeout?: number;
}

export interface MountSpec {
  Type: "bind" | "volume" | "tmpfs";
  Source?: string;
  Target: string;
  ReadOnly?: boolean;
  TmpfsOptions?: { SizeBytes?: number; Mode?: number };
  /** DriverConfig: the driver and its options (type/device/o) for a volume this mount creates. */
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string>; DriverConfig?: { Name?: string; Options?: Record<string, string> } };
  BindOptions?: { Propagation?: string; CreateMountpoint?: boolean };
}

export interface HostConfig {
  Binds: string[] | null;
  ContainerIDFile: string;
  LogConfig: { Type: string; Config: Record<string, string> };
  NetworkMode: string;
  PortBindings: Record<string, { HostIp: string; HostPort: string }[]> | null;
  RestartPolicy: RestartPolicy;
  AutoRemove: boolean;
  VolumeDriver: string;
  VolumesFrom: string[] | null;
  ConsoleSize: [number, number];
  CapAdd: string[] | null;
  CapDrop: string[] | null;
  Dns: string[];
  DnsOptions: string[];
  DnsSearch: string[];
  ExtraHosts: string[] | null;
  GroupAdd: string[] | null;
  IpcMode: string;
  Cgroup: string;
  Links: string[] | null;
  OomScoreAdj: number;
  PidMode: string;
  Privileged: boolean;
  PublishAllPorts: boolean;
  ReadonlyRootfs: boolean;
  SecurityOpt: string[] | null;
  Tmpfs?: Record<string, string>;
  UTSMode: string;
  UsernsMode: string;
  ShmSize: number;
  Runtime: string;
  Isolation: string;
  CpuShares: number;
  Memory: number;
  NanoCpus: number;
  CgroupParent: string;
  BlkioWeight: number;
  CpuPeriod: number;
  CpuQuota: number;
  CpusetCpus: string;
  CpusetMems: string;
  MemoryReservation: number;
  MemorySwap: number;
  MemorySwappiness: number | null;
  OomKillDisable: boolean | null;
  PidsLimit: number | null;
  Ulimits: { Name: string; Soft: number; Hard: number }[] | null;
  Sysctls?: Record<string, string>;
  Devices: { PathOnHost: string; PathInContainer: string; CgroupPermissions: string }[] | null;
  CgroupnsMode: string;
  Mounts?: MountSpec[];
  Init: boolean | null;
  MaskedPaths?: string[];
  ReadonlyPaths?: string[];
}

export interface HealthLogEntry {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

export interface ContainerStateJson {
  Status: "created" | "running" | "paused" | "restarting" | "removing" | "exited" | "dead";
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
  Health?: { Status: "starting" | "healthy" | "unhealthy"; FailingStreak: number; Log: HealthLogEntry[] };
}

export interface MountPoint {
  Type: "bind" | "volume" | "tmpfs";
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

/** Berth's private part of a container record (never shown in inspect). */
export interface BerthPrivate {
  lowerDirs: string[];
  imageName: string;
  cgroup?: CgroupPlan;
  pid?: number;
  pidStart?: string;
  /** The container's monitor (native/monitor.c), which outlives the daemon. */
  monitorPid?: number;
  monitorStart?: string;
  /** Set by stop/kill through the API: restart policies (except always on daemon start) hold off. */
  manuallyStopped: boolean;
  /** Anonymous volumes made for this container (removed by rm -v). */
  anonVolumes: string[];
  /**
   * Targets of its volumes that mount a filesystem (type/device/o) and take the image's content when
   * freshly mounted empty (copy-up at start, not at create: the mount would hide it); nocopy ones not.
   */
  copyUpOnMount?: string[];
  /** Tmpfs mounts from --tmpfs and --mount type=tmpfs. */
  tmpfs: { target: string; options: string[] }[];
  /** The resolved stop signal and timeout. */
  stopSignal: string;
  /** The create request's endpoint settings for its network (NetworkingConfig): --ip, --network-alias, --mac-address. */
  endpoint?: { ip?: string; aliases?: string[]; mac?: string };
  /**
   * The networks the container is attached to when it starts, by name, with their endpoint settings:
   * set by the first `network connect`/`disconnect`; absent: just its NetworkMode's network (`endpoint`).
   */
  networks?: Record<string, { ip?: string; aliases?: string[]; mac?: string }>;
}

export interface ContainerRecord {
  Id: string;
  Created: string;
  Path: string;
  Args: string[];
  State: ContainerStateJson;
  Image: string;
  ResolvConfPath: string;
  HostnamePath: string;
  HostsPath: string;
  LogPath: string;
  Name: string;
  RestartCount: number;
  Driver: string;
  Platform: string;
  MountLabel: string;
  ProcessLabel: string;
  AppArmorProfile: string;
  ExecIDs: string[] | null;
  HostConfig: HostConfig;
  GraphDriver: { Name: string; Data: Record<string, string> };
  Mounts: MountPoint[];
  Config: ContainerConfig;
  NetworkSettings: Record<string, unknown>;
  berth: BerthPrivate;
}
