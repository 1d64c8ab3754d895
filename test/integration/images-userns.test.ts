// berth run --uidmap/--gidmap on a loaded image: the layers' files are owned by container ids, so the
// store makes a copy of each layer per mapping with owners shifted to host ids (src/images/store.ts
// #idmappedLowerDirs). Inside, files show their image owners, root can write to root's dirs, set-id
// bits and file capabilities survive; the shared layer stays as it was; rmi removes the copies.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ImageStore } from "../../src/images/store.js";
import { berth, isRoot, show } from "../helpers/berth.js";
import { busyboxLayer, dockerArchive, imageConfig, makeTar, storeDebris, tempDir } from "../helpers/images.js";

const haveGetfattr = spawnSync("getfattr", ["--version"]).status === 0;
const skip = !isRoot ? "needs root" : !haveGetfattr ? "needs getfattr (apt-get install attr)" : false;
const MAP = ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"];
// A v2 file capability (cap_net_raw permitted), as setcap writes it for the host's root.
const CAP_V2 = Buffer.from("0100000200200000000000000000000000000000", "hex");

let work: { dir: string; remove: () => void };
let env: NodeJS.ProcessEnv;
let data = "";
let store: ImageStore;
let layers: Buffer[];

const owner = (p: string) => { const s = lstatSync(p); return `${s.uid}:${s.gid}`; };

before(async () => {
  if (skip) return;
  work = tempDir("berth-userns-");
  // The namespace's root (an unprivileged host uid) must pass through to the data root, as /var/lib.
  chmodSync(work.dir, 0o711);
  data = join(work.dir, "data");
  env = { ...process.env, BERTH_DATA_ROOT: data };
  layers = [
    busyboxLayer(),
    await makeTar([
      [{ name: "root", type: "directory", mode: 0o700 }],
      [{ name: "home", type: "directory", mode: 0o755 }],
      [{ name: "home/app", type: "directory", mode: 0o750, uid: 1234, gid: 1234 }],
      [{ name: "home/app/notes", mode: 0o640, uid: 1234, gid: 1234 }, "app's\n"],
      [{ name: "bin/suid", mode: 0o4755 }, "#!/bin/sh\n"],
      [{ name: "bin/ping", mode: 0o755, pax: { "SCHILY.xattr.security.capability": CAP_V2.toString("latin1") } }, "#!/bin/sh\n"],
    ]),
  ];
  const archive = join(work.dir, "img.tar");
  writeFileSync(archive, await dockerArchive({ layers, config: imageConfig(layers) }, ["userns:test"]));
  const load = berth(["load", "-i", archive], { env, timeoutMs: 120_000 });
  assert.equal(load.code, 0, show(load));
  store = new ImageStore(data, { cleanup: false });
});

after(() => {
  if (skip) return;
  work.remove();
});

const inside = [
  "stat -c '%n %u:%g %a' /bin /bin/busybox /etc /root /home/app /home/app/notes /bin/suid",
  // Kernel filesystems (proc, sys) belong to the host's root: nobody inside, as in any user namespace.
  "ls -ln / | grep ' 65534 ' | grep -v -e ' proc$' -e ' sys$'",
  "touch /root/made-by-root /etc/made-by-root && echo root-writes",
  "id -u",
].join("; ");

