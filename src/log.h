/*
 * log.h: the one logger of every ollamax program.
 *
 * Messages go to stderr (foreground) or syslog (daemon). The *x forms leave
 * errno out; fatal and fatalx never return.
 */
#ifndef OLLAMAX_LOG_H
#define OLLAMAX_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* Sets the program name shown in each line and where lines go. */
void log_init(const char *progname, int use_syslog);
/* Why syslog's messages would be lost, in why, or NULL when something
 * takes them: glibc drops them unsaid where nothing listens on _PATH_LOG. */
const char *log_syslog_unheard(char *why, size_t len);
/* Takes the level from $OLLAMAX_LOG (error|warn|info|debug), else info. */
void log_level_from_env(void);
/* Lines above this level are dropped. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error|warn|info|debug"; returns -1 on an unknown word. */
int log_level_parse(const char *word);

/* What makes the process fail, when it exits by itself after. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
