// Real engines run containers through `berth-oci`: dockerd (its containerd and runc v2 shim), podman
// (conmon) and containerd (`ctr run --runc-binary`). Each engine gets private sockets and roots under a
// temp dir, a busybox image loaded from an archive made here (no network), `--network none`, and is
// stopped and removed in `after` whatever happened. Needs root and the engines (scripts/test-all.sh
// installs docker.io, podman, containerd, busybox-static); skipped without them outside CI.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  BERTH_OCI,
  buildImageArchive,
  cgroupsNamed,
  cmd,
  type Containerd,
  type Dockerd,
  IMAGE,
  missing,
  type Podman,
  setupPodman,
  show,
  sleep,
  startContainerd,
  startDockerd,
  waitUntil,
} from "../helpers/engines.js";

/** Outside CI a missing engine skips its suite; in CI (which installs them) it fails. */
function gate(bins: string[]): string | false {
  const why = missing(bins);
  if (why && process.env.CI && process.getuid?.() === 0) throw new Error(`engines test: ${why}`);
  return why;
}

let imageDir: string | undefined;
let imageTar = "";
function image(): string {
  if (!imageDir) {
    imageDir = mkdtempSync("/tmp/berth-image-");
    imageTar = buildImageArchive(imageDir);
  }
  return imageTar;
}
after(() => { if (imageDir) rmSync(imageDir, { recursive: true, force: true }); });

/** A busybox loop that exits 3 on SIGTERM, printing as it goes: for -d/logs/exec/stop. */
const SERVICE = 'echo hello-from-service; trap "echo got-sigterm; exit 3" TERM; while true; do sleep 0.1; done';

