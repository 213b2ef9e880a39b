/* The model catalog: the shipped one is complete, a bad one is told whole. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "emu/emu.h"

static char *
write_temp(const char *text)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/emu-catalog-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/* Loads text as a catalog: it must be refused with just want, in which each
 * "@" stands for the file's path. */
static void
expect_refused(const char *text, const char *want)
{
	struct emu_catalog cat;
	char err[4096], expected[1024];
	char *path = write_temp(text);
	size_t n = 0;

	for (const char *c = want; *c != '\0' && n + 64 < sizeof(expected); c++)
		n += (size_t)snprintf(expected + n, sizeof(expected) - n, "%s",
		    *c == '@' ? path : (char[]){*c, '\0'});
	cr_assert_eq(emu_catalog_load(&cat, path, err, sizeof(err)), -1);
	cr_assert_str_eq(err, expected);
	emu_catalog_free(&cat);
	unlink(path);
}

Test(catalog, the_shipped_catalog_has_every_reference_model)
{
	static const char *const names[] = {
	    "tinyllama",
	    "llama3.2:3b",
	    "qwen2.5:3b",
	    "qwen2.5-coder:3b",
	    "qwen2.5-coder:7b",
	    "deepseek-r1:8b",
	    "llava",
	    "nomic-embed-text",
	};
	struct emu_catalog cat;
	char err[4096];
	const struct emu_model *m;

	cr_assert_eq(emu_catalog_load(&cat, TEST_SRCDIR "/conf/emu-models.ini",
	                 err, sizeof(err)),
	    0, "%s", err);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cr_assert_not_null(
		    emu_catalog_find(&cat, names[i]), "%s", names[i]);
	m = emu_catalog_find(&cat, "qwen2.5:3b");
	/* 2.6 GB loading in 5.3 s on the reference box. */
	cr_assert_float_eq(
	    (double)m->size_bytes / (1024 * 1024) / m->load_mb_per_s, 5.3,
	    0.05);
	m = emu_catalog_find(&cat, "nomic-embed-text");
	cr_assert(m->capabilities & EMU_CAP_EMBEDDING);
	cr_assert_not(m->capabilities & EMU_CAP_COMPLETION);
	cr_assert(
	    emu_catalog_find(&cat, "llava")->capabilities & EMU_CAP_VISION);
	cr_assert_null(emu_catalog_find(&cat, "no-such-model"));
	cr_assert_null(emu_catalog_find(&cat, ""));
	/* By Ollama's rules for names. */
	cr_assert_eq(emu_catalog_find(&cat,
	                 "registry.ollama.ai/library/"
	                 "TinyLlama:latest"),
	    emu_catalog_find(&cat, "tinyllama"));
	cr_assert_null(emu_catalog_find(&cat, "someone/tinyllama"));
	emu_catalog_free(&cat);
}

