/*
 * ollamax.conf and agent manifests: the shipped ones are valid, and every
 * bad value is reported with its file and line while the rest is still read.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "msg.h"
#include "policy.h"

static char dir[64];

static void
make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ollamax-config-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void
remove_dir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

static const char *
put_bytes(const char *name, const char *bytes, size_t len)
{
	static char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	cr_assert_not_null(fp);
	cr_assert_eq(fwrite(bytes, 1, len, fp), len);
	fclose(fp);
	return path;
}

static const char *
put(const char *name, const char *text)
{
	return put_bytes(name, text, strlen(text));
}

static void
expect(const struct diag *d, const char *file, int line, const char *msg)
{
	char want[512];

	if (line > 0)
		snprintf(
		    want, sizeof(want), "%s/%s:%d: %s", dir, file, line, msg);
	else
		snprintf(want, sizeof(want), "%s/%s: %s", dir, file, msg);
	cr_assert(d->text != NULL && strstr(d->text, want) != NULL,
	    "missing \"%s\" in:\n%s", want, d->text ? d->text : "(nothing)");
}

TestSuite(config, .init = make_dir, .fini = remove_dir);

Test(config, the_shipped_configuration_is_the_reference_box)
{
	struct config c;
	struct diag d = {0};

	cr_assert_eq(config_load(&c, TEST_SRCDIR "/conf/ollamax.conf", &d), 0,
	    "%s", d.text);
	cr_assert_eq(c.parallel, 2);
	cr_assert_eq(c.vram_mb, 4096);
	cr_assert_eq(c.stack_size, 64 * 1024);
	cr_assert_eq(c.watchdog_ms, 15000);
	cr_assert_eq(c.start_timeout_ms, 60000);
	cr_assert_eq(c.lease_ms, 5 * 60 * 1000);
	cr_assert_str_eq(config_tier(&c, "reasoning")->model, "deepseek-r1:8b");
	cr_assert_str_eq(config_tier(&c, "reasoning")->fallback, "coding");
	cr_assert_str_eq(config_tier(&c, "coding")->model, "qwen2.5-coder:7b");
	cr_assert_str_eq(config_tier(&c, "light")->model, "tinyllama");
	cr_assert_eq(config_model(&c, "deepseek-r1:8b")->num_ctx, 2048);
	cr_assert_str_eq(c.agents_dir, "../agents");
	config_free(&c);
	diag_free(&d);
}

Test(config, every_bad_value_is_reported_with_its_line_and_the_rest_is_read)
{
	struct config c;
	struct diag d = {0};
	const char *path = put("bad.conf",
	    "[supervisor]\n"
	    "workers = many\n"
	    "stack_size = 3\n"
	    "colour = blue\n"
	    "[broker]\n"
	    "parallel = 4\n"
	    "[backend]\n"
	    "url = ftp://x\n"
	    "stall_timeout = 300\n"
	    "[tier.fast]\n"
	    "model = tinyllama\n"
	    "fallback = nowhere\n"
	    "[tier.a]\n"
	    "model = m\n"
	    "fallback = b\n"
	    "[tier.b]\n"
	    "model = m\n"
	    "fallback = a\n"
	    "[tier.empty]\n"
	    "fallback = fast\n"
	    "[gpu]\n"
	    "x = 1\n");

	cr_assert_gt(config_load(&c, path, &d), 0);
	expect(&d, "bad.conf", 2, "workers: \"many\" is not a whole number");
	expect(&d, "bad.conf", 3, "stack_size: 3 is out of range");
	expect(&d, "bad.conf", 4, "[supervisor]: unknown key \"colour\"");
	expect(&d, "bad.conf", 8,
	    "url: \"ftp://x\" is not an http:// or https:// URL");
	expect(&d, "bad.conf", 9,
	    "stall_timeout: time: missing unit in duration \"300\"");
	/* At the fallback's line, not the section's. */
	expect(&d, "bad.conf", 12,
	    "[tier.fast]: fallback \"nowhere\" is not a tier");
	expect(&d, "bad.conf", 15, "[tier.a]: its fallback chain loops");
	expect(&d, "bad.conf", 19, "[tier.empty]: model is required");
	expect(&d, "bad.conf", 21, "[gpu]: unknown section");
	cr_assert_eq(c.parallel, 4, "good values are still read");
	config_free(&c);
	diag_free(&d);
}

static const char *good_agent = "# Reviews changes.\n"
                                "[agent]\n"
                                "name = reviewer\n"
                                "role = Reviews changes\n"
                                "tier = coding\n"
                                "priority = high\n"
                                "trigger = every 90s\n"
                                "jitter = 20%\n"
                                "output = agent:digest\n"
                                "system = You review code.\n"
                                "  Be brief.\n"
                                "prompt = Review change {{n}}.\n"
                                "[options]\n"
                                "num_predict = 250\n"
                                "temperature = 0.2\n";

static const char *inbox_agent = "[agent]\n"
                                 "name = digest\n"
                                 "tier = light\n"
                                 "trigger = inbox\n"
                                 "prompt = Summarise: {{input}}\n";

/* The watchdog of a config that must load without a problem. */
static int64_t
watchdog_read(const char *supervisor_section)
{
	struct config c;
	struct diag d = {0};
	char text[256];
	int64_t ms;

	snprintf(text, sizeof(text), "%s[tier.light]\nmodel = tinyllama\n",
	    supervisor_section);
	cr_assert_eq(
	    config_load(&c, put("dog-ok.conf", text), &d), 0, "%s", d.text);
	ms = c.watchdog_ms;
	config_free(&c);
	diag_free(&d);
	return ms;
}

/*
 * Loads into c a file of one key in its section, and a tier, and expects
 * msg told at the key's line. (A key given twice is a problem of its own,
 * even in another section of the same name.)
 */
static void
load_value(struct config *c, const char *section, const char *key,
    const char *value, const char *msg)
{
	struct diag d = {0};
	char text[512];

	snprintf(text, sizeof(text),
	    "[%s]\n%s = %s\n[tier.light]\nmodel = tinyllama\n", section, key,
	    value);
	cr_assert_gt(config_load(c, put("value.conf", text), &d), 0);
	expect(&d, "value.conf", 2, msg);
	diag_free(&d);
}

Test(config,
    a_watchdog_too_short_for_the_reports_is_refused_and_zero_turns_it_off)
{
	struct config c;

	load_value(&c, "supervisor", "watchdog", "4s",
	    "watchdog: 4s is too short: children report once a second, so "
	    "allow at least 5s (0 turns it off)");
	cr_assert_eq(c.watchdog_ms, 15000, "a bad value leaves the default");
	config_free(&c);
	load_value(&c, "supervisor", "watchdog", "soon",
	    "watchdog: time: invalid duration");
	config_free(&c);
	load_value(&c, "supervisor", "watchdog", "-3s",
	    "watchdog: -3s is out of range");
	config_free(&c);

	cr_assert_eq(watchdog_read("[supervisor]\nwatchdog = 0\n"), 0);
	cr_assert_eq(watchdog_read("[supervisor]\nwatchdog = 5s\n"), 5000);
}

/* The lease of a config that must load without a problem. */
static int64_t
lease_read(const char *broker_section)
{
	struct config c;
	struct diag d = {0};
	char text[256];
	int64_t ms;

	snprintf(text, sizeof(text), "%s[tier.light]\nmodel = tinyllama\n",
	    broker_section);
	cr_assert_eq(
	    config_load(&c, put("lease-ok.conf", text), &d), 0, "%s", d.text);
	ms = c.lease_ms;
	config_free(&c);
	diag_free(&d);
	return ms;
}

Test(config, a_lease_too_short_to_renew_in_time_is_refused)
{
	struct config c;

	load_value(&c, "broker", "lease", "1999ms",
	    "lease: 1999ms is too short: the broker renews it once half of "
	    "it has passed idle, and the other half must cover the "
	    "renewal's way to the backend, so allow at least 2s");
	cr_assert_eq(c.lease_ms, 300000, "a bad value leaves the default");
	config_free(&c);
	/* Not Ollama's 0 (unload at once), nor its -1 (for good): a lease
	 * ends, and not at once. */
	load_value(&c, "broker", "lease", "0", "lease: 0 is too short");
	config_free(&c);
	load_value(&c, "broker", "lease", "-1m", "lease: -1m is out of range");
	config_free(&c);
	load_value(
	    &c, "broker", "lease", "169h", "lease: 169h is out of range");
	config_free(&c);
	load_value(&c, "broker", "lease", "300",
	    "lease: time: missing unit in duration");
	config_free(&c);

	cr_assert_eq(lease_read(""), 300000, "Ollama's default keep-alive");
	cr_assert_eq(lease_read("[broker]\nlease = 2s\n"), 2000);
	cr_assert_eq(lease_read("[broker]\nlease = 2.5s\n"), 2500);
	cr_assert_eq(lease_read("[broker]\nlease = 168h\n"), 604800000);
}

Test(config, a_start_timeout_is_a_duration_and_zero_waits_for_ever)
{
	struct config c;
	struct diag d = {0};
	const char *path;

	load_value(&c, "supervisor", "start_timeout", "soon",
	    "start_timeout: time: invalid duration");
	config_free(&c);
	load_value(&c, "supervisor", "start_timeout", "-1s",
	    "start_timeout: -1s is out of range");
	cr_assert_eq(
	    c.start_timeout_ms, 60000, "a bad value leaves the default");
	config_free(&c);

	path = put("start-ok.conf",
	    "[supervisor]\nstart_timeout = 0\n"
	    "[tier.light]\nmodel = tinyllama\n");
	cr_assert_eq(config_load(&c, path, &d), 0, "%s", d.text);
	cr_assert_eq(c.start_timeout_ms, 0);
	config_free(&c);
	diag_free(&d);
}

Test(config, an_answer_timeout_runs_from_a_second_to_two_hours)
{
	struct config c;
	struct diag d = {0};
	const char *path;

	load_value(&c, "backend", "answer_timeout", "500ms",
	    "answer_timeout: 500ms is out of range");
	config_free(&c);
	load_value(&c, "backend", "answer_timeout", "121m",
	    "answer_timeout: 121m is out of range [1s, 2h]");
	cr_assert_eq(c.answer_timeout_ms, 30 * 60 * 1000,
	    "a bad value leaves the default");
	config_free(&c);

	path = put("answer-ok.conf",
	    "[backend]\nanswer_timeout = 2h\n"
	    "[tier.light]\nmodel = tinyllama\n");
	cr_assert_eq(config_load(&c, path, &d), 0, "%s", d.text);
	cr_assert_eq(c.answer_timeout_ms, 2 * 3600 * 1000);
	config_free(&c);
	diag_free(&d);
}

