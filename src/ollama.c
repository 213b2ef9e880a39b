/*
 * ollama.c: libcurl multi driven by libev (curl tells which sockets to
 * watch and when to time out; libev tells curl what happened), with the
 * streamed reply split into lines and each line parsed with jansson.
 */
#include "autoconf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"
#include "msg.h"
#include "ollama.h"
#include "utf8.h"

/* An answer goes to its agent in one frame. */
#define OLLAMA_ANSWER_MAX MSG_MAX_TEXT
/*
 * Bytes of lines in a row that carry no text before a stream counts as
 * stuck. Ollama sends such lines while a model opens or closes its
 * thinking, and one for each token it holds back, as the parser of a
 * model's tool calls does until the call is whole: as many as an answer's
 * worth are let through. A stream of nothing else never ends, and would
 * keep the stall timer from ever firing.
 */
#define OLLAMA_TEXTLESS_MAX OLLAMA_ANSWER_MAX
/*
 * The most a model may think before its answer: more than any model of the
 * reference fleet can hold in its context (deepseek-r1:8b's 131072 tokens
 * are about 512 KiB). Thinking does not count toward the answer, so without
 * this a model caught in a loop of thought would hold its slot for good.
 */
#define OLLAMA_THINKING_MAX (1 << 20)
/* A line longer than a whole answer and thinking is garbage. */
#define OLLAMA_LINE_MAX (16u << 20)
/* The most a /api/ps or /api/tags answer may take. */
#define LIST_MAX (1u << 20)
/* How long the end of a body may follow its done line. */
#define DONE_GRACE_MS 1000

struct ollama {
	struct ev_loop *loop;
	CURLM *multi;
	ev_timer timer;
	char url[512];
	char ps_url[512];
	char tags_url[512];
	char show_url[512];
	struct ollama_timeouts t;
	LIST_HEAD(, call) calls; /* in flight */
	ollama_heard_fn heard;
	void *heard_arg;
};

struct call {
	LIST_ENTRY(call) link;
	struct ollama *o;
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	ollama_done_fn fn;
	/* /api/ps, /api/tags, /api/show: the body is one JSON object */
	ollama_ps_fn ps_fn;
	ollama_wanted_fn wanted; /* of a list: NULL for all */
	ollama_show_fn show_fn;
	void *arg;
	struct ollama_result res;
	const char *url; /* the endpoint, for messages */
	char *line; /* the part of a line received so far */
	size_t line_len, line_cap;
	int ended; /* a done or error line arrived */
	int got_byte;
	/* Tried again, the answer would fail again: it outgrew what an
	 * agent takes, or the time it may take. */
	int overlong;
	size_t textless;   /* bytes of lines in a row without text */
	ev_timer watchdog; /* first byte, then the longest silence */
	ev_timer deadline; /* a generate's whole answer, from its first byte */
	char curl_said[CURL_ERROR_SIZE]; /* curl's own words of a failure */
};

static int
one_object(const struct call *c)
{
	return c->ps_fn != NULL || c->show_fn != NULL;
}

/*
 * A generate's first byte waits for its load. A list or a model's details
 * wait for no load, but not always for nothing: Ollama reads /api/tags
 * and /api/show from disk, and holds /api/ps while a runner exits. Once
 * connected, that is a silence like any other.
 */
static int64_t
first_byte_ms(const struct call *c)
{
	return one_object(c) ? c->o->t.connect_ms + c->o->t.stall_ms
	                     : c->o->t.first_byte_ms;
}

struct sock {
	ev_io io;
	struct ollama *o;
	curl_socket_t fd;
};

/* ------------------------------------------------------------------ */
/* Parsing                                                            */
/* ------------------------------------------------------------------ */

/* NUL bytes (JSON's \u0000) are dropped: agents take answers as C
 * strings. */
static void
append_text(struct ollama_result *res, const char *s, size_t n)
{
	char *t = realloc(res->text, res->text_len + n + 1);

	if (t == NULL)
		fatal("out of memory");
	for (size_t i = 0; i < n; i++)
		if (s[i] != '\0')
			t[res->text_len++] = s[i];
	t[res->text_len] = '\0';
	res->text = t;
}

