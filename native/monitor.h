/*
 * The container monitor: in monitor mode (PlanFlag.Monitor) the helper, which is the parent of the
 * container's init and the only process that can reap it, stays with the container after "started"
 * instead of dying with its controller. It logs the container's output in docker's json-file format,
 * serves an attach socket and writes an exit file when the init ends (like podman's conmon), so the
 * daemon may die and come back. See src/core/plan.ts for the monitor op and the attach framing.
 */
#ifndef BERTH_MONITOR_H
#define BERTH_MONITOR_H

#include <stdint.h>
#include <sys/types.h>

struct monitor_config {
	const char *log_path;     /* json-file log; "" = no log */
	uint64_t log_max_size;    /* bytes; 0 = never rotate */
	uint32_t log_max_files;   /* files kept including the live one (docker's max-file) */
	const char *exit_path;    /* written atomically when the init has ended */
	const char *attach_path;  /* AF_UNIX stream socket made here, mode 0600; "" = none */
	int keep_stdin;           /* -i: the container's stdin is a pipe fed by attach clients */
	int tty;                  /* the output comes from the pty master the child sends back */
};

/* In the helper, before clone (and before any setns): make pipes, open the log, bind the socket.
 * Returns -1 with errno set. The config's strings are not kept (the plan is freed later). */
int monitor_prepare(const struct monitor_config *c);

/* In the child right after clone: the pipes become fds 0, 1, 2; the monitor's own fds are closed. */
void monitor_child(void);

/* In the helper once the child has exec'd: runs until the init has been reaped and its output
 * drained, then writes the exit file, removes the socket and returns the helper's exit status.
 * `exited`/`status`: whether the init was already reaped. `master`: the pty master (tty) or -1.
 * `sigfd`: a signalfd for SIGCHLD and the forwarded signals. `ctl`: the controller's socket. */
int monitor_run(pid_t child, int exited, int status, int master, int sigfd, int ctl);

#endif
