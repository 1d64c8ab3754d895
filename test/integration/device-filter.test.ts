// cgroup v2 device rules enforced by the eBPF filter the helper attaches, on this machine. It is hybrid:
// the kernel runs cgroup device programs of a process's cgroup2 cgroup even so (devcgroup_check_permission
// asks the BPF program first, then the v1 controller), so the test plans against the unified hierarchy
// (unifiedHost) and puts only processes it starts into cgroups it creates there. Their v1 devices cgroup
// stays the test's own (which allows everything), so every EPERM below comes from the filter. On a v2
// host the host itself is used. Every cgroup made here is removed (which detaches the programs).

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  type CgroupHost,
  type CgroupPlan,
  compileDeviceFilter,
  createCgroup,
  destroyCgroup,
  planCgroup,
  readCgroupHost,
  unifiedHost,
  type V2Host,
} from "../../src/cgroups/index.js";
import { buildRunSpec } from "../../src/core/run-spec.js";
import type { Op } from "../../src/core/plan.js";
import type { DeviceCgroupRule } from "../../src/oci/spec.js";
import { ensureHostImage } from "../../src/rootfs/host-image.js";
import { newContainerId } from "../../src/runtime/container.js";
import { HelperError, runFilesystemOps, startHelper } from "../../src/runtime/helper.js";
import { readHostFacts } from "../../src/runtime/host-facts.js";
import { launchContainer } from "../../src/runtime/launch.js";
import { isRoot } from "../helpers/berth.js";

const prefix = `berth-devtest-${process.pid}-`;
const DATA_ROOT = "/var/lib/berth";
const STATE = "/run/berth-devfilter-test";

function v2HostHere(): V2Host | undefined {
  const host: CgroupHost = readCgroupHost();
  return host.mode === "v2" ? host : unifiedHost(host);
}

const host = isRoot ? v2HostHere() : undefined;
const skip = !isRoot ? "needs root" : !host ? "no cgroup2 hierarchy reaching our cgroup" : false;

/** Dirs with our prefix left in our own cgroup2 dir. */
function leftovers(): string[] {
  if (!host) return [];
  const own = join(host.mountPoint, host.ownPath);
  return readdirSync(own).filter((n) => n.startsWith(prefix)).map((n) => join(own, n));
}

function collect(stream: NodeJS.ReadableStream | null | undefined): () => string {
  let text = "";
  stream?.setEncoding("utf8");
  stream?.on("data", (d: string) => { text += d; });
  return () => text;
}

interface Output { stdout: string; stderr: string; exitCode: number }

/** A process the helper starts (no namespaces) in the cgroup of `plan`, after `before` ops; its output and exit. */
async function runIn(plan: CgroupPlan, script: string, before: Op[] = []): Promise<Output> {
  const ops: Op[] = [
    ...before,
    { op: "clone", flags: 0 },
    ...plan.procsFiles.map((path): Op => ({ op: "parentWritePid", path })),
    { op: "exec", file: "/bin/sh", argv: ["sh", "-c", script], env: ["PATH=/usr/bin:/bin", "LC_ALL=C"] },
  ];
  const run = await startHelper({ flags: 0, ops }, { stdio: ["ignore", "pipe", "pipe"] });
  const out = collect(run.helper.stdout);
  const err = collect(run.helper.stderr);
  await run.ready;
  const status = await run.exited;
  await new Promise((r) => run.helper.once("close", r));
  return { stdout: out(), stderr: err(), exitCode: status.exitCode };
}

/** A process in a new cgroup2 cgroup whose device filter is planned from `rules`. */
async function runFiltered(name: string, rules: DeviceCgroupRule[], script: string): Promise<Output> {
  const plan = planCgroup(host as V2Host, { name: `${prefix}${name}`, resources: { devices: rules } });
  assert.equal(plan.mode, "v2");
  assert.ok(plan.deviceFilter, "the v2 planner produced the device filter");
  const made = createCgroup(plan);
  try {
    const filter = plan.deviceFilter;
    return await runIn(plan, script, [{ op: "cgroupDeviceFilter", cgroup: filter.cgroup, program: compileDeviceFilter(filter.rules), replace: false }]);
  } finally {
    await destroyCgroup(made);
    assert.ok(!existsSync(plan.primaryPath), "the cgroup is removed");
  }
}

