/*
 * fake_ctl: a peer on a control socket that is not a supervisor (not a
 * test by itself; tests/integration/supervisor.sh runs it). It answers
 * every command ok with the JSON body it is given, and prints the verb of
 * each command it gets, so that a test can tell that `ollamaxctl stop`
 * asked its status and then sent no stop. With "as-supervisor" its
 * answers say they are a supervisor's, as a stand-in for one. It exits on
 * SIGTERM, or after 60 s so that it never outlives a test that lost it.
 * Usage: fake_ctl SOCKET BODY [as-supervisor]
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include <ev.h>

#include "ipc.h"
#include "log.h"
#include "msg.h"

#include "fake_peer.h"

static const char *body;
static int as_supervisor;

static void
on_command(void *arg, struct ipc_call *call, const void *data, size_t len)
{
	struct msg_ctl_reply reply = {
	    .ok = 1, .body = (char *)body, .from_supervisor = as_supervisor};
	struct msg_reader r;
	struct msg_writer w;
	struct msg_ctl ctl;
	const char *out;
	size_t n;

	(void)arg;
	if (msg_open(&r, data, len) != MSG_OK ||
	    msg_ctl_decode(&r, &ctl) != MSG_OK) {
		msg_close(&r);
		ipc_drop(call);
		return;
	}
	msg_close(&r);
	printf("%s\n", ctl.verb);
	fflush(stdout);
	msg_ctl_free(&ctl);
	msg_ctl_reply_encode(&w, &reply);
	out = msg_data(&w, &n);
	ipc_reply(call, out, n);
	msg_writer_free(&w);
}

int
main(int argc, char **argv)
{
	struct ev_loop *loop = EV_DEFAULT;
	struct ipc_server *server;
	char url[300];

	if (argc < 3 || argc > 4 ||
	    (argc == 4 && strcmp(argv[3], "as-supervisor") != 0)) {
		fprintf(
		    stderr, "usage: fake_ctl SOCKET BODY [as-supervisor]\n");
		return 2;
	}
	body = argv[2];
	as_supervisor = argc == 4;
	log_init("fake_ctl", 0);
	snprintf(url, sizeof(url), "ipc://%s", argv[1]);
	server = ipc_listen(loop, url, 4, on_command, NULL);
	if (server == NULL)
		return 1;
	printf("listening\n");
	fflush(stdout);
	fake_peer_run(loop);
	ipc_server_close(server);
	return 0;
}
