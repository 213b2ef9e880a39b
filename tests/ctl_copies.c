/*
 * ctl_copies: one command sent to a supervisor's control socket twice under
 * one id, as ollamaxctl sends it again after a cut connection (not a test
 * by itself; tests/integration/supervisor.sh runs it). Each copy goes on a
 * connection of its own; with --first-cut the first connection is closed
 * 500 ms after its copy went, unanswered, as a listener put back closes
 * it, so that the second copy comes while the first may be under way.
 * ID is a number, or any other text, sent as a string: an id that is no
 * id. Prints each answer, "ok" or "refused: ERROR"; exits 0 when every
 * answer came, and said ok.
 * Usage: ctl_copies [--first-cut] SOCKET ID VERB [ARG]
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

/* The frame msg_ctl_encode writes, but for an id that may be text. */
static void
encode(struct msg_writer *w, const char *verb, const char *arg, const char *id)
{
	char *end;
	unsigned long long n = strtoull(id, &end, 10);

	msg_begin(w, MSG_CTL, arg != NULL ? 4 : 3);
	msg_put_str(w, "verb", verb);
	msg_put_int(w, "until", ctl_until(CTL_WORKER_MS, 0));
	if (*id != '\0' && *end == '\0')
		msg_put_uint(w, "id", n);
	else
		msg_put_str(w, "id", id);
	if (arg != NULL)
		msg_put_str(w, "arg", arg);
}

/* Sends one copy; 1 if its answer came and said ok. With cut_ms, closes
 * the connection after that long without the answer, and returns 1. */
static int
send_copy(const char *url, const char *verb, const char *arg, const char *id,
    int cut_ms)
{
	struct msg_writer w;
	nng_socket sock;
	const char *data;
	void *buf;
	size_t len;
	int ok, rv;

	if (nng_req0_open(&sock) != 0 || nng_dial(sock, url, NULL, 0) != 0) {
		printf("unreachable: %s\n", url);
		return 0;
	}
	nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO,
	    cut_ms > 0 ? cut_ms : CTL_WORKER_MS + CTL_CLIENT_MARGIN_MS);
	encode(&w, verb, arg, id);
	data = msg_data(&w, &len);
	rv = nng_send(sock, (void *)data, len, 0);
	msg_writer_free(&w);
	if (rv == 0)
		rv = nng_recv(sock, &buf, &len, NNG_FLAG_ALLOC);
	if (cut_ms > 0 && rv == NNG_ETIMEDOUT) {
		/* Its answer is due seconds later, when the worker resumes:
		 * no timeout races it, which nng 1.5.2's close would hang
		 * on (see ctlclient.c). */
		nng_close(sock);
		printf("cut\n");
		return 1;
	}
	nng_close(sock);
	if (rv != 0) {
		printf("no answer: %s\n", nng_strerror(rv));
		return 0;
	}
	ok = ctl_reply_print(buf, len);
	return ok;
}

int
main(int argc, char **argv)
{
	int first_cut = argc > 1 && strcmp(argv[1], "--first-cut") == 0;
	char url[300];
	int ok;

	argv += first_cut;
	argc -= first_cut;
	if (argc < 4 || argc > 5) {
		fprintf(stderr,
		    "usage: ctl_copies [--first-cut] SOCKET ID "
		    "VERB [ARG]\n");
		return 2;
	}
	snprintf(url, sizeof(url), "ipc://%s", argv[1]);
	ok = send_copy(url, argv[3], argv[4], argv[2], first_cut ? 500 : 0);
	fflush(stdout);
	ok &= send_copy(url, argv[3], argv[4], argv[2], 0);
	return ok ? 0 : 1;
}
