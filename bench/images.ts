// Benchmark of images: pull + unpack of a multi-layer Debian image from a local docker-registry, Berth
// against `docker pull` and `skopeo copy` + `umoci unpack`, in ONE run, alternating; then starting a
// container from the already-pulled image (the overlay mount) against `docker create` / `docker run`.
// Run as root after `npx tsc -p .`:
//
//   node dist/bench/images.js [--runs N (5)] [--create-runs N (20)] [--warmup N (0)] [--image-cache DIR]
//                             [--include PKGS (python3)] [--from-host] [--json FILE]
//
// The image: `debootstrap --variant=minbase --include=python3 bookworm` from the apt mirror this host
// uses (/etc/apt/sources.list*), cut into four layers (the base system, /usr/share, /usr/lib, the apt
// lists), gzip -6, written as an OCI layout and pushed with `skopeo copy` to `docker-registry serve` on
// 127.0.0.1:<free port>. When debootstrap fails (or with --from-host), the layers are cut from the host's
// own /etc and /usr instead (the output says which). Only loopback traffic during the measurement.
//
// Pull variants (every run pulls into a FRESH, empty store / data root: nothing is cached or shared):
//   berth-lib     pullImage(new ImageStore(DIR), IMG)            in this process (download, verify, unpack)
//   berth-cli     node bin/berth.js pull -q --data-root DIR IMG   a fresh Node process
//   docker        docker pull IMG against a private dockerd on a fresh --data-root (overlay2)
//   skopeo+umoci  skopeo copy docker://IMG oci:DIR:tag && umoci unpack --image DIR:tag BUNDLE
//
// The root filesystem is ext4 with `discard`: creating many files right after deleting many is slow
// for minutes. So nothing is deleted during the measurement: every run's store, data root and bundle is
// kept until the end, and docker gets a fresh dockerd data root per run (started before, stopped after
// its pull, untimed) instead of `docker rmi` + `docker image prune -af` between runs.
//
// Create variants (image already pulled; /bin/true; --network none). Berth's CLI is a client of the
// Berth daemon (Engine API); the benchmark starts a private `berth daemon` on a socket in a temp dir whose
// --data-root is the store the last library pull filled, and points the CLI at it with BERTH_HOST (so
// nothing auto-starts a daemon on the default socket). docker uses a private dockerd on the data root
// of its last pull.
//   berth-lib-run   in this process: resolveRunImage + buildRunSpec + runContainer({ lowerDirs }): the
//                   overlay of the image's layers is mounted in the container's mount namespace at start
//   berth-create    berth create --network none IMG true   (berth rm timed separately)
//   berth-run       berth run --rm --network none IMG true (create + attach + start + wait + remove)
//   docker-create   docker create --network none IMG true  (docker rm timed separately)
//   docker-run      docker run --rm --network none IMG true

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync,
} from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { createGzip } from "node:zlib";
import { buildRunSpec } from "../src/core/run-spec.js";
import { pullImage } from "../src/distribution/pull.js";
import { resolveRunImage } from "../src/cli/images.js";
import { readImageFile } from "../src/images/run-config.js";
import { ImageStore } from "../src/images/store.js";
import { newContainerId, runContainer } from "../src/runtime/container.js";
import { helperPath } from "../src/runtime/helper.js";
import { readHostFacts } from "../src/runtime/host-facts.js";
import { type RealRegistry, startDockerRegistry } from "../test/helpers/registry.js";
import {
  BenchError, ensureAptPackage, fmtMs, markdownTable, nowMs, runChecked, summarize, timeCommand, which, type Summary,
} from "./common.js";

