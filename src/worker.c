/*
 * worker.c: a process that hosts agents as coroutines on one libev loop.
 *
 * Each agent is a task (task.c) running a plain loop: wait for its trigger,
 * render its prompt, ask the broker for an inference, write the result. A
 * wait yields the task; the timer or the broker's answer resumes it on the
 * loop. The supervisor and the workers place agents by fleet_worker_of().
 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "msg.h"
#include "role.h"
#include "task.h"
#include "template.h"

/* How long an agent waits for one answer: a queue behind cold loads. */
#define INFER_TIMEOUT_MS (30 * 60 * 1000)
#define INFER_RETRIES 5

struct worker;

struct agent {
	TAILQ_ENTRY(agent) link;
	const struct manifest *m;
	struct manifest *owned; /* a spawned agent's manifest, else NULL */
	int killed;             /* gone; a late answer is dropped */
	/* What a run holds while it waits, so that a kill can free it. */
	char *prompt;
	char *frame;
	struct worker *w;
	struct task *task;
	ev_timer timer;
	uint64_t runs;
	uint64_t failures;
	int last_failed;
	/* The answer the task waits for. */
	int answered;
	int err;
	struct msg_infer_done done;
};

struct worker {
	struct ev_loop *loop;
	int index;
	long nworkers;
	struct config conf;
	struct fleet fleet;
	TAILQ_HEAD(, agent) agents;
	TAILQ_HEAD(, agent) killed; /* kept until the process ends */
	struct ipc_server *commands;
	struct ipc_client *broker;
	char state_dir[PATH_MAX];
	uint64_t next_id;
	uint64_t rng;
	int stopping;
	struct hub_link hub;
	ev_timer report;
	uint64_t served, failed;
};

static double
uniform(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return (double)(w->rng >> 11) / 9007199254740992.0;
}

static void
resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct agent *a = t->data;

	(void)loop;
	(void)revents;
	task_resume(a->task);
}

/* Sleeps the agent's task for seconds of real time. */
static void
agent_sleep(struct agent *a, double seconds)
{
	ev_timer_set(&a->timer, seconds, 0);
	ev_timer_start(a->w->loop, &a->timer);
	task_yield();
}

static void
infer_reply(void *arg, int err, const void *data, size_t len)
{
	struct agent *a = arg;
	struct msg_reader r;

	/* Closing the client at shutdown fails what is in flight: no task
	 * is resumed then, they are all about to be destroyed. */
	if (a->w->stopping || a->killed)
		return;
	a->answered = 1;
	a->err = err;
	if (err == 0) {
		if (msg_open(&r, data, len) != MSG_OK ||
		    msg_infer_done_decode(&r, &a->done) != MSG_OK) {
			log_warnx("%s: bad answer from the broker (%s)",
			    a->m->name, r.detail);
			a->err = -1;
		}
		msg_close(&r);
	}
	task_resume(a->task);
}

/*
 * One inference through the broker. A lost broker (it restarts) is
 * retried with the same id, so the broker never runs it twice.
 */
static int
agent_infer(struct agent *a, const char *prompt)
{
	struct msg_infer req = {
	    .id = ((uint64_t)getpid() << 32) | ++a->w->next_id,
	    .worker = a->w->index,
	    .priority = a->m->priority,
	    .system = a->m->system,
	    .prompt = (char *)prompt,
	    .num_predict = (int)a->m->num_predict,
	    .temperature = a->m->temperature,
	};
	struct msg_writer w;
	const char *data;
	size_t len;

	snprintf(req.agent, sizeof(req.agent), "%s", a->m->name);
	snprintf(req.tier, sizeof(req.tier), "%s", a->m->tier);
	msg_infer_encode(&w, &req);
	data = msg_data(&w, &len);
	/* Held by the agent, not the task's frames: a kill frees it. */
	a->frame = malloc(len);
	if (a->frame == NULL)
		fatal("out of memory");
	memcpy(a->frame, data, len);
	msg_writer_free(&w);
	for (int attempt = 0; attempt < INFER_RETRIES; attempt++) {
		a->answered = 0;
		memset(&a->done, 0, sizeof(a->done));
		if (ipc_request(a->w->broker, a->frame, len, INFER_TIMEOUT_MS,
		        infer_reply, a) != 0)
			break;
		task_yield();
		if (a->err == 0)
			break;
		log_warnx("%s: broker unreachable (%s): retry %d", a->m->name,
		    a->err > 0 ? ipc_strerror(a->err) : "bad answer",
		    attempt + 1);
		agent_sleep(a, 0.2 * (attempt + 1));
	}
	free(a->frame);
	a->frame = NULL;
	return a->err == 0 ? 0 : -1;
}

