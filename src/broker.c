/*
 * broker.c: the process that owns the Ollama backend. Workers send it
 * inference requests on broker.sock; the policy (policy.c) decides which
 * run when, which models stay loaded, and when to switch; the broker
 * carries that out with libcurl: requests, explicit loads (an empty
 * prompt) and unloads (keep_alive 0, then /api/ps until the model is
 * gone). Every call carries its model's one num_ctx and the lease as its
 * keep_alive: while the broker lives, it renews the lease of a model idle
 * for half of it (an empty prompt, which Ollama answers at once and in no
 * slot), so that Ollama never unloads on its own timer; once the broker
 * is gone, stopped or killed, Ollama unloads each model a lease after its
 * last use. A tier whose model is missing falls back down its chain; a
 * backend that cannot be reached is retried with backoff before the
 * request fails.
 *
 * A request is known by (worker, id): if a worker sends the same request
 * again (it lost the broker and retried), the broker keeps one copy and
 * answers the newest call, and one it has just answered gets that answer
 * again, so no request runs twice.
 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "duration.h"
#include "log.h"
#include "modelname.h"
#include "msg.h"
#include "ollama.h"
#include "policy.h"
#include "proc.h"
#include "role.h"

#define RETRIES 3
#define RETRY_BASE_MS 500
/* How often an unloading model is looked for in /api/ps: every 10 ms at
 * first, then every twentieth of the time it has taken (an end is seen
 * late by 5% of its time at most), every second at the least often. */
#define UNLOAD_POLL_S 0.01
#define UNLOAD_POLL_SHARE 20
/* How long a model may stay listed after its unload before it is asked
 * again (Ollama takes a few seconds at most to stop a runner). */
#define UNLOAD_AGAIN_S 10
/* Unloads asked, at UNLOAD_AGAIN_S apart, before a model still listed is
 * taken as gone: what waits for the switch must not wait for good. */
#define UNLOAD_TRIES 3
/* How often /api/ps is asked while it does not answer, and at least. */
#define UNLOAD_POLL_BACKOFF_S 1.0
/* How long a load that could not reach the backend waits to be retried,
 * doubling while it stays away, up to the most. */
#define LOAD_PAUSE_S 2
#define LOAD_PAUSE_MAX_S 60
/* How often the backend's list of models is read again. */
#define TAGS_POLL_S 30.0
/* A renewal that failed is tried again after this share of the lease:
 * three more tries before the lease would end. */
#define RENEW_RETRY_SHARE 8
/* How long a model just loaded waits for /api/ps to tell its size before
 * it is served as its hints have it: Ollama holds /api/ps while a runner
 * exits, and a backend may not answer it at all for connect_timeout and
 * stall_timeout, a minute by default. */
#define SIZE_AFTER_LOAD_S 5.0

/* A model some tier uses: the policy knows it by its index here. */
struct model_io;

struct bmodel {
	const char *name;
	int num_ctx;
	int pin;
	int load_attempts;
	/* Asked to unload: out once /api/ps no longer lists it. */
	int unloading;
	int64_t unload_sent;     /* ms */
	int unload_tries;        /* asked, since the policy decided it */
	/* The load or unload under way, or waiting to be tried again: the
	 * broker's to free if it stops first. */
	struct model_io *io;
	/* When the policy last heard of a load or unload of it ending, or a
	 * renewal of its lease did (ms): an /api/ps asked before may not show
	 * it yet. */
	int64_t io_ended;
	/* Still listed after UNLOAD_TRIES unloads, and taken as unloaded:
	 * not taken as loaded again until it has left the list. */
	int left_listed;
	int size_doubted; /* /api/ps gave it a size past any GPU's: said */
	int files_said;   /* /api/tags gave it more than size_mb: said */
	/* The context /api/ps gave it after the broker's own load (Ollama
	 * caps num_ctx at what the model was trained for): 0 until seen. */
	int64_t own_ctx;
	int ctx_said; /* its load got another context than expected: said */
	/* A load's /api/ps may answer once the model serves, and another
	 * load has begun: told apart by their numbers. */
	unsigned loads_asked;
	/* The load whose /api/ps has not answered though the model serves
	 * (0: none): until it does, the looks of every second may take the
	 * broker's own instance for another client's (residents_seen). */
	unsigned size_awaited;
	/* What /api/show says decides the context a load of it gets. */
	int shown, show_failed, asking_show;
	struct model_ref {
		struct broker *b;
		int model;
	} ask, renewal;
	/* Its runs and renewal under way: Ollama starts the lease's clock
	 * as the last of its calls ends. */
	int in_flight;
	/* When the latest call Ollama answered for it ended (ms): the lease
	 * runs from then, or from a later end. */
	int64_t used;
	int renewing;
	/* The policy's unload, held until the renewal under way is answered:
	 * one that reached Ollama after it would load the model again. */
	int unload_held;
	int64_t renew_retry; /* ms: a failed renewal is not tried before */
	int renew_failed;    /* said, until one is answered */
	int64_t trained_ctx;
	int vision;
	int pauses;              /* in a row, since the last load */
	/* Why it counts as missing, when the backend refused to load it;
	 * empty when the backend lacks it. */
	char load_error[sizeof(((struct ollama_result *)0)->error)];
};

struct job {
	TAILQ_ENTRY(job) link;
	struct broker *b;
	uint64_t seq; /* the policy's name for it */
	struct ipc_call *call;
	struct msg_infer req;
	const struct tier_conf *tier;
	int model;
	int64_t arrived_ms;
	int64_t started_ms;
	int attempts;
	int fallbacks;
	int running;
	ev_timer retry;
};
TAILQ_HEAD(job_list, job);

/* Enough for every agent of a worker's share to be killed at once. */
#define CANCELS_KEPT 256
/* A request holds its context until it is answered, and an agent has one
 * at a time: contexts for a fleet of 1024 from the start, more as needed. */
#define BROKER_CONTEXTS 1024
/* A resend follows its answer within a second; 2 slots answer a few at
 * most meanwhile. */
#define ANSWERS_KEPT 64

/* An answer as it was sent, for a resend of its request. */
struct kept_answer {
	int worker;
	uint64_t started, id; /* its request's, as a job's key */
	char *frame;
	size_t len;
};

struct broker {
	struct ev_loop *loop;
	struct config conf;
	struct ollama *backend;
	struct ipc_server *server;
	struct policy *policy;
	struct bmodel models[POLICY_MODELS_MAX];
	int nmodels;
	struct job_list jobs; /* waiting in the policy, or running */
	/* The same jobs, found by the policy's name and by the worker's,
	 * without a walk of thousands at every frame of a burst. */
	void *jobs_by_seq;
	void *jobs_by_request;
	uint64_t next_seq;
	uint64_t served, failed, bad_frames, duplicates;
	struct hub_link *hub;
	ev_timer report;
	ev_timer wakeup;
	ev_timer lease_renew;
	ev_timer unload_poll;
	ev_timer tags_poll;
	int asking_tags;
	int tags_answered;         /* /api/tags answered once, or failed */
	struct ollama_ps resident; /* the backend's latest /api/ps */
	int asking_ps;
	int64_t ps_asked; /* when the /api/ps under way was asked (ms) */
	/* The policy plans from the first answer of /api/ps once
	 * contexts_known, or from its failure (see await_backend). */
	int plan_started;
	/*
	 * Models loaded outside the plan that a switch wants gone: when
	 * their unload was asked, and how often. One still loaded after
	 * UNLOAD_TRIES is left for Ollama to evict.
	 */
	struct foreign {
		char name[OLLAMA_NAME_MAX];
		int64_t sent;
		int tries;
		int wanted; /* listed while the policy's ask held: to unload */
		/* Taken as unloaded while /api/ps did not answer, until an
		 * answer lists it again. */
		int unseen_gone;
	} foreign[OLLAMA_PS_MAX];
	int nforeign;
	int ps_failing; /* the latest /api/ps did not answer */
	/* What the latest call to end found of the backend, for status: see
	 * msg_report. */
	int backend_state;
	int64_t backend_away_since;
	char backend_error[MSG_BACKEND_ERROR_MAX];
	/*
	 * The latest cancels, for a request that comes after its own: a
	 * worker's frames reach the loop through several contexts, in no
	 * fixed order, and a resend comes later still. Ids carry the
	 * worker's pid, so an old one never matches a new request.
	 */
	struct msg_cancel cancels[CANCELS_KEPT];
	unsigned next_cancel;
	/*
	 * The latest answers: a worker whose wait ends as its answer comes
	 * drops the answer and sends the request again, which must not run
	 * a second time.
	 */
	struct kept_answer answers[ANSWERS_KEPT];
	unsigned next_answer;
	/* Loads served before /api/ps told their size, its answer due. */
	LIST_HEAD(, model_io) sizes_overdue;
	/* The process each worker said hello from last, watched for its
	 * end: a worker left FAILED says hello no more. */
	struct worker_process {
		struct broker *b;
		int index;
		pid_t pid; /* 0: none known */
		uint64_t started; /* its proc_started, 0: not told */
		/* The last process of the worker that ended: its requests
		 * are nobody's, even once its number is another's. */
		pid_t ended_pid;
		uint64_t ended_started;
		/* On its proc_end_fd (-1: none), active while it watches;
		 * without one, workers_watch looks at the process each
		 * second. */
		int fd;
		ev_io ended;
	} workers[CONFIG_WORKERS_MAX];
	ev_timer workers_watch;
};

static void apply(struct broker *b);
static void model_io(struct broker *b, int model, int load);

/* A call of the broker's for model k starts (+1) or ends (-1); answered,
 * Ollama holds its lease from then on. */
static void
model_in_flight(struct broker *b, int k, int delta, int answered)
{
	b->models[k].in_flight += delta;
	if (answered)
		b->models[k].used = msg_clock_ms();
}

/* A load of model k ended, as the policy hears of it. */
static void
tell_loaded(struct broker *b, int k, int outcome, int64_t size_mb)
{
	b->models[k].io_ended = msg_clock_ms();
	policy_loaded(b->policy, b->models[k].io_ended, k, outcome, size_mb);
}

/* An unload of model k ended, as the policy hears of it. */
static void
tell_unloaded(struct broker *b, int k)
{
	b->models[k].io_ended = msg_clock_ms();
	policy_unloaded(b->policy, b->models[k].io_ended, k);
}

static int
model_index(const struct broker *b, const char *name)
{
	for (int i = 0; i < b->nmodels; i++)
		if (model_name_same(b->models[i].name, name))
			return i;
	return -1;
}

static int
job_seq_cmp(const void *x, const void *y)
{
	const struct job *a = x, *b = y;

	return (a->seq > b->seq) - (a->seq < b->seq);
}

