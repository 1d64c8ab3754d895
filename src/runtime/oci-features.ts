// `berth-oci features`: what this runtime supports, in runtime-spec features.md shape.

import { existsSync } from "node:fs";
import { ALL_CAPABILITIES } from "../core/capabilities.js";
import { knownMountOptions } from "../oci/mount-options.js";
import { SECCOMP_ACTIONS, SECCOMP_ARCHES, SECCOMP_FLAGS, SECCOMP_OPERATORS } from "../oci/validate.js";
import { readCgroupHost } from "../cgroups/index.js";

export function features(): Record<string, unknown> {
  const host = readCgroupHost();
  return {
    ociVersionMin: "1.0.0",
    ociVersionMax: "1.3.0",
    hooks: ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
    // idmap/ridmap are parsed but idmapped mounts are refused (src/core/container-plan.ts): not listed.
    mountOptions: knownMountOptions().filter((o) => o !== "idmap" && o !== "ridmap"),
    linux: {
      namespaces: ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
      capabilities: [...ALL_CAPABILITIES],
      cgroup: { v1: host.mode !== "v2", v2: host.mode === "v2", systemd: false, systemdUser: false, rdma: false },
      seccomp: {
        enabled: true,
        actions: SECCOMP_ACTIONS.filter((a) => a !== "SCMP_ACT_NOTIFY"),
        operators: [...SECCOMP_OPERATORS],
        archs: [...SECCOMP_ARCHES],
        knownFlags: [...SECCOMP_FLAGS],
        supportedFlags: [...SECCOMP_FLAGS],
      },
      apparmor: { enabled: existsSync("/sys/kernel/security/apparmor") },
      selinux: { enabled: existsSync("/sys/fs/selinux/enforce") },
      intelRdt: { enabled: false },
    },
    annotations: { "org.opencontainers.runc.version": "berth-oci" },
  };
}
