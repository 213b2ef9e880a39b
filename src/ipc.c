/*
 * ipc.c: nng request/reply on a libev loop. Each operation owns an nng aio
 * whose callback (on an nng thread) only moves the operation to a locked
 * list and wakes the loop; everything else happens on the loop's thread.
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <nng/transport/ipc/ipc.h>

#include "ipc.h"
#include "log.h"
#include "msg.h"

static atomic_uint_fast64_t refused;

const char *
ipc_strerror(int err)
{
	if (err == IPC_ENOTSENT)
		return "not sent: no connection took it";
	return nng_strerror(err);
}

int
ipc_taken_unanswered(int err)
{
	return err == NNG_ETIMEDOUT;
}

uint64_t
ipc_refused(void)
{
	return atomic_load(&refused);
}

/* ------------------------------------------------------------------ */
/* Completions, from nng threads to the loop                          */
/* ------------------------------------------------------------------ */

struct op;
typedef void (*op_fn)(struct op *op);

struct op {
	nng_aio *aio;
	op_fn on_loop; /* runs on the loop once the aio completed */
	TAILQ_ENTRY(op) link;
};
TAILQ_HEAD(op_list, op);

struct waker {
	struct ev_loop *loop;
	ev_async async;
	pthread_mutex_t mu;
	struct op_list done;
};

static void
waker_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct waker *wk = w->data;
	struct op_list ready;
	struct op *op;

	(void)loop;
	(void)revents;
	TAILQ_INIT(&ready);
	pthread_mutex_lock(&wk->mu);
	TAILQ_CONCAT(&ready, &wk->done, link);
	pthread_mutex_unlock(&wk->mu);
	while ((op = TAILQ_FIRST(&ready)) != NULL) {
		TAILQ_REMOVE(&ready, op, link);
		op->on_loop(op);
	}
}

static void
waker_init(struct waker *wk, struct ev_loop *loop)
{
	wk->loop = loop;
	pthread_mutex_init(&wk->mu, NULL);
	TAILQ_INIT(&wk->done);
	ev_async_init(&wk->async, waker_cb);
	wk->async.data = wk;
	ev_async_start(loop, &wk->async);
}

/* Called on an nng thread: hand the op to the loop. */
static void
waker_post(struct waker *wk, struct op *op)
{
	pthread_mutex_lock(&wk->mu);
	TAILQ_INSERT_TAIL(&wk->done, op, link);
	pthread_mutex_unlock(&wk->mu);
	ev_async_send(wk->loop, &wk->async);
}

static void
waker_fini(struct waker *wk)
{
	ev_async_stop(wk->loop, &wk->async);
	pthread_mutex_destroy(&wk->mu);
}

/* Peers of another uid are cut before they can send anything. */
static void
check_peer(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	uint64_t uid;

	(void)ev;
	(void)arg;
	if (nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_UID, &uid) != 0 ||
	    uid != (uint64_t)getuid()) {
		atomic_fetch_add(&refused, 1);
		nng_pipe_close(pipe);
	}
}

/* ------------------------------------------------------------------ */
/* Server                                                             */
/* ------------------------------------------------------------------ */

enum call_state { CALL_RECV, CALL_HANDLER, CALL_SEND };

struct ipc_call {
	struct op op; /* first: an op is a call */
	struct ipc_server *server;
	nng_ctx ctx;
	enum call_state state;
	nng_pipe pipe; /* the connection the request came on */
	int index;     /* in its server's calls */
	int retiring;  /* its receive cancelled by calls_trim_cb */
};

/* Answers given to a connection, for as long as it is open. */
struct pipe_replies {
	nng_pipe pipe;
	uint64_t given;
};

struct ipc_server {
	struct waker waker;
	nng_socket sock;
	int deaf_pipe; /* the last connection closed for reading nothing */
	struct ipc_call **calls;
	int ncalls;
	int initial_calls; /* as many as it started with */
	int receiving;     /* calls waiting for a request */
	int retiring;      /* of those, cancelled by calls_trim_cb */
	int held_peak;     /* the most held since the last trim */
	int said_full;     /* that it holds IPC_CALLS_MAX requests */
	ev_timer trim;
	ipc_request_fn fn;
	void *arg;
	int closing;
	/* Connections that were answered, for a close to wait for their
	 * answers to be written: see ipc_server_close. */
	pthread_mutex_t answered_mu;
	struct pipe_replies *answered;
	size_t nanswered, answered_cap;
	/* The listener's watch: see listener_watch_cb. */
	char url[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	nng_listener listener;
	int listening; /* 0: the path could not be taken again, tried each tick
	                */
	/* The estimate of failed handshakes at the last tick, held while a
	 * knock is out: see listener_watch_cb. */
	int64_t failed_handshakes;
	ev_timer watch;
	int knock_fd; /* -1: no knock under way */
	int knock_ticks;
	int knocks_unheard;   /* in a row, against a full backlog */
	int knocks_unrefused; /* in a row, by a listener that took them */
	int64_t refused_before_knock;
	int64_t errors_before_knock;
	/* The listener's errors that it is known to have taken connections
	 * after: a refused knock, or an accept, came after each. */
	int64_t errors_vouched;
	int ticks_since_knock;
	/* The counts read at the last tick, and errors at the one before:
	 * see listener_watch_cb. */
	int64_t accepted_seen, errors_seen, errors_seen_before;
};

/* An answer may be given after its connection closed (the peer hung up
 * first): its entry would stay for good. */
static int
pipe_gone(nng_pipe pipe)
{
	uint64_t uid;

	return nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_UID, &uid) ==
	    NNG_ENOENT;
}