static int
job_request_cmp(const void *x, const void *y)
{
	const struct job *a = x, *b = y;

	if (a->req.worker != b->req.worker)
		return (a->req.worker > b->req.worker) -
		    (a->req.worker < b->req.worker);
	if (a->req.started != b->req.started)
		return (a->req.started > b->req.started) -
		    (a->req.started < b->req.started);
	return (a->req.id > b->req.id) - (a->req.id < b->req.id);
}

static struct job *
job_by_seq(struct broker *b, uint64_t seq)
{
	struct job key = {.seq = seq};
	void **found = tfind(&key, &b->jobs_by_seq, job_seq_cmp);

	return found != NULL ? *found : NULL;
}

/*
 * A request by its worker, its process's start time and its id: a process
 * that takes the number of one before it (in the id) starts its ids again.
 */
static struct job *
find_job(struct broker *b, int worker, uint64_t started, uint64_t id)
{
	struct job key = {
	    .req = {.worker = worker, .started = started, .id = id}};
	void **found = tfind(&key, &b->jobs_by_request, job_request_cmp);

	return found != NULL ? *found : NULL;
}

/* The job is the broker's now: its worker's id is not another's. */
static void
job_add(struct broker *b, struct job *j)
{
	void **by_seq, **by_request;

	j->seq = ++b->next_seq;
	by_seq = tsearch(j, &b->jobs_by_seq, job_seq_cmp);
	by_request = tsearch(j, &b->jobs_by_request, job_request_cmp);
	if (by_seq == NULL || by_request == NULL)
		fatal("out of memory");
	/* Another job of that id would lose its node at this one's end. */
	if (*by_seq != j || *by_request != j)
		fatalx("request %llu of worker %d taken twice",
		    (unsigned long long)j->req.id, j->req.worker);
	TAILQ_INSERT_TAIL(&b->jobs, j, link);
}

/* The job is over: answered, cancelled, or left at a stop. */
static void
job_free(struct job *j)
{
	ev_timer_stop(j->b->loop, &j->retry);
	TAILQ_REMOVE(&j->b->jobs, j, link);
	tdelete(j, &j->b->jobs_by_seq, job_seq_cmp);
	tdelete(j, &j->b->jobs_by_request, job_request_cmp);
	msg_infer_free(&j->req);
	free(j);
}

static void
answer_keep(struct broker *b, const struct msg_infer *req, const char *frame,
    size_t len)
{
	struct kept_answer *k = &b->answers[b->next_answer++ % ANSWERS_KEPT];

	free(k->frame);
	k->frame = malloc(len);
	if (k->frame == NULL)
		fatal("out of memory");
	memcpy(k->frame, frame, len);
	k->len = len;
	k->worker = req->worker;
	k->started = req->started;
	k->id = req->id;
}

static const struct kept_answer *
answered_already(const struct broker *b, const struct msg_infer *req)
{
	for (size_t i = 0; i < ANSWERS_KEPT; i++) {
		const struct kept_answer *k = &b->answers[i];

		if (k->frame != NULL && k->id == req->id &&
		    k->worker == req->worker && k->started == req->started)
			return k;
	}
	return NULL;
}

static void
job_answer(
    struct job *j, int status, const char *error, struct ollama_result *res)
{
	struct msg_infer_done done = {.id = j->req.id, .status = status};
	struct msg_writer w;
	const char *data;
	size_t len;

	snprintf(done.error, sizeof(done.error), "%s", error ? error : "");
	snprintf(done.model, sizeof(done.model), "%s",
	    j->tier ? j->tier->model : "");
	if (res != NULL) {
		done.text = res->text;
		done.prompt_tokens = res->prompt_tokens;
		done.eval_tokens = res->eval_tokens;
	}
	done.queued_ms =
	    (j->started_ms ? j->started_ms : msg_clock_ms()) - j->arrived_ms;
	done.total_ms = msg_clock_ms() - j->arrived_ms;
	msg_infer_done_encode(&w, &done);
	data = msg_data(&w, &len);
	ipc_reply(j->call, data, len);
	answer_keep(j->b, &j->req, data, len);
	msg_writer_free(&w);
	if (status == INFER_OK)
		j->b->served++;
	else
		j->b->failed++;
	job_free(j);
}

/* The job goes (back) to the policy, keeping its first arrival. */
static void
job_offer(struct job *j, int again)
{
	j->running = 0;
	(again ? policy_again : policy_arrive)(j->b->policy, msg_clock_ms(),
	    j->seq, j->model, j->req.priority, j->arrived_ms);
}

/* The backend lacks model k: what waits for it falls back. */
static void
model_gone(struct broker *b, int k)
{
	b->models[k].load_error[0] = '\0';
	policy_available(b->policy, msg_clock_ms(), k, 0);
}

/* Why the policy hands back a request for model k. */
static const char *
returned_why(struct broker *b, int k)
{
	static char why[256];

	if (policy_model_state(b->policy, k) != MODEL_MISSING)
		return "its model does not fit beside the pinned ones";
	if (b->models[k].load_error[0] == '\0')
		return "its model is missing";
	/* Cut to what an answer's error holds. */
	snprintf(why, sizeof(why), "its model could not be loaded (%.200s)",
	    b->models[k].load_error);
	return why;
}

/* Its model cannot serve it: the next tier down the chain, or a failure. */
static void
job_fall_back(struct job *j, const char *error)
{
	struct broker *b = j->b;
	const struct tier_conf *next;

	/* Bounded: a chain never visits more tiers than exist. */
	if (j->tier->fallback[0] == '\0' ||
	    (size_t)++j->fallbacks >= b->conf.ntiers ||
	    (next = config_tier(&b->conf, j->tier->fallback)) == NULL) {
		job_answer(j, INFER_FAILED, error, NULL);
		return;
	}
	log_info("%s: %s (%s): falling back to tier %s", j->req.agent, error,
	    j->tier->model, next->name);
	j->tier = next;
	j->model = model_index(b, next->model);
	job_offer(j, 0);
}

static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct job *j = w->data;

	(void)loop;
	(void)revents;
	job_offer(j, 1);
	apply(j->b);
}

static void
job_done(void *arg, struct ollama_result *res)
{
	struct job *j = arg;
	struct broker *b = j->b;

	model_in_flight(b, j->model, -1, res->outcome == OLLAMA_OK);
	/* A 404 says the model is gone, loaded or not: the policy hears it
	 * before the slot this frees is given out, so that what waits for
	 * the model falls back instead of meeting the same answer. */
	if (res->outcome == OLLAMA_NO_MODEL) {
		if (policy_model_state(b->policy, j->model) != MODEL_MISSING)
			log_warnx("%s is gone from the backend: what waits for "
			          "it falls back",
			    b->models[j->model].name);
		model_gone(b, j->model);
	}
	/* Only an answer times a run: a refused or failed one says nothing
	 * of how long runs take. */
	policy_done(b->policy, msg_clock_ms(), j->seq,
	    res->outcome == OLLAMA_OK ? msg_clock_ms() - j->started_ms : 0);
	j->running = 0;
	switch (res->outcome) {
	case OLLAMA_OK:
		job_answer(j, INFER_OK, NULL, res);
		break;
	case OLLAMA_NO_MODEL:
		job_fall_back(j, res->error);
		break;
	case OLLAMA_REFUSED:
		job_answer(j, INFER_FAILED, res->error, NULL);
		break;
	case OLLAMA_UNAVAILABLE:
		if (++j->attempts < RETRIES) {
			log_warnx("%s: %s: retry %d", j->req.agent, res->error,
			    j->attempts);
			ev_timer_init(&j->retry, retry_cb,
			    RETRY_BASE_MS / 1000.0 * (1 << (j->attempts - 1)),
			    0);
			j->retry.data = j;
			ev_timer_start(b->loop, &j->retry);
		} else {
			job_answer(j, INFER_UNAVAILABLE, res->error, NULL);
		}
		break;
	}
	ollama_result_free(res);
	apply(b);
}

static void
dispatch(struct broker *b, uint64_t seq)
{
	struct job *j = job_by_seq(b, seq);
	struct ollama_call call;

	if (j == NULL)
		return;
	call = (struct ollama_call){
	    .model = b->models[j->model].name,
	    .system = j->req.system,
	    .prompt = j->req.prompt,
	    /* One fixed num_ctx per model: Ollama reloads on a change. */
	    .num_ctx = b->models[j->model].num_ctx,
	    .num_predict = j->req.num_predict,
	    .temperature = j->req.temperature,
	    .keep_alive_ms = b->conf.lease_ms,
	};
	j->running = 1;
	j->started_ms = msg_clock_ms();
	if (ollama_generate(b->backend, &call, job_done, j) != 0) {
		policy_done(b->policy, msg_clock_ms(), j->seq, 0);
		job_answer(j, INFER_UNAVAILABLE,
		    "cannot start a backend request", NULL);
		return;
	}
	model_in_flight(b, j->model, 1, 0);
}

struct model_io {
	struct broker *b;
	int model;
	ev_timer pause;
	unsigned load; /* a load's number among the model's loads_asked */
	/* Served before /api/ps told its size: see loaded_size_seen. */
	int size_overdue;
	LIST_ENTRY(model_io) overdue_link;
};

static void
load_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct model_io *io = w->data;
	struct broker *b = io->b;

	(void)loop;
	(void)revents;
	b->models[io->model].io = NULL;
	tell_loaded(b, io->model, LOAD_FAILED, 0);
	free(io);
	apply(b);
}

static void
load_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct model_io *io = w->data;
	struct broker *b = io->b;

	(void)loop;
	(void)revents;
	model_io(b, io->model, 1);
	free(io);
}

/* The context Ollama gives a model that reads images, at least. */
#define VISION_MIN_CTX 2048

/*
 * The context a load of the broker's gets, as Ollama decides it from
 * num_ctx: at least 2048 for a model that reads images, then at most what
 * the model was trained for. 0 until /api/show has told that, or without
 * num_ctx (Ollama's default depends on its settings).
 */
static int64_t
expected_ctx(const struct bmodel *m)
{
	int64_t ctx = m->num_ctx;

	if (!m->shown || m->trained_ctx <= 0 || ctx <= 0)
		return 0;
	if (m->vision && ctx < VISION_MIN_CTX)
		ctx = VISION_MIN_CTX;
	if (ctx > m->trained_ctx)
		ctx = m->trained_ctx;
	return ctx;
}

/* The context the broker's load of the model gets: what the last one got,
 * else by Ollama's rule; 0 if neither is known. */
static int64_t
known_ctx(const struct bmodel *m)
{
	return m->own_ctx > 0 ? m->own_ctx : expected_ctx(m);
}