static void
agent_output(struct agent *a, const char *text)
{
	const struct manifest *m = a->m;

	if (m->output == OUTPUT_FILE) {
		char path[PATH_MAX * 2];
		FILE *fp;

		snprintf(path, sizeof(path), "%s/%s", a->w->state_dir,
		    m->output_target);
		fp = fopen(path, "a");
		if (fp == NULL) {
			log_warn("%s: %s", m->name, path);
			return;
		}
		fprintf(fp, "--- %s run %llu\n%s\n", m->name,
		    (unsigned long long)a->runs, text);
		fclose(fp);
	}
	/* OUTPUT_AGENT: routing between agents is the supervisor's. */
}

/* Every second: how many agents live, and how many are failing. */
static void
report_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;
	struct msg_report r = {0};
	struct agent *a;

	(void)loop;
	(void)revents;
	if (!w->hub.said_hello)
		return;

	TAILQ_FOREACH(a, &w->agents, link) {
		r.agents += !task_finished(a->task);
		r.agents_failing += a->last_failed;
		r.served += (int64_t)(a->runs - a->failures);
		r.failed += (int64_t)a->failures;
	}
	hub_report(&w->hub, &r);
}

static void
agent_main(void *arg)
{
	struct agent *a = arg;
	const struct manifest *m = a->m;
	double period = (double)m->every_ms / 1000.0;

	if (m->trigger != TRIGGER_EVERY) {
		/* Inbox and demand agents wait to be called. */
		task_yield();
		return;
	}
	/* Agents start spread over their first period, not all at once. */
	agent_sleep(a, period * uniform(a->w));
	for (;;) {
		char n[32], now_text[64];
		struct template_var vars[5];
		time_t t = time(NULL);
		struct tm tm;
		double jitter;

		a->runs++;
		snprintf(n, sizeof(n), "%llu", (unsigned long long)a->runs);
		gmtime_r(&t, &tm);
		strftime(now_text, sizeof(now_text), "%Y-%m-%dT%H:%M:%SZ", &tm);
		vars[0] = (struct template_var){"name", m->name};
		vars[1] = (struct template_var){"role", m->role};
		vars[2] = (struct template_var){"n", n};
		vars[3] = (struct template_var){"time", now_text};
		vars[4] = (struct template_var){"input", ""};
		a->prompt = template_render(m->prompt, vars, 5, MSG_MAX_TEXT);
		if (agent_infer(a, a->prompt) == 0 &&
		    a->done.status == INFER_OK) {
			log_info(
			    "%s: run %llu: %s answered %lld tokens in %lld ms "
			    "(queued %lld ms, prompt %lld tokens)",
			    m->name, (unsigned long long)a->runs, a->done.model,
			    (long long)a->done.eval_tokens,
			    (long long)a->done.total_ms,
			    (long long)a->done.queued_ms,
			    (long long)a->done.prompt_tokens);
			agent_output(a, a->done.text ? a->done.text : "");
			a->last_failed = 0;
		} else {
			a->failures++;
			a->last_failed = 1;
			log_warnx("%s: run %llu failed: %s", m->name,
			    (unsigned long long)a->runs,
			    a->done.error[0] ? a->done.error : "no answer");
		}
		msg_infer_done_free(&a->done);
		free(a->prompt);
		a->prompt = NULL;
		jitter = 1.0 + (uniform(a->w) * 2 - 1) * m->jitter_pct / 100.0;
		agent_sleep(a, period * jitter);
	}
}

