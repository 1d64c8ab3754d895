// berth push: every blob of the image (layers 3 at a time, then the config) HEAD-checked, mounted from
// another repository of the same registry when the image came from one, or uploaded (monolithic PUT,
// chunked PATCH for big blobs); then the manifest PUT by tag. Layers stored uncompressed (load of a
// docker-save archive, import) go up gzipped, as docker pushes them: the manifest sent then names the
// gzip blobs, while the config's diff_ids (the uncompressed digests) stay as they are.

import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { BerthError } from "../errors.js";
import type { Descriptor, ImageStoreApi, Reference } from "../images/store-api.js";
import { type RegistryClient, RegistryError } from "./client.js";
import { HashTap } from "../images/layer.js";
import { MT, parseManifest } from "./manifest.js";
import { ProgressDisplay, progressBar, shortId } from "./progress.js";
import { clientFor, forEachLimit, type RegistryOptions } from "./pull.js";
import { parseReference } from "./reference.js";

export interface PushOptions extends RegistryOptions {
  /** Blobs bigger than this go up in PATCH chunks of this size (default 32 MiB). */
  chunkSize?: number;
}

export interface PushResult {
  digest: string;
  size: number;
  tag: string;
}

/** Repositories of `registry` the image is known to come from (its repoDigests), for cross-repository mounts. */
export function mountSources(repoDigests: string[], registry: string, repository: string): string[] {
  const out: string[] = [];
  for (const rd of repoDigests) {
    try {
      const r = parseReference(rd, { defaultTag: false });
      if (r.registry === registry && r.repository !== repository && !out.includes(r.repository)) out.push(r.repository);
    } catch {
      // a malformed record entry: not a mount source
    }
  }
  return out;
}

/** The gzip media type an uncompressed layer goes up as, or undefined when the layer is pushed as stored. */
export function gzipMediaTypeFor(mediaType: string): string | undefined {
  if (mediaType === "application/vnd.oci.image.layer.v1.tar") return "application/vnd.oci.image.layer.v1.tar+gzip";
  if (mediaType === "application/vnd.docker.image.rootfs.diff.tar") return "application/vnd.docker.image.rootfs.diff.tar.gzip";
  return undefined;
}

/**
 * The manifest to send: each layer of `replaced` (stored digest -> pushed descriptor) swapped for its
 * pushed form, everything else (key order included) as stored; the stored bytes when nothing changed.
 */
export function rewriteManifest(bytes: Buffer, replaced: ReadonlyMap<string, Descriptor>): Buffer {
  if (replaced.size === 0) return bytes;
  const doc = JSON.parse(bytes.toString("utf8")) as { layers: Array<Record<string, unknown>> };
  doc.layers = doc.layers.map((l) => {
    const r = replaced.get(l.digest as string);
    return r ? { ...l, mediaType: r.mediaType, digest: r.digest, size: r.size } : l;
  });
  return Buffer.from(JSON.stringify(doc));
}

/**
 * Gzips a stored uncompressed layer into a file of `dir` (streaming), checking on the way that the
 * stored bytes still hash to their digest; returns the file and the gzip blob's descriptor.
 */
async function gzipLayer(path: string, desc: Descriptor, mediaType: string, dir: string): Promise<{ file: string; desc: Descriptor }> {
  const file = join(dir, desc.digest.replace(":", "-") + ".gz");
  const stored = new HashTap();
  const compressed = new HashTap();
  await pipeline(createReadStream(path), stored, createGzip(), compressed, createWriteStream(file));
  const got = stored.digest();
  if (got !== desc.digest || stored.bytes !== desc.size) {
    throw new BerthError(`the stored blob ${desc.digest} is corrupt (its ${stored.bytes} bytes hash to ${got}; expected ${desc.size} bytes): nothing of it was sent; remove the image and pull or load it again`);
  }
  return { file, desc: { mediaType, digest: compressed.digest(), size: compressed.bytes } };
}

