import { test } from "node:test";
import assert from "node:assert/strict";
import { hostImageFiles, isStampCurrent, librarySearchDirs } from "../../src/rootfs/host-image.js";
import { ElfMachine } from "../../src/rootfs/elf.js";

const x64 = { needed: [], runpath: [], rpath: [], is64: true, machine: ElfMachine.X86_64 };
const defaults = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"];

test("librarySearchDirs: RPATH only without RUNPATH, $ORIGIN expanded, then the default dirs", () => {
  assert.deepEqual(librarySearchDirs(x64, "/usr/bin/ls"), defaults);
  assert.deepEqual(librarySearchDirs({ ...x64, rpath: ["$ORIGIN/../lib"] }, "/opt/app/bin/app", ["/exe/rpath"]), [
    "/opt/app/bin/../lib", // as the loader sees it: ".." is resolved by the kernel, after symlinks
    "/exe/rpath",
    ...defaults,
  ]);
  assert.deepEqual(librarySearchDirs({ ...x64, rpath: ["/ignored"], runpath: ["${ORIGIN}/lib"] }, "/opt/x/y.so", ["/exe/rpath"]), [
    "/opt/x/lib",
    ...defaults,
  ]);
  assert.deepEqual(librarySearchDirs({ ...x64, is64: false, machine: ElfMachine.I386 }, "/usr/bin/x"), [
    "/lib/i386-linux-gnu",
    "/usr/lib/i386-linux-gnu",
    "/lib32",
    "/usr/lib32",
    "/lib",
    "/usr/lib",
  ]);
});

test("hostImageFiles takes the first directory that has each command, and skips missing ones", () => {
  const present = new Set(["/bin/sh", "/usr/bin/ls", "/bin/ls", "/sbin/ip"]);
  assert.deepEqual(hostImageFiles(["/usr/bin", "/bin", "/usr/sbin", "/sbin"], (file) => present.has(file)), [
    "/bin/sh",
    "/usr/bin/ls",
    "/sbin/ip",
  ]);
});

test("isStampCurrent compares version, command list, mtimes and sizes", () => {
  const stamp = { version: 1, commands: ["/usr/bin/ls"], files: [{ path: "/usr/bin/ls", mtimeMs: 5, size: 10 }] };
  const stat = (mtimeMs: number, size: number) => () => ({ mtimeMs, size });
  assert.equal(isStampCurrent(stamp, ["/usr/bin/ls"], stat(5, 10)), true);
  assert.equal(isStampCurrent(stamp, ["/usr/bin/ls"], stat(6, 10)), false);
  assert.equal(isStampCurrent(stamp, ["/usr/bin/ls"], stat(5, 11)), false);
  assert.equal(isStampCurrent(stamp, ["/usr/bin/ls"], () => undefined), false);
  assert.equal(isStampCurrent(stamp, ["/usr/bin/ls", "/usr/bin/ip"], stat(5, 10)), false);
  assert.equal(isStampCurrent({ ...stamp, version: 0 }, ["/usr/bin/ls"], stat(5, 10)), false);
  assert.equal(isStampCurrent("garbage", ["/usr/bin/ls"], stat(5, 10)), false);
});
