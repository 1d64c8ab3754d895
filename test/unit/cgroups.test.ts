import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BerthError } from "../../src/errors.js";
import {
  cgroupPids,
  cgroupStats,
  createCgroup,
  destroyCgroup,
  formatDeviceRule,
  freezeCgroup,
  oomKillCount,
  oomKilled,
  parseCgroupHost,
  planCgroup,
  planCgroupUpdate,
  resolveCgroupsPath,
  sharesToWeight,
  thawCgroup,
  updateCgroup,
  type CgroupFsHooks,
  type CgroupHost,
  type CgroupPlan,
  type V1Host,
  type V2Host,
} from "../../src/cgroups/index.js";

// ---- fixtures ----

// This machine (hybrid, memory nested under the sandbox's own cgroup), verbatim.
const MACHINE_CGROUP = `9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/cee584d3c972f3e4484317df417f1914
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
`;
const MACHINE_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

// A classic v1 host (Ubuntu 18.04 style): co-mounted cpu,cpuacct and net_cls,net_prio, no cgroup2.
const V1_CGROUP = `12:hugetlb:/
11:net_cls,net_prio:/
10:cpu,cpuacct:/user.slice
9:memory:/user.slice
8:pids:/user.slice/user-1000.slice
7:devices:/user.slice
6:cpuset:/
5:blkio:/user.slice
4:freezer:/
3:perf_event:/
1:name=systemd:/user.slice/user-1000.slice/session-2.scope
`;
const V1_MOUNTINFO = `24 0 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 24 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
32 25 0:29 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,devices
33 25 0:30 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,cpuset
34 25 0:31 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,blkio
35 25 0:32 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,freezer
36 25 0:33 / /sys/fs/cgroup/perf_event rw,nosuid,nodev,noexec,relatime shared:20 - cgroup cgroup rw,perf_event
37 25 0:34 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:21 - cgroup cgroup rw,net_cls,net_prio
38 25 0:35 / /sys/fs/cgroup/hugetlb rw,nosuid,nodev,noexec,relatime shared:22 - cgroup cgroup rw,hugetlb
`;

// Hybrid systemd host (Ubuntu 20.04 style): v1 controllers plus cgroup2 at /sys/fs/cgroup/unified.
const HYBRID_CGROUP = `5:memory:/system.slice/docker.service
4:cpu,cpuacct:/system.slice/docker.service
3:pids:/system.slice/docker.service
1:name=systemd:/system.slice/docker.service
0::/system.slice/docker.service
`;
const HYBRID_MOUNTINFO = `25 21 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
32 25 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
`;

// Inside a container: each hierarchy's subtree bind-mounted, so the mount root is not "/".
const NESTED_CGROUP = `4:memory:/docker/abc/sub
3:pids:/docker/abc
0::/docker/abc
`;
const NESTED_MOUNTINFO = `700 690 0:27 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
701 690 0:28 /docker/abc /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids
702 690 0:29 /docker/other /sys/fs/cgroup/other ro,nosuid - cgroup cgroup rw,pids
`;

