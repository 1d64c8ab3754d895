import { test } from "node:test";
import assert from "node:assert/strict";
import { BerthError } from "../../src/errors.js";
import {
  ALL_CAPABILITIES,
  applyCapChanges,
  capabilityMask,
  capabilityName,
  capabilityNames,
  capabilityNumber,
  DOCKER_DEFAULT_CAPABILITIES,
  LAST_CAP,
  normalizeCapName,
} from "../../src/core/capabilities.js";
import {
  DOCKER_ULIMITS,
  parseUlimit,
  RLIM_INFINITY,
  RLIM_INFINITY_NUMBER,
  rlimitNumber,
  RLIMITS,
  rlimitValue,
  ulimitType,
} from "../../src/core/rlimits.js";

function throwsBerth(fn: () => unknown, message: string, exitCode: number): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BerthError, `not a BerthError: ${String(err)}`);
    assert.equal(err.message, message);
    assert.equal(err.exitCode, exitCode);
    return true;
  });
}

test("capability table matches the kernel numbers", () => {
  assert.equal(capabilityNumber("CAP_CHOWN"), 0);
  assert.equal(capabilityNumber("CAP_DAC_READ_SEARCH"), 2);
  assert.equal(capabilityNumber("CAP_NET_BIND_SERVICE"), 10);
  assert.equal(capabilityNumber("CAP_NET_ADMIN"), 12);
  assert.equal(capabilityNumber("CAP_SYS_ADMIN"), 21);
  assert.equal(capabilityNumber("CAP_MKNOD"), 27);
  assert.equal(capabilityNumber("CAP_AUDIT_WRITE"), 29);
  assert.equal(capabilityNumber("CAP_SETFCAP"), 31);
  assert.equal(capabilityNumber("CAP_AUDIT_READ"), 37);
  assert.equal(capabilityNumber("CAP_PERFMON"), 38);
  assert.equal(capabilityNumber("CAP_BPF"), 39);
  assert.equal(capabilityNumber("CAP_CHECKPOINT_RESTORE"), 40);
  assert.equal(LAST_CAP, 40);
  assert.equal(ALL_CAPABILITIES.length, 41);
  ALL_CAPABILITIES.forEach((name, n) => {
    assert.equal(capabilityNumber(name), n);
    assert.equal(capabilityName(n), name);
  });
});

test("capabilityNumber: unknown names, wrong case and prototype keys are undefined", () => {
  assert.equal(capabilityNumber("CAP_TEST"), undefined);
  assert.equal(capabilityNumber("cap_chown"), undefined);
  assert.equal(capabilityNumber("CHOWN"), undefined);
  assert.equal(capabilityNumber("toString"), undefined);
  assert.equal(capabilityNumber("__proto__"), undefined);
});

test("capabilityMask sets one bit per capability", () => {
  assert.equal(capabilityMask([], "x"), 0n);
  assert.equal(capabilityMask(["CAP_CHOWN", "CAP_KILL"], "x"), 0b100001n);
  assert.equal(capabilityMask(["CAP_CHECKPOINT_RESTORE"], "x"), 1n << 40n);
  assert.equal(capabilityMask(["CAP_KILL", "CAP_KILL"], "x"), 1n << 5n);
  assert.equal(capabilityMask([...ALL_CAPABILITIES], "x"), (1n << 41n) - 1n);
  assert.deepEqual(capabilityNames(capabilityMask(["CAP_SYS_ADMIN", "CAP_CHOWN"], "x")), ["CAP_CHOWN", "CAP_SYS_ADMIN"]);
});

test("capabilityMask names the JSON path and index of an unknown capability", () => {
  throwsBerth(
    () => capabilityMask(["CAP_CHOWN", "CAP_KILL", "CAP_TEST"], "process.capabilities.bounding"),
    'process.capabilities.bounding[2]: unknown capability "CAP_TEST"',
    1,
  );
  throwsBerth(() => capabilityMask(["net_admin"], "process.capabilities.ambient"), 'process.capabilities.ambient[0]: unknown capability "net_admin"', 1);
});

