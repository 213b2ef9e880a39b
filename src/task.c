/*
 * Stackful tasks with a hand-written context switch.
 *
 * glibc's swapcontext saves and restores the signal mask, a system call on
 * every switch; tasks here all share the thread's mask, so the switch only
 * has to save what the calling convention says a call preserves. The switch
 * pushes those registers on the stack it leaves, stores the stack pointer,
 * loads the other one and pops. A task never run has no saved state yet: its
 * first frame is written at its first resume, so creating a task touches no
 * page of its stack.
 *
 * The assembly lives here as top-level asm rather than in .S files so that
 * the build needs no assembler support beyond the C compiler's, and so that
 * the frame layout sits next to the C code that builds the first frame.
 * Other architectures fall back to makecontext/swapcontext.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/mman.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "task.h"

/*
 * A build for shadow stacks (CET's, __CET__ bit 2) has every ret checked
 * against a stack of the calls made: the switch, which returns on another
 * stack, would fault. glibc's swapcontext keeps a shadow stack for each
 * context.
 */
#if defined(__CET__) && (__CET__ & 2)
#define TASK_SHADOW_STACK 1
#endif

#if (defined(__x86_64__) || defined(__aarch64__)) &&                           \
    !defined(TASK_USE_UCONTEXT) && !defined(TASK_SHADOW_STACK)
#define TASK_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define TASK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TASK_ASAN 1
#endif
#endif
#ifdef TASK_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* Without registration valgrind takes every switch for a stack overflow. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TASK_VALGRIND 1
#endif
#endif

#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif
#ifndef MAP_STACK
#define MAP_STACK 0
#endif

/*
 * A frame larger than the guard can step over it into whatever is mapped
 * below, often another task's stack. A guard as large as the default stack
 * catches every frame that could have fit in that stack; it costs address
 * space only.
 */
#define TASK_GUARD_SIZE (64 * 1024)

enum task_state {
	TASK_NEW,
	TASK_RUNNING,
	TASK_SUSPENDED,
	TASK_FINISHED,
};

struct task {
#ifdef TASK_ASM_SWITCH
	void *sp;         /* the task's, while it is not running */
	void *resumer_sp; /* the resumer's, while the task runs */
#else
	/* Both live on stacks, so that a task costs the same on every arch. */
	ucontext_t *uc;         /* at the top of the task's own stack */
	ucontext_t *resumer_uc; /* in the resumer's frame */
#endif
	struct task *resumer_task;
	enum task_state state;
	void (*fn)(void *);
	void *arg;
	unsigned char *map; /* the guard, then the stack */
	size_t map_size;
	size_t stack_size;
#ifdef TASK_ASAN
	void *fake_stack;
	void *resumer_fake_stack;
	const void *resumer_bottom;
	size_t resumer_size;
#endif
#ifdef TASK_VALGRIND
	unsigned valgrind_id;
#endif
};

/* Tasks belong to one thread, so each thread has its own running task. */
static _Thread_local struct task *task_cur;

static void task_main(struct task *) __attribute__((noreturn));

static inline unsigned char *
task_stack_low(const struct task *t)
{
	return t->map + (t->map_size - t->stack_size);
}

static inline size_t
task_round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

#ifdef TASK_ASM_SWITCH
/*
 * Saves the callee-saved state on the current stack, stores the stack
 * pointer in *save, and resumes the state saved on the stack at load.
 */
void task_ctx_switch(void **save, void *load)
    __attribute__((visibility("hidden")));
/* Where a new task's first switch returns to; calls task_main(t). */
void task_ctx_start(void) __attribute__((visibility("hidden")));
#endif

#if defined(TASK_ASM_SWITCH) && defined(__x86_64__)
/*
 * Saved frame, from the saved stack pointer up: MXCSR (4 bytes) and the x87
 * control word (2 bytes, padded to 4), r15, r14, r13, r12, rbx, rbp, return
 * address. The status flags travel with MXCSR: the ABI lets any call change
 * them, so restoring a task's own is allowed.
 */
#define TASK_FRAME_WORDS 8

/*
 * A ret here is predicted to go back to the caller of this very switch,
 * which it never does, so it mispredicts every time; an indirect jump is
 * predicted from branch history instead, and measured a third faster. Builds
 * for indirect-branch tracking keep the ret, since the jump's targets carry
 * no endbr64.
 */
