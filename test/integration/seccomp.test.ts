// Loads compiled filters into the real kernel through a tiny C loader and checks what programs
// see. Needs root (for unshare comparisons) and a C compiler; skipped otherwise.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Seccomp } from "../../src/oci/spec.js";
import { compileSeccomp, dockerDefaultProfile, syscallNumber } from "../../src/seccomp/index.js";

const fixtures = resolve(dirname(fileURLToPath(import.meta.url)), "../../../test/fixtures/seccomp");
const hostArch = process.arch === "arm64" ? "aarch64" : "x86_64";
const scmpHost = hostArch === "aarch64" ? "SCMP_ARCH_AARCH64" : "SCMP_ARCH_X86_64";
const cc = spawnSync("cc", ["--version"]).status === 0;
const skip = process.getuid?.() !== 0 ? "needs root" : !cc ? "needs a C compiler (cc)" : false;

// docker's default capability set (no CAP_SYS_ADMIN)
const DOCKER_CAPS = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];

let dir = "";
let loader = "";
let probe = "";
let seq = 0;

before(() => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "berth-seccomp-"));
  loader = join(dir, "load-filter");
  probe = join(dir, "probe");
  for (const [src, out] of [["load-filter.c", loader], ["probe.c", probe]]) {
    const r = spawnSync("cc", ["-O1", "-o", out, join(fixtures, src)], { encoding: "utf8" });
    assert.equal(r.status, 0, `cc ${src}: ${r.stderr}`);
  }
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function run(profile: Seccomp | null, cmd: string[]) {
  if (profile === null) return spawnSync(cmd[0], cmd.slice(1), { encoding: "utf8" });
  const { program, flags } = compileSeccomp(profile, { arch: hostArch });
  const file = join(dir, `prog-${seq++}.bpf`);
  writeFileSync(file, program);
  const r = spawnSync(loader, [file, String(flags), ...cmd], { encoding: "utf8" });
  assert.notEqual(r.status, 125, `loader failed: ${r.stderr}`);
  return r;
}

/** Runs one raw syscall in a filtered process; returns "ret=R errno=E". */
function syscall(profile: Seccomp | null, name: string, ...args: (number | bigint)[]): string {
  const nr = syscallNumber(name, scmpHost);
  assert.ok(nr !== undefined, name);
  const r = run(profile, [probe, String(nr), ...args.map((a) => `0x${a.toString(16)}`)]);
  assert.equal(r.status, 0, `probe ${name}: ${r.stderr} signal=${r.signal}`);
  return r.stdout.trim();
}

const denyMkdir: Seccomp = {
  defaultAction: "SCMP_ACT_ALLOW",
  syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO" }],
};

test("a profile denying mkdir: mkdir gets EPERM, other programs run", { skip }, () => {
  const target = join(dir, "made-by-mkdir");
  const r = run(denyMkdir, ["mkdir", target]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /Operation not permitted/);
  assert.equal(existsSync(target), false);
  assert.equal(run(denyMkdir, ["true"]).status, 0);
  // the same mkdir works without the filter
  assert.equal(run(null, ["mkdir", target]).status, 0);
});

test("errno values and KILL_PROCESS reach the process", { skip }, () => {
  const profile: Seccomp = {
    defaultAction: "SCMP_ACT_ALLOW",
    syscalls: [
      { names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 28 },
      { names: ["getppid"], action: "SCMP_ACT_KILL_PROCESS" },
    ],
  };
  const r = run(profile, ["mkdir", join(dir, "nospace")]);
  assert.match(r.stderr, /No space left on device/);
  const k = run(profile, [probe, String(syscallNumber("getppid", scmpHost))]);
  assert.equal(k.signal, "SIGSYS");
});

test("64-bit argument comparisons in the kernel (high word)", { skip }, () => {
  // getppid ignores its arguments, but seccomp sees the full registers.
  const profile: Seccomp = {
    defaultAction: "SCMP_ACT_ALLOW",
    flags: ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
    syscalls: [
      { names: ["getppid"], action: "SCMP_ACT_ERRNO", errnoRet: 77, args: [{ index: 0, value: 0xffffffff, op: "SCMP_CMP_GT" }] },
      {
        names: ["getppid"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: 78,
        args: [{ index: 2, value: 0xf0, valueTwo: 0x30, op: "SCMP_CMP_MASKED_EQ" }],
      },
    ],
  };
  assert.equal(syscall(profile, "getppid", 0x100000000n), "ret=-1 errno=77");
  assert.equal(syscall(profile, "getppid", 0xffffffffn, 0, 0x37), "ret=-1 errno=78");
  assert.match(syscall(profile, "getppid", 0xffffffffn, 0, 0x47), /^ret=\d+ errno=0$/);
});

test("docker default profile: ls works, unshare of a user namespace is refused", { skip }, () => {
  const profile = dockerDefaultProfile(DOCKER_CAPS, { arch: hostArch });
  const ls = run(profile, ["/bin/ls", "/"]);
  assert.equal(ls.status, 0, ls.stderr);
  assert.match(ls.stdout, /\bproc\b/);
  const sh = run(profile, ["/bin/sh", "-c", "echo a | cat; ls / >/dev/null && echo ok"]);
  assert.equal(sh.status, 0, sh.stderr);
  assert.match(sh.stdout, /ok/);

  const unshare = run(profile, ["unshare", "-U", "true"]);
  assert.notEqual(unshare.status, 0);
  assert.match(unshare.stderr, /Operation not permitted/);
  // personality: only the listed personas
  assert.match(syscall(profile, "personality", 0xffffffff), /errno=0$/);
  assert.equal(syscall(profile, "personality", 0x40000), "ret=-1 errno=1");

  // with CAP_SYS_ADMIN the same profile family lets unshare through (when the host allows it)
  if (run(null, ["unshare", "-U", "true"]).status === 0) {
    const admin = dockerDefaultProfile([...DOCKER_CAPS, "CAP_SYS_ADMIN"], { arch: hostArch });
    const ok = run(admin, ["unshare", "-U", "true"]);
    assert.equal(ok.status, 0, ok.stderr);
  }
});

test("clone3 and new syscalls get ENOSYS, so libc falls back", { skip }, () => {
  const profile = dockerDefaultProfile(DOCKER_CAPS, { arch: hostArch });
  // clone3(NULL, 0) is EINVAL from the kernel; under the filter it never gets there.
  assert.equal(syscall(null, "clone3", 0, 0), "ret=-1 errno=22");
  assert.equal(syscall(profile, "clone3", 0, 0), "ret=-1 errno=38");
  assert.equal(syscall(profile, "mseal", 0, 0, 0), "ret=-1 errno=38");
  // threads and posix_spawn still work (glibc tries clone3 first): node starts several threads
  const r = run(profile, [process.execPath, "-e", "require('child_process').execFileSync('true'); console.log('done')"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /done/);
});
