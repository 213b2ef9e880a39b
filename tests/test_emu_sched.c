/*
 * The emulator's scheduler, rule by rule, as Ollama's server/sched.go has
 * them. Each test drives the pure state machine with events and a clock it
 * owns, and checks the actions that come out.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "emu/emu.h"

#define MB (1024ULL * 1024ULL)
#define SEC NS_PER_SEC
#define MIN (60 * SEC)

static struct emu_model models[] = {
    {.name = "alpha:latest",
        .size_bytes = 1000 * MB,
        .kv_bytes_per_token = 0,
        .context_length = 8192,
        .load_mb_per_s = 500,
        .prompt_tokens_per_s = 100,
        .gen_tokens_per_s = 10,
        .capabilities = EMU_CAP_COMPLETION},
    {.name = "beta:latest",
        .size_bytes = 1000 * MB,
        .kv_bytes_per_token = 0,
        .context_length = 8192,
        .load_mb_per_s = 500,
        .prompt_tokens_per_s = 100,
        .gen_tokens_per_s = 10,
        .capabilities = EMU_CAP_COMPLETION},
    {.name = "gamma:latest",
        .size_bytes = 1000 * MB,
        .kv_bytes_per_token = 0,
        .context_length = 8192,
        .load_mb_per_s = 500,
        .prompt_tokens_per_s = 100,
        .gen_tokens_per_s = 10,
        .capabilities = EMU_CAP_COMPLETION},
    {.name = "delta:latest",
        .size_bytes = 1000 * MB,
        .kv_bytes_per_token = 0,
        .context_length = 8192,
        .load_mb_per_s = 500,
        .prompt_tokens_per_s = 100,
        .gen_tokens_per_s = 10,
        .capabilities = EMU_CAP_COMPLETION},
    {.name = "big:latest",
        .size_bytes = 3000 * MB,
        .kv_bytes_per_token = 64 * 1024,
        .context_length = 4096,
        .load_mb_per_s = 500,
        .prompt_tokens_per_s = 100,
        .gen_tokens_per_s = 10,
        .capabilities = EMU_CAP_COMPLETION},
    {.name = "embed:latest",
        .size_bytes = 300 * MB,
        .kv_bytes_per_token = 1024,
        .context_length = 2048,
        .load_mb_per_s = 500,
        .prompt_tokens_per_s = 1000,
        .capabilities = EMU_CAP_EMBEDDING},
};
#define ALPHA (&models[0])
#define BETA (&models[1])
#define GAMMA (&models[2])
#define DELTA (&models[3])
#define BIG (&models[4])
#define EMBED (&models[5])

static struct esched s;
static int64_t now;

/* Actions seen so far, as a readable log: "load alpha:latest" ... */
static char log_text[8192];

static struct esched_config
config(int parallel, uint64_t vram_mb)
{
	struct esched_config c = {
	    .parallel = parallel,
	    .max_loaded = 0,
	    .max_queue = 512,
	    .vram_bytes = vram_mb * MB,
	    .default_keep_alive_ns = 5 * MIN,
	};
	return c;
}

static void
start(struct esched_config c)
{
	esched_init(&s, &c);
	now = 0;
	log_text[0] = '\0';
}

static void
stop(void)
{
	esched_destroy(&s);
}

static void
note(const char *fmt, const char *what, unsigned long long id)
{
	char line[160];

	snprintf(line, sizeof(line), fmt, what, id);
	strncat(log_text, line, sizeof(log_text) - strlen(log_text) - 1);
}

/* Drains the action queue into the log, returning how many there were. */
static int
drain(void)
{
	struct esched_action a;
	int n = 0;

	while (esched_next_action(&s, &a)) {
		n++;
		switch (a.kind) {
		case ESA_LOAD:
			note("load %s;", a.runner->model->name, 0);
			break;
		case ESA_UNLOAD:
			note("unload %s;", a.runner->model->name, 0);
			break;
		case ESA_READY:
			note("ready %s#%llu;", a.req->model->name, a.req->id);
			break;
		case ESA_START:
			note("start %s#%llu;", a.req->model->name, a.req->id);
			break;
		case ESA_REJECT:
			note("reject %s#%llu;", a.req->model->name, a.req->id);
			break;
		}
	}
	return n;
}

static void
clear(void)
{
	drain();
	log_text[0] = '\0';
}

