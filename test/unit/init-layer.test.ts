import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initLayerPaths } from "../../src/daemon/init-layer.js";

test("initLayerPaths: the engine's empty /etc mountpoints (and etc when only they are in it), not the container's files", () => {
  const upper = mkdtempSync(join(tmpdir(), "berth-init-"));
  try {
    mkdirSync(join(upper, "etc"));
    for (const f of ["hostname", "hosts", "resolv.conf"]) writeFileSync(join(upper, "etc", f), "");
    assert.deepEqual([...initLayerPaths(upper, () => false)].sort(), ["etc", "etc/hostname", "etc/hosts", "etc/resolv.conf"]);
    // In the image already: the upper copy is a change, as in docker.
    assert.deepEqual([...initLayerPaths(upper, (rel) => rel === "etc/hosts")].sort(), ["etc/hostname", "etc/resolv.conf"]);
    writeFileSync(join(upper, "etc", "motd"), "hi\n");
    assert.deepEqual([...initLayerPaths(upper, () => false)].sort(), ["etc/hostname", "etc/hosts", "etc/resolv.conf"]);
    writeFileSync(join(upper, "etc", "hosts"), "127.0.0.1 x\n");
    assert.deepEqual([...initLayerPaths(upper, () => false)].sort(), ["etc/hostname", "etc/resolv.conf"]);
  } finally {
    rmSync(upper, { recursive: true, force: true });
  }
});
