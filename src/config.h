/*
 * config.h: ollamax.conf and the agent manifests, read and judged whole.
 *
 * Loading never stops at the first problem: every bad value is reported as
 * "file:line: message" in a diag, and the rest of the file is still read,
 * as `ollamax-supervisor check` shows. Nothing here does I/O but reading
 * the files it is given; nothing starts.
 */
#ifndef OLLAMAX_CONFIG_H
#define OLLAMAX_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "inifile.h"

#define CONFIG_NAME_MAX 48
#define CONFIG_MODEL_MAX 96

/* Bounds of values: the config reader and the frame decoders hold to them. */
#define CONFIG_STACK_MIN (16 * 1024)
#define CONFIG_STACK_MAX (64 * 1024 * 1024)
#define CONFIG_PARALLEL_MAX 64
/* [tier.*] and [model.*] sections: the setup frame carries at most these. */
#define CONFIG_SECTIONS_MAX 1024
#define CONFIG_VRAM_MIN_MB 256
#define CONFIG_MB_MAX (1 << 24)
#define CONFIG_NUM_CTX_MIN 256
#define CONFIG_NUM_CTX_MAX (1 << 20)
#define CONFIG_TIMEOUT_MIN_MS 100
#define CONFIG_TIMEOUT_MAX_MS 3600000
/* A worker waits 2 h 30 min in all for an answer (worker.c): a longer
 * answer_timeout would never be reached. */
#define CONFIG_ANSWER_TIMEOUT_MAX_MS (2 * CONFIG_TIMEOUT_MAX_MS)
#define CONFIG_LOADED_MAX 16
#define CONFIG_WAIT_MIN_MS 1000
#define CONFIG_WAIT_MAX_MS (7 * 24 * 3600 * 1000LL)
/* Children report every second: a watchdog must allow a few missed. */
#define CONFIG_WATCHDOG_MIN_MS 5000
/* The broker renews a lease once half of it has passed idle: the other
 * half must cover the renewal's way to the backend. */
#define CONFIG_LEASE_MIN_MS 2000
#define CONFIG_EVERY_MIN_MS 1000
#define CONFIG_EVERY_MAX_MS (7 * 24 * 3600 * 1000LL)
#define CONFIG_JITTER_MAX 50
#define CONFIG_PREDICT_MAX (1 << 20)
#define CONFIG_TEMPERATURE_MAX 2.0

struct tier_conf {
	char name[CONFIG_NAME_MAX + 1];
	char model[CONFIG_MODEL_MAX];
	char fallback[CONFIG_NAME_MAX + 1]; /* "" = none */
	int line, fallback_line; /* of its header, of its fallback key */
};

struct model_conf {
	char name[CONFIG_MODEL_MAX];
	long size_mb; /* weights; 0 = unknown until the backend reports it */
	long kv_mb;   /* KV cache at num_ctx x parallel; 0 = unknown */
	long num_ctx; /* sent with every request for this model */
	int preload;  /* loaded at start */
	int pin;      /* loaded at start and never evicted */
	int line;
};

struct config {
	char path[PATH_MAX];
	char dir[PATH_MAX]; /* relative paths resolve from here */

	/* [supervisor] */
	long workers;               /* 0 = number of CPUs */
	char runtime_dir[PATH_MAX]; /* "" = $XDG_RUNTIME_DIR/ollamax etc. */
	char state_dir[PATH_MAX];
	int runtime_dir_line, state_dir_line; /* where given; 0: not given */
	char agents_dir[PATH_MAX];
	size_t stack_size;
	int64_t watchdog_ms; /* a child silent this long is hung; 0 = never */
	int64_t start_timeout_ms; /* start --daemon gives up; 0 = never */

	/* [broker] */
	long parallel;
	long vram_mb;
	long max_loaded;
	int64_t max_wait_ms[3]; /* by enum msg_priority: low, normal, high */
	int64_t min_residency_ms;
	int64_t idle_unload_ms; /* 0 = never */
	/* The keep-alive the broker's calls give a model: how long it stays
	 * loaded after its last use once the broker is gone. */
	int64_t lease_ms;

	/* [backend] */
	char backend_url[256];
	int64_t connect_timeout_ms;
	int64_t first_byte_timeout_ms;
	int64_t stall_timeout_ms;
	int64_t answer_timeout_ms;

	struct tier_conf *tiers;
	size_t ntiers;
	struct model_conf *models;
	size_t nmodels;
};

/*
 * Reads path into c (defaults first, then the file). Every problem is
 * added to d; returns the number of problems (0 = valid). Free c with
 * config_free whatever the result.
 */
int config_load(struct config *c, const char *path, struct diag *d);
void config_free(struct config *c);
const struct tier_conf *config_tier(const struct config *c, const char *name);
/*
 * 0 if name is a tier of c; else -1, with why, as a manifest's tier is
 * told after "tier: ": the character at fault if no name could have it,
 * and the tier near it that was perhaps meant.
 */
int config_tier_fault(
    const struct config *c, const char *name, char *why, size_t len);
const struct model_conf *config_model(const struct config *c, const char *name);
/* Whether a tier names the model: the settings of one no tier names have
 * no effect. */
int config_model_used(const struct config *c, const char *name);

struct policy_config;
struct policy_model_conf;
/* The broker's policy as the config sets it; shared by the broker and by
 * the replay of it, so that both plan alike. */
