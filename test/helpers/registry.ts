// Test helpers for the distribution tests: a small in-memory OCI registry on 127.0.0.1 (with fault
// injection: tampered blobs, dropped connections, ignored Range, slow blobs, HTML/garbage answers,
// Basic or Bearer auth with its own token endpoint), a tiny tar writer and image builder, and helpers
// for the real Debian docker-registry.

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { freePort } from "./net.js";

export const sha256 = (b: Buffer | string): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

// ---- tar and images ----------------------------------------------------------------------------------

export interface TarEntry {
  name: string;
  type?: "file" | "dir" | "symlink";
  data?: Buffer | string;
  mode?: number;
  linkname?: string;
}

function tarHeader(e: TarEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(e.name, 0, 100, "utf8");
  const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, "0") + "\0";
  h.write(octal(e.mode ?? (e.type === "dir" ? 0o755 : 0o644), 8), 100);
  h.write(octal(0, 8), 108);
  h.write(octal(0, 8), 116);
  h.write(octal(size, 12), 124);
  h.write(octal(1700000000, 12), 136);
  h.write("        ", 148);
  h.write(e.type === "dir" ? "5" : e.type === "symlink" ? "2" : "0", 156);
  if (e.linkname) h.write(e.linkname, 157, 100, "utf8");
  h.write("ustar\0", 257);
  h.write("00", 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  return h;
}

/** An uncompressed ustar archive of `entries`. */
export function makeTar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.type === "file" || e.type === undefined ? Buffer.from(e.data ?? "") : Buffer.alloc(0);
    parts.push(tarHeader(e, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export interface TestImage {
  manifest: Buffer;
  manifestDigest: string;
  mediaType: string;
  config: Buffer;
  configDigest: string;
  layers: { digest: string; bytes: Buffer; diffId: string; mediaType: string }[];
}

/** An image of gzipped tar layers (OCI or Docker media types). */
export function makeImage(layerTars: Buffer[], options: { docker?: boolean; arch?: string; os?: string; compress?: boolean } = {}): TestImage {
  const docker = options.docker ?? false;
  const layers = layerTars.map((tar) => {
    const compress = options.compress ?? true;
    const bytes = compress ? gzipSync(tar) : tar;
    const mediaType = docker
      ? (compress ? "application/vnd.docker.image.rootfs.diff.tar.gzip" : "application/vnd.docker.image.rootfs.diff.tar")
      : (compress ? "application/vnd.oci.image.layer.v1.tar+gzip" : "application/vnd.oci.image.layer.v1.tar");
    return { digest: sha256(bytes), bytes, diffId: sha256(tar), mediaType };
  });
  const config = Buffer.from(JSON.stringify({
    architecture: options.arch ?? "amd64",
    os: options.os ?? "linux",
    created: "2024-01-01T00:00:00Z",
    config: { Cmd: ["/bin/sh"], Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created: "2024-01-01T00:00:00Z", created_by: "test" })),
  }));
  const mediaType = docker ? "application/vnd.docker.distribution.manifest.v2+json" : "application/vnd.oci.image.manifest.v1+json";
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    config: { mediaType: docker ? "application/vnd.docker.container.image.v1+json" : "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.bytes.length })),
  }));
  return { manifest, manifestDigest: sha256(manifest), mediaType, config, configDigest: sha256(config), layers };
}

/** An index over images with platforms. */
export function makeIndex(entries: { image: TestImage; platform: { os: string; architecture: string; variant?: string } }[], docker = false): { bytes: Buffer; digest: string; mediaType: string } {
  const mediaType = docker ? "application/vnd.docker.distribution.manifest.list.v2+json" : "application/vnd.oci.image.index.v1+json";
  const bytes = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    manifests: entries.map((e) => ({ mediaType: e.image.mediaType, digest: e.image.manifestDigest, size: e.image.manifest.length, platform: e.platform })),
  }));
  return { bytes, digest: sha256(bytes), mediaType };
}

/** Writes an image as an OCI layout directory (for skopeo copy oci:DIR:TAG). */
export function writeOciLayout(dir: string, image: TestImage, tag: string): void {
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  const put = (b: Buffer) => writeFileSync(join(dir, "blobs", "sha256", sha256(b).slice(7)), b);
  put(image.manifest);
  put(image.config);
  for (const l of image.layers) put(l.bytes);
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(dir, "index.json"), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: image.mediaType, digest: image.manifestDigest, size: image.manifest.length, annotations: { "org.opencontainers.image.ref.name": tag } }],
  }));
}

