// Layer unpacking: a (gzip | zstd | plain) tar stream -> a directory that overlayfs can use as a lower
// layer. Computes the diff ID (sha256 of the uncompressed tar) and the compressed digest on the way.
// Keeps owner, mode, mtime, hard links, symlinks, device nodes, fifos and xattrs; maps OCI whiteouts to
// overlayfs whiteouts (char 0:0) and opaque dirs (trusted.overlay.opaque=y). What Node cannot create
// (mknod, setxattr) is done by the native helper in batches, with paths resolved inside the layer.

import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { createHash, type Hash } from "node:crypto";
import {
  accessSync, chmodSync, constants as fsConstants, closeSync, createWriteStream, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lstatSync, lutimesSync,
  mkdirSync, openSync, rmSync, symlinkSync, writeSync,
} from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { type Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, type Gunzip } from "node:zlib";
import { Decompress as ZstdDecompress } from "fzstd";
import tar from "tar-stream";
import type { Op } from "../core/plan.js";
import { BerthError } from "../errors.js";
import { runFilesystemOps } from "../runtime/helper.js";
import { hostIdOf, type IdShift, shiftFileCapability } from "./idmap.js";
import { cleanEntryPath, OVERLAY_OPAQUE_XATTR, parentsOf, paxXattrs, whiteoutAction } from "./tar-paths.js";

// tar-stream decodes PAX values as UTF-8, which mangles binary xattr values (security.capability):
// keep SCHILY.xattr.* values as latin1 strings so their bytes survive (paxXattrs turns them back).
{
  const require = createRequire(import.meta.url);
  const headers = require(join(dirname(require.resolve("tar-stream")), "headers.js")) as { decodePax: (b: Buffer) => Record<string, string>; __berth?: boolean };
  if (!headers.__berth) {
    headers.__berth = true;
    headers.decodePax = (buf: Buffer) => {
      const result: Record<string, string> = {};
      while (buf.length) {
        let i = 0;
        while (i < buf.length && buf[i] !== 32) i++;
        const len = parseInt(buf.subarray(0, i).toString("utf8"), 10);
        if (!len) return result;
        const record = buf.subarray(i + 1, len - 1);
        const eq = record.indexOf(61);
        if (eq === -1) return result;
        const key = record.subarray(0, eq).toString("utf8");
        const value = record.subarray(eq + 1);
        result[key] = key.startsWith("SCHILY.xattr.") ? value.toString("latin1") : value.toString("utf8");
        buf = buf.subarray(len);
      }
      return result;
    };
  }
}

const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const OPS_BATCH = 2000;

/** Counts and hashes the bytes passing through. */
export class HashTap extends Transform {
  readonly hash: Hash = createHash("sha256");
  bytes = 0;
  constructor(private readonly onBytes?: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    cb(null, chunk);
  }
  digest(): string {
    return `sha256:${this.hash.digest("hex")}`;
  }
}

let zstdTool: string | null | undefined;

/** The zstd(1) program on PATH, if any (looked up once). */
function findZstdTool(): string | undefined {
  if (zstdTool === undefined) {
    zstdTool = null;
    for (const dir of (process.env.PATH || "/usr/local/bin:/usr/bin:/bin").split(":")) {
      if (!dir.startsWith("/")) continue;
      try {
        accessSync(join(dir, "zstd"), fsConstants.X_OK);
        zstdTool = join(dir, "zstd");
        break;
      } catch { /* not here */ }
    }
  }
  return zstdTool ?? undefined;
}

const TRUNCATED = "the compressed data ends early (truncated)";

/**
 * Decompresses gzip or zstd, recognised by their magic bytes; passes anything else through. zstd goes
 * through zstd(1) when it is installed (about 7x faster than the fzstd package, which is the fallback;
 * `zstdTool: false` forces the fallback).
 */
