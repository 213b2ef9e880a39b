/*
 * emu.h: ollamax-emu, an Ollama look-alike with Ollama's scheduler.
 *
 * The pure parts (catalog, keep-alive parsing, scheduler policy, work and
 * text model, request parsing) take time as an argument and do no I/O, so
 * the tests drive them without sockets or clocks. server.c is the only file
 * that touches the network and the clock.
 */
#ifndef OLLAMAX_EMU_H
#define OLLAMAX_EMU_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <jansson.h>

#include "duration.h"
#include "modelname.h"

/* A keep-alive that never expires, as Ollama stores negative durations. */
#define EMU_FOREVER DURATION_FOREVER

/* The defaults ollamax-emu starts from, as on the reference box: what a
 * second request batched on a runner adds to its speed, how long a runner
 * takes to stop, and Ollama's own keep-alive and queue. */
#define EMU_SHARE 0.7
#define EMU_VRAM_MB 4096
#define EMU_UNLOAD_MS 250
#define EMU_KEEP_ALIVE_S (5 * 60)
#define EMU_MAX_QUEUE 512
/* The simulated clock counts nanoseconds in 64 bits, 292 years: at this
 * speed they last ten days of real time. */
#define EMU_SPEED_MAX 10000
/* The slowest: a second of the simulated clock in some 17 minutes. */
#define EMU_SPEED_MIN 1e-3

/* ------------------------------------------------------------------ */
/* catalog.c: the models the emulator serves                          */
/* ------------------------------------------------------------------ */

enum emu_capability {
	EMU_CAP_COMPLETION = 1 << 0,
	EMU_CAP_EMBEDDING = 1 << 1,
	EMU_CAP_VISION = 1 << 2,
	EMU_CAP_TOOLS = 1 << 3,
	EMU_CAP_THINKING = 1 << 4,
	EMU_CAP_INSERT = 1 << 5,
};

struct emu_model {
	char name[96];               /* "tinyllama:latest" */
	char family[32];             /* "llama" */
	char parameter_size[16];     /* "1.1B" */
	char quantization[16];       /* "Q4_0" */
	uint64_t size_bytes;         /* weights, as /api/tags reports */
	uint64_t kv_bytes_per_token; /* KV cache per token of context */
	int context_length;   /* trained context; num_ctx is capped to it */
	int embedding_length; /* width of an embedding vector */
	double load_mb_per_s; /* weights read into VRAM */
	double prompt_tokens_per_s; /* prompt evaluation, one request alone */
	double gen_tokens_per_s;    /* generation, one request alone */
	int typical_output_tokens;  /* mean answer length when unbounded */
	unsigned capabilities;      /* enum emu_capability bits */
	char digest[65];            /* derived from the name: stable, fake */
	/* Gone after DELETE /api/delete: unknown to requests and tags, while
	 * a runner that has it loaded keeps it, as Ollama's does. */
	int removed;
};

struct emu_catalog {
	struct emu_model *models;
	size_t count;
	size_t cap;
};

/*
 * Reads a catalog file. Every bad line is reported through errbuf as
 * "file:line: message" lines (all of them, not just the first); returns 0
 * when the file is valid, -1 otherwise. The caller frees with
 * emu_catalog_free() in both cases.
 */
int emu_catalog_load(
    struct emu_catalog *cat, const char *path, char *errbuf, size_t errlen);
void emu_catalog_free(struct emu_catalog *cat);
/*
 * Finds a model by the name a client sends: "tinyllama" means
 * "tinyllama:latest", as in Ollama. Returns NULL when unknown or removed.
 */
const struct emu_model *emu_catalog_find(
    const struct emu_catalog *cat, const char *name);
/* DELETE /api/delete: the model is unknown from now on; runners that have
 * it loaded keep their pointer to it. Returns -1 when already unknown. */
int emu_catalog_remove(struct emu_catalog *cat, const char *name);

/* What Ollama makes of the model a request names, before it looks for it. */
enum emu_ref_kind {
	EMU_REF_LOCAL,    /* a name to look for: full */
	EMU_REF_BLANK,    /* empty or only blanks */
	EMU_REF_INVALID,  /* no name Ollama takes */
	EMU_REF_CONFLICT, /* both ":local" and ":cloud" */
	EMU_REF_CLOUD,    /* ":cloud" or ":TAG-cloud": ollama.com's model */
};

