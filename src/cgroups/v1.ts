// cgroup v1: one pure function per controller, OCI resources -> ordered file writes into `dir`, the
// container's cgroup in that controller's hierarchy. `files` is the listing of our own cgroup dir in the
// same hierarchy: a file absent there is absent in the child too, so the limit cannot be applied.

import { BerthError } from "../errors.js";
import type { BlockIOResources, CpuResources, DeviceCgroupRule, MemoryResources, Resources } from "../oci/spec.js";
import { cannotApply, requireCpuList, requireFile, requireInteger, requireLimit, requirePageSize, write } from "./common.js";
import type { CgroupWrite } from "./types.js";

type Files = Set<string> | undefined;

/** What the kernel has now, for ordering updates; undefined when creating (both limits unlimited). */
export interface MemoryCurrent {
  limit: number;
}

export function memoryV1Writes(dir: string, mem: MemoryResources | undefined, files: Files, current?: MemoryCurrent): CgroupWrite[] {
  if (!mem) return [];
  const out: CgroupWrite[] = [];
  const limit = mem.limit || undefined; // 0 means unset, as in runc
  const swap = mem.swap || undefined;
  if (limit !== undefined) requireLimit(limit, "memory.limit");
  if (swap !== undefined) {
    requireLimit(swap, "memory.swap");
    requireFile(files, "memory.memsw.limit_in_bytes", `memory.swap=${swap}`, "swap accounting is off; boot with swapaccount=1");
    if (swap !== -1 && (limit === undefined || limit === -1)) {
      throw new BerthError(`cgroup: invalid memory.swap=${swap}: it is memory+swap, so it needs a memory.limit too`);
    }
    if (swap !== -1 && limit !== undefined && swap < limit) {
      throw new BerthError(`cgroup: invalid memory.swap=${swap}: it is memory+swap and must be >= memory.limit=${limit}`);
    }
  }
  const hasMemsw = !files || files.has("memory.memsw.limit_in_bytes");
  // The kernel keeps memsw >= limit at every moment: when the new memsw is above the current limit (or
  // unlimited) memsw goes first, otherwise the limit goes first. A new cgroup starts unlimited.
  const memswValue = swap ?? (limit === -1 && hasMemsw ? -1 : undefined);
  if (limit !== undefined && memswValue !== undefined) {
    const memswFirst = memswValue === -1 || (current !== undefined && current.limit < memswValue);
    const pair = [write(dir, "memory.limit_in_bytes", limit), write(dir, "memory.memsw.limit_in_bytes", memswValue)];
    out.push(...(memswFirst ? pair.reverse() : pair));
  } else if (limit !== undefined) {
    out.push(write(dir, "memory.limit_in_bytes", limit));
  } else if (memswValue !== undefined) {
    out.push(write(dir, "memory.memsw.limit_in_bytes", memswValue));
  }
  if (mem.reservation) {
    requireLimit(mem.reservation, "memory.reservation");
    requireFile(files, "memory.soft_limit_in_bytes", `memory.reservation=${mem.reservation}`, "the kernel lacks memory soft limits");
    out.push(write(dir, "memory.soft_limit_in_bytes", mem.reservation));
  }
  if (mem.kernel) {
    requireLimit(mem.kernel, "memory.kernel");
    requireFile(files, "memory.kmem.limit_in_bytes", `memory.kernel=${mem.kernel}`, "the kernel has no kernel-memory accounting");
    out.push(write(dir, "memory.kmem.limit_in_bytes", mem.kernel));
  }
  if (mem.kernelTCP) {
    requireLimit(mem.kernelTCP, "memory.kernelTCP");
    requireFile(files, "memory.kmem.tcp.limit_in_bytes", `memory.kernelTCP=${mem.kernelTCP}`, "the kernel has no TCP memory accounting");
    out.push(write(dir, "memory.kmem.tcp.limit_in_bytes", mem.kernelTCP));
  }
  if (mem.swappiness !== undefined) {
    requireInteger(mem.swappiness, "memory.swappiness", 0, 100);
    requireFile(files, "memory.swappiness", `memory.swappiness=${mem.swappiness}`, "the kernel lacks per-cgroup swappiness");
    out.push(write(dir, "memory.swappiness", mem.swappiness));
  }
  if (mem.disableOOMKiller !== undefined) {
    if (mem.disableOOMKiller) requireFile(files, "memory.oom_control", "memory.disableOOMKiller", "the kernel lacks memory.oom_control");
    if (mem.disableOOMKiller || !files || files.has("memory.oom_control")) {
      out.push(write(dir, "memory.oom_control", mem.disableOOMKiller ? 1 : 0));
    }
  }
  if (mem.useHierarchy !== undefined) {
    out.push(write(dir, "memory.use_hierarchy", mem.useHierarchy ? 1 : 0));
  }
  return out;
}

