/*
 * msg.h: every frame ollamax processes exchange, and the one codec for them.
 *
 * A frame is a msgpack map {"v": MSG_VERSION, "t": type, ...fields}. The
 * writer builds one with typed helpers; the reader checks the version, the
 * type and each field's type, length and bounds, so that a decoder never
 * trusts its input. Bump MSG_VERSION on every change of a frame's fields.
 */
#ifndef OLLAMAX_MSG_H
#define OLLAMAX_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "config.h"

#define MSG_VERSION 16

/*
 * A command frame may carry "until": the time, on msg_clock_ms, after which
 * its receiver must not act on it, shortly before its sender stops waiting
 * for the answer. The receiver refuses it then, so that a command the
 * sender counts as failed is not carried out late. 0: no limit.
 */
int64_t msg_clock_ms(void);
/* How many ms past until_ms it is now; 0 when in time or without one. */
int64_t msg_late_ms(int64_t until_ms);
/* Largest frame a socket accepts (NNG_OPT_RECVMAXSZ): room for the
 * JSON that answers `run --wait`, where each byte of a MSG_MAX_TEXT answer
 * may take six (a control byte is written \u0001). */
#define MSG_MAX_FRAME (2 * 1024 * 1024)
/* Objects (each string, number, array and map counts one) a frame holds
 * at most: a full page of agents holds some 15000. */
#define MSG_OBJECTS_MAX 65536
/* Longest prompt or answer text a frame may carry. */
#define MSG_MAX_TEXT (256 * 1024)
#define MSG_NAME_MAX 64
/* Largest setup page of agents: well under MSG_MAX_FRAME. */
#define MSG_PAGE_BYTES (256 * 1024)
/* Models a report can name as resident, or describe. */
#define MSG_RESIDENT_MAX 16
#define MSG_MODELS_MAX 32
/* Longest text of why the backend cannot be reached a report carries. */
#define MSG_BACKEND_ERROR_MAX 256

enum msg_type {
	MSG_HELLO = 1,  /* child -> supervisor: role, index, pid */
	MSG_INFER,      /* worker -> broker: one inference */
	MSG_INFER_DONE, /* broker -> worker: its result */
	MSG_CTL,        /* ollamaxctl -> supervisor: verb, argument */
	MSG_CTL_REPLY,  /* supervisor -> ollamaxctl: ok, error, JSON body */
	MSG_REPORT,     /* child -> supervisor: its counters, every second */
	MSG_SETUP,      /* supervisor -> child, answering hello: its config */
	MSG_FETCH,      /* worker -> supervisor: one page of its agents */
	MSG_AGENTS,     /* supervisor -> worker: agents to run */
	MSG_READY,      /* child -> supervisor: set up and serving */
	MSG_DELIVER,    /* a message for an agent's inbox */
	MSG_CANCEL,     /* worker -> broker: an inference no longer wanted */
	MSG_TYPE_MAX,
};

/* Why a decode failed: one word for counters, one sentence for logs. */
enum msg_error {
	MSG_OK = 0,
	MSG_E_TRUNCATED,
	MSG_E_NOT_A_MAP,
	MSG_E_VERSION,
	MSG_E_TYPE,
	MSG_E_FIELD_MISSING,
	MSG_E_FIELD_TYPE,
	MSG_E_FIELD_RANGE,
	MSG_E_TOO_BIG,
	MSG_E_TRAILING,
	MSG_E_COUNT,
};

/* The name of an error, for logs and counters ("truncated"). */
const char *msg_error_name(enum msg_error e);
const char *msg_type_name(int type);

/* ------------------------------------------------------------------ */
/* Writer                                                             */
/* ------------------------------------------------------------------ */

struct msg_writer {
	msgpack_sbuffer buf;
	msgpack_packer pk;
};

