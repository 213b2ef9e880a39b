/*
 * bench_ctl: the control socket's round trip, without the cost of starting
 * a process: `status` asked RUNS times on one connection, then RUNS times
 * on a new connection each (dial, ask, close). Prints p50 in microseconds.
 *
 *   bench_ctl RUNTIME_DIR RUNS
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "msg.h"
#include "bench_util.h"

/* One status request on sock; 0 when a ctl reply came back. */
static int
ask(nng_socket sock, const char *frame, size_t len)
{
	struct msg_reader r;
	struct msg_ctl_reply reply;
	void *buf;
	size_t n;
	int ok;

	if (nng_send(sock, (void *)frame, len, 0) != 0 ||
	    nng_recv(sock, &buf, &n, NNG_FLAG_ALLOC) != 0)
		return -1;
	ok = msg_open(&r, buf, n) == MSG_OK &&
	    msg_ctl_reply_decode(&r, &reply) == MSG_OK && reply.ok;
	if (ok)
		msg_ctl_reply_free(&reply);
	msg_close(&r);
	nng_free(buf, n);
	return ok ? 0 : -1;
}

static int
open_dialed(nng_socket *sock, const char *url)
{
	if (nng_req0_open(sock) != 0)
		return -1;
	nng_socket_set_ms(*sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(*sock, NNG_OPT_RECVTIMEO, 5000);
	nng_socket_set_size(*sock, NNG_OPT_RECVMAXSZ, MSG_MAX_FRAME + 1024);
	return nng_dial(*sock, url, NULL, 0);
}

int
main(int argc, char **argv)
{
	struct msg_ctl req = {.json = 1};
	struct msg_writer w;
	const char *frame;
	char url[4200];
	double *kept, *fresh;
	nng_socket sock;
	size_t len;
	int runs;

	if (argc != 3 || (runs = atoi(argv[2])) < 1) {
		fprintf(stderr, "usage: bench_ctl RUNTIME_DIR RUNS\n");
		return 2;
	}
	snprintf(url, sizeof(url), "ipc://%s/ctl.sock", argv[1]);
	snprintf(req.verb, sizeof(req.verb), "status");
	msg_ctl_encode(&w, &req);
	frame = msg_data(&w, &len);
	kept = calloc((size_t)runs, sizeof(double));
	fresh = calloc((size_t)runs, sizeof(double));
	if (kept == NULL || fresh == NULL || open_dialed(&sock, url) != 0) {
		fprintf(stderr, "bench_ctl: cannot reach %s\n", url);
		return 1;
	}
	for (int i = 0; i < runs; i++) {
		double t0 = bench_now_us();

		if (ask(sock, frame, len) != 0)
			return 1;
		kept[i] = bench_now_us() - t0;
	}
	nng_close(sock);
	for (int i = 0; i < runs; i++) {
		double t0 = bench_now_us();

		if (open_dialed(&sock, url) != 0 || ask(sock, frame, len) != 0)
			return 1;
		nng_close(sock);
		fresh[i] = bench_now_us() - t0;
	}
	qsort(kept, (size_t)runs, sizeof(double), bench_by_value);
	qsort(fresh, (size_t)runs, sizeof(double), bench_by_value);
	printf("connected_p50_us %.0f\nnew_connection_p50_us %.0f\n",
	    kept[runs / 2], fresh[runs / 2]);
	msg_writer_free(&w);
	free(kept);
	free(fresh);
	return 0;
}
