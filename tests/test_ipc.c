/*
 * Request/reply over nng ipc:// on a libev loop: answers come back on the
 * loop, many requests are in flight at once, answers may come later, and a
 * request without an answer fails at its timeout instead of hanging.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <spawn.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "ipc.h"

extern char **environ;

static char dir[64], url[128];
static struct ev_loop *loop;

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ollamax-ipc-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(url, sizeof(url), "ipc://%s/test.sock", dir);
	loop = ev_loop_new(EVFLAG_AUTO);
}

static void
teardown(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/test.sock", dir);
	unlink(path);
	rmdir(dir);
	ev_loop_destroy(loop);
}

TestSuite(ipc, .init = setup, .fini = teardown, .timeout = 20);

/* Echoes at once, or holds calls to answer them later in reverse. The
 * server's contexts once all are held, when it is `serving`. */
static struct ipc_call *held[64];
static int nheld, hold, calls_all_held;
static struct ipc_server *serving;

static void
echo(void *arg, struct ipc_call *call, const void *data, size_t len)
{
	(void)arg;
	if (hold) {
		held[nheld++] = call;
		if (nheld == hold && serving != NULL)
			calls_all_held = ipc_server_calls(serving);
		if (nheld == hold)
			for (int i = nheld - 1; i >= 0; i--)
				ipc_reply(held[i], "late", 4);
		return;
	}
	ipc_reply(call, data, len);
}

static int answered, failed, last_err;
static char last[64];

static void
got(void *arg, int err, const void *data, size_t len)
{
	(void)arg;
	if (err != 0) {
		failed++;
		last_err = err;
	} else {
		answered++;
		snprintf(
		    last, sizeof(last), "%.*s", (int)len, (const char *)data);
	}
	if (answered + failed == *(int *)arg)
		ev_break(loop, EVBREAK_ALL);
}

static void
give_up(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(l, EVBREAK_ALL);
}

static void
run_for(double seconds)
{
	ev_timer t;

	ev_timer_init(&t, give_up, seconds, 0);
	ev_timer_start(loop, &t);
	ev_run(loop, 0);
	ev_timer_stop(loop, &t);
}

/* Whether a request of text comes back as it went, alone. */
static void
assert_echoed(struct ipc_client *c, const char *text)
{
	int want = 1;

	answered = failed = 0;
	cr_assert_eq(ipc_request(c, text, strlen(text), 5000, got, &want), 0);
	run_for(10);
	cr_assert_eq(answered, 1);
	cr_assert_str_eq(last, text);
}

Test(ipc, a_request_gets_its_answer_on_the_loop)
{
	struct ipc_server *s = ipc_listen(loop, url, 4, echo, NULL);
	struct ipc_client *c = ipc_dial(loop, url);
	struct stat st;
	char path[128];

	cr_assert_not_null(s);
	cr_assert_not_null(c);
	snprintf(path, sizeof(path), "%s/test.sock", dir);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "the socket is private");
	assert_echoed(c, "hello");
	ipc_client_close(c);
	ipc_server_close(s);
}

/*
 * Sends count requests to a server of `contexts` contexts that holds each
 * until all are held, then answers them in reverse; returns how many were
 * answered.
 */
static int
answered_once_all_held(int contexts, int count)
{
	struct ipc_server *s = ipc_listen(loop, url, contexts, echo, NULL);
	struct ipc_client *c = ipc_dial(loop, url);
	int want = count;

	cr_assert_not_null(s);
	cr_assert_not_null(c);
	cr_assert_leq(count, (int)(sizeof(held) / sizeof(held[0])));
	hold = count;
	nheld = 0;
	answered = failed = 0;
	for (int i = 0; i < count; i++)
		cr_assert_eq(ipc_request(c, "x", 1, 5000, got, &want), 0);
	run_for(10);
	hold = 0;
	ipc_client_close(c);
	ipc_server_close(s);
	return answered;
}

