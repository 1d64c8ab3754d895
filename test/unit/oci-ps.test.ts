import { test } from "node:test";
import assert from "node:assert/strict";
import { filterPsOutput } from "../../src/cli/oci-ps.js";
import { BerthError } from "../../src/errors.js";

test("filterPsOutput keeps ps's header and the container's rows, found by the PID column, as runc ps", () => {
  const ef = [
    "UID          PID    PPID  C STIME TTY          TIME CMD",
    "root           1       0  0 07:00 ?        00:00:01 /sbin/init",
    "root         812       1  0 07:01 ?        00:00:00 sleep 100",
    "root        8120       1  0 07:01 ?        00:00:00 sleep 812",
    "",
  ].join("\n");
  assert.equal(filterPsOutput(ef, [812]), "UID          PID    PPID  C STIME TTY          TIME CMD\nroot         812       1  0 07:01 ?        00:00:00 sleep 100\n");
  // Another layout (ps -o comm,pid): the PID column is wherever the header says.
  assert.equal(filterPsOutput("COMMAND     PID\nsleep       812\ninit          1\n", [1]), "COMMAND     PID\ninit          1\n");
  assert.equal(filterPsOutput(ef, []), "UID          PID    PPID  C STIME TTY          TIME CMD\n");
  assert.throws(() => filterPsOutput("COMMAND\nsleep\n", [1]), (e: unknown) => e instanceof BerthError && e.exitCode === 1 && /couldn't find PID field/.test(e.message));
});
