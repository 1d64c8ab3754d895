// Image manifests and configs (OCI image-spec and Docker schema2): media types and strict-enough parsing
// with one-line errors (pure).

import { BerthError } from "../errors.js";
import { isDigest } from "./reference.js";
import type { Descriptor } from "./store-api.js";

export const MediaType = {
  OciManifest: "application/vnd.oci.image.manifest.v1+json",
  OciIndex: "application/vnd.oci.image.index.v1+json",
  OciConfig: "application/vnd.oci.image.config.v1+json",
  OciLayer: "application/vnd.oci.image.layer.v1.tar",
  OciLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  OciLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  OciLayerNondistGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  DockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  DockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  DockerConfig: "application/vnd.docker.container.image.v1+json",
  DockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  DockerLayerForeignGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

export const LAYER_MEDIA_TYPES: ReadonlySet<string> = new Set([
  MediaType.OciLayer, MediaType.OciLayerGzip, MediaType.OciLayerZstd, MediaType.OciLayerNondistGzip,
  MediaType.DockerLayerGzip, MediaType.DockerLayerForeignGzip, "application/vnd.docker.image.rootfs.diff.tar",
]);

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** The runtime part of an image config (docker's ContainerConfig / OCI's config). */
export interface ImageRunConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object> | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
  Healthcheck?: { Test?: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; Retries?: number };
  ArgsEscaped?: boolean;
  OnBuild?: string[] | null;
  Shell?: string[];
  [key: string]: unknown;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  created?: string;
  author?: string;
  config?: ImageRunConfig;
  rootfs: { type: "layers"; diff_ids: string[] };
  history?: HistoryEntry[];
  [key: string]: unknown;
}

function fail(what: string, why: string): never {
  throw new BerthError(`${what} is not a valid image document: ${why}`);
}

export function parseJson(bytes: Buffer | string, what: string): unknown {
  try {
    return JSON.parse(typeof bytes === "string" ? bytes : bytes.toString("utf8"));
  } catch (err) {
    throw new BerthError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function parseDescriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v)) fail(what, "a descriptor is not an object");
  if (typeof v.mediaType !== "string") fail(what, "a descriptor has no mediaType");
  if (typeof v.digest !== "string" || !isDigest(v.digest)) fail(what, `a descriptor has a bad digest ${JSON.stringify(v.digest)}`);
  if (typeof v.size !== "number" || !Number.isSafeInteger(v.size) || v.size < 0) fail(what, `descriptor ${v.digest} has a bad size`);
  return v as unknown as Descriptor;
}

/** What kind of document a manifest blob is: from mediaType, or guessed from its fields (OCI allows omitting it). */
export function manifestKind(doc: unknown): "manifest" | "index" | "unknown" {
  if (!isObject(doc)) return "unknown";
  const mt = doc.mediaType;
  if (mt === MediaType.OciManifest || mt === MediaType.DockerManifest) return "manifest";
  if (mt === MediaType.OciIndex || mt === MediaType.DockerManifestList) return "index";
  if (mt === undefined && Array.isArray(doc.manifests)) return "index";
  if (mt === undefined && isObject(doc.config) && Array.isArray(doc.layers)) return "manifest";
  return "unknown";
}

export function parseManifest(bytes: Buffer | string, what = "manifest"): ImageManifest {
  const doc = parseJson(bytes, what);
  if (!isObject(doc)) fail(what, "not a JSON object");
  if (doc.schemaVersion !== 2) fail(what, `schemaVersion ${JSON.stringify(doc.schemaVersion)} (only 2 is supported)`);
  if (manifestKind(doc) !== "manifest") fail(what, `media type ${JSON.stringify(doc.mediaType)} is not an image manifest`);
  const config = parseDescriptor(doc.config, what);
  if (!Array.isArray(doc.layers)) fail(what, "no layers list");
  const layers = doc.layers.map((l) => parseDescriptor(l, what));
  for (const l of layers) {
    if (!LAYER_MEDIA_TYPES.has(l.mediaType)) fail(what, `layer ${l.digest} has unsupported media type ${l.mediaType}`);
  }
  return { ...(doc as object), schemaVersion: 2, config, layers } as ImageManifest;
}

export function parseIndex(bytes: Buffer | string, what = "image index"): ImageIndex {
  const doc = parseJson(bytes, what);
  if (!isObject(doc)) fail(what, "not a JSON object");
  if (doc.schemaVersion !== 2) fail(what, `schemaVersion ${JSON.stringify(doc.schemaVersion)} (only 2 is supported)`);
  if (!Array.isArray(doc.manifests)) fail(what, "no manifests list");
  return { ...(doc as object), schemaVersion: 2, manifests: doc.manifests.map((m) => parseDescriptor(m, what)) } as ImageIndex;
}

export function parseImageConfig(bytes: Buffer | string, what = "image config"): ImageConfig {
  const doc = parseJson(bytes, what);
  if (!isObject(doc)) fail(what, "not a JSON object");
  const rootfs = doc.rootfs;
  if (!isObject(rootfs) || rootfs.type !== "layers" || !Array.isArray(rootfs.diff_ids)) fail(what, "no rootfs.diff_ids");
  for (const d of rootfs.diff_ids) if (typeof d !== "string" || !isDigest(d)) fail(what, `bad diff ID ${JSON.stringify(d)}`);
  if (typeof doc.architecture !== "string" || typeof doc.os !== "string") fail(what, "no architecture or os");
  if (doc.config !== undefined && doc.config !== null && !isObject(doc.config)) fail(what, "config is not an object");
  const cfg = doc.config as Record<string, unknown> | undefined;
  for (const key of ["Env", "Entrypoint", "Cmd"]) {
    const v = cfg?.[key];
    if (v !== undefined && v !== null && !(Array.isArray(v) && v.every((s) => typeof s === "string"))) fail(what, `config.${key} is not a list of strings`);
  }
  return doc as unknown as ImageConfig;
}

/** The platform Node runs on, in OCI words. */
export function hostPlatform(): { architecture: string; os: string; variant?: string } {
  const arch: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  return { architecture: arch[process.arch] ?? process.arch, os: "linux", variant: process.arch === "arm64" ? "v8" : undefined };
}

/** Whether a layer media type says zstd or gzip (the unpacker also sniffs magic bytes). */
export function layerCompression(mediaType: string): "gzip" | "zstd" | "none" {
  if (mediaType.endsWith("+zstd") || mediaType.endsWith(".zstd")) return "zstd";
  if (mediaType.endsWith("gzip")) return "gzip";
  return "none";
}
