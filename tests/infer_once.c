/*
 * infer_once: one infer frame to the broker, as a worker sends it, and its
 * answer printed as "STATUS: TEXT OR ERROR" (not a test by itself;
 * tests/integration/frames.sh runs it). Lets a test send what no worker
 * would, such as an empty prompt.
 * Usage: infer_once BROKER_URL TIER PROMPT
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "msg.h"

int
main(int argc, char **argv)
{
	struct msg_infer req = {.id = 1,
	    .worker = 4001,
	    .priority = PRIO_NORMAL,
	    .num_predict = 8,
	    .temperature = -1};
	static const char *const statuses[] = {
	    [INFER_OK] = "ok",
	    [INFER_FAILED] = "failed",
	    [INFER_UNAVAILABLE] = "unavailable",
	};
	struct msg_infer_done done;
	struct msg_writer w;
	struct msg_reader r;
	nng_socket sock;
	const char *data;
	void *buf;
	size_t len;

	if (argc != 4) {
		fprintf(stderr, "usage: infer_once BROKER_URL TIER PROMPT\n");
		return 2;
	}
	req.prompt = argv[3];
	snprintf(req.agent, sizeof(req.agent), "infer_once");
	snprintf(req.tier, sizeof(req.tier), "%s", argv[2]);
	msg_infer_encode(&w, &req);
	data = msg_data(&w, &len);
	if (nng_req0_open(&sock) != 0 ||
	    nng_dial(sock, argv[1], NULL, 0) != 0) {
		fprintf(stderr, "infer_once: cannot dial %s\n", argv[1]);
		return 1;
	}
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 20000);
	if (nng_send(sock, (void *)data, len, 0) != 0 ||
	    nng_recv(sock, &buf, &len, NNG_FLAG_ALLOC) != 0) {
		fprintf(stderr, "infer_once: no answer\n");
		return 1;
	}
	if (msg_open(&r, buf, len) != MSG_OK ||
	    msg_infer_done_decode(&r, &done) != MSG_OK) {
		fprintf(stderr, "infer_once: a bad answer frame\n");
		return 1;
	}
	printf("%s: %s\n",
	    done.status >= 0 && done.status <= INFER_UNAVAILABLE
	        ? statuses[done.status]
	        : "?",
	    done.status == INFER_OK && done.text ? done.text : done.error);
	msg_infer_done_free(&done);
	msg_close(&r);
	nng_free(buf, len);
	msg_writer_free(&w);
	nng_close(sock);
	return 0;
}
