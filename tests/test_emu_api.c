/*
 * Request parsing, keep-alive parsing, and the timing and text models of
 * the emulator: what Ollama accepts, refuses (with its words) and reports.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu/emu.h"

static int
parse(enum api_kind kind, const char *body, struct api_request *req,
    struct api_error *err)
{
	return api_request_parse(kind, body, strlen(body), req, err);
}

static void
expect_error(
    enum api_kind kind, const char *body, int status, const char *message)
{
	struct api_request req;
	struct api_error err;

	cr_assert_eq(parse(kind, body, &req, &err), -1, "accepted %s", body);
	cr_assert_eq(err.status, status, "%s", body);
	cr_assert_str_eq(err.message, message);
}

Test(duration, go_durations_parse_as_go_does)
{
	static const struct {
		const char *text;
		int64_t ns;
	} ok[] = {
	    {"10m", 600 * NS_PER_SEC},
	    {"1h30m", 5400 * NS_PER_SEC},
	    {"1.5s", 1500000000},
	    {"0", 0},
	    {"250ms", 250000000},
	    {"2us", 2000},
	    {"-1m", EMU_FOREVER},
	    {"-0s", 0},
	    {"+5s", 5 * NS_PER_SEC},
	};
	char err[128];
	int64_t ns;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(duration_parse(ok[i].text, &ns, err, sizeof(err)),
		    0, "%s: %s", ok[i].text, err);
		cr_assert_eq(ns, ok[i].ns, "%s", ok[i].text);
	}
}

Test(duration, a_bare_number_string_is_missing_its_unit)
{
	char err[128];
	int64_t ns;

	cr_assert_eq(duration_parse("300", &ns, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "time: missing unit in duration \"300\"");
	cr_assert_eq(duration_parse("5x", &ns, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "time: unknown unit \"x\" in duration \"5x\"");
	cr_assert_eq(duration_parse("", &ns, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "time: invalid duration \"\"");
	cr_assert_eq(duration_parse("m", &ns, err, sizeof(err)), -1);
}

/* Go's time.ParseDuration takes anything that fits int64 nanoseconds, to
 * the last one, and nothing past. */
Test(duration, durations_up_to_the_int64_limit_parse_and_no_further)
{
	static const struct {
		const char *text;
		int64_t ns;
	} ok[] = {
	    {"2562047h", 2562047LL * 3600 * NS_PER_SEC},
	    {"2562047h47m16.854775807s", INT64_MAX},
	    {"9223372036854775807ns", INT64_MAX},
	    {"9223372036854775.807us", INT64_MAX},
	    {"-9223372036854775808ns", EMU_FOREVER},
	    {"1.001ms", 1001000},
	    {"0.000000001s", 1},
	    {"1.00000000000000000000000001s", NS_PER_SEC},
	};
	static const char *const bad[] = {
	    "2562048h",
	    "2562047h47m16.854775808s",
	    "9223372036854775808ns",
	    "-9223372036854775809ns",
	    "9223372036854775807ns1ns",
	    "-9223372036854775808ns1ns",
	    "99999999999999999999ns",
	    "5124095h5124095h",
	};
	char err[128], want[128];
	int64_t ns;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(duration_parse(ok[i].text, &ns, err, sizeof(err)),
		    0, "%s: %s", ok[i].text, err);
		cr_assert_eq(
		    ns, ok[i].ns, "%s: %lld", ok[i].text, (long long)ns);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(duration_parse(bad[i], &ns, err, sizeof(err)), -1,
		    "accepted %s", bad[i]);
		snprintf(want, sizeof(want), "time: invalid duration \"%s\"",
		    bad[i]);
		cr_assert_str_eq(err, want);
	}
}

