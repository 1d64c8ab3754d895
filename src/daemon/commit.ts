// docker commit: the container's upper layer as a new image layer on top of its image, in the image
// store. Overlay whiteouts (0:0 character devices) become OCI `.wh.` entries, opaque dirs `.wh..wh..opq`.

import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, lstatSync, readdirSync, readlinkSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import { DEFAULT_PATH } from "../core/defaults.js";
import { hostPlatform, type ImageConfig } from "../images/manifest.js";
import type { Descriptor } from "../images/store-api.js";
import type { ImageStore } from "../images/store.js";
import { parseReference } from "../images/reference.js";
import type { ContainerConfig } from "./types.js";
import { applyChanges, type Change } from "./commit-changes.js";
import { badRequest, EngineError } from "./util.js";
import { runCapture } from "./engine.js";

const LAYER_TAR = "application/vnd.oci.image.layer.v1.tar";

async function isOpaque(path: string): Promise<boolean> {
  const r = await runCapture("getfattr", ["--absolute-names", "--only-values", "-n", "trusted.overlay.opaque", path]);
  return r.code === 0 && r.stdout.trim() === "y";
}

/** Writes the upper dir as an OCI layer tar to `out`; returns its sha256 digest and size. */
export async function layerFromUpper(upper: string, out: string, skip: ReadonlySet<string> = new Set()): Promise<{ digest: string; size: number }> {
  const pack = tar.pack();
  const hash = createHash("sha256");
  let size = 0;
  const file = createWriteStream(out);
  pack.on("data", (c: unknown) => { const b = c as Buffer; hash.update(b); size += b.length; });
  const done = pipeline(pack, file);
  const add = (header: Partial<tar.Header> & { name: string }, body?: Buffer | string) => new Promise<void>((resolve, reject) => {
    pack.entry(header as tar.Header, body as Buffer, (err) => (err ? reject(err) : resolve()));
  });
  const walk = async (rel: string) => {
    for (const name of readdirSync(join(upper, rel)).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      if (skip.has(p)) continue;
      const abs = join(upper, p);
      const st = lstatSync(abs);
      const common = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
      if (st.isCharacterDevice() && st.rdev === 0) {
        await add({ name: rel ? `${rel}/.wh.${name}` : `.wh.${name}`, type: "file", size: 0, ...common }, "");
      } else if (st.isDirectory()) {
        await add({ name: `${p}/`, type: "directory", ...common });
        if (await isOpaque(abs)) await add({ name: `${p}/.wh..wh..opq`, type: "file", size: 0, ...common }, "");
        await walk(p);
      } else if (st.isSymbolicLink()) {
        await add({ name: p, type: "symlink", linkname: readlinkSync(abs), ...common });
      } else if (st.isFile()) {
        await new Promise<void>((resolve, reject) => {
          const entry = pack.entry({ name: p, type: "file", size: st.size, ...common } as tar.Header, (err) => (err ? reject(err) : resolve()));
          createReadStream(abs).on("error", reject).pipe(entry);
        });
      }
    }
  };
  await walk("");
  pack.finalize();
  await done;
  return { digest: `sha256:${hash.digest("hex")}`, size };
}

export interface CommitRequest {
  store: ImageStore;
  imageId: string;
  upper: string;
  /** Paths of upper that are not the container's changes (see init-layer.ts). */
  skip?: ReadonlySet<string>;
  tmpDir: string;
  containerConfig: ContainerConfig;
  repo?: string;
  tag?: string;
  comment?: string;
  author?: string;
  /** Config fields to set (the request body's config). */
  overrides?: Partial<ContainerConfig>;
  /** docker's --change instructions, applied last (parsed by parseChanges, so already valid). */
  changes?: Change[];
  /**
   * For a container of the built-in `host` image, which is a directory and not a stored image: its
   * root filesystem, which becomes the new image's first layer (docker can always commit).
   */
  baseRootfs?: string;
}

