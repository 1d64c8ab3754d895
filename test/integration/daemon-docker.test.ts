// The engine end to end, as root: a private `berth daemon` driven by the real docker CLI, dockerode and
// berth's own CLI; every command checked by its real output. Daemon SIGKILL/restart with running and
// restart-policy containers; health checks; crash during run/rm; nothing left behind.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { berth, isRoot } from "../helpers/berth.js";
import { containerCgroups, DOCKER, ok, TestDaemon, waitFor } from "../helpers/daemon.js";

const skip = !isRoot ? "needs root" : !DOCKER ? "needs the docker CLI" : false;

describe("berth daemon via the docker CLI", { skip, concurrency: false }, () => {
  let d: TestDaemon;
  const ids: string[] = [];

  before(async () => {
    d = new TestDaemon();
    await d.start();
  });

  after(async () => {
    const left = await d.destroy();
    assert.deepEqual(left, []);
    assert.deepEqual(containerCgroups(ids), []);
  });

  test("version, info and ping negotiate API 1.43", async () => {
    const v = ok(d.docker(["version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}"]), "version");
    assert.equal(v.trim(), "1.43 linux");
    // The CLIs print the version the engine reports.
    const engine = ok(d.docker(["version", "--format", "{{.Server.Version}}"]), "version").trim();
    assert.equal(berth(["--version"]).stdout, `Berth version ${engine}\n`);
    assert.match(berth(["-v"]).stdout, new RegExp(`^Berth version ${engine.replace(/\./g, "\\.")}\n$`));
    const info = ok(d.docker(["info", "--format", "{{.Driver}} {{.DockerRootDir}} {{.OSType}}"]), "info");
    assert.equal(info.trim(), `overlay2 ${d.dataRoot} linux`);
    assert.equal(ok(d.docker(["info", "--format", "{{.NCPU}}"]), "info").trim(), String(availableParallelism()));
    const ping = await d.api("GET", "/_ping");
    assert.equal(ping.text, "OK");
    assert.equal(ping.headers["api-version"], "1.43");
    const old = await d.api("GET", "/v1.12/version");
    assert.equal(old.status, 400);
    assert.match((old.body as { message: string }).message, /too old/);
  });

  test("run in the foreground: output, exit codes, stdin, 126/127, --rm", () => {
    assert.equal(ok(d.docker(["run", "--rm", "host", "sh", "-c", "echo out; echo err >&2"]), "run"), "out\n");
    assert.equal(d.docker(["run", "--rm", "host", "sh", "-c", "exit 7"]).code, 7);
    const r = d.docker(["run", "--rm", "-i", "host", "sh", "-c", "read x; echo got:$x; exit 4"], { input: "hello\n" });
    assert.equal(r.code, 4);
    assert.equal(r.stdout, "got:hello\n");
    const missing = d.docker(["run", "--rm", "host", "/nonexistent"]);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /nonexistent/);
    assert.equal(d.docker(["run", "--rm", "host", "/etc/passwd"]).code, 126);
    assert.equal(ok(d.docker(["ps", "-aq"]), "ps").trim(), "");
    assert.equal(d.docker(["run", "--rm", "--memory", "8m", "host", "sh", "-c", "x=a; while true; do x=$x$x; done"]).code, 137);
  });

  test("run -i with 5 MB piped through cat: every byte comes back, with docker's CLI and berth's (the daemon holds the output back, never drops it)", () => {
    let input = "";
    for (let i = 0; input.length < 5 << 20; i++) input += `line ${i} ${"x".repeat(i % 97)}\n`;
    for (const cli of ["docker", "berth"] as const) {
      const r = d[cli](["run", "--rm", "-i", "host", "cat"], { input, timeoutMs: 60_000 });
      assert.equal(r.code, 0, `${cli}: ${r.stderr}`);
      assert.equal(r.stdout.length, input.length, `${cli}: bytes back`);
      assert.ok(r.stdout === input, `${cli}: the same bytes`);
    }
  });

  test("detached lifecycle: ps, logs, exec, top, stats, inspect, stop, start, restart, pause, rename, kill, wait, rm", async () => {
    const id = ok(d.docker(["run", "-d", "--name", "web", "-l", "app=web", "host", "sh", "-c", "trap 'echo bye; exit 3' TERM; echo started; while true; do sleep 0.1; done"]), "run -d").trim();
    ids.push(id);
    assert.match(id, /^[0-9a-f]{64}$/);
    await waitFor("output", () => d.docker(["logs", "web"]).stdout.includes("started"));
    const ps = ok(d.docker(["ps", "--filter", "label=app=web", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.State}}"]), "ps");
    assert.equal(ps.trim(), `${id.slice(0, 12)} web host running`);
    assert.match(ok(d.docker(["ps"]), "ps"), /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES\n[0-9a-f]{12}\s+host\s+"sh -c 'trap.*Up .*web\n$/s);
    const ex = d.docker(["exec", "-e", "X=1", "-w", "/tmp", "web", "sh", "-c", "echo $X $(pwd) $(hostname); exit 5"]);
    assert.equal(ex.code, 5);
    assert.equal(ex.stdout, `1 /tmp ${id.slice(0, 12)}\n`);
    assert.equal(ok(d.docker(["exec", "-u", "1000", "web", "id", "-u"]), "exec -u").trim(), "1000");
    assert.equal(ok(d.docker(["exec", "-i", "web", "cat"], { input: "piped" }), "exec -i"), "piped");
    assert.match(ok(d.docker(["top", "web"]), "top"), /^UID\s+PID\s+PPID.*\n.*sh -c trap/s);
    assert.match(ok(d.docker(["stats", "--no-stream", "web"]), "stats"), /CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT.*\n[0-9a-f]{12}\s+web\s+\d+\.\d+%/s);
    interface Inspect { Id: string; Name: string; State: { Status: string; Pid: number }; Config: { Labels: Record<string, string> }; HostConfig: { RestartPolicy: { Name: string } }; RestartCount: number; LogPath: string }
    const info = JSON.parse(ok(d.docker(["inspect", "web"]), "inspect")) as [Inspect];
    assert.equal(info[0].Id, id);
    assert.equal(info[0].Name, "/web");
    assert.equal(info[0].State.Status, "running");
    assert.ok(info[0].State.Pid > 0);
    assert.equal(info[0].Config.Labels.app, "web");
    assert.equal(info[0].HostConfig.RestartPolicy.Name, "no");
    assert.equal(info[0].RestartCount, 0);
    assert.ok(existsSync(info[0].LogPath));
    assert.ok("NetworkSettings" in info[0] && "Mounts" in info[0]);
    ok(d.docker(["pause", "web"]), "pause");
    assert.equal(ok(d.docker(["inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "web"]), "inspect").trim(), "paused true");
    assert.match(ok(d.docker(["ps", "--format", "{{.Status}}"]), "ps"), /\(Paused\)/);
    ok(d.docker(["unpause", "web"]), "unpause");
    ok(d.docker(["stop", "-t", "5", "web"]), "stop");
    assert.equal(ok(d.docker(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "web"]), "inspect").trim(), "exited 3");
    assert.match(ok(d.docker(["logs", "web"]), "logs"), /started\nbye\n/);
    ok(d.docker(["start", "web"]), "start");
    ok(d.docker(["restart", "-t", "1", "web"]), "restart");
    ok(d.docker(["rename", "web", "web2"]), "rename");
    assert.equal(ok(d.docker(["inspect", "-f", "{{.Name}} {{.State.Running}}", "web2"]), "inspect").trim(), "/web2 true");
    const waiter = new Promise<string>((resolve) => {
      setTimeout(() => resolve(d.docker(["wait", "web2"]).stdout.trim()), 10);
    });
    ok(d.docker(["kill", "-s", "TERM", "web2"]), "kill");
    assert.equal(await waiter, "3");
    const rm = ok(d.docker(["rm", "web2"]), "rm");
    assert.equal(rm.trim(), "web2");
    assert.equal(ok(d.docker(["ps", "-aq"]), "ps").trim(), "");
  });

  test("errors: 404 no such container, 409 name in use naming the holder, running rm refused, 400 bad JSON", async () => {
    const nosuch = d.docker(["inspect", "nosuch"]);
    assert.equal(nosuch.code, 1);
    assert.match(nosuch.stderr, /No such object: nosuch|No such container: nosuch/);
    const stop = d.docker(["stop", "nosuch"]);
    assert.match(stop.stderr, /No such container: nosuch/);
    const id = ok(d.docker(["run", "-d", "--name", "taken", "host", "sleep", "100"]), "run").trim();
    ids.push(id);
    const dup = d.docker(["run", "-d", "--name", "taken", "host", "true"]);
    assert.equal(dup.code, 125);
    assert.match(dup.stderr, new RegExp(`The container name "/taken" is already in use by container "${id}"`));
    const rmRunning = d.docker(["rm", "taken"]);
    assert.equal(rmRunning.code, 1);
    assert.match(rmRunning.stderr, /container is running: stop the container before removing or force remove/);
    ok(d.docker(["rm", "-f", "taken"]), "rm -f");
    const bad = await d.api("POST", "/v1.43/containers/create", "{nope");
    assert.equal(bad.status, 400);
    // (A string Cmd is a one-element list, as dockerd's StrSlice; a number is wrong.)
    const wrong = await d.api("POST", "/v1.43/containers/create", { Image: "host", Cmd: 5 });
    assert.equal(wrong.status, 400);
    assert.match((wrong.body as { message: string }).message, /Config\.Cmd/);
    const img = await d.api("POST", "/v1.43/containers/create", { Image: "nosuchimage:x" });
    assert.equal(img.status, 404);
    assert.match((img.body as { message: string }).message, /No such image: nosuchimage:x/);
    const unknown = await d.api("GET", "/v1.43/containers/nosuch/json");
    assert.deepEqual([unknown.status, unknown.body], [404, { message: "No such container: nosuch" }]);
  });

  test("cp both ways, export, diff, update, container prune", () => {
    const id = ok(d.docker(["run", "-d", "--name", "fs", "host", "sh", "-c", "mkdir /data; echo abc > /data/f; touch /etc/marker; sleep 100"]), "run").trim();
    ids.push(id);
    const tmp = mkdtempSync("/tmp/berth-cp-");
    try {
      writeFileSync(join(tmp, "in.txt"), "into the container\n");
      ok(d.docker(["cp", join(tmp, "in.txt"), "fs:/data/"]), "cp in");
      assert.equal(ok(d.docker(["exec", "fs", "cat", "/data/in.txt"]), "cat"), "into the container\n");
      ok(d.docker(["cp", "fs:/data", join(tmp, "out")]), "cp out");
      assert.equal(readFileSync(join(tmp, "out/f"), "utf8"), "abc\n");
      const diff = ok(d.docker(["diff", "fs"]), "diff");
      assert.match(diff, /^A \/data$/m);
      assert.match(diff, /^A \/data\/f$/m);
      // (Not a removed /etc/hostname: on the default bridge it is a bind mount, as in docker.)
      assert.match(diff, /^C \/etc$/m);
      assert.match(diff, /^A \/etc\/marker$/m);
      const exp = d.docker(["export", "-o", join(tmp, "fs.tar"), "fs"]);
      assert.equal(exp.code, 0, exp.stderr);
      assert.ok(readFileSync(join(tmp, "fs.tar")).includes(Buffer.from("data/f")));
      ok(d.docker(["update", "--memory", "64m", "--pids-limit", "50", "fs"]), "update");
      assert.equal(ok(d.docker(["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", "fs"]), "inspect").trim(), `${64 * 1024 * 1024} 50`);
      ok(d.docker(["stop", "-t", "0", "fs"]), "stop");
      // A stopped container's files are still there for cp.
      ok(d.docker(["cp", "fs:/data/f", join(tmp, "f2")]), "cp from stopped");
      assert.equal(readFileSync(join(tmp, "f2"), "utf8"), "abc\n");
      const prune = ok(d.docker(["container", "prune", "-f"]), "prune");
      assert.match(prune, new RegExp(id));
      assert.equal(ok(d.docker(["ps", "-aq"]), "ps").trim(), "");
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test("volumes: named (copy-up, kept across containers), bind ro, tmpfs, --mount, anonymous removed by rm -v", () => {
    assert.equal(ok(d.docker(["volume", "create", "--label", "k=v", "vol1"]), "volume create").trim(), "vol1");
    assert.match(ok(d.docker(["run", "--rm", "-v", "vol1:/etc", "host", "sh", "-c", "ls /etc/passwd && echo kept > /etc/mine"]), "run"), /\/etc\/passwd/);
    assert.equal(ok(d.docker(["run", "--rm", "-v", "vol1:/x", "host", "cat", "/x/mine"]), "run"), "kept\n");
    assert.match(ok(d.docker(["volume", "ls"]), "volume ls"), /DRIVER\s+VOLUME NAME\nlocal\s+vol1\n/);
    const vi = JSON.parse(ok(d.docker(["volume", "inspect", "vol1"]), "volume inspect")) as [{ Mountpoint: string; Labels: Record<string, string> }];
    assert.equal(vi[0].Mountpoint, join(d.dataRoot, "volumes/vol1/_data"));
    assert.deepEqual(vi[0].Labels, { k: "v" });
    const id = ok(d.docker(["run", "-d", "-v", "vol1:/x", "host", "sleep", "100"]), "run").trim();
    ids.push(id);
    const inUse = d.docker(["volume", "rm", "vol1"]);
    assert.equal(inUse.code, 1);
    assert.match(inUse.stderr, /volume is in use/);
    ok(d.docker(["rm", "-f", id]), "rm");
    ok(d.docker(["volume", "rm", "vol1"]), "volume rm");
    assert.match(d.docker(["volume", "inspect", "vol1"]).stderr, /no such volume/);

    const src = mkdtempSync("/tmp/berth-bind-");
    try {
      writeFileSync(join(src, "b"), "bound\n");
      const ro = d.docker(["run", "--rm", "-v", `${src}:/b:ro`, "host", "sh", "-c", "cat /b/b; echo x > /b/c"]);
      assert.equal(ro.stdout, "bound\n");
      assert.notEqual(ro.code, 0);
      assert.match(ro.stderr, /Read-only file system/);
      assert.equal(ok(d.docker(["run", "--rm", "--mount", `type=bind,source=${src},target=/m`, "host", "cat", "/m/b"]), "mount bind"), "bound\n");
    } finally {
      rmSync(src, { recursive: true, force: true });
    }
    const tm = ok(d.docker(["run", "--rm", "--tmpfs", "/scratch:size=1m", "--mount", "type=tmpfs,target=/t2", "host", "sh", "-c", "grep -E ' /(scratch|t2) ' /proc/mounts"]), "tmpfs");
    assert.match(tm, /^tmpfs \/scratch tmpfs \S*size=1024k/m);
    assert.match(tm, /^tmpfs \/t2 tmpfs /m);

    const anon = ok(d.docker(["create", "-v", "/anon", "host", "true"]), "create").trim();
    const mounts = JSON.parse(ok(d.docker(["inspect", "-f", "{{json .Mounts}}", anon]), "inspect")) as { Type: string; Name: string }[];
    assert.equal(mounts.length, 1);
    assert.equal(mounts[0].Type, "volume");
    assert.match(ok(d.docker(["volume", "ls", "-q"]), "ls"), new RegExp(mounts[0].Name));
    ok(d.docker(["rm", "-v", anon]), "rm -v");
    assert.doesNotMatch(ok(d.docker(["volume", "ls", "-q"]), "ls"), new RegExp(mounts[0].Name));
    ok(d.docker(["volume", "create", "unused"]), "create");
    assert.match(ok(d.docker(["volume", "prune", "-af"]), "prune"), /unused/);
  });

  test("restart policies: on-failure:N counts, always restarts, stop disables restarting", async () => {
    const f = ok(d.docker(["run", "-d", "--restart", "on-failure:2", "host", "sh", "-c", "echo run; exit 1"]), "run").trim();
    ids.push(f);
    await waitFor("two restarts", () => d.docker(["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", f]).stdout.trim() === "2 exited", 15_000);
    assert.equal(ok(d.docker(["logs", f]), "logs"), "run\nrun\nrun\n");
    const a = ok(d.docker(["run", "-d", "--restart", "always", "host", "sh", "-c", "sleep 0.2"]), "run").trim();
    ids.push(a);
    await waitFor("a restart", () => Number(d.docker(["inspect", "-f", "{{.RestartCount}}", a]).stdout) >= 2, 15_000);
    ok(d.docker(["stop", "-t", "1", a]), "stop");
    const n = d.docker(["inspect", "-f", "{{.RestartCount}}", a]).stdout.trim();
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(d.docker(["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", a]).stdout.trim(), `${n} exited`);
    ok(d.docker(["rm", "-f", f, a]), "rm");
  });

  test("health check turns healthy, then unhealthy: ps, inspect, health_status events", async () => {
    const since = String(Math.floor(Date.now() / 1000) - 1);
    const id = ok(d.docker(["run", "-d", "--name", "hc", "--health-cmd", "test -f /tmp/ok", "--health-interval", "200ms", "--health-retries", "2", "host", "sh", "-c", "touch /tmp/ok; sleep 100"]), "run").trim();
    ids.push(id);
    assert.match(d.docker(["inspect", "-f", "{{.State.Health.Status}}", "hc"]).stdout, /starting|healthy/);
    await waitFor("healthy", () => d.docker(["inspect", "-f", "{{.State.Health.Status}}", "hc"]).stdout.trim() === "healthy");
    assert.match(ok(d.docker(["ps", "--format", "{{.Status}}", "-f", "name=hc"]), "ps"), /Up .* \(healthy\)/);
    ok(d.docker(["exec", "hc", "rm", "/tmp/ok"]), "exec");
    await waitFor("unhealthy", () => d.docker(["inspect", "-f", "{{.State.Health.Status}}", "hc"]).stdout.trim() === "unhealthy");
    const h = JSON.parse(ok(d.docker(["inspect", "-f", "{{json .State.Health}}", "hc"]), "inspect")) as { FailingStreak: number; Log: { ExitCode: number }[] };
    assert.ok(h.FailingStreak >= 2);
    assert.ok(h.Log.length > 0 && h.Log.length <= 5);
    assert.equal(h.Log[h.Log.length - 1].ExitCode, 1);
    assert.equal(ok(d.docker(["ps", "-f", "health=unhealthy", "--format", "{{.Names}}"]), "ps").trim(), "hc");
    const ev = ok(d.docker(["events", "--since", since, "--until", String(Math.ceil(Date.now() / 1000) + 1), "--filter", "container=hc", "--filter", "event=health_status", "--format", "{{.Action}}"]), "events");
    assert.equal(ev, "health_status: healthy\nhealth_status: unhealthy\n");
    ok(d.docker(["rm", "-f", "hc"]), "rm");
  });

  test("events: create/start/die/destroy with since/until and filters", () => {
    const since = String(Date.now() / 1000 - 0.5);
    ok(d.docker(["run", "--rm", "--name", "evt", "host", "true"]), "run");
    const ev = ok(d.docker(["events", "--since", since, "--until", String(Date.now() / 1000 + 1), "--filter", "container=evt", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"]), "events");
    const actions = ev.trim().split("\n").map((l) => l.split(" ")[1]);
    for (const a of ["create", "attach", "start", "die", "destroy"]) assert.ok(actions.includes(a), `${a} in ${ev}`);
    assert.ok(actions.indexOf("create") < actions.indexOf("start") && actions.indexOf("die") < actions.indexOf("destroy"));
  });

  test("a client that disconnects mid-logs or mid-attach leaves the container and daemon as they were", async () => {
    const id = ok(d.docker(["run", "-d", "host", "sh", "-c", "while true; do echo tick; sleep 0.1; done"]), "run").trim();
    ids.push(id);
    assert.equal(d.docker(["logs", "-f", id], { timeoutMs: 700 }).code, null);
    assert.equal(d.docker(["attach", "--no-stdin", id], { timeoutMs: 700 }).code, null);
    assert.equal(ok(d.docker(["inspect", "-f", "{{.State.Running}}", id]), "inspect").trim(), "true");
    const execs = (await d.api("GET", `/v1.43/containers/${id}/json`)).body as { ExecIDs: string[] | null };
    assert.equal(execs.ExecIDs, null);
    ok(d.docker(["rm", "-f", id]), "rm");
  });

  test("images through the store: import, run, commit (changes and deletions), history, rmi", () => {
    const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
    if (!busybox) return;
    const dir = mkdtempSync("/tmp/berth-import-");
    try {
      mkdirSync(join(dir, "rootfs/bin"), { recursive: true });
      writeFileSync(join(dir, "rootfs/bin/busybox"), readFileSync(busybox), { mode: 0o755 });
      for (const a of ["sh", "cat", "ls", "rm", "echo"]) symlinkSync("busybox", join(dir, `rootfs/bin/${a}`));
      const tarball = join(dir, "rootfs.tar");
      const t = spawnSync("tar", ["-C", join(dir, "rootfs"), "-cf", tarball, "."]);
      assert.equal(t.status, 0);
      assert.match(ok(d.docker(["import", tarball, "bbtest:1"]), "import"), /^sha256:[0-9a-f]{64}\n$/);
      assert.match(ok(d.docker(["images", "--format", "{{.Repository}}:{{.Tag}}"]), "images"), /^bbtest:1$/m);
      const cid = ok(d.docker(["create", "--name", "tocommit", "bbtest:1", "sh", "-c", "echo committed > /hello; rm /bin/ls"]), "create").trim();
      ids.push(cid);
      ok(d.docker(["start", "-a", "tocommit"]), "start -a");
      assert.match(ok(d.docker(["commit", "-m", "note", "tocommit", "bbtest:2"]), "commit"), /^sha256:[0-9a-f]{64}\n$/);
      const r = d.docker(["run", "--rm", "bbtest:2", "sh", "-c", "cat /hello; ls /bin/ls"]);
      assert.equal(r.stdout, "committed\n");
      assert.notEqual(r.code, 0, "the deleted file stays deleted");
      assert.match(ok(d.docker(["history", "bbtest:2"]), "history"), /berth commit.*note/);
      const rmi = d.docker(["rmi", "bbtest:1"]);
      assert.notEqual(rmi.code, 0, "an image a container uses is not removed");
      ok(d.docker(["rm", "tocommit"]), "rm");
      ok(d.docker(["rmi", "bbtest:2", "bbtest:1"]), "rmi");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("dockerode: create, hijacked attach, start, wait, logs, exec, inspect, remove", async () => {
    const docker = new Docker({ socketPath: d.socket });
    const c = await docker.createContainer({ Image: "host", Cmd: ["sh", "-c", "read line; echo got $line; echo err >&2"], OpenStdin: true, StdinOnce: true, AttachStdin: true, AttachStdout: true, AttachStderr: true });
    ids.push(c.id);
    const stream = await c.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true });
    let outText = "";
    let errText = "";
    const { PassThrough } = await import("node:stream");
    const so = new PassThrough();
    const se = new PassThrough();
    so.on("data", (b: Buffer) => { outText += b.toString(); });
    se.on("data", (b: Buffer) => { errText += b.toString(); });
    docker.modem.demuxStream(stream, so, se);
    const waited = c.wait();
    await c.start();
    stream.end("hi\n");
    assert.equal((await waited).StatusCode, 0);
    await waitFor("output", () => outText.includes("got hi") && errText.includes("err"));
    const logs = (await c.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    assert.ok(logs.includes(Buffer.from("got hi\n")));
    assert.equal((await c.inspect()).State.Status, "exited");
    await c.remove();

    const r = await docker.createContainer({ Image: "host", Cmd: ["sleep", "100"] });
    ids.push(r.id);
    await r.start();
    const ex = await r.exec({ Cmd: ["sh", "-c", "echo in-exec; exit 2"], AttachStdout: true, AttachStderr: true });
    const es = await ex.start({ hijack: true, stdin: false });
    let exOut = "";
    const eo = new PassThrough();
    eo.on("data", (b: Buffer) => { exOut += b.toString(); });
    docker.modem.demuxStream(es, eo, eo);
    await new Promise((res) => es.on("end", res));
    assert.equal(exOut, "in-exec\n");
    assert.equal((await ex.inspect()).ExitCode, 2);
    await assert.rejects(docker.getContainer("nosuch").inspect(), (err: { statusCode: number }) => err.statusCode === 404);
    await r.remove({ force: true });
  });

  test("berth CLI through the API: run, ps, logs, exec, inspect, stop, rm, volume", () => {
    assert.equal(ok(d.berth(["run", "--rm", "host", "echo", "hi"]), "run"), "hi\n");
    assert.equal(d.berth(["run", "--rm", "host", "sh", "-c", "exit 9"]).code, 9);
    assert.equal(d.berth(["run", "--rm", "host", "nosuch"]).code, 127);
    const id = ok(d.berth(["run", "-d", "--name", "bc", "--restart", "unless-stopped", "host", "sh", "-c", "echo hello; sleep 100"]), "run -d").trim();
    ids.push(id);
    assert.match(ok(d.berth(["ps", "--format", "{{.Names}} {{.State}}"]), "ps"), /^bc running$/m);
    assert.equal(ok(d.berth(["ps", "-q", "--no-trunc"]), "ps -q").trim(), id);
    assert.equal(ok(d.berth(["exec", "bc", "sh", "-c", "echo from-exec"]), "exec"), "from-exec\n");
    const envFile = join(d.root, "exec.env");
    writeFileSync(envFile, "# a comment\nFROM_FILE=file\nBOTH=file\n");
    assert.equal(ok(d.berth(["exec", "--env-file", envFile, "-e", "BOTH=flag", "bc", "sh", "-c", "echo $FROM_FILE $BOTH"]), "exec --env-file"), "file flag\n");
    assert.equal(ok(d.berth(["logs", "bc"]), "logs"), "hello\n");
    assert.equal(ok(d.berth(["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "bc"]), "inspect").trim(), "unless-stopped");
    assert.equal(ok(d.berth(["stop", "-t", "0", "bc"]), "stop").trim(), "bc");
    assert.equal(ok(d.berth(["rm", "bc"]), "rm").trim(), "bc");
    assert.equal(ok(d.berth(["volume", "create", "bv"]), "volume create").trim(), "bv");
    assert.match(ok(d.berth(["volume", "ls"]), "volume ls"), /local\s+bv/);
    ok(d.berth(["volume", "rm", "bv"]), "volume rm");
    const bad = d.berth(["stop", "nosuch"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /No such container: nosuch/);
  });
});

describe("berth daemon: SIGKILL and restart", { skip, concurrency: false }, () => {
  test("containers keep running and logging while the daemon is gone; exits meanwhile are recorded and restart policies resume", async () => {
    const d = new TestDaemon();
    const ids: string[] = [];
    try {
      await d.start();
      const run = ok(d.docker(["run", "-d", "--name", "long", "host", "sh", "-c", "i=0; while true; do echo n$i; i=$((i+1)); sleep 0.05; done"]), "run").trim();
      const pol = ok(d.docker(["run", "-d", "--name", "pol", "--restart", "on-failure", "host", "sh", "-c", "sleep 1; echo failing; exit 2"]), "run").trim();
      const quit = ok(d.docker(["run", "-d", "--name", "quit", "host", "sh", "-c", "sleep 1; exit 6"]), "run").trim();
      ids.push(run, pol, quit);
      const pid = Number(d.docker(["inspect", "-f", "{{.State.Pid}}", "long"]).stdout);
      await d.kill9();
      const before = readFileSync(join(d.dataRoot, "containers", run, `${run}-json.log`), "utf8").split("\n").length;
      await new Promise((r) => setTimeout(r, 1500));
      const during = readFileSync(join(d.dataRoot, "containers", run, `${run}-json.log`), "utf8").split("\n").length;
      assert.ok(during > before + 5, `the log grew while the daemon was away (${before} -> ${during})`);
      process.kill(pid, 0);
      await d.start();
      assert.equal(ok(d.docker(["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "long"]), "inspect").trim(), `running ${pid}`);
      assert.equal(ok(d.docker(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "quit"]), "inspect").trim(), "exited 6");
      await waitFor("the policy container restarted", () => Number(d.docker(["inspect", "-f", "{{.RestartCount}}", "pol"]).stdout) >= 1, 15_000);
      assert.match(ok(d.docker(["logs", "pol"]), "logs"), /^failing\n/);
      // Logs are continuous across the daemon's absence, and follow keeps working.
      const lines = ok(d.docker(["logs", "long"]), "logs").trim().split("\n");
      lines.forEach((l, i) => assert.equal(l, `n${i}`));
      const follow = d.docker(["logs", "-f", "--tail", "1", "long"], { timeoutMs: 600 });
      assert.ok(follow.stdout.trim().split("\n").length >= 2);
      ok(d.docker(["stop", "-t", "1", "long"]), "stop");
      assert.equal(ok(d.docker(["inspect", "-f", "{{.State.ExitCode}}", "long"]), "inspect").trim(), "137");
    } finally {
      assert.deepEqual(await d.destroy(), []);
      assert.deepEqual(containerCgroups(ids), []);
    }
  });

  test("kill -9 of the daemon during run and rm, then a restart: no orphan processes, cgroups or mounts", async () => {
    const d = new TestDaemon();
    const ids: string[] = [];
    try {
      await d.start();
      // Mid-run: the daemon dies while a foreground run is attached.
      const fg = spawn(DOCKER as string, ["run", "--name", "fg", "host", "sh", "-c", "sleep 30"], { stdio: "ignore", env: { ...process.env, DOCKER_HOST: d.host } });
      await waitFor("fg running", async () => ((await d.api("GET", "/v1.43/containers/fg/json")).body as { State?: { Running: boolean } }).State?.Running === true);
      const fgId = ((await d.api("GET", "/v1.43/containers/fg/json")).body as { Id: string }).Id;
      ids.push(fgId);
      const many = Array.from({ length: 3 }, (_, i) => ok(d.docker(["run", "-d", "--name", `m${i}`, "host", "sleep", "100"]), "run").trim());
      ids.push(...many);
      // Mid-rm: start removals and kill the daemon while they run.
      const pending = many.map((id) => d.api("DELETE", `/v1.43/containers/${id}?force=1`).catch(() => undefined));
      await new Promise((r) => setTimeout(r, 30));
      await d.kill9();
      await Promise.all(pending);
      fg.kill("SIGKILL");
      await d.start();
      const left = ok(d.docker(["ps", "-aq", "--no-trunc"]), "ps").trim().split("\n").filter(Boolean);
      for (const id of left) assert.ok(ids.includes(id));
      ok(d.docker(["rm", "-f", ...left]), "rm");
      assert.equal(ok(d.docker(["ps", "-aq"]), "ps").trim(), "");
      await waitFor("cgroups gone", () => containerCgroups(ids).length === 0, 10_000);
    } finally {
      assert.deepEqual(await d.destroy(), []);
      assert.deepEqual(containerCgroups(ids), []);
    }
  });
});
