import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { BerthError } from "../../src/errors.js";
import { pullImage } from "../../src/distribution/pull.js";
import { gzipMediaTypeFor, pushImage, type PushOptions, rewriteManifest } from "../../src/distribution/push.js";
import { parseReference } from "../../src/distribution/reference.js";
import { FakeStore } from "../helpers/fake-store.js";
import { FakeRegistry, makeImage, makeTar, sha256, type TestImage } from "../helpers/registry.js";

async function setup(t: { after: (fn: () => unknown) => void }): Promise<{ reg: FakeRegistry; store: FakeStore; image: TestImage; out: () => string; opts: PushOptions }> {
  const dir = mkdtempSync(join(tmpdir(), "berth-push-"));
  const reg = await new FakeRegistry().start();
  t.after(async () => {
    await reg.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const image = makeImage([makeTar([{ name: "big", data: randomBytes(200_000) }]), makeTar([{ name: "small", data: "x" }])]);
  reg.addImage("src/img", "v1", image);
  let text = "";
  const opts: PushOptions = { out: { write: (s: string) => { text += s; } }, tty: false, credentials: null, retryDelayMs: 10 };
  const store = new FakeStore(join(dir, "store"));
  await pullImage(store, `${reg.host}/src/img:v1`, { ...opts, out: { write: () => {} } });
  return { reg, store, image, out: () => { const s = text; text = ""; return s; }, opts };
}

test("push to another repository of the same registry mounts the blobs, then PUTs the manifest", async (t) => {
  const { reg, store, image, out, opts } = await setup(t);
  const rec = store.findImage(`${reg.host}/src/img:v1`)!;
  const dst = parseReference(`${reg.host}/dst/img:v2`);
  store.tag(rec.id, dst);
  const res = await pushImage(store, dst, opts);
  assert.equal(res.digest, image.manifestDigest);
  const text = out();
  assert.match(text, /^The push refers to repository \[127\.0\.0\.1:\d+\/dst\/img\]\n/);
  for (const l of image.layers) assert.match(text, new RegExp(`${l.digest.slice(7, 19)}: Mounted from src/img\n`));
  assert.match(text, new RegExp(`v2: digest: ${image.manifestDigest} size: ${image.manifest.length}\n$`));
  assert.ok(reg.manifests.has(`dst/img:v2`));
  assert.ok(reg.repoBlobs.get("dst/img")!.has(image.configDigest));
  assert.ok(reg.log.some((r) => r.method === "POST" && r.path.includes(`mount=${encodeURIComponent(image.layers[0].digest)}&from=src%2Fimg`)));
  // again: HEAD finds everything
  await pushImage(store, dst, opts);
  assert.equal((out().match(/Layer already exists/g) ?? []).length, 2);
});

test("without a mount source: monolithic PUT for small blobs, PATCH chunks for big ones", async (t) => {
  const { reg, store, image, out, opts } = await setup(t);
  reg.noMount = true;
  const rec = store.findImage(`${reg.host}/src/img:v1`)!;
  const dst = parseReference(`${reg.host}/up/img:v1`);
  store.tag(rec.id, dst);
  await pushImage(store, dst, { ...opts, chunkSize: 64 * 1024 });
  const text = out();
  for (const l of image.layers) assert.match(text, new RegExp(`${l.digest.slice(7, 19)}: Pushed\n`));
  const big = image.layers[0];
  const patches = reg.log.filter((r) => r.method === "PATCH");
  assert.equal(patches.length, Math.ceil(big.bytes.length / (64 * 1024)));
  assert.ok(reg.log.some((r) => r.method === "PUT" && r.path.includes(`digest=${encodeURIComponent(image.layers[1].digest)}`)));
  assert.deepEqual(reg.blobs.get(big.digest), big.bytes);
  assert.ok(reg.repoBlobs.get("up/img")!.has(big.digest));
  assert.deepEqual(reg.manifests.get("up/img:v1")?.bytes, image.manifest);
  assert.equal(reg.manifests.get("up/img:v1")?.mediaType, image.mediaType);
});

test("push refuses digests and images that are not there, in one line", async (t) => {
  const { reg, store, opts } = await setup(t);
  await assert.rejects(pushImage(store, `${reg.host}/nosuch:v1`, opts), (e: unknown) => e instanceof BerthError && /an image does not exist locally with the tag 127\.0\.0\.1:\d+\/nosuch:v1/.test(e.message));
  await assert.rejects(pushImage(store, `${reg.host}/src/img@sha256:${"0".repeat(64)}`, opts), /push a tag, not a digest/);
});

test("gzipMediaTypeFor: uncompressed OCI and docker layers get their gzip type; compressed and foreign ones none", () => {
  assert.equal(gzipMediaTypeFor("application/vnd.oci.image.layer.v1.tar"), "application/vnd.oci.image.layer.v1.tar+gzip");
  assert.equal(gzipMediaTypeFor("application/vnd.docker.image.rootfs.diff.tar"), "application/vnd.docker.image.rootfs.diff.tar.gzip");
  for (const t of ["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.oci.image.layer.nondistributable.v1.tar"]) {
    assert.equal(gzipMediaTypeFor(t), undefined, t);
  }
});

test("rewriteManifest swaps only the replaced layers, keeping other fields; nothing replaced: the same bytes", () => {
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { digest: "sha256:c", size: 1 }, layers: [
    { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: "sha256:a", size: 10, annotations: { k: "v" } },
    { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: "sha256:b", size: 5 },
  ], annotations: { x: "y" } }));
  assert.equal(rewriteManifest(bytes, new Map()), bytes);
  const out = JSON.parse(rewriteManifest(bytes, new Map([["sha256:a", { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: "sha256:z", size: 3 }]])).toString());
  assert.deepEqual(out, { schemaVersion: 2, config: { digest: "sha256:c", size: 1 }, layers: [
    { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: "sha256:z", size: 3, annotations: { k: "v" } },
    { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: "sha256:b", size: 5 },
  ], annotations: { x: "y" } });
});

