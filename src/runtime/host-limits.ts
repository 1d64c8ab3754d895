// The runtime's own rlimits and capabilities, and host device nodes: the facts the daemon's checks of
// --ulimit and --device need (core/isolation.ts decides with them).

import { readFileSync, statSync } from "node:fs";
import { BerthError } from "../errors.js";
import { devMajorMinor, type HostDevice } from "../core/isolation.js";
import { RLIM_INFINITY_NUMBER } from "../core/rlimits.js";

/** /proc/self/limits' row names -> RLIMIT_* (fs/proc/base.c lnames). */
const LIMIT_ROWS: Record<string, string> = {
  "Max cpu time": "RLIMIT_CPU", "Max file size": "RLIMIT_FSIZE", "Max data size": "RLIMIT_DATA", "Max stack size": "RLIMIT_STACK",
  "Max core file size": "RLIMIT_CORE", "Max resident set": "RLIMIT_RSS", "Max processes": "RLIMIT_NPROC", "Max open files": "RLIMIT_NOFILE",
  "Max locked memory": "RLIMIT_MEMLOCK", "Max address space": "RLIMIT_AS", "Max file locks": "RLIMIT_LOCKS", "Max pending signals": "RLIMIT_SIGPENDING",
  "Max msgqueue size": "RLIMIT_MSGQUEUE", "Max nice priority": "RLIMIT_NICE", "Max realtime priority": "RLIMIT_RTPRIO", "Max realtime timeout": "RLIMIT_RTTIME",
};

/** Our hard limits, read now (they can change with prlimit). */
export function ownRlimitsHard(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync("/proc/self/limits", "utf8").split("\n").slice(1)) {
    const name = Object.keys(LIMIT_ROWS).find((n) => line.startsWith(n + " "));
    if (!name) continue;
    const fields = line.slice(name.length).trim().split(/\s+/);
    out[LIMIT_ROWS[name]] = fields[1] === "unlimited" ? RLIM_INFINITY_NUMBER : Number(fields[1]);
  }
  return out;
}

/** Whether we hold CAP_SYS_RESOURCE (bit 24) now, which lets setrlimit raise a hard limit. */
export function canRaiseRlimits(): boolean {
  const eff = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "0";
  return (BigInt("0x" + eff) & (1n << 24n)) !== 0n;
}

/** A host device node (--device) as the spec creates it in the container, with docker's errors. */
export function hostDevice(pathOnHost: string, pathInContainer: string): HostDevice {
  let st;
  try {
    st = statSync(pathOnHost);
  } catch (err) {
    throw new BerthError(`error gathering device information while adding custom device "${pathOnHost}": ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (err as Error).message}`);
  }
  if (!st.isCharacterDevice() && !st.isBlockDevice()) {
    throw new BerthError(`error gathering device information while adding custom device "${pathOnHost}": not a device node`);
  }
  const { major, minor } = devMajorMinor(st.rdev);
  return { path: pathInContainer, type: st.isCharacterDevice() ? "c" : "b", major, minor, fileMode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
}
