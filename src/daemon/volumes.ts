// Named and anonymous volumes: <data-root>/volumes/<name>/_data, metadata in volume.json (atomic).
// A volume made with the local driver's options (type, device, o) has that filesystem mounted on its
// _data while containers run with it (the engine decides when: mountOptioned / unmountOptioned).

import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { badRequest, conflict, EngineError, notFound, readJson, writeJsonAtomic } from "./util.js";

export interface Volume {
  Name: string;
  Driver: "local";
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string>;
  Scope: "local";
  Options: Record<string, string> | null;
  /** Made for an image VOLUME or `-v /path`: removed by `rm -v`. */
  anonymous?: boolean;
  /** Copy-up from the image happened (or the volume already had data). */
  populated?: boolean;
}

const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** dockerd's local driver: each option needs the others listed (its mandatoryOpts). */
const REQUIRED_WITH: Record<string, string[]> = { type: ["device"], device: ["type"], o: ["device", "type"] };

/**
 * Checks the local driver's options as dockerd does, and what Berth can mount: tmpfs, and a bind of an
 * existing host directory (type none, o bind or rbind). Other filesystems are refused rather than
 * accepted and failing at the first start.
 */
export function checkVolumeOptions(volName: string, options: Record<string, string>): void {
  for (const k of Object.keys(options)) {
    if (!(k in REQUIRED_WITH)) throw badRequest(`create ${volName}: invalid option key: "${k}"`);
  }
  for (const k of Object.keys(options)) {
    for (const need of REQUIRED_WITH[k]) {
      if (!(need in options)) throw badRequest(`create ${volName}: missing required option: "${need}"`);
    }
  }
  if (!("type" in options)) return;
  const type = options.type;
  const o = (options.o ?? "").split(",").filter(Boolean);
  if (type === "tmpfs") return;
  if (type === "none" && (o.includes("bind") || o.includes("rbind"))) {
    const device = options.device;
    if (!isAbsolute(device)) throw badRequest(`create ${volName}: bind device must be an absolute host path: "${device}"`);
    let isDir = false;
    try { isDir = statSync(device).isDirectory(); } catch { /* missing */ }
    if (!isDir) throw badRequest(`create ${volName}: bind device ${device} does not exist or is not a directory`);
    return;
  }
  if (type === "none") throw badRequest(`create ${volName}: type "none" needs o=bind or o=rbind`);
  throw badRequest(`create ${volName}: volume type "${type}" is not supported by Berth (only type=tmpfs, and type=none with o=bind)`);
}

/** Whether `path` is a mount point (an entry of /proc/self/mountinfo). */
export function isMountPoint(path: string): boolean {
  try { path = realpathSync(path); } catch { return false; }
  let info = "";
  try { info = readFileSync("/proc/self/mountinfo", "utf8"); } catch { return false; }
  // mountinfo escapes space, tab, newline and backslash in octal.
  const unescape = (p: string) => p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return info.split("\n").some((l) => l.split(" ")[4] !== undefined && unescape(l.split(" ")[4]) === path);
}

/** Whether the volume mounts a filesystem of its own (type/device/o). */
export function hasMountOptions(v: Volume): boolean {
  return Boolean(v.Options && v.Options.type);
}

export class VolumeStore {
  readonly root: string;

  constructor(dataRoot: string) {
    this.root = join(dataRoot, "volumes");
    mkdirSync(this.root, { recursive: true, mode: 0o711 });
    // A volume whose creation was cut short has a dir without volume.json, or a temp dir: remove it.
    for (const name of readdirSync(this.root)) {
      if (name.startsWith(".tmp-") || !existsSync(join(this.root, name, "volume.json"))) rmSync(join(this.root, name), { recursive: true, force: true });
    }
  }

