/*
 * The container monitor (see monitor.h). Everything here lives in fixed static buffers: an idle
 * monitor touches a few pages and never grows, whatever the container writes or however many
 * attach clients come and go (target: RSS <= 1 MiB per container).
 *
 * Attach socket framing (also documented in src/core/plan.ts): every message both ways is an 8-byte
 * header [type, 0, 0, 0, length as u32 big-endian] and `length` bytes of payload, the header of
 * docker's multiplexed streams. Monitor -> client: type 1 stdout, 2 stderr (a tty's output is 1).
 * Client -> monitor: type 0 stdin data, 1 close stdin, 2 resize (payload u16 rows, u16 cols, BE).
 * The monitor closes the connection when the container has ended (after writing the exit file).
 */
#include "monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* docker's json-file splits lines longer than this (its copier's buffer) into partial entries. */
#define LINE_CAP 16384
#define MAX_CLIENTS 16
/* After the init exits, its output is drained until it goes quiet: a process that escaped the
 * container's pid namespace (none without one) could otherwise hold the pipes open forever. */
#define DRAIN_IDLE_MS 100
#define DRAIN_MAX_MS 2000

enum { OUT = 0, ERR = 1 };
enum { FROM_STDOUT = 1, FROM_STDERR = 2 };
enum { TO_STDIN = 0, TO_CLOSE_STDIN = 1, TO_RESIZE = 2 };

/* A host path held as (directory fd, name): opened before any setns, so later renames, the exit
 * file and the socket's removal mean the same place whatever namespaces the helper joined. */
struct pathat { int dir; char base[NAME_MAX + 1]; };

struct stream { int fd; size_t len; char buf[LINE_CAP]; };

struct client {
	int fd;
	unsigned char hdr[12];
	unsigned have;  /* header bytes read */
	uint32_t left;  /* stdin payload bytes still to come in the current frame */
	int eof;        /* half-closed: sends nothing more, still receives output */
	uint32_t pend_off, pend_len; /* output this client's socket could not take yet (in pend_buf) */
};

static struct {
	int cleaned, tty, keep_stdin;
	int out_r[2], out_w[2];  /* our read ends, the child's write ends */
	int in_r, in_w;          /* the child's stdin (pipe or /dev/null), our write end */
	int listen_fd;
	struct pathat sock, exitf, log;
	int log_fd;
	uint64_t log_size, log_max;
	uint32_t log_files;
} m;

static struct stream streams[2];
static struct client clients[MAX_CLIENTS];
/* One chunk (header + at most LINE_CAP bytes) per client; untouched, and so not resident, until a
 * client falls behind. */
static char pend_buf[MAX_CLIENTS][LINE_CAP + 8];
/* Set once the container's output is being drained for the last time: a client that falls behind
 * then is dropped instead of waited for. */
static int final_drain;
static char stdin_buf[4096];
static size_t stdin_len, stdin_off;
static int stdin_fd = -1;
/* One log entry: every byte may become a 6-byte escape. */
static char entry[LINE_CAP * 6 + 256];

/* ---- small utilities --------------------------------------------------------------------------- */

static void close_fd(int *fd)
{
	if (*fd > 2) close(*fd);
	*fd = -1;
}

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) return -1;
		p += w;
		n -= w;
	}
	return 0;
}

static int split_path(const char *path, struct pathat *pa)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (strlen(base) == 0 || strlen(base) > NAME_MAX) { errno = EINVAL; return -1; }
	snprintf(pa->base, sizeof pa->base, "%s", base);
	char dir[PATH_MAX];
	if (!slash) snprintf(dir, sizeof dir, ".");
	else if (slash == path) snprintf(dir, sizeof dir, "/");
	else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	pa->dir = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return pa->dir < 0 ? -1 : 0;
}

/* RFC 3339 with nanoseconds, trailing zeros trimmed: Go's time.RFC3339Nano, which docker writes. */
static void rfc3339nano(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (ts.tv_nsec) {
		n += snprintf(buf + n, len - n, ".%09ld", ts.tv_nsec);
		while (buf[n - 1] == '0') n--;
	}
	snprintf(buf + n, len - n, "Z");
}

