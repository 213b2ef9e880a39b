#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ini.h>
#include <math.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inifile.h"
#include "utf8.h"

/* A line of a diag's text: where it starts, and what it tells of. */
struct diag_line {
	size_t at;
	size_t file; /* the file's place (diag_file) */
	int line;    /* INT_MAX for the file as a whole */
};

struct diag_file_place {
	size_t place;
	char name[];
};

static int
diag_file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct diag_file_place *)a)->name,
	    ((const struct diag_file_place *)b)->name);
}

/* The place of file among those named, given it now if it has none. */
static size_t
diag_place(struct diag *d, const char *file)
{
	size_t n = strlen(file);
	struct diag_file_place *f = malloc(sizeof(*f) + n + 1), **found;

	if (f == NULL)
		abort();
	f->place = d->nfiles;
	memcpy(f->name, file, n + 1);
	found = tsearch(f, &d->files, diag_file_cmp);
	if (found == NULL)
		abort();
	if (*found != f)
		free(f);
	else
		d->nfiles++;
	return (*found)->place;
}

void
diag_file(struct diag *d, const char *file)
{
	(void)diag_place(d, file);
}

/* Where a line for (file, line) goes: after every line that comes before
 * it or beside it, so that those of one line keep the order told. */
static size_t
diag_slot(const struct diag *d, size_t file, int line)
{
	size_t low = 0, high = (size_t)d->count;

	while (low < high) {
		size_t mid = low + (high - low) / 2;
		const struct diag_line *l = &d->lines[mid];

		if (l->file < file || (l->file == file && l->line <= line))
			low = mid + 1;
		else
			high = mid;
	}
	return low;
}

void
diag_add(struct diag *d, const char *file, int line, const char *fmt, ...)
{
	char msg[512], *said, *moved;
	int n;
	va_list ap;
	size_t shown_len, said_len, place = diag_place(d, file), slot;

	/* A file's name is any bytes, and so are the paths and values a
	 * message quotes: a newline would forge a line of the report, bytes
	 * not UTF-8 would garble it. Both are shown alike, so that a path
	 * a message names reads as the file it is at. */
	char *shown = utf8_repaired(file, strlen(file), &shown_len);

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	said = utf8_repaired(msg, strlen(msg), &said_len);
	utf8_shown(shown, shown, shown_len + 1);
	utf8_shown(said, said, said_len + 1);
	for (;;) {
		/* No text yet is no room, not an offset from NULL. */
		size_t room = d->text != NULL ? d->cap - d->len : 0;
		char *at = d->text != NULL ? d->text + d->len : NULL;

		n = line > 0
		    ? snprintf(at, room, "%s:%d: %s\n", shown, line, said)
		    : snprintf(at, room, "%s: %s\n", shown, said);
		if ((size_t)n < room)
			break;
		d->cap = d->cap * 2 + (size_t)n + 256;
		d->text = realloc(d->text, d->cap);
		if (d->text == NULL)
			abort();
	}
	free(shown);
	free(said);
	if ((size_t)d->count == d->lines_cap) {
		d->lines_cap = d->lines_cap > 0 ? d->lines_cap * 2 : 16;
		d->lines = realloc(d->lines, d->lines_cap * sizeof(*d->lines));
		if (d->lines == NULL)
			abort();
	}
	/* What is told of a file as a whole is mostly concluded from its
	 * lines (a key missing, say): it comes after them. */
	slot = diag_slot(d, place, line > 0 ? line : INT_MAX);
	if (slot < (size_t)d->count) {
		/* Most come in order, or go among the last file's: what is
		 * moved is short. */
		size_t at = d->lines[slot].at;

		moved = malloc((size_t)n);
		if (moved == NULL)
			abort();
		memcpy(moved, d->text + d->len, (size_t)n);
		memmove(d->text + at + n, d->text + at, d->len - at);
		memcpy(d->text + at, moved, (size_t)n);
		free(moved);
		memmove(&d->lines[slot + 1], &d->lines[slot],
		    ((size_t)d->count - slot) * sizeof(*d->lines));
		for (size_t i = slot + 1; i <= (size_t)d->count; i++)
			d->lines[i].at += (size_t)n;
		d->lines[slot].at = at;
	} else {
		d->lines[slot].at = d->len;
	}
	d->lines[slot].file = place;
	d->lines[slot].line = line > 0 ? line : INT_MAX;
	d->len += (size_t)n;
	d->count++;
}