/*
 * A count or duration of the done line: what is not a whole number in
 * range is none. Agents and frames take counts as 32-bit numbers, and a
 * backend's nonsense must not cost them the answer.
 */
/* A whole number, given as an integer or a real (see decode); 0 if not. */
static int64_t
whole(const json_t *v)
{
	double d;

	if (json_is_integer(v))
		return json_integer_value(v);
	if (!json_is_real(v))
		return 0;
	d = json_real_value(v);
	return d == floor(d) && fabs(d) < 9.2e18 ? (int64_t)d : 0;
}

/* A size or a context of a list: a negative one is none told. */
static int64_t
told(const json_t *v)
{
	int64_t n = whole(v);

	return n > 0 ? n : 0;
}

/*
 * JSON from the backend. An integer past 64 bits makes jansson refuse
 * the whole text: read again with integers as reals, that one number is
 * none (see whole) and the rest stands.
 */
static json_t *
decode(const char *text, size_t len, size_t flags, json_error_t *e)
{
	json_error_t again;
	json_t *o = json_loadb(text, len, flags, e);

	return o != NULL
	    ? o
	    : json_loadb(text, len, flags | JSON_DECODE_INT_AS_REAL, &again);
}

static int64_t
count_of(json_t *o, const char *key, int64_t max)
{
	int64_t n = whole(json_object_get(o, key));

	return n >= 0 && n <= max ? n : 0;
}

/*
 * The start of what a backend sent, fit to quote in a message that goes
 * to agents and JSON: printable ASCII, the rest as '?'.
 */
static const char *
printable(char *out, size_t size, const char *from, size_t len)
{
	size_t n = len < size - 1 ? len : size - 1;

	for (size_t i = 0; i < n; i++)
		out[i] = from[i] >= 0x20 && from[i] < 0x7f ? from[i] : '?';
	out[n] = '\0';
	return out;
}

/* Nothing but blanks (or nothing)? */
static int
blank(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			return 0;
	return 1;
}

/*
 * An error as it goes to the log and to agents: the backend's words with
 * no control character (a newline would forge a log line, an escape
 * paint the terminal), and no character cut short at its end.
 */
static void
tidy_error(char *error)
{
	utf8_shown(error, error, strlen(error) + 1);
}

int
ollama_parse_line(struct ollama_result *res, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *o, *v, *thought;
	int end = 0;
	size_t text_before = res->text_len;

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len == 0)
		return 0;
	o = decode(line, len, JSON_ALLOW_NUL, &jerr);
	if (o == NULL || !json_is_object(o)) {
		char shown[64];

		/* JSON's own reason tells a bad escape (a lone surrogate) or
		 * a cut line from a page of another kind. */
		snprintf(res->error, sizeof(res->error),
		    "backend sent a line that is not a JSON object: %s (%.120s)",
		    printable(shown, sizeof(shown), line, len),
		    o != NULL ? "valid JSON of another kind" : jerr.text);
		json_decref(o);
		return -1;
	}
	v = json_object_get(o, "error");
	/* A proxy's error may be an object with its message inside. */
	if (json_is_object(v) && json_object_get(v, "message") != NULL)
		v = json_object_get(v, "message");
	/* "error": null is no error: the rest of the line is read. */
	if (v != NULL && !json_is_null(v)) {
		/* An error without words must still read as one. */
		snprintf(res->error, sizeof(res->error), "%s",
		    !json_is_string(v)
		        ? "backend sent an error that is not text"
		        : json_string_length(v) == 0
		        ? "backend sent an error without a message"
		        : json_string_value(v));
		tidy_error(res->error);
		json_decref(o);
		return 1;
	}
	v = json_object_get(o, "response");
	if (v != NULL && !json_is_string(v)) {
		json_decref(o);
		snprintf(res->error, sizeof(res->error),
		    "backend sent a \"response\" that is not text");
		return -1;
	}
	if (v != NULL)
		append_text(res, json_string_value(v), json_string_length(v));
	thought = json_object_get(o, "thinking");
	if (json_is_string(thought))
		res->thinking_len += json_string_length(thought);
	/* Text of NULs alone is dropped: counted as progress, a stream of
	 * it would pass for an answer under way for good, neither growing
	 * the answer toward its bound nor counted as lines without text. */
	if (res->text_len > text_before ||
	    (json_is_string(thought) && json_string_length(thought) > 0))
		res->pieces++;
	v = json_object_get(o, "done");
	if (v != NULL && !json_is_boolean(v)) {
		json_decref(o);
		snprintf(res->error, sizeof(res->error),
		    "backend sent a \"done\" that is not true or false");
		return -1;
	}
	if (json_is_true(v)) {
		end = 1;
		res->prompt_tokens = count_of(o, "prompt_eval_count", INT32_MAX);
		res->eval_tokens = count_of(o, "eval_count", INT32_MAX);
		res->load_ns = count_of(o, "load_duration", INT64_MAX);
		res->total_ns = count_of(o, "total_duration", INT64_MAX);
		v = json_object_get(o, "done_reason");
		if (json_is_string(v))
			snprintf(res->done_reason, sizeof(res->done_reason),
			    "%s", json_string_value(v));
	}
	json_decref(o);
	return end;
}

