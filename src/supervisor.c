/*
 * supervisor.c: ollamax-supervisor, the parent of every ollamax process.
 *
 *   ollamax-supervisor [-c FILE] check     judge the config and every manifest
 *   ollamax-supervisor [-c FILE] start     run (foreground; --daemon detaches)
 *   ollamax-supervisor [-c FILE] stop      ask the running one to stop
 *
 * Exit codes: 0 ok, 1 the operation failed, 2 usage.
 */
#include "autoconf.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

static const char usage_text[] =
    "usage: ollamax-supervisor [-c FILE] check\n"
    "       ollamax-supervisor [-c FILE] start [--daemon]\n"
    "       ollamax-supervisor [-c FILE] stop\n";

/* The config named with -c, else $OLLAMAX_CONF, else the installed one. */
static const char *
config_path(const char *given)
{
	const char *env = getenv("OLLAMAX_CONF");

	if (given != NULL)
		return given;
	if (env != NULL && *env != '\0')
		return env;
	return SYSCONF_OLLAMAX "/ollamax.conf";
}

/*
 * Loads the config and the fleet it names; prints every problem. Returns
 * the number of problems.
 */
static int
load_all(const char *path, struct config *c, struct fleet *f, int verbose)
{
	struct diag d = {0};
	char agents[PATH_MAX];
	int bad;

	memset(f, 0, sizeof(*f));
	bad = config_load(c, path, &d);
	if (bad == 0 || c->ntiers > 0) {
		config_resolve(c->dir, c->agents_dir, agents, sizeof(agents));
		bad += fleet_load(f, agents, c, &d);
	}
	if (d.text != NULL)
		fputs(d.text, stderr);
	if (verbose && bad == 0)
		printf("%s: ok: %zu tiers, %zu models, %zu agents\n", path,
		    c->ntiers, c->nmodels, f->count);
	diag_free(&d);
	return bad;
}

static int
cmd_check(const char *path)
{
	struct config c;
	struct fleet f;
	int bad = load_all(path, &c, &f, 1);

	if (bad > 0)
		fprintf(stderr, "ollamax-supervisor: %d problem%s found\n", bad,
		    bad == 1 ? "" : "s");
	fleet_free(&f);
	config_free(&c);
	return bad > 0 ? 1 : 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"daemon", no_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *conf = NULL, *verb;
	int opt;

	log_init("ollamax-supervisor", 0);
	while ((opt = getopt_long(argc, argv, "c:dh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			conf = optarg;
			break;
		case 'd':
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("ollamax-supervisor %s\n", PACKAGE_VERSION);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(usage_text, stderr);
		return 2;
	}
	verb = argv[optind];
	if (strcmp(verb, "check") == 0)
		return cmd_check(config_path(conf));
	fprintf(stderr, "ollamax-supervisor: %s: not available yet\n", verb);
	return 1;
}
