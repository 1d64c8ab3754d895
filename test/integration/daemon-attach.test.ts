// The engine against docker's behaviour where dockerd 20.10 on this machine was the reference: detach
// keys (docker CLI under `script` for a pty, and raw hijacked API connections for the daemon's own
// detection), execs that outlive their client, network and block I/O in stats, commit of a container
// made from the built-in `host` image.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { BERTH_BIN, isRoot } from "../helpers/berth.js";
import { containerCgroups, DOCKER, ok, TestDaemon, waitFor } from "../helpers/daemon.js";

const skip = !isRoot ? "needs root" : !DOCKER ? "needs the docker CLI" : false;

/** A docker (or berth) CLI command on a pty (util-linux `script`), fed from a pipe: what a terminal user types. */
class PtyDocker {
  readonly proc: ChildProcess;
  output = "";
  readonly exited: Promise<number | null>;

  constructor(d: TestDaemon, command: string, cli = DOCKER) {
    // exec: the CLI is script's child whatever $SHELL is (dash would stay in between and take the signals the tests send).
    this.proc = spawn("script", ["-qec", `exec ${cli} ${command}`, "/dev/null"], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, DOCKER_HOST: d.host, BERTH_HOST: d.host, DOCKER_CONFIG: join(d.root, "docker-config"), TERM: "dumb" },
    });
    this.proc.stdout?.on("data", (c: Buffer) => { this.output += c.toString("latin1"); });
    this.proc.stderr?.on("data", (c: Buffer) => { this.output += c.toString("latin1"); });
    this.exited = new Promise((resolve) => this.proc.on("exit", (code) => resolve(code)));
  }

  type(s: string): void {
    this.proc.stdin?.write(Buffer.from(s, "latin1"));
  }

  /** Types a command that prints a computed marker and waits for it: input really reaches the shell. */
  async ready(n: number): Promise<void> {
    this.type(`echo mark-$((${n}*2))\r`);
    await waitFor(`mark-${n * 2} in ${JSON.stringify(this.output)}`, () => this.output.includes(`mark-${n * 2}`), 20_000);
  }

  async done(): Promise<number | null> {
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 20_000);
    const code = await this.exited;
    clearTimeout(timer);
    this.proc.stdin?.end();
    return code;
  }
}

