// The local volume driver's options (type, device, o) against a private `berth daemon` with the docker
// CLI: a tmpfs volume is mounted while containers use it (shared by two at once), the count of its users
// survives a daemon restart, and nothing stays mounted after the last user stops or after `volume rm`;
// copy-up of the image's content lands on the mount; a bind volume shows the host directory; other
// types are refused with a 400.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isRoot } from "../helpers/berth.js";
import { DOCKER, ok, TestDaemon } from "../helpers/daemon.js";

const skip = !isRoot ? "needs root" : !DOCKER ? "needs the docker CLI" : false;

/** The host's mountinfo line for a mount point, if mounted. */
function hostMount(path: string): string | undefined {
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((l) => l.split(" ")[4] === path);
}

describe("local volume driver options (tmpfs, bind) via the docker CLI", { skip, concurrency: false }, () => {
  let d: TestDaemon;
  let hostDir: string;

  before(async () => {
    d = new TestDaemon();
    await d.start();
    hostDir = mkdtempSync("/tmp/berth-volbind-");
    writeFileSync(join(hostDir, "hello"), "from the host\n");
  });

  after(async () => {
    let left: string[];
    try {
      left = await d.destroy();
    } finally {
      rmSync(hostDir, { recursive: true, force: true });
    }
    assert.deepEqual(left, []);
  });

  test("tmpfs volume: its size and mode inside, shared by two containers, kept across a daemon restart, unmounted after the last stops and on rm", async () => {
    ok(d.docker(["volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=1m,mode=0750,uid=1000", "tv"]), "volume create");
    const [v] = JSON.parse(ok(d.docker(["volume", "inspect", "tv"]), "inspect")) as { Options: Record<string, string>; Mountpoint: string }[];
    assert.deepEqual(v.Options, { type: "tmpfs", device: "tmpfs", o: "size=1m,mode=0750,uid=1000" });
    assert.deepEqual(JSON.parse(readFileSync(join(d.dataRoot, "volumes", "tv", "opts.json"), "utf8")), { MountType: "tmpfs", MountOpts: "size=1m,mode=0750,uid=1000", MountDevice: "tmpfs" });
    // Not mounted until a container uses it.
    assert.equal(hostMount(v.Mountpoint), undefined);

    ok(d.docker(["run", "-d", "--network", "none", "--name", "t1", "-v", "tv:/data", "host", "sleep", "1000"]), "run t1");
    ok(d.docker(["run", "-d", "--network", "none", "--name", "t2", "-v", "tv:/data", "host", "sleep", "1000"]), "run t2");
    const df = ok(d.docker(["exec", "t1", "df", "-k", "/data"]), "df").trim().split("\n");
    assert.match(df[1], /^tmpfs\s+1024\s+\d+\s+\d+\s+\d+%\s+\/data$/, df.join("\n"));
    const inside = ok(d.docker(["exec", "t1", "grep", " /data ", "/proc/self/mountinfo"]), "mountinfo");
    assert.match(inside, / - tmpfs tmpfs rw,.*size=1024k,mode=750,uid=1000\b/, inside);
    assert.equal(ok(d.docker(["exec", "t2", "stat", "-c", "%a %u", "/data"]), "stat").trim(), "750 1000");
    ok(d.docker(["exec", "t1", "sh", "-c", "echo shared > /data/f"]), "write");
    assert.equal(ok(d.docker(["exec", "t2", "cat", "/data/f"]), "read").trim(), "shared");
    // The data lives in the tmpfs, not on the data root's disk.
    assert.match(hostMount(v.Mountpoint) ?? "", / - tmpfs tmpfs /);
    assert.equal(readFileSync(join(v.Mountpoint, "f"), "utf8"), "shared\n");

    // The daemon restarts and adopts both containers: the mount stays while either runs.
    await d.stop();
    await d.start();
    assert.ok(hostMount(v.Mountpoint), "still mounted after the daemon restart");
    ok(d.docker(["stop", "-t", "0", "t1"]), "stop t1");
    assert.ok(hostMount(v.Mountpoint), "t2 still uses it");
    assert.equal(ok(d.docker(["exec", "t2", "cat", "/data/f"]), "read after t1 stopped").trim(), "shared");
    ok(d.docker(["stop", "-t", "0", "t2"]), "stop t2");
    assert.equal(hostMount(v.Mountpoint), undefined, "unmounted once both stopped");

    // Its last user killed while the daemon is away: the next daemon unmounts it.
    ok(d.docker(["start", "t1"]), "start t1");
    assert.ok(hostMount(v.Mountpoint));
    assert.equal(ok(d.docker(["exec", "t1", "ls", "-A", "/data"]), "ls").trim(), "", "a fresh tmpfs");
    const pid = Number(ok(d.docker(["inspect", "-f", "{{.State.Pid}}", "t1"]), "pid").trim());
    await d.kill9();
    process.kill(pid, "SIGKILL");
    await d.start();
    assert.equal(hostMount(v.Mountpoint), undefined, "unmounted by the daemon that found its user gone");

    // rm: refused while a container (even stopped) has it; afterwards no mount and no volume.
    ok(d.docker(["start", "t1"]), "start t1 again");
    assert.notEqual(d.docker(["volume", "rm", "tv"]).code, 0);
    ok(d.docker(["rm", "-f", "t1", "t2"]), "rm containers");
    ok(d.docker(["volume", "rm", "tv"]), "volume rm");
    assert.equal(hostMount(v.Mountpoint), undefined);
    assert.equal(existsSync(join(d.dataRoot, "volumes", "tv")), false);
  });

  test("copy-up: the image's content is copied onto the fresh mount, not under it; nocopy leaves it empty", () => {
    ok(d.docker(["run", "--network", "none", "--name", "seed", "host", "sh", "-c", "mkdir /seed && echo from-image > /seed/f"]), "seed");
    ok(d.docker(["commit", "seed", "seedimg"]), "commit");
    ok(d.docker(["volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=2m", "cv"]), "create cv");
    const out = ok(d.docker(["run", "--rm", "--network", "none", "-v", "cv:/seed", "seedimg", "sh", "-c", "cat /seed/f; grep ' /seed ' /proc/self/mountinfo"]), "run");
    assert.match(out, /^from-image\n.* - tmpfs tmpfs rw,.*size=2048k/, out);
    const mp = JSON.parse(ok(d.docker(["volume", "inspect", "cv"]), "inspect"))[0].Mountpoint as string;
    assert.equal(hostMount(mp), undefined);
    // Nothing was copied into the directory under the mount.
    assert.equal(existsSync(join(mp, "f")), false);
    const empty = ok(d.docker(["run", "--rm", "--network", "none", "--mount", "type=volume,src=cv,dst=/seed,volume-nocopy", "seedimg", "ls", "-A", "/seed"]), "nocopy run");
    assert.equal(empty.trim(), "");
    ok(d.docker(["rm", "seed"]), "rm seed");
    ok(d.docker(["volume", "rm", "cv"]), "volume rm cv");
    ok(d.docker(["rmi", "seedimg"]), "rmi");
  });

  test("--mount volume-opt/volume-label make the volume with those options (docker's CLI and berth's); an anonymous one is unmounted and removed by rm -v", () => {
    for (const cli of ["docker", "berth"] as const) {
      const name = `mv-${cli}`;
      const out = ok(d[cli](["run", "--rm", "--network", "none", "--mount", `type=volume,src=${name},dst=/data,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=3m,volume-label=a=b`, "host", "df", "-k", "/data"]), `${cli} run`);
      assert.match(out.trim().split("\n")[1], /^tmpfs\s+3072\s/, out);
      const [v] = JSON.parse(ok(d.docker(["volume", "inspect", name]), "inspect")) as { Options: Record<string, string>; Labels: Record<string, string>; Mountpoint: string }[];
      assert.deepEqual(v.Options, { type: "tmpfs", device: "tmpfs", o: "size=3m" });
      assert.deepEqual(v.Labels, { a: "b" });
      assert.equal(hostMount(v.Mountpoint), undefined);
      ok(d.docker(["volume", "rm", name]), "volume rm");
    }
    ok(d.docker(["run", "-d", "--network", "none", "--name", "anon", "--mount", "type=volume,dst=/data,volume-opt=type=tmpfs,volume-opt=device=tmpfs", "host", "sleep", "1000"]), "run anon");
    const [m] = JSON.parse(ok(d.docker(["inspect", "-f", "{{json .Mounts}}", "anon"]), "mounts")) as { Name: string; Source: string }[];
    assert.match(hostMount(m.Source) ?? "", / - tmpfs tmpfs /);
    ok(d.docker(["rm", "-f", "-v", "anon"]), "rm -v");
    assert.equal(hostMount(m.Source), undefined);
    assert.equal(d.docker(["volume", "inspect", m.Name]).code, 1);
    const bad = d.docker(["run", "--rm", "--network", "none", "--mount", "type=volume,src=mvbad,dst=/data,volume-opt=type=nfs,volume-opt=device=:/x", "host", "true"]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /volume type "nfs" is not supported by Berth/);
  });

  test("bind volume: the host directory's files, writes land there, and volume rm leaves them", () => {
    ok(d.docker(["volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", `device=${hostDir}`, "bv"]), "create bv");
    const out = ok(d.docker(["run", "--rm", "--network", "none", "-v", "bv:/data", "host", "sh", "-c", "cat /data/hello; echo from-container > /data/new"]), "run");
    assert.equal(out, "from the host\n");
    assert.equal(readFileSync(join(hostDir, "new"), "utf8"), "from-container\n");
    const mp = JSON.parse(ok(d.docker(["volume", "inspect", "bv"]), "inspect"))[0].Mountpoint as string;
    assert.equal(hostMount(mp), undefined);
    // cp with a stopped container reads and writes the host directory too (mounted meanwhile, as dockerd).
    ok(d.docker(["create", "--network", "none", "--name", "bc", "-v", "bv:/data", "host", "true"]), "create bc");
    assert.equal(ok(d.docker(["cp", "bc:/data/hello", "-"]), "cp from").includes("from the host"), true);
    const src = join(hostDir, "..", `${hostDir.split("/").pop()}-cp`);
    writeFileSync(src, "copied in\n");
    try {
      ok(d.docker(["cp", src, "bc:/data/copied"]), "cp to");
    } finally {
      rmSync(src, { force: true });
    }
    assert.equal(readFileSync(join(hostDir, "copied"), "utf8"), "copied in\n");
    assert.equal(hostMount(mp), undefined);
    assert.equal(existsSync(join(mp, "copied")), false, "nothing written under the mount point");
    ok(d.docker(["rm", "bc"]), "rm bc");
    ok(d.docker(["volume", "rm", "bv"]), "volume rm");
    assert.equal(readFileSync(join(hostDir, "hello"), "utf8"), "from the host\n");
    assert.equal(existsSync(join(hostDir, "new")), true);
  });

  test("refused with a 400: other types, type none without bind, a missing bind device, options missing their partners", async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ type: "nfs", device: ":/export", o: "addr=127.0.0.1" }, /volume type "nfs" is not supported by Berth/],
      [{ type: "ext4", device: "/dev/null" }, /volume type "ext4" is not supported/],
      [{ type: "none", device: hostDir }, /type "none" needs o=bind or o=rbind/],
      [{ type: "none", o: "bind", device: "/nonexistent/dir" }, /bind device \/nonexistent\/dir does not exist/],
      [{ type: "tmpfs" }, /missing required option: "device"/],
      [{ o: "size=1m" }, /missing required option: "device"/],
      [{ foo: "1" }, /invalid option key: "foo"/],
    ];
    for (const [opts, message] of cases) {
      const res = await d.api("POST", "/volumes/create", { Name: "bad", DriverOpts: opts });
      assert.equal(res.status, 400, `${JSON.stringify(opts)}: ${res.text}`);
      assert.match((res.body as { message: string }).message, message);
    }
    // Options only the kernel refuses fail the start (as dockerd), and leave nothing mounted.
    ok(d.docker(["volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=bogus=1", "badopt"]), "create badopt");
    const run = d.docker(["run", "--rm", "--network", "none", "-v", "badopt:/data", "host", "true"]);
    assert.equal(run.code, 125, `${run.stdout}${run.stderr}`);
    assert.match(run.stderr, /failed to mount local volume: mount tmpfs:\S+\/badopt\/_data, data: bogus=1: /);
    assert.equal(hostMount(join(d.dataRoot, "volumes", "badopt", "_data")), undefined);
    ok(d.docker(["volume", "rm", "badopt"]), "volume rm badopt");
    const cli = d.docker(["volume", "create", "--opt", "type=nfs", "--opt", "device=:/x", "bad"]);
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr, /volume type "nfs" is not supported by Berth/);
    assert.equal(existsSync(join(d.dataRoot, "volumes", "bad")), false);
  });
});
