#!/usr/bin/env node
// Generates src/seccomp/syscalls.ts (syscall name -> number per seccomp arch) from the kernel UAPI
// headers installed on this machine, plus a hand-kept list of syscalls newer than those headers.
// Usage: node scripts/gen-syscalls.mjs [/usr/include]
/* global process, console */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const inc = process.argv[2] ?? "/usr/include";
const out = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "seccomp", "syscalls.ts");
const X32_BIT = 0x40000000;

// Syscalls added after the headers were cut (number is the same on every arch using the common
// numbering 451+). `only` limits a syscall to some arches; x32 only gets the "common" ones.
const LATE = [
  ["cachestat", 451],
  ["fchmodat2", 452],
  ["map_shadow_stack", 453, ["x86_64", "aarch64"]],
  ["futex_wake", 454],
  ["futex_wait", 455],
  ["futex_requeue", 456],
  ["statmount", 457],
  ["listmount", 458],
  ["lsm_get_self_attr", 459],
  ["lsm_set_self_attr", 460],
  ["lsm_list_modules", 461],
  ["mseal", 462],
  ["setxattrat", 463],
  ["getxattrat", 464],
  ["listxattrat", 465],
  ["removexattrat", 466],
  ["open_tree_attr", 467],
  ["file_getattr", 468],
  ["file_setattr", 469],
];
// x86_64-only late additions (below 451, in the arch-specific range).
const LATE_X86_64 = [
  ["uretprobe", 335],
  ["uprobe", 336],
];

function parseSimple(file, evalValue) {
  const table = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^#define __NR_(\w+)\s+(.+?)\s*$/.exec(line);
    if (!m) continue;
    const v = evalValue(m[2]);
    if (v !== undefined) table[m[1]] = v;
  }
  return table;
}

// asm-generic/unistd.h is full of #if blocks; a tiny preprocessor evaluates them for a 64-bit arch
// with the given __ARCH_WANT_* macros.
function parseGeneric(file, wants) {
  const defined = new Set(wants);
  const values = new Map();
  const stack = [];
  const active = () => stack.every((s) => s.on);
  const cond = (expr) => {
    const js = expr
      .replace(/defined\s*\(\s*(\w+)\s*\)/g, (_, n) => String(defined.has(n)))
      .replace(/__BITS_PER_LONG/g, "64");
    if (!/^[\w\s()|&!=<>]+$/.test(js)) throw new Error(`cannot evaluate #if ${expr}`);
    return Boolean(Function(`return (${js});`)());
  };
  for (const raw of readFileSync(file, "utf8").split("\n")) {
    const line = raw.trim();
    let m;
    if ((m = /^#ifdef\s+(\w+)/.exec(line))) stack.push({ on: defined.has(m[1]), taken: defined.has(m[1]) });
    else if ((m = /^#ifndef\s+(\w+)/.exec(line))) stack.push({ on: !defined.has(m[1]), taken: !defined.has(m[1]) });
    else if ((m = /^#if\s+(.+)$/.exec(line))) {
      const v = cond(m[1]);
      stack.push({ on: v, taken: v });
    } else if (/^#else/.test(line)) {
      const top = stack[stack.length - 1];
      top.on = !top.taken;
      top.taken = true;
    } else if (/^#endif/.test(line)) stack.pop();
    else if (!active()) continue;
    else if ((m = /^#undef\s+(\w+)/.exec(line))) {
      defined.delete(m[1]);
      values.delete(m[1]);
    } else if ((m = /^#define\s+(\w+)(?:\s+(.*))?$/.exec(line))) {
      defined.add(m[1]);
      const v = (m[2] ?? "").trim();
      if (/^\d+$/.test(v)) values.set(m[1], Number(v));
      else if (values.has(v)) values.set(m[1], values.get(v));
    }
  }
  const table = {};
  for (const [k, v] of values) {
    if (!k.startsWith("__NR_") || k === "__NR_syscalls" || k === "__NR_arch_specific_syscall") continue;
    table[k.slice(5)] = v;
  }
  return table;
}

const num = (v) => (/^\d+$/.test(v) ? Number(v) : undefined);
const x86_64 = parseSimple(join(inc, "x86_64-linux-gnu/asm/unistd_64.h"), num);
const x86 = parseSimple(join(inc, "x86_64-linux-gnu/asm/unistd_32.h"), num);
const x32 = parseSimple(join(inc, "x86_64-linux-gnu/asm/unistd_x32.h"), (v) => {
  const m = /^\(__X32_SYSCALL_BIT \+ (\d+)\)$/.exec(v);
  return m ? (X32_BIT | Number(m[1])) >>> 0 : undefined;
});
// arm64's uapi <asm/unistd.h> defines these before including the generic table.
const aarch64 = parseGeneric(join(inc, "asm-generic/unistd.h"), [
  "__ARCH_WANT_RENAMEAT",
  "__ARCH_WANT_NEW_STAT",
  "__ARCH_WANT_SET_GET_RLIMIT",
  "__ARCH_WANT_TIME32_SYSCALLS",
  "__ARCH_WANT_SYS_CLONE3",
  "__ARCH_WANT_MEMFD_SECRET",
]);

const tables = { x86_64, x86, x32, aarch64 };
for (const [name, nr, only] of LATE) {
  for (const arch of Object.keys(tables)) {
    if (only && !only.includes(arch)) continue;
    if (arch === "x32" && only) continue;
    if (tables[arch][name] === undefined) tables[arch][name] = arch === "x32" ? (X32_BIT | nr) >>> 0 : nr;
  }
}
for (const [name, nr] of LATE_X86_64) if (x86_64[name] === undefined) x86_64[name] = nr;

function emit(constName, table) {
  const entries = Object.entries(table).sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]));
  const lines = [];
  let cur = "";
  for (const [k, v] of entries) {
    const item = `${k}: ${v >= X32_BIT ? `X32 | ${v - X32_BIT}` : v}, `;
    if (cur.length + item.length > 110) {
      lines.push(`  ${cur.trimEnd()}`);
      cur = "";
    }
    cur += item;
  }
  if (cur) lines.push(`  ${cur.trimEnd()}`);
  return `export const ${constName}: Readonly<Record<string, number>> = {\n${lines.join("\n")}\n};\n`;
}

const src = `// GENERATED by scripts/gen-syscalls.mjs from the kernel UAPI headers (linux-libc-dev) plus a
// hand-kept list of newer syscalls. Do not edit by hand: edit the script and re-run it.

const X32 = 0x40000000;

${emit("SYSCALLS_X86_64", x86_64)}
${emit("SYSCALLS_X86", x86)}
${emit("SYSCALLS_X32", x32)}
${emit("SYSCALLS_AARCH64", aarch64)}`;
writeFileSync(out, src);
console.log(
  `wrote ${out}: ` + Object.entries(tables).map(([a, t]) => `${a}=${Object.keys(t).length}`).join(" "),
);
