/*
 * supervisor.c: ollamax-supervisor, the parent of every ollamax process.
 *
 *   ollamax-supervisor [-c FILE] check     judge the config and every manifest
 *   ollamax-supervisor [-c FILE] start     run (foreground; --daemon detaches)
 *   ollamax-supervisor [-c FILE] stop      ask the running one to stop
 *
 * The supervisor alone reads the config and the manifests. It forks and
 * execs one broker and W workers (this same program with --role); each
 * says hello on the hub socket and gets its part of the config in answer
 * (a worker then fetches the agents placed on it, in pages), sets itself up
 * and says ready. A child that dies is restarted with backoff, gets the
 * same again (a worker, the agents placed on it now), and is left FAILED
 * after a restart storm. ollamaxctl talks to the supervisor on ctl.sock;
 * agents' messages to agents of other workers pass through the hub.
 *
 * Exit codes: 0 ok, 1 the operation failed, 2 usage, 3 (stop) no
 * supervisor answers.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>

#include "cliarg.h"
#include "config.h"
#include "ipc.h"
#include "log.h"
#include "msg.h"
#include "once.h"
#include "proc.h"
#include "role.h"
#include "template.h"
#include "utf8.h"

struct child {
	int role; /* enum msg_role */
	int index;
	pid_t pid;
	enum proc_state state;
	struct restart_state restart;
	ev_timer restart_timer;
	struct supervisor *sup;
	struct msg_report report; /* its latest counters */
	int64_t heard_ms;         /* when it last spoke: see watchdog_cb */
	int killed_in_stop;       /* its stop overdue, told as it was made */
	/* Still starting as the stop began: nothing of its was under way
	 * (see sigchld_cb). */
	int starting_at_stop;
	/* A starting worker's agents, as the pages it fetches. */
	char **pages;
	size_t *page_len;
	uint32_t npages;
};

/*
 * Where an agent lives, and what it runs: the supervisor alone reads
 * manifests; the workers run what it places on them.
 */
struct placement {
	struct manifest m;
	int worker;
	int alive;
	/* Not alive: its worker could not create its task at start. */
	int start_failed;
	int from_dir; /* a manifest of the agents directory */
	/* Not alive, but a spawn sent to worker went unanswered: it may run
	 * there, so its next spawn or kill goes there too, and nowhere
	 * else, lest it run twice or be neither stopped nor started. */
	int unanswered;
};

struct agent_command;

struct supervisor {
	struct ev_loop *loop;
	struct placement *placed;
	size_t nplaced;
	struct agent_command *pending; /* commands the workers carry out */
	struct ipc_client **workers;   /* command links, by worker index */
	int nworkers;
	char self_path[PATH_MAX];   /* this program, for the workers */
	char broker_path[PATH_MAX]; /* ollamax-broker */
	char conf_path[PATH_MAX];
	struct config conf;
	char agents_dir[PATH_MAX];
	char state_dir[PATH_MAX];
	char runtime[PATH_MAX];
	char ctl_url[PATH_MAX + 32];
	char hub_url[PATH_MAX + 32];
	struct ipc_server *ctl;
	struct ipc_server *hub;
	struct child *children; /* the broker, then the workers */
	int nchildren;
	int64_t start_ms;
	int ready_fd; /* --daemon: the waiting parent's pipe, else -1 */
	int lock_fd;  /* supervisor.lock, held for life */
	int announced_ready;
	int stopping;
	/* Children that crashed, failed or had to be killed in the stop:
	 * the supervisor's exit status tells it, for a service manager. */
	int stopped_unclean;
	ev_signal sigterm, sigint, sighup;
	ev_child sigchld;
	ev_timer stop_deadline;
	ev_timer ready_deadline; /* --daemon: see ready_deadline_cb */
	ev_timer watchdog;
	int64_t watchdog_tick_ms;
	uint64_t bad_frames;
	/* The commands of ollamaxctl that change something, by id: a copy
	 * sent again after a cut connection is not carried out again. */
	struct once_table once;
};

static void child_forget_pages(struct child *c);

/* How often the watchdog looks at the children's last reports. */
#define WATCHDOG_TICK_MS 1000

static const struct restart_policy restart_policy = {
    .base_ms = 100,
    .max_ms = 5000,
    .reset_ms = 30000,
    .intensity = 5,
    .period_ms = 60000,
};

static const char *
role_name(int role)
{
	return role == ROLE_BROKER ? "broker" : "worker";
}

/* ------------------------------------------------------------------ */
/* Runtime directory                                                  */
/* ------------------------------------------------------------------ */

/*
 * Takes the runtime dir for this supervisor, for as long as it lives: a
 * lock, not a question to the one there may be, which a supervisor
 * stopped or busy could not answer, and would then lose its sockets to a
 * second one. Close-on-exec: children do not hold it.
 */
static int
lock_runtime(struct supervisor *s, char *why, size_t len)
{
	char path[PATH_MAX + 32], pid[32] = "";
	FILE *fp;

	snprintf(path, sizeof(path), "%s/supervisor.lock", s->runtime);
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		snprintf(why, len, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	if (errno != EWOULDBLOCK) {
		snprintf(why, len, "cannot lock %s: %s", path, strerror(errno));
		close(s->lock_fd);
		return -1;
	}
	close(s->lock_fd);
	/* The pid, when a daemon wrote it, tells the user which. */
	snprintf(path, sizeof(path), "%s/supervisor.pid", s->runtime);
	if ((fp = fopen(path, "r")) != NULL) {
		if (fgets(pid, sizeof(pid), fp) != NULL)
			pid[strcspn(pid, "\n")] = '\0';
		fclose(fp);
	}
	snprintf(why, len, "a supervisor is already running on %s%s%s%s",
	    s->runtime, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
	return -1;
}

/*
 * The sockets of a supervisor, whichever workers it had, and its pid file:
 * at its stop, and, left by one that died, once the lock says it is gone
 * (its children died with it), since nobody answers on those sockets and
 * the pid file would name it.
 */
static void
remove_runtime_files(struct supervisor *s)
{
	DIR *dir = opendir(s->runtime);
	struct dirent *e;

	if (dir == NULL)
		return;
	/* Only what a supervisor leaves there: a file of the user's of the
	 * same name is not. */
	while ((e = readdir(dir)) != NULL) {
		const char *ext = strrchr(e->d_name, '.');
		struct stat st;

		if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) !=
		    0)
			continue;
		if ((ext != NULL && strcmp(ext, ".sock") == 0 &&
		        S_ISSOCK(st.st_mode)) ||
		    (strcmp(e->d_name, "supervisor.pid") == 0 &&
		        S_ISREG(st.st_mode)))
			unlinkat(dirfd(dir), e->d_name, 0);
	}
	closedir(dir);
}

/*
 * Whether the runtime dir, there already (or just created), will do: a
 * directory of this user's, private (sockets inside are 0600 too, peers
 * checked by uid). One that was there before is the user's, perhaps
 * shared: not made private behind their back. 0, or -1 with why.
 */
