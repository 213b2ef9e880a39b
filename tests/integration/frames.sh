#!/usr/bin/env bash
# Bad frames thrown at the live sockets (ctl, hub, broker): truncated,
# mistyped, oversized and random. Each is refused and counted; nothing
# crashes, nothing restarts, and the agents keep working.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_emu emu --speed 100 --parallel 2
fleet_conf "$URL_emu" <<CONF
[broker]
# The emulator reads the lease on its own clock, 100 times the wall's: a
# day there outlasts the test, as the renewals, half a day of the wall's
# apart, never come.
lease = 24h
[tier.light]
model = tinyllama
# Only infer_once asks for it: its requests at the emulator are those.
[tier.once]
model = qwen2.5:3b
CONF
cat >"$TMP/agents/001-steady.conf" <<'AGENT'
[agent]
name = steady
tier = light
trigger = every 1s
jitter = 0%
output = file:steady.out
prompt = Tick {{n}}.
[options]
num_predict = 6
AGENT
STORM="$BUILD/tests/frame_storm"
start_fleet
for _ in $(seq 1 200); do
	grep -q "ready:" "$TMP/sup.log" && break
	sleep 0.02
done

runs() { runs_of steady; }
# Each socket's storm is counted on its own: the total of all three would
# pass with one of them not counting. The hub and ctl.sock are the
# supervisor's, counted at once; the broker's count comes with its report,
# each second, so its storm goes last. Of each 6 frames, the one with
# flipped bytes may still be valid.
bad_frames() {
	"$CTL" -c "$TMP/ollamax.conf" --json status | python3 -c 'import json,sys
print(json.load(sys.stdin)["supervisor"]["bad_frames"])'
}
# counted SINCE N: the status counts N bad frames more than SINCE.
counted() { status_until "s['supervisor']['bad_frames'] >= $1 + $2"; }
since=$(bad_frames)
check "the ctl socket answers bad frames with an error" \
	sh -c "timeout 60 '$STORM' 'ipc://$TMP/run/ctl.sock' 300 1 | grep -q '300 answered'"
check "and counts them" counted "$since" 250
since=$(bad_frames)
check "the hub drops bad frames" \
	sh -c "timeout 60 '$STORM' 'ipc://$TMP/run/hub.sock' 30 3 | grep -q ' 0 answered'"
check "and counts them" counted "$since" 25
since=$(bad_frames)
check "the broker answers bad frames with a refusal" \
	sh -c "timeout 60 '$STORM' 'ipc://$TMP/run/broker.sock' 300 2 | grep -q '300 answered'"
check "and counts them" counted "$since" 250
# Ollama takes an empty prompt for a load and answers nothing: the broker
# must not pass one on as a run.
check "the broker refuses an empty prompt, said so" \
	eq "$("$BUILD/tests/infer_once" "ipc://$TMP/run/broker.sock" light "")" \
	"failed: an empty prompt"
check "the broker refuses a tier it does not know, named" \
	eq "$("$BUILD/tests/infer_once" "ipc://$TMP/run/broker.sock" gold 'Say hi.')" \
	'failed: unknown tier "gold"'
check "and answers a prompt" \
	sh -c "'$BUILD/tests/infer_once' 'ipc://$TMP/run/broker.sock' light 'Say hi.' | grep -q '^ok: .'"
# A worker's frames reach the broker's loop in no fixed order: a cancel
# may come before the request it cancels, which must then not run.
check "a request whose cancel came first is not run" \
	eq "$("$BUILD/tests/infer_once" -c -i 2 "ipc://$TMP/run/broker.sock" light 'Say hi.')" \
	"failed: its agent was stopped"
check "nor is it sent again" \
	eq "$("$BUILD/tests/infer_once" -i 2 "ipc://$TMP/run/broker.sock" light 'Say hi.')" \
	"failed: its agent was stopped"
check "and the cancel stops that request only" \
	sh -c "'$BUILD/tests/infer_once' 'ipc://$TMP/run/broker.sock' light 'Say hi.' | grep -q '^ok: .'"
# A worker that gave up on a request after its tries cancels it too.
check "a request its agent gave up on is not run, said so" \
	eq "$("$BUILD/tests/infer_once" -c -g -i 3 "ipc://$TMP/run/broker.sock" light 'Say hi.')" \
	"failed: its agent gave up waiting for it"
check "in the log too" \
	wait_log "infer_once: its agent gave up waiting for it before this request came: not run"
# A worker whose wait for an answer ends as the answer comes drops it and
# sends the request again, with its id: that answer comes again, and the
# request does not run a second time.
once_requests() {
	curl -s "$URL_emu/emu/stats" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["models"].get("qwen2.5:3b", {}).get("requests", 0))'
}
first=$("$BUILD/tests/infer_once" -i 11 "ipc://$TMP/run/broker.sock" once 'Say hi.')
check "a request is answered" has "$first" "ok: "
check "sent again once answered, it gets the same answer" \
	eq "$("$BUILD/tests/infer_once" -i 11 "ipc://$TMP/run/broker.sock" once 'Say hi.')" "$first"
check "from the broker, not a second run" \
	wait_log "infer_once: request 11 sent again once answered: its answer again, not a second run"
check "the backend ran it once" eq "$(once_requests)" 1
check "a request of another id runs" \
	sh -c "'$BUILD/tests/infer_once' -i 12 'ipc://$TMP/run/broker.sock' once 'Say hi.' | grep -q '^ok: .'"
check "at the backend" eq "$(once_requests)" 2
# A peer that sends requests and reads no answer would hold every context
# of the socket with answers it never takes, and the socket would take
# nothing from anyone: its connection is closed once an answer has waited
# 5 s to be written.
check "a peer that reads no answers on ctl.sock is cut off" \
	eq "$(timeout 60 "$BUILD/tests/no_read" "$TMP/run/ctl.sock" 1000 30)" "closed by the server"
check "said so" wait_log "ipc: a peer on ipc://$TMP/run/ctl.sock read no answer for 5 s: its connection is closed"
check "and the socket answers others again" sh -c "'$CTL' -c '$TMP/ollamax.conf' status >/dev/null"
before=$(runs)
status=$("$CTL" -c "$TMP/ollamax.conf" --json status)
no_restarts() {
	python3 -c 'import json,sys
s = json.loads(sys.argv[1])
sys.exit(0 if all(p["state"] == "running" and p["restarts"] == 0 for p in s["processes"]) else 1)' "$status"
}
check "no process crashed or restarted" no_restarts
check "the agent keeps getting answers" wait_runs steady $((before + 2))
check "the supervisor still stops cleanly" stopped
finish
