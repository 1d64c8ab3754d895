// berth pull/push/login against the real Debian docker-registry (plain, then token auth behind a token
// server written here), with skopeo pushing and inspecting independently; and against the in-test
// registry for faults: a tampered layer, an HTML page, garbage, two concurrent pulls, a SIGKILL mid-pull.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";

import { createSign, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, copyFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { promisify } from "node:util";
import { join } from "node:path";
import { ImageStore } from "../../src/images/store.js";
import { BERTH_BIN, type CliResult, show } from "../helpers/berth.js";
import { FakeRegistry, haveCommand, makeImage, type RealRegistry, startDockerRegistry, type TestImage, writeOciLayout } from "../helpers/registry.js";

const execFileAsync = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const missing = ["docker-registry", "skopeo", "openssl", "tar"].filter((c) => !haveCommand(c));
const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
const skip = !isRoot ? "needs root" : missing.length ? `needs ${missing.join(", ")} (scripts/test-all.sh installs them)` : !BUSYBOX ? "needs busybox-static" : false;

let work = "";
let image: TestImage;
let layout = "";
const servers: { stop: () => Promise<void> }[] = [];

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, BERTH_CONFIG: join(work, "cfg-none"), ...extra };
}

/**
 * Runs the CLI without blocking this process: the token server and the in-test registry answer from
 * this event loop, so spawnSync would deadlock them.
 */
function cli(args: string[], extra: Record<string, string> = {}, input?: string): Promise<CliResult> {
  const child = spawn(process.execPath, [BERTH_BIN, ...args], { env: env(extra), stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => { stdout += s; });
  child.stderr.setEncoding("utf8").on("data", (s: string) => { stderr += s; });
  child.stdin.end(input ?? "");
  const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
  return new Promise((r) => child.on("close", (code, signal) => {
    clearTimeout(timer);
    r({ code, signal, stdout, stderr });
  }));
}

function oneLineError(r: CliResult, re: RegExp): void {
  assert.equal(r.code, 1, show(r)); // docker pull/login: 1 (125 is run's and create's)
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one line of error:\n${show(r)}`);
  assert.match(lines[0], re, show(r));
}

async function skopeo(args: string[]): Promise<string> {
  const { stdout } = await execFileAsync("skopeo", args, { encoding: "utf8", env: { ...process.env, HOME: work }, timeout: 60_000 });
  return stdout;
}

/** A busybox-static rootfs with /file, as one gzipped layer (tar by tar(1), gzip by the helper). */
function buildImage(): TestImage {
  const root = join(work, "rootfs");
  mkdirSync(join(root, "bin"), { recursive: true });
  copyFileSync(BUSYBOX!, join(root, "bin/busybox"));
  execFileSync("chmod", ["755", join(root, "bin/busybox")]);
  for (const app of ["sh", "cat", "ls", "true"]) symlinkSync("busybox", join(root, "bin", app));
  writeFileSync(join(root, "file"), "hello from the registry\n");
  const tar = execFileSync("tar", ["--numeric-owner", "--owner=0", "--group=0", "-C", root, "-cf", "-", "."], { maxBuffer: 64 << 20 });
  return makeImage([tar]);
}

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), "berth-dist-it-"));
  image = buildImage();
  layout = join(work, "layout");
  writeOciLayout(layout, image, "v1");
});

after(async () => {
  for (const s of servers.reverse()) await s.stop().catch(() => {});
  if (work) rmSync(work, { recursive: true, force: true });
});

async function realRegistry(name: string, extraYaml = ""): Promise<RealRegistry> {
  const r = await startDockerRegistry(join(work, name), extraYaml);
  servers.push(r);
  return r;
}

test("plain docker-registry: skopeo pushes, berth pulls, runs, pushes to another repo (mounted), skopeo sees the digest", { skip, timeout: 180_000 }, async (t) => {
  const reg = await realRegistry("plain");
  const data = join(work, "data-plain");
  await skopeo(["copy", "--quiet", `oci:${layout}:v1`, `docker://${reg.host}/test/busybox:v1`, "--dest-tls-verify=false"]);
  const pushed = JSON.parse(await skopeo(["inspect", "--tls-verify=false", `docker://${reg.host}/test/busybox:v1`])) as { Digest: string };

  const ref = `${reg.host}/test/busybox:v1`;
  const r = await cli(["pull", "--data-root", data, ref]);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /v1: Pulling from 127\.0\.0\.1:\d+\/test\/busybox/);
  assert.match(r.stdout, /: Pull complete\n/);
  assert.match(r.stdout, new RegExp(`Digest: ${pushed.Digest}\nStatus: Downloaded newer image for ${ref.replace(/\./g, "\\.")}\n`));
  const store = new ImageStore(data, { cleanup: false });
  const rec = store.findImage(`${reg.host}/test/busybox:v1`);
  assert.ok(rec, "the store holds the image");
  assert.equal(rec.manifestDigest, pushed.Digest);
  assert.equal(rec.id, image.configDigest);

  const again = await cli(["pull", "--data-root", data, ref]);
  assert.equal(again.code, 0, show(again));
  assert.match(again.stdout, /Status: Image is up to date for/);
  const quiet = await cli(["pull", "-q", "--data-root", data, ref]);
  assert.equal(quiet.stdout, `${ref}\n`, show(quiet));

  const run = await cli(["run", "--data-root", data, ref, "cat", "/file"]);
  if (run.code !== 0 && /not found|unknown command|run IMAGE/.test(run.stderr)) {
    t.skip(`berth run IMAGE is not wired to the store yet: ${run.stderr.trim()}`);
  } else {
    assert.equal(run.code, 0, show(run));
    assert.equal(run.stdout, "hello from the registry\n");
  }

  const target = `${reg.host}/other/copy:v2`;
  const tag = await cli(["tag", "--data-root", data, ref, target]);
  assert.equal(tag.code, 0, show(tag));
  const p = await cli(["push", "--data-root", data, target]);
  assert.equal(p.code, 0, show(p));
  assert.match(p.stdout, /The push refers to repository \[127\.0\.0\.1:\d+\/other\/copy\]/);
  assert.match(p.stdout, /: Mounted from test\/busybox\n/);
  assert.match(p.stdout, new RegExp(`v2: digest: ${pushed.Digest} size: \\d+\\n$`));
  const seen = JSON.parse(await skopeo(["inspect", "--tls-verify=false", `docker://${target}`])) as { Digest: string };
  assert.equal(seen.Digest, pushed.Digest);
  // pushing again: everything exists
  const p2 = await cli(["push", "--data-root", data, target]);
  assert.equal(p2.code, 0, show(p2));
  assert.match(p2.stdout, /: Layer already exists\n/);
  // a push to a fresh registry uploads (no mount source there)
  const reg2 = await realRegistry("plain2");
  const target2 = `${reg2.host}/fresh/img:v3`;
  assert.equal((await cli(["tag", "--data-root", data, ref, target2])).code, 0);
  const p3 = await cli(["push", "--data-root", data, target2]);
  assert.equal(p3.code, 0, show(p3));
  assert.match(p3.stdout, /: Pushed\n/);
  assert.equal((JSON.parse(await skopeo(["inspect", "--tls-verify=false", `docker://${target2}`])) as { Digest: string }).Digest, pushed.Digest);
});