int
ipc_call_peer_gone(const struct ipc_call *c)
{
	return pipe_gone(c->pipe);
}

static void
count_answer(struct ipc_server *s, nng_pipe pipe)
{
	size_t i;

	pthread_mutex_lock(&s->answered_mu);
	for (i = 0; i < s->nanswered; i++)
		if (nng_pipe_id(s->answered[i].pipe) == nng_pipe_id(pipe))
			break;
	if (i == s->nanswered) {
		if (s->nanswered == s->answered_cap) {
			size_t kept = 0;

			for (size_t j = 0; j < s->nanswered; j++)
				if (!pipe_gone(s->answered[j].pipe))
					s->answered[kept++] = s->answered[j];
			s->nanswered = kept;
			i = kept;
		}
		if (s->nanswered == s->answered_cap) {
			s->answered_cap =
			    s->answered_cap ? 2 * s->answered_cap : 8;
			s->answered = realloc(s->answered,
			    s->answered_cap * sizeof(*s->answered));
			if (s->answered == NULL)
				fatal("out of memory");
		}
		s->answered[s->nanswered++] =
		    (struct pipe_replies){.pipe = pipe};
	}
	s->answered[i].given++;
	pthread_mutex_unlock(&s->answered_mu);
}

/* Run on nng's threads as a connection closes: nothing more of its
 * answers will be written. */
static void
forget_answered(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	struct ipc_server *s = arg;

	(void)ev;
	pthread_mutex_lock(&s->answered_mu);
	for (size_t i = 0; i < s->nanswered; i++)
		if (nng_pipe_id(s->answered[i].pipe) == nng_pipe_id(pipe)) {
			s->answered[i] = s->answered[--s->nanswered];
			break;
		}
	pthread_mutex_unlock(&s->answered_mu);
}

/*
 * How long an answer may wait to be written. A peer that sends requests
 * and reads no answers would otherwise hold every context of the server
 * with answers queued behind its full connection, and the socket would
 * take nothing from anyone: its connection is closed instead.
 */
#define REPLY_SEND_MS 5000

static void
call_recv(struct ipc_call *c)
{
	c->state = CALL_RECV;
	c->server->receiving++;
	nng_aio_set_timeout(c->op.aio, NNG_DURATION_INFINITE);
	nng_ctx_recv(c->ctx, c->op.aio);
}

static void calls_add(struct ipc_server *s, int n);
static void call_retire(struct ipc_call *c);

static void
call_on_loop(struct op *op)
{
	struct ipc_call *c = (struct ipc_call *)op;
	int rv = nng_aio_result(op->aio);
	nng_msg *m;

	if (c->server->closing) {
		/* A frame received, or an answer not sent, is still ours. */
		if ((rv == 0 && c->state == CALL_RECV) ||
		    (rv != 0 && c->state == CALL_SEND))
			nng_msg_free(nng_aio_get_msg(op->aio));
		return;
	}
	if (c->state == CALL_SEND) {
		if (rv != 0) {
			/* The peer went away before the answer, or reads none:
			 * drop it. */
			nng_msg_free(nng_aio_get_msg(op->aio));
		}
		/* Said once a connection: each of its answers times out. */
		if (rv == NNG_ETIMEDOUT &&
		    nng_pipe_id(c->pipe) != c->server->deaf_pipe) {
			c->server->deaf_pipe = nng_pipe_id(c->pipe);
			log_warnx("ipc: a peer on %s read no answer for %d s: "
			          "its connection is closed",
			    c->server->url, REPLY_SEND_MS / 1000);
			nng_pipe_close(c->pipe);
		}
		call_recv(c);
		return;
	}
	c->server->receiving--;
	if (c->retiring) {
		c->retiring = 0;
		c->server->retiring--;
		/* Else a request came first, and is served. */
		if (rv == NNG_ECANCELED) {
			call_retire(c);
			return;
		}
	}
	if (rv != 0) {
		if (rv != NNG_ECLOSED && rv != NNG_ECANCELED)
			log_warnx("ipc: receive: %s", nng_strerror(rv));
		if (rv != NNG_ECLOSED)
			call_recv(c);
		return;
	}
	m = nng_aio_get_msg(op->aio);
	c->state = CALL_HANDLER;
	c->pipe = nng_msg_get_pipe(m);
	/* A request is held until its answer (an inference, a run waited
	 * on), and a socket with no call waiting for a request takes no
	 * frame at all: not a cancel, not a more urgent request. Those
	 * whose receive calls_trim_cb cancelled wait no more. */
	if (c->server->receiving == c->server->retiring)
		calls_add(c->server, c->server->ncalls);
	if (c->server->ncalls - c->server->receiving > c->server->held_peak)
		c->server->held_peak = c->server->ncalls - c->server->receiving;
	c->server->fn(c->server->arg, c, nng_msg_body(m), nng_msg_len(m));
	nng_msg_free(m);
}