Test(catalog, every_error_is_reported_with_its_line)
{
	struct emu_catalog cat;
	char err[4096];
	char *path = write_temp("[good:1b]\n"
	                        "size_mb = 100\n"
	                        "load_mb_per_s = 100\n"
	                        "prompt_tokens_per_s = 10\n"
	                        "gen_tokens_per_s = 10\n"
	                        "context_length = 2048\n"
	                        "[bad:1b]\n"
	                        "size_mb = lots\n"
	                        "colour = blue\n"
	                        "capabilities = completion, telepathy\n"
	                        "context_length = 10\n");
	char want[256];

	cr_assert_eq(emu_catalog_load(&cat, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:8: size_mb: \"lots\" is not a number",
	    path);
	cr_assert(strstr(err, want) != NULL, "%s", err);
	snprintf(
	    want, sizeof(want), "%s:9: [bad:1b]: unknown key \"colour\"", path);
	cr_assert(strstr(err, want) != NULL, "%s", err);
	snprintf(want, sizeof(want),
	    "%s:10: capabilities: unknown capability \"telepathy\"", path);
	cr_assert(strstr(err, want) != NULL, "%s", err);
	snprintf(want, sizeof(want),
	    "%s:11: context_length: 10 is out of range", path);
	cr_assert(strstr(err, want) != NULL, "%s", err);
	snprintf(
	    want, sizeof(want), "%s:7: [bad:1b]: size_mb is required", path);
	cr_assert(strstr(err, want) != NULL, "%s", err);
	cr_assert_null(
	    strstr(err, "good:1b"), "the good model is fine: %s", err);
	emu_catalog_free(&cat);
	unlink(path);
}

Test(catalog, a_model_section_without_keys_is_reported)
{
	struct emu_catalog cat;
	char err[4096];
	char *path = write_temp("[a:1]\n");

	cr_assert_eq(emu_catalog_load(&cat, path, err, sizeof(err)), -1);
	cr_assert(
	    strstr(err, ":1: [a:1]: size_mb is required") != NULL, "%s", err);
	emu_catalog_free(&cat);
	unlink(path);
}

Test(catalog, a_model_defined_twice_is_an_error)
{
	struct emu_catalog cat;
	char err[4096];
	char *path = write_temp("[a:1]\nsize_mb = 1\n[b:1]\nsize_mb = 1\n"
	                        "[a:1]\nsize_mb = 2\n");

	cr_assert_eq(emu_catalog_load(&cat, path, err, sizeof(err)), -1);
	cr_assert(
	    strstr(err, ":5: [a:1]: model defined twice (first at line 1)") !=
	        NULL,
	    "%s", err);
	emu_catalog_free(&cat);
	unlink(path);
	/* Back to back, the second is no continuation of the first. */
	path = write_temp("[a:1]\nsize_mb = 1\n[a:1]\nsize_mb = 2\n");
	cr_assert_eq(emu_catalog_load(&cat, path, err, sizeof(err)), -1);
	cr_assert(
	    strstr(err, ":3: [a:1]: model defined twice (first at line 1)") !=
	        NULL,
	    "%s", err);
	emu_catalog_free(&cat);
	unlink(path);
	/* One model by Ollama's rules for names. */
	path = write_temp("[a:1]\nsize_mb = 1\n[library/A:1]\nsize_mb = 2\n");
	cr_assert_eq(emu_catalog_load(&cat, path, err, sizeof(err)), -1);
	cr_assert(strstr(err,
	              ":3: [library/A:1]: model defined twice (first "
	              "at line 1)") != NULL,
	    "%s", err);
	emu_catalog_free(&cat);
	unlink(path);
}

Test(catalog, a_missing_file_and_a_syntax_error_are_reported)
{
	struct emu_catalog cat;
	char err[4096];
	char *path;

	cr_assert_eq(
	    emu_catalog_load(&cat, "/nonexistent/emu.ini", err, sizeof(err)),
	    -1);
	cr_assert(strstr(err, "/nonexistent/emu.ini: cannot open") != NULL,
	    "%s", err);
	emu_catalog_free(&cat);
	path = write_temp("[a:1]\nthis line has no equals sign\n");
	cr_assert_eq(emu_catalog_load(&cat, path, err, sizeof(err)), -1);
	cr_assert(strstr(err, ":2: syntax error") != NULL, "%s", err);
	emu_catalog_free(&cat);
	unlink(path);
}

Test(catalog, a_line_too_long_for_the_reader_is_reported_not_misread)
{
	struct emu_catalog cat;
	char err[4096], text[600];
	char *path;

	snprintf(
	    text, sizeof(text), "[a:1]\nfamily = %0300d\nsize_mb = 1\n", 7);
	path = write_temp(text);
	cr_assert_eq(emu_catalog_load(&cat, path, err, sizeof(err)), -1);
	cr_assert(
	    strstr(err, ":2: line longer than 198 bytes") != NULL, "%s", err);
	cr_assert_null(strstr(err, ":3:"), "line 3 is read as line 3: %s", err);
	emu_catalog_free(&cat);
	unlink(path);
}

/* The required keys of a model, five lines. */
#define MODEL_KEYS                                                             \
	"size_mb = 100\n"                                                      \
	"load_mb_per_s = 100\n"                                                \
	"prompt_tokens_per_s = 10\n"                                           \
	"gen_tokens_per_s = 10\n"                                              \
	"context_length = 2048\n"

Test(catalog, capabilities_continued_over_two_lines_are_all_read)
{
	struct emu_catalog cat;
	char err[4096];
	char *path = write_temp(
	    "[m:1]\n" MODEL_KEYS "capabilities = completion, vision,\n"
	    "    tools\n");
	const struct emu_model *m;

	cr_assert_eq(
	    emu_catalog_load(&cat, path, err, sizeof(err)), 0, "%s", err);
	m = emu_catalog_find(&cat, "m:1");
	cr_assert_not_null(m);
	cr_assert_eq(m->capabilities,
	    EMU_CAP_COMPLETION | EMU_CAP_VISION | EMU_CAP_TOOLS, "0x%x",
	    m->capabilities);
	emu_catalog_free(&cat);
	unlink(path);
}

Test(catalog, a_bad_capability_on_a_continuation_line_is_reported_at_it)
{
	expect_refused("[m:1]\n" MODEL_KEYS "capabilities = completion,\n"
	               "    telepathy\n",
	    "@:8: capabilities: unknown capability \"telepathy\" (completion, embedding, vision, tools, thinking, insert)\n");
}

Test(catalog, any_other_key_continued_on_an_indented_line_is_reported)
{
	expect_refused("[m:1]\n" MODEL_KEYS "typical_output_tokens = 1\n"
	               "    200\n",
	    "@:8: typical_output_tokens: only capabilities continue on indented lines\n");
}

Test(catalog, a_key_given_twice_in_a_model_is_reported_at_the_second)
{
	/* The same key in another model is no repeat. */
	expect_refused("[a:1]\n" MODEL_KEYS "[b:1]\n" MODEL_KEYS
	               "size_mb = 3000\n",
	    "@:13: size_mb: given twice in [b:1] (first at line 8)\n");
}

Test(catalog, a_model_name_with_blanks_is_reported_at_its_line)
{
	expect_refused("[a:1]\n" MODEL_KEYS "[ n:1 ]\n" MODEL_KEYS,
	    "@:7: [ n:1 ]: blanks in a model name\n");
}

Test(catalog, a_model_without_a_name_or_a_tag_is_reported_at_its_line)
{
	expect_refused("[:1]\n" MODEL_KEYS "[m:]\n" MODEL_KEYS,
	    "@:1: [:1]: the name before ':' is empty\n"
	    "@:7: [m:]: the tag after ':' is empty\n");
}
