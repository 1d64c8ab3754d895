import { test } from "node:test";
import assert from "node:assert/strict";
import { BerthError } from "../../src/errors.js";
import { compileDeviceFilter } from "../../src/cgroups/device-filter.js";
import { planContainer, type PlanContext } from "../../src/core/container-plan.js";
import { describeFailure } from "../../src/core/plan-errors.js";
import { encodePlan, OpCode, type Op } from "../../src/core/plan.js";
import type { DeviceCgroupRule, Spec } from "../../src/oci/spec.js";

// ---- a tiny assembler for runc's expected disassembly (cilium/ebpf's format) ---------------------
// Its own opcode table, so the compiler's bytes are checked against an independent encoding.

const OPCODES: Record<string, number> = {
  LdXMemW: 0x61,
  AndImm32: 0x54,
  RShImm32: 0x74,
  MovImm32: 0xb4,
  MovReg32: 0xbc,
  JNEImm: 0x55,
  JNEReg: 0x5d,
  JEqImm: 0x15,
  Exit: 0x95,
};

/** "block-N:" lines are labels, "// ..." comments; "<block-N>" is a jump target. */
function assemble(text: string): Buffer {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("//"));
  const labels = new Map<string, number>();
  const body: string[] = [];
  for (const l of lines) {
    if (l.endsWith(":")) labels.set(l.slice(0, -1), body.length);
    else body.push(l);
  }
  const out = Buffer.alloc(body.length * 8);
  body.forEach((l, i) => {
    const m = /^(\d+): (\w+)(.*)$/.exec(l);
    assert.ok(m, `bad line ${l}`);
    assert.equal(Number(m[1]), i, `instruction numbering at ${l}`);
    const code = OPCODES[m[2]];
    assert.ok(code !== undefined, `unknown mnemonic ${m[2]}`);
    const field = (name: string) => {
      const f = new RegExp(`${name}: r?(-?\\d+)`).exec(m[3]);
      return f ? Number(f[1]) : 0;
    };
    const target = /<(block-\d+)>/.exec(m[3]);
    let off = field("off");
    if (target) {
      const to = labels.get(target[1]);
      assert.ok(to !== undefined, `no label ${target[1]}`);
      off = to - (i + 1);
    }
    out.writeUInt8(code, i * 8);
    out.writeUInt8(field("dst") | (field("src") << 4), i * 8 + 1);
    out.writeInt16LE(off, i * 8 + 2);
    out.writeInt32LE(field("imm"), i * 8 + 4);
  });
  return out;
}

const PROLOGUE = `
  0: LdXMemW dst: r2 src: r1 off: 0 imm: 0
  1: AndImm32 dst: r2 imm: 65535
  2: LdXMemW dst: r3 src: r1 off: 0 imm: 0
  3: RShImm32 dst: r3 imm: 16
  4: LdXMemW dst: r4 src: r1 off: 4 imm: 0
  5: LdXMemW dst: r5 src: r1 off: 8 imm: 0
`;

function assertProgram(rules: DeviceCgroupRule[], expected: string): void {
  assert.deepEqual(Buffer.from(compileDeviceFilter(rules)).toString("hex"), assemble(PROLOGUE + expected).toString("hex"));
}

// The expected listings are runc's devicefilter_test.go (the rules-in-reverse compiler), with runc's
// later access test (MovReg32/AndImm32/JNEReg: every requested bit must be in the rule).

test("device filter: no rules -> deny everything (runc TestDeviceFilter_Nil)", () => {
  assertProgram([], `
block-0:
  6: MovImm32 dst: r0 imm: 0
  7: Exit`);
});

test("device filter: allow all (runc TestDeviceFilter_Privileged)", () => {
  assertProgram([{ allow: true, type: "a", major: -1, minor: -1, access: "rwm" }], `
block-0:
  6: MovImm32 dst: r0 imm: 1
  7: Exit`);
});

test("device filter: allow all but one block device (runc TestDeviceFilter_PrivilegedExceptSingleDevice)", () => {
  assertProgram([
    { allow: true, type: "a", major: -1, minor: -1, access: "rwm" },
    { allow: false, type: "b", major: 8, minor: 0, access: "rwm" },
  ], `
block-0:
  6: JNEImm dst: r2 off: -1 imm: 1 <block-1>
  7: JNEImm dst: r4 off: -1 imm: 8 <block-1>
  8: JNEImm dst: r5 off: -1 imm: 0 <block-1>
  9: MovImm32 dst: r0 imm: 0
  10: Exit
block-1:
  11: MovImm32 dst: r0 imm: 1
  12: Exit`);
});

