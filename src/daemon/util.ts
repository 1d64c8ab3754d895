// Small pieces the engine shares: atomic JSON files, a per-key async mutex, docker-style errors with
// HTTP status codes, names, durations.

import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, statSync, symlinkSync, unlink, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { BerthError } from "../errors.js";

/** An error with the HTTP status docker answers it with (404 no such container, 409 conflict, ...). */
export class EngineError extends BerthError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message, { exitCode: status === 404 || status === 409 || status === 400 ? 1 : 125 });
    this.status = status;
  }
}

export const notFound = (message: string) => new EngineError(404, message);
export const conflict = (message: string) => new EngineError(409, message);
export const badRequest = (message: string) => new EngineError(400, message);
export const notModified = (message: string) => new EngineError(304, message);

/**
 * Writes JSON so a reader (or a daemon killed at any point) sees the old file or the new one, never
 * half of one: temp file + rename. `durable` also fsyncs (for power loss), at a few ms per write.
 */
export function writeJsonAtomic(path: string, value: unknown, durable = false): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, JSON.stringify(value));
    if (durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  if (!durable) return;
  try {
    const dfd = openSync(dirname(path), "r");
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch { /* best effort */ }
}

/**
 * writeJsonAtomic for a file rewritten many times (the engine's container records), without ext4's
 * flush on a rename over an existing file (auto_da_alloc writes the new file's data out then: ~0.5-2 ms
 * a save, against ~0.1 ms here). `path` is a symlink to the latest complete version, `<name>.<hex>`
 * beside it: the version is written in full under its fresh name, then a new symlink is renamed over
 * `path` (replacing a symlink flushes nothing), then the previous version is unlinked. Readers (any
 * process) open `path` and see the old version or the new one, never half of one, and `path` never
 * goes missing; a process killed between the steps leaves at most an unused version or a temp link,
 * which sweepJsonLinked() removes. A regular file at `path` (written by writeJsonAtomic) is replaced.
 * Like writeJsonAtomic without `durable`: nothing is fsynced, no promise for power loss.
 */
export function writeJsonLinked(path: string, value: unknown): void {
  const text = JSON.stringify(value);
  let suffix: string;
  let fd: number;
  for (;;) {
    versionSeq = (versionSeq + 1) % 2 ** 48;
    suffix = versionSeq.toString(16).padStart(12, "0");
    try {
      fd = openSync(join(dirname(path), `${basename(path)}.${suffix}`), "wx", 0o600);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  let previous: string | undefined;
  try { previous = readlinkSync(path); } catch { /* none yet, or a regular file */ }
  const tmp = `${path}.${suffix}.tmp`;
  symlinkSync(`${basename(path)}.${suffix}`, tmp);
  renameSync(tmp, path);
  // Off the caller's path (freeing a just-written file's blocks can wait on the journal, ~1 ms under load):
  // a version left by a crash before this is swept.
  if (previous && isLinkedVersion(path, previous)) unlink(join(dirname(path), previous), () => {});
}

// Versions' names: a per-process sequence from a random start (an existing name is skipped).
let versionSeq = randomBytes(6).readUIntBE(0, 6);

/**
 * `<name>.<12 hex>` or `<name>.<12 hex>.tmp` next to `path` (writeJsonLinked's versions and temp links),
 * or `<name>.<pid>.<8 hex>.tmp` (writeJsonAtomic's temp files).
 */
function isLinkedVersion(path: string, name: string): boolean {
  const base = basename(path);
  return name.startsWith(`${base}.`) && /^(?:[0-9a-f]{12}(?:\.tmp)?|\d+\.[0-9a-f]{8}\.tmp)$/.test(name.slice(base.length + 1));
}

/** Removes what a cut-short writeJsonLinked (or writeJsonAtomic) left beside `path`: versions `path` does not point to, temp files. */
export function sweepJsonLinked(path: string): void {
  let current: string | undefined;
  try { current = readlinkSync(path); } catch { /* a regular file or none */ }
  let names: string[];
  try { names = readdirSync(dirname(path)); } catch { return; }
  for (const name of names) {
    if (name !== current && isLinkedVersion(path, name)) {
      try { unlinkSync(join(dirname(path), name)); } catch { /* gone */ }
    }
  }
}

/**
 * Reads what writeJsonLinked wrote. When `path` is unreadable (after a power cut its newest version may
 * have no data yet: nothing is fsynced), the newest readable version beside it is used and `path` is
 * pointed at it again, so one lost write costs the last update, not the record.
 */
export function readJsonLinked<T>(path: string): T | undefined {
  const value = readJson<T>(path);
  if (value !== undefined) return value;
  const dir = dirname(path);
  let names: string[];
  try { names = readdirSync(dir); } catch { return undefined; }
  const versions = names
    .filter((n) => isLinkedVersion(path, n) && !n.endsWith(".tmp"))
    .map((n) => { try { return { n, t: statSync(join(dir, n)).mtimeMs }; } catch { return { n, t: 0 }; } })
    .sort((a, b) => b.t - a.t);
  for (const { n } of versions) {
    const v = readJson<T>(join(dir, n));
    if (v === undefined) continue;
    const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`; // swept like writeJsonLinked's if left
    try { symlinkSync(n, tmp); renameSync(tmp, path); } catch { /* read-only: still usable */ }
    return v;
  }
  return undefined;
}

export function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}

/** Serialises async work per key: operations on one container run one after another. */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => { if (this.#tails.get(key) === tail) this.#tails.delete(key); });
    return next;
  }
}

export function newId(): string {
  return randomBytes(32).toString("hex");
}

/** docker's container name rule: [a-zA-Z0-9][a-zA-Z0-9_.-]+ */
export const NAME_PATTERN = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

const ADJECTIVES = ["brave", "calm", "eager", "fond", "gentle", "happy", "jolly", "keen", "lucid", "merry", "nifty", "proud", "quirky", "sharp", "tender", "vivid", "witty", "zealous"];
const NOUNS = ["anchor", "buoy", "cargo", "dock", "ferry", "harbor", "jetty", "keel", "mast", "pier", "quay", "rudder", "sail", "tug", "wharf", "yawl"];

export function randomName(taken: (n: string) => boolean): string {
  for (let i = 0; ; i++) {
    const a = ADJECTIVES[randomBytes(1)[0] % ADJECTIVES.length];
    const n = NOUNS[randomBytes(1)[0] % NOUNS.length];
    const name = i < 10 ? `${a}_${n}` : `${a}_${n}${i}`;
    if (!taken(name)) return name;
  }
}

/** docker's "Up 5 minutes" / "About an hour" wording. */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 1) return "Less than a second";
  if (s === 1) return "1 second";
  if (s < 60) return `${s} seconds`;
  const m = Math.floor(s / 60);
  if (m === 1) return "About a minute";
  if (m < 60) return `${m} minutes`;
  const h = Math.round(ms / 3_600_000);
  if (h === 1) return "About an hour";
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.floor(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24 / 30)} months`;
  return `${Math.floor(h / 24 / 365)} years`;
}

/** Go's zero time, which docker prints for times that never happened. */
export const ZERO_TIME = "0001-01-01T00:00:00Z";

/** RFC 3339 with nanoseconds, as docker writes log lines and state times. */
export function nanoTime(date = new Date(), extraNanos = 0): string {
  const iso = date.toISOString(); // 2024-01-01T00:00:00.123Z
  const ms = iso.slice(20, 23);
  const nanos = `${ms}${String(extraNanos % 1_000_000).padStart(6, "0")}`;
  return `${iso.slice(0, 19)}.${nanos}Z`;
}

/** Parses docker's time arguments: unix seconds (with fraction), RFC 3339, or a duration ago ("10m"). */
export function parseTimeArg(value: string, now = Date.now()): number {
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const dur = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value);
  if (dur) {
    const n = Number(dur[1]);
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[dur[2] as "ms" | "s" | "m" | "h"];
    return now - n * unit;
  }
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw badRequest(`invalid time value "${value}": use unix seconds, RFC 3339 or a duration like 10m`);
  return t;
}

/** A Go duration ("1h30m", "500ms", "1.5s") in ms; undefined when it is not one. */
export function goDurationMs(text: string): number | undefined {
  if (!/^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const [, n, u] of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(n) * unit[u];
  return total;
}

/** Nanosecond-precision time from an RFC 3339 string, as a bigint (for comparisons finer than ms). */
export function parseNanoTime(value: string): bigint {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(value);
  if (!m) return BigInt(Date.parse(value) || 0) * 1_000_000n;
  const base = Date.parse(`${m[1]}${m[3]}`);
  const frac = (m[2] ?? "").padEnd(9, "0").slice(0, 9);
  return BigInt(base) * 1_000_000n + BigInt(frac);
}

export const signalNumbers: Record<string, number> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9, SIGUSR1: 10,
  SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15, SIGSTKFLT: 16, SIGCHLD: 17, SIGCONT: 18, SIGSTOP: 19,
  SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22, SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28,
  SIGIO: 29, SIGPWR: 30, SIGSYS: 31,
};

export function parseSignalArg(value: string | undefined, fallback = "SIGKILL"): number {
  const s = (value === undefined || value === "" ? fallback : value).toUpperCase();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n >= 1 && n <= 64) return n;
  } else {
    const n = signalNumbers[s.startsWith("SIG") ? s : `SIG${s}`];
    if (n !== undefined) return n;
  }
  throw badRequest(`invalid signal: ${value}`);
}
