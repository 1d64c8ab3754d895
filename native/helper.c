/*
 * berth-helper: carries out a plan computed by Berth's TypeScript between clone and exec.
 *
 * It reads a versioned, length-prefixed plan from fd 3 (a socket to the controller), joins the
 * namespaces the plan names, clones the container process with the plan's flags, performs the
 * parent-side steps (cgroup joins, id maps), reports the child's pid, waits for "go", and then lets
 * the child run its steps one by one up to execve. Every failure is reported as
 * "error <op index> <errno> <detail>": the controller knows what op N was and words the message.
 *
 * The helper parses no spec and makes no decisions; the only branches here are the mechanics of
 * each op. See src/core/plan.ts for the op codes and the encoding (change both together).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "monitor.h"

#define PLAN_MAGIC 0x48545242u
#define PLAN_VERSION 6u

enum { FLAG_DETACH = 1, FLAG_KILL_ON_EOF = 2, FLAG_TTY_PROXY = 4, FLAG_RAW_TTY = 8, FLAG_MONITOR = 16 };

enum {
	OP_JOIN_NS = 1, OP_CLONE = 2,
	OP_PARENT_WRITE_PID = 10, OP_PARENT_WRITE_PROC = 11,
	OP_UNSHARE = 20, OP_SETHOSTNAME = 21, OP_SETDOMAINNAME = 22, OP_MOUNT = 23, OP_MKNOD = 24,
	OP_SYMLINK = 25, OP_MASK_PATH = 26, OP_READONLY_PATH = 27, OP_PIVOT_ROOT = 28, OP_CHROOT = 29,
	OP_WRITE_FILE = 30, OP_CHDIR = 31, OP_SETRLIMIT = 32, OP_SET_USER = 33, OP_CAPABILITIES = 34,
	OP_NO_NEW_PRIVS = 35, OP_SECCOMP = 36, OP_CLOSE_FDS = 37, OP_CONSOLE = 38, OP_SETSID = 39,
	OP_OPEN_EXEC_FIFO = 40, OP_EXEC = 41, OP_PDEATHSIG = 42, OP_UMASK = 43, OP_PERSONALITY = 45,
	OP_MKDIR = 47, OP_LINK_UP = 50, OP_MKFIFO = 51, OP_SETXATTR = 52, OP_WAIT_EXEC_FIFO = 53, OP_RUN_HOOK = 54, OP_NETLINK = 55,
	OP_MONITOR = 56, OP_MOUNT_SETATTR = 57, OP_CGROUP_DEVICE_FILTER = 58, OP_CHROOT_IN_PLACE = 59, OP_TMPCOPYUP = 60, OP_SCHEDULER = 61, OP_IOPRIO = 62,
};

/* The control socket: fd 3 unless the controller passes preserved fds there and says where it is. */
static int CTL_FD = 3;
#define MAX_FIELDS 16

struct field { uint32_t len; const char *data; };
struct op { uint32_t code; uint32_t nfields; struct field f[MAX_FIELDS]; };

/* Child -> helper records over the sync socket (SOCK_SEQPACKET keeps them whole). */
struct child_msg {
	char tag;              /* 'E' error, 'C' created (waiting on the exec fifo), 'R' about to exec, 'T' pty master attached */
	uint32_t index;
	int32_t err;
	char detail[240];
};

static struct op *ops;
static uint32_t nops, plan_flags;
static int sync_fd = -1;        /* in the child: its end of the sync socket */
static int console_sock = -1;   /* in the helper: connection to the --console-socket, if any */
static int exec_fifo_fd = -1;   /* O_PATH fd of the exec fifo, opened before pivot_root */
static pid_t host_pid;          /* the child's pid as the host sees it (sent with the release) */

/* ---- small utilities ---------------------------------------------------------------------- */

static void ctl_write(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0) return;
	if (n >= (int)sizeof buf) { n = sizeof buf - 1; buf[n - 1] = '\n'; }
	for (char *p = buf; p < buf + n - 1; p++) if (*p == '\n') *p = ' ';
	ssize_t off = 0;
	while (off < n) {
		ssize_t w = send(CTL_FD, buf + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) return;
		off += w;
	}
}

static int read_full(int fd, void *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t r = read(fd, (char *)buf + off, len - off);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) return -1;
		off += r;
	}
	return 0;
}

static const char *s(const struct op *o, unsigned i) { return i < o->nfields ? o->f[i].data : ""; }

static uint64_t u(const struct op *o, unsigned i)
{
	uint64_t v = 0;
	if (i < o->nfields && o->f[i].len == 8) memcpy(&v, o->f[i].data, 8);
	return v;
}

/* A list field: NUL-separated strings, returned as a NULL-terminated vector. */
static char **strv(const struct op *o, unsigned i)
{
	const struct field *f = &o->f[i];
	size_t n = 0;
	for (uint32_t k = 0; k < f->len; k++) if (f->data[k] == '\0') n++;
	char **v = calloc(n + 1, sizeof *v);
	if (!v) return NULL;
	const char *p = f->data;
	for (size_t k = 0; k < n; k++) { v[k] = (char *)p; p += strlen(p) + 1; }
	return v;
}

/* In the child: report a failed op and die. */
static void __attribute__((noreturn)) child_fail(uint32_t index, int err, const char *detail, int status)
{
	struct child_msg m = { .tag = 'E', .index = index, .err = err };
	if (detail) snprintf(m.detail, sizeof m.detail, "%s", detail);
	send(sync_fd, &m, sizeof m, MSG_NOSIGNAL);
	_exit(status);
}

static void child_tell(char tag)
{
	struct child_msg m = { .tag = tag };
	send(sync_fd, &m, sizeof m, MSG_NOSIGNAL);
}

/* ---- CVE-2019-5736: run from a sealed in-memory copy, so nothing can write to our binary --- */