Test(duration, json_keep_alive_takes_seconds_strings_and_null)
{
	char err[128];
	int64_t ns = -5;
	int present;
	json_t *v;

	/* Ollama's time.Duration(t * float64(time.Second)): the fraction
	 * is kept, 0.9 does not unload. */
	v = json_real(2.5);
	cr_assert_eq(
	    emu_keep_alive_from_json(v, &present, &ns, err, sizeof(err)), 0);
	cr_assert(present);
	cr_assert_eq(ns, 2500000000LL);
	json_decref(v);
	v = json_real(0.9);
	emu_keep_alive_from_json(v, &present, &ns, err, sizeof(err));
	cr_assert_eq(ns, 900000000LL);
	json_decref(v);
	v = json_real(-0.5);
	emu_keep_alive_from_json(v, &present, &ns, err, sizeof(err));
	cr_assert_eq(ns, EMU_FOREVER);
	json_decref(v);
	/* Past what Go's int64 holds: forever, not an error. */
	v = json_real(1e10);
	cr_assert_eq(
	    emu_keep_alive_from_json(v, &present, &ns, err, sizeof(err)), 0);
	cr_assert_eq(ns, EMU_FOREVER);
	json_decref(v);
	v = json_stringn("5m\0junk", 7);
	cr_assert_eq(
	    emu_keep_alive_from_json(v, &present, &ns, err, sizeof(err)), -1);
	cr_assert_str_eq(err,
	    "keep_alive: a NUL character (\\u0000) in the duration is not "
	    "taken");
	json_decref(v);
	v = json_integer(-1);
	emu_keep_alive_from_json(v, &present, &ns, err, sizeof(err));
	cr_assert_eq(ns, EMU_FOREVER);
	json_decref(v);
	v = json_null();
	emu_keep_alive_from_json(v, &present, &ns, err, sizeof(err));
	cr_assert_not(present);
	json_decref(v);
	v = json_true();
	cr_assert_eq(
	    emu_keep_alive_from_json(v, &present, &ns, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "Unsupported type: 'bool'");
	json_decref(v);
}

Test(api, a_whole_body_that_is_wrong_at_its_end_is_not_cut_short)
{
	expect_error(API_GENERATE, "{\"model\":\"a:1\",}", 400,
	    "invalid character in JSON at offset 16: string or '}' expected "
	    "near '}'");
	expect_error(API_GENERATE, "{\"model\":\"a:1\"]", 400,
	    "invalid character in JSON at offset 15: '}' expected near ']'");
	expect_error(API_GENERATE, "{\"a\":tru", 400, "unexpected EOF");
}

Test(api, an_empty_body_is_a_missing_request_body)
{
	expect_error(API_GENERATE, "", 400, "missing request body");
	expect_error(API_CHAT, "  \n", 400, "missing request body");
}

Test(api, malformed_json_is_a_400)
{
	expect_error(API_GENERATE, "{\"model\":", 400, "unexpected EOF");
	{
		struct api_request req;
		struct api_error err;

		cr_assert_eq(parse(API_GENERATE, "{model}", &req, &err), -1);
		cr_assert_eq(err.status, 400);
		cr_assert(strstr(err.message, "invalid character") != NULL);
	}
}

Test(api, a_body_that_is_not_an_object_is_refused_as_go_refuses_it)
{
	expect_error(API_GENERATE, "[1,2]", 400,
	    "json: cannot unmarshal array into Go value of type api.GenerateRequest");
	expect_error(API_CHAT, "5", 400,
	    "json: cannot unmarshal number into Go value of type api.ChatRequest");
	expect_error(API_GENERATE, " \"hi\"", 400,
	    "json: cannot unmarshal string into Go value of type api.GenerateRequest");
	expect_error(API_EMBED, "true", 400,
	    "json: cannot unmarshal bool into Go value of type api.EmbedRequest");
	/* null is no value at all: the request then lacks its model. */
	{
		struct api_request req;
		struct api_error err;

		cr_assert_eq(parse(API_GENERATE, "null", &req, &err), 0);
		cr_assert_str_eq(req.model, "");
		api_request_free(&req);
	}
}

Test(api, a_delete_names_its_model_by_model_or_name_in_a_delete_request)
{
	struct api_request req;
	struct api_error err;

	cr_assert_eq(
	    parse(API_DELETE, "{\"name\":\"tinyllama\"}", &req, &err), 0);
	cr_assert_str_eq(req.model, "tinyllama");
	api_request_free(&req);
	/* An empty model is as none: the name says which. */
	cr_assert_eq(
	    parse(API_SHOW, "{\"model\":\"\",\"name\":\"b:1\"}", &req, &err),
	    0);
	cr_assert_str_eq(req.model, "b:1");
	api_request_free(&req);
	cr_assert_eq(
	    parse(API_SHOW, "{\"model\":\"a:1\",\"name\":\"b:1\"}", &req, &err),
	    0);
	cr_assert_str_eq(req.model, "a:1");
	api_request_free(&req);
	expect_error(API_DELETE, "{\"model\":5}", 400,
	    "json: cannot unmarshal number into Go struct field DeleteRequest.model of type string");
	expect_error(API_DELETE, "", 400, "missing request body");
}

Test(api, wrongly_typed_fields_are_refused_with_gos_message)
{
	expect_error(API_GENERATE, "{\"model\":\"m\",\"prompt\":5}", 400,
	    "json: cannot unmarshal number into Go struct field GenerateRequest.prompt of type string");
	expect_error(API_GENERATE, "{\"model\":\"m\",\"stream\":\"yes\"}", 400,
	    "json: cannot unmarshal string into Go struct field GenerateRequest.stream of type bool");
	expect_error(API_CHAT, "{\"model\":\"m\",\"messages\":{}}", 400,
	    "json: cannot unmarshal object into Go struct field ChatRequest.messages of type []api.Message");
	expect_error(API_CHAT,
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":7}]}",
	    400,
	    "json: cannot unmarshal number into Go struct field ChatRequest.messages.content of type string");
	expect_error(API_CHAT,
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"tool_calls\":\"f\"}]}",
	    400,
	    "json: cannot unmarshal string into Go struct field ChatRequest.messages.tool_calls of type []api.ToolCall");
	expect_error(API_CHAT,
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"tool_calls\":[1]}]}",
	    400,
	    "json: cannot unmarshal number into Go struct field ChatRequest.messages.tool_calls of type api.ToolCall");
	expect_error(API_EMBED, "{\"model\":\"m\",\"truncate\":\"no\"}", 400,
	    "json: cannot unmarshal string into Go struct field EmbedRequest.truncate of type bool");
	expect_error(API_EMBED, "{\"model\":\"m\",\"dimensions\":\"64\"}", 400,
	    "json: cannot unmarshal string into Go struct field EmbedRequest.dimensions of type int");
	expect_error(API_EMBED, "{\"model\":\"m\",\"dimensions\":1.5}", 400,
	    "json: cannot unmarshal number into Go struct field EmbedRequest.dimensions of type int");
	expect_error(API_SHOW, "{\"model\":\"m\",\"verbose\":1}", 400,
	    "json: cannot unmarshal number into Go struct field ShowRequest.verbose of type bool");
}

Test(api, rightly_typed_fields_are_taken)
{
	static const struct {
		enum api_kind kind;
		const char *body;
	} ok[] = {
	    {API_CHAT,
	        "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\","
	        "\"tool_calls\":[{\"function\":{\"name\":\"f\","
	        "\"arguments\":{}}}]}]}"},
	    {API_CHAT,
	        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
	        "\"tool_calls\":null}]}"},
	    {API_EMBED,
	        "{\"model\":\"m\",\"input\":\"x\",\"truncate\":false,"
	        "\"dimensions\":64}"},
	    {API_EMBED,
	        "{\"model\":\"m\",\"truncate\":null,\"dimensions\":null}"},
	    {API_SHOW, "{\"model\":\"m\",\"verbose\":true}"},
	};
	struct api_request req;
	struct api_error err;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(parse(ok[i].kind, ok[i].body, &req, &err), 0,
		    "%s: %s", ok[i].body, err.message);
		api_request_free(&req);
	}
}

