// The pure planner: host facts + cgroupsPath + OCI resources -> the dirs to create, the files to write
// in order, where the container's pid goes and how the container sees its cgroup. No I/O here.

import { posix } from "node:path";
import { BerthError } from "../errors.js";
import type { DeviceCgroupRule, Resources } from "../oci/spec.js";
import { cannotApply } from "./common.js";
import { compileDeviceFilter } from "./device-filter.js";
import type { CgroupHost, CgroupPlan, CgroupWrite, V1Host, V2Host } from "./types.js";
import {
  blkioV1Writes,
  cpuV1Writes,
  cpusetV1UpdateWrites,
  cpusetV1Writes,
  devicesV1Writes,
  hugetlbV1Writes,
  memoryV1Writes,
  netClsWrites,
  netPrioWrites,
  pidsWrites,
  rdmaWrites,
  v1ControllersNeeded,
  type MemoryCurrent,
} from "./v1.js";
import {
  cpuV2Writes,
  cpusetV2Writes,
  hugetlbV2Writes,
  ioV2Writes,
  memoryV2Writes,
  pidsV2Writes,
  rdmaV2Writes,
  unifiedWrites,
  v2Unsupported,
  type ControllerWrites,
} from "./v2.js";

export interface ResolvedCgroupsPath {
  /** From the hierarchy root (true) or from our own cgroup (false). */
  absolute: boolean;
  /** Path segments below that base; the last is the container's cgroup. */
  segments: string[];
  note?: string;
}

function checkSegment(segment: string, where: string): void {
  if (segment === "" || segment === "." || segment === ".." || segment.includes("/") || segment.includes("\0")) {
    throw new BerthError(`cgroup: invalid ${where}: "${segment}" is not a usable cgroup name (no empty, ".", ".." or "/")`);
  }
}

/** "a-b-c.slice" -> ["a.slice", "a-b.slice", "a-b-c.slice"], as systemd nests slices. */
export function expandSlice(slice: string): string[] {
  if (!slice.endsWith(".slice") || slice.includes("/")) {
    throw new BerthError(`cgroup: invalid systemd slice "${slice}" in cgroupsPath: expected a name like system.slice`);
  }
  const base = slice.slice(0, -".slice".length);
  if (base === "-") return [];
  if (base === "" || base.startsWith("-") || base.endsWith("-") || base.includes("--")) {
    throw new BerthError(`cgroup: invalid systemd slice "${slice}" in cgroupsPath`);
  }
  const parts = base.split("-");
  return parts.map((_, i) => `${parts.slice(0, i + 1).join("-")}.slice`);
}

/**
 * Where the container's cgroup goes. No cgroupsPath: `<own cgroup>/<name>`. "/a/b": from the hierarchy
 * root. "a/b": from our own cgroup. "slice:prefix:name" (systemd form): the path systemd would use,
 * created directly with cgroupfs.
 */
export function resolveCgroupsPath(cgroupsPath: string | undefined, name: string): ResolvedCgroupsPath {
  if (cgroupsPath === undefined || cgroupsPath === "") {
    checkSegment(name, "cgroup name");
    return { absolute: false, segments: [name] };
  }
  const parts = cgroupsPath.split(":");
  if (!cgroupsPath.startsWith("/") && parts.length === 3) {
    const [slice, prefix, unit] = parts;
    checkSegment(unit, `systemd cgroupsPath "${cgroupsPath}" name`);
    const scope = unit.endsWith(".slice") ? unit : prefix ? `${prefix}-${unit}.scope` : `${unit}.scope`;
    checkSegment(scope, `systemd cgroupsPath "${cgroupsPath}"`);
    return {
      absolute: true,
      segments: [...expandSlice(slice || "system.slice"), scope],
      note: `cgroupsPath "${cgroupsPath}" is in systemd form; Berth has no systemd driver and created the same path with the cgroupfs driver`,
    };
  }
  const absolute = cgroupsPath.startsWith("/");
  const segments = cgroupsPath.split("/").filter((s) => s !== "");
  if (segments.length === 0) {
    throw new BerthError(`cgroup: invalid cgroupsPath "${cgroupsPath}": it names the hierarchy root; give a path below it such as /berth/<id>`);
  }
  for (const s of segments) checkSegment(s, `cgroupsPath "${cgroupsPath}"`);
  return { absolute, segments };
}

/** The dir of `cgroupPath` in a hierarchy mounted at `mountPoint`, without a trailing slash. */
function dirIn(mountPoint: string, cgroupPath: string): string {
  const dir = posix.join(mountPoint, cgroupPath);
  return dir.length > 1 && dir.endsWith("/") ? dir.slice(0, -1) : dir;
}

function chain(baseDir: string, segments: string[]): string[] {
  return segments.map((_, i) => posix.join(baseDir, ...segments.slice(0, i + 1)));
}

