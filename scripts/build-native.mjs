// Builds the C helper (native/) at install time. A missing compiler is one clear error, not a stack trace.
// Every native/*.c goes into the one binary. It is linked statically: a long-lived monitor per container
// must stay under 1 MiB RSS, and a dynamic glibc alone maps more than that (static: ~0.7 MiB).
// Where no static libc is installed, it falls back to dynamic linking (works, just bigger).
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cc = process.env.CC || "cc";
const final = join(root, "native", "build", "berth-helper");
// Built beside and renamed into place: a helper being run meanwhile is never a half-written file.
const out = `${final}.tmp-${process.pid}`;
mkdirSync(dirname(final), { recursive: true });
const sources = readdirSync(join(root, "native")).filter((f) => f.endsWith(".c")).sort().map((f) => join(root, "native", f));
const base = ["-O2", "-s", "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-D_GNU_SOURCE", "-o", out, ...sources];
let args = ["-static", ...base];
let result = spawnSync(cc, args, { stdio: ["inherit", "inherit", "pipe"], encoding: "utf8" });
if (!result.error && result.status !== 0 && /cannot find -l(c|gcc|gcc_eh|pthread)\b/.test(result.stderr ?? "")) {
  console.error("berth: no static libc (e.g. apt-get install libc6-dev); linking the helper dynamically (larger monitors)");
  args = base;
  result = spawnSync(cc, args, { stdio: ["inherit", "inherit", "pipe"], encoding: "utf8" });
}
if (result.stderr) process.stderr.write(result.stderr);
if (result.error) {
  console.error(`berth: cannot build the native helper: C compiler "${cc}" not found (${result.error.message}); install one, e.g. apt-get install gcc libc6-dev`);
  process.exit(1);
}
if (result.status !== 0) {
  rmSync(out, { force: true });
  console.error(`berth: building the native helper failed: ${cc} ${args.join(" ")} exited ${result.status}`);
  process.exit(1);
}
renameSync(out, final);
