/*
 * role.h: the children of ollamax-supervisor, and what they share: one
 * program, started again with --role after fork and exec.
 */
#ifndef OLLAMAX_ROLE_H
#define OLLAMAX_ROLE_H

#include <sys/types.h>

#include <ev.h>

#include "ipc.h"
#include "msg.h"

typedef int (*role_fn)(
    struct ev_loop *loop, const char *runtime, const char *conf, int index);

/*
 * The start of every child: names it, sets its title, stops it on SIGTERM,
 * and runs fn (broker_main, worker_main) until then. Returns its exit code.
 */
int role_main(int argc, char **argv, const char *role, int index,
    const char *runtime, const char *conf, role_fn fn);

/* Parses a child's command line (--index N --runtime DIR -c FILE) and runs
 * role_main; the main of ollamax-broker. */
int role_program(int argc, char **argv, const char *role, role_fn fn);

/* A child's link to the supervisor's hub: hello, then ready. */
struct hub_link {
	struct ev_loop *loop;
	struct ipc_client *client;
	int role;
	int index;
	int said_hello;
};

/* Dials the hub in runtime and says hello; returns -1 if it cannot. */
int hub_hello(struct hub_link *h, struct ev_loop *loop, const char *runtime,
    int role, int index);
/* Sends the child's counters to the supervisor (no answer awaited). */
void hub_report(struct hub_link *h, const struct msg_report *r);

int broker_main(
    struct ev_loop *loop, const char *runtime, const char *conf, int index);
int worker_main(
    struct ev_loop *loop, const char *runtime, const char *conf, int index);

/* ctlclient.c: talking to a running supervisor, synchronously. */
/*
 * Sends verb (and arg) to the supervisor of runtime and waits up to
 * timeout_ms for its answer. Returns 0 with reply filled, or 3 when no
 * supervisor answers.
 */
int ctl_call(const char *runtime, const char *verb, const char *arg, int json,
    int timeout_ms, struct msg_ctl_reply *reply);
/* Asks it to stop and waits until it is gone: 0, 1 (timed out) or 3. */
int ctl_stop_and_wait(const char *runtime, pid_t *pid);

#endif
