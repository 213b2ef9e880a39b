/*
 * api.c: Ollama's request bodies, parsed and checked. Type errors read as
 * Go's encoding/json writes them, because clients match on those texts.
 */
#include "autoconf.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "duration.h"
#include "emu.h"
#include "utf8.h"

static int
hex4(const char *s, size_t len, size_t at, unsigned *out)
{
	unsigned v = 0;

	if (at + 4 > len)
		return -1;
	for (size_t i = at; i < at + 4; i++) {
		int c = (unsigned char)s[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			d = (c | 0x20) - 'a' + 10;
		else
			return -1;
		v = v << 4 | (unsigned)d;
	}
	*out = v;
	return 0;
}

/*
 * Go reads an escaped UTF-16 surrogate that has no partner, in a string of
 * the body, as U+FFFD; jansson refuses it. Counts those of in (len bytes),
 * and when out is not NULL (a copy of in), writes \ufffd over each: both
 * escapes are 6 bytes.
 */
static size_t
lone_surrogates(const char *in, size_t len, char *out)
{
	size_t n = 0;
	int in_string = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned hi, lo;

		if (in[i] == '"') {
			in_string = !in_string;
			continue;
		}
		if (!in_string || in[i] != '\\')
			continue;
		if (i + 1 < len && in[i + 1] != 'u') {
			i++;
			continue;
		}
		if (hex4(in, len, i + 2, &hi) != 0)
			continue;
		if (hi >= 0xd800 && hi <= 0xdbff && i + 11 < len &&
		    in[i + 6] == '\\' && in[i + 7] == 'u' &&
		    hex4(in, len, i + 8, &lo) == 0 && lo >= 0xdc00 &&
		    lo <= 0xdfff) {
			i += 11;
			continue;
		}
		if (hi >= 0xd800 && hi <= 0xdfff) {
			n++;
			if (out != NULL)
				memcpy(out + i, "\\ufffd", 6);
		}
		i += 5;
	}
	return n;
}

int64_t
emu_keep_alive_clamp(int64_t ns)
{
	return ns > EMU_KEEP_ALIVE_MAX_NS ? EMU_FOREVER : ns;
}

int
emu_keep_alive_from_json(
    const json_t *v, int *present, int64_t *out_ns, char *err, size_t errlen)
{
	*present = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_number(v)) {
		/* Ollama's time.Duration(t * float64(time.Second)): the
		 * fraction kept (0.9 is 900 ms), never an error; any negative
		 * is forever, and so here is what would overflow its int64. */
		double given = json_number_value(v);

		*out_ns =
		    given < 0 || given * 1e9 > (double)EMU_KEEP_ALIVE_MAX_NS
		    ? EMU_FOREVER
		    : emu_keep_alive_clamp((int64_t)(given * 1e9));
		*present = 1;
		return 0;
	}
	if (json_is_string(v)) {
		if (strlen(json_string_value(v)) != json_string_length(v)) {
			snprintf(err, errlen,
			    "keep_alive: a NUL character (\\u0000) in the "
			    "duration is not taken");
			return -1;
		}
		if (duration_parse(json_string_value(v), out_ns, err, errlen) !=
		    0)
			return -1;
		*out_ns = emu_keep_alive_clamp(*out_ns);
		*present = 1;
		return 0;
	}
	snprintf(err, errlen, "Unsupported type: '%s'",
	    json_is_boolean(v)     ? "bool"
	        : json_is_array(v) ? "[]interface {}"
	                           : "map[string]interface {}");
	return -1;
}

static const char *const kind_struct[] = {
    [API_GENERATE] = "GenerateRequest",
    [API_CHAT] = "ChatRequest",
    [API_EMBED] = "EmbedRequest",
    [API_EMBEDDINGS] = "EmbeddingRequest",
    [API_SHOW] = "ShowRequest",
    [API_DELETE] = "DeleteRequest",
};

static const char *
json_kind_word(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "bool";
	case JSON_NULL:
		return "null";
	}
	return "value";
}

static int
type_error(struct api_error *err, enum api_kind kind, const char *field,
    const json_t *v, const char *go_type)
{
	err->status = 400;
	snprintf(err->message, sizeof(err->message),
	    "json: cannot unmarshal %s into Go struct field %s.%s of type %s",
	    json_kind_word(v), kind_struct[kind], field, go_type);
	return -1;
}

