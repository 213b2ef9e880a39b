#!/usr/bin/env bash
# A worker that crashes over and over is left FAILED, and its agents with
# it: they count as stopped, spawn or reload starts them on a running
# worker, and kill has nothing to ask of the failed one.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

light_fleet 4
start_fleet
check "the fleet comes up, 2 agents a worker" status_until 's["agents"]["running"] == 4'
# The agents of worker 1, as ollamaxctl agents places them.
on_worker() {
	"$CTL" -c "$TMP/ollamax.conf" --json agents | python3 -c 'import json,sys
print(" ".join(sorted(a["name"] for a in json.load(sys.stdin)["agents"] if a["worker"] == int(sys.argv[1]) and a["state"] == "running")))' "$1"
}
doomed=$(on_worker 1)
check "worker 1 runs two of them" test "$(echo "$doomed" | wc -w)" -eq 2
# deaths_of WORKER: how many times the supervisor has logged it killed.
deaths_of() { grep -c "worker $1 died of signal 9$" "$TMP/sup.log" || true; }
# crash_loop WORKER N: N crashes within the minute, each once it runs
# again (its restarts wait 0.1 s, then twice as long each time). It ends
# as the supervisor logs the last death, which it does as it puts the
# worker in its backoff: a look at the status would take a good part of
# that backoff on a loaded machine.
crash_loop() {
	local pid deaths
	for crash in $(seq 1 "$2"); do
		pid=
		for _ in $(seq 1 200); do
			pid=$(worker_pid "$1")
			[ -n "$pid" ] && break
			sleep 0.05
		done
		[ -n "$pid" ] || { echo "      worker $1 not running before crash $crash"; return 1; }
		deaths=$(deaths_of "$1")
		kill -KILL "$pid"
		# Until the supervisor has seen it die.
		for _ in $(seq 1 500); do [ "$(deaths_of "$1")" -gt "$deaths" ] && break; sleep 0.01; done
	done
}
check "worker 1 crashes six times" crash_loop 1 6
check "and is left FAILED" wait_log "worker 1 crashed 6 times within 60s: left FAILED"
check "its agents stopped with it, said so" \
	wait_log "worker 1's 2 agents stopped with it: ollamaxctl spawn, or reload, starts them on a running worker"
# running is what the workers report, and a failed worker reports none:
# total is the supervisor's own count of the agents it has placed.
check "status counts them stopped" \
	status_until 's["agents"]["running"] == 2 and s["agents"]["total"] == 2'
