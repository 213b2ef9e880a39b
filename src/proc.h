/*
 * proc.h: the supervisor's children: starting them (fork, then exec), and
 * the restart policy, a pure function of the crash history and the time.
 */
#ifndef OLLAMAX_PROC_H
#define OLLAMAX_PROC_H

#include <stdint.h>
#include <sys/types.h>

enum proc_state {
	PROC_STARTING, /* forked, not yet ready */
	PROC_RUNNING,  /* said ready */
	PROC_BACKOFF,  /* crashed; restarts after a delay */
	PROC_FAILED,   /* crashed too often: left down */
	PROC_STOPPING, /* told to stop with the supervisor */
	PROC_STOPPED,  /* gone, with the supervisor stopping */
};

const char *proc_state_name(enum proc_state s);

/*
 * Restart policy: exponential backoff from base_ms up to max_ms, reset
 * after a child stayed up for reset_ms; more than intensity crashes
 * within period_ms leave the child FAILED (Erlang/OTP's restart intensity).
 */
struct restart_policy {
	int64_t base_ms;
	int64_t max_ms;
	int64_t reset_ms;
	int intensity;
	int64_t period_ms;
};

#define RESTART_HISTORY 16

struct restart_state {
	int64_t crashes[RESTART_HISTORY]; /* times of the last crashes */
	int ncrashes;
	int64_t started_ms;
	int64_t delay_ms;
	int restarts;
};

/*
 * A child that started at state->started_ms died at now_ms. Returns the
 * delay before its restart in ms, or -1 when it must stay FAILED.
 */
int64_t restart_after_crash(const struct restart_policy *p,
    struct restart_state *state, int64_t now_ms);

/*
 * Forks and execs path with argv, the child dying with its parent
 * (PR_SET_PDEATHSIG, and an exit if the parent is already gone). Returns
 * the pid, or -1 with errno set.
 */
pid_t proc_spawn(const char *path, char *const argv[]);

/* The resident set of a process of ours (0: this one) in KiB; 0 if unknown
 * (the process is gone). */
long proc_rss_kb(pid_t pid);
/* Whether process pid, started at `started` (0: whenever), has ended:
 * gone, a zombie not reaped yet (its parent held up), or its number now
 * another's, started at another time. Not known is not ended: without a
 * /proc of this pid namespace, a zombie counts as running. */
int proc_ended(pid_t pid, unsigned long long started);

/*
 * When process pid started, in clock ticks after boot (the starttime of
 * /proc/PID/stat). With its number it names the process, where the number
 * alone is taken again by another once the process has ended: unless the
 * numbers go round within a tick (10 ms). 0 if not known: the process
 * gone, or no /proc of this pid namespace.
 */
unsigned long long proc_started(pid_t pid);

/*
 * A descriptor that turns readable when process pid ends, as a zombie
 * already: the kernel's own, by the process rather than its number, so that
 * the number taken again by another process or a /proc of another pid
 * namespace cannot mislead it. -1 with errno set where the kernel gives
 * none (before Linux 5.3, or a seccomp filter that refuses pidfd_open):
 * proc_ended then.
 */
int proc_end_fd(pid_t pid);

/* Sets the process title shown by ps and top ("ollamax: worker 2"). */
void proc_set_title(int argc, char **argv, const char *title);

#endif
