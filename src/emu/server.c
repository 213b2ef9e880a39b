/*
 * server.c: ollamax-emu's process: the HTTP server (libmicrohttpd driven by
 * a libev loop through its epoll descriptor), the simulated clock, and the
 * glue between HTTP requests and the scheduler in sched.c.
 *
 * One thread does everything. A request that must wait (for a load, a slot
 * or its next token) suspends its connection; the event that ends the wait
 * resumes it. Simulated time runs `speed` times faster than real time; with
 * --speed inf work takes no real time and the clock runs at real speed, so
 * that keep-alive still means something.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <microhttpd.h>

#include "cliarg.h"
#include "emu.h"
#include "log.h"
#include "modelname.h"
#include "utf8.h"

#define EMU_VERSION "0.33.0"
#define MB (1024ULL * 1024ULL)

enum route {
	R_ROOT,
	R_VERSION,
	R_TAGS,
	R_PS,
	R_SHOW,
	R_GENERATE,
	R_CHAT,
	R_EMBED,
	R_EMBEDDINGS,
	R_DELETE,
	R_STATS,
	R_OTHER,
	R_COUNT,
};

static const char *const route_names[R_COUNT] = {
    [R_ROOT] = "/",
    [R_VERSION] = "/api/version",
    [R_TAGS] = "/api/tags",
    [R_PS] = "/api/ps",
    [R_SHOW] = "/api/show",
    [R_GENERATE] = "/api/generate",
    [R_CHAT] = "/api/chat",
    [R_EMBED] = "/api/embed",
    [R_EMBEDDINGS] = "/api/embeddings",
    [R_DELETE] = "/api/delete",
    [R_STATS] = "/emu/stats",
    [R_OTHER] = "other",
};

enum fault {
	FAULT_NONE,
	FAULT_FAIL,
	FAULT_STALL,
	FAULT_DROP,
	FAULT_GARBAGE,
};

#define STATUS_KINDS 12

struct route_stats {
	int status[STATUS_KINDS];
	uint64_t count[STATUS_KINDS];
};

struct model_stats {
	uint64_t loads, unloads, requests;
	double busy_slot_s;
};

struct emu {
	struct ev_loop *loop;
	struct MHD_Daemon *mhd;
	ev_io mhd_io;
	ev_timer mhd_timer;
	ev_prepare mhd_prepare;
	ev_idle mhd_kick;
	ev_timer sched_timer;
	ev_signal sigint, sigterm;

	struct emu_catalog cat;
	struct esched sched;
	double speed;
	int instant;
	double share;
	int64_t unload_ns;
	int default_num_ctx;
	int64_t mono_start_ns;
	int64_t wall_start_ns;
	int stall_ms;
	double fail_rate, stall_rate, drop_rate, garbage_rate;
	uint64_t rng;
	size_t max_body;
	uint64_t next_id;

	/* /emu/stats */
	struct route_stats routes[R_COUNT];
	struct model_stats *models;
	double *slot_busy_s;
	double idle_slot_while_waiting_s;
	double waiting_s;
	int64_t stats_last_ns;
	size_t peak_waiting;
	uint64_t faults[5];
	size_t open_streams, peak_streams;
	uint64_t requests_total;
	uint64_t clients_gone; /* left before their reply: client_gone_cb */
	LIST_HEAD(, job) jobs;
	int shutting_down;
};

enum job_phase {
	JOB_RECEIVING,
	JOB_WAITING, /* suspended until the scheduler or the work says */
	JOB_RESPOND, /* a reply is ready to queue */
	JOB_SENDING, /* queued; the reader callback drains `out` */
};

struct job {
	LIST_ENTRY(job) link;
	struct emu *emu;
	struct MHD_Connection *conn;
	enum route route;
	enum job_phase phase;
	int in_handler;
	int suspended;
	int answered_on_socket; /* its error written on the socket */
	ev_io client; /* while suspended: see client_gone_cb */

	char *body;
	size_t body_len, body_cap;
	int body_too_large;

	struct api_request req;
	int parsed;
	struct esched_req sreq;
	int submitted;

	/* The reply: a status and bytes, streamed or whole. */
	int status;
	int streaming;
	int stream_counted;
	char *out;
	size_t out_len, out_off, out_cap;
	int out_finished;
	int out_broken; /* end with a dropped connection */

	/* Inference. */
	struct work work;
	double rate;
	int running;
	int tokens_target;
	int tokens_sent;
	int64_t load_reported_ns;
	int64_t stamped_ns; /* the latest created_at given */
	ev_timer timer;
	enum fault fault;
	int fault_at_token;
	int stalled;
	struct esched_runner *runner;
	double offload;
};

struct runner_io {
	ev_timer timer;
	struct emu *emu;
	struct esched_runner *runner;
};

static void drain(struct emu *e);
static void job_emit_tokens(struct job *j, int64_t now);
static void job_arm(struct job *j, int64_t now);
static void job_complete(struct job *j, int64_t now);

/* ------------------------------------------------------------------ */
/* Clocks                                                             */
/* ------------------------------------------------------------------ */

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static int64_t
wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static double
clock_rate(const struct emu *e)
{
	return e->instant ? 1.0 : e->speed;
}

/* Simulated nanoseconds since start. */
static int64_t
sim_now(const struct emu *e)
{
	return (
	    int64_t)((double)(mono_ns() - e->mono_start_ns) * clock_rate(e));
}

/* Real seconds until simulated time `at`, for a work deadline. */
static double
real_delay_work(const struct emu *e, int64_t at)
{
	int64_t d = at - sim_now(e);

	if (e->instant || d <= 0)
		return 0;
	return (double)d / NS_PER_SEC / e->speed;
}

static int64_t
sim_to_wall(const struct emu *e, int64_t sim)
{
	/* The end of time stays there. */
	return sim > INT64_MAX - e->wall_start_ns ? INT64_MAX
	                                          : e->wall_start_ns + sim;
}

static double
rng_uniform(struct emu *e)
{
	/* xorshift64*: fault draws repeat for a given --seed. */
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return (double)((e->rng * 0x2545F4914F6CDD1DULL) >> 11) /
	    9007199254740992.0;
}

/* ------------------------------------------------------------------ */
/* Statistics                                                         */
/* ------------------------------------------------------------------ */

static void
stats_count(struct emu *e, enum route r, int status)
{
	struct route_stats *rs = &e->routes[r];

	for (int i = 0; i < STATUS_KINDS; i++) {
		if (rs->status[i] == status || rs->status[i] == 0) {
			rs->status[i] = status;
			rs->count[i]++;
			return;
		}
	}
}

/* Integrates slot and queue occupancy up to now; call before any change. */
static void
stats_advance(struct emu *e, int64_t now)
{
	struct esched_runner *r;
	double dt = (double)(now - e->stats_last_ns) / NS_PER_SEC;
	int active = 0, parallel = e->sched.cfg.parallel;
	size_t waiting = e->sched.pending_len + (e->sched.current != NULL);

	if (dt <= 0) {
		e->stats_last_ns =
		    now > e->stats_last_ns ? now : e->stats_last_ns;
		return;
	}
	TAILQ_FOREACH(r, &e->sched.runners, link) {
		struct esched_req *q;
		size_t idx = (size_t)(r->model - e->cat.models);

		active += r->active;
		e->models[idx].busy_slot_s += dt * r->active;
		TAILQ_FOREACH(q, &r->waiters, link)
			waiting++;
	}
	for (int i = 0; i < parallel; i++)
		if (active > i)
			e->slot_busy_s[i] += dt;
	if (waiting > 0) {
		e->waiting_s += dt;
		if (active < parallel)
			e->idle_slot_while_waiting_s +=
			    dt * (parallel - active);
	}
	if (waiting > e->peak_waiting)
		e->peak_waiting = waiting;
	e->stats_last_ns = now;
}

/* ------------------------------------------------------------------ */
/* Replies                                                            */
/* ------------------------------------------------------------------ */

static void
out_append(struct job *j, const char *data, size_t len)
{
	if (j->out_len + len > j->out_cap) {
		size_t cap = j->out_cap ? j->out_cap : 512;

		while (cap < j->out_len + len)
			cap *= 2;
		j->out = realloc(j->out, cap);
		if (j->out == NULL)
			fatal("out of memory");
		j->out_cap = cap;
	}
	memcpy(j->out + j->out_len, data, len);
	j->out_len += len;
}

/* Appends v as one JSON line (NDJSON) or as the whole body; steals v. */
static void
out_json(struct job *j, json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT);

	if (s == NULL)
		fatal("out of memory");
	out_append(j, s, strlen(s));
	if (j->streaming)
		out_append(j, "\n", 1);
	free(s);
	json_decref(v);
}

/*
 * A suspended connection is out of MHD's sight: a client that hung up
 * meanwhile would go unnoticed until its reply was ready, its request
 * still queued, loading models, evicting others and holding a slot, where
 * Ollama drops the request of a client that has gone. So its socket is
 * watched while it is suspended.
 */
static void client_gone_cb(struct ev_loop *loop, ev_io *w, int revents);

static void
job_suspend(struct job *j)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(j->conn, MHD_CONNECTION_INFO_CONNECTION_FD);

	j->suspended = 1;
	MHD_suspend_connection(j->conn);
	if (ci != NULL && !ev_is_active(&j->client)) {
		ev_io_init(&j->client, client_gone_cb, ci->connect_fd, EV_READ);
		j->client.data = j;
		ev_io_start(j->emu->loop, &j->client);
	}
}

static void
job_resume(struct job *j)
{
	ev_io_stop(j->emu->loop, &j->client);
	j->suspended = 0;
	MHD_resume_connection(j->conn);
}

