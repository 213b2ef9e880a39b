/*
 * The broker's reading of Ollama's answers: a streamed /api/generate, line
 * by line, and a /api/ps body; bad lines and bodies are refused, not
 * trusted.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ollama.h"
#include "utf8.h"

static int
feed(struct ollama_result *res, const char *line)
{
	return ollama_parse_line(res, line, strlen(line));
}

Test(ollama, a_stream_is_gathered_until_its_done_line)
{
	struct ollama_result res = {0};

	cr_assert_eq(feed(&res, "{\"response\":\"Hel\",\"done\":false}"), 0);
	cr_assert_eq(feed(&res, "{\"response\":\"lo\",\"done\":false}\r"), 0);
	cr_assert_eq(feed(&res, ""), 0);
	cr_assert_eq(feed(&res,
	                 "{\"response\":\"\",\"done\":true,"
	                 "\"done_reason\":\"length\","
	                 "\"prompt_eval_count\":12,\"eval_count\":2,"
	                 "\"load_duration\":5,\"total_duration\":9}"),
	    1);
	cr_assert_str_eq(res.text, "Hello");
	cr_assert_eq(res.prompt_tokens, 12);
	cr_assert_eq(res.eval_tokens, 2);
	cr_assert_eq(res.total_ns, 9);
	cr_assert_str_eq(res.done_reason, "length");
	ollama_result_free(&res);
}

Test(ollama, only_lines_with_text_or_thinking_are_progress)
{
	struct ollama_result res = {0};

	feed(&res, "{\"response\":\"\",\"done\":false}");
	feed(&res, "");
	cr_assert_eq(res.pieces, 0);
	feed(&res, "{\"response\":\"\",\"thinking\":\"so\",\"done\":false}");
	feed(&res, "{\"response\":\"a\",\"done\":false}");
	feed(&res, "{\"response\":\"\",\"thinking\":5,\"done\":false}");
	cr_assert_eq(res.pieces, 2);
	cr_assert_str_eq(res.text, "a");
	ollama_result_free(&res);
}

Test(ollama, thinking_is_counted_not_kept)
{
	struct ollama_result res = {0};

	feed(&res, "{\"response\":\"\",\"thinking\":\"hmm\",\"done\":false}");
	feed(&res, "{\"response\":\"\",\"thinking\":\"so\",\"done\":false}");
	feed(&res, "{\"response\":\"a\",\"done\":false}");
	cr_assert_eq(res.thinking_len, 5);
	cr_assert_str_eq(res.text, "a");
	ollama_result_free(&res);
}

Test(ollama, a_nul_character_in_the_answer_is_dropped)
{
	struct ollama_result res = {0};

	cr_assert_eq(
	    feed(&res, "{\"response\":\"h\\u0000i\",\"done\":false}"), 0);
	cr_assert_eq(res.text_len, 2);
	cr_assert_str_eq(res.text, "hi");
	ollama_result_free(&res);
}

Test(ollama, a_line_whose_text_is_only_nul_characters_is_no_progress)
{
	struct ollama_result res = {0};

	cr_assert_eq(
	    feed(&res, "{\"response\":\"\\u0000\",\"done\":false}"), 0);
	cr_assert_eq(res.text_len, 0);
	cr_assert_eq(res.pieces, 0);
	ollama_result_free(&res);
}

Test(ollama, an_error_line_ends_the_answer_with_its_text)
{
	struct ollama_result res = {0};

	cr_assert_eq(
	    feed(&res, "{\"error\":\"model requires more memory\"}"), 1);
	cr_assert_str_eq(res.error, "model requires more memory");
	ollama_result_free(&res);
}

Test(ollama, an_error_line_forges_no_log_line_and_cuts_no_character)
{
	struct ollama_result res = {0};
	char line[1200];
	size_t n;

	cr_assert_eq(feed(&res,
	                 "{\"error\":\"boom\\n16:00:00.000 ollamax: info: "
	                 "forged \\u001b[31mred\"}"),
	    1);
	cr_assert_str_eq(
	    res.error, "boom?16:00:00.000 ollamax: info: forged ?[31mred");
	ollama_result_free(&res);
	/* Two-byte characters past what the error holds: none cut. */
	n = (size_t)snprintf(line, sizeof(line), "{\"error\":\"");
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\u00e9");
	snprintf(line + n, sizeof(line) - n, "\"}");
	memset(&res, 0, sizeof(res));
	cr_assert_eq(feed(&res, line), 1);
	cr_assert_eq(utf8_invalid_at(res.error, strlen(res.error)), -1);
	cr_assert_gt(strlen(res.error), 200);
	ollama_result_free(&res);
}

