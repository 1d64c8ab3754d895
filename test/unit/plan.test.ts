import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CLONE, namespacePlan, planContainer, type PlanContext, planExec } from "../../src/core/container-plan.js";
import { describeFailure } from "../../src/core/plan-errors.js";
import { encodePlan, type Op, PLAN_MAGIC, PLAN_VERSION, PlanFlag } from "../../src/core/plan.js";
import { buildRunSpec, type RunOptions } from "../../src/core/run-spec.js";
import { MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT, MS_SHARED, MS_UNBINDABLE } from "../../src/oci/mount-options.js";
import type { Spec } from "../../src/oci/spec.js";

const DOCKER_CAPS_MASK = 0xa80425fbn;

function spec(over: Partial<RunOptions> = {}): Spec {
  return buildRunSpec(
    { rootfs: "/images/host", command: ["sh", "-c", "true"], ...over },
    {
      id: "0123456789abcdef0123",
      passwd: "root:x:0:0:root:/root:/bin/sh\nberth:x:1000:1000::/home/berth:/bin/sh\n",
      group: "root:x:0:\nstaff:x:50:berth\n",
      runtimeCapabilities: ["CAP_CHOWN", "CAP_SYS_ADMIN"],
    },
  );
}

function ctx(over: Partial<PlanContext> = {}): PlanContext {
  return {
    rootfs: "/run/berth/c1/rootfs",
    host: { lastCap: 40 },
    isDirectory: () => true,
    cgroup: {
      procsFiles: ["/sys/fs/cgroup/memory/me/berth-c1/cgroup.procs", "/sys/fs/cgroup/pids/berth-c1/cgroup.procs"],
      mounts: [
        { source: "/sys/fs/cgroup/memory/me/berth-c1", destination: "/sys/fs/cgroup/memory" },
        { source: "/sys/fs/cgroup/pids/berth-c1", destination: "/sys/fs/cgroup/pids" },
      ],
    },
    dieWithController: true,
    ...over,
  };
}

const ofKind = <K extends Op["op"]>(ops: Op[], kind: K) => ops.filter((o): o is Extract<Op, { op: K }> => o.op === kind);
const indexOf = (ops: Op[], pred: (o: Op) => boolean) => ops.findIndex(pred);

describe("namespaces", () => {
  test("new namespaces are clone flags; cgroup is unshared after the cgroup join; joins come first, user first", () => {
    const ns = namespacePlan([{ type: "pid" }, { type: "network", path: "/proc/1/ns/net" }, { type: "cgroup" }, { type: "mount" }, { type: "user", path: "/proc/1/ns/user" }]);
    assert.equal(ns.cloneFlags, CLONE.NEWPID | CLONE.NEWNS);
    assert.equal(ns.unshareAfterCgroupJoin, CLONE.NEWCGROUP);
    assert.deepEqual(ns.joins.map((j) => j.type), ["user", "network"]);
  });

  test("berth run asks for pid, ipc, uts, mount, cgroup and net; --network host keeps the host's", () => {
    const plan = planContainer(spec(), ctx());
    const clone = ofKind(plan.ops, "clone")[0];
    assert.equal(clone.flags, CLONE.NEWPID | CLONE.NEWIPC | CLONE.NEWUTS | CLONE.NEWNS | CLONE.NEWNET);
    assert.deepEqual(ofKind(plan.ops, "unshare").map((o) => o.flags), [CLONE.NEWCGROUP]);
    assert.deepEqual(ofKind(plan.ops, "linkUp").map((o) => o.name), ["lo"]);
    const host = planContainer(spec({ network: "host" }), ctx());
    assert.equal(ofKind(host.ops, "clone")[0].flags & CLONE.NEWNET, 0);
    assert.equal(ofKind(host.ops, "linkUp").length, 0);
  });

  test("the pid goes into every cgroup before the child may run, and before the cgroup namespace", () => {
    const plan = planContainer(spec(), ctx());
    const cloneAt = indexOf(plan.ops, (o) => o.op === "clone");
    const joins = ofKind(plan.ops, "parentWritePid");
    assert.equal(joins.length, 2);
    assert.ok(indexOf(plan.ops, (o) => o.op === "parentWritePid") > cloneAt);
    assert.ok(indexOf(plan.ops, (o) => o.op === "unshare") > indexOf(plan.ops, (o) => o.op === "parentWritePid"));
  });

  test("a user namespace gets its id maps written by the parent and root inside", () => {
    const plan = planContainer(spec({ uidMap: [{ containerID: 0, hostID: 100000, size: 65536 }], gidMap: [{ containerID: 0, hostID: 100000, size: 65536 }] }), ctx());
    assert.ok(ofKind(plan.ops, "clone")[0].flags & CLONE.NEWUSER);
    assert.deepEqual(ofKind(plan.ops, "parentWriteProc").map((o) => [o.file, o.data]), [
      ["uid_map", "0 100000 65536\n"],
      ["gid_map", "0 100000 65536\n"],
    ]);
    // devices are bind-mounted from the host: mknod is refused in a user namespace
    assert.equal(ofKind(plan.ops, "mknod").length, 0);
    assert.ok(plan.ops.some((o) => o.op === "mount" && o.source === "/dev/null" && o.target === "/dev/null" && o.flags === MS_BIND));
  });
});