/*
 * Is entry i of an /api/ps answer model k as its tier's requests run it?
 * Ollama loads a model again for a request that asks another num_ctx
 * (capped at the model's trained context): one that another client loaded
 * with another is theirs, in the way of the tier's until it goes.
 */
static int
ps_entry_is(const struct broker *b, const struct ollama_ps *ps, int i, int k)
{
	const struct bmodel *m = &b->models[k];
	int64_t ctx = ps->models[i].context_length;

	if (!model_name_same(m->name, ps->models[i].name))
		return 0;
	if (ctx <= 0)
		return 1; /* not told: cannot tell */
	if (known_ctx(m) > 0)
		return ctx == known_ctx(m);
	/* Ollama gives no more than is asked, but for the 2048 it gives a
	 * model that reads images at least; less may be the cap. */
	return m->num_ctx <= 0 || ctx <= m->num_ctx || ctx <= VISION_MIN_CTX;
}

/*
 * Is entry i of an /api/ps answer none of the tiers' models? Ollama holds
 * one runner a model: one the plan has loaded, or is loading, took the
 * place of any other, which an answer asked before may still list.
 */
static int
ps_entry_foreign(const struct broker *b, const struct ollama_ps *ps, int i)
{
	for (int k = 0; k < b->nmodels; k++) {
		enum model_state s = policy_model_state(b->policy, k);

		if (ps_entry_is(b, ps, i, k) ||
		    (model_name_same(b->models[k].name, ps->models[i].name) &&
		        s != MODEL_UNLOADED && s != MODEL_MISSING))
			return 0;
	}
	return 1;
}

/* The entry of the list that names the model, whatever its context, or
 * -1: Ollama holds one a model. */
static int
ps_named(const struct ollama_ps *ps, const char *name)
{
	for (int i = 0; i < ps->count; i++)
		if (model_name_same(name, ps->models[i].name))
			return i;
	return -1;
}

/* A size /api/ps gives that no GPU holds is the backend's mistake. */
#define PS_SIZE_MAX_MB CONFIG_MB_MAX

/* Model k's size in /api/ps: 0 if it is not listed, or not believed. */
static int64_t
ps_size_mb(struct broker *b, const struct ollama_ps *ps, int k)
{
	for (int i = 0; i < ps->count; i++) {
		if (!ps_entry_is(b, ps, i, k) || ps->models[i].size_mb <= 0)
			continue;
		if (ps->models[i].size_mb <= PS_SIZE_MAX_MB) {
			b->models[k].size_doubted = 0;
			return ps->models[i].size_mb;
		}
		/* Once, not every second /api/ps is asked. */
		if (!b->models[k].size_doubted)
			log_warnx("/api/ps gives %s a size of %lld MB: not "
			          "believed",
			    b->models[k].name,
			    (long long)ps->models[i].size_mb);
		b->models[k].size_doubted = 1;
	}
	return 0;
}

/*
 * Just loaded, what /api/ps lists by a model's name is the broker's: better
 * evidence than its copy of Ollama's rule, which it would otherwise take
 * its own load for another's by. Another client's load in between could
 * pass for it: the next load of the broker's tells again.
 */
static void
own_context_seen(struct bmodel *m, const struct ollama_ps *ps)
{
	int i = ps_named(ps, m->name);
	int64_t got, want;

	if (i < 0 || ps->models[i].context_length <= 0)
		return;
	got = ps->models[i].context_length;
	want = expected_ctx(m);
	if (want > 0 && got != want) {
		if (!m->ctx_said)
			log_warnx("%s got a context of %lld where %lld was "
			          "expected: taken as its own",
			    m->name, (long long)got, (long long)want);
		m->ctx_said = 1;
	}
	m->own_ctx = got;
}

/*
 * The size of a model just loaded, from /api/ps: the policy hears of the
 * load with it, so that nothing loads beside a model whose size_mb and
 * kv_mb fell short (Ollama would have to evict). Without it, the
 * configured size stands.
 */
static void
loaded_size_seen(void *arg, const struct ollama_ps *ps, const char *error)
{
	struct model_io *io = arg;
	struct broker *b = io->b;
	int model = io->model;
	struct bmodel *m = &b->models[model];
	int64_t size_mb = ps != NULL ? ps_size_mb(b, ps, model) : 0;
	enum model_state state = policy_model_state(b->policy, model);

	/*
	 * Served already: its context still tells the broker's own instance
	 * from another client's, which the looks of every second would
	 * otherwise take it for, if the model is still as that load left it.
	 */
	if (io->size_overdue) {
		LIST_REMOVE(io, overdue_link);
		if (m->size_awaited == io->load)
			m->size_awaited = 0;
		if (ps != NULL && io->load == m->loads_asked && m->io == NULL &&
		    (state == MODEL_RESIDENT || state == MODEL_DRAINING)) {
			own_context_seen(m, ps);
			if (size_mb > 0)
				policy_seen(b->policy, msg_clock_ms(), model, 1,
				    size_mb);
			apply(b);
		}
		free(io);
		return;
	}
	ev_timer_stop(b->loop, &io->pause);
	if (ps != NULL)
		own_context_seen(m, ps);
	if (size_mb == 0)
		log_warnx(
		    "loaded %s, but its size is unknown (%s): its size_mb "
		    "and kv_mb stand for it",
		    m->name, ps == NULL ? error : "/api/ps does not tell it");
	m->io = NULL;
	free(io);
	tell_loaded(b, model, LOAD_OK, size_mb);
	apply(b);
}

/*
 * /api/ps has not told the size of a model just loaded: its requests wait
 * no longer, and its size_mb and kv_mb stand for it meanwhile.
 */
static void
size_overdue_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct model_io *io = w->data;
	struct broker *b = io->b;

	(void)loop;
	(void)revents;
	log_warnx("loaded %s, but /api/ps has not told its size within %.0f "
	          "s: its size_mb and kv_mb stand for it until it does",
	    b->models[io->model].name, SIZE_AFTER_LOAD_S);
	io->size_overdue = 1;
	b->models[io->model].size_awaited = io->load;
	LIST_INSERT_HEAD(&b->sizes_overdue, io, overdue_link);
	b->models[io->model].io = NULL;
	tell_loaded(b, io->model, LOAD_OK, 0);
	apply(b);
}

static void
load_done(void *arg, struct ollama_result *res)
{
	struct model_io *io = arg;
	struct broker *b = io->b;
	struct bmodel *m = &b->models[io->model];

	if (res->outcome == OLLAMA_OK) {
		m->load_attempts = 0;
		m->pauses = 0;
		m->load_error[0] = '\0';
		m->used = msg_clock_ms();
		/* A lease of its own: failed renewals of one before, taken for
		 * gone since, are nothing to it, and its own are said. */
		m->renew_failed = 0;
		m->renew_retry = 0;
		log_info("loaded %s", m->name);
		if (ollama_ps(b->backend, loaded_size_seen, io) == 0) {
			ev_timer_init(
			    &io->pause, size_overdue_cb, SIZE_AFTER_LOAD_S, 0);
			io->pause.data = io;
			ev_timer_start(b->loop, &io->pause);
			ollama_result_free(res);
			return;
		}
		tell_loaded(b, io->model, LOAD_OK, 0);
	} else if (res->outcome == OLLAMA_UNAVAILABLE &&
	    ++m->load_attempts < RETRIES) {
		/* A backend short of memory or busy is not asked again at
		 * once. */
		double after = RETRY_BASE_MS / 1000.0 *
		    (double)(1 << (m->load_attempts - 1));

		log_warnx("load of %s: %s: retry %d in %.1f s", m->name,
		    res->error, m->load_attempts, after);
		ev_timer_init(&io->pause, load_retry_cb, after, 0);
		io->pause.data = io;
		ev_timer_start(b->loop, &io->pause);
		ollama_result_free(res);
		return;
	} else if (ollama_backend_failed(res)) {
		/* The backend is away: the policy hears of it after a pause,
		 * so that its next try is not at once; the pause doubles
		 * while it stays away, so that its log does not flood. Any
		 * other failure is the model's (a 200 that is not Ollama's
		 * would answer so for good, and what waits for the load
		 * would wait for good). */
		int pause = LOAD_PAUSE_S << (m->pauses < 5 ? m->pauses : 5);

		if (pause > LOAD_PAUSE_MAX_S)
			pause = LOAD_PAUSE_MAX_S;
		m->pauses++;
		log_warnx("cannot load %s: %s: trying again in %d s", m->name,
		    res->error, pause);
		m->load_attempts = 0;
		ev_timer_init(&io->pause, load_pause_cb, pause, 0);
		io->pause.data = io;
		ev_timer_start(b->loop, &io->pause);
		ollama_result_free(res);
		return;
	} else {
		/* Refused, or failed on every try (out of memory, say): what
		 * waits for it falls back rather than wait for good, and the
		 * model is tried again once /api/tags lists it. */
		log_warnx("cannot load %s: %s: what waits for it falls back",
		    m->name, res->error);
		snprintf(
		    m->load_error, sizeof(m->load_error), "%s", res->error);
		m->load_attempts = 0;
		tell_loaded(b, io->model, LOAD_MISSING, 0);
	}
	m->io = NULL;
	ollama_result_free(res);
	free(io);
	apply(b);
}

static void ps_seen(
    void *arg, const struct ollama_ps *ps, const char *error);

static int ps_has(
    const struct broker *b, const struct ollama_ps *ps, int model);

/* Asks /api/ps what is loaded, unless an answer is awaited. */
static void
ask_ps(struct broker *b)
{
	if (b->asking_ps)
		return;
	if (ollama_ps(b->backend, ps_seen, b) == 0) {
		b->asking_ps = 1;
		b->ps_asked = msg_clock_ms();
	}
}

/* Past its tries, still loaded: left for Ollama to evict. */
static int
foreign_given_up(const struct foreign *f, int64_t now)
{
	return f->tries >= UNLOAD_TRIES &&
	    now - f->sent >= UNLOAD_AGAIN_S * 1000;
}

/* The next look at /api/ps, by the unload that has waited least; 0 when
 * no unload is under way. */
static int
unload_poll_next(struct broker *b)
{
	int64_t now = msg_clock_ms(), waited = -1;
	double every;

	for (int i = 0; i < b->nmodels; i++)
		if (b->models[i].unloading &&
		    (waited < 0 || now - b->models[i].unload_sent < waited))
			waited = now - b->models[i].unload_sent;
	/* What was loaded outside the plan is awaited as the plan's own. */
	for (int i = 0; i < b->nforeign; i++) {
		const struct foreign *f = &b->foreign[i];

		if (f->wanted && f->tries > 0 && !foreign_given_up(f, now) &&
		    (waited < 0 || now - f->sent < waited))
			waited = now - f->sent;
	}
	if (waited < 0)
		return 0;
	every = (double)waited / 1000.0 / UNLOAD_POLL_SHARE;
	if (every < UNLOAD_POLL_S)
		every = UNLOAD_POLL_S;
	if (every > UNLOAD_POLL_BACKOFF_S || b->ps_failing)
		every = UNLOAD_POLL_BACKOFF_S;
	b->unload_poll.repeat = every;
	ev_timer_again(b->loop, &b->unload_poll);
	return 1;
}

