/*
 * fake_hub: a supervisor's hub that holds a child's hello, or its fetch of
 * a page of agents, until told (not a test by itself;
 * tests/integration/supervisor.sh runs it). A test stops the child, lets
 * the hub answer, sends SIGTERM and lets the child go on, so that the
 * answer and the signal come in one turn of the child's loop. The hello
 * is answered with CONFIG's setup for the child's role, with one page of
 * agents to fetch when HOLD is "fetch"; the page has none, and every other
 * frame is answered ok, so that a child that missed its SIGTERM runs on.
 * It prints "held PID" when the frame to hold comes, and "answered PID"
 * once it is answered. With "badpage" it holds nothing, and answers the
 * fetch of the one page with a frame that is no page, which ends the child
 * unasked. It exits on SIGTERM, or after 60 s so that it never outlives a
 * test that lost it.
 * Usage: fake_hub RUNTIME_DIR CONFIG GO_FILE hello|fetch|badpage
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "config.h"
#include "inifile.h"
#include "ipc.h"
#include "log.h"
#include "msg.h"

#include "fake_peer.h"

static struct config conf;
static const char *go_file;
static enum { HOLD_HELLO, HOLD_FETCH, BAD_PAGE } mode;
/* The frame held until go_file exists, its answer ready. */
static struct ipc_call *held;
static int64_t held_pid;
static struct msg_writer held_answer;

static void
setup_answer(struct msg_writer *w, const struct msg_hello *hello)
{
	struct msg_setup setup = {.role = hello->role,
	    .conf = conf,
	    .pages = mode == HOLD_HELLO ? 0 : 1};

	/* As the supervisor sends it: a child resolves no path itself. */
	config_resolve(conf.dir, conf.state_dir, setup.conf.state_dir,
	    sizeof(setup.conf.state_dir));
	msg_setup_encode(w, &setup);
}

static void
answer(struct ipc_call *call, struct msg_writer *w)
{
	const char *out;
	size_t n;

	out = msg_data(w, &n);
	ipc_reply(call, out, n);
	msg_writer_free(w);
}

static void
hold(struct ipc_call *call, int64_t pid)
{
	held = call;
	held_pid = pid;
	printf("held %lld\n", (long long)pid);
	fflush(stdout);
}

static void
on_frame(void *arg, struct ipc_call *call, const void *data, size_t len)
{
	struct msg_ctl_reply ok = {.ok = 1};
	struct msg_hello hello;
	struct msg_fetch fetch;
	struct msg_reader r;
	struct msg_writer w;

	(void)arg;
	if (msg_open(&r, data, len) != MSG_OK) {
		msg_close(&r);
		ipc_drop(call);
		return;
	}
	if (r.type == MSG_HELLO && msg_hello_decode(&r, &hello) == MSG_OK) {
		msg_close(&r);
		if (mode == HOLD_HELLO && held == NULL) {
			setup_answer(&held_answer, &hello);
			hold(call, hello.pid);
		} else {
			setup_answer(&w, &hello);
			answer(call, &w);
		}
		return;
	}
	if (r.type == MSG_FETCH && msg_fetch_decode(&r, &fetch) == MSG_OK &&
	    mode == HOLD_FETCH && held == NULL) {
		msg_close(&r);
		msg_agents_encode(&held_answer, 0, 0, NULL, 0);
		hold(call, fetch.pid);
		return;
	}
	msg_close(&r);
	msg_ctl_reply_encode(&w, &ok);
	answer(call, &w);
}

static void
go_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	if (held != NULL && access(go_file, F_OK) == 0) {
		answer(held, &held_answer);
		held = NULL;
		printf("answered %lld\n", (long long)held_pid);
		fflush(stdout);
	}
}

int
main(int argc, char **argv)
{
	struct ev_loop *loop = EV_DEFAULT;
	struct ipc_server *server;
	struct diag d = {0};
	ev_timer go;
	char url[4200];

	if (argc != 5 ||
	    (strcmp(argv[4], "hello") != 0 && strcmp(argv[4], "fetch") != 0 &&
	        strcmp(argv[4], "badpage") != 0)) {
		fprintf(stderr,
		    "usage: fake_hub RUNTIME_DIR CONFIG GO_FILE "
		    "hello|fetch|badpage\n");
		return 2;
	}
	mode = strcmp(argv[4], "hello") == 0 ? HOLD_HELLO
	    : strcmp(argv[4], "fetch") == 0  ? HOLD_FETCH
	                                     : BAD_PAGE;
	log_init("fake_hub", 0);
	if (config_load(&conf, argv[2], &d) != 0) {
		fputs(d.text ? d.text : "fake_hub: bad config\n", stderr);
		return 1;
	}
	diag_free(&d);
	go_file = argv[3];
	snprintf(url, sizeof(url), "ipc://%s/hub.sock", argv[1]);
	server = ipc_listen(loop, url, 4, on_frame, NULL);
	if (server == NULL)
		return 1;
	/* A file, looked for every 5 ms: the test needs no other channel. */
	ev_timer_init(&go, go_cb, 0.005, 0.005);
	ev_timer_start(loop, &go);
	printf("listening\n");
	fflush(stdout);
	fake_peer_run(loop);
	if (held != NULL) {
		ipc_drop(held);
		msg_writer_free(&held_answer);
	}
	ipc_server_close(server);
	config_free(&conf);
	return 0;
}
