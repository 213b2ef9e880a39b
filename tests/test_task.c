/*
 * Stackful tasks: switching, the state a switch must keep, stacks and their
 * guard, and what ten thousand tasks cost. Each test runs in its own process,
 * so the ones that die of a signal take nothing else down.
 */
#include <sys/mman.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "task.h"

static size_t
page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/*
 * call_marked(fn, arg, mark) loads every callee-saved register with a value
 * derived from mark, calls fn(arg), and returns how many of them no longer
 * hold their value. Written in assembly because C cannot pin values in
 * chosen registers across a call.
 */
long call_marked(void (*fn)(void *), void *arg, unsigned long mark);

#if defined(__x86_64__)
#define HAVE_CALL_MARKED 1
/* Marks rbx, rbp, r12..r15 with mark+1..mark+6. */
__asm__(".pushsection .text\n\t"
        ".globl call_marked\n\t"
        ".hidden call_marked\n\t"
        ".type call_marked, @function\n\t"
        "call_marked:\n\t"
        "pushq %rbp\n\t"
        "pushq %rbx\n\t"
        "pushq %r12\n\t"
        "pushq %r13\n\t"
        "pushq %r14\n\t"
        "pushq %r15\n\t"
        "pushq %rdx\n\t"
        "leaq 1(%rdx), %rbx\n\t"
        "leaq 2(%rdx), %rbp\n\t"
        "leaq 3(%rdx), %r12\n\t"
        "leaq 4(%rdx), %r13\n\t"
        "leaq 5(%rdx), %r14\n\t"
        "leaq 6(%rdx), %r15\n\t"
        "movq %rdi, %rax\n\t"
        "movq %rsi, %rdi\n\t"
        "callq *%rax\n\t"
        "movq (%rsp), %rdx\n\t"
        "xorl %eax, %eax\n\t"
        "leaq 1(%rdx), %rcx\n\t"
        "cmpq %rcx, %rbx\n\t"
        "setne %cl\n\t"
        "movzbl %cl, %ecx\n\t"
        "addq %rcx, %rax\n\t"
        "leaq 2(%rdx), %rcx\n\t"
        "cmpq %rcx, %rbp\n\t"
        "setne %cl\n\t"
        "movzbl %cl, %ecx\n\t"
        "addq %rcx, %rax\n\t"
        "leaq 3(%rdx), %rcx\n\t"
        "cmpq %rcx, %r12\n\t"
        "setne %cl\n\t"
        "movzbl %cl, %ecx\n\t"
        "addq %rcx, %rax\n\t"
        "leaq 4(%rdx), %rcx\n\t"
        "cmpq %rcx, %r13\n\t"
        "setne %cl\n\t"
        "movzbl %cl, %ecx\n\t"
        "addq %rcx, %rax\n\t"
        "leaq 5(%rdx), %rcx\n\t"
        "cmpq %rcx, %r14\n\t"
        "setne %cl\n\t"
        "movzbl %cl, %ecx\n\t"
        "addq %rcx, %rax\n\t"
        "leaq 6(%rdx), %rcx\n\t"
        "cmpq %rcx, %r15\n\t"
        "setne %cl\n\t"
        "movzbl %cl, %ecx\n\t"
        "addq %rcx, %rax\n\t"
        "popq %rdx\n\t"
        "popq %r15\n\t"
        "popq %r14\n\t"
        "popq %r13\n\t"
        "popq %r12\n\t"
        "popq %rbx\n\t"
        "popq %rbp\n\t"
        "ret\n\t"
        ".size call_marked, .-call_marked\n\t"
        ".popsection");