static void
call_aio_cb(void *arg)
{
	struct ipc_call *c = arg;

	waker_post(&c->server->waker, &c->op);
}

/*
 * The most calls a server holds: each waits for a request, or holds one
 * until it is answered, and costs some 850 bytes with nng's context and
 * aio (53 MiB at the bound, given back after: see calls_trim_cb). A bound
 * nonetheless, as the requests held keep their prompts.
 */
#define IPC_CALLS_MAX 65536

/* Adds n calls to a server, as many of them as IPC_CALLS_MAX allows. */
static void
calls_add(struct ipc_server *s, int n)
{
	struct ipc_call **calls;
	int rv;

	if (n > IPC_CALLS_MAX - s->ncalls)
		n = IPC_CALLS_MAX - s->ncalls;
	if (n == 0) {
		if (!s->said_full)
			log_warnx("ipc: %s holds %d requests unanswered: "
			          "further frames wait until one is answered",
			    s->url, s->ncalls);
		s->said_full = 1;
		return;
	}
	calls = realloc(s->calls, (size_t)(s->ncalls + n) * sizeof(*calls));
	if (calls == NULL)
		fatal("out of memory");
	s->calls = calls;
	for (int i = 0; i < n; i++) {
		struct ipc_call *c = calloc(1, sizeof(*c));

		if (c == NULL)
			fatal("out of memory");
		c->server = s;
		c->op.on_loop = call_on_loop;
		if ((rv = nng_ctx_open(&c->ctx, s->sock)) != 0 ||
		    (rv = nng_aio_alloc(&c->op.aio, call_aio_cb, c)) != 0)
			fatalx("ipc: context: %s", nng_strerror(rv));
		c->index = s->ncalls;
		s->calls[s->ncalls++] = c;
		call_recv(c);
	}
}

/* A call whose receive was cancelled, and that nng holds no more. */
static void
call_retire(struct ipc_call *c)
{
	struct ipc_server *s = c->server;

	s->calls[c->index] = s->calls[--s->ncalls];
	s->calls[c->index]->index = c->index;
	s->said_full = 0;
	nng_ctx_close(c->ctx);
	nng_aio_free(c->op.aio);
	free(c);
	/* A server at IPC_CALLS_MAX could not grow as its kept calls
	 * filled: this one's room can now be had. */
	if (s->receiving == s->retiring)
		calls_add(s, s->ncalls);
}

/*
 * Gives back what a burst of requests added, once they are answered: the
 * calls beyond twice the most held over the last second, and beyond those
 * the server started with, stop waiting for a request.
 */
static void
calls_trim_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ipc_server *s = w->data;
	int held = s->ncalls - s->receiving;
	int peak = s->held_peak > held ? s->held_peak : held;
	int keep = peak * 2 > s->initial_calls ? peak * 2 : s->initial_calls;
	int surplus = s->ncalls - s->retiring - keep;

	(void)loop;
	(void)revents;
	s->held_peak = held;
	for (int i = s->ncalls - 1; i >= 0 && surplus > 0; i--) {
		struct ipc_call *c = s->calls[i];

		if (c->state == CALL_RECV && !c->retiring) {
			c->retiring = 1;
			s->retiring++;
			surplus--;
			nng_aio_cancel(c->op.aio);
		}
	}
}

static int
listener_start(struct ipc_server *s)
{
	int rv;

	if ((rv = nng_listener_create(&s->listener, s->sock, s->url)) != 0)
		return rv;
	if ((rv = nng_listener_set_int(
	         s->listener, NNG_OPT_IPC_PERMISSIONS, 0600)) != 0 ||
	    (rv = nng_listener_start(s->listener, 0)) != 0) {
		nng_listener_close(s->listener);
		return rv;
	}
	s->listening = 1;
	s->failed_handshakes = 0;
	s->errors_vouched = 0;
	s->accepted_seen = s->errors_seen = s->errors_seen_before = 0;
	s->knocks_unrefused = 0;
	return 0;
}

/* The socket file's path, from "ipc://PATH". */
static const char *
listener_path(const struct ipc_server *s)
{
	return s->url + strlen("ipc://");
}

/*
 * The statistics of the listener of this id. nng 1.5.2's own
 * nng_stat_find_listener returns the first listener's, whatever the id.
 */
