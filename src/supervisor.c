/*
 * supervisor.c: ollamax-supervisor, the parent of every ollamax process.
 *
 *   ollamax-supervisor [-c FILE] check     judge the config and every manifest
 *   ollamax-supervisor [-c FILE] start     run (foreground; --daemon detaches)
 *   ollamax-supervisor [-c FILE] stop      ask the running one to stop
 *
 * The supervisor forks and execs one broker and W workers (this same
 * program with --role); each reads the config, starts serving and says
 * hello on the hub socket, which makes it ready. A child that dies is
 * restarted with backoff, and left FAILED after a restart storm.
 * ollamaxctl talks to the supervisor on ctl.sock.
 *
 * Exit codes: 0 ok, 1 the operation failed, 2 usage, 3 (stop) no
 * supervisor answers.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>

#include "config.h"
#include "ipc.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "role.h"

struct child {
	int role; /* enum msg_role */
	int index;
	pid_t pid;
	enum proc_state state;
	struct restart_state restart;
	ev_timer restart_timer;
	struct supervisor *sup;
	struct msg_report report; /* its latest counters */
};

/* Where an agent lives: the workers run what the supervisor places. */
struct placement {
	char name[CONFIG_NAME_MAX + 1];
	char path[PATH_MAX];
	int worker;
	int alive;
	int from_dir;          /* a manifest of the agents directory */
	struct timespec mtime; /* of the manifest when it was started */
	off_t size;
};

struct supervisor {
	struct ev_loop *loop;
	struct placement *placed;
	size_t nplaced;
	struct ipc_client **workers; /* command links, by worker index */
	char self_path[PATH_MAX];    /* this program, for the workers */
	char broker_path[PATH_MAX];  /* ollamax-broker */
	char conf_path[PATH_MAX];
	struct config conf;
	struct fleet fleet;
	char runtime[PATH_MAX];
	char ctl_url[PATH_MAX + 32];
	char hub_url[PATH_MAX + 32];
	struct ipc_server *ctl;
	struct ipc_server *hub;
	struct child *children;
	int nchildren;
	int64_t start_ms;
	int ready_fd; /* --daemon: the waiting parent's pipe, else -1 */
	int announced_ready;
	int stopping;
	ev_signal sigterm, sigint, sighup;
	ev_child sigchld;
	ev_timer stop_deadline;
	uint64_t bad_frames;
};

static const struct restart_policy restart_policy = {
    .base_ms = 100,
    .max_ms = 5000,
    .reset_ms = 30000,
    .intensity = 5,
    .period_ms = 60000,
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
role_name(int role)
{
	return role == ROLE_BROKER ? "broker" : "worker";
}

/* ------------------------------------------------------------------ */
/* Runtime directory                                                  */
/* ------------------------------------------------------------------ */

/*
 * Is a supervisor already answering on this control socket? Asked with a
 * real request: nng 1.5's listener can stall after a bare connect and
 * hang-up, so nothing here may knock without speaking.
 */
static int
already_running(const char *runtime)
{
	struct msg_ctl_reply reply;

	if (ctl_call(runtime, "status", NULL, 0, 1000, &reply) != 0)
		return 0;
	msg_ctl_reply_free(&reply);
	return 1;
}

static int
prepare_runtime(struct supervisor *s)
{
	struct stat st;
	char path[PATH_MAX + 16];

	if (mkdir(s->runtime, 0700) != 0 && errno != EEXIST) {
		log_warn("cannot create the runtime dir %s", s->runtime);
		return -1;
	}
	if (lstat(s->runtime, &st) != 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != getuid()) {
		log_warnx("runtime dir %s is not a directory owned by uid %u",
		    s->runtime, (unsigned)getuid());
		return -1;
	}
	/* Private: sockets inside are 0600 too, peers checked by uid. */
	if ((st.st_mode & 0777) != 0700 && chmod(s->runtime, 0700) != 0) {
		log_warn("chmod %s", s->runtime);
		return -1;
	}
	if (already_running(s->runtime)) {
		log_warnx("a supervisor is already running on %s/ctl.sock",
		    s->runtime);
		return -1;
	}
	/* Sockets left by a supervisor that died: nobody answers on them. */
	snprintf(path, sizeof(path), "%s/ctl.sock", s->runtime);
	unlink(path);
	snprintf(path, sizeof(path), "%s/hub.sock", s->runtime);
	unlink(path);
	snprintf(path, sizeof(path), "%s/broker.sock", s->runtime);
	unlink(path);
	snprintf(
	    s->ctl_url, sizeof(s->ctl_url), "ipc://%s/ctl.sock", s->runtime);
	snprintf(
	    s->hub_url, sizeof(s->hub_url), "ipc://%s/hub.sock", s->runtime);
	return 0;
}

static void
remove_runtime(struct supervisor *s)
{
	static const char *const files[] = {
	    "ctl.sock", "hub.sock", "broker.sock", "supervisor.pid"};
	char path[PATH_MAX + 32];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", s->runtime, files[i]);
		unlink(path);
	}
	/* Each worker's command socket. */
	for (int k = 0; k < s->nchildren; k++) {
		snprintf(
		    path, sizeof(path), "%s/worker-%d.sock", s->runtime, k);
		unlink(path);
	}
	if (rmdir(s->runtime) != 0 && errno != ENOENT)
		log_warn("cannot remove %s", s->runtime);
}

