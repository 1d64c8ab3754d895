// Manifests as registries serve them: OCI image manifest and index, Docker schema2 manifest and
// manifest list. Parsing, validation and platform selection; pure.

import { BerthError } from "../errors.js";
import type { Descriptor } from "../images/store-api.js";
import { isDigest } from "./reference.js";

export const MT = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
} as const;

/** What we ask registries for, in docker's order of preference. */
export const MANIFEST_ACCEPT = [MT.ociIndex, MT.dockerList, MT.ociManifest, MT.dockerManifest];

/** Layer media types Berth unpacks: tar, tar+gzip, tar+zstd, docker's and OCI's names. */
export const LAYER_TYPES: Record<string, "tar" | "gzip" | "zstd"> = {
  "application/vnd.oci.image.layer.v1.tar": "tar",
  "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
  "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
  "application/vnd.oci.image.layer.nondistributable.v1.tar": "tar",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
  "application/vnd.docker.image.rootfs.diff.tar": "tar",
  "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
  "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
};

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface ImageManifest {
  kind: "manifest";
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface IndexManifest {
  kind: "index";
  mediaType: string;
  manifests: Descriptor[];
}

export type ParsedManifest = ImageManifest | IndexManifest;

function checkDescriptor(d: unknown, where: string, bad: (why: string) => BerthError): Descriptor {
  if (typeof d !== "object" || d === null) throw bad(`${where} is not a descriptor`);
  const desc = d as Descriptor;
  if (typeof desc.digest !== "string" || !isDigest(desc.digest)) throw bad(`${where} has an invalid digest ${JSON.stringify(desc.digest)}`);
  if (typeof desc.size !== "number" || !Number.isSafeInteger(desc.size) || desc.size < 0) throw bad(`${where} has an invalid size ${JSON.stringify(desc.size)}`);
  if (typeof desc.mediaType !== "string") throw bad(`${where} has no mediaType`);
  return desc;
}

/**
 * Parses a manifest; `what` names it in errors ("manifest of 127.0.0.1:5000/x:tag"). `contentType` is the
 * registry's Content-Type, used when the JSON has no mediaType.
 */
export function parseManifest(bytes: Buffer, contentType: string, what: string): ParsedManifest {
  const bad = (why: string) => new BerthError(`the ${what} is not a usable image manifest: ${why}`);
  const text = bytes.toString("utf8");
  if (/^\s*</.test(text) || /html/i.test(contentType)) throw bad("the registry answered an HTML page");
  let j: Record<string, unknown>;
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not a JSON object");
    j = parsed as Record<string, unknown>;
  } catch (err) {
    throw bad(`it does not parse as JSON (${(err as Error).message})`);
  }
  if (j.schemaVersion === 1 || contentType === MT.dockerSchema1 || contentType === MT.dockerSchema1Signed) {
    throw bad("it is a Docker schema 1 manifest, which is deprecated and not supported: push the image again with a current client");
  }
  if (j.schemaVersion !== 2) throw bad(`schemaVersion is ${JSON.stringify(j.schemaVersion)}, expected 2`);
  let mediaType = typeof j.mediaType === "string" ? j.mediaType : "";
  if (!mediaType) {
    if ([MT.ociIndex, MT.ociManifest, MT.dockerList, MT.dockerManifest].includes(contentType as never)) mediaType = contentType;
    else mediaType = Array.isArray(j.manifests) ? MT.ociIndex : MT.ociManifest;
  }
  if (mediaType === MT.ociIndex || mediaType === MT.dockerList) {
    if (!Array.isArray(j.manifests)) throw bad("an index without a manifests list");
    const manifests = j.manifests.map((d, i) => checkDescriptor(d, `manifests[${i}]`, bad));
    return { kind: "index", mediaType, manifests };
  }
  if (mediaType !== MT.ociManifest && mediaType !== MT.dockerManifest) throw bad(`unknown media type ${mediaType}`);
  const config = checkDescriptor(j.config, "config", bad);
  if (config.mediaType !== MT.ociConfig && config.mediaType !== MT.dockerConfig) {
    throw bad(`its config is ${config.mediaType}, so it is an artifact, not a container image`);
  }
  if (!Array.isArray(j.layers)) throw bad("no layers list");
  const layers = j.layers.map((d, i) => {
    const desc = checkDescriptor(d, `layers[${i}]`, bad);
    if (desc.urls?.length || desc.mediaType.includes("foreign")) throw bad(`layers[${i}] is a foreign layer (${desc.mediaType}) to be fetched from elsewhere, which Berth does not do`);
    if (!LAYER_TYPES[desc.mediaType]) throw bad(`layers[${i}] has the unsupported media type ${desc.mediaType} (supported: tar, tar+gzip, tar+zstd)`);
    return desc;
  });
  return { kind: "manifest", mediaType, config, layers };
}

