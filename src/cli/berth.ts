// `berth`: the engine CLI. A thin layer: flags -> library options -> the library; errors -> one line and
// docker's exit codes (125 when Berth itself failed, the container's code otherwise).

import { Command, Option } from "commander";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { BerthError } from "../errors.js";
import type { IdMapping } from "../oci/spec.js";
import { parseEnvFile } from "../util/envfile.js";
import { availableParallelism } from "node:os";
import { parseCpuset, parseMemorySwap, parseSize } from "../util/size.js";
import { buildRunSpec, checkCpusetCpus, type RunOptions } from "../core/run-spec.js";
import { ensureHostImage } from "../rootfs/host-image.js";
import { readImageFile } from "../images/run-config.js";
import { ImageStore } from "../images/store.js";
import { newContainerId, startContainer } from "../runtime/container.js";
import { readHostFacts } from "../runtime/host-facts.js";
import { registerRegistryCommands } from "./registry.js";
import { registerImageCommands, resolveRunImage } from "./images.js";
import { addRunNetworkOptions, parseRunNetwork, prepareRunNetwork, registerNetworkCommands, type RunNetworkFlags } from "./network.js";
import { addContainerOptions, type IsolationFlags, isolationHostConfig } from "./container-options.js";
import { defaultHostConfig, isolationRunOptions } from "../daemon/engine.js";
import type { HostConfig } from "../daemon/types.js";
import { runCli } from "./run-cli.js";
import { registerEngineCommands } from "./engine.js";
import { VERSION } from "../version.js";

const DEFAULT_DATA_ROOT = "/var/lib/berth";
const collect = (value: string, previous: string[] = []) => [...previous, value];

/** podman's --uidmap container_id:host_id:amount */
export function parseIdMap(text: string, flag: string): IdMapping {
  const m = /^(\d+):(\d+):(\d+)$/.exec(text);
  if (!m || Number(m[3]) === 0) {
    throw new BerthError(`invalid value "${text}" for ${flag}: expected container_id:host_id:amount, e.g. 0:100000:65536`);
  }
  return { containerID: Number(m[1]), hostID: Number(m[2]), size: Number(m[3]) };
}

/** -v /host:/container[:ro|rw] (named volumes arrive with the engine). */
export function parseVolume(text: string): { source: string; destination: string; readOnly: boolean } {
  const parts = text.split(":");
  if (parts.length < 2 || parts.length > 3 || !parts[0].startsWith("/")) {
    throw new BerthError(`invalid volume "${text}": expected /host/path:/container/path[:ro]`);
  }
  const mode = parts[2] ?? "rw";
  if (mode !== "ro" && mode !== "rw") throw new BerthError(`invalid volume mode "${mode}" in "${text}": use ro or rw`);
  if (!existsSync(parts[0])) throw new BerthError(`invalid volume "${text}": ${parts[0]} does not exist on the host`);
  return { source: parts[0], destination: parts[1], readOnly: mode === "ro" };
}

/** --cpuset-cpus, checked against this host's CPUs (docker: "Requested CPUs are not available"). */
function hostCpuset(text: string): string {
  const list = parseCpuset(text, "--cpuset-cpus");
  checkCpusetCpus(list, availableParallelism()); // the same check and wording as through the daemon
  return list;
}

function parseIntFlag(text: string, flag: string): number {
  if (!/^-?\d+$/.test(text)) throw new BerthError(`invalid value "${text}" for ${flag}: expected a whole number`);
  return Number(text);
}

/** --cpus; 0 means no limit, as docker (NanoCpus 0). */
function parseCpusFlag(text: string): number | undefined {
  const n = Number(text);
  if (!/^\d*\.?\d+$/.test(text)) throw new BerthError(`invalid value "${text}" for --cpus: expected a positive number, e.g. 1.5 (0: no limit)`);
  return n > 0 ? n : undefined;
}

interface RunFlags extends RunNetworkFlags, IsolationFlags {
  interactive?: boolean;
  tty?: boolean;
  rm?: boolean;
  env: string[];
  envFile: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  name?: string;
  network: string;
  rootfs?: string;
  readOnly?: boolean;
  memory?: string;
  memorySwap?: string;
  cpus?: string;
  cpuShares?: string;
  cpusetCpus?: string;
  pidsLimit?: string;
  privileged?: boolean;
  capAdd: string[];
  capDrop: string[];
  uidmap: string[];
  gidmap: string[];
  volume: string[];
  securityOpt: string[];
  entrypoint?: string;
  dataRoot: string;
  /** --pull (registered with the daemon path's flags): missing, always, never. */
  pull?: string;
}

