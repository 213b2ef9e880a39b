/*
 * broker.c: the process that owns the Ollama backend. Workers send it
 * inference requests on broker.sock; it keeps them in one FIFO and never
 * has more than `parallel` of them in flight to the backend. A tier whose
 * model is missing falls back down its chain; a backend that cannot be
 * reached is retried with backoff before the request fails.
 *
 * A request is known by (worker, id): if a worker sends the same request
 * again (it lost the broker and retried), the broker keeps one copy and
 * answers the newest call, so no request runs twice.
 */
#include "autoconf.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "msg.h"
#include "ollama.h"
#include "role.h"

#define RETRIES 3
#define RETRY_BASE_MS 500

struct job {
	TAILQ_ENTRY(job) link;
	struct broker *b;
	struct ipc_call *call;
	struct msg_infer req;
	const struct tier_conf *tier;
	int64_t arrived_ms;
	int64_t started_ms;
	int attempts;
	int fallbacks;
	int running;
	ev_timer retry;
};
TAILQ_HEAD(job_list, job);

struct broker {
	struct ev_loop *loop;
	struct config conf;
	struct ollama *backend;
	struct ipc_server *server;
	struct job_list queue;
	struct job_list running;
	int inflight;
	uint64_t served, failed, bad_frames, duplicates;
	struct hub_link *hub;
	ev_timer report;
	struct ollama_ps resident; /* the backend's latest /api/ps */
	int asking_ps;
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void dispatch(struct broker *b);

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
	    (j->started_ms ? j->started_ms : now_ms()) - j->arrived_ms;
	done.total_ms = now_ms() - j->arrived_ms;
	msg_infer_done_encode(&w, &done);
	data = msg_data(&w, &len);
	ipc_reply(j->call, data, len);
	msg_writer_free(&w);
	if (status == INFER_OK)
		j->b->served++;
	else
		j->b->failed++;
	msg_infer_free(&j->req);
	free(j);
}

static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct job *j = w->data;

	(void)loop;
	(void)revents;
	/* Back at the head: it has waited its turn already. */
	TAILQ_INSERT_HEAD(&j->b->queue, j, link);
	dispatch(j->b);
}