struct emu_ref {
	enum emu_ref_kind kind;
	/* EMU_REF_LOCAL and EMU_REF_CLOUD: the name, case kept, and in full
	 * as host/namespace/model:tag, which emu_catalog_find takes. */
	struct model_name name;
	char full[MODEL_NAME_FULL_MAX];
	/* The name without the blanks around it, as a conflict quotes it. */
	const char *trimmed;
	size_t trimmed_len;
};

/*
 * Reads the model name raw (len bytes, any of them) as Ollama 0.33's
 * internal/modelref.ParseRef and model.ParseName do: blanks (Go's
 * unicode.IsSpace) trimmed at both ends, a ":local" taken off, a ":cloud"
 * or "-cloud" read as a cloud model, then the name checked.
 * /api/delete (as_stub) instead reads a cloud model as its local stub,
 * NAME:cloud or NAME:TAG-cloud.
 */
void emu_model_ref(
    const char *raw, size_t len, int as_stub, struct emu_ref *ref);

/* ------------------------------------------------------------------ */
/* api.c: keep_alive in all its forms                                 */
/* ------------------------------------------------------------------ */

/*
 * Reads a JSON keep_alive: number of seconds, Go duration string, null.
 * Sets *present to 0 for null or absent. Returns 0, or -1 with a message.
 */
/* Prompt token counts saturate here (16 Mi). */
#define EMU_PROMPT_TOKENS_MAX (1 << 24)
/* The texts one /api/embed call takes: its reply is built at once, and a
 * larger one would hold every other client up. */
#define EMU_EMBED_INPUTS_MAX 2048
/* And the numbers in its reply, all texts together: some 40 MB of JSON. */
#define EMU_EMBED_NUMBERS_MAX (2 * 1024 * 1024)
/* A keep-alive past a century is forever: its expiry would overflow the
 * clock, and nothing waits that long. */
