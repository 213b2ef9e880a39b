/*
 * sched.c: Ollama's model scheduler (server/sched.go) as a pure state
 * machine. Events come in with the time; actions go out through a queue that
 * the I/O layer drains. The rules, and where they come from:
 *
 * - A request for a loaded runner whose load options match attaches at once
 *   (getRunner), even to a runner that is marked to unload.
 * - Anything else joins one pending FIFO bounded by max_queue (503 past it).
 *   One loop works through it, one request at a time (processPending): it
 *   blocks while a load runs and while an eviction drains.
 * - To make room it evicts one runner at a time, chosen by keep-alive then
 *   name, idle ones first (findRunnerToUnload); a busy one is marked with
 *   keep-alive 0 and unloads when its last request is done.
 * - A runner's idle timer starts when its last request ends
 *   (processCompleted); keep-alive 0 unloads at once.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "emu.h"

#define MB (1024ULL * 1024ULL)

static void
push_action(struct esched *s, enum esched_action_kind kind,
    struct esched_runner *r, struct esched_req *q, int status,
    const char *message)
{
	struct esched_action *a;

	if (s->nactions == s->actions_cap) {
		size_t cap = s->actions_cap ? s->actions_cap * 2 : 16;
		struct esched_action *n;

		/* Compact first: drained actions at the head are dead. */
		if (s->actions_head > 0) {
			memmove(s->actions, s->actions + s->actions_head,
			    (s->nactions - s->actions_head) * sizeof(*n));
			s->nactions -= s->actions_head;
			s->actions_head = 0;
		}
		if (s->nactions == s->actions_cap) {
			n = realloc(s->actions, cap * sizeof(*n));
			if (n == NULL)
				abort();
			s->actions = n;
			s->actions_cap = cap;
		}
	}
	a = &s->actions[s->nactions++];
	a->kind = kind;
	a->runner = r;
	a->req = q;
	a->status = status;
	a->message = message;
}

int
esched_next_action(struct esched *s, struct esched_action *out)
{
	if (s->actions_head == s->nactions) {
		s->actions_head = s->nactions = 0;
		return 0;
	}
	*out = s->actions[s->actions_head++];
	return 1;
}

void
esched_init(struct esched *s, const struct esched_config *cfg)
{
	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	if (s->cfg.parallel < 1)
		s->cfg.parallel = 1;
	/* Ollama: 0 means three per GPU, and the emulator has one GPU. */
	if (s->cfg.max_loaded <= 0)
		s->cfg.max_loaded = 3;
	TAILQ_INIT(&s->runners);
	TAILQ_INIT(&s->pending);
}

void
esched_destroy(struct esched *s)
{
	struct esched_runner *r;
	struct esched_req *q;

	while ((r = TAILQ_FIRST(&s->runners)) != NULL) {
		TAILQ_REMOVE(&s->runners, r, link);
		free(r);
	}
	/* The places of cancelled requests are the scheduler's own. */
	while ((q = TAILQ_FIRST(&s->pending)) != NULL) {
		TAILQ_REMOVE(&s->pending, q, link);
		if (q->placeholder)
			free(q);
	}
	free(s->actions);
	s->actions = NULL;
}

/* Ollama's default context by VRAM tier: 4k, 32k at 23 GiB, 256k at 47. */
int
esched_default_ctx(uint64_t vram_bytes)
{
	if (vram_bytes >= 47ULL * 1024 * MB)
		return 262144;
	if (vram_bytes >= 23ULL * 1024 * MB)
		return 32768;
	return 4096;
}

int
esched_effective_ctx(const struct emu_model *m, int num_ctx)
{
	if (num_ctx < 4)
		num_ctx = 4;
	/* Ollama gives multimodal models at least 2048. */
	if ((m->capabilities & EMU_CAP_VISION) && num_ctx < 2048)
		num_ctx = 2048;
	if (m->context_length > 0 && num_ctx > m->context_length)
		num_ctx = m->context_length;
	return num_ctx;
}

