/*
 * modelname.c: model names as Ollama reads them (see modelname.h).
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "modelname.h"

#define NAME_MAX_LEN 512

enum part { HOST, SPACE, MODEL, TAG, NPARTS };

/* A part of a name: absent (the default), or text that may be empty. An
 * empty part that a separator promised is "missing", which Ollama's parser
 * marks so that the name is invalid. */
struct span {
	const char *p;
	size_t len;
	int present, missing;
};

static const char *
last_of(const char *s, size_t len, char c)
{
	while (len > 0)
		if (s[--len] == c)
			return s + len;
	return NULL;
}

static void
set_span(struct span *sp, const char *p, size_t len)
{
	sp->p = p;
	sp->len = len;
	sp->present = 1;
	sp->missing = len == 0;
}

/*
 * Ollama's ParseNameBare: the tag is cut at the last ':' if no '/' follows
 * it, then the model and the namespace at the last '/' each, and what is
 * left is the host, past a "scheme://". Text before a cut that is empty
 * makes the next part missing, and the parse ends there.
 */
static void
split(const char *s, size_t len, struct span part[NPARTS])
{
	const char *colon = last_of(s, len, ':'), *slash = last_of(s, len, '/');

	memset(part, 0, NPARTS * sizeof(*part));
	if (colon != NULL && (slash == NULL || colon > slash)) {
		set_span(&part[TAG], colon + 1, len - (size_t)(colon + 1 - s));
		len = (size_t)(colon - s);
		if (len == 0) {
			set_span(&part[MODEL], s, 0);
			return;
		}
	}
	for (enum part k = MODEL; k >= SPACE; k--) {
		if ((slash = last_of(s, len, '/')) == NULL) {
			set_span(&part[k], s, len);
			return;
		}
		set_span(&part[k], slash + 1, len - (size_t)(slash + 1 - s));
		len = (size_t)(slash - s);
		if (len == 0) {
			set_span(&part[k - 1], s, 0);
			return;
		}
	}
	for (size_t i = 0; i + 3 <= len; i++)
		if (memcmp(s + i, "://", 3) == 0) {
			/* An empty host after a scheme is the default one. */
			set_span(&part[HOST], s + i + 3, len - i - 3);
			part[HOST].present = part[HOST].len > 0;
			return;
		}
	set_span(&part[HOST], s, len);
}

static int
part_ok(enum part k, const struct span *sp)
{
	if (sp->missing || sp->len < 1 ||
	    sp->len > (k == HOST ? MODEL_NAME_HOST_MAX : MODEL_NAME_PART_MAX))
		return 0;
	for (size_t i = 0; i < sp->len; i++) {
		unsigned char c = (unsigned char)sp->p[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_')
			continue;
		if (i == 0)
			return 0;
		if (c == '-' || (c == '.' && k != SPACE) ||
		    (c == ':' && k == HOST))
			continue;
		return 0;
	}
	return 1;
}

int
model_name_parse(const char *name, size_t len, struct model_name *out)
{
	static const char *const defaults[NPARTS] = {
	    [HOST] = "registry.ollama.ai",
	    [SPACE] = "library",
	    [TAG] = "latest"};
	char *const dest[NPARTS] = {
	    out->host, out->space, out->model, out->tag};
	struct span part[NPARTS];

	split(name, len, part);
	for (enum part k = HOST; k < NPARTS; k++) {
		if (!part[k].present && defaults[k] != NULL)
			set_span(&part[k], defaults[k], strlen(defaults[k]));
		if (!part_ok(k, &part[k]))
			return -1;
		memcpy(dest[k], part[k].p, part[k].len);
		dest[k][part[k].len] = '\0';
	}
	return 0;
}

void
model_name_shortest(const struct model_name *n, char *out, size_t len)
{
	if (strcasecmp(n->host, "registry.ollama.ai") != 0)
		snprintf(out, len, "%s/%s/%s:%s", n->host, n->space, n->model,
		    n->tag);
	else if (strcasecmp(n->space, "library") != 0)
		snprintf(out, len, "%s/%s:%s", n->space, n->model, n->tag);
	else
		snprintf(out, len, "%s:%s", n->model, n->tag);
}

int
model_name_full(const char *name, char *out, size_t outlen)
{
	struct span part[NPARTS];
	const char *at = strrchr(name, '@');
	int n;

	if (strlen(name) >= NAME_MAX_LEN)
		return -1;
	/* A digest names the same model as its tag. */
	split(name, at != NULL ? (size_t)(at - name) : strlen(name), part);
	n = snprintf(out, outlen, "%.*s/%.*s/%.*s:%.*s",
	    part[HOST].len ? (int)part[HOST].len : 18,
	    part[HOST].len ? part[HOST].p : "registry.ollama.ai",
	    part[SPACE].len ? (int)part[SPACE].len : 7,
	    part[SPACE].len ? part[SPACE].p : "library", (int)part[MODEL].len,
	    part[MODEL].len ? part[MODEL].p : "",
	    part[TAG].len ? (int)part[TAG].len : 6,
	    part[TAG].len ? part[TAG].p : "latest");
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

int
model_name_same(const char *a, const char *b)
{
	char fa[NAME_MAX_LEN + 64], fb[NAME_MAX_LEN + 64];

	if (model_name_full(a, fa, sizeof(fa)) != 0 ||
	    model_name_full(b, fb, sizeof(fb)) != 0)
		return strcmp(a, b) == 0;
	return strcmp(fa, fb) == 0;
}
