/* Prompt templates: variables filled in, unknown ones kept and found. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "template.h"

static const struct template_var vars[] = {
    {"name", "reviewer"},
    {"n", "7"},
};

Test(template, variables_are_filled_in)
{
	char *s = template_render("{{name}} run {{n}}: go", vars, 2, 1000);

	cr_assert_str_eq(s, "reviewer run 7: go");
	free(s);
}

Test(template, an_unknown_variable_or_an_open_brace_is_left_as_written)
{
	char *s = template_render("a {{nope}} b {{name", vars, 2, 1000);

	cr_assert_str_eq(s, "a {{nope}} b {{name");
	free(s);
}

Test(template, a_stray_open_brace_before_a_variable_does_not_hide_it)
{
	static const char *const known[] = {"name", "n"};
	char buf[32];
	char *s =
	    template_render("{{name} asks {{n}}; {{{name}}}", vars, 2, 1000);

	cr_assert_str_eq(s, "{{name} asks 7; {reviewer}");
	free(s);
	cr_assert_str_eq(
	    template_unknown("{{x {{tiem}}", known, 2, buf, sizeof(buf)),
	    "{{tiem}}");
}

Test(template, the_output_is_cut_at_the_limit)
{
	char *s = template_render("{{name}}{{name}}{{name}}", vars, 2, 10);

	cr_assert_str_eq(s, "reviewerre");
	free(s);
}

Test(template, a_cut_falls_between_characters_and_ends_the_text)
{
	static const struct template_var accented[] = {{"x", "\xc3\xa9\xc3\xa9"}};
	/* 3 bytes of room: "a" and one é; the second é would not fit
	 * whole, and the "b" after it must not take its place. */
	char *s = template_render("a{{x}}b", accented, 1, 4);

	cr_assert_str_eq(s, "a\xc3\xa9");
	free(s);
}

Test(template, unknown_variables_are_found_for_check)
{
	static const char *const known[] = {"name", "n"};
	char buf[32];

	cr_assert_str_eq(
	    template_unknown("x {{n}} {{tiem}}", known, 2, buf, sizeof(buf)),
	    "{{tiem}}");
	cr_assert_str_eq(template_unknown("{{nme}} {{n}} {{tme}}", known, 2,
	                     buf, sizeof(buf)),
	    "{{nme}}, {{tme}}");
	/* Each once, and none cut short to fit. */
	cr_assert_str_eq(
	    template_unknown("{{nme}} {{nme}}", known, 2, buf, sizeof(buf)),
	    "{{nme}}");
	cr_assert_str_eq(template_unknown("{{abcdefghij}} {{klmnopqrstuvwxyz}}",
	                     known, 2, buf, sizeof(buf)),
	    "{{abcdefghij}}");
	cr_assert_null(
	    template_unknown("{{name}} {{n}}", known, 2, buf, sizeof(buf)));
}

Test(template, a_template_uses_a_variable_only_as_a_whole_one)
{
	cr_assert(template_uses("Answer this: {{input}}", "input"));
	cr_assert_not(template_uses("Answer {{inputs}} and {{n}}", "input"));
	cr_assert_not(template_uses("Answer input", "input"));
}
