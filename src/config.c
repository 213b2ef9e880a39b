/*
 * config.c: ollamax.conf and agent manifests. Each key has one reader that
 * checks its value; each file is judged whole, then the parts are checked
 * against each other (tiers, fallbacks, agent outputs).
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "modelname.h"
#include "policy.h"
#include "utf8.h"
#include "duration.h"
#include "msg.h"
#include "template.h"

/* ------------------------------------------------------------------ */
/* Values                                                             */
/* ------------------------------------------------------------------ */

static int
copy_text(char *out, size_t cap, const char *value, struct diag *d,
    const struct ini_item *it, const char *path)
{
	if (strlen(value) >= cap) {
		diag_add(d, path, it->line, "%s: longer than %zu characters",
		    it->key, cap - 1);
		return -1;
	}
	memcpy(out, value, strlen(value) + 1);
	return 0;
}

/* No blank, quote or control character: what a model's name never has. */
static int
named_plainly(const char *v)
{
	for (; *v != '\0'; v++)
		if ((unsigned char)*v <= ' ' || *v == 0x7f || *v == '"' ||
		    *v == '\'')
			return 0;
	return 1;
}

/* What Ollama 0.33 refuses to load under name, as /api/generate answers
 * 400 "invalid model name": the broker would try it at each request. */
static const char *
model_name_refused(const char *name)
{
	struct model_name n;

	if (*name == '\0')
		return "names no model";
	if (model_name_parse(name, strlen(name), &n) == 0)
		return NULL;
	return "is not a name Ollama takes: [HOST/][NAMESPACE/]MODEL[:TAG], "
	       "each part of letters, digits, '_', '-' and '.' (no '.' in a "
	       "namespace), begun by a letter, a digit or '_'; no empty tag, "
	       "no @DIGEST";
}

/* A file inside the state dir: not above it, nor the dir itself. */
static int
file_target_ok(const char *t)
{
	size_t n = strlen(t);

	return n > 0 && t[0] != '/' && strstr(t, "..") == NULL &&
	    t[n - 1] != '/' && strcmp(t, ".") != 0 &&
	    !(n >= 2 && strcmp(t + n - 2, "/.") == 0);
}

/* A blank then '#': a comment after the value, which would be taken as
 * part of a path (the INI reader ends a value at " ;" alone). */
static int
comment_after(const char *v)
{
	for (; *v != '\0'; v++)
		if ((v[0] == ' ' || v[0] == '\t') && v[1] == '#')
			return 1;
	return 0;
}

/* A name of a tier or an agent: lowercase letters, digits, '-', '_'. */
int
config_valid_name(const char *s)
{
	return config_name_fault(s, NULL, 0) == 0;
}

