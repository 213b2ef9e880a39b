/*
 * replay.c: an arm of the reference workload replayed in simulated time.
 *
 * The same pieces as a live run, without processes, sockets or a clock:
 * the emulator's scheduler (esched) and timing model (work_rate) stand for
 * ollamax-emu, and for the ollamax arm the broker's policy decides, on its
 * own clock as in a live run (the emulator's divided by the speed), with
 * the broker's delays: it looks at the clock every 20 ms, and for the end
 * of an unload every 10 ms. The emulated box is scripts/bench's: SLOTS
 * parallel requests, EMU_VRAM_MB, the emulator's defaults otherwise, so
 * that a config that misjudges the box shows as evictions, as it would
 * live. What a live run adds is its jitter: a replay gives the same
 * figures every time, in some 20 ms an arm.
 *
 * The plan arm stands for a broker that knows every arrival beforehand: it
 * follows a residency plan fixed in advance, reacts at once, and serves
 * first come, first served. Searching the plans of a few loads tells what
 * no broker could do better with as few (replay_best_plan).
 */
#include "autoconf.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy.h"
#include "workload.h"

/* The broker's polls, on its own clock (ms). */
#define BROKER_TICK_MS 20
#define BROKER_UNLOAD_POLL_MS 10

/* A load or an unload under way on the emulator. */
struct io {
	struct esched_runner *runner;
	double end; /* sim s */
};

struct replay {
	struct run *w;
	const struct config *conf;
	const struct emu_catalog *cat;
	enum replay_arm arm;
	double now; /* sim s */
	struct esched sched;
	struct esched_req *reqs; /* one per request */
	double *left;            /* solo seconds of work left, per request */
	double *started;         /* when it took a slot, sim s */
	int *running;            /* requests holding a slot */
	int nrunning;
	struct io *io;
	int nio, capio;
	/* What each tier's requests ask for, as the broker sends them. */
	const struct emu_model *model[TIERS];
	int num_ctx[TIERS];
	/* The broker's policy, when the arm is ollamax. */
	struct policy *policy;
	double unloaded_at[TIERS]; /* when the broker sees an unload end */
	double next_tick;
	double busy_at; /* the last event but the broker's own ticks */
	/* The plan's broker, when the arm is plan: it keeps its own queue,
	 * and knows what it asked of the emulator without asking back. */
	const struct plan *plan;
	int phase;
	enum model_state state[TIERS];
	int in_flight[TIERS];
	int *queue; /* waiting requests, first come first */
	int nqueue;
};

static int64_t
policy_ms(const struct replay *r, double sim_s)
{
	return (int64_t)llround(sim_s * 1000 / r->w->speed);
}

static double
sim_of_policy_ms(const struct replay *r, int64_t ms)
{
	return (double)ms / 1000 * r->w->speed;
}

static int64_t
ns(double sim_s)
{
	return (int64_t)llround(sim_s * NS_PER_SEC);
}

static void
io_add(struct replay *r, struct esched_runner *runner, double end)
{
	if (r->nio == r->capio) {
		r->capio = r->capio ? r->capio * 2 : 8;
		r->io = realloc(r->io, (size_t)r->capio * sizeof(*r->io));
		if (r->io == NULL)
			fatal("out of memory");
	}
	r->io[r->nio++] = (struct io){runner, end};
}

/* What the emulator answers: the tokens and the solo work of request id,
 * as ollamax-emu counts them for this model and prompt. */
static void
start_work(struct replay *r, int id, const struct emu_model *m)
{
	struct request *q = &r->w->r[id];
	int64_t seed = -1;
	/* The model the request is sent to names the answer: after a
	 * fallback, the fallback's. */
	uint64_t h = text_hash(
	    0, tiers[q->served].model, strlen(tiers[q->served].model));
	int answer;

	h = text_hash(h, &seed, sizeof(seed));
	h = text_hash(h, q->prompt, strlen(q->prompt));
	answer = text_answer_tokens(m, h);
	if (answer > tiers[q->tier].output_tokens)
		answer = tiers[q->tier].output_tokens;
	q->prompt_tokens = tiers[q->tier].prompt_tokens;
	q->eval_tokens = answer;
	r->left[id] = q->prompt_tokens / m->prompt_tokens_per_s +
	    answer / m->gen_tokens_per_s;
	r->started[id] = r->now;
	r->running[r->nrunning++] = id;
}

static int
tier_of(const struct replay *r, const struct emu_model *m)
{
	for (int t = 0; t < TIERS; t++)
		if (r->model[t] == m)
			return t;
	fatalx("%s is none of the workload's models", m->name);
}