static struct esched_req *
req(uint64_t id, const struct emu_model *m)
{
	struct esched_req *q = calloc(1, sizeof(*q));

	q->id = id;
	q->model = m;
	q->num_ctx = 2048;
	q->needs_slot = 1;
	return q;
}

static struct esched_req *
submit(uint64_t id, const struct emu_model *m)
{
	struct esched_req *q = req(id, m);

	esched_submit(&s, q, now);
	return q;
}

static struct esched_runner *
runner(const struct emu_model *m)
{
	return esched_find_runner(&s, m);
}

static void
load_done(const struct emu_model *m)
{
	struct esched_runner *r = runner(m);

	cr_assert_not_null(r, "no runner for %s", m->name);
	cr_assert_eq(r->state, RUNNER_LOADING);
	esched_load_done(&s, r, now);
}

/* Completes the unload that is under way (there is at most one here). */
static void
unload_done(void)
{
	struct esched_runner *r;

	TAILQ_FOREACH(r, &s.runners, link)
		if (r->state == RUNNER_UNLOADING) {
			esched_unload_done(&s, r, now);
			return;
		}
	cr_assert_fail("no runner is unloading");
}

static int
unloading(const struct emu_model *m)
{
	struct esched_runner *r;

	TAILQ_FOREACH(r, &s.runners, link)
		if (r->model == m && r->state == RUNNER_UNLOADING)
			return 1;
	return 0;
}

static void
expect_log(const char *want)
{
	drain();
	cr_assert_str_eq(log_text, want);
	log_text[0] = '\0';
}

/* Ends q and forgets the actions that still name it, then frees it. */
static void
finish_and_free(struct esched_req *q)
{
	esched_finish(&s, q, now);
	clear();
	free(q);
}

/* Loads m for request id and runs it to completion, leaving m idle. */
static void
serve_one(uint64_t id, const struct emu_model *m)
{
	struct esched_req *q = submit(id, m);

	if (runner(m)->state == RUNNER_LOADING)
		load_done(m);
	esched_finish(&s, q, now);
	clear();
	free(q);
}

TestSuite(sched, .fini = stop);

Test(sched, loads_an_unloaded_model_then_starts_the_request_once_loaded)
{
	struct esched_req *q;

	start(config(2, 4096));
	q = submit(1, ALPHA);
	expect_log("load alpha:latest;");
	cr_assert_eq(q->state, ESR_ATTACHED);
	cr_assert(q->waited_for_load);
	load_done(ALPHA);
	expect_log("ready alpha:latest#1;start alpha:latest#1;");
	cr_assert_eq(q->state, ESR_RUNNING);
	free(q);
}

Test(sched, a_request_for_a_loaded_model_attaches_at_once)
{
	struct esched_req *q;

	start(config(2, 4096));
	serve_one(1, ALPHA);
	q = submit(2, ALPHA);
	expect_log("ready alpha:latest#2;start alpha:latest#2;");
	cr_assert_eq(s.pending_len, 0);
	free(q);
}

Test(sched, requests_beyond_parallel_wait_in_fifo_order_for_a_slot)
{
	struct esched_req *q[5];

	start(config(2, 4096));
	serve_one(100, ALPHA);
	for (int i = 0; i < 5; i++)
		q[i] = submit((uint64_t)i + 1, ALPHA);
	drain();
	cr_assert_eq(runner(ALPHA)->active, 2);
	cr_assert_eq(runner(ALPHA)->refcount, 5);
	cr_assert_eq(q[2]->state, ESR_ATTACHED);
	log_text[0] = '\0';
	esched_finish(&s, q[1], now);
	expect_log("start alpha:latest#3;");
	esched_finish(&s, q[0], now);
	expect_log("start alpha:latest#4;");
	for (int i = 0; i < 5; i++)
		finish_and_free(q[i]);
}

Test(sched, requests_for_a_loading_model_queue_then_share_the_load)
{
	struct esched_req *a, *b, *c;

	start(config(2, 4096));
	a = submit(1, ALPHA);
	b = submit(2, ALPHA);
	c = submit(3, ALPHA);
	expect_log("load alpha:latest;");
	cr_assert_eq(s.stats.loads, 1, "one load serves all three");
	cr_assert_eq(b->state, ESR_PENDING, "not loaded yet: it queues");
	cr_assert_eq(s.pending_len, 2);
	now = 2 * SEC;
	load_done(ALPHA);
	expect_log("ready alpha:latest#1;start alpha:latest#1;"
	           "ready alpha:latest#2;start alpha:latest#2;"
	           "ready alpha:latest#3;");
	cr_assert_eq(s.pending_len, 0);
	cr_assert(b->waited_for_load && c->waited_for_load,
	    "their load_duration counts the load they queued behind");
	free(a);
	free(b);
	free(c);
}