static int
runner_parallel(const struct esched *s, const struct emu_model *m)
{
	/* Embedding models always load with one slot. */
	if (!(m->capabilities & EMU_CAP_COMPLETION))
		return 1;
	return s->cfg.parallel;
}

uint64_t
esched_runner_bytes(const struct emu_model *m, int num_ctx, int parallel)
{
	return m->size_bytes +
	    m->kv_bytes_per_token * (uint64_t)num_ctx * (uint64_t)parallel;
}

struct esched_runner *
esched_find_runner(const struct esched *s, const struct emu_model *m)
{
	struct esched_runner *r;

	TAILQ_FOREACH(r, &s->runners, link)
		if (r->model == m && r->state != RUNNER_UNLOADING)
			return r;
	return NULL;
}

size_t
esched_loaded_count(const struct esched *s)
{
	const struct esched_runner *r;
	size_t n = 0;

	TAILQ_FOREACH(r, &s->runners, link)
		if (r->state != RUNNER_UNLOADING)
			n++;
	return n;
}

uint64_t
esched_vram_used(const struct esched *s)
{
	const struct esched_runner *r;
	uint64_t used = 0;

	/* An unloading runner holds its memory until the unload is done. */
	TAILQ_FOREACH(r, &s->runners, link)
		used += r->vram_bytes;
	return used;
}

static int
needs_reload(const struct esched_runner *r, const struct esched_req *q)
{
	const struct esched_runner_opts *had = &r->opts, *asks = &q->opts;

	return r->num_ctx != esched_effective_ctx(q->model, q->num_ctx) ||
	    had->num_batch != asks->num_batch ||
	    (asks->num_gpu >= 0 && had->num_gpu != asks->num_gpu) ||
	    had->main_gpu != asks->main_gpu ||
	    had->num_thread != asks->num_thread ||
	    had->use_mmap != asks->use_mmap;
}

static void
stop_timer(struct esched_runner *r)
{
	r->timer_armed = 0;
	r->expires_at_ns = 0;
}

static void
start_unload(struct esched *s, struct esched_runner *r)
{
	stop_timer(r);
	r->state = RUNNER_UNLOADING;
	s->stats.unloads++;
	push_action(s, ESA_UNLOAD, r, NULL, 0, NULL);
}

static void
grant_slots(struct esched *s, struct esched_runner *r, int64_t now)
{
	struct esched_req *q;

	if (r->state != RUNNER_READY)
		return;
	while (
	    r->active < r->parallel && (q = TAILQ_FIRST(&r->waiters)) != NULL) {
		TAILQ_REMOVE(&r->waiters, q, link);
		q->in_waiters = 0;
		TAILQ_INSERT_TAIL(&r->running, q, link);
		q->state = ESR_RUNNING;
		q->started_ns = now;
		r->active++;
		push_action(s, ESA_START, r, q, 0, NULL);
	}
}

/*
 * Gives q a reference on r (useLoadedRunner). A request with an explicit
 * keep_alive sets the runner's, even on a runner marked to unload: that is
 * how Ollama behaves (ollama#17408), and the emulator keeps it.
 */
static void
attach(struct esched *s, struct esched_req *q, struct esched_runner *r,
    int64_t now)
{
	r->refcount++;
	stop_timer(r);
	if (q->has_keep_alive)
		r->session_ns = q->keep_alive_ns;
	q->runner = r;
	q->state = ESR_ATTACHED;
	if (r->state == RUNNER_READY) {
		q->ready_ns = now;
		push_action(s, ESA_READY, r, q, 0, NULL);
	} else {
		q->waited_for_load = 1;
	}
	/* Load requests wait in line too while the runner loads. */
	if (q->needs_slot || r->state == RUNNER_LOADING) {
		TAILQ_INSERT_TAIL(&r->waiters, q, link);
		q->in_waiters = 1;
	}
}

