// Benchmark of the engine: `run --rm host true` through a warm daemon's API, through the berth CLI, and
// (with a reference dockerd) `docker run --rm`; 64 containers 8 at a time; RSS of an idle container's
// monitor. Run as root after `npx tsc -p .`:
//
//   node dist/bench/engine.js [--runs N] [--docker-host unix:///run/ref-docker.sock --docker-image busybox]
//
// A private daemon (socket, data root, exec root under /tmp) is started and removed by the benchmark.

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const opt = (name: string, d?: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : d; };
const RUNS = Number(opt("--runs", "20"));
const DOCKER_HOST = opt("--docker-host");
const DOCKER_IMAGE = opt("--docker-image", "busybox");
const BIN = fileURLToPath(new URL("../../bin/berth.js", import.meta.url));
// What users run: the launcher (the one-file bundle when it is fresh).
const LAUNCHER = fileURLToPath(new URL("../../bin/berth", import.meta.url));

function api(sock: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: { Id?: string } }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, method, path, agent: false, headers: { "Content-Type": "application/json" } }, (res) => {
      let t = "";
      res.on("data", (d: Buffer) => { t += d.toString(); });
      res.on("end", () => { let b: { Id?: string } = {}; try { b = JSON.parse(t) as { Id?: string }; } catch { /* not JSON */ } resolve({ status: res.statusCode ?? 0, body: b }); });
    });
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function apiRun(sock: string, image: string): Promise<void> {
  const c = await api(sock, "POST", "/v1.41/containers/create", { Image: image, Cmd: ["true"], HostConfig: { AutoRemove: true, NetworkMode: "none" } });
  const waited = api(sock, "POST", `/v1.41/containers/${c.body.Id}/wait?condition=removed`);
  await api(sock, "POST", `/v1.41/containers/${c.body.Id}/start`);
  await waited;
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

async function time(fn: () => Promise<void> | void, runs: number): Promise<number> {
  await fn();
  const t: number[] = [];
  for (let i = 0; i < runs; i++) { const s = performance.now(); await fn(); t.push(performance.now() - s); }
  return median(t);
}

async function parallel(fn: () => Promise<void>, total = 64, width = 8): Promise<number> {
  let next = 0;
  const s = performance.now();
  await Promise.all(Array.from({ length: width }, async () => { while (next < total) { next++; await fn(); } }));
  return performance.now() - s;
}

const root = mkdtempSync("/tmp/berth-bench-engine-");
const sock = join(root, "berth.sock");
const daemon = spawn(process.execPath, [BIN, "daemon", "-H", `unix://${sock}`, "--data-root", join(root, "data"), "--exec-root", join(root, "exec")], { stdio: "ignore" });
try {
  for (let i = 0; i < 200; i++) {
    try { if ((await api(sock, "GET", "/_ping")).status === 200) break; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  const rows: [string, string][] = [];
  rows.push(["berth API (warm daemon), median ms", (await time(() => apiRun(sock, "host"), RUNS)).toFixed(1)]);
  // --network none, as the docker row below: without it both CLIs mean the default bridge.
  rows.push(["berth CLI `run --rm --network none host true`, median ms", (await time(() => { spawnSync(LAUNCHER, ["run", "--rm", "--network", "none", "host", "true"], { env: { ...process.env, BERTH_HOST: `unix://${sock}` } }); }, Math.min(RUNS, 10))).toFixed(1)]);
  rows.push(["berth CLI `ps -q` (start-up + one API call), median ms", (await time(() => { spawnSync(LAUNCHER, ["ps", "-q"], { env: { ...process.env, BERTH_HOST: `unix://${sock}` } }); }, Math.min(RUNS, 10))).toFixed(1)]);
  rows.push(["`node -e 0` (Node's start-up), median ms", (await time(() => { spawnSync(process.execPath, ["-e", "0"]); }, Math.min(RUNS, 10))).toFixed(1)]);
  rows.push(["berth API 64 containers, 8 parallel, total ms", (await parallel(() => apiRun(sock, "host"))).toFixed(0)]);
  if (DOCKER_HOST) {
    const dsock = DOCKER_HOST.replace("unix://", "");
    rows.push(["dockerd API (warm), median ms", (await time(() => apiRun(dsock, DOCKER_IMAGE as string), RUNS)).toFixed(1)]);
    rows.push(["docker CLI `run --rm`, median ms", (await time(() => { spawnSync("docker", ["run", "--rm", "--network", "none", DOCKER_IMAGE as string, "true"], { env: { ...process.env, DOCKER_HOST } }); }, Math.min(RUNS, 10))).toFixed(1)]);
    rows.push(["dockerd API 64 containers, 8 parallel, total ms", (await parallel(() => apiRun(dsock, DOCKER_IMAGE as string))).toFixed(0)]);
  }
  // An idle container: its monitor's RSS (containerd-shim ~13 MiB, conmon ~2 MiB on this machine).
  const c = await api(sock, "POST", "/v1.41/containers/create", { Image: "host", Cmd: ["sleep", "60"] });
  await api(sock, "POST", `/v1.41/containers/${c.body.Id}/start`);
  await new Promise((r) => setTimeout(r, 500));
  const info = JSON.parse(readFileSync(join(root, "data/containers", c.body.Id as string, "config.json"), "utf8")) as { berth: { monitorPid?: number } };
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${info.berth.monitorPid}/status`, "utf8"))?.[1]);
  rows.push(["idle container monitor RSS, KiB", String(rss)]);
  await api(sock, "DELETE", `/v1.41/containers/${c.body.Id}?force=1`);
  for (const [k, v] of rows) console.log(`${k.padEnd(50)} ${v}`);
} finally {
  daemon.kill("SIGTERM");
  await new Promise((r) => daemon.once("exit", r));
  rmSync(root, { recursive: true, force: true });
}