static nng_stat *
listener_stats(nng_stat *st, int id)
{
	nng_stat *child, *found;

	if (nng_stat_type(st) != NNG_STAT_SCOPE)
		return NULL;
	if (strcmp(nng_stat_name(st), "listener") == 0)
		for (child = nng_stat_child(st); child != NULL;
		     child = nng_stat_next(child))
			if (strcmp(nng_stat_name(child), "id") == 0 &&
			    nng_stat_value(child) == (uint64_t)id)
				return st;
	for (child = nng_stat_child(st); child != NULL;
	     child = nng_stat_next(child))
		if ((found = listener_stats(child, id)) != NULL)
			return found;
	return NULL;
}

/*
 * From nng's statistics of the listener: connections accepted, those open,
 * errors, whether in a handshake or on a connection once open (nng counts
 * one as each connection closes), and among them handshakes refused for a
 * bad header.
 */
struct listener_counts {
	int64_t accepted, open, errors, refused;
};

static void
listener_counts(const struct ipc_server *s, struct listener_counts *c)
{
	static const char *const errors[] = {"disconnect", "canceled", "other",
	    "timeout", "proto", "auth", "oom"};
	nng_stat *all, *l, *st;

	memset(c, 0, sizeof(*c));
	if (nng_stats_get(&all) != 0)
		return;
	if ((l = listener_stats(all, nng_listener_id(s->listener))) != NULL)
		for (st = nng_stat_child(l); st != NULL;
		     st = nng_stat_next(st)) {
			const char *name = nng_stat_name(st);
			int64_t v = (int64_t)nng_stat_value(st);

			if (strcmp(name, "accept") == 0)
				c->accepted = v;
			else if (strcmp(name, "pipes") == 0)
				c->open = v;
			else if (strcmp(name, "proto") == 0)
				c->refused = v;
			for (size_t i = 0; i < sizeof(errors) / sizeof(*errors);
			     i++)
				if (strcmp(name, errors[i]) == 0)
					c->errors += v;
		}
	nng_stats_free(all);
}

static void
knock_end(struct ipc_server *s)
{
	close(s->knock_fd);
	s->knock_fd = -1;
}

/*
 * Closes the stopped listener and puts a new one on the socket's path, in
 * that order: closing, nng unlinks the path. Its connections are cut, and
 * their peers connect again, as after a restart. Left open, it would hold
 * for good the connections that shook hands after it stopped: their peers
 * wait on them for an answer that never comes, and once those hang up,
 * nng's poller spins on them.
 */
static void
listener_replace(struct ipc_server *s)
{
	log_warnx("ipc: %s took no new connection after a peer hung up "
	          "halfway through connecting: listening again",
	    s->url);
	int rv;

	nng_listener_close(s->listener);
	s->listening = 0;
	if (unlink(listener_path(s)) != 0 && errno != ENOENT)
		log_warn("ipc: unlink %s", listener_path(s));
	if ((rv = listener_start(s)) != 0)
		log_warnx("ipc: cannot listen on %s again: %s: trying each "
		          "second",
		    s->url, nng_strerror(rv));
}

/* Knocks against a full backlog in a row before the listener is taken as
 * one that takes nothing. */
#define KNOCKS_UNHEARD_MAX 3
/* Knocks not refused in a row before the listener is taken as stopped: a
 * handshake that fails otherwise than by hanging up before the server's
 * half (a peer gone after it, a header nng refuses) has nng's accept loop
 * sleep 100 ms, and a knock it takes meanwhile is refused uncounted. Two
 * ticks apart, two knocks do not both fall in one such sleep. */
#define KNOCKS_UNREFUSED_MAX 2
/* Ticks at least from one knock to the next that only vouches for errors
 * the counts do not tell as failed handshakes. */
#define KNOCK_VOUCH_TICKS 5

/*
 * Connects to the server's own path and sends a handshake header nng
 * refuses (its reserved bytes set). A listener that takes connections
 * counts the refusal; a stopped one does not, as it hands no handshake's
 * outcome to the socket. A handshake that completed would be worse: nng
 * never frees a connection a stopped listener holds, even once closed. The
 * knock stays open until it is refused or the watch gives up: hung up
 * before the server's header is written, it would itself stop the
 * listener.
 */
static void
knock_start(struct ipc_server *s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const unsigned char refused_hello[8] = {0, 'S', 'P', 0, 0, 0, 1, 0};
	struct listener_counts counts;
	int fd, connected;

	listener_counts(s, &counts);
	s->refused_before_knock = counts.refused;
	s->errors_before_knock = counts.errors;
	s->ticks_since_knock = 0;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", listener_path(s));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_warn("ipc: socket");
		return;
	}
	/* A full backlog (EAGAIN) may be a burst of connections that the
	 * listener is taking: knock again at the next tick. */
	connected = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (!connected && errno == EAGAIN &&
	    ++s->knocks_unheard < KNOCKS_UNHEARD_MAX) {
		close(fd);
		s->failed_handshakes--;
		s->ticks_since_knock = KNOCK_VOUCH_TICKS;
		return;
	}
	s->knocks_unheard = 0;
	if (!connected ||
	    write(fd, refused_hello, sizeof(refused_hello)) !=
	        (ssize_t)sizeof(refused_hello)) {
		close(fd);
		listener_replace(s);
		return;
	}
	s->knock_fd = fd;
	s->knock_ticks = 0;
}

