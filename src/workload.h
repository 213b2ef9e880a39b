/*
 * workload.h: the reference workload of scripts/bench, shared by the arms
 * ollamax-workload plays it against: live (workload.c) or replayed in
 * simulated time (replay.c).
 */
#ifndef OLLAMAX_WORKLOAD_H
#define OLLAMAX_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "config.h"
#include "emu/emu.h"
#include "ipc.h"

#define TIERS 3
/* The reference box's slots: Ollama serving 2 requests in parallel. */
#define SLOTS 2

struct tier_load {
	const char *tier, *model;
	int prompt_tokens, output_tokens;
	double work_s; /* expected solo seconds of one request */
};

extern struct tier_load tiers[TIERS];

struct request {
	int agent, tier;
	int served;    /* the tier whose model answered: tier, or a fallback */
	int fallbacks; /* tiers fallen back, in a replay */
	double arrive;       /* sim s */
	double submit, done; /* sim s; done < 0: not yet */
	double service;      /* sim s in a slot */
	int prompt_tokens, eval_tokens;
	int ok;
	int next; /* the agent's next request, -1 */
	char *prompt;
};

struct agent {
	char name[CONFIG_NAME_MAX + 1];
	int tier, priority;
	int first; /* its first request, -1 */
};

struct run {
	struct agent *agents;
	int nagents;
	struct request *r;
	int n, cap;
	double speed;
	double t0; /* wall time of sim 0 */
	int done;
	/* ollamax arm */
	struct ev_loop *loop;
	struct ipc_client *ctl;
	ev_timer tick;
	int next_due; /* requests by arrival, sent so far */
	int *order;
	double rate_per_agent; /* arrivals per sim s, as drawn */
	/* The emulator's counts as the direct arm's clock started. */
	int64_t emu_loads, emu_evictions;
};

/* Whether request id may go now that it has come: its agent's previous
 * request, if any, is answered. An agent works as an agent does. */
int agent_free(const struct run *w, int id);

/* From the first arrival to the last answer (sim s); 0 if none was
 * answered. */
double run_makespan(const struct run *w);

/* Share of the slots serving while some request waited for one, from
 * `from` (sim s) on. */
double slot_utilization(const struct run *w, double from);

/* What the backend did in a replayed arm, as /emu/stats would say. */
struct replay_counts {
	int64_t loads, evictions;
	double stuck_at; /* sim s, when the arm could not go on */
};

enum replay_arm {
	REPLAY_DIRECT,  /* each request straight to the emulator */
	REPLAY_OLLAMAX, /* through the broker's policy */
	REPLAY_PLAN,    /* a residency plan fixed beforehand */
};

/*
 * A residency plan: from at[i] (sim s, at[0] = 0) the models in
 * models[i] (a mask of tiers) are the ones resident, and the others go.
 */
#define PLAN_PHASES_MAX 32
/* The latest a phase may start (sim s): a run lasts minutes, and the
 * emulator's clock counts nanoseconds in 64 bits. */
#define PLAN_AT_MAX_S 1e6
struct plan {
	int nphases;
	double at[PLAN_PHASES_MAX];
	uint32_t models[PLAN_PHASES_MAX];
};

/*
 * Plays the arm in simulated time, no process and no clock: every request
 * of w ends with its submit, done and service times and its token counts.
 * Direct: each request straight to the emulator's scheduler. Ollamax:
 * through the broker's policy, configured as conf says, to the same
 * emulator. Plan: an ideal broker that knows no delay follows plan, first
 * come first served (see plan_parse). All on the emulator's timing model
 * for cat's models.
 * Returns 0, or -1 if the arm stopped with requests unanswered (a plan
 * that leaves a model out for good).
 */
int replay(struct run *w, const struct config *conf,
    const struct emu_catalog *cat, enum replay_arm arm, const struct plan *plan,
    struct replay_counts *out);

/* What a search of plans found. */
struct plan_search {
	int max_loads;
	int tried; /* plans replayed */
	/* The highest of any plan within max_loads that answered all: the
	 * best plan, the one that ends soonest, may have a lower one. */
	double highest_utilization;
};

#define PLAN_SEARCH_LOADS_MAX 64

/*
 * The plan of up to four phases and at most max_loads loads (1 to
 * PLAN_SEARCH_LOADS_MAX) that ends soonest, knowing every arrival: phases
 * of models that fit together, switch times searched on a grid and
 * refined. Leaves w with that plan's replay. Returns 0, or -1 if no such
 * plan answers every request (or w has none).
 */
int replay_best_plan(struct run *w, const struct config *conf,
    const struct emu_catalog *cat, int max_loads, struct plan *best,
    struct plan_search *found, struct replay_counts *out);

/* "deepseek-r1:8b@0 qwen2.5-coder:7b+tinyllama@515" */
void plan_describe(const struct plan *plan, char *buf, size_t size);
/* The other way: phases separated by white space. 0, or -1 with err
 * saying what is wrong and where (a model not the workload's or named
 * twice, a time not a number, out of range or out of order, models that
 * do not fit together as conf sends them). */
int plan_parse(const char *text, const struct config *conf,
    const struct emu_catalog *cat, struct plan *plan, char *err, size_t errlen);

#endif