void config_policy(const struct config *c, struct policy_config *pc);
/* A model as the policy plans it: its hint (weights and KV cache), or the
 * whole GPU, so that it is planned alone until /api/ps tells. */
void config_policy_model(
    const struct config *c, const char *name, struct policy_model_conf *pm);

enum trigger_kind { TRIGGER_EVERY, TRIGGER_INBOX, TRIGGER_DEMAND };
enum output_kind { OUTPUT_LOG, OUTPUT_FILE, OUTPUT_AGENT };

struct manifest {
	char *path; /* owned */
	char name[CONFIG_NAME_MAX + 1];
	char role[200];
	char tier[CONFIG_NAME_MAX + 1];
	int priority; /* enum msg_priority */
	enum trigger_kind trigger;
	int64_t every_ms;
	int jitter_pct;
	enum output_kind output;
	char output_target[256]; /* a file in the state dir, or an agent */
	char *system;
	char *prompt;
	long num_predict;   /* -1 = until the answer ends */
	double temperature; /* < 0 = the model's default */
	/* Where these were written, for problems found after the parse. */
	int line_of_name, line_of_tier, line_of_output, line_of_trigger,
	    line_of_prompt;
};

/*
 * Reads one manifest. Problems go to d with the file's lines; returns the
 * number of problems. Free with manifest_free whatever the result.
 */
int manifest_load(struct manifest *m, const char *path, struct diag *d);
void manifest_free(struct manifest *m);
/* Would the two run the same agent? (A reload restarts it if not.) */
int manifest_same(const struct manifest *a, const struct manifest *b);

struct fleet {
	struct manifest *agents;
	size_t count;
	int unread;      /* the directory could not be read: nothing is known */
	char **rejected; /* the paths of the manifests left out */
	size_t nrejected;
};

/*
 * The file a running agent was started from, or NULL: when two manifests
 * give its name, that file keeps it, whichever sorts first.
 */
typedef const char *fleet_runs_from_fn(const char *name, void *arg);

/*
 * Reads every *.conf in dir, in name order, and checks the fleet as a
 * whole against c: unique names, known tiers, outputs to existing inbox
 * agents, no loops. Bad manifests are reported and left out, and so is one
 * whose output names an agent left out; the good ones are kept. Of two
 * manifests of one name, the first is kept, unless runs_from (if not NULL)
 * says the other's agent runs. Returns the number of problems.
 */
int fleet_load(struct fleet *f, const char *dir, const struct config *c,
    fleet_runs_from_fn *runs_from, void *arg, struct diag *d);
void fleet_free(struct fleet *f);
const struct manifest *fleet_find(const struct fleet *f, const char *name);
/* Whether the manifest at path was read and left out for its errors. */
int fleet_rejected(const struct fleet *f, const char *path);

/* Worker processes to run: workers, or one per CPU when it is 0. */
long config_worker_count(const struct config *c);

/* The config named on the command line, else $OLLAMAX_CONF, else the
 * installed one. */
const char *config_default_path(const char *given);
/* runtime_dir, else $XDG_RUNTIME_DIR/ollamax, else /tmp/ollamax-$UID. */
void config_runtime_dir(const struct config *c, char *out, size_t len);
/*
 * The runtime dir a command to a running supervisor is for: the one of the
 * configuration -c gave (given), else $OLLAMAX_CONF's, which must then be
 * read without error, since one misread would aim at another fleet; the
 * default file, when there is none, leaves the default dir. Returns 0, or
 * -1 with the problems in d.
 */
int config_ctl_runtime_dir(
    const char *given, char *out, size_t len, struct diag *d);
#define CONFIG_WORKERS_MAX 256
/*
 * The longest runtime dir its sockets fit in: a socket's path, up to
 * "/worker-255.sock" (CONFIG_WORKERS_MAX), must fit the 108 bytes of
 * sun_path, with its NUL.
 */
#define CONFIG_RUNTIME_DIR_MAX (108 - sizeof("/worker-255.sock"))
/* 0 if the sockets fit in dir, else -1 with why ("DIR is N bytes long:
 * ..."). */
int config_runtime_dir_fits(const char *dir, char *why, size_t len);
/*
 * Adds to d a problem found of the runtime_dir or state_dir (key) as
 * resolved, why starting with the directory: at the line of the key, or,
 * none given, as the default's.
 */
void config_dir_problem(
    const struct config *c, const char *key, const char *why, struct diag *d);

/* Of the names weighed one by one, the nearest to the one given, if near
 * enough to be the one meant: two edits at most (a character put in, left
 * out, changed, or swapped with the next; case aside), and fewer than half
 * its length. Start from {0}. */
struct config_nearest {
	const char *name;
	int edits;
};
void config_nearest_weigh(
    struct config_nearest *near, const char *given, const char *name);
/* ": did you mean 'NAME'?" into out, or "" for no name. */
const char *config_did_you_mean(const char *name, char *out, size_t len);
/* A tier or agent name: lowercase letters, digits, '-' and '_'. */
int config_valid_name(const char *s);
/* Whether s is a valid name; when it is not, why, in words that name the
 * first character at fault (by its code point, past ASCII), and -1. */
int config_name_fault(const char *s, char *why, size_t len);

/* Resolves p against base unless absolute, into out. */
void config_resolve(const char *base, const char *p, char *out, size_t len);

#endif