/* Creates the agent's task and runs it to its first wait. */
static struct agent *
agent_start(struct worker *w, const struct manifest *m, struct manifest *owned)
{
	struct agent *a = calloc(1, sizeof(*a));

	if (a == NULL)
		fatal("out of memory");
	a->m = m;
	a->owned = owned;
	a->w = w;
	ev_init(&a->timer, resume_cb);
	a->timer.data = a;
	a->task = task_create(w->conf.stack_size, agent_main, a);
	if (a->task == NULL) {
		log_warn("%s: cannot create its task", m->name);
		free(a);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&w->agents, a, link);
	task_resume(a->task);
	return a;
}

static struct agent *
agent_find(struct worker *w, const char *name)
{
	struct agent *a;

	TAILQ_FOREACH(a, &w->agents, link)
		if (strcmp(a->m->name, name) == 0)
			return a;
	return NULL;
}

/* Stops the agent for good: its task goes, a pending answer is dropped. */
static void
agent_kill(struct worker *w, struct agent *a)
{
	ev_timer_stop(w->loop, &a->timer);
	a->killed = 1;
	task_destroy(a->task);
	a->task = NULL;
	/* What the run held: its frames are gone with the task's stack. */
	free(a->prompt);
	free(a->frame);
	a->prompt = a->frame = NULL;
	msg_infer_done_free(&a->done);
	TAILQ_REMOVE(&w->agents, a, link);
	TAILQ_INSERT_TAIL(&w->killed, a, link);
}

/*
 * The supervisor's commands on worker-N.sock: spawn PATH, kill NAME,
 * restart NAME. Each is answered ok or with the reason it failed.
 */
static void
on_command(void *arg, struct ipc_call *call, const void *data, size_t len)
{
	struct worker *w = arg;
	struct msg_ctl_reply reply = {.ok = 1};
	struct msg_reader r;
	struct msg_ctl cmd;
	struct msg_writer mw;
	const char *out;
	size_t outlen;

	if (msg_open(&r, data, len) != MSG_OK ||
	    msg_ctl_decode(&r, &cmd) != MSG_OK || cmd.arg == NULL) {
		reply.ok = 0;
		snprintf(reply.error, sizeof(reply.error), "bad command frame");
		memset(&cmd, 0, sizeof(cmd));
	} else if (strcmp(cmd.verb, "spawn") == 0 ||
	    strcmp(cmd.verb, "respawn") == 0) {
		struct manifest *m = calloc(1, sizeof(*m));
		struct diag d = {0};

		if (m == NULL)
			fatal("out of memory");
		if (manifest_load(m, cmd.arg, &d) > 0 ||
		    config_tier(&w->conf, m->tier) == NULL) {
			reply.ok = 0;
			snprintf(reply.error, sizeof(reply.error), "%s",
			    d.text ? d.text : "unknown tier");
			manifest_free(m);
			free(m);
		} else {
			struct agent *old = agent_find(w, m->name);

			/* respawn replaces the running agent with the new text.
			 */
			if (old != NULL && strcmp(cmd.verb, "respawn") == 0) {
				agent_kill(w, old);
				old = NULL;
			}
			if (old != NULL) {
				reply.ok = 0;
				snprintf(reply.error, sizeof(reply.error),
				    "agent %s is already running", m->name);
				manifest_free(m);
				free(m);
			} else if (agent_start(w, m, m) == NULL) {
				reply.ok = 0;
				snprintf(reply.error, sizeof(reply.error),
				    "cannot create the agent's task");
			}
		}
		diag_free(&d);
	} else if (strcmp(cmd.verb, "kill") == 0 ||
	    strcmp(cmd.verb, "restart") == 0) {
		struct agent *a = agent_find(w, cmd.arg);

		if (a == NULL) {
			reply.ok = 0;
			snprintf(reply.error, sizeof(reply.error),
			    "no agent %s here", cmd.arg);
		} else {
			const struct manifest *m = a->m;
			struct manifest *owned = a->owned;

			agent_kill(w, a);
			/* On restart the manifest moves to the new agent. */
			if (strcmp(cmd.verb, "restart") == 0) {
				a->owned = NULL;
				agent_start(w, m, owned);
			}
			log_info("%s: %s", m->name,
			    cmd.verb[0] == 'k' ? "killed" : "restarted");
		}
	} else {
		reply.ok = 0;
		snprintf(reply.error, sizeof(reply.error),
		    "unknown command \"%s\"", cmd.verb);
	}
	msg_close(&r);
	msg_ctl_free(&cmd);
	msg_ctl_reply_encode(&mw, &reply);
	out = msg_data(&mw, &outlen);
	ipc_reply(call, out, outlen);
	msg_writer_free(&mw);
}

