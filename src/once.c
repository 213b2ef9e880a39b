/*
 * once.c: the commands a supervisor remembers by id, with their answers
 * (see once.h). A table of at most ONCE_COMMANDS_MAX, searched in full:
 * commands come at the pace of people and scripts.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "once.h"

void
once_free(struct once_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->commands[i].answer);
	free(t->commands);
	memset(t, 0, sizeof(*t));
}

/* FNV-1a, each text ended by a byte no text holds, a missing one by
 * another. */
static uint64_t
print_text(uint64_t h, const char *text)
{
	if (text == NULL)
		return (h ^ 0xff) * 0x100000001b3ULL;
	for (; *text != '\0'; text++)
		h = (h ^ (unsigned char)*text) * 0x100000001b3ULL;
	return h * 0x100000001b3ULL;
}

uint64_t
once_print(const char *verb, const char *arg, const char *input, int wait)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	h = print_text(h, verb);
	h = print_text(h, arg);
	h = print_text(h, input);
	return (h ^ (wait != 0)) * 0x100000001b3ULL;
}

static void
forget_at(struct once_table *t, size_t i)
{
	t->answer_bytes -= t->commands[i].answer_len;
	free(t->commands[i].answer);
	t->commands[i] = t->commands[--t->n];
}

/* The answered command kept for the shortest time, other than except;
 * t->n if none. */
static size_t
oldest_answered(const struct once_table *t, const struct once_command *except)
{
	size_t oldest = t->n;

	for (size_t i = 0; i < t->n; i++)
		if (t->commands[i].answer != NULL &&
		    &t->commands[i] != except &&
		    (oldest == t->n ||
		        t->commands[i].keep_ms < t->commands[oldest].keep_ms))
			oldest = i;
	return oldest;
}

static struct once_command *
find(struct once_table *t, uint64_t id)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->commands[i].id == id)
			return &t->commands[i];
	return NULL;
}

void
once_forget_old(struct once_table *t, int64_t now_ms)
{
	for (size_t i = 0; i < t->n;)
		if (t->commands[i].answer != NULL &&
		    t->commands[i].keep_ms < now_ms)
			forget_at(t, i);
		else
			i++;
}

enum once_seen
once_begin(struct once_table *t, uint64_t id, uint64_t print, int64_t keep_ms,
    int64_t now_ms, void *waiter, const char **answer, size_t *len)
{
	struct once_command *c;
	size_t oldest;

	once_forget_old(t, now_ms);
	if ((c = find(t, id)) != NULL) {
		if (c->print != print)
			return ONCE_OTHER;
		if (c->answer == NULL && c->nwaiters == ONCE_WAITERS_MAX)
			return ONCE_BUSY;
		/* A later copy may be acted on later: kept for it too. */
		if (keep_ms > c->keep_ms)
			c->keep_ms = keep_ms;
		if (c->answer == NULL) {
			c->waiters[c->nwaiters++] = waiter;
			return ONCE_JOINED;
		}
		*answer = c->answer;
		*len = c->answer_len;
		return ONCE_ANSWERED;
	}
	if (t->n == ONCE_COMMANDS_MAX) {
		/* Its copies, if any come, would be carried out again. */
		if ((oldest = oldest_answered(t, NULL)) == t->n)
			return ONCE_BUSY;
		log_warnx("forgetting the answer of a command before its "
		          "time: %d commands came within it",
		    ONCE_COMMANDS_MAX);
		forget_at(t, oldest);
	}
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->commands =
		    realloc(t->commands, t->cap * sizeof(*t->commands));
		if (t->commands == NULL)
			fatal("out of memory");
	}
	c = &t->commands[t->n++];
	memset(c, 0, sizeof(*c));
	c->id = id;
	c->print = print;
	c->keep_ms = keep_ms;
	c->waiters[c->nwaiters++] = waiter;
	return ONCE_NEW;
}

void
once_answer(struct once_table *t, void *waiter, const void *data, size_t len,
    int64_t now_ms, once_reply_fn reply)
{
	struct once_command *c = NULL;
	void *waiters[ONCE_WAITERS_MAX];
	int nwaiters;
	size_t oldest;

	for (size_t i = 0; i < t->n && c == NULL; i++)
		for (int w = 0; w < t->commands[i].nwaiters; w++)
			if (t->commands[i].answer == NULL &&
			    t->commands[i].waiters[w] == waiter)
				c = &t->commands[i];
	if (c == NULL) {
		reply(waiter, data, len);
		return;
	}
	nwaiters = c->nwaiters;
	memcpy(waiters, c->waiters, sizeof(waiters));
	c->nwaiters = 0;
	/* Nothing to wait for once the answer is given, when no copy can be
	 * acted on any more. */
	if (c->keep_ms < now_ms) {
		forget_at(t, (size_t)(c - t->commands));
	} else {
		while (t->answer_bytes + len > ONCE_ANSWER_BYTES_MAX &&
		    (oldest = oldest_answered(t, c)) < t->n) {
			if (t->commands[oldest].keep_ms >= now_ms)
				log_warnx(
				    "forgetting the answer of a command "
				    "before its time: answers over %d MiB",
				    ONCE_ANSWER_BYTES_MAX / (1024 * 1024));
			/* The last one moves into the gap: c with it. */
			if (c == &t->commands[t->n - 1])
				c = &t->commands[oldest];
			forget_at(t, oldest);
		}
		if ((c->answer = malloc(len > 0 ? len : 1)) == NULL)
			fatal("out of memory");
		memcpy(c->answer, data, len);
		c->answer_len = len;
		t->answer_bytes += len;
	}
	for (int w = 0; w < nwaiters; w++)
		reply(waiters[w], data, len);
}