int
config_name_fault(const char *s, char *why, size_t len)
{
	size_t at = 0, size, n = strlen(s);

	if (n == 0) {
		snprintf(why, len, "a name may not be empty");
		return -1;
	}
	for (int column = 1; at < n; column++, at += size) {
		uint32_t c = utf8_decode(s + at, n - at, &size);

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_')
			continue;
		/* Named by its code point: a blank or a letter of another
		 * script would look right on the screen. */
		if (c > ' ' && c < 0x7f)
			snprintf(why, len,
			    "'%c', its character %d, is not a lowercase letter, "
			    "a digit, '-' or '_'",
			    (int)c, column);
		else if (c == 0xFFFD && size == 1)
			snprintf(why, len,
			    "its character %d is not UTF-8 (byte 0x%02X)",
			    column, (unsigned char)s[at]);
		else
			snprintf(why, len,
			    "its character %d, U+%04X, is not a lowercase "
			    "letter, a digit, '-' or '_'",
			    column, (unsigned)c);
		return -1;
	}
	if (n > CONFIG_NAME_MAX) {
		snprintf(why, len, "a name has %d characters at most, not %zu",
		    CONFIG_NAME_MAX, n);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Names near a name                                                  */
/* ------------------------------------------------------------------ */

/* The longest name weighed for the one meant, in characters. */
#define NEAR_MAX 64

/* The characters of s, ASCII letters in lowercase, into out: how many, or
 * -1 for more than NEAR_MAX. */
static int
near_characters(const char *s, uint32_t *out)
{
	size_t n = strlen(s), size;
	int count = 0;

	for (size_t at = 0; at < n; at += size) {
		uint32_t c = utf8_decode(s + at, n - at, &size);

		if (count == NEAR_MAX)
			return -1;
		out[count++] = c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
	}
	return count;
}

/*
 * The edits that make a into b, each a character put in, left out, changed,
 * or swapped with the next, and none edited twice (the optimal string
 * alignment distance), exact up to 2, and past that some number above 2.
 * Characters, not bytes: an invisible one is one edit. Case aside:
 * "Workers" is "workers" mistyped. -1 if either is longer than NEAR_MAX.
 */
static int
edit_distance(const char *a, const char *b)
{
	uint32_t x[NEAR_MAX], y[NEAR_MAX];
	int rows[3][NEAR_MAX + 1], *two_up = rows[0], *up = rows[1],
	                           *row = rows[2], *spare;
	int n = near_characters(a, x), m = near_characters(b, y);

	if (n < 0 || m < 0)
		return -1;
	/* Lengths more than 2 apart take more than 2 edits: most names
	 * weighed are told apart here, without the table. */
	if (n > m + 2 || m > n + 2)
		return n > m ? n - m : m - n;
	for (int j = 0; j <= m; j++)
		up[j] = j;
	for (int i = 1; i <= n; i++) {
		row[0] = i;
		for (int j = 1; j <= m; j++) {
			int best = up[j - 1] + (x[i - 1] != y[j - 1]);

			if (up[j] + 1 < best)
				best = up[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			if (i > 1 && j > 1 && x[i - 1] == y[j - 2] &&
			    x[i - 2] == y[j - 1] && two_up[j - 2] + 1 < best)
				best = two_up[j - 2] + 1;
			row[j] = best;
		}
		spare = two_up;
		two_up = up;
		up = row;
		row = spare;
	}
	return up[m];
}

void
config_nearest_weigh(
    struct config_nearest *near, const char *given, const char *name)
{
	int edits = edit_distance(given, name);

	if (edits >= 0 && edits <= 2 && 2 * (size_t)edits < strlen(name) &&
	    (near->name == NULL || edits < near->edits)) {
		near->name = name;
		near->edits = edits;
	}
}

/* The nearest of names to given, or NULL. */
static const char *
nearest_of(const char *given, const char *const *names, size_t count)
{
	struct config_nearest near = {0};

	for (size_t i = 0; i < count; i++)
		config_nearest_weigh(&near, given, names[i]);
	return near.name;
}

const char *
config_did_you_mean(const char *name, char *out, size_t len)
{
	if (name == NULL)
		return "";
	snprintf(out, len, ": did you mean '%s'?", name);
	return out;
}

/* names, ", " between them, into out. */
static const char *
names_listed(const char *const *names, size_t count, char *out, size_t len)
{
	size_t at = 0;

	out[0] = '\0';
	for (size_t i = 0; i < count && at < len; i++)
		at += (size_t)snprintf(
		    out + at, len - at, "%s%s", i > 0 ? ", " : "", names[i]);
	return out;
}

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* A key its section does not know: the one meant, if near, else those it
 * knows. */
static void
unknown_key(struct diag *d, const char *path, const struct ini_item *it,
    const char *const *known, size_t count)
{
	const char *meant = nearest_of(it->key, known, count);
	char list[256];

	if (meant != NULL)
		diag_add(d, path, it->line,
		    "[%s]: unknown key \"%s\": did you mean '%s'?", it->section,
		    it->key, meant);
	else
		diag_add(d, path, it->line, "[%s]: unknown key \"%s\" (%s)",
		    it->section, it->key,
		    names_listed(known, count, list, sizeof(list)));
}

static int
get_duration_ms(const char *value, int64_t min_ms, int64_t max_ms, int64_t *out,
    struct diag *d, const char *path, const struct ini_item *it)
{
	char err[160];
	int64_t ns, ms;

	if (duration_parse(value, &ns, err, sizeof(err)) != 0) {
		diag_add(d, path, it->line, "%s: %s (write e.g. 90s, 5m, 1h)",
		    it->key, err);
		return -1;
	}
	/* Whole milliseconds, up: 0 means off or for ever for some, and a
	 * time given is never that, not even one under a nanosecond (which
	 * Go's reading, for Ollama's keep_alive, makes 0). */
	ms = ns / 1000000 + (ns % 1000000 > 0);
	if (ms == 0 && strpbrk(value, "123456789") != NULL)
		ms = 1;
	if (ms < min_ms || ms > max_ms) {
		char low[32], high[32];

		diag_add(d, path, it->line, "%s: %s is out of range [%s, %s]",
		    it->key, value, duration_shown_ms(min_ms, low, sizeof(low)),
		    duration_shown_ms(max_ms, high, sizeof(high)));
		return -1;
	}
	*out = ms;
	return 0;
}

/*
 * A duration up to CONFIG_WAIT_MAX_MS that a shorter one than floor_ms
 * would defeat, for the reason why; with zero_off, 0 turns it off. out is
 * left as it was for a value refused.
 */
static void
get_duration_floor_ms(const char *value, int64_t floor_ms, int zero_off,
    const char *why, int64_t *out, struct diag *d, const char *path,
    const struct ini_item *it)
{
	int64_t ms;

	if (get_duration_ms(value, 0, CONFIG_WAIT_MAX_MS, &ms, d, path, it) !=
	    0)
		return;
	if (ms < floor_ms && !(zero_off && ms == 0))
		diag_add(d, path, it->line,
		    "%s: %s is too short: %s, so allow at least %ds%s", it->key,
		    value, why, (int)(floor_ms / 1000),
		    zero_off ? " (0 turns it off)" : "");
	else
		*out = ms;
}

/* "64k", "1m", "65536": a size in bytes. */
static int
get_size(const char *value, size_t min, size_t max, size_t *out, struct diag *d,
    const char *path, const struct ini_item *it)
{
	char *end;
	unsigned long long v;

	errno = 0;
	/* strtoull takes "-1" as the largest number, and a sign or a blank
	 * first: a size starts with its digits. */
	v = *value >= '0' && *value <= '9' ? strtoull(value, &end, 10) : 0;
	if (*value < '0' || *value > '9')
		end = (char *)value;
	/* More digits than a size holds: out of range, whatever the unit. */
	if (errno == ERANGE && end != value) {
		v = (unsigned long long)max + 1;
		errno = 0;
		if (*end == 'k' || *end == 'K' || *end == 'm' || *end == 'M')
			end++;
	} else if (errno == 0 && end != value) {
		unsigned long long unit = *end == 'k' || *end == 'K' ? 1024
		    : *end == 'm' || *end == 'M'                     ? 1024 * 1024
		                                                     : 1;

		if (unit > 1)
			end++;
		/* Out of range, not wrapped round to a small size. */
		v = v > max / unit ? (unsigned long long)max + 1 : v * unit;
	}
	if (errno != 0 || end == value || *end != '\0') {
		diag_add(d, path, it->line,
		    "%s: \"%s\" is not a size (write e.g. 65536, 64k, 1m)",
		    it->key, value);
		return -1;
	}
	if (v < min || v > max) {
		diag_add(d, path, it->line,
		    "%s: %s is out of range [%zu, %zu] bytes", it->key, value,
		    min, max);
		return -1;
	}
	*out = (size_t)v;
	return 0;
}

const char *
config_default_path(const char *given)
{
	const char *env = getenv("OLLAMAX_CONF");

	if (given != NULL)
		return given;
	if (env != NULL && *env != '\0')
		return env;
	return SYSCONF_OLLAMAX "/ollamax.conf";
}

void
config_runtime_dir(const struct config *c, char *out, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (c->runtime_dir[0] != '\0')
		config_resolve(c->dir, c->runtime_dir, out, len);
	else if (xdg != NULL && xdg[0] == '/')
		snprintf(out, len, "%s/ollamax", xdg);
	else
		snprintf(out, len, "/tmp/ollamax-%u", (unsigned)getuid());
}

int
config_ctl_runtime_dir(const char *given, char *out, size_t len, struct diag *d)
{
	const char *path = config_default_path(given);
	int named = strcmp(path, SYSCONF_OLLAMAX "/ollamax.conf") != 0;
	struct config c = {0};

	if (!named && access(path, F_OK) != 0 && errno == ENOENT) {
		config_runtime_dir(&c, out, len);
		return 0;
	}
	if (config_load(&c, path, d) > 0) {
		config_free(&c);
		return -1;
	}
	config_runtime_dir(&c, out, len);
	config_free(&c);
	return 0;
}

long
config_worker_count(const struct config *c)
{
	long n = c->workers > 0 ? c->workers : sysconf(_SC_NPROCESSORS_ONLN);

	/* The sockets' names and the broker's table of workers hold this
	 * many, on any machine. */
	return n < 1 ? 1 : n > CONFIG_WORKERS_MAX ? CONFIG_WORKERS_MAX : n;
}

/*
 * Whether "DIR/.." names the parent of DIR as written, DIR being the first
 * len bytes of path: so if DIR is a directory and no symbolic link (whose
 * ".." is its target's parent). One not there, or no directory, is left to
 * fail as the kernel would fail it.
 */
static int
parent_as_written(const char *path, size_t len)
{
	char dir[PATH_MAX];
	const char *last;
	struct stat st;

	if (len == 0 || len >= sizeof(dir))
		return 0;
	memcpy(dir, path, len);
	dir[len] = '\0';
	last = strrchr(dir, '/');
	last = last != NULL ? last + 1 : dir;
	if (strcmp(last, "..") == 0)
		return 0;
	return lstat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * path without "." components, repeated or trailing '/', or "DIR/.." where
 * that names what it would as written: the same file, as a reader would
 * name it (conf/../agents is agents). Symbolic links are not resolved.
 */
static void
path_tidy(char *path)
{
	char tidy[PATH_MAX];
	const char *in = path;
	size_t len = 0, n;

	if (path[0] == '\0' || strlen(path) >= sizeof(tidy))
		return;
	if (path[0] == '/')
		tidy[len++] = '/';
	for (; *in != '\0'; in += n) {
		while (*in == '/')
			in++;
		n = strcspn(in, "/");
		if (n == 0 || (n == 1 && in[0] == '.'))
			continue;
		if (n == 2 && in[0] == '.' && in[1] == '.' &&
		    (len == 1 && tidy[0] == '/')) /* "/.." is "/" */
			continue;
		if (n == 2 && in[0] == '.' && in[1] == '.' &&
		    parent_as_written(tidy, len)) {
			while (len > 0 && tidy[len - 1] != '/')
				len--;
			/* Its '/' goes too, but the root's. */
			if (len > 1)
				len--;
			continue;
		}
		if (len > 0 && tidy[len - 1] != '/')
			tidy[len++] = '/';
		memcpy(tidy + len, in, n);
		len += n;
	}
	if (len == 0)
		tidy[len++] = '.';
	tidy[len] = '\0';
	memcpy(path, tidy, len + 1);
}

void
config_resolve(const char *base, const char *p, char *out, size_t len)
{
	size_t n = strlen(base);

	if (p[0] == '/' || n == 0)
		snprintf(out, len, "%s", p);
	else
		snprintf(
		    out, len, "%s%s%s", base, base[n - 1] == '/' ? "" : "/", p);
	path_tidy(out);
}

/* ------------------------------------------------------------------ */
/* ollamax.conf                                                       */
/* ------------------------------------------------------------------ */

struct config_parse {
	struct config *c;
	struct diag *d;
	const char *path;
	/* The [tier.NAME] or [model.NAME] whose header is at key_line, as
	 * its keys found it: an index, -1 for none (its keys go nowhere).
	 * Looked for by name once a section, not once a key, which would
	 * take time in the square of the file's length. */
	int key_line;
	long key_index;
	/* A runtime_dir given was refused: the default it leaves is not
	 * judged as if none had been given. */
	int runtime_dir_refused;
};

/*
 * A section of that name is there already, its header at first_line: a
 * key's section is the one whose header it follows. A section given twice
 * is reported once, at its header (create), and its keys go nowhere.
 */
static int
own_section(struct config_parse *p, const char *kind, const char *name,
    int first_line, int line, int create)
{
	if (first_line == line)
		return 1;
	if (create)
		diag_add(p->d, p->path, line,
		    "[%s.%s]: %s defined twice (first at line %d)", kind, name,
		    kind, first_line);
	return 0;
}

/*
 * The tier of a [tier.NAME] section, made as the section opens (create) and
 * found for its keys: a bad name is reported once, at its header.
 */
static struct tier_conf *
tier_section(struct config_parse *p, const char *name, int line, int create)
{
	char fault[160];
	struct config *c = p->c;

	for (size_t i = 0; i < c->ntiers; i++)
		if (strcmp(c->tiers[i].name, name) == 0)
			return own_section(p, "tier", name, c->tiers[i].line,
			           line, create)
			    ? &c->tiers[i]
			    : NULL;
	if (!create)
		return NULL;
	if (c->ntiers == CONFIG_SECTIONS_MAX) {
		diag_add(p->d, p->path, line, "[tier.%s]: more than %d tiers",
		    name, CONFIG_SECTIONS_MAX);
		return NULL;
	}
	if (config_name_fault(name, fault, sizeof(fault)) != 0) {
		diag_add(p->d, p->path, line, "[tier.%s]: %s", name, fault);
		return NULL;
	}
	c->tiers = realloc(c->tiers, (c->ntiers + 1) * sizeof(*c->tiers));
	if (c->tiers == NULL)
		abort();
	memset(&c->tiers[c->ntiers], 0, sizeof(*c->tiers));
	snprintf(
	    c->tiers[c->ntiers].name, sizeof(c->tiers[0].name), "%s", name);
	c->tiers[c->ntiers].line = line;
	return &c->tiers[c->ntiers++];
}

/* The same for [model.NAME]. */
static struct model_conf *
model_section(struct config_parse *p, const char *name, int line, int create)
{
	struct config *c = p->c;
	const char *why;

	/* One model by Ollama's rules for names, however spelled. */
	for (size_t i = 0; i < c->nmodels; i++)
		if (model_name_same(c->models[i].name, name))
			return own_section(p, "model", name, c->models[i].line,
			           line, create)
			    ? &c->models[i]
			    : NULL;
	if (!create)
		return NULL;
	if (c->nmodels == CONFIG_SECTIONS_MAX) {
		diag_add(p->d, p->path, line, "[model.%s]: more than %d models",
		    name, CONFIG_SECTIONS_MAX);
		return NULL;
	}
	if (*name == '\0' || strlen(name) >= CONFIG_MODEL_MAX) {
		diag_add(
		    p->d, p->path, line, "[model.%s]: bad model name", name);
		return NULL;
	}
	if (!named_plainly(name)) {
		diag_add(p->d, p->path, line,
		    "[model.%s]: has a blank, a quote or a control character: "
		    "no Ollama model is named so",
		    name);
		return NULL;
	}
	if ((why = model_name_refused(name)) != NULL) {
		diag_add(p->d, p->path, line, "[model.%s]: %s", name, why);
		return NULL;
	}
	c->models = realloc(c->models, (c->nmodels + 1) * sizeof(*c->models));
	if (c->models == NULL)
		abort();
	memset(&c->models[c->nmodels], 0, sizeof(*c->models));
	snprintf(
	    c->models[c->nmodels].name, sizeof(c->models[0].name), "%s", name);
	c->models[c->nmodels].num_ctx = 2048;
	c->models[c->nmodels].line = line;
	return &c->models[c->nmodels++];
}

/*
 * What is wrong with the host and port of a backend URL (after "://"), or
 * NULL. The processes that read the config do not all link libcurl: what
 * is checked here is what the broker's requests would otherwise fail on,
 * again and again.
 */
static const char *
url_authority_problem(const char *authority, char *why, size_t len)
{
	size_t n = strcspn(authority, "/");
	const char *at = memchr(authority, '@', n), *host, *port = NULL;
	size_t hostlen;

	if (at != NULL) {
		n -= (size_t)(at + 1 - authority);
		authority = at + 1;
	}
	host = authority;
	if (host[0] == '[') {
		const char *close = memchr(host, ']', n);

		if (close == NULL)
			return "its [ has no ]";
		if (close == host + 1)
			return "it names no host";
		hostlen = (size_t)(close + 1 - host);
		if (hostlen < n) {
			if (close[1] != ':')
				return "text after the ] is not :PORT";
			port = close + 2;
		}
	} else {
		const char *colon = memchr(host, ':', n);

		hostlen = colon != NULL ? (size_t)(colon - host) : n;
		if (colon != NULL)
			port = colon + 1;
	}
	if (hostlen == 0)
		return "it names no host";
	for (size_t i = 0; i < hostlen; i++)
		if ((unsigned char)host[i] <= ' ' || host[i] == 0x7f ||
		    strchr("<>\"{}|\\^`", host[i]) != NULL)
			return "its host has a character no host name has";
	if (port != NULL) {
		size_t digits = (size_t)(authority + n - port);
		long value = 0;

		for (size_t i = 0; i < digits; i++) {
			if (port[i] < '0' || port[i] > '9' || i >= 5) {
				value = -1;
				break;
			}
			value = value * 10 + (port[i] - '0');
		}
		if (digits == 0 || value < 1 || value > 65535) {
			snprintf(why, len,
			    "its port \"%.*s\" is not a number from "
			    "1 to 65535",
			    (int)(digits < 16 ? digits : 16), port);
			return why;
		}
	}
	return NULL;
}

/* The keys of each section, as config_key reads them. */
static const char *const supervisor_keys[] = {"workers", "runtime_dir",
    "state_dir", "agents_dir", "stack_size", "watchdog", "start_timeout"};
static const char *const broker_keys[] = {"parallel", "vram_mb", "max_loaded",
    "max_wait_high", "max_wait_normal", "max_wait_low", "min_residency",
    "idle_unload", "lease"};
static const char *const backend_keys[] = {"url", "connect_timeout",
    "first_byte_timeout", "stall_timeout", "answer_timeout"};
static const char *const tier_keys[] = {"model", "fallback"};
static const char *const model_keys[] = {
    "size_mb", "num_ctx", "kv_mb", "preload", "pin"};

static const char *const config_sections[] = {
    "supervisor", "broker", "backend"};
/* Of [tier.NAME] and [model.NAME]. */
static const char *const config_kinds[] = {"tier", "model"};

/*
 * The section meant by one unknown, into out, or NULL: a kind of
 * [KIND.NAME] mistyped, or set apart from its name otherwise than by a dot,
 * or a section of one word mistyped.
 */
static const char *
section_meant(const char *s, char *out, size_t len)
{
	size_t word = strcspn(s, ". :_-");
	const char *meant;
	char kind[NEAR_MAX + 1];

	if (s[word] != '\0' && s[word + 1] != '\0' && word < sizeof(kind)) {
		memcpy(kind, s, word);
		kind[word] = '\0';
		meant = nearest_of(kind, config_kinds, COUNT_OF(config_kinds));
		if (meant != NULL) {
			snprintf(out, len, "%s.%s", meant, s + word + 1);
			return out;
		}
	}
	meant = nearest_of(s, config_sections, COUNT_OF(config_sections));
	if (meant == NULL)
		return NULL;
	snprintf(out, len, "%s", meant);
	return out;
}

/* A section opens: tiers and models are made, any other is known. Returns
 * -1 for one refused (told). */
static int
config_section(struct config_parse *p, const struct ini_item *it)
{
	const char *s = it->section;
	char meant[INI_LINE_MAX + 16];

	if (strncmp(s, "tier.", 5) == 0)
		return tier_section(p, s + 5, it->line, 1) != NULL ? 0 : -1;
	if (strncmp(s, "model.", 6) == 0)
		return model_section(p, s + 6, it->line, 1) != NULL ? 0 : -1;
	if (strcmp(s, "supervisor") == 0 || strcmp(s, "broker") == 0 ||
	    strcmp(s, "backend") == 0)
		return 0;
	if (section_meant(s, meant, sizeof(meant)) != NULL)
		diag_add(p->d, p->path, it->line,
		    "[%s]: unknown section: did you mean [%s]?", s, meant);
	else
		diag_add(p->d, p->path, it->line,
		    "[%s]: unknown section (supervisor, broker, backend, "
		    "tier.NAME, model.NAME)",
		    s);
	return -1;
}

static int
config_key(void *user, const struct ini_item *it)
{
	struct config_parse *p = user;
	struct config *c = p->c;
	struct diag *d = p->d;
	const char *path = p->path, *s = it->section, *k = it->key,
	           *v = it->value, *refused;

	if (k == NULL)
		return config_section(p, it);
	if (it->continued) {
		diag_add(d, path, it->line,
		    "%s: only agent prompts continue on indented lines", k);
		return 0;
	}
	/* Where a directory was named, read or not: what is found of it
	 * later is told there. */
	if (strcmp(s, "supervisor") == 0 && strcmp(k, "runtime_dir") == 0)
		c->runtime_dir_line = it->line;
	if (strcmp(s, "supervisor") == 0 && strcmp(k, "state_dir") == 0)
		c->state_dir_line = it->line;
	if (strcmp(s, "supervisor") == 0 &&
	    (strcmp(k, "runtime_dir") == 0 || strcmp(k, "state_dir") == 0 ||
	        strcmp(k, "agents_dir") == 0) &&
	    comment_after(v)) {
		diag_add(d, path, it->line,
		    "%s: \"%s\" has a comment after the directory (a comment "
		    "goes on a line of its own)",
		    k, v);
		p->runtime_dir_refused |= strcmp(k, "runtime_dir") == 0;
		return 0;
	}
	if (strcmp(s, "supervisor") == 0) {
		if (strcmp(k, "workers") == 0)
			ini_get_int(v, 0, CONFIG_WORKERS_MAX, &c->workers, d,
			    path, it->line, k);
		else if (strcmp(k, "runtime_dir") == 0) {
			char resolved[2 * PATH_MAX], why[2 * PATH_MAX + 96];

			if (copy_text(c->runtime_dir, sizeof(c->runtime_dir), v,
			        d, it, path) != 0)
				p->runtime_dir_refused = 1;
			/* Empty is the default's, judged once all is read. */
			config_resolve(
			    c->dir, c->runtime_dir, resolved, sizeof(resolved));
			if (c->runtime_dir[0] != '\0' &&
			    config_runtime_dir_fits(resolved, why, sizeof(why)))
				diag_add(
				    d, path, it->line, "runtime_dir: %s", why);
		} else if ((strcmp(k, "state_dir") == 0 ||
		               strcmp(k, "agents_dir") == 0) &&
		    *v == '\0')
			/* Empty would be the config's own directory. */
			diag_add(d, path, it->line, "%s: empty: name a directory",
			    k);
		else if (strcmp(k, "state_dir") == 0)
			copy_text(
			    c->state_dir, sizeof(c->state_dir), v, d, it, path);
		else if (strcmp(k, "agents_dir") == 0)
			copy_text(c->agents_dir, sizeof(c->agents_dir), v, d,
			    it, path);
		else if (strcmp(k, "stack_size") == 0)
			get_size(v, CONFIG_STACK_MIN, CONFIG_STACK_MAX,
			    &c->stack_size, d, path, it);
		else if (strcmp(k, "watchdog") == 0)
			get_duration_floor_ms(v, CONFIG_WATCHDOG_MIN_MS, 1,
			    "children report once a second", &c->watchdog_ms, d,
			    path, it);
		else if (strcmp(k, "start_timeout") == 0)
			get_duration_ms(v, 0, CONFIG_WAIT_MAX_MS,
			    &c->start_timeout_ms, d, path, it);
		else
			unknown_key(d, path, it, supervisor_keys,
			    COUNT_OF(supervisor_keys));
	} else if (strcmp(s, "broker") == 0) {
		if (strcmp(k, "parallel") == 0)
			ini_get_int(v, 1, CONFIG_PARALLEL_MAX, &c->parallel, d,
			    path, it->line, k);
		else if (strcmp(k, "vram_mb") == 0)
			ini_get_int(v, CONFIG_VRAM_MIN_MB, CONFIG_MB_MAX,
			    &c->vram_mb, d, path, it->line, k);
		else if (strcmp(k, "max_loaded") == 0)
			ini_get_int(v, 1, CONFIG_LOADED_MAX, &c->max_loaded, d,
			    path, it->line, k);
		else if (strcmp(k, "max_wait_high") == 0)
			get_duration_ms(v, CONFIG_WAIT_MIN_MS,
			    CONFIG_WAIT_MAX_MS, &c->max_wait_ms[PRIO_HIGH], d,
			    path, it);
		else if (strcmp(k, "max_wait_normal") == 0)
			get_duration_ms(v, CONFIG_WAIT_MIN_MS,
			    CONFIG_WAIT_MAX_MS, &c->max_wait_ms[PRIO_NORMAL], d,
			    path, it);
		else if (strcmp(k, "max_wait_low") == 0)
			get_duration_ms(v, CONFIG_WAIT_MIN_MS,
			    CONFIG_WAIT_MAX_MS, &c->max_wait_ms[PRIO_LOW], d,
			    path, it);
		else if (strcmp(k, "min_residency") == 0)
			get_duration_ms(v, 0, CONFIG_WAIT_MAX_MS,
			    &c->min_residency_ms, d, path, it);
		else if (strcmp(k, "idle_unload") == 0)
			get_duration_ms(v, 0, CONFIG_WAIT_MAX_MS,
			    &c->idle_unload_ms, d, path, it);
		else if (strcmp(k, "lease") == 0)
			get_duration_floor_ms(v, CONFIG_LEASE_MIN_MS, 0,
			    "the broker renews it once half of it has passed "
			    "idle, and the other half must cover the renewal's "
			    "way to the backend",
			    &c->lease_ms, d, path, it);
		else
			unknown_key(
			    d, path, it, broker_keys, COUNT_OF(broker_keys));
	} else if (strcmp(s, "backend") == 0) {
		if (strcmp(k, "url") == 0) {
			const char *host = strstr(v, "://"), *bad;
			char why[96];

			/* The broker adds /api/...: a query, a fragment or a
			 * blank (a comment after the value, say) would swallow
			 * it. */
			if ((strncmp(v, "http://", 7) != 0 &&
			        strncmp(v, "https://", 8) != 0) ||
			    host[3] == '\0' || host[3] == '/' ||
			    v[strcspn(v, " \t?#")] != '\0')
				diag_add(d, path, it->line,
				    "url: \"%s\" is not an http:// or https:// URL "
				    "of a host, without blanks, '?' or '#' (a "
				    "comment goes on a line of its own)",
				    v);
			else if ((bad = url_authority_problem(
			              host + 3, why, sizeof(why))) != NULL)
				diag_add(d, path, it->line, "url: \"%s\": %s",
				    v, bad);
			else
				copy_text(c->backend_url,
				    sizeof(c->backend_url), v, d, it, path);
		} else if (strcmp(k, "connect_timeout") == 0) {
			get_duration_ms(v, CONFIG_TIMEOUT_MIN_MS, 600000,
			    &c->connect_timeout_ms, d, path, it);
		} else if (strcmp(k, "first_byte_timeout") == 0) {
			get_duration_ms(v, 1000, CONFIG_TIMEOUT_MAX_MS,
			    &c->first_byte_timeout_ms, d, path, it);
		} else if (strcmp(k, "stall_timeout") == 0) {
			get_duration_ms(v, 1000, CONFIG_TIMEOUT_MAX_MS,
			    &c->stall_timeout_ms, d, path, it);
		} else if (strcmp(k, "answer_timeout") == 0) {
			get_duration_ms(v, 1000, CONFIG_ANSWER_TIMEOUT_MAX_MS,
			    &c->answer_timeout_ms, d, path, it);
		} else {
			unknown_key(
			    d, path, it, backend_keys, COUNT_OF(backend_keys));
		}
	} else if (strncmp(s, "tier.", 5) == 0) {
		struct tier_conf *t;

		if (p->key_line != it->section_line) {
			t = tier_section(p, s + 5, it->section_line, 0);
			p->key_line = it->section_line;
			p->key_index = t != NULL ? t - c->tiers : -1;
		}
		t = p->key_index >= 0 ? &c->tiers[p->key_index] : NULL;

		if (t == NULL)
			return 0;
		/* Ollama's names have no blanks: one here is a comment
		 * after the value, which would name another model. */
		if (strcmp(k, "model") == 0 && !named_plainly(v))
			diag_add(d, path, it->line,
			    "model: \"%s\" has a blank, a quote or a control "
			    "character: no Ollama model is named so (a comment "
			    "goes on a line of its own)",
			    v);
		else if (strcmp(k, "model") == 0 &&
		    (refused = model_name_refused(v)) != NULL)
			diag_add(
			    d, path, it->line, "model: \"%s\" %s", v, refused);
		else if (strcmp(k, "model") == 0)
			copy_text(t->model, sizeof(t->model), v, d, it, path);
		else if (strcmp(k, "fallback") == 0) {
			copy_text(
			    t->fallback, sizeof(t->fallback), v, d, it, path);
			t->fallback_line = it->line;
		} else
			unknown_key(
			    d, path, it, tier_keys, COUNT_OF(tier_keys));
	} else if (strncmp(s, "model.", 6) == 0) {
		struct model_conf *m;

		if (p->key_line != it->section_line) {
			m = model_section(p, s + 6, it->section_line, 0);
			p->key_line = it->section_line;
			p->key_index = m != NULL ? m - c->models : -1;
		}
		m = p->key_index >= 0 ? &c->models[p->key_index] : NULL;

		if (m == NULL)
			return 0;
		if (strcmp(k, "size_mb") == 0)
			ini_get_int(v, 1, CONFIG_MB_MAX, &m->size_mb, d, path,
			    it->line, k);
		else if (strcmp(k, "num_ctx") == 0)
			ini_get_int(v, CONFIG_NUM_CTX_MIN, CONFIG_NUM_CTX_MAX,
			    &m->num_ctx, d, path, it->line, k);
		else if (strcmp(k, "kv_mb") == 0)
			ini_get_int(v, 1, CONFIG_MB_MAX, &m->kv_mb, d, path,
			    it->line, k);
		else if (strcmp(k, "preload") == 0)
			ini_get_bool(v, &m->preload, d, path, it->line, k);
		else if (strcmp(k, "pin") == 0)
			ini_get_bool(v, &m->pin, d, path, it->line, k);
		else
			unknown_key(
			    d, path, it, model_keys, COUNT_OF(model_keys));
	}
	return 0;
}

const struct tier_conf *
config_tier(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->ntiers; i++)
		if (strcmp(c->tiers[i].name, name) == 0)
			return &c->tiers[i];
	return NULL;
}

/* ": did you mean 'TIER'?" for the tier nearest to name, or "". */
static const char *
tier_meant(const struct config *c, const char *name, char *out, size_t len)
{
	struct config_nearest near = {0};

	for (size_t i = 0; i < c->ntiers; i++)
		config_nearest_weigh(&near, name, c->tiers[i].name);
	return config_did_you_mean(near.name, out, len);
}

int
config_tier_fault(
    const struct config *c, const char *name, char *why, size_t len)
{
	char fault[160], meant[CONFIG_NAME_MAX + 32];
	const char *hint;

	if (config_tier(c, name) != NULL)
		return 0;
	hint = tier_meant(c, name, meant, sizeof(meant));
	/* No tier has a name with a character no name has: that character
	 * is what to mend, an invisible one above all. */
	if (name[0] != '\0' && config_name_fault(name, fault, sizeof(fault)))
		snprintf(why, len, "\"%s\": %s%s", name, fault, hint);
	else
		snprintf(why, len, "\"%s\" is not a [tier.NAME] of %s%s", name,
		    c->path, hint);
	return -1;
}

const struct model_conf *
config_model(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nmodels; i++)
		if (model_name_same(c->models[i].name, name))
			return &c->models[i];
	return NULL;
}

int
config_model_used(const struct config *c, const char *name)
{
	for (size_t t = 0; t < c->ntiers; t++)
		if (model_name_same(c->tiers[t].model, name))
			return 1;
	return 0;
}

void
config_policy(const struct config *c, struct policy_config *pc)
{
	*pc = (struct policy_config){
	    .parallel = (int)c->parallel,
	    .vram_mb = c->vram_mb,
	    .max_loaded = (int)c->max_loaded,
	    .min_residency_ms = c->min_residency_ms,
	    .idle_unload_ms = c->idle_unload_ms,
	};
	memcpy(pc->max_wait_ms, c->max_wait_ms, sizeof(pc->max_wait_ms));
}

void
config_policy_model(
    const struct config *c, const char *name, struct policy_model_conf *pm)
{
	const struct model_conf *mc = config_model(c, name);

	*pm = (struct policy_model_conf){.name = name};
	pm->need_mb =
	    mc && mc->size_mb > 0 ? mc->size_mb + mc->kv_mb : c->vram_mb;
	pm->pin = mc ? mc->pin : 0;
	pm->preload = mc ? mc->preload : 0;
}

static size_t
distinct_models(const struct config *c)
{
	size_t n = 0;

	for (size_t i = 0; i < c->ntiers; i++) {
		size_t j = 0;

		while (j < i &&
		    !model_name_same(c->tiers[j].model, c->tiers[i].model))
			j++;
		n += j == i;
	}
	return n;
}

/*
 * Pinned models of known size must fit together, loaded the largest first
 * by Ollama's rule (a further model takes at most 80% of what is free):
 * else the smaller would keep out, in the broker's plan, every model but
 * those larger. Sizes the backend reports later are the broker's to weigh.
 */
static void
check_pins_fit(const struct config *c, const char *path, struct diag *d)
{
	const struct model_conf *pins[CONFIG_SECTIONS_MAX];
	size_t n = 0;
	long used = 0;

	for (size_t i = 0; i < c->nmodels; i++)
		if (c->models[i].pin && c->models[i].size_mb > 0 &&
		    config_model_used(c, c->models[i].name))
			pins[n++] = &c->models[i];
	for (size_t i = 0; i < n; i++) {
		const struct model_conf *m;
		long need;

		for (size_t j = i + 1; j < n; j++)
			if (pins[j]->size_mb + pins[j]->kv_mb >
			    pins[i]->size_mb + pins[i]->kv_mb) {
				m = pins[i];
				pins[i] = pins[j];
				pins[j] = m;
			}
		m = pins[i];
		need = m->size_mb + m->kv_mb;
		if (i > 0 &&
		    ((long)i + 1 > c->max_loaded ||
		        (double)need > 0.8 * (double)(c->vram_mb - used))) {
			diag_add(d, path, m->line,
			    "[model.%s]: pinned, but its %ld MB do not fit "
			    "beside the %zu larger pinned model%s (%ld MB of "
			    "vram_mb's %ld, and a model loaded beside others "
			    "takes at most 80%% of what is free, %ld at most "
			    "loaded): unpin one, or correct size_mb and kv_mb",
			    m->name, need, i, i == 1 ? "" : "s", used,
			    c->vram_mb, c->max_loaded);
			return;
		}
		used += need;
	}
}

int
config_load(struct config *c, const char *path, struct diag *d)
{
	struct config_parse p = {.c = c, .d = d, .path = path};
	struct ini_keys *keys;
	int before = d->count, read_whole;
	char *slash;
	size_t models;

	memset(c, 0, sizeof(*c));
	snprintf(c->path, sizeof(c->path), "%s", path);
	/* Relative paths are from the file's own folder, not a symbolic
	 * link's: whoever reads the file, start, stop or ollamaxctl, finds
	 * the same runtime_dir. */
	if (realpath(path, c->dir) == NULL)
		snprintf(c->dir, sizeof(c->dir), "%s", path);
	slash = strrchr(c->dir, '/');
	if (slash == c->dir)
		slash[1] = '\0'; /* /ollamax.conf is in / */
	else if (slash != NULL)
		*slash = '\0';
	else
		snprintf(c->dir, sizeof(c->dir), ".");
	snprintf(c->state_dir, sizeof(c->state_dir), "state");
	snprintf(c->agents_dir, sizeof(c->agents_dir), "conf.d");
	c->stack_size = 64 * 1024;
	c->watchdog_ms = 15000;
	c->start_timeout_ms = 60000;
	c->parallel = 2;
	c->vram_mb = 4096;
	/* Ollama's own cap on runners: 3 per GPU. */
	c->max_loaded = 3;
	c->max_wait_ms[PRIO_HIGH] = 2 * 60 * 1000;
	c->max_wait_ms[PRIO_NORMAL] = 5 * 60 * 1000;
	c->max_wait_ms[PRIO_LOW] = 15 * 60 * 1000;
	c->min_residency_ms = 30 * 1000;
	c->idle_unload_ms = 30 * 60 * 1000;
	/* Ollama's own default keep-alive. */
	c->lease_ms = 5 * 60 * 1000;
	snprintf(
	    c->backend_url, sizeof(c->backend_url), "http://127.0.0.1:11434");
	c->connect_timeout_ms = 5000;
	/* A cold load of a large model takes many seconds before any byte. */
	c->first_byte_timeout_ms = 300000;
	c->stall_timeout_ms = 60000;
	/* A reasoning model's long thought on a slow GPU, and no more: a
	 * model caught in a loop holds its slot this long. */
	c->answer_timeout_ms = 30 * 60 * 1000;
	read_whole = inifile_parse(path, config_key, &p, d, &keys) >= 0;
	if (c->runtime_dir[0] == '\0' && !p.runtime_dir_refused) {
		char dir[PATH_MAX + 16], why[PATH_MAX + 128];

		config_runtime_dir(c, dir, sizeof(dir));
		if (config_runtime_dir_fits(dir, why, sizeof(why) - 16)) {
			strcat(why, ": set one");
			config_dir_problem(c, "runtime_dir", why, d);
		}
	}

	for (size_t i = 0; i < c->ntiers; i++) {
		const struct tier_conf *t = &c->tiers[i], *f = t;
		size_t hops = 0;
		char section[CONFIG_NAME_MAX + 8], meant[CONFIG_NAME_MAX + 32];

		/* A model given but refused was told at its line. */
		snprintf(section, sizeof(section), "tier.%s", t->name);
		if (ini_key_given(keys, section, "model") == 0)
			diag_add(d, path, t->line,
			    "[tier.%s]: model is required", t->name);
		if (t->fallback[0] != '\0' &&
		    config_tier(c, t->fallback) == NULL) {
			diag_add(d, path, t->fallback_line,
			    "[tier.%s]: fallback \"%s\" is not a tier%s",
			    t->name, t->fallback,
			    tier_meant(c, t->fallback, meant, sizeof(meant)));
			continue;
		}
		/* A chain must end: n tiers allow at most n - 1 hops. */
		while (
		    f != NULL && f->fallback[0] != '\0' && hops++ <= c->ntiers)
			f = config_tier(c, f->fallback);
		if (hops > c->ntiers)
			diag_add(d, path, t->fallback_line,
			    "[tier.%s]: its fallback chain loops", t->name);
	}
	check_pins_fit(c, path, d);
	if ((models = distinct_models(c)) > POLICY_MODELS_MAX)
		diag_add(d, path, 0,
		    "the tiers name %zu models, more than the %d the broker "
		    "plans for",
		    models, POLICY_MODELS_MAX);
	/* Of a file read whole: one not read says so already. */
	if (c->ntiers == 0 && read_whole)
		diag_add(d, path, 0,
		    "no [tier.NAME] section: agents need at least one tier");
	ini_keys_free(keys);
	return d->count - before;
}

void
config_dir_problem(
    const struct config *c, const char *key, const char *why, struct diag *d)
{
	int runtime = strcmp(key, "runtime_dir") == 0;
	int line = runtime ? c->runtime_dir_line : c->state_dir_line;
	/* An empty runtime_dir is the default's; an empty state_dir is
	 * refused. */
	int by_default = runtime ? c->runtime_dir[0] == '\0' : line == 0;

	diag_add(d, c->path, line, "%s: %s%s", key,
	    by_default ? "none given, so the default " : "", why);
}

void
config_free(struct config *c)
{
	free(c->tiers);
	free(c->models);
	c->tiers = NULL;
	c->models = NULL;
	c->ntiers = c->nmodels = 0;
}

/* ------------------------------------------------------------------ */
/* Manifests                                                          */
/* ------------------------------------------------------------------ */

/*
 * A multi-line text value as it is read: its length and room kept, so that
 * a value of many continued lines takes time in its length, not its
 * square.
 */
struct text_read {
	char **text; /* the manifest's own */
	size_t len, room;
	/* The file's line of each of the text's lines, to tell a problem
	 * at its own line. */
	int *lines;
	size_t nlines, lines_room;
};

static void
note_line(struct text_read *t, int line)
{
	/* A text that was empty so far starts at this line. */
	if (t->len == 0 && t->nlines > 0) {
		t->lines[0] = line;
		t->nlines = 1;
		return;
	}
	if (t->nlines == t->lines_room) {
		size_t room = t->lines_room > 0 ? t->lines_room * 2 : 8;
		int *n = realloc(t->lines, room * sizeof(*n));

		if (n == NULL)
			abort();
		t->lines = n;
		t->lines_room = room;
	}
	t->lines[t->nlines++] = line;
}

struct manifest_parse {
	struct manifest *m;
	struct diag *d;
	const char *path;
	int system_line;
	/* Where [agent] and [options] opened: again, they would be a second
	 * agent's (two manifests run together): refused, their keys unread. */
	int agent_line, options_line;
	struct text_read system, prompt;
};

/* Appends a continuation line to a multi-line text value. */
static void
append_line(struct text_read *t, const char *more, int line)
{
	size_t b = strlen(more);

	note_line(t, line);

	if (t->len + b + 2 > t->room) {
		size_t room =
		    t->room * 2 > t->len + b + 2 ? t->room * 2 : t->len + b + 2;
		char *n = realloc(*t->text, room);

		if (n == NULL)
			abort();
		*t->text = n;
		t->room = room;
	}
	if (t->len > 0)
		(*t->text)[t->len++] = '\n';
	memcpy(*t->text + t->len, more, b + 1);
	t->len += b;
}

static void
set_text(struct text_read *t, const char *value, int line)
{
	free(*t->text);
	*t->text = strdup(value);
	if (*t->text == NULL)
		abort();
	t->len = strlen(value);
	t->room = t->len + 1;
	t->nlines = 0;
	note_line(t, line);
}

static void
manifest_trigger(struct manifest_parse *p, const struct ini_item *it)
{
	struct manifest *m = p->m;
	const char *v = it->value;
	int64_t ms;

	if (strcmp(v, "inbox") == 0) {
		m->trigger = TRIGGER_INBOX;
	} else if (strcmp(v, "demand") == 0) {
		m->trigger = TRIGGER_DEMAND;
	} else if (strncmp(v, "every ", 6) == 0) {
		struct ini_item sub = *it;

		sub.key = "trigger = every";
		if (get_duration_ms(v + 6, CONFIG_EVERY_MIN_MS,
		        CONFIG_EVERY_MAX_MS, &ms, p->d, p->path, &sub) == 0) {
			m->trigger = TRIGGER_EVERY;
			m->every_ms = ms;
		}
	} else {
		diag_add(p->d, p->path, it->line,
		    "trigger: \"%s\" is not \"every DURATION\", \"inbox\" or \"demand\"",
		    v);
	}
	m->line_of_trigger = it->line;
}

/* The keys of each section, as manifest_key reads them. */
static const char *const agent_keys[] = {"name", "role", "tier", "priority",
    "trigger", "jitter", "output", "system", "prompt"};
static const char *const options_keys[] = {"num_predict", "temperature"};
static const char *const manifest_sections[] = {"agent", "options"};

static int
manifest_section(struct manifest_parse *p, const struct ini_item *it)
{
	int *first = strcmp(it->section, "agent") == 0 ? &p->agent_line
	    : strcmp(it->section, "options") == 0      ? &p->options_line
	                                               : NULL;
	const char *meant;

	if (first == NULL &&
	    (meant = nearest_of(it->section, manifest_sections,
	         COUNT_OF(manifest_sections))) != NULL)
		diag_add(p->d, p->path, it->line,
		    "[%s]: unknown section: did you mean [%s]?", it->section,
		    meant);
	else if (first == NULL)
		diag_add(p->d, p->path, it->line,
		    "[%s]: unknown section (agent, options)", it->section);
	else if (*first > 0)
		diag_add(p->d, p->path, it->line,
		    "[%s]: given twice (first at line %d): a manifest is one "
		    "agent",
		    it->section, *first);
	else
		*first = it->line;
	return first != NULL && *first == it->line ? 0 : -1;
}

static int
manifest_key(void *user, const struct ini_item *it)
{
	char fault[160];
	struct manifest_parse *p = user;
	struct manifest *m = p->m;
	struct diag *d = p->d;
	const char *k = it->key, *v = it->value, *path = p->path;

	if (k == NULL)
		return manifest_section(p, it);
	if (it->continued) {
		if (strcmp(k, "system") == 0 && m->system)
			append_line(&p->system, v, it->line);
		else if (strcmp(k, "prompt") == 0 && m->prompt)
			append_line(&p->prompt, v, it->line);
		else
			diag_add(d, path, it->line,
			    "%s: only system and prompt continue on indented lines",
			    k);
		return 0;
	}
	if (strcmp(it->section, "agent") == 0) {
		if (strcmp(k, "name") == 0) {
			if (config_name_fault(v, fault, sizeof(fault)) != 0)
				diag_add(d, path, it->line, "name: \"%s\": %s",
				    v, fault);
			else
				snprintf(m->name, sizeof(m->name), "%s", v);
			m->line_of_name = it->line;
		} else if (strcmp(k, "role") == 0) {
			copy_text(m->role, sizeof(m->role), v, d, it, path);
		} else if (strcmp(k, "tier") == 0) {
			/* Told too long once: not again as a tier of no name.
			 */
			if (copy_text(
			        m->tier, sizeof(m->tier), v, d, it, path) == 0)
				m->line_of_tier = it->line;
		} else if (strcmp(k, "priority") == 0) {
			if (strcmp(v, "high") == 0)
				m->priority = PRIO_HIGH;
			else if (strcmp(v, "normal") == 0)
				m->priority = PRIO_NORMAL;
			else if (strcmp(v, "low") == 0)
				m->priority = PRIO_LOW;
			else
				diag_add(d, path, it->line,
				    "priority: \"%s\" is not high, normal or low",
				    v);
		} else if (strcmp(k, "trigger") == 0) {
			manifest_trigger(p, it);
		} else if (strcmp(k, "jitter") == 0) {
			char *end;
			long pct = strtol(v, &end, 10);

			/* A sign or a blank before the digits is no
			 * percentage of the man page's. */
			if (*v < '0' || *v > '9' || strcmp(end, "%") != 0 ||
			    pct < 0 || pct > CONFIG_JITTER_MAX)
				diag_add(d, path, it->line,
				    "jitter: \"%s\" is not a percentage from 0%% to 50%%",
				    v);
			else
				m->jitter_pct = (int)pct;
		} else if (strcmp(k, "output") == 0) {
			m->line_of_output = it->line;
			if (strcmp(v, "log") == 0) {
				m->output = OUTPUT_LOG;
			} else if (strncmp(v, "file:", 5) == 0 &&
			    comment_after(v)) {
				diag_add(d, path, it->line,
				    "output: \"%s\" has a comment after the file "
				    "name (a comment goes on a line of its own)",
				    v);
			} else if (strncmp(v, "file:", 5) == 0 &&
			    file_target_ok(v + 5)) {
				m->output = OUTPUT_FILE;
				copy_text(m->output_target,
				    sizeof(m->output_target), v + 5, d, it,
				    path);
			} else if (strncmp(v, "agent:", 6) == 0 &&
			    config_valid_name(v + 6)) {
				m->output = OUTPUT_AGENT;
				copy_text(m->output_target,
				    sizeof(m->output_target), v + 6, d, it,
				    path);
			} else if (strncmp(v, "agent:", 6) == 0 &&
			    config_name_fault(v + 6, fault, sizeof(fault)) !=
			        0) {
				diag_add(d, path, it->line,
				    "output: \"%s\": not an agent's name: %s",
				    v, fault);
			} else {
				diag_add(d, path, it->line,
				    "output: \"%s\" is not log, file:NAME (inside the state dir) or agent:NAME",
				    v);
			}
		} else if (strcmp(k, "system") == 0) {
			set_text(&p->system, v, it->line);
			p->system_line = it->line;
		} else if (strcmp(k, "prompt") == 0) {
			set_text(&p->prompt, v, it->line);
			m->line_of_prompt = it->line;
		} else {
			unknown_key(
			    d, path, it, agent_keys, COUNT_OF(agent_keys));
		}
	} else if (strcmp(it->section, "options") == 0) {
		if (strcmp(k, "num_predict") == 0)
			ini_get_int(v, -1, CONFIG_PREDICT_MAX, &m->num_predict,
			    d, path, it->line, k);
		else if (strcmp(k, "temperature") == 0)
			ini_get_double(v, 0, CONFIG_TEMPERATURE_MAX,
			    &m->temperature, d, path, it->line, k);
		else
			unknown_key(
			    d, path, it, options_keys, COUNT_OF(options_keys));
	}
	return 0;
}

/* Each unknown variable of the prompt is told once, at the first line of
 * the prompt where it stands: a placeholder does not span lines, as it is
 * a word. */
static void
prompt_variables_known(struct manifest_parse *p)
{
	static const char *const vars[] = {
	    "name", "role", "n", "time", "input"};
	char *line = p->m->prompt, told[4096] = "";
	size_t told_len = 0;

	for (size_t i = 0; i < p->prompt.nlines && line != NULL; i++) {
		char *end = strchr(line, '\n'), unknown[256], fresh[256] = "";
		size_t fresh_len = 0;

		if (end != NULL)
			*end = '\0';
		if (template_unknown(line, vars, 5, unknown, sizeof(unknown)) !=
		    NULL) {
			/* "{{a}}, {{b}}": each whole, braces and all. */
			char *rest = NULL;

			for (char *v = strtok_r(unknown, ", ", &rest);
			     v != NULL; v = strtok_r(NULL, ", ", &rest)) {
				size_t n = strlen(v);

				if (strstr(told, v) != NULL)
					continue;
				if (told_len + n < sizeof(told)) {
					memcpy(told + told_len, v, n + 1);
					told_len += n;
				}
				fresh_len += (size_t)snprintf(fresh + fresh_len,
				    sizeof(fresh) - fresh_len, "%s%s",
				    fresh_len > 0 ? ", " : "", v);
			}
		}
		if (fresh_len > 0)
			diag_add(p->d, p->path, p->prompt.lines[i],
			    "prompt: unknown variable%s %s (name, role, n, time, input)",
			    strstr(fresh, "}}, {{") ? "s" : "", fresh);
		if (end != NULL)
			*end = '\n';
		line = end != NULL ? end + 1 : NULL;
	}
}

/* The prompt renders empty, as a run without an input would render it
 * (the worker gives no run an empty name, count or time). */
static int
empty_without_input(const struct manifest *m)
{
	const struct template_var vars[] = {{"name", m->name},
	    {"role", m->role}, {"n", "1"}, {"time", "00:00"}, {"input", ""}};
	char *shown =
	    template_render(m->prompt, vars, sizeof(vars) / sizeof(vars[0]), 1);
	int empty = shown[0] == '\0';

	free(shown);
	return empty;
}

int
manifest_load(struct manifest *m, const char *path, struct diag *d)
{
	struct manifest_parse p = {.m = m,
	    .d = d,
	    .path = path,
	    .system = {.text = &m->system},
	    .prompt = {.text = &m->prompt}};
	struct ini_keys *keys;
	int before = d->count;

	memset(m, 0, sizeof(*m));
	m->path = strdup(path);
	if (m->path == NULL)
		abort();
	m->priority = PRIO_NORMAL;
	m->jitter_pct = 10;
	m->num_predict = -1;
	m->temperature = -1;
	if (inifile_parse(path, manifest_key, &p, d, &keys) < 0) {
		ini_keys_free(keys);
		free(p.prompt.lines);
		free(p.system.lines);
		return d->count - before; /* unreadable: nothing more to say */
	}
	if (!ini_key_given(keys, "agent", "name"))
		diag_add(d, path, 0, "[agent] name is required");
	if (!ini_key_given(keys, "agent", "tier"))
		diag_add(d, path, 0, "[agent] tier is required");
	if (!ini_key_given(keys, "agent", "trigger"))
		diag_add(d, path, 0,
		    "[agent] trigger is required (every DURATION, inbox or demand)");
	/* A prompt given on a line refused (told) is none to judge. */
	if (!ini_key_given(keys, "agent", "prompt")) {
		diag_add(d, path, 0, "[agent] prompt is required");
	} else if (m->prompt != NULL && m->prompt[0] == '\0') {
		/* Ollama reads an empty prompt as "load the model". */
		diag_add(d, path, m->line_of_prompt, "prompt: empty");
	} else if (m->prompt != NULL) {
		prompt_variables_known(&p);
		/* A trigger refused leaves none, not one on a timer. */
		if (m->trigger == TRIGGER_EVERY && m->every_ms > 0 &&
		    empty_without_input(m))
			diag_add(d, path, m->line_of_prompt,
			    "prompt: nothing but {{input}}, which a run on its "
			    "timer is not given: each would fail, its prompt "
			    "empty");
	}
	if (m->prompt != NULL && strlen(m->prompt) > MSG_MAX_TEXT)
		diag_add(d, path, m->line_of_prompt,
		    "prompt: longer than %d bytes", MSG_MAX_TEXT);
	if (m->system != NULL && strlen(m->system) > MSG_MAX_TEXT)
		diag_add(d, path, p.system_line,
		    "system: longer than %d bytes", MSG_MAX_TEXT);
	ini_keys_free(keys);
	free(p.prompt.lines);
	free(p.system.lines);
	return d->count - before;
}

void
manifest_free(struct manifest *m)
{
	free(m->system);
	free(m->prompt);
	free(m->path);
	m->system = m->prompt = m->path = NULL;
}

static int
same_text(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

int
manifest_same(const struct manifest *a, const struct manifest *b)
{
	return same_text(a->path, b->path) && strcmp(a->name, b->name) == 0 &&
	    strcmp(a->role, b->role) == 0 && strcmp(a->tier, b->tier) == 0 &&
	    a->priority == b->priority && a->trigger == b->trigger &&
	    a->every_ms == b->every_ms && a->jitter_pct == b->jitter_pct &&
	    a->output == b->output &&
	    strcmp(a->output_target, b->output_target) == 0 &&
	    same_text(a->system, b->system) &&
	    same_text(a->prompt, b->prompt) &&
	    a->num_predict == b->num_predict &&
	    a->temperature == b->temperature;
}

static int
conf_file(const struct dirent *e)
{
	size_t n = strlen(e->d_name);

	return e->d_name[0] != '.' && n > 5 &&
	    strcmp(e->d_name + n - 5, ".conf") == 0;
}

int
config_runtime_dir_fits(const char *dir, char *why, size_t len)
{
	if (strlen(dir) <= CONFIG_RUNTIME_DIR_MAX)
		return 0;
	snprintf(why, len,
	    "%s is %zu bytes long: the paths of its sockets fit in %zu at "
	    "most",
	    dir, strlen(dir), CONFIG_RUNTIME_DIR_MAX);
	return -1;
}

const struct manifest *
fleet_find(const struct fleet *f, const char *name)
{
	for (size_t i = 0; i < f->count; i++)
		if (strcmp(f->agents[i].name, name) == 0)
			return &f->agents[i];
	return NULL;
}

/*
 * Agents whose output names no agent get the name nearest to it among the
 * fleet's: a weighing of every name each. Past SUGGESTIONS_MAX of them in
 * one fleet, none, so that a fleet of thousands all mistyped costs no time
 * in the square of its size.
 */
#define SUGGESTIONS_MAX 64

/* ": did you mean 'AGENT'?" for the fleet's agent nearest to name, or "". */
static const char *
agent_meant(const struct fleet *f, const char *name, int *suggestions_left,
    char *out, size_t len)
{
	struct config_nearest near = {0};

	if (*suggestions_left <= 0)
		return "";
	(*suggestions_left)--;
	for (size_t i = 0; i < f->count; i++)
		config_nearest_weigh(&near, name, f->agents[i].name);
	return config_did_you_mean(near.name, out, len);
}

/* Where each agent's answers go, as fleet indexes; an agent without an
 * agent output has none. */
#define TO_NONE (-1)
#define TO_MISSING (-2)

/* The agent whose inbox i's answers start runs of, or -1. */
static long
inbox_next(const struct fleet *f, const long *to, size_t i)
{
	return to[i] >= 0 && f->agents[to[i]].trigger == TRIGGER_INBOX ? to[i]
	                                                               : -1;
}

/*
 * Agents whose answers go round back to the first of them: each answer
 * would start the next run, for ever. Such a loop is reported once, at the
 * output line of its first agent in the fleet, and all of it is left out
 * (out[] set). Each agent is walked once.
 */
/* How much of a loop's path its message shows, in bytes. */
#define LOOP_SHOWN 240

static void
report_loops(const struct fleet *f, const long *to, char *out, struct diag *d)
{
	char *seen = calloc(f->count + 1, 1); /* 1 on this walk, 2 done */
	size_t *walk = calloc(f->count + 1, sizeof(*walk));

	if (seen == NULL || walk == NULL)
		abort();
	for (size_t i = 0; i < f->count; i++) {
		size_t n = 0, first, at;
		long k = (long)i;
		char path[512];
		size_t len;

		while (k >= 0 && seen[k] == 0) {
			seen[k] = 1;
			walk[n++] = (size_t)k;
			k = inbox_next(f, to, (size_t)k);
		}
		if (k >= 0 && seen[k] == 1) {
			/* Round to k again: the loop is k onwards. */
			for (at = 0; walk[at] != (size_t)k; at++)
				;
			first = walk[at];
			for (size_t j = at; j < n; j++) {
				out[walk[j]] = 1;
				if (walk[j] < first)
					first = walk[j];
			}
			/* A long loop is named in part: the message keeps its
			 * end, and closes on the agent it starts from. */
			len = (size_t)snprintf(
			    path, sizeof(path), "%s", f->agents[first].name);
			k = to[first];
			while (k != (long)first && len < LOOP_SHOWN) {
				len += (size_t)snprintf(path + len,
				    sizeof(path) - len, " -> %s",
				    f->agents[k].name);
				k = to[k];
			}
			if (k != (long)first)
				snprintf(path + len, sizeof(path) - len,
				    " -> ... (%zu agents in all)", n - at);
			len = strlen(path);
			snprintf(path + len, sizeof(path) - len, " -> %s",
			    f->agents[first].name);
			diag_add(d, f->agents[first].path,
			    f->agents[first].line_of_output,
			    "output: %s: a loop, in which each answer starts the "
			    "next run for ever: left out",
			    path);
		}
		for (size_t j = 0; j < n; j++)
			seen[walk[j]] = 2;
	}
	free(seen);
	free(walk);
}

static void
reject(struct fleet *f, const char *path)
{
	char **r = realloc(f->rejected, (f->nrejected + 1) * sizeof(*r));

	if (r == NULL || (r[f->nrejected] = strdup(path)) == NULL)
		abort();
	f->rejected = r;
	f->nrejected++;
}

/*
 * Outputs name agents that must exist and listen on an inbox with an
 * {{input}} to read them, and must not lead back round. An agent whose output
 * fails that is left out, and then so is one whose output names it. Each
 * agent is judged once, after the one it sends to: a chain of any length
 * takes one walk.
 */
/* The names of manifests refused for their own errors: an output to one
 * of them names an agent left out, not one that does not exist. */
struct refused_names {
	char (*name)[CONFIG_NAME_MAX + 1];
	size_t count;
};

static int
refused_name(const struct refused_names *refused, const char *name)
{
	for (size_t i = 0; i < refused->count; i++)
		if (strcmp(refused->name[i], name) == 0)
			return 1;
	return 0;
}

static void
check_outputs(
    struct fleet *f, const struct refused_names *refused, struct diag *d)
{
	size_t n = f->count, kept = 0;
	int suggestions_left = SUGGESTIONS_MAX;
	char *out = calloc(n + 1, 1);
	char *judged = calloc(n + 1, 1);
	long *to = calloc(n + 1, sizeof(*to));
	size_t *chain = calloc(n + 1, sizeof(*chain));

	if (out == NULL || judged == NULL || to == NULL || chain == NULL)
		abort();
	for (size_t i = 0; i < n; i++) {
		const struct manifest *m = &f->agents[i];
		const struct manifest *t = m->output == OUTPUT_AGENT
		    ? fleet_find(f, m->output_target)
		    : NULL;

		to[i] = m->output != OUTPUT_AGENT ? TO_NONE
		    : t == NULL                   ? TO_MISSING
		                                  : t - f->agents;
	}
	report_loops(f, to, out, d);
	for (size_t i = 0; i < n; i++)
		judged[i] = out[i];
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		long k = (long)i;

		/* Down the chain of inboxes to an agent judged already, or
		 * one whose judgement needs no other's; loops are out. */
		while (!judged[k]) {
			chain[len++] = (size_t)k;
			if (inbox_next(f, to, (size_t)k) < 0)
				break;
			k = inbox_next(f, to, (size_t)k);
		}
		while (len > 0) {
			size_t j = chain[--len];
			const struct manifest *m = &f->agents[j];

			judged[j] = 1;
			if (to[j] == TO_NONE)
				continue;
			if (to[j] == TO_MISSING &&
			    refused_name(refused, m->output_target)) {
				diag_add(d, m->path, m->line_of_output,
				    "output: agent \"%s\" is left out: so is "
				    "this one",
				    m->output_target);
				out[j] = 1;
			} else if (to[j] == TO_MISSING) {
				char meant[CONFIG_NAME_MAX + 32];

				diag_add(d, m->path, m->line_of_output,
				    "output: no agent of the agents directory "
				    "is named \"%s\": left out%s",
				    m->output_target,
				    agent_meant(f, m->output_target,
				        &suggestions_left, meant,
				        sizeof(meant)));
				out[j] = 1;
			} else if (f->agents[to[j]].trigger != TRIGGER_INBOX) {
				diag_add(d, m->path, m->line_of_output,
				    "output: agent \"%s\" has no inbox (its "
				    "trigger is not inbox): left out",
				    m->output_target);
				out[j] = 1;
			}
			if (out[j])
				continue;
			/* Both are told: check tells every problem. */
			if (!template_uses(f->agents[to[j]].prompt, "input")) {
				diag_add(d, m->path, m->line_of_output,
				    "output: agent \"%s\"'s prompt has no "
				    "{{input}}: the answers would be lost "
				    "unread: left out",
				    m->output_target);
				out[j] = 1;
			}
			if (out[to[j]]) {
				diag_add(d, m->path, m->line_of_output,
				    "output: agent \"%s\" is left out: so is "
				    "this one",
				    m->output_target);
				out[j] = 1;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		if (out[i]) {
			reject(f, f->agents[i].path);
			manifest_free(&f->agents[i]);
		} else {
			f->agents[kept++] = f->agents[i];
		}
	f->count = kept;
	free(out);
	free(judged);
	free(to);
	free(chain);
}

int
fleet_rejected(const struct fleet *f, const char *path)
{
	for (size_t i = 0; i < f->nrejected; i++)
		if (strcmp(f->rejected[i], path) == 0)
			return 1;
	return 0;
}

int
fleet_load(struct fleet *f, const char *dir, const struct config *c,
    fleet_runs_from_fn *runs_from, void *arg, struct diag *d)
{
	struct dirent **names;
	struct refused_names refused = {0};
	int n, before = d->count;

	memset(f, 0, sizeof(*f));
	n = scandir(dir, &names, conf_file, alphasort);
	if (n < 0) {
		diag_add(d, dir, 0, "cannot read the agents directory: %s",
		    strerror(errno));
		f->unread = 1;
		return d->count - before;
	}
	f->agents = calloc((size_t)n + 1, sizeof(*f->agents));
	if (f->agents == NULL)
		abort();
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX], why[PATH_MAX + 256];
		struct manifest *m = &f->agents[f->count];
		struct manifest *dup = NULL;
		const char *running;
		int bad;

		config_resolve(dir, names[i]->d_name, path, sizeof(path));
		free(names[i]);
		bad = manifest_load(m, path, d);
		/* Told whatever else is wrong: check tells every problem. */
		/* An empty tier is no tier either: a worker would refuse
		 * the agent's frame. */
		if (c != NULL && m->line_of_tier > 0 &&
		    config_tier_fault(c, m->tier, why, sizeof(why)) != 0) {
			diag_add(d, path, m->line_of_tier, "tier: %s", why);
			bad++;
		}
		if (bad == 0)
			/* f's own: it may change it. */
			dup = (struct manifest *)fleet_find(f, m->name);
		if (dup != NULL && runs_from != NULL &&
		    (running = runs_from(m->name, arg)) != NULL &&
		    strcmp(running, path) == 0) {
			/* A copy came first: the agent keeps its file. */
			diag_add(d, dup->path, dup->line_of_name,
			    "name: \"%s\" is taken by %s, which runs it",
			    m->name, path);
			reject(f, dup->path);
			manifest_free(dup);
			*dup = *m;
			memset(m, 0, sizeof(*m));
			continue;
		}
		if (dup != NULL) {
			diag_add(d, path, m->line_of_name,
			    "name: \"%s\" is taken by %s", m->name, dup->path);
			bad = 1;
		}
		if (bad) {
			/* Of a name taken, the fleet has the agent. */
			if (m->name[0] != '\0' && dup == NULL &&
			    !refused_name(&refused, m->name)) {
				void *more = realloc(refused.name,
				    (refused.count + 1) *
				        sizeof(*refused.name));

				if (more == NULL)
					abort();
				refused.name = more;
				memcpy(refused.name[refused.count++], m->name,
				    sizeof(m->name));
			}
			manifest_free(m);
			reject(f, path);
			continue;
		}
		f->count++;
	}
	free(names);
	check_outputs(f, &refused, d);
	free(refused.name);
	return d->count - before;
}

void
fleet_free(struct fleet *f)
{
	for (size_t i = 0; i < f->count; i++)
		manifest_free(&f->agents[i]);
	free(f->agents);
	f->agents = NULL;
	f->count = 0;
	for (size_t i = 0; i < f->nrejected; i++)
		free(f->rejected[i]);
	free(f->rejected);
	f->rejected = NULL;
	f->nrejected = 0;
}
