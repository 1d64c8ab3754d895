// What the engine needs from images: a name -> layers (overlay lower dirs, top first) + run config.
// The built-in "host" image, and every image in the image store (src/images/store.ts).

import { createHash } from "node:crypto";
import { join } from "node:path";
import type { ImageRunConfig } from "../images/manifest.js";
import { ImageStore } from "../images/store.js";
import type { ImageRecord } from "../images/store-api.js";
import { ensureHostImage } from "../rootfs/host-image.js";
import { notFound } from "./util.js";

export interface ResolvedImage {
  id: string;
  /** The name as the user gave it (docker shows this in Config.Image and ps). */
  name: string;
  lowerDirs: string[];
  config: ImageRunConfig;
  record?: ImageRecord;
}

export const HOST_IMAGE_ID = `sha256:${createHash("sha256").update("berth-host-image").digest("hex")}`;
const HOST_NAMES = new Set(["host", "host:latest", "docker.io/library/host:latest", "library/host:latest", "library/host"]);

export class ImageBackend {
  readonly dataRoot: string;
  #store: ImageStore | undefined;
  #hostRootfs: string | undefined;
  #hostChecked = 0;

  constructor(dataRoot: string) {
    this.dataRoot = dataRoot;
  }

  /** The image store (opened lazily: it creates its directories). */
  get store(): ImageStore {
    this.#store ??= new ImageStore(this.dataRoot, { containersState: join(this.dataRoot, "containers") });
    return this.#store;
  }

  isHost(name: string): boolean {
    return HOST_NAMES.has(name) || name === HOST_IMAGE_ID || (name.length >= 12 && HOST_IMAGE_ID.slice(7).startsWith(name));
  }

  async resolve(name: string): Promise<ResolvedImage> {
    if (this.isHost(name)) {
      // ensureHostImage compares the image with the host's files: at most every 10 s, not per container.
      if (!this.#hostRootfs || Date.now() - this.#hostChecked > 10_000) {
        this.#hostRootfs = await ensureHostImage(this.dataRoot);
        this.#hostChecked = Date.now();
      }
      const rootfs = this.#hostRootfs;
      // No default command: `berth run host` without one is an error, as it always was.
      return { id: HOST_IMAGE_ID, name, lowerDirs: [rootfs], config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] } };
    }
    let record: ImageRecord | undefined;
    try {
      record = this.store.findImage(name);
    } catch {
      record = undefined;
    }
    if (!record) throw notFound(`No such image: ${name}`);
    const cfg = await this.store.imageConfig(record.id);
    return { id: record.id, name, lowerDirs: this.store.lowerDirs(record.id), config: cfg.config ?? {}, record };
  }

  /** The image's config without unpacking anything (for inspect of containers). */
  find(name: string): ImageRecord | undefined {
    if (this.isHost(name)) return undefined;
    try {
      return this.store.findImage(name);
    } catch {
      return undefined;
    }
  }
}
