// The effects: carry out a CgroupPlan on the filesystem. Thin on purpose; every decision is in plan.ts.
// Only dirs this layer created are ever written to or removed, so other cgroups are never touched.

import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmdirSync, writeSync, constants } from "node:fs";
import { posix } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { BerthError, errnoName } from "../errors.js";
import type { Resources } from "../oci/spec.js";
import { readCgroupHost } from "./host.js";
import { type CgroupUpdate, planCgroupUpdate } from "./plan.js";
import type { CgroupHost, CgroupPlan, CgroupWrite } from "./types.js";

function reason(err: unknown): string {
  const code = errnoName(err);
  const msg = err instanceof Error ? err.message.replace(/^[A-Z]+: /, "").replace(/, \w+ '.*'$/, "") : String(err);
  return code ? `${code} (${msg})` : msg;
}

/**
 * Stand-ins for what cgroupfs does by itself: a new dir comes with its interface files and rmdir works
 * while they exist. Tests against a temp dir use these; real use passes nothing.
 */
export interface CgroupFsHooks {
  afterMkdir?: (dir: string) => void;
  beforeRmdir?: (dir: string) => void;
}

/** One write(2) of the whole value. No O_CREAT: a missing file means the kernel lacks the knob. */
export function writeCgroupFile(path: string, value: string): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_TRUNC);
  } catch (err) {
    throw new BerthError(`cgroup: write ${path}=${value}: ${reason(err)}`, { cause: err });
  }
  try {
    writeSync(fd, Buffer.from(value));
  } catch (err) {
    throw new BerthError(`cgroup: write ${path}=${value}: ${reason(err)}`, { cause: err });
  } finally {
    closeSync(fd);
  }
}

function readTrim(path: string): string {
  return readFileSync(path, "utf8").trim();
}

function readOptional(path: string): string | undefined {
  try {
    return readTrim(path);
  } catch {
    return undefined;
  }
}

function applyWrite(w: CgroupWrite): void {
  let value = w.value;
  if (w.copyFrom) {
    try {
      value = readTrim(w.copyFrom);
    } catch (err) {
      throw new BerthError(`cgroup: read ${w.copyFrom} (to copy into ${w.path}): ${reason(err)}`, { cause: err });
    }
  }
  writeCgroupFile(w.path, value);
}

/**
 * mkdir the plan's dirs and apply its writes. A leaf that already exists is refused (it may be another
 * container's); an intermediate that exists is used as is and never written to. On any failure
 * everything made so far is removed and the error rethrown. Returns the plan with `dirs` narrowed to
 * the dirs this call created: keep that one for destroyCgroup.
 */
export function createCgroup(plan: CgroupPlan, hooks: CgroupFsHooks = {}): CgroupPlan {
  const leaves = new Set(plan.leaves);
  const created: string[] = [];
  try {
    for (const dir of plan.dirs) {
      try {
        mkdirSync(dir);
        created.push(dir);
        hooks.afterMkdir?.(dir);
      } catch (err) {
        if (errnoName(err) !== "EEXIST") throw new BerthError(`cgroup: mkdir ${dir}: ${reason(err)}`, { cause: err });
        if (leaves.has(dir)) {
          throw new BerthError(`cgroup: ${dir} already exists (another container with this cgroup name or cgroupsPath?); remove it or choose another`);
        }
      }
    }
    const ours = new Set(created);
    for (const w of plan.writes) {
      if (ours.has(posix.dirname(w.path))) applyWrite(w);
    }
  } catch (err) {
    for (const dir of [...created].reverse()) {
      try {
        hooks.beforeRmdir?.(dir);
        rmdirSync(dir);
      } catch {
        // best effort: the original error matters more
      }
    }
    throw err;
  }
  return { ...plan, dirs: created };
}

