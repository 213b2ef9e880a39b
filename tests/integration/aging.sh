#!/usr/bin/env bash
# Aging reaches the broker: a request that has used 40% of its bound goes
# before one that its priority and its wait would otherwise put first.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# The slot is held for some 8 s while "patient" (low, bound 60 s) waits;
# "pressed" (high, bound 2 s) comes with 1 s left. Weighed by priority
# and wait alone (highest response ratio next, weighed by (max_wait_normal
# / max_wait)^0.25: 1.78 for high, 0.76 for low; a run guessed at some
# 2.4 s once the held one is timed), patient ranks 3.3 to pressed's 2.5.
# But pressed has used half its bound, patient 13%: aged, pressed goes
# first.
# A slower machine only makes pressed wait longer, which ranks it first
# either way.
gate_fleet 2s 20s 60s warm:normal first:normal patient:low pressed:high
check "the supervisor is up" wait_log "ready:"
# A run at once, so that the broker times one: its guess of a run would
# be 10 s otherwise.
touch "$MODE.open"
"$CTL" -c "$TMP/ollamax.conf" run warm now
check "a first run is answered at once" wait_log "warm: run 1: tinyllama answered"
rm "$MODE.open"
"$CTL" -c "$TMP/ollamax.conf" run first now
check "a second takes the slot, and is held there" \
	wait_log "GATE first now" "$MODE.log"
"$CTL" -c "$TMP/ollamax.conf" run patient now
check "a low one waits" status_until 's["broker"]["queued"] == 1'
# What aging weighs is time waited: the waits are the test's input.
sleep 7
"$CTL" -c "$TMP/ollamax.conf" run pressed now
check "then a high one" status_until 's["broker"]["queued"] == 2'
sleep 1
touch "$MODE.open"
served_in_order() {
	local got
	got=$(gate_order 4)
	[ "$got" = "warm first pressed patient " ] || {
		echo "      served: $got"
		return 1
	}
}
check "the one that has used more of its bound goes first" served_in_order
check "the supervisor stops cleanly" stopped
finish
