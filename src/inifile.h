/*
 * inifile.h: the one INI reader of ollamax (inih underneath), with the line
 * number of every key, and a list of diagnostics so that a file is judged
 * whole: every error is reported, not only the first.
 */
#ifndef OLLAMAX_INIFILE_H
#define OLLAMAX_INIFILE_H

#include <stddef.h>
#include <stdint.h>

/* inih reads lines of at most 198 characters; longer values continue on
 * indented lines. */
#define INI_LINE_MAX 198

/*
 * Problems, kept in the order a reader takes them in whatever order they
 * were found: by file, the files in the order they were first named (read,
 * or told of), then by line, those of a file as a whole last, and those of
 * one line in the order told.
 */
struct diag {
	char *text; /* "file:line: message\n" lines, in that order */
	size_t len;
	size_t cap;
	int count;
	struct diag_line *lines; /* where each line of text stands */
	size_t lines_cap;
	void *files; /* a tree of the files named, each with its place */
	size_t nfiles;
};

/* Adds a problem; line 0 is none (the file as a whole). */
void diag_add(struct diag *d, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Gives file its place among the files told of, if it has none yet: its
 * problems, even those found after another file's, are told before the
 * problems of files named later. */
void diag_file(struct diag *d, const char *file);
void diag_free(struct diag *d);

/* One key = value of a file, with where it stands. */
struct ini_item {
	const char *section;
	const char *key;
	const char *value;
	int line;         /* of this line */
	int section_line; /* of its [section] */
	int continued;    /* an indented line that continues the key before */
};

/*
 * Called for each [section] as it opens, with key and value NULL, then for
 * each key and each continuation line in it. A handler reports its own
 * problems through its diag and goes on, so that the rest of the file is
 * judged too.
 *
 * For a [section], returns 0 if its keys join those of any earlier section
 * of its name (one given in both is told as given twice), or -1 if the
 * handler refused the section, which it told: its keys then go unread,
 * neither passed on nor told again, as repeats or as given. So do those
 * after a [section] line without its ']', or refused for its length or
 * its bytes. For a key, returns 0.
 */
typedef int (*inifile_key_fn)(void *user, const struct ini_item *item);

/* The keys a file gave, section by section (inifile_parse). */
struct ini_keys;

/*
 * Parses path, calling fn for every key. Every problem is added to d:
 * syntax errors, a line too long for the reader (INI_LINE_MAX), a NUL byte,
 * text that is not UTF-8, a key before any section, a key given twice in
 * a section, or in two sections of one name. Returns how many were added,
 * or -1 if the file could not be read (not a regular file, say). If keys
 * is not NULL, *keys is set to the keys given (free with ini_keys_free),
 * or to NULL if the file could not be opened.
 */
int inifile_parse(const char *path, inifile_key_fn fn, void *user,
    struct diag *d, struct ini_keys **keys);
/*
 * The line where section first gave key, or 0 if it gave none. A key whose
 * value was refused, or whose whole line was (bytes that are not UTF-8,
 * say), counts as given: it was told at its line, and is not missing too.
 * keys may be NULL (none given).
 */
int ini_key_given(
    const struct ini_keys *keys, const char *section, const char *key);
void ini_keys_free(struct ini_keys *keys);

/* Value readers: 0 on success, -1 (with a message in d) otherwise. */
int ini_get_int(const char *value, long min, long max, long *out,
    struct diag *d, const char *file, int line, const char *key);
int ini_get_double(const char *value, double min, double max, double *out,
    struct diag *d, const char *file, int line, const char *key);
/* yes or no */
int ini_get_bool(const char *value, int *out, struct diag *d, const char *file,
    int line, const char *key);

#endif
