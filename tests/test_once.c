/*
 * once.c: copies of a command under one id, answered as the first and
 * carried out once; the table bounded, and what it forgets.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "once.h"

/* What each waiter was answered, in the order of the answers. */
static char answered[64][32];
static int nanswered;

static void
record(void *waiter, const void *data, size_t len)
{
	snprintf(answered[nanswered++], sizeof(answered[0]), "%s:%.*s",
	    (const char *)waiter, (int)len, (const char *)data);
}

static void
reset(void)
{
	nanswered = 0;
}

TestSuite(once, .init = reset);

static enum once_seen
begin(struct once_table *t, uint64_t id, uint64_t print, int64_t keep_ms,
    int64_t now_ms, const char *waiter)
{
	const char *answer;
	size_t len;

	return once_begin(
	    t, id, print, keep_ms, now_ms, (void *)waiter, &answer, &len);
}

Test(once, a_copy_after_the_answer_gets_that_answer_and_is_not_carried_out)
{
	struct once_table t = {0};
	uint64_t print = once_print("kill", "probe", NULL, 0);
	const char *answer = NULL;
	size_t len = 0;

	cr_assert_eq(begin(&t, 7, print, 5000, 0, "first"), ONCE_NEW);
	once_answer(&t, "first", "ok", 2, 100, record);
	cr_assert_eq(nanswered, 1);
	cr_assert_str_eq(answered[0], "first:ok");
	cr_assert_eq(
	    once_begin(&t, 7, print, 5000, 200, "again", &answer, &len),
	    ONCE_ANSWERED);
	cr_assert_eq(len, 2);
	cr_assert_eq(memcmp(answer, "ok", 2), 0);
	once_free(&t);
}

Test(once, a_copy_while_the_first_is_under_way_is_answered_with_it)
{
	struct once_table t = {0};
	uint64_t print = once_print("run", "probe", "text", 1);

	cr_assert_eq(begin(&t, 7, print, 5000, 0, "first"), ONCE_NEW);
	cr_assert_eq(begin(&t, 7, print, 5000, 10, "again"), ONCE_JOINED);
	cr_assert_eq(nanswered, 0);
	once_answer(&t, "first", "done", 4, 100, record);
	cr_assert_eq(nanswered, 2);
	cr_assert_str_eq(answered[0], "first:done");
	cr_assert_str_eq(answered[1], "again:done");
	once_free(&t);
}

Test(once, another_command_under_a_known_id_is_refused)
{
	struct once_table t = {0};

	cr_assert_eq(begin(&t, 7, once_print("kill", "probe", NULL, 0), 5000, 0,
	                 "first"),
	    ONCE_NEW);
	cr_assert_eq(begin(&t, 7, once_print("kill", "other", NULL, 0), 5000, 0,
	                 "other"),
	    ONCE_OTHER);
	cr_assert_eq(begin(&t, 7, once_print("spawn", "probe", NULL, 0), 5000,
	                 0, "other"),
	    ONCE_OTHER);
	cr_assert_eq(
	    begin(&t, 7, once_print("kill", "probe", "", 0), 5000, 0, "other"),
	    ONCE_OTHER);
	once_answer(&t, "first", "ok", 2, 100, record);
	cr_assert_eq(nanswered, 1, "the refused copies wait for nothing");
	once_free(&t);
}

Test(once, a_waiter_of_no_remembered_command_is_answered_alone)
{
	struct once_table t = {0};

	cr_assert_eq(begin(&t, 7, 1, 5000, 0, "first"), ONCE_NEW);
	once_answer(&t, "look", "status", 6, 10, record);
	cr_assert_eq(nanswered, 1);
	cr_assert_str_eq(answered[0], "look:status");
	once_answer(&t, "first", "ok", 2, 20, record);
	cr_assert_eq(nanswered, 2);
	once_free(&t);
}