static void
too_long(struct call *c)
{
	snprintf(c->res.error, sizeof(c->res.error),
	    "the answer passed %d bytes, the most an agent takes: lower its "
	    "num_predict",
	    OLLAMA_ANSWER_MAX);
	c->overlong = 1;
}

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct call *c = arg;
	size_t len = size * n;
	uint64_t pieces;
	int rc;

	/* The first byte turns the watchdog to counting silence. Then only
	 * a whole line restarts it: bytes that never make one are no
	 * progress. A list is one object: from its first byte, it has
	 * stall_ms in all. */
	if (!c->got_byte) {
		c->got_byte = 1;
		c->watchdog.repeat = (double)c->o->t.stall_ms / 1000.0;
		ev_timer_again(c->o->loop, &c->watchdog);
		if (!one_object(c))
			ev_timer_start(c->o->loop, &c->deadline);
	}
	if (one_object(c)) {
		/* One object, read whole; a list of models, or one model's
		 * details, is small. */
		if (c->line_len + len + 1 > LIST_MAX) {
			snprintf(c->res.error, sizeof(c->res.error),
			    "the backend's answer passed %u bytes, more than "
			    "any list of models or model's details take",
			    LIST_MAX);
			return 0;
		}
		if (c->line_len + len + 1 > c->line_cap) {
			c->line_cap = c->line_len + len + 1024;
			c->line = realloc(c->line, c->line_cap);
			if (c->line == NULL)
				fatal("out of memory");
		}
		memcpy(c->line + c->line_len, p, len);
		c->line_len += len;
		return len;
	}
	for (size_t i = 0; i < len; i++) {
		/* What follows the line that ended the answer is not read: a
		 * long tail would otherwise count as a line too long, and
		 * cost an answer already whole. */
		if (c->ended)
			return len;
		if (p[i] != '\n') {
			if (c->line_len + 1 >= c->line_cap) {
				c->line_cap =
				    c->line_cap ? c->line_cap * 2 : 1024;
				if (c->line_cap > OLLAMA_LINE_MAX) {
					snprintf(c->res.error,
					    sizeof(c->res.error),
					    "the backend sent a line longer "
					    "than %u bytes",
					    OLLAMA_LINE_MAX);
					return 0;
				}
				c->line = realloc(c->line, c->line_cap);
				if (c->line == NULL)
					fatal("out of memory");
			}
			c->line[c->line_len++] = p[i];
			continue;
		}
		/* A line of blanks says nothing: no progress, as blanks
		 * sent one at a time are none. */
		if (blank(c->line, c->line_len)) {
			c->line_len = 0;
			continue;
		}
		pieces = c->res.pieces;
		rc = ollama_parse_line(&c->res, c->line, c->line_len);
		if (rc != 0)
			c->ended = rc;
		/* After the done line, or an error line, only the body's
		 * end is due: a backend that holds it back costs the slot no
		 * more than DONE_GRACE_MS. */
		if (rc == 1 && c->o->t.stall_ms > DONE_GRACE_MS)
			c->watchdog.repeat = DONE_GRACE_MS / 1000.0;
		/* What follows a bad line is not to be trusted:
		 * waiting for it would only waste the slot. */
		if (rc < 0)
			return 0;
		ev_timer_again(c->o->loop, &c->watchdog);
		c->textless = rc != 0 || c->res.pieces != pieces
		    ? 0
		    : c->textless + c->line_len + 1;
		if (c->textless > OLLAMA_TEXTLESS_MAX) {
			snprintf(c->res.error, sizeof(c->res.error),
			    "the backend sent more than %d bytes of "
			    "lines in a row without text",
			    OLLAMA_TEXTLESS_MAX);
			return 0;
		}
		c->line_len = 0;
		if (c->res.text_len > OLLAMA_ANSWER_MAX) {
			/* Agents take no more; the rest would be generated
			 * for nothing. */
			too_long(c);
			return 0;
		}
		if (c->res.thinking_len > OLLAMA_THINKING_MAX) {
			snprintf(c->res.error, sizeof(c->res.error),
			    "the model thought for more than %d bytes without "
			    "answering: lower its num_predict",
			    OLLAMA_THINKING_MAX);
			c->overlong = 1;
			return 0;
		}
	}
	return len;
}