/* Starts a frame of type with nfields fields after "v" and "t". */
void msg_begin(struct msg_writer *w, enum msg_type type, size_t nfields);
void msg_put_str(struct msg_writer *w, const char *key, const char *value);
void msg_put_int(struct msg_writer *w, const char *key, int64_t value);
void msg_put_uint(struct msg_writer *w, const char *key, uint64_t value);
void msg_put_double(struct msg_writer *w, const char *key, double value);
void msg_put_bool(struct msg_writer *w, const char *key, int value);
/* The frame's bytes; valid until msg_writer_free. */
const char *msg_data(const struct msg_writer *w, size_t *len);
void msg_writer_free(struct msg_writer *w);

/* ------------------------------------------------------------------ */
/* Reader                                                             */
/* ------------------------------------------------------------------ */

struct msg_reader {
	msgpack_unpacked unpacked;
	const msgpack_object_map *map;
	int type;
	enum msg_error error;
	char detail[128]; /* the field at fault, e.g. "prompt: too long" */
};

/*
 * Opens a frame: checks that it is one whole msgpack map of at most
 * MSG_MAX_FRAME bytes, of this MSG_VERSION and of a known type. Returns
 * MSG_OK, or an error with r->detail set. Always close with msg_close.
 */
enum msg_error msg_open(struct msg_reader *r, const void *data, size_t len);
void msg_close(struct msg_reader *r);

/*
 * Field getters. A missing field is an error when required, else leaves
 * *out as it was. Strings are copied into out (NUL-terminated) and must be
 * shorter than cap; *_dup getters malloc a copy the caller frees.
 */
enum msg_error msg_get_str(
    struct msg_reader *r, const char *key, char *out, size_t cap, int required);
enum msg_error msg_get_str_dup(struct msg_reader *r, const char *key,
    char **out, size_t max, int required);
enum msg_error msg_get_int(struct msg_reader *r, const char *key, int64_t *out,
    int64_t min, int64_t max, int required);
enum msg_error msg_get_uint(
    struct msg_reader *r, const char *key, uint64_t *out, int required);
enum msg_error msg_get_double(struct msg_reader *r, const char *key,
    double *out, double min, double max, int required);
enum msg_error msg_get_bool(
    struct msg_reader *r, const char *key, int *out, int required);

/* ------------------------------------------------------------------ */
/* Frames                                                             */
/* ------------------------------------------------------------------ */

enum msg_role { ROLE_SUPERVISOR, ROLE_BROKER, ROLE_WORKER };

struct msg_hello {
	int role; /* enum msg_role */
	int index;
	int64_t pid;
	/* proc_started of pid, 0 if not known (and in the frames of the
	 * supervisor's children to it, which it does not read): the number
	 * alone may name another process by the time it is read. */
	uint64_t started;
};

/* Most agents a ready frame names: a worker that could not start more is
 * no worker to keep. */
#define MSG_READY_NAMES_MAX 16384

/*
 * A child set up and serving. A worker names the agents placed on it whose
 * tasks it could not create (out of memory or of mappings): they do not
 * run.
 */
struct msg_ready {
	struct msg_hello child;
	char (*not_started)[MSG_NAME_MAX];
	uint32_t nnot_started;
};

enum msg_priority { PRIO_LOW, PRIO_NORMAL, PRIO_HIGH };

struct msg_infer {
	uint64_t id; /* unique per process; with worker, per broker */
	int worker;
	/* proc_started of the process id's upper half names, 0 if not known:
	 * a process that takes its number again starts its ids afresh. */
	uint64_t started;
	char agent[MSG_NAME_MAX];
	char tier[MSG_NAME_MAX];
	int priority;       /* enum msg_priority */
	char *system;       /* owned */
	char *prompt;       /* owned */
	int num_predict;    /* -1: until the answer ends */
	double temperature; /* < 0: the model's default */
};

enum msg_status {
	INFER_OK,
	INFER_FAILED,      /* the backend said no for good (4xx, no model) */
	INFER_UNAVAILABLE, /* the backend could not be reached in time */
};