export interface PlanOptions {
  cgroupsPath?: string;
  name: string;
  resources?: Resources;
}

export function planCgroup(host: CgroupHost, opts: PlanOptions): CgroupPlan {
  const resolved = resolveCgroupsPath(opts.cgroupsPath, opts.name);
  const plan = host.mode === "v2" ? planV2(host, resolved, opts.resources ?? {}) : planV1(host, resolved, opts.resources ?? {});
  if (resolved.note) plan.notes.push(resolved.note);
  return plan;
}

// ---- v1 / hybrid ----

/** Resource writes for v1 except cpuset (which differs between create and update). */
function v1ResourceWrites(host: V1Host, paths: Record<string, string>, r: Resources, current?: MemoryCurrent): CgroupWrite[] {
  for (const need of v1ControllersNeeded(r)) {
    if (!paths[need.controller]) {
      const why = host.mode === "hybrid" && need.controller === "hugetlb"
        ? "this hybrid host has no v1 hugetlb hierarchy (it lives in the unified hierarchy, which Berth does not drive in hybrid mode)"
        : `no v1 ${need.controller} hierarchy is mounted (or none reaches our cgroup)`;
      throw cannotApply(need.what, why);
    }
  }
  const files = (c: string) => host.hierarchies.find((h) => h.controllers.includes(c))?.files;
  const at = (c: string) => paths[c];
  return [
    ...(at("memory") ? memoryV1Writes(at("memory"), r.memory, files("memory"), current) : []),
    ...(at("cpu") ? cpuV1Writes(at("cpu"), r.cpu, files("cpu")) : []),
    ...(at("pids") ? pidsWrites(at("pids"), r.pids) : []),
    ...(at("devices") ? devicesV1Writes(at("devices"), r.devices) : []),
    ...(at("blkio") ? blkioV1Writes(at("blkio"), r.blockIO, files("blkio")) : []),
    ...(at("hugetlb") ? hugetlbV1Writes(at("hugetlb"), r.hugepageLimits, files("hugetlb")) : []),
    ...(at("net_cls") ? netClsWrites(at("net_cls"), r.network) : []),
    ...(at("net_prio") ? netPrioWrites(at("net_prio"), r.network) : []),
    ...(at("rdma") ? rdmaWrites(at("rdma"), r.rdma) : []),
  ];
}

function planV1(host: V1Host, resolved: ResolvedCgroupsPath, r: Resources): CgroupPlan {
  const plan: CgroupPlan = {
    mode: host.mode, dirs: [], leaves: [], writes: [], procsFiles: [], mounts: [], symlinks: [], paths: {}, primaryPath: "", notes: [],
  };
  const cpusetWrites: CgroupWrite[] = [];
  for (const h of host.hierarchies) {
    const baseDir = dirIn(h.mountPoint, resolved.absolute ? "/" : h.ownPath);
    const dirs = chain(baseDir, resolved.segments);
    const leaf = dirs[dirs.length - 1];
    plan.dirs.push(...dirs);
    plan.leaves.push(leaf);
    plan.procsFiles.push(`${leaf}/cgroup.procs`);
    for (const c of h.controllers) plan.paths[c] = leaf;
    const dirName = posix.basename(h.mountPoint);
    plan.mounts.push({ source: leaf, destination: `/sys/fs/cgroup/${dirName}` });
    for (const c of h.controllers) {
      if (c !== dirName) plan.symlinks.push({ target: dirName, path: `/sys/fs/cgroup/${c}` });
    }
    if (h.controllers.includes("cpuset")) cpusetWrites.push(...cpusetV1Writes(dirs, baseDir, r.cpu));
  }
  // cpuset first: the other writes do not depend on it, but a task cannot join before it is set.
  plan.writes = [...cpusetWrites, ...v1ResourceWrites(host, plan.paths, r)];
  plan.primaryPath = plan.paths.memory ?? plan.leaves[0] ?? "";
  return plan;
}

// ---- v2 ----

function v2ResourceWrites(dir: string, r: Resources, files: Set<string> | undefined): ControllerWrites[] {
  v2Unsupported(r);
  return [
    memoryV2Writes(dir, r.memory, files),
    cpuV2Writes(dir, r.cpu, files),
    cpusetV2Writes(dir, r.cpu),
    pidsV2Writes(dir, r.pids),
    ioV2Writes(dir, r.blockIO),
    hugetlbV2Writes(dir, r.hugepageLimits),
    rdmaV2Writes(dir, r.rdma),
    ...unifiedWrites(dir, r.unified),
  ].filter((cw) => cw.writes.length > 0);
}

/** Controllers (other than the always-present core "cgroup") that the writes need. */
function neededControllers(cws: ControllerWrites[]): string[] {
  return [...new Set(cws.map((cw) => cw.controller).filter((c) => c !== "cgroup"))];
}