/* ------------------------------------------------------------------ */
/* Completion                                                         */
/* ------------------------------------------------------------------ */

/* Everything of a finished call but the call itself and its result. */
static void
call_release(struct call *c)
{
	struct ollama *o = c->o;

	curl_multi_remove_handle(o->multi, c->easy);
	curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->headers);
	ev_timer_stop(o->loop, &c->watchdog);
	ev_timer_stop(o->loop, &c->deadline);
	free(c->body);
	free(c->line);
	c->body = c->line = NULL;
	LIST_REMOVE(c, link);
}

int
ollama_parse_ps(struct ollama_ps *ps, const char *body, size_t len,
    ollama_wanted_fn wanted, void *arg)
{
	json_error_t e;
	json_t *o = decode(body ? body : "", len, 0, &e), *list, *m;
	size_t i;

	memset(ps, 0, sizeof(*ps));
	list = json_object_get(o, "models");
	if (!json_is_array(list)) {
		json_decref(o);
		return -1;
	}
	json_array_foreach(list, i, m) {
		const char *name =
		    json_string_value(json_object_get(m, "name"));

		if (name == NULL || strlen(name) >= OLLAMA_NAME_MAX ||
		    (wanted != NULL && !wanted(arg, name)))
			continue;
		if (ps->count == OLLAMA_PS_MAX) {
			ps->truncated = 1;
			continue;
		}
		snprintf(ps->models[ps->count].name, sizeof(ps->models[0].name),
		    "%s", name);
		ps->models[ps->count].size_mb =
		    told(json_object_get(m, "size")) >> 20;
		ps->models[ps->count].size_vram_mb =
		    told(json_object_get(m, "size_vram")) >> 20;
		ps->models[ps->count].context_length =
		    told(json_object_get(m, "context_length"));
		ps->count++;
	}
	json_decref(o);
	return 0;
}

int
ollama_parse_show(struct ollama_show *show, const char *body, size_t len)
{
	json_error_t e;
	json_t *o = decode(body ? body : "", len, 0, &e), *info, *caps, *cap;
	const char *arch;
	size_t i;

	memset(show, 0, sizeof(*show));
	if (!json_is_object(o)) {
		json_decref(o);
		return -1;
	}
	/* Ollama keys the trained context by the model's architecture. */
	info = json_object_get(o, "model_info");
	arch = json_string_value(json_object_get(info, "general.architecture"));
	if (arch != NULL && strlen(arch) < 64) {
		char key[96];

		snprintf(key, sizeof(key), "%s.context_length", arch);
		show->context_length = whole(json_object_get(info, key));
		if (show->context_length < 0)
			show->context_length = 0;
	}
	caps = json_object_get(o, "capabilities");
	json_array_foreach(caps, i, cap) {
		if (json_is_string(cap) &&
		    strcmp(json_string_value(cap), "vision") == 0)
			show->vision = 1;
	}
	json_decref(o);
	return 0;
}

/* What went wrong in the transfer: curl's words name the host, port and
 * timeout, where its error code's text does not. */
static const char *
transfer_failure(const struct call *c, CURLcode cc)
{
	return c->curl_said[0] != '\0' ? c->curl_said : curl_easy_strerror(cc);
}

