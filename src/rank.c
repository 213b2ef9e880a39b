#include "autoconf.h"

#include <math.h>
#include <stdlib.h>

#include "rank.h"

static int
ascending(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void
rank_sort(double *v, size_t n)
{
	/* None may be no array at all, which qsort must not be given. */
	if (n > 0)
		qsort(v, n, sizeof(*v), ascending);
}

double
rank_nearest(const double *sorted, size_t n, double p)
{
	/* p * n may land a hair above a whole rank: 0.95 * 20. */
	double rank = ceil(p * (double)n - 1e-9);

	return sorted[rank < 1     ? 0
	        : rank > (double)n ? n - 1
	                           : (size_t)rank - 1];
}
