// Owners and file capabilities of layers made for a user namespace (src/images/idmap.ts).

import assert from "node:assert/strict";
import { test } from "node:test";
import { hostIdOf, idmapKey, shiftFileCapability } from "../../src/images/idmap.js";

const MAP = [{ containerID: 0, hostID: 100000, size: 1000 }, { containerID: 1000, hostID: 300000, size: 10 }];

test("hostIdOf: each range shifts its own ids; ids outside every range are not mapped", () => {
  assert.equal(hostIdOf(MAP, 0), 100000);
  assert.equal(hostIdOf(MAP, 999), 100999);
  assert.equal(hostIdOf(MAP, 1000), 300000);
  assert.equal(hostIdOf(MAP, 1009), 300009);
  assert.equal(hostIdOf(MAP, 1010), undefined);
  assert.equal(hostIdOf([], 0), undefined);
});

test("idmapKey: stable per mapping pair, different for different mappings (uid vs gid too)", () => {
  const a = [{ containerID: 0, hostID: 100000, size: 65536 }];
  const b = [{ containerID: 0, hostID: 200000, size: 65536 }];
  assert.match(idmapKey(a, a), /^[0-9a-f]{16}$/);
  assert.equal(idmapKey(a, a), idmapKey([{ ...a[0] }], [{ ...a[0] }]));
  assert.notEqual(idmapKey(a, a), idmapKey(b, b));
  assert.notEqual(idmapKey(a, b), idmapKey(b, a));
});

test("shiftFileCapability: v2 becomes v3 naming the namespace's root; v3 root ids are shifted; others untouched", () => {
  const v2 = Buffer.from("0100000200200000000000000000000000000000", "hex"); // effective flag, cap_net_raw
  const shift = { uidMap: MAP, gidMap: MAP };
  const v3 = Buffer.from(shiftFileCapability(v2, shift));
  assert.equal(v3.toString("hex"), "0100000300200000000000000000000000000000a0860100");
  const v3in = Buffer.from(v3);
  v3in.writeUInt32LE(5, 20);
  assert.equal(Buffer.from(shiftFileCapability(v3in, shift)).readUInt32LE(20), 100005);
  v3in.writeUInt32LE(5000, 20); // a root id the mapping does not cover: left for the kernel to refuse
  assert.equal(Buffer.from(shiftFileCapability(v3in, shift)).readUInt32LE(20), 5000);
  const junk = Buffer.from("00010203", "hex");
  assert.equal(shiftFileCapability(junk, shift), junk);
});
