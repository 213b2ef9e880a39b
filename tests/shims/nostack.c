/*
 * nostack.so: preloaded into a fleet, makes the mapping of an agent's task
 * stack fail with ENOMEM, as a worker out of memory or of the mappings a
 * process may hold would see it: the first NOSTACK_AFTER task stacks of each
 * process are mapped, and later ones fail while the file NOSTACK_WHILE
 * names exists (tests/integration/no-stack.sh). A task stack is told by
 * MAP_STACK with MAP_NORESERVE, which the C library's thread stacks do not
 * ask for.
 */
#include "autoconf.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static void *(*real)(void *, size_t, int, int, int, off_t);
	static long mapped;
	const char *after = getenv("NOSTACK_AFTER");
	const char *gate = getenv("NOSTACK_WHILE");
	const int task_stack = MAP_STACK | MAP_NORESERVE;

	if (real == NULL)
		real = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(
		    RTLD_NEXT, "mmap");
	if ((flags & task_stack) == task_stack) {
		if (mapped >= (after != NULL ? atol(after) : 0) &&
		    gate != NULL && access(gate, F_OK) == 0) {
			errno = ENOMEM;
			return MAP_FAILED;
		}
		mapped++;
	}
	return real(addr, len, prot, flags, fd, off);
}
