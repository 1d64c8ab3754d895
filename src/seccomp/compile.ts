// OCI seccomp profile -> classic BPF program, with libseccomp's semantics (arch check, x32 split,
// 64-bit argument comparisons as two 32-bit halves) and runc's -ENOSYS handling of new syscalls.

import { BerthError } from "../errors.js";
import type { Seccomp, SeccompArg } from "../oci/spec.js";
import { Assembler, BPF, BPF_MAXINSNS, encode } from "./bpf.js";
import { SYSCALLS_AARCH64, SYSCALLS_X32, SYSCALLS_X86, SYSCALLS_X86_64 } from "./syscalls.js";

// SECCOMP_RET_* (linux/seccomp.h)
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

export const SECCOMP_FILTER_FLAGS: Readonly<Record<string, number>> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1 << 0,
  SECCOMP_FILTER_FLAG_LOG: 1 << 1,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 1 << 2,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 1 << 5,
};

export const EPERM = 1;
export const ENOSYS = 38;

// AUDIT_ARCH_* (linux/audit.h): EM_* | __AUDIT_ARCH_64BIT (0x80000000) | __AUDIT_ARCH_LE (0x40000000)
export const AUDIT_ARCH = {
  X86_64: 0xc000003e,
  I386: 0x40000003,
  AARCH64: 0xc00000b7,
} as const;

export const X32_SYSCALL_BIT = 0x40000000;

// seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];
const OFF_NR = 0;
const OFF_ARCH = 4;
const argLo = (i: number): number => 16 + 8 * i; // every arch we support is little-endian
const argHi = (i: number): number => 20 + 8 * i;

interface ArchDef {
  audit: number;
  table: Readonly<Record<string, number>>;
  /** libseccomp compares only the low 32 bits of arguments on 32-bit ABIs. */
  wide: boolean;
}

const ARCHES: Readonly<Record<string, ArchDef>> = {
  SCMP_ARCH_X86_64: { audit: AUDIT_ARCH.X86_64, table: SYSCALLS_X86_64, wide: true },
  SCMP_ARCH_X32: { audit: AUDIT_ARCH.X86_64, table: SYSCALLS_X32, wide: false },
  SCMP_ARCH_X86: { audit: AUDIT_ARCH.I386, table: SYSCALLS_X86, wide: false },
  SCMP_ARCH_AARCH64: { audit: AUDIT_ARCH.AARCH64, table: SYSCALLS_AARCH64, wide: true },
};

// Valid OCI names we have no syscall table for: accepted and left out of the filter, so those
// ABIs get the bad-arch action (as they would on a libseccomp that lacks them).
const OTHER_ARCHES = new Set([
  "SCMP_ARCH_ARM", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
  "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE",
  "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
  "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
]);

const HOST_ARCH: Readonly<Record<string, string>> = {
  x86_64: "SCMP_ARCH_X86_64",
  amd64: "SCMP_ARCH_X86_64",
  x64: "SCMP_ARCH_X86_64",
  aarch64: "SCMP_ARCH_AARCH64",
  arm64: "SCMP_ARCH_AARCH64",
};

/** The SCMP_ARCH_* name of a host architecture ("x86_64", "aarch64", or node's "x64"/"arm64"). */
export function scmpArchOf(hostArch: string): string {
  const a = HOST_ARCH[hostArch];
  if (!a) throw new BerthError(`seccomp: unsupported host architecture "${hostArch}"`);
  return a;
}

/** Syscall number of `name` on an SCMP_ARCH_* ABI, or undefined if that ABI lacks it. */
export function syscallNumber(name: string, scmpArch: string): number | undefined {
  const def = ARCHES[scmpArch];
  if (!def || !Object.prototype.hasOwnProperty.call(def.table, name)) return undefined;
  return def.table[name];
}

