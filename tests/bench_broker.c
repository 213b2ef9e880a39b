/*
 * bench_broker: what the broker adds to a request. The same inference,
 * RUNS times one after the other, straight to the backend (libcurl, one
 * kept-alive connection, streamed as the broker streams it) and through
 * the broker's socket (an infer frame, as a worker sends it). Against
 * ollamax-emu --speed inf, the difference is the broker's own cost.
 *
 *   bench_broker BACKEND_URL RUNTIME_DIR TIER MODEL NUM_CTX RUNS
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "msg.h"
#include "bench_util.h"

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static const char prompt[] = "Summarise the state of the queue in one line.";

int
main(int argc, char **argv)
{
	char url[512], body[1024], sock_url[4200];
	double *direct, *broker;
	struct curl_slist *headers;
	nng_socket sock;
	CURL *e;
	int runs;

	if (argc != 7 || (runs = atoi(argv[6])) < 1) {
		fprintf(stderr,
		    "usage: bench_broker BACKEND_URL RUNTIME_DIR "
		    "TIER MODEL NUM_CTX RUNS\n");
		return 2;
	}
	direct = calloc((size_t)runs, sizeof(double));
	broker = calloc((size_t)runs, sizeof(double));
	snprintf(url, sizeof(url), "%s/api/generate", argv[1]);
	snprintf(body, sizeof(body),
	    "{\"model\":\"%s\",\"prompt\":\"%s\",\"stream\":true,"
	    "\"keep_alive\":-1,\"options\":{\"num_ctx\":%d,"
	    "\"num_predict\":16}}",
	    argv[4], prompt, atoi(argv[5]));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	e = curl_easy_init();
	headers = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	for (int i = 0; i < runs; i++) {
		double t0 = bench_now_us();

		if (curl_easy_perform(e) != CURLE_OK) {
			fprintf(
			    stderr, "bench_broker: %s does not answer\n", url);
			return 1;
		}
		direct[i] = bench_now_us() - t0;
	}
	curl_easy_cleanup(e);
	curl_slist_free_all(headers);

	snprintf(sock_url, sizeof(sock_url), "ipc://%s/broker.sock", argv[2]);
	if (nng_req0_open(&sock) != 0 ||
	    nng_dial(sock, sock_url, NULL, 0) != 0) {
		fprintf(stderr, "bench_broker: cannot dial %s\n", sock_url);
		return 1;
	}
	nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 10000);
	for (int i = 0; i < runs; i++) {
		struct msg_infer req = {.id = (uint64_t)i + 1,
		    .worker = 4000,
		    .priority = PRIO_NORMAL,
		    .prompt = (char *)prompt,
		    .num_predict = 16,
		    .temperature = -1};
		struct msg_writer w;
		struct msg_reader r;
		struct msg_infer_done done;
		const char *data;
		void *buf;
		size_t len;
		double t0;

		snprintf(req.agent, sizeof(req.agent), "bench");
		snprintf(req.tier, sizeof(req.tier), "%s", argv[3]);
		msg_infer_encode(&w, &req);
		data = msg_data(&w, &len);
		t0 = bench_now_us();
		if (nng_send(sock, (void *)data, len, 0) != 0 ||
		    nng_recv(sock, &buf, &len, NNG_FLAG_ALLOC) != 0) {
			fprintf(stderr, "bench_broker: no answer\n");
			return 1;
		}
		broker[i] = bench_now_us() - t0;
		if (msg_open(&r, buf, len) != MSG_OK ||
		    msg_infer_done_decode(&r, &done) != MSG_OK ||
		    done.status != INFER_OK) {
			fprintf(stderr, "bench_broker: the request failed\n");
			return 1;
		}
		msg_infer_done_free(&done);
		msg_close(&r);
		nng_free(buf, len);
		msg_writer_free(&w);
	}
	nng_close(sock);
	qsort(direct, (size_t)runs, sizeof(double), bench_by_value);
	qsort(broker, (size_t)runs, sizeof(double), bench_by_value);
	printf("direct_p50_us %.0f\nbroker_p50_us %.0f\n", direct[runs / 2],
	    broker[runs / 2]);
	free(direct);
	free(broker);
	curl_global_cleanup();
	return 0;
}
