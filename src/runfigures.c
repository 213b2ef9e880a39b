/*
 * runfigures.c: the figures of a played run that the benchmark's targets
 * are judged by, apart from how the run was played (live or replayed).
 */
#include "autoconf.h"

#include <math.h>
#include <stdlib.h>

#include "workload.h"

struct edge {
	double t;
	int dwait, dbusy;
};

static int
cmp_edge(const void *a, const void *b)
{
	const struct edge *x = a, *y = b;

	return (x->t > y->t) - (x->t < y->t);
}

double
run_makespan(const struct run *w)
{
	double first = INFINITY, last = -INFINITY;

	for (int i = 0; i < w->n; i++) {
		first = fmin(first, w->r[i].arrive);
		if (w->r[i].ok)
			last = fmax(last, w->r[i].done);
	}
	return last > first ? last - first : 0;
}

double
slot_utilization(const struct run *w, double from)
{
	struct edge *e = calloc((size_t)w->n * 3, sizeof(*e));
	int ne = 0, waiting = 0, busy = 0;
	double served = 0, span = 0;

	/* A figure missing for want of memory would read as a result. */
	if (e == NULL && w->n > 0)
		abort();
	for (int i = 0; i < w->n; i++) {
		const struct request *q = &w->r[i];
		double start = q->done - q->service;

		if (!q->ok)
			continue;
		if (start < q->submit)
			start = q->submit;
		/* A service read below 0 (a backend's or a supervisor's
		 * figures) would start after the end, and a slot be freed
		 * before it was taken. */
		if (start > q->done)
			start = q->done;
		e[ne++] = (struct edge){q->submit, +1, 0};
		e[ne++] = (struct edge){start, -1, +1};
		e[ne++] = (struct edge){q->done, 0, -1};
	}
	qsort(e, (size_t)ne, sizeof(*e), cmp_edge);
	for (int i = 0; i + 1 < ne; i++) {
		double dt;

		waiting += e[i].dwait;
		busy += e[i].dbusy;
		dt = e[i + 1].t - fmax(e[i].t, from);
		if (waiting > 0 && dt > 0) {
			span += dt;
			served += dt * (busy < SLOTS ? busy : SLOTS) / SLOTS;
		}
	}
	free(e);
	return span > 0 ? served / span : 1.0;
}