/** SCMP_ACT_* name (+ errnoRet) -> SECCOMP_RET_* value, with runc's EPERM default for errno. */
function actionValue(action: unknown, errnoRet: unknown, path: string, errnoPath: string): number {
  let ret = EPERM;
  if (errnoRet !== undefined && errnoRet !== null) {
    if (typeof errnoRet !== "number" || !Number.isInteger(errnoRet) || errnoRet < 0 || errnoRet > 0xffff) {
      throw new BerthError(`${errnoPath}: must be an integer from 0 to 65535, got ${JSON.stringify(errnoRet)}`);
    }
    ret = errnoRet;
  }
  switch (action) {
    case "SCMP_ACT_KILL":
    case "SCMP_ACT_KILL_THREAD":
      return SECCOMP_RET.KILL_THREAD;
    case "SCMP_ACT_KILL_PROCESS":
      return SECCOMP_RET.KILL_PROCESS;
    case "SCMP_ACT_TRAP":
      return SECCOMP_RET.TRAP;
    case "SCMP_ACT_ERRNO":
      return (SECCOMP_RET.ERRNO | ret) >>> 0;
    case "SCMP_ACT_TRACE":
      return (SECCOMP_RET.TRACE | ret) >>> 0;
    case "SCMP_ACT_ALLOW":
      return SECCOMP_RET.ALLOW;
    case "SCMP_ACT_LOG":
      return SECCOMP_RET.LOG;
    case "SCMP_ACT_NOTIFY":
      throw new BerthError(`${path}: SCMP_ACT_NOTIFY is not supported (seccomp listenerPath is not implemented)`);
    default:
      throw new BerthError(`${path}: unknown action ${JSON.stringify(action)}`);
  }
}

type Op = SeccompArg["op"];
const OPS = new Set<string>([
  "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
]);

interface Cond {
  index: number;
  op: Op;
  value: bigint;
  valueTwo: bigint;
}

interface Rule {
  action: number;
  conds: Cond[];
}

function u64(v: unknown, path: string): bigint {
  if (typeof v === "bigint" && v >= 0n && v < 1n << 64n) return v;
  if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v < 2 ** 64) return BigInt(v);
  throw new BerthError(`${path}: must be an unsigned 64-bit integer, got ${JSON.stringify(String(v))}`);
}

function parseArg(a: SeccompArg, path: string): Cond {
  if (typeof a !== "object" || a === null) throw new BerthError(`${path}: must be an object`);
  if (!Number.isInteger(a.index) || a.index < 0 || a.index > 5) {
    throw new BerthError(`${path}.index: must be 0 to 5, got ${JSON.stringify(a.index)}`);
  }
  if (!OPS.has(a.op)) throw new BerthError(`${path}.op: unknown operator ${JSON.stringify(a.op)}`);
  const value = u64(a.value, `${path}.value`);
  const valueTwo = a.valueTwo === undefined || a.valueTwo === null ? 0n : u64(a.valueTwo, `${path}.valueTwo`);
  return { index: a.index, op: a.op, value, valueTwo };
}

export interface CompileOptions {
  /** Host architecture: "x86_64" or "aarch64" (node's "x64"/"arm64" accepted). */
  arch: string;
}

export interface CompiledSeccomp {
  /** struct sock_filter[]: 8 bytes per instruction, little-endian. */
  program: Buffer;
  /** SECCOMP_FILTER_FLAG_* bits for seccomp(SECCOMP_SET_MODE_FILTER, flags, ...). */
  flags: number;
}

/** Filter flags named in the profile -> the bits seccomp(2) takes. */
export function filterFlags(names: readonly string[] | undefined): number {
  let flags = 0;
  (names ?? []).forEach((f, i) => {
    const bit = SECCOMP_FILTER_FLAGS[f];
    if (bit === undefined) throw new BerthError(`linux.seccomp.flags[${i}]: unknown flag ${JSON.stringify(f)}`);
    flags |= bit;
  });
  return flags >>> 0;
}

const P = "linux.seccomp";

