// The overlay mount of many layers: absolute paths while they fit in a page of mount options, short
// links (mounted from their directory) beyond; and the plan changes into that directory first.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readlinkSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { planContainer } from "../../src/core/container-plan.js";
import { buildRunSpec } from "../../src/core/run-spec.js";
import { MOUNT_DATA_MAX, overlayMount } from "../../src/runtime/overlay.js";

const layers = (n: number) => Array.from({ length: n }, (_, i) => `/var/lib/berth/layers/${i.toString(16).padStart(64, "0")}/diff`);

test("a few layers: absolute lowerdir, no links, no cwd", () => {
  const dir = mkdtempSync(join(tmpdir(), "berth-ovl-"));
  try {
    const m = overlayMount(layers(3), "/c/upper", "/c/work", join(dir, "lower"));
    assert.equal(m.data, `lowerdir=${layers(3).join(":")},upperdir=/c/upper,workdir=/c/work`);
    assert.equal(m.cwd, undefined);
    assert.equal(existsSync(join(dir, "lower")), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("60 layers: short links in order (top first), relative lowerdir that fits, mounted from the link dir", () => {
  const dir = mkdtempSync(join(tmpdir(), "berth-ovl-"));
  try {
    const lowers = layers(60);
    assert.ok(`lowerdir=${lowers.join(":")}`.length > MOUNT_DATA_MAX);
    const linkDir = join(dir, "lower");
    const m = overlayMount(lowers, "/c/upper", "/c/work", linkDir);
    assert.equal(m.cwd, linkDir);
    assert.ok(m.data.length <= MOUNT_DATA_MAX);
    const names = /^lowerdir=([^,]*),upperdir=\/c\/upper,workdir=\/c\/work$/.exec(m.data)![1].split(":");
    assert.equal(names.length, 60);
    assert.deepEqual(names.map((n) => readlinkSync(join(linkDir, n))), lowers);
    assert.equal(readdirSync(linkDir).length, 60);
    // Made afresh: a second start does not trip over the first one's links.
    overlayMount(lowers, "/c/upper", "/c/work", linkDir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the plan changes into the mount's cwd right before mounting the root", () => {
  const spec = buildRunSpec({ rootfs: "/images/x", command: ["true"] }, { id: "c1", runtimeCapabilities: [] });
  const plan = planContainer(spec, {
    rootfs: "/run/c1/rootfs",
    rootfsMounts: [{ source: "overlay", fstype: "overlay", data: "lowerdir=0:1,upperdir=/u,workdir=/w", cwd: "/run/c1/lower" }],
    host: { lastCap: 40 },
    isDirectory: () => true,
  });
  const at = plan.ops.findIndex((o) => o.op === "mount" && o.fstype === "overlay");
  assert.ok(at > 0);
  assert.deepEqual(plan.ops[at - 1], { op: "chdir", path: "/run/c1/lower" });
  const without = planContainer(spec, { rootfs: "/run/c1/rootfs", rootfsMounts: [{ source: "overlay", fstype: "overlay", data: "lowerdir=/a" }], host: { lastCap: 40 }, isDirectory: () => true });
  const i = without.ops.findIndex((o) => o.op === "mount" && o.fstype === "overlay");
  assert.notEqual(without.ops[i - 1].op, "chdir");
});
