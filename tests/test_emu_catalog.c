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
	snprintf(want, sizeof(want),
	    "%s:7: [bad:1b]: load_mb_per_s is required", path);
	cr_assert(strstr(err, want) != NULL, "%s", err);
	/* Given, and refused at its line: not missing too. */
	cr_assert_null(strstr(err, "size_mb is required"), "%s", err);
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

Test(catalog, a_model_no_client_could_name_is_reported_at_its_line)
{
	expect_refused("[m+x:1]\n" MODEL_KEYS "[caf\xc3\xa9:1]\n" MODEL_KEYS
	               "[a/b/c/d:1]\n" MODEL_KEYS,
	    "@:1: [m+x:1]: not a model name Ollama takes\n"
	    "@:7: [caf\xc3\xa9:1]: not a model name Ollama takes\n"
	    "@:13: [a/b/c/d:1]: not a model name Ollama takes\n");
}

/* The name a request gives, read as Ollama 0.33's modelref.ParseRef and
 * model.ParseName read it. */
static struct emu_ref
ref_n(const char *raw, size_t len, int as_stub)
{
	struct emu_ref ref;

	emu_model_ref(raw, len, as_stub, &ref);
	return ref;
}

static struct emu_ref
ref(const char *raw)
{
	return ref_n(raw, strlen(raw), 0);
}

Test(model_ref, blanks_around_a_name_are_trimmed_as_gos_trimspace_does)
{
	cr_assert_eq(ref("tinyllama").kind, EMU_REF_LOCAL);
	cr_assert_str_eq(ref("tinyllama").full,
	    "registry.ollama.ai/library/tinyllama:latest");
	cr_assert_str_eq(
	    ref(" \t\r\n\v\ftinyllama \n").full, ref("tinyllama").full);
	/* U+00A0, U+0085, U+2003 and U+3000 are Go's blanks too. */
	cr_assert_str_eq(
	    ref("\xc2\xa0\xc2\x85tinyllama\xe2\x80\x83\xe3\x80\x80").full,
	    ref("tinyllama").full);
	/* U+200B and U+FEFF are not. */
	cr_assert_eq(ref("\xe2\x80\x8btinyllama").kind, EMU_REF_INVALID);
	cr_assert_eq(ref("tinyllama\xef\xbb\xbf").kind, EMU_REF_INVALID);
	cr_assert_eq(ref(" a b ").kind, EMU_REF_INVALID);
}

Test(model_ref, empty_and_only_blanks_are_no_name)
{
	cr_assert_eq(ref("").kind, EMU_REF_BLANK);
	cr_assert_eq(ref("   ").kind, EMU_REF_BLANK);
	cr_assert_eq(ref("\t\xc2\xa0\n").kind, EMU_REF_BLANK);
}

Test(model_ref, local_is_taken_off_and_case_kept)
{
	struct emu_ref r = ref("  Me/TinyLlama:1B: LOCAL ");

	cr_assert_eq(r.kind, EMU_REF_LOCAL);
	cr_assert_str_eq(r.full, "registry.ollama.ai/Me/TinyLlama:1B");
	cr_assert_str_eq(ref("tinyllama:local").full, ref("tinyllama").full);
	/* Blanks are trimmed after the suffix, not before it. */
	cr_assert_eq(ref("tinyllama :local").kind, EMU_REF_INVALID);
	/* Only one suffix: the name that is left is "local". */
	cr_assert_eq(ref(":local").kind, EMU_REF_INVALID);
}

Test(model_ref, cloud_and_a_tag_ending_in_cloud_are_ollama_coms)
{
	cr_assert_eq(ref("gpt-oss:cloud").kind, EMU_REF_CLOUD);
	cr_assert_eq(ref("gpt-oss:20b-cloud").kind, EMU_REF_CLOUD);
	cr_assert_str_eq(ref("gpt-oss:20b-CLOUD").full,
	    "registry.ollama.ai/library/gpt-oss:20b");
	cr_assert_eq(ref("gpt-oss:20b:Cloud").kind, EMU_REF_CLOUD);
	/* Still checked: no valid name is left. */
	cr_assert_eq(ref("a b:cloud").kind, EMU_REF_INVALID);
	cr_assert_eq(ref("m:-cloud").kind, EMU_REF_INVALID);
}

