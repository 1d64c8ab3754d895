import { test } from "node:test";
import assert from "node:assert/strict";
import { failureCode } from "../../src/cli/berth.js";

test("failureCode: 125 for run and create (and no command), 1 for the other commands, as docker's CLI", () => {
  assert.equal(failureCode(["run", "--rm", "busybox", "true"]), 125);
  assert.equal(failureCode(["-H", "unix:///x.sock", "create", "busybox"]), 125);
  assert.equal(failureCode(["container", "create", "busybox"]), 125);
  assert.equal(failureCode([]), 125);
  assert.equal(failureCode(["logs", "nosuch"]), 1);
  assert.equal(failureCode(["--host", "unix:///x.sock", "rmi", "busybox"]), 1);
  assert.equal(failureCode(["image", "inspect", "nosuch"]), 1);
  assert.equal(failureCode(["exec", "web", "run"]), 1);
});
