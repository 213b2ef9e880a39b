/*
 * worker.c: a process that hosts agents as coroutines on one libev loop.
 *
 * The supervisor places agents and hands each worker its own, as frames:
 * pages of manifests when the worker starts (again, after a crash), single
 * ones when an agent is spawned. Each agent is a task (task.c) running a
 * plain loop: wait for its trigger, render its prompt, ask the broker for
 * an inference, hand on the result. A wait yields the task; a timer, a
 * message or the broker's answer resumes it on the loop.
 *
 * An agent's inbox holds what other agents' outputs (output = agent:NAME)
 * and `ollamaxctl run` sent it. A message for an agent of this worker goes
 * straight into its inbox; one for another worker goes by the supervisor.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "role.h"
#include "task.h"
#include "template.h"

/* How long an agent waits for one answer: a queue behind cold loads. */
#define INFER_TIMEOUT_MS (30 * 60 * 1000)
#define INFER_RETRIES 5
/* The broker's deadline for an answer ends before the agent's patience. */
_Static_assert(CONFIG_ANSWER_TIMEOUT_MAX_MS <
        (int64_t)INFER_TIMEOUT_MS * INFER_RETRIES,
    "answer_timeout's bound must be within an agent's wait");
/* A cancel lives as long as the inference it cancels: one sent while the
 * broker restarts waits in the socket behind the inference's retry, and
 * follows it to the next broker, in order. */
#define CANCEL_TIMEOUT_MS INFER_TIMEOUT_MS
#define DELIVER_TIMEOUT_MS 10000
/* Messages an inbox holds; a full inbox refuses more (the sender logs). */
#define INBOX_MAX 64
/* Commands the worker's socket takes at once from the start (more as
 * needed: see ipc_listen). */
#define COMMAND_CONTEXTS 256
/* The longest a worker waits for a shared output file's lock (ms). */
#define LOCK_WAIT_MS 100
/* Each waiting agent looks again this often: a worker's write takes
 * microseconds, and many agents waiting must not spin the loop. */
#define LOCK_RETRY_MS 10

struct worker;

struct message {
	TAILQ_ENTRY(message) link;
	char from[MSG_NAME_MAX];
	char *input;
	struct ipc_call *waiter; /* `run --wait`: told the run's result */
	int answered;     /* its run got its answer: only the output is left */
	int told;         /* its waiter heard how its run went */
	int64_t until_ms; /* a waiter's: the run does not begin past it */
};
TAILQ_HEAD(message_list, message);

struct agent {
	TAILQ_ENTRY(agent) link;
	struct manifest m;
	struct worker *w;
	struct task *task;
	ev_timer timer;
	int waiting;   /* in agent_wait: a message may wake it */
	int killed;    /* gone; freed once no call is in flight */
	int in_flight; /* calls whose callback has not run yet */
	struct message_list inbox;
	int inbox_len;
	uint64_t runs;
	uint64_t failures;
	int last_failed;
	/* What a run holds while it waits, so that a kill can free it. */
	struct message *input;
	char *prompt;
	char *frame;
	void *reply;
	size_t reply_len;
	int err;
	uint64_t infer_id; /* the inference under way, 0 if none */
	/* A delivery through the supervisor under way; once killed, who sent
	 * prompt to whom, so that a failure is still told. */
	int delivering;
	char deliver_from[CONFIG_NAME_MAX + 1];
	char deliver_to[sizeof(((struct manifest *)0)->output_target)];
	/* A record being appended to its output file: the task may yield
	 * while another holds the file's lock, and a kill then frees them. */
	int record_fd;
	char *record_path;
	char *record;
};

struct worker {
	struct ev_loop *loop;
	int index;
	size_t stack_size;
	char state_dir[PATH_MAX];
	TAILQ_HEAD(, agent) agents;
	struct ipc_server *commands;
	struct ipc_client *broker;
	struct hub_link *hub;
	/* An id's lower half, under the pid: it wraps after 2^32 requests,
	 * all long answered by then, rather than spill into the pid. */
	uint32_t next_id;
	/* This process's proc_started, told with its pid in every frame to
	 * the broker. */
	uint64_t started;
	uint64_t rng;
	int stopping;
	ev_timer report;
	/* At the earliest deadline of the waited runs, to the ms: the one
	 * waiting gives up a second after it, and hears why first. */
	ev_timer deadlines;
};

static double
uniform(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return (double)(w->rng >> 11) / 9007199254740992.0;
}

static void
reply_body(struct ipc_call *call, int ok, const char *error, const char *body)
{
	struct msg_ctl_reply reply = {.ok = ok, .body = (char *)body};
	struct msg_writer mw;
	const char *out;
	size_t len;

	snprintf(reply.error, sizeof(reply.error), "%s", error ? error : "");
	if (msg_ctl_reply_fit(&reply))
		log_warnx("%s", reply.error);
	msg_ctl_reply_encode(&mw, &reply);
	out = msg_data(&mw, &len);
	ipc_reply(call, out, len);
	msg_writer_free(&mw);
}

static void
reply_ok(struct ipc_call *call, int ok, const char *error)
{
	reply_body(call, ok, error, NULL);
}

static void
message_free(struct message *msg, const char *why)
{
	/* Whoever waits for the run hears that it will not come. */
	if (msg->waiter != NULL)
		reply_ok(msg->waiter, 0, why);
	free(msg->input);
	free(msg);
}

/*
 * A message the stopped agent a will not run: whoever waits for it is
 * told, and one nobody waits for is logged whole, so that nothing is lost
 * unseen; unless its run had its answer, and only the output was left.
 */
