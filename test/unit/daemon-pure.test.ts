// Pure parts of the engine: API request parsing and validation, filters, format templates, restart
// back-off, log options and json-file reading, stream framing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { containerMatches, type FilterableContainer, parseFilters, validateContainerFilters } from "../../src/daemon/filters.js";
import { BACKOFF_MAX_MS, nextBackoff, parseRestartPolicy, shouldRestart, validateRestartPolicy } from "../../src/daemon/restart.js";
import { JsonLogWriter, parseLogOpts, readLog, selectEntries, splitLines, type LogEntry } from "../../src/daemon/jsonlog.js";
import { humanDuration, KeyedMutex, parseNanoTime, parseSignalArg, parseTimeArg, EngineError, readJsonLinked, sweepJsonLinked, writeJsonLinked } from "../../src/daemon/util.js";
import { apiPorts, listCommand, parseBind, tmpfsOptions, defaultHostConfig } from "../../src/daemon/engine.js";
import { healthCommand } from "../../src/daemon/health.js";
import { eventMatches, EventBus } from "../../src/daemon/events.js";
import { compareVersions, Demuxer, frame, splitVersion } from "../../src/api/stream.js";
import { boolParam, parseJsonBody, validateCreateBody, validateExecBody } from "../../src/api/validate.js";
import { displayablePorts, formatRows, PS_HEADERS, psRow, renderTemplate, tabulate } from "../../src/cli/format.js";
import { createBody, parseDuration, parseMount, type EngineRunFlags } from "../../src/cli/engine.js";

const status = (fn: () => unknown) => {
  try { fn(); } catch (err) { return (err as EngineError).status; }
  return 0;
};

test("filters: both JSON forms, validation and matching", () => {
  assert.deepEqual(parseFilters('{"status":["running"],"label":{"a=b":true}}'), { status: ["running"], label: ["a=b"] });
  assert.deepEqual(parseFilters(""), {});
  assert.equal(status(() => parseFilters("{nope")), 400);
  assert.equal(status(() => validateContainerFilters({ bogus: ["x"] })), 400);
  assert.equal(status(() => validateContainerFilters({ status: ["sleeping"] })), 400);
  const c: FilterableContainer = { id: "abc123", name: "web", labels: { app: "x", tier: "1" }, status: "running", exitCode: 0, image: "host", imageId: "sha256:ff", health: "healthy", volumes: ["v1", "/data"], networks: ["bridge", "b1d9e"], ports: [{ PrivatePort: 80, PublicPort: 18080, Type: "tcp" }, { PrivatePort: 90, Type: "tcp" }], created: 10 };
  const other = { ...c, id: "def", name: "db", created: 5 };
  const find = (r: string) => (r === "db" ? other : undefined);
  assert.ok(containerMatches(c, { name: ["we"], label: ["app=x", "tier"], status: ["running", "exited"] }, find));
  assert.ok(!containerMatches(c, { label: ["app=y"] }, find));
  assert.ok(containerMatches(c, { id: ["abc"], health: ["healthy"], volume: ["v1"], ancestor: ["host"], since: ["db"] }, find));
  assert.ok(!containerMatches(c, { before: ["db"] }, find));
  assert.ok(!containerMatches(c, { exited: ["0"] }, find));
  // network: by name or id, of every network it is attached to.
  assert.ok(containerMatches(c, { network: ["bridge"] }, find));
  assert.ok(containerMatches(c, { network: ["b1d9e"] }, find));
  assert.ok(!containerMatches(c, { network: ["default"] }, find));
  // publish: the host port; expose: the container's (ranges, /proto with tcp as default).
  assert.ok(containerMatches(c, { publish: ["18080"] }, find));
  assert.ok(!containerMatches(c, { publish: ["80"] }, find));
  assert.ok(!containerMatches(c, { publish: ["18080/udp"] }, find));
  assert.ok(containerMatches(c, { publish: ["18000-18090/tcp"] }, find));
  assert.ok(containerMatches(c, { expose: ["80"] }, find));
  assert.ok(containerMatches(c, { expose: ["85-95"] }, find));
  assert.ok(!containerMatches(c, { expose: ["18080"] }, find));
  assert.equal(status(() => validateContainerFilters({ publish: ["http"] })), 400);
});