static void ensure_sealed_copy(char **argv, char **envp)
{
	char link[64] = "";
	ssize_t n = readlink("/proc/self/exe", link, sizeof link - 1);
	int exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	/* Already a copy (our own re-exec, or a daemon that keeps one sealed copy and execs it for every
	 * helper): skip the copy only when the file really is a memfd nobody can change any more. */
	const int sealed = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
	if (n > 0 && exe >= 0 && strncmp(link, "/memfd:", 7) == 0) {
		int seals = fcntl(exe, F_GET_SEALS);
		if (seals >= 0 && (seals & sealed) == sealed) {
			close(exe);
			return;
		}
	}
	int mfd = memfd_create("berth-helper", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (exe < 0 || mfd < 0) goto fail;
	struct stat st;
	if (fstat(exe, &st) < 0) goto fail;
	for (off_t left = st.st_size; left > 0;) {
		ssize_t w = sendfile(mfd, exe, NULL, left);
		if (w <= 0) goto fail;
		left -= w;
	}
	if (fcntl(mfd, F_ADD_SEALS, sealed) < 0) goto fail;
	close(exe);
	fexecve(mfd, argv, envp);
fail:
	ctl_write("error -1 %d sealing a copy of the helper binary\n", errno);
	_exit(1);
}

/* ---- plan ---------------------------------------------------------------------------------- */

static char *plan_buf;

static int read_plan(void)
{
	uint32_t len;
	if (read_full(CTL_FD, &len, 4) < 0 || len < 16 || len > (64u << 20)) return -1;
	plan_buf = malloc(len);
	if (!plan_buf || read_full(CTL_FD, plan_buf, len) < 0) return -1;
	uint32_t hdr[4];
	memcpy(hdr, plan_buf, 16);
	if (hdr[0] != PLAN_MAGIC) { ctl_write("error -1 0 stale-helper magic\n"); return -2; }
	if (hdr[1] != PLAN_VERSION) { ctl_write("error -1 0 stale-helper version %u\n", PLAN_VERSION); return -2; }
	plan_flags = hdr[2];
	nops = hdr[3];
	ops = calloc(nops ? nops : 1, sizeof *ops);
	if (!ops) return -1;
	const char *p = plan_buf + 16, *end = plan_buf + len;
	for (uint32_t i = 0; i < nops; i++) {
		if (end - p < 8) return -1;
		memcpy(&ops[i].code, p, 4);
		memcpy(&ops[i].nfields, p + 4, 4);
		p += 8;
		if (ops[i].nfields > MAX_FIELDS) return -1;
		for (uint32_t k = 0; k < ops[i].nfields; k++) {
			uint32_t flen;
			if (end - p < 4) return -1;
			memcpy(&flen, p, 4);
			p += 4;
			if ((uint32_t)(end - p) < flen) return -1;
			ops[i].f[k].len = flen;
			ops[i].f[k].data = p;
			p += flen;
		}
	}
	return 0;
}

/* ---- paths inside the container root ------------------------------------------------------- */

static int openat2_in_root(int rootfd, const char *path)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	return syscall(SYS_openat2, rootfd, path, &how, sizeof how);
}

/*
 * Open `path` inside `root` with every symlink resolved inside root (so a hostile rootfs cannot
 * redirect a mount onto the host). create: 0 none, 1 make directories, 2 make the last one a file.
 */
static int open_in_root(const char *root, const char *path, int create)
{
	int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) return -1;
	int fd = openat2_in_root(rootfd, path);
	if (fd >= 0 || errno != ENOENT || !create) {
		int saved = errno;
		close(rootfd);
		errno = saved;
		return fd;
	}
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s", path);
	int cur = dup(rootfd);
	char *p = buf;
	while (*p == '/') p++;
	while (cur >= 0 && *p) {
		char *slash = strchr(p, '/');
		int last = 0;
		if (slash) *slash = '\0';
		if (!slash || slash[1] == '\0') last = 1;
		int next = openat2_in_root(rootfd, buf);
		if (next < 0 && errno == ENOENT) {
			int rc;
			if (last && create == 2) {
				rc = openat(cur, p, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
				if (rc >= 0) close(rc);
			} else {
				rc = mkdirat(cur, p, 0755);
			}
			if (rc < 0 && errno != EEXIST) { next = -1; }
			else next = openat2_in_root(rootfd, buf);
		}
		int saved = errno;
		close(cur);
		errno = saved;
		cur = next;
		if (!slash) break;
		*slash = '/';
		p = slash + 1;
		while (*p == '/') p++;
	}
	int saved = errno;
	close(rootfd);
	errno = saved;
	return cur;
}

/* Split into an O_PATH fd of the parent directory (created, inside root) and the last component. */
static int open_parent_in_root(const char *root, const char *path, const char **base)
{
	static char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash) { *base = path; return open(root, O_PATH | O_DIRECTORY | O_CLOEXEC); }
	*base = path + (slash - dir) + 1;
	if (slash == dir) return open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	*slash = '\0';
	return open_in_root(root, dir, 1);
}

static const char *fd_path(int fd)
{
	static char buf[64];
	snprintf(buf, sizeof buf, "/proc/self/fd/%d", fd);
	return buf;
}

/* Flags a bind remount must keep because the kernel locks them (e.g. in a user namespace). */
static unsigned long locked_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;
	if (statvfs(path, &sv) < 0) return 0;
	if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
	if (sv.f_flag & ST_RDONLY) f |= MS_RDONLY;
	if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
	return f;
}

/* ---- child ops -------------------------------------------------------------------------------- */

static int do_mount(const struct op *o)
{
	const char *src = s(o, 0), *root = s(o, 1), *target = s(o, 2), *fstype = s(o, 3), *data = s(o, 5);
	unsigned long flags = u(o, 4);
	int create = u(o, 6);
	int fd = -1;
	const char *where = target;
	if (*root) {
		fd = open_in_root(root, target, create);
		if (fd < 0) return -1;
		where = fd_path(fd);
	} else if (create) {
		/* only used for host-side paths the controller made itself */
		mkdir(target, 0755);
	}
	int rc = mount(*src ? src : NULL, where, *fstype ? fstype : NULL, flags, *data ? data : NULL);
	if (rc < 0 && errno == EPERM && (flags & MS_REMOUNT) && (flags & MS_BIND)) {
		unsigned long keep = locked_flags(where) & ~MS_RDONLY;
		rc = mount(NULL, where, NULL, flags | keep, NULL);
	}
	int saved = errno;
	if (fd >= 0) close(fd);
	errno = saved;
	return rc;
}