describe("mounts", () => {
  test("propagation private first, then the root bound onto itself, then the spec's mounts, then pivot_root", () => {
    const plan = planContainer(spec(), ctx({ rootfsMounts: [{ source: "overlay", fstype: "overlay", data: "lowerdir=/l,upperdir=/u,workdir=/w" }] }));
    const mounts = ofKind(plan.ops, "mount");
    assert.deepEqual([mounts[0].target, mounts[0].flags], ["/", MS_REC | MS_PRIVATE]);
    assert.deepEqual([mounts[1].fstype, mounts[1].target], ["overlay", "/run/berth/c1/rootfs"]);
    assert.deepEqual([mounts[2].source, mounts[2].flags], ["/run/berth/c1/rootfs", MS_BIND | MS_REC]);
    const proc = mounts.find((m) => m.fstype === "proc");
    assert.ok(proc);
    assert.equal(proc.root, "/run/berth/c1/rootfs");
    assert.equal(proc.target, "/proc");
    assert.equal(proc.flags, MS_NOSUID | MS_NOEXEC | MS_NODEV);
    const sys = mounts.find((m) => m.fstype === "sysfs");
    assert.equal(sys?.flags, MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY);
    const pivot = indexOf(plan.ops, (o) => o.op === "pivotRoot");
    assert.ok(pivot > indexOf(plan.ops, (o) => o.op === "mount" && o.fstype === "devpts"));
    assert.equal(ofKind(plan.ops, "chroot").length, 0);
  });

  test("rootfsPropagation as runc: shared makes the mount holding the root private before its bind, and every mode is applied again after pivot_root", () => {
    const prop = (value: string, mountPointOf?: PlanContext["mountPointOf"]) => {
      const s = spec();
      (s.linux ??= {}).rootfsPropagation = value;
      return planContainer(s, ctx({ mountPointOf })).ops;
    };
    const asked: string[] = [];
    const shared = prop("shared", (p) => (asked.push(p), "/run"));
    assert.deepEqual(asked, ["/run/berth/c1/rootfs"]);
    const mounts = ofKind(shared, "mount");
    assert.deepEqual([mounts[0].target, mounts[0].flags], ["/", MS_SHARED]);
    assert.deepEqual([mounts[1].target, mounts[1].flags], ["/run", MS_PRIVATE]);
    const pivot = indexOf(shared, (o) => o.op === "pivotRoot");
    const after = shared[pivot + 1];
    assert.ok(after.op === "mount" && after.target === "/" && after.root === "/" && after.flags === MS_SHARED);
    // pivot_root would fail on a shared parent, and a bind of an unbindable "/" fails: private until then.
    const unbindable = prop("unbindable");
    assert.equal(ofKind(unbindable, "mount")[0].flags, MS_REC | MS_PRIVATE);
    const next = unbindable[indexOf(unbindable, (o) => o.op === "pivotRoot") + 1];
    assert.ok(next.op === "mount" && next.target === "/" && next.flags === MS_UNBINDABLE);
    // Unset: private before, nothing after; the mount table is not read.
    const plain = planContainer(spec(), ctx({ mountPointOf: () => assert.fail("asked") })).ops;
    assert.equal(ofKind(plain, "mount")[0].flags, MS_REC | MS_PRIVATE);
    assert.notEqual(plain[indexOf(plain, (o) => o.op === "pivotRoot") + 1].op, "mount");
  });

  test("a mount namespace joined by path is set up like a new one, as runc does", () => {
    const s = spec();
    const linux = (s.linux ??= {});
    linux.namespaces = (linux.namespaces ?? []).map((n) => (n.type === "mount" ? { type: "mount", path: "/proc/1234/ns/mnt" } : n));
    const plan = planContainer(s, ctx());
    assert.equal(ofKind(plan.ops, "clone")[0].flags & CLONE.NEWNS, 0);
    const join = indexOf(plan.ops, (o) => o.op === "joinNamespace" && o.name === "mnt");
    assert.ok(join >= 0 && join < indexOf(plan.ops, (o) => o.op === "clone"));
    assert.ok(indexOf(plan.ops, (o) => o.op === "pivotRoot") > 0);
  });

  test("no mount namespace: the host's propagation and root are left alone, a plain chroot enters the rootfs", () => {
    const s = spec();
    const linux = (s.linux ??= {});
    linux.namespaces = (linux.namespaces ?? []).filter((n) => n.type !== "mount");
    linux.maskedPaths = [];
    linux.readonlyPaths = [];
    linux.rootfsPropagation = "rshared";
    const plan = planContainer(s, ctx({ mountPointOf: () => assert.fail("the host's mounts are not changed") }));
    assert.equal(ofKind(plan.ops, "clone")[0].flags & CLONE.NEWNS, 0);
    assert.deepEqual(ofKind(plan.ops, "chrootInPlace").map((o) => o.root), ["/run/berth/c1/rootfs"]);
    assert.equal(ofKind(plan.ops, "pivotRoot").length + ofKind(plan.ops, "chroot").length, 0);
    const mounts = ofKind(plan.ops, "mount");
    assert.ok(mounts.every((m) => m.target !== "/" && m.source !== "/run/berth/c1/rootfs"), "no propagation change on / and no bind of the rootfs");
    s.root = { path: "rootfs", readonly: true };
    assert.throws(() => planContainer(s, ctx()), /root.readonly: needs its own mount namespace/);
  });

  test("exec into a container without a mount namespace takes its init's root; with one, the join does it", () => {
    const proc = { args: ["ls", "/"], cwd: "/", user: { uid: 0, gid: 0 } };
    const exec = (namespaces: string[]) => planExec(proc, { host: { lastCap: 40 }, pid: 42, namespaces, procsFiles: [] }).ops;
    const shared = exec(["pid", "uts"]);
    assert.deepEqual(ofKind(shared, "chrootInPlace").map((o) => o.root), ["/proc/42/root"]);
    assert.ok(indexOf(shared, (o) => o.op === "chrootInPlace") < indexOf(shared, (o) => o.op === "chdir"));
    assert.equal(ofKind(shared, "joinNamespace").some((o) => o.name === "mnt"), false);
    const own = exec(["pid", "mount"]);
    assert.equal(ofKind(own, "chrootInPlace").length, 0);
    assert.deepEqual(ofKind(own, "joinNamespace").map((o) => o.name), ["pid", "mnt"]);
  });

  test("the container's own cgroup appears read-only at /sys/fs/cgroup/<controller>", () => {
    const plan = planContainer(spec(), ctx());
    const mounts = ofKind(plan.ops, "mount");
    const bind = mounts.find((m) => m.source === "/sys/fs/cgroup/memory/me/berth-c1");
    assert.equal(bind?.target, "/sys/fs/cgroup/memory");
    const remount = mounts.find((m) => m.target === "/sys/fs/cgroup/memory" && (m.flags & MS_REMOUNT) !== 0);
    assert.ok(remount && (remount.flags & MS_RDONLY) !== 0);
  });

  test("a read-only bind mount is a bind then a read-only remount", () => {
    const plan = planContainer(spec({ binds: [{ source: "/srv/data", destination: "/data", readOnly: true }] }), ctx());
    const data = ofKind(plan.ops, "mount").filter((m) => m.target === "/data");
    assert.equal(data[0].source, "/srv/data");
    assert.equal(data[0].flags, MS_BIND | MS_REC);
    assert.equal(data[1].flags, MS_BIND | MS_REMOUNT | MS_RDONLY);
  });

  test("tmpcopyup: a tmpCopyUp op (tmpfs flags and data, propagation after it), before pivot_root; refused on anything but tmpfs", () => {
    const s = spec();
    s.mounts = [...(s.mounts ?? []), { destination: "/run", type: "tmpfs", source: "tmpfs", options: ["nosuid", "ro", "tmpcopyup", "mode=755", "rprivate"] }];
    const plan = planContainer(s, ctx());
    const at = indexOf(plan.ops, (o) => o.op === "tmpCopyUp");
    assert.deepEqual(plan.ops[at], { op: "tmpCopyUp", root: "/run/berth/c1/rootfs", target: "/run", flags: MS_NOSUID | MS_RDONLY, data: "mode=755" });
    assert.deepEqual(plan.ops[at + 1], { op: "mount", source: "", root: "/run/berth/c1/rootfs", target: "/run", fstype: "", flags: MS_REC | MS_PRIVATE, data: "", create: "none" });
    assert.equal(ofKind(plan.ops, "mount").filter((m) => m.target === "/run" && m.fstype === "tmpfs").length, 0);
    assert.ok(at < indexOf(plan.ops, (o) => o.op === "pivotRoot"));
    assert.match(describeFailure(plan.ops[at], 1, "").message, /tmpcopyup/);
    const bind = spec();
    bind.mounts = [...(bind.mounts ?? []), { destination: "/data", type: "bind", source: "/srv", options: ["rbind", "tmpcopyup"] }];
    assert.throws(() => planContainer(bind, ctx()), /^BerthError: mounts \(destination \/data\): the "tmpcopyup" option is only for tmpfs mounts$/);
  });

  test("docker's masked and read-only paths, applied after pivot_root", () => {
    const plan = planContainer(spec(), ctx());
    const pivot = indexOf(plan.ops, (o) => o.op === "pivotRoot");
    const masked = ofKind(plan.ops, "maskPath").map((o) => o.path);
    for (const p of ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"]) assert.ok(masked.includes(p), p);
    const ro = ofKind(plan.ops, "readonlyPath").map((o) => o.path);
    for (const p of ["/proc/sys", "/proc/bus", "/proc/irq", "/proc/sysrq-trigger"]) assert.ok(ro.includes(p), p);
    assert.ok(indexOf(plan.ops, (o) => o.op === "maskPath") > pivot);
    const privileged = planContainer(spec({ privileged: true }), ctx());
    assert.equal(ofKind(privileged.ops, "maskPath").length, 0);
  });

  test("default devices are made on the /dev tmpfs, with the /dev/fd links", () => {
    const plan = planContainer(spec(), ctx());
    const nodes = ofKind(plan.ops, "mknod").map((o) => `${o.path} ${o.major}:${o.minor}`);
    assert.deepEqual(nodes, ["/dev/null 1:3", "/dev/zero 1:5", "/dev/full 1:7", "/dev/random 1:8", "/dev/urandom 1:9", "/dev/tty 5:0"]);
    const links = ofKind(plan.ops, "symlink").map((o) => `${o.path}->${o.target}`);
    assert.ok(links.includes("/dev/fd->/proc/self/fd"));
    assert.ok(links.includes("/dev/ptmx->pts/ptmx"));
  });
});

describe("process", () => {
  test("docker's default capabilities in all sets but inheritable and ambient, no_new_privs, exec last", () => {
    const plan = planContainer(spec(), ctx());
    const caps = ofKind(plan.ops, "capabilities")[0];
    assert.equal(caps.bounding, DOCKER_CAPS_MASK);
    assert.equal(caps.effective, DOCKER_CAPS_MASK);
    assert.equal(caps.permitted, DOCKER_CAPS_MASK);
    assert.equal(caps.inheritable, 0n);
    assert.equal(caps.ambient, 0n);
    assert.ok(ofKind(plan.ops, "noNewPrivileges").length === 1);
    assert.equal(plan.ops.at(-1)?.op, "exec");
  });

  test("--cap-drop ALL and --cap-add", () => {
    assert.equal(ofKind(planContainer(spec({ capDrop: ["ALL"] }), ctx()).ops, "capabilities")[0].bounding, 0n);
    const added = ofKind(planContainer(spec({ capAdd: ["sys_admin"] }), ctx()).ops, "capabilities")[0];
    assert.equal(added.effective, DOCKER_CAPS_MASK | (1n << 21n));
  });

  test("capabilities above the host's last one are not asked for", () => {
    const plan = planContainer(spec({ capAdd: ["ALL"] }), ctx({ host: { lastCap: 37 } }));
    assert.equal(ofKind(plan.ops, "capabilities")[0].bounding, (1n << 38n) - 1n);
  });

  test("every fd past stdio is closed (CLOEXEC) before the user switch and exec; cwd is entered after it", () => {
    const plan = planContainer(spec({ user: "berth", workdir: "/tmp" }), ctx());
    const close = indexOf(plan.ops, (o) => o.op === "closeFds");
    const setUser = indexOf(plan.ops, (o) => o.op === "setUser" && o.uid === 1000);
    const chdir = indexOf(plan.ops, (o) => o.op === "chdir");
    assert.ok(close >= 0 && close < setUser && setUser < chdir);
    const user = plan.ops[setUser] as Extract<Op, { op: "setUser" }>;
    assert.deepEqual([user.uid, user.gid, user.groups], [1000, 1000, [1000, 50]]); // the primary gid too, as docker
    assert.equal((plan.ops[chdir] as Extract<Op, { op: "chdir" }>).path, "/tmp");
  });

  test("seccomp is loaded after no_new_privs when set, before the user switch otherwise", () => {
    const seccomp = { program: new Uint8Array(16), flags: 0 };
    const withNnp = planContainer(spec(), ctx({ seccomp }));
    assert.ok(indexOf(withNnp.ops, (o) => o.op === "seccomp") > indexOf(withNnp.ops, (o) => o.op === "noNewPrivileges"));
    const s = spec();
    if (s.process) s.process.noNewPrivileges = false;
    const withoutNnp = planContainer(s, ctx({ seccomp }));
    assert.ok(indexOf(withoutNnp.ops, (o) => o.op === "seccomp") < indexOf(withoutNnp.ops, (o) => o.op === "setUser" && o.uid === 0));
  });

  test("env: default PATH, HOSTNAME and HOME, -e overrides", () => {
    const s = spec({ env: ["PATH=/bin", "FOO=bar"] });
    assert.deepEqual(s.process?.env, ["PATH=/bin", "HOSTNAME=0123456789ab", "HOME=/root", "FOO=bar"]);
  });

  test("a terminal gets a console step after pivot_root and the proxy flags", () => {
    const plan = planContainer(spec({ tty: true }), ctx({ console: { mode: "proxy", rawHostTerminal: true } }));
    assert.ok(indexOf(plan.ops, (o) => o.op === "console") > indexOf(plan.ops, (o) => o.op === "pivotRoot"));
    assert.equal(plan.flags, PlanFlag.KillOnControlEof | PlanFlag.TtyProxy | PlanFlag.RawHostTerminal);
  });

  test("the init's terminal is bound on /dev/console, an exec's is not (it would stay stacked there, and break the next exec -t)", () => {
    const init = planContainer(spec({ tty: true }), ctx({ console: { mode: "proxy", rawHostTerminal: false } }));
    assert.deepEqual(init.ops.filter((o) => o.op === "console").map((o) => o.op === "console" && o.devConsole), [true]);
    const proc = { args: ["sh"], cwd: "/", terminal: true, user: { uid: 0, gid: 0 } };
    const exec = planExec(proc, { host: { lastCap: 40 }, pid: 42, namespaces: ["mount", "pid"], procsFiles: [], console: { mode: "socket", socketPath: "/run/x.sock" } });
    assert.deepEqual(exec.ops.filter((o) => o.op === "console").map((o) => o.op === "console" && o.devConsole), [false]);
  });
});

describe("scheduler and I/O priority", () => {
  test("process.scheduler and ioPriority become sched_setattr / ioprio_set ops before the user and capabilities change, for exec too", () => {
    const s = spec();
    if (!s.process) throw new Error("no process");
    s.process.scheduler = { policy: "SCHED_DEADLINE", flags: ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM"], runtime: 10_000_000, deadline: 30_000_000, period: 40_000_000 };
    s.process.ioPriority = { class: "IOPRIO_CLASS_IDLE", priority: 0 };
    const plan = planContainer(s, ctx());
    const sched = indexOf(plan.ops, (o) => o.op === "scheduler");
    assert.deepEqual(plan.ops[sched], { op: "scheduler", policy: 6, flags: 0x3, nice: 0, priority: 0, runtime: 10_000_000, deadline: 30_000_000, period: 40_000_000 });
    assert.deepEqual(ofKind(plan.ops, "ioPriority"), [{ op: "ioPriority", ioprio: 3 << 13 }]);
    assert.ok(sched > indexOf(plan.ops, (o) => o.op === "pivotRoot"));
    assert.ok(sched < indexOf(plan.ops, (o) => o.op === "setUser" && o.setGroups));
    assert.ok(indexOf(plan.ops, (o) => o.op === "ioPriority") < indexOf(plan.ops, (o) => o.op === "capabilities"));
    const exec = planExec({ ...s.process, scheduler: { policy: "SCHED_BATCH", nice: -3 }, ioPriority: { class: "IOPRIO_CLASS_BE", priority: 4 } }, { pid: 42, namespaces: ["pid"], procsFiles: [], host: { lastCap: 40 } });
    assert.deepEqual(ofKind(exec.ops, "scheduler").map((o) => [o.policy, o.nice]), [[3, -3]]);
    assert.deepEqual(ofKind(exec.ops, "ioPriority").map((o) => o.ioprio), [(2 << 13) | 4]);
    const none = planContainer(spec(), ctx());
    assert.equal(ofKind(none.ops, "scheduler").length + ofKind(none.ops, "ioPriority").length, 0);
  });
});

describe("limits", () => {
  test("memory, cpus, shares, cpuset and pids become OCI resources", () => {
    const s = spec({ memory: 64 * 1024 * 1024, memorySwap: 128 * 1024 * 1024, cpus: 1.5, cpuShares: 512, cpusetCpus: "0", pidsLimit: 20 });
    const r = s.linux?.resources;
    assert.deepEqual(r?.memory, { limit: 67108864, swap: 134217728 });
    assert.deepEqual(r?.cpu, { quota: 150000, period: 100000, shares: 512, cpus: "0" });
    assert.deepEqual(r?.pids, { limit: 20 });
  });

  test("bad limits are refused with the flag named", () => {
    assert.throws(() => spec({ memory: 1024 }), /--memory: the minimum allowed is 6MB/);
    assert.throws(() => spec({ memorySwap: 1024 }), /--memory-swap: it needs --memory/);
    assert.throws(() => spec({ memory: 64 << 20, memorySwap: 32 << 20 }), /must be at least --memory/);
  });
});

describe("encoding and errors", () => {
  test("the header carries magic, version, flags and the op count; fields are length-prefixed", () => {
    const buf = encodePlan({ flags: PlanFlag.Detach, ops: [{ op: "sethostname", name: "box" }, { op: "closeFds", from: 3 }] });
    assert.equal(buf.readUInt32LE(0), buf.length - 4);
    assert.equal(buf.readUInt32LE(4), PLAN_MAGIC);
    assert.equal(buf.readUInt32LE(8), PLAN_VERSION);
    assert.equal(buf.readUInt32LE(12), PlanFlag.Detach);
    assert.equal(buf.readUInt32LE(16), 2);
    // sethostname: code 21, one field "box\0"
    assert.deepEqual([buf.readUInt32LE(20), buf.readUInt32LE(24), buf.readUInt32LE(28)], [21, 1, 4]);
    assert.equal(buf.subarray(32, 36).toString("latin1"), "box\0");
    // closeFds: code 37, one u64 field
    assert.deepEqual([buf.readUInt32LE(36), buf.readUInt32LE(40), buf.readUInt32LE(44)], [37, 1, 8]);
    assert.equal(buf.readBigUInt64LE(48), 3n);
  });

  test("failures read like runc's: the operation, its arguments, the errno text", () => {
    const mount: Op = { op: "mount", source: "proc", root: "/r", target: "/proc", fstype: "proc", flags: MS_NOSUID | MS_NODEV, data: "", create: "dir" };
    assert.equal(describeFailure(mount, 1, "").message, "mount src=proc dst=/proc (in /r) type=proc flags=MS_NOSUID|MS_NODEV: operation not permitted");
    const exec: Op = { op: "exec", file: "nosuch", argv: ["nosuch"], env: [] };
    assert.deepEqual([describeFailure(exec, 2, "nosuch").message, describeFailure(exec, 2, "nosuch").exitCode], ['exec: "nosuch": executable file not found in $PATH', 127]);
    assert.equal(describeFailure({ ...exec, file: "/etc/passwd" }, 13, "/etc/passwd").exitCode, 126);
    const rl: Op = { op: "setrlimit", resource: 7, name: "RLIMIT_NOFILE", soft: 1048576n, hard: 1048576n };
    assert.match(describeFailure(rl, 1, "").message, /setrlimit RLIMIT_NOFILE soft=1048576 hard=1048576: operation not permitted \(hard limits can only be lowered/);
    assert.match(describeFailure(undefined, 0, "stale-helper version 1").message, /native helper is out of date/);
  });
});
