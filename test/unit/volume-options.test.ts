// The local volume driver's options as VolumeStore.create checks them (dockerd's mandatory pairs, and
// what Berth can mount), and the mount point test behind the reference count. No root needed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { checkVolumeOptions, isMountPoint } from "../../src/daemon/volumes.js";
import type { EngineError } from "../../src/daemon/util.js";

function refusal(opts: Record<string, string>): { status: number; message: string } | undefined {
  try {
    checkVolumeOptions("v", opts);
    return undefined;
  } catch (err) {
    return { status: (err as EngineError).status, message: (err as Error).message };
  }
}

test("accepted: none, tmpfs with or without o, a bind (or rbind) of an existing directory", () => {
  const dir = mkdtempSync(join(tmpdir(), "berth-volopt-"));
  try {
    const accepted: Record<string, string>[] = [{}, { type: "tmpfs", device: "tmpfs" }, { type: "tmpfs", device: "tmpfs", o: "size=1m,mode=0700,uid=1000,gid=1000" },
      { type: "none", device: dir, o: "bind" }, { type: "none", device: dir, o: "ro,rbind" }];
    for (const opts of accepted) {
      assert.equal(refusal(opts), undefined, JSON.stringify(opts));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("refused with a 400 and a reason", () => {
  const cases: [Record<string, string>, string][] = [
    [{ size: "1m" }, 'create v: invalid option key: "size"'],
    [{ type: "tmpfs" }, 'create v: missing required option: "device"'],
    [{ device: "tmpfs" }, 'create v: missing required option: "type"'],
    [{ o: "size=1m", device: "tmpfs" }, 'create v: missing required option: "type"'],
    [{ type: "nfs", device: ":/x" }, 'create v: volume type "nfs" is not supported by Berth (only type=tmpfs, and type=none with o=bind)'],
    [{ type: "none", device: "/tmp" }, 'create v: type "none" needs o=bind or o=rbind'],
    [{ type: "none", device: "relative/dir", o: "bind" }, 'create v: bind device must be an absolute host path: "relative/dir"'],
    [{ type: "none", device: "/nonexistent/berth", o: "bind" }, "create v: bind device /nonexistent/berth does not exist or is not a directory"],
    [{ type: "none", device: "/etc/hostname", o: "bind" }, "create v: bind device /etc/hostname does not exist or is not a directory"],
  ];
  for (const [opts, message] of cases) {
    assert.deepEqual(refusal(opts), { status: 400, message }, JSON.stringify(opts));
  }
});

test("isMountPoint: / and /proc are, a plain directory and a missing path are not", () => {
  assert.equal(isMountPoint("/"), true);
  assert.equal(isMountPoint("/proc"), true);
  const dir = mkdtempSync(join(tmpdir(), "berth-volopt-"));
  try {
    assert.equal(isMountPoint(dir), false);
    assert.equal(isMountPoint(join(dir, "missing")), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
