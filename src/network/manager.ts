// Berth's networks as a library: create/list/inspect/remove/prune/connect/disconnect (docker's JSON
// shapes, for the API as they are) and the per-container part of `run` (prepareContainerNetwork).
// Decisions are made by the pure modules beside this one; this file sequences the effects: the state
// file (under its lock), netlink requests run by the native helper, one nft transaction, sysctls, files.

import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { createSocket } from "node:dgram";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Op } from "../core/plan.js";
import { BerthError, errnoName } from "../errors.js";
import { ownerAlive } from "../images/lock.js";
import { runFilesystemOps } from "../runtime/helper.js";
import { hostsFile, type HostsEntry, parseResolvConf, resolvConf } from "./etc-files.js";
import { ensureIpForward, hostMtu, hostTakenSubnets, linkExists, readHostResolvConf, runNft, writeSysctl } from "./host.js";
import {
  allocate, broadcast, checkRequested, chooseSubnet, contains, defaultGateway, defaultPool, formatCidr, ipToInt, macFor, overlaps, parseCidr,
} from "./ipam.js";
import { delLink, ERRNO, linkUp, newAddress, newBridge, newDefaultRoute, netlinkOp, newVethIntoNetns } from "./netlink.js";
import { portElementsText, renderRuleset } from "./nft.js";
import { conflicts, dockerPorts, formatHost, isIpv6Host, type PortSpec, proxyAddress } from "./ports.js";
import { type PortProxy, startProxy } from "./proxy.js";
import { readState, updateState } from "./store.js";
import type { EndpointRecord, NetworkRecord, NetworkState, PortBinding } from "./types.js";

export interface NetworkContext {
  /** Persistent state (networks, leases): <dataRoot>/network/state.json. */
  dataRoot: string;
  /** Runtime files: per-container /etc files, DNS server pid files: <execRoot>/network/. */
  execRoot: string;
  /** Subnet of the default bridge network when it is first made (default: the first free candidate). */
  defaultSubnet?: string;
  /** Name of the default bridge (default berth0 for the default data root). */
  defaultBridge?: string;
  /** The nftables table (ip family) holding this data root's rules (default berth). */
  nftTable: string;
}

const DEFAULT_DATA_ROOT = "/var/lib/berth";

/**
 * Several engines with different data roots may run side by side: each other root gets its own default
 * bridge and nftables table, named after a hash of the root, so their rules never replace each other.
 */
export function networkContext(o: Partial<NetworkContext> = {}): NetworkContext {
  // One root, one name: `dcor`, `./dcor/` and `/abs/dcor` must share a bridge and table, not leak two.
  const dataRoot = resolve(o.dataRoot ?? process.env.BERTH_DATA_ROOT ?? DEFAULT_DATA_ROOT);
  const tag = dataRoot === DEFAULT_DATA_ROOT ? "" : createHash("sha256").update(dataRoot).digest("hex").slice(0, 8);
  return {
    dataRoot,
    execRoot: o.execRoot ?? process.env.BERTH_EXEC_ROOT ?? (tag ? join(dataRoot, "run") : "/run/berth"),
    defaultSubnet: o.defaultSubnet ?? process.env.BERTH_BRIDGE_SUBNET,
    defaultBridge: o.defaultBridge ?? process.env.BERTH_BRIDGE ?? (tag ? `berth${tag}` : "berth0"),
    nftTable: o.nftTable ?? (tag ? `berth_${tag}` : "berth"),
  };
}

const PREDEFINED = new Set(["bridge", "host", "none"]);
const hex = (n: number) => randomBytes(n).toString("hex");
const nowIso = () => new Date().toISOString();

function ourOwner(): string {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    return `${process.pid} ${stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]}`;
  } catch {
    return `${process.pid}`;
  }
}

export function ownerOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return `${pid} ${stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]}`;
  } catch {
    return `${pid}`;
  }
}

// ---- lookups --------------------------------------------------------------------------------

export function findNetwork(state: NetworkState, ref: string): NetworkRecord | undefined {
  const all = Object.values(state.networks);
  return all.find((n) => n.name === ref) ?? all.find((n) => n.id === ref) ?? (() => {
    const hits = ref.length >= 1 ? all.filter((n) => n.id.startsWith(ref)) : [];
    return hits.length === 1 ? hits[0] : undefined;
  })();
}

function noSuchNetwork(ref: string): BerthError {
  return new BerthError(`network ${ref} not found`, { exitCode: 1 });
}

function liveEndpoints(state: NetworkState, networkId: string): EndpointRecord[] {
  return Object.values(state.endpoints).filter((e) => e.networkId === networkId && ownerAlive(e.owner));
}

// ---- kernel effects ---------------------------------------------------------------------------

async function applyFirewall(ctx: NetworkContext, state: NetworkState): Promise<void> {
  await runNft(renderRuleset(state, ctx.nftTable));
}

/** One container's port elements in or out; if the table is not as expected, the whole table instead. */
async function applyPorts(ctx: NetworkContext, state: NetworkState, ep: EndpointRecord, op: "add" | "delete"): Promise<void> {
  const text = portElementsText(ctx.nftTable, ep, op);
  if (!text) return;
  try {
    await runNft(text);
  } catch {
    await applyFirewall(ctx, state);
  }
}

/** Makes the network's bridge if it is missing (first use, or after a reboot). True if it was made. */
async function ensureBridge(net: NetworkRecord): Promise<boolean> {
  if (linkExists(net.bridge)) return false;
  const subnet = parseCidr(net.subnet);
  await runFilesystemOps([
    netlinkOp(newBridge(net.bridge, hostMtu()), { netns: "", ignoreErrno: ERRNO.EEXIST, what: `create bridge ${net.bridge}` }),
    netlinkOp(newAddress({ ip: net.gateway, prefix: subnet.prefix, broadcast: broadcast(subnet) }), {
      netns: "", ifname: net.bridge, ignoreErrno: ERRNO.EEXIST, what: `add address ${net.gateway}/${subnet.prefix} to ${net.bridge}`,
    }),
  ]);
  // Published ports answer on 127.0.0.1 through DNAT to the bridge: loopback sources must be routable there.
  writeSysctl(`net/ipv4/conf/${net.bridge}/route_localnet`, "1");
  if (!net.internal) ensureIpForward();
  return true;
}

async function removeBridge(bridge: string): Promise<void> {
  if (!linkExists(bridge)) return;
  await runFilesystemOps([netlinkOp(delLink(bridge), { netns: "", ignoreErrno: ERRNO.ENODEV, what: `delete ${bridge}` })]);
}

/** Whether a live daemon holds the data root (its daemon.lock, src/daemon/daemon.ts); read, never taken. */
export function daemonOwnsRoot(dataRoot: string): boolean {
  let text: string;
  try {
    text = readFileSync(join(dataRoot, "daemon.lock"), "utf8");
  } catch {
    return false;
  }
  // Empty: a daemon between creating the lock and writing its pid.
  return text.trim() === "" || ownerAlive(text);
}