static int do_mask(const struct op *o)
{
	int fd = open_in_root(s(o, 0), s(o, 1), 0);
	if (fd < 0) return errno == ENOENT ? 0 : -1;
	struct stat st;
	int rc = fstat(fd, &st);
	if (rc == 0) {
		if (S_ISDIR(st.st_mode))
			rc = mount("tmpfs", fd_path(fd), "tmpfs", MS_RDONLY, "size=0");
		else
			rc = mount("/dev/null", fd_path(fd), NULL, MS_BIND, NULL);
	}
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

static int do_readonly(const struct op *o)
{
	int fd = open_in_root(s(o, 0), s(o, 1), 0);
	if (fd < 0) return errno == ENOENT ? 0 : -1;
	int rc = mount(fd_path(fd), fd_path(fd), NULL, MS_BIND | MS_REC, NULL);
	int saved = errno;
	close(fd);
	if (rc < 0) { errno = saved; return -1; }
	/* Re-open: the fd still names the directory under the new bind mount. */
	fd = open_in_root(s(o, 0), s(o, 1), 0);
	if (fd < 0) return -1;
	unsigned long keep = locked_flags(fd_path(fd));
	rc = mount(NULL, fd_path(fd), NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | keep, NULL);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

static int do_mknod(const struct op *o)
{
	const char *base;
	int dfd = open_parent_in_root(s(o, 0), s(o, 1), &base);
	if (dfd < 0) return -1;
	/* O_PATH dirfds can't be used with mknodat; reopen the directory for real. */
	int real = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(dfd);
	if (real < 0) return -1;
	int rc = mknodat(real, base, u(o, 2), makedev(u(o, 3), u(o, 4)));
	if (rc < 0 && errno == EEXIST) rc = 0;
	if (rc == 0) rc = fchownat(real, base, u(o, 5), u(o, 6), AT_SYMLINK_NOFOLLOW);
	if (rc == 0) rc = fchmodat(real, base, u(o, 2) & 07777, 0);
	int saved = errno;
	close(real);
	errno = saved;
	return rc;
}

static int do_symlink(const struct op *o)
{
	const char *base;
	int dfd = open_parent_in_root(s(o, 0), s(o, 2), &base);
	if (dfd < 0) return -1;
	int real = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(dfd);
	if (real < 0) return -1;
	int rc = symlinkat(s(o, 1), real, base);
	if (rc < 0 && errno == EEXIST) rc = 0;
	int saved = errno;
	close(real);
	errno = saved;
	return rc;
}

static int do_mkdir(const struct op *o)
{
	int fd = open_in_root(s(o, 0), s(o, 1), 1);
	if (fd < 0) return -1;
	int rc = chmod(fd_path(fd), u(o, 2));
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

static int do_pivot_root(const char *root)
{
	int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	int newroot = open(root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (oldroot < 0 || newroot < 0) return -1;
	if (fchdir(newroot) < 0) return -1;
	if (syscall(SYS_pivot_root, ".", ".") < 0) return -1;
	/* The old root is now stacked under ".": make it private and detach it. */
	if (fchdir(oldroot) < 0) return -1;
	if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0) return -1;
	if (umount2(".", MNT_DETACH) < 0) return -1;
	if (chdir("/") < 0) return -1;
	close(oldroot);
	close(newroot);
	return 0;
}

static int do_chroot(const char *root)
{
	if (chdir(root) < 0) return -1;
	if (mount(root, "/", NULL, MS_MOVE, NULL) < 0) return -1;
	if (chroot(".") < 0) return -1;
	return chdir("/");
}

static int do_write_file(const struct op *o)
{
	int fd = open(s(o, 0), O_WRONLY | O_CLOEXEC);
	if (fd < 0) return (errno == ENOENT && u(o, 2)) ? 0 : -1;
	const char *d = s(o, 1);
	ssize_t n = write(fd, d, strlen(d));
	int saved = errno;
	close(fd);
	errno = saved;
	return n < 0 ? -1 : 0;
}

static int do_set_user(const struct op *o)
{
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return -1;
	if (u(o, 2)) {
		const struct field *g = &o->f[3];
		size_t n = g->len / 4;
		gid_t *groups = calloc(n ? n : 1, sizeof *groups);
		if (!groups) return -1;
		for (size_t k = 0; k < n; k++) { uint32_t v; memcpy(&v, g->data + 4 * k, 4); groups[k] = v; }
		int rc = setgroups(n, groups);
		free(groups);
		if (rc < 0) return -1;
	}
	if (setresgid(u(o, 1), u(o, 1), u(o, 1)) < 0) return -1;
	if (setresuid(u(o, 0), u(o, 0), u(o, 0)) < 0) return -1;
	return prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
}

static int capset3(uint64_t eff, uint64_t perm, uint64_t inh)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2] = {
		{ .effective = (uint32_t)eff, .permitted = (uint32_t)perm, .inheritable = (uint32_t)inh },
		{ .effective = (uint32_t)(eff >> 32), .permitted = (uint32_t)(perm >> 32), .inheritable = (uint32_t)(inh >> 32) },
	};
	return syscall(SYS_capset, &h, d);
}

static int do_capabilities(const struct op *o)
{
	uint64_t bounding = u(o, 0), eff = u(o, 1), perm = u(o, 2), inh = u(o, 3), amb = u(o, 4);
	unsigned last = u(o, 5);
	/* After a uid change only the permitted set survives: raise it to effective so CAP_SETPCAP
	 * is usable for the bounding-set drops below. */
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct cur[2];
	if (syscall(SYS_capget, &h, cur) < 0) return -1;
	uint64_t curperm = cur[0].permitted | ((uint64_t)cur[1].permitted << 32);
	uint64_t curinh = cur[0].inheritable | ((uint64_t)cur[1].inheritable << 32);
	if (capset3(curperm, curperm, curinh) < 0) return -1;
	for (unsigned c = 0; c <= last; c++)
		if (!(bounding & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) return -1;
	if (capset3(eff, perm, inh) < 0) return -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -1;
	for (unsigned c = 0; c <= last; c++)
		if ((amb & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0) return -1;
	return 0;
}

static int send_fd(int sock, int fd, const char *name)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	memset(cbuf, 0, sizeof cbuf);
	struct iovec iov = { .iov_base = (void *)name, .iov_len = strlen(name) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

static int do_console(const struct op *o, uint32_t index)
{
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0) return -1;
	if (unlockpt(master) < 0) return -1;
	char slave_path[64];
	if (ptsname_r(master, slave_path, sizeof slave_path) != 0) return -1;
	struct winsize ws = { .ws_row = u(o, 2), .ws_col = u(o, 3) };
	if (ws.ws_row && ws.ws_col) ioctl(master, TIOCSWINSZ, &ws);
	int slave = open(slave_path, O_RDWR | O_NOCTTY);
	if (slave < 0) return -1;
	/* Both modes hand the master to the helper: with a console socket the helper sends it on, over
	 * the connection it made before joining any namespace or pivoting (the socket's path is a
	 * host path that the container cannot see). */
	{
		struct child_msg m = { .tag = 'T', .index = index };
		char cbuf[CMSG_SPACE(sizeof(int))];
		memset(cbuf, 0, sizeof cbuf);
		struct iovec iov = { .iov_base = &m, .iov_len = sizeof m };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &master, sizeof(int));
		if (sendmsg(sync_fd, &msg, MSG_NOSIGNAL) < 0) return -1;
	}
	close(master);
	/* /dev/console is the init's terminal, as in runc (the controller made the mount point); an exec's
	 * is not bound there: its pty goes away with it, and the next exec could not mount over the rest. */
	if (u(o, 4) && access("/dev/console", F_OK) == 0 && mount(slave_path, "/dev/console", NULL, MS_BIND, NULL) < 0) return -1;
	if (ioctl(slave, TIOCSCTTY, 0) < 0) return -1;
	for (int k = 0; k < 3; k++) if (dup2(slave, k) < 0) return -1;
	if (slave > 2) close(slave);
	return 0;
}

/* Resolve like execvp, in the container, so a missing or non-executable command is reported
 * before the exec fifo (create fails, not start), and names the file. */
static int resolve_exec(const char *file, char **envp, char *out, size_t outlen)
{
	struct stat st;
	if (strchr(file, '/')) {
		snprintf(out, outlen, "%s", file);
		if (stat(out, &st) < 0) return -1;
		if (S_ISDIR(st.st_mode) || access(out, X_OK) < 0) { errno = EACCES; return -1; }
		return 0;
	}
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (char **e = envp; e && *e; e++) if (strncmp(*e, "PATH=", 5) == 0) { path = *e + 5; break; }
	int seen_eacces = 0;
	const char *p = path;
	while (1) {
		const char *colon = strchr(p, ':');
		size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
		snprintf(out, outlen, "%.*s%s%s", (int)dlen, p, dlen ? "/" : "", file);
		if (stat(out, &st) == 0 && !S_ISDIR(st.st_mode)) {
			if (access(out, X_OK) == 0) return 0;
			seen_eacces = 1;
		}
		if (!colon) break;
		p = colon + 1;
	}
	snprintf(out, outlen, "%s", file);
	errno = seen_eacces ? EACCES : ENOENT;
	return -1;
}

static void wait_exec_fifo(uint32_t index)
{
	if (exec_fifo_fd < 0) return;
	child_tell('C');
	/* Blocks until `start` opens the fifo for reading. */
	int w = open(fd_path(exec_fifo_fd), O_WRONLY | O_CLOEXEC);
	if (w < 0 || write(w, "0", 1) != 1) child_fail(index, errno, "exec fifo", 1);
	close(w);
	close(exec_fifo_fd);
	exec_fifo_fd = -1;
}

/*
 * An OCI hook run from inside the container's namespaces (createContainer, startContainer): the
 * state JSON on stdin, with "@PID@" replaced by the container's host pid; killed after the timeout.
 */
static void run_hook(const struct op *o, uint32_t index)
{
	char **argv = strv(o, 1), **envp = strv(o, 2);
	const char *tmpl = s(o, 3);
	unsigned timeout = u(o, 4);
	int in[2];
	if (pipe2(in, O_CLOEXEC) < 0) child_fail(index, errno, "hook stdin", 1);
	pid_t pid = fork();
	if (pid < 0) child_fail(index, errno, "fork hook", 1);
	if (pid == 0) {
		dup2(in[0], 0);
		execve(s(o, 0), argv, envp);
		_exit(127);
	}
	close(in[0]);
	signal(SIGPIPE, SIG_IGN);
	const char *mark = strstr(tmpl, "@PID@");
	if (mark) {
		char num[24];
		int n = snprintf(num, sizeof num, "%d", host_pid);
		if (write(in[1], tmpl, mark - tmpl) < 0 || write(in[1], num, n) < 0 || write(in[1], mark + 5, strlen(mark + 5)) < 0) { /* the hook may ignore stdin */ }
	} else if (write(in[1], tmpl, strlen(tmpl)) < 0) { /* the hook may ignore stdin */ }
	close(in[1]);
	signal(SIGPIPE, SIG_DFL);
	int status;
	struct timespec tick = { 0, 5 * 1000 * 1000 };
	for (unsigned long waited = 0;; waited += 5) {
		pid_t r = waitpid(pid, &status, timeout ? WNOHANG : 0);
		if (r == pid) break;
		if (r < 0 && errno != EINTR) child_fail(index, errno, "wait for hook", 1);
		if (timeout && waited >= timeout * 1000UL) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			child_fail(index, ETIMEDOUT, "timed out", 1);
		}
		nanosleep(&tick, NULL);
	}
	char why[64];
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
	if (WIFEXITED(status)) snprintf(why, sizeof why, "exited with status %d", WEXITSTATUS(status));
	else snprintf(why, sizeof why, "killed by signal %d", WTERMSIG(status));
	child_fail(index, ECHILD, why, 1);
}

static void __attribute__((noreturn)) do_exec(const struct op *o, uint32_t index)
{
	char **argv = strv(o, 1), **envp = strv(o, 2);
	char path[PATH_MAX];
	if (resolve_exec(s(o, 0), envp, path, sizeof path) < 0)
		child_fail(index, errno, path, errno == ENOENT ? 127 : 126);
	wait_exec_fifo(index);
	child_tell('R');
	execve(path, argv, envp);
	child_fail(index, errno, path, errno == ENOENT ? 127 : 126);
}

static int do_link_up(const char *name)
{
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0) return -1;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	int rc = ioctl(sock, SIOCGIFFLAGS, &ifr);
	if (rc == 0) { ifr.ifr_flags |= IFF_UP; rc = ioctl(sock, SIOCSIFFLAGS, &ifr); }
	int saved = errno;
	close(sock);
	errno = saved;
	return rc;
}

