// `berth-oci ps`, as `runc ps`: the host's `ps` (default `ps -ef`, else the arguments after the id) run
// once, its header kept and only the rows whose PID column names a process of the container. Berth
// printed its own PID/CMD table and ignored ps options, so `berth-oci ps c1 -o pid,comm` and scripts
// reading runc's UID/PID/PPID/... columns got something else.

import { spawnSync } from "node:child_process";
import { BerthError } from "../errors.js";

/** The header and the rows of `ps` output whose PID field is one of `pids`. */
export function filterPsOutput(output: string, pids: readonly number[]): string {
  const lines = output.split("\n");
  const header = lines[0] ?? "";
  const pidIndex = header.trim().split(/\s+/).indexOf("PID");
  if (pidIndex === -1) throw new BerthError("couldn't find PID field in ps output", { exitCode: 1 });
  const wanted = new Set(pids);
  const rows = lines.slice(1).filter((line) => {
    if (line === "") return false;
    const field = line.trim().split(/\s+/)[pidIndex];
    return field !== undefined && /^\d+$/.test(field) && wanted.has(Number(field));
  });
  return [header, ...rows].join("\n") + "\n";
}

/** Runs the host's ps with `args` (runc's default: -ef) and keeps the container's processes. */
export function psTable(pids: readonly number[], args: readonly string[]): string {
  const r = spawnSync("ps", args.length ? [...args] : ["-ef"], { encoding: "utf8" });
  if (r.error) throw new BerthError(`ps: ${r.error.message}`, { exitCode: 1 });
  if (r.status !== 0) throw new BerthError(`ps exited with ${r.status}: ${(r.stdout + r.stderr).trim()}`, { exitCode: 1 });
  return filterPsOutput(r.stdout, pids);
}
