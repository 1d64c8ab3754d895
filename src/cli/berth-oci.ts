// `berth-oci`: an OCI runtime with runc's command line, so dockerd, podman and containerd can use it in
// place of runc. A thin layer: flags -> src/runtime/oci-runtime.ts; errors -> one line on stderr and,
// with --log, a json/text log line engines read back; exit 1 (255 when exec fails), as runc.

import { Command } from "commander";
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { BerthError } from "../errors.js";
import { defaultSpec } from "../oci/default-spec.js";
import type { Process, Resources } from "../oci/spec.js";
import {
  DEFAULT_OCI_ROOT,
  ociCreate,
  ociDelete,
  ociExec,
  ociKill,
  ociList,
  ociOomKills,
  ociPause,
  ociPs,
  ociResume,
  ociRun,
  ociStart,
  ociState,
  ociStats,
  ociUpdate,
  loadRecord,
  statusOf,
} from "../runtime/oci-runtime.js";
import { features } from "../runtime/oci-features.js";
import { psTable } from "./oci-ps.js";
import { runCli } from "./run-cli.js";
import { parseSize } from "../util/size.js";
import { VERSION } from "../version.js";

export const OCI_SPEC_VERSION = "1.2.0";
/** How often `events` looks at the OOM-kill counter (stats come every --interval). */
const OOM_POLL_MS = 200;

interface GlobalFlags {
  root: string;
  log?: string;
  logFormat: "text" | "json";
  debug?: boolean;
  systemdCgroup?: boolean;
}

interface ExecFlags {
  process?: string; tty?: boolean; consoleSocket?: string; detach?: boolean; pidFile?: string; env: string[]; cwd?: string;
  user?: string; additionalGids: number[]; cap: string[]; newPrivs?: boolean; preserveFds: number; ignorePaused?: boolean;
  apparmor?: string; processLabel?: string;
}

let globals: GlobalFlags = { root: DEFAULT_OCI_ROOT, logFormat: "text" };

function log(level: "error" | "warning" | "info" | "debug", msg: string): void {
  if (level === "debug" && !globals.debug) return;
  if (!globals.log) {
    if (level !== "error") process.stderr.write(`berth-oci: ${level}: ${msg}\n`);
    return;
  }
  const time = new Date().toISOString();
  const line = globals.logFormat === "json"
    ? JSON.stringify({ level, msg, time }) + "\n"
    : `time="${time}" level=${level} msg=${JSON.stringify(msg)}\n`;
  try {
    appendFileSync(globals.log, line);
  } catch {
    process.stderr.write(line);
  }
}

const warn = (msg: string) => log("warning", msg);
const collect = (value: string, previous: string[] = []) => [...previous, value];
const int = (flag: string) => (v: string) => {
  if (!/^-?\d+$/.test(v)) throw new BerthError(`invalid value "${v}" for ${flag}: expected a whole number`, { exitCode: 1 });
  return Number(v);
};

function readJsonInput(path: string, what: string): unknown {
  try {
    const text = path === "-" ? readFileSync(0, "utf8") : readFileSync(path, "utf8");
    return JSON.parse(text);
  } catch (err) {
    throw new BerthError(`${what} ${path}: ${(err as Error).message}`, { exitCode: 1 });
  }
}

/**
 * `exec -u uid[:gid]` and `-g gid`, parsed as runc does: whole numbers only; a gid left out keeps the
 * container process's, and -g adds to its additional groups.
 */
export function execUser(base: Process["user"] | undefined, user: string | undefined, additionalGids: number[]): Process["user"] {
  let uid = base?.uid ?? 0;
  let gid = base?.gid ?? 0;
  if (user !== undefined) {
    const [u, g] = user.split(/:(.*)/s);
    uid = wholeId(u, "--user uid");
    if (g !== undefined) gid = wholeId(g, "--user gid");
  }
  return { uid, gid, additionalGids: [...(base?.additionalGids ?? []), ...additionalGids] };
}

