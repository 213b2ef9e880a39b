#!/usr/bin/env bash
# A worker's process is named by its number and its start time: a number
# that another process takes again once the worker's process has ended
# does not pass for that process, nor the process that had it before for
# the one that has it now. Run in a user and pid namespace of its own,
# where the test chooses the number the next process gets
# (/proc/sys/kernel/ns_last_pid); once with the broker watching processes
# through pidfds, once with pidfd_open failing (tests/nopidfd.so), as on a
# kernel without them, where it looks at them each second.
set -euo pipefail
if [ "${PID_REUSE_NS:-}" != yes ]; then
	PID_REUSE_NS=yes exec unshare --map-root-user --pid --fork --mount-proc "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"

start_emu emu --speed inf --parallel 2 --vram-mb 4096
fleet_conf "$URL_emu" <<CONF
[tier.light]
model = tinyllama
CONF

# started_of PID: when PID started, as the broker reads it.
started_of() { awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat"; }
# stranger_at NUMBER: a process of that number, in $stranger (a few tries:
# the fleet's threads take numbers too).
stranger_at() {
	local _
	for _ in 1 2 3 4 5 6 7 8; do
		echo $(($1 - 1)) >/proc/sys/kernel/ns_last_pid
		sleep 120 &
		stranger=$!
		PIDS+=("$stranger")
		[ "$stranger" = "$1" ] && return 0
		kill "$stranger"
		wait "$stranger" 2>/dev/null || :
		forget_pid "$stranger"
	done
	echo "      could not have a process of number $1"
	return 1
}
# process_ended PID: a process the test started ends, reaped.
process_ended() {
	kill "$1"
	wait "$1" 2>/dev/null || :
	forget_pid "$1"
}
# ask WORKER PID STARTED SERIAL [-H]: the broker's answer to a request of
# worker WORKER's process PID started at STARTED, after a hello with -H.
# Worker numbers above the fleet's own: no process of the supervisor's
# says hello for them.
ask() {
	"$BUILD/tests/infer_once" ${5:+"$5"} -S "$3" -w "$1" -i "$((($2 << 32) | $4))" \
		"ipc://$TMP/run/broker.sock" light 'Say hi.'
}
refused="failed: its worker had ended when it came"
served() { case "$1" in "ok: "*) ;; *) echo "      got: $1"; return 1 ;; esac; }

# cases MODE FIRST_WORKER: each case with a worker number of its own.
cases() {
	local mode=$1 w=$2 old old_started new new_started

	# A worker's process ends and the next one says hello before the end
	# is seen (the look each second, or the order of two frames); then a
	# stranger takes the number of the one that ended.
	sleep 120 &
	old=$!
	PIDS+=("$old")
	old_started=$(started_of "$old")
	check "$mode: a worker's process says hello and is served" \
		served "$(ask "$w" "$old" "$old_started" 1 -H)"
	process_ended "$old"
	sleep 120 &
	new=$!
	PIDS+=("$new")
	check "$mode: its next process says hello and is served" \
		served "$(ask "$w" "$new" "$(started_of "$new")" 1 -H)"
	stranger_at "$old"
	check "$mode: a request of the process that ended, its number another's, is refused" \
		eq "$(ask "$w" "$old" "$old_started" 2)" "$refused"
	process_ended "$stranger"
	process_ended "$new"

	# The next process of a worker takes the number of the one before, and
	# its requests come before its hello (a hello lost, or overtaken).
	w=$((w + 1))
	sleep 120 &
	old=$!
	PIDS+=("$old")
	old_started=$(started_of "$old")
	check "$mode: a process says hello, is served, and ends" \
		served "$(ask "$w" "$old" "$old_started" 1 -H)"
	process_ended "$old"
	stranger_at "$old"
	new_started=$(started_of "$stranger")
	check "$mode: the next process of that number is served before its hello" \
		served "$(ask "$w" "$old" "$new_started" 1)"
	# Its id is the one answered for the process before: not that answer.
	check "$mode: with an answer of its own, not the one the process before had" \
		not_said "request $((($old << 32) | 1)) sent again once answered"
	check "$mode: and after its hello" served "$(ask "$w" "$old" "$new_started" 2 -H)"
	check "$mode: while the one before stays refused" \
		eq "$(ask "$w" "$old" "$old_started" 3)" "$refused"
	process_ended "$stranger"

	# A process watched ends, and a stranger takes its number at once,
	# within the second between two looks.
	w=$((w + 1))
	sleep 120 &
	old=$!
	PIDS+=("$old")
	old_started=$(started_of "$old")
	check "$mode: a process watched says hello and is served" \
		served "$(ask "$w" "$old" "$old_started" 1 -H)"
	process_ended "$old"
	stranger_at "$old"
	refused_by_then() {
		local n
		for n in $(seq 2 41); do
			[ "$(ask "$w" "$old" "$old_started" "$n")" = "$refused" ] && return 0
			sleep 0.05
		done
		return 1
	}
	check "$mode: its end is seen though its number is another's: its requests are refused" \
		refused_by_then
	process_ended "$stranger"
}
not_said() { ! grep -F -- "$1" "$TMP/sup.log"; }

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
