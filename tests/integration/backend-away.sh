#!/usr/bin/env bash
# A backend that is away, then back: the broker tries its loads again with
# a growing pause, the request waits for it, and is answered once it is
# back; nothing is lost and nothing spins. status, queue and a waited run
# say that the backend cannot be reached, since when and why, and that it
# answers again once it does.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# A port that was free a moment ago: the emulator's, then stopped.
start_emu away --speed 100 --parallel 2
port=${URL_away##*:}
kill "$PID_away"
wait "$PID_away" 2>/dev/null || true
# At first, something takes connections there and never answers: the
# broker's calls are all under way, and nothing is known of the backend.
python3 -c 'import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
open(sys.argv[2], "w").write("listening")
time.sleep(3600)' "$port" "$TMP/silent.up" &
silent=$!
PIDS+=("$silent")
for _ in $(seq 1 100); do [ -s "$TMP/silent.up" ] && break; sleep 0.05; done
fleet_conf "$URL_away" <<CONF
[broker]
parallel = 2
vram_mb = 4096
# The emulator reads the lease on its own clock, 100 times the wall's: a
# day there outlasts the test, as the renewals, half a day of the wall's
# apart, never come.
lease = 24h
[tier.light]
model = tinyllama
CONF
cat >"$TMP/agents/a.conf" <<AGENT
[agent]
name = a
tier = light
trigger = demand
output = file:a.out
prompt = Work item: {{input}}
[options]
num_predict = 10
AGENT
"$BUILD/ollamax-supervisor" -c "$TMP/ollamax.conf" start 2>"$TMP/sup.log" &
PIDS+=("$!")
logged() { # PATTERN SECONDS
	for _ in $(seq 1 $(($2 * 20))); do
		grep -q "$1" "$TMP/sup.log" && return 0
		sleep 0.05
	done
	return 1
}
check "the supervisor is up" logged "ready:" 10

# backend_is PYTHON: until the backend_state of status and queue, as b,
# meets the condition (5 s at most); says what it saw when not.
backend_is() {
	local doc
	for _ in $(seq 1 100); do
		for doc in status queue; do
			"$CTL" -c "$TMP/ollamax.conf" --json "$doc" | python3 -c 'import json,sys
d = json.load(sys.stdin)
b = d["broker"]["backend_state"] if "broker" in d else d["backend_state"]
sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" || continue 2
		done
		return 0
	done
	echo "      status: $("$CTL" -c "$TMP/ollamax.conf" --json status)"
	echo "      queue: $("$CTL" -c "$TMP/ollamax.conf" --json queue)"
	return 1
}
# line_is COMMAND REGEX: until ollamaxctl COMMAND prints a line that
# matches the extended REGEX whole (5 s at most).
line_is() {
	for _ in $(seq 1 100); do
		"$CTL" -c "$TMP/ollamax.conf" "$1" | grep -qxE -- "$2" && return 0
		sleep 0.05
	done
	echo "      $1: $("$CTL" -c "$TMP/ollamax.conf" "$1")"
	return 1
}
# The queue lists the models once the broker has reported.
reported() {
	for _ in $(seq 1 100); do
		"$CTL" -c "$TMP/ollamax.conf" --json queue |
			python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["models"] else 1)' &&
			return 0
		sleep 0.05
	done
	return 1
}
url=$URL_away
check "the broker reports while its first calls are under way" reported
check "  and nothing is known of the backend yet" backend_is \
	"b == {'url': '$url', 'state': 'unknown', 'unreachable_for_s': 0, 'error': None}"
check "  status says it has not been reached yet" \
	line_is status "backend: $url not reached yet"
kill "$silent"
wait "$silent" 2>/dev/null || true
forget_pid "$silent"

refused="Failed to connect to 127\\.0\\.0\\.1 port $port"
check "status and queue say the backend cannot be reached, in curl's words" backend_is \
	"b['state'] == 'unreachable' and 'Failed to connect to 127.0.0.1 port $port' in b['error']"
"$BUILD/ollamaxctl" -c "$TMP/ollamax.conf" run a "item 1" >/dev/null
check "  status says so on its line, with the request that waits" line_is status \
	"backend: $url unreachable for [0-9]+ s: .*$refused.*; 1 request waits"
check "  and so does queue" line_is queue \
	"backend: $url unreachable for [0-9]+ s: .*$refused.*; 1 request waits"