static void
message_drop(struct agent *a, struct message *msg)
{
	if (msg->waiter == NULL && !msg->answered)
		log_warnx(
		    "%s: stopped before it carried out a message from %s; it "
		    "was:\n%s",
		    a->m.name, msg->from, msg->input);
	message_free(msg, "the agent was stopped");
}

/* Drops every message of a's inbox, as message_drop does. */
static void
inbox_drop(struct agent *a)
{
	struct message *msg;

	while ((msg = TAILQ_FIRST(&a->inbox)) != NULL) {
		TAILQ_REMOVE(&a->inbox, msg, link);
		message_drop(a, msg);
	}
	a->inbox_len = 0;
}

static void
agent_free(struct agent *a)
{
	manifest_free(&a->m);
	free(a->prompt);
	free(a);
}

/* What append_record holds, let go of when it ends or its agent is
 * killed meanwhile. */
static void
record_release(struct agent *a)
{
	if (a->record_fd >= 0)
		close(a->record_fd);
	a->record_fd = -1;
	free(a->record_path);
	a->record_path = NULL;
	free(a->record);
	a->record = NULL;
}

/*
 * Why a delivery through the supervisor failed, from its call's outcome
 * and answer; "" if it did not.
 */
static void
delivery_failure(
    int err, const void *reply, size_t len, char *why, size_t whylen)
{
	struct msg_ctl_reply rep = {0};
	struct msg_reader r;

	why[0] = '\0';
	if (err != 0) {
		snprintf(why, whylen, "the supervisor: %s",
		    err > 0 ? ipc_strerror(err) : "cannot send");
	} else if (msg_open(&r, reply, len) != MSG_OK ||
	    msg_ctl_reply_decode(&r, &rep) != MSG_OK) {
		snprintf(why, whylen, "bad answer (%s)", r.detail);
		msg_close(&r);
	} else {
		if (!rep.ok)
			snprintf(why, whylen, "%.200s", rep.error);
		msg_ctl_reply_free(&rep);
		msg_close(&r);
	}
}

static void
undelivered(const char *from, const char *to, const char *why, const char *text)
{
	log_warnx("%s: output for %s not delivered: %s; it was:\n%s", from, to,
	    why, text);
}

static void
resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct agent *a = t->data;

	(void)loop;
	(void)revents;
	task_resume(a->task);
}

/*
 * Sleeps the agent's task for seconds of real time (< 0: until a message
 * comes); with for_messages, a message for its inbox ends the wait early.
 */
static void
agent_wait(struct agent *a, double seconds, int for_messages)
{
	if (seconds >= 0) {
		ev_timer_set(&a->timer, seconds, 0);
		ev_timer_start(a->w->loop, &a->timer);
	}
	a->waiting = for_messages;
	task_yield();
	a->waiting = 0;
	ev_timer_stop(a->w->loop, &a->timer);
}

/* Wakes a waiting agent through the loop: only the loop resumes tasks. */
static void
agent_wake(struct agent *a)
{
	if (!a->waiting)
		return;
	ev_timer_stop(a->w->loop, &a->timer);
	ev_timer_set(&a->timer, 0, 0);
	ev_timer_start(a->w->loop, &a->timer);
}

static struct agent *
agent_find(struct worker *w, const char *name)
{
	struct agent *a;

	TAILQ_FOREACH(a, &w->agents, link)
		if (strcmp(a->m.name, name) == 0)
			return a;
	return NULL;
}

/* Run on input, a's prompt would lose the text unseen: it has no
 * {{input}} (a reload took it out while a sender kept running as it was). */
static int
drops_text(const struct agent *a, const char *input)
{
	return input[0] != '\0' && !template_uses(a->m.prompt, "input");
}

/* Sees to it that the worker looks at its waited runs by until_ms. */
static void
deadline_arm(struct worker *w, int64_t until_ms)
{
	/* Past it by a ms at least: msg_late_ms counts it late only then.
	 * In doubles: a frame's until may be as far as INT64_MAX. */
	double after = ((double)(until_ms - msg_clock_ms()) + 1.0) / 1000.0;

	if (after < 0)
		after = 0;
	if (ev_is_active(&w->deadlines) &&
	    ev_timer_remaining(w->loop, &w->deadlines) <= after)
		return;
	ev_timer_stop(w->loop, &w->deadlines);
	ev_timer_set(&w->deadlines, after, 0);
	ev_timer_start(w->loop, &w->deadlines);
}

/* Puts a message in a's inbox; -1 with why when it is full, or its text
 * would be dropped. */
static int
inbox_put(struct agent *a, const char *from, const char *input,
    struct ipc_call *waiter, int64_t until_ms, char *why, size_t whylen)
{
	struct message *msg;

	if (a->inbox_len >= INBOX_MAX) {
		snprintf(why, whylen, "the inbox of %s is full (%d messages)",
		    a->m.name, INBOX_MAX);
		return -1;
	}
	if (drops_text(a, input)) {
		snprintf(why, whylen, "the prompt of %s has no {{input}}",
		    a->m.name);
		return -1;
	}
	msg = calloc(1, sizeof(*msg));
	if (msg == NULL || (msg->input = strdup(input)) == NULL)
		fatal("out of memory");
	snprintf(msg->from, sizeof(msg->from), "%s", from);
	msg->waiter = waiter;
	msg->until_ms = until_ms;
	TAILQ_INSERT_TAIL(&a->inbox, msg, link);
	a->inbox_len++;
	if (waiter != NULL && until_ms != 0)
		deadline_arm(a->w, until_ms);
	agent_wake(a);
	return 0;
}

/*
 * Lets go of the wait on a's run under way once past its deadline: the one
 * waiting has been told it failed, and each wait holds one of the worker's
 * command contexts, which waits outliving their callers would pile up. The
 * run goes on to its output.
 */