static void
job_wake(struct job *j)
{
	/* A stream's status line goes out with its first line, as Ollama's
	 * does: until then, an error could still have its own status. */
	if (j->streaming && (j->out_len > 0 || j->out_finished) &&
	    (j->phase == JOB_WAITING || j->phase == JOB_RECEIVING))
		j->phase = JOB_RESPOND;
	if (j->suspended && !j->in_handler) {
		job_resume(j);
		ev_idle_start(j->emu->loop, &j->emu->mhd_kick);
	}
}

/* A whole reply (status and JSON body) ready to go; steals body. */
static void
job_reply(struct job *j, int status, json_t *body)
{
	j->status = status;
	j->streaming = 0;
	j->out_len = j->out_off = 0;
	out_json(j, body);
	j->out_finished = 1;
	j->phase = JOB_RESPOND;
	job_wake(j);
}

static void
job_error(struct job *j, int status, const char *message)
{
	/* A message cut to its buffer may end inside a character, which
	 * JSON cannot carry: it ends before it instead. */
	long bad = utf8_invalid_at(message, strlen(message));

	job_reply(j, status,
	    json_pack("{s:s%}", "error", message,
	        bad < 0 ? strlen(message) : (size_t)bad));
}

/* An error that quotes a name whole, however long, a \u0000 included. */
static void
job_error_with(struct job *j, int status, const char *before, const char *name,
    size_t len, const char *after)
{
	size_t nb = strlen(before), na = strlen(after);
	char *message = malloc(nb + len + na + 1);

	if (message == NULL)
		fatal("out of memory");
	memcpy(message, before, nb);
	memcpy(message + nb, name, len);
	memcpy(message + nb + len, after, na + 1);
	job_reply(
	    j, status, json_pack("{s:s%}", "error", message, nb + len + na));
	free(message);
}

/* The same, the name quoted as Go's %q does. */
static void
job_error_quoting(struct job *j, int status, const char *before,
    const char *name, size_t len, const char *after)
{
	char *quoted = api_go_quote(name, len);

	job_error_with(j, status, before, quoted, strlen(quoted), after);
	free(quoted);
}

/* Whether the catalog's name and the request's are one model's, each part
 * in the same case. */
static int
same_case(const char *catalog_name, const struct emu_ref *ref)
{
	struct model_name n;
	char full[MODEL_NAME_FULL_MAX];

	if (model_name_parse(catalog_name, strlen(catalog_name), &n) != 0)
		return 0;
	snprintf(
	    full, sizeof(full), "%s/%s/%s:%s", n.host, n.space, n.model, n.tag);
	return strcmp(full, ref->full) == 0;
}

/*
 * The model a request names, read as Ollama 0.33 reads it; NULL once the
 * request is answered with Ollama's error for its endpoint. The answers
 * differ by handler: generate and embed say a blank name is not found,
 * chat and the legacy embeddings that it is required; delete quotes an
 * invalid name; show names the model it did not find in its short form.
 */
static const struct emu_model *
request_model(struct emu *e, struct job *j)
{
	const char *raw = j->req.model;
	size_t len = j->req.model_len;
	const struct emu_model *m;
	struct emu_ref ref;

	emu_model_ref(raw, len, j->route == R_DELETE, &ref);
	switch (ref.kind) {
	case EMU_REF_BLANK:
		if (j->route == R_GENERATE || j->route == R_EMBED)
			job_error_with(
			    j, 404, "model '", raw, len, "' not found");
		else
			job_error(j, 400, "model is required");
		return NULL;
	case EMU_REF_INVALID:
		if (j->route == R_DELETE)
			job_error_quoting(
			    j, 400, "name ", raw, len, " is invalid");
		else
			job_error(j, 400, "invalid model name");
		return NULL;
	case EMU_REF_CONFLICT:
		job_error_quoting(j, 400,
		    "use either :local or :cloud, not both: ", ref.trimmed,
		    ref.trimmed_len, "");
		return NULL;
	case EMU_REF_CLOUD:
		/* No cloud here: Ollama's answer with OLLAMA_NO_CLOUD set. */
		job_error(j, 403,
		    j->route == R_SHOW
		        ? "ollama cloud is disabled: remote model "
		          "details are unavailable"
		        : "ollama cloud is disabled: remote model "
		          "is unavailable");
		return NULL;
	case EMU_REF_LOCAL:
		break;
	}
	m = emu_catalog_find(&e->cat, ref.full);
	/* The legacy embeddings skips the lookup that forgives case, and
	 * model files are found by a path where case matters. */
	if (m != NULL && j->route == R_EMBEDDINGS && !same_case(m->name, &ref))
		m = NULL;
	if (m != NULL)
		return m;
	if (j->route == R_EMBED || j->route == R_EMBEDDINGS) {
		job_error_quoting(j, 404, "model ", raw, len,
		    " not found, try pulling it first");
	} else if (j->route == R_SHOW) {
		char shortest[MODEL_NAME_FULL_MAX];

		model_name_shortest(&ref.name, shortest, sizeof(shortest));
		job_error_with(j, 404, "model '", shortest, strlen(shortest),
		    "' not found");
	} else {
		job_error_with(j, 404, "model '", raw, len, "' not found");
	}
	return NULL;
}

/*
 * An error written on the socket, where nothing was sent yet, for MHD to
 * close the connection then: as the server stops, MHD queues no reply
 * before the whole request is in, and a resumed request whose client
 * half-closed may be closed on reading that end before its reply goes.
 */
static void
answer_on_socket(
    struct job *j, int status, const char *reason, const char *message)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(j->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	json_t *o = json_pack("{s:s}", "error", message);
	char *body = json_dumps(o, JSON_COMPACT), reply[512];
	int n;

	if (body == NULL)
		fatal("out of memory");
	json_decref(o);
	n = snprintf(reply, sizeof(reply),
	    "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json; charset=utf-8\r\n"
	    "Content-Length: %zu\r\n"
	    "Connection: close\r\n"
	    "\r\n"
	    "%s",
	    status, reason, strlen(body), body);
	free(body);
	j->answered_on_socket = 1;
	stats_count(j->emu, j->route, status);
	/* An empty socket buffer takes it whole; a client gone, nothing. */
	if (ci != NULL &&
	    send(ci->connect_fd, reply, (size_t)n,
	        MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("a reply %d not sent: %s", status, strerror(errno));
}

static ssize_t
job_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct job *j = cls;
	size_t avail = j->out_len - j->out_off;

	(void)pos;
	if (avail > 0) {
		size_t n = avail < max ? avail : max;

		memcpy(buf, j->out + j->out_off, n);
		j->out_off += n;
		if (j->out_off == j->out_len)
			j->out_off = j->out_len = 0;
		return (ssize_t)n;
	}
	if (j->out_finished)
		return j->out_broken ? MHD_CONTENT_READER_END_WITH_ERROR
		                     : MHD_CONTENT_READER_END_OF_STREAM;
	/* Nothing yet: park the connection until the next token. */
	job_suspend(j);
	return 0;
}

static enum MHD_Result
queue_reply(struct job *j)
{
	struct MHD_Response *resp;
	enum MHD_Result rc;
	uint64_t size;

	if (j->streaming) {
		size = MHD_SIZE_UNKNOWN;
	} else if (j->out_broken) {
		/* A dropped reply announces the whole length, sends half. */
		size = j->out_len;
		j->out_len /= 2;
	} else {
		size = j->out_len;
	}
	resp = MHD_create_response_from_callback(
	    size, 16 * 1024, job_reader, j, NULL);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type",
	    j->streaming ? "application/x-ndjson"
	                 : "application/json; charset=utf-8");
	rc = MHD_queue_response(j->conn, (unsigned)j->status, resp);
	MHD_destroy_response(resp);
	stats_count(j->emu, j->route, j->status);
	j->phase = JOB_SENDING;
	return rc;
}