/*
 * nng 1.5.2 stops taking connections on a listener for good when a peer
 * hangs up before the server's half of the handshake is written (the failed
 * negotiation hands NNG_ECLOSED to the accept loop, nng issue #1518): its
 * transport still shakes hands, but no connection reaches the socket. An
 * ollamaxctl killed, or timed out while the process was stopped, would
 * leave the socket deaf. Each second the server reads the listener's count
 * of failed handshakes; after a new one it knocks, and a listener that has
 * not refused the knock by the second tick after, nor a second knock by
 * the tick after that, is replaced. Counted in ticks, not seconds, so that
 * a process resumed after a stop gives nng's threads a tick to accept. A path
 * that something else holds by then is tried again each tick: the socket must
 * not stay deaf for a passing obstacle.
 *
 * That count is a difference of counts nng keeps apart: it falls when a
 * peer of another uid is cut (accepted, closed, no error), and a closing
 * connection's error may be read before its close. So the count is
 * followed down as well as up, and every error of the listener's is
 * vouched for: by an accept that came after it, which a stopped listener
 * makes none of, or else by a knock within KNOCK_VOUCH_TICKS. A handshake
 * the difference hid cannot leave the socket deaf for longer. Accepts
 * counted since the last tick came after every error counted at the tick
 * before it, whatever the order nng reads its counts in: those errors, two
 * ticks old, are the ones the accepts vouch for, and the ones a knock is
 * due for when none came. Connections coming and going thus cost no
 * knock, which pauses nng's accepts for 100 ms once it is refused.
 */
static void
listener_watch_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ipc_server *s = w->data;
	struct listener_counts c;
	int64_t failed, errors_older;
	int knock_due;

	(void)loop;
	(void)revents;
	if (!s->listening) {
		if (listener_start(s) == 0)
			log_warnx("ipc: listening on %s again", s->url);
		return;
	}
	listener_counts(s, &c);
	/* Errors not from a connection that was open. */
	failed = c.errors - (c.accepted - c.open);
	errors_older = s->errors_seen_before;
	if (c.accepted > s->accepted_seen && errors_older > s->errors_vouched)
		s->errors_vouched = errors_older;
	s->errors_seen_before = s->errors_seen;
	s->errors_seen = c.errors;
	s->accepted_seen = c.accepted;
	if (s->knock_fd >= 0) {
		if (c.refused > s->refused_before_knock) {
			knock_end(s);
			s->knocks_unrefused = 0;
			/* The knock's own refusal is no news. */
			s->failed_handshakes = failed;
			if (s->errors_before_knock + 1 > s->errors_vouched)
				s->errors_vouched = s->errors_before_knock + 1;
		} else if (++s->knock_ticks >= 2) {
			knock_end(s);
			if (++s->knocks_unrefused < KNOCKS_UNREFUSED_MAX) {
				knock_start(s);
				/* Its process has run since the first: a tick
				 * is time enough for nng's threads. */
				s->knock_ticks = 1;
			} else {
				listener_replace(s);
			}
		}
		return;
	}
	if (s->ticks_since_knock < KNOCK_VOUCH_TICKS)
		s->ticks_since_knock++;
	knock_due = failed > s->failed_handshakes ||
	    (errors_older > s->errors_vouched &&
	        s->ticks_since_knock >= KNOCK_VOUCH_TICKS);
	s->failed_handshakes = failed;
	if (knock_due)
		knock_start(s);
}

struct ipc_server *
ipc_listen(struct ev_loop *loop, const char *url, int nctx, ipc_request_fn fn,
    void *arg)
{
	struct ipc_server *s = calloc(1, sizeof(*s));
	int rv;

	if (s == NULL)
		fatal("out of memory");
	s->fn = fn;
	s->arg = arg;
	if (strncmp(url, "ipc://", 6) != 0 || strlen(url) >= sizeof(s->url)) {
		log_warnx("ipc: cannot listen on %s: not an ipc:// path a "
		          "socket can take",
		    url);
		free(s);
		return NULL;
	}
	snprintf(s->url, sizeof(s->url), "%s", url);
	pthread_mutex_init(&s->answered_mu, NULL);
	if ((rv = nng_rep0_open(&s->sock)) != 0 ||
	    (rv = nng_socket_set_size(
	         s->sock, NNG_OPT_RECVMAXSZ, MSG_MAX_FRAME + 1024)) != 0 ||
	    (rv = nng_pipe_notify(
	         s->sock, NNG_PIPE_EV_ADD_PRE, check_peer, NULL)) != 0 ||
	    (rv = nng_pipe_notify(
	         s->sock, NNG_PIPE_EV_REM_POST, forget_answered, s)) != 0 ||
	    (rv = listener_start(s)) != 0) {
		log_warnx(
		    "ipc: cannot listen on %s: %s", url, nng_strerror(rv));
		nng_close(s->sock);
		pthread_mutex_destroy(&s->answered_mu);
		free(s);
		return NULL;
	}
	waker_init(&s->waker, loop);
	s->knock_fd = -1;
	ev_timer_init(&s->watch, listener_watch_cb, 1.0, 1.0);
	s->watch.data = s;
	ev_timer_start(loop, &s->watch);
	ev_timer_init(&s->trim, calls_trim_cb, 1.0, 1.0);
	s->trim.data = s;
	ev_timer_start(loop, &s->trim);
	s->initial_calls = nctx;
	calls_add(s, nctx);
	return s;
}

