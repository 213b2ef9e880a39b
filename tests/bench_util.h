/*
 * bench_util.h: what the small benchmark programs share: a clock in
 * microseconds and an order for qsort of the samples.
 */
#ifndef OLLAMAX_BENCH_UTIL_H
#define OLLAMAX_BENCH_UTIL_H

#include <time.h>

static inline double
bench_now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static inline int
bench_by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

#endif
