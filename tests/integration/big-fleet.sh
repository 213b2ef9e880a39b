#!/usr/bin/env bash
# A fleet whose agent list is past what one frame carries: ollamaxctl
# agents says so, and the supervisor answers on; status still fits.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# The configuration in a folder nested some 3700 bytes deep, its agents
# beside it: 280 manifests' paths of about 4 KiB list to more than 1 MiB.
deep="$TMP/$(printf 'd%.0s' $(seq 1 180))"
for _ in $(seq 1 19); do deep="$deep/$(printf 'd%.0s' $(seq 1 180))"; done
mkdir -p "$deep/agents"
printf '[supervisor]\nworkers = 2\nruntime_dir = %s/run\nstate_dir = %s/state\nagents_dir = agents\n[backend]\nurl = http://127.0.0.1:9\n[tier.light]\nmodel = tinyllama\n' \
	"$TMP" "$TMP" >"$deep/ollamax.conf"
long=$(printf 'm%.0s' $(seq 1 200))
for i in $(seq 1 280); do
	printf '[agent]\nname = a%d\ntier = light\ntrigger = demand\nprompt = x\n' "$i" >"$deep/agents/$long-$i.conf"
done
"$SUP" -c "$deep/ollamax.conf" start 2>"$TMP/sup.log" &
PIDS+=("$!")
ctl() { "$CTL" -s "$TMP/run/ctl.sock" "$@"; }
up() {
	for _ in $(seq 1 200); do
		ctl --json status 2>/dev/null | python3 -c 'import json,sys
sys.exit(0 if json.load(sys.stdin)["agents"]["running"] == 280 else 1)' 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
check "the supervisor comes up with 280 agents" up
too_big() {
	local out rc=0
	out=$(ctl agents 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && has "$out" "agents: the answer is" &&
		has "$out" "bytes, more than the 1044480 one frame carries"
}
check "ollamaxctl agents with a list past one frame says so, exit 1" too_big
check "and the supervisor answers on" sh -c "'$CTL' -s '$TMP/run/ctl.sock' status >/dev/null"
check "said so in its log" grep -q "ctl: agents: the answer is" "$TMP/sup.log"
finish
