import { test } from "node:test";
import assert from "node:assert/strict";
import { containerRunAlias, failureCode } from "../../src/cli/berth.js";

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

test("eventTime: nine exact fraction digits from the raw timeNano, as docker events prints them", async () => {
  const { eventTime } = await import("../../src/cli/engine.js");
  assert.equal(eventTime('{"Type":"container","timeNano":1764400000050000000}', 0), "2025-11-29T07:06:40.050000000Z");
  assert.equal(eventTime('{"timeNano":1764400000000001024,"x":1}', 0), "2025-11-29T07:06:40.000001024Z");
});

test("ps --format {{.Label \"key\"}}: the value, or nothing, as docker ps; not in {{json .}}", async () => {
  const { psRow, renderTemplate } = await import("../../src/cli/format.js");
  const row = psRow({ Id: "a".repeat(64), Created: 0, Labels: { tier: "web" } });
  assert.equal(renderTemplate('{{.Label "tier"}}|{{.Label "none"}}', row), "web|");
  assert.doesNotMatch(renderTemplate("{{json .}}", row), /tier":"web/);
});

test("containerRunAlias: `container run` is `run`, global options kept; nothing else changes", () => {
  assert.deepEqual(containerRunAlias(["container", "run", "--rm", "host", "true"]), ["run", "--rm", "host", "true"]);
  assert.deepEqual(containerRunAlias(["-H", "unix:///x.sock", "container", "run", "host"]), ["-H", "unix:///x.sock", "run", "host"]);
  assert.deepEqual(containerRunAlias(["container", "ls"]), ["container", "ls"]);
  assert.deepEqual(containerRunAlias(["run", "host", "container", "run"]), ["run", "host", "container", "run"]);
  assert.deepEqual(containerRunAlias(["--data-root", "container", "ps"]), ["--data-root", "container", "ps"]);
});
