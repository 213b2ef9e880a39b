/*
 * nopidfd.so: preloaded into a fleet, makes pidfd_open fail with ENOSYS,
 * as a kernel before Linux 5.3 or a seccomp filter would, so that the
 * broker falls back to its look each second (tests/integration/pid-reuse.sh).
 */
#include "autoconf.h"

#include <errno.h>
#include <sys/pidfd.h>

int
pidfd_open(pid_t pid, unsigned int flags)
{
	(void)pid;
	(void)flags;
	errno = ENOSYS;
	return -1;
}
