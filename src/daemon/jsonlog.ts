// docker's json-file log driver: one JSON object per line ({"log","stream","time"}), rotation by
// max-size/max-file, and a reader with tail/since/until/follow that follows across rotation.

import { closeSync, existsSync, fstatSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { nanoTime, parseNanoTime } from "./util.js";

export interface LogEntry {
  log: string;
  stream: "stdout" | "stderr";
  time: string;
}

export interface LogOptions {
  maxSize?: number; // bytes; 0 or undefined: no rotation
  maxFile?: number; // files kept including the current one (docker's default 1)
}

/** Parses docker's --log-opt values for json-file. */
export function parseLogOpts(opts: Record<string, string> | undefined): LogOptions {
  const out: LogOptions = {};
  for (const [k, v] of Object.entries(opts ?? {})) {
    if (k === "max-size") {
      const m = /^(\d+(?:\.\d+)?)([kmg]?)b?$/i.exec(v);
      if (!m) throw new Error(`invalid log option max-size "${v}": use a size like 10m`);
      const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as "" | "k" | "m" | "g"];
      out.maxSize = Math.floor(Number(m[1]) * mult);
    } else if (k === "max-file") {
      if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`invalid log option max-file "${v}": use a number of at least 1`);
      out.maxFile = Number(v);
    } else if (k !== "compress" && k !== "labels" && k !== "env" && k !== "tag") {
      throw new Error(`unknown log opt '${k}' for json-file log driver`);
    }
  }
  if (out.maxFile !== undefined && out.maxFile > 1 && !out.maxSize) throw new Error("max-file cannot be set without max-size");
  return out;
}

/** Splits output into docker's log lines: each ends with "\n" except a final partial one. */
export function splitLines(pending: string, chunk: string): { lines: string[]; rest: string } {
  const text = pending + chunk;
  const lines: string[] = [];
  let start = 0;
  for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
    lines.push(text.slice(start, nl + 1));
    start = nl + 1;
  }
  return { lines, rest: text.slice(start) };
}

let lastNanoMs = 0;
let lastNanoSeq = 0;
/** Strictly increasing nano timestamps within this process (so since/until cut exactly). */
export function logTime(): string {
  const now = Date.now();
  if (now === lastNanoMs) lastNanoSeq++;
  else { lastNanoMs = now; lastNanoSeq = 0; }
  return nanoTime(new Date(now), lastNanoSeq * 1000);
}

export class JsonLogWriter {
  readonly path: string;
  readonly #opts: LogOptions;
  #fd: number;
  #size: number;
  readonly #pending: Record<"stdout" | "stderr", string> = { stdout: "", stderr: "" };

  constructor(path: string, opts: LogOptions = {}) {
    this.path = path;
    this.#opts = opts;
    this.#fd = openSync(path, "a", 0o640);
    this.#size = fstatSync(this.#fd).size;
  }

