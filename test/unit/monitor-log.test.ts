// The daemon's side of the container monitor, without root: the json-file log reader (rotated files,
// since/until/tail/timestamps, following across rotation and truncation), the exit file, and the attach
// socket's framing against a fake monitor. Fixtures: test/fixtures/monitor-log/ (container.log, .1, .2).
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, renameSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  type AttachChunk,
  attach,
  type LogEntry,
  logFiles,
  monitorAlive,
  parseLogLine,
  parseLogTime,
  readExitFile,
  readLog,
  type ReadLogOptions,
} from "../../src/runtime/monitor.js";
import { planContainer, type PlanContext } from "../../src/core/container-plan.js";
import { describeFailure } from "../../src/core/plan-errors.js";
import { encodePlan, OpCode, PlanFlag } from "../../src/core/plan.js";
import { buildRunSpec } from "../../src/core/run-spec.js";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const FIXTURE = join(REPO, "test/fixtures/monitor-log/container.log");

async function all(path: string, opts: ReadLogOptions = {}): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for await (const e of readLog(path, opts)) out.push(e);
  return out;
}

const line = (log: string, stream = "stdout", time = new Date().toISOString()) => JSON.stringify({ log, stream, time }) + "\n";

describe("json-file log times and lines", () => {
  test("parseLogTime keeps nanoseconds, any number of fraction digits, and offsets", () => {
    assert.equal(parseLogTime("2026-11-29T03:00:00Z"), 1795921200n * 1_000_000_000n);
    assert.equal(parseLogTime("2026-11-29T03:00:00.000000001Z"), 1795921200n * 1_000_000_000n + 1n);
    assert.equal(parseLogTime("2026-11-29T03:00:00.5Z"), 1795921200n * 1_000_000_000n + 500_000_000n);
    assert.equal(parseLogTime("2026-11-29T04:00:00+01:00"), parseLogTime("2026-11-29T03:00:00Z"));
    assert.equal(parseLogTime("yesterday"), undefined);
    assert.equal(parseLogTime("2026-11-29T03:00:00.1234567891Z"), undefined);
  });

  test("parseLogLine: docker's fields; anything else is not an entry", () => {
    const e = parseLogLine('{"log":"hi\\n","stream":"stderr","time":"2026-11-29T03:00:00.25Z"}', true);
    assert.equal(e?.stream, "stderr");
    assert.equal(e?.log, "hi\n");
    assert.equal(e?.text, "2026-11-29T03:00:00.25Z hi\n");
    assert.equal(parseLogLine('{"log":"hi\\n","stream":"stdout","time":"2026-11-29T03:00:00Z"}')?.text, "hi\n");
    assert.equal(parseLogLine("not json"), undefined);
    assert.equal(parseLogLine('{"log":"x"}'), undefined);
    assert.equal(parseLogLine('{"log":"x","stream":"stdout","time":"noon"}'), undefined);
  });
});

