/*
 * workload.c: ollamax-workload, the reference workload of scripts/bench,
 * played against one arm:
 *
 *   direct   one client per agent, straight to the backend (as agents
 *            that each call Ollama do)
 *   ollamax  the same agents run by a supervisor: each arrival is an
 *            `ollamaxctl run -w` on the control socket
 *
 * or replays either arm in simulated time (--replay direct|ollamax, see
 * replay.c): the same figures, without the jitter of a live run, in a
 * few hundredths of a second instead of twenty minutes. --replay plan
 * plays a broker that knows every arrival and follows a residency plan:
 * the one given (--plan), or the one of at most --max-loads loads that
 * ends soonest, searched: what as few loads allow at best.
 *
 * The fleet is the shipped one (names, tiers, priorities); each agent's
 * arrivals are a Poisson process drawn once from the seed, at the rate for
 * which the work drawn is `factor` times the box's capacity by the
 * emulator's catalog (its expectation alone would leave that to luck). An
 * agent works as an agent does: its next request goes once its last one is
 * answered (and not before its arrival). Times are the emulator's: the
 * clock runs `speed` times faster than the wall's.
 *
 * Prints one JSON object: throughput, makespan, loads, slot utilization
 * while requests waited (also after the first 5 minutes), latency and wait
 * percentiles per tier, the lower bound of the makespan, and every latency (for
 * the plots).
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <ev.h>
#include <jansson.h>

#include "cliarg.h"
#include "config.h"
#include "emu/emu.h"
#include "ipc.h"
#include "log.h"
#include "msg.h"
#include "rank.h"
#include "role.h"
#include "workload.h"

/* The reference workload, fixed so that results compare over time. */
struct tier_load tiers[TIERS] = {
    {"reasoning", "deepseek-r1:8b", 600, 400, 0},
    {"coding", "qwen2.5-coder:7b", 400, 250, 0},
    {"light", "tinyllama", 150, 60, 0},
};

static uint64_t rng = 88172645463325252ULL;

int
agent_free(const struct run *w, int id)
{
	int prev = -1;

	for (int k = w->agents[w->r[id].agent].first; k != id && k >= 0;
	     k = w->r[k].next)
		prev = k;
	return prev < 0 || w->r[prev].done >= 0;
}

/*
 * The generator's state for a seed. Xorshift never leaves 0, and from 1
 * its first draws are near 0 (seed 0 drew a first gap of 23.6 means):
 * the two seeds that give those mix theirs instead; every other seed
 * keeps the state, and the arrivals, it always had.
 */
