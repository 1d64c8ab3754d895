// The OCI distribution-spec client: one per registry. Chooses HTTPS or plain HTTP (loopback and
// --insecure-registry hosts), answers WWW-Authenticate challenges (Basic, Bearer tokens per scope),
// retries what is safe to retry, and turns every refusal into a one-line RegistryError.

import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { BerthError } from "../errors.js";
import type { Descriptor } from "../images/store-api.js";
import type { Credentials } from "./credentials.js";
import { type Body, discard, header, httpRequest, type HttpResponse, NetworkError, readBody } from "./http.js";
import { DEFAULT_REGISTRY, isDigest, normalizeRegistry } from "./reference.js";

export const MANIFEST_LIMIT = 4 * 1024 * 1024;

/** A registry refused or failed a request. `status` is the HTTP status (0: no answer). */
export class RegistryError extends BerthError {
  constructor(message: string, readonly status: number, readonly codes: string[] = []) {
    super(message);
    this.name = "RegistryError";
  }
  get unauthorized(): boolean {
    return this.status === 401 || this.status === 403 || this.codes.includes("UNAUTHORIZED") || this.codes.includes("DENIED");
  }
  get notFound(): boolean {
    return this.status === 404 || this.codes.some((c) => c.endsWith("_UNKNOWN"));
  }
}

export interface RegistryClientOptions {
  credentials?: Credentials;
  /** Hosts (host[:port]) spoken to over plain HTTP or HTTPS without verification, as docker's --insecure-registry. */
  insecureRegistries?: string[];
  timeoutMs?: number;
  /** How often a dropped connection or a 5xx answer to a GET/HEAD is retried. */
  retries?: number;
  retryDelayMs?: number;
  userAgent?: string;
}

export interface RequestOptions {
  /** Token scopes the request needs, e.g. "repository:library/busybox:pull". */
  scopes?: string[];
  headers?: Record<string, string>;
  /** Makes the body; called again when the request is repeated (after an auth challenge). */
  body?: () => Body;
  /** Statuses that are answers, not errors (default: 2xx). */
  ok?: number[];
  /** What the request is for, used in error messages ("manifest latest"). */
  what?: string;
}

interface Challenge {
  scheme: "basic" | "bearer";
  params: Record<string, string>;
}

/** Registries spoken to over plain HTTP: loopback, as docker does. */
export function isLoopback(registry: string): boolean {
  const host = registry.startsWith("[") ? registry.slice(1, registry.indexOf("]"))
    : (registry.match(/:/g) ?? []).length > 1 ? registry : registry.replace(/:\d+$/, "");
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** BERTH_INSECURE_REGISTRIES: comma- or space-separated host[:port] list. */
export function insecureRegistriesFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.BERTH_INSECURE_REGISTRIES ?? "").split(/[\s,]+/).filter(Boolean).map(normalizeRegistry);
}

/** Parses a WWW-Authenticate header: `Bearer realm="...",service="...",scope="..."`. */
export function parseChallenge(text: string | undefined): Challenge | undefined {
  if (!text) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(text);
  if (!m) return undefined;
  const scheme = m[1].toLowerCase();
  if (scheme !== "basic" && scheme !== "bearer") return undefined;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g;
  for (let p = re.exec(m[2]); p; p = re.exec(m[2])) params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3];
  return { scheme, params };
}

