/*
 * many_waiting: a fleet's worth of inference requests waiting at the
 * broker at once, then a cancel (not a test by itself;
 * tests/integration/priority.sh runs it). Each request goes on a context
 * of its own, and its answer is not waited for; the cancel, of a request
 * never sent, is sent and its answer waited for, 5 s at most each. Prints
 * "the cancel was answered" or "the cancel was not answered".
 * Usage: many_waiting BROKER_URL TIER COUNT
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "msg.h"

/* The answers of the requests are for nobody: none is read. */
static void
unread(void *arg)
{
	(void)arg;
}

int
main(int argc, char **argv)
{
	uint64_t base = (uint64_t)getpid() << 32;
	struct msg_cancel cancel = {.worker = 4002};
	struct msg_writer w;
	nng_socket sock;
	nng_ctx *ctxs;
	nng_aio **aios;
	const char *data;
	void *answer;
	size_t len;
	int count;

	if (argc != 4 || (count = atoi(argv[3])) <= 0) {
		fprintf(stderr, "usage: many_waiting BROKER_URL TIER COUNT\n");
		return 2;
	}
	ctxs = calloc((size_t)count, sizeof(*ctxs));
	aios = calloc((size_t)count, sizeof(*aios));
	if (ctxs == NULL || aios == NULL || nng_req0_open(&sock) != 0 ||
	    nng_dial(sock, argv[1], NULL, 0) != 0) {
		fprintf(stderr, "many_waiting: cannot dial %s\n", argv[1]);
		return 1;
	}
	for (int i = 0; i < count; i++) {
		struct msg_infer req = {.id = base | (uint64_t)(i + 1),
		    .worker = 4002,
		    .priority = PRIO_NORMAL,
		    .prompt = "wait",
		    .num_predict = 1,
		    .temperature = -1};
		nng_msg *m;

		snprintf(req.agent, sizeof(req.agent), "waiter%d", i);
		snprintf(req.tier, sizeof(req.tier), "%s", argv[2]);
		msg_infer_encode(&w, &req);
		data = msg_data(&w, &len);
		if (nng_ctx_open(&ctxs[i], sock) != 0 ||
		    nng_aio_alloc(&aios[i], unread, NULL) != 0 ||
		    nng_msg_alloc(&m, 0) != 0 ||
		    nng_msg_append(m, data, len) != 0) {
			fprintf(stderr, "many_waiting: out of memory\n");
			return 1;
		}
		msg_writer_free(&w);
		nng_aio_set_msg(aios[i], m);
		nng_aio_set_timeout(aios[i], 5000);
		nng_ctx_send(ctxs[i], aios[i]);
	}
	cancel.id = base | (uint64_t)(count + 1);
	msg_cancel_encode(&w, &cancel);
	data = msg_data(&w, &len);
	nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 5000);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 5000);
	/* The requests are on their way first: each send completes as it
	 * is written. */
	for (int i = 0; i < count; i++)
		nng_aio_wait(aios[i]);
	if (nng_send(sock, (void *)data, len, 0) == 0 &&
	    nng_recv(sock, &answer, &len, NNG_FLAG_ALLOC) == 0) {
		puts("the cancel was answered");
		nng_free(answer, len);
	} else {
		puts("the cancel was not answered");
	}
	msg_writer_free(&w);
	nng_close(sock);
	for (int i = 0; i < count; i++)
		nng_aio_free(aios[i]);
	free(ctxs);
	free(aios);
	return 0;
}
