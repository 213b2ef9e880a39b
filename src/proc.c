/*
 * proc.c: children of the supervisor. A child is forked and then exec'd at
 * once: nng and libcurl keep threads and state that do not survive a bare
 * fork (nng#1373), so nothing of them is touched before exec.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "proc.h"

const char *
proc_state_name(enum proc_state s)
{
	static const char *const names[] = {
	    [PROC_STARTING] = "starting",
	    [PROC_RUNNING] = "running",
	    [PROC_BACKOFF] = "backoff",
	    [PROC_FAILED] = "failed",
	    [PROC_STOPPING] = "stopping",
	    [PROC_STOPPED] = "stopped",
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s]
	                                                      : "unknown";
}

int64_t
restart_after_crash(
    const struct restart_policy *p, struct restart_state *st, int64_t now_ms)
{
	int recent = 0;

	/* Remember this crash, forgetting the oldest. */
	if (st->ncrashes == RESTART_HISTORY) {
		memmove(st->crashes, st->crashes + 1,
		    (RESTART_HISTORY - 1) * sizeof(st->crashes[0]));
		st->ncrashes--;
	}
	st->crashes[st->ncrashes++] = now_ms;
	for (int i = 0; i < st->ncrashes; i++)
		if (now_ms - st->crashes[i] <= p->period_ms)
			recent++;
	if (recent > p->intensity)
		return -1;
	/* A child that ran long enough earns a fresh start. */
	if (now_ms - st->started_ms >= p->reset_ms || st->delay_ms == 0)
		st->delay_ms = p->base_ms;
	else
		st->delay_ms =
		    st->delay_ms * 2 > p->max_ms ? p->max_ms : st->delay_ms * 2;
	st->restarts++;
	return st->delay_ms;
}

/*
 * Signals are blocked across the fork: the child inherits the parent's
 * handlers (libev's, which note a signal for the parent's loop), and one
 * caught there before exec would be lost. The child sets every handler
 * back to the default, then takes what came meanwhile.
 */
pid_t
proc_spawn(const char *path, char *const argv[])
{
	pid_t parent = getpid(), pid;
	sigset_t all, before;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &before);
	pid = fork();
	if (pid != 0) {
		sigprocmask(SIG_SETMASK, &before, NULL);
		return pid;
	}
	/* The child: die with the parent, even if it died already. SIGKILL,
	 * since a child hung or stopped would not act on SIGTERM: it would
	 * outlive its supervisor, keep its sockets from the next one, and
	 * unlink their paths, the next one's by then, as it closed them. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	{
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
	}
	execv(path, argv);
	/* Not through the logger: it belongs to the parent's image. */
	fprintf(stderr, "ollamax: cannot exec %s: %s\n", path, strerror(errno));
	_exit(127);
}

void
proc_set_title(int argc, char **argv, const char *title)
{
	char *start = argv[0], *end = argv[argc - 1] + strlen(argv[argc - 1]);
	size_t room = (size_t)(end - start);
	char comm[16];

	/* ps shows argv: overwrite it in place, within its own bytes. */
	if (room > 0) {
		memset(start, 0, room);
		snprintf(start, room + 1 > 1 ? room : 1, "%s", title);
	}
	snprintf(comm, sizeof(comm), "%s", title);
	prctl(PR_SET_NAME, comm);
}

/*
 * Whether /proc is of this process's pid namespace: one of another, or a
 * file system in its place, tells of other processes by the same numbers.
 */
static int
proc_is_ours(void)
{
	static int ours = -1; /* not known yet */
	char stat[64];
	ssize_t n;
	int fd;

	if (ours >= 0)
		return ours;
	/* Out of descriptors or memory for a moment says nothing of /proc:
	 * asked again next time. */
	if ((fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? (ours = 0) : 0;
	n = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	stat[n] = '\0';
	ours = strtol(stat, NULL, 10) == (long)getpid();
	return ours;
}

/*
 * The fields of /proc/PID/stat from the state on ("S 1 ..."), in stat, of
 * size bytes; NULL if it does not give them.
 */
static const char *
proc_stat_fields(pid_t pid, char *stat, size_t size)
{
	char path[64], *paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	n = read(fd, stat, size - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	stat[n] = '\0';
	/* "pid (comm) state ...": comm may hold any byte but NUL, ')' and
	 * newlines too, and nothing after it holds a ')'. */
	if ((paren = strrchr(stat, ')')) == NULL || paren[1] != ' ' ||
	    paren[2] == '\0')
		return NULL;
	return paren + 2;
}

/* The starttime of the fields proc_stat_fields gave, or 0. */
static unsigned long long
stat_started(const char *at)
{
	char *end;
	unsigned long long started;

	/* starttime is the 22nd field, the 20th from the state. */
	for (int field = 3; field < 22; field++)
		if ((at = strchr(at, ' ')) == NULL)
			return 0;
		else
			at++;
	errno = 0;
	started = strtoull(at, &end, 10);
	if (errno != 0 || end == at ||
	    (*end != ' ' && *end != '\n' && *end != '\0'))
		return 0;
	return started;
}

unsigned long long
proc_started(pid_t pid)
{
	char stat[1024];
	const char *at;

	if (!proc_is_ours() ||
	    (at = proc_stat_fields(pid, stat, sizeof(stat))) == NULL)
		return 0;
	return stat_started(at);
}

int
proc_ended(pid_t pid, unsigned long long started)
{
	char stat[1024];
	const char *at;
	unsigned long long now;

	if (kill(pid, 0) != 0)
		return errno == ESRCH;
	if (!proc_is_ours())
		return 0;
	/* One read tells the state and the start time. Unread, it may have
	 * been reaped since the kill. */
	if ((at = proc_stat_fields(pid, stat, sizeof(stat))) == NULL)
		return kill(pid, 0) != 0 && errno == ESRCH;
	if (at[0] == 'Z' || at[0] == 'X')
		return 1;
	now = stat_started(at);
	return started != 0 && now != 0 && now != started;
}

int
proc_end_fd(pid_t pid)
{
	return pidfd_open(pid, 0);
}

long
proc_rss_kb(pid_t pid)
{
	long pages = 0, resident = 0;
	char path[64];
	FILE *fp;

	if (pid == 0)
		snprintf(path, sizeof(path), "/proc/self/statm");
	else
		snprintf(path, sizeof(path), "/proc/%ld/statm", (long)pid);
	fp = fopen(path, "r");

	if (fp == NULL)
		return 0;
	if (fscanf(fp, "%ld %ld", &pages, &resident) != 2)
		resident = 0;
	fclose(fp);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}
