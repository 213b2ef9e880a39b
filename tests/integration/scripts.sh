#!/usr/bin/env bash
# The scripts a user runs first, scripts/setup and scripts/demo, their
# arguments and what they do with them; and the usage of every script and
# program.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# A dpkg-query that finds nothing installed, and an apt-get and a sudo
# that only note that they were called.
mkdir -p "$TMP/bin"
printf '#!/bin/sh\nexit 1\n' >"$TMP/bin/dpkg-query"
for c in apt-get sudo; do
	printf '#!/bin/sh\necho %s "$@" >>"%s/installs"\n' "$c" "$TMP" >"$TMP/bin/$c"
done
chmod +x "$TMP/bin/"*

setup_refuses() {
	local out rc=0
	out=$(PATH="$TMP/bin:$PATH" "$ROOT/scripts/setup" --sanitiser 2>&1) || rc=$?
	eq "$rc" 2 && has "$out" 'unknown option "--sanitiser"' &&
		eq "$(cat "$TMP/installs" 2>/dev/null)" ""
}
check "setup refuses a mistyped option before it installs anything" setup_refuses

# A source tree configured in place is told, with what undoes it, before
# anything is installed (configure would only say it refuses to build).
setup_configured_in_place() {
	local out rc=0
	mkdir -p "$TMP/tree/scripts"
	cp "$ROOT/scripts/setup" "$TMP/tree/scripts/"
	touch "$TMP/tree/config.status"
	out=$(PATH="$TMP/bin:$PATH" "$TMP/tree/scripts/setup" 2>&1) || rc=$?
	eq "$rc" 1 && has "$out" "is configured in place (its config.status): run make distclean there" &&
		eq "$(cat "$TMP/installs" 2>/dev/null)" ""
}
check "setup tells a source tree configured in place to make distclean" setup_configured_in_place

# Every script prints its usage on -h and --help, and does nothing else;
# an argument scripts/test does not know starts nothing. Bounded: one let
# through would build, or run the whole suite.
helps() {
	local out rc=0
	out=$(timeout 5 "$ROOT/scripts/$1" "$2" 2>"$TMP/help.err") || rc=$?
	eq "$rc" 0 && has "$out" "usage: scripts/$1" && eq "$(cat "$TMP/help.err")" ""
}
for s in setup demo bench test fuzz; do
	check "$s --help prints its usage" helps "$s" --help
	check "$s -h prints its usage" helps "$s" -h
done
# test_refuses BAD [ARG...]: scripts/test ARG... BAD exits 2 at once.
test_refuses() {
	local bad=$1 out rc=0
	shift
	out=$(timeout 5 "$ROOT/scripts/test" "$@" "$bad" 2>&1) || rc=$?
	eq "$rc" 2 && has "$out" "scripts/test: unknown argument \"$bad\"" &&
		has "$out" "usage: scripts/test [--quick]"
}
check "test refuses an argument it does not know" test_refuses --bogus
check "test refuses one after --quick" test_refuses --qiuck --quick

# The programs' own usage: --help names every option of the man page, and
# an option getopt refuses is told by the program's name, as its other
# usage errors, not by argv[0] (a path such as build/ollamax-emu).
help_has_man_options() {
	"$BUILD/$1" --help | python3 -c 'import re, sys
text = sys.stdin.read()
missing = []
for line in open(sys.argv[1]):
    words = line.split()
    if words[:2] != [".It", "Fl"]:
        continue
    for i, w in enumerate(words[1:], 1):
        # ".It Fl s Ar socket , Fl -socket", ".It Fl h , -help"
        if (words[i - 1] == "Fl" or words[i - 1] == "," and w[0] == "-") and \
                re.fullmatch(r"-?[a-zA-Z][-a-zA-Z]*", w):
            opt = "-" + w
            if not re.search(r"(?<![-\w])" + re.escape(opt) + r"(?![-\w])", text) and opt not in missing:
                missing.append(opt)
if missing:
    print("      missing: " + " ".join(missing))
sys.exit(bool(missing))' "$ROOT/man/$2"
}
check "ollamax-emu --help names every option of its page" help_has_man_options ollamax-emu ollamax-emu.1
check "ollamax-supervisor --help names every option of its page" \
	help_has_man_options ollamax-supervisor ollamax-supervisor.8
