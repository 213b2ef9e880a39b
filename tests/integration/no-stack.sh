#!/usr/bin/env bash
# Agents whose tasks a worker cannot create (their stacks not mapped: out
# of memory, or of the mappings a process may hold) do not run, and say
# so: failed in the agents list, told in the log, started by a spawn once
# it can be. A restart or respawn that cannot create its new task leaves
# the agent running as it was.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# Dealt round the 2 workers in file order: a1, a3, a5 on worker 0 and a2,
# a4, a6 on worker 1. A library preloaded into the fleet maps the first 2
# task stacks of each process, and fails the others while $TMP/nostack
# exists: a5 and a6 do not start.
light_fleet 6
touch "$TMP/nostack"
NOSTACK_WHILE="$TMP/nostack" NOSTACK_AFTER=2 LD_PRELOAD="$BUILD/tests/nostack.so" \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" start_fleet
check "the fleet comes up with 4 agents running" status_until 's["agents"]["running"] == 4'

# states: each agent's "name state", as ollamaxctl agents shows them.
states() {
	"$CTL" -c "$TMP/ollamax.conf" --json agents | python3 -c 'import json,sys
print(" ".join(a["name"] + ":" + a["state"] for a in json.load(sys.stdin)["agents"]))'
}
# A worker's ready (which names the agents not started) and its first
# report are separate requests, which the supervisor may take in either
# order: its books may show the report's alone, for a moment.
states_are() {
	local want=$1 got
	for _ in $(seq 1 100); do
		got=$(states)
		[ "$got" = "$want" ] && return 0
		sleep 0.05
	done
	eq "$got" "$want"
}
check "the agents not started show as failed, the others as running" \
	states_are "a1:running a2:running a3:running a4:running a5:failed a6:failed"
check "status counts them among the agents, not among the running" \
	status_until 's["agents"]["total"] == 6 and s["agents"]["running"] == 4'
check "each worker tells which it could not start" sh -c \
	"grep -q 'worker 0 could not start 1 agent (its log says why): a5; ollamaxctl spawn, or a reload, starts it again' '$TMP/sup.log' &&
	 grep -q 'worker 1 could not start 1 agent (its log says why): a6; ollamaxctl spawn, or a reload, starts it again' '$TMP/sup.log'"
check "and why" grep -q "a5: cannot create its task: Cannot allocate memory" "$TMP/sup.log"
check "a run of one not started is refused" said_so "agent a5 is not running" run -w -t 10s a5 hi
check "the others answer" sh -c "'$CTL' -c '$TMP/ollamax.conf' run -w -t 1m a1 hi >/dev/null"

# A restart, and a respawn at a reload, that cannot create their tasks.
check "a restart without a new task fails, said so" \
	said_so "worker 0 cannot create a new task for a1 (see its log): it runs as it was" restart a1
sed -i 's/^num_predict = 2$/num_predict = 3/' "$TMP/agents/a2.conf"
# The reload starts a5 and a6 again too, and fails to.
"$CTL" -c "$TMP/ollamax.conf" reload >/dev/null
check "a reload whose respawn cannot create its task says so" \
	wait_log "reload: worker 1 cannot create the task of a2 (see its log): it runs as it was"
check "and so of a spawn of one not started" \
	wait_log "reload: worker 0 cannot create the task of a5 (see its log)$"
check "both run as they were, and answer" sh -c \
	"'$CTL' -c '$TMP/ollamax.conf' run -w -t 1m a1 hi >/dev/null && '$CTL' -c '$TMP/ollamax.conf' run -w -t 1m a2 hi >/dev/null"
check "still listed as running" eq "$(states)" "a1:running a2:running a3:running a4:running a5:failed a6:failed"

# Stacks to be had again: a spawn starts the failed ones.
rm "$TMP/nostack"
check "a spawn starts a failed agent" sh -c "'$CTL' -c '$TMP/ollamax.conf' spawn a5 >/dev/null"
check "which answers" sh -c "'$CTL' -c '$TMP/ollamax.conf' run -w -t 1m a5 hi >/dev/null"
check "and is listed as running" eq "$(states)" "a1:running a2:running a3:running a4:running a5:running a6:failed"
check "the supervisor stops cleanly" stopped
finish
