/*
 * msg.c: the frame codec. Writers cannot fail (msgpack's sbuffer aborts on
 * allocation failure, as the rest of ollamax does); readers check
 * everything, because a frame may come from a crashed or hostile peer.
 */
#include "autoconf.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msg.h"
#include "utf8.h"

static const char *const error_names[MSG_E_COUNT] = {
    [MSG_OK] = "ok",
    [MSG_E_TRUNCATED] = "truncated",
    [MSG_E_NOT_A_MAP] = "not-a-map",
    [MSG_E_VERSION] = "version",
    [MSG_E_TYPE] = "type",
    [MSG_E_FIELD_MISSING] = "field-missing",
    [MSG_E_FIELD_TYPE] = "field-type",
    [MSG_E_FIELD_RANGE] = "field-range",
    [MSG_E_TOO_BIG] = "too-big",
    [MSG_E_TRAILING] = "trailing-bytes",
};

static const char *const type_names[MSG_TYPE_MAX] = {
    [MSG_HELLO] = "hello",
    [MSG_INFER] = "infer",
    [MSG_INFER_DONE] = "infer-done",
    [MSG_CTL] = "ctl",
    [MSG_CTL_REPLY] = "ctl-reply",
    [MSG_REPORT] = "report",
    [MSG_SETUP] = "setup",
    [MSG_FETCH] = "fetch",
    [MSG_AGENTS] = "agents",
    [MSG_READY] = "ready",
    [MSG_DELIVER] = "deliver",
    [MSG_CANCEL] = "cancel",
};

const char *
msg_error_name(enum msg_error e)
{
	return (unsigned)e < MSG_E_COUNT ? error_names[e] : "unknown";
}

const char *
msg_type_name(int type)
{
	return type > 0 && type < MSG_TYPE_MAX ? type_names[type] : "unknown";
}

/* ------------------------------------------------------------------ */

static void
put_key(struct msg_writer *w, const char *key)
{
	size_t n = strlen(key);

	msgpack_pack_str(&w->pk, n);
	msgpack_pack_str_body(&w->pk, key, n);
}

void
msg_begin(struct msg_writer *w, enum msg_type type, size_t nfields)
{
	msgpack_sbuffer_init(&w->buf);
	msgpack_packer_init(&w->pk, &w->buf, msgpack_sbuffer_write);
	msgpack_pack_map(&w->pk, nfields + 2);
	msg_put_int(w, "v", MSG_VERSION);
	msg_put_int(w, "t", type);
}

/*
 * Every reader refuses text that is not UTF-8. A text cut to a buffer may
 * end inside a character: what goes out ends before it. A byte that is
 * not UTF-8 elsewhere goes as '?', one byte for one so that the text still
 * fits its field: cut there instead, a name or path would go as a shorter
 * one, which may be another's.
 */
static void
put_str_item(struct msg_writer *w, const char *value)
{
	size_t n = utf8_whole_len(value, strlen(value));
	char *mended = NULL;
	long bad;

	for (size_t i = 0; (bad = utf8_invalid_at(value + i, n - i)) >= 0;
	     i += (size_t)bad + 1) {
		if (mended == NULL) {
			if ((mended = malloc(n + 1)) == NULL)
				abort();
			memcpy(mended, value, n);
			value = mended;
		}
		mended[i + (size_t)bad] = '?';
	}
	msgpack_pack_str(&w->pk, n);
	msgpack_pack_str_body(&w->pk, value, n);
	free(mended);
}

void
msg_put_str(struct msg_writer *w, const char *key, const char *value)
{
	put_key(w, key);
	put_str_item(w, value ? value : "");
}

void
msg_put_int(struct msg_writer *w, const char *key, int64_t value)
{
	put_key(w, key);
	msgpack_pack_int64(&w->pk, value);
}

void
msg_put_uint(struct msg_writer *w, const char *key, uint64_t value)
{
	put_key(w, key);
	msgpack_pack_uint64(&w->pk, value);
}

void
msg_put_double(struct msg_writer *w, const char *key, double value)
{
	put_key(w, key);
	msgpack_pack_double(&w->pk, value);
}

void
msg_put_bool(struct msg_writer *w, const char *key, int value)
{
	put_key(w, key);
	if (value)
		msgpack_pack_true(&w->pk);
	else
		msgpack_pack_false(&w->pk);
}

/* An array under key; its elements follow (put_map, or packed strings). */
static void
put_array(struct msg_writer *w, const char *key, size_t n)
{
	put_key(w, key);
	msgpack_pack_array(&w->pk, n);
}

static void
put_map(struct msg_writer *w, size_t nfields)
{
	msgpack_pack_map(&w->pk, nfields);
}



const char *
msg_data(const struct msg_writer *w, size_t *len)
{
	*len = w->buf.size;
	return w->buf.data;
}

void
msg_writer_free(struct msg_writer *w)
{
	msgpack_sbuffer_destroy(&w->buf);
}

/* ------------------------------------------------------------------ */

static enum msg_error
fail(struct msg_reader *r, enum msg_error e, const char *key, const char *why)
{
	r->error = e;
	snprintf(r->detail, sizeof(r->detail), "%s%s%s", key ? key : "",
	    key ? ": " : "", why);
	return e;
}

static const msgpack_object *
find(const struct msg_reader *r, const char *key)
{
	size_t n = strlen(key);

	for (uint32_t i = 0; i < r->map->size; i++) {
		const msgpack_object *k = &r->map->ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
		    memcmp(k->via.str.ptr, key, n) == 0)
			return &r->map->ptr[i].val;
	}
	return NULL;
}

/* Reads a whole integer of either msgpack sign into an int64. */
static int
as_int(const msgpack_object *o, int64_t *out)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 > INT64_MAX)
			return 0;
		*out = (int64_t)o->via.u64;
		return 1;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*out = o->via.i64;
		return 1;
	}
	return 0;
}

static uint64_t
be(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * Walks the msgpack bytes without building anything, checking that every
 * declared length and element count fits in what is left. msgpack-c would
 * allocate room for a declared count before it looks at the data, so a
 * ten-byte frame could ask it for gigabytes; and a frame of a million
 * one-byte objects would take it a quarter of a second and 50 MB to
 * build, on the loop every peer waits on. Returns 1 when it fits, 0 when
 * it ends early, -1 when it holds too many objects.
 */
static int
frame_fits(const unsigned char *p, size_t len)
{
	uint64_t need = 1, objects = 0;
	size_t pos = 0;

	while (need > 0) {
		unsigned b;
		uint64_t skip = 0, more = 0;

		if (pos >= len)
			return 0;
		if (++objects > MSG_OBJECTS_MAX)
			return -1;
		b = p[pos++];
		need--;
		if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3)) {
			/* fixint, negative fixint, nil, bool */
		} else if (b >= 0xa0 && b <= 0xbf) {
			skip = b & 0x1f;
		} else if (b >= 0x90 && b <= 0x9f) {
			more = b & 0x0f;
		} else if (b >= 0x80 && b <= 0x8f) {
			more = 2 * (uint64_t)(b & 0x0f);
		} else {
			static const struct {
				unsigned char type, lenbytes, fixed, mult;
			} t[] = {
			    {0xc4, 1, 0, 0},
			    {0xc5, 2, 0, 0},
			    {0xc6, 4, 0, 0},
			    {0xc7, 1, 1, 0},
			    {0xc8, 2, 1, 0},
			    {0xc9, 4, 1, 0},
			    {0xca, 0, 4, 0},
			    {0xcb, 0, 8, 0},
			    {0xcc, 0, 1, 0},
			    {0xcd, 0, 2, 0},
			    {0xce, 0, 4, 0},
			    {0xcf, 0, 8, 0},
			    {0xd0, 0, 1, 0},
			    {0xd1, 0, 2, 0},
			    {0xd2, 0, 4, 0},
			    {0xd3, 0, 8, 0},
			    {0xd4, 0, 2, 0},
			    {0xd5, 0, 3, 0},
			    {0xd6, 0, 5, 0},
			    {0xd7, 0, 9, 0},
			    {0xd8, 0, 17, 0},
			    {0xd9, 1, 0, 0},
			    {0xda, 2, 0, 0},
			    {0xdb, 4, 0, 0},
			    {0xdc, 2, 0, 1},
			    {0xdd, 4, 0, 1},
			    {0xde, 2, 0, 2},
			    {0xdf, 4, 0, 2},
			};
			size_t i, n = sizeof(t) / sizeof(t[0]);
			uint64_t count;

			for (i = 0; i < n && t[i].type != b; i++)
				;
			if (i == n)
				return 0; /* 0xc1: never used */
			if (len - pos < t[i].lenbytes)
				return 0;
			count = be(p + pos, t[i].lenbytes);
			pos += t[i].lenbytes;
			if (t[i].mult)
				more = count * t[i].mult;
			else
				skip = count + t[i].fixed;
		}
		if (skip > len - pos)
			return 0;
		pos += (size_t)skip;
		/* Every element takes at least one byte. */
		if (more > len - pos || need + more > len - pos)
			return 0;
		need += more;
	}
	return 1;
}