static void policy_actions(struct replay *r);
static void plan_act(struct replay *r);
static void ended(struct replay *r, int id, int ok);

static void
sched_actions(struct replay *r)
{
	struct esched_action a;

	while (esched_next_action(&r->sched, &a)) {
		switch (a.kind) {
		case ESA_LOAD:
			io_add(r, a.runner,
			    r->now + (double)a.runner->load_ns / NS_PER_SEC);
			break;
		case ESA_UNLOAD:
			io_add(r, a.runner, r->now + EMU_UNLOAD_MS / 1000.0);
			break;
		case ESA_READY:
			if (!a.req->needs_slot) {
				/* A load request: the broker hears it is done.
				 */
				int k = *(int *)a.req->owner;

				esched_finish(&r->sched, a.req, ns(r->now));
				free(a.req->owner);
				free(a.req);
				if (r->arm == REPLAY_PLAN) {
					r->state[k] = MODEL_RESIDENT;
					plan_act(r);
					break;
				}
				/* With its size, as the broker reads it from
				 * /api/ps as the load ends. */
				policy_loaded(r->policy, policy_ms(r, r->now),
				    k, LOAD_OK,
				    (int64_t)(a.runner->size_bytes /
				        (1024 * 1024)));
				policy_actions(r);
			}
			break;
		case ESA_START:
			start_work(r, (int)a.req->id, a.runner->model);
			break;
		case ESA_REJECT:
			/* Not with the reference workload: at most one request
			 * an agent, far fewer than the queue holds. */
			fatalx("the emulator refused a request: %s", a.message);
		}
	}
}

static void
submit_to_emulator(
    struct replay *r, int id, const struct emu_model *m, int num_ctx)
{
	struct esched_req *e = &r->reqs[id];

	memset(e, 0, sizeof(*e));
	e->id = (uint64_t)id;
	e->model = m;
	e->num_ctx = num_ctx;
	e->needs_slot = 1;
	if (r->arm != REPLAY_DIRECT) {
		/* The broker's lease, renewed while it runs, never ends
		 * within a run: its models stay loaded for good, as they do
		 * here (the plan leaves Ollama no eviction, whose order a
		 * keep-alive would weigh). */
		e->has_keep_alive = 1;
		e->keep_alive_ns = EMU_FOREVER;
	}
	esched_submit(&r->sched, e, ns(r->now));
	sched_actions(r);
}

/* The broker's load: an empty prompt, answered once the model is in. */
static void
load_model(struct replay *r, int k)
{
	struct esched_req *e = calloc(1, sizeof(*e));
	int *model = malloc(sizeof(*model));

	if (e == NULL || model == NULL)
		fatal("out of memory");
	*model = k;
	e->owner = model;
	e->model = r->model[k];
	e->num_ctx = r->num_ctx[k];
	e->has_keep_alive = 1;
	e->keep_alive_ns = EMU_FOREVER;
	esched_submit(&r->sched, e, ns(r->now));
	sched_actions(r);
}

/*
 * The tier a request handed back falls back to, as the broker's chain
 * goes: the fallback of the tier whose model it was last sent to; -1 at
 * the chain's end, or once it has been through as many tiers as there are
 * (a chain that loops).
 */
static int
fallback_of(const struct replay *r, struct request *q)
{
	const struct tier_conf *at =
	    config_tier(r->conf, tiers[q->served].tier);

	if (at == NULL || at->fallback[0] == '\0' || ++q->fallbacks >= TIERS)
		return -1;
	for (int t = 0; t < TIERS; t++)
		if (strcmp(tiers[t].tier, at->fallback) == 0)
			return t;
	return -1;
}

static void
policy_actions(struct replay *r)
{
	struct policy_action a;

	while (policy_next_action(r->policy, &a)) {
		struct request *q;
		int t;

		switch (a.act) {
		case ACT_DISPATCH:
			submit_to_emulator(r, (int)a.id, r->model[a.model],
			    r->num_ctx[a.model]);
			break;
		case ACT_LOAD:
			load_model(r, a.model);
			break;
		case ACT_UNLOAD:
			esched_expire_model(
			    &r->sched, r->model[a.model], ns(r->now));
			sched_actions(r);
			/* /api/ps leaves out a runner that is unloading: the
			 * broker sees the model gone at its first poll. */
			r->unloaded_at[a.model] = r->now +
			    BROKER_UNLOAD_POLL_MS / 1000.0 * r->w->speed;
			break;
		case ACT_RETURN:
			/* As the broker does: down the tier chain, the
			 * request keeping its first arrival; at its end, it
			 * fails. */
			q = &r->w->r[a.id];
			if ((t = fallback_of(r, q)) >= 0) {
				q->served = t;
				policy_arrive(r->policy, policy_ms(r, r->now),
				    a.id, t, r->w->agents[q->agent].priority,
				    policy_ms(r, q->submit));
				break;
			}
			q->service = 0;
			ended(r, (int)a.id, 0);
			break;
		}
	}
}

