// The embedded DNS server's message handling, without sockets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { answerFromTable, decode, encodeQuery, encodeResponse, RCODE, reverseName, TYPE, type NameTable } from "../../src/network/dns.js";
import { nameTable } from "../../src/network/dns-server.js";
import { statePath } from "../../src/network/store.js";

/** Runs `fn` on a temporary data root whose network state file holds `state`. */
function withNetworkState<T>(state: unknown, fn: (root: string) => T): T {
  const root = mkdtempSync(join(tmpdir(), "berth-dns-"));
  try {
    const file = statePath(root);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(state));
    return fn(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const table: NameTable = {
  forward: new Map([["web", ["172.19.0.2"]], ["www", ["172.19.0.2"]], ["db", ["172.19.0.3", "172.19.0.4"]]]),
  reverse: new Map([["172.19.0.2", "web"]]),
};

test("a query round-trips through encode and decode", () => {
  const q = decode(encodeQuery(0x1234, "web.example.", TYPE.A));
  assert.equal(q.id, 0x1234);
  assert.equal(q.flags & 0x0100, 0x0100);
  assert.deepEqual(q.questions, [{ name: "web.example", type: TYPE.A, cls: 1 }]);
});

test("names on the network are answered with A records, case-insensitively", () => {
  const q = decode(encodeQuery(7, "DB", TYPE.A));
  const r = answerFromTable(q, table);
  assert.notEqual(r, "forward");
  if (r === "forward") return;
  const res = decode(encodeResponse(q, r.answers, r.rcode));
  assert.equal(res.id, 7);
  assert.equal(res.flags & 0x8000, 0x8000);
  assert.equal(res.flags & 0xf, RCODE.NOERROR);
  assert.deepEqual(res.answers.map((a) => a.data), ["172.19.0.3", "172.19.0.4"]);
  assert.equal(res.answers[0].name, "DB");
});

test("PTR answers for addresses on the network; AAAA for a known name is empty NOERROR", () => {
  assert.equal(reverseName("2.0.19.172.in-addr.arpa"), "172.19.0.2");
  const q = decode(encodeQuery(9, "2.0.19.172.in-addr.arpa", TYPE.PTR));
  const r = answerFromTable(q, table);
  assert.deepEqual(r, { answers: [{ type: TYPE.PTR, data: "web" }], rcode: RCODE.NOERROR });
  const res = decode(encodeResponse(q, (r as { answers: { type: number; data: string }[] }).answers, RCODE.NOERROR));
  assert.equal(res.answers[0].data, "web");
  assert.deepEqual(answerFromTable(decode(encodeQuery(1, "web", TYPE.AAAA)), table), { answers: [], rcode: RCODE.NOERROR });
});

test("unknown names and addresses go to the host's resolvers", () => {
  assert.equal(answerFromTable(decode(encodeQuery(1, "example.com", TYPE.A)), table), "forward");
  assert.equal(answerFromTable(decode(encodeQuery(1, "9.9.9.10.in-addr.arpa", TYPE.PTR)), table), "forward");
  assert.throws(() => decode(Buffer.from([1, 2, 3])), /short message/);
});

test("nameTable: a container's name and aliases also answer as NAME.NETWORK, as docker's embedded DNS", () => {
  const t = withNetworkState({
    version: 1,
    networks: { n1: { id: "n1", name: "MyNet" } },
    endpoints: { e1: { networkId: "n1", containerId: "a".repeat(64), containerName: "db", ip: "10.9.0.2", aliases: ["database"] } },
  }, (root) => nameTable(root, "n1"));
  for (const name of ["db", "db.mynet", "database.mynet", "aaaaaaaaaaaa.mynet"]) assert.deepEqual(t.forward.get(name), ["10.9.0.2"], name);
});

test("nameTable: a container on several user networks resolves the names of all of them (its network's first), the others only their own", () => {
  const ep = (networkId: string, c: string, name: string, ip: string) => ({ networkId, containerId: c.repeat(64), containerName: name, ip, aliases: [] });
  const t = withNetworkState({
    version: 1,
    networks: { na: { id: "na", name: "ra" }, nb: { id: "nb", name: "rb" }, nd: { id: "nd", name: "bridge", isDefault: true } },
    endpoints: {
      // "multi" is on ra and rb (and the default bridge, which has no names); "x" is on rb under two names.
      m1: ep("na", "a", "multi", "10.1.0.2"), m2: ep("nb", "a", "multi", "10.2.0.2"), m3: ep("nd", "a", "multi", "172.20.0.2"),
      o1: ep("na", "b", "onlya", "10.1.0.3"), x1: ep("nb", "c", "onlyb", "10.2.0.3"),
    },
  }, (root) => nameTable(root, "na"));
  const forMulti = t.byClient.get("10.1.0.2");
  assert.ok(forMulti);
  assert.deepEqual(forMulti.forward.get("onlyb"), ["10.2.0.3"]);
  assert.deepEqual(forMulti.forward.get("onlyb.rb"), ["10.2.0.3"]);
  assert.deepEqual(forMulti.forward.get("multi"), ["10.1.0.2"], "this network's address first");
  assert.equal(forMulti.reverse.get("10.2.0.3"), "onlyb");
  assert.equal(t.byClient.get("10.1.0.3"), undefined, "a container only on ra gets ra's table");
  assert.equal(t.forward.get("onlyb"), undefined);
});