static enum MHD_Result
reply_text(struct job *j, int status, const char *type, const char *text)
{
	struct MHD_Response *resp;
	enum MHD_Result rc;

	resp = MHD_create_response_from_buffer(
	    strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", type);
	rc = MHD_queue_response(j->conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	stats_count(j->emu, j->route, status);
	j->phase = JOB_SENDING;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Catalog views: /api/tags, /api/ps, /api/show                       */
/* ------------------------------------------------------------------ */

static json_t *
model_details(const struct emu_model *m)
{
	return json_pack("{s:s,s:s,s:s,s:[s],s:s,s:s}", "parent_model", "",
	    "format", "gguf", "family", m->family, "families", m->family,
	    "parameter_size", m->parameter_size, "quantization_level",
	    m->quantization);
}

static json_t *
capabilities_json(const struct emu_model *m)
{
	static const struct {
		unsigned bit;
		const char *word;
	} words[] = {
	    {EMU_CAP_COMPLETION, "completion"},
	    {EMU_CAP_EMBEDDING, "embedding"},
	    {EMU_CAP_VISION, "vision"},
	    {EMU_CAP_TOOLS, "tools"},
	    {EMU_CAP_THINKING, "thinking"},
	    {EMU_CAP_INSERT, "insert"},
	};
	json_t *a = json_array();

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (m->capabilities & words[i].bit)
			json_array_append_new(a, json_string(words[i].word));
	return a;
}

static json_t *
tags_json(struct emu *e)
{
	json_t *list = json_array();
	char when[64];

	/* Models were "pulled" when the emulator started. */
	api_format_time(e->wall_start_ns, when, sizeof(when));
	for (size_t i = 0; i < e->cat.count; i++) {
		const struct emu_model *m = &e->cat.models[i];

		if (m->removed)
			continue;
		json_array_append_new(list,
		    json_pack("{s:s,s:s,s:s,s:I,s:s,s:o}", "name", m->name,
		        "model", m->name, "modified_at", when, "size",
		        (json_int_t)m->size_bytes, "digest", m->digest,
		        "details", model_details(m)));
	}
	return json_pack("{s:o}", "models", list);
}

/* A model of /api/ps with its expiry as a number: the RFC3339 text drops
 * trailing zeros, and does not sort as the times do. */
struct ps_item {
	json_t *json;
	int64_t expires;
};

/* Latest first. */
static int
ps_cmp(const void *a, const void *b)
{
	const struct ps_item *x = a, *y = b;

	return (y->expires > x->expires) - (y->expires < x->expires);
}

static json_t *
ps_json(struct emu *e)
{
	struct esched_runner *r;
	struct ps_item items[64];
	json_t *list = json_array();
	size_t n = 0;
	int64_t now = sim_now(e);

	TAILQ_FOREACH(r, &e->sched.runners, link) {
		char when[64];
		int64_t exp;

		/* Ollama lists a runner once its load is over. */
		if (r->state != RUNNER_READY || n == 64)
			continue;
		if (r->shown_expiry_ns != 0) {
			exp = sim_to_wall(e, r->shown_expiry_ns);
			api_format_time(exp, when, sizeof(when));
		} else {
			/* Ollama's time.Now().Add(session): for ever is the
			 * longest duration on, not a date of its own. */
			api_format_time_after(sim_to_wall(e, now),
			    r->session_ns, when, sizeof(when));
			exp = r->session_ns > INT64_MAX - sim_to_wall(e, now)
			    ? INT64_MAX
			    : sim_to_wall(e, now) + r->session_ns;
		}
		items[n].expires = exp;
		items[n++].json = json_pack("{s:s,s:s,s:I,s:s,s:o,s:s,s:I,s:i}",
		    "name", r->model->name, "model", r->model->name, "size",
		    (json_int_t)r->size_bytes, "digest", r->model->digest,
		    "details", model_details(r->model), "expires_at", when,
		    "size_vram", (json_int_t)r->vram_bytes, "context_length",
		    r->num_ctx);
	}
	qsort(items, n, sizeof(items[0]), ps_cmp);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, items[i].json);
	return json_pack("{s:o}", "models", list);
}

static json_t *
show_json(struct emu *e, const struct emu_model *m)
{
	char modelfile[512], params[128], key[96], when[64];
	json_t *info;

	snprintf(modelfile, sizeof(modelfile),
	    "# Modelfile generated by \"ollama show\"\nFROM %s\nTEMPLATE \"\"\"{{ .System }} {{ .Prompt }}\"\"\"\nPARAMETER stop \"</s>\"\n",
	    m->name);
	snprintf(
	    params, sizeof(params), "stop                           \"</s>\"");
	info = json_pack("{s:s,s:I}", "general.architecture", m->family,
	    "general.parameter_count",
	    (json_int_t)(m->size_bytes * 2)); /* about 4.5 bits a weight */
	snprintf(key, sizeof(key), "%s.context_length", m->family);
	json_object_set_new(info, key, json_integer(m->context_length));
	if (m->embedding_length > 0) {
		snprintf(key, sizeof(key), "%s.embedding_length", m->family);
		json_object_set_new(
		    info, key, json_integer(m->embedding_length));
	}
	api_format_time(e->wall_start_ns, when, sizeof(when));
	return json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:s}", "modelfile",
	    modelfile, "parameters", params, "template",
	    "{{ .System }} {{ .Prompt }}", "details", model_details(m),
	    "model_info", info, "capabilities", capabilities_json(m),
	    "modified_at", when);
}

static json_t *
stats_json(struct emu *e)
{
	json_t *routes = json_object(), *models = json_object(),
	       *slots = json_array();
	struct esched_runner *r;
	size_t resident = 0;

	stats_advance(e, sim_now(e));
	for (int i = 0; i < R_COUNT; i++) {
		json_t *by = json_object();

		for (int k = 0; k < STATUS_KINDS && e->routes[i].status[k];
		     k++) {
			char code[8];

			snprintf(
			    code, sizeof(code), "%d", e->routes[i].status[k]);
			json_object_set_new(by, code,
			    json_integer((json_int_t)e->routes[i].count[k]));
		}
		if (json_object_size(by) > 0)
			json_object_set_new(routes, route_names[i], by);
		else
			json_decref(by);
	}
	for (size_t i = 0; i < e->cat.count; i++) {
		struct model_stats *ms = &e->models[i];

		if (ms->loads == 0 && ms->requests == 0)
			continue;
		json_object_set_new(models, e->cat.models[i].name,
		    json_pack("{s:I,s:I,s:I,s:f}", "loads",
		        (json_int_t)ms->loads, "unloads",
		        (json_int_t)ms->unloads, "requests",
		        (json_int_t)ms->requests, "busy_slot_s",
		        ms->busy_slot_s));
	}
	for (int i = 0; i < e->sched.cfg.parallel; i++)
		json_array_append_new(slots, json_real(e->slot_busy_s[i]));
	TAILQ_FOREACH(r, &e->sched.runners, link)
		if (r->state != RUNNER_UNLOADING)
			resident++;
	return json_pack("{s:f,s:f,s:I,s:o,s:o,s:{s:I,s:I,s:I,s:I,s:I},"
	                 "s:o,s:f,s:f,s:I,s:I,s:I,s:I,s:I,s:I,"
	                 "s:{s:I,s:I,s:I,s:I}}",
	    "uptime_s", (double)sim_now(e) / NS_PER_SEC, "speed",
	    e->instant ? -1.0 : e->speed, "requests",
	    (json_int_t)e->requests_total, "by_endpoint", routes, "models",
	    models, "scheduler", "loads", (json_int_t)e->sched.stats.loads,
	    "unloads", (json_int_t)e->sched.stats.unloads, "evictions",
	    (json_int_t)e->sched.stats.evictions, "reloads",
	    (json_int_t)e->sched.stats.reloads, "aborted_loads",
	    (json_int_t)e->sched.stats.aborted_loads, "slot_busy_s", slots,
	    "idle_slot_while_waiting_s", e->idle_slot_while_waiting_s,
	    "waiting_s", e->waiting_s, "peak_pending",
	    (json_int_t)e->sched.stats.peak_pending, "peak_waiting",
	    (json_int_t)e->peak_waiting, "resident", (json_int_t)resident,
	    "open_streams", (json_int_t)e->open_streams, "peak_streams",
	    (json_int_t)e->peak_streams, "clients_gone",
	    (json_int_t)e->clients_gone, "faults", "fail",
	    (json_int_t)e->faults[FAULT_FAIL], "stall",
	    (json_int_t)e->faults[FAULT_STALL], "drop",
	    (json_int_t)e->faults[FAULT_DROP], "garbage",
	    (json_int_t)e->faults[FAULT_GARBAGE]);
}

/* ------------------------------------------------------------------ */
/* Inference                                                          */
/* ------------------------------------------------------------------ */

static json_t *
chunk_base(struct job *j, int64_t now)
{
	char when[64];

	/* Tokens are stamped when their timer fires, up to 5 ms late, the
	 * last chunk at the exact end: Ollama's times never go back. */
	if (now < j->stamped_ns)
		now = j->stamped_ns;
	j->stamped_ns = now;
	api_format_time(sim_to_wall(j->emu, now), when, sizeof(when));
	return json_pack("{s:s%,s:s}", "model", j->req.model, j->req.model_len,
	    "created_at", when);
}

static void
set_message(json_t *o, const char *content)
{
	json_object_set_new(o, "message",
	    json_pack("{s:s,s:s}", "role", "assistant", "content", content));
}

/* Metric fields are left out when zero, as Ollama's omitempty does. */
static void
set_metric(json_t *o, const char *key, int64_t v)
{
	if (v != 0)
		json_object_set_new(o, key, json_integer((json_int_t)v));
}

static int
is_chat(const struct job *j)
{
	return j->route == R_CHAT;
}

static void
job_load_reply(struct job *j, int64_t now, const char *reason)
{
	json_t *o = chunk_base(j, now);

	if (j->route == R_EMBED) {
		json_decref(o);
		job_reply(j, 200,
		    json_pack("{s:s%,s:[]}", "model", j->req.model,
		        j->req.model_len, "embeddings"));
		return;
	}
	if (j->route == R_EMBEDDINGS) {
		json_decref(o);
		job_reply(j, 200, json_pack("{s:[]}", "embedding"));
		return;
	}
	if (is_chat(j))
		set_message(o, "");
	else
		json_object_set_new(o, "response", json_string(""));
	json_object_set_new(o, "done", json_true());
	json_object_set_new(o, "done_reason", json_string(reason));
	job_reply(j, 200, o);
}

/* The length of each embedding: the model's, or a common one. */
static int
embedding_dim(const struct emu_model *m)
{
	return m->embedding_length > 0 ? m->embedding_length : 768;
}

static void
job_embed_reply(struct job *j, int64_t now)
{
	const struct emu_model *m = j->sreq.model;
	int dim = embedding_dim(m);
	float *vec = calloc((size_t)dim, sizeof(float));
	json_t *all = json_array();

	if (vec == NULL)
		fatal("out of memory");
	for (size_t i = 0; i < j->req.ninputs; i++) {
		const char *in = api_embed_input(&j->req, i);
		json_t *one = json_array();

		text_embedding(
		    text_hash(j->req.text_seed, in, strlen(in)), vec, dim);
		for (int k = 0; k < dim; k++)
			json_array_append_new(one, json_real(vec[k]));
		if (j->route == R_EMBEDDINGS) {
			json_decref(all);
			all = one;
			break;
		}
		json_array_append_new(all, one);
	}
	free(vec);
	if (j->route == R_EMBEDDINGS) {
		job_reply(j, 200, json_pack("{s:o}", "embedding", all));
		return;
	}
	{
		json_t *o = json_pack("{s:s%,s:o}", "model", j->req.model,
		    j->req.model_len, "embeddings", all);

		/* Instant: no real time passed, the nominal one is told, as
		 * for generation (job_final). */
		set_metric(o, "total_duration",
		    (now - j->sreq.arrived_ns) +
		        (j->emu->instant ? j->load_reported_ns +
		                    (int64_t)(j->work.prompt_work * NS_PER_SEC)
		                         : 0));
		set_metric(o, "load_duration", j->load_reported_ns);
		set_metric(o, "prompt_eval_count", j->req.prompt_tokens);
		job_reply(j, 200, o);
	}
}