const ARCH: Record<string, string> = { x64: "amd64", ia32: "386", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64", mips64el: "mips64le", loong64: "loong64" };

export function hostPlatform(): Platform {
  const architecture = ARCH[process.arch] ?? process.arch;
  const p: Platform = { os: "linux", architecture };
  if (architecture === "arm64") p.variant = "v8";
  if (architecture === "arm") {
    const v = (process.config.variables as Record<string, unknown>).arm_version;
    p.variant = `v${typeof v === "string" || typeof v === "number" ? v : "7"}`;
  }
  return p;
}

const ARCH_ALIAS: Record<string, string> = { x86_64: "amd64", "x86-64": "amd64", aarch64: "arm64", i386: "386", i686: "386", armhf: "arm", armel: "arm" };
const KNOWN_ARCH = new Set([...Object.values(ARCH), ...Object.keys(ARCH_ALIAS), "amd64p32", "arm64be", "armbe", "mips", "mipsle", "mips64", "ppc", "ppc64le", "riscv", "s390", "sparc", "sparc64", "wasm"]);
const KNOWN_OS = new Set(["aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos"]);

/**
 * Parses --platform os[/arch[/variant]]; "linux/x86_64" and friends are normalised like docker does.
 * One word, as containerd reads it: an OS takes the host's architecture, an architecture takes linux.
 */
export function parsePlatform(text: string): Platform {
  const parts = text.toLowerCase().split("/");
  if (parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new BerthError(`invalid --platform "${text}": expected os[/arch[/variant]], e.g. linux, linux/amd64 or linux/arm/v7`);
  }
  if (parts.length === 1) {
    const [word] = parts;
    if (KNOWN_ARCH.has(word)) return parsePlatform(`linux/${word}`);
    if (!KNOWN_OS.has(word)) throw new BerthError(`invalid --platform "${text}": "${word}" is neither a known operating system nor architecture (expected os[/arch[/variant]], e.g. linux/amd64)`);
    return { ...hostPlatform(), os: word };
  }
  const p: Platform = { os: parts[0], architecture: ARCH_ALIAS[parts[1]] ?? parts[1] };
  if (parts[2]) p.variant = parts[2];
  else if (parts[1] === "armhf") p.variant = "v7";
  else if (parts[1] === "armel") p.variant = "v6";
  return p;
}

export function formatPlatform(p: Platform | Descriptor["platform"]): string {
  if (!p) return "unknown";
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

function normVariant(arch: string, variant: string | undefined): string {
  if (arch === "arm64" && (!variant || variant === "8")) return "v8";
  if (arch === "arm" && !variant) return "v7";
  return variant ?? "";
}

/** Picks the manifest for `want` from an index; throws naming the platforms on offer when none fits. */
export function selectPlatform(index: IndexManifest, want: Platform, what: string): Descriptor {
  const candidates = index.manifests.filter((d) => d.mediaType === MT.ociManifest || d.mediaType === MT.dockerManifest);
  const fits = candidates.filter((d) => d.platform && d.platform.os === want.os && d.platform.architecture === want.architecture);
  const wantVariant = normVariant(want.architecture, want.variant);
  const exact = fits.find((d) => normVariant(d.platform!.architecture, d.platform!.variant) === wantVariant);
  if (exact) return exact;
  if (!want.variant && fits.length > 0) return fits[0];
  // An index without platforms (single-image OCI layouts) names no platform: take its only image.
  if (candidates.length === 1 && !candidates[0].platform) return candidates[0];
  const offered = [...new Set(candidates.map((d) => formatPlatform(d.platform)).filter((p) => p !== "unknown/unknown"))];
  throw new BerthError(`no matching manifest for ${formatPlatform(want)} in the manifest list entries of ${what}${offered.length ? ` (it has ${offered.join(", ")})` : ""}: choose one with --platform`);
}

export interface ImageConfigSummary {
  diffIds: string[];
  platform: Platform;
}

/** Checks an image config: JSON, rootfs.diff_ids matching the manifest's layers. */
export function parseImageConfig(bytes: Buffer, layerCount: number, what: string): ImageConfigSummary {
  const bad = (why: string) => new BerthError(`the config of ${what} is not a usable image config: ${why}`);
  let j: { rootfs?: { type?: unknown; diff_ids?: unknown }; os?: unknown; architecture?: unknown; variant?: unknown };
  try {
    j = JSON.parse(bytes.toString("utf8")) as typeof j;
    if (typeof j !== "object" || j === null || Array.isArray(j)) throw new Error("not a JSON object");
  } catch (err) {
    throw bad(`it does not parse as JSON (${(err as Error).message})`);
  }
  const diffIds = j.rootfs?.diff_ids;
  if (j.rootfs?.type !== "layers" || !Array.isArray(diffIds) || diffIds.some((d) => typeof d !== "string" || !isDigest(d))) {
    throw bad("rootfs.diff_ids is missing or malformed");
  }
  if (diffIds.length !== layerCount) throw bad(`it lists ${diffIds.length} layer diff IDs but the manifest has ${layerCount} layers`);
  return {
    diffIds: diffIds as string[],
    platform: { os: String(j.os ?? ""), architecture: String(j.architecture ?? ""), ...(typeof j.variant === "string" ? { variant: j.variant } : {}) },
  };
}
