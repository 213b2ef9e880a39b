/*
 * The frame codec: every frame survives a round trip, and every decoder
 * refuses truncated, mistyped, oversized and random frames with an error,
 * never a crash.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "policy.h"

static char *
copy_frame(struct msg_writer *w, size_t *len)
{
	const char *data = msg_data(w, len);
	char *copy = malloc(*len);

	memcpy(copy, data, *len);
	msg_writer_free(w);
	return copy;
}

/* The frame in w (freed here), read by decode into *out, is refused with
 * err, and the reader names the field: field_detail. */
#define assert_refused(w, decode, out, err, field_detail)                      \
	do {                                                                   \
		struct msg_reader r_;                                          \
		size_t len_;                                                   \
		char *frame_ = copy_frame((w), &len_);                         \
                                                                               \
		cr_assert_eq(msg_open(&r_, frame_, len_), MSG_OK);             \
		cr_assert_eq(decode(&r_, (out)), (err), "not refused: %s",     \
		    (field_detail));                                           \
		cr_assert_str_eq(r_.detail, (field_detail));                   \
		msg_close(&r_);                                                \
		free(frame_);                                                  \
	} while (0)

static struct msg_infer
sample_infer(void)
{
	struct msg_infer m = {
	    .id = 42,
	    .worker = 1,
	    .started = 987654321,
	    .priority = PRIO_HIGH,
	    .num_predict = 250,
	    .temperature = 0.2,
	    .system = "You review code.",
	    .prompt = "Review this change.",
	};

	strcpy(m.agent, "code-reviewer");
	strcpy(m.tier, "coding");
	return m;
}

/* Encodes the sample inference frame into a malloc'd buffer. */
static char *
infer_frame(size_t *len)
{
	struct msg_infer m = sample_infer();
	struct msg_writer w;
	const char *data;
	char *copy;

	msg_infer_encode(&w, &m);
	data = msg_data(&w, len);
	copy = malloc(*len);
	memcpy(copy, data, *len);
	msg_writer_free(&w);
	return copy;
}

Test(msg, an_inference_frame_survives_a_round_trip)
{
	size_t len;
	char *frame = infer_frame(&len);
	struct msg_reader r;
	struct msg_infer m;

	cr_assert_eq(msg_open(&r, frame, len), MSG_OK, "%s", r.detail);
	cr_assert_eq(r.type, MSG_INFER);
	cr_assert_eq(msg_infer_decode(&r, &m), MSG_OK, "%s", r.detail);
	cr_assert_eq(m.id, 42);
	cr_assert_eq(m.worker, 1);
	cr_assert_eq(m.started, 987654321);
	cr_assert_eq(m.priority, PRIO_HIGH);
	cr_assert_eq(m.num_predict, 250);
	cr_assert_float_eq(m.temperature, 0.2, 1e-12);
	cr_assert_str_eq(m.agent, "code-reviewer");
	cr_assert_str_eq(m.tier, "coding");
	cr_assert_str_eq(m.system, "You review code.");
	cr_assert_str_eq(m.prompt, "Review this change.");
	msg_infer_free(&m);
	msg_close(&r);
	free(frame);
}

Test(msg, a_result_frame_survives_a_round_trip)
{
	struct msg_infer_done in = {.id = 7,
	    .status = INFER_OK,
	    .prompt_tokens = 600,
	    .eval_tokens = 400,
	    .queued_ms = 12,
	    .total_ms = 30000,
	    .text = "The answer."};
	struct msg_infer_done out;
	struct msg_writer w;
	struct msg_reader r;
	const char *data;
	size_t len;

	strcpy(in.model, "deepseek-r1:8b");
	msg_infer_done_encode(&w, &in);
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_OK);
	cr_assert_eq(msg_infer_done_decode(&r, &out), MSG_OK, "%s", r.detail);
	cr_assert_eq(out.id, 7);
	cr_assert_eq(out.eval_tokens, 400);
	cr_assert_eq(out.total_ms, 30000);
	cr_assert_str_eq(out.model, "deepseek-r1:8b");
	cr_assert_str_eq(out.text, "The answer.");
	msg_infer_done_free(&out);
	msg_close(&r);
	msg_writer_free(&w);
}

Test(msg, hello_and_ctl_frames_survive_a_round_trip)
{
	struct msg_hello h = {.role = ROLE_WORKER,
	                     .index = 3,
	                     .pid = 1234,
	                     .started = 5678901234ULL},
	                 h2;
	struct msg_ctl c = {.json = 1,
	                   .arg = "reviewer",
	                   .until_ms = 7,
	                   .id = 0xfedcba9876543210ULL,
	                   .from_supervisor = 1},
	               c2;
	struct msg_ctl_reply cr = {.ok = 0,
	                         .body = "{\"a\":1}",
	                         .from_supervisor = 1},
	                     cr2;
	struct msg_writer w;
	struct msg_reader r;
	const char *data;
	size_t len;

	msg_hello_encode(&w, &h);
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_OK);
	cr_assert_eq(msg_hello_decode(&r, &h2), MSG_OK);
	cr_assert_eq(h2.role, ROLE_WORKER);
	cr_assert_eq(h2.index, 3);
	cr_assert_eq(h2.pid, 1234);
	cr_assert_eq(h2.started, 5678901234ULL);
	msg_close(&r);
	msg_writer_free(&w);

	strcpy(c.verb, "kill");
	msg_ctl_encode(&w, &c);
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_OK);
	cr_assert_eq(msg_ctl_decode(&r, &c2), MSG_OK);
	cr_assert_str_eq(c2.verb, "kill");
	cr_assert_str_eq(c2.arg, "reviewer");
	cr_assert(c2.json);
	cr_assert_eq(c2.until_ms, 7);
	cr_assert_eq(c2.id, 0xfedcba9876543210ULL);
	cr_assert(c2.from_supervisor);
	msg_ctl_free(&c2);
	msg_close(&r);
	msg_writer_free(&w);

	strcpy(cr.error, "no such agent");
	msg_ctl_reply_encode(&w, &cr);
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_OK);
	cr_assert_eq(msg_ctl_reply_decode(&r, &cr2), MSG_OK);
	cr_assert_not(cr2.ok);
	cr_assert_str_eq(cr2.error, "no such agent");
	cr_assert_str_eq(cr2.body, "{\"a\":1}");
	cr_assert(cr2.from_supervisor);
	msg_ctl_reply_free(&cr2);
	msg_close(&r);
	msg_writer_free(&w);
}