#elif defined(__aarch64__)
#define HAVE_CALL_MARKED 1
/* Marks x19..x29 with mark+1..mark+11 and d8..d15 with mark+21..mark+28. */
__asm__(".pushsection .text\n\t"
        ".globl call_marked\n\t"
        ".hidden call_marked\n\t"
        ".type call_marked, %function\n\t"
        "call_marked:\n\t"
        "stp x29, x30, [sp, #-176]!\n\t"
        "stp x19, x20, [sp, #16]\n\t"
        "stp x21, x22, [sp, #32]\n\t"
        "stp x23, x24, [sp, #48]\n\t"
        "stp x25, x26, [sp, #64]\n\t"
        "stp x27, x28, [sp, #80]\n\t"
        "stp d8, d9, [sp, #96]\n\t"
        "stp d10, d11, [sp, #112]\n\t"
        "stp d12, d13, [sp, #128]\n\t"
        "stp d14, d15, [sp, #144]\n\t"
        "str x2, [sp, #160]\n\t"
        "mov x9, x0\n\t"
        "mov x0, x1\n\t"
        "add x19, x2, #1\n\t"
        "add x20, x2, #2\n\t"
        "add x21, x2, #3\n\t"
        "add x22, x2, #4\n\t"
        "add x23, x2, #5\n\t"
        "add x24, x2, #6\n\t"
        "add x25, x2, #7\n\t"
        "add x26, x2, #8\n\t"
        "add x27, x2, #9\n\t"
        "add x28, x2, #10\n\t"
        "add x29, x2, #11\n\t"
        "add x10, x2, #21\n\t"
        "fmov d8, x10\n\t"
        "add x10, x2, #22\n\t"
        "fmov d9, x10\n\t"
        "add x10, x2, #23\n\t"
        "fmov d10, x10\n\t"
        "add x10, x2, #24\n\t"
        "fmov d11, x10\n\t"
        "add x10, x2, #25\n\t"
        "fmov d12, x10\n\t"
        "add x10, x2, #26\n\t"
        "fmov d13, x10\n\t"
        "add x10, x2, #27\n\t"
        "fmov d14, x10\n\t"
        "add x10, x2, #28\n\t"
        "fmov d15, x10\n\t"
        "blr x9\n\t"
        "ldr x2, [sp, #160]\n\t"
        "mov x0, #0\n\t"
        "add x10, x2, #1\n\t"
        "cmp x19, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "add x10, x2, #2\n\t"
        "cmp x20, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "add x10, x2, #3\n\t"
        "cmp x21, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "add x10, x2, #4\n\t"
        "cmp x22, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "add x10, x2, #5\n\t"
        "cmp x23, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "add x10, x2, #6\n\t"
        "cmp x24, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "add x10, x2, #7\n\t"
        "cmp x25, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "add x10, x2, #8\n\t"
        "cmp x26, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "add x10, x2, #9\n\t"
        "cmp x27, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "add x10, x2, #10\n\t"
        "cmp x28, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "add x10, x2, #11\n\t"
        "cmp x29, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "fmov x11, d8\n\t"
        "add x10, x2, #21\n\t"
        "cmp x11, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "fmov x11, d9\n\t"
        "add x10, x2, #22\n\t"
        "cmp x11, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "fmov x11, d10\n\t"
        "add x10, x2, #23\n\t"
        "cmp x11, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "fmov x11, d11\n\t"
        "add x10, x2, #24\n\t"
        "cmp x11, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "fmov x11, d12\n\t"
        "add x10, x2, #25\n\t"
        "cmp x11, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "fmov x11, d13\n\t"
        "add x10, x2, #26\n\t"
        "cmp x11, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "fmov x11, d14\n\t"
        "add x10, x2, #27\n\t"
        "cmp x11, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "fmov x11, d15\n\t"
        "add x10, x2, #28\n\t"
        "cmp x11, x10\n\t"
        "cinc x0, x0, ne\n\t"
        "ldp x19, x20, [sp, #16]\n\t"
        "ldp x21, x22, [sp, #32]\n\t"
        "ldp x23, x24, [sp, #48]\n\t"
        "ldp x25, x26, [sp, #64]\n\t"
        "ldp x27, x28, [sp, #80]\n\t"
        "ldp d8, d9, [sp, #96]\n\t"
        "ldp d10, d11, [sp, #112]\n\t"
        "ldp d12, d13, [sp, #128]\n\t"
        "ldp d14, d15, [sp, #144]\n\t"
        "ldp x29, x30, [sp], #176\n\t"
        "ret\n\t"
        ".size call_marked, .-call_marked\n\t"
        ".popsection");
#endif

/* A task that records each step it reaches in a shared trace. */
struct trace {
	char steps[16];
	int n;
};

static void
note(struct trace *tr, char c)
{
	if (tr->n < (int)sizeof(tr->steps) - 1)
		tr->steps[tr->n++] = c;
}

static void
two_yields(void *arg)
{
	struct trace *tr = arg;

	note(tr, 'a');
	task_yield();
	note(tr, 'b');
	task_yield();
	note(tr, 'c');
}

