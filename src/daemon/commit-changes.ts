// `docker commit --change`: Dockerfile instructions applied to the committed image's config, limited to
// the ones dockerd accepts there (no RUN, COPY, FROM...). Pure: parsed up front so a bad change is a
// 400 before anything is written.

import { posix } from "node:path";
import type { ImageRunConfig } from "../images/manifest.js";
import { badRequest, goDurationMs } from "./util.js";

export const CHANGE_COMMANDS = ["cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild", "stopsignal", "user", "volume", "workdir"];

export interface Change {
  keyword: string; // lower case
  rest: string;
  /** The instruction as given (ONBUILD keeps it). */
  text: string;
}

/** Splits each change into keyword and arguments; unknown or empty instructions are a 400. */
export function parseChanges(changes: string[]): Change[] {
  const out: Change[] = [];
  for (const text of changes) {
    const trimmed = text.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const m = /^(\S+)\s*([\s\S]*)$/.exec(trimmed) as RegExpExecArray;
    const keyword = m[1].toLowerCase();
    if (!CHANGE_COMMANDS.includes(keyword)) throw badRequest(`${keyword} is not a valid change command`);
    const rest = m[2].trim();
    if (rest === "") throw badRequest(`${keyword.toUpperCase()} requires at least one argument`);
    if (keyword === "onbuild") {
      const inner = /^\S+/.exec(rest)?.[0].toLowerCase() ?? "";
      if (["onbuild", "from", "maintainer"].includes(inner)) throw badRequest(`${inner.toUpperCase()} isn't allowed as an ONBUILD trigger`);
    }
    out.push({ keyword, rest, text: trimmed });
  }
  return out;
}

/** A JSON list of strings (the exec form), or undefined for the shell form. */
function jsonList(rest: string): string[] | undefined {
  if (!rest.startsWith("[")) return undefined;
  try {
    const v = JSON.parse(rest) as unknown;
    return Array.isArray(v) && v.every((x) => typeof x === "string") ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Words split on blanks, with "..." and '...' quoting and backslash escapes (as Dockerfile does). */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  let cur = "";
  let quote = "";
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quote) {
      if (ch === quote) quote = "";
      else if (ch === "\\" && quote === '"' && i + 1 < text.length) cur += text[++i];
      else cur += ch;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
    } else {
      inWord = true;
      if (ch === '"' || ch === "'") quote = ch;
      else if (ch === "\\" && i + 1 < text.length) cur += text[++i];
      else cur += ch;
    }
  }
  if (quote) throw badRequest(`unmatched quote in "${text}"`);
  if (inWord) words.push(cur);
  return words;
}