/**
 * Without a daemon nothing else would ever remove them: when the default network's last live endpoint
 * goes, its bridge goes, and the root's nftables table with it unless user networks still need it (then
 * only the default network's rules leave). The record stays (docker keeps its `bridge`); the next run
 * makes the kernel objects again. With a daemon on the root they are the daemon's to keep. Call under
 * the state lock, so a concurrent run either sees our teardown done or we see its endpoint.
 */
async function retireIdleDefaultBridge(ctx: NetworkContext, state: NetworkState): Promise<boolean> {
  const net = Object.values(state.networks).find((n) => n.isDefault);
  if (!net || liveEndpoints(state, net.id).length || daemonOwnsRoot(ctx.dataRoot)) return false;
  const others = Object.fromEntries(Object.entries(state.networks).filter(([, n]) => !n.isDefault));
  // Independent (the rules name the bridge, they don't need it): side by side, to keep a run's end short.
  await Promise.all([runNft(renderRuleset({ ...state, networks: others }, ctx.nftTable)), removeBridge(net.bridge)]);
  return true;
}

function dnsPidFile(ctx: NetworkContext, net: NetworkRecord): string {
  return join(ctx.execRoot, "network", `dns-${net.id.slice(0, 12)}.pid`);
}

/** Starts the network's embedded DNS server (a detached process) unless it runs. */
async function ensureDns(ctx: NetworkContext, net: NetworkRecord): Promise<void> {
  if (net.isDefault) return;
  const pidFile = dnsPidFile(ctx, net);
  try {
    if (ownerAlive(readFileSync(pidFile, "utf8"))) return;
  } catch { /* not running */ }
  mkdirSync(join(ctx.execRoot, "network"), { recursive: true });
  // From dist/src/network/ or from the CLI bundle in dist/bundle/.
  const script = ["./dns-server.js", "../src/network/dns-server.js"].map((rel) => fileURLToPath(new URL(rel, import.meta.url))).find((p) => existsSync(p));
  if (!script) throw new BerthError("the DNS server script (dist/src/network/dns-server.js) is missing: run `npm run build`");
  const child = spawn(process.execPath, [script, ctx.dataRoot, net.id, net.gateway, pidFile, net.internal ? "0" : "1"], {
    detached: true,
    stdio: ["ignore", "pipe", "ignore"],
  });
  writeFileSync(pidFile, ownerOf(child.pid as number));
  await new Promise<void>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new BerthError(`the DNS server of network ${net.name} did not start`)), 10_000);
    child.stdout?.setEncoding("utf8").on("data", (s: string) => {
      out += s;
      if (out.includes("ready")) { clearTimeout(timer); resolve(); }
    });
    child.on("exit", () => { clearTimeout(timer); reject(new BerthError(`the DNS server of network ${net.name} failed to start on ${net.gateway}:53`)); });
  });
  child.removeAllListeners("exit");
  child.stdout?.destroy();
  child.unref();
}

function stopDns(ctx: NetworkContext, net: NetworkRecord): void {
  const pidFile = dnsPidFile(ctx, net);
  try {
    const text = readFileSync(pidFile, "utf8");
    if (ownerAlive(text)) process.kill(Number(text.split(" ")[0]), "SIGTERM");
  } catch { /* not running */ }
  rmSync(pidFile, { force: true });
}

// ---- the default network ------------------------------------------------------------------------

function ourSubnets(state: NetworkState) {
  return Object.values(state.networks).map((n) => parseCidr(n.subnet));
}

/** Host routes and addresses that are not Berth's own bridges. */
function hostTaken(state: NetworkState) {
  const own = ourSubnets(state);
  return hostTakenSubnets().filter((h) => !own.some((o) => o.base === h.base && o.prefix === h.prefix));
}

function ensureDefaultRecord(ctx: NetworkContext, state: NetworkState): NetworkRecord {
  const existing = Object.values(state.networks).find((n) => n.isDefault);
  if (existing) return existing;
  const taken = [...hostTaken(state), ...ourSubnets(state)];
  const subnet = ctx.defaultSubnet ? parseCidr(ctx.defaultSubnet) : chooseSubnet(defaultPool(), taken);
  if (ctx.defaultSubnet) {
    const clash = taken.find((t) => overlaps(t, subnet));
    if (clash) throw new BerthError(`default bridge subnet ${ctx.defaultSubnet} overlaps ${formatCidr(clash)} (a host route or another network): choose another`);
  }
  const rec: NetworkRecord = {
    id: hex(32), name: "bridge", driver: "bridge", bridge: ctx.defaultBridge ?? "berth0", subnet: formatCidr(subnet),
    gateway: defaultGateway(subnet), internal: false, isDefault: true, created: nowIso(), labels: {},
    options: { "com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.name": ctx.defaultBridge ?? "berth0" },
  };
  state.networks[rec.id] = rec;
  return rec;
}

// ---- crash cleanup --------------------------------------------------------------------------------

/**
 * Releases what dead owners left: endpoints (leases, published ports) whose process is gone, their /etc
 * files, and makes the firewall match the state. Veth pairs end with their container's namespace.
 * `reconcile` (an engine at start): also rebuild the nftables table and any missing bridge and DNS
 * server, whatever happened to them meanwhile (a reboot, `nft flush ruleset`).
 */
export async function sweepNetworks(ctx: NetworkContext, options: { reconcile?: boolean } = {}): Promise<string[]> {
  const released: string[] = [];
  await updateState(ctx.dataRoot, async (state) => {
    let ports = false;
    for (const ep of Object.values(state.endpoints)) {
      if (ownerAlive(ep.owner)) continue;
      released.push(ep.id);
      stopProxies(ep.id);
      ports ||= ep.ports.length > 0;
      delete state.endpoints[ep.id];
      rmSync(containerFilesDir(ctx, ep.containerId), { recursive: true, force: true });
    }
    if (options.reconcile) {
      for (const net of Object.values(state.networks)) {
        if (!liveEndpoints(state, net.id).length && net.isDefault) continue; // made again on first use
        await ensureBridge(net);
        await ensureDns(ctx, net);
      }
      await applyFirewall(ctx, state);
    } else if (ports) {
      await applyFirewall(ctx, state);
    }
  });
  return released;
}

const swept = new Set<string>();

async function sweepOnce(ctx: NetworkContext): Promise<void> {
  if (swept.has(ctx.dataRoot)) return;
  swept.add(ctx.dataRoot);
  await sweepNetworks(ctx);
}

// ---- networks ------------------------------------------------------------------------------------

export interface CreateNetworkOptions {
  name: string;
  driver?: string;
  subnet?: string;
  gateway?: string;
  internal?: boolean;
  labels?: Record<string, string>;
  options?: Record<string, string>;
}

