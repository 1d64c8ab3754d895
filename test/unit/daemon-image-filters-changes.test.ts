// Pure parts behind GET /images/json's filters and `commit --change`: dockerd's filter keys and
// reference globbing, and the Dockerfile instructions docker allows in --change.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type FilterableImage, filterImage, globMatch, referenceMatches, timestampFilter, validateImageFilters } from "../../src/daemon/filters.js";
import { applyChanges, parseChanges, splitWords } from "../../src/daemon/commit-changes.js";
import type { EngineError } from "../../src/daemon/util.js";
import { normaliseStrSlices } from "../../src/api/validate.js";

const failure = (fn: () => unknown) => {
  try { fn(); } catch (err) { return `${(err as EngineError).status} ${(err as Error).message}`; }
  return "no error";
};

test("image filters: keys and values are checked as dockerd does", () => {
  assert.equal(failure(() => validateImageFilters({ bogus: ["x"] })), "400 Invalid filter 'bogus'");
  assert.equal(failure(() => validateImageFilters({ dangling: ["maybe"] })), "400 Invalid filter 'dangling=maybe'");
  assert.match(failure(() => validateImageFilters({ until: ["yesterday"] })), /^400 /);
  assert.equal(failure(() => validateImageFilters({ dangling: ["true"], reference: ["bb"], label: ["a"], before: ["x"], since: ["y"], until: ["10m"] })), "no error");
  assert.equal(timestampFilter("90s", 100_000), 10_000);
  assert.equal(timestampFilter("1700000000"), 1_700_000_000_000);
});

test("reference globs: Go's path.Match on the name, then on name:tag", () => {
  assert.ok(globMatch("bb*", "bbv"));
  assert.ok(!globMatch("*", "library/x"), "* stops at /");
  assert.ok(globMatch("b[a-c]?", "bbv"));
  assert.ok(!globMatch("b.", "bb"), "a dot is literal");
  assert.ok(referenceMatches("bb", "bb:latest"));
  assert.ok(referenceMatches("bb:latest", "bb:latest"));
  assert.ok(!referenceMatches("bb:1", "bb:latest"));
  assert.ok(referenceMatches("localhost:5000/x", "localhost:5000/x:v1"), "a registry port is not a tag");
  assert.ok(!referenceMatches("nosuch", "bb:latest"));
});

test("image filters: dangling, label, before/since and reference (only matching tags shown)", () => {
  const bb: FilterableImage = { id: "sha256:1", repoTags: ["bb:latest", "other:1"], repoDigests: [], labels: { a: "1" }, created: 1000 };
  const bbv: FilterableImage = { id: "sha256:2", repoTags: ["bbv:latest"], repoDigests: [], labels: {}, created: 2000 };
  const none: FilterableImage = { id: "sha256:3", repoTags: [], repoDigests: [], labels: {}, created: 3000 };
  const find = (r: string) => ({ bb, bbv } as Record<string, FilterableImage>)[r];
  const names = (f: Record<string, string[]>) => [bb, bbv, none].filter((i) => filterImage(i, f, find) !== undefined).map((i) => i.id);
  assert.deepEqual(names({}), ["sha256:1", "sha256:2", "sha256:3"]);
  assert.deepEqual(names({ dangling: ["true"] }), ["sha256:3"]);
  assert.deepEqual(names({ dangling: ["false"] }), ["sha256:1", "sha256:2"]);
  assert.deepEqual(names({ label: ["a=1"] }), ["sha256:1"]);
  assert.deepEqual(names({ label: ["a=2"] }), []);
  assert.deepEqual(names({ before: ["bbv"] }), ["sha256:1"]);
  assert.deepEqual(names({ since: ["bb"] }), ["sha256:2", "sha256:3"]);
  assert.deepEqual(names({ reference: ["nosuch"] }), []);
  assert.deepEqual(names({ reference: ["bb*"] }), ["sha256:1", "sha256:2"]);
  assert.deepEqual(filterImage(bb, { reference: ["bb"] }, find), ["bb:latest"]);
  assert.deepEqual(filterImage(bb, {}, find), ["bb:latest", "other:1"]);
});

