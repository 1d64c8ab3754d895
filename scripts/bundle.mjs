// Bundles each CLI into one CommonJS file (dist/bundle/*.cjs): engines call berth-oci several times per
// container, and loading one pre-linked file instead of ~40 ESM modules saves a good part of Node's start.
import { build } from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
for (const name of ["berth-oci", "berth"]) {
  await build({
    stdin: {
      contents: `const { main } = require("./src/cli/${name}.ts"); main(process.argv.slice(2)).then((c) => { process.exitCode = c; });`,
      resolveDir: root,
      loader: "js",
    },
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    outfile: join(root, "dist", "bundle", `${name}.cjs`),
    // import.meta.url has no meaning in a CJS bundle; code that needs its own location reads this.
    define: { "import.meta.url": "__berthBundleUrl" },
    banner: { js: `const __berthBundleUrl = require("url").pathToFileURL(__filename).href;` },
    logLevel: "warning",
  });
}