static int
fail(struct api_error *err, int status, const char *fmt, const char *arg)
{
	err->status = status;
	snprintf(err->message, sizeof(err->message), fmt, arg);
	return -1;
}

/*
 * A string field: absent and null leave *out alone (Go's zero value).
 * `path` names the field in messages ("messages.content").
 */
static int
get_string_at(json_t *obj, enum api_kind kind, const char *key,
    const char *path, const char **out, struct api_error *err)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return type_error(err, kind, path, v, "string");
	*out = json_string_value(v);
	return 0;
}

static int
get_string(json_t *root, enum api_kind kind, const char *field,
    const char **out, struct api_error *err)
{
	return get_string_at(root, kind, field, field, out, err);
}

static int
get_bool(json_t *root, enum api_kind kind, const char *field, int *out,
    struct api_error *err)
{
	json_t *v = json_object_get(root, field);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return type_error(err, kind, field, v, "bool");
	*out = json_is_true(v);
	return 0;
}

enum option_type { OPT_INT, OPT_FLOAT, OPT_BOOL, OPT_STRINGS };

static const struct {
	const char *name;
	enum option_type type;
} known_options[] = {
    {"num_ctx", OPT_INT},
    {"num_batch", OPT_INT},
    {"num_gpu", OPT_INT},
    {"main_gpu", OPT_INT},
    {"use_mmap", OPT_BOOL},
    {"num_thread", OPT_INT},
    {"draft_num_predict", OPT_INT},
    {"num_keep", OPT_INT},
    {"seed", OPT_INT},
    {"num_predict", OPT_INT},
    {"top_k", OPT_INT},
    {"top_p", OPT_FLOAT},
    {"min_p", OPT_FLOAT},
    {"typical_p", OPT_FLOAT},
    {"repeat_last_n", OPT_INT},
    {"temperature", OPT_FLOAT},
    {"repeat_penalty", OPT_FLOAT},
    {"presence_penalty", OPT_FLOAT},
    {"frequency_penalty", OPT_FLOAT},
    {"stop", OPT_STRINGS},
};

/* Options.FromMap: a wrong type is an error, an unknown name a warning. */
static int
parse_options(json_t *root, enum api_kind kind, struct api_request *req,
    struct api_error *err)
{
	json_t *opts = json_object_get(root, "options"), *v;
	const char *name;

	if (opts == NULL || json_is_null(opts))
		return 0;
	if (!json_is_object(opts))
		return type_error(
		    err, kind, "options", opts, "map[string]interface {}");
	json_object_foreach(opts, name, v) {
		size_t i, n = sizeof(known_options) / sizeof(known_options[0]);
		static const char *const words[] = {
		    [OPT_INT] = "integer",
		    [OPT_FLOAT] = "float32",
		    [OPT_BOOL] = "boolean",
		    [OPT_STRINGS] = "array",
		};
		int ok;

		for (i = 0; i < n; i++)
			if (strcmp(known_options[i].name, name) == 0)
				break;
		if (i == n) {
			req->options_warning = name;
			continue;
		}
		if (json_is_null(v))
			continue;
		switch (known_options[i].type) {
		case OPT_INT:
		case OPT_FLOAT:
			ok = json_is_number(v);
			break;
		case OPT_BOOL:
			ok = json_is_boolean(v);
			break;
		case OPT_STRINGS:
			ok = json_is_array(v);
			if (ok) {
				size_t k;
				json_t *s;

				json_array_foreach(v, k, s)
					if (!json_is_string(s)) {
						err->status = 400;
						snprintf(err->message,
						    sizeof(err->message),
						    "option \"%s\" must be of an array of strings",
						    name);
						return -1;
					}
			}
			break;
		default:
			ok = 0;
		}
		if (!ok) {
			err->status = 400;
			snprintf(err->message, sizeof(err->message),
			    "option \"%s\" must be of type %s", name,
			    words[known_options[i].type]);
			return -1;
		}
		if (known_options[i].type == OPT_INT) {
			double whole = json_number_value(v), d;

			/* Go truncates a JSON number into its int field, of
			 * 64 bits: a seed of 2^32 - 1 is taken. The emulator's
			 * int fields hold what matters of the rest (a num_ctx
			 * past the trained context is cut to it anyway). */
			if (!isfinite(whole) || fabs(whole) >= 9.2e18)
				return fail(err, 400,
				    "option \"%s\" is out of range", name);
			d = fmax(fmin(whole, INT_MAX), INT_MIN);
			if (strcmp(name, "num_ctx") == 0) {
				req->num_ctx = (int)d;
				req->has_num_ctx = 1;
			} else if (strcmp(name, "num_batch") == 0)
				req->runner_opts.num_batch = (int)d;
			else if (strcmp(name, "num_gpu") == 0)
				req->runner_opts.num_gpu = (int)d;
			else if (strcmp(name, "main_gpu") == 0)
				req->runner_opts.main_gpu = (int)d;
			else if (strcmp(name, "num_thread") == 0)
				req->runner_opts.num_thread = (int)d;
			else if (strcmp(name, "num_predict") == 0)
				req->num_predict = (int)d;
			else if (strcmp(name, "seed") == 0)
				req->seed = (int64_t)whole;
		}
		if (strcmp(name, "use_mmap") == 0)
			req->runner_opts.use_mmap = json_is_true(v);
	}
	return 0;
}

