// A small Engine API client for the berth CLI: JSON requests, streams and hijacked connections over a
// Unix socket; starts a daemon when none answers on the default socket.

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BerthError } from "../errors.js";
import { buildStamp } from "../api/stream.js";

export const DEFAULT_HOST = "unix:///run/berth/berth.sock";
export const DEFAULT_DATA_ROOT = "/var/lib/berth";

/**
 * Where the daemon for a data root listens when the CLI starts it: the default root's daemon on the
 * default socket, any other root's (BERTH_DATA_ROOT, --data-root) on its own socket and exec root, so
 * `berth --data-root X ...` talks to a daemon that really uses X.
 */
export function autostartPlace(typed: string | undefined): { host: string; execRoot: string; dataRoot?: string } {
  // As typed, `dcor` and `/abs/dcor` would get two daemons on one root.
  const dataRoot = typed ? resolve(typed) : undefined;
  if (!dataRoot || dataRoot === DEFAULT_DATA_ROOT) return { host: DEFAULT_HOST, execRoot: "/run/berth" };
  const tag = createHash("sha256").update(dataRoot).digest("hex").slice(0, 12);
  const execRoot = `/run/berth/roots/${tag}`;
  return { host: `unix://${execRoot}/berth.sock`, execRoot, dataRoot };
}
const API = "/v1.43";

export interface Response {
  status: number;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

/** An error the daemon answered (docker prints "Error response from daemon: ..."). */
export class ApiError extends BerthError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(`Error response from daemon: ${message}`, { exitCode: 1 });
    this.status = status;
  }
}

function socketPath(host: string): string {
  if (host.startsWith("unix://")) return host.slice(7);
  if (host.startsWith("/")) return host;
  throw new BerthError(`unsupported host "${host}": use unix:///path/to/socket`);
}

export function query(q: Record<string, string | number | boolean | undefined | string[]>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) p.append(k, x);
    else p.set(k, typeof v === "boolean" ? (v ? "1" : "0") : String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : "";
}

export class Client {
  readonly host: string;
  readonly socket: string;
  readonly #autostart: boolean;
  readonly #place: ReturnType<typeof autostartPlace>;
  #checked = false;
  /** The pid of a daemon to replace before the first request (see #replaceStale). */
  #stale: number | undefined;
  #starting: Promise<void> | undefined;

  constructor(host?: string, dataRoot?: string) {
    this.#place = autostartPlace(dataRoot);
    this.host = host || process.env.BERTH_HOST || this.#place.host;
    this.socket = socketPath(this.host);
    this.#autostart = !host && !process.env.BERTH_HOST;
  }