/* The last chunk, or the whole reply when not streamed. */
static void
job_final(struct job *j, int64_t now)
{
	json_t *o = chunk_base(j, now);
	int64_t prompt_done =
	    j->work.prompt_done_ns >= 0 ? j->work.prompt_done_ns : now;
	int64_t prompt_ns, eval_ns;
	int limited =
	    j->req.num_predict > 0 && j->tokens_target == j->req.num_predict;

	if (j->emu->instant) {
		/* No real time passed: report the nominal solo durations. */
		prompt_ns = (int64_t)(j->work.prompt_work * NS_PER_SEC);
		eval_ns = (int64_t)(j->work.token_work * j->tokens_target *
		    NS_PER_SEC);
	} else {
		prompt_ns = prompt_done - j->work.start_ns;
		eval_ns = now - prompt_done;
	}
	if (j->streaming) {
		if (is_chat(j))
			set_message(o, "");
		else
			json_object_set_new(o, "response", json_string(""));
	} else {
		char tok[64];
		size_t cap = (size_t)j->tokens_target * 12 + 1, len = 0;
		char *text = malloc(cap);

		if (text == NULL)
			fatal("out of memory");
		for (int i = 0; i < j->tokens_target; i++) {
			size_t n =
			    text_token(j->req.text_seed, i, tok, sizeof(tok));

			if (len + n + 1 > cap) {
				cap = (len + n + 1) * 2;
				text = realloc(text, cap);
				if (text == NULL)
					fatal("out of memory");
			}
			memcpy(text + len, tok, n);
			len += n;
		}
		text[len] = '\0';
		if (is_chat(j))
			set_message(o, text);
		else
			json_object_set_new(o, "response", json_string(text));
		free(text);
	}
	json_object_set_new(o, "done", json_true());
	json_object_set_new(
	    o, "done_reason", json_string(limited ? "length" : "stop"));
	if (!is_chat(j)) {
		json_t *ctx = json_array();
		int n = j->req.prompt_tokens + j->tokens_target;

		/* No more than the context holds, as Ollama's: the model's,
		 * which caps what the request asks. */
		int held = esched_effective_ctx(j->sreq.model, j->sreq.num_ctx);

		if (held > 0 && n > held)
			n = held;

		/* Token ids stand in for the real context: stable, honest
		 * count. */
		for (int i = 0; i < n; i++)
			json_array_append_new(ctx,
			    json_integer(
			        (json_int_t)((j->req.text_seed >> (i % 17)) %
			                32000 +
			            i % 7)));
		json_object_set_new(o, "context", ctx);
	}
	set_metric(o, "total_duration",
	    (now - j->sreq.arrived_ns) +
	        (j->emu->instant ? j->load_reported_ns + prompt_ns + eval_ns
	                         : 0));
	set_metric(o, "load_duration", j->load_reported_ns);
	set_metric(o, "prompt_eval_count", j->req.prompt_tokens);
	set_metric(o, "prompt_eval_duration", prompt_ns);
	set_metric(o, "eval_count", j->tokens_target);
	set_metric(o, "eval_duration", eval_ns);
	if (j->streaming) {
		out_json(j, o);
		j->out_finished = 1;
		job_wake(j);
	} else {
		job_reply(j, 200, o);
	}
}

static int
gpu_active(const struct emu *e)
{
	const struct esched_runner *r;
	int n = 0;

	TAILQ_FOREACH(r, &e->sched.runners, link)
		n += r->active;
	return n;
}

static double
job_current_rate(struct job *j)
{
	return work_rate(
	    j->runner->active, gpu_active(j->emu), j->emu->share, j->offload);
}

/* Re-times every running request: the number sharing the GPU changed. */
static void
gpu_resync(struct emu *e, int64_t now)
{
	struct esched_runner *r;
	struct esched_req *q;

	TAILQ_FOREACH(r, &e->sched.runners, link)
		TAILQ_FOREACH(q, &r->running, link) {
			struct job *j = q->owner;

			if (!j->running)
				continue;
			work_advance(&j->work, now, j->rate);
			j->rate = job_current_rate(j);
			if (!j->stalled)
				job_arm(j, now);
		}
}

static void
job_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct job *j = w->data;
	struct emu *e = j->emu;
	int64_t now = sim_now(e);

	(void)loop;
	(void)revents;
	if (j->stalled) {
		/*
		 * A stall ends with the connection dropped, so that it is
		 * bounded. A whole reply that never started goes out half.
		 */
		if (!j->streaming) {
			job_final(j, now);
			j->out_broken = 1;
		}
		j->out_broken = 1;
		j->out_finished = 1;
		job_complete(j, now);
		job_wake(j);
		drain(e);
		return;
	}
	stats_advance(e, now);
	work_advance(&j->work, now, j->rate);
	job_emit_tokens(j, now);
	drain(e);
}

static void
job_arm(struct job *j, int64_t now)
{
	struct emu *e = j->emu;
	int next = j->streaming ? j->tokens_sent + 1 : j->tokens_target;
	int64_t at;
	double delay;

	ev_timer_stop(e->loop, &j->timer);
	at = work_time_of_tokens(&j->work, next, j->rate);
	delay = real_delay_work(e, at);
	/* Streams coalesce tokens that fall within 5 ms of real time, but
	 * not past the last one: the answer ends and its slot is free when
	 * the work is over, not 5 ms of real time on, which the speed
	 * would make seconds of the backend's. */
	if (j->streaming && delay < 0.005 && at > now) {
		double to_end = real_delay_work(e,
		    work_time_of_tokens(&j->work, j->tokens_target, j->rate));

		delay = to_end < 0.005 ? to_end : 0.005;
	}
	ev_timer_set(&j->timer, delay, 0);
	ev_timer_start(e->loop, &j->timer);
}

/* Releases the slot; the reply itself may still be on its way out. */
static void
job_complete(struct job *j, int64_t now)
{
	struct emu *e = j->emu;
	struct esched_runner *r = j->runner;

	ev_timer_stop(e->loop, &j->timer);
	if (!j->submitted || j->sreq.state == ESR_DONE)
		return;
	stats_advance(e, now);
	j->running = 0;
	esched_finish(&e->sched, &j->sreq, now);
	if (r != NULL)
		gpu_resync(e, now);
	j->runner = NULL;
}

static void
job_emit_tokens(struct job *j, int64_t now)
{
	struct emu *e = j->emu;
	int ready = work_tokens_ready(&j->work);

	if (j->tokens_target == 0 && j->work.prompt_done_ns < 0 &&
	    j->work.done >= j->work.prompt_work)
		j->work.prompt_done_ns = now;
	if (j->streaming) {
		char tok[64];

		while (j->tokens_sent < ready) {
			json_t *o;

			if (j->fault != FAULT_NONE &&
			    j->tokens_sent == j->fault_at_token) {
				if (j->fault == FAULT_GARBAGE) {
					out_append(
					    j, "{\"model\":garbage\n", 17);
					j->fault = FAULT_NONE;
				} else if (j->fault == FAULT_DROP) {
					j->out_broken = 1;
					j->out_finished = 1;
					job_complete(j, now);
					job_wake(j);
					return;
				} else if (j->fault == FAULT_STALL) {
					j->stalled = 1;
					ev_timer_stop(e->loop, &j->timer);
					ev_timer_set(
					    &j->timer, e->stall_ms / 1000.0, 0);
					ev_timer_start(e->loop, &j->timer);
					job_wake(j);
					return;
				}
			}
			text_token(
			    j->req.text_seed, j->tokens_sent, tok, sizeof(tok));
			o = chunk_base(j, now);
			if (is_chat(j))
				set_message(o, tok);
			else
				json_object_set_new(
				    o, "response", json_string(tok));
			json_object_set_new(o, "done", json_false());
			out_json(j, o);
			j->tokens_sent++;
		}
		if (j->out_len > 0)
			job_wake(j);
	}
	if (ready < j->tokens_target || j->work.prompt_done_ns < 0) {
		job_arm(j, now);
		return;
	}
	/* Done: the final object at the exact moment, then the slot goes back.
	 */
	now = work_finish_time(&j->work);
	if (j->route == R_EMBED || j->route == R_EMBEDDINGS) {
		job_embed_reply(j, now);
	} else if (!j->streaming && j->fault == FAULT_STALL) {
		j->stalled = 1;
		ev_timer_stop(e->loop, &j->timer);
		ev_timer_set(&j->timer, e->stall_ms / 1000.0, 0);
		ev_timer_start(e->loop, &j->timer);
		return;
	} else {
		job_final(j, now);
		if (!j->streaming && j->fault == FAULT_GARBAGE) {
			j->out_len = 0;
			out_append(j, "{\"model\":garbage", 16);
		} else if (!j->streaming && j->fault == FAULT_DROP) {
			j->out_broken = 1;
		}
	}
	job_complete(j, now);
}

