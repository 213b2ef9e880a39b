/*
 * role.c: what every child of the supervisor does first: name itself, set
 * its process title, say hello on the hub, and stop on SIGTERM.
 */
#include "autoconf.h"

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "proc.h"
#include "role.h"

static void
hub_reply(void *arg, int err, const void *data, size_t len)
{
	struct hub_link *h = arg;
	struct msg_reader r;
	struct msg_ctl_reply ack;

	if (err != 0) {
		log_warnx("hub: hello not answered: %s", ipc_strerror(err));
		ev_break(h->loop, EVBREAK_ALL);
		return;
	}
	if (msg_open(&r, data, len) != MSG_OK ||
	    msg_ctl_reply_decode(&r, &ack) != MSG_OK || !ack.ok) {
		log_warnx("hub: hello refused (%s)", r.detail);
		msg_close(&r);
		ev_break(h->loop, EVBREAK_ALL);
		return;
	}
	msg_ctl_reply_free(&ack);
	msg_close(&r);
	h->said_hello = 1;
	log_debug("hub: hello answered");
}

int
hub_hello(struct hub_link *h, struct ev_loop *loop, const char *runtime,
    int role, int index)
{
	struct msg_hello hello = {
	    .role = role, .index = index, .pid = getpid()};
	struct msg_writer w;
	char url[4200];
	const char *data;
	size_t len;
	int rv;

	memset(h, 0, sizeof(*h));
	h->loop = loop;
	h->role = role;
	h->index = index;
	snprintf(url, sizeof(url), "ipc://%s/hub.sock", runtime);
	h->client = ipc_dial(loop, url);
	if (h->client == NULL)
		return -1;
	msg_hello_encode(&w, &hello);
	data = msg_data(&w, &len);
	rv = ipc_request(h->client, data, len, 10000, hub_reply, h);
	msg_writer_free(&w);
	return rv == 0 ? 0 : -1;
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
	ev_break(loop, EVBREAK_ALL);
}

int
role_main(int argc, char **argv, const char *role, int index,
    const char *runtime, const char *conf, role_fn fn)
{
	static char name[64], title[64], role_s[16], runtime_s[PATH_MAX],
	    conf_s[PATH_MAX];
	struct ev_loop *loop = EV_DEFAULT;
	ev_signal sigterm, sigint;
	int rc;

	/* The title overwrites argv, where these strings live: copy them. */
	snprintf(role_s, sizeof(role_s), "%s", role);
	snprintf(runtime_s, sizeof(runtime_s), "%s", runtime);
	snprintf(conf_s, sizeof(conf_s), "%s", conf);
	role = role_s;
	runtime = runtime_s;
	conf = conf_s;
	snprintf(name, sizeof(name), "ollamax-%s%d", role, index);
	snprintf(title, sizeof(title), "ollamax: %s %d", role, index);
	/* Under --daemon the supervisor's children log to syslog too. */
	log_init(name, getenv("OLLAMAX_SYSLOG") != NULL);
	proc_set_title(argc, argv, title);
	signal(SIGPIPE, SIG_IGN);
	/* The supervisor stops children with SIGTERM; ^C reaches them too. */
	ev_signal_init(&sigterm, stop_cb, SIGTERM);
	ev_signal_start(loop, &sigterm);
	ev_signal_init(&sigint, stop_cb, SIGINT);
	ev_signal_start(loop, &sigint);
	rc = fn(loop, runtime, conf, index);
	return rc;
}

int
role_program(int argc, char **argv, const char *role, role_fn fn)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"index", required_argument, NULL, 'i'},
	    {"runtime", required_argument, NULL, 'R'},
	    {"role", required_argument, NULL, 'r'},
	    {NULL, 0, NULL, 0},
	};
	const char *conf = NULL, *runtime = NULL;
	int opt, index = 0;

	log_init(role, 0);
	log_level_from_env();
	while ((opt = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			conf = optarg;
			break;
		case 'i':
			index = atoi(optarg);
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
	if (conf == NULL || runtime == NULL || optind != argc)
		goto usage;
	return role_main(argc, argv, role, index, runtime, conf, fn);
usage:
	fprintf(stderr,
	    "usage: ollamax-%s --index N --runtime DIR -c FILE\n"
	    "(started by ollamax-supervisor, not by hand)\n",
	    role);
	return 2;
}