Test(sched, a_request_for_a_loading_model_waits_behind_another_models_eviction)
{
	struct esched_req *a, *b, *c, *d;

	/* alpha and beta do not fit together */
	start(config(1, 1500));
	a = submit(1, ALPHA);
	b = submit(2, BETA);
	c = submit(3, ALPHA);
	load_done(ALPHA);
	expect_log("load alpha:latest;ready alpha:latest#1;start "
	           "alpha:latest#1;");
	/* beta, ahead of c, has the loop wait for alpha to drain */
	cr_assert_eq(b->state, ESR_CURRENT);
	cr_assert_eq(c->state, ESR_PENDING, "c waits behind b");
	/* a request that comes now finds alpha loaded and attaches */
	d = submit(4, ALPHA);
	expect_log("ready alpha:latest#4;");
	finish_and_free(a);
	finish_and_free(d);
	expect_log("");
	cr_assert(unloading(ALPHA));
	unload_done();
	expect_log("load beta:latest;");
	cr_assert_eq(c->state, ESR_PENDING);
	finish_and_free(b);
	finish_and_free(c);
}

Test(sched, a_load_whose_client_leaves_stops_and_the_loop_goes_on)
{
	struct esched_req *a, *b;

	start(config(1, 4096));
	a = submit(1, ALPHA);
	b = submit(2, BETA);
	finish_and_free(a);
	cr_assert(unloading(ALPHA), "the runner is closed");
	cr_assert_eq(s.stats.aborted_loads, 1);
	cr_assert_eq(b->state, ESR_PENDING, "until it is closed");
	unload_done();
	expect_log("load beta:latest;");
	cr_assert_null(runner(ALPHA));
	load_done(BETA);
	expect_log("ready beta:latest#2;start beta:latest#2;");
	free(b);
}

Test(sched, a_request_queued_behind_a_stopped_load_loads_its_model_afresh)
{
	struct esched_req *a, *b;

	start(config(1, 4096));
	a = submit(1, ALPHA);
	b = submit(2, ALPHA);
	finish_and_free(a);
	cr_assert_eq(b->state, ESR_PENDING, "until the runner is closed");
	unload_done();
	expect_log("load alpha:latest;");
	cr_assert_eq(s.stats.loads, 2);
	load_done(ALPHA);
	expect_log("ready alpha:latest#2;start alpha:latest#2;");
	free(b);
}

Test(
    sched, a_model_load_asked_with_an_empty_prompt_stops_when_its_client_leaves)
{
	struct esched_req *q;

	start(config(1, 4096));
	q = req(1, ALPHA);
	q->needs_slot = 0;
	esched_submit(&s, q, now);
	finish_and_free(q);
	cr_assert(unloading(ALPHA));
	unload_done();
	cr_assert_null(runner(ALPHA));
	cr_assert_eq(esched_vram_used(&s), 0);
}

Test(sched, the_pending_loop_loads_one_model_at_a_time)
{
	struct esched_req *a, *b;

	start(config(1, 8192));
	a = submit(1, ALPHA);
	b = submit(2, BETA);
	expect_log("load alpha:latest;");
	cr_assert_eq(b->state, ESR_PENDING);
	load_done(ALPHA);
	expect_log(
	    "ready alpha:latest#1;start alpha:latest#1;load beta:latest;");
	free(a);
	free(b);
}

Test(sched, eviction_takes_the_runner_with_the_shortest_keep_alive)
{
	struct esched_req *q;

	start(config(1, 2500));
	q = req(1, ALPHA);
	q->has_keep_alive = 1;
	q->keep_alive_ns = 10 * MIN;
	esched_submit(&s, q, now);
	load_done(ALPHA);
	finish_and_free(q);
	q = req(2, BETA);
	q->has_keep_alive = 1;
	q->keep_alive_ns = 2 * MIN;
	esched_submit(&s, q, now);
	load_done(BETA);
	finish_and_free(q);
	clear();
	/* 2500 MB holds two 1000 MB models; a third needs room. */
	q = submit(3, GAMMA);
	expect_log("unload beta:latest;");
	unload_done();
	expect_log("load gamma:latest;");
	cr_assert_not_null(runner(ALPHA));
	free(q);
}

