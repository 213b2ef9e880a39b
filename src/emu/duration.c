/*
 * duration.c: keep_alive values, parsed as Ollama parses them (Go's
 * time.ParseDuration for strings, seconds for numbers, negative = forever).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "emu.h"

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
emu_duration_parse(const char *orig, int64_t *out_ns, char *err, size_t errlen)
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
	*out_ns = neg ? (total > 0 ? EMU_FOREVER : 0) : (int64_t)total;
	return 0;
invalid:
	snprintf(err, errlen, "time: invalid duration \"%s\"", orig);
	return -1;
}

int
emu_keep_alive_from_json(
    const json_t *v, int *present, int64_t *out_ns, char *err, size_t errlen)
{
	*present = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_number(v)) {
		double secs = json_number_value(v);

		if (!isfinite(secs) || secs * 1e9 > 9.2e18) {
			snprintf(err, errlen, "invalid keep_alive");
			return -1;
		}
		*out_ns = secs < 0 ? EMU_FOREVER : (int64_t)(secs * 1e9);
		*present = 1;
		return 0;
	}
	if (json_is_string(v)) {
		if (emu_duration_parse(
		        json_string_value(v), out_ns, err, errlen) != 0)
			return -1;
		*present = 1;
		return 0;
	}
	snprintf(err, errlen, "Unsupported type: '%s'",
	    json_is_boolean(v)     ? "bool"
	        : json_is_array(v) ? "[]interface {}"
	                           : "map[string]interface {}");
	return -1;
}