interface ResolvedRoot {
  rootfs: string;
  command: string[];
  /** For images from the store: their layer dirs (top first), ID and config-derived settings. */
  lowerDirs?: string[];
  image?: string;
  env?: string[];
  workdir?: string;
  user?: string;
}

async function resolveRootfs(flags: RunFlags, args: string[], env: string[]): Promise<ResolvedRoot> {
  if (flags.rootfs) return { rootfs: resolve(flags.rootfs), command: flags.entrypoint ? [flags.entrypoint, ...args] : args };
  const [image, ...command] = args;
  if (!image) throw new BerthError("no image given: use `berth run IMAGE [CMD]`, `berth run host CMD` (the built-in image) or `berth run --rootfs DIR CMD`");
  if (image === "host") return { rootfs: await ensureHostImage(flags.dataRoot), command: flags.entrypoint ? [flags.entrypoint, ...command] : command };
  const r = await resolveRunImage(image, flags.dataRoot, { entrypoint: flags.entrypoint, args: command, env, workdir: flags.workdir, user: flags.user }, flags.pull);
  return { rootfs: r.lowerDirs[0], command: r.command, lowerDirs: r.lowerDirs, image: r.id, env: r.env, workdir: r.workdir, user: r.user };
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

async function runCommand(args: string[], flags: RunFlags): Promise<number> {
  if (process.getuid?.() !== 0) throw new BerthError("berth run must be run as root (it creates namespaces, mounts and cgroups)");
  const env = [...flags.envFile.flatMap((f) => {
    const text = readOptional(f);
    if (text === undefined) throw new BerthError(`cannot read --env-file ${f}: no such file`);
    return parseEnvFile(text, f);
  }), ...flags.env.map((e) => (e.includes("=") ? e : process.env[e] !== undefined ? `${e}=${process.env[e]}` : e))]
    .filter((e) => e.includes("="));
  parseRunNetwork(flags, [], (s) => process.stderr.write(s));
  // The same HostConfig fields, checks and spec options as through the daemon.
  const hostConfig = defaultHostConfig({ ...(isolationHostConfig(flags) as Partial<HostConfig>), SecurityOpt: flags.securityOpt, NetworkMode: flags.network });
  if (hostConfig.PidMode.startsWith("container:")) throw new BerthError("--pid container:NAME needs the daemon (it names a daemon's container); run without BERTH_NO_DAEMON");
  const isolation = isolationRunOptions({ HostConfig: hostConfig, Config: { Domainname: flags.domainname ?? "" } as never }, {});
  // Parse every flag before touching the host, so bad input leaves nothing behind.
  const options: Omit<RunOptions, "rootfs" | "command"> = {
    env,
    workdir: flags.workdir,
    user: flags.user,
    hostname: flags.hostname,
    tty: flags.tty,
    consoleSize: flags.tty && process.stdout.isTTY ? { rows: process.stdout.rows, cols: process.stdout.columns } : undefined,
    network: flags.network === "host" ? "host" : "none",
    readOnly: flags.readOnly,
    // 0 is no limit, as docker and the daemon path take it (it was refused: "the minimum allowed is 6MB").
    memory: flags.memory !== undefined ? parseSize(flags.memory, "--memory") || undefined : undefined,
    memorySwap: flags.memorySwap !== undefined ? parseMemorySwap(flags.memorySwap, "--memory-swap") : undefined,
    cpus: flags.cpus !== undefined ? parseCpusFlag(flags.cpus) : undefined,
    cpuShares: flags.cpuShares !== undefined ? parseIntFlag(flags.cpuShares, "--cpu-shares") : undefined,
    cpusetCpus: flags.cpusetCpus !== undefined ? hostCpuset(flags.cpusetCpus) : undefined,
    pidsLimit: flags.pidsLimit !== undefined ? parseIntFlag(flags.pidsLimit, "--pids-limit") : undefined,
    privileged: flags.privileged,
    capAdd: flags.capAdd,
    capDrop: flags.capDrop,
    uidMap: flags.uidmap.map((m) => parseIdMap(m, "--uidmap")),
    gidMap: flags.gidmap.map((m) => parseIdMap(m, "--gidmap")),
    binds: flags.volume.map(parseVolume),
    ...isolation,
  };
  const resolved = await resolveRootfs(flags, args, env);
  const { rootfs, command, lowerDirs } = resolved;
  const id = newContainerId();
  let spec: ReturnType<typeof buildRunSpec>;
  let container: Awaited<ReturnType<typeof startContainer>> | undefined;
  // Handlers go in before the launch: a signal that arrives while the container is starting would
  // otherwise end this process with Node's default action and skip the cleanup. Such signals are held
  // and delivered once the container's init exists, as docker's sig-proxy does.
  const pending: NodeJS.Signals[] = [];
  const forwarded: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"];
  const handlers = forwarded.map((sig) => {
    const h = () => (container ? container.forward(sig) : pending.push(sig));
    process.on(sig, h);
    return [sig, h] as const;
  });
  // The new size comes from our stdout, where the initial size came from (consoleSize above): with -t
  // but no -i (or -i from a file or pipe) the helper's stdin is not the terminal, so its own look at fd 0
  // found nothing and the container's terminal kept its first size.
  const onWinch = () => {
    if (!container) return;
    if (process.stdout.isTTY) {
      const [cols, rows] = process.stdout.getWindowSize();
      container.resize(rows, cols);
    } else {
      container.refreshSize();
    }
  };
  process.on("SIGWINCH", onWinch);
  const removeHandlers = () => {
    for (const [sig, h] of handlers) process.off(sig, h);
    process.off("SIGWINCH", onWinch);
  };
  let network: Awaited<ReturnType<typeof prepareRunNetwork>>;
  try {
    network = await prepareRunNetwork(flags, { containerId: id, name: flags.name, hostname: flags.hostname ?? id.slice(0, 12), dataRoot: flags.dataRoot, image: resolved.image });
  } catch (err) {
    removeHandlers();
    throw err;
  }
  try {
    spec = buildRunSpec(
      {
        ...options, rootfs, command, env: resolved.env ?? options.env, workdir: resolved.workdir ?? options.workdir, user: resolved.user ?? options.user,
        binds: [...(options.binds ?? []), ...network.binds], networkNamespacePath: network.netnsPath,
      },
      {
        id,
        passwd: lowerDirs ? readImageFile(lowerDirs, "etc/passwd") : readOptional(`${rootfs}/etc/passwd`),
        group: lowerDirs ? readImageFile(lowerDirs, "etc/group") : readOptional(`${rootfs}/etc/group`),
        runtimeCapabilities: readHostFacts().runtimeCapabilities,
      },
    );
    // In a user namespace an image's files must be owned by the mapped ids to show their owners inside:
    // the store keeps a copy of each layer per mapping, made on first use.
    const uidMap = spec.linux?.uidMappings;
    const runLowerDirs = lowerDirs && resolved.image && uidMap?.length
      ? await new ImageStore(flags.dataRoot).idmappedLowerDirs(resolved.image, uidMap, spec.linux?.gidMappings ?? [])
      : lowerDirs;
    container = await startContainer({
      spec,
      id,
      stdio: [flags.interactive ? "inherit" : "ignore", "inherit", "inherit"],
      rawHostTerminal: Boolean(flags.tty && flags.interactive && process.stdin.isTTY),
      lowerDirs: runLowerDirs,
      image: resolved.image,
      network,
    });
  } catch (err) {
    removeHandlers();
    await network.release();
    throw err;
  }
  for (const sig of pending.splice(0)) container.forward(sig);
  try {
    const result = await container.wait();
    if (result.oomKilled) {
      const limit = spec.linux?.resources?.memory?.limit;
      process.stderr.write(`berth: container ${id.slice(0, 12)} was killed: out of memory${limit ? ` (limit ${limit} bytes)` : ""}\n`);
      return 137;
    }
    return result.signal ? 128 + result.signal : result.exitCode;
  } finally {
    removeHandlers();
  }
}

export function buildProgram(onExit: (code: number) => void): Command {
  const program = new Command("berth")
    .description("Berth: run containers")
    .enablePositionalOptions()
    .exitOverride()
    .version(`Berth version ${VERSION}`, "-v, --version", "print the version")
    .configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith("error:") ? `berth: ${s.slice(7)}` : s) });
  const run = program
    .command("run")
    .description("Run a command in a new container")
    .usage("[OPTIONS] IMAGE|--rootfs DIR [COMMAND] [ARG...]")
    .argument("[args...]")
    .passThroughOptions();
  addContainerOptions(run)
    .addOption(new Option("--network <mode>", "network: bridge, none, host, a network name or container:NAME").default("default", "bridge"))
    .option("--rootfs <dir>", "run on an unpacked root filesystem directory instead of an image")
    .option("--uidmap <container:host:amount>", "run in a user namespace with this uid mapping", collect, [])
    .option("--gidmap <container:host:amount>", "gid mapping for the user namespace", collect, [])
    .addOption(new Option("--data-root <dir>", "where images are kept").env("BERTH_DATA_ROOT").default(DEFAULT_DATA_ROOT))
    .action(async (args: string[], flags: RunFlags) => {
      onExit(await runCommand(args, flags));
    });
  registerImageCommands(program);
  addRunNetworkOptions(run);
  registerNetworkCommands(program, onExit);
  registerRegistryCommands(program, onExit);
  registerEngineCommands(program, onExit);
  followDaemonDataRoot(program);
  return program;
}