test("device filter: rules before an allow-all are unreachable (runc TestDeviceFilter_Weird)", () => {
  assertProgram([
    { allow: false, type: "b", major: 8, minor: 1, access: "rwm" },
    { allow: true, type: "a", major: -1, minor: -1, access: "rwm" },
    { allow: false, type: "b", major: 8, minor: 2, access: "rwm" },
  ], `
block-0:
  6: JNEImm dst: r2 off: -1 imm: 1 <block-1>
  7: JNEImm dst: r4 off: -1 imm: 8 <block-1>
  8: JNEImm dst: r5 off: -1 imm: 2 <block-1>
  9: MovImm32 dst: r0 imm: 0
  10: Exit
block-1:
  11: MovImm32 dst: r0 imm: 1
  12: Exit`);
});

test("device filter: a deny with partial access matches any overlap (runc's first access test)", () => {
  assertProgram([
    { allow: true, type: "c", major: 1, access: "rwm" },
    { allow: false, type: "c", major: 1, minor: 3, access: "w" },
  ], `
block-0:
  6: JNEImm dst: r2 off: -1 imm: 2 <block-1>
  7: MovReg32 dst: r1 src: r3
  8: AndImm32 dst: r1 imm: 4
  9: JEqImm dst: r1 off: -1 imm: 0 <block-1>
  10: JNEImm dst: r4 off: -1 imm: 1 <block-1>
  11: JNEImm dst: r5 off: -1 imm: 3 <block-1>
  12: MovImm32 dst: r0 imm: 0
  13: Exit
block-1:
  14: JNEImm dst: r2 off: -1 imm: 2 <block-2>
  15: JNEImm dst: r4 off: -1 imm: 1 <block-2>
  16: MovImm32 dst: r0 imm: 1
  17: Exit
block-2:
  18: MovImm32 dst: r0 imm: 0
  19: Exit`);
});

/** runc's specconv.AllowedDevices, in its order. */
const RUNC_ALLOWED: DeviceCgroupRule[] = [
  { allow: true, type: "c", major: -1, minor: -1, access: "m" },
  { allow: true, type: "b", major: -1, minor: -1, access: "m" },
  { allow: true, type: "c", major: 1, minor: 3, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 8, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 7, access: "rwm" },
  { allow: true, type: "c", major: 5, minor: 0, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 5, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 9, access: "rwm" },
  { allow: true, type: "c", major: 136, minor: -1, access: "rwm" },
  { allow: true, type: "c", major: 5, minor: 2, access: "rwm" },
  { allow: true, type: "c", major: 10, minor: 200, access: "rwm" },
];