Test(ipc, many_requests_are_in_flight_and_answered_later_in_any_order)
{
	cr_assert_eq(answered_once_all_held(16, 16), 16,
	    "answered %d, failed %d", answered, failed);
	cr_assert_str_eq(last, "late");
}

/* With 2 contexts for good, the rest would wait unread until their
 * timeouts. */
Test(ipc, a_server_whose_every_context_is_held_takes_more_requests)
{
	cr_assert_eq(answered_once_all_held(2, 40), 40,
	    "answered %d, failed %d", answered, failed);
}

/* Whether the server holds n contexts within the given time. */
static int
contexts_within(struct ipc_server *s, int n, double seconds)
{
	for (int i = 0; i < seconds * 10 && ipc_server_calls(s) != n; i++)
		run_for(0.1);
	return ipc_server_calls(s) == n;
}

/* Once the burst is answered, down to the contexts it started with; and
 * the server still answers. */
Test(ipc, a_server_gives_back_the_contexts_a_burst_added)
{
	struct ipc_server *s = ipc_listen(loop, url, 2, echo, NULL);
	struct ipc_client *c = ipc_dial(loop, url);
	int want = 40;

	hold = 40;
	nheld = calls_all_held = 0;
	serving = s;
	answered = failed = 0;
	for (int i = 0; i < 40; i++)
		cr_assert_eq(ipc_request(c, "x", 1, 5000, got, &want), 0);
	run_for(10);
	serving = NULL;
	cr_assert_eq(answered, 40, "answered %d, failed %d", answered, failed);
	cr_assert_geq(calls_all_held, 40, "grown for the burst");
	hold = 0;
	cr_assert(
	    contexts_within(s, 2, 5), "%d contexts kept", ipc_server_calls(s));
	assert_echoed(c, "again");
	ipc_client_close(c);
	ipc_server_close(s);
}

/*
 * A trim whose tick comes as the loop is back from being busy, with
 * requests already in for the calls it keeps: the calls whose receive it
 * cancels wait for nothing, and once the kept ones hold those requests,
 * more must come to wait for the next. The loop is held past the second
 * tick (the first keeps what the burst before it held), and the requests
 * are sent just before it.
 */
static struct ipc_call *kept[64];
static int nkept, probe_taken, no_break = 1 << 30;
static ev_tstamp listened;
static struct ipc_client *trimmed_client;

static void
hold_all_but_probe(
    void *arg, struct ipc_call *call, const void *data, size_t len)
{
	(void)arg;
	if (len == 5 && memcmp(data, "probe", 5) == 0) {
		probe_taken = 1;
		ipc_reply(call, data, len);
		return;
	}
	kept[nkept++] = call;
}

static void
busy_past_the_tick(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	while (ev_time() < listened + 2.05)
		usleep(1000);
}

static void
send_before_the_tick(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	for (int i = 0; i < 40; i++)
		ipc_request(trimmed_client, "y", 1, 20000, got, &no_break);
	/* nng's threads take them meanwhile. */
	usleep(300000);
}

static int
reached_within(int *v, int n, double seconds)
{
	for (int i = 0; i < seconds * 100 && *v < n; i++)
		run_for(0.01);
	return *v >= n;
}