static void
job_start(struct emu *e, struct job *j, int64_t now)
{
	struct esched_runner *r = j->sreq.runner;
	/* A request that waited took its slot as the one before gave it
	 * back, which was when that one's work ended, not when its timer
	 * fired: the real time in between is no time of the backend's. */
	int64_t began = j->sreq.started_ns > j->sreq.arrived_ns
	    ? j->sreq.started_ns
	    : j->sreq.arrived_ns;
	int answer;

	j->runner = r;
	e->models[r->model - e->cat.models].requests++;
	if (j->fault == FAULT_FAIL) {
		job_error(j, 500,
		    "llama runner process has terminated: signal: killed");
		job_complete(j, now);
		return;
	}
	answer = text_answer_tokens(r->model, j->req.text_seed);
	if (j->route == R_EMBED || j->route == R_EMBEDDINGS)
		answer = 0;
	else if (j->req.num_predict > 0 && j->req.num_predict < answer)
		answer = j->req.num_predict;
	j->tokens_target = answer;
	if (j->fault != FAULT_NONE && j->fault != FAULT_FAIL)
		j->fault_at_token =
		    answer > 0 ? (int)(rng_uniform(e) * answer) : 0;
	j->offload = work_offload_slowdown(r->size_bytes, r->vram_bytes);
	work_init(&j->work, r->model, j->req.prompt_tokens, answer,
	    began < now ? began : now);
	j->running = 1;
	j->rate = job_current_rate(j);
	if (j->streaming) {
		j->status = 200;
		j->stream_counted = 1;
		e->open_streams++;
		if (e->open_streams > e->peak_streams)
			e->peak_streams = e->open_streams;
	}
	if (e->instant) {
		j->work.done =
		    j->work.prompt_work + j->work.token_work * answer;
		j->work.prompt_done_ns = now;
		job_emit_tokens(j, now);
	} else {
		gpu_resync(e, now);
	}
	job_wake(j);
}

/* ------------------------------------------------------------------ */
/* Scheduler actions                                                  */
/* ------------------------------------------------------------------ */

static void
runner_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct runner_io *io = w->data;
	struct emu *e = io->emu;
	struct esched_runner *r = io->runner;
	int64_t now = sim_now(e);

	(void)loop;
	(void)revents;
	stats_advance(e, now);
	if (r->state == RUNNER_LOADING) {
		esched_load_done(&e->sched, r, now);
	} else {
		size_t idx = (size_t)(r->model - e->cat.models);

		e->models[idx].unloads++;
		log_debug("unloaded %s", r->model->name);
		free(io);
		esched_unload_done(&e->sched, r, now);
	}
	drain(e);
}

static void
runner_schedule(
    struct emu *e, struct esched_runner *r, int64_t work_ns, int64_t now)
{
	struct runner_io *io = r->owner;

	if (io == NULL) {
		io = calloc(1, sizeof(*io));
		if (io == NULL)
			fatal("out of memory");
		io->emu = e;
		io->runner = r;
		ev_init(&io->timer, runner_timer_cb);
		io->timer.data = io;
		r->owner = io;
	}
	ev_timer_stop(e->loop, &io->timer);
	ev_timer_set(&io->timer, real_delay_work(e, now + work_ns), 0);
	ev_timer_start(e->loop, &io->timer);
}

static void
sched_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct emu *e = w->data;
	int64_t now = sim_now(e);

	(void)loop;
	(void)revents;
	stats_advance(e, now);
	esched_tick(&e->sched, now);
	drain(e);
}

/* Carries out the scheduler's actions, then re-arms the idle timer. */
static void
drain(struct emu *e)
{
	struct esched_action a;
	int64_t now = sim_now(e), deadline;

	/* Stopping, a slot given back would start a request already
	 * answered 503. */
	if (e->shutting_down)
		return;
	while (esched_next_action(&e->sched, &a)) {
		struct job *j = a.req ? a.req->owner : NULL;

		switch (a.kind) {
		case ESA_LOAD:
			e->models[a.runner->model - e->cat.models].loads++;
			log_debug("loading %s (%d ctx, %.0f MB)",
			    a.runner->model->name, a.runner->num_ctx,
			    (double)a.runner->size_bytes / MB);
			runner_schedule(e, a.runner, a.runner->load_ns, now);
			break;
		case ESA_UNLOAD:
			log_debug("unloading %s", a.runner->model->name);
			runner_schedule(e, a.runner, e->unload_ns, now);
			break;
		case ESA_READY:
			/* load_duration counts the wait in the scheduler. */
			j->load_reported_ns = now - a.req->arrived_ns;
			if (e->instant && a.req->waited_for_load)
				j->load_reported_ns += a.runner->load_ns;
			if (!a.req->needs_slot) {
				job_load_reply(j, now, "load");
				job_complete(j, now);
			}
			break;
		case ESA_START:
			job_start(e, j, now);
			break;
		case ESA_REJECT:
			job_error(j, a.status, a.message);
			break;
		}
	}
	deadline = esched_next_deadline(&e->sched);
	ev_timer_stop(e->loop, &e->sched_timer);
	if (deadline >= 0) {
		double d =
		    (double)(deadline - now) / NS_PER_SEC / clock_rate(e);

		ev_timer_set(&e->sched_timer, d > 0 ? d : 0, 0);
		ev_timer_start(e->loop, &e->sched_timer);
	}
}

/* ------------------------------------------------------------------ */
/* Request handling                                                   */
/* ------------------------------------------------------------------ */

static enum route
route_of(const char *method, const char *url, int *method_ok)
{
	static const struct {
		const char *url;
		const char *method;
		enum route route;
	} table[] = {
	    {"/", "GET", R_ROOT},
	    {"/", "HEAD", R_ROOT},
	    {"/api/version", "GET", R_VERSION},
	    {"/api/version", "HEAD", R_VERSION},
	    {"/api/tags", "GET", R_TAGS},
	    {"/api/tags", "HEAD", R_TAGS},
	    {"/api/ps", "GET", R_PS},
	    {"/api/show", "POST", R_SHOW},
	    {"/api/generate", "POST", R_GENERATE},
	    {"/api/chat", "POST", R_CHAT},
	    {"/api/embed", "POST", R_EMBED},
	    {"/api/embeddings", "POST", R_EMBEDDINGS},
	    {"/api/delete", "DELETE", R_DELETE},
	    {"/emu/stats", "GET", R_STATS},
	};

	*method_ok = 0;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(url, table[i].url) == 0) {
			if (strcmp(method, table[i].method) == 0) {
				*method_ok = 1;
				return table[i].route;
			}
		}
	return R_OTHER;
}

static enum fault
draw_fault(struct emu *e)
{
	double x = rng_uniform(e);
	enum fault f = FAULT_NONE;

	if ((x -= e->fail_rate) < 0)
		f = FAULT_FAIL;
	else if ((x -= e->stall_rate) < 0)
		f = FAULT_STALL;
	else if ((x -= e->drop_rate) < 0)
		f = FAULT_DROP;
	else if ((x -= e->garbage_rate) < 0)
		f = FAULT_GARBAGE;
	e->faults[f]++;
	return f;
}

static void
handle_inference(struct emu *e, struct job *j)
{
	struct api_error err;
	const struct emu_model *m;
	int64_t now = sim_now(e);

	if (api_request_parse(
	        (enum api_kind)(j->route == R_GENERATE ? API_GENERATE
	                : j->route == R_CHAT           ? API_CHAT
	                : j->route == R_EMBED          ? API_EMBED
	                                               : API_EMBEDDINGS),
	        j->body ? j->body : "", j->body_len, &j->req, &err) != 0) {
		job_error(j, err.status, err.message);
		return;
	}
	j->parsed = 1;
	if (j->req.options_warning)
		log_debug(
		    "invalid option provided: %s", j->req.options_warning);
	if ((m = request_model(e, j)) == NULL)
		return;
	/* An empty prompt with keep_alive 0 unloads, without waiting:
	 * before the capability check, as Ollama's, so that an embedding
	 * model unloads this way too. */
	if (j->req.empty && j->req.has_keep_alive &&
	    j->req.keep_alive_ns == 0 && j->route != R_EMBED &&
	    j->route != R_EMBEDDINGS) {
		stats_advance(e, now);
		esched_expire_model(&e->sched, m, now);
		drain(e);
		job_load_reply(j, now, "unload");
		return;
	}
	if ((j->route == R_GENERATE || j->route == R_CHAT) &&
	    !(m->capabilities & EMU_CAP_COMPLETION)) {
		job_error_quoting(j, 400, "", j->req.model, j->req.model_len,
		    j->route == R_CHAT ? " does not support chat"
		                       : " does not support generate");
		return;
	}
	/* Ollama names the model in full here, as its scheduler does. */
	if ((j->req.wants_tools && !(m->capabilities & EMU_CAP_TOOLS)) ||
	    (j->req.wants_insert && !(m->capabilities & EMU_CAP_INSERT))) {
		char full[256], msg[320];

		if (model_name_full(m->name, full, sizeof(full)) != 0)
			snprintf(full, sizeof(full), "%s", m->name);
		snprintf(msg, sizeof(msg), "%s does not support %s", full,
		    j->req.wants_tools ? "tools" : "insert");
		job_error(j, 400, msg);
		return;
	}
	if ((j->route == R_EMBED || j->route == R_EMBEDDINGS) &&
	    (uint64_t)j->req.ninputs * (uint64_t)embedding_dim(m) >
	        EMU_EMBED_NUMBERS_MAX) {
		char msg[256];

		snprintf(msg, sizeof(msg),
		    "input: %zu texts of %d numbers each make a reply past "
		    "the %d numbers this emulator builds at once",
		    j->req.ninputs, embedding_dim(m), EMU_EMBED_NUMBERS_MAX);
		job_error(j, 400, msg);
		return;
	}
	j->streaming = j->req.stream && !j->req.empty &&
	    (j->route == R_GENERATE || j->route == R_CHAT);
	/* Faults are drawn for generation only: embeddings have no stream. */
	if (!j->req.empty && (j->route == R_GENERATE || j->route == R_CHAT))
		j->fault = draw_fault(e);
	j->sreq.id = ++e->next_id;
	j->sreq.model = m;
	j->sreq.num_ctx =
	    j->req.has_num_ctx ? j->req.num_ctx : e->default_num_ctx;
	j->sreq.opts = j->req.runner_opts;
	j->sreq.has_keep_alive = j->req.has_keep_alive;
	j->sreq.keep_alive_ns = j->req.keep_alive_ns;
	j->sreq.needs_slot = !j->req.empty;
	j->sreq.owner = j;
	j->submitted = 1;
	stats_advance(e, now);
	esched_submit(&e->sched, &j->sreq, now);
	drain(e);
}

