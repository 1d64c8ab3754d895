import { test } from "node:test";
import assert from "node:assert/strict";
import type { Seccomp, SeccompArg, SeccompSyscall } from "../../src/oci/spec.js";
import {
  AUDIT_ARCH,
  BPF_MAXINSNS,
  X32_SYSCALL_BIT,
  compileSeccomp,
  compileSeccompCached,
  describeAction,
  disassemble,
  dockerDefaultProfile,
  runFilter,
  syscallNumber,
} from "../../src/seccomp/index.js";
import { Assembler, BPF, decode, encode } from "../../src/seccomp/bpf.js";
import { SYSCALLS_AARCH64, SYSCALLS_X32, SYSCALLS_X86, SYSCALLS_X86_64 } from "../../src/seccomp/syscalls.js";
import { BerthError } from "../../src/errors.js";

const ABI: Record<string, { audit: number; table: Readonly<Record<string, number>> }> = {
  x86_64: { audit: AUDIT_ARCH.X86_64, table: SYSCALLS_X86_64 },
  x86: { audit: AUDIT_ARCH.I386, table: SYSCALLS_X86 },
  x32: { audit: AUDIT_ARCH.X86_64, table: SYSCALLS_X32 },
  aarch64: { audit: AUDIT_ARCH.AARCH64, table: SYSCALLS_AARCH64 },
};

/** Compiles for an x86_64 host (unless told) and returns "what does syscall `name` get". */
function filter(profile: Seccomp, host = "x86_64") {
  const { program } = compileSeccomp(profile, { arch: host });
  return (name: string | number, args: (bigint | number)[] = [], abi = host === "aarch64" ? "aarch64" : "x86_64") => {
    const nr = typeof name === "number" ? name : ABI[abi].table[name];
    assert.ok(nr !== undefined, `no ${name} on ${abi}`);
    return describeAction(runFilter(program, { nr, arch: ABI[abi].audit, args }));
  };
}

const rule = (names: string[], action: string, extra: Omit<SeccompSyscall, "names" | "action"> = {}): SeccompSyscall => ({
  names,
  action,
  ...extra,
});

test("syscall tables: known numbers, recent syscalls, x32 bit", () => {
  assert.equal(SYSCALLS_X86_64.read, 0);
  assert.equal(SYSCALLS_X86_64.mkdir, 83);
  assert.equal(SYSCALLS_X86.mkdir, 39);
  assert.equal(SYSCALLS_X86_64.clone3, 435);
  assert.equal(SYSCALLS_AARCH64.clone3, 435);
  assert.equal(SYSCALLS_AARCH64.openat, 56);
  assert.equal(SYSCALLS_AARCH64.mkdir, undefined); // generic table has only mkdirat
  assert.equal(SYSCALLS_X32.mkdir, (X32_SYSCALL_BIT | 83) >>> 0);
  assert.equal(SYSCALLS_X32.rt_sigaction, (X32_SYSCALL_BIT | 512) >>> 0);
  for (const [name, nr] of Object.entries({
    openat2: 437, faccessat2: 439, close_range: 436, pidfd_open: 434, pidfd_getfd: 438, landlock_create_ruleset: 444,
    futex_waitv: 449, cachestat: 451, fchmodat2: 452, map_shadow_stack: 453, mseal: 462,
  })) {
    assert.equal(SYSCALLS_X86_64[name], nr, name);
    assert.equal(SYSCALLS_AARCH64[name], nr, name);
  }
  assert.equal(SYSCALLS_X86.mseal, 462);
  assert.equal(syscallNumber("mkdir", "SCMP_ARCH_X86"), 39);
  assert.equal(syscallNumber("no_such_call", "SCMP_ARCH_X86_64"), undefined);
  assert.equal(syscallNumber("toString", "SCMP_ARCH_X86_64"), undefined);
});

