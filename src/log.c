#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* The most of a message one syslog datagram carries: one past the
 * socket's buffer is dropped whole. */
#define SYSLOG_PART 8192
/* The most of the program's name a line on stderr shows, and the room its
 * stamp, tag and "(continued) " take: a line's text keeps most of PIPE_BUF. */
#define LINE_NAME_MAX 64
#define LINE_FRAME 64

static const char *log_progname = "ollamax";
static int log_to_syslog;
static enum log_level log_threshold = LOG_LEVEL_INFO;
/* Set by fatal(): its line says the process ends, where an error's says
 * something failed. */
static int log_exiting;

static void
write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		data += n;
		len -= (size_t)n;
	}
}

void
log_init(const char *progname, int use_syslog)
{
	log_progname = progname;
	log_to_syslog = use_syslog;
	if (use_syslog)
		openlog(progname, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

const char *
log_syslog_unheard(char *why, size_t len)
{
	/* glibc tries a datagram socket first, then a stream one. */
	static const int types[] = {SOCK_DGRAM, SOCK_STREAM};
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int err = 0;

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", _PATH_LOG);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0), rv;

		if (fd < 0) {
			err = errno;
			break;
		}
		rv = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
		err = rv == 0 ? 0 : errno;
		close(fd);
		if (rv == 0)
			return NULL;
		/* A socket of the other type. */
		if (err != EPROTOTYPE)
			break;
	}
	snprintf(why, len, "nothing takes syslog's messages on %s (%s)",
	    _PATH_LOG, strerror(err));
	return why;
}

void
log_set_level(enum log_level level)
{
	log_threshold = level;
}

enum log_level
log_get_level(void)
{
	return log_threshold;
}

void
log_level_from_env(void)
{
	const char *env = getenv("OLLAMAX_LOG");
	int level = env != NULL ? log_level_parse(env) : -1;

	log_threshold = level >= 0 ? (enum log_level)level : LOG_LEVEL_INFO;
}

int
log_level_parse(const char *word)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(word, names[i]) == 0)
			return (int)i;
	return -1;
}

/*
 * The message, formatted on the heap: an agent's whole answer may be
 * logged, and agents log from coroutine stacks as small as 16 KiB.
 */
static char *
format_message(int with_errno, int saved_errno, const char *fmt, va_list ap)
{
	va_list again;
	int n;
	char *msg;

	va_copy(again, ap);
	n = vsnprintf(NULL, 0, fmt, again);
	va_end(again);
	if (n < 0)
		n = 0;
	msg = malloc((size_t)n + 256);
	if (msg == NULL)
		return NULL;
	vsnprintf(msg, (size_t)n + 1, fmt, ap);
	if (with_errno)
		snprintf(msg + n, 256, ": %s", strerror(saved_errno));
	return msg;
}

/*
 * The most of a message one line on stderr may carry, or 0 for no limit.
 * The processes of a fleet share stderr: on a file or a terminal one write
 * is one line, but on a pipe or a socket only writes up to PIPE_BUF are
 * kept whole, and longer lines of two processes would mix.
 */
