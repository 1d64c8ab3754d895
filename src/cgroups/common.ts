// Helpers shared by the v1 and v2 controller functions: validation and "can the host do this" checks.
// Every refusal names the OCI field, the value and the reason, so a user knows what to drop or fix.

import { BerthError } from "../errors.js";
import type { CgroupWrite } from "./types.js";

export function write(dir: string, file: string, value: string | number): CgroupWrite {
  return { path: `${dir}/${file}`, value: String(value) };
}

/** Refuse a limit whose interface file the host's kernel lacks. `files` undefined = unknown, allowed. */
export function requireFile(files: Set<string> | undefined, file: string, what: string, why: string): void {
  if (files && !files.has(file)) {
    throw new BerthError(`cgroup: cannot apply ${what}: this host has no ${file} (${why}); remove the limit or run on a host that supports it`);
  }
}

export function cannotApply(what: string, why: string): BerthError {
  return new BerthError(`cgroup: cannot apply ${what}: ${why}`);
}

export function requireInteger(value: number, what: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min}..${max}`;
    throw new BerthError(`cgroup: invalid ${what}=${value}: must be an integer ${range}`);
  }
}

/** OCI byte limits: a positive count or -1 for unlimited. */
export function requireLimit(value: number, what: string): void {
  if (value !== -1) requireInteger(value, what, 1);
}

/** "2MB", "1GB", "64KB": the hugetlb file name form, which OCI pageSize uses as well. */
export function requirePageSize(pageSize: string): void {
  if (!/^[0-9]+[KMG]B$/.test(pageSize)) {
    throw new BerthError(`cgroup: invalid hugepageLimits pageSize "${pageSize}": expected a size like 2MB or 1GB`);
  }
}

/** cpuset lists such as "0-3,6". */
export function requireCpuList(value: string, what: string): void {
  if (!/^\s*$/.test(value) && !/^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$/.test(value.trim())) {
    throw new BerthError(`cgroup: invalid ${what} "${value}": expected a list like 0-3,6`);
  }
}