static void
waiter_drop_late(struct agent *a)
{
	struct message *msg = a->input;

	if (msg == NULL || msg->waiter == NULL ||
	    msg_late_ms(msg->until_ms) <= 0)
		return;
	log_info("%s: run %llu goes on past the deadline of the run -w "
	         "waiting for it: its answer goes to its output only",
	    a->m.name, (unsigned long long)a->runs);
	reply_ok(msg->waiter, 0,
	    "no answer by the wait's deadline: the run, begun, goes on to "
	    "the agent's output");
	msg->waiter = NULL;
}

/*
 * Drops the waited runs still in a's inbox past their deadline: the one
 * waiting has been told it failed, so they must not run behind its back,
 * and the supervisor hears now, not when the agent is done with what came
 * before, so that a dead wait does not hold one of its waited runs.
 */
static void
inbox_drop_late(struct agent *a)
{
	struct message *msg, *next;
	char why[200];

	for (msg = TAILQ_FIRST(&a->inbox); msg != NULL; msg = next) {
		next = TAILQ_NEXT(msg, link);
		if (msg->waiter == NULL || msg_late_ms(msg->until_ms) <= 0)
			continue;
		TAILQ_REMOVE(&a->inbox, msg, link);
		a->inbox_len--;
		snprintf(why, sizeof(why),
		    "a run of %s waited in its inbox past its deadline: not "
		    "carried out",
		    a->m.name);
		log_warnx("%s", why);
		message_free(msg, why);
	}
}

/* The earlier of a deadline so far (0: none) and msg's, if it is waited
 * for. */
static int64_t
earlier_deadline(int64_t so_far, const struct message *msg)
{
	if (msg == NULL || msg->waiter == NULL || msg->until_ms == 0)
		return so_far;
	return so_far == 0 || msg->until_ms < so_far ? msg->until_ms : so_far;
}

/* Lets go of the waited runs past their deadline, and looks again at the
 * next one's. */
static void
deadlines_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;
	struct agent *a;
	struct message *msg;
	int64_t next = 0;

	(void)loop;
	(void)revents;
	TAILQ_FOREACH(a, &w->agents, link) {
		inbox_drop_late(a);
		waiter_drop_late(a);
		next = earlier_deadline(next, a->input);
		TAILQ_FOREACH(msg, &a->inbox, link)
			next = earlier_deadline(next, msg);
	}
	if (next != 0)
		deadline_arm(w, next);
}

static void
call_reply(void *arg, int err, const void *data, size_t len)
{
	struct agent *a = arg;

	a->in_flight--;
	/* Closing the clients at shutdown fails what is in flight: no task
	 * is resumed then; a killed agent is freed by its last answer, and
	 * what it was delivering is told if it failed. */
	if (a->killed) {
		if (a->delivering && !a->w->stopping) {
			char why[256];

			delivery_failure(err, data, len, why, sizeof(why));
			if (why[0] != '\0')
				undelivered(a->deliver_from, a->deliver_to, why,
				    a->prompt);
		}
		a->delivering = 0;
		if (a->in_flight == 0)
			agent_free(a);
		return;
	}
	if (a->w->stopping)
		return;
	a->err = err;
	if (err == 0) {
		a->reply = malloc(len);
		if (a->reply == NULL)
			fatal("out of memory");
		memcpy(a->reply, data, len);
		a->reply_len = len;
	}
	task_resume(a->task);
}

static void cancel_infer(
    struct worker *w, const char *agent, uint64_t id, int given_up);

/*
 * Sends a->frame on c and yields until the answer (a->reply, to free) or
 * an error (a->err). Returns 0 when an answer came.
 */
static int
agent_call(
    struct agent *a, struct ipc_client *c, size_t len, int64_t timeout_ms)
{
	a->err = 0;
	a->reply = NULL;
	if ((a->err = ipc_request(
	         c, a->frame, len, timeout_ms, call_reply, a)) != 0)
		return -1;
	a->in_flight++;
	task_yield();
	return a->err == 0 ? 0 : -1;
}

/* Copies a writer's frame to the agent, which holds it across a kill. */
static size_t
agent_take_frame(struct agent *a, struct msg_writer *mw)
{
	const char *data;
	size_t len;

	data = msg_data(mw, &len);
	a->frame = malloc(len);
	if (a->frame == NULL)
		fatal("out of memory");
	memcpy(a->frame, data, len);
	msg_writer_free(mw);
	return len;
}

static void
agent_drop_call(struct agent *a)
{
	free(a->frame);
	free(a->reply);
	a->frame = NULL;
	a->reply = NULL;
}

/*
 * One inference through the broker, into done. A lost broker (it
 * restarts) is retried with the same id, so the broker never runs it twice.
 */
