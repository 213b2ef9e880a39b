/*
 * catalog.c: the models ollamax-emu serves, read from an INI file with one
 * [name:tag] section per model (conf/emu-models.ini).
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emu.h"
#include "inifile.h"
#include "log.h"
#include "modelname.h"
#include "utf8.h"

#define MB (1024ULL * 1024ULL)

/* The keys of a model section. */
static const char *const catalog_keys[] = {
    "family",
    "parameter_size",
    "quantization",
    "size_mb",
    "kv_kb_per_token",
    "context_length",
    "embedding_length",
    "load_mb_per_s",
    "prompt_tokens_per_s",
    "gen_tokens_per_s",
    "typical_output_tokens",
    "capabilities",
};
#define NKEYS (sizeof(catalog_keys) / sizeof(catalog_keys[0]))

struct catalog_parse {
	struct emu_catalog *cat;
	const char *path;
	struct diag diag;
	int *section_line;
	/* Whether the last key line was taken: the continuation lines of
	 * an unknown one are not news. */
	int key_taken;
};

static const struct {
	const char *word;
	unsigned bit;
} capability_words[] = {
    {"completion", EMU_CAP_COMPLETION},
    {"embedding", EMU_CAP_EMBEDDING},
    {"vision", EMU_CAP_VISION},
    {"tools", EMU_CAP_TOOLS},
    {"thinking", EMU_CAP_THINKING},
    {"insert", EMU_CAP_INSERT},
};

/*
 * The model of a section, made as the section opens (create) and found for
 * its keys by the line of its header: a bad or repeated section is reported
 * once, and its keys go nowhere.
 */
static struct emu_model *
catalog_section(
    struct catalog_parse *p, const char *section, int line, int create)
{
	struct emu_catalog *cat = p->cat;
	struct emu_model *m;
	uint64_t h;

	for (size_t i = 0; i < cat->count; i++)
		if (strcmp(cat->models[i].name, section) == 0 &&
		    p->section_line[i] == line)
			return &cat->models[i];
	if (!create)
		return NULL;
	/* Ollama's rules: [TinyLlama:latest] is [tinyllama:latest]. */
	for (size_t i = 0; i < cat->count; i++)
		if (model_name_same(cat->models[i].name, section)) {
			diag_add(&p->diag, p->path, line,
			    "[%s]: model defined twice (first at line %d)",
			    section, p->section_line[i]);
			return NULL;
		}
	if (strlen(section) >= sizeof(m->name) ||
	    strchr(section, ':') == NULL) {
		diag_add(&p->diag, p->path, line,
		    "[%s]: a model section is named name:tag, at most %zu characters",
		    section, sizeof(m->name) - 1);
		return NULL;
	}
	/* Clients name models without blanks: "[ a:1 ]" is no "a:1". */
	for (const char *c = section; *c != '\0'; c++)
		if (isspace((unsigned char)*c)) {
			diag_add(&p->diag, p->path, line,
			    "[%s]: blanks in a model name", section);
			return NULL;
		}
	if (section[0] == ':') {
		diag_add(&p->diag, p->path, line,
		    "[%s]: the name before ':' is empty", section);
		return NULL;
	}
	if (section[strlen(section) - 1] == ':') {
		diag_add(&p->diag, p->path, line,
		    "[%s]: the tag after ':' is empty", section);
		return NULL;
	}
	/* No client could name it: Ollama refuses the name. */
	if (model_name_parse(
	        section, strlen(section), &(struct model_name){0}) != 0) {
		diag_add(&p->diag, p->path, line,
		    "[%s]: not a model name Ollama takes", section);
		return NULL;
	}
	if (cat->count == cat->cap) {
		cat->cap = cat->cap ? cat->cap * 2 : 16;
		cat->models = realloc(cat->models, cat->cap * sizeof(*m));
		p->section_line =
		    realloc(p->section_line, cat->cap * sizeof(int));
		if (cat->models == NULL || p->section_line == NULL)
			abort();
	}
	p->section_line[cat->count] = line;
	m = &cat->models[cat->count++];
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", section);
	snprintf(m->quantization, sizeof(m->quantization), "Q4_K_M");
	m->capabilities = EMU_CAP_COMPLETION;
	m->typical_output_tokens = 200;
	/* A stable digest, so that /api/tags looks like Ollama's. */
	h = text_hash(0, section, strlen(section));
	for (int i = 0; i < 4; i++) {
		h = text_hash(h, &i, sizeof(i));
		snprintf(
		    m->digest + i * 16, 17, "%016llx", (unsigned long long)h);
	}
	return m;
}