/* ------------------------------------------------------------------ */
/* Children                                                           */
/* ------------------------------------------------------------------ */

static void
child_start(struct child *c)
{
	struct supervisor *s = c->sup;
	char index[16];
	const char *path =
	    c->role == ROLE_BROKER ? s->broker_path : s->self_path;
	char *argv[] = {(char *)path, "--role", (char *)role_name(c->role),
	    "--index", index, "--runtime", s->runtime, "-c", s->conf_path,
	    NULL};

	snprintf(index, sizeof(index), "%d", c->index);
	c->pid = proc_spawn(path, argv);
	if (c->pid < 0) {
		log_warn("cannot start %s %d", role_name(c->role), c->index);
		c->state = PROC_FAILED;
		return;
	}
	c->state = PROC_STARTING;
	memset(&c->report, 0, sizeof(c->report));
	c->restart.started_ms = now_ms();
	log_debug(
	    "started %s %d, pid %d", role_name(c->role), c->index, (int)c->pid);
}

static void
restart_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct child *c = w->data;

	(void)loop;
	(void)revents;
	if (!c->sup->stopping)
		child_start(c);
}

static int
all_children_gone(const struct supervisor *s)
{
	for (int i = 0; i < s->nchildren; i++)
		if (s->children[i].pid > 0)
			return 0;
	return 1;
}

static void
sigchld_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct supervisor *s = w->data;
	struct child *c = NULL;
	int status = w->rstatus;
	int64_t delay;

	(void)revents;
	for (int i = 0; i < s->nchildren; i++)
		if (s->children[i].pid == w->rpid)
			c = &s->children[i];
	if (c == NULL)
		return;
	c->pid = 0;
	/* A dead child's counters are no longer true. */
	memset(&c->report, 0, sizeof(c->report));
	if (s->stopping) {
		c->state = PROC_STOPPING;
		if (all_children_gone(s))
			ev_break(loop, EVBREAK_ALL);
		return;
	}
	if (WIFSIGNALED(status))
		log_warnx("%s %d died of signal %d", role_name(c->role),
		    c->index, WTERMSIG(status));
	else
		log_warnx("%s %d exited with status %d", role_name(c->role),
		    c->index, WEXITSTATUS(status));
	delay = restart_after_crash(&restart_policy, &c->restart, now_ms());
	if (delay < 0) {
		c->state = PROC_FAILED;
		log_warnx("%s %d crashed %d times within %llds: left FAILED",
		    role_name(c->role), c->index, restart_policy.intensity + 1,
		    (long long)restart_policy.period_ms / 1000);
		return;
	}
	c->state = PROC_BACKOFF;
	ev_timer_set(&c->restart_timer, (double)delay / 1000.0, 0);
	ev_timer_start(loop, &c->restart_timer);
}

/* Tells systemd (Type=notify) that the service is up. */
static void
notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, strlen(path));
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0'; /* an abstract socket */
	len =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa, len) < 0)
		log_warn("sd_notify");
	close(fd);
}

static void
check_all_ready(struct supervisor *s)
{
	for (int i = 0; i < s->nchildren; i++)
		if (s->children[i].state != PROC_RUNNING)
			return;
	if (s->announced_ready)
		return;
	s->announced_ready = 1;
	log_info("ready: broker and %d workers in %lld ms, %zu agents",
	    s->nchildren - 1, (long long)(now_ms() - s->start_ms),
	    s->fleet.count);
	notify_ready();
	if (s->ready_fd >= 0) {
		/* The parent of --daemon exits 0 once it reads this. */
		if (write(s->ready_fd, "ready\n", 6) != 6)
			log_warn("cannot tell the starting process");
		close(s->ready_fd);
		s->ready_fd = -1;
	}
}