#if defined(__CET__)
#define TASK_ENDBR "endbr64\n\t"
#define TASK_RETURN "ret\n\t"
#else
#define TASK_ENDBR ""
#define TASK_RETURN                                                            \
	"popq %rcx\n\t"                                                        \
	".cfi_adjust_cfa_offset -8\n\t"                                        \
	".cfi_register %rip, %rcx\n\t"                                         \
	"jmpq *%rcx\n\t"
#endif

__asm__(".pushsection .text\n\t"
        ".globl task_ctx_switch\n\t"
        ".hidden task_ctx_switch\n\t"
        ".type task_ctx_switch, @function\n\t"
        ".p2align 4\n"
        "task_ctx_switch:\n\t"
        ".cfi_startproc\n\t" TASK_ENDBR "pushq %rbp\n\t"
        ".cfi_adjust_cfa_offset 8\n\t"
        "pushq %rbx\n\t"
        ".cfi_adjust_cfa_offset 8\n\t"
        "pushq %r12\n\t"
        ".cfi_adjust_cfa_offset 8\n\t"
        "pushq %r13\n\t"
        ".cfi_adjust_cfa_offset 8\n\t"
        "pushq %r14\n\t"
        ".cfi_adjust_cfa_offset 8\n\t"
        "pushq %r15\n\t"
        ".cfi_adjust_cfa_offset 8\n\t"
        "subq $8, %rsp\n\t"
        ".cfi_adjust_cfa_offset 8\n\t"
        "stmxcsr (%rsp)\n\t"
        "fnstcw 4(%rsp)\n\t"
        "movq %rsp, (%rdi)\n\t"
        "movq %rsi, %rsp\n\t"
        "ldmxcsr (%rsp)\n\t"
        "fldcw 4(%rsp)\n\t"
        "addq $8, %rsp\n\t"
        ".cfi_adjust_cfa_offset -8\n\t"
        "popq %r15\n\t"
        ".cfi_adjust_cfa_offset -8\n\t"
        "popq %r14\n\t"
        ".cfi_adjust_cfa_offset -8\n\t"
        "popq %r13\n\t"
        ".cfi_adjust_cfa_offset -8\n\t"
        "popq %r12\n\t"
        ".cfi_adjust_cfa_offset -8\n\t"
        "popq %rbx\n\t"
        ".cfi_adjust_cfa_offset -8\n\t"
        "popq %rbp\n\t"
        ".cfi_adjust_cfa_offset -8\n\t" TASK_RETURN ".cfi_endproc\n\t"
        ".size task_ctx_switch, .-task_ctx_switch\n\t"
        "\n\t"
        ".globl task_ctx_start\n\t"
        ".hidden task_ctx_start\n\t"
        ".type task_ctx_start, @function\n\t"
        ".p2align 4\n"
        "task_ctx_start:\n\t"
        ".cfi_startproc\n\t"
        /* Backtraces end here rather than wander off the stack's top. */
        ".cfi_undefined %rip\n\t"
        "movq %r12, %rdi\n\t"
        "callq *%r13\n\t"
        "ud2\n\t"
        ".cfi_endproc\n\t"
        ".size task_ctx_start, .-task_ctx_start\n\t"
        ".popsection");

static void *
task_first_frame(struct task *t)
{
	uint64_t *f = (uint64_t *)(t->map + t->map_size) - TASK_FRAME_WORDS;
	uint32_t mxcsr;
	uint16_t fpucw;

	/* A task starts in the floating-point modes of the loop. */
	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
	__asm__ volatile("fnstcw %0" : "=m"(fpucw));
	f[0] = mxcsr | (uint64_t)fpucw << 32;
	f[1] = 0;
	f[2] = 0;
	f[3] = (uintptr_t)task_main;
	f[4] = (uintptr_t)t;
	f[5] = 0;
	f[6] = 0;
	f[7] = (uintptr_t)task_ctx_start;
	return f;
}
#endif

#if defined(TASK_ASM_SWITCH) && defined(__aarch64__)
/*
 * Saved frame, from the saved stack pointer up: x19..x28, x29 (frame
 * pointer), x30 (return address), d8..d15, FPCR, padding. The ABI leaves
 * FPCR alone across calls, so it is kept per task like x86's MXCSR; it is
 * written only when it differs because writing it can stall the pipeline.
 */
#define TASK_FRAME_WORDS 22