export async function createNetwork(ctx: NetworkContext, o: CreateNetworkOptions): Promise<{ Id: string; Warning: string }> {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(o.name)) throw new BerthError(`invalid network name "${o.name}": use letters, digits, _ . -`);
  if (PREDEFINED.has(o.name)) throw new BerthError(`network with name ${o.name} already exists`, { exitCode: 1 });
  const driver = o.driver ?? "bridge";
  if (driver !== "bridge") throw new BerthError(`network driver "${driver}" is not supported: use bridge`);
  const created = await updateState(ctx.dataRoot, async (state, save) => {
    if (Object.values(state.networks).some((n) => n.name === o.name)) throw new BerthError(`network with name ${o.name} already exists`, { exitCode: 1 });
    const others = ourSubnets(state);
    let subnet;
    if (o.subnet) {
      subnet = parseCidr(o.subnet);
      const clash = Object.values(state.networks).find((n) => overlaps(parseCidr(n.subnet), subnet!));
      if (clash) throw new BerthError(`invalid --subnet ${o.subnet}: it overlaps network ${clash.name} (${clash.subnet})`);
      const host = hostTaken(state).find((h) => overlaps(h, subnet!));
      if (host) throw new BerthError(`invalid --subnet ${o.subnet}: it overlaps the host's ${formatCidr(host)}`);
    } else {
      if (o.gateway) throw new BerthError("--gateway needs --subnet");
      subnet = chooseSubnet(defaultPool(), [...hostTaken(state), ...others]);
    }
    let gateway = defaultGateway(subnet);
    if (o.gateway) {
      if (!contains(subnet, ipToInt(o.gateway))) throw new BerthError(`invalid --gateway ${o.gateway}: it is not in subnet ${formatCidr(subnet)}`);
      gateway = o.gateway;
    }
    const id = hex(32);
    // docker's -o com.docker.network.bridge.name=NAME chooses the bridge's name.
    const bridge = o.options?.["com.docker.network.bridge.name"] || `berth${id.slice(0, 10)}`;
    if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(bridge)) throw new BerthError(`invalid bridge name "${bridge}": at most 15 letters, digits, _ . -`);
    if (linkExists(bridge) || Object.values(state.networks).some((n) => n.bridge === bridge)) {
      throw new BerthError(`bridge name ${bridge} is already in use on the host`, { exitCode: 1 });
    }
    const rec: NetworkRecord = {
      id, name: o.name, driver: "bridge", bridge, subnet: formatCidr(subnet), gateway,
      internal: o.internal ?? false, isDefault: false, created: nowIso(), labels: o.labels ?? {}, options: o.options ?? {},
    };
    state.networks[id] = rec;
    save();
    try {
      await ensureBridge(rec);
      await applyFirewall(ctx, state);
      await ensureDns(ctx, rec);
    } catch (err) {
      delete state.networks[id];
      stopDns(ctx, rec);
      await removeBridge(rec.bridge).catch(() => {});
      await applyFirewall(ctx, state).catch(() => {});
      save();
      throw err;
    }
    return rec;
  });
  return { Id: created.id, Warning: "" };
}

async function teardownNetwork(ctx: NetworkContext, state: NetworkState, net: NetworkRecord): Promise<void> {
  for (const ep of Object.values(state.endpoints)) {
    if (ep.networkId !== net.id) continue;
    delete state.endpoints[ep.id];
    stopProxies(ep.id);
  }
  delete state.networks[net.id];
  stopDns(ctx, net);
  await applyFirewall(ctx, state);
  await removeBridge(net.bridge);
}

/** Removes a network without containers; returns what it was (for the destroy event). */
export async function removeNetwork(ctx: NetworkContext, ref: string): Promise<NetworkRecord> {
  if (ref === "host" || ref === "none") throw new BerthError(`${ref} is a pre-defined network and cannot be removed`, { exitCode: 1 });
  return updateState(ctx.dataRoot, async (state) => {
    const net = findNetwork(state, ref);
    if (!net) throw noSuchNetwork(ref);
    if (net.isDefault) throw new BerthError(`bridge is a pre-defined network and cannot be removed`, { exitCode: 1 });
    const active = liveEndpoints(state, net.id);
    if (active.length) {
      throw new BerthError(`error while removing network: network ${net.name} id ${net.id} has active endpoints (${active.map((e) => e.containerName || e.containerId.slice(0, 12)).join(", ")})`, { exitCode: 1 });
    }
    await teardownNetwork(ctx, state, net);
    // Its rules were rendered with an idle default network's: the last user network takes the table along.
    await retireIdleDefaultBridge(ctx, state);
    return net;
  });
}

/**
 * Removes every user network without containers (that the filters select: label, label!, until).
 * Berth also takes down the default bridge when nothing uses it and no filter is given (it is made again
 * on demand), so an idle host keeps no bridge, rule or lease of Berth's.
 */
export async function pruneNetworks(ctx: NetworkContext, filters: NetworkFilters = {}, onRemoved?: (net: NetworkRecord) => void): Promise<string[]> {
  checkFilters(filters, ["label", "label!", "until"]);
  const until = filters.until?.length ? Math.min(...filters.until.map(parseUntil)) : undefined;
  const filtered = Object.values(filters).some((v) => v.length);
  await sweepNetworks(ctx);
  const removed: string[] = [];
  await updateState(ctx.dataRoot, async (state) => {
    for (const net of Object.values(state.networks)) {
      if (liveEndpoints(state, net.id).length) continue;
      if (net.isDefault && filtered) continue;
      if (!labelFiltersMatch(net.labels, filters)) continue;
      if (until !== undefined && !(Date.parse(net.created) < until)) continue;
      await teardownNetwork(ctx, state, net);
      if (!net.isDefault) { removed.push(net.name); onRemoved?.(net); }
    }
  });
  return removed;
}

// ---- filters (docker's `filters` of GET /networks and POST /networks/prune) ---------------------------

export type NetworkFilters = Record<string, string[]>;

function checkFilters(f: NetworkFilters, allowed: string[]): void {
  for (const key of Object.keys(f)) if (!allowed.includes(key)) throw new BerthError(`invalid filter '${key}'`);
}

/** `key` or `key=value` against a label map. */
function labelMatches(labels: Record<string, string>, spec: string): boolean {
  const eq = spec.indexOf("=");
  return eq < 0 ? spec in labels : labels[spec.slice(0, eq)] === spec.slice(eq + 1);
}

function labelFiltersMatch(labels: Record<string, string>, f: NetworkFilters): boolean {
  return (f.label ?? []).every((l) => labelMatches(labels, l)) && !(f["label!"] ?? []).some((l) => labelMatches(labels, l));
}

