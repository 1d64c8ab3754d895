// The runtime as a library: startContainer/runContainer with a spec from buildRunSpec, piped stdio, signals
// and exit statuses, and that wait() resolves only once everything the container used is gone.
// Needs root and the built native helper; skipped otherwise.
import { afterEach, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync } from "node:fs";
import type { Readable } from "node:stream";
import { buildRunSpec, type RunOptions } from "../../src/core/run-spec.js";
import { ensureHostImage } from "../../src/rootfs/host-image.js";
import { newContainerId, runContainer, startContainer } from "../../src/runtime/container.js";
import { readHostFacts } from "../../src/runtime/host-facts.js";
import { buildPayload, type HostSnapshot, haveCc, isRoot, leftovers, parentPid, settle, snapshot, STATE_DIR } from "../helpers/berth.js";

function collect(stream: Readable | null): Promise<string> {
  return new Promise((resolve, reject) => {
    if (!stream) return resolve("");
    let text = "";
    stream.setEncoding("utf8");
    stream.on("data", (s: string) => { text += s; });
    stream.on("end", () => resolve(text));
    stream.on("error", reject);
  });
}

/** Reads `stream` until `marker` has appeared. */
function until(stream: Readable, marker: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = "";
    const onData = (s: Buffer | string) => {
      text += s.toString();
      if (text.includes(marker)) { stream.off("data", onData); resolve(); }
    };
    stream.on("data", onData);
    stream.on("end", () => reject(new Error(`stream ended before "${marker}": ${text}`)));
  });
}

describe("runtime library", { skip: !isRoot && "needs root", concurrency: false }, () => {
  let rootfs = "";
  let snap: HostSnapshot;

  const spec = (command: string[], extra: Partial<RunOptions> = {}, id = newContainerId()) => ({
    id,
    spec: buildRunSpec({ rootfs: extra.rootfs ?? rootfs, command, ...extra }, {
      id,
      passwd: existsSync(`${extra.rootfs ?? rootfs}/etc/passwd`) ? readFileSync(`${extra.rootfs ?? rootfs}/etc/passwd`, "utf8") : undefined,
      group: existsSync(`${extra.rootfs ?? rootfs}/etc/group`) ? readFileSync(`${extra.rootfs ?? rootfs}/etc/group`, "utf8") : undefined,
      runtimeCapabilities: readHostFacts().runtimeCapabilities,
    }),
  });

  before(async () => {
    rootfs = await ensureHostImage("/var/lib/berth");
  });
  beforeEach(() => { snap = snapshot(); });
  afterEach(async () => {
    assert.deepEqual(await settle(snap), [], "the container left something on the host");
  });

  test("piped stdio: stdin in, stdout and stderr out, the exit code back", async () => {
    const c = await startContainer({ ...spec(["sh", "-c", "read line; echo out:$line; echo err:$$ >&2; exit 5"]), stdio: "pipe" /* the README's shorthand */ });
    assert.ok(c.pid > 1, "the container's init has a host pid");
    const out = collect(c.stdout);
    const err = collect(c.stderr);
    c.stdin?.end("hello\n");
    const result = await c.wait();
    assert.deepEqual(result, { exitCode: 5, signal: 0, oomKilled: false });
    assert.equal(await out, "out:hello\n");
    assert.equal(await err, "err:1\n");
  });

  test("wait() resolves after the state dir and the cgroup are removed", async () => {
    const { id, spec: s } = spec(["true"]);
    const c = await startContainer({ id, spec: s, stdio: ["ignore", "ignore", "ignore"] });
    assert.equal(c.id, id);
    assert.ok(existsSync(`${STATE_DIR}/${id}`), "the state dir exists while it runs");
    const result = await c.wait();
    assert.equal(result.exitCode, 0);
    // No settling here: it must already be clean.
    assert.deepEqual(leftovers(snap), []);
    assert.ok(!existsSync(`${STATE_DIR}/${id}`));
    assert.ok(!readFileSync("/proc/self/mountinfo", "utf8").includes(id.slice(0, 12)));
  });

  test("kill(9) ends the container: signal 9", async () => {
    const c = await startContainer({ ...spec(["sh", "-c", "echo up; exec sleep 1000"]), stdio: ["ignore", "pipe", "ignore"] });
    await until(c.stdout as Readable, "up");
    c.kill(9);
    const result = await c.wait();
    assert.equal(result.signal, 9);
    assert.equal(result.oomKilled, false);
  });

  test("kill('SIGTERM') reaches a PID 1 that handles it; one that does not is unaffected until SIGKILL", async () => {
    const trapped = await startContainer({ ...spec(["sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done"]), stdio: ["ignore", "pipe", "ignore"] });
    await until(trapped.stdout as Readable, "ready");
    trapped.kill("SIGTERM");
    assert.deepEqual(await trapped.wait(), { exitCode: 7, signal: 0, oomKilled: false });

    // PID 1 without a handler: the kernel drops SIGTERM. SIGUSR1 then shows the process was still there
    // to receive signals (its handler runs), so the earlier SIGTERM did not end it.
    const c = await startContainer({ ...spec(["sh", "-c", "trap 'exit 9' USR1; echo ready; while :; do sleep 0.1; done"]), stdio: ["ignore", "pipe", "ignore"] });
    await until(c.stdout as Readable, "ready");
    c.kill("SIGTERM");
    c.kill("SIGUSR1");
    assert.deepEqual(await c.wait(), { exitCode: 9, signal: 0, oomKilled: false });
  });

  test("the container's init is a child of the helper, which runs from a sealed memfd", async () => {
    const c = await startContainer({ ...spec(["sleep", "1000"]), stdio: ["ignore", "ignore", "ignore"] });
    try {
      const helper = parentPid(c.pid);
      assert.ok(helper !== undefined && helper !== process.pid);
      assert.match(readlinkSync(`/proc/${helper}/exe`), /^\/memfd:/);
      // The container's init sees itself as PID 1.
      assert.match(readFileSync(`/proc/${c.pid}/status`, "utf8"), /^NSpid:\s+\d+\s+1$/m);
    } finally {
      c.kill(9);
      await c.wait();
    }
  });

  test("runContainer reports an OOM kill", { skip: !haveCc && "needs cc" }, async () => {
    const { dir, remove } = buildPayload();
    try {
      const root = `${dir}/rootfs`;
      mkdirSync(root);
      copyFileSync(`${dir}/payload`, `${root}/payload`);
      chmodSync(`${root}/payload`, 0o755);
      const result = await runContainer({ ...spec(["/payload", "hog", "200"], { rootfs: root, memory: 32 * 1024 * 1024 }), stdio: ["ignore", "ignore", "ignore"] });
      assert.equal(result.oomKilled, true);
      assert.equal(result.signal, 9);
    } finally {
      remove();
    }
  });

  test("a failed start rejects with the exit code in the error and leaves nothing", async () => {
    await assert.rejects(
      startContainer({ ...spec(["no-such-command-xyz"]), stdio: ["ignore", "ignore", "ignore"] }),
      (err: Error & { exitCode?: number }) => err.exitCode === 127 && /no-such-command-xyz/.test(err.message),
    );
  });

});