test("docker's default capability set", () => {
  assert.deepEqual(DOCKER_DEFAULT_CAPABILITIES, [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
  ]);
  for (const c of DOCKER_DEFAULT_CAPABILITIES) assert.notEqual(capabilityNumber(c), undefined);
});

test("normalizeCapName accepts docker's spellings", () => {
  assert.equal(normalizeCapName("net_admin"), "CAP_NET_ADMIN");
  assert.equal(normalizeCapName("NET_ADMIN"), "CAP_NET_ADMIN");
  assert.equal(normalizeCapName("CAP_NET_ADMIN"), "CAP_NET_ADMIN");
  assert.equal(normalizeCapName("cap_sys_admin"), "CAP_SYS_ADMIN");
  assert.equal(normalizeCapName("all"), "ALL");
  assert.equal(normalizeCapName("ALL"), "ALL");
  throwsBerth(() => normalizeCapName("foo"), 'unknown capability: "CAP_FOO"', 125);
  throwsBerth(() => normalizeCapName("CAP_ALL"), 'unknown capability: "CAP_ALL"', 125);
});

test("applyCapChanges: no flags keeps the base set", () => {
  assert.deepEqual(applyCapChanges(DOCKER_DEFAULT_CAPABILITIES, [], []), [...DOCKER_DEFAULT_CAPABILITIES]);
});

test("applyCapChanges: drop then add", () => {
  const caps = applyCapChanges(DOCKER_DEFAULT_CAPABILITIES, ["net_admin"], ["CHOWN", "cap_kill"]);
  assert.ok(caps.includes("CAP_NET_ADMIN"));
  assert.ok(!caps.includes("CAP_CHOWN"));
  assert.ok(!caps.includes("CAP_KILL"));
  assert.equal(caps.length, DOCKER_DEFAULT_CAPABILITIES.length - 2 + 1);
  assert.equal(caps[caps.length - 1], "CAP_NET_ADMIN");
});

test("applyCapChanges: adding one already present does not duplicate it", () => {
  const caps = applyCapChanges(DOCKER_DEFAULT_CAPABILITIES, ["CHOWN"], []);
  assert.deepEqual(caps, [...DOCKER_DEFAULT_CAPABILITIES]);
});

test("applyCapChanges: --cap-add ALL gives everything except what is dropped", () => {
  const caps = applyCapChanges(DOCKER_DEFAULT_CAPABILITIES, ["ALL"], ["sys_admin"]);
  assert.equal(caps.length, ALL_CAPABILITIES.length - 1);
  assert.ok(!caps.includes("CAP_SYS_ADMIN"));
  assert.deepEqual(applyCapChanges([], ["all"], []), [...ALL_CAPABILITIES]);
  // The host's set can be smaller than Berth's table.
  assert.deepEqual(applyCapChanges([], ["ALL"], ["CAP_CHOWN"], ["CAP_CHOWN", "CAP_KILL"]), ["CAP_KILL"]);
});

test("applyCapChanges: --cap-drop ALL keeps only what is added", () => {
  assert.deepEqual(applyCapChanges(DOCKER_DEFAULT_CAPABILITIES, ["chown", "NET_BIND_SERVICE"], ["ALL"]), [
    "CAP_CHOWN",
    "CAP_NET_BIND_SERVICE",
  ]);
  assert.deepEqual(applyCapChanges(DOCKER_DEFAULT_CAPABILITIES, [], ["all"]), []);
  // ALL in both: add wins, as in docker.
  assert.deepEqual(applyCapChanges([], ["ALL"], ["ALL"]), [...ALL_CAPABILITIES]);
});