/* What model t takes in VRAM, as the emulator counts it. */
static uint64_t
runner_bytes(const struct replay *r, int t)
{
	return esched_runner_bytes(r->model[t],
	    esched_effective_ctx(r->model[t], r->num_ctx[t]), SLOTS);
}

/* Of the models in mask, the one that takes the most VRAM; -1 if none.
 * Ollama fits the largest first, so plans load in that order too. */
static int
largest_of(const struct replay *r, uint32_t mask)
{
	int largest = -1;

	for (int t = 0; t < TIERS; t++)
		if ((mask & (1u << t)) &&
		    (largest < 0 ||
		        runner_bytes(r, t) > runner_bytes(r, largest)))
			largest = t;
	return largest;
}

/*
 * Whether the models of `coming` can be loaded beside those of `kept`, the
 * largest first, by Ollama's rule: the first on an empty GPU may take all
 * of it (partly offloaded is not resident), each further one 80% of what
 * is free.
 */
static int
can_come(const struct replay *r, uint32_t kept, uint32_t coming)
{
	uint64_t free_bytes = (uint64_t)EMU_VRAM_MB * 1024 * 1024;

	for (int t = 0; t < TIERS; t++)
		if (kept & (1u << t))
			free_bytes -= runner_bytes(r, t);
	for (int next; (next = largest_of(r, coming)) >= 0;) {
		if (runner_bytes(r, next) >
		    (kept == 0 ? free_bytes : free_bytes / 100 * 80))
			return 0;
		free_bytes -= runner_bytes(r, next);
		kept |= 1u << next;
		coming &= ~(1u << next);
	}
	return 1;
}

/*
 * The plan's broker: the models of the phase stay, the others drain and
 * go (one kept that a larger one could not come beside goes too, and
 * comes back after it), then the phase's models load, the largest first,
 * one load or unload at a time as Ollama does. Free slots take the
 * oldest requests of the kept models.
 */
static void
plan_act(struct replay *r)
{
	uint32_t want = r->plan->models[r->phase], kept = 0;
	int io = 0, leaving = 0, busy = 0;

	for (int t = 0; t < TIERS; t++) {
		if (r->state[t] == MODEL_LOADING ||
		    r->state[t] == MODEL_UNLOADING)
			io = 1;
		if (r->state[t] == MODEL_RESIDENT && (want & (1u << t)))
			kept |= 1u << t;
	}
	if (!can_come(r, kept, want & ~kept))
		kept = 0;
	for (int t = 0; t < TIERS && !io; t++)
		if (r->state[t] == MODEL_RESIDENT && !(kept & (1u << t))) {
			leaving = 1;
			if (r->in_flight[t] == 0) {
				r->state[t] = MODEL_UNLOADING;
				esched_expire_model(
				    &r->sched, r->model[t], ns(r->now));
				sched_actions(r);
				io = 1;
			}
		}
	if (!io && !leaving) {
		int next = largest_of(r, want & ~kept);

		if (next >= 0) {
			r->state[next] = MODEL_LOADING;
			load_model(r, next);
		}
	}
	for (int t = 0; t < TIERS; t++)
		busy += r->in_flight[t];
	for (int i = 0; i < r->nqueue && busy < SLOTS;) {
		int id = r->queue[i], t = r->w->r[id].tier;

		if (!(kept & (1u << t))) {
			i++;
			continue;
		}
		memmove(&r->queue[i], &r->queue[i + 1],
		    (size_t)(--r->nqueue - i) * sizeof(*r->queue));
		r->in_flight[t]++;
		busy++;
		submit_to_emulator(r, id, r->model[t], r->num_ctx[t]);
	}
}

static void
submit(struct replay *r, int id)
{
	struct request *q = &r->w->r[id];
	int t = q->tier;

	q->submit = r->now;
	if (r->arm == REPLAY_DIRECT) {
		submit_to_emulator(r, id, r->model[t], r->num_ctx[t]);
		return;
	}
	if (r->arm == REPLAY_PLAN) {
		r->queue[r->nqueue++] = id;
		plan_act(r);
		return;
	}
	policy_arrive(r->policy, policy_ms(r, r->now), (uint64_t)id, t,
	    r->w->agents[q->agent].priority, policy_ms(r, r->now));
	policy_actions(r);
}

