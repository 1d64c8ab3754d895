// The image store: content-addressed blobs, unpacked layers shared by diff ID, image records and
// references, under one data root (default /var/lib/berth):
//
//   blobs/sha256/<hex>           verified when written and when read
//   layers/<diffid-hex>/diff/    the unpacked layer (an overlayfs lower dir)
//   layers/<diffid-hex>/layer.json   { diffId, size, tarSize, digests }
//   layers/<diffid-hex>/idmap/<key>/diff/   the layer for a user namespace (owners shifted; made on use)
//   images/<config-hex>.json     image records
//   repositories.json            normalised reference -> image ID
//   tmp/                         work in progress (ingest/<hex>.partial is resumed)
//   locks/                       cross-process locks (see lock.ts)
//
// Everything becomes visible by one rename, so a crash leaves the old state or the new one. Blobs and
// layers are removed only by `gc` (rmi, prune), which waits until no ingest or commit holds a lease.

import { AsyncLocalStorage } from "node:async_hooks";
import { createHash } from "node:crypto";
import {
  closeSync, createReadStream, createWriteStream, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync,
  renameSync, rmSync, statSync, unlinkSync, writeSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { BerthError, errnoName } from "../errors.js";
import type { IdMapping } from "../oci/spec.js";
import { idmapKey } from "./idmap.js";
import { unpackLayer } from "./layer.js";
import { lock, ownerAlive, tryLock, withLock } from "./lock.js";
import { fsyncDir, pidAlive, tmpName, tmpOwner, writeFileAtomic } from "./fsutil.js";
import { type ImageConfig, type ImageManifest, manifestKind, parseImageConfig, parseJson, parseManifest } from "./manifest.js";
import { familiarName, isDigest, parseReference, parseStoredReference } from "./reference.js";
import type { BlobProgress, Descriptor, ImageRecord, ImageStoreApi, Reference } from "./store-api.js";

export const DEFAULT_DATA_ROOT = "/var/lib/berth";
export const DEFAULT_CONTAINERS_STATE = "/run/berth/containers";

const SHA256 = /^sha256:([a-f0-9]{64})$/;

/** Blobs created inside the current `transaction` (so a failure can take them back). */
const createdBlobs = new AsyncLocalStorage<Set<string>>();

/** The hex part of a sha256 digest; anything else is refused with a clear error. */
export function digestHex(digest: string): string {
  const m = SHA256.exec(digest);
  if (!m) {
    if (isDigest(digest)) throw new BerthError(`unsupported digest algorithm in ${digest}: Berth stores sha256 content only`);
    throw new BerthError(`invalid digest "${digest}": expected sha256:<64 lowercase hex digits>`);
  }
  return m[1];
}

export const sha256 = (bytes: Buffer | string) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/** The record kept in images/<hex>.json. */
export interface StoredImage {
  id: string;
  manifestDigest: string;
  manifestMediaType: string;
  diffIds: string[];
  /** The manifest's layer descriptors (compressed blobs), parallel to diffIds. */
  layers: Descriptor[];
  created: string;
  size: number;
  architecture: string;
  os: string;
  variant?: string;
  /** When this store first recorded the image. */
  stored: string;
}

export interface LayerInfo {
  diffId: string;
  /** Bytes of file content. */
  size: number;
  /** Uncompressed tar length. */
  tarSize: number;
  /** Compressed blob digests this layer was unpacked from. */
  digests: string[];
}

interface Repositories {
  version: 1;
  /** Normalised reference ("docker.io/library/busybox:latest", "...@sha256:...") -> image ID. */
  references: Record<string, string>;
}

export interface CommitOptions {
  /**
   * Also record "repo@digest" for the reference's repository (images from a registry). Default true:
   * the manifest's digest; a string records that digest instead (a pull through a manifest list records
   * the list's digest, as dockerd does).
   */
  repoDigest?: boolean | string;
}

export interface RemoveResult {
  untagged: string[];
  deleted: string[];
}

export interface GcResult {
  blobs: string[];
  layers: string[];
  reclaimed: number;
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch (err) {
    if (errnoName(err) === "ENOENT") return undefined;
    throw new BerthError(`cannot read ${path}: ${(err as Error).message}; the file is damaged: remove it or restore it`);
  }
}

/** Adds up the bytes under a directory (apparent file sizes). */
export function duBytes(path: string): number {
  let total = 0;
  let entries;
  try {
    entries = readdirSync(path, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(path, e.name);
    if (e.isDirectory()) total += duBytes(p);
    else if (e.isFile()) {
      try { total += statSync(p).size; } catch { /* gone */ }
    }
  }
  return total;
}

/** Verifies a stream's sha256 (and length) as it passes; fails at the end on a mismatch. */
export class VerifyingStream extends Transform {
  readonly #hash = createHash("sha256");
  #bytes = 0;
  constructor(private readonly digest: string, private readonly what: string, private readonly size?: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    const got = `sha256:${this.#hash.digest("hex")}`;
    if (got !== this.digest || (this.size !== undefined && this.#bytes !== this.size)) {
      return cb(new BerthError(`${this.what}: content does not match digest ${this.digest} (got ${got}, ${this.#bytes} bytes)`));
    }
    cb();
  }
}

export class ImageStore implements ImageStoreApi {
  readonly root: string;
  /** Where running containers record themselves (their state.json may name an image). */
  readonly containersState: string;
  readonly #ingests = new Map<string, Promise<void>>();
  #leases = 0;
  #leaseFile: string | undefined;
  #leasesReady: Promise<void> | undefined;

  constructor(root = DEFAULT_DATA_ROOT, options: { containersState?: string; cleanup?: boolean } = {}) {
    this.root = root;
    this.containersState = options.containersState ?? DEFAULT_CONTAINERS_STATE;
    for (const d of ["blobs/sha256", "layers", "images", "tmp/ingest", "tmp/layers", "locks/leases"]) {
      mkdirSync(join(root, d), { recursive: true, mode: 0o711 });
    }
    if (options.cleanup !== false) this.cleanupTmp();
  }

  // ---- paths ------------------------------------------------------------------------------------

  blobPath(digest: string): string {
    return join(this.root, "blobs/sha256", digestHex(digest));
  }
  layerDir(diffId: string): string {
    return join(this.root, "layers", digestHex(diffId));
  }
  /** The directory overlayfs uses as the layer's lower dir. */
  layerDiffPath(diffId: string): string {
    return join(this.layerDir(diffId), "diff");
  }
  #imagePath(id: string): string {
    return join(this.root, "images", `${digestHex(id)}.json`);
  }
  #lockPath(name: string): string {
    return join(this.root, "locks", `${name}.lock`);
  }
  get #repositoriesPath(): string {
    return join(this.root, "repositories.json");
  }

  // ---- maintenance ------------------------------------------------------------------------------

  /** Removes what dead processes left in tmp/ and locks/ (in-progress work of live ones stays). */
  cleanupTmp(): void {
    const tmp = join(this.root, "tmp");
    for (const sub of ["layers", ""]) {
      const dir = join(tmp, sub);
      let names: string[];
      try { names = readdirSync(dir); } catch { continue; }
      for (const name of names) {
        if (sub === "" && (name === "layers" || name === "ingest")) continue;
        const owner = tmpOwner(name);
        if (owner === undefined || !pidAlive(owner)) rmSync(join(dir, name), { recursive: true, force: true });
      }
    }
    // Partial downloads are kept for resuming; a week-old one will not be resumed.
    const ingest = join(tmp, "ingest");
    for (const name of safeReaddir(ingest)) {
      const p = join(ingest, name);
      try {
        if (!name.endsWith(".partial") || Date.now() - statSync(p).mtimeMs > 7 * 86400_000) {
          const l = tryLock(this.#lockPath(`blob-${name.replace(/\.partial$/, "")}`));
          if (l) { rmSync(p, { force: true }); l.release(); }
        }
      } catch { /* gone */ }
    }
    for (const name of safeReaddir(join(this.root, "locks/leases"))) {
      const p = join(this.root, "locks/leases", name);
      // A lease still being written (".lease-….tmp-PID-…") is empty until renamed: judge it by its name.
      if (name.startsWith(".")) {
        const owner = tmpOwner(name);
        if (owner === undefined || !pidAlive(owner)) rmSync(p, { force: true });
        continue;
      }
      try { if (!ownerAlive(readFileSync(p, "utf8"))) unlinkSync(p); } catch { /* gone */ }
    }
    for (const name of safeReaddir(join(this.root, "locks"))) {
      if (!name.endsWith(".lock")) continue;
      const l = tryLock(join(this.root, "locks", name));
      l?.release();
    }
  }

  /**
   * Runs `fn` while holding a lease: garbage collection waits until no lease is held, so blobs that an
   * ingest or a load has stored but not yet committed into an image are not collected under it. Pull
   * and load wrap their whole work in one.
   */
  async lease<T>(fn: () => Promise<T>): Promise<T> {
    // One lease file per process while any lease of this store is held: a collection waits for it.
    if (this.#leases === 0) {
      this.#leasesReady ??= this.#takeLease().finally(() => { this.#leasesReady = undefined; });
      await this.#leasesReady;
    }
    this.#leases++;
    try {
      return await fn();
    } finally {
      if (--this.#leases === 0 && this.#leaseFile) {
        rmSync(this.#leaseFile, { force: true });
        this.#leaseFile = undefined;
      }
    }
  }

  async #takeLease(): Promise<void> {
    if (this.#leaseFile) return;
    const gcLock = this.#lockPath("gc");
    const file = join(this.root, "locks/leases", tmpName("lease"));
    for (;;) {
      writeFileAtomic(file, `${process.pid} ${readStart()}\n`);
      const gc = tryLock(gcLock);
      if (gc) {
        gc.release();
        break;
      }
      // A collection runs: step back and wait for it.
      rmSync(file, { force: true });
      const l = await lock(gcLock);
      l.release();
    }
    this.#leaseFile = file;
  }

  /**
   * A lease whose new blobs are removed again if `fn` fails (and no image record refers to them):
   * a load, import or pull that fails leaves nothing behind, not even verified but unused blobs.
   */
  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    const created = new Set<string>();
    try {
      return await this.lease(() => createdBlobs.run(created, fn));
    } catch (err) {
      if (created.size > 0) {
        const used = new Set<string>();
        for (const s of this.listStored()) {
          used.add(s.id);
          used.add(s.manifestDigest);
          for (const l of s.layers) used.add(l.digest);
        }
        for (const d of created) if (!used.has(d)) rmSync(this.blobPath(d), { force: true });
      }
      throw err;
    }
  }

  // ---- blobs ------------------------------------------------------------------------------------

  hasBlob(digest: string): boolean {
    return existsSync(this.blobPath(digest));
  }

  async readBlob(digest: string): Promise<Buffer> {
    const path = this.blobPath(digest);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if (errnoName(err) === "ENOENT") throw new BerthError(`blob ${digest} is not in the image store ${this.root}: pull or load the image again`);
      throw err;
    }
    const got = sha256(bytes);
    if (got !== digest) {
      // Never use it; removing it lets the next pull fetch it again.
      rmSync(path, { force: true });
      throw new BerthError(`blob ${digest} in ${this.root} is corrupt (its content hashes to ${got}); it was removed: pull or load the image again`);
    }
    return bytes;
  }

  /** A stream of a blob's bytes that fails at the end if they do not match the digest. */
  openBlob(digest: string): Readable {
    const path = this.blobPath(digest);
    if (!existsSync(path)) throw new BerthError(`blob ${digest} is not in the image store ${this.root}: pull or load the image again`);
    const verify = new VerifyingStream(digest, `blob ${digest} in ${this.root}`);
    const source = createReadStream(path);
    source.on("error", (e) => verify.destroy(e));
    return source.pipe(verify);
  }

  async putBlobBytes(bytes: Buffer, digest?: string): Promise<string> {
    const got = sha256(bytes);
    if (digest !== undefined && got !== digest) {
      throw new BerthError(`content does not match its digest ${digest} (got ${got}): refusing to store it`);
    }
    const path = this.blobPath(got);
    if (existsSync(path)) return got;
    const tmp = join(this.root, "tmp", tmpName(digestHex(got).slice(0, 12)));
    try {
      const fd = openSync(tmp, "wx", 0o644);
      try {
        let off = 0;
        while (off < bytes.length) off += writeSync(fd, bytes, off);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
      createdBlobs.getStore()?.add(got);
      fsyncDir(join(this.root, "blobs/sha256"));
    } finally {
      rmSync(tmp, { force: true });
    }
    return got;
  }

  ingestBlob(
    desc: Pick<Descriptor, "digest" | "size">,
    open: (offset: number) => Promise<Readable>,
    onProgress?: (p: BlobProgress) => void,
  ): Promise<void> {
    const hex = digestHex(desc.digest);
    const running = this.#ingests.get(hex);
    if (running) {
      onProgress?.({ digest: desc.digest, done: 0, total: desc.size, phase: "waiting" });
      return running.then(() => onProgress?.({ digest: desc.digest, done: desc.size, total: desc.size, phase: "exists" }));
    }
    const p = this.lease(() => this.#ingest(hex, desc, open, onProgress)).finally(() => this.#ingests.delete(hex));
    this.#ingests.set(hex, p);
    return p;
  }

  async #ingest(
    hex: string,
    desc: Pick<Descriptor, "digest" | "size">,
    open: (offset: number) => Promise<Readable>,
    onProgress?: (p: BlobProgress) => void,
  ): Promise<void> {
    const total = desc.size;
    const report = (phase: BlobProgress["phase"], done: number) => onProgress?.({ digest: desc.digest, done, total, phase });
    if (this.hasBlob(desc.digest)) return report("exists", total);
    const l = await lock(this.#lockPath(`blob-${hex}`), { onWait: () => report("waiting", 0) });
    try {
      if (this.hasBlob(desc.digest)) return report("exists", total);
      const partial = join(this.root, "tmp/ingest", `${hex}.partial`);
      let offset = 0;
      const hash = createHash("sha256");
      try {
        offset = statSync(partial).size;
      } catch { /* fresh */ }
      if (total !== undefined && offset > total) {
        rmSync(partial, { force: true });
        offset = 0;
      }
      if (offset > 0) {
        // Resume: the bytes we have count towards the digest.
        for await (const chunk of createReadStream(partial)) hash.update(chunk as Buffer);
      }
      let done = offset;
      if (total === undefined || offset < total || total === 0) {
        report("downloading", done);
        const source = await open(offset);
        const counter = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            hash.update(chunk);
            done += chunk.length;
            report("downloading", done);
            if (total !== undefined && done > total) return cb(new BerthError(`blob ${desc.digest}: more bytes than its size ${total}`));
            cb(null, chunk);
          },
        });
        const out = createWriteStream(partial, { flags: offset > 0 ? "a" : "w", mode: 0o644 });
        try {
          await pipeline(source, counter, out);
        } catch (err) {
          if (err instanceof BerthError) {
            rmSync(partial, { force: true });
            throw err;
          }
          // Network trouble: keep what arrived for the next attempt to resume from.
          throw new BerthError(`blob ${desc.digest}: transfer failed after ${done} of ${total ?? "?"} bytes: ${(err as Error).message}`, { cause: err });
        }
      }
      report("verifying", done);
      if (total !== undefined && done < total) {
        throw new BerthError(`blob ${desc.digest}: the transfer ended after ${done} of ${total} bytes; try again to resume`);
      }
      const got = `sha256:${hash.digest("hex")}`;
      if (got !== desc.digest) {
        rmSync(partial, { force: true });
        throw new BerthError(`blob ${desc.digest}: the content received hashes to ${got}: digest mismatch, nothing was stored`);
      }
      const fd = openSync(partial, "r+");
      try { fsyncSync(fd); } finally { closeSync(fd); }
      renameSync(partial, this.blobPath(desc.digest));
      createdBlobs.getStore()?.add(desc.digest);
      fsyncDir(join(this.root, "blobs/sha256"));
      report("complete", done);
    } finally {
      l.release();
    }
  }

  // ---- layers -----------------------------------------------------------------------------------

  layerInfo(diffId: string): LayerInfo | undefined {
    return readJson<LayerInfo>(join(this.layerDir(diffId), "layer.json"));
  }

  /** Unpacks a layer blob once (by diff ID), shared by every image that lists it. */
  async ensureLayer(diffId: string, blob: Descriptor, onProgress?: (p: BlobProgress) => void): Promise<LayerInfo> {
    const existing = this.layerInfo(diffId);
    if (existing) return existing;
    const hex = digestHex(diffId);
    return withLock(this.#lockPath(`layer-${hex}`), async () => {
      const again = this.layerInfo(diffId);
      if (again) return again;
      if (!this.hasBlob(blob.digest)) throw new BerthError(`layer blob ${blob.digest} is not in the image store ${this.root}: pull or load the image again`);
      const work = join(this.root, "tmp/layers", tmpName(hex.slice(0, 12)));
      const diff = join(work, "diff");
      mkdirSync(diff, { recursive: true, mode: 0o755 });
      try {
        onProgress?.({ digest: blob.digest, done: 0, total: blob.size, phase: "extracting" });
        const result = await unpackLayer(createReadStream(this.blobPath(blob.digest)), diff, {
          what: `layer ${blob.digest}`,
          expectDiffId: diffId,
          expectDigest: blob.digest,
          onBytes: (n) => onProgress?.({ digest: blob.digest, done: n, total: blob.size, phase: "extracting" }),
        });
        const info: LayerInfo = { diffId, size: result.size, tarSize: result.tarSize, digests: [blob.digest] };
        writeFileAtomic(join(work, "layer.json"), JSON.stringify(info));
        renameSync(work, this.layerDir(diffId));
        fsyncDir(join(this.root, "layers"));
        onProgress?.({ digest: blob.digest, done: blob.size, total: blob.size, phase: "complete" });
        return info;
      } catch (err) {
        if (/content does not match its digest|is corrupt/.test((err as Error).message)) rmSync(this.blobPath(blob.digest), { force: true });
        throw err;
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    });
  }

  // ---- images -----------------------------------------------------------------------------------

  async commitImage(
    manifestDigest: string,
    reference?: Reference,
    onProgress?: (p: BlobProgress) => void,
    options: CommitOptions = {},
  ): Promise<ImageRecord> {
    return this.lease(async () => {
      const manifestBytes = await this.readBlob(manifestDigest);
      const doc = parseJson(manifestBytes, `manifest ${manifestDigest}`);
      if (manifestKind(doc) === "index") throw new BerthError(`manifest ${manifestDigest} is an image index: commit one of the image manifests it lists`);
      const manifest = parseManifest(manifestBytes, `manifest ${manifestDigest}`);
      const config = parseImageConfig(await this.readBlob(manifest.config.digest), `image config ${manifest.config.digest}`);
      const diffIds = config.rootfs.diff_ids;
      if (diffIds.length !== manifest.layers.length) {
        throw new BerthError(`manifest ${manifestDigest} lists ${manifest.layers.length} layers but its config lists ${diffIds.length} diff IDs: the image is malformed`);
      }
      manifest.layers.forEach((l, i) => {
        if (!this.hasBlob(l.digest) && !this.layerInfo(diffIds[i])) {
          throw new BerthError(`layer blob ${l.digest} of manifest ${manifestDigest} is not in the store: fetch it first`);
        }
      });
      let size = 0;
      for (let i = 0; i < diffIds.length; i++) {
        const info = await this.ensureLayer(diffIds[i], manifest.layers[i], onProgress);
        size += info.size;
      }
      const id = manifest.config.digest;
      const previous = readJson<StoredImage>(this.#imagePath(id));
      const record: StoredImage = {
        id,
        manifestDigest,
        manifestMediaType: manifest.mediaType ?? "application/vnd.oci.image.manifest.v1+json",
        diffIds,
        layers: manifest.layers,
        created: config.created ?? new Date(0).toISOString(),
        size,
        architecture: config.architecture,
        os: config.os,
        variant: config.variant,
        stored: previous?.stored ?? new Date().toISOString(),
      };
      writeFileAtomic(this.#imagePath(id), JSON.stringify(record, null, 2));
      if (reference) {
        const refs: string[] = [];
        if (reference.tag !== undefined || reference.digest === undefined) refs.push(`${reference.registry}/${reference.repository}:${reference.tag ?? "latest"}`);
        const recorded = typeof options.repoDigest === "string" ? options.repoDigest : manifestDigest;
        if (options.repoDigest !== false || reference.digest !== undefined) refs.push(`${reference.registry}/${reference.repository}@${recorded}`);
        await this.setReferences(refs, id);
      }
      return this.#toRecord(record, this.#readRepositories());
    });
  }

  #readRepositories(): Repositories {
    return readJson<Repositories>(this.#repositoriesPath) ?? { version: 1, references: {} };
  }

  /** Changes references under the repositories lock (read, change, write atomically). */
  async updateRepositories<T>(change: (refs: Record<string, string>) => T): Promise<T> {
    return withLock(this.#lockPath("repositories"), () => {
      const repos = this.#readRepositories();
      const out = change(repos.references);
      writeFileAtomic(this.#repositoriesPath, JSON.stringify(repos, null, 2));
      return out;
    }, { timeoutMs: 60_000 });
  }

  /** Points each normalised reference at `id`. */
  async setReferences(refs: string[], id: string): Promise<void> {
    if (!existsSync(this.#imagePath(id))) throw new BerthError(`image ${id} is not in the store`);
    await this.updateRepositories((r) => {
      for (const ref of refs) r[ref] = id;
    });
  }

  /** Adds "repo@manifestDigest" for an image that went to a registry (push). */
  async addRepoDigest(reference: Reference, manifestDigest: string, id: string): Promise<void> {
    await this.setReferences([`${reference.registry}/${reference.repository}@${manifestDigest}`], id);
  }

  #toRecord(s: StoredImage, repos: Repositories): ImageRecord {
    const repoTags: string[] = [];
    const repoDigests: string[] = [];
    for (const [ref, id] of Object.entries(repos.references)) {
      if (id !== s.id) continue;
      if (ref.includes("@")) repoDigests.push(familiarOf(ref));
      else repoTags.push(familiarOf(ref));
    }
    return { id: s.id, repoTags: repoTags.sort(), repoDigests: repoDigests.sort(), manifestDigest: s.manifestDigest, diffIds: s.diffIds, created: s.created, size: s.size };
  }

  /** The stored record of an image ID. */
  storedImage(id: string): StoredImage | undefined {
    return readJson<StoredImage>(this.#imagePath(id));
  }

  listStored(): StoredImage[] {
    const out: StoredImage[] = [];
    for (const name of safeReaddir(join(this.root, "images"))) {
      if (!/^[a-f0-9]{64}\.json$/.test(name)) continue;
      const s = readJson<StoredImage>(join(this.root, "images", name));
      if (s) out.push(s);
    }
    return out;
  }

  listImages(): ImageRecord[] {
    const repos = this.#readRepositories();
    return this.listStored().map((s) => this.#toRecord(s, repos));
  }

  references(): Record<string, string> {
    return { ...this.#readRepositories().references };
  }

  /** The image a reference or ID (full, "sha256:…", or unique short hex prefix) names, or undefined. */
  findImage(nameOrId: string): ImageRecord | undefined {
    const id = this.resolveImageId(nameOrId);
    if (!id) return undefined;
    const s = this.storedImage(id);
    return s ? this.#toRecord(s, this.#readRepositories()) : undefined;
  }

  resolveImageId(nameOrId: string): string | undefined {
    const full = /^sha256:([a-f0-9]{64})$/.exec(nameOrId)?.[1] ?? /^([a-f0-9]{64})$/.exec(nameOrId)?.[1];
    if (full) return existsSync(join(this.root, "images", `${full}.json`)) ? `sha256:${full}` : undefined;
    let ref: Reference | undefined;
    try {
      ref = parseReference(nameOrId);
    } catch {
      ref = undefined;
    }
    if (ref) {
      const refs = this.#readRepositories().references;
      const hit = refs[ref.full] ?? (ref.digest && ref.tag ? refs[`${ref.registry}/${ref.repository}@${ref.digest}`] : undefined);
      if (hit && existsSync(this.#imagePath(hit))) return hit;
    }
    const prefix = /^(?:sha256:)?([a-f0-9]{1,63})$/.exec(nameOrId)?.[1];
    if (prefix) {
      const hits = safeReaddir(join(this.root, "images")).filter((n) => n.startsWith(prefix) && n.endsWith(".json"));
      if (hits.length === 1) return `sha256:${hits[0].slice(0, 64)}`;
      if (hits.length > 1) throw new BerthError(`image ID prefix "${nameOrId}" is ambiguous: it matches ${hits.length} images; give more digits`);
    }
    return undefined;
  }

  /** The image config of a stored image. */
  async imageConfig(id: string): Promise<ImageConfig> {
    return parseImageConfig(await this.readBlob(id), `image config ${id}`);
  }

  async imageManifest(id: string): Promise<ImageManifest> {
    const s = this.storedImage(id);
    if (!s) throw new BerthError(`image ${id} is not in the store`);
    return parseManifest(await this.readBlob(s.manifestDigest), `manifest ${s.manifestDigest}`);
  }

  /** The image's layer dirs for overlayfs, top layer first. */
  lowerDirs(id: string): string[] {
    const s = this.storedImage(id);
    if (!s) throw new BerthError(`image ${id} is not in the store`);
    return s.diffIds.map((d) => {
      if (!this.layerInfo(d)) throw new BerthError(`layer ${d} of image ${id} is missing from ${this.root}: remove the image and pull or load it again`);
      return this.layerDiffPath(d);
    }).reverse();
  }

  /**
   * The image's layer dirs for a container in a user namespace with these mappings, top first: each
   * layer unpacked once more from its blob with every owner shifted to the host id the mapping gives it
   * (so that inside the namespace files show their image owners and root owns what root owns), kept
   * under the layer's dir and removed with it. Made once per layer and mapping, on first use.
   * (Idmapped mounts of the shared layers would avoid the copies; the helper has no op for them yet.)
   */
  async idmappedLowerDirs(id: string, uidMap: IdMapping[], gidMap: IdMapping[]): Promise<string[]> {
    const s = this.storedImage(id);
    if (!s) throw new BerthError(`image ${id} is not in the store`);
    const key = idmapKey(uidMap, gidMap);
    const out: string[] = [];
    for (let i = 0; i < s.diffIds.length; i++) {
      out.push(await this.#idmappedLayer(s.diffIds[i], s.layers[i], key, { uidMap, gidMap }));
    }
    return out.reverse();
  }

  async #idmappedLayer(diffId: string, blob: Descriptor, key: string, shift: { uidMap: IdMapping[]; gidMap: IdMapping[] }): Promise<string> {
    const info = this.layerInfo(diffId);
    if (!info) throw new BerthError(`layer ${diffId} is missing from ${this.root}: remove the image and pull or load it again`);
    const final = join(this.layerDir(diffId), "idmap", key);
    if (existsSync(final)) return join(final, "diff");
    const hex = digestHex(diffId);
    return this.lease(() => withLock(this.#lockPath(`layer-${hex}-${key}`), async () => {
      if (existsSync(final)) return join(final, "diff");
      const source = [blob.digest, ...info.digests].find((d) => this.hasBlob(d));
      if (!source) throw new BerthError(`layer ${diffId}: its blob is not in the image store ${this.root}, so it cannot be prepared for a user namespace: pull or load the image again`);
      const work = join(this.root, "tmp/layers", tmpName(`${hex.slice(0, 12)}-idmap`));
      const diff = join(work, "diff");
      mkdirSync(diff, { recursive: true, mode: 0o755 });
      try {
        await unpackLayer(createReadStream(this.blobPath(source)), diff, {
          what: `layer ${source} (for a user namespace)`,
          expectDiffId: diffId,
          expectDigest: source,
          idShift: shift,
        });
        mkdirSync(join(this.layerDir(diffId), "idmap"), { recursive: true, mode: 0o711 });
        renameSync(work, final);
        fsyncDir(join(this.layerDir(diffId), "idmap"));
        return join(final, "diff");
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    }));
  }

  // ---- use by containers ------------------------------------------------------------------------

  /** Image IDs that running containers use (from their state.json "image" field). */
  imagesInUse(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const name of safeReaddir(this.containersState)) {
      const state = readJsonQuiet<{ id?: string; image?: string; ownerPid?: number; ownerStart?: string }>(join(this.containersState, name, "state.json"));
      if (!state?.image) continue;
      if (state.ownerPid && !ownerAlive(`${state.ownerPid} ${state.ownerStart ?? ""}`)) continue;
      out.set(state.image, [...(out.get(state.image) ?? []), state.id ?? name]);
    }
    // The engine's containers (<data root>/containers/<id>/config.json, docker's inspect shape).
    for (const name of safeReaddir(join(this.root, "containers"))) {
      const c = readJsonQuiet<{ Id?: string; Image?: string; State?: { Running?: boolean; Paused?: boolean; Restarting?: boolean } }>(join(this.root, "containers", name, "config.json"));
      if (!c?.Image || !(c.State?.Running || c.State?.Paused || c.State?.Restarting)) continue;
      out.set(c.Image, [...(out.get(c.Image) ?? []), c.Id ?? name]);
    }
    return out;
  }

  // ---- removal and garbage collection -----------------------------------------------------------

  /**
   * docker rmi: a reference with other references left is untagged; the last reference (or an ID)
   * deletes the image, then its unshared layers and blobs. Refused while a running container uses it.
   */
  async removeImage(nameOrId: string, options: { force?: boolean } = {}): Promise<RemoveResult> {
    const id = this.resolveImageId(nameOrId);
    if (!id) throw new BerthError(`No such image: ${nameOrId}`);
    const byId = /^(sha256:)?[a-f0-9]+$/.test(nameOrId) && !this.#isReference(nameOrId);
    const users = this.imagesInUse().get(id) ?? [];
    const result: RemoveResult = { untagged: [], deleted: [] };
    const deleteImage = await this.updateRepositories((refs) => {
      const mine = Object.keys(refs).filter((r) => refs[r] === id);
      const tags = mine.filter((r) => !r.includes("@"));
      let remove: string[];
      if (byId) {
        if (tags.length > 1 && !options.force) {
          throw new BerthError(`conflict: unable to delete ${shortId(id)} (must be forced) - image is referenced in multiple repositories`);
        }
        remove = mine;
      } else {
        const ref = parseReference(nameOrId);
        const key = refs[ref.full] === id ? ref.full : `${ref.registry}/${ref.repository}@${ref.digest}`;
        remove = [key];
        const leftTags = tags.filter((t) => t !== key);
        // The last tag goes: the image goes, with its digests.
        if (leftTags.length === 0) remove = mine;
      }
      const willDelete = remove.length === mine.length;
      if (willDelete && users.length > 0) {
        throw new BerthError(`conflict: unable to delete ${nameOrId} (cannot be forced) - image ${shortId(id)} is being used by running container ${users[0].slice(0, 12)}: stop it first`);
      }
      for (const r of remove) {
        delete refs[r];
        result.untagged.push(familiarOf(r));
      }
      return willDelete;
    });
    if (deleteImage) {
      rmSync(this.#imagePath(id), { force: true });
      result.deleted.push(id);
      await this.gc();
    }
    return result;
  }

  #isReference(text: string): boolean {
    try {
      const ref = parseReference(text);
      return this.#readRepositories().references[ref.full] !== undefined;
    } catch {
      return false;
    }
  }

  /** Deletes unused images: dangling ones (no tags), or with `all` every image no running container uses. */
  async pruneImages(all: boolean): Promise<{ deleted: string[]; untagged: string[]; reclaimed: number }> {
    const inUse = this.imagesInUse();
    const out = { deleted: [] as string[], untagged: [] as string[], reclaimed: 0 };
    const victims = await this.updateRepositories((refs) => {
      const list: string[] = [];
      for (const s of this.listStored()) {
        if (inUse.has(s.id)) continue;
        const mine = Object.keys(refs).filter((r) => refs[r] === s.id);
        const tagged = mine.some((r) => !r.includes("@"));
        if (tagged && !all) continue;
        for (const r of mine) {
          delete refs[r];
          out.untagged.push(familiarOf(r));
        }
        list.push(s.id);
      }
      return list;
    });
    for (const id of victims) {
      rmSync(this.#imagePath(id), { force: true });
      out.deleted.push(id);
    }
    const gc = await this.gc();
    out.reclaimed = gc.reclaimed;
    return out;
  }

  /** Removes blobs and layers that no image record refers to. Waits for leases (ingests, loads) to end. */
  async gc(): Promise<GcResult> {
    if (this.#leases > 0) throw new BerthError("internal: image store garbage collection inside a lease would wait for itself");
    return withLock(this.#lockPath("gc"), async () => {
      const leases = join(this.root, "locks/leases");
      for (;;) {
        const live = safeReaddir(leases).filter((n) => {
          try { return ownerAlive(readFileSync(join(leases, n), "utf8")); } catch { return false; }
        });
        if (live.length === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const blobs = new Set<string>();
      const layers = new Set<string>();
      for (const s of this.listStored()) {
        blobs.add(digestHex(s.id));
        blobs.add(digestHex(s.manifestDigest));
        for (const l of s.layers) blobs.add(digestHex(l.digest));
        for (const d of s.diffIds) layers.add(digestHex(d));
      }
      const result: GcResult = { blobs: [], layers: [], reclaimed: 0 };
      const blobDir = join(this.root, "blobs/sha256");
      for (const name of safeReaddir(blobDir)) {
        if (blobs.has(name)) continue;
        try { result.reclaimed += statSync(join(blobDir, name)).size; } catch { /* gone */ }
        rmSync(join(blobDir, name), { force: true });
        result.blobs.push(`sha256:${name}`);
      }
      const layerDir = join(this.root, "layers");
      for (const name of safeReaddir(layerDir)) {
        if (layers.has(name)) continue;
        const info = readJsonQuiet<LayerInfo>(join(layerDir, name, "layer.json"));
        result.reclaimed += info?.size ?? 0;
        // Rename first so a half-removed layer is never taken for a whole one.
        const doomed = join(this.root, "tmp", tmpName(`rm-${name.slice(0, 12)}`));
        try {
          renameSync(join(layerDir, name), doomed);
        } catch {
          continue;
        }
        rmSync(doomed, { recursive: true, force: true });
        result.layers.push(`sha256:${name}`);
      }
      return result;
    });
  }

  /** Disk use for `berth system df`. */
  diskUsage(): { images: number; active: number; size: number; reclaimable: number; layers: Map<string, number> } {
    const inUse = this.imagesInUse();
    const layerSizes = new Map<string, number>();
    for (const name of safeReaddir(join(this.root, "layers"))) {
      const info = readJsonQuiet<LayerInfo>(join(this.root, "layers", name, "layer.json"));
      if (info) layerSizes.set(info.diffId, info.size);
    }
    const stored = this.listStored();
    const activeLayers = new Set<string>();
    for (const s of stored) if (inUse.has(s.id)) for (const d of s.diffIds) activeLayers.add(d);
    let size = 0;
    let reclaimable = 0;
    for (const [d, n] of layerSizes) {
      size += n;
      if (!activeLayers.has(d)) reclaimable += n;
    }
    return { images: stored.length, active: stored.filter((s) => inUse.has(s.id)).length, size, reclaimable, layers: layerSizes };
  }
}

function readStart(): string {
  try {
    const stat = readFileSync(`/proc/${process.pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return "";
  }
}

function readJsonQuiet<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export function shortId(id: string): string {
  return id.replace(/^sha256:/, "").slice(0, 12);
}

/** "docker.io/library/busybox:latest" -> "busybox:latest"; "...@sha256:x" -> "busybox@sha256:x". */
export function familiarOf(full: string): string {
  const ref = parseStoredReference(full);
  const suffix = (ref.tag !== undefined ? `:${ref.tag}` : "") + (ref.digest !== undefined ? `@${ref.digest}` : "");
  return familiarName(ref.registry, ref.repository) + suffix;
}
