/*
 * template.h: agent prompts with {{variables}}. Pure: the caller gives the
 * values; an unknown variable is left as written, so that a typo shows in
 * the prompt and `check` can point at it.
 */
#ifndef OLLAMAX_TEMPLATE_H
#define OLLAMAX_TEMPLATE_H

#include <stddef.h>

struct template_var {
	const char *name;
	const char *value;
};

/*
 * Renders tmpl with vars into a malloc'd string (never NULL; the caller
 * frees it). At most max bytes are produced; the rest is cut.
 */
char *template_render(const char *tmpl, const struct template_var *vars,
    size_t nvars, size_t max);

/* The {{word}}s in tmpl (lowercase letters, digits and '_') that are not
 * among names, as "{{a}}, {{b}}" in out (cut to fit), or NULL if none. */
const char *template_unknown(const char *tmpl, const char *const *names,
    size_t nnames, char *out, size_t len);

/* Whether tmpl uses {{name}}: a text given to a template without it would
 * be dropped unseen. */
int template_uses(const char *tmpl, const char *name);

#endif