static uint64_t
seed_state(uint64_t seed)
{
	uint64_t x = seed * 2654435761ULL + 1;

	if (x > 1)
		return x;
	x = seed + 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static double
uniform(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}

static double
wall(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double
sim_now(const struct run *w)
{
	return (wall() - w->t0) * w->speed;
}

/* A prompt the emulator counts as `tokens`, with the template's 8. */
static char *
make_prompt(int tokens, int serial)
{
	size_t cap = (size_t)tokens * 8 + 64, len = 0;
	char *p = malloc(cap);
	int words = tokens - 8;

	if (p == NULL)
		fatal("out of memory");
	len += (size_t)snprintf(p, cap, "w%d", serial);
	for (int i = 1; i < words; i++)
		len += (size_t)snprintf(p + len, cap - len, " w%d", i % 97);
	while (text_token_count(p, len) > tokens - 8 && len > 0)
		p[--len] = '\0';
	return p;
}

/* Expected solo seconds of one request of t by the catalog: prompt, then
 * min(num_predict, an answer uniform on [typical/2, 3 typical/2]). */
static double
expected_work(const struct emu_model *m, const struct tier_load *t)
{
	int typical =
	    m->typical_output_tokens > 0 ? m->typical_output_tokens : 200;
	int lo = typical / 2, hi = lo + typical;
	double sum = 0;

	for (int k = lo; k <= hi; k++)
		sum += k < t->output_tokens ? k : t->output_tokens;
	return t->prompt_tokens / m->prompt_tokens_per_s +
	    sum / (hi - lo + 1) / m->gen_tokens_per_s;
}

static void
add_request(struct run *w, int agent, double at)
{
	struct request *q;

	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 512;
		w->r = realloc(w->r, (size_t)w->cap * sizeof(*w->r));
		if (w->r == NULL)
			fatal("out of memory");
	}
	q = &w->r[w->n];
	memset(q, 0, sizeof(*q));
	q->agent = agent;
	q->tier = w->agents[agent].tier;
	q->served = q->tier;
	q->arrive = at;
	q->done = -1;
	q->next = -1;
	q->prompt = make_prompt(tiers[q->tier].prompt_tokens, w->n);
	w->n++;
}

/*
 * Each agent's arrivals: a Poisson process, one rate for all. A draw of
 * so few arrivals an agent offers what it happens to (seed 7 at the
 * nominal rate: 0.83 of its expectation), so the rate is set for the draw
 * itself: the lowest at which the work drawn within the window reaches
 * `work_s`. The gaps are drawn once, as unit exponentials, and the rate
 * only scales them: one seed, one sequence.
 */
static void
draw_arrivals(struct run *w, double nominal, double work_s, double window)
{
	double **gaps = calloc((size_t)w->nagents, sizeof(*gaps));
	int *ngaps = calloc((size_t)w->nagents, sizeof(int));
	double lo = nominal / 4, hi = nominal * 4, rate;

	if (gaps == NULL || ngaps == NULL)
		fatal("out of memory");
	for (int a = 0; a < w->nagents; a++) {
		double t = 0;
		int cap = 16;

		gaps[a] = malloc((size_t)cap * sizeof(double));
		/* Enough for the highest rate tried. */
		while (gaps[a] != NULL && t < window * hi) {
			if (ngaps[a] == cap) {
				cap *= 2;
				gaps[a] = realloc(
				    gaps[a], (size_t)cap * sizeof(double));
				if (gaps[a] == NULL)
					break;
			}
			gaps[a][ngaps[a]] = -log(uniform());
			t += gaps[a][ngaps[a]++];
		}
		if (gaps[a] == NULL)
			fatal("out of memory");
	}
	for (int i = 0; i < 60; i++) {
		double mid = (lo + hi) / 2, work = 0;

		for (int a = 0; a < w->nagents; a++) {
			double t = 0;

			for (int g = 0; g < ngaps[a]; g++) {
				t += gaps[a][g] / mid;
				if (t >= window)
					break;
				work += tiers[w->agents[a].tier].work_s;
			}
		}
		if (work >= work_s)
			hi = mid;
		else
			lo = mid;
	}
	rate = hi;
	for (int a = 0; a < w->nagents; a++) {
		double t = 0;
		int prev = -1;

		w->agents[a].first = -1;
		for (int g = 0; g < ngaps[a]; g++) {
			t += gaps[a][g] / rate;
			if (t >= window)
				break;
			add_request(w, a, t);
			if (prev < 0)
				w->agents[a].first = w->n - 1;
			else
				w->r[prev].next = w->n - 1;
			prev = w->n - 1;
		}
		free(gaps[a]);
	}
	free(gaps);
	free(ngaps);
	w->rate_per_agent = rate;
}

static int
by_arrival(const void *a, const void *b, void *arg)
{
	const struct request *r = arg;
	double x = r[*(const int *)a].arrive, y = r[*(const int *)b].arrive;

	return (x > y) - (x < y);
}

/* ------------------------------------------------------------------ */
/* direct: libcurl multi, one easy handle per request in flight        */
/* ------------------------------------------------------------------ */

struct direct_call {
	int id;
	char *body;
	char *reply;
	size_t len;
	struct curl_slist *headers;
};

static size_t
gather(char *p, size_t size, size_t n, void *arg)
{
	struct direct_call *c = arg;
	char *more = realloc(c->reply, c->len + size * n + 1);

	if (more == NULL)
		return 0;
	c->reply = more;
	memcpy(c->reply + c->len, p, size * n);
	c->len += size * n;
	c->reply[c->len] = '\0';
	return size * n;
}

/* How long the emulator has to answer for its stats (wall ms). */
#define STATS_MS 10000
/* The wall's time a request is given in either arm before it counts as
 * not answered: a backend that takes a request and never answers must not
 * hold the run for ever. */
#define REQUEST_MS (3600 * 1000)

/* What the emulator at emu_url says of itself (/emu/stats), or NULL if
 * nothing answers as one does. */
static json_t *
emu_stats(const char *emu_url)
{
	char url[512];
	CURL *e = curl_easy_init();
	struct direct_call c = {0};
	long status = 0;
	json_t *stats = NULL;

	if (e == NULL)
		fatal("out of memory");
	snprintf(url, sizeof(url), "%s/emu/stats", emu_url);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, gather);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &c);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)STATS_MS);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(e);
	if (status == 200 && c.reply != NULL)
		stats = json_loads(c.reply, 0, NULL);
	free(c.reply);
	if (!json_is_integer(json_object_get(
	        json_object_get(stats, "scheduler"), "loads"))) {
		json_decref(stats);
		return NULL;
	}
	return stats;
}

/*
 * Before the clock starts: the figures take the emulator's loads, its
 * durations as the slots' busy time, and their own times on the wall's
 * clock times --speed. Another emulator's speed or slots would make them
 * all wrong with nothing to show it (a makespan under its lower bound),
 * and a URL where none answers a run of failures. With loads, its counts
 * so far, which the run's do not include.
 */