// ---- the in-memory registry -----------------------------------------------------------------------------

export interface LoggedRequest {
  method: string;
  path: string;
  range?: string;
  authorization?: string;
}

export interface FakeRegistryOptions {
  /** "basic": user/pass on every /v2 request; "bearer": tokens from /token (Basic user/pass, or anonymous when `anonymousPull`). */
  auth?: "basic" | "bearer";
  user?: string;
  pass?: string;
  anonymousPull?: boolean;
}

export class FakeRegistry {
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, { bytes: Buffer; mediaType: string }>(); // "repo:ref"
  readonly repoBlobs = new Map<string, Set<string>>();
  readonly log: LoggedRequest[] = [];
  readonly tokenRequests: string[] = [];
  readonly uploads = new Map<string, { repo: string; data: Buffer[] }>();
  /** Serve these blobs with one byte changed. */
  readonly tamper = new Set<string>();
  /** Close the connection after this many bytes of the blob, `times` times. */
  readonly drop = new Map<string, { after: number; times: number }>();
  /** Answer 200 with the whole blob even when asked for a Range. */
  ignoreRange = false;
  /** Bytes per 50 ms for blob bodies (0: no limit). */
  slowBytesPer50ms = 0;
  /** Replace the answer to GET manifests (status, content type, body). */
  manifestOverride?: (repo: string, ref: string) => { status: number; type: string; body: string | Buffer; headers?: Record<string, string> } | undefined;
  /** Disallow cross-repository mounts. */
  noMount = false;
  private server?: http.Server;
  port = 0;

  constructor(readonly options: FakeRegistryOptions = {}) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  addImage(repo: string, tag: string | undefined, image: TestImage): void {
    this.addBlob(repo, image.config);
    for (const l of image.layers) this.addBlob(repo, l.bytes);
    this.manifests.set(`${repo}:${image.manifestDigest}`, { bytes: image.manifest, mediaType: image.mediaType });
    if (tag) this.manifests.set(`${repo}:${tag}`, { bytes: image.manifest, mediaType: image.mediaType });
  }

  addIndex(repo: string, tag: string, index: { bytes: Buffer; digest: string; mediaType: string }, images: TestImage[]): void {
    for (const im of images) this.addImage(repo, undefined, im);
    this.manifests.set(`${repo}:${tag}`, { bytes: index.bytes, mediaType: index.mediaType });
    this.manifests.set(`${repo}:${index.digest}`, { bytes: index.bytes, mediaType: index.mediaType });
  }

