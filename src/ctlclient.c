/*
 * ctlclient.c: one synchronous request to a running supervisor's control
 * socket, for ollamaxctl and `ollamax-supervisor stop`.
 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "msg.h"
#include "role.h"
#include "utf8.h"

/*
 * The dial keeps to the timeout too. A blocking nng_dial shakes hands
 * before it returns, and nng gives a handshake 10 s of its own: a
 * supervisor that is stopped, its socket still there, would hold the
 * caller that long. At the deadline the socket is closed under the dial,
 * which then fails at once. Only under the dial: nng 1.5.2 does not
 * survive a close racing its own receive timeout (a panic in its expiry
 * loop, or a close that never returns); the send and the receive keep to
 * nng's own timeouts, set to what the dial left.
 */
struct deadline {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct timespec at; /* CLOCK_MONOTONIC */
	nng_socket sock;
	int over;    /* the exchange ended first */
	int expired; /* the deadline came first */
};

static void *
deadline_watch(void *arg)
{
	struct deadline *d = arg;
	int rv = 0;

	pthread_mutex_lock(&d->mu);
	while (!d->over && rv != ETIMEDOUT)
		rv = pthread_cond_timedwait(&d->cond, &d->mu, &d->at);
	d->expired = !d->over;
	pthread_mutex_unlock(&d->mu);
	if (d->expired)
		nng_close(d->sock);
	return NULL;
}

static int
deadline_start(
    struct deadline *d, pthread_t *thread, nng_socket sock, int timeout_ms)
{
	pthread_condattr_t attr;

	memset(d, 0, sizeof(*d));
	d->sock = sock;
	clock_gettime(CLOCK_MONOTONIC, &d->at);
	d->at.tv_sec += timeout_ms / 1000;
	d->at.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (d->at.tv_nsec >= 1000000000) {
		d->at.tv_sec++;
		d->at.tv_nsec -= 1000000000;
	}
	pthread_mutex_init(&d->mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(thread, NULL, deadline_watch, d) != 0) {
		pthread_cond_destroy(&d->cond);
		pthread_mutex_destroy(&d->mu);
		return -1;
	}
	return 0;
}

/* 1 if the deadline came before the exchange ended. */
static int
deadline_end(struct deadline *d, pthread_t thread)
{
	pthread_mutex_lock(&d->mu);
	d->over = 1;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->mu);
	pthread_join(thread, NULL);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->mu);
	return d->expired;
}

#define CTL_DIAL_MIN_MS 1000
/* How often, and how long at most, a refused dial is tried again while a
 * supervisor holds its lock: its own gaps without a listener (from the
 * lock to the listen at start, a listener put back, a path something else
 * held, tried again each second) are shorter. */
#define CTL_REDIAL_MS 10
#define CTL_REDIAL_GRACE_MS 2500

/* Whether process pid has the file of st open. */
static int
holds_open(pid_t pid, const struct stat *st)
{
	char dir[64], fd_path[320];
	struct dirent *e;
	struct stat fd_st;
	int found = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	if ((d = opendir(dir)) == NULL)
		return 0;
	while (!found && (e = readdir(d)) != NULL) {
		snprintf(fd_path, sizeof(fd_path), "%s/%s", dir, e->d_name);
		found = stat(fd_path, &fd_st) == 0 &&
		    fd_st.st_dev == st->st_dev && fd_st.st_ino == st->st_ino;
	}
	closedir(d);
	return found;
}

pid_t
ctl_lock_holder(const char *ctl_path)
{
	char path[PATH_MAX], line[256];
	const char *slash = strrchr(ctl_path, '/');
	unsigned int major_no, minor_no;
	unsigned long ino;
	struct stat st;
	pid_t holder = 0;
	int pid;
	FILE *f;

	/* Another name is no supervisor's socket, whatever lies beside it
	 * (an -s mistyped): no lock speaks for it. */
	if (strcmp(slash != NULL ? slash + 1 : ctl_path, "ctl.sock") != 0)
		return 0;
	snprintf(path, sizeof(path), "%.*s/supervisor.lock",
	    slash != NULL ? (int)(slash - ctl_path) : 1,
	    slash != NULL ? ctl_path : ".");
	if (stat(path, &st) != 0 || (f = fopen("/proc/locks", "r")) == NULL)
		return 0;
	/*
	 * "1: FLOCK  ADVISORY  WRITE 1234 fe:00:10952797 0 EOF"; a waiter's
	 * line has "->" before FLOCK. The device is the filesystem's, which
	 * is not always the one stat(2) gives (btrfs gives a subvolume's):
	 * where it differs, the holder's open files tell.
	 */
	while (holder == 0 && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "%*d: FLOCK %*s %*s %d %x:%x:%lu", &pid,
		        &major_no, &minor_no, &ino) == 4 &&
		    ino == (unsigned long)st.st_ino && pid > 0 &&
		    ((major_no == major(st.st_dev) &&
		         minor_no == minor(st.st_dev)) ||
		        holds_open(pid, &st)))
			holder = pid;
	fclose(f);
	return holder;
}