/** Pids in the cgroup at `dir` and every cgroup below it. */
function pidsUnder(dir: string): number[] {
  const out: number[] = [];
  const procs = readOptional(`${dir}/cgroup.procs`);
  if (procs === undefined) return out;
  for (const line of procs.split("\n")) if (line) out.push(Number(line));
  for (const sub of subdirs(dir)) out.push(...pidsUnder(sub));
  return out;
}

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `${dir}/${e.name}`);
  } catch {
    return [];
  }
}

/** Dirs below `dir` (made by the container itself), deepest first. */
function descendantsDeepestFirst(dir: string): string[] {
  return subdirs(dir).flatMap((d) => [...descendantsDeepestFirst(d), d]);
}

export function cgroupPids(plan: CgroupPlan): number[] {
  return [...new Set(pidsUnder(plan.primaryPath))].sort((a, b) => a - b);
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

async function rmdirRetry(dir: string, deadline: number, hooks: CgroupFsHooks): Promise<void> {
  for (;;) {
    try {
      if (existsSync(dir)) hooks.beforeRmdir?.(dir);
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = errnoName(err);
      if (code === "ENOENT") return;
      if (code !== "EBUSY" || Date.now() > deadline) throw new BerthError(`cgroup: rmdir ${dir}: ${reason(err)}`, { cause: err });
      await sleep(10);
    }
  }
}

/**
 * Kill every process left in the container's cgroups and remove the dirs this layer created, deepest
 * first. Idempotent: dirs already gone are fine. v2 uses cgroup.kill when the kernel has it; otherwise
 * SIGKILL is repeated until cgroup.procs is empty (a frozen cgroup is thawed first, as frozen tasks
 * cannot die). Pass the plan createCgroup returned: its `dirs` are only the dirs it made, so a parent
 * that existed before is never removed.
 */
export async function destroyCgroup(plan: CgroupPlan, opts: { timeoutMs?: number; hooks?: CgroupFsHooks } = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const hooks = opts.hooks ?? {};
  const deadline = Date.now() + timeoutMs;
  const live = plan.leaves.filter((d) => existsSync(d));
  if (live.length > 0) {
    if (plan.mode === "v2" && existsSync(`${plan.primaryPath}/cgroup.kill`)) {
      writeCgroupFile(`${plan.primaryPath}/cgroup.kill`, "1");
    }
    await thawIfFrozen(plan);
    for (;;) {
      const pids = [...new Set(live.flatMap(pidsUnder))];
      if (pids.length === 0) break;
      if (Date.now() > deadline) {
        throw new BerthError(`cgroup: processes ${pids.join(" ")} survived SIGKILL for ${timeoutMs} ms in ${plan.primaryPath}; cannot remove the cgroup`);
      }
      killAll(pids);
      await sleep(10);
    }
  }
  for (const leaf of live) {
    for (const sub of descendantsDeepestFirst(leaf)) await rmdirRetry(sub, deadline, hooks);
  }
  const toRemove = [...new Set([...plan.leaves, ...plan.dirs])].sort((a, b) => b.split("/").length - a.split("/").length);
  for (const dir of toRemove) await rmdirRetry(dir, deadline, hooks);
}

async function thawIfFrozen(plan: CgroupPlan): Promise<void> {
  if (plan.mode === "v2") {
    if (readOptional(`${plan.primaryPath}/cgroup.freeze`) === "1") writeCgroupFile(`${plan.primaryPath}/cgroup.freeze`, "0");
    return;
  }
  const freezer = plan.paths.freezer;
  if (freezer && readOptional(`${freezer}/freezer.state`) !== "THAWED" && existsSync(`${freezer}/freezer.state`)) {
    await thawCgroup(plan);
  }
}

async function waitFor(check: () => boolean, retry: () => void, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    if (check()) return;
    if (Date.now() > deadline) throw new BerthError(`cgroup: ${what} did not finish within ${timeoutMs} ms`);
    // The v1 freezer can stall on a task in an uninterruptible sleep; asking again restarts it.
    if (i % 10 === 9) retry();
    await sleep(5);
  }
}

