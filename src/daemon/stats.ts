// Network and block I/O for `stats`, in docker's JSON shapes: per-interface counters from the
// container's network namespace (/proc/<init pid>/net/dev) and the cgroup's block I/O (v1
// blkio.throttle.*_recursive, v2 io.stat). Parsers are pure; the readers below them do the I/O.

import { existsSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { CgroupPlan } from "../cgroups/index.js";

export interface NetworkCounters {
  rx_bytes: number;
  rx_packets: number;
  rx_errors: number;
  rx_dropped: number;
  tx_bytes: number;
  tx_packets: number;
  tx_errors: number;
  tx_dropped: number;
}

/** docker's blkio entry. */
export interface BlkioEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

/**
 * /proc/net/dev -> docker's `networks`: every interface but lo (docker reports the container's
 * endpoints, never its loopback).
 */
export function parseNetDev(text: string): Record<string, NetworkCounters> {
  const out: Record<string, NetworkCounters> = {};
  for (const line of text.split("\n").slice(2)) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (!name || name === "lo") continue;
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (f.length < 16 || f.some((n) => Number.isNaN(n))) continue;
    // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop ...
    out[name] = { rx_bytes: f[0], rx_packets: f[1], rx_errors: f[2], rx_dropped: f[3], tx_bytes: f[8], tx_packets: f[9], tx_errors: f[10], tx_dropped: f[11] };
  }
  return out;
}

/** v1 blkio.throttle.io_service_bytes_recursive / io_serviced_recursive ("MAJ:MIN Op N"; the "Total N" summary is left out, as docker). */
export function parseBlkioV1(text: string): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+):(\d+)\s+(\S+)\s+(\d+)$/.exec(line.trim());
    if (m) out.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3], value: Number(m[4]) });
  }
  return out;
}

/** v2 io.stat -> docker's entries (as dockerd on cgroup v2: ops "read"/"write" from rbytes/wbytes and rios/wios). */
export function parseIoStatV2(text: string): { bytes: BlkioEntry[]; ios: BlkioEntry[] } {
  const bytes: BlkioEntry[] = [];
  const ios: BlkioEntry[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+):(\d+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const kv: Record<string, number> = {};
    for (const pair of m[3].split(/\s+/)) {
      const eq = pair.indexOf("=");
      if (eq > 0) kv[pair.slice(0, eq)] = Number(pair.slice(eq + 1));
    }
    const major = Number(m[1]);
    const minor = Number(m[2]);
    bytes.push({ major, minor, op: "read", value: kv.rbytes ?? 0 }, { major, minor, op: "write", value: kv.wbytes ?? 0 });
    ios.push({ major, minor, op: "read", value: kv.rios ?? 0 }, { major, minor, op: "write", value: kv.wios ?? 0 });
  }
  return { bytes, ios };
}

/** docker's `blkio_stats`: the two lists it fills, the others empty. */
export function blkioJson(bytes: BlkioEntry[], ios: BlkioEntry[]): Record<string, BlkioEntry[]> {
  return {
    io_service_bytes_recursive: bytes,
    io_serviced_recursive: ios,
    io_queue_recursive: [],
    io_service_time_recursive: [],
    io_wait_time_recursive: [],
    io_merged_recursive: [],
    io_time_recursive: [],
    sectors_recursive: [],
  };
}

/** docker CLI's BLOCK I/O sums: read and write bytes over all devices. */
export function blkioTotals(entries: BlkioEntry[] | null | undefined): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const e of entries ?? []) {
    const op = e.op.toLowerCase();
    if (op === "read") read += e.value;
    else if (op === "write") write += e.value;
  }
  return { read, write };
}

function readOptional(path: string): string | undefined {
  try { return readFileSync(path, "utf8"); } catch { return undefined; }
}

/** The container's network counters, or undefined when it has no interface of its own (none, host). */
export function readNetworks(pid: number): Record<string, NetworkCounters> | undefined {
  // A container in the host's namespace (--network host) reports none, as docker.
  try {
    if (readlinkSync(`/proc/${pid}/ns/net`) === readlinkSync("/proc/self/ns/net")) return undefined;
  } catch { return undefined; }
  const text = readOptional(`/proc/${pid}/net/dev`);
  if (text === undefined) return undefined;
  const nets = parseNetDev(text);
  return Object.keys(nets).length > 0 ? nets : undefined;
}

export function readBlkio(plan: CgroupPlan): Record<string, BlkioEntry[]> {
  if (plan.mode === "v2") {
    const { bytes, ios } = parseIoStatV2(readOptional(join(plan.primaryPath, "io.stat")) ?? "");
    return blkioJson(bytes, ios);
  }
  const dir = plan.paths.blkio;
  if (!dir) return blkioJson([], []);
  return blkioJson(
    parseBlkioV1(readOptional(join(dir, "blkio.throttle.io_service_bytes_recursive")) ?? ""),
    parseBlkioV1(readOptional(join(dir, "blkio.throttle.io_serviced_recursive")) ?? ""),
  );
}

/** The whole disk (MAJ:MIN) that holds `path`, or undefined (overlay, tmpfs, ... have no block device). */
export function diskOf(path: string): string | undefined {
  let dev: number;
  try { dev = statSync(path).dev; } catch { return undefined; }
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00);
  const sys = `/sys/dev/block/${major}:${minor}`;
  if (!existsSync(sys)) return undefined;
  if (!existsSync(join(sys, "partition"))) return `${major}:${minor}`;
  // A partition: its disk is the parent directory in sysfs.
  try {
    const parent = dirname(join("/sys/dev/block", readlinkSync(sys)));
    return readFileSync(join(parent, "dev"), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * cgroup v1 counts a cgroup's block I/O (blkio.throttle.io_service_bytes*) only on disks where the
 * throttling policy is active, i.e. where some cgroup has set a throttle rule since boot. Setting the
 * rule "no limit" (0) on the data root's disk in the container's own cgroup activates it without
 * limiting anything, so `stats` reports the container's I/O there. v2's io.stat always counts.
 */
export function enableBlkioAccounting(plan: CgroupPlan, disk: string | undefined): void {
  if (plan.mode === "v2" || !disk || !plan.paths.blkio) return;
  const file = join(plan.paths.blkio, "blkio.throttle.read_bps_device");
  // A rule the container asked for already activates it (and writing 0 would lift that limit).
  const rules = readOptional(file);
  if (rules === undefined || rules.split("\n").some((l) => l.startsWith(`${disk} `))) return;
  try { writeFileSync(file, `${disk} 0`); } catch { /* no blkio throttling here */ }
}