const DENY_ALL: DeviceCgroupRule = { allow: false, access: "rwm" };

test("a process in the filtered cgroup: /dev/null (c 1:3) denied with EPERM, /dev/zero allowed; a read-only rule refuses O_RDWR", { skip }, async () => {
  const r = await runFiltered("null", [
    DENY_ALL,
    { allow: true, type: "c", major: 1, minor: 5, access: "rwm" }, // /dev/zero
    { allow: true, type: "c", major: 1, minor: 7, access: "r" }, // /dev/full, read only
  ], [
    "head -c1 /dev/null; echo null=$?",
    "head -c1 /dev/zero | od -An -tx1 | tr -d ' '; echo zero=$?",
    "head -c1 /dev/full | od -An -tx1 | tr -d ' '; echo fullr=$?",
    "(: <> /dev/full); echo fullrw=$?",
  ].join("\n"));
  assert.match(r.stdout, /^null=1$/m, r.stdout + r.stderr);
  assert.match(r.stderr, /\/dev\/null.*: Operation not permitted/);
  assert.match(r.stdout, /^00\nzero=0$/m);
  assert.match(r.stdout, /^00\nfullr=0$/m);
  assert.match(r.stdout, /^fullrw=[1-9]/m);
  assert.match(r.stderr, /\/dev\/full.*: Operation not permitted/);
  assert.equal(r.exitCode, 0);
});

test("the same script without a deny: everything opens (the EPERMs come from the filter, not the host)", { skip }, async () => {
  const r = await runFiltered("open", [{ allow: true, type: "a", access: "rwm" }], "head -c1 /dev/null; echo null=$?; (: <> /dev/full); echo fullrw=$?");
  assert.match(r.stdout, /^null=0$/m, r.stdout + r.stderr);
  assert.match(r.stdout, /^fullrw=0$/m);
  assert.equal(r.stderr, "");
});

test("replace (an update) swaps the filter; without it programs add up (all must allow)", { skip }, async () => {
  const plan = planCgroup(host as V2Host, { name: `${prefix}replace`, resources: {} });
  const made = createCgroup(plan);
  const noNull = compileDeviceFilter([{ allow: true, type: "a", access: "rwm" }, { allow: false, type: "c", major: 1, minor: 3, access: "rwm" }]);
  const noZero = compileDeviceFilter([{ allow: true, type: "a", access: "rwm" }, { allow: false, type: "c", major: 1, minor: 5, access: "rwm" }]);
  const attach = (program: Uint8Array, replace: boolean) => runFilesystemOps([{ op: "cgroupDeviceFilter", cgroup: plan.primaryPath, program, replace }]);
  const script = "head -c1 /dev/null; echo null=$?; echo zero=$(head -c1 /dev/zero | wc -c)"; // zero=1 readable, zero=0 denied
  try {
    await attach(noNull, false);
    let r = await runIn(plan, script);
    assert.match(r.stdout, /^null=1\nzero=1$/m, r.stdout + r.stderr);
    await attach(noZero, true);
    r = await runIn(plan, script);
    assert.match(r.stdout, /^null=0\nzero=0$/m, r.stdout + r.stderr);
    await attach(noNull, false);
    r = await runIn(plan, script);
    assert.match(r.stdout, /^null=1\nzero=0$/m, "both programs apply: " + r.stdout + r.stderr);
    await attach(noZero, true);
    r = await runIn(plan, script);
    assert.match(r.stdout, /^null=0\nzero=0$/m, "replace detached both earlier programs: " + r.stdout + r.stderr);
  } finally {
    await destroyCgroup(made);
  }
  assert.deepEqual(leftovers(), []);
});