Test(config, a_manifest_reads_every_field_and_joins_continued_lines)
{
	struct manifest m;
	struct diag d = {0};

	cr_assert_eq(
	    manifest_load(&m, put("a.conf", good_agent), &d), 0, "%s", d.text);
	cr_assert_str_eq(m.name, "reviewer");
	cr_assert_str_eq(m.tier, "coding");
	cr_assert_eq(m.priority, PRIO_HIGH);
	cr_assert_eq(m.trigger, TRIGGER_EVERY);
	cr_assert_eq(m.every_ms, 90000);
	cr_assert_eq(m.jitter_pct, 20);
	cr_assert_eq(m.output, OUTPUT_AGENT);
	cr_assert_str_eq(m.output_target, "digest");
	cr_assert_str_eq(m.system, "You review code.\nBe brief.");
	cr_assert_eq(m.num_predict, 250);
	cr_assert_float_eq(m.temperature, 0.2, 1e-12);
	manifest_free(&m);
	diag_free(&d);
}

Test(config, a_bad_manifest_reports_each_problem_with_its_line)
{
	struct manifest m;
	struct diag d = {0};
	const char *path = put("bad.conf",
	    "[agent]\n"
	    "name = Bad Name\n"
	    "priority = urgent\n"
	    "trigger = every 5\n"
	    "jitter = 90%\n"
	    "output = file:../../etc/passwd\n"
	    "mood = happy\n"
	    "prompt = Hello {{nmae}}\n"
	    "[options]\n"
	    "temperature = hot\n"
	    "top_k = 3\n");

	cr_assert_gt(manifest_load(&m, path, &d), 0);
	expect(&d, "bad.conf", 2, "name: \"Bad Name\": 'B', its character 1");
	expect(&d, "bad.conf", 3,
	    "priority: \"urgent\" is not high, normal or low");
	expect(&d, "bad.conf", 4,
	    "trigger = every: time: missing unit in duration \"5\"");
	expect(&d, "bad.conf", 5, "jitter: \"90%\" is not a percentage");
	expect(
	    &d, "bad.conf", 6, "output: \"file:../../etc/passwd\" is not log");
	expect(&d, "bad.conf", 7, "[agent]: unknown key \"mood\"");
	expect(&d, "bad.conf", 8, "prompt: unknown variable {{nmae}}");
	expect(&d, "bad.conf", 10, "temperature: \"hot\" is not a number");
	expect(&d, "bad.conf", 11, "[options]: unknown key \"top_k\"");
	expect(&d, "bad.conf", 0, "[agent] tier is required");
	manifest_free(&m);
	diag_free(&d);
}

/* A config of one tier whose backend is url: its problems, as
 * config_load counts them. */
static int
load_with_url(struct config *c, struct diag *d, const char *url)
{
	char text[256];

	snprintf(text, sizeof(text),
	    "[backend]\nurl = %s\n[tier.light]\nmodel = tinyllama\n", url);
	return config_load(c, put("url.conf", text), d);
}

Test(config, a_backend_url_names_a_host_and_a_port_that_can_be)
{
	/* Told as the diagnostics show text: a control character as '?'. */
	static const struct {
		const char *url, *why, *shown;
	} bad[] = {
	    {"http://127.0.0.1:99999",
	        "its port \"99999\" is not a number from 1 to 65535", NULL},
	    {"http://h:abc", "its port \"abc\" is not a number from 1 to 65535",
	        NULL},
	    {"http://h:0", "its port \"0\" is not a number from 1 to 65535",
	        NULL},
	    {"http://:80", "it names no host", NULL},
	    {"http://u@:80", "it names no host", NULL},
	    {"http://[::1", "its [ has no ]", NULL},
	    {"http://[]", "it names no host", NULL},
	    {"http://[]:80", "it names no host", NULL},
	    {"http://[::1]x", "text after the ] is not :PORT", NULL},
	    {"http://h\x01x", "its host has a character no host name has",
	        "http://h?x"},
	};
	static const char *const good[] = {"http://[::1]:11434",
	    "https://user:pw@ollama.example:443/proxy", "http://localhost",
	    "http://[fe80::1%25eth0]:11434"};
	struct config c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct diag d = {0};
		char want[256];

		cr_assert_eq(
		    load_with_url(&c, &d, bad[i].url), 1, "%s", d.text);
		snprintf(want, sizeof(want), "url: \"%s\": %s",
		    bad[i].shown ? bad[i].shown : bad[i].url, bad[i].why);
		expect(&d, "url.conf", 2, want);
		config_free(&c);
		diag_free(&d);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct diag d = {0};

		cr_assert_eq(load_with_url(&c, &d, good[i]), 0, "%s", d.text);
		cr_assert_str_eq(c.backend_url, good[i]);
		config_free(&c);
		diag_free(&d);
	}
}

/* The shipped config, and in dir/agents one manifest, a.conf. */
static void
shipped_with_agent(struct config *c, struct diag *d, char *agents, size_t len,
    const char *manifest)
{
	cr_assert_eq(config_load(c, TEST_SRCDIR "/conf/ollamax.conf", d), 0);
	snprintf(agents, len, "%s/agents", dir);
	cr_assert_eq(mkdir(agents, 0755), 0);
	put("agents/a.conf", manifest);
}

Test(config, a_model_name_with_a_control_character_is_refused)
{
	struct config c;
	struct diag d = {0};

	/* Refused, and told once: not again as a model missing. */
	cr_assert_eq(config_load(&c,
	                 put("ctl.conf",
	                     "[tier.light]\nmodel = a\x01"
	                     "b\n"),
	                 &d),
	    1, "%s", d.text);
	expect(&d, "ctl.conf", 2,
	    "model: \"a?b\" has a blank, a quote or a control character");
	config_free(&c);
	diag_free(&d);
	/* Nor does a [model.NAME] take one, which check would print. */
	cr_assert_eq(config_load(&c,
	                 put("ctlsection.conf",
	                     "[tier.light]\nmodel = tinyllama\n"
	                     "[model.a\x1b[2Jb]\nsize_mb = 100\n"),
	                 &d),
	    1, "%s", d.text);
	expect(&d, "ctlsection.conf", 3,
	    "[model.a?[2Jb]: has a blank, a quote or a control character");
	cr_assert_eq(c.nmodels, 0);
	config_free(&c);
	diag_free(&d);
}

Test(config, a_model_name_ollama_refuses_is_refused)
{
	static const char *const refused[] = {"llama3@sha256:0123",
	    "llama3:", "-llama3", "my.space/llama3", "llama3:q4/x"};
	struct config c;
	struct diag d = {0};
	char text[256];

	/* Ollama answers each with 400 "invalid model name": the broker would
	 * try it at every request. */
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		snprintf(text, sizeof(text), "[tier.light]\nmodel = %s\n",
		    refused[i]);
		cr_assert_eq(config_load(&c, put("name.conf", text), &d), 1,
		    "%s: %s", refused[i], d.text);
		snprintf(text, sizeof(text),
		    "model: \"%s\" is not a name Ollama takes", refused[i]);
		expect(&d, "name.conf", 2, text);
		config_free(&c);
		diag_free(&d);
	}
	cr_assert_eq(
	    config_load(&c, put("noname.conf", "[tier.light]\nmodel =\n"), &d),
	    1, "%s", d.text);
	expect(&d, "noname.conf", 2, "model: \"\" names no model");
	config_free(&c);
	diag_free(&d);
	cr_assert_eq(config_load(&c,
	                 put("namesection.conf",
	                     "[tier.light]\nmodel = tinyllama\n"
	                     "[model.tinyllama@sha256:0123]\nsize_mb = 100\n"),
	                 &d),
	    1, "%s", d.text);
	expect(&d, "namesection.conf", 3,
	    "[model.tinyllama@sha256:0123]: is not a name Ollama takes");
	config_free(&c);
	diag_free(&d);
	/* What Ollama takes: a host, a namespace, a tag of its own. */
	cr_assert_eq(config_load(&c,
	                 put("nameok.conf",
	                     "[tier.light]\nmodel = "
	                     "hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M\n"),
	                 &d),
	    0, "%s", d.text);
	config_free(&c);
	diag_free(&d);
}

Test(config, an_empty_tier_is_not_a_tier)
{
	struct config c;
	struct fleet f;
	struct diag d = {0};
	char agents[200];

	shipped_with_agent(&c, &d, agents, sizeof(agents),
	    "[agent]\nname = a\ntier =\ntrigger = demand\nprompt = hi\n");
	cr_assert_eq(
	    fleet_load(&f, agents, &c, NULL, NULL, &d), 1, "%s", d.text);
	expect(&d, "agents/a.conf", 3, "tier: \"\" is not a [tier.NAME]");
	cr_assert_eq(f.count, 0, "the agent was kept");
	fleet_free(&f);
	config_free(&c);
	diag_free(&d);
}

Test(config, check_tells_every_problem_of_a_manifest_and_of_the_config)
{
	struct config c;
	struct fleet f;
	struct diag d = {0};
	char agents[200];

	shipped_with_agent(&c, &d, agents, sizeof(agents),
	    "[agent]\nname = a\ntier = heavy\npriority = urgent\n"
	    "trigger = demand\nprompt = {{nme}} at {{tme}}\n");
	cr_assert_eq(
	    fleet_load(&f, agents, &c, NULL, NULL, &d), 3, "%s", d.text);
	expect(&d, "agents/a.conf", 3, "tier: \"heavy\" is not a [tier.NAME]");
	expect(&d, "agents/a.conf", 4, "priority: \"urgent\"");
	expect(&d, "agents/a.conf", 6,
	    "prompt: unknown variables {{nme}}, {{tme}} (name, role, n, "
	    "time, input)");
	fleet_free(&f);
	config_free(&c);
	diag_free(&d);

	cr_assert_eq(
	    config_load(
	        &c, put("tierless.conf", "[broker]\nparallel = many\n"), &d),
	    2);
	expect(&d, "tierless.conf", 2, "parallel:");
	expect(&d, "tierless.conf", 0, "no [tier.NAME] section");
	config_free(&c);
	diag_free(&d);
}

Test(config, a_file_name_with_a_newline_or_bytes_not_utf8_cannot_forge_a_line)
{
	struct diag d = {0};
	struct manifest m;

	cr_assert_gt(
	    manifest_load(&m, put("a\nok: all good\xff.conf", "x\n"), &d), 0);
	cr_assert_not_null(
	    strstr(d.text, "/a?ok: all good\xef\xbf\xbd.conf:1: "), "%s",
	    d.text);
	/* Every line of the report is one of its problems, at the file. */
	for (const char *line = d.text; *line != '\0';
	     line = strchr(line, '\n') + 1)
		cr_assert(strncmp(line, dir, strlen(dir)) == 0, "%s", d.text);
	manifest_free(&m);
	diag_free(&d);
}