/** docker's `until`: a Unix time (seconds), an RFC 3339 date, or a duration before now (10m, 24h). */
function parseUntil(text: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const dur = /^(?:\d+(?:\.\d+)?(?:h|m|s|ms))+$/.test(text) ? [...text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s)/g)] : undefined;
  if (dur) return Date.now() - dur.reduce((sum, [, n, u]) => sum + Number(n) * { h: 3_600_000, m: 60_000, s: 1000, ms: 1 }[u as "h" | "m" | "s" | "ms"], 0);
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new BerthError(`invalid filter 'until=${text}': expected a timestamp, a date or a duration (e.g. 24h)`);
  return t;
}

const BUILTIN = new Set(["bridge", "host", "none"]);

/** One network against GET /networks filters: driver, id, label, name, scope, type (custom|builtin), dangling. */
function networkMatches(n: DockerNetwork, f: NetworkFilters): boolean {
  const any = (key: string, pred: (v: string) => boolean) => !f[key]?.length || f[key].some(pred);
  const builtin = BUILTIN.has(n.Name);
  return (
    any("driver", (v) => n.Driver === v) &&
    any("id", (v) => n.Id.startsWith(v)) &&
    any("name", (v) => n.Name.includes(v)) &&
    any("scope", (v) => n.Scope === v) &&
    any("type", (v) => (v === "builtin") === builtin) &&
    any("dangling", (v) => (v === "true" || v === "1") === (!builtin && Object.keys(n.Containers).length === 0)) &&
    labelFiltersMatch(n.Labels, f)
  );
}

function checkListFilters(f: NetworkFilters): void {
  checkFilters(f, ["driver", "id", "label", "label!", "name", "scope", "type", "dangling"]);
  for (const v of f.type ?? []) if (v !== "custom" && v !== "builtin") throw new BerthError(`invalid filter: 'type'='${v}'`);
  for (const v of f.dangling ?? []) if (!["true", "false", "1", "0"].includes(v)) throw new BerthError(`invalid filter 'dangling=${v}'`);
}

/**
 * For an engine whose data root was deleted (a test's temp root): the state file went with it, so what
 * the kernel still holds for that root is found by name and removed: every bridge in its nftables
 * table's `bridges` set, its default bridge, and the table. (Its DNS servers exit by themselves when
 * their network leaves the state.)
 */
export async function removeOrphanedNetworking(ctx: NetworkContext): Promise<void> {
  const listed = await new Promise<string>((resolve) => {
    const child = spawn("nft", ["list", "set", "ip", ctx.nftTable, "bridges"], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => { out += d; });
    child.on("error", () => resolve(""));
    child.on("close", () => resolve(out));
  });
  const bridges = new Set([...listed.matchAll(/"([a-zA-Z0-9_.-]{1,15})"/g)].map((m) => m[1]));
  if (ctx.defaultBridge) bridges.add(ctx.defaultBridge);
  for (const b of bridges) await removeBridge(b).catch(() => {});
  await runNft(`table ip ${ctx.nftTable} {}\ndelete table ip ${ctx.nftTable}\n`).catch(() => {});
}

// ---- docker's JSON ----------------------------------------------------------------------------------

export interface DockerNetwork {
  Name: string;
  Id: string;
  Created: string;
  Scope: string;
  Driver: string;
  EnableIPv6: boolean;
  IPAM: { Driver: string; Options: null | Record<string, string>; Config: { Subnet: string; Gateway: string }[] };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Containers: Record<string, { Name: string; EndpointID: string; MacAddress: string; IPv4Address: string; IPv6Address: string }>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

const PSEUDO: Record<string, { id: string; driver: string }> = {
  host: { id: createHash("sha256").update("berth-host-network").digest("hex"), driver: "host" },
  none: { id: createHash("sha256").update("berth-none-network").digest("hex"), driver: "null" },
};

function pseudoJson(name: string): DockerNetwork {
  return {
    Name: name, Id: PSEUDO[name].id, Created: "1970-01-01T00:00:00Z", Scope: "local", Driver: PSEUDO[name].driver, EnableIPv6: false,
    IPAM: { Driver: "default", Options: null, Config: [] }, Internal: false, Attachable: false, Ingress: false,
    ConfigFrom: { Network: "" }, ConfigOnly: false, Containers: {}, Options: {}, Labels: {},
  };
}

function networkJson(state: NetworkState, net: NetworkRecord): DockerNetwork {
  const prefix = parseCidr(net.subnet).prefix;
  const containers: DockerNetwork["Containers"] = {};
  for (const ep of liveEndpoints(state, net.id)) {
    containers[ep.containerId] = { Name: ep.containerName, EndpointID: ep.id, MacAddress: ep.mac, IPv4Address: `${ep.ip}/${prefix}`, IPv6Address: "" };
  }
  return {
    Name: net.name, Id: net.id, Created: net.created, Scope: "local", Driver: net.driver, EnableIPv6: false,
    IPAM: { Driver: "default", Options: null, Config: [{ Subnet: net.subnet, Gateway: net.gateway }] },
    Internal: net.internal, Attachable: false, Ingress: false, ConfigFrom: { Network: "" }, ConfigOnly: false,
    Containers: containers, Options: { ...net.options, "com.docker.network.bridge.name": net.bridge }, Labels: net.labels,
  };
}

/** `GET /networks`: every network, the default bridge (made on first use) and host/none included. */
export async function listNetworks(ctx: NetworkContext, filters: NetworkFilters = {}): Promise<DockerNetwork[]> {
  checkListFilters(filters);
  const state = await updateState(ctx.dataRoot, (s) => { ensureDefaultRecord(ctx, s); return s; });
  const list = Object.values(state.networks).sort((a, b) => (a.isDefault ? -1 : b.isDefault ? 1 : a.name.localeCompare(b.name)));
  return [...list.map((n) => networkJson(state, n)), pseudoJson("host"), pseudoJson("none")].filter((n) => networkMatches(n, filters));
}

/** `GET /networks/{id}` */
export async function inspectNetwork(ctx: NetworkContext, ref: string): Promise<DockerNetwork> {
  if (ref === "host" || ref === "none") return pseudoJson(ref);
  const state = ref === "bridge" ? await updateState(ctx.dataRoot, (s) => { ensureDefaultRecord(ctx, s); return s; }) : readState(ctx.dataRoot);
  const net = findNetwork(state, ref);
  if (!net) throw noSuchNetwork(ref);
  return networkJson(state, net);
}

/** The id of each network by name (a stopped container's NetworkSettings keeps them, as docker's). */
export function networkIdsByName(ctx: NetworkContext): Record<string, string> {
  const state = readState(ctx.dataRoot);
  return { ...Object.fromEntries(Object.values(state.networks).map((n) => [n.name, n.id])), host: PSEUDO.host.id, none: PSEUDO.none.id };
}

/**
 * inspect's Aliases of an endpoint, as dockerd with API 1.43: on a user network the --network-alias /
 * --alias names and then the container's short id (which its DNS answers too); null on the default bridge.
 */
export function endpointAliases(isDefaultBridge: boolean, aliases: string[], containerId: string): string[] | null {
  if (isDefaultBridge) return aliases.length ? aliases : null;
  const short = containerId.slice(0, 12);
  return aliases.includes(short) ? aliases : [...aliases, short];
}

/** docker's NetworkSettings of a container (container inspect). */
export function containerNetworkSettings(ctx: NetworkContext, containerId: string, exposed: string[] = []): Record<string, unknown> {
  const state = readState(ctx.dataRoot);
  const eps = Object.values(state.endpoints).filter((e) => e.containerId === containerId);
  const networks: Record<string, unknown> = {};
  let primary: Record<string, unknown> | undefined;
  for (const ep of eps) {
    const net = state.networks[ep.networkId];
    if (!net) continue;
    const entry = {
      IPAMConfig: null, Links: null, Aliases: endpointAliases(net.isDefault, ep.aliases, containerId), NetworkID: net.id, EndpointID: ep.id,
      Gateway: net.internal ? "" : net.gateway, IPAddress: ep.ip, IPPrefixLen: parseCidr(net.subnet).prefix, IPv6Gateway: "",
      GlobalIPv6Address: "", GlobalIPv6PrefixLen: 0, MacAddress: ep.mac, DriverOpts: null,
    };
    networks[net.name] = entry;
    if (net.isDefault) primary = entry;
  }
  const ports = eps.flatMap((e) => e.ports);
  const p = primary ?? { Gateway: "", IPAddress: "", IPPrefixLen: 0, MacAddress: "" };
  return {
    Bridge: "", SandboxID: "", HairpinMode: false, LinkLocalIPv6Address: "", LinkLocalIPv6PrefixLen: 0,
    Ports: dockerPorts(ports, exposed), SandboxKey: "", SecondaryIPAddresses: null, SecondaryIPv6Addresses: null,
    EndpointID: (primary as { EndpointID?: string } | undefined)?.EndpointID ?? "", Gateway: p.Gateway, GlobalIPv6Address: "",
    GlobalIPv6PrefixLen: 0, IPAddress: p.IPAddress, IPPrefixLen: p.IPPrefixLen, IPv6Gateway: "", MacAddress: p.MacAddress,
    Networks: networks,
  };
}

/** The published ports of a container (`port`). */
export function containerPorts(ctx: NetworkContext, containerRef: string): PortBinding[] {
  const state = readState(ctx.dataRoot);
  const eps = Object.values(state.endpoints).filter((e) => ownerAlive(e.owner) && (e.containerId.startsWith(containerRef) || e.containerName === containerRef));
  if (eps.length === 0) throw new BerthError(`no such container: ${containerRef}`, { exitCode: 1 });
  return eps.flatMap((e) => e.ports);
}

// ---- ports -------------------------------------------------------------------------------------------

function probe(proto: "tcp" | "udp", ip: string, port: number): Promise<number> {
  const v6 = isIpv6Host(ip);
  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) => {
      const where = `${formatHost(ip)}:${port}/${proto}`;
      reject(new BerthError(err.code === "EADDRINUSE"
        ? `cannot publish port ${where}: address already in use (another program on the host listens there)`
        : `cannot publish port ${where}: ${err.message}`));
    };
    if (proto === "tcp") {
      const srv = createServer();
      srv.once("error", fail);
      srv.listen({ port, host: ip || "0.0.0.0", exclusive: true, ipv6Only: v6 }, () => {
        const got = (srv.address() as { port: number }).port;
        srv.close(() => resolve(got));
      });
    } else {
      const s = createSocket(v6 ? { type: "udp6", ipv6Only: true } : { type: "udp4" });
      s.once("error", fail);
      s.bind({ port, address: ip || "0.0.0.0", exclusive: true }, () => {
        const got = s.address().port;
        s.close(() => resolve(got));
      });
    }
  });
}

