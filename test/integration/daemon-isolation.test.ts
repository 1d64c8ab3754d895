// HostConfig isolation and limit fields through the docker CLI against a private berth daemon: each is
// either in force inside the container (checked there) or refused at create with one line and exit 125.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readlinkSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { isRoot } from "../helpers/berth.js";
import { DOCKER, ok, TestDaemon } from "../helpers/daemon.js";

const skip = !isRoot ? "needs root" : !DOCKER ? "needs the docker CLI" : false;

function refused(r: { code: number | null; stdout: string; stderr: string }, message: RegExp): void {
  assert.equal(r.code, 125, `expected a refusal: stdout ${r.stdout} stderr ${r.stderr}`);
  assert.match(r.stderr, message);
}

describe("HostConfig isolation and limits via the docker CLI", { skip, concurrency: false }, () => {
  let d: TestDaemon;

  before(async () => {
    d = new TestDaemon();
    await d.start();
  });

  after(async () => {
    assert.deepEqual(await d.destroy(), []);
  });

  const run = (args: string[]) => d.docker(["run", "--rm", ...args]);

  test("--ulimit sets soft and hard limits; a hard limit above the daemon's own is refused when it can't be raised", () => {
    assert.equal(ok(run(["--ulimit", "nofile=1024:2048", "host", "sh", "-c", "ulimit -n; ulimit -Hn"]), "ulimit"), "1024\n2048\n");
    const ownHard = Number(/^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"))?.[1]);
    const canRaise = (BigInt("0x" + (/^CapEff:\s*(\S+)/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "0")) & (1n << 24n)) !== 0n;
    if (!canRaise && Number.isFinite(ownHard)) {
      refused(run(["--ulimit", `nofile=1024:${ownHard + 1}`, "host", "true"]), new RegExp(`ulimit nofile: hard limit ${ownHard + 1} is above the daemon's own`));
    }
  });

  test("--shm-size sizes /dev/shm", () => {
    const df = ok(run(["--shm-size", "16m", "host", "df", "-k", "/dev/shm"]), "df");
    assert.match(df, /\s16384\s/);
    assert.match(ok(run(["host", "df", "-k", "/dev/shm"]), "df"), /\s65536\s/);
  });

  test("--sysctl: namespaced ones are set; others and ones for a shared namespace are refused", () => {
    assert.equal(ok(run(["--sysctl", "net.ipv4.ip_local_port_range=20000 30000", "host", "cat", "/proc/sys/net/ipv4/ip_local_port_range"]), "sysctl"), "20000\t30000\n");
    assert.equal(ok(run(["--sysctl", "kernel.shmmax=1000000", "host", "cat", "/proc/sys/kernel/shmmax"]), "sysctl"), "1000000\n");
    refused(run(["--network", "host", "--sysctl", "net.ipv4.ip_local_port_range=20000 30000", "host", "true"]), /sysctl "net.ipv4.ip_local_port_range" is not allowed when the container does not have its own network namespace/);
    refused(run(["--ipc", "host", "--sysctl", "kernel.shmmax=1000000", "host", "true"]), /shares an IPC namespace/);
  });

  test("--group-add adds a supplementary group", () => {
    assert.deepEqual(ok(run(["--group-add", "123", "host", "id", "-G"]), "id").trim().split(" ").sort(), ["0", "123"]);
  });

  test("--pid/--ipc/--uts/--cgroupns host share the host's namespaces; private ones differ; --pid container: joins", () => {
    const ns = ["pid", "ipc", "uts", "cgroup"];
    const host = ns.map((n) => readlinkSync(`/proc/self/ns/${n}`)).join(" ");
    const script = ns.map((n) => `readlink /proc/self/ns/${n}`).join("; ");
    const shared = ok(run(["--pid", "host", "--ipc", "host", "--uts", "host", "--cgroupns", "host", "host", "sh", "-c", script]), "host ns");
    assert.equal(shared.trim().split("\n").join(" "), host);
    const own = ok(run(["host", "sh", "-c", script]), "own ns").trim().split("\n");
    for (const [i, n] of ns.entries()) assert.notEqual(own[i], readlinkSync(`/proc/self/ns/${n}`), n);
    refused(run(["--uts", "host", "--hostname", "x", "host", "true"]), /Conflicting options: hostname and the UTS mode/);
    const id = ok(d.docker(["run", "-d", "host", "sleep", "60"]), "run -d").trim();
    try {
      const pid = ok(d.docker(["inspect", "-f", "{{.State.Pid}}", id]), "inspect").trim();
      assert.equal(ok(run(["--pid", `container:${id}`, "host", "readlink", "/proc/self/ns/pid"]), "join").trim(), readlinkSync(`/proc/${pid}/ns/pid`));
      refused(run(["--ipc", `container:${id}`, "host", "true"]), /--ipc container:\w+ is not supported/);
    } finally {
      d.docker(["rm", "-f", id]);
    }
  });

  test("--device creates the node and allows it in the device cgroup; a missing device is refused", () => {
    const st = statSync("/dev/fuse", { throwIfNoEntry: false });
    if (st?.isCharacterDevice()) {
      const out = ok(run(["--device", "/dev/fuse", "host", "sh", "-c", "ls -l /dev/fuse; exec 3<>/dev/fuse && echo opened"]), "device");
      assert.match(out, /^c[-rwx]{9} .* 10, +229 .*\/dev\/fuse\nopened\n$/);
      assert.notEqual(run(["host", "ls", "/dev/fuse"]).code, 0);
    }
    // docker's CLI exits 127 for any error that says "no such file or directory" (dockerd's too).
    const missing = run(["--device", "/dev/nonexistent-device", "host", "true"]);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /error gathering device information while adding custom device "\/dev\/nonexistent-device": no such file or directory/);
    refused(run(["--device", "/dev/null:/dev/n:r", "host", "true"]), /permissions "r" are not supported/);
  });

  test("--domainname, --memory-reservation and --oom-kill-disable are in force, and inspect reports what was set", () => {
    assert.equal(ok(run(["--domainname", "example.com", "host", "cat", "/proc/sys/kernel/domainname"]), "domainname"), "example.com\n");
    const id = ok(d.docker(["run", "-d", "--memory", "64m", "--memory-reservation", "32m", "--oom-kill-disable", "--ulimit", "nofile=100:200",
      "--shm-size", "16m", "--sysctl", "net.ipv4.ip_forward=1", "--group-add", "5", "--device", "/dev/null:/dev/null2", "host", "sleep", "60"]), "run -d").trim();
    try {
      const cg = ok(d.docker(["exec", id, "sh", "-c", "cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes; grep oom_kill_disable /sys/fs/cgroup/memory/memory.oom_control"]), "cgroup");
      assert.equal(cg, `${32 * 1024 * 1024}\noom_kill_disable 1\n`);
      const h = JSON.parse(ok(d.docker(["inspect", "-f", "{{json .HostConfig}}", id]), "inspect"));
      assert.equal(h.MemoryReservation, 32 * 1024 * 1024);
      assert.equal(h.OomKillDisable, true);
      assert.deepEqual(h.Ulimits, [{ Name: "nofile", Soft: 100, Hard: 200 }]);
      assert.equal(h.ShmSize, 16 * 1024 * 1024);
      assert.deepEqual(h.Sysctls, { "net.ipv4.ip_forward": "1" });
      assert.deepEqual(h.GroupAdd, ["5"]);
      assert.deepEqual(h.Devices, [{ PathOnHost: "/dev/null", PathInContainer: "/dev/null2", CgroupPermissions: "rwm" }]);
      // update is checked against the host's CPUs, with docker's words.
      const cpus = availableParallelism();
      const cpusUpd = d.docker(["update", "--cpus", String(cpus + 97), id]);
      assert.equal(cpusUpd.code, 1);
      assert.match(cpusUpd.stderr, new RegExp(`Range of CPUs is from 0.01 to ${cpus}.00, as there are only ${cpus} CPUs available`));
      const upd = d.docker(["update", "--cpuset-cpus", String(cpus + 5), id]);
      assert.equal(upd.code, 1);
      assert.match(upd.stderr, new RegExp(`Requested CPUs are not available - requested ${cpus + 5}, available: 0`));
    } finally {
      d.docker(["rm", "-f", id]);
    }
  });

  test("unknown or unsupported --security-opt and --cpus beyond the host are refused", () => {
    refused(run(["--security-opt", "bogus=1", "host", "true"]), /invalid --security-opt: "bogus=1"/);
    refused(run(["--security-opt", "apparmor=docker-default", "host", "true"]), /does not apply AppArmor profiles/);
    refused(run(["--cpus", "99", "host", "true"]), /Range of CPUs is from 0.01 to \d+\.00, as there are only \d+ CPUs available/);
    assert.equal(ok(d.docker(["ps", "-aq"]), "ps"), "");
  });
});