  addBlob(repo: string, bytes: Buffer): string {
    const d = sha256(bytes);
    this.blobs.set(d, bytes);
    if (!this.repoBlobs.has(repo)) this.repoBlobs.set(repo, new Set());
    this.repoBlobs.get(repo)!.add(d);
    return d;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500).end(String(err));
        else res.destroy();
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
  }

  private tokenFor(scopes: string[]): string {
    return `tok.${Buffer.from(scopes.join(" ")).toString("base64url")}`;
  }

  private authorized(req: IncomingMessage, scope: string | undefined): boolean {
    const a = req.headers.authorization ?? "";
    const basic = `Basic ${Buffer.from(`${this.options.user}:${this.options.pass}`).toString("base64")}`;
    if (this.options.auth === "basic") return a === basic;
    if (this.options.auth === "bearer") {
      if (!a.startsWith("Bearer tok.")) return false;
      const granted = Buffer.from(a.slice(11), "base64url").toString().split(" ");
      if (!scope) return true;
      const [, name, actions] = scope.split(":");
      return actions.split(",").every((act) => granted.some((g) => {
        const [, gn, ga] = g.split(":");
        return gn === name && ga.split(",").includes(act);
      }));
    }
    return true;
  }

  private challenge(res: ServerResponse, scope: string | undefined): void {
    const value = this.options.auth === "basic"
      ? `Basic realm="fake"`
      : `Bearer realm="http://${this.host}/token",service="fake-registry"${scope ? `,scope="${scope}"` : ""}`;
    res.writeHead(401, { "www-authenticate": value, "content-type": "application/json" });
    res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] }));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", `http://${this.host}`);
    const method = req.method ?? "GET";
    this.log.push({ method, path: url.pathname + url.search, range: req.headers.range, authorization: req.headers.authorization });
    const body = await new Promise<Buffer>((r) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => r(Buffer.concat(chunks)));
    });
    const json = (status: number, obj: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(method === "HEAD" ? undefined : JSON.stringify(obj));
    };
    const err = (status: number, code: string, message: string) => json(status, { errors: [{ code, message }] });

    if (url.pathname === "/token") {
      this.tokenRequests.push(url.search);
      const scopes = url.searchParams.getAll("scope").flatMap((s) => s.split(" "));
      const a = req.headers.authorization;
      const good = a === `Basic ${Buffer.from(`${this.options.user}:${this.options.pass}`).toString("base64")}`;
      if (a ? !good : !this.options.anonymousPull) return json(401, { details: "incorrect username or password" });
      const granted = good ? scopes : scopes.map((s) => s.replace(/:[^:]*$/, ":pull")).filter((s) => s.startsWith("repository:"));
      return json(200, { token: this.tokenFor(granted), expires_in: 300 });
    }
    if (url.pathname === "/v2/" || url.pathname === "/v2") {
      if (!this.authorized(req, undefined) && this.options.auth === "basic") return this.challenge(res, undefined);
      if (this.options.auth === "bearer" && !req.headers.authorization) return this.challenge(res, undefined);
      return json(200, {});
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
    const u = /^\/v2\/(.+)\/blobs\/uploads\/(.*)$/.exec(url.pathname);
    const repo = u ? u[1] : m?.[1];
    if (!repo) return err(404, "NAME_UNKNOWN", "no such route");
    const writing = method !== "GET" && method !== "HEAD";
    const scope = `repository:${repo}:${writing ? "pull,push" : "pull"}`;
    if (!this.authorized(req, scope)) return this.challenge(res, scope);

    if (u) return this.handleUpload(method, repo, u[2], url, req, body, res, json, err);
    const [, , kind, ref] = m!;
    if (kind === "manifests") {
      if (method === "PUT") {
        const mediaType = String(req.headers["content-type"] ?? "");
        const d = sha256(body);
        this.manifests.set(`${repo}:${ref}`, { bytes: body, mediaType });
        this.manifests.set(`${repo}:${d}`, { bytes: body, mediaType });
        res.writeHead(201, { "docker-content-digest": d, location: `/v2/${repo}/manifests/${d}` });
        return void res.end();
      }
      const o = this.manifestOverride?.(repo, ref);
      if (o) {
        res.writeHead(o.status, { "content-type": o.type, ...(o.headers ?? {}) });
        return void res.end(method === "HEAD" ? undefined : o.body);
      }
      const man = this.manifests.get(`${repo}:${ref}`);
      if (!man) return err(404, "MANIFEST_UNKNOWN", "manifest unknown");
      res.writeHead(200, { "content-type": man.mediaType, "docker-content-digest": sha256(man.bytes), "content-length": String(man.bytes.length) });
      return void res.end(method === "HEAD" ? undefined : man.bytes);
    }
    // blobs
    let blob = this.repoBlobs.get(repo)?.has(ref) ? this.blobs.get(ref) : undefined;
    if (!blob) return err(404, "BLOB_UNKNOWN", "blob unknown to registry");
    if (this.tamper.has(ref)) {
      blob = Buffer.from(blob);
      blob[Math.floor(blob.length / 2)] ^= 0xff;
    }
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (range && !this.ignoreRange) start = Number(range[1]);
    if (start > blob.length) {
      res.writeHead(416);
      return void res.end();
    }
    const part = blob.subarray(start);
    const headers: Record<string, string> = { "content-type": "application/octet-stream", "content-length": String(part.length), "docker-content-digest": ref };
    if (range && !this.ignoreRange) headers["content-range"] = `bytes ${start}-${blob.length - 1}/${blob.length}`;
    res.writeHead(range && !this.ignoreRange ? 206 : 200, headers);
    if (method === "HEAD") return void res.end();
    const drop = this.drop.get(ref);
    let limit = part.length;
    if (drop && drop.times > 0) {
      drop.times--;
      limit = Math.max(0, Math.min(part.length, drop.after - start));
    }
    const step = this.slowBytesPer50ms || 64 * 1024;
    for (let off = 0; off < limit; off += step) {
      if (res.destroyed) return;
      res.write(part.subarray(off, Math.min(limit, off + step)));
      if (this.slowBytesPer50ms) await new Promise((r) => setTimeout(r, 50));
    }
    if (limit < part.length) {
      await new Promise((r) => setTimeout(r, 20));
      res.destroy();
      return;
    }
    res.end();
  }

  private handleUpload(method: string, repo: string, id: string, url: URL, req: IncomingMessage, body: Buffer, res: ServerResponse,
    json: (s: number, o: unknown, h?: Record<string, string>) => void, err: (s: number, c: string, m: string) => void): void {
    if (method === "POST" && id === "") {
      const mount = url.searchParams.get("mount");
      const from = url.searchParams.get("from");
      if (mount && from && !this.noMount && this.repoBlobs.get(from)?.has(mount)) {
        if (!this.repoBlobs.has(repo)) this.repoBlobs.set(repo, new Set());
        this.repoBlobs.get(repo)!.add(mount);
        res.writeHead(201, { location: `/v2/${repo}/blobs/${mount}`, "docker-content-digest": mount });
        return void res.end();
      }
      const uuid = randomUUID();
      this.uploads.set(uuid, { repo, data: [] });
      res.writeHead(202, { location: `/v2/${repo}/blobs/uploads/${uuid}?_state=x`, range: "0-0", "docker-upload-uuid": uuid });
      return void res.end();
    }
    const up = this.uploads.get(id);
    if (!up) return err(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown");
    if (method === "PATCH") {
      const have = up.data.reduce((a, b) => a + b.length, 0);
      const cr = /^(\d+)-(\d+)$/.exec(String(req.headers["content-range"] ?? ""));
      if (cr && Number(cr[1]) !== have) return err(416, "BLOB_UPLOAD_INVALID", "bad range");
      up.data.push(body);
      const total = have + body.length;
      res.writeHead(202, { location: `/v2/${repo}/blobs/uploads/${id}?_state=y`, range: `0-${total - 1}` });
      return void res.end();
    }
    if (method === "PUT") {
      up.data.push(body);
      const all = Buffer.concat(up.data);
      const digest = url.searchParams.get("digest");
      if (digest !== sha256(all)) return err(400, "DIGEST_INVALID", "provided digest did not match uploaded content");
      this.uploads.delete(id);
      this.addBlob(repo, all);
      return json(201, {}, { location: `/v2/${repo}/blobs/${digest}`, "docker-content-digest": digest });
    }
    return err(405, "UNSUPPORTED", "unsupported");
  }
}