test("device filter: runc's built-in allow list (runc TestDeviceFilter_BuiltInAllowList)", () => {
  assertProgram(RUNC_ALLOWED, `
block-0:
  6: JNEImm dst: r2 off: -1 imm: 2 <block-1>
  7: JNEImm dst: r4 off: -1 imm: 10 <block-1>
  8: JNEImm dst: r5 off: -1 imm: 200 <block-1>
  9: MovImm32 dst: r0 imm: 1
  10: Exit
block-1:
  11: JNEImm dst: r2 off: -1 imm: 2 <block-2>
  12: JNEImm dst: r4 off: -1 imm: 5 <block-2>
  13: JNEImm dst: r5 off: -1 imm: 2 <block-2>
  14: MovImm32 dst: r0 imm: 1
  15: Exit
block-2:
  16: JNEImm dst: r2 off: -1 imm: 2 <block-3>
  17: JNEImm dst: r4 off: -1 imm: 136 <block-3>
  18: MovImm32 dst: r0 imm: 1
  19: Exit
block-3:
  20: JNEImm dst: r2 off: -1 imm: 2 <block-4>
  21: JNEImm dst: r4 off: -1 imm: 1 <block-4>
  22: JNEImm dst: r5 off: -1 imm: 9 <block-4>
  23: MovImm32 dst: r0 imm: 1
  24: Exit
block-4:
  25: JNEImm dst: r2 off: -1 imm: 2 <block-5>
  26: JNEImm dst: r4 off: -1 imm: 1 <block-5>
  27: JNEImm dst: r5 off: -1 imm: 5 <block-5>
  28: MovImm32 dst: r0 imm: 1
  29: Exit
block-5:
  30: JNEImm dst: r2 off: -1 imm: 2 <block-6>
  31: JNEImm dst: r4 off: -1 imm: 5 <block-6>
  32: JNEImm dst: r5 off: -1 imm: 0 <block-6>
  33: MovImm32 dst: r0 imm: 1
  34: Exit
block-6:
  35: JNEImm dst: r2 off: -1 imm: 2 <block-7>
  36: JNEImm dst: r4 off: -1 imm: 1 <block-7>
  37: JNEImm dst: r5 off: -1 imm: 7 <block-7>
  38: MovImm32 dst: r0 imm: 1
  39: Exit
block-7:
  40: JNEImm dst: r2 off: -1 imm: 2 <block-8>
  41: JNEImm dst: r4 off: -1 imm: 1 <block-8>
  42: JNEImm dst: r5 off: -1 imm: 8 <block-8>
  43: MovImm32 dst: r0 imm: 1
  44: Exit
block-8:
  45: JNEImm dst: r2 off: -1 imm: 2 <block-9>
  46: JNEImm dst: r4 off: -1 imm: 1 <block-9>
  47: JNEImm dst: r5 off: -1 imm: 3 <block-9>
  48: MovImm32 dst: r0 imm: 1
  49: Exit
block-9:
  50: JNEImm dst: r2 off: -1 imm: 1 <block-10>
  51: MovReg32 dst: r1 src: r3
  52: AndImm32 dst: r1 imm: 1
  53: JNEReg dst: r1 off: -1 src: r3 <block-10>
  54: MovImm32 dst: r0 imm: 1
  55: Exit
block-10:
  56: JNEImm dst: r2 off: -1 imm: 2 <block-11>
  57: MovReg32 dst: r1 src: r3
  58: AndImm32 dst: r1 imm: 1
  59: JNEReg dst: r1 off: -1 src: r3 <block-11>
  60: MovImm32 dst: r0 imm: 1
  61: Exit
block-11:
  62: MovImm32 dst: r0 imm: 0
  63: Exit`);
});

// ---- a tiny eBPF interpreter: only the ops the compiler may emit; anything else fails the test ------

const TYPE = { b: 1, c: 2 } as const;
const ACC = { m: 1, r: 2, w: 4 } as const;

function run(program: Uint8Array, ctx: { type: number; access: number; major: number; minor: number }): number {
  const p = Buffer.from(program);
  assert.equal(p.length % 8, 0);
  const mem = Buffer.alloc(12);
  mem.writeUInt32LE(((ctx.access << 16) | ctx.type) >>> 0, 0);
  mem.writeUInt32LE(ctx.major >>> 0, 4);
  mem.writeUInt32LE(ctx.minor >>> 0, 8);
  const r = new Array<bigint>(11).fill(0n);
  const M64 = (1n << 64n) - 1n;
  const u32 = (v: bigint) => v & 0xffffffffn;
  const sext = (imm: number) => BigInt.asUintN(64, BigInt(imm));
  for (let pc = 0, steps = 0; ; steps++) {
    assert.ok(pc >= 0 && pc * 8 < p.length, `pc ${pc} out of the program`);
    assert.ok(steps < 10000, "no termination");
    const code = p[pc * 8];
    const dst = p[pc * 8 + 1] & 0xf;
    const src = p[pc * 8 + 1] >> 4;
    const off = p.readInt16LE(pc * 8 + 2);
    const imm = p.readInt32LE(pc * 8 + 4);
    pc++;
    switch (code) {
      case 0x61: {
        assert.equal(src, 1, "loads only from the context");
        assert.ok(off >= 0 && off + 4 <= 12 && off % 4 === 0, `bad context offset ${off}`);
        r[dst] = BigInt(mem.readUInt32LE(off));
        break;
      }
      case 0x54: r[dst] = u32(r[dst] & u32(sext(imm))); break;
      case 0x74: r[dst] = u32(r[dst]) >> BigInt(imm & 31); break;
      case 0xb4: r[dst] = u32(sext(imm)); break;
      case 0xbc: r[dst] = u32(r[src]); break;
      case 0x55: if ((r[dst] & M64) !== sext(imm)) pc += off; break;
      case 0x5d: if (r[dst] !== r[src]) pc += off; break;
      case 0x15: if ((r[dst] & M64) === sext(imm)) pc += off; break;
      case 0x95: return Number(r[0]);
      default: assert.fail(`unexpected opcode 0x${code.toString(16)} at ${pc - 1}`);
    }
  }
}

