// The docker flags `berth run` and `berth create` share, defined once.

import type { Command } from "commander";
import { BerthError } from "../errors.js";
import { parseDeviceFlag } from "../core/isolation.js";
import { parseUlimit, RLIM_INFINITY_NUMBER } from "../core/rlimits.js";
import { parseSize } from "../util/size.js";

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
    .option("--entrypoint <command>", "override the image's ENTRYPOINT (\"\" for none)")
    .option("--ulimit <name=soft[:hard]>", "resource limit, e.g. nofile=1024:2048", collect, [])
    .option("--shm-size <bytes>", "size of /dev/shm, e.g. 16m")
    .option("--device <host[:container][:rwm]>", "add a host device node", collect, [])
    .option("--group-add <group>", "add a supplementary group (name or gid)", collect, [])
    .option("--sysctl <key=value>", "set a namespaced sysctl (net.*, kernel.shm*/msg*/sem, fs.mqueue.*)", collect, [])
    .option("--pid <mode>", "PID namespace: host or container:NAME")
    .option("--ipc <mode>", "IPC namespace: private, shareable or host")
    .option("--uts <mode>", "UTS namespace: host")
    .option("--cgroupns <mode>", "cgroup namespace: private or host")
    .option("--domainname <name>", "container NIS domain name")
    .option("--memory-reservation <bytes>", "memory soft limit, e.g. 32m")
    .option("--oom-kill-disable", "disable the OOM killer (cgroup v1)");
}

export interface IsolationFlags {
  ulimit?: string[];
  shmSize?: string;
  device?: string[];
  groupAdd?: string[];
  sysctl?: string[];
  pid?: string;
  ipc?: string;
  uts?: string;
  cgroupns?: string;
  domainname?: string;
  memoryReservation?: string;
  oomKillDisable?: boolean;
}

/** The flags above (absent arrays: none) as docker's CLI sends them in the create body's HostConfig (Domainname goes in Config). */
export function isolationHostConfig(f: IsolationFlags): Record<string, unknown> {
  const sysctls: Record<string, string> = {};
  for (const s of f.sysctl ?? []) {
    const eq = s.indexOf("=");
    if (eq <= 0) throw new BerthError(`invalid --sysctl "${s}": expected key=value`);
    sysctls[s.slice(0, eq)] = s.slice(eq + 1);
  }
  const unlimited = (v: number) => (v === RLIM_INFINITY_NUMBER ? -1 : v);
  return {
    Ulimits: (f.ulimit ?? []).map((u) => {
      const r = parseUlimit(u);
      return { Name: u.slice(0, u.indexOf("=")), Soft: unlimited(r.soft), Hard: unlimited(r.hard) };
    }),
    ShmSize: f.shmSize !== undefined ? parseSize(f.shmSize, "--shm-size") : 0,
    Devices: (f.device ?? []).map(parseDeviceFlag),
    GroupAdd: f.groupAdd ?? [],
    Sysctls: Object.keys(sysctls).length ? sysctls : undefined,
    PidMode: f.pid ?? "",
    IpcMode: f.ipc ?? "",
    UTSMode: f.uts ?? "",
    CgroupnsMode: f.cgroupns ?? "",
    MemoryReservation: f.memoryReservation !== undefined ? parseSize(f.memoryReservation, "--memory-reservation") : 0,
    OomKillDisable: f.oomKillDisable ? true : undefined,
  };
}
