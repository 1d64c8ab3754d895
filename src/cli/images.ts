// The image commands of `berth` (docker's names and flags): images, tag, rmi, image inspect/ls/rm/
// prune/history/save/load/import/tag, history, save, load, import, system df. Thin: parse, call the
// store, print in docker's formats.

import { createReadStream, existsSync } from "node:fs";
import type { Readable } from "node:stream";
import { type Command, Option } from "commander";
import { parseChanges } from "../daemon/commit-changes.js";
import { parsePlatform } from "../distribution/manifest.js";
import { BerthError } from "../errors.js";
import { importRootfs, loadImages, saveImages, saveImagesToFile, saveOciArchive } from "../images/archives.js";
import { globMatch, humanSize, since, table } from "../images/format.js";
import { formatRows } from "./format.js";
import type { ImageConfig } from "../images/manifest.js";
import { parseReference } from "../images/reference.js";
import { applyImageConfig, type RunOverrides, type RunSettings } from "../images/run-config.js";
import { familiarOf, ImageStore, shortId } from "../images/store.js";
import { DEFAULT_DATA_ROOT } from "./client.js";
import type { ImageRecord } from "../images/store-api.js";

interface RootFlags { dataRoot: string }

const dataRootOption = () => new Option("--data-root <dir>", "where images are kept").env("BERTH_DATA_ROOT").default(DEFAULT_DATA_ROOT);
const collect = (value: string, previous: string[] = []) => [...previous, value];
const out = (s: string) => process.stdout.write(s);

function openStore(flags: RootFlags): ImageStore {
  return new ImageStore(flags.dataRoot);
}

// ---- berth run IMAGE ----------------------------------------------------------------------------------

/**
 * The image `berth run` names: from the store, else pulled (when the registry client is there). The pull
 * policy is run's --pull, as the daemon path takes it: missing (default), always (pull first even when
 * the image is here), never (the store's image or docker's "No such image").
 */
export async function resolveRunImage(name: string, dataRoot: string, overrides: RunOverrides, pullPolicy = "missing"): Promise<RunSettings & { id: string; lowerDirs: string[] }> {
  if (!["missing", "always", "never"].includes(pullPolicy)) {
    throw new BerthError(`invalid pull option: '${pullPolicy}': must be one of "always", "missing" or "never"`);
  }
  const store = new ImageStore(dataRoot);
  let record = pullPolicy === "always" ? undefined : store.findImage(name);
  if (!record) {
    if (pullPolicy === "never") throw new BerthError(`No such image: ${name}`);
    let ref;
    try {
      ref = parseReference(name);
    } catch (err) {
      throw new BerthError(`image "${name}" not found: ${(err as BerthError).message}`);
    }
    if (pullPolicy === "missing") process.stderr.write(`Unable to find image '${ref.familiar}' locally\n`);
    let pull: ((s: ImageStore, r: string, o: { out?: NodeJS.WritableStream }) => Promise<ImageRecord>) | undefined;
    try {
      const mod = (await import("../distribution/pull.js" as string)) as { pullImage?: typeof pull };
      pull = mod.pullImage;
    } catch {
      pull = undefined;
    }
    if (!pull) throw new BerthError(`image "${ref.familiar}" not found in ${dataRoot}: load it (berth load -i FILE) or import it`);
    try {
      record = await pull(store, ref.full, { out: process.stderr });
    } catch (err) {
      if (pullPolicy === "always") throw err;
      throw new BerthError(`image "${ref.familiar}" not found locally, and pulling it failed: ${(err as Error).message}`, { cause: err });
    }
  }
  const config = await store.imageConfig(record.id);
  const settings = applyImageConfig(name, config.config, overrides);
  return { ...settings, id: record.id, lowerDirs: store.lowerDirs(record.id) };
}

// ---- images ---------------------------------------------------------------------------------------------

interface ImagesFlags extends RootFlags {
  all?: boolean;
  digests?: boolean;
  filter: string[];
  format?: string;
  quiet?: boolean;
  noTrunc?: boolean;
}

interface ImageRow {
  Repository: string;
  Tag: string;
  Digest: string;
  ID: string;
  CreatedSince: string;
  CreatedAt: string;
  Size: string;
  image: ImageRecord;
}

