#!/usr/bin/env bash
# Models loaded or unloaded outside ollamax, by another client of the same
# Ollama or before the supervisor started: the broker sees them in
# /api/ps and plans with them, so that Ollama never has to evict on its
# own for a load of the broker's.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_emu emu --speed inf --parallel 2 --vram-mb 4096
# Another client's model, loaded before the supervisor starts: 2019 MiB of
# weights and their cache, where qwen2.5-coder:7b (3008 MiB) needs 80% of
# what is free.
check "another client loads llama3.2:3b" \
	has "$(http POST "$URL_emu/api/generate" '{"model":"llama3.2:3b","keep_alive":-1}')" '"done_reason":"load"'
# A lease other than Ollama's default keep-alive, to be told from it.
shipped_conf "$URL_emu" "$TMP/agents" "" -e 's/^lease = 5m$/lease = 4m/'
grep -q '^lease = 4m$' "$TMP/ollamax.conf" ||
	{ echo "conf/ollamax.conf no longer gives lease = 5m"; exit 1; }
tier_agents
start_fleet
check "the supervisor is up" wait_log "ready:"
check "it sees the model loaded outside it" \
	wait_log "llama3.2:3b ([0-9]* MB) is loaded outside ollamax: it counts against vram_mb"
check "status lists it as loaded outside ollamax" \
	status_until 's["broker"]["outside"] == ["llama3.2:3b"] and "llama3.2:3b" in s["broker"]["resident"]'
check "and says so as text" \
	sh -c "'$CTL' -c '$TMP/ollamax.conf' status | grep -q '^resident: .*llama3.2:3b (outside ollamax)'"
check "a coding run is answered by qwen2.5-coder:7b" answered_by coding qwen2.5-coder:7b
check "for which the broker unloaded the other client's model" \
	grep -q "unloading llama3.2:3b (loaded outside ollamax): switching to qwen2.5-coder:7b (" "$TMP/sup.log"
check "Ollama did not have to evict it" test "$(emu_sched emu evictions)" = 0
check "a light run is answered beside it" answered_by light tinyllama

# Loaded again by another client with another context: Ollama replaces the
# broker's tinyllama (2048) with theirs (1024), beside qwen2.5-coder:7b.
# Shorter than num_ctx, it might have been the model's own limit, but the
# broker has seen what its own load got. Its next load of tinyllama takes
# their place, and qwen2.5-coder:7b stays. (That a list asked before that
# load never makes the broker's own tinyllama pass for theirs is
# backend-faults.sh's to check: it takes holding such a list.)
check "another client loads tinyllama again, with a shorter context" \
	has "$(http POST "$URL_emu/api/generate" '{"model":"tinyllama","keep_alive":-1,"options":{"num_ctx":1024}}')" '"done_reason":"load"'
reloads=$(emu_sched emu reloads)
check "the broker counts it as another client's model" \
	wait_log "tinyllama ([0-9]* MB) is loaded outside ollamax with a context of 1024, where its tier's requests run with 2048"
check "a light run is answered by tinyllama" answered_by light tinyllama
check "loaded by the broker in place of theirs" \
	test "$(emu_sched emu reloads)" = $((reloads + 1))
check "beside qwen2.5-coder:7b, which stayed" \
	sh -c "! grep -q 'unloading qwen2.5-coder:7b' '$TMP/sup.log'"
check "with no eviction by Ollama" test "$(emu_sched emu evictions)" = 0

# Unloaded by another client: loaded again, by the broker, when needed.
check "another client unloads tinyllama" \
	has "$(http POST "$URL_emu/api/generate" '{"model":"tinyllama","keep_alive":0}')" '"done_reason":"unload"'
check "the broker sees it gone" \
	wait_log "tinyllama is no longer loaded (unloaded outside ollamax, or Ollama restarted): it loads again when needed"
check "and plans with it unloaded" wait_state tinyllama unloaded
check "a light run is answered by it again" answered_by light tinyllama
check "loaded by the broker" test "$(grep -c "loading tinyllama$" "$TMP/sup.log")" -ge 2
check "still no eviction by Ollama" test "$(emu_sched emu evictions)" = 0

