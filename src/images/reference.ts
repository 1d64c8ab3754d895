// Docker's image references, as distribution/reference parses and normalises them (pure):
//   busybox                      -> docker.io/library/busybox:latest
//   user/app:1.0                 -> docker.io/user/app:1.0
//   127.0.0.1:5000/x/y@sha256:.. -> 127.0.0.1:5000/x/y@sha256:..
//   localhost/x                  -> localhost/x:latest

import { BerthError } from "../errors.js";
import type { Reference } from "./store-api.js";

export const DEFAULT_REGISTRY = "docker.io";
const LEGACY_REGISTRY = "index.docker.io";
const OFFICIAL_PREFIX = "library/";
const NAME_TOTAL_LENGTH_MAX = 255;

const alnum = "[a-z0-9]+";
const separator = "(?:[._]|__|[-]+)";
const pathComponent = `${alnum}(?:${separator}${alnum})*`;
const domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const ipv6 = "\\[(?:[a-fA-F0-9:]+)\\]";
const domainName = `${domainComponent}(?:\\.${domainComponent})*`;
const host = `(?:${domainName}|${ipv6})`;
const domainAndPort = `${host}(?::[0-9]+)?`;
const tagPattern = "[\\w][\\w.-]{0,127}";
const digestPattern = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";
const namePattern = `(?:${domainAndPort}/)?${pathComponent}(?:/${pathComponent})*`;

const REFERENCE_RE = new RegExp(`^(${namePattern})(?::(${tagPattern}))?(?:@(${digestPattern}))?$`);
const PATH_RE = new RegExp(`^${pathComponent}(?:/${pathComponent})*$`);
const DOMAIN_RE = new RegExp(`^${domainAndPort}$`);
const TAG_RE = new RegExp(`^${tagPattern}$`);
const IDENTIFIER_RE = /^[a-f0-9]{64}$/;
const SHA256_RE = /^sha256:[a-f0-9]{64}$/;

/** Whether `text` is a well-formed digest (sha256 must be 64 lowercase hex digits). */
export function isDigest(text: string): boolean {
  if (!new RegExp(`^${digestPattern}$`).test(text)) return false;
  return !text.startsWith("sha256:") || SHA256_RE.test(text);
}

export function isValidTag(text: string): boolean {
  return TAG_RE.test(text);
}

function invalid(text: string, why: string): BerthError {
  return new BerthError(`invalid reference format "${text}": ${why}`);
}

/** Splits "host/…" into registry and remainder the way docker decides a first component is a host. */
function splitDomain(name: string): [string, string] {
  const i = name.indexOf("/");
  let domain: string;
  let remainder: string;
  const first = i < 0 ? "" : name.slice(0, i);
  if (i < 0 || (!/[.:]/.test(first) && first !== "localhost" && first.toLowerCase() === first)) {
    domain = DEFAULT_REGISTRY;
    remainder = name;
  } else {
    domain = first;
    remainder = name.slice(i + 1);
  }
  if (domain === LEGACY_REGISTRY) domain = DEFAULT_REGISTRY;
  if (domain === DEFAULT_REGISTRY && !remainder.includes("/")) remainder = OFFICIAL_PREFIX + remainder;
  return [domain, remainder];
}

/** docker's familiar name: docker.io/library/busybox -> busybox, docker.io/user/x -> user/x. */
export function familiarName(registry: string, repository: string): string {
  if (registry !== DEFAULT_REGISTRY) return `${registry}/${repository}`;
  if (repository.startsWith(OFFICIAL_PREFIX) && !repository.slice(OFFICIAL_PREFIX.length).includes("/")) {
    return repository.slice(OFFICIAL_PREFIX.length);
  }
  return repository;
}

export function makeReference(registry: string, repository: string, tag?: string, digest?: string): Reference {
  const suffix = (tag !== undefined ? `:${tag}` : "") + (digest !== undefined ? `@${digest}` : "");
  return {
    registry,
    repository,
    tag,
    digest,
    full: `${registry}/${repository}${suffix}`,
    familiar: `${familiarName(registry, repository)}${suffix}`,
  };
}

export interface ParseOptions {
  /** Add ":latest" when neither a tag nor a digest is given (docker's TagNameOnly). Default true. */
  defaultTag?: boolean;
}

/**
 * Parses a reference as docker's ParseNormalizedNamed does, then (by default) adds the "latest" tag
 * when the reference has neither a tag nor a digest.
 */
export function parseReference(text: string, options: ParseOptions = {}): Reference {
  if (text === "") throw invalid(text, "the reference is empty");
  if (IDENTIFIER_RE.test(text)) {
    throw invalid(text, "a 64-character hexadecimal string is an image ID, not a repository name");
  }
  const m = REFERENCE_RE.exec(text);
  if (!m) {
    const lower = text.toLowerCase();
    if (lower !== text && REFERENCE_RE.test(lowerNameOnly(text))) throw invalid(text, "repository name must be lowercase");
    throw invalid(text, "expected [HOST[:PORT]/]NAME[:TAG][@DIGEST] with a lowercase name, e.g. busybox:latest");
  }
  const [, name, tag, digest] = m;
  if (name.length > NAME_TOTAL_LENGTH_MAX) throw invalid(text, `repository name must not be longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  if (digest !== undefined && !isDigest(digest)) throw invalid(text, `bad digest "${digest}": sha256 digests are 64 lowercase hex digits`);
  const [registry, repository] = splitDomain(name);
  if (!DOMAIN_RE.test(registry)) throw invalid(text, `bad registry host "${registry}"`);
  if (!PATH_RE.test(repository)) throw invalid(text, "repository name must be lowercase");
  const withTag = tag ?? (digest === undefined && options.defaultTag !== false ? "latest" : undefined);
  return makeReference(registry, repository, withTag, digest);
}

/** The name part lowercased (so "Busybox:Latest" can be told apart from garbage in the error). */
function lowerNameOnly(text: string): string {
  const at = text.indexOf("@");
  const beforeDigest = at < 0 ? text : text.slice(0, at);
  const colon = beforeDigest.lastIndexOf(":");
  const slash = beforeDigest.lastIndexOf("/");
  const nameEnd = colon > slash ? colon : beforeDigest.length;
  return text.slice(0, nameEnd).toLowerCase() + text.slice(nameEnd);
}

/** A reference's repository without tag or digest: "docker.io/library/busybox". */
export function repositoryName(ref: Reference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** Parses the normalised full string stored in repositories.json back into a Reference. */
export function parseStoredReference(full: string): Reference {
  return parseReference(full, { defaultTag: false });
}

/** A reference with its tag replaced (for `berth tag`). */
export function withTag(ref: Reference, tag: string): Reference {
  if (!isValidTag(tag)) throw new BerthError(`invalid tag "${tag}": tags are up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'`);
  return makeReference(ref.registry, ref.repository, tag, undefined);
}