Test(api, wrongly_typed_options_are_a_400_and_unknown_ones_a_warning)
{
	struct api_request req;
	struct api_error err;

	expect_error(API_GENERATE,
	    "{\"model\":\"m\",\"options\":{\"temperature\":\"hot\"}}", 400,
	    "option \"temperature\" must be of type float32");
	expect_error(API_GENERATE,
	    "{\"model\":\"m\",\"options\":{\"num_ctx\":true}}", 400,
	    "option \"num_ctx\" must be of type integer");
	expect_error(API_GENERATE,
	    "{\"model\":\"m\",\"options\":{\"stop\":[1]}}", 400,
	    "option \"stop\" must be of an array of strings");
	cr_assert_eq(
	    parse(API_GENERATE,
	        "{\"model\":\"m\",\"prompt\":\"x\",\"options\":{\"bogus\":1,\"num_ctx\":2048.7,\"num_predict\":12,\"seed\":42}}",
	        &req, &err),
	    0);
	cr_assert_str_eq(req.options_warning, "bogus");
	cr_assert_eq(req.num_ctx, 2048, "Go truncates into the int field");
	cr_assert_eq(req.num_predict, 12);
	cr_assert_eq(req.seed, 42);
	api_request_free(&req);
	/* Into Go's 64-bit ints: a seed of 2^32 - 1, a num_ctx of 3e9. */
	cr_assert_eq(
	    parse(API_GENERATE,
	        "{\"model\":\"m\",\"prompt\":\"x\",\"options\":{\"seed\":4294967295,\"num_ctx\":3e9}}",
	        &req, &err),
	    0, "%s", err.message);
	cr_assert_eq(req.seed, 4294967295LL);
	cr_assert_eq(req.num_ctx, INT_MAX, "cut to the trained context later");
	api_request_free(&req);
	expect_error(API_GENERATE,
	    "{\"model\":\"m\",\"options\":{\"seed\":1e19}}", 400,
	    "option \"seed\" is out of range");
}

