// Benchmark of the runtime core: starting /bin/true in a container, Berth side by side with runc on the
// same busybox rootfs, in ONE run, alternating (the machine is shared and noisy: only ratios measured
// together mean anything). Run as root after `npx tsc -p .`:
//
//   node dist/bench/run.js [--runs N] [--warmup N] [--json FILE]
//
// Variants (each iteration runs every variant once, in a rotated order):
//   berth-cli        node bin/berth.js run --rm --rootfs DIR /bin/true       (a fresh Node process)
//   berth-lib        runContainer(buildRunSpec(...)) inside this process     (the warm library path)
//   runc             runc run --bundle B ID, `runc spec` defaults             (the peer)
//   runc-berth-spec  runc run with the config.json Berth builds (seccomp, cgroupns, docker mounts, masks)
//   node             node -e 0                                                 (Node start-up floor)
//   node-import-cli  node -e 'await import(dist/src/cli/berth.js)'             (start-up + loading the CLI)
//   helper-direct    startHelper(planContainer(...)) in this process: no state dir, cgroups, overlay or
//                    seccomp compile; the helper and the container set-up alone (plus one spawn)
// plus in-process micro timings of buildRunSpec and compileSeccomp (they run on every `berth run`).

import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildRunSpec } from "../src/core/run-spec.js";
import { planContainer } from "../src/core/container-plan.js";
import type { Spec } from "../src/oci/spec.js";
import { newContainerId, runContainer } from "../src/runtime/container.js";
import { helperPath, startHelper } from "../src/runtime/helper.js";
import { readHostFacts } from "../src/runtime/host-facts.js";
import { compileSeccomp } from "../src/seccomp/index.js";
import {
  BenchError,
  ensureAptPackage,
  fmtMs,
  markdownTable,
  nowMs,
  runChecked,
  summarize,
  timeCommand,
  which,
  type Summary,
} from "./common.js";

interface Args {
  runs: number;
  warmup: number;
  json?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { runs: 30, warmup: 3 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new BenchError(`${a} needs a value`);
      return v;
    };
    const count = (v: string, min: number) => {
      if (!/^\d+$/.test(v) || Number(v) < min) throw new BenchError(`${a}: expected a whole number >= ${min}, got "${v}"`);
      return Number(v);
    };
    if (a === "--runs") args.runs = count(value(), 1);
    else if (a === "--warmup") args.warmup = count(value(), 0);
    else if (a === "--json") args.json = value();
    else if (a === "-h" || a === "--help") {
      process.stdout.write("usage: node dist/bench/run.js [--runs N (30)] [--warmup N (3)] [--json FILE]\n");
      process.exit(0);
    } else throw new BenchError(`unknown argument ${a}`);
  }
  return args;
}

// dist/bench/run.js -> the repository root.
const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BERTH_JS = join(REPO, "bin", "berth.js");
const CLI_MODULE = join(REPO, "dist", "src", "cli", "berth.js");