Test(task, yield_returns_to_the_resumer_and_resume_continues_after_the_yield)
{
	struct trace tr = {{0}, 0};
	struct task *t = task_create(0, two_yields, &tr);

	cr_assert_not_null(t);
	cr_assert_str_eq(tr.steps, "", "creating a task must not run it");
	task_resume(t);
	note(&tr, '1');
	task_resume(t);
	note(&tr, '2');
	task_resume(t);
	note(&tr, '3');
	cr_assert_str_eq(tr.steps, "a1b2c3");
	task_destroy(t);
}

Test(task, a_finished_task_reports_finished)
{
	struct trace tr = {{0}, 0};
	struct task *t = task_create(0, two_yields, &tr);

	cr_assert_not_null(t);
	cr_assert_not(task_finished(t), "a task never run is not finished");
	task_resume(t);
	cr_assert_not(task_finished(t), "a yielded task is not finished");
	task_resume(t);
	task_resume(t);
	cr_assert(task_finished(t), "a task whose function returned is");
	cr_assert_str_eq(tr.steps, "abc");
	task_destroy(t);
}

static void
record_current(void *arg)
{
	struct task **seen = arg;

	seen[0] = task_current();
	task_yield();
	seen[1] = task_current();
}

Test(task, task_current_is_null_outside_a_task)
{
	struct task *seen[2] = {NULL, NULL};
	struct task *t;

	cr_assert_null(task_current());
	t = task_create(0, record_current, seen);
	cr_assert_not_null(t);
	task_resume(t);
	cr_assert_null(task_current(), "null again once the task yields");
	task_resume(t);
	cr_assert_null(task_current(), "null again once the task returns");
	cr_assert_eq(seen[0], t, "inside, it is the running task");
	cr_assert_eq(seen[1], t, "and still is after a yield");
	task_destroy(t);
}

static void
nothing(void *arg)
{
}

Test(task, task_arg_returns_the_argument_given_at_creation)
{
	int x;
	struct task *t = task_create(0, nothing, &x);

	cr_assert_not_null(t);
	cr_assert_eq(task_arg(t), &x);
	task_resume(t);
	cr_assert_eq(task_arg(t), &x, "still after the task finished");
	task_destroy(t);
}

#ifdef HAVE_CALL_MARKED
struct marked {
	unsigned long mark;
	int yields;
	long clobbered;
};

static void
yield_n(void *arg)
{
	int *n = arg;

	for (int i = 0; i < *n; i++)
		task_yield();
}

static void
marked_task(void *arg)
{
	struct marked *m = arg;

	m->clobbered = call_marked(yield_n, &m->yields, m->mark);
}

static void
resume_thunk(void *arg)
{
	task_resume(arg);
}

Test(task, callee_saved_registers_survive_a_switch)
{
	struct marked a = {0xa5a5000000000000UL, 3, -1};
	struct marked b = {0x5a5a000000000000UL, 3, -1};
	struct task *ta = task_create(0, marked_task, &a);
	struct task *tb = task_create(0, marked_task, &b);
	long clobbered = 0;

	cr_assert_not_null(ta);
	cr_assert_not_null(tb);
	/*
	 * Each task holds its marks in registers while suspended, and the
	 * resumer holds others, so a register the switch forgets shows up as
	 * someone else's mark.
	 */
	for (unsigned long i = 0; i < 4; i++) {
		clobbered +=
		    call_marked(resume_thunk, ta, 0xc3c3000000000000UL + i);
		clobbered +=
		    call_marked(resume_thunk, tb, 0x3c3c000000000000UL + i);
	}
	cr_assert(task_finished(ta));
	cr_assert(task_finished(tb));
	cr_assert_eq(
	    a.clobbered, 0, "%ld registers changed in task a", a.clobbered);
	cr_assert_eq(
	    b.clobbered, 0, "%ld registers changed in task b", b.clobbered);
	cr_assert_eq(
	    clobbered, 0, "%ld registers changed in the resumer", clobbered);
	task_destroy(ta);
	task_destroy(tb);
}
#else
/*
 * Without the assembly helper: enough live values that some sit in
 * callee-saved registers across the yield.
 */
