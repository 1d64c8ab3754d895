// The docker flags `berth run` and `berth create` share, defined once.

import type { Command } from "commander";

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Process, limit and security flags common to run and create (each adds its own network/rootfs flags). */
export function addContainerOptions(cmd: Command): Command {
  return cmd
    .option("-i, --interactive", "keep stdin open")
    .option("-t, --tty", "allocate a pseudo-TTY")
    .option("--rm", "remove the container when it exits")
    .option("-e, --env <KEY=VALUE>", "set an environment variable", collect, [])
    .option("--env-file <file>", "read environment variables from a file", collect, [])
    .option("-w, --workdir <dir>", "working directory inside the container")
    .option("-u, --user <user[:group]>", "user name or uid, optionally with group or gid")
    .option("-h, --hostname <name>", "container hostname")
    .option("--name <name>", "container name")
    .option("--read-only", "mount the root filesystem read-only")
    .option("-m, --memory <bytes>", "memory limit, e.g. 512m")
    .option("--memory-swap <bytes>", "memory plus swap limit, -1 for unlimited swap")
    .option("--cpus <n>", "number of CPUs, e.g. 1.5")
    .option("-c, --cpu-shares <n>", "CPU shares (relative weight)")
    .option("--cpuset-cpus <list>", "CPUs to run on, e.g. 0-1")
    .option("--pids-limit <n>", "maximum number of processes (-1 for unlimited)")
    .option("--privileged", "give the container every capability the runtime holds, no masks, no seccomp")
    .option("--cap-add <cap>", "add a capability", collect, [])
    .option("--cap-drop <cap>", "drop a capability", collect, [])
    .option("-v, --volume <host:container[:ro]>", "bind mount a host path or a named volume", collect, [])
    .option("--security-opt <opt>", "security options (seccomp=unconfined)", collect, [])
    .option("--entrypoint <command>", "override the image's ENTRYPOINT (\"\" for none)");
}
