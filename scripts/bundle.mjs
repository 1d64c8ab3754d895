// Bundles each CLI into one CommonJS file (dist/bundle/*.cjs): engines call berth-oci several times per
// container, and loading one pre-linked file instead of ~40 ESM modules saves a good part of Node's start.
import { build } from "esbuild";
import { writeFileSync } from "node:fs";
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
    outfile: join(root, "dist", "bundle", `${name}.cjs`),
    // import.meta.url has no meaning in a CJS bundle; code that needs its own location reads this.
    define: { "import.meta.url": "__berthBundleUrl" },
    banner: { js: `const __berthBundleUrl = require("url").pathToFileURL(__filename).href;\n${lazyHelper}` },
    plugins: [lazyBuiltins],
    logLevel: "warning",
  });
  for (const file of result.outputFiles) {
    writeFileSync(file.path, file.text.replaceAll('__toESM(require("berth-lazy:', '__berthLazyEsm(require("berth-lazy:'));
  }
}