/*
 * ", redirected to URL" for a redirect the backend answered with (not
 * followed: Ollama never redirects, so the url is not Ollama's), else "".
 */
static void
redirect_note(const struct call *c, long status, char *out, size_t len)
{
	char *to = NULL;

	out[0] = '\0';
	if (status >= 300 && status < 400 &&
	    curl_easy_getinfo(c->easy, CURLINFO_REDIRECT_URL, &to) ==
	        CURLE_OK &&
	    to != NULL)
		snprintf(out, len,
		    ", redirected to %.150s: [backend] url is not where Ollama "
		    "answers",
		    to);
}

/* A list or a model's details refused: the status, and Ollama's own
 * words when its body has them. */
static void
list_refusal(const struct call *c, long status, const char *redirect, char *why,
    size_t size)
{
	struct ollama_result said = {0};

	if (ollama_parse_line(&said, c->line, c->line_len) == 1 &&
	    said.error[0] != '\0')
		snprintf(why, size, "%.300s: HTTP %ld: %.300s%s", c->url,
		    status, said.error, redirect);
	else
		snprintf(
		    why, size, "%.300s: HTTP %ld%s", c->url, status, redirect);
	ollama_result_free(&said);
}

/* See ollama_backend_failed; garbled: a body of 200 that is not
 * Ollama's. */
static int
backend_at_fault(long status, int garbled)
{
	return status == 0 || (status == 200 && !garbled) || status == 408 ||
	    status == 429 || status == 502 || status == 503 || status == 504;
}

int
ollama_backend_failed(const struct ollama_result *res)
{
	return res->outcome == OLLAMA_UNAVAILABLE &&
	    backend_at_fault(res->http_status, res->garbled);
}

void
ollama_on_heard(struct ollama *o, ollama_heard_fn fn, void *arg)
{
	o->heard = fn;
	o->heard_arg = arg;
}

static void
heard(const struct ollama *o, const char *error)
{
	if (o->heard != NULL)
		o->heard(o->heard_arg, error);
}

