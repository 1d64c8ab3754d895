// Shared helpers for the runtime's integration tests: run the `berth` CLI and capture its output, build the
// static C payload, and take snapshots of what a container may leave on the host (mounts, cgroups, state
// dirs) so every test can prove it left nothing behind.

import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { networkContext, removeOrphanedNetworking } from "../../src/network/index.js";

/** The repository root (this file is compiled to dist/test/helpers/). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const BERTH_BIN = join(REPO, "bin/berth.js");
export const BERTH_LAUNCHER = join(REPO, "bin/berth");
export const STATE_DIR = "/run/berth/containers";
export const CGROUP_ROOT = "/sys/fs/cgroup";

export const isRoot = process.getuid?.() === 0;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** The daemon on the default socket (the one `berth` starts by itself when none answers), if one lives. */
function defaultDaemonPid(): number | undefined {
  try {
    const pid = Number(readFileSync("/run/berth/berth.pid", "utf8").trim());
    return pid > 0 && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("daemon") ? pid : undefined;
  } catch {
    return undefined;
  }
}

export interface DefaultDaemonMark { pid: number | undefined; hadTable: boolean }

/** What runs on the default socket and data root before a test file uses them (see restoreDefaultDaemon). */
export function markDefaultDaemon(): DefaultDaemonMark {
  return { pid: defaultDaemonPid(), hadTable: spawnSync("nft", ["list", "table", "ip", "berth"], { stdio: "ignore" }).status === 0 };
}

/**
 * Tests that run `berth` without -H make it start the default daemon, which then outlives the suite
 * with its bridge (berth0) and nftables table. When neither was there before, both go again here.
 */
export async function restoreDefaultDaemon(mark: DefaultDaemonMark): Promise<void> {
  const pid = defaultDaemonPid();
  if (mark.pid === undefined && pid !== undefined) {
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 500 && defaultDaemonPid() === pid; i++) await new Promise((r) => setTimeout(r, 20));
  }
  if (!mark.hadTable && defaultDaemonPid() === undefined) await removeOrphanedNetworking(networkContext({ dataRoot: "/var/lib/berth" }));
}

