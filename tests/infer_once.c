/*
 * infer_once: one infer frame to the broker, as a worker sends it, and its
 * answer printed as "STATUS: TEXT OR ERROR" (not a test by itself;
 * tests/integration/frames.sh runs it). Lets a test send what no worker
 * would, such as an empty prompt, a cancel that comes before its request
 * (-c; -g: from an agent that gave up waiting, not one stopped), or a
 * hello before it from the process its id names (-H). Its frames say that
 * process started at STARTED clock ticks after boot (-S; else they do not
 * say).
 * The request's id is one of its own, or ID: the broker answers a request
 * it has just answered with that answer again. It comes from worker 4001,
 * which no supervisor runs, or from WORKER, asks for 8 tokens, or TOKENS,
 * and is of normal priority, or PRIORITY (low, normal, high).
 * Usage: infer_once [-c [-g]] [-H] [-S STARTED] [-i ID] [-w WORKER] [-n TOKENS]
 *        [-p PRIORITY] BROKER_URL TIER PROMPT
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "msg.h"

/* Sends one frame and returns its answer, NULL if none came. */
static void *
ask(nng_socket sock, const char *data, size_t *len)
{
	void *buf;

	if (nng_send(sock, (void *)data, *len, 0) != 0 ||
	    nng_recv(sock, &buf, len, NNG_FLAG_ALLOC) != 0)
		return NULL;
	return buf;
}

/* Sends the frame w holds before the request, and drops its answer. */
static int
send_before(nng_socket sock, struct msg_writer *w, const char *what)
{
	size_t len;
	const char *data = msg_data(w, &len);
	void *buf = ask(sock, data, &len);

	msg_writer_free(w);
	if (buf == NULL) {
		fprintf(stderr, "infer_once: the %s had no answer\n", what);
		return -1;
	}
	nng_free(buf, len);
	return 0;
}

int
main(int argc, char **argv)
{
	struct msg_infer req = {.id = (uint64_t)getpid() << 32,
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

	int cancel_first = 0, given_up = 0, hello_first = 0, opt;

	while ((opt = getopt(argc, argv, "cgHi:n:p:S:w:")) != -1) {
		if (opt == 'c')
			cancel_first = 1;
		else if (opt == 'H')
			hello_first = 1;
		else if (opt == 'g')
			given_up = 1;
		else if (opt == 'i')
			req.id = strtoull(optarg, NULL, 10);
		else if (opt == 'S')
			req.started = strtoull(optarg, NULL, 10);
		else if (opt == 'w')
			req.worker = atoi(optarg);
		else if (opt == 'n')
			req.num_predict = atoi(optarg);
		else if (opt == 'p' && strcmp(optarg, "low") == 0)
			req.priority = PRIO_LOW;
		else if (opt == 'p' && strcmp(optarg, "high") == 0)
			req.priority = PRIO_HIGH;
		else if (opt == 'p' && strcmp(optarg, "normal") == 0)
			req.priority = PRIO_NORMAL;
		else
			goto usage;
	}
	if (argc - optind != 3)
		goto usage;
	argv += optind;
	if (nng_req0_open(&sock) != 0 ||
	    nng_dial(sock, argv[0], NULL, 0) != 0) {
		fprintf(stderr, "infer_once: cannot dial %s\n", argv[0]);
		return 1;
	}
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 20000);
	if (hello_first) {
		struct msg_hello h = {.role = ROLE_WORKER,
		    .index = req.worker,
		    .pid = (int64_t)(req.id >> 32),
		    .started = req.started};

		msg_hello_encode(&w, &h);
		if (send_before(sock, &w, "hello") != 0)
			return 1;
	}
	if (cancel_first) {
		struct msg_cancel c = {.id = req.id,
		    .worker = req.worker,
		    .started = req.started,
		    .given_up = given_up};

		msg_cancel_encode(&w, &c);
		if (send_before(sock, &w, "cancel") != 0)
			return 1;
	}
	req.prompt = argv[2];
	snprintf(req.agent, sizeof(req.agent), "infer_once");
	snprintf(req.tier, sizeof(req.tier), "%s", argv[1]);
	msg_infer_encode(&w, &req);
	data = msg_data(&w, &len);
	if ((buf = ask(sock, data, &len)) == NULL) {
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
usage:
	fprintf(stderr,
	    "usage: infer_once [-c [-g]] [-H] [-S STARTED] [-i ID] "
	    "[-w WORKER] [-n TOKENS] [-p PRIORITY] BROKER_URL TIER PROMPT\n");
	return 2;
}