describe("readLog over rotated files", () => {
  test("reads log.2, log.1, log in that order; skips broken lines and a last line still being written", async () => {
    const entries = await all(FIXTURE);
    assert.deepEqual(entries.map((e) => e.log), ["first\n", "oops <err>\n", "second\n", "a long line spl", "it in two\n", "héllo\tworld\n", "last\n"]);
    assert.deepEqual(entries.map((e) => e.stream), ["stdout", "stderr", "stdout", "stdout", "stdout", "stdout", "stderr"]);
    assert.equal(entries.map((e) => e.text).join(""), "first\noops <err>\nsecond\na long line split in two\nhéllo\tworld\nlast\n");
  });

  test("tail counts across files", async () => {
    assert.deepEqual((await all(FIXTURE, { tail: 3 })).map((e) => e.log), ["it in two\n", "héllo\tworld\n", "last\n"]);
    assert.deepEqual(await all(FIXTURE, { tail: 0 }), []);
    assert.equal((await all(FIXTURE, { tail: 100 })).length, 7);
  });

  test("since and until are inclusive and take RFC 3339, Dates and unix seconds", async () => {
    const logs = async (o: ReadLogOptions) => (await all(FIXTURE, o)).map((e) => e.log);
    assert.deepEqual(await logs({ since: "2026-11-29T03:00:03.123456790Z" }), ["it in two\n", "héllo\tworld\n", "last\n"]);
    assert.deepEqual(await logs({ until: "2026-11-29T03:00:01Z" }), ["first\n", "oops <err>\n"]);
    assert.deepEqual(await logs({ since: new Date("2026-11-29T03:00:04Z"), until: "1795921205" }), ["héllo\tworld\n", "last\n"]);
    assert.deepEqual(await logs({ since: 1795921202.5, until: 1795921202.5 }), ["second\n"]);
    await assert.rejects(logs({ since: "last tuesday" }), /invalid since time/);
  });

  test("timestamps prefix each entry with its time", async () => {
    const [first] = await all(FIXTURE, { timestamps: true, tail: 1 });
    assert.equal(first.text, "2026-11-29T04:00:05+01:00 last\n");
  });

  test("a missing log is empty; logFiles lists what to remove", async () => {
    const dir = mkdtempSync(join(tmpdir(), "berth-log-"));
    try {
      assert.deepEqual(await all(join(dir, "nothing.log")), []);
      assert.deepEqual(logFiles(FIXTURE).map((f) => f.slice(f.lastIndexOf("/") + 1)), ["container.log.2", "container.log.1", "container.log"]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe("readLog follow", () => {
  const dirs: string[] = [];
  after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
  const tempLog = () => {
    const dir = mkdtempSync(join(tmpdir(), "berth-log-"));
    dirs.push(dir);
    return join(dir, "container.log");
  };
  /** What the monitor does: log.(n-2) -> log.(n-1), ..., log -> log.1, then a new log. */
  const rotate = (path: string, maxFiles: number) => {
    for (let k = maxFiles - 1; k >= 1; k--) {
      try { renameSync(k === 1 ? path : `${path}.${k - 1}`, `${path}.${k}`); } catch { /* not there yet */ }
    }
    writeFileSync(path, "");
  };
  const tick = () => new Promise((r) => setTimeout(r, 30));

  test("follows new lines and rotations, also several between two looks, and stops when told", async () => {
    const path = tempLog();
    writeFileSync(path, line("0\n"));
    let stop = false;
    const got: string[] = [];
    const reader = (async () => {
      for await (const e of readLog(path, { follow: true, pollMs: 5, stopWhen: () => stop })) got.push(e.log.trim());
    })();
    await tick();
    appendFileSync(path, line("1\n"));
    await tick();
    // A partial line is held back until its newline arrives.
    const l2 = line("2\n");
    appendFileSync(path, l2.slice(0, 10));
    await tick();
    appendFileSync(path, l2.slice(10) + line("3\n"));
    rotate(path, 10);
    appendFileSync(path, line("4\n"));
    // three rotations in a row, no time for the reader in between
    rotate(path, 10);
    appendFileSync(path, line("5\n"));
    rotate(path, 10);
    appendFileSync(path, line("6\n"));
    rotate(path, 10);
    await tick();
    appendFileSync(path, line("7\n"));
    stop = true;
    await reader;
    assert.deepEqual(got, ["0", "1", "2", "3", "4", "5", "6", "7"]);
  });

  test("max-file 1: the file truncated in place is read again from its start", async () => {
    const path = tempLog();
    writeFileSync(path, line("a-rather-long-first-line\n") + line("b-another-long-line\n"));
    const ac = new AbortController();
    const got: string[] = [];
    const reader = (async () => {
      for await (const e of readLog(path, { follow: true, pollMs: 5, signal: ac.signal })) got.push(e.log.trim());
    })();
    await tick();
    truncateSync(path, 0);
    appendFileSync(path, line("c\n"));
    await tick();
    ac.abort();
    await reader;
    assert.deepEqual(got, ["a-rather-long-first-line", "b-another-long-line", "c"]);
  });

  test("follow with tail starts after the last N entries; a log that appears later is picked up", async () => {
    const path = tempLog();
    let stop = false;
    const got: string[] = [];
    const reader = (async () => {
      for await (const e of readLog(path, { follow: true, tail: 0, pollMs: 5, stopWhen: () => stop })) got.push(e.log.trim());
    })();
    await tick();
    writeFileSync(path, line("late\n"));
    await tick();
    stop = true;
    await reader;
    assert.deepEqual(got, ["late"]);
  });
});

describe("exit file, liveness", () => {
  test("readExitFile: undefined while running, then the record", () => {
    const dir = mkdtempSync(join(tmpdir(), "berth-exit-"));
    try {
      const path = join(dir, "exit.json");
      assert.equal(readExitFile(path), undefined);
      writeFileSync(path, '{"exitCode":137,"signal":9,"oomKilled":false,"finishedAt":"2026-11-29T03:04:05.123456789Z"}\n');
      assert.deepEqual(readExitFile(path), { exitCode: 137, signal: 9, oomKilled: false, finishedAt: "2026-11-29T03:04:05.123456789Z" });
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test("monitorAlive: only a living process named berth-monitor", () => {
    assert.equal(monitorAlive(process.pid), false); // named node
    assert.equal(monitorAlive(2 ** 22 + 1), false);
  });
});

describe("attach framing", () => {
  test("frames from the monitor become chunks, however the bytes are cut; ours are framed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "berth-attach-"));
    const sock = join(dir, "attach.sock");
    const received: Buffer[] = [];
    let peer!: Socket;
    const connected = new Promise<void>((res) => {
      const server = createServer((s) => {
        peer = s;
        s.on("data", (d: Buffer) => received.push(d));
        server.close();
        res();
      });
      server.listen(sock);
    });
    await new Promise((r) => setTimeout(r, 20));
    const a = await attach(sock);
    await connected;
    const chunks: AttachChunk[] = [];
    a.output.on("data", (c: AttachChunk) => chunks.push(c));
    const ended = new Promise((r) => a.output.on("end", r));
    const frame = (type: number, data: string) => {
      const head = Buffer.alloc(8);
      head[0] = type;
      head.writeUInt32BE(Buffer.byteLength(data), 4);
      return Buffer.concat([head, Buffer.from(data)]);
    };
    const bytes = Buffer.concat([frame(1, "out\n"), frame(2, "err\n"), frame(1, "")]);
    for (let i = 0; i < bytes.length; i += 3) peer.write(bytes.subarray(i, i + 3));
    a.write("in");
    a.resize(24, 80);
    a.closeStdin();
    await new Promise((r) => setTimeout(r, 50));
    peer.end();
    await ended;
    assert.deepEqual(chunks.map((c) => [c.stream, c.data.toString()]), [["stdout", "out\n"], ["stderr", "err\n"], ["stdout", ""]]);
    assert.deepEqual(
      Buffer.concat(received),
      Buffer.concat([
        Buffer.from([0, 0, 0, 0, 0, 0, 0, 2]), Buffer.from("in"),
        Buffer.from([2, 0, 0, 0, 0, 0, 0, 4, 0, 24, 0, 80]),
        Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]),
      ]),
    );
    a.close();
    rmSync(dir, { recursive: true });
  });
});

describe("the monitor in the plan", () => {
  const spec = (tty = false) =>
    buildRunSpec({ rootfs: "/images/host", command: ["sh"], tty }, { id: "0123456789abcdef", runtimeCapabilities: [] });
  const ctx = (over: Partial<PlanContext> = {}): PlanContext => ({
    rootfs: "/run/berth/c1/rootfs",
    host: { lastCap: 40 },
    isDirectory: () => true,
    monitor: { logPath: "/d/container.log", logMaxSize: 1000, logMaxFiles: 3, exitFile: "/d/exit.json", attachSocket: "/d/attach.sock", stdin: true },
    ...over,
  });

  test("the monitor op comes first (host paths, before any setns) and sets the Monitor flag, never KillOnControlEof", () => {
    const plan = planContainer(spec(), ctx());
    assert.deepEqual(plan.ops[0], { op: "monitor", logPath: "/d/container.log", logMaxSize: 1000, logMaxFiles: 3, exitFile: "/d/exit.json", attachSocket: "/d/attach.sock", stdin: true });
    assert.equal(plan.flags & PlanFlag.Monitor, PlanFlag.Monitor);
    assert.equal(plan.flags & PlanFlag.KillOnControlEof, 0);
    assert.equal(plan.ops.filter((o) => o.op === "monitor").length, 1);
  });

  test("defaults: no log rotation, one file, no stdin, no socket", () => {
    const plan = planContainer(spec(), ctx({ monitor: { exitFile: "/d/exit.json" } }));
    assert.deepEqual(plan.ops[0], { op: "monitor", logPath: "", logMaxSize: 0, logMaxFiles: 1, exitFile: "/d/exit.json", attachSocket: "", stdin: false });
  });

  test("a monitored container can't detach or die with its controller; a terminal needs the proxy console", () => {
    assert.throws(() => planContainer(spec(), ctx({ detach: true })), /monitored container/);
    assert.throws(() => planContainer(spec(), ctx({ dieWithController: true })), /monitored container/);
    assert.throws(() => planContainer(spec(true), ctx({ console: { mode: "socket", socketPath: "/s" } })), /proxy mode/);
    assert.throws(() => planContainer(spec(), ctx({ monitor: { exitFile: "/e", logMaxFiles: 0 } })), /max-file/);
    const tty = planContainer(spec(true), ctx({ console: { mode: "proxy" } }));
    assert.equal(tty.flags & (PlanFlag.Monitor | PlanFlag.TtyProxy), PlanFlag.Monitor | PlanFlag.TtyProxy);
  });

  test("encoding: op 56 with six fields in the order native/helper.c reads them", () => {
    const bytes = encodePlan({ flags: PlanFlag.Monitor, ops: [{ op: "monitor", logPath: "/l", logMaxSize: 10, logMaxFiles: 2, exitFile: "/e", attachSocket: "/a", stdin: true }] });
    let p = 20;
    assert.equal(bytes.readUInt32LE(12), 16);
    assert.equal(bytes.readUInt32LE(p), OpCode.Monitor);
    assert.equal(OpCode.Monitor, 56);
    assert.equal(bytes.readUInt32LE(p + 4), 6);
    p += 8;
    const fields: Buffer[] = [];
    for (let i = 0; i < 6; i++) {
      const len = bytes.readUInt32LE(p);
      fields.push(bytes.subarray(p + 4, p + 4 + len));
      p += 4 + len;
    }
    assert.deepEqual(fields.map((f, i) => ([0, 3, 4].includes(i) ? f.toString() : f.readBigUInt64LE())), ["/l\0", 10n, 2n, "/e\0", "/a\0", 1n]);
  });

  test("a failure names the monitor's files", () => {
    const f = describeFailure({ op: "monitor", logPath: "/l", logMaxSize: 0, logMaxFiles: 1, exitFile: "/e", attachSocket: "/a", stdin: false }, 2, "");
    assert.match(f.message, /container monitor .*\/l.*\/a.*\/e.*no such file or directory/);
  });
});

test("attach to a socket that isn't there rejects, and leaves no unhandled 'error' behind (a retrying daemon crashed on it)", async () => {
  let uncaught: unknown;
  const onUncaught = (err: unknown) => { uncaught = err; };
  process.on("uncaughtException", onUncaught);
  try {
    for (let i = 0; i < 3; i++) {
      await assert.rejects(attach(join(tmpdir(), `berth-no-such-${process.pid}.sock`)), { code: "ENOENT" });
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    process.off("uncaughtException", onUncaught);
  }
  assert.equal(uncaught, undefined);
});
