// docker-style output: Go-template-like --format ({{.Field}}, {{json .}}, "table" prefix), tabwriter
// columns, and the ps row fields.

import { humanDuration } from "../daemon/util.js";
import { humanSize, table } from "../images/format.js";

/** docker's tabwriter settings: minwidth 10, padding 3. */
export const tabulate = table;

function lookup(obj: unknown, path: string): unknown {
  if (path === "." || path === "") return obj;
  let cur: unknown = obj;
  for (const part of path.replace(/^\./, "").split(".")) {
    if (cur === null || cur === undefined) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** Where a row keeps its labels as a map for {{.Label "key"}} (a symbol: not in {{json .}}). */
const LABELS = Symbol("labels");

function show(v: unknown): string {
  if (v === undefined || v === null) return "<no value>";
  if (typeof v === "object") {
    if (Array.isArray(v)) return `[${v.map(show).join(" ")}]`;
    return `map[${Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)).map(([k, x]) => `${k}:${show(x)}`).join(" ")}]`;
  }
  return String(v);
}

/** Renders one action: ".A.B", "json .A", "index .Labels \"k\"", "upper .X", "lower .X", "len .X". */
function action(expr: string, obj: unknown): string {
  const e = expr.trim();
  let m: RegExpExecArray | null;
  if ((m = /^json\s+(\S+)$/.exec(e))) return JSON.stringify(lookup(obj, m[1]) ?? null);
  if ((m = /^index\s+(\S+)\s+"([^"]*)"$/.exec(e))) return show((lookup(obj, m[1]) as Record<string, unknown> | undefined)?.[m[2]] ?? "");
  if ((m = /^upper\s+(\S+)$/.exec(e))) return show(lookup(obj, m[1])).toUpperCase();
  if ((m = /^lower\s+(\S+)$/.exec(e))) return show(lookup(obj, m[1])).toLowerCase();
  if ((m = /^len\s+(\S+)$/.exec(e))) {
    const v = lookup(obj, m[1]);
    return String(Array.isArray(v) ? v.length : typeof v === "object" && v ? Object.keys(v).length : String(v ?? "").length);
  }
  // docker ps's {{.Label "key"}}: the label's value, "" when the container has none.
  if ((m = /^\.Label\s+"([^"]*)"$/.exec(e))) return String((obj as { [LABELS]?: Record<string, string> } | null)?.[LABELS]?.[m[1]] ?? "");
  if (e.startsWith(".")) return show(lookup(obj, e));
  throw new Error(`template: unsupported action {{${expr}}}`);
}

export function renderTemplate(tpl: string, obj: unknown): string {
  const t = tpl.replace(/\\t/g, "\t").replace(/\\n/g, "\n");
  return t.replace(/\{\{(.*?)\}\}/g, (_, expr: string) => action(expr, obj));
}

/** Renders rows with a --format; a "table " prefix adds a header row and aligns columns. */
export function formatRows(format: string, items: Record<string, unknown>[], headers: Record<string, string>): string {
  // `--format json`: one object per line, keys sorted and values as text, as docker's CLI marshals a row.
  if (format === "json") return items.map((i) => `${JSON.stringify(jsonRow(i))}\n`).join("");
  const isTable = format.startsWith("table");
  // "table" alone: every column the headers name.
  const tpl = isTable ? format.slice(5).trim() || Object.keys(headers).map((k) => `{{.${k}}}`).join("\t") : format;
  if (!isTable) return items.map((i) => `${renderTemplate(tpl, i)}\n`).join("");
  const cells = (text: string) => text.replace(/\\t/g, "\t").split("\t");
  const header = cells(tpl).map((c) => c.replace(/\{\{\s*(?:json\s+)?\.(\w+)\s*\}\}/g, (_, f: string) => headers[f] ?? f.toUpperCase()));
  return tabulate([header, ...items.map((i) => cells(renderTemplate(tpl, i)))]);
}

function jsonRow(item: Record<string, unknown>): Record<string, string> {
  const row: Record<string, string> = {};
  for (const key of Object.keys(item).sort()) {
    const v = item[key];
    if (typeof v === "function" || v === undefined) continue;
    row[key] = typeof v === "string" ? v : typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);
  }
  return row;
}

export const PS_HEADERS: Record<string, string> = {
  ID: "CONTAINER ID", Image: "IMAGE", Command: "COMMAND", RunningFor: "CREATED", CreatedAt: "CREATED AT", Status: "STATUS",
  Ports: "PORTS", Names: "NAMES", Labels: "LABELS", Size: "SIZE", State: "STATE", Mounts: "MOUNTS", Networks: "NETWORKS",
};
export const PS_DEFAULT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

function ellipsis(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/** One entry of /containers/json's Ports. */
export interface ApiPort {
  IP?: string;
  PrivatePort: number;
  PublicPort?: number;
  Type: string;
}

const hostPort = (ip: string, port: number | string) => (ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`);

/**
 * docker's PORTS column (its DisplayablePorts): runs of consecutive ports with the same address and
 * protocol become one range ("0.0.0.0:8000-8002->8000-8002/tcp", "80-81/tcp"); a host port that differs
 * from the container's is listed on its own ("127.0.0.1:8080->80/tcp"), after the groups.
 */
export function displayablePorts(ports: ApiPort[]): string {
  // docker's order: private port, address, public port, protocol (byte-wise, as Go compares strings).
  const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  const sorted = [...ports].sort((a, b) =>
    a.PrivatePort - b.PrivatePort || cmp(a.IP ?? "", b.IP ?? "") || (a.PublicPort ?? 0) - (b.PublicPort ?? 0) || cmp(a.Type, b.Type));
  const groups = new Map<string, { ip: string; type: string; first: number; last: number }>();
  const result: string[] = [];
  const mappings: string[] = [];
  const form = (g: { ip: string; type: string; first: number; last: number }) => {
    const range = g.first === g.last ? `${g.first}` : `${g.first}-${g.last}`;
    return `${g.ip ? `${hostPort(g.ip, range)}->${range}` : range}/${g.type}`;
  };
  for (const p of sorted) {
    const ip = p.IP ?? "";
    if (ip && p.PublicPort !== p.PrivatePort) {
      mappings.push(`${hostPort(ip, p.PublicPort ?? 0)}->${p.PrivatePort}/${p.Type}`);
      continue;
    }
    const key = `${ip}/${p.Type}`;
    const g = groups.get(key);
    if (g && p.PrivatePort === g.last + 1) {
      g.last = p.PrivatePort;
      continue;
    }
    // A gap closes the previous run: docker prints closed runs first, then the open ones in key order.
    if (g) result.push(form(g));
    groups.set(key, { ip, type: p.Type, first: p.PrivatePort, last: p.PrivatePort });
  }
  return [...result, ...[...groups.values()].map(form), ...mappings].join(", ");
}

/** The fields `ps --format` sees, from one /containers/json entry. */
export function psRow(c: Record<string, unknown>, o: { noTrunc?: boolean; now?: number } = {}): Record<string, unknown> {
  const now = o.now ?? Date.now();
  const id = String(c.Id);
  const cmd = String(c.Command ?? "");
  const labels = (c.Labels ?? {}) as Record<string, string>;
  const sizeRw = c.SizeRw as number | undefined;
  const sizeRoot = c.SizeRootFs as number | undefined;
  return {
    [LABELS]: labels,
    ID: o.noTrunc ? id : id.slice(0, 12),
    Image: c.Image,
    Command: o.noTrunc ? `"${cmd}"` : `"${ellipsis(cmd, 20)}"`,
    CreatedAt: new Date(Number(c.Created) * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " +0000 UTC"),
    RunningFor: `${humanDuration(now - Number(c.Created) * 1000)} ago`,
    Status: c.Status,
    State: c.State,
    Ports: displayablePorts((c.Ports ?? []) as ApiPort[]),
    Names: ((c.Names ?? []) as string[]).map((n) => n.replace(/^\//, "")).join(","),
    Labels: Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(","),
    Size: sizeRw !== undefined ? `${humanSize(sizeRw)} (virtual ${humanSize(sizeRoot ?? 0)})` : "",
    Mounts: ((c.Mounts ?? []) as { Name?: string; Source?: string }[]).map((m) => m.Name ?? m.Source).join(","),
    Networks: Object.keys(((c.NetworkSettings as { Networks?: object } | undefined)?.Networks) ?? {}).join(","),
  };
}
