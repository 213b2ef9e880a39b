/*
 * exec_latency: how long a command takes from spawn to exit, as a user
 * running it sees it, without the cost of a scripting language's own
 * process handling. Prints p50 and p99 in microseconds.
 *
 *   exec_latency RUNS COMMAND [ARG...]
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

extern char **environ;

int
main(int argc, char **argv)
{
	posix_spawn_file_actions_t quiet;
	double *us;
	int runs;

	if (argc < 3 || (runs = atoi(argv[1])) < 1) {
		fprintf(stderr, "usage: exec_latency RUNS COMMAND [ARG...]\n");
		return 2;
	}
	us = calloc((size_t)runs, sizeof(*us));
	if (us == NULL)
		return 1;
	posix_spawn_file_actions_init(&quiet);
	posix_spawn_file_actions_addopen(
	    &quiet, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	for (int i = 0; i < runs; i++) {
		double t0 = bench_now_us();
		pid_t pid;
		int status;

		if (posix_spawn(
		        &pid, argv[2], &quiet, NULL, argv + 2, environ) != 0) {
			perror(argv[2]);
			return 1;
		}
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0) {
			fprintf(stderr, "exec_latency: %s failed\n", argv[2]);
			return 1;
		}
		us[i] = bench_now_us() - t0;
	}
	qsort(us, (size_t)runs, sizeof(*us), bench_by_value);
	printf("p50_us %.0f\np99_us %.0f\n", us[runs / 2], us[runs * 99 / 100]);
	posix_spawn_file_actions_destroy(&quiet);
	free(us);
	return 0;
}
