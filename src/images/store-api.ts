// The contract between the image store (store.ts: blobs, layers, images, references) and the code that
// fills it (distribution/ pull and push, archives.ts load/save/import). Both sides code against these
// types; the store implements ImageStoreApi.

import type { Readable } from "node:stream";

/** An OCI descriptor (image-spec descriptor.md). */
export interface Descriptor {
  mediaType: string;
  digest: string; // "sha256:<64 hex>"
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string; variant?: string; "os.version"?: string; "os.features"?: string[] };
  urls?: string[];
}

/** Docker's normalised reference: docker.io/library/busybox:latest, 127.0.0.1:5000/x/y@sha256:... */
export interface Reference {
  /** "docker.io", "127.0.0.1:5000", ... */
  registry: string;
  /** "library/busybox" */
  repository: string;
  tag?: string;
  digest?: string;
  /** The full normalised string, e.g. "docker.io/library/busybox:latest". */
  full: string;
  /** What docker shows: "busybox:latest", "127.0.0.1:5000/x/y:tag". */
  familiar: string;
}

export interface ImageRecord {
  /** The config digest, "sha256:..." (docker's image ID). */
  id: string;
  /** References (familiar names are derived) pointing at this image. */
  repoTags: string[];
  /** "repo@sha256:manifestdigest" for images that came from or went to a registry. */
  repoDigests: string[];
  /** The manifest as stored (OCI image manifest or Docker schema2); its digest is manifestDigest. */
  manifestDigest: string;
  /** Layer diff IDs in order (uncompressed tar digests), from the config's rootfs.diff_ids. */
  diffIds: string[];
  created: string;
  /** Sum of the unpacked layers' sizes in bytes. */
  size: number;
}

/** Progress of one blob's transfer, for docker-pull-style output. */
export interface BlobProgress {
  digest: string;
  done: number;
  total: number;
  phase: "waiting" | "downloading" | "verifying" | "extracting" | "complete" | "exists" | "pushing" | "pushed" | "mounted" | "retrying";
}

export interface ImageStoreApi {
  readonly root: string;
  hasBlob(digest: string): boolean;
  /** Path of a verified blob's bytes (read-only for callers). */
  blobPath(digest: string): string;
  /** Reads a whole (small) blob, verifying its digest; throws if missing or corrupt. */
  readBlob(digest: string): Promise<Buffer>;
  /**
   * Stores a blob fetched by `open`, which is called with the byte offset to start from (a partial
   * earlier download is resumed with it). The digest (and size, if given) is verified before the blob
   * becomes visible; a mismatch throws and leaves nothing. Concurrent ingests of one digest, in this
   * or another process, wait for each other instead of downloading twice.
   */
  ingestBlob(
    desc: Pick<Descriptor, "digest" | "size">,
    open: (offset: number) => Promise<Readable>,
    onProgress?: (p: BlobProgress) => void,
  ): Promise<void>;
  /** Stores bytes already in memory (manifests, configs), verifying `digest` when given. Returns the digest. */
  putBlobBytes(bytes: Buffer, digest?: string): Promise<string>;
  /**
   * Records an image whose manifest, config and layer blobs are all in the store: unpacks each layer
   * once (shared by diff ID), then points `reference` (if any) at it. Atomic: a crash leaves either the
   * old state or the new one.
   */
  commitImage(manifestDigest: string, reference?: Reference, onProgress?: (p: BlobProgress) => void, options?: { repoDigest?: boolean | string }): Promise<ImageRecord>;
  /** Adds "repo@manifestDigest" for an image that went to a registry (push), as dockerd records it. */
  addRepoDigest?(reference: Reference, manifestDigest: string, id: string): Promise<void>;
  /** The image a reference or ID (full or short hex prefix) names, or undefined. */
  findImage(nameOrId: string): ImageRecord | undefined;
  /** Runs `fn`; if it fails, the blobs it stored that no image uses are removed again. */
  transaction?<T>(fn: () => Promise<T>): Promise<T>;
}
