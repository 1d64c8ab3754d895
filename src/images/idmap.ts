// Pure rules for layers made for a user namespace: a layer's owners (container ids) become the host ids
// a --uidmap/--gidmap maps them to, so that inside the namespace files show their image owners. The
// store keeps one such copy of a layer per mapping (store.ts#idmappedLowerDirs).

import { createHash } from "node:crypto";
import type { IdMapping } from "../oci/spec.js";

/** The host id that container id `id` maps to, or undefined when no range covers it. */
export function hostIdOf(maps: IdMapping[], id: number): number | undefined {
  for (const m of maps) {
    if (id >= m.containerID && id < m.containerID + m.size) return m.hostID + (id - m.containerID);
  }
  return undefined;
}

/** A short, stable name for a pair of mappings (the directory of the layer copies made for it). */
export function idmapKey(uidMap: IdMapping[], gidMap: IdMapping[]): string {
  const text = (maps: IdMapping[]) => maps.map((m) => `${m.containerID}:${m.hostID}:${m.size}`).join(",");
  return createHash("sha256").update(`u=${text(uidMap)};g=${text(gidMap)}`).digest("hex").slice(0, 16);
}

export interface IdShift {
  uidMap: IdMapping[];
  gidMap: IdMapping[];
}

const VFS_CAP_REVISION_2 = 0x02000000;
const VFS_CAP_REVISION_3 = 0x03000000;
const VFS_CAP_REVISION_MASK = 0xff000000;

/**
 * security.capability for a file in the namespace whose root is host uid `rootid`: a v2 value (no root
 * id) counts only for the initial namespace's root, so it becomes v3 naming `rootid`; a v3 value gets
 * its root id shifted. Anything else is returned as it is (the kernel judges it).
 */
export function shiftFileCapability(value: Uint8Array, shift: IdShift): Uint8Array {
  const buf = Buffer.from(value);
  if (buf.length < 20) return value;
  const magic = buf.readUInt32LE(0);
  const rev = (magic & VFS_CAP_REVISION_MASK) >>> 0;
  const flags = magic & ~VFS_CAP_REVISION_MASK;
  if (rev === VFS_CAP_REVISION_2 && buf.length === 20) {
    const root = hostIdOf(shift.uidMap, 0);
    if (root === undefined) return value;
    const out = Buffer.alloc(24);
    out.writeUInt32LE((VFS_CAP_REVISION_3 | flags) >>> 0, 0);
    buf.copy(out, 4, 4, 20);
    out.writeUInt32LE(root, 20);
    return out;
  }
  if (rev === VFS_CAP_REVISION_3 && buf.length === 24) {
    const root = hostIdOf(shift.uidMap, buf.readUInt32LE(20));
    if (root === undefined) return value;
    const out = Buffer.from(buf);
    out.writeUInt32LE(root, 20);
    return out;
  }
  return value;
}