/*
 * Whether the socket at ctl_path is another user's, and whose: its
 * process cuts a peer of another uid before reading it (see ipc.c), which
 * the client would take for a connection closed after its command.
 */
static int
other_users_socket(const char *ctl_path, char *why, size_t whylen)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(ctl_path, '/'), *what = ctl_path;
	struct stat st;
	const struct passwd *owner;

	if (stat(ctl_path, &st) != 0) {
		/* Inside another user's runtime dir, of mode 0700, or a dir
		 * of theirs above it: the nearest dir that can be looked at
		 * tells whose it is. */
		if (errno != EACCES || slash == NULL || slash == ctl_path)
			return 0;
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - ctl_path),
		    ctl_path);
		for (;;) {
			char *cut;

			if (stat(dir, &st) == 0)
				break;
			if (errno != EACCES ||
			    (cut = strrchr(dir, '/')) == NULL || cut == dir)
				return 0;
			*cut = '\0';
		}
		if (!S_ISDIR(st.st_mode) || st.st_uid == geteuid())
			return 0;
		what = dir;
	} else if (!S_ISSOCK(st.st_mode) || st.st_uid == geteuid()) {
		return 0;
	}
	owner = getpwuid(st.st_uid);
	snprintf(why, whylen,
	    "%.900s belongs to uid %u%s%s%s: its supervisor takes commands "
	    "from that user only",
	    what, (unsigned)st.st_uid, owner ? " (" : "",
	    owner ? owner->pw_name : "", owner ? ")" : "");
	return 1;
}

/*
 * nng's dialer dials again as soon as its connection closes (at once half
 * the time: nng 1.5.2 draws its back-off as a signed number), and the close
 * of the socket that follows a cut may fall in that dial's handshake: a peer
 * gone halfway through, which stops the listener just put back too, and so
 * on while the command is sent again. Each copy of a command goes on a
 * socket of its own (ctl_call): with its connection, the dialer is done.
 */
static void
dialer_done_with_its_pipe(nng_pipe pipe, nng_pipe_ev ev, void *unused)
{
	(void)ev;
	(void)unused;
	nng_dialer_close(nng_pipe_dialer(pipe));
}

/* One copy of a command, under id: ctl_call's codes. */
static int
ctl_send(const char *ctl_path, const char *verb, const char *arg,
    const char *input, int flags, int timeout_ms, uint64_t id,
    struct msg_ctl_reply *reply)
{
	struct msg_ctl req = {.json = (flags & CTL_JSON) != 0,
	    .wait = (flags & CTL_WAIT) != 0,
	    .arg = (char *)arg,
	    .input = (char *)input,
	    .id = id};
	struct msg_writer w;
	struct msg_reader r;
	nng_socket sock;
	char url[4200];
	const char *data;
	size_t len;
	void *buf = NULL;
	struct deadline deadline;
	pthread_t watch;
	nng_time dial_at;
	int rv, sent, expired, left, refused = 0;