check "ollamaxctl --help names every option of its page" help_has_man_options ollamaxctl ollamaxctl.1
# refused_by_name PROGRAM WANT ARG...: PROGRAM ARG... exits 2, WANT first.
refused_by_name() {
	local prog=$1 want=$2 out rc=0
	shift 2
	out=$(timeout 10 "$BUILD/$prog" "$@" 2>&1 </dev/null) || rc=$?
	eq "$rc" 2 && eq "$(head -1 <<<"$out")" "$want"
}
# PROGRAM:WHAT ITS ERRORS START WITH:AN OPTION THAT TAKES A VALUE
for p in ollamax-emu:fatal:--catalog ollamax-supervisor::--config ollamaxctl::--config \
	ollamax-loadgen::--url ollamax-workload::--config; do
	IFS=: read -r prog fatal valued <<<"$p"
	fatal=${fatal:+$fatal: }
	check "$prog names an unknown option itself" \
		refused_by_name "$prog" "$prog: ${fatal}unknown option --sped" --sped
	check "$prog names a short one" refused_by_name "$prog" "$prog: ${fatal}unknown option -q" -q
	check "$prog names an option without its value" \
		refused_by_name "$prog" "$prog: $fatal$valued needs a value" "$valued"
done
check "ollamax-emu names an ambiguous option, and what it may be" \
	refused_by_name ollamax-emu \
		"ollamax-emu: fatal: --st is ambiguous: --stall-rate, --stall-ms" --st 1
check "ollamax-emu names a value given to an option that takes none" \
	refused_by_name ollamax-emu "ollamax-emu: fatal: --help takes no value" --help=1

# A duration --for cannot read is refused before anything is built or run,
# and one it reads ends the demo. Bounded: one let through would run until
# interrupted.
demo_refuses() {
	local out rc=0
	out=$(timeout -s INT 60 "$ROOT/scripts/demo" --emu --for "$@" 2>&1) || rc=$?
	eq "$rc" 2 && has "$out" "usage: scripts/demo [--emu] [--for DURATION]"
}
check "demo refuses --for without a duration" demo_refuses
check "demo refuses --for 1m30x" demo_refuses 1m30x
check "demo refuses --for 5ms" demo_refuses 5ms
check "demo refuses --for 0s, which would be no end" demo_refuses 0s
# OLLAMA_HOST is read as Ollama reads it; a port it cannot be is named.
demo_refuses_host() {
	local out rc=0
	out=$(OLLAMA_HOST=$1 timeout -s INT 60 "$ROOT/scripts/demo" --for 1s 2>&1) || rc=$?
	eq "$rc" 2 && has "$out" "$2"
}
check "demo refuses OLLAMA_HOST=localhost:ollama" demo_refuses_host \
	localhost:ollama "OLLAMA_HOST=localhost:ollama: the port is not a number up to 65535"
check "demo refuses OLLAMA_HOST=ftp://localhost" demo_refuses_host \
	ftp://localhost "OLLAMA_HOST=ftp://localhost: not [http[s]://]HOST[:PORT][/PATH]"
check "demo refuses OLLAMA_HOST with a '?' in its path" demo_refuses_host \
	"localhost/api?x" "OLLAMA_HOST=localhost/api?x: its path has a blank, '?' or '#'"
# The demo runs what scripts/setup built, in $OLLAMAX_BUILD: here a build
# dir whose make does nothing and whose programs note that they ran.
mkdir -p "$TMP/b"
printf 'all:\n' >"$TMP/b/Makefile"
for p in ollamax-emu ollamax-supervisor ollamaxctl; do
	printf '#!/bin/sh\necho %s >>"%s/ran"\nexec "%s/%s" "$@"\n' "$p" "$TMP" "$BUILD" "$p" >"$TMP/b/$p"
	chmod +x "$TMP/b/$p"