test("default action alone, for every action", () => {
  const cases: [Seccomp, string][] = [
    [{ defaultAction: "SCMP_ACT_ALLOW" }, "ALLOW"],
    [{ defaultAction: "SCMP_ACT_KILL" }, "KILL_THREAD"],
    [{ defaultAction: "SCMP_ACT_KILL_THREAD" }, "KILL_THREAD"],
    [{ defaultAction: "SCMP_ACT_KILL_PROCESS" }, "KILL_PROCESS"],
    [{ defaultAction: "SCMP_ACT_TRAP" }, "TRAP"],
    [{ defaultAction: "SCMP_ACT_ERRNO" }, "ERRNO(1)"],
    [{ defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 13 }, "ERRNO(13)"],
    [{ defaultAction: "SCMP_ACT_TRACE" }, "TRACE(1)"],
    [{ defaultAction: "SCMP_ACT_TRACE", defaultErrnoRet: 7 }, "TRACE(7)"],
    [{ defaultAction: "SCMP_ACT_LOG" }, "LOG"],
  ];
  for (const [profile, want] of cases) {
    // getpid, far below clone3 and with no profile-named syscalls there is no ENOSYS stub range
    assert.equal(filter(profile)("getpid"), want, profile.defaultAction);
  }
});

test("program is a sock_filter array starting with the arch load", () => {
  const { program, flags } = compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW" }, { arch: "x86_64" });
  assert.equal(program.length % 8, 0);
  assert.deepEqual(decode(program)[0], { code: 0x20, jt: 0, jf: 0, k: 4 });
  assert.equal(program.readUInt16LE(0), 0x20);
  assert.equal(program.readUInt32LE(4), 4);
  assert.equal(flags, 0);
});

test("allow-list with errno default; rule errnoRet", () => {
  const f = filter({
    defaultAction: "SCMP_ACT_ERRNO",
    syscalls: [
      rule(["read", "write", "exit_group", "futex_waitv"], "SCMP_ACT_ALLOW"),
      rule(["mkdir"], "SCMP_ACT_ERRNO", { errnoRet: 30 }),
      rule(["rmdir"], "SCMP_ACT_ERRNO"),
      rule(["kill"], "SCMP_ACT_KILL_PROCESS"),
      rule(["getppid"], "SCMP_ACT_TRACE", { errnoRet: 42 }),
    ],
  });
  assert.equal(f("read"), "ALLOW");
  assert.equal(f("write"), "ALLOW");
  assert.equal(f("exit_group"), "ALLOW");
  assert.equal(f("mkdir"), "ERRNO(30)");
  assert.equal(f("rmdir"), "ERRNO(1)"); // same as the default: dropped like runc does, same result
  assert.equal(f("kill"), "KILL_PROCESS");
  assert.equal(f("getppid"), "TRACE(42)");
  assert.equal(f("open"), "ERRNO(1)");
  assert.equal(f("getpid"), "ERRNO(1)");
});

test("every number gets the right answer around runs and gaps (range merging)", () => {
  const allowed = ["read", "write", "open", "close", "stat", "mmap", "brk", "getpid", "clone", "execve", "futex_waitv"];
  const f = filter({
    defaultAction: "SCMP_ACT_ERRNO",
    syscalls: [rule(allowed, "SCMP_ACT_ALLOW"), rule(["clone3"], "SCMP_ACT_ERRNO", { errnoRet: 38 })],
  });
  const allowedNrs = new Set(allowed.map((n) => SYSCALLS_X86_64[n]));
  for (let nr = 0; nr < 520; nr++) {
    const want = allowedNrs.has(nr) ? "ALLOW" : nr === 435 || nr > 449 ? "ERRNO(38)" : "ERRNO(1)";
    assert.equal(f(nr), want, `nr ${nr}`);
  }
  assert.equal(f(0x3fffffff), "ERRNO(38)");
});