static int
runtime_dir_problem(const char *dir, int created, char *why, size_t len)
{
	struct stat st;

	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != getuid()) {
		snprintf(why, len, "%s is not a directory owned by uid %u", dir,
		    (unsigned)getuid());
		return -1;
	}
	if ((st.st_mode & 07777) != 0700 && !created) {
		snprintf(why, len,
		    "%s is %s (mode %04o): name a directory of its own, or "
		    "chmod 700 it",
		    dir,
		    st.st_mode & 077 ? "open to others"
		                     : "not the user's to write",
		    (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* A problem of the runtime dir found at start, into why, as check tells
 * one: at the line of runtime_dir, or as the default's. */
static void
runtime_dir_told(
    struct supervisor *s, const char *problem, char *why, size_t len)
{
	struct diag d = {0};

	config_dir_problem(&s->conf, "runtime_dir", problem, &d);
	snprintf(why, len, "%.*s", (int)strcspn(d.text, "\n"), d.text);
	diag_free(&d);
}

static int
prepare_runtime(struct supervisor *s, char *why, size_t len)
{
	struct stat st;
	char problem[PATH_MAX + 256];
	int created = 0;

	/* The default, from $XDG_RUNTIME_DIR or /tmp, is checked here. */
	if (config_runtime_dir_fits(s->runtime, problem, sizeof(problem))) {
		runtime_dir_told(s, problem, why, len);
		return -1;
	}
	if (mkdir(s->runtime, 0700) == 0)
		created = 1;
	else if (errno != EEXIST) {
		snprintf(problem, sizeof(problem), "%s cannot be made: %s",
		    s->runtime, strerror(errno));
		runtime_dir_told(s, problem, why, len);
		return -1;
	}
	if (runtime_dir_problem(
	        s->runtime, created, problem, sizeof(problem)) != 0) {
		runtime_dir_told(s, problem, why, len);
		return -1;
	}
	if (created && lstat(s->runtime, &st) == 0 &&
	    (st.st_mode & 07777) != 0700) {
		if (chmod(s->runtime, 0700) != 0) {
			snprintf(why, len, "chmod %s: %s", s->runtime,
			    strerror(errno));
			return -1;
		}
	}
	if (lock_runtime(s, why, len) != 0)
		return -1;
	remove_runtime_files(s);
	snprintf(
	    s->ctl_url, sizeof(s->ctl_url), "ipc://%s/ctl.sock", s->runtime);
	snprintf(
	    s->hub_url, sizeof(s->hub_url), "ipc://%s/hub.sock", s->runtime);
	return 0;
}

static void
remove_runtime(struct supervisor *s)
{
	char path[PATH_MAX + 32];

	remove_runtime_files(s);
	/* The lock goes last: a supervisor that takes the dir after it
	 * finds nothing left to lose. */
	snprintf(path, sizeof(path), "%s/supervisor.lock", s->runtime);
	unlink(path);
	if (rmdir(s->runtime) != 0 && errno != ENOENT)
		log_warn("cannot remove %s", s->runtime);
}

/* ------------------------------------------------------------------ */
/* Children                                                           */
/* ------------------------------------------------------------------ */

/*
 * A worker left FAILED runs none of its agents, and never will again: they
 * count as stopped, so that spawn, or a reload, starts them on a running
 * worker, and kill has nothing to ask of it.
 */
static void
stop_agents_of(struct supervisor *s, int worker)
{
	size_t n = 0;

	for (size_t i = 0; i < s->nplaced; i++) {
		if (s->placed[i].worker != worker)
			continue;
		s->placed[i].unanswered = 0;
		if (s->placed[i].alive) {
			s->placed[i].alive = 0;
			n++;
		}
	}
	if (n > 0)
		log_warnx("worker %d's %zu agent%s stopped with it: ollamaxctl "
		          "spawn, or reload, starts %s on a running worker",
		    worker, n, n == 1 ? "" : "s", n == 1 ? "it" : "them");
}

static struct placement *
placement_find(struct supervisor *s, const char *name)
{
	for (size_t i = 0; i < s->nplaced; i++)
		if (strcmp(s->placed[i].m.name, name) == 0)
			return &s->placed[i];
	return NULL;
}

static void child_down(struct supervisor *s, struct child *c);
static void begin_stop(struct supervisor *s, const char *why);
static void daemon_failed(struct supervisor *s, const char *why);

static void
child_start(struct child *c)
{
	struct supervisor *s = c->sup;
	char index[16];
	const char *path =
	    c->role == ROLE_BROKER ? s->broker_path : s->self_path;
	char *argv[] = {(char *)path, "--role", (char *)role_name(c->role),
	    "--index", index, "--runtime", s->runtime, NULL};

	snprintf(index, sizeof(index), "%d", c->index);
	/* A start that fails at once is a child up for no time: its retries
	 * back off as after a crash, whatever it had run before. */
	c->restart.started_ms = msg_clock_ms();
	c->pid = proc_spawn(path, argv);
	if (c->pid < 0) {
		/* Out of processes or memory for a moment, as often after an
		 * OOM kill: tried again as after a crash, not given up. */
		log_warn("cannot start %s %d", role_name(c->role), c->index);
		c->pid = 0;
		child_down(s, c);
		return;
	}
	c->state = PROC_STARTING;
	memset(&c->report, 0, sizeof(c->report));
	c->heard_ms = c->restart.started_ms;
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

	(void)revents;
	for (int i = 0; i < s->nchildren; i++)
		if (s->children[i].pid == w->rpid)
			c = &s->children[i];
	if (c == NULL)
		return;
	c->pid = 0;
	/* A dead child's counters are no longer true. */
	memset(&c->report, 0, sizeof(c->report));
	child_forget_pages(c);
	if (s->stopping) {
		/* A crash in a child's stop leaves a trace, and the exit
		 * tells it; the kills of an overdue stop are told as they
		 * are made. A child still starting had nothing under way:
		 * ended by the SIGTERM before it had its handler, or killed
		 * as it hung in that start (nng 1.5.2's close, now and then),
		 * it is no crash. */
		if (WIFSIGNALED(status) && c->starting_at_stop &&
		    (WTERMSIG(status) == SIGTERM ||
		        (WTERMSIG(status) == SIGKILL && c->killed_in_stop))) {
			log_debug("%s %d ended by the stop as it started",
			    role_name(c->role), c->index);
		} else if (WIFSIGNALED(status)) {
			if (!c->killed_in_stop)
				log_warnx("%s %d died of signal %d as the "
				          "fleet stopped",
				    role_name(c->role), c->index,
				    WTERMSIG(status));
			s->stopped_unclean++;
		} else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
			log_warnx("%s %d exited with status %d as the fleet "
			          "stopped",
			    role_name(c->role), c->index, WEXITSTATUS(status));
			s->stopped_unclean++;
		}
		c->state = PROC_STOPPED;
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
	child_down(s, c);
}

/*
 * A child that died, or could not be started: started again after the
 * restart policy's backoff, or left FAILED once it has crashed too often.
 */
static void
child_down(struct supervisor *s, struct child *c)
{
	int64_t delay =
	    restart_after_crash(&restart_policy, &c->restart, msg_clock_ms());

	if (delay < 0) {
		char why[128];

		c->state = PROC_FAILED;
		snprintf(why, sizeof(why),
		    "%s %d crashed %d times within %llds: left FAILED",
		    role_name(c->role), c->index, restart_policy.intensity + 1,
		    (long long)restart_policy.period_ms / 1000);
		log_warnx("%s", why);
		if (c->role == ROLE_WORKER)
			stop_agents_of(s, c->index);
		/* A daemon that cannot get ready has failed to start: the
		 * waiting command says so, and nothing is left running. */
		if (!s->announced_ready && s->ready_fd >= 0) {
			strncat(why, "\n", sizeof(why) - strlen(why) - 1);
			daemon_failed(s, why);
			begin_stop(s, "the fleet could not get ready");
		}
		return;
	}
	c->state = PROC_BACKOFF;
	ev_timer_set(&c->restart_timer, (double)delay / 1000.0, 0);
	ev_timer_start(s->loop, &c->restart_timer);
}

/*
 * A starting child speaks at each step of its start, and a running one
 * reports each second. One silent for `watchdog` is hung, stopped or
 * deadlocked: nothing it holds would ever be answered, and a worker's
 * calls to it would wait out their timeouts. It is killed and started
 * again as after a crash; a worker then sends its request to the new
 * broker, and has it answered once.
 */
static void
watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct supervisor *s = w->data;
	int64_t now = msg_clock_ms();
	/* The supervisor itself was held up (stopped, or too busy to look)
	 * and heard nobody meanwhile: that silence is its own. */
	int held_up = now - s->watchdog_tick_ms > WATCHDOG_TICK_MS * 3 / 2;

	(void)loop;
	(void)revents;
	s->watchdog_tick_ms = now;
	once_forget_old(&s->once, now);
	if (s->stopping || s->conf.watchdog_ms == 0)
		return;
	for (int i = 0; i < s->nchildren; i++) {
		struct child *c = &s->children[i];

		if (held_up)
			c->heard_ms = now;
		if (c->pid <= 0 ||
		    (c->state != PROC_STARTING && c->state != PROC_RUNNING) ||
		    now - c->heard_ms < s->conf.watchdog_ms)
			continue;
		log_warnx("%s %d (pid %d) has not reported for %llds: killing "
		          "it to start it again",
		    role_name(c->role), c->index, (int)c->pid,
		    (long long)(now - c->heard_ms) / 1000);
		kill(c->pid, SIGKILL);
		/* Not a kill and a line every tick until it is reaped. */
		c->heard_ms = now;
	}
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

static size_t
agents_placed(const struct supervisor *s)
{
	size_t n = 0;

	/* An agent whose spawn went unanswered may run: it counts; so does
	 * one its worker could not start, neither removed nor killed. */
	for (size_t i = 0; i < s->nplaced; i++)
		n += s->placed[i].alive || s->placed[i].unanswered ||
		    s->placed[i].start_failed;
	return n;
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
	log_info("ready: broker and %d worker%s in %lld ms, %zu agent%s",
	    s->nchildren - 1, s->nchildren - 1 == 1 ? "" : "s",
	    (long long)(msg_clock_ms() - s->start_ms), agents_placed(s),
	    agents_placed(s) == 1 ? "" : "s");
	notify_ready();
	if (s->ready_fd >= 0) {
		/* The parent of --daemon exits 0 once it reads this. */
		if (write(s->ready_fd, "ready\n", 6) != 6)
			log_warn("cannot tell the starting process");
		close(s->ready_fd);
		s->ready_fd = -1;
	}
}

static void
reply_frame(struct ipc_call *call, struct msg_writer *w)
{
	const char *out;
	size_t len;

	out = msg_data(w, &len);
	ipc_reply(call, out, len);
	msg_writer_free(w);
}

/* Answers ok, or not with why; a call of NULL (a reload's) is logged. */
static void
reply_ctl(struct ipc_call *call, int ok, const char *error)
{
	struct msg_ctl_reply reply = {.ok = ok, .from_supervisor = 1};
	struct msg_writer w;

	if (call == NULL) {
		if (!ok)
			log_warnx("reload: %s", error ? error : "failed");
		return;
	}
	snprintf(reply.error, sizeof(reply.error), "%s", error ? error : "");
	msg_ctl_reply_encode(&w, &reply);
	reply_frame(call, &w);
}

static void
reply_waiter(void *call, const void *data, size_t len)
{
	ipc_reply(call, data, len);
}

/* Answers a command of ollamaxctl's on ctl.sock: and every copy of it sent
 * again that waits with it, the answer kept for copies to come. */
static void
answer_ctl_frame(
    struct supervisor *s, struct ipc_call *call, struct msg_writer *w)
{
	const char *out;
	size_t len;

	out = msg_data(w, &len);
	once_answer(&s->once, call, out, len, msg_clock_ms(), reply_waiter);
	msg_writer_free(w);
}

/* As reply_ctl, with body when not NULL (a worker's answer to a run -w). */
static void
answer_ctl(struct supervisor *s, struct ipc_call *call, int ok,
    const char *error, char *body)
{
	struct msg_ctl_reply reply = {
	    .ok = ok, .body = body, .from_supervisor = 1};
	struct msg_writer w;

	if (call == NULL) {
		reply_ctl(NULL, ok, error);
		return;
	}
	snprintf(reply.error, sizeof(reply.error), "%s", error ? error : "");
	msg_ctl_reply_encode(&w, &reply);
	answer_ctl_frame(s, call, &w);
}

static void
child_forget_pages(struct child *c)
{
	for (uint32_t i = 0; i < c->npages; i++)
		free(c->pages[i]);
	free(c->pages);
	free(c->page_len);
	c->pages = NULL;
	c->page_len = NULL;
	c->npages = 0;
}

/* The child a hello, fetch or ready names; the pid tells a stale one. */
static struct child *
child_named(struct supervisor *s, int role, int index, int64_t pid)
{
	for (int i = 0; i < s->nchildren; i++) {
		struct child *c = &s->children[i];

		if (c->role == role && c->index == index &&
		    c->pid == (pid_t)pid)
			return c;
	}
	return NULL;
}

/*
 * A worker's agents, cut into pages now: what it fetches is what was
 * placed on it when it said hello, whatever happens meanwhile.
 */
static void
child_make_pages(struct supervisor *s, struct child *c)
{
	const struct manifest **mine;
	size_t n = 0, done = 0;

	child_forget_pages(c);
	mine = calloc(s->nplaced + 1, sizeof(*mine));
	if (mine == NULL)
		fatal("out of memory");
	for (size_t i = 0; i < s->nplaced; i++) {
		if (s->placed[i].worker != c->index)
			continue;
		/* A new process: what an unanswered spawn may have started
		 * went with the old one. */
		s->placed[i].unanswered = 0;
		if (s->placed[i].alive)
			mine[n++] = &s->placed[i].m;
	}
	while (done < n) {
		struct msg_writer w;
		const char *data;
		size_t len, took;

		took = msg_agents_encode(&w, 0, 0, mine + done, n - done);
		data = msg_data(&w, &len);
		c->pages = realloc(c->pages, (c->npages + 1) * sizeof(char *));
		c->page_len =
		    realloc(c->page_len, (c->npages + 1) * sizeof(size_t));
		if (c->pages == NULL || c->page_len == NULL ||
		    (c->pages[c->npages] = malloc(len)) == NULL)
			fatal("out of memory");
		memcpy(c->pages[c->npages], data, len);
		c->page_len[c->npages++] = len;
		msg_writer_free(&w);
		done += took;
	}
	free(mine);
}

/* hello: the child's part of the config in answer. */
static void
on_hello(struct supervisor *s, struct ipc_call *call, struct msg_reader *r)
{
	struct msg_hello hello;
	struct msg_setup setup = {0};
	struct msg_writer w;
	struct child *c;

	if (msg_hello_decode(r, &hello) != MSG_OK) {
		s->bad_frames++;
		log_warnx("hub: bad hello (%s)", r->detail);
		ipc_drop(call);
		return;
	}
	c = child_named(s, hello.role, hello.index, hello.pid);
	if (c == NULL) {
		reply_ctl(call, 0, "no such child of this supervisor");
		return;
	}
	c->heard_ms = msg_clock_ms();
	setup.role = c->role;
	setup.conf = s->conf;
	if (c->role == ROLE_WORKER) {
		/* The worker needs no path resolved against the config. */
		snprintf(setup.conf.state_dir, sizeof(setup.conf.state_dir),
		    "%s", s->state_dir);
		child_make_pages(s, c);
		setup.pages = c->npages;
	}
	msg_setup_encode(&w, &setup);
	reply_frame(call, &w);
}

static void
on_fetch(struct supervisor *s, struct ipc_call *call, struct msg_reader *r)
{
	struct msg_fetch f;
	struct child *c;
	char why[96];

	if (msg_fetch_decode(r, &f) != MSG_OK) {
		s->bad_frames++;
		log_warnx("hub: bad fetch (%s)", r->detail);
		ipc_drop(call);
		return;
	}
	c = child_named(s, ROLE_WORKER, f.index, f.pid);
	if (c == NULL || f.page >= c->npages) {
		snprintf(why, sizeof(why), "no page %u for worker %d",
		    (unsigned)f.page, f.index);
		reply_ctl(call, 0, why);
		return;
	}
	c->heard_ms = msg_clock_ms();
	ipc_reply(call, c->pages[f.page], c->page_len[f.page]);
}

/*
 * The agents a worker could not start (their tasks not created) do not
 * run: they show as failed until a spawn starts them, and a restart of
 * the worker leaves them out.
 */
static void
agents_not_started(
    struct supervisor *s, int worker, const struct msg_ready *ready)
{
	char names[512];
	size_t n = 0, told = 0, len = 0;

	names[0] = '\0';
	for (uint32_t i = 0; i < ready->nnot_started; i++) {
		struct placement *p = placement_find(s, ready->not_started[i]);

		if (p == NULL || p->worker != worker || !p->alive)
			continue;
		p->alive = 0;
		p->start_failed = 1;
		n++;
		if (len + strlen(p->m.name) + 16 < sizeof(names)) {
			len +=
			    (size_t)snprintf(names + len, sizeof(names) - len,
			        "%s%s", told > 0 ? ", " : "", p->m.name);
			told++;
		}
	}
	if (n == 0)
		return;
	if (told < n)
		snprintf(names + len, sizeof(names) - len, " and %zu more",
		    n - told);
	log_warnx("worker %d could not start %zu agent%s (its log says why): "
	          "%s; ollamaxctl spawn, or a reload, starts %s again",
	    worker, n, n == 1 ? "" : "s", names, n == 1 ? "it" : "them");
}

static void
on_ready(struct supervisor *s, struct ipc_call *call, struct msg_reader *r)
{
	struct msg_ready ready;
	struct child *c;

	if (msg_ready_decode(r, &ready) != MSG_OK) {
		s->bad_frames++;
		log_warnx("hub: bad ready (%s)", r->detail);
		ipc_drop(call);
		return;
	}
	c = child_named(
	    s, ready.child.role, ready.child.index, ready.child.pid);
	/* One that starts as the supervisor stops is stopping all the same. */
	if (c != NULL && !s->stopping) {
		c->state = PROC_RUNNING;
		c->heard_ms = msg_clock_ms();
		child_forget_pages(c);
		if (c->role == ROLE_WORKER)
			agents_not_started(s, c->index, &ready);
		log_debug("%s %d is ready", role_name(c->role), c->index);
	}
	msg_ready_free(&ready);
	reply_ctl(call, c != NULL, c ? NULL : "no such child");
	check_all_ready(s);
}

static void
on_report(struct supervisor *s, struct ipc_call *call, struct msg_reader *r)
{
	struct msg_report rep;
	struct child *c;

	if (msg_report_decode(r, &rep) != MSG_OK) {
		s->bad_frames++;
		log_warnx("hub: bad report (%s)", r->detail);
		ipc_drop(call);
		return;
	}
	c = child_named(s, rep.role, rep.index, rep.pid);
	if (c != NULL) {
		c->report = rep;
		/* A starting child's ready may have been lost: only its steps
		 * of starting count, so that the watchdog restarts it. */
		if (c->state == PROC_RUNNING)
			c->heard_ms = msg_clock_ms();
	}
	reply_ctl(call, 1, NULL);
}

static void deliver(
    struct supervisor *s, struct ipc_call *call, struct msg_deliver *d);

/* hub.sock: the children's hello, fetch, ready, reports and messages. */
static void
hub_request(void *arg, struct ipc_call *call, const void *data, size_t len)
{
	struct supervisor *s = arg;
	struct msg_reader r;

	if (msg_open(&r, data, len) != MSG_OK) {
		s->bad_frames++;
		log_warnx("hub: bad frame (%s: %s)", msg_error_name(r.error),
		    r.detail);
		ipc_drop(call);
	} else if (r.type == MSG_HELLO) {
		on_hello(s, call, &r);
	} else if (r.type == MSG_FETCH) {
		on_fetch(s, call, &r);
	} else if (r.type == MSG_READY) {
		on_ready(s, call, &r);
	} else if (r.type == MSG_REPORT) {
		on_report(s, call, &r);
	} else if (r.type == MSG_DELIVER) {
		struct msg_deliver d;

		if (msg_deliver_decode(&r, &d) != MSG_OK) {
			s->bad_frames++;
			log_warnx("hub: bad deliver (%s)", r.detail);
			ipc_drop(call);
		} else {
			deliver(s, call, &d);
			msg_deliver_free(&d);
		}
	} else if (r.type == MSG_CTL) {
		/* A command sent here (ollamaxctl -s at the wrong socket) is
		 * told where commands go rather than left to time out; the
		 * answer is not marked as the supervisor's, as ctl.sock's
		 * are, so that ollamaxctl takes it for none. */
		struct msg_ctl_reply reply = {.ok = 0};
		struct msg_writer w;

		snprintf(reply.error, sizeof(reply.error),
		    "this is the supervisor's socket for its children: "
		    "commands go to ctl.sock beside it");
		msg_ctl_reply_encode(&w, &reply);
		reply_frame(call, &w);
	} else {
		s->bad_frames++;
		log_warnx("hub: unexpected %s frame", msg_type_name(r.type));
		ipc_drop(call);
	}
	msg_close(&r);
}

/* ------------------------------------------------------------------ */
/* Control                                                            */
/* ------------------------------------------------------------------ */

static struct placement *
placement_add(struct supervisor *s, const char *name)
{
	struct placement *p;

	s->placed = realloc(s->placed, (s->nplaced + 1) * sizeof(*s->placed));
	if (s->placed == NULL)
		fatal("out of memory");
	p = &s->placed[s->nplaced++];
	memset(p, 0, sizeof(*p));
	snprintf(p->m.name, sizeof(p->m.name), "%s", name);
	return p;
}

/* An agent whose manifest left the directory is forgotten once stopped:
 * nothing would start it again, and `agents` would list a file that is
 * gone. */
static void
placement_remove(struct supervisor *s, struct placement *p)
{
	size_t i = (size_t)(p - s->placed);

	manifest_free(&p->m);
	memmove(p, p + 1, (s->nplaced - i - 1) * sizeof(*p));
	s->nplaced--;
}

enum command_kind { CMD_SPAWN, CMD_RESPAWN, CMD_KILL, CMD_RESTART, CMD_RUN };

static const char *const command_names[] = {
    [CMD_SPAWN] = "spawn",
    [CMD_RESPAWN] = "respawn",
    [CMD_KILL] = "kill",
    [CMD_RESTART] = "restart",
    [CMD_RUN] = "run",
};

/* A command a worker carries out; ollamaxctl hears when it has. */
struct agent_command {
	struct agent_command *next;
	struct supervisor *s;
	struct ipc_call *call; /* NULL: a reload's, nobody waits */
	enum command_kind kind;
	char name[CONFIG_NAME_MAX + 1];
	struct manifest m; /* spawn, respawn: moved to the placement */
	int from_dir;
	int forget; /* kill: its manifest was removed, see placement_remove */
	int worker;
	pid_t worker_pid; /* its process when the command was sent */
	int wait; /* run --wait: the worker answers when the run is over */
};

/* Whether a worker not running now will be: one not left FAILED. */
static int
any_worker_back(const struct supervisor *s)
{
	for (int w = 0; w < s->nworkers; w++)
		if (s->children[w + 1].state != PROC_FAILED)
			return 1;
	return 0;
}

/*
 * The running worker with the fewest agents takes a new one: those live
 * there, and those a spawn on its way there will add, so that the new
 * manifests of one reload spread over the workers. -1 if none runs.
 */
static int
least_loaded_worker(struct supervisor *s)
{
	size_t *count = calloc((size_t)s->nworkers, sizeof(size_t));
	int best = -1;

	if (count == NULL)
		fatal("out of memory");
	for (size_t i = 0; i < s->nplaced; i++)
		if (s->placed[i].alive || s->placed[i].unanswered)
			count[s->placed[i].worker]++;
	for (const struct agent_command *ac = s->pending; ac != NULL;
	     ac = ac->next)
		if (ac->kind == CMD_SPAWN && ac->worker >= 0 &&
		    ac->worker < s->nworkers)
			count[ac->worker]++;
	for (int w = 0; w < s->nworkers; w++)
		if (s->children[w + 1].state == PROC_RUNNING &&
		    (best < 0 || count[w] < count[best]))
			best = w;
	free(count);
	return best;
}

static void
command_forget(struct agent_command *ac)
{
	struct agent_command **pp;

	for (pp = &ac->s->pending; *pp != NULL; pp = &(*pp)->next)
		if (*pp == ac) {
			*pp = ac->next;
			break;
		}
	manifest_free(&ac->m);
	free(ac);
}

/* The agent of a spawn, placed on its worker with its manifest. */
static struct placement *
place(struct supervisor *s, struct agent_command *ac)
{
	struct placement *p = placement_find(s, ac->name);

	if (p == NULL)
		p = placement_add(s, ac->name);
	manifest_free(&p->m);
	p->m = ac->m;
	memset(&ac->m, 0, sizeof(ac->m));
	p->worker = ac->worker;
	p->from_dir = ac->from_dir;
	return p;
}

/* How long the broker's latest report has had the backend unreachable:
 * -1 when it has it reachable, or has not been told yet. */
static int64_t
backend_away_ms(const struct supervisor *s)
{
	const struct msg_report *r = &s->children[0].report;
	int64_t ms = msg_clock_ms() - r->backend_away_since;

	if (r->backend != BACKEND_UNREACHABLE)
		return -1;
	return ms > 0 ? ms : 0;
}

/* run --wait: the run's result goes back whole. */
static int
call_wants_body(const struct agent_command *ac, const struct msg_ctl_reply *rep)
{
	return ac->kind == CMD_RUN && ac->wait && rep->body != NULL;
}

static void
agent_command_done(void *arg, int err, const void *data, size_t len)
{
	struct agent_command *ac = arg;
	struct supervisor *s = ac->s;
	struct msg_reader r;
	struct msg_ctl_reply rep = {0};
	char why[300];
	int64_t away_ms;

	if (ipc_taken_unanswered(err) && ac->kind == CMD_SPAWN &&
	    s->children[ac->worker + 1].pid == ac->worker_pid &&
	    s->children[ac->worker + 1].state == PROC_RUNNING) {
		/* The worker took it, and may have started the agent and
		 * answered too late. Its next spawn or kill goes there to
		 * find out, while that process runs. */
		place(s, ac)->unanswered = 1;
		snprintf(why, sizeof(why),
		    "worker %d did not answer: %s: %s may run there or not; "
		    "its next spawn or kill goes to worker %d and settles it",
		    ac->worker, ipc_strerror(err), ac->name, ac->worker);
		answer_ctl(s, ac->call, 0, why, NULL);
		command_forget(ac);
		return;
	}
	if (err != 0) {
		snprintf(why, sizeof(why), "worker %d did not answer: %s",
		    ac->worker, ipc_strerror(err));
		answer_ctl(s, ac->call, 0, why, NULL);
		command_forget(ac);
		return;
	}
	if (msg_open(&r, data, len) != MSG_OK ||
	    msg_ctl_reply_decode(&r, &rep) != MSG_OK) {
		s->bad_frames++;
		answer_ctl(s, ac->call, 0, "bad answer from the worker", NULL);
		msg_close(&r);
		command_forget(ac);
		return;
	}
	msg_close(&r);
	if (!rep.ok && ac->kind == CMD_RUN && ac->wait &&
	    (away_ms = backend_away_ms(s)) >= 0) {
		/* The likely reason a run waited in vain, which the worker
		 * does not know. */
		char told[sizeof(rep.error)];

		snprintf(told, sizeof(told),
		    "%.500s; the backend (%.200s) has been unreachable for "
		    "%lld s: %.256s",
		    rep.error, s->conf.backend_url, (long long)(away_ms / 1000),
		    s->children[0].report.backend_error);
		memcpy(rep.error, told, sizeof(rep.error));
	}
	if (rep.ok) {
		struct placement *p = placement_find(s, ac->name);

		switch (ac->kind) {
		case CMD_SPAWN:
		case CMD_RESPAWN:
			p = place(s, ac);
			/* Its worker may have been left FAILED since it
			 * answered: the agent stopped with it. */
			p->alive =
			    s->children[ac->worker + 1].state != PROC_FAILED;
			p->unanswered = 0;
			p->start_failed = 0;
			break;
		case CMD_KILL:
			if (p != NULL && ac->forget) {
				placement_remove(s, p);
			} else if (p != NULL) {
				p->alive = 0;
				p->unanswered = 0;
				p->start_failed = 0;
			}
			break;
		case CMD_RESTART:
		case CMD_RUN:
			break;
		}
		if (ac->kind != CMD_RUN)
			log_info("%s %s on worker %d", command_names[ac->kind],
			    ac->name, ac->worker);
	}
	answer_ctl(s, ac->call, rep.ok, rep.error,
	    call_wants_body(ac, &rep) ? rep.body : NULL);
	msg_ctl_reply_free(&rep);
	command_forget(ac);
}

static int
waited_runs(const struct supervisor *s)
{
	int n = 0;

	/* One whose client has gone (killed, or cut short by its own
	 * timeout) holds no place: its answer would reach nobody. */
	for (const struct agent_command *ac = s->pending; ac != NULL;
	     ac = ac->next)
		n += ac->wait && ac->call != NULL &&
		    !ipc_call_peer_gone(ac->call);
	return n;
}

/*
 * Sends a command to the worker that hosts (or will host) an agent, not
 * to be carried out past until_ms either when that is set (0: none). m,
 * for spawn and respawn, is taken. Returns 0 when the call will be
 * answered later, -1 with why set.
 */
static int
agent_command(struct supervisor *s, struct ipc_call *call,
    enum command_kind kind, const char *name, struct manifest *m,
    const char *input, int wait, int64_t until_ms, char *why, size_t whylen)
{
	struct placement *p = placement_find(s, name);
	struct agent_command *ac, *other;
	struct msg_writer w;
	const char *data;
	size_t len;
	int worker, rv;
	int64_t timeout_ms;

	/* Its workers are going: nothing it started would last. */
	if (s->stopping) {
		snprintf(why, whylen,
		    "the supervisor is stopping: %s is not carried out",
		    command_names[kind]);
		return -1;
	}
	/* Two changes of one agent at once would race; runs only queue. */
	for (other = s->pending; other != NULL && kind != CMD_RUN;
	     other = other->next)
		if (other->kind != CMD_RUN && strcmp(other->name, name) == 0) {
			snprintf(why, whylen,
			    "a %s of %s is under way: try again",
			    command_names[other->kind], name);
			return -1;
		}
	if (kind == CMD_SPAWN && p != NULL && p->alive) {
		snprintf(why, whylen, "agent %s is already running", name);
		return -1;
	}
	if (kind != CMD_SPAWN && p == NULL) {
		snprintf(why, whylen,
		    "no agent %s: ollamaxctl agents lists them", name);
		return -1;
	}
	if (kind != CMD_SPAWN && kind != CMD_KILL && !p->alive &&
	    p->unanswered) {
		snprintf(why, whylen,
		    "whether agent %s runs is not known: its spawn went "
		    "unanswered by worker %d; spawn or kill it to settle it",
		    name, p->worker);
		return -1;
	}
	if (kind != CMD_SPAWN && !p->alive && !p->unanswered) {
		snprintf(why, whylen, "agent %s is not running", name);
		return -1;
	}
	if (kind == CMD_RUN && input != NULL && input[0] != '\0' &&
	    !template_uses(p->m.prompt, "input")) {
		/* Run anyway, and the text the user typed is lost unseen. */
		snprintf(why, whylen,
		    "agent %s's prompt has no {{input}}, so the text would be "
		    "dropped: run it without text, or add {{input}} to its "
		    "prompt",
		    name);
		return -1;
	}
	if (kind == CMD_RUN && wait && waited_runs(s) >= CTL_WAITED_RUNS_MAX) {
		snprintf(why, whylen,
		    "%d runs are waited on already: run it without -w, or "
		    "later",
		    CTL_WAITED_RUNS_MAX);
		return -1;
	}
	/* An agent stays on its worker: placed anew only when it runs on
	 * none for sure. */
	worker = kind == CMD_SPAWN && (p == NULL || !p->unanswered)
	    ? least_loaded_worker(s)
	    : p->worker;
	if (worker < 0) {
		snprintf(why, whylen, "%s",
		    any_worker_back(s)
		        ? "no worker is running yet: try again"
		        : "no worker runs: every one crashed too often and is "
		          "left failed until the supervisor is started again");
		return -1;
	}
	if (s->children[worker + 1].state != PROC_RUNNING) {
		snprintf(why, whylen, "worker %d is %s: try again", worker,
		    proc_state_name(s->children[worker + 1].state));
		return -1;
	}
	ac = calloc(1, sizeof(*ac));
	if (ac == NULL)
		fatal("out of memory");
	ac->s = s;
	ac->call = call;
	ac->kind = kind;
	ac->worker = worker;
	ac->worker_pid = s->children[worker + 1].pid;
	ac->wait = kind == CMD_RUN && wait;
	/* A waited run may queue behind cold loads and long answers. */
	timeout_ms = ac->wait ? CTL_RUN_WAIT_MS : CTL_WORKER_MS;
	/* Nor past the deadline of the client it answers. */
	until_ms = ctl_until(timeout_ms, until_ms);
	ac->from_dir = p != NULL && p->from_dir;
	snprintf(ac->name, sizeof(ac->name), "%s", name);
	if (m != NULL) {
		ac->m = *m;
		memset(m, 0, sizeof(*m));
	}
	if (kind == CMD_SPAWN || kind == CMD_RESPAWN) {
		const struct manifest *one = &ac->m;

		/* A respawn, which the worker carries out whether it runs
		 * the agent or not, as the same manifest or another. */
		int replace =
		    kind == CMD_RESPAWN || (p != NULL && p->unanswered);

		msg_agents_encode(&w, replace, until_ms, &one, 1);
	} else if (kind == CMD_RUN) {
		struct msg_deliver d = {.input = (char *)(input ? input : ""),
		    .wait = ac->wait,
		    .until_ms = until_ms};

		snprintf(d.to, sizeof(d.to), "%s", name);
		snprintf(d.from, sizeof(d.from), "ollamaxctl");
		msg_deliver_encode(&w, &d);
	} else {
		struct msg_ctl cmd = {.arg = ac->name,
		    .until_ms = until_ms,
		    .from_supervisor = 1};

		snprintf(cmd.verb, sizeof(cmd.verb), "%s", command_names[kind]);
		msg_ctl_encode(&w, &cmd);
	}
	data = msg_data(&w, &len);
	if ((rv = ipc_request(s->workers[worker], data, len, timeout_ms,
	         agent_command_done, ac)) != 0) {
		snprintf(why, whylen, "cannot reach worker %d: %s", worker,
		    ipc_strerror(rv));
		msg_writer_free(&w);
		manifest_free(&ac->m);
		free(ac);
		return -1;
	}
	msg_writer_free(&w);
	ac->next = s->pending;
	s->pending = ac;
	return 0;
}

/*
 * What fleet_load checks of outputs, for one agent joining the running
 * ones: its answers go to an agent that runs, has an inbox and reads it
 * ({{input}}), and do not come round to it again; and the agents whose
 * answers already go to its name find it so too (a message runs its
 * agent whatever its trigger: one without an inbox would be run for ever
 * by a loop, and one without {{input}} would lose the text unread).
 */
/* A problem of manifest m, at the line of its field, as the config's
 * diagnostics tell one. */
static void
problem_at(char *why, size_t whylen, const struct manifest *m, int line,
    const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(why, whylen, "%.300s:%d: ", m->path, line);

	if (n < 0 || (size_t)n >= whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why + n, whylen - (size_t)n, fmt, ap);
	va_end(ap);
}

/*
 * The agents running that send their answers to m's name, and would find
 * no inbox, or no {{input}}, in m. Within a reload (f), only those it
 * leaves running as they are: spawned by hand, or kept as they were for
 * their own file's errors; the directory's new agents are fleet_load's
 * to check against each other.
 */
static int
senders_problem(struct supervisor *s, const struct manifest *m,
    const struct fleet *f, char *why, size_t whylen)
{
	for (size_t i = 0; i < s->nplaced; i++) {
		const struct placement *p = &s->placed[i];
		const struct manifest *from = &p->m;

		if (!p->alive || from->output != OUTPUT_AGENT ||
		    strcmp(from->output_target, m->name) != 0 ||
		    strcmp(from->name, m->name) == 0 ||
		    (f != NULL && p->from_dir &&
		        !fleet_rejected(f, from->path)))
			continue;
		if (m->trigger != TRIGGER_INBOX) {
			problem_at(why, whylen, m, m->line_of_trigger,
			    "trigger: agent %s sends its answers to %s, "
			    "which would have no inbox",
			    from->name, m->name);
			return -1;
		}
		if (!template_uses(m->prompt, "input")) {
			problem_at(why, whylen, m, m->line_of_prompt,
			    "prompt: agent %s sends its answers to %s, whose "
			    "prompt has no {{input}}: they would be lost "
			    "unread",
			    from->name, m->name);
			return -1;
		}
	}
	return 0;
}

/* ": did you mean 'AGENT'?" for the running agent nearest to name, or "". */
static const char *
running_meant(
    const struct supervisor *s, const char *name, char *out, size_t len)
{
	struct config_nearest near = {0};

	for (size_t i = 0; i < s->nplaced; i++)
		if (s->placed[i].alive)
			config_nearest_weigh(&near, name, s->placed[i].m.name);
	return config_did_you_mean(near.name, out, len);
}

static int
output_problem(
    struct supervisor *s, const struct manifest *m, char *why, size_t whylen)
{
	const struct manifest *at = m;

	if (senders_problem(s, m, NULL, why, whylen) != 0)
		return -1;
	for (size_t hops = 0; at->output == OUTPUT_AGENT; hops++) {
		const char *to = at->output_target;
		struct placement *p;

		if (strcmp(to, m->name) == 0 && m->trigger == TRIGGER_INBOX) {
			problem_at(why, whylen, m, m->line_of_output,
			    "output: its answers would come back to %s from %s, "
			    "each starting the next run for ever",
			    m->name, at->name);
			return -1;
		}
		/* Not the placement of an earlier agent of the same name. */
		p = strcmp(to, m->name) == 0 ? NULL : placement_find(s, to);
		if (at == m && strcmp(to, m->name) == 0) {
			problem_at(why, whylen, m, m->line_of_output,
			    "output: agent %s has no inbox (its trigger is not "
			    "inbox)",
			    to);
			return -1;
		}
		if (at == m && (p == NULL || !p->alive)) {
			char meant[CONFIG_NAME_MAX + 32];

			problem_at(why, whylen, m, m->line_of_output,
			    "output: no agent %s is running%s", to,
			    running_meant(s, to, meant, sizeof(meant)));
			return -1;
		}
		if (at == m && p->m.trigger != TRIGGER_INBOX) {
			problem_at(why, whylen, m, m->line_of_output,
			    "output: agent %s has no inbox (its trigger is not "
			    "inbox)",
			    to);
			return -1;
		}
		if (at == m && !template_uses(p->m.prompt, "input")) {
			problem_at(why, whylen, m, m->line_of_output,
			    "output: agent %s's prompt has no {{input}}: the "
			    "answers would be lost unread",
			    to);
			return -1;
		}
		/* Beyond its first hop, a chain that ends or only leads
		 * into a loop of others is theirs to answer for. */
		if (p == NULL || !p->alive || hops > s->nplaced)
			return 0;
		at = &p->m;
	}
	return 0;
}

/* A diag's problems, one log line each: a log is read a line at a time,
 * and each problem names its own file and line. */
static void
log_lines(const char *what, const char *text)
{
	while (text != NULL && *text != '\0') {
		size_t n = strcspn(text, "\n");

		if (n > 0)
			log_warnx("%s: %.*s", what, (int)n, text);
		text += n + (text[n] == '\n');
	}
}

/*
 * Why the agents directory has no agent `name` though a manifest there
 * names it: the first of what was told of the manifest left out, into
 * why. Returns 0 if no manifest left out names it.
 */
static int
left_out_why(const struct fleet *f, const char *name, const char *told,
    char *why, size_t whylen)
{
	for (size_t i = 0; i < f->nrejected && told != NULL; i++) {
		struct manifest m;
		struct diag d = {0};
		size_t n = strlen(f->rejected[i]);
		const char *line;
		int named;

		manifest_load(&m, f->rejected[i], &d);
		named = strcmp(m.name, name) == 0;
		manifest_free(&m);
		diag_free(&d);
		if (!named)
			continue;
		for (line = told; *line != '\0';) {
			size_t len = strcspn(line, "\n");

			if (strncmp(line, f->rejected[i], n) == 0 &&
			    line[n] == ':') {
				snprintf(why, whylen, "%.*s", (int)len, line);
				return 1;
			}
			line += len + (line[len] == '\n');
		}
	}
	return 0;
}

/*
 * A manifest for spawn: one of the agents directory by name, or a file.
 * Returns 0 with m loaded, or -1 with why set (m then needs no freeing).
 */
static int
spawn_manifest(struct supervisor *s, const char *arg, int is_file,
    struct manifest *m, int *from_dir, char *why, size_t whylen)
{
	struct diag d = {0};
	struct placement *p = placement_find(s, arg);
	char path[PATH_MAX], tier_why[PATH_MAX + 256];

	*from_dir = 0;
	if (is_file) {
		snprintf(path, sizeof(path), "%s", arg);
	} else if (p != NULL) {
		/* A stopped agent starts again from its manifest's text now. */
		snprintf(path, sizeof(path), "%s", p->m.path);
		*from_dir = p->from_dir;
	} else {
		struct fleet f;
		const struct manifest *found;

		fleet_load(&f, s->agents_dir, &s->conf, NULL, NULL, &d);
		found = fleet_find(&f, arg);
		if (found == NULL) {
			/* Its manifest left out says why, not that it is not
			 * there. */
			if (left_out_why(&f, arg, d.text, why, whylen))
				log_lines("spawn", d.text);
			else
				snprintf(why, whylen,
				    "no agent %s in the agents directory %.300s",
				    arg, s->agents_dir);
			diag_free(&d);
			fleet_free(&f);
			return -1;
		}
		diag_free(&d);
		snprintf(path, sizeof(path), "%s", found->path);
		fleet_free(&f);
		*from_dir = 1;
	}
	if (manifest_load(m, path, &d) > 0) {
		snprintf(why, whylen, "%s", d.text);
		/* One line for ollamaxctl: the rest is in the log. */
		why[strcspn(why, "\n")] = '\0';
		log_lines("spawn", d.text);
		goto bad;
	}
	if (config_tier_fault(&s->conf, m->tier, tier_why, sizeof(tier_why)) !=
	    0) {
		snprintf(why, whylen, "%.300s:%d: tier: %.690s", path,
		    m->line_of_tier, tier_why);
		goto bad;
	}
	if (!is_file && strcmp(m->name, arg) != 0) {
		snprintf(
		    why, whylen, "%.300s now names agent %s", path, m->name);
		goto bad;
	}
	if (output_problem(s, m, why, whylen) != 0)
		goto bad;
	diag_free(&d);
	return 0;
bad:
	diag_free(&d);
	manifest_free(m);
	return -1;
}

/* A worker's answer to a message, relayed to the worker that sent it. */
static void
forward_done(void *arg, int err, const void *data, size_t len)
{
	struct ipc_call *call = arg;
	char why[128];

	if (err != 0) {
		snprintf(why, sizeof(why), "the worker did not answer: %s",
		    ipc_strerror(err));
		reply_ctl(call, 0, why);
		return;
	}
	ipc_reply(call, data, len);
}

/* A message for an agent's inbox, from another worker's agent. */
static void
deliver(struct supervisor *s, struct ipc_call *call, struct msg_deliver *d)
{
	struct placement *p = placement_find(s, d->to);
	struct msg_writer w;
	const char *data;
	size_t len;
	char why[160];

	if (p == NULL || !p->alive) {
		snprintf(why, sizeof(why), "agent %s is not running", d->to);
		reply_ctl(call, 0, why);
		return;
	}
	if (s->children[p->worker + 1].state != PROC_RUNNING) {
		snprintf(why, sizeof(why), "worker %d of %s is %s", p->worker,
		    d->to, proc_state_name(s->children[p->worker + 1].state));
		reply_ctl(call, 0, why);
		return;
	}
	if (ctl_refused_late(
	        d->until_ms, why, sizeof(why), "a message for %s", d->to)) {
		reply_ctl(call, 0, why);
		return;
	}
	/* Past the sender's own until, the worker would act for nobody. */
	d->until_ms = ctl_until(CTL_WORKER_MS, d->until_ms);
	msg_deliver_encode(&w, d);
	data = msg_data(&w, &len);
	if (ipc_request(s->workers[p->worker], data, len, CTL_WORKER_MS,
	        forward_done,
	        call) != 0)
		reply_ctl(call, 0, "cannot reach the worker");
	msg_writer_free(&w);
}

static int
same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return a != NULL && b != NULL && stat(a, &sa) == 0 &&
	    stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	    sa.st_ino == sb.st_ino;
}

/* fleet_runs_from_fn: the file of the directory a live agent runs from. */
static const char *
running_from_dir(const char *name, void *arg)
{
	struct placement *p = placement_find(arg, name);

	return p != NULL && p->alive && p->from_dir ? p->m.path : NULL;
}

/* A file's name as a log line may carry it: a newline in it would forge
 * a line, an escape sequence act on a terminal. */
static const char *
shown_path(const char *path, char *shown, size_t size)
{
	return utf8_shown(path != NULL ? path : "", shown, size);
}

/* A problem of a reload: logged, and the first kept for its answer. */
static void __attribute__((format(printf, 3, 4)))
problem(char *first, size_t len, const char *fmt, ...)
{
	char *line;
	va_list ap;
	int n;

	va_start(ap, fmt);
	/* Whole: it may name two paths of PATH_MAX. */
	n = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("out of memory");
	log_warnx("reload: %s", line);
	if (first[0] == '\0')
		snprintf(first, len, "%.500s", line);
	free(line);
}

/*
 * Reads the agents directory again: new manifests start, removed ones
 * stop, changed ones start again from their new text; a bad manifest is
 * reported and the rest carry on, the agent it names, if running, as it
 * was. Agents started with spawn -f from elsewhere are left alone, even
 * when a manifest of the directory takes their name: that is a problem to
 * report. A directory that cannot be read changes nothing: returns -1.
 */
static int
reload(struct supervisor *s, char *summary, size_t len)
{
	struct fleet f;
	struct diag d = {0};
	char why[256], shown[PATH_MAX], other[PATH_MAX], first[512] = "";
	int started = 0, stopped = 0, changed = 0, bad;

	/* Its workers are going: nothing it started would last. */
	if (s->stopping) {
		snprintf(summary, len,
		    "the supervisor is stopping: the agents directory is not "
		    "read again");
		log_info("reload: %s", summary);
		return -1;
	}
	bad = fleet_load(&f, s->agents_dir, &s->conf, running_from_dir, s, &d);
	if (f.unread) {
		/* A directory swapped or not yet mounted is no fleet gone.
		 * What could not be read, and why, is the diagnostic's. */
		snprintf(summary, len, "%.*s: nothing changed",
		    d.text != NULL ? (int)strcspn(d.text, "\n") : 0,
		    d.text != NULL ? d.text : "");
		log_warnx("reload: %s", summary);
		diag_free(&d);
		fleet_free(&f);
		return -1;
	}
	if (d.text != NULL) {
		log_lines("reload", d.text);
		snprintf(first, sizeof(first), "%.*s",
		    (int)strcspn(d.text, "\n"), d.text);
	}
	diag_free(&d);
	for (size_t i = 0; i < s->nplaced;) {
		struct placement *p = &s->placed[i];

		if (!p->from_dir) {
			i++;
		} else if (fleet_rejected(&f, p->m.path)) {
			if (p->alive)
				log_warnx("reload: %s keeps running as it was: "
				          "%s has errors",
				    p->m.name,
				    shown_path(
				        p->m.path, shown, sizeof(shown)));
			i++;
		} else if (fleet_find(&f, p->m.name)) {
			i++;
		} else if (!p->alive && !p->unanswered) {
			/* Stopped, and its manifest removed: gone. */
			placement_remove(s, p);
		} else if (agent_command(s, NULL, CMD_KILL, p->m.name, NULL,
		               NULL, 0, 0, why, sizeof(why)) == 0) {
			s->pending->forget = 1;
			stopped++;
			i++;
		} else {
			problem(first, sizeof(first),
			    "%s: agent %s not stopped: %s",
			    shown_path(p->m.path, shown, sizeof(shown)),
			    p->m.name, why);
			bad++;
			i++;
		}
	}
	for (size_t i = 0; i < f.count; i++) {
		struct manifest *m = &f.agents[i];
		struct placement *p = placement_find(s, m->name);
		enum command_kind kind;
		char name[CONFIG_NAME_MAX + 1];

		if (p != NULL && p->alive && !p->from_dir &&
		    same_file(p->m.path, m->path)) {
			/* Started by hand from the directory's own file,
			 * which spawn -f names by its real path: the
			 * directory's spelling tells whether it changed. */
			free(p->m.path);
			p->m.path = strdup(m->path);
			if (p->m.path == NULL)
				fatal("out of memory");
			p->from_dir = 1;
		}
		if (p != NULL && p->alive && p->from_dir &&
		    strcmp(p->m.path, m->path) != 0 &&
		    fleet_rejected(&f, p->m.path)) {
			/* Its own file still names it, but has errors: the
			 * agent runs on as it was, and keeps its name. */
			problem(first, sizeof(first),
			    "%s:%d: name: \"%s\" is %s's, which "
			    "runs it: left out",
			    shown_path(m->path, shown, sizeof(shown)),
			    m->line_of_name, m->name,
			    shown_path(p->m.path, other, sizeof(other)));
			bad++;
			continue;
		}
		if (p != NULL && p->alive && manifest_same(&p->m, m)) {
			/* Agents the directory now has count as its own. */
			p->from_dir = 1;
			continue;
		}
		if (p != NULL && (p->alive || p->unanswered) && !p->from_dir) {
			/* Someone started it by hand: replacing it behind
			 * their back would lose what they chose. */
			problem(first, sizeof(first),
			    "%s:%d: agent %s runs from %s (spawn "
			    "-f): kill it to start this one",
			    shown_path(m->path, shown, sizeof(shown)),
			    m->line_of_name, m->name,
			    p->m.path != NULL
			        ? shown_path(p->m.path, other, sizeof(other))
			        : "elsewhere");
			bad++;
			continue;
		}
		kind = p != NULL && p->alive ? CMD_RESPAWN : CMD_SPAWN;
		if (senders_problem(s, m, &f, why, sizeof(why)) != 0) {
			problem(first, sizeof(first), "%s: agent %s %s", why,
			    m->name,
			    kind == CMD_SPAWN ? "left out"
			                      : "keeps running as it was");
			bad++;
			continue;
		}
		snprintf(name, sizeof(name), "%s", m->name);
		if (agent_command(s, NULL, kind, name, m, NULL, 0, 0, why,
		        sizeof(why)) != 0) {
			problem(first, sizeof(first),
			    "%s:%d: agent %s not %s: %s",
			    shown_path(m->path, shown, sizeof(shown)),
			    m->line_of_name, name,
			    kind == CMD_SPAWN ? "started" : "changed", why);
			bad++;
			continue;
		}
		s->pending->from_dir = 1;
		if (kind == CMD_SPAWN)
			started++;
		else
			changed++;
	}
	fleet_free(&f);
	/* The first problem in the answer too: a daemon's log may be out
	 * of the caller's sight. */
	snprintf(summary, len,
	    "reload: %d started, %d stopped, %d changed, %d problem%s%s%s%s",
	    started, stopped, changed, bad, bad == 1 ? "" : "s",
	    first[0] != '\0' ? ": " : "", first,
	    bad > 1 && first[0] != '\0' ? " (the others in the log)" : "");
	log_info("%s", summary);
	return 0;
}

/*
 * A path or URL for a JSON answer, which must be UTF-8: a byte that is not
 * shows as U+FFFD, rather than cost the answer its entry, or its body.
 */
static json_t *
json_text(const char *text)
{
	size_t len;
	char *repaired;
	json_t *j;

	if (utf8_invalid_at(text, strlen(text)) < 0)
		return json_string(text);
	repaired = utf8_repaired(text, strlen(text), &len);
	j = json_stringn(repaired, len);
	free(repaired);
	return j;
}

/* The backend as the broker's latest report has it, for status and
 * queue. */
static json_t *
backend_state_json(const struct supervisor *s)
{
	static const char *const words[] = {
	    [BACKEND_UNKNOWN] = "unknown",
	    [BACKEND_REACHABLE] = "reachable",
	    [BACKEND_UNREACHABLE] = "unreachable",
	};
	const struct msg_report *r = &s->children[0].report;
	int64_t away_ms = backend_away_ms(s);

	return json_pack("{s:o,s:s,s:I,s:o}", "url",
	    json_text(s->conf.backend_url), "state", words[r->backend],
	    "unreachable_for_s", (json_int_t)(away_ms > 0 ? away_ms / 1000 : 0),
	    "error", away_ms >= 0 ? json_text(r->backend_error) : json_null());
}

static json_t *
status_json(struct supervisor *s)
{
	json_t *procs = json_array(), *tiers = json_object(),
	       *resident = json_array(), *outside = json_array();
	int64_t running = 0, failing = 0, inbox = 0,
	        bad = (int64_t)s->bad_frames;
	const struct msg_report *broker = &s->children[0].report;

	json_array_append_new(procs,
	    json_pack("{s:s,s:i,s:i,s:s,s:i,s:I}", "role", "supervisor",
	        "index", 0, "pid", (int)getpid(), "state",
	        s->stopping ? "stopping" : "running", "restarts", 0, "rss_kb",
	        (json_int_t)proc_rss_kb(0)));
	for (int i = 0; i < s->nchildren; i++) {
		struct child *c = &s->children[i];
		/* Read now: a report would be a second late, and none has
		 * come from a child just started. */
		long rss = c->pid > 0 ? proc_rss_kb(c->pid) : 0;

		json_array_append_new(procs,
		    json_pack("{s:s,s:i,s:i,s:s,s:i,s:I}", "role",
		        role_name(c->role), "index", c->index, "pid",
		        (int)c->pid, "state", proc_state_name(c->state),
		        "restarts", c->restart.restarts, "rss_kb",
		        (json_int_t)rss));
		/* Counters come from each child's latest report. */
		bad += c->report.bad_frames;
		if (c->role != ROLE_WORKER)
			continue;
		running += c->report.agents;
		failing += c->report.agents_failing;
		inbox += c->report.queued;
	}
	for (size_t i = 0; i < s->conf.ntiers; i++)
		json_object_set_new(tiers, s->conf.tiers[i].name,
		    json_string(s->conf.tiers[i].model));
	for (int i = 0; i < broker->nresident; i++)
		json_array_append_new(
		    resident, json_string(broker->resident[i]));
	for (int i = 0; i < broker->noutside; i++)
		json_array_append_new(outside, json_string(broker->outside[i]));
	return json_pack("{s:{s:i,s:I,s:s,s:o,s:I},s:o,s:{s:I,s:I,s:I,s:I},"
	                 "s:{s:I,s:I,s:I,s:o,s:o,s:I,s:I,s:I,s:s?,s:s?,s:f,s:b,"
	                 "s:o,s:o,s:o}}",
	    "supervisor", "pid", (int)getpid(), "uptime_s",
	    (json_int_t)((msg_clock_ms() - s->start_ms) / 1000), "version",
	    PACKAGE_VERSION, "runtime_dir", json_text(s->runtime), "bad_frames",
	    (json_int_t)bad, "processes", procs, "agents", "total",
	    (json_int_t)agents_placed(s), "running", (json_int_t)running,
	    "failed", (json_int_t)failing, "inbox", (json_int_t)inbox, "broker",
	    "slots", (json_int_t)s->conf.parallel, "busy",
	    (json_int_t)broker->busy, "queued", (json_int_t)broker->queued,
	    "resident", resident, "outside", outside, "loads",
	    (json_int_t)broker->loads, "served", (json_int_t)broker->served,
	    "failed", (json_int_t)broker->failed, "next_switch",
	    broker->next_switch[0] ? broker->next_switch : NULL,
	    "next_switch_why",
	    broker->next_switch_why[0] ? broker->next_switch_why : NULL,
	    "offered_load", broker->offered_load, "overloaded",
	    broker->overloaded, "backend", json_text(s->conf.backend_url),
	    "backend_state", backend_state_json(s), "tiers", tiers);
}

/* The broker's plan, as its latest report has it. */
static json_t *
queue_json(struct supervisor *s)
{
	const struct msg_report *r = &s->children[0].report;
	json_t *models = json_array();

	for (int i = 0; i < r->nmodels; i++) {
		const struct msg_model_report *m = &r->models[i];

		json_array_append_new(models,
		    json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:b}", "name",
		        m->name, "state", m->state, "vram_mb",
		        (json_int_t)m->need_mb, "in_flight",
		        (json_int_t)m->in_flight, "waiting",
		        (json_int_t)m->waiting, "oldest_wait_ms",
		        (json_int_t)m->oldest_wait_ms, "loads",
		        (json_int_t)m->loads, "pinned", m->pin));
	}
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:s?,s:s?,s:f,s:b,s:o,s:o}",
	    "slots", (json_int_t)s->conf.parallel, "busy", (json_int_t)r->busy,
	    "waiting", (json_int_t)r->queued, "loads", (json_int_t)r->loads,
	    "unloads", (json_int_t)r->unloads, "next_switch",
	    r->next_switch[0] ? r->next_switch : NULL, "next_switch_why",
	    r->next_switch_why[0] ? r->next_switch_why : NULL, "offered_load",
	    r->offered_load, "overloaded", r->overloaded, "backend_state",
	    backend_state_json(s), "models", models);
}

