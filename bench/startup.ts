// Start-up of the two CLIs (the one-file bundles) against `node -e 0`: `berth --help`, `berth ps -q`
// against a private daemon, `berth-oci --version` and `berth-oci state` of a created container. Run as
// root after `npx tsc -p . && node scripts/bundle.mjs`:
//
//   node dist/bench/startup.js [--runs N] [--compare PREFIX]
//
// --compare PREFIX[,PREFIX...] also times dist/bundle/PREFIX-berth.cjs and PREFIX-berth-oci.cjs (copies of an
// earlier build kept beside the current bundles) in the same loop, so two builds are compared side by
// side. Every iteration runs every variant once, in a rotated order; medians.

import { spawn, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const opt = (name: string, d?: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : d; };
const RUNS = Number(opt("--runs", "20"));
const COMPARE = opt("--compare");
const bundle = (name: string) => fileURLToPath(new URL(`../bundle/${name}.cjs`, import.meta.url));

const root = mkdtempSync("/tmp/berth-bench-startup-");
const sock = join(root, "berth.sock");
const ociRoot = join(root, "oci");
const ID = `bench-startup-${process.pid}`;
const env = { ...process.env, BERTH_HOST: `unix://${sock}` };

function ping(): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, path: "/_ping", agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.on("error", reject);
    req.end();
  });
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

const daemon = spawn(process.execPath, [bundle("berth"), "daemon", "-H", `unix://${sock}`, "--data-root", join(root, "data"), "--exec-root", join(root, "exec")], { stdio: "ignore" });
try {
  for (let i = 0; i < 200; i++) {
    try { if ((await ping()) === 200) break; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  // A created (not started) container for `berth-oci state`.
  const dir = join(root, "bundle");
  const rootfs = join(dir, "rootfs");
  for (const d of ["bin", "proc", "sys", "dev", "tmp"]) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync("/bin/busybox", join(rootfs, "bin/busybox"));
  chmodSync(join(rootfs, "bin/busybox"), 0o755);
  symlinkSync("busybox", join(rootfs, "bin/true"));
  spawnSync("runc", ["spec", "--bundle", dir]);
  const spec = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as { process: { terminal: boolean; args: string[] } };
  spec.process.terminal = false;
  spec.process.args = ["/bin/true"];
  writeFileSync(join(dir, "config.json"), JSON.stringify(spec));
  // Not a pipe for stderr: the created container's helper keeps it open and spawnSync would wait.
  const created = spawnSync(process.execPath, [bundle("berth-oci"), "--root", ociRoot, "--log", join(root, "create.log"), "create", "--bundle", dir, ID], { stdio: "ignore" });
  if (created.status !== 0) throw new Error(`berth-oci create: exit ${created.status}: ${existsSync(join(root, "create.log")) ? readFileSync(join(root, "create.log"), "utf8") : ""}`);

  const variants: [string, string[], typeof env?][] = [["node -e 0", ["-e", "0"]]];
  const builds = [["", ""], ...(COMPARE ? COMPARE.split(",").map((p) => [p, `${p}-`]) : [])];
  for (const [label, prefix] of builds) {
    const tag = label ? ` [${label}]` : "";
    const b = bundle(`${prefix}berth`);
    const o = bundle(`${prefix}berth-oci`);
    if (!existsSync(b) || !existsSync(o)) throw new Error(`missing ${b} or ${o}`);
    variants.push([`berth --help${tag}`, [b, "--help"]]);
    variants.push([`berth ps -q${tag}`, [b, "ps", "-q"], env]);
    variants.push([`berth-oci --version${tag}`, [o, "--version"]]);
    variants.push([`berth-oci state${tag}`, [o, "--root", ociRoot, "state", ID]]);
  }
  const samples = variants.map(() => [] as number[]);
  for (let i = -2; i < RUNS; i++) {
    for (let k = 0; k < variants.length; k++) {
      const v = (k + Math.max(i, 0)) % variants.length;
      const [, argv, e] = variants[v];
      const s = performance.now();
      const r = spawnSync(process.execPath, argv, { env: e ?? process.env, stdio: ["ignore", "ignore", "pipe"] });
      const t = performance.now() - s;
      if (r.status !== 0) throw new Error(`${variants[v][0]}: exit ${r.status}: ${r.stderr.toString()}`);
      if (i >= 0) samples[v].push(t);
    }
  }
  const floor = median(samples[0]);
  console.log(`| ${"ms".padEnd(32)} | median | over node -e 0 |`);
  console.log(`|:${"-".repeat(32)}|-------:|---------------:|`);
  variants.forEach(([name], v) => {
    const m = median(samples[v]);
    console.log(`| ${name.padEnd(32)} | ${m.toFixed(1).padStart(6)} | ${(v === 0 ? "-" : (m - floor).toFixed(1)).padStart(14)} |`);
  });
} finally {
  spawnSync(process.execPath, [bundle("berth-oci"), "--root", ociRoot, "delete", "--force", ID]);
  daemon.kill("SIGTERM");
  await new Promise((r) => daemon.once("exit", r));
  rmSync(root, { recursive: true, force: true });
}
