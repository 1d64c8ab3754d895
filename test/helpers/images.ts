// Helpers for the image tests: build tar layers entry by entry (tar-stream), lay them out as an OCI
// layout or a docker-save archive, make a busybox-static root filesystem, and check that an image store
// holds no temp files or half-written state.

import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import tar from "tar-stream";

export type TarEntry = [Partial<tar.Header> & { name: string }, (string | Buffer)?];

export const sha256 = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** A tar archive of `entries`, in order. Files without a body are empty. */
export async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on("data", (c) => chunks.push(c as Buffer));
  const ended = new Promise<void>((res) => pack.on("end", () => res()));
  for (const [header, body] of entries) {
    const isFile = header.type === undefined || header.type === "file";
    await new Promise<void>((res, rej) => {
      const cb = (e?: Error | null) => (e ? rej(e) : res());
      if (isFile) pack.entry({ mtime: new Date(1_600_000_000_000), ...header } as tar.Header, body ?? "", cb);
      else pack.entry({ mtime: new Date(1_600_000_000_000), ...header } as tar.Header, cb);
    });
  }
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}

export interface TestImage {
  /** Uncompressed layer tars, bottom first. */
  layers: Buffer[];
  config: Record<string, unknown>;
}

export function imageConfig(layers: Buffer[], config: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architecture: process.arch === "arm64" ? "arm64" : "amd64",
    os: "linux",
    created: "2024-01-02T03:04:05Z",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"], ...config },
    rootfs: { type: "layers", diff_ids: layers.map((l) => sha256(l)) },
    history: layers.map((_, i) => ({ created: "2024-01-02T03:04:05Z", created_by: `layer ${i}` })),
  };
}

/** Writes an OCI image layout directory (layers gzip-compressed); `name` becomes the ref annotation. */
export function writeOciLayout(dir: string, image: TestImage, name: string): { manifestDigest: string; configDigest: string } {
  mkdirSync(join(dir, "blobs/sha256"), { recursive: true });
  const put = (b: Buffer) => {
    const d = sha256(b);
    writeFileSync(join(dir, "blobs/sha256", d.slice(7)), b);
    return { digest: d, size: b.length };
  };
  const configBytes = Buffer.from(JSON.stringify(image.config));
  const config = put(configBytes);
  const layers = image.layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...put(gzipSync(l)) }));
  const manifest = put(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers,
  })));
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(dir, "index.json"), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, annotations: { "io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.split(":").pop() } }],
  }));
  return { manifestDigest: manifest.digest, configDigest: config.digest };
}

/** A docker-save archive (manifest.json, <config>.json, <n>/layer.tar) of one image. */
export async function dockerArchive(image: TestImage, repoTags: string[], options: { gzipLayers?: boolean } = {}): Promise<Buffer> {
  const configBytes = Buffer.from(JSON.stringify(image.config));
  const configName = `${sha256(configBytes).slice(7)}.json`;
  const entries: TarEntry[] = [[{ name: configName }, configBytes]];
  const names: string[] = [];
  image.layers.forEach((l, i) => {
    const name = `layer${i}/layer.tar`;
    names.push(name);
    entries.push([{ name: `layer${i}/`, type: "directory", mode: 0o755 }]);
    entries.push([{ name }, options.gzipLayers ? gzipSync(l) : l]);
  });
  entries.push([{ name: "manifest.json" }, JSON.stringify([{ Config: configName, RepoTags: repoTags, Layers: names }])]);
  return makeTar(entries);
}

/** The busybox-static binary, installed with apt-get when missing. */
export function busyboxPath(): string {
  for (const p of ["/bin/busybox", "/usr/bin/busybox"]) if (existsSync(p)) return p;
  const r = spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "busybox-static"], { encoding: "utf8", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  if (r.status !== 0) throw new Error(`apt-get install busybox-static failed: ${r.stderr}`);
  return "/bin/busybox";
}

/** A busybox root filesystem directory (bin/busybox + applet symlinks, etc/passwd, etc/group). */
export function busyboxRootfs(dir: string): string {
  mkdirSync(join(dir, "bin"), { recursive: true });
  mkdirSync(join(dir, "etc"), { recursive: true });
  mkdirSync(join(dir, "tmp"), { recursive: true, mode: 0o1777 });
  copyFileSync(busyboxPath(), join(dir, "bin/busybox"));
  for (const a of ["sh", "ls", "cat", "echo", "stat", "id", "test", "true", "readlink", "getfattr", "wc", "pwd", "env"]) {
    symlinkSync("busybox", join(dir, "bin", a));
  }
  writeFileSync(join(dir, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\napp:x:1234:1234::/home/app:/bin/sh\n");
  writeFileSync(join(dir, "etc/group"), "root:x:0:\nnogroup:x:65534:\napp:x:1234:\n");
  return dir;
}

/** A busybox rootfs as an uncompressed tar (via the system tar, owner root). */
export function busyboxLayer(): Buffer {
  const dir = mkdtempSync(join(tmpdir(), "berth-bb-"));
  try {
    busyboxRootfs(dir);
    return execFileSync("tar", ["-C", dir, "--numeric-owner", "--owner=0", "--group=0", "-cf", "-", "."], { maxBuffer: 64 << 20 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** What an image store holds in tmp/ and locks/ (should be nothing between operations). */
export function storeDebris(root: string): string[] {
  const out: string[] = [];
  for (const sub of ["tmp", "tmp/ingest", "tmp/layers", "locks", "locks/leases"]) {
    let names: string[];
    try { names = readdirSync(join(root, sub)); } catch { continue; }
    for (const n of names) {
      if (sub === "tmp" && (n === "ingest" || n === "layers")) continue;
      if (sub === "locks" && n === "leases") continue;
      out.push(`${sub}/${n}`);
    }
  }
  return out;
}

export function listDir(path: string): string[] {
  try { return readdirSync(path).sort(); } catch { return []; }
}
