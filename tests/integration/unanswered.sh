#!/usr/bin/env bash
# A spawn whose worker answers after the supervisor has stopped waiting:
# the agent may run there. It is neither started a second time elsewhere
# nor left beyond spawn and kill: its next spawn or kill goes to that
# worker and settles it, and a new process of that worker settles it too.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

light_fleet 4
mkdir "$TMP/extra"
light_agent held "$TMP/extra/held.conf"

# A worker held between starting the agent and answering, for as long as
# $TMP/hold exists: a library preloaded into the fleet holds the write of
# the log line the worker writes in between.
# The sanitizers' runtime comes after the shim in the list of libraries.
HOLD_WHILE="$TMP/hold" HOLD_WRITE_OF=" held: started" LD_PRELOAD="$BUILD/tests/hold.so" \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" start_fleet
check "the fleet comes up, 2 agents a worker" status_until 's["agents"]["running"] == 4'

# agent_is NAME: NAME's "worker state", as ollamaxctl agents shows it.
agent_is() {
	"$CTL" -c "$TMP/ollamax.conf" --json agents | python3 -c 'import json,sys
for a in json.load(sys.stdin)["agents"]:
    if a["name"] == sys.argv[1]:
        print(a["worker"], a["state"])' "$1"
}
said() { # WANT_RC WANT_TEXT ARGS...
	local want_rc=$1 want=$2 out rc=0
	shift 2
	out=$("$CTL" -c "$TMP/ollamax.conf" "$@" 2>&1) || rc=$?
	[ "$rc" -eq "$want_rc" ] || echo "      exit $rc: $out"
	[ "$rc" -eq "$want_rc" ] && has "$out" "$want"
}
starts() { grep -c " held: started" "$TMP/sup.log" || true; }
# unanswered_spawn N: a spawn of held that its worker carries out and
# answers once the supervisor has given up on it, the Nth start of held.
unanswered_spawn() {
	touch "$TMP/hold"
	said 1 "may run there or not; its next spawn or kill goes to worker" spawn -f "$TMP/extra/held.conf" ||
		{ rm -f "$TMP/hold"; return 1; }
	rm -f "$TMP/hold"
	count_reaches "$1" "starts of held" starts
}

check "a spawn answered too late is told so" unanswered_spawn 1
held_on=$(agent_is held)
worker=${held_on%% *}
check "ollamaxctl agents says it is not known whether it runs" eq "$held_on" "$worker unknown"
check "and status counts it placed, as its worker counts it running" \
	status_until 's["agents"]["total"] == 5 and s["agents"]["running"] == 5'
check "a run of it is refused, and says how to settle it" \
	said 1 "whether agent held runs is not known: its spawn went unanswered by worker $worker" run held hi
check "spawning it again settles it" said 0 "" spawn held
check "on the worker it runs on" eq "$(agent_is held)" "$worker running"
check "which left it running, not started twice" wait_log " held: runs already as asked"
check "so it started once in all" eq "$(starts)" 1
check "it answers" said 0 "" run -w -t 2m held hi
check "and is killed" said 0 "" kill held

check "again a spawn answered too late" unanswered_spawn 2
worker=$(agent_is held)
worker=${worker%% *}
check "a kill settles it" said 0 "" kill held
check "from its worker" wait_log " held: killed"
check "it is stopped" eq "$(agent_is held)" "$worker stopped"
check "spawned then, it starts" said 0 "" spawn held
check "once more in all" eq "$(starts)" 3
check "and answers" said 0 "" run -w -t 2m held hi
check "and is killed" said 0 "" kill held

check "once more a spawn answered too late" unanswered_spawn 4
worker=$(agent_is held)
worker=${worker%% *}
pid=$(worker_pid "$worker")
check "its worker is killed" kill -KILL "$pid"
back_again() {
	for _ in $(seq 1 200); do
		local now
		now=$(worker_pid "$worker")
		[ -n "$now" ] && [ "$now" != "$pid" ] && break
		sleep 0.05
	done
	status_until 's["agents"]["running"] == 4'
}
check "and comes back with its own agents" back_again
check "not held, as the new process has never run it" eq "$(agent_is held)" "$worker stopped"
check "nor started again" eq "$(starts)" 4
check "spawned, it starts" said 0 "" spawn held
check "and answers" said 0 "" run -w -t 2m held hi
check "the supervisor stops cleanly" stopped
finish