static json_t *
agents_json(struct supervisor *s)
{
	json_t *list = json_array();

	for (size_t i = 0; i < s->nplaced; i++) {
		const struct placement *p = &s->placed[i];

		/* An agent runs only while its worker does. */
		enum proc_state ws = s->children[p->worker + 1].state;
		const char *state = p->unanswered ? "unknown"
		    : p->start_failed             ? "failed"
		    : !p->alive                   ? "stopped"
		    : ws == PROC_RUNNING          ? "running"
		                                  : proc_state_name(ws);

		json_array_append_new(list,
		    json_pack("{s:s,s:i,s:s,s:s,s:o}", "name", p->m.name,
		        "worker", p->worker, "state", state, "tier", p->m.tier,
		        "manifest", json_text(p->m.path ? p->m.path : "")));
	}
	return json_pack("{s:o}", "agents", list);
}

/* Commands that change nothing: asked twice, they do nothing twice. */
static int
only_looks(const char *verb)
{
	return strcmp(verb, "status") == 0 || strcmp(verb, "agents") == 0 ||
	    strcmp(verb, "queue") == 0;
}

/*
 * A command that changes something, sent again under its id (see once.h):
 * 1 when call is a copy of one seen before, answered now or with that
 * one; else 0, why set if it is refused, and the command remembered as
 * under way when it is not.
 */