static int
agent_infer(struct agent *a, const char *prompt, struct msg_infer_done *done)
{
	struct msg_infer req = {
	    .id = ((uint64_t)getpid() << 32) | ++a->w->next_id,
	    .worker = a->w->index,
	    .started = a->w->started,
	    .priority = a->m.priority,
	    .system = a->m.system,
	    .prompt = (char *)prompt,
	    .num_predict = (int)a->m.num_predict,
	    .temperature = a->m.temperature,
	};
	struct msg_writer mw;
	struct msg_reader r;
	size_t len;
	int rv = -1, answered = 0;

	memset(done, 0, sizeof(*done));
	snprintf(req.agent, sizeof(req.agent), "%s", a->m.name);
	snprintf(req.tier, sizeof(req.tier), "%s", a->m.tier);
	msg_infer_encode(&mw, &req);
	len = agent_take_frame(a, &mw);
	a->infer_id = req.id;
	for (int attempt = 0; attempt < INFER_RETRIES; attempt++) {
		if (agent_call(a, a->w->broker, len, INFER_TIMEOUT_MS) == 0) {
			answered = 1;
			if (msg_open(&r, a->reply, a->reply_len) == MSG_OK &&
			    msg_infer_done_decode(&r, done) == MSG_OK)
				rv = 0;
			else
				snprintf(done->error, sizeof(done->error),
				    "a bad answer from the broker (%s)",
				    r.detail);
			msg_close(&r);
			break;
		}
		snprintf(done->error, sizeof(done->error),
		    "the broker did not answer in %d tries (%s)", attempt + 1,
		    ipc_strerror(a->err));
		if (attempt + 1 < INFER_RETRIES) {
			log_warnx("%s: broker unreachable (%s): retry %d",
			    a->m.name, ipc_strerror(a->err), attempt + 1);
			agent_wait(a, 0.2 * (attempt + 1), 0);
		}
	}
	/* Given up on, it may still be queued or running at the broker:
	 * a slot would go to an answer nobody takes. */
	if (!answered)
		cancel_infer(a->w, a->m.name, req.id, 1);
	agent_drop_call(a);
	a->infer_id = 0;
	return rv;
}

/*
 * Hands an answer to the agent named in output = agent:NAME: into its
 * inbox if it lives here, else through the supervisor. A message that
 * cannot be delivered is logged whole, so that nothing is lost unseen.
 */
static void
agent_deliver(struct agent *a, const char *text)
{
	struct msg_deliver d = {.input = (char *)text,
	    .until_ms = ctl_until(DELIVER_TIMEOUT_MS, 0)};
	struct agent *to = agent_find(a->w, a->m.output_target);
	struct msg_writer mw;
	char why[256] = "";
	size_t len;

	if (to != NULL) {
		if (inbox_put(to, a->m.name, text, NULL, 0, why, sizeof(why)) ==
		    0)
			return;
	} else {
		snprintf(d.to, sizeof(d.to), "%.48s", a->m.output_target);
		snprintf(d.from, sizeof(d.from), "%s", a->m.name);
		msg_deliver_encode(&mw, &d);
		len = agent_take_frame(a, &mw);
		a->delivering = 1;
		agent_call(a, a->w->hub->client, len, DELIVER_TIMEOUT_MS);
		a->delivering = 0;
		delivery_failure(
		    a->err, a->reply, a->reply_len, why, sizeof(why));
		agent_drop_call(a);
		if (why[0] == '\0')
			return;
	}
	undelivered(a->m.name, a->m.output_target, why, text);
}

/*
 * Takes a shared output file's lock, which the workers hold for one write
 * each. The agent waits for it, its worker's other agents running
 * meanwhile, but not for long: after LOCK_WAIT_MS of a lock held by
 * somebody else (a script that locks the file for good), the record is
 * written unlocked (a record of another's may then come after one cut
 * short, and that one stays cut).
 */
static void
lock_briefly(struct agent *a, int fd)
{
	for (int waited = 0; waited < LOCK_WAIT_MS; waited += LOCK_RETRY_MS) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 ||
		    (errno != EWOULDBLOCK && errno != EINTR))
			return;
		agent_wait(a, LOCK_RETRY_MS / 1000.0, 0);
	}
}

/*
 * Appends a run's record to its output file with one write: agents of
 * other workers may share the file, and O_APPEND keeps one write whole.
 * Only a regular file: a FIFO, or a device, would hold the worker's one
 * loop, and every agent on it, for as long as nobody reads it. A write cut
 * short (the disk full, or the file size limit) is taken back when
 * nothing came after it, so that the file keeps whole records, each
 * starting its line; the file's lock keeps the other workers from
 * appending in between. Returns 0, or -1 with why set.
 */