static struct esched_runner *
start_load(struct esched *s, struct esched_req *q, int64_t now)
{
	struct esched_runner *r;
	uint64_t free_vram, used;
	double rate;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		abort();
	r->model = q->model;
	r->state = RUNNER_LOADING;
	r->num_ctx = esched_effective_ctx(q->model, q->num_ctx);
	r->opts = q->opts;
	r->parallel = runner_parallel(s, q->model);
	r->size_bytes = esched_runner_bytes(q->model, r->num_ctx, r->parallel);
	used = esched_vram_used(s);
	free_vram = s->cfg.vram_bytes > used ? s->cfg.vram_bytes - used : 0;
	/* Only the first model may spill into system memory. */
	r->vram_bytes = r->size_bytes < free_vram ? r->size_bytes : free_vram;
	r->session_ns =
	    q->has_keep_alive ? q->keep_alive_ns : s->cfg.default_keep_alive_ns;
	TAILQ_INIT(&r->waiters);
	TAILQ_INIT(&r->running);
	r->generation = ++s->next_generation;
	r->load_started_ns = now;
	rate = s->cfg.load_mb_per_s_override > 0 ? s->cfg.load_mb_per_s_override
	                                         : q->model->load_mb_per_s;
	if (rate <= 0)
		rate = 500;
	r->load_ns =
	    (int64_t)((double)q->model->size_bytes / MB / rate * NS_PER_SEC);
	TAILQ_INSERT_TAIL(&s->runners, r, link);
	s->stats.loads++;
	push_action(s, ESA_LOAD, r, NULL, 0, NULL);
	attach(s, q, r, now);
	return r;
}

/* findRunnerToUnload: keep-alive, then name; idle ones first. */
static struct esched_runner *
runner_to_unload(const struct esched *s)
{
	struct esched_runner *r, *best_idle = NULL, *best = NULL;

	TAILQ_FOREACH(r, &s->runners, link) {
		if (r->state == RUNNER_UNLOADING)
			continue;
		if (best == NULL || r->session_ns < best->session_ns ||
		    (r->session_ns == best->session_ns &&
		        strcmp(r->model->name, best->model->name) < 0))
			best = r;
		if (r->refcount == 0 &&
		    (best_idle == NULL ||
		        r->session_ns < best_idle->session_ns ||
		        (r->session_ns == best_idle->session_ns &&
		            strcmp(r->model->name, best_idle->model->name) <
		                0)))
			best_idle = r;
	}
	return best_idle ? best_idle : best;
}

static void
mark_to_expire(struct esched *s, struct esched_runner *r)
{
	stop_timer(r);
	r->session_ns = 0;
	if (r->refcount <= 0 && r->state == RUNNER_READY)
		start_unload(s, r);
}

static int
unloading_any(const struct esched *s)
{
	const struct esched_runner *r;

	TAILQ_FOREACH(r, &s->runners, link)
		if (r->state == RUNNER_UNLOADING)
			return 1;
	return 0;
}

/* Does a runner for q fit beside the loaded ones (80% of free memory)? */
static int
fits(const struct esched *s, const struct esched_req *q)
{
	int ctx = esched_effective_ctx(q->model, q->num_ctx);
	uint64_t need =
	    esched_runner_bytes(q->model, ctx, runner_parallel(s, q->model));
	uint64_t used = esched_vram_used(s);
	uint64_t free_vram =
	    s->cfg.vram_bytes > used ? s->cfg.vram_bytes - used : 0;

	return need <= free_vram / 100 * 80;
}

/*
 * processPending: works on the head of the FIFO until it is attached, or
 * until the loop must wait for a load or an unload.
 */
