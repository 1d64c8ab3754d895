import { test } from "node:test";
import assert from "node:assert/strict";
import { mergeEnv, parseEnvFile } from "../../src/util/envfile.js";
import { BerthError } from "../../src/errors.js";

test("parseEnvFile follows docker's --env-file rules", () => {
  const text = [
    "\uFEFF# a comment",
    "",
    "   ",
    "A=1",
    "  B=two words  ",
    'C="quoted"',
    "D=",
    "E=x=y",
    "FROM_HOST",
    "NOT_ON_HOST",
    "\t# indented comment",
    "F=crlf\r",
    "",
  ].join("\n");
  assert.deepEqual(parseEnvFile(text, "app.env", { FROM_HOST: "hostvalue" }), [
    "A=1",
    "B=two words  ",
    'C="quoted"',
    "D=",
    "E=x=y",
    "FROM_HOST=hostvalue",
    "F=crlf",
  ]);
});

test("parseEnvFile reads bare keys from process.env by default", () => {
  process.env.BERTH_ENVFILE_TEST = "from-process";
  try {
    assert.deepEqual(parseEnvFile("BERTH_ENVFILE_TEST\n", "x.env"), ["BERTH_ENVFILE_TEST=from-process"]);
  } finally {
    delete process.env.BERTH_ENVFILE_TEST;
  }
});

test("parseEnvFile names file:line for whitespace in keys and empty keys", () => {
  assert.throws(
    () => parseEnvFile("A=1\nBAD KEY=2\n", "app.env", {}),
    (err: unknown) => err instanceof BerthError && err.message.includes("app.env:2") && err.message.includes('"BAD KEY"'),
  );
  assert.throws(() => parseEnvFile("OK=1\n\nKEY \n", "app.env", {}), /app\.env:3/);
  assert.throws(() => parseEnvFile("=value\n", "app.env", {}), /app\.env:1: no variable name/);
});

test("mergeEnv: later wins by key, order of first appearance is kept", () => {
  assert.deepEqual(
    mergeEnv(["PATH=/bin", "HOME=/root", "A=1"], ["A=2", "NEW=x", "PATH=/usr/bin", "A=3"]),
    ["PATH=/usr/bin", "HOME=/root", "A=3", "NEW=x"],
  );
  assert.deepEqual(mergeEnv([], ["X"]), ["X"]);
  assert.deepEqual(mergeEnv(["X=1"], []), ["X=1"]);
});
