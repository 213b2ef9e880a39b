/*
 * ctl_reply: what the test clients that send ctl frames by hand
 * (ctl_copies, hub_command) print of an answer.
 */
#ifndef OLLAMAX_CTL_REPLY_H
#define OLLAMAX_CTL_REPLY_H

#include <stddef.h>

/* Prints "ok", or "refused: ERROR" (a bad answer too), and frees buf,
 * which nng allocated. Returns whether the answer was ok. */
int ctl_reply_print(void *buf, size_t len);

#endif