  #raw(method: string, path: string, body?: Buffer | string | NodeJS.ReadableStream, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ socketPath: this.socket, method, path: `${API}${path}`, headers: { Host: "berth", ...headers }, signal }, resolve);
      req.on("error", reject);
      if (body === undefined) req.end();
      else if (typeof body === "string" || Buffer.isBuffer(body)) req.end(body);
      else body.pipe(req);
    });
  }

  /**
   * Makes sure a daemon answers; starts one (detached) on the default socket if none does. Used before
   * requests that can't be sent twice (a streamed body); the others go straight to the daemon and start
   * it only when the socket refuses (`#once`), without a ping round trip first.
   */
  async ensure(): Promise<void> {
    if (this.#checked) return;
    try {
      this.#replaceStale();
      await this.#ping();
    } catch (err) {
      if (!this.#autostart) throw this.#unreachable(err);
      await this.#startDaemon();
    }
    this.#checked = true;
  }

  /**
   * A daemon this CLI started earlier from another build of Berth is replaced (its containers keep
   * running and the new daemon adopts them). The marker the starting CLI wrote names the daemon's pid
   * and build, so this costs two small reads and no round trip.
   */
  #replaceStale(): void {
    if (!this.#autostart) return;
    const started = this.#autostarted();
    if (started && started.build !== buildStamp()) this.#stale = started.pid;
  }

  #unreachable(err: unknown): BerthError {
    return new BerthError(`Cannot connect to the Berth daemon at ${this.host}. Is the daemon running? (${(err as Error).message})`);
  }

  /**
   * Runs `send` (which must not have sent anything when the connection fails) against the daemon: the
   * first call of this client starts the daemon and tries again when the socket is missing or refuses.
   */
  async #once<T>(send: () => Promise<T>): Promise<T> {
    if (this.#checked) return send();
    this.#replaceStale();
    if (this.#stale !== undefined) {
      await this.#restartDaemon(this.#stale);
      this.#checked = true;
      return send();
    }
    try {
      const r = await send();
      this.#checked = true;
      return r;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (!this.#autostart && ["ECONNREFUSED", "ENOENT", "EACCES", "ENOTSOCK"].includes(code ?? "")) throw this.#unreachable(err);
      if (!this.#autostart || (code !== "ECONNREFUSED" && code !== "ENOENT")) throw err;
      // Requests sent side by side share one start.
      await (this.#starting ??= this.#startDaemon());
      this.#checked = true;
      return send();
    }
  }

  async #ping(): Promise<void> {
    if (this.#stale !== undefined) {
      await this.#restartDaemon(this.#stale);
      return;
    }
    const res = await this.#raw("GET", "/_ping");
    res.resume();
    if (res.statusCode !== 200) throw new Error(`ping answered ${res.statusCode}`);
  }

  #marker(): string {
    return join(dirname(this.socket), "daemon.autostart");
  }

  /** The daemon this CLI's kind started (marker "PID BUILD"), when it is the one running. */
  #autostarted(): { pid: number; build: string } | undefined {
    try {
      const [p, build = ""] = readFileSync(this.#marker(), "utf8").split(" ");
      const pid = Number(p);
      return pid > 0 && Number(readFileSync(join(dirname(this.socket), "berth.pid"), "utf8")) === pid ? { pid, build } : undefined;
    } catch {
      return undefined;
    }
  }

  async #restartDaemon(pid: number): Promise<void> {
    this.#stale = undefined;
    try { process.kill(pid, "SIGTERM"); } catch { /* gone */ }
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      try { process.kill(pid, 0); } catch { break; }
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.#startDaemon();
  }

  async #startDaemon(): Promise<void> {
    if (process.getuid?.() !== 0) throw new BerthError(`no Berth daemon answers at ${this.host}, and starting one needs root`);
    const execRoot = dirname(this.socket);
    mkdirSync(execRoot, { recursive: true, mode: 0o711 });
    const roots = this.#place.dataRoot ? ["-H", this.host, "--data-root", this.#place.dataRoot, "--exec-root", this.#place.execRoot] : [];
    const log = openSync(join(execRoot, "daemon.log"), "a");
    // The same node and the same entry script (bin/berth.js or the bundle) as this CLI.
    const script = process.argv[1] ?? fileURLToPath(new URL("../../../bin/berth.js", import.meta.url));
    const child = spawn(process.execPath, ["--", script, "daemon", ...roots], { detached: true, stdio: ["ignore", log, log] });
    child.unref();
    writeFileSync(this.#marker(), `${child.pid} ${buildStamp()}`);
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const res = await this.#raw("GET", "/_ping");
        res.resume();
        if (res.statusCode !== 200) throw new Error(`ping answered ${res.statusCode}`);
        return;
      } catch {
        if (Date.now() > deadline) throw new BerthError(`started a Berth daemon but it does not answer at ${this.host}: see ${join(execRoot, "daemon.log")}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** A request and its whole answer; `signal` aborts it (the promise then rejects). */
  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const h = body !== undefined && !Buffer.isBuffer(body) ? { "Content-Type": "application/json", ...headers } : headers;
    const res = await this.#once(() => this.#raw(method, path, payload, h, signal));
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const out = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
    if (out.status >= 400) throw new ApiError(out.status, errorMessage(out.body));
    return out;
  }

  async json<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.request(method, path, body, {}, signal);
    return (res.body.length ? JSON.parse(res.body.toString()) : undefined) as T;
  }

  /** A streaming response (logs, events, stats, archives). */
  async stream(method: string, path: string, body?: Buffer | NodeJS.ReadableStream, headers: Record<string, string> = {}): Promise<IncomingMessage> {
    // A streamed body can't be sent again after a refused connection: ping (and start) first.
    if (body !== undefined && typeof body !== "string" && !Buffer.isBuffer(body)) await this.ensure();
    const res = await this.#once(() => this.#raw(method, path, body, headers));
    if ((res.statusCode ?? 0) >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      throw new ApiError(res.statusCode ?? 0, errorMessage(Buffer.concat(chunks)));
    }
    return res;
  }

  /** POST with `Upgrade: tcp`; resolves with the raw socket after 101 (attach, exec start). */
  async hijack(path: string, body?: unknown): Promise<Socket> {
    const payload = body === undefined ? "" : JSON.stringify(body);
    return this.#once(() => new Promise((resolve, reject) => {
      const req = httpRequest({
        socketPath: this.socket,
        method: "POST",
        path: `${API}${path}`,
        headers: { Host: "berth", Connection: "Upgrade", Upgrade: "tcp", "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) },
      });
      req.on("upgrade", (_res, socket: Socket, head: Buffer) => {
        if (head.length) socket.unshift(head);
        resolve(socket);
      });
      req.on("response", (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => reject(new ApiError(res.statusCode ?? 0, errorMessage(Buffer.concat(chunks)))));
      });
      req.on("error", reject);
      req.end(payload);
    }));
  }
}

function errorMessage(body: Buffer): string {
  try {
    const v = JSON.parse(body.toString()) as { message?: string };
    if (v.message) return v.message;
  } catch { /* not JSON */ }
  return body.toString().trim() || "unknown error";
}