static void
call_finish(struct call *c, CURLcode cc)
{
	struct ollama_result *res = &c->res;
	long status = 0;

	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	res->http_status = (int)status;
	if (one_object(c)) {
		struct ollama_ps ps;
		struct ollama_show show;
		char why[1024], redirect[320];
		int away,
		    ok = cc == CURLE_OK && status == 200 &&
		    (c->ps_fn != NULL ? ollama_parse_ps(&ps, c->line,
		                            c->line_len, c->wanted, c->arg)
		                      : ollama_parse_show(
		                            &show, c->line, c->line_len)) == 0;

		redirect_note(c, status, redirect, sizeof(redirect));
		if (cc != CURLE_OK)
			snprintf(why, sizeof(why), "%.300s: %.300s", c->url,
			    c->res.error[0] ? c->res.error
			                    : transfer_failure(c, cc));
		else if (status != 200)
			list_refusal(c, status, redirect, why, sizeof(why));
		else
			snprintf(why, sizeof(why), "%.300s: not %s", c->url,
			    c->ps_fn != NULL ? "a list of models"
			                     : "a model's details");
		call_release(c);
		/* A whole body of 200 that is none is not Ollama's. */
		away = !ok &&
		    backend_at_fault(status, cc == CURLE_OK && status == 200);
		heard(c->o, away ? why : NULL);
		if (c->ps_fn != NULL)
			c->ps_fn(c->arg, ok ? &ps : NULL, ok ? NULL : why);
		else
			c->show_fn(c->arg, ok ? &show : NULL, ok ? NULL : why);
		free(c);
		return;
	}
	/* A last line without its newline is a line all the same, when the
	 * body ended as it should: cut short, it is a fragment, and the
	 * reason it was cut says more. */
	if (c->line_len > 0 && !c->ended && cc == CURLE_OK &&
	    res->error[0] == '\0')
		c->ended = ollama_parse_line(res, c->line, c->line_len);
	res->garbled = c->ended < 0;
	if (res->text_len > OLLAMA_ANSWER_MAX)
		too_long(c);
	if (c->overlong) {
		res->outcome = OLLAMA_REFUSED;
	} else if (status == 200 && c->ended == 1 && res->error[0] == '\0') {
		/* The done line came: a body that then stalls or breaks off
		 * takes nothing from the answer. */
		res->outcome = OLLAMA_OK;
	} else if (status >= 300 && status < 400) {
		/* A url to mend, whatever came after the headers: Ollama
		 * never redirects. */
		res->outcome = OLLAMA_REFUSED;
	} else if (status == 404 && c->ended == 1) {
		/* Ollama's "model not found" is a JSON error, whole even if
		 * the connection broke after it; a bare 404 is a URL that is
		 * no Ollama API. */
		res->outcome = OLLAMA_NO_MODEL;
	} else if (cc != CURLE_OK && cc != CURLE_WRITE_ERROR) {
		res->outcome = OLLAMA_UNAVAILABLE;
		if (res->error[0] == '\0')
			snprintf(res->error, sizeof(res->error),
			    "%.120s: %.120s", c->url, transfer_failure(c, cc));
	} else if (status >= 400 && status < 500 && status != 499 &&
	    status != 408 && status != 429) {
		/* Final, but for a request that took too long or came too
		 * soon for a proxy in front of Ollama: those are tried
		 * again. */
		res->outcome = OLLAMA_REFUSED;
	} else if (status != 200) {
		res->outcome = OLLAMA_UNAVAILABLE;
	} else if (c->ended != 1 || res->error[0] != '\0') {
		/* 200, then an error line, garbage, or an early end. */
		res->outcome = OLLAMA_UNAVAILABLE;
		if (res->error[0] == '\0')
			snprintf(res->error, sizeof(res->error),
			    "the answer ended before it was done");
	} else {
		res->outcome = OLLAMA_OK;
	}
	if (res->outcome != OLLAMA_OK && status != 200 && status != 0) {
		/* The status first: the body of an error page is only
		 * its detail. */
		char detail[sizeof(res->error)], redirect[320];

		snprintf(detail, sizeof(detail), "%s", res->error);
		redirect_note(c, status, redirect, sizeof(redirect));
		/* A redirect's page says nothing the target does not. */
		if (redirect[0] != '\0')
			snprintf(res->error, sizeof(res->error),
			    "HTTP %ld%.230s", status, redirect);
		else
			snprintf(res->error, sizeof(res->error),
			    "HTTP %ld%s%.200s", status, detail[0] ? ": " : "",
			    detail);
		tidy_error(res->error);
	}
	call_release(c);
	/* Ollama's 503, its queue full, comes with its words: the backend
	 * answered, busy. A gateway's 503, a page, tells of a backend it
	 * cannot reach. */
	heard(c->o,
	    ollama_backend_failed(res) && !(status == 503 && c->ended == 1)
	        ? res->error
	        : NULL);
	c->fn(c->arg, res);
	free(c);
}

static void
check_done(struct ollama *o)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(o->multi, &left)) != NULL) {
		struct call *c;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(
		    m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		call_finish(c, m->data.result);
	}
}

static void
watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct call *c = w->data;

	(void)loop;
	(void)revents;
	/* An error line that came first says more than the silence after
	 * it, and a done line leaves nothing to miss. */
	if (c->res.error[0] == '\0' && c->ended != 1) {
		/* A list has stall_ms in all from its first byte, however
		 * its bytes trickle in. */
		if (c->got_byte && one_object(c))
			snprintf(c->res.error, sizeof(c->res.error),
			    "the backend's answer was not whole %lld ms after "
			    "its first byte",
			    (long long)c->o->t.stall_ms);
		else if (c->got_byte)
			snprintf(c->res.error, sizeof(c->res.error),
			    "the backend's stream stalled for %lld ms",
			    (long long)c->o->t.stall_ms);
		else
			snprintf(c->res.error, sizeof(c->res.error),
			    "no answer from the backend within %lld ms (%s)",
			    (long long)first_byte_ms(c),
			    one_object(c) ? "connect_timeout and stall_timeout"
			                  : "first_byte_timeout");
	}
	call_finish(c, CURLE_OPERATION_TIMEDOUT);
}

/*
 * A token just inside the stall timeout each time would hold the slot
 * until the answer reaches what an agent takes, for days: a model caught
 * in a loop does that. Tried again, it would loop again.
 */