static int
copy_of_earlier(struct supervisor *s, struct ipc_call *call,
    const struct msg_ctl *ctl, char *why, size_t whylen)
{
	int64_t now = msg_clock_ms();
	/* A copy sent later may carry an until up to that much later, and
	 * one past its own until is refused, remembered or not. */
	int64_t keep_ms = ctl->until_ms != 0
	    ? ctl->until_ms + CTL_ACT_MARGIN_MS
	    : now + CTL_WORKER_MS + CTL_CLIENT_MARGIN_MS;
	const char *answer;
	size_t len;

	if (ctl->id == 0 || only_looks(ctl->verb))
		return 0;
	switch (once_begin(&s->once, ctl->id,
	    once_print(ctl->verb, ctl->arg, ctl->input, ctl->wait), keep_ms,
	    now, call, &answer, &len)) {
	case ONCE_NEW:
		return 0;
	case ONCE_JOINED:
		return 1;
	case ONCE_ANSWERED:
		ipc_reply(call, answer, len);
		return 1;
	case ONCE_OTHER:
		snprintf(why, whylen,
		    "request id %016" PRIx64 " came before with another "
		    "command: %s is not carried out",
		    ctl->id, ctl->verb);
		return 0;
	case ONCE_BUSY:
		snprintf(why, whylen,
		    "too many commands are under way: %s is not carried out; "
		    "try again",
		    ctl->verb);
		return 0;
	}
	return 0;
}