static void
emulator_answers(const char *opt, const char *emu_url, double speed,
    int64_t *loads, int64_t *evictions)
{
	json_t *stats = emu_stats(emu_url), *sched;
	double at;
	size_t slots;

	if (stats == NULL)
		fatalx(
		    "%s: no emulator answers on %s (/emu/stats)", opt, emu_url);
	at = json_number_value(json_object_get(stats, "speed"));
	slots = json_array_size(json_object_get(stats, "slot_busy_s"));
	sched = json_object_get(stats, "scheduler");
	if (loads != NULL) {
		*loads = json_integer_value(json_object_get(sched, "loads"));
		*evictions =
		    json_integer_value(json_object_get(sched, "evictions"));
	}
	json_decref(stats);
	if (at < 0)
		fatalx("%s: the emulator on %s runs at speed inf, not the "
		       "--speed %.10g of the workload",
		    opt, emu_url, speed);
	if (!(fabs(at - speed) <= speed * 1e-9))
		fatalx("%s: the emulator on %s runs at speed %.10g, not the "
		       "--speed %.10g of the workload",
		    opt, emu_url, at, speed);
	if (slots != SLOTS)
		fatalx("%s: the emulator on %s serves %zu requests in "
		       "parallel, not the workload's %d",
		    opt, emu_url, slots, SLOTS);
}

static void
direct_send(CURLM *multi, const char *url, struct run *w, int id,
    const struct config *conf)
{
	struct request *q = &w->r[id];
	const struct model_conf *mc = config_model(conf, tiers[q->tier].model);
	struct direct_call *c = calloc(1, sizeof(*c));
	CURL *e = curl_easy_init();
	json_t *body;

	if (c == NULL || e == NULL)
		fatal("out of memory");
	c->id = id;
	body = json_pack("{s:s,s:s,s:b,s:{s:i}}", "model", tiers[q->tier].model,
	    "prompt", q->prompt, "stream", 0, "options", "num_predict",
	    tiers[q->tier].output_tokens);
	/* As the broker does: without one configured, the backend's own. */
	if (mc != NULL && mc->num_ctx > 0)
		json_object_set_new(json_object_get(body, "options"), "num_ctx",
		    json_integer(mc->num_ctx));
	c->body = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	c->headers = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, gather);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_PRIVATE, c);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)REQUEST_MS);
	q->submit = sim_now(w);
	curl_multi_add_handle(multi, e);
}

static void
run_direct(struct run *w, const char *base, const struct config *conf)
{
	CURLM *multi = curl_multi_init();
	char url[512];
	int sent = 0, running = 0;

	snprintf(url, sizeof(url), "%s/api/generate", base);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 512L);
	/* Its counts go on from run to run: the run's are those after. */
	emulator_answers(
	    "--direct", base, w->speed, &w->emu_loads, &w->emu_evictions);
	w->t0 = wall();
	while (w->done < w->n) {
		CURLMsg *m;
		int left;
		double now = sim_now(w);

		/* Each agent's first request goes at its arrival; the next
		 * ones when the previous is answered and they have arrived. */
		while (sent < w->n && w->r[w->order[sent]].arrive <= now) {
			int id = w->order[sent++];

			if (agent_free(w, id))
				direct_send(multi, url, w, id, conf);
			else
				w->r[id].submit = -1; /* sent when prev ends */
		}
		curl_multi_perform(multi, &running);
		while ((m = curl_multi_info_read(multi, &left)) != NULL) {
			struct direct_call *c;
			struct request *q;
			json_t *j;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(
			    m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
			q = &w->r[c->id];
			q->done = sim_now(w);
			j = c->reply ? json_loads(c->reply, 0, NULL) : NULL;
			q->ok = m->data.result == CURLE_OK &&
			    json_object_get(j, "done") != NULL;
			q->prompt_tokens = (int)json_integer_value(
			    json_object_get(j, "prompt_eval_count"));
			q->eval_tokens = (int)json_integer_value(
			    json_object_get(j, "eval_count"));
			/* As numbers: two of a backend's, summed as integers,
			 * may overflow. */
			q->service =
			    ((double)json_integer_value(
			         json_object_get(j, "prompt_eval_duration")) +
			        (double)json_integer_value(
			            json_object_get(j, "eval_duration"))) /
			    1e9;
			json_decref(j);
			w->done++;
			curl_multi_remove_handle(multi, m->easy_handle);
			curl_easy_cleanup(m->easy_handle);
			curl_slist_free_all(c->headers);
			free(c->body);
			free(c->reply);
			free(c);
			/* The agent's next request, if it has arrived. */
			if (q->next >= 0 && w->r[q->next].submit < 0)
				direct_send(multi, url, w, q->next, conf);
		}
		curl_multi_poll(multi, NULL, 0, 2, NULL);
	}
	curl_multi_cleanup(multi);
}

/* ------------------------------------------------------------------ */
/* ollamax: run -w on the control socket, many in flight               */
/* ------------------------------------------------------------------ */

struct ollamax_call {
	struct run *w;
	int id;
};

static void ollamax_send(struct run *w, int id);

/* The tier whose model is named, or dflt: the model that answered. */
static int
tier_of_model(const char *model, int dflt)
{
	for (int t = 0; model != NULL && t < TIERS; t++)
		if (strcmp(tiers[t].model, model) == 0)
			return t;
	return dflt;
}