/* hub.sock: children say hello once they serve, then report. */
static void
hub_request(void *arg, struct ipc_call *call, const void *data, size_t len)
{
	struct supervisor *s = arg;
	struct msg_reader r;
	struct msg_hello hello;
	struct msg_writer w;
	struct msg_ctl_reply ack = {.ok = 1};
	const char *out;
	size_t outlen;

	if (msg_open(&r, data, len) != MSG_OK ||
	    (r.type != MSG_HELLO && r.type != MSG_REPORT)) {
		s->bad_frames++;
		log_warnx("hub: bad frame (%s: %s)", msg_error_name(r.error),
		    r.detail);
		msg_close(&r);
		ipc_drop(call);
		return;
	}
	if (r.type == MSG_HELLO) {
		if (msg_hello_decode(&r, &hello) != MSG_OK) {
			s->bad_frames++;
			log_warnx("hub: bad hello (%s)", r.detail);
			msg_close(&r);
			ipc_drop(call);
			return;
		}
		for (int i = 0; i < s->nchildren; i++) {
			struct child *c = &s->children[i];

			/* The pid names the child: a stale hello is ignored. */
			if (c->role == hello.role && c->index == hello.index &&
			    c->pid == (pid_t)hello.pid) {
				c->state = PROC_RUNNING;
				log_debug("%s %d is ready", role_name(c->role),
				    c->index);
			}
		}
		check_all_ready(s);
	} else if (r.type == MSG_REPORT) {
		struct msg_report rep;

		if (msg_report_decode(&r, &rep) != MSG_OK) {
			s->bad_frames++;
			log_warnx("hub: bad report (%s)", r.detail);
			msg_close(&r);
			ipc_drop(call);
			return;
		}
		for (int i = 0; i < s->nchildren; i++) {
			struct child *c = &s->children[i];

			if (c->role == rep.role && c->index == rep.index &&
			    c->pid == (pid_t)rep.pid)
				c->report = rep;
		}
	}
	msg_close(&r);
	msg_ctl_reply_encode(&w, &ack);
	out = msg_data(&w, &outlen);
	ipc_reply(call, out, outlen);
	msg_writer_free(&w);
}

/* ------------------------------------------------------------------ */
/* Control                                                            */
/* ------------------------------------------------------------------ */

static long
rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fp = fopen(path, "r");
	if (fp == NULL)
		return 0;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(fp);
	return kb;
}

static size_t
placed_alive(const struct supervisor *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->nplaced; i++)
		n += s->placed[i].alive != 0;
	return n;
}

static json_t *
status_json(struct supervisor *s)
{
	json_t *procs = json_array(), *tiers = json_object();
	int64_t running = 0, failing = 0, bad = (int64_t)s->bad_frames;
	const struct msg_report *broker = NULL;

	json_array_append_new(procs,
	    json_pack("{s:s,s:i,s:i,s:s,s:i,s:I}", "role", "supervisor",
	        "index", 0, "pid", (int)getpid(), "state", "running",
	        "restarts", 0, "rss_kb", (json_int_t)rss_kb(getpid())));
	for (int i = 0; i < s->nchildren; i++) {
		struct child *c = &s->children[i];

		json_array_append_new(procs,
		    json_pack("{s:s,s:i,s:i,s:s,s:i,s:I}", "role",
		        role_name(c->role), "index", c->index, "pid",
		        (int)c->pid, "state", proc_state_name(c->state),
		        "restarts", c->restart.restarts, "rss_kb",
		        (json_int_t)(c->pid > 0 ? rss_kb(c->pid) : 0)));
		/* Counters come from each child's latest report. */
		if (c->role == ROLE_BROKER)
			broker = &c->report;
		running += c->report.agents;
		failing += c->report.agents_failing;
		bad += c->report.bad_frames;
	}
	for (size_t i = 0; i < s->conf.ntiers; i++)
		json_object_set_new(tiers, s->conf.tiers[i].name,
		    json_string(s->conf.tiers[i].model));
	return json_pack("{s:{s:i,s:I,s:s,s:s,s:I},s:o,s:{s:I,s:I,s:I},"
	                 "s:{s:I,s:I,s:I,s:I,s:I,s:s,s:o}}",
	    "supervisor", "pid", (int)getpid(), "uptime_s",
	    (json_int_t)((now_ms() - s->start_ms) / 1000), "version",
	    PACKAGE_VERSION, "runtime_dir", s->runtime, "bad_frames",
	    (json_int_t)bad, "processes", procs, "agents", "total",
	    (json_int_t)placed_alive(s), "running", (json_int_t)running,
	    "failed", (json_int_t)failing, "broker", "slots",
	    (json_int_t)s->conf.parallel, "busy",
	    (json_int_t)(broker ? broker->busy : 0), "queued",
	    (json_int_t)(broker ? broker->queued : 0), "served",
	    (json_int_t)(broker ? broker->served : 0), "failed",
	    (json_int_t)(broker ? broker->failed : 0), "backend",
	    s->conf.backend_url, "tiers", tiers);
}

static void begin_stop(struct supervisor *s, const char *why);

/* Remembers the manifest as started, so that a reload sees changes. */
static void
placement_stat(struct placement *p)
{
	struct stat st;

	if (stat(p->path, &st) == 0) {
		p->mtime = st.st_mtim;
		p->size = st.st_size;
	}
}

static int
placement_changed(const struct placement *p)
{
	struct stat st;

	if (stat(p->path, &st) != 0)
		return 1;
	return st.st_size != p->size || st.st_mtim.tv_sec != p->mtime.tv_sec ||
	    st.st_mtim.tv_nsec != p->mtime.tv_nsec;
}

static struct placement *
placement_find(struct supervisor *s, const char *name)
{
	for (size_t i = 0; i < s->nplaced; i++)
		if (strcmp(s->placed[i].name, name) == 0)
			return &s->placed[i];
	return NULL;
}