  write(stream: "stdout" | "stderr", chunk: Buffer | string): void {
    const { lines, rest } = splitLines(this.#pending[stream], chunk.toString());
    this.#pending[stream] = rest;
    for (const line of lines) this.#append({ log: line, stream, time: logTime() });
    if (rest.length > 16 * 1024) this.flush(stream);
  }

  flush(stream?: "stdout" | "stderr"): void {
    for (const s of stream ? [stream] : (["stdout", "stderr"] as const)) {
      if (this.#pending[s]) this.#append({ log: this.#pending[s], stream: s, time: logTime() });
      this.#pending[s] = "";
    }
  }

  #append(entry: LogEntry): void {
    const line = `${JSON.stringify(entry)}\n`;
    const bytes = Buffer.byteLength(line);
    if (this.#opts.maxSize && this.#size > 0 && this.#size + bytes > this.#opts.maxSize) this.#rotate();
    writeSync(this.#fd, line);
    this.#size += bytes;
  }

  #rotate(): void {
    closeSync(this.#fd);
    const keep = this.#opts.maxFile ?? 1;
    if (keep <= 1) {
      rmSync(this.path, { force: true });
    } else {
      rmSync(`${this.path}.${keep - 1}`, { force: true });
      for (let i = keep - 2; i >= 1; i--) if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      renameSync(this.path, `${this.path}.1`);
    }
    this.#fd = openSync(this.path, "a", 0o640);
    this.#size = 0;
  }

  close(): void {
    this.flush();
    try { closeSync(this.#fd); } catch { /* closed */ }
  }
}

export interface ReadOptions {
  stdout?: boolean;
  stderr?: boolean;
  /** Lines from the end (all when undefined or negative). */
  tail?: number;
  /** Unix ms; entries strictly after (docker: since is inclusive of the second, we compare ms). */
  since?: number;
  until?: number;
  follow?: boolean;
}

function parseLines(text: string): LogEntry[] {
  const out: LogEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as LogEntry);
    } catch { /* a torn last line */ }
  }
  return out;
}

function readAllFrom(fd: number, pos: number): { text: string; pos: number } {
  const size = fstatSync(fd).size;
  if (size <= pos) return { text: "", pos };
  const buf = Buffer.alloc(size - pos);
  const n = readSync(fd, buf, 0, buf.length, pos);
  const text = buf.subarray(0, n).toString();
  // keep a torn last line for the next read
  const lastNl = text.lastIndexOf("\n");
  return { text: text.slice(0, lastNl + 1), pos: pos + Buffer.byteLength(text.slice(0, lastNl + 1)) };
}

export function selectEntries(entries: LogEntry[], o: ReadOptions): LogEntry[] {
  const wantOut = o.stdout ?? true;
  const wantErr = o.stderr ?? true;
  let sel = entries.filter((e) => (e.stream === "stdout" ? wantOut : wantErr));
  if (o.since !== undefined) {
    const since = BigInt(Math.floor(o.since)) * 1_000_000n;
    sel = sel.filter((e) => parseNanoTime(e.time) >= since);
  }
  if (o.until !== undefined) {
    const until = BigInt(Math.floor(o.until)) * 1_000_000n;
    sel = sel.filter((e) => parseNanoTime(e.time) <= until);
  }
  if (o.tail !== undefined && o.tail >= 0) sel = o.tail === 0 ? [] : sel.slice(-o.tail);
  return sel;
}

/**
 * Reads the log (rotated files first), then with `follow` keeps reading new lines, across rotation,
 * until `done()` says the writer is finished and everything was read, or `signal` aborts.
 */
export async function readLog(path: string, o: ReadOptions, emit: (e: LogEntry) => void, done: () => boolean, signal?: AbortSignal): Promise<void> {
  const files: string[] = [];
  for (let i = 20; i >= 1; i--) if (existsSync(`${path}.${i}`)) files.push(`${path}.${i}`);
  let fd: number | undefined;
  let pos = 0;
  let ino = 0;
  const history: LogEntry[] = [];
  for (const f of files) {
    try {
      const h = openSync(f, "r");
      try { for (const e of parseLines(readAllFrom(h, 0).text)) history.push(e); } finally { closeSync(h); }
    } catch { /* rotated away meanwhile */ }
  }
  try {
    fd = openSync(path, "r");
    ino = fstatSync(fd).ino;
    const r = readAllFrom(fd, 0);
    pos = r.pos;
    for (const e of parseLines(r.text)) history.push(e); // a loop: a spread of 100k+ entries overflows the stack
  } catch { /* no log yet */ }
  for (const e of selectEntries(history, o)) emit(e);
  if (!o.follow) {
    if (fd !== undefined) closeSync(fd);
    return;
  }
  const live = { ...o, tail: undefined, since: o.since };
  try {
    while (!signal?.aborted) {
      const finished = done();
      if (fd === undefined) {
        try { fd = openSync(path, "r"); ino = fstatSync(fd).ino; pos = 0; } catch { /* not yet */ }
      }
      if (fd !== undefined) {
        const r = readAllFrom(fd, pos);
        pos = r.pos;
        for (const e of selectEntries(parseLines(r.text), live)) emit(e);
        let rotated = false;
        try { rotated = statSync(path).ino !== ino; } catch { rotated = false; }
        if (rotated) {
          closeSync(fd);
          fd = undefined;
          continue;
        }
      }
      if (o.until !== undefined && Date.now() > o.until) break;
      if (finished) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