static int
count_images(json_t *parent, enum api_kind kind, const char *field,
    int64_t *tokens,
    struct api_error *err)
{
	json_t *imgs = json_object_get(parent, "images"), *img;
	size_t i;

	if (imgs == NULL || json_is_null(imgs))
		return 0;
	if (!json_is_array(imgs))
		return type_error(err, kind, field, imgs, "[]api.ImageData");
	json_array_foreach(imgs, i, img) {
		if (!json_is_string(img))
			return type_error(
			    err, kind, field, img, "api.ImageData");
		/* A CLIP encoder turns an image into 576 tokens (llava). */
		*tokens += 576;
	}
	return 0;
}

/* Counts saturate: a body of millions of images must not wrap them. */
static int
prompt_tokens_of(int64_t tokens)
{
	return tokens > EMU_PROMPT_TOKENS_MAX ? EMU_PROMPT_TOKENS_MAX
	                                      : (int)tokens;
}

static int
parse_generate(json_t *root, struct api_request *req, struct api_error *err)
{
	const char *suffix = NULL, *tmpl = NULL;
	json_t *ctx, *v;
	size_t i;
	int64_t tokens = 0;

	if (get_string(root, API_GENERATE, "prompt", &req->prompt, err) ||
	    get_string(root, API_GENERATE, "suffix", &suffix, err) ||
	    get_string(root, API_GENERATE, "system", &req->system, err) ||
	    get_string(root, API_GENERATE, "template", &tmpl, err) ||
	    get_bool(root, API_GENERATE, "raw", &req->raw, err) ||
	    count_images(root, API_GENERATE, "images", &tokens, err))
		return -1;
	ctx = json_object_get(root, "context");
	if (req->raw && ((tmpl && *tmpl) || (req->system && *req->system) ||
	                    (ctx != NULL && !json_is_null(ctx))))
		return fail(err, 400,
		    "raw mode does not support template, system, or context%s",
		    "");
	if (ctx != NULL && !json_is_null(ctx)) {
		if (!json_is_array(ctx))
			return type_error(
			    err, API_GENERATE, "context", ctx, "[]int");
		json_array_foreach(ctx, i, v)
			if (!json_is_integer(v))
				return type_error(
				    err, API_GENERATE, "context", v, "int");
		tokens += (int64_t)json_array_size(ctx);
	}
	if (req->prompt == NULL)
		req->prompt = "";
	req->empty = req->prompt[0] == '\0';
	tokens += text_token_count(req->prompt, strlen(req->prompt));
	if (req->system)
		tokens += text_token_count(req->system, strlen(req->system));
	if (suffix)
		tokens += text_token_count(suffix, strlen(suffix));
	req->wants_insert = suffix != NULL && suffix[0] != '\0';
	/* The chat template wraps the prompt in a few tokens of markup. */
	if (!req->raw)
		tokens += 8;
	req->prompt_tokens = prompt_tokens_of(tokens);
	req->text_seed =
	    text_hash(req->text_seed, req->prompt, strlen(req->prompt));
	if (req->system)
		req->text_seed =
		    text_hash(req->text_seed, req->system, strlen(req->system));
	return 0;
}

/* A message's tool calls are only checked: a model here calls no tool. */
static int
check_tool_calls(json_t *msg, struct api_error *err)
{
	json_t *calls = json_object_get(msg, "tool_calls"), *call;
	size_t i;

	if (calls == NULL || json_is_null(calls))
		return 0;
	if (!json_is_array(calls))
		return type_error(err, API_CHAT, "messages.tool_calls", calls,
		    "[]api.ToolCall");
	json_array_foreach(calls, i, call)
		if (!json_is_object(call))
			return type_error(err, API_CHAT, "messages.tool_calls",
			    call, "api.ToolCall");
	return 0;
}

