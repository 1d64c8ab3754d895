import { test } from "node:test";
import assert from "node:assert/strict";
import { BerthError } from "../../src/errors.js";
import { parseReference } from "../../src/distribution/reference.js";
import { hostPlatform, MT, parseImageConfig, parseManifest, parsePlatform, selectPlatform } from "../../src/distribution/manifest.js";
import { humanSize, progressBar, ProgressDisplay } from "../../src/distribution/progress.js";
import { describeErrorBody, isLoopback, parseChallenge } from "../../src/distribution/client.js";
import { mountSources } from "../../src/distribution/push.js";
import { makeImage, makeIndex, makeTar } from "../helpers/registry.js";

const D = `sha256:${"a".repeat(64)}`;

test("references normalise like docker's", () => {
  assert.equal(parseReference("busybox").full, "docker.io/library/busybox:latest");
  assert.equal(parseReference("busybox").familiar, "busybox:latest");
  assert.equal(parseReference("user/app:1.0").full, "docker.io/user/app:1.0");
  const r = parseReference(`127.0.0.1:5000/x/y@${D}`);
  assert.deepEqual([r.registry, r.repository, r.tag, r.digest], ["127.0.0.1:5000", "x/y", undefined, D]);
  assert.equal(r.familiar, `127.0.0.1:5000/x/y@${D}`);
  assert.equal(parseReference("localhost/x").registry, "localhost");
  assert.equal(parseReference("index.docker.io/library/alpine:3").familiar, "alpine:3");
  for (const bad of ["", "UPPER", "a b", "x@sha256:12", "x:", "-x"]) {
    assert.throws(() => parseReference(bad), (e: unknown) => e instanceof BerthError && e.message.startsWith("invalid reference format"), bad);
  }
});

test("manifests parse by media type and refuse what is not an image", () => {
  const im = makeImage([makeTar([{ name: "a", data: "x" }])]);
  const m = parseManifest(im.manifest, "", "m");
  assert.equal(m.kind, "manifest");
  const dm = parseManifest(makeImage([makeTar([])], { docker: true }).manifest, MT.dockerManifest, "m");
  assert.equal(dm.mediaType, MT.dockerManifest);
  const idx = makeIndex([{ image: im, platform: { os: "linux", architecture: "amd64" } }]);
  assert.equal(parseManifest(idx.bytes, "", "m").kind, "index");
  const reject = (bytes: string, type: string, re: RegExp) =>
    assert.throws(() => parseManifest(Buffer.from(bytes), type, "manifest of x:1"), (e: unknown) => e instanceof BerthError && re.test(e.message) && e.message.includes("manifest of x:1"));
  reject("<html><body>oops</body></html>", "text/html", /HTML/);
  reject("{not json", "application/json", /does not parse as JSON/);
  reject('{"schemaVersion":1,"fsLayers":[]}', "", /schema 1/);
  reject(JSON.stringify({ schemaVersion: 2, config: { mediaType: MT.ociConfig, digest: "sha256:../../etc", size: 1 }, layers: [] }), "", /invalid digest/);
  reject(JSON.stringify({ schemaVersion: 2, config: { mediaType: "application/vnd.cncf.helm.config.v1+json", digest: D, size: 1 }, layers: [] }), "", /artifact/);
  reject(JSON.stringify({ schemaVersion: 2, config: { mediaType: MT.ociConfig, digest: D, size: 1 }, layers: [{ mediaType: "application/x-foo", digest: D, size: 1 }] }), "", /unsupported media type/);
});

