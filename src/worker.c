/*
 * worker.c: a process that hosts agents as coroutines on one libev loop.
 *
 * Each agent is a task (task.c) running a plain loop: wait for its trigger,
 * render its prompt, ask the broker for an inference, write the result. A
 * wait yields the task; the timer or the broker's answer resumes it on the
 * loop. Agent i of the fleet (in file-name order) lives on worker i % W.
 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	const struct manifest *m;
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
	struct agent *agents;
	size_t nagents;
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
	if (a->w->stopping)
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
	for (int attempt = 0; attempt < INFER_RETRIES; attempt++) {
		a->answered = 0;
		memset(&a->done, 0, sizeof(a->done));
		if (ipc_request(a->w->broker, data, len, INFER_TIMEOUT_MS,
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
	msg_writer_free(&w);
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

	(void)loop;
	(void)revents;
	if (!w->hub.said_hello)
		return;
	for (size_t i = 0; i < w->nagents; i++) {
		const struct agent *a = &w->agents[i];

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
		char n[32], now_text[64], *prompt;
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
		prompt = template_render(m->prompt, vars, 5, MSG_MAX_TEXT);
		if (agent_infer(a, prompt) == 0 && a->done.status == INFER_OK) {
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
		free(prompt);
		jitter = 1.0 + (uniform(a->w) * 2 - 1) * m->jitter_pct / 100.0;
		agent_sleep(a, period * jitter);
	}
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
	w->agents = calloc(w->fleet.count + 1, sizeof(*w->agents));
	if (w->agents == NULL)
		fatal("out of memory");
	for (size_t i = 0; i < w->fleet.count; i++) {
		struct agent *a;

		if ((long)(i % (size_t)w->nworkers) != index)
			continue;
		a = &w->agents[w->nagents];
		a->m = &w->fleet.agents[i];
		a->w = w;
		ev_init(&a->timer, resume_cb);
		a->timer.data = a;
		a->task = task_create(w->conf.stack_size, agent_main, a);
		if (a->task == NULL) {
			log_warn("%s: cannot create its task", a->m->name);
			continue;
		}
		w->nagents++;
		mine++;
	}
	/* Each task runs to its first wait; then the loop drives them. */
	for (size_t i = 0; i < w->nagents; i++)
		task_resume(w->agents[i].task);
	if (hub_hello(&w->hub, loop, runtime, ROLE_WORKER, index) != 0)
		fatalx("cannot reach the supervisor in %s", runtime);
	ev_timer_init(&w->report, report_cb, 0.05, 1.0);
	w->report.data = w;
	ev_timer_start(loop, &w->report);
	log_info("running %zu agents", mine);
	ev_run(loop, 0);
	w->stopping = 1;
	ev_timer_stop(loop, &w->report);
	ipc_client_close(w->broker);
	for (size_t i = 0; i < w->nagents; i++) {
		ev_timer_stop(loop, &w->agents[i].timer);
		task_destroy(w->agents[i].task);
	}
	free(w->agents);
	ipc_client_close(w->hub.client);
	fleet_free(&w->fleet);
	config_free(&w->conf);
	return 0;
}