# Loaded by another client with the context the tier asks, and left to
# Ollama's timer (no keep_alive): Ollama evicts the broker's models for
# it; the broker takes it as resident and the others as unloaded, serves
# from it without a load, which puts it on the broker's lease from then
# on, and unloads it itself when its room is needed.
check "another client loads deepseek-r1:8b as the tier runs it" \
	has "$(http POST "$URL_emu/api/generate" '{"model":"deepseek-r1:8b","options":{"num_ctx":2048}}')" '"done_reason":"load"'
evicted=$(emu_sched emu evictions)
reloads=$(emu_sched emu reloads)
check "for which Ollama evicted the broker's two models" test "$evicted" = 2
check "the broker takes it as resident" \
	wait_log "deepseek-r1:8b is loaded outside ollamax: taken as resident"
check "and status lists it as the broker's own" \
	status_until 's["broker"]["resident"] == ["deepseek-r1:8b"] and s["broker"]["outside"] == []'
check "and the models Ollama evicted as unloaded" wait_state qwen2.5-coder:7b unloaded
check "a reasoning run is answered by it" answered_by reasoning deepseek-r1:8b
check "whose keep_alive put it on the broker's lease, off Ollama's timer" \
	leased_within deepseek-r1:8b 241
check "which the broker never loaded" sh -c "! grep -q 'loading deepseek-r1:8b' '$TMP/sup.log'"
check "a coding run is answered by qwen2.5-coder:7b" answered_by coding qwen2.5-coder:7b
check "for which the broker unloaded deepseek-r1:8b itself" \
	grep -q "unloading deepseek-r1:8b: switching to qwen2.5-coder:7b (" "$TMP/sup.log"
check "Ollama evicted nothing more" test "$(emu_sched emu evictions)" = "$evicted"
check "nor loaded a model again for another context" test "$(emu_sched emu reloads)" = "$reloads"

# Loaded by another client with another context (Ollama's default, 4096,
# where the tier asks 2048): Ollama would load it again for the tier's
# first request, evicting what it must. The broker counts it as another
# model, and loads the tier's own in its place for the run.
check "another client loads deepseek-r1:8b with another context" \
	has "$(http POST "$URL_emu/api/generate" '{"model":"deepseek-r1:8b","keep_alive":-1,"options":{"num_ctx":4096}}')" '"done_reason":"load"'
evicted=$(emu_sched emu evictions)
reloads=$(emu_sched emu reloads)
check "the broker counts it as another client's model" \
	wait_log "deepseek-r1:8b ([0-9]* MB) is loaded outside ollamax with a context of 4096, where its tier's requests run with 2048: Ollama would load it again for them"
check "and does not take it as resident" wait_state deepseek-r1:8b unloaded
check "status lists their instance as loaded outside ollamax" \
	status_until 's["broker"]["outside"] == ["deepseek-r1:8b"]'
check "a reasoning run is answered by deepseek-r1:8b" answered_by reasoning deepseek-r1:8b
check "for which the broker loaded its own" grep -q "loading deepseek-r1:8b$" "$TMP/sup.log"
check "in place of the other client's, which Ollama unloaded for it" \
	test "$(emu_sched emu reloads)" = $((reloads + 1))
check "and Ollama evicted nothing for the broker" test "$(emu_sched emu evictions)" = "$evicted"
check "status no longer lists it as outside ollamax" \
	status_until 's["broker"]["outside"] == [] and s["broker"]["resident"] == ["deepseek-r1:8b"]'

check "a reasoning run is answered by deepseek-r1:8b" answered_by reasoning deepseek-r1:8b
check "the supervisor stops cleanly" stopped
mv "$TMP/sup.log" "$TMP/sup1.log"
start_fleet
check "a supervisor started again is up" wait_log "ready:"
check "it takes the model the last one left as resident" \
	wait_log "deepseek-r1:8b is loaded outside ollamax: taken as resident"
