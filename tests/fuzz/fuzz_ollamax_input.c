/*
 * libFuzzer target: what reaches ollamax from outside its own code. The
 * first byte picks the reader: a frame from another process (every type's
 * decoder), a line of a /api/generate stream, a /api/ps or /api/show body,
 * a config file or an agent's manifest, a prompt template.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "inifile.h"
#include "msg.h"
#include "ollama.h"
#include "template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
decode_frame(const uint8_t *data, size_t size)
{
	struct msg_reader r;

	if (msg_open(&r, data, size) == MSG_OK) {
		switch (r.type) {
		case MSG_HELLO: {
			struct msg_hello m;
			(void)msg_hello_decode(&r, &m);
			break;
		}
		case MSG_READY: {
			struct msg_ready m;
			if (msg_ready_decode(&r, &m) == MSG_OK)
				msg_ready_free(&m);
			break;
		}
		case MSG_INFER: {
			struct msg_infer m = {0};
			(void)msg_infer_decode(&r, &m);
			msg_infer_free(&m);
			break;
		}
		case MSG_INFER_DONE: {
			struct msg_infer_done m = {0};
			(void)msg_infer_done_decode(&r, &m);
			msg_infer_done_free(&m);
			break;
		}
		case MSG_CTL: {
			struct msg_ctl m = {0};
			(void)msg_ctl_decode(&r, &m);
			msg_ctl_free(&m);
			break;
		}
		case MSG_CTL_REPLY: {
			struct msg_ctl_reply m = {0};
			(void)msg_ctl_reply_decode(&r, &m);
			msg_ctl_reply_free(&m);
			break;
		}
		case MSG_REPORT: {
			struct msg_report m;
			(void)msg_report_decode(&r, &m);
			break;
		}
		case MSG_SETUP: {
			struct msg_setup m = {0};
			(void)msg_setup_decode(&r, &m);
			msg_setup_free(&m);
			break;
		}
		case MSG_FETCH: {
			struct msg_fetch m;
			(void)msg_fetch_decode(&r, &m);
			break;
		}
		case MSG_AGENTS: {
			struct msg_agents m = {0};
			(void)msg_agents_decode(&r, &m);
			msg_agents_free(&m);
			break;
		}
		case MSG_DELIVER: {
			struct msg_deliver m = {0};
			(void)msg_deliver_decode(&r, &m);
			msg_deliver_free(&m);
			break;
		}
		case MSG_CANCEL: {
			struct msg_cancel m;
			(void)msg_cancel_decode(&r, &m);
			break;
		}
		}
	}
	msg_close(&r);
}

/* A stream cut into lines as the transfer may cut it: one result. */
static void
parse_stream(const char *text, size_t size)
{
	struct ollama_result res = {0};
	size_t start = 0;

	for (size_t i = 0; i <= size; i++)
		if (i == size || text[i] == '\n') {
			if (ollama_parse_line(&res, text + start, i - start) !=
			    0)
				break;
			start = i + 1;
		}
	ollama_result_free(&res);
}

/* The readers of files take a path: the input as a file in memory. */
static void
load_file(int manifest, const uint8_t *data, size_t size)
{
	char path[64];
	struct diag d = {0};
	int fd = memfd_create("fuzz", 0);

	if (fd < 0)
		return;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (manifest) {
			struct manifest m;

			(void)manifest_load(&m, path, &d);
			manifest_free(&m);
		} else {
			struct config c;

			(void)config_load(&c, path, &d);
			config_free(&c);
		}
	}
	diag_free(&d);
	close(fd);
}

static void
render(const char *text)
{
	static const struct template_var vars[] = {
	    {"input", "the input"},
	    {"name", "agent"},
	    {"date", "2026-01-01"},
	};
	static const char *const names[] = {"input", "name", "date"};
	char unknown[128];

	free(template_render(text, vars, 3, 4096));
	(void)template_unknown(text, names, 3, unknown, sizeof(unknown));
	(void)template_uses(text, "input");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size < 1)
		return 0;
	/* The readers of text are given it NUL-terminated, as they are. */
	text = malloc(size);
	if (text == NULL)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	switch (data[0] % 7) {
	case 0:
		decode_frame(data + 1, size - 1);
		break;
	case 1:
		parse_stream(text, size - 1);
		break;
	case 2: {
		struct ollama_ps ps;
		(void)ollama_parse_ps(&ps, text, size - 1, NULL, NULL);
		break;
	}
	case 3: {
		struct ollama_show show;
		(void)ollama_parse_show(&show, text, size - 1);
		break;
	}
	case 4:
		load_file(0, data + 1, size - 1);
		break;
	case 5:
		load_file(1, data + 1, size - 1);
		break;
	case 6:
		render(text);
		break;
	}
	free(text);
	return 0;
}
