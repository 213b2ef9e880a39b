# Sourced by the scripts and the integration tests: starting ollamax-emu.
# shellcheck shell=bash

# emu_start EMU DIR NAME [FLAGS...]: starts the emulator binary EMU with the
# shipped catalog on a free port of 127.0.0.1, its log in DIR/NAME.log, and
# waits (10 s at most) for the port file it writes once it listens. Sets
# EMU_URL and EMU_PID; on failure prints the log, kills the emulator if it
# runs still and returns 1: its caller knows of no emulator to stop, and
# one that waits for all its children would wait for it.
emu_start() {
	local emu=$1 dir=$2 name=$3 root runs=yes
	shift 3
	root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	EMU_URL=
	rm -f "$dir/$name.port"
	"$emu" --catalog "$root/conf/emu-models.ini" --listen 127.0.0.1:0 \
		--port-file "$dir/$name.port" "$@" >/dev/null 2>"$dir/$name.log" &
	EMU_PID=$!
	for _ in $(seq 1 200); do
		if [ -s "$dir/$name.port" ]; then
			EMU_URL="http://127.0.0.1:$(cat "$dir/$name.port")"
			return 0
		fi
		kill -0 "$EMU_PID" 2>/dev/null || { runs=no; break; }
		sleep 0.05
	done
	echo "ollamax-emu $name did not come up:" >&2
	cat "$dir/$name.log" >&2
	[ "$runs" = no ] || kill -KILL "$EMU_PID" 2>/dev/null || true
	wait "$EMU_PID" 2>/dev/null || true
	return 1
}
