/* cliarg.h: command-line options: numbers checked whole, and the options
 * getopt refuses told by the program itself. */
#ifndef OLLAMAX_CLIARG_H
#define OLLAMAX_CLIARG_H

#include <getopt.h>
#include <stddef.h>

/*
 * The value v of option flag as a number in [min, max], all of it: one
 * that is not ("3x", "nan", "1e400", out of range) is told on stderr as
 * "PROG: fatal: FLAG V: expected ..." and the program exits 2.
 */
double cliarg_double(
    const char *prog, const char *flag, const char *v, double min, double max);
long cliarg_long(
    const char *prog, const char *flag, const char *v, long min, long max);

/*
 * getopt_long() with its own messages off: an option it refuses is
 * returned as '?' with why it was refused in why (len bytes), for the
 * program to tell as its other usage errors ("unknown option -x",
 * "unknown option --frob", "--speed needs a value", "--help takes no
 * value", "--st is ambiguous: --stall-rate, --stall-ms"); getopt would
 * name argv[0], often a path.
 * optstring starts with ':', after a '+' if any, as a missing value is
 * told apart from an unknown option by it.
 */
int cliarg_getopt(int argc, char **argv, const char *optstring,
    const struct option *longopts, char *why, size_t len);

#endif
