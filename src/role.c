/*
 * role.c: what every child of the supervisor does first: name itself, set
 * its process title, stop on SIGTERM, say hello on the hub and take its
 * part of the config from the answer; then its link to the hub.
 */
#include "autoconf.h"

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>

#include "cliarg.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "role.h"

int
ctl_refused_late(
    int64_t until_ms, char *why, size_t whylen, const char *what_fmt, ...)
{
	int64_t late = msg_late_ms(until_ms);
	char what[160];
	va_list ap;

	if (late == 0)
		return 0;
	va_start(ap, what_fmt);
	vsnprintf(what, sizeof(what), what_fmt, ap);
	va_end(ap);
	snprintf(why, whylen,
	    "%s came %lld ms past its deadline: not carried out", what,
	    (long long)late);
	log_warnx("%s", why);
	return 1;
}

/* SIGTERM or SIGINT came: see hub_call. */
static int stop_asked;
/* "ollamax-worker0": the name its log lines go under. */
static char child_name[64];

/*
 * nng 1.5.2 can hang closing a socket for good (see ipc.c), and the
 * supervisor kills a child still there ROLE_STOP_GRACE_S after its
 * SIGTERM, which it takes for a stop gone wrong. A child's closes start
 * once what it served has stopped, just after the SIGTERM: they get less
 * than that, with time to spare for a machine under load. A child that
 * ends unasked (a page of agents it could not fetch) would otherwise wait
 * for the watchdog before the supervisor starts it again: it exits 1.
 */
#define ROLE_CLOSE_S (ROLE_STOP_GRACE_S - 2)

void
role_closing(void)
{
	static int bounded;

	if (bounded)
		return;
	bounded = 1;
	if (stop_asked)
		ipc_close_deadline(child_name, ROLE_CLOSE_S, 0,
		    "; what it served had stopped");
	else
		ipc_close_deadline(
		    child_name, ROLE_CLOSE_S, 1, "; it was ending unasked");
}

static void
call_reply(void *arg, int err, const void *data, size_t len)
{
	struct hub_link *h = arg;

	h->waiting = 0;
	h->err = err;
	if (err == 0) {
		h->reply = malloc(len);
		if (h->reply == NULL)
			fatal("out of memory");
		memcpy(h->reply, data, len);
		h->reply_len = len;
	}
	ev_break(h->loop, EVBREAK_ONE);
}

/*
 * Sends a frame to the hub and runs the loop until its answer: only while
 * a child sets itself up, before it serves anything. 0 with h->reply set
 * (free it), or -1 when the hub did not answer or SIGTERM came.
 */
static int
hub_call(struct hub_link *h, struct msg_writer *w, const char *what)
{
	const char *data;
	size_t len;

	data = msg_data(w, &len);
	h->waiting = 1;
	h->reply = NULL;
	if (ipc_request(h->client, data, len, 10000, call_reply, h) != 0) {
		msg_writer_free(w);
		log_warnx("hub: cannot send the %s", what);
		return -1;
	}
	msg_writer_free(w);
	ev_run(h->loop, 0);
	/* Stopped by a signal before the answer came, or with it: the
	 * answer's own break may have taken the place of the signal's. */
	if (h->waiting || stop_asked) {
		h->cut_short = 1;
		free(h->reply);
		h->reply = NULL;
		return -1;
	}
	if (h->err != 0) {
		log_warnx(
		    "hub: %s not answered: %s", what, ipc_strerror(h->err));
		return -1;
	}
	return 0;
}

static int
hub_hello(struct hub_link *h, struct ev_loop *loop, const char *runtime,
    int role, int index, struct msg_setup *setup)
{
	struct msg_hello hello = {
	    .role = role, .index = index, .pid = getpid()};
	struct msg_writer w;
	struct msg_reader r;
	char url[4200];
	int rv = 0;

	memset(h, 0, sizeof(*h));
	h->loop = loop;
	h->role = role;
	h->index = index;
	snprintf(url, sizeof(url), "ipc://%s/hub.sock", runtime);
	h->client = ipc_dial(loop, url);
	if (h->client == NULL)
		return -1;
	msg_hello_encode(&w, &hello);
	if (hub_call(h, &w, "hello") != 0)
		return -1;
	if (msg_open(&r, h->reply, h->reply_len) != MSG_OK ||
	    msg_setup_decode(&r, setup) != MSG_OK || setup->role != role) {
		log_warnx("hub: bad setup (%s)",
		    r.detail[0] ? r.detail : "another role's");
		rv = -1;
	}
	msg_close(&r);
	free(h->reply);
	return rv;
}

int
hub_fetch(struct hub_link *h, uint32_t page, struct msg_agents *out)
{
	struct msg_fetch f = {.index = h->index, .pid = getpid(), .page = page};
	struct msg_writer w;
	struct msg_reader r;
	int rv = 0;

	msg_fetch_encode(&w, &f);
	if (hub_call(h, &w, "fetch") != 0)
		return -1;
	if (msg_open(&r, h->reply, h->reply_len) != MSG_OK ||
	    msg_agents_decode(&r, out) != MSG_OK) {
		log_warnx("hub: bad page %u of agents (%s)", (unsigned)page,
		    r.detail);
		rv = -1;
	}
	msg_close(&r);
	free(h->reply);
	return rv;
}

static void
ready_reply(void *arg, int err, const void *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	/* A ready that never came leaves the child starting, so its reports
	 * do not count and the supervisor's watchdog restarts it: so be it. */
	if (err != 0)
		log_warnx("hub: ready not answered: %s", ipc_strerror(err));
}

