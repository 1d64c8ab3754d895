// network connect/disconnect as part of the container's record (inspect, ps, restart, a created
// container), a missing network at run, /etc files with --network none/host, ps's network/publish/expose
// filters, network events, and network ls/prune filters: all through the docker CLI against a private
// daemon, checked against what the container really has (its interfaces, its files) and what prune
// really removed. Only loopback and the namespaces these tests create are contacted.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isRoot } from "../helpers/berth.js";
import { DOCKER, TestDaemon } from "../helpers/daemon.js";
import { freePort } from "../helpers/net.js";

const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
const skip = !isRoot ? "needs root" : !DOCKER ? "needs the docker CLI" : !BUSYBOX ? "needs busybox-static" : false;

describe("network connect/disconnect, filters, events and /etc files via the docker CLI", { skip, concurrency: false }, () => {
  let d: TestDaemon;

  /** IPv4 addresses inside the container, by interface (what `ip addr` really shows). */
  const addrs = (name: string): Record<string, string> => {
    const r = d.docker(["exec", name, "ip", "-o", "-4", "addr"]);
    assert.equal(r.code, 0, r.stderr);
    return Object.fromEntries(r.stdout.trim().split("\n").map((l) => l.split(/\s+/)).filter((f) => f[1] !== "lo").map((f) => [f[1], f[3].split("/")[0]]));
  };
  const inspectNetworks = (name: string) =>
    JSON.parse(d.docker(["inspect", "-f", "{{json .NetworkSettings.Networks}}", name]).stdout) as Record<string, { IPAddress: string; Aliases: string[] | null; NetworkID: string }>;
  const lines = (r: { stdout: string }) => r.stdout.split("\n").filter(Boolean).sort();

  before(async () => {
    d = new TestDaemon("berth-dnc-");
    await d.start();
    const rootfs = join(d.root, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    copyFileSync(BUSYBOX as string, join(rootfs, "bin/busybox"));
    for (const a of ["sh", "sleep", "cat", "ip", "true"]) symlinkSync("busybox", join(rootfs, "bin", a));
    const tar = join(d.root, "rootfs.tar");
    assert.equal(spawnSync("tar", ["-C", rootfs, "-cf", tar, "."]).status, 0);
    assert.equal(d.docker(["import", tar, "bb"]).code, 0);
  });

  after(async () => {
    d.docker(["ps", "-aq"]).stdout.split("\n").filter(Boolean).forEach((id) => d.docker(["rm", "-f", id]));
    d.docker(["network", "prune", "-f"]);
    assert.deepEqual(await d.destroy(), []);
  });

  test("connect puts the network in the container's record: inspect, ps, ps --filter network, kept across restart; disconnect and reconnect show what the container has", () => {
    assert.equal(d.docker(["network", "create", "--subnet", "10.213.7.0/24", "n1"]).code, 0);
    assert.equal(d.docker(["run", "-d", "--name", "f1", "bb", "sleep", "300"]).code, 0);
    const c = d.docker(["network", "connect", "--ip", "10.213.7.7", "--alias", "al1", "n1", "f1"]);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(addrs("f1").eth1, "10.213.7.7", "the container really has the address");
    let nets = inspectNetworks("f1");
    assert.deepEqual(Object.keys(nets).sort(), ["bridge", "n1"]);
    assert.equal(nets.n1.IPAddress, "10.213.7.7");
    assert.deepEqual(nets.n1.Aliases, ["al1"]);
    assert.equal(nets.bridge.IPAddress, addrs("f1").eth0);
    assert.equal(d.docker(["ps", "--filter", "name=f1", "--format", "{{.Networks}}"]).stdout.trim().split(",").sort().join(","), "bridge,n1");
    assert.deepEqual(lines(d.docker(["ps", "--filter", "network=n1", "--format", "{{.Names}}"])), ["f1"]);
    assert.deepEqual(lines(d.docker(["ps", "--filter", `network=${nets.n1.NetworkID}`, "--format", "{{.Names}}"])), ["f1"]);
    assert.deepEqual(lines(d.docker(["ps", "--filter", "network=bridge", "--format", "{{.Names}}"])), ["f1"], "a default-bridge container matches network=bridge");

    // A restart attaches it to both networks again, with the same fixed address.
    assert.equal(d.docker(["restart", "-t", "0", "f1"]).code, 0);
    const after = addrs("f1");
    assert.deepEqual(Object.values(after).includes("10.213.7.7"), true, JSON.stringify(after));
    assert.equal(Object.keys(after).length, 2);

    // Disconnect from the bridge: its interface is gone and inspect no longer shows it.
    assert.equal(d.docker(["network", "disconnect", "bridge", "f1"]).code, 0);
    assert.deepEqual(Object.values(addrs("f1")), ["10.213.7.7"]);
    nets = inspectNetworks("f1");
    assert.deepEqual(Object.keys(nets), ["n1"]);
    assert.equal(d.docker(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "f1"]).stdout.trim(), "");
    // Reconnect: inspect shows the new address the container really got.
    assert.equal(d.docker(["network", "connect", "bridge", "f1"]).code, 0);
    const bridgeIp = inspectNetworks("f1").bridge.IPAddress;
    assert.ok(bridgeIp && Object.values(addrs("f1")).includes(bridgeIp), `inspect ${bridgeIp} vs ${JSON.stringify(addrs("f1"))}`);
    assert.deepEqual(lines(d.docker(["ps", "--filter", "network=n1", "--format", "{{.Names}}"])), ["f1"]);

    // Stopped: inspect still lists both networks (without addresses), as dockerd.
    assert.equal(d.docker(["stop", "-t", "0", "f1"]).code, 0);
    nets = inspectNetworks("f1");
    assert.deepEqual(Object.keys(nets).sort(), ["bridge", "n1"]);
    assert.equal(nets.n1.IPAddress, "");
    assert.deepEqual(lines(d.docker(["ps", "-a", "--filter", "network=n1", "--format", "{{.Names}}"])), ["f1"]);
    assert.equal(d.docker(["rm", "-f", "f1"]).code, 0);
  });

  test("a created container can be connected: it has the network when it starts", () => {
    assert.equal(d.docker(["create", "--name", "c1", "--network", "n1", "bb", "sleep", "300"]).code, 0);
    assert.equal(d.docker(["network", "create", "--subnet", "10.213.8.0/24", "n2"]).code, 0);
    const c = d.docker(["network", "connect", "--ip", "10.213.8.9", "n2", "c1"]);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(Object.keys(inspectNetworks("c1")).sort(), ["n1", "n2"]);
    assert.equal(d.docker(["start", "c1"]).code, 0);
    const a = addrs("c1");
    assert.equal(Object.keys(a).length, 2, JSON.stringify(a));
    assert.ok(Object.values(a).includes("10.213.8.9"));
    assert.equal(inspectNetworks("c1").n2.IPAddress, "10.213.8.9");
    const dup = d.docker(["network", "connect", "n2", "c1"]);
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /already exists in network n2/);
    assert.equal(d.docker(["rm", "-f", "c1"]).code, 0);
    assert.equal(d.docker(["network", "rm", "n2"]).code, 0);
  });

  test("run --network with a missing network: dockerd's error (not a missing image), exit 125", () => {
    const r = d.docker(["run", "--name", "nonet", "--network", "nosuch", "bb", "true"]);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /Error response from daemon: network nosuch not found/);
    assert.doesNotMatch(r.stderr, /Unable to find image/);
    assert.equal(d.docker(["rm", "-f", "nonet"]).code, 0);
  });

  test("--network none and host get /etc/resolv.conf, hosts and hostname with --dns, --dns-search, --add-host applied", () => {
    const none = d.docker(["run", "--rm", "--network", "none", "--dns", "1.2.3.4", "--dns-search", "ex.com", "--add-host", "h1:10.0.0.1", "-h", "myh", "bb",
      "sh", "-c", "cat /etc/resolv.conf; echo --; cat /etc/hosts; echo --; cat /etc/hostname"]);
    assert.equal(none.code, 0, none.stderr);
    const [resolv, hosts, hostname] = none.stdout.split("--\n");
    assert.match(resolv, /^nameserver 1\.2\.3\.4$/m);
    assert.match(resolv, /^search ex\.com$/m);
    assert.match(hosts, /^127\.0\.0\.1\tlocalhost$/m);
    assert.match(hosts, /^10\.0\.0\.1\th1$/m);
    assert.equal(hostname, "myh\n");
    const host = d.docker(["run", "--rm", "--network", "host", "--add-host", "h2:10.0.0.2", "bb", "sh", "-c", "cat /etc/resolv.conf; echo --; cat /etc/hosts"]);
    assert.equal(host.code, 0, host.stderr);
    const [hresolv, hhosts] = host.stdout.split("--\n");
    const hostResolv = spawnSync("cat", ["/etc/resolv.conf"], { encoding: "utf8" }).stdout;
    assert.equal(hresolv, hostResolv, "host mode: the host's resolv.conf");
    assert.match(hhosts, /^10\.0\.0\.2\th2$/m);
    const dns = d.docker(["run", "--rm", "--network", "host", "--dns", "9.9.9.9", "bb", "cat", "/etc/resolv.conf"]);
    assert.match(dns.stdout, /^nameserver 9\.9\.9\.9$/m);
  });

  test("--network container:X with -h is refused as dockerd does", () => {
    assert.equal(d.docker(["run", "-d", "--name", "tgt", "bb", "sleep", "300"]).code, 0);
    const r = d.docker(["run", "--rm", "--network", "container:tgt", "-h", "foo", "bb", "true"]);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /conflicting options: hostname and the network mode/);
    assert.equal(d.docker(["rm", "-f", "tgt"]).code, 0);
  });

  test("ps --filter publish matches the host port, expose the container's", async () => {
    const port = await freePort();
    assert.equal(d.docker(["run", "-d", "--name", "p1", "-p", `127.0.0.1:${port}:80`, "--expose", "90", "bb", "sleep", "300"]).code, 0);
    assert.equal(d.docker(["run", "-d", "--name", "p2", "bb", "sleep", "300"]).code, 0);
    const ps = (f: string) => lines(d.docker(["ps", "--filter", f, "--format", "{{.Names}}"]));
    assert.deepEqual(ps(`publish=${port}`), ["p1"]);
    assert.deepEqual(ps("publish=80"), []);
    assert.deepEqual(ps(`publish=${port}/udp`), []);
    assert.deepEqual(ps("expose=80"), ["p1"]);
    assert.deepEqual(ps("expose=85-95/tcp"), ["p1"]);
    assert.deepEqual(ps("expose=81"), []);
    assert.equal(d.docker(["rm", "-f", "p1", "p2"]).code, 0);
  });

  test("network ls filters; prune with a label filter removes only that network; connect, disconnect and rm publish network events", () => {
    const since = Math.floor(Date.now() / 1000);
    assert.equal(d.docker(["network", "create", "--label", "x=1", "--subnet", "10.213.9.0/24", "nx"]).code, 0);
    assert.equal(d.docker(["network", "create", "--label", "l=1", "--subnet", "10.213.10.0/24", "nl"]).code, 0);
    assert.equal(d.docker(["network", "create", "--subnet", "10.213.11.0/24", "nplain"]).code, 0);
    assert.equal(d.docker(["run", "-d", "--name", "e1", "--network", "n1", "bb", "sleep", "300"]).code, 0);
    const ls = (...f: string[]) => lines(d.docker(["network", "ls", ...f.flatMap((x) => ["--filter", x]), "--format", "{{.Name}}"]));
    assert.deepEqual(ls("label=l=1"), ["nl"]);
    assert.deepEqual(ls("label=x"), ["nx"]);
    assert.deepEqual(ls("type=custom"), ["n1", "nl", "nplain", "nx"]);
    assert.deepEqual(ls("type=builtin"), ["bridge", "host", "none"]);
    assert.deepEqual(ls("dangling=true"), ["nl", "nplain", "nx"], "n1 has a container");
    assert.deepEqual(ls("name=pla"), ["nplain"]);
    assert.notEqual(d.docker(["network", "ls", "--filter", "bogus=1"]).code, 0);
    const bridgeOf = (n: string) => d.docker(["network", "inspect", "-f", "{{index .Options \"com.docker.network.bridge.name\"}}", n]).stdout.trim();
    const [bx, bl, bp] = [bridgeOf("nx"), bridgeOf("nl"), bridgeOf("nplain")];
    const prune = d.docker(["network", "prune", "-f", "--filter", "label=x=1"]);
    assert.equal(prune.code, 0, prune.stderr);
    assert.match(prune.stdout, /^nx$/m);
    assert.ok(!existsSync(`/sys/class/net/${bx}`), "the labelled network's bridge is gone");
    assert.ok(existsSync(`/sys/class/net/${bl}`) && existsSync(`/sys/class/net/${bp}`), "the others' bridges stay");
    assert.deepEqual(ls("type=custom"), ["n1", "nl", "nplain"]);

    assert.equal(d.docker(["network", "connect", "nl", "e1"]).code, 0);
    assert.equal(d.docker(["network", "disconnect", "nl", "e1"]).code, 0);
    assert.equal(d.docker(["network", "rm", "nl"]).code, 0);
    const ev = d.docker(["events", "--since", String(since), "--until", String(Math.floor(Date.now() / 1000) + 1), "--filter", "type=network",
      "--format", "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.container}}"]);
    assert.equal(ev.code, 0, ev.stderr);
    const id = d.docker(["inspect", "-f", "{{.Id}}", "e1"]).stdout.trim();
    const got = ev.stdout.split("\n").filter(Boolean);
    assert.ok(got.includes(`connect nl ${id}`), ev.stdout);
    assert.ok(got.includes(`disconnect nl ${id}`), ev.stdout);
    assert.ok(got.some((l) => l.startsWith("destroy nl ")), ev.stdout);
    assert.ok(got.some((l) => l.startsWith("destroy nx ")), "prune publishes destroy");
    assert.equal(d.docker(["rm", "-f", "e1"]).code, 0);
    assert.equal(d.docker(["network", "rm", "nplain", "n1"]).code, 0);
  });
});
