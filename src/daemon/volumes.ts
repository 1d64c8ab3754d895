// Named and anonymous volumes: <data-root>/volumes/<name>/_data, metadata in volume.json (atomic).

import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { badRequest, conflict, notFound, readJson, writeJsonAtomic } from "./util.js";

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
    for (const k of Object.keys(o.options ?? {})) {
      if (!["type", "device", "o"].includes(k)) throw badRequest(`create ${volName}: invalid option key: "${k}"`);
    }
    // The local driver's type/device/o mount a filesystem (tmpfs, a bind, NFS...) on the volume while
    // containers use it. Berth does not mount volumes yet: refused rather than accepted and ignored (a
    // "size=1m" tmpfs that is really the data root's disk).
    if (Object.keys(o.options ?? {}).length > 0) {
      throw badRequest(`create ${volName}: the local driver's mount options (type, device, o) are not supported by Berth: use a plain volume, --mount type=tmpfs or a bind mount`);
    }
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

  remove(name: string, usedBy: string[], force = false): void {
    const v = this.get(name);
    if (!v) {
      if (force) return;
      throw notFound(`get ${name}: no such volume`);
    }
    if (usedBy.length > 0) throw conflict(`remove ${name}: volume is in use - [${usedBy.join(", ")}]`);
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
