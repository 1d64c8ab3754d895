// `berth daemon` and the engine commands, which talk to the daemon through the Engine API (-H or
// BERTH_HOST; without either, the default socket, where a daemon is started when none answers).

import { createWriteStream, existsSync, readFileSync, statSync } from "node:fs";
import type { Socket } from "node:net";
import { basename, dirname, resolve as resolvePath } from "node:path";
import { spawn } from "node:child_process";
import { Command as CommandClass, type Command, Option } from "commander";
import { BerthError } from "../errors.js";
import { runDaemon } from "../daemon/daemon.js";
import { parseRestartPolicy } from "../daemon/restart.js";
import { DetachScanner, detachKeyBytes, DEFAULT_DETACH_KEYS } from "../daemon/detach-keys.js";
import { type BlkioEntry, blkioTotals } from "../daemon/stats.js";
import { Demuxer } from "../api/stream.js";
import { parseEnvFile } from "../util/envfile.js";
import { parseCpuset, parseMemorySwap, parseSize } from "../util/size.js";
import { ApiError, Client, query } from "./client.js";
import { addContainerOptions, type IsolationFlags, isolationHostConfig } from "./container-options.js";
import { formatRows, PS_DEFAULT, PS_HEADERS, psRow, renderTemplate, tabulate } from "./format.js";
import { addRunNetworkOptions, networkCreateFields, type RunNetworkFlags } from "./network.js";

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** A docker-style boolean flag's value (`--pause=false`); anything else is a clear error. */
function parseBoolFlag(value: string): boolean {
  if (/^(1|t|true)$/i.test(value)) return true;
  if (/^(0|f|false)$/i.test(value)) return false;
  throw new BerthError(`invalid boolean value "${value}": use --flag=true or --flag=false`);
}

function client(cmd: Command): Client {
  const root = cmd.parent?.parent ?? cmd.parent ?? cmd;
  const host = (root.opts() as { host?: string }).host ?? (cmd.parent?.opts() as { host?: string } | undefined)?.host;
  const dataRoot = (cmd.opts() as { dataRoot?: string }).dataRoot ?? process.env.BERTH_DATA_ROOT;
  return new Client(host, dataRoot);
}

const out = (s: string) => process.stdout.write(s);

/** A subcommand, unless another engineer's module registered that name already (theirs stays). */
function sub(parent: Command, name: string): Command {
  if (parent.commands.some((c) => c.name() === name || c.aliases().includes(name))) return new CommandClass(name);
  return parent.command(name);
}
const enc = encodeURIComponent;

/** Go-style durations for --health-*: 30s, 1m30s, 500ms -> nanoseconds. */
export function parseDuration(text: string, flag: string): number {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  for (const m of text.matchAll(re)) {
    const unit = { ns: 1, us: 1e3, "µs": 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 }[m[2]] as number;
    total += Number(m[1]) * unit;
    consumed += m[0].length;
  }
  if (consumed !== text.length || text.length === 0) throw new BerthError(`invalid value "${text}" for ${flag}: expected a duration like 30s, 1m30s or 500ms`);
  return Math.round(total);
}

/** --mount type=bind,source=/a,target=/b,readonly */
export function parseMount(text: string): Record<string, unknown> {
  const m: Record<string, unknown> = { Type: "volume" };
  for (const part of text.split(",")) {
    const eq = part.indexOf("=");
    const key = (eq < 0 ? part : part.slice(0, eq)).toLowerCase();
    const val = eq < 0 ? "" : part.slice(eq + 1);
    switch (key) {
      case "type": m.Type = val; break;
      case "source": case "src": m.Source = val; break;
      case "target": case "destination": case "dst": m.Target = val; break;
      case "readonly": case "ro": m.ReadOnly = val === "" || val === "true" || val === "1"; break;
      case "tmpfs-size": m.TmpfsOptions = { ...(m.TmpfsOptions as object), SizeBytes: parseSize(val, "--mount tmpfs-size") }; break;
      case "tmpfs-mode": m.TmpfsOptions = { ...(m.TmpfsOptions as object), Mode: parseInt(val, 8) }; break;
      case "volume-nocopy": m.VolumeOptions = { ...(m.VolumeOptions as object), NoCopy: val === "" || val === "true" }; break;
      case "volume-label": case "volume-opt": {
        // key=value, as docker's: labels, and the driver's options (type, device, o) for a new volume.
        const kv = val.indexOf("=");
        const [k, v] = kv < 0 ? [val, ""] : [val.slice(0, kv), val.slice(kv + 1)];
        const vo = (m.VolumeOptions ?? {}) as { Labels?: Record<string, string>; DriverConfig?: { Name?: string; Options?: Record<string, string> } };
        if (key === "volume-label") vo.Labels = { ...vo.Labels, [k]: v };
        else vo.DriverConfig = { ...vo.DriverConfig, Options: { ...vo.DriverConfig?.Options, [k]: v } };
        m.VolumeOptions = vo;
        break;
      }
      case "volume-driver": m.VolumeOptions = { ...(m.VolumeOptions as object), DriverConfig: { ...(m.VolumeOptions as { DriverConfig?: object } | undefined)?.DriverConfig, Name: val } }; break;
      case "bind-propagation": m.BindOptions = { Propagation: val }; break;
      default: throw new BerthError(`invalid field '${key}' in --mount ${text}`);
    }
  }
  if (!m.Target) throw new BerthError(`invalid --mount ${text}: target is required`);
  if (!["bind", "volume", "tmpfs"].includes(String(m.Type))) throw new BerthError(`invalid --mount ${text}: type must be bind, volume or tmpfs`);
  return m;
}

function parseLabels(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const eq = l.indexOf("=");
    if (eq < 0) out[l] = "";
    else out[l.slice(0, eq)] = l.slice(eq + 1);
  }
  return out;
}

function parseKeyVals(list: string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const eq = l.indexOf("=");
    if (eq <= 0) throw new BerthError(`invalid ${flag} "${l}": expected key=value`);
    out[l.slice(0, eq)] = l.slice(eq + 1);
  }
  return out;
}

export interface EngineRunFlags extends Partial<Omit<RunNetworkFlags, "network">> {
  /** --pull: missing (default), always, never. */
  pull?: string;
  interactive?: boolean;
  tty?: boolean;
  rm?: boolean;
  detach?: boolean;
  env: string[];
  envFile: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  name?: string;
  network: string;
  publish?: string[];
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
  volume: string[];
  mount: string[];
  tmpfs: string[];
  label: string[];
  securityOpt: string[];
  entrypoint?: string;
  restart?: string;
  init?: boolean;
  stopSignal?: string;
  stopTimeout?: string;
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthRetries?: string;
  healthStartPeriod?: string;
  healthcheck?: boolean;
  logOpt: string[];
  logDriver?: string;
  detachKeys?: string;
}

/** --env-file files, then -e (a bare NAME takes our value; unset, it is left out), as docker's CLI. */
function environment(envFiles: string[], env: string[]): string[] {
  return [...envFiles.flatMap((file) => {
    let text: string;
    try { text = readFileSync(file, "utf8"); } catch { throw new BerthError(`cannot read --env-file ${file}: no such file`); }
    return parseEnvFile(text, file);
  }), ...env.map((e) => (e.includes("=") ? e : process.env[e] !== undefined ? `${e}=${process.env[e]}` : e))].filter((e) => e.includes("="));
}

