// A data root is one root however it is typed: relative, with ./ or a trailing slash, or absolute, it
// names the same default bridge, nftables table and autostarted daemon.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { autostartPlace } from "../../src/cli/client.js";
import { networkContext } from "../../src/network/index.js";

test("relative and absolute spellings of a data root share the bridge, table and daemon", () => {
  const abs = join(process.cwd(), "dcor");
  const a = networkContext({ dataRoot: abs });
  for (const typed of ["dcor", "./dcor/", `${abs}/`, `${abs}/../dcor`]) {
    const c = networkContext({ dataRoot: typed });
    assert.equal(c.dataRoot, abs, typed);
    assert.equal(c.defaultBridge, a.defaultBridge, typed);
    assert.equal(c.nftTable, a.nftTable, typed);
    assert.deepEqual(autostartPlace(typed), autostartPlace(abs), typed);
  }
  assert.equal(autostartPlace(abs).dataRoot, abs);
  assert.notEqual(networkContext({ dataRoot: "/tmp/other" }).defaultBridge, a.defaultBridge);
  // The default root keeps its plain names.
  assert.equal(networkContext({ dataRoot: "/var/lib/berth/" }).defaultBridge, "berth0");
});