static enum MHD_Result
respond_now(struct emu *e, struct job *j, const char *method)
{
	switch (j->route) {
	case R_ROOT:
		return reply_text(j, 200, "text/plain; charset=utf-8",
		    strcmp(method, "HEAD") == 0 ? "" : "Ollama is running");
	case R_VERSION:
		job_reply(j, 200, json_pack("{s:s}", "version", EMU_VERSION));
		break;
	case R_TAGS:
		job_reply(j, 200, tags_json(e));
		break;
	case R_PS:
		job_reply(j, 200, ps_json(e));
		break;
	case R_STATS:
		job_reply(j, 200, stats_json(e));
		break;
	case R_SHOW: {
		struct api_error err;
		const struct emu_model *m;

		if (api_request_parse(API_SHOW, j->body ? j->body : "",
		        j->body_len, &j->req, &err) != 0) {
			job_error(j, err.status, err.message);
			break;
		}
		j->parsed = 1;
		if ((m = request_model(e, j)) != NULL)
			job_reply(j, 200, show_json(e, m));
		break;
	}
	case R_DELETE: {
		struct api_error err;
		const struct emu_model *m;

		if (api_request_parse(API_DELETE, j->body ? j->body : "",
		        j->body_len, &j->req, &err) != 0) {
			job_error(j, err.status, err.message);
			break;
		}
		j->parsed = 1;
		/* Ollama removes the files and leaves the scheduler alone:
		 * a loaded runner stays until evicted. */
		if ((m = request_model(e, j)) == NULL)
			break;
		(void)emu_catalog_remove(&e->cat, m->name);
		return reply_text(j, 200, "text/plain", "");
	}
	default:
		/* Stopping, nothing is left waiting for MHD to stop on. */
		if (e->shutting_down)
			job_error(j, 503, "server shutting down");
		else
			handle_inference(e, j);
		break;
	}
	if (j->phase == JOB_RESPOND)
		return queue_reply(j);
	j->phase = JOB_WAITING;
	job_suspend(j);
	return MHD_YES;
}

static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_size, void **con_cls)
{
	struct emu *e = cls;
	struct job *j = *con_cls;
	enum MHD_Result rc;
	int method_ok;

	(void)version;
	if (j == NULL) {
		const char *len_hdr;

		j = calloc(1, sizeof(*j));
		if (j == NULL)
			return MHD_NO;
		j->emu = e;
		j->conn = conn;
		j->route = route_of(method, url, &method_ok);
		ev_init(&j->timer, job_timer_cb);
		j->timer.data = j;
		LIST_INSERT_HEAD(&e->jobs, j, link);
		*con_cls = j;
		e->requests_total++;
		if (!method_ok)
			return reply_text(
			    j, 404, "text/plain", "404 page not found");
		len_hdr = MHD_lookup_connection_value(
		    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (len_hdr != NULL &&
		    strtoull(len_hdr, NULL, 10) > e->max_body) {
			job_error(j, 413, "request body too large");
			return queue_reply(j);
		}
		return MHD_YES;
	}
	if (j->answered_on_socket) {
		/* The rest of its body is read and dropped, then the
		 * connection closed: left unread, it would reset the
		 * connection, which may lose the reply. */
		if (*upload_size > 0) {
			*upload_size = 0;
			return MHD_YES;
		}
		return MHD_NO;
	}
	if (j->phase == JOB_RECEIVING && *upload_size > 0) {
		if (j->body_len + *upload_size > e->max_body) {
			j->body_too_large = 1;
		} else {
			if (j->body_len + *upload_size + 1 > j->body_cap) {
				size_t cap =
				    (j->body_len + *upload_size + 1) * 2;

				if (cap > e->max_body + 1)
					cap = e->max_body + 1;
				j->body = realloc(j->body, cap);
				if (j->body == NULL)
					return MHD_NO;
				j->body_cap = cap;
			}
			memcpy(
			    j->body + j->body_len, upload_data, *upload_size);
			j->body_len += *upload_size;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (j->phase == JOB_RECEIVING) {
		if (j->body_too_large) {
			job_error(j, 413, "request body too large");
			return queue_reply(j);
		}
		j->in_handler = 1;
		rc = respond_now(e, j, method);
		j->in_handler = 0;
		return rc;
	}
	if (j->phase == JOB_RESPOND)
		return queue_reply(j);
	if (j->phase == JOB_WAITING) {
		/* Woken before there was anything to send: park again. */
		job_suspend(j);
	}
	return MHD_YES;
}

/* Gives back the queue place, the load or the slot the request holds. */
static void
job_release(struct job *j)
{
	struct emu *e = j->emu;
	int64_t now;

	if (!j->submitted || j->sreq.state == ESR_DONE)
		return;
	now = sim_now(e);
	stats_advance(e, now);
	if (j->sreq.state == ESR_RUNNING)
		job_complete(j, now);
	else
		esched_finish(&e->sched, &j->sreq, now);
	drain(e);
}

/*
 * The suspended connection's socket is readable: the client sent more
 * (a request pipelined behind, which MHD reads once it resumes), or hung
 * up. Gone, its request is dropped at once and the connection is resumed:
 * a request still waiting is answered 499, a reply under way is broken
 * off, for MHD to close.
 */
static void
client_gone_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct job *j = w->data;
	char byte;
	ssize_t n = recv(w->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

	(void)revents;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	ev_io_stop(loop, w);
	if (n > 0)
		return;
	log_debug("a client left before its reply: its request is dropped");
	j->emu->clients_gone++;
	job_release(j);
	ev_timer_stop(loop, &j->timer);
	if (j->phase == JOB_WAITING) {
		/* Ollama's answer to a request its client cancelled, in Go's
		 * words for a status it has no name for: a client that only
		 * half-closed (shutdown(SHUT_WR), a cancel to Go too) reads
		 * it. */
		answer_on_socket(j, 499, "status code 499", "request canceled");
	} else {
		j->out_broken = 1;
		j->out_finished = 1;
	}
	job_wake(j);
}

static void
completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct emu *e = cls;
	struct job *j = *con_cls;

	(void)conn;
	(void)toe;
	if (j == NULL)
		return;
	/* The client is gone or the reply is out: give back what it held. */
	job_release(j);
	ev_io_stop(e->loop, &j->client);
	if (j->stream_counted)
		e->open_streams--;
	ev_timer_stop(e->loop, &j->timer);
	LIST_REMOVE(j, link);
	if (j->parsed)
		api_request_free(&j->req);
	free(j->body);
	free(j->out);
	free(j);
	*con_cls = NULL;
}

/* ------------------------------------------------------------------ */
/* The loop                                                           */
/* ------------------------------------------------------------------ */

static void
mhd_run(struct emu *e)
{
	MHD_run(e->mhd);
}

static void
mhd_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	mhd_run(w->data);
}

/*
 * A resumed connection is only taken back by the next MHD_run, and MHD's
 * own wake-up of its epoll set does not reach the outer loop reliably, so
 * a resume runs MHD once more as soon as the loop is idle.
 */
static void
mhd_kick_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	ev_idle_stop(loop, w);
	mhd_run(w->data);
}

static void
mhd_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	mhd_run(w->data);
}

/*
 * MHD must run again within the time it asks for, even without I/O; and
 * within a second at most: an accept that failed for want of descriptors
 * takes the listening socket out of MHD's epoll set until its next run,
 * which no I/O would bring once the connections are closed, and no client
 * would be taken again.
 */
static void
mhd_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct emu *e = w->data;
	MHD_UNSIGNED_LONG_LONG ms;
	double at = 1.0;

	(void)revents;
	ev_timer_stop(loop, &e->mhd_timer);
	if (MHD_get_timeout(e->mhd, &ms) == MHD_YES && ms < 1000)
		at = (double)ms / 1000.0;
	ev_timer_set(&e->mhd_timer, at, 0);
	ev_timer_start(loop, &e->mhd_timer);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	log_info("signal %d: stopping", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	if (n > 0 && msg[n - 1] == '\n')
		msg[n - 1] = '\0';
	log_debug("http: %s", msg);
}