static void
unload_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct broker *b = w->data;

	(void)loop;
	(void)revents;
	if (!unload_poll_next(b)) {
		ev_timer_stop(b->loop, w);
		return;
	}
	ask_ps(b);
}

static void
unload_done(void *arg, struct ollama_result *res)
{
	struct model_io *io = arg;
	struct broker *b = io->b;

	if (res->outcome == OLLAMA_NO_MODEL) {
		/* Removed while loaded: Ollama will not unload what it no
		 * longer has, and /api/ps would list it for good. */
		log_warnx("unload of %s: %s: it is gone from the backend",
		    b->models[io->model].name, res->error);
		tell_unloaded(b, io->model);
		model_gone(b, io->model);
		b->models[io->model].io = NULL;
		ollama_result_free(res);
		free(io);
		apply(b);
		return;
	}
	/* Ollama answers before the runner is gone: watch /api/ps. */
	if (res->outcome != OLLAMA_OK)
		log_warnx(
		    "unload of %s: %s", b->models[io->model].name, res->error);
	b->models[io->model].unloading = 1;
	b->models[io->model].io = NULL;
	log_debug("unload of %s answered: /api/ps tells its end",
	    b->models[io->model].name);
	unload_poll_next(b);
	ollama_result_free(res);
	free(io);
}

/* The call that loads (load) or unloads a model: an empty prompt loads,
 * or renews the lease of a model loaded; with keep_alive 0 it unloads. */
static struct ollama_call
model_io_call(const struct broker *b, int model, int load)
{
	return (struct ollama_call){.model = b->models[model].name,
	    .num_ctx = b->models[model].num_ctx,
	    .num_predict = -1,
	    .temperature = -1,
	    .keep_alive_ms = load ? b->conf.lease_ms : 0};
}

static void
model_io(struct broker *b, int model, int load)
{
	struct model_io *io = calloc(1, sizeof(*io));
	struct ollama_call call = model_io_call(b, model, load);

	if (io == NULL)
		fatal("out of memory");
	io->b = b;
	io->model = model;
	b->models[model].io = io;
	if (load)
		io->load = ++b->models[model].loads_asked;
	if (!load) {
		b->models[model].unload_sent = msg_clock_ms();
		b->models[model].unload_tries++;
	}
	if (ollama_generate(
	        b->backend, &call, load ? load_done : unload_done, io) != 0) {
		free(io);
		fatalx("cannot start a backend request");
	}
}

/* Unloads are the broker's own choice: the log says what for. */
static void
log_unload(struct broker *b, const char *name, const char *what)
{
	struct policy_view v;

	policy_view(b->policy, msg_clock_ms(), &v);
	if (v.next_switch >= 0)
		log_info("unloading %s%s: switching to %s (%s, offered load "
		         "%.2f, spare %.2f%s)",
		    name, what, v.models[v.next_switch].name,
		    policy_switch_reason_name(v.next_switch_why),
		    v.offered_load, v.spare_share,
		    v.overloaded ? ", overloaded" : "");
	else
		log_info("unloading %s%s: idle", name, what);
}

static void
foreign_unload_done(void *arg, struct ollama_result *res)
{
	struct broker *b = arg;

	if (res->outcome != OLLAMA_OK && res->outcome != OLLAMA_NO_MODEL)
		log_warnx(
		    "unload of a model loaded outside ollamax: %s", res->error);
	ollama_result_free(res);
	unload_poll_next(b);
}

/* The entry of a model loaded outside the plan, or NULL. */
static struct foreign *
foreign_find(struct broker *b, const char *name)
{
	for (int i = 0; i < b->nforeign; i++)
		if (model_name_same(b->foreign[i].name, name))
			return &b->foreign[i];
	return NULL;
}

/* The same, added if new. */
static struct foreign *
foreign_entry(struct broker *b, const char *name)
{
	struct foreign *f = foreign_find(b, name);

	if (f != NULL)
		return f;
	if (b->nforeign == OLLAMA_PS_MAX)
		return NULL;
	f = &b->foreign[b->nforeign++];
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->sent = 0;
	f->tries = 0;
	f->wanted = 0;
	f->unseen_gone = 0;
	return f;
}

/*
 * Unloads what /api/ps lists outside the plan, as the policy asked: each
 * once, then again UNLOAD_AGAIN_S later while it is still listed.
 */
static void
unload_foreign(struct broker *b, const struct ollama_ps *ps)
{
	int64_t now = msg_clock_ms();
	struct policy_view v;

	policy_view(b->policy, now, &v);
	for (int i = 0; i < ps->count; i++) {
		struct ollama_call call = {.model = ps->models[i].name,
		    .num_predict = -1,
		    .temperature = -1,
		    .keep_alive_ms = 0};
		struct foreign *f;

		if (!ps_entry_foreign(b, ps, i) ||
		    (f = foreign_entry(b, ps->models[i].name)) == NULL)
			continue;
		/* The policy waits until the backend lists none of them: one
		 * loaded after its ask keeps the switch out as well. */
		if (v.foreign_leaving)
			f->wanted = 1;
		if (!f->wanted || f->tries >= UNLOAD_TRIES ||
		    (f->tries > 0 && now - f->sent < UNLOAD_AGAIN_S * 1000))
			continue;
		if (f->tries == 0)
			log_unload(b, f->name, " (loaded outside ollamax)");
		else
			log_warnx("%s is still listed %lld s after its unload: "
			          "unloading it again",
			    f->name, (long long)((now - f->sent) / 1000));
		if (ollama_generate(
		        b->backend, &call, foreign_unload_done, b) != 0)
			fatalx("cannot start a backend request");
		f->sent = now;
		f->tries++;
	}
}

/* The switch that wanted them gone is over (done or dropped): those
 * still listed are another's to ask about. */
static void
foreign_switch_over(struct broker *b)
{
	struct policy_view v;
	int wanted = 0;

	for (int i = 0; i < b->nforeign; i++)
		wanted |= b->foreign[i].wanted;
	if (!wanted)
		return;
	policy_view(b->policy, msg_clock_ms(), &v);
	if (v.foreign_leaving)
		return;
	for (int i = 0; i < b->nforeign; i++)
		b->foreign[i].wanted = 0;
}

/*
 * The policy asks for the room of what is not the plan's: those listed
 * now go, tried afresh (unload_foreign takes in those listed later while
 * the ask holds).
 */
static void
want_foreign_gone(struct broker *b)
{
	for (int i = 0; i < b->resident.count; i++) {
		struct foreign *f;

		if (!ps_entry_foreign(b, &b->resident, i) ||
		    (f = foreign_entry(b, b->resident.models[i].name)) == NULL)
			continue;
		f->wanted = 1;
		f->tries = 0;
	}
	unload_foreign(b, &b->resident);
}

/* Does the list name a model, loaded outside the plan, by this name? */
static int
ps_lists_foreign(
    const struct broker *b, const struct ollama_ps *ps, const char *name)
{
	for (int i = 0; i < ps->count; i++)
		if (model_name_same(name, ps->models[i].name) &&
		    ps_entry_foreign(b, ps, i))
			return 1;
	return 0;
}

static void
say_foreign(const struct broker *b, const struct ollama_ps_model *e)
{
	int k = model_index(b, e->name);
	int64_t asked;

	if (k < 0) {
		log_info("%s (%lld MB) is loaded outside ollamax: it counts "
		         "against vram_mb",
		    e->name, (long long)e->size_mb);
		return;
	}
	asked = known_ctx(&b->models[k]) > 0 ? known_ctx(&b->models[k])
	                                     : b->models[k].num_ctx;
	log_warnx("%s (%lld MB) is loaded outside ollamax with a context of "
	          "%lld, where its tier's requests run with %lld: Ollama "
	          "would load it again for them, so it counts against "
	          "vram_mb as another model until it goes",
	    b->models[k].name, (long long)e->size_mb,
	    (long long)e->context_length, (long long)asked);
}

/*
 * Models the backend holds that no tier uses (or a tier's model with
 * another context), loaded by another client or before the broker started:
 * they count against vram_mb, and go when a model of the plan needs their
 * room. One that stays after UNLOAD_TRIES unloads no longer counts: Ollama
 * evicts it when it must.
 */
/*
 * Tells the policy what of ps is another client's and still counts: not
 * one given up on, nor one taken as unloaded while /api/ps failed.
 */
static void
foreign_weigh(struct broker *b, const struct ollama_ps *ps, int64_t now)
{
	int64_t mb = 0;
	int64_t instance_mb[POLICY_MODELS_MAX] = {0};
	int count = 0, k;

	for (int i = 0; i < ps->count; i++) {
		int64_t size = ps->models[i].size_mb;
		const struct foreign *f = foreign_find(b, ps->models[i].name);

		if (!ps_entry_foreign(b, ps, i) ||
		    (f != NULL && f->wanted && foreign_given_up(f, now)) ||
		    (f != NULL && f->unseen_gone))
			continue;
		if (size <= 0 || size > PS_SIZE_MAX_MB)
			size = 0;
		mb += size;
		count++;
		if ((k = model_index(b, ps->models[i].name)) >= 0)
			instance_mb[k] = size;
	}
	policy_foreign(b->policy, now, mb, count, instance_mb);
}

static void
foreign_seen(struct broker *b, const struct ollama_ps *ps)
{
	int64_t now = msg_clock_ms();

	for (int i = 0; i < ps->count; i++) {
		const char *name = ps->models[i].name;
		struct foreign *f = foreign_find(b, name);

		if (!ps_entry_foreign(b, ps, i))
			continue;
		if (!ps_lists_foreign(b, &b->resident, name))
			say_foreign(b, &ps->models[i]);
		if (f != NULL)
			f->unseen_gone = 0;
		/* Given up for the switch that wanted it gone, not for
		 * good. */
		if (f != NULL && f->wanted && foreign_given_up(f, now) &&
		    f->tries++ == UNLOAD_TRIES)
			log_warnx("%s is still listed after %d unloads: left "
			          "for Ollama to evict",
			    name, UNLOAD_TRIES);
	}
	/* Those gone are forgotten: one loaded again is asked afresh. */
	for (int j = 0; j < b->nforeign;)
		if (ps_lists_foreign(b, ps, b->foreign[j].name))
			j++;
		else
			b->foreign[j] = b->foreign[--b->nforeign];
	unload_foreign(b, ps);
	foreign_weigh(b, ps, now);
	b->plan_started = 1;
}

