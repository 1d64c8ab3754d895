// cgroup v2: one pure function per controller, OCI resources -> ordered writes into the container's
// single cgroup dir. Each returns the controller it needs so the planner can check it is delegated.

import { BerthError } from "../errors.js";
import type { BlockIOResources, CpuResources, MemoryResources, Resources } from "../oci/spec.js";
import { cannotApply, requireCpuList, requireFile, requireInteger, requireLimit, requirePageSize, write } from "./common.js";
import { rdmaWrites } from "./v1.js";
import type { CgroupWrite } from "./types.js";

type Files = Set<string> | undefined;

export interface ControllerWrites {
  controller: string;
  writes: CgroupWrite[];
}

const max = (n: number) => (n === -1 ? "max" : String(n));

/** OCI swap is memory+swap; v2's memory.swap.max is swap alone. */
export function swapV2Value(limit: number | undefined, swap: number): string {
  if (swap === -1) return "max";
  if (limit === undefined || limit === -1) {
    throw new BerthError(`cgroup: invalid memory.swap=${swap}: it is memory+swap, so it needs a memory.limit too`);
  }
  if (swap < limit) throw new BerthError(`cgroup: invalid memory.swap=${swap}: it is memory+swap and must be >= memory.limit=${limit}`);
  return String(swap - limit);
}

export function memoryV2Writes(dir: string, mem: MemoryResources | undefined, files: Files): ControllerWrites {
  const out: CgroupWrite[] = [];
  const res = { controller: "memory", writes: out };
  if (!mem) return res;
  const limit = mem.limit || undefined;
  if (mem.swap) {
    requireLimit(mem.swap, "memory.swap");
    // Only judge when the listing shows memory files at all (the controller is enabled in our cgroup).
    if (files?.has("memory.max")) requireFile(files, "memory.swap.max", `memory.swap=${mem.swap}`, "swap accounting is off; boot with swapaccount=1");
    // Set swap before memory.max so the pair never briefly allows more than asked.
    out.push(write(dir, "memory.swap.max", swapV2Value(limit, mem.swap)));
  }
  if (limit !== undefined) {
    requireLimit(limit, "memory.limit");
    out.push(write(dir, "memory.max", max(limit)));
  }
  if (mem.reservation) {
    requireLimit(mem.reservation, "memory.reservation");
    out.push(write(dir, "memory.low", max(mem.reservation)));
  }
  if (mem.kernel) throw cannotApply(`memory.kernel=${mem.kernel}`, "cgroup v2 has no separate kernel-memory limit (it is counted in memory.max)");
  if (mem.kernelTCP) throw cannotApply(`memory.kernelTCP=${mem.kernelTCP}`, "cgroup v2 has no separate TCP-memory limit (it is counted in memory.max)");
  if (mem.swappiness !== undefined) throw cannotApply(`memory.swappiness=${mem.swappiness}`, "cgroup v2 has no per-cgroup swappiness");
  if (mem.disableOOMKiller) throw cannotApply("memory.disableOOMKiller", "cgroup v2 cannot disable the OOM killer per cgroup");
  if (mem.useHierarchy === false) throw cannotApply("memory.useHierarchy=false", "cgroup v2 is always hierarchical");
  return res;
}