static void
live_values(void *arg)
{
	long *bad = arg;
	volatile long seed = 7;
	long v0 = seed * 3, v1 = seed * 5, v2 = seed * 7, v3 = seed * 11;
	long v4 = seed * 13, v5 = seed * 17, v6 = seed * 19, v7 = seed * 23;

	task_yield();
	*bad = (v0 != 21) + (v1 != 35) + (v2 != 49) + (v3 != 77) + (v4 != 91) +
	    (v5 != 119) + (v6 != 133) + (v7 != 161);
}

Test(task, callee_saved_registers_survive_a_switch)
{
	long bad_a = -1, bad_b = -1;
	struct task *a = task_create(0, live_values, &bad_a);
	struct task *b = task_create(0, live_values, &bad_b);

	cr_assert_not_null(a);
	cr_assert_not_null(b);
	task_resume(a);
	task_resume(b);
	task_resume(a);
	task_resume(b);
	cr_assert_eq(bad_a, 0);
	cr_assert_eq(bad_b, 0);
	task_destroy(a);
	task_destroy(b);
}
#endif

/*
 * Floating point: the rounding modes are per context (MXCSR and the x87
 * control word on x86-64, FPCR on aarch64), and 1/3 rounds differently
 * upward than to nearest (-1/3 in x87's 64-bit significand), so a mode that
 * leaks across a switch changes a result. Live doubles across the yield check
 * the FP registers.
 */
#if defined(__x86_64__)
#define HAVE_FP_MODES 1
static unsigned
fp_modes(void)
{
	uint32_t mxcsr;
	uint16_t cw;

	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	return (mxcsr >> 13 & 3) | (cw >> 10 & 3) << 2;
}

static void
round_upward(void)
{
	uint32_t mxcsr;
	uint16_t cw;

	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
	mxcsr = (mxcsr & ~0x6000u) | 0x4000u;
	__asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	cw = (uint16_t)((cw & ~0x0c00u) | 0x0800u);
	__asm__ volatile("fldcw %0" : : "m"(cw));
}

/* Both units round upward: SSE's field and x87's field both say 2. */
#define MODES_UPWARD (2u | 2u << 2)
#define MODES_NEAREST 0u
#elif defined(__aarch64__)
#define HAVE_FP_MODES 1
static unsigned
fp_modes(void)
{
	uint64_t fpcr;

	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	return (unsigned)(fpcr >> 22 & 3);
}

static void
round_upward(void)
{
	uint64_t fpcr;

	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	fpcr = (fpcr & ~(3ull << 22)) | 1ull << 22;
	__asm__ volatile("msr fpcr, %0" : : "r"(fpcr));
}

#define MODES_UPWARD 1u
#define MODES_NEAREST 0u
#endif

static volatile double fp_one = 1.0, fp_three = 3.0;

struct fp_probe {
	unsigned modes_before, modes_after;
	double q_before, q_after;
	long double lq_before, lq_after;
	int live_ok;
};

static void
fp_task(void *arg)
{
	struct fp_probe *p = arg;
	double live[8];

#ifdef HAVE_FP_MODES
	round_upward();
	p->modes_before = fp_modes();
#endif
	for (int i = 0; i < 8; i++)
		live[i] = fp_one / (fp_three + i);
	p->q_before = fp_one / fp_three;
	p->lq_before = -(long double)fp_one / fp_three;
	task_yield();
#ifdef HAVE_FP_MODES
	p->modes_after = fp_modes();
#endif
	p->q_after = fp_one / fp_three;
	p->lq_after = -(long double)fp_one / fp_three;
	p->live_ok = 1;
	for (int i = 0; i < 8; i++)
		if (live[i] != fp_one / (fp_three + i))
			p->live_ok = 0;
}

static void
fp_noise(void *arg)
{
	volatile double acc = 0;

	for (int i = 1; i < 100; i++)
		acc += fp_one / (fp_three * i);
	task_yield();
	*(double *)arg = acc;
}

