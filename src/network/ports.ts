// docker's -p / --expose syntax, pure: "[ip:][hostPort:]containerPort[/proto]" with ranges.

import { isIPv6 } from "node:net";
import { BerthError } from "../errors.js";
import { isIpv4 } from "./ipam.js";
import type { PortBinding } from "./types.js";

export interface PortSpec {
  proto: "tcp" | "udp";
  hostIp: string;
  /** 0: any free port. */
  hostPort: number;
  containerPort: number;
}

function parseRange(text: string, what: string, spec: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || lo < 1 || hi > 65535 || hi < lo) throw new BerthError(`invalid ${what} "${text}" in -p ${spec}: expected a port 1-65535 or a range such as 8000-8010`);
  return [lo, hi];
}

function parseProto(text: string | undefined, spec: string): "tcp" | "udp" {
  const p = (text ?? "tcp").toLowerCase();
  if (p !== "tcp" && p !== "udp") throw new BerthError(`invalid protocol "${text}" in -p ${spec}: use tcp or udp`);
  return p;
}

/** One -p value -> one binding per container port. */
export function parsePublish(spec: string): PortSpec[] {
  const slash = spec.lastIndexOf("/");
  const proto = parseProto(slash >= 0 ? spec.slice(slash + 1) : undefined, spec);
  const body = slash >= 0 ? spec.slice(0, slash) : spec;
  let hostIp = "";
  let rest = body;
  const bracket = /^\[([^\]]*)\]:(.*)$/.exec(body);
  if (bracket) {
    // [v6addr]:hostPort:containerPort, served by the userland proxy (proxy.ts).
    hostIp = bracket[1];
    if (!isIPv6(hostIp)) throw new BerthError(`invalid host address "[${hostIp}]" in -p ${spec}: expected an IPv6 address such as [::1]`);
    hostIp = normalizeIpv6(hostIp);
    rest = bracket[2];
    if (rest.split(":").length !== 2) throw new BerthError(`invalid -p ${spec}: expected [ipv6]:[hostPort]:containerPort[/tcp|udp]`);
  }
  const parts = rest.split(":");
  if (bracket) {
    // the address was taken above
  } else if (parts.length === 3) {
    hostIp = parts[0];
    rest = `${parts[1]}:${parts[2]}`;
    if (hostIp === "0.0.0.0") hostIp = "";
    else if (hostIp !== "" && !isIpv4(hostIp)) throw new BerthError(`invalid host address "${hostIp}" in -p ${spec}: expected an IPv4 address, or an IPv6 one in brackets`);
  } else if (parts.length > 3) {
    throw new BerthError(`invalid -p ${spec}: expected [ip:][hostPort:]containerPort[/tcp|udp]`);
  }
  const [hostText, ctrText] = rest.includes(":") ? rest.split(":") : ["", rest];
  const [cLo, cHi] = parseRange(ctrText, "container port", spec);
  const count = cHi - cLo + 1;
  const out: PortSpec[] = [];
  if (hostText === "") {
    for (let p = cLo; p <= cHi; p++) out.push({ proto, hostIp, hostPort: 0, containerPort: p });
    return out;
  }
  const [hLo, hHi] = parseRange(hostText, "host port", spec);
  if (hHi - hLo + 1 !== count) {
    if (count === 1 && hHi > hLo) {
      // docker: a host range for one container port means "any free port of the range": take the first.
      return [{ proto, hostIp, hostPort: hLo, containerPort: cLo }];
    }
    throw new BerthError(`invalid -p ${spec}: the host range and the container range differ in size`);
  }
  for (let i = 0; i < count; i++) out.push({ proto, hostIp, hostPort: hLo + i, containerPort: cLo + i });
  return out;
}

/** --expose / image ExposedPorts keys: "80", "80/udp", "8000-8002/tcp" -> "80/tcp" keys. */
export function parseExpose(text: string): string[] {
  const slash = text.lastIndexOf("/");
  const proto = parseProto(slash >= 0 ? text.slice(slash + 1) : undefined, text);
  const [lo, hi] = parseRange(slash >= 0 ? text.slice(0, slash) : text, "port", text);
  const out: string[] = [];
  for (let p = lo; p <= hi; p++) out.push(`${p}/${proto}`);
  return out;
}