enum msg_error
msg_open(struct msg_reader *r, const void *data, size_t len)
{
	size_t off = 0;
	msgpack_unpack_return ret;
	const msgpack_object *v, *t;
	int64_t n;
	int fits;

	memset(r, 0, sizeof(*r));
	msgpack_unpacked_init(&r->unpacked);
	if (len > MSG_MAX_FRAME)
		return fail(
		    r, MSG_E_TOO_BIG, NULL, "frame over the size limit");
	if (data == NULL || len == 0)
		return fail(r, MSG_E_TRUNCATED, NULL, "empty frame");
	if ((fits = frame_fits(data, len)) < 0)
		return fail(r, MSG_E_TOO_BIG, NULL,
		    "frame holds more objects than any frame has");
	if (fits == 0)
		return fail(r, MSG_E_TRUNCATED, NULL,
		    "frame ends before what it declares");
	ret = msgpack_unpack_next(&r->unpacked, data, len, &off);
	if (ret == MSGPACK_UNPACK_CONTINUE)
		return fail(r, MSG_E_TRUNCATED, NULL, "frame ends early");
	if (ret != MSGPACK_UNPACK_SUCCESS && ret != MSGPACK_UNPACK_EXTRA_BYTES)
		return fail(r, MSG_E_TRUNCATED, NULL, "not msgpack");
	if (off != len)
		return fail(r, MSG_E_TRAILING, NULL, "bytes after the frame");
	if (r->unpacked.data.type != MSGPACK_OBJECT_MAP)
		return fail(r, MSG_E_NOT_A_MAP, NULL, "frame is not a map");
	r->map = &r->unpacked.data.via.map;
	v = find(r, "v");
	t = find(r, "t");
	if (v == NULL || !as_int(v, &n))
		return fail(r, MSG_E_VERSION, "v", "missing or not an integer");
	if (n != MSG_VERSION)
		return fail(
		    r, MSG_E_VERSION, "v", "unsupported protocol version");
	if (t == NULL || !as_int(t, &n) || n <= 0 || n >= MSG_TYPE_MAX)
		return fail(
		    r, MSG_E_TYPE, "t", "missing or unknown frame type");
	r->type = (int)n;
	return MSG_OK;
}

void
msg_close(struct msg_reader *r)
{
	msgpack_unpacked_destroy(&r->unpacked);
	r->map = NULL;
}

static enum msg_error
get_str_obj(struct msg_reader *r, const char *key, const msgpack_object **o,
    size_t max, int required)
{
	*o = find(r, key);
	if (*o == NULL)
		return required ? fail(r, MSG_E_FIELD_MISSING, key, "missing")
		                : MSG_OK;
	if ((*o)->type != MSGPACK_OBJECT_STR)
		return fail(r, MSG_E_FIELD_TYPE, key, "not a string");
	if ((*o)->via.str.size > max)
		return fail(r, MSG_E_FIELD_RANGE, key, "too long");
	if (memchr((*o)->via.str.ptr, '\0', (*o)->via.str.size) != NULL)
		return fail(r, MSG_E_FIELD_RANGE, key, "holds a NUL byte");
	/* Text reaches Ollama and ollamaxctl --json as JSON. */
	if (utf8_invalid_at((*o)->via.str.ptr, (*o)->via.str.size) >= 0)
		return fail(r, MSG_E_FIELD_RANGE, key, "not UTF-8 text");
	return MSG_OK;
}

enum msg_error
msg_get_str(
    struct msg_reader *r, const char *key, char *out, size_t cap, int required)
{
	const msgpack_object *o;
	enum msg_error e = get_str_obj(r, key, &o, cap - 1, required);

	if (e != MSG_OK || o == NULL)
		return e;
	memcpy(out, o->via.str.ptr, o->via.str.size);
	out[o->via.str.size] = '\0';
	return MSG_OK;
}

enum msg_error
msg_get_str_dup(
    struct msg_reader *r, const char *key, char **out, size_t max, int required)
{
	const msgpack_object *o;
	enum msg_error e = get_str_obj(r, key, &o, max, required);

	if (e != MSG_OK || o == NULL)
		return e;
	*out = malloc(o->via.str.size + 1);
	if (*out == NULL)
		abort();
	memcpy(*out, o->via.str.ptr, o->via.str.size);
	(*out)[o->via.str.size] = '\0';
	return MSG_OK;
}

enum msg_error
msg_get_int(struct msg_reader *r, const char *key, int64_t *out, int64_t min,
    int64_t max, int required)
{
	const msgpack_object *o = find(r, key);
	int64_t v;

	if (o == NULL)
		return required ? fail(r, MSG_E_FIELD_MISSING, key, "missing")
		                : MSG_OK;
	if (!as_int(o, &v))
		return fail(r, MSG_E_FIELD_TYPE, key, "not an integer");
	if (v < min || v > max)
		return fail(r, MSG_E_FIELD_RANGE, key, "out of range");
	*out = v;
	return MSG_OK;
}

enum msg_error
msg_get_uint(struct msg_reader *r, const char *key, uint64_t *out, int required)
{
	const msgpack_object *o = find(r, key);

	if (o == NULL)
		return required ? fail(r, MSG_E_FIELD_MISSING, key, "missing")
		                : MSG_OK;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return fail(
		    r, MSG_E_FIELD_TYPE, key, "not an unsigned integer");
	*out = o->via.u64;
	return MSG_OK;
}

enum msg_error
msg_get_double(struct msg_reader *r, const char *key, double *out, double min,
    double max, int required)
{
	const msgpack_object *o = find(r, key);
	int64_t i;
	double v;

	if (o == NULL)
		return required ? fail(r, MSG_E_FIELD_MISSING, key, "missing")
		                : MSG_OK;
	if (o->type == MSGPACK_OBJECT_FLOAT64 ||
	    o->type == MSGPACK_OBJECT_FLOAT32)
		v = o->via.f64;
	else if (as_int(o, &i))
		v = (double)i;
	else
		return fail(r, MSG_E_FIELD_TYPE, key, "not a number");
	if (!isfinite(v) || v < min || v > max)
		return fail(r, MSG_E_FIELD_RANGE, key, "out of range");
	*out = v;
	return MSG_OK;
}