async function reservePorts(state: NetworkState, wanted: PortSpec[]): Promise<PortBinding[]> {
  const taken = Object.values(state.endpoints).filter((e) => ownerAlive(e.owner)).flatMap((e) => e.ports);
  const out: PortBinding[] = [];
  for (const w of wanted) {
    let hostPort = w.hostPort;
    for (let attempt = 0; ; attempt++) {
      const candidate = { ...w, hostPort };
      const clash = [...taken, ...out].find((t) => conflicts(t, candidate));
      if (clash) {
        if (w.hostPort !== 0 || attempt > 20) {
          throw new BerthError(`cannot publish port ${formatHost(w.hostIp)}:${hostPort}/${w.proto}: port is already allocated (by another container)`);
        }
      } else {
        hostPort = await probe(w.proto, w.hostIp, hostPort);
        if (![...taken, ...out].some((t) => conflicts(t, { ...w, hostPort }))) break;
      }
      hostPort = 0;
    }
    out.push({ proto: w.proto, hostIp: w.hostIp, hostPort, containerPort: w.containerPort });
  }
  return out;
}

// ---- the userland proxy (proxy.ts) ------------------------------------------------------------------

/** This process's proxies, by endpoint id: they live as long as the publication in this process. */
const proxies = new Map<string, { containerId: string; list: PortProxy[] }>();

function stopProxies(endpointId: string): void {
  const p = proxies.get(endpointId);
  if (!p) return;
  proxies.delete(endpointId);
  for (const x of p.list) x.close();
}

function stopContainerProxies(containerId: string): void {
  for (const [id, p] of [...proxies]) if (p.containerId === containerId) stopProxies(id);
}

/** Listens for the endpoint's bindings the kernel path cannot serve (IPv6). */
async function startProxies(ep: EndpointRecord): Promise<void> {
  if (proxies.has(ep.id)) return;
  const entry = { containerId: ep.containerId, list: [] as PortProxy[] };
  proxies.set(ep.id, entry);
  for (const b of ep.ports) {
    const host = proxyAddress(b);
    if (!host) continue;
    try {
      entry.list.push(await startProxy({ proto: b.proto, host, port: b.hostPort, targetIp: ep.ip, targetPort: b.containerPort }));
    } catch (err) {
      // A port on every address has an IPv6 side only where the host has IPv6.
      const code = errnoName((err as Error).cause);
      if (b.hostIp === "" && (code === "EAFNOSUPPORT" || code === "EADDRNOTAVAIL")) continue;
      stopProxies(ep.id);
      throw err;
    }
  }
}

/**
 * For an engine that restarted while its containers ran: listens again for their IPv6 bindings (the
 * proxies died with the previous engine process; the kernel's IPv4 path stayed).
 */
export async function restorePortProxies(ctx: NetworkContext, containerId: string): Promise<void> {
  const state = readState(ctx.dataRoot);
  for (const ep of Object.values(state.endpoints)) {
    if (ep.containerId === containerId && ep.ports.some((b) => proxyAddress(b)) && ownerAlive(ep.owner)) await startProxies(ep);
  }
}

// ---- containers ---------------------------------------------------------------------------------

export function containerFilesDir(ctx: NetworkContext, containerId: string): string {
  return join(ctx.execRoot, "network", "containers", containerId);
}

