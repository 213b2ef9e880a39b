/*
 * modelname.h: model names as Ollama reads them.
 *
 * A name is [HOST/][NAMESPACE/]MODEL[:TAG]; what it leaves out is
 * registry.ollama.ai, library and latest, and case does not matter.
 * So "tinyllama", "TinyLlama:latest" and
 * "registry.ollama.ai/library/tinyllama:latest" are one model, the one
 * /api/tags and /api/ps list as "tinyllama:latest".
 */
#ifndef OLLAMAX_MODELNAME_H
#define OLLAMAX_MODELNAME_H

#include <stddef.h>

/* The longest part of each kind Ollama takes. */
#define MODEL_NAME_HOST_MAX 350
#define MODEL_NAME_PART_MAX 80

/* A name taken apart, every part filled in and checked, case kept. */
struct model_name {
	char host[MODEL_NAME_HOST_MAX + 1];
	char space[MODEL_NAME_PART_MAX + 1];
	char model[MODEL_NAME_PART_MAX + 1];
	char tag[MODEL_NAME_PART_MAX + 1];
};

/* Room for any name model_name_parse takes, in full. */
#define MODEL_NAME_FULL_MAX                                                    \
	(MODEL_NAME_HOST_MAX + 3 * MODEL_NAME_PART_MAX + 3 + 1)

/*
 * Takes name (len bytes, which may hold any byte) apart as Ollama's
 * model.ParseName does, and checks it as Name.IsValid: host up to 350 of
 * [A-Za-z0-9_.:-], namespace up to 80 of [A-Za-z0-9_-], model and tag up
 * to 80 of [A-Za-z0-9_.-], each starting with a letter, digit or '_'. A
 * "scheme://" before the host is dropped unread. Nothing is trimmed and a
 * "@digest" or an empty tag makes the name invalid, as in Ollama 0.33.
 * Returns 0, or -1 when Ollama would call the name invalid.
 */
int model_name_parse(const char *name, size_t len, struct model_name *out);
/* The name as Ollama's DisplayShortest writes it: the host and namespace
 * only when they are not the defaults, always the tag. */
void model_name_shortest(const struct model_name *n, char *out, size_t len);

/* The name with every part filled in, lowered: host/namespace/model:tag.
 * It takes what the broker may be given loosely: a "@digest" is dropped, a
 * part left empty is the default, and nothing is checked. Returns -1 when
 * it does not fit in out. */
int model_name_full(const char *name, char *out, size_t outlen);
/* Whether two names are one model's. */
int model_name_same(const char *a, const char *b);

#endif