/**
 * The verdict the rules mean: the last rule matching the request decides; none -> deny. An allow rule
 * matches when it grants every requested bit, a deny rule when it names any of them.
 */
function expectedVerdict(rules: DeviceCgroupRule[], req: { type: "b" | "c"; access: number; major: number; minor: number }): number {
  let verdict = 0;
  for (const rule of rules) {
    const type = rule.type ?? "a";
    const bits = [...(rule.access || "rwm")].reduce((a, ch) => a | ACC[ch as keyof typeof ACC], 0);
    const any = (n: number | null | undefined) => n === undefined || n === null || n === -1;
    if (type !== "a" && type !== req.type) continue;
    if (!any(rule.major) && rule.major !== req.major) continue;
    if (!any(rule.minor) && rule.minor !== req.minor) continue;
    if (rule.allow ? (req.access & bits) !== req.access : (req.access & bits) === 0) continue;
    verdict = rule.allow ? 1 : 0;
  }
  return verdict;
}

function checkAllRequests(rules: DeviceCgroupRule[]): number {
  const program = compileDeviceFilter(rules);
  let allowed = 0;
  for (const type of ["b", "c"] as const) {
    for (const major of [0, 1, 5, 8, 10, 136, 254]) {
      for (const minor of [0, 1, 2, 3, 5, 7, 8, 9, 200]) {
        for (let access = 1; access <= 7; access++) {
          const req = { type, access, major, minor };
          const got = run(program, { type: TYPE[type], access, major, minor });
          assert.equal(got, expectedVerdict(rules, req), `${JSON.stringify(rules)} for ${type} ${major}:${minor} access ${access}`);
          allowed += got;
        }
      }
    }
  }
  return allowed;
}

test("device filter: the program's verdicts are the rules' (docker's defaults, runc's list, deny-after-allow)", () => {
  const docker: DeviceCgroupRule[] = [
    { allow: false, access: "rwm" },
    { allow: true, type: "c", major: 1, minor: 3, access: "rwm" },
    { allow: true, type: "c", major: 1, minor: 5, access: "rwm" },
    { allow: true, type: "c", major: 136, minor: null, access: "rwm" },
    { allow: true, type: "c", major: -1, minor: -1, access: "m" },
    { allow: true, type: "b", access: "m" },
  ];
  const allowedByDocker = checkAllRequests(docker);
  assert.ok(allowedByDocker > 0);
  // /dev/null read: allowed; b 8:0 read: denied; b 8:0 mknod: allowed.
  const p = compileDeviceFilter(docker);
  assert.equal(run(p, { type: TYPE.c, access: ACC.r, major: 1, minor: 3 }), 1);
  assert.equal(run(p, { type: TYPE.b, access: ACC.r, major: 8, minor: 0 }), 0);
  assert.equal(run(p, { type: TYPE.b, access: ACC.m, major: 8, minor: 0 }), 1);
  checkAllRequests(RUNC_ALLOWED);
  // A later deny punches a hole into an earlier allow (a "w" deny stops read+write too, not read); a
  // read-only allow does not grant read+write.
  const holes: DeviceCgroupRule[] = [
    { allow: false, access: "rwm" },
    { allow: true, type: "c", major: 1, access: "rwm" },
    { allow: false, type: "c", major: 1, minor: 3, access: "w" },
    { allow: true, type: "b", major: 8, minor: 0, access: "r" },
  ];
  checkAllRequests(holes);
  const h = compileDeviceFilter(holes);
  assert.equal(run(h, { type: TYPE.c, access: ACC.r, major: 1, minor: 3 }), 1);
  assert.equal(run(h, { type: TYPE.c, access: ACC.r | ACC.w, major: 1, minor: 3 }), 0);
  assert.equal(run(h, { type: TYPE.c, access: ACC.r | ACC.w, major: 1, minor: 4 }), 1);
  assert.equal(run(h, { type: TYPE.b, access: ACC.r, major: 8, minor: 0 }), 1);
  assert.equal(run(h, { type: TYPE.b, access: ACC.r | ACC.w, major: 8, minor: 0 }), 0);
});