Test(msg, every_truncation_of_a_frame_is_refused)
{
	size_t len;
	char *frame = infer_frame(&len);

	for (size_t cut = 0; cut < len; cut++) {
		struct msg_reader r;
		struct msg_infer m;
		enum msg_error e = msg_open(&r, frame, cut);

		if (e == MSG_OK)
			e = msg_infer_decode(&r, &m);
		cr_assert_neq(
		    e, MSG_OK, "a frame cut at %zu of %zu was read", cut, len);
		msg_close(&r);
	}
	free(frame);
}

Test(msg, bytes_after_a_frame_are_refused)
{
	size_t len;
	char *frame = infer_frame(&len);
	char *longer = malloc(len + 1);
	struct msg_reader r;

	memcpy(longer, frame, len);
	longer[len] = 0x01;
	cr_assert_eq(msg_open(&r, longer, len + 1), MSG_E_TRAILING);
	msg_close(&r);
	free(frame);
	free(longer);
}

/* Packs {"v":..., "t":..., key: <value written by fn>} by hand. */
static void
hand_frame(struct msg_writer *w, int64_t version, int64_t type)
{
	msgpack_sbuffer_init(&w->buf);
	msgpack_packer_init(&w->pk, &w->buf, msgpack_sbuffer_write);
	msgpack_pack_map(&w->pk, 2);
	msgpack_pack_str(&w->pk, 1);
	msgpack_pack_str_body(&w->pk, "v", 1);
	msgpack_pack_int64(&w->pk, version);
	msgpack_pack_str(&w->pk, 1);
	msgpack_pack_str_body(&w->pk, "t", 1);
	msgpack_pack_int64(&w->pk, type);
}

Test(msg, a_frame_of_another_version_or_an_unknown_type_is_refused)
{
	struct msg_writer w;
	struct msg_reader r;
	const char *data;
	size_t len;

	hand_frame(&w, MSG_VERSION + 1, MSG_INFER);
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_E_VERSION);
	cr_assert_str_eq(r.detail, "v: unsupported protocol version");
	msg_close(&r);
	msg_writer_free(&w);
	hand_frame(&w, MSG_VERSION, 999);
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_E_TYPE);
	msg_close(&r);
	msg_writer_free(&w);
}

Test(msg, a_frame_that_is_not_a_map_is_refused)
{
	char array[] = {(char)0x92, 0x01, 0x02};
	struct msg_reader r;

	cr_assert_eq(msg_open(&r, array, sizeof(array)), MSG_E_NOT_A_MAP);
	msg_close(&r);
}

Test(msg, a_decoder_refuses_a_frame_of_another_type)
{
	struct msg_writer w;
	struct msg_reader r;
	struct msg_infer m;
	const char *data;
	size_t len;

	msg_hello_encode(
	    &w, &(struct msg_hello){.role = ROLE_WORKER, .pid = 1});
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_OK);
	cr_assert_eq(msg_infer_decode(&r, &m), MSG_E_TYPE);
	msg_close(&r);
	msg_writer_free(&w);
}

Test(msg, a_command_is_late_only_past_an_until_it_carries)
{
	struct msg_ctl c = {.arg = "a"}, c2;
	struct msg_writer w;
	struct msg_reader r;
	struct msg_deliver out;
	const char *data;
	size_t len;

	cr_assert_eq(msg_late_ms(0), 0, "without until, never late");
	cr_assert_eq(msg_late_ms(msg_clock_ms() + 10000), 0);
	cr_assert_geq(msg_late_ms(msg_clock_ms() - 500), 500);

	strcpy(c.verb, "kill");
	msg_ctl_encode(&w, &c);
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_OK);
	cr_assert_eq(msg_ctl_decode(&r, &c2), MSG_OK);
	cr_assert_eq(c2.until_ms, 0, "none sent, none read");
	msg_ctl_free(&c2);
	msg_close(&r);
	msg_writer_free(&w);

	msg_begin(&w, MSG_DELIVER, 5);
	msg_put_bool(&w, "wait", 0);
	msg_put_str(&w, "to", "scribe");
	msg_put_str(&w, "from", "asker");
	msg_put_str(&w, "input", "x");
	msg_put_int(&w, "until", -5);
	assert_refused(&w, msg_deliver_decode, &out, MSG_E_FIELD_RANGE,
	    "until: out of range");
}

Test(msg, mistyped_and_out_of_range_fields_are_refused_with_their_name)
{
	struct msg_infer m = sample_infer();
	struct msg_writer w;
	struct msg_infer out;

	/* priority 7 is not a priority */
	m.priority = 7;
	msg_infer_encode(&w, &m);
	assert_refused(&w, msg_infer_decode, &out, MSG_E_FIELD_RANGE,
	    "priority: out of range");

	/* an agent name as an integer */
	msg_begin(&w, MSG_INFER, 4);
	msg_put_uint(&w, "id", 1);
	msg_put_int(&w, "worker", 0);
	msg_put_int(&w, "agent", 5);
	msg_put_str(&w, "tier", "light");
	assert_refused(&w, msg_infer_decode, &out, MSG_E_FIELD_TYPE,
	    "agent: not a string");

	/* no prompt */
	msg_begin(&w, MSG_INFER, 4);
	msg_put_uint(&w, "id", 1);
	msg_put_int(&w, "worker", 0);
	msg_put_str(&w, "agent", "a");
	msg_put_str(&w, "tier", "light");
	assert_refused(
	    &w, msg_infer_decode, &out, MSG_E_FIELD_MISSING, "prompt: missing");
}

Test(msg, a_command_id_that_is_no_id_is_refused_by_name)
{
	struct msg_writer w;
	struct msg_ctl out;

	msg_begin(&w, MSG_CTL, 2);
	msg_put_str(&w, "verb", "kill");
	msg_put_str(&w, "id", "1234");
	assert_refused(&w, msg_ctl_decode, &out, MSG_E_FIELD_TYPE,
	    "id: not an unsigned integer");

	msg_begin(&w, MSG_CTL, 2);
	msg_put_str(&w, "verb", "kill");
	msg_put_int(&w, "id", -1);
	assert_refused(&w, msg_ctl_decode, &out, MSG_E_FIELD_TYPE,
	    "id: not an unsigned integer");

	/* 0 stands for no id, which a frame leaves out. */
	msg_begin(&w, MSG_CTL, 2);
	msg_put_str(&w, "verb", "kill");
	msg_put_uint(&w, "id", 0);
	assert_refused(
	    &w, msg_ctl_decode, &out, MSG_E_FIELD_RANGE, "id: out of range");
}

