#!/usr/bin/env bash
# A stop while the broker waits on the backend for a load, or for an
# unload: the supervisor ends at once, and the broker frees what each
# held (under the sanitizers, a leak would be reported at its end).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_fake_backend '{"load": "gate"}'
fleet_conf "$URL_fake" <<CONF
[broker]
idle_unload = 1s
[tier.light]
model = tinyllama
CONF
printf '[agent]\nname = light\ntier = light\ntrigger = demand\nprompt = {{input}}\n' \
	>"$TMP/agents/light.conf"
start_fleet
check "the supervisor is up" wait_log "ready:"
"$CTL" -c "$TMP/ollamax.conf" run light x
check "the backend holds the load of tinyllama" \
	wait_log "POST /api/generate load tinyllama" "$MODE.log"
check "the supervisor stops cleanly meanwhile" stopped
# Loaded, then idle for idle_unload: the broker unloads it.
echo '{"unload": "gate"}' >"$MODE"
start_fleet
check "started again" wait_log "ready:"
check "a run is answered" sh -c "'$CTL' -c '$TMP/ollamax.conf' run -w -t 2m light x | grep -qx hi"
check "the backend holds the unload of tinyllama, idle" \
	wait_log "POST /api/generate unload tinyllama" "$MODE.log"
check "the supervisor stops cleanly meanwhile" stopped
finish