static void
deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct call *c = w->data;

	(void)loop;
	(void)revents;
	/* A done or error line came: only the body's end is due, in its
	 * grace. */
	if (c->ended != 0)
		return;
	snprintf(c->res.error, sizeof(c->res.error),
	    "the answer was not whole %lld ms after its first byte: raise "
	    "[backend] answer_timeout, or lower the agent's num_predict",
	    (long long)c->o->t.answer_ms);
	c->overlong = 1;
	call_finish(c, CURLE_OPERATION_TIMEDOUT);
}

/* ------------------------------------------------------------------ */
/* libcurl <-> libev                                                  */
/* ------------------------------------------------------------------ */

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sock *s = (struct sock *)w;
	struct ollama *o = s->o; /* curl may free s while it acts */
	int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) |
	    (revents & EV_WRITE ? CURL_CSELECT_OUT : 0),
	    running;

	(void)loop;
	curl_multi_socket_action(o->multi, s->fd, action, &running);
	check_done(o);
}

static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct ollama *o = userp;
	struct sock *s = sockp;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			ev_io_stop(o->loop, &s->io);
			free(s);
		}
		return 0;
	}
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			fatal("out of memory");
		s->o = o;
		s->fd = fd;
		curl_multi_assign(o->multi, fd, s);
	} else {
		ev_io_stop(o->loop, &s->io);
	}
	ev_io_init(&s->io, io_cb, fd,
	    (what & CURL_POLL_IN ? EV_READ : 0) |
	        (what & CURL_POLL_OUT ? EV_WRITE : 0));
	ev_io_start(o->loop, &s->io);
	return 0;
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ollama *o = w->data;
	int running;

	(void)loop;
	(void)revents;
	curl_multi_socket_action(o->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(o);
}

static int
multi_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct ollama *o = userp;

	(void)multi;
	ev_timer_stop(o->loop, &o->timer);
	if (timeout_ms >= 0) {
		ev_timer_set(&o->timer, (double)timeout_ms / 1000.0, 0);
		ev_timer_start(o->loop, &o->timer);
	}
	return 0;
}

/* ------------------------------------------------------------------ */

struct ollama *
ollama_new(
    struct ev_loop *loop, const char *base_url, const struct ollama_timeouts *t)
{
	struct ollama *o = calloc(1, sizeof(*o));
	size_t n = strlen(base_url);