Test(ipc, a_server_trimmed_as_its_kept_calls_fill_still_takes_requests)
{
	struct ipc_server *s =
	    ipc_listen(loop, url, 2, hold_all_but_probe, NULL);
	ev_timer busy, send;
	int taken;

	listened = ev_now(loop); /* the trim ticks 1 s on, and each second */
	trimmed_client = ipc_dial(loop, url);
	nkept = probe_taken = 0;
	answered = failed = 0;
	for (int i = 0; i < 40; i++)
		ipc_request(trimmed_client, "x", 1, 20000, got, &no_break);
	cr_assert(reached_within(&nkept, 40, 0.5));
	cr_assert_eq(ipc_server_calls(s), 64);
	for (int i = 0; i < 40; i++)
		ipc_reply(kept[i], "x", 1);
	nkept = 0;
	cr_assert(reached_within(&answered, 40, 0.5));
	ev_now_update(loop);
	cr_assert_lt(ev_now(loop), listened + 1.7, "too slow to set it up");
	ev_timer_init(
	    &busy, busy_past_the_tick, listened + 1.7 - ev_now(loop), 0);
	ev_timer_init(
	    &send, send_before_the_tick, listened + 1.9 - ev_now(loop), 0);
	ev_timer_start(loop, &busy);
	ev_timer_start(loop, &send);
	run_for(2.6);
	cr_assert_eq(nkept, 40);
	ipc_request(trimmed_client, "probe", 5, 20000, got, &no_break);
	taken = reached_within(&probe_taken, 1, 2.0);
	for (int i = 0; i < nkept; i++)
		ipc_reply(kept[i], "y", 1);
	run_for(0.5);
	ipc_client_close(trimmed_client);
	ipc_server_close(s);
	cr_assert(taken, "a request waited unread with %d held", 40);
}

Test(ipc, a_request_no_server_takes_fails_at_its_timeout_as_not_connected)
{
	struct ipc_client *c = ipc_dial(loop, url); /* no server */
	int want = 1;

	answered = failed = last_err = 0;
	cr_assert_eq(ipc_request(c, "x", 1, 200, got, &want), 0);
	run_for(5);
	cr_assert_eq(failed, 1);
	cr_assert_eq(answered, 0);
	cr_assert_eq(last_err, IPC_ENOTSENT);
	cr_assert_str_eq(
	    ipc_strerror(last_err), "not sent: no connection took it");
	ipc_client_close(c);
}

Test(ipc, a_request_a_server_took_but_never_answers_fails_as_timed_out)
{
	struct ipc_server *s = ipc_listen(loop, url, 2, echo, NULL);
	struct ipc_client *c = ipc_dial(loop, url);
	int want = 1;

	hold = 2; /* one request comes: never answered */
	nheld = 0;
	answered = failed = last_err = 0;
	cr_assert_eq(ipc_request(c, "x", 1, 300, got, &want), 0);
	run_for(5);
	cr_assert_eq(nheld, 1, "the server got the request");
	cr_assert_eq(failed, 1);
	cr_assert_eq(last_err, NNG_ETIMEDOUT);
	hold = 0;
	ipc_client_close(c);
	ipc_server_close(s);
}

Test(ipc, a_request_sent_late_still_ends_at_its_timeout_counted_from_the_start)
{
	struct ipc_client *c = ipc_dial(loop, url);
	struct ipc_server *s;
	int want = 1;
	ev_tstamp began;

	hold = 2; /* the request is taken but never answered */
	nheld = 0;
	answered = failed = last_err = 0;
	ev_now_update(loop);
	began = ev_now(loop);
	cr_assert_eq(ipc_request(c, "x", 1, 2000, got, &want), 0);
	run_for(1.5); /* unsent all this while: no server */
	s = ipc_listen(loop, url, 2, echo, NULL);
	run_for(10);
	ev_now_update(loop);
	cr_assert_eq(nheld, 1, "the server got the request");
	cr_assert_eq(last_err, NNG_ETIMEDOUT);
	/* The wait for the answer gets what the send left of the 2 s, not
	 * 2 s afresh (which would end it at 3.5 s or later). */
	cr_assert_lt(ev_now(loop) - began, 3.2, "ended after %.2f s",
	    ev_now(loop) - began);
	hold = 0;
	ipc_client_close(c);
	ipc_server_close(s);
}

Test(ipc, a_client_dialled_before_the_server_starts_reaches_it)
{
	struct ipc_client *c = ipc_dial(loop, url);
	struct ipc_server *s;
	int want = 1;

	answered = failed = 0;
	cr_assert_eq(ipc_request(c, "early", 5, 5000, got, &want), 0);
	run_for(0.1);
	s = ipc_listen(loop, url, 2, echo, NULL);
	run_for(10);
	cr_assert_eq(answered, 1);
	cr_assert_str_eq(last, "early");
	ipc_client_close(c);
	ipc_server_close(s);
}