test("a rejected program or a missing cgroup is an error naming the bpf step; nothing is left", { skip }, async () => {
  const plan = planCgroup(host as V2Host, { name: `${prefix}bad`, resources: {} });
  const made = createCgroup(plan);
  try {
    // No exit instruction: the verifier refuses it.
    const bad = Buffer.from(compileDeviceFilter([DENY_ALL]).subarray(0, 8));
    const attempt = (cgroup: string, program: Uint8Array) =>
      startHelper({ flags: 0, ops: [{ op: "cgroupDeviceFilter", cgroup, program, replace: false }, { op: "clone", flags: 0 }, { op: "exec", file: "/bin/true", argv: ["true"], env: [] }] }, { stdio: ["ignore", "ignore", "ignore"] })
        .then((run) => run.ready);
    await assert.rejects(attempt(plan.primaryPath, bad), (e: unknown) => e instanceof HelperError && /attach the device filter \(1 eBPF instructions\).*bpf\(BPF_PROG_LOAD\)/.test(e.message));
    await assert.rejects(attempt(`${plan.primaryPath}/nosuch`, compileDeviceFilter([DENY_ALL])), (e: unknown) => e instanceof HelperError && /open .*\/nosuch: no such file or directory/.test(e.message));
  } finally {
    await destroyCgroup(made);
  }
  assert.deepEqual(leftovers(), []);
});

test("a container launched on the v2 path: a bind-mounted host block device is denied by docker's default rules, allowed read-only by a spec rule", { skip, timeout: 120_000 }, async (t) => {
  const loop = "/dev/loop7";
  if (!existsSync(loop)) return t.skip(`no ${loop} on this host`);
  const image = await ensureHostImage(DATA_ROOT);
  mkdirSync(STATE, { recursive: true, mode: 0o711 });
  const read = (p: string) => { try { return readFileSync(p, "utf8"); } catch { return undefined; } };
  const runIn = async (extraRules: DeviceCgroupRule[]) => {
    const id = newContainerId();
    const dir = join(STATE, id.slice(0, 12));
    const [upper, work, rootfs] = ["upper", "work", "rootfs"].map((d) => join(dir, d));
    for (const d of [upper, work, rootfs]) mkdirSync(d, { recursive: true });
    const spec = buildRunSpec(
      { rootfs: image, command: ["sh", "-c", "head -c1 /mnt/loop; echo loop=$?; head -c1 /dev/zero | wc -c; head -c1 /dev/null; echo null=$?"] },
      { id, passwd: read(`${image}/etc/passwd`), group: read(`${image}/etc/group`), runtimeCapabilities: readHostFacts().runtimeCapabilities },
    );
    spec.mounts = [...(spec.mounts ?? []), { destination: "/mnt/loop", type: "bind", source: loop, options: ["bind", "ro"] }];
    const linux = spec.linux ?? {};
    linux.resources = { ...linux.resources, devices: [...(linux.resources?.devices ?? []), ...extraRules] };
    spec.linux = linux;
    let cgroup: CgroupPlan | undefined;
    try {
      const { run, cgroup: made } = await launchContainer({
        spec,
        rootfs,
        rootfsMounts: [{ source: "overlay", fstype: "overlay", data: `lowerdir=${image},upperdir=${upper},workdir=${work}` }],
        cgroupName: `${prefix}${id.slice(0, 12)}`,
        cgroupHost: host,
        stdio: ["ignore", "pipe", "pipe"],
        dieWithController: true,
      });
      cgroup = made;
      assert.equal(made.mode, "v2");
      assert.ok(made.deviceFilter);
      const out = collect(run.helper.stdout);
      const err = collect(run.helper.stderr);
      const status = await run.exited;
      await new Promise((r) => run.helper.once("close", r));
      return { stdout: out(), stderr: err(), exitCode: status.exitCode };
    } finally {
      if (cgroup) await destroyCgroup(cgroup);
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const denied = await runIn([]);
  assert.match(denied.stdout, /^loop=1$/m, denied.stdout + denied.stderr);
  assert.match(denied.stderr, /\/mnt\/loop.*: Operation not permitted/);
  assert.match(denied.stdout, /^1$/m, "/dev/zero reads");
  assert.match(denied.stdout, /^null=0$/m, "/dev/null opens");
  const allowed = await runIn([{ allow: true, type: "b", major: 7, minor: 7, access: "r" }]);
  assert.match(allowed.stdout, /^loop=0$/m, allowed.stdout + allowed.stderr);
  assert.deepEqual(leftovers(), []);
  try { if (readdirSync(STATE).length === 0) rmSync(STATE, { recursive: true }); } catch { /* others' */ }
});