/* The worker with the fewest live agents takes a new one. */
static int
least_loaded_worker(struct supervisor *s)
{
	int nworkers = s->nchildren - 1, best = 0;
	size_t *count = calloc((size_t)nworkers, sizeof(size_t));

	if (count == NULL)
		fatal("out of memory");
	for (size_t i = 0; i < s->nplaced; i++)
		if (s->placed[i].alive)
			count[s->placed[i].worker]++;
	for (int w = 1; w < nworkers; w++)
		if (count[w] < count[best])
			best = w;
	free(count);
	return best;
}

struct agent_command {
	struct supervisor *s;
	struct ipc_call *call;
	char verb[32];
	char name[CONFIG_NAME_MAX + 1];
	char path[PATH_MAX];
	int worker;
};

static void
reply_ctl(struct ipc_call *call, int ok, const char *error)
{
	struct msg_ctl_reply reply = {.ok = ok};
	struct msg_writer w;
	const char *out;
	size_t len;

	/* A reload's commands have nobody waiting: the log hears of them. */
	if (call == NULL) {
		if (!ok)
			log_warnx("reload: %s", error ? error : "failed");
		return;
	}
	snprintf(reply.error, sizeof(reply.error), "%s", error ? error : "");
	msg_ctl_reply_encode(&w, &reply);
	out = msg_data(&w, &len);
	ipc_reply(call, out, len);
	msg_writer_free(&w);
}

/* The worker's answer to spawn, kill or restart goes back to ollamaxctl. */
static void
agent_command_done(void *arg, int err, const void *data, size_t len)
{
	struct agent_command *ac = arg;
	struct supervisor *s = ac->s;
	struct msg_reader r;
	struct msg_ctl_reply rep;
	char why[300];

	if (err != 0) {
		snprintf(why, sizeof(why), "worker %d did not answer: %s",
		    ac->worker, ipc_strerror(err));
		reply_ctl(ac->call, 0, why);
	} else if (msg_open(&r, data, len) != MSG_OK ||
	    msg_ctl_reply_decode(&r, &rep) != MSG_OK) {
		s->bad_frames++;
		reply_ctl(ac->call, 0, "bad answer from the worker");
		msg_close(&r);
	} else {
		if (rep.ok) {
			struct placement *p = placement_find(s, ac->name);

			if (p == NULL) {
				s->placed = realloc(s->placed,
				    (s->nplaced + 1) * sizeof(*s->placed));
				if (s->placed == NULL)
					fatal("out of memory");
				p = &s->placed[s->nplaced++];
				memset(p, 0, sizeof(*p));
				snprintf(
				    p->name, sizeof(p->name), "%s", ac->name);
			}
			snprintf(p->path, sizeof(p->path), "%s", ac->path);
			p->worker = ac->worker;
			p->alive = strcmp(ac->verb, "kill") != 0;
			placement_stat(p);
			log_info("%s %s on worker %d", ac->verb, ac->name,
			    ac->worker);
		}
		reply_ctl(ac->call, rep.ok, rep.error);
		msg_ctl_reply_free(&rep);
		msg_close(&r);
	}
	free(ac);
}

/*
 * spawn NAME (a manifest of the agents directory), spawn-file PATH, kill
 * NAME, restart NAME: placed by the supervisor, carried out by a worker.
 * Returns 0 when the call will be answered later, -1 with why set.
 */
static int
agent_command(struct supervisor *s, struct ipc_call *call, const char *verb,
    const char *arg, char *why, size_t whylen)
{
	struct agent_command *ac;
	struct msg_ctl cmd = {0};
	struct msg_writer w;
	struct placement *p;
	const char *data;
	size_t len;

	ac = calloc(1, sizeof(*ac));
	if (ac == NULL)
		fatal("out of memory");
	ac->s = s;
	ac->call = call;
	if (strcmp(verb, "spawn-file") == 0 || strcmp(verb, "respawn") == 0) {
		struct manifest m;
		struct diag d = {0};

		if (manifest_load(&m, arg, &d) > 0 ||
		    config_tier(&s->conf, m.tier) == NULL) {
			snprintf(why, whylen, "%s",
			    d.text ? d.text : "its tier is not in the config");
			manifest_free(&m);
			diag_free(&d);
			free(ac);
			return -1;
		}
		diag_free(&d);
		snprintf(ac->name, sizeof(ac->name), "%s", m.name);
		manifest_free(&m);
		snprintf(ac->path, sizeof(ac->path), "%s", arg);
		snprintf(ac->verb, sizeof(ac->verb), "%s",
		    verb[0] == 'r' ? "respawn" : "spawn");
	} else {
		snprintf(ac->name, sizeof(ac->name), "%s", arg);
		snprintf(ac->verb, sizeof(ac->verb), "%s", verb);
	}
	p = placement_find(s, ac->name);
	if (strcmp(ac->verb, "spawn") == 0) {
		if (p != NULL && p->alive) {
			snprintf(why, whylen, "agent %s is already running",
			    ac->name);
			free(ac);
			return -1;
		}
		if (ac->path[0] == '\0') {
			if (p == NULL) {
				snprintf(why, whylen,
				    "no agent %s in the agents directory",
				    ac->name);
				free(ac);
				return -1;
			}
			snprintf(ac->path, sizeof(ac->path), "%s", p->path);
		}
		ac->worker = least_loaded_worker(s);
	} else {
		if (p == NULL || !p->alive) {
			snprintf(
			    why, whylen, "agent %s is not running", ac->name);
			free(ac);
			return -1;
		}
		ac->worker = p->worker;
		/* respawn brings the new path; kill and restart keep it. */
		if (ac->path[0] == '\0')
			snprintf(ac->path, sizeof(ac->path), "%s", p->path);
	}
	snprintf(cmd.verb, sizeof(cmd.verb), "%s", ac->verb);
	/* spawn and respawn carry the manifest's path; the rest a name. */
	cmd.arg =
	    strcmp(ac->verb, "kill") == 0 || strcmp(ac->verb, "restart") == 0
	    ? ac->name
	    : ac->path;
	msg_ctl_encode(&w, &cmd);
	data = msg_data(&w, &len);
	if (ipc_request(s->workers[ac->worker], data, len, 5000,
	        agent_command_done, ac) != 0) {
		snprintf(why, whylen, "cannot reach worker %d", ac->worker);
		msg_writer_free(&w);
		free(ac);
		return -1;
	}
	msg_writer_free(&w);
	return 0;
}

