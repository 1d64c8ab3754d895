import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BerthError } from "../../src/errors.js";
import { pullImage } from "../../src/distribution/pull.js";
import { pushImage, type PushOptions } from "../../src/distribution/push.js";
import { parseReference } from "../../src/distribution/reference.js";
import { FakeStore } from "../helpers/fake-store.js";
import { FakeRegistry, makeImage, makeTar, type TestImage } from "../helpers/registry.js";

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