/* Request id is answered (or failed): its agent's next request goes, if
 * it has come. */
static void
ended(struct replay *r, int id, int ok)
{
	struct request *q = &r->w->r[id];

	q->done = r->now;
	q->ok = ok;
	r->w->done++;
	if (q->next >= 0 && r->w->r[q->next].submit == -1)
		submit(r, q->next);
}

static void
finish(struct replay *r, int slot)
{
	int id = r->running[slot];
	struct request *q = &r->w->r[id];

	r->running[slot] = r->running[--r->nrunning];
	q->service = r->now - r->started[id];
	esched_finish(&r->sched, &r->reqs[id], ns(r->now));
	sched_actions(r);
	if (r->arm == REPLAY_PLAN) {
		r->in_flight[q->tier]--;
		plan_act(r);
	}
	if (r->arm == REPLAY_OLLAMAX) {
		policy_done(r->policy, policy_ms(r, r->now), (uint64_t)id,
		    policy_ms(r, q->service));
		policy_actions(r);
	}
	ended(r, id, 1);
}

static double
rate_of(const struct replay *r, int id)
{
	const struct esched_runner *runner = r->reqs[id].runner;

	/* Every running request is on the one GPU. */
	return work_rate(runner->active, r->nrunning, EMU_SHARE,
	    work_offload_slowdown(runner->size_bytes, runner->vram_bytes));
}

/* The num_ctx the broker sends for tier t; with none, the emulator's own. */
static int
tier_num_ctx(const struct config *conf, int t)
{
	const struct model_conf *mc = config_model(conf, tiers[t].model);

	return mc && mc->num_ctx > 0
	    ? (int)mc->num_ctx
	    : esched_default_ctx((uint64_t)EMU_VRAM_MB * 1024 * 1024);
}

static void
setup(struct replay *r)
{
	struct esched_config ec = {
	    .parallel = SLOTS,
	    .max_queue = EMU_MAX_QUEUE,
	    .vram_bytes = (uint64_t)EMU_VRAM_MB * 1024 * 1024,
	    .default_keep_alive_ns = (int64_t)EMU_KEEP_ALIVE_S * NS_PER_SEC,
	};
	struct policy_model_conf pm[TIERS];
	struct policy_config pc;

	esched_init(&r->sched, &ec);
	config_policy(r->conf, &pc);
	for (int t = 0; t < TIERS; t++) {
		r->model[t] = emu_catalog_find(r->cat, tiers[t].model);
		if (r->model[t] == NULL)
			fatalx("%s is not in the catalog", tiers[t].model);
		r->num_ctx[t] = tier_num_ctx(r->conf, t);
		config_policy_model(r->conf, tiers[t].model, &pm[t]);
		r->unloaded_at[t] = -1;
	}
	r->reqs = calloc((size_t)r->w->n + 1, sizeof(*r->reqs));
	r->left = calloc((size_t)r->w->n + 1, sizeof(*r->left));
	r->started = calloc((size_t)r->w->n + 1, sizeof(*r->started));
	r->running = calloc((size_t)r->w->n + 1, sizeof(*r->running));
	r->queue = calloc((size_t)r->w->n + 1, sizeof(*r->queue));
	if (!r->reqs || !r->left || !r->started || !r->running || !r->queue)
		fatal("out of memory");
	for (int i = 0; i < r->w->n; i++) {
		struct request *q = &r->w->r[i];

		q->submit = 0;
		q->done = -1;
		q->service = 0;
		q->ok = 0;
	}
	r->w->done = 0;
	if (r->arm == REPLAY_OLLAMAX) {
		r->policy = policy_new(&pc, pm, TIERS, 0);
		policy_actions(r);
	}
	if (r->arm == REPLAY_PLAN)
		plan_act(r);
}

/* A load or an unload ended on the emulator. */
static void
io_done(struct replay *r, int i)
{
	struct esched_runner *runner = r->io[i].runner;

	r->io[i] = r->io[--r->nio];
	if (runner->state == RUNNER_LOADING) {
		esched_load_done(&r->sched, runner, ns(r->now));
	} else {
		int t = tier_of(r, runner->model);

		esched_unload_done(&r->sched, runner, ns(r->now));
		if (r->arm == REPLAY_PLAN) {
			r->state[t] = MODEL_UNLOADED;
			plan_act(r);
		}
	}
	sched_actions(r);
}

