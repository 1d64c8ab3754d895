// What docker gives a container unless told otherwise (moby oci/defaults.go), as OCI spec pieces.

import type { Device, DeviceCgroupRule, Mount, Spec } from "../oci/spec.js";

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export const DOCKER_MASKED_PATHS: readonly string[] = [
  "/proc/asound",
  "/proc/acpi",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
];

export const DOCKER_READONLY_PATHS: readonly string[] = [
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
];

export function dockerDefaultMounts(): Mount[] {
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["ro", "nosuid", "noexec", "nodev"] },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
  ];
}

/** The devices every container gets (runc's AllowedDevices minus the pty ones, which devpts provides). */
export const DEFAULT_DEVICES: readonly Required<Pick<Device, "type" | "path" | "major" | "minor" | "fileMode" | "uid" | "gid">>[] = [
  { type: "c", path: "/dev/null", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
  { type: "c", path: "/dev/zero", major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0 },
  { type: "c", path: "/dev/full", major: 1, minor: 7, fileMode: 0o666, uid: 0, gid: 0 },
  { type: "c", path: "/dev/random", major: 1, minor: 8, fileMode: 0o666, uid: 0, gid: 0 },
  { type: "c", path: "/dev/urandom", major: 1, minor: 9, fileMode: 0o666, uid: 0, gid: 0 },
  { type: "c", path: "/dev/tty", major: 5, minor: 0, fileMode: 0o666, uid: 0, gid: 0 },
];

/** Device cgroup rules docker allows by default (besides the default devices themselves). */
export const DEFAULT_DEVICE_RULES = [
  { allow: false, access: "rwm" },
  { allow: true, type: "c" as const, major: 1, minor: 3, access: "rwm" },
  { allow: true, type: "c" as const, major: 1, minor: 5, access: "rwm" },
  { allow: true, type: "c" as const, major: 1, minor: 7, access: "rwm" },
  { allow: true, type: "c" as const, major: 1, minor: 8, access: "rwm" },
  { allow: true, type: "c" as const, major: 1, minor: 9, access: "rwm" },
  { allow: true, type: "c" as const, major: 5, minor: 0, access: "rwm" },
  { allow: true, type: "c" as const, major: 5, minor: 1, access: "rwm" },
  { allow: true, type: "c" as const, major: 5, minor: 2, access: "rwm" },
  { allow: true, type: "c" as const, major: 136, minor: null, access: "rwm" },
  { allow: true, type: "c" as const, major: 10, minor: 200, access: "rwm" },
  { allow: false, type: "c" as const, major: 10, minor: 229, access: "rwm" },
  { allow: true, type: "c" as const, major: null, minor: null, access: "m" },
  { allow: true, type: "b" as const, major: null, minor: null, access: "m" },
];

/**
 * The device cgroup rules a container gets: the config's, then an allow rule for every device the
 * runtime creates (the defaults and linux.devices), as runc appends its AllowedDevices — otherwise a
 * config that denies all (runc spec's default) could not even mknod /dev/null.
 */
export function deviceCgroupRules(spec: Spec): DeviceCgroupRule[] {
  const created = [...DEFAULT_DEVICES, ...(spec.linux?.devices ?? [])];
  const pty = [
    { allow: true, type: "c" as const, major: 5, minor: 1, access: "rwm" },
    { allow: true, type: "c" as const, major: 5, minor: 2, access: "rwm" },
    { allow: true, type: "c" as const, major: 136, minor: null, access: "rwm" },
  ];
  return [
    ...(spec.linux?.resources?.devices ?? []),
    ...created
      .filter((d) => d.type === "c" || d.type === "b")
      .map((d) => ({ allow: true, type: d.type as "c" | "b", major: d.major ?? null, minor: d.minor ?? null, access: "rwm" })),
    ...pty,
  ];
}
