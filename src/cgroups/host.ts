// Host detection: which cgroup layout this machine has and where our own cgroup is in it. The parser is
// pure (fixtures in tests); readCgroupHost adds the facts only the filesystem knows and caches them.

import { readFileSync, readdirSync } from "node:fs";
import { posix } from "node:path";
import { BerthError } from "../errors.js";
import type { CgroupHost, V1Hierarchy, V2Host } from "./types.js";

const CGROUP_ROOT = "/sys/fs/cgroup";

interface MountEntry {
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountinfo(mountinfo: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of mountinfo.split("\n")) {
    if (!line.trim()) continue;
    const fields = line.split(" ");
    const dash = fields.indexOf("-", 6);
    if (dash < 0 || fields.length < dash + 3) continue;
    out.push({
      root: unescapeMountPath(fields[3]),
      mountPoint: unescapeMountPath(fields[4]),
      fsType: fields[dash + 1],
      superOptions: (fields[dash + 3] ?? "").split(","),
    });
  }
  return out;
}

interface ProcCgroupLine {
  controllers: string[];
  path: string;
}

export function parseProcCgroup(procSelfCgroup: string): ProcCgroupLine[] {
  const out: ProcCgroupLine[] = [];
  for (const line of procSelfCgroup.split("\n")) {
    if (!line.trim()) continue;
    // "ID:controllers:path"; the path may itself contain ':'.
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const list = line.slice(first + 1, second);
    out.push({ controllers: list === "" ? [] : list.split(","), path: line.slice(second + 1) });
  }
  return out;
}

/** `path` below `root` ("/" when equal), or undefined when the mount does not reach it. */
function relativeToRoot(path: string, root: string): string | undefined {
  if (root === "/") return path;
  if (path === root) return "/";
  if (path.startsWith(root + "/")) return path.slice(root.length);
  return undefined;
}

/**
 * Decide the cgroup layout from /proc/self/cgroup and /proc/self/mountinfo. v2 = /sys/fs/cgroup is
 * itself cgroup2; hybrid = v1 hierarchies plus a cgroup2 mount (driven as v1); v1 otherwise.
 * v2's `controllers` are left empty: readCgroupHost fills them from cgroup.controllers.
 */
export function parseCgroupHost(procSelfCgroup: string, mountinfo: string): CgroupHost {
  const mounts = parseMountinfo(mountinfo);
  const lines = parseProcCgroup(procSelfCgroup);

  // The last mount at a path is the visible one (mounts stack).
  const atRoot = mounts.filter((m) => m.mountPoint === CGROUP_ROOT).at(-1);
  const unifiedLine = lines.find((l) => l.controllers.length === 0);
  if (atRoot?.fsType === "cgroup2") {
    return v2FromMount(atRoot, unifiedLine);
  }

  const hierarchies: V1Hierarchy[] = [];
  for (const line of lines) {
    const controllers = line.controllers.filter((c) => !c.startsWith("name="));
    if (controllers.length === 0) continue; // the unified line or a named-only hierarchy
    const candidates = mounts.filter((m) => m.fsType === "cgroup" && controllers.every((c) => m.superOptions.includes(c)));
    // Prefer the conventional location; among the rest, the first mount that reaches our cgroup.
    candidates.sort((a, b) => Number(!a.mountPoint.startsWith(CGROUP_ROOT + "/")) - Number(!b.mountPoint.startsWith(CGROUP_ROOT + "/")));
    for (const m of candidates) {
      const ownPath = relativeToRoot(line.path, m.root);
      if (ownPath === undefined) continue;
      hierarchies.push({ controllers, mountPoint: m.mountPoint, mountRoot: m.root, ownPath });
      break;
    }
  }

  const cgroup2 = mounts.filter((m) => m.fsType === "cgroup2");
  if (hierarchies.length === 0) {
    // No v1 hierarchy: a lone cgroup2 mount elsewhere is still usable as v2.
    if (cgroup2.length > 0) return v2FromMount(cgroup2[0], unifiedLine);
    throw new BerthError("cgroup: no cgroup filesystem is mounted (nothing of type cgroup or cgroup2 in /proc/self/mountinfo); mount one at /sys/fs/cgroup");
  }
  if (cgroup2.length > 0) {
    const unified = cgroup2[0];
    const unifiedOwnPath = unifiedLine ? relativeToRoot(unifiedLine.path, unified.root) : undefined;
    return { mode: "hybrid", hierarchies, unifiedMountPoint: unified.mountPoint, unifiedMountRoot: unified.root, unifiedOwnPath };
  }
  return { mode: "v1", hierarchies };
}

