// berth save --format oci writes an oci-archive that skopeo reads and berth loads back, digests intact.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { BERTH_BIN } from "../helpers/berth.js";

const have = (bin: string) => spawnSync("sh", ["-c", `command -v ${bin}`]).status === 0;
const skip = process.getuid?.() !== 0 ? "needs root" : !have("skopeo") ? "needs skopeo" : false;

describe("berth save --format oci", { skip }, () => {
  const work = mkdtempSync(join(tmpdir(), "berth-oci-save-"));
  after(() => rmSync(work, { recursive: true, force: true }));
  const berth = (dataRoot: string, ...args: string[]) => {
    const r = spawnSync(process.execPath, ["--", BERTH_BIN, ...args], { encoding: "utf8", env: { ...process.env, BERTH_DATA_ROOT: dataRoot, BERTH_NO_DAEMON: "1" } });
    assert.equal(r.status, 0, `berth ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };

  test("skopeo reads it and a fresh store loads it with the same image ID", () => {
    const rootfs = join(work, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    copyFileSync("/bin/busybox", join(rootfs, "bin/busybox"));
    symlinkSync("busybox", join(rootfs, "bin/sh"));
    const tarball = join(work, "rootfs.tar");
    assert.equal(spawnSync("tar", ["-C", rootfs, "-cf", tarball, "."]).status, 0);
    const one = join(work, "one");
    berth(one, "import", tarball, "ocisave:1");
    const id = berth(one, "images", "-q", "--no-trunc", "ocisave:1").trim();
    const archive = join(work, "img.tar");
    berth(one, "save", "--format", "oci", "-o", archive, "ocisave:1");
    const inspect = spawnSync("skopeo", ["inspect", `oci-archive:${archive}`], { encoding: "utf8" });
    assert.equal(inspect.status, 0, inspect.stderr);
    assert.equal((JSON.parse(inspect.stdout) as { Layers: string[] }).Layers.length, 1);
    const two = join(work, "two");
    assert.match(berth(two, "load", "-i", archive), /Loaded image: ocisave:1/);
    assert.equal(berth(two, "images", "-q", "--no-trunc", "ocisave:1").trim(), id);
  });
});