void
diag_free(struct diag *d)
{
	free(d->text);
	free(d->lines);
	tdestroy(d->files, free);
	memset(d, 0, sizeof(*d));
}

/* The most a file may hold, and the most problems told of one. */
#define INI_FILE_MAX (1024 * 1024)
#define INI_PROBLEMS_MAX 50

struct inifile_state {
	FILE *fp;
	const char *path;
	struct diag *diag;
	int line;
	int section_line;
	int continued;
	/* A key line was read since the last [section]: inih reads an
	 * indented line as that key's continuation only then. */
	int have_key;
	/* The section and key as written: inih cuts both at 49 bytes, which
	 * model names outgrow. */
	char section[INI_LINE_MAX + 2];
	char key[INI_LINE_MAX + 2];
	int unreadable;
	int problems_before; /* the diag's count before this file */
	inifile_key_fn fn;
	void *user;
	/* The keys given so far, each with its line: one given twice is a
	 * mistake the reader would settle silently, the later value
	 * winning, and so is one given again in another section of the
	 * same name, which inih reads as one. A tree, lest a file of many
	 * keys take time in its square. */
	void *keys_seen;
	int skipping; /* the lines of a key given twice go unread */
	/* The section was refused, or its header broken: its keys go
	 * unread, as they belong to no section read. */
	int section_refused;
	/* The last line that starts a key was refused: its indented lines
	 * are its own, and go unread with it, rather than continue the key
	 * before (or be blamed on it). */
	int refused_key;
	int drop_line; /* this line goes to inih empty */
};

struct key_seen {
	int line;
	int section_line; /* of the [section] it was given in */
	int refused;      /* its line was refused: given, but not read */
	const char *key;  /* in text, after the section's name */
	char text[];
};

struct ini_keys {
	void *tree; /* of struct key_seen */
};

static int
key_seen_cmp(const void *a, const void *b)
{
	const struct key_seen *x = a, *y = b;
	int by_section = strcmp(x->text, y->text);

	return by_section != 0 ? by_section : strcmp(x->key, y->key);
}

static struct key_seen *
key_seen_new(const char *section, const char *key)
{
	size_t s = strlen(section), k = strlen(key);
	struct key_seen *seen = calloc(1, sizeof(*seen) + s + k + 2);

	if (seen == NULL)
		abort();
	memcpy(seen->text, section, s + 1);
	memcpy(seen->text + s + 1, key, k + 1);
	seen->key = seen->text + s + 1;
	return seen;
}

/*
 * Notes key as given at this line in its section (and any other of the
 * section's name); refused: the line was refused. Returns NULL for a key
 * new there (or given before on a line refused), else where it was given
 * first.
 */
static const struct key_seen *
key_given_before(struct inifile_state *st, const char *key, int refused)
{
	struct key_seen *k = key_seen_new(st->section, key), **found;

	k->line = st->line;
	k->section_line = st->section_line;
	k->refused = refused;
	found = tsearch(k, &st->keys_seen, key_seen_cmp);
	if (found == NULL)
		abort();
	if (*found == k)
		return NULL;
	free(k);
	/* A line refused read nothing: the next of its key is read. */
	if ((*found)->refused && !refused) {
		(*found)->line = st->line;
		(*found)->section_line = st->section_line;
		(*found)->refused = 0;
		return NULL;
	}
	return refused ? NULL : *found;
}

int
ini_key_given(const struct ini_keys *keys, const char *section, const char *key)
{
	struct key_seen *k;
	struct key_seen **found;

	if (keys == NULL)
		return 0;
	k = key_seen_new(section, key);
	found = tfind(k, &keys->tree, key_seen_cmp);
	free(k);
	return found != NULL ? (*found)->line : 0;
}

void
ini_keys_free(struct ini_keys *keys)
{
	if (keys == NULL)
		return;
	tdestroy(keys->tree, free);
	free(keys);
}