__asm__(".pushsection .text\n\t"
        ".globl task_ctx_switch\n\t"
        ".hidden task_ctx_switch\n\t"
        ".type task_ctx_switch, %function\n\t"
        ".p2align 4\n"
        "task_ctx_switch:\n\t"
        ".cfi_startproc\n\t"
        "sub sp, sp, #176\n\t"
        ".cfi_adjust_cfa_offset 176\n\t"
        "stp x19, x20, [sp, #0]\n\t"
        "stp x21, x22, [sp, #16]\n\t"
        "stp x23, x24, [sp, #32]\n\t"
        "stp x25, x26, [sp, #48]\n\t"
        "stp x27, x28, [sp, #64]\n\t"
        "stp x29, x30, [sp, #80]\n\t"
        "stp d8, d9, [sp, #96]\n\t"
        "stp d10, d11, [sp, #112]\n\t"
        "stp d12, d13, [sp, #128]\n\t"
        "stp d14, d15, [sp, #144]\n\t"
        "mrs x9, fpcr\n\t"
        "str x9, [sp, #160]\n\t"
        "mov x10, sp\n\t"
        "str x10, [x0]\n\t"
        "mov sp, x1\n\t"
        "ldr x10, [sp, #160]\n\t"
        "cmp x9, x10\n\t"
        "b.eq 1f\n\t"
        "msr fpcr, x10\n"
        "1:\n\t"
        "ldp x19, x20, [sp, #0]\n\t"
        "ldp x21, x22, [sp, #16]\n\t"
        "ldp x23, x24, [sp, #32]\n\t"
        "ldp x25, x26, [sp, #48]\n\t"
        "ldp x27, x28, [sp, #64]\n\t"
        "ldp x29, x30, [sp, #80]\n\t"
        "ldp d8, d9, [sp, #96]\n\t"
        "ldp d10, d11, [sp, #112]\n\t"
        "ldp d12, d13, [sp, #128]\n\t"
        "ldp d14, d15, [sp, #144]\n\t"
        "add sp, sp, #176\n\t"
        ".cfi_adjust_cfa_offset -176\n\t"
        "ret\n\t"
        ".cfi_endproc\n\t"
        ".size task_ctx_switch, .-task_ctx_switch\n\t"
        "\n\t"
        ".globl task_ctx_start\n\t"
        ".hidden task_ctx_start\n\t"
        ".type task_ctx_start, %function\n\t"
        ".p2align 4\n"
        "task_ctx_start:\n\t"
        ".cfi_startproc\n\t"
        /* Backtraces end here rather than wander off the stack's top. */
        ".cfi_undefined x30\n\t"
        "mov x0, x19\n\t"
        "blr x20\n\t"
        "brk #0\n\t"
        ".cfi_endproc\n\t"
        ".size task_ctx_start, .-task_ctx_start\n\t"
        ".popsection");

static void *
task_first_frame(struct task *t)
{
	uint64_t *f = (uint64_t *)(t->map + t->map_size) - TASK_FRAME_WORDS;
	uint64_t fpcr;

	/* A task starts in the floating-point modes of the loop. */
	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	for (int i = 0; i < TASK_FRAME_WORDS; i++)
		f[i] = 0;
	f[0] = (uintptr_t)t;               /* x19 */
	f[1] = (uintptr_t)task_main;       /* x20 */
	f[11] = (uintptr_t)task_ctx_start; /* x30 */
	f[20] = fpcr;
	return f;
}
#endif

#ifdef TASK_ASM_SWITCH
static inline void
task_prepare(struct task *t)
{
	t->sp = task_first_frame(t);
}

static inline void
task_switch_in(struct task *t)
{
	task_ctx_switch(&t->resumer_sp, t->sp);
}

static inline void
task_switch_out(struct task *t)
{
	task_ctx_switch(&t->sp, t->resumer_sp);
}
#else
/* makecontext passes only ints; the task is found through task_cur. */
static void
task_uc_start(void)
{
	task_main(task_cur);
}

static void
task_prepare(struct task *t)
{
	unsigned char *low = task_stack_low(t);
	uintptr_t top = (uintptr_t)(t->map + t->map_size);

	top = (top - sizeof(ucontext_t)) & ~(uintptr_t)63;
	t->uc = (ucontext_t *)top;
	if (getcontext(t->uc) == -1)
		abort();
	t->uc->uc_stack.ss_sp = low;
	t->uc->uc_stack.ss_size = top - (uintptr_t)low;
	t->uc->uc_link = NULL;
	makecontext(t->uc, task_uc_start, 0);
}