/* A path a message names, as the report names the file it is at. */
Test(config, a_path_not_utf8_in_a_message_shows_as_the_file_at_the_start)
{
	struct diag d = {0};

	diag_add(&d, "caf\xe9.conf", 3, "of %s", "caf\xe9.conf");
	cr_assert_str_eq(
	    d.text, "caf\xef\xbf\xbd.conf:3: of caf\xef\xbf\xbd.conf\n");
	diag_free(&d);
}

/* n manifests, NNNN.conf: agent PREFIX<i> writes to PREFIX<i+1>, the
 * last to `last`; the first runs on first_trigger, the others on their
 * inbox. */
static void
put_chain(
    int n, const char *prefix, const char *first_trigger, const char *last)
{
	char name[64], to[128], text[512];

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%04d.conf", i);
		if (i == n - 1)
			snprintf(to, sizeof(to), "%s", last);
		else
			snprintf(to, sizeof(to), "%s%d", prefix, i + 1);
		snprintf(text, sizeof(text),
		    "[agent]\nname = %s%d\ntier = light\ntrigger = %s\n"
		    "output = agent:%s\nprompt = x {{input}}\n",
		    prefix, i, i == 0 ? first_trigger : "inbox", to);
		put(name, text);
	}
}

/* Each agent is judged once: a long chain is no walk for each of its
 * agents, pass after pass (400 took 19 s so). */
Test(config, a_chain_of_2000_outputs_to_nobody_is_left_out_whole, .timeout = 30)
{
	struct config c;
	struct fleet f;
	struct diag d = {0};

	cr_assert_eq(config_load(&c, TEST_SRCDIR "/conf/ollamax.conf", &d), 0);
	put_chain(2000, "a", "demand", "nobody2000");
	cr_assert_eq(fleet_load(&f, dir, &c, NULL, NULL, &d), 2000);
	cr_assert_eq(f.count, 0);
	expect(&d, "1999.conf", 5,
	    "output: no agent of the agents directory is named \"nobody2000\"");
	expect(&d, "0000.conf", 5,
	    "output: agent \"a1\" is left out: so is this one");
	fleet_free(&f);
	config_free(&c);
	diag_free(&d);
}

Test(config, a_fleet_keeps_the_good_manifests_and_leaves_out_the_bad_ones)
{
	struct config c;
	struct fleet f;
	struct diag d = {0};
	char agents[128], orphan[256];

	cr_assert_eq(config_load(&c, TEST_SRCDIR "/conf/ollamax.conf", &d), 0);
	snprintf(agents, sizeof(agents), "%s", dir);
	put("1-reviewer.conf", good_agent);
	put("2-digest.conf", inbox_agent);
	put("3-dup.conf", inbox_agent);
	put("4-tierless.conf",
	    "[agent]\nname = lost\ntier = gold\ntrigger = demand\nprompt = x\n");
	snprintf(orphan, sizeof(orphan), "%s",
	    put("5-orphan.conf",
	        "[agent]\nname = orphan\ntier = light\ntrigger = demand\n"
	        "output = agent:reviewer\nprompt = x\n"));
	put("6-ping.conf",
	    "[agent]\nname = ping\ntier = light\ntrigger = inbox\n"
	    "prompt = Ping.\n");
	put("7-caller.conf",
	    "[agent]\nname = caller\ntier = light\ntrigger = demand\n"
	    "output = agent:ping\nprompt = x\n");
	put("README.md", "not a manifest");
	cr_assert_gt(fleet_load(&f, agents, &c, NULL, NULL, &d), 0);
	cr_assert_eq(f.count, 3, "reviewer, digest and ping load");
	cr_assert_eq(f.unread, 0);
	cr_assert_not_null(fleet_find(&f, "reviewer"));
	cr_assert_null(fleet_find(&f, "orphan"));
	cr_assert_null(fleet_find(&f, "caller"));
	/* What was read and left out is known as such, by its path. */
	cr_assert_eq(f.nrejected, 4);
	cr_assert(fleet_rejected(&f, orphan));
	cr_assert_not(fleet_rejected(&f, fleet_find(&f, "reviewer")->path));
	expect(&d, "3-dup.conf", 2, "name: \"digest\" is taken by");
	expect(&d, "4-tierless.conf", 3, "tier: \"gold\" is not a [tier.NAME]");
	expect(
	    &d, "5-orphan.conf", 5, "output: agent \"reviewer\" has no inbox");
	expect(&d, "7-caller.conf", 5,
	    "output: agent \"ping\"'s prompt has no {{input}}: the answers "
	    "would be lost unread: left out");
	fleet_free(&f);
	config_free(&c);
	diag_free(&d);
}

Test(config, a_runtime_dir_too_long_for_its_sockets_is_reported_with_its_line)
{
	struct config c;
	struct diag d = {0};
	char text[512], longest[CONFIG_RUNTIME_DIR_MAX + 2];
	const char *path;

	/* The longest that fits, then one byte more. */
	memset(longest, 'r', sizeof(longest) - 1);
	longest[0] = '/';
	longest[CONFIG_RUNTIME_DIR_MAX] = '\0';
	snprintf(text, sizeof(text),
	    "[supervisor]\nruntime_dir = %s\n[tier.light]\nmodel = tinyllama\n",
	    longest);
	path = put("fits.conf", text);
	cr_assert_eq(config_load(&c, path, &d), 0, "%s", d.text);
	config_free(&c);
	memset(longest, 'r', sizeof(longest) - 1);
	longest[0] = '/';
	longest[sizeof(longest) - 1] = '\0';
	snprintf(text, sizeof(text),
	    "[supervisor]\nruntime_dir = %s\n[tier.light]\nmodel = tinyllama\n",
	    longest);
	path = put("long.conf", text);
	cr_assert_eq(config_load(&c, path, &d), 1, "%s", d.text);
	expect(&d, "long.conf", 2, "runtime_dir: /rrr");
	cr_assert_not_null(strstr(d.text,
	                       " is 92 bytes long: the paths of its sockets "
	                       "fit in 91 at most"),
	    "%s", d.text);
	config_free(&c);
	diag_free(&d);
}

/*
 * An empty runtime_dir is the default's, not the config's own folder, and
 * that is the one held to the length of a socket's address.
 */
Test(config, an_empty_runtime_dir_is_judged_as_the_default_it_stands_for)
{
	struct config c;
	struct diag d = {0};
	char deep[101], xdg[101], name[256];
	const char *path;

	unsetenv("XDG_RUNTIME_DIR");
	memset(deep, 'd', 100);
	deep[100] = '\0';
	snprintf(name, sizeof(name), "%s/%s", dir, deep);
	cr_assert_eq(mkdir(name, 0755), 0);
	snprintf(name, sizeof(name), "%s/empty.conf", deep);
	path = put(name,
	    "[supervisor]\nruntime_dir =\n[tier.light]\nmodel = tinyllama\n");
	cr_assert_eq(config_load(&c, path, &d), 0, "%s", d.text);
	config_free(&c);

	memset(xdg, 'x', 100);
	xdg[0] = '/';
	xdg[100] = '\0';
	setenv("XDG_RUNTIME_DIR", xdg, 1);
	cr_assert_eq(config_load(&c, path, &d), 1, "%s", d.text);
	expect(&d, name, 2, "runtime_dir: none given, so the default /xxx");
	cr_assert_not_null(
	    strstr(d.text, "/ollamax is 108 bytes long"), "%s", d.text);
	config_free(&c);
	diag_free(&d);
	path = put("none.conf", "[tier.light]\nmodel = tinyllama\n");
	cr_assert_eq(config_load(&c, path, &d), 1, "%s", d.text);
	expect(&d, "none.conf", 0, "runtime_dir: none given");
	config_free(&c);
	diag_free(&d);
}

/* Two pinned models of the reference box, their sizes given or not. */
#define PINS_CONF(TINY_SIZE)                                                   \
	"[tier.reasoning]\n"                                                   \
	"model = deepseek-r1:8b\n"                                             \
	"[tier.light]\n"                                                       \
	"model = tinyllama\n"                                                  \
	"[model.deepseek-r1:8b]\n"                                             \
	"size_mb = 3200\n"                                                     \
	"kv_mb = 512\n"                                                        \
	"pin = yes\n"                                                          \
	"[model.tinyllama]\n"                                                  \
	"pin = yes\n" TINY_SIZE

Test(config, pinned_models_that_cannot_be_loaded_together_are_refused)
{
	struct config c;
	struct diag d = {0};
	const char *path =
	    put("pins.conf", PINS_CONF("size_mb = 637\nkv_mb = 88\n"));

	/* 725 MB where 80% of the 384 left is 307: at the smaller's line. */
	cr_assert_eq(config_load(&c, path, &d), 1, "%s", d.text);
	cr_assert_not_null(strstr(d.text,
	                       "pins.conf:9: [model.tinyllama]: pinned, but "
	                       "its 725 MB do not fit beside the 1 larger "
	                       "pinned model (3712 MB of vram_mb's 4096"),
	    "%s", d.text);
	config_free(&c);
	diag_free(&d);
	/* With room for both (725 <= 0.8 x 4480), or a size left for the
	 * backend to tell. */
	path = put("pins-roomy.conf",
	    "[broker]\nvram_mb = 8192\n" PINS_CONF(
	        "size_mb = 637\nkv_mb = 88\n"));
	cr_assert_eq(config_load(&c, path, &d), 0, "%s", d.text);
	config_free(&c);
	diag_free(&d);
	path = put("pins-unsized.conf", PINS_CONF(""));
	cr_assert_eq(config_load(&c, path, &d), 0, "%s", d.text);
	config_free(&c);
	diag_free(&d);
}

