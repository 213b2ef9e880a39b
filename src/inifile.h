/*
 * inifile.h: the one INI reader of ollamax (inih underneath), with the line
 * number of every key, and a list of diagnostics so that a file is judged
 * whole: every error is reported, not only the first.
 */
#ifndef OLLAMAX_INIFILE_H
#define OLLAMAX_INIFILE_H

#include <stddef.h>
#include <stdint.h>

struct diag {
	char *text; /* "file:line: message\n" lines */
	size_t len;
	size_t cap;
	int count;
};

void diag_add(struct diag *d, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void diag_free(struct diag *d);

/*
 * Called for each key, with its line and the line of its [section]. Returns 0
 * to go on; a handler reports its own problems through the diag it was given
 * and still returns 0 so that the rest of the file is judged.
 */
typedef void (*inifile_key_fn)(void *user, const char *section, const char *key,
    const char *value, int line, int section_line);

/*
 * Parses path, calling fn for every key. Syntax errors and an unreadable
 * file are added to d. Returns the number of diagnostics added.
 */
int inifile_parse(
    const char *path, inifile_key_fn fn, void *user, struct diag *d);

/* Value readers: 0 on success, -1 (with a message in d) otherwise. */
int ini_get_int(const char *value, long min, long max, long *out,
    struct diag *d, const char *file, int line, const char *key);
int ini_get_double(const char *value, double min, double max, double *out,
    struct diag *d, const char *file, int line, const char *key);

#endif