export class Decompressor extends Transform {
  #head: Buffer[] = [];
  #headLen = 0;
  #mode: "sniff" | "gzip" | "zstd" | "zstd-tool" | "plain" = "sniff";
  #gunzip?: Gunzip;
  #zstd?: ZstdDecompress;
  #gzipEnded?: Promise<void>;
  #child?: ChildProcessWithoutNullStreams;
  #childEnded?: Promise<void>;

  constructor(private readonly options: { zstdTool?: boolean } = {}) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.#mode === "sniff") {
      this.#head.push(chunk);
      this.#headLen += chunk.length;
      if (this.#headLen < 4) return cb();
      const head = Buffer.concat(this.#head);
      this.#head = [];
      this.#start(head);
      this.#feed(head, cb);
      return;
    }
    this.#feed(chunk, cb);
  }

  #start(head: Buffer): void {
    if (head[0] === 0x1f && head[1] === 0x8b) {
      this.#mode = "gzip";
      const g = createGunzip();
      this.#gunzip = g;
      g.on("data", (d: Buffer) => this.push(d));
      this.#gzipEnded = new Promise((res, rej) => {
        g.on("end", () => res());
        g.on("error", (e) => rej(new Error(`gzip: ${e.message === "unexpected end of file" ? "the compressed data ends early (truncated)" : e.message}`)));
      });
      this.#gzipEnded.catch((e: Error) => this.destroy(e));
    } else if (head.readUInt32LE(0) === 0xfd2fb528) {
      const tool = this.options.zstdTool === false ? undefined : findZstdTool();
      if (tool) {
        this.#startZstdTool(tool);
        return;
      }
      this.#mode = "zstd";
      this.#zstd = new ZstdDecompress((d) => { this.push(Buffer.from(d)); });
    } else {
      this.#mode = "plain";
    }
  }

  #startZstdTool(tool: string): void {
    this.#mode = "zstd-tool";
    const child = spawn(tool, ["-d", "-c", "-q"], { stdio: ["pipe", "pipe", "pipe"] });
    this.#child = child;
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (s: string) => { stderr += s; });
    child.stdout.on("data", (d: Buffer) => this.push(d));
    // EPIPE when zstd quits on bad input: its exit status and message say why.
    child.stdin.on("error", () => {});
    this.#childEnded = new Promise((res, rej) => {
      child.on("error", (e) => rej(new Error(`zstd: cannot run ${tool}: ${e.message}`)));
      child.on("close", (code, signal) => {
        if (code === 0) return res();
        const why = stderr.replace(/\/\*stdin\*\\?\s*:\s*/g, "").replace(/^zstd:\s*/gm, "").trim().split("\n").pop() ?? "";
        rej(new Error(`zstd: ${/premature end|unexpected end|truncated/i.test(why) ? TRUNCATED : why || (signal ? `killed by ${signal}` : `exit status ${code}`)}`));
      });
    });
    this.#childEnded.catch((e: Error) => this.destroy(e));
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    // A failed pipeline must not leave zstd(1) waiting for input.
    if (this.#child && this.#child.exitCode === null) this.#child.kill("SIGKILL");
    cb(err);
  }

  #feed(chunk: Buffer, cb: TransformCallback): void {
    if (this.#mode === "zstd-tool") {
      this.#child!.stdin.write(chunk, () => cb());
      return;
    }
    try {
      if (this.#mode === "gzip") {
        this.#gunzip!.write(chunk, () => cb());
        return;
      }
      if (this.#mode === "zstd") this.#zstd!.push(chunk);
      else this.push(chunk);
      cb();
    } catch (err) {
      cb(new Error(`zstd: ${(err as Error).message}`));
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.#mode === "sniff") {
      const head = Buffer.concat(this.#head);
      if (head.length > 0) this.push(head);
      return cb();
    }
    if (this.#mode === "gzip") {
      this.#gunzip!.end();
      this.#gzipEnded!.then(() => cb(), (e: Error) => cb(e));
      return;
    }
    if (this.#mode === "zstd-tool") {
      this.#child!.stdin.end();
      this.#childEnded!.then(() => cb(), (e: Error) => cb(e));
      return;
    }
    if (this.#mode === "zstd") {
      try {
        this.#zstd!.push(new Uint8Array(0), true);
      } catch (err) {
        return cb(new Error(`zstd: ${(err as Error).message === "unexpected EOF" ? TRUNCATED : (err as Error).message}`));
      }
    }
    cb();
  }
}

