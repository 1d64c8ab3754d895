// The engine with networking, driven by the docker CLI: the default bridge, published ports reachable on
// 127.0.0.1 and (through the daemon's userland proxy) on ::1, user
// networks whose containers find each other by name, the docker network endpoints, and nothing left
// (links, nft table) once containers and networks are gone. Only loopback and addresses inside the
// namespaces these tests create are contacted.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, symlinkSync, copyFileSync } from "node:fs";
import { get } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { contains, ipToInt, parseCidr } from "../../src/network/ipam.js";
import { isRoot } from "../helpers/berth.js";
import { DOCKER, TestDaemon, waitFor } from "../helpers/daemon.js";
import { freePort } from "../helpers/net.js";

const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
const skip = !isRoot ? "needs root" : !DOCKER ? "needs the docker CLI" : !BUSYBOX ? "needs busybox-static" : false;


function freePort6(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ port: 0, host: "::1", ipv6Only: true }, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function fetchLocal(port: number, path: string, host = "127.0.0.1"): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host, port, path, timeout: 3000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => { body += c; });
      res.on("end", () => resolve(body));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/** Links and nft tables that carry this daemon's data-root tag. */
function networkLeftovers(tag: string): string[] {
  const links = spawnSync("ip", ["-o", "link", "show"], { encoding: "utf8" }).stdout.split("\n").filter((l) => l.includes(`berth${tag}`));
  const tables = spawnSync("nft", ["list", "tables"], { encoding: "utf8" }).stdout.split("\n").filter((l) => l.includes(`berth_${tag}`));
  return [...links, ...tables];
}

