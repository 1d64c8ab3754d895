import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ElfMachine, isElf, multiarchTriplet, readElfDependencies } from "../../src/rootfs/elf.js";
import { BerthError } from "../../src/errors.js";

for (const program of ["/bin/ls", "/bin/true"]) {
  test(`readElfDependencies of this machine's ${program}`, () => {
    const deps = readElfDependencies(readFileSync(program));
    assert.ok(deps.needed.includes("libc.so.6"), `needed: ${deps.needed.join(", ")}`);
    if (process.arch === "x64") {
      assert.equal(deps.interpreter, "/lib64/ld-linux-x86-64.so.2");
      assert.equal(deps.machine, ElfMachine.X86_64);
      assert.equal(deps.is64, true);
    } else {
      assert.match(deps.interpreter ?? "", /^\/lib.*\/ld-linux.*\.so\.\d$/);
    }
  });
}

test("readElfDependencies of a library (libm): no interpreter, needs libc", { skip: process.arch !== "x64" }, () => {
  const deps = readElfDependencies(readFileSync("/lib/x86_64-linux-gnu/libm.so.6"));
  assert.equal(deps.interpreter, undefined);
  assert.ok(deps.needed.includes("libc.so.6"), deps.needed.join(", "));
});

interface Segment {
  type: number;
  offset: number;
  vaddr: number;
  size: number;
}

/** An ELF header plus program headers, then `body` at file offset `bodyOffset`. */
function makeElf(is64: boolean, machine: number, segments: Segment[], body: Buffer, bodyOffset: number): Buffer {
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const buf = Buffer.alloc(Math.max(bodyOffset + body.length, ehsize + phentsize * segments.length));
  buf.write("\x7fELF", 0, "latin1");
  buf[4] = is64 ? 2 : 1;
  buf[5] = 1; // little-endian
  buf[6] = 1; // EV_CURRENT
  buf.writeUInt16LE(2, 16); // ET_EXEC
  buf.writeUInt16LE(machine, 18);
  if (is64) {
    buf.writeBigUInt64LE(BigInt(ehsize), 32);
    buf.writeUInt16LE(phentsize, 54);
    buf.writeUInt16LE(segments.length, 56);
  } else {
    buf.writeUInt32LE(ehsize, 28);
    buf.writeUInt16LE(phentsize, 42);
    buf.writeUInt16LE(segments.length, 44);
  }
  segments.forEach((segment, index) => {
    const at = ehsize + index * phentsize;
    buf.writeUInt32LE(segment.type, at);
    if (is64) {
      buf.writeBigUInt64LE(BigInt(segment.offset), at + 8);
      buf.writeBigUInt64LE(BigInt(segment.vaddr), at + 16);
      buf.writeBigUInt64LE(BigInt(segment.size), at + 32);
      buf.writeBigUInt64LE(BigInt(segment.size), at + 40);
    } else {
      buf.writeUInt32LE(segment.offset, at + 4);
      buf.writeUInt32LE(segment.vaddr, at + 8);
      buf.writeUInt32LE(segment.size, at + 16);
      buf.writeUInt32LE(segment.size, at + 20);
    }
  });
  body.copy(buf, bodyOffset);
  return buf;
}

test("a minimal static ELF without PT_DYNAMIC or PT_INTERP", () => {
  const elf = makeElf(true, ElfMachine.X86_64, [{ type: 1, offset: 0, vaddr: 0x400000, size: 0x100 }], Buffer.alloc(0x100 - 120), 120);
  assert.deepEqual(readElfDependencies(elf), { needed: [], runpath: [], rpath: [], is64: true, machine: 62 });
});

/**
 * A dynamic ELF whose string table sits in a PT_LOAD mapped at a different virtual address than its
 * file offset, so reading DT_STRTAB as a file offset would give garbage.
 */