Test(ollama, an_error_line_without_words_still_reads_as_an_error)
{
	struct ollama_result res = {0};

	cr_assert_eq(feed(&res, "{\"error\":\"\"}"), 1);
	cr_assert_str_eq(res.error, "backend sent an error without a message");
	res.error[0] = '\0';
	cr_assert_eq(feed(&res, "{\"error\":{\"code\":500}}"), 1);
	cr_assert_str_eq(res.error, "backend sent an error that is not text");
	ollama_result_free(&res);
}

Test(ollama, an_error_of_null_is_none_and_a_proxys_error_gives_its_message)
{
	struct ollama_result res = {0};

	cr_assert_eq(feed(&res,
	                 "{\"error\":null,\"response\":\"ok\","
	                 "\"done\":true}"),
	    1);
	cr_assert_str_eq(res.error, "");
	cr_assert_str_eq(res.text, "ok");
	cr_assert_eq(feed(&res,
	                 "{\"error\":{\"message\":\"rate limited\","
	                 "\"type\":\"limit\"}}"),
	    1);
	cr_assert_str_eq(res.error, "rate limited");
	ollama_result_free(&res);
}

Test(ollama, a_line_that_is_not_a_json_object_is_refused)
{
	struct ollama_result res = {0};

	cr_assert_eq(feed(&res, "<html>502 Bad Gateway"), -1);
	cr_assert(strstr(res.error, "not a JSON object") != NULL);
	cr_assert_eq(feed(&res, "[1,2,3]"), -1);
	cr_assert(
	    strstr(res.error, "[1,2,3] (valid JSON of another kind)") != NULL,
	    "%s", res.error);
	/* JSON's own reason, of a bad escape. */
	cr_assert_eq(
	    feed(&res, "{\"response\":\"\\ud800\",\"done\":false}"), -1);
	cr_assert(strstr(res.error, "(invalid Unicode '\\uD800'") != NULL, "%s",
	    res.error);
	ollama_result_free(&res);
}

Test(ollama, a_bad_line_is_quoted_only_as_far_as_it_goes_and_printable)
{
	struct ollama_result res = {0};
	/* Not NUL-terminated where the line ends: what follows is not its. */
	const char bytes[] = "oops\x01\xff!LEFTOVER";

	cr_assert_eq(ollama_parse_line(&res, bytes, 7), -1);
	cr_assert_str_eq(res.error,
	    "backend sent a line that is not a JSON object: oops?"
	    "?! "
	    "('[' or '{' expected near 'oops')");
	ollama_result_free(&res);
}

Test(ollama, a_response_or_done_of_the_wrong_type_is_refused_by_name)
{
	struct ollama_result res = {0};

	cr_assert_eq(feed(&res, "{\"response\":5,\"done\":false}"), -1);
	cr_assert_str_eq(
	    res.error, "backend sent a \"response\" that is not text");
	ollama_result_free(&res);
	memset(&res, 0, sizeof(res));
	cr_assert_eq(feed(&res, "{\"response\":\"hi\",\"done\":\"yes\"}"), -1);
	cr_assert_str_eq(
	    res.error, "backend sent a \"done\" that is not true or false");
	ollama_result_free(&res);
}

Test(ollama, counts_out_of_range_or_of_the_wrong_type_are_none)
{
	struct ollama_result res = {0};

	cr_assert_eq(feed(&res,
	                 "{\"response\":\"hi\",\"done\":true,"
	                 "\"prompt_eval_count\":-5,"
	                 "\"eval_count\":1000000000000,"
	                 "\"total_duration\":\"9\"}"),
	    1);
	cr_assert_str_eq(res.text, "hi");
	cr_assert_eq(res.prompt_tokens, 0);
	cr_assert_eq(res.eval_tokens, 0);
	cr_assert_eq(res.total_ns, 0);
	ollama_result_free(&res);
}

