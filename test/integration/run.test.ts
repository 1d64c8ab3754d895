// `berth run` end to end: every test starts real containers through the CLI (bin/berth.js) and checks
// isolation from the host's side as well as from inside. After every test the host must be exactly as
// before: same mounts in our mount namespace, no berth-<id> cgroup, nothing new in /run/berth/containers.
// Needs root, the built native helper and a C compiler (for the static payload); skipped otherwise.
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname as osHostname, tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../src/cli/berth.js";
import { contains, ipToInt, parseCidr } from "../../src/network/ipam.js";
import { ensureHostImage } from "../../src/rootfs/host-image.js";
import {
  BERTH_BIN,
  REPO,
  berth,
  buildPayload,
  childrenOf,
  type HostSnapshot,
  haveCc,
  isCgroup2,
  isRoot,
  markDefaultDaemon,
  restoreDefaultDaemon,
  run,
  settle,
  show,
  snapshot,
  spawnBerth,
  waitFor,
} from "../helpers/berth.js";

const skip = !isRoot ? "needs root" : !haveCc ? "needs a C compiler (cc) for the payload" : false;
const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const DOCKER_DEFAULT_CAPS = "00000000a80425fb";
const CAP_SYS_ADMIN_BIT = 21n;

/** "Name:\tvalue" lines of a /proc/PID/status text. */
function statusField(text: string, name: string): string | undefined {
  return new RegExp(`^${name}:\\s*(\\S+)`, "m").exec(text)?.[1];
}

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

// Taken before any test: most of these runs go through the default daemon, started on first use.
const defaultDaemon = markDefaultDaemon();