static int
append_record(struct agent *a, const char *text, char *why, size_t whylen)
{
	const struct manifest *m = &a->m;
	int len, rc = -1;
	size_t off = 0;
	struct stat st;
	off_t start;

	/* On the heap: a task's stack may be 16 KiB. */
	if (asprintf(&a->record_path, "%s/%s", a->w->state_dir,
	        m->output_target) < 0)
		a->record_path = NULL;
	if (a->record_path == NULL ||
	    (len = asprintf(&a->record, "--- %s run %llu\n%s\n", m->name,
	         (unsigned long long)a->runs, text)) < 0) {
		snprintf(why, whylen, "out of memory");
		a->record = NULL;
		goto out;
	}
	a->record_fd = open(a->record_path,
	    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
	if (a->record_fd < 0 || fstat(a->record_fd, &st) != 0) {
		/* ENXIO: a FIFO nobody reads; one read would be refused
		 * below all the same. */
		snprintf(why, whylen, "%.200s: %s", a->record_path,
		    errno == ENXIO ? "not a regular file" : strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(
		    why, whylen, "%.200s: not a regular file", a->record_path);
		goto out;
	}
	lock_briefly(a, a->record_fd);
	/* Where this record starts: the end, now that no worker appends. */
	if (fstat(a->record_fd, &st) != 0) {
		snprintf(
		    why, whylen, "%.200s: %s", a->record_path, strerror(errno));
		goto out;
	}
	start = st.st_size;
	while (off < (size_t)len) {
		ssize_t n =
		    write(a->record_fd, a->record + off, (size_t)len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(why, whylen, "%.200s: %s", a->record_path,
			    n < 0 ? strerror(errno) : "nothing written");
			/* Only while nothing came after it: another's whole
			 * record is not cut for this one's sake. */
			if (off > 0 && fstat(a->record_fd, &st) == 0 &&
			    st.st_size == start + (off_t)off &&
			    ftruncate(a->record_fd, start) != 0)
				log_warn("%s: cannot take back the record cut "
				         "short in %s",
				    m->name, a->record_path);
			goto out;
		}
		off += (size_t)n;
	}
	rc = close(a->record_fd);
	a->record_fd = -1;
	if (rc != 0)
		snprintf(
		    why, whylen, "%.200s: %s", a->record_path, strerror(errno));
out:
	record_release(a);
	return rc;
}

/* Hands the answer on. Returns -1 with why set when a file output
 * failed: the answer is logged whole instead, and the run counts as
 * failed. */
static int
agent_output(struct agent *a, const char *text, char *why, size_t whylen)
{
	switch (a->m.output) {
	case OUTPUT_LOG:
		break;
	case OUTPUT_FILE:
		if (append_record(a, text, why, whylen) != 0) {
			log_warnx("%s: run %llu: output not written: %s; it "
			          "was:\n%s",
			    a->m.name, (unsigned long long)a->runs, why, text);
			return -1;
		}
		break;
	case OUTPUT_AGENT:
		agent_deliver(a, text);
		break;
	}
	return 0;
}

/* Every second: how many agents live, and how many are failing. */
static void
report_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;
	struct msg_report r = {0};
	struct agent *a;

	(void)loop;
	(void)revents;
	if (!w->hub->ready)
		return;
	TAILQ_FOREACH(a, &w->agents, link) {
		r.agents += !task_finished(a->task);
		r.agents_failing += a->last_failed;
		r.served += (int64_t)(a->runs - a->failures);
		r.failed += (int64_t)a->failures;
		r.queued += a->inbox_len;
	}
	r.bad_frames = (int64_t)ipc_refused();
	hub_report(w->hub, &r);
}

/* Tells `run --wait` how its run went: the answer and its figures. */
static void
answer_waiter(struct agent *a, const struct msg_infer_done *done, int ok,
    const char *output_error)
{
	struct message *msg = a->input;
	json_t *j;
	char *body;

	if (msg == NULL || msg->waiter == NULL)
		return;
	msg->told = 1;
	if (!ok) {
		reply_ok(
		    msg->waiter, 0, done->error[0] ? done->error : "no answer");
		msg->waiter = NULL;
		return;
	}
	j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "agent", a->m.name,
	    "model", done->model, "answer", a->prompt, "prompt_tokens",
	    (json_int_t)done->prompt_tokens, "eval_tokens",
	    (json_int_t)done->eval_tokens, "queued_ms",
	    (json_int_t)done->queued_ms, "total_ms",
	    (json_int_t)done->total_ms);
	/* The answer is the waiter's all the same, with why the run
	 * failed. */
	if (j != NULL && output_error != NULL)
		json_object_set_new(
		    j, "output_error", json_string(output_error));
	body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	reply_body(msg->waiter, body != NULL,
	    body ? NULL : "cannot encode the answer", body);
	msg->waiter = NULL;
	free(body);
	json_decref(j);
}

/* One run: the prompt rendered with input, one inference, the output. */
static void
agent_run(struct agent *a, const char *input)
{
	const struct manifest *m = &a->m;
	struct msg_infer_done done;
	char n[32], now_text[64];
	struct template_var vars[5];
	time_t t = time(NULL);
	struct tm tm;
	int answered;
	char why[320];

	a->runs++;
	snprintf(n, sizeof(n), "%llu", (unsigned long long)a->runs);
	gmtime_r(&t, &tm);
	strftime(now_text, sizeof(now_text), "%Y-%m-%dT%H:%M:%SZ", &tm);
	vars[0] = (struct template_var){"name", m->name};
	vars[1] = (struct template_var){"role", m->role};
	vars[2] = (struct template_var){"n", n};
	vars[3] = (struct template_var){"time", now_text};
	vars[4] = (struct template_var){"input", input};
	/* Past what a request carries by a character at least, so that a
	 * prompt too long shows as one: cut, it would lose the template's
	 * words after the input unseen. */
	a->prompt = template_render(m->prompt, vars, 5, MSG_MAX_TEXT + 8);
	/* Ollama takes an empty prompt for "load the model" and answers
	 * nothing: that is no run. */
	if (a->prompt[0] == '\0' || strlen(a->prompt) > MSG_MAX_TEXT) {
		memset(&done, 0, sizeof(done));
		if (a->prompt[0] == '\0')
			snprintf(done.error, sizeof(done.error),
			    "the prompt is empty once rendered: not sent");
		else
			snprintf(done.error, sizeof(done.error),
			    "the prompt, with an input of %zu bytes, is "
			    "longer than the %d bytes a request carries once "
			    "rendered: not sent",
			    input ? strlen(input) : (size_t)0, MSG_MAX_TEXT);
		answered = 0;
	} else
		answered = agent_infer(a, a->prompt, &done) == 0 &&
		    done.status == INFER_OK;
	if (answered) {
		log_info("%s: run %llu: %s answered %lld tokens in %lld ms "
		         "(queued %lld ms, prompt %lld tokens)",
		    m->name, (unsigned long long)a->runs, done.model,
		    (long long)done.eval_tokens, (long long)done.total_ms,
		    (long long)done.queued_ms, (long long)done.prompt_tokens);
		/* The answer is the agent's until the output is handed on;
		 * a kill meanwhile drops no run. */
		if (a->input != NULL)
			a->input->answered = 1;
		free(a->prompt);
		a->prompt = done.text ? done.text : strdup("");
		done.text = NULL;
		/* A file is written at once, and a record it cannot take
		 * fails the run: the waiter hears so. A delivery to an agent
		 * may wait on the hub, and one that fails is the sender's log
		 * line, not the run's failure: the waiter hears first. */
		if (a->m.output == OUTPUT_AGENT)
			answer_waiter(a, &done, 1, NULL);
		a->last_failed =
		    agent_output(a, a->prompt, why, sizeof(why)) != 0;
		a->failures += a->last_failed;
		answer_waiter(a, &done, 1, a->last_failed ? why : NULL);
	} else {
		answer_waiter(a, &done, 0, NULL);
		a->failures++;
		a->last_failed = 1;
		log_warnx("%s: run %llu failed: %s", m->name,
		    (unsigned long long)a->runs,
		    done.error[0] ? done.error : "no answer");
	}
	msg_infer_done_free(&done);
	free(a->prompt);
	a->prompt = NULL;
}

