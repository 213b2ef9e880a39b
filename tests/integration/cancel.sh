#!/usr/bin/env bash
# An agent stopped while its inference runs: the broker drops the request
# and closes its stream, so that the backend's slot frees at once rather
# than when an answer nobody takes is over.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# deepseek-r1:8b at --speed 2 answers in about 10 s: time to stop it.
start_emu emu --speed 2 --parallel 2 --vram-mb 4096
fleet_conf "$URL_emu" <<CONF
[tier.reasoning]
model = deepseek-r1:8b
CONF
cat >"$TMP/agents/thinker.conf" <<'AGENT'
[agent]
name = thinker
tier = reasoning
trigger = demand
prompt = Think about {{input}}.
AGENT
start_fleet
check "the supervisor is up" wait_log "ready:"

# streams_open N [SECONDS]: the emulator has N answers streaming, within
# SECONDS (10).
streams_open() {
	for _ in $(seq 1 $((${2:-10} * 20))); do
		[ "$(curl -s "$URL_emu/emu/stats" | python3 -c 'import json,sys
print(json.load(sys.stdin)["open_streams"])')" = "$1" ] && return 0
		sleep 0.05
	done
	echo "      open streams: not $1"
	return 1
}
"$CTL" -c "$TMP/ollamax.conf" run thinker "queues"
check "its run streams from the backend" streams_open 1
check "the agent is killed" "$CTL" -c "$TMP/ollamax.conf" kill thinker
check "the backend's stream closes at once, not when its answer would have ended" streams_open 0 4
check "the broker says it cancelled the request" \
	wait_log "thinker: its agent was stopped: request cancelled while it ran"
check "the supervisor stops cleanly on SIGINT" stopped INT
finish
