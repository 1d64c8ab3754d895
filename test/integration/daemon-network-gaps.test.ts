// Gaps found against dockerd 20.10 + docker CLI 28: -p with --network host/none (runs without the ports,
// host with docker's warning; through the daemon and in-process), hairpin mode on the bridge port of a
// network connected after create or start, and bind propagation (-v ...:rslave, --mount
// bind-propagation): applied in the container's mount and inspect, or refused in dockerd's words when the
// source's mount can't carry it. Only loopback and the namespaces these tests create are contacted.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { BERTH_LAUNCHER, isRoot } from "../helpers/berth.js";
import { DOCKER, ok, TestDaemon } from "../helpers/daemon.js";

const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
const skip = !isRoot ? "needs root" : !DOCKER ? "needs the docker CLI" : !BUSYBOX ? "needs busybox-static" : false;
const HOST_WARNING = "WARNING: Published ports are discarded when using host network mode";

describe("network and bind propagation gaps via the docker CLI", { skip, concurrency: false }, () => {
  let d: TestDaemon;
  let rootfs: string;
  const mounted: string[] = [];

  /** The hairpin flag of every bridge port of `name`'s endpoints, by network name (what sysfs really has). */
  const hairpins = (name: string): Record<string, string> => {
    const id = ok(d.docker(["inspect", "-f", "{{.Id}}", name]), "inspect").trim();
    const state = JSON.parse(readFileSync(join(d.dataRoot, "network", "state.json"), "utf8")) as {
      networks: Record<string, { name: string }>;
      endpoints: Record<string, { containerId: string; networkId: string; hostVeth: string }>;
    };
    const out: Record<string, string> = {};
    for (const e of Object.values(state.endpoints).filter((x) => x.containerId === id)) {
      out[state.networks[e.networkId].name] = readFileSync(`/sys/class/net/${e.hostVeth}/brport/hairpin_mode`, "utf8").trim();
    }
    return out;
  };

  /** A tmpfs at `dir` with the given propagation (the source mount a bind's propagation is checked against). */
  const tmpfsAt = (dir: string, propagation: "shared" | "private") => {
    mkdirSync(dir, { recursive: true });
    assert.equal(spawnSync("mount", ["-t", "tmpfs", "berth-test", dir]).status, 0);
    mounted.unshift(dir);
    assert.equal(spawnSync("mount", [`--make-${propagation}`, dir]).status, 0);
  };

  before(async () => {
    d = new TestDaemon("berth-dng-");
    await d.start();
    rootfs = join(d.root, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    copyFileSync(BUSYBOX as string, join(rootfs, "bin/busybox"));
    for (const a of ["sh", "sleep", "cat", "ls", "true", "ip"]) symlinkSync("busybox", join(rootfs, "bin", a));
    const tar = join(d.root, "rootfs.tar");
    assert.equal(spawnSync("tar", ["-C", rootfs, "-cf", tar, "."]).status, 0);
    ok(d.docker(["import", tar, "bb"]), "import");
  });

  after(async () => {
    d.docker(["ps", "-aq"]).stdout.split("\n").filter(Boolean).forEach((id) => d.docker(["rm", "-f", id]));
    d.docker(["network", "prune", "-f"]);
    for (const dir of mounted) spawnSync("umount", ["-l", dir]);
    assert.deepEqual(await d.destroy(), []);
  });

  test("-p with --network host runs with docker's warning (in the create response) and none runs silently; neither publishes", () => {
    const host = d.docker(["run", "--rm", "--network", "host", "-p", "18080:80", "bb", "true"]);
    assert.equal(host.code, 0, host.stderr);
    assert.equal(host.stderr.trim(), HOST_WARNING);
    const none = d.docker(["run", "--rm", "--network", "none", "-p", "18080:80", "bb", "ip", "-o", "link"]);
    assert.equal(none.code, 0, none.stderr);
    assert.equal(none.stderr, "", "dockerd gives no warning for none");
    assert.deepEqual(none.stdout.trim().split("\n").map((l) => l.split(":")[1].trim()), ["lo"], "still no network");
    ok(d.docker(["create", "--name", "hp", "--network", "host", "-p", "18081:80", "bb", "true"]), "create");
    assert.equal(d.docker(["inspect", "-f", "{{json .HostConfig.PortBindings}}", "hp"]).stdout.trim(), '{"80/tcp":[{"HostIp":"","HostPort":"18081"}]}', "kept as asked, as dockerd");
    ok(d.docker(["start", "hp"]), "start");
    assert.equal(d.docker(["port", "hp"]).stdout.trim(), "", "nothing published");
  });

  test("in-process (no daemon): -p with --network host warns and runs, with none runs", () => {
    const env = { ...process.env, BERTH_DATA_ROOT: join(d.root, "inproc"), BERTH_NO_DAEMON: "1" };
    const run = (mode: string) => spawnSync(BERTH_LAUNCHER, ["run", "--network", mode, "-p", "18082:80", "--rootfs", rootfs, "/bin/true"], { encoding: "utf8", env, timeout: 30_000 });
    const host = run("host");
    assert.equal(host.status, 0, host.stderr);
    assert.match(host.stderr, new RegExp(HOST_WARNING));
    const none = run("none");
    assert.equal(none.status, 0, none.stderr);
    assert.doesNotMatch(none.stderr, /WARNING/);
  });

  test("a network connected after start, or after create, gets hairpin mode on its bridge port like the first", () => {
    ok(d.docker(["network", "create", "--subnet", "10.213.93.0/24", "hpn1"]), "network create");
    ok(d.docker(["network", "create", "--subnet", "10.213.94.0/24", "hpn2"]), "network create");
    ok(d.docker(["run", "-d", "--name", "hr", "bb", "sleep", "300"]), "run");
    ok(d.docker(["network", "connect", "hpn1", "hr"]), "connect");
    assert.deepEqual(hairpins("hr"), { bridge: "1", hpn1: "1" });
    ok(d.docker(["create", "--name", "hc", "--network", "hpn1", "bb", "sleep", "300"]), "create");
    ok(d.docker(["network", "connect", "hpn2", "hc"]), "connect");
    ok(d.docker(["start", "hc"]), "start");
    assert.deepEqual(hairpins("hc"), { hpn1: "1", hpn2: "1" });
  });

  test("bind propagation: rslave/rshared on a shared source propagate and show in inspect; a private source is refused in dockerd's words", () => {
    const shared = join(d.root, "shared");
    tmpfsAt(shared, "shared");
    mkdirSync(join(shared, "later"));
    ok(d.docker(["run", "-d", "--name", "ps", "-v", `${shared}:/c:rslave`, "--mount", `type=bind,src=${shared},dst=/m,bind-propagation=rshared`, "bb", "sleep", "300"]), "run");
    const mounts = JSON.parse(d.docker(["inspect", "-f", "{{json .Mounts}}", "ps"]).stdout) as { Destination: string; Mode: string; Propagation: string }[];
    assert.deepEqual(mounts.map((m) => [m.Destination, m.Mode, m.Propagation]).sort(), [["/c", "rslave", "rslave"], ["/m", "", "rshared"]]);
    // A mount made on the host after start reaches the container only through the propagation.
    tmpfsAt(join(shared, "later"), "private");
    writeFileSync(join(shared, "later", "marker"), "x");
    assert.equal(d.docker(["exec", "ps", "cat", "/c/later/marker"]).stdout, "x");
    assert.equal(d.docker(["exec", "ps", "cat", "/m/later/marker"]).stdout, "x");

    const priv = join(d.root, "private");
    tmpfsAt(priv, "private");
    const slave = d.docker(["run", "--rm", "-v", `${priv}:/c:rslave`, "bb", "true"]);
    assert.equal(slave.code, 125);
    assert.match(slave.stderr, new RegExp(`path ${priv} is mounted on ${priv} but it is not a shared or slave mount`));
    const sharedOnPrivate = d.docker(["run", "--rm", "--mount", `type=bind,src=${priv},dst=/c,bind-propagation=shared`, "bb", "true"]);
    assert.equal(sharedOnPrivate.code, 125);
    assert.match(sharedOnPrivate.stderr, new RegExp(`path ${priv} is mounted on ${priv} but it is not a shared mount`));
    ok(d.docker(["run", "--rm", "-v", `${priv}:/c:rprivate`, "bb", "true"]), "rprivate needs nothing of the source");
  });
});
