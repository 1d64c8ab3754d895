// The Docker Engine API over HTTP on Unix sockets (node:http): routing, version negotiation, error
// bodies, streaming (logs, events, stats) and hijacked attach/exec streams.

import { spawn } from "node:child_process";
import { chmodSync, lstatSync, mkdirSync, rmSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { availableParallelism, hostname, release } from "node:os";
import { dirname, join, posix } from "node:path";
import type { Duplex } from "node:stream";
import { BerthError } from "../errors.js";
import type { CreateRequest, Engine } from "../daemon/engine.js";
import { hostMemory, runCapture } from "../daemon/engine.js";
import { resolveInRoot } from "../daemon/container-fs.js";
import { attachDetachKeys, DetachScanner, execDetachKeys } from "../daemon/detach-keys.js";
import { eventMatches } from "../daemon/events.js";
import { parseFilters } from "../daemon/filters.js";
import { badRequest, EngineError, notFound, parseTimeArg } from "../daemon/util.js";
import { volumeJson } from "../daemon/volumes.js";
import { handleImages } from "./images.js";
import { createNetwork, inspectNetwork, listNetworks, pruneNetworks, removeNetwork } from "../network/index.js";
import { API_VERSION, buildStamp, compareVersions, frame, MIN_API_VERSION, splitVersion } from "./stream.js";

const BUILD = buildStamp();
import { boolParam, intParam, parseJsonBody, validateCreateBody, validateExecBody, validateHostUpdate, validateVolumeBody } from "./validate.js";
import { VERSION } from "../version.js";

export const ENGINE_VERSION = VERSION;

export interface Ctx {
  engine: Engine;
  req: IncomingMessage;
  /** Set for normal requests. */
  res?: ServerResponse;
  /** Set for requests that asked to upgrade (hijack). */
  socket?: Duplex;
  head?: Buffer;
  path: string;
  query: URLSearchParams;
  version: string;
  params: string[];
}

type Handler = (ctx: Ctx) => Promise<void> | void;

interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
}

const routes: Route[] = [];
function route(method: string, path: string, handler: Handler) {
  const pattern = new RegExp(`^${path.replace(/\{[a-z]+\}/g, "([^/]+)").replace("{name*}", "(.+)")}$`);
  routes.push({ method, pattern, handler });
}

// ---- response helpers -------------------------------------------------------------------------------

export function sendJson(ctx: Ctx, status: number, body: unknown): void {
  const text = body === undefined ? "" : `${JSON.stringify(body)}\n`;
  if (ctx.res) {
    ctx.res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text), ...apiHeaders() });
    ctx.res.end(text);
  } else if (ctx.socket) {
    ctx.socket.end(`HTTP/1.1 ${status} ${statusText(status)}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nApi-Version: ${API_VERSION}\r\n\r\n${text}`);
  }
}

function sendEmpty(ctx: Ctx, status: number): void {
  if (ctx.res) {
    ctx.res.writeHead(status, apiHeaders());
    ctx.res.end();
  } else ctx.socket?.end(`HTTP/1.1 ${status} ${statusText(status)}\r\nContent-Length: 0\r\n\r\n`);
}

