#!/usr/bin/env bash
# A worker's process is named by its number and its start time: a number
# that another process takes again once the worker's process has ended
# does not pass for that process, nor the process that had it before for
# the one that has it now. Run in a user and pid namespace of its own,
# where the test chooses the number the next process gets
# (/proc/sys/kernel/ns_last_pid); once with the broker watching processes
# through pidfds, once with pidfd_open failing (tests/nopidfd.so), as on a
# kernel without them, where it looks at them each second. Processes of
# `sleep` stand for the workers' (numbers above the fleet's own, for which
# no process of the supervisor's says hello).
set -euo pipefail
if [ "${PID_REUSE_NS:-}" != yes ]; then
	PID_REUSE_NS=yes exec unshare --map-root-user --pid --fork --mount-proc "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"

# tinyllama answers at length unless num_predict stops it: 700 tokens take
# 5 s, a request that runs while the test acts; 8, a few tens of ms.
awk '/^\[/ { tiny = $0 == "[tinyllama:latest]" }
	tiny && /^typical_output_tokens/ { $0 = "typical_output_tokens = 4000" } 1' \
	"$ROOT/conf/emu-models.ini" >"$TMP/long-answers.ini"
start_emu emu --speed 1 --parallel 2 --vram-mb 4096 --catalog "$TMP/long-answers.ini"
fleet_conf "$URL_emu" <<CONF
[tier.light]
model = tinyllama
CONF

# stranger_at NUMBER STARTED: a process of that number, in $stranger, that
# started after STARTED (a few tries: the fleet's threads take numbers
# too). Processes started within one tick would pass for one.
stranger_at() {
	local _
	for _ in 1 2 3 4 5 6 7 8; do
		echo $(($1 - 1)) >/proc/sys/kernel/ns_last_pid
		sleep 120 &
		stranger=$!
		PIDS+=("$stranger")
		[ "$stranger" = "$1" ] && [ "$(started_of "$stranger")" != "$2" ] && return 0
		process_ended "$stranger"
	done
	echo "      could not have a process of number $1"
	return 1
}
# worker_like: a process that stands for a worker's, in $proc and its start
# time in $proc_started.
worker_like() {
	sleep 120 &
	proc=$!
	PIDS+=("$proc")
	proc_started=$(started_of "$proc")
}
# served_then_ended MODE WORKER: a process that stands for worker WORKER's
# says hello, is served, and ends; it in $old, its start time in
# $old_started.
served_then_ended() {
	worker_like
	old=$proc old_started=$proc_started
	check "$1: worker $2's process says hello and is served" \
		served "$(infer_as "$2" "$old" "$old_started" 1 -H)"
	process_ended "$old"
}
# process_ended PID: a process the test started ends, reaped.
process_ended() {
	kill "$1"
	wait "$1" 2>/dev/null || :
	forget_pid "$1"
}
# long_request WORKER PID STARTED SERIAL OUT [-H]: a request of 5 s in the
# background, its answer in OUT once over.
long_request() {
	infer_as "$1" "$2" "$3" "$4" -n 700 ${6:+"$6"} >"$5" &
	PIDS+=("$!")
	long=$!
}
# answer_of OUT: the long request's answer, once over (10 s at most).
answer_of() {
	local _
	for _ in $(seq 1 200); do
		gone "$long" && break
		sleep 0.05
	done
	cat "$1"
}
not_said() { ! grep -F -- "$1" "$TMP/sup.log"; }

# cases MODE FIRST_WORKER: each case with a worker number of its own.
cases() {
	local mode=$1 w=$2 old old_started new new_started

	# A worker's process ends and the next one says hello before the end
	# is seen (the look each second, or the order of two frames); then a
	# stranger takes the number of the one that ended.
	served_then_ended "$mode" "$w"
	worker_like
	new=$proc new_started=$proc_started
	check "$mode: its next process says hello and is served" \
		served "$(infer_as "$w" "$new" "$new_started" 1 -H)"
	stranger_at "$old" "$old_started"
	check "$mode: a request of the process that ended, its number another's, is refused" \
		eq "$(infer_as "$w" "$old" "$old_started" 2)" "$REFUSED_ENDED"
	process_ended "$stranger"
	# The hello of the process that ended comes late, behind its next
	# one's: it is that process's last word, and the next one's request,
	# running, runs on.
	long_request "$w" "$new" "$new_started" 2 "$TMP/late-hello"
	check "$mode: the next process's request runs" streams_open 1
	check "$mode: a late hello of the process that ended, and its request, are refused" \
		eq "$(infer_as "$w" "$old" "$old_started" 3 -H)" "$REFUSED_ENDED"
	check "$mode: while the next process's request, running, is served to its end" \
		served "$(answer_of "$TMP/late-hello")"
	process_ended "$new"

	# The next process of a worker takes the number of the one before, and
	# its requests come before its hello (a hello lost, or overtaken).
	w=$((w + 1))
	served_then_ended "$mode" "$w"
	stranger_at "$old" "$old_started"
	new_started=$(started_of "$stranger")
	check "$mode: the next process of that number is served before its hello" \
		served "$(infer_as "$w" "$old" "$new_started" 1)"
	# Its id is the one answered for the process before: not that answer.
	check "$mode: with an answer of its own, not the one the process before had" \
		not_said "request $(((old << 32) | 1)) sent again once answered"
	check "$mode: and after its hello" served "$(infer_as "$w" "$old" "$new_started" 2 -H)"
	check "$mode: while the one before stays refused" \
		eq "$(infer_as "$w" "$old" "$old_started" 3)" "$REFUSED_ENDED"
	process_ended "$stranger"

	# A process watched ends, and a stranger takes its number at once,
	# within the second between two looks.
	w=$((w + 1))
	served_then_ended "$mode" "$w"
	stranger_at "$old" "$old_started"
	check "$mode: its end is seen though its number is another's: its requests are refused" \
		refused_soon "$w" "$old" "$old_started"
	process_ended "$stranger"

	# A process watched ends, and the worker's next one sends a request
	# before its hello, before the end is seen: the next one is watched
	# from then, so that its end drops its request.
	w=$((w + 1))
	served_then_ended "$mode" "$w"
	worker_like
	long_request "$w" "$proc" "$proc_started" 1 "$TMP/unwatched"
	# Streaming, it has been taken, and its process with it.
	check "$mode: a request of the next one, come before its hello, runs" streams_open 1
	process_ended "$proc"
	check "$mode: the next one's request, come before its hello, is dropped as it ends" \
		eq "$(answer_of "$TMP/unwatched")" "failed: its worker ended"
}

start_fleet
check "the supervisor is up" wait_log "ready:"
cases pidfd 9
check "the supervisor stops cleanly" stopped

mv "$TMP/sup.log" "$TMP/sup-pidfd.log"
# The sanitizers' runtime comes after the shim in the list of libraries.
LD_PRELOAD="$BUILD/tests/nopidfd.so" \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" start_fleet
check "a supervisor whose broker has no pidfds is up" wait_log "ready:"
check "its broker looks at processes each second" \
	wait_log "pidfd_open: Function not implemented: workers' processes are looked at each second"
cases "each second" 19
check "the supervisor stops cleanly" stopped
finish
