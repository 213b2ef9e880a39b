/*
 * ipc.h: request/reply over nng ipc:// sockets, driven by a libev loop.
 *
 * nng completes its asynchronous operations on its own threads and its
 * contexts cannot be polled by descriptor, so every completion is queued
 * under a lock and the loop is woken with ev_async; handlers and callbacks
 * below always run on the loop's thread. A server keeps a pool of REP
 * contexts, so many requests are in flight at once and each may be answered
 * later (asynchronously). A client sends each request on its own REQ
 * context; nng's resend is disabled (an inference can take minutes and must
 * not run twice): a request gets one answer or one error.
 */
#ifndef OLLAMAX_IPC_H
#define OLLAMAX_IPC_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct ipc_server;
struct ipc_call;
struct ipc_client;

/* A request arrived; answer it with ipc_reply, now or later, exactly once. */
typedef void (*ipc_request_fn)(
    void *arg, struct ipc_call *call, const void *data, size_t len);
/* A request's answer (err 0) or failure (an nng error, data NULL). */
typedef void (*ipc_reply_fn)(void *arg, int err, const void *data, size_t len);

/*
 * Listens on url ("ipc:///run/.../x.sock") with nctx contexts, doubled each
 * time every one holds a request unanswered, up to 65536, and given back
 * once the requests are answered (see calls_trim_cb). The socket
 * file is made mode 0600 and peers of another uid are refused. A listener
 * that nng stops taking connections on (see listener_watch_cb) is replaced
 * within about 4 s. Returns NULL and logs on failure.
 */
struct ipc_server *ipc_listen(struct ev_loop *loop, const char *url, int nctx,
    ipc_request_fn fn, void *arg);
/* Sends the answer to call; the call is gone afterwards. */
void ipc_reply(struct ipc_call *call, const void *data, size_t len);
/* Counts a bad request from a peer and answers nothing to it. */
void ipc_drop(struct ipc_call *call);
/* Whether the connection the call came on has closed: its answer will
 * reach nobody. */
int ipc_call_peer_gone(const struct ipc_call *call);
void ipc_server_close(struct ipc_server *s);
/*
 * The connections a close would wait on until their answers are written:
 * those answered while open, and those that closed before an answer came
 * (gone, dropped once they would need more room).
 */
size_t ipc_server_answered_connections(struct ipc_server *s);
/* How many requests the server can hold at once now: grown for a burst,
 * given back after it. */
int ipc_server_calls(const struct ipc_server *s);

/* Dials url; connects in the background and redials when the peer restarts. */
struct ipc_client *ipc_dial(struct ev_loop *loop, const char *url);
/*
 * Sends one request; fn runs on the loop with the reply, or with an error
 * after timeout_ms (0: no timeout). Returns 0, or an nng error (fn is then
 * not called).
 */
int ipc_request(struct ipc_client *c, const void *data, size_t len,
    int64_t timeout_ms, ipc_reply_fn fn, void *arg);
void ipc_client_close(struct ipc_client *c);

/*
 * nng 1.5.2 can hang in a socket's close for good (see ipc.c): a process
 * that closes its sockets as it ends bounds them first. Past seconds,
 * "WHO: its sockets did not close within N s of the stop (nng): exiting
 * without" and `then` go to stderr as one line, and the process _exits
 * with status. ipc_close_deadline_met once they have closed.
 */
void ipc_close_deadline(
    const char *who, unsigned seconds, int status, const char *then);
void ipc_close_deadline_met(void);

/*
 * A request's error when it timed out before a connection took it: the
 * peer is not there (or its one connection is held up writing an earlier
 * request), as against there and slow to answer. Not an nng number (those
 * stay below it).
 */
#define IPC_ENOTSENT 0x40000000

/* The text of an nng error number or of IPC_ENOTSENT. */
const char *ipc_strerror(int err);

/* Whether a request's error leaves it carried out or not: the peer took
 * it and did not answer in time. */
int ipc_taken_unanswered(int err);

/* Frames refused because of their size or a peer of another uid. */
uint64_t ipc_refused(void);

#endif