void
hub_ready(struct hub_link *h, char (*not_started)[MSG_NAME_MAX], uint32_t n)
{
	struct msg_ready ready = {
	    .child = {.role = h->role, .index = h->index, .pid = getpid()},
	    .not_started = not_started,
	    .nnot_started = n};
	struct msg_writer w;
	const char *data;
	size_t len;

	msg_ready_encode(&w, &ready);
	data = msg_data(&w, &len);
	/* Reports follow at once, not after the answer: one that is late
	 * (the supervisor was held up) must not make a child that reports
	 * nothing while the supervisor counts it running. */
	if (ipc_request(h->client, data, len, 10000, ready_reply, NULL) != 0)
		log_warnx("hub: cannot say ready");
	else
		h->ready = 1;
	msg_writer_free(&w);
}

static void
report_reply(void *arg, int err, const void *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	/* A lost report is replaced by the next one, a second later. */
	if (err != 0)
		log_debug("hub: report not answered: %s", ipc_strerror(err));
}

void
hub_report(struct hub_link *h, const struct msg_report *rep)
{
	struct msg_report r = *rep;
	struct msg_writer w;
	const char *data;
	size_t len;

	r.role = h->role;
	r.index = h->index;
	r.pid = getpid();
	msg_report_encode(&w, &r);
	data = msg_data(&w, &len);
	ipc_request(h->client, data, len, 2000, report_reply, NULL);
	msg_writer_free(&w);
}

static void
stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)w;
	(void)revents;
	stop_asked = 1;
	ev_break(loop, EVBREAK_ALL);
}

int
role_main(int argc, char **argv, const char *role, int index,
    const char *runtime, role_fn fn)
{
	static char title[64], role_s[16], runtime_s[PATH_MAX];
	static struct hub_link hub;
	struct ev_loop *loop = EV_DEFAULT;
	struct msg_setup setup;
	ev_signal sigterm, sigint;
	int rc,
	    role_id = strcmp(role, "broker") == 0 ? ROLE_BROKER : ROLE_WORKER;

	/* The title overwrites argv, where these strings live: copy them. */
	snprintf(role_s, sizeof(role_s), "%s", role);
	snprintf(runtime_s, sizeof(runtime_s), "%s", runtime);
	role = role_s;
	runtime = runtime_s;
	snprintf(child_name, sizeof(child_name), "ollamax-%s%d", role, index);
	snprintf(title, sizeof(title), "ollamax: %s %d", role, index);
	/* Under --daemon the supervisor's children log to syslog too. */
	log_init(child_name, getenv("OLLAMAX_SYSLOG") != NULL);
	proc_set_title(argc, argv, title);
	signal(SIGPIPE, SIG_IGN);
	/* Past the file size limit, a write fails with EFBIG and is reported
	 * like a full disk, rather than killing the child. */
	signal(SIGXFSZ, SIG_IGN);
	/* The supervisor stops children with SIGTERM; ^C reaches them too. */
	ev_signal_init(&sigterm, stop_cb, SIGTERM);
	ev_signal_start(loop, &sigterm);
	ev_signal_init(&sigint, stop_cb, SIGINT);
	ev_signal_start(loop, &sigint);
	/*
	 * A child that cannot set itself up ends at once, its hub socket left
	 * to the end of the process: a hello stopped by SIGTERM as its answer
	 * came made nng 1.5.2 hang in nng_close now and then (in 4 of 85
	 * runs of supervisor.sh's check of it; see ipc.c), and a child whose
	 * supervisor had died would have hung there for good. So is a socket
	 * whose fetch of agents SIGTERM ended, its answer still coming or
	 * just come.
	 */
	/* Set up or not, a child asked to stop has done what it was asked. */
	if (hub_hello(&hub, loop, runtime, role_id, index, &setup) != 0)
		return stop_asked ? 0 : 1;
	rc = fn(loop, runtime, &hub, &setup);
	msg_setup_free(&setup);
	if (stop_asked)
		rc = 0;
	if (!hub.cut_short) {
		role_closing();
		ipc_client_close(hub.client);
		/* nng's threads may still hold what was in flight when its
		 * sockets closed (a request resent to a broker that came
		 * back, say): finishing the library lets it go, so that none
		 * of it is left when the process ends. */
		nng_fini();
	}
	/* What follows the return (the sanitizers' report of leaks) is no
	 * close of a socket. */
	ipc_close_deadline_met();
	return rc;
}

int
role_program(int argc, char **argv, const char *role, role_fn fn)
{
	static const struct option longopts[] = {
	    {"index", required_argument, NULL, 'i'},
	    {"runtime", required_argument, NULL, 'R'},
	    {"role", required_argument, NULL, 'r'},
	    {NULL, 0, NULL, 0},
	};
	const char *runtime = NULL;
	char why[256] = "";
	int opt, index = 0;

	log_init(role, 0);
	log_level_from_env();
	while ((opt = cliarg_getopt(
	            argc, argv, ":", longopts, why, sizeof(why))) != -1) {
		switch (opt) {
		case 'i':
			index = (int)cliarg_long(
			    role, "--index", optarg, 0, INT_MAX);
			break;
		case 'R':
			runtime = optarg;
			break;
		case 'r':
			break;
		default:
			goto usage;
		}
	}
	if (runtime == NULL || optind != argc)
		goto usage;
	return role_main(argc, argv, role, index, runtime, fn);
usage:
	if (why[0] != '\0')
		fprintf(stderr, "ollamax-%s: %s\n", role, why);
	fprintf(stderr,
	    "usage: ollamax-%s --index N --runtime DIR\n"
	    "(started by ollamax-supervisor, not by hand)\n",
	    role);
	return 2;
}
