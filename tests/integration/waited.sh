#!/usr/bin/env bash
# `ollamaxctl run -w` holds one of the supervisor's 128 places for waited
# runs until its run is over: the next is refused, said so. A client that
# goes (killed, or its own -t run out) gives its place back, though its
# run goes on.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# The backend holds every generate at its gate: no run ends.
gate_fleet 1h 1h 1h a:normal b:normal c:normal d:normal
check "the supervisor is up" wait_log "ready:"
clients=()
for i in $(seq 1 128); do
	agent=$(printf 'abc' | cut -c $((i % 3 + 1)))
	"$CTL" -c "$TMP/ollamax.conf" run -w -t 10m "$agent" "message $i" >/dev/null 2>&1 &
	clients+=("$!")
	PIDS+=("$!")
done
# Three runs at the gate, the others in their agents' inboxes: 128
# clients take some seconds to start under the sanitizers.
all_reach() {
	for _ in $(seq 1 6); do
		status_until 's["agents"]["inbox"] == 125' >/dev/null && return 0
	done
	status_until 's["agents"]["inbox"] == 125'
}
check "128 waited runs reach their workers" all_reach
check "a 129th is refused, said so" \
	said_so "run: 128 runs are waited on already: run it without -w, or later" run -w -t 5s d extra
# The shell's word of each one killed is no news.
{
	kill -KILL "${clients[@]}" || :
	for c in "${clients[@]}"; do wait "$c" || :; done
} 2>/dev/null
# Taken now: held at the gate, it gives up at its own -t.
place_given_back() {
	local out rc=0
	out=$("$CTL" -c "$TMP/ollamax.conf" run -w -t 2s d after 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && has "$out" "no answer" && ! has "$out" "waited on already" >/dev/null
}
check "the clients killed, their places are given back" place_given_back
check "their runs stay queued for their agents" status_until 's["agents"]["inbox"] >= 124'
touch "$MODE.open"
check "the supervisor stops cleanly" stopped
finish
