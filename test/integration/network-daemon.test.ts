// The engine's case: a container with bridge networking and a published port whose supervising
// process (a daemon stand-in, here a child Node process) is killed with SIGKILL. The container lives on
// (monitor mode), its lease stays bound to it, and a restarted engine's sweep (reconcile) keeps it and
// its port: still reachable on 127.0.0.1. When it ends, the next sweep frees everything.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCgroup, type CgroupPlan } from "../../src/cgroups/index.js";
import { networkContext, pruneNetworks, sweepNetworks } from "../../src/network/index.js";
import { isRoot, REPO, waitFor } from "../helpers/berth.js";

const haveNft = spawnSync("sh", ["-c", "command -v nft"]).status === 0;
const skip = !isRoot ? "needs root" : !existsSync("/bin/busybox") ? "needs busybox-static" : !haveNft ? "needs nftables" : false;

function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: "127.0.0.1" }, () => s.end("GET / HTTP/1.0\r\n\r\n"));
    let data = "";
    s.setEncoding("utf8").on("data", (d: string) => { data += d; });
    s.on("end", () => resolve(data));
    s.on("error", reject);
    s.setTimeout(3000, () => { s.destroy(); reject(new Error("timeout")); });
  });
}

async function reachable(port: number, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await httpGet(port);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

// The daemon stand-in: sets the network up, launches the container under a monitor, prints what the
// test needs, then idles until it is killed.
const DAEMON = (repo: string) => `
import { buildRunSpec } from "${repo}/dist/src/core/run-spec.js";
import { networkContext, prepareContainerNetwork } from "${repo}/dist/src/network/index.js";
import { launchContainer } from "${repo}/dist/src/runtime/launch.js";
import { readHostFacts } from "${repo}/dist/src/runtime/host-facts.js";
const [dataRoot, rootfs, id, port, exitFile] = process.argv.slice(2);
const ctx = networkContext({ dataRoot });
const net = await prepareContainerNetwork(ctx, {
  containerId: id, name: "survivor", hostname: "survivor", mode: "bridge", ownerIsContainer: true,
  publish: [{ proto: "tcp", hostIp: "127.0.0.1", hostPort: Number(port), containerPort: 80 }],
});
const spec = buildRunSpec({ rootfs, command: ["/bin/httpd", "-f", "-p", "80", "-h", "/www"], binds: net.binds }, { id, runtimeCapabilities: readHostFacts().runtimeCapabilities });
const launched = await launchContainer({
  spec, rootfs, cgroupName: "berth-" + id.slice(0, 12), monitor: { exitFile },
  parentOps: net.parentOps, beforeRelease: (pid) => net.started(pid),
});
process.stdout.write(JSON.stringify({ pid: launched.run.pid, cgroup: launched.cgroup }) + "\\n");
setInterval(() => {}, 1000);
`;

describe("networking across an engine restart", { skip, concurrency: false }, () => {
  const dir = mkdtempSync(join(tmpdir(), "berth-net-daemon-"));
  const dataRoot = join(dir, "data");
  const ctx = networkContext({ dataRoot });
  const linksBefore = readdirSync("/sys/class/net");
  let cgroup: CgroupPlan | undefined;
  let containerPid = 0;

  after(async () => {
    if (containerPid) try { process.kill(containerPid, "SIGKILL"); } catch { /* gone */ }
    if (cgroup) await destroyCgroup(cgroup);
    await pruneNetworks(ctx);
    rmSync(dir, { recursive: true, force: true });
    await waitFor("links to go", () => readdirSync("/sys/class/net").every((l) => linksBefore.includes(l)) || undefined, 20_000);
  });

  test("SIGKILL of the supervising process: the container stays reachable, its lease and port stay; released when it ends", async () => {
    const rootfs = join(dir, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    mkdirSync(join(rootfs, "www"));
    copyFileSync("/bin/busybox", join(rootfs, "bin", "busybox"));
    chmodSync(join(rootfs, "bin", "busybox"), 0o755);
    symlinkSync("busybox", join(rootfs, "bin", "httpd"));
    writeFileSync(join(rootfs, "www", "index.html"), "still-here\n");
    writeFileSync(join(dir, "daemon.mjs"), DAEMON(REPO));
    const port = await new Promise<number>((res) => {
      const s = createServer().listen(0, "127.0.0.1", () => { const p = (s.address() as { port: number }).port; s.close(() => res(p)); });
    });
    const id = "d".repeat(8) + Date.now().toString(16).padStart(56, "0");
    const daemon = spawn(process.execPath, [join(dir, "daemon.mjs"), dataRoot, rootfs, id, String(port), join(dir, "exit.json")], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    daemon.stdout?.setEncoding("utf8").on("data", (s: string) => { out += s; });
    const info = await waitFor("the daemon stand-in", () => (out.includes("\n") ? JSON.parse(out) as { pid: number; cgroup: CgroupPlan } : undefined), 20_000);
    containerPid = info.pid;
    cgroup = info.cgroup;
    assert.match(await reachable(port), /still-here/);

    daemon.kill("SIGKILL");
    await new Promise((r) => daemon.once("exit", r));
    // The restarted engine sweeps and reconciles: the running container keeps everything.
    assert.deepEqual(await sweepNetworks(ctx, { reconcile: true }), []);
    assert.match(await reachable(port), /still-here/);
    const st = JSON.parse(readFileSync(join(dataRoot, "network", "state.json"), "utf8")) as { endpoints: Record<string, { containerName: string }> };
    assert.deepEqual(Object.values(st.endpoints).map((e) => e.containerName), ["survivor"]);

    // The container ends: the next sweep frees its lease and port.
    process.kill(containerPid, "SIGKILL");
    await waitFor("the container to end", () => !existsSync(`/proc/${containerPid}`) || undefined, 10_000);
    containerPid = 0;
    assert.equal((await sweepNetworks(ctx)).length, 1);
    const map = spawnSync("nft", ["list", "map", "ip", ctx.nftTable, "pub_tcp"], { encoding: "utf8" }).stdout;
    assert.doesNotMatch(map, new RegExp(`${port} :`));
  });
});