Test(model_ref, local_and_cloud_together_conflict)
{
	struct emu_ref r = ref("  m:local:cloud ");

	cr_assert_eq(r.kind, EMU_REF_CONFLICT);
	cr_assert_eq(r.trimmed_len, 13);
	cr_assert_eq(memcmp(r.trimmed, "m:local:cloud", 13), 0);
	cr_assert_eq(ref("m:cloud:local").kind, EMU_REF_CONFLICT);
	cr_assert_eq(ref("m:7b-cloud:local").kind, EMU_REF_CONFLICT);
	cr_assert_eq(ref("m:local:local").kind, EMU_REF_CONFLICT);
}

Test(model_ref, delete_reads_a_cloud_model_as_its_local_stub)
{
	cr_assert_eq(ref_n("gpt-oss:cloud", 13, 1).kind, EMU_REF_LOCAL);
	cr_assert_str_eq(ref_n("gpt-oss:cloud", 13, 1).full,
	    "registry.ollama.ai/library/gpt-oss:cloud");
	cr_assert_str_eq(ref_n("gpt-oss:20b-cloud", 17, 1).full,
	    "registry.ollama.ai/library/gpt-oss:20b-cloud");
	cr_assert_str_eq(ref_n("gpt-oss:20b:cloud", 17, 1).full,
	    "registry.ollama.ai/library/gpt-oss:20b-cloud");
	cr_assert_str_eq(
	    ref_n("me/m:local", 10, 1).full, "registry.ollama.ai/me/m:latest");
	cr_assert_eq(ref_n("m:local:cloud", 13, 1).kind, EMU_REF_CONFLICT);
}

Test(model_ref, names_ollama_refuses_are_invalid_never_cut)
{
	char name[10240 + 32];

	cr_assert_eq(ref("tinyllama@sha256:0123").kind, EMU_REF_INVALID);
	cr_assert_eq(ref("tinyllama:").kind, EMU_REF_INVALID);
	cr_assert_eq(ref("caf\xc3\xa9").kind, EMU_REF_INVALID);
	cr_assert_eq(ref("\xff\xfe").kind, EMU_REF_INVALID);
	cr_assert_eq(ref("a\x01b").kind, EMU_REF_INVALID);
	cr_assert_eq(ref_n("a:1\0x", 5, 0).kind, EMU_REF_INVALID);
	memset(name, 'a', 10240);
	name[10240] = '\0';
	cr_assert_eq(ref(name).kind, EMU_REF_INVALID);
	/* A scheme is not read, however long. */
	strcpy(name + 10240, "://example.com/me/m");
	cr_assert_eq(ref(name).kind, EMU_REF_LOCAL);
	cr_assert_str_eq(ref(name).full, "example.com/me/m:latest");
	memset(name, ' ', 10240);
	strcpy(name + 10240, "m");
	cr_assert_str_eq(ref(name).full, "registry.ollama.ai/library/m:latest");
}

Test(model_ref, the_full_name_finds_the_model_whatever_its_case)
{
	struct emu_catalog cat;
	char err[4096];

	cr_assert_eq(emu_catalog_load(&cat, TEST_SRCDIR "/conf/emu-models.ini",
	                 err, sizeof(err)),
	    0, "%s", err);
	cr_assert_not_null(emu_catalog_find(
	    &cat, ref(" Registry.Ollama.AI/Library/TinyLlama:Latest\t").full));
	cr_assert_not_null(emu_catalog_find(&cat, ref("tinyllama:local").full));
	cr_assert_null(emu_catalog_find(&cat, ref("someone/tinyllama").full));
	emu_catalog_free(&cat);
}

Test(model_ref, any_bytes_get_an_answer)
{
	static const char pick[] = "a:/ .@-_\t\xc2\xa0\xff\x01Zz9";
	char name[700];
	unsigned seed = 7;

	for (int n = 0; n < 5000; n++) {
		size_t len = (seed = seed * 1103515245 + 12345) % sizeof(name);
		struct emu_ref r;

		for (size_t i = 0; i < len; i++)
			name[i] =
			    pick[((seed = seed * 1103515245 + 12345) >> 16) %
			        (sizeof(pick) - 1)];
		emu_model_ref(name, len, n & 1, &r);
		cr_assert_leq(r.kind, EMU_REF_CLOUD);
		if (r.kind == EMU_REF_LOCAL || r.kind == EMU_REF_CLOUD)
			cr_assert_gt(strlen(r.full), 0);
	}
}
