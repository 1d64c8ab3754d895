// tar+zstd layers end to end: a layer compressed by the zstd(1) tool, in an OCI layout made here, pushed
// by skopeo to a local docker-registry, pulled by `berth pull` (fzstd decompresses it) and run; and a
// truncated zstd layer fails the pull with one clear line and leaves nothing in the store.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ImageStore } from "../../src/images/store.js";
import { BERTH_BIN, type CliResult, show } from "../helpers/berth.js";
import { busyboxRootfs, storeDebris } from "../helpers/images.js";
import { haveCommand, type RealRegistry, sha256, startDockerRegistry, type TestImage, writeOciLayout } from "../helpers/registry.js";

const execFileAsync = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const missing = ["docker-registry", "skopeo", "zstd", "tar"].filter((c) => !haveCommand(c));
const skip = !isRoot ? "needs root" : missing.length ? `needs ${missing.join(", ")} (scripts/test-all.sh installs them)` : false;

let work = "";
let reg: RealRegistry | undefined;
let tarBytes: Buffer;
let zstdBytes: Buffer;

const ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd";

/** An OCI image whose one layer is `layer` (compressed bytes) with the diff ID of `tar`. */
function zstdImage(tar: Buffer, layer: Buffer): TestImage {
  const layers = [{ digest: sha256(layer), bytes: layer, diffId: sha256(tar), mediaType: ZSTD }];
  const config = Buffer.from(JSON.stringify({
    architecture: process.arch === "arm64" ? "arm64" : "amd64",
    os: "linux",
    created: "2024-01-01T00:00:00Z",
    config: { Cmd: ["/bin/sh"], Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
    rootfs: { type: "layers", diff_ids: [sha256(tar)] },
  }));
  const mediaType = "application/vnd.oci.image.manifest.v1+json";
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.bytes.length })),
  }));
  return { manifest, manifestDigest: sha256(manifest), mediaType, config, configDigest: sha256(config), layers };
}

function cli(args: string[]): Promise<CliResult> {
  // Asynchronous: skopeo and the registry must not be blocked while the CLI runs.
  const child = spawn(process.execPath, [BERTH_BIN, ...args], { env: { ...process.env, BERTH_CONFIG: join(work, "cfg-none") }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => { stdout += s; });
  child.stderr.setEncoding("utf8").on("data", (s: string) => { stderr += s; });
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  return new Promise((r) => child.on("close", (code, signal) => {
    clearTimeout(timer);
    r({ code, signal, stdout, stderr });
  }));
}

async function push(image: TestImage, name: string): Promise<string> {
  const layout = join(work, `layout-${name.replace(/[/:]/g, "-")}`);
  writeOciLayout(layout, image, "t");
  const ref = `${reg!.host}/${name}`;
  // skopeo copies the blobs as they are (no recompression): the registry serves the zstd layer.
  await execFileAsync("skopeo", ["copy", "--quiet", `oci:${layout}:t`, `docker://${ref}`, "--dest-tls-verify=false"], { env: { ...process.env, HOME: work }, timeout: 60_000 });
  return ref;
}

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), "berth-zstd-it-"));
  const root = busyboxRootfs(join(work, "rootfs"));
  execFileSync("sh", ["-c", `echo 'hello from a zstd layer' > ${root}/file`]);
  tarBytes = execFileSync("tar", ["--numeric-owner", "--owner=0", "--group=0", "-C", root, "-cf", "-", "."], { maxBuffer: 64 << 20 });
  // The real zstd(1), not the library under test, makes the layer.
  zstdBytes = execFileSync("zstd", ["-q", "-c", "-19"], { input: tarBytes, maxBuffer: 64 << 20 });
  assert.equal(zstdBytes.readUInt32LE(0), 0xfd2fb528, "zstd(1) wrote a zstd frame");
  reg = await startDockerRegistry(join(work, "registry"));
});

after(async () => {
  await reg?.stop().catch(() => {});
  if (work) rmSync(work, { recursive: true, force: true });
});

test("a tar+zstd layer made by zstd(1): pushed by skopeo, berth pull unpacks it, berth run runs from it", { skip, timeout: 240_000 }, async () => {
  const image = zstdImage(tarBytes, zstdBytes);
  const ref = await push(image, "zstd/busybox:v1");
  const data = join(work, "data-ok");
  const pull = await cli(["pull", "--data-root", data, ref]);
  assert.equal(pull.code, 0, show(pull));
  const store = new ImageStore(data, { cleanup: false });
  const rec = store.findImage(ref);
  assert.ok(rec, "the image is stored");
  assert.equal(rec.id, image.configDigest);
  assert.deepEqual(rec.diffIds, [sha256(tarBytes)], "the diff ID is the digest of the uncompressed tar");
  const stored = store.storedImage(rec.id)!;
  assert.equal(stored.layers[0].mediaType, ZSTD);
  assert.equal(stored.layers[0].digest, sha256(zstdBytes));
  assert.ok(existsSync(join(store.layerDiffPath(rec.diffIds[0]), "bin/busybox")));

  const run = await cli(["run", "--rm", "--data-root", data, ref, "cat", "/file"]);
  assert.equal(run.code, 0, show(run));
  assert.equal(run.stdout, "hello from a zstd layer\n");
  rmSync(data, { recursive: true, force: true });
});

test("a truncated zstd layer: the pull fails with one clear line and stores nothing", { skip, timeout: 240_000 }, async () => {
  // Cut inside the compressed data; the registry serves the short blob under its own (valid) digest.
  const truncated = zstdBytes.subarray(0, Math.floor(zstdBytes.length * 0.6));
  const ref = await push(zstdImage(tarBytes, truncated), "zstd/truncated:v1");
  const data = join(work, "data-truncated");
  mkdirSync(data);
  const r = await cli(["pull", "--data-root", data, ref]);
  assert.equal(r.code, 1, show(r)); // docker pull: 1
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one line of error:\n${show(r)}`);
  assert.match(lines[0], new RegExp(`${sha256(truncated)}.*(truncated|ends early)`), show(r));
  const store = new ImageStore(data, { cleanup: false });
  assert.deepEqual(store.listImages(), []);
  assert.deepEqual(readdirSync(join(data, "layers")), [], "no layer dir");
  assert.deepEqual(readdirSync(join(data, "blobs/sha256")), [], "no blob kept");
  assert.deepEqual(storeDebris(data), [], "nothing half-written in tmp/ or locks/");
  rmSync(data, { recursive: true, force: true });
});
