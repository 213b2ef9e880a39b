#include "autoconf.h"

#include <stdio.h>

#include <nng/nng.h>

#include "ctl_reply.h"
#include "msg.h"

int
ctl_reply_print(void *buf, size_t len)
{
	struct msg_ctl_reply reply;
	struct msg_reader r;
	int ok;

	if (msg_open(&r, buf, len) != MSG_OK ||
	    msg_ctl_reply_decode(&r, &reply) != MSG_OK) {
		printf("refused: bad answer (%s)\n", r.detail);
		ok = 0;
	} else {
		ok = reply.ok;
		if (ok)
			printf("ok\n");
		else
			printf("refused: %s\n", reply.error);
		msg_ctl_reply_free(&reply);
	}
	msg_close(&r);
	nng_free(buf, len);
	return ok;
}
