import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { familiarName, isDigest, parseReference, withTag } from "../../src/images/reference.js";

const D = "sha256:" + "a".repeat(64);

describe("image references (docker's normalisation)", () => {
  const cases: [string, string, string][] = [
    ["busybox", "docker.io/library/busybox:latest", "busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"],
    ["library/busybox", "docker.io/library/busybox:latest", "busybox:latest"],
    ["docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"],
    ["index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"],
    ["user/app:v1", "docker.io/user/app:v1", "user/app:v1"],
    ["localhost/x", "localhost/x:latest", "localhost/x:latest"],
    ["localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"],
    ["127.0.0.1:5000/x/y", "127.0.0.1:5000/x/y:latest", "127.0.0.1:5000/x/y:latest"],
    ["quay.io/org/img:1.0", "quay.io/org/img:1.0", "quay.io/org/img:1.0"],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`, `busybox@${D}`],
    [`busybox:1@${D}`, `docker.io/library/busybox:1@${D}`, `busybox:1@${D}`],
    ["a__b/c-d.e_f:x", "docker.io/a__b/c-d.e_f:x", "a__b/c-d.e_f:x"],
    ["Registry.Example.com/x", "Registry.Example.com/x:latest", "Registry.Example.com/x:latest"],
    ["[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest"],
  ];
  for (const [input, full, familiar] of cases) {
    it(`${input} -> ${full}`, () => {
      const r = parseReference(input);
      assert.equal(r.full, full);
      assert.equal(r.familiar, familiar);
    });
  }

  it("splits registry, repository, tag, digest", () => {
    const r = parseReference(`127.0.0.1:5000/x/y:t@${D}`);
    assert.deepEqual([r.registry, r.repository, r.tag, r.digest], ["127.0.0.1:5000", "x/y", "t", D]);
  });

  it("a digest reference gets no default tag", () => {
    assert.equal(parseReference(`busybox@${D}`).tag, undefined);
    assert.equal(parseReference("busybox", { defaultTag: false }).tag, undefined);
  });

  const bad: [string, RegExp][] = [
    ["Busybox", /must be lowercase/],
    ["docker.io/Library/busybox", /lowercase/],
    ["", /empty/],
    ["busybox:", /invalid reference format/],
    [":tag", /invalid reference format/],
    ["busybox:-x", /invalid reference format/],
    ["busybox:" + "a".repeat(129), /invalid reference format/],
    ["busybox@sha256:abc", /invalid reference format/],
    [`busybox@sha256:${"A".repeat(64)}`, /bad digest/],
    ["a".repeat(64), /image ID/],
    ["a//b", /invalid reference format/],
    ["a/b/", /invalid reference format/],
    ["-a/b", /invalid reference format/],
    ["a..b", /invalid reference format/],
    ["host:port/x", /invalid reference format/],
    ["x".repeat(256), /longer than 255/],
  ];
  for (const [input, re] of bad) {
    it(`refuses ${JSON.stringify(input.length > 40 ? input.slice(0, 40) + "…" : input)}`, () => {
      assert.throws(() => parseReference(input), re);
    });
  }

  it("familiar names", () => {
    assert.equal(familiarName("docker.io", "library/busybox"), "busybox");
    assert.equal(familiarName("docker.io", "library/a/b"), "library/a/b");
    assert.equal(familiarName("docker.io", "user/x"), "user/x");
    assert.equal(familiarName("localhost:5000", "library/x"), "localhost:5000/library/x");
  });

  it("digests and tags", () => {
    assert.ok(isDigest(D));
    assert.ok(!isDigest("sha256:" + "a".repeat(63)));
    assert.ok(isDigest("sha512:" + "a".repeat(128)));
    assert.equal(withTag(parseReference("busybox:1"), "2").full, "docker.io/library/busybox:2");
    assert.throws(() => withTag(parseReference("busybox"), ".bad"), /invalid tag/);
  });
});
