/*
 * The frame codec: every frame survives a round trip, and every decoder
 * refuses truncated, mistyped, oversized and random frames with an error,
 * never a crash.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

static struct msg_infer
sample_infer(void)
{
	struct msg_infer m = {
	    .id = 42,
	    .worker = 1,
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
	struct msg_hello h = {.role = ROLE_WORKER, .index = 3, .pid = 1234}, h2;
	struct msg_ctl c = {.json = 1, .arg = "reviewer"}, c2;
	struct msg_ctl_reply cr = {.ok = 0, .body = "{\"a\":1}"}, cr2;
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

Test(msg, mistyped_and_out_of_range_fields_are_refused_with_their_name)
{
	struct msg_infer m = sample_infer();
	struct msg_writer w;
	struct msg_reader r;
	struct msg_infer out;
	const char *data;
	size_t len;

	/* priority 7 is not a priority */
	m.priority = 7;
	msg_infer_encode(&w, &m);
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_OK);
	cr_assert_eq(msg_infer_decode(&r, &out), MSG_E_FIELD_RANGE);
	cr_assert_str_eq(r.detail, "priority: out of range");
	msg_close(&r);
	msg_writer_free(&w);

	/* an agent name as an integer */
	msg_begin(&w, MSG_INFER, 4);
	msg_put_uint(&w, "id", 1);
	msg_put_int(&w, "worker", 0);
	msg_put_int(&w, "agent", 5);
	msg_put_str(&w, "tier", "light");
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_OK);
	cr_assert_eq(msg_infer_decode(&r, &out), MSG_E_FIELD_TYPE);
	cr_assert_str_eq(r.detail, "agent: not a string");
	msg_close(&r);
	msg_writer_free(&w);

	/* no prompt */
	msg_begin(&w, MSG_INFER, 4);
	msg_put_uint(&w, "id", 1);
	msg_put_int(&w, "worker", 0);
	msg_put_str(&w, "agent", "a");
	msg_put_str(&w, "tier", "light");
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_OK);
	cr_assert_eq(msg_infer_decode(&r, &out), MSG_E_FIELD_MISSING);
	cr_assert_str_eq(r.detail, "prompt: missing");
	msg_close(&r);
	msg_writer_free(&w);
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
	data = msg_data(&w, &len);
	cr_assert_eq(msg_open(&r, data, len), MSG_OK);
	cr_assert_eq(msg_infer_decode(&r, &out), MSG_E_FIELD_RANGE);
	cr_assert_str_eq(r.detail, "agent: too long");
	msg_close(&r);
	msg_writer_free(&w);

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