function splitFamiliar(t: string): [string, string] {
  const at = t.indexOf("@");
  if (at >= 0) return [t.slice(0, at), t.slice(at + 1)];
  const colon = t.lastIndexOf(":");
  return colon > t.lastIndexOf("/") ? [t.slice(0, colon), t.slice(colon + 1)] : [t, "latest"];
}

async function imageLabels(store: ImageStore, id: string): Promise<Record<string, string>> {
  try {
    return (await store.imageConfig(id)).config?.Labels ?? {};
  } catch {
    return {};
  }
}

async function listRows(store: ImageStore, flags: ImagesFlags, repoArg?: string): Promise<ImageRow[]> {
  const filters = flags.filter.map((f) => {
    const eq = f.indexOf("=");
    if (eq < 0) throw new BerthError(`bad format of filter "${f}" (expected name=value)`);
    const key = f.slice(0, eq);
    if (!["reference", "dangling", "label"].includes(key)) throw new BerthError(`invalid filter "${key}": supported are reference, dangling and label`);
    return { key, value: f.slice(eq + 1) };
  });
  if (repoArg) filters.push({ key: "reference", value: repoArg });
  const rows: ImageRow[] = [];
  const images = store.listImages().sort((a, b) => Date.parse(b.created) - Date.parse(a.created));
  for (const image of images) {
    const dangling = image.repoTags.length === 0;
    let keep = true;
    for (const f of filters) {
      if (f.key === "dangling") {
        if (f.value !== "true" && f.value !== "false") throw new BerthError(`invalid filter 'dangling=${f.value}': use true or false`);
        keep &&= (f.value === "true") === dangling;
      } else if (f.key === "label") {
        const labels = await imageLabels(store, image.id);
        const eq = f.value.indexOf("=");
        keep &&= eq < 0 ? f.value in labels : labels[f.value.slice(0, eq)] === f.value.slice(eq + 1);
      }
    }
    if (!keep) continue;
    const refFilters = filters.filter((f) => f.key === "reference").map((f) => f.value);
    const digestOf = (repo: string) => image.repoDigests.find((d) => splitFamiliar(d)[0] === repo);
    const base = {
      ID: flags.noTrunc ? image.id : shortId(image.id),
      CreatedSince: since(image.created),
      CreatedAt: image.created,
      Size: humanSize(image.size),
      image,
    };
    const tagged = image.repoTags.map((t) => splitFamiliar(t));
    const matches = (repo: string, tag: string) =>
      refFilters.every((p) => globMatch(p, repo) || globMatch(p, `${repo}:${tag}`));
    if (tagged.length === 0) {
      if (refFilters.length) continue;
      if (image.repoDigests.length && flags.digests) {
        for (const d of image.repoDigests) {
          const [repo, digest] = splitFamiliar(d);
          rows.push({ ...base, Repository: repo, Tag: "<none>", Digest: digest });
        }
      } else {
        rows.push({ ...base, Repository: "<none>", Tag: "<none>", Digest: "<none>" });
      }
      continue;
    }
    for (const [repo, tag] of tagged) {
      if (!matches(repo, tag)) continue;
      const d = digestOf(repo);
      rows.push({ ...base, Repository: repo, Tag: tag, Digest: d ? splitFamiliar(d)[1] : "<none>" });
    }
  }
  return rows;
}

async function imagesCommand(repo: string | undefined, flags: ImagesFlags): Promise<void> {
  const store = openStore(flags);
  const rows = await listRows(store, flags, repo);
  if (flags.quiet) {
    const seen = new Set<string>();
    for (const r of rows) if (!seen.has(r.ID)) { seen.add(r.ID); out(r.ID + "\n"); }
    return;
  }
  if (flags.format) {
    const plain = rows.map(({ image: _i, ...r }) => r);
    out(formatRows(flags.format, plain, { Repository: "REPOSITORY", Tag: "TAG", Digest: "DIGEST", ID: "IMAGE ID", CreatedSince: "CREATED", CreatedAt: "CREATED AT", Size: "SIZE" }));
    return;
  }
  const head = flags.digests ? ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"] : ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
  out(table([head, ...rows.map((r) => (flags.digests ? [r.Repository, r.Tag, r.Digest, r.ID, r.CreatedSince, r.Size] : [r.Repository, r.Tag, r.ID, r.CreatedSince, r.Size]))]));
}

