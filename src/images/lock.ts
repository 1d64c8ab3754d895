// Cross-process locks for the image store. Node has no flock, so a lock is a file created with O_EXCL
// that holds "PID STARTTIME" of its owner. A lock whose owner is gone (or whose pid now belongs to
// another process) is stale and taken over; the takeover itself is guarded by a second O_EXCL file so
// two waiters cannot both remove the stale lock and one of them then remove the other's fresh lock.

import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from "node:fs";
import { BerthError, errnoName } from "../errors.js";

const GUARD_STALE_MS = 10_000;

function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

const ourStart = startTime(process.pid) ?? "";

/** Whether the owner recorded in a lock file's text still runs. Unreadable or empty text: unknown (true). */
export function ownerAlive(text: string): boolean {
  const [pidText, start] = text.trim().split(" ");
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const now = startTime(pid);
  if (now === undefined) return false;
  return start === undefined || start === "" || now === start;
}

function tryCreate(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o644);
  } catch (err) {
    if (errnoName(err) === "EEXIST") return false;
    throw new BerthError(`cannot create lock file ${path}: ${(err as Error).message}`);
  }
  try {
    writeSync(fd, `${process.pid} ${ourStart}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Removes `path` if its owner is dead, under the takeover guard. Returns true if it is gone now. */
function takeOverIfStale(path: string): boolean {
  const text = readText(path);
  if (text === undefined) return true;
  // An empty file: the owner is between create and write; give it a moment.
  if (text === "") {
    try {
      if (Date.now() - statSync(path).mtimeMs < GUARD_STALE_MS) return false;
    } catch {
      return true;
    }
  } else if (ownerAlive(text)) {
    return false;
  }
  const guard = `${path}.takeover`;
  if (!tryCreate(guard)) {
    // A guard left by a process that died inside the few statements below.
    try {
      if (Date.now() - statSync(guard).mtimeMs > GUARD_STALE_MS) unlinkSync(guard);
    } catch { /* gone */ }
    return false;
  }
  try {
    if (readText(path) === text) {
      try { unlinkSync(path); } catch { /* gone */ }
    }
  } finally {
    try { unlinkSync(guard); } catch { /* gone */ }
  }
  return true;
}

export interface Lock {
  readonly path: string;
  release(): void;
}

function lockObject(path: string): Lock {
  let held = true;
  return {
    path,
    release() {
      if (!held) return;
      held = false;
      // Only remove it if it is still ours.
      const text = readText(path);
      if (text !== undefined && text.startsWith(`${process.pid} `)) {
        try { unlinkSync(path); } catch { /* gone */ }
      }
    },
  };
}

/** Takes the lock now if it is free (or stale); undefined if another live process holds it. */
export function tryLock(path: string): Lock | undefined {
  for (let i = 0; i < 3; i++) {
    if (tryCreate(path)) return lockObject(path);
    if (!takeOverIfStale(path)) return undefined;
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Waiters in this process, per path: a lock held by our own pid is never stale to us.
const localQueues = new Map<string, Promise<void>>();

/**
 * Waits for the lock and takes it. `onWait` is called once if it was busy. `timeoutMs` (default: no
 * limit) bounds the wait, with an error naming the lock and its owner.
 */
export async function lock(path: string, options: { timeoutMs?: number; onWait?: () => void } = {}): Promise<Lock> {
  // Serialise waiters of this process first, so the file lock is contended only across processes.
  const previous = localQueues.get(path) ?? Promise.resolve();
  let releaseLocal!: () => void;
  const mine = new Promise<void>((r) => { releaseLocal = r; });
  const chained = previous.then(() => mine);
  localQueues.set(path, chained);
  let waited = false;
  const deadline = options.timeoutMs !== undefined ? Date.now() + options.timeoutMs : Infinity;
  const giveUpLocal = () => {
    releaseLocal();
    if (localQueues.get(path) === chained) localQueues.delete(path);
  };
  try {
    if (!(await Promise.race([previous.then(() => true), sleep(0).then(() => false)]))) {
      waited = true;
      options.onWait?.();
      await previous;
    }
    for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
      const l = tryLock(path);
      if (l) {
        return {
          path,
          release() {
            l.release();
            giveUpLocal();
          },
        };
      }
      if (!waited) {
        waited = true;
        options.onWait?.();
      }
      if (Date.now() > deadline) {
        const owner = readText(path)?.trim().split(" ")[0] ?? "?";
        throw new BerthError(`timed out waiting for lock ${path} (held by pid ${owner}): if that process is hung, stop it`);
      }
      await sleep(delay);
    }
  } catch (err) {
    giveUpLocal();
    throw err;
  }
}

/** Runs `fn` holding the lock. */
export async function withLock<T>(path: string, fn: () => Promise<T> | T, options: { timeoutMs?: number; onWait?: () => void } = {}): Promise<T> {
  const l = await lock(path, options);
  try {
    return await fn();
  } finally {
    l.release();
  }
}
