# Shared by the integration tests: start the real binaries in a temp dir,
# wait for them without sleeping blindly, and check results.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${OLLAMAX_BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
TMP=$(mktemp -d)
PIDS=()
FAILURES=0
CHECKS=0

# Every process the test starts carries this mark in its environment: a
# pid reused since by another process does not (see ours).
export OLLAMAX_TEST_TMP="$TMP"

# Python is asked for its own interpreter once, and that is put first on
# the PATH of the test and of all it runs: a version manager's shim that
# PATH may name instead takes a third of a second to start each time, and
# the tests' polls start Python hundreds of times.
if python_itself=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) &&
	[ -x "$python_itself" ]; then
	mkdir "$TMP/python"
	ln -s "$python_itself" "$TMP/python/python3"
	export PATH="$TMP/python:$PATH"
fi
# Read by grep itself, with no pipe whose writer a grep -q that stops
# early could kill, which pipefail would take for a process not ours.
ours() { grep -qxzF -- "OLLAMAX_TEST_TMP=$TMP" "/proc/$1/environ" 2>/dev/null; }

# gone PID: the process has ended (a zombie has, though kill(2) finds it).
# Its state follows the last ')': a name may hold blanks ("ollamax: worker").
# One read: the shell may reap a zombie between a look for its directory
# and a read of its state, and an unreadable state is an ended process.
gone() {
	local state
	state=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)
	[ -z "$state" ] || [ "$state" = Z ]
}
# gone_within SECONDS PID: PID has ended within SECONDS; one still running
# then fails the check, where a bare wait would hold the test.
gone_within() {
	local _
	for _ in $(seq 1 $(($1 * 20))); do
		gone "$2" && return 0
		sleep 0.05
	done
	echo "      still running $1 s after"
	return 1
}

# forget_pid PID: the test has ended it itself, or it is not the cleanup's
# to stop.
forget_pid() {
	local kept=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
	PIDS=("${kept[@]}")
}

# stop_all: every process the test started and that runs still gets
# SIGTERM, and together 10 s to end, then SIGKILL: a test that fails, even
# on a hang, leaves nothing behind.
stop_all() {
	local pid left mine=()
	for pid in "${PIDS[@]}"; do
		ours "$pid" && mine+=("$pid")
	done
	# A test may have stopped a process (SIGSTOP) to hold it; a stopped
	# process would not act on SIGTERM until continued.
	for pid in "${mine[@]}"; do
		kill -CONT "$pid" 2>/dev/null || true
		kill "$pid" 2>/dev/null || true
	done
	for _ in $(seq 1 200); do
		left=0
		for pid in "${mine[@]}"; do
			gone "$pid" || left=1
		done
		[ "$left" -eq 0 ] && break
		sleep 0.05
	done
	for pid in "${mine[@]}"; do
		if ! gone "$pid" && ours "$pid"; then
			echo "      process $pid did not end 10 s after SIGTERM: killed"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
}

# end_pid PID: what stop_all does, for one process the test is done with.
end_pid() {
	local PIDS=("$1")
	stop_all
}

cleanup() {
	stop_all
	rm -rf "$TMP"
}
trap cleanup EXIT
# Killed, a test still cleans up.
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

# Under --enable-sanitizers every process writes its reports in $TMP/san,
# whatever becomes of its stderr (a daemon's goes nowhere), and however
# late it ends: finish reads them once everything has stopped.
# A leak is judged by its report, not by how its process ended: with
# exitcode=0 a report of leaks at exit leaves the exit status alone (nng
# 1.5.2's own losses, left aside below, would fail a check that a process
# stopped cleanly), while an ASan error still aborts (abort_on_error).
mkdir -p "$TMP/san"
[ -n "${ASAN_OPTIONS+x}" ] && export ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$TMP/san/asan:exitcode=0"
[ -n "${UBSAN_OPTIONS+x}" ] && export UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$TMP/san/ubsan"
# Whether the build under test is one of --enable-sanitizers. ldd's list is
# read whole: a grep -q that stops at libasan would leave ldd to die of
# SIGPIPE on its next line, and pipefail would take the build for a plain
# one.
case "$(ldd "$BUILD/ollamax-supervisor" 2>/dev/null)" in
*libasan*) SANITIZED=yes ;;
*) SANITIZED=no ;;
esac