static int
listen_on(const char *spec, int *port_out)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	char host[256];
	const char *colon = strrchr(spec, ':');
	long port;
	char *end;
	int fd, one = 1;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
		fatalx("--listen %s: expected HOST:PORT", spec);
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535)
		fatalx("--listen %s: bad port", spec);
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	memset(&ss, 0, sizeof(ss));
	if (host[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		size_t hl = strlen(host);

		if (hl < 2 || host[hl - 1] != ']')
			fatalx("--listen %s: bad IPv6 address", spec);
		host[hl - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			fatalx("--listen %s: bad IPv6 address", spec);
		sslen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (strcmp(host, "localhost") == 0)
			snprintf(host, sizeof(host), "127.0.0.1");
		if (inet_pton(AF_INET, host[0] ? host : "127.0.0.1",
		        &s4->sin_addr) != 1)
			fatalx("--listen %s: bad IPv4 address", spec);
		sslen = sizeof(*s4);
	}
	fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		fatal("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sslen) != 0)
		fatal("cannot listen on %s", spec);
	if (listen(fd, 1024) != 0)
		fatal("listen %s", spec);
	sslen = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sslen);
	*port_out = ntohs(ss.ss_family == AF_INET6
	        ? ((struct sockaddr_in6 *)&ss)->sin6_port
	        : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	/* Thousands of held streams need thousands of descriptors. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * MHD may not stop with connections suspended. It first stops accepting
 * them, so that none is suspended behind the last look. Every request that
 * has sent nothing yet is answered 503, still waiting or still sending its
 * body; one whose body comes in meanwhile too (respond_now); a stream under
 * way ends with an error line. MHD is run until the replies are out, 2 s
 * at most: stopping MHD closes its sockets.
 */
static void
shutdown_connections(struct emu *e)
{
	MHD_socket lfd = MHD_quiesce_daemon(e->mhd);
	int64_t until = mono_ns() + 2 * NS_PER_SEC;
	struct job *j;
	int busy;

	/* Closed, the port refuses new clients at once, and resets those
	 * MHD had not taken yet rather than leave them waiting. */
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	e->shutting_down = 1;
	do {
		/* Requests MHD holds but has not read yet are read first. */
		MHD_run_wait(e->mhd, 10);
		busy = 0;
		LIST_FOREACH(j, &e->jobs, link) {
			if (j->phase == JOB_RECEIVING) {
				if (!j->answered_on_socket)
					answer_on_socket(j, 503,
					    "Service Unavailable",
					    "server shutting down");
				continue;
			}
			busy = 1;
			if (!j->suspended)
				continue;
			ev_timer_stop(e->loop, &j->timer);
			if (j->phase == JOB_WAITING) {
				/* An error before any line is plain JSON,
				 * stream or not. */
				j->status = 503;
				j->streaming = 0;
				j->out_len = j->out_off = 0;
				out_append(j,
				    "{\"error\":\"server shutting down\"}", 32);
				j->phase = JOB_RESPOND;
			} else if (j->streaming && !j->out_finished) {
				/* Cut off mid-stream, Ollama's last line is
				 * an error line: without one, a client would
				 * take the answer so far for the whole. */
				out_append(j,
				    "{\"error\":\"server shutting down\"}\n",
				    33);
			}
			j->out_finished = 1;
			/* Resumed, MHD_stop_daemon takes it back even
			 * when the time is up. */
			job_resume(j);
		}
	} while (busy && mono_ns() < until);
}

/* An Ollama variable, NULL when unset or empty: Ollama reads "" as unset. */
static const char *
ollama_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

static const char usage_text[] =
    "usage: ollamax-emu [--listen HOST:PORT] [--catalog FILE] [--port-file FILE]\n"
    "                   [--parallel N] [--max-loaded N] [--max-queue N] [--vram-mb N]\n"
    "                   [--keep-alive DUR] [--context-length N] [--speed X|inf]\n"
    "                   [--share F] [--unload-ms N] [--load-mb-per-s N]\n"
    "                   [--fail-rate P] [--stall-rate P] [--stall-ms N]\n"
    "                   [--drop-rate P] [--garbage-rate P] [--seed N]\n"
    "                   [--idle-timeout S] [--max-body BYTES] [--max-connections N]\n"
    "                   [--log-level error|warn|info|debug]\n"
    "       ollamax-emu --version | -h | --help\n";

/* After the usage, on --help: each option with its range and default. */
static const char help_text[] =
    "options (the default in brackets):\n"
    "  --catalog FILE        the models [" EMU_CATALOG_DEFAULT ",\n"
    "                        else conf/emu-models.ini beside the program\n"
    "                        or one up]\n"
    "  --context-length N    num_ctx when a request sets none, 0 to 16777216\n"
    "                        [0: Ollama's for the VRAM]\n"
    "  --drop-rate P         connections closed mid-reply, 0 to 1 [0]\n"
    "  --fail-rate P         requests answered 500, 0 to 1 [0]\n"
    "  --garbage-rate P      replies with invalid JSON, 0 to 1 [0]\n"
    "  --idle-timeout S      close an idle connection, 1 to 86400 [30]\n"
    "  --keep-alive DUR      a model's when a request sets none [5m]\n"
    "  --listen HOST:PORT    port 0 is any free one [127.0.0.1:11434]\n"
    "  --load-mb-per-s N     every model's load rate, 1 to 1000000\n"
    "                        [the catalog's]\n"
    "  --log-level LEVEL     [info]\n"
    "  --max-body BYTES      413 past it, 1024 to 4294967296 [67108864]\n"
    "  --max-connections N   16 to 1048576 [4096]\n"
    "  --max-loaded N        models loaded at once, 0 to 64 [0: three]\n"
    "  --max-queue N         requests waiting for a load, 0 to 1048576\n"
    "                        [512]\n"
    "  --parallel N          requests at once on a model, 1 to 1024 [1]\n"
    "  --port-file FILE      where the port is written once listening\n"
    "  --seed N              of the fault draws, 0 to LONG_MAX [1]\n"
    "  --share F             how well requests share a model, 0 to 1 [0.7]\n"
    "  --speed X|inf         the clock's speed, 0.001 to 10000, or inf [1]\n"
    "  --stall-ms N          a stall's real ms, 0 to 3600000 [30000]\n"
    "  --stall-rate P        replies that stall, 0 to 1 [0]\n"
    "  --unload-ms N         an unload's simulated ms, 0 to 600000 [250]\n"
    "  --vram-mb N           the GPU's memory, 1 to 16777216 [4096]\n"
    "  --version             print the versions and exit\n"
    "  -h, --help            print this and exit\n"
    "OLLAMA_NUM_PARALLEL, OLLAMA_MAX_LOADED_MODELS, OLLAMA_MAX_QUEUE,\n"
    "OLLAMA_KEEP_ALIVE and OLLAMA_CONTEXT_LENGTH set what the options leave.\n";

static void
usage(int code)
{
	fputs(usage_text, code ? stderr : stdout);
	if (code == 0)
		fputs(help_text, stdout);
	exit(code);
}

static int64_t
arg_duration(const char *flag, const char *v)
{
	char err[160];
	int64_t ns;
	char *end;
	double secs = strtod(v, &end);

	/* OLLAMA_KEEP_ALIVE takes a bare number of seconds too. */
	if (end != v && *end == '\0') {
		if (!isfinite(secs) || secs * NS_PER_SEC > 9.2e18) {
			fprintf(stderr,
			    "ollamax-emu: fatal: %s %s: not a number of "
			    "seconds that fits\n",
			    flag, v);
			exit(2);
		}
		return secs < 0 ? EMU_FOREVER
		                : emu_keep_alive_clamp(
		                      (int64_t)(secs * NS_PER_SEC));
	}
	if (duration_parse(v, &ns, err, sizeof(err)) != 0) {
		fprintf(
		    stderr, "ollamax-emu: fatal: %s %s: %s\n", flag, v, err);
		exit(2);
	}
	return emu_keep_alive_clamp(ns);
}

static const char *
default_catalog(char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (access(EMU_CATALOG_DEFAULT, R_OK) == 0)
		return EMU_CATALOG_DEFAULT;
	/* Run from the build tree: the catalog sits in conf/ beside it. */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		/* Beside it (an in-tree build), or one up (build/). */
		if (slash != NULL && (size_t)(slash - exe) + 25 < len) {
			memcpy(buf, exe, (size_t)(slash - exe));
			memcpy(buf + (slash - exe), "/conf/emu-models.ini", 21);
			if (access(buf, R_OK) == 0)
				return buf;
			memcpy(
			    buf + (slash - exe), "/../conf/emu-models.ini", 24);
			if (access(buf, R_OK) == 0)
				return buf;
		}
	}
	return EMU_CATALOG_DEFAULT;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"catalog", required_argument, NULL, 'c'},
	    {"port-file", required_argument, NULL, 'P'},
	    {"parallel", required_argument, NULL, 'p'},
	    {"max-loaded", required_argument, NULL, 'L'},
	    {"max-queue", required_argument, NULL, 'q'},
	    {"vram-mb", required_argument, NULL, 'v'},
	    {"keep-alive", required_argument, NULL, 'k'},
	    {"context-length", required_argument, NULL, 'C'},
	    {"speed", required_argument, NULL, 's'},
	    {"share", required_argument, NULL, 'S'},
	    {"unload-ms", required_argument, NULL, 'u'},
	    {"load-mb-per-s", required_argument, NULL, 'R'},
	    {"fail-rate", required_argument, NULL, 'f'},
	    {"stall-rate", required_argument, NULL, 't'},
	    {"stall-ms", required_argument, NULL, 'T'},
	    {"drop-rate", required_argument, NULL, 'd'},
	    {"garbage-rate", required_argument, NULL, 'g'},
	    {"seed", required_argument, NULL, 'e'},
	    {"idle-timeout", required_argument, NULL, 'i'},
	    {"max-body", required_argument, NULL, 'b'},
	    {"max-connections", required_argument, NULL, 'm'},
	    {"log-level", required_argument, NULL, 'D'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static struct emu emu;
	struct emu *e = &emu;
	struct esched_config cfg = {0};
	const char *listen_spec = "127.0.0.1:11434", *catalog = NULL,
	           *port_file = NULL, *env;
	char catbuf[PATH_MAX], errbuf[8192], speed_text[32], why[256];
	long idle_timeout = 30, max_conn = 4096, context_length = 0;
	unsigned long long seed = 1;
	int opt, fd, port, level;
	/* Ollama's own environment sets what the flags leave, read once the
	 * flags are: --version and --help whatever it holds. */
	int parallel_given = 0, max_loaded_given = 0, max_queue_given = 0,
	    keep_alive_given = 0, context_length_given = 0;

	log_init("ollamax-emu", 0);
	cfg.vram_bytes = EMU_VRAM_MB * MB;
	e->speed = 1;
	e->share = EMU_SHARE;
	e->unload_ns = EMU_UNLOAD_MS * 1000000LL;
	e->stall_ms = 30000;
	e->max_body = 64 * MB;
	while ((opt = cliarg_getopt(
	            argc, argv, ":h", longopts, why, sizeof(why))) != -1) {
		switch (opt) {
		case 'l':
			listen_spec = optarg;
			break;
		case 'c':
			catalog = optarg;
			break;
		case 'P':
			port_file = optarg;
			break;
		case 'p':
			cfg.parallel = (int)cliarg_long(
			    "ollamax-emu", "--parallel", optarg, 1, 1024);
			parallel_given = 1;
			break;
		case 'L':
			cfg.max_loaded = (int)cliarg_long(
			    "ollamax-emu", "--max-loaded", optarg, 0, 64);
			max_loaded_given = 1;
			break;
		case 'q':
			cfg.max_queue = (int)cliarg_long(
			    "ollamax-emu", "--max-queue", optarg, 0, 1 << 20);
			max_queue_given = 1;
			break;
		case 'v':
			cfg.vram_bytes = (uint64_t)cliarg_long("ollamax-emu",
			                     "--vram-mb", optarg, 1, 1 << 24) *
			    MB;
			break;
		case 'k':
			cfg.default_keep_alive_ns =
			    arg_duration("--keep-alive", optarg);
			keep_alive_given = 1;
			break;
		case 'C':
			context_length = cliarg_long("ollamax-emu",
			    "--context-length", optarg, 0, 1 << 24);
			context_length_given = 1;
			break;
		case 's':
			if (strcmp(optarg, "inf") == 0)
				e->instant = 1;
			else
				e->speed = cliarg_double("ollamax-emu",
				    "--speed", optarg, EMU_SPEED_MIN, EMU_SPEED_MAX);
			break;
		case 'S':
			e->share = cliarg_double(
			    "ollamax-emu", "--share", optarg, 0, 1);
			break;
		case 'u':
			e->unload_ns = cliarg_long("ollamax-emu", "--unload-ms",
			                   optarg, 0, 600000) *
			    1000000LL;
			break;
		case 'R':
			cfg.load_mb_per_s_override = cliarg_double(
			    "ollamax-emu", "--load-mb-per-s", optarg, 1, 1e6);
			break;
		case 'f':
			e->fail_rate = cliarg_double(
			    "ollamax-emu", "--fail-rate", optarg, 0, 1);
			break;
		case 't':
			e->stall_rate = cliarg_double(
			    "ollamax-emu", "--stall-rate", optarg, 0, 1);
			break;
		case 'T':
			e->stall_ms = (int)cliarg_long(
			    "ollamax-emu", "--stall-ms", optarg, 0, 3600000);
			break;
		case 'd':
			e->drop_rate = cliarg_double(
			    "ollamax-emu", "--drop-rate", optarg, 0, 1);
			break;
		case 'g':
			e->garbage_rate = cliarg_double(
			    "ollamax-emu", "--garbage-rate", optarg, 0, 1);
			break;
		case 'e':
			seed = (unsigned long long)cliarg_long(
			    "ollamax-emu", "--seed", optarg, 0, LONG_MAX);
			break;
		case 'i':
			idle_timeout = cliarg_long(
			    "ollamax-emu", "--idle-timeout", optarg, 1, 86400);
			break;
		case 'b':
			e->max_body = (size_t)cliarg_long("ollamax-emu",
			    "--max-body", optarg, 1024, 1L << 32);
			break;
		case 'm':
			max_conn = cliarg_long("ollamax-emu",
			    "--max-connections", optarg, 16, 1 << 20);
			break;
		case 'D':
			if ((level = log_level_parse(optarg)) < 0) {
				fprintf(stderr,
				    "ollamax-emu: fatal: --log-level %s: expected error, warn, info or debug\n",
				    optarg);
				exit(2);
			}
			log_set_level((enum log_level)level);
			break;
		case 'V':
			printf("ollamax-emu %s (answers as Ollama %s)\n",
			    PACKAGE_VERSION, EMU_VERSION);
			return 0;
		case 'h':
			usage(0);
			break;
		default:
			fprintf(stderr, "ollamax-emu: fatal: %s\n", why);
			usage(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr,
		    "ollamax-emu: fatal: %s: not an option (it takes "
		    "options only)\n",
		    argv[optind]);
		usage(2);
	}
	if (!parallel_given) {
		/* Ollama serves one at least: 0, its old "auto", is 1. */
		cfg.parallel = (env = ollama_env("OLLAMA_NUM_PARALLEL"))
		    ? (int)cliarg_long(
		          "ollamax-emu", "OLLAMA_NUM_PARALLEL", env, 0, 1024)
		    : 1;
		if (cfg.parallel == 0)
			cfg.parallel = 1;
	}
	if (!max_loaded_given &&
	    (env = ollama_env("OLLAMA_MAX_LOADED_MODELS")) != NULL) {
		long most = cliarg_long("ollamax-emu",
		    "OLLAMA_MAX_LOADED_MODELS", env, 0, LONG_MAX);

		/* Ollama takes any number; no catalog here loads more. */
		if (most > 64)
			log_warnx("OLLAMA_MAX_LOADED_MODELS %ld: taken as 64, "
			          "the most this emulator loads",
			    most);
		cfg.max_loaded = most > 64 ? 64 : (int)most;
	}
	if (!max_queue_given)
		cfg.max_queue = (env = ollama_env("OLLAMA_MAX_QUEUE"))
		    ? (int)cliarg_long(
		          "ollamax-emu", "OLLAMA_MAX_QUEUE", env, 0, 1 << 20)
		    : EMU_MAX_QUEUE;
	if (!keep_alive_given)
		cfg.default_keep_alive_ns =
		    (env = ollama_env("OLLAMA_KEEP_ALIVE"))
		    ? arg_duration("OLLAMA_KEEP_ALIVE", env)
		    : EMU_KEEP_ALIVE_S * NS_PER_SEC;
	if (!context_length_given &&
	    (env = ollama_env("OLLAMA_CONTEXT_LENGTH")) != NULL)
		context_length = cliarg_long(
		    "ollamax-emu", "OLLAMA_CONTEXT_LENGTH", env, 0, 1 << 24);
	if (e->fail_rate + e->stall_rate + e->drop_rate + e->garbage_rate > 1) {
		fprintf(stderr,
		    "ollamax-emu: fatal: the fault rates add up to more than 1\n");
		exit(2);
	}
	if (catalog == NULL)
		catalog = default_catalog(catbuf, sizeof(catbuf));
	if (emu_catalog_load(&e->cat, catalog, errbuf, sizeof(errbuf)) != 0) {
		fprintf(stderr, "%s", errbuf);
		fprintf(
		    stderr, "ollamax-emu: fatal: bad catalog %s\n", catalog);
		exit(1);
	}
	e->default_num_ctx = context_length > 0
	    ? (int)context_length
	    : esched_default_ctx(cfg.vram_bytes);
	e->rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	e->models = calloc(e->cat.count, sizeof(*e->models));
	e->slot_busy_s = calloc((size_t)cfg.parallel, sizeof(double));
	if (e->models == NULL || e->slot_busy_s == NULL)
		fatal("out of memory");
	esched_init(&e->sched, &cfg);
	LIST_INIT(&e->jobs);

	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	fd = listen_on(listen_spec, &port);
	e->mhd = MHD_start_daemon(
	    MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0,
	    NULL, NULL, access_cb, e, MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_NOTIFY_COMPLETED, completed_cb, e,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)idle_timeout,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_conn,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
	if (e->mhd == NULL)
		fatalx("cannot start the HTTP server on %s", listen_spec);
	e->loop = EV_DEFAULT;
	e->mono_start_ns = mono_ns();
	e->wall_start_ns = wall_ns();
	ev_io_init(&e->mhd_io, mhd_io_cb,
	    MHD_get_daemon_info(e->mhd, MHD_DAEMON_INFO_EPOLL_FD)->epoll_fd,
	    EV_READ);
	e->mhd_io.data = e;
	ev_io_start(e->loop, &e->mhd_io);
	ev_init(&e->mhd_timer, mhd_timer_cb);
	e->mhd_timer.data = e;
	ev_prepare_init(&e->mhd_prepare, mhd_prepare_cb);
	e->mhd_prepare.data = e;
	ev_prepare_start(e->loop, &e->mhd_prepare);
	ev_idle_init(&e->mhd_kick, mhd_kick_cb);
	e->mhd_kick.data = e;
	ev_init(&e->sched_timer, sched_timer_cb);
	e->sched_timer.data = e;
	ev_signal_init(&e->sigint, signal_cb, SIGINT);
	ev_signal_start(e->loop, &e->sigint);
	ev_signal_init(&e->sigterm, signal_cb, SIGTERM);
	ev_signal_start(e->loop, &e->sigterm);

	if (port_file != NULL) {
		char tmp[PATH_MAX];
		FILE *fp;

		/* Written whole, then renamed: a reader never sees half. */
		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		fp = fopen(tmp, "w");
		if (fp == NULL || fprintf(fp, "%d\n", port) < 0 ||
		    fclose(fp) != 0 || rename(tmp, port_file) != 0)
			fatal("cannot write %s", port_file);
	}
	if (e->instant)
		snprintf(speed_text, sizeof(speed_text), "inf");
	else
		snprintf(speed_text, sizeof(speed_text), "%.6g", e->speed);
	log_info("listening on %s (port %d), %zu models, parallel %d, "
	         "vram %llu MB, speed %s",
	    listen_spec, port, e->cat.count, cfg.parallel,
	    (unsigned long long)(cfg.vram_bytes / MB), speed_text);
	ev_run(e->loop, 0);
	shutdown_connections(e);
	MHD_stop_daemon(e->mhd);
	/* Runners still loaded own a timer record each. */
	{
		struct esched_runner *r;

		TAILQ_FOREACH(r, &e->sched.runners, link)
			if (r->owner != NULL) {
				ev_timer_stop(e->loop,
				    &((struct runner_io *)r->owner)->timer);
				free(r->owner);
			}
	}
	esched_destroy(&e->sched);
	emu_catalog_free(&e->cat);
	free(e->models);
	free(e->slot_busy_s);
	return 0;
}
