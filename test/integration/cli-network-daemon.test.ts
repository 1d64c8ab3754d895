// The berth CLI's networking through the daemon, as docker's CLI does it: `berth run -d -p`, `berth create
// -p`, `berth port`, `berth network create/ls/rm`, `berth run --network NAME --network-alias/--ip`,
// `--network container:NAME`, --add-host/--dns-search, and `berth rm -f` leaving no port rule. A private
// daemon (test/helpers/daemon.ts); traffic only to 127.0.0.1 and to addresses inside the namespaces these
// tests create. Needs root and busybox-static.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isRoot } from "../helpers/berth.js";
import { TestDaemon, waitFor, type Run } from "../helpers/daemon.js";
import { freePort } from "../helpers/net.js";

const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
const haveNft = spawnSync("sh", ["-c", "command -v nft"]).status === 0;
const skip = !isRoot ? "needs root" : !BUSYBOX ? "needs busybox-static" : !haveNft ? "needs nftables" : false;


/** One HTTP/1.0 GET on 127.0.0.1:port; the whole answer, or "" when nothing answers. */
function httpGet(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ port, host: "127.0.0.1" }, () => s.end(`GET ${path} HTTP/1.0\r\n\r\n`));
    let data = "";
    s.setEncoding("utf8").on("data", (d: string) => { data += d; });
    s.on("end", () => resolve(data));
    s.on("error", () => resolve(""));
    s.setTimeout(3000, () => { s.destroy(); resolve(""); });
  });
}

const show = (r: Run) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

