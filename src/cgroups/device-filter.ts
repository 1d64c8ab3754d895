// cgroup v2 has no devices controller: OCI device rules become an eBPF program of type
// BPF_PROG_TYPE_CGROUP_DEVICE that the helper loads and attaches to the container's cgroup
// (op "cgroupDeviceFilter"). Pure: rules in, instruction bytes out.
//
// The program follows runc's libcontainer devicefilter (after crun's ebpf.c): load the request into
// registers, then one block per rule, emitted from the LAST rule to the first, each returning its verdict
// when the request matches; the first block that matches is thus the last matching rule, which is how
// the v1 devices controller and Berth's v1 writes (deny all, then the rules in order) resolve them.
// Nothing matching -> deny. A rule that matches everything ("a *:* rwm") ends the program: rules before
// it can never be reached. Access: an allow rule matches when it grants every requested bit (runc's
// newer test; its first version took any overlap, so an "r" rule let O_RDWR through); a deny rule
// matches when it names any requested bit, so "deny w" also stops O_RDWR. A request is thus never
// allowed unless, bit by bit, the last rule naming that bit allows it.

import { BerthError } from "../errors.js";
import type { DeviceCgroupRule } from "../oci/spec.js";

/** struct bpf_cgroup_dev_ctx: u32 access_type (type | access << 16), u32 major, u32 minor. */
export const BPF_DEVCG_DEV_BLOCK = 1;
export const BPF_DEVCG_DEV_CHAR = 2;
export const BPF_DEVCG_ACC_MKNOD = 1;
export const BPF_DEVCG_ACC_READ = 2;
export const BPF_DEVCG_ACC_WRITE = 4;

/** The license the program is loaded with (as runc and crun). */
export const DEVICE_FILTER_LICENSE = "Apache";

/** eBPF opcodes used here (class | op | source), named as cilium/ebpf's disassembly names them. */
export const EbpfOp = {
  LdXMemW: 0x61, // BPF_LDX | BPF_MEM | BPF_W
  AndImm32: 0x54, // BPF_ALU | BPF_AND | BPF_K
  RShImm32: 0x74, // BPF_ALU | BPF_RSH | BPF_K
  MovImm32: 0xb4, // BPF_ALU | BPF_MOV | BPF_K
  MovReg32: 0xbc, // BPF_ALU | BPF_MOV | BPF_X
  JNEImm: 0x55, // BPF_JMP | BPF_JNE | BPF_K
  JNEReg: 0x5d, // BPF_JMP | BPF_JNE | BPF_X
  JEqImm: 0x15, // BPF_JMP | BPF_JEQ | BPF_K
  Exit: 0x95, // BPF_JMP | BPF_EXIT
} as const;

export interface EbpfInsn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

const R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5;

const insn = (code: number, dst: number, src: number, off: number, imm: number): EbpfInsn => ({ code, dst, src, off, imm });

/** A rule with its fields checked and OCI defaults filled in. */
interface CleanRule {
  allow: boolean;
  /** undefined = any type ("a"). */
  type?: number;
  major?: number;
  minor?: number;
  access: number;
}

const ALL_ACCESS = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE;

function cleanRule(rule: DeviceCgroupRule, index: number): CleanRule {
  const where = `linux.resources.devices[${index}]`;
  const type = rule.type ?? "a";
  if (type !== "a" && type !== "b" && type !== "c") throw new BerthError(`cgroup: invalid ${where}.type "${String(type)}": expected a, b or c`);
  const access = rule.access || "rwm";
  let bits = 0;
  for (const ch of access) {
    const bit = ch === "r" ? BPF_DEVCG_ACC_READ : ch === "w" ? BPF_DEVCG_ACC_WRITE : ch === "m" ? BPF_DEVCG_ACC_MKNOD : 0;
    if (bit === 0 || bits & bit) throw new BerthError(`cgroup: invalid ${where}.access "${access}": expected letters from rwm, each at most once`);
    bits |= bit;
  }
  // JNE compares the zero-extended u32 against a sign-extended imm32: numbers above 2^31-1 never match.
  const num = (n: number | null | undefined, what: string): number | undefined => {
    if (n === undefined || n === null || n === -1) return undefined;
    if (!Number.isInteger(n) || n < 0 || n > 0x7fffffff) throw new BerthError(`cgroup: invalid ${where}.${what}=${n}: must be -1 (any) or an integer 0..2147483647`);
    return n;
  };
  return {
    allow: rule.allow === true,
    type: type === "a" ? undefined : type === "b" ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR,
    major: num(rule.major, "major"),
    minor: num(rule.minor, "minor"),
    access: bits,
  };
}

