// What a daemon needs to work with a container's monitor (native/monitor.c), also after the daemon
// itself was restarted: the exit file, the attach socket, the json-file log (with its rotated files),
// and whether the monitor still lives. The formats are documented at MonitorOp in src/core/plan.ts.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { basename, dirname, join } from "node:path";
import { Readable } from "node:stream";
import { AttachFrame } from "../core/plan.js";
import { processStartTime } from "./launch.js";

// ---- exit file and liveness ----------------------------------------------------------------------

export interface MonitorExit {
  /** docker's exit code: the status, or 128+signal when a signal killed the init. */
  exitCode: number;
  /** The signal that killed the init, 0 if it exited. */
  signal: number;
  /** Always false from the monitor: the daemon decides from the cgroup's memory events. */
  oomKilled: boolean;
  /** RFC 3339 with nanoseconds. */
  finishedAt: string;
}

/** The exit file the monitor writes (atomically) when the container has ended; undefined while it runs. */
export function readExitFile(path: string): MonitorExit | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const v = JSON.parse(text) as Partial<MonitorExit>;
  return { exitCode: Number(v.exitCode), signal: Number(v.signal ?? 0), oomKilled: Boolean(v.oomKilled), finishedAt: String(v.finishedAt ?? "") };
}

/** The monitor's name in /proc/<pid>/stat (it sets it itself). */
export const MONITOR_COMM = "berth-monitor";

/**
 * Whether `pid` is a living monitor: not a zombie, named berth-monitor, and (when given) started at
 * `startTime` (field 22 of /proc/<pid>/stat, as recorded by processStartTime), so a reused pid is not
 * mistaken for it.
 */
export function monitorAlive(pid: number, startTime?: string): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
  const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  if (comm !== MONITOR_COMM || state === "Z" || state === "X") return false;
  return startTime === undefined || processStartTime(pid) === startTime;
}

// ---- attach ----------------------------------------------------------------------------------------

export interface AttachChunk {
  stream: "stdout" | "stderr";
  data: Buffer;
}

export interface MonitorAttach {
  /** Live output from the moment of connecting (object mode, AttachChunk); ends when the container has ended. */
  readonly output: Readable;
  /** Bytes for the container's stdin (dropped by the monitor unless the container was started with stdin). */
  write(data: Buffer | string): void;
  /** Closes the container's stdin (EOF for its reader); other clients can't write any more either. */
  closeStdin(): void;
  resize(rows: number, cols: number): void;
  /** Leaves; the container is not affected. */
  close(): void;
}

function frame(type: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head[0] = type;
  head.writeUInt32BE(payload.length, 4);
  return Buffer.concat([head, payload]);
}

/** Connects to a monitor's attach socket. */
export function attach(socketPath: string): Promise<MonitorAttach> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(socketPath);
    const output = new Readable({ objectMode: true, read() {} });
    let pending: Buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= 8) {
        const len = pending.readUInt32BE(4);
        if (pending.length < 8 + len) break;
        const stream = pending[0] === AttachFrame.Stderr ? "stderr" : "stdout";
        output.push({ stream, data: Buffer.from(pending.subarray(8, 8 + len)) } satisfies AttachChunk);
        pending = pending.subarray(8 + len);
      }
    });
    let connected = false;
    let ended = false;
    // The output ends after what was read: an error once connected (EPIPE from a late stdin write to
    // a monitor that is exiting) must not discard chunks the reader has not taken yet.
    socket.on("close", () => { if (!ended) { ended = true; output.push(null); } });
    socket.on("error", (err) => {
      if (connected) return; // "close" follows and ends the output
      // Nobody holds the output yet: destroyed with the error, it would be an unhandled 'error' event
      // (it crashed a daemon that retried a monitor socket not there yet).
      ended = true;
      reject(err);
      output.destroy();
    });
    socket.once("connect", () => {
      connected = true;
      const send = (buf: Buffer) => {
        if (!socket.destroyed && socket.writable) socket.write(buf);
      };
      resolve({
        output,
        write: (data) => send(frame(AttachFrame.Stdin, Buffer.from(data))),
        closeStdin: () => send(frame(AttachFrame.CloseStdin, Buffer.alloc(0))),
        resize: (rows, cols) => {
          const size = Buffer.alloc(4);
          size.writeUInt16BE(rows, 0);
          size.writeUInt16BE(cols, 2);
          send(frame(AttachFrame.Resize, size));
        },
        close: () => socket.end(),
      });
    });
  });
}