Test(config, the_policy_knobs_are_read_and_bad_ones_reported_with_their_line)
{
	struct config c;
	struct diag d = {0};
	const char *path = put("policy.conf",
	    "[broker]\n"
	    "max_loaded = 2\n"
	    "max_wait_high = 90s\n"
	    "max_wait_normal = 4m\n"
	    "max_wait_low = 20m\n"
	    "min_residency = 45s\n"
	    "idle_unload = 0s\n"
	    "[tier.light]\n"
	    "model = tinyllama\n"
	    "[model.tinyllama]\n"
	    "size_mb = 637\n"
	    "kv_mb = 88\n"
	    "pin = yes\n"
	    "preload = no\n");

	cr_assert_eq(config_load(&c, path, &d), 0, "%s", d.text);
	cr_assert_eq(c.max_loaded, 2);
	cr_assert_eq(c.max_wait_ms[PRIO_HIGH], 90000);
	cr_assert_eq(c.max_wait_ms[PRIO_NORMAL], 240000);
	cr_assert_eq(c.max_wait_ms[PRIO_LOW], 1200000);
	cr_assert_eq(c.min_residency_ms, 45000);
	cr_assert_eq(c.idle_unload_ms, 0);
	cr_assert_eq(config_model(&c, "tinyllama")->kv_mb, 88);
	cr_assert_eq(config_model(&c, "tinyllama")->pin, 1);
	cr_assert_eq(config_model(&c, "tinyllama")->preload, 0);
	/* The section of the model, by any name Ollama reads as its. */
	cr_assert_eq(config_model(&c, "library/TinyLlama:latest"),
	    config_model(&c, "tinyllama"));
	cr_assert_null(config_model(&c, "tinyllama:1.1b"));
	config_free(&c);

	path = put("bad-policy.conf",
	    "[broker]\n"
	    "max_loaded = 0\n"
	    "max_wait_high = soon\n"
	    "[tier.light]\n"
	    "model = tinyllama\n"
	    "[model.tinyllama]\n"
	    "pin = maybe\n");
	cr_assert_eq(config_load(&c, path, &d), 3);
	expect(&d, "bad-policy.conf", 2, "max_loaded: 0 is out of range");
	expect(&d, "bad-policy.conf", 3, "max_wait_high:");
	expect(&d, "bad-policy.conf", 7, "pin: \"maybe\" is not yes or no");
	config_free(&c);
	diag_free(&d);
}

Test(config, a_yes_or_no_is_written_so)
{
	struct config c;
	struct diag d = {0};
	const char *path = put("bools.conf",
	    "[tier.light]\n"
	    "model = tinyllama\n"
	    "[model.tinyllama]\n"
	    "pin = true\n"
	    "preload = 1\n");

	cr_assert_eq(config_load(&c, path, &d), 2);
	expect(&d, "bools.conf", 4, "pin: \"true\" is not yes or no");
	expect(&d, "bools.conf", 5, "preload: \"1\" is not yes or no");
	config_free(&c);
	diag_free(&d);
}

Test(config, values_that_would_read_as_others_are_reported)
{
	struct config c;
	struct diag d = {0};
	struct manifest m;
	const char *path = put("others.conf",
	    "[supervisor]\n"
	    "stack_size = -18446744073709486080\n"
	    "watchdog = 999us\n"
	    "[broker]\n"
	    "idle_unload = 0.5ns\n"
	    "parallel = 99999999999999999999\n"
	    "[backend]\n"
	    "url = http://127.0.0.1:11434 # local ollama\n"
	    "[tier.light]\n"
	    "model = tinyllama # the small one\n"
	    "[model.tinyllama] pin = yes\n");

	cr_assert_gt(config_load(&c, path, &d), 0);
	expect(&d, "others.conf", 11, "text after a [section]'s ']'");
	/* Past what a long holds is out of range, not "no number". */
	expect(&d, "others.conf", 6,
	    "parallel: 99999999999999999999 is out of range");
	expect(&d, "others.conf", 2,
	    "stack_size: \"-18446744073709486080\" "
	    "is not a size");
	/* Under a millisecond is one, not 0: off, for the watchdog. */
	expect(&d, "others.conf", 3, "watchdog: 999us is too short");
	cr_assert_eq(c.idle_unload_ms, 1);
	expect(&d, "others.conf", 8,
	    "url: \"http://127.0.0.1:11434 # local "
	    "ollama\" is not an http:// or https:// URL");
	expect(&d, "others.conf", 10,
	    "model: \"tinyllama # the small one\" has a blank");
	config_free(&c);
	diag_free(&d);
	/* More digits than a size holds: out of range, with a unit too. */
	load_value(&c, "supervisor", "stack_size", "18446744073709551616",
	    "stack_size: 18446744073709551616 is out of range");
	config_free(&c);
	load_value(&c, "supervisor", "stack_size", "99999999999999999999k",
	    "stack_size: 99999999999999999999k is out of range");
	config_free(&c);

	cr_assert_gt(manifest_load(&m,
	                 put("plus.conf",
	                     "[agent]\nname = a\ntier = light\n"
	                     "trigger = every 5s\njitter = +5%\n"
	                     "prompt = hi\n"),
	                 &d),
	    0);
	expect(&d, "plus.conf", 5, "jitter: \"+5%\" is not a percentage");
	manifest_free(&m);
	diag_free(&d);

	/* A number told as written: %g would show this one as the bound
	 * it passes. Below what a double holds is 0, not "no number". */
	cr_assert_gt(manifest_load(&m,
	                 put("hot.conf",
	                     "[agent]\nname = a\ntier = light\n"
	                     "trigger = demand\nprompt = hi\n[options]\n"
	                     "temperature = 2.0000000001\n"),
	                 &d),
	    0);
	expect(&d, "hot.conf", 7,
	    "temperature: 2.0000000001 is out of range [0, 2]");
	manifest_free(&m);
	diag_free(&d);
	cr_assert_eq(manifest_load(&m,
	                 put("cold.conf",
	                     "[agent]\nname = a\ntier = light\n"
	                     "trigger = demand\nprompt = hi\n[options]\n"
	                     "temperature = 1e-400\n"),
	                 &d),
	    0, "%s", d.text);
	cr_assert_eq(m.temperature, 0);
	manifest_free(&m);
	diag_free(&d);
}

Test(config, a_crlf_line_end_is_no_part_of_the_line_and_a_big_file_is_not_read)
{
	struct config c;
	struct manifest m;
	struct diag d = {0};
	char line[256], *big;
	const char *path;

	/* 198 bytes and a CRLF: at the limit, not past it. */
	snprintf(line, sizeof(line),
	    "[agent]\r\nname = a\r\ntier = light\r\ntrigger = demand\r\n"
	    "prompt = %0189d\r\n",
	    0);
	cr_assert_eq(
	    manifest_load(&m, put("crlf.conf", line), &d), 0, "%s", d.text);
	cr_assert_eq(strlen(m.prompt), 189);
	manifest_free(&m);
	diag_free(&d);

	big = malloc(2 * 1024 * 1024);
	cr_assert_not_null(big);
	memset(big, '#', 2 * 1024 * 1024);
	path = put_bytes("big.conf", big, 2 * 1024 * 1024);
	free(big);
	cr_assert_gt(config_load(&c, path, &d), 0);
	expect(&d, "big.conf", 0,
	    "2097152 bytes, more than the 1048576 a configuration file takes");
	config_free(&c);
	diag_free(&d);
}

Test(config, a_tier_or_a_model_given_twice_is_reported_and_the_first_kept)
{
	struct config c;
	struct diag d = {0};
	const char *path = put("twice.conf",
	    "[tier.light]\n"
	    "model = tinyllama\n"
	    "[model.tinyllama]\n"
	    "num_ctx = 4096\n"
	    "[tier.light]\n"
	    "model = qwen2.5:3b\n"
	    "[model.TinyLlama:latest]\n"
	    "num_ctx = 8192\n");

	cr_assert_eq(config_load(&c, path, &d), 2, "%s", d.text);
	expect(&d, "twice.conf", 5,
	    "[tier.light]: tier defined twice (first at line 1)");
	expect(&d, "twice.conf", 7,
	    "[model.TinyLlama:latest]: model defined twice (first at line 3)");
	cr_assert_str_eq(c.tiers[0].model, "tinyllama");
	cr_assert_eq(config_model(&c, "tinyllama")->num_ctx, 4096);
	config_free(&c);
	diag_free(&d);
}

Test(config, every_line_is_judged_and_each_bad_one_reported_where_it_stands)
{
	static const char text[] =
	    "name = early\n"
	    "[agent]\n"
	    "role = a\0b\n"
	    "tier = light\n"
	    "system = Caf\xe9\n"
	    "trigger = demand\n"
	    "junk\n"
	    "prompt = Hello {{ .Name }}\n"
	    "more junk\n"
	    "[options]\n"
	    "  temperature = 0.5\n"
	    "[oops\n";
	struct manifest m;
	struct diag d = {0};
	const char *path = put_bytes("lines.conf", text, sizeof(text) - 1);

	cr_assert_eq(manifest_load(&m, path, &d), 7, "%s", d.text);
	expect(&d, "lines.conf", 1, "\"name\" comes before any [section]");
	expect(&d, "lines.conf", 3, "a NUL byte at column 9");
	expect(&d, "lines.conf", 5, "not UTF-8 text: byte 0xE9 at column 13");
	expect(&d, "lines.conf", 7, "syntax error");
	expect(&d, "lines.conf", 9, "syntax error");
	expect(&d, "lines.conf", 12, "a [section] line without its ']'");
	expect(&d, "lines.conf", 0, "[agent] name is required");
	/* The line after a NUL is its own; other braces are text; an
	 * indented key with no key before it in its section is a key. */
	cr_assert_str_eq(m.tier, "light");
	cr_assert_str_eq(m.prompt, "Hello {{ .Name }}");
	cr_assert_eq(m.temperature, 0.5);
	manifest_free(&m);
	diag_free(&d);
}

Test(config, an_unknown_variable_on_a_continued_line_is_told_at_that_line)
{
	struct manifest m;
	struct diag d = {0};
	const char *path = put("continued.conf",
	    "[agent]\n"
	    "name = a\n"
	    "tier = coding\n"
	    "trigger = demand\n"
	    "prompt =\n"
	    "  Dear {{name}},\n"
	    "\n"
	    "# a comment between\n"
	    "  see {{inptu}} and {{tiem}}\n"
	    "  {{n}} of {{nme}}\n"
	    "  again {{nme}}, {{inptu}} and {{zzz}}\n"
	    "system = {{nothing}} of it is checked\n");

	/* Each told once, at its first line. */
	cr_assert_eq(manifest_load(&m, path, &d), 3, "%s", d.text);
	expect(&d, "continued.conf", 11,
	    "prompt: unknown variable {{zzz}} (name, role, n, time, input)");
	expect(&d, "continued.conf", 9,
	    "prompt: unknown variables {{inptu}}, {{tiem}} (name, role, n, "
	    "time, input)");
	expect(&d, "continued.conf", 10, "prompt: unknown variable {{nme}} (");
	cr_assert_str_eq(m.prompt,
	    "Dear {{name}},\nsee {{inptu}} and {{tiem}}\n{{n}} of "
	    "{{nme}}\nagain {{nme}}, {{inptu}} and {{zzz}}");
	manifest_free(&m);
	diag_free(&d);
}

