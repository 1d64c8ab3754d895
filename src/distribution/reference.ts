// Docker's image reference grammar and normalisation (distribution/reference): `busybox` ->
// docker.io/library/busybox:latest, `host:port/repo:tag`, `repo@sha256:...`. Pure.

import { BerthError } from "../errors.js";
import type { Reference } from "../images/store-api.js";

export const DEFAULT_REGISTRY = "docker.io";
export const DEFAULT_TAG = "latest";

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const DOMAIN = /^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::\d+)?$/;

/** True for a well-formed "sha256:<64 hex>" (or sha512) digest, the only kind Berth puts in a path or URL. */
export function isDigest(text: string): boolean {
  return DIGEST.test(text);
}

/** Maps docker.io's aliases to "docker.io"; other registries are kept as written (lower-cased host). */
export function normalizeRegistry(registry: string): string {
  let r = registry.replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "");
  if (r === "index.docker.io" || r === "registry-1.docker.io" || r === "registry.hub.docker.com") r = DEFAULT_REGISTRY;
  return r.toLowerCase();
}

function looksLikeDomain(first: string): boolean {
  return first.includes(".") || first.includes(":") || first === "localhost" || first !== first.toLowerCase();
}

function build(registry: string, repository: string, tag: string | undefined, digest: string | undefined): Reference {
  const suffix = `${tag ? `:${tag}` : ""}${digest ? `@${digest}` : ""}`;
  const full = `${registry}/${repository}${suffix}`;
  let familiarName = `${registry}/${repository}`;
  if (registry === DEFAULT_REGISTRY) familiarName = repository.startsWith("library/") && repository.split("/").length === 2 ? repository.slice(8) : repository;
  return { registry, repository, tag, digest, full, familiar: `${familiarName}${suffix}` };
}

/**
 * Parses and normalises an image reference. A reference without tag or digest gets ":latest" (unless
 * `defaultTag` is false). Throws a BerthError naming the text for anything docker would refuse.
 */
export function parseReference(text: string, options: { defaultTag?: boolean } = {}): Reference {
  const bad = (why: string) => new BerthError(`invalid reference format "${text}": ${why}`);
  if (!text || text.length > 4096) throw bad("empty or too long");
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad("the digest must be sha256: followed by 64 lower-case hex digits");
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`invalid tag "${tag}"`);
  }
  const parts = rest.split("/");
  let registry = DEFAULT_REGISTRY;
  if (parts.length > 1 && looksLikeDomain(parts[0])) {
    registry = parts.shift() as string;
    if (!DOMAIN.test(registry)) throw bad(`invalid registry "${registry}"`);
    registry = normalizeRegistry(registry);
  }
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) {
    throw bad("repository names must be lower-case letters, digits and separators (. _ -), split by /");
  }
  let repository = parts.join("/");
  if (registry === DEFAULT_REGISTRY && parts.length === 1) repository = `library/${repository}`;
  if (repository.length > 255) throw bad("repository name longer than 255 characters");
  if (!tag && !digest && options.defaultTag !== false) tag = DEFAULT_TAG;
  return build(registry, repository, tag, digest);
}

/** The same repository with another tag or digest. */
export function withTagOrDigest(ref: Reference, change: { tag?: string; digest?: string }): Reference {
  return build(ref.registry, ref.repository, change.tag, change.digest);
}

/** "registry/repository" without tag or digest, e.g. "127.0.0.1:5000/x/y" or "docker.io/library/busybox". */
export function repositoryName(ref: Reference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The familiar name without tag or digest: "busybox", "127.0.0.1:5000/x/y". */
export function familiarRepository(ref: Reference): string {
  let f = ref.familiar;
  if (ref.digest) f = f.slice(0, f.length - ref.digest.length - 1);
  if (ref.tag) f = f.slice(0, f.length - ref.tag.length - 1);
  return f;
}
