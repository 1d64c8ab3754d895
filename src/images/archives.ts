// Image archives: `load` of docker-archive (docker save: manifest.json + config + layer tars, also the
// OCI-in-docker-save layout of newer dockers) and OCI layouts (a directory or an oci-archive tarball);
// `save` to docker-archive (what `docker load` takes); `import` of a root filesystem tarball.

import {
  closeSync, createReadStream, createWriteStream, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync,
} from "node:fs";
import { lstat, mkdir } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import { PassThrough, pipeline as streamPipeline, type Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import { applyChanges, type Change } from "../daemon/commit-changes.js";
import { BerthError } from "../errors.js";
import { tmpName } from "./fsutil.js";
import { Decompressor, HashTap } from "./layer.js";
import {
  hostPlatform, type ImageManifest, manifestKind, MediaType, parseImageConfig, parseIndex, parseJson, parseManifest,
} from "./manifest.js";
import { parseReference } from "./reference.js";
import { digestHex, familiarOf, type ImageStore, sha256 } from "./store.js";
import type { Descriptor, ImageRecord, Reference } from "./store-api.js";
import { cleanEntryPath } from "./tar-paths.js";

export interface LoadResult {
  /** "Loaded image: busybox:latest" or "Loaded image ID: sha256:…" lines, as docker prints them. */
  loaded: { id: string; reference?: string }[];
}

/** Unpacks an archive's regular files and directories into `dir`; symlinks become a map of aliases. */
async function extractArchive(input: Readable, dir: string, what: string): Promise<Map<string, string>> {
  const links = new Map<string, string>();
  const extract = tar.extract();
  const counted = new HashTap();
  const flowing = pipeline(input, new Decompressor(), counted, extract);
  flowing.catch(() => {});
  let entries = 0;
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const rel = cleanEntryPath(h.name, `${what}: entry`);
      entries++;
      const body = entry as unknown as Readable;
      if (rel === "") { body.resume(); continue; }
      const abs = join(dir, rel);
      if (h.type === "directory") {
        body.resume();
        await mkdir(abs, { recursive: true });
      } else if (h.type === "file" || h.type === "contiguous-file") {
        await mkdir(dirname(abs), { recursive: true });
        // Refuse to write through anything but a plain directory we made.
        const parent = await lstat(dirname(abs));
        if (!parent.isDirectory()) throw new BerthError(`${what}: entry ${JSON.stringify(h.name)} goes through a non-directory`);
        await pipeline(body, createWriteStream(abs, { flags: "wx" }));
      } else if (h.type === "symlink" || h.type === "link") {
        body.resume();
        const target = h.type === "symlink" ? posix.join(posix.dirname(rel), h.linkname ?? "") : (h.linkname ?? "");
        links.set(rel, cleanEntryPath(target, `${what}: link target of ${JSON.stringify(h.name)}:`));
      } else {
        body.resume();
      }
    }
    await flowing;
  } catch (err) {
    input.destroy();
    extract.destroy();
    await flowing.catch(() => {});
    if (err instanceof BerthError) throw err;
    const msg = (err as Error).message;
    if (/Invalid tar header/i.test(msg) || entries === 0) throw new BerthError(`${what} is not a tar archive: not an image archive (docker save or OCI)`);
    if (/Unexpected end of data/i.test(msg)) throw new BerthError(`${what}: the archive ends early (truncated)`);
    throw new BerthError(`${what}: ${msg}`, { cause: err });
  }
  if (entries === 0) throw new BerthError(`${what} is empty: not an image archive (docker save or OCI)`);
  return links;
}

/** A file of the extracted archive, following the archive's own symlinks. */
function archiveFile(dir: string, links: Map<string, string>, rel: string, what: string): string {
  let cur = cleanEntryPath(rel, `${what}: path`);
  for (let i = 0; i < 16 && links.has(cur); i++) cur = links.get(cur)!;
  const p = join(dir, cur);
  if (!existsSync(p) || !statSync(p).isFile()) throw new BerthError(`${what}: ${rel} is missing from the archive`);
  return p;
}

