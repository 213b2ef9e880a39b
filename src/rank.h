/* rank.h: percentiles by nearest rank, as every figure of ollamax takes them.
 */
#ifndef OLLAMAX_RANK_H
#define OLLAMAX_RANK_H

#include <stddef.h>

/* Sorts v ascending. */
void rank_sort(double *v, size_t n);

/*
 * The least of the sorted v that at least p of them do not exceed: p50 of
 * 4 values is the 2nd, p95 of 20 the 19th, p100 the largest. n > 0.
 */
double rank_nearest(const double *sorted, size_t n, double p);

#endif
