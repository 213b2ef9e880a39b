/*
 * loadgen.c: ollamax-loadgen, the load generator of scripts/bench. It keeps
 * a fixed number of HTTP requests in flight over keep-alive connections
 * (libcurl multi) and reports throughput, latency percentiles and, for
 * streams, how many were open at once. Not installed: a bench tool.
 */
#include "autoconf.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "cliarg.h"
#include "log.h"
#include "rank.h"

struct slot {
	CURL *easy;
	struct curl_slist *headers;
	double started;
	double first_byte;
	size_t bytes;
	size_t lines;
	int open; /* a byte has arrived, the reply has not ended */
};

struct loadgen {
	long connections;
	long requests;
	double duration;
	const char *url;
	const char *body;
	long started, done, ok, failed;
	double *latencies;
	size_t nlat, caplat;
	double *ttfb;
	size_t nttfb, capttfb;
	long open_now, peak_open;
	size_t lines;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t
on_data(char *p, size_t size, size_t n, void *user)
{
	struct slot *s = user;
	size_t len = size * n;

	if (s->bytes == 0) {
		s->first_byte = now_s();
		s->open = 1;
	}
	s->bytes += len;
	for (size_t i = 0; i < len; i++)
		if (p[i] == '\n')
			s->lines++;
	return len;
}

static void
push(double **arr, size_t *n, size_t *cap, double v)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 4096;
		*arr = realloc(*arr, *cap * sizeof(double));
		if (*arr == NULL)
			fatal("out of memory");
	}
	(*arr)[(*n)++] = v;
}

/* 0 for none: the JSON line has a number in every field. */
/* ,"KEY":MS, of the p-th of v in milliseconds; null without any. */
static void
print_ms(const char *key, const double *v, size_t n, double p)
{
	if (n == 0)
		printf(",\"%s\":null", key);
	else
		printf(",\"%s\":%.3f", key, rank_nearest(v, n, p) * 1e3);
}

static void
start_one(struct loadgen *g, CURLM *multi, struct slot *s)
{
	s->started = now_s();
	s->bytes = 0;
	s->lines = 0;
	s->open = 0;
	g->started++;
	curl_multi_add_handle(multi, s->easy);
}

static const char usage_text[] =
    "usage: ollamax-loadgen --url URL [--body JSON] [--connections N]\n"
    "                       [--requests N | --duration SECONDS]\n";

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"url", required_argument, NULL, 'u'},
	    {"body", required_argument, NULL, 'b'},
	    {"connections", required_argument, NULL, 'c'},
	    {"requests", required_argument, NULL, 'n'},
	    {"duration", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct loadgen g = {.connections = 64, .requests = 0, .duration = 0};
	struct slot *slots;
	CURLM *multi;
	double t0, elapsed;
	char why[256];
	int opt, running = 0;

	log_init("ollamax-loadgen", 0);
	while ((opt = cliarg_getopt(
	            argc, argv, ":h", longopts, why, sizeof(why))) != -1) {
		switch (opt) {
		case 'u':
			g.url = optarg;
			break;
		case 'b':
			g.body = optarg;
			break;
		/* Each connection is a curl handle and a socket. */
		case 'c':
			g.connections = cliarg_long("ollamax-loadgen",
			    "--connections", optarg, 1, 65536);
			break;
		case 'n':
			g.requests = cliarg_long("ollamax-loadgen",
			    "--requests", optarg, 1, 1000000000);
			break;
		case 'd':
			g.duration = cliarg_double("ollamax-loadgen",
			    "--duration", optarg, 0.001, 86400);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fprintf(
			    stderr, "ollamax-loadgen: %s\n%s", why, usage_text);
			return 2;
		}
	}
	if (g.url == NULL || (g.requests <= 0) == (g.duration <= 0)) {
		fprintf(stderr, "ollamax-loadgen: %s\n%s",
		    g.url == NULL ? "--url is required"
		        : g.requests > 0
		        ? "--requests or --duration, not both"
		        : "--requests or --duration is required",
		    usage_text);
		return 2;
	}
	if (g.requests > 0 && g.requests < g.connections)
		g.connections = g.requests;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	multi = curl_multi_init();
	/* One cached connection per slot, so every request reuses one. */
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, g.connections + 8);
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, g.connections);
	slots = calloc((size_t)g.connections, sizeof(*slots));
	if (slots == NULL)
		fatal("out of memory");
	for (long i = 0; i < g.connections; i++) {
		struct slot *s = &slots[i];

		s->easy = curl_easy_init();
		curl_easy_setopt(s->easy, CURLOPT_URL, g.url);
		curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
		curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
		curl_easy_setopt(s->easy, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
		if (g.body != NULL) {
			s->headers = curl_slist_append(
			    NULL, "Content-Type: application/json");
			curl_easy_setopt(
			    s->easy, CURLOPT_HTTPHEADER, s->headers);
			curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, g.body);
		}
	}
	t0 = now_s();
	for (long i = 0; i < g.connections; i++)
		start_one(&g, multi, &slots[i]);
	for (;;) {
		CURLMsg *msg;
		int left;
		long open = 0;

		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
			struct slot *s;
			long code = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(
			    msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			curl_easy_getinfo(
			    msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
			curl_multi_remove_handle(multi, msg->easy_handle);
			g.done++;
			if (msg->data.result == CURLE_OK && code == 200) {
				g.ok++;
				/* A refusal's speed is no server's. */
				push(&g.latencies, &g.nlat, &g.caplat,
				    now_s() - s->started);
				if (s->bytes > 0)
					push(&g.ttfb, &g.nttfb, &g.capttfb,
					    s->first_byte - s->started);
			} else if (g.failed++ == 0) {
				if (msg->data.result != CURLE_OK)
					log_warnx("%s: %s", g.url,
					    curl_easy_strerror(
					        msg->data.result));
				else
					log_warnx("%s: HTTP %ld", g.url, code);
			}
			g.lines += s->lines;
			s->open = 0;
			if ((g.requests > 0 && g.started < g.requests) ||
			    (g.duration > 0 && now_s() - t0 < g.duration)) {
				start_one(&g, multi, s);
				running++;
			}
		}
		for (long i = 0; i < g.connections; i++)
			open += slots[i].open;
		if (open > g.peak_open)
			g.peak_open = open;
		if (running == 0)
			break;
		curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
	elapsed = now_s() - t0;
	rank_sort(g.latencies, g.nlat);
	rank_sort(g.ttfb, g.nttfb);
	printf("{\"requests\":%ld,\"ok\":%ld,\"failed\":%ld,\"seconds\":%.3f,"
	       "\"per_second\":%.1f",
	    g.done, g.ok, g.failed, elapsed, (double)g.ok / elapsed);
	/* Of the requests answered whole. */
	print_ms("p50_ms", g.latencies, g.nlat, 0.5);
	print_ms("p99_ms", g.latencies, g.nlat, 0.99);
	print_ms("max_ms", g.latencies, g.nlat, 1.0);
	print_ms("ttfb_p50_ms", g.ttfb, g.nttfb, 0.5);
	printf(",\"peak_open\":%ld,\"lines\":%zu,\"connections\":%ld}\n",
	    g.peak_open, g.lines, g.connections);
	for (long i = 0; i < g.connections; i++) {
		curl_easy_cleanup(slots[i].easy);
		curl_slist_free_all(slots[i].headers);
	}
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	free(slots);
	free(g.latencies);
	free(g.ttfb);
	return g.failed > 0 ? 1 : 0;
}
