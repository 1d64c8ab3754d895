import { test } from "node:test";
import assert from "node:assert/strict";
import { buildRunSpec } from "../../src/core/run-spec.js";
import {
  checkDeviceEntry,
  checkNanoCpus,
  checkRlimitsRaisable,
  checkSysctls,
  devMajorMinor,
  parseDeviceFlag,
  parseNamespaceMode,
  parseSecurityOpts,
  ulimitRlimit,
} from "../../src/core/isolation.js";

const facts = { id: "0123456789abcdef", runtimeCapabilities: [], cpuCount: 2 };
const base = { rootfs: "/r", command: ["true"] };

test("ulimits become process.rlimits; a hard limit above the runtime's own is refused without CAP_SYS_RESOURCE", () => {
  const rl = ulimitRlimit({ Name: "nofile", Soft: 1024, Hard: 2048 });
  assert.deepEqual(rl, { type: "RLIMIT_NOFILE", soft: 1024, hard: 2048 });
  const own = { ...facts, ownRlimitsHard: { RLIMIT_NOFILE: 20000 }, canRaiseRlimits: false };
  assert.deepEqual(buildRunSpec({ ...base, rlimits: [rl] }, own).process?.rlimits, [rl]);
  assert.throws(() => buildRunSpec({ ...base, rlimits: [{ type: "RLIMIT_NOFILE", soft: 1, hard: 40000 }] }, own),
    /^BerthError: ulimit nofile: hard limit 40000 is above the daemon's own \(20000\), and without CAP_SYS_RESOURCE it cannot be raised$/);
  assert.doesNotThrow(() => checkRlimitsRaisable([{ type: "RLIMIT_NOFILE", hard: 40000 }], { RLIMIT_NOFILE: 20000 }, true));
  assert.throws(() => ulimitRlimit({ Name: "as", Soft: 1, Hard: 1 }), /invalid ulimit type: as/);
  assert.throws(() => ulimitRlimit({ Name: "nofile", Soft: 3, Hard: 2 }), /soft limit must be less than or equal to hard limit: 3 > 2/);
});

test("--shm-size sets /dev/shm's size; --ipc host binds the host's /dev/shm and refuses a size", () => {
  const shm = (o: object) => buildRunSpec({ ...base, ...o }, facts).mounts?.find((m) => m.destination === "/dev/shm");
  assert.ok(shm({ shmSize: 16 * 1024 * 1024 })?.options?.includes("size=16777216"));
  assert.equal(shm({})?.options?.includes("size=65536k"), true);
  assert.deepEqual(shm({ ipcMode: "host" }), { destination: "/dev/shm", type: "bind", source: "/dev/shm", options: ["rbind", "nosuid", "noexec", "nodev"] });
  assert.throws(() => shm({ ipcMode: "host", shmSize: 1 << 24 }), /--shm-size needs the container's own IPC namespace/);
});

test("namespace modes: host leaves the namespace out, a path joins it; --uts host refuses a hostname", () => {
  const types = (o: object) => buildRunSpec({ ...base, ...o }, facts).linux?.namespaces?.map((n) => (n.path ? `${n.type}=${n.path}` : n.type)).sort();
  assert.deepEqual(types({}), ["cgroup", "ipc", "mount", "network", "pid", "uts"]);
  assert.deepEqual(types({ pidMode: "host", ipcMode: "host", utsMode: "host", cgroupnsMode: "host" }), ["mount", "network"]);
  assert.deepEqual(types({ pidMode: { path: "/proc/42/ns/pid" } }), ["cgroup", "ipc", "mount", "network", "pid=/proc/42/ns/pid", "uts"]);
  const uts = buildRunSpec({ ...base, utsMode: "host" }, facts);
  assert.equal(uts.hostname, undefined);
  assert.throws(() => buildRunSpec({ ...base, utsMode: "host", hostname: "x" }, facts), /conflicting options: hostname and the UTS mode/);
  assert.throws(() => buildRunSpec({ ...base, utsMode: "host", domainname: "x.org" }, facts), /conflicting options: domainname/);
  assert.equal(buildRunSpec({ ...base, domainname: "x.org" }, facts).domainname, "x.org");
  assert.deepEqual(parseNamespaceMode("pid", "container:web"), { container: "web" });
  assert.equal(parseNamespaceMode("ipc", "shareable"), "private");
  assert.throws(() => parseNamespaceMode("ipc", "container:web"), /--ipc container:web is not supported/);
  assert.throws(() => parseNamespaceMode("uts", "container:web"), /invalid --uts mode "container:web"/);
});

test("sysctls: only namespaced ones, and only with the container's own namespace of that kind", () => {
  const spec = buildRunSpec({ ...base, sysctls: { "net.ipv4.ip_local_port_range": "20000 30000", "kernel.shmmax": "1000" } }, facts);
  assert.deepEqual(spec.linux?.sysctl, { "net.ipv4.ip_local_port_range": "20000 30000", "kernel.shmmax": "1000" });
  assert.throws(() => buildRunSpec({ ...base, network: "host", sysctls: { "net.ipv4.ip_forward": "1" } }, facts), /not allowed when the container does not have its own network namespace/);
  assert.throws(() => buildRunSpec({ ...base, networkShared: true, networkNamespacePath: "/proc/1/ns/net", sysctls: { "net.ipv4.ip_forward": "1" } }, facts), /own network namespace/);
  assert.throws(() => checkSysctls({ "kernel.shmmax": "1" }, { privateNet: true, privateIpc: false }), /shares an IPC namespace/);
  assert.throws(() => checkSysctls({ "kernel.hostname": "x" }, { privateNet: true, privateIpc: true }), /is not allowed: it is not namespaced/);
  assert.throws(() => checkSysctls({ "vm.swappiness": "1" }, { privateNet: true, privateIpc: true }), /not namespaced/);
  assert.throws(() => checkSysctls({ "net/../x": "1" }, { privateNet: true, privateIpc: true }), /invalid sysctl name/);
  assert.doesNotThrow(() => checkSysctls({ "fs.mqueue.msg_max": "10" }, { privateNet: false, privateIpc: true }));
});

test("--group-add adds gids (names from the image's /etc/group); devices get a node and a cgroup rule", () => {
  const spec = buildRunSpec({ ...base, groupAdd: ["123", "audio"] }, { ...facts, group: "root:x:0:\naudio:x:29:\n" });
  assert.deepEqual(spec.process?.user.additionalGids, [0, 123, 29]);
  assert.throws(() => buildRunSpec({ ...base, groupAdd: ["nope"] }, facts), /Unable to find group nope/);
  const fuse = { path: "/dev/fuse", type: "c" as const, major: 10, minor: 229, fileMode: 0o600, uid: 0, gid: 0 };
  const dev = buildRunSpec({ ...base, devices: [fuse] }, facts);
  assert.deepEqual(dev.linux?.devices, [fuse]);
  // After docker's default deny of 10:229 (fuse), so the allow wins.
  const rules = dev.linux?.resources?.devices ?? [];
  assert.deepEqual(rules.at(-1), { allow: true, type: "c", major: 10, minor: 229, access: "rwm" });
  assert.deepEqual(devMajorMinor((10 << 8) | 229), { major: 10, minor: 229 });
  assert.deepEqual(devMajorMinor(0x10304), { major: 259, minor: 4 });
  assert.deepEqual(devMajorMinor(0x12300845), { major: 8, minor: 0x12345 });
  assert.deepEqual(parseDeviceFlag("/dev/fuse"), { PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm" });
  assert.deepEqual(parseDeviceFlag("/dev/fuse:/dev/f:rwm"), { PathOnHost: "/dev/fuse", PathInContainer: "/dev/f", CgroupPermissions: "rwm" });
  assert.deepEqual(parseDeviceFlag("/dev/fuse:r"), { PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "r" });
  assert.throws(() => checkDeviceEntry({ PathOnHost: "/dev/fuse", CgroupPermissions: "r" }), /permissions "r" are not supported, only rwm/);
  assert.throws(() => checkDeviceEntry({ PathOnHost: "fuse" }), /must be absolute/);
});

test("memory reservation and OOM killer; --cpus against the host; --security-opt", () => {
  const r = buildRunSpec({ ...base, memory: 64 << 20, memoryReservation: 32 << 20, oomKillDisable: true }, facts).linux?.resources?.memory;
  assert.deepEqual(r, { limit: 64 << 20, reservation: 32 << 20, disableOOMKiller: true });
  assert.throws(() => buildRunSpec({ ...base, memory: 16 << 20, memoryReservation: 32 << 20 }, facts), /Minimum memory limit can not be less than memory reservation limit/);
  assert.throws(() => checkNanoCpus(99e9, 2), /^BerthError: Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available$/);
  assert.doesNotThrow(() => checkNanoCpus(1.5e9, 2));
  assert.throws(() => parseSecurityOpts(["bogus=1"]), /^BerthError: invalid --security-opt: "bogus=1"$/);
  assert.throws(() => parseSecurityOpts(["bogus"]), /invalid --security-opt: "bogus"/);
  assert.throws(() => parseSecurityOpts(["seccomp={}"]), /custom profiles are not supported/);
  assert.throws(() => parseSecurityOpts(["apparmor=docker-default"]), /does not apply AppArmor/);
  assert.deepEqual(parseSecurityOpts(["seccomp=unconfined", "no-new-privileges=false", "label=disable"]), { seccompUnconfined: true, noNewPrivileges: false, systemPathsUnconfined: false });
  assert.equal(buildRunSpec({ ...base, noNewPrivileges: false }, facts).process?.noNewPrivileges, false);
  assert.deepEqual(buildRunSpec({ ...base, systemPathsUnconfined: true }, facts).linux?.maskedPaths, []);
});
