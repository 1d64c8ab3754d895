// Parsers for the resource flags of `run`: --memory, --memory-swap, --cpus, --cpuset-cpus/-mems.
// They follow docker's syntax (go-units RAMInBytes, NanoCPUs, cpuset lists) so scripts written for
// docker mean the same thing here. Range checks that need host facts are the caller's job.

import { BerthError } from "../errors.js";

const UNIT_MULTIPLIERS: Record<string, number> = {
  "": 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  p: 1024 ** 5,
};

// Same as go-units' sizeRegex: a decimal number, an optional space, an optional unit, an optional
// "i" (as in "MiB") and an optional "b". All units are binary.
const SIZE_PATTERN = /^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$/i;

/** Bytes for a docker-style size ("1024", "512b", "64k", "64mb", "1.5g"); throws on bad input. */
export function parseSize(text: string, flag: string): number {
  const match = SIZE_PATTERN.exec(text.trim());
  if (!match) {
    throw new BerthError(`invalid value "${text}" for ${flag}: expected a size such as 512m or 1g`);
  }
  const amount = Number(match[1]);
  const unit = (match[2] ?? "").toLowerCase();
  // go-units truncates toward zero: "1.5k" is 1536, "0.3b" is 0.
  const bytes = Math.trunc(amount * UNIT_MULTIPLIERS[unit]!);
  if (!Number.isSafeInteger(bytes)) {
    throw new BerthError(`invalid value "${text}" for ${flag}: the size is too large`);
  }
  return bytes;
}

/** --memory-swap: a size, or -1 for unlimited swap (returned as -1). */
export function parseMemorySwap(text: string, flag: string): number {
  if (text.trim() === "-1") return -1;
  return parseSize(text, flag);
}

export const CPU_PERIOD_US = 100_000;

/**
 * docker --cpus: a decimal number of CPUs turned into a CFS quota over a 100ms period. Like docker, at
 * most 9 decimal places (NanoCPUs). Whether it exceeds the host's CPUs is checked by the caller.
 */
export function parseCpus(text: string, flag: string): { quota: number; period: number } {
  const trimmed = text.trim();
  const match = /^(\d*)(?:\.(\d*))?$/.exec(trimmed);
  if (!match || trimmed === "" || trimmed === ".") {
    throw new BerthError(`invalid value "${text}" for ${flag}: expected a number of CPUs such as 1.5`);
  }
  const fraction = match[2] ?? "";
  if (fraction.replace(/0+$/, "").length > 9) {
    throw new BerthError(`invalid value "${text}" for ${flag}: too precise, use at most 9 decimal places`);
  }
  // Integer arithmetic in nano-CPUs avoids float rounding (0.1 * 100000 = 10000.000000000002).
  const nanoCpus = BigInt(match[1] || "0") * 1_000_000_000n + BigInt((fraction + "000000000").slice(0, 9));
  const quota = (nanoCpus * BigInt(CPU_PERIOD_US)) / 1_000_000_000n;
  if (quota > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new BerthError(`invalid value "${text}" for ${flag}: the number of CPUs is too large`);
  }
  return { quota: Number(quota), period: CPU_PERIOD_US };
}

/**
 * A cpuset list such as "0-1,3" (--cpuset-cpus, --cpuset-mems). Returns it without spaces, ready to
 * write to cpuset.cpus; throws naming the bad part.
 */
export function parseCpuset(text: string, flag: string): string {
  const compact = text.replace(/\s+/g, "");
  if (compact === "") {
    throw new BerthError(`invalid value "${text}" for ${flag}: expected a list such as 0-1,3`);
  }
  for (const part of compact.split(",")) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!match) {
      throw new BerthError(`invalid value "${text}" for ${flag}: "${part}" is not a number or a range such as 0-3`);
    }
    if (match[2] !== undefined && Number(match[2]) < Number(match[1])) {
      throw new BerthError(`invalid value "${text}" for ${flag}: the range "${part}" ends before it starts`);
    }
  }
  return compact;
}

const MAX_CPUSET_ID = 65536;

/** The numbers in a cpuset list ("0-2,5" -> [0, 1, 2, 5]), sorted and without duplicates. */
export function expandCpuset(list: string): number[] {
  const numbers = new Set<number>();
  for (const part of parseCpuset(list, "cpuset").split(",")) {
    const [low, high = low] = part.split("-").map(Number) as [number, number?];
    // Linux caps CPUs and NUMA nodes far below this; refuse before looping over a typo's range.
    if (high >= MAX_CPUSET_ID) throw new BerthError(`invalid cpuset "${list}": ${high} is beyond any CPU or node number`);
    for (let n = low; n <= high; n++) numbers.add(n);
  }
  return [...numbers].sort((a, b) => a - b);
}