Test(ollama, a_count_past_64_bits_is_none_and_the_line_stands)
{
	struct ollama_result res = {0};

	cr_assert_eq(feed(&res,
	                 "{\"response\":\"hi\",\"done\":true,"
	                 "\"prompt_eval_count\":12,"
	                 "\"eval_count\":1000000000000000000000000000000}"),
	    1, "%s", res.error);
	cr_assert_str_eq(res.text, "hi");
	cr_assert_eq(res.prompt_tokens, 12);
	cr_assert_eq(res.eval_tokens, 0);
	ollama_result_free(&res);
}

Test(ollama, a_ps_size_past_64_bits_leaves_the_rest_of_the_list)
{
	const char *body =
	    "{\"models\":[{\"name\":\"big\",\"size\":"
	    "100000000000000000000000000},{\"name\":\"tinyllama\","
	    "\"size\":1073741824}]}";
	struct ollama_ps ps;

	cr_assert_eq(ollama_parse_ps(&ps, body, strlen(body), NULL, NULL), 0);
	cr_assert_eq(ps.count, 2);
	cr_assert_eq(ps.models[0].size_mb, 0);
	cr_assert_str_eq(ps.models[1].name, "tinyllama");
	cr_assert_eq(ps.models[1].size_mb, 1024);
}

Test(ollama, show_gives_the_trained_context_by_architecture_and_vision)
{
	const char *body =
	    "{\"modelfile\":\"FROM x\\n\",\"model_info\":{"
	    "\"general.architecture\":\"qwen2\",\"llama.context_length\":1,"
	    "\"qwen2.context_length\":32768},"
	    "\"capabilities\":[\"completion\",\"vision\"]}";
	struct ollama_show show;

	cr_assert_eq(ollama_parse_show(&show, body, strlen(body)), 0);
	cr_assert_eq(show.context_length, 32768, "by its own architecture");
	cr_assert_eq(show.vision, 1);
	body = "{\"model_info\":{\"llama.context_length\":2048},"
	       "\"capabilities\":\"vision\"}";
	cr_assert_eq(ollama_parse_show(&show, body, strlen(body)), 0);
	cr_assert_eq(show.context_length, 0, "no architecture: not told");
	cr_assert_eq(show.vision, 0, "capabilities that are no list");
	body = "{\"model_info\":{\"general.architecture\":\"llama\","
	       "\"llama.context_length\":-5}}";
	cr_assert_eq(ollama_parse_show(&show, body, strlen(body)), 0);
	cr_assert_eq(show.context_length, 0);
	cr_assert_eq(ollama_parse_show(&show, "[1]", 3), -1);
	cr_assert_eq(ollama_parse_show(&show, "{\"a\":", 5), -1);
}

Test(ollama, ps_lists_the_loaded_models_with_their_sizes)
{
	const char *body =
	    "{\"models\":[{\"name\":\"tinyllama\",\"model\":\"tinyllama\","
	    "\"size\":1073741824,\"size_vram\":536870912,"
	    "\"context_length\":2048},{\"name\":\"qwen2.5-coder:7b\","
	    "\"size\":5368709120,\"size_vram\":5368709120}]}";
	struct ollama_ps ps;

	cr_assert_eq(ollama_parse_ps(&ps, body, strlen(body), NULL, NULL), 0);
	cr_assert_eq(ps.count, 2);
	cr_assert_str_eq(ps.models[0].name, "tinyllama");
	cr_assert_eq(ps.models[0].size_mb, 1024);
	cr_assert_eq(ps.models[0].size_vram_mb, 512);
	cr_assert_eq(ps.models[0].context_length, 2048);
	cr_assert_eq(ps.models[1].size_mb, 5120);
	cr_assert_eq(
	    ollama_parse_ps(&ps, "{\"models\":[]}", 13, NULL, NULL), 0);
	cr_assert_eq(ps.count, 0);
}