export interface UnpackOptions {
  /** Names the layer in errors, e.g. "layer sha256:abcd…". */
  what: string;
  /** The diff ID the image config lists for this layer; a mismatch is an error. */
  expectDiffId?: string;
  /** The digest of the (compressed) input; a mismatch is an error (the blob is corrupt). */
  expectDigest?: string;
  /** Compressed bytes read so far. */
  onBytes?: (n: number) => void;
  /** Unpack for a user namespace: owners become the host ids these mappings give them. */
  idShift?: IdShift;
}

export interface UnpackResult {
  diffId: string;
  /** Compressed input digest and length. */
  digest: string;
  compressedSize: number;
  /** Uncompressed tar length. */
  tarSize: number;
  /** Bytes of regular file content. */
  size: number;
}

interface EntryHeader {
  name: string;
  type?: string | null;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: Date;
  linkname?: string | null;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string> | null;
}

/** Unpacks one layer into `dest` (an empty directory). On failure `dest` is left for the caller to remove. */
/** Files up to this size are read whole and written with one synchronous call. */
const SMALL_FILE = 1 << 20;

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}

export async function unpackLayer(input: Readable, dest: string, options: UnpackOptions): Promise<UnpackResult> {
  const raw = new HashTap(options.onBytes);
  const uncompressed = new HashTap();
  const extract = tar.extract();
  const flowing = pipeline(input, raw, new Decompressor(), uncompressed, extract);
  flowing.catch(() => {});
  const unpacker = new Unpacker(dest, options.what, options.idShift);
  try {
    for await (const entry of extract) {
      await unpacker.entry(entry.header as EntryHeader, entry as unknown as Readable);
    }
    await flowing;
  } catch (err) {
    input.destroy();
    extract.destroy();
    await flowing.catch(() => {});
    throw wrap(err, options.what);
  }
  await unpacker.finish();
  const digest = raw.digest();
  if (options.expectDigest && digest !== options.expectDigest) {
    throw new BerthError(`${options.what}: the blob's content does not match its digest (got ${digest}): it is corrupt; remove the image and fetch it again`);
  }
  const diffId = uncompressed.digest();
  if (options.expectDiffId && diffId !== options.expectDiffId) {
    throw new BerthError(`${options.what}: the uncompressed layer's digest ${diffId} does not match the diff ID ${options.expectDiffId} in the image config`);
  }
  return { diffId, digest, compressedSize: raw.bytes, tarSize: uncompressed.bytes, size: unpacker.size };
}

function wrap(err: unknown, what: string): Error {
  if (err instanceof BerthError) return err;
  const msg = (err as Error).message ?? String(err);
  if (/Unexpected end of data/i.test(msg)) return new BerthError(`${what}: the tar stream ends early (truncated layer)`, { cause: err });
  if (/Invalid tar header/i.test(msg)) return new BerthError(`${what}: not a tar archive (invalid tar header)`, { cause: err });
  return new BerthError(`${what}: ${msg}`, { cause: err });
}

class Unpacker {
  size = 0;
  readonly #dirs = new Set<string>([""]);
  readonly #dirTimes = new Map<string, Date>();
  readonly #nodeTimes: [string, Date][] = [];
  #ops: Op[] = [];

  constructor(private readonly root: string, private readonly what: string, private readonly idShift?: IdShift) {}

