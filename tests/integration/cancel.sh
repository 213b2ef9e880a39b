#!/usr/bin/env bash
# An agent stopped while its inference runs: the broker drops the request
# and closes its stream, so that the backend's slot frees at once rather
# than when an answer nobody takes is over.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# deepseek-r1:8b at --speed 2 answers in about 10 s: time to stop it.
start_emu emu --speed 2 --parallel 2 --vram-mb 4096
fleet_conf "$URL_emu" <<CONF
[broker]
# The emulator reads the lease on its own clock, twice the wall's: a
# day there outlasts the test, as the renewals, half a day of the wall's
# apart, never come.
lease = 24h
[tier.reasoning]
model = deepseek-r1:8b
[tier.light]
model = tinyllama
CONF
cat >"$TMP/agents/thinker.conf" <<'AGENT'
[agent]
name = thinker
tier = reasoning
trigger = demand
prompt = Think about {{input}}.
AGENT
sed 's/^name = thinker$/name = muser/' "$TMP/agents/thinker.conf" >"$TMP/agents/muser.conf"
printf '[agent]\nname = sender\ntier = light\ntrigger = demand\noutput = agent:sink\nprompt = Say: {{input}}\n' \
	>"$TMP/agents/sender.conf"
printf '[agent]\nname = sink\ntier = light\ntrigger = inbox\noutput = file:sink.out\nprompt = Keep: {{input}}\n' \
	>"$TMP/agents/sink.conf"
start_fleet
check "the supervisor is up" wait_log "ready:"

"$CTL" -c "$TMP/ollamax.conf" run thinker "queues"
check "its run streams from the backend" streams_open 1
check "the agent is killed" "$CTL" -c "$TMP/ollamax.conf" kill thinker
check "the backend's stream closes at once, not when its answer would have ended" streams_open 0 4
check "the broker says it cancelled the request" \
	wait_log "thinker: its agent was stopped: request cancelled while it ran"

# Stopped while its answer is on its way to an agent of another worker:
# should the delivery fail, the answer is logged whole all the same.
worker_of() {
	"$CTL" -c "$TMP/ollamax.conf" --json agents | python3 -c 'import json,sys
print([a["worker"] for a in json.load(sys.stdin)["agents"] if a["name"] == sys.argv[1]][0])' "$1"
}
check "the sender and its receiver are on two workers" \
	test "$(worker_of sender)" != "$(worker_of sink)"
sink_pid=$(proc_pid worker "$(worker_of sink)")
kill -STOP "$sink_pid"
"$CTL" -c "$TMP/ollamax.conf" run sender "a text to pass on"
check "with the receiver's worker stopped, the sender answers" \
	wait_log "sender: run 1: tinyllama answered"
check "and is killed while its answer is on its way" \
	"$CTL" -c "$TMP/ollamax.conf" kill sender
kill -KILL "$sink_pid"
check "the delivery that failed is logged with the answer" \
	wait_log "sender: output for sink not delivered: .*; it was:"
# muser may live on the receiver's worker: its run below waits for it.
check "the receiver's worker is started again" \
	status_until 'all(p["state"] == "running" and p["pid"] != '"$sink_pid"' for p in s["processes"])'