export interface ContainerNetworkRequest {
  containerId: string;
  /** The container's name (resolvable on user networks). */
  name?: string;
  hostname: string;
  /** none | host | bridge | NAME | container:ID-or-NAME */
  mode: string;
  ip?: string;
  aliases?: string[];
  mac?: string;
  publish?: PortSpec[];
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  addHosts?: HostsEntry[];
  /** "PID STARTTIME" of the process whose life bounds the lease (default: this process). */
  owner?: string;
  /**
   * Once started, the lease is bound to the container's own init instead (a daemon that may be killed
   * and restarted while its containers keep running: the lease must outlive the daemon, not the init).
   */
  ownerIsContainer?: boolean;
  /** Where foreground containers keep state (for container:NAME), default /run/berth. */
  stateRoot?: string;
  /** For container:NAME, the container an engine already found (its records, not foreground state files). */
  joinTarget?: { id: string; pid: number };
}

export interface ContainerNetwork {
  mode: "none" | "host" | "bridge" | "container";
  network?: NetworkRecord;
  endpoint?: EndpointRecord;
  /** container: mode: the network namespace to join. */
  netnsPath?: string;
  /** /etc/hosts, /etc/resolv.conf, /etc/hostname bind mounts. */
  binds: { source: string; destination: string; readOnly: boolean }[];
  /** Netlink requests the helper sends after clone, before the container runs. */
  parentOps: Op[];
  /** After the container process exists and the helper made its interfaces. */
  started(pid: number): Promise<void>;
  /** After the container ended (or failed to start): idempotent. */
  release(): Promise<void>;
}

function etcBinds(dir: string) {
  return [
    { source: join(dir, "hosts"), destination: "/etc/hosts", readOnly: false },
    { source: join(dir, "resolv.conf"), destination: "/etc/resolv.conf", readOnly: false },
    { source: join(dir, "hostname"), destination: "/etc/hostname", readOnly: false },
  ];
}

function hostVethName(containerId: string, networkId: string): string {
  return `veth${createHash("sha256").update(`${containerId}/${networkId}`).digest("hex").slice(0, 10)}`;
}

/**
 * The /etc files of a container without an interface of ours. Host mode: the host's hosts and resolv.conf
 * as they are (loopback resolvers work there) unless --dns/--add-host change them; none: docker's header
 * with no line for the container's own name (it has no address).
 */
function writeEtcFilesWithoutNetwork(ctx: NetworkContext, req: ContainerNetworkRequest): string {
  const dir = containerFilesDir(ctx, req.containerId);
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  const hostResolv = readHostResolvConf();
  const extra = (req.addHosts ?? []).map((e) => `${e.ip}\t${e.host}\n`).join("");
  let hosts: string;
  if (req.mode === "host") {
    let hostHosts = "";
    try { hostHosts = readFileSync("/etc/hosts", "utf8"); } catch { /* none on the host */ }
    hosts = hostHosts ? `${hostHosts.replace(/\n?$/, "\n")}${extra}` : hostsFile({ hostname: req.hostname, extra: req.addHosts });
  } else {
    hosts = hostsFile({ hostname: req.hostname, extra: req.addHosts, noSelf: true });
  }
  const changed = req.dns?.length || req.dnsSearch?.length || req.dnsOptions?.length;
  const resolv = req.mode === "host" && !changed
    ? hostResolv
    : resolvConf({ host: parseResolvConf(hostResolv), dns: req.dns, dnsSearch: req.dnsSearch, dnsOptions: req.dnsOptions, keepLoopback: req.mode === "host" });
  writeFileSync(join(dir, "hosts"), hosts);
  writeFileSync(join(dir, "resolv.conf"), resolv);
  writeFileSync(join(dir, "hostname"), `${req.hostname}\n`);
  return dir;
}

/** Finds a foreground container's pid by id (prefix) or by the name it has on a network. */
export function findContainerPid(ctx: NetworkContext, ref: string, stateRoot: string): { id: string; pid: number } {
  const state = readState(ctx.dataRoot);
  const byName = Object.values(state.endpoints).find((e) => e.containerName === ref && ownerAlive(e.owner));
  let id = byName?.containerId;
  if (!id) {
    let names: string[] = [];
    try { names = readdirSync(join(stateRoot, "containers")); } catch { /* none */ }
    const hits = names.filter((n) => n.startsWith(ref));
    if (hits.length === 1) id = hits[0];
  }
  if (id) {
    try {
      const st = JSON.parse(readFileSync(join(stateRoot, "containers", id, "state.json"), "utf8")) as { pid?: number };
      if (st.pid && ownerAlive(ownerOf(st.pid))) return { id, pid: st.pid };
    } catch { /* not running */ }
  }
  throw new BerthError(`cannot join the network of container ${ref}: no such running container`);
}

/**
 * Everything a container needs from the network before it starts: the address (leased now), published
 * ports (reserved now), its /etc files, and the helper's netlink requests. Call `release` when it ends.
 */