#define EMU_KEEP_ALIVE_MAX_NS (100LL * 365 * 24 * 3600 * 1000000000LL)
int64_t emu_keep_alive_clamp(int64_t ns);
int emu_keep_alive_from_json(
    const json_t *v, int *present, int64_t *out_ns, char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* sched.c: Ollama's scheduler as a pure state machine                */
/* ------------------------------------------------------------------ */

struct esched_runner;

/*
 * The options besides num_ctx a runner is started with. Ollama's
 * needsReload compares them all: a request that changes any unloads the
 * model and loads it again. A num_gpu below 0 (the default) takes
 * whatever the runner has.
 */
struct esched_runner_opts {
	int num_batch, num_gpu, main_gpu, num_thread;
	int use_mmap; /* -1: not set */
};

enum esched_req_state {
	ESR_NEW,
	ESR_PENDING,  /* in the pending FIFO */
	ESR_CURRENT,  /* at the head, the pending loop is working on it */
	ESR_ATTACHED, /* holds a reference on a runner, waits for a slot */
	ESR_RUNNING,  /* holds a slot */
	ESR_DONE,
};

struct esched_req {
	uint64_t id;
	const struct emu_model *model;
	int num_ctx; /* as requested, after Ollama's defaults */
	struct esched_runner_opts opts;
	int has_keep_alive;
	int64_t keep_alive_ns;
	int needs_slot; /* 0: a load request, answered once attached */
	int placeholder; /* the queue place of a cancelled request */
	int in_waiters; /* on its runner's waiters list */
	enum esched_req_state state;
	struct esched_runner *runner;
	int64_t arrived_ns;
	int64_t ready_ns; /* attached to a loaded runner */
	int64_t started_ns;
	int waited_for_load; /* attached while its runner was loading */
	void *owner;         /* the I/O layer's object */
	TAILQ_ENTRY(esched_req) link;
};
TAILQ_HEAD(esched_req_list, esched_req);

enum esched_runner_state {
	RUNNER_LOADING,
	RUNNER_READY,
	RUNNER_UNLOADING,
};

struct esched_runner {
	const struct emu_model *model;
	enum esched_runner_state state;
	int num_ctx;         /* effective, after capping to the model */
	struct esched_runner_opts opts;
	int parallel;        /* slots of this runner */
	uint64_t size_bytes; /* weights + KV cache */
	uint64_t vram_bytes; /* the part on the GPU */
	int refcount;        /* attached requests, waiting or running */
	int active;          /* requests holding a slot */
	struct esched_req_list waiters;
	struct esched_req_list running;
	int64_t session_ns; /* keep-alive; EMU_FOREVER never expires */
	int timer_armed;
	int64_t expires_at_ns;   /* when the idle timer fires, or 0 */
	int64_t shown_expiry_ns; /* /api/ps expires_at, 0 = never set */
	int64_t load_started_ns;
	int64_t load_ns;     /* nominal time this load takes */
	int64_t ready_at_ns; /* when its load was over */
	uint64_t generation; /* distinguishes reloads of one model */
	void *owner;
	TAILQ_ENTRY(esched_runner) link;
};
TAILQ_HEAD(esched_runner_list, esched_runner);

enum esched_action_kind {
	ESA_LOAD,   /* start loading runner; answer with esched_load_done */
	ESA_UNLOAD, /* start unloading runner; esched_unload_done */
	ESA_READY,  /* req is attached to a loaded runner */
	ESA_START,  /* req holds a slot: run it, then esched_finish */
	ESA_REJECT, /* req refused: status and message */
};

struct esched_action {
	enum esched_action_kind kind;
	struct esched_runner *runner;
	struct esched_req *req;
	int status;
	const char *message;
};

struct esched_config {
	int parallel;                  /* OLLAMA_NUM_PARALLEL */
	int max_loaded;                /* OLLAMA_MAX_LOADED_MODELS, 0 = 3 */
	int max_queue;                 /* OLLAMA_MAX_QUEUE */
	uint64_t vram_bytes;           /* the GPU's memory */
	int64_t default_keep_alive_ns; /* OLLAMA_KEEP_ALIVE */
	double load_mb_per_s_override; /* 0 = the catalog's rate */
};

enum esched_block {
	ESB_NONE,
	ESB_LOADING, /* one load at a time */
	ESB_UNLOAD,  /* an eviction must finish first */
};

struct esched_stats {
	uint64_t loads;
	uint64_t unloads;
	uint64_t evictions; /* unloads the scheduler forced to make room */
	uint64_t reloads;   /* unloads forced by a change of runner options */
	uint64_t aborted_loads; /* their client hung up during the load */
	uint64_t rejected;
	size_t peak_pending;
};

struct esched {
	struct esched_config cfg;
	struct esched_runner_list runners;
	struct esched_req_list pending;
	size_t pending_len;
	struct esched_req *current;
	enum esched_block block;
	struct esched_runner *blocking_runner;
	struct esched_action *actions;
	size_t nactions, actions_cap, actions_head;
	uint64_t next_generation;
	struct esched_stats stats;
};

void esched_init(struct esched *s, const struct esched_config *cfg);
/* Frees runners, the action queue and the queue places of cancelled
 * requests; requests belong to the caller. */
void esched_destroy(struct esched *s);

/* Events. Each may queue actions; drain them with esched_next_action. */
void esched_submit(struct esched *s, struct esched_req *q, int64_t now);
void esched_load_done(struct esched *s, struct esched_runner *r, int64_t now);
void esched_unload_done(struct esched *s, struct esched_runner *r, int64_t now);
/* The request's reply is complete, or its client went away. */
void esched_finish(struct esched *s, struct esched_req *q, int64_t now);
/* An empty prompt with keep_alive 0: unload once idle. */
void esched_expire_model(
    struct esched *s, const struct emu_model *m, int64_t now);
/* Fires idle timers that are due. */
void esched_tick(struct esched *s, int64_t now);
/* The earliest idle timer, or -1 when none is armed. */
int64_t esched_next_deadline(const struct esched *s);

/* Pops the next action; returns 0 when there is none. */
int esched_next_action(struct esched *s, struct esched_action *out);

/* Memory a runner of m needs for num_ctx and this many slots. */
uint64_t esched_runner_bytes(
    const struct emu_model *m, int num_ctx, int parallel);
/* Ollama's num_ctx for a request that sets none, by the GPU's memory
 * (OLLAMA_CONTEXT_LENGTH apart). */
int esched_default_ctx(uint64_t vram_bytes);
/* num_ctx after Ollama's floor and the model's trained context. */
int esched_effective_ctx(const struct emu_model *m, int num_ctx);
struct esched_runner *esched_find_runner(
    const struct esched *s, const struct emu_model *m);
size_t esched_loaded_count(const struct esched *s);
uint64_t esched_vram_used(const struct esched *s);

/* ------------------------------------------------------------------ */
/* work.c: how long inference takes, and what it says                 */
/* ------------------------------------------------------------------ */

/*
 * Requests that share a runner share its throughput: with k of them
 * running, each proceeds at (1 + share * (k - 1)) / k of its solo speed.
 */
double work_rate(int k, int on_gpu, double share, double offload_slowdown);
/* A model partly in system memory runs slower: 1 when it fits. */
double work_offload_slowdown(uint64_t size_bytes, uint64_t vram_bytes);

struct work {
	double prompt_work; /* seconds of solo time for the prompt */
	double token_work;  /* seconds of solo time per output token */
	int tokens_total;
	double done; /* seconds of solo time completed */
	int64_t last_ns;
	int64_t start_ns;
	int64_t prompt_done_ns; /* -1 until the prompt is evaluated */
	int64_t finish_ns;      /* -1 until the last token is */
};

void work_init(struct work *w, const struct emu_model *m, int prompt_tokens,
    int output_tokens, int64_t now);
/* Moves progress to now at the given rate (rate held since last_ns). */
void work_advance(struct work *w, int64_t now, double rate);
/* Output tokens generated so far. */
int work_tokens_ready(const struct work *w);
/* Simulated time at which `tokens` output tokens will be ready. */
int64_t work_time_of_tokens(const struct work *w, int tokens, double rate);

/* When the last token was ready: timers fire late, the answer does not. */
int64_t work_finish_time(const struct work *w);

/* Estimated tokens of a text, as a tokenizer would count them. */
int text_token_count(const char *s, size_t len);
uint64_t text_hash(uint64_t h, const void *p, size_t len);
/* Length of the answer the model gives when num_predict does not stop it. */
int text_answer_tokens(const struct emu_model *m, uint64_t h);
/* Appends output token i (0-based) of the answer seeded by h to buf. */
size_t text_token(uint64_t h, int i, char *buf, size_t len);
/* Fills vec with a deterministic L2-normalised embedding of the input. */
void text_embedding(uint64_t h, float *vec, int dim);

/* ------------------------------------------------------------------ */
/* api.c: Ollama's request bodies, checked                            */
/* ------------------------------------------------------------------ */

enum api_kind {
	API_GENERATE,
	API_CHAT,
	API_EMBED,
	API_EMBEDDINGS,
	API_SHOW,
	API_DELETE,
};

struct api_request {
	enum api_kind kind;
	json_t *root; /* owns every string below */
	const char *model;
	size_t model_len;   /* a \u0000 in it is kept */
	const char *prompt; /* generate; embeddings */
	const char *system;
	int stream;
	int raw;
	int has_keep_alive;
	int64_t keep_alive_ns;
	/* Given, even 0 or below, it stands over the server's default
	 * (Ollama's FromMap), and the scheduler makes it 4 at least. */
	int has_num_ctx, num_ctx;
	struct esched_runner_opts runner_opts; /* Ollama's defaults if unset */
	int num_predict; /* -1 = until the answer ends */
	int64_t seed;
	int prompt_tokens;  /* counted over everything the model reads */
	uint64_t text_seed; /* seeds the answer: model, prompt, seed */
	int empty;          /* empty prompt / no messages: load/unload */
	size_t ninputs;     /* embed */
	/* Capabilities asked beyond completion: tools given (chat), a
	 * suffix to fill in before (generate). */
	int wants_tools, wants_insert;
	const char *options_warning; /* an unknown option, logged */
};

struct api_error {
	int status;
	char message[256];
};

/*
 * Parses and checks a request body for kind. Returns 0 and fills req (free
 * with api_request_free), or -1 with Ollama's status and message in err.
 * Never reads past len; body need not be NUL-terminated.
 */
int api_request_parse(enum api_kind kind, const char *body, size_t len,
    struct api_request *req, struct api_error *err);
void api_request_free(struct api_request *req);
/* The input strings of an embed request, for hashing. */
const char *api_embed_input(const struct api_request *req, size_t i);

/* s (len bytes, any of them) as Go's %q writes it, in a string to free. */
char *api_go_quote(const char *s, size_t len);
/* Formats ns since the epoch as RFC3339Nano UTC, as Go does. */
void api_format_time(int64_t epoch_ns, char *buf, size_t len);
/* The time plus_ns after epoch_ns, which need not fit in nanoseconds
 * since 1970: a keep-alive for ever ends some 292 years on, as Go's. */
void api_format_time_after(
    int64_t epoch_ns, int64_t plus_ns, char *buf, size_t len);

#endif