first=${doomed%% *}
second=${doomed##* }
said() { # WANT_RC WANT_TEXT ARGS...
	local want_rc=$1 want=$2 out rc=0
	shift 2
	out=$("$CTL" -c "$TMP/ollamax.conf" "$@" 2>&1) || rc=$?
	[ "$rc" -eq "$want_rc" ] && has "$out" "$want"
}
check "a run of one is refused: it is not running" said 1 "agent $first is not running" run "$first" hi
check "spawn starts it again, on worker 0" said 0 "" spawn "$first"
check "where it answers" said 0 "" run -w -t 2m "$first" hi
check "ollamaxctl agents shows it on worker 0" sh -c "echo ' $(on_worker 0) ' | grep -q ' $first '"
check "reload starts the other one there too" \
	said 0 "reload: 1 started, 0 stopped, 0 changed, 0 problems" reload
check "and all four run" status_until 's["agents"]["running"] == 4'
check "the other answers too" said 0 "" run -w -t 2m "$second" hi
# A reload while the worker of a changed agent waits to start again
# cannot change it: that is a problem, told with the file and the agent.
# After its fifth crash the worker waits 1.6 s: the reload comes at once,
# and what it says shows the worker was waiting.
sed -i 's/^prompt = Say {{input}}$/prompt = Say {{input}} now/' "$TMP/agents/$first.conf"
check "worker 0 crashes five times" crash_loop 0 5
check "a reload meanwhile counts the change it cannot make as a problem" \
	said 0 "reload: 0 started, 0 stopped, 0 changed, 1 problem: $TMP/agents/$first.conf:" reload
check "and names the file and the agent, whose worker waits to start again" \
	grep -q "reload: $TMP/agents/$first.conf:[0-9]*: agent $first not changed: worker 0 is backoff: try again" "$TMP/sup.log"
changed_once_back() {
	for _ in $(seq 1 200); do
		[ -n "$(worker_pid 0)" ] && break
		sleep 0.05
	done
	said 0 "reload: 0 started, 0 stopped, 1 changed, 0 problems" reload
}
check "once the worker is back, a reload changes it" changed_once_back
check "the supervisor stops cleanly" stopped

# A worker that cannot be forked for a moment (out of processes or memory,
# as after an OOM kill) is started again after the backoff, as after a
# crash, rather than left FAILED at once. A library preloaded into the
# supervisor makes fork fail while $TMP/nofork exists.
mv "$TMP/sup.log" "$TMP/sup-before-nofork.log"
# The sanitizers' runtime comes after the shim in the list of libraries.
NOFORK_WHILE="$TMP/nofork" LD_PRELOAD="$BUILD/tests/nofork.so" \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" start_fleet
check "a supervisor that forks through the shim is up" status_until 's["agents"]["running"] == 4'
forked_again() {
	local pid
	pid=$(worker_pid 1)
	[ -n "$pid" ] || { echo "      no worker 1"; return 1; }
	touch "$TMP/nofork"
	kill -KILL "$pid"
	wait_log "cannot start worker 1: Resource temporarily unavailable" || { rm -f "$TMP/nofork"; return 1; }
	rm -f "$TMP/nofork"
	status_until 's["agents"]["running"] == 4'
}
check "a worker that cannot be forked for a moment starts again, its agents with it" forked_again
check "and is not left FAILED" sh -c "! grep 'left FAILED' '$TMP/sup.log'"
check "that supervisor stops cleanly" stopped
# The same for a worker that had run 30 s, long enough for its crash to
# start the backoff afresh: the forks that fail then back off in turn,
# rather than each start it afresh, 100 ms apart, to FAILED in half a
# second. A fleet of its own: the crashes of the one before would count.
mv "$TMP/sup.log" "$TMP/sup-young-nofork.log"
NOFORK_WHILE="$TMP/nofork" LD_PRELOAD="$BUILD/tests/nofork.so" \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" start_fleet
check "another supervisor that forks through the shim is up" status_until 's["agents"]["running"] == 4'
forked_again_old() {
	local pid up tries
	pid=$(worker_pid 1)
	[ -n "$pid" ] || { echo "      no worker 1"; return 1; }
	up=$(ps -o etimes= -p "$pid" | tr -d ' ')
	[ "$up" -ge 31 ] || sleep $((31 - up))
	touch "$TMP/nofork"
	kill -KILL "$pid"
	# Forks fail for 1.2 s, long enough for forks 100 ms apart to reach
	# FAILED, and on, on a slow machine, until the third has failed (the
	# first at 0.1 s, then 0.2 and 0.4 s apart as they back off).
	sleep 1.2
	for _ in $(seq 1 200); do
		tries=$(grep -c "cannot start worker 1: Resource temporarily unavailable" "$TMP/sup.log") || true
		[ "$tries" -ge 3 ] && break
		sleep 0.05
	done
	rm -f "$TMP/nofork"
	[ "$tries" -ge 3 ] || { echo "      only $tries failed forks in all"; return 1; }
	status_until 's["agents"]["running"] == 4'
}
check "a worker up for 30 s that cannot be forked for a second starts again" forked_again_old
check "and is not left FAILED either" sh -c "! grep 'left FAILED' '$TMP/sup.log'"
check "that supervisor stops cleanly" stopped
finish
