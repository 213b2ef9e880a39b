#!/usr/bin/env bash
# A fleet whose agent list is past what one frame carries: ollamaxctl
# agents says so, and the supervisor answers on; status still fits.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# The configuration in a folder nested some 3700 bytes deep, its agents
# beside it: 600 manifests' paths of about 4 KiB list to more than 2 MiB.
deep="$TMP/$(printf 'd%.0s' $(seq 1 180))"
for _ in $(seq 1 19); do deep="$deep/$(printf 'd%.0s' $(seq 1 180))"; done
mkdir -p "$deep/agents"
printf '[supervisor]\nworkers = 2\nruntime_dir = %s/run\nstate_dir = %s/state\nagents_dir = agents\n[backend]\nurl = http://127.0.0.1:9\n[tier.light]\nmodel = tinyllama\n' \
	"$TMP" "$TMP" >"$deep/ollamax.conf"
long=$(printf 'm%.0s' $(seq 1 200))
for i in $(seq 1 600); do
	printf '[agent]\nname = a%d\ntier = light\ntrigger = demand\nprompt = x\n' "$i" >"$deep/agents/$long-$i.conf"
done
# A reload asked while the supervisor still reads its 600 manifests,
# before its loop watches for it: sent as soon as the supervisor holds
# SIGHUP back (SigBlk), it is carried out once the loop runs, and does
# not end the start halfway.
python3 - "$SUP" "$deep/ollamax.conf" "$TMP/sup.log" >"$TMP/hup.out" <<'PY'
import os, signal, subprocess, sys, time
sup, conf, log = sys.argv[1:]
p = subprocess.Popen([sup, "-c", conf, "start"], stderr=open(log, "w"))
print(p.pid)
held = False
deadline = time.monotonic() + 5
while not held and time.monotonic() < deadline:
    try:
        with open("/proc/%d/status" % p.pid) as f:
            blocked = [l for l in f if l.startswith("SigBlk:")][0].split()[1]
    except (OSError, IndexError):
        break
    held = int(blocked, 16) & (1 << (signal.SIGHUP - 1)) != 0
if held:
    os.kill(p.pid, signal.SIGHUP)
print("held" if held else "never held")
PY
PIDS+=("$(head -n 1 "$TMP/hup.out")")
ctl() { "$CTL" -s "$TMP/run/ctl.sock" "$@"; }
up() {
	for _ in $(seq 1 200); do
		ctl --json status 2>/dev/null | python3 -c 'import json,sys
sys.exit(0 if json.load(sys.stdin)["agents"]["running"] == 600 else 1)' 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
check "the supervisor comes up with 600 agents" up
check "a SIGHUP sent while it started was held back" grep -qx held "$TMP/hup.out"
check "and carried out as a reload once its loop ran" wait_log "reload: 0 started, 0 stopped, 0 changed, 0 problems"
too_big() {
	local out rc=0
	out=$(ctl agents 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && has "$out" "agents: the answer is" &&
		has "$out" "bytes, more than the 2093056 one frame carries"
}
check "ollamaxctl agents with a list past one frame says so, exit 1" too_big
check "and the supervisor answers on" sh -c "'$CTL' -s '$TMP/run/ctl.sock' status >/dev/null"
check "said so in its log" grep -q "ctl: agents: the answer is" "$TMP/sup.log"
finish