static inline void
task_switch_in(struct task *t)
{
	ucontext_t resumer;

	t->resumer_uc = &resumer;
	if (swapcontext(&resumer, t->uc) == -1)
		abort();
}

static inline void
task_switch_out(struct task *t)
{
	if (swapcontext(t->uc, t->resumer_uc) == -1)
		abort();
}
#endif

static void
task_main(struct task *t)
{
#ifdef TASK_ASAN
	__sanitizer_finish_switch_fiber(
	    NULL, &t->resumer_bottom, &t->resumer_size);
#endif
	t->fn(t->arg);
	t->state = TASK_FINISHED;
#ifdef TASK_ASAN
	/* NULL: this stack is left for good, so ASan drops its fake stack. */
	__sanitizer_start_switch_fiber(
	    NULL, t->resumer_bottom, t->resumer_size);
#endif
	task_switch_out(t);
	abort();
}

struct task *
task_create(size_t stack_size, void (*fn)(void *), void *arg)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t guard = task_round_up(TASK_GUARD_SIZE, page);
	struct task *t;
	void *map;
	int saved_errno;

	if (fn == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if (stack_size == 0)
		stack_size = TASK_STACK_DEFAULT;
	if (stack_size < TASK_STACK_MIN)
		stack_size = TASK_STACK_MIN;
	if (stack_size > SIZE_MAX - guard - page) {
		errno = ENOMEM;
		return NULL;
	}
	stack_size = task_round_up(stack_size, page);

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	map = mmap(NULL, guard + stack_size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (map == MAP_FAILED) {
		saved_errno = errno;
		free(t);
		errno = saved_errno;
		return NULL;
	}
	if (mprotect(map, guard, PROT_NONE) == -1) {
		saved_errno = errno;
		munmap(map, guard + stack_size);
		free(t);
		errno = saved_errno;
		return NULL;
	}
	t->state = TASK_NEW;
	t->fn = fn;
	t->arg = arg;
	t->map = map;
	t->map_size = guard + stack_size;
	t->stack_size = stack_size;
#ifdef TASK_VALGRIND
	t->valgrind_id =
	    VALGRIND_STACK_REGISTER(task_stack_low(t), t->map + t->map_size);
#endif
	return t;
}

void
task_resume(struct task *t)
{
	/* Switching into a running task would overwrite its saved state. */
	if (t->state == TASK_RUNNING || t->state == TASK_FINISHED)
		abort();
	if (t->state == TASK_NEW)
		task_prepare(t);
	t->state = TASK_RUNNING;
	/* Kept rather than assumed NULL so task_current() stays truthful. */
	t->resumer_task = task_cur;
	task_cur = t;
#ifdef TASK_ASAN
	__sanitizer_start_switch_fiber(
	    &t->resumer_fake_stack, task_stack_low(t), t->stack_size);
#endif
	task_switch_in(t);
#ifdef TASK_ASAN
	__sanitizer_finish_switch_fiber(t->resumer_fake_stack, NULL, NULL);
#endif
	task_cur = t->resumer_task;
}

void
task_yield(void)
{
	struct task *t = task_cur;

	if (t == NULL)
		abort();
	t->state = TASK_SUSPENDED;
#ifdef TASK_ASAN
	__sanitizer_start_switch_fiber(
	    &t->fake_stack, t->resumer_bottom, t->resumer_size);
#endif
	task_switch_out(t);
#ifdef TASK_ASAN
	/* The next resumer may sit on another stack than the last one. */
	__sanitizer_finish_switch_fiber(
	    t->fake_stack, &t->resumer_bottom, &t->resumer_size);
#endif
}

struct task *
task_current(void)
{
	return task_cur;
}

int
task_finished(const struct task *t)
{
	return t->state == TASK_FINISHED;
}

void
task_destroy(struct task *t)
{
	if (t == NULL)
		return;
	if (t->state == TASK_RUNNING)
		abort();
#ifdef TASK_VALGRIND
	VALGRIND_STACK_DEREGISTER(t->valgrind_id);
#endif
#ifdef TASK_ASAN
	/*
	 * Frames that never returned leave their redzones poisoned, and a
	 * later mapping at the same address would inherit them.
	 */
	__asan_unpoison_memory_region(task_stack_low(t), t->stack_size);
#endif
	munmap(t->map, t->map_size);
	free(t);
}

size_t
task_stack_size(const struct task *t)
{
	return t->stack_size;
}

void *
task_arg(const struct task *t)
{
	return t->arg;
}