  #path(name: string) {
    return join(this.root, name);
  }

  get(name: string): Volume | undefined {
    if (!VOLUME_NAME.test(name)) return undefined;
    return readJson<Volume>(join(this.#path(name), "volume.json"));
  }

  mustGet(name: string): Volume {
    const v = this.get(name);
    if (!v) throw notFound(`get ${name}: no such volume`);
    return v;
  }

  list(): Volume[] {
    const out: Volume[] = [];
    for (const name of readdirSync(this.root)) {
      const v = this.get(name);
      if (v) out.push(v);
    }
    return out;
  }

  create(name: string | undefined, o: { labels?: Record<string, string>; options?: Record<string, string>; driver?: string; anonymous?: boolean } = {}): { volume: Volume; created: boolean } {
    const volName = name || randomBytes(32).toString("hex");
    if (!VOLUME_NAME.test(volName)) {
      throw badRequest(`create ${volName}: "${volName}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
    }
    if (o.driver && o.driver !== "local") throw badRequest(`create ${volName}: volume driver "${o.driver}" is not supported (only local)`);
    checkVolumeOptions(volName, o.options ?? {});
    const existing = this.get(volName);
    if (existing) return { volume: existing, created: false };
    const tmp = join(this.root, `.tmp-${volName}-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(join(tmp, "_data"), { recursive: true, mode: 0o755 });
    const volume: Volume = {
      Name: volName,
      Driver: "local",
      Mountpoint: join(this.#path(volName), "_data"),
      CreatedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      Labels: o.labels ?? {},
      Scope: "local",
      Options: o.options && Object.keys(o.options).length > 0 ? o.options : null,
      anonymous: o.anonymous || undefined,
    };
    // dockerd keeps the options in opts.json beside _data; volume.json has them too (its Options).
    if (volume.Options) writeJsonAtomic(join(tmp, "opts.json"), { MountType: volume.Options.type ?? "", MountOpts: volume.Options.o ?? "", MountDevice: volume.Options.device ?? "" });
    writeJsonAtomic(join(tmp, "volume.json"), volume);
    try {
      renameSync(tmp, this.#path(volName));
    } catch {
      rmSync(tmp, { recursive: true, force: true });
      const raced = this.get(volName);
      if (raced) return { volume: raced, created: false };
      throw conflict(`create ${volName}: volume could not be created`);
    }
    return { volume, created: true };
  }

  markPopulated(name: string): void {
    const v = this.get(name);
    if (!v || v.populated) return;
    v.populated = true;
    writeJsonAtomic(join(this.#path(name), "volume.json"), v);
  }

  /**
   * Mounts the volume's filesystem on its _data unless it is mounted already. True when this call
   * mounted it (a fresh, possibly empty filesystem: copy-up may follow).
   */
  mountOptioned(v: Volume): boolean {
    if (!hasMountOptions(v) || isMountPoint(v.Mountpoint)) return false;
    const opts = v.Options as Record<string, string>;
    mkdirSync(v.Mountpoint, { recursive: true, mode: 0o755 });
    const args = ["-t", opts.type, ...(opts.o ? ["-o", opts.o] : []), opts.device, v.Mountpoint];
    const res = spawnSync("mount", args, { encoding: "utf8" });
    if (res.status !== 0) {
      const why = (res.stderr || res.error?.message || `mount exited ${res.status}`).trim();
      throw new EngineError(500, `failed to mount local volume: mount ${opts.device}:${v.Mountpoint}${opts.o ? `, data: ${opts.o}` : ""}: ${why.replace(/\s*\n\s*/g, " ")}`);
    }
    return true;
  }

  /** Unmounts the volume's filesystem when mounted (lazily if still busy: no container has it by then). */
  unmountOptioned(v: Volume): void {
    if (!hasMountOptions(v)) return;
    for (let i = 0; i < 8 && isMountPoint(v.Mountpoint); i++) {
      // A mount stacked twice (a start racing a crash) needs one umount each.
      if (spawnSync("umount", [v.Mountpoint], { stdio: "ignore" }).status !== 0) spawnSync("umount", ["-l", v.Mountpoint], { stdio: "ignore" });
    }
  }

  remove(name: string, usedBy: string[], force = false): void {
    const v = this.get(name);
    if (!v) {
      if (force) return;
      throw notFound(`get ${name}: no such volume`);
    }
    if (usedBy.length > 0) throw conflict(`remove ${name}: volume is in use - [${usedBy.join(", ")}]`);
    // Never delete through a mount: a bind volume's files are the host directory's.
    this.unmountOptioned(v);
    if (isMountPoint(v.Mountpoint)) throw conflict(`remove ${name}: its filesystem is still mounted at ${v.Mountpoint}`);
    // Rename first so a crash mid-delete never leaves a volume that looks whole.
    const trash = join(this.root, `.tmp-rm-${name}-${process.pid}`);
    renameSync(this.#path(name), trash);
    rmSync(trash, { recursive: true, force: true });
  }
}

/** The public JSON (private fields dropped). */
export function volumeJson(v: Volume, usage?: { size: number; refs: number }): Record<string, unknown> {
  const { anonymous: _a, populated: _p, ...rest } = v;
  return usage ? { ...rest, UsageData: { Size: usage.size, RefCount: usage.refs } } : rest;
}
