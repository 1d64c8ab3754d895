// Against a private `berth daemon`, with the real docker CLI and berth's: an exec that cannot start
// (what dockerd answers: the stream is upgraded, the error is written on it, the exec's exit code is 126),
// and `cp` to and from stopped containers (the rootfs with the container's volumes and binds mounted in a
// private place, all of it unmounted and removed afterwards, also on errors), `cp -L`.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isRoot } from "../helpers/berth.js";
import { DOCKER, ok, TestDaemon, waitFor } from "../helpers/daemon.js";

const skip = !isRoot ? "needs root" : !DOCKER ? "needs the docker CLI" : false;

describe("exec that cannot start, and cp, via the docker CLI and berth's", { skip, concurrency: false }, () => {
  let d: TestDaemon;

  before(async () => {
    d = new TestDaemon();
    await d.start();
  });

  after(async () => {
    const left = await d.destroy();
    assert.deepEqual(left, []);
  });

  // docker 20.10's words; berth adds a hint to the missing user's line.
  const cases: { args: string[]; message: RegExp }[] = [
    { args: ["/nonexist"], message: /^OCI runtime exec failed: exec failed: unable to start container process: exec: "\/nonexist": stat \/nonexist: no such file or directory: unknown\r?\n$/ },
    { args: ["nonexistcmd"], message: /^OCI runtime exec failed: exec failed: unable to start container process: exec: "nonexistcmd": executable file not found in \$PATH: unknown\r?\n$/ },
    { args: ["/etc"], message: /^OCI runtime exec failed: exec failed: unable to start container process: exec: "\/etc": permission denied: unknown\r?\n$/ },
    { args: ["-w", "/nonexist", "pwd"], message: /^OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd \("\/nonexist"\) set in config.json failed: no such file or directory: unknown\r?\n$/ },
    { args: ["-u", "nosuchuser", "true"], message: /^unable to find user nosuchuser: no matching entries in passwd file/ },
  ];

  test("an exec that fails to start: the reason on the stream, exit code 126, with -t, -i and -d too", async () => {
    ok(d.docker(["run", "-d", "--name", "ex", "host", "sleep", "1000"]), "run");
    for (const cli of ["docker", "berth"] as const) {
      for (const c of cases) {
        const [opts, cmd] = c.args[0].startsWith("-") ? [c.args.slice(0, 2), c.args.slice(2)] : [[], c.args];
        for (const extra of [[], ["-t"], ["-i"]]) {
          const what = `${cli} exec ${[...extra, ...opts].join(" ")} ex ${cmd.join(" ")}`;
          const r = d[cli](["exec", ...extra, ...opts, "ex", ...cmd], { input: "" });
          assert.equal(r.code, 126, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
          // As dockerd, the reason comes as the exec's output (stdout), and nothing else is said.
          assert.match(r.stdout, c.message, what);
          assert.equal(r.stderr.replace(/^WARNING.*\n/gm, ""), "", what);
        }
        // Detached, there is no stream: the daemon's error response, and 1.
        const r = d[cli](["exec", "-d", ...opts, "ex", ...cmd]);
        assert.equal(r.code, 1, `${cli} exec -d ${c.args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr.trim(), new RegExp(`^(berth: )?Error response from daemon: ${c.message.source.slice(1).replace(/\\r\?\\n\$$/, "")}`), `${cli} exec -d ${c.args.join(" ")}`);
      }
    }
    // The API: upgraded, the reason framed as stdout, ExitCode 126 in the inspect; a second start is refused.
    const created = await d.api("POST", "/v1.43/containers/ex/exec", { Cmd: ["/nonexist"], AttachStdout: true, AttachStderr: true });
    const execId = (created.body as { Id: string }).Id;
    const started = await d.api("POST", `/v1.43/exec/${execId}/start`, { Detach: false, Tty: false });
    assert.equal(started.status, 200);
    assert.equal(started.text.charCodeAt(0), 1, "a stdout frame");
    assert.match(started.text, /stat \/nonexist: no such file or directory/);
    const info = await d.api("GET", `/v1.43/exec/${execId}/json`);
    assert.equal((info.body as { ExitCode: number; Running: boolean }).ExitCode, 126);
    assert.equal((info.body as { ExitCode: number; Running: boolean }).Running, false);
    const again = await d.api("POST", `/v1.43/exec/${execId}/start`, { Detach: true });
    assert.equal(again.status, 409);
    // A working exec still works, and a missing exec is still a 404 (before any upgrade).
    const fine = d.docker(["exec", "ex", "sh", "-c", "echo fine; exit 3"]);
    assert.deepEqual([fine.code, fine.stdout], [3, "fine\n"]);
    assert.equal((await d.api("POST", "/v1.43/exec/nosuchexec/start", { Detach: false })).status, 404);
    ok(d.docker(["rm", "-f", "ex"]), "rm");
  });

  /** Nothing of a stopped container's cp may stay mounted or on disk. */
  function assertNothingLeft(what: string): void {
    const mnt = join(d.execRoot, "mnt");
    assert.deepEqual(existsSync(mnt) ? readdirSync(mnt) : [], [], `${what}: left under ${mnt}`);
    const mounts = readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4]).filter((m) => m?.startsWith(mnt));
    assert.deepEqual(mounts, [], `${what}: still mounted`);
  }

  test("cp with a stopped container: a missing path is docker's 404, volumes and binds are mounted, nothing is left behind", async () => {
    const tmp = mkdtempSync("/tmp/berth-cpv-");
    try {
      const bind = join(tmp, "bind");
      mkdirSync(bind);
      writeFileSync(join(tmp, "f"), "into the volume\n");
      ok(d.docker(["create", "--name", "cpc", "-v", "cpvol:/data", "-v", `${bind}:/b`, "-v", `${bind}:/ro:ro`, "host", "true"]), "create");
      const missing = d.docker(["cp", "cpc:/nonexist", join(tmp, "x")]);
      assert.equal(missing.code, 1);
      assert.equal(missing.stderr.trim(), "Error response from daemon: Could not find the file /nonexist in container cpc");
      assertNothingLeft("cp of a missing path");
      for (const cli of ["docker", "berth"] as const) {
        ok(d[cli](["cp", join(tmp, "f"), `cpc:/data/${cli}`]), `${cli} cp into the volume`);
        ok(d[cli](["cp", join(tmp, "f"), `cpc:/b/${cli}`]), `${cli} cp into the bind`);
        assertNothingLeft(`${cli} cp in`);
      }
      // Really in the volume (another container sees it) and in the bind's source.
      assert.equal(ok(d.docker(["run", "--rm", "-v", "cpvol:/v", "host", "cat", "/v/docker", "/v/berth"]), "cat"), "into the volume\n".repeat(2));
      assert.equal(readFileSync(join(bind, "docker"), "utf8"), "into the volume\n");
      assert.equal(readFileSync(join(bind, "berth"), "utf8"), "into the volume\n");
      const ro = d.docker(["cp", join(tmp, "f"), "cpc:/ro/x"]);
      assert.notEqual(ro.code, 0, "a read-only bind stays read-only");
      assert.equal(existsSync(join(bind, "x")), false);
      assertNothingLeft("cp into a read-only bind");
      // And out of them, from the stopped container.
      ok(d.docker(["cp", "cpc:/data/docker", join(tmp, "back")]), "cp out of the volume");
      assert.equal(readFileSync(join(tmp, "back"), "utf8"), "into the volume\n");
      ok(d.docker(["cp", "cpc:/b", join(tmp, "bback")]), "cp out of the bind");
      assert.deepEqual(readdirSync(join(tmp, "bback")).sort(), ["berth", "docker"]);
      // docker's CLI hangs up once it has read the archive, before the response's end: the clean-up
      // follows that, so wait for it here (it must come).
      await waitFor("cp out to clean up", () => { try { assertNothingLeft("cp out"); return true; } catch { return false; } });
      assertNothingLeft("cp out");
      // The container's own files are all still there after all this (no recursive removal through a mount).
      assert.equal(ok(d.docker(["start", "-a", "cpc"]), "start"), "");
      ok(d.docker(["rm", "-v", "cpc"]), "rm");
      ok(d.docker(["volume", "rm", "cpvol"]), "volume rm");
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test("cp of a symlink: the link itself, with -L its target (linkTarget resolved in the container)", async () => {
    const tmp = mkdtempSync("/tmp/berth-cpl-");
    try {
      ok(d.docker(["run", "--name", "cpr", "host", "sh", "-c", "ln -s /etc/passwd /abs && ln -s ../etc /usr/rel && ln -s /nonexist /dangling && ln -s passwd /etc/pw"]), "run");
      ok(d.docker(["run", "-d", "--name", "cpl", "host", "sleep", "1000"]), "run -d");
      ok(d.docker(["exec", "cpl", "ln", "-s", "passwd", "/etc/pw"]), "ln");
      for (const name of ["cpr", "cpl"]) {
        const state = name === "cpr" ? "stopped" : "running";
        ok(d.docker(["cp", `${name}:/etc/pw`, join(tmp, `${name}-pw`)]), "cp link");
        assert.equal(readlinkSync(join(tmp, `${name}-pw`)), "passwd", `${state}: the link itself`);
        ok(d.docker(["cp", "-L", `${name}:/etc/pw`, join(tmp, `${name}-pwL`)]), "cp -L");
        assert.ok(lstatSync(join(tmp, `${name}-pwL`)).isFile(), `${state}: cp -L gives the file`);
        assert.match(readFileSync(join(tmp, `${name}-pwL`), "utf8"), /^root:/, state);
      }
      const stat = async (path: string) => {
        const r = await d.api("HEAD", `/v1.43/containers/cpr/archive?path=${encodeURIComponent(path)}`);
        assert.equal(r.status, 200, path);
        return JSON.parse(Buffer.from(String(r.headers["x-docker-container-path-stat"]), "base64").toString()) as { name: string; linkTarget: string; mode: number };
      };
      assert.equal((await stat("/abs")).linkTarget, "/etc/passwd");
      assert.equal((await stat("/dangling")).linkTarget, "/nonexist");
      assert.equal((await stat("/etc/passwd")).linkTarget, "");
      // A link in the directories resolves in the container (not on the host), and "/" at the end follows.
      assert.equal((await stat("/usr/rel/passwd")).name, "passwd");
      const dir = await stat("/usr/rel/");
      assert.deepEqual([dir.name, dir.linkTarget, dir.mode >>> 31], ["rel", "", 1]);
      ok(d.docker(["cp", "-L", "cpr:/abs", join(tmp, "abs")]), "cp -L abs");
      assert.equal(readFileSync(join(tmp, "abs"), "utf8"), ok(d.docker(["run", "--rm", "host", "cat", "/etc/passwd"]), "cat"));
      const dangling = d.docker(["cp", "-L", "cpr:/dangling", join(tmp, "dangling")]);
      assert.equal(dangling.code, 1);
      assert.match(dangling.stderr, /Could not find the file \/nonexist in container cpr/);
      await waitFor("cp of links to clean up", () => { try { assertNothingLeft("cp of links"); return true; } catch { return false; } });
      ok(d.docker(["rm", "-f", "cpl", "cpr"]), "rm");
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
