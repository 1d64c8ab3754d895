// Classic BPF as the kernel's seccomp filter accepts it: opcodes, a label-based assembler that
// keeps conditional jumps within their 8-bit reach, and the sock_filter encoding.

export const BPF = {
  LD_W_ABS: 0x20, // A = *(u32 *)(seccomp_data + k)
  ALU_AND_K: 0x54, // A &= k
  JA: 0x05, // pc += k
  JEQ_K: 0x15,
  JGT_K: 0x25,
  JGE_K: 0x35,
  JSET_K: 0x45,
  RET_K: 0x06,
} as const;

/** Maximum program length the kernel accepts (BPF_MAXINSNS). */
export const BPF_MAXINSNS = 4096;

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** A jump target: a label name, or null for "the next instruction". */
export type Target = string | null;

type Item =
  | { kind: "op"; code: number; k: number }
  | { kind: "ja"; target: string }
  | { kind: "jc"; code: number; k: number; jt: Target; jf: Target }
  | { kind: "label"; name: string };

/**
 * Builds a program from forward jumps to labels. Conditional jumps whose target is more than 255
 * instructions away are rewritten as a short conditional hop onto an unconditional `ja` (32-bit
 * offset), so callers never have to think about jump distances.
 */
export class Assembler {
  private items: Item[] = [];
  private seq = 0;

  label(prefix = "L"): string {
    return `${prefix}${this.seq++}`;
  }
  place(name: string): void {
    this.items.push({ kind: "label", name });
  }
  ld(offset: number): void {
    this.items.push({ kind: "op", code: BPF.LD_W_ABS, k: offset });
  }
  and(k: number): void {
    this.items.push({ kind: "op", code: BPF.ALU_AND_K, k: k >>> 0 });
  }
  ret(k: number): void {
    this.items.push({ kind: "op", code: BPF.RET_K, k: k >>> 0 });
  }
  ja(target: string): void {
    this.items.push({ kind: "ja", target });
  }
  jump(code: number, k: number, jt: Target, jf: Target): void {
    this.items.push({ kind: "jc", code, k: k >>> 0, jt, jf });
  }

  assemble(): Insn[] {
    const items = this.items;
    const farT = new Set<number>();
    const farF = new Set<number>();
    const size = (i: number): number => {
      const it = items[i];
      if (it.kind === "label") return 0;
      if (it.kind === "jc") return 1 + (farT.has(i) ? 1 : 0) + (farF.has(i) ? 1 : 0);
      return 1;
    };
    let pos: number[] = [];
    let labels = new Map<string, number>();
    const layout = (): void => {
      pos = [];
      labels = new Map();
      let p = 0;
      for (let i = 0; i < items.length; i++) {
        pos.push(p);
        const it = items[i];
        if (it.kind === "label") {
          if (labels.has(it.name)) throw new Error(`bpf: label ${it.name} placed twice`);
          labels.set(it.name, p);
        }
        p += size(i);
      }
    };
    const where = (t: Target, i: number): number => {
      if (t === null) return pos[i] + size(i);
      const at = labels.get(t);
      if (at === undefined) throw new Error(`bpf: label ${t} never placed`);
      if (at <= pos[i]) throw new Error(`bpf: backward jump to ${t}`);
      return at;
    };
    // Relax: widening one jump can push others out of reach, so repeat until nothing changes.
    for (let changed = true; changed; ) {
      changed = false;
      layout();
      for (let i = 0; i < items.length; i++) {
        const it = items[i];
        if (it.kind !== "jc") continue;
        if (!farT.has(i) && where(it.jt, i) - (pos[i] + 1) > 255) {
          farT.add(i);
          changed = true;
        }
        if (!farF.has(i) && where(it.jf, i) - (pos[i] + 1) > 255) {
          farF.add(i);
          changed = true;
        }
      }
    }
    const out: Insn[] = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      const p = pos[i];
      if (it.kind === "op") out.push({ code: it.code, jt: 0, jf: 0, k: it.k });
      else if (it.kind === "ja") out.push({ code: BPF.JA, jt: 0, jf: 0, k: where(it.target, i) - (p + 1) });
      else if (it.kind === "jc") {
        const t = where(it.jt, i);
        const f = where(it.jf, i);
        const ft = farT.has(i);
        const ff = farF.has(i);
        out.push({
          code: it.code,
          k: it.k,
          jt: ft ? 0 : t - (p + 1),
          jf: ff ? (ft ? 1 : 0) : f - (p + 1),
        });
        if (ft) out.push({ code: BPF.JA, jt: 0, jf: 0, k: t - (p + 2) });
        if (ff) {
          const at = p + 1 + (ft ? 1 : 0);
          out.push({ code: BPF.JA, jt: 0, jf: 0, k: f - (at + 1) });
        }
      }
    }
    return out;
  }
}

/** struct sock_filter[] as the kernel reads it: u16 code, u8 jt, u8 jf, u32 k, little-endian. */
export function encode(insns: Insn[]): Buffer {
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((ins, i) => {
    buf.writeUInt16LE(ins.code, i * 8);
    buf.writeUInt8(ins.jt, i * 8 + 2);
    buf.writeUInt8(ins.jf, i * 8 + 3);
    buf.writeUInt32LE(ins.k >>> 0, i * 8 + 4);
  });
  return buf;
}

export function decode(program: Buffer): Insn[] {
  if (program.length % 8 !== 0) throw new Error(`bpf: program length ${program.length} is not a multiple of 8`);
  const out: Insn[] = [];
  for (let o = 0; o < program.length; o += 8) {
    out.push({
      code: program.readUInt16LE(o),
      jt: program.readUInt8(o + 2),
      jf: program.readUInt8(o + 3),
      k: program.readUInt32LE(o + 4),
    });
  }
  return out;
}

/** One line per instruction, for debugging and test failure messages. */
export function disassemble(program: Buffer): string {
  const names: Record<number, string> = {
    [BPF.JEQ_K]: "jeq",
    [BPF.JGT_K]: "jgt",
    [BPF.JGE_K]: "jge",
    [BPF.JSET_K]: "jset",
  };
  const hex = (n: number): string => `0x${n.toString(16)}`;
  return decode(program)
    .map((ins, pc) => {
      let s: string;
      if (ins.code === BPF.LD_W_ABS) s = `ld [${ins.k}]`;
      else if (ins.code === BPF.ALU_AND_K) s = `and #${hex(ins.k)}`;
      else if (ins.code === BPF.JA) s = `ja ${pc + 1 + ins.k}`;
      else if (ins.code === BPF.RET_K) s = `ret #${hex(ins.k)}`;
      else if (names[ins.code]) s = `${names[ins.code]} #${hex(ins.k)}, ${pc + 1 + ins.jt}, ${pc + 1 + ins.jf}`;
      else s = `??? code=${hex(ins.code)} k=${hex(ins.k)}`;
      return `${String(pc).padStart(4)}: ${s}`;
    })
    .join("\n");
}