# Dropped half a second before ollamaxctl gives up, the run is told by the
# worker, to which the supervisor adds why.
waited_in_vain() {
	local out rc=0
	out=$("$CTL" -c "$TMP/ollamax.conf" run -w -t 1s a "item 2" 2>&1) || rc=$?
	[ "$rc" -eq 1 ] &&
		has "$out" "run: a run of a waited in its inbox past its deadline: not carried out; the backend ($url) has been unreachable for " &&
		has "$out" "Failed to connect to 127.0.0.1 port $port"
}
check "a waited run that times out says the backend cannot be reached" waited_in_vain
check "a load the backend cannot take is tried again after a pause" \
	logged "cannot load tinyllama: .*trying again in 2 s" 10
check "curl's own words name the port that refused" \
	logged "cannot load tinyllama: .*port $port.*trying again in" 1
check "the pause doubles while the backend stays away" \
	logged "cannot load tinyllama: .*trying again in 4 s" 15
broker=$(proc_pid broker 0)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$broker/stat"; }
before=$(cpu_ticks)
check "the pause doubles again" logged "trying again in 8 s" 20
# Those 4 s of waiting took less than half a second of the broker's CPU.
spent=$(($(cpu_ticks) - before))
check "the broker does not spin while it waits ($spent ticks)" test "$spent" -lt 50
# A waited run whose deadline a frame puts as far as it goes: the worker
# waits for it as for any other, without spinning.
worker=$("$CTL" -c "$TMP/ollamax.conf" --json agents | python3 -c 'import json,sys
print([a["worker"] for a in json.load(sys.stdin)["agents"] if a["name"] == "a"][0])')
"$BUILD/tests/hub_command" "ipc://$TMP/run/worker-$worker.sock" deliver a \
	9223372036854775807 >/dev/null 2>&1 &
PIDS+=("$!")
check "a run waited for with the farthest deadline waits in the inbox" \
	status_until "s['agents']['inbox'] >= 1"
worker_ticks() { awk '{print $14 + $15}' "/proc/$(proc_pid worker "$worker")/stat"; }
before=$(worker_ticks)
sleep 1
spent=$(($(worker_ticks) - before))
check "  and the worker does not spin while it waits ($spent ticks)" test "$spent" -lt 30
check "the backend has been unreachable since the first call that failed" \
	backend_is "b['state'] == 'unreachable' and b['unreachable_for_s'] >= 6"

# Back on the same port.
"$BUILD/ollamax-emu" --catalog "$ROOT/conf/emu-models.ini" \
	--listen "127.0.0.1:$port" --speed 100 --parallel 2 >/dev/null 2>"$TMP/back.log" &
back=$!
PIDS+=("$back")
answered() {
	for _ in $(seq 1 600); do
		grep -q '^--- ' "$TMP"/state/a.out 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
check "once the backend is back, the request that waited is answered" answered
check "  and the model was loaded" grep -q "loaded tinyllama" "$TMP/sup.log"
check "status and queue say the backend answers again" backend_is \
	"b == {'url': '$url', 'state': 'reachable', 'unreachable_for_s': 0, 'error': None}"
check "  status says so on its line" line_is status "backend: $url reachable"
check "  and so does queue" line_is queue "backend: $url reachable"

kill "$back"
wait "$back" 2>/dev/null || true
forget_pid "$back"
# Then an Ollama whose queue is full: /api/ps answers, each generate call
# gets its 503, in its words.
python3 -c 'import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, told = int(sys.argv[1]), sys.argv[2]
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.command == "GET":
            code, body = 200, {"models": []}
            open(told + ".ps", "a").write("ps\n")
        else:
            code, body = 503, {"error": "server busy, please try again.  "
                               "maximum pending requests exceeded"}
            open(told, "a").write("503\n")
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    do_GET = do_POST = answer
ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()' \
	"$port" "$TMP/busy.told" 2>"$TMP/busy.log" &
PIDS+=("$!")
told() { # FILE: until it is written (10 s at most)
	for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done
	return 1
}
# What the broker heard while nothing listened on the port is past once a
# report follows an /api/ps answered.
check "an Ollama whose queue is full answers /api/ps" told "$TMP/busy.told.ps"
check "  and the backend is reachable" line_is status "backend: $url reachable"
"$CTL" -c "$TMP/ollamax.conf" run a "item 3" >/dev/null
check "  and each generate call with its 503" told "$TMP/busy.told"
# The report after the 503 comes within a second, and says the backend
# answers, as do those after it.
stays_reachable() {
	for _ in $(seq 1 40); do
		"$CTL" -c "$TMP/ollamax.conf" status | grep -qxF "backend: $url reachable" || {
			echo "      status: $("$CTL" -c "$TMP/ollamax.conf" status | grep '^backend:')"
			return 1
		}
		sleep 0.05
	done
}
check "  which is an answer: the backend stays reachable" stays_reachable
finish
