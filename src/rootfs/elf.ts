// Just enough of an ELF reader to copy a dynamically linked program into a root filesystem: its
// interpreter (PT_INTERP) and the libraries it asks for (DT_NEEDED, DT_RUNPATH, DT_RPATH). Reading the
// file instead of running ldd means nothing from the host is executed and foreign binaries work too.

import { BerthError } from "../errors.js";

export interface ElfDependencies {
  /** PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2; absent for static binaries and most libraries. */
  interpreter?: string;
  /** DT_NEEDED sonames, in file order. */
  needed: string[];
  /** DT_RUNPATH directories (unexpanded: $ORIGIN stays as is). */
  runpath: string[];
  /** DT_RPATH directories, which the loader only honours when there is no DT_RUNPATH. */
  rpath: string[];
  is64: boolean;
  /** e_machine, e.g. 62 for x86-64 (EM_X86_64). */
  machine: number;
}

export const ElfMachine = {
  I386: 3,
  ARM: 40,
  X86_64: 62,
  AARCH64: 183,
  RISCV: 243,
  PPC64: 21,
  S390: 22,
} as const;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_RPATH = 15;
const DT_RUNPATH = 29;

/** Whether buf starts with the ELF magic. */
export function isElf(buf: Buffer): boolean {
  return buf.length >= 4 && buf[0] === 0x7f && buf[1] === 0x45 && buf[2] === 0x4c && buf[3] === 0x46;
}

interface Segment {
  type: number;
  offset: number;
  vaddr: number;
  filesz: number;
}

// Bounds-checked little-endian reads, so a truncated file gives one clear error instead of RangeError.
class Reader {
  constructor(
    private readonly buf: Buffer,
    private readonly is64: boolean,
  ) {}

  private check(offset: number, size: number, what: string): void {
    if (offset < 0 || offset + size > this.buf.length) {
      throw new BerthError(
        `malformed ELF file: ${what} at offset ${offset} lies beyond the end of the file (${this.buf.length} bytes); the file is truncated or not a program`,
      );
    }
  }

  u16(offset: number, what: string): number {
    this.check(offset, 2, what);
    return this.buf.readUInt16LE(offset);
  }

  u32(offset: number, what: string): number {
    this.check(offset, 4, what);
    return this.buf.readUInt32LE(offset);
  }

  /** A word: 8 bytes in ELF64, 4 in ELF32. Values above 2^53 cannot be file offsets of a Buffer. */
  word(offset: number, what: string): number {
    if (!this.is64) return this.u32(offset, what);
    this.check(offset, 8, what);
    const value = this.buf.readBigUInt64LE(offset);
    return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
  }

  /** A NUL-terminated string starting at offset, not reading past limit. */
  cString(offset: number, limit: number, what: string): string {
    this.check(offset, 1, what);
    const end = this.buf.indexOf(0, offset);
    if (end === -1 || end > limit) {
      throw new BerthError(`malformed ELF file: ${what} at offset ${offset} is not NUL-terminated`);
    }
    return this.buf.toString("utf8", offset, end);
  }
}