enum msg_error
msg_get_bool(struct msg_reader *r, const char *key, int *out, int required)
{
	const msgpack_object *o = find(r, key);

	if (o == NULL)
		return required ? fail(r, MSG_E_FIELD_MISSING, key, "missing")
		                : MSG_OK;
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return fail(r, MSG_E_FIELD_TYPE, key, "not a boolean");
	*out = o->via.boolean;
	return MSG_OK;
}

static enum msg_error
get_array(struct msg_reader *r, const char *key, const msgpack_object_array **a,
    size_t max, int required)
{
	const msgpack_object *o = find(r, key);

	*a = NULL;
	if (o == NULL)
		return required ? fail(r, MSG_E_FIELD_MISSING, key, "missing")
		                : MSG_OK;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return fail(r, MSG_E_FIELD_TYPE, key, "not an array");
	if (o->via.array.size > max)
		return fail(r, MSG_E_FIELD_RANGE, key, "too many items");
	*a = &o->via.array;
	return MSG_OK;
}

/*
 * Item i of an array of maps, as a reader of its own. It borrows the
 * frame's data: it is never opened or closed.
 */
static enum msg_error
get_item(struct msg_reader *r, const char *key, const msgpack_object_array *a,
    uint32_t i, struct msg_reader *item)
{
	char where[48];

	memset(item, 0, sizeof(*item));
	item->type = r->type;
	if (a->ptr[i].type != MSGPACK_OBJECT_MAP) {
		snprintf(where, sizeof(where), "%s[%u]", key, (unsigned)i);
		return fail(r, MSG_E_FIELD_TYPE, where, "not a map");
	}
	item->map = &a->ptr[i].via.map;
	return MSG_OK;
}

/* Carries an item's error up to its frame, naming the item. */
static enum msg_error
item_failed(struct msg_reader *r, const char *key, uint32_t i,
    const struct msg_reader *item)
{
	r->error = item->error;
	snprintf(r->detail, sizeof(r->detail), "%.24s[%u]: %.90s", key,
	    (unsigned)i, item->detail);
	return r->error;
}

static enum msg_error
expect_type(struct msg_reader *r, enum msg_type type)
{
	if (r->map == NULL)
		return r->error ? r->error : MSG_E_TRUNCATED;
	if (r->type != (int)type)
		return fail(r, MSG_E_TYPE, "t", "unexpected frame type");
	return MSG_OK;
}

/* ------------------------------------------------------------------ */
/* Frames                                                             */
/* ------------------------------------------------------------------ */

/* hello and ready name the child the same way. */
/* A child's frame: these 4 fields, and `more` after them. */
static void
child_encode(struct msg_writer *w, enum msg_type type,
    const struct msg_hello *m, size_t more)
{
	msg_begin(w, type, 4 + more);
	msg_put_int(w, "role", m->role);
	msg_put_int(w, "index", m->index);
	msg_put_int(w, "pid", m->pid);
	msg_put_uint(w, "started", m->started);
}

static enum msg_error
child_decode(struct msg_reader *r, enum msg_type type, struct msg_hello *m)
{
	int64_t role = 0, index = 0, pid = 0;
	enum msg_error e;

	memset(m, 0, sizeof(*m));
	if ((e = expect_type(r, type)) ||
	    (e = msg_get_int(r, "role", &role, ROLE_BROKER, ROLE_WORKER, 1)) ||
	    (e = msg_get_int(r, "index", &index, 0, 4096, 1)) ||
	    (e = msg_get_int(r, "pid", &pid, 1, INT32_MAX, 1)) ||
	    (e = msg_get_uint(r, "started", &m->started, 0)))
		return e;
	m->role = (int)role;
	m->index = (int)index;
	m->pid = pid;
	return MSG_OK;
}

void
msg_hello_encode(struct msg_writer *w, const struct msg_hello *m)
{
	child_encode(w, MSG_HELLO, m, 0);
}

enum msg_error
msg_hello_decode(struct msg_reader *r, struct msg_hello *m)
{
	return child_decode(r, MSG_HELLO, m);
}

void
msg_ready_encode(struct msg_writer *w, const struct msg_ready *m)
{
	child_encode(w, MSG_READY, &m->child, 1);
	put_array(w, "not_started", m->nnot_started);
	for (uint32_t i = 0; i < m->nnot_started; i++)
		put_str_item(w, m->not_started[i]);
}

enum msg_error
msg_ready_decode(struct msg_reader *r, struct msg_ready *m)
{
	const msgpack_object_array *list;
	enum msg_error e;

	memset(m, 0, sizeof(*m));
	if ((e = child_decode(r, MSG_READY, &m->child)) ||
	    (e = get_array(r, "not_started", &list, MSG_READY_NAMES_MAX, 1)))
		return e;
	m->not_started = calloc(list->size + 1, sizeof(*m->not_started));
	if (m->not_started == NULL)
		abort();
	for (uint32_t i = 0; i < list->size; i++) {
		const msgpack_object *o = &list->ptr[i];

		if (o->type != MSGPACK_OBJECT_STR ||
		    o->via.str.size >= sizeof(m->not_started[i]) ||
		    memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL) {
			msg_ready_free(m);
			return fail(r, MSG_E_FIELD_TYPE, "not_started",
			    "not a list of agent names");
		}
		memcpy(m->not_started[i], o->via.str.ptr, o->via.str.size);
		m->not_started[i][o->via.str.size] = '\0';
		if (!config_valid_name(m->not_started[i])) {
			msg_ready_free(m);
			return fail(r, MSG_E_FIELD_RANGE, "not_started",
			    "not a list of agent names");
		}
		m->nnot_started++;
	}
	return MSG_OK;
}

void
msg_ready_free(struct msg_ready *m)
{
	free(m->not_started);
	m->not_started = NULL;
	m->nnot_started = 0;
}

void
msg_infer_encode(struct msg_writer *w, const struct msg_infer *m)
{
	msg_begin(w, MSG_INFER, 10);
	msg_put_uint(w, "id", m->id);
	msg_put_int(w, "worker", m->worker);
	msg_put_uint(w, "started", m->started);
	msg_put_str(w, "agent", m->agent);
	msg_put_str(w, "tier", m->tier);
	msg_put_int(w, "priority", m->priority);
	msg_put_str(w, "system", m->system);
	msg_put_str(w, "prompt", m->prompt);
	msg_put_int(w, "num_predict", m->num_predict);
	msg_put_double(w, "temperature", m->temperature);
}