Test(sched, eviction_breaks_keep_alive_ties_by_model_name)
{
	struct esched_req *q;

	start(config(1, 2500));
	serve_one(1, BETA);
	serve_one(2, ALPHA);
	q = submit(3, GAMMA);
	expect_log("unload alpha:latest;");
	free(q);
}

Test(sched, eviction_prefers_an_idle_runner_to_a_busy_one_that_expires_sooner)
{
	struct esched_req *busy, *q;

	start(config(1, 2500));
	busy = req(1, ALPHA);
	busy->has_keep_alive = 1;
	busy->keep_alive_ns = 1 * MIN;
	esched_submit(&s, busy, now);
	load_done(ALPHA);
	serve_one(2, BETA); /* idle, 5 minutes */
	clear();
	q = submit(3, GAMMA);
	expect_log("unload beta:latest;");
	cr_assert_eq(busy->state, ESR_RUNNING);
	free(busy);
	free(q);
}

Test(sched, a_busy_runner_chosen_for_eviction_drains_before_it_unloads)
{
	struct esched_req *busy, *q;

	start(config(1, 1500));
	busy = submit(1, ALPHA);
	load_done(ALPHA);
	clear();
	q = submit(2, BETA);
	/* Marked to expire, but nothing unloads while a request runs. */
	expect_log("");
	cr_assert_eq(runner(ALPHA)->session_ns, 0);
	cr_assert_eq(s.block, ESB_UNLOAD);
	cr_assert_eq(q->state, ESR_CURRENT);
	now += 3 * SEC;
	esched_finish(&s, busy, now);
	expect_log("unload alpha:latest;");
	unload_done();
	expect_log("load beta:latest;");
	free(busy);
	free(q);
}

Test(sched, new_requests_still_attach_to_a_draining_runner_and_delay_its_unload)
{
	struct esched_req *first, *late, *q;

	start(config(1, 1500));
	first = submit(1, ALPHA);
	load_done(ALPHA);
	q = submit(2, BETA);
	clear();
	late = submit(3, ALPHA);
	cr_assert_eq(late->state, ESR_ATTACHED, "attaches while draining");
	esched_finish(&s, first, now);
	expect_log("ready alpha:latest#3;start alpha:latest#3;");
	cr_assert_not(unloading(ALPHA));
	esched_finish(&s, late, now);
	expect_log("unload alpha:latest;");
	free(first);
	free(late);
	free(q);
}

Test(sched,
    an_explicit_keep_alive_on_a_draining_runner_restores_it_and_blocks_the_queue)
{
	struct esched_req *first, *late, *q;

	/* Ollama's behaviour (ollama#17408): the eviction waits for expiry. */
	start(config(1, 1500));
	first = submit(1, ALPHA);
	load_done(ALPHA);
	q = submit(2, BETA);
	late = req(3, ALPHA);
	late->has_keep_alive = 1;
	late->keep_alive_ns = 10 * MIN;
	esched_submit(&s, late, now);
	esched_finish(&s, first, now);
	esched_finish(&s, late, now);
	clear();
	cr_assert_not(unloading(ALPHA), "keep-alive was restored");
	cr_assert_eq(q->state, ESR_CURRENT);
	now += 10 * MIN;
	esched_tick(&s, now);
	expect_log("unload alpha:latest;");
	unload_done();
	expect_log("load beta:latest;");
	free(first);
	free(late);
	free(q);
}

Test(sched, the_pending_queue_is_bounded_and_rejects_with_503_past_it)
{
	struct esched_req *q[4];
	struct esched_action a;
	int rejected = 0;

	struct esched_config c = config(1, 1500);
	c.max_queue = 2;
	start(c);
	q[0] = submit(1, ALPHA); /* loading: the loop is busy with it */
	q[1] = submit(2, BETA);  /* pending */
	q[2] = submit(3, GAMMA); /* pending: the queue is now full */
	q[3] = submit(4, DELTA);
	while (esched_next_action(&s, &a))
		if (a.kind == ESA_REJECT) {
			rejected++;
			cr_assert_eq(a.req, q[3]);
			cr_assert_eq(a.status, 503);
			cr_assert_str_eq(a.message,
			    "server busy, please try again.  maximum pending requests exceeded");
		}
	cr_assert_eq(rejected, 1);
	cr_assert_eq(q[3]->state, ESR_DONE);
	for (int i = 0; i < 4; i++)
		finish_and_free(q[i]);
}