static void
ollamax_done(void *arg, int err, const void *data, size_t len)
{
	struct ollamax_call *c = arg;
	struct run *w = c->w;
	struct request *q = &w->r[c->id];
	struct msg_reader r;
	struct msg_ctl_reply rep;

	q->done = sim_now(w);
	if (err == 0 && msg_open(&r, data, len) == MSG_OK &&
	    msg_ctl_reply_decode(&r, &rep) == MSG_OK) {
		json_t *j = rep.body ? json_loads(rep.body, 0, NULL) : NULL;
		double total =
		    (double)json_integer_value(json_object_get(j, "total_ms"));
		double queued =
		    (double)json_integer_value(json_object_get(j, "queued_ms"));

		q->ok = rep.ok && j != NULL;
		q->served = tier_of_model(
		    json_string_value(json_object_get(j, "model")), q->tier);
		q->prompt_tokens = (int)json_integer_value(
		    json_object_get(j, "prompt_tokens"));
		q->eval_tokens =
		    (int)json_integer_value(json_object_get(j, "eval_tokens"));
		/* From dispatch to answer, by the broker's clock. */
		q->service = (total - queued) / 1000.0 * w->speed;
		json_decref(j);
		msg_ctl_reply_free(&rep);
	}
	if (err == 0)
		msg_close(&r);
	free(c);
	w->done++;
	if (q->next >= 0 && w->r[q->next].submit < 0)
		ollamax_send(w, q->next);
	if (w->done == w->n)
		ev_break(w->loop, EVBREAK_ALL);
}

static void
ollamax_send(struct run *w, int id)
{
	struct request *q = &w->r[id];
	struct msg_ctl req = {.wait = 1,
	    .json = 1,
	    .arg = w->agents[q->agent].name,
	    .input = q->prompt};
	struct ollamax_call *c = calloc(1, sizeof(*c));
	struct msg_writer mw;
	const char *data;
	size_t len;

	if (c == NULL)
		fatal("out of memory");
	c->w = w;
	c->id = id;
	snprintf(req.verb, sizeof(req.verb), "run");
	msg_ctl_encode(&mw, &req);
	data = msg_data(&mw, &len);
	q->submit = sim_now(w);
	if (ipc_request(w->ctl, data, len, REQUEST_MS, ollamax_done, c) != 0)
		fatalx("cannot send to the supervisor");
	msg_writer_free(&mw);
}

static void
tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct run *w = t->data;
	double now = sim_now(w);

	(void)loop;
	(void)revents;
	while (
	    w->next_due < w->n && w->r[w->order[w->next_due]].arrive <= now) {
		int id = w->order[w->next_due++];

		if (agent_free(w, id))
			ollamax_send(w, id);
		else
			w->r[id].submit = -1; /* sent when prev ends */
	}
}

/* How long the supervisor has to answer the status asked before the run
 * (wall ms). */
#define PROBE_MS 10000

/*
 * Asks the supervisor for its status, as ollamaxctl does: with none
 * listening, each run asked for would wait out its hour, the dial tried
 * again and again.
 */
static void
supervisor_answers(const char *runtime, const char *url)
{
	char ctl_path[4200];
	struct msg_ctl_reply reply;
	int rc;

	snprintf(ctl_path, sizeof(ctl_path), "%s/ctl.sock", runtime);
	rc = ctl_call(
	    ctl_path, "status", NULL, NULL, CTL_JSON, PROBE_MS, &reply);
	if (rc == CTL_NOT_SUPERVISOR)
		fatalx("--ollamax: what answered on %s is not a supervisor%s%s",
		    url, reply.error[0] ? ": " : "", reply.error);
	if (rc == CTL_UNREACHABLE)
		fatalx("--ollamax: no supervisor answers on %s", url);
	if (rc == CTL_OTHER_USER)
		fatalx("--ollamax: %s", reply.error);
	if (rc != 0)
		fatalx("--ollamax: no supervisor answered on %s within %d s",
		    url, PROBE_MS / 1000);
	msg_ctl_reply_free(&reply);
}

static void
run_ollamax(struct run *w, const char *runtime, const char *emu)
{
	char url[4200];

	w->loop = EV_DEFAULT;
	snprintf(url, sizeof(url), "ipc://%s/ctl.sock", runtime);
	w->ctl = ipc_dial(w->loop, url);
	if (w->ctl == NULL)
		fatalx("cannot dial %s", url);
	supervisor_answers(runtime, url);
	/* All its counts: the supervisor's preloads, made before the clock,
	 * are the arm's (a replay counts them too), and its emulator is its
	 * own, as scripts/bench starts one for each arm. */
	emulator_answers("--emu", emu, w->speed, NULL, NULL);
	w->t0 = wall();
	ev_timer_init(&w->tick, tick_cb, 0, 0.002);
	w->tick.data = w;
	ev_timer_start(w->loop, &w->tick);
	ev_run(w->loop, 0);
	ev_timer_stop(w->loop, &w->tick);
	ipc_client_close(w->ctl);
}