function pushError(ref: Reference, err: unknown): BerthError {
  if (err instanceof RegistryError && err.unauthorized) {
    return new BerthError(`push access to ${ref.registry}/${ref.repository} denied: ${err.message}`);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new BerthError(`pushing ${ref.familiar}: ${message}`, { cause: err });
}

export async function pushImage(store: ImageStoreApi, reference: Reference | string, opts: PushOptions = {}): Promise<PushResult> {
  const ref = typeof reference === "string" ? parseReference(reference) : reference;
  if (ref.digest) throw new BerthError(`cannot push ${ref.familiar}: push a tag, not a digest (berth tag IMAGE NAME:TAG first)`);
  const record = store.findImage(ref.full) ?? store.findImage(ref.familiar);
  if (!record) throw new BerthError(`an image does not exist locally with the tag ${ref.familiar}: pull it, or tag an image with that name first (berth tag)`);
  const display = new ProgressDisplay(opts.out ?? process.stdout, { tty: opts.tty, quiet: opts.quiet });
  try {
    const result = await push(store, ref, record.manifestDigest, record.repoDigests, display, clientFor(ref.registry, opts), opts);
    // As dockerd: the image now has a digest in that repository (inspect RepoDigests, images --digests).
    await store.addRepoDigest?.(ref, result.digest, record.id);
    return result;
  } catch (err) {
    throw pushError(ref, err);
  }
}

async function push(store: ImageStoreApi, ref: Reference, manifestDigest: string, repoDigests: string[], display: ProgressDisplay, client: RegistryClient, opts: PushOptions): Promise<PushResult> {
  const repo = ref.repository;
  const tag = ref.tag ?? "latest";
  const bytes = await store.readBlob(manifestDigest);
  const manifest = parseManifest(bytes, "", `stored manifest ${manifestDigest} of ${ref.familiar}`);
  if (manifest.kind !== "manifest") throw new BerthError(`the stored manifest ${manifestDigest} of ${ref.familiar} is an index: push its platform images instead`);
  const mediaType = manifest.mediaType || (manifest.config.mediaType === MT.dockerConfig ? MT.dockerManifest : MT.ociManifest);
  const sources = mountSources(repoDigests, ref.registry, repo);
  const chunkSize = opts.chunkSize ?? 32 * 1024 * 1024;
  const pushScopes = [`repository:${repo}:pull,push`];

  display.message(`The push refers to repository [${ref.registry}/${repo}]`);
  const layers: Descriptor[] = [];
  for (const l of manifest.layers) if (!layers.some((x) => x.digest === l.digest)) layers.push(l);
  for (const l of layers) display.update(shortId(l.digest), "Preparing");

  // stored digest -> the gzip descriptor it went up as
  const replaced = new Map<string, Descriptor>();
  let workDir: Promise<string> | undefined; // made once, by whichever layer needs it first
  const sendBlob = async (desc: Descriptor, path: string, say: (word: string, detail?: string) => void, checked: boolean) => {
    if (await client.hasBlob(repo, desc.digest, pushScopes)) return say("Layer already exists");
    let location: URL | undefined;
    for (const from of sources) {
      const r = await client.startUpload(repo, { digest: desc.digest, from }).catch((err: unknown) => {
        if (err instanceof RegistryError && (err.unauthorized || err.notFound)) return undefined; // no pull right on the source: upload
        throw err;
      });
      if (r === "mounted") return say(`Mounted from ${from}`);
      if (r) {
        location = r;
        break;
      }
    }
    // Checked here rather than left to the registry: its digest_invalid would not say which local blob is bad
    // (a gzipped layer's stored bytes were checked as they were compressed).
    if (!checked) await verifyStoredBlob(path, desc);
    location ??= (await client.startUpload(repo)) as URL;
    let sent = 0;
    let last = 0;
    const progress = (n: number) => {
      sent += n;
      const now = Date.now();
      if (now - last > 100 || sent === desc.size) {
        last = now;
        say("Pushing", progressBar(sent, desc.size));
      }
    };
    say("Pushing", progressBar(0, desc.size));
    if (desc.size <= chunkSize) {
      await client.finishUpload(repo, location, desc.digest, {
        size: desc.size,
        open: () => {
          sent = 0;
          const s = createReadStream(path);
          s.on("data", (c) => progress(c.length));
          return s;
        },
      });
    } else {
      for (let start = 0; start < desc.size; start += chunkSize) {
        const chunk = await readRange(path, start, Math.min(chunkSize, desc.size - start));
        location = await client.uploadChunk(repo, location, start, chunk);
        progress(chunk.length);
      }
      await client.finishUpload(repo, location, desc.digest);
    }
    say("Pushed");
  };

  const pushBlob = async (stored: Descriptor, show: boolean) => {
    const id = shortId(stored.digest);
    const say = (word: string, detail?: string) => { if (show) display.update(id, word, detail); };
    if (!store.hasBlob(stored.digest)) throw new BerthError(`the blob ${stored.digest} is missing from the store: pull the image again`);
    const path = store.blobPath(stored.digest);
    const gzipType = stored.digest.startsWith("sha256:") ? gzipMediaTypeFor(stored.mediaType) : undefined;
    if (gzipType) {
      say("Preparing", "compressing");
      workDir ??= mkdtemp(join(tmpdir(), "berth-push-"));
      const gz = await gzipLayer(path, stored, gzipType, await workDir);
      replaced.set(stored.digest, gz.desc);
      try {
        return await sendBlob(gz.desc, gz.file, say, true);
      } finally {
        await rm(gz.file, { force: true }); // each as soon as it is up: not all of them in the temp dir at once
      }
    }
    return sendBlob(stored, path, say, false);
  };

  try {
    await forEachLimit(layers, opts.concurrency ?? 3, (l) => pushBlob(l, true));
  } finally {
    if (workDir) await rm(await workDir, { recursive: true, force: true });
  }
  await pushBlob(manifest.config, false);
  const sent = rewriteManifest(bytes, replaced);
  const expected = replaced.size ? `sha256:${createHash("sha256").update(sent).digest("hex")}` : manifestDigest;
  const digest = await client.putManifest(repo, tag, sent, mediaType);
  if (digest !== expected) throw new BerthError(`the manifest sent hashes to ${digest}, not ${replaced.size ? "the expected" : "the stored"} ${expected}`);
  display.message(`${tag}: digest: ${digest} size: ${sent.length}`);
  return { digest, size: sent.length, tag };
}

async function readRange(path: string, start: number, length: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of createReadStream(path, { start, end: start + length - 1 }) as AsyncIterable<Buffer>) chunks.push(c);
  const b = Buffer.concat(chunks);
  if (b.length !== length) throw new BerthError(`the stored blob ${path} is shorter than expected`);
  return b;
}

/** Hashes a stored blob before it is uploaded: a corrupt one is a local error naming it. */
async function verifyStoredBlob(path: string, desc: Descriptor): Promise<void> {
  const hash = createHash(desc.digest.startsWith("sha512:") ? "sha512" : "sha256");
  let size = 0;
  for await (const c of createReadStream(path) as AsyncIterable<Buffer>) {
    hash.update(c);
    size += c.length;
  }
  const got = `${desc.digest.split(":")[0]}:${hash.digest("hex")}`;
  if (got !== desc.digest || size !== desc.size) {
    throw new BerthError(`the stored blob ${desc.digest} is corrupt (its ${size} bytes hash to ${got}; expected ${desc.size} bytes): nothing of it was sent; remove the image and pull or load it again`);
  }
}