/** A raw hijacked API request: writes `parts` one after another, resolves with what came back once the daemon closes. */
function rawHijack(socketPath: string, path: string, body: string, parts: Buffer[]): Promise<{ head: string; data: Buffer; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath);
    let buf = Buffer.alloc(0);
    let head = "";
    let sent = false;
    const timer = setTimeout(() => { s.destroy(); resolve({ head, data: buf, closedByServer: false }); }, 15_000);
    s.on("error", reject);
    s.on("data", async (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (!head) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        head = buf.subarray(0, end).toString();
        buf = buf.subarray(end + 4);
      }
      if (!sent && head.startsWith("HTTP/1.1 101")) {
        sent = true;
        for (const p of parts) {
          s.write(p);
          // Separate writes, so that the sequence may arrive split across reads.
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    });
    s.on("end", () => { clearTimeout(timer); s.destroy(); resolve({ head, data: buf, closedByServer: true }); });
    s.write(`POST ${path} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  });
}

describe("engine vs docker: detach keys, exec clients, stats I/O, commit of host containers", { skip, concurrency: false }, () => {
  let d: TestDaemon;
  const ids: string[] = [];

  before(async () => {
    d = new TestDaemon("berth-da-");
    await d.start();
  });

  after(async () => {
    const left = await d.destroy();
    assert.deepEqual(left, []);
    assert.deepEqual(containerCgroups(ids), []);
  });

  const running = (name: string) => ok(d.docker(["inspect", "-f", "{{.State.Running}}", name]), "inspect").trim() === "true";

  test("docker run -it, attach, start -ai, exec -it: ctrl-p ctrl-q (or --detach-keys) detaches; the container and the exec keep running", async () => {
    const run = new PtyDocker(d, "run -it --name dk host sh");
    await run.ready(1);
    run.type("\x10\x11");
    assert.equal(await run.done(), 0, run.output);
    ids.push(ok(d.docker(["inspect", "-f", "{{.Id}}", "dk"]), "inspect").trim());
    assert.ok(running("dk"), "the container runs on after docker run -it detached");

    // stdin still reaches the shell after a detach (docker run -it is StdinOnce: the client's going
    // away must not close a tty container's stdin).
    const att = new PtyDocker(d, "attach dk");
    await att.ready(2);
    att.type("echo attached > /tmp/a\r");
    await waitFor("/tmp/a", () => d.docker(["exec", "dk", "cat", "/tmp/a"]).stdout === "attached\n");
    att.type("\x10\x11");
    assert.equal(await att.done(), 1, att.output);
    assert.match(att.output, /read escape sequence/);
    assert.ok(running("dk"));

    const custom = new PtyDocker(d, "attach --detach-keys ctrl-x,y dk");
    await custom.ready(3);
    custom.type("\x18y");
    assert.equal(await custom.done(), 1, custom.output);
    assert.match(custom.output, /read escape sequence/);
    assert.ok(running("dk"));

    ok(d.docker(["stop", "-t", "1", "dk"]), "stop");
    const start = new PtyDocker(d, "start -ai dk");
    await start.ready(4);
    start.type("\x10\x11");
    assert.equal(await start.done(), 0, start.output);
    assert.ok(running("dk"));

    const ex = new PtyDocker(d, "exec -it dk sh");
    await ex.ready(5);
    ex.type("exec sleep 4242\r");
    await waitFor("the exec'd sleep", () => d.docker(["exec", "dk", "ps", "-eo", "args"]).stdout.includes("sleep 4242"));
    ex.type("\x10\x11");
    assert.equal(await ex.done(), 1, ex.output);
    assert.match(ex.output, /read escape sequence/);
    assert.ok(d.docker(["exec", "dk", "ps", "-eo", "args"]).stdout.includes("sleep 4242"), "the exec runs on after its client detached");
    assert.ok(running("dk"));
  });

  test("berth run -it, attach, start -ai, exec -it detach with the keys (or --detach-keys) as docker's CLI does", async () => {
    const berth = `${process.execPath} ${BERTH_BIN}`;
    const run = new PtyDocker(d, "run -it --name bk host sh", berth);
    await run.ready(11);
    run.type("\x10\x11");
    assert.equal(await run.done(), 0, run.output);
    ids.push(ok(d.docker(["inspect", "-f", "{{.Id}}", "bk"]), "inspect").trim());
    assert.ok(running("bk"), "berth run -it detached, the container runs on");
    const att = new PtyDocker(d, "attach --detach-keys ctrl-x,y bk", berth);
    await att.ready(12);
    att.type("\x18y");
    assert.equal(await att.done(), 1, att.output);
    assert.match(att.output, /read escape sequence/);
    assert.ok(running("bk"));
    const ex = new PtyDocker(d, "exec -it bk sh", berth);
    await ex.ready(13);
    ex.type("exec sleep 4343\r");
    await waitFor("the exec'd sleep", () => d.docker(["exec", "bk", "ps", "-eo", "args"]).stdout.includes("sleep 4343"));
    ex.type("\x10\x11");
    assert.equal(await ex.done(), 1, ex.output);
    assert.ok(d.docker(["exec", "bk", "ps", "-eo", "args"]).stdout.includes("sleep 4343"));
    ok(d.docker(["rm", "-f", "bk"]), "rm");
    ids.push(ok(d.berth(["create", "-it", "--name", "bk2", "host", "sh"]), "create").trim());
    const start = new PtyDocker(d, "start -ai bk2", berth);
    await start.ready(14);
    start.type("\x10\x11");
    assert.equal(await start.done(), 0, start.output);
    assert.ok(running("bk2"));
    const bad = d.berth(["run", "--detach-keys", "ctrl-1", "host", "true"]);
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /Invalid detach keys \(ctrl-1\) provided/);
  });

  test("run -it, exec -it and attach to a tty container refuse a stdin that is not a terminal, as docker's CLI: exit 1, nothing created", async () => {
    const id = ok(d.docker(["run", "-d", "-t", "--name", "ttyc", "host", "sleep", "1000"]), "run -d -t").trim();
    ids.push(id);
    const before = ok(d.docker(["ps", "-aq"]), "ps").trim();
    for (const cli of ["docker", "berth"] as const) {
      for (const args of [["run", "-it", "--rm", "host", "true"], ["exec", "-it", "ttyc", "true"], ["attach", "ttyc"]]) {
        const r = d[cli](args, { input: "" });
        assert.equal(r.code, 1, `${cli} ${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, /the input device is not a TTY/, `${cli} ${args.join(" ")}`);
      }
      // Two execs with a tty in a row (docker's, then berth's): an exec's pty bound on /dev/console stayed
      // stacked there after it ended, and the next exec -t failed ("set up console").
      assert.equal(d[cli](["exec", "-t", "ttyc", "echo", "hi"], { input: "" }).stdout.trim(), "hi", "-t alone needs no terminal here");
      assert.match(ok(d[cli](["run", "-d", "-it", "--rm", "host", "true"], { input: "" }), "run -d -it"), /^[0-9a-f]{64}\n$/, "-d attaches no stdin");
    }
    assert.equal(ok(d.docker(["exec", "ttyc", "grep", "-c", " /dev/console ", "/proc/self/mountinfo"]), "mountinfo").trim(), "1", "the init's console only");
    const berthInProcess = spawnSync(process.execPath, [BERTH_BIN, "run", "-it", "--rm", "host", "true"], { input: "", encoding: "utf8", env: { ...process.env, BERTH_NO_DAEMON: "1" } });
    assert.equal(berthInProcess.status, 1, berthInProcess.stderr);
    assert.match(berthInProcess.stderr, /the input device is not a TTY/);
    // The -d --rm ones go away by themselves; the refused ones never existed.
    await waitFor("only the tty container left", () => ok(d.docker(["ps", "-aq"]), "ps").trim() === before);
  });

  test("berth run -t passes a SIGTERM it gets on to the container, as docker's CLI does (it died and left the container)", async () => {
    const berth = `${process.execPath} ${BERTH_BIN}`;
    const run = new PtyDocker(d, `run --rm -t --name sigt host sh -c 'trap "echo got-term; exit 11" TERM; echo sh-ready; while :; do sleep 0.2; done'`, berth);
    await waitFor(`sh-ready in ${JSON.stringify(run.output)}`, () => run.output.includes("sh-ready"), 20_000);
    process.kill(childPid(run.proc.pid as number), "SIGTERM");
    assert.equal(await run.done(), 11, run.output);
    assert.match(run.output, /got-term/);
    await waitFor("the --rm container gone", () => d.docker(["inspect", "sigt"]).code !== 0);
  });

  test("the daemon finds the detach keys in a tty attach's stdin (split across reads), closes the stream, and publishes detach", async () => {
    const id = ok(d.docker(["run", "-d", "-it", "--name", "catf", "host", "sh", "-c", "cat > /f"]), "run").trim();
    ids.push(id);
    const since = Math.floor(Date.now() / 1000) - 1;
    const path = "/v1.43/containers/catf/attach?stream=1&stdin=1&stdout=1&stderr=1";
    const r = await rawHijack(d.socket, path, "", [Buffer.from("before\n\x10"), Buffer.from("\x11after\n")]);
    assert.match(r.head, /^HTTP\/1.1 101/);
    assert.ok(r.closedByServer, "the daemon closes the stream at the detach keys");
    // ctrl-p alone is input; custom keys replace the default ones.
    const r2 = await rawHijack(d.socket, `${path}&detachKeys=ctrl-x,y`, "", [Buffer.from("p\x10q\n"), Buffer.from("\x18"), Buffer.from("y"), Buffer.from("dropped\n")]);
    assert.ok(r2.closedByServer);
    await waitFor("/f", () => d.docker(["exec", "catf", "cat", "/f"]).stdout === "before\np\x10q\n");
    assert.ok(running("catf"));
    const ev = ok(d.docker(["events", "--since", String(since), "--until", String(Math.floor(Date.now() / 1000) + 1), "--filter", "container=catf", "--format", "{{.Action}}"]), "events");
    assert.deepEqual(ev.trim().split("\n").filter((a) => a === "detach"), ["detach", "detach"]);
    const bad = await d.api("POST", `/containers/catf/attach?stream=1&stdin=1&detachKeys=ctrl-1`);
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, { message: "Invalid detach keys (ctrl-1) provided" });

    // An exec with a tty: the stream closes, the exec runs on (exec_detach).
    const created = await d.api("POST", "/containers/catf/exec", { Cmd: ["sh", "-c", "cat > /e"], AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: true });
    const execId = (created.body as { Id: string }).Id;
    const r3 = await rawHijack(d.socket, `/v1.43/exec/${execId}/start`, JSON.stringify({ Detach: false, Tty: true }), [Buffer.from("hello\n\x10"), Buffer.from("\x11more\n")]);
    assert.ok(r3.closedByServer);
    await waitFor("/e", () => d.docker(["exec", "catf", "cat", "/e"]).stdout === "hello\n");
    const info = await d.api("GET", `/exec/${execId}/json`);
    assert.equal((info.body as { Running: boolean }).Running, true);
    const badExec = await d.api("POST", "/containers/catf/exec", { Cmd: ["true"], DetachKeys: "ctrl-1" });
    assert.equal(badExec.status, 400);
    assert.match((badExec.body as { message: string }).message, /Invalid escape keys \(ctrl-1\) provided/);
  });

  test("an exec outlives its client (docker exec killed with SIGKILL), as in docker; without a tty its stdin is closed", async () => {
    const id = ok(d.docker(["run", "-d", "--name", "exk", "host", "sleep", "1000"]), "run").trim();
    ids.push(id);
    const lines = () => Number(d.docker(["exec", "exk", "sh", "-c", "cat /tmp/ticks 2>/dev/null | wc -l"]).stdout.trim() || "0");
    const env = { ...process.env, DOCKER_HOST: d.host, DOCKER_CONFIG: join(d.root, "docker-config") };

    // A tty exec that keeps writing output after its client is gone.
    const tty = new PtyDocker(d, "exec -it exk sh -c 'echo up; while true; do echo tick; echo t >> /tmp/ticks; sleep 0.1; done'");
    await waitFor("up", () => tty.output.includes("up"), 20_000);
    process.kill(childPid(tty.proc.pid as number), "SIGKILL");
    await tty.done();
    // Output went on for a while after the client died (each tick also went to the daemon).
    const n0 = lines();
    await waitFor("more ticks", () => lines() >= n0 + 10, 20_000);
    assert.ok(d.docker(["exec", "exk", "ps", "-eo", "args"]).stdout.includes("while true"), "the tty exec runs on");

    // Without a tty, with stdin: the exec's stdin ends with the client, so cat returns.
    const piped = spawn(DOCKER as string, ["exec", "-i", "exk", "sh", "-c", "echo started; cat; echo eof > /tmp/eof"], { stdio: ["pipe", "pipe", "ignore"], env });
    let out = "";
    piped.stdout.on("data", (c: Buffer) => { out += c.toString(); });
    await waitFor("started", () => out.includes("started"), 20_000);
    piped.kill("SIGKILL");
    await waitFor("/tmp/eof", () => d.docker(["exec", "exk", "cat", "/tmp/eof"]).stdout === "eof\n", 20_000);
  });

  test("stats: network I/O of the container's interfaces (not lo) and block I/O from the cgroup; docker stats shows both", async () => {
    const id = ok(d.docker(["run", "-d", "--name", "io", "--network", "bridge", "host", "sleep", "1000"]), "run").trim();
    ids.push(id);
    interface Stats { networks?: Record<string, { rx_bytes: number; tx_bytes: number; rx_packets: number; tx_packets: number }>; blkio_stats: { io_service_bytes_recursive: { op: string; value: number }[] | null; io_serviced_recursive: unknown[] | null } }
    const stats = async () => (await d.api("GET", "/containers/io/stats?stream=0&one-shot=1")).body as Stats;
    const before = await stats();
    assert.deepEqual(Object.keys(before.networks ?? {}), ["eth0"], "eth0 only: lo is not reported");
    // Traffic that leaves through eth0: a TCP connection to the gateway (refused: a SYN out, a RST in).
    // Traffic on the container's lo does not count.
    const gw = ok(d.docker(["inspect", "-f", "{{.NetworkSettings.Gateway}}", "io"]), "inspect").trim();
    assert.match(gw, /^\d+\.\d+\.\d+\.\d+$/);
    d.docker(["exec", "io", "bash", "-c", `for i in 1 2 3; do (exec 3<>/dev/tcp/${gw}/9) 2>/dev/null; done`]);
    const bytes = (s: Stats, op: string) => (s.blkio_stats.io_service_bytes_recursive ?? []).filter((e) => e.op.toLowerCase() === op).reduce((a, e) => a + e.value, 0);
    // 4 MiB written with O_DIRECT, so they reach the disk as the container's I/O.
    ok(d.docker(["exec", "io", "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=4", "oflag=direct"]), "dd");
    const after = await stats();
    const [b, a] = [before.networks?.eth0, after.networks?.eth0];
    assert.ok(a && b);
    assert.ok(a.tx_bytes > b.tx_bytes && a.tx_packets >= b.tx_packets + 3, `tx ${b.tx_bytes} -> ${a.tx_bytes}`);
    assert.ok(a.rx_bytes > b.rx_bytes && a.rx_packets >= b.rx_packets + 3, `rx ${b.rx_bytes} -> ${a.rx_bytes}`);
    assert.ok(bytes(after, "write") - bytes(before, "write") >= 4 << 20, `block writes ${bytes(before, "write")} -> ${bytes(after, "write")}`);
    assert.ok((after.blkio_stats.io_serviced_recursive ?? []).length > 0);

    const row = ok(d.docker(["stats", "--no-stream", "--format", "{{.NetIO}}|{{.BlockIO}}", "io"]), "stats").trim();
    const [net, block] = row.split("|");
    assert.doesNotMatch(net, /^0B \/ 0B$/, row);
    assert.match(block, /^[\d.]+[kMG]?B \/ [\d.]+MB$/, row);
    assert.ok(Number(/\/ ([\d.]+)MB$/.exec(block)?.[1]) >= 4.19, row);

    // --network none: no interface of its own, so no networks (as docker).
    const none = ok(d.docker(["run", "-d", "--name", "nonet", "--network", "none", "host", "sleep", "1000"]), "run").trim();
    ids.push(none);
    const s = (await d.api("GET", "/containers/nonet/stats?stream=0&one-shot=1")).body as Stats;
    assert.equal(s.networks, undefined);
  });

  test("commit of a container from the built-in host image: the host rootfs becomes the base layer; the new image runs", () => {
    const id = ok(d.docker(["run", "--name", "fromhost", "--network", "none", "host", "sh", "-c", "echo hi > /f; rm /usr/bin/ls"]), "run");
    assert.equal(id, "");
    ids.push(ok(d.docker(["inspect", "-f", "{{.Id}}", "fromhost"]), "inspect").trim());
    assert.match(ok(d.docker(["commit", "-m", "from host", "fromhost", "hostcommit:1"]), "commit"), /^sha256:[0-9a-f]{64}\n$/);
    assert.equal(ok(d.docker(["run", "--rm", "--network", "none", "hostcommit:1", "cat", "/f"]), "run"), "hi\n");
    // The deletion is a whiteout over the host layer; the rest of the host image is there.
    const r = d.docker(["run", "--rm", "--network", "none", "hostcommit:1", "sh", "-c", "test -e /usr/bin/ls && echo present || echo gone; id -u"]);
    assert.equal(ok(r, "run"), "gone\n0\n");
    assert.equal(ok(d.docker(["image", "inspect", "-f", "{{len .RootFS.Layers}} {{.Config.Cmd}}", "hostcommit:1"]), "image inspect").trim(), "2 [sh -c echo hi > /f; rm /usr/bin/ls]");
    assert.match(ok(d.docker(["history", "hostcommit:1"]), "history"), /berth commit\s.*from host[\s\S]*the built-in host image/);
    // The berth CLI, and a second commit of another host container reuses the same host layer.
    ok(d.berth(["run", "-d", "--name", "fromhost2", "--network", "none", "host", "sh", "-c", "echo two > /g; sleep 100"]), "berth run -d");
    ids.push(ok(d.docker(["inspect", "-f", "{{.Id}}", "fromhost2"]), "inspect").trim());
    ok(d.berth(["commit", "fromhost2", "hostcommit:2"]), "berth commit");
    assert.equal(ok(d.berth(["run", "--rm", "--network", "none", "hostcommit:2", "cat", "/g"]), "berth run"), "two\n");
    const layers = (tag: string) => ok(d.docker(["image", "inspect", "-f", "{{index .RootFS.Layers 0}}", tag]), "image inspect").trim();
    assert.equal(layers("hostcommit:1"), layers("hostcommit:2"));
    ok(d.docker(["rm", "-f", "fromhost", "fromhost2"]), "rm");
    ok(d.docker(["rmi", "hostcommit:1", "hostcommit:2"]), "rmi");
  });
});

/** The one child of a process (script's docker). */
function childPid(pid: number): number {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  assert.equal(kids.length, 1, `children of ${pid}: ${kids.join(" ")}`);
  return kids[0];
}
