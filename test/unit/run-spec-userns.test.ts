import { test } from "node:test";
import assert from "node:assert/strict";
import { buildRunSpec } from "../../src/core/run-spec.js";

test("buildRunSpec: with --uidmap/--gidmap the user's uid and groups must be mapped; the error names the ranges", () => {
  const facts = { id: "0123456789abcdef", runtimeCapabilities: [], passwd: "u:x:2000:3000::/:/bin/sh\n", group: "g:x:3000:\n" };
  const maps = { uidMap: [{ containerID: 0, hostID: 100000, size: 1000 }, { containerID: 2000, hostID: 200000, size: 1 }], gidMap: [{ containerID: 0, hostID: 100000, size: 1000 }] };
  const run = (user: string) => buildRunSpec({ rootfs: "/r", command: ["id"], user, ...maps }, facts);
  assert.equal(run("999").process?.user.uid, 999);
  assert.throws(() => run("5000"), /^BerthError: user 5000: uid 5000 is not mapped in the user namespace \(--uidmap maps 0-999, 2000\)$/);
  assert.throws(() => run("0:1000"), /gid 1000 is not mapped in the user namespace \(--gidmap maps 0-999\)/);
  assert.throws(() => run("u"), /^BerthError: user u: gid 3000 is not mapped/);
  // Without a user namespace nothing is checked.
  assert.equal(buildRunSpec({ rootfs: "/r", command: ["id"], user: "5000" }, facts).process?.user.uid, 5000);
});
