#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "template.h"

#define WORD_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_"

static void
put(char **buf, size_t *len, size_t *cap, size_t max, const char *s, size_t n)
{
	if (*len + n > max)
		n = max - *len;
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*buf = realloc(*buf, *cap);
		if (*buf == NULL)
			fatal("out of memory");
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
}

char *
template_render(
    const char *tmpl, const struct template_var *vars, size_t nvars, size_t max)
{
	size_t len = 0, cap = 0;
	char *out = NULL;
	const char *p = tmpl;

	put(&out, &len, &cap, max, "", 0);
	while (*p != '\0' && len < max) {
		const char *open = strstr(p, "{{"), *close;
		size_t i, n;

		if (open == NULL) {
			put(&out, &len, &cap, max, p, strlen(p));
			break;
		}
		put(&out, &len, &cap, max, p, (size_t)(open - p));
		close = strstr(open + 2, "}}");
		if (close == NULL) {
			put(&out, &len, &cap, max, open, strlen(open));
			break;
		}
		n = (size_t)(close - open - 2);
		for (i = 0; i < nvars; i++)
			if (strlen(vars[i].name) == n &&
			    memcmp(vars[i].name, open + 2, n) == 0)
				break;
		if (i < nvars)
			put(&out, &len, &cap, max, vars[i].value,
			    strlen(vars[i].value));
		else
			put(&out, &len, &cap, max, open, n + 4);
		p = close + 2;
	}
	return out;
}

const char *
template_unknown(const char *tmpl, const char *const *names, size_t nnames,
    char *out, size_t len)
{
	const char *p = tmpl;

	while ((p = strstr(p, "{{")) != NULL) {
		const char *close = strstr(p + 2, "}}");
		size_t n, i;

		if (close == NULL)
			return NULL;
		n = (size_t)(close - p - 2);
		for (i = 0; i < nnames; i++)
			if (strlen(names[i]) == n &&
			    memcmp(names[i], p + 2, n) == 0)
				break;
		/* Only a word can be a misspelt variable: other braces, such
		 * as another template language's {{ .Name }}, are text. */
		if (i == nnames && n > 0 && strspn(p + 2, WORD_CHARS) == n) {
			size_t k = n < len - 1 ? n : len - 1;

			memcpy(out, p + 2, k);
			out[k] = '\0';
			return out;
		}
		p = close + 2;
	}
	return NULL;
}
