// Network setup cost per container, Berth against docker, in one run (alternating, rotated order).
//
//   sudo node dist/bench/network.js [--runs N] [--warmup N] [--no-docker] [--json FILE]
//
// Variants (each runs /bin/true in a busybox rootfs and removes the container):
//   berth-lib-none / berth-lib-bridge   the library in this process (warm): prepareContainerNetwork +
//                                       startContainer + wait + release; the difference is what bridge
//                                       networking costs a container (the netlink requests ride in the
//                                       container's own helper, so no extra process is spawned)
//   berth-cli-none / berth-cli-bridge   `berth run --network none|bridge --rootfs DIR /bin/true`
//   docker-none / docker-bridge         `docker run --rm --network none|bridge IMG true` against a private
//                                       dockerd (started here if dockerd is installed; --no-docker skips)
// And the pieces of Berth's setup, measured alone on a throwaway namespace (`unshare -n sleep`):
//   netlink-in-helper   the 4 requests (veth into the netns, address, link up, default route) as one
//                       no-clone helper batch: one spawn of the C helper
//   helper-noop         one trivial request in the same batch form: the helper's own cost
//   ip-per-step         the same 4 steps by spawning `ip` / `nsenter ip` once per step
//   prepare / release   the library's leasing, /etc files and state writes (no kernel work)
//   prepare-with-port   prepare with one -p: adds the port probe and one `nft add element`
//   release-with-port   release with one -p: `nft delete element` (slow in the kernel: ~20 ms)
//   prepare-with-v6-port / release-with-v6-port   -p [::1]::80: the probe and the userland proxy's listen
//                       (no nft work) / its close
// Nothing here asserts a speed. Private data root; everything made is removed at the end.