function wholeId(value: string, what: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) throw new BerthError(`invalid ${what} "${value}": expected a whole number`, { exitCode: 1 });
  return Number(value);
}

const gidFlag = (value: string) => wholeId(value, "--additional-gids");

/** runc's exit code when exec fails before its process runs (fatalWithCode(…, 255)); every other failure is 1. */
export const EXEC_FAILED = 255;

class ExecFailed extends BerthError {
  constructor(err: unknown) {
    super(err instanceof BerthError ? err.message : ((err as Error).stack ?? String(err)), { exitCode: EXEC_FAILED, cause: err });
  }
}

/** What a shell sees of runc killed by SIGPIPE (128 + 13). */
export const EPIPE_EXIT = 141;

/** runc's list table: Go's tabwriter with minwidth 12 and padding 3 (each column but the last). */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(12, ...rows.map((r) => r[i].length + 3)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join("")).join("\n") + "\n";
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command("berth-oci")
    .description("Berth's OCI runtime (runc-compatible command line)")
    .enablePositionalOptions()
    .version(`berth-oci version ${VERSION}\nspec: ${OCI_SPEC_VERSION}`, "-v, --version")
    .option("--root <dir>", "state directory", DEFAULT_OCI_ROOT)
    .option("--log <file>", "log file (errors are written there too)")
    .option("--log-format <format>", "text or json", "text")
    .option("--debug", "debug logging")
    .option("--systemd-cgroup", "accepted for compatibility: the cgroupfs driver is used")
    .option("--rootless <value>", "accepted for compatibility")
    .option("--criu <path>", "accepted for compatibility")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith("error:") ? `berth-oci: ${s.slice(7)}` : s) })
    .hook("preAction", (cmd) => {
      const o = cmd.opts() as GlobalFlags;
      globals = { ...o, root: resolve(o.root) };
      if (o.logFormat !== "text" && o.logFormat !== "json") throw new BerthError(`invalid --log-format "${o.logFormat}": use text or json`, { exitCode: 1 });
      if (o.systemdCgroup && !existsSync("/run/systemd/system")) log("info", "no systemd here: --systemd-cgroup accepted, the cgroupfs driver is used");
      log("debug", `args: ${process.argv.slice(2).join(" ")}`);
    });

  const root = () => globals.root;

  program.command("create <id>").description("create a container")
    .option("-b, --bundle <dir>", "bundle directory", ".")
    .option("--pid-file <file>", "write the container's pid here")
    .option("--console-socket <path>", "unix socket to send the pty master to")
    .option("--no-pivot", "use MS_MOVE and chroot instead of pivot_root")
    .option("--no-new-keyring", "accepted: Berth never creates a session keyring")
    .option("--preserve-fds <n>", "pass N extra fds (3..) to the container", int("--preserve-fds"), 0)
    .action(async (id: string, o: { bundle: string; pidFile?: string; consoleSocket?: string; pivot: boolean; preserveFds: number }) => {
      await ociCreate(root(), id, { bundle: o.bundle, pidFile: o.pidFile, consoleSocket: o.consoleSocket, noPivot: !o.pivot, preserveFds: o.preserveFds, warn });
    });

  program.command("start <id>").description("start a created container")
    .action(async (id: string) => ociStart(root(), id, warn));

  program.command("run <id>").description("create and start a container")
    .option("-b, --bundle <dir>", "bundle directory", ".")
    .option("--pid-file <file>", "write the container's pid here")
    .option("--console-socket <path>", "unix socket to send the pty master to")
    .option("-d, --detach", "detach from the container's process")
    .option("--no-pivot", "use MS_MOVE and chroot instead of pivot_root")
    .option("--no-new-keyring", "accepted")
    .option("--keep", "keep the stopped container (state, list) until delete")
    .option("--no-subreaper", "accepted: berth-oci's foreground helper already reaps the container's process")
    .option("--preserve-fds <n>", "pass N extra fds (3..) to the container", int("--preserve-fds"), 0)
    .action(async (id: string, o: { bundle: string; pidFile?: string; consoleSocket?: string; detach?: boolean; keep?: boolean; pivot: boolean; preserveFds: number }) => {
      const create = { bundle: o.bundle, pidFile: o.pidFile, consoleSocket: o.consoleSocket, noPivot: !o.pivot, preserveFds: o.preserveFds, warn };
      setExit(await ociRun(root(), id, create, Boolean(o.detach), Boolean(o.keep)));
    });

  program.command("state <id>").description("print the state of a container")
    .action((id: string) => {
      const s = ociState(root(), id);
      process.stdout.write(JSON.stringify(s, null, 2) + "\n");
    });

  program.command("kill <id> [signal]").description("send a signal to the container's init (default SIGTERM)")
    .option("-a, --all", "send it to every process in the container")
    .action((id: string, signal: string | undefined, o: { all?: boolean }) => ociKill(root(), id, signal, Boolean(o.all)));

  program.command("delete <id>").alias("rm").description("delete a stopped container")
    .option("-f, --force", "kill it first if it is running")
    .action(async (id: string, o: { force?: boolean }) => {
      // runc: deleting a container that doesn't exist with --force is not an error.
      if (o.force && !existsSync(join(root(), id))) return;
      await ociDelete(root(), id, Boolean(o.force), warn);
    });

  program.command("exec <id> [command...]").description("run a process inside a running container")
    .option("-p, --process <file>", "process.json with the process to run")
    .option("-t, --tty", "allocate a pseudo-TTY")
    .option("--console-socket <path>", "unix socket to send the pty master to")
    .option("-d, --detach", "detach from the process")
    .option("--pid-file <file>", "write the process's pid here")
    .option("-e, --env <KEY=VALUE>", "set an environment variable", collect, [])
    .option("--cwd <dir>", "working directory")
    .option("-u, --user <uid[:gid]>", "user id and group id")
    // A flag value runc's flag parser rejects (exit 1, before exec starts), unlike a bad --user (255).
    .option("-g, --additional-gids <gid>", "additional group", (v: string, prev: number[]) => [...prev, gidFlag(v)], [])
    .option("-c, --cap <cap>", "add a capability", collect, [])
    .option("--no-new-privs", "set no_new_privs")
    .option("--apparmor <profile>", "AppArmor profile (not applied, with a warning, where AppArmor is not enabled)")
    .option("--process-label <label>", "SELinux label (not applied, with a warning, where SELinux is not enabled)")
    .option("--preserve-fds <n>", "pass N extra fds (3..)", int("--preserve-fds"), 0)
    .option("--ignore-paused", "exec in a paused container (the process stays frozen until resume)")
    .passThroughOptions()
    .action(async (id: string, command: string[], o: ExecFlags) => {
      try {
        setExit(await execAction(id, command, o));
      } catch (err) {
        throw new ExecFailed(err);
      }
    });

  async function execAction(id: string, command: string[], o: ExecFlags): Promise<number> {
    const record = loadRecord(root(), id);
    let proc: Process;
    if (o.process) {
      proc = readJsonInput(o.process, "--process") as Process;
    } else {
      if (command.length === 0) throw new BerthError("exec needs a command or --process", { exitCode: 1 });
      const base = record.config.process;
      proc = {
        terminal: Boolean(o.tty),
        args: command,
        env: [...(base?.env ?? []), ...o.env],
        cwd: o.cwd ?? base?.cwd ?? "/",
        user: execUser(base?.user, o.user, o.additionalGids),
        capabilities: base?.capabilities && o.cap.length
          ? Object.fromEntries(Object.entries(base.capabilities).map(([k, v]) => [k, [...(v ?? []), ...o.cap]]))
          : base?.capabilities,
        noNewPrivileges: o.newPrivs === false ? true : base?.noNewPrivileges,
        rlimits: base?.rlimits,
      };
    }
    // As runc: the flags override the process's own (a --process JSON's included).
    if (o.apparmor) proc.apparmorProfile = o.apparmor;
    if (o.processLabel) proc.selinuxLabel = o.processLabel;
    return ociExec(root(), id, proc, { consoleSocket: o.consoleSocket, detach: o.detach, pidFile: o.pidFile, preserveFds: o.preserveFds, ignorePaused: o.ignorePaused, warn });
  }

  program.command("list").alias("ls").description("list containers")
    .option("-f, --format <format>", "table or json", "table")
    .option("-q, --quiet", "only ids")
    .action((o: { format: string; quiet?: boolean }) => {
      const states = ociList(root());
      if (o.quiet) return void process.stdout.write(states.map((s) => s.id + "\n").join(""));
      if (o.format === "json") return void process.stdout.write(JSON.stringify(states) + "\n");
      const rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], ...states.map((s) => [s.id, String(s.pid), s.status, s.bundle, s.created, "root"])];
      process.stdout.write(table(rows));
    });

  program.command("ps <id> [ps-options...]").description("list the processes of a container (ps -ef, or the ps options given after the id)")
    .option("-f, --format <format>", "table or json", "table")
    .passThroughOptions()
    .action((id: string, psArgs: string[], o: { format: string }) => {
      const pids = ociPs(root(), id);
      if (o.format === "json") return void process.stdout.write(JSON.stringify(pids) + "\n");
      process.stdout.write(psTable(pids, psArgs));
    });

  program.command("pause <id>").description("freeze every process of a container").action((id: string) => ociPause(root(), id));
  program.command("resume <id>").description("thaw a paused container").action((id: string) => ociResume(root(), id));

  program.command("update <id>").description("change a container's resource limits")
    .option("-r, --resources <file>", "LinuxResources JSON (- for stdin)")
    .option("--memory <bytes>", "memory limit")
    .option("--memory-swap <bytes>", "memory plus swap limit")
    .option("--memory-reservation <bytes>", "memory soft limit")
    .option("--cpu-shares <n>", "CPU shares")
    .option("--cpu-quota <us>", "CFS quota")
    .option("--cpu-period <us>", "CFS period")
    .option("--cpuset-cpus <list>", "CPUs")
    .option("--cpuset-mems <list>", "memory nodes")
    .option("--pids-limit <n>", "maximum number of processes")
    .action(async (id: string, o: Record<string, string | undefined>) => {
      let r: Resources;
      if (o.resources) r = readJsonInput(o.resources, "--resources") as Resources;
      else {
        r = {};
        const size = (v: string, f: string) => (v === "-1" ? -1 : parseSize(v, f));
        if (o.memory || o.memorySwap || o.memoryReservation) {
          r.memory = {};
          if (o.memory) r.memory.limit = size(o.memory, "--memory");
          if (o.memorySwap) r.memory.swap = size(o.memorySwap, "--memory-swap");
          if (o.memoryReservation) r.memory.reservation = size(o.memoryReservation, "--memory-reservation");
        }
        if (o.cpuShares || o.cpuQuota || o.cpuPeriod || o.cpusetCpus || o.cpusetMems) {
          r.cpu = {};
          if (o.cpuShares) r.cpu.shares = int("--cpu-shares")(o.cpuShares);
          if (o.cpuQuota) r.cpu.quota = int("--cpu-quota")(o.cpuQuota);
          if (o.cpuPeriod) r.cpu.period = int("--cpu-period")(o.cpuPeriod);
          if (o.cpusetCpus) r.cpu.cpus = o.cpusetCpus;
          if (o.cpusetMems) r.cpu.mems = o.cpusetMems;
        }
        if (o.pidsLimit) r.pids = { limit: int("--pids-limit")(o.pidsLimit) };
      }
      await ociUpdate(root(), id, r);
    });

  program.command("events <id>").description("print container stats (with --stats once, else every --interval) and OOM kills")
    .option("--stats", "print stats once and exit")
    .option("--interval <duration>", "interval between stats, e.g. 5s", "5s")
    .action(async (id: string, o: { stats?: boolean; interval: string }) => {
      // As runc: no stats of a stopped container (they were printed as if it ran, and events exited 0).
      if (statusOf(root(), loadRecord(root(), id)) === "stopped") throw new BerthError(`container with id ${id} is not running`, { exitCode: 1 });
      const print = (event: unknown) => void process.stdout.write(JSON.stringify(event) + "\n");
      if (o.stats) return print(ociStats(root(), id));
      const m = /^(\d+)(ms|s|m)?$/.exec(o.interval);
      if (!m) throw new BerthError(`invalid --interval "${o.interval}": e.g. 5s or 500ms`, { exitCode: 1 });
      const ms = Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "m" ? 60_000 : 1000);
      // runc watches the memory cgroup's OOM notifications beside the stats: a new OOM kill is reported
      // ({"type":"oom"}) as it happens, not at the next interval, and one that stopped the container too.
      let ooms = ociOomKills(root(), id);
      let nextStats = Date.now();
      for (;;) {
        const count = ociOomKills(root(), id);
        if (count > ooms) print({ type: "oom", id });
        ooms = count;
        if (statusOf(root(), loadRecord(root(), id)) === "stopped") break;
        if (Date.now() >= nextStats) {
          print(ociStats(root(), id));
          nextStats = Date.now() + ms;
        }
        await new Promise((r) => setTimeout(r, Math.max(0, Math.min(OOM_POLL_MS, nextStats - Date.now()))));
      }
    });

  program.command("features").description("print the features this runtime supports (runtime-spec features.md)")
    .action(() => void process.stdout.write(JSON.stringify(features(), null, 2) + "\n"));

  program.command("spec").description("write a default config.json")
    .option("-b, --bundle <dir>", "where to write it", ".")
    .option("--rootless", "accepted")
    .action((o: { bundle: string }) => {
      const file = join(o.bundle, "config.json");
      if (existsSync(file)) throw new BerthError(`File ${file} exists. Remove it first`, { exitCode: 1 });
      try {
        writeFileSync(file, JSON.stringify(defaultSpec(), null, "\t"));
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new BerthError(e.code === "ENOENT" ? `--bundle ${o.bundle}: no such directory` : `writing ${file}: ${e.message}`, { exitCode: 1 });
      }
    });

  // runc's checkpoint/restore go through CRIU, which berth-oci has no support for: one clear refusal
  // whatever the flags (engines pass --image-path, --work-path, ...).
  for (const name of ["checkpoint", "restore"]) {
    program.command(`${name} [args...]`).description("not supported (no CRIU support)")
      .allowUnknownOption()
      .action(() => { throw new BerthError("checkpoint/restore is not supported (no CRIU support)", { exitCode: 1 }); });
  }

  return program;
}

function exitOnEpipe(err: NodeJS.ErrnoException): void {
  if (err.code === "EPIPE") process.exit(EPIPE_EXIT);
  throw err;
}

export function main(argv: string[]): Promise<number> {
  // A reader that went away (`events | head`): stop quietly, as runc does on SIGPIPE (the shell sees 141),
  // rather than with an unhandled 'error' event's stack trace.
  if (!process.stdout.listeners("error").includes(exitOnEpipe)) process.stdout.on("error", exitOnEpipe);
  return runCli(buildProgram, argv, 1, (err) => {
    const msg = err instanceof BerthError ? err.message : ((err as Error).stack ?? String(err));
    log("error", msg);
    process.stderr.write(`berth-oci: ${msg}\n`);
    // runc's codes: 1 for every failure (a missing command too: 127/126 are the engine's, not the runtime's),
    // 255 for an exec that could not start its process.
    return err instanceof ExecFailed ? EXEC_FAILED : 1;
  });
}