interface Args {
  runs: number;
  createRuns: number;
  warmup: number;
  imageCache?: string;
  json?: string;
  include: string;
  fromHost: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { runs: 5, createRuns: 20, warmup: 0, include: "python3", fromHost: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new BenchError(`${a} needs a value`);
      return v;
    };
    const count = (v: string, min: number) => {
      if (!/^\d+$/.test(v) || Number(v) < min) throw new BenchError(`${a}: expected a whole number >= ${min}, got "${v}"`);
      return Number(v);
    };
    if (a === "--runs") args.runs = count(value(), 1);
    else if (a === "--create-runs") args.createRuns = count(value(), 1);
    else if (a === "--warmup") args.warmup = count(value(), 0);
    else if (a === "--image-cache") args.imageCache = value();
    else if (a === "--include") args.include = value();
    else if (a === "--from-host") args.fromHost = true;
    else if (a === "--json") args.json = value();
    else if (a === "-h" || a === "--help") {
      process.stdout.write(
        "usage: node dist/bench/images.js [--runs N (5)] [--create-runs N (20)] [--warmup N (0)]\n" +
          "         [--image-cache DIR (keep/reuse the built OCI layout)] [--include PKGS (python3; \"\" for plain minbase)]\n" +
          "         [--from-host (build the image from the host's files, not debootstrap)] [--json FILE]\n",
      );
      process.exit(0);
    } else throw new BenchError(`unknown argument ${a}`);
  }
  return args;
}

// dist/bench/images.js -> the repository root.
const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BERTH_JS = join(REPO, "bin", "berth.js");
const CLI_MODULE = join(REPO, "dist", "src", "cli", "berth.js");
const REPO_NAME = "bench/debian";
const TAG = "bookworm";
const MB = 1e6;

// ---- building the image ---------------------------------------------------------------------------

interface LayerBlob {
  name: string;
  digest: string;
  size: number;
  diffId: string;
  tarSize: number;
}

interface BuiltImage {
  layout: string;
  source: string;
  layers: LayerBlob[];
  compressed: number;
  unpacked: number;
}