check "and serves from it" answered_by reasoning deepseek-r1:8b
check "no preload was loaded over it" sh -c "! grep -q 'loading' '$TMP/sup.log'"
check "Ollama evicted nothing for it" test "$(emu_sched emu evictions)" = "$evicted"
check "the second supervisor stops cleanly" stopped

# Left by another client with a shorter context than num_ctx, 2048 where
# the tier asks 4096: /api/show says qwen2.5-coder:7b was trained for
# 32768, so that is not what a load of the broker's would get. A supervisor
# started on it tells it apart before it plans anything.
check "another client loads qwen2.5-coder:7b with a context of 2048" \
	has "$(http POST "$URL_emu/api/generate" '{"model":"qwen2.5-coder:7b","keep_alive":-1,"options":{"num_ctx":2048}}')" '"done_reason":"load"'
evicted=$(emu_sched emu evictions)
reloads=$(emu_sched emu reloads)
mv "$TMP/sup.log" "$TMP/sup2.log"
start_fleet
check "a third supervisor is up" wait_log "ready:"
check "it counts the model as another client's" \
	wait_log "qwen2.5-coder:7b ([0-9]* MB) is loaded outside ollamax with a context of 2048, where its tier's requests run with 4096"
check "never as its own" sh -c "! grep -q 'qwen2.5-coder:7b is loaded outside ollamax: taken as resident' '$TMP/sup.log'"
check "a coding run is answered by qwen2.5-coder:7b" answered_by coding qwen2.5-coder:7b
check "loaded by the broker in place of the other's" \
	test "$(emu_sched emu reloads)" = $((reloads + 1))
check "and Ollama evicted nothing for it" test "$(emu_sched emu evictions)" = "$evicted"
check "the third supervisor stops cleanly" stopped

# A model that reads images: Ollama gives it a context of 2048 at least,
# so the 2048 another client's load got is what the tier's num_ctx of 1024
# gets too. Left with 4096, it is another's.
start_emu vis --speed inf --parallel 2 --vram-mb 8192
check "another client loads llava:latest as the tier would" \
	has "$(http POST "$URL_vis/api/generate" '{"model":"llava:latest","keep_alive":-1,"options":{"num_ctx":1024}}')" '"done_reason":"load"'
mkdir -p "$TMP/agents-vision"
printf '[agent]\nname = light\ntier = light\ntrigger = demand\nprompt = {{input}}\n' \
	>"$TMP/agents-vision/light.conf"
printf '%s\n' "[supervisor]" "runtime_dir = $TMP/run-vision" "state_dir = $TMP/state-vision" \
	"agents_dir = $TMP/agents-vision" "[broker]" "vram_mb = 8192" \
	"[backend]" "url = $URL_vis" "[tier.light]" "model = llava:latest" \
	"[model.llava:latest]" "num_ctx = 1024" >"$TMP/ollamax.conf"
loads=$(emu_sched vis loads)
mv "$TMP/sup.log" "$TMP/sup3.log"
start_fleet
check "a supervisor of a vision tier is up" wait_log "ready:"
check "it takes the model as resident" \
	wait_log "llava:latest is loaded outside ollamax: taken as resident"
check "never as another client's" sh -c "! grep -q 'llava:latest ([0-9]* MB) is loaded outside ollamax with a context' '$TMP/sup.log'"
check "a light run is answered by it" answered_by light llava:latest
check "with no load" test "$(emu_sched vis loads)" = "$loads"
check "another client loads llava:latest with a context of 4096" \
	has "$(http POST "$URL_vis/api/generate" '{"model":"llava:latest","keep_alive":-1,"options":{"num_ctx":4096}}')" '"done_reason":"load"'
reloads=$(emu_sched vis reloads)
check "the broker counts it as another client's" \
	wait_log "llava:latest ([0-9]* MB) is loaded outside ollamax with a context of 4096, where its tier's requests run with 2048"
check "a light run is answered by llava:latest" answered_by light llava:latest
check "loaded by the broker in place of theirs" \
	test "$(emu_sched vis reloads)" = $((reloads + 1))
check "its load got what was expected" sh -c "! grep -q 'llava:latest got a context of' '$TMP/sup.log'"
check "the vision tier's supervisor stops cleanly" stopped
finish
