// Pure parts of layer handling: where tar entries may land, whiteout mapping, xattr records,
// manifest/config parsing, image config -> run settings, docker's output formats.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyImageConfig } from "../../src/images/run-config.js";
import { formatRows, renderTemplate } from "../../src/cli/format.js";
import { globMatch, humanDuration, humanSize, since, table } from "../../src/images/format.js";
import { layerCompression, manifestKind, parseImageConfig, parseIndex, parseManifest } from "../../src/images/manifest.js";
import { cleanEntryPath, parentsOf, paxXattrs, whiteoutAction } from "../../src/images/tar-paths.js";

const D = (c: string) => "sha256:" + c.repeat(64);

describe("tar entry path safety", () => {
  it("normalises harmless paths", () => {
    assert.equal(cleanEntryPath("./etc/passwd"), "etc/passwd");
    assert.equal(cleanEntryPath("etc/"), "etc");
    assert.equal(cleanEntryPath("./"), "");
    assert.equal(cleanEntryPath("."), "");
    assert.equal(cleanEntryPath("a/../b"), "b");
    assert.equal(cleanEntryPath("a//b/./c"), "a/b/c");
  });
  it("refuses entries that land outside the layer, naming them", () => {
    assert.throws(() => cleanEntryPath("../etc/passwd"), /"\.\.\/etc\/passwd" climbs out/);
    assert.throws(() => cleanEntryPath("a/../../x"), /"a\/\.\.\/\.\.\/x" climbs out/);
    assert.throws(() => cleanEntryPath(".."), /climbs out/);
    assert.throws(() => cleanEntryPath("/etc/passwd"), /"\/etc\/passwd" has an absolute path/);
    assert.throws(() => cleanEntryPath("a\0b"), /NUL/);
  });
  it("lists parents outermost first", () => {
    assert.deepEqual(parentsOf("a/b/c"), ["a", "a/b"]);
    assert.deepEqual(parentsOf("a"), []);
  });
});

describe("OCI whiteouts -> overlayfs", () => {
  it("maps .wh.name to a whiteout of name", () => {
    assert.deepEqual(whiteoutAction("etc/.wh.passwd"), { kind: "whiteout", path: "etc/passwd" });
    assert.deepEqual(whiteoutAction(".wh.top"), { kind: "whiteout", path: "top" });
  });
  it("maps .wh..wh..opq to an opaque parent", () => {
    assert.deepEqual(whiteoutAction("var/cache/.wh..wh..opq"), { kind: "opaque", dir: "var/cache" });
    assert.deepEqual(whiteoutAction(".wh..wh..opq"), { kind: "opaque", dir: "" });
  });
  it("ignores aufs meta files and leaves ordinary names alone", () => {
    assert.deepEqual(whiteoutAction(".wh..wh.plnk/123"), undefined);
    assert.deepEqual(whiteoutAction(".wh..wh.plnk"), { kind: "ignore" });
    assert.equal(whiteoutAction("etc/passwd"), undefined);
    assert.equal(whiteoutAction("etc/x.wh.y"), undefined);
  });
  it("refuses a whiteout without a name", () => {
    assert.throws(() => whiteoutAction("a/.wh."), /no valid name/);
    assert.throws(() => whiteoutAction("a/.wh.."), /no valid name/);
  });
});

describe("PAX xattr records", () => {
  it("reads SCHILY.xattr.* as bytes and LIBARCHIVE.xattr.* base64", () => {
    const x = paxXattrs({ "SCHILY.xattr.user.a": "v", "SCHILY.xattr.security.capability": "\x01\x00\xff", path: "x", "LIBARCHIVE.xattr.user.b": Buffer.from("w").toString("base64") });
    assert.deepEqual(x, [["user.a", Buffer.from("v")], ["security.capability", Buffer.from([1, 0, 255])], ["user.b", Buffer.from("w")]]);
    assert.deepEqual(paxXattrs(null), []);
  });
});

