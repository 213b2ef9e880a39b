#!/usr/bin/env bash
# ollamax-supervisor and ollamaxctl as real processes in a temp dir: the
# process tree, readiness, restarts, status, check and orderly shutdown.
set -euo pipefail
. "$(dirname "$0")/lib.sh"


mkdir -p "$TMP/agents"
cat >"$TMP/ollamax.conf" <<CONF
[supervisor]
workers = 2
runtime_dir = run
agents_dir = agents
# A worker is held stopped here for 10 s on purpose: not a hang.
watchdog = 1m
# Nothing answers there: the runs here are taken and never answered, and an
# Ollama of the user's on 127.0.0.1:11434 is left alone.
[backend]
url = http://127.0.0.1:9
[tier.light]
model = tinyllama
CONF
# Its agents here run only when asked: a run of their own, which waits for
# a backend that never answers, would be held among the runs that checks
# below count, or keep the agent busy when a check runs it (a timer's first
# run falls anywhere in its first period).
cat >"$TMP/agents/001-probe.conf" <<'AGENT'
[agent]
name = probe
tier = light
trigger = demand
prompt = Report status {{n}}.
AGENT
SUP="$BUILD/ollamax-supervisor"
CTL="$BUILD/ollamaxctl"

check "check accepts a valid config and fleet" \
	has "$("$SUP" -c "$TMP/ollamax.conf" check 2>&1)" "ok: 1 tier, 0 models, 1 agent"
# start reads a config by its real path, so its relative paths are from the
# folder it is in; check must read it alike, or it judges another fleet.
mkdir -p "$TMP/elsewhere"
ln -s "$TMP/ollamax.conf" "$TMP/elsewhere/linked.conf"
check "check reads a config through a symbolic link from the folder it is in" \
	has "$(cd / && "$SUP" -c "$TMP/elsewhere/linked.conf" check 2>&1)" "ok: 1 tier, 0 models, 1 agent"