/* Adds the capabilities of a list, or of a line continuing it. */
static void
catalog_capabilities(
    struct catalog_parse *p, struct emu_model *m, const char *value, int line)
{
	char buf[256], *word, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", value);
	for (word = strtok_r(buf, " ,", &save); word != NULL;
	     word = strtok_r(NULL, " ,", &save)) {
		size_t i,
		    nwords =
		        sizeof(capability_words) / sizeof(capability_words[0]);

		for (i = 0; i < nwords; i++)
			if (strcmp(word, capability_words[i].word) == 0)
				break;
		if (i == nwords)
			diag_add(&p->diag, p->path, line,
			    "capabilities: unknown capability \"%s\" (completion, embedding, vision, tools, thinking, insert)",
			    word);
		else
			m->capabilities |= capability_words[i].bit;
	}
}

static int
catalog_key(void *user, const struct ini_item *item)
{
	struct catalog_parse *p = user;
	const char *section = item->section, *key = item->key,
	           *value = item->value;
	int line = item->line;
	struct emu_model *m;
	double d;
	long n;
	size_t k;

	m = catalog_section(p, section, item->section_line, key == NULL);
	if (key == NULL)
		return m != NULL ? 0 : -1;
	if (m == NULL)
		return 0;
	if (item->continued) {
		/* Only a list goes on over indented lines, and its words
		 * add to those before them. */
		if (!p->key_taken)
			return 0;
		if (strcmp(key, "capabilities") == 0)
			catalog_capabilities(p, m, value, line);
		else
			diag_add(&p->diag, p->path, line,
			    "%s: only capabilities continue on indented lines",
			    key);
		return 0;
	}
	p->key_taken = 0;
	for (k = 0; k < NKEYS; k++)
		if (strcmp(key, catalog_keys[k]) == 0)
			break;
	if (k == NKEYS) {
		diag_add(&p->diag, p->path, line, "[%s]: unknown key \"%s\"",
		    section, key);
		return 0;
	}
	p->key_taken = 1;
#define TEXT(field)                                                            \
	if (strcmp(key, #field) == 0) {                                        \
		if (strlen(value) >= sizeof(m->field))                         \
			diag_add(&p->diag, p->path, line,                      \
			    "%s: longer than %zu characters", key,             \
			    sizeof(m->field) - 1);                             \
		else                                                           \
			snprintf(m->field, sizeof(m->field), "%s", value);     \
		return 0;                                                      \
	}
	TEXT(family)
	TEXT(parameter_size)
	TEXT(quantization)
#undef TEXT
	if (strcmp(key, "size_mb") == 0) {
		if (ini_get_double(
		        value, 1, 1e6, &d, &p->diag, p->path, line, key) == 0)
			m->size_bytes = (uint64_t)(d * MB);
	} else if (strcmp(key, "kv_kb_per_token") == 0) {
		if (ini_get_double(
		        value, 0, 1e5, &d, &p->diag, p->path, line, key) == 0)
			m->kv_bytes_per_token = (uint64_t)(d * 1024);
	} else if (strcmp(key, "context_length") == 0) {
		if (ini_get_int(value, 256, 1 << 24, &n, &p->diag, p->path,
		        line, key) == 0)
			m->context_length = (int)n;
	} else if (strcmp(key, "embedding_length") == 0) {
		if (ini_get_int(
		        value, 1, 65536, &n, &p->diag, p->path, line, key) == 0)
			m->embedding_length = (int)n;
	} else if (strcmp(key, "load_mb_per_s") == 0) {
		ini_get_double(value, 1, 1e6, &m->load_mb_per_s, &p->diag,
		    p->path, line, key);
	} else if (strcmp(key, "prompt_tokens_per_s") == 0) {
		ini_get_double(value, 0.01, 1e7, &m->prompt_tokens_per_s,
		    &p->diag, p->path, line, key);
	} else if (strcmp(key, "gen_tokens_per_s") == 0) {
		ini_get_double(value, 0.01, 1e7, &m->gen_tokens_per_s, &p->diag,
		    p->path, line, key);
	} else if (strcmp(key, "typical_output_tokens") == 0) {
		if (ini_get_int(value, 1, 100000, &n, &p->diag, p->path, line,
		        key) == 0)
			m->typical_output_tokens = (int)n;
	} else if (strcmp(key, "capabilities") == 0) {
		/* The list replaces the default, completion alone. */
		m->capabilities = 0;
		catalog_capabilities(p, m, value, line);
	}
	return 0;
}

int
emu_catalog_load(
    struct emu_catalog *cat, const char *path, char *errbuf, size_t errlen)
{
	struct catalog_parse p = {.cat = cat, .path = path};
	struct ini_keys *keys;
	int bad;

	memset(cat, 0, sizeof(*cat));
	inifile_parse(path, catalog_key, &p, &p.diag, &keys);
	for (size_t i = 0; i < cat->count; i++) {
		struct emu_model *m = &cat->models[i];
		static const char *const required[] = {"size_mb",
		    "load_mb_per_s", "prompt_tokens_per_s", "context_length"};

		/* A key given but refused was told at its line. */
		for (size_t k = 0; k < sizeof(required) / sizeof(required[0]);
		     k++)
			if (!ini_key_given(keys, m->name, required[k]))
				diag_add(&p.diag, path, p.section_line[i],
				    "[%s]: %s is required", m->name,
				    required[k]);
		if ((m->capabilities & EMU_CAP_COMPLETION) &&
		    !ini_key_given(keys, m->name, "gen_tokens_per_s"))
			diag_add(&p.diag, path, p.section_line[i],
			    "[%s]: gen_tokens_per_s is required for a completion model",
			    m->name);
		if ((m->capabilities & EMU_CAP_EMBEDDING) &&
		    !ini_key_given(keys, m->name, "embedding_length"))
			diag_add(&p.diag, path, p.section_line[i],
			    "[%s]: embedding_length is required for an embedding model",
			    m->name);
		if (m->capabilities == 0)
			diag_add(&p.diag, path, p.section_line[i],
			    "[%s]: capabilities is empty", m->name);
	}
	if (p.diag.count == 0 && cat->count == 0)
		diag_add(&p.diag, path, 0, "no [model:tag] section");
	if (errlen > 0)
		snprintf(errbuf, errlen, "%s", p.diag.text ? p.diag.text : "");
	ini_keys_free(keys);
	free(p.section_line);
	bad = p.diag.count > 0;
	diag_free(&p.diag);
	return bad ? -1 : 0;
}

void
emu_catalog_free(struct emu_catalog *cat)
{
	free(cat->models);
	memset(cat, 0, sizeof(*cat));
}

static struct emu_model *
lookup(const struct emu_catalog *cat, const char *name)
{
	if (name == NULL || *name == '\0')
		return NULL;
	for (size_t i = 0; i < cat->count; i++)
		if (model_name_same(cat->models[i].name, name) &&
		    !cat->models[i].removed)
			return &cat->models[i];
	return NULL;
}

const struct emu_model *
emu_catalog_find(const struct emu_catalog *cat, const char *name)
{
	return lookup(cat, name);
}

int
emu_catalog_remove(struct emu_catalog *cat, const char *name)
{
	struct emu_model *m = lookup(cat, name);

	if (m == NULL)
		return -1;
	m->removed = 1;
	return 0;
}

/* Go's unicode.IsSpace, which strings.TrimSpace trims. */
static int
go_space(uint32_t r)
{
	switch (r) {
	case '\t':
	case '\n':
	case '\v':
	case '\f':
	case '\r':
	case ' ':
	case 0x85:
	case 0xa0:
	case 0x1680:
	case 0x2028:
	case 0x2029:
	case 0x202f:
	case 0x205f:
	case 0x3000:
		return 1;
	default:
		return r >= 0x2000 && r <= 0x200a;
	}
}

/* Go's strings.TrimSpace of s (*len bytes): returns the start, sets *len. */
static const char *
trim_space(const char *s, size_t *len)
{
	size_t start = *len, end = 0, size;

	for (size_t i = 0; i < *len; i += size)
		if (!go_space(utf8_decode(s + i, *len - i, &size))) {
			if (start == *len)
				start = i;
			end = i + size;
		}
	if (start == *len)
		end = start;
	*len = end - start;
	return s + start;
}

static int
same_ascii(const char *s, size_t len, const char *word)
{
	return len == strlen(word) && strncasecmp(s, word, len) == 0;
}

enum ref_source { SOURCE_NONE, SOURCE_LOCAL, SOURCE_CLOUD };

/*
 * modelref's parseSourceSuffix: the text after the last ':', blanks
 * trimmed, is "local", "cloud" or TAG-cloud. The name without it is written
 * to base (room for len bytes), its length to *base_len.
 */
static enum ref_source
source_suffix(const char *s, size_t len, char *base, size_t *base_len)
{
	const char *colon = NULL, *suffix;
	size_t idx, n;

	for (size_t i = len; i > 0; i--)
		if (s[i - 1] == ':') {
			colon = s + i - 1;
			break;
		}
	if (colon != NULL) {
		idx = (size_t)(colon - s);
		n = len - idx - 1;
		suffix = trim_space(colon + 1, &n);
		if (same_ascii(suffix, n, "cloud") ||
		    same_ascii(suffix, n, "local")) {
			memmove(base, s, idx);
			*base_len = idx;
			return tolower((unsigned char)suffix[0]) == 'c'
			    ? SOURCE_CLOUD
			    : SOURCE_LOCAL;
		}
		if (memchr(suffix, '/', n) == NULL && n >= 6 &&
		    strncasecmp(suffix + n - 6, "-cloud", 6) == 0) {
			/* The tag is kept trimmed: "a: 7b-cloud" is a:7b. */
			memmove(base, s, idx + 1);
			memmove(base + idx + 1, suffix, n - 6);
			*base_len = idx + 1 + n - 6;
			return SOURCE_CLOUD;
		}
	}
	memmove(base, s, len);
	*base_len = len;
	return SOURCE_NONE;
}

void
emu_model_ref(const char *raw, size_t len, int as_stub, struct emu_ref *ref)
{
	const char *s = trim_space(raw, &len);
	/* Room for a stub's ":cloud" too. */
	char *base = malloc(len + 8), *nested = malloc(len + 8);
	size_t base_len, nested_len;
	enum ref_source source;

	if (base == NULL || nested == NULL)
		fatal("out of memory");
	memset(ref, 0, sizeof(*ref));
	ref->trimmed = s;
	ref->trimmed_len = len;
	if (len == 0) {
		ref->kind = EMU_REF_BLANK;
		goto done;
	}
	source = source_suffix(s, len, base, &base_len);
	if (source != SOURCE_NONE &&
	    source_suffix(base, base_len, nested, &nested_len) != SOURCE_NONE) {
		ref->kind = EMU_REF_CONFLICT;
		goto done;
	}
	ref->kind =
	    source == SOURCE_CLOUD && !as_stub ? EMU_REF_CLOUD : EMU_REF_LOCAL;
	/* NormalizePullName: a cloud model's stub is NAME:cloud, or
	 * NAME:TAG-cloud when a tag was given. */
	if (source == SOURCE_CLOUD && as_stub) {
		const char *slash = memrchr(base, '/', base_len);
		const char *colon = memrchr(base, ':', base_len);
		int tagged = colon != NULL && (slash == NULL || colon > slash);

		memcpy(base + base_len, tagged ? "-cloud" : ":cloud", 6);
		base_len += 6;
	}
	if (model_name_parse(base, base_len, &ref->name) != 0) {
		memset(&ref->name, 0, sizeof(ref->name));
		ref->kind = EMU_REF_INVALID;
		goto done;
	}
	snprintf(ref->full, sizeof(ref->full), "%s/%s/%s:%s", ref->name.host,
	    ref->name.space, ref->name.model, ref->name.tag);
done:
	free(base);
	free(nested);
}
