#!/usr/bin/env bash
# The scripts a user runs first: scripts/setup and scripts/demo, their
# arguments and what they do with them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# A dpkg-query that finds nothing installed, and an apt-get and a sudo
# that only note that they were called.
mkdir -p "$TMP/bin"
printf '#!/bin/sh\nexit 1\n' >"$TMP/bin/dpkg-query"
for c in apt-get sudo; do
	printf '#!/bin/sh\necho %s "$@" >>"%s/installs"\n' "$c" "$TMP" >"$TMP/bin/$c"
done
chmod +x "$TMP/bin/"*

setup_refuses() {
	local out rc=0
	out=$(PATH="$TMP/bin:$PATH" "$ROOT/scripts/setup" --sanitiser 2>&1) || rc=$?
	eq "$rc" 2 && has "$out" 'unknown option "--sanitiser"' &&
		eq "$(cat "$TMP/installs" 2>/dev/null)" ""
}
check "setup refuses a mistyped option before it installs anything" setup_refuses

# A duration --for cannot read is refused before anything is built or run,
# and one it reads ends the demo. Bounded: one let through would run until
# interrupted.
demo_refuses() {
	local out rc=0
	out=$(timeout -s INT 60 "$ROOT/scripts/demo" --for "$@" 2>&1) || rc=$?
	eq "$rc" 2 && has "$out" "usage: scripts/demo [--for DURATION]"
}
check "demo refuses --for without a duration" demo_refuses
check "demo refuses --for 1m30x" demo_refuses 1m30x
check "demo refuses --for 5ms" demo_refuses 5ms
check "demo refuses --for 0s, which would be no end" demo_refuses 0s
# The demo runs what scripts/setup built, in $OLLAMAX_BUILD: here a build
# dir whose make does nothing and whose programs note that they ran.
mkdir -p "$TMP/b"
printf 'all:\n' >"$TMP/b/Makefile"
for p in ollamax-emu ollamax-supervisor ollamaxctl; do
	printf '#!/bin/sh\necho %s >>"%s/ran"\nexec "%s/%s" "$@"\n' "$p" "$TMP" "$BUILD" "$p" >"$TMP/b/$p"
	chmod +x "$TMP/b/$p"
done
demo_stops() {
	local out rc=0
	out=$(OLLAMAX_BUILD="$TMP/b" timeout -s INT 120 "$ROOT/scripts/demo" --for 0m3s 2>&1) || rc=$?
	eq "$rc" 0 && has "$out" "-- up" || { echo "$out" | tail -5; return 1; }
	case "$out" in *"integer expression"*) echo "$out" | tail -5; return 1 ;; esac
}
check "demo --for 0m3s stops by itself" demo_stops
# Ollama on 11434, if it answers, leaves the emulator out.
demo_ran_setups_build() {
	eq "$(sort -u "$TMP/ran" | grep -v ollamax-emu | tr '\n' ' ')" "ollamax-supervisor ollamaxctl "
}
check "demo runs the programs of \$OLLAMAX_BUILD" demo_ran_setups_build

finish
