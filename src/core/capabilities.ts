// Linux capabilities: the name table (include/uapi/linux/capability.h), the masks the helper applies, and
// docker's --cap-add/--cap-drop rules. Names are always the "CAP_" form inside Berth.

import { BerthError, badInput } from "../errors.js";

/** Capability name -> bit number, in kernel order (CAP_LAST_CAP is 40 since Linux 5.9). */
export const CAPABILITIES: Readonly<Record<string, number>> = Object.freeze({
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_SETPCAP: 8,
  CAP_LINUX_IMMUTABLE: 9,
  CAP_NET_BIND_SERVICE: 10,
  CAP_NET_BROADCAST: 11,
  CAP_NET_ADMIN: 12,
  CAP_NET_RAW: 13,
  CAP_IPC_LOCK: 14,
  CAP_IPC_OWNER: 15,
  CAP_SYS_MODULE: 16,
  CAP_SYS_RAWIO: 17,
  CAP_SYS_CHROOT: 18,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_PACCT: 20,
  CAP_SYS_ADMIN: 21,
  CAP_SYS_BOOT: 22,
  CAP_SYS_NICE: 23,
  CAP_SYS_RESOURCE: 24,
  CAP_SYS_TIME: 25,
  CAP_SYS_TTY_CONFIG: 26,
  CAP_MKNOD: 27,
  CAP_LEASE: 28,
  CAP_AUDIT_WRITE: 29,
  CAP_AUDIT_CONTROL: 30,
  CAP_SETFCAP: 31,
  CAP_MAC_OVERRIDE: 32,
  CAP_MAC_ADMIN: 33,
  CAP_SYSLOG: 34,
  CAP_WAKE_ALARM: 35,
  CAP_BLOCK_SUSPEND: 36,
  CAP_AUDIT_READ: 37,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
  CAP_CHECKPOINT_RESTORE: 40,
});

/** The highest capability number Berth knows; the host's may be lower (/proc/sys/kernel/cap_last_cap). */
export const LAST_CAP = 40;

/** Every known capability, in number order. */
export const ALL_CAPABILITIES: readonly string[] = Object.freeze(
  Object.entries(CAPABILITIES)
    .sort((a, b) => a[1] - b[1])
    .map(([name]) => name),
);

/** Docker's default set for a non-privileged container (moby oci/caps/defaults.go), in docker's order. */
export const DOCKER_DEFAULT_CAPABILITIES: readonly string[] = Object.freeze([
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
]);

export function capabilityNumber(name: string): number | undefined {
  return Object.prototype.hasOwnProperty.call(CAPABILITIES, name) ? CAPABILITIES[name] : undefined;
}

/** The name of capability number `n`, or undefined past LAST_CAP. */
export function capabilityName(n: number): string | undefined {
  return ALL_CAPABILITIES[n];
}

/**
 * The bit mask of `names` (config.json form, "CAP_X"). `path` is the JSON path of the list, used in the
 * error: `process.capabilities.bounding[2]: unknown capability "CAP_TEST"`.
 */
export function capabilityMask(names: readonly string[], path: string): bigint {
  let mask = 0n;
  names.forEach((name, i) => {
    const n = capabilityNumber(name);
    if (n === undefined) throw new BerthError(`${path}[${i}]: unknown capability ${JSON.stringify(name)}`, { exitCode: 1 });
    mask |= 1n << BigInt(n);
  });
  return mask;
}

/** The names set in `mask`, in number order. */
export function capabilityNames(mask: bigint): string[] {
  return ALL_CAPABILITIES.filter((_, n) => (mask >> BigInt(n)) & 1n);
}

/**
 * Docker's spelling rules: case-insensitive, "CAP_" optional, "ALL" kept as is.
 * `normalizeCapName("net_admin")` is "CAP_NET_ADMIN". Throws (exit 125, as docker) on an unknown name.
 */
export function normalizeCapName(name: string): string {
  const upper = name.trim().toUpperCase();
  if (upper === "ALL") return "ALL";
  const full = upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
  if (capabilityNumber(full) === undefined) throw badInput(`unknown capability: ${JSON.stringify(full)}`);
  return full;
}

/**
 * docker run --cap-add/--cap-drop (moby TweakCapabilities): "ALL" in `add` gives every capability except
 * those dropped; otherwise "ALL" in `drop` gives exactly `add`; otherwise `base` minus `drop`, plus `add`.
 * `all` is the host's full set (defaults to every capability Berth knows). Result has no duplicates.
 */
export function applyCapChanges(
  base: readonly string[],
  add: readonly string[],
  drop: readonly string[],
  all: readonly string[] = ALL_CAPABILITIES,
): string[] {
  if (add.length === 0 && drop.length === 0) return [...base];
  const adds = add.map(normalizeCapName);
  const drops = drop.map(normalizeCapName);
  let caps: string[];
  if (adds.includes("ALL")) {
    caps = all.filter((c) => !drops.includes(c));
  } else if (drops.includes("ALL")) {
    caps = [...adds];
  } else {
    caps = base.filter((c) => !drops.includes(c)).concat(adds);
  }
  return [...new Set(caps)];
}
