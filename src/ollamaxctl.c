/*
 * ollamaxctl: see and steer a running ollamax-supervisor.
 *
 *   ollamaxctl [-s SOCKET | -c FILE] [--json] COMMAND [ARG...]
 *
 * Exit codes: 0 ok, 1 the operation failed, 2 usage, 3 the supervisor
 * cannot be reached.
 */
#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cliarg.h"
#include "config.h"
#include "duration.h"
#include "log.h"
#include "msg.h"
#include "role.h"
#include "utf8.h"

static const char usage_text[] =
    "usage: ollamaxctl [-s SOCKET | -c FILE] [--json] COMMAND [ARG...]\n"
    "       ollamaxctl -V | --version\n"
    "       ollamaxctl -h | --help\n"
    "options:\n"
    "  -s, --socket=SOCKET  the supervisor's control socket\n"
    "  -c, --config=FILE    the configuration whose runtime_dir holds it\n"
    "                       (default: $OLLAMAX_CONF, else\n"
    "                       " SYSCONF_OLLAMAX "/ollamax.conf); unread\n"
    "                       with -s\n"
    "  -j, --json           print the answer as JSON\n"
    "  -w, --wait           run: wait for the answer (below)\n"
    "  -t, --timeout=DURATION\n"
    "                       run -w: wait at most DURATION (below)\n"
    "  -f FILE              spawn: the manifest file (below)\n"
    "  -h, --help           print this and exit\n"
    "  -V, --version        print the version and exit\n"
    "commands:\n"
    "  status            processes, agents and the broker\n"
    "  agents            every agent, its worker and state\n"
    "  queue             the broker's plan: models, their queues, slots\n"
    "  spawn NAME        start an agent of the agents directory\n"
    "  spawn -f FILE     start the agent a manifest file describes\n"
    "  kill NAME         stop an agent\n"
    "  restart NAME      stop an agent and start it again\n"
    "  run [-w [-t DURATION]] NAME [TEXT]\n"
    "                    run an agent once now, TEXT as its {{input}}\n"
    "                    (- reads TEXT from standard input); -w waits for\n"
    "                    the run and prints its answer, -t at most DURATION\n"
    "                    (default 30m): a run not begun by then is not\n"
    "                    carried out\n"
    "  reload            read the agents directory again\n"
    "  stop              stop the supervisor and everything it runs\n"
    "Options may also follow COMMAND, up to its NAME; what follows NAME is\n"
    "TEXT, whatever it starts with.\n";

/*
 * The line on the backend of status and queue, from their backend_state:
 * while it cannot be reached, since when, why, and what waits for it.
 */
static void
print_backend(const json_t *state, json_int_t waiting)
{
	const char *url = json_string_value(json_object_get(state, "url"));
	const char *what = json_string_value(json_object_get(state, "state"));
	const char *error = json_string_value(json_object_get(state, "error"));
	char shown[MSG_BACKEND_ERROR_MAX];

	if (url == NULL)
		return;
	printf("backend: %s ", url);
	if (what == NULL || strcmp(what, "unknown") == 0)
		printf("not reached yet\n");
	else if (strcmp(what, "unreachable") != 0)
		printf("%s\n", what);
	else
		printf("unreachable for %lld s: %s; %lld request%s\n",
		    (long long)json_integer_value(
		        json_object_get(state, "unreachable_for_s")),
		    utf8_shown(error ? error : "", shown, sizeof(shown)),
		    (long long)waiting, waiting == 1 ? " waits" : "s wait");
}

