#!/usr/bin/env bash
# scripts/bench, the harness itself: bad arguments, a speed too slow for
# the policy part, a --json FILE that cannot be written and a missing
# gnuplot are refused before any part runs, each saying what is wrong. A
# supervisor gone under a run, or before the bench waits for it, stops the
# bench, saying so (and bash says nothing), and leaves nothing running;
# one gone under a measure is told as the bench fails; an emulator that
# does not come up is not left running, and one that does not answer is
# told; a supervisor or an emulator that fails at its stop, or does not
# stop, fails the bench, named; Ctrl-C stops the bench, saying it was
# interrupted, and leaves nothing either. The bench signals only the processes it runs still, none
# it has waited for, and stops a part's emulators before the next part.
# --json FILE names a file where the bench is called from, and the policy
# part's plot goes beside it, named after it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BENCH="$ROOT/scripts/bench"

# fake_build DIR: a build dir for the bench (OLLAMAX_BUILD) whose make does
# nothing and whose programs are the test's, linked; a check puts a script
# of its own in place of one (fake_program).
fake_build() {
	local f
	mkdir -p "$1/tests"
	printf 'all:\n' >"$1/Makefile"
	for f in ollamax-emu ollamax-loadgen ollamax-supervisor ollamax-workload \
		ollamax-broker ollamaxctl tests/bench_broker tests/bench_ctl \
		tests/bench_task_switch tests/exec_latency; do
		ln -s "$BUILD/$f" "$1/$f"
	done
}
# fake_program DIR NAME: the program NAME of the build dir DIR is the bash
# script on standard input, $BUILD in it the test's build dir.
fake_program() {
	rm -f "$1/$2"
	{
		printf '#!/usr/bin/env bash\nset -euo pipefail\nBUILD=%q\n' "$BUILD"
		cat
	} >"$1/$2"
	chmod +x "$1/$2"
}
# replayed DIR ARM...: in the build dir DIR, the workload replays the live
# runs of the arms named (direct, ollamax): the same figures, at once,
# while the bench starts, waits for and stops its processes as it does for
# a live run.
replayed() {
	local dir=$1
	shift
	fake_program "$dir" ollamax-workload <<SH
replayed=" $* "
SH
	cat >>"$dir/ollamax-workload" <<'SH'
args=()
arm=
for a in "$@"; do
	case "$a" in --direct) arm=direct ;; --ollamax) arm=ollamax ;; esac
done
case "$replayed" in *" $arm "*) ;; *) exec "$BUILD/ollamax-workload" "$@" ;; esac
while [ $# -gt 0 ]; do
	case "$1" in
	--direct | --ollamax | --emu) shift 2 ;;
	*) args+=("$1"); shift ;;
	esac
done
exec "$BUILD/ollamax-workload" "${args[@]}" --replay "$arm"
SH
}
# An emulator that does not come up, stuck: its start is given up after
# 10 s, which the checks below do not wait for.
fake_build "$TMP/emu-stuck"
fake_program "$TMP/emu-stuck" ollamax-emu <<SH
echo \$\$ >"$TMP/emu-stuck.pid"
exec sleep 300
SH
OLLAMAX_BUILD="$TMP/emu-stuck" "$BENCH" --quick emu >"$TMP/emu-stuck.log" 2>&1 &
stuck_bench=$!
PIDS+=("$stuck_bench")

# refused WANT ARG...: scripts/bench ARG... exits 2 at once, saying WANT,
# before any part has started. Bounded: one let through would run them all.
refused() {
	local want=$1 out rc=0
	shift
	out=$(timeout -k 5 60 "$BENCH" "$@" 2>&1) || rc=$?
	if [ "$rc" -ne 2 ]; then
		echo "      exit $rc: $out"
		return 1
	fi
	case "$out" in *"ollamax benchmark on"*)
		echo "      refused only once started: $out"
		return 1
		;;
	esac
	has "$out" "$want"
}
for opt in --json --speed --seed; do
	check "$opt without its value is refused, named" \
		refused "scripts/bench: $opt needs a value" replay "$opt"
