// berth pull: manifest (index -> the platform's manifest), config, then the layers in parallel through
// the store's ingest (resumable, verified, shared between concurrent pulls), then commitImage.
// Nothing is recorded until every blob is in the store and verified; a failed pull removes the blobs it stored.

import { Readable } from "node:stream";
import { BerthError } from "../errors.js";
import type { BlobProgress, Descriptor, ImageRecord, ImageStoreApi, Reference } from "../images/store-api.js";
import { RegistryClient, RegistryError, insecureRegistriesFromEnv } from "./client.js";
import { type Credentials, loadCredentials } from "./credentials.js";
import { formatPlatform, hostPlatform, MANIFEST_ACCEPT, parseImageConfig, parseManifest, parsePlatform, type Platform, selectPlatform } from "./manifest.js";
import { ProgressDisplay, type ProgressOutput, progressBar, shortId } from "./progress.js";
import { familiarRepository, isDigest, parseReference } from "./reference.js";

export const CONFIG_LIMIT = 64 * 1024 * 1024;

export interface RegistryOptions {
  /** Credentials to use; undefined: read them from the config file (`configPath`); null: anonymous. */
  credentials?: Credentials | null;
  configPath?: string;
  /** Extra --insecure-registry hosts (BERTH_INSECURE_REGISTRIES is added). */
  insecureRegistries?: string[];
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
  /** Where progress goes (default stdout) and whether it is a terminal (default: out.isTTY). */
  out?: ProgressOutput;
  tty?: boolean;
  quiet?: boolean;
  /** Blobs transferred at once (default 3). */
  concurrency?: number;
}

export interface PullOptions extends RegistryOptions {
  /** "os/arch[/variant]" or a Platform; default the host's. */
  platform?: string | Platform;
}

export function clientFor(registry: string, o: RegistryOptions): RegistryClient {
  const credentials = o.credentials === null ? undefined : o.credentials ?? loadCredentials(registry, o.configPath);
  return new RegistryClient(registry, {
    credentials,
    insecureRegistries: [...(o.insecureRegistries ?? []), ...insecureRegistriesFromEnv()],
    timeoutMs: o.timeoutMs,
    retries: o.retries,
    retryDelayMs: o.retryDelayMs,
  });
}

/** Runs `fn` over `items`, `limit` at a time; after a failure starts no new item, waits for the running ones, rethrows the first error. */
export async function forEachLimit<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const i = next++;
      try {
        await fn(items[i], i);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.err;
}

/** Counts the bytes flowing through a stream (progress) without changing them. */
function counted(stream: Readable, onBytes: (n: number) => void): Readable {
  return Readable.from((async function* () {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      onBytes(chunk.length);
      yield chunk;
    }
  })(), { objectMode: false });
}

/** One line for a failed pull, naming the reference and what to do. */
export function pullError(ref: Reference, err: unknown): BerthError {
  if (err instanceof RegistryError) {
    if (err.unauthorized) {
      return new BerthError(`pull access denied for ${familiarRepository(ref)}, repository does not exist or may require 'berth login': ${err.message}`);
    }
    if (err.notFound && /manifest/i.test(err.message)) {
      return new BerthError(`manifest for ${ref.familiar} not found: ${err.message}: check the name and tag`);
    }
  }
  const message = err instanceof Error ? err.message : String(err);
  return new BerthError(`pulling ${ref.familiar}: ${message}`, { cause: err });
}

/** Pulls an image into the store and returns its record. */
export async function pullImage(store: ImageStoreApi, reference: Reference | string, opts: PullOptions = {}): Promise<ImageRecord> {
  const ref = typeof reference === "string" ? parseReference(reference) : reference;
  if (ref.digest && !isDigest(ref.digest)) throw new BerthError(`cannot pull ${ref.familiar}: only sha256 and sha512 digests are supported`);
  const platform = opts.platform === undefined ? hostPlatform() : typeof opts.platform === "string" ? parsePlatform(opts.platform) : opts.platform;
  const display = new ProgressDisplay(opts.out ?? process.stdout, { tty: opts.tty, quiet: opts.quiet });
  const work = () => pull(store, ref, platform, opts.platform !== undefined, display, clientFor(ref.registry, opts), opts.concurrency ?? 3);
  try {
    // A pull that fails (a layer that does not unpack, say) takes back the blobs it stored: nothing half-pulled stays.
    return await (store.transaction ? store.transaction(work) : work());
  } catch (err) {
    throw pullError(ref, err);
  }
}