/** Runs `bin/berth ARGS...` (the launcher users run) to completion. A hang fails the test (timeout) instead of blocking it. */
export function berth(args: string[], options: CliOptions = {}): CliResult {
  const r = spawnSync(BERTH_LAUNCHER, args, {
    encoding: "utf8",
    input: options.input,
    env: options.env ?? process.env,
    timeout: options.timeoutMs ?? 30_000,
    killSignal: "SIGKILL",
  });
  if (r.error) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** `berth run ARGS...` */
export function run(...args: string[]): CliResult {
  return berth(["run", ...args]);
}

/** Formats a result for assertion messages. */
export function show(r: CliResult): string {
  return `code=${r.code} signal=${r.signal}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
}

/** Starts the CLI in the background with piped output, for tests that signal it while it runs. */
export function spawnBerth(args: string[], env: NodeJS.ProcessEnv = process.env): { child: ChildProcess; output: () => { stdout: string; stderr: string }; done: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const child = spawn(process.execPath, [BERTH_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env });
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (s: string) => { stdout += s; });
  child.stderr?.setEncoding("utf8").on("data", (s: string) => { stderr += s; });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.on("close", (code, signal) => res({ code, signal }));
  });
  return { child, output: () => ({ stdout, stderr }), done };
}

/** Resolves once `predicate` holds, polling every 20 ms; rejects after `timeoutMs` with `what`. */
export async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---- processes -------------------------------------------------------------------------------------

export function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (/^\d+$/.test(name) && parentPid(Number(name)) === pid) out.push(Number(name));
  }
  return out;
}

/** Whether `pid` is `ancestor` or one of its descendants. */
export function descendsFrom(pid: number, ancestor: number): boolean {
  for (let p: number | undefined = pid, i = 0; p && p > 1 && i < 64; p = parentPid(p), i++) {
    if (p === ancestor) return true;
  }
  return false;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return existsSync(`/proc/${pid}`) && !/^State:\s*Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

// ---- what a container may leave behind ---------------------------------------------------------------

export interface HostSnapshot {
  /** "mount point + fs type + source" of every entry of our mount namespace. */
  mounts: string[];
  /** berth-<12 hex> cgroup directories (other suites use berth-itest-*; those are not ours to judge). */
  cgroups: string[];
  /** Entries of /run/berth/containers. */
  states: string[];
}

function mountEntries(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8").trim().split("\n").map((line) => {
    const f = line.split(" ");
    const sep = f.indexOf("-");
    return `${f[4]} ${f[sep + 1]} ${f[sep + 2]}`;
  }).sort();
}

function berthCgroups(): string[] {
  if (!existsSync(CGROUP_ROOT)) return [];
  const out = execFileSync("find", [CGROUP_ROOT, "-name", "berth-*", "-type", "d"], { encoding: "utf8" });
  return out.split("\n").filter((p) => /\/berth-[0-9a-f]{12}$/.test(p)).sort();
}

function stateEntries(): string[] {
  try {
    return readdirSync(STATE_DIR).sort();
  } catch {
    return [];
  }
}

export function snapshot(): HostSnapshot {
  return { mounts: mountEntries(), cgroups: berthCgroups(), states: stateEntries() };
}

/**
 * State dirs and cgroups of containers that belong to somebody else: other engineers may run containers on
 * this machine at the same time. A container is someone else's while its owner process is alive and is
 * neither us nor one of our descendants; a dead owner means debris, whoever made it.
 */
function foreignLiveContainers(): Set<string> {
  const ids = new Set<string>();
  for (const name of stateEntries()) {
    try {
      const state = JSON.parse(readFileSync(join(STATE_DIR, name, "state.json"), "utf8")) as { ownerPid?: number };
      if (state.ownerPid && alive(state.ownerPid) && !descendsFrom(state.ownerPid, process.pid)) ids.add(name.slice(0, 12));
    } catch {
      // no state.json (yet): judged by the diff below
    }
  }
  return ids;
}

/**
 * Mounts that other software on this machine makes and removes while we run (a docker daemon's overlays
 * and netns files under /run, /tmp, /var/lib): not Berth's unless they mention berth. Anything elsewhere
 * (/proc, /sys, /dev, /mnt ... e.g. a container mount propagated to the host) counts.
 */
function isForeignMount(entry: string): boolean {
  return !/berth/i.test(entry) && /^\/(run|tmp|var\/lib)\//.test(entry);
}

/** What is on the host now that was not in `before` and is not a foreign live container's. */
export function leftovers(before: HostSnapshot): string[] {
  const now = snapshot();
  const foreign = foreignLiveContainers();
  const isForeign = (id12: string) => foreign.has(id12);
  const problems: string[] = [];
  // As multisets: a mount propagated back from a container can duplicate an existing entry (/proc ...).
  const count = (list: string[]) => list.reduce((m, e) => m.set(e, (m.get(e) ?? 0) + 1), new Map<string, number>());
  const was = count(before.mounts);
  const is = count(now.mounts);
  for (const [m, n] of is) if (n > (was.get(m) ?? 0) && !isForeignMount(m)) problems.push(`new mount: ${m}`);
  for (const [m, n] of was) if (n > (is.get(m) ?? 0) && !isForeignMount(m)) problems.push(`mount gone: ${m}`);
  const beforeCg = new Set(before.cgroups);
  for (const c of now.cgroups) {
    if (!beforeCg.has(c) && !isForeign(c.slice(c.lastIndexOf("/berth-") + 7))) problems.push(`cgroup left: ${c}`);
  }
  const beforeStates = new Set(before.states);
  for (const s of now.states) if (!beforeStates.has(s) && !isForeign(s.slice(0, 12))) problems.push(`state dir left: ${STATE_DIR}/${s}`);
  return problems;
}

/**
 * Waits (briefly) for the host to be back to `before`: a killed CLI's cleanup finishes a moment after its
 * exit status is known. Returns the remaining leftovers (empty when clean).
 */
export async function settle(before: HostSnapshot, timeoutMs = 3000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = leftovers(before);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---- the static payload ------------------------------------------------------------------------------

export const PAYLOAD_SOURCE = join(REPO, "test/fixtures/payload/payload.c");
export const haveCc = spawnSync("cc", ["--version"]).status === 0;

/** Compiles the payload statically into a fresh temporary directory; returns its path and a cleanup. */
export function buildPayload(): { dir: string; payload: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "berth-payload-"));
  const payload = join(dir, "payload");
  const r = spawnSync("cc", ["-static", "-O2", "-o", payload, PAYLOAD_SOURCE], { encoding: "utf8" });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cc -static payload.c failed: ${r.stderr}`);
  }
  return { dir, payload, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** cgroup v2 (unified) when /sys/fs/cgroup itself is cgroup2. */
export function isCgroup2(): boolean {
  const line = readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((l) => l.split(" ")[4] === CGROUP_ROOT);
  return line !== undefined && / - cgroup2 /.test(line);
}
