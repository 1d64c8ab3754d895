// Shared pieces of Berth's benchmarks: timing child processes, statistics, tables, and making sure the
// packages a benchmark compares against are installed. Nothing here asserts a speed.

import { spawn, spawnSync, type StdioOptions } from "node:child_process";
import { existsSync } from "node:fs";

/** Milliseconds since an arbitrary point, sub-millisecond resolution. */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export class BenchError extends Error {}

/** Runs a command to completion; resolves with its wall time in ms. Rejects on a non-zero exit. */
export function timeCommand(
  file: string,
  args: string[],
  opts: { stdio?: StdioOptions; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<number> {
  return new Promise((resolveTime, reject) => {
    const start = nowMs();
    const child = spawn(file, args, { stdio: opts.stdio ?? ["ignore", "ignore", "inherit"], env: opts.env, cwd: opts.cwd });
    child.on("error", (err) => reject(new BenchError(`cannot run ${file}: ${err.message}`)));
    child.on("exit", (code, signal) => {
      const elapsed = nowMs() - start;
      if (code === 0) resolveTime(elapsed);
      else reject(new BenchError(`${file} ${args.join(" ")} failed: ${signal ?? `exit ${code}`}`));
    });
  });
}

/** Runs a command and returns its stdout; throws on failure. For setup, not for timing. */
export function runChecked(file: string, args: string[], opts: { input?: string } = {}): string {
  const r = spawnSync(file, args, { encoding: "utf8", input: opts.input, stdio: ["pipe", "pipe", "pipe"] });
  if (r.error) throw new BenchError(`cannot run ${file}: ${r.error.message}`);
  if (r.status !== 0) throw new BenchError(`${file} ${args.join(" ")} failed (${r.signal ?? `exit ${r.status}`}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** The q-quantile (0..1) of the samples, linear interpolation between closest ranks. */
export function quantile(samples: number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export interface Summary {
  n: number;
  median: number;
  p90: number;
  min: number;
  max: number;
}

export function summarize(samples: number[]): Summary {
  return {
    n: samples.length,
    median: quantile(samples, 0.5),
    p90: quantile(samples, 0.9),
    min: Math.min(...samples),
    max: Math.max(...samples),
  };
}

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return "-";
  return ms >= 100 ? ms.toFixed(0) : ms.toFixed(1);
}

/** A GitHub markdown table; the first column is left-aligned, the rest right-aligned. */
export function markdownTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ")} |`;
  const sep = `|${widths.map((w, i) => (i === 0 ? `:${"-".repeat(w + 1)}` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(header), sep, ...rows.map(line)].join("\n");
}

let aptUpdated = false;

/** Installs a Debian package with apt-get when `probe` (a path) is missing. `apt-get update` once. */
export function ensureAptPackage(pkg: string, probe: string): void {
  if (existsSync(probe)) return;
  process.stderr.write(`bench: ${probe} is missing; installing ${pkg} with apt-get\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  if (!aptUpdated) {
    const u = spawnSync("apt-get", ["update"], { stdio: ["ignore", "ignore", "inherit"], env });
    if (u.status !== 0) throw new BenchError("apt-get update failed");
    aptUpdated = true;
  }
  const r = spawnSync("apt-get", ["install", "-y", "--no-install-recommends", pkg], { stdio: ["ignore", "ignore", "inherit"], env });
  if (r.status !== 0 || !existsSync(probe)) throw new BenchError(`could not install ${pkg} (${probe} still missing)`);
}

/** Where a program is on PATH, or undefined. */
export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    const p = `${dir}/${name}`;
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}
