// The one path from an OCI spec to a started container process, shared by `berth run` (via
// container.ts) and `berth-oci`: cgroup, seccomp, plan, helper; on any failure everything made is undone.

import { readFileSync, realpathSync, statSync } from "node:fs";
import { type CgroupHost, type CgroupPlan, compileDeviceFilter, createCgroup, destroyCgroup, planCgroup, readCgroupHost } from "../cgroups/index.js";
import { planContainer, type PlanContext } from "../core/container-plan.js";
import { deviceCgroupRules } from "../core/defaults.js";
import type { Op } from "../core/plan.js";
import type { Spec } from "../oci/spec.js";
import { compileSeccompCached } from "../seccomp/index.js";
import { type HelperRun, startHelper, type StdioEntry } from "./helper.js";
import { readHostFacts } from "./host-facts.js";

export interface LaunchOptions {
  spec: Spec;
  /** Absolute path of the container's root directory as the plan sees it. */
  rootfs: string;
  rootfsMounts?: PlanContext["rootfsMounts"];
  bundle?: string;
  /**
   * The cgroup layout to plan against; default the host's (readCgroupHost). A hybrid host's unified
   * hierarchy (unifiedHost) runs the cgroup v2 path there, device filter included.
   */
  cgroupHost?: CgroupHost;
  /** Leaf name of the container's cgroup under ours (when the spec gives no cgroupsPath). */
  cgroupName: string;
  execFifo?: string;
  console?: PlanContext["console"];
  detach?: boolean;
  dieWithController?: boolean;
  noPivot?: boolean;
  preserveFds?: number;
  stdio?: [StdioEntry, StdioEntry, StdioEntry];
  /** Runs once the process exists (host pid known), before it may continue. */
  beforeRelease?: (pid: number, cgroup: CgroupPlan) => Promise<void>;
  /** The state JSON for hooks run inside the container ("@PID@" stands for the pid). */
  hookState?: (status: string) => string;
  /** Called as soon as the cgroup exists, so a caller can record it for crash cleanup. */
  onCgroup?: (cgroup: CgroupPlan) => void;
  /**
   * The helper stays as the container's monitor (src/runtime/monitor.ts): it logs, serves attach and
   * writes the exit file, and survives the caller. `stdio` is then ignored (the container's stdio
   * are the monitor's pipes or pty) and a terminal uses the console in proxy mode.
   */
  monitor?: PlanContext["monitor"];
  /** Ops the helper runs after clone while the child waits (netlink requests that set up its network). */
  parentOps?: Op[];
}

export interface LaunchedContainer {
  run: HelperRun;
  /** The cgroup as created (only the dirs Berth made): pass this one to destroyCgroup. */
  cgroup: CgroupPlan;
}

export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

const isDirectory = (p: string) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return true;
  }
};

/** The mount points of this process's mount namespace, in mountinfo order (a parent before its children). */
export function mountPoints(): string[] {
  const out: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const field = line.split(" ")[4];
    if (field) out.push(field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/** The mount point holding `path` in this process's mount namespace (the longest prefix). */
export function mountPointOf(path: string): string | undefined {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return undefined;
  }
  let best: string | undefined;
  for (const mp of mountPoints()) {
    const under = mp === "/" || real === mp || real.startsWith(mp + "/");
    if (under && (best === undefined || mp.length > best.length)) best = mp;
  }
  return best;
}

/** Resolves once the process has exec'd ("started") or waits on the exec fifo ("created"). */
export async function launchContainer(o: LaunchOptions): Promise<LaunchedContainer> {
  const spec = o.spec;
  const resources = { ...spec.linux?.resources, devices: deviceCgroupRules(spec) };
  const planned = planCgroup(o.cgroupHost ?? readCgroupHost(), { name: o.cgroupName, cgroupsPath: spec.linux?.cgroupsPath, resources });
  const seccomp = spec.linux?.seccomp ? compileSeccompCached(spec.linux.seccomp, { arch: process.arch }) : undefined;
  const deviceFilter = planned.deviceFilter
    ? { cgroup: planned.deviceFilter.cgroup, program: compileDeviceFilter(planned.deviceFilter.rules) }
    : undefined;
  const cgroup = createCgroup(planned);
  o.onCgroup?.(cgroup);
  let run: HelperRun | undefined;
  try {
    const plan = planContainer(spec, {
      rootfs: o.rootfs,
      rootfsMounts: o.rootfsMounts,
      bundle: o.bundle,
      cgroup,
      host: readHostFacts(),
      isDirectory,
      execFifo: o.execFifo,
      console: o.console ?? (o.monitor && spec.process?.terminal ? { mode: "proxy" } : undefined),
      detach: o.detach,
      dieWithController: o.dieWithController,
      noPivot: o.noPivot,
      mountPointOf,
      seccomp,
      deviceFilter,
      preserveFds: o.preserveFds,
      hookState: o.hookState,
      monitor: o.monitor,
    });
    if (o.parentOps?.length) plan.ops.push(...o.parentOps);
    const extraFds = Array.from({ length: o.preserveFds ?? 0 }, (_, i) => 3 + i);
    run = await startHelper(plan, {
      // A monitor must hold none of the caller's stdio: it outlives the caller.
      stdio: o.monitor ? ["ignore", "ignore", "ignore"] : (o.stdio ?? ["inherit", "inherit", "inherit"]),
      extraFds,
      beforeRelease: o.beforeRelease ? (pid) => (o.beforeRelease as NonNullable<LaunchOptions["beforeRelease"]>)(pid, cgroup) : undefined,
    });
    await run.ready;
    return { run, cgroup };
  } catch (err) {
    if (run) {
      run.close();
      await run.exited.catch(() => undefined);
    }
    await destroyCgroup(cgroup);
    throw err;
  }
}
