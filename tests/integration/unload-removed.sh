#!/usr/bin/env bash
# A model removed from the backend while loaded and idle, then unloaded
# for idle_unload: Ollama answers that unload with a 404, as it does any
# request for a model it no longer has. The broker ends the unload there
# (it would otherwise watch /api/ps list the runner for good and send the
# unload again every 10 s), marks the model missing, which the policy never
# unloads, and later requests for it fail with that reason instead of
# waiting. A model removed while unloaded is said missing at the next
# reading of /api/tags; one missing already is not said so again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_emu emu --speed 100 --parallel 2 --vram-mb 4096
# The broker reads /api/tags at start and then every 30 s: the unload,
# 2 s after the only run, comes first.
fleet_conf "$URL_emu" <<CONF
[broker]
parallel = 2
idle_unload = 2s
# The emulator reads the lease on its own clock, 100 times the wall's: a
# day there outlasts the test, as the renewals, half a day of the wall's
# apart, never come.
lease = 24h
[tier.light]
model = tinyllama
[tier.ghost]
model = ghost-model
[tier.spare]
model = llama3.2:3b
CONF
cat >"$TMP/agents/scribe.conf" <<AGENT
[agent]
name = scribe
tier = light
trigger = demand
prompt = Summarise {{input}}.
[options]
num_predict = 10
AGENT
start_fleet

# Waited for 10 s at most (ollamaxctl's default is 30 minutes): a run held
# for a model that cannot come fails its check, not the suite's time limit.
run_scribe() { "$CTL" -c "$TMP/ollamax.conf" run -w -t 10s scribe "$1" 2>&1; }

check "the supervisor is ready" wait_log "ready:"
check "a tier's model the backend lacks is said missing at start" \
	wait_log "ghost-model is not in /api/tags: what waits for it falls back"
# That first reading listed llama3.2:3b; no agent runs on its tier.
check "the backend deletes a model never loaded" \
	eq "$(http DELETE "$URL_emu/api/delete" '{"model":"llama3.2:3b"}')" '200 '
run_scribe "the queue" >/dev/null
check "a run loads the model and is answered" \
	wait_log "scribe: run 1: tinyllama answered"
check "the backend deletes the loaded model" \
	has "$(http DELETE "$URL_emu/api/delete" '{"model":"tinyllama"}')" '200'
check "the idle unload is sent" wait_log "unloading tinyllama: idle"
check "its 404 ends the unload: the model is gone" \
	wait_log "unload of tinyllama: .*: it is gone from the backend"
check "ollamaxctl queue shows it missing, not unloading" \
	wait_state tinyllama missing
check "a later run fails at once, saying why" \
	has "$(run_scribe "the log")" "its model is missing"
check "the emulator still holds the runner, as Ollama does" \
	has "$(http GET "$URL_emu/api/ps")" '"name":"tinyllama'
# The broker reads /api/tags again 30 s after its start and at nothing
# sooner: no request, 404 or reload has it look again. wait_log waits
# 10 s at a time: 40 s at most.
reread() {
	local line="llama3.2:3b is not in /api/tags: what waits for it falls back"
	for _ in 1 2 3 4; do
		wait_log "$line" && return 0
	done
	return 1
}
check "the next reading says the model deleted while unloaded is missing" reread
# A reading goes through the models in the order of their tiers: what
# it said of ghost-model and tinyllama is in the log before that line.
check "ghost-model, missing since the first reading, is not said so again" \
	eq "$(grep -c "ghost-model is not in /api/tags" "$TMP/sup.log")" 1
check "nor tinyllama, said gone as its unload got a 404" \
	eq "$(grep -c "tinyllama is not in /api/tags" "$TMP/sup.log")" 0
check "the supervisor stops cleanly" stopped
finish