int
replay(struct run *w, const struct config *conf, const struct emu_catalog *cat,
    enum replay_arm arm, const struct plan *plan, struct replay_counts *out)
{
	struct replay r = {
	    .w = w, .conf = conf, .cat = cat, .arm = arm, .plan = plan};
	int sent = 0, stuck = 0;

	setup(&r);
	while (w->done < w->n) {
		enum {
			NONE,
			ARRIVAL,
			IO,
			FINISH,
			TIMER,
			UNLOADED,
			TICK,
			PHASE
		} what = NONE;
		double next = INFINITY;
		int who = -1;
		int64_t deadline = esched_next_deadline(&r.sched);

		if (sent < w->n && w->r[w->order[sent]].arrive < next) {
			next = w->r[w->order[sent]].arrive;
			what = ARRIVAL;
		}
		for (int i = 0; i < r.nio; i++)
			if (r.io[i].end < next) {
				next = r.io[i].end;
				what = IO;
				who = i;
			}
		for (int i = 0; i < r.nrunning; i++) {
			double end = r.now +
			    fmax(0, r.left[r.running[i]]) /
			        rate_of(&r, r.running[i]);

			if (end < next) {
				next = end;
				what = FINISH;
				who = i;
			}
		}
		if (deadline >= 0 && (double)deadline / NS_PER_SEC < next) {
			next = fmax(r.now, (double)deadline / NS_PER_SEC);
			what = TIMER;
		}
		if (arm == REPLAY_PLAN && r.phase + 1 < plan->nphases &&
		    plan->at[r.phase + 1] < next) {
			next = fmax(r.now, plan->at[r.phase + 1]);
			what = PHASE;
		}
		for (int t = 0; t < TIERS && arm == REPLAY_OLLAMAX; t++)
			if (r.unloaded_at[t] >= 0 && r.unloaded_at[t] < next) {
				next = r.unloaded_at[t];
				what = UNLOADED;
				who = t;
			}
		if (arm == REPLAY_OLLAMAX) {
			int64_t at =
			    policy_wakeup(r.policy, policy_ms(&r, r.now));

			if (at >= 0) {
				/* Never sooner than BROKER_TICK_MS after the
				 * last tick: the policy's own interval while
				 * requests wait, and a wakeup already due does
				 * not tick over and over at one instant. */
				double tick = fmax(sim_of_policy_ms(&r, at),
				    fmax(r.next_tick, r.now));
				if (tick < next) {
					next = tick;
					what = TICK;
				}
			}
		}
		/* The broker's ticks alone, for a simulated hour: nothing
		 * the policy decides any more reaches the emulator. */
		if (what == NONE || (what == TICK && next - r.busy_at > 3600)) {
			stuck = 1;
			break;
		}
		if (what != TICK)
			r.busy_at = next;
		for (int i = 0; i < r.nrunning; i++)
			r.left[r.running[i]] -=
			    rate_of(&r, r.running[i]) * (next - r.now);
		r.now = next;
		switch (what) {
		case ARRIVAL: {
			int id = w->order[sent++];

			if (agent_free(w, id))
				submit(&r, id);
			else
				w->r[id].submit = -1; /* sent when prev ends */
			break;
		}
		case IO:
			io_done(&r, who);
			break;
		case FINISH:
			finish(&r, who);
			break;
		case TIMER:
			esched_tick(&r.sched, ns(r.now));
			sched_actions(&r);
			break;
		case UNLOADED:
			r.unloaded_at[who] = -1;
			policy_unloaded(r.policy, policy_ms(&r, r.now), who);
			policy_actions(&r);
			break;
		case PHASE:
			r.phase++;
			plan_act(&r);
			break;
		case TICK:
			r.next_tick =
			    r.now + BROKER_TICK_MS / 1000.0 * w->speed;
			policy_tick(r.policy, policy_ms(&r, r.now));
			policy_actions(&r);
			break;
		case NONE:
			break;
		}
	}
	out->stuck_at = stuck ? r.now : -1;
	out->loads = (int64_t)r.sched.stats.loads;
	out->evictions = (int64_t)r.sched.stats.evictions;
	policy_free(r.policy);
	esched_destroy(&r.sched);
	free(r.reqs);
	free(r.left);
	free(r.started);
	free(r.running);
	free(r.io);
	free(r.queue);
	return stuck ? -1 : 0;
}

/* Enough of a replay to weigh models as the emulator does (runner_bytes,
 * can_come), for a plan before any replay. */