static size_t
stderr_part(void)
{
	struct stat st;

	if (fstat(STDERR_FILENO, &st) != 0 ||
	    !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		return 0;
	return PIPE_BUF - LINE_NAME_MAX - LINE_FRAME;
}

/* The length of the part of msg (len bytes) that goes first, at most
 * `most`: parts end between characters. */
static size_t
part_length(const char *msg, size_t len, size_t most)
{
	size_t n = most;

	if (most == 0 || len <= most)
		return len;
	while (n > most - 4 && ((unsigned char)msg[n] & 0xC0) == 0x80)
		n--;
	return ((unsigned char)msg[n] & 0xC0) == 0x80 ? most : n;
}

/* A part lands whole only if it is one datagram or one write. */
static void
emit_part(enum log_level level, const char *part, size_t len, int continued)
{
	static const char *const tags[] = {"error", "warning", "info", "debug"};
	static const int priorities[] = {
	    LOG_CRIT, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	const char *more = continued ? "(continued) " : "";
	const char *tag = log_exiting ? "fatal" : tags[level];
	struct timespec ts;
	struct tm tm;
	char stamp[32], *line;
	size_t cap;
	int n;

	if (log_to_syslog) {
		syslog(priorities[level], "%s%.*s", more, (int)len, part);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	cap = len + LINE_NAME_MAX + LINE_FRAME;
	line = malloc(cap);
	if (line == NULL)
		return;
	n = snprintf(line, cap, "%s.%03ld %.*s: %s: %s%.*s\n", stamp,
	    ts.tv_nsec / 1000000, LINE_NAME_MAX, log_progname, tag, more,
	    (int)len, part);
	write_all(STDERR_FILENO, line, (size_t)(n < (int)cap ? n : (int)cap - 1));
	free(line);
}

/* A line break, or a control byte (C1 ones, in UTF-8, too). */
static int
untame(const unsigned char *p)
{
	return (*p < 0x20 && *p != '\t') || *p == 0x7f ||
	    (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f);
}

/*
 * The message as the log takes it: a text logged whole (an agent's
 * answer, a message lost) holds what others wrote, so each of its lines
 * after the first starts with a tab, lest it read as a line of the log,
 * and control bytes, C1 ones included, show as '?', lest they act on a
 * terminal. Returns msg itself when nothing needs it, else a new string
 * (NULL: out of memory).
 */
static char *
tamed(char *msg)
{
	size_t lines = 0, n = 0, wild = 0;
	const unsigned char *p;
	char *out;

	for (p = (const unsigned char *)msg; *p; p++) {
		lines += *p == '\n';
		wild += untame(p);
	}
	if (wild == 0)
		return msg;
	out = malloc(strlen(msg) + lines + 1);
	if (out == NULL)
		return NULL;
	for (p = (const unsigned char *)msg; *p; p++) {
		if (*p == '\n') {
			out[n++] = '\n';
			out[n++] = '\t';
		} else if (untame(p)) {
			out[n++] = '?';
			p += *p == 0xc2;
		} else {
			out[n++] = (char)*p;
		}
	}
	out[n] = '\0';
	return out;
}

static void
log_emit(enum log_level level, int with_errno, const char *fmt, va_list ap)
{
	int saved_errno = errno;
	size_t len, most, n, off = 0;
	char *msg, *shown;

	if (level > log_threshold)
		return;
	msg = format_message(with_errno, saved_errno, fmt, ap);
	if (msg != NULL && (shown = tamed(msg)) != msg) {
		free(msg);
		msg = shown;
	}
	if (msg == NULL) {
		/* Out of memory: the bare format still says what failed. */
		write_all(STDERR_FILENO, fmt, strlen(fmt));
		write_all(STDERR_FILENO, "\n", 1);
		errno = saved_errno;
		return;
	}
	/* A long message goes in parts, each whole where it lands. */
	len = strlen(msg);
	most = log_to_syslog ? SYSLOG_PART : stderr_part();
	do {
		n = part_length(msg + off, len - off, most);
		emit_part(level, msg + off, n, off > 0);
		off += n;
	} while (off < len);
	free(msg);
	errno = saved_errno;
}

#define LOG_BODY(level, with_errno)                                            \
	do {                                                                   \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		log_emit(level, with_errno, fmt, ap);                          \
		va_end(ap);                                                    \
	} while (0)

void
log_warn(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARN, 1);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARN, 0);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_INFO, 0);
}

void
log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_DEBUG, 0);
}

void
log_error(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, 1);
}

void
log_errorx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, 0);
}

void
fatal(const char *fmt, ...)
{
	log_exiting = 1;
	LOG_BODY(LOG_LEVEL_ERROR, 1);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	log_exiting = 1;
	LOG_BODY(LOG_LEVEL_ERROR, 0);
	exit(1);
}