done
check "an argument it does not know is refused, named" \
	refused "scripts/bench: '--bogus' is neither an option nor a part" --bogus
for speed in 20abc 0x10 nan 1e1; do
	check "--speed $speed is refused, not read as the number it starts with" \
		refused "scripts/bench: --speed: '$speed' is not a decimal number from 0.015 to 120" \
		--speed "$speed" replay
done
check "a speed too slow for the policy part's requests is refused for it, the least given" \
	refused "scripts/bench: --speed: the policy part needs 0.6 at least, not '0.5': a request may wait 900 s of the emulator's clock (max_wait_low)" \
	--speed 0.5 --quick policy
check "a speed out of range is refused, the range given" \
	refused "scripts/bench: --speed: '200' is not a decimal number from 0.015 to 120" --speed 200 replay
check "a seed given twice is refused" \
	refused "scripts/bench: --seed: '7,7' names a seed twice" --seed 7,7 replay
check "--json into a directory that is not there is refused before the parts run" \
	refused "scripts/bench: --json: cannot write '$TMP/none/bench.json': No such file or directory" \
	--json "$TMP/none/bench.json" replay
check "--json naming a directory is refused before the parts run" \
	refused "scripts/bench: --json: cannot write '$TMP': Is a directory" --json "$TMP" replay
check "--json with an empty name is refused" \
	refused "scripts/bench: --json needs a value" --json "" replay
mkdir "$TMP/plot.png"
check "--json FILE whose plot cannot be written beside it is refused before the policy part runs" \
	refused "scripts/bench: --json: cannot write the plot beside it, '$TMP/plot.png': Is a directory" \
	--json "$TMP/plot.json" --quick --speed 120 policy
# The file checked writable before the run is not left behind.
refused "" --json "$TMP/left.json" --seed 7,7 replay >/dev/null || true
check "the check of a --json file leaves no file of its own" test ! -e "$TMP/left.json"
# Every program on the PATH but gnuplot.
mkdir "$TMP/bin"
IFS=: read -ra dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
	for f in "$dir"/*; do
		b=${f##*/}
		[ "$b" = gnuplot ] || [ -e "$TMP/bin/$b" ] || ln -s "$f" "$TMP/bin/$b"
	done
done
# The bench's scripts/setup builds first: in a build dir whose make does
# nothing, as the real one's, run with this PATH, would configure itself
# again if it were due, and keep $TMP's links for its programs.
mkdir "$TMP/no-build"
printf 'all:\n' >"$TMP/no-build/Makefile"
check "the policy part without gnuplot is refused before it runs" \
	env PATH="$TMP/bin" OLLAMAX_BUILD="$TMP/no-build" bash -c "$(declare -f refused has); BENCH='$BENCH'; refused \
		'scripts/bench: policy plots with gnuplot, which is not on the PATH' --quick policy"
# A supervisor gone in the middle of the ollamax arm's run: the workload
# would wait an hour for its answers. The bench stops at once, saying so,
# and leaves nothing running.
"$BENCH" --quick --speed 120 policy >"$TMP/gone.log" 2>&1 &
bench=$!
PIDS+=("$bench")
# first_ours PATTERN: the first process of this test whose command line
# matches.
first_ours() {
	local p
	for p in $(pgrep -f "$1" || true); do
		ours "$p" && echo "$p" && return 0
	done
	return 1
}
sup=
for _ in $(seq 1 1200); do
	if first_ours "ollamax-workload .* --ollamax .*/overload-ollamax-7/run" >/dev/null; then
		sup=$(first_ours "ollamax-supervisor -c .*/overload-ollamax-7/ollamax.conf") && break
	fi
	gone "$bench" && break
	sleep 0.05
done
bench_tmp=
sup_exe=
if [ -n "$sup" ]; then
	bench_tmp=$(tr '\0' ' ' <"/proc/$sup/cmdline" | sed -n 's|.* -c \(.*\)/overload-ollamax-7/ollamax.conf .*|\1|p')
	sup_exe=$(readlink -f "/proc/$sup/exe")
	kill -KILL "$sup"
