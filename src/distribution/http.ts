// A small HTTP(S) layer over node:http/https for the registry client: one request, its response as a
// stream, a socket idle timeout, redirects left to the caller. No decisions about registries here.

import http, { type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import https from "node:https";
import { Readable } from "node:stream";
import { BerthError } from "../errors.js";

export type Body = Buffer | Readable | undefined;

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: Body;
  /** Skip TLS verification (insecure registries). */
  insecureTls?: boolean;
  /** Socket idle timeout; the request fails with ETIMEDOUT past it. */
  timeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  url: URL;
  stream: IncomingMessage;
}

export class NetworkError extends Error {
  constructor(message: string, readonly code: string | undefined) {
    super(message);
    this.name = "NetworkError";
  }
}

/** OpenSSL's messages span lines and name source files: keep the reason ("wrong version number"). */
export function oneLine(message: string): string {
  const ssl = /SSL routines:[^:]*:([^:\n]+)/.exec(message);
  if (ssl) return `TLS error: ${ssl[1].trim()}`;
  return message.replace(/\s*\n\s*/g, " ").trim();
}

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export function httpRequest(req: HttpRequest): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const mod = req.url.protocol === "https:" ? https : http;
    const headers: Record<string, string> = { ...(req.headers ?? {}) };
    if (Buffer.isBuffer(req.body)) headers["content-length"] = String(req.body.length);
    const options: https.RequestOptions = {
      method: req.method,
      headers,
      agent: false,
      ...(req.url.protocol === "https:" && req.insecureTls ? { rejectUnauthorized: false } : {}),
    };
    const r = mod.request(req.url, options, (res) => {
      resolve({ status: res.statusCode ?? 0, headers: res.headers, url: req.url, stream: res });
    });
    const timeout = req.timeoutMs ?? 60_000;
    r.setTimeout(timeout, () => {
      r.destroy(Object.assign(new Error(`no answer for ${Math.round(timeout / 1000)}s`), { code: "ETIMEDOUT" }));
    });
    r.on("error", (err: NodeJS.ErrnoException) => reject(new NetworkError(oneLine(err.message), err.code)));
    if (req.body === undefined) r.end();
    else if (Buffer.isBuffer(req.body)) r.end(req.body);
    else {
      req.body.on("error", (err) => r.destroy(err));
      req.body.pipe(r);
    }
  });
}

/** Reads a whole response body, refusing more than `limit` bytes. */
export async function readBody(res: HttpResponse, limit: number, what: string): Promise<Buffer> {
  const declared = Number(header(res.headers, "content-length"));
  if (Number.isFinite(declared) && declared > limit) {
    res.stream.destroy();
    throw new BerthError(`${what}: the answer is ${declared} bytes, more than the ${limit} allowed`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.stream as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) {
        res.stream.destroy();
        throw new BerthError(`${what}: the answer is more than the ${limit} bytes allowed`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof BerthError) throw err;
    throw new NetworkError(`${what}: the connection broke while reading the answer (${(err as Error).message})`, (err as NodeJS.ErrnoException).code);
  }
  return Buffer.concat(chunks);
}

/** Throws away a response body so the socket can close. */
export function discard(res: HttpResponse): void {
  res.stream.resume();
  res.stream.on("error", () => {});
}