function freezerState(plan: CgroupPlan): { file: string; dir: string } {
  const dir = plan.mode === "v2" ? plan.primaryPath : plan.paths.freezer;
  if (!dir) throw new BerthError("cgroup: cannot pause or resume: no v1 freezer hierarchy is mounted");
  return { dir, file: plan.mode === "v2" ? `${dir}/cgroup.freeze` : `${dir}/freezer.state` };
}

/** Freeze all processes of the container and wait until the kernel reports them frozen. */
export async function freezeCgroup(plan: CgroupPlan, timeoutMs = 5000): Promise<void> {
  const { dir, file } = freezerState(plan);
  if (plan.mode === "v2") {
    writeCgroupFile(file, "1");
    await waitFor(() => /^frozen 1$/m.test(readOptional(`${dir}/cgroup.events`) ?? ""), () => writeCgroupFile(file, "1"), `freezing ${dir}`, timeoutMs);
  } else {
    writeCgroupFile(file, "FROZEN");
    await waitFor(() => readOptional(file) === "FROZEN", () => writeCgroupFile(file, "FROZEN"), `freezing ${dir}`, timeoutMs);
  }
}

export async function thawCgroup(plan: CgroupPlan, timeoutMs = 5000): Promise<void> {
  const { dir, file } = freezerState(plan);
  if (plan.mode === "v2") {
    writeCgroupFile(file, "0");
    await waitFor(() => /^frozen 0$/m.test(readOptional(`${dir}/cgroup.events`) ?? "frozen 0"), () => writeCgroupFile(file, "0"), `thawing ${dir}`, timeoutMs);
  } else {
    writeCgroupFile(file, "THAWED");
    await waitFor(() => readOptional(file) === "THAWED", () => writeCgroupFile(file, "THAWED"), `thawing ${dir}`, timeoutMs);
  }
}

/** "key value" lines (memory.stat, memory.events, cpu.stat, memory.oom_control) as a record. */
export function parseKeyValues(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^-?[0-9]+$/.test(value)) out[key] = Number(value);
  }
  return out;
}

/**
 * How many processes of the container the kernel OOM-killed. v1: the oom_kill counter of
 * memory.oom_control (kernel 4.13+); v2: memory.events oom_kill. memory.failcnt is not used: it counts
 * hits of the limit that reclaim usually resolved, not kills. Older kernels without the counter give 0.
 */
export function oomKillCount(plan: CgroupPlan): number {
  const file = plan.mode === "v2" ? `${plan.primaryPath}/memory.events` : plan.paths.memory ? `${plan.paths.memory}/memory.oom_control` : undefined;
  const text = file ? readOptional(file) : undefined;
  return text === undefined ? 0 : parseKeyValues(text).oom_kill ?? 0;
}

/** Whether the kernel OOM-killed a process of the container (see oomKillCount). */
export function oomKilled(plan: CgroupPlan): boolean {
  return oomKillCount(plan) > 0;
}

export interface CgroupStats {
  memory?: { usage: number; limit?: number; maxUsage?: number; inactiveFile?: number; stat: Record<string, number> };
  cpu?: { usageNs: number; userNs?: number; systemNs?: number };
  pids?: { current: number; limit?: number };
}

/** Values of 2^63-ish or "max" mean no limit. */
function limitValue(text: string | undefined): number | undefined {
  if (text === undefined || text === "max") return undefined;
  const n = Number(text);
  return Number.isFinite(n) && n < 2 ** 62 ? n : undefined;
}

