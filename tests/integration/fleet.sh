#!/usr/bin/env bash
# The main job: the shipped config and the shipped fleet of 131 agents, as
# the quick start runs them, against the emulator of the reference box.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_emu emu --speed inf --parallel 2 --vram-mb 4096
# As scripts/demo points it: at this backend, and at private dirs.
shipped_conf "$URL_emu" "$ROOT/agents" ""
SUP="$BUILD/ollamax-supervisor"
CTL="$BUILD/ollamaxctl"

check "check accepts the shipped config and fleet" \
	has "$("$SUP" -c "$TMP/ollamax.conf" check 2>&1)" "ok: 3 tiers, 3 models, 131 agents"
# The examples of ollamax-agent(5), each a file dropped into the agents
# directory as it says, join the shipped fleet: none takes a name of it.
mkdir -p "$TMP/with-examples"
cp "$ROOT"/agents/*.conf "$TMP/with-examples/"
awk -v dir="$TMP/with-examples" '/^\.Sh /{ on = /EXAMPLES/ } on && /^\.Ed/{ inb = 0 }
	on && inb { print >(dir "/example" n ".conf") } on && /^\.Bd -literal/{ inb = 1; n++ }' \
	"$ROOT/man/ollamax-agent.5"
sed "s|^agents_dir = .*|agents_dir = $TMP/with-examples|" "$TMP/ollamax.conf" >"$TMP/examples.conf"
check "the examples of ollamax-agent(5) join the shipped fleet" \
	has "$("$SUP" -c "$TMP/examples.conf" check 2>&1)" "ok: 3 tiers, 3 models, 134 agents"
"$SUP" -c "$TMP/ollamax.conf" start 2>"$TMP/sup.log" &
sup_pid=$!
PIDS+=("$sup_pid")
check "the supervisor is ready with the shipped fleet" wait_log "ready: broker and .* workers in .*, 131 agents"
check "every agent runs" status_until 's["agents"]["running"] == 131 and s["agents"]["total"] == 131'
# The first loads are the preloads, the largest first: by the resident set
# later it would not be known, as a periodic agent's first run may come
# within the first second and switch to its model.
preloads_first() {
	local first
	wait_log "loaded tinyllama" || { echo "      tinyllama not loaded"; return 1; }
	first=$(grep -o 'ollamax-broker0: info: loading [^ ]*' "$TMP/sup.log" | head -2 | awk '{ print $NF }' | tr '\n' ' ')
	eq "$first" "qwen2.5-coder:7b tinyllama "
}
check "the preloaded models come in, before anything else" preloads_first
# An agent of each tier answers through the broker, with its tier's model,
# and its output gets the answer.
ran() {
	local out
	out=$("$CTL" -c "$TMP/ollamax.conf" --json run -w -t 2m "$1" "a check of the fleet" 2>&1) &&
		python3 -c 'import json,sys; a = json.load(sys.stdin); sys.exit(0 if a["model"] == sys.argv[1] and a["eval_tokens"] > 0 else 1)' "$2" <<<"$out" ||
		{ echo "      $out"; return 1; }
	case $3 in
	log) grep -q "$1: run 1: $2 answered" "$TMP/sup.log" ;;
	*) grep -q "^--- $1 run 1" "$TMP/state/$3" ;;
	esac
}
check "a reasoning agent answers with deepseek-r1:8b, into its file" \
	ran vendor-evaluation-analyst deepseek-r1:8b vendor-evaluations.md
check "a coding agent answers with qwen2.5-coder:7b, into the log" \
	ran hotfix-backport-writer qwen2.5-coder:7b log
check "a light agent answers with tinyllama, into the log" \
	ran on-call-handoff-briefer tinyllama log
check "the supervisor stops cleanly" stopped
finish