interface TokenServer {
  url: string;
  requests: string[];
  stop: () => Promise<void>;
}

/** A docker token server: Basic user/pass -> a JWT (RS256, x5c = our self-signed cert) granting the scopes asked; anonymous -> no access. */
async function startTokenServer(dir: string, user: string, pass: string): Promise<TokenServer & { cert: string }> {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, "key.pem");
  const cert = join(dir, "cert.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=berth-test-token"], { stdio: "ignore" });
  const keyPem = readFileSync(key, "utf8");
  const der = readFileSync(cert, "utf8").replace(/-----[^-]+-----|\s/g, "");
  const b64u = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    requests.push(url.search);
    const good = req.headers.authorization === `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
    if (req.headers.authorization && !good) {
      res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ details: "incorrect username or password" }));
      return;
    }
    const access = good ? url.searchParams.getAll("scope").map((s) => {
      const [type, ...rest] = s.split(":");
      const actions = rest.pop() ?? "";
      return { type, name: rest.join(":"), actions: actions.split(",") };
    }) : [];
    const now = Math.floor(Date.now() / 1000);
    const header = b64u({ typ: "JWT", alg: "RS256", x5c: [der] });
    const claims = b64u({ iss: "berth-test-issuer", sub: good ? user : "", aud: url.searchParams.get("service"), exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access });
    const sig = createSign("RSA-SHA256").update(`${header}.${claims}`).sign(keyPem).toString("base64url");
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: `${header}.${claims}.${sig}`, expires_in: 300 }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  servers.push({ stop });
  return { url: `http://127.0.0.1:${port}/token`, requests, stop, cert };
}

