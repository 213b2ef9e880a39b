#include "autoconf.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inifile.h"

void
diag_add(struct diag *d, const char *file, int line, const char *fmt, ...)
{
	char msg[512];
	int n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (;;) {
		size_t room = d->cap - d->len;

		n = line > 0
		    ? snprintf(d->text + d->len, room, "%s:%d: %s\n", file,
		          line, msg)
		    : snprintf(d->text + d->len, room, "%s: %s\n", file, msg);
		if (d->text != NULL && (size_t)n < room)
			break;
		d->cap = d->cap * 2 + (size_t)n + 256;
		d->text = realloc(d->text, d->cap);
		if (d->text == NULL)
			abort();
	}
	d->len += (size_t)n;
	d->count++;
}

void
diag_free(struct diag *d)
{
	free(d->text);
	memset(d, 0, sizeof(*d));
}

struct inifile_state {
	FILE *fp;
	const char *path;
	struct diag *diag;
	int line;
	int section_line;
	int continued;
	inifile_key_fn fn;
	void *user;
};

/*
 * inih asks for one line per call, so counting calls gives line numbers.
 * A line longer than inih's buffer would reach it in pieces and be misread:
 * it is reported and handed over as an empty line instead.
 */
static char *
inifile_reader(char *buf, int size, void *stream)
{
	struct inifile_state *st = stream;
	char *got = fgets(buf, size, st->fp);
	size_t len;
	const char *p;

	if (got == NULL)
		return NULL;
	st->line++;
	len = strlen(buf);
	if (len > 0 && buf[len - 1] != '\n' && !feof(st->fp)) {
		int c;

		while ((c = fgetc(st->fp)) != EOF && c != '\n')
			;
		diag_add(st->diag, st->path, st->line,
		    "line longer than %d characters: continue a long value on "
		    "indented lines",
		    size - 2);
		buf[0] = '\n';
		buf[1] = '\0';
		return buf;
	}
	p = buf;
	st->continued = *p == ' ' || *p == '\t';
	while (*p == ' ' || *p == '\t')
		p++;
	/* inih reads an indented "[" as a continuation, not a section. */
	if (*p == '[' && !st->continued)
		st->section_line = st->line;
	return got;
}

static int
inifile_handler(
    void *user, const char *section, const char *key, const char *value)
{
	struct inifile_state *st = user;
	struct ini_item item = {
	    .section = section,
	    .key = key,
	    .value = value,
	    .line = st->line,
	    .section_line = st->section_line,
	    .continued = st->continued,
	};

	st->fn(st->user, &item);
	return 1;
}

int
inifile_parse(const char *path, inifile_key_fn fn, void *user, struct diag *d)
{
	struct inifile_state st = {
	    .path = path, .diag = d, .fn = fn, .user = user};
	int before = d->count, rc;

	st.fp = fopen(path, "r");
	if (st.fp == NULL) {
		diag_add(d, path, 0, "cannot open: %s", strerror(errno));
		return d->count - before;
	}
	rc = ini_parse_stream(inifile_reader, &st, inifile_handler, &st);
	if (rc > 0)
		diag_add(d, path, rc,
		    "syntax error (expected [section] or key = value)");
	else if (rc < 0)
		diag_add(d, path, 0, "cannot read");
	fclose(st.fp);
	return d->count - before;
}

int
ini_get_int(const char *value, long min, long max, long *out, struct diag *d,
    const char *file, int line, const char *key)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0') {
		diag_add(d, file, line, "%s: \"%s\" is not a whole number", key,
		    value);
		return -1;
	}
	if (v < min || v > max) {
		diag_add(d, file, line, "%s: %ld is out of range [%ld, %ld]",
		    key, v, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int
ini_get_double(const char *value, double min, double max, double *out,
    struct diag *d, const char *file, int line, const char *key)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(value, &end);
	if (errno != 0 || end == value || *end != '\0' || !isfinite(v)) {
		diag_add(
		    d, file, line, "%s: \"%s\" is not a number", key, value);
		return -1;
	}
	if (v < min || v > max) {
		diag_add(d, file, line, "%s: %g is out of range [%g, %g]", key,
		    v, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int
ini_get_bool(const char *value, int *out, struct diag *d, const char *file,
    int line, const char *key)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(value, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(value, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	diag_add(d, file, line, "%s: \"%s\" is not yes or no", key, value);
	return -1;
}