test("an uncompressed docker layer goes up gzipped (chunked too); the manifest names the gzip blob, the config is unchanged", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "berth-push-"));
  const reg = await new FakeRegistry().start();
  t.after(async () => {
    await reg.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  reg.noMount = true;
  const tars = [makeTar([{ name: "zeros", data: Buffer.alloc(300_000) }, { name: "rand", data: randomBytes(100_000) }]), makeTar([{ name: "small", data: "x" }])];
  const image = makeImage(tars, { docker: true, compress: false });
  reg.addImage("plain/img", "v1", image);
  const store = new FakeStore(join(dir, "store"));
  const opts: PushOptions = { out: { write: () => {} }, tty: false, credentials: null, retryDelayMs: 10 };
  await pullImage(store, `${reg.host}/plain/img:v1`, opts);
  const dst = parseReference(`${reg.host}/gz/img:v1`);
  store.tag(store.findImage(`${reg.host}/plain/img:v1`)!.id, dst);
  const res = await pushImage(store, dst, { ...opts, chunkSize: 64 * 1024 });

  const sent = reg.manifests.get("gz/img:v1")!;
  assert.equal(res.digest, sha256(sent.bytes));
  assert.notEqual(res.digest, image.manifestDigest);
  assert.equal(sent.mediaType, image.mediaType);
  const manifest = JSON.parse(sent.bytes.toString()) as { config: { digest: string }; layers: { mediaType: string; digest: string; size: number }[] };
  assert.equal(manifest.config.digest, image.configDigest, "the config (its diff_ids) is the stored one");
  assert.equal(manifest.layers.length, 2);
  manifest.layers.forEach((l, i) => {
    assert.equal(l.mediaType, "application/vnd.docker.image.rootfs.diff.tar.gzip");
    const blob = reg.blobs.get(l.digest)!;
    assert.equal(blob.length, l.size);
    assert.equal(sha256(blob), l.digest);
    assert.deepEqual(gunzipSync(blob), tars[i]);
  });
  assert.ok(reg.log.some((r) => r.method === "PATCH" && r.path.includes("/gz/img/")), "the big gzip blob went up in chunks");
  assert.ok(!reg.blobs.has(image.layers[0].digest) || reg.repoBlobs.get("gz/img")?.has(image.layers[0].digest) !== true, "the uncompressed blob was not pushed");
});