/*
 * Reads the agents directory again: new manifests start, removed ones
 * stop, changed ones start again from their new text; a bad manifest is
 * reported and the rest carry on. Agents started with spawn -f from
 * elsewhere are left alone.
 */
static void
reload(struct supervisor *s, char *summary, size_t len)
{
	struct fleet f;
	struct diag d = {0};
	char agents[PATH_MAX], why[256];
	int started = 0, stopped = 0, changed = 0, bad;

	config_resolve(s->conf.dir, s->conf.agents_dir, agents, sizeof(agents));
	bad = fleet_load(&f, agents, &s->conf, &d);
	if (d.text != NULL)
		log_warnx("reload:\n%s", d.text);
	diag_free(&d);
	for (size_t i = 0; i < f.count; i++) {
		const struct manifest *m = &f.agents[i];
		struct placement *p = placement_find(s, m->name);

		if (p == NULL || !p->alive) {
			if (agent_command(s, NULL, "spawn-file", m->path, why,
			        sizeof(why)) == 0)
				started++;
			else
				log_warnx("reload: %s", why);
		} else if (strcmp(p->path, m->path) != 0 ||
		    placement_changed(p)) {
			if (agent_command(s, NULL, "respawn", m->path, why,
			        sizeof(why)) == 0)
				changed++;
			else
				log_warnx("reload: %s", why);
		}
	}
	for (size_t i = 0; i < s->nplaced; i++) {
		struct placement *p = &s->placed[i];

		if (!p->alive || !p->from_dir || fleet_find(&f, p->name))
			continue;
		if (agent_command(s, NULL, "kill", p->name, why, sizeof(why)) ==
		    0)
			stopped++;
	}
	/* Agents the directory now has count as its own. */
	for (size_t i = 0; i < f.count; i++) {
		struct placement *p = placement_find(s, f.agents[i].name);

		if (p != NULL)
			p->from_dir = 1;
	}
	fleet_free(&s->fleet);
	s->fleet = f;
	snprintf(summary, len,
	    "reload: %d started, %d stopped, %d changed, %d problems", started,
	    stopped, changed, bad);
	log_info("%s", summary);
}

static void
ctl_request(void *arg, struct ipc_call *call, const void *data, size_t len)
{
	struct supervisor *s = arg;
	struct msg_reader r;
	struct msg_ctl ctl;
	struct msg_ctl_reply reply = {.ok = 1};
	struct msg_writer w;
	const char *out;
	size_t outlen;
	int stop = 0;

	if (msg_open(&r, data, len) != MSG_OK ||
	    msg_ctl_decode(&r, &ctl) != MSG_OK) {
		/* A ctl client gets told what was wrong with its frame. */
		s->bad_frames++;
		reply.ok = 0;
		snprintf(reply.error, sizeof(reply.error), "bad request: %s",
		    r.detail[0] ? r.detail : msg_error_name(r.error));
		memset(&ctl, 0, sizeof(ctl));
	} else if (strcmp(ctl.verb, "status") == 0) {
		json_t *j = status_json(s);

		reply.body = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	} else if (strcmp(ctl.verb, "stop") == 0) {
		stop = 1;
	} else if (strcmp(ctl.verb, "agents") == 0) {
		json_t *list = json_array(), *j;

		for (size_t i = 0; i < s->nplaced; i++) {
			const struct placement *p = &s->placed[i];

			json_array_append_new(list,
			    json_pack("{s:s,s:i,s:s,s:s}", "name", p->name,
			        "worker", p->worker, "state",
			        p->alive ? "running" : "stopped", "manifest",
			        p->path));
		}
		j = json_pack("{s:o}", "agents", list);
		reply.body = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	} else if (strcmp(ctl.verb, "reload") == 0) {
		char summary[160];
		json_t *j;

		reload(s, summary, sizeof(summary));
		j = json_pack("{s:s}", "summary", summary);
		reply.body = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	} else if ((strcmp(ctl.verb, "spawn") == 0 ||
	               strcmp(ctl.verb, "spawn-file") == 0 ||
	               strcmp(ctl.verb, "kill") == 0 ||
	               strcmp(ctl.verb, "restart") == 0) &&
	    ctl.arg != NULL) {
		char why[256];

		if (agent_command(
		        s, call, ctl.verb, ctl.arg, why, sizeof(why)) == 0) {
			/* Answered when the worker has answered. */
			msg_close(&r);
			msg_ctl_free(&ctl);
			return;
		}
		reply.ok = 0;
		snprintf(reply.error, sizeof(reply.error), "%s", why);
	} else {
		reply.ok = 0;
		snprintf(reply.error, sizeof(reply.error),
		    "unknown command \"%s\"", ctl.verb);
	}
	msg_close(&r);
	msg_ctl_reply_encode(&w, &reply);
	out = msg_data(&w, &outlen);
	ipc_reply(call, out, outlen);
	msg_writer_free(&w);
	free(reply.body);
	msg_ctl_free(&ctl);
	if (stop)
		begin_stop(s, "stop requested");
}