static void
process_pending(struct esched *s, int64_t now)
{
	while (s->block == ESB_NONE) {
		struct esched_req *q = s->current;
		struct esched_runner *r, *victim;

		if (q == NULL) {
			q = TAILQ_FIRST(&s->pending);
			if (q == NULL)
				return;
			TAILQ_REMOVE(&s->pending, q, link);
			s->pending_len--;
			if (q->placeholder) {
				free(q);
				continue;
			}
			q->state = ESR_CURRENT;
			s->current = q;
		}
		r = esched_find_runner(s, q->model);
		victim = NULL;
		if (r != NULL) {
			if (!needs_reload(r, q)) {
				s->current = NULL;
				attach(s, q, r, now);
				/* Queued behind its model's load, it waited for
				 * it: its load_duration tells so. */
				if (q->arrived_ns <= r->ready_at_ns)
					q->waited_for_load = 1;
				grant_slots(s, r, now);
				continue;
			}
			victim = r;
			s->stats.reloads++;
		} else if (esched_loaded_count(s) >=
		    (size_t)s->cfg.max_loaded) {
			victim = runner_to_unload(s);
			s->stats.evictions++;
		} else if (fits(s, q) ||
		    (esched_loaded_count(s) == 0 && !unloading_any(s))) {
			s->current = NULL;
			r = start_load(s, q, now);
			s->block = ESB_LOADING;
			s->blocking_runner = r;
			return;
		} else if (esched_loaded_count(s) == 0) {
			/*
			 * Only memory that is still being freed stands in the
			 * way: wait for that unload rather than load the model
			 * half on the CPU for the rest of its life.
			 */
			s->block = ESB_UNLOAD;
			s->blocking_runner = NULL;
			return;
		} else {
			victim = runner_to_unload(s);
			s->stats.evictions++;
		}
		if (victim == NULL)
			continue;
		mark_to_expire(s, victim);
		s->block = ESB_UNLOAD;
		s->blocking_runner = victim;
	}
}

void
esched_submit(struct esched *s, struct esched_req *q, int64_t now)
{
	struct esched_runner *r;

	q->arrived_ns = now;
	q->runner = NULL;
	q->waited_for_load = 0;
	r = esched_find_runner(s, q->model);
	/*
	 * getRunner attaches to a loaded runner at once. A runner still
	 * loading is not among the loaded ones yet (since Ollama 0.30 the
	 * whole load happens before it is listed), so a request for it joins
	 * the pending queue, behind requests for other models.
	 */
	if (r != NULL && r->state == RUNNER_READY && !needs_reload(r, q)) {
		attach(s, q, r, now);
		grant_slots(s, r, now);
		return;
	}
	/* Ollama's pending requests are a channel of max_queue: a send finds
	 * room there, or its receiver idle (so max_queue 0 still serves
	 * one at a time). */
	if (s->pending_len >= (size_t)s->cfg.max_queue &&
	    !(s->pending_len == 0 && s->current == NULL &&
	        s->block == ESB_NONE)) {
		q->state = ESR_DONE;
		s->stats.rejected++;
		push_action(s, ESA_REJECT, NULL, q, 503,
		    "server busy, please try again.  maximum pending requests exceeded");
		return;
	}
	q->state = ESR_PENDING;
	TAILQ_INSERT_TAIL(&s->pending, q, link);
	s->pending_len++;
	if (s->pending_len > s->stats.peak_pending)
		s->stats.peak_pending = s->pending_len;
	process_pending(s, now);
}

static void
runner_went_idle(struct esched *s, struct esched_runner *r, int64_t now)
{
	if (r->session_ns <= 0) {
		start_unload(s, r);
		return;
	}
	if (r->session_ns == EMU_FOREVER) {
		/* /api/ps shows the end of time, not an expiry set before. */
		r->shown_expiry_ns = 0;
		return;
	}
	r->timer_armed = 1;
	/* A keep-alive of a century, late in a fast clock: it never comes. */
	r->expires_at_ns =
	    r->session_ns > INT64_MAX - now ? INT64_MAX : now + r->session_ns;
	r->shown_expiry_ns = r->expires_at_ns;
}

void
esched_load_done(struct esched *s, struct esched_runner *r, int64_t now)
{
	struct esched_req *q, *next;

	if (r->state != RUNNER_LOADING)
		return;
	r->state = RUNNER_READY;
	r->ready_at_ns = now;
	for (q = TAILQ_FIRST(&r->waiters); q != NULL; q = next) {
		next = TAILQ_NEXT(q, link);
		q->ready_ns = now;
		push_action(s, ESA_READY, r, q, 0, NULL);
		if (!q->needs_slot) {
			TAILQ_REMOVE(&r->waiters, q, link);
			q->in_waiters = 0;
		}
	}
	if (s->block == ESB_LOADING && s->blocking_runner == r) {
		s->block = ESB_NONE;
		s->blocking_runner = NULL;
	}
	/* Its request is still there: one gone would have stopped the load
	 * (esched_finish). */
	grant_slots(s, r, now);
	process_pending(s, now);
}