Test(msg, text_cut_inside_a_character_goes_out_whole_characters_only)
{
	struct msg_infer_done in = {.id = 7, .status = INFER_FAILED};
	struct msg_infer_done out;
	struct msg_writer w;
	struct msg_reader r;
	const char *data;
	size_t len;

	/* "cafe" and the first byte of a two-byte é: a cut error text. */
	strcpy(in.error, "cafe \xc3");
	msg_infer_done_encode(&w, &in);
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_OK);
	cr_assert_eq(msg_infer_done_decode(&r, &out), MSG_OK, "%s", r.detail);
	cr_assert_str_eq(out.error, "cafe ");
	msg_infer_done_free(&out);
	msg_close(&r);
	msg_writer_free(&w);
}

Test(msg, a_bad_byte_inside_a_text_goes_out_as_a_question_mark_not_a_cut)
{
	/* Cut at the bad byte, "extra\xff" would name the agent extra. */
	struct msg_ctl in = {.verb = "kill",
	    .arg = "extra\xff",
	    .input = "a\xe9"
	             "b \xc3"};
	struct msg_ctl out;
	struct msg_writer w;
	struct msg_reader r;
	const char *data;
	size_t len;

	msg_ctl_encode(&w, &in);
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_OK);
	cr_assert_eq(msg_ctl_decode(&r, &out), MSG_OK, "%s", r.detail);
	cr_assert_str_eq(out.arg, "extra?");
	/* One byte for one inside; a character cut short at the end goes. */
	cr_assert_str_eq(out.input, "a?b ");
	msg_ctl_free(&out);
	msg_close(&r);
	msg_writer_free(&w);
}

Test(msg, a_text_field_that_is_not_utf8_is_refused_by_name)
{
	struct msg_infer out;
	struct msg_writer w;

	msg_begin(&w, MSG_INFER, 5);
	msg_put_uint(&w, "id", 1);
	msg_put_int(&w, "worker", 0);
	msg_put_str(&w, "agent", "a");
	msg_put_str(&w, "tier", "light");
	/* Packed by hand: the writer never sends such text. */
	msgpack_pack_str(&w.pk, 6);
	msgpack_pack_str_body(&w.pk, "prompt", 6);
	msgpack_pack_str(&w.pk, 4);
	msgpack_pack_str_body(&w.pk, "Caf\xe9", 4);
	assert_refused(&w, msg_infer_decode, &out, MSG_E_FIELD_RANGE,
	    "prompt: not UTF-8 text");
}

Test(msg, oversized_fields_and_frames_are_refused)
{
	struct msg_infer m = sample_infer();
	char agent[200];
	struct msg_writer w;
	struct msg_reader r;
	struct msg_infer out;
	const char *data;
	size_t len;
	char *huge;

	memset(agent, 'a', sizeof(agent) - 1);
	agent[sizeof(agent) - 1] = '\0';
	msg_begin(&w, MSG_INFER, 5);
	msg_put_uint(&w, "id", 1);
	msg_put_int(&w, "worker", 0);
	msg_put_str(&w, "agent", agent);
	msg_put_str(&w, "tier", "light");
	msg_put_str(&w, "prompt", "p");
	assert_refused(
	    &w, msg_infer_decode, &out, MSG_E_FIELD_RANGE, "agent: too long");

	huge = malloc(MSG_MAX_TEXT + 2);
	memset(huge, 'x', MSG_MAX_TEXT + 1);
	huge[MSG_MAX_TEXT + 1] = '\0';
	m.prompt = huge;
	msg_infer_encode(&w, &m);
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_OK);
	cr_assert_eq(msg_infer_decode(&r, &out), MSG_E_FIELD_RANGE);
	msg_close(&r);
	msg_writer_free(&w);
	free(huge);

	huge = calloc(1, MSG_MAX_FRAME + 1);
	cr_assert_eq(msg_open(&r, huge, MSG_MAX_FRAME + 1), MSG_E_TOO_BIG);
	msg_close(&r);
	free(huge);
}

/* A map of pairs of fixints, as many as asked: two bytes a pair. */
static unsigned char *
map_of_pairs(uint32_t pairs, size_t *len)
{
	unsigned char *p = malloc(5 + 2 * (size_t)pairs);

	cr_assert_not_null(p);
	p[0] = 0xdf;
	p[1] = (unsigned char)(pairs >> 24);
	p[2] = (unsigned char)(pairs >> 16);
	p[3] = (unsigned char)(pairs >> 8);
	p[4] = (unsigned char)pairs;
	memset(p + 5, 1, 2 * (size_t)pairs);
	*len = 5 + 2 * (size_t)pairs;
	return p;
}

Test(msg, a_frame_of_more_objects_than_any_frame_has_is_refused_unbuilt)
{
	struct msg_reader r;
	unsigned char *p;
	size_t len;

	/* Well under the size limit, but 80001 objects to build. */
	p = map_of_pairs(40000, &len);
	cr_assert_eq(msg_open(&r, p, len), MSG_E_TOO_BIG);
	cr_assert_not_null(strstr(r.detail, "more objects"), "%s", r.detail);
	msg_close(&r);
	free(p);
	/* Within the limit, it is built, and refused for what it lacks. */
	p = map_of_pairs((MSG_OBJECTS_MAX - 1) / 2, &len);
	cr_assert_eq(msg_open(&r, p, len), MSG_E_VERSION);
	msg_close(&r);
	free(p);
}

