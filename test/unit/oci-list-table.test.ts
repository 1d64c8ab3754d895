import { test } from "node:test";
import assert from "node:assert/strict";
import { table } from "../../src/cli/berth-oci.js";

test("berth-oci list's table is laid out as runc's (tabwriter: minwidth 12, padding 3, last column unpadded)", () => {
  const head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
  // Both taken from runc 1.1.5's output.
  assert.equal(table([head]), "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n");
  assert.equal(table([head, ["c-18542", "26557", "created", "/tmp/me/b1", "2026-11-29T07:11:17.427986002Z", "root"]]),
    "ID          PID         STATUS      BUNDLE       CREATED                          OWNER\n" +
    "c-18542     26557       created     /tmp/me/b1   2026-11-29T07:11:17.427986002Z   root\n");
});