void
ipc_reply(struct ipc_call *c, const void *data, size_t len)
{
	nng_msg *m;

	if (c->state != CALL_HANDLER)
		fatalx("ipc: a call answered twice");
	if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, data, len) != 0)
		fatal("out of memory");
	c->state = CALL_SEND;
	count_answer(c->server, c->pipe);
	nng_aio_set_msg(c->op.aio, m);
	nng_aio_set_timeout(c->op.aio, REPLY_SEND_MS);
	nng_ctx_send(c->ctx, c->op.aio);
}

int
ipc_server_calls(const struct ipc_server *s)
{
	return s->ncalls;
}

void
ipc_drop(struct ipc_call *c)
{
	atomic_fetch_add(&refused, 1);
	call_recv(c);
}

/* How long a closing server waits for the answers it has given to be
 * written. */
#define CLOSE_FLUSH_MS 250

/*
 * Whether a connection still open has answers not written whole: nng
 * counts each message a connection wrote (nothing at the socket's level in
 * 1.5.2), and a connection writes its answers in order. One pass over
 * nng's statistics, whatever the number of connections.
 */
static int
answers_unwritten(struct ipc_server *s, nng_stat *st)
{
	nng_stat *child, *tx, *id;
	int unwritten = 0;

	if (nng_stat_type(st) != NNG_STAT_SCOPE)
		return 0;
	if (strcmp(nng_stat_name(st), "pipe") == 0 &&
	    (id = nng_stat_find(st, "id")) != NULL &&
	    (tx = nng_stat_find(st, "tx_msgs")) != NULL) {
		for (size_t i = 0; i < s->nanswered; i++)
			if ((uint64_t)nng_pipe_id(s->answered[i].pipe) ==
			    nng_stat_value(id))
				return nng_stat_value(tx) <
				    s->answered[i].given;
		return 0;
	}
	for (child = nng_stat_child(st); child != NULL && !unwritten;
	     child = nng_stat_next(child))
		unwritten = answers_unwritten(s, child);
	return unwritten;
}

/* The same, from a snapshot of nng's statistics taken now. */
static int
answers_unwritten_now(struct ipc_server *s)
{
	nng_stat *all;
	int unwritten;

	if (nng_stats_get(&all) != 0)
		return 0;
	pthread_mutex_lock(&s->answered_mu);
	unwritten = answers_unwritten(s, all);
	pthread_mutex_unlock(&s->answered_mu);
	nng_stats_free(all);
	return unwritten;
}

size_t
ipc_server_answered_connections(struct ipc_server *s)
{
	size_t n;

	pthread_mutex_lock(&s->answered_mu);
	n = s->nanswered;
	pthread_mutex_unlock(&s->answered_mu);
	return n;
}

void
ipc_server_close(struct ipc_server *s)
{
	nng_time until;

	if (s == NULL)
		return;
	s->closing = 1;
	ev_timer_stop(s->waker.loop, &s->watch);
	ev_timer_stop(s->waker.loop, &s->trim);
	if (s->knock_fd >= 0)
		knock_end(s);
	/* nng_close drops the answers its connections have not written yet,
	 * and so does the exit that often follows: their callers would hear
	 * the connection reset, not the answer (those waiting on a worker's
	 * agents, stopped just before). Bounded, as a peer that reads
	 * nothing holds its answers back for good. */
	until = nng_clock() + CLOSE_FLUSH_MS;
	while (answers_unwritten_now(s) && nng_clock() < until)
		nng_msleep(1);
	nng_close(s->sock);
	for (int i = 0; i < s->ncalls; i++)
		nng_aio_stop(s->calls[i]->op.aio);
	/* Completions already queued refer to calls and their aios: run
	 * them as closing, before the aios go. */
	waker_cb(s->waker.loop, &s->waker.async, 0);
	for (int i = 0; i < s->ncalls; i++) {
		nng_aio_free(s->calls[i]->op.aio);
		free(s->calls[i]);
	}
	waker_fini(&s->waker);
	pthread_mutex_destroy(&s->answered_mu);
	free(s->answered);
	free(s->calls);
	free(s);
}

/* ------------------------------------------------------------------ */
/* Client                                                             */
/* ------------------------------------------------------------------ */

struct request {
	struct op op;
	struct ipc_client *client;
	nng_ctx ctx;
	int sent;
	nng_time deadline; /* 0: none */
	ipc_reply_fn fn;
	void *arg;
	LIST_ENTRY(request) link;
};

