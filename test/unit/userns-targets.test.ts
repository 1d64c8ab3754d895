import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { prepareBindTargets } from "../../src/runtime/userns-targets.js";

test("prepareBindTargets: missing bind targets are made in the upper layer, existing ones and non-binds left alone", () => {
  const base = mkdtempSync(join(tmpdir(), "berth-targets-"));
  try {
    const lower = join(base, "lower");
    const upper = join(base, "upper");
    const src = join(base, "src");
    mkdirSync(join(lower, "etc"), { recursive: true });
    chmodSync(join(lower, "etc"), 0o750);
    writeFileSync(join(lower, "etc", "passwd"), "");
    mkdirSync(join(lower, "usr"));
    symlinkSync("usr", join(lower, "link"));
    mkdirSync(upper);
    mkdirSync(join(src, "dir"), { recursive: true });
    writeFileSync(join(src, "hosts"), "127.0.0.1 localhost\n");
    const owner = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    const bind = (source: string, destination: string) => ({ type: "bind", source, destination, options: ["rbind", "rw"] });

    const made = prepareBindTargets(lower, upper, [
      bind(join(src, "hosts"), "/etc/hosts"),
      bind(join(src, "hosts"), "/etc/passwd"),            // exists in the lower layer
      bind(join(src, "dir"), "/data/deep"),               // parents missing in the lower layer too
      bind(join(src, "hosts"), "/link/x"),                // through a symlink: left to the helper
      bind(join(src, "missing"), "/nope"),                // no source: the helper reports it
      { type: "tmpfs", source: "tmpfs", destination: "/run" },
    ], owner);

    assert.deepEqual(made, ["/etc/hosts", "/data/deep"]);
    assert.ok(statSync(join(upper, "etc", "hosts")).isFile());
    assert.equal(statSync(join(upper, "etc")).mode & 0o7777, 0o750, "a mirrored dir keeps the lower layer's mode");
    assert.ok(statSync(join(upper, "data", "deep")).isDirectory());
    assert.throws(() => statSync(join(upper, "etc", "passwd")));
    assert.throws(() => statSync(join(upper, "link")));
    assert.throws(() => statSync(join(upper, "nope")));
    assert.throws(() => statSync(join(upper, "run")));
    // A second run (the targets now exist in the upper layer) makes nothing.
    assert.deepEqual(prepareBindTargets(lower, upper, [bind(join(src, "hosts"), "/etc/hosts")], owner), []);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
