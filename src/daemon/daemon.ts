// `berth daemon`: the engine served on Unix sockets, with a pid file and a clean SIGTERM shutdown that
// leaves containers running (a restarted daemon adopts them).

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BerthError } from "../errors.js";
import { listen } from "../api/server.js";
import { tryLock } from "../images/lock.js";
import { removeOrphanedNetworking } from "../network/index.js";
import { keepSpareHelper } from "../runtime/helper.js";
import { DEFAULT_DATA_ROOT, DEFAULT_EXEC_ROOT, Engine } from "./engine.js";

export interface DaemonOptions {
  hosts: string[];
  dataRoot?: string;
  execRoot?: string;
  pidFile?: string;
}

export const DEFAULT_SOCKET = "/run/berth/berth.sock";

/** A living berth daemon (not a zombie, not a reused pid of another program). */
function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state === "Z" || state === "X") return false;
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return cmd.includes("daemon");
  } catch {
    return false;
  }
}

export async function runDaemon(o: DaemonOptions): Promise<{ engine: Engine; stop: () => Promise<void> }> {
  if (process.getuid?.() !== 0) throw new BerthError("berth daemon must be run as root (it creates namespaces, mounts and cgroups)");
  const dataRoot = o.dataRoot ?? DEFAULT_DATA_ROOT;
  const execRoot = o.execRoot ?? DEFAULT_EXEC_ROOT;
  const pidFile = o.pidFile ?? join(execRoot, "berth.pid");
  mkdirSync(execRoot, { recursive: true, mode: 0o711 });
  // Two daemons on one data root would both adopt its containers and serve their networks' DNS: the
  // root is held for the daemon's life. The in-process paths (BERTH_NO_DAEMON run, image commands)
  // don't take it: they use the store's and the network state's own short locks, as the daemon does.
  mkdirSync(dataRoot, { recursive: true, mode: 0o711 });
  const rootLock = tryLock(join(dataRoot, "daemon.lock"));
  if (!rootLock) {
    let owner = "";
    try { owner = readFileSync(join(dataRoot, "daemon.lock"), "utf8").trim().split(" ")[0]; } catch { /* released meanwhile */ }
    throw new BerthError(`another berth daemon${owner ? ` (pid ${owner})` : ""} is using data root ${dataRoot}: stop it first or use another --data-root`);
  }
  try {
    const other = Number(readFileSync(pidFile, "utf8").trim());
    if (other && other !== process.pid && pidAlive(other)) {
      rootLock.release();
      throw new BerthError(`another berth daemon (pid ${other}) is running with exec root ${execRoot}: stop it first or use another --exec-root`);
    }
  } catch (err) {
    if (err instanceof BerthError) throw err;
  }
  writeFileSync(pidFile, `${process.pid}\n`);
  const log = (msg: string) => process.stderr.write(`${new Date().toISOString()} berth daemon: ${msg}\n`);
  const engine = new Engine({ dataRoot, execRoot, log });
  await engine.load();
  // Monitored containers start with a helper spawned ahead of time (src/runtime/helper.ts).
  if (engine.useMonitor) keepSpareHelper(true);
  const hosts = o.hosts.length > 0 ? o.hosts : [`unix://${DEFAULT_SOCKET}`];
  const api = await listen(engine, hosts);
  log(`API listening on ${hosts.join(", ")} (data root ${dataRoot}, exec root ${execRoot})`);
  let stopping: Promise<void> | undefined;
  // A daemon the CLI started for a data root of its own (/run/berth/roots/<tag>) has no reason to
  // outlive that root: when it is deleted (a test's temp dir), stop and take the exec root along.
  const autostartedRoot = execRoot.startsWith("/run/berth/roots/");
  const stop = () => {
    stopping ??= (async () => {
      clearInterval(rootWatch);
      keepSpareHelper(false);
      engine.shutdown();
      await api.close();
      rmSync(pidFile, { force: true });
      rootLock.release();
      if (!existsSync(dataRoot)) {
        // Nobody can use this root's bridges and rules again: its network state was deleted with it.
        await removeOrphanedNetworking(engine.net).catch((err: Error) => log(`removing the deleted root's networks: ${err.message}`));
        if (autostartedRoot) rmSync(execRoot, { recursive: true, force: true });
      }
    })();
    return stopping;
  };
  const rootWatch = setInterval(() => {
    if (existsSync(dataRoot)) return;
    log(`data root ${dataRoot} was removed: stopping`);
    process.kill(process.pid, "SIGTERM");
  }, 2000);
  return { engine, stop };
}