describe("berth run", { skip, concurrency: false }, () => {
  let image = "";
  let payloadDir = "";
  let payload = "";
  let removePayload = () => {};
  /** A --rootfs made by the tests: just the static payload (and the dirs the runtime mounts over). */
  let payloadRootfs = "";
  let before_: HostSnapshot;

  before(async () => {
    image = await ensureHostImage("/var/lib/berth");
    ({ dir: payloadDir, payload, remove: removePayload } = buildPayload());
    payloadRootfs = join(payloadDir, "rootfs");
    spawnSync("mkdir", ["-p", payloadRootfs]);
    writeFileSync(join(payloadRootfs, "payload"), readFileSync(payload), { mode: 0o755 });
  });

  after(async () => {
    removePayload();
    await restoreDefaultDaemon(defaultDaemon);
  });

  beforeEach(() => {
    before_ = snapshot();
  });

  afterEach(async () => {
    const left = await settle(before_);
    assert.deepEqual(left, [], "the container left something on the host");
  });

  test("the command is PID 1 and sees none of the host's processes", () => {
    const marker = spawn("sleep", ["1234"], { stdio: "ignore" });
    try {
      const r = run("host", "sh", "-c", "echo pid=$$; ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '; echo; ps -eo pid,args; cat /proc/[0-9]*/cmdline | tr '\\0' ' '");
      assert.equal(r.code, 0, show(r));
      const [pidLine, procPids] = r.stdout.split("\n");
      assert.equal(pidLine, "pid=1");
      // sh (1), and the ls/grep/tr pipeline at most: nothing else exists in the namespace.
      const pids = procPids.trim().split(" ").map(Number);
      assert.ok(pids.includes(1), procPids);
      assert.ok(pids.length <= 4, `too many processes visible: ${procPids}`);
      assert.ok(existsSync(`/proc/${marker.pid}`), "the host marker is running");
      assert.doesNotMatch(r.stdout, /1234/, "the host's `sleep 1234` is visible inside");
      assert.doesNotMatch(r.stdout, /node|berth-helper/, "the runtime's processes are visible inside");
    } finally {
      marker.kill("SIGKILL");
    }
  });

  test("-h sets the hostname inside only (UTS namespace); the default is the id's first 12 chars", () => {
    const hostBefore = osHostname();
    const r = run("-h", "box1", "host", "sh", "-c", "hostname; echo $HOSTNAME; cat /proc/sys/kernel/hostname");
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, "box1\nbox1\nbox1\n");
    assert.equal(osHostname(), hostBefore);
    assert.notEqual(hostBefore, "box1");

    const d = run("host", "hostname");
    assert.equal(d.code, 0, show(d));
    assert.match(d.stdout, /^[0-9a-f]{12}\n$/);
    // Root in the container (default caps) may not change the hostname of the host.
    const s = run("host", "hostname", "changed-by-container");
    assert.notEqual(osHostname(), "changed-by-container");
    assert.equal(s.code, 1, show(s));
  });

  test("a mount made inside is invisible on the host (mount namespace); without CAP_SYS_ADMIN mount is refused", () => {
    const r = run("--cap-add", "SYS_ADMIN", "host", "sh", "-c",
      "mkdir -p /mnt/inner && mount -t tmpfs berthtestfs /mnt/inner && grep -c berthtestfs /proc/self/mountinfo && sleep 0.2");
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, "1\n", "the mount exists inside");
    assert.doesNotMatch(readFileSync("/proc/self/mountinfo", "utf8"), /berthtestfs/);
    assert.doesNotMatch(readFileSync("/proc/1/mountinfo", "utf8"), /berthtestfs/);

    const denied = run("host", "sh", "-c", "mkdir -p /mnt/inner && mount -t tmpfs berthtestfs /mnt/inner");
    assert.notEqual(denied.code, 0, show(denied));
    assert.match(denied.stderr, /permission denied/i);
  });

  test("a SysV shared memory segment of the host is invisible inside (IPC namespace)", { skip: !has("ipcmk") && "needs ipcmk (util-linux)" }, () => {
    const out = spawnSync("ipcmk", ["-M", "4096"], { encoding: "utf8" });
    assert.equal(out.status, 0, out.stderr);
    const id = /(\d+)\s*$/.exec(out.stdout)?.[1];
    assert.ok(id !== undefined, out.stdout);
    try {
      const hostSegments = readFileSync("/proc/sysvipc/shm", "utf8").trim().split("\n").slice(1).map((l) => l.trim().split(/\s+/)[1]);
      assert.ok(hostSegments.includes(id), "the host sees its segment");
      const r = run("host", "cat", "/proc/sysvipc/shm");
      assert.equal(r.code, 0, show(r));
      const lines = r.stdout.trim().split("\n");
      assert.match(lines[0], /shmid/, "the header is there: this is the real file");
      assert.deepEqual(lines.slice(1), [], "the container sees SysV segments");
    } finally {
      spawnSync("ipcrm", ["-m", id]);
    }
  });

  test("a memory hog is killed at --memory: exit 137 and an out-of-memory message", () => {
    // A pipeline in a shell: `tail` holds the 200 MB "line" and is OOM-killed.
    const r = run("--memory", "32m", "host", "sh", "-c", "head -c 200000000 /dev/zero | tail | wc -c");
    assert.equal(r.code, 137, show(r));
    assert.match(r.stderr, /^berth: container [0-9a-f]{12} was killed: out of memory \(limit 33554432 bytes\)$/m);

    // The hog is PID 1 itself.
    const p = run("--memory", "32m", "--rootfs", payloadRootfs, "/payload", "hog", "200");
    assert.equal(p.code, 137, show(p));
    assert.doesNotMatch(p.stdout, /allocated/);
    assert.match(p.stderr, /out of memory/);

    // Under the limit the same program completes: the limit, not the payload, is what killed it.
    const ok = run("--memory", "64m", "--rootfs", payloadRootfs, "/payload", "hog", "16");
    assert.equal(ok.code, 0, show(ok));
    assert.equal(ok.stdout, "allocated 16\n");
  });

  test("--cpus, --memory and --pids-limit are the limits of the container's own cgroup, seen at its cgroup root", () => {
    const v2 = isCgroup2();
    const files = v2
      ? ["/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max"]
      : ["/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us", "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/pids/pids.max"];
    const r = run("--cpus", "0.5", "--memory", "64m", "--pids-limit", "20", "host", "sh", "-c", `cat ${files.join(" ")}; cat /proc/self/cgroup`);
    assert.equal(r.code, 0, show(r));
    const lines = r.stdout.trim().split("\n");
    if (v2) {
      assert.deepEqual(lines.slice(0, 3), ["50000 100000", "67108864", "20"]);
    } else {
      assert.deepEqual(lines.slice(0, 4), ["50000", "100000", "67108864", "20"]);
    }
    // cgroup namespace: every hierarchy's path is "/" inside.
    for (const line of lines.slice(v2 ? 3 : 4)) assert.match(line, /^\d+:[^:]*:\/$/, line);

    // Without limits the container still gets its own (unlimited) cgroup.
    const free = run("host", "cat", v2 ? "/sys/fs/cgroup/pids.max" : "/sys/fs/cgroup/pids/pids.max");
    assert.equal(free.code, 0, show(free));
    assert.equal(free.stdout, "max\n");
  });

  test("a fork loop is stopped by --pids-limit and the container still ends", () => {
    // The shell fails to fork and gives up; the sleeps it did start die with PID 1.
    const r = run("--pids-limit", "10", "host", "sh", "-c", "for i in $(seq 1 30); do sleep 1000 & done; echo all-started");
    assert.notEqual(r.code, 0, show(r));
    assert.match(r.stderr, /can't fork|Cannot fork|Resource temporarily unavailable/i);
    assert.doesNotMatch(r.stdout, /all-started/);

    // Counted exactly: PID 1 plus 9 children fill the limit of 10; fork fails with EAGAIN (11).
    const p = run("--pids-limit", "10", "--rootfs", payloadRootfs, "/payload", "fork", "30");
    assert.equal(p.code, 0, show(p));
    assert.equal(p.stdout, "forked 9 failed 21 errno 11\n");
    // And without a limit all 30 forks succeed.
    const free = run("--rootfs", payloadRootfs, "/payload", "fork", "30");
    assert.equal(free.stdout, "forked 30 failed 0 errno 0\n", show(free));
  });

  describe("exit codes and signals", () => {
    test("the container's exit code is berth's", () => {
      assert.equal(run("host", "sh", "-c", "exit 42").code, 42);
      assert.equal(run("host", "true").code, 0);
      assert.equal(run("host", "false").code, 1);
    });

    test("SIGTERM to berth reaches PID 1: a trap runs and its exit code is returned", async () => {
      const b = spawnBerth(["run", "host", "sh", "-c", "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done"]);
      await waitFor("the trap to be set", () => b.output().stdout.includes("ready"));
      b.child.kill("SIGTERM");
      const { code } = await b.done;
      assert.equal(code, 7, JSON.stringify(b.output()));
      assert.equal(b.output().stdout, "ready\ngot-term\n");
    });

    test("a PID 1 killed by a signal gives 128+N: SIGKILL from the host -> 137, SIGSEGV -> 139", async () => {
      const b = spawnBerth(["run", "host", "sleep", "1001"]);
      // In-process: berth (node) -> helper -> the container's init, which is `sleep 1001`. Through the
      // daemon the init is the child of its monitor instead: look for it among all processes.
      const init = await waitFor("the container's init", () => {
        for (const helper of childrenOf(b.child.pid as number)) {
          for (const pid of childrenOf(helper)) {
            try {
              if (readFileSync(`/proc/${pid}/cmdline`, "utf8") === "sleep\x001001\x00") return pid;
            } catch { /* gone */ }
          }
        }
        for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p)).map(Number)) {
          try {
            if (readFileSync(`/proc/${pid}/cmdline`, "utf8") === "sleep\x001001\x00") return pid;
          } catch { /* gone */ }
        }
        return undefined;
      });
      process.kill(init, "SIGKILL");
      const { code } = await b.done;
      assert.equal(code, 137, JSON.stringify(b.output()));
      assert.equal(b.output().stderr, "", "a kill is not an out-of-memory kill");

      const segv = run("--rootfs", payloadRootfs, "/payload", "segv");
      assert.equal(segv.code, 139, show(segv));
    });
  });

  test("-t gives the command a terminal; without -t it has none", { skip: !has("script") && "needs script (util-linux)" }, () => {
    const cmd = `${process.execPath} ${BERTH_BIN} run -t host sh -c 'tty; stty size >/dev/null && echo stty-ok; exit 3'`;
    const r = spawnSync("script", ["-qec", cmd, "/dev/null"], { encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 3, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^\/dev\/pts\/0\r*\n/);
    assert.match(r.stdout, /stty-ok/);

    const n = run("host", "tty");
    assert.equal(n.code, 1, show(n));
    assert.equal(n.stdout, "not a tty\n");
  });

  test("-t without -i, in process: a resize of berth's terminal reaches the container's", { skip: !has("script") && "needs script (util-linux)" }, () => {
    // The helper looked at its stdin for the new size, which is /dev/null without -i: the size stuck.
    const dir = mkdtempSync(join(tmpdir(), "berth-winch-"));
    try {
      const inner = "stty size; touch /out/started; i=0; " +
        "while [ \"$(stty size)\" = \"30 100\" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; stty size; exit 4";
      writeFileSync(join(dir, "outer.sh"), [
        "stty rows 30 cols 100",
        `BERTH_NO_DAEMON=1 ${process.execPath} ${BERTH_BIN} run --rm -t -v ${dir}:/out host sh -c '${inner}' &`,
        "p=$!; i=0; while [ ! -e " + dir + "/started ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done",
        "stty rows 40 cols 120; kill -WINCH $p; wait $p",
      ].join("\n") + "\n");
      const r = spawnSync("script", ["-qec", `sh ${dir}/outer.sh`, "/dev/null"], { encoding: "utf8", timeout: 60_000 });
      assert.equal(r.status, 4, `${r.stdout}${r.stderr}`);
      assert.deepEqual(r.stdout.replace(/\0/g, "").trim().split(/\r*\n/), ["30 100", "40 120"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("capabilities: docker's default set, --cap-drop ALL, --cap-add, --privileged; no_new_privs and seccomp", () => {
    const status = (...flags: string[]) => {
      const r = run(...flags, "host", "cat", "/proc/self/status");
      assert.equal(r.code, 0, show(r));
      return r.stdout;
    };
    const d = status();
    for (const f of ["CapEff", "CapPrm", "CapBnd"]) assert.equal(statusField(d, f), DOCKER_DEFAULT_CAPS, f);
    assert.equal(statusField(d, "CapInh"), "0000000000000000");
    assert.equal(statusField(d, "CapAmb"), "0000000000000000");
    assert.equal(statusField(d, "NoNewPrivs"), "1");
    assert.equal(statusField(d, "Seccomp"), "2");

    const none = status("--cap-drop", "ALL");
    for (const f of ["CapEff", "CapPrm", "CapBnd"]) assert.equal(statusField(none, f), "0000000000000000", f);

    const admin = BigInt("0x" + statusField(status("--cap-add", "SYS_ADMIN"), "CapEff"));
    assert.equal((admin >> CAP_SYS_ADMIN_BIT) & 1n, 1n);
    assert.equal(admin & ~(1n << CAP_SYS_ADMIN_BIT), BigInt("0x" + DOCKER_DEFAULT_CAPS));

    // A non-root user keeps the bounding set but has no effective capabilities.
    const user = status("-u", "1000");
    assert.equal(statusField(user, "CapEff"), "0000000000000000");
    assert.equal(statusField(user, "CapBnd"), DOCKER_DEFAULT_CAPS);

    const priv = status("--privileged");
    const ours = statusField(readFileSync("/proc/self/status", "utf8"), "CapBnd");
    assert.equal(statusField(priv, "CapEff"), ours);
    assert.equal(statusField(priv, "NoNewPrivs"), "0");
    assert.equal(statusField(priv, "Seccomp"), "0");

    const unconfined = status("--security-opt", "seccomp=unconfined");
    assert.equal(statusField(unconfined, "Seccomp"), "0");
    assert.equal(statusField(unconfined, "CapEff"), DOCKER_DEFAULT_CAPS);
  });

  test("masked paths are empty, /proc/sys and /sys are read-only", () => {
    const hostKeys = readFileSync("/proc/keys", "utf8");
    const hostTimers = readFileSync("/proc/timer_list", "utf8");
    const r = run("host", "sh", "-c", [
      "echo keys=$(wc -c < /proc/keys)",
      "echo timers=$(wc -c < /proc/timer_list)",
      "[ -e /proc/kcore ] && echo kcore=$(head -c 16 /proc/kcore | wc -c)",
      "echo acpi=$(ls -A /proc/acpi | wc -l)",
      "echo firmware=$(ls -A /sys/firmware | wc -l)",
      "echo 1 > /proc/sys/kernel/ns_last_pid || echo procsys-refused",
      "touch /sys/berth-x || echo sys-refused",
      "echo 1 > /proc/sysrq-trigger || echo sysrq-refused",
      "true",
    ].join("; "));
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^keys=0$/m);
    assert.match(r.stdout, /^timers=0$/m);
    if (existsSync("/proc/kcore")) assert.match(r.stdout, /^kcore=0$/m);
    assert.match(r.stdout, /^acpi=0$/m);
    assert.match(r.stdout, /^firmware=0$/m);
    assert.match(r.stdout, /^procsys-refused$/m);
    assert.match(r.stdout, /^sys-refused$/m);
    assert.match(r.stdout, /^sysrq-refused$/m);
    assert.match(r.stderr, /ns_last_pid: Read-only file system/);
    assert.match(r.stderr, /\/sys\/berth-x.*Read-only file system/);
    // The host's files are not empty: masking is what emptied them.
    assert.ok(hostKeys.length > 0 && hostTimers.length > 0);

    // --privileged has no masks.
    const p = run("--privileged", "host", "sh", "-c", "wc -c < /proc/timer_list");
    assert.equal(p.code, 0, show(p));
    assert.ok(Number(p.stdout.trim()) > 0, p.stdout);
  });

  describe("errors", () => {
    const oneLine = (s: string) => s.trim().split("\n").length === 1;

    test("a missing command: 127 and a message naming it", () => {
      const r = run("host", "no-such-command-xyz");
      assert.equal(r.code, 127, show(r));
      assert.ok(oneLine(r.stderr), r.stderr);
      assert.match(r.stderr, /^berth: .*no-such-command-xyz.*not found/);
      assert.equal(r.stdout, "");
      const abs = run("host", "/no/such/file");
      assert.equal(abs.code, 127, show(abs));
    });

    test("a file that is not executable: 126", () => {
      const r = run("host", "/etc/passwd");
      assert.equal(r.code, 126, show(r));
      assert.ok(oneLine(r.stderr), r.stderr);
      assert.match(r.stderr, /^berth: .*\/etc\/passwd.*permission denied/);
    });

    test("bad flags and values: 125 and one line, before anything is created", () => {
      for (const args of [
        ["--bogus", "host", "true"],
        ["--memory", "12x", "host", "true"],
        ["--memory", "1m", "host", "true"],
        ["--cpus", "-1", "host", "true"],
        ["--rootfs", "/nonexistent", "true"],
        ["--uidmap", "0:100000:65536", "host", "true"],
        ["--cap-add", "NOT_A_CAP", "host", "true"],
        ["-w", "relative", "host", "true"],
        ["--network", "no-such-network", "host", "true"],
        ["no-such-image", "true"],
        ["host"],
      ]) {
        const r = run(...args);
        assert.equal(r.code, 125, `${args.join(" ")}: ${show(r)}`);
        assert.ok(oneLine(r.stderr), `${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, /^berth: /, args.join(" "));
        assert.equal(r.stdout, "");
      }
    });

    test("a missing --env-file: 125 and one line (berth's own handling)", async () => {
      // In-process, because node itself intercepts `--env-file` anywhere on its command line (next test).
      let err = "";
      const write = process.stderr.write;
      process.stderr.write = ((s: string) => { err += s; return true; }) as typeof process.stderr.write;
      let code: number;
      try {
        code = await main(["run", "--env-file", "/nonexistent-env-file", "host", "true"]);
      } finally {
        process.stderr.write = write;
      }
      assert.equal(code, 125);
      assert.equal(err, "berth: cannot read --env-file /nonexistent-env-file: no such file\n");
    });

    // bin/berth runs node with "--" so node 20 does not take --env-file for itself (nodejs/node#54232).
    test("a missing --env-file through the CLI binary: 125", () => {
      const r = run("--env-file", "/nonexistent-env-file", "host", "true");
      assert.equal(r.code, 125, show(r));
      assert.match(r.stderr, /^berth: /);
    });

    test("not root: 125", { skip: !has("setpriv") && "needs setpriv (util-linux)" }, () => {
      const r = spawnSync("setpriv", ["--reuid", "1000", "--regid", "1000", "--clear-groups", process.execPath, BERTH_BIN, "run", "host", "true"], { encoding: "utf8", timeout: 30_000 });
      assert.equal(r.status, 125, `${r.stdout}${r.stderr}`);
      assert.equal(r.stderr, "berth: berth run must be run as root (it creates namespaces, mounts and cgroups)\n");
    });
  });

  test("the image is not modified by writes inside; --read-only refuses them", () => {
    const name = `berth-newfile-${process.pid}`;
    const passwdBefore = sha256(join(image, "etc/passwd"));
    const r = run("host", "sh", "-c", `touch /${name} && echo intruder:x:0:0::/:/bin/sh >> /etc/passwd && rm /bin/ls && ls -d /${name} 2>&1; cat /${name} && echo wrote`);
    assert.match(r.stdout, /wrote/, show(r));
    assert.ok(!existsSync(join(image, name)), "a file created inside appeared in the image");
    assert.equal(sha256(join(image, "etc/passwd")), passwdBefore, "the image's /etc/passwd changed");
    assert.ok(existsSync(join(image, "usr/bin/ls")) || existsSync(join(image, "bin/ls")), "a file removed inside vanished from the image");
    // ... and not visible to the next container either.
    const next = run("host", "sh", "-c", `ls /${name} 2>/dev/null; grep -c intruder /etc/passwd`);
    assert.equal(next.stdout, "0\n", show(next));

    // A --rootfs directory is not written either.
    const d = run("--rootfs", payloadRootfs, "/payload", "hog", "1");
    assert.equal(d.code, 0, show(d));
    const rootfsEntries = spawnSync("ls", ["-A", payloadRootfs], { encoding: "utf8" }).stdout;
    assert.equal(rootfsEntries, "payload\n", "the runtime created files in the --rootfs directory");

    const ro = run("--read-only", "host", "sh", "-c", "touch /x; echo rc=$?; touch /tmp/x; echo tmp=$?");
    assert.match(ro.stdout, /^rc=1$/m, show(ro));
    assert.match(ro.stderr, /touch: cannot touch '\/x': Read-only file system/);
    // docker: --read-only does not make /dev or /proc read-only and /tmp is still the image's (ro) /tmp.
    assert.match(ro.stdout, /^tmp=1$/m);
  });

  test("--read-only does not write into the image or the --rootfs directory either", () => {
    const wd = `berth-ro-workdir-${process.pid}`;
    const dir = mkdtempSync(join(tmpdir(), "berth-ro-rootfs-"));
    try {
      const r = run("--read-only", "-w", `/${wd}`, "host", "pwd");
      assert.equal(r.stdout, `/${wd}\n`, show(r));
      writeFileSync(join(dir, "payload"), readFileSync(payload), { mode: 0o755 });
      const p = run("--read-only", "-w", "/wd", "--rootfs", dir, "/payload", "fds");
      assert.equal(p.code, 0, show(p));
      assert.ok(!existsSync(join(image, wd)), `--read-only -w created /${wd} in the image ${image}`);
      assert.deepEqual(readdirSync(dir), ["payload"], "--read-only wrote into the --rootfs directory");
    } finally {
      rmSync(join(image, wd), { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("user, working directory and environment: -u, -w, -e, --env-file", () => {
    const uid = run("-u", "1000", "host", "id", "-u");
    assert.equal(uid.stdout, "1000\n", show(uid));

    const named = run("-u", "berth", "host", "sh", "-c", "id; echo $HOME");
    assert.equal(named.code, 0, show(named));
    assert.equal(named.stdout, "uid=1000(berth) gid=1000(berth) groups=1000(berth),50(staff)\n/home/berth\n");

    const group = run("-u", "1000:50", "host", "id");
    assert.equal(group.stdout, "uid=1000(berth) gid=50(staff) groups=50(staff)\n", show(group));

    const unknown = run("-u", "no-such-user", "host", "id");
    assert.equal(unknown.code, 125, show(unknown));
    assert.match(unknown.stderr, /no-such-user/);

    const wd = run("-w", "/tmp", "host", "pwd");
    assert.equal(wd.stdout, "/tmp\n", show(wd));
    const made = run("-w", "/made/by/berth", "host", "pwd");
    assert.equal(made.stdout, "/made/by/berth\n", show(made));

    const envDir = mkdtempSync(join(tmpdir(), "berth-env-"));
    try {
      const file = join(envDir, "env");
      writeFileSync(file, "# a comment\nFROM_FILE=file value\nOVERRIDDEN=from-file\n\nPASSED\n");
      const r = spawnSync(process.execPath, [BERTH_BIN, "run", "-e", "FOO=bar", "--env-file", file, "-e", "OVERRIDDEN=from-flag", "-e", "PASSED_TOO", "host", "env"], {
        encoding: "utf8",
        env: { ...process.env, PASSED: "host-value", PASSED_TOO: "host-too" },
      });
      assert.equal(r.status, 0, r.stderr);
      const env = new Map(r.stdout.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
      assert.equal(env.get("FOO"), "bar");
      assert.equal(env.get("FROM_FILE"), "file value");
      assert.equal(env.get("OVERRIDDEN"), "from-flag");
      assert.equal(env.get("PASSED"), "host-value");
      assert.equal(env.get("PASSED_TOO"), "host-too");
      assert.equal(env.get("HOME"), "/root", "root's home from the image's /etc/passwd");
      assert.match(env.get("PATH") ?? "", /\/usr\/bin/);
      // Nothing else leaks from the host's environment.
      assert.deepEqual([...env.keys()].sort(), ["FOO", "FROM_FILE", "HOME", "HOSTNAME", "OVERRIDDEN", "PASSED", "PASSED_TOO", "PATH"]);
    } finally {
      rmSync(envDir, { recursive: true, force: true });
    }
  });

  test("--uidmap/--gidmap: root inside is an unprivileged uid on the host", () => {
    const out = mkdtempSync(join(tmpdir(), "berth-userns-"));
    chmodSync(out, 0o777);
    try {
      const r = run("--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536", "-v", `${out}:/out`, "host", "sh", "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /written-to-root && echo root-ok; touch /out/f; echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo procsys-refused");
      assert.equal(r.code, 0, show(r));
      const lines = r.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/).join(" "));
      assert.deepEqual(lines, ["0 100000 65536", "0 100000 65536", "0", "root-ok", "procsys-refused"]);
      const st = statSync(join(out, "f"));
      assert.equal(st.uid, 100000, "a file made by the container's root is owned by the mapped uid on the host");
      assert.equal(st.gid, 100000);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  test("--memory 0 and --cpus 0 mean no limit, as docker (they were refused)", () => {
    const r = run("--memory", "0", "--cpus", "0", "--rootfs", payloadRootfs, "/payload", "hog", "1");
    assert.equal(r.code, 0, show(r));
    const bad = run("--cpus", "-1", "--rootfs", payloadRootfs, "/payload", "hog", "1");
    assert.equal(bad.code, 125, show(bad));
    assert.match(bad.stderr, /invalid value "-1" for --cpus/);
  });

  test("--uidmap with a --rootfs whose /etc (host root's) lacks hosts: Berth's own /etc binds still go in", () => {
    // The container's root could not create /etc/hosts in a lower layer owned by host root: mount failed.
    const dir = mkdtempSync(join(tmpdir(), "berth-userns-rootfs-"));
    try {
      chmodSync(dir, 0o755); // as an unpacked rootfs (mkdtemp makes 0700, which the mapped root can't enter)
      spawnSync("mkdir", ["-p", join(dir, "etc")]);
      writeFileSync(join(dir, "payload"), readFileSync(payload), { mode: 0o755 });
      const r = run("--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536", "--rootfs", dir, "/payload", "hog", "1");
      assert.equal(r.code, 0, show(r));
      assert.deepEqual(readdirSync(join(dir, "etc")), [], "the mount points went to the throwaway layer, not the rootfs");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("-v binds a host directory; :ro makes it read-only", () => {
    const dir = mkdtempSync(join(tmpdir(), "berth-bind-"));
    try {
      writeFileSync(join(dir, "in"), "from-host\n");
      const rw = run("-v", `${dir}:/data`, "host", "sh", "-c", "cat /data/in; echo from-container > /data/out");
      assert.equal(rw.code, 0, show(rw));
      assert.equal(rw.stdout, "from-host\n");
      assert.equal(readFileSync(join(dir, "out"), "utf8"), "from-container\n");
      const ro = run("-v", `${dir}:/data:ro`, "host", "sh", "-c", "cat /data/in; echo x > /data/out2");
      assert.notEqual(ro.code, 0, show(ro));
      assert.match(ro.stderr, /Read-only file system/);
      assert.ok(!existsSync(join(dir, "out2")));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the default network is the bridge (eth0 with an address on its subnet, default route via its gateway); --network none: only lo", () => {
    const r = run("host", "sh", "-c", "cat /proc/net/dev; echo --; ip -o -4 addr show eth0; echo --; ip route");
    assert.equal(r.code, 0, show(r));
    const [dev, addr, routes] = r.stdout.split("--\n");
    const ifaces = dev.trim().split("\n").slice(2).map((l) => l.trim().split(":")[0]).sort();
    assert.deepEqual(ifaces, ["eth0", "lo"]);
    const inspect = berth(["network", "inspect", "bridge"]);
    assert.equal(inspect.code, 0, show(inspect));
    const { Subnet, Gateway } = (JSON.parse(inspect.stdout) as { IPAM: { Config: { Subnet: string; Gateway: string }[] } }[])[0].IPAM.Config[0];
    const ip = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(addr)?.[1];
    assert.ok(ip && contains(parseCidr(Subnet), ipToInt(ip)), `eth0 address ${ip} is not in the bridge's subnet ${Subnet}`);
    assert.match(routes, new RegExp(`^default via ${Gateway.replaceAll(".", "\\.")} dev eth0`, "m"));

    const none = run("--network", "none", "host", "cat", "/proc/net/dev");
    assert.equal(none.code, 0, show(none));
    assert.deepEqual(none.stdout.trim().split("\n").slice(2).map((l) => l.trim().split(":")[0]), ["lo"]);
  });

  // A daemon starts helpers from its own sealed copy, and the helper then skips its copy: only when its
  // binary is a memfd with every seal. One run from an unsealed memfd (python3 makes it) still copies.
  test("CVE-2019-5736: the helper skips its sealed copy only when it runs from a sealed memfd", { skip: spawnSync("python3", ["-c", "0"]).status !== 0 }, () => {
    const script = `
import os, socket, time, subprocess, fcntl, sys
fd = os.dup2(os.memfd_create("berth-helper", os.MFD_ALLOW_SEALING), 20, inheritable=True)
os.write(fd, open(sys.argv[1], "rb").read())
if sys.argv[2] == "sealed": fcntl.fcntl(fd, 1033, 1 | 2 | 4 | 8)  # F_ADD_SEALS: SEAL, SHRINK, GROW, WRITE
a, b = socket.socketpair()
os.dup2(b.fileno(), 10, inheritable=True)
p = subprocess.Popen(["berth-helper", "10"], pass_fds=(10,), executable=f"/proc/{os.getpid()}/fd/{fd}")
for _ in range(100):
  time.sleep(0.02)
  same = os.stat(f"/proc/{p.pid}/exe").st_ino == os.fstat(fd).st_ino
  if not same or sys.argv[2] == "sealed" and _ > 10: break
print("same" if same else "copied")
a.close(); os.close(10); p.kill(); p.wait()
`;
    const helper = join(REPO, "native/build/berth-helper");
    const unsealed = spawnSync("python3", ["-c", script, helper, "unsealed"], { encoding: "utf8" });
    assert.equal(unsealed.stdout.trim(), "copied", unsealed.stderr);
    const sealed = spawnSync("python3", ["-c", script, helper, "sealed"], { encoding: "utf8" });
    assert.equal(sealed.stdout.trim(), "same", sealed.stderr);
  });

  test("CVE-2019-5736: the helper runs from a sealed memfd; only fds 0-2 reach the command", async () => {
    // The in-process path (`berth run` without the daemon), where the helper is berth's own child.
    const b = spawnBerth(["run", "host", "sleep", "1002"], { ...process.env, BERTH_NO_DAEMON: "1" });
    try {
      const helper = await waitFor("the helper", () => {
        const h = childrenOf(b.child.pid as number)[0];
        return h !== undefined && childrenOf(h).length > 0 ? h : undefined;
      });
      const exe = await waitFor("the helper's re-exec", () => {
        try {
          const link = readlinkSync(`/proc/${helper}/exe`);
          return link.startsWith("/memfd:") ? link : undefined;
        } catch {
          return undefined;
        }
      });
      assert.match(exe, /^\/memfd:/);
      // The helper's binary cannot be opened for writing through /proc/PID/exe (sealed, and being executed).
      const w = spawnSync("sh", ["-c", `exec 3>>/proc/${helper}/exe && printf x >&3 && echo wrote`], { encoding: "utf8" });
      assert.notEqual(w.stdout.trim(), "wrote", "wrote to the helper binary through /proc/PID/exe");
    } finally {
      b.child.kill("SIGTERM");
      // sleep as PID 1 ignores SIGTERM: end it for real.
      for (const h of childrenOf(b.child.pid as number)) {
        for (const c of childrenOf(h)) {
          try { process.kill(c, "SIGKILL"); } catch { /* already gone: the SIGTERM above may have ended it */ }
        }
      }
      await b.done;
    }

    const ls = run("host", "ls", "/proc/self/fd");
    assert.equal(ls.stdout, "0\n1\n2\n3\n", show(ls));
    const fds = run("--rootfs", payloadRootfs, "/payload", "fds");
    assert.equal(fds.stdout, "0 1 2\n", show(fds));
    // With a terminal, too.
    const t = spawnSync("script", ["-qec", `${process.execPath} ${BERTH_BIN} run -t --rootfs ${payloadRootfs} /payload fds`, "/dev/null"], { encoding: "utf8", timeout: 30_000 });
    assert.match(t.stdout, /^0 1 2\r*\n/, t.stdout + t.stderr);
  });

  test("-i passes stdin; without -i the command reads /dev/null", () => {
    const withInput = spawnSync(process.execPath, [BERTH_BIN, "run", "-i", "host", "sh", "-c", "read line; echo got:$line"], { encoding: "utf8", input: "hello\n" });
    assert.equal(withInput.stdout, "got:hello\n", withInput.stderr);
    const without = spawnSync(process.execPath, [BERTH_BIN, "run", "host", "sh", "-c", "cat; echo end"], { encoding: "utf8", input: "hello\n" });
    assert.equal(without.stdout, "end\n", without.stderr);
  });

  test("nothing is left behind after failures (missing command, OOM, non-executable)", async () => {
    for (const args of [["host", "no-such-command-xyz"], ["--memory", "16m", "--rootfs", payloadRootfs, "/payload", "hog", "100"], ["host", "/etc/passwd"], ["--cpuset-cpus", "1000", "host", "true"]]) {
      const snap = snapshot();
      const r = run(...args);
      assert.notEqual(r.code, 0, show(r));
      assert.deepEqual(await settle(snap), [], args.join(" "));
    }
  });
});
