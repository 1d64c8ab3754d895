// Shapes shared by the cgroup layer: the host facts (detected once, injected into the pure planner) and
// the plan (what to create, write and mount), which the effect functions carry out.

import type { DeviceCgroupRule } from "../oci/spec.js";

export type CgroupMode = "v1" | "v2" | "hybrid";

/** One mounted v1 hierarchy, as this process sees it. */
export interface V1Hierarchy {
  /** Kernel controllers of the hierarchy, e.g. ["cpu", "cpuacct"] or ["memory"]; named ones (name=systemd) excluded. */
  controllers: string[];
  /** Where the hierarchy is mounted, e.g. /sys/fs/cgroup/memory. */
  mountPoint: string;
  /** The mount's root inside the hierarchy (mountinfo field 4); "/" unless a subtree is bind-mounted. */
  mountRoot: string;
  /** This process's cgroup below the mount point (the /proc/self/cgroup path made relative to mountRoot). */
  ownPath: string;
  /** File names present in our own cgroup dir there; lets the planner refuse limits the kernel lacks.
   *  Undefined = unknown (the planner then assumes present and a missing file fails at write time). */
  files?: Set<string>;
}

export interface V1Host {
  mode: "v1" | "hybrid";
  hierarchies: V1Hierarchy[];
  /** Hybrid only: the cgroup2 mount (e.g. /sys/fs/cgroup/unified). Not driven by Berth by default. */
  unifiedMountPoint?: string;
  /** Hybrid only: that mount's root and our cgroup2 path below it (see unifiedHost in host.ts). */
  unifiedMountRoot?: string;
  unifiedOwnPath?: string;
}

export interface V2Host {
  mode: "v2";
  mountPoint: string;
  mountRoot: string;
  ownPath: string;
  /** Controllers available to our own cgroup (its cgroup.controllers). */
  controllers: string[];
  /** Controllers our own cgroup hands to its children (its cgroup.subtree_control); undefined = unknown. */
  subtreeControl?: string[];
  /** The same for the hierarchy root, which absolute cgroupsPaths hang from. */
  rootSubtreeControl?: string[];
  /** File names in our own cgroup dir when it is not the root (e.g. whether memory.swap.max exists). */
  files?: Set<string>;
}

export type CgroupHost = V1Host | V2Host;

/** One write of a cgroup file. With `copyFrom`, the value is read from that file at apply time (cpuset). */
export interface CgroupWrite {
  path: string;
  value: string;
  copyFrom?: string;
}

export interface CgroupPlan {
  mode: CgroupMode;
  /** Absolute dirs to mkdir, parents first (after createCgroup: only those it made). */
  dirs: string[];
  /** The container's cgroup dir in each hierarchy (v2: one). */
  leaves: string[];
  writes: CgroupWrite[];
  /** cgroup.procs files to write the container's pid into, one per hierarchy. */
  procsFiles: string[];
  /** Bind mounts giving the container its own cgroup at /sys/fs/cgroup[/<hierarchy>]. */
  mounts: { source: string; destination: string }[];
  /** Symlinks for co-mounted v1 hierarchies, e.g. /sys/fs/cgroup/cpu -> cpu,cpuacct. */
  symlinks: { target: string; path: string }[];
  /** v1: controller -> container cgroup dir; v2: every controller maps to the one dir. */
  paths: Record<string, string>;
  /** The dir stats read first (v1: memory's, v2: the single dir). */
  primaryPath: string;
  /**
   * v2 device rules: not cgroup files but an eBPF program (src/cgroups/device-filter.ts) that the
   * helper attaches to `cgroup` before the container's process exists (op "cgroupDeviceFilter").
   */
  deviceFilter?: { cgroup: string; rules: DeviceCgroupRule[] };
  /** Human-readable notes about choices made (e.g. systemd-style path mapped to cgroupfs). */
  notes: string[];
}
