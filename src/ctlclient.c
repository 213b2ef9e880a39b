/*
 * ctlclient.c: one synchronous request to a running supervisor's control
 * socket, for ollamaxctl and `ollamax-supervisor stop`.
 */
#include "autoconf.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "msg.h"
#include "role.h"

int
ctl_call(const char *runtime, const char *verb, const char *arg,
    const char *input, int flags, int timeout_ms, struct msg_ctl_reply *reply)
{
	struct msg_ctl req = {.json = (flags & CTL_JSON) != 0,
	    .wait = (flags & CTL_WAIT) != 0,
	    .arg = (char *)arg,
	    .input = (char *)input};
	struct msg_writer w;
	struct msg_reader r;
	nng_socket sock;
	char url[4200];
	const char *data;
	size_t len;
	void *buf = NULL;
	int rv;

	memset(reply, 0, sizeof(*reply));
	snprintf(req.verb, sizeof(req.verb), "%s", verb);
	snprintf(url, sizeof(url), "ipc://%s/ctl.sock", runtime);
	if (nng_req0_open(&sock) != 0)
		return CTL_UNREACHABLE;
	nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, timeout_ms);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, MSG_MAX_FRAME + 1024);
	/* A blocking dial fails at once when nobody listens: unreachable. */
	if (nng_dial(sock, url, NULL, 0) != 0) {
		nng_close(sock);
		return CTL_UNREACHABLE;
	}
	req.until_ms = ctl_until(timeout_ms, 0);
	msg_ctl_encode(&w, &req);
	data = msg_data(&w, &len);
	rv = nng_send(sock, (void *)data, len, 0);
	msg_writer_free(&w);
	if (rv != 0) {
		nng_close(sock);
		return CTL_UNREACHABLE;
	}
	rv = nng_recv(sock, &buf, &len, NNG_FLAG_ALLOC);
	nng_close(sock);
	if (rv != 0)
		return rv == NNG_ETIMEDOUT ? CTL_UNANSWERED : CTL_UNREACHABLE;
	if (msg_open(&r, buf, len) != MSG_OK ||
	    msg_ctl_reply_decode(&r, reply) != MSG_OK) {
		snprintf(reply->error, sizeof(reply->error),
		    "bad answer from the supervisor (%s)", r.detail);
		reply->ok = 0;
	}
	msg_close(&r);
	nng_free(buf, len);
	return 0;
}

int
ctl_stop_and_wait(const char *runtime, pid_t *pid)
{
	struct msg_ctl_reply reply;
	json_t *status;
	struct timespec tick = {0, 20 * 1000000};
	int ok;

	*pid = 0;
	if (ctl_call(runtime, "status", NULL, NULL, CTL_JSON,
	        CTL_WORKER_MS + CTL_CLIENT_MARGIN_MS, &reply) != 0)
		return 3;
	status = reply.ok && reply.body ? json_loads(reply.body, 0, NULL) : NULL;
	if (status != NULL)
		*pid = (pid_t)json_integer_value(json_object_get(
		    json_object_get(status, "supervisor"), "pid"));
	json_decref(status);
	msg_ctl_reply_free(&reply);
	/* Whatever answers without a supervisor's pid is none. */
	if (*pid <= 0)
		return 3;
	if (ctl_call(runtime, "stop", NULL, NULL, 0,
	        CTL_WORKER_MS + CTL_CLIENT_MARGIN_MS, &reply) != 0)
		return 3;
	ok = reply.ok;
	msg_ctl_reply_free(&reply);
	if (!ok)
		return 3;
	/* The supervisor gives its children 5 s, then kills them. */
	for (int i = 0; i < 500; i++) {
		if (*pid <= 0 || (kill(*pid, 0) != 0 && errno == ESRCH))
			return 0;
		nanosleep(&tick, NULL);
	}
	return 1;
}