describe("manifests and configs", () => {
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.docker.distribution.manifest.v2+json",
    config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: D("a"), size: 10 },
    layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", digest: D("b"), size: 20 }],
  };
  it("parses Docker schema2 and OCI manifests", () => {
    assert.equal(parseManifest(JSON.stringify(manifest)).layers[0].digest, D("b"));
    const oci = { ...manifest, mediaType: undefined, layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+zstd", digest: D("c"), size: 1 }] };
    assert.equal(manifestKind(oci), "manifest");
    assert.equal(parseManifest(JSON.stringify(oci)).layers.length, 1);
  });
  it("refuses broken manifests with one clear line", () => {
    assert.throws(() => parseManifest("<html>502</html>"), /not valid JSON/);
    assert.throws(() => parseManifest(JSON.stringify({ ...manifest, schemaVersion: 1 })), /schemaVersion/);
    assert.throws(() => parseManifest(JSON.stringify({ ...manifest, layers: [{ mediaType: "x/y", digest: D("b"), size: 1 }] })), /unsupported media type/);
    assert.throws(() => parseManifest(JSON.stringify({ ...manifest, config: { ...manifest.config, digest: "sha256:zz" } })), /bad digest/);
    assert.throws(() => parseManifest(JSON.stringify({ ...manifest, layers: [{ ...manifest.layers[0], size: -1 }] })), /bad size/);
  });
  it("tells indexes apart", () => {
    const idx = { schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: D("d"), size: 3, platform: { os: "linux", architecture: "amd64" } }] };
    assert.equal(manifestKind(idx), "index");
    assert.equal(parseIndex(JSON.stringify(idx)).manifests.length, 1);
    assert.throws(() => parseManifest(JSON.stringify(idx)), /not an image manifest/);
  });
  it("parses configs and refuses ones without diff IDs", () => {
    const cfg = { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [D("e")] }, config: { Cmd: ["sh"] } };
    assert.deepEqual(parseImageConfig(JSON.stringify(cfg)).rootfs.diff_ids, [D("e")]);
    assert.throws(() => parseImageConfig(JSON.stringify({ ...cfg, rootfs: {} })), /rootfs.diff_ids/);
    assert.throws(() => parseImageConfig(JSON.stringify({ ...cfg, config: { Cmd: "sh" } })), /Cmd is not a list/);
  });
  it("knows layer compression from media types", () => {
    assert.equal(layerCompression("application/vnd.oci.image.layer.v1.tar+zstd"), "zstd");
    assert.equal(layerCompression("application/vnd.docker.image.rootfs.diff.tar.gzip"), "gzip");
    assert.equal(layerCompression("application/vnd.oci.image.layer.v1.tar"), "none");
  });
});

describe("image config -> run settings (docker's rules)", () => {
  const cfg = { Entrypoint: ["/entry"], Cmd: ["default"], Env: ["A=1", "PATH=/img"], WorkingDir: "/w", User: "app" };
  it("entrypoint + cmd by default", () => {
    assert.deepEqual(applyImageConfig("i", cfg, { args: [], env: [] }), { command: ["/entry", "default"], env: ["A=1", "PATH=/img"], workdir: "/w", user: "app" });
  });
  it("arguments replace Cmd, keep Entrypoint", () => {
    assert.deepEqual(applyImageConfig("i", cfg, { args: ["x"], env: [] }).command, ["/entry", "x"]);
  });
  it("--entrypoint replaces Entrypoint and clears Cmd", () => {
    assert.deepEqual(applyImageConfig("i", cfg, { entrypoint: "/bin/sh", args: [], env: [] }).command, ["/bin/sh"]);
    assert.deepEqual(applyImageConfig("i", cfg, { entrypoint: "", args: ["ls"], env: [] }).command, ["ls"]);
  });
  it("-e after image Env; -w and -u win", () => {
    const s = applyImageConfig("i", cfg, { args: [], env: ["A=2"], workdir: "/x", user: "0" });
    assert.deepEqual(s.env, ["A=1", "PATH=/img", "A=2"]);
    assert.equal(s.workdir, "/x");
    assert.equal(s.user, "0");
  });
  it("no command at all is an error naming the image", () => {
    assert.throws(() => applyImageConfig("scratchy", {}, { args: [], env: [] }), /image scratchy has no Entrypoint or Cmd/);
  });
});

describe("docker's output formats", () => {
  it("human sizes", () => {
    assert.equal(humanSize(0), "0B");
    assert.equal(humanSize(4_261_000), "4.26MB");
    assert.equal(humanSize(856_000), "856kB");
    assert.equal(humanSize(1_240_000_000), "1.24GB");
  });
  it("human durations", () => {
    assert.equal(humanDuration(500), "Less than a second");
    assert.equal(humanDuration(30_000), "30 seconds");
    assert.equal(humanDuration(90_000), "About a minute");
    assert.equal(humanDuration(3 * 3600_000), "3 hours");
    assert.equal(humanDuration(15 * 86400_000), "2 weeks");
  });
  it("since: N/A for an image without a creation time (the epoch, or none), as docker", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    assert.equal(since("2025-12-31T21:00:00Z", now), "3 hours ago");
    assert.equal(since(new Date(0).toISOString(), now), "N/A");
    assert.equal(since("", now), "N/A");
  });
  it("templates", () => {
    assert.equal(renderTemplate("{{.Repository}}:{{.Tag}}", { Repository: "busybox", Tag: "latest" }), "busybox:latest");
    assert.equal(renderTemplate("{{json .Config.Cmd}}", { Config: { Cmd: ["sh"] } }), '["sh"]');
    assert.equal(renderTemplate("{{.Config.Cmd}}", { Config: { Cmd: ["sh", "-c"] } }), "[sh -c]");
    assert.equal(renderTemplate("{{.A}}\\t{{.B}}", { A: 1, B: 2 }), "1\t2");
    assert.equal(formatRows("table {{.ID}}\t{{.Tag}}", [{ ID: "abc", Tag: "t" }], { ID: "IMAGE ID", Tag: "TAG" }), "IMAGE ID   TAG\nabc        t\n");
  });
  it("tables and globs", () => {
    assert.equal(table([["A", "B"], ["long-value", "x"]]), "A            B\nlong-value   x\n");
    assert.ok(globMatch("busy*", "busybox"));
    assert.ok(!globMatch("*", "a/b"));
    assert.ok(globMatch("*/*", "a/b"));
  });
});
