// Real container engines (dockerd, podman, containerd) driving `berth-oci` as their OCI runtime, for
// test/integration/engines.test.ts: a busybox image built here (no network), and daemons started on
// private sockets and roots under one temp dir, stopped and removed again even when a test fails.
// Never touches a system-wide daemon: every socket, root and state dir is passed explicitly.

import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, closeSync, existsSync, openSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, symlinkSync, writeFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./berth.js";

/**
 * What engines are given as the runtime path: a shell launcher (bin/berth-oci) that finds node even when
 * the engine's PATH has none, and execs bin/berth-oci.js. The tests pin BERTH_NODE to the node running
 * them through the engines' environment where they can, so a PATH without node is no problem.
 */
export const BERTH_OCI = join(REPO, "bin/berth-oci");

/** The image every engine runs: a busybox-static rootfs, loaded from a docker-save archive made here. */
export const IMAGE = "docker.io/berth-test/busybox:latest";

export interface CmdResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CmdOptions {
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
}

/** Runs a command to completion; a hang is killed after the timeout (and shows as signal SIGKILL). */
export function cmd(file: string, args: string[], o: CmdOptions = {}): CmdResult {
  const r = spawnSync(file, args, {
    encoding: "utf8",
    env: o.env ?? process.env,
    input: o.input ?? "",
    timeout: o.timeoutMs ?? 60_000,
    killSignal: "SIGKILL",
    maxBuffer: 64 << 20,
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code !== "ETIMEDOUT") throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

export function show(what: string, r: CmdResult): string {
  return `${what}: code=${r.code} signal=${r.signal}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
}

export const have = (bin: string) => spawnSync("sh", ["-c", `command -v ${bin}`]).status === 0;

/**
 * Why an engine's tests can't run here, or false. In CI a missing tool is a failure, not a skip
 * (scripts/test-all.sh installs them all): the caller turns the reason into a failing test.
 */
export function missing(bins: string[]): string | false {
  if (process.getuid?.() !== 0) return "needs root";
  const gone = bins.filter((b) => !have(b));
  return gone.length ? `not installed: ${gone.join(", ")} (scripts/test-all.sh installs them)` : false;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitUntil(what: string, probe: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** A short work dir: unix socket paths under it must stay below 108 bytes. */
export function workDir(tag: string): string {
  return mkdtempSync(`/tmp/berth-${tag}-`);
}

// ---- the image ---------------------------------------------------------------------------------------

function busyboxBinary(): string {
  for (const p of ["/bin/busybox", "/usr/bin/busybox"]) {
    if (existsSync(p) && isStatic(p)) return p;
  }
  throw new Error("busybox-static is not installed: a static /bin/busybox is needed for the test image");
}

/** A binary that names no dynamic loader is static (busybox-static, not the dynamic busybox). */
function isStatic(p: string): boolean {
  try {
    const elf = readFileSync(p);
    return !elf.includes(Buffer.from("/lib64/ld-linux")) && !elf.includes(Buffer.from("/lib/ld-linux"));
  } catch {
    return false;
  }
}

const ARCH: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };

/**
 * Builds `<dir>/image.tar`, a `docker save` archive (manifest.json + config + one layer) of a rootfs with
 * busybox-static and its applet links: `docker load`, `podman load` and `ctr image import` all read it.
 */
export function buildImageArchive(dir: string): string {
  const rootfs = join(dir, "rootfs");
  for (const d of ["bin", "etc", "tmp", "proc", "sys", "dev", "root"]) mkdirSync(join(rootfs, d), { recursive: true });
  chmodSync(join(rootfs, "tmp"), 0o1777);
  copyFileSync(busyboxBinary(), join(rootfs, "bin/busybox"));
  chmodSync(join(rootfs, "bin/busybox"), 0o755);
  const applets = execFileSync(join(rootfs, "bin/busybox"), ["--list"], { encoding: "utf8" }).split("\n").filter((a) => a && a !== "busybox");
  for (const a of applets) symlinkSync("busybox", join(rootfs, "bin", a));
  writeFileSync(join(rootfs, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n");
  writeFileSync(join(rootfs, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");

  const archive = join(dir, "archive");
  mkdirSync(archive);
  const layerTmp = join(dir, "layer.tar");
  execFileSync("tar", ["--numeric-owner", "-C", rootfs, "-cf", layerTmp, "."]);
  const diffId = createHash("sha256").update(readFileSync(layerTmp)).digest("hex");
  mkdirSync(join(archive, diffId));
  copyFileSync(layerTmp, join(archive, diffId, "layer.tar"));
  const config = JSON.stringify({
    architecture: ARCH[process.arch] ?? process.arch,
    os: "linux",
    created: "2024-01-01T00:00:00Z",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"] },
    rootfs: { type: "layers", diff_ids: [`sha256:${diffId}`] },
    history: [{ created: "2024-01-01T00:00:00Z", created_by: "berth engines test: busybox-static" }],
  });
  const configName = createHash("sha256").update(config).digest("hex") + ".json";
  writeFileSync(join(archive, configName), config);
  writeFileSync(join(archive, "manifest.json"), JSON.stringify([{ Config: configName, RepoTags: ["berth-test/busybox:latest"], Layers: [`${diffId}/layer.tar`] }]));
  writeFileSync(join(archive, "repositories"), JSON.stringify({ "berth-test/busybox": { latest: diffId } }));
  const out = join(dir, "image.tar");
  execFileSync("tar", ["--numeric-owner", "-C", archive, "-cf", out, "."]);
  rmSync(archive, { recursive: true, force: true });
  rmSync(layerTmp, { force: true });
  return out;
}

function tail(file: string, bytes = 4000): string {
  try {
    const text = readFileSync(file, "utf8");
    return text.slice(-bytes);
  } catch {
    return "";
  }
}

// ---- cleanup -----------------------------------------------------------------------------------------

/** Mount points at or under `dir` in our mount namespace, deepest first. */
function mountsUnder(dir: string): string[] {
  const points = readFileSync("/proc/self/mountinfo", "utf8").trim().split("\n")
    .map((l) => l.split(" ")[4].replace(/\\040/g, " "))
    .filter((p) => p === dir || p.startsWith(dir + "/"));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Unmounts everything under `dir` (lazily: an engine may still hold some) and removes it. */
export function removeTree(dir: string): void {
  for (let round = 0; round < 3; round++) {
    const points = mountsUnder(dir);
    if (points.length === 0) break;
    for (const p of points) spawnSync("umount", ["-l", p]);
  }
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Pids whose command line mentions `needle` (e.g. a daemon's private socket path), not us. */
export function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes(needle)) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^[ZX]$/.test(st.slice(st.lastIndexOf(")") + 2).split(" ")[0]);
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once every pid is gone. */
export async function terminate(pids: number[], graceMs = 15_000): Promise<void> {
  for (const p of pids) try { process.kill(p, "SIGTERM"); } catch { /* gone */ }
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await sleep(100);
  for (const p of pids.filter(alive)) try { process.kill(p, "SIGKILL"); } catch { /* gone */ }
  const hard = Date.now() + 5000;
  while (pids.some(alive) && Date.now() < hard) await sleep(50);
}

const CGROUP_ROOT = "/sys/fs/cgroup";

/** Every cgroup hierarchy's mount point (v1 controllers, the unified one, or the v2 root). */
function hierarchies(): string[] {
  if (existsSync(join(CGROUP_ROOT, "cgroup.controllers"))) return [CGROUP_ROOT];
  try {
    return readdirSync(CGROUP_ROOT).map((n) => join(CGROUP_ROOT, n)).filter((p) => {
      try { return statSync(p).isDirectory() && existsSync(join(p, "cgroup.procs")); } catch { return false; }
    });
  } catch {
    return [];
  }
}

/** Top-level cgroup dirs named `names` that exist now: engines make /docker, /libpod_parent, /<ns>. */
export function existingCgroupParents(names: string[]): Set<string> {
  const out = new Set<string>();
  for (const h of hierarchies()) for (const n of names) if (existsSync(join(h, n))) out.add(join(h, n));
  return out;
}

/** Removes the (empty) parent cgroups named `names` that were not there `before`. */
export function removeNewCgroupParents(names: string[], before: Set<string>): void {
  const rmTree = (dir: string) => {
    let entries: string[] = [];
    try { entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name); } catch { return; }
    for (const e of entries) rmTree(join(dir, e));
    try { rmdirSync(dir); } catch { /* still in use: leave it */ }
  };
  for (const p of existingCgroupParents(names)) if (!before.has(p)) rmTree(p);
}

/** Container cgroup dirs (any hierarchy) whose name contains `id`: what a deleted container must not leave. */
export function cgroupsNamed(id: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    if (depth > 4) return;
    let entries: string[] = [];
    try { entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name); } catch { return; }
    for (const e of entries) {
      if (e.includes(id)) found.push(join(dir, e));
      walk(join(dir, e), depth + 1);
    }
  };
  for (const h of hierarchies()) walk(h, 0);
  return found;
}

/** The environment engines run berth-oci with: node reachable whatever PATH the engine keeps. */
export function engineEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, BERTH_NODE: process.execPath, ...extra };
}

// ---- dockerd -----------------------------------------------------------------------------------------

export interface Dockerd {
  dir: string;
  /** The docker CLI against this daemon. */
  docker(args: string[], o?: CmdOptions): CmdResult;
  /** Environment for a docker CLI run by another program (e.g. under `script`). */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
  /** The end of dockerd's log. */
  log(): string;
}

/**
 * dockerd on a private socket, data root and exec root (its own containerd under the exec root), with
 * Berth registered as runtime "berth" through daemon.json; no bridge, no iptables.
 */
export async function startDockerd(runtimePath = BERTH_OCI): Promise<Dockerd> {
  const dir = workDir("dockerd");
  const sock = join(dir, "docker.sock");
  const cgroupsBefore = existingCgroupParents(["docker"]);
  writeFileSync(join(dir, "daemon.json"), JSON.stringify({ runtimes: { berth: { path: runtimePath } } }));
  mkdirSync(join(dir, "client"));
  // dockerd logs to stderr: kept in a file, shown when a test fails.
  const log = join(dir, "dockerd.log");
  const logFd = openSync(log, "a");
  let child: ChildProcess | undefined;
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: join(dir, "client") };
  delete env.DOCKER_CONTEXT;
  const docker = (args: string[], o: CmdOptions = {}) => cmd("docker", args, { ...o, env: { ...env, ...o.env } });
  const stop = async () => {
    try {
      // Containers first, so their shims exit through the normal path.
      const ids = docker(["ps", "-aq"], { timeoutMs: 15_000 }).stdout.split("\n").filter(Boolean);
      if (ids.length) docker(["rm", "-f", ...ids], { timeoutMs: 30_000 });
    } catch {
      // the daemon may be gone already
    }
    if (child?.pid) await terminate([child.pid], 20_000);
    closeSync(logFd);
    // Its containerd and any shim: they name our exec root on their command lines.
    await terminate(pidsMentioning(dir), 5000);
    removeTree(dir);
    removeNewCgroupParents(["docker"], cgroupsBefore);
  };
  try {
    child = spawn("dockerd", [
      "-H", `unix://${sock}`,
      "--data-root", join(dir, "data"),
      "--exec-root", join(dir, "exec"),
      "--pidfile", join(dir, "dockerd.pid"),
      "--config-file", join(dir, "daemon.json"),
      "--bridge", "none",
      "--iptables=false",
      "--ip-masq=false",
      "--userland-proxy=false",
    ], { env: engineEnv(), stdio: ["ignore", logFd, logFd] });
    await waitUntil("dockerd to answer", () => existsSync(sock) && docker(["version", "--format", "{{.Server.Version}}"], { timeoutMs: 5000 }).code === 0, 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { dir, docker, env, stop, log: () => tail(log) };
}

// ---- podman ------------------------------------------------------------------------------------------

export interface Podman {
  dir: string;
  /** podman with private storage/run/tmp roots and `--runtime` set to Berth. */
  podman(args: string[], o?: CmdOptions): CmdResult;
  cleanup(): Promise<void>;
}

/**
 * podman (no daemon) with its own containers.conf and storage.conf: ulimits within this machine's hard
 * limits (its default nofile 1048576 can't be set without CAP_SYS_RESOURCE), the cgroupfs manager, file
 * events, and every root under one temp dir.
 */
export function setupPodman(runtimePath = BERTH_OCI): Podman {
  const dir = workDir("podman");
  const cgroupsBefore = existingCgroupParents(["libpod_parent"]);
  const nofile = Math.min(20000, hardLimit("nofile"));
  const nproc = Math.min(32768, hardLimit("nproc"));
  writeFileSync(join(dir, "containers.conf"), [
    "[containers]",
    `default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]`,
    "[engine]",
    `cgroup_manager = "cgroupfs"`,
    `events_logger = "file"`,
    "",
  ].join("\n"));
  writeFileSync(join(dir, "storage.conf"), [
    "[storage]",
    `driver = "overlay"`,
    `runroot = "${join(dir, "run")}"`,
    `graphroot = "${join(dir, "graph")}"`,
    "",
  ].join("\n"));
  const env = engineEnv({ CONTAINERS_CONF: join(dir, "containers.conf"), CONTAINERS_STORAGE_CONF: join(dir, "storage.conf") });
  const base = ["--root", join(dir, "graph"), "--runroot", join(dir, "run"), "--tmpdir", join(dir, "tmp"), "--runtime", runtimePath, "--cgroup-manager", "cgroupfs", "--events-backend", "file"];
  const podman = (args: string[], o: CmdOptions = {}) => cmd("podman", [...base, ...args], { ...o, env: { ...env, ...o.env } });
  const cleanup = async () => {
    try {
      podman(["rm", "-af", "-t", "0"], { timeoutMs: 30_000 });
    } catch {
      // best effort
    }
    // conmon of a container that podman could not remove names our dirs.
    await terminate(pidsMentioning(dir), 5000);
    removeTree(dir);
    removeNewCgroupParents(["libpod_parent"], cgroupsBefore);
  };
  return { dir, podman, cleanup };
}

function hardLimit(kind: "nofile" | "nproc"): number {
  const r = spawnSync("sh", ["-c", `ulimit -H ${kind === "nofile" ? "-n" : "-u"}`], { encoding: "utf8" });
  const v = r.stdout.trim();
  return v === "unlimited" || !/^\d+$/.test(v) ? Number.MAX_SAFE_INTEGER : Number(v);
}

// ---- containerd --------------------------------------------------------------------------------------

export interface Containerd {
  dir: string;
  namespace: string;
  /** Where the runc v2 shim keeps Berth's state (ctr --runc-root): private to this daemon. */
  runcRoot: string;
  ctr(args: string[], o?: CmdOptions): CmdResult;
  stop(): Promise<void>;
}

/** containerd 1.6 with private root, state and sockets; CRI off. */
export async function startContainerd(): Promise<Containerd> {
  const dir = workDir("ctrd");
  const namespace = "berth-test";
  const cgroupsBefore = existingCgroupParents([namespace]);
  const sock = join(dir, "containerd.sock");
  writeFileSync(join(dir, "config.toml"), [
    "version = 2",
    `root = "${join(dir, "root")}"`,
    `state = "${join(dir, "state")}"`,
    `disabled_plugins = ["io.containerd.grpc.v1.cri"]`,
    "[grpc]",
    `  address = "${sock}"`,
    "[ttrpc]",
    `  address = "${sock}.ttrpc"`,
    "[debug]",
    `  address = ""`,
    "[metrics]",
    `  address = ""`,
    `[plugins."io.containerd.internal.v1.opt"]`,
    `  path = "${join(dir, "opt")}"`,
    "",
  ].join("\n"));
  const runcRoot = join(dir, "runc-root");
  const ctr = (args: string[], o: CmdOptions = {}) => cmd("ctr", ["--address", sock, "--namespace", namespace, ...args], { ...o, env: engineEnv(o.env) });
  let child: ChildProcess | undefined;
  const stop = async () => {
    try {
      for (const id of ctr(["task", "ls", "-q"], { timeoutMs: 10_000 }).stdout.split("\n").filter(Boolean)) {
        ctr(["task", "kill", "-s", "SIGKILL", id], { timeoutMs: 10_000 });
        ctr(["task", "rm", "-f", id], { timeoutMs: 10_000 });
      }
      for (const id of ctr(["container", "ls", "-q"], { timeoutMs: 10_000 }).stdout.split("\n").filter(Boolean)) {
        ctr(["container", "rm", id], { timeoutMs: 10_000 });
      }
    } catch {
      // best effort
    }
    if (child?.pid) await terminate([child.pid], 15_000);
    await terminate(pidsMentioning(dir), 5000);
    removeTree(dir);
    removeNewCgroupParents([namespace], cgroupsBefore);
  };
  try {
    child = spawn("containerd", ["--config", join(dir, "config.toml")], { env: engineEnv(), stdio: ["ignore", "ignore", "ignore"] });
    await waitUntil("containerd to answer", () => existsSync(sock) && ctr(["version"], { timeoutMs: 5000 }).code === 0, 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { dir, namespace, runcRoot, ctr, stop };
}
