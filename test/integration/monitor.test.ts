// The container monitor (native/monitor.c) end to end, as root: containers started through
// launchContainer with monitor options log into docker's json-file format, rotate, serve attach, survive
// their controller being SIGKILLed, write the exit file, and the idle monitor stays under 1 MiB RSS.
// Every test removes its containers, cgroups and dirs.
//
// Run with BERTH_MONITOR_CONTROLLER=<json> this file is instead the "daemon" of one container: it starts
// it with a monitor, prints {pid, monitorPid, cgroup} and waits to be killed.
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type CgroupPlan, destroyCgroup } from "../../src/cgroups/index.js";
import { buildRunSpec } from "../../src/core/run-spec.js";
import type { MonitorOptions } from "../../src/core/container-plan.js";
import { ensureHostImage } from "../../src/rootfs/host-image.js";
import { newContainerId } from "../../src/runtime/container.js";
import type { HelperRun } from "../../src/runtime/helper.js";
import { readHostFacts } from "../../src/runtime/host-facts.js";
import { launchContainer } from "../../src/runtime/launch.js";
import { type AttachChunk, attach, monitorAlive, monitorPaths, readExitFile, readLog } from "../../src/runtime/monitor.js";
import { alive, isRoot, waitFor } from "../helpers/berth.js";

const ROOT = "/run/berth-monitor-test";
const DATA_ROOT = "/var/lib/berth";
const RFC3339NANO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

interface Started {
  id: string;
  dir: string;
  paths: ReturnType<typeof monitorPaths>;
  pid: number;
  monitorPid: number;
  cgroup: CgroupPlan;
  run?: HelperRun;
}

interface StartArgs {
  command: string[];
  tty?: boolean;
  monitor?: Partial<MonitorOptions>;
}

const read = (p: string) => { try { return readFileSync(p, "utf8"); } catch { return undefined; } };

/** A container on the host image with an overlay (as src/runtime/container.ts does), monitored. */
async function startMonitored(args: StartArgs): Promise<Started> {
  const image = await ensureHostImage(DATA_ROOT);
  const id = newContainerId();
  const dir = join(ROOT, id.slice(0, 12));
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  const upper = join(dir, "upper");
  const work = join(dir, "work");
  const rootfs = join(dir, "rootfs");
  for (const d of [upper, work, rootfs]) mkdirSync(d);
  const spec = buildRunSpec(
    { rootfs: image, command: args.command, tty: args.tty },
    { id, passwd: read(`${image}/etc/passwd`), group: read(`${image}/etc/group`), runtimeCapabilities: readHostFacts().runtimeCapabilities },
  );
  const paths = monitorPaths(dir);
  let cgroup: CgroupPlan | undefined;
  try {
    const { run, cgroup: made } = await launchContainer({
      spec,
      rootfs,
      rootfsMounts: [{ source: "overlay", fstype: "overlay", data: `lowerdir=${image},upperdir=${upper},workdir=${work}` }],
      cgroupName: `berth-${id.slice(0, 12)}`,
      onCgroup: (c) => { cgroup = c; },
      monitor: { ...paths, ...args.monitor },
    });
    return { id, dir, paths, pid: run.pid, monitorPid: run.helper.pid as number, cgroup: made, run };
  } catch (err) {
    // launchContainer removed the cgroup; what the failed monitor left is checked here.
    const left = readdirSync(dir).filter((f) => !["upper", "work", "rootfs", "container.log"].includes(f));
    rmSync(dir, { recursive: true, force: true });
    void cgroup;
    if (left.length > 0) throw new Error(`a failed start left ${left.join(", ")} (${(err as Error).message})`);
    throw err;
  }
}

function vmRssKb(pid: number): number {
  return Number(/^VmRSS:\s*(\d+)\s*kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
}

function logLines(path: string): { log: string; stream: string; time: string }[] {
  return readFileSync(path, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { log: string; stream: string; time: string });
}

async function collect(path: string, opts: Parameters<typeof readLog>[1] = {}): Promise<string> {
  let out = "";
  for await (const e of readLog(path, opts)) out += e.text;
  return out;
}

/** Reads attach output until `want` appears in the concatenated text of `stream` (or any stream). */
function outputUntil(output: NodeJS.ReadableStream, want: string | RegExp, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const t = setTimeout(() => { output.off("data", on); reject(new Error(`attach output never showed ${want}; got ${JSON.stringify(text)}`)); }, timeoutMs);
    const on = (c: AttachChunk) => {
      text += c.data.toString();
      if (typeof want === "string" ? text.includes(want) : want.test(text)) {
        clearTimeout(t);
        output.off("data", on);
        resolve(text);
      }
    };
    output.on("data", on);
  });
}