function statusText(s: number): string {
  return ({ 101: "UPGRADED", 200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified", 400: "Bad Request", 404: "Not Found", 409: "Conflict", 500: "Internal Server Error", 501: "Not Implemented" } as Record<number, string>)[s] ?? "Error";
}

function apiHeaders(): Record<string, string> {
  return { "Api-Version": API_VERSION, "Docker-Experimental": "false", Ostype: "linux", Server: `Berth/${ENGINE_VERSION} (linux)` };
}

export function sendError(ctx: Ctx, err: unknown): void {
  let status = 500;
  let message = String(err);
  if (err instanceof EngineError) {
    status = err.status;
    message = err.message;
  } else if (err instanceof BerthError) {
    message = err.message;
  } else if (err instanceof Error) {
    message = err.message;
  }
  if (status === 304) return sendEmpty(ctx, 304);
  if (ctx.res?.headersSent) {
    ctx.res.end();
    return;
  }
  sendJson(ctx, status, { message });
}

export async function readBody(ctx: Ctx): Promise<string> {
  const chunks: Buffer[] = [];
  if (ctx.res) {
    for await (const c of ctx.req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString();
  }
  // Upgraded: the body (Content-Length) is in `head` and then the socket.
  const len = Number(ctx.req.headers["content-length"] ?? 0);
  let buf = ctx.head ?? Buffer.alloc(0);
  const socket = ctx.socket as Duplex;
  while (buf.length < len) {
    const chunk = await new Promise<Buffer | null>((resolve) => {
      const onData = (c: Buffer) => { socket.off("end", onEnd); resolve(c); };
      const onEnd = () => { socket.off("data", onData); resolve(null); };
      socket.once("data", onData);
      socket.once("end", onEnd);
    });
    if (!chunk) break;
    buf = Buffer.concat([buf, chunk]);
  }
  socket.pause();
  ctx.head = buf.subarray(len);
  return buf.subarray(0, len).toString();
}

async function jsonBody(ctx: Ctx): Promise<Record<string, unknown>> {
  return parseJsonBody(await readBody(ctx));
}

/** Starts a raw/multiplexed stream: 101 Upgrade for hijack requests, else a 200 streaming response. */
export function startStream(ctx: Ctx, tty: boolean): { write: (c: Buffer) => boolean; end: () => void; output: Duplex | ServerResponse } {
  const type = tty ? "application/vnd.docker.raw-stream" : compareVersions(ctx.version, "1.42") >= 0 ? "application/vnd.docker.multiplexed-stream" : "application/vnd.docker.raw-stream";
  if (ctx.socket) {
    const s = ctx.socket;
    s.write(`HTTP/1.1 101 UPGRADED\r\nContent-Type: ${type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nApi-Version: ${API_VERSION}\r\n\r\n`);
    return { write: (c) => (s.writable ? s.write(c) : false), end: () => s.end(), output: s };
  }
  const res = ctx.res as ServerResponse;
  res.writeHead(200, { "Content-Type": type, ...apiHeaders() });
  res.flushHeaders();
  return { write: (c) => (res.writable ? res.write(c) : false), end: () => res.end(), output: res };
}

// ---- system -----------------------------------------------------------------------------------------

const goArch = (a: string) => ({ x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x" } as Record<string, string>)[a] ?? a;

route("GET", "/_ping", (ctx) => {
  ctx.res?.writeHead(200, { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache, no-store, must-revalidate", Pragma: "no-cache", "Builder-Version": "1", "Berth-Build": BUILD, ...apiHeaders() });
  ctx.res?.end("OK");
});
route("HEAD", "/_ping", (ctx) => {
  ctx.res?.writeHead(200, { "Content-Type": "text/plain; charset=utf-8", "Builder-Version": "1", ...apiHeaders() });
  ctx.res?.end();
});

export function versionJson(): Record<string, unknown> {
  const details = { ApiVersion: API_VERSION, Arch: goArch(process.arch), BuildTime: "", Experimental: "false", GitCommit: "berth", GoVersion: `node${process.version}`, KernelVersion: release(), MinAPIVersion: MIN_API_VERSION, Os: "linux" };
  return {
    Platform: { Name: "Berth Engine" },
    Components: [{ Name: "Engine", Version: ENGINE_VERSION, Details: details }],
    Version: ENGINE_VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: "berth",
    GoVersion: `node${process.version}`,
    Os: "linux",
    Arch: goArch(process.arch),
    KernelVersion: release(),
    BuildTime: "",
  };
}

route("GET", "/version", (ctx) => sendJson(ctx, 200, versionJson()));

route("GET", "/info", (ctx) => {
  const e = ctx.engine;
  const c = e.counts();
  let images = 0;
  try { images = e.images.store.listImages().length; } catch { images = 0; }
  sendJson(ctx, 200, {
    ID: "berth", Containers: c.total, ContainersRunning: c.running, ContainersPaused: c.paused, ContainersStopped: c.stopped, Images: images,
    Driver: "overlay2", DriverStatus: [["Backing Filesystem", "extfs"]],
    Plugins: { Volume: ["local"], Network: ["host", "none"], Authorization: null, Log: ["json-file", "none"] },
    MemoryLimit: true, SwapLimit: true, KernelMemory: false, CpuCfsPeriod: true, CpuCfsQuota: true, CPUShares: true, CPUSet: true, PidsLimit: true,
    IPv4Forwarding: true, BridgeNfIptables: false, BridgeNfIp6tables: false, Debug: false, NFd: 0, OomKillDisable: false, NGoroutines: 0,
    SystemTime: new Date().toISOString(), LoggingDriver: "json-file", CgroupDriver: "cgroupfs", CgroupVersion: "1", NEventsListener: 0,
    KernelVersion: release(), OperatingSystem: "Berth on Linux", OSVersion: "", OSType: "linux", Architecture: process.arch === "x64" ? "x86_64" : process.arch,
    IndexServerAddress: "https://index.docker.io/v1/", RegistryConfig: { AllowNondistributableArtifactsCIDRs: null, AllowNondistributableArtifactsHostnames: null, InsecureRegistryCIDRs: ["127.0.0.0/8"], IndexConfigs: {}, Mirrors: null },
    // The CPUs this process may run on, as Go's runtime.NumCPU() that dockerd reports (Node 20 has no navigator: it said 1).
    NCPU: availableParallelism(), MemTotal: hostMemory(), GenericResources: null,
    DockerRootDir: e.dataRoot, HttpProxy: "", HttpsProxy: "", NoProxy: "", Name: hostname(), Labels: [], ExperimentalBuild: false,
    ServerVersion: ENGINE_VERSION, Runtimes: { berth: { path: "berth-helper" } }, DefaultRuntime: "berth",
    Swarm: { NodeID: "", NodeAddr: "", LocalNodeState: "inactive", ControlAvailable: false, Error: "", RemoteManagers: null },
    LiveRestoreEnabled: true, Isolation: "", InitBinary: "tini", ContainerdCommit: { ID: "", Expected: "" }, RuncCommit: { ID: "", Expected: "" }, InitCommit: { ID: "", Expected: "" },
    SecurityOptions: ["name=seccomp,profile=builtin"], Warnings: [],
  });
});

route("GET", "/events", async (ctx) => {
  const e = ctx.engine;
  const filters = parseFilters(ctx.query.get("filters"));
  const since = ctx.query.get("since") ? parseTimeArg(ctx.query.get("since") as string) : undefined;
  const until = ctx.query.get("until") ? parseTimeArg(ctx.query.get("until") as string) : undefined;
  const res = ctx.res as ServerResponse;
  res.writeHead(200, { "Content-Type": "application/json", ...apiHeaders() });
  res.flushHeaders();
  const send = (ev: object) => res.write(`${JSON.stringify(ev)}\n`);
  if (since !== undefined) for (const ev of e.events.history(since, until)) if (eventMatches(ev, filters)) send(ev);
  if (until !== undefined && until <= Date.now()) return void res.end();
  await new Promise<void>((resolve) => {
    const onEvent = (ev: Parameters<typeof eventMatches>[0]) => { if (eventMatches(ev, filters)) send(ev); };
    e.events.on("event", onEvent);
    const timer = until !== undefined ? setTimeout(done, until - Date.now()) : undefined;
    function done() {
      e.events.off("event", onEvent);
      if (timer) clearTimeout(timer);
      res.end();
      resolve();
    }
    ctx.req.socket.on("close", done);
  });
});

route("GET", "/system/df", (ctx) => {
  const e = ctx.engine;
  const volumes = e.volumes.list().map((v) => volumeJson(v, { size: -1, refs: e.volumeUsers(v.Name).length }));
  let images: unknown[] = [];
  let layersSize = 0;
  try {
    const store = e.images.store;
    const du = store.diskUsage();
    layersSize = du.size;
    images = store.listImages().map((i) => ({ Id: i.id, ParentId: "", RepoTags: i.repoTags, RepoDigests: i.repoDigests, Created: Math.floor(Date.parse(i.created) / 1000) || 0, Size: i.size, SharedSize: -1, VirtualSize: i.size, Labels: {}, Containers: e.list().filter((c) => c.Image === i.id).length }));
  } catch { /* no store */ }
  sendJson(ctx, 200, { LayersSize: layersSize, Images: images, Containers: e.diskUsageContainers(), Volumes: volumes, BuildCache: [] });
});

// Berth has no builder and so no build cache: prune answers as a daemon with an empty cache does
// (`docker system prune` calls it after containers, networks and images).
route("POST", "/build/prune", (ctx) => sendJson(ctx, 200, { CachesDeleted: null, SpaceReclaimed: 0 }));

// ---- containers ---------------------------------------------------------------------------------------

route("GET", "/containers/json", (ctx) => {
  sendJson(ctx, 200, ctx.engine.listJson({
    all: boolParam(ctx.query.get("all")),
    limit: intParam(ctx.query.get("limit"), "limit"),
    size: boolParam(ctx.query.get("size")),
    filters: parseFilters(ctx.query.get("filters")),
  }));
});

route("POST", "/containers/create", async (ctx) => {
  const body = await jsonBody(ctx);
  validateCreateBody(body);
  const { HostConfig, NetworkingConfig, ...config } = body;
  const endpoints = (NetworkingConfig as { EndpointsConfig?: CreateRequest["endpoints"] } | undefined)?.EndpointsConfig ?? undefined;
  const req: CreateRequest = { name: ctx.query.get("name") ?? undefined, config: config as CreateRequest["config"], hostConfig: (HostConfig ?? {}) as CreateRequest["hostConfig"], endpoints };
  sendJson(ctx, 201, await ctx.engine.create(req));
});

route("POST", "/containers/prune", async (ctx) => {
  sendJson(ctx, 200, await ctx.engine.prune(parseFilters(ctx.query.get("filters"))));
});

route("GET", "/containers/{id}/json", (ctx) => sendJson(ctx, 200, ctx.engine.inspect(ctx.params[0], boolParam(ctx.query.get("size")))));

route("POST", "/containers/{id}/start", async (ctx) => {
  await ctx.engine.start(ctx.params[0]);
  sendEmpty(ctx, 204);
});

route("POST", "/containers/{id}/stop", async (ctx) => {
  await ctx.engine.stop(ctx.params[0], intParam(ctx.query.get("t"), "t"), ctx.query.get("signal") ?? undefined);
  sendEmpty(ctx, 204);
});

route("POST", "/containers/{id}/restart", async (ctx) => {
  await ctx.engine.restart(ctx.params[0], intParam(ctx.query.get("t"), "t"), ctx.query.get("signal") ?? undefined);
  sendEmpty(ctx, 204);
});

route("POST", "/containers/{id}/kill", async (ctx) => {
  await ctx.engine.kill(ctx.params[0], ctx.query.get("signal") ?? undefined);
  sendEmpty(ctx, 204);
});

route("DELETE", "/containers/{id}", async (ctx) => {
  await ctx.engine.remove(ctx.params[0], { force: boolParam(ctx.query.get("force")), volumes: boolParam(ctx.query.get("v")) });
  sendEmpty(ctx, 204);
});

route("POST", "/containers/{id}/rename", async (ctx) => {
  await ctx.engine.rename(ctx.params[0], ctx.query.get("name") ?? "");
  sendEmpty(ctx, 204);
});

route("POST", "/containers/{id}/pause", async (ctx) => { await ctx.engine.pause(ctx.params[0]); sendEmpty(ctx, 204); });
route("POST", "/containers/{id}/unpause", async (ctx) => { await ctx.engine.unpause(ctx.params[0]); sendEmpty(ctx, 204); });

route("POST", "/containers/{id}/update", async (ctx) => {
  const body = await jsonBody(ctx);
  validateHostUpdate(body);
  sendJson(ctx, 200, await ctx.engine.update(ctx.params[0], body));
});

route("POST", "/containers/{id}/wait", async (ctx) => {
  const e = ctx.engine;
  e.lookup(ctx.params[0]);
  const abort = new AbortController();
  ctx.req.socket.on("close", () => abort.abort());
  const res = ctx.res as ServerResponse;
  const pending = e.wait(ctx.params[0], ctx.query.get("condition") ?? "not-running", abort.signal);
  // docker answers the headers at once (the CLI waits for them before starting the container).
  pending.catch(() => undefined);
  res.writeHead(200, { "Content-Type": "application/json", ...apiHeaders() });
  res.flushHeaders();
  try {
    res.end(`${JSON.stringify(await pending)}\n`);
  } catch {
    res.end();
  }
});

route("GET", "/containers/{id}/top", async (ctx) => sendJson(ctx, 200, await ctx.engine.top(ctx.params[0], ctx.query.get("ps_args") || "-ef")));

route("GET", "/containers/{id}/changes", (ctx) => sendJson(ctx, 200, ctx.engine.changes(ctx.params[0])));

route("POST", "/containers/{id}/resize", (ctx) => {
  ctx.engine.resize(ctx.params[0], intParam(ctx.query.get("h"), "h") ?? 24, intParam(ctx.query.get("w"), "w") ?? 80);
  sendEmpty(ctx, 200);
});

route("GET", "/containers/{id}/stats", async (ctx) => {
  const e = ctx.engine;
  const id = e.lookup(ctx.params[0]).Id;
  const stream = boolParam(ctx.query.get("stream"), true);
  const oneShot = boolParam(ctx.query.get("one-shot"));
  const res = ctx.res as ServerResponse;
  let prev = e.stats(id);
  if (!stream) {
    if (!oneShot && e.isRunning(id)) {
      await new Promise((r) => setTimeout(r, 1000));
      prev = e.stats(id, prev);
    }
    return sendJson(ctx, 200, prev);
  }
  res.writeHead(200, { "Content-Type": "application/json", ...apiHeaders() });
  res.write(`${JSON.stringify(prev)}\n`);
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      try {
        prev = e.stats(id, prev);
        res.write(`${JSON.stringify(prev)}\n`);
      } catch {
        stop();
      }
    }, 1000);
    function stop() { clearInterval(timer); res.end(); resolve(); }
    ctx.req.socket.on("close", stop);
  });
});

route("GET", "/containers/{id}/logs", async (ctx) => {
  const e = ctx.engine;
  const r = e.lookup(ctx.params[0]);
  const q = ctx.query;
  const stdout = boolParam(q.get("stdout"));
  const stderr = boolParam(q.get("stderr"));
  if (!stdout && !stderr) throw badRequest("Bad parameters: you must choose at least one stream");
  const tailText = q.get("tail");
  const tail = tailText === null || tailText === "" || tailText === "all" ? undefined : intParam(tailText, "tail");
  const since = q.get("since") && q.get("since") !== "0" ? parseTimeArg(q.get("since") as string) : undefined;
  const until = q.get("until") && q.get("until") !== "0" ? parseTimeArg(q.get("until") as string) : undefined;
  const timestamps = boolParam(q.get("timestamps"));
  const tty = r.Config.Tty;
  const abort = new AbortController();
  ctx.req.socket.on("close", () => abort.abort());
  let started = false;
  let out: ReturnType<typeof startStream> | undefined;
  const begin = () => { if (!started) { started = true; out = startStream(ctx, tty); } };
  await e.logs(r.Id, { stdout, stderr, tail, since, until, follow: boolParam(q.get("follow")) }, (entry) => {
    begin();
    const text = Buffer.from(timestamps ? `${entry.time} ${entry.log}` : entry.log);
    out?.write(tty ? text : frame(entry.stream === "stderr" ? 2 : 1, text));
  }, abort.signal);
  begin();
  out?.end();
});

route("POST", "/containers/{id}/attach", async (ctx) => {
  const e = ctx.engine;
  const r = e.lookup(ctx.params[0]);
  // Some clients (dockerode) send their options as a body: it is not stdin.
  await readBody(ctx);
  const q = ctx.query;
  const tty = r.Config.Tty;
  attachDetachKeys(q.get("detachKeys")); // a bad list is a 400 before the upgrade
  const out = startStream(ctx, tty);
  const input = ctx.socket;
  let ended = false;
  const { detach, ready } = e.attach(r.Id, {
    onData: (n, c) => { out.write(tty ? c : frame(n, c)); },
    onEnd: () => { if (!ended) { ended = true; out.end(); } },
  }, {
    stdin: boolParam(q.get("stdin")) && input ? (input as unknown as import("node:stream").Readable) : undefined,
    logs: boolParam(q.get("logs")),
    stream: boolParam(q.get("stream")),
    stdout: boolParam(q.get("stdout")),
    stderr: boolParam(q.get("stderr")),
    detachKeys: q.get("detachKeys"),
  });
  (out.output as Duplex).on("close", () => { ended = true; detach(); });
  if (ctx.head && ctx.head.length > 0 && input) input.unshift(ctx.head);
  // Without stdin, read (and drop) what the client sends so that its hang-up is seen.
  if (input && !boolParam(q.get("stdin"))) input.resume();
  await ready;
});

route("HEAD", "/containers/{id}/archive", async (ctx) => archive(ctx, "head"));
route("GET", "/containers/{id}/archive", async (ctx) => archive(ctx, "get"));
route("PUT", "/containers/{id}/archive", async (ctx) => archive(ctx, "put"));

async function archive(ctx: Ctx, mode: "head" | "get" | "put"): Promise<void> {
  const e = ctx.engine;
  const r = e.lookup(ctx.params[0]);
  const path = ctx.query.get("path");
  if (!path) throw badRequest("path is required: give the path in the container");
  const abs = posix.normalize(path.startsWith("/") ? path : `/${path}`);
  // The response ends only once a stopped container's filesystem is unmounted again (withRootfs has
  // returned): a client that got its answer finds nothing of the copy left on the host.
  const end = await e.withRootfs(r.Id, async (root): Promise<() => void> => {
    // As dockerd: the directories resolve in the container; a symlink at the end is itself what is
    // stat'ed and copied (its linkTarget lets `cp -L` ask for the target), unless the path ends in "/"
    // or it is the extraction point.
    const inRoot = (p: string, followLast: boolean) => {
      try { return resolveInRoot(root, p, followLast); } catch (err) { throw badRequest((err as Error).message); }
    };
    const resolved = inRoot(path.startsWith("/") ? path : `/${path}`, mode === "put");
    const hostPath = join(root, resolved);
    let st;
    try {
      st = mode === "put" ? statSync(hostPath) : lstatSync(hostPath);
    } catch {
      throw notFound(`Could not find the file ${path} in container ${ctx.params[0]}`);
    }
    if (mode === "put") {
      if (!st.isDirectory()) throw badRequest(`extraction point is not a directory: ${path}`);
      const tar = spawn("tar", ["-x", "-C", hostPath, "--no-same-owner", "--no-overwrite-dir"], { stdio: ["pipe", "ignore", "pipe"] });
      let err = "";
      tar.stderr.on("data", (d: Buffer) => { err += d.toString(); });
      ctx.req.pipe(tar.stdin);
      const code = await new Promise<number>((resolve) => tar.on("close", (c) => resolve(c ?? 1)));
      if (code !== 0) throw badRequest(`cannot extract the archive into ${path}: ${err.trim()}`);
      e.events.publish("container", "extract-to-dir", r.Id, { name: r.Name.slice(1), image: r.Config.Image });
      return () => sendEmpty(ctx, 200);
    }
    const name = abs === "/" ? "/" : posix.basename(abs);
    const linkTarget = st.isSymbolicLink() ? inRoot(resolved, true) : "";
    const stat = { name, size: st.size, mode: goMode(st.mode), mtime: st.mtime.toISOString(), linkTarget };
    const header = Buffer.from(JSON.stringify(stat)).toString("base64");
    const res = ctx.res as ServerResponse;
    if (mode === "head") return () => { res.writeHead(200, { "X-Docker-Container-Path-Stat": header, ...apiHeaders() }); res.end(); };
    res.writeHead(200, { "Content-Type": "application/x-tar", "X-Docker-Container-Path-Stat": header, ...apiHeaders() });
    const parent = resolved === "/" ? root : dirname(hostPath);
    const base = resolved === "/" ? "." : posix.basename(resolved);
    // As dockerd, the entries are named after the path asked for ("/link/" gives "link/...").
    const asked = abs === "/" ? "." : posix.basename(abs);
    const quote = (t: string, special: RegExp) => t.replace(special, (c) => `\\${c}`);
    const rename = asked !== base ? [`--transform=s,^${quote(base, /[\\^$.*[\],]/g)}\\(/\\|$\\),${quote(asked, /[\\&,]/g)}\\1,rSh`] : [];
    await pipeTar(ctx, ["-c", "-C", parent, "--one-file-system", ...rename, base], { end: false });
    e.events.publish("container", "archive-path", r.Id, { name: r.Name.slice(1), image: r.Config.Image });
    return () => res.end();
  }, { volumes: true });
  end();
}

/** Go's os.FileMode bits from a Unix mode (the CLI decodes them). */
function goMode(mode: number): number {
  const perm = mode & 0o777;
  const type = mode & 0o170000;
  let m = perm;
  if (type === 0o040000) m |= 0x80000000;
  else if (type === 0o120000) m |= 0x08000000;
  if (mode & 0o4000) m |= 0x00800000;
  if (mode & 0o2000) m |= 0x00400000;
  if (mode & 0o1000) m |= 0x00100000;
  return m >>> 0;
}

async function pipeTar(ctx: Ctx, args: string[], o: { end?: boolean } = {}): Promise<void> {
  const res = ctx.res as ServerResponse;
  const tar = spawn("tar", args, { stdio: ["ignore", "pipe", "ignore"] });
  tar.stdout.pipe(res, { end: o.end ?? true });
  ctx.req.socket.on("close", () => { try { tar.kill("SIGKILL"); } catch { /* done */ } });
  await new Promise<void>((resolve) => tar.on("close", () => resolve()));
}

route("GET", "/containers/{id}/export", async (ctx) => {
  const e = ctx.engine;
  const r = e.lookup(ctx.params[0]);
  await e.withRootfs(r.Id, async (root) => {
    (ctx.res as ServerResponse).writeHead(200, { "Content-Type": "application/x-tar", ...apiHeaders() });
    await pipeTar(ctx, ["-c", "-C", root, "--one-file-system", "--numeric-owner", "."]);
  });
  e.events.publish("container", "export", r.Id, { name: r.Name.slice(1), image: r.Config.Image });
});

// ---- exec -------------------------------------------------------------------------------------------------

route("POST", "/containers/{id}/exec", async (ctx) => {
  const body = await jsonBody(ctx);
  validateExecBody(body);
  sendJson(ctx, 201, ctx.engine.execCreate(ctx.params[0], body as Parameters<Engine["execCreate"]>[1]));
});

route("GET", "/exec/{id}/json", (ctx) => sendJson(ctx, 200, ctx.engine.execInspect(ctx.params[0])));

route("POST", "/exec/{id}/resize", (ctx) => {
  ctx.engine.execResize(ctx.params[0], intParam(ctx.query.get("h"), "h") ?? 24, intParam(ctx.query.get("w"), "w") ?? 80);
  sendEmpty(ctx, 200);
});

route("POST", "/exec/{id}/start", async (ctx) => {
  const body = await jsonBody(ctx);
  const detach = Boolean(body.Detach);
  const e = ctx.engine;
  const info = e.execInspect(ctx.params[0]) as { ProcessConfig: { tty: boolean }; DetachKeys?: string };
  const tty = Boolean(body.Tty ?? info.ProcessConfig.tty);
  const detachKeys = execDetachKeys(ctx.query.get("detachKeys") || info.DetachKeys);
  if (detach) {
    await e.execStart(ctx.params[0], { detach });
    if (ctx.socket) ctx.socket.end(`HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n`);
    else sendEmpty(ctx, 200);
    return;
  }
  // As dockerd: the stream is set up first and an exec that fails to start says why on it (docker's CLI
  // prints that and takes the exit code, 126, from the exec's inspect); an error status here is only
  // "unable to upgrade" to the CLI.
  const out = startStream(ctx, tty);
  let rec: Awaited<ReturnType<Engine["execStart"]>>;
  try {
    rec = await e.execStart(ctx.params[0], { detach });
  } catch (err) {
    const line = Buffer.from(`${(err as Error).message}\r\n`);
    out.write(tty ? line : frame(1, line));
    out.end();
    return;
  }
  const proc = rec.proc;
  if (!proc) return void out.end();
  const pump = (s: import("node:stream").Readable | null, n: 1 | 2) => new Promise<void>((resolve) => {
    if (!s) return resolve();
    s.on("data", (c: Buffer) => out.write(tty ? c : frame(n, c)));
    s.on("end", resolve);
    s.on("close", resolve);
    s.on("error", () => resolve());
  });
  const drained = Promise.all([pump(proc.stdout, 1), pump(proc.stderr, 2)]);
  let finished = false;
  let detached = false;
  let onDetach = () => {};
  const detachedByKeys = new Promise<void>((resolve) => { onDetach = resolve; });
  const input = ctx.socket;
  const stdin = input && proc.stdin ? proc.stdin : undefined;
  if (input && stdin) {
    stdin.on("error", () => {});
    // As docker: the detach keys are looked for only with a tty; the exec keeps running.
    const scanner = tty ? new DetachScanner(detachKeys) : undefined;
    const onChunk = (c: Buffer) => {
      if (detached) return;
      const r = scanner ? scanner.push(c) : { data: c, detached: false };
      if (r.data.length > 0) stdin.write(r.data);
      if (!r.detached) return;
      detached = true;
      input.off("data", onChunk);
      input.resume();
      e.execDetached(ctx.params[0]);
      onDetach();
    };
    if (ctx.head && ctx.head.length > 0) onChunk(ctx.head);
    input.on("data", onChunk);
    // Without a tty the client's end of input is the exec's end of stdin; with one the pty stays open.
    input.on("end", () => { if (!tty && !detached) stdin.end(); });
    input.resume();
  }
  // A client that goes away does not end the exec (as docker): its output is read and dropped, and
  // without a tty its stdin is closed.
  (out.output as Duplex).on("close", () => { if (!finished && !tty && !detached) stdin?.end(); });
  await Promise.race([rec.done, detachedByKeys]);
  if (!detached) await Promise.race([drained, new Promise((r) => setTimeout(r, 1000))]);
  finished = true;
  out.end();
});

// ---- volumes ------------------------------------------------------------------------------------------------

route("GET", "/volumes", (ctx) => {
  const f = parseFilters(ctx.query.get("filters"));
  const e = ctx.engine;
  const vols = e.volumes.list().filter((v) => {
    if (f.name && !f.name.some((n) => v.Name.includes(n))) return false;
    if (f.dangling && f.dangling.length) {
      const dangling = e.volumeUsers(v.Name).length === 0;
      if (!f.dangling.some((d) => (d === "true" || d === "1") === dangling)) return false;
    }
    if (f.label && !f.label.every((l) => (l.includes("=") ? v.Labels[l.split("=")[0]] === l.slice(l.indexOf("=") + 1) : l in v.Labels))) return false;
    if (f.driver && !f.driver.includes(v.Driver)) return false;
    return true;
  });
  sendJson(ctx, 200, { Volumes: vols.map((v) => volumeJson(v)), Warnings: [] });
});

route("POST", "/volumes/create", async (ctx) => {
  const body = await jsonBody(ctx);
  validateVolumeBody(body);
  const { volume, created } = ctx.engine.volumes.create((body.Name as string) || undefined, { labels: body.Labels as Record<string, string>, options: body.DriverOpts as Record<string, string>, driver: body.Driver as string });
  if (created) ctx.engine.events.publish("volume", "create", volume.Name, { driver: "local" });
  sendJson(ctx, 201, volumeJson(volume));
});

route("POST", "/volumes/prune", (ctx) => {
  const filters = parseFilters(ctx.query.get("filters"));
  // Before API 1.42 prune removed every unused volume; 1.42 made named ones need all=true.
  if (compareVersions(ctx.version, "1.42") < 0 && !filters.all) filters.all = ["true"];
  sendJson(ctx, 200, ctx.engine.pruneVolumes(filters));
});

route("GET", "/volumes/{name}", (ctx) => sendJson(ctx, 200, volumeJson(ctx.engine.volumes.mustGet(ctx.params[0]))));

route("DELETE", "/volumes/{name}", (ctx) => {
  ctx.engine.removeVolume(ctx.params[0], boolParam(ctx.query.get("force")));
  sendEmpty(ctx, 204);
});

// ---- networks (src/network answers in docker's shapes) -----------------------------------------------------

/** The network library's errors: "not found" is a 404, the rest a 400 with its message. */
async function networkCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof EngineError) throw err;
    const msg = (err as Error).message;
    throw /not found|no such/i.test(msg) ? notFound(msg) : badRequest(msg);
  }
}

