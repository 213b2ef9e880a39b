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

finish
