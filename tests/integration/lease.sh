#!/usr/bin/env bash
# The broker's lease: its calls give a model a keep_alive of the lease,
# which it renews while the model idles, so that Ollama never unloads it on
# its own timer; once the broker is gone, stopped in order or killed with
# its supervisor, Ollama unloads the model a lease after its last use
# instead of holding the GPU for good.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# Half of it is the margin a renewal has against a loaded machine.
LEASE=4
# At --speed inf the emulator's clock is the wall's: the keep_alive the
# broker sends runs on the same clock as its renewals.
start_emu emu --speed inf --parallel 2 --vram-mb 4096
# lease_fleet URL: the fleet's configuration, a pinned tinyllama on the
# backend at URL, with the lease.
lease_fleet() {
	fleet_conf "$1" <<CONF
[broker]
lease = ${LEASE}s
[tier.light]
model = tinyllama
[model.tinyllama]
pin = yes
CONF
}
lease_fleet "$URL_emu"
light_agent a1 "$TMP/agents/a1.conf"

# generates: the /api/generate calls the emulator has answered.
generates() {
	curl -s "$URL_emu/emu/stats" | python3 -c 'import json,sys
print(sum(json.load(sys.stdin)["by_endpoint"].get("/api/generate", {}).values()))'
}

# now_ms: the wall's clock, in ms.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# listed_for SECONDS: at every look (each 50 ms or so) for SECONDS, the
# emulator lists tinyllama due to expire within the lease (and the time a
# look takes).
listed_for() {
	local until=$(($(now_ms) + $1 * 1000))
	while [ "$(now_ms)" -lt "$until" ]; do
		leased_within tinyllama "$LEASE.5" || return 1
		sleep 0.05
	done
}

# unloaded_within SECONDS: the emulator no longer lists tinyllama within
# SECONDS; says how long it took.
unloaded_within() {
	local start ps
	start=$(now_ms)
	while [ "$(now_ms)" -lt $((start + $1 * 1000)) ]; do
		ps=$(curl -s "$URL_emu/api/ps")
		case "$ps" in
		*'"name":"tinyllama'*) ;;
		*'"models":'*)
			echo "      unloaded $(($(now_ms) - start)) ms after"
			return 0
			;;
		esac
		sleep 0.05
	done
	echo "      still listed $1 s after: $ps"
	return 1
}

start_fleet
check "the supervisor is up" wait_log "ready:"
check "the pinned model is loaded at start" wait_state tinyllama resident
# Nothing runs: what keeps it loaded is the broker's renewals alone, an
# empty prompt once it has idled half a lease.
before=$(generates)
check "it stays loaded, idle, over three leases, each renewed" \
	listed_for $((3 * LEASE))
renewals=$(($(generates) - before))
echo "      renewals: $renewals in $((3 * LEASE)) s"
check "renewed as often as the lease needs, not more" \
	test "$renewals" -ge 3 -a "$renewals" -le 8
check "Ollama never unloaded it on its own" test "$(emu_sched emu unloads)" = 0
check "the broker says nothing went" \
	sh -c "! grep -q -e 'no longer loaded' -e 'cannot renew' '$TMP/sup.log'"
check "a run is answered by it" answered_by a1 tinyllama
check "the supervisor stops cleanly" stopped
check "said what becomes of the model" \
	grep -q "stopping: tinyllama left to its lease: Ollama unloads it ${LEASE}s after its last use" "$TMP/sup.log"
# Its last use, a run or a renewal, was half a lease before the stop at
# most.
check "once the fleet is stopped, Ollama unloads it within a lease" \
	unloaded_within $((LEASE + 2))