test("commit --change: the instructions docker allows, others refused", () => {
  assert.equal(failure(() => parseChanges(["RUN echo"])), "400 run is not a valid change command");
  assert.equal(failure(() => parseChanges(["COPY a b"])), "400 copy is not a valid change command");
  assert.match(failure(() => parseChanges(["ONBUILD FROM x"])), /^400 FROM isn't allowed/);
  assert.match(failure(() => parseChanges(["HEALTHCHECK --bogus=1 CMD true"]).map((c) => applyChanges({}, [c]))), /^400 HEALTHCHECK: unknown flag --bogus/);
  const base = { Env: ["PATH=/bin", "A=1"], Cmd: ["sh"], ExposedPorts: { "80/tcp": {} }, Labels: { keep: "y" }, WorkingDir: "/srv" };
  const c = applyChanges(base, parseChanges([
    "VOLUME /data",
    'VOLUME ["/a", "/b"]',
    "HEALTHCHECK --interval=5s --retries=2 CMD true",
    "EXPOSE 8080 9000-9001/udp",
    'ENV A=2 B="two words" C=$A',
    "LABEL x=1 'y z'=2",
    "user nobody",
    "WORKDIR sub",
    "STOPSIGNAL SIGINT",
    "ONBUILD run echo hi",
    "CMD echo hello",
  ]));
  assert.deepEqual(c.Volumes, { "/data": {}, "/a": {}, "/b": {} });
  assert.deepEqual(c.Healthcheck, { Test: ["CMD-SHELL", "true"], Interval: 5e9, Retries: 2 });
  assert.deepEqual(c.ExposedPorts, { "80/tcp": {}, "8080/tcp": {}, "9000/udp": {}, "9001/udp": {} });
  assert.deepEqual(c.Env, ["PATH=/bin", "A=2", "B=two words", "C=2"]);
  assert.deepEqual(c.Labels, { keep: "y", x: "1", "y z": "2" });
  assert.equal(c.User, "nobody");
  assert.equal(c.WorkingDir, "/srv/sub");
  assert.equal(c.StopSignal, "SIGINT");
  assert.deepEqual(c.OnBuild, ["RUN echo hi"]);
  assert.deepEqual(c.Cmd, ["/bin/sh", "-c", "echo hello"]);
  assert.deepEqual(base.Env, ["PATH=/bin", "A=1"], "the input is left as it was");
  // ENTRYPOINT drops the inherited CMD (a Dockerfile's rule), unless a CMD is given too.
  assert.deepEqual(applyChanges(base, parseChanges(['ENTRYPOINT ["/bin/x"]'])).Cmd, null);
  assert.deepEqual(applyChanges(base, parseChanges(['CMD ["a"]', "ENTRYPOINT [\"/bin/x\"]"])).Cmd, ["a"]);
  assert.deepEqual(applyChanges(base, parseChanges(["HEALTHCHECK NONE"])).Healthcheck, { Test: ["NONE"] });
  assert.deepEqual(applyChanges(base, parseChanges(["ENV OLD form value"])).Env, ["PATH=/bin", "A=1", "OLD=form value"]);
  assert.deepEqual(splitWords(`a "b c" d\\ e 'f"g'`), ["a", "b c", "d e", 'f"g']);
});

test("create: a string Cmd/Entrypoint is a one-element list (docker's StrSlice)", () => {
  const body: Record<string, unknown> = { Image: "bb", Cmd: "true", Entrypoint: "/bin/sh", Env: ["A=1"] };
  normaliseStrSlices(body);
  assert.deepEqual(body, { Image: "bb", Cmd: ["true"], Entrypoint: ["/bin/sh"], Env: ["A=1"] });
});