fi
check "the ollamax arm's run is reached, its supervisor killed" test -n "$bench_tmp"
check "the bench runs the binaries of the build the test is given (OLLAMAX_BUILD)" \
	test "$sup_exe" = "$(readlink -f "$BUILD/ollamax-supervisor")"
# stopped_in_time [PID]: the bench (PID) ends within 30 s.
stopped_in_time() { gone_within 30 "${1:-$bench}"; }
check "the bench stops once the supervisor is gone" stopped_in_time
bench_rc=0
if gone "$bench"; then
	wait "$bench" 2>/dev/null || bench_rc=$?
	forget_pid "$bench"
fi
check "it fails, naming the supervisor that ended" \
	sh -c "[ $bench_rc -ne 0 ] && grep -q 'scripts/bench: the supervisor of .* ended (status 137) before the workload' '$TMP/gone.log'"
# no_bash_noise LOG: nothing in LOG of bash's own on the processes the
# bench started: it tells of one killed by a signal on a line of its own
# ("line 376: 4242 Killed"), and wait of one it has forgotten.
no_bash_noise() {
	! grep -E 'no such job|^[^ ]*: line [0-9]+: ' "$1" | sed 's/^/      /'
}
check "the supervisor's end is told by the bench alone, not by bash" no_bash_noise "$TMP/gone.log"
# nothing_left DIR: no process of this test runs with DIR, the bench's
# temp dir, on its command line, and DIR is gone.
nothing_left() {
	local bench_tmp=$1 left=() p
	[ -n "$bench_tmp" ] || return 1
	for p in $(pgrep -f "$bench_tmp" || true); do
		ours "$p" && left+=("$p")
	done
	# Stopped by the test's end, whatever this finds.
	PIDS+=("${left[@]}")
	[ ${#left[@]} -eq 0 ] || { ps -o pid,cmd -p "${left[*]}" | sed 's/^/      /'; return 1; }
	[ ! -e "$bench_tmp" ] || { echo "      $bench_tmp left"; return 1; }
}
check "nothing of the bench's is left running, nor its temp dir" nothing_left "$bench_tmp"
# nothing_left_of PATTERN: no process of this test's runs with PATTERN on
# its command line.
nothing_left_of() {
	local p left=()
	for p in $(pgrep -f "$1" || true); do
		ours "$p" && left+=("$p")
	done
	PIDS+=("${left[@]}")
	[ ${#left[@]} -eq 0 ] || { ps -o pid,cmd -p "${left[*]}" | sed 's/^/      /'; return 1; }
}
fake_build "$TMP/replayed"
replayed "$TMP/replayed" direct ollamax
# The bench's kill, watched (a function of that name, exported, comes
# before the builtin): each signal it sends but a probe is logged, "stray"
# when its target is not a process the bench runs, its child or its
# child's, but one that has ended or has been given the pid since.
kill_watch='() {
	local a stat rest parent
	case "${1-}" in -0 | -l | -L) builtin kill "$@"; return ;; esac
	for a in "$@"; do
		[[ $a =~ ^[0-9]+$ ]] || continue
		stat=
		read -r stat 2>/dev/null <"/proc/$a/stat" || true
		rest=${stat##*) }
		rest=${rest#* }
		parent=${rest%% *}
		if [ -z "$stat" ]; then
			echo "stray $a: ended" >>"$KILL_LOG"
		elif [ "$parent" != $$ ]; then
			read -r stat 2>/dev/null <"/proc/$parent/stat" || true
			rest=${stat##*) }
			rest=${rest#* }
			[ "${rest%% *}" = $$ ] || echo "stray $a: another process" >>"$KILL_LOG"
		fi
		echo "kill $*" >>"$KILL_LOG"
	done
	builtin kill "$@"
}'
touch "$TMP/kills.log"
# Figures to a directory whose name a shell or gnuplot would split.
out="$TMP/figures, Bob's"
mkdir "$out"
in_tree() { stat -c '%i %y' "$ROOT/bench-out/latency.png" 2>/dev/null || echo none; }
in_tree_before=$(in_tree)
watch_python "$TMP/py" "$TMP/py.log"
env OLLAMAX_BUILD="$TMP/replayed" KILL_LOG="$TMP/kills.log" "BASH_FUNC_kill%%=$kill_watch" \
	PATH="$TMP/py:$PATH" timeout -k 5 120 "$BENCH" --quick --speed 120 policy --json "$out/policy.json" \
	>"$TMP/replayed.log" 2>&1 || cat "$TMP/replayed.log"
check "the policy part runs through, its live arms replayed" \
	grep -q '"policy"' "$out/policy.json"
is_png() { [ "$(head -c 4 "$1" 2>/dev/null | tail -c 3)" = PNG ] || { echo "      no PNG at $1"; return 1; }; }
check "its plot is beside the JSON file, named after it" is_png "$out/policy.png"
check "  and said to be there" grep -qxF "latency distributions: $out/policy.png" "$TMP/replayed.log"
check "  not in the source tree's bench-out/" eq "$(in_tree)" "$in_tree_before"
no_stray_kill() {
	grep -q '^kill' "$TMP/kills.log" || { echo "      no kill seen"; return 1; }
	! grep '^stray' "$TMP/kills.log" | sed 's/^/      /'
}
check "the bench signals no process it has waited for, only those it runs" no_stray_kill
# A Ctrl-C in one of the bench's Python steps ends the bench once the
# step is over, not the step with a KeyboardInterrupt and its traceback.
check "the bench's Python steps start with SIGINT ignored" \
	python_ignored_sigint "$TMP/py.log" scripts/bench 3
# A supervisor killed by a signal once ready, before the bench waits for
# it in the ollamax arm: bash had told of it and forgotten it, so that the
# bench waited for the workload alone.
fake_build "$TMP/sup-dies"
replayed "$TMP/sup-dies" direct
fake_program "$TMP/sup-dies" ollamax-supervisor <<'SH'
echo "ollamax-supervisor: ready: a stand-in, killed at once, in 1 ms" >&2
kill -KILL $$
SH
dies_rc=0
OLLAMAX_BUILD="$TMP/sup-dies" timeout -k 5 60 "$BENCH" --quick --speed 120 policy \
	>"$TMP/sup-dies.log" 2>&1 || dies_rc=$?
check "a supervisor ended before the bench waits for it stops the bench, named, with its log" \
	sh -c "[ $dies_rc -eq 1 ] && grep -q 'scripts/bench: the supervisor of .*/overload-ollamax-7 ended (status 137)' '$TMP/sup-dies.log' &&
		grep -q 'ready: a stand-in' '$TMP/sup-dies.log'"
check "  and bash says nothing of it" no_bash_noise "$TMP/sup-dies.log"
# A supervisor killed under a measure, the broker's overhead: the program
# that measures fails, and the bench tells of the supervisor too, with its
# log, which would go with the temp dir.
fake_build "$TMP/sup-killed"
replayed "$TMP/sup-killed" direct ollamax
fake_program "$TMP/sup-killed" tests/bench_broker <<'SH'
conf=${2%/run}/ollamax.conf
sup=$(pgrep -f -- "ollamax-supervisor -c $conf start")
kill -KILL "$sup"
for _ in $(seq 1 200); do
	kill -0 "$sup" 2>/dev/null || break
	sleep 0.05
done
echo "bench_broker: nothing answers on $2/broker.sock" >&2
exit 1
SH
killed_rc=0
OLLAMAX_BUILD="$TMP/sup-killed" timeout -k 5 60 "$BENCH" --quick --speed 120 policy \
	>"$TMP/sup-killed.log" 2>&1 || killed_rc=$?
check "a supervisor ended under a measure is told, with its log, as the bench fails" \
	sh -c "[ $killed_rc -eq 1 ] && grep -q 'bench_broker: nothing answers' '$TMP/sup-killed.log' &&
		grep -q 'scripts/bench: the supervisor of .*/overhead ended (status 137) as the bench measured it' '$TMP/sup-killed.log' &&
		grep -q 'ready:' '$TMP/sup-killed.log'"
# Ctrl-C in the ollamax arm's run: SIGINT to the bench's process group, on
# which the supervisor ends first. The bench runs in a group of its own,
# with SIGINT as a terminal leaves it (bash starts a command in the
# background with SIGINT ignored).
fake_build "$TMP/ctrl-c"
replayed "$TMP/ctrl-c" direct
python3 -c 'import os, signal, sys
os.setpgid(0, 0)
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' env OLLAMAX_BUILD="$TMP/ctrl-c" "$BENCH" --quick --speed 120 policy \
	>"$TMP/ctrl-c.log" 2>&1 &
bench=$!
PIDS+=("$bench")
wl=
for _ in $(seq 1 600); do
	wl=$(first_ours "ollamax-workload .* --ollamax .*/overload-ollamax-7/run") && break
	gone "$bench" && break
	sleep 0.05
done
ctrl_c_tmp=
if [ -n "$wl" ]; then
	ctrl_c_tmp=$(tr '\0' ' ' <"/proc/$wl/cmdline" | sed -n 's|.* --ollamax \(.*\)/overload-ollamax-7/run .*|\1|p')
	kill -INT -- -"$bench"
fi
check "Ctrl-C reaches the ollamax arm's run" test -n "$ctrl_c_tmp"
bench_rc=0
stopped_in_time && { wait "$bench" 2>/dev/null || bench_rc=$?; forget_pid "$bench"; }
check "an interrupted bench says so, not that the supervisor ended, and exits 130" \
	sh -c "[ $bench_rc -eq 130 ] && grep -q '^scripts/bench: interrupted by SIGINT$' '$TMP/ctrl-c.log' &&
		! grep -q 'ended (status' '$TMP/ctrl-c.log'"
check "  and leaves nothing running, nor its temp dir" nothing_left "$ctrl_c_tmp"
# An emulator that comes up but does not answer: each connection closed at
# once.
fake_build "$TMP/emu-mute"
fake_program "$TMP/emu-mute" ollamax-emu <<'SH'
exec python3 -c '
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
with open(sys.argv[sys.argv.index("--port-file") + 1], "w") as f:
    f.write(str(s.getsockname()[1]))
while True:
    s.accept()[0].close()
' "$@"
SH
mute_rc=0
OLLAMAX_BUILD="$TMP/emu-mute" timeout -k 5 60 "$BENCH" --quick emu >"$TMP/emu-mute.log" 2>&1 || mute_rc=$?
check "an emulator that does not answer stops the bench, saying so" \
	sh -c "[ $mute_rc -eq 1 ] && grep -q '^curl: ([0-9]*) ' '$TMP/emu-mute.log' &&
		grep -q '^scripts/bench: no answer from ollamax-emu at http://127.0.0.1:[0-9]*/api/generate$' '$TMP/emu-mute.log'"
# The emulators of a part are stopped once it has measured them, not left
# to run under the next parts' measures: the emu part's, with a load
# generator that answers at once, as the replay part starts.
fake_build "$TMP/parts"
fake_program "$TMP/parts" ollamax-loadgen <<'SH'
echo '{"per_second": 1, "failed": 0, "p50_ms": 1, "p99_ms": 1, "ok": 1, "peak_open": 1, "lines": 1, "seconds": 1}'
SH
fake_program "$TMP/parts" ollamax-workload <<SH
ps -o comm= --ppid "\$PPID" | grep -c '^ollamax-emu' >>"$TMP/emus-at-replay" || true
exec "\$BUILD/ollamax-workload" "\$@"
SH
OLLAMAX_BUILD="$TMP/parts" timeout -k 5 60 "$BENCH" --quick --seed 7 emu replay \
	>"$TMP/parts.log" 2>&1 || cat "$TMP/parts.log"
check "the emu part's emulators are stopped before the next part runs" \
	eq "$(sort -u "$TMP/emus-at-replay" 2>&1)" 0
mkdir "$TMP/called-from"
name=bench-$$.json
relative_rc=0
(cd "$TMP/called-from" && timeout -k 5 60 "$BENCH" --quick --seed 7 --speed 0.5 replay --json "$name") \
	>"$TMP/relative.log" 2>&1 || { relative_rc=$?; cat "$TMP/relative.log"; }
check "a speed too slow for the policy part is taken by the replay part, which has no wall clock" \
	test "$relative_rc" -eq 0
written_there() {
	python3 -c 'import json,sys; assert "replay" in json.load(open(sys.argv[1]))' \
		"$TMP/called-from/$name" && test ! -e "$ROOT/$name"
}
check "--json FILE, a relative name, is written where the bench was called from" written_there
# policy_with NAME PROGRAM: the policy part, both arms replayed, with the
# program PROGRAM of its build dir the script on standard input; what it
# says in $TMP/NAME.log, its status in policy_rc.
policy_with() {
	policy_rc=0
	fake_build "$TMP/$1"
	replayed "$TMP/$1" direct ollamax
	fake_program "$TMP/$1" "$2"
	OLLAMAX_BUILD="$TMP/$1" timeout -k 5 60 "$BENCH" --quick --speed 120 policy \
		>"$TMP/$1.log" 2>&1 || policy_rc=$?
}
# A supervisor that fails at its stop, after every figure of its arm: the
# bench fails, saying so, with its log.
policy_with stop-fails ollamax-supervisor <<'SH'
trap 'echo "ollamax-supervisor: a stand-in, failing its stop" >&2; exit 3' TERM
echo "ollamax-supervisor: ready: a stand-in, in 1 ms" >&2
while :; do sleep 0.1; done
SH
check "a supervisor that fails at its stop fails the bench, named, with its log" \
	sh -c "[ $policy_rc -eq 1 ] && grep -q 'scripts/bench: the supervisor of .*/overload-ollamax-7 ended (status 3) as the bench stopped it' '$TMP/stop-fails.log' &&
		grep -q 'a stand-in, failing its stop' '$TMP/stop-fails.log'"
# One that does not stop: killed 15 s after the bench's SIGTERM, not
# waited for without end. The bench's own logic, with a stand-in: the
# plain build alone spends the 15 s.
if [ "$SANITIZED" = no ]; then
	policy_with stop-hangs ollamax-supervisor <<'SH'
trap '' TERM
echo "ollamax-supervisor: ready: a stand-in, in 1 ms" >&2
while :; do sleep 0.1; done
SH
	check "a supervisor that does not stop is killed after 15 s, said so, and the bench fails" \
		sh -c "[ $policy_rc -eq 1 ] && grep -q 'scripts/bench: the supervisor of .*/overload-ollamax-7 ended (status 137) when killed, still running 15 s after the bench.s SIGTERM' '$TMP/stop-hangs.log'"
	check "  and is not left running" nothing_left_of "$TMP/stop-hangs/ollamax-supervisor"
fi
# An emulator that ends badly when stopped (one crashed under a measure
# is told alike): the bench fails, saying so, with its log.
policy_with emu-stop-fails ollamax-emu <<'SH'
"$BUILD/ollamax-emu" "$@" &
emu=$!
trap 'kill "$emu"; wait "$emu"; echo "ollamax-emu: a stand-in, failing its stop" >&2; exit 2' TERM
wait "$emu"
SH
check "an emulator that fails at its stop fails the bench, named, with its log" \
	sh -c "[ $policy_rc -eq 1 ] && grep -q '^scripts/bench: ollamax-emu ended with status 2 as the bench stopped it:' '$TMP/emu-stop-fails.log' &&
		grep -q 'a stand-in, failing its stop' '$TMP/emu-stop-fails.log'"
stuck_rc=0
stopped_in_time "$stuck_bench" && { wait "$stuck_bench" || stuck_rc=$?; forget_pid "$stuck_bench"; }
stuck=$(cat "$TMP/emu-stuck.pid" 2>/dev/null || true)
[ -z "$stuck" ] || PIDS+=("$stuck")
check "an emulator that does not come up stops the bench, named" \
	sh -c "[ $stuck_rc -eq 1 ] && grep -q '^ollamax-emu rps did not come up' '$TMP/emu-stuck.log'"
stuck_gone() { [ -n "$stuck" ] && gone "$stuck"; }
check "  and is not left running" stuck_gone
finish
