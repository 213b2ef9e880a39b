#!/usr/bin/env bash
# A model removed from the backend while loaded (ollama rm, here DELETE
# /api/delete on ollamax-emu): the broker learns it from the first 404,
# what waits for it falls down the tier chain at once, the agents keep
# getting answers, and `ollamaxctl queue` shows the model missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_emu emu --speed 100 --parallel 2 --vram-mb 4096
fleet_conf "$URL_emu" <<CONF
[broker]
parallel = 2
# The emulator reads the lease on its own clock, 100 times the wall's: a
# day there outlasts the test, as the renewals, half a day of the wall's
# apart, never come.
lease = 24h
[tier.coding]
model = qwen2.5-coder:7b
fallback = light
[tier.light]
model = tinyllama
CONF
for i in 1 2 3; do
	cat >"$TMP/agents/00$i-coder$i.conf" <<AGENT
[agent]
name = coder$i
tier = coding
trigger = every 1s
jitter = 0%
output = file:coder$i.out
prompt = Review change {{n}} for {{name}}.
[options]
num_predict = 20
AGENT
done
start_fleet

check "coding agents are answered by their own model" \
	wait_log "coder1: run 1: qwen2.5-coder:7b answered"
broker_pid=$(proc_pid broker 0)
# The broker held while the model goes and every agent's timer fires
# (each 1 s): the requests that queued meanwhile go to the backend
# together, each before the first 404 is back, so that the broker hears
# the news more than once and must say it once all the same.
kill -STOP "$broker_pid"
check "the backend deletes the loaded model" \
	has "$(http DELETE "$URL_emu/api/delete" '{"model":"qwen2.5-coder:7b"}')" '200'
sleep 1.5
kill -CONT "$broker_pid"
before=$(runs_of coder2)
check "the first 404 tells the broker the model is gone" \
	wait_log "qwen2.5-coder:7b is gone from the backend"
check "what waited for it falls back to the light tier" \
	wait_log "(qwen2.5-coder:7b): falling back to tier light"
check "the agents keep getting answers" wait_runs coder2 $((before + 3))
check "later runs are answered down the chain" \
	wait_log "coder3: run [0-9]*: tinyllama answered"
check "the broker says it once" \
	test "$(grep -c 'is gone from the backend' "$TMP/sup.log")" -eq 1
check "ollamaxctl queue shows the model missing" \
	wait_state qwen2.5-coder:7b missing
check "the emulator still holds the removed model, as Ollama does" \
	has "$(http GET "$URL_emu/api/ps")" '"name":"qwen2.5-coder:7b"'
check "no request fails outright" \
	sh -c "! grep -q 'coder[0-9]: run [0-9]* failed' '$TMP/sup.log'"
check "the supervisor stops cleanly" stopped
finish