enum msg_error
msg_infer_decode(struct msg_reader *r, struct msg_infer *m)
{
	int64_t worker = 0, priority = PRIO_NORMAL, num_predict = -1;
	enum msg_error e;

	memset(m, 0, sizeof(*m));
	m->temperature = -1;
	if ((e = expect_type(r, MSG_INFER)) ||
	    (e = msg_get_uint(r, "id", &m->id, 1)) ||
	    (e = msg_get_int(r, "worker", &worker, 0, 4096, 1)) ||
	    (e = msg_get_uint(r, "started", &m->started, 0)) ||
	    (e = msg_get_str(r, "agent", m->agent, sizeof(m->agent), 1)) ||
	    (e = msg_get_str(r, "tier", m->tier, sizeof(m->tier), 1)) ||
	    (e = msg_get_int(
	         r, "priority", &priority, PRIO_LOW, PRIO_HIGH, 0)) ||
	    (e = msg_get_int(r, "num_predict", &num_predict, -1, 1 << 20, 0)) ||
	    (e = msg_get_double(
	         r, "temperature", &m->temperature, -1, 100, 0)) ||
	    (e = msg_get_str_dup(r, "system", &m->system, MSG_MAX_TEXT, 0)) ||
	    (e = msg_get_str_dup(r, "prompt", &m->prompt, MSG_MAX_TEXT, 1))) {
		msg_infer_free(m);
		return e;
	}
	m->worker = (int)worker;
	m->priority = (int)priority;
	m->num_predict = (int)num_predict;
	return MSG_OK;
}

void
msg_infer_free(struct msg_infer *m)
{
	free(m->system);
	free(m->prompt);
	m->system = m->prompt = NULL;
}

void
msg_infer_done_encode(struct msg_writer *w, const struct msg_infer_done *m)
{
	msg_begin(w, MSG_INFER_DONE, 9);
	msg_put_uint(w, "id", m->id);
	msg_put_int(w, "status", m->status);
	msg_put_str(w, "error", m->error);
	msg_put_str(w, "model", m->model);
	msg_put_str(w, "text", m->text);
	msg_put_int(w, "prompt_tokens", m->prompt_tokens);
	msg_put_int(w, "eval_tokens", m->eval_tokens);
	msg_put_int(w, "queued_ms", m->queued_ms);
	msg_put_int(w, "total_ms", m->total_ms);
}

enum msg_error
msg_infer_done_decode(struct msg_reader *r, struct msg_infer_done *m)
{
	int64_t status = 0;
	enum msg_error e;

	memset(m, 0, sizeof(*m));
	if ((e = expect_type(r, MSG_INFER_DONE)) ||
	    (e = msg_get_uint(r, "id", &m->id, 1)) ||
	    (e = msg_get_int(
	         r, "status", &status, INFER_OK, INFER_UNAVAILABLE, 1)) ||
	    (e = msg_get_str(r, "error", m->error, sizeof(m->error), 0)) ||
	    (e = msg_get_str(r, "model", m->model, sizeof(m->model), 0)) ||
	    (e = msg_get_int(
	         r, "prompt_tokens", &m->prompt_tokens, 0, INT32_MAX, 0)) ||
	    (e = msg_get_int(
	         r, "eval_tokens", &m->eval_tokens, 0, INT32_MAX, 0)) ||
	    (e = msg_get_int(r, "queued_ms", &m->queued_ms, 0, INT64_MAX, 0)) ||
	    (e = msg_get_int(r, "total_ms", &m->total_ms, 0, INT64_MAX, 0)) ||
	    (e = msg_get_str_dup(r, "text", &m->text, MSG_MAX_TEXT, 0))) {
		msg_infer_done_free(m);
		return e;
	}
	m->status = (int)status;
	return MSG_OK;
}

void
msg_infer_done_free(struct msg_infer_done *m)
{
	free(m->text);
	m->text = NULL;
}

int64_t
msg_clock_ms(void)
{
	struct timespec ts;

	/* Monotonic and the same in every process of the host. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
msg_late_ms(int64_t until_ms)
{
	int64_t late = until_ms != 0 ? msg_clock_ms() - until_ms : 0;

	return late > 0 ? late : 0;
}

void
msg_ctl_encode(struct msg_writer *w, const struct msg_ctl *m)
{
	msg_begin(w, MSG_CTL,
	    4 + (m->arg != NULL) + (m->input != NULL) + (m->until_ms != 0) +
	        (m->id != 0));
	msg_put_str(w, "verb", m->verb);
	msg_put_bool(w, "json", m->json);
	msg_put_bool(w, "wait", m->wait);
	msg_put_bool(w, "from_supervisor", m->from_supervisor);
	if (m->arg)
		msg_put_str(w, "arg", m->arg);
	if (m->input)
		msg_put_str(w, "input", m->input);
	if (m->until_ms != 0)
		msg_put_int(w, "until", m->until_ms);
	if (m->id != 0)
		msg_put_uint(w, "id", m->id);
}

enum msg_error
msg_ctl_decode(struct msg_reader *r, struct msg_ctl *m)
{
	enum msg_error e;

	memset(m, 0, sizeof(*m));
	if ((e = expect_type(r, MSG_CTL)) ||
	    (e = msg_get_str(r, "verb", m->verb, sizeof(m->verb), 1)) ||
	    (e = msg_get_bool(r, "json", &m->json, 0)) ||
	    (e = msg_get_bool(r, "wait", &m->wait, 0)) ||
	    (e = msg_get_bool(r, "from_supervisor", &m->from_supervisor, 0)) ||
	    (e = msg_get_str_dup(r, "arg", &m->arg, MSG_MAX_TEXT, 0)) ||
	    (e = msg_get_str_dup(r, "input", &m->input, MSG_MAX_TEXT, 0)) ||
	    (e = msg_get_int(r, "until", &m->until_ms, 0, INT64_MAX, 0)) ||
	    (e = msg_get_uint(r, "id", &m->id, 0)) ||
	    (find(r, "id") != NULL && m->id == 0 &&
	        (e = fail(r, MSG_E_FIELD_RANGE, "id", "out of range")))) {
		msg_ctl_free(m);
		return e;
	}
	return MSG_OK;
}

void
msg_ctl_free(struct msg_ctl *m)
{
	free(m->arg);
	free(m->input);
	m->arg = m->input = NULL;
}

void
msg_ctl_reply_encode(struct msg_writer *w, const struct msg_ctl_reply *m)
{
	msg_begin(w, MSG_CTL_REPLY, m->body ? 4 : 3);
	msg_put_bool(w, "ok", m->ok);
	msg_put_str(w, "error", m->error);
	msg_put_bool(w, "from_supervisor", m->from_supervisor);
	if (m->body)
		msg_put_str(w, "body", m->body);
}

/* What a ctl reply holds besides its body: its error, its fields. */
#define CTL_REPLY_ROOM 4096

int
msg_ctl_reply_fit(struct msg_ctl_reply *m)
{
	size_t len = m->body ? strlen(m->body) : 0;

	if (len <= MSG_MAX_FRAME - CTL_REPLY_ROOM)
		return 0;
	m->ok = 0;
	m->body = NULL;
	snprintf(m->error, sizeof(m->error),
	    "the answer is %zu bytes, more than the %d one frame carries", len,
	    MSG_MAX_FRAME - CTL_REPLY_ROOM);
	return 1;
}

enum msg_error
msg_ctl_reply_decode(struct msg_reader *r, struct msg_ctl_reply *m)
{
	enum msg_error e;

	memset(m, 0, sizeof(*m));
	if ((e = expect_type(r, MSG_CTL_REPLY)) ||
	    (e = msg_get_bool(r, "ok", &m->ok, 1)) ||
	    (e = msg_get_str(r, "error", m->error, sizeof(m->error), 0)) ||
	    (e = msg_get_bool(r, "from_supervisor", &m->from_supervisor, 0)) ||
	    (e = msg_get_str_dup(r, "body", &m->body, MSG_MAX_FRAME, 0))) {
		msg_ctl_reply_free(m);
		return e;
	}
	return MSG_OK;
}

void
msg_ctl_reply_free(struct msg_ctl_reply *m)
{
	free(m->body);
	m->body = NULL;
}

void
msg_report_encode(struct msg_writer *w, const struct msg_report *m)
{
	msg_begin(w, MSG_REPORT, 22);
	msg_put_int(w, "role", m->role);
	msg_put_int(w, "index", m->index);
	msg_put_int(w, "pid", m->pid);
	msg_put_int(w, "agents", m->agents);
	msg_put_int(w, "agents_failing", m->agents_failing);
	msg_put_int(w, "busy", m->busy);
	msg_put_int(w, "queued", m->queued);
	msg_put_int(w, "served", m->served);
	msg_put_int(w, "failed", m->failed);
	msg_put_int(w, "bad_frames", m->bad_frames);
	put_array(w, "resident", (size_t)m->nresident);
	for (int i = 0; i < m->nresident; i++)
		put_str_item(w, m->resident[i]);
	put_array(w, "outside", (size_t)m->noutside);
	for (int i = 0; i < m->noutside; i++)
		put_str_item(w, m->outside[i]);
	msg_put_int(w, "loads", m->loads);
	msg_put_int(w, "unloads", m->unloads);
	msg_put_str(w, "next_switch", m->next_switch);
	msg_put_str(w, "next_switch_why", m->next_switch_why);
	msg_put_double(w, "offered_load", m->offered_load);
	msg_put_bool(w, "overloaded", m->overloaded);
	put_array(w, "models", (size_t)m->nmodels);
	for (int i = 0; i < m->nmodels; i++) {
		const struct msg_model_report *mr = &m->models[i];

		put_map(w, 8);
		msg_put_str(w, "name", mr->name);
		msg_put_str(w, "state", mr->state);
		msg_put_int(w, "need_mb", mr->need_mb);
		msg_put_int(w, "in_flight", mr->in_flight);
		msg_put_int(w, "waiting", mr->waiting);
		msg_put_int(w, "oldest_wait_ms", mr->oldest_wait_ms);
		msg_put_int(w, "loads", mr->loads);
		msg_put_bool(w, "pin", mr->pin);
	}
	msg_put_int(w, "backend", m->backend);
	msg_put_int(w, "backend_away_since", m->backend_away_since);
	msg_put_str(w, "backend_error", m->backend_error);
}

/* The words of policy_switch_reason_name, bar "none": an empty reason
 * stands for it, as an empty next_switch does. The codec does not depend
 * on the policy; test_msg checks that the two lists agree. */
static int
is_switch_reason(const char *why)
{
	static const char *const words[] = {
	    "", "idle", "turn", "aging", "batching", "pin"};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(why, words[i]) == 0)
			return 1;
	return 0;
}