/** `k=v k2="v 2"`, or the old `k v with spaces` (ENV and LABEL). */
function keyValues(keyword: string, rest: string): [string, string][] {
  const first = /^\S+/.exec(rest)?.[0] ?? "";
  if (!first.includes("=")) {
    const m = /^(\S+)\s+([\s\S]+)$/.exec(rest);
    if (!m) throw badRequest(`${keyword.toUpperCase()} must have two arguments`);
    return [[m[1], m[2].trim()]];
  }
  return splitWords(rest).map((w) => {
    const eq = w.indexOf("=");
    if (eq <= 0) throw badRequest(`${keyword.toUpperCase()} names can not be blank: "${w}"`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

/** $VAR and ${VAR} from the image's environment (unset: empty), as the Dockerfile parser expands. */
function expand(text: string, env: string[]): string {
  const lookup = (name: string) => env.map((e) => e.split("=")).find(([k]) => k === name)?.slice(1).join("=") ?? "";
  return text.replace(/\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (all, a?: string, b?: string) => (all === "\\$" ? "$" : lookup((a ?? b) as string)));
}

function shellForm(config: ImageRunConfig, command: string): string[] {
  return [...(config.Shell?.length ? config.Shell : ["/bin/sh", "-c"]), command];
}

function expandPorts(spec: string): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(spec);
  if (!m) throw badRequest(`invalid containerPort: ${spec}`);
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (to < from || to > 65535) throw badRequest(`invalid range specified for container port: ${spec}`);
  const proto = (m[3] ?? "tcp").toLowerCase();
  return Array.from({ length: to - from + 1 }, (_, i) => `${from + i}/${proto}`);
}

function healthcheck(rest: string): NonNullable<ImageRunConfig["Healthcheck"]> & { StartInterval?: number } {
  let text = rest;
  const hc: NonNullable<ImageRunConfig["Healthcheck"]> & { StartInterval?: number } = {};
  const durations: Record<string, "Interval" | "Timeout" | "StartPeriod" | "StartInterval"> = { interval: "Interval", timeout: "Timeout", "start-period": "StartPeriod", "start-interval": "StartInterval" };
  for (let m; (m = /^--([a-z-]+)=(\S*)\s*/.exec(text)); text = text.slice(m[0].length)) {
    const [, flag, value] = m;
    if (flag === "retries") {
      if (!/^\d+$/.test(value)) throw badRequest(`HEALTHCHECK --retries: invalid value "${value}"`);
      hc.Retries = Number(value);
    } else if (durations[flag]) {
      const ms = goDurationMs(value);
      if (ms === undefined) throw badRequest(`HEALTHCHECK --${flag}: invalid duration "${value}"`);
      if (ms !== 0 && ms < 1) throw badRequest(`HEALTHCHECK --${flag} cannot be less than 1ms`);
      hc[durations[flag]] = Math.round(ms * 1e6);
    } else {
      throw badRequest(`HEALTHCHECK: unknown flag --${flag}`);
    }
  }
  const m = /^(\S+)\s*([\s\S]*)$/.exec(text);
  const kind = m?.[1].toUpperCase();
  if (kind === "NONE") {
    if (m?.[2] || text !== rest) throw badRequest("HEALTHCHECK NONE takes no arguments");
    return { Test: ["NONE"] };
  }
  if (kind !== "CMD" || !m?.[2]) throw badRequest(`HEALTHCHECK: expected CMD or NONE, got "${text}"`);
  const exec = jsonList(m[2]);
  hc.Test = exec ? ["CMD", ...exec] : ["CMD-SHELL", m[2]];
  return hc;
}

/** The config with the changes applied in order (a new object; `config` is left as it is). */
export function applyChanges(config: ImageRunConfig, changes: Change[]): ImageRunConfig {
  const c: ImageRunConfig = { ...config, Env: [...(config.Env ?? [])] };
  const env = () => c.Env ?? [];
  let cmdSet = false;
  for (const ch of changes) {
    const rest = ch.rest;
    switch (ch.keyword) {
      case "cmd":
        c.Cmd = jsonList(rest) ?? shellForm(c, rest);
        cmdSet = true;
        break;
      case "entrypoint":
        c.Entrypoint = jsonList(rest) ?? shellForm(c, rest);
        // As in a Dockerfile: an ENTRYPOINT drops the inherited CMD unless a CMD came with it.
        if (!cmdSet) c.Cmd = null;
        break;
      case "env":
        for (const [k, v] of keyValues("env", rest)) {
          const value = expand(v, env());
          c.Env = [...env().filter((e) => e.split("=")[0] !== k), `${k}=${value}`];
        }
        break;
      case "label":
        c.Labels = { ...(c.Labels ?? {}) };
        for (const [k, v] of keyValues("label", rest)) c.Labels[expand(k, env())] = expand(v, env());
        break;
      case "expose":
        c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
        for (const w of splitWords(expand(rest, env()))) for (const p of expandPorts(w)) c.ExposedPorts[p] = {};
        break;
      case "volume": {
        const paths = jsonList(rest) ?? splitWords(expand(rest, env()));
        c.Volumes = { ...(c.Volumes ?? {}) };
        for (const p of paths) {
          if (p.trim() === "") throw badRequest("VOLUME specified can not be an empty string");
          c.Volumes[p] = {};
        }
        break;
      }
      case "user":
        c.User = expand(rest, env());
        break;
      case "workdir": {
        const dir = expand(rest, env());
        c.WorkingDir = posix.isAbsolute(dir) ? posix.normalize(dir) : posix.join(c.WorkingDir || "/", dir);
        break;
      }
      case "stopsignal":
        c.StopSignal = expand(rest, env());
        break;
      case "healthcheck":
        c.Healthcheck = healthcheck(rest);
        break;
      case "onbuild": {
        const m = /^(\S+)([\s\S]*)$/.exec(rest) as RegExpExecArray;
        c.OnBuild = [...(c.OnBuild ?? []), `${m[1].toUpperCase()}${m[2]}`];
        break;
      }
    }
  }
  return c;
}
