// In-process runs (BERTH_NO_DAEMON=1) leave no kernel objects behind: the data root's default bridge and
// nftables table go when its last run ends (not while another still runs), a daemon owning the root
// keeps them, relative and absolute spellings of a root name the same bridge, and `system df` starts no
// daemon. Private temp data roots; root and nft only.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { autostartPlace } from "../../src/cli/client.js";
import { linkExists } from "../../src/network/host.js";
import { networkContext, ownerOf, pruneNetworks, removeOrphanedNetworking } from "../../src/network/index.js";
import { BERTH_LAUNCHER, isRoot, show, waitFor } from "../helpers/berth.js";

const haveNft = spawnSync("sh", ["-c", "command -v nft"]).status === 0;
const skip = !isRoot ? "needs root" : !haveNft ? "needs nftables" : false;

const env: NodeJS.ProcessEnv = { ...process.env, BERTH_NO_DAEMON: "1" };
delete env.BERTH_DATA_ROOT;
delete env.BERTH_HOST;

function berth(args: string[], cwd?: string) {
  const r = spawnSync(BERTH_LAUNCHER, args, { encoding: "utf8", env, cwd, timeout: 60_000, killSignal: "SIGKILL" });
  if (r.error) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

const tableExists = (table: string) => spawnSync("nft", ["list", "table", "ip", table], { stdio: "ignore" }).status === 0;

function endpointNames(dataRoot: string): string[] {
  try {
    const s = JSON.parse(readFileSync(join(dataRoot, "network", "state.json"), "utf8")) as { endpoints: Record<string, { containerName: string }> };
    return Object.values(s.endpoints).map((e) => e.containerName);
  } catch {
    return [];
  }
}

describe("in-process runs and the data root's default bridge", { skip, concurrency: false }, () => {
  const roots: string[] = [];
  const newRoot = () => {
    const d = mkdtempSync(join(tmpdir(), "berth-teardown-"));
    roots.push(d);
    return d;
  };

  after(async () => {
    for (const d of roots) {
      const ctx = networkContext({ dataRoot: d });
      await pruneNetworks(ctx).catch(() => {});
      await removeOrphanedNetworking(ctx).catch(() => {});
      rmSync(d, { recursive: true, force: true });
    }
  });

  test("the bridge and table stay while one run goes on and go with the last", async () => {
    const dataRoot = newRoot();
    const ctx = networkContext({ dataRoot });
    // The long run ends when its stdin closes (cat), so the test decides when.
    const long = spawn(BERTH_LAUNCHER, ["run", "--rm", "-i", "--name", "long", "--data-root", dataRoot, "host", "cat"], { env, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    long.stdout.setEncoding("utf8").on("data", (s: string) => { out += s; });
    long.stderr.setEncoding("utf8").on("data", (s: string) => { out += s; });
    const longDone = new Promise<number | null>((res) => long.on("close", (c) => res(c)));
    try {
      await waitFor(`the long run's endpoint\n${out}`, () => endpointNames(dataRoot).includes("long"), 30_000);
      long.stdin.write("first\n");
      await waitFor(`the long run's echo\n${out}`, () => out.includes("first"), 30_000);
      assert.ok(linkExists(ctx.defaultBridge!), "the bridge exists while a run uses it");

      const short = berth(["run", "--rm", "--name", "short", "--data-root", dataRoot, "host", "true"]);
      assert.equal(short.code, 0, show(short));
      assert.ok(linkExists(ctx.defaultBridge!), "the short run's end left the long run's bridge");
      assert.ok(tableExists(ctx.nftTable), "the short run's end left the long run's table");
      // The long run's network still works: its veth is on the bridge and the container still answers.
      long.stdin.write("second\n");
      await waitFor(`the long run's second echo\n${out}`, () => out.includes("second"), 30_000);
    } finally {
      long.stdin.end();
    }
    assert.equal(await longDone, 0, out);
    assert.equal(linkExists(ctx.defaultBridge!), false, `bridge ${ctx.defaultBridge} outlived the last run`);
    assert.equal(tableExists(ctx.nftTable), false, `table ${ctx.nftTable} outlived the last run`);
    // The record stays, as docker's `bridge`: the next run makes the kernel objects again and removes them.
    const again = berth(["run", "--rm", "--data-root", dataRoot, "host", "true"]);
    assert.equal(again.code, 0, show(again));
    assert.equal(linkExists(ctx.defaultBridge!), false);
    assert.equal(tableExists(ctx.nftTable), false);
  });

  test("what a killed run left is removed when the next run on the root ends", async () => {
    const dataRoot = newRoot();
    const ctx = networkContext({ dataRoot });
    const crashed = spawn(BERTH_LAUNCHER, ["run", "--rm", "-i", "--name", "crashed", "--data-root", dataRoot, "host", "cat"], { env, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    crashed.stdout.setEncoding("utf8").on("data", (s: string) => { out += s; });
    crashed.stderr.setEncoding("utf8").on("data", (s: string) => { out += s; });
    const done = new Promise<void>((res) => crashed.on("close", () => res()));
    await waitFor(`the run's endpoint\n${out}`, () => endpointNames(dataRoot).includes("crashed"), 30_000);
    crashed.stdin.write("up\n");
    await waitFor(`the run's echo\n${out}`, () => out.includes("up"), 30_000);
    crashed.kill("SIGKILL");
    await done;
    assert.ok(linkExists(ctx.defaultBridge!), "a killed run has no chance to clean up");
    const next = berth(["run", "--rm", "--data-root", dataRoot, "host", "true"]);
    assert.equal(next.code, 0, show(next));
    assert.deepEqual(endpointNames(dataRoot), []);
    assert.equal(linkExists(ctx.defaultBridge!), false);
    assert.equal(tableExists(ctx.nftTable), false);
  });

  test("a user network keeps the table: only the default network's rules leave with its bridge", () => {
    const dataRoot = newRoot();
    const ctx = networkContext({ dataRoot });
    const created = berth(["network", "create", "--data-root", dataRoot, "keep"]);
    assert.equal(created.code, 0, show(created));
    try {
      const userBridge = (JSON.parse(readFileSync(join(dataRoot, "network", "state.json"), "utf8")) as { networks: Record<string, { name: string; bridge: string }> })
        .networks[created.stdout.trim()].bridge;
      const r = berth(["run", "--rm", "--data-root", dataRoot, "host", "true"]);
      assert.equal(r.code, 0, show(r));
      assert.equal(linkExists(ctx.defaultBridge!), false);
      const rules = spawnSync("nft", ["list", "table", "ip", ctx.nftTable], { encoding: "utf8" }).stdout;
      assert.match(rules, new RegExp(`"${userBridge}"`), "the user network's rules stay");
      assert.doesNotMatch(rules, new RegExp(`"${ctx.defaultBridge}"`), "the default network's rules went with its bridge");
    } finally {
      const rm = berth(["network", "rm", "--data-root", dataRoot, "keep"]);
      assert.equal(rm.code, 0, show(rm));
    }
    assert.equal(tableExists(ctx.nftTable), false);
  });

  test("with a daemon owning the root, an in-process run leaves the bridge to it", async () => {
    const dataRoot = newRoot();
    const ctx = networkContext({ dataRoot });
    // Our own live process stands for the daemon holding daemon.lock.
    writeFileSync(join(dataRoot, "daemon.lock"), `${ownerOf(process.pid)}\n`);
    try {
      const r = berth(["run", "--rm", "--data-root", dataRoot, "host", "true"]);
      assert.equal(r.code, 0, show(r));
      assert.ok(linkExists(ctx.defaultBridge!), "the daemon's bridge was removed by an in-process run");
      assert.ok(tableExists(ctx.nftTable));
    } finally {
      rmSync(join(dataRoot, "daemon.lock"), { force: true });
    }
  });

  test("a relative data root names the same bridge and table as its absolute path", async () => {
    const dataRoot = newRoot();
    const abs = networkContext({ dataRoot });
    assert.notEqual(process.cwd(), dirname(dataRoot));
    // From the cwd the relative spelling resolves against (the parent of the temp root).
    const long = spawn(BERTH_LAUNCHER, ["run", "--rm", "-i", "--name", "rel", "--data-root", `${basename(dataRoot)}/`, "host", "cat"], { env, cwd: dirname(dataRoot), stdio: ["pipe", "pipe", "pipe"] });
    let err = "";
    long.stdout.setEncoding("utf8").on("data", (s: string) => { err += s; });
    long.stderr.setEncoding("utf8").on("data", (s: string) => { err += s; });
    const done = new Promise<number | null>((res) => long.on("close", (c) => res(c)));
    try {
      await waitFor(`the run's endpoint\n${err}`, () => endpointNames(dataRoot).includes("rel"), 30_000);
      // Its echo: the container runs, so its network is complete.
      long.stdin.write("ping\n");
      await waitFor(`the run's echo\n${err}`, () => err.includes("ping"), 30_000);
      assert.ok(linkExists(abs.defaultBridge!), `bridge ${abs.defaultBridge} (the absolute root's) is what the relative run made`);
      assert.ok(tableExists(abs.nftTable));
    } finally {
      long.stdin.end();
    }
    assert.equal(await done, 0, err);
    assert.equal(linkExists(abs.defaultBridge!), false);
    assert.equal(tableExists(abs.nftTable), false);
  });

  test("system df with BERTH_NO_DAEMON=1 starts no daemon", () => {
    const dataRoot = newRoot();
    const place = autostartPlace(dataRoot);
    assert.equal(existsSync(place.execRoot), false);
    const r = berth(["system", "df", "--data-root", dataRoot]);
    assert.notEqual(r.code, 0, show(r));
    assert.match(r.stderr, /BERTH_NO_DAEMON=1/);
    assert.equal(existsSync(join(place.execRoot, "berth.sock")), false, `a daemon was started at ${place.execRoot}`);
    assert.equal(existsSync(place.execRoot), false);
  });
});