async function pull(store: ImageStoreApi, ref: Reference, platform: Platform, explicitPlatform: boolean, display: ProgressDisplay, client: RegistryClient, concurrency: number): Promise<ImageRecord> {
  const repo = ref.repository;
  const what = `manifest of ${ref.familiar}`;
  display.message(`${ref.digest ?? ref.tag}: Pulling from ${familiarRepository(ref)}`);

  const top = await client.getManifest(repo, ref.digest ?? ref.tag ?? "latest", MANIFEST_ACCEPT);
  let parsed = parseManifest(top.bytes, top.contentType, what);
  let manifest = top;
  if (parsed.kind === "index") {
    const desc = selectPlatform(parsed, platform, ref.familiar);
    manifest = await client.getManifest(repo, desc.digest, [desc.mediaType, ...MANIFEST_ACCEPT]);
    if (manifest.bytes.length !== desc.size) {
      throw new BerthError(`the ${formatPlatform(platform)} manifest ${desc.digest} is ${manifest.bytes.length} bytes, but the index says ${desc.size}`);
    }
    parsed = parseManifest(manifest.bytes, manifest.contentType, `${formatPlatform(platform)} manifest ${desc.digest} of ${ref.familiar}`);
    if (parsed.kind === "index") throw new BerthError(`the ${formatPlatform(platform)} entry of ${ref.familiar}'s index is another index: nested indexes are not supported`);
  }
  const image = parsed;

  const configBytes = await client.fetchBlob(repo, image.config, CONFIG_LIMIT, "image config");
  const config = parseImageConfig(configBytes, image.layers.length, ref.familiar);
  if (explicitPlatform && top.digest === manifest.digest && config.platform.architecture &&
      (config.platform.os !== platform.os || config.platform.architecture !== platform.architecture)) {
    throw new BerthError(`image ${ref.familiar} is for ${formatPlatform(config.platform)}, not the requested ${formatPlatform(platform)}`);
  }

  const before = store.findImage(ref.full);
  const layers: Descriptor[] = [];
  for (const l of image.layers) if (!layers.some((x) => x.digest === l.digest)) layers.push(l);
  const present = new Set(layers.filter((l) => store.hasBlob(l.digest)).map((l) => l.digest));
  for (const l of layers) display.update(shortId(l.digest), present.has(l.digest) ? "Already exists" : "Pulling fs layer");

  const storePhase: Partial<Record<BlobProgress["phase"], string>> = {
    waiting: "Waiting", verifying: "Verifying Checksum", complete: "Download complete", exists: "Already exists", retrying: "Retrying",
  };
  let downloaded = 0;
  await forEachLimit(layers.filter((l) => !present.has(l.digest)), concurrency, async (layer) => {
    const id = shortId(layer.digest);
    let done = 0;
    let last = 0;
    const show = () => display.update(id, "Downloading", progressBar(done, layer.size));
    await store.ingestBlob(
      { digest: layer.digest, size: layer.size },
      async (offset) => {
        done = offset;
        show();
        const body = await client.openBlob(repo, layer, offset, () => display.update(id, "Retrying"));
        return counted(body, (n) => {
          done += n;
          const now = Date.now();
          if (now - last > 100 || done === layer.size) {
            last = now;
            show();
          }
        });
      },
      (p) => {
        const word = storePhase[p.phase];
        if (word) display.update(id, word);
      },
    ).catch((err: unknown) => {
      if (err instanceof BerthError && err.message.includes(layer.digest)) throw err;
      throw new BerthError(`layer ${layer.digest}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    });
    downloaded++;
    display.update(id, "Download complete");
  });

  // Every layer is in the store and verified: now the config and manifest, then the record.
  await store.putBlobBytes(configBytes, image.config.digest);
  await store.putBlobBytes(manifest.bytes, manifest.digest);
  const byDiffId = new Map(config.diffIds.map((d, i) => [d, image.layers[i].digest]));
  const record = await store.commitImage(manifest.digest, ref, (p) => {
    const digest = byDiffId.get(p.digest) ?? p.digest;
    if (!layers.some((l) => l.digest === digest)) return;
    const id = shortId(digest);
    if (p.phase === "extracting") display.update(id, "Extracting", progressBar(p.done, p.total));
    else if (p.phase === "complete") display.update(id, "Pull complete");
  }, { repoDigest: top.digest }); // a manifest list's digest, not its platform entry's: as dockerd's RepoDigests
  for (const l of layers) if (!present.has(l.digest)) display.update(shortId(l.digest), "Pull complete");
  display.message(`Digest: ${top.digest}`);
  const upToDate = downloaded === 0 && before?.manifestDigest === manifest.digest;
  display.message(`Status: ${upToDate ? "Image is up to date" : "Downloaded newer image"} for ${ref.familiar}`);
  return record;
}
