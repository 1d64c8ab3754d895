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
  /** The container's default route: "GATEWAY IFNAME", or "" without one (what `ip route` really has). */
  const defaultRoute = (name: string): string => {
    const r = d.docker(["exec", name, "ip", "route"]);
    assert.equal(r.code, 0, r.stderr);
    const m = /^default via (\S+) dev (\S+)/m.exec(r.stdout);
    return m ? `${m[1]} ${m[2]}` : "";
  };
  /** The interface that has `ip` inside the container. */
  const ifOf = (name: string, ip: string) => Object.entries(addrs(name)).find(([, a]) => a === ip)?.[0];
  /** The A record `who` gets for `name` from the resolver its resolv.conf names (busybox nslookup speaks DNS itself). */
  const lookup = (who: string, name: string): string | undefined => {
    const r = d.docker(["exec", who, "nslookup", "-type=a", name]);
    return new RegExp(`Name:\\s*${name.replace(/\./g, "\\.")}\\s*\\nAddress:\\s*(\\S+)`).exec(r.stdout)?.[1];
  };
  const file = (name: string, path: string) => d.docker(["exec", name, "cat", path]).stdout;

  before(async () => {
    d = new TestDaemon("berth-dnc-");
    await d.start();
    const rootfs = join(d.root, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    copyFileSync(BUSYBOX as string, join(rootfs, "bin/busybox"));
    for (const a of ["sh", "sleep", "cat", "ip", "true", "nslookup", "ping"]) symlinkSync("busybox", join(rootfs, "bin", a));
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
    const shortId = d.docker(["inspect", "-f", "{{.Id}}", "f1"]).stdout.trim().slice(0, 12);
    assert.deepEqual(nets.n1.Aliases, ["al1", shortId], "API 1.43: the aliases, then the short id (user networks only)");
    assert.equal(nets.bridge.Aliases, null);
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

  test("the default route follows dockerd's choice: reconnecting the only network gives it back; by network name, internal last; a disconnected gateway passes it on", () => {
    assert.equal(d.docker(["network", "create", "--subnet", "10.213.12.0/24", "ra"]).code, 0);
    assert.equal(d.docker(["network", "create", "--subnet", "10.213.13.0/24", "rb"]).code, 0);
    assert.equal(d.docker(["network", "create", "--internal", "--subnet", "10.213.14.0/24", "ai"]).code, 0);
    assert.equal(d.docker(["run", "-d", "--name", "g1", "bb", "sleep", "300"]).code, 0);
    const bridgeGw = inspectNetworks("g1").bridge as unknown as { Gateway: string };
    assert.equal(defaultRoute("g1"), `${bridgeGw.Gateway} eth0`);
    assert.equal(d.docker(["network", "disconnect", "bridge", "g1"]).code, 0);
    assert.equal(defaultRoute("g1"), "", "no network, no route");
    assert.equal(d.docker(["network", "connect", "bridge", "g1"]).code, 0);
    const ip = inspectNetworks("g1").bridge.IPAddress;
    assert.equal(defaultRoute("g1"), `${bridgeGw.Gateway} ${ifOf("g1", ip)}`, "the reconnected network gives the route back");

    // rb first, then ra connected: ra sorts first and takes the route; an internal network never does.
    assert.equal(d.docker(["run", "-d", "--name", "g2", "--network", "rb", "bb", "sleep", "300"]).code, 0);
    assert.equal(defaultRoute("g2"), "10.213.13.1 eth0");
    assert.equal(d.docker(["network", "connect", "ai", "g2"]).code, 0);
    assert.equal(defaultRoute("g2"), "10.213.13.1 eth0", "an internal network gives no route, whatever its name");
    assert.equal(d.docker(["network", "connect", "ra", "g2"]).code, 0);
    assert.equal(defaultRoute("g2"), `10.213.12.1 ${ifOf("g2", inspectNetworks("g2").ra.IPAddress)}`);
    // A restart attaches rb first again, and the route still goes by name.
    assert.equal(d.docker(["restart", "-t", "0", "g2"]).code, 0);
    assert.equal(defaultRoute("g2"), `10.213.12.1 ${ifOf("g2", inspectNetworks("g2").ra.IPAddress)}`);
    assert.equal(d.docker(["network", "disconnect", "ra", "g2"]).code, 0);
    assert.equal(defaultRoute("g2"), `10.213.13.1 ${ifOf("g2", inspectNetworks("g2").rb.IPAddress)}`, "the gateway's disconnect passes the route on");

    // --network none: connect is refused until the container leaves none, as dockerd.
    assert.equal(d.docker(["run", "-d", "--name", "g3", "--network", "none", "bb", "sleep", "300"]).code, 0);
    const refused = d.docker(["network", "connect", "ra", "g3"]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /container cannot be connected to multiple networks with one of the networks in private \(none\) mode/);
    assert.equal(d.docker(["network", "disconnect", "none", "g3"]).code, 0);
    assert.deepEqual(inspectNetworks("g3"), {});
    const c = d.docker(["network", "connect", "ra", "g3"]);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(defaultRoute("g3"), "10.213.12.1 eth0");
    assert.deepEqual(Object.keys(inspectNetworks("g3")), ["ra"]);
    assert.equal(d.docker(["rm", "-f", "g1", "g2", "g3"]).code, 0);
  });

  test("connect updates /etc/hosts and the resolver; names resolve on the connected network both ways, across every network of the container", () => {
    assert.equal(d.docker(["run", "-d", "--name", "h1", "bb", "sleep", "300"]).code, 0);
    assert.equal(d.docker(["run", "-d", "--name", "ho", "--network", "ra", "bb", "sleep", "300"]).code, 0);
    assert.equal(d.docker(["run", "-d", "--name", "hb", "--network", "rb", "bb", "sleep", "300"]).code, 0);
    const id = d.docker(["inspect", "-f", "{{.Id}}", "h1"]).stdout.trim().slice(0, 12);
    const resolvBefore = file("h1", "/etc/resolv.conf");
    assert.doesNotMatch(resolvBefore, /10\.213\./);
    assert.equal(d.docker(["network", "connect", "--alias", "hal", "ra", "h1"]).code, 0);
    const ip = inspectNetworks("h1").ra.IPAddress;
    assert.match(file("h1", "/etc/hosts"), new RegExp(`^${ip.replace(/\./g, "\\.")}\\t${id} h1 hal$`, "m"), "its address on the new network, with its names");
    assert.match(file("h1", "/etc/resolv.conf"), /^nameserver 10\.213\.12\.1$/m, "a bridge container connected to a user network asks its DNS");
    assert.deepEqual(inspectNetworks("h1").ra.Aliases, ["hal", id]);

    // Others on ra find it by name, alias, short id and NAME.NETWORK, and reach it; it finds them. (Only
    // names the networks know are asked: an unknown one would be relayed to the host's resolvers.)
    const hoIp = inspectNetworks("ho").ra.IPAddress;
    for (const n of ["h1", "hal", id, "h1.ra"]) assert.equal(lookup("ho", n), ip, n);
    // "h1." so that no search domain sends the name to the host's resolvers.
    assert.equal(d.docker(["exec", "ho", "ping", "-c", "1", "-W", "5", "h1."]).code, 0);
    assert.equal(lookup("h1", "ho"), hoIp);
    assert.equal(d.docker(["exec", "h1", "ping", "-c", "1", "-W", "5", hoIp]).code, 0);

    // A second user network: its names answer too, though resolv.conf names ra's server.
    assert.equal(d.docker(["network", "connect", "rb", "h1"]).code, 0);
    assert.match(file("h1", "/etc/resolv.conf"), /^nameserver 10\.213\.12\.1$/m);
    assert.equal(lookup("h1", "hb"), inspectNetworks("hb").rb.IPAddress);

    // Disconnect: the line goes; the resolver moves to the network it still has, then back to the host's.
    assert.equal(d.docker(["network", "disconnect", "ra", "h1"]).code, 0);
    assert.doesNotMatch(file("h1", "/etc/hosts"), new RegExp(`^${ip.replace(/\./g, "\\.")}\\t`, "m"));
    assert.match(file("h1", "/etc/resolv.conf"), /^nameserver 10\.213\.13\.1$/m);
    assert.equal(lookup("h1", "hb"), inspectNetworks("hb").rb.IPAddress);
    assert.equal(d.docker(["network", "disconnect", "rb", "h1"]).code, 0);
    assert.equal(file("h1", "/etc/resolv.conf"), resolvBefore);
    assert.equal(d.docker(["rm", "-f", "h1", "ho", "hb"]).code, 0);
  });

  test("disconnect from a network removed since: a stopped container drops it (then starts); -f; dockerd's messages", () => {
    assert.equal(d.docker(["network", "create", "--subnet", "10.213.15.0/24", "rz"]).code, 0);
    assert.equal(d.docker(["create", "--name", "z1", "--network", "ra", "bb", "sleep", "300"]).code, 0);
    assert.equal(d.docker(["network", "connect", "rz", "z1"]).code, 0);
    assert.equal(d.docker(["network", "rm", "rz"]).code, 0);
    const start = d.docker(["start", "z1"]);
    assert.notEqual(start.code, 0);
    assert.match(start.stderr, /network rz not found/);
    const id = d.docker(["inspect", "-f", "{{.Id}}", "z1"]).stdout.trim();
    assert.equal(d.docker(["network", "disconnect", "rz", "z1"]).code, 0);
    const again = d.docker(["network", "disconnect", "-f", "rz", "z1"]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, new RegExp(`container ${id} is not connected to the network rz`));
    assert.deepEqual(Object.keys(inspectNetworks("z1")), ["ra"]);
    assert.equal(d.docker(["start", "z1"]).code, 0);
    assert.equal(defaultRoute("z1"), "10.213.12.1 eth0");
    // Running: a missing network is an error, with -f too when it was never attached.
    assert.match(d.docker(["network", "disconnect", "nosuch", "z1"]).stderr, /network nosuch not found/);
    assert.match(d.docker(["network", "disconnect", "-f", "nosuch", "z1"]).stderr, new RegExp(`container ${id} is not connected to the network nosuch`));
    assert.match(d.docker(["network", "disconnect", "rb", "z1"]).stderr, new RegExp(`container ${id} is not connected to network rb`));
    // -f on a live attachment disconnects it as without.
    const f = d.docker(["network", "disconnect", "-f", "ra", "z1"]);
    assert.equal(f.code, 0, f.stderr);
    assert.deepEqual(addrs("z1"), {});
    assert.equal(d.docker(["rm", "-f", "z1"]).code, 0);
    assert.equal(d.docker(["network", "rm", "ra", "rb", "ai"]).code, 0);
  });
});
