#!/usr/bin/env bash
# Under --daemon the supervisor and its children log to syslog(3): facility
# daemon, each under its own name and pid, at the priority of the line's
# level, and nothing reaches the terminal. The daemon is given a /dev/log
# of the test's own: it runs in a private mount namespace whose /dev is a
# tmpfs holding the host's device nodes and, at /dev/log, a datagram socket
# the test reads.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

check "a private mount namespace can be had (${MOUNT_NS[*]})" "${MOUNT_NS[@]}" true

# The collector writes each datagram on a line of its own, as received.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[1] + ".ready", "w").close()
with open(sys.argv[2], "a") as out:
    while True:
        line = s.recv(65536).decode("utf-8", "replace").replace("\n", "\\n")
        out.write(line + "\n")
        out.flush()
' "$TMP/log.sock" "$TMP/syslog" &
PIDS+=("$!")
collector_ready() {
	for _ in $(seq 1 200); do
		[ -e "$TMP/log.sock.ready" ] && return 0
		sleep 0.05
	done
	return 1
}
check "the collector listens" collector_ready

start_emu emu --speed 50 --parallel 2 --vram-mb 4096
fleet_conf "$URL_emu" <<CONF
[tier.light]
model = tinyllama
CONF
for name in asker other; do
	printf '[agent]\nname = %s\ntier = light\ntrigger = demand\nprompt = Say {{input}}.\n' \
		"$name" >"$TMP/agents/$name.conf"
done

# The mounts go with the namespace once its last process, the daemon's
# last child, has ended.
cat >"$TMP/in-namespace.sh" <<'SH'
set -eu
tmp=$1
shift
mkdir -p "$tmp/host-dev"
mount --rbind /dev "$tmp/host-dev"
mount -t tmpfs -o mode=755 ollamax-test-dev /dev
for node in null zero full random urandom tty; do
	touch "/dev/$node"
	mount --bind "$tmp/host-dev/$node" "/dev/$node"
done
for dir in pts shm; do
	mkdir "/dev/$dir"
	mount --rbind "$tmp/host-dev/$dir" "/dev/$dir"
done
ln -s /proc/self/fd /dev/fd
if [ -z "${NO_DEV_LOG:-}" ]; then
	touch /dev/log
	mount --bind "$tmp/log.sock" /dev/log
fi
exec "$@"
SH
daemon_starts() {
	"${MOUNT_NS[@]}" sh "$TMP/in-namespace.sh" "$TMP" \
		"$SUP" -c "$TMP/ollamax.conf" start --daemon >"$TMP/daemon.out" 2>&1
}
check "start --daemon in the namespace returns 0 once it is ready" daemon_starts
sup_pid=$(cat "$TMP/run/supervisor.pid" 2>/dev/null || echo 0)
[ "$sup_pid" -gt 1 ] && PIDS+=("$sup_pid")
check "and writes nothing on the terminal" sh -c "[ ! -s '$TMP/daemon.out' ] || { cat '$TMP/daemon.out'; false; }"

# logged PATTERN: a datagram that matches the extended regex arrives.
logged() {
	wait_log -E "$1" "$TMP/syslog" && return 0
	echo "      no datagram matches: $1"
	echo "      got:"
	sed 's/^/        /' "$TMP/syslog" 2>/dev/null | tail -n 20
	return 1
}
# The datagram's head, by glibc: <facility * 8 + severity>, the time, then
# the name and pid; daemon is facility 3, info severity 6, warning 4.
info='<30>[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} '
warning='<28>[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} '
check "the supervisor says it is ready, at info, under its name and pid" \
	logged "^${info}ollamax-supervisor\[$sup_pid\]: ready: "

broker=$(proc_pid broker 0)
check "a run is answered" sh -c "timeout 30 '$CTL' -c '$TMP/ollamax.conf' run -w asker hello >/dev/null"
check "the broker logs the load under its own name and pid" \
	logged "^${info}ollamax-broker0\[$broker\]: loaded tinyllama$"

# A worker killed: the supervisor warns, and the new worker logs as it
# starts.
worker=$(proc_pid worker 1)
kill -KILL "$worker"
check "a worker killed is a warning of the supervisor's" \
	logged "^${warning}ollamax-supervisor\[$sup_pid\]: worker 1 died of signal 9$"
back_up() {
	status_until "[p for p in s['processes'] if p['role'] == 'worker' and p['index'] == 1 and p['pid'] not in (0, $worker) and p['state'] == 'running']"
}
check "the worker is started again" back_up
check "and logs under its new pid" logged "^${info}ollamax-worker1\[$(proc_pid worker 1)\]: running 1 agent$"
check "the run of its agent is answered" \
	sh -c "timeout 30 '$CTL' -c '$TMP/ollamax.conf' run -w other again >/dev/null"
check "every line came from the supervisor, its broker or a worker" \
	sh -c "! grep -vE '^<(2[6-9]|3[01])>[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} ollamax-(supervisor|broker0|worker[01])\[[0-9]+\]: ' '$TMP/syslog'"

check "stop is sent" "$CTL" -c "$TMP/ollamax.conf" stop
check "the daemon is gone" gone_within 10 "$sup_pid"
# Once it is gone, nothing more of its can come; a datagram of the test's
# own, sent after, is written after all of its.
sent_last() {
	python3 -c '
import socket, sys
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"<31>end of the test", sys.argv[1])
' "$TMP/log.sock" && wait_log "^<31>end of the test$" "$TMP/syslog"
}
check "a datagram sent after it is collected" sent_last
last_of_supervisor() {
	local last
	last=$(grep -E "^<[0-9]+>.{15} ollamax-supervisor\[$sup_pid\]: " "$TMP/syslog" | tail -n 1)
	[[ "$last" =~ ^${info}ollamax-supervisor\[$sup_pid\]:\ stopped$ ]] && return 0
	echo "      its last line: $last"
	return 1
}
check "the supervisor's last line says it stopped" last_of_supervisor

# Where nothing takes syslog's messages, the daemon says so before it
# detaches: past that point its log would be lost unsaid.
daemon_without_syslog() {
	NO_DEV_LOG=1 "${MOUNT_NS[@]}" sh "$TMP/in-namespace.sh" "$TMP" \
		"$SUP" -c "$TMP/ollamax.conf" start --daemon >"$TMP/unheard.out" 2>&1
}
check "start --daemon without a /dev/log returns 0 once it is ready" daemon_without_syslog
check "and says first that its log is lost, and why" grep -qF \
	"ollamax-supervisor: warning: nothing takes syslog's messages on /dev/log (No such file or directory): the daemon's log is lost" "$TMP/unheard.out"
sup_pid=$(cat "$TMP/run/supervisor.pid" 2>/dev/null || echo 0)
[ "$sup_pid" -gt 1 ] && PIDS+=("$sup_pid")
check "that daemon is stopped" "$CTL" -c "$TMP/ollamax.conf" stop
check "and is gone" gone_within 10 "$sup_pid"
finish
