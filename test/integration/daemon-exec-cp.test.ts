// Against a private `berth daemon`, with the real docker CLI and berth's: an exec that cannot start
// (what dockerd answers: the stream is upgraded, the error is written on it, the exec's exit code is 126),
// and `cp` to and from stopped containers (the rootfs with the container's volumes and binds mounted in a
// private place, all of it unmounted and removed afterwards, also on errors), `cp -L`.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { isRoot } from "../helpers/berth.js";
import { DOCKER, TestDaemon } from "../helpers/daemon.js";

const skip = !isRoot ? "needs root" : !DOCKER ? "needs the docker CLI" : false;

function ok(r: { code: number | null; stdout: string; stderr: string }, what: string): string {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

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
});