done
# An "Ollama" where OLLAMA_HOST says, so that the checks neither use nor
# depend on one that may answer on 127.0.0.1:11434.
start_emu ollama
export OLLAMA_HOST=${URL_ollama#http://}
watch_python "$TMP/py" "$TMP/py.log"
demo_for_3s() {
	local rc=0
	rm -f "$TMP/ran"
	out=$(OLLAMAX_BUILD="$TMP/b" PATH="$TMP/py:$PATH" timeout -s INT 120 "$ROOT/scripts/demo" "$@" --for 0m3s 2>&1) || rc=$?
	eq "$rc" 0 && has "$out" "-- up" || { echo "$out" | tail -5; return 1; }
	case "$out" in *"integer expression"*) echo "$out" | tail -5; return 1 ;; esac
}
demo_ran() {
	eq "$(sort -u "$TMP/ran" | tr '\n' ' ')" "$1"
}
not() { ! "$@"; }
# The broker asks what is loaded at its start.
asked_by_the_broker() {
	curl -s "$URL_ollama/emu/stats" | python3 -c 'import json,sys
sys.exit(not any(p.startswith("/api/") for p in json.load(sys.stdin)["by_endpoint"]))'
}
# With --emu, OLLAMA_HOST is not read: one it would refuse does not stop it.
emu_demo_for_3s() { OLLAMA_HOST=localhost:ollama demo_for_3s --emu; }
check "demo --emu --for 0m3s stops by itself, whatever OLLAMA_HOST says" emu_demo_for_3s
check "demo --emu leaves the Ollama that answers alone" not asked_by_the_broker
check "demo --emu says it uses the bundled ollamax-emu" has "$out" "Using the bundled ollamax-emu on http://127.0.0.1:"
check "demo --emu runs the programs of \$OLLAMAX_BUILD, the emulator among them" \
	demo_ran "ollamax-emu ollamax-supervisor ollamaxctl "
# Ctrl-C ends the demo: in its Python steps too, once they are over, not
# with a KeyboardInterrupt and its traceback.
check "the demo's Python steps start with SIGINT ignored" \
	python_ignored_sigint "$TMP/py.log" scripts/demo 2
check "demo --for 0m3s uses the Ollama that answers where OLLAMA_HOST says" demo_for_3s
check "demo says which Ollama it uses" has "$out" "Ollama answers on $URL_ollama: using it"
check "demo leaves the emulator out when Ollama answers" \
	demo_ran "ollamax-supervisor ollamaxctl "
check "demo's broker asked that Ollama" asked_by_the_broker
nothing_lacking() { case "$out" in *" lacks "*) grep " lacks " <<<"$out"; return 1 ;; esac; }
check "and finds the tiers' models there, saying nothing of them" nothing_lacking
# A path (an Ollama behind a proxy's prefix) is kept, as Ollama keeps it:
# under this one no Ollama answers.
prefixed_demo_for_3s() { OLLAMA_HOST=$OLLAMA_HOST/under/a/prefix/ demo_for_3s; }
check "demo takes OLLAMA_HOST with a path" prefixed_demo_for_3s
check "and looks for Ollama under that path" \
	has "$out" "No Ollama on $URL_ollama/under/a/prefix: using the bundled ollamax-emu"
# An Ollama without the tiers' models: the demo names them before their
# agents' runs fail one by one in the log.
python3 - "$ROOT/conf/emu-models.ini" "$TMP/one-model.ini" <<'PY'
import re, sys
sections = re.split(r"(?m)^(?=\[)", open(sys.argv[1]).read())
open(sys.argv[2], "w").write("".join(s for s in sections if s.startswith("[qwen2.5-coder:7b]")))
PY
start_emu sparse --catalog "$TMP/one-model.ini"
sparse_demo() { OLLAMA_HOST=${URL_sparse#http://} demo_for_3s; }
check "demo against an Ollama that lacks models runs" sparse_demo
check "and names them, and what to do" has "$out" \
	"Ollama on $URL_sparse lacks deepseek-r1:8b, tinyllama: the agents of their tiers fall back down the tiers' chains or fail; ollama pull them, or run scripts/demo --emu."

finish
