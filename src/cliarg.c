/* cliarg.c: numbers given as command-line options, checked whole. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

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
