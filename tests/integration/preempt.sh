#!/usr/bin/env bash
# Near capacity, a switch stops a run that has only begun on the model that
# goes, rather than leave the other slot idle until it ends: the run waits
# for its model's next turn and is sent again then, and its agent gets one
# answer. With preempt = no, the same switch waits for the run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# At --speed 4, deepseek-r1:8b loads in 1.6 s and answers 100 tokens in
# 1.3 s: time to stop another run beside it.
start_emu emu --speed 4 --parallel 2 --vram-mb 4096
# fleet PREEMPT: the configuration, bounds of a second so that four coding
# requests are an overload, and no min_residency to wait out.
fleet() {
	fleet_conf "$URL_emu" <<CONF
[broker]
max_wait_high = 1s
max_wait_normal = 1s
max_wait_low = 1s
min_residency = 0s
preempt = $1
[tier.reasoning]
model = deepseek-r1:8b
[tier.coding]
model = qwen2.5-coder:7b
CONF
}
fleet yes
for name in thinker quitter; do
	printf '[agent]\nname = %s\ntier = reasoning\ntrigger = demand\nprompt = Think about {{input}}.\n[options]\nnum_predict = 100\n' \
		"$name" >"$TMP/agents/$name.conf"
done
for i in 1 2 3 4; do
	printf '[agent]\nname = coder%s\ntier = coding\ntrigger = demand\nprompt = Write {{input}}.\n[options]\nnum_predict = 5\n' \
		"$i" >"$TMP/agents/coder$i.conf"
done
start_fleet
check "the supervisor is up" wait_log "ready:"

# streams_open N: the emulator has N answers streaming, within 10 s.
streams_open() {
	for _ in $(seq 1 200); do
		[ "$(curl -s "$URL_emu/emu/stats" | python3 -c 'import json,sys
print(json.load(sys.stdin)["open_streams"])')" = "$1" ] && return 0
		sleep 0.05
	done
	echo "      open streams: not $1"
	return 1
}
# deepseek_requests: the runs deepseek-r1:8b started in the emulator.
deepseek_requests() {
	curl -s "$URL_emu/emu/stats" | python3 -c 'import json,sys
print(json.load(sys.stdin)["models"].get("deepseek-r1:8b", {}).get("requests", 0))'
}
# answered AGENT: its run 1, answered by deepseek-r1:8b, within 2 minutes.
answered() {
	local ok
	for _ in $(seq 1 2400); do
		ok=$(grep -c "$1: run 1: deepseek-r1:8b answered" "$TMP/sup.log" || :)
		[ "$ok" -ge 1 ] && return 0
		sleep 0.05
	done
	echo "      $1 was not answered"
	return 1
}

# Both reasoning runs wait for deepseek's load, and start together; the
# coding requests come meanwhile and wait for their turn.
"$CTL" -c "$TMP/ollamax.conf" run thinker "queues"
"$CTL" -c "$TMP/ollamax.conf" run quitter "stacks"
for i in 1 2 3 4; do "$CTL" -c "$TMP/ollamax.conf" run "coder$i" "a loop"; done
check "both reasoning runs stream from the backend" streams_open 2
sent=$(deepseek_requests)
# quitter's agent is stopped: a slot frees with nothing waiting for
# deepseek, and the coding backlog, past its bounds, takes the turn.
check "one agent is killed as its run has only begun" \
	"$CTL" -c "$TMP/ollamax.conf" kill quitter
check "the broker stops the other run for the switch" \
	wait_log "thinker: run on deepseek-r1:8b stopped after [0-9.]* s for a switch: it runs again on the model's next turn"
check "the backend's stream of it closes at once" streams_open 0
stopped_runs() {
	"$CTL" -c "$TMP/ollamax.conf" --json queue | python3 -c 'import json,sys
print(json.load(sys.stdin)["preempted"])'
}
counted() {
	for _ in $(seq 1 100); do
		[ "$(stopped_runs)" = 1 ] && return 0
		sleep 0.05
	done
	echo "      preempted: $(stopped_runs)"
	return 1
}
check "queue counts the run stopped" counted
check "the coding requests are answered" \
	wait_log "coder4: run 1: qwen2.5-coder:7b answered"
check "the stopped run is answered on deepseek's next turn" answered thinker
check "once: its agent had no second answer" \
	test "$(grep -c 'thinker: run [0-9]*: ' "$TMP/sup.log")" = 1
check "the backend ran it a second time, and nothing else of deepseek's" \
	test "$(deepseek_requests)" = "$((sent + 1))"
check "Ollama evicted nothing" test "$(emu_sched emu evictions)" = 0
check "the supervisor stops cleanly" stopped

# The same with preempt = no: the switch waits for the run to end.
mv "$TMP/sup.log" "$TMP/sup1.log"
fleet no
start_fleet
check "a supervisor with preempt = no is up" wait_log "ready:"
"$CTL" -c "$TMP/ollamax.conf" run thinker "queues"
"$CTL" -c "$TMP/ollamax.conf" run quitter "stacks"
for i in 1 2 3 4; do "$CTL" -c "$TMP/ollamax.conf" run "coder$i" "a loop"; done
check "both reasoning runs stream again" streams_open 2
check "one agent is killed" "$CTL" -c "$TMP/ollamax.conf" kill quitter
check "the other run is answered where it ran" answered thinker
check "and was never stopped" sh -c "! grep -q 'stopped after' '$TMP/sup.log'"
check "queue counts no run stopped" test "$(stopped_runs)" = 0
check "the coding requests are answered after it" \
	wait_log "coder4: run 1: qwen2.5-coder:7b answered"
check "the second supervisor stops cleanly" stopped
finish