/** Reads the dynamic-linking facts of an ELF32/ELF64 little-endian file. Throws BerthError on other input. */
export function readElfDependencies(buf: Buffer): ElfDependencies {
  if (!isElf(buf)) throw new BerthError("not an ELF file: the first bytes are not \\x7fELF");
  if (buf.length < 16) throw new BerthError(`malformed ELF file: only ${buf.length} bytes, shorter than the ELF identification`);
  const elfClass = buf[4];
  const dataEncoding = buf[5];
  if (elfClass !== 1 && elfClass !== 2) throw new BerthError(`malformed ELF file: unknown class ${elfClass} (expected 1 or 2)`);
  if (dataEncoding !== 1) throw new BerthError("unsupported ELF file: only little-endian files are read");
  const is64 = elfClass === 2;
  const read = new Reader(buf, is64);

  const machine = read.u16(18, "e_machine");
  const phoff = read.word(is64 ? 32 : 28, "e_phoff");
  const phentsize = read.u16(is64 ? 54 : 42, "e_phentsize");
  const phnum = read.u16(is64 ? 56 : 44, "e_phnum");
  if (phnum === 0xffff) throw new BerthError("unsupported ELF file: more than 65534 program headers (PN_XNUM)");
  if (phnum > 0 && phentsize < (is64 ? 56 : 32)) {
    throw new BerthError(`malformed ELF file: program header entries of ${phentsize} bytes are too small`);
  }

  const segments: Segment[] = [];
  for (let index = 0; index < phnum; index++) {
    const at = phoff + index * phentsize;
    const what = `program header ${index}`;
    segments.push(
      is64
        ? { type: read.u32(at, what), offset: read.word(at + 8, what), vaddr: read.word(at + 16, what), filesz: read.word(at + 32, what) }
        : { type: read.u32(at, what), offset: read.u32(at + 4, what), vaddr: read.u32(at + 8, what), filesz: read.u32(at + 16, what) },
    );
  }

  const result: ElfDependencies = { needed: [], runpath: [], rpath: [], is64, machine };

  const interp = segments.find((segment) => segment.type === PT_INTERP);
  if (interp) {
    result.interpreter = read.cString(interp.offset, interp.offset + interp.filesz, "PT_INTERP");
  }

  const dynamic = segments.find((segment) => segment.type === PT_DYNAMIC);
  if (!dynamic) return result;

  // Dynamic entries hold string offsets relative to DT_STRTAB, which is a virtual address: map it to a
  // file offset through the PT_LOAD segment that contains it.
  const entrySize = is64 ? 16 : 8;
  if (dynamic.offset + Math.min(dynamic.filesz, entrySize) > buf.length) {
    throw new BerthError(
      `malformed ELF file: PT_DYNAMIC at offset ${dynamic.offset} lies beyond the end of the file (${buf.length} bytes); the file is truncated`,
    );
  }
  const tags: { tag: number; value: number }[] = [];
  for (let at = dynamic.offset; at + entrySize <= dynamic.offset + dynamic.filesz; at += entrySize) {
    // d_tag is signed, but every tag we look at is small: values beyond 2^53 (OS-specific) are skipped.
    const tag = read.word(at, "dynamic entry");
    if (tag === DT_NULL) break;
    tags.push({ tag, value: read.word(at + entrySize / 2, "dynamic entry") });
  }

  const strtabAddress = tags.find((entry) => entry.tag === DT_STRTAB)?.value;
  const stringTags = tags.filter((entry) => entry.tag === DT_NEEDED || entry.tag === DT_RUNPATH || entry.tag === DT_RPATH);
  if (stringTags.length === 0) return result;
  if (strtabAddress === undefined) throw new BerthError("malformed ELF file: PT_DYNAMIC has DT_NEEDED entries but no DT_STRTAB");
  const strtabOffset = virtualToFileOffset(segments, strtabAddress);
  if (strtabOffset === undefined) {
    throw new BerthError(`malformed ELF file: DT_STRTAB address 0x${strtabAddress.toString(16)} is in no PT_LOAD segment`);
  }
  const strtabSize = tags.find((entry) => entry.tag === DT_STRSZ)?.value;
  const strtabEnd = strtabSize === undefined ? buf.length : Math.min(buf.length, strtabOffset + strtabSize);

  for (const { tag, value } of stringTags) {
    const text = read.cString(strtabOffset + value, strtabEnd, "dynamic string");
    if (tag === DT_NEEDED) result.needed.push(text);
    else (tag === DT_RUNPATH ? result.runpath : result.rpath).push(...text.split(":").filter((dir) => dir !== ""));
  }
  return result;
}

function virtualToFileOffset(segments: readonly Segment[], address: number): number | undefined {
  const load = segments.find(
    (segment) => segment.type === PT_LOAD && address >= segment.vaddr && address < segment.vaddr + segment.filesz,
  );
  return load === undefined ? undefined : address - load.vaddr + load.offset;
}

/** Debian's multiarch directory name for an ELF machine and class (x86_64-linux-gnu for x86-64). */
export function multiarchTriplet(machine: number, is64: boolean): string | undefined {
  switch (machine) {
    case ElfMachine.X86_64:
      return is64 ? "x86_64-linux-gnu" : "x86_64-linux-gnux32";
    case ElfMachine.I386:
      return "i386-linux-gnu";
    case ElfMachine.AARCH64:
      return "aarch64-linux-gnu";
    case ElfMachine.ARM:
      return "arm-linux-gnueabihf";
    case ElfMachine.RISCV:
      return is64 ? "riscv64-linux-gnu" : undefined;
    case ElfMachine.PPC64:
      return "powerpc64le-linux-gnu";
    case ElfMachine.S390:
      return "s390x-linux-gnu";
    default:
      return undefined;
  }
}