Test(msg, random_bytes_and_random_mutations_never_crash_a_decoder)
{
	size_t len;
	char *frame = infer_frame(&len);
	char buf[512];
	uint64_t x = 88172645463325252ULL;
	int accepted = 0;

	for (int i = 0; i < 200000; i++) {
		struct msg_reader r;
		size_t n;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (i % 2 == 0) {
			/* a valid frame with a few bytes flipped */
			memcpy(buf, frame, len);
			n = len;
			for (int k = 0; k < 1 + (int)(x % 4); k++)
				buf[(x >> (8 * k)) % len] ^= (char)(x >> 32);
		} else {
			n = x % sizeof(buf);
			for (size_t k = 0; k < n; k++)
				buf[k] = (char)(x >> (k % 56));
		}
		if (msg_open(&r, buf, n) == MSG_OK) {
			struct msg_infer m;
			struct msg_infer_done d;
			struct msg_hello h;
			struct msg_ctl c;
			struct msg_ctl_reply cr;

			if (msg_infer_decode(&r, &m) == MSG_OK) {
				accepted++;
				msg_infer_free(&m);
			}
			if (msg_infer_done_decode(&r, &d) == MSG_OK)
				msg_infer_done_free(&d);
			if (msg_ctl_decode(&r, &c) == MSG_OK)
				msg_ctl_free(&c);
			if (msg_ctl_reply_decode(&r, &cr) == MSG_OK)
				msg_ctl_reply_free(&cr);
			(void)msg_hello_decode(&r, &h);
		}
		msg_close(&r);
	}
	/* Some flips land in text and leave a valid frame: the test saw both.
	 */
	cr_assert_gt(accepted, 0);
	cr_assert_lt(accepted, 100000);
	free(frame);
}

Test(
    msg, a_tiny_frame_that_declares_a_huge_map_is_refused_before_any_allocation)
{
	/* map32 with 2^31 entries, then nothing: msgpack-c alone would try
	 * to allocate tens of gigabytes for it. */
	const char frame[] = {(char)0xdf, 0x7f, (char)0xff, (char)0xff,
	    (char)0xff, (char)0xa1, 'v', 0x01};
	const char array[] = {(char)0xdd, 0x10, 0x00, 0x00, 0x00};
	struct msg_reader r;

	cr_assert_eq(msg_open(&r, frame, sizeof(frame)), MSG_E_TRUNCATED);
	msg_close(&r);
	cr_assert_eq(msg_open(&r, array, sizeof(array)), MSG_E_TRUNCATED);
	msg_close(&r);
}

/* ------------------------------------------------------------------ */
/* Setup, agents and messages: the config as frames                   */
/* ------------------------------------------------------------------ */

static struct config
sample_broker_config(void)
{
	static struct tier_conf tiers[2] = {
	    {.name = "coding",
	        .model = "qwen2.5-coder:7b",
	        .fallback = "light"},
	    {.name = "light", .model = "tinyllama"},
	};
	static struct model_conf models[1] = {
	    {.name = "tinyllama",
	        .size_mb = 638,
	        .kv_mb = 88,
	        .num_ctx = 2048,
	        .pin = 1},
	};
	struct config c = {
	    .parallel = 2,
	    .vram_mb = 4096,
	    .max_loaded = 3,
	    .max_wait_ms = {900000, 300000, 120000},
	    .min_residency_ms = 30000,
	    .idle_unload_ms = 0,
	    .lease_ms = 90000,
	    .connect_timeout_ms = 5000,
	    .first_byte_timeout_ms = 300000,
	    .stall_timeout_ms = 60000,
	    .answer_timeout_ms = 1800000,
	    .tiers = tiers,
	    .ntiers = 2,
	    .models = models,
	    .nmodels = 1,
	};

	strcpy(c.backend_url, "http://127.0.0.1:11434");
	return c;
}

Test(msg, a_broker_setup_carries_its_part_of_the_config)
{
	struct msg_setup in = {
	    .role = ROLE_BROKER, .conf = sample_broker_config()};
	struct msg_setup out;
	struct msg_writer w;
	struct msg_reader r;
	size_t len;
	char *frame;

	msg_setup_encode(&w, &in);
	frame = copy_frame(&w, &len);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
	cr_assert_eq(msg_setup_decode(&r, &out), MSG_OK, "%s", r.detail);
	cr_assert_eq(out.role, ROLE_BROKER);
	cr_assert_eq(out.conf.parallel, 2);
	cr_assert_eq(out.conf.vram_mb, 4096);
	cr_assert_str_eq(out.conf.backend_url, "http://127.0.0.1:11434");
	cr_assert_eq(out.conf.first_byte_timeout_ms, 300000);
	cr_assert_eq(out.conf.answer_timeout_ms, 1800000);
	cr_assert_eq(out.conf.ntiers, 2);
	cr_assert_str_eq(out.conf.tiers[0].fallback, "light");
	cr_assert_str_eq(out.conf.tiers[1].model, "tinyllama");
	cr_assert_eq(out.conf.nmodels, 1);
	cr_assert_eq(out.conf.models[0].size_mb, 638);
	cr_assert_eq(out.conf.models[0].num_ctx, 2048);
	cr_assert_eq(out.conf.models[0].kv_mb, 88);
	cr_assert_eq(out.conf.models[0].pin, 1);
	cr_assert_eq(out.conf.models[0].preload, 0);
	cr_assert_eq(out.conf.max_loaded, 3);
	cr_assert_eq(out.conf.max_wait_ms[PRIO_HIGH], 120000);
	cr_assert_eq(out.conf.max_wait_ms[PRIO_LOW], 900000);
	cr_assert_eq(out.conf.min_residency_ms, 30000);
	cr_assert_eq(out.conf.lease_ms, 90000);
	msg_setup_free(&out);
	msg_close(&r);
	free(frame);
}

Test(msg, a_worker_setup_carries_its_state_dir_stack_and_pages)
{
	struct msg_setup in = {.role = ROLE_WORKER, .pages = 3};
	struct msg_setup out;
	struct msg_writer w;
	struct msg_reader r;
	size_t len;
	char *frame;

	strcpy(in.conf.state_dir, "/var/lib/ollamax");
	in.conf.stack_size = 65536;
	msg_setup_encode(&w, &in);
	frame = copy_frame(&w, &len);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
	cr_assert_eq(msg_setup_decode(&r, &out), MSG_OK, "%s", r.detail);
	cr_assert_eq(out.role, ROLE_WORKER);
	cr_assert_str_eq(out.conf.state_dir, "/var/lib/ollamax");
	cr_assert_eq(out.conf.stack_size, 65536);
	cr_assert_eq(out.pages, 3);
	msg_setup_free(&out);
	msg_close(&r);
	free(frame);

	/* A relative state dir would resolve against the wrong folder. */
	strcpy(in.conf.state_dir, "state");
	msg_setup_encode(&w, &in);
	assert_refused(&w, msg_setup_decode, &out, MSG_E_FIELD_RANGE,
	    "state_dir: not absolute");
}