# Killed, the supervisor takes its children with it: nobody stops in order.
# Its log tells each renewal tried.
OLLAMAX_LOG=debug start_fleet
check "a second supervisor is up" wait_log "ready:"
check "the pin is loaded again" wait_state tinyllama resident
check "and stays loaded over a lease" listed_for "$LEASE"
# The backend away: a renewal that cannot reach it is said once, and tried
# again every eighth of the lease until one is answered.
port=${URL_emu##*:}
end_pid "$PID_emu"
forget_pid "$PID_emu"
check "a renewal that cannot reach the backend is said" \
	wait_log "cannot renew the lease of tinyllama: .*: trying again every 0.5 s"
# retries: the renewals tried since the first failed.
retries() {
	awk '/cannot renew the lease of tinyllama/ { failed = 1; next }
	failed && /renewing the lease of tinyllama/ { n++ } END { print n + 0 }' "$TMP/sup.log"
}
# Two more tries take a second; ten leave room for a loaded machine.
check "tried again meanwhile" count_reaches 2 tries retries
loads_before=$(grep -c "loaded tinyllama" "$TMP/sup.log" || true)
# The backend back is a new one, without the model: a renewal that reaches
# it first is answered (and loads it, in the backend's own way), or the
# broker's look at /api/ps finds the model gone first and loads the pin.
leased_again() {
	for _ in $(seq 1 200); do
		grep -q "tinyllama: its lease is renewed again" "$TMP/sup.log" && return 0
		[ "$(grep -c "loaded tinyllama" "$TMP/sup.log" || true)" -gt "$loads_before" ] && return 0
		sleep 0.05
	done
	return 1
}
"$BUILD/ollamax-emu" --catalog "$ROOT/conf/emu-models.ini" --listen "127.0.0.1:$port" \
	--port-file "$TMP/back.port" --speed inf --parallel 2 --vram-mb 4096 \
	>/dev/null 2>"$TMP/back.log" &
PIDS+=("$!")
check "the backend is back on its port" wait_log . "$TMP/back.port"
check "where the model is leased again, renewed or loaded anew" leased_again
check "said once while it was away" \
	eq "$(grep -c "cannot renew the lease" "$TMP/sup.log")" 1
check "the pin is loaded there" listed_for "$LEASE"
broker=$(proc_pid broker 0)
# Reaped at once, where the shell's word of the kill goes nowhere.
killed=0
{ kill -KILL "$sup_pid" && wait "$sup_pid"; } 2>/dev/null || killed=$?
check "the supervisor is killed" eq "$killed" 137
forget_pid "$sup_pid"
check "and its broker with it" gone_within 5 "$broker"
check "Ollama unloads the model within a lease of the kill" \
	unloaded_within $((LEASE + 2))
check "Ollama never had to evict a model on its own" \
	test "$(emu_sched emu evictions)" = 0

# A renewal that comes to a backend that no longer holds the model
# (restarted, or its keep-alive ran out) loads it again, and Ollama lists
# it only once loaded: the looks at /api/ps meanwhile must not take it for
# gone, as the plan would then give its room to another model beside the
# one the renewal loads. A fake Ollama forgets the model as a renewal
# comes, and lists it again as it answers, 3 s later.
start_fake_backend '{}'
lease_fleet "$URL_fake"
start_fleet
check "a supervisor on a fake backend is up" wait_log "ready:"
check "the pin is loaded there" wait_state tinyllama resident
echo LOST >>"$MODE.log"
echo '{"load": "lost", "hold": 3}' >"$MODE"
# loads_since_lost: the empty prompts (loads or renewals) the fake has had
# since it was told to forget the model at the next.
loads_since_lost() {
	awk '/^LOST$/ { n = 0; lost = 1; next }
	lost && /^POST \/api\/generate load tinyllama$/ { n++ } END { print n + 0 }' "$MODE.log"
}
check "a renewal comes to the backend that lost the model" \
	count_reaches 1 "empty prompts" loads_since_lost
echo '{}' >"$MODE"
# The next comes once the renewal held 3 s is answered, a renewal half a
# lease on (or, taken for gone, a load).
check "and the next empty prompt after it" \
	count_reaches 2 "empty prompts" loads_since_lost
check "the model was never taken for gone while the renewal loaded it" \
	sh -c "! grep 'tinyllama is no longer loaded' '$TMP/sup.log'"
check "nor loaded again by the plan" eq "$(grep -c 'loading tinyllama' "$TMP/sup.log")" 1
check "it is resident" wait_state tinyllama resident

# Renewals that fail are said once, until one is answered; a model taken
# for gone meanwhile and loaded again starts anew, and the renewals of
# that load that fail are said again.
# said_times N PATTERN: the supervisor's log has N lines matching PATTERN,
# within 10 s.
said_times() { count_reaches "$1" "lines: $2" grep -c -- "$2" "$TMP/sup.log"; }
echo '{"load": "503"}' >"$MODE"
check "a renewal the backend refuses is said" \
	said_times 1 "cannot renew the lease of tinyllama"
# Restarted, the backend lists nothing, and is busy for the load of the
# pin that follows, which waits to be tried again.
echo '{"load": "503", "ps": "empty"}' >"$MODE"
check "the model is taken for gone" wait_log "tinyllama is no longer loaded"
check "its load is tried again" wait_log "load of tinyllama: .*: retry 1"
echo '{}' >"$MODE"
check "and loaded again" said_times 2 "info: loaded tinyllama$"
echo '{"load": "503"}' >"$MODE"
check "a renewal of the new load refused is said too" \
	said_times 2 "cannot renew the lease of tinyllama"
echo '{}' >"$MODE"
check "the supervisor on the fake stops cleanly" stopped
finish
