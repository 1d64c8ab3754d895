// A small ImageStoreApi for the distribution tests, until (and beside) the real store: blobs on disk
// under a temp root (so blobPath works and partial downloads can be resumed), images in memory.
// Ingest: <root>/ingest/<hex>.partial resumed from its size, verified, renamed into blobs/; one ingest
// per digest at a time (later callers wait, then find the blob).

import { createHash } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { BlobProgress, Descriptor, ImageRecord, ImageStoreApi, Reference } from "../../src/images/store-api.js";

export class FakeStore implements ImageStoreApi {
  readonly images = new Map<string, ImageRecord>();
  readonly refs = new Map<string, string>();
  /** Every open(offset) call the store made, per digest (resume checks). */
  readonly opens: { digest: string; offset: number }[] = [];
  private readonly locks = new Map<string, Promise<void>>();

  constructor(readonly root: string) {
    mkdirSync(join(root, "blobs"), { recursive: true });
    mkdirSync(join(root, "ingest"), { recursive: true });
  }

  private hex(digest: string): string {
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) throw new Error(`bad digest ${digest}`);
    return digest.slice(7);
  }

  hasBlob(digest: string): boolean {
    return existsSync(this.blobPath(digest));
  }

  blobPath(digest: string): string {
    return join(this.root, "blobs", this.hex(digest));
  }

  partialPath(digest: string): string {
    return join(this.root, "ingest", `${this.hex(digest)}.partial`);
  }

  blobDigests(): string[] {
    return readdirSync(join(this.root, "blobs")).map((h) => `sha256:${h}`);
  }

  async readBlob(digest: string): Promise<Buffer> {
    const b = readFileSync(this.blobPath(digest));
    if (`sha256:${createHash("sha256").update(b).digest("hex")}` !== digest) throw new Error(`blob ${digest} is corrupt`);
    return b;
  }

  async putBlobBytes(bytes: Buffer, digest?: string): Promise<string> {
    const got = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    if (digest && digest !== got) throw new Error(`digest mismatch: expected ${digest}, got ${got}`);
    const tmp = `${this.blobPath(got)}.tmp`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, this.blobPath(got));
    return got;
  }

  async ingestBlob(desc: Pick<Descriptor, "digest" | "size">, open: (offset: number) => Promise<Readable>, onProgress?: (p: BlobProgress) => void): Promise<void> {
    for (;;) {
      const busy = this.locks.get(desc.digest);
      if (!busy) break;
      onProgress?.({ digest: desc.digest, done: 0, total: desc.size, phase: "waiting" });
      await busy.catch(() => {});
    }
    if (this.hasBlob(desc.digest)) {
      onProgress?.({ digest: desc.digest, done: desc.size, total: desc.size, phase: "exists" });
      return;
    }
    const work = this.ingest(desc, open, onProgress);
    this.locks.set(desc.digest, work);
    try {
      await work;
    } finally {
      this.locks.delete(desc.digest);
    }
  }

  private async ingest(desc: Pick<Descriptor, "digest" | "size">, open: (offset: number) => Promise<Readable>, onProgress?: (p: BlobProgress) => void): Promise<void> {
    const partial = this.partialPath(desc.digest);
    const offset = existsSync(partial) ? statSync(partial).size : 0;
    this.opens.push({ digest: desc.digest, offset });
    const input = await open(offset);
    await pipeline(input, createWriteStream(partial, { flags: offset > 0 ? "a" : "w" }));
    onProgress?.({ digest: desc.digest, done: desc.size, total: desc.size, phase: "verifying" });
    const bytes = readFileSync(partial);
    const got = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    if (got !== desc.digest || (desc.size !== undefined && bytes.length !== desc.size)) {
      rmSync(partial, { force: true });
      throw new Error(`digest mismatch for ${desc.digest}: the ${bytes.length} bytes received hash to ${got}`);
    }
    renameSync(partial, this.blobPath(desc.digest));
    onProgress?.({ digest: desc.digest, done: desc.size, total: desc.size, phase: "complete" });
  }

  async commitImage(manifestDigest: string, reference?: Reference, onProgress?: (p: BlobProgress) => void): Promise<ImageRecord> {
    const manifest = JSON.parse((await this.readBlob(manifestDigest)).toString()) as { config: Descriptor; layers: Descriptor[] };
    const config = JSON.parse((await this.readBlob(manifest.config.digest)).toString()) as { rootfs: { diff_ids: string[] }; created?: string };
    for (const l of manifest.layers) {
      if (!this.hasBlob(l.digest)) throw new Error(`layer ${l.digest} missing`);
      onProgress?.({ digest: l.digest, done: l.size, total: l.size, phase: "complete" });
    }
    const old = this.images.get(manifest.config.digest);
    const record: ImageRecord = {
      id: manifest.config.digest,
      repoTags: [...(old?.repoTags ?? [])],
      repoDigests: [...(old?.repoDigests ?? [])],
      manifestDigest,
      diffIds: config.rootfs.diff_ids,
      created: config.created ?? "",
      size: manifest.layers.reduce((a, l) => a + l.size, 0),
    };
    if (reference) {
      const name = `${reference.registry}/${reference.repository}`;
      if (reference.tag && !record.repoTags.includes(reference.full)) record.repoTags.push(reference.full);
      const rd = `${name}@${reference.digest ?? manifestDigest}`;
      if (!record.repoDigests.includes(rd)) record.repoDigests.push(rd);
      this.refs.set(reference.full, record.id);
    }
    this.images.set(record.id, record);
    return record;
  }

  /** Points another reference at an image (like `berth tag`). */
  tag(id: string, reference: Reference): void {
    const r = this.images.get(id);
    if (!r) throw new Error(`no image ${id}`);
    if (!r.repoTags.includes(reference.full)) r.repoTags.push(reference.full);
    this.refs.set(reference.full, id);
  }

  findImage(nameOrId: string): ImageRecord | undefined {
    const byRef = this.refs.get(nameOrId);
    if (byRef) return this.images.get(byRef);
    for (const [full, id] of this.refs) {
      const familiar = full.replace(/^docker\.io\/(library\/)?/, "");
      if (familiar === nameOrId) return this.images.get(id);
    }
    const hex = nameOrId.replace(/^sha256:/, "");
    if (/^[a-f0-9]{4,64}$/.test(hex)) for (const [id, r] of this.images) if (id.slice(7).startsWith(hex)) return r;
    return undefined;
  }
}