test("--uidmap on a loaded image: owners inside are the image's, root writes to /root and /etc; the shared layer is unchanged", { skip, timeout: 180_000 }, () => {
  const id = store.findImage("userns:test")!.id;
  const shared = store.lowerDirs(id);
  const before = shared.map((d) => [owner(join(d, ".")), existsSync(join(d, "bin")) ? owner(join(d, "bin")) : ""]);
  const r = berth(["run", "--rm", ...MAP, "userns:test", "sh", "-c", inside], { env, timeoutMs: 120_000 });
  assert.equal(r.code, 0, show(r));
  assert.equal(r.stdout, [
    "/bin 0:0 755", "/bin/busybox 0:0 755", "/etc 0:0 755", "/root 0:0 700", "/home/app 1234:1234 750", "/home/app/notes 1234:1234 640",
    "/bin/suid 0:0 4755",
    // nothing from the image shows as nobody
    "root-writes",
    "0",
  ].join("\n") + "\n", show(r));

  // The shared layers (other containers, no user namespace) are as they were: owned by container ids.
  assert.deepEqual(shared.map((d) => [owner(join(d, ".")), existsSync(join(d, "bin")) ? owner(join(d, "bin")) : ""]), before);
  assert.equal(owner(join(shared[0], "home/app")), "1234:1234");
  assert.equal(owner(join(shared[1], "bin/busybox")), "0:0");
  // The copies for this mapping: host ids, under each layer's dir.
  const copies = store.storedImage(id)!.diffIds.map((d) => join(store.layerDir(d), "idmap"));
  for (const c of copies) assert.equal(readdirSync(c).length, 1, `one copy for one mapping in ${c}`);
  const top = join(copies[1], readdirSync(copies[1])[0], "diff");
  assert.equal(owner(join(top, "home/app")), "101234:101234");
  assert.equal(owner(join(top, "root")), "100000:100000");
  assert.equal(lstatSync(join(top, "bin/suid")).mode & 0o7777, 0o4755, "chown did not cost the set-uid bit");
  // The capability counts for the namespace's root: a v3 value naming host uid 100000 (0x186a0).
  const cap = spawnSync("getfattr", ["--absolute-names", "-n", "security.capability", "-e", "hex", join(top, "bin/ping")], { encoding: "utf8" });
  assert.match(cap.stdout, /security\.capability=0x0100000300200000000000000000000000000000a0860100/, cap.stdout + cap.stderr);
  assert.deepEqual(storeDebris(data), []);
});

test("the copies are made once per mapping and go with the image", { skip, timeout: 180_000 }, () => {
  const id = store.findImage("userns:test")!.id;
  const diffIds = store.storedImage(id)!.diffIds;
  const copyOf = (d: string) => join(store.layerDir(d), "idmap", readdirSync(join(store.layerDir(d), "idmap"))[0], "diff");
  const ino = lstatSync(join(copyOf(diffIds[0]), "bin/busybox")).ino;
  const again = berth(["run", "--rm", ...MAP, "userns:test", "true"], { env, timeoutMs: 120_000 });
  assert.equal(again.code, 0, show(again));
  assert.equal(lstatSync(join(copyOf(diffIds[0]), "bin/busybox")).ino, ino, "the same copy, not a new one");
  // Another mapping: another copy beside the first.
  const other = berth(["run", "--rm", "--uidmap", "0:200000:65536", "--gidmap", "0:200000:65536", "userns:test", "stat", "-c", "%u", "/root"], { env, timeoutMs: 120_000 });
  assert.equal(other.code, 0, show(other));
  assert.equal(other.stdout, "0\n");
  assert.equal(readdirSync(join(store.layerDir(diffIds[1]), "idmap")).length, 2);
  const rmi = berth(["rmi", "userns:test"], { env });
  assert.equal(rmi.code, 0, show(rmi));
  for (const d of diffIds) assert.equal(existsSync(store.layerDir(d)), false, "layer and its copies removed");
});

test("an owner the mapping does not cover: one clear line, no copy left", { skip, timeout: 180_000 }, async () => {
  const layer = await makeTar([[{ name: "far", mode: 0o644, uid: 70000, gid: 0 }, "x\n"]]);
  const all = [busyboxLayer(), layer];
  const archive = join(work.dir, "far.tar");
  writeFileSync(archive, await dockerArchive({ layers: all, config: imageConfig(all) }, ["userns:far"]));
  assert.equal(berth(["load", "-i", archive], { env, timeoutMs: 120_000 }).code, 0);
  const r = berth(["run", "--rm", ...MAP, "userns:far", "true"], { env, timeoutMs: 120_000 });
  assert.equal(r.code, 125, show(r));
  assert.equal(r.stderr.trim().split("\n").length, 1, show(r));
  assert.match(r.stderr, /"far" is owned by uid 70000, which the user namespace's uid mapping does not cover/);
  const id = store.findImage("userns:far")!.id;
  const top = store.storedImage(id)!.diffIds[1];
  assert.equal(existsSync(join(store.layerDir(top), "idmap")), false);
  assert.deepEqual(storeDebris(data), []);
});
