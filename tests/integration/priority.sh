#!/usr/bin/env bash
# An agent's priority reaches the broker: with its one slot held, the
# requests that wait for it are served high first, then normal, then low,
# whatever order they came in.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# Bounds far apart, so that the order cannot hang on how long each
# waited: a priority weighs a request by (max_wait_normal / its
# max_wait)^0.25, 5.5 for high and 0.2 for low here, and a high request
# that has waited 0.4 s is served by aging before any other.
gate_fleet 1s 15m 2h first:normal early:low late:low middle:normal urgent:high
check "the supervisor is up" wait_log "ready:"
"$CTL" -c "$TMP/ollamax.conf" run first now
check "a first run takes the slot, and is held there" \
	wait_log "GATE first now" "$MODE.log"
# The lowest first, the highest last.
for agent in early late middle urgent; do
	"$CTL" -c "$TMP/ollamax.conf" run "$agent" now
done
check "four more wait in the broker" status_until 's["broker"]["queued"] == 4'
touch "$MODE.open"
served_in_order() {
	local got
	got=$(gate_order 5)
	# The two low ones in either order: they came from two workers.
	case "$got" in
	"first urgent middle early late " | "first urgent middle late early ") ;;
	*) echo "      served: $got"; return 1 ;;
	esac
}
check "they are served high, then normal, then low" served_in_order
all_answered() {
	for agent in first early late middle urgent; do
		wait_log "$agent: run 1: tinyllama answered" || {
			echo "      $agent's answer is not logged"
			return 1
		}
	done
}
check "and each agent's answer is logged" all_answered
# What follows the agent's name is its text, whatever it starts with: the
# backend gets it whole in the prompt.
"$CTL" -c "$TMP/ollamax.conf" run first "-h --json -t"
check "a run text that starts with - reaches the backend as it was given" \
	wait_log "^GATE first -h --json -t$" "$MODE.log"
"$CTL" -c "$TMP/ollamax.conf" run first -- -w
check "and one after --" wait_log "^GATE first -w$" "$MODE.log"
# A worker's process that ends with a request of it running and an older
# one waiting: the drop of the running one gives its slot to the waiting
# one in the policy before the broker has carried that out, and the drop
# of that one must free the slot again, not leave it taken for good.
rm -f "$MODE.open"
"$CTL" -c "$TMP/ollamax.conf" run first held
check "a run takes the slot, and is held there" \
	wait_log "GATE first held" "$MODE.log"
sleep 1000 &
standin=$!
PIDS+=("$standin")
"$BUILD/tests/infer_once" -p low -w 6 -i "$(((standin << 32) | 1))" \
	"ipc://$TMP/run/broker.sock" light 'older low' >"$TMP/low.out" 2>&1 &
low=$!
check "a low request of a process of worker 6 waits" \
	status_until 's["broker"]["queued"] == 1'
"$BUILD/tests/infer_once" -p high -w 6 -i "$(((standin << 32) | 2))" \
	"ipc://$TMP/run/broker.sock" light 'newer high' >"$TMP/high.out" 2>&1 &
high=$!
check "then a high one" status_until 's["broker"]["queued"] == 2'
"$CTL" -c "$TMP/ollamax.conf" kill first
check "the high one takes the slot" wait_log "GATE newer high" "$MODE.log"
kill "$standin"
check "the broker drops both as the process ends" \
	wait_log "worker 6's process $standin ended: 2 requests dropped"
check "and holds no slot for them" \
	status_until 's["broker"]["queued"] == 0 and s["broker"]["busy"] == 0'
wait "$low" "$high" || true
check "both senders heard why" \
	eq "$(cat "$TMP/low.out" "$TMP/high.out")" "failed: its worker ended
failed: its worker ended"
touch "$MODE.open"
check "a request after them is served" \
	has "$("$BUILD/tests/infer_once" "ipc://$TMP/run/broker.sock" light 'after them')" "ok: "
check "and the low one never reached the backend" \
	sh -c "! grep -q '^GATE older low' '$MODE.log'"

# More requests waiting at the broker than the 1024 contexts it starts
# with, each holding one until answered, all sent at once: a cancel still
# comes in within the 5 s many_waiting gives it, and a more urgent request
# would too.
rm -f "$MODE.open"
check "with 10000 requests waiting at the broker, a cancel still comes in" \
	eq "$(timeout 60 "$BUILD/tests/many_waiting" "ipc://$TMP/run/broker.sock" light 10000)" "the cancel was answered"
touch "$MODE.open"
check "the supervisor stops cleanly" stopped
finish
