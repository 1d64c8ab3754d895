// Bind mount targets made ahead in the overlay's upper layer, for containers in a user namespace.
//
// The helper creates a missing mount target from inside the container's user namespace. There the
// container's root is an unprivileged host uid, and a --rootfs (or the host image) is owned by host
// root, so it may not write to /etc: `berth run --uidmap ... --rootfs DIR` failed on the /etc/hosts bind
// Berth adds itself ("mount ... dst=/etc/hosts ...: permission denied") whenever DIR had no /etc/hosts.
// Here, as host root and before the launch, the missing targets are made in the upper layer; directories
// on the way that the lower layer has are mirrored with its mode and owner, so nothing inside changes
// but the new (empty) mount points.

import { chmodSync, chownSync, closeSync, lstatSync, mkdirSync, openSync, statSync, type Stats } from "node:fs";
import { join } from "node:path";
import type { Mount } from "../oci/spec.js";

function lstatOrUndefined(path: string): Stats | undefined {
  try { return lstatSync(path); } catch { return undefined; }
}

/** True for a mount entry that binds a host path (the ones whose target the helper may have to create). */
function isBind(m: Mount): boolean {
  return m.type === "bind" || (m.options ?? []).some((o) => o === "bind" || o === "rbind");
}

/**
 * Makes, in `upper`, each bind mount target that `lower` lacks. `owner` owns what has no counterpart in
 * the lower layer (the container's root on the host). A path through a symlink or a non-directory in
 * the lower layer is left alone (the helper resolves it inside the container as before). Returns the
 * targets made, for tests.
 */
export function prepareBindTargets(lower: string, upper: string, mounts: Mount[], owner: { uid: number; gid: number }): string[] {
  const made: string[] = [];
  for (const m of mounts) {
    if (!isBind(m) || !m.source || !m.destination.startsWith("/")) continue;
    const parts = m.destination.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.length === 0 || parts.includes("..")) continue;
    let sourceIsDir: boolean;
    try { sourceIsDir = statSync(m.source).isDirectory(); } catch { continue; }
    if (lstatOrUndefined(join(lower, ...parts)) || lstatOrUndefined(join(upper, ...parts))) continue;

    // Every parent must be a real directory in the lower layer (or missing there); mirror the existing ones.
    let ok = true;
    const dirs: { rel: string[]; like?: Stats }[] = [];
    for (let i = 1; i < parts.length; i++) {
      const rel = parts.slice(0, i);
      const st = lstatOrUndefined(join(lower, ...rel));
      if (st && !st.isDirectory()) { ok = false; break; }
      dirs.push({ rel, like: st });
    }
    if (!ok) continue;
    for (const d of dirs) {
      const path = join(upper, ...d.rel);
      const existing = lstatOrUndefined(path);
      if (existing) {
        if (!existing.isDirectory()) { ok = false; break; }
        continue;
      }
      mkdirSync(path);
      chmodSync(path, d.like ? d.like.mode & 0o7777 : 0o755);
      chownSync(path, d.like?.uid ?? owner.uid, d.like?.gid ?? owner.gid);
    }
    if (!ok) continue;
    const target = join(upper, ...parts);
    if (sourceIsDir) mkdirSync(target, { mode: 0o755 });
    else closeSync(openSync(target, "wx", 0o644));
    chownSync(target, owner.uid, owner.gid);
    made.push(m.destination);
  }
  return made;
}
