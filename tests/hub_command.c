/*
 * hub_command: one kill or restart to a worker's socket, as the supervisor
 * passes it on (not a test by itself; tests/integration/cancel.sh runs
 * it). Lets a test reach a worker while its supervisor is stopped. Prints
 * "ok" or "refused: ERROR"; exits 0 when the worker carried it out.
 * Usage: hub_command WORKER_URL VERB AGENT [UNTIL_MS]
 * VERB deliver sends a message to AGENT whose run is waited for, to be
 * run by UNTIL_MS on msg_clock_ms (by default, as a command's); it is
 * answered once the run is over, or CTL_WORKER_MS passes.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "ctl_reply.h"
#include "msg.h"
#include "role.h"

int
main(int argc, char **argv)
{
	struct msg_ctl cmd = {.from_supervisor = 1};
	struct msg_deliver d = {.from = "ollamaxctl", .input = "x", .wait = 1};
	struct msg_writer w;
	nng_socket sock;
	const char *data;
	void *buf;
	size_t len;
	int ok;

	if (argc != 4 && argc != 5) {
		fprintf(stderr,
		    "usage: hub_command WORKER_URL VERB AGENT [UNTIL_MS]\n");
		return 2;
	}
	snprintf(cmd.verb, sizeof(cmd.verb), "%s", argv[2]);
	cmd.arg = argv[3];
	cmd.until_ms = argc == 5 ? strtoll(argv[4], NULL, 10)
	                         : ctl_until(CTL_WORKER_MS, 0);
	snprintf(d.to, sizeof(d.to), "%s", argv[3]);
	d.until_ms = cmd.until_ms;
	if (nng_req0_open(&sock) != 0 ||
	    nng_dial(sock, argv[1], NULL, 0) != 0) {
		fprintf(stderr, "hub_command: cannot reach %s\n", argv[1]);
		return 1;
	}
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, CTL_WORKER_MS);
	if (strcmp(cmd.verb, "deliver") == 0)
		msg_deliver_encode(&w, &d);
	else
		msg_ctl_encode(&w, &cmd);
	data = msg_data(&w, &len);
	if (nng_send(sock, (void *)data, len, 0) != 0 ||
	    nng_recv(sock, &buf, &len, NNG_FLAG_ALLOC) != 0) {
		fprintf(stderr, "hub_command: no answer from %s\n", argv[1]);
		msg_writer_free(&w);
		nng_close(sock);
		return 1;
	}
	msg_writer_free(&w);
	ok = ctl_reply_print(buf, len);
	nng_close(sock);
	return ok ? 0 : 1;
}