static enum msg_error
model_report_decode(struct msg_reader *r, struct msg_model_report *m)
{
	enum msg_error e;

	if ((e = msg_get_str(r, "name", m->name, sizeof(m->name), 1)) ||
	    (e = msg_get_str(r, "state", m->state, sizeof(m->state), 1)) ||
	    (e = msg_get_int(r, "need_mb", &m->need_mb, 0, INT64_MAX, 1)) ||
	    (e = msg_get_int(r, "in_flight", &m->in_flight, 0, INT32_MAX, 1)) ||
	    (e = msg_get_int(r, "waiting", &m->waiting, 0, INT32_MAX, 1)) ||
	    (e = msg_get_int(
	         r, "oldest_wait_ms", &m->oldest_wait_ms, 0, INT64_MAX, 1)) ||
	    (e = msg_get_int(r, "loads", &m->loads, 0, INT64_MAX, 1)) ||
	    (e = msg_get_bool(r, "pin", &m->pin, 1)))
		return e;
	return MSG_OK;
}

/* A list of model names, as a report's resident and outside are. */
static enum msg_error
model_names_decode(struct msg_reader *r, const char *key,
    const msgpack_object_array *list, char (*names)[CONFIG_MODEL_MAX], int *n)
{
	for (uint32_t i = 0; list != NULL && i < list->size; i++) {
		const msgpack_object *o = &list->ptr[i];

		if (o->type != MSGPACK_OBJECT_STR ||
		    o->via.str.size >= CONFIG_MODEL_MAX ||
		    memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL ||
		    utf8_invalid_at(o->via.str.ptr, o->via.str.size) >= 0)
			return fail(r, MSG_E_FIELD_TYPE, key,
			    "not a list of model names");
		memcpy(names[i], o->via.str.ptr, o->via.str.size);
		names[i][o->via.str.size] = '\0';
		(*n)++;
	}
	return MSG_OK;
}

enum msg_error
msg_report_decode(struct msg_reader *r, struct msg_report *m)
{
	const msgpack_object_array *resident, *outside, *models;
	int64_t role = 0, index = 0, backend = BACKEND_UNKNOWN;
	enum msg_error e;

	memset(m, 0, sizeof(*m));
	if ((e = expect_type(r, MSG_REPORT)) ||
	    (e = msg_get_int(r, "role", &role, ROLE_BROKER, ROLE_WORKER, 1)) ||
	    (e = msg_get_int(r, "index", &index, 0, 4096, 1)) ||
	    (e = msg_get_int(r, "pid", &m->pid, 1, INT32_MAX, 1)) ||
	    (e = msg_get_int(r, "agents", &m->agents, 0, INT32_MAX, 0)) ||
	    (e = msg_get_int(
	         r, "agents_failing", &m->agents_failing, 0, INT32_MAX, 0)) ||
	    (e = msg_get_int(r, "busy", &m->busy, 0, INT32_MAX, 0)) ||
	    (e = msg_get_int(r, "queued", &m->queued, 0, INT32_MAX, 0)) ||
	    (e = msg_get_int(r, "served", &m->served, 0, INT64_MAX, 0)) ||
	    (e = msg_get_int(r, "failed", &m->failed, 0, INT64_MAX, 0)) ||
	    (e = msg_get_int(
	         r, "bad_frames", &m->bad_frames, 0, INT64_MAX, 0)) ||
	    (e = get_array(r, "resident", &resident, MSG_RESIDENT_MAX, 0)) ||
	    (e = get_array(r, "outside", &outside, MSG_RESIDENT_MAX, 0)) ||
	    (e = msg_get_int(r, "loads", &m->loads, 0, INT64_MAX, 0)) ||
	    (e = msg_get_int(r, "unloads", &m->unloads, 0, INT64_MAX, 0)) ||
	    (e = msg_get_str(r, "next_switch", m->next_switch,
	         sizeof(m->next_switch), 0)) ||
	    (e = msg_get_str(r, "next_switch_why", m->next_switch_why,
	         sizeof(m->next_switch_why), 0)) ||
	    /* No upper bound: early on the load is measured over a short
	     * span and may read far above 1 without being corrupt. */
	    (e = msg_get_double(
	         r, "offered_load", &m->offered_load, 0, DBL_MAX, 0)) ||
	    (e = msg_get_bool(r, "overloaded", &m->overloaded, 0)) ||
	    (e = get_array(r, "models", &models, MSG_MODELS_MAX, 0)) ||
	    (e = msg_get_int(r, "backend", &backend, BACKEND_UNKNOWN,
	         BACKEND_UNREACHABLE, 0)) ||
	    (e = msg_get_int(r, "backend_away_since", &m->backend_away_since, 0,
	         INT64_MAX, 0)) ||
	    (e = msg_get_str(r, "backend_error", m->backend_error,
	         sizeof(m->backend_error), 0)))
		return e;
	if (!is_switch_reason(m->next_switch_why))
		return fail(r, MSG_E_FIELD_RANGE, "next_switch_why",
		    "not a switch reason");
	/* Status counts how long from it. */
	if (backend == BACKEND_UNREACHABLE && m->backend_away_since == 0)
		return fail(r, MSG_E_FIELD_MISSING, "backend_away_since",
		    "none given for a backend that cannot be reached");
	for (uint32_t i = 0; models != NULL && i < models->size; i++) {
		struct msg_reader item;

		if ((e = get_item(r, "models", models, i, &item)))
			return e;
		if (model_report_decode(&item, &m->models[i]) != MSG_OK)
			return item_failed(r, "models", i, &item);
		m->nmodels++;
	}
	if ((e = model_names_decode(
	         r, "resident", resident, m->resident, &m->nresident)) ||
	    (e = model_names_decode(
	         r, "outside", outside, m->outside, &m->noutside)))
		return e;
	m->role = (int)role;
	m->index = (int)index;
	m->backend = (int)backend;
	return MSG_OK;
}

