import { test } from "node:test";
import assert from "node:assert/strict";
import { buildRunSpec } from "../../src/core/run-spec.js";

test("buildRunSpec checks --cpuset-cpus against the host's CPUs, with docker's message (daemon and CLI alike)", () => {
  const facts = { id: "0123456789abcdef", runtimeCapabilities: [], cpuCount: 2 };
  const spec = buildRunSpec({ rootfs: "/r", command: ["true"], cpusetCpus: "0-1" }, facts);
  assert.equal(spec.linux?.resources?.cpu?.cpus, "0-1");
  assert.throws(() => buildRunSpec({ rootfs: "/r", command: ["true"], cpusetCpus: "7" }, facts),
    /^BerthError: Requested CPUs are not available - requested 7, available: 0-1$/);
  assert.throws(() => buildRunSpec({ rootfs: "/r", command: ["true"], cpusetCpus: "0-1,5" }, facts),
    /requested 0-1,5, available: 0-1$/);
  assert.throws(() => buildRunSpec({ rootfs: "/r", command: ["true"], cpusetCpus: "1" }, { ...facts, cpuCount: 1 }), /available: 0$/);
  assert.throws(() => buildRunSpec({ rootfs: "/r", command: ["true"], cpusetCpus: "x" }, facts), /--cpuset-cpus/);
});