/* ------------------------------------------------------------------ */
/* Figures                                                            */
/* ------------------------------------------------------------------ */

/* Null when there are none: a tier nothing answered has no latency, not
 * a latency of 0. */
static json_t *
percentile(const double *v, int n, double p)
{
	return n == 0 ? json_null() : json_real(rank_nearest(v, (size_t)n, p));
}

/*
 * The figures of a run. bound_ms: each priority's max_wait on the
 * emulator's clock, to count the waits over it (both arms alike).
 */
static json_t *
figures(struct run *w, const struct emu_catalog *cat, const char *emu_url,
    const double bound_ms[3])
{
	json_t *out = json_object(), *by_tier = json_object(),
	       *latencies = json_object();
	double makespan = run_makespan(w), work = 0, lower;
	int used[TIERS] = {0}, ok = 0;

	for (int t = 0; t < TIERS; t++) {
		double *lat = calloc((size_t)w->n + 1, sizeof(double));
		double *wt = calloc((size_t)w->n + 1, sizeof(double));
		double longest = 0;
		int n = 0, over = 0, asked = 0;
		json_t *all = json_array();

		if (lat == NULL || wt == NULL || all == NULL)
			fatal("out of memory");

		for (int i = 0; i < w->n; i++) {
			const struct request *q = &w->r[i];

			asked += q->tier == t;
			if (q->tier != t || !q->ok)
				continue;
			/* From its arrival: waits behind the agent's own
			 * earlier request count, in both arms alike. */
			lat[n] = (q->done - q->arrive) * 1000;
			/* Within the latency, whatever service was read. */
			wt[n] =
			    fmin(lat[n], fmax(0, lat[n] - q->service * 1000));
			longest = fmax(longest, wt[n]);
			if (wt[n] > bound_ms[w->agents[q->agent].priority])
				over++;
			json_array_append_new(all, json_real(lat[n]));
			n++;
		}
		rank_sort(lat, (size_t)n);
		rank_sort(wt, (size_t)n);
		json_object_set_new(by_tier, tiers[t].tier,
		    json_pack("{s:i,s:i,s:i,s:o,s:o,s:o,s:o,s:o,s:o}",
		        "requests", asked, "answered", n, "over_bound", over,
		        "p50_ms", percentile(lat, n, 0.50), "p95_ms",
		        percentile(lat, n, 0.95), "p99_ms",
		        percentile(lat, n, 0.99), "wait_p95_ms",
		        percentile(wt, n, 0.95), "wait_p99_ms",
		        percentile(wt, n, 0.99), "max_wait_ms",
		        n > 0 ? json_real(longest) : json_null()));
		json_object_set_new(latencies, tiers[t].tier, all);
		free(lat);
		free(wt);
	}
	for (int i = 0; i < w->n; i++) {
		const struct request *q = &w->r[i];
		/* The work of the model that answered, after a fallback too. */
		const struct emu_model *m =
		    emu_catalog_find(cat, tiers[q->served].model);

		if (!q->ok)
			continue;
		ok++;
		used[q->served] = 1;
		work += q->prompt_tokens / m->prompt_tokens_per_s +
		    q->eval_tokens / m->gen_tokens_per_s;
	}
	/* The work on the slots batched as well as they can be, plus one
	 * load of every model used. */
	lower = work / (1 + EMU_SHARE * (SLOTS - 1));
	for (int t = 0; t < TIERS; t++)
		if (used[t]) {
			const struct emu_model *m =
			    emu_catalog_find(cat, tiers[t].model);

			lower += (double)m->size_bytes / (1024.0 * 1024.0) /
			    m->load_mb_per_s;
		}
	json_object_set_new(out, "requests", json_integer(w->n));
	json_object_set_new(out, "answered", json_integer(ok));
	json_object_set_new(out, "makespan_s", json_real(makespan));
	json_object_set_new(out, "throughput_per_min",
	    json_real(makespan > 0 ? ok / (makespan / 60.0) : 0));
	json_object_set_new(out, "work_s", json_real(work));
	json_object_set_new(out, "lower_bound_s", json_real(lower));
	json_object_set_new(
	    out, "slot_utilization", json_real(slot_utilization(w, -INFINITY)));
	/* Once a broker has seen as much as max_wait_normal, by default,
	 * which is when it can tell an overload. */
	json_object_set_new(out, "slot_utilization_after_5min",
	    json_real(slot_utilization(w, 300)));
	json_object_set_new(out, "tiers", by_tier);
	json_object_set_new(out, "latencies_ms", latencies);
	if (emu_url != NULL) {
		json_t *stats = emu_stats(emu_url), *sched;

		/* Figures without their loads would pass for a run's. */
		if (stats == NULL)
			fatalx("the emulator on %s answers no more for its "
			       "stats: the run's loads are unknown",
			    emu_url);
		sched = json_object_get(stats, "scheduler");
		json_object_set_new(out, "loads",
		    json_integer(
		        json_integer_value(json_object_get(sched, "loads")) -
		        w->emu_loads));
		json_object_set_new(out, "evictions",
		    json_integer(json_integer_value(
		                     json_object_get(sched, "evictions")) -
		        w->emu_evictions));
		json_decref(stats);
	}
	return out;
}

