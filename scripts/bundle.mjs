// Bundles each CLI into one CommonJS file (dist/bundle/*.cjs): engines call berth-oci several times per
// container, and loading one pre-linked file instead of ~40 ESM modules saves a good part of Node's start.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

// Node builtins that cost a compile on first require (zlib, crypto, http, https/tls, child_process, ...)
// while most calls never use them: the CLIs initialise every module of the engine at start, so these
// are proxies that require the builtin on first use. fs, path, events, stream, util and os are loaded
// by Node's own start-up anyway (and hot when unpacking layers): they stay plain requires.
const EAGER = new Set(["fs", "path", "events", "stream", "util", "os", "buffer", "process"]);
const lazyBuiltins = {
  name: "lazy-builtins",
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => ({ path: EAGER.has(args.path.slice(5)) ? args.path : `berth-lazy:${args.path}`, external: true }));
  },
};
// Every trap loads the real module; descriptors are reported configurable (the proxies' targets are
// empty objects). A namespace or default import (esbuild's __toESM) gets a proxy whose "default" is
// the module itself, as Node's own interop gives.
const lazyHelper = `const __berthProxy = (real, get) => new Proxy({}, {
  get, set: (_, k, v) => { real()[k] = v; return true; }, has: (_, k) => k in real(),
  ownKeys: () => Reflect.ownKeys(real()),
  getOwnPropertyDescriptor: (_, k) => { const d = Reflect.getOwnPropertyDescriptor(real(), k); if (d) d.configurable = true; return d; },
});
const __berthLazy = (name, load) => { let m; const real = () => (m ??= load(name)); return __berthProxy(real, (_, k) => real()[k]); };
const __berthLazyEsm = (p) => __berthProxy(() => p, (_, k) => (k === "default" ? p : p[k]));
require = ((load) => Object.assign((id) => (id.startsWith("berth-lazy:") ? __berthLazy(id.slice(11), load) : load(id)), load))(require);`;

// The engine's big modules are initialised on first use, too: an import of one of these (from any module
// of the bundle) resolves to a small CommonJS stand-in whose exports (their names found by bundling the
// module alone) are a proxy that initialises the real module (esbuild's lazy __esm wrapper) when one is
// first read. `berth ps` then never builds the image store, the daemon, the network manager or the
// seccomp tables, and `berth-oci state` only the state-file code. A module any eager module uses at
// its top level is initialised at start as before (BERTH_LAZY_TRACE=1 prints each initialisation).
const LAZY = [
  "src/daemon/daemon.ts", "src/daemon/engine.ts", "src/daemon/stats.ts", "src/api/server.ts",
  "src/images/store.ts", "src/images/archives.ts", "src/images/layer.ts", "src/images/run-config.ts",
  "src/distribution/client.ts", "src/distribution/pull.ts", "src/distribution/push.ts", "src/distribution/credentials.ts",
  "src/network/index.ts", "src/network/manager.ts",
  "src/rootfs/host-image.ts", "src/runtime/container.ts", "src/runtime/launch.ts", "src/runtime/helper.ts",
  "src/runtime/oci-features.ts", "src/core/container-plan.ts", "src/core/run-spec.ts",
  "src/seccomp/index.ts", "src/cgroups/index.ts", "src/oci/validate.ts", "src/oci/default-spec.ts",
].map((f) => join(root, f));
const exportNames = new Map();
async function namesOf(path) {
  if (!exportNames.has(path)) {
    const r = await build({ entryPoints: [path], bundle: true, platform: "node", format: "esm", write: false, metafile: true, packages: "external", logLevel: "silent", outdir: "/nonexistent" });
    exportNames.set(path, Object.values(r.metafile.outputs).find((o) => o.entryPoint)?.exports ?? []);
  }
  return exportNames.get(path);
}
const lazyModules = {
  name: "lazy-modules",
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, async (args) => {
      if (args.namespace === "berth-lazy-src" || args.pluginData === "real") return undefined;
      const real = await b.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, importer: args.importer, pluginData: "real" });
      if (real.errors.length > 0 || !LAZY.includes(real.path) || args.kind === "require-call") return undefined;
      return { path: `${real.path}.lazy`, namespace: "berth-lazy-src" };
    });
    b.onLoad({ filter: /.*/, namespace: "berth-lazy-src" }, async (args) => {
      const real = args.path.slice(0, -".lazy".length);
      const names = await namesOf(real);
      return { contents: `module.exports = __berthLazySrc(${JSON.stringify(real.slice(root.length + 1))}, () => require(${JSON.stringify(real)}), ${JSON.stringify(names)});`, loader: "js", resolveDir: root };
    });
  },
};
// ownKeys and descriptors answer from the names without initialising the module (esbuild's __toESM
// copies them into getters); a read initialises it.
const lazySrcHelper = `const __berthLazySrc = (name, load, names) => { let m; const real = () => m ?? (process.env.BERTH_LAZY_TRACE && process.stderr.write("berth: init " + name + (process.env.BERTH_LAZY_TRACE === "stack" ? new Error().stack.split("\\n").slice(2, 6).join("\\n") : "") + "\\n"), m = load());
  return new Proxy({}, { get: (_, k) => real()[k], set: (_, k, v) => { real()[k] = v; return true; }, has: (_, k) => names.includes(k) || k in real(), ownKeys: () => names,
    getOwnPropertyDescriptor: (_, k) => (names.includes(k) ? { configurable: true, enumerable: true, writable: true, value: undefined } : undefined) }); };`;

