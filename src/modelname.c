/*
 * modelname.c: model names as Ollama reads them (see modelname.h).
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "modelname.h"

#define NAME_MAX_LEN 512

int
model_name_full(const char *name, char *out, size_t outlen)
{
	char buf[NAME_MAX_LEN];
	const char *host = "", *space = "", *model, *tag = "";
	char *cut;
	int n;

	if (snprintf(buf, sizeof(buf), "%s", name) >= (int)sizeof(buf))
		return -1;
	/* A digest names the same model as its tag. */
	if ((cut = strrchr(buf, '@')) != NULL)
		*cut = '\0';
	model = buf;
	if ((cut = strrchr(buf, '/')) != NULL) {
		*cut = '\0';
		model = cut + 1;
		space = buf;
		if ((cut = strrchr(buf, '/')) != NULL) {
			*cut = '\0';
			space = cut + 1;
			host = buf;
			/* http://host names the host. */
			if ((cut = strstr(buf, "://")) != NULL)
				host = cut + 3;
		}
	}
	/* The tag is the model's: a host's port is no tag. */
	if ((cut = strrchr(model, ':')) != NULL) {
		*cut = '\0';
		tag = cut + 1;
	}
	n = snprintf(out, outlen, "%s/%s/%s:%s",
	    *host ? host : "registry.ollama.ai", *space ? space : "library",
	    model, *tag ? tag : "latest");
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