/** -P: every exposed port on a free host port. */
export function publishAll(exposed: string[]): PortSpec[] {
  return exposed.map((key) => {
    const [port, proto] = key.split("/");
    return { proto: parseProto(proto, key), hostIp: "", hostPort: 0, containerPort: Number(port) };
  });
}

/** "0:0::1" -> "::1": one spelling per address, so equal addresses compare equal. */
function normalizeIpv6(ip: string): string {
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

/** An IPv6 host address ("::" is every IPv6 address). */
export const isIpv6Host = (ip: string) => ip.includes(":");

/** Two bindings that cannot both hold: same protocol and port, overlapping host addresses. */
export function conflicts(a: PortBinding | PortSpec, b: PortBinding | PortSpec): boolean {
  if (a.proto !== b.proto || a.hostPort !== b.hostPort || a.hostPort === 0) return false;
  if (a.hostIp === "" || b.hostIp === "" || a.hostIp === b.hostIp) return true;
  return (a.hostIp === "::" && isIpv6Host(b.hostIp)) || (b.hostIp === "::" && isIpv6Host(a.hostIp));
}

/** Whether the kernel path (nftables DNAT, IPv4) serves a binding: every address, or an IPv4 one. */
export const servedByKernel = (b: PortBinding | PortSpec) => !isIpv6Host(b.hostIp);

/**
 * Where the userland proxy listens for a binding, if anywhere: its IPv6 address, or for a binding on
 * every address its IPv6 side ("::", which answers on ::1 too, as docker-proxy does).
 */
export function proxyAddress(b: PortBinding | PortSpec): string | undefined {
  if (b.hostIp === "") return "::";
  return isIpv6Host(b.hostIp) ? b.hostIp : undefined;
}

/** A host address as docker prints it: 0.0.0.0 for every address, IPv6 in brackets. */
export const formatHost = (ip: string) => (isIpv6Host(ip) ? `[${ip}]` : ip || "0.0.0.0");

/** docker's NetworkSettings.Ports: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}. */
export function dockerPorts(bindings: PortBinding[], exposed: string[] = []): Record<string, { HostIp: string; HostPort: string }[] | null> {
  const out: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
  for (const key of exposed) out[key] = null;
  for (const b of bindings) {
    const key = `${b.containerPort}/${b.proto}`;
    const list = out[key] ?? [];
    list.push({ HostIp: b.hostIp || "0.0.0.0", HostPort: String(b.hostPort) });
    out[key] = list;
  }
  return out;
}

/** `docker port` lines: "80/tcp -> 0.0.0.0:8080". */
export function portLines(bindings: PortBinding[], filter?: string): string[] {
  let list = bindings;
  if (filter) {
    const [port, proto] = filter.split("/");
    list = list.filter((b) => String(b.containerPort) === port && (!proto || proto === b.proto));
  }
  return list.map((b) => `${b.containerPort}/${b.proto} -> ${formatHost(b.hostIp)}:${b.hostPort}`);
}

/** docker's HostConfig.PortBindings ({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}) -> PortSpecs. */
export function portSpecsFromDocker(bindings: Record<string, { HostIp?: string; HostPort?: string }[] | null> | null | undefined): PortSpec[] {
  const out: PortSpec[] = [];
  for (const [key, list] of Object.entries(bindings ?? {})) {
    const [port, proto] = key.split("/");
    for (const b of list ?? [{}]) {
      const ip = b.HostIp && isIpv6Host(b.HostIp) ? `[${b.HostIp}]` : b.HostIp;
      const host = b.HostPort ? `${ip ? `${ip}:` : ""}${b.HostPort}:` : ip ? `${ip}::` : "";
      out.push(...parsePublish(`${host}${port}/${proto ?? "tcp"}`));
    }
  }
  return out;
}
