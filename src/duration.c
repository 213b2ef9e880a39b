/*
 * duration.c: durations as Go writes them ("90s", "1h30m", "250ms"), the
 * one syntax of ollamax's config files and of Ollama's keep_alive.
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "duration.h"

static const struct {
	const char *name;
	double ns;
} duration_units[] = {
    {"ns", 1},
    {"us", 1e3},
    {"\xc2\xb5s", 1e3}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1e3}, /* U+03BC Greek mu */
    {"ms", 1e6},
    {"s", 1e9},
    {"m", 60e9},
    {"h", 3600e9},
};

int
duration_parse(const char *orig, int64_t *out_ns, char *err, size_t errlen)
{
	const char *s = orig;
	double total = 0;
	int neg = 0;

	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (strcmp(s, "0") == 0) {
		*out_ns = 0;
		return 0;
	}
	if (*s == '\0')
		goto invalid;
	while (*s != '\0') {
		double whole = 0, frac = 0, scale = 1;
		int digits = 0;
		size_t ulen = 0, i;

		while (*s >= '0' && *s <= '9') {
			whole = whole * 10 + (*s++ - '0');
			digits++;
		}
		if (*s == '.') {
			s++;
			while (*s >= '0' && *s <= '9') {
				scale /= 10;
				frac += (*s++ - '0') * scale;
				digits++;
			}
		}
		if (digits == 0)
			goto invalid;
		while (s[ulen] != '\0' && s[ulen] != '.' &&
		    !(s[ulen] >= '0' && s[ulen] <= '9'))
			ulen++;
		if (ulen == 0) {
			snprintf(err, errlen,
			    "time: missing unit in duration \"%s\"", orig);
			return -1;
		}
		for (i = 0;
		     i < sizeof(duration_units) / sizeof(duration_units[0]);
		     i++)
			if (strlen(duration_units[i].name) == ulen &&
			    memcmp(duration_units[i].name, s, ulen) == 0)
				break;
		if (i == sizeof(duration_units) / sizeof(duration_units[0])) {
			snprintf(err, errlen,
			    "time: unknown unit \"%.*s\" in duration \"%s\"",
			    (int)ulen, s, orig);
			return -1;
		}
		total += (whole + frac) * duration_units[i].ns;
		s += ulen;
	}
	if (total > 9.2e18)
		goto invalid;
	*out_ns = neg ? (total > 0 ? DURATION_FOREVER : 0) : (int64_t)total;
	return 0;
invalid:
	snprintf(err, errlen, "time: invalid duration \"%s\"", orig);
	return -1;
}