describe("dockerd with --add-runtime berth", { skip: gate(["dockerd", "docker", "busybox"]) }, () => {
  let d: Dockerd;
  const run = (args: string[], timeoutMs = 60_000) => d.docker(["run", "--runtime", "berth", "--network", "none", ...args], { timeoutMs });
  const explain = (what: string, r: ReturnType<typeof cmd>) => `${show(what, r)}\n--- dockerd log (end)\n${d.log()}`;

  before(async () => {
    d = await startDockerd();
    const load = d.docker(["load", "-i", image()]);
    assert.equal(load.code, 0, show("docker load", load));
    const info = d.docker(["info", "--format", "{{json .Runtimes}}"]);
    assert.match(info.stdout, /"berth"/, show("docker info", info));
  });
  after(async () => { await d?.stop(); });

  test("docker run --rm IMG echo hi, and the container's cgroups and state are gone afterwards", () => {
    const cidfile = join(d.dir, "cid-echo");
    const r = run(["--rm", "--cidfile", cidfile, IMAGE, "echo", "hi"]);
    assert.equal(r.code, 0, explain("docker run", r));
    assert.equal(r.stdout, "hi\n");
    const id = readFileSync(cidfile, "utf8").trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.deepEqual(cgroupsNamed(id), [], "the container's cgroups were removed");
    const stateRoot = join(d.dir, "exec", "runtime-runc", "moby");
    assert.ok(!existsSync(join(stateRoot, id)), "berth-oci's state dir was removed");
  });

  test("exit codes, stdin and stderr pass through the shim's pipes", () => {
    const exit = run(["--rm", IMAGE, "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 42"]);
    assert.equal(exit.code, 42, explain("exit 42", exit));
    assert.equal(exit.stdout, "to-stdout\n");
    assert.match(exit.stderr, /to-stderr/);
    const input = Array.from({ length: 20000 }, (_, i) => `line ${i}`).join("\n") + "\n";
    const cat = d.docker(["run", "--runtime", "berth", "--network", "none", "-i", "--rm", IMAGE, "wc", "-l"], { input });
    assert.equal(cat.code, 0, explain("docker run -i", cat));
    assert.equal(cat.stdout.trim(), "20000");
    const big = run(["--rm", IMAGE, "seq", "1", "100000"]);
    assert.equal(big.code, 0, explain("seq", big));
    assert.equal(big.stdout.split("\n").filter(Boolean).length, 100000);
  });

  test("a missing command fails docker run with berth-oci's message (read back from --log json)", () => {
    const r = run(["--rm", IMAGE, "/no/such/command"]);
    assert.equal(r.code, 127, explain("docker run /no/such/command", r));
    assert.match(r.stderr, /\/no\/such\/command/);
    assert.match(r.stderr, /no such file or directory/i);
  });

  test("-d, logs, exec (exit codes), stop (SIGTERM reaches the process), inspect, rm", async () => {
    const start = run(["-d", "--name", "svc", IMAGE, "sh", "-c", SERVICE]);
    assert.equal(start.code, 0, explain("docker run -d", start));
    const id = start.stdout.trim();
    await waitUntil("the service's first line in docker logs", () => d.docker(["logs", "svc"]).stdout.includes("hello-from-service"), 20_000);
    const status = d.docker(["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "svc"]);
    assert.match(status.stdout, /^running [1-9]\d*\n$/, show("inspect", status));

    const ex = d.docker(["exec", "svc", "sh", "-c", "echo exec-ok; cat /proc/1/cmdline | tr '\\0' ' '"]);
    assert.equal(ex.code, 0, explain("docker exec", ex));
    assert.match(ex.stdout, /^exec-ok\nsh -c /);
    const exCode = d.docker(["exec", "svc", "sh", "-c", "exit 7"]);
    assert.equal(exCode.code, 7, explain("docker exec exit 7", exCode));
    const exEnv = d.docker(["exec", "-e", "FOO=bar", "-w", "/tmp", "-u", "65534", "svc", "sh", "-c", 'echo "$FOO $(pwd) $(id -u)"']);
    assert.equal(exEnv.stdout, "bar /tmp 65534\n", explain("docker exec -e -w -u", exEnv));

    const top = d.docker(["top", "svc"]);
    assert.equal(top.code, 0, explain("docker top (berth-oci ps)", top));
    assert.match(top.stdout, /sh -c/);

    const stop = d.docker(["stop", "-t", "10", "svc"]);
    assert.equal(stop.code, 0, explain("docker stop", stop));
    const after = d.docker(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "svc"]);
    assert.equal(after.stdout, "exited 3\n", "the trap ran: SIGTERM reached the container's init");
    assert.match(d.docker(["logs", "svc"]).stdout, /got-sigterm/);
    const rm = d.docker(["rm", "svc"]);
    assert.equal(rm.code, 0, explain("docker rm", rm));
    assert.deepEqual(cgroupsNamed(id), []);
  });

  test("pause, unpause, update, kill with a signal, restart, rm -f", async () => {
    const start = run(["-d", "--name", "ctl", IMAGE, "sh", "-c", 'trap "echo got-usr1" USR1; while true; do sleep 0.1; done']);
    assert.equal(start.code, 0, explain("docker run -d", start));
    const state = () => d.docker(["inspect", "-f", "{{.State.Status}}", "ctl"]).stdout.trim();
    assert.equal(d.docker(["pause", "ctl"]).code, 0);
    assert.equal(state(), "paused");
    assert.equal(d.docker(["unpause", "ctl"]).code, 0);
    assert.equal(state(), "running");
    const upd = d.docker(["update", "--memory", "64m", "--memory-swap", "128m", "ctl"]);
    assert.equal(upd.code, 0, explain("docker update", upd));
    const limit = d.docker(["exec", "ctl", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"]);
    assert.equal(limit.stdout.trim(), String(64 << 20), explain("memory limit after update", limit));
    assert.equal(d.docker(["kill", "-s", "USR1", "ctl"]).code, 0);
    await waitUntil("the USR1 trap", () => d.docker(["logs", "ctl"]).stdout.includes("got-usr1"), 10_000);
    const restart = d.docker(["restart", "-t", "1", "ctl"]);
    assert.equal(restart.code, 0, explain("docker restart", restart));
    assert.equal(state(), "running");
    const rm = d.docker(["rm", "-f", "ctl"]);
    assert.equal(rm.code, 0, explain("docker rm -f", rm));
  });

  test("-it under script: the process gets a pty (/dev/pts/0) through --console-socket", () => {
    const line = `docker run --runtime berth --network none --rm -it ${IMAGE} sh -c 'tty; echo cols=$(stty size)'`;
    const r = cmd("script", ["-qec", line, "/dev/null"], { env: d.env, timeoutMs: 60_000 });
    assert.equal(r.code, 0, explain("script docker run -it", r));
    assert.match(r.stdout, /\/dev\/pts\/0\r?\n/);
    const ex = cmd("script", ["-qec", `docker run --runtime berth --network none -d --name tty-exec ${IMAGE} sleep 60 >/dev/null && docker exec -it tty-exec tty`, "/dev/null"], { env: d.env, timeoutMs: 60_000 });
    d.docker(["rm", "-f", "tty-exec"]);
    assert.equal(ex.code, 0, explain("docker exec -it", ex));
    assert.match(ex.stdout, /\/dev\/pts\/\d+/);
  });

  test("--memory 32m is enforced: a memory hog is OOM-killed (exit 137, OOMKilled)", () => {
    const r = run(["--name", "hog", "--memory", "32m", "--memory-swap", "32m", IMAGE, "sh", "-c", "grep :memory: /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; tail /dev/zero"], 120_000);
    try {
      assert.equal(r.code, 137, explain("memory hog", r));
      const id = d.docker(["inspect", "-f", "{{.Id}}", "hog"]).stdout.trim();
      // dockerd's cgroupsPath "/docker/<id>" (cgroupfs driver), made from the hierarchy root.
      assert.equal(r.stdout, `${r.stdout.split(":")[0]}:memory:/docker/${id}\n${32 << 20}\n`);
      const st = d.docker(["inspect", "-f", "{{.State.ExitCode}} {{.State.OOMKilled}}", "hog"]);
      assert.equal(st.stdout, "137 true\n", show("inspect hog", st));
    } finally {
      d.docker(["rm", "-f", "hog"]);
    }
  });

  test("--pids-limit is enforced: forks beyond it fail", () => {
    const script = "cat /sys/fs/cgroup/pids/pids.max; i=0; while [ $i -lt 20 ]; do sleep 5 & i=$((i+1)); done; echo spawned-all";
    const r = run(["--rm", "--pids-limit", "8", IMAGE, "sh", "-c", script]);
    assert.equal(r.stdout.split("\n")[0], "8", explain("pids.max", r));
    assert.match(r.stderr, /can't fork|Resource temporarily unavailable/, explain("fork beyond the limit", r));
    assert.doesNotMatch(r.stdout, /spawned-all/);
  });

  test("-u 1000 --read-only --cap-drop ALL: a non-root init can open the exec fifo", () => {
    const r = run(["--rm", "-u", "1000:1000", "--read-only", "--cap-drop", "ALL", IMAGE, "sh", "-c", "id -u; grep CapEff /proc/self/status; touch /x 2>&1 || echo read-only"]);
    assert.equal(r.code, 0, explain("docker run -u 1000", r));
    assert.match(r.stdout, /^1000\nCapEff:\s+0+\n/);
    assert.match(r.stdout, /read-only/);
  });
});

describe("podman --runtime berth-oci", { skip: gate(["podman", "conmon", "busybox"]) }, () => {
  let p: Podman;
  const run = (args: string[], timeoutMs = 60_000) => p.podman(["run", "--pull", "never", "--network", "none", ...args], { timeoutMs });

  before(() => {
    p = setupPodman();
    const load = p.podman(["load", "-i", image()]);
    assert.equal(load.code, 0, show("podman load", load));
    // podman names an unqualified RepoTag localhost/...: give it the name the other engines use.
    const loaded = /Loaded image(?:\(s\))?: (\S+)/.exec(load.stdout)?.[1];
    assert.ok(loaded, show("podman load", load));
    if (loaded !== IMAGE) assert.equal(p.podman(["tag", loaded, IMAGE]).code, 0);
  });
  after(async () => { await p?.cleanup(); });

  test("podman run --rm IMG echo hi", () => {
    const r = run(["--rm", IMAGE, "echo", "hi"]);
    assert.equal(r.code, 0, show("podman run", r));
    assert.equal(r.stdout, "hi\n");
    const code = run(["--rm", IMAGE, "sh", "-c", "exit 9"]);
    assert.equal(code.code, 9, show("podman run exit 9", code));
  });

  test("-d, logs, exec, stop, inspect shows Berth as the runtime", async () => {
    const start = run(["-d", "--name", "psvc", IMAGE, "sh", "-c", SERVICE]);
    assert.equal(start.code, 0, show("podman run -d", start));
    const id = start.stdout.trim();
    await waitUntil("the service's first line in podman logs", () => p.podman(["logs", "psvc"]).stdout.includes("hello-from-service"), 20_000);
    const info = p.podman(["inspect", "-f", "{{.OCIRuntime}} {{.State.Status}}", "psvc"]);
    assert.equal(info.stdout, `${BERTH_OCI} running\n`, show("podman inspect", info));

    const ex = p.podman(["exec", "psvc", "sh", "-c", "echo exec-ok; exit 5"]);
    assert.equal(ex.code, 5, show("podman exec", ex));
    assert.equal(ex.stdout, "exec-ok\n");

    const stop = p.podman(["stop", "-t", "10", "psvc"]);
    assert.equal(stop.code, 0, show("podman stop", stop));
    const after = p.podman(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "psvc"]);
    assert.equal(after.stdout, "exited 3\n", show("podman inspect after stop", after));
    assert.match(p.podman(["logs", "psvc"]).stdout, /got-sigterm/);
    const rm = p.podman(["rm", "psvc"]);
    assert.equal(rm.code, 0, show("podman rm", rm));
    assert.deepEqual(cgroupsNamed(id), []);
  });

  test("--memory 32m: a hog exits 137, in podman's cgroupsPath /libpod_parent/libpod-<id>", () => {
    const r = run(["--name", "phog", "--memory", "32m", "--memory-swap", "32m", IMAGE, "sh", "-c", "grep :memory: /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; tail /dev/zero"], 120_000);
    try {
      assert.equal(r.code, 137, show("podman memory hog", r));
      const id = p.podman(["inspect", "-f", "{{.Id}}", "phog"]).stdout.trim();
      assert.equal(r.stdout, `${r.stdout.split(":")[0]}:memory:/libpod_parent/libpod-${id}\n${32 << 20}\n`);
      // (OOMKilled stays false here with runc too: conmon's OOM watch doesn't see v1 events on this host.)
    } finally {
      p.podman(["rm", "-f", "phog"]);
    }
  });

  test("--read-only, --tmpfs and --mount type=tmpfs: podman's tmpcopyup tmpfs starts with the image's files", () => {
    // --read-only puts tmpcopyup tmpfs on /run, /tmp and /var/tmp; --tmpfs and --mount type=tmpfs add it too.
    const ro = run(["--rm", "--read-only", IMAGE, "sh", "-c", "touch /tmp/a /run/a /var/tmp/a && echo tmp-writable; touch /x 2>/dev/null || echo root-ro"]);
    assert.equal(ro.stdout, "tmp-writable\nroot-ro\n", show("podman run --read-only", ro));
    // /bin as a tmpfs: sh only runs from it if the copy happened.
    const bin = run(["--rm", "--tmpfs", "/bin:rw,exec", IMAGE, "/bin/sh", "-c", "grep -c ' /bin tmpfs' /proc/mounts; ls /bin | grep -c '^sh$'"]);
    assert.equal(bin.stdout, "1\n1\n", show("podman run --tmpfs /bin", bin));
    const mount = run(["--rm", "--mount", "type=tmpfs,destination=/bin,tmpfs-mode=0755", IMAGE, "/bin/sh", "-c", "stat -c %a /bin; ls /bin/busybox"]);
    assert.equal(mount.code, 0, show("podman run --mount type=tmpfs", mount));
    assert.equal(mount.stdout, "755\n/bin/busybox\n", show("podman run --mount type=tmpfs", mount));
  });

  test("-it under script: a pty through --console-socket (conmon)", () => {
    const env = { ...process.env };
    const line = `podman ${podmanFlags(p)} run --pull never --network none --rm -it ${IMAGE} tty`;
    const r = cmd("script", ["-qec", line, "/dev/null"], { env: { ...env, CONTAINERS_CONF: join(p.dir, "containers.conf"), CONTAINERS_STORAGE_CONF: join(p.dir, "storage.conf"), BERTH_NODE: process.execPath } });
    assert.equal(r.code, 0, show("script podman run -it", r));
    assert.match(r.stdout, /\/dev\/pts\/0/);
  });
});

function podmanFlags(p: Podman): string {
  return ["--root", join(p.dir, "graph"), "--runroot", join(p.dir, "run"), "--tmpdir", join(p.dir, "tmp"), "--runtime", BERTH_OCI, "--cgroup-manager", "cgroupfs", "--events-backend", "file"].join(" ");
}

describe("containerd: ctr run --runc-binary berth-oci (runc v2 shim)", { skip: gate(["containerd", "ctr", "containerd-shim-runc-v2", "busybox"]) }, () => {
  let c: Containerd;
  const berth = () => ["--runc-binary", BERTH_OCI, "--runc-root", c.runcRoot];

  before(async () => {
    c = await startContainerd();
    const load = c.ctr(["image", "import", image()]);
    assert.equal(load.code, 0, show("ctr image import", load));
  });
  after(async () => { await c?.stop(); });

  test("ctr run --rm IMG id echo hi", () => {
    const r = c.ctr(["run", ...berth(), "--rm", IMAGE, "c-echo", "echo", "hi"]);
    assert.equal(r.code, 0, show("ctr run", r));
    assert.equal(r.stdout, "hi\n");
    const code = c.ctr(["run", ...berth(), "--rm", IMAGE, "c-exit", "sh", "-c", "exit 6"]);
    assert.equal(code.code, 6, show("ctr run exit 6", code));
    assert.deepEqual(readdirSync(join(c.runcRoot, c.namespace)), [], "berth-oci's state is gone after --rm");
    assert.deepEqual(cgroupsNamed("c-echo"), []);
  });

  test("ctr run -d, task exec, task kill, task rm", async () => {
    const start = c.ctr(["run", ...berth(), "-d", IMAGE, "c-svc", "sh", "-c", SERVICE]);
    assert.equal(start.code, 0, show("ctr run -d", start));
    const ls = c.ctr(["task", "ls"]);
    assert.match(ls.stdout, /c-svc\s+\d+\s+RUNNING/, show("ctr task ls", ls));
    const ex = c.ctr(["task", "exec", "--exec-id", "e1", "c-svc", "sh", "-c", "echo in-exec; exit 4"]);
    assert.equal(ex.code, 4, show("ctr task exec", ex));
    assert.equal(ex.stdout, "in-exec\n");
    const kill = c.ctr(["task", "kill", "c-svc"]);
    assert.equal(kill.code, 0, show("ctr task kill", kill));
    await waitUntil("the task to stop", () => /STOPPED/.test(c.ctr(["task", "ls"]).stdout), 20_000);
    // Killing an exited task: the shim runs `berth-oci kill` and must recognise runc's "container not
    // running" (NotFound: process already finished), not report an unknown error.
    const late = c.ctr(["task", "kill", "-s", "SIGKILL", "c-svc"]);
    assert.doesNotMatch(late.stderr, /unknown error/, show("ctr task kill of an exited task", late));
    const rm = c.ctr(["task", "rm", "c-svc"]);
    assert.equal(rm.code, 0, show("ctr task rm", rm));
    assert.equal(c.ctr(["container", "rm", "c-svc"]).code, 0);
    await sleep(0);
    assert.deepEqual(cgroupsNamed("c-svc"), []);
  });

  test("ctr run -t under script gets a pty", () => {
    const line = `ctr --address ${join(c.dir, "containerd.sock")} --namespace ${c.namespace} run --runc-binary ${BERTH_OCI} --runc-root ${c.runcRoot} --rm -t ${IMAGE} c-tty tty`;
    const r = cmd("script", ["-qec", line, "/dev/null"], { env: { ...process.env, BERTH_NODE: process.execPath } });
    assert.equal(r.code, 0, show("script ctr run -t", r));
    assert.match(r.stdout, /\/dev\/pts\/0/);
  });
});
