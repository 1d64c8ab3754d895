import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BerthError } from "../../src/errors.js";
import { pullImage, type PullOptions } from "../../src/distribution/pull.js";
import { FakeStore } from "../helpers/fake-store.js";
import { FakeRegistry, makeImage, makeIndex, makeTar, sha256, type TestImage } from "../helpers/registry.js";

function bigTar(name: string, size: number): Buffer {
  // incompressible content, so the gzipped layer is big enough to drop mid-way
  return makeTar([{ name, data: randomBytes(size) }]);
}

async function setup(t: { after: (fn: () => unknown) => void }, registryOptions = {}): Promise<{ reg: FakeRegistry; store: FakeStore; image: TestImage; out: () => string; opts: PullOptions }> {
  const dir = mkdtempSync(join(tmpdir(), "berth-dist-"));
  const reg = await new FakeRegistry(registryOptions).start();
  t.after(async () => {
    await reg.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const image = makeImage([bigTar("a", 300_000), makeTar([{ name: "etc", type: "dir" }, { name: "etc/hello", data: "hello\n" }]), bigTar("c", 200_000)]);
  reg.addImage("test/img", "v1", image);
  let text = "";
  const opts: PullOptions = { out: { write: (s: string) => { text += s; } }, tty: false, credentials: null, retryDelayMs: 10, configPath: join(dir, "config.json") };
  return { reg, store: new FakeStore(join(dir, "store")), image, out: () => text, opts };
}

async function rejectsWith(p: Promise<unknown>, re: RegExp): Promise<BerthError> {
  let caught: unknown;
  await p.catch((e: unknown) => { caught = e; });
  assert.ok(caught instanceof BerthError, `expected a BerthError, got ${String(caught)}`);
  assert.match(caught.message, re);
  assert.ok(!caught.message.includes("\n"), "one line");
  return caught;
}

test("pull stores every blob, commits the image and prints docker's lines", async (t) => {
  const { reg, store, image, out, opts } = await setup(t);
  const record = await pullImage(store, `${reg.host}/test/img:v1`, opts);
  assert.equal(record.manifestDigest, image.manifestDigest);
  assert.equal(record.id, image.configDigest);
  for (const l of image.layers) assert.ok(store.hasBlob(l.digest));
  assert.ok(store.hasBlob(image.configDigest) && store.hasBlob(image.manifestDigest));
  const text = out();
  assert.match(text, /^v1: Pulling from 127\.0\.0\.1:\d+\/test\/img\n/);
  for (const l of image.layers) {
    const id = l.digest.slice(7, 19);
    assert.match(text, new RegExp(`${id}: Pulling fs layer\n`));
    assert.match(text, new RegExp(`${id}: Pull complete\n`));
  }
  assert.match(text, new RegExp(`Digest: ${image.manifestDigest}\nStatus: Downloaded newer image for 127\\.0\\.0\\.1:\\d+/test/img:v1\n$`));
  // the second pull downloads nothing
  const blobGets = reg.log.filter((r) => r.method === "GET" && r.path.includes("/blobs/")).length;
  let again = "";
  await pullImage(store, `${reg.host}/test/img:v1`, { ...opts, out: { write: (s: string) => { again += s; } } });
  assert.equal(reg.log.filter((r) => r.method === "GET" && r.path.includes("/blobs/")).length, blobGets + 1, "only the config again");
  assert.match(again, /Already exists/);
  assert.match(again, /Status: Image is up to date for/);
});

test("layers are fetched 3 at a time at most", async (t) => {
  const { reg, store, opts } = await setup(t);
  const many = makeImage(Array.from({ length: 6 }, (_, i) => bigTar(String.fromCharCode(97 + i), 100_000)));
  reg.addImage("test/many", "v1", many);
  reg.slowBytesPer50ms = 64 * 1024;
  let active = 0;
  let peak = 0;
  const orig = store.ingestBlob.bind(store);
  store.ingestBlob = async (...args) => {
    active++;
    peak = Math.max(peak, active);
    try {
      return await orig(...args);
    } finally {
      active--;
    }
  };
  await pullImage(store, `${reg.host}/test/many:v1`, opts);
  assert.equal(peak, 3);
});

test("an index: the host platform or --platform picks the image; a missing platform is a clear error", async (t) => {
  const { reg, store, opts } = await setup(t);
  const amd = makeImage([makeTar([{ name: "amd" }])]);
  const arm = makeImage([makeTar([{ name: "arm" }])], { arch: "arm64" });
  const index = makeIndex([
    { image: amd, platform: { os: "linux", architecture: "amd64" } },
    { image: arm, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
  ], true);
  reg.addIndex("multi", "latest", index, [amd, arm]);
  const rec = await pullImage(store, `${reg.host}/multi`, { ...opts, platform: "linux/arm64" });
  assert.equal(rec.manifestDigest, arm.manifestDigest);
  const rec2 = await pullImage(store, `${reg.host}/multi@${index.digest}`, { ...opts, platform: "linux/amd64" });
  assert.equal(rec2.manifestDigest, amd.manifestDigest);
  await rejectsWith(pullImage(store, `${reg.host}/multi`, { ...opts, platform: "linux/riscv64" }),
    /no matching manifest for linux\/riscv64 .*linux\/amd64, linux\/arm64\/v8.*--platform/);
});

test("a tampered layer: the pull fails naming the digest, nothing of it is stored, no image recorded", async (t) => {
  const { reg, store, image, opts } = await setup(t);
  const bad = image.layers[1].digest;
  reg.tamper.add(bad);
  const err = await rejectsWith(pullImage(store, `${reg.host}/test/img:v1`, opts), new RegExp(`pulling 127\\.0\\.0\\.1:\\d+/test/img:v1: .*${bad}`));
  assert.ok(err);
  assert.ok(!store.hasBlob(bad));
  assert.ok(!store.hasBlob(image.manifestDigest), "no manifest stored");
  assert.equal(store.images.size, 0);
  assert.equal(store.findImage(`${reg.host}/test/img:v1`), undefined);
});

test("HTML error pages, garbage manifests and lying digests are refused with one line", async (t) => {
  const { reg, store, image, opts } = await setup(t);
  const ref = `${reg.host}/test/img:v1`;
  reg.manifestOverride = () => ({ status: 502, type: "text/html", body: "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>" });
  await rejectsWith(pullImage(store, ref, opts), /pulling .*test\/img:v1: registry 127\.0\.0\.1:\d+ answered HTTP 502 .*HTML page \("502 Bad Gateway"\)/);
  reg.manifestOverride = () => ({ status: 200, type: "text/html", body: "<!doctype html><html>login</html>" });
  await rejectsWith(pullImage(store, ref, opts), /not a usable image manifest: the registry answered an HTML page/);
  reg.manifestOverride = () => ({ status: 200, type: "application/vnd.oci.image.manifest.v1+json", body: "\x00\x01garbage" });
  await rejectsWith(pullImage(store, ref, opts), /manifest of .*test\/img:v1 is not a usable image manifest: it does not parse as JSON/);
  reg.manifestOverride = () => ({ status: 200, type: image.mediaType, body: image.manifest, headers: { "docker-content-digest": sha256("other") } });
  await rejectsWith(pullImage(store, ref, opts), /hash to sha256:[a-f0-9]{64}, not the sha256:[a-f0-9]{64} it claimed/);
  reg.manifestOverride = undefined;
  const other = makeImage([makeTar([{ name: "z" }])]);
  reg.manifestOverride = (_repo, r) => (r.startsWith("sha256:") ? { status: 200, type: other.mediaType, body: other.manifest } : undefined);
  await rejectsWith(pullImage(store, `${reg.host}/test/img@${image.manifestDigest}`, opts), /whose digest is sha256:/);
  reg.manifestOverride = undefined;
  await rejectsWith(pullImage(store, `${reg.host}/test/img:nosuch`, opts), /manifest for 127\.0\.0\.1:\d+\/test\/img:nosuch not found: .*manifest unknown/);
  assert.equal(store.images.size, 0);
  assert.deepEqual(store.blobDigests(), [], "nothing stored");
});

test("a config that does not match its digest is refused", async (t) => {
  const { reg, store, image, opts } = await setup(t);
  reg.tamper.add(image.configDigest);
  await rejectsWith(pullImage(store, `${reg.host}/test/img:v1`, opts), new RegExp(`image config for ${image.configDigest} that does not match`));
});

test("a dropped connection is resumed with Range; a registry ignoring Range is read again from the start", async (t) => {
  const { reg, store, image, opts } = await setup(t);
  const big = image.layers[0];
  reg.drop.set(big.digest, { after: 100_000, times: 2 });
  await pullImage(store, `${reg.host}/test/img:v1`, opts);
  const gets = reg.log.filter((r) => r.method === "GET" && r.path.endsWith(big.digest));
  assert.equal(gets.length, 3);
  assert.equal(gets[0].range, undefined);
  assert.match(gets[1].range ?? "", /^bytes=\d+-$/);
  assert.ok(Number(/\d+/.exec(gets[1].range!)![0]) >= 90_000, `resumed near the drop: ${gets[1].range}`);
  assert.ok(store.hasBlob(big.digest));

  const { reg: reg2, store: store2, image: image2, opts: opts2 } = await setup(t);
  reg2.ignoreRange = true;
  reg2.drop.set(image2.layers[0].digest, { after: 100_000, times: 1 });
  await pullImage(store2, `${reg2.host}/test/img:v1`, opts2);
  assert.ok(store2.hasBlob(image2.layers[0].digest));
});

test("a partial blob left by an earlier pull is resumed from its size", async (t) => {
  const { reg, store, image, opts } = await setup(t);
  const big = image.layers[0];
  writeFileSync(store.partialPath(big.digest), big.bytes.subarray(0, 123_456));
  await pullImage(store, `${reg.host}/test/img:v1`, opts);
  assert.ok(store.hasBlob(big.digest));
  assert.deepEqual(store.opens.find((o) => o.digest === big.digest), { digest: big.digest, offset: 123_456 });
  assert.deepEqual(reg.log.filter((r) => r.path.endsWith(big.digest)).map((r) => r.range), ["bytes=123456-"]);
});

test("a connection that keeps dropping fails after the retries, naming the layer", async (t) => {
  const { reg, store, image, opts } = await setup(t);
  const big = image.layers[0];
  reg.drop.set(big.digest, { after: 50_000, times: 100 });
  await rejectsWith(pullImage(store, `${reg.host}/test/img:v1`, { ...opts, retries: 2 }), new RegExp(`${big.digest}.*after 3 tries`));
  assert.ok(!store.hasBlob(big.digest));
  assert.equal(store.images.size, 0);
});

test("two concurrent pulls of one image share the downloads", async (t) => {
  const { reg, store, image, opts } = await setup(t);
  reg.slowBytesPer50ms = 128 * 1024;
  const [a, b] = await Promise.all([pullImage(store, `${reg.host}/test/img:v1`, opts), pullImage(store, `${reg.host}/test/img:v1`, opts)]);
  assert.equal(a.id, b.id);
  for (const l of image.layers) {
    assert.equal(reg.log.filter((r) => r.method === "GET" && r.path.endsWith(l.digest)).length, 1, `layer ${l.digest} downloaded once`);
  }
});

test("an unreachable registry is one clear line", async (t) => {
  const { reg, store, opts } = await setup(t);
  const host = reg.host;
  await reg.stop();
  await rejectsWith(pullImage(store, `${host}/test/img:v1`, { ...opts, retries: 1 }), /cannot reach registry 127\.0\.0\.1:\d+ \(http:\/\/127\.0\.0\.1:\d+\).*ECONNREFUSED.*check the address/);
});