void
esched_unload_done(struct esched *s, struct esched_runner *r, int64_t now)
{
	TAILQ_REMOVE(&s->runners, r, link);
	free(r);
	/* Any unload wakes the pending loop, as Ollama's unloadedCh does. */
	if (s->block == ESB_UNLOAD) {
		s->block = ESB_NONE;
		s->blocking_runner = NULL;
	}
	process_pending(s, now);
}

void
esched_finish(struct esched *s, struct esched_req *q, int64_t now)
{
	struct esched_runner *r = q->runner;

	switch (q->state) {
	case ESR_PENDING: {
		/* Ollama skips a cancelled request when it reaches the head:
		 * until then it keeps its place, against the queue's bound.
		 * A placeholder of the scheduler's own keeps it, so that the
		 * caller may free the request at once. */
		struct esched_req *kept = calloc(1, sizeof(*kept));

		if (kept == NULL)
			abort();
		kept->placeholder = 1;
		kept->state = ESR_PENDING;
		kept->model = q->model;
		TAILQ_INSERT_AFTER(&s->pending, q, kept, link);
		TAILQ_REMOVE(&s->pending, q, link);
		q->state = ESR_DONE;
		return;
	}
	case ESR_CURRENT:
		/* The load or unload the loop waits for goes on; the loop
		 * then takes the next request. */
		s->current = NULL;
		q->state = ESR_DONE;
		return;
	case ESR_ATTACHED:
		if (q->in_waiters)
			TAILQ_REMOVE(&r->waiters, q, link);
		q->in_waiters = 0;
		break;
	case ESR_RUNNING:
		TAILQ_REMOVE(&r->running, q, link);
		r->active--;
		break;
	case ESR_NEW:
	case ESR_DONE:
		return;
	}
	q->state = ESR_DONE;
	q->runner = NULL;
	r->refcount--;
	if (r->state == RUNNER_READY) {
		grant_slots(s, r, now);
		if (r->refcount == 0)
			runner_went_idle(s, r, now);
	} else if (r->state == RUNNER_LOADING && r->refcount == 0) {
		/*
		 * The load runs under the context of the request it is for:
		 * that client gone, Ollama stops the load and closes the
		 * runner, and the pending loop goes on once it is closed.
		 */
		start_unload(s, r);
		s->stats.aborted_loads++;
		if (s->block == ESB_LOADING && s->blocking_runner == r)
			s->block = ESB_UNLOAD;
		return;
	}
	process_pending(s, now);
}

void
esched_expire_model(struct esched *s, const struct emu_model *m, int64_t now)
{
	struct esched_runner *r = esched_find_runner(s, m);

	/* One still loading is not among Ollama's loaded runners yet. */
	if (r == NULL || r->state == RUNNER_LOADING)
		return;
	r->shown_expiry_ns = now;
	mark_to_expire(s, r);
}

void
esched_tick(struct esched *s, int64_t now)
{
	struct esched_runner *r, *next;

	for (r = TAILQ_FIRST(&s->runners); r != NULL; r = next) {
		next = TAILQ_NEXT(r, link);
		if (r->timer_armed && r->expires_at_ns <= now &&
		    r->refcount == 0 && r->state == RUNNER_READY)
			start_unload(s, r);
	}
	process_pending(s, now);
}

int64_t
esched_next_deadline(const struct esched *s)
{
	const struct esched_runner *r;
	int64_t best = -1;

	TAILQ_FOREACH(r, &s->runners, link)
		if (r->timer_armed && (best < 0 || r->expires_at_ns < best))
			best = r->expires_at_ns;
	return best;
}
