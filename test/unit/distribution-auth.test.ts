import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BerthError } from "../../src/errors.js";
import { RegistryClient, RegistryError } from "../../src/distribution/client.js";
import { configPath, DOCKER_HUB_KEY, loadCredentials, removeCredentials, saveCredentials } from "../../src/distribution/credentials.js";
import { pullImage } from "../../src/distribution/pull.js";
import { FakeStore } from "../helpers/fake-store.js";
import { FakeRegistry, makeImage, makeTar } from "../helpers/registry.js";

function tmp(t: { after: (fn: () => unknown) => void }): string {
  const d = mkdtempSync(join(tmpdir(), "berth-auth-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test("credentials: docker's config.json format, written 0600, found under docker's keys, removed by logout", (t) => {
  const dir = tmp(t);
  assert.equal(configPath({ BERTH_CONFIG: dir }), join(dir, "config.json"));
  assert.match(configPath({}), /\.berth\/config\.json$/);
  const path = join(dir, "config.json");
  assert.equal(loadCredentials("127.0.0.1:5000", path), undefined);
  writeFileSync(path, JSON.stringify({ auths: { "https://index.docker.io/v1/": { auth: Buffer.from("hub:pw:with:colons").toString("base64") } }, credsStore: "keep-me" }));
  saveCredentials("127.0.0.1:5000", { username: "u", password: "p" }, path);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const j = JSON.parse(readFileSync(path, "utf8")) as { auths: Record<string, { auth: string }>; credsStore: string };
  assert.equal(j.credsStore, "keep-me");
  assert.equal(j.auths["127.0.0.1:5000"].auth, Buffer.from("u:p").toString("base64"));
  assert.deepEqual(loadCredentials("127.0.0.1:5000", path), { username: "u", password: "p" });
  assert.deepEqual(loadCredentials("docker.io", path), { username: "hub", password: "pw:with:colons" });
  assert.deepEqual(loadCredentials("index.docker.io", path), { username: "hub", password: "pw:with:colons" });
  assert.ok(removeCredentials("127.0.0.1:5000", path));
  assert.ok(!removeCredentials("127.0.0.1:5000", path));
  assert.ok(DOCKER_HUB_KEY in (JSON.parse(readFileSync(path, "utf8")) as { auths: object }).auths);
  writeFileSync(path, "{broken");
  assert.throws(() => loadCredentials("x:1", path), (e: unknown) => e instanceof BerthError && e.message.includes(path) && /not valid JSON/.test(e.message));
});

async function pullFrom(t: { after: (fn: () => unknown) => void }, reg: FakeRegistry, credentials: { username: string; password: string } | null) {
  const store = new FakeStore(join(tmp(t), "store"));
  return pullImage(store, `${reg.host}/priv/img:v1`, { out: { write: () => {} }, credentials, retryDelayMs: 5 });
}

test("Basic auth: credentials are sent after the challenge; none or wrong ones give a clear unauthorized", async (t) => {
  const reg = await new FakeRegistry({ auth: "basic", user: "bob", pass: "pw" }).start();
  t.after(() => reg.stop());
  reg.addImage("priv/img", "v1", makeImage([makeTar([{ name: "a", data: "1" }])]));
  const rec = await pullFrom(t, reg, { username: "bob", password: "pw" });
  assert.ok(rec.id);
  assert.ok(reg.log.some((r) => r.authorization?.startsWith("Basic ")));
  await assert.rejects(pullFrom(t, reg, null), (e: unknown) => e instanceof BerthError &&
    /^pull access denied for 127\.0\.0\.1:\d+\/priv\/img, repository does not exist or may require 'berth login': .*HTTP 401.*unauthorized.*berth login 127\.0\.0\.1:\d+$/.test(e.message));
  await assert.rejects(pullFrom(t, reg, { username: "bob", password: "nope" }), /pull access denied.*check the credentials/);
});

test("Bearer tokens: fetched from the realm with service and scope, Basic credentials sent, cached per scope", async (t) => {
  const reg = await new FakeRegistry({ auth: "bearer", user: "amy", pass: "pw" }).start();
  t.after(() => reg.stop());
  reg.addImage("priv/img", "v1", makeImage([makeTar([{ name: "a", data: "1" }]), makeTar([{ name: "b", data: "2" }])]));
  await pullFrom(t, reg, { username: "amy", password: "pw" });
  assert.equal(reg.tokenRequests.length, 1, `one token for the pull scope: ${reg.tokenRequests.join(" | ")}`);
  const q = new URLSearchParams(reg.tokenRequests[0]);
  assert.equal(q.get("service"), "fake-registry");
  assert.equal(q.get("scope"), "repository:priv/img:pull");
  assert.equal(q.get("account"), "amy");
  assert.ok(reg.log.filter((r) => r.path.startsWith("/v2/priv")).slice(1).every((r) => r.authorization?.startsWith("Bearer tok.")));
  // wrong password: the token server refuses
  await assert.rejects(pullFrom(t, reg, { username: "amy", password: "bad" }), /unauthorized: incorrect username or password \(token server http:\/\/127\.0\.0\.1:\d+/);
  // anonymous: a token without rights, then the registry's 401 is the answer
  reg.options.anonymousPull = false;
  await assert.rejects(pullFrom(t, reg, null), /pull access denied .*authentication required/);
});

test("a client pings, follows redirects for blobs, and falls back to HTTP for insecure registries", async (t) => {
  const reg = await new FakeRegistry().start();
  t.after(() => reg.stop());
  const im = makeImage([makeTar([{ name: "a", data: "redirected" }])]);
  reg.addImage("r/img", "v1", im);
  // a second server that redirects blob GETs to the registry (like a CDN), and speaks plain HTTP on a non-loopback-looking name
  const front = http.createServer((req, res) => {
    if (req.url?.includes("/blobs/")) {
      res.writeHead(307, { location: `http://${reg.host}${req.url}` }).end();
    } else {
      const up = http.request({ host: "127.0.0.1", port: reg.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    }
  });
  await new Promise<void>((r) => front.listen(0, "127.0.0.1", r));
  t.after(() => new Promise<void>((r) => { front.closeAllConnections(); front.close(() => r()); }));
  const port = (front.address() as AddressInfo).port;
  // "localhost" counts as loopback; an "insecure" name tries HTTPS, then HTTP
  const c = new RegistryClient(`localhost:${port}`, { retryDelayMs: 5 });
  assert.equal(c.baseUrl(), `http://localhost:${port}`);
  await c.ping();
  const bytes = await c.fetchBlob("r/img", { digest: im.configDigest, size: im.config.length }, 1 << 20, "image config");
  assert.deepEqual(bytes, im.config);
  // An IPv4-mapped address is not "loopback" by name: HTTPS by default, which a plain server refuses...
  const mapped = `[::ffff:127.0.0.1]:${reg.port}`;
  await assert.rejects(new RegistryClient(mapped, { retries: 0 }).ping(), /TLS handshake with registry \[::ffff:127\.0\.0\.1\]:\d+ failed .*pass --insecure-registry/);
  // ...and with --insecure-registry: HTTPS first, then plain HTTP
  const insecure = new RegistryClient(mapped, { insecureRegistries: [mapped], retries: 0 });
  assert.equal(insecure.baseUrl(), `https://[::ffff:7f00:1]:${reg.port}`);
  await insecure.ping();
  assert.equal(insecure.baseUrl(), `http://[::ffff:7f00:1]:${reg.port}`);
  await insecure.getManifest("r/img", "v1", ["application/vnd.oci.image.manifest.v1+json"]);
  const https = new RegistryClient("registry.example.test");
  assert.equal(https.baseUrl(), "https://registry.example.test");
  assert.equal(new RegistryClient("docker.io").baseUrl(), "https://registry-1.docker.io");
});

test("registry errors carry status and codes", async (t) => {
  const reg = await new FakeRegistry().start();
  t.after(() => reg.stop());
  const c = new RegistryClient(reg.host, { retries: 0 });
  await assert.rejects(c.getManifest("none/here", "v1", ["application/json"]), (e: unknown) =>
    e instanceof RegistryError && e.status === 404 && e.notFound && /registry 127\.0\.0\.1:\d+ answered HTTP 404 to manifest none\/here:v1: manifest_unknown: manifest unknown/.test(e.message));
});
