// Networking end to end through `berth run` and `berth network`: bridges, user networks with DNS and
// isolation, published TCP/UDP ports on 127.0.0.1 and (userland proxy) on ::1, -P, container: sharing,
// conflicts, crash cleanup.
// Traffic goes only to 127.0.0.1 and to addresses inside namespaces these tests (Berth) create. Uses a
// private data root, so this suite has its own bridge and nftables table, and removes both at the end.
// Needs root, busybox-static (/bin/busybox) and nft; skipped otherwise.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, copyFileSync, chmodSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BERTH_LAUNCHER, isRoot, show, waitFor, type CliResult } from "../helpers/berth.js";
import { findContainerPid, networkContext, sweepNetworks } from "../../src/network/index.js";
import { decode, encodeResponse, TYPE } from "../../src/network/dns.js";
import { freePort } from "../helpers/net.js";

const BUSYBOX = "/bin/busybox";
// busybox's nc has no UDP: a tiny static echo server for the UDP test.
const UDP_ECHO = `#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) return 1;
  for (;;) {
    char buf[2048]; struct sockaddr_in from; socklen_t len = sizeof from;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    if (n > 0) sendto(s, buf, n, 0, (struct sockaddr *)&from, len);
  }
}
`;
const haveNft = spawnSync("sh", ["-c", "command -v nft"]).status === 0;
const skip = !isRoot ? "needs root" : !existsSync(BUSYBOX) ? "needs busybox-static" : !haveNft ? "needs nftables" : false;

const dataRoot = mkdtempSync(join(tmpdir(), "berth-net-it-"));
const ctx = networkContext({ dataRoot });
// The in-process path (`berth run --rootfs`, `berth network`, `berth port` on this data root): no daemon.
const env = { ...process.env, BERTH_DATA_ROOT: dataRoot, BERTH_NO_DAEMON: "1" };

function berth(args: string[], timeoutMs = 30_000): CliResult {
  const r = spawnSync(BERTH_LAUNCHER, args, { encoding: "utf8", env, timeout: timeoutMs, killSignal: "SIGKILL" });
  if (r.error) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

interface Bg { child: ChildProcess; out: () => string; done: Promise<number | null> }

function background(args: string[]): Bg {
  const child = spawn(BERTH_LAUNCHER, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout?.setEncoding("utf8").on("data", (s: string) => { out += s; });
  child.stderr?.setEncoding("utf8").on("data", (s: string) => { out += s; });
  const done = new Promise<number | null>((res) => child.on("close", (c) => res(c)));
  return { child, out: () => out, done };
}

function state(): { networks: Record<string, { name: string; bridge: string }>; endpoints: Record<string, { containerName: string; containerId: string; ip: string; hostVeth: string }> } {
  try {
    return JSON.parse(readFileSync(join(dataRoot, "network", "state.json"), "utf8"));
  } catch {
    return { networks: {}, endpoints: {} };
  }
}

function endpointOf(name: string) {
  return Object.values(state().endpoints).find((e) => e.containerName === name);
}

/**
 * Waits until a container named `name` has an endpoint and its init runs (state.json has its pid): the
 * endpoint is recorded before the launch, so `container:NAME` right after it could find no pid yet.
 */
async function waitEndpoint(name: string, bg?: Bg) {
  const running = () => { try { return findContainerPid(ctx, name, "/run/berth").pid > 0; } catch { return false; } };
  return waitFor(`endpoint of ${name}${bg ? `\n${bg.out()}` : ""}`, () => running() && endpointOf(name), 15_000);
}

/** Ends a background run the way a container ends: its init is killed (httpd as pid 1 ignores SIGTERM). */
async function stop(bg: Bg): Promise<void> {
  const ids = new Set(Object.values(state().endpoints).map((e) => e.containerId));
  for (const id of ids) {
    try {
      const st = JSON.parse(readFileSync(join("/run/berth/containers", id, "state.json"), "utf8")) as { ownerPid?: number; pid?: number };
      if (st.ownerPid === bg.child.pid && st.pid) process.kill(st.pid, "SIGKILL");
    } catch { /* not this one, or gone */ }
  }
  const t = setTimeout(() => bg.child.kill("SIGKILL"), 5000);
  await bg.done;
  clearTimeout(t);
}

function httpGet(port: number, host = "127.0.0.1"): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host }, () => s.end("GET / HTTP/1.0\r\n\r\n"));
    let data = "";
    s.setEncoding("utf8").on("data", (d: string) => { data += d; });
    s.on("end", () => resolve(data));
    s.on("error", reject);
    s.setTimeout(5000, () => { s.destroy(); reject(new Error("timeout")); });
  });
}

