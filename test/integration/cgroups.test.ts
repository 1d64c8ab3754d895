// Real cgroups on this machine (root, hybrid layout): create under our own cgroup, put a process in,
// read limits back, destroy, and make sure nothing is left. Only cgroups made here are touched.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { once } from "node:events";
import {
  cgroupPids,
  cgroupStats,
  createCgroup,
  destroyCgroup,
  freezeCgroup,
  oomKilled,
  planCgroup,
  readCgroupHost,
  thawCgroup,
  updateCgroup,
  writeCgroupFile,
  type CgroupPlan,
  type V1Host,
} from "../../src/cgroups/index.js";

const isRoot = process.getuid?.() === 0;
const skip = !isRoot ? "needs root" : !existsSync("/sys/fs/cgroup/memory") && !existsSync("/sys/fs/cgroup/cgroup.controllers") ? "no cgroups" : false;
const prefix = `berth-itest-${process.pid}-`;

const read = (p: string) => readFileSync(p, "utf8").trim();

/** A shell that waits for one line on stdin before exec'ing `cmd`, so it runs only once it is in the cgroup. */
function startGated(cmd: string): ChildProcess {
  return spawn("/bin/sh", ["-c", `read _; exec ${cmd}`], { stdio: ["pipe", "ignore", "ignore"] });
}

function join(plan: CgroupPlan, child: ChildProcess): void {
  for (const f of plan.procsFiles) writeCgroupFile(f, String(child.pid));
  child.stdin?.end("go\n");
}

/** Our own cgroup dirs in every hierarchy: nothing named with our prefix may remain there. */
function leftovers(): string[] {
  const host = readCgroupHost();
  const owns = host.mode === "v2" ? [`${host.mountPoint}${host.ownPath}`] : (host as V1Host).hierarchies.map((h) => `${h.mountPoint}${h.ownPath}`);
  return owns.flatMap((d) => readdirSync(d).filter((n) => n.startsWith(prefix)).map((n) => `${d}/${n}`));
}