// ---- json-file logs --------------------------------------------------------------------------------

export interface LogEntry {
  stream: "stdout" | "stderr";
  /** The output as written, newline included (a split long line has none). */
  log: string;
  /** RFC 3339 with nanoseconds. */
  time: string;
  /** `time` as nanoseconds since the epoch (for comparisons). */
  timeNs: bigint;
  /** What `docker logs` prints for it: `log`, prefixed with `time` and a space with `timestamps`. */
  text: string;
}

export type LogTime = Date | string | number;

export interface ReadLogOptions {
  /** Keep reading new entries (across rotation) until `signal` aborts, `stopWhen` holds or `until` has passed. */
  follow?: boolean;
  /** Entries at or after this time: a Date, RFC 3339, or unix seconds (number or "1700000000.5"). */
  since?: LogTime;
  /** Entries at or before this time. */
  until?: LogTime;
  /** Only the last N entries (of those in range) already in the log; follow continues after them. */
  tail?: number;
  timestamps?: boolean;
  signal?: AbortSignal;
  /** Checked while following at the end of the log: true = read what is left, then stop (e.g. the monitor has exited). */
  stopWhen?: () => boolean;
  /** How often a follower looks for new output (default 100 ms). */
  pollMs?: number;
}

/** Nanoseconds since the epoch of an RFC 3339 time (any number of fraction digits). */
export function parseLogTime(time: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/i.exec(time);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? "").padEnd(9, "0"));
}

function toNs(t: LogTime, what: string): bigint {
  if (t instanceof Date) return BigInt(t.getTime()) * 1_000_000n;
  if (typeof t === "number") return BigInt(Math.round(t * 1e9));
  if (/^\d+(\.\d{1,9})?$/.test(t)) {
    const [sec, frac = ""] = t.split(".");
    return BigInt(sec) * 1_000_000_000n + BigInt(frac.padEnd(9, "0"));
  }
  const ns = parseLogTime(t);
  if (ns === undefined) throw new Error(`invalid ${what} time "${t}": use RFC 3339 or unix seconds`);
  return ns;
}

/** One json-file line, or undefined for a line that isn't one (e.g. cut short by a crash). */
export function parseLogLine(line: string, timestamps = false): LogEntry | undefined {
  let v: { log?: unknown; stream?: unknown; time?: unknown };
  try {
    v = JSON.parse(line) as typeof v;
  } catch {
    return undefined;
  }
  if (typeof v.log !== "string" || typeof v.time !== "string") return undefined;
  const timeNs = parseLogTime(v.time);
  if (timeNs === undefined) return undefined;
  const stream = v.stream === "stderr" ? "stderr" : "stdout";
  return { stream, log: v.log, time: v.time, timeNs, text: timestamps ? `${v.time} ${v.log}` : v.log };
}

/** The rotated files of `path` (path.1, path.2, ...), oldest first. */
function rotatedFiles(path: string): string[] {
  const base = basename(path);
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return [];
  }
  return names
    .map((n) => (n.startsWith(base + ".") && /^\d+$/.test(n.slice(base.length + 1)) ? Number(n.slice(base.length + 1)) : 0))
    .filter((k) => k > 0)
    .sort((a, b) => b - a)
    .map((k) => `${path}.${k}`);
}

/** Complete lines of `fh` from `offset` on; `next` is where the first unread (partial) line starts. */
async function readLinesFrom(fh: FileHandle, offset: number): Promise<{ lines: string[]; next: number }> {
  const lines: string[] = [];
  const chunk = Buffer.alloc(64 * 1024);
  let carry = Buffer.alloc(0);
  let pos = offset;
  let next = offset;
  for (;;) {
    const { bytesRead } = await fh.read(chunk, 0, chunk.length, pos);
    if (bytesRead === 0) break;
    pos += bytesRead;
    let data = carry.length ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
    let nl;
    while ((nl = data.indexOf(10)) >= 0) {
      lines.push(data.subarray(0, nl).toString("utf8"));
      next += nl + 1;
      data = data.subarray(nl + 1);
    }
    carry = Buffer.from(data);
  }
  return { lines, next };
}

const inode = (path: string): number | undefined => {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
};