const compiled = new Map<string, CompiledSeccomp>();

/**
 * compileSeccomp, remembered by the profile's JSON: an engine compiles the same profile (docker's
 * default) for every container, ~2 ms each time. The result is shared: callers must not change it.
 * Profiles with bigint values (JSON has none) are compiled every time.
 */
export function compileSeccompCached(profile: Seccomp, opts: CompileOptions): CompiledSeccomp {
  let exact = true;
  const key = `${opts.arch}\0${JSON.stringify(profile, (_k, v: unknown) => { if (typeof v === "bigint") exact = false; return typeof v === "bigint" ? null : v; })}`;
  if (!exact) return compileSeccomp(profile, opts);
  const hit = compiled.get(key);
  if (hit) return hit;
  const result = compileSeccomp(profile, opts);
  if (compiled.size >= 32) compiled.delete(compiled.keys().next().value as string);
  compiled.set(key, result);
  return result;
}

export function compileSeccomp(profile: Seccomp, opts: CompileOptions): CompiledSeccomp {
  if (typeof profile !== "object" || profile === null) throw new BerthError(`${P}: must be an object`);
  const native = scmpArchOf(opts.arch);
  const flags = filterFlags(profile.flags);
  const defAction = actionValue(profile.defaultAction, profile.defaultErrnoRet, `${P}.defaultAction`, `${P}.defaultErrnoRet`);
  // libseccomp's filter attribute default for calls from an ABI the filter does not list.
  const badArch = SECCOMP_RET.KILL_THREAD;

  // The native ABI is always in a libseccomp filter; the listed ones are added to it.
  const arches: string[] = [native];
  (profile.architectures ?? []).forEach((a, i) => {
    if (ARCHES[a]) {
      if (!arches.includes(a)) arches.push(a);
    } else if (!OTHER_ARCHES.has(a)) {
      throw new BerthError(`${P}.architectures[${i}]: unknown architecture ${JSON.stringify(a)}`);
    }
  });

  // Validate every rule, then resolve names per ABI (a name unknown on an ABI is skipped there).
  const perArch = new Map<string, Map<number, Rule[]>>(arches.map((a) => [a, new Map()]));
  const maxNr = new Map<string, number>();
  const named = new Map<string, Set<number>>(arches.map((a) => [a, new Set()]));
  const list = profile.syscalls ?? [];
  if (!Array.isArray(list)) throw new BerthError(`${P}.syscalls: must be a list`);
  list.forEach((sc, i) => {
    const path = `${P}.syscalls[${i}]`;
    if (typeof sc !== "object" || sc === null) throw new BerthError(`${path}: must be an object`);
    if (!Array.isArray(sc.names) || sc.names.some((n) => typeof n !== "string")) {
      throw new BerthError(`${path}.names: must be a list of syscall names`);
    }
    const action = actionValue(sc.action, sc.errnoRet, `${path}.action`, `${path}.errnoRet`);
    const args = sc.args ?? [];
    if (!Array.isArray(args)) throw new BerthError(`${path}.args: must be a list`);
    const conds = args.map((a, j) => parseArg(a, `${path}.args[${j}]`));
    for (const arch of arches) {
      for (const name of sc.names) {
        const nr = syscallNumber(name, arch);
        if (nr === undefined) continue;
        named.get(arch)!.add(nr);
        maxNr.set(arch, Math.max(maxNr.get(arch) ?? -1, nr));
        // runc drops rules that repeat the default action (libseccomp refuses them).
        if (action === defAction) continue;
        const rules = perArch.get(arch)!;
        if (!rules.has(nr)) rules.set(nr, []);
        rules.get(nr)!.push({ action, conds });
      }
    }
  });

  // runc's -ENOSYS stub: unless the default already allows (or already says ENOSYS), syscalls
  // newer than anything the profile names get ENOSYS, so libc can fall back to older calls.
  const allowish = defAction === SECCOMP_RET.ALLOW || defAction === SECCOMP_RET.LOG ||
    (defAction & 0xffff0000) >>> 0 === SECCOMP_RET.TRACE; // runc: a tracer handles new syscalls itself
  const enosysRet = (SECCOMP_RET.ERRNO | ENOSYS) >>> 0;
  const stub = !allowish && defAction !== enosysRet;
  if (stub) {
    // clone3 sits below many syscalls profiles name, so the stub alone would not catch it.
    for (const arch of arches) {
      const nr = syscallNumber("clone3", arch);
      if (nr !== undefined && !named.get(arch)!.has(nr)) perArch.get(arch)!.set(nr, [{ action: enosysRet, conds: [] }]);
    }
  }

  const asm = new Assembler();
  const part = (arch: string): void => {
    const def = ARCHES[arch];
    const max = maxNr.get(arch);
    if (stub && max !== undefined) {
      const tree = asm.label("tree");
      asm.jump(BPF.JGT_K, max, null, tree);
      asm.ret(enosysRet);
      asm.place(tree);
    }
    const entries = [...perArch.get(arch)!.entries()].sort((a, b) => a[0] - b[0]);
    emitTree(asm, entries, def.wide, defAction, arch === "SCMP_ARCH_X32" ? X32_SYSCALL_BIT : 0);
  };

  // Group ABIs by the AUDIT_ARCH value the kernel reports (x86_64 and x32 share one).
  const groups = new Map<number, string[]>();
  for (const a of arches) {
    const audit = ARCHES[a].audit;
    if (!groups.has(audit)) groups.set(audit, []);
    groups.get(audit)!.push(a);
  }
  const sections = [...groups.entries()].map(([audit, abis]) => ({ audit, abis, label: asm.label("arch") }));

  asm.ld(OFF_ARCH);
  for (const s of sections) asm.jump(BPF.JEQ_K, s.audit, s.label, null);
  asm.ret(badArch);
  for (const s of sections) {
    asm.place(s.label);
    asm.ld(OFF_NR);
    if (s.audit === AUDIT_ARCH.X86_64) {
      const has64 = s.abis.includes("SCMP_ARCH_X86_64");
      const has32 = s.abis.includes("SCMP_ARCH_X32");
      const x32 = asm.label("x32");
      asm.jump(BPF.JGE_K, X32_SYSCALL_BIT, x32, null);
      if (has64) part("SCMP_ARCH_X86_64");
      else asm.ret(badArch);
      asm.place(x32);
      // Like libseccomp: an x32 call on a filter without SCMP_ARCH_X32 is a bad-arch call.
      if (has32) part("SCMP_ARCH_X32");
      else asm.ret(badArch);
    } else {
      part(s.abis[0]);
    }
  }

  const insns = asm.assemble();
  if (insns.length > BPF_MAXINSNS) {
    throw new BerthError(`${P}: profile compiles to ${insns.length} BPF instructions, more than the kernel's ${BPF_MAXINSNS}`);
  }
  return { program: encode(insns), flags };
}

