/*
 * fake_hub: a supervisor's hub that holds a child's hello until told (not
 * a test by itself; tests/integration/signals.sh runs it). A test stops
 * the child, lets the hub answer, sends SIGTERM and lets the child go on,
 * so that the answer and the signal come in one turn of the child's loop.
 * It answers the hello with CONFIG's setup for the child's role and no
 * agents, and every later frame ok, so that a child that missed its
 * SIGTERM runs on. It prints "hello PID" when a hello comes and "answered
 * PID" once it is answered. It exits on SIGTERM, or after 60 s so that it
 * never outlives a test that lost it.
 * Usage: fake_hub RUNTIME_DIR CONFIG GO_FILE
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
/* The hello held until go_file exists. */
static struct ipc_call *held;
static struct msg_hello held_hello;

static void
reply_setup(struct ipc_call *call, const struct msg_hello *hello)
{
	struct msg_setup setup = {.role = hello->role, .conf = conf};
	struct msg_writer w;
	const char *out;
	size_t n;

	/* As the supervisor sends it: a child resolves no path itself. */
	config_resolve(conf.dir, conf.state_dir, setup.conf.state_dir,
	    sizeof(setup.conf.state_dir));
	msg_setup_encode(&w, &setup);
	out = msg_data(&w, &n);
	ipc_reply(call, out, n);
	msg_writer_free(&w);
	printf("answered %lld\n", (long long)hello->pid);
	fflush(stdout);
}

static void
on_frame(void *arg, struct ipc_call *call, const void *data, size_t len)
{
	struct msg_ctl_reply ok = {.ok = 1};
	struct msg_reader r;
	struct msg_writer w;
	const char *out;
	size_t n;

	(void)arg;
	if (msg_open(&r, data, len) != MSG_OK) {
		msg_close(&r);
		ipc_drop(call);
		return;
	}
	if (r.type == MSG_HELLO && held == NULL &&
	    msg_hello_decode(&r, &held_hello) == MSG_OK) {
		msg_close(&r);
		held = call;
		printf("hello %lld\n", (long long)held_hello.pid);
		fflush(stdout);
		return;
	}
	msg_close(&r);
	msg_ctl_reply_encode(&w, &ok);
	out = msg_data(&w, &n);
	ipc_reply(call, out, n);
	msg_writer_free(&w);
}

static void
go_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	if (held != NULL && access(go_file, F_OK) == 0) {
		reply_setup(held, &held_hello);
		held = NULL;
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

	if (argc != 4) {
		fprintf(stderr, "usage: fake_hub RUNTIME_DIR CONFIG GO_FILE\n");
		return 2;
	}
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
	if (held != NULL)
		ipc_drop(held);
	ipc_server_close(server);
	config_free(&conf);
	return 0;
}