Test(sched, requests_for_a_loaded_model_do_not_count_against_the_queue_bound)
{
	struct esched_req *q[4];

	struct esched_config c = config(1, 1500);
	c.max_queue = 1;
	start(c);
	serve_one(1, ALPHA);
	q[0] = submit(2, ALPHA);
	q[1] = submit(3, BETA);  /* current: needs an eviction */
	q[2] = submit(4, GAMMA); /* fills the queue */
	clear();
	q[3] = submit(5, ALPHA);
	expect_log("ready alpha:latest#5;");
	cr_assert_eq(q[3]->state, ESR_ATTACHED, "waits for alpha's one slot");
	for (int i = 0; i < 4; i++)
		finish_and_free(q[i]);
}

Test(sched, a_change_of_num_ctx_reloads_the_model)
{
	struct esched_req *q;

	start(config(1, 4096));
	serve_one(1, ALPHA);
	q = req(2, ALPHA);
	q->num_ctx = 4096;
	esched_submit(&s, q, now);
	expect_log("unload alpha:latest;");
	cr_assert_eq(s.stats.reloads, 1);
	unload_done();
	expect_log("load alpha:latest;");
	cr_assert_eq(runner(ALPHA)->num_ctx, 4096);
	free(q);
}

Test(sched, a_change_of_any_runner_option_reloads_the_model)
{
	struct esched_req *q;

	start(config(1, 4096));
	serve_one(1, ALPHA);
	q = req(2, ALPHA);
	q->opts.num_batch = 128;
	esched_submit(&s, q, now);
	expect_log("unload alpha:latest;");
	cr_assert_eq(s.stats.reloads, 1);
	unload_done();
	load_done(ALPHA);
	cr_assert_eq(runner(ALPHA)->opts.num_batch, 128);
	finish_and_free(q);
	q = req(3, ALPHA);
	q->opts.num_batch = 128;
	q->opts.num_thread = 4;
	esched_submit(&s, q, now);
	expect_log("unload alpha:latest;");
	cr_assert_eq(s.stats.reloads, 2);
	free(q);
}

Test(sched, a_num_gpu_left_to_ollama_takes_the_runner_as_it_is)
{
	struct esched_req *q;

	start(config(1, 4096));
	q = req(1, ALPHA);
	q->opts.num_gpu = 10;
	esched_submit(&s, q, now);
	load_done(ALPHA);
	finish_and_free(q);
	q = req(2, ALPHA);
	q->opts.num_gpu = -1;
	esched_submit(&s, q, now);
	expect_log("ready alpha:latest#2;start alpha:latest#2;");
	cr_assert_eq(s.stats.reloads, 0);
	finish_and_free(q);
	q = req(3, ALPHA);
	q->opts.num_gpu = 20;
	esched_submit(&s, q, now);
	expect_log("unload alpha:latest;");
	cr_assert_eq(s.stats.reloads, 1);
	free(q);
}

Test(sched,
    num_ctx_is_capped_to_the_trained_context_and_an_equal_cap_does_not_reload)
{
	struct esched_req *q;

	start(config(1, 8192));
	q = req(1, BIG);
	q->num_ctx = 100000;
	esched_submit(&s, q, now);
	load_done(BIG);
	cr_assert_eq(runner(BIG)->num_ctx, 4096);
	finish_and_free(q);
	clear();
	q = req(2, BIG);
	q->num_ctx = 50000; /* also capped to 4096: same runner */
	esched_submit(&s, q, now);
	expect_log("ready big:latest#2;start big:latest#2;");
	free(q);
}

Test(sched, max_loaded_caps_the_runners_even_when_memory_is_free)
{
	struct esched_req *q;

	struct esched_config c = config(1, 100000);
	c.max_loaded = 2;
	start(c);
	serve_one(1, ALPHA);
	serve_one(2, BETA);
	q = submit(3, GAMMA);
	expect_log("unload alpha:latest;");
	free(q);
}

Test(sched, max_loaded_zero_means_three)
{
	struct esched_req *q;

	start(config(1, 100000));
	serve_one(1, ALPHA);
	serve_one(2, BETA);
	serve_one(3, GAMMA);
	cr_assert_eq(esched_loaded_count(&s), 3);
	q = submit(4, DELTA);
	expect_log("unload alpha:latest;");
	free(q);
}

