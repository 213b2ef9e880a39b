/*
 * policy.h: the broker's decisions, as a pure state machine.
 *
 * Events go in (a request arrives, one ends, a load or unload ends, time
 * passes); actions come out (dispatch a request, load a model, unload a
 * model, hand a request back). Nothing here does I/O or reads a clock: the
 * time is passed in, so every rule can be replayed in a test.
 *
 * The rules:
 * - Slots: at most `parallel` requests in flight to the backend.
 * - Residency: the models loaded fit vram_mb by Ollama's own rule (the
 *   first model may take it all; each further one needs at most 80% of
 *   what is left), at most max_loaded of them, so that Ollama never has to
 *   evict on its own (but for a model removed while loaded, which it
 *   will not unload). A model is only fed while resident; one to be
 *   evicted drains (a slot it frees takes one of its runs only if the
 *   slot would idle longer than the run outlasts the drain; near
 *   capacity, the last request of a resident model is held back the
 *   same way while a switch away is weighed), and is
 *   unloaded explicitly before the next is loaded. One load or
 *   unload at a time, as Ollama does. A model that fits beside the pinned
 *   ones in no order hands its requests back.
 * - Switches: a model that does not fit comes in when the models it
 *   would evict have nothing waiting (at once if its backlog is worth the
 *   loads, else once they have idled that long; under overload, after
 *   min_residency, once a slot is free if its backlog is worth the whole
 *   switch), or after min_residency:
 *   by turns, once they have nothing waiting and a slot is free, or the
 *   latest answer it owes is later than theirs by half
 *   a polling cycle (switch cost / (2 (1 - load)): batches grow as the
 *   load nears capacity; none under overload); when its backlog
 *   outweighs theirs and they have run twenty switch costs; when one of
 *   its requests would otherwise miss its max_wait (not under overload,
 *   where switching for bounds that cannot all hold would waste the
 *   slots on loads). The load offered is the slot time asked for lately,
 *   each model's arrivals weighed by its measured runs. Overload: more
 *   offered than the slots serve, or more waiting than they serve within
 *   the normal bound, or slots saturated by agents that wait for their
 *   answers (no time to spare, the load near 1, a backlog past the
 *   tightest bound; until the slots have time to spare again, so the
 *   backlog left is served in the batches it waits in).
 * - Order: short answers first (highest response ratio next, weighed by
 *   priority) until a request has used 40% of its max_wait; from there
 *   the most pressed first (aging: a low request that has waited long
 *   beats a high one that just came).
 * - Pinned and preloaded models are loaded at start, the largest first
 *   (a preload only if the pins still to load fit after it). When pins
 *   alone keep a model out, those smaller than it make way if they fit
 *   again after it, and are loaded again right after it; the switch is
 *   given up if nothing waits for the model any more. A pin that does
 *   not fit (that model proved larger once loaded, or took its room
 *   while it was missing) comes back at once, in the place of the models
 *   in its way. A resident model with nothing to do for idle_unload is
 *   unloaded.
 * - Missing models (the backend lacks them, loaded or not) hand their
 *   requests back.
 * - Estimates: load and service times are guessed, then measured; a
 *   model not measured yet is guessed from those that are.
 */
#ifndef OLLAMAX_POLICY_H
#define OLLAMAX_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* Models in a mask are bits; the last bit stands for those loaded outside
 * the plan. */
#define POLICY_MODELS_MAX 31
#define POLICY_PRIOS 3 /* enum msg_priority: low, normal, high */

struct policy_config {
	int parallel;
	int64_t vram_mb;
	int max_loaded;                    /* Ollama's cap on runners */
	int64_t max_wait_ms[POLICY_PRIOS]; /* by priority */
	int64_t min_residency_ms;
	int64_t idle_unload_ms;   /* 0: never */
	double load_mb_per_s;     /* until a load is timed */
	int64_t service_guess_ms; /* until a request is timed */
	/* Plan nothing until policy_foreign tells what the backend holds
	 * besides: a preload would not load over another client's model. */
	int await_backend;
};

struct policy_model_conf {
	const char *name;
	int64_t need_mb; /* weights and KV cache, the hint */
	int pin;
	int preload;
};

enum model_state {
	MODEL_UNLOADED,
	MODEL_LOADING,
	MODEL_RESIDENT,
	MODEL_DRAINING, /* to be evicted: not fed, waits for in flight */
	MODEL_UNLOADING,
	MODEL_MISSING, /* the backend does not have it */
};

/* Why a switch was decided: the rule that made it pay. */
enum switch_reason {
	SWITCH_NONE,
	SWITCH_IDLE,  /* nothing waits for the models it evicts */
	SWITCH_TURN,  /* the turn of the latest answer owed */
	SWITCH_AGING, /* a request would miss its max_wait */
	SWITCH_BATCH, /* a larger backlog, after a long phase */
	SWITCH_PIN,   /* a pin comes back */
	SWITCH_LAST = SWITCH_PIN,
};