static void
job_done(void *arg, struct ollama_result *res)
{
	struct job *j = arg;
	struct broker *b = j->b;

	TAILQ_REMOVE(&b->running, j, link);
	j->running = 0;
	b->inflight--;
	switch (res->outcome) {
	case OLLAMA_OK:
		job_answer(j, INFER_OK, NULL, res);
		break;
	case OLLAMA_NO_MODEL:
		/* Bounded: a chain never visits more tiers than exist. */
		if (j->tier->fallback[0] != '\0' &&
		    (size_t)++j->fallbacks < b->conf.ntiers) {
			log_info(
			    "%s: model %s is missing: falling back to tier %s",
			    j->req.agent, j->tier->model, j->tier->fallback);
			j->tier = config_tier(&b->conf, j->tier->fallback);
			TAILQ_INSERT_HEAD(&b->queue, j, link);
		} else {
			job_answer(j, INFER_FAILED, res->error, NULL);
		}
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
	dispatch(b);
}

static void
dispatch(struct broker *b)
{
	struct job *j;

	while (b->inflight < b->conf.parallel &&
	    (j = TAILQ_FIRST(&b->queue)) != NULL) {
		const struct model_conf *m =
		    config_model(&b->conf, j->tier->model);
		struct ollama_call call = {
		    .model = j->tier->model,
		    .system = j->req.system,
		    .prompt = j->req.prompt,
		    /* One fixed num_ctx per model: Ollama reloads on a change.
		     */
		    .num_ctx = m ? (int)m->num_ctx : 0,
		    .num_predict = j->req.num_predict,
		    .temperature = j->req.temperature,
		    .keep_alive_s = -1,
		};

		TAILQ_REMOVE(&b->queue, j, link);
		if (ollama_generate(b->backend, &call, job_done, j) != 0) {
			job_answer(j, INFER_UNAVAILABLE,
			    "cannot start a backend request", NULL);
			continue;
		}
		if (j->started_ms == 0)
			j->started_ms = now_ms();
		j->running = 1;
		TAILQ_INSERT_TAIL(&b->running, j, link);
		b->inflight++;
	}
}

static struct job *
find_job(struct job_list *l, int worker, uint64_t id)
{
	struct job *j;

	TAILQ_FOREACH(j, l, link)
		if (j->req.worker == worker && j->req.id == id)
			return j;
	return NULL;
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

static void
on_request(void *arg, struct ipc_call *call, const void *data, size_t len)
{
	struct broker *b = arg;
	struct msg_reader r;
	struct job *j, *dup;

	j = calloc(1, sizeof(*j));
	if (j == NULL)
		fatal("out of memory");
	if (msg_open(&r, data, len) != MSG_OK ||
	    msg_infer_decode(&r, &j->req) != MSG_OK) {
		b->bad_frames++;
		log_warnx("bad frame from a worker (%s: %s)",
		    msg_error_name(r.error), r.detail);
		msg_close(&r);
		free(j);
		refuse(call, INFER_FAILED, "bad request frame", 0);
		return;
	}
	msg_close(&r);
	j->b = b;
	j->call = call;
	j->arrived_ms = now_ms();
	j->tier = config_tier(&b->conf, j->req.tier);
	if (j->tier == NULL) {
		char why[128];

		snprintf(why, sizeof(why), "unknown tier \"%s\"", j->req.tier);
		refuse(call, INFER_FAILED, why, j->req.id);
		msg_infer_free(&j->req);
		free(j);
		return;
	}
	dup = find_job(&b->queue, j->req.worker, j->req.id);
	if (dup == NULL)
		dup = find_job(&b->running, j->req.worker, j->req.id);
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
	TAILQ_INSERT_TAIL(&b->queue, j, link);
	dispatch(b);
}

/* Ollama names "tinyllama" "tinyllama:latest": the same model. */
static int
same_model(const char *configured, const char *reported)
{
	size_t n = strlen(configured);

	if (strcmp(configured, reported) == 0)
		return 1;
	return strchr(configured, ':') == NULL &&
	    strncmp(configured, reported, n) == 0 &&
	    strcmp(reported + n, ":latest") == 0;
}

/* A model as the config names it, when the config has it. */
static const char *
configured_name(const struct broker *b, const char *reported)
{
	for (size_t i = 0; i < b->conf.nmodels; i++)
		if (same_model(b->conf.models[i].name, reported))
			return b->conf.models[i].name;
	for (size_t i = 0; i < b->conf.ntiers; i++)
		if (same_model(b->conf.tiers[i].model, reported))
			return b->conf.tiers[i].model;
	return reported;
}

static void
ps_done(void *arg, const struct ollama_ps *ps)
{
	struct broker *b = arg;

	b->asking_ps = 0;
	if (ps != NULL)
		b->resident = *ps;
}

static void
report_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct broker *b = t->data;
	struct msg_report r = {0};
	struct job *j;

	(void)loop;
	(void)revents;
	if (!b->hub->ready)
		return;
	r.busy = b->inflight;
	TAILQ_FOREACH(j, &b->queue, link)
		r.queued++;
	r.served = (int64_t)b->served;
	r.failed = (int64_t)b->failed;
	r.bad_frames = (int64_t)(b->bad_frames + ipc_refused());
	for (int i = 0; i < b->resident.count && i < MSG_RESIDENT_MAX; i++)
		snprintf(r.resident[r.nresident++], sizeof(r.resident[0]), "%s",
		    configured_name(b, b->resident.models[i].name));
	hub_report(b->hub, &r);
	/* What is loaded, for the next report: the backend knows best. */
	if (!b->asking_ps && ollama_ps(b->backend, ps_done, b) == 0)
		b->asking_ps = 1;
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
	TAILQ_INIT(&b->queue);
	TAILQ_INIT(&b->running);
	/* The supervisor's setup is the broker's config from now on. */
	b->conf = setup->conf;
	memset(&setup->conf, 0, sizeof(setup->conf));
	t.connect_ms = b->conf.connect_timeout_ms;
	t.first_byte_ms = b->conf.first_byte_timeout_ms;
	t.stall_ms = b->conf.stall_timeout_ms;
	b->backend = ollama_new(loop, b->conf.backend_url, &t);
	snprintf(url, sizeof(url), "ipc://%s/broker.sock", runtime);
	/* One context per request in flight from all workers together. */
	b->server = ipc_listen(loop, url, 256, on_request, b);
	if (b->server == NULL)
		fatalx("cannot serve %s", url);
	hub_ready(hub);
	ev_timer_init(&b->report, report_cb, 0.05, 1.0);
	b->report.data = b;
	ev_timer_start(loop, &b->report);
	log_info("serving %s: %ld slots on %s", url, b->conf.parallel,
	    b->conf.backend_url);
	ev_run(loop, 0);
	log_info("stopping: served %llu, failed %llu, bad frames %llu",
	    (unsigned long long)b->served, (unsigned long long)b->failed,
	    (unsigned long long)b->bad_frames);
	ev_timer_stop(loop, &b->report);
	ipc_server_close(b->server);
	ollama_free(b->backend);
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