/* ---- json-file log -------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, surrogates or > U+10FFFF), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len;
	if (c >= 0xc2 && c <= 0xdf) len = 2;
	else if (c >= 0xe0 && c <= 0xef) { len = 3; if (c == 0xe0) lo = 0xa0; if (c == 0xed) hi = 0x9f; }
	else if (c >= 0xf0 && c <= 0xf4) { len = 4; if (c == 0xf0) lo = 0x90; if (c == 0xf4) hi = 0x8f; }
	else return 0;
	if (n < len || s[1] < lo || s[1] > hi) return 0;
	for (size_t k = 2; k < len; k++) if (s[k] < 0x80 || s[k] > 0xbf) return 0;
	return len;
}

/* Escapes like docker's json-file writer: \" \\ \n \r \t, \u00XX for other controls and < > &,
 * \u2028/\u2029, and U+FFFD for each byte that is not valid UTF-8. */
static size_t json_escape(char *out, const unsigned char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *o = out;
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			if (c == '"' || c == '\\') { *o++ = '\\'; *o++ = c; }
			else if (c == '\n') { *o++ = '\\'; *o++ = 'n'; }
			else if (c == '\r') { *o++ = '\\'; *o++ = 'r'; }
			else if (c == '\t') { *o++ = '\\'; *o++ = 't'; }
			else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
				memcpy(o, "\\u00", 4);
				o[4] = hex[c >> 4];
				o[5] = hex[c & 15];
				o += 6;
			} else *o++ = c;
			continue;
		}
		size_t len = utf8_len(s + i, n - i);
		if (len == 0) { memcpy(o, "\\ufffd", 6); o += 6; i++; continue; }
		if (len == 3 && c == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
			memcpy(o, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
			o += 6;
		} else {
			memcpy(o, s + i, len);
			o += len;
		}
		i += len;
	}
	return o - out;
}

/* docker's rotation: log.(N-2) -> log.(N-1) (replacing the oldest), ..., log -> log.1, new log.
 * With max-file 1 the one file is truncated. */
static void rotate(void)
{
	if (m.log_files <= 1) {
		if (ftruncate(m.log_fd, 0) == 0) m.log_size = 0;
		return;
	}
	char from[NAME_MAX + 16], to[NAME_MAX + 16];
	for (uint32_t k = m.log_files - 1; k >= 1; k--) {
		snprintf(to, sizeof to, "%s.%u", m.log.base, k);
		if (k == 1) snprintf(from, sizeof from, "%s", m.log.base);
		else snprintf(from, sizeof from, "%s.%u", m.log.base, k - 1);
		renameat(m.log.dir, from, m.log.dir, to); /* a missing older file is fine */
	}
	int fd = openat(m.log.dir, m.log.base, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) return; /* keep writing to the renamed file rather than lose output */
	close(m.log_fd);
	m.log_fd = fd;
	m.log_size = 0;
}

static void log_entry(int stream, const char *data, size_t n)
{
	if (m.log_fd < 0 || n == 0) return;
	char ts[48];
	rfc3339nano(ts, sizeof ts);
	char *p = entry;
	memcpy(p, "{\"log\":\"", 8);
	p += 8;
	p += json_escape(p, (const unsigned char *)data, n);
	p += sprintf(p, "\",\"stream\":\"%s\",\"time\":\"%s\"}\n", stream == ERR ? "stderr" : "stdout", ts);
	size_t len = p - entry;
	if (m.log_max && m.log_size > 0 && m.log_size + len > m.log_max) rotate();
	/* A full disk loses this entry, never the container. */
	if (write_all(m.log_fd, entry, len) == 0) m.log_size += len;
}

/* ---- attach clients ------------------------------------------------------------------------------- */

static void drop_client(struct client *c)
{
	close_fd(&c->fd);
	c->pend_off = c->pend_len = 0;
}

static int pending(const struct client *c)
{
	return c->fd >= 0 && c->pend_off < c->pend_len;
}

static int any_pending(void)
{
	for (int k = 0; k < MAX_CLIENTS; k++)
		if (pending(&clients[k])) return 1;
	return 0;
}

/* Live output to every client. What a client's socket cannot take is kept for it, and the container's
 * output is not read again until every client has taken its chunk: a slow reader slows the container
 * down (docker's attach does the same) instead of losing output or being cut off. */