enum policy_act {
	ACT_DISPATCH, /* send request id to model */
	ACT_LOAD,     /* load model (empty prompt) */
	ACT_UNLOAD,   /* unload model (empty prompt, keep_alive 0); model -1:
	                 those loaded outside the plan (policy_foreign) */
	ACT_RETURN,   /* request id cannot be served by model: missing */
};

struct policy_action {
	enum policy_act act;
	uint64_t id;
	int model;
};

struct policy;

struct policy *policy_new(const struct policy_config *c,
    const struct policy_model_conf *models, size_t nmodels, int64_t now);
void policy_free(struct policy *p);

/* A request for model (an index) arrived at `arrived` (it may have waited
 * elsewhere before: a fallback keeps its first arrival). */
void policy_arrive(struct policy *p, int64_t now, uint64_t id, int model,
    int prio, int64_t arrived);
/* The same request offered again after a failed try: it waits as before,
 * but is no new load (a backend that fails would otherwise look busier). */
void policy_again(struct policy *p, int64_t now, uint64_t id, int model,
    int prio, int64_t arrived);
/* A request no longer wanted (its agent was stopped): forgotten if it
 * still waits (returns 1); a running one is ended by the broker, and then
 * reported with policy_done (returns 0). */
int policy_cancel(struct policy *p, int64_t now, uint64_t id);
/* A dispatched request ended (answered or failed) after service_ms. */
void policy_done(
    struct policy *p, int64_t now, uint64_t id, int64_t service_ms);
/* A load ended: LOAD_OK (size_mb is what the backend says it takes, 0
 * if not known), LOAD_MISSING (the backend has no such model: its
 * requests are returned) or LOAD_FAILED (unreachable: tried again). */
enum load_outcome { LOAD_FAILED = -1, LOAD_MISSING = 0, LOAD_OK = 1 };
void policy_loaded(
    struct policy *p, int64_t now, int model, int ok, int64_t size_mb);
void policy_unloaded(struct policy *p, int64_t now, int model);
/* Whether the backend has the model at all, from /api/tags or a request it
 * answered 404. A model it lacks is missing, loaded or not (its waiting
 * requests are returned); one it has again is not. */
void policy_available(struct policy *p, int64_t now, int model, int present);
/*
 * What the backend's /api/ps says of a model while no load or unload of it
 * is under way: loaded, with what it really takes (0 if not known), or not.
 * One loaded outside the plan (by another client, or before the broker
 * started) is resident from then on; one gone from VRAM with nothing in
 * flight (unloaded, or evicted, by another client) is unloaded.
 */
void policy_seen(
    struct policy *p, int64_t now, int model, int loaded, int64_t size_mb);
/*
 * What the model takes at the least, by what the backend says its files
 * weigh (/api/tags): until the backend has said what it takes loaded,
 * its hint is raised to that. Planned at the next event.
 */
void policy_weighs(struct policy *p, int model, int64_t at_least_mb);
/*
 * Models the backend holds that are not the tiers' (or are, with another
 * context length): what they take and how many. They count against
 * vram_mb; when a model needs their room the policy asks for their unload
 * (ACT_UNLOAD of model -1), and waits until the backend holds none.
 * instance_mb (NULL for none) gives, for each of the plan's models, the
 * MiB of another client's instance of it among them (loaded with another
 * context): a load of the model takes that one's place. The first call
 * ends await_backend.
 * These two take one answer of /api/ps in: the plan acts on all of it at
 * the next policy_tick, not on a part.
 */
void policy_foreign(struct policy *p, int64_t now, int64_t mb, int count,
    const int64_t *instance_mb);
/* Time passed: aging, min residency and idle unload may act now. */
void policy_tick(struct policy *p, int64_t now);

/* The next action to carry out; 0 when there is none. */
int policy_next_action(struct policy *p, struct policy_action *a);
/* When the policy next wants a tick (ms, absolute), or -1. */
int64_t policy_wakeup(const struct policy *p, int64_t now);

/* What ollamaxctl status and queue show. */
struct policy_model_view {
	const char *name;
	enum model_state state;
	int64_t need_mb;
	int in_flight;
	int waiting;
	int64_t oldest_wait_ms;
	int64_t loads;
	int pin;
};

struct policy_view {
	int slots, busy, waiting;
	int64_t loads, unloads;
	int nmodels;
	struct policy_model_view models[POLICY_MODELS_MAX];
	int next_switch; /* the model a switch is under way to, or -1 */
	enum switch_reason next_switch_why;
	double offered_load; /* slot time asked for lately, per slot */
	int overloaded;      /* bounds given up for throughput */
	double spare_share;  /* slot time idle with nothing waiting, lately */
	int foreign_leaving; /* the unload of what is not the plan's is asked */
};

void policy_view(const struct policy *p, int64_t now, struct policy_view *v);
enum model_state policy_model_state(const struct policy *p, int model);
const char *policy_state_name(enum model_state s);
const char *policy_switch_reason_name(enum switch_reason r);

#endif
