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
	uint64_t ns;
} duration_units[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
    {"ms", 1000000},
    {"s", 1000000000},
    {"m", 60000000000},
    {"h", 3600000000000},
};

/* Go's bound on a duration's magnitude while it is read: a negative one
 * may reach it, a positive one stops one short. */
#define DURATION_MAGNITUDE_MAX ((uint64_t)1 << 63)

int
duration_parse(const char *orig, int64_t *out_ns, char *err, size_t errlen)
{
	const char *s = orig;
	uint64_t total = 0;
	int neg = 0;

	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (strcmp(s, "0") == 0) {
		*out_ns = 0;
		return 0;
	}
	if (*s == '\0')
		goto invalid;
	/* Whole numbers, as Go's time.ParseDuration: a double would round
	 * the last nanoseconds below 2^63 up past it. */
	while (*s != '\0') {
		uint64_t whole = 0, frac = 0, unit;
		double scale = 1;
		int digits = 0, frac_full = 0;
		size_t ulen = 0, i;

		while (*s >= '0' && *s <= '9') {
			if (whole > DURATION_MAGNITUDE_MAX / 10)
				goto invalid;
			whole = whole * 10 + (uint64_t)(*s++ - '0');
			if (whole > DURATION_MAGNITUDE_MAX)
				goto invalid;
			digits++;
		}
		if (*s == '.') {
			s++;
			/* Digits past what 63 bits hold add no precision. */
			while (*s >= '0' && *s <= '9') {
				uint64_t d = (uint64_t)(*s++ - '0');

				digits++;
				if (frac_full ||
				    frac > (uint64_t)INT64_MAX / 10 ||
				    frac * 10 + d > DURATION_MAGNITUDE_MAX) {
					frac_full = 1;
					continue;
				}
				frac = frac * 10 + d;
				scale *= 10;
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
		unit = duration_units[i].ns;
		if (whole > DURATION_MAGNITUDE_MAX / unit)
			goto invalid;
		whole *= unit;
		/* A double holds a fraction of an hour (3.6e12 ns) to the
		 * nanosecond. */
		if (frac > 0) {
			whole +=
			    (uint64_t)((double)frac * ((double)unit / scale));
			if (whole > DURATION_MAGNITUDE_MAX)
				goto invalid;
		}
		if (whole > DURATION_MAGNITUDE_MAX - total)
			goto invalid;
		total += whole;
		s += ulen;
	}
	if (!neg && total > (uint64_t)INT64_MAX)
		goto invalid;
	*out_ns = neg ? (total > 0 ? DURATION_FOREVER : 0) : (int64_t)total;
	return 0;
invalid:
	snprintf(err, errlen, "time: invalid duration \"%s\"", orig);
	return -1;
}

const char *
duration_shown_ms(int64_t ms, char *out, size_t len)
{
	static const struct {
		int64_t ms;
		const char *unit;
	} units[] = {{3600000, "h"}, {60000, "m"}, {1000, "s"}};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(out, len, "%lld%s",
			    (long long)(ms / units[i].ms), units[i].unit);
			return out;
		}
	snprintf(out, len, "%lldms", (long long)ms);
	return out;
}