/** The commands that open the image store themselves rather than asking the daemon. */
const STORE_COMMANDS = new Set(["images", "tag", "rmi", "history", "save", "load", "import", "pull", "push", "image ls", "image inspect",
  "image rm", "image tag", "image history", "image save", "image load", "image import", "image prune", "image pull", "image push", "system df"]);

/**
 * Image commands read and write an image store directly. When -H/BERTH_HOST names a daemon and no
 * --data-root was given, that store must be the daemon's (its DockerRootDir): otherwise `berth import`
 * put the image in /var/lib/berth while `berth run` through that daemon never found it and tried docker.io.
 */
function followDaemonDataRoot(program: Command): void {
  program.hook("preAction", async (_root, action) => {
    const name = action.parent && action.parent !== program ? `${action.parent.name()} ${action.name()}` : action.name();
    if (!STORE_COMMANDS.has(name) || action.getOptionValueSource("dataRoot") !== "default") return;
    const host = (program.opts() as { host?: string }).host ?? process.env.BERTH_HOST;
    if (!host) return;
    const { Client } = await import("./client.js");
    const info = await new Client(host).json<{ DockerRootDir?: string }>("GET", "/info");
    if (info.DockerRootDir) action.setOptionValueWithSource("dataRoot", info.DockerRootDir, "default");
  });
}

