// `berth daemon` and the engine commands that talk to it through the Engine API.

import type { Command } from "commander";
import { Option } from "commander";
import { runDaemon } from "../daemon/daemon.js";

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerEngineCommands(program: Command, onExit: (code: number) => void): void {
  program
    .command("daemon")
    .description("Run the Berth engine: the Docker Engine API on a Unix socket")
    .option("-H, --host <unix:///path>", "socket to listen on (repeatable; default unix:///run/berth/berth.sock)", collect, [])
    .addOption(new Option("--data-root <dir>", "durable state: containers, volumes, images").default("/var/lib/berth"))
    .addOption(new Option("--exec-root <dir>", "runtime state: sockets, fifos, pid file").default("/run/berth"))
    .option("-p, --pidfile <file>", "pid file (default <exec-root>/berth.pid)")
    .action(async (flags: { host: string[]; dataRoot: string; execRoot: string; pidfile?: string }) => {
      const d = await runDaemon({ hosts: flags.host, dataRoot: flags.dataRoot, execRoot: flags.execRoot, pidFile: flags.pidfile });
      await new Promise<void>((resolve) => {
        const stop = () => { void d.stop().then(resolve); };
        process.once("SIGTERM", stop);
        process.once("SIGINT", stop);
      });
      onExit(0);
      process.exit(0);
    });
}