static void
print_status(const char *body)
{
	json_error_t err;
	json_t *j = json_loads(body, 0, &err), *procs, *p, *a, *b;
	size_t i;

	if (j == NULL) {
		printf("%s\n", body);
		return;
	}
	printf("supervisor pid %lld, up %llds, version %s\n",
	    (long long)json_integer_value(
	        json_object_get(json_object_get(j, "supervisor"), "pid")),
	    (long long)json_integer_value(
	        json_object_get(json_object_get(j, "supervisor"), "uptime_s")),
	    json_string_value(
	        json_object_get(json_object_get(j, "supervisor"), "version")));
	printf("\n%-11s %5s %8s %-9s %8s %9s\n", "ROLE", "INDEX", "PID",
	    "STATE", "RESTARTS", "RSS");
	procs = json_object_get(j, "processes");
	json_array_foreach(procs, i, p)
		printf("%-11s %5lld %8lld %-9s %8lld %6.1f MB\n",
		    json_string_value(json_object_get(p, "role")),
		    (long long)json_integer_value(json_object_get(p, "index")),
		    (long long)json_integer_value(json_object_get(p, "pid")),
		    json_string_value(json_object_get(p, "state")),
		    (long long)json_integer_value(
		        json_object_get(p, "restarts")),
		    (double)json_integer_value(json_object_get(p, "rss_kb")) /
		        1024.0);
	a = json_object_get(j, "agents");
	printf("\nagents: %lld total, %lld running, %lld failing, %lld "
	       "messages waiting in inboxes\n",
	    (long long)json_integer_value(json_object_get(a, "total")),
	    (long long)json_integer_value(json_object_get(a, "running")),
	    (long long)json_integer_value(json_object_get(a, "failed")),
	    (long long)json_integer_value(json_object_get(a, "inbox")));
	b = json_object_get(j, "broker");
	printf("broker: %lld of %lld slots busy, %lld queued, %lld served, "
	       "%lld failed\n",
	    (long long)json_integer_value(json_object_get(b, "busy")),
	    (long long)json_integer_value(json_object_get(b, "slots")),
	    (long long)json_integer_value(json_object_get(b, "queued")),
	    (long long)json_integer_value(json_object_get(b, "served")),
	    (long long)json_integer_value(json_object_get(b, "failed")));
	print_backend(json_object_get(b, "backend_state"),
	    json_integer_value(json_object_get(b, "queued")));
	printf("resident:");
	if (json_array_size(json_object_get(b, "resident")) == 0)
		printf(" none");
	json_array_foreach(json_object_get(b, "resident"), i, p) {
		json_t *o;
		size_t k;
		int theirs = 0;

		json_array_foreach(json_object_get(b, "outside"), k, o)
			theirs |= json_equal(o, p);
		printf(" %s%s", json_string_value(p),
		    theirs ? " (outside ollamax)" : "");
	}
	printf("\n");
	json_decref(j);
}

/*
 * Says on stderr what went wrong, as "ollamaxctl: MESSAGE", its control
 * bytes as '?': the arguments, paths and answers it names would otherwise
 * act on the terminal.
 */
