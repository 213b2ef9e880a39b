/* cliarg.h: numbers given as command-line options, checked whole. */
#ifndef OLLAMAX_CLIARG_H
#define OLLAMAX_CLIARG_H

/*
 * The value v of option flag as a number in [min, max], all of it: one
 * that is not ("3x", "nan", "1e400", out of range) is told on stderr as
 * "PROG: fatal: FLAG V: expected ..." and the program exits 2.
 */
double cliarg_double(
    const char *prog, const char *flag, const char *v, double min, double max);
long cliarg_long(
    const char *prog, const char *flag, const char *v, long min, long max);

#endif