cp "$TMP/ollamax.conf" "$TMP/bad.conf"
printf '[broker]\nparallel = lots\n' >>"$TMP/bad.conf"
bad_check() {
	local out rc=0
	out=$("$SUP" -c "$TMP/bad.conf" check 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && has "$out" "$TMP/bad.conf:14: parallel: \"lots\" is not a whole number"
}
check "check reports a bad value with file:line and exits 1" bad_check
# A [model.NAME] no tier names is valid, but does nothing: most likely a
# model named otherwise in its tier. check and start say so.
printf '[model.tinyllama]\nsize_mb = 637\n[model.qwen2.5-coder:7b]\nsize_mb = 4000\n' >>"$TMP/ollamax.conf"
unused_model() {
	local out rc=0
	out=$("$SUP" -c "$TMP/ollamax.conf" check 2>&1) || rc=$?
	[ "$rc" -eq 0 ] && has "$out" "ok: 1 tier, 2 models, 1 agent" &&
		has "$out" "$TMP/ollamax.conf:15: warning: [model.qwen2.5-coder:7b]: no tier names this model: its settings have no effect" &&
		! has "$out" "[model.tinyllama]" >/dev/null
}
check "check warns of a [model.NAME] no tier names, with file:line, and exits 0" unused_model
ctl_usage() { local rc=0; "$CTL" frobnicate >/dev/null 2>&1 || rc=$?; [ "$rc" -eq 2 ]; }
check "ollamaxctl exits 2 on an unknown command" ctl_usage
ctl_unreachable() { local rc=0; "$CTL" -c "$TMP/ollamax.conf" status >/dev/null 2>&1 || rc=$?; [ "$rc" -eq 3 ]; }
long_socket() {
	local out rc=0
	out=$("$CTL" -s "/tmp/$(printf 'd%.0s' $(seq 120))/ctl.sock" status 2>&1) || rc=$?
	[ "$rc" -eq 3 ] && has "$out" "longer than the 107 bytes of a socket's path"
}
check "a socket path too long to reach is said so, exit 3" long_socket
check "ollamaxctl exits 3 when no supervisor runs" ctl_unreachable
socket_is_dir() {
	local out rc=0
	out=$("$CTL" -s "$TMP" status 2>&1) || rc=$?
	[ "$rc" -eq 3 ] && has "$out" "$TMP is a directory: -s takes the control socket's path, such as $TMP/ctl.sock"
}
check "-s naming a directory is told to name the socket in it" socket_is_dir
usage_said() {
	local want=$1 out rc=0
	shift
	out=$("$CTL" "$@" 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && has "$out" "ollamaxctl: $want"
}
check "an unknown option is named, exit 2" usage_said "unknown option -x" run -x some-agent
check "so is a long one" usage_said "unknown option --frob" --frob status
check "an option without its value is named, exit 2" usage_said "-s needs a value" status -s
check "a value for an option that takes none is named, exit 2" usage_said "--json takes no value" status --json=1
check "an empty -s is a usage error" usage_said "-s needs the control socket's path" -s "" status
# glibc's getopt stays on a group of letters until its last: the message
# is about the group, not the argument before it.
check "an unknown letter in a group after a --long=value is named" \
	usage_said "unknown option -x" --socket=/tmp/x -xj status
check "so is one in a group of its own" usage_said "unknown option -x" --json -xj status
# The command first: what is wrong with its argument depends on it.
check "an unknown command is named before its argument is judged" \
	usage_said 'unknown command "frob"' frob "$(printf '\377')"
check "a command that takes no argument says so, whatever the argument" \
	usage_said "status takes no argument" status "$(printf '\377')"
check "spawn-file, what spawn -f sends, is no command to type" \
	usage_said 'unknown command "spawn-file"' spawn-file x.conf
# Control bytes would act on the terminal that shows the message.
escapes_shown() {
	local out rc=0
	out=$("$CTL" "$(printf 'k\033[2Jx')" 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && has "$out" 'unknown command "k?[2Jx"' &&
		! printf '%s' "$out" | grep -q "$(printf '\033')"
}
check "a command's control bytes are shown as ?" escapes_shown
name_escaped() {
	local out rc=0
	out=$("$CTL" kill "$(printf 'x\033[2Jy')" 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && has "$out" 'kill "x?[2Jy": not an agent'"'"'s name: its character 2, U+001B,' &&
		! printf '%s' "$out" | grep -q "$(printf '\033')"
}
check "and so are an agent name's" name_escaped
timeout_escaped() {
	local out rc=0
	out=$("$CTL" run -w -t "$(printf '1\033[2J')" x 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && has "$out" "-t 1?[2J:" &&
		! printf '%s' "$out" | grep -q "$(printf '\033')"
}
check "and a -t value's, in what duration parsing says of it too" timeout_escaped

# With a descriptor of the test's, which the supervisor's children must
# not hold.
"$SUP" -c "$TMP/ollamax.conf" start 2>"$TMP/sup.log" 7>"$TMP/inherited" &
sup_pid=$!
PIDS+=("$sup_pid")
status_json() { "$CTL" -c "$TMP/ollamax.conf" --json status 2>/dev/null; }
# Ready means every child said hello; poll the status, bounded.
running_count() {
	status_json | python3 -c 'import json,sys
try: s = json.load(sys.stdin)
except Exception: print(0); sys.exit()
print(sum(1 for p in s["processes"] if p["state"] == "running"))' 2>/dev/null || echo 0
}
wait_running() {
	local want=$1
	for _ in $(seq 1 100); do
		[ "$(running_count)" = "$want" ] && return 0
		sleep 0.02
	done
	return 1
}
check "the supervisor, one broker and two workers run" wait_running 4
check "the log says ready" grep -q "ready: broker and 2 workers" "$TMP/sup.log"
# children_hold FILE: a child of the supervisor has FILE open.
children_hold() {
	local child
	for child in $(ps -o pid= --ppid "$sup_pid"); do
		find "/proc/$child/fd" -lname "$1" 2>/dev/null | grep -q . && { echo "      child $child holds $1"; return 0; }
	done
	return 1
}
no_child_holds() { ! children_hold "$1"; }
check "its children hold none of the descriptors it was started with" no_child_holds "$TMP/inherited"
check "start warns of the [model.NAME] no tier names" \
	grep -q "ollamax.conf:15: \[model.qwen2.5-coder:7b\]: no tier names this model" "$TMP/sup.log"
status=$(status_json)
check "status has the supervisor's pid and version" \
	has "$status" "\"supervisor\":{\"pid\":$sup_pid,"
every_rss_known() {
	python3 -c 'import json,sys
ps = json.loads(sys.argv[1])["processes"]
bad = [p["role"] for p in ps if p["rss_kb"] <= 0]
assert len(ps) == 4 and not bad, bad' "$status"
}
check "as soon as it is ready, status knows every process's memory" every_rss_known
agents_reported() {
	for _ in $(seq 1 100); do
		case "$(status_json)" in *'"agents":{"total":1,"running":1,"failed":0,"inbox":0}'*) return 0 ;; esac
		sleep 0.02
	done
	status_json
	return 1
}
check "status counts the agents the workers report running" agents_reported
check "children show a readable process title" \
	has "$(ps -o args= --ppid "$sup_pid")" "ollamax: worker 1"
perms() { [ "$(stat -c %a "$TMP/run")" = 700 ] && [ "$(stat -c %a "$TMP/run/ctl.sock")" = 600 ]; }
check "the runtime dir is 0700 and its sockets 0600" perms

worker_pid=$(python3 -c 'import json,sys
s = json.loads(sys.argv[1])
print([p["pid"] for p in s["processes"] if p["role"] == "worker" and p["index"] == 1][0])' "$status")
[ "${worker_pid:-0}" -gt 1 ] || { echo "no worker pid in the status"; cat "$TMP/sup.log"; exit 1; }
kill -KILL "$worker_pid"
restarted() {
	for _ in $(seq 1 50); do
		local s
		s=$(status_json) || true
		if python3 -c 'import json,sys
s = json.loads(sys.argv[1]); old = int(sys.argv[2])
w = [p for p in s["processes"] if p["role"] == "worker" and p["index"] == 1][0]
sys.exit(0 if w["pid"] != old and w["state"] == "running" and w["restarts"] == 1 else 1)' "$s" "$worker_pid" 2>/dev/null; then
			return 0
		fi
		sleep 0.02
	done
	return 1
}
check "a worker killed with SIGKILL is back within 1 s" restarted

cat >"$TMP/extra.conf" <<'AGENT'
[agent]
name = extra
tier = light
trigger = demand
prompt = Extra {{n}}.
AGENT
running_agents() {
	local want=$1
	for _ in $(seq 1 100); do
		status_json | python3 -c 'import json,sys
a = json.load(sys.stdin)["agents"]
sys.exit(0 if a["total"] == int(sys.argv[1]) and a["running"] == int(sys.argv[1]) else 1)' "$want" 2>/dev/null && return 0
		sleep 0.02
	done
	status_json
	return 1
}
rc_of() { local rc=0; "$@" >/dev/null 2>&1 || rc=$?; echo "$rc"; }
check "kill stops an agent" "$CTL" -c "$TMP/ollamax.conf" kill probe
check "and the workers no longer run it" running_agents 0
check "killing it again fails with exit 1" eq "$(rc_of "$CTL" -c "$TMP/ollamax.conf" kill probe)" 1
check "spawn NAME starts it again from the agents directory" "$CTL" -c "$TMP/ollamax.conf" spawn probe
# A manifest of the directory left out says why, where spawn NAME finds
# it, rather than that there is none.
printf '[agent]\nname = typo\ntier = light\ntrigger = demand\nprompt = {{input}} {{nmae}}\n' >"$TMP/agents/typo.conf"
check "spawn NAME of a manifest left out tells its file, line and field" \
	said_so "typo.conf:5: prompt: " spawn typo
rm "$TMP/agents/typo.conf"
check "spawn -f FILE starts a new agent" "$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/extra.conf"
check "both run" running_agents 2
check "spawning a running agent fails with exit 1" \
	eq "$(rc_of "$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/extra.conf")" 1
check "restart restarts an agent" "$CTL" -c "$TMP/ollamax.conf" restart extra
check "the worker logged it" grep -q "extra: restarted" "$TMP/sup.log"
check "kill without a name is a usage error" eq "$(rc_of "$CTL" -c "$TMP/ollamax.conf" kill)" 2
usage_says() {
	local words=$1 out rc=0
	shift
	out=$("$CTL" -c "$TMP/ollamax.conf" "$@" 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && has "$out" "$words"
}
check "a command line with one argument too many says which" \
	usage_says 'kill: too many arguments, from "spare"' kill extra spare
check "-w with another command than run says so" usage_says "-w goes with run only" -w status
input_refused() {
	local words=$1 out rc=0
	out=$(printf "$2" | "$CTL" -c "$TMP/ollamax.conf" run extra - 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && has "$out" "$words"
}
check "run input with a NUL byte is refused, not cut short" \
	input_refused "the input has a NUL byte at offset 1" 'x\0more'
check "run input that is not UTF-8 is refused, the byte shown" \
	input_refused "the input is not UTF-8 text: byte 0xE9 at offset 3" 'Caf\351'
# A frame would carry the name only up to the bad byte: "extra".
check "an agent name that is not UTF-8 is refused, the byte shown" \
	usage_says "kill: the agent name is not UTF-8 text: byte 0xFF at offset 5" kill "$(printf 'extra\377')"
agent_state() {
	"$CTL" -c "$TMP/ollamax.conf" --json agents | python3 -c 'import json,sys
print(next(a["state"] for a in json.load(sys.stdin)["agents"] if a["name"] == sys.argv[1]))' "$1"
}
check "and the agent its first bytes name runs on" eq "$(agent_state extra)" running

# A worker that does not answer within 5 s: the client, waiting longer,
# hears why, and the worker, once it runs again, refuses the command come
# past its deadline rather than act behind the supervisor's back.
worker_pid() {
	status_json | python3 -c 'import json,sys
s = json.load(sys.stdin)
print(next(p["pid"] for p in s["processes"] if p["role"] == "worker" and p["index"] == int(sys.argv[1])))' "$1"
}
worker_of() {
	worker_pid "$("$CTL" -c "$TMP/ollamax.conf" --json agents | python3 -c 'import json,sys
print(next(a["worker"] for a in json.load(sys.stdin)["agents"] if a["name"] == sys.argv[1]))' "$1")"
}
stalled=$(worker_of extra)
kill -STOP "$stalled"
kill_unanswered() {
	local out rc=0
	out=$("$CTL" -c "$TMP/ollamax.conf" kill extra 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && has "$out" "did not answer"
}
check "a kill its stopped worker does not answer is told so, exit 1" kill_unanswered
run_unanswered() {
	local out rc=0
	out=$("$CTL" -c "$TMP/ollamax.conf" run extra 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && has "$out" "did not answer"
}
check "so is a run of one of its agents" run_unanswered
kill -CONT "$stalled"
check "running again, the worker refuses the kill come past its deadline" \
	wait_log "kill extra came [0-9]* ms past its deadline: not carried out"
check "and the run" wait_log "a message for extra came [0-9]* ms past its deadline: not carried out"
check "so the agent still runs there: a run of it is taken" "$CTL" -c "$TMP/ollamax.conf" run extra
check "asked again, the kill is done" "$CTL" -c "$TMP/ollamax.conf" kill extra
check "by the worker, now" sh -c "grep -q 'extra: killed' '$TMP/sup.log' && ! grep -q 'extra: not here' '$TMP/sup.log'"
check "and the supervisor agrees with the worker" running_agents 1
check "spawn -f starts it again" "$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/extra.conf"
check "both run again" running_agents 2

# A client that hangs up before the server's half of the handshake is
# written stops nng 1.5.2's listener for good; the process sees it and
# listens again. hang_up_halfway PID SOCKET [COMMAND...]: such a client,
# connected while the process is stopped; COMMAND runs before it resumes.
hang_up_halfway() {
	local pid=$1 socket=$2
	shift 2
	kill -STOP "$pid"
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.close()' "$socket"
	[ $# -eq 0 ] || "$@"
	kill -CONT "$pid"
}
hang_up_halfway "$sup_pid" "$TMP/run/ctl.sock"
# A command sent meanwhile shakes hands with the stopped listener; it must
# be cut when the listener is replaced, not held (a status is then asked
# again within its 7 s, so it ends within them whatever comes). nng
# never frees such a connection, so under the sanitizers it would be
# reported as a leak at exit: the plain build alone sends it.
between_sent=0
if [ "$SANITIZED" = no ]; then
	between_sent=1
	(
		rc=0
		timeout 9 "$CTL" -c "$TMP/ollamax.conf" status >/dev/null 2>&1 || rc=$?
		echo "$rc" >"$TMP/between.rc"
	) &
	between=$!
fi
check "a control socket a client hung up on halfway is put back" \
	wait_log "ctl.sock took no new connection after a peer hung up halfway through connecting: listening again"
if [ "$between_sent" = 1 ]; then
	wait "$between"
	check "a command sent in between is cut or answered, not held" \
		sh -c "[ \"\$(cat '$TMP/between.rc')\" != 124 ]"
fi
# Within 15 s: a deaf socket holds each try for ollamaxctl's 7 s.
answers_again() {
	local until=$((SECONDS + 15))
	while [ "$SECONDS" -lt "$until" ]; do
		"$CTL" -c "$TMP/ollamax.conf" status >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
check "and answers again" answers_again
# A mistyped -s beside a live supervisor's socket: said at once, no lock
# taken to speak for it.
mistyped_socket() {
	local out rc=0
	out=$(timeout 2 "$CTL" -s "$TMP/run/ctl.sok" status 2>&1) || rc=$?
	[ "$rc" -eq 3 ] && has "$out" "$TMP/run/ctl.sok: no such file" &&
		! has "$out" "holds the supervisor's lock" >/dev/null
}
check "-s naming no socket beside a live supervisor's is said so at once" mistyped_socket
# A look cut by a listener deaf for that moment is asked again, within its
# time: a client that hung up halfway costs the next status nothing.
look_after_hang_up() {
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.close()' "$TMP/run/ctl.sock"
	"$CTL" -c "$TMP/ollamax.conf" status >/dev/null
}
# The plain build alone: as above, the connection cut is never freed.
if [ "$SANITIZED" = no ]; then
	check "a status right after a client hung up halfway is answered" look_after_hang_up
fi
log_count() { grep -c -- "$1" "$TMP/sup.log" || true; }
# Runs the fleet holds: waiting in an inbox (the agent busy), or queued in
# the broker (here, for a backend that never answers).
runs_held() {
	"$CTL" -c "$TMP/ollamax.conf" --json status | python3 -c 'import json,sys
s = json.load(sys.stdin)
print(s["agents"]["inbox"] + s["broker"]["queued"])'
}
# held_runs_are N: until the latest reports count N runs held (5 s at
# most). Here, with extra just killed and spawned again, 0: the kill's
# cancel of a run extra held shows in the broker's next report, and no
# other agent holds one (probe runs only when asked).
held_runs_are() { status_until 's["agents"]["inbox"] + s["broker"]["queued"] == '"$1"; }
# uptime_now: the supervisor's uptime, in its whole seconds.
uptime_now() {
	"$CTL" -c "$TMP/ollamax.conf" --json status | python3 -c 'import json,sys
print(json.load(sys.stdin)["supervisor"]["uptime_s"])'
}
# reported_since UPTIME: every child has reported since the supervisor's
# uptime read UPTIME: each reports every second, and two of the
# supervisor's seconds on, more than one has passed.
reported_since() { status_until "s['supervisor']['uptime_s'] >= $1 + 2"; }
# taken_once UPTIME: the run answered as the supervisor's uptime read
# UPTIME is held once. extra was idle: the run went to the broker, whose
# report carries it. A second one, carried out by extra's worker before
# the command was answered, would wait in extra's inbox (extra busy with
# the first), and every report of that worker made since counts it.
taken_once() {
	local since=$1
	held_runs_are 1 && reported_since "$since" && held_runs_are 1
}
# So is a command that changes something, sent again under its id, and
# carried out once: the copy the deaf listener held was never read, or
# is answered as the first. Its hang-up made while the supervisor is
# stopped, so that the command shakes hands with the stopped listener,
# and is cut, whatever the timing.
put_backs=$(log_count "ctl.sock took no new connection")
change_after_hang_up() {
	hang_up_halfway "$sup_pid" "$TMP/run/ctl.sock"
	"$CTL" -c "$TMP/ollamax.conf" "$@" >/dev/null
}
put_back_meanwhile() {
	local now
	now=$(log_count "ctl.sock took no new connection")
	[ "$now" -gt "$put_backs" ] || { echo "      the listener was not put back"; return 1; }
	put_backs=$now
}
if [ "$SANITIZED" = no ]; then
	kills=$(log_count "kill extra on worker")
	check "a kill right after a client hung up halfway is carried out" change_after_hang_up kill extra
	check "the listener it shook hands with having been put back" put_back_meanwhile
	check "once" eq "$(log_count "kill extra on worker")" $((kills + 1))
	spawns=$(log_count "spawn extra on worker")
	check "so is a spawn" change_after_hang_up spawn -f "$TMP/extra.conf"
	check "the listener having been put back" put_back_meanwhile
	check "once" eq "$(log_count "spawn extra on worker")" $((spawns + 1))
	check "the runs extra held are gone" held_runs_are 0
	check "and a run" change_after_hang_up run extra
	since=$(uptime_now)
	check "the listener having been put back" put_back_meanwhile
	check "once" taken_once "$since"
fi
# A copy under the id of one answered is answered as it was, and not
# carried out again: a second kill would find the agent stopped.
COPIES="$BUILD/tests/ctl_copies"
# copies_say WANT ARG...: ctl_copies ARG... prints the answers WANT.
copies_say() {
	local want=$1 out
	shift
	out=$("$COPIES" "$@" 2>&1) || true
	eq "$out" "$want"
}
kills=$(log_count "kill extra on worker")
check "a kill sent twice under one id is answered ok twice" \
	copies_say "$(printf 'ok\nok')" "$TMP/run/ctl.sock" 1000001 kill extra
check "and carried out once" eq "$(log_count "kill extra on worker")" $((kills + 1))
# What the state of an agent does not stop from being done twice.
spawns=$(log_count "spawn extra on worker")
check "a spawn sent twice under one id is answered ok twice" \
	copies_say "$(printf 'ok\nok')" "$TMP/run/ctl.sock" 1000003 spawn-file "$TMP/extra.conf"
check "and carried out once" eq "$(log_count "spawn extra on worker")" $((spawns + 1))
check "the runs extra held are gone" held_runs_are 0
check "a run sent twice under one id is answered ok twice" \
	copies_say "$(printf 'ok\nok')" "$TMP/run/ctl.sock" 1000004 run extra
check "and taken once" taken_once "$(uptime_now)"
kills=$(log_count "kill extra on worker")
check "a kill sent again" copies_say "$(printf 'ok\nok')" "$TMP/run/ctl.sock" 1000005 kill extra
check "is carried out once" eq "$(log_count "kill extra on worker")" $((kills + 1))
# One that comes while the first is under way, the first's connection
# cut, waits for the first's answer: the spawn waits on its worker, held
# stopped meanwhile.
spawn_while_under_way() {
	local w0 w1 resume rc=0
	w0=$(worker_pid 0)
	w1=$(worker_pid 1)
	kill -STOP "$w0" "$w1"
	(sleep 1.5 && kill -CONT "$w0" "$w1") &
	resume=$!
	copies_say "$(printf 'cut\nok')" --first-cut "$TMP/run/ctl.sock" 1000002 \
		spawn-file "$TMP/extra.conf" || rc=$?
	wait "$resume"
	return "$rc"
}
spawns=$(log_count "spawn extra on worker")
check "a spawn sent again while the first is under way is answered ok" spawn_while_under_way
check "and carried out once" eq "$(log_count "spawn extra on worker")" $((spawns + 1))
check "both run again" running_agents 2
# Another command under a known id is refused, not taken for a copy.
refused="refused: request id 00000000000f4242 came before with another command: kill is not carried out"
check "another command under an id known is refused" \
	copies_say "$(printf '%s\n%s' "$refused" "$refused")" "$TMP/run/ctl.sock" 1000002 kill extra
refused="refused: bad request: id: not an unsigned integer"
check "an id that is no id is refused by name" \
	copies_say "$(printf '%s\n%s' "$refused" "$refused")" "$TMP/run/ctl.sock" one kill extra
check "and nothing was carried out" running_agents 2
# A peer of another uid is cut once connected: accepted and closed without
# an error in nng's counts, it must not hide a later peer that hangs up
# halfway. A process of another uid that may open the socket (0600) needs
# root's CAP_DAC_OVERRIDE kept: root only, and a root that can take uid
# 65534 (a user namespace may map no other uid than its own).
as_other_uid() {
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		--inh-caps=+dac_override --ambient-caps=+dac_override "$@"
}
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null &&
	as_other_uid python3 -c '' 2>/dev/null; then
	# Shakes hands as a REQ peer, then waits for the cut.
	cut_as_other_uid() {
		as_other_uid python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"\0SP\0\0\x30\0\0")
s.recv(8)
sys.exit(0 if s.recv(1) == b"" else 1)' "$TMP/run/ctl.sock"
	}
	cut_thrice() { cut_as_other_uid && cut_as_other_uid && cut_as_other_uid; }
	check "a peer of another uid is cut once connected" cut_thrice
	put_back=$(grep -c "ctl.sock took no new connection" "$TMP/sup.log")
	put_back_again() {
		for _ in $(seq 1 200); do
			[ "$(grep -c "ctl.sock took no new connection" "$TMP/sup.log")" -gt "$put_back" ] && return 0
			sleep 0.05
		done
		return 1
	}
	hang_up_halfway "$sup_pid" "$TMP/run/ctl.sock"
	check "a client that hangs up halfway after them is seen: the control socket is put back" put_back_again
	check "and answers again" answers_again
	other_uid_told() {
		local out rc=0
		out=$(as_other_uid "$CTL" -s "$TMP/run/ctl.sock" status 2>&1) || rc=$?
		[ "$rc" -eq 3 ] && has "$out" "ollamaxctl: $TMP/run/ctl.sock belongs to uid 0 (root): its supervisor takes commands from that user only"
	}
	check "ollamaxctl of another uid is told whose the socket is, exit 3" other_uid_told
	# Without root's capability, the runtime dir (0700), or a dir above
	# it, is as far as another user sees: it tells whose.
	other_uid_told_dir() {
		local out rc=0
		out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$CTL" -s "$TMP/run/ctl.sock" status 2>&1) || rc=$?
		[ "$rc" -eq 3 ] && has "$out" "belongs to uid 0 (root): its supervisor takes commands from that user only"
	}
	check "and so is one who cannot look into the runtime dir" other_uid_told_dir
else
	echo "      (not root, or no other uid to take: a peer of another uid is not tried)"
fi
# So does a worker. Its socket, named by -s, answers ollamaxctl's frame
# with an error: an answer all the same.
hang_up_halfway "$(worker_pid 0)" "$TMP/run/worker-0.sock"
check "a worker's socket a client hung up on halfway is put back" \
	wait_log "worker-0.sock took no new connection after a peer hung up halfway through connecting: listening again"
worker_answers() {
	local out rc=0
	out=$("$CTL" -s "$TMP/run/worker-0.sock" status 2>&1) || rc=$?
	[ "$rc" -eq 3 ] && has "$out" "is not a supervisor: this is a worker's socket: commands go to the supervisor's, ctl.sock beside it"
}
check "and takes a new connection's frame" worker_answers
# The same, with the path taken meanwhile: the worker cannot listen again
# until it is free, and must keep trying, not stay deaf.
take_path() { rm -f "$1" && mkdir "$1"; }
hang_up_halfway "$(worker_pid 0)" "$TMP/run/worker-0.sock" \
	take_path "$TMP/run/worker-0.sock"
check "a worker whose path is taken says so and keeps trying" \
	wait_log "worker-0.sock again: .*: trying each second"
rmdir "$TMP/run/worker-0.sock"
check "and listens once the path is free" \
	wait_log "listening on ipc://.*/worker-0.sock again"
check "and takes a new connection's frame then" worker_answers

# spawn -f reads only a regular file: a FIFO would hold the supervisor up.
mkfifo "$TMP/fifo.conf"
spawn_refused() {
	local words=$1 out
	shift
	if out=$("$CTL" -c "$TMP/ollamax.conf" spawn -f "$1" 2>&1); then
		echo "      accepted: $1"
		return 1
	fi
	has "$out" "$words"
}
check "spawn -f of a FIFO is refused at once, said why" \
	spawn_refused "fifo.conf: not a regular file" "$TMP/fifo.conf"
check "and the supervisor still answers" running_agents 2
printf '[agent]\nname = gilded\ntier = gold\ntrigger = demand\nprompt = x\n' >"$TMP/gilded.conf"
check "spawn -f of an agent of an unknown tier names the file and line" \
	spawn_refused "gilded.conf:3: tier: \"gold\" is not a [tier.NAME]" "$TMP/gilded.conf"
# The path first, then the problem: a long path must leave it room.
deep="$TMP/$(printf 'd%.0s' $(seq 120))/$(printf 'e%.0s' $(seq 120))"
mkdir -p "$deep"
cp "$TMP/gilded.conf" "$deep/gilded.conf"
check "and the problem after a path of some 270 bytes" \
	spawn_refused "$deep/gilded.conf:3: tier: \"gold\" is not a [tier.NAME] of $TMP/ollamax.conf" "$deep/gilded.conf"
# The supervisor's answer names the file as it is: its control bytes would
# act on the terminal.
cp "$TMP/gilded.conf" "$TMP/$(printf 'esc\033[2Jx').conf"
esc_path_shown() {
	local out
	out=$("$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/$(printf 'esc\033[2Jx').conf" 2>&1) && return 1
	has "$out" "esc?[2Jx.conf:3: tier" && ! printf '%s' "$out" | grep -q "$(printf '\033')"
}
check "and a path's control bytes as ?" esc_path_shown
printf '[agent]\nname = lost\ntier = light\ntrigger = demand\noutput = agent:nobody\nprompt = x\n' >"$TMP/lost.conf"
check "spawn -f of an agent whose output goes nowhere is refused" \
	spawn_refused "lost.conf:5: output: no agent nobody is running" "$TMP/lost.conf"
sed 's/^output = agent:nobody$/output = agent:extar/' "$TMP/lost.conf" >"$TMP/lost-near.conf"
check "one whose output names a running agent's name mistyped is told that name" \
	spawn_refused "lost-near.conf:5: output: no agent extar is running: did you mean 'extra'?" "$TMP/lost-near.conf"
printf '[agent]\nname = echo\ntier = light\ntrigger = inbox\noutput = agent:echo\nprompt = x\n' >"$TMP/echo.conf"
check "spawn -f of an agent whose answers come back to it is refused" \
	spawn_refused "output: its answers would come back to echo from echo" "$TMP/echo.conf"
# Answers sent to an agent are its run's {{input}}: to one whose prompt
# has none, or one without an inbox (a message runs its agent whatever
# its trigger: round a loop, for ever), they would be lost or loop.
printf '[agent]\nname = mute\ntier = light\ntrigger = inbox\nprompt = Ping.\n' >"$TMP/mute.conf"
printf '[agent]\nname = talker\ntier = light\ntrigger = demand\noutput = agent:mute\nprompt = Say {{input}}\n' >"$TMP/talker.conf"
printf '[agent]\nname = ear\ntier = light\ntrigger = inbox\nprompt = Note {{input}}\n' >"$TMP/ear.conf"
printf '[agent]\nname = mouth\ntier = light\ntrigger = demand\noutput = agent:ear\nprompt = Say {{input}}\n' >"$TMP/mouth.conf"
printf '[agent]\nname = ear\ntier = light\ntrigger = demand\noutput = agent:mouth\nprompt = Note {{input}}\n' >"$TMP/ear-loud.conf"
printf '[agent]\nname = ear\ntier = light\ntrigger = inbox\nprompt = Ping.\n' >"$TMP/ear-deaf.conf"
for a in mute ear mouth; do "$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/$a.conf" >/dev/null; done
check "spawn -f of an agent whose answers go to one without {{input}} is refused" \
	spawn_refused "output: agent mute's prompt has no {{input}}: the answers would be lost unread" "$TMP/talker.conf"
"$CTL" -c "$TMP/ollamax.conf" kill ear >/dev/null
check "spawn -f of an agent another sends its answers to, without an inbox, is refused" \
	spawn_refused "ear-loud.conf:4: trigger: agent mouth sends its answers to ear, which would have no inbox" "$TMP/ear-loud.conf"
check "or without {{input}}" \
	spawn_refused "prompt: agent mouth sends its answers to ear, whose prompt has no {{input}}" "$TMP/ear-deaf.conf"
for a in mute mouth; do "$CTL" -c "$TMP/ollamax.conf" kill "$a" >/dev/null; done
check "and the agents are as they were" running_agents 2

# reload: a new manifest starts, a changed one restarts, a removed one stops,
# a bad one is reported while the rest carry on.
cat >"$TMP/agents/002-second.conf" <<'AGENT'
[agent]
name = second
tier = light
trigger = demand
prompt = Second {{n}}.
AGENT
check "reload starts a new manifest" \
	eq "$("$CTL" -c "$TMP/ollamax.conf" reload)" "reload: 1 started, 0 stopped, 0 changed, 0 problems"
check "three agents run" running_agents 3
sed -i 's/^prompt = Second {{n}}\.$/prompt = Second, again {{n}}./' "$TMP/agents/002-second.conf"
touch -d '+1 minute' "$TMP/agents/002-second.conf"
rm "$TMP/agents/001-probe.conf"
printf 'not a manifest\n' >"$TMP/agents/003-bad.conf"
check "reload restarts a changed one, stops a removed one, reports a bad one" \
	has "$("$CTL" -c "$TMP/ollamax.conf" reload)" "reload: 0 started, 1 stopped, 1 changed, 5 problems: $TMP/agents/003-bad.conf:1: syntax error"
check "the agent spawned from elsewhere is left alone" running_agents 2
problems_on_own_lines() {
	local all own
	# The reload's summary names the first too, on its own line.
	all=$(grep "003-bad.conf" "$TMP/sup.log" | grep -vc "reload: [0-9]* started")
	own=$(grep -c "^[0-9:.]* ollamax-supervisor: warning: reload: .*003-bad.conf:" "$TMP/sup.log")
	[ "$all" -ge 5 ] && [ "$own" -eq "$all" ] || { echo "      $own of $all lines"; return 1; }
}
check "each problem is a log line of its own, with its time and its file" problems_on_own_lines
rm "$TMP/agents/003-bad.conf"
manifest_of() {
	"$CTL" -c "$TMP/ollamax.conf" --json agents | python3 -c 'import json,sys
print(next(a["manifest"] for a in json.load(sys.stdin)["agents"] if a["name"] == sys.argv[1]))' "$1"
}
sed 's/^prompt = .*/prompt = Taken over./' "$TMP/extra.conf" >"$TMP/agents/005-extra.conf"
check "a manifest that takes the name of an agent spawned by hand is a problem" \
	has "$("$CTL" -c "$TMP/ollamax.conf" reload)" "reload: 0 started, 0 stopped, 0 changed, 1 problem: "
check "said so in the log" wait_log "agent extra runs from $TMP/extra.conf (spawn -f): kill it"
check "and the agent spawned by hand runs on" eq "$(manifest_of extra)" "$TMP/extra.conf"
rm "$TMP/agents/005-extra.conf"
cat >"$TMP/agents/004-third.conf" <<'AGENT'
[agent]
name = third
tier = light
trigger = demand
prompt = Third.
AGENT
kill -HUP "$sup_pid"
check "SIGHUP reloads too" running_agents 3
agents_table() {
	local out
	out=$("$CTL" -c "$TMP/ollamax.conf" agents)
	has "$out" "third" && has "$out" "extra" && ! grep -q "^probe " <<<"$out"
}
check "ollamaxctl agents lists every agent with its worker and state, not one whose manifest was removed" agents_table
# A file name that is not UTF-8 (Latin-1 here): JSON shows its byte as
# U+FFFD, rather than leave the agent out.
latin="$TMP/agents/006-caf$(printf '\351').conf"
printf '[agent]\nname = latin\ntier = light\ntrigger = demand\nprompt = Latin.\n' >"$latin"
check "an agent whose file name is not UTF-8 starts" \
	eq "$("$CTL" -c "$TMP/ollamax.conf" reload)" "reload: 1 started, 0 stopped, 0 changed, 0 problems"
check "and is listed, the byte shown as U+FFFD" \
	eq "$(manifest_of latin)" "$TMP/agents/006-caf$(printf '\357\277\275').conf"
# A file name with a newline: one row in the table all the same.
lined="$TMP/agents/007-two
lines.conf"
printf '[agent]\nname = lined\ntier = light\ntrigger = demand\nprompt = Lined.\n' >"$lined"
one_row() {
	"$CTL" -c "$TMP/ollamax.conf" reload >/dev/null &&
		"$CTL" -c "$TMP/ollamax.conf" agents | grep -q "^lined .*/007-two?lines.conf$"
}
check "an agent whose file name has a newline is listed in one row" one_row
sed -i 's/^tier = light$/tier = gold/' "$lined"
check "broken, it keeps running, as a reload says" \
	has "$("$CTL" -c "$TMP/ollamax.conf" reload)" "reload: 0 started, 0 stopped, 0 changed, 1 problem: "
check "in one log line, its name's newline no line of its own" sh -c \
	"grep -q 'reload: lined keeps running as it was: .*/007-two?lines.conf has errors' '$TMP/sup.log' &&
	! grep -q '^lines.conf' '$TMP/sup.log'"
rm "$lined"
"$CTL" -c "$TMP/ollamax.conf" reload >/dev/null
rm "$latin"
check "and stops with its file" \
	eq "$("$CTL" -c "$TMP/ollamax.conf" reload)" "reload: 0 started, 1 stopped, 0 changed, 0 problems"
# An agent spawned by hand that sends its answers to a directory's agent:
# a reload that would take that agent's inbox, or its {{input}}, away is
# refused as a spawn would be, and the agent runs on as it was.
printf '[agent]\nname = listener\ntier = light\ntrigger = inbox\nprompt = Heard {{input}}\n' >"$TMP/agents/008-listener.conf"
"$CTL" -c "$TMP/ollamax.conf" reload >/dev/null
printf '[agent]\nname = caller\ntier = light\ntrigger = demand\noutput = agent:listener\nprompt = Say {{input}}\n' >"$TMP/caller.conf"
"$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/caller.conf" >/dev/null
printf '[agent]\nname = listener\ntier = light\ntrigger = demand\nprompt = Heard nothing.\n' >"$TMP/agents/008-listener.conf"
touch -d '+1 minute' "$TMP/agents/008-listener.conf"
check "a reload that would leave a running sender's target without an inbox is a problem" \
	has "$("$CTL" -c "$TMP/ollamax.conf" reload)" "reload: 0 started, 0 stopped, 0 changed, 1 problem: "
check "said so, with the file and line, and the agent runs on as it was" \
	wait_log "reload: .*008-listener.conf:4: trigger: agent caller sends its answers to listener, which would have no inbox: agent listener keeps running as it was"
"$CTL" -c "$TMP/ollamax.conf" kill caller >/dev/null
check "its sender gone, the change is taken" \
	eq "$("$CTL" -c "$TMP/ollamax.conf" reload)" "reload: 0 started, 0 stopped, 1 changed, 0 problems"
rm "$TMP/agents/008-listener.conf"
"$CTL" -c "$TMP/ollamax.conf" reload >/dev/null

# A worker that crashes comes back with what the supervisor placed on it:
# agents spawned since start included, agents killed since not.
check "kill stops a directory agent" "$CTL" -c "$TMP/ollamax.conf" kill third
check "two agents run" running_agents 2
old_workers=$(status_json | python3 -c 'import json,sys
print(" ".join(str(p["pid"]) for p in json.load(sys.stdin)["processes"] if p["role"] == "worker"))')
for p in $old_workers; do
	[ "$p" -gt 1 ] && kill -KILL "$p"
done
workers_replaced() {
	for _ in $(seq 1 100); do
		status_json | python3 -c 'import json,sys
old = set(int(p) for p in sys.argv[1].split())
ws = [p for p in json.load(sys.stdin)["processes"] if p["role"] == "worker"]
sys.exit(0 if all(p["pid"] not in old and p["state"] == "running" for p in ws) else 1)' "$old_workers" 2>/dev/null && return 0
		sleep 0.02
	done
	return 1
}
check "both workers killed with SIGKILL are back" workers_replaced
check "with the spawned agent and without the killed one" running_agents 2
check "and the agents list agrees" sh -c "'$CTL' -c '$TMP/ollamax.conf' agents | grep -q '^third .*stopped'"
# Started by hand from the directory's own file, an agent is the
# directory's: reload restarts it when the file changes.
check "spawn -f starts a killed directory agent from its own file" \
	"$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/agents/004-third.conf"
sed -i 's/^prompt = Third\.$/prompt = Third, again./' "$TMP/agents/004-third.conf"
touch -d '+2 minutes' "$TMP/agents/004-third.conf"
check "changed there, reload restarts it from the new text" \
	eq "$("$CTL" -c "$TMP/ollamax.conf" reload)" "reload: 0 started, 0 stopped, 1 changed, 0 problems"
# What a reload must not stop: an agent whose manifest is caught broken,
# or a fleet whose directory cannot be read for a moment.
cp "$TMP/agents/002-second.conf" "$TMP/second.keep"
sed -i 's/^tier = light$/tier = gold/' "$TMP/agents/002-second.conf"
check "reload with a running agent's manifest broken reports it" \
	has "$("$CTL" -c "$TMP/ollamax.conf" reload)" "reload: 0 started, 0 stopped, 0 changed, 1 problem: "
check "and the agent keeps running as it was" running_agents 3
check "said so" wait_log "reload: second keeps running as it was: .*002-second.conf has errors"
mv "$TMP/second.keep" "$TMP/agents/002-second.conf"
mv "$TMP/agents" "$TMP/agents.away"
reload_refused() {
	local out rc=0
	out=$("$CTL" -c "$TMP/ollamax.conf" reload 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && has "$out" "ollamaxctl: reload: $TMP/agents: cannot read the agents directory: No such file or directory: nothing changed"
}
check "reload of an agents directory that cannot be read fails, changing nothing" reload_refused
mv "$TMP/agents.away" "$TMP/agents"
check "and every agent runs on" running_agents 3
# A copy of a running agent's manifest, its name left as it was, that
# sorts first: the agent that runs keeps its name and its file, and a
# change to that file is taken.
cp "$TMP/agents/004-third.conf" "$TMP/agents/000-copy.conf"
sed -i 's/^prompt = Third, again\.$/prompt = Third, once more./' "$TMP/agents/004-third.conf"
check "reload of a copy that takes a running agent's name leaves the copy out, and takes the change to the agent's file" \
	has "$("$CTL" -c "$TMP/ollamax.conf" reload)" "reload: 0 started, 0 stopped, 1 changed, 1 problem: "
check "the agent runs on from its own file" eq "$(manifest_of third)" "$TMP/agents/004-third.conf"
check "and the copy is named in the log" \
	wait_log "000-copy.conf:2: name: \"third\" is taken by .*004-third.conf, which runs it"
check "not the agent's file" sh -c "! grep -q '004-third.conf:2: name: \"third\" is taken' '$TMP/sup.log'"
# Its own file broken too: the agent runs on as it was, still with its name.
sed -i 's/^tier = light$/tier = gold/' "$TMP/agents/004-third.conf"
check "reload of that copy with the agent's file broken leaves both out" \
	has "$("$CTL" -c "$TMP/ollamax.conf" reload)" "reload: 0 started, 0 stopped, 0 changed, 2 problems: "
check "the agent keeps running as it was, from its own file" sh -c \
	"grep -q 'reload: third keeps running as it was: .*004-third.conf has errors' '$TMP/sup.log' &&
	 grep -q '000-copy.conf:2: name: \"third\" is .*004-third.conf.s, which runs it: left out' '$TMP/sup.log'"
sed -i 's/^tier = gold$/tier = light/' "$TMP/agents/004-third.conf"
rm "$TMP/agents/000-copy.conf"
# Agents a reload starts together spread over the workers.
for n in 1 2 3 4; do
	printf '[agent]\nname = new%s\ntier = light\ntrigger = demand\nprompt = x\n' "$n" \
		>"$TMP/agents/01$n-new$n.conf"
done
check "reload starts four new manifests" \
	eq "$("$CTL" -c "$TMP/ollamax.conf" reload)" "reload: 4 started, 0 stopped, 0 changed, 0 problems"
# Each spawn is placed once its worker answers: wait for all four.
spread() {
	local placed
	for _ in $(seq 1 100); do
		placed=$("$CTL" -c "$TMP/ollamax.conf" --json agents | python3 -c 'import json,sys
print(" ".join(sorted(str(a["worker"]) for a in json.load(sys.stdin)["agents"] if a["name"].startswith("new"))))')
		[ "$placed" = "0 0 1 1" ] && return 0
		case "$placed" in *" "*" "*" "*) break ;; esac
		sleep 0.05
	done
	echo "      workers: $placed"
	return 1
}
check "two on each worker" spread
for n in 1 2 3 4; do
	"$CTL" -c "$TMP/ollamax.conf" kill "new$n" >/dev/null
	rm "$TMP/agents/01$n-new$n.conf"
done
check "agents killed, then their manifests removed, leave the list at a reload" \
	eq "$("$CTL" -c "$TMP/ollamax.conf" reload)" "reload: 0 started, 0 stopped, 0 changed, 0 problems"
# none_listed PREFIX: ollamaxctl agents answers, and lists no agent so named.
none_listed() {
	local out
	out=$("$CTL" -c "$TMP/ollamax.conf" agents) || return 1
	[ -n "$out" ] && ! grep -q "^$1" <<<"$out"
}
check "the list has none of them" none_listed new

children=$(ps -o pid= --ppid "$sup_pid" | tr -d ' ' | tr '\n' ' ')
# While it waits for its children to stop, the supervisor still answers
# what it is doing and refuses new work. Worker 1, held, keeps it waiting.
held=$(worker_pid 1)
kill -STOP "$held"
kill -TERM "$sup_pid"
# Few and quick: 5 s after the SIGTERM, the supervisor kills the worker.
check "a stopping supervisor says so in its status, and of the worker it waits for" \
	status_until 'all(p["state"] == "stopping" for p in s["processes"] if p["role"] == "supervisor" or p["role"] == "worker" and p["index"] == 1)'
kill -HUP "$sup_pid"
check "and refuses a run" said_so "the supervisor is stopping: run is not carried out" run second
check "a kill" said_so "the supervisor is stopping: kill is not carried out" kill second
check "and a reload" said_so "the supervisor is stopping: the agents directory is not read again" reload
# The held worker crashes in its stop: that leaves a trace.
kill -ABRT "$held" 2>/dev/null || :
kill -CONT "$held" 2>/dev/null || :
check "a worker that crashes as the fleet stops is told of" \
	wait_log "worker 1 died of signal 6 as the fleet stopped"
# Both the reload and the SIGHUP sent before it say so in the log.
reloads_refused() {
	for _ in $(seq 1 200); do
		[ "$(grep -c 'reload: the supervisor is stopping: the agents directory is not read again' "$TMP/sup.log")" -eq 2 ] && return 0
		sleep 0.05
	done
	return 1
}
check "SIGHUP then reads no agents directory, said so" reloads_refused
rc=0
wait "$sup_pid" || rc=$?
check "SIGTERM with a crash in the stop: the supervisor exits 1" eq "$rc" 1
check "and says why" grep -q "ollamax-supervisor: warning: stopped: 1 child did not stop cleanly$" "$TMP/sup.log"
check "SIGTERM: no child had to be killed" sh -c "! grep 'did not stop: killing it' '$TMP/sup.log'"
none_left() {
	for p in $children; do kill -0 "$p" 2>/dev/null && return 1; done
	return 0
}
check "SIGTERM: no child is left behind" none_left
check "SIGTERM: the runtime dir is removed" test ! -e "$TMP/run"
# A stop as the fleet starts: the children ended before they had their
# handlers, or in their hello, did as they were asked. Exit 0, each time.
stopped_as_started() {
	local d rc
	for d in 0 0.002 0.005 0.01 0.02 0.05; do
		"$SUP" -c "$TMP/ollamax.conf" start 2>"$TMP/early.log" &
		sup_pid=$!
		PIDS+=("$sup_pid")
		# Its first child forked, the supervisor has its own handlers.
		for _ in $(seq 1 100); do
			[ -n "$(ps -o pid= --ppid "$sup_pid")" ] && break
			sleep 0.05
		done
		sleep "$d"
		kill -TERM "$sup_pid"
		rc=0
		wait "$sup_pid" || rc=$?
		[ "$rc" -eq 0 ] || { echo "      stopped after $d s: exit $rc"; tail -n 3 "$TMP/early.log"; return 1; }
	done
}
check "a stop as the fleet starts exits 0" stopped_as_started
# nng 1.5.2 can hang for good closing a socket, a message coming in on it
# (see src/ipc.c): a preloaded library holds the children's closes while
# $TMP/hold-close exists, as that hang does. Each child says so and exits
# 0 within 3 s of its closes, before the supervisor's 5 s would kill it.
touch "$TMP/hold-close"
HOLD_CLOSE_WHILE="$TMP/hold-close" HOLD_CLOSE_OF="ollamax: " LD_PRELOAD="$BUILD/tests/holdclose.so" \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
	"$SUP" -c "$TMP/ollamax.conf" start 2>"$TMP/held.log" &
sup_pid=$!
PIDS+=("$sup_pid")
check "a fleet whose children's closes hang comes up" wait_running 4
kill -TERM "$sup_pid"
rc=0
wait "$sup_pid" || rc=$?
rm -f "$TMP/hold-close"
check "its stop exits 0" eq "$rc" 0
check "no child had to be killed" sh -c "! grep 'did not stop: killing it' '$TMP/held.log'"
closes_overdue() {
	local who
	for who in broker0 worker0 worker1; do
		grep -q "^ollamax-$who: its sockets did not close within 3 s of the stop (nng): exiting without; what it served had stopped$" "$TMP/held.log" ||
			{ echo "      nothing from $who"; return 1; }
	done
}
check "each child says its sockets did not close" closes_overdue

"$SUP" -c "$TMP/ollamax.conf" start 2>>"$TMP/sup.log" &
sup_pid=$!
PIDS+=("$sup_pid")
check "a second start comes up" wait_running 4
second_refused() {
	local rc=0
	# Bounded: a second supervisor that came up would never return.
	timeout 10 "$SUP" -c "$TMP/ollamax.conf" start 2>"$TMP/second.log" || rc=$?
	[ "$rc" -eq 1 ] && grep -q "ollamax-supervisor: error: a supervisor is already running" "$TMP/second.log"
}
check "a second supervisor on the same runtime dir is refused, as an error" second_refused
# What makes a start fail shows at the quietest level too.
quiet_refusal() {
	local rc=0
	timeout 10 "$SUP" --log-level error -c "$TMP/ollamax.conf" start 2>"$TMP/second.log" || rc=$?
	[ "$rc" -eq 1 ] && grep -q "already running" "$TMP/second.log"
}
check "and said so at --log-level error" quiet_refusal
# Stopped, the first cannot answer: the dir is still its own.
kill -STOP "$sup_pid"
check "so it is while the first is stopped" second_refused
kill -CONT "$sup_pid"
check "and the first keeps its sockets, and answers" sh -c \
	"test -S '$TMP/run/ctl.sock' && test -S '$TMP/run/hub.sock' &&
	 '$CTL' -c '$TMP/ollamax.conf' status >/dev/null"
# Stopped, its socket still takes connections but shakes no hands: nng
# would give the handshake 10 s, ollamaxctl keeps to its own 7 s.
kill -STOP "$sup_pid"
unanswered_in_time() {
	local rc=0 t0 ms
	t0=$(date +%s%N)
	"$CTL" -c "$TMP/ollamax.conf" status >"$TMP/stopped.out" 2>&1 || rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ "$rc" -eq 3 ] && grep -q "no supervisor answers" "$TMP/stopped.out" &&
		[ "$ms" -ge 6900 ] && [ "$ms" -lt 9000 ] && return 0
	echo "      exit $rc after $ms ms: $(cat "$TMP/stopped.out")"
	return 1
}
check "ollamaxctl against a stopped supervisor gives up after its 7 s, exit 3" unanswered_in_time
# Its hang-up halfway through the handshake stops nng's listener, which
# the supervisor, resumed, puts back. Nothing connects before that: a
# handshake with the stopped listener would never be freed.
replaced=$(grep -c "ctl.sock took no new connection" "$TMP/sup.log")
kill -CONT "$sup_pid"
listens_again() {
	for _ in $(seq 1 200); do
		[ "$(grep -c "ctl.sock took no new connection" "$TMP/sup.log")" -gt "$replaced" ] &&
			return 0
		sleep 0.05
	done
	return 1
}
check "resumed, it listens again" listens_again
check "and answers" sh -c "'$CTL' -c '$TMP/ollamax.conf' status >/dev/null"
# The default runtime dir, under $XDG_RUNTIME_DIR, is checked at start:
# the configuration names none.
default_too_long() {
	local rc=0 xdg="$TMP/$(printf 'x%.0s' $(seq 1 100))"
	mkdir -p "$xdg"
	sed 's/^runtime_dir = .*/runtime_dir =/' "$TMP/ollamax.conf" >"$TMP/xdg.conf"
	XDG_RUNTIME_DIR=$xdg "$SUP" -c "$TMP/xdg.conf" start 2>"$TMP/xdg.log" || rc=$?
	[ "$rc" -eq 1 ] && grep -q "xdg.conf:[0-9]*: runtime_dir: none given, so the default $xdg/ollamax is [0-9]* bytes long: the paths of its sockets fit in 91 at most" "$TMP/xdg.log"
}
check "a default runtime dir too long for its sockets is refused at start, said so" default_too_long
# A runtime dir that was there, open to others, is the user's: refused,
# left as it was, and nothing in it removed.
shared_refused() {
	local rc=0
	mkdir -p "$TMP/shared"
	chmod 1777 "$TMP/shared"
	echo keep >"$TMP/shared/data.sock"
	sed "s|^runtime_dir = .*|runtime_dir = $TMP/shared|" "$TMP/ollamax.conf" >"$TMP/shared.conf"
	"$SUP" -c "$TMP/shared.conf" start 2>"$TMP/shared.log" || rc=$?
	[ "$rc" -eq 1 ] &&
		grep -q "shared.conf:3: runtime_dir: $TMP/shared is open to others (mode 1777): name a directory of its own, or chmod 700 it" "$TMP/shared.log" &&
		[ "$(stat -c %a "$TMP/shared")" = 1777 ] && [ "$(cat "$TMP/shared/data.sock")" = keep ]
}
check "a shared runtime dir is refused at start, said so, and left as it was" shared_refused
# check says it before start trips on it.
dirs_checked() {
	local rc=0 out
	: >"$TMP/afile"
	sed -e "s|^runtime_dir = .*|&\nstate_dir = $TMP/afile|" "$TMP/shared.conf" >"$TMP/dirs.conf"
	out=$("$SUP" -c "$TMP/dirs.conf" check 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && has "$out" "dirs.conf:4: state_dir: $TMP/afile is not a directory" &&
		has "$out" "dirs.conf:3: runtime_dir: $TMP/shared is open to others (mode 1777)"
}
check "check tells a state dir that is a file, and a shared runtime dir, at their lines" dirs_checked
# The state dir none names is the default's, and said so.
default_state_told() {
	local rc=0 out
	mkdir -p "$TMP/defaults/agents"
	: >"$TMP/defaults/state"
	sed "s|^runtime_dir = .*|runtime_dir = $TMP/run-defaults|" "$TMP/ollamax.conf" >"$TMP/defaults/ollamax.conf"
	out=$("$SUP" -c "$TMP/defaults/ollamax.conf" check 2>&1) || rc=$?
	[ "$rc" -eq 1 ] &&
		has "$out" "$TMP/defaults/ollamax.conf: state_dir: none given, so the default $TMP/defaults/state is not a directory"
}
check "check tells a default state dir that is a file as the default" default_state_told
closed_dir_told() {
	local rc=0 out
	mkdir -p "$TMP/closed"
	chmod 500 "$TMP/closed"
	sed "s|^runtime_dir = .*|runtime_dir = $TMP/closed|" "$TMP/ollamax.conf" >"$TMP/closed.conf"
	out=$("$SUP" -c "$TMP/closed.conf" check 2>&1) || rc=$?
	chmod 700 "$TMP/closed"
	[ "$rc" -eq 1 ] && has "$out" "closed.conf:3: runtime_dir: $TMP/closed is not the user's to write (mode 0500)"
}
check "and a runtime dir the user may not write, as such" closed_dir_told
# Each is made alone, not with its parents: one whose parent is missing
# would fail only once started (the state dir at each output).
unmakeable_dirs() {
	local rc=0 out
	sed -e "s|^runtime_dir = .*|runtime_dir = $TMP/nope/run\nstate_dir = $TMP/afile/state|" \
		"$TMP/ollamax.conf" >"$TMP/unmakeable.conf"
	out=$("$SUP" -c "$TMP/unmakeable.conf" check 2>&1) || rc=$?
	[ "$rc" -eq 1 ] &&
		has "$out" "unmakeable.conf:3: runtime_dir: $TMP/nope/run cannot be made: $TMP/nope does not exist" &&
		has "$out" "unmakeable.conf:4: state_dir: $TMP/afile/state cannot be made: $TMP/afile is not a directory" || return 1
	rc=0
	"$SUP" -c "$TMP/unmakeable.conf" start 2>"$TMP/unmakeable.log" || rc=$?
	[ "$rc" -eq 1 ] && grep -q "state_dir: $TMP/afile/state cannot be made" "$TMP/unmakeable.log" &&
		grep -q "runtime_dir: $TMP/nope/run cannot be made" "$TMP/unmakeable.log" &&
		grep -q "unmakeable.conf is not valid: nothing started" "$TMP/unmakeable.log"
}
check "check and start refuse dirs whose parents are missing or files" unmakeable_dirs
# What another user may not make, or look into, check tells as start would
# find it, rather than say ok.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null &&
	setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null; then
	unwritable_dirs() {
		local rc=0 out
		mkdir -p "$TMP/ro" "$TMP/shut/inner"
		chmod 755 "$TMP"
		chmod 555 "$TMP/ro"
		chmod 700 "$TMP/shut"
		sed -e "s|^runtime_dir = .*|runtime_dir = $TMP/ro/run\nstate_dir = $TMP/shut/inner/state|" \
			"$TMP/ollamax.conf" >"$TMP/unwritable.conf"
		chmod 644 "$TMP/unwritable.conf"
		out=$(cd / && setpriv --reuid=65534 --regid=65534 --clear-groups \
			"$SUP" -c "$TMP/unwritable.conf" check 2>&1) || rc=$?
		chmod 700 "$TMP" "$TMP/ro" "$TMP/shut"
		[ "$rc" -eq 1 ] &&
			has "$out" "unwritable.conf:3: runtime_dir: $TMP/ro/run cannot be made: $TMP/ro: Permission denied" &&
			has "$out" "unwritable.conf:4: state_dir: $TMP/shut/inner/state: Permission denied"
	}
	check "check refuses dirs another user may not make or look into" unwritable_dirs
fi
usage_told() { # WANT ARGS...
	local want=$1 out rc=0
	shift
	out=$("$SUP" "$@" 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && has "$out" "$want"
}
check "a word that is no command is named, exit 2" \
	usage_told "ollamax-supervisor: bogus: not a command (check, start or stop)" -c "$TMP/ollamax.conf" bogus
check "and so is one after the command" \
	usage_told "ollamax-supervisor: extra: nothing goes after the command check" -c "$TMP/ollamax.conf" check extra
check "--daemon with another command than start is refused, exit 2" \
	usage_told "ollamax-supervisor: --daemon goes with start only" -c "$TMP/ollamax.conf" --daemon check
check "a worker's index that is no number is refused, exit 2" \
	usage_told "--index abc: expected a whole number" --role worker --runtime "$TMP/nowhere" --index abc
stop_it() {
	"$CTL" -c "$TMP/ollamax.conf" stop && return 0
	echo "      supervisor log:"; tail -20 "$TMP/sup.log" | sed 's/^/      /'
	ls -la "$TMP/run" | sed 's/^/      /'
	return 1
}
# A configuration that cannot be read would leave the default runtime dir,
# and perhaps another fleet, to act on: nothing is sent.
unread_conf_refused() {
	local rc=0 out
	out=$("$CTL" -c "$TMP/no-such.conf" status 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && has "$out" "$TMP/no-such.conf: cannot open" &&
		has "$out" "is not valid: nothing sent"
}
check "ollamaxctl with a -c it cannot read sends nothing, said so" unread_conf_refused
bad_conf_refused() {
	local rc=0 out
	printf '[supervisor]\nruntime_dir = %s\nworkers = lots\n' "$TMP/run" >"$TMP/typo.conf"
	out=$(OLLAMAX_CONF=$TMP/typo.conf "$SUP" stop 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && has "$out" "typo.conf:3:" && has "$out" "nothing stopped"
}
check "supervisor stop with an invalid configuration stops nothing, said so" bad_conf_refused
check "and the supervisor still runs" kill -0 "$sup_pid"
# A run waited on in a stopped worker when the supervisor stops: the
# command still pending must not outlive the ctl socket it answers.
kill -STOP "$(worker_of second)"
"$CTL" -c "$TMP/ollamax.conf" run -w second >/dev/null 2>&1 &
waiting_run=$!
PIDS+=("$waiting_run")
check "ollamaxctl stop stops it" stop_it
check "and the supervisor is gone" sh -c "! kill -0 $sup_pid 2>/dev/null"
# Its client would dial the next supervisor's socket, at the same path.
kill "$waiting_run" 2>/dev/null || true
wait "$waiting_run" 2>/dev/null || true
not_a_supervisor() {
	local rc=0
	mkdir -p "$TMP/fake"
	ln -sf "$TMP/run/worker-0.sock" "$TMP/fake/ctl.sock"
	"$CTL" -s "$TMP/fake/ctl.sock" stop >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 3 ]
}

# Its caller reads a pipe, also its descriptor 3, to its end: the daemon
# and its children hold none of it, or the read would wait for the fleet.
daemon_starts() {
	local rc=0
	{
		"$SUP" -c "$TMP/ollamax.conf" start --daemon 3>&1 >/dev/null 2>"$TMP/daemon.log"
		echo "started: $?"
	} | timeout 10 cat >"$TMP/daemon.out" || rc=$?
	[ "$rc" -eq 0 ] && grep -qx "started: 0" "$TMP/daemon.out" ||
		{ echo "      read exit $rc, start $(cat "$TMP/daemon.out")"; return 1; }
}
check "start --daemon returns 0 once it is ready, its caller's descriptors let go" daemon_starts
daemon_pid=$(cat "$TMP/run/supervisor.pid" 2>/dev/null || echo 0)
[ "$daemon_pid" -gt 1 ] && PIDS+=("$daemon_pid")
check "the daemon wrote its pid file and runs in a session of its own" \
	sh -c "[ \"\$(ps -o sid= -p $daemon_pid | tr -d ' ')\" = $daemon_pid ]"
check "the daemon's children are up" wait_running 4
check "stop against a socket that is not a supervisor's exits 3" not_a_supervisor
# A waited run against a socket that takes connections and never speaks:
# its time runs out before any connection is made, and nothing was sent.
never_speaks() {
	local out rc=0 mute
	python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
held = [s.accept()[0] for _ in range(4)]
time.sleep(30)' "$TMP/mute.sock" &
	mute=$!
	PIDS+=("$mute")
	for _ in $(seq 1 100); do [ -S "$TMP/mute.sock" ] && break; sleep 0.05; done
	out=$("$CTL" -s "$TMP/mute.sock" run -w -t 2s a1 hi 2>&1) || rc=$?
	kill "$mute" 2>/dev/null || :
	[ "$rc" -eq 1 ] && has "$out" "run: no connection made to $TMP/mute.sock within 2s: nothing was sent"
}
check "a waited run against a socket that never speaks says nothing was sent, exit 1" never_speaks
# The supervisor keeps the fleet's books: a worker carries out commands
# from it alone, and ollamaxctl takes answers from a supervisor alone.
worker_refuses() { # AGENT, sent to the socket of the worker it runs on
	local rc=0 worker
	worker=$("$CTL" -c "$TMP/ollamax.conf" agents | awk -v a="$1" '$1 == a { print $2 }')
	"$CTL" -s "$TMP/run/worker-$worker.sock" kill "$1" >/dev/null 2>"$TMP/fake/err" || rc=$?
	[ "$rc" -eq 3 ] &&
		grep -q "run/worker-$worker.sock is not a supervisor: this is a worker's socket: commands go to the supervisor's, ctl.sock beside it" "$TMP/fake/err" ||
		{ echo "      exit $rc: $(cat "$TMP/fake/err")"; return 1; }
}
check "kill sent to the socket of the worker of an agent is refused by it, exit 3" worker_refuses second
check "by the other worker too" worker_refuses third
worker_stop_refused() {
	local rc=0
	"$CTL" -s "$TMP/run/worker-0.sock" stop >/dev/null 2>"$TMP/fake/err" || rc=$?
	[ "$rc" -eq 3 ] &&
		grep -qx "ollamaxctl: what answers on $TMP/run/worker-0.sock is not a supervisor: this is a worker's socket: commands go to the supervisor's, ctl.sock beside it" "$TMP/fake/err" ||
		{ echo "      exit $rc: $(cat "$TMP/fake/err")"; return 1; }
}
check "stop sent to a worker's socket says what answered there, exit 3" worker_stop_refused
hub_refuses() {
	local rc=0
	timeout 5 "$CTL" -s "$TMP/run/hub.sock" status >/dev/null 2>"$TMP/fake/err" || rc=$?
	[ "$rc" -eq 3 ] &&
		grep -qx "ollamaxctl: what answers on $TMP/run/hub.sock is not a supervisor: this is the supervisor's socket for its children: commands go to ctl.sock beside it" "$TMP/fake/err" ||
		{ echo "      exit $rc: $(cat "$TMP/fake/err")"; return 1; }
}
check "a command sent to the socket for the children is told where commands go, at once, exit 3" hub_refuses
# The supervisor's books would still show an agent killed behind its back:
# its worker must still have it, and take a run of it.
agents_kept() {
	local name out rc
	for name in second third; do
		rc=0
		out=$("$CTL" -c "$TMP/ollamax.conf" run -w -t 1s "$name" 2>&1) || rc=$?
		# Said by ollamaxctl, or by the worker as it lets go of the
		# wait: the run was taken.
		[ "$rc" -eq 1 ] && has "$out" "goes on to the agent's output" ||
			{ echo "      $name: exit $rc: $out"; return 1; }
	done
}
queued=$("$CTL" -c "$TMP/ollamax.conf" --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["broker"]["queued"])')
check "and their workers still have the agents" agents_kept
# Their runs, begun, wait for the backend: the counts a run held is
# measured against below include them once the broker has reported them.
check "  whose runs wait in the broker" status_until "s['broker']['queued'] >= $queued + 2"
# A waited run whose connection the supervisor cuts once it has the run
# (its listener put back after a client hung up halfway through
# connecting) is sent again under its id: the copy waits for the run
# held, which is not held twice, and hears how it went (here, that it was
# dropped from the inbox at its deadline, the agent busy, and that the
# backend cannot be reached; or, just after it, its own time out).
cut_run() {
	local rc=0 client before most held
	before=$(runs_held)
	"$CTL" -c "$TMP/ollamax.conf" run -w -t 12s second >/dev/null 2>"$TMP/fake/cut" &
	client=$!
	for _ in $(seq 1 250); do
		[ "$(runs_held)" -gt "$before" ] && break
		sleep 0.02
	done
	[ "$(runs_held)" -gt "$before" ] ||
		{ echo "      the run was never taken"; kill "$client"; return 1; }
	hang_up_halfway "$daemon_pid" "$TMP/run/ctl.sock"
	most=$((before + 1))
	while kill -0 "$client" 2>/dev/null; do
		held=$(runs_held)
		[ "$held" -le "$most" ] || most=$held
		sleep 0.2
	done
	wait "$client" || rc=$?
	[ "$rc" -eq 1 ] && [ "$most" -eq $((before + 1)) ] &&
		grep -Eqx "ollamaxctl: run: (a run of second waited in its inbox past its deadline: not carried out; the backend \(http://127\.0\.0\.1:9\) has been unreachable for [0-9]+ s: .*|no answer within 12s: .*)" "$TMP/fake/cut" ||
		{ echo "      exit $rc, runs held $before, then at most $most: $(cat "$TMP/fake/cut")"; return 1; }
}
# The listener put back keeps a connection nng 1.5.2 may lose with it, a
# leak the sanitizers would report: the plain build alone.
if [ "$SANITIZED" = no ]; then
	check "a waited run cut after the supervisor took it is sent again, and held once" cut_run
fi
# A peer that answers every command ok but is no supervisor: stop asks its
# status, finds no supervisor's pid in it, and sends no stop.
fake_peer_refused() { # BODY [as-supervisor]
	local rc=0 fake
	start_fake_ctl "$@"
	"$CTL" -s "$TMP/peer/ctl.sock" stop >/dev/null 2>&1 || rc=$?
	kill "$fake"
	wait "$fake" || true
	[ "$rc" -eq 3 ] && grep -qx status "$TMP/fake/verbs" &&
		! grep -qx stop "$TMP/fake/verbs" || { echo "      exit $rc, verbs: $(tr '\n' ' ' <"$TMP/fake/verbs")"; return 1; }
}
check "stop against a peer whose status has no supervisor's pid exits 3, sending no stop" \
	fake_peer_refused '{"supervisor":{"version":"0.1.0"}}' as-supervisor
check "nor does a pid of 0 pass for one" fake_peer_refused '{"supervisor":{"pid":0}}' as-supervisor
check "nor a supervisor's status from a peer whose answers are not a supervisor's" \
	fake_peer_refused '{"supervisor":{"pid":1}}'
# Whatever the command, an answer that is not a supervisor's is none.
fake_answers_refused() { # VERB...
	local rc=0 fake
	start_fake_ctl '{"agents":[]}'
	"$CTL" -s "$TMP/peer/ctl.sock" "$@" >"$TMP/fake/out" 2>"$TMP/fake/err" || rc=$?
	kill "$fake"
	wait "$fake" || true
	[ "$rc" -eq 3 ] && [ ! -s "$TMP/fake/out" ] &&
		grep -qx "ollamaxctl: what answers on $TMP/peer/ctl.sock is not a supervisor" "$TMP/fake/err" ||
		{ echo "      exit $rc: $(cat "$TMP/fake/out" "$TMP/fake/err")"; return 1; }
}
check "status from a peer that is not a supervisor: exit 3, nothing printed" fake_answers_refused status
check "agents alike" fake_answers_refused agents
check "and kill, not taken for done" fake_answers_refused kill probe
# nng's dialer dials again as its connection closes, and ollamaxctl's close
# of the socket that follows a cut could fall in that dial's handshake: a
# peer gone halfway through, which stops a supervisor's listener just put
# back (see src/ipc.c). A peer that takes a command and hangs up, with the
# client's closes held meanwhile (tests/holdclose.so; ollamaxctl links nng
# statically, so the command is the supervisor's stop, which asks a status
# as ollamaxctl does): nothing more comes from that socket, and the copy
# sent again on a socket of its own does.
no_redial_after_cut() {
	local client fake seen="$TMP/peer3/seen" early late
	mkdir -p "$TMP/peer3"
	sed 's/^runtime_dir = run$/runtime_dir = peer3/' "$TMP/ollamax.conf" >"$TMP/peer3.conf"
	python3 -c 'import socket, sys
srv = socket.socket(socket.AF_UNIX)
srv.bind(sys.argv[1])
srv.listen(8)
srv.settimeout(30)
print("listening", flush=True)
def exactly(c, n):
    got = b""
    while len(got) < n:
        part = c.recv(n - len(got))
        if not part:
            raise EOFError
        got += part
    return got
first = True
while True:
    try:
        c, _ = srv.accept()
    except socket.timeout:
        break
    c.settimeout(5)
    try:
        # The SP handshake of a REP0 peer, then one command read whole.
        c.sendall(b"\x00SP\x00\x00\x31\x00\x00")
        exactly(c, 8)
        print("connected", flush=True)
        if first:
            first = False
            head = exactly(c, 9)
            exactly(c, int.from_bytes(head[1:], "big"))
            print("cut", flush=True)
    except (EOFError, OSError):
        pass
    c.close()' "$TMP/peer3/ctl.sock" >"$seen" &
	fake=$!
	PIDS+=("$fake")
	wait_log listening "$seen" || { echo "      the peer did not listen"; return 1; }
	touch "$TMP/peer3/hold"
	HOLD_CLOSE_WHILE="$TMP/peer3/hold" HOLD_CLOSE_OF=ollamax-superv LD_PRELOAD="$BUILD/tests/holdclose.so" \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$SUP" -c "$TMP/peer3.conf" stop >/dev/null 2>&1 &
	client=$!
	PIDS+=("$client")
	wait_log cut "$seen" || { echo "      no command came"; end_pid "$client"; end_pid "$fake"; return 1; }
	# nng's dialer would dial again within its reconnect time, 1 s.
	sleep 2
	early=$(grep -c connected "$seen")
	rm -f "$TMP/peer3/hold"
	for _ in $(seq 1 100); do
		late=$(grep -c connected "$seen")
		[ "$late" -gt "$early" ] && break
		sleep 0.05
	done
	end_pid "$client"
	end_pid "$fake"
	[ "$early" -eq 1 ] || { echo "      $((early - 1)) connections came from the socket cut, as it closed"; return 1; }
	[ "$late" -gt 1 ] || { echo "      the command was not sent again"; return 1; }
}
check "a command cut by its peer dials nothing more on that socket, and is sent again on another" no_redial_after_cut
# A supervisor that holds its lock but does not listen (starting, or its
# listener being put back) is waited for, a while; without one, nobody
# answers at once.
mkdir -p "$TMP/peer2"
python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "w")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)' "$TMP/peer2/supervisor.lock" >"$TMP/peer2/holder" &
holder=$!
PIDS+=("$holder")
wait_log locked "$TMP/peer2/holder" || true
waits_for_listener() {
	local client fake rc=0
	"$CTL" -s "$TMP/peer2/ctl.sock" status >/dev/null 2>&1 &
	client=$!
	sleep 0.5
	if ! kill -0 "$client" 2>/dev/null; then
		wait "$client" || rc=$?
		echo "      ollamaxctl gave up at once (exit $rc)"
		return 1
	fi
	"$BUILD/tests/fake_ctl" "$TMP/peer2/ctl.sock" '{"supervisor":{"pid":1}}' as-supervisor >"$TMP/peer2/verbs" 2>&1 &
	fake=$!
	wait "$client" || rc=$?
	kill "$fake"
	wait "$fake" || true
	[ "$rc" -eq 0 ] && grep -qx status "$TMP/peer2/verbs" ||
		{ echo "      exit $rc, verbs: $(tr '\n' ' ' <"$TMP/peer2/verbs")"; return 1; }
}
check "a command waits for a supervisor that holds its lock until it listens" waits_for_listener
# exits_in RC MIN_MS MAX_MS PATTERN ARGS...: ollamaxctl ARGS exits RC after
# MIN_MS to MAX_MS, its stderr matching PATTERN.
exits_in() {
	local want=$1 least=$2 most=$3 pattern=$4 began took rc=0
	shift 4
	began=$(date +%s%N)
	"$CTL" "$@" >/dev/null 2>"$TMP/peer2/err" || rc=$?
	took=$((($(date +%s%N) - began) / 1000000))
	[ "$rc" -eq "$want" ] && [ "$took" -ge "$least" ] && [ "$took" -lt "$most" ] &&
		grep -q "$pattern" "$TMP/peer2/err" ||
		{ echo "      exit $rc in $took ms: $(cat "$TMP/peer2/err")"; return 1; }
}
rm -f "$TMP/peer2/ctl.sock"
check "one that never listens is given up after a while, its pid named" \
	exits_in 3 2000 5000 "process $holder holds the supervisor's lock beside it, but does not answer there" \
	-s "$TMP/peer2/ctl.sock" status
check "a waited run cut meanwhile is unreachable too, not unanswered" \
	exits_in 3 900 3000 "no supervisor answers" -s "$TMP/peer2/ctl.sock" run -w -t 1s x
kill "$holder"
wait "$holder" || true
check "without one, nobody answers, at once" \
	exits_in 3 0 1000 "no supervisor answers" -s "$TMP/peer2/ctl.sock" status
# A waited run keeps to its -t against a supervisor that is there but
# does not answer, past nng's own 10 s for a handshake.
hung_waited_run() {
	local rc=0
	kill -STOP "$daemon_pid"
	exits_in 1 11000 14000 "within 11s: nothing was sent" -c "$TMP/ollamax.conf" run -w -t 11s second || rc=$?
	kill -CONT "$daemon_pid"
	# The client left halfway through a handshake: the listener is put
	# back, a few seconds at most.
	for _ in $(seq 1 250); do
		"$CTL" -c "$TMP/ollamax.conf" status >/dev/null 2>&1 && break
		sleep 0.02
	done
	return "$rc"
}
# Its connections shake hands with a stopped listener, which nng never
# frees (see above): the plain build alone sends it.
if [ "$SANITIZED" = no ]; then
	check "a waited run against a hung supervisor ends at its -t, exit 1" hung_waited_run
fi
check "and the daemon still runs" sh -c "[ $daemon_pid -gt 1 ] && kill -0 $daemon_pid"
# Where /proc is not mounted (a container's), stop has kill(2) alone to
# tell when the supervisor is gone. The sanitizers read their options and,
# as the program ends, its threads from its own /proc, and LeakSanitizer
# fails the program without them: under them, the daemon's alone is
# hidden, which leaves stop kill(2) alone all the same.
hidden=/proc
[ "$SANITIZED" = yes ] && hidden=/proc/$daemon_pid
stop_without_proc() {
	"${MOUNT_NS[@]}" sh -c 'mount -t tmpfs no-proc "$0" && exec "$@"' "$hidden" \
		"$SUP" -c "$TMP/ollamax.conf" stop && ! kill -0 "$daemon_pid" 2>/dev/null
}
# Without a mount namespace to be had (a container may refuse both), the
# stop is checked with /proc: the rest of the test needs the daemon gone.
if "${MOUNT_NS[@]}" true 2>/dev/null; then
	check "ollamax-supervisor stop, $hidden hidden, stops the daemon and waits for it" stop_without_proc
else
	echo "  (no mount namespace here: stop is checked with /proc mounted)"
	check "ollamax-supervisor stop stops the daemon" "$SUP" -c "$TMP/ollamax.conf" stop
fi
check "and removes its pid file and runtime dir" test ! -e "$TMP/run"
# A supervisor whose parent has not reaped it yet is a zombie, which
# kill(2) still finds: stop tells by its lock that it is gone.
unreaped_stop() {
	python3 - "$SUP" "$CTL" "$TMP/ollamax.conf" "$TMP/unreaped.log" <<'PY'
import subprocess, sys, time
sup, ctl, conf, log = sys.argv[1:]
p = subprocess.Popen([sup, "-c", conf, "start"], stderr=open(log, "w"))
for _ in range(200):
    if subprocess.run([ctl, "-c", conf, "status"], capture_output=True).returncode == 0:
        break
    time.sleep(0.05)
began = time.monotonic()
rc = subprocess.run([ctl, "-c", conf, "stop"], capture_output=True).returncode
took = time.monotonic() - began
try:
    p.wait(timeout=15)
except subprocess.TimeoutExpired:
    p.kill()
    p.wait()
print("      stop: exit %d in %.1f s" % (rc, took))
# Short of stop's own 10 s: not the wait for a pid that lives on.
sys.exit(0 if rc == 0 and took < 9 else 1)
PY
}
check "stop sees a supervisor that its parent has not reaped yet as gone" unreaped_stop
# A supervisor killed with SIGKILL takes its children with it, even hung
# ones (stopped here): living on, they would keep their sockets from the
# next supervisor, and unlink the paths, the next one's by then, as they
# closed. The next one finds the runtime dir as a daemon left it.
check "a daemon starts again" daemon_starts
daemon_pid=$(cat "$TMP/run/supervisor.pid" 2>/dev/null || echo 0)
check "and writes its pid file" test "$daemon_pid" -gt 1
PIDS+=("$daemon_pid")
check "with its children" wait_running 4
# Role, index and pid of each child, from one status.
status_json | python3 -c 'import json,sys
for p in json.load(sys.stdin)["processes"]:
    if p["role"] in ("broker", "worker"): print(p["role"], p["index"], p["pid"])' >"$TMP/children"
children=$(cut -d' ' -f3 "$TMP/children")
check "three of them" test "$(wc -l <"$TMP/children")" -eq 3
# shellcheck disable=SC2046 # one pid a word
kill -STOP $(awk '$1 == "broker" || ($1 == "worker" && $2 == 1) { print $3 }' "$TMP/children")
kill -KILL "$daemon_pid"
all_gone() {
	for _ in $(seq 1 100); do
		local left=0
		for pid in "$@"; do gone "$pid" || left=1; done
		[ "$left" -eq 0 ] && return 0
		sleep 0.05
	done
	echo "      left running: $(for pid in "$@"; do gone "$pid" || echo "$pid"; done | tr '\n' ' ')"
	return 1
}
# shellcheck disable=SC2086 # one pid a word
check "killed with SIGKILL, it takes its children, hung or not" all_gone $children
start_fleet
check "a supervisor starts on the runtime dir it left" wait_log "ready:"
check "without the pid file that named the dead one" test ! -e "$TMP/run/supervisor.pid"
check "its children all run" wait_running 4
check "and listen on sockets of their own" sh -c \
	"test -S '$TMP/run/broker.sock' && test -S '$TMP/run/worker-0.sock' && test -S '$TMP/run/worker-1.sock'"
check "it stops cleanly" stopped

# with_broker NAME SCRIPT: a copy of the supervisor in $TMP/NAME whose
# broker is the shell SCRIPT.
with_broker() {
	mkdir "$TMP/$1"
	cp "$SUP" "$TMP/$1/ollamax-supervisor"
	printf '#!/bin/sh\n%s\n' "$2" >"$TMP/$1/ollamax-broker"
	chmod +x "$TMP/$1/ollamax-broker"
}
# daemon_fails NAME CONF PATTERN: start --daemon of that copy exits 1,
# saying PATTERN.
daemon_fails() {
	local rc=0
	timeout 30 "$TMP/$1/ollamax-supervisor" -c "$2" start --daemon 2>"$TMP/$1.err" || rc=$?
	[ "$rc" -eq 1 ] && grep -q "$3" "$TMP/$1.err" ||
		{ echo "      exit $rc: $(cat "$TMP/$1.err")"; return 1; }
}
# nothing_left NAME: no process of that copy, and no runtime dir.
nothing_left() {
	for _ in $(seq 1 200); do
		[ ! -e "$TMP/run" ] && ! pgrep -f "$TMP/$1/" >/dev/null && return 0
		sleep 0.05
	done
	return 1
}
# A broker that crashes at every start: the daemon cannot get ready. The
# command must fail, saying why, and leave nothing running.
with_broker crashbin "exit 1"
check "start --daemon whose broker crashes at every start exits 1, said why" \
	daemon_fails crashbin "$TMP/ollamax.conf" "broker 0 crashed .* times within .*: left FAILED"
check "and leaves nothing running" nothing_left crashbin
# A broker that hangs at every start: the watchdog would kill it and start
# it again for ever, too seldom for it to be left FAILED. The command gives
# up after start_timeout, saying which child was not ready.
with_broker hangbin "while :; do sleep 0.1; done"
printf '[supervisor]\nstart_timeout = 2s\n' | cat "$TMP/ollamax.conf" - >"$TMP/hang.conf"
check "start --daemon whose broker hangs at every start gives up after start_timeout, said why" \
	daemon_fails hangbin "$TMP/hang.conf" "did not start: not ready within 2s: broker 0 starting, restarted 0 times"
check "and leaves nothing running" nothing_left hangbin
# A SIGTERM that comes in one turn of a child's loop with the hub's answer
# to its hello, or to its fetch of a page of agents: the answer's break must
# not take the place of the signal's, or the child runs on; nor may the
# child hang in closing a socket whose answer is coming. A fake hub holds
# the answer; the child is stopped, the answer sent, SIGTERM sent, and the
# child let go on, both waiting for it. Whether its loop sees them in one
# turn varies: twelve tries.
sigterm_with_answer() { # hello|fetch
	local try child hub dir="$TMP/sigrace-$1"
	mkdir -p "$dir/run"
	chmod 700 "$dir/run"
	for try in $(seq 1 12); do
		rm -f "$dir/go"
		: >"$dir/hub.out"
		"$BUILD/tests/fake_hub" "$dir/run" "$TMP/ollamax.conf" "$dir/go" "$1" >"$dir/hub.out" 2>&1 &
		hub=$!
		PIDS+=("$hub")
		wait_log listening "$dir/hub.out" || { cat "$dir/hub.out"; return 1; }
		"$SUP" --role worker --index 0 --runtime "$dir/run" 2>"$dir/worker.log" &
		child=$!
		PIDS+=("$child")
		wait_log "held $child" "$dir/hub.out" || { echo "      no $1"; return 1; }
		kill -STOP "$child"
		touch "$dir/go"
		wait_log "answered $child" "$dir/hub.out" || { echo "      no answer"; return 1; }
		# nng writes the answer from a thread of its own: a moment lets it
		# reach the stopped child's socket. Had it not, the try would not
		# make the two meet, but its result would be no less true.
		sleep 0.05
		kill -TERM "$child"
		kill -CONT "$child"
		# It ends within some 60 ms; 15 s leaves room for a loaded
		# machine, since a child that missed the signal runs for good.
		for _ in $(seq 1 300); do
			gone "$child" && break
			sleep 0.05
		done
		if ! gone "$child"; then
			echo "      try $try: the worker runs on 15 s after its SIGTERM; its log: $(tr '\n' ' ' <"$dir/worker.log")"
			return 1
		fi
		end_pid "$child"
		forget_pid "$child"
		end_pid "$hub"
		forget_pid "$hub"
	done
}
check "a child that gets SIGTERM with the hub's answer to its hello stops (12 tries)" sigterm_with_answer hello
check "so does one that gets it with the answer to its fetch of agents (12 tries)" sigterm_with_answer fetch
# A child that ends unasked (here, a page of agents it cannot fetch) bounds
# its closes too: held as nng's hang holds them (tests/holdclose.so), it
# says so and exits 1 within 3 s, for the supervisor to start it again,
# rather than wait there for the watchdog.
ends_unasked_bounded() {
	local child hub rc=0 dir="$TMP/badpage"
	mkdir -p "$dir/run"
	chmod 700 "$dir/run"
	"$BUILD/tests/fake_hub" "$dir/run" "$TMP/ollamax.conf" "$dir/go" badpage >"$dir/hub.out" 2>&1 &
	hub=$!
	PIDS+=("$hub")
	wait_log listening "$dir/hub.out" || { cat "$dir/hub.out"; return 1; }
	touch "$dir/hold"
	HOLD_CLOSE_WHILE="$dir/hold" HOLD_CLOSE_OF="ollamax: " LD_PRELOAD="$BUILD/tests/holdclose.so" \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$SUP" --role worker --index 0 --runtime "$dir/run" 2>"$dir/worker.log" &
	child=$!
	PIDS+=("$child")
	# 3 s, and room for a loaded machine: held, its closes wait 60 s.
	gone_within 10 "$child" || { rm -f "$dir/hold"; return 1; }
	wait "$child" || rc=$?
	forget_pid "$child"
	rm -f "$dir/hold"
	end_pid "$hub"
	forget_pid "$hub"
	[ "$rc" -eq 1 ] && grep -q "hub: bad page 0 of agents" "$dir/worker.log" &&
		grep -q "^ollamax-worker0: its sockets did not close within 3 s of the stop (nng): exiting without; it was ending unasked$" "$dir/worker.log" ||
		{ echo "      exit $rc: $(tr '\n' ' ' <"$dir/worker.log")"; return 1; }
}
check "a child ending unasked whose closes hang exits 1 within 3 s, said why" ends_unasked_bounded
finish