/** berth run/create flags -> the body of POST /containers/create. */
export function createBody(image: string, command: string[], f: EngineRunFlags & IsolationFlags): Record<string, unknown> {
  const env = environment(f.envFile, f.env);
  const binds: string[] = [];
  const anon: Record<string, object> = {};
  for (const v of f.volume) {
    const parts = v.split(":");
    if (parts.length === 1) {
      if (!v.startsWith("/")) throw new BerthError(`invalid volume "${v}": a container path must be absolute`);
      anon[v] = {};
    } else {
      if (parts[0].startsWith(".") || parts[0].startsWith("~")) parts[0] = resolvePath(parts[0]);
      binds.push(parts.join(":"));
    }
  }
  const tmpfs: Record<string, string> = {};
  for (const t of f.tmpfs) {
    const colon = t.indexOf(":");
    tmpfs[colon < 0 ? t : t.slice(0, colon)] = colon < 0 ? "" : t.slice(colon + 1);
  }
  const hc: Record<string, unknown> | undefined = f.healthcheck === false ? { Test: ["NONE"] } : f.healthCmd || f.healthInterval || f.healthTimeout || f.healthRetries || f.healthStartPeriod ? {
    Test: f.healthCmd ? ["CMD-SHELL", f.healthCmd] : undefined,
    Interval: f.healthInterval ? parseDuration(f.healthInterval, "--health-interval") : undefined,
    Timeout: f.healthTimeout ? parseDuration(f.healthTimeout, "--health-timeout") : undefined,
    Retries: f.healthRetries ? Number(f.healthRetries) : undefined,
    StartPeriod: f.healthStartPeriod ? parseDuration(f.healthStartPeriod, "--health-start-period") : undefined,
  } : undefined;
  let restart;
  try {
    restart = f.restart ? parseRestartPolicy(f.restart) : undefined;
  } catch (err) {
    throw new BerthError((err as Error).message);
  }
  const memory = f.memory !== undefined ? parseSize(f.memory, "--memory") : undefined;
  const cpus = f.cpus !== undefined ? Number(f.cpus) : undefined;
  // 0 is no limit (NanoCpus 0), as docker's CLI takes it.
  if (cpus !== undefined && !(cpus >= 0)) throw new BerthError(`invalid value "${f.cpus}" for --cpus: expected a positive number, e.g. 1.5 (0: no limit)`);
  const interactive = Boolean(f.interactive);
  const net = networkCreateFields(f, (s) => process.stderr.write(s));
  return {
    Hostname: f.hostname ?? "",
    Domainname: f.domainname ?? "",
    User: f.user ?? "",
    AttachStdin: interactive && !f.detach,
    AttachStdout: !f.detach,
    AttachStderr: !f.detach,
    Tty: Boolean(f.tty),
    OpenStdin: interactive,
    StdinOnce: interactive && !f.detach,
    Env: env,
    Cmd: command.length ? command : null,
    Entrypoint: f.entrypoint !== undefined ? (f.entrypoint === "" ? [] : [f.entrypoint]) : null,
    Image: image,
    WorkingDir: f.workdir ?? "",
    Labels: parseLabels(f.label),
    Volumes: Object.keys(anon).length ? anon : null,
    Healthcheck: hc,
    StopSignal: f.stopSignal,
    StopTimeout: f.stopTimeout !== undefined ? Number(f.stopTimeout) : undefined,
    ...net.config,
    HostConfig: {
      Binds: binds,
      Mounts: f.mount.map(parseMount),
      Tmpfs: Object.keys(tmpfs).length ? tmpfs : undefined,
      // docker's CLI sends "default" without --network: the daemon's default bridge.
      ...net.hostConfig,
      RestartPolicy: restart,
      AutoRemove: Boolean(f.rm),
      Privileged: Boolean(f.privileged),
      CapAdd: f.capAdd,
      CapDrop: f.capDrop,
      ReadonlyRootfs: Boolean(f.readOnly),
      Memory: memory ?? 0,
      MemorySwap: f.memorySwap !== undefined ? parseMemorySwap(f.memorySwap, "--memory-swap") : 0,
      NanoCpus: cpus !== undefined ? Math.round(cpus * 1e9) : 0,
      CpuShares: f.cpuShares !== undefined ? Number(f.cpuShares) : 0,
      CpusetCpus: f.cpusetCpus !== undefined ? parseCpuset(f.cpusetCpus, "--cpuset-cpus") : "",
      PidsLimit: f.pidsLimit !== undefined ? Number(f.pidsLimit) : null,
      SecurityOpt: f.securityOpt,
      Init: f.init ? true : null,
      LogConfig: { Type: f.logDriver ?? "json-file", Config: parseKeyVals(f.logOpt, "--log-opt") },
      ConsoleSize: f.tty && process.stdout.isTTY ? [process.stdout.rows, process.stdout.columns] : [0, 0],
      ...isolationHostConfig(f),
    },
    NetworkingConfig: net.networkingConfig,
  };
}

async function createContainer(c: Client, body: Record<string, unknown>, name?: string, pullPolicy = "missing"): Promise<string> {
  if (!["missing", "always", "never"].includes(pullPolicy)) {
    throw new BerthError(`invalid pull option: '${pullPolicy}': must be one of "always", "missing" or "never"`);
  }
  const path = `/containers/create${query({ name })}`;
  const image = String(body.Image);
  // docker's progress on a terminal; otherwise only the outcome (an error is one line).
  const progress = process.stderr.isTTY ? process.stderr : { write: () => true } as unknown as NodeJS.WritableStream;
  if (pullPolicy === "always") await pull(c, image, progress);
  try {
    return (await c.json<{ Id: string }>("POST", path, body)).Id;
  } catch (err) {
    if (pullPolicy !== "missing" || !(err instanceof ApiError) || err.status !== 404 || !/No such image/.test(err.message)) throw err;
    progress.write(`Unable to find image '${image}' locally\n`);
    await pull(c, image, progress);
    return (await c.json<{ Id: string }>("POST", path, body)).Id;
  }
}

async function pull(c: Client, image: string, sink: NodeJS.WritableStream): Promise<void> {
  const res = await c.stream("POST", `/images/create${query({ fromImage: image })}`);
  let text = "";
  for await (const chunk of res) text += (chunk as Buffer).toString();
  for (const line of text.split("\n").filter(Boolean)) {
    const m = JSON.parse(line) as { status?: string; error?: string };
    if (m.error) throw new BerthError(m.error);
    if (m.status) sink.write(`${m.status}\n`);
  }
}

/** Copies a container's output to ours (demultiplexed without a tty); resolves at its end. */
function pipeOutput(socket: Socket, tty: boolean): Promise<void> {
  return new Promise((resolve) => {
    if (tty) socket.on("data", (c: Buffer) => process.stdout.write(c));
    else {
      const d = new Demuxer((stream, payload) => (stream === 2 ? process.stderr : process.stdout).write(payload));
      socket.on("data", (c: Buffer) => d.push(c));
    }
    socket.on("end", () => resolve());
    socket.on("close", () => resolve());
    socket.on("error", () => resolve());
  });
}

/** docker's `--detach-keys` check, before anything is created. */
/**
 * A terminal for the container needs one on our side when our stdin is attached: docker's CLI refuses
 * `run -it`, `exec -it` and `attach` to a tty container from a pipe, before anything is created, and
 * exits 1. Returns whether it refused (the message is written).
 */
function refuseNonTerminalStdin(stdinAttached: boolean, tty: boolean): boolean {
  if (!stdinAttached || !tty || process.stdin.isTTY) return false;
  process.stderr.write("berth: the input device is not a TTY\n");
  return true;
}

