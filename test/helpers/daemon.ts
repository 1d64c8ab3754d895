import assert from "node:assert/strict";
// A private berth daemon for integration tests: its own socket, data root and exec root under a temp
// dir; docker CLI and berth CLI runners pointed at it; SIGKILL/restart; and a leftover check (processes,
// cgroups, mounts) when it is torn down.

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { networkContext, pruneNetworks } from "../../src/network/index.js";
import { BERTH_BIN, REPO } from "./berth.js";

export const DOCKER = ["/usr/local/bin/docker", "/usr/bin/docker"].find((p) => existsSync(p));

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A command's stdout, after asserting it exited 0 (the message shows what it printed). */
export function ok(r: Run, what: string): string {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

export class TestDaemon {
  readonly root: string;
  readonly socket: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  proc?: ChildProcess;
  log = "";

  constructor(prefix = "berth-d-") {
    this.root = mkdtempSync(join("/tmp", prefix));
    this.socket = join(this.root, "berth.sock");
    this.dataRoot = join(this.root, "data");
    this.execRoot = join(this.root, "exec");
  }

  get host(): string {
    return `unix://${this.socket}`;
  }

  async start(): Promise<void> {
    const p = spawn(process.execPath, [BERTH_BIN, "daemon", "-H", this.host, "--data-root", this.dataRoot, "--exec-root", this.execRoot], {
      stdio: ["ignore", "pipe", "pipe"],
      cwd: REPO,
      // Share the built host image: building it per daemon would cost seconds.
      env: { ...process.env },
    });
    p.stdout?.on("data", (d: Buffer) => { this.log += d.toString(); });
    p.stderr?.on("data", (d: Buffer) => { this.log += d.toString(); });
    this.proc = p;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (p.exitCode !== null) throw new Error(`the daemon exited (${p.exitCode}): ${this.log}`);
      if (await this.ping()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`the daemon did not answer: ${this.log}`);
  }

  ping(): Promise<boolean> {
    return new Promise((resolve) => {
      const req = request({ socketPath: this.socket, path: "/_ping", agent: false }, (res) => { res.resume(); resolve(res.statusCode === 200); });
      req.on("error", () => resolve(false));
      req.end();
    });
  }

  /**
   * A raw API call: status and parsed body. On a connection of its own: a kept-alive one that the daemon
   * closed while a test blocked in spawnSync is still in the pool, and the next request fails with EPIPE.
   */
  api(method: string, path: string, body?: string | object, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown; text: string; headers: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
      const req = request({ socketPath: this.socket, method, path, headers: { "Content-Type": "application/json", ...headers }, agent: false }, (res) => {
        let text = "";
        res.on("data", (d: Buffer) => { text += d.toString(); });
        res.on("end", () => {
          let parsed: unknown = text;
          try { parsed = JSON.parse(text); } catch { /* not JSON */ }
          resolve({ status: res.statusCode ?? 0, body: parsed, text, headers: res.headers });
        });
      });
      req.on("error", reject);
      req.end(payload);
    });
  }

  docker(args: string[], o: { input?: string; timeoutMs?: number } = {}): Run {
    if (!DOCKER) throw new Error("no docker CLI");
    const r = spawnSync(DOCKER, args, { encoding: "utf8", input: o.input, timeout: o.timeoutMs ?? 30_000, maxBuffer: 64 << 20, killSignal: "SIGKILL", env: { ...process.env, DOCKER_HOST: this.host, DOCKER_CONFIG: join(this.root, "docker-config") } });
    return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  }

  berth(args: string[], o: { input?: string; timeoutMs?: number } = {}): Run {
    const r = spawnSync(process.execPath, [BERTH_BIN, ...args], { encoding: "utf8", input: o.input, timeout: o.timeoutMs ?? 30_000, maxBuffer: 64 << 20, killSignal: "SIGKILL", env: { ...process.env, BERTH_HOST: this.host } });
    return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  }

  async kill9(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await gone;
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  }

  /** This daemon's networks: its own default bridge and nftables table (named after the data root). */
  get net() {
    return networkContext({ dataRoot: this.dataRoot, execRoot: this.execRoot });
  }

  /**
   * Removes every container (force), stops the daemon, and reports anything left behind. A daemon keeps
   * its default bridge when it stops (as dockerd keeps docker0): once its containers are gone, this
   * teardown prunes it, and checks that no veth was left on it and that no bridge or table remains.
   */
  async destroy(): Promise<string[]> {
    const left: string[] = [];
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      const ids = this.docker(["ps", "-aq"]).stdout.split("\n").filter(Boolean);
      if (ids.length) this.docker(["rm", "-f", "-v", ...ids], { timeoutMs: 60_000 });
      await this.stop();
    }
    const ctx = this.net;
    const bridge = ctx.defaultBridge as string;
    let ports: string[] = [];
    try { ports = readdirSync(`/sys/class/net/${bridge}/brif`); } catch { /* no bridge */ }
    left.push(...ports.map((p) => `veth ${p} on ${bridge}`));
    await pruneNetworks(ctx).catch((err: Error) => left.push(`network prune: ${err.message}`));
    if (existsSync(`/sys/class/net/${bridge}`)) left.push(`bridge ${bridge}`);
    if (spawnSync("nft", ["list", "table", "ip", ctx.nftTable]).status === 0) left.push(`nft table ip ${ctx.nftTable}`);
    left.push(...leftovers(this.root));
    rmSync(this.root, { recursive: true, force: true });
    return left;
  }
}

/** Processes, cgroups and mounts that belong to a daemon root. */
export function leftovers(root: string): string[] {
  const out: string[] = [];
  const mounts = readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4]).filter((m) => m?.startsWith(root));
  out.push(...mounts.map((m) => `mount ${m}`));
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (cmd.includes(root) && Number(pid) !== process.pid) out.push(`process ${pid} ${cmd.replace(/\0/g, " ").slice(0, 100)}`);
    } catch { /* gone */ }
  }
  return out;
}

/** berth-<id12> cgroups in the memory hierarchy under ours (or the unified one). */
export function containerCgroups(ids: string[]): string[] {
  const self = readFileSync("/proc/self/cgroup", "utf8").split("\n").find((l) => /:memory:/.test(l) || l.startsWith("0::"));
  const rel = self ? self.slice(self.lastIndexOf(":") + 1) : "/";
  const base = existsSync("/sys/fs/cgroup/memory") ? join("/sys/fs/cgroup/memory", rel) : join("/sys/fs/cgroup", rel);
  const want = new Set(ids.map((id) => `berth-${id.slice(0, 12)}`));
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    let names: string[] = [];
    try { names = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name); } catch { return; }
    for (const n of names) {
      if (want.has(n)) found.push(join(dir, n));
      if (depth < 3) walk(join(dir, n), depth + 1);
    }
  };
  walk(base, 0);
  return found;
}

export function waitFor(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return (async () => {
    while (Date.now() < deadline) {
      if (await pred()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out waiting for ${what}`);
  })();
}