Test(api, runner_options_are_read_and_ollamas_defaults_fill_the_rest)
{
	struct api_request req;
	struct api_error err;

	cr_assert_eq(parse(API_GENERATE, "{\"model\":\"m\"}", &req, &err), 0);
	cr_assert_eq(req.runner_opts.num_batch, 512);
	cr_assert_eq(req.runner_opts.num_gpu, -1);
	cr_assert_eq(req.runner_opts.use_mmap, -1);
	api_request_free(&req);
	cr_assert_eq(
	    parse(API_GENERATE,
	        "{\"model\":\"m\",\"options\":{\"num_batch\":128,\"num_gpu\":9,"
	        "\"main_gpu\":1,\"num_thread\":4,\"use_mmap\":false}}",
	        &req, &err),
	    0, "%s", err.message);
	cr_assert_eq(req.runner_opts.num_batch, 128);
	cr_assert_eq(req.runner_opts.num_gpu, 9);
	cr_assert_eq(req.runner_opts.main_gpu, 1);
	cr_assert_eq(req.runner_opts.num_thread, 4);
	cr_assert_eq(req.runner_opts.use_mmap, 0);
	api_request_free(&req);
}

Test(api, a_bare_number_keep_alive_string_is_refused)
{
	expect_error(API_GENERATE, "{\"model\":\"m\",\"keep_alive\":\"300\"}",
	    400, "time: missing unit in duration \"300\"");
}

Test(api, stream_defaults_to_true_and_an_empty_prompt_marks_a_load)
{
	struct api_request req;
	struct api_error err;

	cr_assert_eq(parse(API_GENERATE, "{\"model\":\"m\"}", &req, &err), 0);
	cr_assert(req.stream);
	cr_assert(req.empty);
	cr_assert_not(req.has_keep_alive);
	api_request_free(&req);
	cr_assert_eq(
	    parse(API_CHAT,
	        "{\"model\":\"m\",\"messages\":[],\"keep_alive\":0,\"stream\":false}",
	        &req, &err),
	    0);
	cr_assert_not(req.stream);
	cr_assert(req.empty);
	cr_assert(req.has_keep_alive);
	cr_assert_eq(req.keep_alive_ns, 0);
	api_request_free(&req);
}