/* ------------------------------------------------------------------ */
/* Setup: a child's part of the config                                */
/* ------------------------------------------------------------------ */

void
msg_setup_encode(struct msg_writer *w, const struct msg_setup *m)
{
	const struct config *c = &m->conf;

	if (m->role == ROLE_WORKER) {
		msg_begin(w, MSG_SETUP, 4);
		msg_put_int(w, "role", m->role);
		msg_put_str(w, "state_dir", c->state_dir);
		msg_put_uint(w, "stack_size", c->stack_size);
		msg_put_uint(w, "pages", m->pages);
		return;
	}
	msg_begin(w, MSG_SETUP, 17);
	msg_put_int(w, "role", m->role);
	msg_put_int(w, "parallel", c->parallel);
	msg_put_int(w, "vram_mb", c->vram_mb);
	msg_put_int(w, "max_loaded", c->max_loaded);
	msg_put_int(w, "max_wait_low_ms", c->max_wait_ms[PRIO_LOW]);
	msg_put_int(w, "max_wait_normal_ms", c->max_wait_ms[PRIO_NORMAL]);
	msg_put_int(w, "max_wait_high_ms", c->max_wait_ms[PRIO_HIGH]);
	msg_put_int(w, "min_residency_ms", c->min_residency_ms);
	msg_put_int(w, "idle_unload_ms", c->idle_unload_ms);
	msg_put_int(w, "lease_ms", c->lease_ms);
	msg_put_str(w, "backend_url", c->backend_url);
	msg_put_int(w, "connect_timeout_ms", c->connect_timeout_ms);
	msg_put_int(w, "first_byte_timeout_ms", c->first_byte_timeout_ms);
	msg_put_int(w, "stall_timeout_ms", c->stall_timeout_ms);
	msg_put_int(w, "answer_timeout_ms", c->answer_timeout_ms);
	put_array(w, "tiers", c->ntiers);
	for (size_t i = 0; i < c->ntiers; i++) {
		put_map(w, 3);
		msg_put_str(w, "name", c->tiers[i].name);
		msg_put_str(w, "model", c->tiers[i].model);
		msg_put_str(w, "fallback", c->tiers[i].fallback);
	}
	put_array(w, "models", c->nmodels);
	for (size_t i = 0; i < c->nmodels; i++) {
		put_map(w, 6);
		msg_put_str(w, "name", c->models[i].name);
		msg_put_int(w, "size_mb", c->models[i].size_mb);
		msg_put_int(w, "kv_mb", c->models[i].kv_mb);
		msg_put_int(w, "num_ctx", c->models[i].num_ctx);
		msg_put_bool(w, "preload", c->models[i].preload);
		msg_put_bool(w, "pin", c->models[i].pin);
	}
}

static enum msg_error
tier_decode(struct msg_reader *r, struct tier_conf *t)
{
	enum msg_error e;

	if ((e = msg_get_str(r, "name", t->name, sizeof(t->name), 1)) ||
	    (e = msg_get_str(r, "model", t->model, sizeof(t->model), 1)) ||
	    (e = msg_get_str(
	         r, "fallback", t->fallback, sizeof(t->fallback), 0)))
		return e;
	if (!config_valid_name(t->name))
		return fail(r, MSG_E_FIELD_RANGE, "name", "not a tier name");
	if (t->model[0] == '\0')
		return fail(r, MSG_E_FIELD_RANGE, "model", "empty");
	if (t->fallback[0] != '\0' && !config_valid_name(t->fallback))
		return fail(
		    r, MSG_E_FIELD_RANGE, "fallback", "not a tier name");
	return MSG_OK;
}

static enum msg_error
model_decode(struct msg_reader *r, struct model_conf *m)
{
	int64_t size_mb = 0, kv_mb = 0, num_ctx = 0;
	enum msg_error e;

	if ((e = msg_get_str(r, "name", m->name, sizeof(m->name), 1)) ||
	    (e = msg_get_int(r, "size_mb", &size_mb, 0, CONFIG_MB_MAX, 1)) ||
	    (e = msg_get_int(r, "kv_mb", &kv_mb, 0, CONFIG_MB_MAX, 1)) ||
	    (e = msg_get_bool(r, "preload", &m->preload, 1)) ||
	    (e = msg_get_bool(r, "pin", &m->pin, 1)) ||
	    (e = msg_get_int(r, "num_ctx", &num_ctx, CONFIG_NUM_CTX_MIN,
	         CONFIG_NUM_CTX_MAX, 1)))
		return e;
	if (m->name[0] == '\0')
		return fail(r, MSG_E_FIELD_RANGE, "name", "empty");
	m->size_mb = size_mb;
	m->kv_mb = kv_mb;
	m->num_ctx = num_ctx;
	return MSG_OK;
}