Test(msg, a_broker_setup_whose_fallback_names_no_tier_is_refused)
{
	struct msg_setup in = {
	    .role = ROLE_BROKER, .conf = sample_broker_config()};
	struct tier_conf tiers[1] = {
	    {.name = "coding", .model = "m", .fallback = "gone"}};
	struct msg_setup out;
	struct msg_writer w;

	in.conf.tiers = tiers;
	in.conf.ntiers = 1;
	msg_setup_encode(&w, &in);
	assert_refused(&w, msg_setup_decode, &out, MSG_E_FIELD_RANGE,
	    "tiers: a fallback names no tier");
}

static struct manifest
sample_manifest(const char *name, const char *system)
{
	struct manifest m = {
	    .path = (char *)"/etc/ollamax/conf.d/x.conf",
	    .priority = PRIO_LOW,
	    .trigger = TRIGGER_EVERY,
	    .every_ms = 60000,
	    .jitter_pct = 15,
	    .output = OUTPUT_AGENT,
	    .system = (char *)system,
	    .prompt = (char *)"Look at {{input}}.",
	    .num_predict = 40,
	    .temperature = 0.3,
	};

	strcpy(m.name, name);
	strcpy(m.role, "Looks at things");
	strcpy(m.tier, "light");
	strcpy(m.output_target, "scribe");
	return m;
}

Test(msg, agents_survive_a_round_trip_whole)
{
	struct manifest a = sample_manifest("watcher", "Be brief."),
	                b = sample_manifest("other", NULL);
	const struct manifest *list[] = {&a, &b};
	struct msg_agents out;
	struct msg_writer w;
	struct msg_reader r;
	size_t len;
	char *frame;

	b.trigger = TRIGGER_INBOX;
	b.every_ms = 0;
	b.output = OUTPUT_FILE;
	strcpy(b.output_target, "notes.md");
	cr_assert_eq(msg_agents_encode(&w, 1, 123456789, list, 2), 2);
	frame = copy_frame(&w, &len);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
	cr_assert_eq(msg_agents_decode(&r, &out), MSG_OK, "%s", r.detail);
	cr_assert_eq(out.replace, 1);
	cr_assert_eq(out.until_ms, 123456789);
	cr_assert_eq(out.count, 2);
	cr_assert(manifest_same(&out.agents[0], &a));
	cr_assert(manifest_same(&out.agents[1], &b));
	cr_assert_null(out.agents[1].system);
	msg_agents_free(&out);
	msg_close(&r);
	free(frame);
}

Test(msg, agents_are_cut_into_pages_that_each_fit_a_frame)
{
	enum { N = 40 };
	static char big[MSG_MAX_TEXT];
	struct manifest m[N];
	const struct manifest *list[N];
	size_t done = 0, pages = 0;

	memset(big, 'x', sizeof(big) - 1);
	for (int i = 0; i < N; i++) {
		char name[16];

		snprintf(name, sizeof(name), "agent%d", i);
		/* Every other one carries a system prompt of 256 KiB. */
		m[i] = sample_manifest(name, i % 2 ? big : NULL);
		list[i] = &m[i];
	}
	while (done < N) {
		struct msg_writer w;
		struct msg_reader r;
		struct msg_agents out;
		size_t len, took;
		char *frame;

		took = msg_agents_encode(&w, 0, 0, list + done, N - done);
		frame = copy_frame(&w, &len);
		cr_assert_gt(took, 0);
		cr_assert_leq(len, MSG_MAX_FRAME);
		cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
		cr_assert_eq(
		    msg_agents_decode(&r, &out), MSG_OK, "%s", r.detail);
		cr_assert_eq(out.count, took);
		cr_assert_str_eq(out.agents[0].name, m[done].name);
		msg_agents_free(&out);
		msg_close(&r);
		free(frame);
		done += took;
		pages++;
	}
	cr_assert_gt(pages, 1);
}

Test(msg, a_bad_agent_in_a_page_is_refused_by_its_index_and_field)
{
	struct manifest a = sample_manifest("fine", NULL),
	                b = sample_manifest("Not A Name", NULL),
	                c = sample_manifest("escapes", NULL);
	const struct manifest *list[] = {&a, &b};
	struct msg_agents out;
	struct msg_writer w;
	struct msg_reader r;
	size_t len;
	char *frame;

	msg_agents_encode(&w, 0, 0, list, 2);
	frame = copy_frame(&w, &len);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
	cr_assert_eq(msg_agents_decode(&r, &out), MSG_E_FIELD_RANGE);
	cr_assert_str_eq(r.detail, "agents[1]: name: not an agent name");
	cr_assert_eq(out.count, 0);
	msg_close(&r);
	free(frame);

	/* A file output may not leave the state dir. */
	c.output = OUTPUT_FILE;
	strcpy(c.output_target, "../../etc/passwd");
	list[1] = &c;
	msg_agents_encode(&w, 0, 0, list, 2);
	frame = copy_frame(&w, &len);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
	cr_assert_eq(msg_agents_decode(&r, &out), MSG_E_FIELD_RANGE);
	cr_assert_str_eq(
	    r.detail, "agents[1]: output_target: leaves the state dir");
	msg_close(&r);
	free(frame);
}

Test(msg, an_agents_item_that_is_not_a_map_is_refused)
{
	struct msg_writer w;
	struct msg_agents out;

	msg_begin(&w, MSG_AGENTS, 2);
	msg_put_bool(&w, "replace", 0);
	/* The array by hand: one string where a map belongs. */
	msgpack_pack_str(&w.pk, 6);
	msgpack_pack_str_body(&w.pk, "agents", 6);
	msgpack_pack_array(&w.pk, 1);
	msgpack_pack_int(&w.pk, 7);
	assert_refused(&w, msg_agents_decode, &out, MSG_E_FIELD_TYPE,
	    "agents[0]: not a map");
}