export function cgroupStats(plan: CgroupPlan): CgroupStats {
  const stats: CgroupStats = {};
  const num = (p: string) => {
    const t = readOptional(p);
    return t === undefined || t === "" ? undefined : Number(t);
  };
  if (plan.mode === "v2") {
    const dir = plan.primaryPath;
    const usage = num(`${dir}/memory.current`);
    if (usage !== undefined) {
      const stat = parseKeyValues(readOptional(`${dir}/memory.stat`) ?? "");
      stats.memory = { usage, limit: limitValue(readOptional(`${dir}/memory.max`)), maxUsage: num(`${dir}/memory.peak`), inactiveFile: stat.inactive_file, stat };
    }
    const cpu = readOptional(`${dir}/cpu.stat`);
    if (cpu !== undefined) {
      const s = parseKeyValues(cpu);
      stats.cpu = { usageNs: (s.usage_usec ?? 0) * 1000, userNs: (s.user_usec ?? 0) * 1000, systemNs: (s.system_usec ?? 0) * 1000 };
    }
    const pids = num(`${dir}/pids.current`);
    if (pids !== undefined) stats.pids = { current: pids, limit: limitValue(readOptional(`${dir}/pids.max`)) };
    return stats;
  }
  const mem = plan.paths.memory;
  const usage = mem ? num(`${mem}/memory.usage_in_bytes`) : undefined;
  if (mem && usage !== undefined) {
    const stat = parseKeyValues(readOptional(`${mem}/memory.stat`) ?? "");
    stats.memory = {
      usage,
      limit: limitValue(readOptional(`${mem}/memory.limit_in_bytes`)),
      maxUsage: num(`${mem}/memory.max_usage_in_bytes`),
      inactiveFile: stat.total_inactive_file ?? stat.inactive_file,
      stat,
    };
  }
  const cpuacct = plan.paths.cpuacct;
  const usageNs = cpuacct ? num(`${cpuacct}/cpuacct.usage`) : undefined;
  if (cpuacct && usageNs !== undefined) {
    stats.cpu = { usageNs, userNs: num(`${cpuacct}/cpuacct.usage_user`), systemNs: num(`${cpuacct}/cpuacct.usage_sys`) };
  }
  const pidsDir = plan.paths.pids;
  const current = pidsDir ? num(`${pidsDir}/pids.current`) : undefined;
  if (pidsDir && current !== undefined) stats.pids = { current, limit: limitValue(readOptional(`${pidsDir}/pids.max`)) };
  return stats;
}

/**
 * Change the limits of a running container's cgroup. Reads what ordering and checks need (the current
 * memory limit; v2 delegation), then applies the writes in order; stops at the first failure. On v2,
 * device rules are not files: the returned `deviceFilter` is for the caller to attach through the helper
 * (this layer runs no processes; see ociUpdate in src/runtime/oci-runtime.ts).
 */
export function updateCgroup(plan: CgroupPlan, resources: Resources, host: CgroupHost = readCgroupHost()): Pick<CgroupUpdate, "deviceFilter"> {
  const facts: { memoryLimit?: number; enabledV2?: string[] } = {};
  if (plan.mode === "v2") {
    facts.enabledV2 = readOptional(`${posix.dirname(plan.primaryPath)}/cgroup.subtree_control`)?.split(/\s+/).filter(Boolean).map((c) => c.replace(/^\+/, ""));
  } else if (plan.paths.memory) {
    const t = readOptional(`${plan.paths.memory}/memory.limit_in_bytes`);
    if (t !== undefined) facts.memoryLimit = Number(t);
  }
  const mem = resources.memory;
  if (mem?.checkBeforeUpdate && mem.limit && mem.limit > 0) {
    const usage = cgroupStats(plan).memory?.usage;
    if (usage !== undefined && usage > mem.limit) {
      throw new BerthError(`cgroup: memory.limit=${mem.limit} is below the current usage ${usage} and checkBeforeUpdate is set; raise the limit`);
    }
  }
  const update = planCgroupUpdate(host, plan, resources, facts);
  for (const w of update.writes) applyWrite(w);
  return { deviceFilter: update.deviceFilter };
}