/** Passes bytes through, hashing and counting them. */
class Tap extends Transform {
  readonly hash = createHash("sha256");
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/** `tar -c` of `paths` under `root` -> gzip -6 -> blobs/sha256/<hex> of the layout. */
async function buildLayer(layout: string, root: string, name: string, tarArgs: string[]): Promise<LayerBlob> {
  const tmp = join(layout, `layer-${name}.tmp`);
  const tar = spawn("tar", ["-C", root, "--numeric-owner", "--sort=name", "-cf", "-", ...tarArgs], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  tar.stderr.on("data", (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((r) => tar.on("exit", (code) => r(code)));
  const raw = new Tap();
  const gz = new Tap();
  await pipeline(tar.stdout, raw, createGzip({ level: 6 }), gz, createWriteStream(tmp));
  const code = await exited;
  if (code !== 0) throw new BenchError(`tar for layer ${name} failed (exit ${code}): ${err.trim()}`);
  const hex = gz.hash.digest("hex");
  renameSync(tmp, join(layout, "blobs", "sha256", hex));
  return { name, digest: `sha256:${hex}`, size: gz.bytes, diffId: `sha256:${raw.hash.digest("hex")}`, tarSize: raw.bytes };
}

function putJson(layout: string, obj: unknown): { digest: string; size: number } {
  const bytes = Buffer.from(JSON.stringify(obj));
  const hex = createHash("sha256").update(bytes).digest("hex");
  writeFileSync(join(layout, "blobs", "sha256", hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

/** The mirror apt uses here (first deb URI of the main Debian archive), for debootstrap. */
function aptMirror(): string {
  const files = ["/etc/apt/sources.list", ...safeList("/etc/apt/sources.list.d").map((f) => join("/etc/apt/sources.list.d", f))]
    .filter((f) => /\.(list|sources)$/.test(f) || f === "/etc/apt/sources.list");
  for (const f of files) {
    let text: string;
    try { text = readFileSync(f, "utf8"); } catch { continue; }
    const m = /^URIs:\s*(\S+\/debian)\/?\s*$/m.exec(text) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\/?\s+/m.exec(text);
    if (m) return m[1];
  }
  return "http://deb.debian.org/debian";
}

function safeList(dir: string): string[] {
  try { return readdirSync(dir); } catch { return []; }
}

/** Builds the benchmark image as an OCI layout in `layout` (tag TAG); `work` holds the rootfs. */
async function buildImage(layout: string, work: string, include: string, fromHost: boolean): Promise<BuiltImage> {
  mkdirSync(join(layout, "blobs", "sha256"), { recursive: true });
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  let source: string;
  let layers: LayerBlob[];
  const rootfs = join(work, "rootfs");
  const mirror = aptMirror();
  if (!which("debootstrap")) {
    try { ensureAptPackage("debootstrap", "/usr/sbin/debootstrap"); } catch { /* fall back below */ }
  }
  const dbArgs = ["--variant=minbase", ...(include ? [`--include=${include}`] : []), TAG, rootfs, mirror];
  if (!fromHost) process.stderr.write(`bench: debootstrap ${dbArgs.join(" ")} (about a minute)\n`);
  const db = which("debootstrap") && !fromHost ? spawnSync("debootstrap", dbArgs, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 900_000 }) : undefined;
  if (db && db.status === 0) {
    source = `debootstrap --variant=minbase${include ? ` --include=${include}` : ""} ${TAG} ${mirror}`;
    // As in Debian's own images: no downloaded .debs, no device nodes.
    for (const f of safeList(join(rootfs, "var/cache/apt/archives"))) if (f.endsWith(".deb")) rmSync(join(rootfs, "var/cache/apt/archives", f));
    layers = [];
    const ex = ["./usr/lib", "./usr/share", "./var/lib/apt/lists", "./dev/*", "./proc/*", "./sys/*"].map((p) => `--exclude=${p}`);
    layers.push(await buildLayer(layout, rootfs, "base", [...ex, "."]));
    layers.push(await buildLayer(layout, rootfs, "usr-share", ["./usr/share"]));
    layers.push(await buildLayer(layout, rootfs, "usr-lib", ["./usr/lib"]));
    layers.push(await buildLayer(layout, rootfs, "apt-lists", ["./var/lib/apt/lists"]));
  } else {
    const why = fromHost ? "--from-host" : db ? (db.error?.message ?? `exit ${db.status}: ${(db.stderr || db.stdout).trim().split("\n").slice(-3).join(" / ")}`) : "debootstrap is not installed";
    process.stderr.write(`bench: not using debootstrap (${why}); building the image from the host's own files instead\n`);
    source = `the host's own files (${db ? "debootstrap failed" : "debootstrap not used"}): /etc, /usr/bin, /usr/sbin, /usr/lib/x86_64-linux-gnu (files under 1 MB, libraries under 4 MB), /usr/share/{perl,perl5,zoneinfo,i18n}`;
    const lists = join(work, "lists");
    mkdirSync(lists, { recursive: true });
    // Directories, symlinks and files under 1 MB of `paths` (relative to /), for tar -T.
    const smallFiles = (name: string, paths: string[], maxKiB = 1024) => {
      const found = spawnSync("find", [...paths, "(", "-type", "d", "-o", "-type", "l", "-o", "-type", "f", "-size", `-${maxKiB}k`, ")", "-print0"], { cwd: "/", maxBuffer: 1 << 28 });
      const list = join(lists, name);
      writeFileSync(list, found.stdout);
      return ["--no-recursion", "--null", "-T", list];
    };
    const existing = (paths: string[]) => paths.filter((p) => existsSync(join("/", p)));
    layers = [];
    layers.push(await buildLayer(layout, "/", "base", [
      "--exclude=./etc/shadow*", "--exclude=./etc/gshadow*", "--exclude=./etc/ssh", "--exclude=./etc/ssl/private",
      ...smallFiles("base", existing(["./bin", "./sbin", "./lib", "./lib64", "./etc", "./usr/bin", "./usr/sbin", "./usr/lib64"])),
    ]));
    layers.push(await buildLayer(layout, "/", "libs", smallFiles("libs", existing(["./usr/lib/x86_64-linux-gnu", "./usr/lib/aarch64-linux-gnu"]), 4096)));
    layers.push(await buildLayer(layout, "/", "share", ["--ignore-failed-read", ...existing(["./usr/share/perl", "./usr/share/perl5", "./usr/share/zoneinfo", "./usr/share/i18n"])]));
  }
  const config = putJson(layout, {
    architecture: process.arch === "x64" ? "amd64" : process.arch === "arm64" ? "arm64" : process.arch,
    os: "linux",
    created: new Date().toISOString(),
    config: { Cmd: ["bash"], Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l) => ({ created: new Date().toISOString(), created_by: `berth bench: layer ${l.name}` })),
  });
  const manifest = putJson(layout, {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: l.digest, size: l.size })),
  });
  writeFileSync(join(layout, "index.json"), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, annotations: { "org.opencontainers.image.ref.name": TAG } }],
  }));
  const built: BuiltImage = {
    layout, source, layers,
    compressed: layers.reduce((s, l) => s + l.size, 0),
    unpacked: layers.reduce((s, l) => s + l.tarSize, 0),
  };
  writeFileSync(join(layout, "bench-image.json"), JSON.stringify(built, null, 2));
  return built;
}