// Reference semantics for the comparisons, on unsigned 64-bit values.
function holds(op: SeccompArg["op"], arg: bigint, value: bigint, valueTwo: bigint): boolean {
  switch (op) {
    case "SCMP_CMP_NE": return arg !== value;
    case "SCMP_CMP_LT": return arg < value;
    case "SCMP_CMP_LE": return arg <= value;
    case "SCMP_CMP_EQ": return arg === value;
    case "SCMP_CMP_GE": return arg >= value;
    case "SCMP_CMP_GT": return arg > value;
    case "SCMP_CMP_MASKED_EQ": return (arg & value) === valueTwo;
  }
}

const OPS: SeccompArg["op"][] = [
  "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
];
const VALUES = [
  0n, 1n, 2n, 0x7fffffffn, 0x80000000n, 0xfffffffen, 0xffffffffn, 0x100000000n, 0x100000001n, 0x1ffffffffn,
  0x200000000n, 0xffffffff00000000n, 0xfffffffffffffffen, 0xffffffffffffffffn,
];

test("argument operators on 64-bit values (high word then low word)", () => {
  for (const op of OPS) {
    for (const value of VALUES) {
      const valueTwo = op === "SCMP_CMP_MASKED_EQ" ? value & 0x1_0000_0001n : 0n;
      const f = filter({
        defaultAction: "SCMP_ACT_ALLOW",
        syscalls: [
          rule(["ioctl"], "SCMP_ACT_ERRNO", {
            errnoRet: 99,
            // bigint in, as a JSON parser with big-number support would give
            args: [{ index: 3, value: value as unknown as number, valueTwo: valueTwo as unknown as number, op }],
          }),
        ],
      });
      for (const arg of VALUES) {
        const want = holds(op, arg, value, valueTwo) ? "ERRNO(99)" : "ALLOW";
        assert.equal(f("ioctl", [0, 0, 0, arg]), want, `${op} arg=${arg.toString(16)} value=${value.toString(16)}`);
      }
    }
  }
});

test("32-bit ABI (x86) compares the low word only, as libseccomp does", () => {
  const f = filter({
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
    syscalls: [rule(["ioctl"], "SCMP_ACT_ERRNO", { args: [{ index: 1, value: 5, op: "SCMP_CMP_EQ" }] })],
  });
  assert.equal(f("ioctl", [0, 5], "x86"), "ERRNO(1)");
  assert.equal(f("ioctl", [0, 0x100000005n], "x86"), "ERRNO(1)");
  assert.equal(f("ioctl", [0, 0x100000005n], "x86_64"), "ALLOW");
  assert.equal(f("ioctl", [0, 6], "x86"), "ALLOW");
});

test("args in one rule AND; rules for one syscall OR in profile order", () => {
  const f = filter({
    defaultAction: "SCMP_ACT_ERRNO",
    syscalls: [
      rule(["socket"], "SCMP_ACT_ALLOW", {
        args: [
          { index: 0, value: 2, op: "SCMP_CMP_EQ" },
          { index: 1, value: 0xf, valueTwo: 1, op: "SCMP_CMP_MASKED_EQ" },
        ],
      }),
      rule(["socket"], "SCMP_ACT_ERRNO", { errnoRet: 97, args: [{ index: 0, value: 2, op: "SCMP_CMP_EQ" }] }),
      rule(["socket"], "SCMP_ACT_LOG", { args: [{ index: 0, value: 10, op: "SCMP_CMP_EQ" }] }),
      rule(["socket"], "SCMP_ACT_TRAP", { args: [{ index: 0, value: 10, op: "SCMP_CMP_EQ" }] }),
      rule(["futex_waitv"], "SCMP_ACT_ALLOW"),
    ],
  });
  assert.equal(f("socket", [2, 0x801]), "ALLOW"); // both conditions
  assert.equal(f("socket", [2, 2]), "ERRNO(97)"); // first rule fails on arg 1, second matches
  assert.equal(f("socket", [10, 1]), "LOG"); // first matching rule wins over the later TRAP
  assert.equal(f("socket", [1, 1]), "ERRNO(1)"); // no rule matches: default
});