/** Stores a local file as a blob (verified); returns its descriptor with a sniffed layer media type. */
async function storeFileBlob(store: ImageStore, path: string, expected?: string): Promise<{ digest: string; size: number; compression: "gzip" | "zstd" | "none" }> {
  const tap = new HashTap();
  await pipeline(createReadStream(path), tap, new PassThrough().resume());
  const digest = expected ?? tap.digest();
  if (expected && tap.digest() !== expected) {
    throw new BerthError(`${path}: content does not match its digest ${expected} (got ${tap.digest()}): the archive is corrupt`);
  }
  const size = tap.bytes;
  await store.ingestBlob({ digest, size }, async (offset) => createReadStream(path, { start: offset }));
  const head = Buffer.alloc(4);
  const fd = openSync(path, "r");
  try { readSync(fd, head, 0, 4, 0); } finally { closeSync(fd); }
  const compression = head[0] === 0x1f && head[1] === 0x8b ? "gzip" : head.readUInt32LE(0) === 0xfd2fb528 ? "zstd" : "none";
  return { digest, size, compression };
}

const LAYER_TYPE = { gzip: MediaType.OciLayerGzip, zstd: MediaType.OciLayerZstd, none: MediaType.OciLayer } as const;

/** Writes an OCI manifest for a config and layer blobs already in the store; returns its digest. */
async function putManifest(store: ImageStore, config: { digest: string; size: number }, layers: Descriptor[]): Promise<string> {
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: config.digest, size: config.size },
    layers,
  };
  return store.putBlobBytes(Buffer.from(JSON.stringify(manifest)));
}

/** Points references at an image. */
async function nameImage(store: ImageStore, record: ImageRecord, refs: Reference[]): Promise<void> {
  if (refs.length === 0) return;
  await store.setReferences(refs.map((r) => r.full), record.id);
}

interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

async function loadDockerArchive(store: ImageStore, dir: string, links: Map<string, string>, what: string): Promise<LoadResult> {
  const entries = parseJson(readFileSync(archiveFile(dir, links, "manifest.json", what)), `${what}: manifest.json`);
  if (!Array.isArray(entries)) throw new BerthError(`${what}: manifest.json is not a list: not a docker save archive`);
  const result: LoadResult = { loaded: [] };
  for (const raw of entries as DockerManifestEntry[]) {
    if (typeof raw?.Config !== "string" || !Array.isArray(raw.Layers)) throw new BerthError(`${what}: manifest.json entry without Config or Layers`);
    const configPath = archiveFile(dir, links, raw.Config, what);
    const configBytes = readFileSync(configPath);
    const config = parseImageConfig(configBytes, `${what}: ${raw.Config}`);
    if (config.rootfs.diff_ids.length !== raw.Layers.length) {
      throw new BerthError(`${what}: ${raw.Config} lists ${config.rootfs.diff_ids.length} diff IDs but manifest.json lists ${raw.Layers.length} layers`);
    }
    // In the OCI-in-docker-save layout the path names the blob's digest: verify it.
    const expectedOf = (p: string) => {
      const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(p);
      return m ? `sha256:${m[1]}` : undefined;
    };
    const configDigest = await store.putBlobBytes(configBytes, expectedOf(raw.Config));
    const layers: Descriptor[] = [];
    for (const l of raw.Layers) {
      const b = await storeFileBlob(store, archiveFile(dir, links, l, what), expectedOf(l));
      layers.push({ mediaType: LAYER_TYPE[b.compression], digest: b.digest, size: b.size });
    }
    const md = await putManifest(store, { digest: configDigest, size: configBytes.length }, layers);
    const record = await store.commitImage(md, undefined, undefined, { repoDigest: false });
    const refs = (raw.RepoTags ?? []).map((t) => parseReference(t));
    await nameImage(store, record, refs);
    if (refs.length === 0) result.loaded.push({ id: record.id });
    for (const r of refs) result.loaded.push({ id: record.id, reference: r.familiar });
  }
  return result;
}