test("restart policies: parsing, validation, decisions and docker's back-off", () => {
  assert.deepEqual(parseRestartPolicy("on-failure:3"), { Name: "on-failure", MaximumRetryCount: 3 });
  assert.deepEqual(parseRestartPolicy("always"), { Name: "always", MaximumRetryCount: 0 });
  assert.throws(() => parseRestartPolicy("always:3"), /maximum retry count cannot be used/);
  assert.throws(() => parseRestartPolicy("sometimes"), /invalid restart policy/);
  assert.throws(() => validateRestartPolicy({ Name: "always" }, true), /both --restart and --rm/);
  const d = (name: string, exitCode: number, manuallyStopped = false, restartCount = 0, max = 0) =>
    shouldRestart({ policy: { Name: name as "always", MaximumRetryCount: max }, exitCode, manuallyStopped, restartCount });
  assert.equal(d("no", 1), false);
  assert.equal(d("always", 0), true);
  assert.equal(d("always", 0, true), false);
  assert.equal(d("unless-stopped", 3), true);
  assert.equal(d("on-failure", 0), false);
  assert.equal(d("on-failure", 1, false, 1, 2), true);
  assert.equal(d("on-failure", 1, false, 2, 2), false);
  assert.equal(nextBackoff(0, 0), 100);
  assert.equal(nextBackoff(100, 50), 200);
  assert.equal(nextBackoff(400, 50), 800);
  assert.equal(nextBackoff(800, 10_000), 100);
  assert.equal(nextBackoff(BACKOFF_MAX_MS, 1), BACKOFF_MAX_MS);
});

test("log options, line splitting and selection (tail, since, until, streams)", () => {
  assert.deepEqual(parseLogOpts({ "max-size": "10k", "max-file": "3" }), { maxSize: 10240, maxFile: 3 });
  assert.deepEqual(parseLogOpts({ "max-size": "1m" }), { maxSize: 1048576 });
  assert.throws(() => parseLogOpts({ "max-size": "lots" }), /max-size/);
  assert.throws(() => parseLogOpts({ "max-file": "2" }), /without max-size/);
  assert.throws(() => parseLogOpts({ colour: "red" }), /unknown log opt/);
  assert.deepEqual(splitLines("par", "tial\nnext\nrest"), { lines: ["partial\n", "next\n"], rest: "rest" });
  const e = (log: string, stream: "stdout" | "stderr", time: string): LogEntry => ({ log, stream, time });
  const all = [e("a\n", "stdout", "2024-01-01T00:00:01.000000001Z"), e("b\n", "stderr", "2024-01-01T00:00:02.5Z"), e("c\n", "stdout", "2024-01-01T00:00:03Z")];
  assert.deepEqual(selectEntries(all, { tail: 2 }).map((x) => x.log), ["b\n", "c\n"]);
  assert.deepEqual(selectEntries(all, { tail: 0 }), []);
  assert.deepEqual(selectEntries(all, { stderr: false }).map((x) => x.log), ["a\n", "c\n"]);
  assert.deepEqual(selectEntries(all, { since: Date.parse("2024-01-01T00:00:02Z"), until: Date.parse("2024-01-01T00:00:02.9Z") }).map((x) => x.log), ["b\n"]);
  assert.ok(parseNanoTime("2024-01-01T00:00:01.000000001Z") > parseNanoTime("2024-01-01T00:00:01Z"));
});