Test(api, bytes_that_are_not_utf8_and_nul_characters_are_taken_as_go_takes_them)
{
	struct api_request req;
	struct api_error err;

	/* Latin-1, or text cut in the middle of a character. */
	cr_assert_eq(parse(API_GENERATE,
	                 "{\"model\":\"m\",\"prompt\":\"caf\xe9 \xe2\x82\"}",
	                 &req, &err),
	    0, "%s", err.message);
	cr_assert_gt(req.prompt_tokens, 0);
	api_request_free(&req);
	cr_assert_eq(
	    parse(API_GENERATE, "{\"model\":\"m\",\"prompt\":\"a\\u0000b\"}",
	        &req, &err),
	    0, "%s", err.message);
	api_request_free(&req);
	/* A model's name is kept whole, past a NUL, so that it names no
	 * other model: "a:1\0zzz" is no a:1. */
	cr_assert_eq(
	    parse(API_GENERATE, "{\"model\":\"a:1\\u0000zzz\"}", &req, &err), 0,
	    "%s", err.message);
	cr_assert_eq(req.model_len, 7);
	cr_assert_eq(memcmp(req.model, "a:1\0zzz", 8), 0);
	api_request_free(&req);
	/* Outside a string, such a byte is bad JSON all the same. */
	cr_assert_eq(
	    parse(API_GENERATE, "{\"model\":\"m\"\xe9}", &req, &err), -1);
	cr_assert_eq(err.status, 400);
	/* A repaired text is longer: a bad character near its end is still
	 * one, not an early end. */
	cr_assert_eq(parse(API_GENERATE,
	                 "{\"prompt\":\"\xe9\xe9\xe9\xe9\",x  }", &req, &err),
	    -1);
	cr_assert(strstr(err.message, "invalid character") != NULL, "%s",
	    err.message);
}

/* The prompt of body, as the emulator reads it. */
static void
expect_prompt(const char *body, const char *want)
{
	struct api_request req;
	struct api_error err;

	cr_assert_eq(parse(API_GENERATE, body, &req, &err), 0, "%s: %s", body,
	    err.message);
	cr_assert_str_eq(
	    json_string_value(json_object_get(req.root, "prompt")), want);
	api_request_free(&req);
}

Test(api, an_escaped_surrogate_without_its_partner_reads_as_a_replacement)
{
	expect_prompt("{\"model\":\"m\",\"prompt\":\"a\\ud800b\"}",
	    "a\xef\xbf\xbd"
	    "b");
	expect_prompt(
	    "{\"model\":\"m\",\"prompt\":\"\\uDC00\"}", "\xef\xbf\xbd");
	expect_prompt("{\"model\":\"m\",\"prompt\":\"\\ud800\\u0041\"}",
	    "\xef\xbf\xbd"
	    "A");
	/* A pair is one character, and an escaped backslash no escape. */
	expect_prompt("{\"model\":\"m\",\"prompt\":\"\\ud83d\\ude00\"}",
	    "\xf0\x9f\x98\x80");
	expect_prompt("{\"model\":\"m\",\"prompt\":\"\\\\ud800\"}", "\\ud800");
	/* Cut short, it is bad JSON all the same. */
	expect_error(API_GENERATE, "{\"model\":\"m\",\"prompt\":\"\\ud8", 400,
	    "unexpected EOF");
}

Test(api, trailing_bytes_after_the_object_are_ignored_as_gos_decoder_does)
{
	struct api_request req;
	struct api_error err;

	cr_assert_eq(
	    parse(API_GENERATE, "{\"model\":\"m\"} trailing", &req, &err), 0);
	api_request_free(&req);
}

Test(api, embed_input_must_be_a_string_or_strings)
{
	struct api_request req;
	struct api_error err;

	expect_error(API_EMBED, "{\"model\":\"m\",\"input\":5}", 400,
	    "invalid input type");
	expect_error(API_EMBED, "{\"model\":\"m\",\"input\":[\"a\",2]}", 400,
	    "invalid input type");
	cr_assert_eq(parse(API_EMBED,
	                 "{\"model\":\"m\",\"input\":[\"one two\",\"three\"]}",
	                 &req, &err),
	    0);
	cr_assert_eq(req.ninputs, 2);
	cr_assert_str_eq(api_embed_input(&req, 1), "three");
	api_request_free(&req);
}

Test(api, prompt_tokens_count_system_prompt_context_and_images)
{
	struct api_request plain, more;
	struct api_error err;

	cr_assert_eq(parse(API_GENERATE,
	                 "{\"model\":\"m\",\"prompt\":\"one two three four\"}",
	                 &plain, &err),
	    0);
	cr_assert_eq(
	    parse(API_GENERATE,
	        "{\"model\":\"m\",\"prompt\":\"one two three four\",\"system\":\"be brief\",\"context\":[1,2,3],\"images\":[\"aGk=\"]}",
	        &more, &err),
	    0);
	cr_assert_eq(more.prompt_tokens, plain.prompt_tokens + 2 + 3 + 576);
	api_request_free(&plain);
	api_request_free(&more);
}

