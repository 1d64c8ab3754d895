// The nftables ruleset for every Berth network, rendered whole from the state (pure). Applying it is
// one atomic `nft -f` transaction that replaces table `ip berth`, so the kernel's rules are always
// exactly what the state says: nothing left behind by a stopped container, nothing drifting.
//
//  - published ports: maps (host address . port -> container address . port) used by DNAT in
//    prerouting (from outside and from containers: hairpin) and output (from the host itself,
//    127.0.0.1 included: the bridge has route_localnet, and such traffic is masqueraded);
//  - masquerade for traffic from non-internal networks leaving through a non-Berth interface, and for
//    hairpin traffic (a container reaching a published port on its own bridge); IPv6 host addresses are
//    not here: the userland proxy (proxy.ts) serves them;
//  - isolation: traffic from one Berth bridge to another is dropped (unless it was published-port DNAT);
//    internal networks reach nothing outside their bridge; from outside, a bridge accepts only replies
//    and published ports.

import { formatCidr, parseCidr } from "./ipam.js";
import { servedByKernel } from "./ports.js";
import type { NetworkState } from "./types.js";

export const NFT_TABLE = "berth";

const q = (s: string) => JSON.stringify(s);

function element(hostIp: string, hostPort: number, ip: string, port: number): string {
  return `${hostIp ? hostIp : "0.0.0.0/0"} . ${hostPort} : ${ip} . ${port}`;
}

/** Chain names for a network's bridge (bridge names are at most 15 safe characters). */
const chainIn = (bridge: string) => `in-${bridge}`;
const chainOut = (bridge: string) => `out-${bridge}`;

/**
 * The `nft -f` text: (re)create table ip berth from the state, or only delete it when there are no
 * networks. Declaring the table first makes the delete valid whether or not it existed.
 */
export function renderRuleset(state: NetworkState, table = NFT_TABLE): string {
  const lines: string[] = [`table ip ${table} {}`, `delete table ip ${table}`];
  const networks = Object.values(state.networks).sort((a, b) => a.bridge.localeCompare(b.bridge));
  if (networks.length === 0) return lines.join("\n") + "\n";
  const byNet = new Map(networks.map((n) => [n.id, n]));
  const tcp: string[] = [];
  const udp: string[] = [];
  for (const ep of Object.values(state.endpoints).sort((a, b) => a.id.localeCompare(b.id))) {
    if (!byNet.has(ep.networkId)) continue;
    for (const p of ep.ports.filter(servedByKernel)) (p.proto === "tcp" ? tcp : udp).push(element(p.hostIp, p.hostPort, ep.ip, p.containerPort));
  }
  const bridges = networks.map((n) => q(n.bridge));
  const masq = networks.filter((n) => !n.internal).map((n) => formatCidr(parseCidr(n.subnet)));
  const elems = (list: string[]) => (list.length ? ` elements = { ${list.join(", ")} };` : "");
  lines.push(`table ip ${table} {`);
  lines.push(`  set bridges { type ifname;${elems(bridges)} }`);
  lines.push(`  set masq { type ipv4_addr; flags interval;${elems(masq)} }`);
  lines.push(`  map pub_tcp { type ipv4_addr . inet_service : ipv4_addr . inet_service; flags interval;${elems(tcp)} }`);
  lines.push(`  map pub_udp { type ipv4_addr . inet_service : ipv4_addr . inet_service; flags interval;${elems(udp)} }`);
  lines.push(`  map fwd_in { type ifname : verdict;${elems(networks.map((n) => `${q(n.bridge)} : jump ${chainIn(n.bridge)}`))} }`);
  lines.push(`  map fwd_out { type ifname : verdict;${elems(networks.map((n) => `${q(n.bridge)} : jump ${chainOut(n.bridge)}`))} }`);
  for (const n of networks) {
    lines.push(`  chain ${chainIn(n.bridge)} {`);
    lines.push(`    oifname ${q(n.bridge)} accept`);
    if (n.internal) {
      lines.push("    drop");
    } else {
      lines.push("    ct status dnat accept");
      lines.push("    oifname @bridges drop");
      lines.push("    accept");
    }
    lines.push("  }");
    lines.push(`  chain ${chainOut(n.bridge)} {`);
    if (!n.internal) {
      lines.push("    ct state established,related accept");
      lines.push("    ct status dnat accept");
    }
    lines.push("    drop");
    lines.push("  }");
  }
  const dnat = [
    "    fib daddr type local dnat to ip daddr . tcp dport map @pub_tcp",
    "    fib daddr type local dnat to ip daddr . udp dport map @pub_udp",
  ];
  lines.push("  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;", ...dnat, "  }");
  lines.push("  chain output {", "    type nat hook output priority -100; policy accept;", ...dnat, "  }");
  lines.push(
    "  chain postrouting {",
    "    type nat hook postrouting priority srcnat; policy accept;",
    "    oifname @bridges ip saddr 127.0.0.0/8 masquerade",
    "    ct status dnat iifname @bridges oifname @bridges masquerade",
    "    ip saddr @masq oifname != @bridges masquerade",
    "  }",
  );
  lines.push(
    "  chain forward {",
    "    type filter hook forward priority filter; policy accept;",
    "    iifname vmap @fwd_in",
    "    oifname vmap @fwd_out",
    "  }",
  );
  lines.push("}");
  return lines.join("\n") + "\n";
}

/**
 * Adding or removing one container's published ports without rebuilding the table: `add element` /
 * `delete element` on the port maps (one small transaction). Empty when it publishes nothing.
 */
export function portElementsText(table: string, ep: { ip: string; ports: { proto: "tcp" | "udp"; hostIp: string; hostPort: number; containerPort: number }[] }, op: "add" | "delete"): string {
  const lines: string[] = [];
  for (const proto of ["tcp", "udp"] as const) {
    const list = ep.ports.filter((p) => p.proto === proto && servedByKernel(p));
    if (!list.length) continue;
    const elems = list.map((p) => (op === "add" ? element(p.hostIp, p.hostPort, ep.ip, p.containerPort) : `${p.hostIp || "0.0.0.0/0"} . ${p.hostPort}`));
    lines.push(`${op} element ip ${table} pub_${proto} { ${elems.join(", ")} }`);
  }
  return lines.length ? lines.join("\n") + "\n" : "";
}