// ---- the real docker-registry -------------------------------------------------------------------------

export function haveCommand(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}

export { freePort };

export interface RealRegistry {
  port: number;
  host: string;
  proc: ChildProcess;
  logs: () => string;
  stop: () => Promise<void>;
}

/** Starts `docker-registry serve` on 127.0.0.1:<free port> with `dir` as its storage; extra YAML (auth:) appended. */
export async function startDockerRegistry(dir: string, extraYaml = ""): Promise<RealRegistry> {
  const port = await freePort();
  mkdirSync(join(dir, "storage"), { recursive: true });
  const config = join(dir, "config.yml");
  writeFileSync(config, [
    "version: 0.1",
    "log:",
    "  level: info",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${join(dir, "storage")}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: 127.0.0.1:${port}`,
    extraYaml,
  ].join("\n"));
  const proc = spawn("docker-registry", ["serve", config], { stdio: ["ignore", "pipe", "pipe"] });
  let logs = "";
  proc.stdout?.on("data", (d: Buffer) => { logs += d.toString(); });
  proc.stderr?.on("data", (d: Buffer) => { logs += d.toString(); });
  const exited = new Promise<void>((r) => proc.on("exit", () => r()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`docker-registry exited: ${logs}`);
    const ok = await new Promise<boolean>((r) => {
      const q = http.get(`http://127.0.0.1:${port}/v2/`, (res) => { res.resume(); r(true); });
      q.on("error", () => r(false));
    });
    if (ok) break;
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`docker-registry did not start on ${port}: ${logs}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    host: `127.0.0.1:${port}`,
    proc,
    logs: () => logs,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGTERM");
        const t = setTimeout(() => proc.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}