/* ------------------------------------------------------------------ */
/* Start and stop                                                     */
/* ------------------------------------------------------------------ */

static void
stop_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct supervisor *s = w->data;

	(void)revents;
	for (int i = 0; i < s->nchildren; i++)
		if (s->children[i].pid > 0) {
			log_warnx("%s %d did not stop: killing it",
			    role_name(s->children[i].role),
			    s->children[i].index);
			kill(s->children[i].pid, SIGKILL);
		}
	/* Reaping goes on through the child watcher; then the loop ends. */
	if (all_children_gone(s))
		ev_break(loop, EVBREAK_ALL);
}

static void
begin_stop(struct supervisor *s, const char *why)
{
	if (s->stopping)
		return;
	s->stopping = 1;
	log_info("stopping: %s", why);
	for (int i = 0; i < s->nchildren; i++) {
		struct child *c = &s->children[i];

		ev_timer_stop(s->loop, &c->restart_timer);
		if (c->pid > 0)
			kill(c->pid, SIGTERM);
	}
	if (all_children_gone(s)) {
		ev_break(s->loop, EVBREAK_ALL);
		return;
	}
	/* Children get 5 s to finish what they are doing. */
	ev_timer_set(&s->stop_deadline, 5.0, 0);
	ev_timer_start(s->loop, &s->stop_deadline);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct supervisor *s = w->data;

	(void)loop;
	(void)revents;
	if (w->signum == SIGHUP) {
		char summary[160];

		reload(s, summary, sizeof(summary));
		return;
	}
	begin_stop(s, w->signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int
load_all(const char *path, struct config *c, struct fleet *f, int verbose)
{
	struct diag d = {0};
	char agents[PATH_MAX];
	int bad;

	memset(f, 0, sizeof(*f));
	bad = config_load(c, path, &d);
	if (bad == 0 || c->ntiers > 0) {
		config_resolve(c->dir, c->agents_dir, agents, sizeof(agents));
		bad += fleet_load(f, agents, c, &d);
	}
	if (d.text != NULL)
		fputs(d.text, stderr);
	if (verbose && bad == 0)
		printf("%s: ok: %zu tiers, %zu models, %zu agents\n", path,
		    c->ntiers, c->nmodels, f->count);
	diag_free(&d);
	return bad;
}

static int
cmd_check(const char *path)
{
	struct config c;
	struct fleet f;
	int bad = load_all(path, &c, &f, 1);

	if (bad > 0)
		fprintf(stderr, "ollamax-supervisor: %d problem%s found\n", bad,
		    bad == 1 ? "" : "s");
	fleet_free(&f);
	config_free(&c);
	return bad > 0 ? 1 : 0;
}

/*
 * Workers run this same program; the broker is ollamax-broker, beside it
 * (a build tree, or an install into one bin dir) or in pkglibexecdir.
 */
static int
find_programs(struct supervisor *s, const char *argv0)
{
	ssize_t n =
	    readlink("/proc/self/exe", s->self_path, sizeof(s->self_path) - 1);
	char *slash;

	if (n <= 0) {
		log_warn("cannot find this program (%s)", argv0);
		return -1;
	}
	s->self_path[n] = '\0';
	slash = strrchr(s->self_path, '/');
	snprintf(s->broker_path, sizeof(s->broker_path), "%.*s/ollamax-broker",
	    (int)(slash - s->self_path), s->self_path);
	if (access(s->broker_path, X_OK) == 0)
		return 0;
	snprintf(s->broker_path, sizeof(s->broker_path), "%s",
	    PKGLIBEXECDIR "/ollamax-broker");
	if (access(s->broker_path, X_OK) == 0)
		return 0;
	log_warnx("ollamax-broker is neither beside %s nor in %s", s->self_path,
	    PKGLIBEXECDIR);
	return -1;
}

/*
 * --daemon: forks before anything starts nng or libev (neither survives a
 * fork), detaches, and leaves the first process waiting on a pipe until
 * the daemon is ready, so that `start --daemon` exits 0 only when it is.
 * Returns in the daemon with the pipe's write end; the first process never
 * returns.
 */
static int
daemonize(void)
{
	int fds[2], devnull;
	pid_t pid;
	char buf[512];
	ssize_t n, got = 0;

	/* Close-on-exec: the children must not hold the pipe open. */
	if (pipe2(fds, O_CLOEXEC) != 0)
		fatal("pipe");
	pid = fork();
	if (pid < 0)
		fatal("fork");
	if (pid > 0) {
		close(fds[1]);
		/* One line says how it went; EOF without it is a failure. */
		while (memchr(buf, '\n', (size_t)got) == NULL &&
		    (n = read(
		         fds[0], buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
			got += n;
		buf[got] = '\0';
		if (strncmp(buf, "ready", 5) == 0)
			exit(0);
		fprintf(stderr, "ollamax-supervisor: did not start%s%s",
		    got > 0 ? ": " : " (see syslog)\n", buf);
		exit(1);
	}
	close(fds[0]);
	if (setsid() < 0)
		fatal("setsid");
	devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		dup2(devnull, STDERR_FILENO);
		if (devnull > STDERR_FILENO)
			close(devnull);
	}
	/* The children inherit this and log to syslog too. */
	setenv("OLLAMAX_SYSLOG", "1", 1);
	log_init("ollamax-supervisor", 1);
	return fds[1];
}

/* Fails a --daemon start: the waiting process prints the reason. */
static void
daemon_failed(struct supervisor *s, const char *why)
{
	if (s->ready_fd < 0)
		return;
	if (write(s->ready_fd, why, strlen(why)) < 0)
		log_warn("cannot tell the starting process");
	close(s->ready_fd);
	s->ready_fd = -1;
}

static void
write_pid_file(struct supervisor *s)
{
	char path[PATH_MAX + 32];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/supervisor.pid", s->runtime);
	fp = fopen(path, "w");
	if (fp == NULL || fprintf(fp, "%d\n", (int)getpid()) < 0 ||
	    fclose(fp) != 0)
		log_warn("cannot write %s", path);
}

static int
cmd_start(const char *self, const char *path, int detach)
{
	static struct supervisor sup;
	struct supervisor *s = &sup;
	struct diag d = {0};
	char agents[PATH_MAX];
	long workers;

	s->start_ms = now_ms();
	if (find_programs(s, self) != 0)
		return 1;
	if (realpath(path, s->conf_path) == NULL) {
		log_warn("%s", path);
		return 1;
	}
	if (config_load(&s->conf, s->conf_path, &d) > 0) {
		fputs(d.text, stderr);
		diag_free(&d);
		log_warnx("%s is not valid: nothing started", s->conf_path);
		return 1;
	}
	config_resolve(s->conf.dir, s->conf.agents_dir, agents, sizeof(agents));
	/* A bad manifest is reported; the other agents carry on. */
	if (fleet_load(&s->fleet, agents, &s->conf, &d) > 0)
		fputs(d.text, stderr);
	diag_free(&d);
	config_runtime_dir(&s->conf, s->runtime, sizeof(s->runtime));
	s->ready_fd = detach ? daemonize() : -1;
	if (prepare_runtime(s) != 0) {
		daemon_failed(s, "the runtime dir is in use or unusable\n");
		return 1;
	}
	if (detach)
		write_pid_file(s);
	s->loop = EV_DEFAULT;
	s->ctl = ipc_listen(s->loop, s->ctl_url, 8, ctl_request, s);
	s->hub = ipc_listen(s->loop, s->hub_url, 8, hub_request, s);
	if (s->ctl == NULL || s->hub == NULL) {
		daemon_failed(s, "cannot listen in the runtime dir\n");
		return 1;
	}

	workers = s->conf.workers > 0 ? s->conf.workers
	                              : sysconf(_SC_NPROCESSORS_ONLN);
	if (workers < 1)
		workers = 1;
	s->nchildren = (int)workers + 1;
	s->children = calloc((size_t)s->nchildren, sizeof(*s->children));
	if (s->children == NULL)
		fatal("out of memory");
	for (int i = 0; i < s->nchildren; i++) {
		struct child *c = &s->children[i];

		c->sup = s;
		c->role = i == 0 ? ROLE_BROKER : ROLE_WORKER;
		c->index = i == 0 ? 0 : i - 1;
		ev_init(&c->restart_timer, restart_cb);
		c->restart_timer.data = c;
	}
	ev_signal_init(&s->sigterm, signal_cb, SIGTERM);
	ev_signal_init(&s->sigint, signal_cb, SIGINT);
	ev_signal_init(&s->sighup, signal_cb, SIGHUP);
	s->sigterm.data = s->sigint.data = s->sighup.data = s;
	ev_signal_start(s->loop, &s->sigterm);
	ev_signal_start(s->loop, &s->sigint);
	ev_signal_start(s->loop, &s->sighup);
	ev_child_init(&s->sigchld, sigchld_cb, 0, 0);
	s->sigchld.data = s;
	ev_child_start(s->loop, &s->sigchld);
	ev_init(&s->stop_deadline, stop_deadline_cb);
	s->stop_deadline.data = s;
	signal(SIGPIPE, SIG_IGN);

	/* The workers place the directory's agents by the same rule. */
	s->placed = calloc(s->fleet.count + 1, sizeof(*s->placed));
	s->workers = calloc((size_t)workers, sizeof(*s->workers));
	if (s->placed == NULL || s->workers == NULL)
		fatal("out of memory");
	for (size_t i = 0; i < s->fleet.count; i++) {
		struct placement *p = &s->placed[s->nplaced++];

		snprintf(
		    p->name, sizeof(p->name), "%s", s->fleet.agents[i].name);
		snprintf(
		    p->path, sizeof(p->path), "%s", s->fleet.agents[i].path);
		p->worker = (int)fleet_worker_of(i, workers);
		p->alive = 1;
		p->from_dir = 1;
		placement_stat(p);
	}
	for (long w = 0; w < workers; w++) {
		char url[PATH_MAX * 4];

		snprintf(url, sizeof(url), "ipc://%s/worker-%ld.sock",
		    s->runtime, w);
		s->workers[w] = ipc_dial(s->loop, url);
		if (s->workers[w] == NULL)
			return 1;
	}
	for (int i = 0; i < s->nchildren; i++)
		child_start(&s->children[i]);
	log_info("starting: config %s, runtime %s, %ld workers, %zu agents",
	    s->conf_path, s->runtime, workers, s->fleet.count);
	ev_run(s->loop, 0);

	ipc_server_close(s->ctl);
	ipc_server_close(s->hub);
	for (long w = 0; w < workers; w++)
		ipc_client_close(s->workers[w]);
	free(s->workers);
	free(s->placed);
	remove_runtime(s);
	fleet_free(&s->fleet);
	config_free(&s->conf);
	free(s->children);
	log_info("stopped");
	return 0;
}

/* Asks the running supervisor to stop, and waits for it to be gone. */
static int
cmd_stop(const char *path)
{
	struct config c;
	struct diag d = {0};
	char runtime[PATH_MAX];
	pid_t pid;
	int rc;

	if (config_load(&c, path, &d) > 0)
		fputs(d.text, stderr);
	diag_free(&d);
	config_runtime_dir(&c, runtime, sizeof(runtime));
	config_free(&c);
	rc = ctl_stop_and_wait(runtime, &pid);
	if (rc == 3)
		fprintf(stderr,
		    "ollamax-supervisor: no supervisor answers on %s/ctl.sock\n",
		    runtime);
	return rc;
}

static const char usage_text[] =
    "usage: ollamax-supervisor [-c FILE] check\n"
    "       ollamax-supervisor [-c FILE] start [--daemon]\n"
    "       ollamax-supervisor [-c FILE] stop\n";

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"daemon", no_argument, NULL, 'd'},
	    {"role", required_argument, NULL, 'r'},
	    {"index", required_argument, NULL, 'i'},
	    {"runtime", required_argument, NULL, 'R'},
	    {"log-level", required_argument, NULL, 'L'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *conf = NULL, *verb, *role = NULL, *runtime = NULL;
	int opt, index = 0, level, detach = 0;

	log_init("ollamax-supervisor", 0);
	log_level_from_env();
	while ((opt = getopt_long(argc, argv, "c:dh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			conf = optarg;
			break;
		case 'd':
			detach = 1;
			break;
		case 'r':
			role = optarg;
			break;
		case 'i':
			index = atoi(optarg);
			break;
		case 'R':
			runtime = optarg;
			break;
		case 'L':
			if ((level = log_level_parse(optarg)) < 0) {
				fprintf(stderr,
				    "ollamax-supervisor: --log-level %s: expected error, warn, info or debug\n",
				    optarg);
				return 2;
			}
			log_set_level((enum log_level)level);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("ollamax-supervisor %s\n", PACKAGE_VERSION);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (role != NULL) {
		if (runtime == NULL || conf == NULL) {
			fputs(usage_text, stderr);
			return 2;
		}
		if (strcmp(role, "worker") != 0) {
			fprintf(stderr,
			    "ollamax-supervisor: --role %s: this program runs workers; the broker is ollamax-broker\n",
			    role);
			return 2;
		}
		return role_main(
		    argc, argv, role, index, runtime, conf, worker_main);
	}
	if (optind != argc - 1) {
		fputs(usage_text, stderr);
		return 2;
	}
	verb = argv[optind];
	if (strcmp(verb, "check") == 0)
		return cmd_check(config_default_path(conf));
	if (strcmp(verb, "start") == 0)
		return cmd_start(argv[0], config_default_path(conf), detach);
	if (strcmp(verb, "stop") == 0)
		return cmd_stop(config_default_path(conf));
	fputs(usage_text, stderr);
	return 2;
}