/** The built-in host image as a one-layer stored base: its rootfs tarred into a layer blob. */
async function hostBase(store: ImageStore, rootfs: string, tmpDir: string): Promise<{ config: ImageConfig; layers: Descriptor[] }> {
  const tmp = join(tmpDir, `commit-host-${process.pid}-${Date.now()}.tar`);
  try {
    const layer = await layerFromUpper(rootfs, tmp);
    await store.ingestBlob({ digest: layer.digest, size: layer.size }, async (offset) => createReadStream(tmp, { start: offset }));
    const created = statSync(rootfs).mtime.toISOString();
    return {
      config: {
        ...hostPlatform(),
        created,
        config: { Env: [`PATH=${DEFAULT_PATH}`] },
        rootfs: { type: "layers", diff_ids: [layer.digest] },
        history: [{ created, created_by: "berth: the built-in host image" }],
      },
      layers: [{ mediaType: LAYER_TAR, digest: layer.digest, size: layer.size }],
    };
  } finally {
    rmSync(tmp, { force: true });
  }
}

export async function commitContainer(c: CommitRequest): Promise<string> {
  const { store } = c;
  let base: ImageConfig;
  let baseLayers: Descriptor[];
  if (store.storedImage(c.imageId)) {
    base = await store.imageConfig(c.imageId);
    baseLayers = (await store.imageManifest(c.imageId)).layers;
  } else if (c.baseRootfs) {
    ({ config: base, layers: baseLayers } = await hostBase(store, c.baseRootfs, c.tmpDir));
  } else {
    throw new EngineError(404, `cannot commit: the container's image ${c.imageId} is no longer in the image store`);
  }
  const tmp = join(c.tmpDir, `commit-${process.pid}-${Date.now()}.tar`);
  try {
    const layer = await layerFromUpper(c.upper, tmp, c.skip);
    await store.ingestBlob({ digest: layer.digest, size: layer.size }, async (offset) => createReadStream(tmp, { start: offset }));
    const cc = c.containerConfig;
    const o = c.overrides ?? {};
    const now = new Date().toISOString();
    const config = {
      ...base,
      created: now,
      author: c.author ?? base.author,
      config: applyChanges({
        ...base.config,
        Env: o.Env ?? cc.Env,
        Cmd: o.Cmd ?? cc.Cmd,
        Entrypoint: o.Entrypoint ?? cc.Entrypoint,
        WorkingDir: o.WorkingDir ?? cc.WorkingDir,
        User: o.User ?? cc.User,
        Labels: o.Labels ?? cc.Labels,
        ExposedPorts: o.ExposedPorts ?? cc.ExposedPorts,
        Volumes: o.Volumes ?? cc.Volumes ?? undefined,
        StopSignal: o.StopSignal ?? cc.StopSignal,
        Healthcheck: o.Healthcheck ?? cc.Healthcheck,
      }, c.changes ?? []),
      rootfs: { type: "layers" as const, diff_ids: [...base.rootfs.diff_ids, layer.digest] },
      history: [...(base.history ?? []), { created: now, created_by: "berth commit", comment: c.comment || undefined }],
    };
    const configBytes = Buffer.from(JSON.stringify(config));
    const configDigest = await store.putBlobBytes(configBytes);
    const newManifest = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: configBytes.length },
      layers: [...baseLayers, { mediaType: LAYER_TAR, digest: layer.digest, size: layer.size }],
    };
    const manifestDigest = await store.putBlobBytes(Buffer.from(JSON.stringify(newManifest)));
    let ref;
    if (c.repo) {
      try {
        ref = parseReference(c.tag ? `${c.repo}:${c.tag}` : c.repo);
      } catch (err) {
        throw badRequest((err as Error).message);
      }
    }
    const rec = await store.commitImage(manifestDigest, ref, undefined, { repoDigest: false });
    return rec.id;
  } finally {
    rmSync(tmp, { force: true });
  }
}