/** cpu.shares (2..262144) -> cpu.weight (1..10000), the conversion runc and crun use. */
export function sharesToWeight(shares: number): number {
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

export function cpuV2Writes(dir: string, cpu: CpuResources | undefined, files: Files): ControllerWrites {
  const out: CgroupWrite[] = [];
  const res = { controller: "cpu", writes: out };
  if (!cpu) return res;
  if (cpu.shares) {
    requireInteger(cpu.shares, "cpu.shares", 2, 262144);
    out.push(write(dir, "cpu.weight", sharesToWeight(cpu.shares)));
  }
  if (cpu.quota || cpu.period) {
    if (cpu.quota && cpu.quota !== -1) requireInteger(cpu.quota, "cpu.quota", 1000);
    const period = cpu.period || 100000;
    requireInteger(period, "cpu.period", 1000, 1000000);
    const quota = cpu.quota && cpu.quota > 0 ? String(cpu.quota) : "max";
    out.push(write(dir, "cpu.max", `${quota} ${period}`));
  }
  if (cpu.burst !== undefined) {
    requireInteger(cpu.burst, "cpu.burst", 0);
    if (files?.has("cpu.max")) requireFile(files, "cpu.max.burst", `cpu.burst=${cpu.burst}`, "the kernel lacks CFS burst (needs 5.14+)");
    out.push(write(dir, "cpu.max.burst", cpu.burst));
  }
  if (cpu.idle !== undefined) {
    requireInteger(cpu.idle, "cpu.idle", 0, 1);
    if (files?.has("cpu.max")) requireFile(files, "cpu.idle", `cpu.idle=${cpu.idle}`, "the kernel lacks SCHED_IDLE groups (needs 5.15+)");
    out.push(write(dir, "cpu.idle", cpu.idle));
  }
  if (cpu.realtimeRuntime || cpu.realtimePeriod) {
    throw cannotApply("cpu.realtimeRuntime/realtimePeriod", "cgroup v2 has no real-time group scheduling");
  }
  return res;
}

export function cpusetV2Writes(dir: string, cpu: CpuResources | undefined): ControllerWrites {
  const out: CgroupWrite[] = [];
  if (cpu?.cpus) {
    requireCpuList(cpu.cpus, "cpu.cpus");
    out.push(write(dir, "cpuset.cpus", cpu.cpus));
  }
  if (cpu?.mems) {
    requireCpuList(cpu.mems, "cpu.mems");
    out.push(write(dir, "cpuset.mems", cpu.mems));
  }
  return { controller: "cpuset", writes: out };
}

export function pidsV2Writes(dir: string, pids: Resources["pids"]): ControllerWrites {
  if (!pids) return { controller: "pids", writes: [] };
  if (!Number.isInteger(pids.limit)) throw new BerthError(`cgroup: invalid pids.limit=${pids.limit}: must be an integer (<= 0 for unlimited)`);
  return { controller: "pids", writes: [write(dir, "pids.max", pids.limit <= 0 ? "max" : pids.limit)] };
}

/** blkio weight (10..1000) -> io.weight (1..10000). */
export function blkioWeightToIoWeight(weight: number): number {
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

export function ioV2Writes(dir: string, io: BlockIOResources | undefined): ControllerWrites {
  const out: CgroupWrite[] = [];
  const res = { controller: "io", writes: out };
  if (!io) return res;
  if (io.weight) {
    requireInteger(io.weight, "blockIO.weight", 10, 1000);
    out.push(write(dir, "io.weight", `default ${blkioWeightToIoWeight(io.weight)}`));
  }
  if (io.leafWeight) throw cannotApply(`blockIO.leafWeight=${io.leafWeight}`, "cgroup v2 has no leaf weights");
  for (const d of io.weightDevice ?? []) {
    if (d.leafWeight) throw cannotApply(`blockIO.weightDevice ${d.major}:${d.minor} leafWeight`, "cgroup v2 has no leaf weights");
    if (d.weight) {
      requireInteger(d.weight, "blockIO.weightDevice.weight", 10, 1000);
      out.push(write(dir, "io.weight", `${d.major}:${d.minor} ${blkioWeightToIoWeight(d.weight)}`));
    }
  }
  const throttles = [
    ["throttleReadBpsDevice", "rbps"],
    ["throttleWriteBpsDevice", "wbps"],
    ["throttleReadIOPSDevice", "riops"],
    ["throttleWriteIOPSDevice", "wiops"],
  ] as const;
  for (const [field, key] of throttles) {
    for (const d of io[field] ?? []) {
      requireInteger(d.rate, `blockIO.${field}.rate`, 0);
      out.push(write(dir, "io.max", `${d.major}:${d.minor} ${key}=${d.rate === 0 ? "max" : d.rate}`));
    }
  }
  return res;
}

export function hugetlbV2Writes(dir: string, limits: Resources["hugepageLimits"]): ControllerWrites {
  const writes = (limits ?? []).map((l) => {
    requirePageSize(l.pageSize);
    requireInteger(l.limit, `hugepageLimits[${l.pageSize}].limit`, 0);
    return write(dir, `hugetlb.${l.pageSize}.max`, l.limit);
  });
  return { controller: "hugetlb", writes };
}

export function rdmaV2Writes(dir: string, rdma: Resources["rdma"]): ControllerWrites {
  return { controller: "rdma", writes: rdmaWrites(dir, rdma) };
}

/** Raw `unified` writes; each key's prefix names its controller ("memory.high" -> memory). */
export function unifiedWrites(dir: string, unified: Resources["unified"]): ControllerWrites[] {
  return Object.entries(unified ?? {}).map(([key, value]) => {
    if (!/^[a-z_]+\.[a-z0-9_.]+$/i.test(key) || key.includes("..")) {
      throw new BerthError(`cgroup: invalid unified key "${key}": expected a cgroup file name like memory.high`);
    }
    if (key === "cgroup.procs" || key === "cgroup.threads" || key === "cgroup.subtree_control") {
      throw new BerthError(`cgroup: unified key "${key}" is managed by the runtime and cannot be set`);
    }
    const controller = key.slice(0, key.indexOf("."));
    return { controller, writes: [write(dir, key, value)] };
  });
}

/** Resources that have no v2 equivalent: refuse rather than drop them. */
export function v2Unsupported(r: Resources): void {
  if (r.network?.classID !== undefined || r.network?.priorities?.length) {
    throw cannotApply("network.classID/priorities", "cgroup v2 has no net_cls/net_prio controllers (use eBPF or tc instead)");
  }
}
