// The OCI runtime's lifecycle, as an engine drives it: create + start + wait for exit + delete of
// /bin/true, berth-oci against runc, on the same bundle (runc's default spec on a busybox rootfs),
// alternating in ONE run. Also how much of it is Node start-up. Run as root after `npm run build`:
//
//   node dist/bench/oci.js [--runs N] [--warmup N]

import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureAptPackage, fmtMs, markdownTable, nowMs, runChecked, summarize, timeCommand, which } from "./common.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "../..");
const BERTH_OCI = join(REPO, "bin/berth-oci");

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function makeBundle(dir: string): void {
  const rootfs = join(dir, "rootfs");
  for (const d of ["bin", "proc", "sys", "dev", "tmp"]) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync("/bin/busybox", join(rootfs, "bin/busybox"));
  chmodSync(join(rootfs, "bin/busybox"), 0o755);
  for (const a of ["sh", "true"]) symlinkSync("busybox", join(rootfs, "bin", a));
  runChecked("runc", ["spec", "--bundle", dir]);
  const spec = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as { process: { terminal: boolean; args: string[] } };
  spec.process.terminal = false;
  spec.process.args = ["/bin/true"];
  writeFileSync(join(dir, "config.json"), JSON.stringify(spec));
}

/** create, start, poll state until stopped, delete: what containerd's shim does for a short task. */
async function lifecycle(runtime: string, root: string, bundle: string, id: string): Promise<number> {
  const start = nowMs();
  await timeCommand(runtime, ["--root", root, "create", "--bundle", bundle, id]);
  await timeCommand(runtime, ["--root", root, "start", id]);
  for (;;) {
    const s = spawnSync(runtime, ["--root", root, "state", id], { encoding: "utf8" });
    if (s.status !== 0 || (JSON.parse(s.stdout) as { status: string }).status === "stopped") break;
  }
  await timeCommand(runtime, ["--root", root, "delete", id]);
  return nowMs() - start;
}

async function main(): Promise<void> {
  const runs = arg("--runs", 20);
  const warmup = arg("--warmup", 2);
  ensureAptPackage("busybox-static", "/bin/busybox");
  ensureAptPackage("runc", "/usr/sbin/runc");
  const runc = which("runc") ?? "/usr/sbin/runc";
  const work = mkdtempSync(join(tmpdir(), "berth-bench-oci-"));
  try {
    const bundle = join(work, "bundle");
    mkdirSync(bundle);
    makeBundle(bundle);
    const variants: [string, (i: number) => Promise<number>][] = [
      ["berth-oci create+start+state+delete", (i) => lifecycle(BERTH_OCI, join(work, "berth-state"), bundle, `b${i}`)],
      ["runc create+start+state+delete", (i) => lifecycle(runc, join(work, "runc-state"), bundle, `r${i}`)],
      ["berth-oci --version (one Node start + bundle load)", () => timeCommand(BERTH_OCI, ["--version"])],
      ["node -e 0", () => timeCommand(process.execPath, ["-e", "0"])],
    ];
    const samples = new Map<string, number[]>(variants.map(([n]) => [n, []]));
    for (let i = 0; i < warmup + runs; i++) {
      for (let k = 0; k < variants.length; k++) {
        const [name, fn] = variants[(i + k) % variants.length];
        const ms = await fn(i);
        if (i >= warmup) samples.get(name)?.push(ms);
      }
    }
    const runcMedian = summarize(samples.get("runc create+start+state+delete") ?? []).median;
    const rows = [...samples].map(([name, s]) => {
      const sum = summarize(s);
      return [name, fmtMs(sum.median), fmtMs(sum.p90), `${(sum.median / runcMedian).toFixed(2)}×`];
    });
    console.log(markdownTable(["ms", "median", "p90", "median / runc"], rows));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