struct msg_infer_done {
	uint64_t id;
	int status; /* enum msg_status */
	char error[256];
	char model[96]; /* the model that answered (after fallbacks) */
	char *text;     /* owned */
	int64_t prompt_tokens;
	int64_t eval_tokens;
	int64_t queued_ms;
	int64_t total_ms;
};

struct msg_ctl {
	char verb[32];
	char *arg;   /* owned; may be NULL */
	char *input; /* owned; may be NULL: the text `run` hands an agent */
	int json;
	int wait; /* run: answer once the run is over, with its result */
	int64_t until_ms;
	/* Drawn at random by the sender, and the same in each copy of the
	 * command it sends again: the receiver carries it out once (see
	 * once.h). 0: none, and "id" is left out; a frame's id is never 0. */
	uint64_t id;
	/* Passed on by the supervisor to a worker, which takes commands from
	 * it alone: not from ollamaxctl pointed at the worker's socket. */
	int from_supervisor;
};

struct msg_ctl_reply {
	int ok;
	/* Room for a manifest's path, line, field and problem. */
	char error[1024];
	char *body; /* owned: JSON, may be NULL */
	/* A supervisor's answer: ollamaxctl takes no other. */
	int from_supervisor;
};

/* Whether the backend answers, as the latest of the broker's calls to it
 * found: unknown until one of them has ended. */
enum msg_backend { BACKEND_UNKNOWN, BACKEND_REACHABLE, BACKEND_UNREACHABLE };

struct msg_report {
	int role; /* enum msg_role */
	int index;
	int64_t pid;
	int64_t agents;         /* worker: agent tasks alive */
	int64_t agents_failing; /* worker: agents whose last run failed */
	int64_t busy;           /* broker: requests in flight to the backend */
	int64_t queued;         /* broker: requests waiting for a slot */
	int64_t served;
	int64_t failed;
	int64_t bad_frames;
	/* broker: the models loaded in the backend, and those of them loaded
	 * outside ollamax (by another client, or with another context) */
	int nresident, noutside;
	char resident[MSG_RESIDENT_MAX][CONFIG_MODEL_MAX];
	char outside[MSG_RESIDENT_MAX][CONFIG_MODEL_MAX];
	/* broker: its plan, model by model */
	int64_t loads, unloads;
	char next_switch[CONFIG_MODEL_MAX]; /* "" when none is under way */
	/* The rule that decided it: "idle", "turn", "aging" or "batching";
	 * "" with next_switch. */
	char next_switch_why[16];
	double offered_load; /* slot time asked for lately, per slot */
	int overloaded;      /* max_wait bounds given up for throughput */
	int nmodels;
	struct msg_model_report {
		char name[CONFIG_MODEL_MAX];
		char state[16];
		int64_t need_mb;
		int64_t in_flight;
		int64_t waiting;
		int64_t oldest_wait_ms;
		int64_t loads;
		int pin;
	} models[MSG_MODELS_MAX];
	/* broker: whether the backend answers (enum msg_backend); while it
	 * does not, since when (msg_clock_ms) and why */
	int backend;
	int64_t backend_away_since;
	char backend_error[MSG_BACKEND_ERROR_MAX];
};

/*
 * A child's part of the config. The broker gets [broker], [backend], the
 * tiers and the models; a worker gets the state dir and stack size, and
 * fetches its agents in pages.
 */
struct msg_setup {
	int role;           /* enum msg_role */
	struct config conf; /* the part for role; config_free it */
	uint32_t pages;     /* worker: pages of agents to fetch */
};

struct msg_fetch {
	int index; /* the worker asking, named as in its hello */
	int64_t pid;
	uint32_t page;
};

/* Agents for a worker: a page of its setup, or one spawn. */
struct msg_agents {
	int replace; /* an agent of the same name is stopped first */
	struct manifest *agents; /* owned */
	size_t count;
	int64_t until_ms;
};

