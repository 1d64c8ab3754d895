// docker's `filters` query parameter: JSON of {key: [values]} or the older {key: {value: true}}.

import { badRequest, goDurationMs } from "./util.js";

export type Filters = Record<string, string[]>;

export function parseFilters(text: string | null | undefined): Filters {
  if (!text) return {};
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw badRequest(`invalid filter: the filters parameter is not JSON: ${text}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw badRequest("invalid filter: expected a JSON object");
  const out: Filters = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (Array.isArray(v)) out[k] = v.map(String);
    else if (typeof v === "object" && v !== null) out[k] = Object.entries(v as Record<string, unknown>).filter(([, b]) => b).map(([x]) => x);
    else throw badRequest(`invalid filter '${k}': expected a list of values`);
  }
  return out;
}

/** `key=value` or `key` against a label map. */
export function labelMatches(labels: Record<string, string> | undefined, spec: string): boolean {
  const eq = spec.indexOf("=");
  if (eq < 0) return labels !== undefined && spec in labels;
  const key = spec.slice(0, eq);
  const val = spec.slice(eq + 1);
  return labels !== undefined && labels[key] === val;
}

export const CONTAINER_FILTERS = ["id", "name", "label", "status", "exited", "ancestor", "health", "before", "since", "volume", "network", "is-task", "publish", "expose"];
export const STATUSES = ["created", "restarting", "running", "removing", "paused", "exited", "dead"];

export interface FilterableContainer {
  id: string;
  name: string; // without the slash
  labels: Record<string, string>;
  status: string;
  exitCode: number;
  image: string;
  imageId: string;
  health: string; // "none" when no health check
  volumes: string[];
  /** Names and ids of the networks it is attached to (NetworkSettings.Networks). */
  networks: string[];
  /** /containers/json's Ports: `publish` matches the host port, `expose` the container's. */
  ports: { PrivatePort: number; PublicPort?: number; Type: string }[];
  created: number;
}

export function validateContainerFilters(f: Filters): void {
  for (const key of Object.keys(f)) {
    if (!CONTAINER_FILTERS.includes(key)) throw badRequest(`invalid filter '${key}'`);
  }
  for (const s of f.status ?? []) {
    if (!STATUSES.includes(s)) throw badRequest(`invalid filter 'status=${s}'`);
  }
  for (const s of f.health ?? []) {
    if (!["starting", "healthy", "unhealthy", "none"].includes(s)) throw badRequest(`invalid filter 'health=${s}'`);
  }
  for (const s of f.exited ?? []) {
    if (!/^-?\d+$/.test(s)) throw badRequest(`invalid filter 'exited=${s}'`);
  }
  for (const key of ["publish", "expose"]) for (const s of f[key] ?? []) portFilter(key, s);
}

/** A publish/expose filter value: PORT or FROM-TO, with an optional /PROTO (default tcp). */
function portFilter(key: string, text: string): { from: number; to: number; proto: string } {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/.exec(text);
  if (!m) throw badRequest(`invalid filter '${key}=${text}': expected PORT[-PORT][/PROTO]`);
  const from = Number(m[1]);
  return { from, to: m[2] ? Number(m[2]) : from, proto: m[3] ?? "tcp" };
}

function portMatches(key: string, text: string, ports: FilterableContainer["ports"]): boolean {
  const want = portFilter(key, text);
  return ports.some((p) => {
    const port = key === "publish" ? p.PublicPort : p.PrivatePort;
    return port !== undefined && p.Type === want.proto && port >= want.from && port <= want.to;
  });
}

/** Whether a container passes the filters; `find` resolves before/since references. */
export function containerMatches(c: FilterableContainer, f: Filters, find: (ref: string) => FilterableContainer | undefined): boolean {
  const any = (key: string, pred: (v: string) => boolean) => !f[key] || f[key].length === 0 || f[key].some(pred);
  const all = (key: string, pred: (v: string) => boolean) => !f[key] || f[key].every(pred);
  return (
    any("id", (v) => c.id.startsWith(v)) &&
    any("name", (v) => new RegExp(v.replace(/^\//, "")).test(c.name)) &&
    all("label", (v) => labelMatches(c.labels, v)) &&
    any("status", (v) => c.status === v) &&
    any("exited", (v) => c.status === "exited" && c.exitCode === Number(v)) &&
    any("ancestor", (v) => c.image === v || c.imageId === v || c.imageId.replace(/^sha256:/, "").startsWith(v) || c.image === `${v}:latest`) &&
    any("health", (v) => c.health === v) &&
    any("volume", (v) => c.volumes.includes(v)) &&
    any("network", (v) => c.networks.includes(v)) &&
    any("publish", (v) => portMatches("publish", v, c.ports)) &&
    any("expose", (v) => portMatches("expose", v, c.ports)) &&
    all("before", (v) => { const o = find(v); return o !== undefined && c.created < o.created; }) &&
    all("since", (v) => { const o = find(v); return o !== undefined && c.created > o.created; })
  );
}

export const IMAGE_FILTERS = ["before", "dangling", "label", "reference", "since", "until"];

/** GET /images/json's filters, checked as dockerd does (one line per bad key or value). */
export function validateImageFilters(f: Filters): void {
  for (const key of Object.keys(f)) {
    if (!IMAGE_FILTERS.includes(key)) throw badRequest(`Invalid filter '${key}'`);
  }
  for (const v of f.dangling ?? []) {
    if (!["true", "false", "1", "0"].includes(v.toLowerCase())) throw badRequest(`Invalid filter 'dangling=${v}'`);
  }
  for (const v of f.until ?? []) {
    if (Number.isNaN(timestampFilter(v))) throw badRequest(`invalid value for 'until': ${v}`);
  }
}

/**
 * A filter timestamp in ms: Unix seconds (with a fraction), an RFC 3339 date, or a Go duration ago
 * ("10m", "1h30m"), as docker's `until`.
 */
export function timestampFilter(text: string, now = Date.now()): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const ago = goDurationMs(text);
  if (ago !== undefined) return now - ago;
  return /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
}

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

/** Go's path.Match for a whole string: `*` and `?` stop at '/', `[...]` classes (`^` negates). */
export function globMatch(pattern: string, text: string): boolean {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else if (ch === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) return false; // Go: ErrBadPattern, which matches nothing
      re += `[${pattern.slice(i + 1, end)}]`;
      i = end;
    } else if (ch === "\\" && i + 1 < pattern.length) re += escapeRegex(pattern[++i]);
    else re += escapeRegex(ch);
  }
  try {
    return new RegExp(`^${re}$`).test(text);
  } catch {
    return false;
  }
}

/** docker's reference.FamiliarMatch: the pattern against the name without its tag, then with it. */
export function referenceMatches(pattern: string, familiarTag: string): boolean {
  const at = familiarTag.indexOf("@");
  const colon = familiarTag.lastIndexOf(":");
  const name = at >= 0 ? familiarTag.slice(0, at) : colon > familiarTag.lastIndexOf("/") ? familiarTag.slice(0, colon) : familiarTag;
  return globMatch(pattern, name) || globMatch(pattern, familiarTag);
}

export interface FilterableImage {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  labels: Record<string, string>;
  /** ms since the epoch */
  created: number;
}

/**
 * Applies the image filters to one image: undefined when it is left out, else the RepoTags to show
 * (with `reference`, only the tags that match, as dockerd). `find` resolves before/since images.
 */
export function filterImage(img: FilterableImage, f: Filters, find: (ref: string) => FilterableImage | undefined): string[] | undefined {
  const dangling = img.repoTags.length === 0 && img.repoDigests.length === 0;
  if (f.dangling?.length) {
    const want = f.dangling.some((v) => ["true", "1"].includes(v.toLowerCase()));
    if (want !== dangling) return undefined;
  }
  if (f.label && !f.label.every((v) => labelMatches(img.labels, v))) return undefined;
  for (const v of f.before ?? []) {
    const o = find(v);
    if (!o || !(img.created < o.created)) return undefined;
  }
  for (const v of f.since ?? []) {
    const o = find(v);
    if (!o || !(img.created > o.created)) return undefined;
  }
  if (f.until?.length && !f.until.every((v) => img.created < timestampFilter(v))) return undefined;
  if (!f.reference?.length) return img.repoTags;
  const matches = (ref: string) => f.reference.some((p) => referenceMatches(p, ref));
  const tags = img.repoTags.filter(matches);
  return tags.length > 0 || img.repoDigests.some(matches) ? tags : undefined;
}