Test(once, an_answer_is_forgotten_once_no_copy_can_be_acted_on)
{
	struct once_table t = {0};

	cr_assert_eq(begin(&t, 7, 1, 5000, 0, "first"), ONCE_NEW);
	once_answer(&t, "first", "ok", 2, 100, record);
	once_forget_old(&t, 5000);
	cr_assert_eq(t.n, 1, "kept up to its time");
	once_forget_old(&t, 5001);
	cr_assert_eq(t.n, 0);
	cr_assert_eq(t.answer_bytes, 0);
	cr_assert_eq(begin(&t, 7, 1, 9000, 6000, "late"), ONCE_NEW);
	once_free(&t);
}

Test(once, a_later_copy_keeps_the_answer_for_its_own_time)
{
	struct once_table t = {0};

	cr_assert_eq(begin(&t, 7, 1, 5000, 0, "first"), ONCE_NEW);
	cr_assert_eq(begin(&t, 7, 1, 5700, 300, "again"), ONCE_JOINED);
	once_answer(&t, "first", "ok", 2, 400, record);
	once_forget_old(&t, 5500);
	cr_assert_eq(t.n, 1);
	once_forget_old(&t, 5701);
	cr_assert_eq(t.n, 0);
	once_free(&t);
}

Test(once, a_command_under_way_is_never_forgotten)
{
	struct once_table t = {0};

	cr_assert_eq(begin(&t, 7, 1, 5000, 0, "first"), ONCE_NEW);
	once_forget_old(&t, 60 * 60 * 1000);
	cr_assert_eq(
	    begin(&t, 7, 1, 5000, 60 * 60 * 1000, "again"), ONCE_JOINED);
	/* Answered past its time: nothing is kept, both copies hear it. */
	once_answer(&t, "first", "ok", 2, 60 * 60 * 1000 + 1, record);
	cr_assert_eq(nanswered, 2);
	cr_assert_eq(t.n, 0);
	once_free(&t);
}

Test(once, a_full_table_forgets_the_oldest_answer_but_no_command_under_way)
{
	static char names[ONCE_COMMANDS_MAX][16];
	struct once_table t = {0};

	for (int i = 0; i < ONCE_COMMANDS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "w%d", i);
		cr_assert_eq(
		    begin(&t, (uint64_t)i + 1, 1, 10000 + i, 0, names[i]),
		    ONCE_NEW);
	}
	cr_assert_eq(begin(&t, 99999, 1, 20000, 0, "one more"), ONCE_BUSY);
	once_answer(&t, names[5], "ok", 2, 10, record);
	once_answer(&t, names[3], "ok", 2, 10, record);
	cr_assert_eq(begin(&t, 99999, 1, 20000, 20, "one more"), ONCE_NEW);
	/* The answer kept for the shortest time went: 4's, not 6's. */
	cr_assert_eq(begin(&t, 4, 1, 10003, 30, "copy of 3"), ONCE_NEW);
	once_free(&t);
}

Test(once, answers_past_their_bytes_push_out_the_oldest)
{
	static char big[ONCE_ANSWER_BYTES_MAX / 3 + 1];
	struct once_table t = {0};

	for (uint64_t id = 1; id <= 4; id++) {
		cr_assert_eq(
		    begin(&t, id, 1, 10000 + (int64_t)id, 0, "w"), ONCE_NEW);
		once_answer(&t, "w", big, sizeof(big), 10, record);
		cr_assert_leq(t.answer_bytes, ONCE_ANSWER_BYTES_MAX);
	}
	cr_assert_eq(t.n, 2);
	cr_assert_eq(begin(&t, 1, 1, 10001, 20, "copy of 1"), ONCE_NEW);
	cr_assert_eq(begin(&t, 4, 1, 10004, 20, "copy of 4"), ONCE_ANSWERED);
	once_free(&t);
}

Test(once, copies_waiting_at_once_are_bounded)
{
	struct once_table t = {0};

	cr_assert_eq(begin(&t, 7, 1, 5000, 0, "w"), ONCE_NEW);
	for (int i = 1; i < ONCE_WAITERS_MAX; i++)
		cr_assert_eq(begin(&t, 7, 1, 5000, 0, "w"), ONCE_JOINED);
	cr_assert_eq(begin(&t, 7, 1, 5000, 0, "w"), ONCE_BUSY);
	once_answer(&t, "w", "ok", 2, 10, record);
	cr_assert_eq(nanswered, ONCE_WAITERS_MAX);
	once_free(&t);
}