test("token auth: berth login checks and stores credentials (0600); pulls work with them, fail clearly without; logout forgets", { skip, timeout: 180_000 }, async () => {
  const tokens = await startTokenServer(join(work, "token"), "alice", "s3cret");
  const reg = await realRegistry("token", [
    "auth:",
    "  token:",
    `    realm: ${tokens.url}`,
    "    service: berth-test-registry",
    "    issuer: berth-test-issuer",
    `    rootcertbundle: ${tokens.cert}`,
  ].join("\n"));
  await skopeo(["copy", "--quiet", "--dest-creds", "alice:s3cret", `oci:${layout}:v1`, `docker://${reg.host}/private/busybox:v1`, "--dest-tls-verify=false"]);
  const ref = `${reg.host}/private/busybox:v1`;
  const cfg = join(work, "cfg-alice");

  const anon = await cli(["pull", "--data-root", join(work, "data-anon"), ref]);
  oneLineError(anon, /pull access denied for 127\.0\.0\.1:\d+\/private\/busybox.*unauthorized.*berth login 127\.0\.0\.1:\d+/);
  assert.equal(new ImageStore(join(work, "data-anon"), { cleanup: false }).findImage(ref), undefined);

  const bad = await cli(["login", "-u", "alice", "--password-stdin", reg.host], { BERTH_CONFIG: cfg }, "wrong\n");
  oneLineError(bad, /login to 127\.0\.0\.1:\d+ failed: unauthorized: incorrect username or password/);
  assert.ok(!existsSync(join(cfg, "config.json")), "nothing stored for a failed login");

  const login = await cli(["login", "-u", "alice", "--password-stdin", reg.host], { BERTH_CONFIG: cfg }, "s3cret\n");
  assert.equal(login.code, 0, show(login));
  assert.equal(login.stdout, "Login Succeeded\n");
  const st = statSync(join(cfg, "config.json"));
  assert.equal(st.mode & 0o777, 0o600);
  const saved = JSON.parse(readFileSync(join(cfg, "config.json"), "utf8")) as { auths: Record<string, { auth: string }> };
  assert.equal(Buffer.from(saved.auths[reg.host].auth, "base64").toString(), "alice:s3cret");

  const data = join(work, "data-token");
  const pulled = await cli(["pull", "--data-root", data, ref], { BERTH_CONFIG: cfg });
  assert.equal(pulled.code, 0, show(pulled));
  assert.ok(new ImageStore(data, { cleanup: false }).findImage(ref));
  assert.ok(tokens.requests.some((q) => q.includes("scope=repository%3Aprivate%2Fbusybox%3Apull")), tokens.requests.join("\n"));

  // push with the token (pull,push scope), then skopeo sees it
  const target = `${reg.host}/private/pushed:v1`;
  assert.equal((await cli(["tag", "--data-root", data, ref, target])).code, 0);
  const p = await cli(["push", "--data-root", data, target], { BERTH_CONFIG: cfg });
  assert.equal(p.code, 0, show(p));
  const seen = JSON.parse(await skopeo(["inspect", "--tls-verify=false", "--creds", "alice:s3cret", `docker://${target}`])) as { Digest: string };
  assert.equal(seen.Digest, new ImageStore(data, { cleanup: false }).findImage(ref)!.manifestDigest);

  const out = await cli(["logout", reg.host], { BERTH_CONFIG: cfg });
  assert.equal(out.stdout, `Removing login credentials for ${reg.host}\n`, show(out));
  assert.equal((await cli(["logout", reg.host], { BERTH_CONFIG: cfg })).stdout, `Not logged in to ${reg.host}\n`);
  const after = await cli(["pull", "--data-root", join(work, "data-token2"), ref], { BERTH_CONFIG: cfg });
  oneLineError(after, /unauthorized/);
});

async function fakeRegistry(): Promise<FakeRegistry> {
  const reg = await new FakeRegistry().start();
  servers.push(reg);
  reg.addImage("fake/busybox", "v1", image);
  return reg;
}

function storeFiles(data: string): string[] {
  const out: string[] = [];
  for (const d of ["blobs/sha256", "tmp/ingest"]) {
    const p = join(data, d);
    if (existsSync(p)) out.push(...readdirSync(p).map((f) => `${d}/${f}`));
  }
  return out;
}

test("a tampered layer: the pull fails naming the digest and the store holds nothing of it", { skip, timeout: 60_000 }, async () => {
  const reg = await fakeRegistry();
  const layer = image.layers[0].digest;
  reg.tamper.add(layer);
  const data = join(work, "data-tamper");
  const r = await cli(["pull", "--data-root", data, `${reg.host}/fake/busybox:v1`]);
  oneLineError(r, new RegExp(`pulling 127\\.0\\.0\\.1:\\d+/fake/busybox:v1: .*${layer}.*(mismatch|hashes to)`));
  assert.deepEqual(storeFiles(data).filter((f) => f.includes(layer.slice(7))), [], "nothing of the layer");
  assert.equal(new ImageStore(data, { cleanup: false }).findImage(`${reg.host}/fake/busybox:v1`), undefined);
});

