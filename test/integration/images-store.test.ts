// The image store with real layers, overlay mounts and the CLI (root): a multi-layer image with a
// deletion, an opaque dir, hard links, a device node and xattrs runs as overlayfs shows it; bad input
// (truncated layer, corrupt blob, not an archive) is refused and leaves nothing; concurrent loads share
// the work; nothing is left mounted or in tmp/ afterwards.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { ImageStore } from "../../src/images/store.js";
import { berth, BERTH_BIN, isRoot, settle, show, snapshot, waitFor } from "../helpers/berth.js";
import {
  busyboxLayer, dockerArchive, imageConfig, listDir, makeTar, sha256, storeDebris, tempDir, type TestImage, writeOciLayout,
} from "../helpers/images.js";

const skip = !isRoot ? "needs root" : false;

describe("image store (integration)", { skip }, () => {
  let work: { dir: string; remove: () => void };
  let root: string;
  let env: NodeJS.ProcessEnv;
  let base: Buffer;
  let image: TestImage;
  const cli = (...args: string[]) => berth(args, { env, timeoutMs: 60_000 });

  before(async () => {
    work = tempDir("berth-images-");
    root = join(work.dir, "data");
    env = { ...process.env, BERTH_DATA_ROOT: root };
    base = busyboxLayer();
    const middle = await makeTar([
      [{ name: "etc/", type: "directory", mode: 0o755 }],
      [{ name: "etc/gone" }, "to be deleted"],
      [{ name: "opq/", type: "directory", mode: 0o755 }],
      [{ name: "opq/old" }, "old"],
      [{ name: "data/", type: "directory", mode: 0o755 }],
      [{ name: "data/a" }, "shared inode"],
      [{ name: "data/b", type: "link", linkname: "data/a" }],
      [{ name: "data/owned", uid: 1234, gid: 1234, mode: 0o640 }, "mine"],
      [{ name: "data/x", pax: { "SCHILY.xattr.user.berth": "hello" } }, "xattr"],
      [{ name: "data/null2", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666 }],
      [{ name: "data/fifo", type: "fifo", mode: 0o644 }],
      [{ name: "data/link", type: "symlink", linkname: "a" }],
    ]);
    const top = await makeTar([
      [{ name: "etc/.wh.gone" }],
      [{ name: "opq/.wh..wh..opq" }],
      [{ name: "opq/new" }, "new"],
      [{ name: "work/", type: "directory", mode: 0o755 }],
    ]);
    image = { layers: [base, middle, top], config: imageConfig([base, middle, top], { Env: ["PATH=/bin", "FROM_IMAGE=yes"], WorkingDir: "/work", Entrypoint: ["/bin/sh", "-c"], Cmd: ["echo default-cmd"], Labels: { team: "berth" } }) };
  });

  after(() => {
    work.remove();
  });

  it("loads an OCI layout with whiteouts, an opaque dir, hard links, devices and xattrs, and runs it", async () => {
    const before = snapshot();
    const layout = join(work.dir, "layout");
    writeOciLayout(layout, image, "docker.io/library/multi:1");
    const load = cli("load", "-i", layout);
    assert.equal(load.code, 0, show(load));
    assert.match(load.stdout, /Loaded image: multi:1/);

    const run = cli("run", "multi:1",
      "test ! -e /etc/gone && echo gone-ok; ls /opq; stat -c %i /data/a /data/b; stat -c '%u:%g %a' /data/owned; " +
      "test -c /data/null2 && echo dev-ok; test -p /data/fifo && echo fifo-ok; readlink /data/link; pwd; echo $FROM_IMAGE; cat /data/a");
    assert.equal(run.code, 0, show(run));
    const lines = run.stdout.trim().split("\n");
    assert.equal(lines[0], "gone-ok");
    assert.equal(lines[1], "new", "the opaque dir shows only the top layer's content");
    assert.equal(lines[2], lines[3], "hard links share an inode");
    assert.equal(lines[4], "1234:1234 640");
    assert.deepEqual(lines.slice(5), ["dev-ok", "fifo-ok", "a", "/work", "yes", "shared inode"]);

    // Default command from Entrypoint + Cmd; --entrypoint and arguments override.
    assert.equal(cli("run", "multi:1").stdout, "default-cmd\n");
    assert.equal(cli("run", "--entrypoint", "/bin/echo", "multi:1", "x", "y").stdout, "x y\n");
    assert.equal(cli("run", "-e", "FROM_IMAGE=no", "-w", "/", "multi:1", "echo $FROM_IMAGE $(pwd)").stdout, "no /\n");

    // xattrs on the unpacked layer (the overlay passes user.* through as well).
    const store = new ImageStore(root);
    const rec = store.findImage("multi:1")!;
    const middleDir = store.lowerDirs(rec.id)[1];
    const fattr = spawnSync("getfattr", ["-n", "user.berth", "--only-values", join(middleDir, "data/x")], { encoding: "utf8" });
    if (fattr.error === undefined) assert.equal(fattr.stdout, "hello");
    const topDir = store.lowerDirs(rec.id)[0];
    const opaque = spawnSync("getfattr", ["-n", "trusted.overlay.opaque", "--only-values", join(topDir, "opq")], { encoding: "utf8" });
    if (opaque.error === undefined) assert.equal(opaque.stdout, "y");

    assert.deepEqual(storeDebris(root), []);
    assert.deepEqual(await settle(before), []);
  });

  it("lists, tags, inspects, shows history, and removes images like docker", () => {
    assert.equal(cli("tag", "multi:1", "localhost:5000/x/multi:v2").code, 0);
    const ls = cli("images", "--format", "{{.Repository}}:{{.Tag}}");
    assert.deepEqual(ls.stdout.trim().split("\n").sort(), ["localhost:5000/x/multi:v2", "multi:1"]);
    assert.equal(cli("images", "--filter", "reference=multi").stdout.split("\n").filter(Boolean).length, 2);
    assert.match(cli("images", "--filter", "label=team=berth", "-q").stdout, /^[0-9a-f]{12}\n$/);
    assert.equal(cli("images", "--filter", "dangling=true", "-q").stdout, "");
    const inspect = JSON.parse(cli("image", "inspect", "multi:1").stdout) as Record<string, unknown>[];
    assert.equal(inspect.length, 1);
    assert.deepEqual((inspect[0].RepoTags as string[]).sort(), ["localhost:5000/x/multi:v2", "multi:1"]);
    assert.deepEqual((inspect[0].Config as { Entrypoint: string[] }).Entrypoint, ["/bin/sh", "-c"]);
    assert.equal((inspect[0].RootFS as { Layers: string[] }).Layers.length, 3);
    assert.equal(cli("image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", "multi:1").stdout.trim().split("/")[0], "linux");
    const hist = cli("history", "multi:1");
    assert.match(hist.stdout, /^IMAGE +CREATED +CREATED BY +SIZE +COMMENT\n[0-9a-f]{12} .*layer 2/);
    const missing = cli("image", "inspect", "nosuch");
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /No such image: nosuch/);

    const untag = cli("rmi", "localhost:5000/x/multi:v2");
    assert.equal(untag.code, 0, show(untag));
    assert.equal(untag.stdout, "Untagged: localhost:5000/x/multi:v2\n");
  });

  it("refuses to remove an image a running container uses", async () => {
    const id = new ImageStore(root).findImage("multi:1")!.id;
    const child = spawn(process.execPath, [BERTH_BIN, "run", "multi:1", "sleep 30"], { env, stdio: "ignore" });
    try {
      await waitFor("the container to record its image", () => new ImageStore(root).imagesInUse().has(id), 20_000);
      const r = cli("rmi", "multi:1");
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, /being used by running container/);
      assert.ok(new ImageStore(root).findImage("multi:1"));
      const prune = cli("image", "prune", "-a");
      assert.equal(prune.code, 0, show(prune));
      assert.ok(new ImageStore(root).findImage("multi:1"), "prune -a keeps images in use");
    } finally {
      child.kill("SIGTERM");
      await new Promise((res) => child.on("close", res));
    }
  });

  it("berth run of a missing image names the reference and exits 125", () => {
    const r = cli("run", "nosuch-image-xyz");
    assert.equal(r.code, 125);
    assert.match(r.stderr, /nosuch-image-xyz/);
  });

  it("refuses a truncated gzip layer and a corrupt blob, leaving nothing", async () => {
    const before = listDir(join(root, "layers"));
    const blobsBefore = listDir(join(root, "blobs/sha256"));
    const refsBefore = readFileSync(join(root, "repositories.json"), "utf8");
    const layer = await makeTar([[{ name: "big" }, Buffer.alloc(200_000, 7)], [{ name: "sh" }, "x"]]);
    const gz = gzipSync(layer);
    // A docker archive whose layer is cut short.
    const archive = await dockerArchive({ layers: [gz.subarray(0, gz.length - 100)], config: imageConfig([layer]) }, ["trunc:1"]);
    const file = join(work.dir, "trunc.tar");
    writeFileSync(file, archive);
    const r = cli("load", "-i", file);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /truncated|ends early/);
    assert.doesNotMatch(r.stderr, /\n.+\n/, "one line");
    assert.deepEqual(listDir(join(root, "layers")), before);
    assert.equal(readFileSync(join(root, "repositories.json"), "utf8"), refsBefore);
    assert.deepEqual(storeDebris(root), []);

    // A blob whose bytes were changed in the store is refused on read and removed.
    const store = new ImageStore(root);
    const digest = await store.putBlobBytes(Buffer.from("{\"a\":1}"));
    writeFileSync(store.blobPath(digest), "{\"a\":2}");
    await assert.rejects(store.readBlob(digest), /corrupt/);
    assert.equal(store.hasBlob(digest), false);

    // An ingest whose content does not match leaves nothing.
    await assert.rejects(store.ingestBlob({ digest: sha256("right"), size: 5 }, async () => Readable.from([Buffer.from("wrong")])), /digest mismatch/);
    assert.equal(store.hasBlob(sha256("right")), false);
    assert.deepEqual(listDir(join(root, "blobs/sha256")).filter((b) => !blobsBefore.includes(b)), []);
    assert.deepEqual(storeDebris(root), []);

    // Not an image archive.
    const notImage = join(work.dir, "plain.tar");
    writeFileSync(notImage, await makeTar([[{ name: "hello.txt" }, "hi"]]));
    const n = cli("load", "-i", notImage);
    assert.equal(n.code, 1);
    assert.match(n.stderr, /not an image archive/);
    writeFileSync(notImage, "garbage");
    assert.match(cli("load", "-i", notImage).stderr, /not a tar archive/);
    assert.match(cli("import", notImage).stderr, /not a tar archive/);
  });

  it("refuses layers whose entries escape, naming the entry", async () => {
    for (const [entries, re] of [
      [[[{ name: "../evil" }, "x"]], /"\.\.\/evil" climbs out/],
      [[[{ name: "/abs" }, "x"]], /"\/abs" has an absolute path/],
      [[[{ name: "lnk", type: "symlink", linkname: "/etc" }], [{ name: "lnk/passwd" }, "x"]], /"lnk\/passwd" goes through the symlink "lnk"/],
      [[[{ name: "h", type: "link", linkname: "../../etc/passwd" }]], /climbs out/],
    ] as [Parameters<typeof makeTar>[0], RegExp][]) {
      const layer = await makeTar(entries);
      const file = join(work.dir, "evil.tar");
      writeFileSync(file, await dockerArchive({ layers: [layer], config: imageConfig([layer]) }, ["evil:1"]));
      const r = cli("load", "-i", file);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, re);
    }
    assert.equal(existsSync("/etc/passwd") && readFileSync("/etc/passwd", "utf8").startsWith("x"), false);
    assert.deepEqual(storeDebris(root), []);
    assert.equal(new ImageStore(root).findImage("evil:1"), undefined);
  });

  it("two concurrent loads and imports of one image share the work and agree", async () => {
    const file = join(work.dir, "conc.tar");
    const layer = await makeTar([[{ name: "f" }, Buffer.alloc(1 << 20, 1)], [{ name: "bin/" , type: "directory" }]]);
    writeFileSync(file, await dockerArchive({ layers: [layer], config: imageConfig([layer]) }, ["conc:1"], { gzipLayers: true }));
    const rootfs = join(work.dir, "rootfs.tar.gz");
    writeFileSync(rootfs, gzipSync(base));
    const runBoth = (args: string[]) => Promise.all([0, 1].map(() => new Promise<{ code: number | null; err: string }>((res) => {
      const c = spawn(process.execPath, [BERTH_BIN, ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      c.stderr.on("data", (d: Buffer) => { err += d.toString(); });
      c.on("close", (code) => res({ code, err }));
    })));
    for (const r of await runBoth(["load", "-i", file])) assert.equal(r.code, 0, r.err);
    for (const r of await runBoth(["import", rootfs, "imported:1"])) assert.equal(r.code, 0, r.err);
    const store = new ImageStore(root);
    assert.ok(store.findImage("conc:1"));
    assert.ok(store.findImage("imported:1"));
    assert.equal(cli("run", "--entrypoint", "", "imported:1", "/bin/echo", "imported-ok").stdout, "imported-ok\n");
    assert.deepEqual(storeDebris(root), []);
    assert.deepEqual(readdirSync(join(root, "layers")).filter((n) => !/^[0-9a-f]{64}$/.test(n)), []);
  });

  it("ingest resumes a partial download and concurrent ingests of one digest fetch once", async () => {
    const data = Buffer.alloc(300_000, 3);
    const digest = sha256(data);
    const store = new ImageStore(root);
    const offsets: number[] = [];
    // First attempt: the connection drops after 100000 bytes.
    await assert.rejects(store.ingestBlob({ digest, size: data.length }, async (offset) => {
      offsets.push(offset);
      return new Readable({
        read() {
          this.push(data.subarray(0, 100_000));
          this.destroy(new Error("connection reset"));
        },
      });
    }), /transfer failed after 100000/);
    assert.equal(store.hasBlob(digest), false);
    // Second attempt starts at the offset the partial file reached.
    await store.ingestBlob({ digest, size: data.length }, async (offset) => {
      offsets.push(offset);
      return Readable.from([data.subarray(offset)]);
    });
    assert.equal(offsets[0], 0);
    assert.ok(offsets[1] <= 100_000, "resumes from what reached the disk");
    assert.deepEqual(await store.readBlob(digest), data);

    // A partial file from an earlier (killed) process is resumed from its length.
    const more = Buffer.alloc(150_000, 5);
    const d3 = sha256(more);
    writeFileSync(join(root, "tmp/ingest", `${d3.slice(7)}.partial`), more.subarray(0, 60_000));
    const seen: number[] = [];
    await store.ingestBlob({ digest: d3, size: more.length }, async (offset) => {
      seen.push(offset);
      return Readable.from([more.subarray(offset)]);
    });
    assert.deepEqual(seen, [60_000]);
    assert.deepEqual(await store.readBlob(d3), more);

    // Two stores (as two processes would) ingest one new digest at once: one download.
    const other = Buffer.alloc(200_000, 9);
    const d2 = sha256(other);
    let opens = 0;
    const open = async () => {
      opens++;
      await new Promise((r) => setTimeout(r, 200));
      return Readable.from([other]);
    };
    await Promise.all([new ImageStore(root).ingestBlob({ digest: d2, size: other.length }, open), new ImageStore(root).ingestBlob({ digest: d2, size: other.length }, open)]);
    assert.equal(opens, 1);
    assert.deepEqual(storeDebris(root), []);
  });

  it("system df and image prune reclaim unreferenced layers and blobs", () => {
    const df = cli("system", "df");
    assert.match(df.stdout, /^TYPE +TOTAL +ACTIVE +SIZE +RECLAIMABLE\nImages +\d+ +0 /);
    assert.equal(cli("rmi", "conc:1").code, 0);
    const prune = cli("image", "prune", "-a", "-f");
    assert.equal(prune.code, 0, show(prune));
    assert.match(prune.stdout, /Total reclaimed space: /);
    assert.deepEqual(listDir(join(root, "images")), []);
    assert.deepEqual(listDir(join(root, "layers")), []);
    assert.deepEqual(listDir(join(root, "blobs/sha256")), []);
    assert.deepEqual(storeDebris(root), []);
  });
});