/* The broker's part: [broker], [backend], tiers and models. */
static enum msg_error
broker_setup_decode(struct msg_reader *r, struct config *c)
{
	const msgpack_object_array *tiers, *models;
	struct msg_reader item;
	enum msg_error e;
	int64_t parallel = 0, vram_mb = 0, max_loaded = 0;

	if ((e = msg_get_int(
	         r, "parallel", &parallel, 1, CONFIG_PARALLEL_MAX, 1)) ||
	    (e = msg_get_int(
	         r, "max_loaded", &max_loaded, 1, CONFIG_LOADED_MAX, 1)) ||
	    (e = msg_get_int(r, "max_wait_low_ms", &c->max_wait_ms[PRIO_LOW],
	         CONFIG_WAIT_MIN_MS, CONFIG_WAIT_MAX_MS, 1)) ||
	    (e = msg_get_int(r, "max_wait_normal_ms",
	         &c->max_wait_ms[PRIO_NORMAL], CONFIG_WAIT_MIN_MS,
	         CONFIG_WAIT_MAX_MS, 1)) ||
	    (e = msg_get_int(r, "max_wait_high_ms", &c->max_wait_ms[PRIO_HIGH],
	         CONFIG_WAIT_MIN_MS, CONFIG_WAIT_MAX_MS, 1)) ||
	    (e = msg_get_int(r, "min_residency_ms", &c->min_residency_ms, 0,
	         CONFIG_WAIT_MAX_MS, 1)) ||
	    (e = msg_get_int(r, "idle_unload_ms", &c->idle_unload_ms, 0,
	         CONFIG_WAIT_MAX_MS, 1)) ||
	    (e = msg_get_int(r, "lease_ms", &c->lease_ms, CONFIG_LEASE_MIN_MS,
	         CONFIG_WAIT_MAX_MS, 1)) ||
	    (e = msg_get_int(r, "vram_mb", &vram_mb, CONFIG_VRAM_MIN_MB,
	         CONFIG_MB_MAX, 1)) ||
	    (e = msg_get_str(r, "backend_url", c->backend_url,
	         sizeof(c->backend_url), 1)) ||
	    (e = msg_get_int(r, "connect_timeout_ms", &c->connect_timeout_ms,
	         CONFIG_TIMEOUT_MIN_MS, CONFIG_TIMEOUT_MAX_MS, 1)) ||
	    (e = msg_get_int(r, "first_byte_timeout_ms",
	         &c->first_byte_timeout_ms, CONFIG_TIMEOUT_MIN_MS,
	         CONFIG_TIMEOUT_MAX_MS, 1)) ||
	    (e = msg_get_int(r, "stall_timeout_ms", &c->stall_timeout_ms,
	         CONFIG_TIMEOUT_MIN_MS, CONFIG_TIMEOUT_MAX_MS, 1)) ||
	    (e = msg_get_int(r, "answer_timeout_ms", &c->answer_timeout_ms,
	         CONFIG_TIMEOUT_MIN_MS, CONFIG_ANSWER_TIMEOUT_MAX_MS, 1)) ||
	    (e = get_array(r, "tiers", &tiers, CONFIG_SECTIONS_MAX, 1)) ||
	    (e = get_array(r, "models", &models, CONFIG_SECTIONS_MAX, 1)))
		return e;
	if (strncmp(c->backend_url, "http://", 7) != 0 &&
	    strncmp(c->backend_url, "https://", 8) != 0)
		return fail(r, MSG_E_FIELD_RANGE, "backend_url", "not http(s)");
	c->parallel = parallel;
	c->vram_mb = vram_mb;
	c->max_loaded = max_loaded;
	if (tiers->size == 0)
		return fail(r, MSG_E_FIELD_RANGE, "tiers", "empty");
	c->tiers = calloc(tiers->size, sizeof(*c->tiers));
	c->models = calloc(models->size + 1, sizeof(*c->models));
	if (c->tiers == NULL || c->models == NULL)
		abort();
	for (uint32_t i = 0; i < tiers->size; i++) {
		if ((e = get_item(r, "tiers", tiers, i, &item)))
			return e;
		if (tier_decode(&item, &c->tiers[i]) != MSG_OK)
			return item_failed(r, "tiers", i, &item);
		c->ntiers++;
	}
	for (uint32_t i = 0; i < models->size; i++) {
		if ((e = get_item(r, "models", models, i, &item)))
			return e;
		if (model_decode(&item, &c->models[i]) != MSG_OK)
			return item_failed(r, "models", i, &item);
		c->nmodels++;
	}
	/* Every fallback names a tier sent along: the broker follows them. */
	for (size_t i = 0; i < c->ntiers; i++)
		if (c->tiers[i].fallback[0] != '\0' &&
		    config_tier(c, c->tiers[i].fallback) == NULL)
			return fail(r, MSG_E_FIELD_RANGE, "tiers",
			    "a fallback names no tier");
	return MSG_OK;
}

enum msg_error
msg_setup_decode(struct msg_reader *r, struct msg_setup *m)
{
	int64_t role = 0;
	uint64_t stack = 0, pages = 0;
	enum msg_error e;

	memset(m, 0, sizeof(*m));
	if ((e = expect_type(r, MSG_SETUP)) ||
	    (e = msg_get_int(r, "role", &role, ROLE_BROKER, ROLE_WORKER, 1)))
		return e;
	m->role = (int)role;
	if (m->role == ROLE_BROKER) {
		if ((e = broker_setup_decode(r, &m->conf)) != MSG_OK)
			msg_setup_free(m);
		return e;
	}
	if ((e = msg_get_str(r, "state_dir", m->conf.state_dir,
	         sizeof(m->conf.state_dir), 1)) ||
	    (e = msg_get_uint(r, "stack_size", &stack, 1)) ||
	    (e = msg_get_uint(r, "pages", &pages, 1)))
		return e;
	if (m->conf.state_dir[0] != '/')
		return fail(r, MSG_E_FIELD_RANGE, "state_dir", "not absolute");
	if (stack < CONFIG_STACK_MIN || stack > CONFIG_STACK_MAX)
		return fail(r, MSG_E_FIELD_RANGE, "stack_size", "out of range");
	if (pages > UINT32_MAX)
		return fail(r, MSG_E_FIELD_RANGE, "pages", "out of range");
	m->conf.stack_size = (size_t)stack;
	m->pages = (uint32_t)pages;
	return MSG_OK;
}

void
msg_setup_free(struct msg_setup *m)
{
	config_free(&m->conf);
}

void
msg_fetch_encode(struct msg_writer *w, const struct msg_fetch *m)
{
	msg_begin(w, MSG_FETCH, 3);
	msg_put_int(w, "index", m->index);
	msg_put_int(w, "pid", m->pid);
	msg_put_uint(w, "page", m->page);
}

enum msg_error
msg_fetch_decode(struct msg_reader *r, struct msg_fetch *m)
{
	int64_t page = 0, index = 0;
	enum msg_error e;

	memset(m, 0, sizeof(*m));
	if ((e = expect_type(r, MSG_FETCH)) ||
	    (e = msg_get_int(r, "index", &index, 0, 4096, 1)) ||
	    (e = msg_get_int(r, "pid", &m->pid, 1, INT32_MAX, 1)) ||
	    (e = msg_get_int(r, "page", &page, 0, UINT32_MAX, 1)))
		return e;
	m->index = (int)index;
	m->page = (uint32_t)page;
	return MSG_OK;
}

/* ------------------------------------------------------------------ */
/* Agents                                                             */
/* ------------------------------------------------------------------ */

#define MANIFEST_FIELDS 14

static void
manifest_encode(struct msg_writer *w, const struct manifest *a)
{
	put_map(w, MANIFEST_FIELDS);
	msg_put_str(w, "path", a->path);
	msg_put_str(w, "name", a->name);
	msg_put_str(w, "role", a->role);
	msg_put_str(w, "tier", a->tier);
	msg_put_int(w, "priority", a->priority);
	msg_put_int(w, "trigger", a->trigger);
	msg_put_int(w, "every_ms", a->every_ms);
	msg_put_int(w, "jitter_pct", a->jitter_pct);
	msg_put_int(w, "output", a->output);
	msg_put_str(w, "output_target", a->output_target);
	msg_put_str(w, "system", a->system);
	msg_put_str(w, "prompt", a->prompt);
	msg_put_int(w, "num_predict", a->num_predict);
	msg_put_double(w, "temperature", a->temperature);
}

/* What a manifest adds to a frame, near enough to cut pages by. */
static size_t
manifest_bytes(const struct manifest *a)
{
	return 512 + (a->path ? strlen(a->path) : 0) +
	    (a->system ? strlen(a->system) : 0) +
	    (a->prompt ? strlen(a->prompt) : 0);
}