	if (o == NULL)
		fatal("out of memory");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	o->loop = loop;
	o->t = *t;
	while (n > 0 && base_url[n - 1] == '/')
		n--;
	snprintf(o->url, sizeof(o->url), "%.*s/api/generate", (int)n, base_url);
	snprintf(o->ps_url, sizeof(o->ps_url), "%.*s/api/ps", (int)n, base_url);
	snprintf(o->tags_url, sizeof(o->tags_url), "%.*s/api/tags", (int)n,
	    base_url);
	snprintf(o->show_url, sizeof(o->show_url), "%.*s/api/show", (int)n,
	    base_url);
	o->multi = curl_multi_init();
	curl_multi_setopt(o->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(o->multi, CURLMOPT_SOCKETDATA, o);
	curl_multi_setopt(o->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
	curl_multi_setopt(o->multi, CURLMOPT_TIMERDATA, o);
	/* Connections stay open between requests (Ollama keeps them alive). */
	curl_multi_setopt(o->multi, CURLMOPT_MAXCONNECTS, 16L);
	ev_init(&o->timer, timer_cb);
	o->timer.data = o;
	LIST_INIT(&o->calls);
	return o;
}

static void call_start(struct call *c, const char *url);

int
ollama_cancel(struct ollama *o, void *arg)
{
	struct call *c;

	LIST_FOREACH(c, &o->calls, link)
		if (c->fn != NULL && c->arg == arg) {
			call_release(c);
			ollama_result_free(&c->res);
			free(c);
			return 1;
		}
	return 0;
}

/* A call of o's, for arg's caller; what it does is set after. */
static struct call *
new_call(struct ollama *o, void *arg)
{
	struct call *c = calloc(1, sizeof(*c));

	if (c == NULL)
		fatal("out of memory");
	c->o = o;
	c->arg = arg;
	return c;
}

/* Posts req (taken) to url as the call's body; -1, the call freed, if it
 * cannot start. */
static int
post_json(struct call *c, json_t *req, const char *url)
{
	c->body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	c->easy = c->body != NULL ? curl_easy_init() : NULL;
	if (c->easy == NULL) {
		free(c->body);
		free(c);
		return -1;
	}
	c->headers = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
	call_start(c, url);
	return 0;
}

int
ollama_generate(struct ollama *o, const struct ollama_call *call,
    ollama_done_fn fn, void *arg)
{
	struct call *c = new_call(o, arg);
	json_t *req, *opts = json_object();

	c->fn = fn;
	if (call->num_ctx > 0)
		json_object_set_new(
		    opts, "num_ctx", json_integer(call->num_ctx));
	if (call->num_predict >= 0)
		json_object_set_new(
		    opts, "num_predict", json_integer(call->num_predict));
	if (call->temperature >= 0)
		json_object_set_new(
		    opts, "temperature", json_real(call->temperature));
	req = json_pack("{s:s,s:s,s:b,s:o}", "model", call->model, "prompt",
	    call->prompt ? call->prompt : "", "stream", 1, "options", opts);
	if (call->system && *call->system)
		json_object_set_new(req, "system", json_string(call->system));
	/* A number is seconds to Ollama, a fraction kept. */
	if (call->keep_alive_ms != OLLAMA_KEEP_DEFAULT)
		json_object_set_new(req, "keep_alive",
		    call->keep_alive_ms % 1000 == 0
		        ? json_integer(call->keep_alive_ms / 1000)
		        : json_real((double)call->keep_alive_ms / 1000));
	return post_json(c, req, o->url);
}

/* Hands a call with its easy handle to the multi, watchdog running. */
static void
call_start(struct call *c, const char *url)
{
	struct ollama *o = c->o;

	c->url = url;
	curl_easy_setopt(c->easy, CURLOPT_URL, url);
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
	curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->curl_said);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(
	    c->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)o->t.connect_ms);
	/* A cold load sends nothing for seconds: a generate's first byte
	 * may take first_byte_ms; after it, stall_ms of silence ends the
	 * call. */
	ev_timer_init(
	    &c->watchdog, watchdog_cb, (double)first_byte_ms(c) / 1000.0, 0);
	c->watchdog.data = c;
	ev_timer_start(o->loop, &c->watchdog);
	ev_timer_init(
	    &c->deadline, deadline_cb, (double)o->t.answer_ms / 1000.0, 0);
	c->deadline.data = c;
	LIST_INSERT_HEAD(&o->calls, c, link);
	curl_multi_add_handle(o->multi, c->easy);
}

static int
list_call(struct ollama *o, const char *url, ollama_wanted_fn wanted,
    ollama_ps_fn fn, void *arg)
{
	struct call *c = new_call(o, arg);

	c->ps_fn = fn;
	c->wanted = wanted;
	c->easy = curl_easy_init();
	if (c->easy == NULL) {
		free(c);
		return -1;
	}
	call_start(c, url);
	return 0;
}

int
ollama_ps(struct ollama *o, ollama_ps_fn fn, void *arg)
{
	return list_call(o, o->ps_url, NULL, fn, arg);
}

int
ollama_tags(
    struct ollama *o, ollama_wanted_fn wanted, ollama_ps_fn fn, void *arg)
{
	return list_call(o, o->tags_url, wanted, fn, arg);
}

int
ollama_show(struct ollama *o, const char *model, ollama_show_fn fn, void *arg)
{
	struct call *c = new_call(o, arg);

	c->show_fn = fn;
	return post_json(c, json_pack("{s:s}", "model", model), o->show_url);
}

void
ollama_result_free(struct ollama_result *res)
{
	free(res->text);
	res->text = NULL;
}

void
ollama_free(struct ollama *o)
{
	struct call *c;

	/* At exit nobody waits for what is still in flight. */
	while ((c = LIST_FIRST(&o->calls)) != NULL) {
		call_release(c);
		ollama_result_free(&c->res);
		free(c);
	}
	ev_timer_stop(o->loop, &o->timer);
	curl_multi_cleanup(o->multi);
	free(o);
}