async function waitAsync<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}


/** A port free on ::1 (and, being picked by the kernel there, most likely free elsewhere too). */
function freePort6(proto: "tcp" | "udp" = "tcp"): Promise<number> {
  if (proto === "udp") {
    return new Promise((resolve) => {
      const s = createSocket({ type: "udp6", ipv6Only: true });
      s.bind(0, "::1", () => { const p = s.address().port; s.close(() => resolve(p)); });
    });
  }
  return new Promise((resolve) => {
    const srv = createServer().listen({ port: 0, host: "::1", ipv6Only: true }, () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
}

function links(): string[] {
  return readdirSync("/sys/class/net");
}

function nftTable(): string {
  return spawnSync("nft", ["list", "table", "ip", ctx.nftTable], { encoding: "utf8" }).stdout;
}

describe("networking", { skip, concurrency: false }, () => {
  let rootfs = "";
  const running: Bg[] = [];
  const linksBefore = links();

  before(() => {
    rootfs = join(dataRoot, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    mkdirSync(join(rootfs, "www"));
    mkdirSync(join(rootfs, "out"));
    copyFileSync(BUSYBOX, join(rootfs, "bin", "busybox"));
    chmodSync(join(rootfs, "bin", "busybox"), 0o755);
    for (const a of ["sh", "httpd", "nc", "nslookup", "ip", "sleep", "cat", "echo", "hostname", "awk", "grep", "true"]) symlinkSync("busybox", join(rootfs, "bin", a));
    writeFileSync(join(rootfs, "www", "index.html"), "hello-from-berth\n");
    writeFileSync(join(dataRoot, "udp-echo.c"), UDP_ECHO);
    const cc = spawnSync("cc", ["-static", "-O2", "-o", join(rootfs, "bin", "udp-echo"), join(dataRoot, "udp-echo.c")], { encoding: "utf8" });
    assert.equal(cc.status, 0, cc.stderr);
  });

  after(async () => {
    for (const bg of running) await stop(bg);
    berth(["network", "prune", "-f"]);
    const left = links().filter((l) => !linksBefore.includes(l));
    rmSync(dataRoot, { recursive: true, force: true });
    assert.deepEqual(left, [], "links left behind");
    assert.equal(nftTable(), "", "nftables table left behind");
  });

  const httpd = (...args: string[]) => ["run", ...args, "--rootfs", rootfs, "/bin/httpd", "-f", "-p", "80", "-h", "/www"];

  test("--network none has only lo", () => {
    const r = berth(["run", "--network", "none", "--rootfs", rootfs, "/bin/ip", "-o", "link"]);
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(r.stdout.trim().split("\n").map((l) => l.split(":")[1].trim()), ["lo"]);
  });

  test("the default bridge: eth0 with an address, a default route, /etc/hosts and /etc/hostname", () => {
    const r = berth(["run", "--network", "bridge", "-h", "box1", "--add-host", "db:10.11.12.13", "--mac-address", "02:42:0a:bb:cc:dd",
      "--dns", "10.99.99.99", "--dns-search", "test.example", "--rootfs", rootfs, "/bin/sh", "-c",
      "ip -o link show eth0; cat /etc/resolv.conf; ip -o -4 addr show eth0; ip route; cat /etc/hosts /etc/hostname; hostname"]);
    assert.equal(r.code, 0, show(r));
    const ip = /inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(r.stdout);
    assert.ok(ip, show(r));
    assert.match(r.stdout, /default via \d+\.\d+\.\d+\.1 dev eth0/);
    assert.match(r.stdout, new RegExp(`${ip[1].replaceAll(".", "\\.")}\\tbox1\\n`));
    assert.match(r.stdout, /10\.11\.12\.13\tdb/);
    assert.match(r.stdout, /\nbox1\nbox1\n$/);
    assert.match(r.stdout, /link\/ether 02:42:0a:bb:cc:dd /);
    assert.match(r.stdout, /^nameserver 10\.99\.99\.99\nsearch test\.example\n/m);
    // The lease is released when the container ends.
    assert.deepEqual(Object.keys(state().endpoints), []);
  });

  test("containers on a user network reach each other by address and by name; other networks are isolated", async () => {
    let r = berth(["network", "create", "itnet1"]);
    assert.equal(r.code, 0, show(r));
    r = berth(["network", "create", "--subnet", "10.213.7.0/24", "--gateway", "10.213.7.1", "itnet2"]);
    assert.equal(r.code, 0, show(r));
    const web = background(httpd("--network", "itnet1", "--name", "web", "--network-alias", "www"));
    running.push(web);
    const ep = await waitEndpoint("web", web);
    // Both: by address, and by name through the network's DNS (busybox's nslookup speaks DNS itself).
    r = berth(["run", "--network", "itnet1", "--rootfs", rootfs, "/bin/sh", "-c",
      `cat /etc/resolv.conf; nslookup web; nslookup www; nslookup ${ep.ip}; ` +
      `for i in 1 2 3 4 5 6 7 8 9 10; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${ep.ip} 80 && break; sleep 0.2; done; ` +
      "ip=$(nslookup web | awk '/^Address/ {a=$2} END {print a}'); printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 $ip 80"]);
    assert.equal(r.code, 0, show(r));
    const net1 = Object.values(state().networks).find((n) => n.name === "itnet1");
    assert.ok(net1);
    assert.match(r.stdout, /^nameserver \d+\.\d+\.\d+\.1$/m);
    assert.match(r.stdout, new RegExp(`Name:\\s+web\\nAddress: ${ep.ip.replaceAll(".", "\\.")}`));
    assert.match(r.stdout, new RegExp(`Name:\\s+www\\nAddress: ${ep.ip.replaceAll(".", "\\.")}`));
    assert.match(r.stdout, /in-addr\.arpa\tname = web/);
    assert.equal(r.stdout.match(/hello-from-berth/g)?.length, 2, show(r));
    // From the other network: no answer.
    r = berth(["run", "--network", "itnet2", "--ip", "10.213.7.50", "--rootfs", rootfs, "/bin/sh", "-c",
      `ip -o -4 addr show eth0; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${ep.ip} 80; echo rc=$?`]);
    assert.match(r.stdout, /inet 10\.213\.7\.50\/24/, show(r));
    assert.doesNotMatch(r.stdout, /hello-from-berth/);
    // A network in use cannot be removed.
    r = berth(["network", "rm", "itnet1"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /has active endpoints \(web\)/);
    // inspect: docker's shape, with the container.
    r = berth(["network", "inspect", "itnet1"]);
    const [doc] = JSON.parse(r.stdout) as [{ Name: string; Driver: string; IPAM: { Config: { Subnet: string }[] }; Containers: Record<string, { Name: string; IPv4Address: string }> }];
    assert.equal(doc.Name, "itnet1");
    assert.equal(doc.Driver, "bridge");
    assert.deepEqual(Object.values(doc.Containers).map((c) => c.Name), ["web"]);
    await stop(web);
    r = berth(["network", "rm", "itnet1", "itnet2"]);
    assert.equal(r.code, 0, show(r));
    assert.ok(!links().includes(net1.bridge));
  });

  test("the network's DNS relays other names to the container's --dns server", async () => {
    // A stand-in upstream resolver on a loopback address: answers every A question with 10.1.2.3.
    const upstream = createSocket("udp4");
    upstream.on("message", (m, rinfo) => {
      const q = decode(m);
      upstream.send(encodeResponse(q, q.questions[0]?.type === TYPE.A ? [{ type: TYPE.A, data: "10.1.2.3" }] : [], 0), rinfo.port, rinfo.address);
    });
    await new Promise<void>((res) => upstream.bind(53, "127.0.0.2", () => res()));
    try {
      let r = berth(["network", "create", "itdns"]);
      assert.equal(r.code, 0, show(r));
      // Not spawnSync: the stand-in answers from this process's event loop.
      const bg = background(["run", "--network", "itdns", "--dns", "127.0.0.2", "--rootfs", rootfs, "/bin/sh", "-c", "nslookup elsewhere.test"]);
      const code = await bg.done;
      assert.equal(code, 0, bg.out());
      assert.match(bg.out(), /Name:\s+elsewhere\.test\nAddress: 10\.1\.2\.3/);
      r = berth(["network", "rm", "itdns"]);
      assert.equal(r.code, 0, show(r));
    } finally {
      upstream.close();
    }
  });

  test("a published TCP port answers on 127.0.0.1, from the host and (hairpin) from another container", async () => {
    const port = await freePort();
    const web = background(httpd("--network", "bridge", "--name", "pub", "-p", `127.0.0.1:${port}:80`));
    running.push(web);
    await waitEndpoint("pub", web);
    const body = await waitAsync("the published port", async () => {
      try { return await httpGet(port); } catch { return undefined; }
    });
    assert.match(body, /hello-from-berth/);
    let r = berth(["port", "pub"]);
    assert.equal(r.stdout, `80/tcp -> 127.0.0.1:${port}\n`);
    // Hairpin through the bridge's gateway address (a Berth-made address): needs the port on all addresses.
    const port2 = await freePort();
    const web2 = background(httpd("--network", "bridge", "--name", "pub2", "-p", `${port2}:80`));
    running.push(web2);
    await waitEndpoint("pub2", web2);
    r = berth(["run", "--network", "bridge", "--rootfs", rootfs, "/bin/sh", "-c",
      `gw=$(ip route | awk '/default/ {print $3}'); for i in 1 2 3 4 5 6 7 8 9 10; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 $gw ${port2} && break; sleep 0.2; done`]);
    assert.match(r.stdout, /hello-from-berth/, show(r));
    await stop(web);
    await stop(web2);
    assert.doesNotMatch(nftTable(), new RegExp(`\\. ${port} :`), "rule left after stop");
  });

  test("a published UDP port answers datagrams sent to 127.0.0.1", async () => {
    const port = await freePort();
    const srv = background(["run", "--network", "bridge", "--name", "udp", "-p", `127.0.0.1:${port}:9999/udp`, "--rootfs", rootfs, "/bin/udp-echo", "9999"]);
    running.push(srv);
    await waitEndpoint("udp", srv);
    const reply = await waitAsync("the echo", () => new Promise<string | undefined>((resolve) => {
      // A new socket (new source port) each time: conntrack must not pin an early datagram's path.
      const sock = createSocket("udp4");
      const t = setTimeout(() => { sock.close(); resolve(undefined); }, 500);
      sock.on("message", (m) => { clearTimeout(t); sock.close(); resolve(m.toString()); });
      sock.send("ping-udp", port, "127.0.0.1");
    }));
    assert.equal(reply, "ping-udp");
    await stop(srv);
  });

  test("IPv6 host addresses: the userland proxy serves [::1] for TCP and UDP, and the IPv6 side of a port on every address", async () => {
    const tcpPort = await freePort6();
    const udpPort = await freePort6("udp");
    const allPort = await freePort();
    const web = background(httpd("--name", "pub6", "-p", `[::1]:${tcpPort}:80`, "-p", `${allPort}:80`));
    running.push(web);
    await waitEndpoint("pub6", web);
    // httpGet shuts its side after the request (as nc does): the proxy must pass that end on and keep
    // the way back open (it used to tear both down, so an answer came only when it beat the FIN).
    // Until the server in the container listens, the proxy accepts and closes: an empty answer.
    const body = await waitAsync("[::1] TCP through the proxy", async () => {
      try { return (await httpGet(tcpPort, "::1")) || undefined; } catch { return undefined; }
    });
    assert.match(body, /hello-from-berth/);
    // Each endpoint is polled like the first: an empty answer was seen once on a heavily loaded machine.
    const answer = (port: number, host: string) => waitAsync(`${host} port ${port}`, async () => {
      try { return (await httpGet(port, host)) || undefined; } catch { return undefined; }
    });
    assert.match(await answer(allPort, "::1"), /hello-from-berth/, "a port on every address also answers on ::1");
    assert.match(await answer(allPort, "127.0.0.1"), /hello-from-berth/, "and on 127.0.0.1 (the kernel path)");
    const r = berth(["port", "pub6", "80"]);
    assert.match(r.stdout, new RegExp(`^80/tcp -> \\[::1\\]:${tcpPort}$`, "m"), show(r));
    assert.doesNotMatch(nftTable(), new RegExp(`\\. ${tcpPort} :`), "an IPv6 binding has no kernel rule");
    const udp = background(["run", "--name", "udp6", "-p", `[::1]:${udpPort}:9999/udp`, "--rootfs", rootfs, "/bin/udp-echo", "9999"]);
    running.push(udp);
    await waitEndpoint("udp6", udp);
    const reply = await waitAsync("the echo over [::1]", () => new Promise<string | undefined>((resolve) => {
      const sock = createSocket("udp6");
      const t = setTimeout(() => { sock.close(); resolve(undefined); }, 500);
      sock.on("message", (m) => { clearTimeout(t); sock.close(); resolve(m.toString()); });
      sock.send("ping-udp6", udpPort, "::1");
    }));
    assert.equal(reply, "ping-udp6");
    await stop(web);
    await stop(udp);
    // The proxy went with the publication.
    await assert.rejects(httpGet(tcpPort, "::1"));
    await assert.rejects(httpGet(allPort, "::1"));
  });

  test("-P publishes exposed ports on free host ports", async () => {
    const web = background(httpd("--network", "bridge", "--name", "pall", "--expose", "80", "-P"));
    running.push(web);
    await waitEndpoint("pall", web);
    const r = berth(["port", "pall", "80"]);
    const m = /^80\/tcp -> 0\.0\.0\.0:(\d+)$/.exec(r.stdout.trim());
    assert.ok(m, show(r));
    const body = await waitAsync("the -P port", async () => {
      try { return await httpGet(Number(m[1])); } catch { return undefined; }
    });
    assert.match(body, /hello-from-berth/);
    await stop(web);
  });

  test("--network container:NAME shares the network namespace", async () => {
    const web = background(httpd("--network", "bridge", "--name", "shared"));
    running.push(web);
    const ep = await waitEndpoint("shared", web);
    const r = berth(["run", "--network", "container:shared", "--rootfs", rootfs, "/bin/sh", "-c",
      "ip -o -4 addr show eth0; for i in 1 2 3 4 5 6 7 8 9 10; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 127.0.0.1 80 && break; sleep 0.2; done"]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, new RegExp(`inet ${ep.ip.replaceAll(".", "\\.")}/`));
    assert.match(r.stdout, /hello-from-berth/);
    await stop(web);
  });

  test("a port in use is a clear error naming it, and leaves nothing behind", async () => {
    const port = await freePort();
    const web = background(httpd("--network", "bridge", "--name", "holder", "-p", `${port}:80`));
    running.push(web);
    await waitEndpoint("holder", web);
    let r = berth(["run", "--network", "bridge", "-p", `127.0.0.1:${port}:80`, "--rootfs", rootfs, "/bin/true"]);
    assert.equal(r.code, 125, show(r));
    assert.match(r.stderr, new RegExp(`^berth: cannot publish port 127\\.0\\.0\\.1:${port}/tcp: port is already allocated`));
    await stop(web);
    // A host program listening on the port.
    const srv = createServer().listen(port, "127.0.0.1");
    await new Promise((res) => srv.once("listening", res));
    r = berth(["run", "--network", "bridge", "-p", `${port}:80`, "--rootfs", rootfs, "/bin/true"]);
    srv.close();
    assert.equal(r.code, 125, show(r));
    assert.match(r.stderr, new RegExp(`cannot publish port 0\\.0\\.0\\.0:${port}/tcp: address already in use`));
    // The same on ::1, where the proxy would listen.
    const port6 = await freePort6();
    const srv6 = createServer().listen({ port: port6, host: "::1", ipv6Only: true });
    await new Promise((res) => srv6.once("listening", res));
    r = berth(["run", "-p", `[::1]:${port6}:80`, "--rootfs", rootfs, "/bin/true"]);
    srv6.close();
    assert.equal(r.code, 125, show(r));
    assert.match(r.stderr, new RegExp(`^berth: cannot publish port \\[::1\\]:${port6}/tcp: address already in use`));
    assert.deepEqual(Object.keys(state().endpoints), []);
  });

  test("connect and disconnect a running container; an internal network has no route out", async () => {
    let r = berth(["network", "create", "--internal", "itint"]);
    assert.equal(r.code, 0, show(r));
    const sleeper = background(["run", "--network", "bridge", "--name", "conn", "--rootfs", rootfs, "/bin/sleep", "60"]);
    running.push(sleeper);
    const ep = await waitEndpoint("conn", sleeper);
    const pid = await waitFor("the container's pid", () => {
      try {
        return (JSON.parse(readFileSync(join("/run/berth/containers", ep.containerId, "state.json"), "utf8")) as { pid?: number }).pid;
      } catch { return undefined; }
    });
    const addrs = () => spawnSync("nsenter", ["-t", String(pid), "-n", "ip", "-o", "-4", "addr"], { encoding: "utf8" }).stdout;
    r = berth(["network", "connect", "itint", "conn"]);
    assert.equal(r.code, 0, show(r));
    const net = JSON.parse(berth(["network", "inspect", "itint"]).stdout)[0] as { IPAM: { Config: { Subnet: string }[] }; Containers: Record<string, { IPv4Address: string }> };
    const second = Object.values(net.Containers)[0]?.IPv4Address.split("/")[0];
    assert.ok(second);
    assert.match(addrs(), new RegExp(`eth1\\s+inet ${second.replaceAll(".", "\\.")}/`));
    // On the internal network: an address, no default route.
    r = berth(["run", "--network", "itint", "--rootfs", rootfs, "/bin/sh", "-c", "ip -o -4 addr show eth0; ip route"]);
    assert.equal(r.code, 0, show(r));
    assert.doesNotMatch(r.stdout, /default/);
    r = berth(["network", "disconnect", "itint", "conn"]);
    assert.equal(r.code, 0, show(r));
    assert.doesNotMatch(addrs(), /eth1/);
    await stop(sleeper);
    r = berth(["network", "rm", "itint"]);
    assert.equal(r.code, 0, show(r));
  });

  test("an engine's start reconciles: a flushed table and a deleted bridge come back", async () => {
    let r = berth(["network", "create", "itrec"]);
    assert.equal(r.code, 0, show(r));
    const net = Object.values(state().networks).find((n) => n.name === "itrec");
    assert.ok(net && links().includes(net.bridge));
    spawnSync("nft", ["delete", "table", "ip", ctx.nftTable]);
    spawnSync("ip", ["link", "del", net.bridge]);
    await sweepNetworks(ctx, { reconcile: true });
    assert.ok(links().includes(net.bridge));
    assert.match(nftTable(), new RegExp(`"${net.bridge}" : jump in-${net.bridge}`));
    r = berth(["network", "rm", "itrec"]);
    assert.equal(r.code, 0, show(r));
  });

  test("what a killed run left (lease, port rule) is removed at the next start", async () => {
    const port = await freePort();
    const web = background(httpd("--network", "bridge", "--name", "crash", "-p", `127.0.0.1:${port}:80`));
    await waitEndpoint("crash", web);
    await waitFor("the rule", () => nftTable().includes(`${port} :`) || undefined, 10_000);
    web.child.kill("SIGKILL"); // the CLI dies; its container dies with it
    await web.done;
    assert.ok(endpointOf("crash"), "lease still recorded after the crash");
    const r = berth(["run", "--network", "bridge", "--rootfs", rootfs, "/bin/true"]);
    assert.equal(r.code, 0, show(r));
    assert.equal(endpointOf("crash"), undefined);
    assert.doesNotMatch(nftTable(), new RegExp(`${port} :`));
  });
});