/* A --plan that cannot be played as given: said, with exit status 2 as
 * for any bad argument. */
static void
refuse_plan(const char *why)
{
	fprintf(stderr, "ollamax-workload: --plan: %s\n", why);
	exit(2);
}

/* How many requests of w ask for each tier's model; how many models. */
static int
count_asked(const struct run *w, int asked[TIERS], int unanswered_only)
{
	int models = 0;

	memset(asked, 0, TIERS * sizeof(*asked));
	for (int i = 0; i < w->n; i++)
		if (!unanswered_only || w->r[i].done < 0)
			asked[w->r[i].tier]++;
	for (int t = 0; t < TIERS; t++)
		models += asked[t] > 0;
	return models;
}

/*
 * The plan, played to its end, left requests waiting: for which models,
 * and why (no phase keeps the model, or its last phase does not, and the
 * requests came after the last that did).
 */
static void
refuse_stranding_plan(
    const struct plan *plan, const struct run *w, double stuck_at)
{
	int left[TIERS];
	uint32_t kept = 0;
	size_t len;
	char why[512];

	for (int i = 0; i < plan->nphases; i++)
		kept |= plan->models[i];
	count_asked(w, left, 1);
	len = (size_t)snprintf(why, sizeof(why),
	    "it leaves requests unanswered: %d of %d done at %.1f s", w->done,
	    w->n, stuck_at);
	for (int t = 0, named = 0; t < TIERS && len < sizeof(why); t++)
		if (left[t] > 0)
			len += (size_t)snprintf(why + len, sizeof(why) - len,
			    "%s %d for %s, which %s", named++ ? ";" : ":",
			    left[t], tiers[t].model,
			    kept & (1u << t) ? "its last phase does not keep"
			                     : "no phase keeps");
	refuse_plan(why);
}

/* The number an option takes, more than `above` and at most `max`; or
 * exit 2 saying what it is not. */
static double
number_arg(const char *opt, const char *arg, double above, double max)
{
	char *end;
	double x = strtod(arg, &end);

	if (end == arg || *end != '\0' || !(x > above && x <= max)) {
		fprintf(stderr,
		    "ollamax-workload: --%s: '%s' is not a number over %g and "
		    "at most %g\n",
		    opt, arg, above, max);
		exit(2);
	}
	return x;
}