Test(task, floating_point_state_survives_a_switch)
{
	struct fp_probe p;
	double noise = 0;
	struct task *t, *n;
	double q_loop;
	long double lq_loop;

	memset(&p, 0, sizeof(p));
	t = task_create(0, fp_task, &p);
	n = task_create(0, fp_noise, &noise);
	cr_assert_not_null(t);
	cr_assert_not_null(n);
	task_resume(t);
	task_resume(n);
#ifdef HAVE_FP_MODES
	cr_assert_eq(fp_modes(), MODES_NEAREST,
	    "the task's rounding mode leaked into the loop");
#endif
	q_loop = fp_one / fp_three;
	lq_loop = -(long double)fp_one / fp_three;
	task_resume(n);
	task_resume(t);
	cr_assert(task_finished(t));
	cr_assert(task_finished(n));
#ifdef HAVE_FP_MODES
	cr_assert_eq(p.modes_before, MODES_UPWARD);
	cr_assert_eq(p.modes_after, MODES_UPWARD,
	    "the task lost its rounding mode across a switch");
	cr_assert_eq(fp_modes(), MODES_NEAREST);
	cr_assert(p.q_before > q_loop, "upward and nearest must differ");
#if defined(__x86_64__)
	cr_assert(p.lq_before > lq_loop, "x87 upward and nearest must differ");
#endif
#endif
	cr_assert(p.q_after == p.q_before);
	cr_assert(p.lq_after == p.lq_before);
	cr_assert(p.live_ok, "a live double changed across a switch");
	cr_assert(noise > 0);
	(void)lq_loop;
	task_destroy(t);
	task_destroy(n);
}

#define MANY 10000
#define ROUNDS 3

struct many {
	int *log;
	int pos;
};

struct member {
	struct many *m;
	int id;
};

static void
take_turns(void *arg)
{
	struct member *me = arg;

	for (int r = 0; r < ROUNDS; r++) {
		me->m->log[me->m->pos++] = me->id * ROUNDS + r;
		task_yield();
	}
}

Test(task, ten_thousand_tasks_interleave_in_order)
{
	static struct task *tasks[MANY];
	static struct member members[MANY];
	struct many m;
	int out_of_order = 0, finished = 0;

	m.log = calloc(MANY * ROUNDS, sizeof(*m.log));
	m.pos = 0;
	cr_assert_not_null(m.log);
	for (int i = 0; i < MANY; i++) {
		members[i].m = &m;
		members[i].id = i;
		tasks[i] = task_create(0, take_turns, &members[i]);
		cr_assert_not_null(tasks[i], "task %d: %s", i, strerror(errno));
	}
	for (int r = 0; r < ROUNDS; r++)
		for (int i = 0; i < MANY; i++)
			task_resume(tasks[i]);
	for (int i = 0; i < MANY; i++)
		finished += task_finished(tasks[i]);
	cr_assert_eq(finished, 0, "each task still has its last turn");
	for (int i = 0; i < MANY; i++)
		task_resume(tasks[i]);
	cr_assert_eq(m.pos, MANY * ROUNDS);
	for (int k = 0; k < MANY * ROUNDS; k++)
		if (m.log[k] != (k % MANY) * ROUNDS + k / MANY)
			out_of_order++;
	cr_assert_eq(out_of_order, 0, "%d turns out of order", out_of_order);
	for (int i = 0; i < MANY; i++) {
		finished += task_finished(tasks[i]);
		task_destroy(tasks[i]);
	}
	cr_assert_eq(finished, MANY);
	free(m.log);
}

static size_t
resident_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size, resident;
	int n;

	if (f == NULL)
		return 0;
	n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	return n == 2 ? resident * page_size() : 0;
}

static void
yield_once(void *arg)
{
	task_yield();
}

Test(task, ten_thousand_started_tasks_cost_only_the_pages_they_touch)
{
	static struct task *tasks[MANY];
	size_t before, created, started;

#if defined(__SANITIZE_ADDRESS__) &&                                           \
    (defined(TASK_USE_UCONTEXT) || (defined(__CET__) && (__CET__ & 2)) ||      \
        !(defined(__x86_64__) || defined(__aarch64__)))
	cr_skip_test("ASan's swapcontext interceptor clears the shadow of "
	             "every stack it enters, so RSS measures ASan, not tasks");
#endif
	before = resident_bytes();
	cr_assert_gt(before, 0, "cannot read /proc/self/statm");
	for (int i = 0; i < MANY; i++) {
		tasks[i] = task_create(0, yield_once, NULL);
		cr_assert_not_null(tasks[i], "task %d: %s", i, strerror(errno));
	}
	created = resident_bytes();
	for (int i = 0; i < MANY; i++)
		task_resume(tasks[i]);
	started = resident_bytes();
	/*
	 * 64 KiB stacks committed up front would be 640 MB. Created tasks
	 * should cost their structs; started ones a page or two of stack.
	 */
	cr_assert_lt(created - before, (size_t)MANY * 2 * 1024,
	    "10k created tasks take %zu KiB", (created - before) / 1024);
	cr_assert_lt(started - before, (size_t)MANY * 16 * 1024,
	    "10k started tasks take %zu KiB", (started - before) / 1024);
	for (int i = 0; i < MANY; i++)
		task_destroy(tasks[i]);
}

