/*
 * task.h: stackful coroutines for running many agents on one event loop.
 *
 * A task is a function running on a stack of its own. It runs only when the
 * loop resumes it and gives the loop back by yielding, so an agent that waits
 * for an inference, a timer or a message blocks itself and nothing else.
 *
 * Only the loop's context, the code outside every task, resumes tasks; a task
 * wanting another to run arranges it through the loop. Tasks belong to the
 * thread that created them and are never shared between threads.
 *
 * A stack size of 0 means TASK_STACK_DEFAULT, a smaller size than
 * TASK_STACK_MIN is raised to it, and sizes are rounded up to pages. Stacks
 * are mapped lazily with an inaccessible guard region below: a task costs its
 * small struct plus the stack pages it has touched, and a task that overflows
 * its stack dies of SIGSEGV.
 *
 * Misuse aborts: resuming a running or finished task, yielding outside every
 * task, destroying a running task. Destroying a suspended task drops its
 * stack without unwinding it, so whatever its frames own leaks.
 */
#ifndef OLLAMAX_TASK_H
#define OLLAMAX_TASK_H

#include <stddef.h>

#define TASK_STACK_DEFAULT (64 * 1024)
#define TASK_STACK_MIN (16 * 1024)

struct task;

/* Makes a task to run fn(arg) when first resumed; NULL and errno if not. */
struct task *task_create(size_t stack_size, void (*fn)(void *), void *arg);

/* From the loop's context, runs t until it yields or its function returns. */
void task_resume(struct task *t);

/* From inside a task, switches back to the code that resumed it. */
void task_yield(void);

/* Returns the task running now, or NULL outside every task. */
struct task *task_current(void);

/* Returns non-zero once t's function has returned. */
int task_finished(const struct task *t);

/* Frees t and unmaps its stack; t must not be running. Accepts NULL. */
void task_destroy(struct task *t);

/* Returns the size of t's stack, after rounding. */
size_t task_stack_size(const struct task *t);

/* Returns the argument t's function was given at creation. */
void *task_arg(const struct task *t);

#endif