static int do_seccomp(const struct op *o)
{
	struct sock_fprog prog = { .len = o->f[0].len / 8, .filter = (struct sock_filter *)o->f[0].data };
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, (unsigned)u(o, 1), &prog);
}

/* Copy the entries of directory `from` into directory `to` (real fds), keeping owners, modes and times. */
static int copy_tree(int from, int to)
{
	int dfd = dup(from);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) return -1;
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d))) {
		const char *n = e->d_name;
		if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
		struct stat st;
		if ((rc = fstatat(from, n, &st, AT_SYMLINK_NOFOLLOW)) < 0) break;
		if (S_ISDIR(st.st_mode)) {
			int a = -1, b = -1;
			rc = mkdirat(to, n, 0700);
			if (rc == 0) a = openat(from, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (a >= 0) b = openat(to, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			rc = rc == 0 && b >= 0 ? copy_tree(a, b) : -1;
			if (a >= 0) close(a);
			if (b >= 0) close(b);
		} else if (S_ISREG(st.st_mode)) {
			int a = openat(from, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			int b = a < 0 ? -1 : openat(to, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
			rc = b < 0 ? -1 : 0;
			for (off_t left = st.st_size; rc == 0 && left > 0;) {
				ssize_t w = sendfile(b, a, NULL, left);
				if (w <= 0) rc = -1; else left -= w;
			}
			if (a >= 0) close(a);
			if (b >= 0) close(b);
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t len = readlinkat(from, n, target, sizeof target - 1);
			if (len < 0) rc = -1;
			else { target[len] = '\0'; rc = symlinkat(target, to, n); }
		} else {
			rc = mknodat(to, n, st.st_mode, st.st_rdev);
		}
		if (rc == 0) rc = fchownat(to, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
		if (rc == 0 && !S_ISLNK(st.st_mode)) rc = fchmodat(to, n, st.st_mode & 07777, 0);
		struct timespec times[2] = { st.st_atim, st.st_mtim };
		if (rc == 0) rc = utimensat(to, n, times, AT_SYMLINK_NOFOLLOW);
	}
	int saved = errno;
	closedir(d);
	errno = saved;
	return rc;
}

/*
 * runc's "tmpcopyup": mount the tmpfs over the directory, then fill it from an fd opened on the
 * directory before (it still reads what the tmpfs now covers). Nothing runs in the container yet.
 * A read-only tmpfs is made writable for the copy and remounted read-only after.
 */
static int do_tmpcopyup(const struct op *o)
{
	unsigned long flags = u(o, 2);
	const char *data = s(o, 3);
	int target = open_in_root(s(o, 0), s(o, 1), 1);
	if (target < 0) return -1;
	int old = openat(target, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), fresh = -1, rc = -1;
	if (old >= 0 && mount("tmpfs", fd_path(target), "tmpfs", flags & ~MS_RDONLY, *data ? data : NULL) == 0) {
		close(target);
		target = open_in_root(s(o, 0), s(o, 1), 0);
		fresh = target < 0 ? -1 : openat(target, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		rc = fresh < 0 ? -1 : copy_tree(old, fresh);
		if (rc == 0 && (flags & MS_RDONLY)) rc = mount(NULL, fd_path(target), NULL, MS_REMOUNT | flags, *data ? data : NULL);
	}
	int saved = errno;
	if (old >= 0) close(old);
	if (fresh >= 0) close(fresh);
	if (target >= 0) close(target);
	errno = saved;
	return rc;
}

/* process.scheduler: sched_setattr(2) on this process; execve keeps it. */
static int do_scheduler(const struct op *o)
{
	struct { uint32_t size, policy; uint64_t flags; int32_t nice; uint32_t priority; uint64_t runtime, deadline, period; } attr = {
		.size = sizeof attr, .policy = u(o, 0), .flags = u(o, 1), .nice = (int32_t)u(o, 2), .priority = u(o, 3),
		.runtime = u(o, 4), .deadline = u(o, 5), .period = u(o, 6),
	};
	return syscall(SYS_sched_setattr, 0, &attr, 0);
}

/* Recursive mount attributes (rro, rnosuid, ...) with mount_setattr(AT_RECURSIVE). */
static int do_mount_setattr(const struct op *o)
{
	int fd = open_in_root(s(o, 0), s(o, 1), 0);
	if (fd < 0) return -1;
	struct { uint64_t set, clr, propagation, userns; } attr = { .set = u(o, 2), .clr = u(o, 3) };
	int rc = syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* Sets an xattr on a path inside root without following a final symlink (layer unpacking). */
static int do_setxattr(const struct op *o)
{
	int rootfd = open(s(o, 0), O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) return -1;
	struct open_how how = { .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	int fd = syscall(SYS_openat2, rootfd, s(o, 1), &how, sizeof how);
	int saved = errno;
	close(rootfd);
	if (fd < 0) { errno = saved; return -1; }
	/* The /proc/self/fd link names the inode itself, even a symlink's. */
	int rc = setxattr(fd_path(fd), s(o, 2), o->f[3].data, o->f[3].len, 0);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* ---- netlink: send one prepared rtnetlink request from a socket in a given network namespace ---- */

static char nl_ns_path[PATH_MAX];
static int nl_sock = -1, nl_ioctl_sock = -1;

/* Sockets stay in the namespace they were made in: make them there, then go back. */
static int nl_open(const char *netns, pid_t child)
{
	char path[PATH_MAX];
	if (strcmp(netns, "@CHILD@") == 0) snprintf(path, sizeof path, "/proc/%d/ns/net", child);
	else snprintf(path, sizeof path, "%s", netns);
	if (nl_sock >= 0 && strcmp(path, nl_ns_path) == 0) return 0;
	if (nl_sock >= 0) { close(nl_sock); close(nl_ioctl_sock); nl_sock = nl_ioctl_sock = -1; }
	int self = -1, target = -1, saved;
	if (path[0]) {
		self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		target = open(path, O_RDONLY | O_CLOEXEC);
		if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) < 0) goto fail;
	}
	nl_sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	nl_ioctl_sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	saved = errno;
	if (self >= 0 && setns(self, CLONE_NEWNET) < 0) _exit(1); /* never stay in the wrong namespace */
	if (self >= 0) close(self);
	if (target >= 0) close(target);
	if (nl_sock < 0 || nl_ioctl_sock < 0) { errno = saved; return -1; }
	snprintf(nl_ns_path, sizeof nl_ns_path, "%s", path);
	return 0;
fail:
	saved = errno;
	if (self >= 0) close(self);
	if (target >= 0) close(target);
	errno = saved;
	return -1;
}

static int do_netlink(const struct op *o, pid_t child)
{
	if (nl_open(s(o, 0), child) < 0) return -1;
	uint32_t len = o->f[1].len;
	if (len < sizeof(struct nlmsghdr) || len > 8192) { errno = EINVAL; return -1; }
	static uint32_t seq;
	char msg[8192] __attribute__((aligned(8)));
	memcpy(msg, o->f[1].data, len);
	uint64_t pid_off = u(o, 2), idx_off = u(o, 4);
	if (pid_off && pid_off + 4 <= len) { uint32_t v = (uint32_t)child; memcpy(msg + pid_off, &v, 4); }
	const char *ifname = s(o, 3);
	if (ifname[0] && idx_off && idx_off + 4 <= len) {
		struct ifreq ifr;
		memset(&ifr, 0, sizeof ifr);
		snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
		if (ioctl(nl_ioctl_sock, SIOCGIFINDEX, &ifr) < 0) return -1;
		uint32_t v = (uint32_t)ifr.ifr_ifindex;
		memcpy(msg + idx_off, &v, 4);
	}
	struct nlmsghdr *h = (struct nlmsghdr *)msg;
	h->nlmsg_len = len;
	h->nlmsg_seq = ++seq;
	h->nlmsg_flags |= NLM_F_ACK;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	if (sendto(nl_sock, msg, len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) return -1;
	for (;;) {
		char buf[8192] __attribute__((aligned(8)));
		ssize_t n = recv(nl_sock, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) return -1;
		for (struct nlmsghdr *r = (struct nlmsghdr *)buf; NLMSG_OK(r, (size_t)n); r = NLMSG_NEXT(r, n)) {
			if (r->nlmsg_seq != seq || r->nlmsg_type != NLMSG_ERROR) continue;
			int err = -((struct nlmsgerr *)NLMSG_DATA(r))->error;
			if (err == 0 || (uint64_t)err == u(o, 5)) return 0;
			errno = err;
			return -1;
		}
	}
}

/* Detach every device program attached directly to cgroup `cg` except `keep`. */
static int detach_other_device_programs(int cg, int keep, char *detail, size_t detail_len)
{
	struct bpf_prog_info info;
	union bpf_attr a;
	memset(&info, 0, sizeof info);
	memset(&a, 0, sizeof a);
	a.info.bpf_fd = keep;
	a.info.info_len = sizeof info;
	a.info.info = (uint64_t)(uintptr_t)&info;
	if (syscall(SYS_bpf, BPF_OBJ_GET_INFO_BY_FD, &a, sizeof a) < 0) { snprintf(detail, detail_len, "BPF_OBJ_GET_INFO_BY_FD"); return -1; }
	uint32_t ids[64];
	memset(&a, 0, sizeof a);
	a.query.target_fd = cg;
	a.query.attach_type = BPF_CGROUP_DEVICE;
	a.query.prog_ids = (uint64_t)(uintptr_t)ids;
	a.query.prog_cnt = sizeof ids / sizeof ids[0];
	if (syscall(SYS_bpf, BPF_PROG_QUERY, &a, sizeof a) < 0) { snprintf(detail, detail_len, "BPF_PROG_QUERY"); return -1; }
	uint32_t n = a.query.prog_cnt;
	for (uint32_t k = 0; k < n && k < sizeof ids / sizeof ids[0]; k++) {
		if (ids[k] == info.id) continue;
		memset(&a, 0, sizeof a);
		a.prog_id = ids[k];
		int fd = syscall(SYS_bpf, BPF_PROG_GET_FD_BY_ID, &a, sizeof a);
		if (fd < 0 && errno == ENOENT) continue; /* detached meanwhile */
		if (fd < 0) { snprintf(detail, detail_len, "BPF_PROG_GET_FD_BY_ID"); return -1; }
		memset(&a, 0, sizeof a);
		a.target_fd = cg;
		a.attach_bpf_fd = fd;
		a.attach_type = BPF_CGROUP_DEVICE;
		int rc = syscall(SYS_bpf, BPF_PROG_DETACH, &a, sizeof a);
		int e = errno;
		close(fd);
		if (rc < 0 && e != ENOENT) { snprintf(detail, detail_len, "BPF_PROG_DETACH"); errno = e; return -1; }
	}
	return 0;
}

/* cgroup v2 device rules: load the plan's BPF_PROG_TYPE_CGROUP_DEVICE program and attach it to the
 * cgroup dir (BPF_F_ALLOW_MULTI, so programs of parent cgroups still apply). The attachment holds the
 * program; it goes away when the cgroup is removed. With `replace` (an update) the device programs
 * attached to the dir before are detached afterwards, as runc does: never a moment without a filter.
 * On failure `detail` names the step (and the verifier's first line for a rejected program). */
static int do_device_filter(const struct op *o, char *detail, size_t detail_len)
{
	uint32_t len = o->nfields > 1 ? o->f[1].len : 0;
	if (len == 0 || len % 8) { snprintf(detail, detail_len, "BPF_PROG_LOAD"); errno = EINVAL; return -1; }
	static char log[4096];
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	a.insns = (uint64_t)(uintptr_t)o->f[1].data;
	a.insn_cnt = len / 8;
	a.license = (uint64_t)(uintptr_t)"Apache";
	int prog = syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a);
	if (prog < 0 && (errno == EINVAL || errno == EACCES)) {
		/* Again with the verifier's log, only to say why. */
		int saved = errno;
		log[0] = '\0';
		a.log_buf = (uint64_t)(uintptr_t)log;
		a.log_size = sizeof log;
		a.log_level = 1;
		if (syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a) >= 0) { errno = EPROTO; return -1; } /* cannot happen */
		log[sizeof log - 1] = '\0';
		char *nl = strchr(log, '\n');
		if (nl) *nl = '\0';
		snprintf(detail, detail_len, "BPF_PROG_LOAD %s", log);
		errno = saved;
		return -1;
	}
	if (prog < 0) { snprintf(detail, detail_len, "BPF_PROG_LOAD"); return -1; }
	int cg = open(s(o, 0), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0) { int e = errno; close(prog); snprintf(detail, detail_len, "open"); errno = e; return -1; }
	memset(&a, 0, sizeof a);
	a.target_fd = cg;
	a.attach_bpf_fd = prog;
	a.attach_type = BPF_CGROUP_DEVICE;
	a.attach_flags = BPF_F_ALLOW_MULTI;
	int rc = syscall(SYS_bpf, BPF_PROG_ATTACH, &a, sizeof a);
	if (rc < 0) snprintf(detail, detail_len, "BPF_PROG_ATTACH");
	else if (u(o, 2)) rc = detach_other_device_programs(cg, prog, detail, detail_len);
	int e = errno;
	close(cg);
	close(prog);
	errno = e;
	return rc;
}

/* One op that needs no knowledge of the clone: shared by the container child and the no-clone mode. */
static int run_simple_op(const struct op *o)
{
	switch (o->code) {
	case OP_MOUNT: return do_mount(o);
	case OP_MKNOD: return do_mknod(o);
	case OP_SYMLINK: return do_symlink(o);
	case OP_MKDIR: return do_mkdir(o);
	case OP_WRITE_FILE: return do_write_file(o);
	case OP_SETXATTR: return do_setxattr(o);
	case OP_MKFIFO: return mkfifo(s(o, 0), u(o, 1));
	case OP_NETLINK: return do_netlink(o, 0);
	default: errno = EINVAL; return -1;
	}
}

static void __attribute__((noreturn)) run_child(uint32_t first)
{
	char go[1 + sizeof(pid_t)];
	if (read(sync_fd, go, sizeof go) != (ssize_t)sizeof go) _exit(1); /* the helper died before releasing us */
	memcpy(&host_pid, go + 1, sizeof(pid_t));
	for (uint32_t i = first; i < nops; i++) {
		const struct op *o = &ops[i];
		int rc = 0;
		switch (o->code) {
		case OP_PARENT_WRITE_PID: case OP_PARENT_WRITE_PROC: case OP_NETLINK: continue;
		case OP_UNSHARE: rc = unshare(u(o, 0)); break;
		case OP_SETHOSTNAME: rc = sethostname(s(o, 0), strlen(s(o, 0))); break;
		case OP_SETDOMAINNAME: rc = setdomainname(s(o, 0), strlen(s(o, 0))); break;
		case OP_MOUNT: rc = do_mount(o); break;
		case OP_MKNOD: rc = do_mknod(o); break;
		case OP_SYMLINK: rc = do_symlink(o); break;
		case OP_MASK_PATH: rc = do_mask(o); break;
		case OP_READONLY_PATH: rc = do_readonly(o); break;
		case OP_PIVOT_ROOT: rc = do_pivot_root(s(o, 0)); break;
		case OP_CHROOT: rc = do_chroot(s(o, 0)); break;
		/* In the runtime's own mount namespace: nothing may be moved onto its "/". */
		case OP_CHROOT_IN_PLACE: rc = chroot(s(o, 0)) < 0 ? -1 : chdir("/"); break;
		case OP_WRITE_FILE: rc = do_write_file(o); break;
		case OP_CHDIR: {
			rc = chdir(s(o, 0));
			char cwd[PATH_MAX];
			/* runc CVE-2024-21626: a cwd outside the root reads as "(unreachable)..." or fails. */
			if (rc == 0 && (!getcwd(cwd, sizeof cwd) || cwd[0] != '/'))
				child_fail(i, EPERM, "current working directory is outside of the container root", 1);
			break;
		}
		case OP_SETRLIMIT: {
			struct rlimit rl = { .rlim_cur = u(o, 1), .rlim_max = u(o, 2) };
			rc = setrlimit(u(o, 0), &rl);
			break;
		}
		case OP_SET_USER: rc = do_set_user(o); break;
		case OP_CAPABILITIES: rc = do_capabilities(o); break;
		case OP_NO_NEW_PRIVS: rc = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); break;
		case OP_SECCOMP: rc = do_seccomp(o); break;
		case OP_CLOSE_FDS: rc = syscall(SYS_close_range, (unsigned)u(o, 0), ~0U, CLOSE_RANGE_CLOEXEC); break;
		case OP_CONSOLE: rc = do_console(o, i); break;
		case OP_SETSID: rc = setsid() < 0 ? -1 : 0; break;
		case OP_OPEN_EXEC_FIFO:
			exec_fifo_fd = open(s(o, 0), O_PATH | O_CLOEXEC);
			rc = exec_fifo_fd < 0 ? -1 : 0;
			break;
		case OP_EXEC: do_exec(o, i);
		case OP_PDEATHSIG: rc = prctl(PR_SET_PDEATHSIG, u(o, 0), 0, 0, 0); break;
		case OP_UMASK: umask(u(o, 0)); break;
		case OP_PERSONALITY: rc = personality(u(o, 0)) < 0 ? -1 : 0; break;
		case OP_MKDIR: rc = do_mkdir(o); break;
		case OP_LINK_UP: rc = do_link_up(s(o, 0)); break;
		case OP_SETXATTR: rc = do_setxattr(o); break;
		case OP_WAIT_EXEC_FIFO: wait_exec_fifo(i); break;
		case OP_MOUNT_SETATTR: rc = do_mount_setattr(o); break;
		case OP_TMPCOPYUP: rc = do_tmpcopyup(o); break;
		case OP_SCHEDULER: rc = do_scheduler(o); break;
		case OP_IOPRIO: rc = syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, (int)u(o, 0)); break;
		case OP_RUN_HOOK: run_hook(o, i); break;
		default: child_fail(i, EINVAL, "unknown op", 1);
		}
		if (rc < 0) child_fail(i, errno, NULL, 1);
	}
	child_fail(nops, EINVAL, "plan has no exec step", 1);
}

/* ---- the helper (parent) ------------------------------------------------------------------- */

static pid_t child;
static struct termios saved_termios;
static int termios_saved;

static void restore_terminal(void)
{
	if (termios_saved) tcsetattr(0, TCSANOW, &saved_termios);
}

static int ctl_read_line(char *buf, size_t len)
{
	size_t off = 0;
	while (off + 1 < len) {
		ssize_t r = read(CTL_FD, buf + off, 1);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) return -1;
		if (buf[off] == '\n') break;
		off++;
	}
	buf[off] = '\0';
	return 0;
}

static int recv_child_msg(struct child_msg *m, int *fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = m, .iov_len = sizeof *m };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	ssize_t r;
	do r = recvmsg(sync_fd, &msg, MSG_CMSG_CLOEXEC); while (r < 0 && errno == EINTR);
	if (r <= 0) return -1;
	*fd = -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (c && c->cmsg_type == SCM_RIGHTS) memcpy(fd, CMSG_DATA(c), sizeof(int));
	return 0;
}

static void copy_once(int from, int to, int *open_flag)
{
	char buf[16384];
	ssize_t r = read(from, buf, sizeof buf);
	if (r <= 0) { if (r == 0 || errno != EINTR) *open_flag = 0; return; }
	for (ssize_t off = 0; off < r;) {
		ssize_t w = write(to, buf + off, r - off);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) return;
		off += w;
	}
}