Test(sched, a_model_loads_beside_others_only_within_80_percent_of_free_memory)
{
	struct esched_req *q;

	/* 2200 MB: after alpha, 1200 free; 80% is 960 < 1000 needed. */
	start(config(1, 2200));
	serve_one(1, ALPHA);
	q = submit(2, BETA);
	expect_log("unload alpha:latest;");
	free(q);
	stop();
	/* 2300 MB: 1300 free, 80% is 1040 >= 1000: fits. */
	start(config(1, 2300));
	serve_one(1, ALPHA);
	q = submit(2, BETA);
	expect_log("load beta:latest;");
	free(q);
}

Test(sched, the_first_model_loads_even_when_it_does_not_fit_and_spills_over)
{
	struct esched_req *q;
	struct esched_runner *r;

	start(config(1, 2000));
	q = submit(1, BIG);
	r = runner(BIG);
	cr_assert_not_null(r);
	cr_assert_gt(r->size_bytes, 2000 * MB);
	cr_assert_eq(r->vram_bytes, 2000 * MB, "only what fits is on the GPU");
	free(q);
}

Test(sched, memory_counts_the_kv_cache_for_num_ctx_times_parallel)
{
	struct esched_req *q;

	start(config(2, 8192));
	q = req(1, BIG);
	q->num_ctx = 2048;
	esched_submit(&s, q, now);
	cr_assert_eq(
	    runner(BIG)->size_bytes, 3000 * MB + 64 * 1024ULL * 2048 * 2);
	free(q);
}

Test(sched, embedding_models_load_with_one_slot)
{
	struct esched_req *q;

	start(config(4, 8192));
	q = submit(1, EMBED);
	cr_assert_eq(runner(EMBED)->parallel, 1);
	cr_assert_eq(runner(EMBED)->size_bytes, 300 * MB + 1024ULL * 2048);
	free(q);
}

Test(sched, the_keep_alive_timer_starts_only_when_the_last_request_ends)
{
	struct esched_req *a, *b;

	start(config(2, 4096));
	a = submit(1, ALPHA);
	b = submit(2, ALPHA);
	load_done(ALPHA);
	cr_assert_eq(esched_next_deadline(&s), -1, "no timer while busy");
	now = 1 * MIN;
	esched_finish(&s, a, now);
	cr_assert_eq(esched_next_deadline(&s), -1, "one request still runs");
	now = 2 * MIN;
	esched_finish(&s, b, now);
	cr_assert_eq(esched_next_deadline(&s), 2 * MIN + 5 * MIN);
	free(a);
	free(b);
}

Test(sched, an_idle_runner_unloads_when_its_keep_alive_expires)
{
	start(config(1, 4096));
	serve_one(1, ALPHA);
	now += 5 * MIN - 1;
	esched_tick(&s, now);
	expect_log("");
	now += 1;
	esched_tick(&s, now);
	expect_log("unload alpha:latest;");
	unload_done();
	cr_assert_null(runner(ALPHA));
	cr_assert_eq(s.stats.unloads, 1);
}

Test(sched, a_request_that_attaches_stops_the_idle_timer)
{
	struct esched_req *q;

	start(config(1, 4096));
	serve_one(1, ALPHA);
	now += 4 * MIN;
	q = submit(2, ALPHA);
	cr_assert_eq(esched_next_deadline(&s), -1);
	now += 2 * MIN;
	esched_tick(&s, now);
	cr_assert_not(unloading(ALPHA));
	free(q);
}

Test(sched, keep_alive_zero_unloads_right_after_the_request)
{
	struct esched_req *q;

	start(config(1, 4096));
	q = req(1, ALPHA);
	q->has_keep_alive = 1;
	q->keep_alive_ns = 0;
	esched_submit(&s, q, now);
	load_done(ALPHA);
	clear();
	esched_finish(&s, q, now);
	expect_log("unload alpha:latest;");
	free(q);
}

Test(sched, a_negative_keep_alive_never_expires)
{
	struct esched_req *q;

	start(config(1, 4096));
	q = req(1, ALPHA);
	q->has_keep_alive = 1;
	q->keep_alive_ns = EMU_FOREVER;
	esched_submit(&s, q, now);
	load_done(ALPHA);
	esched_finish(&s, q, now);
	cr_assert_eq(esched_next_deadline(&s), -1);
	now += 1000 * MIN;
	esched_tick(&s, now);
	expect_log(
	    "load alpha:latest;ready alpha:latest#1;start alpha:latest#1;");
	free(q);
}