/*
 * When model k's lease is next to be renewed (ms), or -1: a model resident
 * and idle, half a lease after its last use, so that Ollama never reaches
 * the end of it. Not one loading, draining or unloading, nor one with
 * calls under way (Ollama's clock stands still meanwhile).
 */
static int64_t
renewal_due(const struct broker *b, int k)
{
	const struct bmodel *m = &b->models[k];
	int64_t due = m->used + b->conf.lease_ms / 2;

	if (policy_model_state(b->policy, k) != MODEL_RESIDENT ||
	    m->in_flight > 0 || m->io != NULL || m->unloading)
		return -1;
	return due > m->renew_retry ? due : m->renew_retry;
}

static void
renewal_done(void *arg, struct ollama_result *res)
{
	struct model_ref *ref = arg;
	struct broker *b = ref->b;
	struct bmodel *m = &b->models[ref->model];

	m->renewing = 0;
	m->io_ended = msg_clock_ms();
	model_in_flight(b, ref->model, -1, res->outcome == OLLAMA_OK);
	if (res->outcome == OLLAMA_OK) {
		if (m->renew_failed)
			log_info("%s: its lease is renewed again", m->name);
		m->renew_failed = 0;
		m->renew_retry = 0;
	} else {
		/* Once, not at every try while the backend stays away. */
		if (!m->renew_failed)
			log_warnx("cannot renew the lease of %s: %s: trying "
			          "again every %g s",
			    m->name, res->error,
			    (double)b->conf.lease_ms / RENEW_RETRY_SHARE /
			        1000);
		m->renew_failed = 1;
		m->renew_retry =
		    msg_clock_ms() + b->conf.lease_ms / RENEW_RETRY_SHARE;
		if (res->outcome == OLLAMA_NO_MODEL) {
			if (policy_model_state(b->policy, ref->model) !=
			    MODEL_MISSING)
				log_warnx("%s is gone from the backend: what "
				          "waits for it falls back",
				    m->name);
			model_gone(b, ref->model);
		}
	}
	ollama_result_free(res);
	if (m->unload_held) {
		m->unload_held = 0;
		model_io(b, ref->model, 0);
	}
	apply(b);
}

/* Renews the lease of model k: an empty prompt, which Ollama answers at
 * once for a model loaded, taking none of its slots. */
static void
lease_renew_one(struct broker *b, int k)
{
	struct bmodel *m = &b->models[k];
	struct ollama_call call = model_io_call(b, k, 1);

	m->renewal = (struct model_ref){b, k};
	if (ollama_generate(b->backend, &call, renewal_done, &m->renewal) != 0)
		fatalx("cannot start a backend request");
	m->renewing = 1;
	model_in_flight(b, k, 1, 0);
	log_debug("renewing the lease of %s", m->name);
}

/* Renews the leases due, and waits for the next. */
static void
leases_renew(struct broker *b)
{
	int64_t now = msg_clock_ms(), next = -1;

	for (int k = 0; k < b->nmodels; k++) {
		int64_t due = renewal_due(b, k);

		if (due >= 0 && due <= now)
			lease_renew_one(b, k);
		else if (due >= 0 && (next < 0 || due < next))
			next = due;
	}
	ev_timer_stop(b->loop, &b->lease_renew);
	if (next >= 0) {
		ev_timer_set(&b->lease_renew, (double)(next - now) / 1000.0, 0);
		ev_timer_start(b->loop, &b->lease_renew);
	}
}

static void
lease_renew_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	leases_renew(w->data);
}

/* Carries out what the policy decided, and when it wants to hear again. */
static void
apply(struct broker *b)
{
	struct policy_action a;
	int64_t now, at;

	while (policy_next_action(b->policy, &a)) {
		struct job *j;

		switch (a.act) {
		case ACT_DISPATCH:
			dispatch(b, a.id);
			break;
		case ACT_LOAD:
			log_info("loading %s", b->models[a.model].name);
			model_io(b, a.model, 1);
			break;
		case ACT_UNLOAD:
			if (a.model < 0) {
				want_foreign_gone(b);
				break;
			}
			log_unload(b, b->models[a.model].name,
			    b->models[a.model].pin
			        ? " (pinned: it comes back after)"
			        : "");
			b->models[a.model].unload_tries = 0;
			if (b->models[a.model].renewing)
				b->models[a.model].unload_held = 1;
			else
				model_io(b, a.model, 0);
			break;
		case ACT_RETURN:
			if ((j = job_by_seq(b, a.id)) != NULL)
				job_fall_back(j, returned_why(b, a.model));
			break;
		}
	}
	now = msg_clock_ms();
	at = policy_wakeup(b->policy, now);
	ev_timer_stop(b->loop, &b->wakeup);
	if (at >= 0) {
		ev_timer_set(&b->wakeup, (double)(at - now) / 1000.0, 0);
		ev_timer_start(b->loop, &b->wakeup);
	}
	leases_renew(b);
}

static void
wakeup_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct broker *b = w->data;

	(void)loop;
	(void)revents;
	policy_tick(b->policy, msg_clock_ms());
	apply(b);
}

static void
refuse(struct ipc_call *call, int status, const char *why, uint64_t id)
{
	struct msg_infer_done done = {.id = id, .status = status};
	struct msg_writer w;
	const char *data;
	size_t len;

	snprintf(done.error, sizeof(done.error), "%s", why);
	msg_infer_done_encode(&w, &done);
	data = msg_data(&w, &len);
	ipc_reply(call, data, len);
	msg_writer_free(&w);
}

/*
 * A job nobody will take the answer of goes, waiting or running: a
 * running one's connection to the backend closes, so that the slot frees
 * now. Its own call is answered all the same, failed for why: a context
 * of the broker's socket waits on it.
 */
static void
job_drop(struct job *j, const char *why)
{
	struct broker *b = j->b;

	if (j->running) {
		ollama_cancel(b->backend, j);
		model_in_flight(b, j->model, -1, 0);
		policy_done(b->policy, msg_clock_ms(), j->seq, 0);
	} else if (!policy_cancel(b->policy, msg_clock_ms(), j->seq)) {
		/* Given a slot by the policy, its dispatch not carried out
		 * yet (a drop of many, apply after them all): the slot frees.
		 * Or waiting for a retry, unknown to the policy, which job_free
		 * stops. */
		policy_done(b->policy, msg_clock_ms(), j->seq, 0);
	}
	refuse(j->call, INFER_FAILED, why, j->req.id);
	job_free(j);
}

/* Kept, not taken: a worker resends a request with the same id. */
static const struct msg_cancel *
cancelled_already(const struct broker *b, const struct msg_infer *req)
{
	for (size_t i = 0; i < CANCELS_KEPT; i++) {
		const struct msg_cancel *c = &b->cancels[i];

		if (c->id == req->id && c->worker == req->worker &&
		    c->started == req->started && req->id != 0)
			return c;
	}
	return NULL;
}

/* Why a worker cancelled a request. */
static const char *
cancel_why(const struct msg_cancel *c)
{
	return c->given_up ? "its agent gave up waiting for it"
	                   : "its agent was stopped";
}

/* Why a request is refused before it becomes a job; NULL if it is not. */
static const char *
refused_why(
    struct broker *b, const struct msg_infer *req, char *buf, size_t len)
{
	const struct msg_cancel *c;

	if (config_tier(&b->conf, req->tier) == NULL) {
		snprintf(buf, len, "unknown tier \"%s\"", req->tier);
		return buf;
	}
	/* Ollama would take an empty prompt for a load and answer nothing. */
	if (req->prompt == NULL || req->prompt[0] == '\0')
		return "an empty prompt";
	if ((c = cancelled_already(b, req)) != NULL) {
		log_info("%s: %s before this request came: not run", req->agent,
		    cancel_why(c));
		return cancel_why(c);
	}
	return NULL;
}

/*
 * A worker's agent was stopped, or gave up on a request: the request goes,
 * whether it waits or runs (its connection to the backend closed, so that the
 * slot frees now, not when an answer nobody wants is over). Nobody waits for
 * its answer: the worker is told only whether it was found.
 */
static void
on_cancel(struct broker *b, struct ipc_call *call, struct msg_reader *r)
{
	struct msg_cancel c;
	struct job *j;

	if (msg_cancel_decode(r, &c) != MSG_OK) {
		b->bad_frames++;
		log_warnx("bad frame from a worker (%s: %s)",
		    msg_error_name(r->error), r->detail);
		refuse(call, INFER_FAILED, "bad cancel frame", 0);
		return;
	}
	/* Its request may not be here yet, or come again. */
	b->cancels[b->next_cancel++ % CANCELS_KEPT] = c;
	if ((j = find_job(b, c.worker, c.started, c.id)) == NULL) {
		refuse(call, INFER_FAILED, "no such request", c.id);
		return;
	}
	log_info("%s: %s: request cancelled while it %s", j->req.agent,
	    cancel_why(&c), j->running ? "ran" : "waited");
	refuse(call, INFER_OK, "", c.id);
	job_drop(j, cancel_why(&c));
	apply(b);
}

/*
 * A process's start time as two parties tell it names the same process
 * unless both are told and differ: 0 is a time not known.
 */
static int
same_start(uint64_t a, uint64_t b)
{
	return a == 0 || b == 0 || a == b;
}

/* Whether the id, told with its sender's start time, is of process pid,
 * started at `started`. */
static int
sent_by(uint64_t id, uint64_t id_started, pid_t pid, uint64_t started)
{
	return (int64_t)(id >> 32) == pid && same_start(id_started, started);
}

/*
 * The requests of a worker's process that has ended can be neither
 * answered nor resent nor cancelled by anyone, as their ids name it. They
 * go, waiting or running, rather than hold the slots for answers nobody
 * takes: those of process pid started at `started`, or with all_but, of
 * every process of the worker but that one (the one it runs as now). The
 * answers and cancels kept for their resends go too: a process that takes
 * the number starts its ids again, and may not tell its start time.
 * Returns how many requests went.
 */
static int
requests_of_ended_drop(
    struct broker *b, int worker, pid_t pid, uint64_t started, int all_but)
{
	struct job *j, *next;
	int dropped = 0;