route("GET", "/networks", async (ctx) => {
  const filters = parseFilters(ctx.query.get("filters"));
  sendJson(ctx, 200, await networkCall(() => listNetworks(ctx.engine.net, filters)));
});
route("GET", "/networks/{id}", async (ctx) => sendJson(ctx, 200, await networkCall(() => inspectNetwork(ctx.engine.net, ctx.params[0]))));
route("POST", "/networks/create", async (ctx) => {
  const body = await jsonBody(ctx);
  if (typeof body.Name !== "string" || body.Name === "") throw badRequest("Name: a network name is required");
  const ipam = (body.IPAM as { Config?: { Subnet?: string; Gateway?: string }[] } | undefined)?.Config?.[0];
  const created = await networkCall(() => createNetwork(ctx.engine.net, {
    name: body.Name as string,
    driver: (body.Driver as string) || "bridge",
    subnet: ipam?.Subnet,
    gateway: ipam?.Gateway,
    internal: body.Internal === true,
    labels: body.Labels as Record<string, string> | undefined,
    options: body.Options as Record<string, string> | undefined,
  }));
  ctx.engine.events.publish("network", "create", created.Id, { name: body.Name as string, type: "bridge" });
  sendJson(ctx, 201, created);
});
route("DELETE", "/networks/{id}", async (ctx) => {
  const net = await networkCall(() => removeNetwork(ctx.engine.net, ctx.params[0]));
  ctx.engine.events.publish("network", "destroy", net.id, { name: net.name, type: net.driver });
  sendEmpty(ctx, 204);
});
route("POST", "/networks/{id}/connect", async (ctx) => {
  const body = await jsonBody(ctx);
  if (typeof body.Container !== "string") throw badRequest("Container: the container to connect is required");
  const cfg = (body.EndpointConfig ?? {}) as { Aliases?: string[] | null; IPAMConfig?: { IPv4Address?: string } | null };
  await ctx.engine.connectNetwork(ctx.params[0], body.Container, { ip: cfg.IPAMConfig?.IPv4Address || undefined, aliases: cfg.Aliases ?? undefined });
  sendEmpty(ctx, 200);
});
route("POST", "/networks/{id}/disconnect", async (ctx) => {
  const body = await jsonBody(ctx);
  if (typeof body.Container !== "string") throw badRequest("Container: the container to disconnect is required");
  await ctx.engine.disconnectNetwork(ctx.params[0], body.Container, body.Force === true);
  sendEmpty(ctx, 200);
});
route("POST", "/networks/prune", async (ctx) => {
  const filters = parseFilters(ctx.query.get("filters"));
  const publish = (net: { id: string; name: string; driver: string }) => ctx.engine.events.publish("network", "destroy", net.id, { name: net.name, type: net.driver });
  sendJson(ctx, 200, { NetworksDeleted: await networkCall(() => pruneNetworks(ctx.engine.net, filters, publish)) });
});

