// IPv4 address management, pure: subnets, gateways, choosing a free subnet that collides with nothing on
// the host, and allocating addresses within one. What is in use is passed in (the store persists it).

import { BerthError } from "../errors.js";

export interface Cidr {
  /** Network address as an unsigned 32-bit integer. */
  base: number;
  prefix: number;
}

export function ipToInt(ip: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) throw new BerthError(`invalid IPv4 address "${ip}"`);
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) throw new BerthError(`invalid IPv4 address "${ip}"`);
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

export function isIpv4(text: string): boolean {
  try {
    ipToInt(text);
    return true;
  } catch {
    return false;
  }
}

const mask = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

/** "10.1.0.0/16" -> Cidr; host bits must be zero unless `loose` (then they are cleared). */
export function parseCidr(text: string, loose = false): Cidr {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  if (!m || Number(m[2]) > 32 || !isIpv4(m[1])) throw new BerthError(`invalid subnet "${text}": expected an IPv4 CIDR such as 172.20.0.0/16`);
  const prefix = Number(m[2]);
  const ip = ipToInt(m[1]);
  const base = (ip & mask(prefix)) >>> 0;
  if (!loose && base !== ip) throw new BerthError(`invalid subnet "${text}": host bits are set (did you mean ${intToIp(base)}/${prefix}?)`);
  return { base, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${intToIp(c.base)}/${c.prefix}`;
}

export function size(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function contains(c: Cidr, ip: number): boolean {
  return ((ip & mask(c.prefix)) >>> 0) === c.base;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & mask(p)) >>> 0) === ((b.base & mask(p)) >>> 0);
}

export function broadcast(c: Cidr): string {
  return intToIp((c.base + size(c) - 1) >>> 0);
}

/** docker's default gateway: the first address of the subnet. */
export function defaultGateway(c: Cidr): string {
  if (c.prefix > 30) throw new BerthError(`subnet ${formatCidr(c)} is too small: it needs room for a gateway and containers (at most /30)`);
  return intToIp(c.base + 1);
}

/** Candidates for networks Berth makes up itself, in order (docker's pool starts at 172.17). */
export function defaultPool(): string[] {
  const out: string[] = [];
  for (let b = 18; b <= 31; b++) out.push(`172.${b}.0.0/16`);
  for (let c = 0; c < 256; c += 1) out.push(`10.200.${c}.0/24`);
  return out;
}

/** The first candidate that overlaps none of `taken` (host routes, host addresses, other networks). */
export function chooseSubnet(candidates: string[], taken: Cidr[]): Cidr {
  for (const text of candidates) {
    const c = parseCidr(text);
    if (!taken.some((t) => overlaps(c, t))) return c;
  }
  throw new BerthError("no free subnet for a new network: every candidate collides with a host route or another network; give one with --subnet");
}

/**
 * The next free address in `subnet` after `last` (round robin, as docker does, so a released address is
 * not handed out again at once), skipping the network, broadcast, gateway and `used` addresses.
 */
export function allocate(subnet: Cidr, gateway: string, used: Set<string>, last?: string): string {
  const n = size(subnet);
  const first = subnet.base + 1;
  const count = n - 2;
  if (count <= 0) throw new BerthError(`subnet ${formatCidr(subnet)} has no room for containers`);
  let start = 0;
  if (last && contains(subnet, ipToInt(last))) start = (ipToInt(last) - first + 1) % count;
  for (let i = 0; i < count; i++) {
    const ip = intToIp((first + ((start + i) % count)) >>> 0);
    if (ip !== gateway && !used.has(ip)) return ip;
  }
  throw new BerthError(`no free address left in subnet ${formatCidr(subnet)}`);
}

/** Checks a requested address (--ip) against the subnet and what is in use. */
export function checkRequested(subnet: Cidr, gateway: string, used: Set<string>, ip: string, network: string): string {
  const n = ipToInt(ip);
  if (!contains(subnet, n)) throw new BerthError(`invalid --ip ${ip}: it is not in network ${network}'s subnet ${formatCidr(subnet)}`);
  if (n === subnet.base || intToIp(n) === broadcast(subnet)) throw new BerthError(`invalid --ip ${ip}: the network or broadcast address of ${formatCidr(subnet)}`);
  if (ip === gateway) throw new BerthError(`invalid --ip ${ip}: it is the gateway of network ${network}`);
  if (used.has(ip)) throw new BerthError(`address ${ip} is already in use on network ${network}`);
  return ip;
}

/** docker's MAC for an address: 02:42 then the four address bytes. */
export function macFor(ip: string): string {
  const n = ipToInt(ip);
  return ["02", "42", ...[n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, "0"))].join(":");
}