test("json-file writer rotates by max-size/max-file and the reader reads across rotated files", async () => {
  const dir = mkdtempSync(join(tmpdir(), "berth-jsonlog-"));
  try {
    const path = join(dir, "c-json.log");
    const w = new JsonLogWriter(path, { maxSize: 300, maxFile: 3 });
    for (let i = 0; i < 20; i++) w.write(i % 2 ? "stderr" : "stdout", `line ${i}\n`);
    w.write("stdout", "partial");
    w.close();
    assert.deepEqual(readdirSync(dir).sort(), ["c-json.log", "c-json.log.1", "c-json.log.2"]);
    for (const l of readFileSync(path, "utf8").trim().split("\n")) {
      const v = JSON.parse(l) as LogEntry;
      assert.match(v.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
      assert.ok(v.stream === "stdout" || v.stream === "stderr");
    }
    const got: string[] = [];
    await readLog(path, {}, (x) => got.push(x.log), () => true);
    assert.equal(got[got.length - 1], "partial");
    assert.equal(got[got.length - 2], "line 19\n");
    // Kept files only: the oldest lines were rotated away, the rest are in order.
    const nums = got.slice(0, -1).map((l) => Number(l.split(" ")[1]));
    assert.deepEqual(nums, [...nums].sort((a, b) => a - b));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("util: time arguments, durations, signals, per-key mutex", async () => {
  assert.equal(parseTimeArg("1700000000"), 1_700_000_000_000);
  assert.equal(parseTimeArg("1700000000.5"), 1_700_000_000_500);
  assert.equal(parseTimeArg("10m", 1_000_000), 1_000_000 - 600_000);
  assert.equal(parseTimeArg("2024-01-01T00:00:00Z"), Date.parse("2024-01-01T00:00:00Z"));
  assert.equal(status(() => parseTimeArg("yesterday")), 400);
  assert.equal(humanDuration(500), "Less than a second");
  assert.equal(humanDuration(5_000), "5 seconds");
  assert.equal(humanDuration(60_000), "About a minute");
  assert.equal(humanDuration(3 * 3600_000), "3 hours");
  assert.equal(parseSignalArg("TERM"), 15);
  assert.equal(parseSignalArg("SIGUSR1"), 10);
  assert.equal(parseSignalArg("9"), 9);
  assert.equal(parseSignalArg(undefined), 9);
  assert.equal(status(() => parseSignalArg("NOPE")), 400);
  const m = new KeyedMutex();
  const order: string[] = [];
  const slow = m.run("a", async () => { await new Promise((r) => setTimeout(r, 30)); order.push("a1"); });
  const failing = m.run("a", async () => { order.push("a2"); throw new Error("x"); });
  const after = m.run("a", async () => { order.push("a3"); });
  const other = m.run("b", async () => { order.push("b1"); });
  await Promise.all([slow, failing.catch(() => undefined), after, other]);
  assert.deepEqual(order, ["b1", "a1", "a2", "a3"]);
});

test("binds, tmpfs options, host config defaults, health commands", () => {
  assert.deepEqual(parseBind("/h:/c:ro"), { source: "/h", target: "/c", readOnly: true, named: false });
  assert.deepEqual(parseBind("vol:/c"), { source: "vol", target: "/c", readOnly: false, named: true });
  assert.deepEqual(parseBind("/h:/c:ro,rslave"), { source: "/h", target: "/c", readOnly: true, named: false, propagation: "rslave" });
  assert.equal(status(() => parseBind("/h:rel")), 400);
  assert.equal(status(() => parseBind("/h:/c:xx")), 400);
  assert.deepEqual(tmpfsOptions("size=1m,exec"), ["nosuid", "nodev", "size=1m"]);
  assert.equal(status(() => tmpfsOptions("bogus")), 400);
  const h = defaultHostConfig({});
  assert.equal(h.NetworkMode, "default");
  assert.deepEqual(h.RestartPolicy, { Name: "no", MaximumRetryCount: 0 });
  assert.equal(h.LogConfig.Type, "json-file");
  assert.deepEqual(healthCommand(["CMD-SHELL", "test -f /x"]), ["/bin/sh", "-c", "test -f /x"]);
  assert.deepEqual(healthCommand(["CMD", "true"]), ["true"]);
  assert.equal(healthCommand(["NONE"]), undefined);
});

test("events: filters by type, action, container name and label", () => {
  const bus = new EventBus();
  const a = bus.publish("container", "start", "abc", { name: "web", image: "host", app: "x" });
  const b = bus.publish("container", "health_status: healthy", "abc", { name: "web", image: "host" });
  const v = bus.publish("volume", "create", "v1", { driver: "local" });
  assert.ok(b.timeNano > a.timeNano);
  assert.ok(eventMatches(a, { type: ["container"], container: ["web"], label: ["app=x"] }));
  assert.ok(eventMatches(b, { event: ["health_status"] }));
  assert.ok(!eventMatches(v, { type: ["container"] }));
  assert.equal(bus.history(0).length, 3);
  assert.equal(a.status, "start");
});

test("API: version prefix, negotiation order, stream frames, body validation naming the field", () => {
  assert.deepEqual(splitVersion("/v1.43/containers/json"), { version: "1.43", path: "/containers/json" });
  assert.deepEqual(splitVersion("/_ping"), { path: "/_ping" });
  assert.ok(compareVersions("1.9", "1.41") < 0);
  assert.ok(compareVersions("1.43", "1.41") > 0);
  const f = frame(2, Buffer.from("oops"));
  assert.deepEqual([...f.subarray(0, 8)], [2, 0, 0, 0, 0, 0, 0, 4]);
  const got: [number, string][] = [];
  const d = new Demuxer((s, p) => got.push([s, p.toString()]));
  const both = Buffer.concat([frame(1, Buffer.from("out")), f]);
  d.push(both.subarray(0, 5));
  d.push(both.subarray(5));
  assert.deepEqual(got, [[1, "out"], [2, "oops"]]);
  assert.equal(status(() => parseJsonBody("{not json")), 400);
  assert.equal(status(() => parseJsonBody("[1]")), 400);
  assert.throws(() => validateCreateBody({ Image: "x", Env: "A=1" }), /Config\.Env of type \[\]string/);
  assert.throws(() => validateCreateBody({ Image: "x", HostConfig: { Memory: "lots" } }), /HostConfig\.Memory/);
  assert.throws(() => validateCreateBody({ Image: 5 }), /Config\.Image of type string/);
  assert.throws(() => validateCreateBody({ Image: "x", HostConfig: { RestartPolicy: { Name: 1 } } }), /RestartPolicy\.Name/);
  assert.throws(() => validateExecBody({ Cmd: "ls" }), /ExecConfig\.Cmd/);
  validateCreateBody({ Image: "x", Cmd: ["a"], Labels: { a: "b" }, HostConfig: { Binds: ["/a:/b"], Mounts: [{ Type: "tmpfs", Target: "/t" }] } });
  assert.equal(boolParam("1"), true);
  assert.equal(boolParam("True"), true);
  assert.equal(boolParam("0"), false);
  assert.equal(boolParam(null, true), true);
});

test("CLI formatting: templates, table headers, tabwriter columns, ps rows", () => {
  assert.equal(renderTemplate("{{.Name}} {{.State.Status}} {{json .Labels}}", { Name: "/a", State: { Status: "running" }, Labels: { x: "1" } }), '/a running {"x":"1"}');
  assert.equal(renderTemplate("{{index .Labels \"x\"}}|{{len .List}}|{{upper .S}}", { Labels: { x: "1" }, List: [1, 2], S: "ab" }), "1|2|AB");
  assert.equal(renderTemplate("{{.Missing}}", {}), "<no value>");
  assert.throws(() => renderTemplate("{{range .X}}", {}), /unsupported/);
  assert.equal(tabulate([["A", "BB"], ["longer value", "x"]]), "A              BB\nlonger value   x\n");
  const row = psRow({ Id: "0123456789abcdef", Image: "host", Command: "sh -c echo a long command line", Created: 100, Status: "Up 1 second", State: "running", Names: ["/web"], Labels: { a: "b" } }, { now: 105_000 });
  assert.equal(row.ID, "0123456789ab");
  assert.equal(row.Command, '"sh -c echo a long c…"');
  assert.equal(row.RunningFor, "5 seconds ago");
  assert.equal(row.Names, "web");
  assert.equal(formatRows("{{.Names}}\t{{.Status}}", [row], PS_HEADERS), "web\tUp 1 second\n");
  assert.equal(formatRows("table {{.Names}}\t{{.State}}", [row], PS_HEADERS), "NAMES     STATE\nweb       running\n");
  // --format json: a line per row, keys sorted, values as text (docker's CLI); labels' map is not a key.
  const json = JSON.parse(formatRows("json", [row], PS_HEADERS)) as Record<string, string>;
  assert.equal(json.Names, "web");
  assert.equal(json.State, "running");
  assert.deepEqual(Object.keys(json), Object.keys(json).sort());
  assert.ok(Object.values(json).every((v) => typeof v === "string"));
  // "table" alone: the headers' columns.
  assert.equal(formatRows("table", [{ A: "1", B: "2" }], { A: "AA", B: "BB" }), "AA        BB\n1         2\n");
});

test("CLI run flags -> create body: durations, mounts, volumes, health, restart, resources", () => {
  assert.equal(parseDuration("1m30s", "--x"), 90e9);
  assert.equal(parseDuration("250ms", "--x"), 250e6);
  assert.throws(() => parseDuration("soon", "--health-interval"), /--health-interval/);
  assert.deepEqual(parseMount("type=bind,source=/a,target=/b,readonly"), { Type: "bind", Source: "/a", Target: "/b", ReadOnly: true });
  assert.deepEqual(parseMount("type=tmpfs,target=/t,tmpfs-size=1m"), { Type: "tmpfs", Target: "/t", TmpfsOptions: { SizeBytes: 1048576 } });
  assert.throws(() => parseMount("type=bind,source=/a"), /target is required/);
  assert.throws(() => parseMount("type=nfs,target=/a"), /type must be/);
  assert.deepEqual(parseMount("type=volume,src=v,dst=/d,volume-nocopy,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=1m,volume-label=a=b"), {
    Type: "volume", Source: "v", Target: "/d",
    VolumeOptions: { NoCopy: true, Labels: { a: "b" }, DriverConfig: { Options: { type: "tmpfs", device: "tmpfs", o: "size=1m" } } },
  });
  const f: EngineRunFlags = {
    env: ["A=1"], envFile: [], network: "none", capAdd: [], capDrop: [], volume: ["/anon", "vol:/data:ro"], mount: [], tmpfs: ["/scratch:size=1m"],
    label: ["k=v"], securityOpt: [], logOpt: ["max-size=1m"], restart: "on-failure:2", healthCmd: "true", healthInterval: "1s", memory: "64m", cpus: "0.5",
    interactive: true, detach: true, init: true,
  };
  type Body = { Cmd: string[]; Env: string[]; Volumes: object; Labels: object; OpenStdin: boolean; AttachStdin: boolean; Healthcheck: { Test: string[]; Interval: number }; HostConfig: Record<string, unknown> };
  const b = createBody("host", ["sh"], f) as unknown as Body;
  assert.deepEqual(b.Cmd, ["sh"]);
  assert.deepEqual(b.Env, ["A=1"]);
  assert.deepEqual(b.Volumes, { "/anon": {} });
  assert.deepEqual(b.Labels, { k: "v" });
  assert.deepEqual(b.Healthcheck.Test, ["CMD-SHELL", "true"]);
  assert.equal(b.Healthcheck.Interval, 1e9);
  assert.equal(b.OpenStdin, true);
  assert.equal(b.AttachStdin, false);
  assert.deepEqual(b.HostConfig.Binds, ["vol:/data:ro"]);
  assert.deepEqual(b.HostConfig.Tmpfs, { "/scratch": "size=1m" });
  assert.deepEqual(b.HostConfig.RestartPolicy, { Name: "on-failure", MaximumRetryCount: 2 });
  assert.equal(b.HostConfig.Memory, 64 * 1024 * 1024);
  assert.equal(b.HostConfig.NanoCpus, 5e8);
  assert.equal(b.HostConfig.Init, true);
  assert.deepEqual(b.HostConfig.LogConfig, { Type: "json-file", Config: { "max-size": "1m" } });
  assert.throws(() => createBody("host", [], { ...f, restart: "maybe" }), /invalid restart policy/);
});

test("ps PORTS: the API's list from NetworkSettings.Ports and docker's column with ranges", () => {
  const api = apiPorts({
    "80/tcp": [{ HostIp: "127.0.0.1", HostPort: "8080" }],
    "53/udp": null,
    "8000/tcp": [{ HostIp: "0.0.0.0", HostPort: "8000" }, { HostIp: "::", HostPort: "8000" }],
    "8001/tcp": [{ HostIp: "0.0.0.0", HostPort: "8001" }, { HostIp: "::", HostPort: "8001" }],
    "8003/tcp": [{ HostIp: "", HostPort: "8003" }],
  });
  assert.deepEqual(api.slice(0, 2), [
    { IP: "127.0.0.1", PrivatePort: 80, PublicPort: 8080, Type: "tcp" },
    { PrivatePort: 53, Type: "udp" },
  ]);
  assert.equal(api.at(-1)?.IP, "0.0.0.0", "an empty HostIp is every address");
  assert.equal(displayablePorts(api),
    // The 8000-8001 run on 0.0.0.0 closes at the gap before 8003, so it comes first, as in docker's output.
    "0.0.0.0:8000-8001->8000-8001/tcp, 53/udp, 0.0.0.0:8003->8003/tcp, [::]:8000-8001->8000-8001/tcp, 127.0.0.1:8080->80/tcp");
  assert.equal(displayablePorts([{ PrivatePort: 80, Type: "tcp" }, { PrivatePort: 81, Type: "tcp" }, { PrivatePort: 90, Type: "tcp" }]), "80-81/tcp, 90/tcp");
  assert.equal(displayablePorts([]), "");
  assert.equal(psRow({ Id: "x", Created: 0, Ports: api.slice(0, 1) }).Ports, "127.0.0.1:8080->80/tcp");
});

test("listCommand: arguments with a space are single-quoted, as dockerd's container list shows them", () => {
  assert.equal(listCommand("sh", ["-c", "while true; do sleep 1; done"]), "sh -c 'while true; do sleep 1; done'");
  assert.equal(listCommand("sleep", ["60"]), "sleep 60");
  assert.equal(listCommand("top", []), "top");
});

test("records: writeJsonLinked keeps one readable version; readJsonLinked falls back to the newest readable one", () => {
  const dir = mkdtempSync(join(tmpdir(), "berth-linked-"));
  try {
    const path = join(dir, "config.json");
    writeJsonLinked(path, { n: 1 });
    writeJsonLinked(path, { n: 2 });
    assert.deepEqual(readJsonLinked(path), { n: 2 });
    // What a power cut can leave: the link points at a version whose data never reached the disk,
    // while an older version is still there.
    const current = readlinkSync(path);
    writeFileSync(join(dir, "config.json.00000000000a"), JSON.stringify({ n: 1 }));
    writeFileSync(join(dir, current), "");
    assert.deepEqual(readJsonLinked(path), { n: 1 });
    assert.equal(readlinkSync(path), "config.json.00000000000a", "the link is pointed at the version used");
    sweepJsonLinked(path);
    assert.deepEqual(readdirSync(dir).sort(), ["config.json", "config.json.00000000000a"]);
    writeFileSync(join(dir, "config.json.00000000000a"), "{");
    assert.equal(readJsonLinked(path), undefined, "nothing readable: undefined");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
