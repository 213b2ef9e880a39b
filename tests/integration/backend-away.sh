#!/usr/bin/env bash
# A backend that is away, then back: the broker tries its loads again with
# a growing pause, the request waits for it, and is answered once it is
# back; nothing is lost and nothing spins.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# A port that was free a moment ago: the emulator's, then stopped.
start_emu away --speed 100 --parallel 2
port=${URL_away##*:}
kill "$PID_away"
wait "$PID_away" 2>/dev/null || true
fleet_conf "$URL_away" <<CONF
[broker]
parallel = 2
vram_mb = 4096
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
"$BUILD/ollamaxctl" -c "$TMP/ollamax.conf" run a "item 1" >/dev/null
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

# Back on the same port.
"$BUILD/ollamax-emu" --catalog "$ROOT/conf/emu-models.ini" \
	--listen "127.0.0.1:$port" --speed 100 --parallel 2 >/dev/null 2>"$TMP/back.log" &
PIDS+=("$!")
answered() {
	for _ in $(seq 1 600); do
		grep -q '^--- ' "$TMP"/state/a.out 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
check "once the backend is back, the request that waited is answered" answered
check "  and the model was loaded" grep -q "loaded tinyllama" "$TMP/sup.log"
finish
