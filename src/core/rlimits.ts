// Resource limits: config.json's RLIMIT_* names, docker's --ulimit names, and the numbers setrlimit takes.
// The numbers are the generic Linux ones (include/uapi/asm-generic/resource.h), which x86_64 and aarch64
// both use (only alpha, mips, sparc and parisc differ).

import { badInput } from "../errors.js";

export const RLIMITS: Readonly<Record<string, number>> = Object.freeze({
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
});

/** RLIM_INFINITY: (rlim_t)-1. */
export const RLIM_INFINITY = (1n << 64n) - 1n;

/**
 * docker's --ulimit names (docker/go-units ulimit.go) -> config.json type. "as" is deliberately absent:
 * docker rejects it too ("doesn't seem usable with the way Docker inits a container").
 */
export const DOCKER_ULIMITS: Readonly<Record<string, string>> = Object.freeze({
  core: "RLIMIT_CORE",
  cpu: "RLIMIT_CPU",
  data: "RLIMIT_DATA",
  fsize: "RLIMIT_FSIZE",
  locks: "RLIMIT_LOCKS",
  memlock: "RLIMIT_MEMLOCK",
  msgqueue: "RLIMIT_MSGQUEUE",
  nice: "RLIMIT_NICE",
  nofile: "RLIMIT_NOFILE",
  nproc: "RLIMIT_NPROC",
  rss: "RLIMIT_RSS",
  rtprio: "RLIMIT_RTPRIO",
  rttime: "RLIMIT_RTTIME",
  sigpending: "RLIMIT_SIGPENDING",
  stack: "RLIMIT_STACK",
});

export function rlimitNumber(type: string): number | undefined {
  return Object.prototype.hasOwnProperty.call(RLIMITS, type) ? RLIMITS[type] : undefined;
}

/** docker ulimit name ("nofile") -> config.json type ("RLIMIT_NOFILE"), or undefined. */
export function ulimitType(name: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(DOCKER_ULIMITS, name) ? DOCKER_ULIMITS[name] : undefined;
}

/**
 * A config.json rlimit value (uint64, read by JSON.parse as a double) as setrlimit's rlim_t. Values at or
 * past 2^64-1 only survive as 2^64 after the double rounding, so they (and -1, which docker writes for
 * "unlimited") mean RLIM_INFINITY.
 */
export function rlimitValue(v: number): bigint {
  if (v === -1 || v >= 2 ** 64 - 1) return RLIM_INFINITY;
  return BigInt(Math.trunc(v));
}

/** What JSON.parse makes of 18446744073709551615 (RLIM_INFINITY in a config.json): 2^64. */
export const RLIM_INFINITY_NUMBER = 2 ** 64;

/**
 * docker's --ulimit syntax: `name=soft[:hard]` (hard defaults to soft; -1 means unlimited and becomes
 * RLIM_INFINITY_NUMBER). Returns the config.json rlimit. Messages follow go-units' ParseUlimit.
 */
export function parseUlimit(spec: string): { type: string; soft: number; hard: number } {
  const eq = spec.indexOf("=");
  if (eq < 0) throw badInput(`invalid ulimit argument: ${spec}`);
  const name = spec.slice(0, eq);
  const type = ulimitType(name);
  if (type === undefined) throw badInput(`invalid ulimit type: ${name}`);
  const parts = spec.slice(eq + 1).split(":");
  if (parts.length > 2) throw badInput(`too many limit value arguments - ${spec.slice(eq + 1)}, can only have up to two, \`soft[:hard]\``);
  const num = (s: string): number => {
    if (!/^(-1|\d+)$/.test(s)) throw badInput(`invalid ulimit value ${JSON.stringify(s)} in ${spec}`);
    return Number(s);
  };
  const soft = num(parts[0]);
  const hard = parts.length === 2 ? num(parts[1]) : soft;
  // -1 is unlimited, so compare as rlim_t would.
  if (rlimitValue(soft) > rlimitValue(hard)) {
    throw badInput(`ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`);
  }
  const unlimited = (v: number) => (v === -1 ? RLIM_INFINITY_NUMBER : v);
  return { type, soft: unlimited(soft), hard: unlimited(hard) };
}