async function loadOciLayout(store: ImageStore, dir: string, links: Map<string, string>, what: string): Promise<LoadResult> {
  const layout = parseJson(readFileSync(archiveFile(dir, links, "oci-layout", what)), `${what}: oci-layout`) as { imageLayoutVersion?: string };
  if (typeof layout?.imageLayoutVersion !== "string") throw new BerthError(`${what}: oci-layout has no imageLayoutVersion`);
  const blob = (d: string) => archiveFile(dir, links, `blobs/sha256/${digestHex(d)}`, what);
  const readVerified = (d: Descriptor) => {
    const bytes = readFileSync(blob(d.digest));
    if (sha256(bytes) !== d.digest) throw new BerthError(`${what}: blob ${d.digest} does not match its digest: the archive is corrupt`);
    return bytes;
  };
  const result: LoadResult = { loaded: [] };
  const want = hostPlatform();
  const visit = async (desc: Descriptor, name: string | undefined): Promise<void> => {
    const bytes = readVerified(desc);
    const doc = parseJson(bytes, `${what}: ${desc.digest}`);
    const kind = manifestKind(doc);
    if (kind === "index") {
      const index = parseIndex(bytes, `${what}: index ${desc.digest}`);
      const candidates = index.manifests.filter((m) => !m.platform || (m.platform.os === want.os && m.platform.architecture === want.architecture));
      // Attestation manifests (platform unknown/unknown) are not images to run.
      const pick = candidates.find((m) => m.platform) ?? candidates[0] ?? (index.manifests.length === 1 ? index.manifests[0] : undefined);
      if (!pick) throw new BerthError(`${what}: no image for ${want.os}/${want.architecture} in index ${desc.digest}`);
      return visit(pick, name ?? refName(pick));
    }
    if (kind !== "manifest") throw new BerthError(`${what}: ${desc.digest} is neither an image manifest nor an index`);
    const manifest: ImageManifest = parseManifest(bytes, `${what}: manifest ${desc.digest}`);
    await store.putBlobBytes(readVerified(manifest.config), manifest.config.digest);
    for (const l of manifest.layers) await storeFileBlob(store, blob(l.digest), l.digest);
    await store.putBlobBytes(bytes, desc.digest);
    const record = await store.commitImage(desc.digest, undefined, undefined, { repoDigest: false });
    let ref: Reference | undefined;
    if (name) {
      try { ref = parseReference(name); } catch { ref = undefined; }
    }
    if (ref) await nameImage(store, record, [ref]);
    result.loaded.push({ id: record.id, reference: ref?.familiar });
  };
  const index = parseIndex(readFileSync(archiveFile(dir, links, "index.json", what)), `${what}: index.json`);
  if (index.manifests.length === 0) throw new BerthError(`${what}: index.json lists no images`);
  for (const m of index.manifests) await visit(m, refName(m));
  return result;
}

/** An OCI descriptor's image name: containerd's full name, or ref.name when it is a whole reference. */
function refName(d: Descriptor): string | undefined {
  const full = d.annotations?.["io.containerd.image.name"];
  if (full) return full;
  const r = d.annotations?.["org.opencontainers.image.ref.name"];
  return r && /[:/]/.test(r) ? r : undefined;
}

/**
 * Loads images from a docker-archive or OCI archive (a tar, possibly gzip/zstd-compressed) or an OCI
 * layout directory. Everything is verified before any reference points at it; a failure leaves no
 * reference and nothing in tmp/.
 */