struct ipc_client {
	struct waker waker;
	nng_socket sock;
	LIST_HEAD(, request) live;
	int closing; /* no request goes on to wait for its answer */
	/* The dialer's watch: see dialer_watch_cb. */
	char url[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	nng_dialer dialer;
	atomic_int pipes;
	ev_timer watch;
	int unconnected_ticks;
	int patience_ticks; /* before the next dial anew */
	int said_unconnected;
};

/* One-second ticks without a connection before a client dials anew,
 * doubling while the peer stays away, up to the most. */
#define DIALER_PATIENCE_TICKS 2
#define DIALER_PATIENCE_MAX_TICKS 32

/* Pipes that began, less those that ended: run on nng's threads. */
static void
count_pipe(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	struct ipc_client *c = arg;

	(void)pipe;
	atomic_fetch_add(&c->pipes, ev == NNG_PIPE_EV_ADD_PRE ? 1 : -1);
}

/*
 * nng 1.5.2's dialer stops for good when a handshake fails with
 * NNG_ECLOSED, as a write to a peer that has just hung up does (EPIPE):
 * the client never connects again, and its requests wait out their
 * timeouts (the fix of nng issue #1518 for listeners came after 1.5.2, and
 * the dialer has the same flaw). A peer that restarts can cause it. The
 * dialer retries every 200 ms at most, so a client without a connection
 * for two ticks is given a new dialer; requests waiting to be sent stay
 * with the socket and go once it connects.
 */
static void
dialer_watch_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ipc_client *c = w->data;
	int rv;

	(void)loop;
	(void)revents;
	if (atomic_load(&c->pipes) > 0) {
		c->unconnected_ticks = 0;
		c->patience_ticks = DIALER_PATIENCE_TICKS;
		c->said_unconnected = 0;
		return;
	}
	if (++c->unconnected_ticks < c->patience_ticks)
		return;
	c->unconnected_ticks = 0;
	/* A peer away for good (a worker left FAILED) is dialed anew less
	 * and less often: each dialer closed while it dials risks nng
	 * 1.5.2's race at close (nng issue #1498), which can hang the
	 * socket's own close at the stop. */
	if (c->patience_ticks < DIALER_PATIENCE_MAX_TICKS)
		c->patience_ticks *= 2;
	if (!c->said_unconnected)
		log_info("ipc: not connected to %s for %d s: dialing it anew",
		    c->url, DIALER_PATIENCE_TICKS);
	c->said_unconnected = 1;
	nng_dialer_close(c->dialer);
	if ((rv = nng_dial(c->sock, c->url, &c->dialer, NNG_FLAG_NONBLOCK)) !=
	    0)
		log_warnx("ipc: cannot dial %s: %s", c->url, nng_strerror(rv));
}

struct ipc_client *
ipc_dial(struct ev_loop *loop, const char *url)
{
	struct ipc_client *c = calloc(1, sizeof(*c));
	int rv;

	if (c == NULL)
		fatal("out of memory");
	if ((rv = nng_req0_open(&c->sock)) != 0 ||
	    (rv = nng_socket_set_size(
	         c->sock, NNG_OPT_RECVMAXSZ, MSG_MAX_FRAME + 1024)) != 0 ||
	    /* No resend: a lost peer fails the request (NNG_ECONNRESET). */
	    (rv = nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
	         NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 10)) != 0 ||
	    (rv = nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 200)) != 0 ||
	    (rv = nng_pipe_notify(
	         c->sock, NNG_PIPE_EV_ADD_PRE, count_pipe, c)) != 0 ||
	    (rv = nng_pipe_notify(
	         c->sock, NNG_PIPE_EV_REM_POST, count_pipe, c)) != 0 ||
	    (rv = nng_dial(c->sock, url, &c->dialer, NNG_FLAG_NONBLOCK)) != 0) {
		log_warnx("ipc: cannot dial %s: %s", url, nng_strerror(rv));
		nng_close(c->sock);
		free(c);
		return NULL;
	}
	snprintf(c->url, sizeof(c->url), "%s", url);
	c->patience_ticks = DIALER_PATIENCE_TICKS;
	waker_init(&c->waker, loop);
	LIST_INIT(&c->live);
	ev_timer_init(&c->watch, dialer_watch_cb, 1.0, 1.0);
	c->watch.data = c;
	ev_timer_start(loop, &c->watch);
	return c;
}

static void
request_end(struct request *r, int err, const void *data, size_t len)
{
	LIST_REMOVE(r, link);
	r->fn(r->arg, err, data, len);
	nng_ctx_close(r->ctx);
	nng_aio_free(r->op.aio);
	free(r);
}

