// Round trips with the reference engine (root): `docker save` -> `berth load` -> `berth run`, and
// `berth save` -> `docker load` -> `docker run`, with dockerd on a private socket and data root,
// stopped afterwards.

import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { after, before, describe, it } from "node:test";
import { berth, isRoot, settle, show, snapshot, waitFor } from "../helpers/berth.js";
import { busyboxLayer, storeDebris, tempDir } from "../helpers/images.js";

const haveDocker = spawnSync("dockerd", ["--version"]).status === 0 && spawnSync("docker", ["--version"]).status === 0;
const skip = !isRoot ? "needs root" : !haveDocker ? "dockerd/docker not installed (apt-get install docker.io)" : false;

describe("docker archive round trips (integration)", { skip }, () => {
  let work: { dir: string; remove: () => void };
  let dockerd: ChildProcess | undefined;
  let env: NodeJS.ProcessEnv;
  let denv: NodeJS.ProcessEnv;
  const sock = `/run/berth-itest-docker-${process.pid}.sock`;
  const docker = (...args: string[]) => spawnSync("docker", args, { env: denv, encoding: "utf8", timeout: 120_000 });

  before(async () => {
    work = tempDir("berth-docker-");
    env = { ...process.env, BERTH_DATA_ROOT: join(work.dir, "data") };
    denv = { ...process.env, DOCKER_HOST: `unix://${sock}` };
    dockerd = spawn("dockerd", ["-H", `unix://${sock}`, "--data-root", join(work.dir, "docker"), "--exec-root", `/run/berth-itest-docker-${process.pid}`,
      "--pidfile", join(work.dir, "dockerd.pid"), "--bridge", "none", "--iptables=false"], { stdio: "ignore" });
    await waitFor("dockerd to answer", () => existsSync(sock) && docker("version").status === 0, 60_000);
  });

  after(async () => {
    if (dockerd && dockerd.exitCode === null) {
      dockerd.kill("SIGTERM");
      await new Promise((res) => dockerd!.on("close", res));
    }
    spawnSync("umount", ["-R", join(work.dir, "docker")], { stdio: "ignore" });
    work.remove();
  });

  it("docker save -> berth load -> berth run", async () => {
    const before = snapshot();
    const rootfs = join(work.dir, "rootfs.tar.gz");
    writeFileSync(rootfs, gzipSync(busyboxLayer()));
    const imp = docker("import", "--change", "CMD [\"/bin/echo\", \"from-docker\"]", rootfs, "dockerimg:1");
    assert.equal(imp.status, 0, imp.stderr);
    const archive = join(work.dir, "docker-save.tar");
    const save = docker("save", "-o", archive, "dockerimg:1");
    assert.equal(save.status, 0, save.stderr);
    const load = berth(["load", "-i", archive], { env });
    assert.equal(load.code, 0, show(load));
    assert.equal(load.stdout, "Loaded image: dockerimg:1\n");
    const run = berth(["run", "dockerimg:1"], { env });
    assert.equal(run.code, 0, show(run));
    assert.equal(run.stdout, "from-docker\n");
    // Same image ID as docker's.
    const id = docker("image", "inspect", "-f", "{{.Id}}", "dockerimg:1").stdout.trim();
    assert.equal(berth(["images", "-q", "--no-trunc", "dockerimg"], { env }).stdout.trim(), id);
    assert.deepEqual(storeDebris(join(work.dir, "data")), []);
    assert.deepEqual(await settle(before), []);
  });

  it("berth save -> docker load -> docker run", () => {
    const rootfs = join(work.dir, "rootfs2.tar");
    writeFileSync(rootfs, busyboxLayer());
    const imp = berth(["import", rootfs, "berthimg:2"], { env });
    assert.equal(imp.code, 0, show(imp));
    const archive = join(work.dir, "berth-save.tar");
    const save = berth(["save", "-o", archive, "berthimg:2"], { env });
    assert.equal(save.code, 0, show(save));
    const load = docker("load", "-i", archive);
    assert.equal(load.status, 0, load.stderr);
    assert.match(load.stdout, /Loaded image: berthimg:2/);
    const run = docker("run", "--rm", "--network", "none", "berthimg:2", "/bin/echo", "from-berth");
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, "from-berth\n");
    const id = docker("image", "inspect", "-f", "{{.Id}}", "berthimg:2").stdout.trim();
    assert.equal(berth(["images", "-q", "--no-trunc", "berthimg"], { env }).stdout.trim(), id);
  });
});