export function cpuV1Writes(dir: string, cpu: CpuResources | undefined, files: Files): CgroupWrite[] {
  if (!cpu) return [];
  const out: CgroupWrite[] = [];
  if (cpu.shares) {
    requireInteger(cpu.shares, "cpu.shares", 2, 262144);
    out.push(write(dir, "cpu.shares", cpu.shares));
  }
  // Period before quota, as runc: the quota is judged against the period in force.
  if (cpu.period) {
    requireInteger(cpu.period, "cpu.period", 1000, 1000000);
    requireFile(files, "cpu.cfs_period_us", `cpu.period=${cpu.period}`, "the kernel lacks CFS bandwidth control (CONFIG_CFS_BANDWIDTH)");
    out.push(write(dir, "cpu.cfs_period_us", cpu.period));
  }
  if (cpu.quota) {
    if (cpu.quota !== -1) requireInteger(cpu.quota, "cpu.quota", 1000);
    requireFile(files, "cpu.cfs_quota_us", `cpu.quota=${cpu.quota}`, "the kernel lacks CFS bandwidth control (CONFIG_CFS_BANDWIDTH)");
    out.push(write(dir, "cpu.cfs_quota_us", cpu.quota));
  }
  if (cpu.burst !== undefined) {
    requireInteger(cpu.burst, "cpu.burst", 0);
    requireFile(files, "cpu.cfs_burst_us", `cpu.burst=${cpu.burst}`, "the kernel lacks CFS burst (needs 5.14+)");
    out.push(write(dir, "cpu.cfs_burst_us", cpu.burst));
  }
  if (cpu.realtimePeriod) {
    requireInteger(cpu.realtimePeriod, "cpu.realtimePeriod", 1);
    requireFile(files, "cpu.rt_period_us", `cpu.realtimePeriod=${cpu.realtimePeriod}`, "the kernel lacks real-time group scheduling (CONFIG_RT_GROUP_SCHED)");
    out.push(write(dir, "cpu.rt_period_us", cpu.realtimePeriod));
  }
  if (cpu.realtimeRuntime) {
    if (cpu.realtimeRuntime !== -1) requireInteger(cpu.realtimeRuntime, "cpu.realtimeRuntime", 0);
    requireFile(files, "cpu.rt_runtime_us", `cpu.realtimeRuntime=${cpu.realtimeRuntime}`, "the kernel lacks real-time group scheduling (CONFIG_RT_GROUP_SCHED)");
    out.push(write(dir, "cpu.rt_runtime_us", cpu.realtimeRuntime));
  }
  if (cpu.idle !== undefined) {
    requireInteger(cpu.idle, "cpu.idle", 0, 1);
    requireFile(files, "cpu.idle", `cpu.idle=${cpu.idle}`, "the kernel lacks SCHED_IDLE groups (needs 5.15+)");
    out.push(write(dir, "cpu.idle", cpu.idle));
  }
  return out;
}

/**
 * A new v1 cpuset cgroup has empty cpus and mems and refuses tasks until both are set: every dir Berth
 * creates copies its parent's values (read when applied), except the leaf's given ones.
 * `createdDirs` are parents first; the parent of the first is an existing cgroup.
 */
export function cpusetV1Writes(createdDirs: string[], parentOfFirst: string, cpu: CpuResources | undefined): CgroupWrite[] {
  const out: CgroupWrite[] = [];
  if (cpu?.cpus !== undefined) requireCpuList(cpu.cpus, "cpu.cpus");
  if (cpu?.mems !== undefined) requireCpuList(cpu.mems, "cpu.mems");
  createdDirs.forEach((dir, i) => {
    const parent = i === 0 ? parentOfFirst : createdDirs[i - 1];
    const isLeaf = i === createdDirs.length - 1;
    for (const [file, given] of [["cpuset.cpus", cpu?.cpus], ["cpuset.mems", cpu?.mems]] as const) {
      if (isLeaf && given) out.push(write(dir, file, given));
      else out.push({ path: `${dir}/${file}`, value: "", copyFrom: `${parent}/${file}` });
    }
  });
  return out;
}

