/*
 * hold.so: preloaded into a fleet, holds each write of a text that holds
 * HOLD_WRITE_OF while the file HOLD_WHILE names exists, so that a test can
 * stop a process between two steps (tests/integration/unanswered.sh).
 */
#include "autoconf.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

ssize_t
write(int fd, const void *buf, size_t len)
{
	static ssize_t (*real)(int, const void *, size_t);
	const char *gate = getenv("HOLD_WHILE"),
	           *text = getenv("HOLD_WRITE_OF");
	const struct timespec tick = {0, 10 * 1000 * 1000};

	if (real == NULL)
		real = (ssize_t(*)(int, const void *, size_t))dlsym(
		    RTLD_NEXT, "write");
	/* 60 s at most: a test that fails does not leave it held. */
	for (int i = 0; gate != NULL && text != NULL && i < 6000 &&
	     memmem(buf, len, text, strlen(text)) != NULL &&
	     access(gate, F_OK) == 0;
	     i++)
		nanosleep(&tick, NULL);
	return real(fd, buf, len);
}
