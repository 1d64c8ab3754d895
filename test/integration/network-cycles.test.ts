// 200 containers with bridge networking created, started and removed through the library: afterwards no
// veth, no lease, no published-port rule and no per-container file is left. Private data root; root only.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildRunSpec } from "../../src/core/run-spec.js";
import { networkContext, prepareContainerNetwork, pruneNetworks } from "../../src/network/index.js";
import { newContainerId, startContainer } from "../../src/runtime/container.js";
import { readHostFacts } from "../../src/runtime/host-facts.js";
import { isRoot, waitFor } from "../helpers/berth.js";

const haveNft = spawnSync("sh", ["-c", "command -v nft"]).status === 0;
const skip = !isRoot ? "needs root" : !existsSync("/bin/busybox") ? "needs busybox-static" : !haveNft ? "needs nftables" : false;

describe("network cleanup over many containers", { skip, concurrency: false }, () => {
  const dataRoot = mkdtempSync(join(tmpdir(), "berth-net-cycles-"));
  const ctx = networkContext({ dataRoot });
  const linksBefore = readdirSync("/sys/class/net");
  const newLinks = () => readdirSync("/sys/class/net").filter((l) => !linksBefore.includes(l));
  const nft = () => spawnSync("nft", ["list", "table", "ip", ctx.nftTable], { encoding: "utf8" }).stdout;

  after(async () => {
    await pruneNetworks(ctx);
    rmSync(dataRoot, { recursive: true, force: true });
    assert.deepEqual(newLinks(), []);
    assert.equal(nft(), "");
  });

  test("200 create/start/rm cycles leave no link, rule or lease behind", async () => {
    const rootfs = join(dataRoot, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    copyFileSync("/bin/busybox", join(rootfs, "bin", "busybox"));
    chmodSync(join(rootfs, "bin", "busybox"), 0o755);
    symlinkSync("busybox", join(rootfs, "bin", "true"));
    const caps = readHostFacts().runtimeCapabilities;
    const seen = new Set<string>();
    // An endpoint held across the cycles keeps the bridge and table up (each in-process run's end takes
    // them down when it is the last), so the rules of the cycles come and go in one table.
    const holder = await prepareContainerNetwork(ctx, { containerId: newContainerId(), hostname: "holder", mode: "bridge" });
    for (let i = 0; i < 200; i++) {
      const id = newContainerId();
      const net = await prepareContainerNetwork(ctx, {
        containerId: id, hostname: id.slice(0, 12), mode: "bridge",
        // Every fourth one publishes a port, so rules come and go too.
        publish: i % 4 === 0 ? [{ proto: i % 8 === 0 ? "udp" : "tcp", hostIp: "127.0.0.1", hostPort: 0, containerPort: 80 }] : [],
      });
      assert.ok(net.endpoint);
      seen.add(net.endpoint.ip);
      const spec = buildRunSpec({ rootfs, command: ["/bin/true"], binds: net.binds }, { id, runtimeCapabilities: caps });
      const c = await startContainer({ spec, id, stdio: ["ignore", "ignore", "inherit"], network: net });
      const r = await c.wait();
      assert.equal(r.exitCode, 0);
    }
    // Round robin: addresses are not reused at once.
    assert.equal(seen.size, 200);
    const endpoints = () => Object.keys((JSON.parse(readFileSync(join(dataRoot, "network", "state.json"), "utf8")) as { endpoints: object }).endpoints);
    assert.deepEqual(endpoints(), [holder.endpoint!.id]);
    for (const map of ["pub_tcp", "pub_udp"]) {
      const text = spawnSync("nft", ["list", "map", "ip", ctx.nftTable, map], { encoding: "utf8" }).stdout;
      assert.match(text, /flags interval/);
      assert.doesNotMatch(text, /elements/, `a published-port element is left in ${map}`);
    }
    // The last one out (no daemon owns this root) takes the bridge and the table with it.
    await holder.release();
    assert.deepEqual(endpoints(), []);
    assert.equal(nft(), "");
    assert.equal(existsSync(join("/sys/class/net", ctx.defaultBridge!)), false);
    assert.deepEqual(readdirSync(join(ctx.execRoot, "network", "containers")), []);
    // Veth pairs go with their namespace, which the kernel frees asynchronously.
    await waitFor("the veth pairs to go", () => newLinks().every((l) => !l.startsWith("veth")) || undefined, 20_000);
  });
});