/** For updates: only the given values; the leaf already has the rest. */
export function cpusetV1UpdateWrites(dir: string, cpu: CpuResources | undefined): CgroupWrite[] {
  const out: CgroupWrite[] = [];
  if (cpu?.cpus) {
    requireCpuList(cpu.cpus, "cpu.cpus");
    out.push(write(dir, "cpuset.cpus", cpu.cpus));
  }
  if (cpu?.mems) {
    requireCpuList(cpu.mems, "cpu.mems");
    out.push(write(dir, "cpuset.mems", cpu.mems));
  }
  return out;
}

export function pidsWrites(dir: string, pids: Resources["pids"]): CgroupWrite[] {
  if (!pids) return [];
  if (!Number.isInteger(pids.limit)) throw new BerthError(`cgroup: invalid pids.limit=${pids.limit}: must be an integer (<= 0 for unlimited)`);
  return [write(dir, "pids.max", pids.limit <= 0 ? "max" : pids.limit)];
}

/** "c 1:3 rwm", with * for an absent major or minor. */
export function formatDeviceRule(rule: DeviceCgroupRule): string {
  const type = rule.type ?? "a";
  if (!["a", "b", "c"].includes(type)) throw new BerthError(`cgroup: invalid device rule type "${type}": expected a, b or c`);
  const access = rule.access ?? "rwm";
  if (!/^[rwm]{1,3}$/.test(access) || new Set(access).size !== access.length) {
    throw new BerthError(`cgroup: invalid device rule access "${access}": expected letters from rwm`);
  }
  const num = (n: number | null | undefined, what: string) => {
    if (n === undefined || n === null || n === -1) return "*";
    requireInteger(n, `device rule ${what}`, 0);
    return String(n);
  };
  return `${type} ${num(rule.major, "major")}:${num(rule.minor, "minor")} ${access}`;
}

/** Deny everything first, then the OCI rules in order (later rules win, like the kernel applies them). */
export function devicesV1Writes(dir: string, rules: DeviceCgroupRule[] | undefined): CgroupWrite[] {
  if (!rules) return [];
  const out = [write(dir, "devices.deny", "a")];
  for (const rule of rules) out.push(write(dir, rule.allow ? "devices.allow" : "devices.deny", formatDeviceRule(rule)));
  return out;
}

export function blkioV1Writes(dir: string, io: BlockIOResources | undefined, files: Files): CgroupWrite[] {
  if (!io) return [];
  const out: CgroupWrite[] = [];
  // CFQ exposes blkio.weight; with BFQ the same knob is blkio.bfq.weight.
  const bfq = files !== undefined && !files.has("blkio.weight") && files.has("blkio.bfq.weight");
  const weightFile = bfq ? "blkio.bfq.weight" : "blkio.weight";
  const why = "the disk's I/O scheduler has no weights (needs CFQ or BFQ)";
  if (io.weight) {
    requireInteger(io.weight, "blockIO.weight", 10, 1000);
    requireFile(files, weightFile, `blockIO.weight=${io.weight}`, why);
    out.push(write(dir, weightFile, io.weight));
  }
  if (io.leafWeight) {
    requireInteger(io.leafWeight, "blockIO.leafWeight", 10, 1000);
    requireFile(files, "blkio.leaf_weight", `blockIO.leafWeight=${io.leafWeight}`, why);
    out.push(write(dir, "blkio.leaf_weight", io.leafWeight));
  }
  for (const d of io.weightDevice ?? []) {
    if (d.weight) {
      requireInteger(d.weight, "blockIO.weightDevice.weight", 10, 1000);
      const file = bfq ? "blkio.bfq.weight_device" : "blkio.weight_device";
      requireFile(files, file, `blockIO.weightDevice ${d.major}:${d.minor}`, why);
      out.push(write(dir, file, `${d.major}:${d.minor} ${d.weight}`));
    }
    if (d.leafWeight) {
      requireInteger(d.leafWeight, "blockIO.weightDevice.leafWeight", 10, 1000);
      requireFile(files, "blkio.leaf_weight_device", `blockIO.weightDevice ${d.major}:${d.minor} leafWeight`, why);
      out.push(write(dir, "blkio.leaf_weight_device", `${d.major}:${d.minor} ${d.leafWeight}`));
    }
  }
  const throttles = [
    ["throttleReadBpsDevice", "blkio.throttle.read_bps_device"],
    ["throttleWriteBpsDevice", "blkio.throttle.write_bps_device"],
    ["throttleReadIOPSDevice", "blkio.throttle.read_iops_device"],
    ["throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"],
  ] as const;
  for (const [field, file] of throttles) {
    for (const d of io[field] ?? []) {
      requireInteger(d.rate, `blockIO.${field}.rate`, 0);
      requireFile(files, file, `blockIO.${field} ${d.major}:${d.minor}`, "the kernel lacks block I/O throttling");
      out.push(write(dir, file, `${d.major}:${d.minor} ${d.rate}`));
    }
  }
  return out;
}

