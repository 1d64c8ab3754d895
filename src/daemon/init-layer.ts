// What docker keeps in a container's init layer rather than its read-write layer: the mountpoints the
// engine needs (/proc, /sys, /dev and its pts/shm/mqueue, /etc/hostname, /etc/hosts, /etc/resolv.conf).
// Berth creates the missing ones (empty) in the overlay's upper dir, so `diff`, `commit` and the layer it
// makes showed them; docker's do not.

import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** Deepest first, so a parent is judged after its children. */
const MOUNTPOINTS: { rel: string; dir: boolean }[] = [
  { rel: "etc/hostname", dir: false }, { rel: "etc/hosts", dir: false }, { rel: "etc/resolv.conf", dir: false },
  { rel: "dev/pts", dir: true }, { rel: "dev/shm", dir: true }, { rel: "dev/mqueue", dir: true },
  { rel: "etc", dir: true }, { rel: "dev", dir: true }, { rel: "proc", dir: true }, { rel: "sys", dir: true },
];

/**
 * The paths (relative, no leading slash) of `upper` that are only the engine's mountpoints: those above
 * that the image lacks (`inLower`) and that are empty files, or directories holding nothing but such
 * paths. (etc in the image and changed only by its mountpoints is left out too: docker's diff shows no
 * "C /etc" for them.)
 */
export function initLayerPaths(upper: string, inLower: (rel: string) => boolean): Set<string> {
  const skip = new Set<string>();
  for (const { rel, dir } of MOUNTPOINTS) {
    let st;
    try { st = lstatSync(join(upper, rel)); } catch { continue; }
    if (!dir) {
      if (st.isFile() && st.size === 0 && !inLower(rel)) skip.add(rel);
      continue;
    }
    if (!st.isDirectory()) continue;
    const rest = readdirSync(join(upper, rel)).filter((n) => !skip.has(`${rel}/${n}`));
    const ownSkipped = readdirSync(join(upper, rel)).length > rest.length;
    if (rest.length === 0 && (!inLower(rel) || ownSkipped)) skip.add(rel);
  }
  return skip;
}