Test(sched, forever_runners_are_evicted_last)
{
	struct esched_req *q;

	start(config(1, 2500));
	q = req(1, ALPHA);
	q->has_keep_alive = 1;
	q->keep_alive_ns = EMU_FOREVER;
	esched_submit(&s, q, now);
	load_done(ALPHA);
	finish_and_free(q);
	serve_one(2, BETA);
	q = submit(3, GAMMA);
	expect_log("unload beta:latest;");
	free(q);
}

Test(sched, an_empty_prompt_loads_the_model_and_is_answered_without_a_slot)
{
	struct esched_req *q;

	start(config(1, 4096));
	q = req(1, ALPHA);
	q->needs_slot = 0;
	esched_submit(&s, q, now);
	load_done(ALPHA);
	expect_log("load alpha:latest;ready alpha:latest#1;");
	cr_assert_eq(runner(ALPHA)->active, 0);
	esched_finish(&s, q, now);
	cr_assert_eq(esched_next_deadline(&s), 5 * MIN);
	free(q);
}

Test(sched, unloading_by_empty_prompt_is_at_once_for_an_idle_model)
{
	start(config(1, 4096));
	serve_one(1, ALPHA);
	esched_expire_model(&s, ALPHA, now);
	expect_log("unload alpha:latest;");
}

Test(sched, unloading_by_empty_prompt_waits_for_a_busy_model_to_drain)
{
	struct esched_req *q;

	start(config(1, 4096));
	q = submit(1, ALPHA);
	load_done(ALPHA);
	clear();
	esched_expire_model(&s, ALPHA, now);
	expect_log("");
	esched_finish(&s, q, now);
	expect_log("unload alpha:latest;");
	free(q);
}

Test(sched, unloading_a_model_still_loading_does_nothing)
{
	struct esched_req *q;

	start(config(1, 4096));
	q = submit(1, ALPHA);
	clear();
	esched_expire_model(&s, ALPHA, now);
	cr_assert_eq(drain(), 0);
	load_done(ALPHA);
	esched_finish(&s, q, now);
	clear();
	cr_assert_not(unloading(ALPHA), "its keep-alive holds");
	cr_assert_eq(esched_next_deadline(&s), 5 * MIN);
	free(q);
}

Test(sched, unloading_a_model_that_is_not_loaded_does_nothing)
{
	start(config(1, 4096));
	esched_expire_model(&s, ALPHA, now);
	cr_assert_eq(drain(), 0);
}

Test(sched, a_cancelled_pending_request_is_skipped_when_it_reaches_the_head)
{
	struct esched_req *a, *b, *c;

	start(config(1, 8192));
	a = submit(1, ALPHA);
	b = submit(2, BETA);
	c = submit(3, GAMMA);
	esched_finish(&s, b, now);
	clear();
	load_done(ALPHA);
	expect_log(
	    "ready alpha:latest#1;start alpha:latest#1;load gamma:latest;");
	cr_assert_eq(b->state, ESR_DONE);
	free(a);
	free(b);
	free(c);
}

Test(sched, a_pending_request_freed_as_its_client_leaves_is_never_touched_again)
{
	struct esched_req *a, *c;

	start(config(1, 8192));
	a = submit(1, ALPHA);
	finish_and_free(submit(2, BETA));
	c = submit(3, GAMMA);
	/* Its place stays in the queue until reached, as in Ollama. */
	cr_assert_eq(s.pending_len, 2);
	load_done(ALPHA);
	expect_log(
	    "ready alpha:latest#1;start alpha:latest#1;load gamma:latest;");
	free(a);
	free(c);
}

Test(sched, a_cancelled_request_keeps_its_place_against_the_queue_bound)
{
	struct esched_config c = config(1, 4096);
	struct esched_req *a, *d;

	c.max_queue = 1;
	start(c);
	a = submit(1, ALPHA); /* loading */
	finish_and_free(submit(2, BETA));
	d = submit(3, GAMMA);
	expect_log("reject gamma:latest#3;");
	cr_assert_eq(d->state, ESR_DONE);
	load_done(ALPHA);
	clear();
	free(a);
	free(d);
}