Test(api, the_answer_seed_depends_on_model_prompt_and_seed)
{
	struct api_request a, b, c, d;
	struct api_error err;

	parse(API_GENERATE, "{\"model\":\"m\",\"prompt\":\"hi\"}", &a, &err);
	parse(API_GENERATE, "{\"model\":\"m\",\"prompt\":\"hi\"}", &b, &err);
	parse(API_GENERATE,
	    "{\"model\":\"m\",\"prompt\":\"hi\",\"options\":{\"seed\":7}}", &c,
	    &err);
	parse(API_GENERATE, "{\"model\":\"n\",\"prompt\":\"hi\"}", &d, &err);
	cr_assert_eq(a.text_seed, b.text_seed);
	cr_assert_neq(a.text_seed, c.text_seed);
	cr_assert_neq(a.text_seed, d.text_seed);
	api_request_free(&a);
	api_request_free(&b);
	api_request_free(&c);
	api_request_free(&d);
}

Test(api, times_are_rfc3339nano_without_trailing_zeros)
{
	char buf[64];

	api_format_time(
	    1700000000LL * NS_PER_SEC + 120000000, buf, sizeof(buf));
	cr_assert_str_eq(buf, "2023-11-14T22:13:20.12Z");
	api_format_time(1700000000LL * NS_PER_SEC, buf, sizeof(buf));
	cr_assert_str_eq(buf, "2023-11-14T22:13:20Z");
}

Test(work, requests_sharing_a_runner_each_slow_down_but_together_go_faster)
{
	double one = work_rate(1, 1, 0.7, 1), two = work_rate(2, 2, 0.7, 1);

	cr_assert_float_eq(one, 1.0, 1e-12);
	cr_assert_float_eq(two, 0.85, 1e-12);
	cr_assert_gt(2 * two, one, "aggregate throughput rises");
	cr_assert_float_eq(work_rate(2, 2, 0.7, 2.0), 0.425, 1e-12);
}

Test(work, runners_of_different_models_split_the_gpu_with_no_batch_gain)
{
	/* One request on each of two runners: half speed each. */
	cr_assert_float_eq(work_rate(1, 2, 0.7, 1), 0.5, 1e-12);
	/* Two runners of two: together no faster than one runner of two. */
	cr_assert_float_eq(4 * work_rate(2, 4, 0.7, 1), 1.7, 1e-12);
}

Test(work, a_partly_offloaded_model_is_slower)
{
	cr_assert_float_eq(work_offload_slowdown(100, 100), 1.0, 1e-12);
	cr_assert_float_eq(work_offload_slowdown(100, 50), 4.5, 1e-12);
}

Test(work, tokens_arrive_after_the_prompt_at_the_generation_rate)
{
	struct emu_model m = {
	    .prompt_tokens_per_s = 100, .gen_tokens_per_s = 10};
	struct work w;

	work_init(&w, &m, 50, 20, 0); /* 0.5 s of prompt, 2 s of tokens */
	cr_assert_eq(work_time_of_tokens(&w, 1, 1.0), 600 * 1000000LL);
	work_advance(&w, 400 * 1000000LL, 1.0);
	cr_assert_eq(work_tokens_ready(&w), 0);
	cr_assert_eq(w.prompt_done_ns, -1);
	work_advance(&w, 1000 * 1000000LL, 1.0);
	cr_assert_eq(w.prompt_done_ns, 500 * 1000000LL,
	    "the crossing is exact, not the sync point");
	cr_assert_eq(work_tokens_ready(&w), 5);
	/* Half speed from here: 15 tokens left take 3 s. */
	cr_assert_eq(work_time_of_tokens(&w, 20, 0.5), 4000 * 1000000LL);
	work_advance(&w, 4000 * 1000000LL, 0.5);
	cr_assert_eq(work_tokens_ready(&w), 20);
}

