// A small classic-BPF interpreter for seccomp programs, so filters can be checked without loading
// them into the kernel. It accepts what seccomp accepts (aligned 32-bit loads from seccomp_data)
// and refuses anything else, like the kernel's checker would.

import { BPF, BPF_MAXINSNS, decode } from "./bpf.js";
import { SECCOMP_RET } from "./compile.js";

export interface SeccompData {
  nr: number;
  arch: number;
  instructionPointer?: bigint;
  /** Up to six syscall arguments (unsigned 64-bit; numbers are taken as such). */
  args?: (bigint | number)[];
}

/** struct seccomp_data, 64 bytes, little-endian. */
export function seccompData(d: SeccompData): Buffer {
  const buf = Buffer.alloc(64);
  buf.writeInt32LE(d.nr | 0, 0);
  buf.writeUInt32LE(d.arch >>> 0, 4);
  buf.writeBigUInt64LE(d.instructionPointer ?? 0n, 8);
  (d.args ?? []).forEach((a, i) => buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), 16 + 8 * i));
  return buf;
}

/** Runs the filter over one syscall and returns the SECCOMP_RET_* value it produces. */
export function runFilter(program: Buffer, d: SeccompData): number {
  const insns = decode(program);
  if (insns.length === 0 || insns.length > BPF_MAXINSNS) throw new Error(`bpf: bad program length ${insns.length}`);
  const data = seccompData(d);
  let a = 0;
  for (let pc = 0; pc < insns.length; pc++) {
    const { code, jt, jf, k } = insns[pc];
    const jump = (cond: boolean): void => {
      pc += cond ? jt : jf;
    };
    switch (code) {
      case BPF.LD_W_ABS:
        if (k % 4 !== 0 || k + 4 > 64) throw new Error(`bpf: pc ${pc}: bad load offset ${k}`);
        a = data.readUInt32LE(k);
        break;
      case BPF.ALU_AND_K:
        a = (a & k) >>> 0;
        break;
      case BPF.JA:
        pc += k;
        break;
      case BPF.JEQ_K:
        jump(a === k);
        break;
      case BPF.JGT_K:
        jump(a > k);
        break;
      case BPF.JGE_K:
        jump(a >= k);
        break;
      case BPF.JSET_K:
        jump((a & k) !== 0);
        break;
      case BPF.RET_K:
        return k;
      default:
        throw new Error(`bpf: pc ${pc}: unsupported opcode 0x${code.toString(16)}`);
    }
    if (pc + 1 > insns.length) throw new Error(`bpf: jump past the end of the program`);
  }
  throw new Error("bpf: program ran off its end without a return");
}

/** Human form of a SECCOMP_RET_* value, e.g. "ALLOW", "ERRNO(1)", "KILL_THREAD". */
export function describeAction(ret: number): string {
  const action = (ret & 0xffff0000) >>> 0;
  const data = ret & 0xffff;
  switch (action) {
    case SECCOMP_RET.KILL_PROCESS:
      return "KILL_PROCESS";
    case SECCOMP_RET.KILL_THREAD:
      return "KILL_THREAD";
    case SECCOMP_RET.TRAP:
      return "TRAP";
    case SECCOMP_RET.ERRNO:
      return `ERRNO(${data})`;
    case SECCOMP_RET.USER_NOTIF:
      return "NOTIFY";
    case SECCOMP_RET.TRACE:
      return `TRACE(${data})`;
    case SECCOMP_RET.LOG:
      return "LOG";
    case SECCOMP_RET.ALLOW:
      return "ALLOW";
    default:
      return `0x${ret.toString(16)}`;
  }
}