static void __attribute__((format(printf, 1, 2))) complain(const char *fmt, ...)
{
	char text[8192], shown[sizeof(text)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fprintf(
	    stderr, "ollamaxctl: %s\n", utf8_shown(text, shown, sizeof(shown)));
}

static void
print_agents(const char *body)
{
	json_t *j = json_loads(body, 0, NULL), *a;
	size_t i;

	if (j == NULL) {
		printf("%s\n", body);
		return;
	}
	printf("%-48s %6s %-8s %s\n", "AGENT", "WORKER", "STATE", "MANIFEST");
	json_array_foreach(json_object_get(j, "agents"), i, a) {
		const char *path =
		    json_string_value(json_object_get(a, "manifest"));
		char shown[PATH_MAX];

		/* A file name may hold a newline: one row an agent all the
		 * same (--json has the name as it is). */
		printf("%-48s %6lld %-8s %s\n",
		    json_string_value(json_object_get(a, "name")),
		    (long long)json_integer_value(json_object_get(a, "worker")),
		    json_string_value(json_object_get(a, "state")),
		    utf8_shown(path ? path : "", shown, sizeof(shown)));
	}
	json_decref(j);
}

static void
print_queue(const char *body)
{
	json_t *j = json_loads(body, 0, NULL), *m;
	const char *next, *why;
	char reason[32] = "";
	size_t i;

	if (j == NULL) {
		printf("%s\n", body);
		return;
	}
	next = json_string_value(json_object_get(j, "next_switch"));
	why = json_string_value(json_object_get(j, "next_switch_why"));
	if (next != NULL && why != NULL)
		snprintf(reason, sizeof(reason), " (%s)", why);
	printf("slots: %lld of %lld busy; %lld waiting; %lld loads, %lld "
	       "unloads so far; next switch: %s%s\n",
	    (long long)json_integer_value(json_object_get(j, "busy")),
	    (long long)json_integer_value(json_object_get(j, "slots")),
	    (long long)json_integer_value(json_object_get(j, "waiting")),
	    (long long)json_integer_value(json_object_get(j, "loads")),
	    (long long)json_integer_value(json_object_get(j, "unloads")),
	    next ? next : "none", reason);
	printf("offered load: %.2f%s\n",
	    json_number_value(json_object_get(j, "offered_load")),
	    json_is_true(json_object_get(j, "overloaded")) ? ", overloaded"
	                                                   : "");
	print_backend(json_object_get(j, "backend_state"),
	    json_integer_value(json_object_get(j, "waiting")));
	printf("\n");
	printf("%-32s %-9s %7s %7s %7s %11s %5s\n", "MODEL", "STATE", "VRAM_MB",
	    "RUNNING", "WAITING", "OLDEST_WAIT", "LOADS");
	json_array_foreach(json_object_get(j, "models"), i, m)
		printf("%-32s %-9s %7lld %7lld %7lld %10.1fs %5lld%s\n",
		    json_string_value(json_object_get(m, "name")),
		    json_string_value(json_object_get(m, "state")),
		    (long long)json_integer_value(
		        json_object_get(m, "vram_mb")),
		    (long long)json_integer_value(
		        json_object_get(m, "in_flight")),
		    (long long)json_integer_value(
		        json_object_get(m, "waiting")),
		    (double)json_integer_value(
		        json_object_get(m, "oldest_wait_ms")) /
		        1000.0,
		    (long long)json_integer_value(json_object_get(m, "loads")),
		    json_is_true(json_object_get(m, "pinned")) ? " pinned"
		                                               : "");
	json_decref(j);
}

/* The answer of a waited run; 1 when the run failed all the same (its
 * output could not take the answer), said on stderr. */
static int
print_answer(const char *body, int json)
{
	json_t *j = json_loads(body, 0, NULL);
	const char *answer = json_string_value(json_object_get(j, "answer"));
	const char *lost =
	    json_string_value(json_object_get(j, "output_error"));

	printf("%s\n", json || answer == NULL ? body : answer);
	if (lost != NULL)
		complain("run: the answer was not written to the "
		         "agent's output (%s): the run failed",
		    lost);
	json_decref(j);
	return lost != NULL;
}

static void
print_summary(const char *body)
{
	json_t *j = json_loads(body, 0, NULL);

	printf("%s\n",
	    json_string_value(json_object_get(j, "summary"))
	        ? json_string_value(json_object_get(j, "summary"))
	        : body);
	json_decref(j);
}

/*
 * Text a frame could not carry as it is, or Ollama read, said so (`what`
 * is it) with its byte: frames are UTF-8, and would carry a bad byte as
 * '?', which the supervisor would only call no such agent or file.
 */
static int
text_problem(const char *what, const char *text, size_t len)
{
	const char *nul = memchr(text, '\0', len);
	long bad = utf8_invalid_at(text, len);

	if (nul != NULL)
		complain("%s has a NUL byte at offset %zu", what,
		    (size_t)(nul - text));
	else if (bad >= 0)
		complain("%s is not UTF-8 text: byte 0x%02X at offset "
		         "%ld",
		    what, (unsigned char)text[bad], bad);
	return nul != NULL || bad >= 0 ? -1 : 0;
}

/* run NAME -: the input from standard input, up to what a frame holds. */
static char *
read_input(void)
{
	size_t cap = MSG_MAX_TEXT + 1, len = 0, n;
	char *text = malloc(cap);

	if (text == NULL)
		return NULL;
	while (len < cap && (n = fread(text + len, 1, cap - len, stdin)) > 0)
		len += n;
	if (ferror(stdin) || len == cap) {
		complain("run: %s",
		    ferror(stdin) ? strerror(errno)
		                  : "the input is over 256 KiB");
		free(text);
		return NULL;
	}
	text[len] = '\0';
	if (text_problem("run: the input", text, len) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* A command line it cannot follow: what is wrong, then the usage. */
static int __attribute__((format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	char text[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	complain("%s", text);
	fputs(usage_text, stderr);
	return 2;
}

/* given: the path came with -s. */
static void
unreachable(const char *ctl_path, int given)
{
	struct stat st;
	size_t len = strlen(ctl_path);
	pid_t holder = ctl_lock_holder(ctl_path);

	complain("no supervisor answers on %s", ctl_path);
	/* Its socket removed, or -s naming a socket nobody listens on. */
	if (holder > 0)
		complain("process %d holds the supervisor's lock beside "
		         "it, but does not answer there",
		    (int)holder);
	/* The runtime dir is the likely mix-up for the socket in it. */
	if (given && stat(ctl_path, &st) != 0 && errno == ENOENT) {
		complain("%s: no such file", ctl_path);
	} else if (given && stat(ctl_path, &st) == 0 && S_ISDIR(st.st_mode)) {
		while (len > 0 && ctl_path[len - 1] == '/')
			len--;
		complain("%s is a directory: -s takes the control "
		         "socket's path, such as %.*s/ctl.sock",
		    ctl_path, (int)len, ctl_path);
	}
}

/* The commands, by what follows them (spawn -f FILE is sent as
 * spawn-file, a name no one types). */
static int
takes_no_name(const char *verb)
{
	return strcmp(verb, "status") == 0 || strcmp(verb, "stop") == 0 ||
	    strcmp(verb, "reload") == 0 || strcmp(verb, "agents") == 0 ||
	    strcmp(verb, "queue") == 0;
}

static int
takes_a_name(const char *verb)
{
	return strcmp(verb, "spawn") == 0 || strcmp(verb, "kill") == 0 ||
	    strcmp(verb, "restart") == 0 || strcmp(verb, "run") == 0;
}

/* Where a command that may have been carried out shows whether it was. */
static const char *
where_told(const char *verb)
{
	if (strcmp(verb, "run") == 0)
		return " (a run's answer goes to the agent's output)";
	if (strcmp(verb, "spawn") == 0 || strcmp(verb, "spawn-file") == 0 ||
	    strcmp(verb, "kill") == 0 || strcmp(verb, "reload") == 0)
		return " (ollamaxctl agents tells)";
	if (strcmp(verb, "restart") == 0)
		return " (the supervisor's log tells)";
	return "";
}

struct options {
	const char *sock, *conf, *manifest, *timeout_text;
	int json, wait;
};

/*
 * Reads options up to the first operand: called for those before the
 * command, then for the command's own. What follows a command's first
 * operand is text, whatever it starts with. Returns -1 when done, or the
 * exit status.
 */
static int
read_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"config", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {"wait", no_argument, NULL, 'w'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	char why[256];
	int opt;

	/* 0 starts glibc's getopt afresh, for the second call. */
	optind = 0;
	while ((opt = cliarg_getopt(argc, argv, "+:s:c:f:jwt:hV", longopts, why,
	            sizeof(why))) != -1) {
		switch (opt) {
		case 's':
			o->sock = optarg;
			break;
		case 'c':
			o->conf = optarg;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'f':
			o->manifest = optarg;
			break;
		case 'w':
			o->wait = 1;
			break;
		case 't':
			o->timeout_text = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("ollamaxctl %s\n", PACKAGE_VERSION);
			return 0;
		default:
			return usage_error("%s", why);
		}
	}
	return -1;
}

int
main(int argc, char **argv)
{
	struct options o = {0};
	const char *verb, *arg = NULL, *input = NULL;
	char *stdin_text = NULL, **operands;
	struct msg_ctl_reply reply;
	char ctl_path[PATH_MAX + 16], file[PATH_MAX];
	int rc, timeout_ms, first, nops;
	pid_t pid;

	log_init("ollamaxctl", 0);
	if ((rc = read_options(argc, argv, &o)) >= 0)
		return rc;
	if (optind >= argc)
		return usage_error("a command is missing");
	first = optind;
	verb = argv[first];
	/* The command stands in for argv[0]. */
	if ((rc = read_options(argc - first, argv + first, &o)) >= 0)
		return rc;
	operands = argv + first + optind;
	nops = argc - first - optind;
	/* "--" after the name, as other tools take it: the text follows. */
	if (nops >= 2 && strcmp(operands[1], "--") == 0) {
		operands[1] = operands[0];
		operands++;
		nops--;
	}
	/* The command first: what is wrong with its arguments depends on it. */
	if (!takes_no_name(verb) && !takes_a_name(verb)) {
		complain("unknown command \"%s\"", verb);
		fputs(usage_text, stderr);
		return 2;
	}
	if (nops > (strcmp(verb, "run") == 0 ? 2 : 1))
		return usage_error("%s: too many arguments, from \"%.40s\"",
		    verb, operands[strcmp(verb, "run") == 0 ? 2 : 1]);
	if (nops >= 1)
		arg = operands[0];
	if (nops == 2)
		input = operands[1];
	if (o.manifest != NULL) {
		if (strcmp(verb, "spawn") != 0 || arg != NULL)
			return usage_error(
			    "-f FILE goes with spawn, and takes no agent name");
		/* The supervisor and workers read it: give them a full path. */
		if (realpath(o.manifest, file) == NULL) {
			complain(
			    "spawn -f %s: %s", o.manifest, strerror(errno));
			return 1;
		}
		if (text_problem("spawn -f: the manifest's path", file,
		        strlen(file)) != 0)
			return 1;
		verb = "spawn-file";
		arg = file;
	} else if (takes_no_name(verb)) {
		if (arg != NULL)
			return usage_error("%s takes no argument", verb);
	} else if (arg == NULL) {
		complain("%s needs an agent name", verb);
		return 2;
	} else {
		char what[64], fault[160];

		snprintf(what, sizeof(what), "%s: the agent name", verb);
		if (text_problem(what, arg, strlen(arg)) != 0)
			return 2;
		/* No agent has such a name: said here, not by the
		 * supervisor after a walk of the agents directory. */
		if (config_name_fault(arg, fault, sizeof(fault)) != 0) {
			complain("%s \"%s\": not an agent's name: %s", verb,
			    arg, fault);
			return 2;
		}
	}
	if (o.sock != NULL) {
		if (o.sock[0] == '\0')
			return usage_error(
			    "-s needs the control socket's path");
		snprintf(ctl_path, sizeof(ctl_path), "%s", o.sock);
	} else {
		struct diag d = {0};
		char runtime[PATH_MAX];

		if (config_ctl_runtime_dir(
		        o.conf, runtime, sizeof(runtime), &d) != 0) {
			fputs(d.text, stderr);
			complain("%s is not valid: nothing sent (-s "
			         "SOCKET reaches a supervisor without it)",
			    config_default_path(o.conf));
			diag_free(&d);
			return 2;
		}
		diag_free(&d);
		snprintf(ctl_path, sizeof(ctl_path), "%s/ctl.sock", runtime);
	}
	if (o.wait && strcmp(verb, "run") != 0)
		return usage_error("-w goes with run only");
	if (o.timeout_text != NULL && !o.wait)
		return usage_error("-t goes with run -w only");
	/* A waited run may queue behind cold loads and long answers. */
	timeout_ms = o.wait ? CTL_RUN_WAIT_MS + CTL_CLIENT_MARGIN_MS
	                    : CTL_WORKER_MS + CTL_CLIENT_MARGIN_MS;
	if (o.timeout_text != NULL) {
		char err[200];
		int64_t ns;

		if (duration_parse(o.timeout_text, &ns, err, sizeof(err)) != 0)
			return usage_error("-t %s: %s", o.timeout_text, err);
		if (ns <= 0)
			return usage_error(
			    "-t %s: the wait must be longer than 0",
			    o.timeout_text);
		/* The supervisor itself waits no longer for a run. */
		if (ns / 1000000 > CTL_RUN_WAIT_MS)
			return usage_error("-t %s: longer than the %dm a "
			                   "waited run may take",
			    o.timeout_text, CTL_RUN_WAIT_MS / 60000);
		timeout_ms = ns < 1000000 ? 1 : (int)(ns / 1000000);
	}
	/* A unix socket's path fits in sun_path, or it cannot be reached. */
	if (strlen(ctl_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		complain("%.60s...: longer than the %zu bytes of a "
		         "socket's path",
		    ctl_path, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return 3;
	}
	if (input != NULL && strcmp(input, "-") == 0) {
		if ((stdin_text = read_input()) == NULL)
			return 1;
		input = stdin_text;
	} else if (input != NULL &&
	    text_problem("run: the input", input, strlen(input)) != 0) {
		return 1;
	}
	if (strcmp(verb, "stop") == 0) {
		/* The path, and what answered there. */
		char why[PATH_MAX + 2048];

		rc = ctl_stop_and_wait(ctl_path, &pid, why, sizeof(why));
		if (rc == 3 && why[0] != '\0')
			complain("%s", why);
		else if (rc == 3)
			unreachable(ctl_path, o.sock != NULL);
		else if (rc == 1)
			complain("supervisor %d is still running", (int)pid);
		else if (o.json)
			printf("{\"stopped\":%d}\n", (int)pid);
		return rc;
	}
	rc = ctl_call(ctl_path, verb, arg, input,
	    (o.json ? CTL_JSON : 0) | (o.wait ? CTL_WAIT : 0), timeout_ms,
	    &reply);
	free(stdin_text);
	if ((rc == CTL_UNANSWERED || rc == CTL_UNSENT) && o.wait) {
		char waited[32];

		if (o.timeout_text != NULL)
			snprintf(
			    waited, sizeof(waited), "%.24s", o.timeout_text);
		else
			snprintf(waited, sizeof(waited), "%dm",
			    CTL_RUN_WAIT_MS / 60000);
		if (rc == CTL_UNSENT)
			complain("run: no connection made to %s within %s: "
			         "nothing was sent",
			    ctl_path, waited);
		else
			complain("run: no answer within %s: a run begun by "
			         "then goes on to the agent's output, one not "
			         "begun is not carried out",
			    waited);
		return 1;
	}
	if (rc == CTL_UNANSWERED) {
		complain("the supervisor on %s took %s but did not "
		         "answer within %d s",
		    ctl_path, verb, timeout_ms / 1000);
		return 3;
	}
	if (rc == CTL_CUT) {
		complain("the connection to the supervisor on %s closed "
		         "after %s was sent: it may have been carried out%s",
		    ctl_path, verb, where_told(verb));
		return o.wait ? 1 : 3;
	}
	if (rc == CTL_NOT_SUPERVISOR) {
		complain("what answers on %s is not a supervisor%s%s", ctl_path,
		    reply.error[0] ? ": " : "", reply.error);
		return 3;
	}
	if (rc == CTL_OTHER_USER) {
		complain("%s", reply.error);
		return 3;
	}
	if (rc != 0) {
		unreachable(ctl_path, o.sock != NULL);
		return 3;
	}
	if (!reply.ok) {
		complain("%s: %s", verb, reply.error);
		msg_ctl_reply_free(&reply);
		return 1;
	}
	if (reply.body != NULL) {
		if (strcmp(verb, "run") == 0)
			rc = print_answer(reply.body, o.json);
		else if (o.json)
			printf("%s\n", reply.body);
		else if (strcmp(verb, "status") == 0)
			print_status(reply.body);
		else if (strcmp(verb, "agents") == 0)
			print_agents(reply.body);
		else if (strcmp(verb, "queue") == 0)
			print_queue(reply.body);
		else
			print_summary(reply.body);
	} else if (o.json) {
		printf("{\"ok\":true}\n");
	}
	msg_ctl_reply_free(&reply);
	/* What was done is told, or the exit says it was not. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		complain("standard output: %s", strerror(errno));
		return 1;
	}
	return rc;
}