static void
request_on_loop(struct op *op)
{
	struct request *r = (struct request *)op;
	int rv = nng_aio_result(op->aio);
	nng_msg *m;

	if (rv != 0) {
		if (!r->sent) {
			nng_msg_free(nng_aio_get_msg(op->aio));
			if (rv == NNG_ETIMEDOUT)
				rv = IPC_ENOTSENT;
		}
		request_end(r, rv, NULL, 0);
		return;
	}
	if (!r->sent && r->client->closing) {
		/* Sent just before the close: waiting for the answer now
		 * would outlive the client. */
		request_end(r, NNG_ECANCELED, NULL, 0);
		return;
	}
	if (!r->sent) {
		r->sent = 1;
		/* An aio's timeout starts again with each operation: the wait
		 * for the answer gets what the send left of it. */
		if (r->deadline != 0) {
			nng_time now = nng_clock();

			if (now >= r->deadline) {
				request_end(r, NNG_ETIMEDOUT, NULL, 0);
				return;
			}
			nng_aio_set_timeout(
			    op->aio, (nng_duration)(r->deadline - now));
		}
		nng_ctx_recv(r->ctx, op->aio);
		return;
	}
	m = nng_aio_get_msg(op->aio);
	request_end(r, 0, nng_msg_body(m), nng_msg_len(m));
	nng_msg_free(m);
}

static void
request_aio_cb(void *arg)
{
	struct request *r = arg;

	waker_post(&r->client->waker, &r->op);
}

int
ipc_request(struct ipc_client *c, const void *data, size_t len,
    int64_t timeout_ms, ipc_reply_fn fn, void *arg)
{
	struct request *r;
	nng_msg *m;
	int rv;

	/* Asked from a request's end as the client closes: it would go on
	 * after the client is freed. */
	if (c->closing)
		return NNG_ECLOSED;
	/* The peer takes no more (NNG_OPT_RECVMAXSZ): sent, it would cut the
	 * connection, and every other request under way on it. */
	if (len > MSG_MAX_FRAME)
		return NNG_EMSGSIZE;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("out of memory");
	r->client = c;
	r->fn = fn;
	r->arg = arg;
	r->op.on_loop = request_on_loop;
	if ((rv = nng_ctx_open(&r->ctx, c->sock)) != 0) {
		free(r);
		return rv;
	}
	if ((rv = nng_aio_alloc(&r->op.aio, request_aio_cb, r)) != 0) {
		nng_ctx_close(r->ctx);
		free(r);
		return rv;
	}
	if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, data, len) != 0)
		fatal("out of memory");
	/* The timeout covers the send and the wait for the answer. */
	r->deadline = timeout_ms > 0 ? nng_clock() + (nng_time)timeout_ms : 0;
	nng_aio_set_timeout(r->op.aio,
	    timeout_ms > 0 ? (nng_duration)timeout_ms : NNG_DURATION_INFINITE);
	nng_aio_set_msg(r->op.aio, m);
	LIST_INSERT_HEAD(&c->live, r, link);
	nng_ctx_send(r->ctx, r->op.aio);
	return 0;
}

void
ipc_client_close(struct ipc_client *c)
{
	struct request *r;

	if (c == NULL)
		return;
	c->closing = 1;
	ev_timer_stop(c->waker.loop, &c->watch);
	LIST_FOREACH(r, &c->live, link)
		nng_aio_stop(r->op.aio);
	/* Stopped requests end with NNG_ECANCELED through the waker. */
	waker_cb(c->waker.loop, &c->waker.async, 0);
	nng_close(c->sock);
	waker_fini(&c->waker);
	free(c);
}

/* ------------------------------------------------------------------ */
/* A close that never returns                                         */
/* ------------------------------------------------------------------ */

/*
 * nng 1.5.2's ipc transport reads a message's header, then its body. A
 * connection closed in between (a socket's close, as a message comes in
 * on it) has its receive marked stopped, and the read of the body, started
 * after that from the header's callback, is refused without a callback
 * (nni_aio_begin on a stopped aio). The receive the protocol keeps waiting
 * on the connection then never ends, and the connection's teardown waits
 * for it on nng's one reaper thread: nng_close waits for the connection to
 * be torn down, nng_fini for the reaper, for good. Seen under load in
 * about one stop in a hundred at a fleet's start: in a worker's link to
 * the hub as the answer to its ready or report came, and in the broker's
 * server as a worker's request came. No way of calling nng rules it out,
 * since a peer may send at any time: the wait is bounded instead.
 */
static char close_overdue_line[512];
static size_t close_overdue_len;
static int close_overdue_status;

static void
close_overdue(int sig)
{
	ssize_t ignored;

	(void)sig;
	ignored = write(STDERR_FILENO, close_overdue_line, close_overdue_len);
	(void)ignored;
	_exit(close_overdue_status);
}

void
ipc_close_deadline(
    const char *who, unsigned seconds, int status, const char *then)
{
	int n = snprintf(close_overdue_line, sizeof(close_overdue_line),
	    "%s: its sockets did not close within %u s of the stop (nng): "
	    "exiting without%s\n",
	    who, seconds, then);

	/* The handler writes what is ready: a line cut short still ends. */
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(close_overdue_line)) {
		n = sizeof(close_overdue_line) - 1;
		close_overdue_line[n - 1] = '\n';
	}
	close_overdue_len = (size_t)n;
	close_overdue_status = status;
	signal(SIGALRM, close_overdue);
	alarm(seconds);
}

void
ipc_close_deadline_met(void)
{
	alarm(0);
}