/**
 * The instructions for `rules` (OCI order: later rules win). Jumps are resolved: "goto next block" is an
 * offset from the instruction after the jump.
 */
export function deviceFilterInstructions(rules: DeviceCgroupRule[]): EbpfInsn[] {
  const clean = rules.map(cleanRule);
  const out: EbpfInsn[] = [
    insn(EbpfOp.LdXMemW, R2, R1, 0, 0), // r2 = access_type
    insn(EbpfOp.AndImm32, R2, 0, 0, 0xffff), // r2 = device type
    insn(EbpfOp.LdXMemW, R3, R1, 0, 0),
    insn(EbpfOp.RShImm32, R3, 0, 0, 16), // r3 = requested access bits
    insn(EbpfOp.LdXMemW, R4, R1, 4, 0), // r4 = major
    insn(EbpfOp.LdXMemW, R5, R1, 8, 0), // r5 = minor
  ];
  let matchesAll = false;
  for (const rule of [...clean].reverse()) {
    const block: EbpfInsn[] = [];
    // Jump targets are patched once the block's length is known (they skip to the block's end).
    if (rule.type !== undefined) block.push(insn(EbpfOp.JNEImm, R2, 0, -1, rule.type));
    if (rule.access !== ALL_ACCESS) {
      block.push(insn(EbpfOp.MovReg32, R1, R3, 0, 0), insn(EbpfOp.AndImm32, R1, 0, 0, rule.access)); // r1 = r3 & access
      // allow: skip unless every requested bit is granted; deny: skip when no requested bit is named.
      block.push(rule.allow ? insn(EbpfOp.JNEReg, R1, R3, -1, 0) : insn(EbpfOp.JEqImm, R1, 0, -1, 0));
    }
    if (rule.major !== undefined) block.push(insn(EbpfOp.JNEImm, R4, 0, -1, rule.major));
    if (rule.minor !== undefined) block.push(insn(EbpfOp.JNEImm, R5, 0, -1, rule.minor));
    matchesAll = block.length === 0;
    block.push(insn(EbpfOp.MovImm32, R0, 0, 0, rule.allow ? 1 : 0), insn(EbpfOp.Exit, 0, 0, 0, 0));
    block.forEach((ins, i) => {
      if (ins.off === -1) ins.off = block.length - (i + 1);
    });
    out.push(...block);
    if (matchesAll) break;
  }
  if (!matchesAll) out.push(insn(EbpfOp.MovImm32, R0, 0, 0, 0), insn(EbpfOp.Exit, 0, 0, 0, 0));
  return out;
}

/** struct bpf_insn, 8 bytes each: u8 code, u8 dst:4 | src:4 << 4, s16 off, s32 imm (little-endian). */
export function encodeEbpf(insns: EbpfInsn[]): Uint8Array {
  const out = Buffer.alloc(insns.length * 8);
  insns.forEach((ins, i) => {
    out.writeUInt8(ins.code, i * 8);
    out.writeUInt8((ins.dst & 0xf) | ((ins.src & 0xf) << 4), i * 8 + 1);
    out.writeInt16LE(ins.off, i * 8 + 2);
    out.writeInt32LE(ins.imm | 0, i * 8 + 4);
  });
  return new Uint8Array(out);
}

/** The program bytes for the helper's cgroupDeviceFilter op. */
export function compileDeviceFilter(rules: DeviceCgroupRule[]): Uint8Array {
  return encodeEbpf(deviceFilterInstructions(rules));
}