static void
probe_init(struct replay *probe, const struct config *conf,
    const struct emu_catalog *cat)
{
	memset(probe, 0, sizeof(*probe));
	for (int t = 0; t < TIERS; t++) {
		probe->model[t] = emu_catalog_find(cat, tiers[t].model);
		if (probe->model[t] == NULL)
			fatalx("%s is not in the catalog", tiers[t].model);
		probe->num_ctx[t] = tier_num_ctx(conf, t);
	}
}

/* "deepseek-r1:8b, qwen2.5-coder:7b or tinyllama" */
static void
model_names(char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int t = 0; t < TIERS && len < size; t++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s",
		    t == 0              ? ""
		        : t + 1 < TIERS ? ", "
		                        : " or ",
		    tiers[t].model);
}

/* How much of the text from `from` to `to` a message echoes: enough to
 * find it, and room left for the rest of the message. */
static int
echoed(const char *from, const char *to)
{
	return to - from > 48 ? 48 : (int)(to - from);
}

/* The shortest text of sim seconds s that reads back as s: plain decimals
 * when some do, as a plan is most often written. */
static void
seconds_text(double s, char *buf, size_t size)
{
	for (int decimals = 0; decimals <= 17; decimals++) {
		snprintf(buf, size, "%.*f", decimals, s);
		if (strtod(buf, NULL) == s)
			return;
	}
	snprintf(buf, size, "%.17g", s);
}

/* Phase n's start, the text from `text` to `end`: 0 or -1 with err. Only
 * decimal numbers: strtod would take "0x10", "inf" and "nan" too. */
static int
parse_phase_start(const char *text, const char *end, struct plan *plan, int n,
    char *err, size_t errlen)
{
	size_t span = (size_t)(end - text);
	int len = echoed(text, end);
	char *num_end;
	double at;

	if (span == 0 || strspn(text, "0123456789.eE+-") < span ||
	    (at = strtod(text, &num_end), num_end != end)) {
		snprintf(err, errlen,
		    "phase %d: '%.*s' is not a number of seconds", n + 1, len,
		    text);
		return -1;
	}
	if (at < 0 || at > PLAN_AT_MAX_S) {
		snprintf(err, errlen,
		    "phase %d: %.*s s is out of range (0 to %.0f s)", n + 1,
		    len, text, PLAN_AT_MAX_S);
		return -1;
	}
	if (n == 0 && at != 0) {
		snprintf(err, errlen,
		    "phase 1: starts at %.*s s, but the first phase starts the "
		    "run, at 0",
		    len, text);
		return -1;
	}
	if (n > 0 && at <= plan->at[n - 1]) {
		char before[32];

		seconds_text(plan->at[n - 1], before, sizeof(before));
		snprintf(err, errlen,
		    "phase %d: %.*s s is not after phase %d's %s s", n + 1, len,
		    text, n, before);
		return -1;
	}
	plan->at[n] = at + 0.0; /* -0 is 0 */
	return 0;
}

int
plan_parse(const char *text, const struct config *conf,
    const struct emu_catalog *cat, struct plan *plan, char *err, size_t errlen)
{
	struct replay probe;
	const char *p = text;

	probe_init(&probe, conf, cat);
	memset(plan, 0, sizeof(*plan));
	while (*p != '\0') {
		int n = plan->nphases;
		const char *at, *start = p, *end = p;

		if (isspace((unsigned char)*p)) {
			p++;
			continue;
		}
		while (*end != '\0' && !isspace((unsigned char)*end))
			end++;
		if (n == PLAN_PHASES_MAX) {
			snprintf(err, errlen, "more than %d phases",
			    PLAN_PHASES_MAX);
			return -1;
		}
		at = memchr(p, '@', (size_t)(end - p));
		if (at == NULL) {
			snprintf(err, errlen,
			    "phase %d: '%.*s' is not MODEL[+MODEL...]@SECONDS",
			    n + 1, echoed(p, end), p);
			return -1;
		}
		if (p == at) {
			snprintf(err, errlen, "phase %d: no model", n + 1);
			return -1;
		}
		for (;;) {
			const char *plus = memchr(p, '+', (size_t)(at - p));
			size_t len = (size_t)((plus ? plus : at) - p);
			int t = 0;

			if (len == 0) {
				snprintf(err, errlen,
				    "phase %d: an empty model name in '%.*s' "
				    "(a '+' too many?)",
				    n + 1, echoed(start, end), start);
				return -1;
			}
			while (t < TIERS &&
			    (strlen(tiers[t].model) != len ||
			        strncmp(tiers[t].model, p, len) != 0))
				t++;
			if (t == TIERS) {
				char names[256];

				model_names(names, sizeof(names));
				snprintf(err, errlen,
				    "phase %d: '%.*s' is none of the "
				    "workload's models (%s)",
				    n + 1, echoed(p, p + len), p, names);
				return -1;
			}
			if (plan->models[n] & (1u << t)) {
				snprintf(err, errlen, "phase %d: %s twice",
				    n + 1, tiers[t].model);
				return -1;
			}
			plan->models[n] |= 1u << t;
			if (plus == NULL)
				break;
			p = plus + 1;
		}
		if (parse_phase_start(at + 1, end, plan, n, err, errlen) != 0)
			return -1;
		if (!can_come(&probe, 0, plan->models[n])) {
			snprintf(err, errlen,
			    "phase %d: its models do not fit together in "
			    "%d MB",
			    n + 1, EMU_VRAM_MB);
			return -1;
		}
		plan->nphases++;
		p = end;
	}
	if (plan->nphases == 0) {
		snprintf(err, errlen, "no phase");
		return -1;
	}
	return 0;
}