static void
agent_main(void *arg)
{
	struct agent *a = arg;
	const struct manifest *m = &a->m;
	double period = (double)m->every_ms / 1000.0;
	/* Periodic agents start spread over their first period. */
	double delay = period * uniform(a->w);
	int had_mail;

	for (;;) {
		if (m->trigger == TRIGGER_EVERY) {
			if (TAILQ_EMPTY(&a->inbox))
				agent_wait(a, delay, 1);
		} else {
			while (TAILQ_EMPTY(&a->inbox))
				agent_wait(a, -1, 1);
		}
		had_mail = !TAILQ_EMPTY(&a->inbox);
		inbox_drop_late(a);
		/* Woken only for runs now dropped: wait again. */
		if (had_mail && TAILQ_EMPTY(&a->inbox))
			continue;
		a->input = TAILQ_FIRST(&a->inbox);
		if (a->input != NULL) {
			TAILQ_REMOVE(&a->inbox, a->input, link);
			a->inbox_len--;
		}
		agent_run(a, a->input ? a->input->input : "");
		if (a->input != NULL) {
			/* Nobody heard of the failure (no waiter, or one let
			 * go at its deadline): the text would be lost
			 * unseen. */
			if (!a->input->told && !a->input->answered &&
			    a->input->input[0] != '\0')
				log_warnx("%s: run %llu failed: the message "
				          "from %s is lost; it was:\n%s",
				    m->name, (unsigned long long)a->runs,
				    a->input->from, a->input->input);
			message_free(
			    a->input, "the run ended without an answer");
			a->input = NULL;
		}
		delay = period *
		    (1.0 + (uniform(a->w) * 2 - 1) * m->jitter_pct / 100.0);
	}
}

/*
 * An agent and its task, not started: NULL, said so, when the task cannot
 * be created (out of memory, or of the mappings a process may hold). Made
 * before an agent it replaces goes, which then stays as it was.
 */
static struct agent *
agent_new(struct worker *w, const char *name)
{
	struct agent *a = calloc(1, sizeof(*a));

	if (a == NULL)
		fatal("out of memory");
	a->w = w;
	a->record_fd = -1;
	TAILQ_INIT(&a->inbox);
	ev_init(&a->timer, resume_cb);
	a->timer.data = a;
	a->task = task_create(w->stack_size, agent_main, a);
	if (a->task == NULL) {
		log_warn("%s: cannot create its task", name);
		free(a);
		return NULL;
	}
	return a;
}

/* Starts a new agent a, taking m and the messages of inbox (NULL: none),
 * and runs it to its first wait. */
static void
agent_begin(struct worker *w, struct agent *a, struct manifest *m,
    struct message_list *inbox)
{
	struct message *msg;

	a->m = *m;
	memset(m, 0, sizeof(*m));
	while (inbox != NULL && (msg = TAILQ_FIRST(inbox)) != NULL) {
		TAILQ_REMOVE(inbox, msg, link);
		if (drops_text(a, msg->input)) {
			if (msg->waiter == NULL)
				log_warnx(
				    "%s: its prompt has no {{input}} now: "
				    "a message from %s is not carried "
				    "out; it was:\n%s",
				    a->m.name, msg->from, msg->input);
			message_free(msg,
			    "the agent's new prompt has no "
			    "{{input}} for its text");
			continue;
		}
		TAILQ_INSERT_TAIL(&a->inbox, msg, link);
		a->inbox_len++;
	}
	TAILQ_INSERT_TAIL(&w->agents, a, link);
	task_resume(a->task);
}

static void
answer_unread(void *arg, int err, const void *data, size_t len)
{
	(void)arg;
	(void)err;
	(void)data;
	(void)len;
}

/*
 * Tells the broker which process this worker is now: the requests of one
 * before it, after a crash, are nobody's to take.
 */
static void
broker_hello(struct worker *w)
{
	struct msg_hello h = {.role = ROLE_WORKER,
	    .index = w->index,
	    .pid = getpid(),
	    .started = w->started};
	struct msg_writer mw;
	const char *data;
	size_t len;

	msg_hello_encode(&mw, &h);
	data = msg_data(&mw, &len);
	if (ipc_request(w->broker, data, len, CANCEL_TIMEOUT_MS, answer_unread,
	        NULL) != 0)
		log_warnx("cannot tell the broker this worker started");
	msg_writer_free(&mw);
}

/*
 * Asks the broker to drop an inference of a stopped agent, or one its
 * agent gave up waiting for: queued, it would take a slot later, and
 * running, hold one, for an answer nobody takes. Not at a stop of the
 * whole fleet: the broker stops too.
 */
static void
cancel_infer(struct worker *w, const char *agent, uint64_t id, int given_up)
{
	struct msg_cancel c = {.id = id,
	    .worker = w->index,
	    .started = w->started,
	    .given_up = given_up};
	struct msg_writer mw;
	const char *data;
	size_t len;

	if (w->stopping)
		return;
	msg_cancel_encode(&mw, &c);
	data = msg_data(&mw, &len);
	if (ipc_request(w->broker, data, len, CANCEL_TIMEOUT_MS, answer_unread,
	        NULL) != 0)
		log_warnx("%s: cannot ask the broker to cancel inference %llu",
		    agent, (unsigned long long)id);
	msg_writer_free(&mw);
}

