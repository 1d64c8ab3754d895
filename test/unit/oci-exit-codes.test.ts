// berth-oci's exit codes and console-socket rules against runc 1.1's: 1 for a failure, 255 when exec fails
// before its process runs, and runc's checkTerminal matrix for --console-socket.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXEC_FAILED, execUser, main } from "../../src/cli/berth-oci.js";
import { consoleFlagsError, unappliedLsmWarnings } from "../../src/runtime/oci-runtime.js";

test("--console-socket: only a detached process with a terminal takes one, and it must have one (runc's checkTerminal)", () => {
  const S = "/run/console.sock";
  // [terminal, detached, socket] -> refused? (runc 1.1.5: create/run/exec with each mix)
  const matrix: [boolean, boolean, string | undefined, "ok" | "needs socket" | "socket unused"][] = [
    [true, true, S, "ok"],
    [true, true, undefined, "needs socket"],
    [true, false, S, "socket unused"],
    [true, false, undefined, "ok"],
    [false, true, S, "socket unused"],
    [false, true, undefined, "ok"],
    [false, false, S, "socket unused"],
    [false, false, undefined, "ok"],
  ];
  for (const [terminal, detached, consoleSocket, want] of matrix) {
    const err = consoleFlagsError({ terminal, detached, consoleSocket });
    const got = err === undefined ? "ok" : /needs --console-socket/.test(err) ? "needs socket" : /^--console-socket is only for/.test(err) ? "socket unused" : err;
    assert.equal(got, want, JSON.stringify({ terminal, detached, consoleSocket }));
    if (err) assert.doesNotMatch(err, /\n/);
  }
});

test("exec -u/-g: whole numbers; a gid left out keeps the process's; -g adds to its groups (as runc)", () => {
  const base = { uid: 0, gid: 42, additionalGids: [10] };
  assert.deepEqual(execUser(base, undefined, []), { uid: 0, gid: 42, additionalGids: [10] });
  assert.deepEqual(execUser(base, "1000", []), { uid: 1000, gid: 42, additionalGids: [10] });
  assert.deepEqual(execUser(base, "1000:5", [7]), { uid: 1000, gid: 5, additionalGids: [10, 7] });
  assert.deepEqual(execUser(undefined, "0:0", []), { uid: 0, gid: 0, additionalGids: [] });
  for (const bad of ["nobody", "1000:", ":5", "1000:5:6", "-1", "1.5", "4294967296"]) {
    assert.throws(() => execUser(base, bad, []), /^BerthError: invalid --user (uid|gid) "/, bad);
  }
});

test("exit codes: exec failing before its process runs is 255; every other failure, usage errors included, is 1", async () => {
  const root = mkdtempSync(join(tmpdir(), "berth-oci-codes-"));
  const stderrWrite = process.stderr.write;
  let said = "";
  process.stderr.write = ((chunk: string) => { said += chunk; return true; }) as typeof process.stderr.write;
  try {
    const code = (...args: string[]) => main(["--root", root, ...args]);
    assert.equal(await code("exec", "nosuch", "true"), EXEC_FAILED);
    assert.equal(EXEC_FAILED, 255);
    assert.equal(await code("exec", "--process", join(root, "missing.json"), "nosuch"), 255);
    assert.equal(await code("exec", "-g", "x", "nosuch", "true"), 1, "a bad flag value is a usage error, as runc's flag parser");
    assert.equal(await code("exec"), 1, "no id");
    for (const verb of ["state", "start", "kill", "delete", "pause", "resume"]) assert.equal(await code(verb, "nosuch"), 1, verb);
    assert.equal(await code("create", "--bundle", join(root, "no-such-bundle"), "c1"), 1);
    assert.match(said, /container "nosuch" does not exist/);
  } finally {
    process.stderr.write = stderrWrite;
    rmSync(root, { recursive: true, force: true });
  }
});

test("an AppArmor profile or SELinux label the host has no LSM for is named in a warning (create and exec alike)", () => {
  const proc = { args: ["true"], cwd: "/", user: { uid: 0, gid: 0 }, apparmorProfile: "x", selinuxLabel: "system_u:system_r:svirt_lxc_net_t:s0" };
  assert.deepEqual(unappliedLsmWarnings(proc, { apparmor: false, selinux: false }), [
    'process.apparmorProfile "x" is not applied: AppArmor is not enabled on this host',
    'process.selinuxLabel "system_u:system_r:svirt_lxc_net_t:s0" is not applied: SELinux is not enabled on this host',
  ]);
  assert.deepEqual(unappliedLsmWarnings(proc, { apparmor: true, selinux: false }).length, 1);
  assert.deepEqual(unappliedLsmWarnings({ args: ["true"], cwd: "/", user: { uid: 0, gid: 0 } }, { apparmor: false, selinux: false }), []);
  assert.deepEqual(unappliedLsmWarnings(undefined, { apparmor: false, selinux: false }), []);
});