	/* Newest first, as the policy looks for them (policy_cancel). */
	for (j = TAILQ_LAST(&b->jobs, job_list); j != NULL; j = next) {
		next = TAILQ_PREV(j, job_list, link);
		if (j->req.worker != worker ||
		    sent_by(j->req.id, j->req.started, pid, started) == all_but)
			continue;
		job_drop(j, "its worker ended");
		dropped++;
	}
	for (size_t i = 0; i < ANSWERS_KEPT; i++) {
		struct kept_answer *k = &b->answers[i];

		if (k->frame != NULL && k->worker == worker &&
		    sent_by(k->id, k->started, pid, started) != all_but) {
			free(k->frame);
			k->frame = NULL;
		}
	}
	for (size_t i = 0; i < CANCELS_KEPT; i++) {
		struct msg_cancel *c = &b->cancels[i];

		if (c->id != 0 && c->worker == worker &&
		    sent_by(c->id, c->started, pid, started) != all_but)
			memset(c, 0, sizeof(*c));
	}
	if (dropped > 0)
		apply(b);
	return dropped;
}

static void
worker_unwatch(struct worker_process *wp)
{
	ev_io_stop(wp->b->loop, &wp->ended);
	if (wp->fd >= 0)
		close(wp->fd);
	wp->fd = -1;
	wp->pid = 0;
	wp->started = 0;
}

/*
 * The worker's process pid, started at `started`, has ended: its requests
 * go, and those that come in its name later are refused, even once its
 * number is another's.
 */
static void
worker_process_ended(struct worker_process *wp, pid_t pid, uint64_t started)
{
	int dropped;

	if (wp->pid == pid && same_start(wp->started, started))
		worker_unwatch(wp);
	wp->ended_pid = pid;
	wp->ended_started = started;
	dropped = requests_of_ended_drop(wp->b, wp->index, pid, started, 0);
	if (dropped > 0)
		log_info("worker %d's process %ld ended: %d request%s dropped",
		    wp->index, (long)pid, dropped, dropped == 1 ? "" : "s");
}

/* A hello, or a request, from a process found ended as it came. */
static void
ended_already(struct worker_process *wp, pid_t pid, uint64_t started)
{
	log_info(
	    "worker %d's process %ld has ended already", wp->index, (long)pid);
	worker_process_ended(wp, pid, started);
}

static void
worker_ended_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct worker_process *wp = io->data;

	/* libev gave up the descriptor (its epoll refused it): the look
	 * each second takes over. */
	if (revents & EV_ERROR) {
		ev_io_stop(loop, io);
		close(wp->fd);
		wp->fd = -1;
		return;
	}
	worker_process_ended(wp, wp->pid, wp->started);
}

/*
 * Worker w runs as process pid, which started at `started` (0: not told):
 * the one it is watched by. Returns -1, watching nothing, if that process
 * is gone already, its number free, another's thread, or another's
 * process. Once the descriptor is open, it holds the process it was opened
 * for, so a start time read after it tells which that is.
 */
static int
worker_watch(struct broker *b, int w, pid_t pid, uint64_t started)
{
	struct worker_process *wp = &b->workers[w];
	int error;

	worker_unwatch(wp);
	wp->pid = pid;
	wp->started = started;
	if ((wp->fd = proc_end_fd(pid)) >= 0) {
		if (proc_ended(pid, started)) {
			worker_unwatch(wp);
			return -1;
		}
		ev_io_init(&wp->ended, worker_ended_cb, wp->fd, EV_READ);
		wp->ended.data = wp;
		ev_io_start(b->loop, &wp->ended);
		return 0;
	}
	error = errno;
	if (error == ESRCH || error == ENOENT || error == EINVAL ||
	    proc_ended(pid, started)) {
		worker_unwatch(wp);
		return -1;
	}
	if (error == ENOSYS || error == EPERM) {
		static int said;

		if (!said)
			log_info("pidfd_open: %s: workers' processes are "
			         "looked at each second for their end",
			    strerror(error));
		said = 1;
	} else {
		log_warnx("pidfd_open of worker %d's process %ld: %s: it is "
		          "looked at each second for its end",
		    w, (long)pid, strerror(error));
	}
	return 0;
}

/*
 * The process the worker was watched as has ended, while one of another
 * process of it lives: its end, maybe not seen yet (the look each second,
 * or an end in the loop's queue), is seen now.
 */
static void
watched_replaced(struct worker_process *wp, pid_t pid, uint64_t started)
{
	if (wp->pid != 0 &&
	    (wp->pid != pid || !same_start(wp->started, started)) &&
	    proc_ended(wp->pid, wp->started))
		worker_process_ended(wp, wp->pid, wp->started);
}

/*
 * Worker `worker` says it runs as process pid, started at `started`. A
 * hello that crossed the end of its process, the next one's hello before
 * it, is that process's last word: the process the worker runs as stays.
 */
static void
worker_began(struct broker *b, int worker, pid_t pid, uint64_t started)
{
	struct worker_process *wp;
	int dropped;

	if (worker < 0 || worker >= CONFIG_WORKERS_MAX)
		return;
	wp = &b->workers[worker];
	if (proc_ended(pid, started)) {
		ended_already(wp, pid, started);
		return;
	}
	log_info("worker %d runs as process %ld", worker, (long)pid);
	watched_replaced(wp, pid, started);
	dropped = requests_of_ended_drop(b, worker, pid, started, 1);
	if (worker_watch(b, worker, pid, started) < 0)
		ended_already(wp, pid, started);
	if (dropped > 0)
		log_info("worker %d started again: %d request%s of its "
		         "process before dropped",
		    worker, dropped, dropped == 1 ? "" : "s");
}

/*
 * Whether a request comes from one of the worker's processes that has
 * ended: its frames, sent before its end, can come after the next
 * process's hello, or once the broker has stopped watching it. Else it is
 * the worker's, watched from now on when the broker watches none, or one
 * that has ended (a broker started after the worker, a hello lost, or
 * overtaken by a request).
 */
static int
request_of_ended(struct broker *b, const struct msg_infer *req)
{
	pid_t pid = (pid_t)(req->id >> 32);
	struct worker_process *wp;

	if (req->worker < 0 || req->worker >= CONFIG_WORKERS_MAX ||
	    req->id >> 32 == 0 || req->id >> 32 > INT32_MAX)
		return 0;
	wp = &b->workers[req->worker];
	/* Without a descriptor, the look each second would see the end of
	 * the process watched up to a second after a request in its name. */
	if (wp->pid != 0 && wp->fd < 0 && proc_ended(wp->pid, wp->started))
		worker_process_ended(wp, wp->pid, wp->started);
	if (sent_by(req->id, req->started, wp->pid, wp->started))
		return 0;
	/* An end recorded without a start time would refuse the process
	 * that takes its number: that one is told by the number's look. */
	if ((wp->ended_started != 0 &&
	        sent_by(
	            req->id, req->started, wp->ended_pid, wp->ended_started)) ||
	    proc_ended(pid, req->started))
		return 1;
	/* Without a descriptor, the look above has been had already. */
	if (wp->fd >= 0)
		watched_replaced(wp, pid, req->started);
	if (wp->pid == 0 &&
	    worker_watch(b, req->worker, pid, req->started) < 0) {
		ended_already(wp, pid, req->started);
		return 1;
	}
	return 0;
}

/* The processes of workers that no descriptor tells the end of. */
static void
workers_watch_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct broker *b = t->data;

	(void)loop;
	(void)revents;
	for (int w = 0; w < CONFIG_WORKERS_MAX; w++) {
		struct worker_process *wp = &b->workers[w];

		if (wp->pid > 0 && wp->fd < 0 &&
		    proc_ended(wp->pid, wp->started))
			worker_process_ended(wp, wp->pid, wp->started);
	}
}

static void
on_hello(struct broker *b, struct ipc_call *call, struct msg_reader *r)
{
	struct msg_hello h;

	if (msg_hello_decode(r, &h) != MSG_OK) {
		b->bad_frames++;
		log_warnx("bad frame from a worker (%s: %s)",
		    msg_error_name(r->error), r->detail);
		refuse(call, INFER_FAILED, "bad hello frame", 0);
		return;
	}
	if (h.role != ROLE_WORKER) {
		b->bad_frames++;
		log_warnx("a hello of role %d on broker.sock: only workers "
		          "say hello here",
		    h.role);
		refuse(call, INFER_FAILED, "only workers say hello here", 0);
		return;
	}
	refuse(call, INFER_OK, "", 0);
	worker_began(b, h.index, (pid_t)h.pid, h.started);
}