Test(config, a_key_given_twice_in_its_section_is_told_with_both_lines)
{
	struct manifest m;
	struct config c;
	struct diag d = {0};
	const char *path = put("twice.conf",
	    "[agent]\n"
	    "name = a\n"
	    "tier = coding\n"
	    "trigger = demand\n"
	    "prompt = first\n"
	    "  and more\n"
	    "prompt = second\n"
	    "  {{not_read}}\n"
	    "tier = light\n"
	    "[options]\n"
	    "num_predict = 9\n");

	cr_assert_eq(manifest_load(&m, path, &d), 2, "%s", d.text);
	expect(&d, "twice.conf", 7,
	    "prompt: given twice in [agent] (first at line 5)");
	expect(&d, "twice.conf", 9,
	    "tier: given twice in [agent] (first at line 3)");
	/* The first stands; the second's lines are not read. */
	cr_assert_str_eq(m.prompt, "first\nand more");
	cr_assert_str_eq(m.tier, "coding");
	manifest_free(&m);
	diag_free(&d);

	/* A section given again is another: its keys are its own. */
	cr_assert_eq(config_load(&c,
	                 put("again.conf",
	                     "[tier.light]\nmodel = tinyllama\n[broker]\n"
	                     "parallel = 2\n[broker]\nvram_mb = 2048\n"
	                     "[backend]\nurl = http://127.0.0.1:1\n"
	                     "url = http://127.0.0.1:2\n"),
	                 &d),
	    1, "%s", d.text);
	expect(&d, "again.conf", 9,
	    "url: given twice in [backend] (first at line 8)");
	cr_assert_eq(c.vram_mb, 2048);
	config_free(&c);
	diag_free(&d);

	/* The keys after a broken header are no repeats of the section's
	 * before it: the header alone is told. */
	cr_assert_eq(config_load(&c,
	                 put("broken.conf",
	                     "[tier.light]\nmodel = tinyllama\n"
	                     "[tier.heavy\nmodel = big\n"),
	                 &d),
	    1, "%s", d.text);
	expect(&d, "broken.conf", 3, "a [section] line without its ']'");
	config_free(&c);
	diag_free(&d);

	/* So for a header refused for its bytes: its keys are not the
	 * section's before it, neither repeats nor read there. */
	cr_assert_eq(
	    config_load(&c,
	        put_bytes("bytes.conf",
	            "[tier.light]\nmodel = tinyllama\n"
	            "[tier.he\xffvy]\nmodel = big\n"
	            "[backend]\nurl = http://127.0.0.1:1\n"
	            "[model.tiny\xffllama]\nurl = http://127.0.0.1:2\n",
	            strlen("[tier.light]\nmodel = tinyllama\n"
	                   "[tier.he\xffvy]\nmodel = big\n"
	                   "[backend]\nurl = http://127.0.0.1:1\n"
	                   "[model.tiny\xffllama]\nurl = "
	                   "http://127.0.0.1:2\n")),
	        &d),
	    2, "%s", d.text);
	expect(&d, "bytes.conf", 3, "not UTF-8 text: byte 0xFF at column 9");
	expect(&d, "bytes.conf", 7, "not UTF-8 text: byte 0xFF at column 12");
	cr_assert_str_eq(c.backend_url, "http://127.0.0.1:1");
	config_free(&c);
	diag_free(&d);
}

Test(config, the_lines_continuing_a_refused_key_go_unread_with_it)
{
	struct manifest m;
	struct diag d = {0};
	char long_line[300];
	const char *path = put("latin.conf",
	    "[agent]\n"
	    "name = x\n"
	    "tier = light\n"
	    "trigger = demand\n"
	    "system = Be brief.\n"
	    "prompt = R\xe9sum\xe9 of\n"
	    "  Summarize {{input}}\n"
	    "  in {{nmae}} words\n");

	manifest_load(&m, path, &d);
	expect(&d, "latin.conf", 6, "not UTF-8 text: byte 0xE9 at column 11");
	/* Not joined to the system text, where the typo would hide. */
	cr_assert_str_eq(m.system, "Be brief.");
	cr_assert(strstr(d.text, "latin.conf:7") == NULL &&
	        strstr(d.text, "latin.conf:8") == NULL,
	    "%s", d.text);
	manifest_free(&m);
	diag_free(&d);

	/* Nor blamed on the key before. */
	memset(long_line, 'w', sizeof(long_line));
	memcpy(long_line, "prompt = ", 9);
	long_line[sizeof(long_line) - 1] = '\0';
	{
		char text[512];

		snprintf(text, sizeof(text),
		    "[agent]\nname = y\ntier = light\ntrigger = demand\n%s\n"
		    "  more\n  and more\nrole = z\n  stray\n",
		    long_line);
		path = put("long.conf", text);
	}
	manifest_load(&m, path, &d);
	expect(&d, "long.conf", 5, "line longer than");
	/* A key line read again ends it: role's own indented line is its
	 * own problem. */
	expect(&d, "long.conf", 9,
	    "role: only system and prompt continue on indented lines");
	cr_assert(strstr(d.text, "long.conf:6") == NULL &&
	        strstr(d.text, "long.conf:7") == NULL,
	    "%s", d.text);
	manifest_free(&m);
	diag_free(&d);
}

Test(config, two_manifests_run_together_are_refused_not_merged)
{
	struct manifest m;
	struct diag d = {0};
	const char *path = put("both.conf",
	    "[agent]\nname = first\ntier = light\ntrigger = demand\n"
	    "prompt = One.\n[options]\nnum_predict = 5\n"
	    "[agent]\nname = second\ntier = coding\ntrigger = inbox\n"
	    "prompt = Two {{input}}\n[options]\nnum_predict = 9\n");

	cr_assert_neq(manifest_load(&m, path, &d), 0);
	expect(&d, "both.conf", 8,
	    "[agent]: given twice (first at line 1): a manifest is one agent");
	expect(&d, "both.conf", 13,
	    "[options]: given twice (first at line 6): a manifest is one "
	    "agent");
	manifest_free(&m);
	diag_free(&d);
}

Test(config, a_bad_name_is_told_by_its_first_character_at_fault)
{
	struct manifest m;
	struct config c;
	struct diag d = {0};
	char why[160], long_name[60];

	cr_assert_eq(config_name_fault("scribe-2_b", why, sizeof(why)), 0);
	cr_assert_eq(config_name_fault("Status", why, sizeof(why)), -1);
	cr_assert_str_eq(why,
	    "'S', its character 1, is not a lowercase letter, a digit, '-' "
	    "or '_'");
	/* What looks right on the screen is named by its code point. */
	cr_assert_eq(
	    config_name_fault("st\xc3\xa9tus\xe2\x80\x8b", why, sizeof(why)),
	    -1);
	cr_assert_str_eq(why,
	    "its character 3, U+00E9, is not a lowercase letter, a digit, "
	    "'-' or '_'");
	config_name_fault("status\xe2\x80\x8bpage", why, sizeof(why));
	cr_assert(strstr(why, "its character 7, U+200B") != NULL, "%s", why);
	config_name_fault("ab\xe9", why, sizeof(why));
	cr_assert_str_eq(why, "its character 3 is not UTF-8 (byte 0xE9)");
	config_name_fault("a\tb", why, sizeof(why));
	cr_assert(strstr(why, "its character 2, U+0009") != NULL, "%s", why);
	cr_assert_eq(config_name_fault("", why, sizeof(why)), -1);
	memset(long_name, 'a', sizeof(long_name));
	long_name[49] = '\0';
	cr_assert_eq(config_name_fault(long_name, why, sizeof(why)), -1);
	cr_assert_str_eq(why, "a name has 48 characters at most, not 49");
	long_name[48] = '\0';
	cr_assert_eq(config_name_fault(long_name, why, sizeof(why)), 0);

	manifest_load(&m,
	    put("names.conf",
	        "[agent]\nname = status\xc2\xa0page\ntier = light\n"
	        "trigger = demand\noutput = agent:Status-Page\nprompt = x\n"),
	    &d);
	expect(&d, "names.conf", 2,
	    "name: \"status\xc2\xa0page\": its character 7, U+00A0, is not a "
	    "lowercase letter");
	expect(&d, "names.conf", 5,
	    "output: \"agent:Status-Page\": not an agent's name: 'S', its "
	    "character 1");
	manifest_free(&m);
	diag_free(&d);

	config_load(
	    &c, put("tiers.conf", "[tier.Light]\nmodel = tinyllama\n"), &d);
	expect(&d, "tiers.conf", 1, "[tier.Light]: 'L', its character 1");
	config_free(&c);
	diag_free(&d);
}

Test(config, a_file_of_utf16_or_of_lines_ending_in_cr_is_told_once)
{
	static const char utf16[] = "\xff\xfe[\0a\0g\0e\0n\0t\0]\0\n\0n\0a\0"
	                            "m\0e\0 \0=\0 \0x\0\n\0";
	struct manifest m;
	struct diag d = {0};

	cr_assert_eq(manifest_load(&m,
	                 put_bytes("wide.conf", utf16, sizeof(utf16) - 1), &d),
	    1);
	expect(&d, "wide.conf", 1,
	    "UTF-16 text (its byte order mark FF FE): save it as UTF-8");
	cr_assert_eq(d.count, 1, "%s", d.text);
	manifest_free(&m);
	diag_free(&d);

	manifest_load(&m,
	    put("mac.conf",
	        "[agent]\rname = x\rtier = light\rtrigger = demand\r"
	        "prompt = y\r"),
	    &d);
	expect(&d, "mac.conf", 1,
	    "a carriage return (CR) at column 8 ends no line: lines end with "
	    "LF, or CR LF");
	manifest_free(&m);
	diag_free(&d);

	/* CR LF is a line end, as before. */
	cr_assert_eq(manifest_load(&m,
	                 put("dos.conf",
	                     "[agent]\r\nname = x\r\ntier = light\r\n"
	                     "trigger = demand\r\nprompt = y\r\n"),
	                 &d),
	    0, "%s", d.text);
	manifest_free(&m);
	diag_free(&d);
}