test("platform selection: host default, variants, a clear error listing what exists", () => {
  assert.deepEqual(hostPlatform().os, "linux");
  assert.deepEqual(parsePlatform("linux/x86_64"), { os: "linux", architecture: "amd64" });
  assert.deepEqual(parsePlatform("linux/arm/v7"), { os: "linux", architecture: "arm", variant: "v7" });
  // OS only (docker, containerd): the host's architecture; an architecture alone: linux.
  assert.deepEqual(parsePlatform("linux"), hostPlatform());
  assert.deepEqual(parsePlatform("Windows"), { ...hostPlatform(), os: "windows" });
  assert.deepEqual(parsePlatform("arm64"), { os: "linux", architecture: "arm64" });
  assert.deepEqual(parsePlatform("x86_64"), { os: "linux", architecture: "amd64" });
  assert.throws(() => parsePlatform("linx"), /invalid --platform "linx": "linx" is neither a known operating system nor architecture/);
  assert.throws(() => parsePlatform("linux/amd64/v2/x"), /expected os\[\/arch/);
  assert.throws(() => parsePlatform(""), /invalid --platform ""/);
  const a = makeImage([makeTar([{ name: "a" }])]);
  const b = makeImage([makeTar([{ name: "b" }])], { arch: "arm64" });
  const c = makeImage([makeTar([{ name: "c" }])], { arch: "arm" });
  const idx = parseManifest(makeIndex([
    { image: a, platform: { os: "linux", architecture: "amd64" } },
    { image: b, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
    { image: c, platform: { os: "linux", architecture: "arm", variant: "v7" } },
  ]).bytes, "", "x");
  assert.equal(idx.kind, "index");
  if (idx.kind !== "index") return;
  assert.equal(selectPlatform(idx, parsePlatform("linux/amd64"), "x").digest, a.manifestDigest);
  assert.equal(selectPlatform(idx, parsePlatform("linux/arm64"), "x").digest, b.manifestDigest);
  assert.equal(selectPlatform(idx, parsePlatform("linux/arm"), "x").digest, c.manifestDigest);
  assert.throws(() => selectPlatform(idx, parsePlatform("linux/s390x"), "img:1"),
    /no matching manifest for linux\/s390x in the manifest list entries of img:1 \(it has linux\/amd64, linux\/arm64\/v8, linux\/arm\/v7\): choose one with --platform/);
});

test("image configs must list one diff ID per layer", () => {
  const im = makeImage([makeTar([]), makeTar([{ name: "x" }])]);
  assert.equal(parseImageConfig(im.config, 2, "x").diffIds.length, 2);
  assert.throws(() => parseImageConfig(im.config, 3, "x:1"), /config of x:1 .*2 layer diff IDs but the manifest has 3/);
  assert.throws(() => parseImageConfig(Buffer.from("garbage"), 1, "x:1"), /does not parse as JSON/);
});

test("challenges, error bodies, loopback detection, mount sources", () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'), {
    scheme: "bearer", params: { realm: "https://auth.example/token", service: "registry.example", scope: "repository:a/b:pull" },
  });
  assert.deepEqual(parseChallenge('Basic realm="x"'), { scheme: "basic", params: { realm: "x" } });
  assert.equal(parseChallenge("Negotiate abc"), undefined);
  assert.equal(describeErrorBody(Buffer.from('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'), "application/json").text, "manifest_unknown: manifest unknown");
  assert.match(describeErrorBody(Buffer.from("<html><title>502 Bad Gateway</title></html>"), "text/html").text, /HTML page \("502 Bad Gateway"\)/);
  for (const h of ["127.0.0.1:5000", "127.1.2.3", "localhost:80", "[::1]:5000", "::1"]) assert.ok(isLoopback(h), h);
  for (const h of ["registry.example:5000", "10.0.0.1", "128.0.0.1"]) assert.ok(!isLoopback(h), h);
  assert.deepEqual(mountSources([`127.0.0.1:5000/a@${D}`, `127.0.0.1:5000/b@${D}`, `other:1/c@${D}`, "garbage"], "127.0.0.1:5000", "b"), ["a"]);
});

test("progress: docker's sizes and bar, in place on a terminal, plain lines otherwise", () => {
  assert.equal(humanSize(1234567), "1.235MB");
  assert.equal(humanSize(999), "999B");
  assert.match(progressBar(50, 100), /^\[={25}> {25}\] {6}50B\/100B$/);
  let out = "";
  const plain = new ProgressDisplay({ write: (s: string) => { out += s; } }, { tty: false });
  plain.update("abc", "Downloading", "[==>]");
  plain.update("abc", "Downloading", "[===>]");
  plain.update("abc", "Pull complete");
  assert.equal(out, "abc: Downloading\nabc: Pull complete\n");
  out = "";
  const tty = new ProgressDisplay({ write: (s: string) => { out += s; } }, { tty: true });
  tty.update("a", "Pulling fs layer");
  tty.update("b", "Pulling fs layer");
  tty.update("a", "Downloading", "[>]");
  assert.equal(out, "a: Pulling fs layer\nb: Pulling fs layer\n\x1b[2A\r\x1b[2Ka: Downloading [>]\r\x1b[2B");
});
