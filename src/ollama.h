/*
 * ollama.h: the broker's client of Ollama's HTTP API. libcurl's multi
 * interface on the broker's libev loop: keep-alive connections reused, a
 * streamed reply parsed line by line as it arrives, and four timeouts
 * (connect, first byte, stall, the whole answer) so that no request
 * hangs.
 */
#ifndef OLLAMAX_OLLAMA_H
#define OLLAMAX_OLLAMA_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct ollama;

struct ollama_timeouts {
	int64_t connect_ms;
	int64_t first_byte_ms; /* a cold load counts here */
	int64_t stall_ms;      /* longest silence between two chunks */
	int64_t answer_ms;     /* a generate's whole answer after its first
	                          byte */
};

enum ollama_outcome {
	OLLAMA_OK,
	OLLAMA_NO_MODEL,    /* 404: the model is not there: try a fallback */
	OLLAMA_REFUSED,     /* another 4xx: the request itself is wrong */
	OLLAMA_UNAVAILABLE, /* 5xx, 408, 429, a timeout, a lost connection */
};

struct ollama_result {
	enum ollama_outcome outcome;
	int http_status;
	char error[256];
	char *text; /* the answer; owned by the result */
	size_t text_len;
	int64_t prompt_tokens;
	int64_t eval_tokens;
	int64_t load_ns;
	int64_t total_ns;
	char done_reason[16];
	/* The model's thinking, counted but not kept: agents take only the
	 * answer. */
	size_t thinking_len;
	/* Lines that carried text, of the answer or of the model's thinking:
	 * a stream of lines with neither is stuck. */
	uint64_t pieces;
	/* The body had a line that is not Ollama's: whoever answers is not
	 * Ollama, or not only. */
	int garbled;
};

typedef void (*ollama_done_fn)(void *arg, struct ollama_result *res);

/*
 * Whether a failed call tells of the backend, not of what it asked: no
 * status (nobody answers), 200 with an answer that stalled or broke off
 * (the connection's fault: a load's answer is one line), a gateway's 502
 * or 504, Ollama's 503 (its queue is full), a proxy's 408 or 429. A 200
 * with a line that is not Ollama's is no connection's fault: what answers
 * there would answer so for good.
 */
int ollama_backend_failed(const struct ollama_result *res);

/*
 * Told as each call ends, before its own fn: error is NULL when the
 * backend answered (whatever it said of the model or the request, and
 * Ollama's 503 of a queue full, in its words, too), else why it did not,
 * as ollama_backend_failed judges.
 */
typedef void (*ollama_heard_fn)(void *arg, const char *error);
void ollama_on_heard(struct ollama *o, ollama_heard_fn fn, void *arg);

/* keep_alive: what a call sends (milliseconds; negative keeps the model
 * loaded for good), or this to send none and leave Ollama's default. */
#define OLLAMA_KEEP_DEFAULT INT64_MIN

/* An inference: an empty prompt with keep_alive 0 unloads the model. */
struct ollama_call {
	const char *model;
	const char *system;
	const char *prompt;
	int num_ctx;        /* 0: leave Ollama's default */
	int num_predict;    /* -1: until the answer ends */
	double temperature; /* < 0: the model's default */
	int64_t keep_alive_ms; /* see OLLAMA_KEEP_DEFAULT */
};

struct ollama *ollama_new(struct ev_loop *loop, const char *base_url,
    const struct ollama_timeouts *t);
/*
 * Starts a /api/generate call; fn runs on the loop exactly once, with the
 * result (free it with ollama_result_free). Returns 0, or -1 if the call
 * could not even start (fn is then not called).
 */
int ollama_generate(struct ollama *o, const struct ollama_call *call,
    ollama_done_fn fn, void *arg);
void ollama_result_free(struct ollama_result *res);
/*
 * Ends the /api/generate call started with arg at once, closing its
 * connection (Ollama then stops generating); its fn is not called.
 * Returns 1, or 0 if no such call is in flight.
 */
int ollama_cancel(struct ollama *o, void *arg);

#define OLLAMA_PS_MAX 64
/* Room for any configured name (under 96 bytes) with ":latest": a longer
 * name is none of ours, and is left out rather than cut into one. */
#define OLLAMA_NAME_MAX 128

/* A model /api/ps says is loaded, or /api/tags says is there. */
struct ollama_ps_model {
	char name[OLLAMA_NAME_MAX];
	int64_t size_mb; /* /api/ps: weights and KV cache; /api/tags: files */
	int64_t size_vram_mb;   /* of which in VRAM */
	int64_t context_length; /* num_ctx of one request; 0: not told */
};

struct ollama_ps {
	int count;
	int truncated; /* more models than OLLAMA_PS_MAX: the rest not read */
	struct ollama_ps_model models[OLLAMA_PS_MAX];
};

/* ps is NULL when there was no answer, and error then says why. */
typedef void (*ollama_ps_fn)(
    void *arg, const struct ollama_ps *ps, const char *error);

/*
 * Asks /api/ps what is loaded; fn runs on the loop exactly once, with the
 * answer or NULL when there was none (unreachable, not JSON). Returns 0, or
 * -1 if the call could not start.
 */
int ollama_ps(struct ollama *o, ollama_ps_fn fn, void *arg);
/* Whether a model of a list matters to the one who asked for it. */
typedef int (*ollama_wanted_fn)(void *arg, const char *name);
/*
 * The same for /api/tags: the models the backend has, loaded or not, those
 * alone for which wanted returns 1. A machine may have pulled more models
 * than a list holds, and Ollama may list the ones that matter anywhere.
 */
int ollama_tags(
    struct ollama *o, ollama_wanted_fn wanted, ollama_ps_fn fn, void *arg);
/* Reads a /api/ps or /api/tags body into ps, with wanted (when not NULL)
 * choosing the models kept; -1 if it is not one. Exposed for tests. */
int ollama_parse_ps(struct ollama_ps *ps, const char *body, size_t len,
    ollama_wanted_fn wanted, void *arg);

/* What /api/show says of a model that decides its context. */
struct ollama_show {
	int64_t context_length; /* what it was trained for; 0: not told */
	int vision;             /* it reads images */
};

typedef void (*ollama_show_fn)(
    void *arg, const struct ollama_show *show, const char *error);

/* Asks /api/show about a model, as ollama_ps asks /api/ps. */
int ollama_show(
    struct ollama *o, const char *model, ollama_show_fn fn, void *arg);
/* Reads a /api/show body; -1 if it is not one. Exposed for tests. */
int ollama_parse_show(struct ollama_show *show, const char *body, size_t len);
void ollama_free(struct ollama *o);

/*
 * Feeds one NDJSON line of a /api/generate stream into res. Returns 1 when
 * the line ends the answer (done or error), 0 to go on, -1 when the line is
 * not a JSON object (res->error says so). Exposed for tests.
 */
int ollama_parse_line(struct ollama_result *res, const char *line, size_t len);

#endif