interface Interval {
  start: number;
  /** Handlers with equal keys behave the same, so neighbouring intervals with one key merge. */
  key: string;
  rules: Rule[];
}

/**
 * Splits the syscall-number line into intervals (runs of neighbouring numbers with the same
 * plain action, and the gaps between them, which get the default action) and emits a binary
 * search over the interval starts: about log2(intervals) compares per syscall.
 */
function emitTree(asm: Assembler, entries: [number, Rule[]][], wide: boolean, defAction: number, from: number): void {
  const out: Interval[] = [];
  const push = (start: number, key: string, rules: Rule[]): void => {
    if (out.length > 0 && out[out.length - 1].key === key) return;
    out.push({ start, key, rules });
  };
  let next = from;
  for (const [nr, rules] of entries) {
    if (nr > next) push(next, `ret:${defAction}`, []);
    const plain = rules[0].conds.length === 0;
    push(nr, plain ? `ret:${rules[0].action}` : `rules:${nr}`, rules);
    next = nr + 1;
  }
  if (next <= 0xffffffff) push(next, `ret:${defAction}`, []);
  emitIntervals(asm, out, wide, defAction);
}

function emitIntervals(asm: Assembler, iv: Interval[], wide: boolean, defAction: number): void {
  if (iv.length === 1) {
    if (iv[0].key.startsWith("ret:")) asm.ret(Number(iv[0].key.slice(4)));
    else emitRules(asm, iv[0].rules, wide, defAction);
    return;
  }
  const mid = iv.length >> 1;
  const right = asm.label("ge");
  asm.jump(BPF.JGE_K, iv[mid].start, right, null);
  emitIntervals(asm, iv.slice(0, mid), wide, defAction);
  asm.place(right);
  emitIntervals(asm, iv.slice(mid), wide, defAction);
}

