/*
 * holdclose.so: preloaded into a fleet, holds each nng_close of the
 * processes whose name starts with HOLD_CLOSE_OF while the file
 * HOLD_CLOSE_WHILE names exists, as nng 1.5.2's close hangs now and then
 * (tests/integration/supervisor.sh).
 */
#include "autoconf.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>

int
nng_close(nng_socket s)
{
	static int (*real)(nng_socket);
	const char *gate = getenv("HOLD_CLOSE_WHILE"),
	           *of = getenv("HOLD_CLOSE_OF");
	const struct timespec tick = {0, 10 * 1000 * 1000};
	char name[16] = "";

	if (real == NULL)
		real = (int (*)(nng_socket))dlsym(RTLD_NEXT, "nng_close");
	/* The process's title, which a child of the supervisor sets. */
	prctl(PR_GET_NAME, name);
	/* 60 s at most: a test that fails does not leave it held. */
	for (int i = 0; gate != NULL && of != NULL && i < 6000 &&
	     strncmp(name, of, strlen(of)) == 0 && access(gate, F_OK) == 0;
	     i++)
		nanosleep(&tick, NULL);
	return real(s);
}