function checkDetachKeys(keys: string | undefined): void {
  if (keys === undefined) return;
  try {
    detachKeyBytes(keys || DEFAULT_DETACH_KEYS);
  } catch {
    throw new BerthError(`Invalid detach keys (${keys}) provided`);
  }
}

/**
 * Copies our stdin to the hijacked stream. With a tty, the detach keys (as docker's CLI, on this side)
 * stop the copy and call `onDetach`; the bytes before them are sent, the keys are not.
 */
function pipeStdin(socket: Socket, rawTty: boolean, detach?: { keys?: string; onDetach: () => void }): () => void {
  const stdin = process.stdin;
  if (rawTty && stdin.isTTY) stdin.setRawMode(true);
  const scanner = rawTty && detach ? new DetachScanner(detachKeyBytes(detach.keys || DEFAULT_DETACH_KEYS)) : undefined;
  let detached = false;
  const onData = (c: Buffer) => {
    if (detached) return;
    const r = scanner ? scanner.push(c) : { data: c, detached: false };
    if (r.data.length > 0) socket.write(r.data);
    if (r.detached) {
      detached = true;
      detach?.onDetach();
    }
  };
  const onEnd = () => { if (!detached) socket.end(); };
  stdin.on("data", onData);
  stdin.on("end", onEnd);
  return () => {
    stdin.off("data", onData);
    stdin.off("end", onEnd);
    if (rawTty && stdin.isTTY) stdin.setRawMode(false);
    stdin.pause();
  };
}

/** Attaches, starts, streams and waits: `berth run` in the foreground and `berth start -a`. */
async function attachAndWait(c: Client, id: string, o: { tty: boolean; stdin: boolean; start: boolean; autoRemove: boolean; memory?: number; detachKeys?: string; onDetach?: () => number }): Promise<number> {
  const socket = await c.hijack(`/containers/${id}/attach${query({ stream: true, stdin: o.stdin, stdout: true, stderr: true, detachKeys: o.detachKeys || undefined })}`);
  const waitAbort = new AbortController();
  const waitRes = c.json<{ StatusCode: number; OOMKilled?: boolean }>("POST", `/containers/${id}/wait${query({ condition: o.start ? "next-exit" : "not-running" })}`, undefined, waitAbort.signal);
  waitRes.catch(() => undefined);
  const output = pipeOutput(socket, o.tty);
  // The detach keys end the attach; the container keeps running.
  let detached = (): void => {};
  const detachedByKeys = new Promise<"detached">((resolve) => { detached = () => resolve("detached"); });
  const stopStdin = o.stdin ? pipeStdin(socket, o.tty, { keys: o.detachKeys, onDetach: () => detached() }) : () => {};
  const resize = () => {
    if (o.tty && process.stdout.isTTY) void c.request("POST", `/containers/${id}/resize${query({ h: process.stdout.rows, w: process.stdout.columns })}`).catch(() => undefined);
  };
  const forward = (sig: NodeJS.Signals) => () => { void c.request("POST", `/containers/${id}/kill${query({ signal: sig })}`).catch(() => undefined); };
  // With -t too, as docker's CLI (28) and the in-process path do: a SIGTERM to `berth run -t` ended the
  // CLI with 143 and left the container running (even with --rm). A terminal's own ctrl-c under -it is a
  // byte on stdin in raw mode, not a signal here, so nothing is sent twice.
  const sigs: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"];
  const handlers = sigs.map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  process.on("SIGWINCH", resize);
  try {
    if (o.start) {
      try {
        await c.request("POST", `/containers/${id}/start`);
      } catch (err) {
        socket.destroy();
        // docker's mapping: a command that isn't there is 127, one that can't be executed 126.
        const msg = (err as Error).message;
        let code = /executable file not found|no such file or directory/.test(msg) ? 127 : /permission denied|not executable|exec format error/.test(msg) ? 126 : 125;
        try {
          const info = await c.json<{ State: { ExitCode: number } }>("GET", `/containers/${id}/json`);
          if (info.State.ExitCode === 126 || info.State.ExitCode === 127) code = info.State.ExitCode;
          if (o.autoRemove) await c.request("DELETE", `/containers/${id}${query({ force: true })}`).catch(() => undefined);
        } catch { /* gone */ }
        process.stderr.write(`berth: ${(err as Error).message}\n`);
        return code;
      }
      resize();
    }
    const result = await Promise.race([waitRes, detachedByKeys]);
    if (result === "detached") {
      waitAbort.abort(); // the container runs on: stop waiting for it
      return o.onDetach ? o.onDetach() : 0;
    }
    // The rest of the output (the stream ends right after the exit); never wait long for it.
    await Promise.race([output, new Promise((r) => setTimeout(r, 2000).unref())]);
    if (result.OOMKilled) {
      // As `berth run` always did: the OOM killer struck in the container, so 137 and a line.
      process.stderr.write(`berth: container ${id.slice(0, 12)} was killed: out of memory${o.memory ? ` (limit ${o.memory} bytes)` : ""}\n`);
      return 137;
    }
    return result.StatusCode;
  } finally {
    waitAbort.abort(); // a start that failed leaves the wait pending: it would keep the CLI alive
    stopStdin();
    for (const [s, h] of handlers) process.off(s, h);
    process.off("SIGWINCH", resize);
    socket.destroy();
  }
}

/** `berth run` through the daemon. */
export async function engineRun(c: Client, args: string[], f: EngineRunFlags): Promise<number> {
  const [image, ...command] = args;
  if (!image) throw new BerthError("no image given: use `berth run host CMD` (the built-in image)");
  if (f.detach && f.rm && f.restart && f.restart !== "no") throw new BerthError("conflicting options: cannot specify both --restart and --rm");
  // As docker's: the container stays after it ends (ps -a, logs, start) unless --rm was given.
  checkDetachKeys(f.detachKeys);
  const body = createBody(image, command, f);
  const id = await createContainer(c, body, f.name, f.pull);
  if (f.detach) {
    await c.request("POST", `/containers/${id}/start`);
    out(`${id}\n`);
    return 0;
  }
  const memory = (body.HostConfig as { Memory?: number }).Memory || undefined;
  return attachAndWait(c, id, { tty: Boolean(f.tty), stdin: Boolean(f.interactive), start: true, autoRemove: Boolean(body.HostConfig && (body.HostConfig as { AutoRemove?: boolean }).AutoRemove), memory, detachKeys: f.detachKeys });
}

export function addEngineRunOptions(cmd: Command): Command {
  return cmd
    .option("-d, --detach", "run the container in the background and print its ID")
    .option("--pull <policy>", "pull the image before creating: missing (default), always, never")
    .option("--restart <policy>", "restart policy: no, on-failure[:max-retries], always, unless-stopped")
    .option("--health-cmd <command>", "command to run to check health")
    .option("--health-interval <duration>", "time between health checks (e.g. 30s)")
    .option("--health-timeout <duration>", "maximum time a check may run")
    .option("--health-retries <n>", "consecutive failures needed to report unhealthy")
    .option("--health-start-period <duration>", "start period during which failures don't count")
    .option("--no-healthcheck", "disable any container-specified HEALTHCHECK")
    .option("--mount <spec>", "attach a filesystem mount (type=bind|volume|tmpfs,source=,target=,readonly)", collect, [])
    .option("--tmpfs <path[:options]>", "mount a tmpfs", collect, [])
    .option("-l, --label <key=value>", "set a label", collect, [])
    .option("--init", "run an init (tini) as PID 1 that forwards signals and reaps processes")
    .option("--stop-signal <signal>", "signal to stop the container")
    .option("--stop-timeout <seconds>", "timeout before the stop signal is followed by SIGKILL")
    .option("--log-opt <key=value>", "log driver options (max-size, max-file)", collect, [])
    .option("--log-driver <driver>", "logging driver: json-file or none")
    .option("--detach-keys <keys>", "key sequence that detaches from the container (default ctrl-p,ctrl-q)");
}