void
plan_describe(const struct plan *plan, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; i < plan->nphases && len < size; i++) {
		const char *sep = i > 0 ? " " : "";
		char at[32];

		for (int t = 0; t < TIERS && len < size; t++)
			if (plan->models[i] & (1u << t)) {
				len += (size_t)snprintf(buf + len, size - len,
				    "%s%s", sep, tiers[t].model);
				sep = "+";
			}
		/* So that a plan given as its text replays the same. */
		seconds_text(plan->at[i], at, sizeof(at));
		if (len < size)
			len +=
			    (size_t)snprintf(buf + len, size - len, "@%s", at);
	}
}

struct plan_hunt {
	struct run *w;
	const struct config *conf;
	const struct emu_catalog *cat;
	struct plan_search *found;
	struct plan best[PLAN_SEARCH_LOADS_MAX + 1];
	double best_makespan[PLAN_SEARCH_LOADS_MAX + 1];
};

/* The loads of plan's phases: each model not kept from the phase before. */
static int
loads_called_for(const struct plan *plan)
{
	int loads = 0;

	for (int i = 0; i < plan->nphases; i++)
		loads += __builtin_popcount(
		    plan->models[i] & ~(i > 0 ? plan->models[i - 1] : 0));
	return loads;
}

/*
 * The search keeps the best plan of each load count apart, a plan's count
 * being the larger of the loads its phases call for and those its replay
 * made: so counted, it is the same whatever the limit (a plan that ends
 * before its last phases still counts them). Up to a limit, every count
 * then holds what it would under any higher limit, refined in the same
 * order (fewest loads first, before a higher count's refinement can bring
 * it anything): allowing more loads only adds counts to choose from, and
 * never ends later.
 */
static void
try_plan(struct plan_hunt *h, const struct plan *plan)
{
	struct replay_counts counts;
	int loads;
	double makespan;

	h->found->tried++;
	if (replay(h->w, h->conf, h->cat, REPLAY_PLAN, plan, &counts) != 0)
		return;
	loads = loads_called_for(plan);
	if (counts.loads > loads)
		loads = (int)counts.loads;
	if (loads > h->found->max_loads)
		return;
	h->found->highest_utilization = fmax(
	    h->found->highest_utilization, slot_utilization(h->w, -INFINITY));
	makespan = run_makespan(h->w);
	if (h->best[loads].nphases == 0 || makespan < h->best_makespan[loads]) {
		h->best[loads] = *plan;
		h->best_makespan[loads] = makespan;
	}
}

/*
 * Every switch time of plan's phases from `phase` on, from `from` to `to`
 * by `step` (sim s), each later than the one before; to a tenth of a
 * second, as a plan's text is most often written.
 */
static void
sweep(struct plan_hunt *h, struct plan *plan, int phase, const double *from,
    const double *to, double step)
{
	if (phase == plan->nphases) {
		try_plan(h, plan);
		return;
	}
	double first = fmax(from[phase], plan->at[phase - 1] + step);

	for (int i = 0; first + i * step <= to[phase] + step / 2; i++) {
		plan->at[phase] = round((first + i * step) * 10) / 10;
		sweep(h, plan, phase + 1, from, to, step);
	}
}

/*
 * The switch grid: coarse over the whole run, then finer around the best
 * of each load count, each step a fifth of the one before, down to about
 * a second. Coarse, a sequence of sets gets at most PLAN_COARSE_PLANS
 * plans: a step of PLAN_COARSE_S, or more for a longer run or more
 * phases, so that those cost longer replays and not a power more of them.
 * Phases: up to four, which with three models is as many as four loads
 * make (a phase that only unloads would idle VRAM for nothing).
 */
