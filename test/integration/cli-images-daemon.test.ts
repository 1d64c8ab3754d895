// The berth CLI's image commands with BERTH_HOST naming a daemon: they work on that daemon's image store
// (its DockerRootDir), as docker's do, not on /var/lib/berth. Before, `berth import` put the image in
// /var/lib/berth and `berth run` through the daemon then tried to pull it from docker.io. A private daemon
// (test/helpers/daemon.ts); no network. Needs root and busybox-static.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isRoot } from "../helpers/berth.js";
import { DOCKER, TestDaemon, type Run } from "../helpers/daemon.js";
import { haveCommand, startDockerRegistry } from "../helpers/registry.js";

const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
const skip = !isRoot ? "needs root" : !BUSYBOX ? "needs busybox-static" : false;
const show = (r: Run) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

describe("berth image commands through BERTH_HOST", { skip, concurrency: false }, () => {
  let d: TestDaemon;
  let tar = "";

  before(async () => {
    d = new TestDaemon("berth-cliimg-");
    await d.start();
    const rootfs = join(d.root, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    copyFileSync(BUSYBOX as string, join(rootfs, "bin/busybox"));
    for (const a of ["sh", "echo", "true", "id", "sleep"]) symlinkSync("busybox", join(rootfs, "bin", a));
    tar = join(d.root, "rootfs.tar");
    assert.equal(spawnSync("tar", ["-C", rootfs, "-cf", tar, "."]).status, 0);
  });

  after(async () => {
    const left = await d.destroy();
    assert.deepEqual(left, []);
  });

  test("berth import lands in the daemon's store: berth images, docker images and berth run see it", () => {
    const imp = d.berth(["import", tar, "cliimg:1"]);
    assert.equal(imp.code, 0, show(imp));
    const listed = d.berth(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert.equal(listed.code, 0, show(listed));
    assert.match(listed.stdout, /^cliimg:1$/m);
    const viaDocker = d.docker(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert.match(viaDocker.stdout, /^cliimg:1$/m, show(viaDocker));
    const run = d.berth(["run", "--rm", "cliimg:1", "echo", "from-the-import"]);
    assert.equal(run.code, 0, show(run));
    assert.equal(run.stdout, "from-the-import\n");
    // docker (since CVE-2022-36109) puts the primary gid among the supplementary groups.
    const id = d.berth(["run", "--rm", "-u", "65534:65534", "cliimg:1", "id"]);
    assert.equal(id.code, 0, show(id));
    assert.match(id.stdout, /^uid=65534 gid=65534 groups=65534$/m);
    const rmi = d.berth(["rmi", "cliimg:1"]);
    assert.equal(rmi.code, 0, show(rmi));
    assert.doesNotMatch(d.docker(["images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout, /cliimg/);
  });

  test("diff and commit leave out the engine's /etc mountpoints, as docker's init layer does", async () => {
    assert.equal(d.berth(["import", tar, "cliimg:2"]).code, 0);
    const run = d.berth(["run", "-d", "--name", "changed", "cliimg:2", "sh", "-c", "echo x > /x; sleep 100"]);
    assert.equal(run.code, 0, show(run));
    let diff = d.berth(["diff", "changed"]);
    for (let i = 0; i < 50 && diff.stdout === ""; i++) {
      await new Promise((r) => setTimeout(r, 100));
      diff = d.berth(["diff", "changed"]);
    }
    assert.equal(diff.stdout, "A /x\n", show(diff));
    assert.equal(d.berth(["commit", "changed", "cliimg:committed"]).code, 0);
    const ls = d.berth(["run", "--rm", "cliimg:committed", "sh", "-c", "echo /etc/*"]);
    // /etc exists only for the engine's mountpoints: it shows them, bound, but they are not in the image.
    assert.equal(d.berth(["rm", "-f", "changed"]).code, 0);
    const hist = d.berth(["history", "--format", "{{.Size}}", "cliimg:committed"]);
    assert.equal(hist.stdout.split("\n")[0], "2B", show(hist) + show(ls));
    assert.equal(d.berth(["rmi", "cliimg:committed", "cliimg:2"]).code, 0);
  });

  test("docker pull through the daemon: one Digest and one Status line (up to date the second time)", { skip: !haveCommand("docker-registry") && "needs docker-registry" }, async () => {
    const reg = await startDockerRegistry(join(d.root, "registry"));
    try {
      const ref = `${reg.host}/cliimg/pulled:1`;
      assert.equal(d.berth(["import", tar, ref]).code, 0);
      const push = d.berth(["push", ref]);
      assert.equal(push.code, 0, show(push));
      assert.equal(d.berth(["rmi", ref]).code, 0);
      const first = d.docker(["pull", ref]);
      assert.equal(first.code, 0, show(first));
      assert.equal(first.stdout.match(/^Status: /gm)?.length, 1, show(first));
      assert.match(first.stdout, /^Status: Downloaded newer image for /m);
      const again = d.docker(["pull", ref]);
      assert.equal(again.stdout.match(/^Status: /gm)?.length, 1, show(again));
      assert.equal(again.stdout.match(/^Digest: /gm)?.length, 1, show(again));
      assert.match(again.stdout, /^Status: Image is up to date for /m);
      // run --pull: never uses what is here or fails; always pulls first (even when the image is here).
      assert.equal(d.berth(["run", "--rm", "--pull", "never", ref, "true"]).code, 0);
      assert.equal(d.berth(["rmi", ref]).code, 0);
      const never = d.berth(["run", "--rm", "--pull", "never", ref, "true"]);
      assert.equal(never.code, 125, show(never));
      assert.match(never.stderr, /No such image/);
      const always = d.berth(["run", "--rm", "--pull", "always", ref, "echo", "pulled"]);
      assert.equal(always.code, 0, show(always));
      assert.equal(always.stdout, "pulled\n");
      const bad = d.berth(["create", "--pull", "sometimes", ref]);
      assert.equal(bad.code, 125, show(bad));
      assert.match(bad.stderr, /invalid pull option: 'sometimes'/);
      await reg.stop();
      const offline = d.berth(["run", "--rm", "--pull", "always", ref, "true"]);
      assert.notEqual(offline.code, 0, "--pull always pulls although the image is here (the registry is gone)");
      assert.equal(d.berth(["run", "--rm", ref, "true"]).code, 0, "the default (missing) does not pull");
      assert.equal(d.berth(["rmi", ref]).code, 0);
    } finally {
      await reg.stop();
    }
  });

  test("a reader that goes away (berth save IMG | head -c 10): exit 141 and no stack trace, as docker", () => {
    assert.equal(d.berth(["import", tar, "cliimg:epipe"]).code, 0);
    const bin = join(import.meta.dirname, "../../../bin/berth");
    const r = spawnSync("bash", ["-c", `"${bin}" save cliimg:epipe | head -c 10 >/dev/null; echo "\${PIPESTATUS[0]}"`], {
      encoding: "utf8", timeout: 60_000, env: { ...process.env, BERTH_HOST: d.host },
    });
    assert.equal(r.stdout, "141\n", `${r.stdout}${r.stderr}`);
    assert.equal(r.stderr, "");
    assert.equal(d.berth(["rmi", "cliimg:epipe"]).code, 0);
  });

  test("inspect of a missing name: 'No such object' (inspect), 'No such container' (container inspect), exit 1, as docker", () => {
    const any = d.berth(["inspect", "nosuch"]);
    assert.equal(any.code, 1, show(any));
    assert.equal(any.stderr, "Error: No such object: nosuch\n");
    const ctr = d.berth(["container", "inspect", "nosuch"]);
    assert.equal(ctr.code, 1, show(ctr));
    assert.match(ctr.stderr, /No such container: nosuch/);
  });

  test("inspect finds networks and volumes too, and --type picks one kind, as docker's", () => {
    assert.equal(d.berth(["network", "create", "insp-net"]).code, 0);
    assert.equal(d.berth(["volume", "create", "insp-vol"]).code, 0);
    try {
      for (const cli of ["berth", "docker"] as const) {
        if (cli === "docker" && !DOCKER) continue;
        const both = d[cli](["inspect", "-f", "{{.Name}}", "insp-net", "insp-vol"]);
        assert.equal(both.code, 0, show(both));
        assert.equal(both.stdout, "insp-net\ninsp-vol\n", cli);
        assert.equal(d[cli](["inspect", "--type", "volume", "-f", "{{.Driver}}", "insp-vol"]).stdout, "local\n", cli);
        const wrongKind = d[cli](["inspect", "--type", "volume", "insp-net"]);
        assert.equal(wrongKind.code, 1, show(wrongKind));
        assert.match(wrongKind.stderr, /no such volume/i, cli);
        const badType = d[cli](["inspect", "--type", "bogus", "insp-net"]);
        assert.equal(badType.code, 1, show(badType));
        assert.match(badType.stderr, /unknown type: "bogus": must be one of .*"container"/, cli);
      }
    } finally {
      d.berth(["network", "rm", "insp-net"]);
      d.berth(["volume", "rm", "insp-vol"]);
    }
  });
});
