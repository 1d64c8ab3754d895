import { statSync } from "node:fs";
import { fileURLToPath } from "node:url";

// docker's stream framing: without a tty, stdout/stderr are multiplexed with an 8-byte header
// [stream, 0, 0, 0, size u32 big-endian]; with a tty the bytes go raw.

export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;

export function frame(stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head[0] = stream;
  head.writeUInt32BE(payload.length, 4);
  return Buffer.concat([head, payload]);
}

/** Splits a multiplexed byte stream into frames (for clients: the CLI and tests). */
export class Demuxer {
  #pending: Buffer = Buffer.alloc(0);
  readonly #onFrame: (stream: number, payload: Buffer) => void;

  constructor(onFrame: (stream: number, payload: Buffer) => void) {
    this.#onFrame = onFrame;
  }

  push(chunk: Buffer): void {
    this.#pending = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    while (this.#pending.length >= 8) {
      const len = this.#pending.readUInt32BE(4);
      if (this.#pending.length < 8 + len) break;
      this.#onFrame(this.#pending[0], this.#pending.subarray(8, 8 + len));
      this.#pending = this.#pending.subarray(8 + len);
    }
  }
}

/** The API version in a path prefix ("/v1.43/containers/json"), and the path without it. */
export function splitVersion(path: string): { version?: string; path: string } {
  const m = /^\/v(\d+\.\d+)(\/.*)$/.exec(path);
  return m ? { version: m[1], path: m[2] } : { path };
}

export const API_VERSION = "1.43";
export const MIN_API_VERSION = "1.24";

export function compareVersions(a: string, b: string): number {
  const [a1, a2] = a.split(".").map(Number);
  const [b1, b2] = b.split(".").map(Number);
  return a1 !== b1 ? a1 - b1 : a2 - b2;
}

/** Which build of Berth a process runs: this compiled file (module tree or bundle) and its mtime. */
export function buildStamp(): string {
  const file = fileURLToPath(import.meta.url);
  try {
    return `${file}@${Math.floor(statSync(file).mtimeMs)}`;
  } catch {
    return file;
  }
}
