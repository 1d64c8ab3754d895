// The built-in image "host": a small root filesystem made of the host's own everyday commands and the
// shared libraries they load, so containers can run without pulling anything. Libraries are found by
// reading each ELF file's dynamic section (never by running ldd), files are real copies (a container
// must never be able to write to the host's binaries), and the symlinked directories of a usrmerged
// host (/bin -> usr/bin ...) are recreated so paths inside the image match the host's.

import { constants as fsConstants, existsSync, statSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { BerthError, errnoName } from "../errors.js";
import { isElf, multiarchTriplet, readElfDependencies, type ElfDependencies } from "./elf.js";

/** Commands copied into the image when the host has them. */
export const HOST_IMAGE_COMMANDS: readonly string[] = [
  "sh", "bash", "ls", "cat", "echo", "env", "id", "hostname", "ps", "sleep", "true", "false", "test", "[",
  "grep", "sed", "awk", "head", "tail", "wc", "mkdir", "rmdir", "rm", "cp", "mv", "touch", "ln", "chmod",
  "chown", "chgrp", "stat", "mount", "umount", "tty", "stty", "dd", "yes", "seq", "sort", "uname", "whoami",
  "groups", "printf", "kill", "nproc", "df", "du", "find", "xargs", "date", "readlink", "realpath", "uniq",
  "cut", "tr", "tee", "tac", "basename", "dirname", "pwd", "mktemp", "timeout", "expr", "od", "base64",
  "md5sum", "sha256sum", "cmp", "diff", "getent", "mknod", "mkfifo", "sync", "free", "pgrep", "pkill", "top",
  "tar", "gzip", "which", "nslookup", "ip", "ss", "ping", "wget",
];

export const HOST_BIN_DIRS: readonly string[] = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"];

/** Top-level directories that a usrmerged host has as symlinks into /usr. */
const MERGED_TOP_DIRS = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/** Bump when the image's layout or generated files change, so existing images are rebuilt. */
const STAMP_VERSION = 1;

export const HOST_IMAGE_USER = { name: "berth", uid: 1000, gid: 1000 } as const;

/**
 * Host paths of the commands the image includes: for each name the first regular file found in
 * HOST_BIN_DIRS (following symlinks). Missing commands are left out.
 */
export function hostImageFiles(
  binDirs: readonly string[] = HOST_BIN_DIRS,
  isFile: (file: string) => boolean = isRegularFile,
): string[] {
  const found: string[] = [];
  for (const command of HOST_IMAGE_COMMANDS) {
    const hit = binDirs.map((dir) => path.join(dir, command)).find(isFile);
    if (hit !== undefined) found.push(hit);
  }
  return found;
}

function isRegularFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * Where the dynamic loader looks for a library needed by `objectPath`, without /etc/ld.so.cache:
 * DT_RPATH (only if the object has no DT_RUNPATH; the executable's DT_RPATH is inherited the same way),
 * DT_RUNPATH, then the default directories with the multiarch one derived from the ELF machine.
 */
export function librarySearchDirs(
  deps: ElfDependencies,
  objectPath: string,
  executableRpath: readonly string[] = [],
): string[] {
  const origin = path.dirname(objectPath);
  const expand = (dir: string) => dir.replace(/\$ORIGIN|\$\{ORIGIN\}/g, origin);
  const dirs: string[] = [];
  if (deps.runpath.length === 0) dirs.push(...deps.rpath.map(expand), ...executableRpath);
  dirs.push(...deps.runpath.map(expand));
  const triplet = multiarchTriplet(deps.machine, deps.is64);
  if (triplet !== undefined) dirs.push(`/lib/${triplet}`, `/usr/lib/${triplet}`);
  dirs.push(...(deps.is64 ? ["/lib64", "/usr/lib64"] : ["/lib32", "/usr/lib32"]), "/lib", "/usr/lib");
  return [...new Set(dirs)];
}

/** What was read from one host file while collecting the image's contents. */
interface SourceFile {
  hostPath: string;
  mode: number;
  mtimeMs: number;
  size: number;
}

export interface StampEntry {
  path: string;
  mtimeMs: number;
  size: number;
}

interface Stamp {
  version: number;
  commands: string[];
  files: StampEntry[];
}

/** Builds the host image into destDir (created if missing; should be empty). */
export async function buildHostImage(destDir: string): Promise<void> {
  await buildHostImageRecordingSources(destDir);
}

async function buildHostImageRecordingSources(destDir: string): Promise<Stamp> {
  const commands = hostImageFiles();
  const sources = await collectSources(commands);
  await ensureImageDir(destDir, "/", 0o755);

  for (const name of MERGED_TOP_DIRS) {
    const hostPath = `/${name}`;
    const stat = await lstatOrUndefined(hostPath);
    if (stat?.isSymbolicLink()) await copySymlink(destDir, hostPath);
  }

  const copiedTo = new Set<string>();
  for (const source of sources) {
    const imagePath = await imagePathFor(destDir, source.hostPath);
    if (copiedTo.has(imagePath)) continue;
    copiedTo.add(imagePath);
    await copyFileReal(source, imagePath);
  }

  await writeEtcAndMountPoints(destDir);

  const resolvConf = await statOrUndefined("/etc/resolv.conf");
  const files: StampEntry[] = sources.map(({ hostPath, mtimeMs, size }) => ({ path: hostPath, mtimeMs, size }));
  if (resolvConf?.isFile()) files.push({ path: "/etc/resolv.conf", mtimeMs: resolvConf.mtimeMs, size: resolvConf.size });
  return { version: STAMP_VERSION, commands, files };
}

/** The commands plus, transitively, their interpreters (ELF and #!) and shared libraries. */
async function collectSources(commands: readonly string[]): Promise<SourceFile[]> {
  const sources = new Map<string, SourceFile>();
  const queue: { hostPath: string; executableRpath: readonly string[]; wantedBy?: string }[] = commands.map((hostPath) => ({
    hostPath,
    executableRpath: [],
  }));

  while (queue.length > 0) {
    const { hostPath, executableRpath, wantedBy } = queue.shift()!;
    if (sources.has(hostPath)) continue;
    let content: Buffer;
    let stat: Awaited<ReturnType<typeof fs.stat>>;
    try {
      stat = await fs.stat(hostPath);
      content = await fs.readFile(hostPath);
    } catch (err) {
      const by = wantedBy === undefined ? "" : ` (needed by ${wantedBy})`;
      throw new BerthError(`building the host image: cannot read ${hostPath}${by}: ${errnoName(err) ?? String(err)}`, {
        cause: err,
      });
    }
    sources.set(hostPath, { hostPath, mode: stat.mode & 0o7777, mtimeMs: stat.mtimeMs, size: stat.size });

    const shebangInterpreter = scriptInterpreter(content);
    if (shebangInterpreter !== undefined) {
      if (isRegularFile(shebangInterpreter)) queue.push({ hostPath: shebangInterpreter, executableRpath: [], wantedBy: hostPath });
      continue;
    }
    if (!isElf(content)) continue;

    const deps = readElfDependencies(content);
    // An executable's DT_RPATH also applies to the libraries it loads (unless they have DT_RUNPATH).
    const inheritedRpath = deps.interpreter !== undefined && deps.runpath.length === 0 ? deps.rpath : executableRpath;
    if (deps.interpreter !== undefined) queue.push({ hostPath: deps.interpreter, executableRpath: [], wantedBy: hostPath });
    for (const soname of deps.needed) {
      const library = await findLibrary(soname, deps, hostPath, executableRpath);
      if (library === undefined) {
        throw new BerthError(
          `building the host image: library ${soname} needed by ${hostPath} was found in none of ${librarySearchDirs(deps, hostPath, executableRpath).join(", ")}`,
        );
      }
      queue.push({ hostPath: library, executableRpath: inheritedRpath, wantedBy: hostPath });
    }
  }
  return [...sources.values()];
}

/** The interpreter of a "#!" script, e.g. /bin/sh; undefined for anything else. */
function scriptInterpreter(content: Buffer): string | undefined {
  if (content.length < 3 || content[0] !== 0x23 || content[1] !== 0x21) return undefined;
  const firstLine = content.subarray(2, Math.min(content.length, 256)).toString("utf8").split("\n")[0]!;
  const interpreter = firstLine.trim().split(/\s+/)[0];
  return interpreter !== undefined && interpreter.startsWith("/") ? interpreter : undefined;
}

async function findLibrary(
  soname: string,
  deps: ElfDependencies,
  objectPath: string,
  executableRpath: readonly string[],
): Promise<string | undefined> {
  if (soname.includes("/")) return soname; // a path, not a soname: the loader uses it as is
  for (const dir of librarySearchDirs(deps, objectPath, executableRpath)) {
    const candidate = path.join(dir, soname);
    if (!isRegularFile(candidate)) continue;
    // Like ld.so, skip a library of another class or machine (e.g. a 32-bit one in /usr/lib).
    if (await matchesElfKind(candidate, deps)) return candidate;
  }
  return undefined;
}

async function matchesElfKind(file: string, deps: ElfDependencies): Promise<boolean> {
  const handle = await fs.open(file, "r");
  try {
    const header = Buffer.alloc(20);
    const { bytesRead } = await handle.read(header, 0, 20, 0);
    if (bytesRead < 20 || !isElf(header)) return false;
    return header[4] === (deps.is64 ? 2 : 1) && header.readUInt16LE(18) === deps.machine;
  } finally {
    await handle.close();
  }
}

/**
 * Where a host file goes in the image: the same path with its directory resolved, after recreating in
 * the image every symlinked directory on the way (e.g. /lib -> usr/lib), so the file sits under a real
 * directory and the original path still leads to it inside the container.
 */
async function imagePathFor(destDir: string, hostPath: string): Promise<string> {
  let current = "/";
  for (const component of path.dirname(hostPath).split("/").filter((part) => part !== "")) {
    const candidate = path.join(current, component);
    const stat = await fs.lstat(candidate);
    if (stat.isSymbolicLink()) {
      await copySymlink(destDir, candidate);
      current = await fs.realpath(candidate);
    } else {
      current = candidate;
    }
  }
  await ensureImageDir(destDir, current, 0o755);
  return path.join(destDir, current, path.basename(hostPath));
}

/**
 * Recreates the host symlink at `hostPath` (whose parent is a real directory) in the image. Absolute
 * targets become relative so that, seen from the host, the link can only point inside the image.
 */
async function copySymlink(destDir: string, hostPath: string): Promise<void> {
  const parent = path.dirname(hostPath);
  await ensureImageDir(destDir, parent, 0o755);
  const hostTarget = await fs.readlink(hostPath);
  const target = path.isAbsolute(hostTarget) ? path.relative(parent, hostTarget) || "." : hostTarget;
  const linkPath = path.join(destDir, hostPath);
  try {
    await fs.symlink(target, linkPath);
  } catch (err) {
    if (errnoName(err) !== "EEXIST") throw err;
    const existing = await fs.readlink(linkPath).catch(() => undefined);
    if (existing !== target) {
      throw new BerthError(`building the host image: ${linkPath} exists and is not a symlink to ${target}; use an empty directory`);
    }
  }
}

/** mkdir -p inside the image with an explicit mode (not subject to the umask) for each new directory. */
async function ensureImageDir(destDir: string, imageDir: string, mode: number): Promise<void> {
  let current = destDir;
  const parts = imageDir.split("/").filter((part) => part !== "");
  for (const part of ["", ...parts]) {
    current = part === "" ? current : path.join(current, part);
    try {
      await fs.mkdir(current);
      await fs.chmod(current, mode);
    } catch (err) {
      if (errnoName(err) !== "EEXIST") throw err;
      const stat = await fs.lstat(current);
      if (!stat.isDirectory()) {
        throw new BerthError(`building the host image: ${current} exists and is not a directory; use an empty directory`);
      }
    }
  }
}

/** A copy with its own inode (never a hard link), with the host file's permission bits. */
async function copyFileReal(source: SourceFile, imagePath: string): Promise<void> {
  await fs.copyFile(source.hostPath, imagePath, fsConstants.COPYFILE_EXCL);
  await fs.chmod(imagePath, source.mode);
}

async function writeImageFile(destDir: string, imagePath: string, content: string | Buffer, mode = 0o644): Promise<void> {
  const target = path.join(destDir, imagePath);
  await fs.writeFile(target, content, { flag: "wx", mode });
  await fs.chmod(target, mode);
}

async function writeEtcAndMountPoints(destDir: string): Promise<void> {
  const mountPoints: [string, number][] = [
    ["/proc", 0o555],
    ["/sys", 0o555],
    ["/dev", 0o755],
    ["/tmp", 0o1777],
    ["/root", 0o700],
    ["/home", 0o755],
    ["/home/berth", 0o755],
    ["/etc", 0o755],
    ["/run", 0o755],
    ["/var", 0o755],
    ["/var/tmp", 0o1777],
  ];
  for (const [dir, mode] of mountPoints) await ensureImageDir(destDir, dir, mode);
  const { name, uid, gid } = HOST_IMAGE_USER;
  await fs.chown(path.join(destDir, "home", name), uid, gid);

  await writeImageFile(
    destDir,
    "/etc/passwd",
    [
      "root:x:0:0:root:/root:/bin/sh",
      "nobody:x:65534:65534:nobody:/nonexistent:/bin/false",
      `${name}:x:${uid}:${gid}:Berth test user:/home/${name}:/bin/sh`,
      "",
    ].join("\n"),
  );
  await writeImageFile(
    destDir,
    "/etc/group",
    ["root:x:0:", "tty:x:5:", `staff:x:50:${name}`, "nogroup:x:65534:", `${name}:x:${gid}:${name}`, ""].join("\n"),
  );
  await writeImageFile(destDir, "/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
  await writeImageFile(destDir, "/etc/hostname", "berth\n");
  // glibc reads only local files for users and groups; hosts may also use DNS (built into libc >= 2.34).
  await writeImageFile(destDir, "/etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n");
  const resolvConf = await fs.readFile("/etc/resolv.conf").catch(() => undefined);
  if (resolvConf !== undefined) await writeImageFile(destDir, "/etc/resolv.conf", resolvConf);
}

async function lstatOrUndefined(file: string) {
  return fs.lstat(file).catch(() => undefined);
}

async function statOrUndefined(file: string) {
  return fs.stat(file).catch(() => undefined);
}

// ---- the image in the data root ----

/** <dataRoot>/images/host: holds rootfs/ and stamp.json, replaced as one directory. */
function hostImageDir(dataRoot: string): string {
  return path.join(dataRoot, "images", "host");
}

/**
 * Whether a stamp still describes the host: same builder version, same set of commands found, and
 * every source file with the same mtime and size. Pure, given the current command list and a stat.
 */
export function isStampCurrent(
  stamp: unknown,
  currentCommands: readonly string[],
  statFile: (file: string) => { mtimeMs: number; size: number } | undefined,
): boolean {
  if (typeof stamp !== "object" || stamp === null) return false;
  const { version, commands, files } = stamp as Partial<Stamp>;
  if (version !== STAMP_VERSION || !Array.isArray(commands) || !Array.isArray(files)) return false;
  if (commands.length !== currentCommands.length || commands.some((command, i) => command !== currentCommands[i])) {
    return false;
  }
  return files.every((entry) => {
    const stat = statFile(entry.path);
    return stat !== undefined && stat.mtimeMs === entry.mtimeMs && stat.size === entry.size;
  });
}

function hostImageIsCurrent(imageDir: string, stampText: string | undefined): boolean {
  if (stampText === undefined || !existsSync(path.join(imageDir, "rootfs"))) return false;
  let stamp: unknown;
  try {
    stamp = JSON.parse(stampText);
  } catch {
    return false;
  }
  return isStampCurrent(stamp, hostImageFiles(), (file) => {
    try {
      const { mtimeMs, size } = statSync(file);
      return { mtimeMs, size };
    } catch {
      return undefined;
    }
  });
}

async function readStamp(imageDir: string): Promise<string | undefined> {
  return fs.readFile(path.join(imageDir, "stamp.json"), "utf8").catch(() => undefined);
}

const TEMP_PREFIX = ".host-tmp-";

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoName(err) === "EPERM";
  }
}

/** Removes temp dirs left by builders that died (their pid is in the name). */
async function removeAbandonedTempDirs(imagesDir: string): Promise<void> {
  const names = await fs.readdir(imagesDir).catch(() => [] as string[]);
  for (const name of names) {
    const match = new RegExp(`^${TEMP_PREFIX.replace(/\./g, "\\.")}(\\d+)-`).exec(name);
    if (match && Number(match[1]) !== process.pid && !processIsAlive(Number(match[1]))) {
      await fs.rm(path.join(imagesDir, name), { recursive: true, force: true });
    }
  }
}

/**
 * The host image's rootfs (<dataRoot>/images/host/rootfs), built if missing or if the host's files
 * changed since it was built. Safe with concurrent callers, also in other processes: each builds in its
 * own temp dir beside the image and renames it into place; a loser of the rename discards its build.
 */
export async function ensureHostImage(dataRoot: string): Promise<string> {
  const imagesDir = path.join(dataRoot, "images");
  const imageDir = hostImageDir(dataRoot);
  const rootfs = path.join(imageDir, "rootfs");
  if (hostImageIsCurrent(imageDir, await readStamp(imageDir))) return rootfs;

  await fs.mkdir(imagesDir, { recursive: true });
  await removeAbandonedTempDirs(imagesDir);
  const tempDir = await fs.mkdtemp(path.join(imagesDir, `${TEMP_PREFIX}${process.pid}-`));
  try {
    const stamp = await buildHostImageRecordingSources(path.join(tempDir, "rootfs"));
    await fs.writeFile(path.join(tempDir, "stamp.json"), JSON.stringify(stamp, null, 1) + "\n");
    // Traversable but not listable: the image holds copies of setuid programs.
    await fs.chmod(tempDir, 0o711);

    // Someone else may have finished first while we built: keep theirs, it is just as fresh.
    if (hostImageIsCurrent(imageDir, await readStamp(imageDir))) return rootfs;
    const staleDir = existsSync(imageDir) ? await fs.mkdtemp(path.join(imagesDir, `${TEMP_PREFIX}${process.pid}-old-`)) : undefined;
    if (staleDir !== undefined) {
      // Move the stale image aside (into our temp-named dir, so a crash leaves nothing behind for long).
      await fs.rename(imageDir, path.join(staleDir, "host")).catch((err) => {
        if (errnoName(err) !== "ENOENT") throw err; // another builder moved it already
      });
    }
    try {
      await fs.rename(tempDir, imageDir);
    } catch (err) {
      if (errnoName(err) !== "ENOTEMPTY" && errnoName(err) !== "EEXIST") throw err;
      // Lost the race: another builder's image is in place.
    } finally {
      if (staleDir !== undefined) await fs.rm(staleDir, { recursive: true, force: true });
    }
    return rootfs;
  } finally {
    await fs.rm(tempDir, { recursive: true, force: true });
  }
}