test("a rule without args wins over later conditional rules for the same syscall", () => {
  const f = filter({
    defaultAction: "SCMP_ACT_ALLOW",
    syscalls: [rule(["kill"], "SCMP_ACT_ERRNO"), rule(["kill"], "SCMP_ACT_TRAP", { args: [{ index: 0, value: 1, op: "SCMP_CMP_EQ" }] })],
  });
  assert.equal(f("kill", [1]), "ERRNO(1)");
});

test("architecture check: unlisted ABIs get KILL (libseccomp's bad-arch action)", () => {
  const profile: Seccomp = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [rule(["mkdir"], "SCMP_ACT_ERRNO")] };
  const f = filter(profile);
  assert.equal(f("mkdir"), "ERRNO(1)");
  assert.equal(f("mkdir", [], "x86"), "KILL_THREAD");
  assert.equal(f("mkdirat", [], "aarch64"), "KILL_THREAD");
  assert.equal(f("mkdir", [], "x32"), "KILL_THREAD"); // x32 ABI not listed
  assert.equal(f("read", [], "x32"), "KILL_THREAD");

  const g = filter({ ...profile, architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"] });
  assert.equal(g("mkdir", [], "x86"), "ERRNO(1)"); // 39 on i386
  assert.equal(g(83, [], "x86"), "ALLOW"); // 83 is not mkdir on i386
  assert.equal(g("mkdir", [], "x32"), "ERRNO(1)");
  assert.equal(g("read", [], "x32"), "ALLOW");
  assert.equal(g("mkdirat", [], "aarch64"), "KILL_THREAD");

  // The native ABI is always there even when the list omits it; other ABIs without tables are skipped.
  const h = filter({ ...profile, architectures: ["SCMP_ARCH_X86", "SCMP_ARCH_ARM"] });
  assert.equal(h("mkdir"), "ERRNO(1)");
  assert.equal(h("mkdir", [], "x86"), "ERRNO(1)");

  const a = filter({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [rule(["mkdirat"], "SCMP_ACT_ERRNO")] }, "aarch64");
  assert.equal(a("mkdirat"), "ERRNO(1)");
  assert.equal(a("openat"), "ALLOW");
  assert.equal(a("openat", [], "x86_64"), "KILL_THREAD");
});

test("unknown syscall names are skipped, per ABI", () => {
  const f = filter({
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
    syscalls: [rule(["no_such_syscall", "chown32", "mkdir"], "SCMP_ACT_ERRNO")],
  });
  assert.equal(f("mkdir"), "ERRNO(1)");
  assert.equal(f("chown32", [], "x86"), "ERRNO(1)");
  assert.equal(f("chown"), "ALLOW");
});

test("clone3 and syscalls newer than the profile get ENOSYS", () => {
  const base: Seccomp = {
    defaultAction: "SCMP_ACT_ERRNO",
    architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    syscalls: [rule(["read", "clone", "futex_waitv"], "SCMP_ACT_ALLOW")],
  };
  const f = filter(base);
  assert.equal(f("clone3"), "ERRNO(38)");
  assert.equal(f("clone3", [], "x86"), "ERRNO(38)");
  assert.equal(f("clone3", [], "x32"), "ERRNO(38)");
  assert.equal(f("mseal"), "ERRNO(38)"); // newer than futex_waitv
  assert.equal(f(1000), "ERRNO(38)");
  assert.equal(f("mount"), "ERRNO(1)"); // older: the default
  assert.equal(f("openat2"), "ERRNO(1)");

  assert.equal(filter({ ...base, defaultAction: "SCMP_ACT_KILL_PROCESS" })("clone3"), "ERRNO(38)");
  assert.equal(filter({ ...base, defaultAction: "SCMP_ACT_KILL_PROCESS" })(999), "ERRNO(38)");
  // An allowing default (ALLOW, LOG, TRACE) needs no stub.
  assert.equal(filter({ ...base, defaultAction: "SCMP_ACT_ALLOW" })("clone3"), "ALLOW");
  assert.equal(filter({ ...base, defaultAction: "SCMP_ACT_LOG" })(999), "LOG");
  assert.equal(filter({ ...base, defaultAction: "SCMP_ACT_TRACE" })("clone3"), "TRACE(1)");
  // A profile that names clone3 decides it itself.
  const named = filter({ ...base, syscalls: [...base.syscalls!, rule(["clone3"], "SCMP_ACT_ALLOW")] });
  assert.equal(named("clone3"), "ALLOW");
  const namedDeny = filter({ ...base, syscalls: [...base.syscalls!, rule(["clone3"], "SCMP_ACT_ERRNO")] });
  assert.equal(namedDeny("clone3"), "ERRNO(1)");
});

test("filter flags", () => {
  const c = (flags: string[]) => compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW", flags }, { arch: "x86_64" }).flags;
  assert.equal(c(["SECCOMP_FILTER_FLAG_TSYNC"]), 1);
  assert.equal(c(["SECCOMP_FILTER_FLAG_LOG"]), 2);
  assert.equal(c(["SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG"]), 6);
  assert.equal(c(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]), 32);
});

