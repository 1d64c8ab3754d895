// Registry credentials in a docker-style config.json: {"auths": {"SERVER": {"auth": base64("user:pass")}}},
// at $BERTH_CONFIG/config.json or ~/.berth/config.json, written 0600 (atomically) by `berth login`.

import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { BerthError, errnoName } from "../errors.js";
import { DEFAULT_REGISTRY, normalizeRegistry } from "./reference.js";

export interface Credentials {
  username: string;
  password: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  [key: string]: unknown;
}

interface ConfigFile {
  auths?: Record<string, AuthEntry>;
  [key: string]: unknown;
}

/** docker's key for Docker Hub in config.json. */
export const DOCKER_HUB_KEY = "https://index.docker.io/v1/";

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.BERTH_CONFIG ? join(env.BERTH_CONFIG, "config.json") : join(homedir(), ".berth", "config.json");
}

/** The key `berth login SERVER` stores under (docker's: Docker Hub's v1 URL, the host[:port] otherwise). */
export function serverKey(registry: string): string {
  const r = normalizeRegistry(registry);
  return r === DEFAULT_REGISTRY ? DOCKER_HUB_KEY : r;
}

function readConfig(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if (errnoName(err) === "ENOENT") return {};
    throw new BerthError(`cannot read the credentials file ${path}: ${(err as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
    return parsed as ConfigFile;
  } catch (err) {
    throw new BerthError(`the credentials file ${path} is not valid JSON (${(err as Error).message}): fix or remove it and log in again`);
  }
}

function writeConfig(path: string, config: ConfigFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(config, null, "\t")}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

function keysFor(registry: string): string[] {
  const r = normalizeRegistry(registry);
  if (r === DEFAULT_REGISTRY) return [DOCKER_HUB_KEY, "index.docker.io", "docker.io", "registry-1.docker.io", "https://registry-1.docker.io"];
  return [r, `https://${r}`, `http://${r}`, `https://${r}/v1/`, `https://${r}/v2/`];
}

function decode(entry: AuthEntry, key: string, path: string): Credentials | undefined {
  if (typeof entry.auth === "string" && entry.auth !== "") {
    const plain = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = plain.indexOf(":");
    if (colon < 0) throw new BerthError(`the credentials for ${key} in ${path} are malformed (auth is not base64 of user:password): log in again`);
    return { username: plain.slice(0, colon), password: plain.slice(colon + 1) };
  }
  if (typeof entry.username === "string" && typeof entry.password === "string") return { username: entry.username, password: entry.password };
  return undefined;
}

/** The stored credentials for a registry, or undefined (anonymous). */
export function loadCredentials(registry: string, path = configPath()): Credentials | undefined {
  const auths = readConfig(path).auths ?? {};
  for (const key of keysFor(registry)) {
    const entry = auths[key];
    if (entry && typeof entry === "object") {
      const creds = decode(entry, key, path);
      if (creds) return creds;
    }
  }
  return undefined;
}

export function saveCredentials(registry: string, creds: Credentials, path = configPath()): void {
  const config = readConfig(path);
  const auths = { ...(config.auths ?? {}) };
  for (const key of keysFor(registry)) delete auths[key];
  auths[serverKey(registry)] = { auth: Buffer.from(`${creds.username}:${creds.password}`).toString("base64") };
  writeConfig(path, { ...config, auths });
}

/** Removes a registry's credentials; false when there were none. */
export function removeCredentials(registry: string, path = configPath()): boolean {
  const config = readConfig(path);
  const auths = { ...(config.auths ?? {}) };
  let found = false;
  for (const key of keysFor(registry)) {
    if (key in auths) {
      delete auths[key];
      found = true;
    }
  }
  if (found) writeConfig(path, { ...config, auths });
  return found;
}