/* A peer that hangs up on each connection as soon as it takes it. */
static atomic_int hung_up, hanging_up;

static void *
hang_up_on_each(void *arg)
{
	int fd = *(int *)arg;

	while (atomic_load(&hanging_up)) {
		int conn = accept(fd, NULL, NULL);

		if (conn >= 0) {
			close(conn);
			atomic_fetch_add(&hung_up, 1);
		}
	}
	return NULL;
}

/*
 * nng 1.5.2's dialer stops for good when its handshake's first write
 * finds the peer gone (EPIPE, read as NNG_ECLOSED); hanging up at once
 * does that within a few connections. The client must dial anew and reach
 * the server that comes next, with the request it held meanwhile.
 */
Test(ipc, a_client_whose_peer_hung_up_at_once_reaches_the_next_server)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ipc_client *c;
	struct ipc_server *s;
	pthread_t peer;
	int fd, want = 1;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/test.sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 16), 0);
	atomic_store(&hanging_up, 1);
	atomic_store(&hung_up, 0);
	cr_assert_eq(pthread_create(&peer, NULL, hang_up_on_each, &fd), 0);
	c = ipc_dial(loop, url);
	answered = failed = 0;
	cr_assert_eq(ipc_request(c, "held", 4, 8000, got, &want), 0);
	run_for(0.5);
	atomic_store(&hanging_up, 0);
	shutdown(fd, SHUT_RDWR); /* wakes the blocked accept */
	pthread_join(peer, NULL);
	close(fd);
	unlink(sa.sun_path);
	cr_assert_gt(atomic_load(&hung_up), 0, "no connection was hung up on");
	s = ipc_listen(loop, url, 2, echo, NULL);
	cr_assert_not_null(s);
	run_for(10);
	cr_assert_eq(answered, 1, "answered %d, failed %d", answered, failed);
	cr_assert_str_eq(last, "held");
	ipc_client_close(c);
	ipc_server_close(s);
}

Test(ipc, a_request_sent_when_its_client_closes_ends_once_cancelled)
{
	struct ipc_client *c = ipc_dial(loop, url);
	nng_socket rep;
	nng_msg *m;
	int want = 1;

	/* A bare peer, off the loop: once it holds the request, the client's
	 * send is over, and the loop has not yet seen that. */
	cr_assert_eq(nng_rep0_open(&rep), 0);
	cr_assert_eq(nng_socket_set_ms(rep, NNG_OPT_RECVTIMEO, 5000), 0);
	cr_assert_eq(nng_listen(rep, url, NULL, 0), 0);
	answered = failed = 0;
	cr_assert_eq(ipc_request(c, "x", 1, 5000, got, &want), 0);
	cr_assert_eq(nng_recvmsg(rep, &m, 0), 0);
	nng_msg_free(m);
	/* Closing now must not go on to wait for the answer. */
	ipc_client_close(c);
	cr_assert_eq(failed, 1, "ended %d times", failed);
	cr_assert_eq(answered, 0);
	nng_close(rep);
}

/* A request's end that asks again, as a caller that retries would. */
static struct ipc_client *asking;
static int asked_again;

static void
ask_again(void *arg, int err, const void *data, size_t len)
{
	got(arg, err, data, len);
	asked_again = ipc_request(asking, "y", 1, 5000, got, arg);
}

Test(ipc, a_request_asked_for_while_its_client_closes_is_refused)
{
	struct ipc_server *s = ipc_listen(loop, url, 4, echo, NULL);
	int want = 1;

	cr_assert_not_null(s);
	asking = ipc_dial(loop, url);
	cr_assert_not_null(asking);
	answered = failed = 0;
	hold = 2; /* one request comes: held until the close */
	nheld = 0;
	asked_again = 0;
	cr_assert_eq(ipc_request(asking, "x", 1, 5000, ask_again, &want), 0);
	for (int i = 0; i < 100 && nheld == 0; i++)
		run_for(0.05);
	cr_assert_eq(nheld, 1, "the server holds the request");
	ipc_client_close(asking);
	cr_assert_eq(failed, 1);
	cr_assert_eq(asked_again, NNG_ECLOSED, "got %d", asked_again);
	hold = 0;
	ipc_server_close(s);
}