/** One line from an error answer: the distribution-spec errors JSON, an HTML page, or a text snippet. */
export function describeErrorBody(body: Buffer, contentType: string | undefined): { text: string; codes: string[] } {
  const s = body.toString("utf8").trim();
  if (/html/i.test(contentType ?? "") || /^<(!doctype|html|head|body)/i.test(s)) {
    const title = /<title>([^<]*)<\/title>/i.exec(s)?.[1]?.trim();
    return { text: `an HTML page${title ? ` ("${title.slice(0, 80)}")` : ""} instead of a registry answer`, codes: [] };
  }
  try {
    const j = JSON.parse(s) as { errors?: { code?: string; message?: string; detail?: unknown }[]; error?: string; details?: string };
    if (Array.isArray(j.errors) && j.errors.length > 0) {
      const codes = j.errors.map((e) => String(e.code ?? "")).filter(Boolean);
      return { text: j.errors.map((e) => `${String(e.code ?? "error").toLowerCase()}: ${e.message ?? ""}`.trim()).join("; "), codes };
    }
    if (typeof j.error === "string") return { text: j.error + (typeof j.details === "string" ? `: ${j.details}` : ""), codes: [] };
  } catch {
    // not JSON: fall through
  }
  const printable = s.replace(/[^\x20-\x7e]+/g, " ").replace(/\s+/g, " ").slice(0, 120);
  return { text: printable ? `"${printable}"` : "no explanation", codes: [] };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function sha256Hex(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The digest of `bytes` with the algorithm of `like` (sha256 unless it names sha512). */
export function digestOf(bytes: Buffer, like = "sha256:"): string {
  const alg = like.startsWith("sha512:") ? "sha512" : "sha256";
  return `${alg}:${createHash(alg).update(bytes).digest("hex")}`;
}

const RETRYABLE_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ECONNABORTED", "EAI_AGAIN", "ERR_STREAM_PREMATURE_CLOSE"]);

function isTlsFailure(err: unknown): boolean {
  const code = (err as NetworkError).code ?? "";
  return code === "EPROTO" || code.startsWith("ERR_SSL") || code === "ECONNRESET" || code === "ECONNREFUSED" || /wrong version number|ssl/i.test((err as Error).message);
}

export class RegistryClient {
  readonly registry: string;
  private readonly host: string;
  private scheme: "https" | "http" | "unknown";
  private readonly insecure: boolean;
  private readonly opts: Required<Pick<RegistryClientOptions, "timeoutMs" | "retries" | "retryDelayMs" | "userAgent">>;
  private readonly credentials?: Credentials;
  private challenge?: Challenge;
  private readonly tokens = new Map<string, { value: string; expiresAt: number }>();

  constructor(registry: string, options: RegistryClientOptions = {}) {
    this.registry = normalizeRegistry(registry);
    const host = this.registry === DEFAULT_REGISTRY ? "registry-1.docker.io" : this.registry;
    try {
      this.host = new URL(`http://${host}`).host; // the form URLs compare with ([::ffff:7f00:1]:5000)
    } catch {
      throw new BerthError(`invalid registry address "${registry}": expected HOST[:PORT]`);
    }
    const insecureList = (options.insecureRegistries ?? []).map(normalizeRegistry);
    this.insecure = insecureList.includes(this.registry) || insecureList.includes(this.host);
    this.scheme = isLoopback(this.host) ? "http" : this.insecure ? "unknown" : "https";
    this.credentials = options.credentials;
    this.opts = {
      timeoutMs: options.timeoutMs ?? 60_000,
      retries: options.retries ?? 3,
      retryDelayMs: options.retryDelayMs ?? 500,
      userAgent: options.userAgent ?? `berth/0.1 node/${process.versions.node}`,
    };
  }

  /** "http://127.0.0.1:5000" once known. */
  baseUrl(): string {
    return `${this.scheme === "http" ? "http" : "https"}://${this.host}`;
  }

  private url(path: string): URL {
    return new URL(path, this.baseUrl());
  }

  private async send(method: string, url: URL, headers: Record<string, string>, body: Body): Promise<HttpResponse> {
    const req = { method, url, headers: { "user-agent": this.opts.userAgent, ...headers }, body, insecureTls: this.insecure, timeoutMs: this.opts.timeoutMs };
    if (this.scheme !== "unknown" || url.host !== this.host) return httpRequest(req);
    // An insecure registry: HTTPS without verification first, then plain HTTP (docker's order).
    try {
      const res = await httpRequest(req);
      this.scheme = "https";
      return res;
    } catch (err) {
      if (!isTlsFailure(err) || (body !== undefined && !Buffer.isBuffer(body))) throw err;
      this.scheme = "http";
      const httpUrl = new URL(url);
      httpUrl.protocol = "http:";
      return httpRequest({ ...req, url: httpUrl });
    }
  }

  private tokenKey(scopes: string[]): string {
    return [...new Set(scopes)].sort().join(" ");
  }

  private async authorization(scopes: string[]): Promise<string | undefined> {
    const c = this.challenge;
    if (!c) return undefined;
    if (c.scheme === "basic") {
      return this.credentials ? `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString("base64")}` : undefined;
    }
    const key = this.tokenKey(scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.value}`;
    const token = await this.fetchToken(c.params, scopes);
    this.tokens.set(key, token);
    return `Bearer ${token.value}`;
  }

  private async fetchToken(params: Record<string, string>, scopes: string[]): Promise<{ value: string; expiresAt: number }> {
    let realm: URL;
    try {
      realm = new URL(params.realm ?? "");
      if (realm.protocol !== "https:" && realm.protocol !== "http:") throw new Error("not http(s)");
    } catch {
      throw new RegistryError(`registry ${this.registry} asked for a token from an invalid realm "${params.realm ?? ""}"`, 0);
    }
    if (params.service) realm.searchParams.set("service", params.service);
    for (const s of new Set(scopes)) realm.searchParams.append("scope", s);
    const headers: Record<string, string> = { "user-agent": this.opts.userAgent, accept: "application/json" };
    if (this.credentials) {
      realm.searchParams.set("account", this.credentials.username);
      headers.authorization = `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString("base64")}`;
    }
    let res: HttpResponse;
    try {
      res = await httpRequest({ method: "GET", url: realm, headers, timeoutMs: this.opts.timeoutMs, insecureTls: this.insecure });
    } catch (err) {
      throw new RegistryError(`cannot reach the token server ${realm.origin} of registry ${this.registry}: ${(err as Error).message}`, 0);
    }
    const body = await readBody(res, 1024 * 1024, `token server ${realm.origin}`);
    if (res.status === 401 || res.status === 403) {
      const why = this.credentials ? "incorrect username or password" : "authentication required";
      const hint = this.credentials ? `check the credentials (berth login ${this.registry})` : `log in first: berth login ${this.registry}`;
      throw new RegistryError(`unauthorized: ${why} (token server ${realm.origin} of registry ${this.registry} answered HTTP ${res.status}): ${hint}`, 401, ["UNAUTHORIZED"]);
    }
    if (res.status !== 200) {
      const d = describeErrorBody(body, header(res.headers, "content-type"));
      throw new RegistryError(`the token server ${realm.origin} of registry ${this.registry} answered HTTP ${res.status}: ${d.text}`, res.status, d.codes);
    }
    let answer: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      answer = JSON.parse(body.toString("utf8")) as typeof answer;
    } catch {
      throw new RegistryError(`the token server ${realm.origin} of registry ${this.registry} answered ${describeErrorBody(body, header(res.headers, "content-type")).text}, not a token`, res.status);
    }
    const value = typeof answer.token === "string" && answer.token ? answer.token : answer.access_token;
    if (typeof value !== "string" || !value) throw new RegistryError(`the token server ${realm.origin} of registry ${this.registry} answered without a token`, res.status);
    const expiresIn = typeof answer.expires_in === "number" && answer.expires_in > 0 ? answer.expires_in : 60;
    // Renew a little early, as docker does.
    return { value, expiresAt: Date.now() + Math.max(expiresIn - 10, expiresIn / 2) * 1000 };
  }

  /**
   * One registry request with auth, redirects (GET/HEAD) and retries (GET/HEAD, network errors and
   * 5xx). Returns the response for statuses in `ok` (default 2xx); throws a RegistryError otherwise.
   */
  async request(method: string, pathOrUrl: string | URL, o: RequestOptions = {}): Promise<HttpResponse> {
    const idempotent = method === "GET" || method === "HEAD";
    const what = o.what ?? `${method} ${typeof pathOrUrl === "string" ? pathOrUrl : pathOrUrl.pathname}`;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.requestOnce(method, pathOrUrl, o, what);
      } catch (err) {
        const retry = idempotent && attempt < this.opts.retries && (
          (err instanceof NetworkError && RETRYABLE_CODES.has(err.code ?? "")) ||
          (err instanceof RegistryError && [429, 500, 502, 503, 504].includes(err.status)));
        if (!retry) {
          if (err instanceof NetworkError) {
            if (["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"].includes(err.code ?? "")) {
              throw new RegistryError(`cannot reach registry ${this.registry} (${this.baseUrl()}) for ${what}: ${err.message}: check the address and that the registry is running`, 0);
            }
            if (isTlsFailure(err) && this.scheme === "https" && err.code !== "ECONNRESET") {
              throw new RegistryError(`TLS handshake with registry ${this.registry} failed for ${what}: ${err.message}: if it speaks plain HTTP, pass --insecure-registry ${this.registry} (or set BERTH_INSECURE_REGISTRIES)`, 0);
            }
            throw new RegistryError(`the connection to registry ${this.registry} (${this.baseUrl()}) broke during ${what} after ${attempt + 1} tries: ${err.message}`, 0);
          }
          throw err;
        }
        await sleep(this.opts.retryDelayMs * (attempt + 1));
      }
    }
  }

  private async requestOnce(method: string, pathOrUrl: string | URL, o: RequestOptions, what: string): Promise<HttpResponse> {
    const scopes = o.scopes ?? [];
    let url = typeof pathOrUrl === "string" ? this.url(pathOrUrl) : pathOrUrl;
    let authRetried = false;
    for (let redirects = 0; ; ) {
      const sameHost = url.host === this.host;
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      const auth = sameHost ? await this.authorization(scopes) : undefined;
      if (auth) headers.authorization = auth;
      const res = await this.send(method, url, headers, o.body?.());
      if ((o.ok ?? []).includes(res.status) || (o.ok === undefined && res.status >= 200 && res.status < 300)) return res;
      if (res.status === 401 && sameHost && !authRetried) {
        const challenge = parseChallenge(header(res.headers, "www-authenticate"));
        if (challenge && (challenge.scheme === "bearer" || this.credentials)) {
          discard(res);
          if (challenge.scheme === "bearer" && challenge.params.scope) scopes.push(...challenge.params.scope.split(" ").filter(Boolean));
          const hadSame = this.challenge?.scheme === challenge.scheme;
          this.challenge = challenge;
          if (hadSame) this.tokens.delete(this.tokenKey(scopes));
          authRetried = true;
          continue;
        }
      }
      if ([301, 302, 303, 307, 308].includes(res.status) && (method === "GET" || method === "HEAD") && redirects < 5) {
        const location = header(res.headers, "location");
        discard(res);
        if (!location) throw new RegistryError(`registry ${this.registry} redirected ${what} without a Location`, res.status);
        url = new URL(location, url);
        redirects++;
        continue;
      }
      throw await this.errorFor(res, what);
    }
  }

  private async errorFor(res: HttpResponse, what: string): Promise<RegistryError> {
    let body: Buffer = Buffer.alloc(0);
    try {
      body = await readBody(res, 64 * 1024, what);
    } catch {
      // an unreadable error body: the status alone says enough
    }
    const d = describeErrorBody(body, header(res.headers, "content-type"));
    let text = d.text;
    if (res.status === 401 || res.status === 403) {
      const hint = this.credentials ? "check the credentials (berth login)" : `log in first: berth login ${this.registry}`;
      if (!/unauthorized|denied/i.test(text)) text = `unauthorized: ${text}`;
      text = `${text}: ${hint}`;
    }
    return new RegistryError(`registry ${this.registry} answered HTTP ${res.status} to ${what}: ${text}`, res.status, d.codes);
  }

  /** GET /v2/: checks the registry speaks the v2 API and accepts our credentials (login). */
  async ping(): Promise<void> {
    const res = await this.request("GET", "/v2/", { what: "the API check (/v2/)" });
    discard(res);
  }

  /** Fetches a manifest by tag or digest; verifies it against the digest we asked for and the registry's header. */
  async getManifest(repo: string, tagOrDigest: string, accept: string[]): Promise<{ bytes: Buffer; contentType: string; digest: string }> {
    const what = `manifest ${repo}:${tagOrDigest}`.replace(":sha", "@sha");
    const res = await this.request("GET", `/v2/${repo}/manifests/${tagOrDigest}`, {
      scopes: [`repository:${repo}:pull`],
      headers: { accept: accept.join(", ") },
      what,
    });
    const bytes = await readBody(res, MANIFEST_LIMIT, `registry ${this.registry}: ${what}`);
    const contentType = (header(res.headers, "content-type") ?? "").split(";")[0].trim();
    const byDigest = isDigest(tagOrDigest);
    const digest = digestOf(bytes, byDigest ? tagOrDigest : "sha256:");
    if (byDigest && digest !== tagOrDigest) {
      throw new RegistryError(`registry ${this.registry} sent a manifest for ${what} whose digest is ${digest}: refusing it`, res.status);
    }
    const claimed = header(res.headers, "docker-content-digest");
    if (claimed && isDigest(claimed) && claimed.split(":")[0] === digest.split(":")[0] && claimed !== digest) {
      throw new RegistryError(`registry ${this.registry} sent a manifest for ${what} whose bytes hash to ${digest}, not the ${claimed} it claimed: refusing it`, res.status);
    }
    return { bytes, contentType, digest };
  }

  /** HEAD a blob: true when the repository has it. */
  async hasBlob(repo: string, digest: string, scopes = [`repository:${repo}:pull`]): Promise<boolean> {
    const res = await this.request("HEAD", `/v2/${repo}/blobs/${digest}`, { scopes, ok: [200, 404], what: `blob ${digest}` });
    discard(res);
    return res.status === 200;
  }

  /** A small blob (config) in memory, verified against its descriptor. */
  async fetchBlob(repo: string, desc: Pick<Descriptor, "digest" | "size">, limit: number, what = "blob"): Promise<Buffer> {
    if (desc.size > limit) throw new RegistryError(`the ${what} ${desc.digest} of ${repo} is ${desc.size} bytes, more than the ${limit} allowed`, 0);
    const res = await this.request("GET", `/v2/${repo}/blobs/${desc.digest}`, { scopes: [`repository:${repo}:pull`], what: `${what} ${desc.digest}` });
    const bytes = await readBody(res, limit, `registry ${this.registry}: ${what} ${desc.digest}`);
    const got = digestOf(bytes, desc.digest);
    if (got !== desc.digest || bytes.length !== desc.size) {
      throw new RegistryError(`registry ${this.registry} sent a ${what} for ${desc.digest} that does not match (${bytes.length} bytes, digest ${got}): refusing it`, res.status);
    }
    return bytes;
  }

  /**
   * A blob's bytes from `offset` on, as a stream. A dropped connection is resumed with Range (a few
   * times); a registry that ignores Range is read from the start and the bytes before `offset` skipped.
   * The stream fails if the blob turns out longer or (after the retries) shorter than `desc.size`.
   */
  async openBlob(repo: string, desc: Pick<Descriptor, "digest" | "size">, offset: number, onRetry?: (pos: number, err: Error) => void): Promise<Readable> {
    const what = `blob ${desc.digest}`;
    const scopes = [`repository:${repo}:pull`];
    const size = desc.size;
    const start = async (pos: number): Promise<{ res: HttpResponse; skip: number } | undefined> => {
      const res = await this.request("GET", `/v2/${repo}/blobs/${desc.digest}`, {
        scopes,
        headers: pos > 0 ? { range: `bytes=${pos}-` } : {},
        ok: [200, 206, 416],
        what,
      });
      if (res.status === 416) {
        discard(res);
        if (pos >= size) return undefined;
        throw new RegistryError(`registry ${this.registry} refused the range bytes=${pos}- of ${what} (HTTP 416)`, 416);
      }
      if (res.status === 200) return { res, skip: pos };
      const m = /^bytes (\d+)-/.exec(header(res.headers, "content-range") ?? "");
      const from = m ? Number(m[1]) : 0;
      if (from > pos) {
        discard(res);
        throw new RegistryError(`registry ${this.registry} answered bytes ${from}- of ${what} when asked for bytes ${pos}-`, 206);
      }
      return { res, skip: pos - from };
    };
    const first = offset >= size && size > 0 ? undefined : await start(offset);
    const retries = this.opts.retries;
    const delay = this.opts.retryDelayMs;
    const registry = this.registry;
    async function* body(): AsyncGenerator<Buffer> {
      let pos = offset;
      let current = first;
      let failures = 0;
      while (current) {
        const { res } = current;
        let skip = current.skip;
        try {
          for await (const raw of res.stream as AsyncIterable<Buffer>) {
            let chunk = raw;
            if (skip > 0) {
              const n = Math.min(skip, chunk.length);
              skip -= n;
              chunk = chunk.subarray(n);
              if (chunk.length === 0) continue;
            }
            if (pos + chunk.length > size) throw new RegistryError(`registry ${registry} sent more than the ${size} bytes of ${what}: refusing it`, res.status);
            pos += chunk.length;
            failures = 0;
            yield chunk;
          }
          if (pos >= size) return;
          throw new NetworkError(`the connection closed after ${pos} of ${size} bytes`, "ECONNRESET");
        } catch (err) {
          res.stream.destroy();
          if (err instanceof RegistryError || failures >= retries) {
            if (err instanceof RegistryError) throw err;
            throw new RegistryError(`download of ${what} from registry ${registry} failed after ${failures + 1} tries at byte ${pos} of ${size}: ${(err as Error).message}`, 0);
          }
          failures++;
          onRetry?.(pos, err as Error);
          await sleep(delay * failures);
          current = await start(pos);
        } finally {
          res.stream.destroy();
        }
      }
    }
    return Readable.from(body(), { objectMode: false });
  }

  /**
   * Starts a blob upload, or mounts the blob from another repository of this registry. Returns
   * "mounted" or the upload URL.
   */
  async startUpload(repo: string, mount?: { digest: string; from: string }): Promise<"mounted" | URL> {
    const scopes = [`repository:${repo}:pull,push`];
    let path = `/v2/${repo}/blobs/uploads/`;
    if (mount) {
      scopes.push(`repository:${mount.from}:pull`);
      path += `?mount=${encodeURIComponent(mount.digest)}&from=${encodeURIComponent(mount.from)}`;
    }
    const res = await this.request("POST", path, { scopes, ok: [201, 202], what: mount ? `mount of ${mount.digest} from ${mount.from}` : "blob upload start", body: () => Buffer.alloc(0) });
    discard(res);
    if (res.status === 201 && mount) return "mounted";
    return this.uploadLocation(res, "blob upload start");
  }

  private uploadLocation(res: HttpResponse, what: string): URL {
    const loc = header(res.headers, "location");
    if (!loc) throw new RegistryError(`registry ${this.registry} answered ${what} without an upload Location`, res.status);
    return new URL(loc, res.url);
  }

  /** PATCH one chunk of an upload (Content-Range start-end); returns the next upload URL. */
  async uploadChunk(repo: string, location: URL, start: number, chunk: Buffer): Promise<URL> {
    const res = await this.request("PATCH", location, {
      scopes: [`repository:${repo}:pull,push`],
      headers: { "content-type": "application/octet-stream", "content-range": `${start}-${start + chunk.length - 1}` },
      body: () => chunk,
      ok: [202],
      what: `blob upload chunk at ${start}`,
    });
    discard(res);
    return this.uploadLocation(res, `blob upload chunk at ${start}`);
  }

  /** Completes an upload with PUT ?digest=, with the whole blob (monolithic) or nothing (after chunks). */
  async finishUpload(repo: string, location: URL, digest: string, body?: { size: number; open: () => Readable }): Promise<void> {
    const url = new URL(location);
    url.searchParams.set("digest", digest);
    const res = await this.request("PUT", url, {
      scopes: [`repository:${repo}:pull,push`],
      headers: body ? { "content-type": "application/octet-stream", "content-length": String(body.size) } : { "content-length": "0" },
      body: body ? () => body.open() : () => Buffer.alloc(0),
      ok: [201, 204],
      what: `blob upload of ${digest}`,
    });
    discard(res);
  }

  /** PUT a manifest by tag (or digest); returns the digest the registry reports (or ours). */
  async putManifest(repo: string, tagOrDigest: string, bytes: Buffer, mediaType: string): Promise<string> {
    const res = await this.request("PUT", `/v2/${repo}/manifests/${tagOrDigest}`, {
      scopes: [`repository:${repo}:pull,push`],
      headers: { "content-type": mediaType },
      body: () => bytes,
      ok: [200, 201, 202],
      what: `manifest ${repo}:${tagOrDigest}`,
    });
    discard(res);
    const ours = digestOf(bytes);
    const theirs = header(res.headers, "docker-content-digest");
    if (theirs && isDigest(theirs) && theirs.startsWith("sha256:") && theirs !== ours) {
      throw new RegistryError(`registry ${this.registry} stored the manifest of ${repo}:${tagOrDigest} as ${theirs}, not ${ours}`, res.status);
    }
    return ours;
  }
}
