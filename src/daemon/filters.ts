// docker's `filters` query parameter: JSON of {key: [values]} or the older {key: {value: true}}.

import { badRequest } from "./util.js";

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
  network: string;
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
    any("network", (v) => c.network === v) &&
    all("before", (v) => { const o = find(v); return o !== undefined && c.created < o.created; }) &&
    all("since", (v) => { const o = find(v); return o !== undefined && c.created > o.created; })
  );
}
