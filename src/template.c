#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "template.h"

#define WORD_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_"

/* Appends n bytes of s, or what fits of them; returns 1 once cut. */
static int
put(char **buf, size_t *len, size_t *cap, size_t max, const char *s, size_t n)
{
	int cut = 0;

	if (*len + n > max) {
		cut = 1;
		n = max - *len;
		/* Cut before a character, not inside it: the prompt goes to
		 * Ollama as JSON, which must be UTF-8. */
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*buf = realloc(*buf, *cap);
		if (*buf == NULL)
			fatal("out of memory");
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return cut;
}

/*
 * The next placeholder from p: the "{{" nearest before the first "}}", so
 * that a stray "{{" earlier ("{{name} asks {{input}}", "{{{input}}}")
 * stays text instead of hiding the placeholder after it. 0 when none.
 */
static int
next_placeholder(const char *p, const char **open, const char **close)
{
	const char *o = strstr(p, "{{"), *c, *q;

	if (o == NULL || (c = strstr(o + 2, "}}")) == NULL)
		return 0;
	for (q = strstr(o + 1, "{{"); q != NULL && q < c;
	     q = strstr(q + 1, "{{"))
		o = q;
	*open = o;
	*close = c;
	return 1;
}

char *
template_render(
    const char *tmpl, const struct template_var *vars, size_t nvars, size_t max)
{
	size_t len = 0, cap = 0;
	char *out = NULL;
	const char *p = tmpl;
	int full = 0;

	put(&out, &len, &cap, max, "", 0);
	while (*p != '\0' && !full) {
		const char *open, *close;
		size_t i, n;

		if (!next_placeholder(p, &open, &close)) {
			put(&out, &len, &cap, max, p, strlen(p));
			break;
		}
		if (put(&out, &len, &cap, max, p, (size_t)(open - p)))
			break;
		n = (size_t)(close - open - 2);
		for (i = 0; i < nvars; i++)
			if (strlen(vars[i].name) == n &&
			    memcmp(vars[i].name, open + 2, n) == 0)
				break;
		if (i < nvars)
			full = put(&out, &len, &cap, max, vars[i].value,
			    strlen(vars[i].value));
		else
			full = put(&out, &len, &cap, max, open, n + 4);
		p = close + 2;
	}
	return out;
}

/* Whether "{{word}}" (n bytes) is in the list already. */
static int
named_already(const char *list, const char *word, size_t n)
{
	for (const char *at = list; (at = strstr(at, "{{")) != NULL; at += 2)
		if (strncmp(at + 2, word, n) == 0 &&
		    strncmp(at + 2 + n, "}}", 2) == 0)
			return 1;
	return 0;
}

const char *
template_unknown(const char *tmpl, const char *const *names, size_t nnames,
    char *out, size_t len)
{
	const char *p = tmpl, *open, *close;
	size_t used = 0;

	out[0] = '\0';
	while (next_placeholder(p, &open, &close)) {
		size_t n, i;

		p = open;
		n = (size_t)(close - p - 2);
		for (i = 0; i < nnames; i++)
			if (strlen(names[i]) == n &&
			    memcmp(names[i], p + 2, n) == 0)
				break;
		/* Only a word can be a misspelt variable: other braces, such
		 * as another template language's {{ .Name }}, are text. */
		/* Each once, and whole: a name cut short would be another. */
		if (i == nnames && n > 0 && strspn(p + 2, WORD_CHARS) == n &&
		    !named_already(out, p + 2, n) && used + n + 6 < len)
			used += (size_t)snprintf(out + used, len - used,
			    "%s{{%.*s}}", used > 0 ? ", " : "", (int)n, p + 2);
		p = close + 2;
	}
	return out[0] != '\0' ? out : NULL;
}

int
template_uses(const char *tmpl, const char *name)
{
	char var[64];

	snprintf(var, sizeof(var), "{{%s}}", name);
	return strstr(tmpl, var) != NULL;
}