/** Rules for one syscall, first match wins (profile order); A holds nr on entry. */
function emitRules(asm: Assembler, rules: Rule[], wide: boolean, defAction: number): void {
  for (const rule of rules) {
    if (rule.conds.length === 0) {
      asm.ret(rule.action);
      return; // later rules for this syscall can never be reached
    }
    const fail = asm.label("fail");
    for (const c of rule.conds) emitCond(asm, c, wide, fail);
    asm.ret(rule.action);
    asm.place(fail);
  }
  asm.ret(defAction);
}

/** Falls through when the condition holds, jumps to `fail` otherwise. High word first, as libseccomp. */
function emitCond(asm: Assembler, c: Cond, wide: boolean, fail: string): void {
  const lo = (v: bigint): number => Number(v & 0xffffffffn);
  const hi = (v: bigint): number => Number((v >> 32n) & 0xffffffffn);
  const pass = asm.label("pass");
  const { JEQ_K: EQ, JGT_K: GT, JGE_K: GE } = BPF;
  const v = c.value;
  if (c.op === "SCMP_CMP_MASKED_EQ") {
    if (wide) {
      asm.ld(argHi(c.index));
      asm.and(hi(v));
      asm.jump(EQ, hi(c.valueTwo), null, fail);
    }
    asm.ld(argLo(c.index));
    asm.and(lo(v));
    asm.jump(EQ, lo(c.valueTwo), pass, fail);
    asm.place(pass);
    return;
  }
  if (wide) {
    // Decide on the high word when it differs; fall through to the low word when equal.
    asm.ld(argHi(c.index));
    switch (c.op) {
      case "SCMP_CMP_EQ":
        asm.jump(EQ, hi(v), null, fail);
        break;
      case "SCMP_CMP_NE":
        asm.jump(EQ, hi(v), null, pass);
        break;
      case "SCMP_CMP_GT":
      case "SCMP_CMP_GE":
        asm.jump(GT, hi(v), pass, null);
        asm.jump(EQ, hi(v), null, fail);
        break;
      case "SCMP_CMP_LT":
      case "SCMP_CMP_LE":
        asm.jump(GT, hi(v), fail, null);
        asm.jump(EQ, hi(v), null, pass);
        break;
    }
  }
  asm.ld(argLo(c.index));
  switch (c.op) {
    case "SCMP_CMP_EQ":
      asm.jump(EQ, lo(v), pass, fail);
      break;
    case "SCMP_CMP_NE":
      asm.jump(EQ, lo(v), fail, pass);
      break;
    case "SCMP_CMP_GT":
      asm.jump(GT, lo(v), pass, fail);
      break;
    case "SCMP_CMP_GE":
      asm.jump(GE, lo(v), pass, fail);
      break;
    case "SCMP_CMP_LT":
      asm.jump(GE, lo(v), fail, pass);
      break;
    case "SCMP_CMP_LE":
      asm.jump(GT, lo(v), fail, pass);
      break;
  }
  asm.place(pass);
}