static void
mark_frame(void *arg)
{
	uintptr_t *frame = arg;

	*frame = (uintptr_t)__builtin_frame_address(0);
	task_yield();
}

Test(task, a_task_function_starts_on_an_abi_aligned_stack)
{
	uintptr_t frame = 1;
	struct task *t = task_create(0, mark_frame, &frame);

	cr_assert_not_null(t);
	task_resume(t);
	/* The frame pointer is the stack pointer after the entry's push. */
	cr_assert_eq(frame % 16, 0, "frame at %#lx", (unsigned long)frame);
	task_destroy(t);
}

static void
use_whole_stack(void *arg)
{
	size_t size = task_stack_size(task_current());
	/* Leave room for this frame's overhead and the entry frames above. */
	size_t n = size - 8 * 1024;
	volatile char *buf = __builtin_alloca(n);
	unsigned long sum = 0;

	for (size_t i = 0; i < n; i += 64)
		buf[i] = (char)i;
	buf[n - 1] = 1;
	for (size_t i = 0; i < n; i += 64)
		sum += (unsigned char)buf[i];
	*(unsigned long *)arg = sum + (unsigned char)buf[n - 1];
}

Test(task, a_task_can_use_nearly_all_of_its_stack)
{
	unsigned long sum = 0, want = 1;
	struct task *t = task_create(64 * 1024, use_whole_stack, &sum);

	cr_assert_not_null(t);
	task_resume(t);
	cr_assert(task_finished(t));
	for (size_t i = 0; i < 56 * 1024; i += 64)
		want += (unsigned char)(char)i;
	cr_assert_eq(sum, want);
	task_destroy(t);
}

/* Where the guard-page test expects the fault: the guard below the stack. */
static uintptr_t guard_low, guard_high;
static char altstack[64 * 1024];

/*
 * Finds in /proc/self/maps the mapping holding addr and, right below it, an
 * inaccessible one: the stack and its guard. Returns 0 when both are there.
 */
static int
find_guard(uintptr_t addr, uintptr_t *low, uintptr_t *high)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512], perms[8], prev_perms[8] = "";
	unsigned long start, end, prev_start = 0, prev_end = 0;
	int rc = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3)
			continue;
		if (addr >= start && addr < end) {
			if (prev_end == start &&
			    strcmp(prev_perms, "---p") == 0) {
				*low = prev_start;
				*high = prev_end;
				rc = 0;
			}
			break;
		}
		prev_start = start;
		prev_end = end;
		memcpy(prev_perms, perms, sizeof(prev_perms));
	}
	fclose(f);
	return rc;
}

static void
on_segv(int sig, siginfo_t *si, void *ctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;

	if (a >= guard_low && a < guard_high) {
		/* Returning retries the access, which now kills the test. */
		signal(SIGSEGV, SIG_DFL);
		return;
	}
	_exit(3);
}

/* Far deeper than any stack here; a bound the compiler cannot see past. */
static volatile int recurse_limit = 1 << 30;

static int
recurse(int depth)
{
	volatile char pad[512];

	if (depth >= recurse_limit)
		return 0;
	pad[0] = (char)depth;
	pad[sizeof(pad) - 1] = (char)depth;
	/* The addition after the call keeps it from becoming a jump. */
	return recurse(depth + 1) + pad[0] + pad[sizeof(pad) - 1];
}

static void
overflow(void *arg)
{
	uintptr_t *frame = arg;

	*frame = (uintptr_t)__builtin_frame_address(0);
	task_yield();
	*frame = (uintptr_t)recurse(0);
}

/*
 * The handler runs on an alternate stack because the task's is used up;
 * ASan lets a program's own SIGSEGV handler take over (allow_user_segv_handler
 * defaults to on), so this runs the same under it.
 */