# Stopped while the broker restarts: the retry of its inference waits in
# the worker's socket for the next broker, and the cancel must wait behind
# it as long, not give up first (it once gave up after 5 s, and the next
# broker ran the request for nobody).
muser_worker=$("$CTL" -c "$TMP/ollamax.conf" --json agents | python3 -c 'import json,sys
print([a["worker"] for a in json.load(sys.stdin)["agents"] if a["name"] == "muser"][0])')
broker_pid=$(proc_pid broker 0)
"$CTL" -c "$TMP/ollamax.conf" run muser "waits"
check "another run streams from the backend" streams_open 1
kill -STOP "$sup_pid"
kill -KILL "$broker_pid"
check "with the broker gone and not started again, the agent retries" \
	wait_log "muser: broker unreachable (.*): retry 1"
# Past the retry's 0.2 s pause: the retry then waits in the socket.
sleep 1
check "its worker takes a kill meanwhile, as the supervisor passes it on" \
	"$BUILD/tests/hub_command" "ipc://$TMP/run/worker-$muser_worker.sock" kill muser
# Past the 5 s a cancel was given before.
sleep 6
kill -CONT "$sup_pid"
# The cancel may reach it first: the request is then not run at all.
check "the next broker cancels the request" \
	wait_log "muser: its agent was stopped\(: request cancelled\| before this request came: not run\)"
check "and no stream stays open for it" streams_open 0 4

# A worker killed while a run of its agent streams: no one can take that
# answer, resend the request or cancel it, as its id names the process
# that is gone. The broker drops it as it sees the process end, or as the
# worker's next process says hello, whichever comes first.
check "a killed agent spawned again" "$CTL" -c "$TMP/ollamax.conf" spawn thinker
"$CTL" -c "$TMP/ollamax.conf" run thinker "streams on"
check "streams again" streams_open 1
thinker_worker=$(worker_of thinker)
# The broker may see the process end before the next one says hello:
# another request, in the name of a process of that worker that still
# runs, goes only at the hello.
sleep 60 &
standin=$!
"$BUILD/tests/infer_once" -w "$thinker_worker" -i "$(((standin << 32) | 1))" -n 400 \
	"ipc://$TMP/run/broker.sock" reasoning 'Wait.' >"$TMP/standin.out" &
standin_infer=$!
check "with a request of another process of that worker streaming too" streams_open 2
thinker_pid=$(proc_pid worker "$thinker_worker")
kill -KILL "$thinker_pid"
check "once its worker is back, the streams close, not when their answers would have ended" \
	streams_open 0 4
check "the broker dropped the run of the process killed" \
	wait_log -E "worker $thinker_worker('s process $thinker_pid ended: 1 request dropped| started again: 2 requests of its process before dropped)"
check "and, at the next one's hello, the other" \
	wait_log -E "worker $thinker_worker started again: [12] requests? of its process before dropped"
wait "$standin_infer" || true
kill "$standin" 2>/dev/null || true
check "whose sender heard so" eq "$(cat "$TMP/standin.out")" "failed: its worker ended"

# A worker's process that ends with none after it (left FAILED, or its
# supervisor held up, as here): no hello comes, and the broker must see the
# process end by itself.
run_once_up() {
	for _ in $(seq 1 100); do
		"$CTL" -c "$TMP/ollamax.conf" run "$@" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "      $1 did not take a run within 10 s"
	return 1
}
check "the agent runs on its worker's next process" run_once_up thinker "streams once more"
check "and streams" streams_open 1
thinker_worker=$(worker_of thinker)
thinker_pid=$(proc_pid worker "$thinker_worker")
kill -STOP "$sup_pid"
kill -KILL "$thinker_pid"
check "with its worker killed and none started after it, the stream closes" \
	streams_open 0 4
check "as the broker saw the process end" \
	wait_log "worker $thinker_worker's process $thinker_pid ended: 1 request dropped"
kill -CONT "$sup_pid"
# A frame that process sent before its end may come after its next
# process has said hello: it is refused, not run.
next_pid() {
	local pid
	for _ in $(seq 1 200); do
		pid=$(worker_pid "$thinker_worker")
		[ -n "$pid" ] && [ "$pid" != "$thinker_pid" ] &&
			grep -q "worker $thinker_worker runs as process $pid$" "$TMP/sup.log" && return 0
		sleep 0.05
	done
	echo "      no hello from worker $thinker_worker's next process"
	return 1
}
check "the worker's next process says hello to the broker" next_pid
check "a request of the process before it is refused" \
	eq "$("$BUILD/tests/infer_once" -w "$thinker_worker" -i "$(((thinker_pid << 32) | 1))" \
		"ipc://$TMP/run/broker.sock" light 'Say hi.')" "failed: its worker had ended when it came"
# A hello from a process that has ended already, as a worker's frames may
# cross its end: a request in its name is refused at once, not run.
true &
gone=$!
wait "$gone"
check "a request of a process that said hello once ended is refused" \
	eq "$("$BUILD/tests/infer_once" -H -w 6 -i "$(((gone << 32) | 1))" \
		"ipc://$TMP/run/broker.sock" light 'Say hi.')" "failed: its worker had ended when it came"
check "as the broker saw the end at the hello" \
	wait_log "worker 6's process $gone has ended already"
# A hello whose process's number another process has taken since: the
# start time its frames tell is not the living one's, so the broker knows
# its sender ended, and watches nobody in its name. The same hello with the
# living one's start time is that process's, and is served.
sleep 120 &
stranger=$!
PIDS+=("$stranger")
stranger_started=$(started_of "$stranger")
check "a request of a process whose number another has taken is refused" \
	eq "$(infer_as 7 "$stranger" $((stranger_started + 1)) 1 -H)" "$REFUSED_ENDED"
check "as the broker told the number's process from the one that said hello" \
	wait_log "worker 7's process $stranger has ended already"
check "the hello of the process that holds the number is served" \
	served "$(infer_as 8 "$stranger" "$stranger_started" 1 -H)"
# A hello in the number of a process watched, telling another start, is
# the last word of a process that has ended (or a false one): the process
# watched is the worker's still.
check "a hello in a watched process's number, of another start, is of one ended" \
	eq "$(infer_as 8 "$stranger" $((stranger_started + 2)) 2 -H)" "$REFUSED_ENDED"
check "while the process watched is served still" \
	served "$(infer_as 8 "$stranger" "$stranger_started" 3)"
kill "$stranger"
wait "$stranger" 2>/dev/null || :
forget_pid "$stranger"
check "its end is seen: a request in its name is refused" \
	refused_soon 8 "$stranger" "$stranger_started"
check "the supervisor stops cleanly on SIGINT" stopped INT
finish