export function hugetlbV1Writes(dir: string, limits: Resources["hugepageLimits"], files: Files): CgroupWrite[] {
  return (limits ?? []).map((l) => {
    requirePageSize(l.pageSize);
    requireInteger(l.limit, `hugepageLimits[${l.pageSize}].limit`, 0);
    const file = `hugetlb.${l.pageSize}.limit_in_bytes`;
    requireFile(files, file, `hugepageLimits ${l.pageSize}`, `the host has no ${l.pageSize} huge pages`);
    return write(dir, file, l.limit);
  });
}

export function netClsWrites(dir: string, network: Resources["network"]): CgroupWrite[] {
  if (network?.classID === undefined) return [];
  requireInteger(network.classID, "network.classID", 0, 0xffffffff);
  return [write(dir, "net_cls.classid", network.classID)];
}

export function netPrioWrites(dir: string, network: Resources["network"]): CgroupWrite[] {
  return (network?.priorities ?? []).map((p) => {
    if (!/^[^\s/]+$/.test(p.name)) throw new BerthError(`cgroup: invalid network.priorities interface name "${p.name}"`);
    requireInteger(p.priority, `network.priorities[${p.name}].priority`, 0);
    return write(dir, "net_prio.ifpriomap", `${p.name} ${p.priority}`);
  });
}

/** rdma.max lines, the same on v1 and v2. */
export function rdmaWrites(dir: string, rdma: Resources["rdma"]): CgroupWrite[] {
  return Object.entries(rdma ?? {}).map(([device, r]) => {
    const parts: string[] = [];
    if (r.hcaHandles !== undefined) {
      requireInteger(r.hcaHandles, `rdma[${device}].hcaHandles`, 0);
      parts.push(`hca_handle=${r.hcaHandles}`);
    }
    if (r.hcaObjects !== undefined) {
      requireInteger(r.hcaObjects, `rdma[${device}].hcaObjects`, 0);
      parts.push(`hca_object=${r.hcaObjects}`);
    }
    if (parts.length === 0) throw new BerthError(`cgroup: invalid rdma[${device}]: set hcaHandles or hcaObjects`);
    return write(dir, "rdma.max", `${device} ${parts.join(" ")}`);
  });
}

/** Resources that need a v1 controller, with the controller: the planner refuses those not mounted. */
export function v1ControllersNeeded(r: Resources): { controller: string; what: string }[] {
  const need: { controller: string; what: string }[] = [];
  const m = r.memory;
  if (m && Object.values(m).some((v) => v !== undefined && v !== 0)) need.push({ controller: "memory", what: "memory limits" });
  const c = r.cpu;
  if (c && [c.shares, c.quota, c.period, c.burst, c.realtimePeriod, c.realtimeRuntime, c.idle].some((v) => v !== undefined && v !== 0)) {
    need.push({ controller: "cpu", what: "cpu limits" });
  }
  if (c?.cpus || c?.mems) need.push({ controller: "cpuset", what: "cpu.cpus/cpu.mems" });
  if (r.pids) need.push({ controller: "pids", what: "pids.limit" });
  if (r.devices) need.push({ controller: "devices", what: "device rules" });
  const b = r.blockIO;
  if (b && Object.values(b).some((v) => (Array.isArray(v) ? v.length > 0 : v !== undefined && v !== 0))) {
    need.push({ controller: "blkio", what: "blockIO limits" });
  }
  if (r.hugepageLimits?.length) need.push({ controller: "hugetlb", what: "hugepageLimits" });
  if (r.network?.classID !== undefined) need.push({ controller: "net_cls", what: "network.classID" });
  if (r.network?.priorities?.length) need.push({ controller: "net_prio", what: "network.priorities" });
  if (r.rdma && Object.keys(r.rdma).length) need.push({ controller: "rdma", what: "rdma limits" });
  if (r.unified && Object.keys(r.unified).length) {
    throw cannotApply("unified", "this host drives cgroup v1 (unified is only for cgroup v2); use the v1 fields instead");
  }
  return need;
}