/* Holds calls until `hold` came, then, at the loop's next turn, answers
 * them all and closes the server at once, as a stopping worker does. */
static struct ipc_server *closing_server;
static ev_timer closer;

static void
answer_all_and_close(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	/* Long enough that nng has most of them still to write. */
	static char farewell[128 * 1024];

	for (int i = 0; i < nheld; i++)
		ipc_reply(held[i], farewell, sizeof(farewell));
	ipc_server_close(closing_server);
	closing_server = NULL;
}

static void
hold_then_close(void *arg, struct ipc_call *call, const void *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	held[nheld++] = call;
	if (nheld < hold)
		return;
	ev_timer_init(&closer, answer_all_and_close, 0, 0);
	ev_timer_start(loop, &closer);
}

static void
server_gives_up(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	_exit(3);
}

/*
 * The server of the test below, in a process of its own (nng cannot be
 * used again in a child it forked): this binary run again with
 * OLLAMAX_TEST_ANSWER_AND_EXIT set to the URL to listen on.
 */
__attribute__((constructor)) static void
answer_and_exit(void)
{
	const char *at = getenv("OLLAMAX_TEST_ANSWER_AND_EXIT");
	ev_timer bound;

	if (at == NULL)
		return;
	loop = ev_loop_new(EVFLAG_AUTO);
	hold = 32;
	closing_server = ipc_listen(loop, at, 32, hold_then_close, NULL);
	if (closing_server == NULL)
		_exit(2);
	ev_timer_init(&bound, server_gives_up, 10, 0);
	ev_timer_start(loop, &bound);
	while (closing_server != NULL)
		ev_run(loop, EVRUN_ONCE);
	_exit(0);
}

/*
 * A stopping worker answers whoever waits on its agents, closes its socket
 * and exits: what nng had not written by then would be lost, and its
 * callers hear the connection reset.
 */
Test(ipc, answers_given_just_before_a_server_closes_and_exits_reach_callers)
{
	char env[160], *argv[] = {"test_ipc", NULL}, **envp;
	struct ipc_client *c;
	int want = 32, status, spawned;
	size_t n = 0;
	pid_t server;

	/* The sanitizers' options go on to the server. */
	while (environ[n] != NULL)
		n++;
	envp = calloc(n + 2, sizeof(*envp));
	cr_assert_not_null(envp);
	memcpy(envp, environ, n * sizeof(*envp));
	snprintf(env, sizeof(env), "OLLAMAX_TEST_ANSWER_AND_EXIT=%s", url);
	envp[n] = env;
	spawned = posix_spawn(&server, "/proc/self/exe", NULL, NULL, argv, envp);
	free(envp);
	cr_assert_eq(spawned, 0);
	c = ipc_dial(loop, url);
	answered = failed = 0;
	/* One connection: nng writes its answers one at a time. */
	for (int i = 0; i < 32; i++)
		cr_assert_eq(ipc_request(c, "x", 1, 3000, got, &want), 0);
	run_for(10);
	cr_assert_eq(waitpid(server, &status, 0), server);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the server ended with status %#x", status);
	cr_assert_eq(answered, 32, "answered %d, failed %d", answered, failed);
	ipc_client_close(c);
}

static void
hold_quietly(void *arg, struct ipc_call *call, const void *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	held[nheld++] = call;
}

/* The connections open on the server's listener, by nng's count (the
 * process has other sockets: criterion's own). */