static const char usage_text[] =
    "usage: ollamax-workload --agents DIR --config FILE --catalog FILE\n"
    "         --factor F --minutes M [--seed N] --speed X\n"
    "         (--direct URL | --ollamax RUNTIME_DIR --emu URL |\n"
    "          --replay direct|ollamax |\n"
    "          --replay plan (--plan PLAN | --max-loads N))\n"
    "PLAN: phases MODEL[+MODEL...]@SECONDS separated by spaces, the first\n"
    "      @0, each later than the one before\n";

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"agents", required_argument, NULL, 'a'},
	    {"config", required_argument, NULL, 'c'},
	    {"catalog", required_argument, NULL, 'C'},
	    {"factor", required_argument, NULL, 'f'},
	    {"minutes", required_argument, NULL, 'm'},
	    {"seed", required_argument, NULL, 's'},
	    {"speed", required_argument, NULL, 'x'},
	    {"direct", required_argument, NULL, 'd'},
	    {"ollamax", required_argument, NULL, 'o'},
	    {"emu", required_argument, NULL, 'e'},
	    {"replay", required_argument, NULL, 'r'},
	    {"max-loads", required_argument, NULL, 'L'},
	    {"plan", required_argument, NULL, 'P'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *agents_dir = NULL, *conf_path = NULL, *catalog = NULL,
	           *direct = NULL, *runtime = NULL, *emu = NULL,
	           *replayed = NULL, *plan_text = NULL;
	struct replay_counts counts = {0};
	struct plan_search found = {0};
	struct plan best = {0};
	int max_loads = -1;
	double factor = 0, minutes = 0, speed = 0, per_agent = 0, bound_ms[3];
	struct emu_catalog cat = {0};
	struct config conf;
	struct fleet fleet;
	struct diag d = {0};
	struct run w = {0};
	char err[256], why[256];
	json_t *out;
	int opt;

	log_init("ollamax-workload", 0);
	while ((opt = cliarg_getopt(
	            argc, argv, ":", longopts, why, sizeof(why))) != -1) {
		switch (opt) {
		case 'a':
			agents_dir = optarg;
			break;
		case 'c':
			conf_path = optarg;
			break;
		case 'C':
			catalog = optarg;
			break;
		case 'f':
			factor = number_arg("factor", optarg, 0, 100);
			break;
		case 'm':
			minutes = number_arg("minutes", optarg, 0, 24 * 60);
			break;
		case 's': {
			char *end;
			unsigned long long seed;

			errno = 0;
			seed = strtoull(optarg, &end, 10);
			if (end == optarg || *end != '\0' ||
			    !isdigit((unsigned char)optarg[0]) ||
			    errno == ERANGE) {
				fprintf(stderr,
				    "ollamax-workload: --seed: '%s' is not a "
				    "whole number from 0 to %llu\n",
				    optarg, ULLONG_MAX);
				return 2;
			}
			rng = seed_state(seed);
			break;
		}
		case 'x':
			speed = number_arg("speed", optarg, 0, EMU_SPEED_MAX);
			/* An emulator's speed: slower, a replay ticks the
			 * broker's 20 ms over and over (5 minutes at 1e-4,
			 * years at 1e-9), and its ms overflow 64 bits. */
			if (speed < EMU_SPEED_MIN) {
				fprintf(stderr,
				    "ollamax-workload: --speed: '%s' is under "
				    "%g, the emulator's slowest\n",
				    optarg, EMU_SPEED_MIN);
				return 2;
			}
			break;
		case 'd':
			direct = optarg;
			break;
		case 'o':
			runtime = optarg;
			break;
		case 'e':
			emu = optarg;
			break;
		case 'r':
			if (strcmp(optarg, "direct") != 0 &&
			    strcmp(optarg, "ollamax") != 0 &&
			    strcmp(optarg, "plan") != 0) {
				fprintf(stderr,
				    "ollamax-workload: --replay: '%s' is not an "
				    "arm (direct, ollamax or plan)\n",
				    optarg);
				return 2;
			}
			replayed = optarg;
			break;
		case 'P':
			plan_text = optarg;
			break;
		case 'L': {
			char *end;
			long n = strtol(optarg, &end, 10);

			if (end == optarg || *end != '\0' || n < 1 ||
			    n > PLAN_SEARCH_LOADS_MAX) {
				fprintf(stderr,
				    "ollamax-workload: --max-loads: '%s' is not "
				    "a number of loads from 1 to %d\n",
				    optarg, PLAN_SEARCH_LOADS_MAX);
				return 2;
			}
			max_loads = (int)n;
			break;
		}
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fprintf(stderr, "ollamax-workload: %s\n%s", why,
			    usage_text);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr,
		    "ollamax-workload: '%s': every argument goes with an "
		    "option\n%s",
		    argv[optind], usage_text);
		return 2;
	}
	{
		const char *missing = !agents_dir ? "--agents DIR"
		    : !conf_path                  ? "--config FILE"
		    : !catalog                    ? "--catalog FILE"
		    : factor <= 0                 ? "--factor F"
		    : minutes <= 0                ? "--minutes M"
		    : speed <= 0                  ? "--speed X"
		                                  : NULL;

		if (missing != NULL) {
			fprintf(stderr, "ollamax-workload: %s is missing\n%s",
			    missing, usage_text);
			return 2;
		}
	}
	if ((direct != NULL) + (runtime != NULL) + (replayed != NULL) != 1) {
		fprintf(stderr,
		    "ollamax-workload: --direct, --ollamax and "
		    "--replay are arms: give one\n");
		return 2;
	}
	/* The emulator behind the supervisor: its counts are the figures'
	 * loads and evictions. Direct counts its own; a replay is its own
	 * emulator. */
	if ((runtime != NULL) != (emu != NULL)) {
		fprintf(stderr, "ollamax-workload: %s\n",
		    runtime != NULL ? "--ollamax needs --emu URL, the emulator "
		                      "behind the supervisor"
		                    : "--emu goes with --ollamax only");
		return 2;
	}
	if (direct != NULL)
		emu = direct;
	if ((max_loads > 0 || plan_text != NULL) &&
	    (replayed == NULL || strcmp(replayed, "plan") != 0)) {
		fprintf(stderr,
		    "ollamax-workload: %s goes with --replay plan "
		    "only\n",
		    plan_text != NULL ? "--plan" : "--max-loads");
		return 2;
	}
	if (replayed != NULL && strcmp(replayed, "plan") == 0 &&
	    (max_loads > 0) + (plan_text != NULL) != 1) {
		fprintf(stderr,
		    "ollamax-workload: --replay plan takes one of --plan PLAN "
		    "(a plan to follow) and --max-loads N (the plans to "
		    "search)\n");
		return 2;
	}
	if (emu_catalog_load(&cat, catalog, err, sizeof(err)) != 0)
		fatalx("%s", err);
	if (config_load(&conf, conf_path, &d) > 0 ||
	    fleet_load(&fleet, agents_dir, NULL, NULL, NULL, &d) > 0)
		fatalx("%s", d.text);
	/* Not "no request drawn ... raise either": no factor would draw one. */
	if (fleet.count == 0)
		fatalx(
		    "no agent in %s: the workload's requests are its agents'",
		    agents_dir);
	if (plan_text != NULL &&
	    plan_parse(plan_text, &conf, &cat, &best, err, sizeof(err)) != 0)
		refuse_plan(err);
	for (int t = 0; t < TIERS; t++) {
		const struct emu_model *m =
		    emu_catalog_find(&cat, tiers[t].model);

		if (m == NULL)
			fatalx("%s is not in %s", tiers[t].model, catalog);
		tiers[t].work_s = expected_work(m, &tiers[t]);
	}
	w.speed = speed;
	w.nagents = (int)fleet.count;
	w.agents = calloc(fleet.count + 1, sizeof(*w.agents));
	if (w.agents == NULL)
		fatal("out of memory");
	for (size_t i = 0; i < fleet.count; i++) {
		struct agent *a = &w.agents[i];

		snprintf(a->name, sizeof(a->name), "%s", fleet.agents[i].name);
		a->priority = fleet.agents[i].priority;
		a->tier = -1;
		for (int t = 0; t < TIERS; t++)
			if (strcmp(fleet.agents[i].tier, tiers[t].tier) == 0)
				a->tier = t;
		if (a->tier < 0)
			fatalx("%s: tier %s is not the workload's",
			    fleet.agents[i].path, fleet.agents[i].tier);
		per_agent += tiers[a->tier].work_s;
	}
	draw_arrivals(&w, factor * (1 + EMU_SHARE * (SLOTS - 1)) / per_agent,
	    factor * (1 + EMU_SHARE * (SLOTS - 1)) * minutes * 60,
	    minutes * 60);
	w.order = calloc((size_t)w.n + 1, sizeof(int));
	if (w.order == NULL)
		fatal("out of memory");
	for (int i = 0; i < w.n; i++)
		w.order[i] = i;
	qsort_r(w.order, (size_t)w.n, sizeof(int), by_arrival, w.r);
	if (w.n == 0)
		fatalx("no request drawn: --factor %g over --minutes %g gives "
		       "none; raise either",
		    factor, minutes);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (plan_text != NULL) {
		if (replay(&w, &conf, &cat, REPLAY_PLAN, &best, &counts) != 0)
			refuse_stranding_plan(&best, &w, counts.stuck_at);
	} else if (max_loads > 0) {
		if (replay_best_plan(&w, &conf, &cat, max_loads, &best, &found,
		        &counts) != 0) {
			int asked[TIERS], models = count_asked(&w, asked, 0);

			if (found.tried == 0 && models > max_loads)
				fatalx("no plan of at most %d load%s: the "
				       "requests ask for %d models, each "
				       "loaded once at least",
				    max_loads, max_loads == 1 ? "" : "s",
				    models);
			if (found.tried == 0)
				fatalx("no plan: some model asked for does "
				       "not fit in %d MB alone",
				    EMU_VRAM_MB);
			fatalx("no plan of at most %d load%s answers every "
			       "request (%d tried)",
			    max_loads, max_loads == 1 ? "" : "s", found.tried);
		}
	} else if (replayed != NULL) {
		if (replay(&w, &conf, &cat,
		        strcmp(replayed, "direct") == 0 ? REPLAY_DIRECT
		                                        : REPLAY_OLLAMAX,
		        NULL, &counts) != 0)
			fatalx("replay stuck at %.1f s: %d of %d requests done",
			    counts.stuck_at, w.done, w.n);
	} else if (direct != NULL)
		run_direct(&w, direct, &conf);
	else
		run_ollamax(&w, runtime, emu);
	for (int i = 0; i < 3; i++)
		bound_ms[i] = (double)conf.max_wait_ms[i] * speed;
	out = figures(&w, &cat, emu, bound_ms);
	if (replayed != NULL) {
		json_object_set_new(out, "loads", json_integer(counts.loads));
		json_object_set_new(
		    out, "evictions", json_integer(counts.evictions));
	}
	if (best.nphases > 0) {
		char text[4096];

		plan_describe(&best, text, sizeof(text));
		json_object_set_new(out, "plan", json_string(text));
	}
	if (found.tried > 0)
		json_object_set_new(out, "plans",
		    json_pack("{s:i,s:i,s:f}", "max_loads", found.max_loads,
		        "tried", found.tried, "highest_utilization",
		        found.highest_utilization));
	json_object_set_new(out, "offered_factor", json_real(factor));
	json_object_set_new(
	    out, "arrivals_per_agent_hour", json_real(w.rate_per_agent * 3600));
	json_object_set_new(out, "speed", json_real(speed));
	json_dumpf(out, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(out);
	for (int i = 0; i < w.n; i++)
		free(w.r[i].prompt);
	free(w.r);
	free(w.order);
	free(w.agents);
	fleet_free(&fleet);
	config_free(&conf);
	emu_catalog_free(&cat);
	diag_free(&d);
	curl_global_cleanup();
	return 0;
}