/** A busybox-only root filesystem: bin/busybox, sh and true, and the usual mount points. */
function makeRootfs(dir: string): void {
  mkdirSync(join(dir, "bin"), { recursive: true });
  copyFileSync("/bin/busybox", join(dir, "bin", "busybox"));
  chmodSync(join(dir, "bin", "busybox"), 0o755);
  for (const applet of ["sh", "true"]) symlinkSync("busybox", join(dir, "bin", applet));
  for (const d of ["proc", "sys", "dev", "tmp", "etc", "root"]) mkdirSync(join(dir, d), { mode: d === "tmp" ? 0o1777 : 0o755 });
  chmodSync(join(dir, "tmp"), 0o1777);
  writeFileSync(join(dir, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(dir, "etc", "group"), "root:x:0:\n");
}

/** `runc spec` defaults with our rootfs and /bin/true, no terminal. */
function makeRuncBundle(runc: string, bundle: string, rootfs: string): void {
  mkdirSync(bundle);
  runChecked(runc, ["spec", "--bundle", bundle]);
  const path = join(bundle, "config.json");
  const config = JSON.parse(readFileSync(path, "utf8")) as Spec;
  if (!config.root || !config.process) throw new BenchError(`runc spec wrote an unexpected ${path}`);
  config.root.path = rootfs;
  config.process.args = ["/bin/true"];
  config.process.terminal = false;
  writeFileSync(path, JSON.stringify(config, null, 2));
}

function berthSpec(rootfs: string, id: string, extra: { readOnly?: boolean } = {}): Spec {
  return buildRunSpec(
    { rootfs, command: ["/bin/true"], network: "none", seccomp: true, ...extra },
    {
      id,
      passwd: readFileSync(join(rootfs, "etc", "passwd"), "utf8"),
      group: readFileSync(join(rootfs, "etc", "group"), "utf8"),
      runtimeCapabilities: readHostFacts().runtimeCapabilities,
    },
  );
}

interface Variant {
  key: string;
  label: string;
  run: (iteration: number) => Promise<number>;
}

function version(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return (r.stdout ?? "").split("\n")[0]?.trim() ?? "";
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new BenchError("run the benchmark as root (containers need namespaces, mounts and cgroups)");
  if (!existsSync(CLI_MODULE)) throw new BenchError(`${CLI_MODULE} is missing: build first with \`npx tsc -p .\``);
  helperPath(); // throws with a clear message when the native helper is not built

  ensureAptPackage("busybox-static", "/bin/busybox");
  if (!which("runc")) ensureAptPackage("runc", "/usr/sbin/runc");
  const runc = which("runc") as string;

  const temp = mkdtempSync(join(tmpdir(), "berth-bench-"));
  const rootfs = join(temp, "rootfs");
  const bundle = join(temp, "bundle");
  const bundleBerth = join(temp, "bundle-berth-spec");
  const runcRoot = join(temp, "runc-state");
  const startedRunc = new Set<string>();
  let cleaned = false;

  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    // Normally `runc run` deletes its container; after a failure or an interrupt it may not have.
    if (existsSync(runcRoot)) {
      const listed = spawnSync(runc, ["--root", runcRoot, "list", "-q"], { encoding: "utf8" }).stdout ?? "";
      for (const id of new Set([...listed.split("\n").filter(Boolean), ...startedRunc])) {
        spawnSync(runc, ["--root", runcRoot, "delete", "--force", id], { stdio: "ignore" });
      }
    }
    rmSync(temp, { recursive: true, force: true });
  };
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) {
      cleanup();
      process.exit(130);
    }
    interrupted = true;
    process.stderr.write(`\nbench: ${sig}: stopping after the current step (again to stop now)\n`);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    makeRootfs(rootfs);
    mkdirSync(runcRoot, { mode: 0o700 });
    makeRuncBundle(runc, bundle, rootfs);
    // The same container as Berth's, run by runc: readOnly because runc has no throwaway overlay layer.
    mkdirSync(bundleBerth);
    writeFileSync(join(bundleBerth, "config.json"), JSON.stringify(berthSpec(rootfs, "0".repeat(64), { readOnly: true })));

    // helper-direct: a plan computed once, run many times (what the helper costs without the TS side).
    const directSpec = berthSpec(rootfs, "1".repeat(64), { readOnly: true });
    const directSeccomp = directSpec.linux?.seccomp ? compileSeccomp(directSpec.linux.seccomp, { arch: process.arch }) : undefined;
    const directPlan = planContainer(directSpec, {
      rootfs,
      host: readHostFacts(),
      isDirectory: (p) => {
        try { return statSync(p).isDirectory(); } catch { return true; }
      },
      dieWithController: true,
      seccomp: directSeccomp,
    });

    const micro: Record<string, number[]> = { buildRunSpec: [], compileSeccomp: [] };
    let libFirstRun: number | undefined;
    let seq = 0;
    const variants: Variant[] = [
      {
        key: "berth-cli",
        label: "berth CLI: `berth run --rm --rootfs DIR /bin/true`",
        run: () => timeCommand(process.execPath, [BERTH_JS, "run", "--rm", "--rootfs", rootfs, "/bin/true"]),
      },
      {
        key: "berth-lib",
        label: "berth library, warm: `runContainer(buildRunSpec(...))`",
        run: async () => {
          const start = nowMs();
          const id = newContainerId();
          const spec = berthSpec(rootfs, id);
          const result = await runContainer({ spec, id, stdio: ["ignore", "inherit", "inherit"] });
          const elapsed = nowMs() - start;
          if (result.exitCode !== 0 || result.signal !== 0) throw new BenchError(`runContainer: exit ${result.exitCode} signal ${result.signal}`);
          libFirstRun ??= elapsed;
          return elapsed;
        },
      },
      {
        key: "runc",
        label: "runc run (`runc spec` defaults)",
        run: (i) => {
          const id = `bench-${process.pid}-${i}-${seq++}`;
          startedRunc.add(id);
          return timeCommand(runc, ["--root", runcRoot, "run", "--bundle", bundle, id]).finally(() => startedRunc.delete(id));
        },
      },
      {
        key: "runc-berth-spec",
        label: "runc run with Berth's config.json",
        run: (i) => {
          const id = `bench-${process.pid}-${i}-${seq++}`;
          startedRunc.add(id);
          return timeCommand(runc, ["--root", runcRoot, "run", "--bundle", bundleBerth, id]).finally(() => startedRunc.delete(id));
        },
      },
      { key: "node", label: "`node -e 0` (Node start-up floor)", run: () => timeCommand(process.execPath, ["-e", "0"]) },
      {
        key: "node-import-cli",
        label: "`node -e 'await import(cli)'` (start-up + loading the CLI)",
        run: () => timeCommand(process.execPath, ["--input-type=module", "-e", `await import(${JSON.stringify(pathToFileURL(CLI_MODULE).href)})`]),
      },
      {
        key: "helper-direct",
        label: "helper alone: `startHelper(plan)`, precomputed plan, no cgroup/overlay/state",
        run: async () => {
          const start = nowMs();
          const run = await startHelper(directPlan, { stdio: ["ignore", "inherit", "inherit"] });
          const status = await run.exited;
          const elapsed = nowMs() - start;
          if (status.exitCode !== 0 || status.signal !== 0) throw new BenchError(`helper: exit ${status.exitCode} signal ${status.signal}`);
          return elapsed;
        },
      },
    ];

    const samples: Record<string, number[]> = Object.fromEntries(variants.map((v) => [v.key, []]));
    const total = args.warmup + args.runs;
    const startedAt = new Date();
    const load0 = loadavg();
    process.stderr.write(`bench: ${args.warmup} warm-up + ${args.runs} measured iterations of ${variants.length} variants, alternating\n`);
    for (let i = 0; i < total; i++) {
      const measured = i >= args.warmup;
      for (let k = 0; k < variants.length; k++) {
        if (interrupted) throw new BenchError("interrupted");
        const v = variants[(i + k) % variants.length];
        const ms = await v.run(i);
        if (measured) samples[v.key].push(ms);
      }
      // In-process micro timings: the pure work every `berth run` does before it spawns the helper.
      const t0 = nowMs();
      const spec = berthSpec(rootfs, newContainerId());
      const t1 = nowMs();
      if (spec.linux?.seccomp) compileSeccomp(spec.linux.seccomp, { arch: process.arch });
      const t2 = nowMs();
      if (measured) {
        micro.buildRunSpec.push(t1 - t0);
        micro.compileSeccomp.push(t2 - t1);
      }
      process.stderr.write(`\r  ${measured ? "run" : "warm-up"} ${measured ? i - args.warmup + 1 : i + 1}/${measured ? args.runs : args.warmup}   `);
    }
    process.stderr.write("\n");

    const summary: Record<string, Summary> = Object.fromEntries(Object.entries(samples).map(([k, s]) => [k, summarize(s)]));
    const microSummary: Record<string, Summary> = Object.fromEntries(Object.entries(micro).map(([k, s]) => [k, summarize(s)]));
    const med = (k: string) => summary[k].median;
    const ratios = {
      "berth-cli/runc": med("berth-cli") / med("runc"),
      "berth-lib/runc": med("berth-lib") / med("runc"),
      "berth-cli/runc-berth-spec": med("berth-cli") / med("runc-berth-spec"),
      "berth-lib/runc-berth-spec": med("berth-lib") / med("runc-berth-spec"),
    };
    // A coarse split of the CLI's time from the medians (differences of medians, not exact).
    const breakdown = {
      nodeStartup: med("node"),
      loadCliModules: med("node-import-cli") - med("node"),
      runAfterLoad: med("berth-cli") - med("node-import-cli"),
      warmLibraryRun: med("berth-lib"),
      helperAlone: med("helper-direct"),
      libraryMinusHelper: med("berth-lib") - med("helper-direct"),
      buildRunSpec: microSummary.buildRunSpec.median,
      compileSeccomp: microSummary.compileSeccomp.median,
      libraryFirstRunInProcess: libFirstRun,
    };

    const rows = variants.map((v) => {
      const s = summary[v.key];
      return [v.label, fmtMs(s.median), fmtMs(s.p90), fmtMs(s.min), `${(s.median / med("runc")).toFixed(2)}×`];
    });
    for (const [k, s] of Object.entries(microSummary)) {
      rows.push([`in-process \`${k}\` (every run)`, fmtMs(s.median), fmtMs(s.p90), fmtMs(s.min), "-"]);
    }
    const table = markdownTable(["ms, /bin/true in a busybox rootfs", "median", "p90", "min", "median / runc"], rows);
    const splitRows = [
      ["Node start-up (`node -e 0`)", fmtMs(breakdown.nodeStartup)],
      ["loading the CLI's modules (import − start-up)", fmtMs(breakdown.loadCliModules)],
      ["running the container, cold process (CLI − import)", fmtMs(breakdown.runAfterLoad)],
      ["  the same, warm in-process (berth-lib)", fmtMs(breakdown.warmLibraryRun)],
      ["  of which helper + container set-up (helper-direct)", fmtMs(breakdown.helperAlone)],
      ["  of which state, cgroups, overlay, spec, seccomp (lib − helper)", fmtMs(breakdown.libraryMinusHelper)],
      ["first library run in this process (cold JIT, not a median)", breakdown.libraryFirstRunInProcess !== undefined ? fmtMs(breakdown.libraryFirstRunInProcess) : "-"],
    ];
    const splitTable = markdownTable(["where `berth run` time goes (differences of medians)", "ms"], splitRows);

    const env = {
      node: process.version,
      kernel: release(),
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      runc: version(runc, ["--version"]),
      busybox: version("/bin/busybox", ["--help"]),
      loadavgStart: load0,
      loadavgEnd: loadavg(),
    };
    process.stdout.write(`\n${table}\n\n`);
    process.stdout.write(
      `berth-cli/runc = ${ratios["berth-cli/runc"].toFixed(2)}×, berth-lib/runc = ${ratios["berth-lib/runc"].toFixed(2)}×` +
        ` (against runc with Berth's spec: ${ratios["berth-cli/runc-berth-spec"].toFixed(2)}× and ${ratios["berth-lib/runc-berth-spec"].toFixed(2)}×)\n\n`,
    );
    process.stdout.write(`${splitTable}\n\n`);
    process.stdout.write(
      `${args.runs} runs (+${args.warmup} warm-up), alternating, ${startedAt.toISOString()}; node ${env.node}, ${env.runc}, ` +
        `kernel ${env.kernel}, ${env.cpus} CPUs, load ${load0.map((l) => l.toFixed(2)).join(" ")} -> ${env.loadavgEnd.map((l) => l.toFixed(2)).join(" ")}\n`,
    );

    const out = args.json ?? join(REPO, "bench", "results", `run-${startedAt.toISOString().replace(/[:.]/g, "-")}.json`);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(
      out,
      JSON.stringify({ benchmark: "runtime-core", startedAt, args, env, variants: variants.map(({ key, label }) => ({ key, label })), summary, microSummary, ratios, breakdown, samples, micro }, null, 2) + "\n",
    );
    process.stderr.write(`bench: results written to ${out}\n`);
    return 0;
  } finally {
    cleanup();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

main().then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof BenchError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