/** An ImageStore that notes when the pull moves from downloading to unpacking (commitImage). */
class TimedStore extends ImageStore {
  commitAt = Number.NaN;
  override commitImage(...a: Parameters<ImageStore["commitImage"]>): ReturnType<ImageStore["commitImage"]> {
    this.commitAt = nowMs();
    return super.commitImage(...a);
  }
}

// ---- the private dockerd ----------------------------------------------------------------------------

interface Dockerd {
  proc: ChildProcess;
  sock: string;
  exited: Promise<void>;
}

async function startDockerd(dir: string, execRoot: string): Promise<Dockerd> {
  mkdirSync(dir, { recursive: true });
  const sock = join(execRoot, "docker.sock");
  mkdirSync(execRoot, { recursive: true });
  const logFile = join(dir, "..", `${dir.split("/").pop() ?? "dockerd"}.log`);
  const log = createWriteStream(logFile);
  const proc = spawn("dockerd", [
    "-H", `unix://${sock}`, "--data-root", dir, "--exec-root", execRoot, "--pidfile", join(execRoot, "docker.pid"),
    "--iptables=false", "--bridge=none", "--ip-masq=false", "--storage-driver=overlay2",
  ], { stdio: ["ignore", "pipe", "pipe"] });
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  const exited = new Promise<void>((r) => proc.on("exit", () => r()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new BenchError(`dockerd exited (${proc.exitCode}); see ${logFile}`);
    if (existsSync(sock) && spawnSync("docker", ["-H", `unix://${sock}`, "version"], { stdio: "ignore" }).status === 0) break;
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new BenchError(`dockerd did not come up in 60 s; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { proc, sock, exited };
}

async function stopDockerd(d: Dockerd): Promise<void> {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null) return;
  d.proc.kill("SIGTERM");
  const t = setTimeout(() => d.proc.kill("SIGKILL"), 30_000);
  await d.exited;
  clearTimeout(t);
}

/** A private `berth daemon` (the Engine API the CLI talks to) on a socket under `execRoot`. */
async function startBerthd(dataRoot: string, execRoot: string): Promise<Dockerd> {
  mkdirSync(execRoot, { recursive: true });
  const sock = join(execRoot, "berth.sock");
  const log = createWriteStream(join(execRoot, "daemon.out"));
  const proc = spawn(process.execPath, [BERTH_JS, "daemon", "-H", `unix://${sock}`, "--data-root", dataRoot, "--exec-root", execRoot], { stdio: ["ignore", "pipe", "pipe"] });
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  const exited = new Promise<void>((r) => proc.on("exit", () => r()));
  const env = { ...process.env, BERTH_HOST: `unix://${sock}` };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new BenchError(`berth daemon exited (${proc.exitCode}): ${readFileSync(join(execRoot, "daemon.out"), "utf8").trim()}`);
    if (existsSync(sock) && spawnSync(process.execPath, [BERTH_JS, "version"], { stdio: "ignore", env }).status === 0) break;
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new BenchError("berth daemon did not come up in 30 s");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { proc, sock, exited };
}

/** runChecked with an environment. */
function runWithEnv(file: string, args: string[], env: NodeJS.ProcessEnv): string {
  const r = spawnSync(file, args, { encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"] });
  if (r.error) throw new BenchError(`cannot run ${file}: ${r.error.message}`);
  if (r.status !== 0) throw new BenchError(`${file} ${args.join(" ")} failed (${r.signal ?? `exit ${r.status}`}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Every mount point at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const mp = line.split(" ")[4];
    if (mp && (mp === dir || mp.startsWith(`${dir}/`))) out.push(mp.replace(/\\040/g, " "));
  }
  return out.sort((a, b) => b.length - a.length);
}

function version(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.split("\n")[0]?.trim() ?? "";
}

function fmtRate(bytes: number, ms: number): string {
  return Number.isFinite(ms) && ms > 0 ? (bytes / MB / (ms / 1000)).toFixed(1) : "-";
}

// ---- the benchmark -----------------------------------------------------------------------------------

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new BenchError("run the benchmark as root (unpacking images and containers need it)");
  if (!existsSync(CLI_MODULE)) throw new BenchError(`${CLI_MODULE} is missing: build first with \`npx tsc -p .\``);
  helperPath();
  for (const [pkg, probe] of [["skopeo", "/usr/bin/skopeo"], ["umoci", "/usr/bin/umoci"], ["docker-registry", "/usr/bin/docker-registry"], ["docker.io", "/usr/sbin/dockerd"]]) {
    if (!(pkg === "docker.io" ? which("dockerd") : which(probe.split("/").pop() as string))) ensureAptPackage(pkg, probe);
  }
  if (!which("docker")) throw new BenchError("the docker client is missing");

  const temp = mkdtempSync(join(tmpdir(), "berth-bench-images-"));
  const execBase = mkdtempSync("/run/berth-bench-docker-");
  let registry: RealRegistry | undefined;
  const dockerds = new Set<Dockerd>();
  const berthds = new Set<Dockerd>();
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const d of [...berthds, ...dockerds]) await stopDockerd(d).catch(() => undefined);
    await registry?.stop().catch(() => undefined);
    for (const dir of [temp, execBase]) {
      for (const mp of mountsUnder(dir)) spawnSync("umount", ["-l", mp], { stdio: "ignore" });
    }
    rmSync(temp, { recursive: true, force: true });
    rmSync(execBase, { recursive: true, force: true });
  };
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) {
      void cleanup().finally(() => process.exit(130));
      return;
    }
    interrupted = true;
    process.stderr.write(`\nbench: ${sig}: stopping after the current step (again to stop now)\n`);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    // 1. The image, built once (or reused from --image-cache).
    let image: BuiltImage;
    const cached = args.imageCache && existsSync(join(args.imageCache, "bench-image.json"));
    if (cached && args.imageCache) {
      image = { ...(JSON.parse(readFileSync(join(args.imageCache, "bench-image.json"), "utf8")) as BuiltImage), layout: args.imageCache };
      process.stderr.write(`bench: reusing the image in ${args.imageCache} (${image.source})\n`);
    } else {
      const layout = args.imageCache ?? join(temp, "layout");
      image = await buildImage(layout, join(temp, "build"), args.include, args.fromHost);
    }
    process.stderr.write(
      `bench: image from ${image.source}: ${image.layers.length} layers, ${(image.compressed / MB).toFixed(1)} MB compressed, ` +
        `${(image.unpacked / MB).toFixed(1)} MB of layer tars\n`,
    );

    // 2. The registry on loopback, and the push.
    registry = await startDockerRegistry(join(temp, "registry"));
    const img = `${registry.host}/${REPO_NAME}:${TAG}`;
    runChecked("skopeo", ["copy", "--quiet", `oci:${image.layout}:${TAG}`, `docker://${img}`, "--dest-tls-verify=false"]);
    process.stderr.write(`bench: pushed to ${img}\n`);

    // 3. Pull + unpack, alternating; every run into fresh directories, nothing deleted until the end.
    const runsDir = join(temp, "runs");
    mkdirSync(runsDir);
    let seq = 0;
    const fresh = (name: string) => join(runsDir, `${String(seq++).padStart(3, "0")}-${name}`);
    let lastBerthRoot: string | undefined;
    let lastDockerRoot: string | undefined;
    const umociParts: { skopeo: number[]; umoci: number[] } = { skopeo: [], umoci: [] };
    const berthParts: { download: number[]; unpack: number[] } = { download: [], unpack: [] };
    let measuring = false;
    const pulls: { key: string; label: string; run: () => Promise<number> }[] = [
      {
        key: "berth-lib",
        label: "Berth library: `pullImage(new ImageStore(DIR), IMG)`",
        run: async () => {
          const root = fresh("berth-lib");
          const start = nowMs();
          const store = new TimedStore(root);
          await pullImage(store, img, { quiet: true, credentials: null });
          const ms = nowMs() - start;
          if (measuring) {
            berthParts.download.push(store.commitAt - start);
            berthParts.unpack.push(nowMs() - store.commitAt);
          }
          lastBerthRoot = root;
          return ms;
        },
      },
      {
        key: "berth-cli",
        label: "Berth CLI: `berth pull -q --data-root DIR IMG`",
        run: () => timeCommand(process.execPath, [BERTH_JS, "pull", "-q", "--data-root", fresh("berth-cli"), img], { env: { ...process.env, BERTH_HOST: `unix://${join(execBase, "no-daemon.sock")}` } }),
      },
      {
        key: "docker",
        label: "`docker pull IMG` (dockerd 20.10, overlay2, fresh data root)",
        run: async () => {
          const root = fresh("docker");
          const d = await startDockerd(root, join(execBase, String(seq)));
          dockerds.add(d);
          try {
            return await timeCommand("docker", ["-H", `unix://${d.sock}`, "pull", "-q", img]);
          } finally {
            await stopDockerd(d);
            dockerds.delete(d);
            lastDockerRoot = root;
          }
        },
      },
      {
        key: "skopeo-umoci",
        label: "`skopeo copy docker://IMG oci:DIR:tag` + `umoci unpack`",
        run: async () => {
          const dir = fresh("skopeo-umoci");
          mkdirSync(dir);
          const t1 = await timeCommand("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${img}`, `oci:${join(dir, "oci")}:${TAG}`]);
          const t2 = await timeCommand("umoci", ["unpack", "--image", `${join(dir, "oci")}:${TAG}`, join(dir, "bundle")]);
          if (measuring) {
            umociParts.skopeo.push(t1);
            umociParts.umoci.push(t2);
          }
          return t1 + t2;
        },
      },
    ];
    const pullSamples: Record<string, number[]> = Object.fromEntries(pulls.map((v) => [v.key, []]));
    const startedAt = new Date();
    const load0 = loadavg();
    process.stderr.write(`bench: pull: ${args.warmup} warm-up + ${args.runs} measured iterations of ${pulls.length} variants, alternating\n`);
    for (let i = 0; i < args.warmup + args.runs; i++) {
      measuring = i >= args.warmup;
      for (let k = 0; k < pulls.length; k++) {
        if (interrupted) throw new BenchError("interrupted");
        const v = pulls[(i + k) % pulls.length];
        const ms = await v.run();
        if (measuring) pullSamples[v.key].push(ms);
        process.stderr.write(`  ${measuring ? "run" : "warm-up"} ${i + 1}: ${v.key} ${(ms / 1000).toFixed(2)} s\n`);
      }
    }
    if (!lastBerthRoot || !lastDockerRoot) throw new BenchError("no pulled image to create containers from");

    // 4. Containers from the pulled image: Berth (its last library store, under a private daemon) and
    //    docker (its last data root).
    const d = await startDockerd(lastDockerRoot, join(execBase, "create"));
    dockerds.add(d);
    const dh = ["-H", `unix://${d.sock}`];
    const berthRoot = lastBerthRoot;
    const bd = await startBerthd(berthRoot, join(execBase, "berth"));
    berthds.add(bd);
    const berthEnv = { ...process.env, BERTH_HOST: `unix://${bd.sock}` };
    const berthCli = (cliArgs: string[]) => runWithEnv(process.execPath, [BERTH_JS, ...cliArgs], berthEnv);
    const rmSamples: Record<string, number[]> = { berth: [], docker: [] };
    const runtimeCapabilities = readHostFacts().runtimeCapabilities;
    const libState = join(execBase, "berth-lib-state");
    const createThenRm = (key: "berth" | "docker", cli: (a: string[]) => string) => async () => {
      const start = nowMs();
      const id = cli(["create", "--network", "none", img, "true"]).trim().split("\n").pop() ?? "";
      const ms = nowMs() - start;
      const t = nowMs();
      cli(["rm", id]);
      if (measuring) rmSamples[key].push(nowMs() - t);
      return ms;
    };
    const creates: { key: string; label: string; run: () => Promise<number> }[] = [
      {
        key: "berth-lib-run",
        label: "Berth library: resolveRunImage + buildRunSpec + runContainer({ lowerDirs }), `true`",
        run: async () => {
          const start = nowMs();
          const r = await resolveRunImage(img, berthRoot, { args: ["true"], env: [] });
          const id = newContainerId();
          const spec = buildRunSpec(
            { rootfs: r.lowerDirs[0], command: r.command, env: r.env, workdir: r.workdir, user: r.user, network: "none", seccomp: true },
            { id, passwd: readImageFile(r.lowerDirs, "etc/passwd"), group: readImageFile(r.lowerDirs, "etc/group"), runtimeCapabilities },
          );
          const result = await runContainer({ spec, id, stdio: ["ignore", "inherit", "inherit"], lowerDirs: r.lowerDirs, image: r.id, stateRoot: libState });
          const ms = nowMs() - start;
          if (result.exitCode !== 0 || result.signal !== 0) throw new BenchError(`runContainer: exit ${result.exitCode} signal ${result.signal}`);
          return ms;
        },
      },
      {
        key: "berth-create",
        label: "`berth create --network none IMG true` (CLI -> private berth daemon)",
        run: createThenRm("berth", berthCli),
      },
      {
        key: "berth-run",
        label: "`berth run --rm --network none IMG true` (CLI -> private berth daemon)",
        run: () => timeCommand(process.execPath, [BERTH_JS, "run", "--rm", "--network", "none", img, "true"], { env: berthEnv }),
      },
      {
        key: "docker-create",
        label: "`docker create --network none IMG true`",
        run: createThenRm("docker", (a) => runChecked("docker", [...dh, ...a])),
      },
      {
        key: "docker-run",
        label: "`docker run --rm --network none IMG true`",
        run: () => timeCommand("docker", [...dh, "run", "--rm", "--network", "none", img, "true"]),
      },
    ];
    const createSamples: Record<string, number[]> = Object.fromEntries(creates.map((v) => [v.key, []]));
    const createWarmup = Math.max(1, args.warmup);
    process.stderr.write(`bench: create: ${createWarmup} warm-up + ${args.createRuns} measured iterations of ${creates.length} variants, alternating\n`);
    for (let i = 0; i < createWarmup + args.createRuns; i++) {
      measuring = i >= createWarmup;
      for (let k = 0; k < creates.length; k++) {
        if (interrupted) throw new BenchError("interrupted");
        const v = creates[(i + k) % creates.length];
        const ms = await v.run();
        if (measuring) createSamples[v.key].push(ms);
      }
      process.stderr.write(`\r  ${measuring ? "run" : "warm-up"} ${measuring ? i - createWarmup + 1 : i + 1}/${measuring ? args.createRuns : createWarmup}   `);
    }
    process.stderr.write("\n");
    const dockerVersion = runChecked("docker", [...dh, "version", "--format", "{{.Server.Version}}"]).trim();
    const berthUnpacked = statSync(berthRoot).isDirectory() ? spawnSync("du", ["-sb", join(berthRoot, "layers")], { encoding: "utf8" }).stdout.split("\t")[0] : "";

    // 5. Tables.
    const pullSummary: Record<string, Summary> = Object.fromEntries(Object.entries(pullSamples).map(([k, s]) => [k, summarize(s)]));
    const partsSummary = {
      skopeo: summarize(umociParts.skopeo), umoci: summarize(umociParts.umoci),
      berthDownload: summarize(berthParts.download), berthUnpack: summarize(berthParts.unpack),
    };
    const createSummary: Record<string, Summary> = Object.fromEntries(Object.entries(createSamples).map(([k, s]) => [k, summarize(s)]));
    const rmSummary = { berth: summarize(rmSamples.berth), docker: summarize(rmSamples.docker) };
    const dockerPull = pullSummary.docker.median;
    const pullRow = (label: string, s: Summary, vsDocker = true) => [
      label,
      (s.median / 1000).toFixed(2),
      (s.min / 1000).toFixed(2),
      fmtRate(image.compressed, s.median),
      fmtRate(image.unpacked, s.median),
      vsDocker ? `${(dockerPull / s.median).toFixed(2)}×` : "-",
    ];
    const pullRows: string[][] = [];
    for (const v of pulls) {
      pullRows.push(pullRow(v.label, pullSummary[v.key]));
      if (v.key === "berth-lib") {
        pullRows.push(pullRow("  of which download + verify (to commitImage)", partsSummary.berthDownload, false));
        pullRows.push(pullRow("  of which unpack (commitImage)", partsSummary.berthUnpack, false));
      }
    }
    pullRows.push(pullRow("  of which `skopeo copy` (download only)", partsSummary.skopeo, false));
    pullRows.push(pullRow("  of which `umoci unpack` (unpack only)", partsSummary.umoci, false));
    const pullTable = markdownTable(["pull + unpack, fresh store each run", "median s", "min s", "MB/s compressed", "MB/s unpacked", "speed ÷ docker"], pullRows);
    const dockerCreate = createSummary["docker-create"].median;
    const createRows = creates.map((v) => {
      const s = createSummary[v.key];
      return [v.label, fmtMs(s.median), fmtMs(s.p90), fmtMs(s.min), `${(s.median / dockerCreate).toFixed(2)}×`];
    });
    for (const k of ["berth", "docker"] as const) {
      const r = rmSummary[k];
      createRows.push([`  \`${k} rm\` of the created container`, fmtMs(r.median), fmtMs(r.p90), fmtMs(r.min), `${(r.median / rmSummary.docker.median).toFixed(2)}× docker rm`]);
    }
    const createTable = markdownTable(["ms, container from the pulled image", "median", "p90", "min", "median ÷ docker create"], createRows);

    const env = {
      node: process.version,
      kernel: release(),
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      dockerd: dockerVersion,
      skopeo: version("skopeo", ["--version"]),
      umoci: version("umoci", ["--version"]),
      registry: version("docker-registry", ["--version"]),
      loadavgStart: load0,
      loadavgEnd: loadavg(),
    };
    process.stdout.write(
      `\nImage: ${image.source}; ${image.layers.length} layers (${image.layers.map((l) => `${l.name} ${(l.size / MB).toFixed(1)}/${(l.tarSize / MB).toFixed(1)}`).join(", ")} MB gz/tar); ` +
        `${(image.compressed / MB).toFixed(1)} MB compressed, ${(image.unpacked / MB).toFixed(1)} MB unpacked (tar bytes); registry ${registry.host} (loopback). MB = 10^6 bytes.\n\n`,
    );
    process.stdout.write(`${pullTable}\n\n${createTable}\n\n`);
    process.stdout.write(
      `${args.runs} pull runs (+${args.warmup} warm-up), ${args.createRuns} create runs (+${createWarmup} warm-up), alternating, ${startedAt.toISOString()}; ` +
        `node ${env.node}, dockerd ${env.dockerd}, ${env.skopeo}, ${env.umoci}, kernel ${env.kernel}, ${env.cpus} CPUs, ` +
        `load ${load0.map((l) => l.toFixed(2)).join(" ")} -> ${env.loadavgEnd.map((l) => l.toFixed(2)).join(" ")}\n`,
    );

    const out = args.json ?? join(REPO, "bench", "results", `images-${startedAt.toISOString().replace(/[:.]/g, "-")}.json`);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify({
      benchmark: "images", startedAt, args, env,
      image: { source: image.source, layers: image.layers, compressed: image.compressed, unpacked: image.unpacked, berthLayersDuBytes: Number(berthUnpacked) || undefined },
      pull: { variants: pulls.map(({ key, label }) => ({ key, label })), summary: pullSummary, parts: partsSummary, samples: pullSamples, partSamples: { ...umociParts, berthDownload: berthParts.download, berthUnpack: berthParts.unpack } },
      create: { variants: creates.map(({ key, label }) => ({ key, label })), summary: createSummary, rm: rmSummary, samples: createSamples, rmSamples },
    }, null, 2) + "\n");
    process.stderr.write(`bench: results written to ${out}\n`);
    return 0;
  } finally {
    process.stderr.write("bench: cleaning up (dockerd, registry, temp dirs)\n");
    await cleanup();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

main().then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof BenchError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
