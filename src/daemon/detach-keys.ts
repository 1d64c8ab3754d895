// Detach keys (docker's `--detach-keys`, default ctrl-p,ctrl-q): parsing docker's key list and
// finding the sequence in a stdin stream that arrives in arbitrary chunks. Pure.

import { badRequest } from "./util.js";

/** docker's default. */
export const DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q";

// moby/term's ASCII table: "ctrl-@" is 0, "ctrl-a" 1 ... "ctrl-z" 26, then "ctrl-[" ... "ctrl-_".
const CTRL = ["ctrl-@", ..."abcdefghijklmnopqrstuvwxyz".split("").map((c) => `ctrl-${c}`), "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"];

/**
 * docker's term.ToBytes: a comma-separated list of single characters, `ctrl-<x>` (x in a-z, @, [, \,
 * ], ^, _; lower case, as docker) or `DEL`. Throws on anything else (the caller words the error).
 */
export function detachKeyBytes(keys: string): Buffer {
  const out: number[] = [];
  for (const key of keys.split(",")) {
    if (key.length === 1) {
      out.push(key.charCodeAt(0) & 0xff);
      continue;
    }
    const code = CTRL.indexOf(key);
    if (code >= 0) out.push(code);
    else if (key === "DEL") out.push(127);
    else throw new Error(`Unknown character: '${key}'`);
  }
  return Buffer.from(out);
}

/** The keys of an attach (`detachKeys` query parameter): docker's 400 for a bad list; empty is the default. */
export function attachDetachKeys(keys: string | null | undefined): Buffer {
  try {
    return detachKeyBytes(keys || DEFAULT_DETACH_KEYS);
  } catch {
    throw badRequest(`Invalid detach keys (${keys}) provided`);
  }
}

/** The keys of an exec (its `DetachKeys`): checked when the exec is created, as docker. */
export function execDetachKeys(keys: string | null | undefined): Buffer {
  try {
    return detachKeyBytes(keys || DEFAULT_DETACH_KEYS);
  } catch {
    throw badRequest(`Invalid escape keys (${keys}) provided`);
  }
}

/**
 * Finds the detach sequence in a stream. `push` returns the bytes to pass on to the process and
 * whether the sequence was completed (the bytes after it are dropped, as docker drops them). A partial
 * match at the end of a chunk is held back until the next chunk decides; if that one does not
 * continue it, the held bytes are passed on first (so ctrl-p alone still reaches the process).
 */
export class DetachScanner {
  readonly #keys: Buffer;
  #pos = 0;

  constructor(keys: Buffer) {
    this.#keys = keys;
  }

  push(chunk: Buffer): { data: Buffer; detached: boolean } {
    const keys = this.#keys;
    if (keys.length === 0) return { data: chunk, detached: false };
    const out: Buffer[] = [];
    let from = 0; // start of the chunk's bytes not yet passed on or held
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (b === keys[this.#pos]) {
        if (this.#pos === 0) {
          out.push(chunk.subarray(from, i));
          from = i;
        }
        this.#pos++;
        if (this.#pos === keys.length) {
          this.#pos = 0;
          return { data: Buffer.concat(out), detached: true };
        }
        continue;
      }
      if (this.#pos > 0) {
        // The held prefix was not the sequence: pass it on (some of it may be in earlier chunks).
        const heldHere = i - from;
        const heldBefore = this.#pos - heldHere;
        if (heldBefore > 0) out.push(keys.subarray(0, heldBefore));
        out.push(chunk.subarray(from, i));
        from = i;
        this.#pos = 0;
        if (b === keys[0]) { i--; continue; } // this byte may start the sequence again
      }
    }
    // A pending prefix (chunk[from..]) waits for the next chunk.
    if (this.#pos === 0) out.push(chunk.subarray(from));
    return { data: Buffer.concat(out), detached: false };
  }
}
