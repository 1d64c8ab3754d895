// The userland proxy's TCP side on loopback: each direction's end is passed on by itself, so a client
// that shuts its side after the request still gets the whole answer; a refused upstream closes the client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type Server } from "node:net";
import { startProxy } from "../../src/network/proxy.js";

const haveIpv6Loopback = await new Promise<boolean>((resolve) => {
  const s = createServer().once("error", () => resolve(false));
  s.listen({ port: 0, host: "::1", ipv6Only: true }, () => s.close(() => resolve(true)));
});
const skip = haveIpv6Loopback ? false : "no ::1 on this host";

function listen(server: Server, host: string): Promise<number> {
  return new Promise((resolve) => server.listen({ port: 0, host }, () => resolve((server.address() as { port: number }).port)));
}

/** Sends `request`, shuts the sending side (as nc does at end of input), and collects the answer. */
function ask(port: number, request: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = connect({ port, host: "::1" }, () => s.end(request));
    s.on("data", (d: Buffer) => chunks.push(d));
    s.on("end", () => resolve(Buffer.concat(chunks)));
    s.on("error", reject);
  });
}

test("a client that half-closes after its request gets the answer, sent only after the upstream saw that end", { skip }, async () => {
  const answer = Buffer.alloc(4 * 1024 * 1024, "x");
  // Answers once the request has ended (its FIN came through): only a proxy that passes the client's
  // FIN on while keeping the way back open lets this through.
  const upstream = createServer({ allowHalfOpen: true }, (s) => {
    let got = "";
    s.setEncoding("utf8").on("data", (d: string) => { got += d; });
    s.on("end", () => s.end(Buffer.concat([Buffer.from(`${got}|`), answer])));
  });
  const upstreamPort = await listen(upstream, "127.0.0.1");
  const probe = createServer();
  const port = await listen(probe, "::1");
  await new Promise((r) => probe.close(r));
  const proxy = await startProxy({ proto: "tcp", host: "::1", port, targetIp: "127.0.0.1", targetPort: upstreamPort });
  try {
    const [a, b] = await Promise.all([ask(port, "first"), ask(port, "second")]);
    assert.equal(a.subarray(0, 6).toString(), "first|");
    assert.equal(a.length, 6 + answer.length, "the whole answer, not cut when the upstream closed");
    assert.equal(b.subarray(0, 7).toString(), "second|");
    assert.equal(b.length, 7 + answer.length);
  } finally {
    proxy.close();
    upstream.close();
  }
});

test("a refused upstream: the client is accepted and closed with no answer", { skip }, async () => {
  const gone = createServer();
  const upstreamPort = await listen(gone, "127.0.0.1");
  await new Promise((r) => gone.close(r));
  const probe = createServer();
  const port = await listen(probe, "::1");
  await new Promise((r) => probe.close(r));
  const proxy = await startProxy({ proto: "tcp", host: "::1", port, targetIp: "127.0.0.1", targetPort: upstreamPort });
  try {
    const got = await ask(port, "hello").catch((err: NodeJS.ErrnoException) => err.code);
    assert.ok(got === "ECONNRESET" || (Buffer.isBuffer(got) && got.length === 0), `got ${String(got)}`);
  } finally {
    proxy.close();
  }
});