/* inih's test for an inline comment: ';' after white space. */
static char *
find_or_comment(char *s, const char *chars)
{
	int was_space = 0;

	while (*s && !strchr(chars, *s) && !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

static void
copy_trimmed(char *out, const char *from, const char *to)
{
	while (to > from && isspace((unsigned char)to[-1]))
		to--;
	memcpy(out, from, (size_t)(to - from));
	out[to - from] = '\0';
}

/*
 * Judges a line the way inih will read it, remembering its section, key
 * and whether it continues the key before. Returns NULL if it is fine,
 * else what is wrong with it.
 */
static const char *
judge_line(struct inifile_state *st, char *line)
{
	char *p = line, *end;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0' || *p == ';' || *p == '#')
		return NULL;
	if (p > line && st->refused_key) {
		st->drop_line = 1;
		return NULL;
	}
	st->refused_key = 0;
	st->continued = p > line && st->have_key;
	if (st->continued)
		return NULL;
	if (*p == '[') {
		const char *after;

		end = find_or_comment(p + 1, "]");
		/* The keys after it are the broken section's, not the one
		 * before's: they go unread, and none is told as given twice
		 * there. */
		if (*end != ']') {
			st->section_refused = 1;
			return "a [section] line without its ']'";
		}
		/* inih keeps the brackets' content as it is, blanks and all. */
		memcpy(st->section, p + 1, (size_t)(end - p - 1));
		st->section[end - p - 1] = '\0';
		st->section_line = st->line;
		st->have_key = 0;
		/* inih tells nothing of a section until a key in it: an
		 * empty one would pass unseen. */
		st->section_refused =
		    st->fn(st->user,
		        &(struct ini_item){.section = st->section,
		            .line = st->line,
		            .section_line = st->line}) != 0;
		/* inih drops what follows, and the line reaches it empty: the
		 * section opens all the same (the reader's own), and a key on
		 * its line is not lost unseen. */
		for (after = end + 1; isspace((unsigned char)*after); after++)
			;
		if (*after != '\0' && *after != ';' && *after != '#')
			return "text after a [section]'s ']': put it on a line "
			       "of its own";
		return NULL;
	}
	end = find_or_comment(p, "=:");
	if (*end != '=' && *end != ':')
		return "syntax error (expected [section] or key = value)";
	copy_trimmed(st->key, p, end);
	/* inih remembers an empty key as none: no line continues it. */
	st->have_key = st->key[0] != '\0';
	return NULL;
}

/* A key line refused whole was given all the same, and told: its key is
 * not missing too (ini_key_given). */
static void
note_refused_key(struct inifile_state *st, char *line)
{
	char key[INI_LINE_MAX + 2];
	const char *end;

	if (st->section_line == 0 || st->section_refused || line[0] == '[' ||
	    line[0] == '\0')
		return;
	end = find_or_comment(line, "=:");
	if (*end != '=' && *end != ':')
		return;
	copy_trimmed(key, line, end);
	if (key[0] != '\0')
		(void)key_given_before(st, key, 1);
}

/*
 * inih asks for one line per call, so counting calls gives line numbers.
 * Each line is judged before inih sees it: one too long for inih's buffer
 * would reach it in pieces and be misread, a NUL byte would cut it short,
 * and text that is not UTF-8 cannot reach Ollama. Such a line is reported
 * and handed over empty, so that inih, which remembers only the first
 * error, never sees one and every line's problem is told.
 */
static char *
inifile_reader(char *buf, int size, void *stream)
{
	struct inifile_state *st = stream;
	/* The judge's copies of sections and keys hold INI_LINE_MAX. */
	size_t len = 0,
	       room = (size_t)size - 2 < INI_LINE_MAX ? (size_t)size - 2
	                                              : INI_LINE_MAX;
	long nul_at = -1, cr_at = -1, bad_at;
	const char *cr;
	int c, last = 0, too_long = 0;
	const char *wrong;

	while ((c = getc(st->fp)) != EOF && c != '\n') {
		if (c == '\0' && nul_at < 0)
			nul_at = (long)len;
		if (len < room)
			buf[len] = (char)c;
		else
			too_long = 1;
		len++;
		last = c;
	}
	/* The CR of a CRLF line end is no part of the line. */
	if (too_long && len == room + 1 && last == '\r') {
		too_long = 0;
		len = room;
	}
	if (ferror(st->fp)) {
		diag_add(st->diag, st->path, st->line + 1, "cannot read: %s",
		    strerror(errno));
		st->unreadable = 1;
		return NULL;
	}
	if (c == EOF && len == 0)
		return NULL;
	/* A file that is no configuration at all (a log, a binary) would
	 * bury the others' problems under its own. */
	if (st->diag->count - st->problems_before >= INI_PROBLEMS_MAX) {
		diag_add(st->diag, st->path, st->line + 1,
		    "%d problems already: the rest of the file is not read",
		    INI_PROBLEMS_MAX);
		st->unreadable = 1;
		return NULL;
	}
	st->line++;
	if (too_long)
		len = room;
	buf[len] = '\0';
	/* inih skips a byte order mark on the first line; so does the
	 * judge, so that the line's "[" is seen. */
	if (st->line == 1 && strncmp(buf, "\xEF\xBB\xBF", 3) == 0) {
		memmove(buf, buf + 3, len - 2);
		len -= 3;
	}
	/* One problem for the whole file, not one a line for its NULs. */
	if (st->line == 1 && len >= 2 &&
	    (memcmp(buf, "\xFF\xFE", 2) == 0 ||
	        memcmp(buf, "\xFE\xFF", 2) == 0)) {
		diag_add(st->diag, st->path, st->line,
		    "UTF-16 text (its byte order mark %02X %02X): save it as "
		    "UTF-8",
		    (unsigned char)buf[0], (unsigned char)buf[1]);
		st->unreadable = 1;
		return NULL;
	}
	/* A CR ends a line only before its LF: lines that end with CR
	 * alone (an old Mac's) would be read as one. */
	if (!too_long && (cr = memchr(buf, '\r', len)) != NULL &&
	    cr + 1 < buf + len)
		cr_at = cr - buf;
	if (too_long)
		diag_add(st->diag, st->path, st->line,
		    "line longer than %d bytes: continue a long value on "
		    "indented lines",
		    (int)room);
	else if (nul_at >= 0)
		diag_add(st->diag, st->path, st->line,
		    "a NUL byte at column %ld", nul_at + 1);
	else if (cr_at >= 0)
		diag_add(st->diag, st->path, st->line,
		    "a carriage return (CR) at column %ld ends no line: lines "
		    "end with LF, or CR LF",
		    cr_at + 1);
	else if ((bad_at = utf8_invalid_at(buf, len)) >= 0)
		diag_add(st->diag, st->path, st->line,
		    "not UTF-8 text: byte 0x%02X at column %ld",
		    (unsigned char)buf[bad_at], bad_at + 1);
	else if ((wrong = judge_line(st, buf)) != NULL)
		diag_add(st->diag, st->path, st->line, "%s", wrong);
	else if (!st->drop_line) {
		buf[len] = '\n';
		buf[len + 1] = '\0';
		return buf;
	}
	st->drop_line = 0;
	/* A header refused for its bytes opens no section read: the keys
	 * after it are not the section's before it. */
	if (buf[0] == '[')
		st->section_refused = 1;
	if (!isspace((unsigned char)buf[0]) && buf[0] != ';' && buf[0] != '#') {
		st->refused_key = 1;
		note_refused_key(st, buf);
	}
	buf[0] = '\n';
	buf[1] = '\0';
	return buf;
}

static int
inifile_handler(
    void *user, const char *section, const char *key, const char *value)
{
	struct inifile_state *st = user;
	struct ini_item item = {
	    .section = st->section,
	    .key = st->key,
	    .value = value,
	    .line = st->line,
	    .section_line = st->section_line,
	    .continued = st->continued,
	};
	const struct key_seen *first;

	(void)section;
	(void)key;
	if (st->section_line == 0) {
		diag_add(st->diag, st->path, st->line,
		    "\"%s\" comes before any [section]", st->key);
		return 1;
	}
	if (st->section_refused)
		return 1;
	if (st->continued) {
		if (!st->skipping)
			st->fn(st->user, &item);
		return 1;
	}
	/* An empty key is no key: its handler tells it. */
	first = st->key[0] != '\0' ? key_given_before(st, st->key, 0) : NULL;
	st->skipping = first != NULL;
	if (first != NULL && first->section_line == st->section_line)
		diag_add(st->diag, st->path, st->line,
		    "%s: given twice in [%s] (first at line %d)", st->key,
		    st->section, first->line);
	else if (first != NULL)
		diag_add(st->diag, st->path, st->line,
		    "%s: given twice in [%s] (first at line %d, in the [%s] "
		    "at line %d)",
		    st->key, st->section, first->line, st->section,
		    first->section_line);
	else
		st->fn(st->user, &item);
	return 1;
}

int
inifile_parse(const char *path, inifile_key_fn fn, void *user, struct diag *d,
    struct ini_keys **keys)
{
	struct inifile_state st = {.path = path,
	    .diag = d,
	    .problems_before = d->count,
	    .fn = fn,
	    .user = user};
	int fd;
	struct stat sb = {0};

	if (keys != NULL)
		*keys = NULL;
	/* The file's problems are told together, in the order files are
	 * read, whichever are found later. */
	diag_file(d, path);
	/* Not blocking: a FIFO named here must not hold the caller up, and
	 * only a regular file is read at all, since a device may never end. */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		diag_add(d, path, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		diag_add(d, path, 0, "%s",
		    S_ISDIR(sb.st_mode) ? "a directory, not a file"
		                        : "not a regular file");
		close(fd);
		return -1;
	}
	/* Not read at all: a stray big file would take the memory and the
	 * time of every start and reload. */
	if (sb.st_size > INI_FILE_MAX) {
		diag_add(d, path, 0,
		    "%lld bytes, more than the %d a configuration file takes",
		    (long long)sb.st_size, INI_FILE_MAX);
		close(fd);
		return -1;
	}
	st.fp = fdopen(fd, "r");
	if (st.fp == NULL)
		abort();
	/* Every line inih could fault was judged and reported already. */
	(void)ini_parse_stream(inifile_reader, &st, inifile_handler, &st);
	if (keys != NULL) {
		*keys = calloc(1, sizeof(**keys));
		if (*keys == NULL)
			abort();
		(*keys)->tree = st.keys_seen;
	} else {
		tdestroy(st.keys_seen, free);
	}
	fclose(st.fp);
	return st.unreadable ? -1 : d->count - st.problems_before;
}

int
ini_get_int(const char *value, long min, long max, long *out, struct diag *d,
    const char *file, int line, const char *key)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (end == value || *end != '\0') {
		diag_add(d, file, line, "%s: \"%s\" is not a whole number", key,
		    value);
		return -1;
	}
	/* Past what a long holds: a whole number still, out of range. */
	if (errno == ERANGE) {
		diag_add(d, file, line, "%s: %s is out of range [%ld, %ld]",
		    key, value, min, max);
		return -1;
	}
	if (v < min || v > max) {
		diag_add(d, file, line, "%s: %ld is out of range [%ld, %ld]",
		    key, v, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int
ini_get_double(const char *value, double min, double max, double *out,
    struct diag *d, const char *file, int line, const char *key)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(value, &end);
	if (end == value || *end != '\0' || isnan(v)) {
		diag_add(
		    d, file, line, "%s: \"%s\" is not a number", key, value);
		return -1;
	}
	/* Past what a double holds is out of range; below it, a number as
	 * near to 0 as one holds. The value as written: %g would round one
	 * just past a bound to the bound. */
	if ((errno == ERANGE && fabs(v) >= 1) || v < min || v > max) {
		diag_add(d, file, line, "%s: %s is out of range [%g, %g]", key,
		    value, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int
ini_get_bool(const char *value, int *out, struct diag *d, const char *file,
    int line, const char *key)
{
	/* The words of the man pages, and no other: one way to write it. */
	if (strcmp(value, "yes") == 0 || strcmp(value, "no") == 0) {
		*out = strcmp(value, "yes") == 0;
		return 0;
	}
	diag_add(d, file, line, "%s: \"%s\" is not yes or no", key, value);
	return -1;
}