for (const name of ["berth-oci", "berth"]) {
  const result = await build({
    stdin: {
      contents: `const { main } = require("./src/cli/${name}.ts"); main(process.argv.slice(2)).then((c) => { process.exitCode = c; });`,
      resolveDir: root,
      loader: "js",
    },
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    write: false,
    outfile: join(root, "dist", "bundle", `${name}.code.cjs`),
    // import.meta.url has no meaning in a CJS bundle; code that needs its own location reads this.
    define: { "import.meta.url": "__berthBundleUrl" },
    banner: { js: `const __berthBundleUrl = require("url").pathToFileURL(__filename).href;\n${lazyHelper}\n${lazySrcHelper}` },
    plugins: [lazyBuiltins, lazyModules],
    logLevel: "warning",
  });
  const code = result.outputFiles[0].text.replaceAll('__toESM(require("berth-lazy:', '__berthLazyEsm(require("berth-lazy:');
  const dir = join(root, "dist", "bundle");
  mkdirSync(dir, { recursive: true }); // a fresh checkout has none yet (write: false creates nothing)
  for (const f of readdirSync(dir)) if (f.startsWith(`${name}.code.`) && f.endsWith(".cache")) rmSync(join(dir, f), { force: true });
  writeFileSync(join(dir, `${name}.code.cjs`), code);
  writeFileSync(join(dir, `${name}.cjs`), loader(name, createHash("sha256").update(code).digest("hex").slice(0, 16)));
  // A first run writes the code cache, so an install nobody can write to has one too.
  spawnSync(process.execPath, [join(dir, `${name}.cjs`), name === "berth" ? "--help" : "--version"], { stdio: "ignore" });
}

// What the launchers run: the bundle compiled with a V8 code cache (functions compiled by an earlier
// run, so neither parsing the ~1 MB file nor compiling what the command runs is paid again: about 25-30
// ms of `berth ps`). The cache is named by the code's hash (V8 checks only the source's length) and is
// written at exit when it is missing or V8 rejects it (another Node).
function loader(name, hash) {
  return `"use strict";
// Generated by scripts/bundle.mjs: runs ${name}.code.cjs from a V8 code cache.
const { readFileSync, renameSync, rmSync, writeFileSync } = require("fs");
const { Script } = require("vm");
const Module = require("module");
const file = require("path").join(__dirname, "${name}.code.cjs");
const cacheFile = require("path").join(__dirname, "${name}.code.${hash}.cache");
let cachedData;
try { cachedData = readFileSync(cacheFile); } catch { /* none yet */ }
const script = new Script(Module.wrap(readFileSync(file, "utf8")), { filename: file, cachedData });
if (!cachedData || script.cachedDataRejected) {
  process.once("exit", () => {
    const tmp = \`\${cacheFile}.\${process.pid}\`;
    try { writeFileSync(tmp, script.createCachedData()); renameSync(tmp, cacheFile); } catch { rmSync(tmp, { force: true }); }
  });
}
const m = new Module(file, module);
m.filename = file;
m.paths = Module._nodeModulePaths(__dirname);
script.runInThisContext().call(m.exports, m.exports, Module.createRequire(file), m, file, __dirname);
`;
}