. "$ROOT/scripts/emu.sh"

# A command prefix for a private mount namespace, where a test can mount
# what the processes it starts see (/dev/log, /proc): root makes one, and
# anyone who cannot (not root, or root without CAP_SYS_ADMIN, as in a
# container) maps to root in a user namespace of their own, where Debian
# lets them mount. Never empty: where neither can be had, it fails as it
# is run, and nothing is mounted outside a namespace.
if [ "$(id -u)" -eq 0 ] && unshare --mount true 2>/dev/null; then
	MOUNT_NS=(unshare --mount)
else
	MOUNT_NS=(unshare --map-root-user --mount)
fi

# start_emu NAME [FLAGS...]: starts ollamax-emu on a free port; sets
# the variable URL_<NAME> and PID_<NAME>.
start_emu() {
	local name=$1
	shift
	emu_start "$BUILD/ollamax-emu" "$TMP" "$name" "$@" || exit 1
	PIDS+=("$EMU_PID")
	printf -v "URL_$name" '%s' "$EMU_URL"
	printf -v "PID_$name" '%s' "$EMU_PID"
}

# emu_sched NAME COUNT: a count of the scheduler (loads, evictions,
# reloads...) in the /emu/stats of the emulator started as NAME.
emu_sched() {
	local url="URL_$1"
	curl -s "${!url}/emu/stats" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["scheduler"][sys.argv[1]])' "$2"
}

