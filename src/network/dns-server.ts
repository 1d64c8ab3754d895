// The embedded DNS server of a user-defined network: listens on the network's gateway address, answers
// the names (container names, aliases, short ids) and addresses (PTR) of the containers attached to that
// network from the state file, and relays every other question to the host's resolvers. Runs in the
// daemon (startDnsServer) or as a small detached process for foreground runs (this file as a script);
// either way it ends when its network is removed.

import { createSocket, type Socket } from "node:dgram";
import { readFileSync, rmSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { answerFromTable, decode, encodeResponse, type Message, type NameTable, RCODE } from "./dns.js";
import { parseResolvConf } from "./etc-files.js";
import { readState, statePath } from "./store.js";
import type { NetworkState } from "./types.js";

/** The names and addresses of the containers on one network. */
function networkNames(state: NetworkState, networkId: string): NameTable {
  const forward = new Map<string, string[]>();
  const reverse = new Map<string, string>();
  // As docker's embedded DNS, a name also answers with the network's name after it: "db.mynet".
  const netName = state.networks[networkId]?.name;
  const add = (name: string, ip: string) => {
    for (const key of netName ? [name.toLowerCase(), `${name}.${netName}`.toLowerCase()] : [name.toLowerCase()]) {
      const list = forward.get(key) ?? [];
      if (!list.includes(ip)) list.push(ip);
      forward.set(key, list);
    }
  };
  for (const ep of Object.values(state.endpoints)) {
    if (ep.networkId !== networkId) continue;
    if (ep.containerName) add(ep.containerName, ep.ip);
    add(ep.containerId.slice(0, 12), ep.ip);
    for (const a of ep.aliases) add(a, ep.ip);
    reverse.set(ep.ip, ep.containerName || ep.containerId.slice(0, 12));
  }
  return { forward, reverse };
}

/**
 * The names on a network, each container's own --dns servers (by its address), and, for a container
 * also attached to other user networks (network connect), the names of those too: its resolv.conf
 * names one network's server, and docker's resolver answers for every network of the container (this
 * one first, then the others by name).
 */
export function nameTable(dataRoot: string, networkId: string): NameTable & { upstream: Map<string, string[]>; byClient: Map<string, NameTable> } {
  const state = readState(dataRoot);
  const own = networkNames(state, networkId);
  const upstream = new Map<string, string[]>();
  const byClient = new Map<string, NameTable>();
  const others = new Map<string, NameTable>();
  for (const ep of Object.values(state.endpoints)) {
    if (ep.networkId !== networkId) continue;
    if (ep.dns?.length) upstream.set(ep.ip, ep.dns);
    const nets = Object.values(state.endpoints)
      .filter((e) => e.containerId === ep.containerId && e.networkId !== networkId && state.networks[e.networkId] && !state.networks[e.networkId].isDefault)
      .map((e) => state.networks[e.networkId])
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    if (nets.length === 0) continue;
    const merged: NameTable = { forward: new Map(own.forward), reverse: new Map(own.reverse) };
    for (const net of nets) {
      let t = others.get(net.id);
      if (!t) others.set(net.id, (t = networkNames(state, net.id)));
      for (const [k, v] of t.forward) if (!merged.forward.has(k)) merged.forward.set(k, v);
      for (const [k, v] of t.reverse) if (!merged.reverse.has(k)) merged.reverse.set(k, v);
    }
    byClient.set(ep.ip, merged);
  }
  return { ...own, upstream, byClient };
}

export interface DnsServerOptions {
  dataRoot: string;
  networkId: string;
  address: string;
  port?: number;
  /** Resolvers for names the network does not know (default: the host's /etc/resolv.conf). */
  upstream?: string[];
  /** Forward unknown names at all (internal networks: no). */
  forward?: boolean;
}

export function startDnsServer(o: DnsServerOptions): Promise<Socket> {
  const upstream = o.upstream ?? (() => {
    try { return parseResolvConf(readFileSync("/etc/resolv.conf", "utf8")).nameservers.filter((s) => !s.includes(":")); } catch { return []; }
  })();
  let table: ReturnType<typeof nameTable> = { forward: new Map(), reverse: new Map(), upstream: new Map(), byClient: new Map() };
  let stamp = "";
  const refresh = () => {
    let now = "";
    try {
      const st = statSync(statePath(o.dataRoot));
      now = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch { /* no state */ }
    if (now !== stamp) {
      stamp = now;
      table = nameTable(o.dataRoot, o.networkId);
    }
  };
  const sock = createSocket({ type: "udp4", reuseAddr: true });
  const relay = (query: Message, raw: Buffer, reply: (b: Buffer) => void, client: string) => {
    const servers = o.forward === false ? [] : (table.upstream.get(client) ?? upstream);
    if (servers.length === 0) return reply(encodeResponse(query, [], RCODE.NXDOMAIN));
    const out = createSocket("udp4");
    const timer = setTimeout(() => { out.close(); reply(encodeResponse(query, [], RCODE.SERVFAIL)); }, 3000);
    out.on("message", (msg) => { clearTimeout(timer); out.close(); reply(msg); });
    out.on("error", () => { clearTimeout(timer); try { out.close(); } catch { /* closed */ } reply(encodeResponse(query, [], RCODE.SERVFAIL)); });
    out.send(raw, 53, servers[0]);
  };
  sock.on("message", (raw, rinfo) => {
    let query: Message;
    try {
      query = decode(raw);
    } catch {
      return;
    }
    if (query.flags & 0x8000) return; // a response, not a query
    const reply = (b: Buffer) => sock.send(b, rinfo.port, rinfo.address);
    refresh();
    const r = answerFromTable(query, table.byClient.get(rinfo.address) ?? table);
    if (r === "forward") relay(query, raw, reply, rinfo.address);
    else reply(encodeResponse(query, r.answers, r.rcode));
  });
  return new Promise((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(o.port ?? 53, o.address, () => {
      sock.off("error", reject);
      sock.on("error", () => {});
      resolve(sock);
    });
  });
}

// As a script: node dns-server.js DATA_ROOT NETWORK_ID ADDRESS PIDFILE FORWARD(0|1)
// (Also bundled into the CLI: there import.meta.url names the bundle, so the script name decides.)
if (process.argv[1]?.endsWith("dns-server.js") && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [dataRoot, networkId, address, pidFile, forward] = process.argv.slice(2);
  const gone = () => !readState(dataRoot).networks[networkId];
  startDnsServer({ dataRoot, networkId, address, forward: forward !== "0" }).then(
    (sock) => {
      const timer = setInterval(() => {
        if (!gone()) return;
        clearInterval(timer);
        sock.close();
        try {
          if (readFileSync(pidFile, "utf8").startsWith(`${process.pid} `)) rmSync(pidFile, { force: true });
        } catch { /* gone */ }
        process.exit(0);
      }, 1000);
      process.on("SIGTERM", () => process.exit(0));
      process.stdout.write("ready\n");
    },
    (err: Error) => {
      process.stderr.write(`berth dns: ${err.message}\n`);
      process.exit(1);
    },
  );
}