	memset(reply, 0, sizeof(*reply));
	if (other_users_socket(ctl_path, reply->error, sizeof(reply->error)))
		return CTL_OTHER_USER;
	snprintf(req.verb, sizeof(req.verb), "%s", verb);
	snprintf(url, sizeof(url), "ipc://%s", ctl_path);
	if (nng_req0_open(&sock) != 0)
		return CTL_UNREACHABLE;
	nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, MSG_MAX_FRAME + 1024);
	nng_pipe_notify(
	    sock, NNG_PIPE_EV_REM_POST, dialer_done_with_its_pipe, NULL);
	dial_at = nng_clock();
	/* Not under a second: a dial cut halfway through its handshake
	 * stops nng's listener for a while (see ipc.c), and a supervisor
	 * that answers shakes hands well within one. */
	if (deadline_start(&deadline, &watch, sock,
	        timeout_ms > CTL_DIAL_MIN_MS ? timeout_ms : CTL_DIAL_MIN_MS) !=
	    0) {
		nng_close(sock);
		return CTL_UNREACHABLE;
	}
	/*
	 * A blocking dial fails at once when nobody listens (or the backlog
	 * is full): unreachable, unless a supervisor lives that will listen
	 * again, a listener being put back (see ipc.c) or not yet up. One the
	 * deadline cut found nobody to shake hands within the time:
	 * unreachable too, but a waited run has only run out of its time.
	 */
	for (;;) {
		rv = nng_dial(sock, url, NULL, 0);
		/* nng's own 10 s for a handshake ran out before a waited
		 * run's time: the deadline decides, not nng. */
		if (rv == NNG_ETIMEDOUT && (flags & CTL_WAIT)) {
			nng_msleep(CTL_REDIAL_MS);
			continue;
		}
		if (rv != NNG_ECONNREFUSED && rv != NNG_EAGAIN)
			break;
		refused = 1;
		if (nng_clock() - dial_at >= CTL_REDIAL_GRACE_MS ||
		    ctl_lock_holder(ctl_path) == 0)
			break;
		nng_msleep(CTL_REDIAL_MS);
	}
	if (rv == 0)
		refused = 0;
	expired = deadline_end(&deadline, watch);
	if (rv != 0 || expired) {
		nng_close(sock);
		return expired && !refused && (flags & CTL_WAIT)
		    ? CTL_UNSENT
		    : CTL_UNREACHABLE;
	}
	/* The send and the receive get what the dial left of the time. */
	left = timeout_ms - (int)(nng_clock() - dial_at);
	if (left < 1)
		left = 1;
	nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, left);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, left);
	req.until_ms = ctl_until(left, 0);
	msg_ctl_encode(&w, &req);
	data = msg_data(&w, &len);
	sent = nng_send(sock, (void *)data, len, 0);
	msg_writer_free(&w);
	rv = sent == 0 ? nng_recv(sock, &buf, &len, NNG_FLAG_ALLOC) : sent;
	/*
	 * A receive that timed out as the answer came leaves nng 1.5.2's
	 * REQ pipe in a state its close waits on for ever (the reaper stuck
	 * in req0_pipe_stop). The caller exits soon after: the process's end
	 * closes that socket.
	 */
	if (rv != NNG_ETIMEDOUT)
		nng_close(sock);
	if (sent != 0)
		return CTL_UNREACHABLE;
	/* Sent, and without nng's resends (ctl_call sends again itself, under
	 * the command's id) a connection that closes fails the receive: a
	 * listener put back, or a supervisor that died. */
	if (rv != 0)
		return rv == NNG_ETIMEDOUT ? CTL_UNANSWERED : CTL_CUT;
	rv = 0;
	if (msg_open(&r, buf, len) != MSG_OK ||
	    msg_ctl_reply_decode(&r, reply) != MSG_OK) {
		snprintf(reply->error, sizeof(reply->error),
		    "its answer is no control reply (%s)", r.detail);
		reply->ok = 0;
		rv = CTL_NOT_SUPERVISOR;
	} else if (!reply->from_supervisor) {
		rv = CTL_NOT_SUPERVISOR;
		msg_ctl_reply_free(reply);
	}
	msg_close(&r);
	nng_free(buf, len);
	return rv;
}

/* A command's id: 64 random bits, never 0, which names none. */
static uint64_t
request_id(void)
{
	uint64_t id = 0;
	struct timespec now;

	while (id == 0) {
		if (getrandom(&id, sizeof(id), 0) == (ssize_t)sizeof(id))
			continue;
		/* No getrandom(2) (a kernel before 3.17): one that another
		 * client's id is unlikely to be, for the few seconds it is
		 * remembered. */
		clock_gettime(CLOCK_REALTIME, &now);
		id = ((uint64_t)getpid() << 40) ^ (uint64_t)now.tv_sec << 20 ^
		    (uint64_t)now.tv_nsec;
	}
	return id;
}

/* Between a copy of a command cut short and the next. */
#define CTL_RETRY_MS 250

/*
 * A command whose connection is cut is sent again, under the same id,
 * within its time: the supervisor's listener, deaf for a moment after a
 * client hung up halfway, is put back within seconds (ollamax-supervisor(8),
 * DIAGNOSTICS), and cuts what it held. The supervisor carries out a command
 * once whatever copies of it come, and answers each copy with the first's
 * answer.
 */