/**
 * The entries of a json-file log, oldest first, across its rotated files (path.N ... path.1, path);
 * with `follow`, then new entries as they are written, following the log across rotation.
 *
 * Rotation renames files while we read, so files are told apart by inode, not by name: the reader
 * always moves on to the file that comes right after the last one it finished (the rotated files in
 * order of age, then the live one), opening it and checking its inode before reading it.
 */
export async function* readLog(path: string, options: ReadLogOptions = {}): AsyncGenerator<LogEntry> {
  const since = options.since !== undefined ? toNs(options.since, "since") : undefined;
  const until = options.until !== undefined ? toNs(options.until, "until") : undefined;
  const ts = options.timestamps ?? false;
  const inRange = (e: LogEntry) => (since === undefined || e.timeNs >= since) && (until === undefined || e.timeNs <= until);
  const parse = (lines: string[]) => lines.map((l) => parseLogLine(l, ts)).filter((e): e is LogEntry => e !== undefined && inRange(e));

  let live: FileHandle | undefined; // the live file, read up to `offset`
  let offset = 0;
  let lastIno: number | undefined; // the file read last (the live one, or a rotated one finished)

  /** Reads the rotated files after `lastIno` whole and opens the live file after them. */
  async function* advance(): AsyncGenerator<LogEntry> {
    for (let attempt = 0; attempt < 10_000; attempt++) {
      const chain = [...rotatedFiles(path), path].map((f) => ({ f, ino: inode(f) })).filter((x) => x.ino !== undefined);
      const at = lastIno === undefined ? -1 : chain.findIndex((x) => x.ino === lastIno);
      // Not found: never read anything, or ours was rotated out of existence: start at the oldest.
      const next = chain[at + 1];
      if (!next) return; // nothing newer (yet): e.g. the live file is being replaced
      let fh: FileHandle;
      try {
        fh = await open(next.f, "r");
      } catch {
        continue; // renamed or removed meanwhile: look again
      }
      const ino = (await fh.stat()).ino;
      if (ino !== next.ino) {
        await fh.close();
        continue;
      }
      if (next.f === path) {
        live = fh;
        lastIno = ino;
        offset = 0;
        return;
      }
      try {
        for (const e of parse((await readLinesFrom(fh, 0)).lines)) yield e;
      } finally {
        await fh.close();
      }
      lastIno = ino;
    }
  }

  try {
    const initial: LogEntry[] = [];
    for await (const e of advance()) initial.push(e);
    if (live) {
      const r = await readLinesFrom(live, 0);
      for (const e of parse(r.lines)) initial.push(e); // a loop: a spread of 100k+ entries overflows the stack
      offset = r.next;
    }
    const tail = options.tail;
    yield* tail !== undefined && tail >= 0 ? initial.slice(Math.max(0, initial.length - tail)) : initial;
    if (!options.follow) return;

    const pollMs = options.pollMs ?? 100;
    const untilMs = until !== undefined ? Number(until / 1_000_000n) : undefined;
    for (;;) {
      const stopping = options.signal?.aborted || options.stopWhen?.() || (untilMs !== undefined && Date.now() > untilMs);
      if (live) {
        const r = await readLinesFrom(live, offset);
        offset = r.next;
        for (const e of parse(r.lines)) yield e;
        if ((await live.stat()).size < offset) offset = 0; // truncated in place (max-file 1)
      }
      const nowIno = inode(path);
      if (nowIno !== undefined && nowIno !== lastIno) {
        // Rotated. The monitor writes to the new file only after the rename: finish the old one.
        if (live) {
          for (const e of parse((await readLinesFrom(live, offset)).lines)) yield e;
          await live.close();
          live = undefined;
        }
        yield* advance();
        continue;
      }
      if (stopping) return;
      await new Promise<void>((res) => {
        const onAbort = () => { clearTimeout(t); res(); };
        const t = setTimeout(() => { options.signal?.removeEventListener("abort", onAbort); res(); }, pollMs);
        options.signal?.addEventListener("abort", onAbort, { once: true });
      });
    }
  } finally {
    await live?.close();
  }
}

/** The files that make up a log (for removal): path and its rotated files. */
export function logFiles(path: string): string[] {
  return [...rotatedFiles(path), path];
}

/** Used by tests and the daemon to name a container's monitor files in one directory. */
export function monitorPaths(dir: string): { logPath: string; exitFile: string; attachSocket: string } {
  return { logPath: join(dir, "container.log"), exitFile: join(dir, "exit.json"), attachSocket: join(dir, "attach.sock") };
}
