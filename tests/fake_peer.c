/* fake_peer.c: see fake_peer.h. */
#include "autoconf.h"

#include <signal.h>

#include "fake_peer.h"

static void
term_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static void
expire_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

void
fake_peer_run(struct ev_loop *loop)
{
	ev_signal term;
	ev_timer expire;

	ev_signal_init(&term, term_cb, SIGTERM);
	ev_signal_start(loop, &term);
	ev_timer_init(&expire, expire_cb, 60, 0);
	ev_timer_start(loop, &expire);
	ev_run(loop, 0);
	ev_signal_stop(loop, &term);
	ev_timer_stop(loop, &expire);
}
