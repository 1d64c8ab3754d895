// The effect layer of running a container in the foreground: state dir, overlay dirs, cgroup, the
// helper, and cleanup of all of them when the container ends or anything fails. What a crash left
// behind is found by `cleanupStale` through the state file each container writes first.

import { randomBytes } from "node:crypto";
import { chownSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import { type CgroupPlan, destroyCgroup, oomKilled } from "../cgroups/index.js";
import { BerthError } from "../errors.js";
import type { Op } from "../core/plan.js";
import type { Spec } from "../oci/spec.js";
import { type ExitStatus, type HelperRun, type StdioEntry } from "./helper.js";
import { launchContainer, processStartTime } from "./launch.js";
import { type OverlayMount, overlayMount } from "./overlay.js";
import { prepareBindTargets } from "./userns-targets.js";

export const DEFAULT_STATE_ROOT = "/run/berth";

export interface StartOptions {
  spec: Spec;
  id?: string;
  /** The container's stdin, stdout, stderr, or one of "pipe", "inherit", "ignore" for all three (as child_process). Default: inherit ours. */
  stdio?: [StdioEntry, StdioEntry, StdioEntry] | "pipe" | "inherit" | "ignore";
  /** Where per-container state lives (default /run/berth). */
  stateRoot?: string;
  /** With spec.process.terminal: put our stdin terminal in raw mode while attached. */
  rawHostTerminal?: boolean;
  /**
   * "overlay" (default): the rootfs is a read-only lower layer, writes go to a throwaway upper dir.
   * "direct": the container runs on the directory itself (OCI bundles).
   */
  rootfsMode?: "overlay" | "direct";
  /** The container's network (src/network prepareContainerNetwork): helper ops, then started/release. */
  network?: ContainerNetworkHooks;
  /**
   * An image's layer directories, top layer first: the container's root is an overlay of these (its
   * own upper and work dirs on top), whatever rootfsMode says. spec.root.path is then only checked.
   */
  lowerDirs?: string[];
  /** The image ID the container runs, recorded in state.json so the image is not removed under it. */
  image?: string;
}

export interface ContainerNetworkHooks {
  parentOps?: Op[];
  started?(pid: number): Promise<void>;
  release(): Promise<void>;
}

export interface RunResult {
  exitCode: number;
  /** Signal number that killed the container's init, 0 if it exited. */
  signal: number;
  /** The kernel's OOM killer killed a process of the container. */
  oomKilled: boolean;
}

export interface ContainerState {
  id: string;
  ownerPid: number;
  ownerStart: string;
  helperPid?: number;
  pid?: number;
  cgroup?: CgroupPlan;
  /** The image ID the container runs (images in use cannot be removed). */
  image?: string;
}

export function newContainerId(): string {
  return randomBytes(32).toString("hex");
}

function isAlive(pid: number | undefined, start?: string): boolean {
  if (!pid) return false;
  const now = processStartTime(pid);
  return now !== undefined && (start === undefined || now === start);
}

function writeState(dir: string, state: ContainerState): void {
  // Atomic: a reader sees the old or the new file, never half of one.
  const tmp = join(dir, `.state.json.${process.pid}`);
  writeFileSync(tmp, JSON.stringify(state));
  renameSync(tmp, join(dir, "state.json"));
}

/** Removes what crashed runs left: state dirs whose owner and helper are gone, and their cgroups. */
export async function cleanupStale(stateRoot = DEFAULT_STATE_ROOT): Promise<string[]> {
  const root = join(stateRoot, "containers");
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const dir = join(root, name);
    let state: ContainerState | undefined;
    try {
      state = JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as ContainerState;
    } catch {
      // No state yet: a run that is just starting writes it first thing; only old ones are debris.
      try {
        if (Date.now() - statSync(dir).mtimeMs < 60_000) continue;
      } catch {
        continue;
      }
    }
    if (state && (isAlive(state.ownerPid, state.ownerStart) || isAlive(state.helperPid))) continue;
    if (state?.pid && isAlive(state.pid)) {
      try { process.kill(state.pid, "SIGKILL"); } catch { /* already gone */ }
    }
    if (state?.cgroup) await destroyCgroup(state.cgroup);
    rmSync(dir, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

let staleChecked = false;

/** A container running in the foreground of this process. */
export class Container {
  readonly id: string;
  readonly #run: HelperRun;
  readonly #finished: Promise<RunResult>;

  constructor(id: string, run: HelperRun, finished: Promise<RunResult>) {
    this.id = id;
    this.#run = run;
    this.#finished = finished;
  }

  /** The container's init process, as a host pid. */
  get pid(): number {
    return this.#run.pid;
  }

  get stdin() { return this.#run.helper.stdin; }
  get stdout() { return this.#run.helper.stdout; }
  get stderr() { return this.#run.helper.stderr; }

  /** Sends a signal to the container's init (number or name). */
  kill(signal: NodeJS.Signals | number = "SIGTERM"): void {
    const n = typeof signal === "number" ? signal : (osSignals[signal] ?? 15);
    this.#run.signal(n);
  }

  resize(rows: number, cols: number): void {
    this.#run.resize(rows, cols);
  }

  /** Tells the helper to pick up its terminal's new size (after SIGWINCH). */
  refreshSize(): void {
    try { process.kill(this.#run.helper.pid as number, "SIGWINCH"); } catch { /* gone */ }
  }

  /** Forwards a signal through the helper, which passes it on to the container's init. */
  forward(signal: NodeJS.Signals): void {
    try { process.kill(this.#run.helper.pid as number, signal); } catch { /* gone */ }
  }

  /** Resolves when the container has ended and everything it used is removed. */
  wait(): Promise<RunResult> {
    return this.#finished;
  }
}

const osSignals = constants.signals as Record<string, number>;

/** Sets up and starts a container; resolves once its command has been exec'd. */
export async function startContainer(options: StartOptions): Promise<Container> {
  const stateRoot = options.stateRoot ?? DEFAULT_STATE_ROOT;
  if (!staleChecked) {
    staleChecked = true;
    await cleanupStale(stateRoot);
  }
  const spec = options.spec;
  const id = options.id ?? newContainerId();
  const dir = join(stateRoot, "containers", id);
  const lower = spec.root?.path;
  if (!lower) throw new BerthError("root.path: no root filesystem given");
  try {
    if (!statSync(lower).isDirectory()) throw new Error();
  } catch {
    throw new BerthError(`root filesystem ${lower} does not exist or is not a directory: give an unpacked root filesystem directory`);
  }
  // 0711: a container root mapped to another uid (user namespace) must be able to pass through.
  mkdirSync(join(stateRoot, "containers"), { recursive: true, mode: 0o711 });
  try {
    mkdirSync(dir, { mode: 0o711 });
  } catch {
    throw new BerthError(`container ${id} already exists in ${stateRoot}`);
  }
  const state: ContainerState = { id, ownerPid: process.pid, ownerStart: processStartTime(process.pid) ?? "", image: options.image };
  let cgroup: CgroupPlan | undefined;
  let run: HelperRun | undefined;
  const cleanup = async () => {
    if (cgroup) await destroyCgroup(cgroup);
    rmSync(dir, { recursive: true, force: true });
    await options.network?.release();
  };
  try {
    writeState(dir, state);
    let rootfs = lower;
    let rootfsMounts: OverlayMount[] = [];
    // Also with --read-only: mount points and -w dirs are made in the throwaway upper layer, never in
    // the image; the root is remounted read-only after pivot_root.
    const overlay = (options.rootfsMode ?? "overlay") === "overlay";
    if (overlay) {
      const upper = join(dir, "upper");
      const work = join(dir, "work");
      rootfs = join(dir, "rootfs");
      for (const d of [upper, work, rootfs]) mkdirSync(d);
      // In a user namespace the container's root must own its writable layer.
      const rootMap = spec.linux?.uidMappings?.find((m) => m.containerID === 0);
      const rootGid = spec.linux?.gidMappings?.find((m) => m.containerID === 0);
      if (rootMap) for (const d of [upper, work]) chownSync(d, rootMap.hostID, rootGid?.hostID ?? rootMap.hostID);
      // ... and can't create mount points in a lower layer that host root owns: make them here (a single
      // lower dir; an image's layers are shifted to the mapping, so its root can).
      if (rootMap && !options.lowerDirs?.length) {
        prepareBindTargets(lower, upper, spec.mounts ?? [], { uid: rootMap.hostID, gid: rootGid?.hostID ?? rootMap.hostID });
      }
      rootfsMounts = [overlayMount(options.lowerDirs?.length ? options.lowerDirs : [lower], upper, work, join(dir, "lower"))];
    }
    const launched = await launchContainer({
      spec,
      rootfs,
      rootfsMounts,
      cgroupName: `berth-${id.slice(0, 12)}`,
      console: spec.process?.terminal ? { mode: "proxy", rawHostTerminal: options.rawHostTerminal } : undefined,
      dieWithController: true,
      stdio: typeof options.stdio === "string" ? [options.stdio, options.stdio, options.stdio] : options.stdio,
      onCgroup: (created) => {
        cgroup = created;
        state.cgroup = created;
        writeState(dir, state);
      },
      parentOps: options.network?.parentOps,
      beforeRelease: async (pid) => {
        state.pid = pid;
        writeState(dir, state);
        await options.network?.started?.(pid);
      },
    });
    run = launched.run;
    state.helperPid = run.helper.pid;
    writeState(dir, state);
  } catch (err) {
    // launchContainer already undid its own part (helper, cgroup).
    cgroup = undefined;
    await cleanup();
    throw err;
  }
  const started = run;
  const finished = (async (): Promise<RunResult> => {
    const status: ExitStatus = await started.exited;
    const oom = cgroup ? oomKilled(cgroup) : false;
    await cleanup();
    return { exitCode: status.exitCode, signal: status.signal, oomKilled: oom };
  })();
  finished.catch(() => cleanup());
  return new Container(id, started, finished);
}

/** Runs a container to completion. */
export async function runContainer(options: StartOptions): Promise<RunResult> {
  const c = await startContainer(options);
  return c.wait();
}
