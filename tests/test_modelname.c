/*
 * Model names as Ollama reads them: the parts a name leaves out are filled
 * in, case does not matter, and a digest or a host's port is no tag.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "modelname.h"

static const char *
full(const char *name)
{
	static char out[600];

	cr_assert_eq(model_name_full(name, out, sizeof(out)), 0, "%s", name);
	return out;
}

Test(modelname, the_parts_left_out_are_ollamas_defaults)
{
	cr_assert_str_eq(
	    full("tinyllama"), "registry.ollama.ai/library/tinyllama:latest");
	cr_assert_str_eq(full("qwen2.5-coder:7b"),
	    "registry.ollama.ai/library/qwen2.5-coder:7b");
	cr_assert_str_eq(
	    full("someone/model:q4"), "registry.ollama.ai/someone/model:q4");
	cr_assert_str_eq(full("example.com/someone/model"),
	    "example.com/someone/model:latest");
}

Test(modelname, case_a_digest_a_scheme_and_an_empty_tag_do_not_matter)
{
	cr_assert_str_eq(full("TinyLlama:Latest"), full("tinyllama"));
	cr_assert_str_eq(
	    full("tinyllama:latest@sha256:0123abcd"), full("tinyllama"));
	cr_assert_str_eq(full("https://registry.ollama.ai/library/tinyllama"),
	    full("tinyllama"));
	cr_assert_str_eq(full("tinyllama:"), full("tinyllama"));
}

Test(modelname, a_hosts_port_is_no_tag)
{
	cr_assert_str_eq(
	    full("localhost:5000/me/model"), "localhost:5000/me/model:latest");
}

Test(modelname, one_model_by_every_name_and_not_another)
{
	cr_assert(model_name_same("tinyllama", "tinyllama:latest"));
	cr_assert(model_name_same("library/tinyllama",
	    "registry.ollama.ai/library/tinyllama:latest"));
	cr_assert(model_name_same("TinyLlama", "tinyllama:latest"));
	cr_assert_not(model_name_same("tinyllama", "tinyllama:1.1b"));
	cr_assert_not(model_name_same("tinyllama", "someone/tinyllama"));
	cr_assert_not(model_name_same("qwen2.5", "qwen2.5-coder"));
}

Test(modelname, a_name_too_long_is_refused_and_compared_as_it_is)
{
	char name[700], out[600];

	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	cr_assert_eq(model_name_full(name, out, sizeof(out)), -1);
	cr_assert_eq(model_name_full("tinyllama", out, 10), -1);
	cr_assert(model_name_same(name, name));
}

/* Ollama 0.33's model.ParseName and Name.IsValid, exactly. */
static int
valid(const char *name)
{
	struct model_name n;

	return model_name_parse(name, strlen(name), &n) == 0;
}

Test(modelname, parse_fills_in_ollamas_defaults_and_keeps_case)
{
	struct model_name n;

	cr_assert_eq(model_name_parse("TinyLlama", 9, &n), 0);
	cr_assert_str_eq(n.host, "registry.ollama.ai");
	cr_assert_str_eq(n.space, "library");
	cr_assert_str_eq(n.model, "TinyLlama");
	cr_assert_str_eq(n.tag, "latest");
	cr_assert_eq(model_name_parse("me/m:q4", 7, &n), 0);
	cr_assert_str_eq(n.space, "me");
	cr_assert_str_eq(n.tag, "q4");
	cr_assert_eq(model_name_parse("localhost:5000/me/m", 19, &n), 0);
	cr_assert_str_eq(n.host, "localhost:5000");
	cr_assert_str_eq(n.tag, "latest");
}

Test(modelname, a_scheme_is_dropped_unread_and_an_empty_host_is_the_default)
{
	struct model_name n;
	const char *s = "any thing://example.com/me/m";

	cr_assert_eq(model_name_parse(s, strlen(s), &n), 0);
	cr_assert_str_eq(n.host, "example.com");
	cr_assert(valid("https:///library/tinyllama"));
	cr_assert_eq(model_name_parse("https:///library/t", 18, &n), 0);
	cr_assert_str_eq(n.host, "registry.ollama.ai");
	/* Without its host, the scheme is read as one. */
	cr_assert_not(valid("https://tinyllama"));
}

Test(modelname, characters_each_part_takes)
{
	cr_assert(valid("qwen2.5-coder_x:7b-q4_K.M"));
	cr_assert(valid("_m"));
	cr_assert(valid("h.x-y_z:1/n-s_/m"));
	cr_assert_not(valid("-m"));
	cr_assert_not(valid(".m"));
	cr_assert_not(valid("m:-t"));
	cr_assert_not(valid("n.s/m"));
	cr_assert_not(valid("a b"));
	cr_assert_not(valid("caf\xc3\xa9"));
	cr_assert_not(valid("m\t"));
	cr_assert_not(valid("m@sha256:0123"));
	cr_assert_not(valid("m+1"));
	cr_assert_not(valid("m:t:u"));
	cr_assert_not(valid("a/b/c/d"));
	cr_assert_not(
	    model_name_parse("a:1\0x", 5, &(struct model_name){0}) == 0);
}

Test(modelname, a_part_a_separator_promises_must_be_there)
{
	cr_assert_not(valid(""));
	cr_assert_not(valid("m:"));
	cr_assert_not(valid(":t"));
	cr_assert_not(valid("/m"));
	cr_assert_not(valid("ns/"));
	cr_assert_not(valid("/ns/m"));
	cr_assert_not(valid("h//m"));
}

Test(modelname, lengths)
{
	char name[1024];

	memset(name, 'm', 80);
	name[80] = '\0';
	cr_assert(valid(name));
	strcpy(name + 80, "m");
	cr_assert_not(valid(name));
	memset(name, 'h', 350);
	strcpy(name + 350, "/n/m:t");
	cr_assert(valid(name));
	memset(name, 'h', 351);
	strcpy(name + 351, "/n/m:t");
	cr_assert_not(valid(name));
}

Test(modelname, shortest_as_ollama_displays_it)
{
	struct model_name n;
	char out[MODEL_NAME_FULL_MAX];

	cr_assert_eq(
	    model_name_parse("Registry.Ollama.AI/library/m", 28, &n), 0);
	model_name_shortest(&n, out, sizeof(out));
	cr_assert_str_eq(out, "m:latest");
	cr_assert_eq(model_name_parse("me/m:q4", 7, &n), 0);
	model_name_shortest(&n, out, sizeof(out));
	cr_assert_str_eq(out, "me/m:q4");
	cr_assert_eq(model_name_parse("h:1/library/m", 13, &n), 0);
	model_name_shortest(&n, out, sizeof(out));
	cr_assert_str_eq(out, "h:1/library/m:latest");
}