test("memory+cpu+pids limits applied, a process joins, destroy kills it and removes every dir", { skip }, async () => {
  const host = readCgroupHost();
  const plan = planCgroup(host, {
    name: `${prefix}limits`,
    resources: {
      memory: { limit: 64 << 20, swap: 128 << 20, reservation: 32 << 20 },
      cpu: { shares: 512, quota: 50000, period: 100000 },
      pids: { limit: 32 },
      devices: [{ allow: false, access: "rwm" }, { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }, { allow: true, type: "c", major: 1, minor: 5, access: "rwm" }],
    },
  });
  let made: CgroupPlan | undefined;
  let child: ChildProcess | undefined;
  try {
    made = createCgroup(plan);
    assert.deepEqual(made.dirs, plan.dirs, "every dir is ours");
    if (host.mode !== "v2") {
      const p = made.paths;
      assert.equal(read(`${p.memory}/memory.limit_in_bytes`), String(64 << 20));
      assert.equal(read(`${p.memory}/memory.memsw.limit_in_bytes`), String(128 << 20));
      assert.equal(read(`${p.memory}/memory.soft_limit_in_bytes`), String(32 << 20));
      assert.equal(read(`${p.cpu}/cpu.shares`), "512");
      assert.equal(read(`${p.cpu}/cpu.cfs_quota_us`), "50000");
      assert.equal(read(`${p.cpu}/cpu.cfs_period_us`), "100000");
      assert.equal(read(`${p.pids}/pids.max`), "32");
      assert.equal(read(`${p.devices}/devices.list`), "c 1:3 rwm\nc 1:5 rwm");
      assert.equal(read(`${p.cpuset}/cpuset.cpus`), read(`${p.cpuset}/../cpuset.cpus`));
    } else {
      assert.equal(read(`${made.primaryPath}/memory.max`), String(64 << 20));
      assert.equal(read(`${made.primaryPath}/pids.max`), "32");
    }

    child = startGated("sleep 1000");
    const exited = once(child, "exit");
    join(made, child);
    const procCgroup = read(`/proc/${child.pid}/cgroup`);
    assert.ok(procCgroup.includes(`${prefix}limits`), procCgroup);
    assert.deepEqual(cgroupPids(made), [child.pid]);
    const stats = cgroupStats(made);
    assert.equal(stats.pids?.current, 1);
    assert.equal(stats.pids?.limit, 32);
    assert.equal(stats.memory?.limit, 64 << 20);
    assert.ok((stats.cpu?.usageNs ?? -1) >= 0);
    assert.equal(oomKilled(made), false);

    await freezeCgroup(made);
    if (host.mode !== "v2") assert.equal(read(`${made.paths.freezer}/freezer.state`), "FROZEN");
    else assert.match(read(`${made.primaryPath}/cgroup.events`), /^frozen 1$/m);
    await thawCgroup(made);
    if (host.mode !== "v2") assert.equal(read(`${made.paths.freezer}/freezer.state`), "THAWED");

    updateCgroup(made, { memory: { limit: 256 << 20, swap: 512 << 20 }, pids: { limit: 64 } });
    if (host.mode !== "v2") {
      assert.equal(read(`${made.paths.memory}/memory.limit_in_bytes`), String(256 << 20));
      assert.equal(read(`${made.paths.memory}/memory.memsw.limit_in_bytes`), String(512 << 20));
      assert.equal(read(`${made.paths.pids}/pids.max`), "64");
    }

    // Destroy while frozen: the layer thaws before killing.
    await freezeCgroup(made);
    await destroyCgroup(made);
    const [code, signal] = await exited;
    assert.equal(code, null);
    assert.equal(signal, "SIGKILL");
    for (const d of plan.dirs) assert.ok(!existsSync(d), `${d} removed`);
    await destroyCgroup(made); // idempotent
  } finally {
    child?.kill("SIGKILL");
    if (made) await destroyCgroup(made);
    else await destroyCgroup({ ...plan, dirs: [] }).catch(() => undefined);
  }
  assert.deepEqual(leftovers(), []);
});

test("a process over the memory limit is OOM-killed and oomKilled says so", { skip }, async () => {
  const host = readCgroupHost();
  const plan = planCgroup(host, { name: `${prefix}oom`, resources: { memory: { limit: 16 << 20, swap: 16 << 20 } } });
  const made = createCgroup(plan);
  try {
    // dd's 64 MiB buffer cannot fit in 16 MiB without swap.
    const child = startGated("dd if=/dev/zero of=/dev/null bs=64M count=1");
    const exited = once(child, "exit");
    join(made, child);
    const [, signal] = await exited;
    assert.equal(signal, "SIGKILL");
    assert.equal(oomKilled(made), true);
  } finally {
    await destroyCgroup(made);
  }
  assert.deepEqual(leftovers(), []);
});

test("an existing cgroup is never taken over, and a failed create leaves nothing", { skip }, async () => {
  const host = readCgroupHost();
  const plan = planCgroup(host, { name: `${prefix}dup` });
  const made = createCgroup(plan);
  try {
    assert.throws(() => createCgroup(plan), /already exists/);
    for (const d of plan.dirs) assert.ok(existsSync(d), "the first one is intact");
  } finally {
    await destroyCgroup(made);
  }
  if (host.mode !== "v2") {
    // Validation would refuse quota=1, so patch the plan: the kernel's EINVAL must name the file and undo the mkdirs.
    const bad = planCgroup(host, { name: `${prefix}bad`, resources: { cpu: { quota: 1000, period: 1000000 }, memory: { limit: 1 << 20 } } });
    const patched = { ...bad, writes: bad.writes.map((w) => (w.path.endsWith("cpu.cfs_quota_us") ? { ...w, value: "1" } : w)) };
    assert.throws(() => createCgroup(patched), /cgroup: write .*cpu\.cfs_quota_us=1: EINVAL/);
    for (const d of bad.dirs) assert.ok(!existsSync(d), `${d} rolled back`);
  }
  assert.deepEqual(leftovers(), []);
});
