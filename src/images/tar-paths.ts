// Pure rules for layer tar entries: where an entry may land, and how OCI whiteouts map onto overlayfs.

import { posix } from "node:path";
import { BerthError } from "../errors.js";

export const WHITEOUT_PREFIX = ".wh.";
export const OPAQUE_MARKER = ".wh..wh..opq";
/** Whiteout meta files of aufs (.wh..wh.plnk, .wh..wh.aufs): carry nothing for overlayfs. */
export const WHITEOUT_META_PREFIX = ".wh..wh.";

/**
 * The entry's path relative to the layer root ("" for the root itself), or an error naming the entry
 * when it would land outside the layer: absolute paths and ".." that climbs above the root.
 */
export function cleanEntryPath(name: string, what = "layer entry"): string {
  if (name.includes("\0")) throw new BerthError(`${what} ${JSON.stringify(name)} has a NUL byte in its name`);
  if (name.startsWith("/")) throw new BerthError(`${what} ${JSON.stringify(name)} has an absolute path: it would land outside the layer`);
  const cleaned = posix.normalize(name);
  if (cleaned === ".." || cleaned.startsWith("../")) {
    throw new BerthError(`${what} ${JSON.stringify(name)} climbs out of the layer with ".."`);
  }
  const out = cleaned.replace(/\/+$/, "");
  return out === "." ? "" : out;
}

export type WhiteoutAction =
  | { kind: "opaque"; dir: string }
  | { kind: "whiteout"; path: string }
  | { kind: "ignore" };

/** What a cleaned entry path means as an OCI whiteout, or undefined for an ordinary entry. */
export function whiteoutAction(path: string): WhiteoutAction | undefined {
  const base = posix.basename(path);
  if (!base.startsWith(WHITEOUT_PREFIX)) return undefined;
  const dir = posix.dirname(path) === "." ? "" : posix.dirname(path);
  if (base === OPAQUE_MARKER) return { kind: "opaque", dir };
  if (base.startsWith(WHITEOUT_META_PREFIX)) return { kind: "ignore" };
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === "" || name === "." || name === "..") throw new BerthError(`layer entry ${JSON.stringify(path)} is a whiteout with no valid name`);
  return { kind: "whiteout", path: dir === "" ? name : `${dir}/${name}` };
}

/** The parent directories of a cleaned path, outermost first: "a/b/c" -> ["a", "a/b"]. */
export function parentsOf(path: string): string[] {
  const parts = path.split("/");
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join("/"));
  return out;
}

/** The overlayfs xattr that makes a directory opaque. */
export const OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque";

/** The PAX records of xattrs: "SCHILY.xattr.user.x" -> "user.x". */
export function paxXattrs(pax: Record<string, string> | null | undefined): [string, Buffer][] {
  if (!pax) return [];
  const out: [string, Buffer][] = [];
  for (const [k, v] of Object.entries(pax)) {
    if (k.startsWith("SCHILY.xattr.")) out.push([k.slice("SCHILY.xattr.".length), Buffer.from(v, "latin1")]);
    else if (k.startsWith("LIBARCHIVE.xattr.")) {
      // libarchive's form: URL-encoded name, base64 value.
      out.push([decodeURIComponent(k.slice("LIBARCHIVE.xattr.".length)), Buffer.from(v, "base64")]);
    }
  }
  return out;
}