test("an HTML error page and a garbage manifest are one clear line each, nothing stored", { skip, timeout: 60_000 }, async () => {
  const reg = await fakeRegistry();
  const data = join(work, "data-garbage");
  reg.manifestOverride = () => ({ status: 503, type: "text/html; charset=utf-8", body: "<html><head><title>Service Unavailable</title></head></html>" });
  oneLineError(await cli(["pull", "--data-root", data, `${reg.host}/fake/busybox:v1`]), /answered HTTP 503 .*HTML page \("Service Unavailable"\)/);
  reg.manifestOverride = () => ({ status: 200, type: "application/vnd.oci.image.manifest.v1+json", body: "{\"schemaVersion\": 2, \"layers\": 7" });
  oneLineError(await cli(["pull", "--data-root", data, `${reg.host}/fake/busybox:v1`]), /manifest of 127\.0\.0\.1:\d+\/fake\/busybox:v1 is not a usable image manifest: it does not parse as JSON/);
  reg.manifestOverride = undefined;
  oneLineError(await cli(["pull", "--data-root", data, `${reg.host}/fake/nosuch:v1`]), /manifest for 127\.0\.0\.1:\d+\/fake\/nosuch:v1 not found/);
  assert.deepEqual(storeFiles(data), []);
});

function spawnPull(args: string[]): { kill: () => void; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [BERTH_BIN, ...args], { env: env(), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => { stdout += s; });
  child.stderr.setEncoding("utf8").on("data", (s: string) => { stderr += s; });
  const done = new Promise<CliResult>((r) => child.on("close", (code, signal) => r({ code, signal, stdout, stderr })));
  return { kill: () => child.kill("SIGKILL"), done };
}

test("two concurrent pulls of one image share the download", { skip, timeout: 120_000 }, async () => {
  const reg = await fakeRegistry();
  reg.slowBytesPer50ms = 64 * 1024;
  const data = join(work, "data-concurrent");
  const ref = `${reg.host}/fake/busybox:v1`;
  const [a, b] = await Promise.all([spawnPull(["pull", "--data-root", data, ref]).done, spawnPull(["pull", "--data-root", data, ref]).done]);
  assert.equal(a.code, 0, show(a));
  assert.equal(b.code, 0, show(b));
  const layer = image.layers[0].digest;
  assert.equal(reg.log.filter((q) => q.method === "GET" && q.path.endsWith(layer)).length, 1, "the layer was downloaded once");
  assert.ok(new ImageStore(data, { cleanup: false }).findImage(ref));
});

test("a pull killed with SIGKILL mid-way: a clean pull then resumes the partial blob and succeeds", { skip, timeout: 120_000 }, async () => {
  const reg = await fakeRegistry();
  reg.slowBytesPer50ms = 16 * 1024;
  const data = join(work, "data-killed");
  const ref = `${reg.host}/fake/busybox:v1`;
  const layer = image.layers[0];
  const partial = join(data, "tmp/ingest", `${layer.digest.slice(7)}.partial`);
  const child = spawnPull(["pull", "--data-root", data, ref]);
  const deadline = Date.now() + 30_000;
  while (!(existsSync(partial) && statSync(partial).size > 100_000)) {
    if (Date.now() > deadline) {
      child.kill();
      assert.fail(`no partial download appeared: ${show(await child.done)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill();
  const killed = await child.done;
  assert.equal(killed.signal, "SIGKILL");
  const have = statSync(partial).size;
  assert.ok(have < layer.bytes.length, "killed before the end");
  assert.equal(new ImageStore(data, { cleanup: false }).findImage(ref), undefined, "no image recorded");

  reg.slowBytesPer50ms = 0;
  const r = await cli(["pull", "--data-root", data, ref]);
  assert.equal(r.code, 0, show(r));
  const gets = reg.log.filter((q) => q.method === "GET" && q.path.endsWith(layer.digest));
  const resumed = gets[gets.length - 1].range;
  assert.match(resumed ?? "", /^bytes=\d+-$/, "resumed with Range");
  assert.ok(Number(/\d+/.exec(resumed!)![0]) >= 100_000, `resumed from the partial: ${resumed}`);
  assert.ok(new ImageStore(data, { cleanup: false }).findImage(ref));
});