// ---- tag, rmi -------------------------------------------------------------------------------------------

async function tagCommand(source: string, target: string, flags: RootFlags): Promise<void> {
  const store = openStore(flags);
  const id = store.resolveImageId(source);
  if (!id) throw new BerthError(`No such image: ${source}`);
  const ref = parseReference(target);
  if (ref.digest) throw new BerthError(`refusing to create a tag with a digest reference "${target}": give NAME[:TAG]`);
  await store.setReferences([ref.full], id);
}

async function rmiCommand(images: string[], flags: RootFlags & { force?: boolean }): Promise<void> {
  const store = openStore(flags);
  let failed: Error | undefined;
  for (const name of images) {
    try {
      const r = await store.removeImage(name, { force: flags.force });
      for (const u of r.untagged) out(`Untagged: ${u}\n`);
      for (const d of r.deleted) out(`Deleted: ${d}\n`);
    } catch (err) {
      failed = err as Error;
      if (images.length > 1) process.stderr.write(`Error: ${(err as Error).message}\n`);
    }
  }
  if (failed) throw images.length > 1 ? new BerthError(`some images could not be removed`) : failed;
}

// ---- inspect, history -----------------------------------------------------------------------------------

function dockerConfig(c: ImageConfig["config"]): Record<string, unknown> {
  return {
    Hostname: "", Domainname: "", User: c?.User ?? "", AttachStdin: false, AttachStdout: false, AttachStderr: false,
    ExposedPorts: c?.ExposedPorts, Tty: false, OpenStdin: false, StdinOnce: false,
    Env: c?.Env ?? null, Cmd: c?.Cmd ?? null, Healthcheck: c?.Healthcheck, ArgsEscaped: c?.ArgsEscaped, Image: "",
    Volumes: c?.Volumes ?? null, WorkingDir: c?.WorkingDir ?? "", Entrypoint: c?.Entrypoint ?? null,
    OnBuild: c?.OnBuild ?? null, Labels: c?.Labels ?? null, StopSignal: c?.StopSignal, Shell: c?.Shell,
  };
}

export async function inspectImage(store: ImageStore, name: string): Promise<Record<string, unknown>> {
  const rec = store.findImage(name);
  if (!rec) throw new BerthError(`No such image: ${name}`);
  const config = await store.imageConfig(rec.id);
  const stored = store.storedImage(rec.id)!;
  const lowers = store.lowerDirs(rec.id);
  return {
    Id: rec.id,
    RepoTags: rec.repoTags,
    RepoDigests: rec.repoDigests,
    Parent: "",
    Comment: config.history?.[config.history.length - 1]?.comment ?? "",
    Created: rec.created,
    Container: "",
    DockerVersion: (config.docker_version as string | undefined) ?? "",
    Author: config.author ?? "",
    Config: dockerConfig(config.config),
    Architecture: config.architecture,
    ...(config.variant ? { Variant: config.variant } : {}),
    Os: config.os,
    Size: rec.size,
    VirtualSize: rec.size,
    GraphDriver: { Name: "overlay", Data: { LowerDir: lowers.join(":") } },
    RootFS: { Type: "layers", Layers: rec.diffIds },
    Metadata: { LastTagTime: stored.stored },
    Descriptor: { mediaType: stored.manifestMediaType, digest: rec.manifestDigest },
  };
}

async function inspectCommand(names: string[], flags: RootFlags & { format?: string }): Promise<void> {
  const store = openStore(flags);
  const docs: Record<string, unknown>[] = [];
  let missing: string | undefined;
  for (const n of names) {
    try {
      docs.push(await inspectImage(store, n));
    } catch (err) {
      missing ??= (err as Error).message;
    }
  }
  if (flags.format) out(formatRows(flags.format, docs, {}));
  else out(JSON.stringify(docs, null, 4) + "\n");
  if (missing) throw new BerthError(missing.startsWith("No such image") ? `Error: ${missing}` : missing);
}

