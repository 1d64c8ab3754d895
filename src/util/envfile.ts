// --env-file parsing with docker's rules (cli/opts/envfile.go), and merging environment lists.

import { BerthError } from "../errors.js";

const KEY_WHITESPACE = /[ \t]/;

/**
 * The KEY=VALUE entries of an env file, docker style: leading whitespace is dropped, blank lines and
 * lines starting with "#" are skipped, values are kept verbatim (no quotes removed, no trimming), and a
 * line with only `KEY` takes the value from the host environment (or is dropped if the host has none).
 * A key containing whitespace or an empty key is an error naming file:line.
 */
export function parseEnvFile(
  text: string,
  fileName: string,
  hostEnv: Readonly<Record<string, string | undefined>> = process.env,
): string[] {
  const entries: string[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  lines.forEach((rawLine, index) => {
    const line = rawLine.replace(/^\s+/, "");
    if (line === "" || line.startsWith("#")) return;
    const where = `${fileName}:${index + 1}`;
    const equals = line.indexOf("=");
    const key = equals === -1 ? line : line.slice(0, equals);
    if (KEY_WHITESPACE.test(key)) {
      throw new BerthError(`invalid env file ${where}: variable name "${key}" contains whitespace; write KEY=value`);
    }
    if (key === "") {
      throw new BerthError(`invalid env file ${where}: no variable name before "=" in "${line}"`);
    }
    if (equals !== -1) {
      entries.push(`${key}=${line.slice(equals + 1)}`);
      return;
    }
    const hostValue = hostEnv[key];
    if (hostValue !== undefined) entries.push(`${key}=${hostValue}`);
  });
  return entries;
}

function envKey(entry: string): string {
  const equals = entry.indexOf("=");
  return equals === -1 ? entry : entry.slice(0, equals);
}

/**
 * base with overrides applied: an override replaces the entry with the same key in place (so the order
 * of base is kept), new keys are appended in the order given; the last of duplicate keys wins.
 */
export function mergeEnv(base: readonly string[], overrides: readonly string[]): string[] {
  const merged: string[] = [];
  const positionByKey = new Map<string, number>();
  for (const entry of [...base, ...overrides]) {
    const key = envKey(entry);
    const position = positionByKey.get(key);
    if (position === undefined) {
      positionByKey.set(key, merged.length);
      merged.push(entry);
    } else {
      merged[position] = entry;
    }
  }
  return merged;
}