int
ctl_call(const char *ctl_path, const char *verb, const char *arg,
    const char *input, int flags, int timeout_ms, struct msg_ctl_reply *reply)
{
	uint64_t id = request_id();
	int64_t began = msg_clock_ms();
	int rc, cut = 0;

	for (;;) {
		int left = timeout_ms - (int)(msg_clock_ms() - began);

		rc = ctl_send(
		    ctl_path, verb, arg, input, flags, left, id, reply);
		cut |= rc == CTL_CUT;
		if (rc != CTL_CUT || left <= CTL_RETRY_MS * 2)
			break;
		msg_ctl_reply_free(reply);
		usleep(CTL_RETRY_MS * 1000);
	}
	/* A copy that went nowhere leaves the one cut perhaps carried out. */
	if (cut && (rc == CTL_UNREACHABLE || rc == CTL_UNSENT))
		rc = CTL_CUT;
	return rc;
}

/*
 * Whether the supervisor pid is gone. One that has exited but that its
 * parent has not reaped yet is still found by kill(2): a zombie, as
 * /proc tells.
 */
static int
supervisor_gone(pid_t pid)
{
	char path[64], fields[512];
	const char *after_name;
	size_t n;
	FILE *f;

	if (kill(pid, 0) != 0 && errno == ESRCH)
		return 1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	/* No /proc, or one that hides it: only kill(2) can tell. */
	if ((f = fopen(path, "r")) == NULL)
		return kill(pid, 0) != 0 && errno == ESRCH;
	n = fread(fields, 1, sizeof(fields) - 1, f);
	fclose(f);
	fields[n] = '\0';
	/* "PID (NAME) STATE ...", and a name may hold a ')'. */
	after_name = strrchr(fields, ')');
	return after_name != NULL && after_name[1] == ' ' &&
	    (after_name[2] == 'Z' || after_name[2] == 'X');
}

/* Why an answer to stop's call was none, in why (see ctl_stop_and_wait). */
static void
not_supervisor(const char *ctl_path, const struct msg_ctl_reply *reply,
    const char *otherwise, char *why, size_t whylen)
{
	char said[sizeof(reply->error)];

	/* Another program's words, for a terminal. */
	snprintf(why, whylen, "what answers on %s is not a supervisor: %s",
	    ctl_path,
	    reply->error[0] ? utf8_shown(reply->error, said, sizeof(said))
	                    : otherwise);
}

int
ctl_stop_and_wait(const char *ctl_path, pid_t *pid, char *why, size_t whylen)
{
	struct msg_ctl_reply reply;
	json_t *status;
	struct timespec tick = {0, 20 * 1000000};
	int rc;

	*pid = 0;
	why[0] = '\0';
	rc = ctl_call(ctl_path, "status", NULL, NULL, CTL_JSON,
	    CTL_WORKER_MS + CTL_CLIENT_MARGIN_MS, &reply);
	if (rc == CTL_NOT_SUPERVISOR)
		not_supervisor(ctl_path, &reply,
		    "its answer is no supervisor's", why, whylen);
	if (rc == CTL_OTHER_USER)
		snprintf(why, whylen, "%s", reply.error);
	if (rc != 0)
		return 3;
	status = reply.ok && reply.body ? json_loads(reply.body, 0, NULL) : NULL;
	if (status != NULL)
		*pid = (pid_t)json_integer_value(json_object_get(
		    json_object_get(status, "supervisor"), "pid"));
	json_decref(status);
	/* Whatever answers without a supervisor's pid is none. */
	if (*pid <= 0)
		not_supervisor(
		    ctl_path, &reply, "its status names no pid", why, whylen);
	msg_ctl_reply_free(&reply);
	if (*pid <= 0)
		return 3;
	rc = ctl_call(ctl_path, "stop", NULL, NULL, 0,
	    CTL_WORKER_MS + CTL_CLIENT_MARGIN_MS, &reply);
	if (rc == CTL_NOT_SUPERVISOR)
		not_supervisor(ctl_path, &reply,
		    "its answer is no supervisor's", why, whylen);
	else if (rc == 0 && !reply.ok)
		snprintf(why, whylen, "supervisor %d refuses to stop: %s",
		    (int)*pid, reply.error);
	msg_ctl_reply_free(&reply);
	/* The stop may have been taken all the same when its answer did not
	 * come (a connection closed, or a supervisor busy stopping): whether
	 * the process goes tells. */
	if (rc == CTL_NOT_SUPERVISOR || rc == CTL_UNREACHABLE ||
	    (rc == 0 && why[0] != '\0'))
		return 3;
	for (int i = 0; i < 500; i++) {
		if (supervisor_gone(*pid))
			return 0;
		nanosleep(&tick, NULL);
	}
	return 1;
}