/**
 * Refuse writes whose controller the base cgroup does not hand down. `enabled` is the base's
 * subtree_control when known; `available` its cgroup.controllers (empty = unknown).
 */
function checkV2Controllers(cws: ControllerWrites[], baseDir: string, enabled: string[] | undefined, available: string[]): void {
  for (const cw of cws) {
    if (cw.controller === "cgroup") continue;
    const what = `${cw.writes.map((w) => posix.basename(w.path)).join(", ")}`;
    if (available.length > 0 && !available.includes(cw.controller) && !enabled?.includes(cw.controller)) {
      throw cannotApply(what, `the ${cw.controller} controller is not available here (${baseDir}/cgroup.controllers: ${available.join(" ") || "empty"})`);
    }
    if (enabled && !enabled.includes(cw.controller)) {
      throw cannotApply(
        what,
        `the ${cw.controller} controller is not enabled for children of ${baseDir} (cgroup.subtree_control: ${enabled.join(" ") || "empty"}); ` +
          `enable it with "echo +${cw.controller} > ${baseDir}/cgroup.subtree_control" or give an absolute cgroupsPath under a cgroup that delegates it`,
      );
    }
  }
}

function planV2(host: V2Host, resolved: ResolvedCgroupsPath, r: Resources): CgroupPlan {
  const baseDir = dirIn(host.mountPoint, resolved.absolute ? "/" : host.ownPath);
  const dirs = chain(baseDir, resolved.segments);
  const leaf = dirs[dirs.length - 1];
  const cws = v2ResourceWrites(leaf, r, host.files);
  const baseIsRoot = resolved.absolute || host.ownPath === "/";
  const enabled = baseIsRoot ? host.rootSubtreeControl ?? (host.ownPath === "/" ? host.subtreeControl : undefined) : host.subtreeControl;
  // Our own cgroup.controllers says what the kernel offers us; from the root, everything it has.
  checkV2Controllers(cws, baseDir, enabled, baseIsRoot && !enabled ? [] : host.controllers);

  // Dirs Berth creates between the base and the leaf hand down everything the base hands down, so a
  // later update can set any limit the host allows.
  const delegate = enabled ?? neededControllers(cws);
  const subtreeWrites: CgroupWrite[] = delegate.length === 0 ? [] : dirs.slice(0, -1).map((dir) => ({
    path: `${dir}/cgroup.subtree_control`,
    value: delegate.map((c) => `+${c}`).join(" "),
  }));
  const plan: CgroupPlan = {
    mode: "v2",
    dirs,
    leaves: [leaf],
    writes: [...subtreeWrites, ...cws.flatMap((cw) => cw.writes)],
    procsFiles: [`${leaf}/cgroup.procs`],
    mounts: [{ source: leaf, destination: "/sys/fs/cgroup" }],
    symlinks: [],
    paths: Object.fromEntries([...new Set([...host.controllers, ...delegate, "cgroup"])].map((c) => [c, leaf])),
    primaryPath: leaf,
    notes: [],
  };
  if (r.devices) {
    // Compiled here only to refuse bad rules before anything is created; the launch compiles again.
    compileDeviceFilter(r.devices);
    plan.deviceFilter = { cgroup: leaf, rules: r.devices };
  }
  return plan;
}

export interface CgroupUpdate {
  writes: CgroupWrite[];
  /** v2: the device filter to attach in place of the current one (by the helper, op cgroupDeviceFilter with replace). */
  deviceFilter?: { cgroup: string; rules: DeviceCgroupRule[] };
}

/**
 * Writes to change the limits of an existing container cgroup. `current.memoryLimit` (v1) orders the
 * memory/memsw pair; `enabledV2` is the leaf's parent's cgroup.subtree_control (v2).
 */
export function planCgroupUpdate(
  host: CgroupHost,
  plan: CgroupPlan,
  resources: Resources,
  facts: { memoryLimit?: number; enabledV2?: string[] } = {},
): CgroupUpdate {
  if (host.mode === "v2") {
    const leaf = plan.primaryPath;
    const cws = v2ResourceWrites(leaf, resources, host.files);
    checkV2Controllers(cws, posix.dirname(leaf), facts.enabledV2, []);
    if (resources.devices) compileDeviceFilter(resources.devices); // refuse bad rules before any write
    return { writes: cws.flatMap((cw) => cw.writes), deviceFilter: resources.devices ? { cgroup: leaf, rules: resources.devices } : undefined };
  }
  const current = facts.memoryLimit === undefined ? undefined : { limit: facts.memoryLimit };
  const cpuset = plan.paths.cpuset ? cpusetV1UpdateWrites(plan.paths.cpuset, resources.cpu) : [];
  return { writes: [...cpuset, ...v1ResourceWrites(host, plan.paths, resources, current)] };
}