static void set_size_from_stdin(int master)
{
	struct winsize ws;
	if (master >= 0 && ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
}

static int supervise(void)
{
	sigset_t mask;
	sigemptyset(&mask);
	int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
	for (size_t k = 0; k < sizeof forwarded / sizeof *forwarded; k++) sigaddset(&mask, forwarded[k]);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGWINCH);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);

	int master = -1, sync_open = 1, ctl_open = 1, stdin_open = 1, master_open = 0, failed = 0;
	int exited = 0, status = 0;
	/* A child that ended before SIGCHLD was blocked above sent a signal that was discarded: look.
	 * Not when detached: that exit belongs to the engine's subreaper (see below). */
	if (!(plan_flags & FLAG_DETACH) && waitpid(child, &status, WNOHANG) == child) exited = 1;
	/* Runs until the child is reaped, its sync socket is drained (so "started" or its error is
	 * always reported before "exit"), and the pty has nothing more to say. */
	while (!exited || master_open || sync_open) {
		struct pollfd p[5];
		int n = 0, i_sync = -1, i_ctl = -1, i_sig = -1, i_master = -1, i_stdin = -1;
		if (sync_open) { i_sync = n; p[n++] = (struct pollfd){ .fd = sync_fd, .events = POLLIN }; }
		if (ctl_open) { i_ctl = n; p[n++] = (struct pollfd){ .fd = CTL_FD, .events = POLLIN }; }
		/* Detached and healthy: never reap the child. It may exit before we see the sync socket's
		 * EOF (exec), and its exit status belongs to the engine's subreaper (containerd-shim,
		 * conmon) that inherits it when we exit; reaping it here loses that exit for good. */
		int detached = (plan_flags & FLAG_DETACH) && !failed;
		if (!exited && !detached) { i_sig = n; p[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN }; }
		if (master_open) { i_master = n; p[n++] = (struct pollfd){ .fd = master, .events = POLLIN }; }
		if (master_open && stdin_open && !exited) { i_stdin = n; p[n++] = (struct pollfd){ .fd = 0, .events = POLLIN }; }
		/* After the child is gone, drain the pty without blocking forever on a held-open slave. */
		if (poll(p, n, exited ? 100 : -1) < 0) { if (errno == EINTR) continue; break; }
		if (exited && i_master >= 0 && !(p[i_master].revents) && !sync_open) break;
		if (i_sync >= 0 && p[i_sync].revents) {
			struct child_msg m;
			int fd;
			if (recv_child_msg(&m, &fd) < 0) {
				sync_open = 0;
				if (!failed) ctl_write("started\n");
				/* Monitor mode: from here on the helper outlives its controller (native/monitor.c). */
				if (!failed && (plan_flags & FLAG_MONITOR)) {
					free(ops); /* the plan is done with: a long-lived monitor keeps no copy */
					free(plan_buf);
					return monitor_run(child, exited, status, master, sfd, CTL_FD);
				}
				if (!failed && (plan_flags & FLAG_DETACH)) return 0;
			} else if (m.tag == 'E') {
				failed = 1;
				m.detail[sizeof m.detail - 1] = '\0';
				ctl_write("error %u %d %s\n", m.index, m.err, m.detail);
			} else if (m.tag == 'T' && fd >= 0 && console_sock >= 0) {
				/* socket mode: pass the master on, then forget it */
				if (send_fd(console_sock, fd, "/dev/ptmx") < 0) {
					failed = 1;
					ctl_write("error %u %d\n", m.index, errno);
					kill(child, SIGKILL);
				}
				close(fd);
				close(console_sock);
				console_sock = -1;
			} else if (m.tag == 'T' && fd >= 0) {
				master = fd;
				master_open = !(plan_flags & FLAG_MONITOR); /* the monitor reads it once started */
				if (isatty(0)) {
					set_size_from_stdin(master);
					if ((plan_flags & FLAG_RAW_TTY) && tcgetattr(0, &saved_termios) == 0) {
						struct termios raw = saved_termios;
						cfmakeraw(&raw);
						termios_saved = 1;
						tcsetattr(0, TCSANOW, &raw);
					}
				}
			} else if (m.tag == 'C') {
				ctl_write("created\n");
				if (plan_flags & FLAG_DETACH) return 0;
			}
		}
		if (i_ctl >= 0 && p[i_ctl].revents) {
			char line[128];
			if (ctl_read_line(line, sizeof line) < 0) {
				ctl_open = 0;
				if ((plan_flags & FLAG_KILL_ON_EOF) && !exited) kill(child, SIGKILL);
			} else {
				unsigned rows, cols;
				int sig;
				if (sscanf(line, "resize %u %u", &rows, &cols) == 2 && master >= 0) {
					struct winsize ws = { .ws_row = rows, .ws_col = cols };
					ioctl(master, TIOCSWINSZ, &ws);
				} else if (sscanf(line, "signal %d", &sig) == 1) {
					kill(child, sig);
				}
			}
		}
		if (i_sig >= 0 && p[i_sig].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) == sizeof si) {
				if (si.ssi_signo == SIGWINCH) set_size_from_stdin(master);
				else if (si.ssi_signo != SIGCHLD) kill(child, si.ssi_signo);
			}
			if (waitpid(child, &status, WNOHANG) == child) exited = 1;
		}
		/* A detached child that failed is ours to reap again; its SIGCHLD may have come too early. */
		if (failed && !exited && waitpid(child, &status, WNOHANG) == child) exited = 1;
		if (i_stdin >= 0 && p[i_stdin].revents) copy_once(0, master, &stdin_open);
		if (i_master >= 0 && p[i_master].revents) copy_once(master, 1, &master_open);
	}
	restore_terminal();
	if (!exited) waitpid(child, &status, 0);
	if (WIFSIGNALED(status)) ctl_write("exit 0 %d\n", WTERMSIG(status));
	else ctl_write("exit %d 0\n", WEXITSTATUS(status));
	return 0;
}

