/* The restart policy: backoff, its reset, and the restart-storm limit;
 * whether a process has ended, and the descriptor that tells it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"

static const struct restart_policy policy = {
    .base_ms = 100,
    .max_ms = 2000,
    .reset_ms = 10000,
    .intensity = 5,
    .period_ms = 30000,
};

Test(restart, delays_double_from_the_base_up_to_the_cap)
{
	struct restart_state st = {0};
	int64_t want[] = {100, 200, 400, 800, 1600};
	int64_t now = 0;

	for (int i = 0; i < 5; i++) {
		st.started_ms = now;
		now += 50;
		cr_assert_eq(restart_after_crash(&policy, &st, now), want[i]);
		now += want[i];
	}
	cr_assert_eq(st.restarts, 5);
}

Test(restart, the_cap_holds_once_crashes_are_spread_out)
{
	struct restart_state st = {0};
	int64_t now = 0, d = 0;

	for (int i = 0; i < 12; i++) {
		st.started_ms = now;
		now += 9000; /* under reset_ms, and at most 4 per 30 s */
		d = restart_after_crash(&policy, &st, now);
		cr_assert_geq(d, 0, "crash %d", i);
	}
	cr_assert_eq(d, 2000);
}

Test(restart, a_child_that_stayed_up_long_enough_starts_again_from_the_base)
{
	struct restart_state st = {0};

	st.started_ms = 0;
	restart_after_crash(&policy, &st, 10);
	st.started_ms = 200;
	cr_assert_eq(restart_after_crash(&policy, &st, 300), 200);
	st.started_ms = 1000;
	cr_assert_eq(restart_after_crash(&policy, &st, 1000 + 10000), 100);
}

Test(restart, more_crashes_than_the_intensity_within_the_period_fail_the_child)
{
	struct restart_state st = {0};
	int64_t now = 0;

	for (int i = 0; i < 5; i++) {
		st.started_ms = now;
		now += 10;
		cr_assert_geq(restart_after_crash(&policy, &st, now), 0);
	}
	st.started_ms = now;
	cr_assert_eq(restart_after_crash(&policy, &st, now + 10), -1,
	    "the sixth crash in 30 s is a storm");
}

Test(restart, crashes_older_than_the_period_are_forgotten)
{
	struct restart_state st = {0};
	int64_t now = 0;

	for (int i = 0; i < 5; i++)
		restart_after_crash(&policy, &st, now += 10);
	now += 31000;
	cr_assert_geq(restart_after_crash(&policy, &st, now), 0);
}