function parseIntArg(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) throw new BerthError(`invalid value "${v}" for ${flag}: expected a whole number`);
  return Number(v);
}

async function each(ids: string[], fn: (id: string) => Promise<void>): Promise<number> {
  let code = 0;
  for (const id of ids) {
    try {
      await fn(id);
      out(`${id}\n`);
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n`);
      code = 1;
    }
  }
  return code;
}

interface StatsJson {
  cpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; limit?: number };
  pids_stats?: { current?: number };
  networks?: Record<string, { rx_bytes?: number; tx_bytes?: number }>;
  blkio_stats?: { io_service_bytes_recursive?: BlkioEntry[] | null };
}

/** docker's units.HumanSizeWithPrecision(n, 3): decimal units, three significant digits (Go's %.3g). */
export function humanSizeDecimal(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${Number(v.toPrecision(3))}${units[i]}`;
}

function describeStats(s: StatsJson, name: string, id: string): string[] {
  const cpuDelta = (s.cpu_stats?.cpu_usage?.total_usage ?? 0) - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
  const sysDelta = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
  const cpu = sysDelta > 0 ? (cpuDelta / sysDelta) * (s.cpu_stats?.online_cpus ?? 1) * 100 : 0;
  const usage = s.memory_stats?.usage ?? 0;
  const limit = s.memory_stats?.limit ?? 0;
  const iec = (b: number) => {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = b;
    let i = 0;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return `${Number(v.toFixed(2))}${u[i]}`;
  };
  const nets = Object.values(s.networks ?? {});
  const rx = nets.reduce((a, n) => a + (n.rx_bytes ?? 0), 0);
  const tx = nets.reduce((a, n) => a + (n.tx_bytes ?? 0), 0);
  const io = blkioTotals(s.blkio_stats?.io_service_bytes_recursive);
  return [id.slice(0, 12), name.replace(/^\//, ""), `${cpu.toFixed(2)}%`, `${iec(usage)} / ${iec(limit)}`, `${limit ? ((usage / limit) * 100).toFixed(2) : "0.00"}%`,
    `${humanSizeDecimal(rx)} / ${humanSizeDecimal(tx)}`, `${humanSizeDecimal(io.read)} / ${humanSizeDecimal(io.write)}`, String(s.pids_stats?.current ?? 0)];
}

/**
 * An event's time as docker's CLI prints it (RFC 3339, nine fraction digits, UTC). From the digits of
 * "timeNano" in the raw line, as a bigint: a double near 1.7e18 is 256 ns coarse, and `% 1e6` on it
 * printed ".049999936" for .050 (and a later event before an earlier one).
 */
export function eventTime(line: string, fallback: number): string {
  const digits = /"timeNano":\s*(\d+)/.exec(line)?.[1];
  const nano = digits ? BigInt(digits) : BigInt(Math.round(fallback));
  const seconds = nano / 1_000_000_000n;
  const frac = (nano % 1_000_000_000n).toString().padStart(9, "0");
  return `${new Date(Number(seconds) * 1000).toISOString().slice(0, 19)}.${frac}Z`;
}

export function registerEngineCommands(program: Command, onExit: (code: number) => void): void {
  if (!program.options.some((o) => o.long === "--host")) {
    program.addOption(new Option("-H, --host <unix:///path>", "daemon socket to connect to").env("BERTH_HOST"));
  }

  // `berth run` goes through the daemon, networking included (-p, -P, user networks, container:, ...),
  // as docker's CLI does; the in-process path is for BERTH_NO_DAEMON=1 and for what only it supports
  // (--rootfs, user namespaces).
  const run = program.commands.find((x) => x.name() === "run");
  if (run) {
    const original = (run as unknown as { _actionHandler: (args: unknown[]) => Promise<void> })._actionHandler;
    addEngineRunOptions(run).action(async (args: string[], f: EngineRunFlags & { rootfs?: string; uidmap?: string[]; gidmap?: string[] }, cmd: Command) => {
      if (refuseNonTerminalStdin(Boolean(f.interactive) && !f.detach, Boolean(f.tty))) return onExit(1);
      const legacy = process.env.BERTH_NO_DAEMON === "1" || f.rootfs !== undefined || (f.uidmap?.length ?? 0) > 0 || (f.gidmap?.length ?? 0) > 0;
      if (process.getuid?.() !== 0) throw new BerthError("berth run must be run as root (it creates namespaces, mounts and cgroups)");
      if (legacy) {
        const engineOnly = f.detach || f.restart || f.healthCmd || f.mount.length || f.tmpfs.length || f.init || f.label.length || f.detachKeys !== undefined;
        if (engineOnly) throw new BerthError("-d, --restart, --health-*, --mount, --tmpfs, --init, -l and --detach-keys need the daemon; they can't be combined with --rootfs, --uidmap/--gidmap or BERTH_NO_DAEMON=1");
        return original.call(cmd, (cmd as unknown as { processedArgs: unknown[] }).processedArgs);
      }
      onExit(await engineRun(client(cmd), args, f));
    });
  }

  program
    .command("daemon")
    .description("Run the Berth engine: the Docker Engine API on a Unix socket")
    .option("-H, --host <unix:///path>", "socket to listen on (repeatable; default unix:///run/berth/berth.sock)", collect, [])
    .addOption(new Option("--data-root <dir>", "durable state: containers, volumes, images").default("/var/lib/berth"))
    .addOption(new Option("--exec-root <dir>", "runtime state: sockets, fifos, pid file").default("/run/berth"))
    .option("-p, --pidfile <file>", "pid file (default <exec-root>/berth.pid)")
    .action(async (flags: { host: string[]; dataRoot: string; execRoot: string; pidfile?: string }) => {
      const d = await runDaemon({ hosts: flags.host, dataRoot: flags.dataRoot, execRoot: flags.execRoot, pidFile: flags.pidfile });
      await new Promise<void>((resolve) => {
        const stop = () => { void d.stop().then(resolve); };
        process.once("SIGTERM", stop);
        process.once("SIGINT", stop);
      });
      onExit(0);
      process.exit(0);
    });

  const containerCmds = (parent: Command) => {
    const create = sub(parent, "create")
      .description("Create a new container")
      .argument("<image>")
      .argument("[command...]")
      .passThroughOptions();
    addRunNetworkOptions(addContainerOptions(create)
      .addOption(new Option("--network <mode>", "network: bridge, none, host, a network name or container:NAME").default("default", "bridge")));
    addEngineRunOptions(create).action(async (image: string, command: string[], f: EngineRunFlags, cmd: Command) => {
      const c = client(cmd);
      out(`${await createContainer(c, createBody(image, command, f), f.name, f.pull)}\n`);
    });

    sub(parent, "start").description("Start one or more stopped containers").argument("<containers...>")
      .option("-a, --attach", "attach stdout/stderr and forward signals")
      .option("-i, --interactive", "attach stdin")
      .option("--detach-keys <keys>", "key sequence that detaches from the container (default ctrl-p,ctrl-q)")
      .action(async (ids: string[], f: { attach?: boolean; interactive?: boolean; detachKeys?: string }, cmd: Command) => {
        const c = client(cmd);
        checkDetachKeys(f.detachKeys);
        if (f.attach || f.interactive) {
          const info = await c.json<{ Id: string; Config: { Tty: boolean }; HostConfig: { AutoRemove: boolean } }>("GET", `/containers/${enc(ids[0])}/json`);
          onExit(await attachAndWait(c, info.Id, { tty: info.Config.Tty, stdin: Boolean(f.interactive), start: true, autoRemove: info.HostConfig.AutoRemove, detachKeys: f.detachKeys }));
          return;
        }
        onExit(await each(ids, async (id) => { await c.request("POST", `/containers/${enc(id)}/start`).catch((e: ApiError) => { if (e.status !== 304) throw e; }); }));
      });

    sub(parent, "stop").description("Stop one or more running containers").argument("<containers...>")
      .option("-t, --time <seconds>", "seconds to wait before killing").option("-s, --signal <signal>", "signal to send")
      .action(async (ids: string[], f: { time?: string; signal?: string }, cmd: Command) => {
        const c = client(cmd);
        const t = parseIntArg(f.time, "--time");
        onExit(await each(ids, async (id) => { await c.request("POST", `/containers/${enc(id)}/stop${query({ t, signal: f.signal })}`).catch((e: ApiError) => { if (e.status !== 304) throw e; }); }));
      });

    sub(parent, "restart").description("Restart one or more containers").argument("<containers...>")
      .option("-t, --time <seconds>", "seconds to wait before killing")
      .action(async (ids: string[], f: { time?: string }, cmd: Command) => {
        const c = client(cmd);
        onExit(await each(ids, async (id) => { await c.request("POST", `/containers/${enc(id)}/restart${query({ t: parseIntArg(f.time, "--time") })}`); }));
      });

    sub(parent, "kill").description("Kill one or more running containers").argument("<containers...>")
      .option("-s, --signal <signal>", "signal to send", "KILL")
      .action(async (ids: string[], f: { signal: string }, cmd: Command) => {
        const c = client(cmd);
        onExit(await each(ids, async (id) => { await c.request("POST", `/containers/${enc(id)}/kill${query({ signal: f.signal })}`); }));
      });

    sub(parent, "rm").description("Remove one or more containers").argument("<containers...>")
      .option("-f, --force", "force the removal of a running container").option("-v, --volumes", "remove anonymous volumes")
      .action(async (ids: string[], f: { force?: boolean; volumes?: boolean }, cmd: Command) => {
        const c = client(cmd);
        onExit(await each(ids, async (id) => { await c.request("DELETE", `/containers/${enc(id)}${query({ force: f.force, v: f.volumes })}`); }));
      });

    sub(parent, "ps").alias("ls").description("List containers")
      .option("-a, --all", "show all containers").option("-q, --quiet", "only IDs").option("-f, --filter <filter>", "filter (key=value)", collect, [])
      .option("--format <template>", "format with a Go template").option("--no-trunc", "don't truncate").option("-s, --size", "show sizes")
      .option("-n, --last <n>", "show n last created containers").option("-l, --latest", "show the latest created container")
      .action(async (f: { all?: boolean; quiet?: boolean; filter: string[]; format?: string; trunc: boolean; size?: boolean; last?: string; latest?: boolean }, cmd: Command) => {
        const c = client(cmd);
        const filters: Record<string, string[]> = {};
        for (const x of f.filter) {
          const eq = x.indexOf("=");
          if (eq <= 0) throw new BerthError(`bad format of filter (expected name=value): ${x}`);
          (filters[x.slice(0, eq)] ??= []).push(x.slice(eq + 1));
        }
        const limit = f.latest ? 1 : parseIntArg(f.last, "--last");
        const list = await c.json<Record<string, unknown>[]>("GET", `/containers/json${query({ all: f.all || limit !== undefined, size: f.size, limit, filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined })}`);
        const rows = list.map((x) => psRow(x, { noTrunc: !f.trunc }));
        if (f.quiet) return void out(rows.map((r) => `${r.ID}\n`).join(""));
        const format = f.format === "table" ? PS_DEFAULT : f.format ?? (f.size ? `${PS_DEFAULT}\t{{.Size}}` : PS_DEFAULT);
        out(formatRows(format, rows, PS_HEADERS));
      });

    sub(parent, "logs").description("Fetch the logs of a container").argument("<container>")
      .option("-f, --follow", "follow log output").option("-t, --timestamps", "show timestamps")
      .option("--since <time>", "logs since a timestamp or relative (e.g. 42m)").option("--until <time>", "logs before a timestamp or relative")
      .option("-n, --tail <n>", "lines from the end", "all").option("--details", "show extra details")
      .action(async (ref: string, f: { follow?: boolean; timestamps?: boolean; since?: string; until?: string; tail: string }, cmd: Command) => {
        const c = client(cmd);
        const info = await c.json<{ Config: { Tty: boolean } }>("GET", `/containers/${enc(ref)}/json`);
        const res = await c.stream("GET", `/containers/${enc(ref)}/logs${query({ stdout: true, stderr: true, follow: f.follow, timestamps: f.timestamps, since: f.since, until: f.until, tail: f.tail })}`);
        const d = new Demuxer((s, p) => (s === 2 ? process.stderr : process.stdout).write(p));
        for await (const chunk of res) {
          if (info.Config.Tty) process.stdout.write(chunk as Buffer);
          else d.push(chunk as Buffer);
        }
      });

    sub(parent, "attach").description("Attach to a running container").argument("<container>")
      .option("--no-stdin", "do not attach stdin")
      .option("--detach-keys <keys>", "key sequence that detaches from the container (default ctrl-p,ctrl-q)")
      .action(async (ref: string, f: { stdin: boolean; detachKeys?: string }, cmd: Command) => {
        const c = client(cmd);
        checkDetachKeys(f.detachKeys);
        const info = await c.json<{ Id: string; Config: { Tty: boolean; OpenStdin: boolean }; State: { Running: boolean } }>("GET", `/containers/${enc(ref)}/json`);
        if (!info.State.Running) throw new BerthError("You cannot attach to a stopped container, start it first");
        if (refuseNonTerminalStdin(f.stdin, info.Config.Tty)) return onExit(1);
        // As docker's CLI: detaching from `attach` says so and exits 1 (from run/start it exits 0).
        const onDetach = () => { process.stderr.write("read escape sequence\n"); return 1; };
        onExit(await attachAndWait(c, info.Id, { tty: info.Config.Tty, stdin: f.stdin && info.Config.OpenStdin, start: false, autoRemove: false, detachKeys: f.detachKeys, onDetach }));
      });

    sub(parent, "exec").description("Execute a command in a running container").argument("<container>").argument("<command...>")
      .passThroughOptions()
      .option("-i, --interactive", "keep stdin open").option("-t, --tty", "allocate a pseudo-TTY").option("-d, --detach", "run in the background")
      .option("-e, --env <KEY=VALUE>", "environment variable", collect, []).option("--env-file <file>", "read environment variables from a file", collect, [])
      .option("-w, --workdir <dir>", "working directory")
      .option("-u, --user <user>", "user").option("--privileged", "extended privileges")
      .option("--detach-keys <keys>", "key sequence that detaches from the exec (default ctrl-p,ctrl-q)")
      .action(async (ref: string, command: string[], f: { interactive?: boolean; tty?: boolean; detach?: boolean; env: string[]; envFile: string[]; workdir?: string; user?: string; privileged?: boolean; detachKeys?: string }, cmd: Command) => {
        const c = client(cmd);
        const tty = Boolean(f.tty);
        checkDetachKeys(f.detachKeys);
        if (refuseNonTerminalStdin(Boolean(f.interactive) && !f.detach, tty)) return onExit(1);
        const { Id } = await c.json<{ Id: string }>("POST", `/containers/${enc(ref)}/exec`, {
          AttachStdin: Boolean(f.interactive) && !f.detach, AttachStdout: !f.detach, AttachStderr: !f.detach, Tty: tty, Cmd: command, DetachKeys: f.detachKeys,
          Env: environment(f.envFile, f.env), WorkingDir: f.workdir ?? "", User: f.user ?? "", Privileged: Boolean(f.privileged),
          ConsoleSize: tty && process.stdout.isTTY ? [process.stdout.rows, process.stdout.columns] : undefined,
        });
        if (f.detach) {
          await c.request("POST", `/exec/${Id}/start`, { Detach: true, Tty: tty });
          return;
        }
        let socket: Socket;
        try {
          socket = await c.hijack(`/exec/${Id}/start`, { Detach: false, Tty: tty });
        } catch (err) {
          // No stream at all (no such exec, the daemon refused): as docker's CLI, 1. An exec that fails to
          // start is not this: the daemon says why on the stream and its inspect has 126.
          process.stderr.write(`${(err as Error).message}\n`);
          return onExit(1);
        }
        const output = pipeOutput(socket, tty);
        let detached = false;
        let onDetach = () => {};
        const detachedByKeys = new Promise<void>((resolve) => { onDetach = resolve; });
        const stop = f.interactive ? pipeStdin(socket, tty, { keys: f.detachKeys, onDetach: () => { detached = true; onDetach(); } }) : () => {};
        await Promise.race([output, detachedByKeys]);
        stop();
        if (detached) {
          // As docker's CLI: the exec keeps running; this says so and exits 1.
          socket.destroy();
          process.stderr.write("read escape sequence\n");
          return onExit(1);
        }
        const info = await c.json<{ ExitCode: number | null }>("GET", `/exec/${Id}/json`);
        onExit(info.ExitCode ?? 0);
      });

    sub(parent, "inspect").description("Display detailed information on containers").argument("<containers...>")
      .option("-f, --format <template>", "format with a Go template").option("-s, --size", "show sizes")
      .option("--type <type>", "only this type of object: container, image, network or volume")
      .action(async (ids: string[], f: { format?: string; size?: boolean; type?: string }, cmd: Command) => {
        const c = client(cmd);
        const containerOnly = cmd.parent?.name() === "container";
        // `inspect` looks for a container, then an image, a network, a volume, as docker's; `container inspect` and --type one kind.
        const lookups: Record<string, (id: string) => string> = {
          container: (id) => `/containers/${enc(id)}/json${query({ size: f.size })}`,
          image: (id) => `/images/${enc(id)}/json`,
          network: (id) => `/networks/${enc(id)}`,
          volume: (id) => `/volumes/${enc(id)}`,
        };
        if (f.type !== undefined && !(f.type in lookups)) throw new BerthError(`unknown type: "${f.type}": must be one of "container", "image", "network", "volume"`, { exitCode: 1 });
        const kinds = containerOnly ? ["container"] : f.type ? [f.type] : Object.keys(lookups);
        const found: unknown[] = [];
        let code = 0;
        for (const id of ids) {
          let missing = true;
          let notFound = "";
          for (const kind of kinds) {
            try {
              found.push(await c.json("GET", lookups[kind](id)));
              missing = false;
              break;
            } catch (err) {
              if (err instanceof ApiError && err.status === 404) { notFound = err.message; continue; }
              process.stderr.write(`${(err as Error).message}\n`);
              missing = false;
              code = 1;
              break;
            }
          }
          if (missing) {
            // One kind asked for: the daemon's own words (docker's CLI passes them on); all kinds: docker's summary.
            process.stderr.write(kinds.length === 1 ? `${notFound}\n` : `Error: No such object: ${id}\n`);
            code = 1;
          }
        }
        if (f.format) out(found.map((x) => `${renderTemplate(f.format as string, x)}\n`).join(""));
        else out(`${JSON.stringify(found, null, 4)}\n`);
        onExit(code);
      });

    sub(parent, "wait").description("Block until containers stop, then print their exit codes").argument("<containers...>")
      .action(async (ids: string[], _f: unknown, cmd: Command) => {
        const c = client(cmd);
        let code = 0;
        for (const id of ids) {
          try { out(`${(await c.json<{ StatusCode: number }>("POST", `/containers/${enc(id)}/wait`)).StatusCode}\n`); } catch (err) { process.stderr.write(`${(err as Error).message}\n`); code = 1; }
        }
        onExit(code);
      });

    sub(parent, "top").description("Display the running processes of a container").argument("<container>").argument("[ps-options...]")
      .action(async (ref: string, psArgs: string[], _f: unknown, cmd: Command) => {
        const c = client(cmd);
        const t = await c.json<{ Titles: string[]; Processes: string[][] }>("GET", `/containers/${enc(ref)}/top${query({ ps_args: psArgs.length ? psArgs.join(" ") : undefined })}`);
        out(tabulate([t.Titles, ...t.Processes]));
      });

    sub(parent, "stats").description("Display resource usage statistics").argument("[containers...]")
      .option("--no-stream", "print one result and exit").option("-a, --all", "all containers")
      .action(async (ids: string[], f: { stream: boolean; all?: boolean }, cmd: Command) => {
        const c = client(cmd);
        let targets = ids;
        if (targets.length === 0) targets = (await c.json<{ Id: string }[]>("GET", `/containers/json${query({ all: f.all })}`)).map((x) => x.Id);
        const header = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"];
        for (;;) {
          const rows: string[][] = [];
          await Promise.all(targets.map(async (id) => {
            const s = await c.json<StatsJson & { name: string; id: string }>("GET", `/containers/${enc(id)}/stats${query({ stream: false })}`);
            rows.push(describeStats(s, s.name, s.id));
          }));
          if (f.stream && process.stdout.isTTY) out("\x1b[2J\x1b[H");
          out(tabulate([header, ...rows]));
          if (!f.stream) return;
        }
      });

    sub(parent, "cp").description("Copy files between a container and the local filesystem").argument("<src>").argument("<dest>")
      .action(async (src: string, dest: string, _f: unknown, cmd: Command) => {
        const c = client(cmd);
        const split = (s: string) => { const m = /^([^/:][^:]*):(.*)$/.exec(s); return m ? { ctr: m[1], path: m[2] } : undefined; };
        const from = split(src);
        const to = split(dest);
        if (from && to) throw new BerthError("copying between containers is not supported");
        if (!from && !to) throw new BerthError("must specify at least one container source");
        if (from) {
          const res = await c.stream("GET", `/containers/${enc(from.ctr)}/archive${query({ path: from.path })}`);
          const destDir = existsSync(dest) && statSync(dest).isDirectory() ? dest : dirname(resolvePath(dest));
          const rename = existsSync(dest) && statSync(dest).isDirectory() ? undefined : basename(dest);
          const srcBase = basename(from.path) || ".";
          const args = ["-x", "-C", destDir];
          if (rename && srcBase !== rename) args.push(`--transform=s,^${srcBase.replace(/[.[\]*^$\\]/g, "\\$&")},${rename},`);
          const tar = spawn("tar", args, { stdio: ["pipe", "inherit", "inherit"] });
          res.pipe(tar.stdin);
          const code = await new Promise<number>((r) => tar.on("close", (x) => r(x ?? 1)));
          if (code !== 0) throw new BerthError(`cannot extract into ${dest}`);
        } else if (to) {
          const abs = resolvePath(src);
          if (!existsSync(abs)) throw new BerthError(`no such file or directory: ${src}`);
          let target = to.path;
          let base = basename(abs);
          // "ctr:/dir" extracts into the dir; "ctr:/dir/newname" (a missing path) renames.
          const head = await c.request("HEAD", `/containers/${enc(to.ctr)}/archive${query({ path: target })}`).catch(() => undefined);
          if (!head) { base = basename(target); target = dirname(target); }
          const tar = spawn("tar", ["-c", "-C", dirname(abs), `--transform=s,^${basename(abs).replace(/[.[\]*^$\\]/g, "\\$&")},${base},`, basename(abs)], { stdio: ["ignore", "pipe", "inherit"] });
          const res = await c.stream("PUT", `/containers/${enc(to.ctr)}/archive${query({ path: target })}`, tar.stdout, { "Content-Type": "application/x-tar" });
          res.resume();
        }
      });

    sub(parent, "rename").description("Rename a container").argument("<container>").argument("<new-name>")
      .action(async (ref: string, name: string, _f: unknown, cmd: Command) => { await client(cmd).request("POST", `/containers/${enc(ref)}/rename${query({ name })}`); });

    sub(parent, "pause").description("Pause all processes within containers").argument("<containers...>")
      .action(async (ids: string[], _f: unknown, cmd: Command) => { const c = client(cmd); onExit(await each(ids, async (id) => { await c.request("POST", `/containers/${enc(id)}/pause`); })); });
    sub(parent, "unpause").description("Unpause all processes within containers").argument("<containers...>")
      .action(async (ids: string[], _f: unknown, cmd: Command) => { const c = client(cmd); onExit(await each(ids, async (id) => { await c.request("POST", `/containers/${enc(id)}/unpause`); })); });

    sub(parent, "port").description("List port mappings for a container").argument("<container>")
      .action(async (ref: string, _f: unknown, cmd: Command) => {
        const info = await client(cmd).json<{ NetworkSettings: { Ports?: Record<string, { HostIp: string; HostPort: string }[] | null> } }>("GET", `/containers/${enc(ref)}/json`);
        for (const [port, binds] of Object.entries(info.NetworkSettings.Ports ?? {})) for (const b of binds ?? []) out(`${port} -> ${b.HostIp}:${b.HostPort}\n`);
      });

    sub(parent, "export").description("Export a container's filesystem as a tar archive").argument("<container>")
      .option("-o, --output <file>", "write to a file instead of stdout")
      .action(async (ref: string, f: { output?: string }, cmd: Command) => {
        const res = await client(cmd).stream("GET", `/containers/${enc(ref)}/export`);
        const sink = f.output ? createWriteStream(f.output) : process.stdout;
        await new Promise<void>((r) => { res.pipe(sink); res.on("end", () => r()); });
      });

    sub(parent, "diff").description("Inspect changes to files on a container's filesystem").argument("<container>")
      .action(async (ref: string, _f: unknown, cmd: Command) => {
        const changes = await client(cmd).json<{ Path: string; Kind: number }[]>("GET", `/containers/${enc(ref)}/changes`);
        out(changes.map((x) => `${"CAD"[x.Kind]} ${x.Path}\n`).join(""));
      });

    sub(parent, "commit").description("Create a new image from a container's changes").argument("<container>").argument("[repository]")
      .option("-a, --author <string>", 'author (e.g. "John Hannibal Smith <hannibal@a-team.com>")')
      .option("-c, --change <instruction>", "apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)", collect, [])
      .option("-m, --message <string>", "commit message")
      .addOption(new Option("-p, --pause [bool]", "pause the container during commit").default(true).argParser(parseBoolFlag))
      .action(async (ref: string, repoTag: string | undefined, f: { author?: string; change: string[]; message?: string; pause: boolean }, cmd: Command) => {
        // docker splits REPOSITORY[:TAG] itself and sends both (a registry port's colon is not a tag).
        const colon = repoTag ? repoTag.lastIndexOf(":") : -1;
        const [repo, tag] = repoTag && colon > repoTag.lastIndexOf("/") ? [repoTag.slice(0, colon), repoTag.slice(colon + 1)] : [repoTag, undefined];
        const r = await client(cmd).json<{ Id: string }>("POST", `/commit${query({ container: ref, repo, tag, comment: f.message, author: f.author, changes: f.change, pause: f.pause })}`);
        out(`${r.Id}\n`);
      });

    sub(parent, "update").description("Update configuration of one or more containers").argument("<containers...>")
      .option("-m, --memory <bytes>", "memory limit").option("--memory-swap <bytes>", "memory plus swap").option("--cpus <n>", "number of CPUs")
      .option("-c, --cpu-shares <n>", "CPU shares").option("--cpuset-cpus <list>", "CPUs").option("--pids-limit <n>", "process limit")
      .option("--restart <policy>", "restart policy")
      .action(async (ids: string[], f: { memory?: string; memorySwap?: string; cpus?: string; cpuShares?: string; cpusetCpus?: string; pidsLimit?: string; restart?: string }, cmd: Command) => {
        const c = client(cmd);
        const body: Record<string, unknown> = {};
        if (f.memory) body.Memory = parseSize(f.memory, "--memory");
        if (f.memorySwap) body.MemorySwap = parseMemorySwap(f.memorySwap, "--memory-swap");
        if (f.cpus) body.NanoCpus = Math.round(Number(f.cpus) * 1e9);
        if (f.cpuShares) body.CpuShares = Number(f.cpuShares);
        if (f.cpusetCpus) body.CpusetCpus = parseCpuset(f.cpusetCpus, "--cpuset-cpus");
        if (f.pidsLimit) body.PidsLimit = Number(f.pidsLimit);
        if (f.restart) {
          try { body.RestartPolicy = parseRestartPolicy(f.restart); } catch (err) { throw new BerthError((err as Error).message); }
        }
        onExit(await each(ids, async (id) => { await c.request("POST", `/containers/${enc(id)}/update`, body); }));
      });

    sub(parent, "prune").description("Remove all stopped containers").option("-f, --force", "do not prompt").option("--filter <filter>", "filter (label=, until=)", collect, [])
      .action(async (f: { filter: string[] }, cmd: Command) => {
        const filters: Record<string, string[]> = {};
        for (const x of f.filter) { const eq = x.indexOf("="); (filters[x.slice(0, eq)] ??= []).push(x.slice(eq + 1)); }
        const r = await client(cmd).json<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }>("POST", `/containers/prune${query({ filters: JSON.stringify(filters) })}`);
        if (r.ContainersDeleted?.length) out(`Deleted Containers:\n${r.ContainersDeleted.join("\n")}\n\n`);
        out(`Total reclaimed space: ${r.SpaceReclaimed}B\n`);
      });
  };

  // Top-level (docker run-style) commands and the same under `berth container`.
  const container = sub(program, "container").description("Manage containers");
  // Listed only: main() turns `container run` into `run` before parsing (see containerRunAlias).
  sub(container, "run").description("Run a command in a new container").usage("[OPTIONS] IMAGE [COMMAND] [ARG...]");
  containerCmds(container);
  containerCmds(program);
  // `berth prune` makes no sense at the top level (docker has `container prune` and `system prune`).
  const topPrune = program.commands.find((x) => x.name() === "prune");
  if (topPrune) (program as unknown as { commands: Command[] }).commands.splice(program.commands.indexOf(topPrune), 1);
  const topLs = program.commands.find((x) => x.name() === "ps");
  if (topLs) (topLs as unknown as { _aliases: string[] })._aliases = [];

  sub(program, "events").description("Get real time events from the server")
    .option("--since <time>", "events since").option("--until <time>", "events until").option("-f, --filter <filter>", "filter", collect, [])
    .option("--format <template>", "format with a Go template")
    .action(async (f: { since?: string; until?: string; filter: string[]; format?: string }, cmd: Command) => {
      const filters: Record<string, string[]> = {};
      for (const x of f.filter) { const eq = x.indexOf("="); (filters[x.slice(0, eq)] ??= []).push(x.slice(eq + 1)); }
      const res = await client(cmd).stream("GET", `/events${query({ since: f.since, until: f.until, filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined })}`);
      let buf = "";
      for await (const chunk of res) {
        buf += (chunk as Buffer).toString();
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const e = JSON.parse(line) as { Type: string; Action: string; Actor: { ID: string; Attributes: Record<string, string> }; timeNano: number };
          if (f.format) { out(`${renderTemplate(f.format, e)}\n`); continue; }
          const when = eventTime(line, e.timeNano);
          const attrs = Object.entries(e.Actor.Attributes).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(", ");
          out(`${when} ${e.Type} ${e.Action} ${e.Actor.ID}${attrs ? ` (${attrs})` : ""}\n`);
        }
      }
    });

  const info = async (cmd: Command, format?: string) => {
    const i = await client(cmd).json<Record<string, unknown>>("GET", "/info");
    if (format) return void out(`${renderTemplate(format, i)}\n`);
    out(`Server:\n Containers: ${i.Containers}\n  Running: ${i.ContainersRunning}\n  Paused: ${i.ContainersPaused}\n  Stopped: ${i.ContainersStopped}\n Images: ${i.Images}\n Server Version: ${i.ServerVersion}\n Storage Driver: ${i.Driver}\n Logging Driver: ${i.LoggingDriver}\n Cgroup Driver: ${i.CgroupDriver}\n Cgroup Version: ${i.CgroupVersion}\n Runtimes: berth\n Default Runtime: ${i.DefaultRuntime}\n Init Binary: ${i.InitBinary}\n Kernel Version: ${i.KernelVersion}\n Operating System: ${i.OperatingSystem}\n OSType: ${i.OSType}\n Architecture: ${i.Architecture}\n CPUs: ${i.NCPU}\n Total Memory: ${(Number(i.MemTotal) / 1024 ** 3).toFixed(2)}GiB\n Name: ${i.Name}\n Docker Root Dir: ${i.DockerRootDir}\n Live Restore Enabled: ${i.LiveRestoreEnabled}\n`);
  };
  sub(program, "info").description("Display system-wide information").option("-f, --format <template>", "format").action(async (f: { format?: string }, cmd: Command) => info(cmd, f.format));
  const system = program.commands.find((x) => x.name() === "system") ?? program.command("system").description("Manage Berth");
  system.command("info").description("Display system-wide information").option("-f, --format <template>", "format").action(async (f: { format?: string }, cmd: Command) => info(cmd, f.format));
  system.command("events").description("Get real time events").action(() => { throw new BerthError("use `berth events`"); });

  sub(program, "version").description("Show the Berth version information").option("-f, --format <template>", "format")
    .action(async (f: { format?: string }, cmd: Command) => {
      const v = await client(cmd).json<Record<string, unknown>>("GET", "/version");
      if (f.format) return void out(`${renderTemplate(f.format, { Server: v, Client: { Version: v.Version, ApiVersion: v.ApiVersion } })}\n`);
      out(`Client:\n Version:           ${v.Version}\n API version:       ${v.ApiVersion}\n\nServer: Berth Engine\n Engine:\n  Version:          ${v.Version}\n  API version:      ${v.ApiVersion} (minimum version ${v.MinAPIVersion})\n  Node version:     ${v.GoVersion}\n  OS/Arch:          ${v.Os}/${v.Arch}\n`);
    });

  const volume = sub(program, "volume").description("Manage volumes");
  volume.command("create").argument("[name]").option("-l, --label <k=v>", "label", collect, []).option("-o, --opt <k=v>", "driver option", collect, []).option("-d, --driver <name>", "driver", "local")
    .action(async (name: string | undefined, f: { label: string[]; opt: string[]; driver: string }, cmd: Command) => {
      const v = await client(cmd).json<{ Name: string }>("POST", "/volumes/create", { Name: name ?? "", Driver: f.driver, Labels: parseLabels(f.label), DriverOpts: parseKeyVals(f.opt, "--opt") });
      out(`${v.Name}\n`);
    });
  volume.command("ls").alias("list").option("-q, --quiet", "only names").option("-f, --filter <filter>", "filter", collect, []).option("--format <template>", "format")
    .action(async (f: { quiet?: boolean; filter: string[]; format?: string }, cmd: Command) => {
      const filters: Record<string, string[]> = {};
      for (const x of f.filter) { const eq = x.indexOf("="); (filters[x.slice(0, eq)] ??= []).push(x.slice(eq + 1)); }
      const r = await client(cmd).json<{ Volumes: { Name: string; Driver: string }[] }>("GET", `/volumes${query({ filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined })}`);
      if (f.quiet) return void out(r.Volumes.map((v) => `${v.Name}\n`).join(""));
      out(formatRows(f.format ?? "table {{.Driver}}\t{{.Name}}", r.Volumes as unknown as Record<string, unknown>[], { Driver: "DRIVER", Name: "VOLUME NAME", Mountpoint: "MOUNTPOINT" }));
    });
  volume.command("inspect").argument("<names...>").option("-f, --format <template>", "format")
    .action(async (names: string[], f: { format?: string }, cmd: Command) => {
      const c = client(cmd);
      const vols = [];
      for (const n of names) vols.push(await c.json("GET", `/volumes/${enc(n)}`));
      out(f.format ? vols.map((v) => `${renderTemplate(f.format as string, v)}\n`).join("") : `${JSON.stringify(vols, null, 4)}\n`);
    });
  volume.command("rm").alias("remove").argument("<names...>").option("-f, --force", "force")
    .action(async (names: string[], f: { force?: boolean }, cmd: Command) => {
      const c = client(cmd);
      onExit(await each(names, async (n) => { await c.request("DELETE", `/volumes/${enc(n)}${query({ force: f.force })}`); }));
    });
  volume.command("prune").option("-f, --force", "do not prompt").option("-a, --all", "remove named volumes too")
    .action(async (f: { all?: boolean }, cmd: Command) => {
      const r = await client(cmd).json<{ VolumesDeleted: string[] | null; SpaceReclaimed: number }>("POST", `/volumes/prune${query({ filters: f.all ? JSON.stringify({ all: ["true"] }) : undefined })}`);
      if (r.VolumesDeleted?.length) out(`Deleted Volumes:\n${r.VolumesDeleted.join("\n")}\n\n`);
      out(`Total reclaimed space: ${r.SpaceReclaimed}B\n`);
    });

}