/*
 * ctl.sock: status, agents, reload and stop are answered here; spawn,
 * spawn-file, kill, restart and run when the worker has carried them out.
 * A copy of a command that changes something is answered as its first.
 */
static void
ctl_request(void *arg, struct ipc_call *call, const void *data, size_t len)
{
	struct supervisor *s = arg;
	struct msg_reader r;
	struct msg_ctl ctl;
	struct msg_ctl_reply reply = {.ok = 1, .from_supervisor = 1};
	struct msg_writer w;
	json_t *body = NULL;
	char *body_text;
	char why[sizeof(reply.error)] = "";
	int stop = 0;

	if (msg_open(&r, data, len) != MSG_OK ||
	    msg_ctl_decode(&r, &ctl) != MSG_OK) {
		/* A ctl client gets told what was wrong with its frame. */
		s->bad_frames++;
		snprintf(why, sizeof(why), "bad request: %s",
		    r.detail[0] ? r.detail : msg_error_name(r.error));
		memset(&ctl, 0, sizeof(ctl));
	} else if (copy_of_earlier(s, call, &ctl, why, sizeof(why))) {
		goto later;
	} else if (why[0] != '\0') {
		/* refused, said why */
	} else if (ctl_refused_late(
	               ctl.until_ms, why, sizeof(why), "%s", ctl.verb)) {
		/* refused, said why */
	} else if (strcmp(ctl.verb, "status") == 0) {
		body = status_json(s);
	} else if (strcmp(ctl.verb, "agents") == 0) {
		body = agents_json(s);
	} else if (strcmp(ctl.verb, "queue") == 0) {
		body = queue_json(s);
	} else if (strcmp(ctl.verb, "reload") == 0) {
		char summary[1024];

		if (reload(s, summary, sizeof(summary)) == 0)
			body = json_pack("{s:s}", "summary", summary);
		else
			snprintf(why, sizeof(why), "%s", summary);
	} else if (strcmp(ctl.verb, "stop") == 0) {
		stop = 1;
	} else if (ctl.arg == NULL &&
	    (strcmp(ctl.verb, "spawn") == 0 ||
	        strcmp(ctl.verb, "spawn-file") == 0 ||
	        strcmp(ctl.verb, "kill") == 0 ||
	        strcmp(ctl.verb, "restart") == 0 ||
	        strcmp(ctl.verb, "run") == 0)) {
		snprintf(why, sizeof(why), "%s needs an argument", ctl.verb);
	} else if (strcmp(ctl.verb, "spawn") == 0 ||
	    strcmp(ctl.verb, "spawn-file") == 0) {
		struct manifest m;
		int from_dir;

		if (spawn_manifest(s, ctl.arg, ctl.verb[5] == '-', &m,
		        &from_dir, why, sizeof(why)) == 0) {
			char name[CONFIG_NAME_MAX + 1];

			snprintf(name, sizeof(name), "%s", m.name);
			if (agent_command(s, call, CMD_SPAWN, name, &m, NULL, 0,
			        ctl.until_ms, why, sizeof(why)) == 0) {
				s->pending->from_dir = from_dir;
				goto later;
			}
			/* Not taken: the manifest is still this call's. */
			manifest_free(&m);
		}
	} else if (strcmp(ctl.verb, "kill") == 0 ||
	    strcmp(ctl.verb, "restart") == 0 || strcmp(ctl.verb, "run") == 0) {
		enum command_kind kind = ctl.verb[0] == 'k' ? CMD_KILL
		    : ctl.verb[1] == 'e'                    ? CMD_RESTART
		                                            : CMD_RUN;

		if (agent_command(s, call, kind, ctl.arg, NULL, ctl.input,
		        ctl.wait, ctl.until_ms, why, sizeof(why)) == 0)
			goto later;
	} else {
		snprintf(why, sizeof(why), "unknown command \"%s\"", ctl.verb);
	}
	reply.ok = why[0] == '\0';
	snprintf(reply.error, sizeof(reply.error), "%s", why);
	if (body != NULL) {
		reply.body = json_dumps(body, JSON_COMPACT);
		json_decref(body);
	}
	body_text = reply.body;
	if (msg_ctl_reply_fit(&reply))
		log_warnx("ctl: %s: %s", ctl.verb, reply.error);
	msg_ctl_reply_encode(&w, &reply);
	answer_ctl_frame(s, call, &w);
	free(body_text);
later:
	msg_close(&r);
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
			s->children[i].killed_in_stop = 1;
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
		c->starting_at_stop = c->state == PROC_STARTING;
		c->state = c->pid > 0 ? PROC_STOPPING : PROC_STOPPED;
		if (c->pid > 0)
			kill(c->pid, SIGTERM);
	}
	if (all_children_gone(s)) {
		ev_break(s->loop, EVBREAK_ALL);
		return;
	}
	/* Children get ROLE_STOP_GRACE_S to finish what they are doing. */
	ev_timer_set(&s->stop_deadline, ROLE_STOP_GRACE_S, 0);
	ev_timer_start(s->loop, &s->stop_deadline);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct supervisor *s = w->data;

	(void)loop;
	(void)revents;
	if (w->signum == SIGHUP) {
		char summary[1024];

		reload(s, summary, sizeof(summary));
		return;
	}
	begin_stop(s, w->signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* Sections that are valid but do nothing: most likely a model named
 * otherwise in its tier. To the log when starting, else to stderr. */
static void
say_unused_models(const struct config *c, const char *path, int to_log)
{
	for (size_t i = 0; i < c->nmodels; i++) {
		const struct model_conf *m = &c->models[i];
		char what[CONFIG_MODEL_MAX + 64], shown[PATH_MAX];

		if (config_model_used(c, m->name))
			continue;
		snprintf(what, sizeof(what),
		    "[model.%s]: no tier names this model: its settings have "
		    "no effect",
		    m->name);
		if (to_log)
			log_warnx("%s:%d: %s",
			    shown_path(path, shown, sizeof(shown)), m->line,
			    what);
		else
			fprintf(stderr, "%s:%d: warning: %s\n",
			    shown_path(path, shown, sizeof(shown)), m->line,
			    what);
	}
}

/*
 * Whether dir, not there yet, could not be made: its parent is missing or
 * not a directory (it is made alone, not with its parents). Says why.
 */
static int
cannot_make(const char *dir, char *why, size_t len)
{
	char parent[PATH_MAX], *slash;
	struct stat st;
	int found;

	snprintf(parent, sizeof(parent), "%s", dir);
	if ((slash = strrchr(parent, '/')) == NULL || slash == parent)
		return 0;
	*slash = '\0';
	found = stat(parent, &st) == 0;
	if (found && S_ISDIR(st.st_mode) && access(parent, W_OK | X_OK) == 0)
		return 0;
	if (found && S_ISDIR(st.st_mode))
		snprintf(why, len, "%s cannot be made: %s: %s", dir, parent,
		    strerror(errno));
	else
		snprintf(why, len, "%s cannot be made: %s %s", dir, parent,
		    found ? "is not a directory" : "does not exist");
	return 1;
}

/* Whether dir is there; where it cannot be looked for (a directory on
 * its path that may not be searched), why, as start would find it. */
static int
missing(const char *dir, char *why, size_t len)
{
	if (access(dir, F_OK) == 0)
		return 0;
	if (errno == ENOENT || errno == ENOTDIR)
		return 1;
	snprintf(why, len, "%s: %s", dir, strerror(errno));
	return -1;
}

/* The state and runtime dirs already there, or to be made, as start
 * would take them. */
static int
dirs_on_disk(const struct config *c, struct diag *d)
{
	char dir[PATH_MAX], why[2 * PATH_MAX + 128];
	struct stat st;
	int bad = 0, gone;

	config_resolve(c->dir, c->state_dir, dir, sizeof(dir));
	if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
		snprintf(why, sizeof(why), "%s is not a directory", dir);
		config_dir_problem(c, "state_dir", why, d);
		bad++;
	} else if ((gone = missing(dir, why, sizeof(why))) < 0 ||
	    (gone > 0 && cannot_make(dir, why, sizeof(why)))) {
		config_dir_problem(c, "state_dir", why, d);
		bad++;
	}
	config_runtime_dir(c, dir, sizeof(dir));
	if ((gone = missing(dir, why, sizeof(why))) == 0 &&
	    runtime_dir_problem(dir, 0, why, sizeof(why)) != 0) {
		config_dir_problem(c, "runtime_dir", why, d);
		bad++;
	} else if (gone < 0 ||
	    (gone > 0 && cannot_make(dir, why, sizeof(why)))) {
		config_dir_problem(c, "runtime_dir", why, d);
		bad++;
	}
	return bad;
}