export async function prepareContainerNetwork(ctx: NetworkContext, req: ContainerNetworkRequest): Promise<ContainerNetwork> {
  const noop = { parentOps: [], started: async () => {}, release: async () => {} };
  if (req.mode === "host" || req.mode === "none") {
    // Published ports are discarded here, as dockerd does: the host's ports are the container's, or there are none.
    // As dockerd: the container still gets its /etc files (with --dns, --dns-search, --add-host applied).
    const dir = writeEtcFilesWithoutNetwork(ctx, req);
    const release = async () => { rmSync(dir, { recursive: true, force: true }); };
    return { mode: req.mode, binds: etcBinds(dir), ...noop, release };
  }
  if (req.mode.startsWith("container:")) {
    if (req.publish?.length) throw new BerthError("conflicting options: -p cannot be used with --network container:");
    const target = req.joinTarget ?? findContainerPid(ctx, req.mode.slice("container:".length), req.stateRoot ?? "/run/berth");
    const dir = containerFilesDir(ctx, target.id);
    let binds: ContainerNetwork["binds"] = [];
    try { readFileSync(join(dir, "hosts")); binds = etcBinds(dir).filter((b) => b.destination !== "/etc/hostname"); } catch { /* none */ }
    return { mode: "container", netnsPath: `/proc/${target.pid}/ns/net`, binds, ...noop };
  }
  await sweepOnce(ctx);
  const owner = req.owner ?? ourOwner();
  const { net, ep } = await updateState(ctx.dataRoot, async (state, save) => {
    const known = Object.keys(state.networks).length;
    const net = req.mode === "bridge" ? ensureDefaultRecord(ctx, state) : findNetwork(state, req.mode);
    if (!net) throw noSuchNetwork(req.mode);
    const fresh = Object.keys(state.networks).length !== known;
    if (net.isDefault && req.aliases?.length) throw new BerthError("network-scoped aliases are only supported for user-defined networks");
    if (net.isDefault && req.ip) throw new BerthError("user specified IP address is supported on user defined networks only");
    const subnet = parseCidr(net.subnet);
    const used = new Set(Object.values(state.endpoints).filter((e) => e.networkId === net.id).map((e) => e.ip));
    const ip = req.ip ? checkRequested(subnet, net.gateway, used, req.ip, net.name) : allocate(subnet, net.gateway, used, net.lastIp);
    if (!req.ip) net.lastIp = ip;
    const ports = await reservePorts(state, req.publish ?? []);
    const ep: EndpointRecord = {
      id: hex(32), networkId: net.id, containerId: req.containerId, containerName: req.name ?? "", ip, mac: req.mac ?? macFor(ip),
      aliases: req.aliases ?? [], ports, hostVeth: hostVethName(req.containerId, net.id), ifname: "eth0", owner, created: nowIso(),
      ...(req.dns?.length && !net.isDefault ? { dns: req.dns } : {}),
    };
    state.endpoints[ep.id] = ep;
    save();
    try {
      const made = await ensureBridge(net);
      if (made || fresh) await applyFirewall(ctx, state);
      else await applyPorts(ctx, state, ep, "add");
      await ensureDns(ctx, net);
    } catch (err) {
      delete state.endpoints[ep.id];
      await applyPorts(ctx, state, ep, "delete").catch(() => {});
      save();
      throw err;
    }
    return { net, ep };
  });
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    stopProxies(ep.id);
    await updateState(ctx.dataRoot, async (state) => {
      delete state.endpoints[ep.id];
      if (!(net.isDefault && await retireIdleDefaultBridge(ctx, state))) await applyPorts(ctx, state, ep, "delete");
    });
    rmSync(containerFilesDir(ctx, req.containerId), { recursive: true, force: true });
  };
  try {
    await startProxies(ep);
    const dir = containerFilesDir(ctx, req.containerId);
    mkdirSync(dir, { recursive: true, mode: 0o711 });
    const host = parseResolvConf(readHostResolvConf());
    writeFileSync(join(dir, "hosts"), hostsFile({ hostname: req.hostname, ip: ep.ip, aliases: [...(req.name ? [req.name] : []), ...ep.aliases], extra: req.addHosts }));
    writeFileSync(join(dir, "resolv.conf"), resolvConf({ host, embedded: net.isDefault ? undefined : net.gateway, dns: req.dns, dnsSearch: req.dnsSearch, dnsOptions: req.dnsOptions }));
    writeFileSync(join(dir, "hostname"), `${req.hostname}\n`);
    const subnet = parseCidr(net.subnet);
    const parentOps: Op[] = [
      netlinkOp(newVethIntoNetns({ hostName: ep.hostVeth, peerName: ep.ifname, mtu: hostMtu(), mac: ep.mac }), {
        netns: "", ifname: net.bridge, what: `create veth ${ep.hostVeth} on ${net.bridge} with ${ep.ifname} in the container`,
      }),
      netlinkOp(newAddress({ ip: ep.ip, prefix: subnet.prefix, broadcast: broadcast(subnet) }), {
        netns: "@CHILD@", ifname: ep.ifname, what: `add address ${ep.ip}/${subnet.prefix} to ${ep.ifname}`,
      }),
      netlinkOp(linkUp(), { netns: "@CHILD@", ifname: ep.ifname, what: `bring up ${ep.ifname}` }),
    ];
    if (!net.internal) {
      parentOps.push(netlinkOp(newDefaultRoute(net.gateway), { netns: "@CHILD@", ifname: ep.ifname, what: `add default route via ${net.gateway}` }));
    }
    return {
      mode: "bridge",
      network: net,
      endpoint: ep,
      binds: etcBinds(dir),
      parentOps,
      started: async (pid: number) => {
        if (req.ownerIsContainer) {
          await updateState(ctx.dataRoot, (state) => {
            const rec = state.endpoints[ep.id];
            if (rec) rec.owner = ownerOf(pid);
          });
        }
        setHairpin(ep.hostVeth);
      },
      release,
    };
  } catch (err) {
    await release();
    throw err;
  }
}

/**
 * Releases every endpoint of a container (its leases, published ports, /etc files) by id: for an engine
 * that no longer holds the ContainerNetwork object (e.g. after a restart), at `rm`.
 */
export async function releaseContainerNetwork(ctx: NetworkContext, containerId: string): Promise<void> {
  stopContainerProxies(containerId);
  await updateState(ctx.dataRoot, async (state) => {
    for (const ep of Object.values(state.endpoints)) {
      if (ep.containerId !== containerId) continue;
      delete state.endpoints[ep.id];
      await applyPorts(ctx, state, ep, "delete");
    }
  });
  rmSync(containerFilesDir(ctx, containerId), { recursive: true, force: true });
}

// ---- connect / disconnect a running container -----------------------------------------------------------

export interface ConnectOptions {
  containerId: string;
  name?: string;
  /** The container's init pid (its network namespace is /proc/PID/ns/net). */
  pid: number;
  ip?: string;
  aliases?: string[];
  owner?: string;
  /** The container's --dns servers: its network's embedded DNS relays to them, as for its first network. */
  dns?: string[];
}

/**
 * The endpoint that gives a container its default route, as libnetwork orders a sandbox's endpoints
 * (no --gw-priority before API 1.48): internal networks last, then by network name. dockerd 20.10 moves
 * the route when a connect or disconnect changes which one that is.
 */
function gatewayEndpoint(state: NetworkState, containerId: string): EndpointRecord | undefined {
  return Object.values(state.endpoints)
    .filter((e) => e.containerId === containerId && state.networks[e.networkId] && !state.networks[e.networkId].internal)
    .sort((a, b) => (state.networks[a.networkId].name < state.networks[b.networkId].name ? -1 : 1))[0];
}

async function routeVia(state: NetworkState, ep: EndpointRecord, pid: number): Promise<void> {
  const net = state.networks[ep.networkId];
  await runFilesystemOps([netlinkOp(newDefaultRoute(net.gateway, { replace: true }), {
    netns: `/proc/${pid}/ns/net`, ifname: ep.ifname, what: `set the default route via ${net.gateway} on ${ep.ifname}`,
  })]);
}

/** The /etc/hosts line of a container's own address on a network (as its first network's, etc-files.ts). */
function ownHostsLine(hostname: string, ep: EndpointRecord): string {
  return `${ep.ip}\t${[hostname, ...[ep.containerName, ...ep.aliases].filter((a) => a && a !== hostname)].join(" ")}`;
}

/**
 * Keeps a running container's /etc/hosts and resolv.conf in step with its endpoints: `added` gets its
 * line, `removed` loses it; the resolver is the embedded DNS of a user network it is on (the one it
 * used while that network stays, else the first by name), or, on none, its --dns or the host's servers.
 * Written in place: the files are bind-mounted by inode.
 */
