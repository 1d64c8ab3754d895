// The overlay mount of an image's layers. mount(2) takes its options in one page, so the absolute
// layer paths of an image with more than ~40 layers do not fit in `lowerdir=a:b:c...`. Then, as docker's
// overlay2 does, each lower dir gets a short symlink ("0", "1", ...) in a directory of the container,
// lowerdir names those relatively, and the mount is made from that directory (`cwd`).

import { mkdirSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { BerthError } from "../errors.js";

/** The longest option string mount(2) passes on (a page, less its terminating NUL). */
export const MOUNT_DATA_MAX = 4095;

export interface OverlayMount {
  source: string;
  fstype: string;
  data: string;
  /** The directory to mount from (relative lowerdir names resolve against it); absent: all paths absolute. */
  cwd?: string;
}

/** The option string with the lower dirs (top first) as given. */
export function overlayData(lowerDirs: string[], upper: string, work: string): string {
  return `lowerdir=${lowerDirs.join(":")},upperdir=${upper},workdir=${work}`;
}

/**
 * The overlay mount of `lowerDirs` (top first) with `upper` and `work`. When the absolute form is too
 * long, `linkDir` (made afresh, 0711 so a user-namespace root can pass) holds a symlink per lower dir
 * and the mount is relative to it. The links are only read while mounting; `linkDir` goes with the
 * container's other dirs.
 */
export function overlayMount(lowerDirs: string[], upper: string, work: string, linkDir: string): OverlayMount {
  const data = overlayData(lowerDirs, upper, work);
  if (data.length <= MOUNT_DATA_MAX) return { source: "overlay", fstype: "overlay", data };
  rmSync(linkDir, { recursive: true, force: true });
  mkdirSync(linkDir, { mode: 0o711 });
  const names = lowerDirs.map((dir, i) => {
    const name = i.toString(36);
    symlinkSync(dir, join(linkDir, name));
    return name;
  });
  const short = overlayData(names, upper, work);
  if (short.length > MOUNT_DATA_MAX) {
    throw new BerthError(`the overlay of ${lowerDirs.length} layers needs ${short.length} bytes of mount options even with short names (at most ${MOUNT_DATA_MAX})`);
  }
  return { source: "overlay", fstype: "overlay", data: short, cwd: linkDir };
}
