// berth-oci against the runtime-spec and runc's behaviour: the create/start split, state, kill, delete,
// run, exec, console socket, hooks, seccomp, rlimits, config errors that leave nothing behind, and the
// runc escape classes (leaked fds as cwd, the runtime binary via /proc/<pid>/exe).

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { defaultSpec } from "../../src/oci/default-spec.js";
import type { Spec } from "../../src/oci/spec.js";
import { REPO, waitFor } from "../helpers/berth.js";

const OCI = join(REPO, "bin/berth-oci");
const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p) && spawnSync("file", [p]).stdout?.toString().includes("static") !== false);
const skip = !BUSYBOX ? "needs busybox-static" : process.getuid?.() !== 0 ? "needs root" : false;

let work: string;
let root: string;
let rootfs: string;
let seq = 0;

interface Result { code: number | null; stdout: string; stderr: string }

function runtime(bin: string, stateRoot: string, args: string[], opts: { input?: string; out?: string } = {}): Result {
  // The container inherits create's stdio: point it at files, or spawnSync would wait for the pipes.
  if (opts.out) {
    const outFd = openSync(opts.out, "a");
    const errFile = `${opts.out}.err`;
    writeFileSync(errFile, "");
    const errFd = openSync(errFile, "a");
    const r = spawnSync(bin, ["--root", stateRoot, ...args], { stdio: ["ignore", outFd, errFd], timeout: 30_000, killSignal: "SIGKILL" });
    closeSync(outFd);
    closeSync(errFd);
    return { code: r.status, stdout: "", stderr: readFileSync(errFile, "utf8") };
  }
  const r = spawnSync(bin, ["--root", stateRoot, ...args], { encoding: "utf8", input: opts.input, timeout: 30_000, killSignal: "SIGKILL" });
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

const oci = (args: string[], opts: { input?: string; out?: string } = {}) => runtime(OCI, root, args, opts);

// runc, where installed, runs each exit-code case beside berth-oci (its own --root, its own ids); without
// it the codes runc 1.1.5 gave on this machine stand in.
const RUNC = ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"].find((p) => existsSync(p));
const runc = (args: string[], opts: { out?: string } = {}): Result | undefined => (RUNC ? runtime(RUNC, join(work, "runc-state"), args, opts) : undefined);

/** berth-oci's result has runc's exit code (runc's own, or the one recorded) and, on failure, one line. */
function assertLikeRunc(what: string, berth: Result, runcResult: Result | undefined, recorded: number): void {
  const want = runcResult ? runcResult.code : recorded;
  assert.equal(berth.code, want, `${what}: berth-oci exited ${berth.code}, runc ${want}${runcResult ? ` (${runcResult.stderr.trim()})` : ""}; berth-oci said: ${berth.stderr}`);
  if (berth.code === 1 || berth.code === 255) assert.match(berth.stderr, /^berth-oci: [^\n]+\n$/, `${what}: one line`);
}

function bundle(mutate: (s: Spec) => void = () => {}): { dir: string; id: string; out: string } {
  const dir = join(work, `b${++seq}`);
  mkdirSync(dir);
  const spec = defaultSpec();
  spec.root = { path: rootfs, readonly: true };
  if (spec.process) {
    spec.process.terminal = false;
    spec.process.args = ["sh", "-c", "echo hello; sleep 1000"];
  }
  mutate(spec);
  writeFileSync(join(dir, "config.json"), JSON.stringify(spec));
  return { dir, id: `oci-${process.pid}-${seq}`, out: join(dir, "out.txt") };
}

function state(id: string): { status: string; pid: number } {
  const r = oci(["state", id]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { status: string; pid: number };
}

function berthCgroups(): string[] {
  const r = spawnSync("find", ["/sys/fs/cgroup", "-maxdepth", "6", "-type", "d", "-name", "oci-*"], { encoding: "utf8" });
  return r.stdout.split("\n").filter((l) => l.includes(`oci-${process.pid}-`));
}

function assertNothingLeft(id: string): void {
  assert.equal(existsSync(join(root, id)), false, `state dir of ${id} left behind`);
  assert.deepEqual(berthCgroups().filter((d) => d.endsWith(id)), [], `cgroup of ${id} left behind`);
}

describe("berth-oci", { skip }, () => {
  before(() => {
    work = mkdtempSync(join(tmpdir(), "berth-oci-test-"));
    root = join(work, "state");
    rootfs = join(work, "rootfs");
    for (const d of ["bin", "proc", "sys", "dev", "tmp", "etc"]) mkdirSync(join(rootfs, d), { recursive: true });
    copyFileSync(BUSYBOX as string, join(rootfs, "bin/busybox"));
    chmodSync(join(rootfs, "bin/busybox"), 0o755);
    for (const c of ["sh", "echo", "cat", "sleep", "ls", "id", "pwd", "mkdir", "tty", "ps", "true", "hostname", "readlink"]) {
      symlinkSync("busybox", join(rootfs, "bin", c));
    }
    writeFileSync(join(rootfs, "bin/not-executable"), "#!/bin/sh\necho never\n", { mode: 0o644 });
  });

  after(() => {
    for (const name of existsSync(root) ? readdirSync(root) : []) oci(["delete", "--force", name]);
    const runcRoot = join(work, "runc-state");
    for (const name of existsSync(runcRoot) ? readdirSync(runcRoot) : []) runc(["delete", "--force", name]);
    rmSync(work, { recursive: true, force: true });
  });

  test("create leaves the process set up and blocked; start runs it; state follows; delete cleans up", async () => {
    const b = bundle();
    const pidFile = join(b.dir, "pid");
    const c = oci(["create", "--bundle", b.dir, "--pid-file", pidFile, b.id], { out: b.out });
    assert.equal(c.code, 0, c.stderr);
    const pid = Number(readFileSync(pidFile, "utf8"));
    const s1 = state(b.id);
    assert.equal(s1.status, "created");
    assert.equal(s1.pid, pid);
    // Not exec'd yet: no output, and the process is still the helper's sealed copy, not sh.
    assert.equal(readFileSync(b.out, "utf8"), "");
    assert.match(readFileSync(`/proc/${pid}/cmdline`, "utf8"), /berth-helper|^[^\0]*\0?$/);
    assert.equal(oci(["start", b.id]).code, 0);
    await waitFor("output", () => readFileSync(b.out, "utf8").includes("hello"));
    assert.equal(state(b.id).status, "running");
    assert.equal(oci(["start", b.id]).code, 1, "a running container cannot be started again");

    const refused = oci(["delete", b.id]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /running/);
    assert.equal(state(b.id).status, "running", "a refused delete changes nothing");

    assert.equal(oci(["kill", b.id, "KILL"]).code, 0);
    await waitFor("stopped", () => state(b.id).status === "stopped");
    assert.equal(oci(["delete", b.id]).code, 0);
    assertNothingLeft(b.id);
    assert.equal(oci(["state", b.id]).code, 1);
  });

  test("a created container is not deleted without --force; with it, it is", () => {
    const b = bundle();
    assert.equal(oci(["create", "--bundle", b.dir, b.id], { out: b.out }).code, 0);
    const r = oci(["delete", b.id]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /created/);
    assert.equal(state(b.id).status, "created");
    assert.equal(oci(["delete", "--force", b.id]).code, 0);
    assertNothingLeft(b.id);
  });

  test("kill takes signal names and numbers; --all reaches every process", async () => {
    const b = bundle((s) => { if (s.process) s.process.args = ["sh", "-c", "trap 'echo got-usr1' USR1; sleep 1000 & while :; do sleep 0.1; done"]; });
    oci(["create", "--bundle", b.dir, b.id], { out: b.out });
    oci(["start", b.id]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(oci(["kill", b.id, "10"]).code, 0);
    await waitFor("USR1 handled", () => readFileSync(b.out, "utf8").includes("got-usr1"));
    assert.equal(oci(["kill", b.id, "SIGBOGUS"]).code, 1);
    // Signal 0, as runc: only whether the process exists (exit 0 running, 1 once stopped).
    const alive = oci(["kill", b.id, "0"]);
    assert.equal(alive.code, 0, alive.stderr);
    assert.equal(oci(["kill", "--all", b.id, "SIGKILL"]).code, 0);
    await waitFor("stopped", () => state(b.id).status === "stopped");
    const gone = oci(["kill", b.id, "0"]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^berth-oci: container not running/);
    assert.equal(oci(["delete", b.id]).code, 0);
    assertNothingLeft(b.id);
  });

  test("run passes the exit code through and removes the container; with --keep it stays stopped until delete", () => {
    const b = bundle((s) => { if (s.process) s.process.args = ["sh", "-c", "exit 7"]; });
    const r = oci(["run", "--bundle", b.dir, b.id]);
    assert.equal(r.code, 7, r.stderr);
    assertNothingLeft(b.id);
    // --keep, as runc: the stopped container stays (state, list) until delete; --no-subreaper is accepted.
    const k = oci(["run", "--keep", "--no-subreaper", "--bundle", b.dir, b.id]);
    assert.equal(k.code, 7, k.stderr);
    assert.deepEqual([state(b.id).status, state(b.id).pid], ["stopped", 0]);
    assert.deepEqual(oci(["list", "-q"]).stdout.split("\n").filter((l) => l === b.id), [b.id]);
    assert.equal(oci(["delete", b.id]).code, 0);
    assertNothingLeft(b.id);
  });

  test("exec runs a process (args or --process JSON) inside the running container", async () => {
    const b = bundle();
    oci(["create", "--bundle", b.dir, b.id], { out: b.out });
    oci(["start", b.id]);
    const e = oci(["exec", b.id, "sh", "-c", "echo $$; hostname; exit 3"]);
    assert.equal(e.code, 3, e.stderr);
    const [pid, host] = e.stdout.trim().split("\n");
    assert.ok(Number(pid) > 1, "an exec'd process is not PID 1");
    assert.equal(host, "runc", "it sees the container's hostname");
    const procFile = join(b.dir, "process.json");
    writeFileSync(procFile, JSON.stringify({ args: ["sh", "-c", "echo from-process-json; id -u"], cwd: "/tmp", user: { uid: 1000, gid: 1000 }, env: ["PATH=/bin"] }));
    const p = oci(["exec", "--process", procFile, b.id]);
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual(p.stdout.trim().split("\n"), ["from-process-json", "1000"]);
    // The exec'd process gets its own scheduler and I/O priority; execCPUAffinity is refused, not ignored.
    const sched = { scheduler: { policy: "SCHED_IDLE" }, ioPriority: { class: "IOPRIO_CLASS_IDLE", priority: 0 } };
    writeFileSync(procFile, JSON.stringify({ args: ["sh", "-c", "cut -d' ' -f41 /proc/self/stat; ionice -p $$"], cwd: "/", user: { uid: 0, gid: 0 }, ...sched }));
    const io = oci(["exec", "--process", procFile, b.id]);
    assert.equal(io.code, 0, io.stderr);
    assert.equal(io.stdout, "5\nidle\n");
    writeFileSync(procFile, JSON.stringify({ args: ["true"], cwd: "/", user: { uid: 0, gid: 0 }, execCPUAffinity: { initial: "0" } }));
    const aff = oci(["exec", "--process", procFile, b.id]);
    assert.equal(aff.code, 255);
    assert.equal(aff.stderr, "berth-oci: process.execCPUAffinity: not supported by berth-oci\n");
    assert.deepEqual(JSON.parse(oci(["ps", "--format", "json", b.id]).stdout), [state(b.id).pid]);
    // The table is runc's: ps -ef's header and the container's rows; ps options go after the id.
    const ef = oci(["ps", b.id]);
    assert.equal(ef.code, 0, ef.stderr);
    const [head, ...rows] = ef.stdout.trim().split("\n");
    assert.match(head, /^UID\s+PID\s+PPID\s.*CMD$/);
    assert.deepEqual(rows.map((r) => Number(r.trim().split(/\s+/)[1])), [state(b.id).pid]);
    const o = oci(["ps", b.id, "-o", "pid,comm"]);
    assert.equal(o.code, 0, o.stderr);
    assert.deepEqual(o.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/)), [["PID", "COMMAND"], [String(state(b.id).pid), "sleep"]]);
    oci(["delete", "--force", b.id]);
    assertNothingLeft(b.id);
  });

  test("pause freezes, resume thaws; update changes limits", async () => {
    const b = bundle((s) => { if (s.linux) s.linux.resources = { ...s.linux.resources, pids: { limit: 50 } }; });
    oci(["create", "--bundle", b.dir, b.id], { out: b.out });
    oci(["start", b.id]);
    assert.equal(oci(["pause", b.id]).code, 0);
    assert.equal(state(b.id).status, "paused");
    assert.equal(oci(["resume", b.id]).code, 0);
    assert.equal(state(b.id).status, "running");
    assert.equal(oci(["update", "--pids-limit", "20", b.id]).code, 0);
    const r = oci(["exec", b.id, "cat", "/sys/fs/cgroup/pids/pids.max"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "20");
    const stats = oci(["events", "--stats", b.id]);
    assert.equal(stats.code, 0, stats.stderr);
    assert.equal((JSON.parse(stats.stdout) as { type: string }).type, "stats");
    // A stopped container has no stats: runc's error and exit 1 (events printed them and exited 0).
    oci(["kill", b.id, "KILL"]);
    await waitFor("stopped", () => state(b.id).status === "stopped");
    for (const args of [["events", "--stats", b.id], ["events", b.id]]) {
      const e = oci(args);
      assert.equal(e.code, 1, `${args.join(" ")}: ${e.stdout}${e.stderr}`);
      assert.equal(e.stdout, "");
      assert.match(e.stderr, new RegExp(`container with id ${b.id} is not running`));
    }
    oci(["delete", "--force", b.id]);
  });

  test("events reports an OOM kill as runc ({\"type\":\"oom\"}) beside the stats; a reader that goes away ends it quietly", async () => {
    const b = bundle((s) => {
      if (s.linux) s.linux.resources = { ...s.linux.resources, memory: { limit: 16 << 20, swap: 16 << 20 } };
    });
    const watch = (bin: string, stateRoot: string, id: string) => {
      const child = spawn(bin, ["--root", stateRoot, "events", "--interval", "1s", id], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => { out += d.toString(); });
      child.stderr.on("data", (d: Buffer) => { err += d.toString(); });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on("exit", (code, signal) => r({ code, signal })));
      const events = () => out.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { type: string; id: string; data?: unknown });
      return { child, exited, events, stderr: () => err };
    };
    const runtimes: [string, string, string][] = [["berth-oci", OCI, root]];
    if (RUNC) runtimes.push(["runc", RUNC, join(work, "runc-state")]);
    for (const [name, bin, stateRoot] of runtimes) {
      const id = `${b.id}-${name}`;
      assert.equal(runtime(bin, stateRoot, ["run", "-d", "--bundle", b.dir, id], { out: `${b.out}.${name}` }).code, 0, name);
      const w = watch(bin, stateRoot, id);
      // The first stats line means events is watching: the OOM kill comes after it.
      await waitFor(`${name}: a stats event`, () => w.events().some((e) => e.type === "stats"));
      assert.equal(runtime(bin, stateRoot, ["exec", id, "busybox", "tail", "/dev/zero"]).code, 137, `${name}: tail is OOM-killed`);
      await waitFor(`${name}: an oom event`, () => w.events().some((e) => e.type === "oom"));
      assert.deepEqual(w.events().find((e) => e.type === "oom"), { type: "oom", id }, name);
      w.child.kill("SIGTERM");
      await w.exited;

      // `events | head`: the reader closes its end after the first line.
      const cut = watch(bin, stateRoot, id);
      cut.child.stdout.once("data", () => cut.child.stdout.destroy());
      const end = await cut.exited;
      if (name === "berth-oci") {
        assert.equal(cut.stderr(), "", "no stack trace");
        assert.equal(end.code, 141, "as the shell sees runc killed by SIGPIPE");
      } else {
        assert.equal(end.signal, "SIGPIPE", "runc dies of SIGPIPE");
      }
      assert.equal(runtime(bin, stateRoot, ["delete", "--force", id]).code, 0, name);
    }
    assertNothingLeft(`${b.id}-berth-oci`);
  });

  test("update -r with device rules: the rules replace the old ones, the container's own device nodes stay usable", () => {
    const b = bundle();
    oci(["create", "--bundle", b.dir, b.id], { out: b.out });
    oci(["start", b.id]);
    const devices = [{ allow: false, access: "rwm" }, { allow: true, type: "c", major: 10, minor: 200, access: "r" }];
    const u = oci(["update", "-r", "-", b.id], { input: JSON.stringify({ devices }) });
    assert.equal(u.code, 0, u.stderr);
    const r = oci(["exec", b.id, "sh", "-c", "head -c1 /dev/zero | wc -c; head -c1 /dev/null; echo null=$?"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\s*1\nnull=0\n$/);
    const record = JSON.parse(readFileSync(join(root, b.id, "state.json"), "utf8")) as { config: Spec };
    assert.deepEqual(record.config.linux?.resources?.devices, devices);
    if (existsSync("/sys/fs/cgroup/devices")) {
      // v1: the kernel's list has the new rule and the default devices, nothing else.
      const list = oci(["exec", b.id, "cat", "/sys/fs/cgroup/devices/devices.list"]).stdout.split("\n").filter(Boolean);
      assert.ok(list.includes("c 10:200 r") && list.includes("c 1:3 rwm") && !list.includes("a *:* rwm"), list.join(", "));
    }
    oci(["delete", "--force", b.id]);
  });

  test("config errors: one line naming the JSON path, exit 1, nothing left behind", () => {
    const cases: [string, (s: Spec) => void, RegExp][] = [
      ["unknown capability", (s) => { s.process?.capabilities?.bounding?.push("CAP_TEST"); }, /^berth-oci: process\.capabilities\.bounding\[\d+\]: unknown capability "CAP_TEST"\n$/],
      ["ociVersion major", (s) => { s.ociVersion = "2.0.0"; }, /ociVersion/],
      ["unknown rlimit", (s) => { if (s.process) s.process.rlimits = [{ type: "RLIMIT_BOGUS", soft: 1, hard: 1 }]; }, /process\.rlimits\[0\]\.type/],
      ["relative cwd", (s) => { if (s.process) s.process.cwd = "tmp"; }, /process\.cwd/],
      ["unknown namespace", (s) => { s.linux?.namespaces?.push({ type: "bogus" as never }); }, /linux\.namespaces\[\d+\]/],
      ["namespace path of the wrong type", (s) => {
        const ns = s.linux?.namespaces?.find((n) => n.type === "network");
        if (ns) ns.path = "/proc/self/ns/ipc";
      }, /linux\.namespaces\[\d+\]\.path/],
      ["mount without destination", (s) => { s.mounts?.push({ destination: "", type: "tmpfs", source: "tmpfs" }); }, /mounts\[\d+\]\.destination/],
      // Valid fields berth-oci can't apply: refused, not silently ignored.
      ["process.execCPUAffinity", (s) => { if (s.process) s.process.execCPUAffinity = { initial: "0" }; }, /^berth-oci: process\.execCPUAffinity: not supported by berth-oci\n$/],
      ["linux.intelRdt", (s) => { if (s.linux) s.linux.intelRdt = { closID: "c1" }; }, /^berth-oci: linux\.intelRdt: not supported by berth-oci\n$/],
      ["linux.memoryPolicy", (s) => { if (s.linux) Object.assign(s.linux, { memoryPolicy: { mode: "MPOL_INTERLEAVE", nodes: "0" } }); }, /^berth-oci: linux\.memoryPolicy: not supported by berth-oci\n$/],
      ["linux.netDevices", (s) => { if (s.linux) Object.assign(s.linux, { netDevices: { dummy0: {} } }); }, /^berth-oci: linux\.netDevices: not supported by berth-oci\n$/],
    ];
    for (const [name, mutate, pattern] of cases) {
      const b = bundle(mutate);
      const r = oci(["create", "--bundle", b.dir, b.id], { out: b.out });
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      assert.match(r.stderr, pattern, name);
      assert.equal(r.stderr.trim().split("\n").length, 1, `${name}: one line`);
      assertNothingLeft(b.id);
    }
    const notJson = join(work, "badjson");
    mkdirSync(notJson);
    writeFileSync(join(notJson, "config.json"), "{ \"ociVersion\": ");
    const r = oci(["create", "--bundle", notJson, "badjson"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /config\.json: invalid JSON/);
  });

  test("a hard rlimit above the runtime's own is refused, naming the limit", () => {
    const b = bundle((s) => { if (s.process) s.process.rlimits = [{ type: "RLIMIT_NOFILE", soft: 1048576, hard: 1048576 }]; });
    const hard = Number(spawnSync("sh", ["-c", "ulimit -Hn"], { encoding: "utf8" }).stdout.trim());
    const r = oci(["create", "--bundle", b.dir, b.id], { out: b.out });
    if (hard >= 1048576) return; // a host that allows it: nothing to refuse
    assert.equal(r.code, 1);
    assert.match(r.stderr, /setrlimit RLIMIT_NOFILE soft=1048576 hard=1048576: operation not permitted/);
    assertNothingLeft(b.id);
  });

  test("recursive mount attributes (rro) make a bind mount read-only", () => {
    const src = join(work, "rro-src");
    mkdirSync(src, { recursive: true });
    const b = bundle((s) => {
      if (s.process) s.process.args = ["sh", "-c", "touch /data/x"];
      s.mounts?.push({ destination: "/data", type: "bind", source: src, options: ["rbind", "rro"] });
    });
    const r = oci(["run", "--bundle", b.dir, b.id]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr + r.stdout, /Read-only file system/);
    assert.equal(existsSync(join(src, "x")), false);
  });

  test("tmpcopyup (runc's, podman's --read-only and --tmpfs): the tmpfs starts with a copy of the directory it covers", () => {
    // /bin on a tmpfs: sh only runs if the copy happened; links stay links, modes stay; writes stay in the tmpfs.
    const script = "grep -c ' /bin tmpfs rw,nosuid' /proc/mounts; readlink /bin/sh; stat -c %a /bin/busybox; echo x > /bin/new && echo wrote";
    const b = bundle((s) => {
      if (s.process) s.process.args = ["/bin/sh", "-c", script];
      s.mounts?.push({ destination: "/bin", type: "tmpfs", source: "tmpfs", options: ["nosuid", "tmpcopyup", "mode=755"] });
    });
    const r = oci(["run", "--bundle", b.dir, b.id]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "1\nbusybox\n755\nwrote\n");
    assert.equal(existsSync(join(rootfs, "bin/new")), false);
    const rr = runc(["run", "--bundle", b.dir, `${b.id}-runc`]);
    if (rr) assert.equal(rr.stdout, r.stdout, "as runc");
    assertNothingLeft(b.id);
    // A read-only tmpcopyup tmpfs still gets the copy; tmpcopyup on a bind mount is refused, not ignored.
    const ro = bundle((s) => {
      if (s.process) s.process.args = ["/bin/sh", "-c", "ls /bin/busybox; touch /bin/new"];
      s.mounts?.push({ destination: "/bin", type: "tmpfs", source: "tmpfs", options: ["ro", "tmpcopyup"] });
    });
    const rro = oci(["run", "--bundle", ro.dir, ro.id]);
    assert.equal(rro.code, 1);
    assert.match(rro.stdout + rro.stderr, /^\/bin\/busybox\n[^]*Read-only file system/);
    const bind = bundle((s) => { s.mounts?.push({ destination: "/t", type: "bind", source: work, options: ["rbind", "tmpcopyup"] }); });
    const rb = oci(["create", "--bundle", bind.dir, bind.id], { out: bind.out });
    assert.equal(rb.code, 1);
    assert.match(rb.stderr, /^berth-oci: mounts \(destination \/t\): the "tmpcopyup" option is only for tmpfs mounts\n$/);
    assertNothingLeft(bind.id);
  });

  // runtime-tools validation linux_ns_path (mnt): runc joins it and sets the rootfs up in it.
  test("a mount namespace given by path is joined", async () => {
    // --kill-child: the SIGKILL at the end reaches unshare only; without it its sleep outlived the test.
    const holder = spawn("unshare", ["--mount", "--fork", "--kill-child", "sleep", "1000"], { stdio: "ignore" });
    try {
      const target = await waitFor("unshare's namespace", () => {
        const ns = readlinkSync(`/proc/${holder.pid}/ns/mnt`);
        return ns !== readlinkSync("/proc/self/ns/mnt") && ns;
      });
      const b = bundle((s) => {
        s.linux = { ...s.linux, namespaces: (s.linux?.namespaces ?? []).map((n) => (n.type === "mount" ? { type: "mount", path: `/proc/${holder.pid}/ns/mnt` } : n)) };
      });
      const c = oci(["create", "--bundle", b.dir, b.id], { out: b.out });
      assert.equal(c.code, 0, c.stderr);
      assert.equal(readlinkSync(`/proc/${state(b.id).pid}/ns/mnt`), target);
      assert.equal(oci(["start", b.id]).code, 0);
      await waitFor("output", () => readFileSync(b.out, "utf8").includes("hello"));
      assert.equal(oci(["delete", "--force", b.id]).code, 0);
      assertNothingLeft(b.id);
    } finally {
      holder.kill("SIGKILL");
    }
  });

  // runtime-tools validation linux_ns_itype: without a "mount" entry the runtime's namespace is kept.
  test("no mount namespace: the container shares the runtime's; delete leaves no mount behind", async () => {
    const below = () => readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.split(" ")[4]?.startsWith(rootfs + "/"));
    const b = bundle((s) => {
      s.root = { path: rootfs, readonly: false };
      s.linux = { ...s.linux, namespaces: (s.linux?.namespaces ?? []).filter((n) => n.type !== "mount"), maskedPaths: [], readonlyPaths: [] };
      if (s.process) s.process.args = ["sh", "-c", "cat /proc/self/mountinfo > /dev/null && echo hello; sleep 1000"];
    });
    const c = oci(["create", "--bundle", b.dir, b.id], { out: b.out });
    assert.equal(c.code, 0, c.stderr);
    const pid = state(b.id).pid;
    assert.equal(readlinkSync(`/proc/${pid}/ns/mnt`), readlinkSync("/proc/self/ns/mnt"));
    assert.equal(readlinkSync(`/proc/${pid}/root`), rootfs);
    assert.ok(below().length > 0, "the container's /proc, /dev ... are in this mount table");
    assert.equal(oci(["start", b.id]).code, 0);
    await waitFor("output", () => readFileSync(b.out, "utf8").includes("hello"));
    // exec joins no mount namespace here: it must still land in the container's root, not the host's.
    const e = oci(["exec", b.id, "ls", "/"]);
    assert.equal(e.code, 0, e.stderr);
    const listed = e.stdout.trim().split(/\s+/);
    assert.ok(listed.includes("bin") && !listed.includes("usr"), `the container's / (other tests add dirs), not the host's: ${listed.join(" ")}`);
    assert.equal(oci(["delete", "--force", b.id]).code, 0);
    assertNothingLeft(b.id);
    assert.deepEqual(below(), [], "runc leaves these behind; berth-oci detaches them");
    const ro = bundle((s) => {
      s.linux = { ...s.linux, namespaces: (s.linux?.namespaces ?? []).filter((n) => n.type !== "mount"), maskedPaths: [], readonlyPaths: [] };
    });
    const r = oci(["create", "--bundle", ro.dir, ro.id], { out: ro.out });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /root.readonly: needs its own mount namespace/);
    assertNothingLeft(ro.id);
    assert.deepEqual(below(), []);
  });

  // runtime-tools validation linux_rootfs_propagation and config_updates_without_affect: "shared" made
  // pivot_root fail (EINVAL) and "unbindable" the rootfs bind; both now end up on the container's "/".
  test("rootfsPropagation shared and unbindable apply to the container's root", () => {
    for (const [value, tag] of [["shared", /shared:\d+/], ["unbindable", /unbindable/], ["slave", /^(?!.*shared:)/]] as const) {
      const b = bundle((s) => {
        if (s.linux) s.linux.rootfsPropagation = value;
        if (s.process) s.process.args = ["cat", "/proc/self/mountinfo"];
      });
      const r = oci(["run", "--bundle", b.dir, b.id]);
      assert.equal(r.code, 0, `${value}: ${r.stderr}`);
      const rootLine = r.stdout.split("\n").find((l) => l.split(" ")[4] === "/") ?? "";
      const optional = rootLine.split(" - ")[0].split(" ").slice(6).join(" ");
      assert.match(optional, tag, `${value}: ${rootLine}`);
      assertNothingLeft(b.id);
    }
  });

  test("process.scheduler and process.ioPriority are applied (sched_setattr, ioprio_set); a refused one fails create in one line", () => {
    const b = bundle((s) => {
      if (!s.process) return;
      s.process.args = ["sh", "-c", "cut -d' ' -f19,41 /proc/self/stat; ionice -p $$"];
      s.process.scheduler = { policy: "SCHED_BATCH", nice: 7 };
      s.process.ioPriority = { class: "IOPRIO_CLASS_BE", priority: 6 };
    });
    const r = oci(["run", "--bundle", b.dir, b.id]);
    assert.equal(r.code, 0, r.stderr);
    // /proc/<pid>/stat: nice 7, policy 3 (SCHED_BATCH).
    assert.equal(r.stdout, "7 3\nbest-effort: prio 6\n");
    assertNothingLeft(b.id);
    // A real-time policy the kernel refuses (no RT runtime for the cgroup): a clear error, not a process running without it.
    const fifo = bundle((s) => {
      if (!s.process) return;
      s.process.args = ["true"];
      s.process.scheduler = { policy: "SCHED_FIFO", priority: 99 };
    });
    const rf = oci(["create", "--bundle", fifo.dir, fifo.id], { out: fifo.out });
    if (rf.code !== 0) {
      assert.match(rf.stderr, /^berth-oci: set the scheduler \(process\.scheduler, sched_setattr policy 1\): [^\n]+\n$/);
      assertNothingLeft(fifo.id);
    } else {
      oci(["delete", "--force", fifo.id]);
    }
  });

  test("lower rlimits, hostname, env, user and cwd are applied", () => {
    const b = bundle((s) => {
      s.hostname = "ocibox";
      if (s.process) {
        s.process.args = ["sh", "-c", "ulimit -n; hostname; echo $FOO; id -u; id -g; pwd"];
        s.process.rlimits = [{ type: "RLIMIT_NOFILE", soft: 512, hard: 1024 }];
        s.process.env = ["PATH=/bin", "FOO=bar"];
        s.process.user = { uid: 1234, gid: 4321 };
        s.process.cwd = "/tmp";
      }
    });
    const r = oci(["run", "--bundle", b.dir, b.id]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["512", "ocibox", "bar", "1234", "4321", "/tmp"]);
  });

  test("seccomp from config.json is enforced; unknown syscall names are skipped", () => {
    const b = bundle((s) => {
      if (s.process) s.process.args = ["sh", "-c", "mkdir /tmp/x && echo made"];
      s.root = { path: rootfs, readonly: false };
      if (s.linux) {
        s.linux.seccomp = {
          defaultAction: "SCMP_ACT_ALLOW",
          architectures: ["SCMP_ARCH_X86_64"],
          syscalls: [{ names: ["mkdir", "mkdirat", "no_such_syscall_name"], action: "SCMP_ACT_ERRNO", errnoRet: 1 }],
        };
      }
    });
    const r = oci(["run", "--bundle", b.dir, b.id]);
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stdout, /made/);
    assert.match(r.stdout + r.stderr, /Operation not permitted/);
  });

  test("hooks run in order with the state on stdin; a failing prestart hook fails create and leaves nothing", () => {
    const log = join(work, "hooks.log");
    const hook = join(work, "hook.sh");
    writeFileSync(hook, `#!/bin/sh\necho "$1 $(cat)" >> ${log}\n`);
    chmodSync(hook, 0o755);
    const kinds = ["prestart", "createRuntime", "createContainer", "poststart", "poststop"] as const;
    const b = bundle((s) => {
      if (s.process) s.process.args = ["true"];
      s.hooks = Object.fromEntries(kinds.map((k) => [k, [{ path: hook, args: ["hook.sh", k] }]]));
    });
    assert.equal(oci(["run", "--bundle", b.dir, b.id]).code, 0);
    const lines = readFileSync(log, "utf8").trim().split("\n");
    assert.deepEqual(lines.map((l) => l.split(" ")[0]), [...kinds]);
    const created = JSON.parse(lines[0].slice(lines[0].indexOf(" ") + 1)) as { id: string; status: string; pid: number; bundle: string };
    assert.equal(created.id, b.id);
    assert.equal(created.status, "created");
    assert.ok(created.pid > 0);
    assert.equal(created.bundle, b.dir);

    const failing = bundle((s) => { s.hooks = { prestart: [{ path: "/bin/false" }] }; });
    const r = oci(["create", "--bundle", failing.dir, failing.id], { out: failing.out });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /hooks\.prestart\[0\]/);
    assertNothingLeft(failing.id);
  });

  test("a failing prestart or createRuntime hook fails create, leaves nothing, and still runs poststop (as runc)", () => {
    const stop = join(work, "poststop.sh");
    writeFileSync(stop, `#!/bin/sh\ncat > "$1"\n`);
    chmodSync(stop, 0o755);
    for (const kind of ["prestart", "createRuntime"] as const) {
      const b = bundle((s) => {
        s.hooks = { [kind]: [{ path: "/bin/sh", args: ["sh", "-c", "exit 2"] }], poststop: [{ path: stop, args: ["poststop.sh", join(work, `poststop-${kind}.json`)] }] };
      });
      const r = oci(["create", "--bundle", b.dir, b.id], { out: b.out });
      assertLikeRunc(`create with a failing ${kind} hook`, r, undefined, 1);
      assert.match(r.stderr, new RegExp(`hooks\\.${kind}\\[0\\] \\(/bin/sh\\): exited 2`));
      assertNothingLeft(b.id);
      const ran = JSON.parse(readFileSync(join(work, `poststop-${kind}.json`), "utf8")) as { id: string; status: string };
      assert.equal(ran.id, b.id, `poststop ran after the failing ${kind} hook`);
      assert.equal(ran.status, "stopped");
      if (RUNC) {
        const runcOut = join(work, `poststop-${kind}.json`);
        rmSync(runcOut);
        assert.equal(runc(["create", "--bundle", b.dir, `${b.id}-runc`], { out: `${b.out}.runc` })?.code, 1);
        assert.ok(existsSync(runcOut), `runc ran poststop after the failing ${kind} hook too`);
      }
    }
  });

  test("--console-socket receives the pty master; the process has a terminal", () => {
    const sock = join(work, "console.sock");
    const b = bundle((s) => { if (s.process) { s.process.terminal = true; s.process.args = ["sh", "-c", "tty; sleep 1000"]; } });
    // A small receiver: accept one connection, take the fd (SCM_RIGHTS), read what the container prints.
    const receiver = `
import socket, os, sys, array
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(${JSON.stringify(sock)}); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
msg, fds, _, _ = socket.recv_fds(c, 1024, 1)
out = b""
while b"/dev/pts" not in out: out += os.read(fds[0], 1024)
print(out.decode().strip(), flush=True)
`;
    const py = spawnSync("sh", ["-c", `python3 -c '${receiver.replace(/'/g, "'\\''")}' & sleep 0.5; ${OCI} --root ${root} create --bundle ${b.dir} --console-socket ${sock} ${b.id} && ${OCI} --root ${root} start ${b.id}; wait`], { encoding: "utf8", timeout: 20_000 });
    assert.match(py.stdout, /\/dev\/pts\/0/, py.stderr);
    oci(["delete", "--force", b.id]);
    assertNothingLeft(b.id);
  });

  test("--preserve-fds passes extra fds; every other fd is closed", () => {
    const b = bundle((s) => { if (s.process) s.process.args = ["sh", "-c", "ls /proc/self/fd"]; });
    const r = spawnSync("sh", ["-c", `exec 3</etc/hostname 4</etc/hostname; ${OCI} --root ${root} run --preserve-fds 1 --bundle ${b.dir} ${b.id}`], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    // 0 1 2, the preserved 3, and ls's own directory fd
    assert.deepEqual(r.stdout.trim().split(/\s+/).map(Number).sort(), [0, 1, 2, 3, 4].sort());
  });

  test("runc CVE-2024-21626: a cwd through a leaked fd can't reach the host", () => {
    for (let fd = 3; fd <= 9; fd++) {
      const b = bundle((s) => { if (s.process) { s.process.cwd = `/proc/self/fd/${fd}`; s.process.args = ["sh", "-c", "pwd; ls .. | head -3"]; } });
      const r = oci(["run", "--bundle", b.dir, b.id]);
      if (r.code === 0) {
        // Only acceptable if the cwd really is inside the container.
        assert.doesNotMatch(r.stdout, /^\(unreachable\)|berth|\/run\/|\/sys\/fs\/cgroup/m, `fd ${fd}: ${r.stdout}`);
      }
      assertNothingLeft(b.id);
    }
  });

  test("runc CVE-2019-5736: the runtime's binary is a sealed copy nobody can write, invisible inside", async () => {
    const b = bundle();
    oci(["create", "--bundle", b.dir, b.id], { out: b.out });
    oci(["start", b.id]);
    // A foreground exec keeps a helper alive as the exec'd process's parent.
    const exec = spawnSync("sh", ["-c", `${OCI} --root ${root} exec ${b.id} sh -c 'ls /proc | grep -c "^[0-9]"; sleep 1' & sleep 0.5; for p in $(pgrep -f berth-helper); do readlink /proc/$p/exe; (echo x > /proc/$p/exe) 2>&1 | head -1; done; wait`], { encoding: "utf8" });
    assert.match(exec.stdout, /\/memfd:berth-helper/);
    assert.doesNotMatch(exec.stdout, /^x$/m);
    assert.match(exec.stdout, /(Text file busy|Operation not permitted|Permission denied)/);
    // Inside: only the container's own processes (init, exec'd sh, ls, grep): no helper, no node.
    const count = Number(exec.stdout.trim().split("\n")[0]);
    assert.ok(count <= 4, `processes visible inside: ${count}`);
    oci(["delete", "--force", b.id]);
  });

  test("run and create of a missing or non-executable command exit 1 as runc, and leave nothing", () => {
    for (const command of ["/bin/nope", "nope", "/bin/not-executable"]) {
      for (const verb of ["run", "create"]) {
        const b = bundle((s) => { if (s.process) s.process.args = [command]; });
        const berth = oci([verb, "--bundle", b.dir, b.id], { out: b.out });
        const ref = runc([verb, "--bundle", b.dir, `${b.id}-runc`], { out: `${b.out}.runc` });
        assertLikeRunc(`${verb} of ${command}`, berth, ref, 1);
        assert.match(berth.stderr, new RegExp(command.replace(/[/.]/g, "\\$&")), "the message names the command");
        // runc destroys the container: it does not exist afterwards.
        assertLikeRunc(`state after ${verb} of ${command}`, oci(["state", b.id]), runc(["state", `${b.id}-runc`]), 1);
        assertNothingLeft(b.id);
      }
    }
  });

  test("exec exits 255 as runc when its process can't start (the process's own code passes through)", async () => {
    const b = bundle();
    const runcId = `${b.id}-runc`;
    assert.equal(oci(["create", "--bundle", b.dir, b.id], { out: b.out }).code, 0);
    assert.equal(oci(["start", b.id]).code, 0);
    if (RUNC) {
      assert.equal(runc(["create", "--bundle", b.dir, runcId], { out: `${b.out}.runc` })?.code, 0);
      assert.equal(runc(["start", runcId])?.code, 0);
    }
    const sock = join(work, "no-such-console.sock");
    // [what, flags (before the id), command (after it), runc 1.1.5's exit code]
    const cases: [string, string[], string[], number][] = [
      ["a missing command", [], ["/bin/nope"], 255],
      ["a command not on PATH", [], ["nope"], 255],
      ["a non-executable file", [], ["/bin/not-executable"], 255],
      ["a directory", [], ["/bin"], 255],
      ["a cwd that does not exist", ["--cwd", "/nonexistent"], ["true"], 255],
      ["a --user that is not a number", ["-u", "nobody"], ["true"], 255],
      ["-t --console-socket without -d", ["-t", "--console-socket", sock], ["true"], 255],
      ["-d --console-socket without -t", ["-d", "--console-socket", sock], ["true"], 255],
      ["-t -d without --console-socket", ["-t", "-d"], ["true"], 255],
      ["a -g that is not a number (a flag error)", ["-g", "x"], ["true"], 1],
      ["the process's own exit code", [], ["sh", "-c", "exit 3"], 3],
    ];
    for (const [what, flags, command, recorded] of cases) {
      assertLikeRunc(`exec with ${what}`, oci(["exec", ...flags, b.id, ...command]), runc(["exec", ...flags, runcId, ...command]), recorded);
    }
    assertLikeRunc("exec in a container that does not exist", oci(["exec", "nosuch", "true"]), runc(["exec", "nosuch", "true"]), 255);
    assertLikeRunc("start of a running container", oci(["start", b.id]), runc(["start", runcId]), 1);
    assertLikeRunc("delete of a running container without --force", oci(["delete", b.id]), runc(["delete", runcId]), 1);
    assert.equal(state(b.id).status, "running", "the refused delete changed nothing");

    assert.equal(oci(["kill", b.id, "KILL"]).code, 0);
    runc(["kill", runcId, "KILL"]);
    await waitFor("stopped", () => state(b.id).status === "stopped");
    if (RUNC) await waitFor("runc's stopped", () => (JSON.parse(runc(["state", runcId])?.stdout ?? "{}") as { status?: string }).status === "stopped");
    assertLikeRunc("exec in a stopped container", oci(["exec", b.id, "true"]), runc(["exec", runcId, "true"]), 255);
    assertLikeRunc("kill of a stopped container", oci(["kill", b.id]), runc(["kill", runcId]), 1);
    assertLikeRunc("start of a stopped container", oci(["start", b.id]), runc(["start", runcId]), 1);
    assert.equal(oci(["delete", b.id]).code, 0);
    runc(["delete", runcId]);
    assertNothingLeft(b.id);
  });

  test("an AppArmor profile without AppArmor on the host: exec --apparmor warns as create does, and runs", { skip: existsSync("/sys/kernel/security/apparmor") && "AppArmor is enabled here" }, () => {
    const warning = /^berth-oci: warning: process\.apparmorProfile "x" is not applied: AppArmor is not enabled on this host$/m;
    const b = bundle((s) => { if (s.process) s.process.apparmorProfile = "x"; });
    const c = oci(["create", "--bundle", b.dir, b.id], { out: b.out });
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stderr, warning);
    assert.equal(oci(["start", b.id]).code, 0);
    const plain = oci(["exec", b.id, "true"]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stderr, "", "no profile asked for: no warning");
    const withFlag = oci(["exec", "--apparmor", "x", b.id, "echo", "ran"]);
    assert.equal(withFlag.code, 0, withFlag.stderr);
    assert.equal(withFlag.stdout, "ran\n");
    assert.match(withFlag.stderr, warning);
    const procFile = join(b.dir, "process.json");
    writeFileSync(procFile, JSON.stringify({ args: ["true"], cwd: "/", user: { uid: 0, gid: 0 }, apparmorProfile: "x" }));
    const fromJson = oci(["exec", "--process", procFile, b.id]);
    assert.equal(fromJson.code, 0, fromJson.stderr);
    assert.match(fromJson.stderr, warning);
    assert.equal(oci(["delete", "--force", b.id]).code, 0);
    assertNothingLeft(b.id);
  });

  test("--console-socket without a terminal, or on a foreground run, is refused as runc; so are a bad bundle and an unknown id", () => {
    const sock = join(work, "no-such-console.sock");
    const quick = bundle((s) => { if (s.process) s.process.args = ["true"]; });
    const tty = bundle((s) => { if (s.process) { s.process.terminal = true; s.process.args = ["true"]; } });
    const cases: [string, string, string[]][] = [
      ["create --console-socket of a process without a terminal", quick.dir, ["create", "--console-socket", sock]],
      ["run -d --console-socket of a process without a terminal", quick.dir, ["run", "-d", "--console-socket", sock]],
      ["run --console-socket in the foreground", tty.dir, ["run", "--console-socket", sock]],
      ["create of a terminal without --console-socket", tty.dir, ["create"]],
      ["create with a bundle that does not exist", join(work, "no-such-bundle"), ["create"]],
    ];
    for (const [i, [what, dir, verb]] of cases.entries()) {
      const id = `${quick.id}-${i}`;
      assertLikeRunc(what, oci([...verb, "--bundle", dir, id], { out: quick.out }), runc([...verb, "--bundle", dir, `${id}-runc`], { out: `${quick.out}.runc` }), 1);
      assertNothingLeft(id);
    }
    for (const verb of ["state", "kill", "start", "delete"]) {
      const r = oci([verb, "nosuch"]);
      assertLikeRunc(`${verb} of an unknown id`, r, runc([verb, "nosuch"]), 1);
      assert.match(r.stderr, /container "nosuch" does not exist/);
    }
  });

  test("features and spec; checkpoint and restore refused", () => {
    const f = JSON.parse(oci(["features"]).stdout) as { ociVersionMin: string; mountOptions: string[]; linux: { namespaces: string[]; seccomp: { enabled: boolean } } };
    assert.equal(f.ociVersionMin, "1.0.0");
    // Idmapped mounts are refused, so not advertised; tmpcopyup works.
    assert.ok(f.mountOptions.includes("tmpcopyup"));
    assert.deepEqual(f.mountOptions.filter((o) => o.includes("idmap")), []);
    assert.ok(f.linux.namespaces.includes("pid"));
    assert.equal(f.linux.seccomp.enabled, true);
    const dir = join(work, "specdir");
    mkdirSync(dir);
    assert.equal(oci(["spec", "--bundle", dir]).code, 0);
    const s = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Spec;
    assert.equal(s.root?.path, "rootfs");
    assert.equal(oci(["spec", "--bundle", dir]).code, 1, "refuses to overwrite");
    const missing = oci(["spec", "--bundle", join(work, "no-such-dir")]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, `berth-oci: --bundle ${join(work, "no-such-dir")}: no such directory\n`);
    // No CRIU: checkpoint and restore are refused in one line whatever their flags, as unsupported (not unknown).
    for (const args of [["checkpoint", "--image-path", join(work, "img"), "someid"], ["restore", "-d", "--bundle", dir, "someid"]]) {
      const r = oci(args);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, "berth-oci: checkpoint/restore is not supported (no CRIU support)\n", args[0]);
    }
  });
});