async function controller(): Promise<void> {
  const args = JSON.parse(process.env.BERTH_MONITOR_CONTROLLER as string) as StartArgs;
  const s = await startMonitored(args);
  process.stdout.write(JSON.stringify({ id: s.id, dir: s.dir, paths: s.paths, pid: s.pid, monitorPid: s.monitorPid, cgroup: s.cgroup }) + "\n");
  setInterval(() => {}, 1 << 30);
}

if (process.env.BERTH_MONITOR_CONTROLLER) {
  await controller();
} else {
  describe("container monitor", { skip: isRoot ? false : "needs root", concurrency: false }, () => {
    let started: Started[] = [];

    before(async () => {
      await ensureHostImage(DATA_ROOT);
      mkdirSync(ROOT, { recursive: true, mode: 0o711 });
    });

    afterEach(async () => {
      for (const s of started) {
        try { process.kill(s.pid, "SIGKILL"); } catch { /* gone */ }
        await waitFor("the monitor to exit", () => !monitorAlive(s.monitorPid), 10_000).catch(() => {
          try { process.kill(s.monitorPid, "SIGKILL"); } catch { /* gone */ }
        });
        await destroyCgroup(s.cgroup);
        rmSync(s.dir, { recursive: true, force: true });
        assert.ok(!existsSync(s.paths.attachSocket), "the attach socket is left");
      }
      started = [];
    });

    after(() => {
      try { if (readdirSync(ROOT).length === 0) rmSync(ROOT, { recursive: true }); } catch { /* others' */ }
    });

    const start = async (a: StartArgs) => {
      const s = await startMonitored(a);
      started.push(s);
      return s;
    };

    test("output lands in the json-file log: one valid JSON object per line, stream names, RFC 3339 nano times", async () => {
      const s = await start({ command: ["sh", "-c", "echo out1; echo 'err1 <&> \"q\"' >&2; printf 'tab\\there\\n'; printf 'é\\001'"] });
      const status = await s.run?.exited;
      assert.deepEqual(status, { exitCode: 0, signal: 0 });
      const lines = logLines(s.paths.logPath);
      for (const l of lines) {
        assert.deepEqual(Object.keys(l), ["log", "stream", "time"]);
        assert.match(l.time, RFC3339NANO);
      }
      const byStream = (st: string) => lines.filter((l) => l.stream === st).map((l) => l.log);
      assert.deepEqual(byStream("stdout"), ["out1\n", "tab\there\n", "é\u0001"]);
      assert.deepEqual(byStream("stderr"), ["err1 <&> \"q\"\n"]);
      // docker's escaping of < > & and control characters
      assert.match(readFileSync(s.paths.logPath, "utf8"), /err1 \\u003c\\u0026\\u003e \\"q\\"\\n/);
      const exit = readExitFile(s.paths.exitFile);
      assert.equal(exit?.exitCode, 0);
      assert.equal(exit?.signal, 0);
      assert.equal(exit?.oomKilled, false);
      assert.match(exit?.finishedAt ?? "", RFC3339NANO);
      await waitFor("the monitor to exit", () => !alive(s.monitorPid));
      assert.ok(!existsSync(s.paths.attachSocket), "the socket file is removed");
      // stdout and stderr are separate pipes: their relative order is not defined (as with docker).
      const entries: { stream: string; log: string }[] = [];
      for await (const e of readLog(s.paths.logPath)) entries.push({ stream: e.stream, log: e.log });
      assert.deepEqual(entries.filter((e) => e.stream === "stdout").map((e) => e.log).join(""), "out1\ntab\there\né\u0001");
      assert.deepEqual(entries.filter((e) => e.stream === "stderr").map((e) => e.log).join(""), "err1 <&> \"q\"\n");
    });

    test("the container keeps running and logging after its controller is SIGKILLed; the exit file records a later kill", async () => {
      const ctl = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
        env: { ...process.env, BERTH_MONITOR_CONTROLLER: JSON.stringify({ command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"] }) },
        stdio: ["ignore", "pipe", "inherit"],
      });
      const line = await new Promise<string>((resolve, reject) => {
        let out = "";
        ctl.stdout.setEncoding("utf8").on("data", (d: string) => {
          out += d;
          if (out.includes("\n")) resolve(out.slice(0, out.indexOf("\n")));
        });
        ctl.on("exit", (code) => reject(new Error(`controller exited ${code}`)));
      });
      const s = JSON.parse(line) as Started;
      started.push(s);
      // Not in the controller's session or process group: its terminal's signals can't reach it.
      const statOf = (pid: number) => readFileSync(`/proc/${pid}/stat`, "utf8").slice(readFileSync(`/proc/${pid}/stat`, "utf8").lastIndexOf(")") + 2).split(" ");
      const [, , pgrp, session] = statOf(s.monitorPid);
      const [, , cpgrp, csession] = statOf(ctl.pid as number);
      assert.notEqual(pgrp, cpgrp);
      assert.notEqual(session, csession);
      await waitFor("a few ticks", () => (read(s.paths.logPath)?.match(/tick/g)?.length ?? 0) >= 3);

      ctl.kill("SIGKILL");
      await new Promise((r) => ctl.once("exit", r));
      const ticksAtKill = read(s.paths.logPath)?.match(/tick/g)?.length ?? 0;
      await waitFor("more ticks after the controller died", () => (read(s.paths.logPath)?.match(/tick/g)?.length ?? 0) >= ticksAtKill + 10);
      assert.ok(alive(s.pid), "the container is alive");
      assert.ok(monitorAlive(s.monitorPid), "the monitor is alive");
      assert.equal(readExitFile(s.paths.exitFile), undefined);

      // A new "daemon" (this process) reconnects: attach sees live output, the log is readable.
      const a = await attach(s.paths.attachSocket);
      await outputUntil(a.output, /tick \d+\n.*tick \d+\n/s);
      const ended = new Promise((r) => a.output.on("end", r));
      a.output.resume();

      process.kill(s.pid, "SIGKILL");
      await waitFor("the exit file", () => readExitFile(s.paths.exitFile));
      const exit = readExitFile(s.paths.exitFile);
      assert.equal(exit?.exitCode, 137);
      assert.equal(exit?.signal, 9);
      await ended;
      await waitFor("the monitor to exit", () => !monitorAlive(s.monitorPid));
      assert.ok(!existsSync(s.paths.attachSocket));
      const logged = await collect(s.paths.logPath);
      const ticks = [...logged.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
      assert.deepEqual(ticks, ticks.map((_, i) => i), "every tick is logged once, in order");
    });

    test("an idle monitor's RSS is at most 1 MiB", async (t) => {
      const s = await start({ command: ["sleep", "1000"], monitor: { stdin: true } });
      const a = await attach(s.paths.attachSocket);
      a.write("x");
      await new Promise((r) => setTimeout(r, 300));
      const rss = vmRssKb(s.monitorPid);
      const status = readFileSync(`/proc/${s.monitorPid}/status`, "utf8");
      t.diagnostic(`monitor VmRSS ${rss} kB (${["RssAnon", "RssFile", "RssShmem"].map((k) => new RegExp(`^${k}:\\s*(\\d+)`, "m").exec(status)?.[1] + " kB " + k).join(", ")})`);
      a.close();
      assert.ok(rss <= 1024, `monitor RSS ${rss} kB > 1024 kB`);
      assert.equal(readFileSync(`/proc/${s.monitorPid}/comm`, "utf8").trim(), "berth-monitor");
      // It holds its own fds only: nothing inherited from whoever started the daemon.
      const fds = readdirSync(`/proc/${s.monitorPid}/fd`).map((fd) => readlinkSync(`/proc/${s.monitorPid}/fd/${fd}`));
      assert.equal(fds.filter((f) => f.startsWith("pipe:")).length, 3, fds.join(" ")); // stdin, stdout, stderr
      for (const f of fds) assert.match(f, /^(\/dev\/null|socket:|pipe:|anon_inode:\[signalfd\]|\/run\/berth-monitor-test\/)/);
    });

    test("rotation: max-size and max-file bound the files; readLog reads across them", async () => {
      const s = await start({
        command: ["sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done"],
        monitor: { logMaxSize: 2000, logMaxFiles: 3 },
      });
      await s.run?.exited;
      const files = readdirSync(s.dir).filter((f) => f.startsWith("container.log")).sort();
      assert.deepEqual(files, ["container.log", "container.log.1", "container.log.2"]);
      for (const f of files) assert.ok(statSync(join(s.dir, f)).size <= 2000, `${f} is ${statSync(join(s.dir, f)).size} bytes`);
      for (const f of files) for (const l of logLines(join(s.dir, f))) assert.match(l.log, /^line-\d+-x+\n$/);
      const got = [...(await collect(s.paths.logPath)).matchAll(/line-(\d+)/g)].map((m) => Number(m[1]));
      assert.equal(got.at(-1), 399);
      assert.deepEqual(got, got.map((_, i) => got[0] + i), "the kept lines are the newest, contiguous");
      assert.ok(got.length > 40 && got.length < 100, `${got.length} lines kept`);
      const tail = [...(await collect(s.paths.logPath, { tail: 5 })).matchAll(/line-(\d+)/g)].map((m) => Number(m[1]));
      assert.deepEqual(tail, [395, 396, 397, 398, 399]);
    });

    test("readLog follows the log across rotation and stops when the container has ended", async () => {
      const s = await start({
        command: ["sh", "-c", "sleep 0.3; i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done"],
        monitor: { logMaxSize: 4096, logMaxFiles: 100 },
      });
      const got: number[] = [];
      for await (const e of readLog(s.paths.logPath, { follow: true, pollMs: 10, stopWhen: () => existsSync(s.paths.exitFile) })) {
        got.push(Number(/line-(\d+)/.exec(e.log)?.[1]));
      }
      assert.deepEqual(got, Array.from({ length: 400 }, (_, i) => i));
      assert.ok(readdirSync(s.dir).filter((f) => f.startsWith("container.log.")).length >= 5, "the log was rotated");
    });

    test("attach: live output to several clients, stdin from any of them, a leaving client changes nothing", async () => {
      const s = await start({ command: ["sh", "-c", "while read l; do echo \"got:$l\"; echo \"err:$l\" >&2; done; echo bye"], monitor: { stdin: true } });
      const a = await attach(s.paths.attachSocket);
      const b = await attach(s.paths.attachSocket);
      const bSeen = outputUntil(b.output, "got:hello");
      const chunks: AttachChunk[] = [];
      a.output.on("data", (c: AttachChunk) => chunks.push(c));
      a.write("hello\n");
      await waitFor("a's output", () => chunks.some((c) => c.stream === "stderr" && c.data.toString().includes("err:hello")));
      assert.ok(chunks.some((c) => c.stream === "stdout" && c.data.toString() === "got:hello\n"));
      await bSeen;
      a.close();
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(alive(s.pid), "the container survives a client leaving");
      const more = outputUntil(b.output, "got:second");
      b.write("second\n");
      await more;
      const bye = outputUntil(b.output, "bye");
      b.closeStdin();
      await bye;
      assert.deepEqual(await s.run?.exited, { exitCode: 0, signal: 0 });
      assert.equal(readExitFile(s.paths.exitFile)?.exitCode, 0);
      let stdout = "";
      for await (const e of readLog(s.paths.logPath)) if (e.stream === "stdout") stdout += e.log;
      assert.equal(stdout, "got:hello\ngot:second\nbye\n");
    });

    test("a client that stops reading holds the container's output back (as docker's attach); nothing is lost, for it or the log", async () => {
      const lines = 300_000;
      let expected = "";
      for (let i = 1; i <= lines; i++) expected += `${i}\n`;
      const s = await start({ command: ["sh", "-c", `read go; exec seq ${lines}`], monitor: { stdin: true } });
      // A raw client, paused: its socket buffer fills within a few hundred KiB of seq's 2 MB.
      const raw = connect(s.paths.attachSocket);
      raw.pause();
      await new Promise((r) => raw.once("connect", r));
      const other = await attach(s.paths.attachSocket);
      let otherText = "";
      other.output.on("data", (c: AttachChunk) => { otherText += c.data.toString(); });
      other.write("go\n"); // both clients are connected before the first line
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(alive(s.pid), "seq (done in ~50 ms unhindered) still waits on the paused client");
      const chunks: Buffer[] = [];
      raw.on("data", (c: Buffer) => chunks.push(c));
      const closed = new Promise((r) => raw.on("close", r));
      raw.resume();
      await closed;
      const all = Buffer.concat(chunks);
      let stdout = "";
      for (let off = 0; off < all.length;) {
        const len = all.readUInt32BE(off + 4);
        assert.equal(all[off], 1, "stdout frames only");
        stdout += all.subarray(off + 8, off + 8 + len).toString();
        off += 8 + len;
      }
      assert.equal(stdout.length, expected.length);
      assert.ok(stdout === expected, "the paused client gets every byte, in order");
      assert.ok(otherText === expected, "so does the client that kept reading");
      assert.deepEqual(await s.run?.exited, { exitCode: 0, signal: 0 });
      assert.ok((await collect(s.paths.logPath)) === expected, "and the log");
    });

    test("a client still writing stdin while the container exits gets all of its output, then the end", async () => {
      const s = await start({ command: ["sh", "-c", "read l; echo last:$l"], monitor: { stdin: true } });
      const a = await attach(s.paths.attachSocket);
      let text = "";
      let errored: Error | undefined;
      a.output.on("data", (c: AttachChunk) => { text += c.data.toString(); });
      a.output.on("error", (err: Error) => { errored = err; });
      const ended = new Promise<void>((resolve) => { a.output.on("end", resolve); a.output.on("close", resolve); });
      let open = true;
      void ended.then(() => { open = false; });
      a.write("x\n");
      // Keep writing (as a daemon forwarding a client's stdin would) across the container's exit: the
      // monitor must take these bytes rather than answer them with EPIPE, which made Node drop output.
      const flood = () => { if (open) { a.write("more\n"); setImmediate(flood); } };
      flood();
      await ended;
      assert.equal(errored, undefined);
      assert.equal(text, "last:x\n");
      assert.deepEqual(await s.run?.exited, { exitCode: 0, signal: 0 });
    });

    test("a terminal: output logged as stdout, attach resizes and types", async () => {
      const s = await start({ command: ["sh", "-c", "read l; stty size; echo \"typed:$l\""], tty: true, monitor: { stdin: true } });
      const a = await attach(s.paths.attachSocket);
      const seen = outputUntil(a.output, /typed:abc/);
      a.resize(33, 77);
      a.write("abc\r");
      await seen;
      await s.run?.exited;
      const lines = logLines(s.paths.logPath);
      assert.ok(lines.every((l) => l.stream === "stdout"));
      const text = lines.map((l) => l.log).join("");
      assert.match(text, /33 77\r\n/);
      assert.match(text, /typed:abc\r\n/);
    });

    test("a kill by signal is recorded in the exit file; the monitor exits and leaves no socket", async () => {
      const s = await start({ command: ["sleep", "1000"] });
      assert.ok(existsSync(s.paths.attachSocket));
      assert.equal(statSync(s.paths.attachSocket).mode & 0o777, 0o600);
      s.run?.signal(9);
      assert.deepEqual(await s.run?.exited, { exitCode: 0, signal: 9 });
      assert.deepEqual({ ...readExitFile(s.paths.exitFile), finishedAt: "" }, { exitCode: 137, signal: 9, oomKilled: false, finishedAt: "" });
      await waitFor("the monitor to exit", () => !alive(s.monitorPid));
      assert.ok(!existsSync(s.paths.attachSocket));
      assert.deepEqual(readdirSync(s.dir).filter((f) => f.includes("tmp")), []);
    });

    test("a container that fails to start: the error as without a monitor, no exit file, no socket left", async () => {
      const before = new Set(readdirSync(ROOT));
      await assert.rejects(startMonitored({ command: ["no-such-command-here"] }), (err: Error & { exitCode?: number }) => {
        assert.match(err.message, /no-such-command-here/);
        assert.equal(err.exitCode, 127);
        return true;
      });
      // startMonitored removed its dir; a socket or exit file would have kept it from being empty before that.
      assert.deepEqual(readdirSync(ROOT).filter((d) => !before.has(d)), []);
    });

    test("closing the controller's socket leaves the container running (no KillOnControlEof)", async () => {
      const s = await start({ command: ["sleep", "1000"] });
      s.run?.close();
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(alive(s.pid));
      assert.ok(monitorAlive(s.monitorPid));
    });
  });
}