describe("berth daemon networking via the docker CLI", { skip, concurrency: false }, () => {
  let d: TestDaemon;
  let tag = "";

  before(async () => {
    d = new TestDaemon("berth-dnet-");
    await d.start();
    const rootfs = join(d.root, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    copyFileSync(BUSYBOX as string, join(rootfs, "bin/busybox"));
    for (const a of ["sh", "sleep", "httpd", "ping", "nslookup", "echo", "ip"]) symlinkSync("busybox", join(rootfs, "bin", a));
    const tar = join(d.root, "rootfs.tar");
    assert.equal(spawnSync("tar", ["-C", rootfs, "-cf", tar, "."]).status, 0);
    const imp = d.docker(["import", tar, "netbox:1"]);
    assert.equal(imp.code, 0, imp.stderr);
    const { createHash } = await import("node:crypto");
    tag = createHash("sha256").update(d.dataRoot).digest("hex").slice(0, 8);
  });

  after(async () => {
    d.docker(["ps", "-aq"]).stdout.split("\n").filter(Boolean).forEach((id) => d.docker(["rm", "-f", id]));
    d.docker(["network", "prune", "-f"]);
    const left = await d.destroy();
    assert.deepEqual(left, []);
    assert.deepEqual(networkLeftovers(tag), []);
  });

  test("without --network a container is on the default bridge (eth0, an address on its subnet, default route); --network none: only lo", () => {
    const r = d.docker(["run", "--rm", "netbox:1", "sh", "-c", "ip -o link; echo --; ip -o -4 addr show eth0; echo --; ip route"]);
    assert.equal(r.code, 0, r.stderr);
    const [links, addr, routes] = r.stdout.split("--\n");
    assert.deepEqual(links.trim().split("\n").map((l) => l.split(":")[1].trim().replace(/@.*/, "")).sort(), ["eth0", "lo"]);
    const subnet = d.docker(["network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}} {{index .Options \"com.docker.network.bridge.name\"}}", "bridge"]).stdout.trim().split(" ");
    assert.equal(subnet[2], d.net.defaultBridge, "the default bridge of this data root");
    const ip = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(addr)?.[1];
    assert.ok(ip && contains(parseCidr(subnet[0]), ipToInt(ip)), `eth0 ${ip} not in ${subnet[0]}`);
    assert.match(routes, new RegExp(`^default via ${subnet[1].replaceAll(".", "\\.")} dev eth0`, "m"));
    const none = d.docker(["run", "--rm", "--network", "none", "netbox:1", "ip", "-o", "link"]);
    assert.equal(none.code, 0, none.stderr);
    assert.deepEqual(none.stdout.trim().split("\n").map((l) => l.split(":")[1].trim()), ["lo"]);
  });

  test("-p publishes a container port on 127.0.0.1; inspect shows the address and ports; gone after rm", async () => {
    const port = await freePort();
    const run = d.docker(["run", "-d", "--name", "web1", "-p", `127.0.0.1:${port}:8080`, "netbox:1",
      "sh", "-c", "echo hello-from-web > /index.html; httpd -f -p 8080 -h /"]);
    assert.equal(run.code, 0, run.stderr);
    const ip = d.docker(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web1"]).stdout.trim();
    assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/);
    const ports = JSON.parse(d.docker(["inspect", "-f", "{{json .NetworkSettings.Ports}}", "web1"]).stdout) as Record<string, { HostPort: string }[]>;
    assert.equal(ports["8080/tcp"][0].HostPort, String(port));
    assert.equal(d.docker(["ps", "--filter", "name=web1", "--format", "{{.Ports}}"]).stdout, `127.0.0.1:${port}->8080/tcp\n`, "docker ps shows the mapping");
    let body = "";
    await waitFor("the published port to answer", async () => {
      body = await fetchLocal(port, "/index.html").catch(() => "");
      return body.length > 0;
    });
    assert.equal(body.trim(), "hello-from-web");
    assert.equal(d.docker(["rm", "-f", "web1"]).code, 0);
    await assert.rejects(fetchLocal(port, "/index.html"));
  });

  test("a published container stays reachable across a daemon SIGKILL and restart", async () => {
    const port = await freePort();
    const run = d.docker(["run", "-d", "--name", "web2", "-p", `127.0.0.1:${port}:8080`, "netbox:1",
      "sh", "-c", "echo still-here > /index.html; httpd -f -p 8080 -h /"]);
    assert.equal(run.code, 0, run.stderr);
    await waitFor("the published port to answer", async () => (await fetchLocal(port, "/index.html").catch(() => "")).length > 0);
    await d.kill9();
    assert.equal((await fetchLocal(port, "/index.html")).trim(), "still-here", "reachable while the daemon is dead");
    await d.start();
    assert.equal((await fetchLocal(port, "/index.html")).trim(), "still-here", "reachable after the restart");
    assert.equal(d.docker(["inspect", "-f", "{{.State.Running}}", "web2"]).stdout.trim(), "true");
    assert.equal(d.docker(["rm", "-f", "web2"]).code, 0);
    await assert.rejects(fetchLocal(port, "/index.html"));
  });

  test("-p [::1]:PORT is served by the daemon's userland proxy: reachable on ::1, back after a daemon restart, gone after rm; a port in use there is refused by name", async () => {
    const port = await freePort6();
    const run = d.docker(["run", "-d", "--name", "web6", "-p", `[::1]:${port}:8080`, "netbox:1",
      "sh", "-c", "echo hello-over-v6 > /index.html; httpd -f -p 8080 -h /"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(d.docker(["port", "web6", "8080"]).stdout.trim(), `[::1]:${port}`);
    let body = "";
    await waitFor("[::1] to answer through the proxy", async () => {
      body = await fetchLocal(port, "/index.html", "::1").catch(() => "");
      return body.length > 0;
    });
    assert.equal(body.trim(), "hello-over-v6");
    // The proxy lives in the daemon: a restarted daemon listens again for the container it adopts.
    await d.kill9();
    await d.start();
    assert.equal((await fetchLocal(port, "/index.html", "::1")).trim(), "hello-over-v6", "reachable after the restart");
    // A second container cannot take the same address and port.
    const dup = d.docker(["run", "-d", "--name", "dup6", "-p", `[::1]:${port}:8080`, "netbox:1", "sleep", "100"]);
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, new RegExp(`cannot publish port \\[::1\\]:${port}/tcp: port is already allocated`));
    assert.equal(d.docker(["rm", "-f", "dup6"]).code, 0);
    assert.equal(d.docker(["rm", "-f", "web6"]).code, 0);
    await assert.rejects(fetchLocal(port, "/index.html", "::1"));
    // A host program on [::1]:PORT: a clear error naming it.
    const holder = createServer().listen({ port, host: "::1", ipv6Only: true });
    await new Promise((res) => holder.once("listening", res));
    const busy = d.docker(["run", "-d", "--name", "busy6", "-p", `[::1]:${port}:8080`, "netbox:1", "sleep", "100"]);
    holder.close();
    assert.notEqual(busy.code, 0);
    assert.match(busy.stderr, new RegExp(`cannot publish port \\[::1\\]:${port}/tcp: address already in use`));
    assert.equal(d.docker(["rm", "-f", "busy6"]).code, 0);
  });

  test("containers on a user network reach each other by name; networks are listed, inspected and removed", () => {
    const create = d.docker(["network", "create", "--subnet", "10.203.7.0/24", "appnet"]);
    assert.equal(create.code, 0, create.stderr);
    assert.match(d.docker(["network", "ls", "--format", "{{.Name}}"]).stdout, /^appnet$/m);
    assert.equal(d.docker(["network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", "appnet"]).stdout.trim(), "10.203.7.0/24");
    assert.equal(d.docker(["run", "-d", "--name", "db1", "--network", "appnet", "netbox:1", "sleep", "100"]).code, 0);
    const ping = d.docker(["run", "--rm", "--network", "appnet", "netbox:1", "ping", "-c", "1", "-W", "2", "db1"]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    assert.match(ping.stdout, /from 10\.203\.7\.\d+/);
    assert.notEqual(d.docker(["network", "rm", "appnet"]).code, 0, "a network in use is not removed");
    // connect a running container to a second network: reachable by name there too; then disconnect.
    assert.equal(d.docker(["network", "create", "--subnet", "10.203.8.0/24", "sidenet"]).code, 0);
    const connect = d.docker(["network", "connect", "sidenet", "db1"]);
    assert.equal(connect.code, 0, connect.stderr);
    const viaSide = d.docker(["run", "--rm", "--network", "sidenet", "netbox:1", "ping", "-c", "1", "-W", "2", "db1"]);
    assert.equal(viaSide.code, 0, viaSide.stdout + viaSide.stderr);
    assert.match(viaSide.stdout, /from 10\.203\.8\.\d+/);
    assert.equal(d.docker(["network", "disconnect", "sidenet", "db1"]).code, 0);
    assert.equal(d.docker(["network", "rm", "sidenet"]).code, 0);
    assert.equal(d.docker(["rm", "-f", "db1"]).code, 0);
    assert.equal(d.docker(["network", "rm", "appnet"]).code, 0);
    assert.equal(d.docker(["network", "inspect", "appnet"]).code, 1);
    assert.notEqual(d.docker(["run", "--rm", "--network", "nosuchnet", "netbox:1", "true"]).code, 0);
  });
});