Test(msg, a_cancel_frame_survives_a_round_trip_and_is_no_infer)
{
	struct msg_cancel c = {.id = 0x1234567800000009ULL,
	                      .worker = 3,
	                      .started = 123456789,
	                      .given_up = 1},
	                  out;
	struct msg_infer inf;
	struct msg_writer w;
	struct msg_reader r;
	size_t len;
	char *frame;

	msg_cancel_encode(&w, &c);
	frame = copy_frame(&w, &len);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
	cr_assert_eq(r.type, MSG_CANCEL);
	cr_assert_eq(msg_infer_decode(&r, &inf), MSG_E_TYPE);
	cr_assert_eq(msg_cancel_decode(&r, &out), MSG_OK);
	cr_assert_eq(out.id, c.id);
	cr_assert_eq(out.worker, 3);
	cr_assert_eq(out.started, 123456789);
	cr_assert_eq(out.given_up, 1);
	msg_close(&r);
	free(frame);
}

Test(msg, deliver_fetch_and_ready_frames_survive_a_round_trip)
{
	struct msg_deliver d = {.input = (char *)"three findings",
	                       .until_ms = 5},
	                   dout;
	struct msg_fetch f = {.index = 1, .pid = 4242, .page = 7}, fout;
	struct msg_hello h = {.role = ROLE_WORKER, .index = 1, .pid = 4242},
	                 hout;
	struct msg_writer w;
	struct msg_reader r;
	size_t len;
	char *frame;

	strcpy(d.to, "scribe");
	strcpy(d.from, "asker");
	msg_deliver_encode(&w, &d);
	frame = copy_frame(&w, &len);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
	cr_assert_eq(msg_deliver_decode(&r, &dout), MSG_OK);
	cr_assert_str_eq(dout.to, "scribe");
	cr_assert_str_eq(dout.from, "asker");
	cr_assert_str_eq(dout.input, "three findings");
	cr_assert_eq(dout.until_ms, 5);
	msg_deliver_free(&dout);
	msg_close(&r);
	free(frame);

	msg_fetch_encode(&w, &f);
	frame = copy_frame(&w, &len);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
	cr_assert_eq(msg_fetch_decode(&r, &fout), MSG_OK);
	cr_assert_eq(fout.index, 1);
	cr_assert_eq(fout.pid, 4242);
	cr_assert_eq(fout.page, 7);
	msg_close(&r);
	free(frame);

	char names[2][MSG_NAME_MAX] = {"a7", "checker-2"};
	struct msg_ready ready = {.child = h,
	                     .not_started = names,
	                     .nnot_started = 2},
	                 rout;

	msg_ready_encode(&w, &ready);
	frame = copy_frame(&w, &len);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
	/* ready and hello look alike but are not each other. */
	cr_assert_eq(msg_hello_decode(&r, &hout), MSG_E_TYPE);
	cr_assert_eq(msg_ready_decode(&r, &rout), MSG_OK);
	cr_assert_eq(rout.child.pid, 4242);
	cr_assert_eq(rout.nnot_started, 2);
	cr_assert_str_eq(rout.not_started[0], "a7");
	cr_assert_str_eq(rout.not_started[1], "checker-2");
	msg_ready_free(&rout);
	msg_close(&r);
	free(frame);
}

/* A ready frame's names are agents' names, whole. */
static enum msg_error
ready_with_name(const char *name, size_t len)
{
	struct msg_writer w;
	struct msg_reader r;
	struct msg_ready out;
	enum msg_error e;
	size_t flen;
	char *frame;

	msg_begin(&w, MSG_READY, 5);
	msg_put_int(&w, "role", ROLE_WORKER);
	msg_put_int(&w, "index", 0);
	msg_put_int(&w, "pid", 42);
	msg_put_uint(&w, "started", 7);
	msgpack_pack_str(&w.pk, 11);
	msgpack_pack_str_body(&w.pk, "not_started", 11);
	msgpack_pack_array(&w.pk, 1);
	msgpack_pack_str(&w.pk, len);
	msgpack_pack_str_body(&w.pk, name, len);
	frame = copy_frame(&w, &flen);
	cr_assert_eq(msg_open(&r, frame, flen), MSG_OK);
	e = msg_ready_decode(&r, &out);
	if (e == MSG_OK)
		msg_ready_free(&out);
	msg_close(&r);
	free(frame);
	return e;
}

/* The frame of a literal name, its NULs and all. */
#define READY_NAMED(literal) ready_with_name(literal, sizeof(literal) - 1)

Test(msg, a_ready_frame_names_only_agents)
{
	cr_assert_eq(READY_NAMED("fine-name"), MSG_OK);
	cr_assert_eq(READY_NAMED("Not A Name"), MSG_E_FIELD_RANGE);
	cr_assert_eq(READY_NAMED("a\0b"), MSG_E_FIELD_TYPE);
	/* 49 bytes: past an agent's name, within a frame's. */
	cr_assert_eq(
	    READY_NAMED("a-name-longer-than-an-agent-may-have-at-all-xxxxx"),
	    MSG_E_FIELD_RANGE);
	/* 64: past a frame's. */
	cr_assert_eq(READY_NAMED("a-name-longer-than-a-frame-name-holds-at-all-"
	                         "xxxxxxxxxxxxxxxxxxx"),
	    MSG_E_FIELD_TYPE);
}

Test(msg, mutated_setup_and_agents_frames_never_crash_a_decoder)
{
	struct msg_setup broker = {
	    .role = ROLE_BROKER, .conf = sample_broker_config()};
	struct manifest a = sample_manifest("watcher", "Be brief."),
	                b = sample_manifest("other", NULL);
	const struct manifest *list[] = {&a, &b};
	struct msg_writer w;
	size_t lens[2];
	char *frames[2], buf[2048];
	uint64_t x = 0x2545F4914F6CDD1DULL;
	int accepted = 0;

	msg_setup_encode(&w, &broker);
	frames[0] = copy_frame(&w, &lens[0]);
	msg_agents_encode(&w, 0, 0, list, 2);
	frames[1] = copy_frame(&w, &lens[1]);
	cr_assert_leq(lens[0], sizeof(buf));
	cr_assert_leq(lens[1], sizeof(buf));
	for (int i = 0; i < 100000; i++) {
		int k = i % 2;
		struct msg_reader r;
		struct msg_setup s;
		struct msg_agents ag;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf, frames[k], lens[k]);
		for (int j = 0; j < 1 + (int)(x % 3); j++)
			buf[(x >> (8 * j)) % lens[k]] ^= (char)(x >> 40);
		if (msg_open(&r, buf, lens[k]) == MSG_OK) {
			if (msg_setup_decode(&r, &s) == MSG_OK) {
				accepted++;
				msg_setup_free(&s);
			}
			if (msg_agents_decode(&r, &ag) == MSG_OK) {
				accepted++;
				msg_agents_free(&ag);
			}
		}
		msg_close(&r);
	}
	cr_assert_gt(accepted, 0);
	cr_assert_lt(accepted, 100000);
	free(frames[0]);
	free(frames[1]);
}

