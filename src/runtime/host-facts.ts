// Facts about this host that plans depend on, read once per process.

import { readFileSync } from "node:fs";
import { capabilityNames } from "../core/capabilities.js";
import type { HostFacts } from "../core/container-plan.js";

export interface RuntimeHostFacts extends HostFacts {
  /** Capabilities in our own bounding set: the most a container can be given. */
  runtimeCapabilities: string[];
}

let cached: RuntimeHostFacts | undefined;

export function readHostFacts(): RuntimeHostFacts {
  if (cached) return cached;
  const lastCap = Number(readFileSync("/proc/sys/kernel/cap_last_cap", "utf8").trim());
  const status = readFileSync("/proc/self/status", "utf8");
  const bnd = /^CapBnd:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? "0";
  cached = { lastCap, runtimeCapabilities: capabilityNames(BigInt("0x" + bnd)) };
  return cached;
}