describe("berth CLI networking through the daemon", { skip, concurrency: false }, () => {
  let d: TestDaemon;
  const berth = (args: string[], timeoutMs?: number) => d.berth(args, { timeoutMs });
  const nftTable = () => spawnSync("nft", ["list", "table", "ip", d.net.nftTable], { encoding: "utf8" }).stdout;

  before(async () => {
    d = new TestDaemon("berth-clinet-");
    await d.start();
    const rootfs = join(d.root, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    mkdirSync(join(rootfs, "www"));
    writeFileSync(join(rootfs, "www", "index.html"), "hello-through-the-daemon\n");
    copyFileSync(BUSYBOX as string, join(rootfs, "bin/busybox"));
    for (const a of ["sh", "sleep", "httpd", "ping", "nslookup", "ip", "cat"]) symlinkSync("busybox", join(rootfs, "bin", a));
    const tar = join(d.root, "rootfs.tar");
    assert.equal(spawnSync("tar", ["-C", rootfs, "-cf", tar, "."]).status, 0);
    // docker import's request: the tarball as the body of /images/create?fromSrc=-.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ socketPath: d.socket, method: "POST", path: "/v1.43/images/create?fromSrc=-&repo=clinet%3A1", headers: { "Content-Type": "application/x-tar" } }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", reject);
      req.end(readFileSync(tar));
    });
    assert.equal(status, 200);
  });

  after(async () => {
    const left = await d.destroy();
    assert.deepEqual(left, []);
  });

  const httpd = ["clinet:1", "httpd", "-f", "-p", "80", "-h", "/www"];

  test("berth run -d -p 127.0.0.1:PORT:80 answers on the host; berth port shows it; berth rm -f removes the rule", async () => {
    const port = await freePort();
    const run = berth(["run", "-d", "-p", `127.0.0.1:${port}:80`, "--name", "web", ...httpd]);
    assert.equal(run.code, 0, show(run));
    assert.match(run.stdout.trim(), /^[0-9a-f]{64}$/);
    let body = "";
    await waitFor("the published port to answer", async () => {
      body = await httpGet(port, "/index.html");
      return body.length > 0;
    });
    assert.match(body, /hello-through-the-daemon/);
    const ports = berth(["port", "web"]);
    assert.equal(ports.code, 0, show(ports));
    assert.equal(ports.stdout, `80/tcp -> 127.0.0.1:${port}\n`);
    assert.equal(berth(["port", "web", "80"]).stdout, `127.0.0.1:${port}\n`);
    assert.equal(berth(["ps", "--filter", "name=web", "--format", "{{.Ports}}"]).stdout, `127.0.0.1:${port}->80/tcp\n`, "ps shows the mapping");
    const missing = berth(["port", "web", "81"]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no public port '81' published for web/);
    assert.match(nftTable(), new RegExp(`\\b${port}\\b`), "the port's DNAT rule");
    const rm = berth(["rm", "-f", "web"]);
    assert.equal(rm.code, 0, show(rm));
    assert.doesNotMatch(nftTable(), new RegExp(`\\b${port}\\b`), "no rule for the port after rm -f");
    assert.equal(await httpGet(port, "/index.html"), "");
  });

  test("berth create -p, then start: the port answers; -P with --expose picks a free host port", async () => {
    const port = await freePort();
    const create = berth(["create", "-p", `127.0.0.1:${port}:80`, "--name", "web2", ...httpd]);
    assert.equal(create.code, 0, show(create));
    assert.equal(berth(["port", "web2"]).stdout, "", "no mapping before start");
    assert.equal(berth(["start", "web2"]).code, 0);
    assert.equal(berth(["port", "web2"]).stdout, `80/tcp -> 127.0.0.1:${port}\n`);
    await waitFor("web2 to answer", async () => (await httpGet(port, "/index.html")).includes("hello-through-the-daemon"));

    const all = berth(["run", "-d", "-P", "--expose", "80", "--name", "web3", ...httpd]);
    assert.equal(all.code, 0, show(all));
    const line = berth(["port", "web3", "80/tcp"]).stdout.trim();
    const m = /^0\.0\.0\.0:(\d+)$/.exec(line);
    assert.ok(m, `berth port web3 80/tcp: ${line}`);
    await waitFor("web3 to answer on its picked port", async () => (await httpGet(Number(m[1]), "/index.html")).includes("hello-through-the-daemon"));
    assert.equal(berth(["rm", "-f", "web2", "web3"]).code, 0);
    assert.doesNotMatch(nftTable(), new RegExp(`\\b(${port}|${m[1]})\\b`));
  });

  test("a user network through the daemon: containers reach each other by name and alias; --ip, container:, --add-host, --dns-search", () => {
    const create = berth(["network", "create", "--subnet", "10.203.9.0/24", "clinet"]);
    assert.equal(create.code, 0, show(create));
    // Created by the daemon: its API lists it.
    assert.match(berth(["network", "ls"]).stdout, /\bclinet\b/);
    const db = berth(["run", "-d", "--network", "clinet", "--network-alias", "dbalias", "--ip", "10.203.9.50", "--mac-address", "02:42:0a:cb:09:99", "--name", "db", "clinet:1", "sleep", "100"]);
    assert.equal(db.code, 0, show(db));
    assert.equal(berth(["inspect", "-f", "{{.NetworkSettings.Networks.clinet.IPAddress}}", "db"]).stdout.trim(), "10.203.9.50");
    for (const name of ["db", "dbalias"]) {
      const ping = berth(["run", "--rm", "--network", "clinet", "clinet:1", "ping", "-c", "1", "-W", "2", name]);
      assert.equal(ping.code, 0, show(ping));
      assert.match(ping.stdout, /from 10\.203\.9\.50\b/);
    }
    // container:db shares db's network namespace: the same eth0, with db's address and MAC.
    const shared = berth(["run", "--rm", "--network", "container:db", "clinet:1", "sh", "-c", "ip -o -4 addr show eth0; ip -o link show eth0"]);
    assert.equal(shared.code, 0, show(shared));
    assert.match(shared.stdout, /inet 10\.203\.9\.50\//);
    assert.match(shared.stdout, /link\/ether 02:42:0a:cb:09:99\b/);
    const files = berth(["run", "--rm", "--network", "clinet", "--add-host", "extra.test:192.0.2.7", "--dns-search", "example.test", "clinet:1", "cat", "/etc/hosts", "/etc/resolv.conf"]);
    assert.equal(files.code, 0, show(files));
    assert.match(files.stdout, /^192\.0\.2\.7\s+extra\.test$/m);
    assert.match(files.stdout, /^search example\.test$/m);
    // docker's words for an alias on the default bridge, before anything is created.
    const bad = berth(["run", "--rm", "--network-alias", "x", "clinet:1", "true"]);
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /network-scoped aliases are only supported for user-defined networks/);
    const inUse = berth(["network", "rm", "clinet"]);
    assert.notEqual(inUse.code, 0, "a network in use is not removed");
    const rmDb = berth(["rm", "-f", "db"]);
    assert.equal(rmDb.code, 0, show(rmDb));
    const rm = berth(["network", "rm", "clinet"]);
    assert.equal(rm.code, 0, show(rm));
    assert.doesNotMatch(berth(["network", "ls"]).stdout, /\bclinet\b/);
  });
});