export async function loadImages(store: ImageStore, source: { path?: string; stream?: Readable }, what = source.path ?? "the input"): Promise<LoadResult> {
  return store.transaction(async () => {
    if (source.path && existsSync(source.path) && statSync(source.path).isDirectory()) {
      return loadFromDir(store, source.path, new Map(), what);
    }
    const work = join(store.root, "tmp", tmpName("load"));
    mkdirSync(work, { recursive: true, mode: 0o700 });
    try {
      let input: Readable;
      if (source.stream) input = source.stream;
      else if (source.path) {
        if (!existsSync(source.path)) throw new BerthError(`open ${source.path}: no such file`);
        input = createReadStream(source.path);
      } else throw new BerthError("nothing to load: give -i FILE or pipe an archive to stdin");
      const links = await extractArchive(input, work, what);
      return await loadFromDir(store, work, links, what);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

async function loadFromDir(store: ImageStore, dir: string, links: Map<string, string>, what: string): Promise<LoadResult> {
  const has = (p: string) => existsSync(join(dir, p)) || links.has(p);
  if (has("manifest.json")) return loadDockerArchive(store, dir, links, what);
  if (has("oci-layout") && has("index.json")) return loadOciLayout(store, dir, links, what);
  throw new BerthError(`${what} is not an image archive: it has neither manifest.json (docker save) nor oci-layout and index.json (OCI layout)`);
}

// ---- save -----------------------------------------------------------------------------------------

async function addEntry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, body: Buffer | Readable): Promise<void> {
  if (Buffer.isBuffer(body)) {
    await new Promise<void>((res, rej) => pack.entry(header as tar.Header, body, (e) => (e ? rej(e) : res())));
    return;
  }
  await new Promise<void>((res, rej) => {
    const sink = pack.entry(header as tar.Header, (e) => (e ? rej(e) : res()));
    pipeline(body, sink as unknown as Writable).catch(rej);
  });
}

/**
 * Writes images as a docker-archive (docker save's format) to `out`: per image its config
 * (<hex>.json), each layer uncompressed as <diffid-hex>/layer.tar, manifest.json and repositories.
 */
export async function saveImages(store: ImageStore, names: string[], out: Writable): Promise<void> {
  if (names.length === 0) throw new BerthError("nothing to save: name at least one image");
  const items: { id: string; tags: string[] }[] = [];
  for (const name of names) {
    const id = store.resolveImageId(name);
    if (!id) throw new BerthError(`No such image: ${name}`);
    const rec = store.findImage(id)!;
    let tags: string[];
    let byRef: Reference | undefined;
    try { byRef = /^(sha256:)?[a-f0-9]{6,64}$/.test(name) && !store.references()[parseReference(name).full] ? undefined : parseReference(name); } catch { byRef = undefined; }
    if (byRef && !byRef.digest) tags = [byRef.familiar];
    else tags = byRef?.digest ? [] : rec.repoTags;
    const existing = items.find((i) => i.id === id);
    if (existing) existing.tags.push(...tags.filter((t) => !existing.tags.includes(t)));
    else items.push({ id, tags: [...tags] });
  }
  const pack = tar.pack();
  const done = pipeline(pack as unknown as Readable, out);
  done.catch(() => {});
  const mtime = new Date(0);
  const written = new Set<string>();
  const manifest: DockerManifestEntry[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  try {
    for (const item of items) {
      const s = store.storedImage(item.id)!;
      const config = await store.readBlob(item.id);
      const configName = `${digestHex(item.id)}.json`;
      if (!written.has(configName)) {
        await addEntry(pack, { name: configName, mode: 0o644, mtime, size: config.length }, config);
        written.add(configName);
      }
      const layerNames: string[] = [];
      for (let i = 0; i < s.diffIds.length; i++) {
        const diffId = s.diffIds[i];
        const hex = digestHex(diffId);
        const name = `${hex}/layer.tar`;
        layerNames.push(name);
        if (written.has(name)) continue;
        const info = store.layerInfo(diffId);
        if (!info) throw new BerthError(`layer ${diffId} of image ${item.id} is missing from the store: pull or load the image again`);
        await addEntry(pack, { name: `${hex}/`, type: "directory", mode: 0o755, mtime }, Buffer.alloc(0));
        await addEntry(pack, { name: `${hex}/VERSION`, mode: 0o644, mtime }, Buffer.from("1.0"));
        const tap = new HashTap();
        // pipeline, not .pipe(): a corrupt blob (the verifying stream's error) or a bad gzip must reach
        // addEntry as a rejection; .pipe() left it an unhandled 'error' event that crashed the process.
        const stream = streamPipeline(store.openBlob(s.layers[i].digest), new Decompressor(), tap, () => {});
        await addEntry(pack, { name, mode: 0o644, mtime, size: info.tarSize }, stream);
        if (tap.digest() !== diffId) throw new BerthError(`layer ${diffId} of image ${item.id}: the stored blob does not match the diff ID: remove the image and fetch it again`);
        written.add(name);
      }
      manifest.push({ Config: configName, RepoTags: item.tags.length ? item.tags : null, Layers: layerNames });
      for (const t of item.tags) {
        const ref = parseReference(t);
        const repo = ref.familiar.slice(0, ref.familiar.length - (ref.tag ? ref.tag.length + 1 : 0));
        (repositories[repo] ??= {})[ref.tag ?? "latest"] = digestHex(s.diffIds[s.diffIds.length - 1] ?? item.id);
      }
    }
    await addEntry(pack, { name: "manifest.json", mode: 0o644, mtime }, Buffer.from(JSON.stringify(manifest)));
    if (Object.keys(repositories).length) await addEntry(pack, { name: "repositories", mode: 0o644, mtime }, Buffer.from(JSON.stringify(repositories)));
    pack.finalize();
    await done;
  } catch (err) {
    pack.destroy(err as Error);
    await done.catch(() => {});
    throw err;
  }
}

/**
 * Writes images as an oci-archive: a tar of an OCI image layout (oci-layout, index.json, blobs/sha256/*)
 * holding each image's manifest, config and layer blobs exactly as stored, so digests are kept; each
 * tag is an index entry annotated with org.opencontainers.image.ref.name.
 */
export async function saveOciArchive(store: ImageStore, names: string[], out: Writable): Promise<void> {
  if (names.length === 0) throw new BerthError("nothing to save: name at least one image");
  const pack = tar.pack();
  const done = pipeline(pack as unknown as Readable, out);
  done.catch(() => {});
  const mtime = new Date(0);
  const written = new Set<string>();
  const manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[] = [];
  const blob = async (digest: string, size?: number) => {
    if (written.has(digest)) return;
    written.add(digest);
    const name = `blobs/sha256/${digestHex(digest)}`;
    if (size === undefined) {
      const bytes = await store.readBlob(digest);
      await addEntry(pack, { name, mode: 0o644, mtime, size: bytes.length }, bytes);
    } else {
      await addEntry(pack, { name, mode: 0o644, mtime, size }, store.openBlob(digest));
    }
  };
  try {
    await addEntry(pack, { name: "blobs/", type: "directory", mode: 0o755, mtime }, Buffer.alloc(0));
    await addEntry(pack, { name: "blobs/sha256/", type: "directory", mode: 0o755, mtime }, Buffer.alloc(0));
    for (const name of names) {
      const id = store.resolveImageId(name);
      if (!id) throw new BerthError(`No such image: ${name}`);
      const s = store.storedImage(id)!;
      await blob(id);
      for (const layer of s.layers) await blob(layer.digest, layer.size);
      const manifest = await store.readBlob(s.manifestDigest);
      await blob(s.manifestDigest);
      let ref: Reference | undefined;
      try { ref = /^(sha256:)?[a-f0-9]{6,64}$/.test(name) ? undefined : parseReference(name); } catch { ref = undefined; }
      manifests.push({
        mediaType: s.manifestMediaType,
        digest: s.manifestDigest,
        size: manifest.length,
        annotations: ref ? { "org.opencontainers.image.ref.name": ref.tag ?? "latest", "io.containerd.image.name": ref.full } : undefined,
      });
    }
    await addEntry(pack, { name: "oci-layout", mode: 0o644, mtime }, Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" })));
    const index = { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests };
    await addEntry(pack, { name: "index.json", mode: 0o644, mtime }, Buffer.from(JSON.stringify(index)));
    pack.finalize();
    await done;
  } catch (err) {
    pack.destroy(err as Error);
    await done.catch(() => {});
    throw err;
  }
}

/** Saves to a file atomically (a temp file beside it, renamed when complete). */
export async function saveImagesToFile(store: ImageStore, names: string[], path: string, format: "docker" | "oci" = "docker"): Promise<void> {
  const tmp = join(dirname(path), `.${tmpName("berth-save")}`);
  try {
    const save = format === "oci" ? saveOciArchive : saveImages;
    await save(store, names, createWriteStream(tmp, { flags: "wx", mode: 0o644 }));
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

// ---- import -----------------------------------------------------------------------------------------

export interface ImportOptions {
  reference?: string;
  /** Shown in the history comment, like docker's "Imported from -". */
  source?: string;
  message?: string;
  platform?: { architecture: string; os: string; variant?: string };
  /** docker import --change: Dockerfile instructions for the image's config (parsed by parseChanges). */
  changes?: Change[];
}

/** An imported image's config: empty, as dockerd's, but for the --change instructions. */
function importConfig(changes: Change[]): object {
  if (changes.length === 0) return {};
  const config = applyChanges({}, changes);
  // applyChanges starts from the base's Env: an import without ENV keeps docker's null, not [].
  if (config.Env?.length === 0) delete config.Env;
  return config;
}

/** docker import: a root filesystem tarball (plain, gzip or zstd) becomes a one-layer image. */
export async function importRootfs(store: ImageStore, input: Readable, options: ImportOptions = {}): Promise<ImageRecord> {
  const ref = options.reference ? parseReference(options.reference) : undefined;
  return store.transaction(async () => {
    const tmp = join(store.root, "tmp", tmpName("import"));
    try {
      const tap = new HashTap();
      // Check it is a tar while copying the uncompressed bytes out.
      const tee = new PassThrough();
      const check = tar.extract();
      let entries = 0;
      const checking = (async () => {
        for await (const e of check) {
          cleanEntryPath(e.header.name, `${options.source ?? "import"}: entry`);
          entries++;
          (e as unknown as Readable).resume();
        }
      })();
      checking.catch(() => {});
      const toFile = createWriteStream(tmp, { flags: "wx", mode: 0o644 });
      tee.pipe(check);
      try {
        await Promise.all([pipeline(input, new Decompressor(), tap, tee, toFile), checking]);
      } catch (err) {
        const msg = (err as Error).message;
        if (err instanceof BerthError) throw err;
        if (/Invalid tar header/.test(msg) || entries === 0) throw new BerthError(`${options.source ?? "the input"} is not a tar archive: docker import takes a root filesystem tarball`);
        if (/Unexpected end of data/.test(msg)) throw new BerthError(`${options.source ?? "the input"}: the tarball ends early (truncated)`);
        throw new BerthError(`${options.source ?? "the input"}: ${msg}`, { cause: err });
      }
      if (entries === 0) throw new BerthError(`${options.source ?? "the input"} is an empty tarball: nothing to import`);
      const diffId = tap.digest();
      await store.ingestBlob({ digest: diffId, size: tap.bytes }, async (offset) => createReadStream(tmp, { start: offset }));
      const created = new Date().toISOString();
      const platform = options.platform ?? hostPlatform();
      const config = {
        architecture: platform.architecture,
        os: platform.os,
        ...(platform.variant ? { variant: platform.variant } : {}),
        created,
        config: importConfig(options.changes ?? []),
        rootfs: { type: "layers", diff_ids: [diffId] },
        history: [{ created, created_by: "berth import", comment: options.message ?? `Imported from ${options.source ?? "-"}` }],
      };
      const configBytes = Buffer.from(JSON.stringify(config));
      const configDigest = await store.putBlobBytes(configBytes);
      const md = await putManifest(store, { digest: configDigest, size: configBytes.length }, [{ mediaType: MediaType.OciLayer, digest: diffId, size: tap.bytes }]);
      return store.commitImage(md, ref, undefined, { repoDigest: false });
    } finally {
      rmSync(tmp, { force: true });
    }
  });
}

export { familiarOf };
