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

/* A child's link to the supervisor's hub. */
struct hub_link {
	struct ev_loop *loop;
	struct ipc_client *client;
	int role;
	int index;
	int ready; /* ready is said: reports may go */
	/* The answer a synchronous call waits for. */
	int waiting;
	int cut_short; /* a call SIGTERM ended: see role_main */
	int err;
	void *reply;
	size_t reply_len;
};

/*
 * What a child runs once it has its setup: serve, say hub_ready, and run
 * the loop until SIGTERM. Returns the exit code.
 */
typedef int (*role_fn)(struct ev_loop *loop, const char *runtime,
    struct hub_link *hub, struct msg_setup *setup);

/*
 * The start of every child: names it, sets its title, stops it on SIGTERM,
 * says hello on the hub and gets its part of the config in answer, then
 * runs fn (broker_main, worker_main). Returns its exit code.
 */
int role_main(int argc, char **argv, const char *role, int index,
    const char *runtime, role_fn fn);

/* How long the supervisor gives its children to end once it has sent them
 * SIGTERM; it kills those still there. */
#define ROLE_STOP_GRACE_S 5
/*
 * Called by a child as it starts closing its sockets, what it served
 * stopped: it gets ROLE_CLOSE_S for them from the first call on (see
 * role.c), or says so and exits, 0 when it was asked to stop (before its
 * grace ends), 1 when it was ending unasked.
 */
void role_closing(void);

/* Parses a child's command line (--index N --runtime DIR) and runs
 * role_main; the main of ollamax-broker. */
int role_program(int argc, char **argv, const char *role, role_fn fn);

/* Fetches page of a worker's agents from the supervisor (waits). */
int hub_fetch(struct hub_link *h, uint32_t page, struct msg_agents *out);
/* Tells the supervisor the child is set up and serving, but for the n
 * agents named, which it could not start. */
void hub_ready(
    struct hub_link *h, char (*not_started)[MSG_NAME_MAX], uint32_t n);
/* Sends the child's counters to the supervisor (no answer awaited). */
void hub_report(struct hub_link *h, const struct msg_report *r);

int broker_main(struct ev_loop *loop, const char *runtime, struct hub_link *hub,
    struct msg_setup *setup);
int worker_main(struct ev_loop *loop, const char *runtime, struct hub_link *hub,
    struct msg_setup *setup);

/* ctlclient.c: talking to a running supervisor, synchronously. */
/* How long the supervisor waits for a worker to carry out a command, and
 * a waited run to end (a queue behind cold loads); its clients wait a
 * little longer, so that they hear why when a worker does not answer. */
#define CTL_WORKER_MS 5000
#define CTL_RUN_WAIT_MS (30 * 60 * 1000)
#define CTL_CLIENT_MARGIN_MS 2000
/* A command carries out within a few ms: one the receiver takes up to this
 * long before its sender gives up is answered in time (see msg_clock_ms). */
#define CTL_ACT_MARGIN_MS 1000
/*
 * The "until" of a command sent now that its sender waits timeout_ms for
 * (half of that at least, for short waits); passed on for a command that
 * came with its own until (0: none), the earlier of the two.
 */
static inline int64_t
ctl_until(int64_t timeout_ms, int64_t came_with)
{
	int64_t margin = timeout_ms / 2 < CTL_ACT_MARGIN_MS ? timeout_ms / 2
	                                                    : CTL_ACT_MARGIN_MS;
	int64_t until = msg_clock_ms() + timeout_ms - margin;

	return came_with != 0 && came_with < until ? came_with : until;
}
/*
 * A command past its until is refused, since its sender counts it as
 * failed: carried out late it would leave an agent nobody knows of, or hand
 * on a message reported lost. 1 with why set and logged ("WHAT came N ms
 * past its deadline: not carried out"), else 0.
 */
int ctl_refused_late(int64_t until_ms, char *why, size_t whylen,
    const char *what_fmt, ...) __attribute__((format(printf, 4, 5)));
/* Runs waited on at once: each holds one of the ctl socket's contexts, and
 * a worker's, until its run is over, and the contexts of a socket are
 * bounded (ipc_listen). */
#define CTL_WAITED_RUNS_MAX 128
#define CTL_JSON 1 /* the answer's body as JSON */
#define CTL_WAIT 2 /* run: answer when the run is over, with its result */

#define CTL_UNREACHABLE 3 /* nobody takes the command */
#define CTL_UNANSWERED 4  /* taken, but no answer within the timeout */
#define CTL_CUT 5 /* sent, then the connection closed: perhaps carried out */
/* What answered is not a supervisor (a worker's socket, another program);
 * reply->error says what it said, or why its answer is none. */
#define CTL_NOT_SUPERVISOR 6
/* The socket is another user's: its supervisor would cut the connection
 * unread. reply->error says whose. */
#define CTL_OTHER_USER 7
/* A waited run's time ran out before a connection was made: nothing was
 * sent. */
#define CTL_UNSENT 8
/*
 * Sends verb (and arg, and input for run) to the supervisor listening on
 * the control socket ctl_path and waits up to timeout_ms for its answer;
 * a copy whose connection is cut is sent again within that time, under
 * the same id, which the supervisor carries out once. Returns 0 with
 * reply filled, or one of the CTL_ codes above (CTL_CUT when no copy was
 * answered).
 */
int ctl_call(const char *ctl_path, const char *verb, const char *arg,
    const char *input, int flags, int timeout_ms, struct msg_ctl_reply *reply);
/*
 * Asks it to stop and waits until it is gone: 0, 1 (still running after
 * 10 s) or 3 (no supervisor took the stop; why says what answered instead,
 * or is "" when nothing did).
 */
int ctl_stop_and_wait(
    const char *ctl_path, pid_t *pid, char *why, size_t whylen);
/* The pid that holds the supervisor's lock in the directory of ctl_path,
 * as /proc/locks tells (a supervisor lives there), or 0. */
pid_t ctl_lock_holder(const char *ctl_path);

#endif
