#!/usr/bin/env bash
# The broker's plan against ollamax-emu: requests for three models that do
# not all fit, interleaved; ollamax batches them by model, loads and
# unloads explicitly (Ollama never evicts on its own), and shows its plan.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_emu via --speed 100 --parallel 2 --vram-mb 4096
fleet_conf "$URL_via" <<CONF
[broker]
parallel = 2
vram_mb = 4096
max_wait_high = 3s
max_wait_normal = 10s
max_wait_low = 30s
min_residency = 1s
idle_unload = 0s
# The emulator reads the lease on its own clock, 100 times the wall's: a
# day there is nearly 15 minutes here, past the test's end, as the
# renewals, half a day of the wall's apart, never come.
lease = 24h
[tier.reasoning]
model = deepseek-r1:8b
[tier.coding]
model = qwen2.5-coder:7b
[tier.light]
model = tinyllama
[model.deepseek-r1:8b]
size_mb = 3200
kv_mb = 512
num_ctx = 2048
[model.qwen2.5-coder:7b]
size_mb = 2560
kv_mb = 448
num_ctx = 4096
[model.tinyllama]
size_mb = 637
kv_mb = 88
num_ctx = 2048
CONF
for t in reasoning coding light; do
	cat >"$TMP/agents/$t.conf" <<AGENT
[agent]
name = $t
tier = $t
trigger = demand
output = file:$t.out
prompt = Work item: {{input}}
[options]
num_predict = 30
AGENT
done
start_fleet
check "the supervisor is up" wait_log "ready:"

tiers=(reasoning coding light)
# 36 requests, the three models taking turns: the worst order for Ollama.
# They reach the broker one ollamaxctl at a time; the backend is held
# (stopped) meanwhile, so that the broker batches what waits for it and
# not what a slow start of ollamaxctl lets through one by one.
kill -STOP "$PID_via"
for i in $(seq 0 35); do
	k=$((i % 3))
	"$CTL" -c "$TMP/ollamax.conf" run "${tiers[$k]}" "item $i" >/dev/null
done
kill -CONT "$PID_via"
runs() { cat "$TMP"/state/*.out 2>/dev/null | grep -c '^--- ' || true; }
all_served() {
	for _ in $(seq 1 600); do
		[ "$(runs)" -ge 36 ] && return 0
		sleep 0.05
	done
	echo "      served $(runs) of 36"
	return 1
}
check "every request through ollamax is answered" all_served
stat() { curl -s "$1/emu/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)$2)"; }
check "Ollama never had to evict a model on its own" test "$(stat "$URL_via" '["scheduler"]["evictions"]')" = 0
check "nor to reload one for a change of context" test "$(stat "$URL_via" '["scheduler"]["reloads"]')" = 0
via_loads=$(stat "$URL_via" '["scheduler"]["loads"]')
echo "      loads: $via_loads for 36 requests"
check "batched by model: each of the three loaded once, not once a request" \
	test "$via_loads" -le 3
check "what the broker loads is on its lease, not loaded for good (keep_alive -1)" \
	leased_within '*' 172800 "$URL_via"
queue_agrees() {
	"$CTL" -c "$TMP/ollamax.conf" --json queue | python3 -c 'import json,sys
q = json.load(sys.stdin); loads = int(sys.argv[1])
names = [m["name"] for m in q["models"]]
assert names == ["deepseek-r1:8b", "qwen2.5-coder:7b", "tinyllama"], names
assert q["slots"] == 2 and q["busy"] == 0 and q["waiting"] == 0, q
assert q["loads"] == loads, (q["loads"], loads)' "$via_loads"
}
settled() {
	for _ in $(seq 1 100); do
		queue_agrees 2>/dev/null && return 0
		sleep 0.05
	done
	queue_agrees
}
check "ollamaxctl queue shows the models, the slots and the loads the emulator counted" settled
check "ollamaxctl queue prints a table" sh -c "'$CTL' -c '$TMP/ollamax.conf' queue | grep -q '^tinyllama '"
# The broker fills these from its policy; here only their types are sure.
load_typed() {
	"$CTL" -c "$TMP/ollamax.conf" --json queue | python3 -c 'import json,sys
q = json.load(sys.stdin)
assert type(q["offered_load"]) in (int, float) and q["offered_load"] >= 0, q
assert type(q["overloaded"]) is bool, q
why = q["next_switch_why"]
assert why in (None, "idle", "turn", "aging", "batching"), q
assert (why is None) == (q["next_switch"] is None), q'
}
check "ollamaxctl --json queue has the offered load, overload and why the next switch" load_typed
check "ollamaxctl queue prints the offered load" sh -c "'$CTL' -c '$TMP/ollamax.conf' queue | grep -q '^offered load: [0-9]'"
check "the supervisor stops cleanly" stopped
finish