// ---- dispatch -----------------------------------------------------------------------------------------------

async function dispatch(engine: Engine, req: IncomingMessage, res: ServerResponse | undefined, socket?: Duplex, head?: Buffer): Promise<void> {
  const url = new URL(req.url ?? "/", "http://berth");
  const { version, path } = splitVersion(url.pathname);
  const ctx: Ctx = { engine, req, res, socket, head, path, query: url.searchParams, version: version ?? API_VERSION, params: [] };
  try {
    if (version && compareVersions(version, MIN_API_VERSION) < 0) {
      throw badRequest(`client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
    }
    if (version && compareVersions(version, API_VERSION) > 0) {
      throw badRequest(`client version ${version} is too new. Maximum supported API version is ${API_VERSION}`);
    }
    const method = req.method ?? "GET";
    let pathMatched = false;
    for (const r of routes) {
      const m = r.pattern.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== method) continue;
      ctx.params = m.slice(1).map(decodeURIComponent);
      await r.handler(ctx);
      return;
    }
    if (await handleImages(ctx, method)) return;
    throw new EngineError(pathMatched ? 405 : 404, pathMatched ? `method ${method} not allowed for ${path}` : `page not found`);
  } catch (err) {
    if (!(err instanceof EngineError) || err.status >= 500) engine.log(`${req.method} ${req.url}: ${(err as Error).stack ?? String(err)}`);
    sendError(ctx, err);
  }
}

export interface ApiServer {
  servers: Server[];
  close(): Promise<void>;
}

/** Parses `-H unix:///path` (or a bare path). */
export function parseHost(h: string): string {
  if (h.startsWith("unix://")) return h.slice(7);
  if (h.startsWith("/")) return h;
  throw new BerthError(`unsupported host "${h}": use unix:///path/to/socket`);
}

export async function listen(engine: Engine, hosts: string[]): Promise<ApiServer> {
  const servers: Server[] = [];
  const sockets = new Set<Duplex>();
  for (const h of hosts) {
    const path = parseHost(h);
    mkdirSync(dirname(path), { recursive: true });
    rmSync(path, { force: true });
    const server = createServer({ keepAlive: true }, (req, res) => void dispatch(engine, req, res));
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on("error", () => {});
      void dispatch(engine, req, undefined, socket, head);
    });
    server.on("connection", (sock: Duplex) => { sockets.add(sock); sock.on("close", () => sockets.delete(sock)); });
    server.on("clientError", (_err, socket) => { try { socket.end("HTTP/1.1 400 Bad Request\r\n\r\n"); } catch { /* gone */ } });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
    chmodSync(path, 0o660);
    servers.push(server);
  }
  return {
    servers,
    close: async () => {
      const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
      // Hijacked (attach/exec) and streaming connections end with the daemon; containers don't.
      for (const sock of sockets) sock.destroy();
      for (const s of servers) s.closeAllConnections?.();
      await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, 2000))]);
      for (const h of hosts) rmSync(parseHost(h), { force: true });
    },
  };
}

export { runCapture };
