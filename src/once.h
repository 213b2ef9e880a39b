/*
 * once.h: a command carried out once, however many copies of it come.
 *
 * ollamaxctl sends a command again, unchanged and under the same id, when
 * its connection was cut before the answer came (a listener put back, see
 * ipc.c): the first copy may not have been read, or be under way, or be
 * done with its answer lost. The supervisor remembers the commands that
 * change something by their id, with their answer: a copy of one under way
 * waits for that one's answer, and a copy of one answered gets its answer
 * again. Pure: no sockets and no clock of its own; a waiter is the
 * caller's (an ipc_call), answered through the function it gives.
 */
#ifndef OLLAMAX_ONCE_H
#define OLLAMAX_ONCE_H

#include <stddef.h>
#include <stdint.h>

/* Commands remembered at once: those under way, and those answered that a
 * copy may still come for. Copies come within a client's time (7 s, or a
 * waited run's 30 min), so a burst of commands is what fills it. */
#define ONCE_COMMANDS_MAX 1024
/* Bytes of answers kept: a waited run's answer may take 2 MiB. */
#define ONCE_ANSWER_BYTES_MAX (16 * 1024 * 1024)
/* Copies of one command waiting at once: a client sends one at a time,
 * and the first may be left by a cut connection. */
#define ONCE_WAITERS_MAX 8

struct once_command {
	uint64_t id;
	uint64_t print;  /* once_print of the command: its copies share it */
	int64_t keep_ms; /* answered: forgotten after then */
	char *answer;    /* NULL while under way */
	size_t answer_len;
	void *waiters[ONCE_WAITERS_MAX]; /* under way: copies to answer */
	int nwaiters;
};

/* Zeroed, it remembers nothing. */
struct once_table {
	struct once_command *commands;
	size_t n, cap;
	size_t answer_bytes;
};

enum once_seen {
	ONCE_NEW,      /* to carry out, then to answer with once_answer */
	ONCE_JOINED,   /* under way: once_answer answers this copy too */
	ONCE_ANSWERED, /* done: its answer is to be sent again */
	ONCE_OTHER,    /* the id came before with another command */
	ONCE_BUSY,     /* too many commands under way, or copies of it */
};

typedef void (*once_reply_fn)(void *waiter, const void *data, size_t len);

/* Forgets everything; waiters are not answered. */
void once_free(struct once_table *t);

/* What a command is, as far as its answer goes: its copies have the same
 * print; another command under their id most likely not. */
uint64_t once_print(
    const char *verb, const char *arg, const char *input, int wait);

/*
 * Looks up command id for waiter, a copy that can still be acted on up to
 * keep_ms: the command is remembered until then at least, once answered.
 * ONCE_NEW remembers it as under way, waiter waiting; ONCE_ANSWERED sets
 * *answer and *len to its answer, valid until the table next changes.
 * ONCE_OTHER and ONCE_BUSY remember nothing of this copy.
 */
enum once_seen once_begin(struct once_table *t, uint64_t id, uint64_t print,
    int64_t keep_ms, int64_t now_ms, void *waiter, const char **answer,
    size_t *len);

/*
 * Answers waiter with data: and, if it waits for a remembered command,
 * every copy that waits with it, the answer kept for copies to come.
 * Answers that no longer fit push out the oldest. Each waiter gets reply
 * once.
 */
void once_answer(struct once_table *t, void *waiter, const void *data,
    size_t len, int64_t now_ms, once_reply_fn reply);

/* Forgets the answered commands kept up to before now_ms. */
void once_forget_old(struct once_table *t, int64_t now_ms);

#endif
