/*
 * frame_storm: throws bad frames at a live ollamax socket (not a test by
 * itself; tests/integration/frames.sh runs it). Truncated, mistyped,
 * oversized and random frames, each sent on a fresh request; prints how
 * many got an answer, and exits 0 once all were sent.
 * Usage: frame_storm URL COUNT SEED
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "msg.h"

static uint64_t rng;

static uint64_t
next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* One bad frame of kind k into buf; returns its length. */
static size_t
bad_frame(int k, char *buf, size_t cap)
{
	struct msg_writer w;
	struct msg_infer m = {.id = 1, .prompt = "p", .system = "s"};
	const char *data;
	size_t len, n = 0;

	strcpy(m.agent, "storm");
	strcpy(m.tier, "light");
	switch (k) {
	case 0: /* a valid inference frame, cut short */
	case 1: /* the same with bytes flipped */
		msg_infer_encode(&w, &m);
		data = msg_data(&w, &len);
		n = len < cap ? len : cap;
		memcpy(buf, data, n);
		msg_writer_free(&w);
		if (k == 0)
			n = next() % n;
		else
			for (int i = 0; i < 4; i++)
				buf[next() % n] ^= (char)next();
		break;
	case 2: /* right shape, wrong types */
		msg_begin(&w, MSG_INFER, 3);
		msg_put_str(&w, "id", "one");
		msg_put_int(&w, "worker", -5);
		msg_put_int(&w, "prompt", 42);
		data = msg_data(&w, &len);
		n = len;
		memcpy(buf, data, n);
		msg_writer_free(&w);
		break;
	case 3: /* a map declaring far more than it holds */
		n = 5;
		memcpy(buf, "\xdf\x7f\xff\xff\xff", n);
		break;
	case 4: /* other protocol version */
		msg_begin(&w, MSG_CTL, 1);
		msg_put_str(&w, "verb", "status");
		data = msg_data(&w, &len);
		n = len;
		memcpy(buf, data, n);
		buf[3] = 99; /* "v" value follows the "v" key: a fixint */
		msg_writer_free(&w);
		break;
	default: /* random bytes */
		n = next() % cap;
		for (size_t i = 0; i < n; i++)
			buf[i] = (char)next();
		break;
	}
	return n;
}

int
main(int argc, char **argv)
{
	static char buf[4096];
	nng_socket sock;
	int count, answered = 0, oversized_refused;
	char *big;

	if (argc != 4) {
		fprintf(stderr, "usage: frame_storm URL COUNT SEED\n");
		return 2;
	}
	count = atoi(argv[2]);
	rng = strtoull(argv[3], NULL, 10) * 0x9E3779B97F4A7C15ULL + 1;
	if (nng_req0_open(&sock) != 0 ||
	    nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 100) != 0 ||
	    nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 1000) != 0 ||
	    nng_socket_set_ms(
	        sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE) != 0 ||
	    nng_dial(sock, argv[1], NULL, 0) != 0) {
		fprintf(stderr, "frame_storm: cannot dial %s\n", argv[1]);
		return 1;
	}
	for (int i = 0; i < count; i++) {
		size_t n = bad_frame(i % 6, buf, sizeof(buf));
		void *reply;
		size_t rlen;

		if (n == 0)
			n = 1;
		if (nng_send(sock, buf, n, 0) != 0)
			continue;
		if (nng_recv(sock, &reply, &rlen, NNG_FLAG_ALLOC) == 0) {
			answered++;
			nng_free(reply, rlen);
		}
	}
	/* A frame over the receive limit: the peer drops the connection. */
	big = calloc(1, MSG_MAX_FRAME * 2);
	oversized_refused = nng_send(sock, big, MSG_MAX_FRAME * 2, 0) == 0;
	free(big);
	printf("sent %d bad frames, %d answered, oversized sent %d\n", count,
	    answered, oversized_refused);
	fflush(stdout);
	/* nng_close can wait on the pipe the peer dropped: just leave. */
	_exit(0);
}