// A unified (v2) systemd host.
const V2_CGROUP = "0::/user.slice/user-1000.slice/session-3.scope\n";
const V2_MOUNTINFO = `24 0 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;

const OWN_MEM = "/process_api/cee584d3c972f3e4484317df417f1914";

function machineHost(files: Record<string, string[]> = {}): V1Host {
  const host = parseCgroupHost(MACHINE_CGROUP, MACHINE_MOUNTINFO) as V1Host;
  return { ...host, hierarchies: host.hierarchies.map((h) => ({ ...h, files: files[h.controllers[0]] ? new Set(files[h.controllers[0]]) : undefined })) };
}

/** The files this machine really has in its own cgroup dirs (see /sys/fs/cgroup/<ctrl>/...). */
const MACHINE_FILES: Record<string, string[]> = {
  memory: ["memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.swappiness", "memory.oom_control", "memory.kmem.limit_in_bytes", "memory.kmem.tcp.limit_in_bytes"],
  cpu: ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_burst_us", "cpu.rt_period_us", "cpu.rt_runtime_us", "cpu.idle"],
  blkio: ["blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device", "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device"],
};

function v2Host(over: Partial<V2Host> = {}): V2Host {
  return {
    ...(parseCgroupHost(V2_CGROUP, V2_MOUNTINFO) as V2Host),
    controllers: ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma"],
    subtreeControl: ["cpu", "memory", "pids"],
    rootSubtreeControl: ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma"],
    ...over,
  };
}

const values = (plan: CgroupPlan) => plan.writes.map((w) => [w.path, w.copyFrom ? `<${w.copyFrom}` : w.value]);

function throwsBerth(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof BerthError && pattern.test(err.message));
}

// ---- host detection ----

test("this machine: hybrid, memory nested, named hierarchy and unified ignored", () => {
  const host = parseCgroupHost(MACHINE_CGROUP, MACHINE_MOUNTINFO);
  if (host.mode !== "hybrid") return assert.fail(`mode ${host.mode}`);
  assert.equal(host.unifiedMountPoint, "/sys/fs/cgroup/unified");
  assert.equal(host.unifiedOwnPath, "/");
  const byCtrl = Object.fromEntries(host.hierarchies.map((h) => [h.controllers.join(","), h]));
  assert.deepEqual(Object.keys(byCtrl).sort(), ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"]);
  assert.equal(byCtrl.memory.ownPath, OWN_MEM);
  assert.equal(byCtrl.memory.mountPoint, "/sys/fs/cgroup/memory");
  assert.equal(byCtrl.cpu.ownPath, "/");
});

test("classic v1: co-mounted hierarchies keep their controller lists", () => {
  const host = parseCgroupHost(V1_CGROUP, V1_MOUNTINFO);
  if (host.mode !== "v1") return assert.fail(`mode ${host.mode}`);
  const cpu = host.hierarchies.find((h) => h.controllers.includes("cpu"));
  assert.deepEqual(cpu?.controllers, ["cpu", "cpuacct"]);
  assert.equal(cpu?.mountPoint, "/sys/fs/cgroup/cpu,cpuacct");
  assert.equal(cpu?.ownPath, "/user.slice");
  assert.deepEqual(host.hierarchies.find((h) => h.controllers.includes("net_cls"))?.controllers, ["net_cls", "net_prio"]);
  assert.ok(!host.hierarchies.some((h) => h.controllers.some((c) => c.startsWith("name="))));
});

test("hybrid systemd host", () => {
  const host = parseCgroupHost(HYBRID_CGROUP, HYBRID_MOUNTINFO);
  if (host.mode !== "hybrid") return assert.fail(`mode ${host.mode}`);
  assert.equal(host.hierarchies.length, 3);
  assert.ok(host.hierarchies.every((h) => h.ownPath === "/system.slice/docker.service"));
  assert.equal(host.unifiedOwnPath, "/system.slice/docker.service");
});

test("mount root: our path is taken relative to the mounted subtree", () => {
  const host = parseCgroupHost(NESTED_CGROUP, NESTED_MOUNTINFO);
  assert.ok(host.mode !== "v2");
  const mem = host.hierarchies.find((h) => h.controllers.includes("memory"));
  const pids = host.hierarchies.find((h) => h.controllers.includes("pids"));
  assert.equal(mem?.ownPath, "/sub");
  assert.equal(mem?.mountRoot, "/docker/abc");
  // The /docker/other mount does not contain our cgroup and is not chosen.
  assert.equal(pids?.mountPoint, "/sys/fs/cgroup/pids");
  assert.equal(pids?.ownPath, "/");
  const plan = planCgroup(host, { name: "c1" });
  assert.ok(plan.dirs.includes("/sys/fs/cgroup/memory/sub/c1"));
  assert.ok(plan.dirs.includes("/sys/fs/cgroup/pids/c1"));
});

test("v2 host, mountinfo escapes, no cgroup at all", () => {
  const host = parseCgroupHost(V2_CGROUP, V2_MOUNTINFO);
  assert.equal(host.mode, "v2");
  assert.ok(host.mode === "v2");
  assert.equal(host.mountPoint, "/sys/fs/cgroup");
  assert.equal(host.ownPath, "/user.slice/user-1000.slice/session-3.scope");
  const escaped = parseCgroupHost("0::/a\n", "1 0 0:1 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n");
  assert.ok(escaped.mode === "v2");
  assert.equal(escaped.mountPoint, "/mnt/with space");
  throwsBerth(() => parseCgroupHost("0::/\n", "24 0 8:1 / / rw - ext4 /dev/sda1 rw\n"), /no cgroup filesystem/);
});

// ---- cgroupsPath ----

test("cgroupsPath forms", () => {
  assert.deepEqual(resolveCgroupsPath(undefined, "berth-1"), { absolute: false, segments: ["berth-1"] });
  assert.deepEqual(resolveCgroupsPath("/foo/bar", "x"), { absolute: true, segments: ["foo", "bar"] });
  assert.deepEqual(resolveCgroupsPath("foo/bar", "x"), { absolute: false, segments: ["foo", "bar"] });
  const sd = resolveCgroupsPath("machine-berth.slice:berth:abc", "x");
  assert.deepEqual(sd.segments, ["machine.slice", "machine-berth.slice", "berth-abc.scope"]);
  assert.equal(sd.absolute, true);
  assert.match(sd.note ?? "", /cgroupfs/);
  assert.deepEqual(resolveCgroupsPath(":docker:abc", "x").segments, ["system.slice", "docker-abc.scope"]);
  throwsBerth(() => resolveCgroupsPath("/foo/../bar", "x"), /invalid cgroupsPath/);
  throwsBerth(() => resolveCgroupsPath("/", "x"), /hierarchy root/);
  throwsBerth(() => resolveCgroupsPath(undefined, "a/b"), /cgroup name/);
  throwsBerth(() => resolveCgroupsPath("bad:berth:abc", "x"), /systemd slice/);
});

// ---- planner, v1 ----

test("v1 plan on this machine: under our own cgroup per hierarchy, pids and mounts", () => {
  const plan = planCgroup(machineHost(MACHINE_FILES), { name: "berth-1" });
  assert.equal(plan.mode, "hybrid");
  assert.ok(plan.dirs.includes(`/sys/fs/cgroup/memory${OWN_MEM}/berth-1`));
  assert.ok(plan.dirs.includes("/sys/fs/cgroup/cpu/berth-1"));
  assert.equal(plan.dirs.length, 8);
  assert.deepEqual(plan.leaves, plan.dirs);
  assert.equal(plan.procsFiles.length, 8);
  assert.ok(plan.procsFiles.includes(`/sys/fs/cgroup/memory${OWN_MEM}/berth-1/cgroup.procs`));
  assert.deepEqual(plan.mounts.find((m) => m.destination === "/sys/fs/cgroup/memory"), {
    source: `/sys/fs/cgroup/memory${OWN_MEM}/berth-1`,
    destination: "/sys/fs/cgroup/memory",
  });
  assert.deepEqual(plan.symlinks, []);
  assert.equal(plan.primaryPath, `/sys/fs/cgroup/memory${OWN_MEM}/berth-1`);
  // No resources: only the cpuset initialisation, copied from the parent.
  assert.deepEqual(values(plan), [
    ["/sys/fs/cgroup/cpuset/berth-1/cpuset.cpus", "</sys/fs/cgroup/cpuset/cpuset.cpus"],
    ["/sys/fs/cgroup/cpuset/berth-1/cpuset.mems", "</sys/fs/cgroup/cpuset/cpuset.mems"],
  ]);
});

test("v1 plan: co-mounted hierarchies get symlinks, absolute path creates intermediates, cpuset chain", () => {
  const host = parseCgroupHost(V1_CGROUP, V1_MOUNTINFO);
  const plan = planCgroup(host, { name: "x", cgroupsPath: "/berth/c1", resources: { cpu: { cpus: "0-1" } } });
  assert.ok(plan.dirs.indexOf("/sys/fs/cgroup/memory/berth") < plan.dirs.indexOf("/sys/fs/cgroup/memory/berth/c1"));
  assert.ok(plan.leaves.includes("/sys/fs/cgroup/cpu,cpuacct/berth/c1"));
  assert.ok(!plan.leaves.includes("/sys/fs/cgroup/memory/berth"));
  assert.deepEqual(plan.mounts.find((m) => m.destination === "/sys/fs/cgroup/cpu,cpuacct")?.source, "/sys/fs/cgroup/cpu,cpuacct/berth/c1");
  assert.deepEqual([...plan.symlinks].sort((a, b) => a.path.localeCompare(b.path)), [
    { target: "cpu,cpuacct", path: "/sys/fs/cgroup/cpu" },
    { target: "cpu,cpuacct", path: "/sys/fs/cgroup/cpuacct" },
    { target: "net_cls,net_prio", path: "/sys/fs/cgroup/net_cls" },
    { target: "net_cls,net_prio", path: "/sys/fs/cgroup/net_prio" },
  ]);
  assert.equal(plan.paths.cpuacct, "/sys/fs/cgroup/cpu,cpuacct/berth/c1");
  assert.deepEqual(values(plan), [
    ["/sys/fs/cgroup/cpuset/berth/cpuset.cpus", "</sys/fs/cgroup/cpuset/cpuset.cpus"],
    ["/sys/fs/cgroup/cpuset/berth/cpuset.mems", "</sys/fs/cgroup/cpuset/cpuset.mems"],
    ["/sys/fs/cgroup/cpuset/berth/c1/cpuset.cpus", "0-1"],
    ["/sys/fs/cgroup/cpuset/berth/c1/cpuset.mems", "</sys/fs/cgroup/cpuset/berth/cpuset.mems"],
  ]);
  // Relative: below our own cgroup in each hierarchy.
  const rel = planCgroup(host, { name: "x", cgroupsPath: "pod/c1" });
  assert.ok(rel.leaves.includes("/sys/fs/cgroup/memory/user.slice/pod/c1"));
  assert.ok(rel.leaves.includes("/sys/fs/cgroup/cpuset/pod/c1"));
  // systemd form is a plain path from the root, with a note.
  const sd = planCgroup(host, { name: "x", cgroupsPath: "system.slice:berth:c1" });
  assert.ok(sd.leaves.includes("/sys/fs/cgroup/memory/system.slice/berth-c1.scope"));
  assert.match(sd.notes.join(), /cgroupfs driver/);
});

test("v1 memory: limit, reservation, swap, swappiness, OOM killer", () => {
  const plan = planCgroup(machineHost(MACHINE_FILES), {
    name: "m",
    resources: { memory: { limit: 1000000, reservation: 500000, swap: 2000000, swappiness: 10, disableOOMKiller: true } },
  });
  const d = `/sys/fs/cgroup/memory${OWN_MEM}/m`;
  assert.deepEqual(values(plan).filter(([p]) => p.startsWith(d)), [
    [`${d}/memory.limit_in_bytes`, "1000000"],
    [`${d}/memory.memsw.limit_in_bytes`, "2000000"],
    [`${d}/memory.soft_limit_in_bytes`, "500000"],
    [`${d}/memory.swappiness`, "10"],
    [`${d}/memory.oom_control`, "1"],
  ]);
  // Unlimited memory: memsw must be raised first or the kernel refuses the limit.
  const unl = planCgroup(machineHost(MACHINE_FILES), { name: "m", resources: { memory: { limit: -1 } } });
  assert.deepEqual(values(unl).filter(([p]) => p.startsWith(d)), [
    [`${d}/memory.memsw.limit_in_bytes`, "-1"],
    [`${d}/memory.limit_in_bytes`, "-1"],
  ]);
});

test("v1 memory update: memsw first when raising, limit first when lowering", () => {
  const host = machineHost(MACHINE_FILES);
  const plan = planCgroup(host, { name: "m" });
  const d = `/sys/fs/cgroup/memory${OWN_MEM}/m`;
  const up = planCgroupUpdate(host, plan, { memory: { limit: 4000, swap: 8000 } }, { memoryLimit: 1000 });
  assert.deepEqual(up.writes.map((w) => w.path), [`${d}/memory.memsw.limit_in_bytes`, `${d}/memory.limit_in_bytes`]);
  const down = planCgroupUpdate(host, plan, { memory: { limit: 500, swap: 800 } }, { memoryLimit: 1000 });
  assert.deepEqual(down.writes.map((w) => w.path), [`${d}/memory.limit_in_bytes`, `${d}/memory.memsw.limit_in_bytes`]);
  const cpus = planCgroupUpdate(host, plan, { cpu: { cpus: "1" } });
  assert.deepEqual(cpus.writes, [{ path: "/sys/fs/cgroup/cpuset/m/cpuset.cpus", value: "1" }]);
});

test("v1 memory: limits the host cannot apply are refused, never skipped", () => {
  const noMemsw = machineHost({ ...MACHINE_FILES, memory: ["memory.limit_in_bytes"] });
  throwsBerth(() => planCgroup(noMemsw, { name: "m", resources: { memory: { limit: 100, swap: 200 } } }), /memory\.swap=200.*memory\.memsw\.limit_in_bytes.*swapaccount/);
  throwsBerth(() => planCgroup(noMemsw, { name: "m", resources: { memory: { swappiness: 10 } } }), /memory\.swappiness/);
  throwsBerth(() => planCgroup(noMemsw, { name: "m", resources: { memory: { disableOOMKiller: true } } }), /oom_control/);
  const host = machineHost(MACHINE_FILES);
  throwsBerth(() => planCgroup(host, { name: "m", resources: { memory: { limit: 300, swap: 200 } } }), /must be >= memory\.limit/);
  throwsBerth(() => planCgroup(host, { name: "m", resources: { memory: { swap: 200 } } }), /needs a memory\.limit/);
  throwsBerth(() => planCgroup(host, { name: "m", resources: { memory: { swappiness: 101 } } }), /swappiness=101/);
  // Memory hierarchy missing entirely.
  const noMemory: V1Host = { ...host, hierarchies: host.hierarchies.filter((h) => !h.controllers.includes("memory")) };
  throwsBerth(() => planCgroup(noMemory, { name: "m", resources: { memory: { limit: 100 } } }), /memory limits: no v1 memory hierarchy/);
});

test("v1 cpu: shares, period before quota, realtime, burst", () => {
  const plan = planCgroup(machineHost(MACHINE_FILES), {
    name: "c",
    resources: { cpu: { shares: 512, quota: 50000, period: 100000, realtimePeriod: 1000000, realtimeRuntime: 950000, burst: 1000 } },
  });
  const d = "/sys/fs/cgroup/cpu/c";
  assert.deepEqual(values(plan).filter(([p]) => p.startsWith(d)), [
    [`${d}/cpu.shares`, "512"],
    [`${d}/cpu.cfs_period_us`, "100000"],
    [`${d}/cpu.cfs_quota_us`, "50000"],
    [`${d}/cpu.cfs_burst_us`, "1000"],
    [`${d}/cpu.rt_period_us`, "1000000"],
    [`${d}/cpu.rt_runtime_us`, "950000"],
  ]);
  const noRt = machineHost({ ...MACHINE_FILES, cpu: ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"] });
  throwsBerth(() => planCgroup(noRt, { name: "c", resources: { cpu: { realtimeRuntime: 1000 } } }), /realtimeRuntime.*RT_GROUP_SCHED/);
  throwsBerth(() => planCgroup(noRt, { name: "c", resources: { cpu: { shares: 1 } } }), /cpu\.shares=1/);
});

test("v1 pids and devices", () => {
  const host = machineHost(MACHINE_FILES);
  const pidsOf = (limit: number) => values(planCgroup(host, { name: "p", resources: { pids: { limit } } })).filter(([p]) => p.includes("/pids/"));
  assert.deepEqual(pidsOf(100), [["/sys/fs/cgroup/pids/p/pids.max", "100"]]);
  assert.deepEqual(pidsOf(0), [["/sys/fs/cgroup/pids/p/pids.max", "max"]]);
  assert.deepEqual(pidsOf(-1), [["/sys/fs/cgroup/pids/p/pids.max", "max"]]);

  const plan = planCgroup(host, {
    name: "d",
    resources: {
      devices: [
        { allow: false, access: "rwm" },
        { allow: true, type: "c", major: 1, minor: 3, access: "rwm" },
        { allow: true, type: "c", major: 136, minor: null, access: "rw" },
        { allow: false, type: "b", major: 8, minor: 0, access: "m" },
      ],
    },
  });
  const d = "/sys/fs/cgroup/devices/d";
  assert.deepEqual(values(plan).filter(([p]) => p.startsWith(d)), [
    [`${d}/devices.deny`, "a"],
    [`${d}/devices.deny`, "a *:* rwm"],
    [`${d}/devices.allow`, "c 1:3 rwm"],
    [`${d}/devices.allow`, "c 136:* rw"],
    [`${d}/devices.deny`, "b 8:0 m"],
  ]);
  throwsBerth(() => formatDeviceRule({ allow: true, type: "c", access: "rwx" }), /access "rwx"/);
  throwsBerth(() => formatDeviceRule({ allow: true, type: "c", major: -5 }), /major/);
});

test("v1 blkio, hugetlb, net_cls/net_prio, rdma, unified", () => {
  const machine = machineHost(MACHINE_FILES);
  // This machine has no blkio weight files and no v1 hugetlb / net_cls hierarchy.
  throwsBerth(() => planCgroup(machine, { name: "b", resources: { blockIO: { weight: 500 } } }), /blockIO\.weight=500.*blkio\.weight/);
  throwsBerth(() => planCgroup(machine, { name: "b", resources: { hugepageLimits: [{ pageSize: "2MB", limit: 1 << 21 }] } }), /hugepageLimits.*hybrid/);
  throwsBerth(() => planCgroup(machine, { name: "b", resources: { network: { classID: 1 } } }), /network\.classID.*net_cls/);
  throwsBerth(() => planCgroup(machine, { name: "b", resources: { unified: { "memory.high": "1" } } }), /unified/);
  const throttle = planCgroup(machine, { name: "b", resources: { blockIO: { throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }] } } });
  assert.deepEqual(values(throttle).filter(([p]) => p.includes("/blkio/")), [["/sys/fs/cgroup/blkio/b/blkio.throttle.read_bps_device", "8:0 1048576"]]);

  const v1 = parseCgroupHost(V1_CGROUP, V1_MOUNTINFO) as V1Host;
  const withFiles: V1Host = {
    ...v1,
    hierarchies: v1.hierarchies.map((h) => (h.controllers.includes("blkio") ? { ...h, files: new Set(["blkio.bfq.weight", "blkio.bfq.weight_device"]) } : h)),
  };
  const plan = planCgroup(withFiles, {
    name: "b",
    resources: {
      blockIO: { weight: 300, weightDevice: [{ major: 8, minor: 0, weight: 200 }] },
      hugepageLimits: [{ pageSize: "2MB", limit: 4194304 }],
      network: { classID: 0x100001, priorities: [{ name: "eth0", priority: 5 }] },
    },
  });
  const w = values(plan).filter(([p]) => !p.includes("/cpuset/"));
  assert.deepEqual(w, [
    ["/sys/fs/cgroup/blkio/user.slice/b/blkio.bfq.weight", "300"],
    ["/sys/fs/cgroup/blkio/user.slice/b/blkio.bfq.weight_device", "8:0 200"],
    ["/sys/fs/cgroup/hugetlb/b/hugetlb.2MB.limit_in_bytes", "4194304"],
    ["/sys/fs/cgroup/net_cls,net_prio/b/net_cls.classid", "1048577"],
    ["/sys/fs/cgroup/net_cls,net_prio/b/net_prio.ifpriomap", "eth0 5"],
  ]);
  throwsBerth(() => planCgroup(v1, { name: "b", resources: { hugepageLimits: [{ pageSize: "2M", limit: 1 }] } }), /pageSize "2M"/);
  throwsBerth(() => planCgroup(v1, { name: "b", resources: { rdma: { mlx5_0: { hcaHandles: 2 } } } }), /rdma limits: no v1 rdma hierarchy/);
});

// ---- planner, v2 ----

test("v2 plan: leaf under own cgroup, one mount, every controller", () => {
  const plan = planCgroup(v2Host({ subtreeControl: ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma"] }), {
    name: "c",
    resources: {
      memory: { limit: 1000, reservation: 500, swap: 3000 },
      cpu: { shares: 1024, quota: 50000, period: 100000, cpus: "0", mems: "0" },
      pids: { limit: 0 },
      blockIO: { weight: 500, throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 100 }] },
      hugepageLimits: [{ pageSize: "2MB", limit: 2097152 }],
      unified: { "memory.high": "900" },
    },
  });
  const d = "/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope/c";
  assert.deepEqual(plan.dirs, [d]);
  assert.deepEqual(plan.procsFiles, [`${d}/cgroup.procs`]);
  assert.deepEqual(plan.mounts, [{ source: d, destination: "/sys/fs/cgroup" }]);
  assert.equal(plan.primaryPath, d);
  assert.deepEqual(values(plan), [
    [`${d}/memory.swap.max`, "2000"],
    [`${d}/memory.max`, "1000"],
    [`${d}/memory.low`, "500"],
    [`${d}/cpu.weight`, "39"],
    [`${d}/cpu.max`, "50000 100000"],
    [`${d}/cpuset.cpus`, "0"],
    [`${d}/cpuset.mems`, "0"],
    [`${d}/pids.max`, "max"],
    [`${d}/io.weight`, "default 4950"],
    [`${d}/io.max`, "8:0 wiops=100"],
    [`${d}/hugetlb.2MB.max`, "2097152"],
    [`${d}/memory.high`, "900"],
  ]);
  assert.equal(sharesToWeight(2), 1);
  assert.equal(sharesToWeight(262144), 10000);
  const unlimited = planCgroup(v2Host(), { name: "c", resources: { memory: { limit: -1, swap: -1 }, cpu: { quota: -1, period: 50000 } } });
  assert.deepEqual(values(unlimited).map(([p, v]) => [p.slice(d.length + 1), v]), [
    ["memory.swap.max", "max"],
    ["memory.max", "max"],
    ["cpu.max", "max 50000"],
  ]);
});

test("v2 plan: absolute path enables controllers in the dirs Berth creates", () => {
  const plan = planCgroup(v2Host(), { name: "x", cgroupsPath: "/berth/c1", resources: { memory: { limit: 1000 } } });
  assert.deepEqual(plan.dirs, ["/sys/fs/cgroup/berth", "/sys/fs/cgroup/berth/c1"]);
  assert.deepEqual(values(plan), [
    ["/sys/fs/cgroup/berth/cgroup.subtree_control", "+cpuset +cpu +io +memory +hugetlb +pids +rdma"],
    ["/sys/fs/cgroup/berth/c1/memory.max", "1000"],
  ]);
});

test("v2 plan: unavailable controllers and limits are refused", () => {
  const host = v2Host();
  throwsBerth(() => planCgroup(host, { name: "c", resources: { blockIO: { weight: 100 } } }), /io controller is not enabled.*subtree_control/);
  throwsBerth(
    () => planCgroup(v2Host({ controllers: ["memory", "pids"], subtreeControl: undefined }), { name: "c", resources: { cpu: { shares: 100 } } }),
    /cpu controller is not available/,
  );
  throwsBerth(
    () => planCgroup(v2Host({ files: new Set(["memory.max", "memory.low"]) }), { name: "c", resources: { memory: { limit: 100, swap: 200 } } }),
    /memory\.swap=200.*memory\.swap\.max/,
  );
  throwsBerth(() => planCgroup(host, { name: "c", resources: { memory: { kernel: 1000 } } }), /memory\.kernel/);
  throwsBerth(() => planCgroup(host, { name: "c", resources: { memory: { swappiness: 10 } } }), /swappiness/);
  throwsBerth(() => planCgroup(host, { name: "c", resources: { memory: { disableOOMKiller: true } } }), /OOM killer/);
  throwsBerth(() => planCgroup(host, { name: "c", resources: { cpu: { realtimeRuntime: 100 } } }), /real-time/);
  throwsBerth(() => planCgroup(host, { name: "c", resources: { network: { classID: 1 } } }), /net_cls/);
  throwsBerth(() => planCgroup(host, { name: "c", resources: { unified: { "cgroup.procs": "1" } } }), /managed by the runtime/);
  throwsBerth(() => planCgroup(host, { name: "c", resources: { unified: { "../x": "1" } } }), /invalid unified key/);
});

test("v2 plan: device rules become an eBPF device filter on the leaf, not dropped; bad rules are refused", () => {
  const rules = [{ allow: false, access: "rwm" }, { allow: true, type: "c" as const, major: 1, minor: 3, access: "rwm" }];
  const plan = planCgroup(v2Host(), { name: "c", resources: { devices: rules } });
  assert.deepEqual(plan.deviceFilter, { cgroup: plan.primaryPath, rules });
  assert.equal(planCgroup(v2Host(), { name: "c", resources: {} }).deviceFilter, undefined);
  throwsBerth(() => planCgroup(v2Host(), { name: "c", resources: { devices: [{ allow: true, access: "rx" }] } }), /devices\[0\]\.access "rx"/);
  // Hybrid hosts keep the v1 devices controller and no filter.
  const hybrid = planCgroup(parseCgroupHost(MACHINE_CGROUP, MACHINE_MOUNTINFO), { name: "c", resources: { devices: rules } });
  assert.equal(hybrid.deviceFilter, undefined);
  assert.ok(hybrid.writes.some((w) => w.path.endsWith("/devices.deny")));
});

test("v2 update: device rules come back as the filter to attach in place of the old one; v1 writes them", () => {
  const rules = [{ allow: false, access: "rwm" }, { allow: true, type: "c" as const, major: 1, minor: 5, access: "r" }];
  const plan = planCgroup(v2Host(), { name: "c", resources: {} });
  const up = planCgroupUpdate(v2Host(), plan, { devices: rules, pids: { limit: 5 } });
  assert.deepEqual(up.deviceFilter, { cgroup: plan.primaryPath, rules });
  assert.deepEqual(up.writes.map((w) => w.path), [`${plan.primaryPath}/pids.max`]);
  assert.equal(planCgroupUpdate(v2Host(), plan, { pids: { limit: 5 } }).deviceFilter, undefined);
  throwsBerth(() => planCgroupUpdate(v2Host(), plan, { devices: [{ allow: true, access: "x" }] }), /access "x"/);
  const machine = parseCgroupHost(MACHINE_CGROUP, MACHINE_MOUNTINFO);
  const v1 = planCgroupUpdate(machine, planCgroup(machine, { name: "c", resources: {} }), { devices: rules });
  assert.equal(v1.deviceFilter, undefined);
  assert.deepEqual(v1.writes.map((w) => `${w.path.split("/").pop()} ${w.value}`), ["devices.deny a", "devices.deny a *:* rwm", "devices.allow c 1:5 r"]);
});

// ---- effects against a temp dir standing in for /sys/fs/cgroup ----

const V1_FILES: Record<string, Record<string, string>> = {
  memory: { "memory.limit_in_bytes": "9223372036854771712", "memory.memsw.limit_in_bytes": "", "memory.usage_in_bytes": "4096", "memory.max_usage_in_bytes": "8192", "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", "memory.stat": "total_inactive_file 1024\n" },
  cpu: { "cpu.shares": "", "cpu.cfs_period_us": "", "cpu.cfs_quota_us": "" },
  cpuacct: { "cpuacct.usage": "123456" },
  cpuset: { "cpuset.cpus": "", "cpuset.mems": "" },
  pids: { "pids.max": "", "pids.current": "1" },
  freezer: { "freezer.state": "THAWED" },
};

/** A fake v1 tree: hierarchies with our own cgroup (memory nested, as on this machine). */
function fakeV1(): { root: string; host: V1Host; hooks: CgroupFsHooks; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), "berth-cg-"));
  const hierarchies = Object.keys(V1_FILES).map((c) => {
    const ownPath = c === "memory" ? "/own/sandbox" : "/";
    const ownDir = join(root, c, ownPath);
    mkdirSync(ownDir, { recursive: true });
    writeFileSync(join(root, c, "cgroup.procs"), "");
    if (c === "cpuset") {
      writeFileSync(join(ownDir, "cpuset.cpus"), "0-3\n");
      writeFileSync(join(ownDir, "cpuset.mems"), "0\n");
    }
    return { controllers: [c], mountPoint: join(root, c), mountRoot: "/", ownPath, files: new Set([...Object.keys(V1_FILES[c]), "cgroup.procs"]) };
  });
  const controllerOf = (dir: string) => dir.slice(root.length + 1).split("/")[0];
  const hooks: CgroupFsHooks = {
    // What the kernel does on mkdir: the new cgroup comes with its interface files.
    afterMkdir: (dir) => {
      writeFileSync(join(dir, "cgroup.procs"), "");
      for (const [f, v] of Object.entries(V1_FILES[controllerOf(dir)] ?? {})) writeFileSync(join(dir, f), v);
    },
    beforeRmdir: (dir) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isFile()) rmSync(join(dir, e.name));
    },
  };
  return { root, host: { mode: "v1", hierarchies }, hooks, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

const read = (p: string) => readFileSync(p, "utf8").trim();

test("createCgroup/destroyCgroup on a fake v1 tree: files written, cpuset copied, all removed", async () => {
  const { root, host, hooks, cleanup } = fakeV1();
  try {
    const plan = planCgroup(host, { name: "berth-1", resources: { memory: { limit: 1048576, swap: 2097152 }, cpu: { shares: 512, quota: 20000, period: 100000 }, pids: { limit: 10 } } });
    const made = createCgroup(plan, hooks);
    assert.deepEqual(made.dirs, plan.dirs);
    const mem = join(root, "memory/own/sandbox/berth-1");
    assert.equal(read(`${mem}/memory.limit_in_bytes`), "1048576");
    assert.equal(read(`${mem}/memory.memsw.limit_in_bytes`), "2097152");
    assert.equal(read(join(root, "cpu/berth-1/cpu.cfs_quota_us")), "20000");
    assert.equal(read(join(root, "cpu/berth-1/cpu.shares")), "512");
    assert.equal(read(join(root, "pids/berth-1/pids.max")), "10");
    assert.equal(read(join(root, "cpuset/berth-1/cpuset.cpus")), "0-3");
    assert.equal(read(join(root, "cpuset/berth-1/cpuset.mems")), "0");

    // Stats, pids, OOM, freeze read the same files.
    assert.deepEqual(cgroupStats(made).memory?.usage, 4096);
    assert.equal(cgroupStats(made).memory?.limit, 1048576);
    assert.equal(cgroupStats(made).memory?.inactiveFile, 1024);
    assert.equal(cgroupStats(made).cpu?.usageNs, 123456);
    assert.deepEqual(cgroupStats(made).pids, { current: 1, limit: 10 });
    assert.deepEqual(cgroupPids(made), []);
    assert.equal(oomKilled(made), false);
    assert.equal(oomKillCount(made), 0);
    writeFileSync(`${mem}/memory.oom_control`, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
    assert.equal(oomKilled(made), true);
    assert.equal(oomKillCount(made), 2, "the counter itself: berth-oci events reports each increase");
    await freezeCgroup(made);
    assert.equal(read(join(root, "freezer/berth-1/freezer.state")), "FROZEN");
    await thawCgroup(made);
    assert.equal(read(join(root, "freezer/berth-1/freezer.state")), "THAWED");

    // The leaf exists now: creating it again is refused and leaves it alone.
    throwsBerth(() => createCgroup(plan, hooks), /already exists/);
    assert.ok(existsSync(mem));

    await destroyCgroup(made, { hooks });
    for (const d of plan.dirs) assert.ok(!existsSync(d), `${d} removed`);
    assert.ok(existsSync(join(root, "memory/own/sandbox")), "our own cgroup stays");
    await destroyCgroup(made, { hooks }); // idempotent
  } finally {
    cleanup();
  }
});

test("createCgroup rolls back and names the file when a write fails", () => {
  const { root, host, hooks, cleanup } = fakeV1();
  try {
    // Without file facts the planner cannot know the fake kernel lacks cpu.rt_runtime_us: the write fails.
    const unknown: V1Host = { ...host, hierarchies: host.hierarchies.map((h) => ({ ...h, files: undefined })) };
    const plan = planCgroup(unknown, { name: "berth-2", resources: { cpu: { realtimeRuntime: 1000 } } });
    assert.throws(() => createCgroup(plan, hooks), (err: unknown) => err instanceof BerthError && /cgroup: write .*cpu\/berth-2\/cpu\.rt_runtime_us=1000: ENOENT/.test(err.message));
    for (const d of plan.dirs) assert.ok(!existsSync(d), `${d} rolled back`);
    assert.ok(existsSync(join(root, "cpu")));
  } finally {
    cleanup();
  }
});

test("createCgroup: pre-existing intermediate dirs are used but never written or removed", async () => {
  const { root, host, hooks, cleanup } = fakeV1();
  try {
    mkdirSync(join(root, "cpuset/pod"));
    writeFileSync(join(root, "cpuset/pod/cpuset.cpus"), "1\n");
    writeFileSync(join(root, "cpuset/pod/cpuset.mems"), "0\n");
    const plan = planCgroup(host, { name: "x", cgroupsPath: "/pod/c1" });
    const made = createCgroup(plan, hooks);
    assert.ok(!made.dirs.includes(join(root, "cpuset/pod")));
    assert.ok(made.dirs.includes(join(root, "memory/pod")));
    assert.equal(read(join(root, "cpuset/pod/cpuset.cpus")), "1");
    assert.equal(read(join(root, "cpuset/pod/c1/cpuset.cpus")), "1");
    await destroyCgroup(made, { hooks });
    assert.ok(existsSync(join(root, "cpuset/pod")), "someone else's dir stays");
    assert.ok(!existsSync(join(root, "memory/pod")), "our intermediate goes");
  } finally {
    cleanup();
  }
});

test("updateCgroup orders memory writes from the current limit", () => {
  const { root, host, hooks, cleanup } = fakeV1();
  try {
    const made = createCgroup(planCgroup(host, { name: "u", resources: { memory: { limit: 1000, swap: 2000 } } }), hooks);
    updateCgroup(made, { memory: { limit: 5000, swap: 9000 }, pids: { limit: 5 } }, host);
    const mem = join(root, "memory/own/sandbox/u");
    assert.equal(read(`${mem}/memory.limit_in_bytes`), "5000");
    assert.equal(read(`${mem}/memory.memsw.limit_in_bytes`), "9000");
    assert.equal(read(join(root, "pids/u/pids.max")), "5");
    writeFileSync(`${mem}/memory.usage_in_bytes`, "4000");
    throwsBerth(() => updateCgroup(made, { memory: { limit: 3000, checkBeforeUpdate: true } }, host), /below the current usage/);
  } finally {
    cleanup();
  }
});

test("v2 effects on a fake tree: subtree_control, stats, OOM, freeze", async () => {
  const root = mkdtempSync(join(tmpdir(), "berth-cg2-"));
  try {
    for (const f of ["cgroup.subtree_control", "cgroup.procs"]) writeFileSync(join(root, f), "");
    const host: CgroupHost = { mode: "v2", mountPoint: root, mountRoot: "/", ownPath: "/", controllers: ["memory", "pids", "cpu"], rootSubtreeControl: ["memory", "pids", "cpu"] };
    const files: Record<string, string> = {
      "cgroup.procs": "", "cgroup.subtree_control": "", "cgroup.freeze": "0", "cgroup.events": "populated 0\nfrozen 1\n",
      "memory.max": "max", "memory.current": "2048", "memory.events": "oom 1\noom_kill 1\n", "memory.stat": "inactive_file 10\n",
      "cpu.stat": "usage_usec 7\nuser_usec 4\nsystem_usec 3\n", "pids.max": "max", "pids.current": "3",
    };
    const hooks: CgroupFsHooks = {
      afterMkdir: (dir) => { for (const [f, v] of Object.entries(files)) writeFileSync(join(dir, f), v); },
      beforeRmdir: (dir) => { for (const f of Object.keys(files)) rmSync(join(dir, f), { force: true }); },
    };
    const plan = planCgroup(host, { name: "x", cgroupsPath: "/berth/c", resources: { memory: { limit: 4096 }, pids: { limit: 7 } } });
    const made = createCgroup(plan, hooks);
    assert.equal(read(join(root, "berth/cgroup.subtree_control")), "+memory +pids +cpu");
    assert.equal(read(join(root, "berth/c/memory.max")), "4096");
    assert.equal(read(join(root, "berth/c/pids.max")), "7");
    assert.equal(read(join(root, "cgroup.subtree_control")), "", "the root is not touched");
    const stats = cgroupStats(made);
    assert.deepEqual(stats.memory?.usage, 2048);
    assert.equal(stats.memory?.limit, 4096);
    assert.deepEqual(stats.cpu, { usageNs: 7000, userNs: 4000, systemNs: 3000 });
    assert.deepEqual(stats.pids, { current: 3, limit: 7 });
    assert.equal(oomKilled(made), true);
    assert.equal(oomKillCount(made), 1);
    await freezeCgroup(made);
    assert.equal(read(join(root, "berth/c/cgroup.freeze")), "1");
    writeFileSync(join(root, "berth/c/cgroup.events"), "populated 0\nfrozen 0\n");
    await thawCgroup(made);
    assert.equal(read(join(root, "berth/c/cgroup.freeze")), "0");
    updateCgroup(made, { pids: { limit: 9 } }, host);
    assert.equal(read(join(root, "berth/c/pids.max")), "9");
    await destroyCgroup(made, { hooks });
    assert.ok(!existsSync(join(root, "berth")));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
