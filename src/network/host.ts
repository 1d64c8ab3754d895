// Facts about the host's network and the few kernel knobs Berth sets (effects, kept small).

import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { BerthError } from "../errors.js";
import { type Cidr, intToIp, parseCidr } from "./ipam.js";

/** Routes of the main table (IPv4) and the host's own addresses, as subnets a network must not overlap. */
export function hostTakenSubnets(): Cidr[] {
  const out: Cidr[] = [];
  try {
    const lines = readFileSync("/proc/net/route", "utf8").trim().split("\n").slice(1);
    for (const line of lines) {
      const f = line.trim().split(/\s+/);
      const dest = parseInt(f[1], 16);
      const maskBits = parseInt(f[7], 16);
      if (maskBits === 0) continue; // the default route collides with nothing
      // /proc/net/route is little-endian
      const swap = (n: number) => (((n & 0xff) << 24) | ((n & 0xff00) << 8) | ((n >>> 8) & 0xff00) | (n >>> 24)) >>> 0;
      const prefix = swap(maskBits).toString(2).replace(/0+$/, "").length;
      out.push(parseCidr(`${intToIp(swap(dest))}/${prefix}`, true));
    }
  } catch { /* no /proc/net/route: nothing known */ }
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) out.push(parseCidr(a.cidr ?? `${a.address}/32`, true));
  }
  return out;
}

/** The MTU of the interface that holds the default route (1500 if there is none). */
export function hostMtu(): number {
  try {
    const lines = readFileSync("/proc/net/route", "utf8").trim().split("\n").slice(1);
    const def = lines.map((l) => l.trim().split(/\s+/)).find((f) => f[1] === "00000000" && f[7] === "00000000");
    if (def) return Number(readFileSync(`/sys/class/net/${def[0]}/mtu`, "utf8").trim()) || 1500;
  } catch { /* fall through */ }
  return 1500;
}

export function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

export function readHostResolvConf(): string {
  try {
    return readFileSync("/etc/resolv.conf", "utf8");
  } catch {
    return "";
  }
}

export function writeSysctl(path: string, value: string): void {
  try {
    writeFileSync(`/proc/sys/${path}`, value);
  } catch (err) {
    throw new BerthError(`cannot set sysctl ${path.replaceAll("/", ".")}=${value}: ${(err as Error).message}`);
  }
}

/** Sets net.ipv4.ip_forward only when it is off (outbound NAT needs it). */
export function ensureIpForward(): void {
  try {
    if (readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim() === "1") return;
  } catch { /* try to set it */ }
  writeSysctl("net/ipv4/ip_forward", "1");
}

let nftChecked: boolean | undefined;

/** Runs `nft -f -` with `text` (one atomic transaction). */
export function runNft(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("nft", ["-f", "-"], { stdio: ["pipe", "ignore", "pipe"] });
    let err = "";
    child.stderr.setEncoding("utf8").on("data", (s: string) => { err += s; });
    child.on("error", (e) => {
      nftChecked = false;
      reject(new BerthError(`cannot run nft (${e.message}): install nftables (apt-get install nftables)`));
    });
    child.on("close", (code) => {
      if (code === 0) return resolve();
      const first = err.split("\n").find((l) => l.startsWith("Error") || l.includes("rror")) ?? err.trim().split("\n")[0] ?? "";
      reject(new BerthError(`nft failed (exit ${code}): ${first.trim()}`));
    });
    child.stdin.end(text);
  });
}

export function haveNft(): boolean {
  if (nftChecked === undefined) nftChecked = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].some((p) => existsSync(p));
  return nftChecked;
}