  /** The owner to give an entry on disk: as the tar says, or shifted for a user namespace. */
  #owner(name: string, uid: number, gid: number): [number, number] {
    if (!this.idShift) return [uid, gid];
    const u = hostIdOf(this.idShift.uidMap, uid);
    const g = hostIdOf(this.idShift.gidMap, gid);
    if (u === undefined) throw this.#err(name, `is owned by uid ${uid}, which the user namespace's uid mapping does not cover`);
    if (g === undefined) throw this.#err(name, `is owned by gid ${gid}, which the user namespace's gid mapping does not cover`);
    return [u, g];
  }

  #abs(rel: string): string {
    return rel === "" ? this.root : join(this.root, rel);
  }

  #err(name: string, why: string): BerthError {
    return new BerthError(`${this.what}: entry ${JSON.stringify(name)} ${why}`);
  }

  /** Makes sure every parent of `rel` is a real directory of the layer, creating missing ones. */
  // Synchronous on purpose: a layer is thousands of tiny metadata calls, and a thread-pool round trip
  // for each one made unpacking several times slower than tar(1).
  #parents(name: string, rel: string, create = true): void {
    for (const p of parentsOf(rel)) {
      if (this.#dirs.has(p)) continue;
      let st;
      try {
        st = lstatSync(this.#abs(p));
      } catch {
        if (!create) throw this.#err(name, `needs ${JSON.stringify(p)}, which is not in the layer`);
        mkdirSync(this.#abs(p), { mode: 0o755 });
        // A parent the tar does not list belongs to root: the namespace's root in a shifted layer.
        if (this.idShift) lchownSync(this.#abs(p), ...this.#owner(name, 0, 0));
        this.#dirs.add(p);
        continue;
      }
      if (st.isSymbolicLink()) throw this.#err(name, `goes through the symlink ${JSON.stringify(p)}: it would land outside the layer`);
      if (!st.isDirectory()) throw this.#err(name, `has the non-directory ${JSON.stringify(p)} as a parent`);
      this.#dirs.add(p);
    }
  }

  /** Removes whatever is at `rel` (a later entry replaces an earlier one). */
  #clear(rel: string, keepDir: boolean): void {
    let st;
    try {
      st = lstatSync(this.#abs(rel));
    } catch {
      return;
    }
    if (keepDir && st.isDirectory()) return;
    rmSync(this.#abs(rel), { recursive: true, force: true });
    for (const d of [...this.#dirs]) if (d === rel || d.startsWith(rel + "/")) this.#dirs.delete(d);
    for (const d of [...this.#dirTimes.keys()]) if (d === rel || d.startsWith(rel + "/")) this.#dirTimes.delete(d);
  }

  async #flush(): Promise<void> {
    const ops = this.#ops;
    this.#ops = [];
    if (ops.length) await runFilesystemOps(ops);
  }

  async #queue(op: Op): Promise<void> {
    this.#ops.push(op);
    if (this.#ops.length >= OPS_BATCH) await this.#flush();
  }

  async entry(h: EntryHeader, body: Readable): Promise<void> {
    const name = h.name;
    const rel = cleanEntryPath(name, `${this.what}: entry`);
    const wo = rel === "" ? undefined : whiteoutAction(rel);
    const mtime = h.mtime ?? new Date(0);
    const [uid, gid] = this.#owner(name, h.uid ?? 0, h.gid ?? 0);
    const mode = (h.mode ?? 0o644) & 0o7777;
    const type = h.type ?? "file";
    if (wo) {
      body.resume();
      if (wo.kind === "ignore") return;
      if (wo.kind === "opaque") {
        this.#parents(name, wo.dir === "" ? "x" : `${wo.dir}/x`);
        if (wo.dir !== "") {
          this.#clear(wo.dir, true);
          try {
            mkdirSync(this.#abs(wo.dir), { mode: 0o755 });
          } catch { /* exists */ }
          this.#dirs.add(wo.dir);
        }
        await this.#queue({ op: "setxattr", root: this.root, path: "/" + wo.dir, name: OVERLAY_OPAQUE_XATTR, value: Buffer.from("y") });
        return;
      }
      this.#parents(name, wo.path);
      this.#clear(wo.path, false);
      await this.#queue({ op: "mknod", root: this.root, path: "/" + wo.path, mode: S_IFCHR, major: 0, minor: 0, uid: 0, gid: 0 });
      return;
    }
    if (rel !== "") this.#parents(name, rel);
    const abs = this.#abs(rel);
    const xattrs = paxXattrs(h.pax);
    switch (type) {
      case "directory": {
        body.resume();
        if (rel !== "") {
          this.#clear(rel, true);
          try {
            mkdirSync(abs, { mode });
          } catch { /* exists */ }
          this.#dirs.add(rel);
        }
        lchownSync(abs, uid, gid);
        chmodSync(abs, mode);
        this.#dirTimes.set(rel, mtime);
        break;
      }
      case "file":
      case "contiguous-file": {
        if (rel === "") throw this.#err(name, "is a file in place of the layer's root directory");
        this.#clear(rel, false);
        const size = h.size ?? 0;
        if (size <= SMALL_FILE) {
          const data = await readAll(body);
          const fd = openSync(abs, "wx", 0o600);
          try {
            for (let off = 0; off < data.length;) off += writeSync(fd, data, off, data.length - off);
            // chown first: it clears set-id bits, which the chmod then sets as the tar says.
            fchownSync(fd, uid, gid);
            fchmodSync(fd, mode);
            futimesSync(fd, mtime, mtime);
          } finally {
            closeSync(fd);
          }
        } else {
          await pipeline(body, createWriteStream(abs, { flags: "wx", mode: 0o600, highWaterMark: 1 << 20 }));
          lchownSync(abs, uid, gid);
          chmodSync(abs, mode);
          lutimesSync(abs, mtime, mtime);
        }
        this.size += size;
        break;
      }
      case "symlink": {
        body.resume();
        if (rel === "") throw this.#err(name, "is a symlink in place of the layer's root directory");
        this.#clear(rel, false);
        symlinkSync(h.linkname ?? "", abs);
        lchownSync(abs, uid, gid);
        lutimesSync(abs, mtime, mtime);
        break;
      }
      case "link": {
        body.resume();
        const target = cleanEntryPath(h.linkname ?? "", `${this.what}: hard link target of ${JSON.stringify(name)}:`);
        if (target === "") throw this.#err(name, "is a hard link to the layer's root");
        this.#parents(name, target, false);
        let st;
        try {
          st = lstatSync(this.#abs(target));
        } catch {
          throw this.#err(name, `is a hard link to ${JSON.stringify(h.linkname)}, which is not in the layer`);
        }
        if (st.isDirectory()) throw this.#err(name, `is a hard link to the directory ${JSON.stringify(h.linkname)}`);
        if (target === rel) break;
        this.#clear(rel, false);
        linkSync(this.#abs(target), abs);
        break;
      }
      case "character-device":
      case "block-device":
      case "fifo": {
        body.resume();
        this.#clear(rel, false);
        const kind = type === "fifo" ? S_IFIFO : type === "block-device" ? S_IFBLK : S_IFCHR;
        await this.#queue({ op: "mknod", root: this.root, path: "/" + rel, mode: kind | mode, major: h.devmajor ?? 0, minor: h.devminor ?? 0, uid, gid });
        this.#nodeTimes.push([rel, mtime]);
        break;
      }
      default:
        body.resume();
        throw this.#err(name, `has an unsupported tar entry type ${JSON.stringify(type)}`);
    }
    for (const [xname, value] of xattrs) {
      // File capabilities name the root they count for: the namespace's root, not the host's.
      const v = this.idShift && xname === "security.capability" ? shiftFileCapability(value, this.idShift) : value;
      await this.#queue({ op: "setxattr", root: this.root, path: "/" + rel, name: xname, value: v });
    }
  }

  async finish(): Promise<void> {
    await this.#flush();
    for (const [rel, t] of this.#nodeTimes) {
      try { lutimesSync(this.#abs(rel), t, t); } catch { /* replaced later in the tar */ }
    }
    // Directory times last: creating their children changed them.
    const dirs = [...this.#dirTimes.entries()].sort((a, b) => b[0].length - a[0].length);
    for (const [rel, t] of dirs) lutimesSync(this.#abs(rel), t, t);
  }
}