static void
on_request(void *arg, struct ipc_call *call, const void *data, size_t len)
{
	struct broker *b = arg;
	struct msg_reader r;
	struct job *j, *dup;
	const struct kept_answer *kept;
	enum msg_error opened = msg_open(&r, data, len);
	char buf[128];
	const char *why;

	if (opened == MSG_OK && r.type == MSG_CANCEL) {
		on_cancel(b, call, &r);
		msg_close(&r);
		return;
	}
	if (opened == MSG_OK && r.type == MSG_HELLO) {
		on_hello(b, call, &r);
		msg_close(&r);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		fatal("out of memory");
	if (opened != MSG_OK || msg_infer_decode(&r, &j->req) != MSG_OK) {
		b->bad_frames++;
		log_warnx("bad frame from a worker (%s: %s)",
		    msg_error_name(r.error), r.detail);
		msg_close(&r);
		free(j);
		refuse(call, INFER_FAILED, "bad request frame", 0);
		return;
	}
	msg_close(&r);
	if ((why = refused_why(b, &j->req, buf, sizeof(buf))) != NULL) {
		refuse(call, INFER_FAILED, why, j->req.id);
		msg_infer_free(&j->req);
		free(j);
		return;
	}
	if ((kept = answered_already(b, &j->req)) != NULL) {
		/* Its answer crossed the resend: the same answer again. */
		b->duplicates++;
		log_info("%s: request %llu sent again once answered: its "
		         "answer again, not a second run",
		    j->req.agent, (unsigned long long)j->req.id);
		ipc_reply(call, kept->frame, kept->len);
		msg_infer_free(&j->req);
		free(j);
		return;
	}
	j->b = b;
	j->call = call;
	j->arrived_ms = msg_clock_ms();
	j->tier = config_tier(&b->conf, j->req.tier);
	dup = find_job(b, j->req.worker, j->req.started, j->req.id);
	if (dup != NULL) {
		/* The same request again: answer the old call, keep one job. */
		struct ipc_call *old = dup->call;

		b->duplicates++;
		dup->call = call;
		refuse(old, INFER_UNAVAILABLE, "superseded by a resend",
		    dup->req.id);
		msg_infer_free(&j->req);
		free(j);
		return;
	}
	if (request_of_ended(b, &j->req)) {
		refuse(call, INFER_FAILED, "its worker had ended when it came",
		    j->req.id);
		msg_infer_free(&j->req);
		free(j);
		return;
	}
	j->model = model_index(b, j->tier->model);
	job_add(b, j);
	job_offer(j, 0);
	apply(b);
}

/* A model as the config names it, when the config has it. */
static const char *
configured_name(const struct broker *b, const char *reported)
{
	for (size_t i = 0; i < b->conf.nmodels; i++)
		if (model_name_same(b->conf.models[i].name, reported))
			return b->conf.models[i].name;
	for (size_t i = 0; i < b->conf.ntiers; i++)
		if (model_name_same(b->conf.tiers[i].model, reported))
			return b->conf.tiers[i].model;
	return reported;
}

/* Model k's entry in the list, or -1. */
static int
ps_find(const struct broker *b, const struct ollama_ps *ps, int model)
{
	for (int i = 0; i < ps->count; i++)
		if (ps_entry_is(b, ps, i, model))
			return i;
	return -1;
}

static int
ps_has(const struct broker *b, const struct ollama_ps *ps, int model)
{
	return ps_find(b, ps, model) >= 0;
}

/* The unload of model k is over: the policy may fill its room. */
static void
unload_over(struct broker *b, int k)
{
	b->models[k].unloading = 0;
	tell_unloaded(b, k);
}

/*
 * /api/ps did not answer: unloads under way cannot be seen to end. Once
 * one has waited UNLOAD_AGAIN_S, Ollama's answer to it is taken for its
 * end, and the switch goes on; meanwhile /api/ps is asked less often. So
 * for another client's models that a switch asked to go.
 */
static void
ps_failed(struct broker *b, const char *error)
{
	int changed = !b->plan_started, foreign_gone = 0;
	int64_t now = msg_clock_ms();

	/* What it holds is not known: status says nothing rather than
	 * what it was (the last answer stays, for the unloads it names).
	 * Said once, not every second it is asked. */
	if (!b->ps_failing)
		log_warnx("/api/ps: %s: what the backend holds is unknown "
		          "until it answers",
		    error);
	b->ps_failing = 1;
	/* The plan starts without knowing what else the backend holds. */
	if (!b->plan_started) {
		policy_foreign(b->policy, msg_clock_ms(), 0, 0, NULL);
		policy_tick(b->policy, msg_clock_ms());
	}
	b->plan_started = 1;
	for (int k = 0; k < b->nmodels; k++) {
		struct bmodel *m = &b->models[k];

		if (!m->unloading ||
		    msg_clock_ms() - m->unload_sent < UNLOAD_AGAIN_S * 1000)
			continue;
		log_warnx("cannot see whether %s is unloaded (%s): taking it "
		          "as unloaded",
		    m->name, error);
		unload_over(b, k);
		changed = 1;
	}
	for (int i = 0; i < b->nforeign; i++) {
		struct foreign *f = &b->foreign[i];

		if (!f->wanted || f->tries == 0 || f->unseen_gone ||
		    now - f->sent < UNLOAD_AGAIN_S * 1000)
			continue;
		log_warnx("cannot see whether %s (loaded outside ollamax) is "
		          "unloaded (%s): taking it as unloaded",
		    f->name, error);
		f->unseen_gone = 1;
		foreign_gone = 1;
	}
	if (foreign_gone) {
		foreign_weigh(b, &b->resident, now);
		changed = 1;
	}
	if (changed)
		apply(b);
}

/*
 * The tiers' models as the backend holds them, apart from loads, unloads
 * and renewals under way, or that ended after /api/ps was asked: what they
 * really take, and any loaded or unloaded by another client (or before
 * the broker started).
 */
static void
residents_seen(struct broker *b, const struct ollama_ps *ps)
{
	int64_t now = msg_clock_ms();

	for (int k = 0; k < b->nmodels; k++) {
		struct bmodel *m = &b->models[k];
		enum model_state was = policy_model_state(b->policy, k);
		int64_t size_mb = ps_size_mb(b, ps, k);
		/* A renewal that finds the model gone (the backend restarted,
		 * or the lease ran out) loads it again, unlisted until loaded:
		 * the plan keeps its room meanwhile, as for a load. */
		int settled = m->io == NULL && !m->unloading && !m->renewing &&
		    m->io_ended < b->ps_asked && m->size_awaited == 0;

		if (!ps_has(b, ps, k) && !ps->truncated)
			m->left_listed = 0;
		if (ps_has(b, ps, k)) {
			/* A size is news for what is in VRAM, or on its way. */
			if ((!settled || m->left_listed) &&
			    was == MODEL_UNLOADED)
				continue;
			policy_seen(b->policy, now, k, 1, size_mb);
			if (was == MODEL_UNLOADED)
				log_warnx("%s is loaded outside ollamax: taken "
				          "as resident",
				    m->name);
		} else if (settled && !ps->truncated) {
			policy_seen(b->policy, now, k, 0, 0);
			/* Still listed, it was loaded again with another
			 * context: foreign_seen tells that. */
			if (policy_model_state(b->policy, k) != was &&
			    ps_named(ps, m->name) < 0)
				log_warnx(
				    "%s is no longer loaded (unloaded "
				    "outside ollamax, or Ollama restarted): "
				    "it loads again when needed",
				    m->name);
		}
	}
}

/* /api/tags has answered (or failed), and /api/show of every model it
 * lists: what decides their contexts is known, or will not be soon. */
static int
contexts_known(const struct broker *b)
{
	if (!b->tags_answered)
		return 0;
	for (int k = 0; k < b->nmodels; k++)
		if (b->models[k].asking_show)
			return 0;
	return 1;
}

/*
 * What the backend says it holds: sizes for the plan, names for status,
 * and the end of an unload (Ollama answers an unload before the runner
 * is gone: the model is out when /api/ps no longer lists it).
 */
static void
ps_seen(void *arg, const struct ollama_ps *ps, const char *error)
{
	struct broker *b = arg;

	b->asking_ps = 0;
	if (ps == NULL) {
		ps_failed(b, error);
		return;
	}
	if (b->ps_failing)
		log_info("/api/ps answers again");
	b->ps_failing = 0;
	/* The plan starts once the tiers' models can be told from another
	 * client's instances of them: the next answer will do. */
	if (!b->plan_started && !contexts_known(b))
		return;
	/* All the answer says is in before the plan acts on any of it. */
	residents_seen(b, ps);
	foreign_seen(b, ps);
	policy_tick(b->policy, msg_clock_ms());
	foreign_switch_over(b);
	b->resident = *ps;
	for (int k = 0; k < b->nmodels; k++) {
		struct bmodel *m = &b->models[k];
		/* One past a list cut short may still be there. */
		int listed = ps_has(b, ps, k) || ps->truncated;
		const char *seen = ps_has(b, ps, k)
		    ? "still listed"
		    : "perhaps listed past where /api/ps was cut short";

		if (m->unloading && listed &&
		    msg_clock_ms() - m->unload_sent >= UNLOAD_AGAIN_S * 1000) {
			if (m->unload_tries >= UNLOAD_TRIES) {
				log_warnx("%s is %s %d s after %d "
				          "unloads: taking it as unloaded",
				    m->name, seen,
				    UNLOAD_AGAIN_S * UNLOAD_TRIES,
				    UNLOAD_TRIES);
				m->left_listed = 1;
				unload_over(b, k);
				continue;
			}
			/* The unload was lost or refused: ask again rather
			 * than wait on it for good. */
			log_warnx("%s is %s %lld s after its unload: "
			          "unloading it again",
			    m->name, seen,
			    (long long)((msg_clock_ms() - m->unload_sent) /
			        1000));
			m->unloading = 0;
			model_io(b, k, 0);
			continue;
		}
		/* An answer asked before the unload was sent says nothing of
		 * it: the model may not have been listed yet, still loading. */
		if (!m->unloading || listed || b->ps_asked <= m->unload_sent)
			continue;
		log_info("unloaded %s", m->name);
		unload_over(b, k);
	}
	apply(b);
}

/*
 * Each call's end: the backend answers, or it cannot be reached since the
 * first call of a row that could not reach it ended. /api/ps is asked
 * every second, so that either is told soon; a backend that takes
 * connections and answers nothing, at the calls' timeouts.
 */
static void
backend_heard(void *arg, const char *error)
{
	struct broker *b = arg;

	if (error == NULL) {
		b->backend_state = BACKEND_REACHABLE;
		b->backend_away_since = 0;
		b->backend_error[0] = '\0';
		return;
	}
	if (b->backend_state != BACKEND_UNREACHABLE)
		b->backend_away_since = msg_clock_ms();
	b->backend_state = BACKEND_UNREACHABLE;
	snprintf(b->backend_error, sizeof(b->backend_error), "%s", error);
}

static void
report_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct broker *b = t->data;
	struct msg_report r = {0};
	struct policy_view v;

	(void)loop;
	(void)revents;
	if (!b->hub->ready)
		return;
	policy_view(b->policy, msg_clock_ms(), &v);
	r.busy = v.busy;
	r.queued = v.waiting;
	r.loads = v.loads;
	r.unloads = v.unloads;
	if (v.next_switch >= 0) {
		snprintf(r.next_switch, sizeof(r.next_switch), "%s",
		    v.models[v.next_switch].name);
		snprintf(r.next_switch_why, sizeof(r.next_switch_why), "%s",
		    policy_switch_reason_name(v.next_switch_why));
	}
	r.offered_load = v.offered_load;
	r.overloaded = v.overloaded;
	for (int i = 0; i < v.nmodels && i < MSG_MODELS_MAX; i++) {
		struct msg_model_report *mr = &r.models[r.nmodels++];

		snprintf(mr->name, sizeof(mr->name), "%s", v.models[i].name);
		snprintf(mr->state, sizeof(mr->state), "%s",
		    policy_state_name(v.models[i].state));
		mr->need_mb = v.models[i].need_mb;
		mr->in_flight = v.models[i].in_flight;
		mr->waiting = v.models[i].waiting;
		mr->oldest_wait_ms = v.models[i].oldest_wait_ms;
		mr->loads = v.models[i].loads;
		mr->pin = v.models[i].pin;
	}
	r.served = (int64_t)b->served;
	r.failed = (int64_t)b->failed;
	r.bad_frames = (int64_t)(b->bad_frames + ipc_refused());
	for (int i = 0;
	     !b->ps_failing && i < b->resident.count && i < MSG_RESIDENT_MAX;
	     i++) {
		const char *name =
		    configured_name(b, b->resident.models[i].name);

		snprintf(r.resident[r.nresident++], sizeof(r.resident[0]), "%s",
		    name);
		if (ps_entry_foreign(b, &b->resident, i))
			snprintf(r.outside[r.noutside++], sizeof(r.outside[0]),
			    "%s", name);
	}
	r.backend = b->backend_state;
	r.backend_away_since = b->backend_away_since;
	snprintf(
	    r.backend_error, sizeof(r.backend_error), "%s", b->backend_error);
	hub_report(b->hub, &r);
	/* What is loaded, for the next report: the backend knows best. */
	ask_ps(b);
}