int
worker_main(
    struct ev_loop *loop, const char *runtime, const char *conf, int index)
{
	static struct worker worker;
	struct worker *w = &worker;
	struct diag d = {0};
	char agents_dir[PATH_MAX], url[PATH_MAX + 32];
	size_t mine = 0;

	w->loop = loop;
	w->index = index;
	w->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)getpid() << 20) ^
	    (uint64_t)index;
	if (config_load(&w->conf, conf, &d) > 0)
		fatalx("%s", d.text);
	config_resolve(
	    w->conf.dir, w->conf.agents_dir, agents_dir, sizeof(agents_dir));
	/* The supervisor reported the bad manifests already. */
	fleet_load(&w->fleet, agents_dir, &w->conf, &d);
	diag_free(&d);
	config_resolve(
	    w->conf.dir, w->conf.state_dir, w->state_dir, sizeof(w->state_dir));
	if (mkdir(w->state_dir, 0700) != 0 && errno != EEXIST)
		log_warn("cannot create %s", w->state_dir);
	w->nworkers = config_worker_count(&w->conf);
	snprintf(url, sizeof(url), "ipc://%s/broker.sock", runtime);
	w->broker = ipc_dial(loop, url);
	if (w->broker == NULL)
		fatalx("cannot dial %s", url);
	TAILQ_INIT(&w->agents);
	TAILQ_INIT(&w->killed);
	for (size_t i = 0; i < w->fleet.count; i++)
		if (fleet_worker_of(i, w->nworkers) == index &&
		    agent_start(w, &w->fleet.agents[i], NULL) != NULL)
			mine++;
	snprintf(url, sizeof(url), "ipc://%s/worker-%d.sock", runtime, index);
	w->commands = ipc_listen(loop, url, 4, on_command, w);
	if (w->commands == NULL)
		fatalx("cannot serve %s", url);
	if (hub_hello(&w->hub, loop, runtime, ROLE_WORKER, index) != 0)
		fatalx("cannot reach the supervisor in %s", runtime);
	ev_timer_init(&w->report, report_cb, 0.05, 1.0);
	w->report.data = w;
	ev_timer_start(loop, &w->report);
	log_info("running %zu agents", mine);
	ev_run(loop, 0);
	w->stopping = 1;
	ev_timer_stop(loop, &w->report);
	ipc_server_close(w->commands);
	ipc_client_close(w->broker);
	{
		struct agent *a;

		while ((a = TAILQ_FIRST(&w->agents)) != NULL)
			agent_kill(w, a);
		while ((a = TAILQ_FIRST(&w->killed)) != NULL) {
			TAILQ_REMOVE(&w->killed, a, link);
			if (a->owned != NULL) {
				manifest_free(a->owned);
				free(a->owned);
			}
			free(a);
		}
	}
	ipc_client_close(w->hub.client);
	fleet_free(&w->fleet);
	config_free(&w->conf);
	return 0;
}
