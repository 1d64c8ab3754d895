// Turns the helper's "op N failed with errno E" into a runc-style line that names the operation and its
// arguments: `mount src=proc dst=/proc type=proc flags=MS_NOSUID|MS_NODEV: operation not permitted`.

import { getSystemErrorMap } from "node:util";
import { mountFlagNames } from "../oci/mount-options.js";
import type { Op } from "./plan.js";

const errorMap = getSystemErrorMap();

/** "operation not permitted" for EPERM (1), in the lower-case style of Go's syscall errors. */
export function errnoMessage(errno: number): string {
  const entry = errorMap.get(-errno);
  if (!entry) return `errno ${errno}`;
  return entry[1].charAt(0).toLowerCase() + entry[1].slice(1);
}

export function errnoName(errno: number): string {
  return errorMap.get(-errno)?.[0] ?? `errno ${errno}`;
}

function describeOp(op: Op): string {
  const inRoot = (root: string, path: string) => (root && root !== "/" ? `${path} (in ${root})` : path);
  switch (op.op) {
    case "joinNamespace": return `setns ${op.name} namespace ${op.path}`;
    case "clone": return `clone flags=0x${op.flags.toString(16)}`;
    case "parentWritePid": return `join cgroup ${op.path}`;
    case "parentWriteProc": return `write /proc/<pid>/${op.file}`;
    case "unshare": return `unshare flags=0x${op.flags.toString(16)}`;
    case "sethostname": return `sethostname ${JSON.stringify(op.name)}`;
    case "setdomainname": return `setdomainname ${JSON.stringify(op.name)}`;
    case "mount": {
      const parts = [`mount src=${op.source || "none"}`, `dst=${inRoot(op.root, op.target)}`];
      if (op.fstype) parts.push(`type=${op.fstype}`);
      parts.push(`flags=${mountFlagNames(op.flags)}`);
      if (op.data) parts.push(`data=${op.data}`);
      return parts.join(" ");
    }
    case "mknod": return `mknod ${inRoot(op.root, op.path)} mode=0${op.mode.toString(8)} dev=${op.major}:${op.minor}`;
    case "symlink": return `symlink ${inRoot(op.root, op.path)} -> ${op.target}`;
    case "maskPath": return `mask ${op.path}`;
    case "readonlyPath": return `make read-only ${op.path}`;
    case "pivotRoot": return `pivot_root ${op.root}`;
    case "chroot": return `chroot ${op.root}`;
    case "chrootInPlace": return `chroot ${op.root}`;
    case "writeFile": return `write ${op.path}=${JSON.stringify(op.data)}`;
    case "chdir": return `chdir to cwd ${JSON.stringify(op.path)}`;
    case "setrlimit": return `setrlimit ${op.name} soft=${op.soft} hard=${op.hard}`;
    case "setUser": return `set uid=${op.uid} gid=${op.gid} groups=[${op.groups.join(",")}]`;
    case "capabilities": return "apply capabilities";
    case "noNewPrivileges": return "set no_new_privs";
    case "seccomp": return `load seccomp filter (${op.program.length / 8} instructions)`;
    case "closeFds": return `close fds from ${op.from}`;
    case "console": return op.mode === "socket" ? `send console to ${op.socketPath}` : "set up console";
    case "setsid": return "setsid";
    case "openExecFifo": return `open exec fifo ${op.path}`;
    case "exec": return `exec ${JSON.stringify(op.file)}`;
    case "parentDeathSignal": return "set parent death signal";
    case "umask": return `umask 0${op.mask.toString(8)}`;
    case "personality": return `personality 0x${op.persona.toString(16)}`;
    case "mkdir": return `mkdir ${inRoot(op.root, op.path)}`;
    case "linkUp": return `bring up interface ${op.name}`;
    case "mkfifo": return `mkfifo ${op.path}`;
    case "setxattr": return `setxattr ${op.name} on ${inRoot(op.root, op.path)}`;
    case "waitExecFifo": return "wait for start";
    case "cgroupDeviceFilter": return `attach the device filter (${op.program.length / 8} eBPF instructions) to cgroup ${op.cgroup}`;
    case "tmpCopyUp": return `mount tmpfs on ${inRoot(op.root, op.target)} with a copy of its content (tmpcopyup)`;
    case "scheduler": return `set the scheduler (process.scheduler, sched_setattr policy ${op.policy})`;
    case "ioPriority": return `set the I/O priority (process.ioPriority, ioprio_set 0x${op.ioprio.toString(16)})`;
    case "mountSetattr": return `mount_setattr ${inRoot(op.root, op.target)} set=0x${op.set.toString(16)} clear=0x${op.clear.toString(16)}`;
    case "runHook": return `hooks.${op.kind}[${op.index}] (${op.path})`;
    case "netlink": return `netlink ${op.what}${op.netns === "@CHILD@" ? " in the container's network namespace" : ""}`;
    case "monitor": return `set up the container monitor (log ${op.logPath || "none"}, attach socket ${op.attachSocket || "none"}, exit file ${op.exitFile})`;
  }
}

export interface HelperFailure {
  message: string;
  /** 127: command not found, 126: not executable, else 1 (the caller maps to its own code). */
  exitCode: number;
  errno: number;
  op?: Op;
}

export function describeFailure(op: Op | undefined, errno: number, detail: string): HelperFailure {
  if (detail.startsWith("stale-helper")) {
    return {
      message: "the native helper is out of date (it speaks another plan version): rebuild it with `npm run build`",
      exitCode: 1,
      errno,
    };
  }
  if (op?.op === "exec") {
    const file = detail || op.file;
    if (errno === 2) {
      const msg = op.file.includes("/")
        ? `exec: ${JSON.stringify(file)}: stat ${file}: no such file or directory` // runc's words
        : `exec: ${JSON.stringify(file)}: executable file not found in $PATH`;
      return { message: msg, exitCode: 127, errno, op };
    }
    if (errno === 13) return { message: `exec: ${JSON.stringify(file)}: permission denied`, exitCode: 126, errno, op };
    return { message: `exec: ${JSON.stringify(file)}: ${errnoMessage(errno)}`, exitCode: 126, errno, op };
  }
  if (op?.op === "cgroupDeviceFilter") {
    // detail: the step ("BPF_PROG_LOAD", "open", "BPF_PROG_ATTACH"), then the verifier's first line, if any.
    const [step, ...why] = detail.split(" ");
    const call = step === "open" ? `open ${op.cgroup}` : `bpf(${step || "?"})`;
    let message = `${describeOp(op)}: ${call}: ${errnoMessage(errno)}${why.length ? ` (verifier: ${why.join(" ")})` : ""}`;
    if (errno === 1 && step.startsWith("BPF_")) message += " (needs CAP_SYS_ADMIN or CAP_BPF, and a kernel with CONFIG_CGROUP_BPF)";
    return { message, exitCode: 1, errno, op };
  }
  let message = op ? `${describeOp(op)}: ${detail || errnoMessage(errno)}` : `${detail || "helper failure"}: ${errnoMessage(errno)}`;
  if (op?.op === "setrlimit" && errno === 1) {
    message += " (hard limits can only be lowered here: the runtime lacks CAP_SYS_RESOURCE)";
  }
  if (op?.op === "chdir" && errno === 2) message = `chdir to cwd (${JSON.stringify(op.path)}) set in config.json failed: no such file or directory`;
  return { message, exitCode: 1, errno, op };
}
