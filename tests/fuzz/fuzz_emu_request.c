/*
 * libFuzzer target: every request body the emulator parses, and every
 * keep_alive string. The first byte picks the endpoint.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "emu/emu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_request req;
	struct api_error err;
	char msg[160], *text;
	int64_t ns;

	if (size < 1)
		return 0;
	/* The first byte picks the kind: every one, API_DELETE the last. */
	if (api_request_parse((enum api_kind)(data[0] % (API_DELETE + 1)),
	        (const char *)data + 1, size - 1, &req, &err) == 0) {
		for (size_t i = 0; i < req.ninputs; i++)
			(void)api_embed_input(&req, i);
		api_request_free(&req);
	}
	text = malloc(size);
	if (text == NULL)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	(void)duration_parse(text, &ns, msg, sizeof(msg));
	free(text);
	return 0;
}