Test(config, an_agent_on_a_timer_whose_prompt_is_its_input_alone_is_refused)
{
	struct manifest m;
	struct diag d = {0};

	manifest_load(&m,
	    put("timer.conf",
	        "[agent]\nname = t\ntier = light\ntrigger = every 1m\n"
	        "prompt = {{input}}\n"),
	    &d);
	expect(&d, "timer.conf", 5,
	    "prompt: nothing but {{input}}, which a run on its timer is not "
	    "given");
	manifest_free(&m);
	diag_free(&d);

	/* On demand, or with words of its own, it has something to say. */
	cr_assert_eq(manifest_load(&m,
	                 put("demand.conf",
	                     "[agent]\nname = t\ntier = light\n"
	                     "trigger = demand\nprompt = {{input}}\n"),
	                 &d),
	    0, "%s", d.text);
	manifest_free(&m);
	cr_assert_eq(
	    manifest_load(&m,
	        put("worded.conf",
	            "[agent]\nname = t\ntier = light\n"
	            "trigger = every 1m\nprompt = {{name}}: {{input}}\n"),
	        &d),
	    0, "%s", d.text);
	manifest_free(&m);
	diag_free(&d);
}

Test(config, a_line_after_an_empty_key_continues_nothing_as_in_inih)
{
	struct manifest m;
	struct diag d = {0};
	const char *path = put("empty-key.conf",
	    "[agent]\n"
	    "= v\n"
	    "  stray\n");

	manifest_load(&m, path, &d);
	expect(&d, "empty-key.conf", 2, "[agent]: unknown key \"\"");
	expect(&d, "empty-key.conf", 3, "syntax error");
	manifest_free(&m);
	diag_free(&d);
}

Test(config, an_empty_or_bad_section_is_told_once_at_its_header)
{
	struct config c;
	struct diag d = {0};
	const char *path = put("sections.conf",
	    "[supervisr]\n"
	    "[tier.Bad Name]\n"
	    "model = a\n"
	    "fallback = b\n"
	    "[tier.empty]\n"
	    "[tier.light]\n"
	    "model = tinyllama\n");

	cr_assert_eq(config_load(&c, path, &d), 3, "%s", d.text);
	expect(&d, "sections.conf", 1, "[supervisr]: unknown section");
	expect(&d, "sections.conf", 2, "[tier.Bad Name]: 'B', its character 1");
	expect(&d, "sections.conf", 5, "[tier.empty]: model is required");
	config_free(&c);
	diag_free(&d);
}

Test(config, section_names_are_read_whole_past_the_readers_49_bytes)
{
	struct config c;
	struct diag d = {0};
	const char *model = "hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M";
	char text[512];

	snprintf(text, sizeof(text),
	    "[tier.a-tier-name-of-exactly-forty-eight-characters-]\n"
	    "model = %s\n"
	    "[model.%s]\n"
	    "size_mb = 1000\n",
	    model, model);
	cr_assert_eq(config_load(&c, put("long.conf", text), &d), 0, "%s",
	    d.text);
	cr_assert_not_null(config_tier(
	    &c, "a-tier-name-of-exactly-forty-eight-characters-"));
	cr_assert_not_null(config_model(&c, model));
	cr_assert_eq(config_model(&c, model)->size_mb, 1000);
	config_free(&c);
	diag_free(&d);
}