#define PLAN_SEARCH_PHASES 4
#define PLAN_COARSE_S 30.0
#define PLAN_COARSE_PLANS 1800
#define PLAN_FINEST_S 1.0

/* The coarse step for `switches` switch times over `span` sim s. */
static double
coarse_step(double span, int switches)
{
	double step = PLAN_COARSE_S;

	for (;;) {
		double points = span / step, plans = 1;

		/* Increasing times: points choose switches. */
		for (int k = 0; k < switches; k++)
			plans = plans * (points - k) / (k + 1);
		if (plans <= PLAN_COARSE_PLANS)
			return step;
		step *= 1.1;
	}
}

int
replay_best_plan(struct run *w, const struct config *conf,
    const struct emu_catalog *cat, int max_loads, struct plan *best,
    struct plan_search *found, struct replay_counts *out)
{
	struct plan_hunt *h = calloc(1, sizeof(*h));
	struct replay probe;
	uint32_t sets[1u << TIERS], used = 0;
	int nsets = 0, pick_loads = -1;
	double span = 0; /* switch times: up to half as late again as the
	                  * last arrival, for the work left after it */

	if (h == NULL)
		fatal("out of memory");
	memset(found, 0, sizeof(*found));
	found->max_loads = max_loads < PLAN_SEARCH_LOADS_MAX
	    ? max_loads
	    : PLAN_SEARCH_LOADS_MAX;
	h->w = w;
	h->conf = conf;
	h->cat = cat;
	h->found = found;
	/* The sets a phase may keep: models with requests that fit
	 * together. */
	probe_init(&probe, conf, cat);
	for (int i = 0; i < w->n; i++) {
		used |= 1u << w->r[i].tier;
		span = fmax(span, w->r[i].arrive * 1.5);
	}
	for (uint32_t m = 1; m < (1u << TIERS); m++)
		if ((m & ~used) == 0 && can_come(&probe, 0, m))
			sets[nsets++] = m;
	/* Plans of 1 to PLAN_SEARCH_PHASES phases, each bringing a model
	 * the one before lacks, every model with requests in one of them. */
	for (int n = 1; n <= PLAN_SEARCH_PHASES && nsets > 0 && used != 0;
	     n++) {
		int pick[PLAN_SEARCH_PHASES] = {0};

		for (;;) {
			struct plan plan = {.nphases = n};
			uint32_t all = 0;
			int ok = 1, k;
			double from[PLAN_PHASES_MAX], to[PLAN_PHASES_MAX];

			for (int i = 0; i < n; i++) {
				plan.models[i] = sets[pick[i]];
				all |= sets[pick[i]];
				if (i > 0 &&
				    (sets[pick[i]] & ~sets[pick[i - 1]]) == 0)
					ok = 0;
			}
			if (ok && all == used &&
			    loads_called_for(&plan) <= found->max_loads) {
				for (int i = 0; i < n; i++) {
					from[i] = 0;
					to[i] = span;
				}
				sweep(h, &plan, 1, from, to,
				    coarse_step(span, n - 1));
			}
			for (k = n - 1; k >= 0 && ++pick[k] >= nsets; k--)
				pick[k] = 0;
			if (k < 0)
				break;
		}
	}
	/* Finer around the best of each count, fewest loads first (see
	 * try_plan): the outcome moves little with a switch time, but in
	 * steps (a request more or less before the switch). */
	for (int loads = 1; loads <= found->max_loads; loads++)
		for (double step =
		         coarse_step(span, h->best[loads].nphases - 1) / 5;
		     h->best[loads].nphases > 1 && step >= PLAN_FINEST_S;
		     step /= 5) {
			struct plan around = h->best[loads];
			double from[PLAN_PHASES_MAX], to[PLAN_PHASES_MAX];

			for (int i = 1; i < around.nphases; i++) {
				from[i] = fmax(step, around.at[i] - step * 5);
				to[i] = around.at[i] + step * 5;
			}
			sweep(h, &around, 1, from, to, step);
		}
	for (int loads = 1; loads <= found->max_loads; loads++)
		if (h->best[loads].nphases > 0 &&
		    (pick_loads < 0 ||
		        h->best_makespan[loads] < h->best_makespan[pick_loads]))
			pick_loads = loads;
	if (pick_loads < 0) {
		free(h);
		return -1;
	}
	*best = h->best[pick_loads];
	free(h);
	/* Leave w with the best plan's replay. */
	return replay(w, conf, cat, REPLAY_PLAN, best, out);
}
