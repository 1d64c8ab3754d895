// A container's filesystem seen from the host (cp, export of a stopped container): paths whose symlinks
// resolve as inside the container, so nothing leads out of its root, and its volumes and binds mounted
// at their targets and unmounted again.

import { spawnSync } from "node:child_process";
import { closeSync, lstatSync, mkdirSync, openSync, readlinkSync, statSync } from "node:fs";
import { dirname, join } from "node:path";

const MAX_LINKS = 255;

/**
 * The container path that `path` names under `root` (absolute, with no symlink in its directories): a
 * symlink's absolute target and ".." stop at the root. The last component is followed only when
 * `followLast` is set or the path ends in "/" (docker's cp stats a link itself); a missing component and
 * what follows it are kept as written.
 */
export function resolveInRoot(root: string, path: string, followLast: boolean): string {
  const todo = path.split("/");
  const done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const part = todo.shift() as string;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      done.pop();
      continue;
    }
    const host = `${root}/${[...done, part].join("/")}`;
    let isLink = false;
    try { isLink = lstatSync(host).isSymbolicLink(); } catch { /* missing: kept as written */ }
    if (isLink && (followLast || todo.length > 0)) {
      if (++links > MAX_LINKS) throw new Error(`too many levels of symbolic links: ${path}`);
      const target = readlinkSync(host);
      if (target.startsWith("/")) done.length = 0;
      todo.unshift(...target.split("/"));
      continue;
    }
    done.push(part);
  }
  return `/${done.join("/")}`;
}

/** A volume or bind mount of a container (its Mounts entry). */
export interface VolumeMount {
  Type: string;
  Source: string;
  Destination: string;
  RW: boolean;
}

/**
 * Bind-mounts a stopped container's volumes and bind mounts at their targets under `root` (its mounted
 * rootfs), parents first, as dockerd does for cp; a missing target is made (as when the container
 * starts). Pushes each mount point on `mounted` as it is made, so that the caller unmounts exactly
 * those (in reverse) even when one fails. tmpfs mounts have nothing to show and are left out.
 */
export function mountVolumes(root: string, mounts: readonly VolumeMount[], mounted: string[]): void {
  const depth = (p: string) => p.split("/").filter(Boolean).length;
  for (const m of [...mounts].filter((x) => x.Type !== "tmpfs").sort((a, b) => depth(a.Destination) - depth(b.Destination))) {
    let isDir: boolean;
    try { isDir = statSync(m.Source).isDirectory(); } catch { continue; } // a bind source gone meanwhile
    const target = join(root, resolveInRoot(root, m.Destination, true));
    if (isDir) mkdirSync(target, { recursive: true });
    else {
      mkdirSync(dirname(target), { recursive: true });
      closeSync(openSync(target, "a"));
    }
    mountOrThrow(["--bind", m.Source, target], m.Destination);
    mounted.push(target);
    if (!m.RW) mountOrThrow(["-o", "remount,bind,ro", target], m.Destination);
  }
}

function mountOrThrow(args: string[], what: string): void {
  const r = spawnSync("mount", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`cannot mount the container's ${what}: ${(r.stderr || r.error?.message || "").trim()}`);
}

/**
 * Unmounts now (waits for umount): a busy mount is detached (lazily), so in both cases the directory
 * is empty afterwards and may be removed. Never remove one recursively before this returned: the
 * files under a mount are the container's.
 */
export function unmountNow(path: string): void {
  if (spawnSync("umount", [path], { stdio: "ignore" }).status === 0) return;
  spawnSync("umount", ["-l", path], { stdio: "ignore" });
}
