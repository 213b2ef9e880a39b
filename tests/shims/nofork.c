/*
 * nofork.so: preloaded into a supervisor, makes fork fail with EAGAIN
 * while the file NOFORK_WHILE names exists, as when the machine is out of
 * processes or memory for a moment (tests/integration/failed-worker.sh).
 */
#include "autoconf.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

pid_t
fork(void)
{
	static pid_t (*real)(void);
	const char *gate = getenv("NOFORK_WHILE");

	if (real == NULL)
		real = (pid_t(*)(void))dlsym(RTLD_NEXT, "fork");
	if (gate != NULL && access(gate, F_OK) == 0) {
		errno = EAGAIN;
		return -1;
	}
	return real();
}
