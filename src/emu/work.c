/*
 * work.c: the timing model (how long a load, a prompt and each output token
 * take) and the text model (what the emulated model says). Both are pure:
 * the same model, prompt and seed give the same answer and token counts.
 */
#include "autoconf.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "emu.h"

/*
 * One GPU for all runners. Requests of one runner are batched: together
 * they go 1 + share * (k - 1) times as fast as one alone. Runners of
 * different models share no weights, so they split the GPU: each request
 * gets its runner's batch speed divided among all requests on the GPU.
 */
double
work_rate(int k, int on_gpu, double share, double offload_slowdown)
{
	double r;

	if (k < 1)
		k = 1;
	if (on_gpu < k)
		on_gpu = k;
	r = (1.0 + share * (k - 1)) / on_gpu;
	return r / (offload_slowdown > 1 ? offload_slowdown : 1);
}

/*
 * Layers left in system memory run on the CPU, about eight times slower
 * than on the GPU for these model sizes; time per token mixes the two.
 */
double
work_offload_slowdown(uint64_t size_bytes, uint64_t vram_bytes)
{
	double gpu;

	if (size_bytes == 0 || vram_bytes >= size_bytes)
		return 1;
	gpu = (double)vram_bytes / (double)size_bytes;
	return gpu + 8.0 * (1.0 - gpu);
}

void
work_init(struct work *w, const struct emu_model *m, int prompt_tokens,
    int output_tokens, int64_t now)
{
	memset(w, 0, sizeof(*w));
	w->prompt_work = prompt_tokens / m->prompt_tokens_per_s;
	w->token_work = m->gen_tokens_per_s > 0 ? 1.0 / m->gen_tokens_per_s : 0;
	w->tokens_total = output_tokens;
	w->last_ns = now;
	w->start_ns = now;
	w->prompt_done_ns = -1;
	w->finish_ns = -1;
}

/* When the work before was done, at rate since last_ns, reached mark. */
static int64_t
work_reached(const struct work *w, double before, double mark, double rate)
{
	double need = mark - before;

	return w->last_ns + (need > 0 ? llround(need / rate * NS_PER_SEC) : 0);
}

/*
 * The exact moments the prompt and the last token were done are kept as
 * they pass, not worked out later: the rate may have changed since, as
 * another request started, and the time a timer fires late is no work.
 */
void
work_advance(struct work *w, int64_t now, double rate)
{
	double before = w->done,
	       total = w->prompt_work + w->tokens_total * w->token_work;

	if (now <= w->last_ns)
		return;
	w->done += rate * (double)(now - w->last_ns) / NS_PER_SEC;
	if (w->prompt_done_ns < 0 && w->done >= w->prompt_work)
		w->prompt_done_ns =
		    work_reached(w, before, w->prompt_work, rate);
	if (w->finish_ns < 0 && w->done >= total)
		w->finish_ns = work_reached(w, before, total, rate);
	w->last_ns = now;
}

int
work_tokens_ready(const struct work *w)
{
	double gen = w->done - w->prompt_work;
	int n;

	if (gen < 0)
		return 0;
	if (w->token_work <= 0)
		return w->tokens_total;
	/* A tiny epsilon so that a token due exactly now counts. */
	n = (int)floor(gen / w->token_work + 1e-9);
	return n > w->tokens_total ? w->tokens_total : n;
}

int64_t
work_time_of_tokens(const struct work *w, int tokens, double rate)
{
	double target = w->prompt_work + tokens * w->token_work;
	double left = target - w->done;

	if (left <= 0)
		return w->last_ns;
	return w->last_ns + (int64_t)ceil(left / rate * NS_PER_SEC);
}

int64_t
work_finish_time(const struct work *w)
{
	return w->finish_ns >= 0 ? w->finish_ns : w->last_ns;
}

/* ------------------------------------------------------------------ */

uint64_t
text_hash(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;

	/* FNV-1a, then a mix: stable across runs and machines. */
	if (h == 0)
		h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static uint64_t
splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/*
 * About four bytes a token for English and code, the usual figure for BPE
 * tokenizers of this size; a word is at least one token.
 */
int
text_token_count(const char *s, size_t len)
{
	size_t words = 0;
	int in_word = 0;

	for (size_t i = 0; i < len; i++) {
		int space =
		    s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r';

		if (!space && !in_word)
			words++;
		in_word = !space;
	}
	return (int)(len / 4 > words ? len / 4 : words);
}

int
text_answer_tokens(const struct emu_model *m, uint64_t h)
{
	/* Uniform in [typical/2, 3*typical/2]: mean is the typical length. */
	int typical =
	    m->typical_output_tokens > 0 ? m->typical_output_tokens : 200;
	uint64_t x = splitmix(h ^ 0x5bd1e995ULL);

	return typical / 2 + (int)(x % (uint64_t)(typical + 1));
}

static const char *const vocabulary[] = {
    "the",
    "model",
    "agent",
    "request",
    "queue",
    "token",
    "memory",
    "cache",
    "system",
    "process",
    "result",
    "value",
    "function",
    "return",
    "error",
    "check",
    "data",
    "state",
    "event",
    "loop",
    "worker",
    "broker",
    "slot",
    "load",
    "plan",
    "step",
    "first",
    "then",
    "because",
    "which",
    "should",
    "will",
    "can",
    "this",
    "that",
    "with",
    "for",
    "and",
    "each",
    "every",
    "time",
    "input",
    "output",
    "file",
    "line",
    "code",
    "test",
    "build",
    "design",
    "problem",
    "answer",
    "reason",
    "fast",
    "small",
    "simple",
    "order",
    "batch",
    "latency",
    "throughput",
    "context",
    "prompt",
    "server",
    "client",
    "stream",
    "report",
    "metric",
    "limit",
    "budget",
    "task",
    "goal",
    "note",
    "review",
    "change",
    "update",
    "we",
    "it",
    "is",
    "are",
    "be",
    "to",
    "of",
    "in",
    "on",
    "a",
    "an",
    "as",
    "by",
    "not",
    "so",
};

size_t
text_token(uint64_t h, int i, char *buf, size_t len)
{
	uint64_t x = splitmix(h + (uint64_t)i * 0x9e3779b97f4a7c15ULL);
	size_t nwords = sizeof(vocabulary) / sizeof(vocabulary[0]);
	const char *word = vocabulary[x % nwords];
	int n;

	/* Sentences end now and then; the first token has no space. */
	if (i > 0 && (x >> 32) % 11 == 0)
		n = snprintf(buf, len, ".");
	else if (i > 0 && (x >> 40) % 29 == 0)
		n = snprintf(buf, len, "\n");
	else
		n = snprintf(buf, len, "%s%s", i == 0 ? "" : " ", word);
	if (n < 0)
		return 0;
	return (size_t)n < len ? (size_t)n : len - 1;
}

void
text_embedding(uint64_t h, float *vec, int dim)
{
	double norm = 0;

	for (int i = 0; i < dim; i++) {
		uint64_t x = splitmix(h + (uint64_t)i);
		/* Uniform in [-1, 1): direction is all that matters. */
		double v = (double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0;

		vec[i] = (float)v;
		norm += v * v;
	}
	norm = sqrt(norm);
	if (norm > 0)
		for (int i = 0; i < dim; i++)
			vec[i] = (float)(vec[i] / norm);
}
