// resolveInRoot: a container's paths resolve under its root on the host, never out of it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { resolveInRoot } from "../../src/daemon/container-fs.js";

test("resolveInRoot: links in the directories follow inside the root; the last only when asked or with a trailing /", () => {
  const root = mkdtempSync("/tmp/berth-rir-");
  try {
    mkdirSync(join(root, "etc"));
    writeFileSync(join(root, "etc/passwd"), "");
    symlinkSync("/etc", join(root, "abs"));
    symlinkSync("../../../etc", join(root, "up"));
    symlinkSync("passwd", join(root, "etc/pw"));
    symlinkSync("loop", join(root, "loop"));
    assert.equal(resolveInRoot(root, "/abs/passwd", false), "/etc/passwd");
    assert.equal(resolveInRoot(root, "/up/passwd", false), "/etc/passwd", "'..' stops at the root");
    assert.equal(resolveInRoot(root, "/etc/pw", false), "/etc/pw");
    assert.equal(resolveInRoot(root, "/abs/pw", true), "/etc/passwd");
    assert.equal(resolveInRoot(root, "/abs", false), "/abs");
    assert.equal(resolveInRoot(root, "/abs/", false), "/etc");
    assert.equal(resolveInRoot(root, "/abs/missing/../x", false), "/etc/x");
    assert.equal(resolveInRoot(root, "/", false), "/");
    assert.throws(() => resolveInRoot(root, "/loop", true), /too many levels of symbolic links/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