struct msg_deliver {
	char to[MSG_NAME_MAX];
	char from[MSG_NAME_MAX]; /* the sending agent, or "ollamaxctl" */
	char *input;             /* owned */
	int wait; /* answer once the run it causes is over, with its result */
	int64_t until_ms;
};

/* The inference `id` of worker `worker`: its agent was stopped, or gave up
 * waiting for it. */
struct msg_cancel {
	uint64_t id;
	int worker;
	uint64_t started; /* as the request's */
	int given_up;
};

/* Encoders write a whole frame into w (msg_writer_free it afterwards). */
void msg_hello_encode(struct msg_writer *w, const struct msg_hello *m);
void msg_infer_encode(struct msg_writer *w, const struct msg_infer *m);
void msg_infer_done_encode(
    struct msg_writer *w, const struct msg_infer_done *m);
void msg_ctl_encode(struct msg_writer *w, const struct msg_ctl *m);
void msg_ctl_reply_encode(struct msg_writer *w, const struct msg_ctl_reply *m);
/*
 * A reply whose body would not leave room in a frame for the rest becomes
 * a failure that says the body's size: sent, it would cut the connection,
 * and every other call under way on it. Returns 1 if so; the body is
 * still the caller's to free.
 */
int msg_ctl_reply_fit(struct msg_ctl_reply *m);
void msg_report_encode(struct msg_writer *w, const struct msg_report *m);
void msg_ready_encode(struct msg_writer *w, const struct msg_ready *m);
void msg_setup_encode(struct msg_writer *w, const struct msg_setup *m);
void msg_fetch_encode(struct msg_writer *w, const struct msg_fetch *m);
/* Encodes agents[0..count) but stops before the page passes
 * MSG_PAGE_BYTES (at least one agent); returns how many it took. */
size_t msg_agents_encode(struct msg_writer *w, int replace, int64_t until_ms,
    const struct manifest *const *agents, size_t count);
void msg_deliver_encode(struct msg_writer *w, const struct msg_deliver *m);
void msg_cancel_encode(struct msg_writer *w, const struct msg_cancel *m);

/*
 * Decoders read an opened frame of their type into m; on error m holds
 * nothing that needs freeing. The *_free functions release owned strings.
 */
enum msg_error msg_hello_decode(struct msg_reader *r, struct msg_hello *m);
enum msg_error msg_infer_decode(struct msg_reader *r, struct msg_infer *m);
enum msg_error msg_infer_done_decode(
    struct msg_reader *r, struct msg_infer_done *m);
enum msg_error msg_ctl_decode(struct msg_reader *r, struct msg_ctl *m);
enum msg_error msg_ctl_reply_decode(
    struct msg_reader *r, struct msg_ctl_reply *m);
enum msg_error msg_report_decode(struct msg_reader *r, struct msg_report *m);
enum msg_error msg_ready_decode(struct msg_reader *r, struct msg_ready *m);
void msg_ready_free(struct msg_ready *m);
enum msg_error msg_setup_decode(struct msg_reader *r, struct msg_setup *m);
enum msg_error msg_fetch_decode(struct msg_reader *r, struct msg_fetch *m);
enum msg_error msg_agents_decode(struct msg_reader *r, struct msg_agents *m);
enum msg_error msg_deliver_decode(struct msg_reader *r, struct msg_deliver *m);
enum msg_error msg_cancel_decode(struct msg_reader *r, struct msg_cancel *m);
void msg_infer_free(struct msg_infer *m);
void msg_infer_done_free(struct msg_infer_done *m);
void msg_ctl_free(struct msg_ctl *m);
void msg_ctl_reply_free(struct msg_ctl_reply *m);
void msg_setup_free(struct msg_setup *m);
void msg_agents_free(struct msg_agents *m);
void msg_deliver_free(struct msg_deliver *m);

#endif
