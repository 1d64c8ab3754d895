// Gaps an audit found between a berth daemon and dockerd, driven with docker's own CLI against a private
// daemon (test/helpers/daemon.ts): one daemon per data root, image list filters, load's output, commit
// --change, system prune, untag events, a string Cmd, restart policies after a manual start and a daemon
// restart, ps -l, and volume prune/options. Needs root, the docker CLI and busybox-static; no network.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { BERTH_BIN, isRoot } from "../helpers/berth.js";
import { DOCKER, TestDaemon, type Run, waitFor } from "../helpers/daemon.js";

const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
const skip = !isRoot ? "needs root" : !DOCKER ? "needs the docker CLI" : !BUSYBOX ? "needs busybox-static" : false;
const show = (r: Run) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

describe("berth daemon: the audit's gaps against dockerd", { skip, concurrency: false }, () => {
  let d: TestDaemon;
  let tar = "";
  const ok = (r: Run, what: string) => { assert.equal(r.code, 0, `${what}: ${show(r)}`); return r.stdout; };
  const inspect = (fmt: string, ref: string) => ok(d.docker(["inspect", "-f", fmt, ref]), `inspect ${ref}`).trim();

  before(async () => {
    d = new TestDaemon("berth-audit-");
    await d.start();
    const rootfs = join(d.root, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    copyFileSync(BUSYBOX as string, join(rootfs, "bin/busybox"));
    for (const a of ["sh", "true", "sleep"]) symlinkSync("busybox", join(rootfs, "bin", a));
    tar = join(d.root, "rootfs.tar");
    assert.equal(spawnSync("tar", ["-C", rootfs, "-cf", tar, "."]).status, 0);
    ok(d.docker(["import", tar, "bb"]), "import");
  });

  after(async () => {
    const left = await d.destroy();
    assert.deepEqual(left, []);
  });

  test("a second daemon on the same data root is refused, naming the first one's pid", () => {
    const r = spawnSync(process.execPath, [BERTH_BIN, "daemon", "-H", `unix://${d.root}/b2.sock`, "--data-root", d.dataRoot, "--exec-root", join(d.root, "run2")], { encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`another berth daemon \\(pid ${d.proc?.pid}\\) is using data root ${d.dataRoot}`));
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.ok(!existsSync(`${d.root}/b2.sock`));
    // The first daemon still serves.
    ok(d.docker(["version"]), "version");
  });

  test("commit --change applies every instruction docker allows; others are refused", () => {
    const c = ok(d.docker(["create", "bb", "true"]), "create").trim();
    ok(d.docker(["commit", "--change", "VOLUME /data", "--change", "HEALTHCHECK CMD true", "--change", "EXPOSE 8080", "--change", "ENV A=1", c, "bbv"]), "commit");
    assert.equal(inspect("{{json .Config.Volumes}}", "bbv"), '{"/data":{}}');
    assert.equal(inspect("{{json .Config.Healthcheck.Test}}", "bbv"), '["CMD-SHELL","true"]');
    assert.equal(inspect("{{json .Config.ExposedPorts}}", "bbv"), '{"8080/tcp":{}}');
    assert.match(inspect("{{json .Config.Env}}", "bbv"), /"A=1"/);
    const bad = d.docker(["commit", "--change", "RUN true", c, "bbbad"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /run is not a valid change command/);
    // berth's own commit has docker's -c, -m, -a and --pause.
    ok(d.berth(["commit", "-c", "USER nobody", "-c", 'CMD ["sh"]', "-m", "the message", "-a", "someone", "--pause=false", c, "bbc:1"]), "berth commit");
    assert.equal(inspect("{{.Config.User}} {{json .Config.Cmd}} {{.Author}}", "bbc:1"), 'nobody ["sh"] someone');
    assert.match(ok(d.docker(["history", "--format", "{{.Comment}}", "bbc:1"]), "history"), /^the message$/m);
    ok(d.docker(["rm", c]), "rm");
    ok(d.docker(["rmi", "bbc:1"]), "rmi");
  });

  test("images: filters and the reference argument; bogus filters are a 400", () => {
    const bb = inspect("{{.Id}}", "bb");
    const bbv = inspect("{{.Id}}", "bbv");
    const dangling = ok(d.docker(["import", tar]), "import untagged").trim();
    const ids = (args: string[]) => ok(d.docker(["images", "--no-trunc", ...args, "-q"]), args.join(" ")).split("\n").filter(Boolean).sort();
    assert.deepEqual(ids(["--filter", "dangling=true"]), [dangling]);
    assert.deepEqual(ids(["--filter", "before=bbv"]), [bb]);
    assert.deepEqual(ids(["--filter", "since=bb"]), [bbv, dangling].sort());
    assert.deepEqual(ids(["--filter", "reference=bb*"]), [bb, bbv].sort());
    assert.deepEqual(ids(["nosuch"]), []);
    assert.deepEqual(ids(["bbv"]), [bbv]);
    const bogus = d.docker(["images", "--filter", "bogus=x"]);
    assert.equal(bogus.code, 1);
    assert.match(bogus.stderr, /Invalid filter 'bogus'/);
    ok(d.docker(["rmi", dangling]), "rmi dangling");
  });

  test("load prints what it loaded; rmi of a tag publishes untag", () => {
    const saved = join(d.root, "bbv.tar");
    ok(d.docker(["save", "-o", saved, "bbv"]), "save");
    ok(d.docker(["rmi", "bbv"]), "rmi");
    assert.equal(ok(d.docker(["load", "-i", saved]), "load"), "Loaded image: bbv:latest\n");
    const since = (Date.now() / 1000).toFixed(3);
    ok(d.docker(["tag", "bb", "bbt"]), "tag");
    ok(d.docker(["rmi", "bbt"]), "rmi tag");
    const events = ok(d.docker(["events", "--since", since, "--until", String(Math.ceil(Date.now() / 1000) + 1), "--filter", "type=image", "--format", "{{.Action}}"]), "events");
    assert.deepEqual(events.split("\n").filter(Boolean), ["tag", "untag"]);
  });

  test("system prune answers build/prune; create takes a string Cmd", async () => {
    const prune = d.docker(["system", "prune", "-f"]);
    assert.equal(prune.code, 0, show(prune));
    const r = await d.api("POST", "/containers/create", { Image: "bb", Cmd: "true" });
    assert.equal(r.status, 201, r.text);
    const id = (r.body as { Id: string }).Id;
    assert.equal(inspect("{{.Path}} {{json .Config.Cmd}}", id), 'true ["true"]');
    ok(d.docker(["rm", id]), "rm");
  });

  test("ps -l shows the latest container whatever its state", () => {
    ok(d.docker(["run", "-d", "--name", "running", "bb", "sleep", "100"]), "run -d");
    const last = ok(d.docker(["create", "bb", "true"]), "create").trim();
    assert.equal(ok(d.docker(["ps", "-l", "-q", "--no-trunc"]), "ps -l").trim(), last);
    ok(d.docker(["rm", "-f", "running", last]), "rm");
  });

  test("restart policies: a manual start begins a new run of retries; always comes back after stop and a daemon restart", async () => {
    const f = ok(d.docker(["run", "-d", "--restart", "on-failure:2", "bb", "sh", "-c", "exit 1"]), "run").trim();
    const starts = async () => ((await d.api("GET", `/events?since=0&until=${Math.ceil(Date.now() / 1000) + 1}&filters=${encodeURIComponent(JSON.stringify({ container: [f], event: ["start"] }))}`)).text.match(/"Action":"start"/g) ?? []).length;
    const settled = () => inspect("{{.RestartCount}} {{.State.Status}}", f) === "2 exited";
    await waitFor("two restarts", settled, 15_000);
    assert.equal(await starts(), 3);
    ok(d.docker(["start", f]), "start");
    await waitFor("three more starts", async () => (await starts()) === 6 && settled(), 15_000);

    const always = ok(d.docker(["run", "-d", "--restart", "always", "bb", "sleep", "100"]), "run always").trim();
    const unless = ok(d.docker(["run", "-d", "--restart", "unless-stopped", "bb", "sleep", "100"]), "run unless-stopped").trim();
    ok(d.docker(["stop", "-t", "0", always, unless]), "stop");
    await d.stop();
    await d.start();
    await waitFor("the always container running again", () => inspect("{{.State.Running}}", always) === "true", 15_000);
    assert.equal(inspect("{{.State.Status}}", unless), "exited");
    ok(d.docker(["rm", "-f", f, always, unless]), "rm");
  });

  test("volumes: API 1.41 prune removes unused named volumes; a mount type Berth cannot mount is refused, not ignored", () => {
    ok(d.docker(["volume", "create", "named1"]), "volume create");
    const old = process.env.DOCKER_API_VERSION;
    process.env.DOCKER_API_VERSION = "1.41";
    try {
      assert.match(ok(d.docker(["volume", "prune", "-f"]), "prune"), /named1/);
    } finally {
      if (old === undefined) delete process.env.DOCKER_API_VERSION;
      else process.env.DOCKER_API_VERSION = old;
    }
    assert.doesNotMatch(ok(d.docker(["volume", "ls", "-q"]), "volume ls"), /named1/);
    // tmpfs and bind volumes are mounted (daemon-volume-options.test.ts); NFS is not.
    const nfs = d.docker(["volume", "create", "--opt", "type=nfs", "--opt", "device=:/export", "--opt", "o=addr=127.0.0.1", "t1"]);
    assert.equal(nfs.code, 1, show(nfs));
    assert.match(nfs.stderr, /volume type "nfs" is not supported by Berth/);
    assert.doesNotMatch(ok(d.docker(["volume", "ls", "-q"]), "volume ls"), /t1/);
  });
});
