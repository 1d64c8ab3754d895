// Builds the C helper (native/) at install time. A missing compiler is one clear error, not a stack trace.
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cc = process.env.CC || "cc";
const out = join(root, "native", "build", "berth-helper");
mkdirSync(dirname(out), { recursive: true });
const args = ["-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-D_GNU_SOURCE", "-o", out, join(root, "native", "helper.c")];
const result = spawnSync(cc, args, { stdio: "inherit" });
if (result.error) {
  console.error(`berth: cannot build the native helper: C compiler "${cc}" not found (${result.error.message}); install one, e.g. apt-get install gcc libc6-dev`);
  process.exit(1);
}
if (result.status !== 0) {
  console.error(`berth: building the native helper failed: ${cc} ${args.join(" ")} exited ${result.status}`);
  process.exit(1);
}