static int
parse_chat(json_t *root, struct api_request *req, struct api_error *err)
{
	json_t *msgs = json_object_get(root, "messages"), *m, *tools;
	size_t i;
	int64_t tokens = 0;

	if (msgs != NULL && !json_is_null(msgs) && !json_is_array(msgs))
		return type_error(
		    err, API_CHAT, "messages", msgs, "[]api.Message");
	tools = json_object_get(root, "tools");
	if (tools != NULL && !json_is_null(tools) && !json_is_array(tools))
		return type_error(err, API_CHAT, "tools", tools, "api.Tools");
	json_array_foreach(msgs, i, m) {
		const char *role = NULL, *content = NULL;

		if (!json_is_object(m))
			return type_error(
			    err, API_CHAT, "messages", m, "api.Message");
		if (get_string_at(
		        m, API_CHAT, "role", "messages.role", &role, err) ||
		    get_string_at(m, API_CHAT, "content", "messages.content",
		        &content, err) ||
		    count_images(
		        m, API_CHAT, "messages.images", &tokens, err) ||
		    check_tool_calls(m, err))
			return -1;
		/* Each message costs its role markers: about four tokens. */
		tokens += 4;
		if (content) {
			tokens += text_token_count(content, strlen(content));
			req->text_seed =
			    text_hash(req->text_seed, content, strlen(content));
		}
		if (role)
			req->text_seed =
			    text_hash(req->text_seed, role, strlen(role));
	}
	if (tools != NULL && json_is_array(tools))
		tokens += 64 * (int64_t)json_array_size(tools);
	req->wants_tools = tools != NULL && json_array_size(tools) > 0;
	req->empty = msgs == NULL || json_array_size(msgs) == 0;
	req->prompt_tokens = prompt_tokens_of(tokens);
	return 0;
}

static int
parse_embed(json_t *root, struct api_request *req, struct api_error *err)
{
	json_t *in = json_object_get(root, "input"), *v;
	size_t i;
	int64_t tokens = 0;
	int truncate_input;

	/* Both are ignored, but Go refuses them wrongly typed. */
	if (get_bool(root, API_EMBED, "truncate", &truncate_input, err))
		return -1;
	v = json_object_get(root, "dimensions");
	if (v != NULL && !json_is_null(v) && !json_is_integer(v))
		return type_error(err, API_EMBED, "dimensions", v, "int");
	if (in == NULL || json_is_null(in)) {
		req->ninputs = 0;
	} else if (json_is_string(in)) {
		req->ninputs = json_string_length(in) > 0;
		tokens = text_token_count(
		    json_string_value(in), json_string_length(in));
	} else if (json_is_array(in)) {
		if (json_array_size(in) > EMU_EMBED_INPUTS_MAX) {
			char most[16];

			snprintf(most, sizeof(most), "%d", EMU_EMBED_INPUTS_MAX);
			return fail(err, 400,
			    "input: more texts than the %s this emulator "
			    "embeds at once",
			    most);
		}
		json_array_foreach(in, i, v) {
			if (!json_is_string(v))
				return fail(
				    err, 400, "invalid input type%s", "");
			tokens += text_token_count(
			    json_string_value(v), json_string_length(v));
		}
		req->ninputs = json_array_size(in);
	} else {
		return fail(err, 400, "invalid input type%s", "");
	}
	req->prompt_tokens = prompt_tokens_of(tokens);
	req->empty = req->ninputs == 0;
	return 0;
}

const char *
api_embed_input(const struct api_request *req, size_t i)
{
	json_t *in;

	if (req->kind == API_EMBEDDINGS)
		return req->prompt;
	in = json_object_get(req->root, "input");
	if (json_is_string(in))
		return json_string_value(in);
	return json_string_value(json_array_get(in, i));
}

int
api_request_parse(enum api_kind kind, const char *body, size_t len,
    struct api_request *req, struct api_error *err)
{
	json_error_t jerr;
	json_t *root;
	size_t i;
	char last;