Test(work, the_end_is_when_the_last_token_was_done_whatever_the_rate_after)
{
	struct emu_model m = {
	    .prompt_tokens_per_s = 100, .gen_tokens_per_s = 10};
	struct work w;

	work_init(&w, &m, 50, 20, 0); /* done at 2.5 s alone */
	/* Seen late, at 3 s: a timer fires after the end. */
	work_advance(&w, 3000 * 1000000LL, 1.0);
	cr_assert_eq(work_finish_time(&w), 2500 * 1000000LL);
	/* Then another request starts and the rate halves: the end stays
	 * where it was, not 1 s before the start. */
	work_advance(&w, 3001 * 1000000LL, 0.5);
	cr_assert_eq(work_finish_time(&w), 2500 * 1000000LL);
}

Test(text, the_answer_is_the_same_for_the_same_seed)
{
	char a[64], b[64];

	for (int i = 0; i < 50; i++) {
		text_token(12345, i, a, sizeof(a));
		text_token(12345, i, b, sizeof(b));
		cr_assert_str_eq(a, b);
		cr_assert_gt(strlen(a), 0);
	}
	text_token(12345, 0, a, sizeof(a));
	cr_assert_neq(a[0], ' ', "the first token has no leading space");
}

Test(text, answer_lengths_spread_around_the_typical_length)
{
	struct emu_model m = {.typical_output_tokens = 100};
	long sum = 0;

	for (uint64_t h = 1; h <= 2000; h++) {
		int n = text_answer_tokens(&m, h * 7919);

		cr_assert_geq(n, 50);
		cr_assert_leq(n, 150);
		sum += n;
	}
	cr_assert_float_eq(sum / 2000.0, 100.0, 3.0);
}

Test(text, token_counts_follow_bytes_and_words)
{
	cr_assert_eq(text_token_count("", 0), 0);
	cr_assert_eq(text_token_count("a b c", 5), 3);
	cr_assert_eq(text_token_count("abcdefghijklmnop", 16), 4);
}

Test(text, embeddings_are_unit_vectors_and_differ_by_input)
{
	float a[768], b[768];
	double norm = 0, dot = 0;

	text_embedding(1, a, 768);
	text_embedding(2, b, 768);
	for (int i = 0; i < 768; i++) {
		norm += (double)a[i] * a[i];
		dot += (double)a[i] * b[i];
	}
	cr_assert_float_eq(norm, 1.0, 1e-5);
	cr_assert_lt(fabs(dot), 0.3);
}

static void
expect_quoted(const char *s, size_t len, const char *want)
{
	char *q = api_go_quote(s, len);

	cr_assert_str_eq(q, want);
	free(q);
}

Test(api, names_are_quoted_as_gos_percent_q_quotes_them)
{
	expect_quoted("a b", 3, "\"a b\"");
	expect_quoted("\"\\", 2, "\"\\\"\\\\\"");
	expect_quoted("\a\b\f\n\r\t\v", 7, "\"\\a\\b\\f\\n\\r\\t\\v\"");
	expect_quoted("\0\x01\x1f\x7f", 4, "\"\\x00\\x01\\x1f\\x7f\"");
	/* Letters and symbols past ASCII stay; spaces, controls and format
	 * characters do not. */
	expect_quoted("caf\xc3\xa9 \xe2\x82\xac \xef\xbf\xbd", 13,
	    "\"caf\xc3\xa9 \xe2\x82\xac \xef\xbf\xbd\"");
	expect_quoted("\xc2\xa0\xc2\x85\xe2\x80\x8b\xef\xbb\xbf\xe3\x80\x80",
	    13, "\"\\u00a0\\u0085\\u200b\\ufeff\\u3000\"");
	expect_quoted("\xf3\xb0\x80\x80", 4, "\"\\U000f0000\"");
	/* Bytes that are not UTF-8, one by one. */
	expect_quoted("\xff\xe2\x82", 3, "\"\\xff\\xe2\\x82\"");
	expect_quoted("", 0, "\"\"");
}

Test(api, a_quoted_name_of_any_bytes_fits)
{
	char name[10240];
	char *q;

	memset(name, '\x01', sizeof(name));
	q = api_go_quote(name, sizeof(name));
	cr_assert_eq(strlen(q), sizeof(name) * 4 + 2);
	free(q);
	memset(name, '\xff', sizeof(name));
	q = api_go_quote(name, sizeof(name));
	cr_assert_eq(strlen(q), sizeof(name) * 4 + 2);
	free(q);
}