/*
 * Stops the agent for good: its task goes, what its run held is freed, and
 * the agent itself once the answers it waits for have come. Its manifest
 * moves to keep, and the messages of its inbox to keep_inbox, for an agent
 * that takes its place; NULL: they go.
 */
static void
agent_kill(struct worker *w, struct agent *a, struct manifest *keep,
    struct message_list *keep_inbox)
{
	ev_timer_stop(w->loop, &a->timer);
	task_destroy(a->task);
	a->task = NULL;
	if (a->infer_id != 0)
		cancel_infer(w, a->m.name, a->infer_id, 0);
	/* What the run held: its frames are gone with the task's stack. An
	 * answer on its way to another worker stays, with the names the
	 * manifest may take away, to be told if it fails. */
	if (a->delivering) {
		snprintf(
		    a->deliver_from, sizeof(a->deliver_from), "%s", a->m.name);
		snprintf(a->deliver_to, sizeof(a->deliver_to), "%s",
		    a->m.output_target);
	} else {
		free(a->prompt);
		a->prompt = NULL;
	}
	agent_drop_call(a);
	record_release(a);
	if (a->input != NULL) {
		message_drop(a, a->input);
		a->input = NULL;
	}
	if (keep_inbox != NULL) {
		TAILQ_CONCAT(keep_inbox, &a->inbox, link);
		a->inbox_len = 0;
	} else {
		inbox_drop(a);
	}
	if (keep != NULL) {
		*keep = a->m;
		memset(&a->m, 0, sizeof(a->m));
	}
	TAILQ_REMOVE(&w->agents, a, link);
	a->killed = 1;
	if (a->in_flight == 0)
		agent_free(a);
}

/* spawn (replace = 0) or respawn with new text (replace = 1). */
static void
command_agents(
    struct worker *w, struct msg_agents *list, char *why, size_t whylen)
{
	char name[CONFIG_NAME_MAX + 1];

	for (size_t i = 0; i < list->count; i++) {
		struct manifest *m = &list->agents[i];
		struct agent *old = agent_find(w, m->name), *a;
		struct message_list inbox;

		/* The supervisor's respawn after a spawn it heard no answer
		 * to: what runs as asked already is left to run. */
		if (old != NULL && list->replace && manifest_same(&old->m, m)) {
			log_info("%s: runs already as asked", m->name);
			continue;
		}
		if (old != NULL && !list->replace) {
			snprintf(why, whylen, "agent %s is already running",
			    m->name);
			continue;
		}
		if ((a = agent_new(w, m->name)) == NULL) {
			snprintf(why, whylen,
			    "worker %d cannot create the task of %s (see its "
			    "log)%s",
			    w->index, m->name,
			    old != NULL ? ": it runs as it was" : "");
			continue;
		}
		/* A respawned agent carries out what waited in its inbox. */
		TAILQ_INIT(&inbox);
		if (old != NULL)
			agent_kill(w, old, NULL, &inbox);
		snprintf(name, sizeof(name), "%s", m->name);
		agent_begin(w, a, m, &inbox);
		log_info("%s: started", name);
	}
}

/*
 * The supervisor's commands on worker-N.sock: agents to start (spawn,
 * respawn), kill NAME, restart NAME, and messages for inboxes. Each is
 * answered ok or with the reason it failed.
 */
static void
on_command(void *arg, struct ipc_call *call, const void *data, size_t len)
{
	struct worker *w = arg;
	struct msg_reader r;
	char why[300] = "";

	if (msg_open(&r, data, len) != MSG_OK) {
		snprintf(why, sizeof(why), "bad command frame (%s)", r.detail);
	} else if (r.type == MSG_AGENTS) {
		struct msg_agents list;

		if (msg_agents_decode(&r, &list) != MSG_OK) {
			snprintf(why, sizeof(why), "bad agents frame (%s)",
			    r.detail);
		} else {
			if (!ctl_refused_late(list.until_ms, why, sizeof(why),
			        "%s %s", list.replace ? "respawn" : "spawn",
			        list.count > 0 ? list.agents[0].name : ""))
				command_agents(w, &list, why, sizeof(why));
			msg_agents_free(&list);
		}
	} else if (r.type == MSG_DELIVER) {
		struct msg_deliver d;
		struct agent *a;

		if (msg_deliver_decode(&r, &d) != MSG_OK) {
			snprintf(why, sizeof(why), "bad deliver frame (%s)",
			    r.detail);
		} else if (ctl_refused_late(d.until_ms, why, sizeof(why),
		               "a message for %s", d.to)) {
			/* refused, said why */
		} else if ((a = agent_find(w, d.to)) == NULL) {
			snprintf(why, sizeof(why), "worker %d runs no agent %s",
			    w->index, d.to);
		} else if (inbox_put(a, d.from, d.input, d.wait ? call : NULL,
		               d.until_ms, why, sizeof(why)) == 0 &&
		    d.wait) {
			/* Answered when the run is over. */
			msg_deliver_free(&d);
			msg_close(&r);
			return;
		}
		msg_deliver_free(&d);
	} else {
		struct msg_ctl cmd;
		struct agent *a;

		if (msg_ctl_decode(&r, &cmd) != MSG_OK) {
			snprintf(why, sizeof(why), "bad command frame (%s)",
			    r.detail);
		} else if (!cmd.from_supervisor) {
			/* The supervisor keeps the fleet's books: an agent
			 * killed behind its back would still be counted. */
			snprintf(why, sizeof(why),
			    "this is a worker's socket: commands go to the "
			    "supervisor's, ctl.sock beside it");
		} else if (cmd.arg == NULL) {
			snprintf(why, sizeof(why),
			    "bad command frame (no argument)");
		} else if (strcmp(cmd.verb, "kill") != 0 &&
		    strcmp(cmd.verb, "restart") != 0) {
			snprintf(why, sizeof(why), "unknown command \"%s\"",
			    cmd.verb);
		} else if (ctl_refused_late(cmd.until_ms, why, sizeof(why),
		               "%s %s", cmd.verb, cmd.arg)) {
			/* refused, said why */
		} else if ((a = agent_find(w, cmd.arg)) == NULL &&
		    strcmp(cmd.verb, "kill") == 0) {
			/* Gone already: a kill carried out whose answer came
			 * after the supervisor stopped waiting. Asked again,
			 * it is done. */
			log_info("%s: not here, so killed", cmd.arg);
		} else if (a == NULL) {
			snprintf(why, sizeof(why), "worker %d runs no agent %s",
			    w->index, cmd.arg);
		} else if (strcmp(cmd.verb, "kill") == 0) {
			agent_kill(w, a, NULL, NULL);
			log_info("%s: killed", cmd.arg);
		} else {
			struct manifest m;
			struct message_list inbox;
			struct agent *again = agent_new(w, cmd.arg);

			/* The manifest and the inbox move to the new agent. */
			if (again == NULL) {
				snprintf(why, sizeof(why),
				    "worker %d cannot create a new task for %s "
				    "(see its log): it runs as it was",
				    w->index, cmd.arg);
			} else {
				TAILQ_INIT(&inbox);
				agent_kill(w, a, &m, &inbox);
				agent_begin(w, again, &m, &inbox);
				log_info("%s: restarted", cmd.arg);
			}
		}
		msg_ctl_free(&cmd);
	}
	msg_close(&r);
	reply_ok(call, why[0] == '\0', why);
}

