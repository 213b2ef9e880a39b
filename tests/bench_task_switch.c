/*
 * bench_task_switch: the cost of one context switch with task_resume and
 * task_yield, and with glibc's swapcontext, measured side by side.
 *
 * Usage: bench_task_switch [switches [task|swapcontext|both]]
 *
 * Each method ping-pongs between the caller and one coroutine; a round trip
 * is two switches. Each method runs 5 times and reports the median, as
 *   task_switch_ns <ns per switch>
 *   swapcontext_ns <ns per switch>
 *   swapcontext_over_task <ratio>
 * Naming one method runs only it, e.g. to count its system calls with
 * strace -c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include "task.h"

#define RUNS 5
#define UC_STACK (64 * 1024)

static long rounds;

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(double *v)
{
	qsort(v, RUNS, sizeof(*v), cmp_double);
	return v[RUNS / 2];
}

static void
task_pong(void *arg)
{
	for (;;)
		task_yield();
}

static double
bench_task(void)
{
	struct task *t = task_create(0, task_pong, NULL);
	double start, ns;

	if (t == NULL) {
		perror("task_create");
		exit(1);
	}
	task_resume(t); /* the first entry pays for the page fault */
	start = now_ns();
	for (long i = 0; i < rounds; i++)
		task_resume(t);
	ns = (now_ns() - start) / (2.0 * rounds);
	task_destroy(t);
	return ns;
}

static ucontext_t uc_main, uc_co;

static void
uc_pong(void)
{
	for (;;)
		swapcontext(&uc_co, &uc_main);
}

static double
bench_swapcontext(void)
{
	void *stack = malloc(UC_STACK);
	double start, ns;

	if (stack == NULL || getcontext(&uc_co) == -1) {
		perror("swapcontext setup");
		exit(1);
	}
	uc_co.uc_stack.ss_sp = stack;
	uc_co.uc_stack.ss_size = UC_STACK;
	uc_co.uc_link = NULL;
	makecontext(&uc_co, uc_pong, 0);
	swapcontext(&uc_main, &uc_co);
	start = now_ns();
	for (long i = 0; i < rounds; i++)
		swapcontext(&uc_main, &uc_co);
	ns = (now_ns() - start) / (2.0 * rounds);
	free(stack);
	return ns;
}

int
main(int argc, char **argv)
{
	long switches = argc > 1 ? atol(argv[1]) : 10000000;
	const char *which = argc > 2 ? argv[2] : "both";
	int do_task = strcmp(which, "swapcontext") != 0;
	int do_uc = strcmp(which, "task") != 0;
	double task_ns[RUNS], uc_ns[RUNS];

	if (switches < 2 || (!do_task && !do_uc) ||
	    (strcmp(which, "both") != 0 && do_task && do_uc)) {
		fprintf(stderr,
		    "usage: bench_task_switch [switches [task|swapcontext|both]]\n");
		return 2;
	}
	rounds = switches / 2;
	/* Interleaved so that both see the same machine state. */
	for (int r = 0; r < RUNS; r++) {
		if (do_task)
			task_ns[r] = bench_task();
		if (do_uc)
			uc_ns[r] = bench_swapcontext();
	}
	if (do_task)
		printf("task_switch_ns %.2f\n", median(task_ns));
	if (do_uc)
		printf("swapcontext_ns %.2f\n", median(uc_ns));
	if (do_task && do_uc)
		printf("swapcontext_over_task %.1f\n",
		    median(uc_ns) / median(task_ns));
	return 0;
}
