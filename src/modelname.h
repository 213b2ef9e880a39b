/*
 * modelname.h: model names as Ollama reads them.
 *
 * A name is [HOST/][NAMESPACE/]MODEL[:TAG][@DIGEST]; what it leaves out
 * is registry.ollama.ai, library and latest, and case does not matter.
 * So "tinyllama", "TinyLlama:latest" and
 * "registry.ollama.ai/library/tinyllama:latest" are one model, the one
 * /api/tags and /api/ps list as "tinyllama:latest".
 */
#ifndef OLLAMAX_MODELNAME_H
#define OLLAMAX_MODELNAME_H

#include <stddef.h>

/* The name with every part filled in, lowered: host/namespace/model:tag.
 * Returns -1 when it does not fit in out. */
int model_name_full(const char *name, char *out, size_t outlen);
/* Whether two names are one model's. */
int model_name_same(const char *a, const char *b);

#endif
