/*
 * fake_peer: what the fake peers of the integration tests (fake_ctl,
 * fake_hub) share: each ends on SIGTERM, or after 60 s so that none
 * outlives a test that lost it.
 */
#ifndef OLLAMAX_FAKE_PEER_H
#define OLLAMAX_FAKE_PEER_H

#include <ev.h>

/* Runs loop until SIGTERM or 60 s. */
void fake_peer_run(struct ev_loop *loop);

#endif