	memset(req, 0, sizeof(*req));
	req->kind = kind;
	req->stream = 1;
	req->num_predict = -1;
	req->seed = -1;
	/* Ollama's DefaultOptions. */
	req->runner_opts = (struct esched_runner_opts){
	    .num_batch = 512, .num_gpu = -1, .use_mmap = -1};
	for (i = 0; i < len; i++)
		if (body[i] != ' ' && body[i] != '\n' && body[i] != '\t' &&
		    body[i] != '\r')
			break;
	if (i == len)
		return fail(err, 400, "missing request body%s", "");
	/* ASCII, it is the last byte of a repaired text too. */
	last = body[len - 1];
	/* Go's decoder reads one value and ignores what follows it, takes
	 * \u0000 in a string, and each byte that is not UTF-8, or escaped
	 * surrogate without its partner, as U+FFFD; jansson refuses the last
	 * three unless told, or repaired. */
	if (utf8_invalid_at(body, len) >= 0 ||
	    lone_surrogates(body, len, NULL) > 0) {
		char *repaired = utf8_repaired(body, len, &len);

		lone_surrogates(repaired, len, repaired);
		/* Offsets in the errors are the repaired text's. */
		root = json_loadb(repaired, len,
		    JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL | JSON_DECODE_ANY,
		    &jerr);
		free(repaired);
	} else {
		root = json_loadb(body, len,
		    JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL | JSON_DECODE_ANY,
		    &jerr);
	}
	if (root == NULL) {
		err->status = 400;
		/* jansson reports an error at the end of a body that is whole
		 * but wrong ("{\"a\":1,}") as at a body cut short. */
		if (json_error_code(&jerr) ==
		        json_error_premature_end_of_input ||
		    ((size_t)jerr.position >= len && last != '}' &&
		        last != ']'))
			snprintf(err->message, sizeof(err->message),
			    "unexpected EOF");
		else
			snprintf(err->message, sizeof(err->message),
			    "invalid character in JSON at offset %d: %s",
			    jerr.position, jerr.text);
		return -1;
	}
	if (json_is_null(root)) {
		/* Go decodes null into a struct as nothing at all. */
		json_decref(root);
		root = json_object();
	}
	req->root = root;
	if (!json_is_object(root)) {
		err->status = 400;
		snprintf(err->message, sizeof(err->message),
		    "json: cannot unmarshal %s into Go value of type api.%s",
		    json_kind_word(root), kind_struct[kind]);
		goto bad;
	}
	/* Go keeps a \u0000 in its string, and so a name that holds one
	 * is read whole: "a:1\u0000x" is invalid, not a:1. */
	if (get_string(root, kind, "model", &req->model, err))
		goto bad;
	if (req->model != NULL)
		req->model_len =
		    json_string_length(json_object_get(root, "model"));
	/* Ollama's show and delete take the old "name" when "model" is
	 * missing or empty. */
	if ((kind == API_SHOW || kind == API_DELETE) && req->model_len == 0) {
		if (get_string(root, kind, "name", &req->model, err))
			goto bad;
		if (req->model != NULL)
			req->model_len =
			    json_string_length(json_object_get(root, "name"));
	}
	if (req->model == NULL)
		req->model = "";
	if (get_bool(root, kind, "stream", &req->stream, err) ||
	    parse_options(root, kind, req, err))
		goto bad;
	{
		char msg[160];
		json_t *ka = json_object_get(root, "keep_alive");

		if (emu_keep_alive_from_json(ka, &req->has_keep_alive,
		        &req->keep_alive_ns, msg, sizeof(msg)) != 0) {
			fail(err, 400, "%s", msg);
			goto bad;
		}
	}
	req->text_seed = text_hash(0, req->model, strlen(req->model));
	req->text_seed =
	    text_hash(req->text_seed, &req->seed, sizeof(req->seed));
	switch (kind) {
	case API_GENERATE:
		if (parse_generate(root, req, err))
			goto bad;
		break;
	case API_CHAT:
		if (parse_chat(root, req, err))
			goto bad;
		break;
	case API_EMBED:
		if (parse_embed(root, req, err))
			goto bad;
		break;
	case API_EMBEDDINGS:
		if (get_string(root, kind, "prompt", &req->prompt, err))
			goto bad;
		if (req->prompt == NULL)
			req->prompt = "";
		req->ninputs = req->prompt[0] != '\0';
		req->empty = !req->ninputs;
		req->prompt_tokens =
		    text_token_count(req->prompt, strlen(req->prompt));
		break;
	case API_SHOW: {
		int verbose;

		if (get_bool(root, kind, "verbose", &verbose, err))
			goto bad;
		break;
	}
	case API_DELETE:
		break;
	}
	return 0;
bad:
	json_decref(root);
	req->root = NULL;
	return -1;
}