/**
 * The exit code of a failure that is not the container's, as docker's CLI gives it: 125 for run and
 * create (the container's own codes are the others there), 1 for every other command (`docker logs
 * nosuch`, `docker rmi nosuch`, a missing argument). The command is the first word of argv that is no
 * option (-H/--host and --data-root take a value).
 */
export function failureCode(argv: string[]): number {
  const words: string[] = [];
  for (let i = 0; i < argv.length && words.length < 2; i++) {
    const a = argv[i];
    if (["-H", "--host", "--data-root"].includes(a)) i++;
    else if (!a.startsWith("-")) words.push(a);
  }
  const [first, second] = words;
  const command = first === "container" || first === "image" ? second : first;
  return first === undefined || command === "run" || command === "create" ? 125 : 1;
}

/**
 * `berth container run ...` is `berth run ...`, as in docker (the run command is registered once, at the
 * top level, with the in-process path's flags): "container" right before "run" is dropped.
 */
export function containerRunAlias(argv: string[]): string[] {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (["-H", "--host", "--data-root"].includes(a)) { i++; continue; }
    if (a.startsWith("-")) continue;
    return a === "container" && argv[i + 1] === "run" ? [...argv.slice(0, i), ...argv.slice(i + 1)] : argv;
  }
  return argv;
}

/** A reader that went away (`berth logs web | head -1`): end quietly with SIGPIPE's 141, as docker's CLI. */
const isEpipe = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code === "EPIPE";
let epipeWatched = false;

export function main(argv: string[]): Promise<number> {
  argv = containerRunAlias(argv);
  const failed = failureCode(argv);
  if (!epipeWatched) {
    epipeWatched = true;
    process.stdout.on("error", (err) => {
      if (isEpipe(err)) process.exit(141);
      process.stderr.write(`berth: writing the output: ${err.message}\n`);
      process.exit(1);
    });
  }
  return runCli(buildProgram, argv, failed, (err) => {
    if (isEpipe(err)) return 141;
    if (err instanceof BerthError) {
      process.stderr.write(`berth: ${err.message}\n`);
      // A command that is missing or not executable keeps docker's 127/126; anything else is ours.
      return err.exitCode === 126 || err.exitCode === 127 ? err.exitCode : failed;
    }
    process.stderr.write(`berth: ${(err as Error).stack ?? String(err)}\n`);
    return failed;
  });
}