static enum msg_error
manifest_decode(struct msg_reader *r, struct manifest *a)
{
	int64_t priority = 0, trigger = 0, every = 0, jitter = 0, output = 0,
	        num_predict = -1;
	enum msg_error e;

	a->temperature = -1;
	if ((e = msg_get_str_dup(r, "path", &a->path, PATH_MAX, 1)) ||
	    (e = msg_get_str(r, "name", a->name, sizeof(a->name), 1)) ||
	    (e = msg_get_str(r, "role", a->role, sizeof(a->role), 0)) ||
	    (e = msg_get_str(r, "tier", a->tier, sizeof(a->tier), 1)) ||
	    (e = msg_get_int(
	         r, "priority", &priority, PRIO_LOW, PRIO_HIGH, 1)) ||
	    (e = msg_get_int(
	         r, "trigger", &trigger, TRIGGER_EVERY, TRIGGER_DEMAND, 1)) ||
	    (e = msg_get_int(
	         r, "every_ms", &every, 0, CONFIG_EVERY_MAX_MS, 1)) ||
	    (e = msg_get_int(
	         r, "jitter_pct", &jitter, 0, CONFIG_JITTER_MAX, 1)) ||
	    (e = msg_get_int(
	         r, "output", &output, OUTPUT_LOG, OUTPUT_AGENT, 1)) ||
	    (e = msg_get_str(r, "output_target", a->output_target,
	         sizeof(a->output_target), 0)) ||
	    (e = msg_get_str_dup(r, "system", &a->system, MSG_MAX_TEXT, 0)) ||
	    (e = msg_get_str_dup(r, "prompt", &a->prompt, MSG_MAX_TEXT, 1)) ||
	    (e = msg_get_int(
	         r, "num_predict", &num_predict, -1, CONFIG_PREDICT_MAX, 0)) ||
	    (e = msg_get_double(r, "temperature", &a->temperature, -1,
	         CONFIG_TEMPERATURE_MAX, 0)))
		return e;
	if (!config_valid_name(a->name))
		return fail(r, MSG_E_FIELD_RANGE, "name", "not an agent name");
	if (!config_valid_name(a->tier))
		return fail(r, MSG_E_FIELD_RANGE, "tier", "not a tier name");
	if (trigger == TRIGGER_EVERY && every < CONFIG_EVERY_MIN_MS)
		return fail(r, MSG_E_FIELD_RANGE, "every_ms", "out of range");
	if (output != OUTPUT_LOG && a->output_target[0] == '\0')
		return fail(r, MSG_E_FIELD_RANGE, "output_target", "empty");
	if (output == OUTPUT_AGENT && !config_valid_name(a->output_target))
		return fail(
		    r, MSG_E_FIELD_RANGE, "output_target", "not an agent name");
	/* A file stays inside the state dir. */
	if (output == OUTPUT_FILE &&
	    (a->output_target[0] == '/' || strstr(a->output_target, "..")))
		return fail(r, MSG_E_FIELD_RANGE, "output_target",
		    "leaves the state dir");
	/* An empty system prompt is no system prompt. */
	if (a->system != NULL && a->system[0] == '\0') {
		free(a->system);
		a->system = NULL;
	}
	a->priority = (int)priority;
	a->trigger = (enum trigger_kind)trigger;
	a->every_ms = every;
	a->jitter_pct = (int)jitter;
	a->output = (enum output_kind)output;
	a->num_predict = num_predict;
	return MSG_OK;
}

size_t
msg_agents_encode(struct msg_writer *w, int replace, int64_t until_ms,
    const struct manifest *const *agents, size_t count)
{
	size_t n = 0, bytes = 0;

	while (n < count &&
	    (n == 0 || bytes + manifest_bytes(agents[n]) <= MSG_PAGE_BYTES))
		bytes += manifest_bytes(agents[n++]);
	msg_begin(w, MSG_AGENTS, 2 + (until_ms != 0));
	msg_put_bool(w, "replace", replace);
	if (until_ms != 0)
		msg_put_int(w, "until", until_ms);
	put_array(w, "agents", n);
	for (size_t i = 0; i < n; i++)
		manifest_encode(w, agents[i]);
	return n;
}

enum msg_error
msg_agents_decode(struct msg_reader *r, struct msg_agents *m)
{
	const msgpack_object_array *list;
	struct msg_reader item;
	enum msg_error e;

	memset(m, 0, sizeof(*m));
	if ((e = expect_type(r, MSG_AGENTS)) ||
	    (e = msg_get_bool(r, "replace", &m->replace, 1)) ||
	    (e = msg_get_int(r, "until", &m->until_ms, 0, INT64_MAX, 0)) ||
	    (e = get_array(r, "agents", &list, MSG_MAX_FRAME / 16, 1)))
		return e;
	m->agents = calloc(list->size + 1, sizeof(*m->agents));
	if (m->agents == NULL)
		abort();
	for (uint32_t i = 0; i < list->size; i++) {
		if ((e = get_item(r, "agents", list, i, &item)) != MSG_OK)
			break;
		m->count++;
		if (manifest_decode(&item, &m->agents[i]) != MSG_OK) {
			e = item_failed(r, "agents", i, &item);
			break;
		}
	}
	if (e != MSG_OK)
		msg_agents_free(m);
	return e;
}

void
msg_agents_free(struct msg_agents *m)
{
	for (size_t i = 0; i < m->count; i++)
		manifest_free(&m->agents[i]);
	free(m->agents);
	m->agents = NULL;
	m->count = 0;
}

void
msg_deliver_encode(struct msg_writer *w, const struct msg_deliver *m)
{
	msg_begin(w, MSG_DELIVER, 4 + (m->until_ms != 0));
	msg_put_bool(w, "wait", m->wait);
	msg_put_str(w, "to", m->to);
	msg_put_str(w, "from", m->from);
	msg_put_str(w, "input", m->input);
	if (m->until_ms != 0)
		msg_put_int(w, "until", m->until_ms);
}

enum msg_error
msg_deliver_decode(struct msg_reader *r, struct msg_deliver *m)
{
	enum msg_error e;

	memset(m, 0, sizeof(*m));
	if ((e = expect_type(r, MSG_DELIVER)) ||
	    (e = msg_get_str(r, "to", m->to, sizeof(m->to), 1)) ||
	    (e = msg_get_str(r, "from", m->from, sizeof(m->from), 1)) ||
	    (e = msg_get_bool(r, "wait", &m->wait, 0)) ||
	    (e = msg_get_int(r, "until", &m->until_ms, 0, INT64_MAX, 0)) ||
	    (e = msg_get_str_dup(r, "input", &m->input, MSG_MAX_TEXT, 1)))
		return e;
	if (!config_valid_name(m->to)) {
		msg_deliver_free(m);
		return fail(r, MSG_E_FIELD_RANGE, "to", "not an agent name");
	}
	return MSG_OK;
}

void
msg_deliver_free(struct msg_deliver *m)
{
	free(m->input);
	m->input = NULL;
}

void
msg_cancel_encode(struct msg_writer *w, const struct msg_cancel *m)
{
	msg_begin(w, MSG_CANCEL, 4);
	msg_put_uint(w, "id", m->id);
	msg_put_int(w, "worker", m->worker);
	msg_put_uint(w, "started", m->started);
	msg_put_bool(w, "given_up", m->given_up);
}

enum msg_error
msg_cancel_decode(struct msg_reader *r, struct msg_cancel *m)
{
	int64_t worker = 0;
	enum msg_error e;

	memset(m, 0, sizeof(*m));
	if ((e = expect_type(r, MSG_CANCEL)) ||
	    (e = msg_get_uint(r, "id", &m->id, 1)) ||
	    (e = msg_get_int(r, "worker", &worker, 0, 4096, 1)) ||
	    (e = msg_get_uint(r, "started", &m->started, 0)) ||
	    (e = msg_get_bool(r, "given_up", &m->given_up, 1)))
		return e;
	m->worker = (int)worker;
	return MSG_OK;
}