Test(config, what_is_not_a_regular_file_is_refused_unread)
{
	struct manifest m;
	struct diag d = {0};
	char path[256];

	snprintf(path, sizeof(path), "%s/sub.conf", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert_eq(manifest_load(&m, path, &d), 1, "%s", d.text);
	expect(&d, "sub.conf", 0, "a directory, not a file");
	manifest_free(&m);
	/* Opening a FIFO for reading would wait for a writer. */
	snprintf(path, sizeof(path), "%s/fifo.conf", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_assert_eq(manifest_load(&m, path, &d), 1, "%s", d.text);
	expect(&d, "fifo.conf", 0, "not a regular file");
	manifest_free(&m);
	diag_free(&d);
}

Test(config, sizes_and_directories_out_of_bounds_are_refused)
{
	struct config c;
	struct diag d = {0};
	const char *path = put("sizes.conf",
	    "[supervisor]\n"
	    "stack_size = 17592186044417m\n"
	    "agents_dir =\n"
	    "state_dir =\n"
	    "[tier.light]\n"
	    "model = tinyllama\n");

	cr_assert_eq(config_load(&c, path, &d), 3, "%s", d.text);
	expect(&d, "sizes.conf", 2,
	    "stack_size: 17592186044417m is out of range");
	expect(&d, "sizes.conf", 3, "agents_dir: empty: name a directory");
	expect(&d, "sizes.conf", 4, "state_dir: empty: name a directory");
	config_free(&c);
	diag_free(&d);
}

Test(config, tiers_naming_more_models_than_the_broker_plans_for_are_refused)
{
	struct config c;
	struct diag d = {0};
	char text[8192];
	size_t len = 0;

	for (int i = 0; i <= POLICY_MODELS_MAX; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
		    "[tier.t%d]\nmodel = m%d\n", i, i);
	cr_assert_eq(config_load(&c, put("many.conf", text), &d), 1, "%s",
	    d.text);
	expect(
	    &d, "many.conf", 0, "the tiers name 32 models, more than the 31");
	config_free(&c);
	diag_free(&d);
}

Test(config, a_prompt_empty_or_too_long_for_a_frame_is_refused_with_its_line)
{
	struct manifest m;
	struct diag d = {0};
	size_t big = MSG_MAX_TEXT + 2;
	char *text = malloc(2 * big), *p;

	cr_assert_not_null(text);
	cr_assert_eq(manifest_load(&m, put("empty.conf",
	                                   "[agent]\nname = e\ntier = light\n"
	                                   "trigger = demand\nprompt =\n"),
	                 &d),
	    1, "%s", d.text);
	expect(&d, "empty.conf", 5, "prompt: empty");
	manifest_free(&m);
	/* Continued on indented lines of 98 bytes each. */
	p = text + sprintf(text, "[agent]\nname = big\ntier = light\n"
	                         "trigger = demand\nprompt = start\n");
	for (size_t n = 0; n < big; n += 90)
		p += sprintf(p, "  %097d\n", 0);
	cr_assert_eq(manifest_load(&m, put("big.conf", text), &d), 1, "%s",
	    d.text);
	expect(&d, "big.conf", 5, "prompt: longer than 262144 bytes");
	manifest_free(&m);
	free(text);
	diag_free(&d);
}

Test(config, an_agents_directory_that_cannot_be_read_is_known_unread)
{
	struct fleet f;
	struct diag d = {0};
	char missing[128];

	snprintf(missing, sizeof(missing), "%s/no-such-dir", dir);
	cr_assert_eq(fleet_load(&f, missing, NULL, NULL, NULL, &d), 1);
	cr_assert_eq(f.unread, 1);
	cr_assert_eq(f.count, 0);
	expect(&d, "no-such-dir", 0, "cannot read the agents directory");
	fleet_free(&f);
	diag_free(&d);
}

static const char *
runs_from_the_later_file(const char *name, void *arg)
{
	return strcmp(name, "digest") == 0 ? arg : NULL;
}

Test(config, a_running_agent_keeps_its_name_against_a_copy_that_sorts_first)
{
	struct config c;
	struct fleet f;
	struct diag d = {0};
	char copy[256], own[256];

	cr_assert_eq(config_load(&c, TEST_SRCDIR "/conf/ollamax.conf", &d), 0);
	snprintf(copy, sizeof(copy), "%s", put("1-copy.conf", inbox_agent));
	snprintf(own, sizeof(own), "%s", put("2-digest.conf", inbox_agent));
	cr_assert_eq(fleet_load(&f, dir, &c, runs_from_the_later_file, own, &d),
	    1, "%s", d.text);
	cr_assert_eq(f.count, 1);
	cr_assert_str_eq(fleet_find(&f, "digest")->path, own);
	cr_assert(fleet_rejected(&f, copy));
	cr_assert_not(fleet_rejected(&f, own));
	expect(&d, "1-copy.conf", 2, "name: \"digest\" is taken by");
	cr_assert_not_null(strstr(d.text, "2-digest.conf, which runs it"));
	fleet_free(&f);
	diag_free(&d);
	/* Nothing running under the name: the first file keeps it. */
	cr_assert_eq(fleet_load(&f, dir, &c, NULL, NULL, &d), 1);
	cr_assert_str_eq(fleet_find(&f, "digest")->path, copy);
	expect(&d, "2-digest.conf", 2, "name: \"digest\" is taken by");
	fleet_free(&f);
	config_free(&c);
	diag_free(&d);
}

Test(config, a_long_loop_is_named_in_part_and_its_message_kept_whole)
{
	struct config c;
	struct fleet f;
	struct diag d = {0};

	cr_assert_eq(config_load(&c, TEST_SRCDIR "/conf/ollamax.conf", &d), 0);
	put_chain(40, "a-rather-long-agent-name-", "inbox",
	    "a-rather-long-agent-name-0");
	cr_assert_eq(fleet_load(&f, dir, &c, NULL, NULL, &d), 1, "%s", d.text);
	expect(&d, "0000.conf", 5,
	    "output: a-rather-long-agent-name-0 -> a-rather-long-agent-name-1");
	cr_assert_not_null(strstr(d.text,
	                       " -> ... (40 agents in all) -> "
	                       "a-rather-long-agent-name-0: a loop, in which "
	                       "each answer starts the next run for ever: left "
	                       "out\n"),
	    "%s", d.text);
	fleet_free(&f);
	config_free(&c);
	diag_free(&d);
}

/* The agent is there, refused: the sender is told so, not that there is
 * none. */
Test(config, an_output_to_a_manifest_refused_names_an_agent_left_out)
{
	struct config c;
	struct fleet f;
	struct diag d = {0};

	cr_assert_eq(config_load(&c, TEST_SRCDIR "/conf/ollamax.conf", &d), 0);
	put("1-send.conf",
	    "[agent]\nname = send\ntier = light\n"
	    "trigger = demand\noutput = agent:take\nprompt = x\n");
	put("2-take.conf",
	    "[agent]\nname = take\ntier = light\n"
	    "trigger = inbox\npriority = urgent\n"
	    "prompt = x {{input}}\n");
	put("3-lost.conf",
	    "[agent]\nname = lost\ntier = light\n"
	    "trigger = demand\noutput = agent:none\nprompt = x\n");
	cr_assert_eq(fleet_load(&f, dir, &c, NULL, NULL, &d), 3, "%s", d.text);
	cr_assert_eq(f.count, 0);
	expect(&d, "1-send.conf", 5,
	    "output: agent \"take\" is left out: so is this one");
	expect(&d, "3-lost.conf", 5,
	    "output: no agent of the agents directory is named \"none\": left out");
	fleet_free(&f);
	config_free(&c);
	diag_free(&d);
}

/* An output that names no agent is told the agent near it, for the first
 * SUGGESTIONS_MAX (64) of a fleet; past them, none, as the fleet may be
 * thousands all mistyped. */
Test(config, an_output_to_a_mistyped_agent_is_told_the_one_meant)
{
	struct config c;
	struct fleet f;
	struct diag d = {0};
	char name[32], text[256];
	size_t told = 0;

	cr_assert_eq(config_load(&c, TEST_SRCDIR "/conf/ollamax.conf", &d), 0);
	put("0-reviewer.conf",
	    "[agent]\nname = reviewer\ntier = light\n"
	    "trigger = inbox\nprompt = x {{input}}\n");
	for (int i = 0; i < 66; i++) {
		snprintf(name, sizeof(name), "1-%02d.conf", i);
		snprintf(text, sizeof(text),
		    "[agent]\nname = s%d\ntier = light\ntrigger = demand\n"
		    "output = agent:reviewr\nprompt = x\n",
		    i);
		put(name, text);
	}
	cr_assert_eq(fleet_load(&f, dir, &c, NULL, NULL, &d), 66);
	cr_assert_eq(f.count, 1);
	expect(&d, "1-00.conf", 5,
	    "output: no agent of the agents directory is named \"reviewr\": "
	    "left out: did you mean 'reviewer'?\n");
	for (const char *at = d.text; (at = strstr(at, "did you mean")) != NULL;
	     at++)
		told++;
	cr_assert_eq(told, 64);
	expect(&d, "1-65.conf", 5,
	    "output: no agent of the agents directory is named \"reviewr\": "
	    "left out\n");
	fleet_free(&f);
	config_free(&c);
	diag_free(&d);
}

Test(config, outputs_that_go_round_are_refused_once_and_left_out)
{
	struct config c;
	struct fleet f;
	struct diag d = {0};

	cr_assert_eq(config_load(&c, TEST_SRCDIR "/conf/ollamax.conf", &d), 0);
	put("1-ping.conf", "[agent]\nname = ping\ntier = light\n"
	                   "trigger = inbox\noutput = agent:pong\nprompt = x\n");
	put("2-pong.conf", "[agent]\nname = pong\ntier = light\n"
	                   "trigger = inbox\noutput = agent:ping\nprompt = x\n");
	put("3-echo.conf", "[agent]\nname = echo\ntier = light\n"
	                   "trigger = inbox\noutput = agent:echo\nprompt = x\n");
	put("4-feed.conf", "[agent]\nname = feed\ntier = light\n"
	                   "trigger = demand\noutput = agent:ping\nprompt = x\n");
	put("5-solo.conf",
	    "[agent]\nname = solo\ntier = light\n"
	    "trigger = inbox\nprompt = x\n");
	cr_assert_eq(fleet_load(&f, dir, &c, NULL, NULL, &d), 4, "%s", d.text);
	expect(&d, "1-ping.conf", 5,
	    "output: ping -> pong -> ping: a loop, in which each answer starts "
	    "the next run for ever: left out");
	expect(&d, "3-echo.conf", 5, "output: echo -> echo: a loop");
	/* What feeds a loop goes too: its output would name no agent. */
	expect(&d, "4-feed.conf", 5,
	    "output: agent \"ping\" is left out: so is this one");
	expect(&d, "4-feed.conf", 5,
	    "output: agent \"ping\"'s prompt has no {{input}}");
	cr_assert_eq(f.count, 1, "only solo is left");
	cr_assert_not_null(fleet_find(&f, "solo"));
	cr_assert_eq(f.nrejected, 4);
	fleet_free(&f);
	config_free(&c);
	diag_free(&d);
}

Test(config, relative_paths_are_from_the_file_itself_not_a_link_to_it)
{
	struct config c;
	struct diag d = {0};
	char real_dir[128], link_dir[128], link_path[192], want[192];
	char got[PATH_MAX];

	snprintf(real_dir, sizeof(real_dir), "%s/real", dir);
	cr_assert_eq(mkdir(real_dir, 0700), 0);
	put("real/ollamax.conf",
	    "[supervisor]\nruntime_dir = run\n[tier.light]\nmodel = tinyllama\n");
	snprintf(link_dir, sizeof(link_dir), "%s/link", dir);
	cr_assert_eq(mkdir(link_dir, 0700), 0);
	snprintf(link_path, sizeof(link_path), "%s/ollamax.conf", link_dir);
	cr_assert_eq(symlink("../real/ollamax.conf", link_path), 0);
	snprintf(want, sizeof(want), "%s/real/run", dir);
	/* As start reads it, and as ollamaxctl and stop look for it. */
	cr_assert_eq(config_load(&c, link_path, &d), 0, "%s", d.text);
	config_runtime_dir(&c, got, sizeof(got));
	cr_assert_str_eq(got, want);
	config_free(&c);
	cr_assert_eq(config_ctl_runtime_dir(link_path, got, sizeof(got), &d), 0,
	    "%s", d.text);
	cr_assert_str_eq(got, want);
	diag_free(&d);
}

Test(config, a_comment_after_a_path_is_refused_not_taken_into_the_path)
{
	struct config c;
	struct diag d = {0};
	struct manifest m;

	cr_assert_eq(config_load(&c,
	                 put("dirs.conf",
	                     "[supervisor]\n"
	                     "state_dir = ../state   # outputs\n"
	                     "agents_dir = agents\t# the fleet\n"
	                     "runtime_dir = run # sockets\n"
	                     "[tier.light]\nmodel = tinyllama\n"),
	                 &d),
	    3, "%s", d.text);
	expect(&d, "dirs.conf", 2,
	    "state_dir: \"../state   # outputs\" has a comment after the "
	    "directory (a comment goes on a line of its own)");
	expect(&d, "dirs.conf", 3, "agents_dir: \"agents?# the fleet\"");
	expect(&d, "dirs.conf", 4, "runtime_dir: \"run # sockets\"");
	config_free(&c);
	diag_free(&d);
	/* A file name may hold a '#' of its own, not after a blank. */
	cr_assert_eq(
	    manifest_load(&m,
	        put("hash.conf",
	            "[agent]\nname = hash\ntier = light\ntrigger = demand\n"
	            "output = file:report#1.md\nprompt = P.\n"),
	        &d),
	    0, "%s", d.text);
	cr_assert_str_eq(m.output_target, "report#1.md");
	manifest_free(&m);
	cr_assert_eq(
	    manifest_load(&m,
	        put("comment.conf",
	            "[agent]\nname = comment\ntier = light\ntrigger = demand\n"
	            "output = file:report.md   # daily report\n"
	            "prompt = P.\n"),
	        &d),
	    1, "%s", d.text);
	expect(&d, "comment.conf", 5,
	    "output: \"file:report.md   # daily report\" has a comment after "
	    "the file name (a comment goes on a line of its own)");
	manifest_free(&m);
	diag_free(&d);
	/* Nor is the state dir itself a file, however spelled. */
	cr_assert_eq(
	    manifest_load(&m,
	        put("dot.conf",
	            "[agent]\nname = dot\ntier = light\ntrigger = demand\n"
	            "output = file:./.\nprompt = P.\n"),
	        &d),
	    1, "%s", d.text);
	expect(&d, "dot.conf", 5, "output: \"file:./.\" is not log, file:NAME");
	manifest_free(&m);
	diag_free(&d);
}

Test(config, problems_are_told_by_file_then_line_in_the_order_told_for_one)
{
	struct diag d = {0};

	diag_add(&d, "b.conf", 7, "seven");
	diag_add(&d, "b.conf", 2, "two");
	diag_add(&d, "a.conf", 4, "four");
	diag_add(&d, "b.conf", 0, "of the whole file");
	diag_add(&d, "b.conf", 2, "two again");
	diag_add(&d, "a.conf", 1, "one");
	cr_assert_str_eq(d.text,
	    "b.conf:2: two\n"
	    "b.conf:2: two again\n"
	    "b.conf:7: seven\n"
	    "b.conf: of the whole file\n"
	    "a.conf:1: one\n"
	    "a.conf:4: four\n");
	cr_assert_eq(d.count, 6);
	diag_free(&d);
}

/* Where want stands in text, failing if it is not there. */
static const char *
told_at(const char *text, const char *want)
{
	const char *at = text != NULL ? strstr(text, want) : NULL;

	cr_assert_not_null(at, "missing \"%s\" in:\n%s", want, text);
	return at;
}

Test(
    config, a_file_s_problems_found_late_are_told_with_its_others_in_line_order)
{
	struct config c;
	struct fleet f;
	struct diag d = {0};
	char agents[200];

	/* The fallback is judged once all tiers are read: after line 5. */
	cr_assert_eq(config_load(&c,
	                 put("late.conf",
	                     "[tier.a]\nmodel = m\nfallback = nowhere\n"
	                     "[broker]\nparallel = lots\n"),
	                 &d),
	    2, "%s", d.text);
	cr_assert(
	    told_at(d.text, "late.conf:3: ") < told_at(d.text, "late.conf:5: "),
	    "%s", d.text);
	config_free(&c);
	diag_free(&d);

	/* a.conf's output is judged once the whole fleet is read, after
	 * b.conf's lines; b.conf's missing tier is of the file as a whole. */
	shipped_with_agent(&c, &d, agents, sizeof(agents),
	    "[agent]\nname = a\ntier = light\ntrigger = demand\n"
	    "output = agent:nobody\nprompt = hi\n");
	put("agents/b.conf",
	    "[agent]\nname = b\npriority = urgent\ntrigger = demand\n"
	    "prompt = hi\n");
	cr_assert_eq(
	    fleet_load(&f, agents, &c, NULL, NULL, &d), 3, "%s", d.text);
	cr_assert(told_at(d.text, "a.conf:5: output:") <
	        told_at(d.text, "b.conf:3: priority:"),
	    "%s", d.text);
	cr_assert(told_at(d.text, "b.conf:3: priority:") <
	        told_at(d.text, "b.conf: [agent] tier is required"),
	    "%s", d.text);
	fleet_free(&f);
	config_free(&c);
	diag_free(&d);
}

Test(config, a_key_given_again_in_another_section_of_its_name_is_told)
{
	struct config c;
	struct diag d = {0};

	cr_assert_eq(config_load(&c,
	                 put("split.conf",
	                     "[broker]\nparallel = 2\n[tier.light]\n"
	                     "model = tinyllama\n[broker]\nvram_mb = 2048\n"
	                     "parallel = 3\n"),
	                 &d),
	    1, "%s", d.text);
	expect(&d, "split.conf", 7,
	    "parallel: given twice in [broker] (first at line 2, in the "
	    "[broker] at line 1)");
	/* The first stands, as within one section. */
	cr_assert_eq(c.parallel, 2);
	cr_assert_eq(c.vram_mb, 2048);
	config_free(&c);
	diag_free(&d);
}

Test(config, a_required_key_given_but_refused_is_not_told_missing_too)
{
	static const char manifest[] = "[agent]\n"
	                               "name = caf\xe9\n"
	                               "tier = li\0ght\n"
	                               "trigger = demand\r \n"
	                               "prompt = R\xe9sum\xe9\n";
	struct config c;
	struct manifest m;
	struct diag d = {0};
	char xdg[101];

	cr_assert_eq(config_load(&c,
	                 put("refused.conf",
	                     "[tier.light]\nmodel = tiny llama\n"
	                     "[tier.heavy]\nmodel = caf\xe9\n"
	                     "[tier.none]\n"),
	                 &d),
	    3, "%s", d.text);
	expect(&d, "refused.conf", 2, "model: \"tiny llama\" has a blank");
	expect(&d, "refused.conf", 4, "not UTF-8 text");
	/* A key not given at all is still missing. */
	expect(&d, "refused.conf", 5, "[tier.none]: model is required");
	config_free(&c);
	diag_free(&d);

	cr_assert_eq(
	    manifest_load(&m,
	        put_bytes("refused.conf", manifest, sizeof(manifest) - 1), &d),
	    4, "%s", d.text);
	cr_assert_null(strstr(d.text, "is required"), "%s", d.text);
	manifest_free(&m);
	diag_free(&d);

	/* A runtime_dir refused is not judged as the default it leaves. */
	memset(xdg, 'x', 100);
	xdg[0] = '/';
	xdg[100] = '\0';
	setenv("XDG_RUNTIME_DIR", xdg, 1);
	cr_assert_eq(config_load(&c,
	                 put("dir.conf",
	                     "[supervisor]\nruntime_dir = run # x\n"
	                     "[tier.light]\nmodel = tinyllama\n"),
	                 &d),
	    1, "%s", d.text);
	unsetenv("XDG_RUNTIME_DIR");
	config_free(&c);
	diag_free(&d);
}

Test(config, a_dir_s_problem_is_told_at_its_key_or_as_the_default)
{
	struct config c;
	struct diag d = {0};
	char want[512];

	cr_assert_eq(
	    config_load(&c,
	        put("dirs.conf",
	            "[supervisor]\nworkers = 1\nstate_dir = /nowhere/s\n"
	            "runtime_dir = /nowhere/r\n[tier.light]\n"
	            "model = tinyllama\n"),
	        &d),
	    0, "%s", d.text);
	config_dir_problem(&c, "state_dir", "/nowhere/s cannot be made", &d);
	config_dir_problem(&c, "runtime_dir", "/nowhere/r cannot be made", &d);
	expect(&d, "dirs.conf", 3, "state_dir: /nowhere/s cannot be made");
	expect(&d, "dirs.conf", 4, "runtime_dir: /nowhere/r cannot be made");
	config_free(&c);
	diag_free(&d);

	cr_assert_eq(
	    config_load(&c,
	        put("nodirs.conf", "[tier.light]\nmodel = tinyllama\n"), &d),
	    0, "%s", d.text);
	config_dir_problem(&c, "state_dir", "/x/state is not a directory", &d);
	snprintf(want, sizeof(want),
	    "%s/nodirs.conf: state_dir: none given, so the default "
	    "/x/state is not a directory\n",
	    dir);
	cr_assert_str_eq(d.text, want);
	config_free(&c);
	diag_free(&d);
}

Test(config, an_unknown_key_or_section_is_told_with_the_one_near_it)
{
	struct config c;
	struct manifest m;
	struct diag d = {0};

	cr_assert_eq(config_load(&c,
	                 put("near.conf",
	                     "[supervisor]\n"
	                     "worker = 2\n"
	                     "Stack_Size = 64k\n"
	                     "colour = blue\n"
	                     "[brokr]\n"
	                     "[teir.light]\n"
	                     "[Tier light]\n"
	                     "[tier.heavy]\n"
	                     "model = big\n"
	                     "fallback = haevy\n"
	                     "[model.big]\n"
	                     "pn = yes\n"
	                     "xyz = 1\n"),
	                 &d),
	    9, "%s", d.text);
	expect(&d, "near.conf", 2,
	    "[supervisor]: unknown key \"worker\": did you mean 'workers'?");
	/* Case aside. */
	expect(&d, "near.conf", 3,
	    "[supervisor]: unknown key \"Stack_Size\": did you mean "
	    "'stack_size'?");
	/* None near: those known. */
	expect(&d, "near.conf", 4,
	    "[supervisor]: unknown key \"colour\" (workers, runtime_dir, "
	    "state_dir, agents_dir, stack_size, watchdog, start_timeout)\n");
	expect(&d, "near.conf", 5,
	    "[brokr]: unknown section: did you mean [broker]?");
	expect(&d, "near.conf", 6,
	    "[teir.light]: unknown section: did you mean [tier.light]?");
	expect(&d, "near.conf", 7,
	    "[Tier light]: unknown section: did you mean [tier.light]?");
	expect(&d, "near.conf", 10,
	    "[tier.heavy]: fallback \"haevy\" is not a tier: did you mean "
	    "'heavy'?");
	/* One edit is near for a name of three... */
	expect(&d, "near.conf", 12,
	    "[model.big]: unknown key \"pn\": did you mean 'pin'?");
	/* ...but three of three are another word. */
	expect(&d, "near.conf", 13,
	    "[model.big]: unknown key \"xyz\" (size_mb, num_ctx, kv_mb, "
	    "preload, pin)");
	config_free(&c);
	diag_free(&d);

	cr_assert_eq(
	    manifest_load(&m,
	        put("near-agent.conf",
	            "[agent]\nname = a\ntier = light\ntrigger = demand\n"
	            "promt = hi\nprompt = hi\n[optoins]\nx = 1\n"
	            "[options]\ntempreature = 1\n"),
	        &d),
	    3, "%s", d.text);
	expect(&d, "near-agent.conf", 5,
	    "[agent]: unknown key \"promt\": did you mean 'prompt'?");
	expect(&d, "near-agent.conf", 7,
	    "[optoins]: unknown section: did you mean [options]?");
	expect(&d, "near-agent.conf", 10,
	    "[options]: unknown key \"tempreature\": did you mean "
	    "'temperature'?");
	manifest_free(&m);
	diag_free(&d);
}

Test(config, a_manifest_s_tier_is_told_with_the_tier_near_it)
{
	struct config c;
	struct fleet f;
	struct diag d = {0};
	char agents[200];

	shipped_with_agent(&c, &d, agents, sizeof(agents),
	    "[agent]\nname = a\ntier = ligth\ntrigger = demand\nprompt = hi\n");
	put("agents/b.conf",
	    "[agent]\nname = b\ntier = gold\ntrigger = demand\nprompt = hi\n");
	cr_assert_eq(
	    fleet_load(&f, agents, &c, NULL, NULL, &d), 2, "%s", d.text);
	expect(&d, "agents/a.conf", 3,
	    "tier: \"ligth\" is not a [tier.NAME] of " TEST_SRCDIR
	    "/conf/ollamax.conf: did you mean 'light'?\n");
	expect(&d, "agents/b.conf", 3,
	    "tier: \"gold\" is not a [tier.NAME] of " TEST_SRCDIR
	    "/conf/ollamax.conf\n");
	fleet_free(&f);
	config_free(&c);
	diag_free(&d);
}

Test(config, a_tier_with_an_invisible_character_is_told_by_that_character)
{
	struct config c;
	struct fleet f;
	struct diag d = {0};
	char agents[200];

	/* A no-break space after it; a zero-width space inside. */
	shipped_with_agent(&c, &d, agents, sizeof(agents),
	    "[agent]\nname = a\ntier = light\xc2\xa0\ntrigger = demand\n"
	    "prompt = hi\n");
	put("agents/b.conf",
	    "[agent]\nname = b\ntier = li\xe2\x80\x8bght\n"
	    "trigger = demand\nprompt = hi\n");
	cr_assert_eq(
	    fleet_load(&f, agents, &c, NULL, NULL, &d), 2, "%s", d.text);
	expect(&d, "agents/a.conf", 3,
	    "tier: \"light\xc2\xa0\": its character 6, U+00A0, is not a "
	    "lowercase letter, a digit, '-' or '_': did you mean 'light'?");
	expect(&d, "agents/b.conf", 3,
	    "tier: \"li\xe2\x80\x8bght\": its character 3, U+200B, is not a "
	    "lowercase letter, a digit, '-' or '_': did you mean 'light'?");
	fleet_free(&f);
	config_free(&c);
	diag_free(&d);
}

Test(config, a_path_built_from_the_agents_dir_is_shown_without_dots)
{
	struct config c;
	struct fleet f;
	struct diag d = {0};
	char agents[256], out[PATH_MAX], want[PATH_MAX], target[256], link[256];

	shipped_with_agent(&c, &d, agents, sizeof(agents),
	    "[agent]\nname = a\ntier = gold\ntrigger = demand\nprompt = hi\n");
	snprintf(agents, sizeof(agents), "%s/agents/./..//agents/", dir);
	cr_assert_eq(
	    fleet_load(&f, agents, &c, NULL, NULL, &d), 1, "%s", d.text);
	snprintf(want, sizeof(want), "%s/agents/a.conf:3: tier:", dir);
	cr_assert(strncmp(d.text, want, strlen(want)) == 0, "%s", d.text);
	fleet_free(&f);
	config_free(&c);
	diag_free(&d);

	config_resolve(dir, "agents/../state", out, sizeof(out));
	snprintf(want, sizeof(want), "%s/state", dir);
	cr_assert_str_eq(out, want);
	config_resolve("/", "../x/.", out, sizeof(out));
	cr_assert_str_eq(out, "/x");
	/* A link's ".." is its target's parent: kept, as is one after what
	 * is not there. */
	snprintf(target, sizeof(target), "%s/agents", dir);
	snprintf(link, sizeof(link), "%s/deep/link", dir);
	snprintf(out, sizeof(out), "%s/deep", dir);
	cr_assert_eq(mkdir(out, 0700), 0);
	cr_assert_eq(symlink(target, link), 0);
	config_resolve(dir, "deep/link/../x", out, sizeof(out));
	snprintf(want, sizeof(want), "%s/deep/link/../x", dir);
	cr_assert_str_eq(out, want);
	config_resolve(dir, "gone/../x", out, sizeof(out));
	snprintf(want, sizeof(want), "%s/gone/../x", dir);
	cr_assert_str_eq(out, want);
}
