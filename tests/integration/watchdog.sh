#!/usr/bin/env bash
# A broker or worker that hangs stops reporting: the supervisor kills it
# and starts it again, and a run that waited on a hung broker is answered
# by the new one. Here SIGSTOP hangs them, as a deadlock would; and a
# broker that hangs before it says anything is one that never speaks.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_emu emu --speed 20 --parallel 2 --vram-mb 4096
fleet_conf "$URL_emu" <<CONF
[tier.light]
model = tinyllama
CONF
sed -i 's/^workers = 2$/workers = 2\nwatchdog = 5s/' "$TMP/ollamax.conf"
# Dealt round the workers: asker on worker 0, idler on worker 1.
for name in asker idler; do
	printf '[agent]\nname = %s\ntier = light\ntrigger = demand\nprompt = Say {{input}}.\n' \
		"$name" >"$TMP/agents/$name.conf"
done
start_fleet
check "the supervisor is up" wait_log "ready:"

# back_up ROLE INDEX OLD_PID: the child runs again, under a new pid.
back_up() {
	status_until "[p for p in s['processes'] if p['role'] == '$1' and p['index'] == $2 and p['pid'] not in (0, $3) and p['state'] == 'running']"
}

# A first answer: the worker is connected to the broker, so that the run
# below is sent to the hung broker, lost with it, and sent again.
check "the broker answers before it hangs" \
	sh -c "timeout 20 '$CTL' -c '$TMP/ollamax.conf' run -w asker first >/dev/null"
broker=$(proc_pid broker 0)
PIDS+=("$broker")
kill -STOP "$broker"
timeout 30 "$CTL" -c "$TMP/ollamax.conf" run -w asker "hello" >"$TMP/answer" 2>&1 &
asked=$!
check "a broker that stops reporting is killed" \
	wait_log "broker 0 (pid $broker) has not reported for [0-9]*s: killing it to start it again"
check "the broker is started again" back_up broker 0 "$broker"
forget_pid "$broker"
check "the run sent to the hung broker is answered by the new one" wait "$asked"
check "its answer is there" test -s "$TMP/answer"
check "the worker sent it again when the hung broker went" \
	grep -q "asker: broker unreachable (Connection reset): retry 1" "$TMP/sup.log"
check "and the new broker served it, once" status_until "s['broker']['served'] == 1"

worker=$(proc_pid worker 1)
PIDS+=("$worker")
kill -STOP "$worker"
check "a worker that stops reporting is killed" \
	wait_log "worker 1 (pid $worker) has not reported for [0-9]*s: killing it to start it again"
check "the worker is started again" back_up worker 1 "$worker"
forget_pid "$worker"
# The stopped worker's last report still counts its agent: ask the agent.
check "with its agent, which answers" \
	sh -c "timeout 20 '$CTL' -c '$TMP/ollamax.conf' run -w idler again >/dev/null"

# The supervisor itself held up for longer than the watchdog: the silence
# is its own, and nobody is killed for it.
broker=$(proc_pid broker 0)
worker=$(proc_pid worker 0)
kills=$(grep -c "has not reported" "$TMP/sup.log" || true)
# 7 s: past the 5 s watchdog whatever the children last said before it.
kill -STOP "$sup_pid"
sleep 7
kill -CONT "$sup_pid"
# Two watchdog ticks after it goes on (they come each second).
uptime() { "$CTL" -c "$TMP/ollamax.conf" --json status | python3 -c 'import json,sys
print(json.load(sys.stdin)["supervisor"]["uptime_s"])'; }
since=$(uptime)
check "the supervisor goes on" status_until "s['supervisor']['uptime_s'] >= $since + 2"
check "and kills no child for its own silence" eq "$(grep -c "has not reported" "$TMP/sup.log")" "$kills"
check "the broker runs on" eq "$(proc_pid broker 0)" "$broker"
check "the worker runs on" eq "$(proc_pid worker 0)" "$worker"
check "the supervisor stops cleanly" stopped

# A broker that hangs from its start, before it says anything: the same.
mkdir -p "$TMP/bin"
cp "$SUP" "$TMP/bin/ollamax-supervisor"
printf '#!/bin/sh\nexec sleep 60\n' >"$TMP/bin/ollamax-broker"
chmod +x "$TMP/bin/ollamax-broker"
sed 's/^runtime_dir = run$/runtime_dir = run2/' "$TMP/ollamax.conf" >"$TMP/mute.conf"
"$TMP/bin/ollamax-supervisor" -c "$TMP/mute.conf" start 2>"$TMP/mute.log" &
mute_pid=$!
PIDS+=("$mute_pid")
check "a broker silent from its start is killed" \
	wait_log "broker 0 (pid [0-9]*) has not reported for [0-9]*s: killing it to start it again" "$TMP/mute.log"
check "and started again" wait_log "broker 0 died of signal 9" "$TMP/mute.log"
mute_stops() { kill -TERM "$mute_pid"; wait "$mute_pid"; }
check "that supervisor stops cleanly too" mute_stops
finish