test("applyCapChanges rejects unknown names", () => {
  throwsBerth(() => applyCapChanges(DOCKER_DEFAULT_CAPABILITIES, ["bogus"], []), 'unknown capability: "CAP_BOGUS"', 125);
  throwsBerth(() => applyCapChanges(DOCKER_DEFAULT_CAPABILITIES, [], ["CAP_NOPE"]), 'unknown capability: "CAP_NOPE"', 125);
});

// ---- rlimits ---------------------------------------------------------------------------------------

test("rlimit numbers (Linux x86_64 / aarch64)", () => {
  assert.equal(rlimitNumber("RLIMIT_CPU"), 0);
  assert.equal(rlimitNumber("RLIMIT_CORE"), 4);
  assert.equal(rlimitNumber("RLIMIT_NPROC"), 6);
  assert.equal(rlimitNumber("RLIMIT_NOFILE"), 7);
  assert.equal(rlimitNumber("RLIMIT_MEMLOCK"), 8);
  assert.equal(rlimitNumber("RLIMIT_AS"), 9);
  assert.equal(rlimitNumber("RLIMIT_RTTIME"), 15);
  assert.equal(rlimitNumber("RLIMIT_NOPE"), undefined);
  assert.equal(rlimitNumber("constructor"), undefined);
  assert.deepEqual(Object.values(RLIMITS).sort((a, b) => a - b), [...Array(16).keys()]);
});

test("docker ulimit names map to rlimit types", () => {
  assert.equal(ulimitType("nofile"), "RLIMIT_NOFILE");
  assert.equal(ulimitType("nproc"), "RLIMIT_NPROC");
  assert.equal(ulimitType("core"), "RLIMIT_CORE");
  assert.equal(ulimitType("rttime"), "RLIMIT_RTTIME");
  assert.equal(ulimitType("as"), undefined);
  assert.equal(ulimitType("NOFILE"), undefined);
  for (const type of Object.values(DOCKER_ULIMITS)) assert.notEqual(rlimitNumber(type), undefined);
  assert.equal(Object.keys(DOCKER_ULIMITS).length, 15);
});

test("rlimitValue: RLIM_INFINITY survives JSON's double rounding", () => {
  assert.equal(rlimitValue(1024), 1024n);
  assert.equal(rlimitValue(0), 0n);
  assert.equal(rlimitValue(JSON.parse("18446744073709551615") as number), RLIM_INFINITY);
  assert.equal(rlimitValue(-1), RLIM_INFINITY);
  assert.equal(RLIM_INFINITY, 0xffffffffffffffffn);
});

test("parseUlimit", () => {
  assert.deepEqual(parseUlimit("nofile=1024:2048"), { type: "RLIMIT_NOFILE", soft: 1024, hard: 2048 });
  assert.deepEqual(parseUlimit("nproc=100"), { type: "RLIMIT_NPROC", soft: 100, hard: 100 });
  assert.deepEqual(parseUlimit("core=-1"), { type: "RLIMIT_CORE", soft: RLIM_INFINITY_NUMBER, hard: RLIM_INFINITY_NUMBER });
  assert.deepEqual(parseUlimit("memlock=64:-1"), { type: "RLIMIT_MEMLOCK", soft: 64, hard: RLIM_INFINITY_NUMBER });
  throwsBerth(() => parseUlimit("nofile"), "invalid ulimit argument: nofile", 125);
  throwsBerth(() => parseUlimit("as=1"), "invalid ulimit type: as", 125);
  throwsBerth(() => parseUlimit("nofile=2048:1024"), "ulimit soft limit must be less than or equal to hard limit: 2048 > 1024", 125);
  throwsBerth(() => parseUlimit("nofile=-1:1024"), "ulimit soft limit must be less than or equal to hard limit: -1 > 1024", 125);
  throwsBerth(() => parseUlimit("nofile=1:2:3"), "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`", 125);
  throwsBerth(() => parseUlimit("nofile=abc"), 'invalid ulimit value "abc" in nofile=abc', 125);
  throwsBerth(() => parseUlimit("nofile=-5"), 'invalid ulimit value "-5" in nofile=-5', 125);
});