Test(ollama, a_ps_body_without_a_model_list_is_refused)
{
	struct ollama_ps ps;

	cr_assert_eq(ollama_parse_ps(&ps, "{}", 2, NULL, NULL), -1);
	cr_assert_eq(
	    ollama_parse_ps(&ps, "{\"models\":3}", 12, NULL, NULL), -1);
	cr_assert_eq(ollama_parse_ps(&ps, "not json", 8, NULL, NULL), -1);
	cr_assert_eq(ollama_parse_ps(&ps, NULL, 0, NULL, NULL), -1);
	/* Entries without a name are passed over. */
	cr_assert_eq(
	    ollama_parse_ps(&ps, "{\"models\":[{\"size\":1}]}", 23, NULL, NULL),
	    0);
	cr_assert_eq(ps.count, 0);
}

Test(ollama, a_long_name_is_read_whole_and_a_longer_one_left_out)
{
	static struct ollama_ps ps;
	char longest[96 + sizeof(":latest")], body[1024];
	size_t len;

	/* The longest name a configuration takes, as /api/tags gives it. */
	memset(longest, 'a', 95);
	snprintf(longest + 95, sizeof(longest) - 95, ":latest");
	len = (size_t)snprintf(body, sizeof(body),
	    "{\"models\":[{\"name\":\"%s\"},{\"name\":\"%0300d\"}]}", longest,
	    0);
	cr_assert_eq(ollama_parse_ps(&ps, body, len, NULL, NULL), 0);
	cr_assert_eq(ps.count, 1);
	cr_assert_str_eq(ps.models[0].name, longest);
	cr_assert_eq(ps.truncated, 0);
}

Test(ollama, a_list_longer_than_the_table_says_it_was_cut_short)
{
	static struct ollama_ps ps;
	char body[16384];
	size_t len = 0;

	len +=
	    (size_t)snprintf(body + len, sizeof(body) - len, "{\"models\":[");
	for (int i = 0; i < OLLAMA_PS_MAX + 6; i++)
		len += (size_t)snprintf(body + len, sizeof(body) - len,
		    "%s{\"name\":\"m%d\"}", i ? "," : "", i);
	len += (size_t)snprintf(body + len, sizeof(body) - len, "]}");
	cr_assert_eq(ollama_parse_ps(&ps, body, len, NULL, NULL), 0);
	cr_assert_eq(ps.count, OLLAMA_PS_MAX);
	cr_assert_eq(ps.truncated, 1);
	cr_assert_eq(
	    ollama_parse_ps(&ps, "{\"models\":[]}", 13, NULL, NULL), 0);
	cr_assert_eq(ps.truncated, 0);
}

Test(ollama, a_negative_size_or_context_in_a_list_is_none_told)
{
	static struct ollama_ps ps;
	const char *body = "{\"models\":[{\"name\":\"m\",\"size\":-1048576,"
	                   "\"size_vram\":-5,\"context_length\":-2048}]}";

	cr_assert_eq(ollama_parse_ps(&ps, body, strlen(body), NULL, NULL), 0);
	cr_assert_eq(ps.count, 1);
	cr_assert_eq(ps.models[0].size_mb, 0);
	cr_assert_eq(ps.models[0].size_vram_mb, 0);
	cr_assert_eq(ps.models[0].context_length, 0);
}

static int
only_the_last(void *arg, const char *name)
{
	return strcmp(name, arg) == 0;
}

Test(ollama, the_models_wanted_are_read_wherever_a_long_list_has_them)
{
	static struct ollama_ps ps;
	char body[16384], last[16];
	size_t len = 0;
	int n = OLLAMA_PS_MAX + 6;

	len +=
	    (size_t)snprintf(body + len, sizeof(body) - len, "{\"models\":[");
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(body + len, sizeof(body) - len,
		    "%s{\"name\":\"m%d\",\"size\":%d}", i ? "," : "", i,
		    i << 20);
	len += (size_t)snprintf(body + len, sizeof(body) - len, "]}");
	snprintf(last, sizeof(last), "m%d", n - 1);
	cr_assert_eq(ollama_parse_ps(&ps, body, len, only_the_last, last), 0);
	cr_assert_eq(ps.count, 1);
	cr_assert_str_eq(ps.models[0].name, last);
	cr_assert_eq(ps.models[0].size_mb, n - 1);
	cr_assert_eq(ps.truncated, 0);
}