test("bad input is refused with the JSON path", () => {
  const bad = (profile: unknown, message: string) =>
    assert.throws(
      () => compileSeccomp(profile as Seccomp, { arch: "x86_64" }),
      (e: unknown) => e instanceof BerthError && e.message === message,
      message,
    );
  bad({ defaultAction: "SCMP_ACT_FOO" }, 'linux.seccomp.defaultAction: unknown action "SCMP_ACT_FOO"');
  bad(
    { defaultAction: "SCMP_ACT_ALLOW", syscalls: [rule(["read"], "SCMP_ACT_ERRNO"), rule(["read"], "SCMP_ACT_FOO")] },
    'linux.seccomp.syscalls[1].action: unknown action "SCMP_ACT_FOO"',
  );
  bad(
    { defaultAction: "SCMP_ACT_ALLOW", syscalls: [rule(["read"], "SCMP_ACT_ERRNO", { args: [{ index: 0, value: 1, op: "SCMP_CMP_XX" as "SCMP_CMP_EQ" }] })] },
    'linux.seccomp.syscalls[0].args[0].op: unknown operator "SCMP_CMP_XX"',
  );
  bad(
    { defaultAction: "SCMP_ACT_ALLOW", syscalls: [rule(["read"], "SCMP_ACT_ERRNO", { args: [{ index: 6, value: 1, op: "SCMP_CMP_EQ" }] })] },
    "linux.seccomp.syscalls[0].args[0].index: must be 0 to 5, got 6",
  );
  bad(
    { defaultAction: "SCMP_ACT_ALLOW", syscalls: [rule(["read"], "SCMP_ACT_ERRNO", { args: [{ index: 0, value: -1, op: "SCMP_CMP_EQ" }] })] },
    'linux.seccomp.syscalls[0].args[0].value: must be an unsigned 64-bit integer, got "-1"',
  );
  bad({ defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_VAX"] }, 'linux.seccomp.architectures[0]: unknown architecture "SCMP_ARCH_VAX"');
  bad({ defaultAction: "SCMP_ACT_ALLOW", flags: ["SECCOMP_FILTER_FLAG_LOG", "FOO"] }, 'linux.seccomp.flags[1]: unknown flag "FOO"');
  bad({ defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: -3 }, "linux.seccomp.defaultErrnoRet: must be an integer from 0 to 65535, got -3");
  bad({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ action: "SCMP_ACT_ERRNO" }] }, "linux.seccomp.syscalls[0].names: must be a list of syscall names");
  bad(
    { defaultAction: "SCMP_ACT_ALLOW", listenerPath: "/run/x.sock", syscalls: [rule(["read"], "SCMP_ACT_NOTIFY")] },
    "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY is not supported (seccomp listenerPath is not implemented)",
  );
  assert.throws(() => compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW" }, { arch: "mips" }), BerthError);
});

test("assembler turns out-of-reach conditional jumps into jumps over a ja", () => {
  const asm = new Assembler();
  const far = asm.label();
  const near = asm.label();
  asm.ld(0);
  asm.jump(BPF.JEQ_K, 7, far, near); // true target 300 away, false target close
  asm.place(near);
  for (let i = 0; i < 300; i++) asm.ret(i);
  asm.place(far);
  asm.ret(0xabc);
  const program = encode(asm.assemble());
  assert.equal(runFilter(program, { nr: 7, arch: 0 }), 0xabc);
  assert.equal(runFilter(program, { nr: 8, arch: 0 }), 0);
  for (const ins of decode(program)) assert.ok(ins.jt <= 255 && ins.jf <= 255);
});

test("profiles with many conditional rules keep jumps valid and stay correct", () => {
  const names = Object.keys(SYSCALLS_X86_64).filter((n) => SYSCALLS_X86_64[n] < 400);
  const syscalls = names.map((n, i) =>
    rule([n], "SCMP_ACT_ERRNO", { errnoRet: (i % 200) + 1, args: [{ index: i % 6, value: i + 1, op: "SCMP_CMP_EQ" }] }),
  );
  const { program } = compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW", syscalls }, { arch: "x86_64" });
  assert.ok(program.length / 8 <= BPF_MAXINSNS, `${program.length / 8} instructions`);
  assert.ok(decode(program).some((ins) => ins.code === BPF.JA), "expected long jumps to be needed");
  names.forEach((n, i) => {
    const args = [0, 0, 0, 0, 0, 0];
    assert.equal(describeAction(runFilter(program, { nr: SYSCALLS_X86_64[n], arch: AUDIT_ARCH.X86_64, args })), "ALLOW");
    args[i % 6] = i + 1;
    assert.equal(
      describeAction(runFilter(program, { nr: SYSCALLS_X86_64[n], arch: AUDIT_ARCH.X86_64, args })),
      `ERRNO(${(i % 200) + 1})`,
      n,
    );
  });
});

test("docker default profile: size, allow-list, capability rules", () => {
  const noAdmin = dockerDefaultProfile(["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_SETUID"], { arch: "x86_64" });
  assert.deepEqual(noAdmin.architectures, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
  assert.equal(noAdmin.defaultAction, "SCMP_ACT_ERRNO");
  assert.equal(noAdmin.defaultErrnoRet, 1);
  const { program } = compileSeccomp(noAdmin, { arch: "x86_64" });
  const insns = program.length / 8;
  assert.ok(insns < BPF_MAXINSNS, `docker default compiles to ${insns} instructions`);
  assert.ok(insns < 1000, `docker default compiles to ${insns} instructions`);

  const f = filter(noAdmin);
  for (const n of ["read", "write", "openat", "execve", "exit_group", "futex", "mmap", "arch_prctl", "rseq", "statx", "clone"]) {
    assert.equal(f(n), "ALLOW", n);
  }
  assert.equal(f("read", [], "x86"), "ALLOW");
  assert.equal(f("read", [], "x32"), "ALLOW");
  assert.equal(f("mount"), "ERRNO(1)");
  assert.equal(f("unshare"), "ERRNO(1)");
  assert.equal(f("setns"), "ERRNO(1)");
  assert.equal(f("reboot"), "ERRNO(1)");
  assert.equal(f("kexec_load"), "ERRNO(1)");
  assert.equal(f("clone3"), "ERRNO(38)");
  assert.equal(f("mseal"), "ERRNO(38)"); // newer than anything the profile names
  // clone: namespace flags refused, thread/fork flags fine
  assert.equal(f("clone", [0x3d0f00]), "ALLOW"); // pthread_create's flags
  assert.equal(f("clone", [0x01200011]), "ALLOW"); // fork()
  assert.equal(f("clone", [0x10000000 | 0x11]), "ERRNO(1)"); // CLONE_NEWUSER
  assert.equal(f("clone", [0x20000000]), "ERRNO(1)"); // CLONE_NEWPID
  // personality: only the listed personas; socket: anything but AF_VSOCK
  assert.equal(f("personality", [0]), "ALLOW");
  assert.equal(f("personality", [0xffffffff]), "ALLOW");
  assert.equal(f("personality", [0x0040000]), "ERRNO(1)");
  assert.equal(f("socket", [2]), "ALLOW");
  assert.equal(f("socket", [40]), "ERRNO(1)");
  assert.equal(f("ptrace"), "ALLOW"); // minKernel 4.8 (kernel version not given: assumed current)
  assert.equal(filter(dockerDefaultProfile([], { arch: "x86_64", kernelVersion: "4.4.0" }))("ptrace"), "ERRNO(1)");

  const admin = filter(dockerDefaultProfile(["CAP_SYS_ADMIN"], { arch: "x86_64" }));
  assert.equal(admin("mount"), "ALLOW");
  assert.equal(admin("unshare"), "ALLOW");
  assert.equal(admin("clone3"), "ALLOW");
  assert.equal(admin("clone", [0x10000000]), "ALLOW");

  const caps = filter(dockerDefaultProfile(["SYS_PTRACE", "sys_time", "CAP_SYS_CHROOT"], { arch: "x86_64" }));
  assert.equal(caps("kcmp"), "ALLOW");
  assert.equal(caps("settimeofday"), "ALLOW");
  assert.equal(caps("chroot"), "ALLOW");
  assert.equal(caps("mount"), "ERRNO(1)");

  const arm = dockerDefaultProfile([], { arch: "aarch64" });
  assert.deepEqual(arm.architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
  const a = filter(arm, "aarch64");
  assert.equal(a("openat"), "ALLOW");
  assert.equal(a("mount"), "ERRNO(1)");
  assert.equal(a("clone3"), "ERRNO(38)");
  assert.ok(!arm.syscalls!.some((s) => s.names.includes("arch_prctl")));
});

test("disassembler renders every instruction", () => {
  const { program } = compileSeccomp(dockerDefaultProfile([], { arch: "x86_64" }), { arch: "x86_64" });
  const text = disassemble(program);
  assert.equal(text.split("\n").length, program.length / 8);
  assert.ok(!text.includes("???"));
});

test("compileSeccompCached: the same program as compileSeccomp, remembered per profile and arch", () => {
  const caps = ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"];
  const docker = dockerDefaultProfile(caps, { arch: "x86_64" });
  const first = compileSeccompCached(docker, { arch: "x86_64" });
  assert.deepEqual(first, compileSeccomp(docker, { arch: "x86_64" }));
  // A profile built afresh with the same content is the same entry.
  assert.equal(compileSeccompCached(dockerDefaultProfile(caps, { arch: "x86_64" }), { arch: "x86_64" }), first);
  const admin = dockerDefaultProfile([...caps, "CAP_SYS_ADMIN"], { arch: "x86_64" });
  assert.deepEqual(compileSeccompCached(admin, { arch: "x86_64" }), compileSeccomp(admin, { arch: "x86_64" }));
  assert.notDeepEqual(compileSeccompCached(admin, { arch: "x86_64" }).program, first.program);
  assert.notEqual(compileSeccompCached(docker, { arch: "aarch64" }), first);
  // Invalid profiles still throw every time (nothing is remembered for them).
  const bad = { defaultAction: "SCMP_ACT_NOPE" } as unknown as Seccomp;
  assert.throws(() => compileSeccompCached(bad, { arch: "x86_64" }), BerthError);
  assert.throws(() => compileSeccompCached(bad, { arch: "x86_64" }), BerthError);
});