test("device filter: random rule lists agree with last-match-wins", () => {
  // A fixed-seed generator: the same lists every run.
  let seed = 0x2545f491;
  const next = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const pick = <T>(xs: readonly T[]) => xs[next(xs.length)];
  for (let i = 0; i < 150; i++) {
    const rules: DeviceCgroupRule[] = Array.from({ length: next(7) }, () => ({
      allow: next(2) === 1,
      type: pick(["a", "b", "c", undefined] as const),
      major: pick([undefined, null, -1, 1, 8, 136]),
      minor: pick([undefined, -1, 0, 3, 5]),
      access: pick(["r", "w", "m", "rw", "rm", "wm", "rwm", "", undefined]),
    }));
    checkAllRequests(rules);
  }
});

test("device filter: invalid rules are refused with the field named", () => {
  const bad = (rule: DeviceCgroupRule, re: RegExp) => assert.throws(() => compileDeviceFilter([rule]), (e: unknown) => e instanceof BerthError && re.test(e.message));
  bad({ allow: true, type: "x" as "a" }, /devices\[0\]\.type "x"/);
  bad({ allow: true, access: "rx" }, /devices\[0\]\.access "rx"/);
  bad({ allow: true, access: "rr" }, /access "rr"/);
  bad({ allow: true, type: "c", major: 2 ** 31 }, /major=2147483648/);
  bad({ allow: true, type: "c", minor: 1.5 }, /minor=1.5/);
});

// ---- the plan op ----

test("device filter op: before clone and before any setns, encoded as (cgroup dir, program)", () => {
  const program = compileDeviceFilter([{ allow: false, access: "rwm" }, { allow: true, type: "c", major: 1, minor: 5, access: "rwm" }]);
  const ctx: PlanContext = {
    rootfs: "/r",
    host: { lastCap: 40 },
    isDirectory: () => true,
    cgroup: { procsFiles: ["/sys/fs/cgroup/c1/cgroup.procs"], mounts: [{ source: "/sys/fs/cgroup/c1", destination: "/sys/fs/cgroup" }] },
    deviceFilter: { cgroup: "/sys/fs/cgroup/c1", program },
    execFifo: "/run/x/exec.fifo",
  };
  const spec: Spec = {
    ociVersion: "1.0.2",
    process: { args: ["true"], cwd: "/", user: { uid: 0, gid: 0 } },
    root: { path: "/r" },
    linux: { namespaces: [{ type: "mount" }, { type: "network", path: "/proc/1/ns/net" }] },
  };
  const plan = planContainer(spec, ctx);
  const kinds = plan.ops.map((o) => o.op);
  const at = kinds.indexOf("cgroupDeviceFilter");
  assert.ok(at >= 0, "the op is planned");
  assert.ok(at < kinds.indexOf("joinNamespace") && at < kinds.indexOf("clone"));
  assert.equal(planContainer(spec, { ...ctx, deviceFilter: undefined }).ops.some((o) => o.op === "cgroupDeviceFilter"), false);

  const buf = encodePlan({ flags: 0, ops: [plan.ops[at]] });
  assert.deepEqual([buf.readUInt32LE(20), buf.readUInt32LE(24)], [OpCode.CgroupDeviceFilter, 3]);
  const dirLen = buf.readUInt32LE(28);
  assert.equal(buf.subarray(32, 32 + dirLen).toString("latin1"), "/sys/fs/cgroup/c1\0");
  const progLen = buf.readUInt32LE(32 + dirLen);
  assert.deepEqual(new Uint8Array(buf.subarray(36 + dirLen, 36 + dirLen + progLen)), program);
  // replace: a u64 flag, 0 at create
  assert.equal(buf.readUInt32LE(36 + dirLen + progLen), 8);
  assert.equal(buf.readBigUInt64LE(40 + dirLen + progLen), 0n);
});

test("device filter op: failures name the bpf step", () => {
  const op: Op = { op: "cgroupDeviceFilter", cgroup: "/sys/fs/cgroup/c1", program: new Uint8Array(16), replace: false };
  assert.equal(
    describeFailure(op, 1, "BPF_PROG_ATTACH").message,
    "attach the device filter (2 eBPF instructions) to cgroup /sys/fs/cgroup/c1: bpf(BPF_PROG_ATTACH): operation not permitted (needs CAP_SYS_ADMIN or CAP_BPF, and a kernel with CONFIG_CGROUP_BPF)",
  );
  assert.match(describeFailure(op, 13, "BPF_PROG_LOAD R0 !read_ok").message, /bpf\(BPF_PROG_LOAD\): permission denied \(verifier: R0 !read_ok\)/);
  assert.match(describeFailure(op, 2, "open").message, /open \/sys\/fs\/cgroup\/c1: no such file or directory/);
});