static uint64_t
pipes_open(void)
{
	nng_stat *all, *st, *at, *pipes;
	uint64_t n = 0;

	cr_assert_eq(nng_stats_get(&all), 0);
	for (st = nng_stat_child(all); st != NULL; st = nng_stat_next(st))
		if (strcmp(nng_stat_name(st), "listener") == 0 &&
		    (at = nng_stat_find(st, "url")) != NULL &&
		    strcmp(nng_stat_string(at), url) == 0 &&
		    (pipes = nng_stat_find(st, "pipes")) != NULL)
			n += nng_stat_value(pipes);
	nng_stats_free(all);
	return n;
}

/*
 * A server remembers each connection it answered until the connection
 * closes, for its close to wait on; one that closed before its answer
 * came is remembered after it, and must not stay for good.
 */
Test(ipc, peers_that_hang_up_before_their_answers_are_not_remembered_for_good)
{
	enum { PEERS = 64 };
	struct ipc_server *s = ipc_listen(loop, url, PEERS, hold_quietly, NULL);
	nng_time until;

	cr_assert_not_null(s);
	nheld = 0;
	for (int i = 0; i < PEERS; i++) {
		nng_socket peer;

		cr_assert_eq(nng_req0_open(&peer), 0);
		cr_assert_eq(nng_dial(peer, url, NULL, 0), 0);
		cr_assert_eq(nng_send(peer, "x", 1, 0), 0);
		until = nng_clock() + 5000;
		while (nheld == i && nng_clock() < until)
			ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
		cr_assert_eq(nheld, i + 1, "request %d never came", i);
		nng_close(peer);
	}
	until = nng_clock() + 5000;
	while (pipes_open() > 0 && nng_clock() < until)
		nng_msleep(1);
	cr_assert_eq(pipes_open(), 0, "the peers' connections never closed");
	for (int i = 0; i < nheld; i++)
		ipc_reply(held[i], "late", 4);
	cr_assert_leq(ipc_server_answered_connections(s), PEERS / 4,
	    "%zu of %d connections gone are remembered",
	    ipc_server_answered_connections(s), PEERS);
	ipc_server_close(s);
}

/* Connections the server cut, counted on the client's side. */
static atomic_int cut;

static void
count_cut(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	(void)pipe;
	(void)ev;
	(void)arg;
	atomic_fetch_add(&cut, 1);
}

/* Reads the server's half of the handshake, then hangs up: nng counts an
 * error and its accept loop sleeps 100 ms. */
static void
hang_up_after_the_servers_half(struct ev_loop *l, ev_timer *w, int revents)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char head[8];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	(void)l;
	(void)w;
	(void)revents;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/test.sock", dir);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(read(fd, head, sizeof(head)), (ssize_t)sizeof(head));
	close(fd);
}

/*
 * A handshake cut halfway just before the watch's tick is knocked on while
 * nng's accept loop sleeps, which counts no refusal then: the listener
 * takes connections all the same, and must not be replaced, its
 * connections cut.
 */
Test(ipc, a_listener_knocked_on_while_nng_sleeps_is_not_replaced)
{
	struct ipc_server *s;
	nng_socket peer;
	ev_timer t;

	ev_now_update(loop);
	s = ipc_listen(loop, url, 2, echo, NULL);
	cr_assert_not_null(s);
	atomic_store(&cut, 0);
	cr_assert_eq(nng_req0_open(&peer), 0);
	cr_assert_eq(
	    nng_pipe_notify(peer, NNG_PIPE_EV_REM_POST, count_cut, NULL), 0);
	cr_assert_eq(nng_dial(peer, url, NULL, 0), 0);
	/* The watch ticks each second from the listen: it knocks at the
	 * second tick, and would have replaced the listener at the fourth. */
	ev_timer_init(&t, hang_up_after_the_servers_half, 1.95, 0);
	ev_timer_start(loop, &t);
	run_for(5);
	ev_timer_stop(loop, &t);
	cr_assert_eq(atomic_load(&cut), 0,
	    "the listener was replaced: its connection was cut");
	nng_close(peer);
	ipc_server_close(s);
}