/* Whether the descriptor of a process's end (-1: none here) says so. */
static int
end_told(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* By proc_ended, and by the descriptor of proc_end_fd. */
Test(ended, a_process_is_ended_once_a_zombie_and_once_reaped_not_before)
{
	int ready[2], fd;
	siginfo_t info;
	char byte;
	pid_t pid;

	cr_assert_eq(pipe(ready), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* Not left behind by a test that fails. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* A name that reads as a zombie's state to a parser that
		 * takes the first ')'. */
		prctl(PR_SET_NAME, "x) Z (y");
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	cr_assert_eq(read(ready[0], &byte, 1), 1);
	if ((fd = proc_end_fd(pid)) < 0)
		cr_log_warn("no pidfd here (%s): proc_ended alone is checked",
		    strerror(errno));
	cr_assert_not(proc_ended(pid, 0), "a process that runs");
	cr_assert_not(proc_ended(pid, proc_started(pid)),
	    "a process that runs, by its start time");
	/* Its number with another start time names another process. */
	cr_assert(proc_ended(pid, proc_started(pid) + 1),
	    "a process of another start time");
	cr_assert(fd < 0 || !end_told(fd), "a process that runs, by its fd");
	cr_assert_eq(kill(pid, SIGKILL), 0);
	/* Until it is a zombie, left unreaped. */
	cr_assert_eq(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT), 0);
	cr_assert(proc_ended(pid, 0), "a zombie its parent has not reaped");
	cr_assert(fd < 0 || end_told(fd), "a zombie, by its fd");
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	cr_assert(proc_ended(pid, 0), "a process reaped");
	cr_assert(fd < 0 || end_told(fd), "a process reaped, by its fd");
	if (fd >= 0)
		close(fd);
	close(ready[0]);
	close(ready[1]);
}

/* Clock ticks since boot, by /proc/uptime: a start time's clock. */
static double
ticks_since_boot(void)
{
	double seconds = -1;
	FILE *fp = fopen("/proc/uptime", "r");

	cr_assert_not_null(fp);
	cr_assert_eq(fscanf(fp, "%lf", &seconds), 1);
	fclose(fp);
	return seconds * (double)sysconf(_SC_CLK_TCK);
}

/*
 * A process's start time names it while it lives: its name changed to one
 * that a parser taking the first ')' would read fields from does not move
 * it, a child started after this process did not start before it, nor
 * before a moment before its fork, nor after now, and a process reaped
 * has none.
 */
Test(started, a_process_is_named_by_its_start_time_while_it_lives)
{
	int told[2];
	unsigned long long own = proc_started(getpid()), before, after;
	double forked, now;
	pid_t pid;

	cr_assert_neq(own, 0, "this process's start time");
	cr_assert_eq(pipe(told), 0);
	forked = ticks_since_boot();
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		unsigned long long mine = proc_started(getpid());

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		prctl(PR_SET_NAME, "x) 7 7 7 7 (y");
		if (write(told[1], &mine, sizeof(mine)) != sizeof(mine))
			_exit(1);
		for (;;)
			pause();
	}
	cr_assert_eq(read(told[0], &before, sizeof(before)), sizeof(before));
	after = proc_started(pid);
	now = ticks_since_boot();
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	cr_assert_neq(before, 0, "the child's start time, as it read it");
	cr_assert_eq(after, before, "the child's start time, once renamed");
	cr_assert_geq(after, own, "a child started before its parent");
	/* A tick either way: the two clocks round apart. */
	cr_assert_geq(
	    (double)after, forked - 1, "a child started before its fork");
	cr_assert_leq((double)after, now + 1, "a child started after now");
	cr_assert_eq(proc_started(pid), 0, "a start time once reaped");
	close(told[0]);
	close(told[1]);
}

/*
 * In a mount namespace of its own, a file system on /proc that is not this
 * pid namespace's: it says a running process is a zombie. Exits 0 if
 * proc_ended took it as running, 1 if as ended, 77 if no mount namespace
 * can be had here.
 */
static int
ended_by_foreign_proc(pid_t running)
{
	char path[64];
	FILE *fp;

	if (unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("none", "/proc", "tmpfs", 0, NULL) != 0)
		return 77;
	snprintf(path, sizeof(path), "/proc/%ld", (long)running);
	if (mkdir(path, 0755) != 0 || mkdir("/proc/self", 0755) != 0)
		return 2;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)running);
	if ((fp = fopen(path, "w")) == NULL)
		return 2;
	fprintf(fp, "%ld (sleeper) Z 1 1 1 0\n", (long)running);
	fclose(fp);
	/* The process that /proc calls itself is another. */
	if ((fp = fopen("/proc/self/stat", "w")) == NULL)
		return 2;
	fprintf(fp, "%ld (other) R 1 1 1 0\n", (long)getpid() + 1);
	fclose(fp);
	return proc_ended(running, 0);
}

Test(ended, a_proc_of_another_pid_namespace_is_not_believed)
{
	pid_t sleeper, checker;
	int status;

	sleeper = fork();
	cr_assert_geq(sleeper, 0);
	if (sleeper == 0)
		for (;;)
			pause();
	checker = fork();
	cr_assert_geq(checker, 0);
	if (checker == 0)
		_exit(ended_by_foreign_proc(sleeper));
	cr_assert_eq(waitpid(checker, &status, 0), checker);
	kill(sleeper, SIGKILL);
	waitpid(sleeper, NULL, 0);
	cr_assert(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		cr_skip_test("no mount namespace can be had here");
	cr_assert_eq(WEXITSTATUS(status), 0,
	    "a running process taken as ended (%d)", WEXITSTATUS(status));
}