void
api_request_free(struct api_request *req)
{
	if (req->root != NULL)
		json_decref(req->root);
	req->root = NULL;
}

void
api_format_time(int64_t epoch_ns, char *buf, size_t len)
{
	api_format_time_after(epoch_ns, 0, buf, len);
}

void
api_format_time_after(int64_t epoch_ns, int64_t plus_ns, char *buf, size_t len)
{
	/* In seconds and nanoseconds apart: Go's time goes past 2262, where
	 * nanoseconds since 1970 end. */
	time_t secs = (time_t)(epoch_ns / NS_PER_SEC + plus_ns / NS_PER_SEC);
	long nanos = (long)(epoch_ns % NS_PER_SEC + plus_ns % NS_PER_SEC);
	struct tm tm;
	char date[32], frac[16];
	int end;

	if (nanos >= NS_PER_SEC) {
		secs++;
		nanos -= NS_PER_SEC;
	}
	gmtime_r(&secs, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	/* RFC3339Nano drops trailing zeros of the fraction. */
	snprintf(frac, sizeof(frac), ".%09ld", nanos);
	for (end = 9; end > 0 && frac[end] == '0'; end--)
		frac[end] = '\0';
	if (end == 0)
		frac[0] = '\0';
	snprintf(buf, len, "%s%sZ", date, frac);
}

/*
 * Whether strconv.IsPrint takes r past ASCII: Go keeps letters, marks,
 * numbers, punctuation and symbols, and escapes spaces, controls, format
 * characters, private use and noncharacters, which are these.
 */
static int
go_printable(uint32_t r)
{
	static const uint32_t hidden[][2] = {
	    {0x80, 0xa0},
	    {0xad, 0xad},
	    {0x600, 0x605},
	    {0x61c, 0x61c},
	    {0x6dd, 0x6dd},
	    {0x70f, 0x70f},
	    {0x890, 0x891},
	    {0x8e2, 0x8e2},
	    {0x1680, 0x1680},
	    {0x180e, 0x180e},
	    {0x2000, 0x200f},
	    {0x2028, 0x202f},
	    {0x205f, 0x206f},
	    {0x3000, 0x3000},
	    {0xd800, 0xf8ff},
	    {0xfdd0, 0xfdef},
	    {0xfeff, 0xfeff},
	    {0xfff9, 0xfffb},
	    {0x110bd, 0x110bd},
	    {0x110cd, 0x110cd},
	    {0x13430, 0x1343f},
	    {0x1bca0, 0x1bca3},
	    {0x1d173, 0x1d17a},
	    {0xe0001, 0xe0001},
	    {0xe0020, 0xe007f},
	    {0xf0000, 0x10ffff},
	};

	/* U+FFFE and U+FFFF of every plane. */
	if ((r & 0xfffe) == 0xfffe)
		return 0;
	for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
		if (r >= hidden[i][0] && r <= hidden[i][1])
			return 0;
	return 1;
}

char *
api_go_quote(const char *s, size_t len)
{
	/* A byte that is not UTF-8 grows the most, to \xff. */
	char *out = malloc(len * 4 + 3), *o = out;
	size_t size;

	if (out == NULL)
		abort();
	*o++ = '"';
	for (size_t i = 0; i < len; i += size) {
		uint32_t r = utf8_decode(s + i, len - i, &size);
		const char *esc =
		    r < 0x80 ? strchr("\a\b\f\n\r\t\v", (int)r) : NULL;

		if (r == 0xfffd && size == 1)
			o += sprintf(o, "\\x%02x", (unsigned char)s[i]);
		else if (r == '"' || r == '\\')
			*o++ = '\\', *o++ = (char)r;
		else if (r != 0 && esc != NULL)
			*o++ = '\\', *o++ = "abfnrtv"[esc - "\a\b\f\n\r\t\v"];
		else if (r < 0x20 || r == 0x7f)
			o += sprintf(o, "\\x%02x", (unsigned)r);
		else if (r < 0x80 || go_printable(r)) {
			memcpy(o, s + i, size);
			o += size;
		} else if (r < 0x10000)
			o += sprintf(o, "\\u%04x", (unsigned)r);
		else
			o += sprintf(o, "\\U%08x", (unsigned)r);
	}
	*o++ = '"';
	*o = '\0';
	return out;
}