# start_fake_backend MODE: a fake Ollama (fake-backend.py), told how to
# answer by the JSON in $MODE, MODE to begin with; its URL in URL_fake.
start_fake_backend() {
	MODE="$TMP/mode.json"
	echo "$1" >"$MODE"
	python3 "$ROOT/tests/integration/fake-backend.py" "$TMP/port" "$MODE" \
		2>"$TMP/fake.log" &
	PIDS+=("$!")
	for _ in $(seq 1 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
	URL_fake="http://127.0.0.1:$(cat "$TMP/port")"
}

# gate_fleet HIGH NORMAL LOW NAME:PRIORITY...: a fake Ollama whose
# generate calls wait at a gate (open once $MODE.open exists), and a fleet
# of light agents that run when asked, on the broker's one slot, with
# max_wait HIGH, NORMAL and LOW. An agent's prompt is its name and input,
# as the gate logs it.
gate_fleet() {
	local agent
	start_fake_backend '{"gen": "gate"}'
	fleet_conf "$URL_fake" <<CONF
[broker]
parallel = 1
max_wait_high = $1
max_wait_normal = $2
max_wait_low = $3
[tier.light]
model = tinyllama
CONF
	shift 3
	for agent in "$@"; do
		printf '[agent]\nname = %s\ntier = light\npriority = %s\ntrigger = demand\nprompt = {{name}} {{input}}\n' \
			"${agent%%:*}" "${agent##*:}" >"$TMP/agents/${agent%%:*}.conf"
	done
	start_fleet
}

# gate_order N: once N calls have come to the fake backend's gate (10 s at
# most), the agents they came from, in order, on one line.
gate_order() {
	for _ in $(seq 1 200); do
		[ "$(grep -c "^GATE" "$MODE.log")" -ge "$1" ] && break
		sleep 0.05
	done
	sed -n 's/^GATE \([a-z]*\) now$/\1/p' "$MODE.log" | tr '\n' ' '
}

# light_agent NAME FILE: the manifest of a light agent run when asked,
# its answers 2 tokens long.
light_agent() {
	printf '[agent]\nname = %s\ntier = light\ntrigger = demand\nprompt = Say {{input}}\n[options]\nnum_predict = 2\n' \
		"$1" >"$2"
}
# light_fleet N: the emulator of the reference box at --speed inf, and in
# $TMP the configuration of a fleet of N such agents, a1 to aN.
light_fleet() {
	start_emu emu --speed inf --parallel 2 --vram-mb 4096
	fleet_conf "$URL_emu" <<CONF
[tier.light]
model = tinyllama
CONF
	for i in $(seq 1 "$1"); do
		light_agent "a$i" "$TMP/agents/a$i.conf"
	done
}
# fleet_conf URL: the start of an ollamax.conf for a fleet in $TMP: two
# workers, every directory inside $TMP, the backend at URL. Sections
# follow on standard input.
fleet_conf() {
	mkdir -p "$TMP/agents"
	{
		printf '[supervisor]\nworkers = 2\nruntime_dir = run\nstate_dir = state\nagents_dir = agents\n'
		printf '[backend]\nurl = %s\n' "$1"
		cat
	} >"$TMP/ollamax.conf"
}

# start_fake_ctl BODY [as-supervisor]: tests/fake_ctl, a peer that is not a
# supervisor (or stands in for one), on $TMP/peer/ctl.sock, the verbs it
# gets in $TMP/fake/verbs; its pid in $fake once it listens.
start_fake_ctl() {
	mkdir -p "$TMP/peer" "$TMP/fake"
	"$BUILD/tests/fake_ctl" "$TMP/peer/ctl.sock" "$@" >"$TMP/fake/verbs" 2>&1 &
	fake=$!
	PIDS+=("$fake")
	wait_log listening "$TMP/fake/verbs" || true
}

# check DESCRIPTION COMMAND...: runs the command, counts the result.
check() {
	local what=$1
	shift
	CHECKS=$((CHECKS + 1))
	if "$@"; then
		echo "ok    $what"
	else
		echo "FAIL  $what (at $(date +%T.%3N))"
		FAILURES=$((FAILURES + 1))
		recent_logs
	fi
}

# What the processes logged last, at a failure: a failure seen only in CI
# can then be told from a slow machine.
recent_logs() {
	local f
	for f in $(ls -t "$TMP"/*.log 2>/dev/null | head -3); do
		[ -s "$f" ] || continue
		echo "      last lines of $(basename "$f"):"
		tail -n 8 "$f" | cut -c1-300 | sed 's/^/        /'
	done
}

# eq GOT WANT: the two are the same (says both when not).
eq() { [ "$1" = "$2" ] || { echo "      got:  $1"; echo "      want: $2"; return 1; }; }

# has TEXT PART: TEXT contains PART (says what it got when not).
has() { case "$1" in *"$2"*) ;; *) echo "      got: $1"; echo "      missing: $2"; return 1 ;; esac; }

# said_so WANT ARG...: ollamaxctl ARG... fails with exit 1, saying WANT.
said_so() {
	local want=$1 out rc=0
	shift
	out=$("$CTL" -c "$TMP/ollamax.conf" "$@" 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && has "$out" "$want"
}

# runs_of AGENT: how many runs the agent has written to its file output.
runs_of() {
	local n
	n=$(grep -c "^--- $1 run" "$TMP/state/$1.out" 2>/dev/null) || true
	echo "${n:-0}"
}
# count_reaches N WHAT COMMAND...: until COMMAND prints a count of N or
# more (10 s at most); else says the last count, and of WHAT.
count_reaches() {
	local want=$1 what=$2 n=0
	shift 2
	for _ in $(seq 1 200); do
		n=$("$@") || :
		[ "${n:-0}" -ge "$want" ] && return 0
		sleep 0.05
	done
	echo "      ${n:-0} $what"
	return 1
}
# wait_runs AGENT N: until the agent has written N runs (10 s at most).
wait_runs() { count_reaches "$2" "runs of $1" runs_of "$1"; }

# start_fleet: starts the supervisor on $TMP/ollamax.conf, its log in
# $TMP/sup.log; sets SUP, CTL and sup_pid.
SUP="$BUILD/ollamax-supervisor"
CTL="$BUILD/ollamaxctl"
start_fleet() {
	"$SUP" -c "$TMP/ollamax.conf" start 2>"$TMP/sup.log" &
	sup_pid=$!
	PIDS+=("$sup_pid")
}

# shipped_conf URL AGENTS_DIR SUFFIX [SED_ARG...]: $TMP/ollamax.conf, the
# shipped configuration pointed at the backend URL, at private dirs
# ($TMP/runSUFFIX, $TMP/stateSUFFIX) and at AGENTS_DIR, changed further by
# the sed arguments given.
shipped_conf() {
	local url=$1 agents=$2 suffix=$3
	shift 3
	sed -e "s|^url = .*|url = $url|" \
		-e "s|^runtime_dir =.*|runtime_dir = $TMP/run$suffix|" \
		-e "s|^state_dir = .*|state_dir = $TMP/state$suffix|" \
		-e "s|^agents_dir = .*|agents_dir = $agents|" \
		"$@" "$ROOT/conf/ollamax.conf" >"$TMP/ollamax.conf"
}

# tier_agents: in $TMP/agents, an agent named for each tier of the shipped
# configuration, run on demand with its input as the prompt.
tier_agents() {
	mkdir -p "$TMP/agents"
	for tier in reasoning coding light; do
		printf '[agent]\nname = %s\ntier = %s\ntrigger = demand\nprompt = {{input}}\n' \
			"$tier" "$tier" >"$TMP/agents/$tier.conf"
	done
}

# answered_by AGENT MODEL: a waited run of AGENT is answered by MODEL.
# answered_by AGENT MODEL: a run of AGENT, waited for 2 minutes at most
# (not ollamaxctl's 30), is answered by MODEL.
answered_by() {
	local out
	out=$("$CTL" -c "$TMP/ollamax.conf" --json run -w -t 2m "$1" x 2>&1) &&
		python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["model"] == sys.argv[1] else 1)' "$2" <<<"$out" ||
		{ echo "      $out"; return 1; }
}

# started_of PID: when PID started, in clock ticks after boot, as the
# broker reads it (the fields after the last ')': a name may hold blanks).
started_of() { awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat"; }
# infer_as WORKER PID STARTED SERIAL [-H] [infer_once's options...]: the
# broker's answer to a request of worker WORKER's process PID, started at
# STARTED (clock ticks), its id's counter SERIAL; with -H, after a hello.
infer_as() {
	local worker=$1 pid=$2 started=$3 serial=$4
	shift 4
	"$BUILD/tests/infer_once" "$@" -S "$started" -w "$worker" -i "$(((pid << 32) | serial))" \
		"ipc://$TMP/run/broker.sock" light 'Say hi.'
}
# What the broker answers a request of a worker's process that has ended.
REFUSED_ENDED="failed: its worker had ended when it came"
# served ANSWER: infer_once's answer is one served.
served() { case "$1" in "ok: "*) ;; *) echo "      got: $1"; return 1 ;; esac; }
# refused_soon WORKER PID STARTED: a request of that process is refused as
# of one ended within 40 tries, 2 s (the broker may read one before the
# end); each try a request of its own.
refused_soon() {
	local n
	for n in $(seq 100 139); do
		[ "$(infer_as "$1" "$2" "$3" "$n")" = "$REFUSED_ENDED" ] && return 0
		sleep 0.05
	done
	echo "      not refused: $(infer_as "$1" "$2" "$3" 140)"
	return 1
}

# wait_log [-E] PATTERN [LOG]: until the supervisor's log (or LOG) has a
# line matching the basic (or, with -E, extended) regex (10 s at most).
wait_log() {
	local how=-G
	[ "$1" = -E ] && how=-E && shift
	for _ in $(seq 1 200); do
		grep -q "$how" -- "$1" "${2:-$TMP/sup.log}" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# status_until CONDITION: until the supervisor's JSON status, as s,
# meets the Python CONDITION (5 s at most); says what it saw when not.
status_until() {
	for _ in $(seq 1 100); do
		"$CTL" -c "$TMP/ollamax.conf" --json status 2>/dev/null | python3 -c 'import json,sys
s = json.load(sys.stdin)
sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "      status: $("$CTL" -c "$TMP/ollamax.conf" --json status 2>&1)"
	return 1
}

# model_state MODEL: the model's state as `ollamaxctl --json queue` shows
# it (resident, missing, ...).
model_state() {
	"$CTL" -c "$TMP/ollamax.conf" --json queue | python3 -c 'import json,sys
q = json.load(sys.stdin)
print({m["name"]: m["state"] for m in q["models"]}.get(sys.argv[1]))' "$1"
}
# wait_state MODEL STATE: until ollamaxctl shows the model in that state
# (10 s at most): the broker's status reaches the supervisor every second.
wait_state() {
	local state
	for _ in $(seq 1 200); do
		state=$(model_state "$1")
		[ "$state" = "$2" ] && return 0
		sleep 0.05
	done
	echo "      $1 is $state"
	return 1
}

# worker_pid N: worker N's pid once it runs, else nothing.
worker_pid() {
	"$CTL" -c "$TMP/ollamax.conf" --json status 2>/dev/null | python3 -c 'import json,sys
for p in json.load(sys.stdin)["processes"]:
    if p["role"] == "worker" and p["index"] == int(sys.argv[1]) and p["state"] == "running" and p["pid"] > 1:
        print(p["pid"])' "$1"
}
# proc_pid ROLE INDEX: the child's pid as the supervisor's status has it.
proc_pid() {
	"$CTL" -c "$TMP/ollamax.conf" --json status | python3 -c 'import json,sys
s = json.load(sys.stdin)
print([p["pid"] for p in s["processes"] if p["role"] == sys.argv[1] and p["index"] == int(sys.argv[2])][0])' "$1" "$2"
}
# streams_open N [SECONDS]: the emulator started as emu (URL_emu) has N
# answers streaming, within SECONDS (10) by the clock: a look takes a
# tenth of a second or more.
streams_open() {
	local until=$(($(date +%s%N) / 1000000 + ${2:-10} * 1000))
	while :; do
		[ "$(curl -s "$URL_emu/emu/stats" | python3 -c 'import json,sys
print(json.load(sys.stdin)["open_streams"])')" = "$1" ] && return 0
		[ "$(($(date +%s%N) / 1000000))" -lt "$until" ] || break
		sleep 0.05
	done
	echo "      open streams: not $1 within ${2:-10} s"
	return 1
}
# leased_within MODEL SECONDS [URL]: the emulator (URL_emu, or URL) lists
# MODEL (with '*', one model or more, each), due to expire SECONDS from now
# at the latest: on the broker's lease, not loaded for good (keep_alive
# -1), which Ollama shows as an expiry centuries away. (A faster emulator
# tells its expiries on its own clock, ahead of the wall's.)
leased_within() {
	curl -s "${3:-$URL_emu}/api/ps" | python3 -c 'import calendar,json,sys,time
now = time.time()
want, within = sys.argv[1], float(sys.argv[2])
ms = {m["name"]: m["expires_at"] for m in json.load(sys.stdin)["models"]}
names = list(ms) if want == "*" else [n for n in (want, want + ":latest") if n in ms]
if not names:
    sys.exit("      %s is not listed: %s" % (want, ms))
for name in names:
    day, _, frac = ms[name].rstrip("Z").partition(".")
    expires = calendar.timegm(time.strptime(day, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))
    if expires > now + within:
        sys.exit("      %s expires at %s, more than %g s on" % (name, ms[name], within))' "$1" "$2"
}
# watch_python DIR LOG: DIR/python3, put first on a PATH, notes in LOG
# whether each Python started with SIGINT ignored (SigIgn's mask), and the
# command line of what ran it.
watch_python() {
	mkdir -p "$1"
	printf '#!/usr/bin/env bash\nprintf "%%s %%s\\n" "$(awk '"'"'/^SigIgn:/ { print $2 }'"'"' /proc/$$/status)" "$(tr "\\0" " " </proc/$PPID/cmdline)" >>%q\nexec %q "$@"\n' \
		"$2" "$(command -v python3)" >"$1/python3"
	chmod +x "$1/python3"
}
# python_ignored_sigint LOG RUNNER N: at least N Pythons that LOG saw run by
# a command line with RUNNER in it, each started with SIGINT ignored, so
# that Python takes no Ctrl-C as a KeyboardInterrupt (its traceback, often
# halfway through its own imports) and its runner ends once it is over.
python_ignored_sigint() {
	local mask parent steps=0
	while read -r mask parent; do
		[[ $parent == *"$2"* ]] || continue
		steps=$((steps + 1))
		(((0x$mask & 2) != 0)) || { echo "      SIGINT not ignored: $mask $parent"; return 1; }
	done <"$1"
	[ "$steps" -ge "$3" ] || { echo "      $steps Pythons run by $2, not $3"; return 1; }
}
# stopped [SIGNAL]: SIGTERM (or SIGNAL) to the supervisor started as
# $sup_pid, its exit 0, and no child it had to kill (it would have after
# 5 s, and exited 0).
stopped() {
	kill -"${1:-TERM}" "$sup_pid"
	gone_within 15 "$sup_pid" || return 1
	wait "$sup_pid" || return 1
	! grep "did not stop: killing it" "$TMP/sup.log"
}

# http METHOD URL [BODY]: prints "STATUS BODY" on one line.
http() {
	local method=$1 url=$2 body=${3-}
	if [ -n "$body" ]; then
		curl -s -m 20 -o "$TMP/body" -w '%{http_code}' -X "$method" \
			-H 'Content-Type: application/json' --data-binary "$body" "$url"
	else
		curl -s -m 20 -o "$TMP/body" -w '%{http_code}' -X "$method" "$url"
	fi
	printf ' %s' "$(cat "$TMP/body")"
}

# nng_internal_leaks FILE: the file is a LeakSanitizer report of nng
# 1.5.2's own losses alone, each leak one of two kinds:
# - a connection of its IPC transport that was shaking hands as its socket
#   closed: one of that connection's objects by its size (its ipc_pipe,
#   nng_aio, nni_ipc_conn and nni_posix_pfd), allocated on nng's threads
#   with none of our code on the stack;
# - an answer handed to nng as its connection closed: rep0 closes the
#   connection's send before it forgets the connection, a reply sent in
#   between is set on that send, which refuses it without a word, and
#   nothing frees it then. The message (112 bytes each) and its body,
#   allocated in ipc_reply, whose send always hands them to nng.
# - beside such a lost connection, the listener it came in on, put back
#   meanwhile (see ipc.c): its objects, allocated in listener_start, which
#   nng keeps for the connection after nng_listener_close.
# A message nng received and we failed to free is neither, and stays
# reported.
nng_internal_leaks() {
	grep -q "ERROR: LeakSanitizer" "$1" || return 1
	! grep -q -E "ERROR: AddressSanitizer|runtime error:" "$1" || return 1
	awk '
		function judge() {
			if (!inleak)
				return
			if (ours_frame == "" && connection && size == 1760)
				lost_connection = 1
			if (ours_frame == "listener_start")
				listener = 1
			else if (!(ours_frame == "" && connection) &&
			    !(ours_frame == "ipc_reply" && message))
				ours = 1
			inleak = 0
		}
		# "Direct leak of 112 byte(s) in 1 object(s) allocated from:"
		/^(Direct|Indirect) leak of [0-9]+ byte\(s\) in [0-9]+ object/ {
			judge()
			inleak = 1
			ours_frame = ""
			size = $4
			connection = $7 == 1 && ($4 == 1760 || $4 == 464 ||
			    $4 == 312 || $4 == 152)
			message = $1 == "Indirect" || $4 == 112 * $7
			next
		}
		/^(Direct|Indirect) leak of/ { judge(); inleak = 1; ours = 1; next }
		/^$/ { judge(); next }
		inleak && ours_frame == "" && /^ *#[0-9]+ / {
			if ($0 ~ /libnng\.so/ || $0 ~ / in (start_thread|clone3?) / ||
			    $0 ~ / in __interceptor_(malloc|calloc|realloc) / ||
			    $0 ~ / in (malloc|calloc|realloc) /)
				next
			ours_frame = $0 ~ / in [^ ]+ / ? $4 : "?"
		}
		END { judge(); exit ours || (listener && !lost_connection) ? 1 : 0 }
	' "$1"
}

# The reports of the sanitizers, in $TMP/san or in any log under $TMP.
no_sanitizer_reports() {
	local found f reported=0
	found=$(grep -r -D skip -l -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$TMP" 2>/dev/null || true)
	for f in $found; do
		if nng_internal_leaks "$f"; then
			echo "      left aside: $(basename "$f"): nng 1.5.2's own losses only"
			continue
		fi
		grep -m1 -A12 -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$f" | sed 's/^/      /'
		# Every leak of a report, by size, and the first frame of ours:
		# the first lines above may show only nng's.
		awk '/^(Direct|Indirect) leak of/ { print; shown = 0; next }
			/^ *#[0-9]+ / && !shown && $0 !~ /libnng|__interceptor_|start_thread|clone/ { print; shown = 1 }
			/^SUMMARY/ { print }' "$f" | sed 's/^/      /'
		reported=1
	done
	[ "$reported" -eq 0 ]
}

finish() {
	# A process reports its leaks as it ends: all end first.
	stop_all
	check "no sanitizer reported anything" no_sanitizer_reports
	echo "$((CHECKS - FAILURES)) passed, $FAILURES failed"
	[ "$FAILURES" -eq 0 ]
}