function updateEtcFiles(ctx: NetworkContext, state: NetworkState, containerId: string, change: { added?: EndpointRecord; removed?: EndpointRecord; dns?: string[] }): void {
  const dir = containerFilesDir(ctx, containerId);
  let hostname: string;
  let hosts: string;
  let resolv: string;
  try {
    hostname = readFileSync(join(dir, "hostname"), "utf8").trim();
    hosts = readFileSync(join(dir, "hosts"), "utf8");
    resolv = readFileSync(join(dir, "resolv.conf"), "utf8");
  } catch {
    return; // not started here (a created container gets them at start)
  }
  let lines = hosts.split("\n").filter(Boolean);
  if (change.removed) {
    const own = `${change.removed.ip}\t${hostname}`;
    lines = lines.filter((l) => l !== own && !l.startsWith(`${own} `));
  }
  if (change.added) lines.push(ownHostsLine(hostname, change.added));
  writeFileSync(join(dir, "hosts"), `${lines.join("\n")}\n`);

  const mine = Object.values(state.endpoints).filter((e) => e.containerId === containerId && state.networks[e.networkId] && !state.networks[e.networkId].isDefault);
  const gateways = mine.map((e) => state.networks[e.networkId]).sort((a, b) => (a.name < b.name ? -1 : 1)).map((n) => n.gateway);
  const current = parseResolvConf(resolv).nameservers;
  const removedGateway = change.removed ? state.networks[change.removed.networkId]?.gateway : undefined;
  const wasEmbedded = current.length === 1 && (gateways.includes(current[0]) || current[0] === removedGateway);
  let servers: string[] | undefined;
  if (wasEmbedded && gateways.includes(current[0])) servers = undefined;
  else if (gateways.length) servers = [gateways[0]];
  else if (wasEmbedded) servers = change.dns?.length ? change.dns : parseResolvConf(readHostResolvConf()).nameservers.filter((n) => !/^(127\.|::1$)/.test(n));
  if (!servers) return;
  const rest = resolv.split("\n").filter((l) => l && !/^\s*nameserver\s/.test(l));
  writeFileSync(join(dir, "resolv.conf"), `${[...servers.map((n) => `nameserver ${n}`), ...rest].join("\n")}\n`);
}

/** Hairpin: a container reaching its own published port through the host comes back on its bridge port. */
function setHairpin(hostVeth: string): void {
  try { writeFileSync(`/sys/class/net/${hostVeth}/brport/hairpin_mode`, "1"); } catch { /* not fatal: only hairpin traffic fails */ }
}

export async function connectContainer(ctx: NetworkContext, ref: string, o: ConnectOptions): Promise<EndpointRecord> {
  await sweepOnce(ctx);
  return updateState(ctx.dataRoot, async (state) => {
    const net = ref === "bridge" ? ensureDefaultRecord(ctx, state) : findNetwork(state, ref);
    if (!net) throw noSuchNetwork(ref);
    const mine = Object.values(state.endpoints).filter((e) => e.containerId === o.containerId);
    if (mine.some((e) => e.networkId === net.id)) throw new BerthError(`endpoint with name ${o.name || o.containerId.slice(0, 12)} already exists in network ${net.name}`, { exitCode: 1 });
    const subnet = parseCidr(net.subnet);
    const used = new Set(Object.values(state.endpoints).filter((e) => e.networkId === net.id).map((e) => e.ip));
    const ip = o.ip ? checkRequested(subnet, net.gateway, used, o.ip, net.name) : allocate(subnet, net.gateway, used, net.lastIp);
    if (!o.ip) net.lastIp = ip;
    const names = new Set(mine.map((e) => e.ifname));
    let n = 0;
    while (names.has(`eth${n}`)) n++;
    const ep: EndpointRecord = {
      id: hex(32), networkId: net.id, containerId: o.containerId, containerName: o.name ?? "", ip, mac: macFor(ip), aliases: o.aliases ?? [],
      ports: [], hostVeth: hostVethName(o.containerId, net.id), ifname: `eth${n}`, owner: o.owner ?? ownerOf(o.pid), created: nowIso(),
      ...(o.dns?.length && !net.isDefault ? { dns: o.dns } : {}),
    };
    const gatewayBefore = gatewayEndpoint(state, o.containerId);
    if (await ensureBridge(net)) await applyFirewall(ctx, state);
    await ensureDns(ctx, net);
    const netns = `/proc/${o.pid}/ns/net`;
    await runFilesystemOps([
      netlinkOp(newVethIntoNetns({ hostName: ep.hostVeth, peerName: ep.ifname, mtu: hostMtu(), mac: ep.mac, pid: o.pid }), {
        netns: "", ifname: net.bridge, what: `create veth ${ep.hostVeth} on ${net.bridge}`,
      }),
      netlinkOp(newAddress({ ip, prefix: subnet.prefix, broadcast: broadcast(subnet) }), { netns, ifname: ep.ifname, what: `add address ${ip} to ${ep.ifname}` }),
      netlinkOp(linkUp(), { netns, ifname: ep.ifname, what: `bring up ${ep.ifname}` }),
    ]);
    // As the first network's port gets at start (prepareContainerNetwork's started).
    setHairpin(ep.hostVeth);
    state.endpoints[ep.id] = ep;
    if (gatewayEndpoint(state, o.containerId) !== gatewayBefore) await routeVia(state, ep, o.pid);
    updateEtcFiles(ctx, state, o.containerId, { added: ep, dns: o.dns });
    return ep;
  });
}

/** `pid`: the container's init, whose default route moves when it loses the endpoint that had it. */
export async function disconnectContainer(ctx: NetworkContext, ref: string, containerRef: string, o: { pid?: number; dns?: string[] } = {}): Promise<void> {
  await updateState(ctx.dataRoot, async (state) => {
    const net = findNetwork(state, ref);
    if (!net) throw noSuchNetwork(ref);
    const ep = Object.values(state.endpoints).find((e) => e.networkId === net.id && (e.containerId.startsWith(containerRef) || e.containerName === containerRef));
    if (!ep) throw new BerthError(`container ${containerRef} is not connected to network ${net.name}`, { exitCode: 1 });
    if (linkExists(ep.hostVeth)) {
      await runFilesystemOps([netlinkOp(delLink(ep.hostVeth), { netns: "", ignoreErrno: ERRNO.ENODEV, what: `delete ${ep.hostVeth}` })]);
    }
    const wasGateway = gatewayEndpoint(state, ep.containerId) === ep;
    delete state.endpoints[ep.id];
    stopProxies(ep.id);
    if (ep.ports.length) await applyFirewall(ctx, state);
    // Its route went with its interface: the next endpoint in docker's order takes the default route.
    const next = gatewayEndpoint(state, ep.containerId);
    if (wasGateway && next && o.pid) await routeVia(state, next, o.pid);
    updateEtcFiles(ctx, state, ep.containerId, { removed: ep, dns: o.dns });
  });
}