function v2FromMount(m: MountEntry, line: ProcCgroupLine | undefined): V2Host {
  const procPath = line?.path ?? "/";
  const ownPath = relativeToRoot(procPath, m.root);
  if (ownPath === undefined) {
    throw new BerthError(`cgroup: our cgroup ${procPath} is outside the cgroup2 mount at ${m.mountPoint} (mount root ${m.root}); mount the hierarchy so it contains this process's cgroup`);
  }
  return { mode: "v2", mountPoint: m.mountPoint, mountRoot: m.root, ownPath, controllers: [] };
}

function readList(path: string): string[] | undefined {
  try {
    return readFileSync(path, "utf8").split(/\s+/).filter(Boolean);
  } catch {
    return undefined;
  }
}

function listDir(path: string): Set<string> | undefined {
  try {
    return new Set(readdirSync(path));
  } catch {
    return undefined;
  }
}

/** Add the facts only the filesystem knows: files per v1 hierarchy; v2 controllers and delegation. */
export function probeCgroupHost(host: CgroupHost): CgroupHost {
  if (host.mode === "v2") {
    const own = posix.join(host.mountPoint, host.ownPath);
    const controllers = readList(posix.join(own, "cgroup.controllers"));
    if (!controllers) throw new BerthError(`cgroup: cannot read ${own}/cgroup.controllers; is cgroup2 mounted at ${host.mountPoint}?`);
    return {
      ...host,
      controllers,
      subtreeControl: readList(posix.join(own, "cgroup.subtree_control")),
      rootSubtreeControl: readList(posix.join(host.mountPoint, "cgroup.subtree_control")),
      // The root cgroup has no controller files, so its listing would say nothing about the kernel.
      files: host.ownPath === "/" ? undefined : listDir(own),
    };
  }
  return {
    ...host,
    hierarchies: host.hierarchies.map((h) => ({ ...h, files: listDir(posix.join(h.mountPoint, h.ownPath)) })),
  };
}

/**
 * A hybrid host's cgroup2 (unified) hierarchy described as a v2 host, probed: planning with it puts the
 * container's cgroup there and nowhere else, so device rules are enforced by the eBPF filter alone.
 * Not used by default (hybrid hosts are driven through their v1 controllers); it lets the v2 device
 * path run on a hybrid machine. Undefined when the host is not hybrid or our cgroup2 path is unknown.
 */
export function unifiedHost(host: CgroupHost): V2Host | undefined {
  if (host.mode !== "hybrid" || !host.unifiedMountPoint || host.unifiedOwnPath === undefined) return undefined;
  const v2: V2Host = { mode: "v2", mountPoint: host.unifiedMountPoint, mountRoot: host.unifiedMountRoot ?? "/", ownPath: host.unifiedOwnPath, controllers: [] };
  return probeCgroupHost(v2) as V2Host;
}

let cached: CgroupHost | undefined;

/** The host's cgroup layout with probed facts, read once per process. */
export function readCgroupHost(): CgroupHost {
  if (!cached) {
    const host = parseCgroupHost(readFileSync("/proc/self/cgroup", "utf8"), readFileSync("/proc/self/mountinfo", "utf8"));
    cached = probeCgroupHost(host);
  }
  return cached;
}

/** Forget the cached host (tests; or after the process moved to another cgroup). */
export function resetCgroupHostCache(): void {
  cached = undefined;
}