/*
 * What /api/tags says a model's files weigh: loaded, its weights take at
 * least that, whatever size_mb says. Until its size is seen in /api/ps,
 * the plan counts that and kv_mb, so that nothing loads beside it that
 * Ollama would have to evict for it.
 */
static void
files_seen(struct broker *b, int k, int64_t files_mb)
{
	const struct model_conf *mc = config_model(&b->conf, b->models[k].name);

	/* Without a [model.NAME], the hint is the whole of vram_mb. */
	if (mc == NULL || mc->size_mb <= 0 || files_mb <= mc->size_mb ||
	    files_mb > PS_SIZE_MAX_MB)
		return;
	if (!b->models[k].files_said)
		log_warnx("%s: /api/tags gives its files %lld MB, more than "
		          "its size_mb of %lld: planned with %lld MB and its "
		          "kv_mb until it has loaded",
		    b->models[k].name, (long long)files_mb,
		    (long long)mc->size_mb, (long long)files_mb);
	b->models[k].files_said = 1;
	policy_weighs(b->policy, k, files_mb + mc->kv_mb);
}

/* The first look at /api/ps waits for what tells the tiers' models from
 * another client's instances of them (see contexts_known). */
static void
start_plan_when_known(struct broker *b)
{
	if (!b->plan_started && contexts_known(b))
		ask_ps(b);
}

static void
show_seen(void *arg, const struct ollama_show *show, const char *error)
{
	struct model_ref *ask = arg;
	struct bmodel *m = &ask->b->models[ask->model];

	m->asking_show = 0;
	if (show == NULL) {
		/* Asked again with /api/tags; meanwhile, as if unasked. */
		if (!m->show_failed)
			log_warnx("%s: %s: its context is told by num_ctx "
			          "alone until /api/show answers",
			    m->name, error);
		m->show_failed = 1;
	} else {
		if (m->show_failed)
			log_info("%s: /api/show answers again", m->name);
		m->show_failed = 0;
		m->shown = 1;
		m->trained_ctx = show->context_length;
		m->vision = show->vision;
	}
	start_plan_when_known(ask->b);
}

/* Asks /api/show what decides the context of model k, once it answers. */
static void
ask_show(struct broker *b, int k)
{
	struct bmodel *m = &b->models[k];

	if (m->shown || m->asking_show)
		return;
	m->ask = (struct model_ref){b, k};
	if (ollama_show(b->backend, m->name, show_seen, &m->ask) == 0)
		m->asking_show = 1;
}

/* The models of /api/tags that matter: the broker's, wherever Ollama
 * lists them among all the box has pulled. */
static int
tags_wanted(void *arg, const char *name)
{
	const struct broker *b = arg;

	for (int k = 0; k < b->nmodels; k++)
		if (model_name_same(b->models[k].name, name))
			return 1;
	return 0;
}

/* What the backend has: a model it lacks is missing, and falls back. */
static void
tags_seen(void *arg, const struct ollama_ps *tags, const char *error)
{
	struct broker *b = arg;

	b->asking_tags = 0;
	b->tags_answered = 1;
	if (tags == NULL) {
		log_debug("the backend's models are unknown: %s", error);
		start_plan_when_known(b);
		return;
	}
	/* The list holds the tiers' models alone (tags_wanted), so it is cut
	 * short only past 64 of them; then one past the cut may well be
	 * there: only what was read counts as present, and nothing as
	 * absent. */
	for (int k = 0; k < b->nmodels; k++) {
		enum model_state was = policy_model_state(b->policy, k);
		int i = ps_find(b, tags, k);

		if (i >= 0) {
			files_seen(b, k, tags->models[i].size_mb);
			ask_show(b, k);
			policy_available(b->policy, msg_clock_ms(), k, 1);
			if (was == MODEL_MISSING)
				log_info("%s is in /api/tags: planned again",
				    b->models[k].name);
		} else if (!tags->truncated) {
			model_gone(b, k);
			/* Said as it goes missing, not every 30 s. */
			if (was != MODEL_MISSING)
				log_warnx("%s is not in /api/tags: what waits "
				          "for it falls back",
				    b->models[k].name);
		}
	}
	start_plan_when_known(b);
	apply(b);
}

/* Models come and go with ollama pull and rm: asked again now and then. */
static void
tags_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct broker *b = w->data;

	(void)loop;
	(void)revents;
	if (!b->asking_tags &&
	    ollama_tags(b->backend, tags_wanted, tags_seen, b) == 0)
		b->asking_tags = 1;
}

/* The models the tiers use, in the policy's terms. */
static void
plan_models(struct broker *b)
{
	struct policy_model_conf pm[POLICY_MODELS_MAX];
	struct policy_config pc;

	config_policy(&b->conf, &pc);
	pc.await_backend = 1;
	for (size_t t = 0; t < b->conf.ntiers; t++) {
		const char *name = b->conf.tiers[t].model;
		const struct model_conf *mc = config_model(&b->conf, name);
		int k = model_index(b, name);

		if (k >= 0 || b->nmodels == POLICY_MODELS_MAX)
			continue;
		k = b->nmodels++;
		b->models[k].name = name;
		b->models[k].num_ctx = mc ? (int)mc->num_ctx : 0;
		config_policy_model(&b->conf, name, &pm[k]);
		b->models[k].pin = pm[k].pin;
	}
	b->policy = policy_new(&pc, pm, (size_t)b->nmodels, msg_clock_ms());
}

/*
 * At a stop, the models the broker loaded are left to their lease, as at a
 * crash: Ollama unloads each a lease after its last use, and a fleet
 * started again meanwhile finds it loaded.
 */
static void
leave_to_leases(struct broker *b)
{
	char lease[32];

	duration_shown_ms(b->conf.lease_ms, lease, sizeof(lease));
	for (int k = 0; k < b->nmodels; k++) {
		enum model_state state = policy_model_state(b->policy, k);

		/* One unloading is on its way out already, unless its unload
		 * waited for a renewal. */
		if (state == MODEL_LOADING || state == MODEL_RESIDENT ||
		    state == MODEL_DRAINING || b->models[k].unload_held)
			log_info("stopping: %s left to its lease: Ollama "
			         "unloads it %s after its last use",
			    b->models[k].name, lease);
	}
}

int
broker_main(struct ev_loop *loop, const char *runtime, struct hub_link *hub,
    struct msg_setup *setup)
{
	static struct broker broker;
	struct broker *b = &broker;
	struct ollama_timeouts t;
	char url[PATH_MAX + 32];

	b->loop = loop;
	b->hub = hub;
	TAILQ_INIT(&b->jobs);
	LIST_INIT(&b->sizes_overdue);
	/* The supervisor's setup is the broker's config from now on. */
	b->conf = setup->conf;
	memset(&setup->conf, 0, sizeof(setup->conf));
	t.connect_ms = b->conf.connect_timeout_ms;
	t.first_byte_ms = b->conf.first_byte_timeout_ms;
	t.stall_ms = b->conf.stall_timeout_ms;
	t.answer_ms = b->conf.answer_timeout_ms;
	b->backend = ollama_new(loop, b->conf.backend_url, &t);
	ollama_on_heard(b->backend, backend_heard, b);
	ev_init(&b->wakeup, wakeup_cb);
	b->wakeup.data = b;
	ev_init(&b->unload_poll, unload_poll_cb);
	b->unload_poll.data = b;
	ev_init(&b->lease_renew, lease_renew_cb);
	b->lease_renew.data = b;
	plan_models(b);
	for (int w = 0; w < CONFIG_WORKERS_MAX; w++) {
		b->workers[w].b = b;
		b->workers[w].index = w;
		b->workers[w].fd = -1;
		ev_init(&b->workers[w].ended, worker_ended_cb);
	}
	snprintf(url, sizeof(url), "ipc://%s/broker.sock", runtime);
	/* One context per request in flight from all workers together. */
	b->server = ipc_listen(loop, url, BROKER_CONTEXTS, on_request, b);
	if (b->server == NULL)
		fatalx("cannot serve %s", url);
	hub_ready(hub, NULL, 0);
	/* /api/tags and /api/show first; then /api/ps, whose answer the plan
	 * starts from (start_plan_when_known). */
	ev_timer_init(&b->tags_poll, tags_poll_cb, 0, TAGS_POLL_S);
	b->tags_poll.data = b;
	ev_timer_start(loop, &b->tags_poll);
	ev_timer_init(&b->report, report_cb, 0.05, 1.0);
	b->report.data = b;
	ev_timer_start(loop, &b->report);
	ev_timer_init(&b->workers_watch, workers_watch_cb, 1.0, 1.0);
	b->workers_watch.data = b;
	ev_timer_start(loop, &b->workers_watch);
	log_info("serving %s: %ld slots on %s", url, b->conf.parallel,
	    b->conf.backend_url);
	ev_run(loop, 0);
	log_info("stopping: served %llu, failed %llu, bad frames %llu, "
	         "resends answered once %llu",
	    (unsigned long long)b->served, (unsigned long long)b->failed,
	    (unsigned long long)b->bad_frames,
	    (unsigned long long)b->duplicates);
	ev_timer_stop(loop, &b->report);
	ev_timer_stop(loop, &b->workers_watch);
	for (int w = 0; w < CONFIG_WORKERS_MAX; w++)
		worker_unwatch(&b->workers[w]);
	ev_timer_stop(loop, &b->wakeup);
	ev_timer_stop(loop, &b->unload_poll);
	ev_timer_stop(loop, &b->tags_poll);
	ev_timer_stop(loop, &b->lease_renew);
	role_closing();
	ipc_server_close(b->server);
	/* No call's end is reported past this. */
	ollama_free(b->backend);
	leave_to_leases(b);
	for (int k = 0; k < b->nmodels; k++)
		if (b->models[k].io != NULL) {
			ev_timer_stop(loop, &b->models[k].io->pause);
			free(b->models[k].io);
		}
	while (!LIST_EMPTY(&b->sizes_overdue)) {
		struct model_io *io = LIST_FIRST(&b->sizes_overdue);

		LIST_REMOVE(io, overdue_link);
		free(io);
	}
	{
		struct job *j;

		while ((j = TAILQ_FIRST(&b->jobs)) != NULL)
			job_free(j);
	}
	for (size_t i = 0; i < ANSWERS_KEPT; i++)
		free(b->answers[i].frame);
	policy_free(b->policy);
	config_free(&b->conf);
	return 0;
}

/* ollamax-broker: a program of its own, so that only the broker maps
 * libcurl and its TLS stack; the supervisor starts it. */
int
main(int argc, char **argv)
{
	return role_program(argc, argv, "broker", broker_main);
}
