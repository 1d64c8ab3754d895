// Docker's default seccomp profile (moby profiles/seccomp/default.json), transcribed compactly,
// and the resolution moby does at container creation: keep the rules whose capability, arch
// and kernel conditions hold, and list the host's ABI plus its sub-ABIs.

import type { Seccomp, SeccompArg, SeccompSyscall } from "../oci/spec.js";
import { scmpArchOf } from "./compile.js";

interface Cond {
  caps?: string[];
  /** Go arch names (runtime.GOARCH): amd64, arm64, x86, x32, arm, s390x, ... */
  arches?: string[];
  minKernel?: string;
}

interface Entry {
  names: string;
  action?: string;
  errnoRet?: number;
  args?: SeccompArg[];
  inc?: Cond;
  exc?: Cond;
}

const ARCH_MAP: Record<string, string[]> = {
  SCMP_ARCH_X86_64: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  SCMP_ARCH_AARCH64: ["SCMP_ARCH_ARM"],
  SCMP_ARCH_MIPS64: ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"],
  SCMP_ARCH_MIPS64N32: ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"],
  SCMP_ARCH_MIPSEL64: ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"],
  SCMP_ARCH_MIPSEL64N32: ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"],
  SCMP_ARCH_S390X: ["SCMP_ARCH_S390"],
  SCMP_ARCH_RISCV64: [],
};

const ALLOWED = `
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 clock_adjtime
clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2
execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex
futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32
getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid
getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter io_uring_register
io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32
lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64
madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall
mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal
pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink
readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename
renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send
sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid
setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area
set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd
signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink
symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask
uname unlink unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write
writev`;

// CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWCGROUP
const CLONE_NS_FLAGS = 2114060288;
const personality = (value: number): Entry => ({
  names: "personality",
  args: [{ index: 0, value, op: "SCMP_CMP_EQ" }],
});

const ENTRIES: Entry[] = [
  { names: ALLOWED },
  { names: "process_vm_readv process_vm_writev ptrace", inc: { minKernel: "4.8" } },
  { names: "socket", args: [{ index: 0, value: 40, op: "SCMP_CMP_NE" }] }, // AF_VSOCK
  personality(0x0),
  personality(0x8),
  personality(0x20000),
  personality(0x20008),
  personality(0xffffffff),
  { names: "sync_file_range2 swapcontext", inc: { arches: ["ppc64le"] } },
  {
    names: "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
    inc: { arches: ["arm", "arm64"] },
  },
  { names: "arch_prctl", inc: { arches: ["amd64", "x32"] } },
  { names: "modify_ldt", inc: { arches: ["amd64", "x32", "x86"] } },
  { names: "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr", inc: { arches: ["s390", "s390x"] } },
  { names: "riscv_flush_icache", inc: { arches: ["riscv64"] } },
  { names: "open_by_handle_at", inc: { caps: ["CAP_DAC_READ_SEARCH"] } },
  {
    names:
      "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr " +
      "move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog " +
      "umount umount2 unshare",
    inc: { caps: ["CAP_SYS_ADMIN"] },
  },
  {
    names: "clone",
    args: [{ index: 0, value: CLONE_NS_FLAGS, op: "SCMP_CMP_MASKED_EQ" }],
    exc: { caps: ["CAP_SYS_ADMIN"], arches: ["s390", "s390x"] },
  },
  {
    // s390 passes clone's flags second
    names: "clone",
    args: [{ index: 1, value: CLONE_NS_FLAGS, op: "SCMP_CMP_MASKED_EQ" }],
    inc: { arches: ["s390", "s390x"] },
    exc: { caps: ["CAP_SYS_ADMIN"] },
  },
  // glibc falls back from clone3 to clone on ENOSYS; clone's flags can be checked, clone3's cannot.
  { names: "clone3", action: "SCMP_ACT_ERRNO", errnoRet: 38, exc: { caps: ["CAP_SYS_ADMIN"] } },
  { names: "reboot", inc: { caps: ["CAP_SYS_BOOT"] } },
  { names: "chroot", inc: { caps: ["CAP_SYS_CHROOT"] } },
  { names: "delete_module init_module finit_module", inc: { caps: ["CAP_SYS_MODULE"] } },
  { names: "acct", inc: { caps: ["CAP_SYS_PACCT"] } },
  {
    names: "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    inc: { caps: ["CAP_SYS_PTRACE"] },
  },
  { names: "iopl ioperm", inc: { caps: ["CAP_SYS_RAWIO"] } },
  { names: "settimeofday stime clock_settime clock_settime64", inc: { caps: ["CAP_SYS_TIME"] } },
  { names: "vhangup", inc: { caps: ["CAP_SYS_TTY_CONFIG"] } },
  {
    names: "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    inc: { caps: ["CAP_SYS_NICE"] },
  },
  { names: "syslog", inc: { caps: ["CAP_SYSLOG"] } },
  { names: "bpf", inc: { caps: ["CAP_BPF"] } },
  { names: "perf_event_open", inc: { caps: ["CAP_PERFMON"] } },
];

const GOARCH: Record<string, string> = { SCMP_ARCH_X86_64: "amd64", SCMP_ARCH_AARCH64: "arm64" };

function kernelAtLeast(have: string, want: string): boolean {
  const parse = (v: string): number[] => v.split(/[.-]/).slice(0, 2).map((x) => parseInt(x, 10) || 0);
  const [hMaj, hMin] = parse(have);
  const [wMaj, wMin] = parse(want);
  return hMaj > wMaj || (hMaj === wMaj && hMin >= wMin);
}

const normCap = (c: string): string => {
  const u = c.toUpperCase();
  return u.startsWith("CAP_") ? u : `CAP_${u}`;
};

export interface DockerProfileOptions {
  /** Host architecture ("x86_64", "aarch64"; node's "x64"/"arm64" accepted). Default: this host. */
  arch?: string;
  /** Host kernel release, for rules with a minimum kernel. Default: assume a current kernel. */
  kernelVersion?: string;
}

/**
 * Docker's default profile for a container with capabilities `caps` ("CAP_SYS_ADMIN" or
 * "SYS_ADMIN"): deny by default with EPERM, allow the usual syscalls, and allow the
 * privileged ones only when the capability that guards them is granted.
 */
export function dockerDefaultProfile(caps: string[], opts: DockerProfileOptions = {}): Seccomp {
  const scmpArch = scmpArchOf(opts.arch ?? process.arch);
  const goArch = GOARCH[scmpArch];
  const have = new Set(caps.map(normCap));
  const kernel = opts.kernelVersion;
  const syscalls: SeccompSyscall[] = [];
  for (const e of ENTRIES) {
    if (e.exc?.caps?.some((c) => have.has(c))) continue;
    if (e.exc?.arches?.includes(goArch)) continue;
    if (e.inc?.caps && !e.inc.caps.every((c) => have.has(c))) continue;
    if (e.inc?.arches && !e.inc.arches.includes(goArch)) continue;
    if (e.inc?.minKernel && kernel !== undefined && !kernelAtLeast(kernel, e.inc.minKernel)) continue;
    const sc: SeccompSyscall = { names: e.names.trim().split(/\s+/), action: e.action ?? "SCMP_ACT_ALLOW" };
    if (e.errnoRet !== undefined) sc.errnoRet = e.errnoRet;
    if (e.args) sc.args = e.args.map((a) => ({ ...a }));
    syscalls.push(sc);
  }
  return {
    defaultAction: "SCMP_ACT_ERRNO",
    defaultErrnoRet: 1,
    architectures: [scmpArch, ...(ARCH_MAP[scmpArch] ?? [])],
    syscalls,
  };
}
