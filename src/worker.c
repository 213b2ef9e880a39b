/*
 * worker.c: a process that hosts agents as coroutines on one libev loop.
 * It says hello to the supervisor and serves until SIGTERM.
 */
#include "autoconf.h"

#include "log.h"
#include "msg.h"
#include "role.h"

int
worker_main(
    struct ev_loop *loop, const char *runtime, const char *conf, int index)
{
	struct hub_link hub;

	(void)conf;
	if (hub_hello(&hub, loop, runtime, ROLE_WORKER, index) != 0)
		fatalx("cannot reach the supervisor in %s", runtime);
	ev_run(loop, 0);
	ipc_client_close(hub.client);
	return 0;
}
