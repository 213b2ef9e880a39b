/*
 * The figures a run is judged by: slot utilization while requests wait,
 * over the whole run and from a later time on, and the makespan.
 */
#include <criterion/criterion.h>
#include <math.h>

#include "rank.h"
#include "workload.h"

/* A request that came at submit, got a slot at start, and ended at done
 * (s); ok = 0 for one never answered. */
static struct request
served(double submit, double start, double done, int ok)
{
	return (struct request){.arrive = submit,
	    .submit = submit,
	    .done = done,
	    .service = done - start,
	    .ok = ok};
}

static void
assert_near(double got, double want)
{
	cr_assert(fabs(got - want) < 1e-9, "got %.12f, want %.12f", got, want);
}

/*
 * A and B come at 0; B waits 10 s for the second slot while one idles.
 * C and D come at 20 and wait 80 s while both slots serve.
 */
static struct run
two_phases(struct request r[4])
{
	r[0] = served(0, 0, 100, 1);
	r[1] = served(0, 10, 100, 1);
	r[2] = served(20, 100, 110, 1);
	r[3] = served(20, 100, 110, 1);
	return (struct run){.r = r, .n = 4};
}

Test(runfigures, utilization_counts_only_time_when_a_request_waits)
{
	struct request r[4];
	struct run w = two_phases(r);

	/* 10 s at one slot of two, then 80 s at both: 85 of 90. */
	assert_near(slot_utilization(&w, -INFINITY), 85.0 / 90.0);
}

Test(runfigures, utilization_from_a_time_leaves_out_what_came_before)
{
	struct request r[4];
	struct run w = two_phases(r);

	assert_near(slot_utilization(&w, 20), 1.0);
	/* From the middle of the idle stretch: 5 s at half, 80 at full. */
	assert_near(slot_utilization(&w, 5), 82.5 / 85.0);
	/* After every wait: nothing to judge, so nothing was lost. */
	assert_near(slot_utilization(&w, 105), 1.0);
}

Test(runfigures, unanswered_requests_neither_wait_nor_serve)
{
	struct request r[] = {
	    served(0, 0, 10, 1),
	    served(0, 5, 10, 1),
	    served(0, 0, 50, 0),
	};
	struct run w = {.r = r, .n = 3};

	assert_near(slot_utilization(&w, -INFINITY), 0.5);
	assert_near(run_makespan(&w), 10);
}

Test(runfigures, a_start_before_its_submit_counts_from_the_submit)
{
	/*
	 * Clocks of two processes: a service a hair longer than the time
	 * since the submit puts the start before it. Counted as it reads,
	 * that request would "wait" a negative while and hide a real wait:
	 * the second one's, from 0 to 5 with a slot idle.
	 */
	struct request r[] = {
	    served(0, 0, 10, 1),
	    served(0, 5, 15, 1),
	    served(4, 3, 4.5, 1),
	};
	struct run w = {.r = r, .n = 3};

	/* Half of [0, 4), all of [4, 4.5), half of [4.5, 5). */
	assert_near(slot_utilization(&w, -INFINITY), 2.75 / 5.0);
}

Test(runfigures, a_service_below_zero_holds_no_slot)
{
	/*
	 * A backend's or a supervisor's figures may say anything: a service
	 * of -5 s would take the slot 5 s after the end, and free it at the
	 * end before, a slot less than none while it waits.
	 */
	struct request r[] = {
	    served(0, 0, 10, 1),
	    {.arrive = 0, .submit = 0, .done = 10, .service = -5, .ok = 1},
	};
	struct run w = {.r = r, .n = 2};

	/* The second waits from 0 to 10 beside the first. */
	assert_near(slot_utilization(&w, -INFINITY), 0.5);
}

Test(runfigures, the_makespan_runs_from_the_first_arrival_to_the_last_answer)
{
	struct request r[4];
	struct run w = two_phases(r);
	struct run none = {.r = r, .n = 0};

	assert_near(run_makespan(&w), 110);
	assert_near(run_makespan(&none), 0);
}

Test(runfigures, percentiles_take_the_nearest_rank)
{
	double v[20];

	for (int i = 0; i < 20; i++)
		v[i] = 20 - i;
	rank_sort(v, 20);
	/* p95 of 20 is the 19th, not the largest; p50 of 20 the 10th. */
	assert_near(rank_nearest(v, 20, 0.95), 19);
	assert_near(rank_nearest(v, 20, 0.50), 10);
	assert_near(rank_nearest(v, 20, 1.0), 20);
	assert_near(rank_nearest(v, 20, 0.0), 1);
	assert_near(rank_nearest(v, 1, 0.99), 1);
}
