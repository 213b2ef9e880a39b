#!/usr/bin/env bash
# emu-js-client.sh: drives ollamax-emu with the official Ollama JavaScript
# client (npm package `ollama`, unchanged) and checks what comes back.
#
# Usage: tests/integration/emu-js-client.sh
# Environment:
#   OLLAMAX_BUILD  build directory holding ollamax-emu (default: <repo>/build;
#                  a relative path is taken from the repository root)
#
# Needs node (20 or later) and npm; the client is installed once into
# tests/integration/js/node_modules. Exits with the node test runner's status.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${OLLAMAX_BUILD:-$REPO/build}
case $BUILD in /*) ;; *) BUILD=$REPO/$BUILD ;; esac
JS=$HERE/js
EMU=$BUILD/ollamax-emu
CATALOG=$REPO/conf/emu-models.ini

die() {
	echo "emu-js-client: $*" >&2
	exit 1
}

command -v node >/dev/null 2>&1 || die "node is not installed"
command -v npm >/dev/null 2>&1 || die "npm is not installed"
[[ -x $EMU ]] || die "$EMU not found: build first (or set OLLAMAX_BUILD)"
[[ -r $CATALOG ]] || die "$CATALOG not found"

# The client, once, exactly as package-lock.json pins it, integrity checked.
if [[ ! -f $JS/node_modules/ollama/package.json ]]; then
	echo "emu-js-client: installing the ollama client into $JS/node_modules"
	(cd "$JS" && npm ci --no-audit --no-fund --silent) ||
		die "npm ci failed"
fi

TMP=$(mktemp -d)
EMU_PID=
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	if [[ -n $EMU_PID ]] && kill -0 "$EMU_PID" 2>/dev/null; then
		kill "$EMU_PID" 2>/dev/null || true
		wait "$EMU_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

# shellcheck source=../../scripts/emu.sh
. "$REPO/scripts/emu.sh"
emu_start "$EMU" "$TMP" emu --speed 50 --parallel 2 --vram-mb 4096 ||
	die "ollamax-emu did not come up"
echo "emu-js-client: ollamax-emu (pid $EMU_PID) on $EMU_URL"

status=0
(cd "$JS" && OLLAMA_HOST="$EMU_URL" node --test --test-force-exit client.test.mjs) ||
	status=$?
if ((status != 0)); then
	echo "emu-js-client: node exited with $status; emulator log follows" >&2
	cat "$TMP/emu.log" >&2 || true
fi
exit "$status"