static int
load_all(const char *path, struct config *c, struct fleet *f, int verbose)
{
	struct diag d = {0};
	char agents[PATH_MAX], real[PATH_MAX];
	int bad;

	/* The file as start reads it: relative paths are from its own
	 * folder, not a symbolic link's or the current one's. */
	if (realpath(path, real) != NULL)
		path = real;
	memset(f, 0, sizeof(*f));
	bad = config_load(c, path, &d);
	if (bad == 0)
		bad += dirs_on_disk(c, &d);
	if (bad == 0 || c->ntiers > 0) {
		config_resolve(c->dir, c->agents_dir, agents, sizeof(agents));
		bad += fleet_load(f, agents, c, NULL, NULL, &d);
	}
	if (d.text != NULL)
		fputs(d.text, stderr);
	say_unused_models(c, path, 0);
	if (verbose && bad == 0)
		printf("%s: ok: %zu tier%s, %zu model%s, %zu agent%s\n", path,
		    c->ntiers, c->ntiers == 1 ? "" : "s", c->nmodels,
		    c->nmodels == 1 ? "" : "s", f->count,
		    f->count == 1 ? "" : "s");
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
		log_error("cannot find this program (%s)", argv0);
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
	log_errorx("ollamax-broker is neither beside %s nor in %s",
	    s->self_path, PKGLIBEXECDIR);
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
daemonize(const sigset_t *waiter_mask)
{
	int fds[2], devnull;
	pid_t pid;
	char buf[512];
	ssize_t n, got = 0;

	/* Past this point nothing reaches the terminal: a log that would go
	 * nowhere is said while it still can be. */
	if (log_syslog_unheard(buf, sizeof(buf)) != NULL)
		fprintf(stderr,
		    "ollamax-supervisor: warning: %s: the daemon's log is "
		    "lost; run it in the foreground, where its log goes to "
		    "standard error\n",
		    buf);
	/* Close-on-exec: the children must not hold the pipe open. */
	if (pipe2(fds, O_CLOEXEC) != 0)
		fatal("pipe");
	pid = fork();
	if (pid < 0)
		fatal("fork");
	if (pid > 0) {
		/* The waiting process is stopped as any command is. */
		sigprocmask(SIG_SETMASK, waiter_mask, NULL);
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

/*
 * A --daemon start fails once the fleet has not got ready within
 * start_timeout. Crash loops end it sooner; but a child that hangs at
 * every start is killed by the watchdog and started again too seldom to
 * be left FAILED, and the command would wait for good.
 */
static void
ready_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct supervisor *s = w->data;
	char why[1024];
	const char *sep = ": ";
	size_t n;

	(void)loop;
	(void)revents;
	if (s->announced_ready || s->stopping)
		return;
	n = (size_t)snprintf(why, sizeof(why), "not ready within %gs",
	    (double)s->conf.start_timeout_ms / 1000);
	for (int i = 0; i < s->nchildren && n < sizeof(why); i++) {
		const struct child *c = &s->children[i];

		if (c->state == PROC_RUNNING)
			continue;
		n += (size_t)snprintf(why + n, sizeof(why) - n,
		    "%s%s %d %s, restarted %d time%s", sep, role_name(c->role),
		    c->index, proc_state_name(c->state), c->restart.restarts,
		    c->restart.restarts == 1 ? "" : "s");
		sep = "; ";
	}
	/* Room for the line's end the waiting command reads up to. */
	why[sizeof(why) - 2] = '\0';
	log_warnx("%s", why);
	strcat(why, "\n");
	daemon_failed(s, why);
	begin_stop(s, "the fleet could not get ready");
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

static void
free_all(struct supervisor *s)
{
	for (size_t i = 0; i < s->nplaced; i++)
		manifest_free(&s->placed[i].m);
	free(s->placed);
	while (s->pending != NULL)
		command_forget(s->pending);
	for (int i = 0; i < s->nchildren; i++)
		child_forget_pages(&s->children[i]);
	free(s->children);
	free(s->workers);
	once_free(&s->once);
	config_free(&s->conf);
}

/* How long the supervisor's sockets get to close once its children are
 * gone: see ipc_close_deadline. */
#define CLOSE_OVERDUE_S 10

/*
 * The descriptors the supervisor was started with, past the standard
 * three, are its caller's: the children get none of them, and a daemon
 * keeps none, or a caller that reads a pipe to its end would wait for the
 * fleet's.
 */
static void
inherited_fds_let_go(int detach)
{
	long max = sysconf(_SC_OPEN_MAX);

	if (close_range(3, ~0U, detach ? 0 : CLOSE_RANGE_CLOEXEC) == 0)
		return;
	/* A kernel before 5.11 (CLOSE_RANGE_CLOEXEC), or before 5.9. */
	for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++) {
		int flags = fcntl(fd, F_GETFD);

		if (flags < 0)
			continue;
		if (detach)
			close(fd);
		else
			fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
	}
}

static int
cmd_start(const char *self, const char *path, int detach)
{
	static struct supervisor sup;
	struct supervisor *s = &sup;
	struct diag d = {0};
	struct fleet fleet;
	char why[PATH_MAX + 128];
	sigset_t stop_signals, before;

	/*
	 * Until the loop watches them, a stop or a reload waits: by default
	 * it would end the supervisor halfway through its start, sockets and
	 * runtime dir left behind. (nng's threads, started meanwhile, keep
	 * them blocked: they go to this thread.)
	 */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop_signals, &before);
	inherited_fds_let_go(detach);
	s->start_ms = msg_clock_ms();
	if (find_programs(s, self) != 0)
		return 1;
	if (realpath(path, s->conf_path) == NULL) {
		log_error("%s", path);
		return 1;
	}
	if (config_load(&s->conf, s->conf_path, &d) > 0 ||
	    dirs_on_disk(&s->conf, &d) > 0) {
		fputs(d.text, stderr);
		diag_free(&d);
		log_errorx("%s is not valid: nothing started", s->conf_path);
		return 1;
	}
	say_unused_models(&s->conf, s->conf_path, 1);
	config_resolve(s->conf.dir, s->conf.agents_dir, s->agents_dir,
	    sizeof(s->agents_dir));
	config_resolve(
	    s->conf.dir, s->conf.state_dir, s->state_dir, sizeof(s->state_dir));
	/* A bad manifest is reported; the other agents carry on. */
	if (fleet_load(&fleet, s->agents_dir, &s->conf, NULL, NULL, &d) > 0)
		log_lines("agents", d.text);
	diag_free(&d);
	config_runtime_dir(&s->conf, s->runtime, sizeof(s->runtime));
	s->ready_fd = detach ? daemonize(&before) : -1;
	if (prepare_runtime(s, why, sizeof(why) - 1) != 0) {
		log_errorx("%s", why);
		strcat(why, "\n");
		daemon_failed(s, why);
		fleet_free(&fleet);
		return 1;
	}
	if (detach)
		write_pid_file(s);
	s->loop = EV_DEFAULT;
	/* Every `run --wait` holds a context until its run is over. */
	s->ctl = ipc_listen(s->loop, s->ctl_url, 256, ctl_request, s);
	/* A message between agents holds a context while its worker is asked:
	 * reports, which the watchdog counts on, must not wait behind them. */
	s->hub = ipc_listen(s->loop, s->hub_url, 256, hub_request, s);
	if (s->ctl == NULL || s->hub == NULL) {
		daemon_failed(s, "cannot listen in the runtime dir\n");
		fleet_free(&fleet);
		return 1;
	}

	s->nworkers = (int)config_worker_count(&s->conf);
	s->nchildren = s->nworkers + 1;
	s->children = calloc((size_t)s->nchildren, sizeof(*s->children));
	s->workers = calloc((size_t)s->nworkers, sizeof(*s->workers));
	s->placed = calloc(fleet.count + 1, sizeof(*s->placed));
	if (s->children == NULL || s->workers == NULL || s->placed == NULL)
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
	sigprocmask(SIG_SETMASK, &before, NULL);
	ev_child_init(&s->sigchld, sigchld_cb, 0, 0);
	s->sigchld.data = s;
	ev_child_start(s->loop, &s->sigchld);
	ev_init(&s->stop_deadline, stop_deadline_cb);
	s->stop_deadline.data = s;
	ev_timer_init(&s->watchdog, watchdog_cb, WATCHDOG_TICK_MS / 1000.0,
	    WATCHDOG_TICK_MS / 1000.0);
	s->watchdog.data = s;
	s->watchdog_tick_ms = msg_clock_ms();
	ev_timer_start(s->loop, &s->watchdog);
	if (s->ready_fd >= 0 && s->conf.start_timeout_ms > 0) {
		ev_timer_init(&s->ready_deadline, ready_deadline_cb,
		    (double)s->conf.start_timeout_ms / 1000.0, 0);
		s->ready_deadline.data = s;
		ev_timer_start(s->loop, &s->ready_deadline);
	}
	signal(SIGPIPE, SIG_IGN);
	/* Log lines past the file size limit are lost, not the supervisor. */
	signal(SIGXFSZ, SIG_IGN);

	/* The directory's agents are dealt round the workers. */
	for (size_t i = 0; i < fleet.count; i++) {
		struct placement *p = &s->placed[s->nplaced++];

		p->m = fleet.agents[i];
		memset(&fleet.agents[i], 0, sizeof(fleet.agents[i]));
		p->worker = (int)(i % (size_t)s->nworkers);
		p->alive = 1;
		p->from_dir = 1;
	}
	fleet_free(&fleet);
	for (int w = 0; w < s->nworkers; w++) {
		char url[PATH_MAX * 4];

		snprintf(
		    url, sizeof(url), "ipc://%s/worker-%d.sock", s->runtime, w);
		s->workers[w] = ipc_dial(s->loop, url);
		if (s->workers[w] == NULL)
			return 1;
	}
	for (int i = 0; i < s->nchildren; i++)
		child_start(&s->children[i]);
	log_info("starting: config %s, runtime %s, %d worker%s, %zu agent%s",
	    s->conf_path, s->runtime, s->nworkers, s->nworkers == 1 ? "" : "s",
	    s->nplaced, s->nplaced == 1 ? "" : "s");
	ev_run(s->loop, 0);

	/* nng 1.5.2 can hang in a socket's close (nng issue #1498, seen
	 * after a worker had been away for minutes): the stop ends all the
	 * same, its children already gone. */
	ipc_close_deadline("ollamax-supervisor", CLOSE_OVERDUE_S, 1,
	    "; its runtime files stay");
	/* Requests to the workers end first: a command they leave pending
	 * answers the ctl or hub call it came from, which must still be. */
	for (int w = 0; w < s->nworkers; w++)
		ipc_client_close(s->workers[w]);
	ipc_server_close(s->ctl);
	ipc_server_close(s->hub);
	ipc_close_deadline_met();
	remove_runtime(s);
	free_all(s);
	if (s->stopped_unclean > 0) {
		log_warnx("stopped: %d child%s did not stop cleanly",
		    s->stopped_unclean, s->stopped_unclean == 1 ? "" : "ren");
		return 1;
	}
	log_info("stopped");
	return 0;
}

/* Asks the running supervisor to stop, and waits for it to be gone;
 * given: the configuration -c named, or NULL. */
static int
cmd_stop(const char *given)
{
	struct diag d = {0};
	char runtime[PATH_MAX], ctl_path[PATH_MAX + 16];
	/* The path, and what answered there. */
	char why[PATH_MAX + 2048];
	pid_t pid;
	int rc;

	if (config_ctl_runtime_dir(given, runtime, sizeof(runtime), &d) != 0) {
		fputs(d.text, stderr);
		fprintf(stderr,
		    "ollamax-supervisor: %s is not valid: nothing stopped\n",
		    config_default_path(given));
		diag_free(&d);
		return 1;
	}
	diag_free(&d);
	snprintf(ctl_path, sizeof(ctl_path), "%s/ctl.sock", runtime);
	rc = ctl_stop_and_wait(ctl_path, &pid, why, sizeof(why));
	if (rc == 3 && why[0] != '\0')
		fprintf(stderr, "ollamax-supervisor: %s\n", why);
	else if (rc == 3)
		fprintf(stderr,
		    "ollamax-supervisor: no supervisor answers on %s\n",
		    ctl_path);
	else if (rc == 1)
		fprintf(stderr,
		    "ollamax-supervisor: supervisor %d is still running\n",
		    (int)pid);
	return rc;
}

static const char usage_text[] =
    "usage: ollamax-supervisor [-c FILE] [--log-level LEVEL] check\n"
    "       ollamax-supervisor [-c FILE] [--log-level LEVEL] start [-d]\n"
    "       ollamax-supervisor [-c FILE] [--log-level LEVEL] stop\n"
    "       ollamax-supervisor --role worker --index N --runtime DIR\n"
    "       ollamax-supervisor --version | -h | --help\n"
    "options:\n"
    "  -c, --config=FILE  the configuration (default: $OLLAMAX_CONF when\n"
    "                     set and not empty, else\n"
    "                     " SYSCONF_OLLAMAX "/ollamax.conf)\n"
    "  --log-level=LEVEL  error, warn, info or debug, for this process\n"
    "                     only (default: $OLLAMAX_LOG, else info)\n"
    "  -d, --daemon       start: detach, log to syslog, write\n"
    "                     supervisor.pid in the runtime directory\n"
    "  --role, --index, --runtime\n"
    "                     a worker, as the supervisor starts it: not by\n"
    "                     hand\n"
    "  -h, --help         print this and exit\n"
    "  --version          print the version and exit\n";

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
	char why[256];
	int opt, index = 0, level, detach = 0;

	log_init("ollamax-supervisor", 0);
	log_level_from_env();
	while ((opt = cliarg_getopt(
	            argc, argv, ":c:dh", longopts, why, sizeof(why))) != -1) {
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
			index = (int)cliarg_long("ollamax-supervisor",
			    "--index", optarg, 0, INT_MAX);
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
			fprintf(stderr, "ollamax-supervisor: %s\n%s", why,
			    usage_text);
			return 2;
		}
	}
	if (role != NULL) {
		if (runtime == NULL) {
			fputs(usage_text, stderr);
			return 2;
		}
		if (strcmp(role, "worker") != 0) {
			fprintf(stderr,
			    "ollamax-supervisor: --role %s: this program runs workers; the broker is ollamax-broker\n",
			    role);
			return 2;
		}
		return role_main(argc, argv, role, index, runtime, worker_main);
	}
	if (optind == argc) {
		fprintf(stderr,
		    "ollamax-supervisor: a command is required: "
		    "check, start or stop\n%s",
		    usage_text);
		return 2;
	}
	verb = argv[optind];
	if (optind + 1 < argc) {
		fprintf(stderr,
		    "ollamax-supervisor: %s: nothing goes after the "
		    "command %s\n%s",
		    argv[optind + 1], verb, usage_text);
		return 2;
	}
	if (detach && strcmp(verb, "start") != 0) {
		fprintf(stderr,
		    "ollamax-supervisor: --daemon goes with start only\n%s",
		    usage_text);
		return 2;
	}
	if (strcmp(verb, "check") == 0)
		return cmd_check(config_default_path(conf));
	if (strcmp(verb, "start") == 0)
		return cmd_start(argv[0], config_default_path(conf), detach);
	if (strcmp(verb, "stop") == 0)
		return cmd_stop(conf);
	fprintf(stderr,
	    "ollamax-supervisor: %s: not a command (check, start or stop)\n%s",
	    verb, usage_text);
	return 2;
}