Test(sched, the_request_an_unload_is_for_may_leave_and_the_queue_goes_on)
{
	struct esched_req *c;

	start(config(1, 2048));
	serve_one(1, ALPHA);
	/* Beta does not fit beside alpha: alpha goes, for beta. */
	finish_and_free(submit(2, BETA));
	cr_assert(unloading(ALPHA));
	c = submit(3, GAMMA);
	clear();
	unload_done();
	expect_log("load gamma:latest;");
	cr_assert_null(runner(BETA));
	free(c);
}

Test(sched, a_request_that_leaves_while_waiting_for_a_slot_gives_its_place_up)
{
	struct esched_req *a, *b, *c;

	start(config(1, 4096));
	a = submit(1, ALPHA);
	b = submit(2, ALPHA);
	c = submit(3, ALPHA);
	load_done(ALPHA);
	clear();
	esched_finish(&s, b, now);
	cr_assert_eq(runner(ALPHA)->refcount, 2);
	esched_finish(&s, a, now);
	expect_log("start alpha:latest#3;");
	free(a);
	free(b);
	free(c);
}

Test(sched, a_request_for_a_loaded_model_passes_a_queue_blocked_on_eviction)
{
	struct esched_req *busy, *waiting, *passer;

	start(config(2, 1500));
	busy = submit(1, ALPHA);
	load_done(ALPHA);
	waiting = submit(2, BETA); /* blocks the loop on alpha's drain */
	clear();
	passer = submit(3, ALPHA);
	expect_log("ready alpha:latest#3;start alpha:latest#3;");
	cr_assert_eq(waiting->state, ESR_CURRENT);
	free(busy);
	free(waiting);
	free(passer);
}

Test(sched, vram_used_never_exceeds_the_budget_after_the_first_model)
{
	struct esched_req *q[40];
	const struct emu_model *order[] = {ALPHA, BETA, GAMMA, DELTA, BIG};

	start(config(2, 3000));
	for (int i = 0; i < 40; i++) {
		struct esched_runner *r;

		q[i] = submit((uint64_t)i, order[(i * 7) % 5]);
		for (int guard = 0; guard < 10; guard++) {
			int progressed = 0;

			clear(); /* as the I/O layer does after every event */
			TAILQ_FOREACH(r, &s.runners, link) {
				if (r->state == RUNNER_LOADING) {
					esched_load_done(&s, r, now);
					progressed = 1;
					break;
				}
				if (r->state == RUNNER_UNLOADING) {
					esched_unload_done(&s, r, now);
					progressed = 1;
					break;
				}
			}
			cr_assert_leq(esched_loaded_count(&s), 3);
			if (esched_loaded_count(&s) > 1)
				cr_assert_leq(esched_vram_used(&s), 3000 * MB);
			if (!progressed)
				break;
		}
		/* Finish whatever runs so that evictions can drain. */
		TAILQ_FOREACH(r, &s.runners, link) {
			struct esched_req *x;

			while ((x = TAILQ_FIRST(&r->running)) != NULL)
				esched_finish(&s, x, now);
		}
		now += SEC;
	}
	clear();
	for (int i = 0; i < 40; i++)
		finish_and_free(q[i]);
}

Test(sched, a_load_waits_for_memory_still_being_freed_rather_than_spill_over)
{
	struct esched_req *q;

	start(config(1, 1500));
	serve_one(1, ALPHA);
	now += 5 * MIN;
	esched_tick(&s, now); /* alpha's keep-alive ran out: unloading */
	expect_log("unload alpha:latest;");
	q = submit(2, BETA);
	expect_log("");
	cr_assert_eq(q->state, ESR_CURRENT);
	unload_done();
	expect_log("load beta:latest;");
	cr_assert_eq(runner(BETA)->vram_bytes, runner(BETA)->size_bytes,
	    "all of it on the GPU");
	free(q);
}

Test(sched, a_request_without_num_ctx_gets_ollamas_default_for_its_vram)
{
	const uint64_t gib = 1024ULL * 1024 * 1024;

	cr_assert_eq(esched_default_ctx(4 * gib), 4096);
	cr_assert_eq(esched_default_ctx(23 * gib - 1), 4096);
	cr_assert_eq(esched_default_ctx(23 * gib), 32768);
	cr_assert_eq(esched_default_ctx(47 * gib - 1), 32768);
	cr_assert_eq(esched_default_ctx(48 * gib), 262144);
}