/* ------------------------------------------------------------------ */
/* Reports: a child's counters, the broker's plan                     */
/* ------------------------------------------------------------------ */

static struct msg_report
sample_broker_report(void)
{
	struct msg_report m = {
	    .role = ROLE_BROKER,
	    .pid = 27856,
	    .busy = 1,
	    .queued = 4,
	    .served = 40,
	    .nresident = 2,
	    .noutside = 1,
	    .loads = 8,
	    .unloads = 7,
	    .offered_load = 1.25,
	    .overloaded = 1,
	    .nmodels = 1,
	    .models = {{.need_mb = 3802,
	        .waiting = 4,
	        .oldest_wait_ms = 95210,
	        .loads = 2}},
	};

	strcpy(m.resident[0], "qwen2.5-coder:7b");
	strcpy(m.resident[1], "llama3.2:3b");
	strcpy(m.outside[0], "llama3.2:3b");
	strcpy(m.next_switch, "deepseek-r1:8b");
	strcpy(m.next_switch_why, "turn");
	strcpy(m.models[0].name, "deepseek-r1:8b");
	strcpy(m.models[0].state, "unloaded");
	return m;
}

Test(msg, a_broker_report_survives_a_round_trip_with_its_plan)
{
	struct msg_report in = sample_broker_report(), out;
	struct msg_writer w;
	struct msg_reader r;
	size_t len;
	char *frame;

	msg_report_encode(&w, &in);
	frame = copy_frame(&w, &len);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK, "%s", r.detail);
	cr_assert_eq(msg_report_decode(&r, &out), MSG_OK, "%s", r.detail);
	cr_assert_eq(out.role, ROLE_BROKER);
	cr_assert_eq(out.pid, 27856);
	cr_assert_eq(out.busy, 1);
	cr_assert_eq(out.queued, 4);
	cr_assert_eq(out.served, 40);
	cr_assert_eq(out.nresident, 2);
	cr_assert_str_eq(out.resident[0], "qwen2.5-coder:7b");
	cr_assert_str_eq(out.resident[1], "llama3.2:3b");
	cr_assert_eq(out.noutside, 1);
	cr_assert_str_eq(out.outside[0], "llama3.2:3b");
	cr_assert_eq(out.loads, 8);
	cr_assert_eq(out.unloads, 7);
	cr_assert_str_eq(out.next_switch, "deepseek-r1:8b");
	cr_assert_str_eq(out.next_switch_why, "turn");
	cr_assert_float_eq(out.offered_load, 1.25, 1e-12);
	cr_assert(out.overloaded);
	cr_assert_eq(out.nmodels, 1);
	cr_assert_str_eq(out.models[0].name, "deepseek-r1:8b");
	cr_assert_str_eq(out.models[0].state, "unloaded");
	cr_assert_eq(out.models[0].oldest_wait_ms, 95210);
	msg_close(&r);
	free(frame);

	/* No switch under way: no reason, and a light load. */
	in.next_switch[0] = in.next_switch_why[0] = '\0';
	in.offered_load = 0.72;
	in.overloaded = 0;
	msg_report_encode(&w, &in);
	frame = copy_frame(&w, &len);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
	cr_assert_eq(msg_report_decode(&r, &out), MSG_OK, "%s", r.detail);
	cr_assert_str_eq(out.next_switch, "");
	cr_assert_str_eq(out.next_switch_why, "");
	cr_assert_float_eq(out.offered_load, 0.72, 1e-12);
	cr_assert_not(out.overloaded);
	msg_close(&r);
	free(frame);
}

Test(msg, a_broker_report_tells_whether_the_backend_answers)
{
	struct msg_report in = sample_broker_report(), out;
	struct msg_writer w;
	struct msg_reader r;
	size_t len;
	char *frame;

	in.backend = BACKEND_UNREACHABLE;
	in.backend_away_since = 123456789;
	/* The longest error a report carries goes whole. */
	memset(in.backend_error, 'e', sizeof(in.backend_error) - 1);
	memcpy(in.backend_error, "http://127.0.0.1:11434/api/ps: ", 31);
	msg_report_encode(&w, &in);
	frame = copy_frame(&w, &len);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK, "%s", r.detail);
	cr_assert_eq(msg_report_decode(&r, &out), MSG_OK, "%s", r.detail);
	cr_assert_eq(out.backend, BACKEND_UNREACHABLE);
	cr_assert_eq(out.backend_away_since, 123456789);
	cr_assert_str_eq(out.backend_error, in.backend_error);
	msg_close(&r);
	free(frame);

	/* Before the broker's first call ends, nothing is known; a worker's
	 * report says the same. */
	in = sample_broker_report();
	msg_report_encode(&w, &in);
	frame = copy_frame(&w, &len);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
	cr_assert_eq(msg_report_decode(&r, &out), MSG_OK, "%s", r.detail);
	cr_assert_eq(out.backend, BACKEND_UNKNOWN);
	cr_assert_eq(out.backend_away_since, 0);
	cr_assert_str_eq(out.backend_error, "");
	msg_close(&r);
	free(frame);

	in.backend = BACKEND_REACHABLE;
	msg_report_encode(&w, &in);
	frame = copy_frame(&w, &len);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
	cr_assert_eq(msg_report_decode(&r, &out), MSG_OK, "%s", r.detail);
	cr_assert_eq(out.backend, BACKEND_REACHABLE);
	msg_close(&r);
	free(frame);
}

/* The words are the policy's own: a reason it gains that the codec does
 * not know fails here. */
Test(msg, every_switch_reason_survives_a_round_trip)
{
	for (int why = SWITCH_NONE + 1; why <= SWITCH_LAST; why++) {
		const char *word = policy_switch_reason_name(why);
		struct msg_report in = sample_broker_report(), out;
		struct msg_writer w;
		struct msg_reader r;
		size_t len;
		char *frame;

		strcpy(in.next_switch_why, word);
		msg_report_encode(&w, &in);
		frame = copy_frame(&w, &len);
		cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
		cr_assert_eq(msg_report_decode(&r, &out), MSG_OK, "%s: %s",
		    word, r.detail);
		cr_assert_str_eq(out.next_switch_why, word);
		msg_close(&r);
		free(frame);
	}
}