function makeDynamicElf(is64: boolean, tags: [number, string | number][], interpreter?: string): Buffer {
  const strings = ["", ...tags.filter(([, value]) => typeof value === "string").map(([, value]) => value as string)];
  const strtab = Buffer.from(strings.join("\0") + "\0", "latin1");
  const stringOffset = (text: string) => strtab.indexOf(Buffer.from(text + "\0", "latin1"), text === "" ? 0 : 1);
  const bodyOffset = 0x200;
  const loadVaddr = 0x10000;
  const strtabFileOffset = bodyOffset;
  const entrySize = is64 ? 16 : 8;
  const dynamicFileOffset = bodyOffset + 0x100;
  const interpFileOffset = bodyOffset + 0x300;
  const body = Buffer.alloc(0x400);
  strtab.copy(body, strtabFileOffset - bodyOffset);
  const entries: [number, number][] = [
    ...tags.map(([tag, value]): [number, number] => [tag, typeof value === "string" ? stringOffset(value) : value]),
    [5, loadVaddr + (strtabFileOffset - bodyOffset)], // DT_STRTAB as a virtual address
    [10, strtab.length], // DT_STRSZ
    [0, 0],
  ];
  entries.forEach(([tag, value], index) => {
    const at = dynamicFileOffset - bodyOffset + index * entrySize;
    if (is64) {
      body.writeBigInt64LE(BigInt(tag), at);
      body.writeBigUInt64LE(BigInt(value), at + 8);
    } else {
      body.writeInt32LE(tag, at);
      body.writeUInt32LE(value, at + 4);
    }
  });
  const segments: Segment[] = [
    { type: 1, offset: bodyOffset, vaddr: loadVaddr, size: body.length },
    { type: 2, offset: dynamicFileOffset, vaddr: loadVaddr + 0x100, size: entries.length * entrySize },
  ];
  if (interpreter !== undefined) {
    body.write(interpreter + "\0", interpFileOffset - bodyOffset, "latin1");
    segments.unshift({ type: 3, offset: interpFileOffset, vaddr: loadVaddr + 0x300, size: interpreter.length + 1 });
  }
  return makeElf(is64, is64 ? ElfMachine.X86_64 : ElfMachine.I386, segments, body, bodyOffset);
}

test("DT_NEEDED, DT_RUNPATH and DT_RPATH are resolved through the virtual address mapping (ELF64)", () => {
  const elf = makeDynamicElf(
    true,
    [
      [1, "libfoo.so.1"],
      [0x6ffffffb, 1], // DT_FLAGS_1: ignored
      [29, "$ORIGIN/../lib:/opt/lib"],
      [1, "libbar.so.2"],
      [15, "/old/rpath"],
    ],
    "/lib64/ld-linux-x86-64.so.2",
  );
  assert.deepEqual(readElfDependencies(elf), {
    interpreter: "/lib64/ld-linux-x86-64.so.2",
    needed: ["libfoo.so.1", "libbar.so.2"],
    runpath: ["$ORIGIN/../lib", "/opt/lib"],
    rpath: ["/old/rpath"],
    is64: true,
    machine: 62,
  });
});

test("ELF32 dynamic section", () => {
  const elf = makeDynamicElf(false, [[1, "libc.so.6"]], "/lib/ld-linux.so.2");
  assert.deepEqual(readElfDependencies(elf), {
    interpreter: "/lib/ld-linux.so.2",
    needed: ["libc.so.6"],
    runpath: [],
    rpath: [],
    is64: false,
    machine: ElfMachine.I386,
  });
});

test("truncated and foreign input give clear errors", () => {
  const ls = readFileSync("/bin/ls");
  for (const length of [10, 40, 100, 2000]) {
    assert.throws(
      () => readElfDependencies(ls.subarray(0, length)),
      (err: unknown) => err instanceof BerthError && /malformed ELF file: .*(truncated|shorter|beyond)/.test(err.message),
      `length ${length}`,
    );
  }
  assert.throws(() => readElfDependencies(Buffer.from("#!/bin/sh\necho hi\n")), /not an ELF file/);
  assert.throws(() => readElfDependencies(Buffer.alloc(0)), /not an ELF file/);
  const bigEndian = Buffer.from(ls.subarray(0, 64));
  bigEndian[5] = 2;
  assert.throws(() => readElfDependencies(bigEndian), /only little-endian/);
});

test("isElf and multiarchTriplet", () => {
  assert.equal(isElf(readFileSync("/bin/true")), true);
  assert.equal(isElf(Buffer.from("\x7fEL")), false);
  assert.equal(multiarchTriplet(ElfMachine.X86_64, true), "x86_64-linux-gnu");
  assert.equal(multiarchTriplet(ElfMachine.AARCH64, true), "aarch64-linux-gnu");
  assert.equal(multiarchTriplet(ElfMachine.I386, false), "i386-linux-gnu");
  assert.equal(multiarchTriplet(9999, true), undefined);
});
