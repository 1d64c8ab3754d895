// The network state file: read, and changed under a cross-process lock with an atomic rename.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { withLock } from "../images/lock.js";
import type { NetworkState } from "./types.js";

export function stateDir(dataRoot: string): string {
  return join(dataRoot, "network");
}

export function statePath(dataRoot: string): string {
  return join(stateDir(dataRoot), "state.json");
}

export function emptyState(): NetworkState {
  return { version: 1, networks: {}, endpoints: {} };
}

export function readState(dataRoot: string): NetworkState {
  try {
    const s = JSON.parse(readFileSync(statePath(dataRoot), "utf8")) as NetworkState;
    return { version: 1, networks: s.networks ?? {}, endpoints: s.endpoints ?? {} };
  } catch {
    return emptyState();
  }
}

function writeState(dataRoot: string, state: NetworkState): void {
  const tmp = `${statePath(dataRoot)}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state));
  renameSync(tmp, statePath(dataRoot));
}

/**
 * Runs `fn` on the current state under the lock; the state is saved if `fn` returns without throwing.
 * `save` writes it at once, before effects a crash could otherwise leave unrecorded (a bridge made for
 * a network not yet in the file).
 */
export async function updateState<T>(dataRoot: string, fn: (state: NetworkState, save: () => void) => Promise<T> | T): Promise<T> {
  mkdirSync(stateDir(dataRoot), { recursive: true, mode: 0o700 });
  return withLock(join(stateDir(dataRoot), "state.lock"), async () => {
    const state = readState(dataRoot);
    let saved = JSON.stringify(state);
    const save = () => {
      const now = JSON.stringify(state);
      if (now !== saved) writeState(dataRoot, state);
      saved = now;
    };
    const result = await fn(state, save);
    save();
    return result;
  }, { timeoutMs: 30_000 });
}