/* A broker report's header, then one more field to be refused. */
static void
report_header(struct msg_writer *w)
{
	msg_begin(w, MSG_REPORT, 4);
	msg_put_int(w, "role", ROLE_BROKER);
	msg_put_int(w, "index", 0);
	msg_put_int(w, "pid", 1);
}

Test(msg, a_report_with_a_bad_switch_reason_or_load_is_refused_by_name)
{
	struct msg_report in = sample_broker_report(), out;
	struct msg_writer w;
	/* "none" is the policy's word for no switch, which a report says
	 * with an empty reason: the word itself is not one of the four. */
	static const char *const bad[] = {"cheap", "none", "Turn"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(in.next_switch_why, bad[i]);
		msg_report_encode(&w, &in);
		assert_refused(&w, msg_report_decode, &out, MSG_E_FIELD_RANGE,
		    "next_switch_why: not a switch reason");
	}
	strcpy(in.next_switch_why, "turn");
	in.offered_load = -0.5;
	msg_report_encode(&w, &in);
	assert_refused(&w, msg_report_decode, &out, MSG_E_FIELD_RANGE,
	    "offered_load: out of range");
	/* A reason as a number, overloaded as a number: mistyped. */
	report_header(&w);
	msg_put_int(&w, "next_switch_why", 2);
	assert_refused(&w, msg_report_decode, &out, MSG_E_FIELD_TYPE,
	    "next_switch_why: not a string");
	report_header(&w);
	msg_put_int(&w, "overloaded", 1);
	assert_refused(&w, msg_report_decode, &out, MSG_E_FIELD_TYPE,
	    "overloaded: not a boolean");
	/* Models loaded outside ollamax, named by numbers. */
	report_header(&w);
	msgpack_pack_str(&w.pk, 7);
	msgpack_pack_str_body(&w.pk, "outside", 7);
	msgpack_pack_array(&w.pk, 1);
	msgpack_pack_int(&w.pk, 7);
	assert_refused(&w, msg_report_decode, &out, MSG_E_FIELD_TYPE,
	    "outside: not a list of model names");
}

Test(msg, a_report_of_the_backend_that_makes_no_sense_is_refused_by_name)
{
	struct msg_report out;
	struct msg_writer w;
	char error[MSG_BACKEND_ERROR_MAX + 1];

	report_header(&w);
	msg_put_int(&w, "backend", BACKEND_UNREACHABLE + 1);
	assert_refused(&w, msg_report_decode, &out, MSG_E_FIELD_RANGE,
	    "backend: out of range");
	report_header(&w);
	msg_put_str(&w, "backend", "unreachable");
	assert_refused(&w, msg_report_decode, &out, MSG_E_FIELD_TYPE,
	    "backend: not an integer");
	report_header(&w);
	msg_put_int(&w, "backend_away_since", -1);
	assert_refused(&w, msg_report_decode, &out, MSG_E_FIELD_RANGE,
	    "backend_away_since: out of range");
	memset(error, 'e', sizeof(error) - 1);
	error[sizeof(error) - 1] = '\0';
	report_header(&w);
	msg_put_str(&w, "backend_error", error);
	assert_refused(&w, msg_report_decode, &out, MSG_E_FIELD_RANGE,
	    "backend_error: too long");
	/* Unreachable since no time at all: status could not count how long. */
	msg_begin(&w, MSG_REPORT, 5);
	msg_put_int(&w, "role", ROLE_BROKER);
	msg_put_int(&w, "index", 0);
	msg_put_int(&w, "pid", 1);
	msg_put_int(&w, "backend", BACKEND_UNREACHABLE);
	msg_put_str(&w, "backend_error", "Connection refused");
	assert_refused(&w, msg_report_decode, &out, MSG_E_FIELD_MISSING,
	    "backend_away_since: none given for a backend that cannot be reached");
}

/* A body as large as fits, with the longest error beside it, still makes a
 * frame a socket takes; one byte more is turned into a failure. */
Test(msg, a_ctl_reply_fits_a_frame_or_says_its_size)
{
	struct msg_ctl_reply reply = {.ok = 1};
	struct msg_writer w;
	struct msg_reader r;
	struct msg_ctl_reply out;
	size_t most = 0, len;
	char *body, *frame;

	body = malloc(MSG_MAX_FRAME + 2);
	cr_assert_not_null(body);
	memset(body, 'b', MSG_MAX_FRAME + 1);
	memset(reply.error, 'e', sizeof(reply.error) - 1);
	/* The longest body that fits, found by halving: fit is monotonic. */
	for (size_t lo = 0, hi = MSG_MAX_FRAME + 1; lo < hi;) {
		size_t mid = (lo + hi + 1) / 2;

		body[mid] = '\0';
		reply.body = body;
		reply.ok = 1;
		if (msg_ctl_reply_fit(&reply))
			hi = mid - 1;
		else
			lo = mid;
		body[mid] = 'b';
		most = lo;
	}
	cr_assert_gt(most, 0);
	body[most] = '\0';
	reply.ok = 1;
	reply.body = body;
	memset(reply.error, 'e', sizeof(reply.error) - 1);
	reply.error[sizeof(reply.error) - 1] = '\0';
	msg_ctl_reply_encode(&w, &reply);
	frame = copy_frame(&w, &len);
	cr_assert_leq(len, MSG_MAX_FRAME);
	cr_assert_eq(msg_open(&r, frame, len), MSG_OK);
	cr_assert_eq(msg_ctl_reply_decode(&r, &out), MSG_OK, "%s", r.detail);
	cr_assert_eq(strlen(out.body), most);
	msg_ctl_reply_free(&out);
	msg_close(&r);
	free(frame);

	body[most] = 'b';
	body[most + 1] = '\0';
	reply = (struct msg_ctl_reply){.ok = 1, .body = body};
	cr_assert_eq(msg_ctl_reply_fit(&reply), 1);
	cr_assert_eq(reply.ok, 0);
	cr_assert_null(reply.body);
	cr_assert(strstr(reply.error, "bytes, more than the") != NULL, "%s",
	    reply.error);
	free(body);
}
