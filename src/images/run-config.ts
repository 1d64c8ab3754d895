// How an image's config shapes `berth run` (pure): docker's rules for Entrypoint/Cmd with --entrypoint
// and arguments, Env under -e, WorkingDir and User unless -w / -u are given.

import { lstatSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BerthError } from "../errors.js";
import type { ImageRunConfig } from "./manifest.js";

export interface RunOverrides {
  /** --entrypoint: undefined = the image's; "" = none. */
  entrypoint?: string;
  /** Arguments after the image name. */
  args: string[];
  /** -e / --env-file entries (already KEY=VALUE). */
  env: string[];
  workdir?: string;
  user?: string;
}

export interface RunSettings {
  command: string[];
  env: string[];
  workdir?: string;
  user?: string;
}

export function applyImageConfig(image: string, config: ImageRunConfig | undefined, o: RunOverrides): RunSettings {
  const entrypoint = o.entrypoint !== undefined ? (o.entrypoint === "" ? [] : [o.entrypoint]) : (config?.Entrypoint ?? []);
  // docker: --entrypoint clears the image's Cmd; arguments replace it.
  const cmd = o.args.length > 0 ? o.args : o.entrypoint !== undefined ? [] : (config?.Cmd ?? []);
  const command = [...entrypoint, ...cmd];
  if (command.length === 0) {
    throw new BerthError(`no command specified: image ${image} has no Entrypoint or Cmd; give one after the image name`);
  }
  return {
    command,
    env: [...(config?.Env ?? []), ...o.env],
    workdir: o.workdir ?? (config?.WorkingDir ? config.WorkingDir : undefined),
    user: o.user ?? (config?.User ? config.User : undefined),
  };
}

/**
 * Reads a file as the image's merged root would show it: from the topmost layer (lowerDirs, top first)
 * that has it; a whiteout (char device 0:0) or an opaque parent hides lower layers. undefined if absent.
 */
export function readImageFile(lowerDirs: string[], path: string): string | undefined {
  for (const dir of lowerDirs) {
    const p = join(dir, path);
    try {
      const st = lstatSync(p);
      if (st.isCharacterDevice() && st.rdev === 0) return undefined;
      if (st.isFile()) return readFileSync(p, "utf8");
      return undefined;
    } catch {
      // not in this layer
    }
  }
  return undefined;
}