Test(task, a_stack_overflow_hits_the_guard_page, .signal = SIGSEGV)
{
	stack_t ss;
	struct sigaction sa;
	struct task *t;
	uintptr_t frame = 0;

	t = task_create(TASK_STACK_MIN, overflow, &frame);
	cr_assert_not_null(t);
	task_resume(t);
	cr_assert_eq(find_guard(frame, &guard_low, &guard_high), 0,
	    "no inaccessible mapping right below the task's stack");
	cr_assert_geq(guard_high - guard_low, page_size());
	ss.ss_sp = altstack;
	ss.ss_size = sizeof(altstack);
	ss.ss_flags = 0;
	cr_assert_eq(sigaltstack(&ss, NULL), 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGSEGV, &sa, NULL), 0);
	task_resume(t);
	cr_assert_fail("the recursion returned");
}

Test(task, the_stack_size_is_rounded_up_to_pages)
{
	size_t page = page_size();
	size_t ask = 64 * 1024 + 1;
	struct task *t = task_create(ask, nothing, NULL);

	cr_assert_not_null(t);
	cr_assert_eq(task_stack_size(t) % page, 0);
	cr_assert_geq(task_stack_size(t), ask);
	cr_assert_lt(task_stack_size(t), ask + page);
	task_destroy(t);
}

Test(task, a_zero_stack_size_means_the_default_and_small_ones_the_minimum)
{
	struct task *dflt = task_create(0, nothing, NULL);
	struct task *tiny = task_create(1, nothing, NULL);

	cr_assert_not_null(dflt);
	cr_assert_not_null(tiny);
	cr_assert_eq(task_stack_size(dflt), TASK_STACK_DEFAULT);
	cr_assert_eq(task_stack_size(tiny), TASK_STACK_MIN);
	task_destroy(dflt);
	task_destroy(tiny);
}

Test(task, creating_without_a_function_fails_with_einval)
{
	errno = 0;
	cr_assert_null(task_create(0, NULL, NULL));
	cr_assert_eq(errno, EINVAL);
}

Test(task, an_impossible_stack_size_fails_with_enomem)
{
	errno = 0;
	cr_assert_null(task_create(SIZE_MAX, nothing, NULL));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(task_create(SIZE_MAX / 2, nothing, NULL));
	cr_assert_eq(errno, ENOMEM);
}

Test(task, destroying_a_suspended_task_unmaps_its_stack)
{
	uintptr_t frame = 0;
	unsigned char vec;
	struct task *t = task_create(0, mark_frame, &frame);
	void *page;

	cr_assert_not_null(t);
	task_resume(t);
	cr_assert_not(task_finished(t));
	page = (void *)(frame & ~(uintptr_t)(page_size() - 1));
	cr_assert_eq(mincore(page, page_size(), &vec), 0,
	    "the stack is mapped while the task lives");
	task_destroy(t);
	errno = 0;
	cr_assert_eq(mincore(page, page_size(), &vec), -1);
	cr_assert_eq(errno, ENOMEM, "the stack is gone after task_destroy");
}

static void
deep_then_yield(void *arg)
{
	volatile char buf[8 * 1024];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)i;
	task_yield();
	*(int *)arg = buf[100];
}

static void
sum_buffer(void *arg)
{
	volatile char buf[16 * 1024];
	int sum = 0;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = 1;
	for (size_t i = 0; i < sizeof(buf); i++)
		sum += buf[i];
	*(int *)arg = sum;
}

/*
 * An abandoned task leaves frames whose sanitizer redzones were never
 * cleared; a stack mapped later at the same address must not inherit them.
 */
Test(task, a_stack_mapped_where_an_abandoned_one_was_starts_clean)
{
	int unused = 0, sum = 0;

	for (int i = 0; i < 8; i++) {
		struct task *a = task_create(0, deep_then_yield, &unused);
		struct task *b;

		cr_assert_not_null(a);
		task_resume(a);
		task_destroy(a);
		b = task_create(0, sum_buffer, &sum);
		cr_assert_not_null(b);
		task_resume(b);
		cr_assert(task_finished(b));
		cr_assert_eq(sum, 16 * 1024);
		task_destroy(b);
	}
}

Test(task, yielding_outside_a_task_aborts, .signal = SIGABRT)
{
	task_yield();
	cr_assert_fail("task_yield returned outside a task");
}

Test(task, resuming_a_finished_task_aborts, .signal = SIGABRT)
{
	struct task *t = task_create(0, nothing, NULL);

	cr_assert_not_null(t);
	task_resume(t);
	cr_assert(task_finished(t));
	task_resume(t);
	cr_assert_fail("resuming a finished task returned");
}