async function historyCommand(name: string, flags: RootFlags & { noTrunc?: boolean; quiet?: boolean; human: boolean; format?: string }): Promise<void> {
  const store = openStore(flags);
  const rec = store.findImage(name);
  if (!rec) throw new BerthError(`No such image: ${name}`);
  const config = await store.imageConfig(rec.id);
  const history = config.history?.length ? config.history : rec.diffIds.map(() => ({ created: rec.created, created_by: "", comment: "" }));
  let layer = 0;
  const rows = history.map((h) => {
    const empty = "empty_layer" in h && h.empty_layer;
    const size = empty ? 0 : (store.layerInfo(rec.diffIds[layer++])?.size ?? 0);
    return { created: h.created ?? rec.created, by: h.created_by ?? "", comment: h.comment ?? "", size };
  }).reverse();
  const data = rows.map((r, i) => ({
    ID: i === 0 ? (flags.noTrunc ? rec.id : shortId(rec.id)) : "<missing>",
    CreatedSince: flags.human ? since(r.created) : r.created,
    CreatedAt: r.created,
    CreatedBy: flags.noTrunc || r.by.length <= 45 ? r.by : r.by.slice(0, 44) + "…",
    Size: flags.human ? humanSize(r.size) : String(r.size),
    Comment: r.comment,
  }));
  if (flags.quiet) {
    out(data.map((d) => d.ID + "\n").join(""));
    return;
  }
  if (flags.format) {
    out(formatRows(flags.format, data, { ID: "IMAGE", CreatedSince: "CREATED", CreatedBy: "CREATED BY", Size: "SIZE", Comment: "COMMENT" }));
    return;
  }
  out(table([["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], ...data.map((d) => [d.ID, d.CreatedSince, d.CreatedBy, d.Size, d.Comment || " "])]));
}

// ---- save, load, import -----------------------------------------------------------------------------------

async function saveCommand(names: string[], flags: RootFlags & { output?: string; format?: string }): Promise<void> {
  const format = flags.format ?? "docker";
  if (format !== "docker" && format !== "oci") throw new BerthError(`invalid --format "${format}": use docker (docker save's archive) or oci (an oci-archive)`);
  const store = openStore(flags);
  if (flags.output) return saveImagesToFile(store, names, flags.output, format);
  if (process.stdout.isTTY) throw new BerthError("cowardly refusing to save to a terminal: use -o FILE or redirect stdout");
  await (format === "oci" ? saveOciArchive : saveImages)(store, names, process.stdout);
}

async function loadCommand(flags: RootFlags & { input?: string; quiet?: boolean }): Promise<void> {
  const store = openStore(flags);
  if (!flags.input && process.stdin.isTTY) throw new BerthError("requested load from stdin, but stdin is empty: use -i FILE or pipe an archive");
  const r = await loadImages(store, flags.input ? { path: flags.input } : { stream: process.stdin }, flags.input ?? "stdin");
  for (const l of r.loaded) out(l.reference ? `Loaded image: ${l.reference}\n` : `Loaded image ID: ${l.id}\n`);
}

async function importCommand(file: string, reference: string | undefined, flags: RootFlags & { message?: string; platform?: string; change: string[] }): Promise<void> {
  // Bad instructions are refused before anything is read or written.
  const changes = parseChanges(flags.change);
  const store = openStore(flags);
  let input: Readable;
  if (file === "-") input = process.stdin;
  else {
    if (!existsSync(file)) throw new BerthError(`open ${file}: no such file`);
    input = createReadStream(file);
  }
  // As pull's (and docker import's): os[/arch[/variant]], an OS alone on the host's architecture.
  const platform = flags.platform ? parsePlatform(flags.platform) : undefined;
  const rec = await importRootfs(store, input, { reference, source: file === "-" ? "-" : file, message: flags.message, platform, changes });
  out(`${rec.id}\n`);
}

// ---- prune, df ----------------------------------------------------------------------------------------------

async function pruneCommand(flags: RootFlags & { all?: boolean; force?: boolean }): Promise<void> {
  const store = openStore(flags);
  const r = await store.pruneImages(Boolean(flags.all));
  if (r.untagged.length || r.deleted.length) {
    out("Deleted Images:\n");
    for (const u of r.untagged) out(`untagged: ${u}\n`);
    for (const d of r.deleted) out(`deleted: ${d}\n`);
    out("\n");
  }
  out(`Total reclaimed space: ${humanSize(r.reclaimed)}\n`);
}

interface DfCounts { total: number; active: number; size: number; reclaimable: number }

/** Containers and volumes for `system df`, from the daemon's GET /system/df, counted as docker's CLI does. */
export function dfCounts(df: { Containers?: { State?: string; SizeRw?: number }[]; Volumes?: { UsageData?: { Size: number; RefCount: number } }[] }): { containers: DfCounts; volumes: DfCounts } {
  const containers: DfCounts = { total: 0, active: 0, size: 0, reclaimable: 0 };
  for (const c of df.Containers ?? []) {
    const rw = Math.max(c.SizeRw ?? 0, 0);
    const running = c.State === "running" || c.State === "paused" || c.State === "restarting";
    containers.total++;
    containers.size += rw;
    if (running) containers.active++;
    else containers.reclaimable += rw;
  }
  const volumes: DfCounts = { total: 0, active: 0, size: 0, reclaimable: 0 };
  for (const v of df.Volumes ?? []) {
    const size = Math.max(v.UsageData?.Size ?? 0, 0);
    volumes.total++;
    volumes.size += size;
    if ((v.UsageData?.RefCount ?? 0) > 0) volumes.active++;
    else volumes.reclaimable += size;
  }
  return { containers, volumes };
}

async function dfCommand(flags: RootFlags, cmd: Command): Promise<void> {
  const store = openStore(flags);
  const u = store.diskUsage();
  const pct = (a: number, b: number) => (b === 0 ? "" : ` (${Math.round((a / b) * 100)}%)`);
  // Containers and volumes are the daemon's (they used to be counted from a local directory: 0 always).
  const { autostartPlace, Client } = await import("./client.js");
  const host = (cmd.optsWithGlobals() as { host?: string }).host;
  // BERTH_NO_DAEMON=1 never starts a daemon (it would outlive the command): one already running for the
  // root answers (a host given means no autostart), else df refuses rather than print wrong counts.
  const noDaemon = process.env.BERTH_NO_DAEMON === "1" && !host && !process.env.BERTH_HOST;
  let df: Parameters<typeof dfCounts>[0];
  try {
    df = await new Client(noDaemon ? autostartPlace(flags.dataRoot).host : host, flags.dataRoot).json<Parameters<typeof dfCounts>[0]>("GET", "/system/df");
  } catch (err) {
    if (!noDaemon || !(err instanceof BerthError) || !err.message.startsWith("Cannot connect")) throw err;
    throw new BerthError(`system df counts containers and volumes through the daemon, and none runs for data root ${flags.dataRoot}: with BERTH_NO_DAEMON=1 berth does not start one (run \`berth daemon --data-root ${flags.dataRoot}\` or unset BERTH_NO_DAEMON)`);
  }
  const { containers: c, volumes: v } = dfCounts(df);
  const row = (type: string, n: DfCounts) => [type, String(n.total), String(n.active), humanSize(n.size, 4), `${humanSize(n.reclaimable, 4)}${pct(n.reclaimable, n.size)}`];
  out(table([
    ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
    ["Images", String(u.images), String(u.active), humanSize(u.size, 4), `${humanSize(u.reclaimable, 4)}${pct(u.reclaimable, u.size)}`],
    row("Containers", c),
    row("Local Volumes", v),
    ["Build Cache", "0", "0", "0B", "0B"],
  ]));
}

// ---- registration ---------------------------------------------------------------------------------------------

function addImages(cmd: Command): Command {
  return cmd
    .argument("[repository]", "REPOSITORY[:TAG] to list")
    .option("-a, --all", "show all images (there are no intermediate images: same as without)")
    .option("--digests", "show digests")
    .option("-f, --filter <filter>", "filter output (reference=PATTERN, dangling=true|false, label=KEY[=VALUE])", collect, [])
    .option("--format <template>", "format output with a Go-style template, e.g. '{{.Repository}}:{{.Tag}}'")
    .option("--no-trunc", "don't truncate output")
    .option("-q, --quiet", "only show image IDs")
    .addOption(dataRootOption())
    .action((repo: string | undefined, flags: ImagesFlags & { trunc?: boolean }) => imagesCommand(repo, { ...flags, noTrunc: flags.trunc === false }));
}

function addRmi(cmd: Command): Command {
  return cmd.argument("<image...>").option("-f, --force", "remove the image even if it has several references").addOption(dataRootOption()).action(rmiCommand);
}

function addTag(cmd: Command): Command {
  return cmd.argument("<source>", "SOURCE_IMAGE[:TAG]").argument("<target>", "TARGET_IMAGE[:TAG]").addOption(dataRootOption()).action(tagCommand);
}

function addHistory(cmd: Command): Command {
  return cmd
    .argument("<image>")
    .option("-H, --human", "sizes and dates in human-readable form", true)
    .option("--no-human", "raw sizes and dates")
    .option("--no-trunc", "don't truncate output")
    .option("-q, --quiet", "only show image IDs")
    .option("--format <template>", "format output with a Go-style template")
    .addOption(dataRootOption())
    .action((image: string, flags: RootFlags & { human: boolean; trunc?: boolean; quiet?: boolean; format?: string }) =>
      historyCommand(image, { ...flags, noTrunc: flags.trunc === false }));
}

function addSave(cmd: Command): Command {
  return cmd.argument("<image...>").option("-o, --output <file>", "write to a file instead of stdout")
    .option("--format <format>", "docker (docker save's archive, the default) or oci (an oci-archive)").addOption(dataRootOption()).action(saveCommand);
}

function addLoad(cmd: Command): Command {
  return cmd
    .option("-i, --input <file>", "read from a tar archive file (docker save, OCI archive) or an OCI layout directory, instead of stdin")
    .option("-q, --quiet", "suppress the load output")
    .addOption(dataRootOption())
    .action(loadCommand);
}

function addImport(cmd: Command): Command {
  return cmd
    .argument("<file>", "a root filesystem tarball, or - for stdin")
    .argument("[reference]", "REPOSITORY[:TAG]")
    .option("-c, --change <instruction>", "apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, ...); repeatable", collect, [])
    .option("-m, --message <text>", "commit message for the imported image")
    .option("--platform <os/arch>", "platform of the image (default: the host's)")
    .addOption(dataRootOption())
    .action(importCommand);
}

function addPrune(cmd: Command): Command {
  return cmd
    .option("-a, --all", "remove all images no container uses, not just dangling ones")
    .option("-f, --force", "do not prompt for confirmation (Berth never prompts)")
    .addOption(dataRootOption())
    .action(pruneCommand);
}

function addInspect(cmd: Command): Command {
  return cmd.argument("<image...>").option("-f, --format <template>", "format output with a Go-style template").addOption(dataRootOption()).action(inspectCommand);
}

/** Registers the image commands on `berth`. */
export function registerImageCommands(program: Command): void {
  addImages(program.command("images").description("List images"));
  addTag(program.command("tag").description("Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"));
  addRmi(program.command("rmi").description("Remove one or more images"));
  addHistory(program.command("history").description("Show the history of an image"));
  addSave(program.command("save").description("Save one or more images to a tar archive (docker-archive format)"));
  addLoad(program.command("load").description("Load images from a tar archive (docker save or OCI) or an OCI layout"));
  addImport(program.command("import").description("Import a root filesystem tarball as an image"));

  const image = program.command("image").description("Manage images");
  addImages(image.command("ls").alias("list").description("List images"));
  addInspect(image.command("inspect").description("Display detailed information on one or more images"));
  addRmi(image.command("rm").alias("remove").description("Remove one or more images"));
  addTag(image.command("tag").description("Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"));
  addHistory(image.command("history").description("Show the history of an image"));
  addSave(image.command("save").description("Save one or more images to a tar archive"));
  addLoad(image.command("load").description("Load images from a tar archive or an OCI layout"));
  addImport(image.command("import").description("Import a root filesystem tarball as an image"));
  addPrune(image.command("prune").description("Remove unused images, then unreferenced layers and blobs"));

  const system = program.commands.find((c) => c.name() === "system") ?? program.command("system").description("Manage Berth");
  system.command("df").description("Show disk usage").addOption(dataRootOption()).action(dfCommand);
}

export { familiarOf };
