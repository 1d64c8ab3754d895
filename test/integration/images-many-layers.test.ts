// An image of 60 layers: the absolute layer paths no longer fit in one page of mount options, so the
// overlay is mounted from short links (src/runtime/overlay.ts). Loaded from a docker-archive made here,
// then run through the daemon, in-process (BERTH_NO_DAEMON=1), and mounted while stopped (berth cp).

import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { overlayData, MOUNT_DATA_MAX } from "../../src/runtime/overlay.js";
import { ImageStore } from "../../src/images/store.js";
import { berth, isRoot, show } from "../helpers/berth.js";
import { busyboxLayer, dockerArchive, imageConfig, makeTar, storeDebris, tempDir } from "../helpers/images.js";

const skip = isRoot ? false : "needs root";
const LAYERS = 60;
let work: { dir: string; remove: () => void };
let env: NodeJS.ProcessEnv;
let data = "";

before(async () => {
  if (skip) return;
  work = tempDir("berth-layers-");
  data = join(work.dir, "data");
  env = { ...process.env, BERTH_DATA_ROOT: data };
  // Layer 0: busybox; layer i: its own /layer<i>, and /top rewritten (the topmost must win).
  const layers = [busyboxLayer()];
  for (let i = 1; i < LAYERS; i++) layers.push(await makeTar([[{ name: `layer${i}` }, `${i}\n`], [{ name: "top" }, `from layer ${i}\n`]]));
  const archive = join(work.dir, "many.tar");
  writeFileSync(archive, await dockerArchive({ layers, config: imageConfig(layers) }, ["many:layers"]));
  const load = berth(["load", "-i", archive], { env, timeoutMs: 120_000 });
  assert.equal(load.code, 0, show(load));
});

after(async () => {
  if (skip) return;
  berth(["rm", "-f", "many-stopped"], { env });
  work.remove();
});

const script = `cat /top; cat /layer1 /layer${LAYERS - 1}; ls / | grep -c '^layer'; touch /new && echo writable`;
const expected = `from layer ${LAYERS - 1}\n1\n${LAYERS - 1}\n${LAYERS - 1}\nwritable\n`;

test(`the ${LAYERS} layers' paths are too long for one mount option page`, { skip }, () => {
  const store = new ImageStore(data, { cleanup: false });
  const id = store.findImage("many:layers")!.id;
  const lowers = store.lowerDirs(id);
  assert.equal(lowers.length, LAYERS);
  // Without the short links the mount could not be made at all.
  assert.ok(overlayData(lowers, "/u", "/w").length > MOUNT_DATA_MAX, "the test image is big enough to need them");
});

test(`a ${LAYERS}-layer image runs through the daemon`, { skip, timeout: 120_000 }, () => {
  const r = berth(["run", "--rm", "many:layers", "sh", "-c", script], { env, timeoutMs: 90_000 });
  assert.equal(r.code, 0, show(r));
  assert.equal(r.stdout, expected);
});

test(`a ${LAYERS}-layer image runs in-process (berth run without the daemon)`, { skip, timeout: 120_000 }, () => {
  const r = berth(["run", "--rm", "many:layers", "sh", "-c", script], { env: { ...env, BERTH_NO_DAEMON: "1" }, timeoutMs: 90_000 });
  assert.equal(r.code, 0, show(r));
  assert.equal(r.stdout, expected);
  assert.deepEqual(storeDebris(data), []);
});

test(`a stopped ${LAYERS}-layer container's filesystem is mounted for berth cp`, { skip, timeout: 120_000 }, () => {
  const c = berth(["create", "--name", "many-stopped", "many:layers", "true"], { env, timeoutMs: 90_000 });
  assert.equal(c.code, 0, show(c));
  const dest = join(work.dir, "copied");
  const cp = berth(["cp", `many-stopped:/top`, dest], { env, timeoutMs: 90_000 });
  assert.equal(cp.code, 0, show(cp));
  assert.ok(existsSync(dest));
  assert.equal(readFileSync(dest, "utf8"), `from layer ${LAYERS - 1}\n`);
});
