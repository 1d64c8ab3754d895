// References as the distribution code needs them. Parsing and normalisation are the image store's
// (src/images/reference.ts, docker's distribution/reference grammar); this adds what talking to
// registries needs: strict digests for URLs, registry host aliases, the familiar repository name. Pure.

import type { Reference } from "../images/store-api.js";
import { DEFAULT_REGISTRY } from "../images/reference.js";

export { DEFAULT_REGISTRY, parseReference, repositoryName } from "../images/reference.js";

const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

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

/** The familiar name without tag or digest: "busybox", "127.0.0.1:5000/x/y". */
export function familiarRepository(ref: Reference): string {
  let f = ref.familiar;
  if (ref.digest) f = f.slice(0, f.length - ref.digest.length - 1);
  if (ref.tag) f = f.slice(0, f.length - ref.tag.length - 1);
  return f;
}