static void broadcast(int stream, const char *data, size_t n)
{
	unsigned char hdr[8] = { stream == ERR ? FROM_STDERR : FROM_STDOUT, 0, 0, 0, n >> 24, n >> 16, n >> 8, n };
	struct iovec iov[2] = { { hdr, 8 }, { (void *)data, n } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
	for (int k = 0; k < MAX_CLIENTS; k++) {
		struct client *c = &clients[k];
		if (c->fd < 0) continue;
		if (pending(c)) { drop_client(c); continue; } /* not reached: output waits for pending clients */
		ssize_t w;
		do w = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT); while (w < 0 && errno == EINTR);
		if (w == (ssize_t)(n + 8)) continue;
		if ((w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) || final_drain) { drop_client(c); continue; }
		size_t sent = w < 0 ? 0 : (size_t)w;
		c->pend_off = 0;
		c->pend_len = n + 8 - sent;
		if (sent < 8) {
			memcpy(pend_buf[k], hdr + sent, 8 - sent);
			memcpy(pend_buf[k] + 8 - sent, data, n);
		} else {
			memcpy(pend_buf[k], data + (sent - 8), n + 8 - sent);
		}
	}
}

/* Sends what a client still owes; returns 1 if something went. */
static int client_flush(struct client *c)
{
	int k = (int)(c - clients);
	ssize_t w;
	do w = send(c->fd, pend_buf[k] + c->pend_off, c->pend_len - c->pend_off, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
	if (w <= 0) { drop_client(c); return 0; }
	c->pend_off += w;
	if (c->pend_off == c->pend_len) c->pend_off = c->pend_len = 0;
	return 1;
}

static void close_stdin(void)
{
	/* With a tty the master is also the output: leave it. */
	if (!m.tty) close_fd(&m.in_w);
	stdin_fd = -1;
	stdin_len = stdin_off = 0;
}

static void flush_stdin(void)
{
	while (stdin_fd >= 0 && stdin_off < stdin_len) {
		ssize_t w = write(stdin_fd, stdin_buf + stdin_off, stdin_len - stdin_off);
		if (w < 0 && errno == EINTR) continue;
		if (w < 0 && errno == EAGAIN) return; /* wait for POLLOUT */
		if (w <= 0) { close_stdin(); return; }  /* the container closed its stdin */
		stdin_off += w;
	}
	stdin_len = stdin_off = 0;
}

static void resize(unsigned rows, unsigned cols)
{
	if (!m.tty || streams[OUT].fd < 0) return;
	struct winsize ws = { .ws_row = rows, .ws_col = cols };
	ioctl(streams[OUT].fd, TIOCSWINSZ, &ws);
}

static void client_read(struct client *c)
{
	ssize_t r;
	if (c->left > 0) {
		size_t want = c->left < sizeof stdin_buf ? c->left : sizeof stdin_buf;
		r = read(c->fd, stdin_buf, want);
		if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
		if (r == 0) { c->eof = 1; return; }
		if (r < 0) { drop_client(c); return; }
		c->left -= r;
		if (stdin_fd >= 0) {
			stdin_len = r;
			stdin_off = 0;
			flush_stdin();
		}
		return;
	}
	unsigned need = (c->have >= 8 && c->hdr[0] == TO_RESIZE) ? 12 : 8;
	r = read(c->fd, c->hdr + c->have, need - c->have);
	if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
	if (r == 0) { c->eof = 1; return; }
	if (r < 0) { drop_client(c); return; }
	c->have += r;
	if (c->have < 8) return;
	uint32_t len = (uint32_t)c->hdr[4] << 24 | (uint32_t)c->hdr[5] << 16 | (uint32_t)c->hdr[6] << 8 | c->hdr[7];
	switch (c->hdr[0]) {
	case TO_STDIN:
		c->left = len;
		c->have = 0;
		break;
	case TO_CLOSE_STDIN:
		if (len != 0) { drop_client(c); return; }
		close_stdin();
		c->have = 0;
		break;
	case TO_RESIZE:
		if (len != 4) { drop_client(c); return; }
		if (c->have < 12) return;
		resize(c->hdr[8] << 8 | c->hdr[9], c->hdr[10] << 8 | c->hdr[11]);
		c->have = 0;
		break;
	default:
		drop_client(c);
	}
}

/* Takes every connection waiting: clients that connected before some output all get it. */
static void accept_clients(void)
{
	for (;;) {
		int fd = accept4(m.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) return;
		int k = 0;
		while (k < MAX_CLIENTS && clients[k].fd >= 0) k++;
		if (k == MAX_CLIENTS) { close(fd); continue; } /* full: the client sees EOF at once */
		clients[k] = (struct client){ .fd = fd };
	}
}

/* At the end, each client is sent what it is still owed, then EOF (half-close), and what it still sends
 * (a close-stdin written while the container was exiting) is read and dropped until it hangs up.
 * Closing outright would answer those bytes with EPIPE or ECONNRESET, and a client that sees that
 * error first (Node does) throws away output it has not read yet: the container's last lines. */
#define LINGER_MS 1000
static void linger_clients(void)
{
	int shut[MAX_CLIENTS] = { 0 };
	uint64_t deadline = now_ms() + LINGER_MS;
	for (;;) {
		for (int k = 0; k < MAX_CLIENTS; k++)
			if (clients[k].fd >= 0 && !shut[k] && !pending(&clients[k])) { shutdown(clients[k].fd, SHUT_WR); shut[k] = 1; }
		struct pollfd p[MAX_CLIENTS];
		int idx[MAX_CLIENTS], n = 0;
		for (int k = 0; k < MAX_CLIENTS; k++)
			if (clients[k].fd >= 0)
				{ idx[n] = k; p[n++] = (struct pollfd){ .fd = clients[k].fd, .events = POLLIN | (pending(&clients[k]) ? POLLOUT : 0) }; }
		uint64_t t = now_ms();
		if (n == 0 || t >= deadline) break;
		if (poll(p, n, (int)(deadline - t)) < 0 && errno != EINTR) break;
		for (int i = 0; i < n; i++) {
			struct client *c = &clients[idx[i]];
			if (!p[i].revents) continue;
			if ((p[i].revents & POLLOUT) && pending(c)) client_flush(c);
			if (c->fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
			char junk[4096];
			ssize_t r = read(c->fd, junk, sizeof junk);
			if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) drop_client(c);
		}
	}
	for (int k = 0; k < MAX_CLIENTS; k++) drop_client(&clients[k]);
}

/* ---- container output ----------------------------------------------------------------------------- */

/* Logs every complete line of the buffer, or all of it when `all` (a full buffer, or the end). */
static void emit_lines(int s, size_t scan_from, int all)
{
	struct stream *st = &streams[s];
	size_t start = 0;
	for (size_t i = scan_from; i < st->len; i++) {
		if (st->buf[i] != '\n') continue;
		log_entry(s, st->buf + start, i + 1 - start);
		start = i + 1;
	}
	/* A line that fills the whole buffer is logged as a partial entry, like docker does. */
	if ((all || (start == 0 && st->len == LINE_CAP)) && start < st->len) {
		log_entry(s, st->buf + start, st->len - start);
		start = st->len;
	}
	memmove(st->buf, st->buf + start, st->len - start);
	st->len -= start;
}

/* Returns 1 if something was read. */
static int output_read(int s)
{
	struct stream *st = &streams[s];
	ssize_t r = read(st->fd, st->buf + st->len, LINE_CAP - st->len);
	if (r < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
	if (r <= 0) {
		/* EOF, or EIO from a pty master once no slave is open. */
		emit_lines(s, st->len, 1);
		if (m.tty) st->fd = -1; /* the master stays open for stdin; closed at the end */
		else close_fd(&st->fd);
		return 0;
	}
	broadcast(s, st->buf + st->len, r);
	size_t from = st->len;
	st->len += r;
	emit_lines(s, from, 0);
	return 1;
}

/* ---- lifecycle ------------------------------------------------------------------------------------ */

static void remove_socket(void)
{
	if (m.cleaned) return;
	m.cleaned = 1;
	if (m.listen_fd >= 0) {
		close_fd(&m.listen_fd);
		unlinkat(m.sock.dir, m.sock.base, 0);
	}
}

int monitor_prepare(const struct monitor_config *c)
{
	m.tty = c->tty;
	m.keep_stdin = c->keep_stdin;
	m.out_r[0] = m.out_r[1] = m.out_w[0] = m.out_w[1] = m.in_r = m.in_w = -1;
	m.listen_fd = m.log_fd = -1;
	m.sock.dir = m.exitf.dir = m.log.dir = -1;
	m.log_max = c->log_max_size;
	m.log_files = c->log_max_files ? c->log_max_files : 1;
	/* A failed start must not leave the socket file behind. */
	atexit(remove_socket);
	/* How a restarted daemon recognises its monitors in /proc/<pid>/stat (the child execs its own name). */
	prctl(PR_SET_NAME, "berth-monitor", 0, 0, 0);

	if (*c->log_path) {
		if (split_path(c->log_path, &m.log) < 0) return -1;
		m.log_fd = openat(m.log.dir, m.log.base, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		struct stat st;
		if (m.log_fd < 0 || fstat(m.log_fd, &st) < 0) return -1;
		m.log_size = st.st_size;
	}
	if (split_path(c->exit_path, &m.exitf) < 0) return -1;
	/* An exit file from an earlier run must never describe this one. */
	if (unlinkat(m.exitf.dir, m.exitf.base, 0) < 0 && errno != ENOENT) return -1;

	if (!m.tty) {
		int p[2];
		for (int s = 0; s < 2; s++) {
			if (pipe2(p, O_CLOEXEC) < 0) return -1;
			m.out_r[s] = p[0];
			m.out_w[s] = p[1];
		}
		if (m.keep_stdin) {
			if (pipe2(p, O_CLOEXEC) < 0) return -1;
			m.in_r = p[0];
			m.in_w = p[1];
			/* Only our end: the container's stdin stays a normal blocking pipe. */
			fcntl(m.in_w, F_SETFL, O_NONBLOCK);
		} else if ((m.in_r = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
			return -1;
		}
	}

	if (*c->attach_path) {
		struct sockaddr_un addr = { .sun_family = AF_UNIX };
		if (strlen(c->attach_path) >= sizeof addr.sun_path) { errno = ENAMETOOLONG; return -1; }
		snprintf(addr.sun_path, sizeof addr.sun_path, "%s", c->attach_path);
		if (split_path(c->attach_path, &m.sock) < 0) return -1;
		m.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (m.listen_fd < 0) return -1;
		unlinkat(m.sock.dir, m.sock.base, 0); /* a stale socket of an earlier run */
		/* 0600 from the start: no moment where another user could connect. */
		mode_t old = umask(0177);
		int rc = bind(m.listen_fd, (struct sockaddr *)&addr, sizeof addr);
		umask(old);
		if (rc < 0) { close_fd(&m.listen_fd); return -1; }
		if (listen(m.listen_fd, MAX_CLIENTS) < 0) return -1;
	}
	return 0;
}

void monitor_child(void)
{
	/* exit() in the child (there is none before exec, but be sure) must not remove our socket. */
	m.cleaned = 1;
	if (!m.tty && (dup2(m.in_r, 0) < 0 || dup2(m.out_w[OUT], 1) < 0 || dup2(m.out_w[ERR], 2) < 0)) _exit(1);
	int *fds[] = { &m.out_r[0], &m.out_r[1], &m.out_w[0], &m.out_w[1], &m.in_r, &m.in_w, &m.listen_fd,
		       &m.log_fd, &m.sock.dir, &m.exitf.dir, &m.log.dir };
	for (size_t k = 0; k < sizeof fds / sizeof *fds; k++) close_fd(fds[k]);
}

static void write_exit_file(int status)
{
	int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	int code = sig ? 128 + sig : WEXITSTATUS(status);
	char ts[48], buf[256], tmp[NAME_MAX + 8];
	rfc3339nano(ts, sizeof ts);
	int n = snprintf(buf, sizeof buf, "{\"exitCode\":%d,\"signal\":%d,\"oomKilled\":false,\"finishedAt\":\"%s\"}\n", code, sig, ts);
	snprintf(tmp, sizeof tmp, "%s.tmp", m.exitf.base);
	/* tmp + fsync + rename: a reader sees no file or the whole file, even after a crash. */
	int fd = openat(m.exitf.dir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) return;
	int ok = write_all(fd, buf, n) == 0 && fsync(fd) == 0;
	close(fd);
	if (ok) renameat(m.exitf.dir, tmp, m.exitf.dir, m.exitf.base);
	else unlinkat(m.exitf.dir, tmp, 0);
}

static void ctl_line(const char *line, pid_t child)
{
	unsigned rows, cols;
	int sig;
	if (sscanf(line, "resize %u %u", &rows, &cols) == 2) resize(rows, cols);
	else if (sscanf(line, "signal %d", &sig) == 1) kill(child, sig);
}

/* The controller's socket: "signal N" and "resize R C" lines as before "started"; EOF just means
 * the controller (the daemon) is gone, which changes nothing for the container. */
static void ctl_read(int *ctl, pid_t child)
{
	static char line[128];
	static size_t len;
	char buf[256];
	ssize_t r = read(*ctl, buf, sizeof buf);
	if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
	if (r <= 0) { close_fd(ctl); return; }
	for (ssize_t k = 0; k < r; k++) {
		if (buf[k] == '\n') {
			line[len] = '\0';
			ctl_line(line, child);
			len = 0;
		} else if (len + 1 < sizeof line) {
			line[len++] = buf[k];
		}
	}
}

/* Closes every fd from 3 on but those in `keep`: the monitor outlives the daemon and must not hold
 * whatever the daemon's own parent left open without O_CLOEXEC (a test runner's pipe, say). */
static void close_other_fds(int *keep, size_t n)
{
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) { int t = keep[j]; keep[j] = keep[j - 1]; keep[j - 1] = t; }
	unsigned from = 3;
	for (size_t i = 0; i < n; i++) {
		if (keep[i] < (int)from) continue;
		if ((unsigned)keep[i] > from) syscall(SYS_close_range, from, (unsigned)keep[i] - 1, 0);
		from = keep[i] + 1;
	}
	syscall(SYS_close_range, from, ~0U, 0);
}

int monitor_run(pid_t child, int exited, int status, int master, int sigfd, int ctl)
{
	/* Set only now: an ignored SIGPIPE would have been inherited by the container. */
	signal(SIGPIPE, SIG_IGN);
	/* Hold no directory of the daemon's (it may be unmounted while we live). */
	if (chdir("/") < 0) { /* harmless */ }
	close_fd(&m.out_w[OUT]);
	close_fd(&m.out_w[ERR]);
	close_fd(&m.in_r);
	int keep[] = { ctl, sigfd, master, m.out_r[0], m.out_r[1], m.in_w, m.listen_fd, m.log_fd, m.sock.dir, m.exitf.dir, m.log.dir };
	close_other_fds(keep, sizeof keep / sizeof *keep);
	malloc_trim(0); /* hand the freed plan back to the kernel */
	for (int k = 0; k < MAX_CLIENTS; k++) clients[k].fd = -1;
	if (m.tty) {
		streams[OUT].fd = master;
		streams[ERR].fd = -1;
		stdin_fd = m.keep_stdin ? master : -1;
		if (master >= 0) fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	} else {
		streams[OUT].fd = m.out_r[OUT];
		streams[ERR].fd = m.out_r[ERR];
		stdin_fd = m.in_w;
	}

	uint64_t exited_at = exited ? now_ms() : 0, last_output = exited_at;
	for (;;) {
		int outputs = (streams[OUT].fd >= 0) + (streams[ERR].fd >= 0);
		int behind = any_pending();
		if (exited) {
			uint64_t t = now_ms();
			if (outputs == 0 || (!behind && t - last_output >= DRAIN_IDLE_MS) || t - exited_at >= DRAIN_MAX_MS) break;
		}
		struct pollfd p[5 + MAX_CLIENTS];
		int n = 0, i_sig = -1, i_ctl = -1, i_listen = -1, i_out[2] = { -1, -1 }, i_stdin = -1, i_client[MAX_CLIENTS];
		if (!exited) { i_sig = n; p[n++] = (struct pollfd){ .fd = sigfd, .events = POLLIN }; }
		if (ctl >= 0) { i_ctl = n; p[n++] = (struct pollfd){ .fd = ctl, .events = POLLIN }; }
		if (m.listen_fd >= 0) { i_listen = n; p[n++] = (struct pollfd){ .fd = m.listen_fd, .events = POLLIN }; }
		/* While a client is behind, the container's output waits in its pipe (or pty). */
		for (int s = 0; s < 2 && !behind; s++)
			if (streams[s].fd >= 0) { i_out[s] = n; p[n++] = (struct pollfd){ .fd = streams[s].fd, .events = POLLIN }; }
		if (stdin_len > 0 && stdin_fd >= 0) { i_stdin = n; p[n++] = (struct pollfd){ .fd = stdin_fd, .events = POLLOUT }; }
		for (int k = 0; k < MAX_CLIENTS; k++) {
			i_client[k] = -1;
			if (clients[k].fd < 0) continue;
			/* While stdin is backed up, read nobody's input (hangups are still reported). */
			i_client[k] = n;
			p[n++] = (struct pollfd){ .fd = clients[k].fd,
						  .events = ((stdin_len > 0 || clients[k].eof) ? 0 : POLLIN) | (pending(&clients[k]) ? POLLOUT : 0) };
		}
		if (poll(p, n, exited ? DRAIN_IDLE_MS : -1) < 0) {
			if (errno == EINTR) continue;
			break;
		}
		if (i_sig >= 0 && p[i_sig].revents) {
			struct signalfd_siginfo si;
			if (read(sigfd, &si, sizeof si) == sizeof si && si.ssi_signo != SIGCHLD && si.ssi_signo != SIGHUP &&
			    si.ssi_signo != SIGWINCH)
				kill(child, si.ssi_signo); /* e.g. a SIGTERM sent to the monitor on purpose */
			if (waitpid(child, &status, WNOHANG) == child) { exited = 1; exited_at = last_output = now_ms(); }
		}
		if (i_ctl >= 0 && p[i_ctl].revents) ctl_read(&ctl, child);
		/* Clients first: one that connected before the container started (a daemon attaching for
		 * `run`) must get the output read in this same round. */
		if (i_listen >= 0 && (p[i_listen].revents & POLLIN)) accept_clients();
		/* Both streams may be readable: the second waits if the first left a client behind. */
		for (int s = 0; s < 2; s++)
			if (i_out[s] >= 0 && p[i_out[s]].revents && !any_pending() && output_read(s)) last_output = now_ms();
		if (i_stdin >= 0 && p[i_stdin].revents) flush_stdin();
		for (int k = 0; k < MAX_CLIENTS; k++) {
			if (i_client[k] < 0 || !p[i_client[k]].revents || clients[k].fd < 0) continue;
			if ((p[i_client[k]].revents & POLLOUT) && pending(&clients[k]) && client_flush(&clients[k])) last_output = now_ms();
			if (clients[k].fd < 0) continue;
			if (p[i_client[k]].revents & POLLIN) client_read(&clients[k]);
			else if (p[i_client[k]].revents & (POLLHUP | POLLERR)) drop_client(&clients[k]); /* gone */
		}
	}
	if (!exited) waitpid(child, &status, 0);
	/* Cut short with clients still behind (the drain's time is up): they are dropped, and what the
	 * pipes still hold goes to the log at least. */
	final_drain = 1;
	for (int k = 0; k < MAX_CLIENTS; k++)
		if (pending(&clients[k]) && (streams[OUT].fd >= 0 || streams[ERR].fd >= 0)) drop_client(&clients[k]);
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < 256 && streams[s].fd >= 0 && output_read(s); i++) {}
	for (int s = 0; s < 2; s++) emit_lines(s, streams[s].len, 1);

	/* The exit file first: whoever sees the attach socket close can read it. */
	write_exit_file(status);
	linger_clients();
	remove_socket();
	if (ctl >= 0) {
		char line[64];
		int n = WIFSIGNALED(status) ? snprintf(line, sizeof line, "exit 0 %d\n", WTERMSIG(status))
					    : snprintf(line, sizeof line, "exit %d 0\n", WEXITSTATUS(status));
		send(ctl, line, n, MSG_NOSIGNAL);
	}
	return 0;
}
