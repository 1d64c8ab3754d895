// Image gaps an audit found against docker's behaviour: the in-process `berth run --pull` policy,
// import's changes, save/push with a corrupt stored blob, and RepoDigests after pulls and pushes.
// Registries are local only (the in-process FakeRegistry or docker-registry on 127.0.0.1). Needs root.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { after, before, describe, test } from "node:test";
import { isRoot, spawnBerth } from "../helpers/berth.js";
import { DOCKER, TestDaemon } from "../helpers/daemon.js";
import { FakeRegistry, makeImage, makeIndex, makeTar, sha256 } from "../helpers/registry.js";

const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
const skip = !isRoot ? "needs root" : !BUSYBOX ? "needs busybox-static" : false;

/** A busybox image (echo, sh) as layers for the fake registry. */
function busyboxImage() {
  return makeImage([makeTar([
    { name: "bin", type: "dir" },
    { name: "bin/busybox", data: readFileSync(BUSYBOX as string), mode: 0o755 },
    { name: "bin/echo", type: "symlink", linkname: "busybox" },
    { name: "bin/sh", type: "symlink", linkname: "busybox" },
  ])]);
}

describe("image audit gaps", { skip, concurrency: false }, () => {
  let work = "";
  let reg: FakeRegistry;
  before(async () => {
    work = mkdtempSync(join(tmpdir(), "berth-imgaudit-"));
    reg = await new FakeRegistry().start();
  });
  after(async () => {
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** berth with its own store, asynchronously: the in-process registry must keep answering meanwhile. */
  const berth = async (dataRoot: string, args: string[], extraEnv: Record<string, string> = {}) => {
    const p = spawnBerth(args, { ...process.env, BERTH_DATA_ROOT: dataRoot, BERTH_HOST: "", ...extraEnv });
    const { code } = await p.done;
    return { code, ...p.output() };
  };
  const show = (r: { code: number | null; stdout: string; stderr: string }) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

  test("BERTH_NO_DAEMON=1 berth run --pull: never fails with No such image and pulls nothing; always pulls first; missing pulls once", async () => {
    reg.addImage("audit/run", "v1", busyboxImage());
    const ref = `${reg.host}/audit/run:v1`;
    const store = join(work, "run-store");
    const manifestGets = () => reg.log.filter((r) => r.method === "GET" && r.path.includes("/manifests/")).length;
    const run = (...args: string[]) => berth(store, ["run", "--rm", ...args], { BERTH_NO_DAEMON: "1" });

    const never = await run("--pull", "never", ref, "echo", "hi");
    assert.equal(never.code, 125, show(never));
    assert.equal(never.stderr, `berth: No such image: ${ref}\n`);
    assert.equal(manifestGets(), 0, "--pull never asked the registry");

    const bad = await run("--pull", "sometimes", ref, "echo", "hi");
    assert.equal(bad.code, 125, show(bad));
    assert.match(bad.stderr, /invalid pull option: 'sometimes'/);

    const missing = await run(ref, "echo", "pulled");
    assert.equal(missing.code, 0, show(missing));
    assert.equal(missing.stdout, "pulled\n");
    assert.match(missing.stderr, /Unable to find image '.*audit\/run:v1' locally/);
    const afterPull = manifestGets();
    assert.ok(afterPull > 0);

    const local = await run("--pull", "never", ref, "echo", "local");
    assert.equal(local.code, 0, show(local));
    assert.equal(local.stdout, "local\n");
    const again = await run(ref, "echo", "again");
    assert.equal(again.code, 0, show(again));
    assert.equal(manifestGets(), afterPull, "the image is here: never and missing don't pull");

    const always = await run("--pull", "always", ref, "echo", "always");
    assert.equal(always.code, 0, show(always));
    assert.equal(always.stdout, "always\n");
    assert.doesNotMatch(always.stderr, /Unable to find image/);
    assert.ok(manifestGets() > afterPull, "--pull always pulls although the image is here");
  });

  /** A store holding IMG (imported: its layer blob is the plain tar) with that blob's bytes changed. */
  const storeWithCorruptLayer = async (name: string, image: string) => {
    const store = join(work, name);
    const tar = join(work, `${name}.tar`);
    writeFileSync(tar, makeTar([{ name: "data", data: "the original content\n" }]));
    const imp = await berth(store, ["import", tar, image]);
    assert.equal(imp.code, 0, show(imp));
    const layers = await berth(store, ["image", "inspect", "--format", "{{json .RootFS.Layers}}", image]);
    const [layer] = JSON.parse(layers.stdout) as string[];
    const blob = join(store, "blobs/sha256", layer.slice(7));
    const bytes = readFileSync(blob);
    const at = bytes.indexOf("original");
    assert.ok(at > 0);
    bytes.write("ORIGINAL", at);
    writeFileSync(blob, bytes);
    return { store, layer };
  };

  test("berth save -o with a corrupt stored layer: one line naming the blob, exit 1, no output file (docker and oci formats)", async () => {
    const { store, layer } = await storeWithCorruptLayer("save-store", "corrupt:save");
    for (const format of ["docker", "oci"]) {
      const outFile = join(work, `saved-${format}.tar`);
      const r = await berth(store, ["save", "--format", format, "-o", outFile, "corrupt:save"]);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, new RegExp(`^berth: .*${layer}.*content does not match digest.*\n$`));
      assert.doesNotMatch(r.stderr, /Unhandled|\n.+\n/, "one line, no crash");
      assert.equal(existsSync(outFile), false, "no partial file");
      assert.deepEqual(readdirSync(work).filter((f) => f.startsWith(".berth-save")), [], "no temp file");
    }
  });

  test("berth push with a corrupt stored layer: a local error naming the blob, and its bytes are never sent", async () => {
    const ref = `${reg.host}/audit/corrupt:1`;
    const { store, layer } = await storeWithCorruptLayer("push-store", ref);
    const r = await berth(store, ["push", ref]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, new RegExp(`^berth: pushing .*audit/corrupt:1: the stored blob ${layer} is corrupt .*\n$`, "m"));
    assert.doesNotMatch(r.stderr, /digest_invalid|DIGEST_INVALID/);
    const sent = reg.log.filter((q) => (q.method === "PUT" || q.method === "PATCH") && q.path.includes("/audit/corrupt/blobs/uploads/"));
    assert.deepEqual(sent, [], "no upload of the corrupt blob");
    assert.equal(reg.manifests.has("audit/corrupt:1"), false, "no manifest pushed");
  });

  test("berth push gzips a layer stored uncompressed (import): gzip media type, gzip blob whose gunzipped digest is the diff_id; pulls back and runs", async () => {
    const ref = `${reg.host}/audit/plain:1`;
    const store = join(work, "plain-push-store");
    const tar = join(work, "plain-busybox.tar");
    writeFileSync(tar, makeTar([
      { name: "bin", type: "dir" },
      { name: "bin/busybox", data: readFileSync(BUSYBOX as string), mode: 0o755 },
      { name: "bin/echo", type: "symlink", linkname: "busybox" },
    ]));
    const imp = await berth(store, ["import", "--change", 'CMD ["echo","from the gzipped push"]', tar, ref]);
    assert.equal(imp.code, 0, show(imp));
    const push = await berth(store, ["push", ref]);
    assert.equal(push.code, 0, show(push));

    const pushed = reg.manifests.get("audit/plain:1");
    assert.ok(pushed, "manifest pushed");
    const manifest = JSON.parse(pushed.bytes.toString()) as { config: { digest: string }; layers: { mediaType: string; digest: string; size: number }[] };
    assert.equal(manifest.layers.length, 1);
    const [layer] = manifest.layers;
    assert.equal(layer.mediaType, "application/vnd.oci.image.layer.v1.tar+gzip");
    const blob = reg.blobs.get(layer.digest);
    assert.ok(blob, "the manifest's layer blob is at the registry");
    assert.equal(blob.length, layer.size);
    assert.deepEqual([...blob.subarray(0, 2)], [0x1f, 0x8b], "gzip magic");
    assert.ok(blob.length < statSync(tar).size / 1.5, `compressed: ${blob.length} of ${statSync(tar).size} bytes`);
    const config = JSON.parse(reg.blobs.get(manifest.config.digest)!.toString()) as { rootfs: { diff_ids: string[] } };
    assert.deepEqual(config.rootfs.diff_ids, [sha256(gunzipSync(blob))], "diff_id is the uncompressed digest");
    assert.deepEqual(config.rootfs.diff_ids, [sha256(readFileSync(tar))]);
    assert.match(push.stdout, new RegExp(`1: digest: ${sha256(pushed.bytes)} size: ${pushed.bytes.length}$`, "m"));

    const again = await berth(store, ["push", ref]);
    assert.equal(again.code, 0, show(again));
    assert.match(again.stdout, /Layer already exists/, "the same gzip blob again: already there");
    assert.match(again.stdout, new RegExp(`digest: ${sha256(pushed.bytes)} `), "the same manifest again");

    const fresh = join(work, "plain-pull-store");
    const run = await berth(fresh, ["run", "--rm", ref], { BERTH_NO_DAEMON: "1" });
    assert.equal(run.code, 0, show(run));
    assert.equal(run.stdout, "from the gzipped push\n");
  });

  test("berth images and history: an image whose config has no created field shows N/A, not 56 years ago", async () => {
    const store = join(work, "nocreated-store");
    const layer = makeTar([{ name: "data", data: "no date\n" }]);
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: { Cmd: ["sh"] }, rootfs: { type: "layers", diff_ids: [sha256(layer)] } }));
    const hex = sha256(config).slice(7);
    const archive = join(work, "nocreated.tar");
    writeFileSync(archive, makeTar([
      { name: `${hex}.json`, data: config },
      { name: "l1", type: "dir" },
      { name: "l1/layer.tar", data: layer },
      { name: "manifest.json", data: JSON.stringify([{ Config: `${hex}.json`, RepoTags: ["nocreated:1"], Layers: ["l1/layer.tar"] }]) },
    ]));
    const load = await berth(store, ["load", "-i", archive]);
    assert.equal(load.code, 0, show(load));
    const images = await berth(store, ["images", "--format", "{{.Repository}} {{.CreatedSince}}"]);
    assert.equal(images.code, 0, show(images));
    assert.equal(images.stdout, "nocreated N/A\n");
    const table = await berth(store, ["images"]);
    assert.doesNotMatch(table.stdout, /years ago/, show(table));
    const history = await berth(store, ["history", "--format", "{{.CreatedSince}}", "nocreated:1"]);
    assert.equal(history.code, 0, show(history));
    assert.equal(history.stdout, "N/A\n");
  });

  test("berth pull --platform with the OS only takes the host's architecture, an architecture alone takes linux (as docker and containerd)", async () => {
    const arch = process.arch === "x64" ? "amd64" : process.arch;
    const here = makeImage([makeTar([{ name: "os-only-here", data: "x" }])], { arch });
    const other = makeImage([makeTar([{ name: "os-only-other", data: "y" }])], { arch: "s390x" });
    reg.addIndex("audit/osonly", "v1", makeIndex([
      { image: other, platform: { os: "linux", architecture: "s390x" } },
      { image: here, platform: { os: "linux", architecture: arch } },
    ]), [here, other]);
    const ref = `${reg.host}/audit/osonly:v1`;
    const id = async (store: string) => (await berth(store, ["image", "inspect", "--format", "{{.Id}}", ref])).stdout.trim();
    const osOnly = join(work, "osonly-store");
    const pull = await berth(osOnly, ["pull", "--platform", "linux", ref]);
    assert.equal(pull.code, 0, show(pull));
    assert.equal(await id(osOnly), here.configDigest);
    const archOnly = join(work, "archonly-store");
    const pull2 = await berth(archOnly, ["pull", "--platform", "s390x", ref]);
    assert.equal(pull2.code, 0, show(pull2));
    assert.equal(await id(archOnly), other.configDigest);
    const bad = await berth(join(work, "badplat-store"), ["pull", "--platform", "linx", ref]);
    assert.equal(bad.code, 1, show(bad));
    assert.match(bad.stderr, /^berth: .*invalid --platform "linx": "linx" is neither a known operating system nor architecture.*\n$/);
  });

  test("berth import --platform: an OS alone takes the host's architecture, aliases are normalised, a bad one is one line", async () => {
    const store = join(work, "import-platform-store");
    const tar = join(work, "import-platform.tar");
    writeFileSync(tar, makeTar([{ name: "f", data: "p\n" }]));
    const arch = process.arch === "x64" ? "amd64" : process.arch;
    const platformOf = async (image: string) => (await berth(store, ["image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image])).stdout.trim();
    const osOnly = await berth(store, ["import", "--platform", "linux", tar, "imp:os"]);
    assert.equal(osOnly.code, 0, show(osOnly));
    assert.equal(await platformOf("imp:os"), `linux/${arch}`);
    const alias = await berth(store, ["import", "--platform", "linux/x86_64", tar, "imp:alias"]);
    assert.equal(alias.code, 0, show(alias));
    assert.equal(await platformOf("imp:alias"), "linux/amd64");
    const bad = await berth(store, ["import", "--platform", "linx", tar, "imp:bad"]);
    assert.equal(bad.code, 1, show(bad));
    assert.match(bad.stderr, /^berth: invalid --platform "linx": .*\n$/);
  });

  test("RepoDigests: a pull through a manifest list records the list's digest; a push adds repo@digest, as dockerd", async () => {
    const arch = process.arch === "x64" ? "amd64" : process.arch;
    const here = makeImage([makeTar([{ name: "here", data: "x" }])], { arch });
    const other = makeImage([makeTar([{ name: "other", data: "y" }])], { arch: "s390x" });
    const index = makeIndex([
      { image: here, platform: { os: "linux", architecture: arch } },
      { image: other, platform: { os: "linux", architecture: "s390x" } },
    ]);
    reg.addIndex("audit/multi", "v1", index, [here, other]);
    const store = join(work, "digest-store");
    const ref = `${reg.host}/audit/multi:v1`;
    const pull = await berth(store, ["pull", ref]);
    assert.equal(pull.code, 0, show(pull));
    assert.match(pull.stdout, new RegExp(`^Digest: ${index.digest}$`, "m"));
    const repoDigests = async (image: string) => {
      const r = await berth(store, ["image", "inspect", "--format", "{{json .RepoDigests}}", image]);
      assert.equal(r.code, 0, show(r));
      return JSON.parse(r.stdout) as string[];
    };
    assert.deepEqual(await repoDigests(ref), [`${reg.host}/audit/multi@${index.digest}`]);
    const listed = await berth(store, ["images", "--digests", "--format", "{{.Repository}} {{.Digest}}"]);
    assert.equal(listed.stdout, `${reg.host}/audit/multi ${index.digest}\n`, show(listed));
    const byDigest = await berth(store, ["image", "inspect", "--format", "{{.Id}}", `${reg.host}/audit/multi@${index.digest}`]);
    assert.equal(byDigest.stdout.trim(), here.configDigest, show(byDigest));

    const pushedRef = `${reg.host}/audit/pushed:1`;
    assert.equal((await berth(store, ["tag", ref, pushedRef])).code, 0);
    const push = await berth(store, ["push", pushedRef]);
    assert.equal(push.code, 0, show(push));
    assert.deepEqual(await repoDigests(pushedRef), [`${reg.host}/audit/multi@${index.digest}`, `${reg.host}/audit/pushed@${here.manifestDigest}`].sort());
  });

  describe("import --change and --message", () => {
    let d: TestDaemon;
    let tar = "";
    before(async () => {
      d = new TestDaemon("berth-imgaudit-d-");
      await d.start();
      tar = join(work, "rootfs.tar");
      writeFileSync(tar, makeTar([{ name: "hello", data: "hi\n" }]));
    });
    after(async () => {
      assert.deepEqual(await d.destroy(), []);
    });
    const config = (ref: string, via: (a: string[]) => { code: number | null; stdout: string; stderr: string }) => {
      const r = via(["image", "inspect", "--format", "{{json .Config}}", ref]);
      assert.equal(r.code, 0, show(r));
      return JSON.parse(r.stdout) as { Cmd: string[] | null; Env: string[] | null; Entrypoint: string[] | null; WorkingDir: string };
    };

    test("docker import -c through the daemon's API applies the changes and the message", { skip: !DOCKER && "needs the docker CLI" }, () => {
      const imp = d.docker(["import", "-c", 'CMD ["echo","x"]', "-c", "ENV Z=1", "-m", "from the test", tar, "imp:c"]);
      assert.equal(imp.code, 0, show(imp));
      const c = config("imp:c", (a) => d.docker(a));
      assert.deepEqual(c.Cmd, ["echo", "x"]);
      assert.deepEqual(c.Env, ["Z=1"]);
      const hist = d.docker(["history", "--format", "{{.Comment}}", "imp:c"]);
      assert.equal(hist.stdout, "from the test\n", show(hist));
      const plain = d.docker(["import", tar, "imp:plain"]);
      assert.equal(plain.code, 0, show(plain));
      const p = config("imp:plain", (a) => d.docker(a));
      assert.equal(p.Cmd ?? null, null);
      assert.equal(p.Env ?? null, null);
      const bad = d.docker(["import", "-c", "RUN echo", tar, "imp:bad"]);
      assert.notEqual(bad.code, 0, show(bad));
      assert.match(bad.stderr, /run is not a valid change command/);
      assert.equal(d.docker(["image", "inspect", "imp:bad"]).code, 1, "nothing imported");
      assert.equal(d.docker(["rmi", "imp:c", "imp:plain"]).code, 0);
    });

    test("berth import -c/--change and -m", () => {
      const imp = d.berth(["import", "--change", "ENTRYPOINT /bin/sh", "-c", "WORKDIR /w", "-c", "ENV A=1 B=$A", "-m", "msg", tar, "imp:berth"]);
      assert.equal(imp.code, 0, show(imp));
      const c = config("imp:berth", (a) => d.berth(a));
      assert.deepEqual(c.Entrypoint, ["/bin/sh", "-c", "/bin/sh"]);
      assert.equal(c.WorkingDir, "/w");
      assert.deepEqual(c.Env, ["A=1", "B=1"]);
      assert.equal(d.berth(["history", "--format", "{{.Comment}}", "imp:berth"]).stdout, "msg\n");
      const bad = d.berth(["import", "-c", "FROM x", tar, "imp:bad"]);
      assert.equal(bad.code, 1, show(bad));
      assert.equal(bad.stderr, "berth: from is not a valid change command\n");
      assert.equal(d.berth(["rmi", "imp:berth"]).code, 0);
    });
  });
});