/*
 * Agents first, before the sockets they use close: whoever waits for a run
 * hears of the stop, and no task resumed by a closing client calls on it
 * again. Also when a page of agents could not be fetched, after those of
 * the pages before had started.
 */
static void
worker_stop(struct worker *w)
{
	struct agent *a;

	w->stopping = 1;
	ev_timer_stop(w->loop, &w->report);
	ev_timer_stop(w->loop, &w->deadlines);
	while ((a = TAILQ_FIRST(&w->agents)) != NULL)
		agent_kill(w, a, NULL, NULL);
	role_closing();
	if (w->commands != NULL)
		ipc_server_close(w->commands);
	ipc_client_close(w->broker);
}

int
worker_main(struct ev_loop *loop, const char *runtime, struct hub_link *hub,
    struct msg_setup *setup)
{
	static struct worker worker;
	struct worker *w = &worker;
	char url[PATH_MAX + 32];
	size_t mine = 0;
	/* The agents whose tasks could not be created, told in the ready. */
	char(*not_started)[MSG_NAME_MAX] = NULL;
	uint32_t nnot_started = 0;

	w->loop = loop;
	w->hub = hub;
	w->index = hub->index;
	w->started = proc_started(getpid());
	w->stack_size = setup->conf.stack_size;
	snprintf(
	    w->state_dir, sizeof(w->state_dir), "%s", setup->conf.state_dir);
	w->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)getpid() << 20) ^
	    (uint64_t)w->index;
	if (mkdir(w->state_dir, 0700) != 0 && errno != EEXIST)
		log_warn("cannot create %s", w->state_dir);
	TAILQ_INIT(&w->agents);
	ev_init(&w->deadlines, deadlines_cb);
	w->deadlines.data = w;
	snprintf(url, sizeof(url), "ipc://%s/broker.sock", runtime);
	w->broker = ipc_dial(loop, url);
	if (w->broker == NULL)
		fatalx("cannot dial %s", url);
	broker_hello(w);
	for (uint32_t page = 0; page < setup->pages; page++) {
		struct msg_agents list;

		if (hub_fetch(hub, page, &list) != 0) {
			free(not_started);
			worker_stop(w);
			return 1;
		}
		for (size_t i = 0; i < list.count; i++) {
			struct manifest *m = &list.agents[i];
			struct agent *a = agent_new(w, m->name);

			if (a != NULL) {
				agent_begin(w, a, m, NULL);
				mine++;
				continue;
			}
			if (nnot_started == MSG_READY_NAMES_MAX)
				fatalx("cannot create the tasks of more than "
				       "%d agents",
				    MSG_READY_NAMES_MAX);
			if (nnot_started % 64 == 0) {
				void *more = realloc(not_started,
				    (nnot_started + 64) * sizeof(*not_started));

				if (more == NULL)
					fatal("out of memory");
				not_started = more;
			}
			snprintf(not_started[nnot_started++], MSG_NAME_MAX,
			    "%s", m->name);
		}
		msg_agents_free(&list);
	}
	snprintf(
	    url, sizeof(url), "ipc://%s/worker-%d.sock", runtime, w->index);
	/* Every `run --wait` holds a context until its run is over, or its
	 * deadline has passed. */
	w->commands = ipc_listen(loop, url, COMMAND_CONTEXTS, on_command, w);
	if (w->commands == NULL)
		fatalx("cannot serve %s", url);
	hub_ready(hub, not_started, nnot_started);
	free(not_started);
	ev_timer_init(&w->report, report_cb, 0.05, 1.0);
	w->report.data = w;
	ev_timer_start(loop, &w->report);
	if (nnot_started > 0)
		log_warnx("running %zu agent%s; %u could not be started", mine,
		    mine == 1 ? "" : "s", (unsigned)nnot_started);
	else
		log_info("running %zu agent%s", mine, mine == 1 ? "" : "s");
	ev_run(loop, 0);
	worker_stop(w);
	return 0;
}
