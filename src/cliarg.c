/* cliarg.c: command-line options: numbers checked whole, and the options
 * getopt refuses told by the program itself. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cliarg.h"

double
cliarg_double(
    const char *prog, const char *flag, const char *v, double min, double max)
{
	char *end;
	double d = strtod(v, &end);

	/* NaN fails both comparisons. */
	if (end == v || *end != '\0' || !(d >= min && d <= max)) {
		fprintf(stderr,
		    "%s: fatal: %s %s: expected a number in [%g, %g]\n", prog,
		    flag, v, min, max);
		exit(2);
	}
	return d;
}

long
cliarg_long(
    const char *prog, const char *flag, const char *v, long min, long max)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (end == v || *end != '\0' || errno == ERANGE || n < min || n > max) {
		fprintf(stderr,
		    "%s: fatal: %s %s: expected a whole number in [%ld, %ld]\n",
		    prog, flag, v, min, max);
		exit(2);
	}
	return n;
}

/* When the long option element ("--" and a name, up to any '=') begins
 * several of longopts and names none whole, says so in why, naming them,
 * and returns 1. */
static int
ambiguous(
    const struct option *longopts, const char *element, char *why, size_t len)
{
	const char *name = element + 2;
	size_t n = strcspn(name, "="), at;
	const struct option *o;
	int matches = 0;

	for (o = longopts; o->name != NULL; o++) {
		if (strncmp(o->name, name, n) != 0)
			continue;
		if (o->name[n] == '\0')
			return 0;
		matches++;
	}
	if (matches < 2)
		return 0;
	at = (size_t)snprintf(why, len, "--%.*s is ambiguous", (int)n, name);
	matches = 0;
	for (o = longopts; o->name != NULL && at < len; o++)
		if (strncmp(o->name, name, n) == 0)
			at += (size_t)snprintf(why + at, len - at, "%s --%s",
			    matches++ == 0 ? ":" : ",", o->name);
	return 1;
}

int
cliarg_getopt(int argc, char **argv, const char *optstring,
    const struct option *longopts, char *why, size_t len)
{
	/* 0 is glibc's getopt started afresh: it starts at 1. */
	int at = optind > 0 ? optind : 1, opt;
	const char *element;
	int is_long;

	opterr = 0;
	opt = getopt_long(argc, argv, optstring, longopts, NULL);
	if (opt != '?' && opt != ':')
		return opt;
	/* The argument the error is about: glibc moves past it only once
	 * its last letter is read (-xj stays at -xj). */
	element = optind == at && at < argc ? argv[at] : argv[optind - 1];
	is_long = strncmp(element, "--", 2) == 0;
	/* glibc sets optopt for a long option too, but for an unknown or
	 * ambiguous one. */
	if (opt == ':' && is_long)
		snprintf(why, len, "%s needs a value", element);
	else if (opt == ':')
		snprintf(why, len, "-%c needs a value", optopt);
	else if (is_long && strchr(element, '=') != NULL && optopt != 0)
		snprintf(why, len, "%.*s takes no value",
		    (int)strcspn(element, "="), element);
	else if (is_long && ambiguous(longopts, element, why, len))
		;
	else if (is_long)
		snprintf(why, len, "unknown option %.*s",
		    (int)strcspn(element, "="), element);
	else if (optopt > 0x20 && optopt < 0x7f)
		snprintf(why, len, "unknown option -%c", optopt);
	else
		snprintf(why, len, "unknown option %s", element);
	return '?';
}
