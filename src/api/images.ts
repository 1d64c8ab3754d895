// /images/* endpoints, delegating to the image store (src/images/store.ts) and distribution.

import type { ServerResponse } from "node:http";
import { BerthError } from "../errors.js";
import { HOST_IMAGE_ID } from "../daemon/images.js";
import { parseChanges } from "../daemon/commit-changes.js";
import { type FilterableImage, filterImage, parseFilters, validateImageFilters } from "../daemon/filters.js";
import { badRequest, conflict, notFound } from "../daemon/util.js";
import { importRootfs, loadImages, saveImages } from "../images/archives.js";
import { parseReference, withTag } from "../images/reference.js";
import type { ImageRecord } from "../images/store-api.js";
import { pullImage } from "../distribution/pull.js";
import { pushImage } from "../distribution/push.js";
import type { Ctx } from "./server.js";
import { boolParam, normaliseStrSlices } from "./validate.js";

function send(ctx: Ctx, status: number, body: unknown) {
  const res = ctx.res as ServerResponse;
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

function wrap(err: unknown): never {
  const msg = (err as Error).message;
  if (/no such image|not found|does not exist/i.test(msg)) throw notFound(msg);
  if (/conflict|in use|being used/i.test(msg)) throw conflict(msg);
  throw err;
}

function summary(i: ImageRecord, containers: number) {
  return {
    Id: i.id, ParentId: "", RepoTags: i.repoTags, RepoDigests: i.repoDigests, Created: Math.floor(Date.parse(i.created) / 1000) || 0,
    Size: i.size, SharedSize: -1, VirtualSize: i.size, Labels: {}, Containers: containers,
  };
}

/** Streams JSON progress lines (docker's jsonmessage) for pull/push/load. */
function progressOut(res: ServerResponse) {
  return {
    isTTY: false,
    write: (text: string) => {
      for (const line of text.split("\n")) if (line.trim()) res.write(`${JSON.stringify({ status: line.trim() })}\n`);
      return true;
    },
  };
}

export async function handleImages(ctx: Ctx, method: string): Promise<boolean> {
  const p = ctx.path;
  const e = ctx.engine;
  if (!p.startsWith("/images") && p !== "/commit") return false;
  const store = e.images.store;
  const users = (id: string) => e.list().filter((c) => c.Image === id).length;
  const res = ctx.res as ServerResponse;
  let m: RegExpExecArray | null;

  if (method === "GET" && p === "/images/json") {
    const filters = parseFilters(ctx.query.get("filters"));
    validateImageFilters(filters);
    const hostInUse = e.list().some((c) => c.Image === HOST_IMAGE_ID);
    const records = store.listImages();
    const labels = new Map<string, Record<string, string>>();
    for (const i of records) labels.set(i.id, (await store.imageConfig(i.id).catch(() => undefined))?.config?.Labels ?? {});
    const images: FilterableImage[] = records.map((i) => ({ id: i.id, repoTags: i.repoTags, repoDigests: i.repoDigests, labels: labels.get(i.id) ?? {}, created: Date.parse(i.created) || 0 }));
    if (hostInUse) images.push({ id: HOST_IMAGE_ID, repoTags: ["host:latest"], repoDigests: [], labels: {}, created: 0 });
    // before/since name an image as any other request does: one that does not exist is a 404.
    const find = (ref: string) => {
      const hit = e.images.isHost(ref) ? images.find((i) => i.id === HOST_IMAGE_ID) : images.find((i) => i.id === store.resolveImageId(ref));
      if (!hit) throw notFound(`No such image: ${ref}`);
      return hit;
    };
    const out = [];
    for (const [n, img] of images.entries()) {
      const tags = filterImage(img, filters, find);
      if (!tags) continue;
      const rec = records[n] as ImageRecord | undefined;
      out.push(rec
        ? { ...summary(rec, users(rec.id)), RepoTags: tags, Labels: img.labels }
        : { Id: HOST_IMAGE_ID, ParentId: "", RepoTags: tags, RepoDigests: [], Created: 0, Size: 0, SharedSize: -1, VirtualSize: 0, Labels: {}, Containers: users(HOST_IMAGE_ID) });
    }
    send(ctx, 200, out);
    return true;
  }
  if (method === "POST" && p === "/images/create") {
    const from = ctx.query.get("fromImage");
    const src = ctx.query.get("fromSrc");
    // docker import -c: checked before the stream starts, so a bad one is a 400 as dockerd's.
    const changes = src ? parseChanges(ctx.query.getAll("changes")) : [];
    res.writeHead(200, { "Content-Type": "application/json" });
    try {
      if (src === "-") {
        // docker import sends the whole reference in repo (tag empty); the API allows both.
        const repo = ctx.query.get("repo");
        const tag = ctx.query.get("tag");
        const rec = await importRootfs(store, ctx.req, { reference: repo ? (tag ? `${repo}:${tag}` : repo) : undefined, source: "-", message: ctx.query.get("message") || undefined, changes });
        res.end(`${JSON.stringify({ status: rec.id })}\n`);
        return true;
      }
      if (!from) throw badRequest("fromImage or fromSrc is required");
      const tag = ctx.query.get("tag");
      let ref = from;
      if (tag) ref = tag.startsWith("sha256:") ? `${from}@${tag}` : `${from}:${tag}`;
      if (e.images.isHost(ref)) {
        res.end(`${JSON.stringify({ status: "host: the built-in image" })}\n`);
        return true;
      }
      // pullImage writes the Digest and Status lines itself (up to date or newer): not a second pair here.
      await pullImage(store, ref, { out: progressOut(res), tty: false, platform: ctx.query.get("platform") || undefined });
      res.end();
    } catch (err) {
      res.end(`${JSON.stringify({ errorDetail: { message: (err as Error).message }, error: (err as Error).message })}\n`);
    }
    return true;
  }
  if (method === "POST" && p === "/images/load") {
    res.writeHead(200, { "Content-Type": "application/json" });
    try {
      const r = await loadImages(store, { stream: ctx.req });
      for (const l of r.loaded) {
        res.write(`${JSON.stringify({ stream: l.reference ? `Loaded image: ${l.reference}\n` : `Loaded image ID: ${l.id}\n` })}\n`);
        e.events.publish("image", "load", l.id, l.reference ? { name: l.reference } : {});
      }
      res.end();
    } catch (err) {
      res.end(`${JSON.stringify({ errorDetail: { message: (err as Error).message }, error: (err as Error).message })}\n`);
    }
    return true;
  }
  if (method === "GET" && p === "/images/get") {
    const names = ctx.query.getAll("names");
    res.writeHead(200, { "Content-Type": "application/x-tar" });
    await saveImages(store, names, res);
    return true;
  }
  if (method === "POST" && p === "/images/prune") {
    const f = JSON.parse(ctx.query.get("filters") || "{}") as Record<string, unknown>;
    const dangling = f.dangling ? JSON.stringify(f.dangling).includes("false") : false;
    const r = await store.pruneImages(dangling);
    send(ctx, 200, { ImagesDeleted: [...r.untagged.map((u) => ({ Untagged: u })), ...r.deleted.map((d) => ({ Deleted: d }))], SpaceReclaimed: r.reclaimed });
    return true;
  }
  if ((m = /^\/images\/(.+)\/json$/.exec(p)) && method === "GET") {
    const name = decodeURIComponent(m[1]);
    const rec = store.findImage(name);
    if (!rec) {
      if (e.images.isHost(name)) {
        send(ctx, 200, { Id: HOST_IMAGE_ID, RepoTags: ["host:latest"], RepoDigests: [], Parent: "", Comment: "the built-in host image", Created: new Date(0).toISOString(), Config: { Cmd: ["sh"], Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] }, Architecture: "amd64", Os: "linux", Size: 0, VirtualSize: 0, RootFS: { Type: "layers", Layers: [] }, Metadata: { LastTagTime: "0001-01-01T00:00:00Z" } });
        return true;
      }
      throw notFound(`No such image: ${name}`);
    }
    const cfg = await store.imageConfig(rec.id);
    send(ctx, 200, {
      Id: rec.id, RepoTags: rec.repoTags, RepoDigests: rec.repoDigests, Parent: "", Comment: "", Created: rec.created,
      DockerVersion: "", Author: cfg.author ?? "", Config: cfg.config ?? {}, Architecture: cfg.architecture, Variant: cfg.variant, Os: cfg.os,
      Size: rec.size, VirtualSize: rec.size, GraphDriver: { Name: "overlay2", Data: { LowerDir: store.lowerDirs(rec.id).join(":") } },
      RootFS: { Type: "layers", Layers: rec.diffIds }, Metadata: { LastTagTime: "0001-01-01T00:00:00Z" },
    });
    return true;
  }
  if ((m = /^\/images\/(.+)\/history$/.exec(p)) && method === "GET") {
    const name = decodeURIComponent(m[1]);
    const rec = store.findImage(name);
    if (!rec) throw notFound(`No such image: ${name}`);
    const cfg = await store.imageConfig(rec.id);
    const hist = [...(cfg.history ?? [])].reverse().map((h, i) => ({
      Id: i === 0 ? rec.id : "<missing>", Created: Math.floor(Date.parse(h.created ?? "") / 1000) || 0, CreatedBy: h.created_by ?? "", Tags: i === 0 ? rec.repoTags : null, Size: 0, Comment: h.comment ?? "",
    }));
    send(ctx, 200, hist);
    return true;
  }
  if ((m = /^\/images\/(.+)\/tag$/.exec(p)) && method === "POST") {
    const name = decodeURIComponent(m[1]);
    const rec = store.findImage(name);
    if (!rec) throw notFound(`No such image: ${name}`);
    const repo = ctx.query.get("repo");
    if (!repo) throw badRequest("repo is required");
    let ref;
    try { ref = withTag(parseReference(repo), ctx.query.get("tag") || "latest"); } catch (err) { throw badRequest((err as Error).message); }
    await store.setReferences([ref.full], rec.id);
    e.events.publish("image", "tag", rec.id, { name: ref.familiar });
    res.writeHead(201);
    res.end();
    return true;
  }
  if ((m = /^\/images\/(.+)\/push$/.exec(p)) && method === "POST") {
    const name = decodeURIComponent(m[1]);
    const tag = ctx.query.get("tag");
    res.writeHead(200, { "Content-Type": "application/json" });
    try {
      await pushImage(store, tag ? `${name}:${tag}` : name, { out: progressOut(res), tty: false });
      res.end();
    } catch (err) {
      res.end(`${JSON.stringify({ errorDetail: { message: (err as Error).message }, error: (err as Error).message })}\n`);
    }
    return true;
  }
  if ((m = /^\/images\/(.+)\/get$/.exec(p)) && method === "GET") {
    res.writeHead(200, { "Content-Type": "application/x-tar" });
    await saveImages(store, [decodeURIComponent(m[1])], res);
    return true;
  }
  if ((m = /^\/images\/(.+)$/.exec(p)) && method === "DELETE") {
    const name = decodeURIComponent(m[1]);
    const id = store.resolveImageId(name);
    if (id && !boolParam(ctx.query.get("force"))) {
      const user = e.list().find((c) => c.Image === id);
      if (user) throw conflict(`conflict: unable to delete ${name} (must be forced) - image is being used by stopped container ${user.Id.slice(0, 12)}`);
    }
    try {
      const r = await store.removeImage(name, { force: boolParam(ctx.query.get("force")) });
      // As dockerd: an untag per reference removed, then a delete when the image itself went.
      for (const u of r.untagged) e.events.publish("image", "untag", id ?? r.deleted[0] ?? u, { name: u });
      for (const d of r.deleted) e.events.publish("image", "delete", d, { name });
      send(ctx, 200, [...r.untagged.map((u) => ({ Untagged: u })), ...r.deleted.map((d) => ({ Deleted: d }))]);
    } catch (err) {
      if (err instanceof BerthError) wrap(err);
      throw err;
    }
    return true;
  }
  if (p === "/commit" && method === "POST") {
    const chunks: Buffer[] = [];
    for await (const c of ctx.req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    let overrides: Record<string, unknown> = {};
    if (text.trim()) {
      try { overrides = JSON.parse(text) as Record<string, unknown>; } catch (err) { throw badRequest(`invalid JSON in the request body: ${(err as Error).message}`); }
    }
    const q = ctx.query;
    const container = q.get("container");
    if (!container) throw badRequest("container is required");
    normaliseStrSlices(overrides);
    const changes = parseChanges(q.getAll("changes"));
    const id = await e.commit(container, {
      changes,
      repo: q.get("repo") || undefined, tag: q.get("tag") || undefined, comment: q.get("comment") || undefined, author: q.get("author") || undefined,
      pause: q.get("pause") === null ? true : boolParam(q.get("pause")), overrides: Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0) && v !== "")),
    });
    send(ctx, 201, { Id: id });
    return true;
  }
  return false;
}