int main(int argc, char **argv, char **envp)
{
	if (argc > 1) CTL_FD = atoi(argv[1]);
	if (fcntl(CTL_FD, F_GETFD) < 0) {
		fprintf(stderr, "berth-helper: run by Berth only (expects its control socket on fd 3)\n");
		return 2;
	}
	ensure_sealed_copy(argv, envp);
	int rc = read_plan();
	if (rc == -1) { ctl_write("error -1 %d reading the plan\n", EPROTO); return 1; }
	if (rc < 0) return 1;

	/* A plan without a clone step is a batch of filesystem ops for the helper itself (e.g. the
	 * device nodes and xattrs of an image layer, which Node cannot make). */
	int has_clone = 0;
	for (uint32_t k = 0; k < nops; k++) if (ops[k].code == OP_CLONE) has_clone = 1;
	if (!has_clone) {
		for (uint32_t k = 0; k < nops; k++) {
			char detail[256] = "";
			int rc = ops[k].code == OP_CGROUP_DEVICE_FILTER ? do_device_filter(&ops[k], detail, sizeof detail) : run_simple_op(&ops[k]);
			if (rc < 0) { ctl_write("error %u %d %s\n", k, errno, detail); return 1; }
		}
		ctl_write("done\n");
		return 0;
	}

	/* Files the parent writes the child's pid into are opened now, before any setns can change
	 * what their paths mean. */
	int *pre = calloc(nops ? nops : 1, sizeof *pre);
	if (!pre) return 1;
	uint32_t i = 0;
	for (uint32_t k = 0; k < nops; k++) {
		pre[k] = -1;
		if (ops[k].code == OP_PARENT_WRITE_PID) {
			pre[k] = open(s(&ops[k], 0), O_WRONLY | O_CLOEXEC);
			if (pre[k] < 0) { ctl_write("error %u %d\n", k, errno); return 1; }
		}
	}
	/* The console socket is a host path: connect now, before setns/pivot_root change what it means. */
	for (uint32_t k = 0; k < nops; k++) {
		if (ops[k].code != OP_CONSOLE || u(&ops[k], 0) != 2) continue;
		struct sockaddr_un addr = { .sun_family = AF_UNIX };
		snprintf(addr.sun_path, sizeof addr.sun_path, "%s", s(&ops[k], 1));
		console_sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (console_sock < 0 || connect(console_sock, (struct sockaddr *)&addr, sizeof addr) < 0) {
			ctl_write("error %u %d\n", k, errno);
			return 1;
		}
		break;
	}
	for (; i < nops && ops[i].code != OP_CLONE; i++) {
		if (ops[i].code == OP_CGROUP_DEVICE_FILTER) {
			/* Before the child exists, so nothing runs in the cgroup unfiltered. */
			char detail[256] = "";
			if (do_device_filter(&ops[i], detail, sizeof detail) < 0) { ctl_write("error %u %d %s\n", i, errno, detail); return 1; }
			continue;
		}
		if (ops[i].code == OP_MONITOR) {
			const struct op *o = &ops[i];
			struct monitor_config mc = { s(o, 0), u(o, 1), u(o, 2), s(o, 3), s(o, 4), u(o, 5) != 0, (plan_flags & FLAG_TTY_PROXY) != 0 };
			if (monitor_prepare(&mc) < 0) { ctl_write("error %u %d\n", i, errno); return 1; }
			continue;
		}
		if (ops[i].code == OP_MKFIFO) {
			/* chmod: the mode must not depend on our umask (0622 lets a non-root init open it). */
			if (mkfifo(s(&ops[i], 0), u(&ops[i], 1)) < 0 || chmod(s(&ops[i], 0), u(&ops[i], 1)) < 0) {
				ctl_write("error %u %d\n", i, errno);
				return 1;
			}
			continue;
		}
		if (ops[i].code != OP_JOIN_NS) { ctl_write("error %u %d op not allowed before clone\n", i, EINVAL); return 1; }
		int fd = open(s(&ops[i], 0), O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, u(&ops[i], 1)) < 0) { ctl_write("error %u %d\n", i, errno); return 1; }
		close(fd);
	}
	if (i == nops) { ctl_write("error -1 %d plan has no clone step\n", EINVAL); return 1; }
	uint32_t clone_index = i;

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) { ctl_write("error %u %d\n", i, errno); return 1; }
	child = syscall(SYS_clone, (unsigned long)u(&ops[i], 0) | SIGCHLD, NULL, NULL, NULL, NULL);
	if (child < 0) { ctl_write("error %u %d\n", i, errno); return 1; }
	if (child == 0) {
		close(sv[0]);
		close(CTL_FD);
		if (console_sock >= 0) close(console_sock);
		for (uint32_t k = 0; k < nops; k++) if (pre[k] >= 0) close(pre[k]);
		sync_fd = sv[1];
		if (plan_flags & FLAG_MONITOR) monitor_child();
		run_child(clone_index + 1);
	}
	close(sv[1]);
	sync_fd = sv[0];
	/* Nothing in the container may ptrace or open /proc/<pid>/ files of the helper. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

	for (uint32_t k = clone_index + 1; k < nops; k++) {
		const struct op *o = &ops[k];
		int ok = 0;
		if (o->code == OP_PARENT_WRITE_PID) {
			char num[32];
			int len = snprintf(num, sizeof num, "%d", child);
			ok = write(pre[k], num, len) == len;
		} else if (o->code == OP_PARENT_WRITE_PROC) {
			char path[128];
			snprintf(path, sizeof path, "/proc/%d/%s", child, s(o, 0));
			int fd = open(path, O_WRONLY | O_CLOEXEC);
			const char *d = s(o, 1);
			ok = fd >= 0 && write(fd, d, strlen(d)) == (ssize_t)strlen(d);
			if (fd >= 0) close(fd);
		} else if (o->code == OP_NETLINK) {
			ok = do_netlink(o, child) == 0;
		} else continue;
		if (!ok) {
			ctl_write("error %u %d\n", k, errno);
			kill(child, SIGKILL);
			waitpid(child, NULL, 0);
			return 1;
		}
		close(pre[k]);
	}

	/* A socket keeps its namespace alive: the container's must end with the container. */
	if (nl_sock >= 0) { close(nl_sock); close(nl_ioctl_sock); nl_sock = nl_ioctl_sock = -1; }
	ctl_write("pid %d\n", child);
	char line[64];
	if (ctl_read_line(line, sizeof line) < 0 || strcmp(line, "go") != 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		return 1;
	}
	char go[1 + sizeof(pid_t)] = { 'g' };
	memcpy(go + 1, &child, sizeof(pid_t));
	if (write(sync_fd, go, sizeof go) != (ssize_t)sizeof go) { ctl_write("error %u %d releasing the child\n", clone_index, errno); return 1; }
	return supervise();
}
