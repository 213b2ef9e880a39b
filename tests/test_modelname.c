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