import { spawn, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildRunSpec } from "../src/core/run-spec.js";
import { delLink, linkUp, netlinkOp, newAddress, newDefaultRoute, newVethIntoNetns } from "../src/network/netlink.js";
import { networkContext, prepareContainerNetwork, pruneNetworks } from "../src/network/index.js";
import { newContainerId, startContainer } from "../src/runtime/container.js";
import { runFilesystemOps } from "../src/runtime/helper.js";
import { readHostFacts } from "../src/runtime/host-facts.js";
import { BenchError, ensureAptPackage, fmtMs, markdownTable, nowMs, runChecked, summarize, timeCommand, which } from "./common.js";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RUNS = opt("--runs", 30);
const WARMUP = opt("--warmup", 3);
const jsonOut = args.includes("--json") ? args[args.indexOf("--json") + 1] : undefined;
const wantDocker = !args.includes("--no-docker");

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new BenchError("run as root");
  ensureAptPackage("busybox-static", "/bin/busybox");
  ensureAptPackage("nftables", "/usr/sbin/nft");
  const temp = mkdtempSync(join(tmpdir(), "berth-bench-net-"));
  const dataRoot = join(temp, "data");
  const ctx = networkContext({ dataRoot });
  const rootfs = join(temp, "rootfs");
  mkdirSync(join(rootfs, "bin"), { recursive: true });
  copyFileSync("/bin/busybox", join(rootfs, "bin", "busybox"));
  chmodSync(join(rootfs, "bin", "busybox"), 0o755);
  for (const a of ["true", "sh", "sleep"]) symlinkSync("busybox", join(rootfs, "bin", a));
  const caps = readHostFacts().runtimeCapabilities;
  const env = { ...process.env, BERTH_DATA_ROOT: dataRoot };
  const cli = join(REPO, "bin", "berth");

  let dockerd: ReturnType<typeof spawn> | undefined;
  const dockerSock = join("/run", `bench-net-docker-${process.pid}.sock`);
  const dockerRoot = join(temp, "docker");
  const dockerExec = join("/run", `bench-net-docker-${process.pid}`);
  const forwardPolicy = () => /-P FORWARD (\w+)/.exec(spawnSync("iptables", ["-S", "FORWARD"], { encoding: "utf8" }).stdout)?.[1];
  const policyBefore = forwardPolicy();
  // dockerd adds its own iptables chains (nat, filter); the host had these tables or not before we began.
  const nftTables = () => spawnSync("nft", ["list", "tables"], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);
  const tablesBefore = new Set(nftTables());
  const iptablesBefore = spawnSync("iptables-save", { encoding: "utf8" }).stdout;
  const cleanup = async () => {
    if (dockerd) {
      dockerd.kill("SIGTERM");
      await new Promise((r) => dockerd?.once("exit", r));
      // dockerd sets the FORWARD policy to DROP; put back what the host had.
      if (policyBefore && forwardPolicy() !== policyBefore) spawnSync("iptables", ["-P", "FORWARD", policyBefore]);
      spawnSync("ip", ["link", "del", "docker0"], { stdio: "ignore" });
      for (const t of nftTables()) if (!tablesBefore.has(t)) spawnSync("nft", ["delete", ...t.split(" ").slice(1)]);
      if (iptablesBefore.trim()) spawnSync("iptables-restore", { input: iptablesBefore });
    }
    await pruneNetworks(ctx).catch(() => undefined);
    rmSync(temp, { recursive: true, force: true });
    rmSync(dockerExec, { recursive: true, force: true });
  };

  try {
    // -- docker
    let dockerImage: string | undefined;
    const docker = (...a: string[]) => runChecked("docker", ["-H", `unix://${dockerSock}`, ...a]);
    if (wantDocker && which("dockerd") && which("docker")) {
      dockerd = spawn("dockerd", ["-H", `unix://${dockerSock}`, "--data-root", dockerRoot, "--exec-root", dockerExec, "--pidfile", join(temp, "docker.pid")], { stdio: "ignore" });
      const deadline = Date.now() + 30_000;
      while (spawnSync("docker", ["-H", `unix://${dockerSock}`, "version"], { stdio: "ignore" }).status !== 0) {
        if (Date.now() > deadline) throw new BenchError("dockerd did not come up");
        await new Promise((r) => setTimeout(r, 200));
      }
      runChecked("tar", ["-C", rootfs, "-cf", join(temp, "rootfs.tar"), "."]);
      docker("import", join(temp, "rootfs.tar"), "bench-net-busybox:latest");
      dockerImage = "bench-net-busybox:latest";
    }

    const runLib = async (mode: string) => {
      const id = newContainerId();
      const start = nowMs();
      const net = await prepareContainerNetwork(ctx, { containerId: id, hostname: id.slice(0, 12), mode });
      const spec = buildRunSpec({ rootfs, command: ["/bin/true"], binds: net.binds }, { id, runtimeCapabilities: caps });
      const c = await startContainer({ spec, id, stdio: ["ignore", "ignore", "inherit"], network: net });
      await c.wait();
      return nowMs() - start;
    };

    // A throwaway namespace for the pieces.
    const holder = spawn("unshare", ["-n", "sleep", "1000000"], { stdio: "ignore" });
    await new Promise((r) => setTimeout(r, 200));
    const pid = holder.pid as number;
    // The bridge exists once a bridge container ran; warm-up below makes sure.
    await runLib("bridge");
    const bridge = ctx.defaultBridge as string;
    let n = 0;
    const netlinkPieces = async () => {
      const name = `vethbn${(n++).toString(16)}`;
      const netns = `/proc/${pid}/ns/net`;
      const t0 = nowMs();
      await runFilesystemOps([
        netlinkOp(newVethIntoNetns({ hostName: name, peerName: "eth0", mtu: 1500, mac: "02:42:0a:00:00:09", pid }), { netns: "", ifname: bridge, what: "veth" }),
        netlinkOp(newAddress({ ip: "10.254.254.9", prefix: 24 }), { netns, ifname: "eth0", what: "addr" }),
        netlinkOp(linkUp(), { netns, ifname: "eth0", what: "up" }),
        netlinkOp(newDefaultRoute("10.254.254.1"), { netns, ifname: "eth0", what: "route" }),
      ]);
      const t = nowMs() - t0;
      await runFilesystemOps([netlinkOp(delLink(name), { netns: "", what: "del" })]);
      return t;
    };
    // The helper's own cost (spawn, sealed re-exec, plan) with one trivial request: netlink-in-helper
    // minus this is what the 4 requests cost the kernel, i.e. what they add inside a container's launch.
    const helperNoop = async () => {
      const t0 = nowMs();
      await runFilesystemOps([netlinkOp(linkUp(), { netns: `/proc/${pid}/ns/net`, ifname: "lo", what: "lo up" })]);
      return nowMs() - t0;
    };
    const ipPieces = async () => {
      const name = `vethbi${(n++).toString(16)}`;
      const t0 = nowMs();
      await timeCommand("ip", ["link", "add", name, "mtu", "1500", "master", bridge, "up", "type", "veth", "peer", "name", "eth0", "address", "02:42:0a:00:00:09", "netns", String(pid)]);
      await timeCommand("nsenter", ["-t", String(pid), "-n", "ip", "addr", "add", "10.254.254.9/24", "dev", "eth0"]);
      await timeCommand("nsenter", ["-t", String(pid), "-n", "ip", "link", "set", "eth0", "up"]);
      await timeCommand("nsenter", ["-t", String(pid), "-n", "ip", "route", "add", "default", "via", "10.254.254.1"]);
      const t = nowMs() - t0;
      await timeCommand("ip", ["link", "del", name]);
      return t;
    };
    const prepareOnly = async (portOn?: string) => {
      const id = newContainerId();
      const t0 = nowMs();
      const net = await prepareContainerNetwork(ctx, {
        containerId: id, hostname: "x", mode: "bridge",
        publish: portOn !== undefined ? [{ proto: "tcp", hostIp: portOn, hostPort: 0, containerPort: 80 }] : [],
      });
      const t1 = nowMs();
      await net.release();
      return { prepare: t1 - t0, release: nowMs() - t1 };
    };

    const extra: Record<string, number[]> = { release: [], "release-with-port": [], "release-with-v6-port": [] };
    const variants: Record<string, () => Promise<number>> = {
      "berth-lib-none": () => runLib("none"),
      "berth-lib-bridge": () => runLib("bridge"),
      "berth-cli-none": () => timeCommand(cli, ["run", "--network", "none", "--rootfs", rootfs, "/bin/true"], { env }),
      "berth-cli-bridge": () => timeCommand(cli, ["run", "--network", "bridge", "--rootfs", rootfs, "/bin/true"], { env }),
      "netlink-in-helper": netlinkPieces,
      "helper-noop": helperNoop,
      "ip-per-step": ipPieces,
      "prepare": async () => { const r = await prepareOnly(); extra.release.push(r.release); return r.prepare; },
      "prepare-with-port": async () => { const r = await prepareOnly("127.0.0.1"); extra["release-with-port"].push(r.release); return r.prepare; },
      "prepare-with-v6-port": async () => { const r = await prepareOnly("::1"); extra["release-with-v6-port"].push(r.release); return r.prepare; },
    };
    if (dockerImage) {
      const img = dockerImage;
      variants["docker-none"] = () => timeCommand("docker", ["-H", `unix://${dockerSock}`, "run", "--rm", "--network", "none", img, "true"]);
      variants["docker-bridge"] = () => timeCommand("docker", ["-H", `unix://${dockerSock}`, "run", "--rm", img, "true"]);
    }
    const names = Object.keys(variants);
    const samples: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
    for (let i = 0; i < WARMUP + RUNS; i++) {
      const order = names.map((_, j) => names[(i + j) % names.length]);
      for (const k of order) {
        const t = await variants[k]();
        if (i >= WARMUP) samples[k].push(t);
      }
      process.stderr.write(`\rbench: ${i + 1}/${WARMUP + RUNS}`);
    }
    process.stderr.write("\n");
    holder.kill("SIGKILL");
    for (const [k, v] of Object.entries(extra)) {
      samples[k] = v.slice(WARMUP);
      names.push(k);
    }
    const s = Object.fromEntries(names.map((k) => [k, summarize(samples[k])]));
    const med = (k: string) => s[k]?.median ?? Number.NaN;
    const rows = names.map((k) => [k, fmtMs(s[k].median), fmtMs(s[k].p90), fmtMs(s[k].min)]);
    console.log(markdownTable(["ms", "median", "p90", "min"], rows));
    console.log("");
    const cost = [
      ["berth (library): bridge - none", fmtMs(med("berth-lib-bridge") - med("berth-lib-none"))],
      ["berth (CLI): bridge - none", fmtMs(med("berth-cli-bridge") - med("berth-cli-none"))],
      ["docker: bridge - none", dockerImage ? fmtMs(med("docker-bridge") - med("docker-none")) : "-"],
      ["4 kernel steps: ip per step / netlink batch", `${fmtMs(med("ip-per-step"))} / ${fmtMs(med("netlink-in-helper"))}`],
      ["4 kernel steps inside a launch (batch - helper-noop)", fmtMs(med("netlink-in-helper") - med("helper-noop"))],
      ["library work per container (prepare + release)", fmtMs(med("prepare") + med("release"))],
    ];
    console.log(markdownTable(["network setup cost per container", "ms (medians)"], cost));
    if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ runs: RUNS, warmup: WARMUP, samples, summaries: s }, null, 2));
  } finally {
    await cleanup();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`bench: ${err.message}\n`);
  process.exit(1);
});
