#!/usr/bin/env bash
# scripts/bench, the harness itself: bad arguments, a --json FILE that
# cannot be written and a missing gnuplot are refused before any part
# runs, each saying what is wrong; --json FILE names a file where the bench is called from.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BENCH="$ROOT/scripts/bench"

# refused WANT ARG...: scripts/bench ARG... exits 2 at once, saying WANT,
# before any part has started. Bounded: one let through would run them all.
refused() {
	local want=$1 out rc=0
	shift
	out=$(timeout -k 5 60 "$BENCH" "$@" 2>&1) || rc=$?
	if [ "$rc" -ne 2 ]; then
		echo "      exit $rc: $out"
		return 1
	fi
	case "$out" in *"ollamax benchmark on"*)
		echo "      refused only once started: $out"
		return 1
		;;
	esac
	has "$out" "$want"
}
for opt in --json --speed --seed; do
	check "$opt without its value is refused, named" \
		refused "scripts/bench: $opt needs a value" replay "$opt"
done
check "an argument it does not know is refused, named" \
	refused "scripts/bench: '--bogus' is neither an option nor a part" --bogus
for speed in 20abc 0x10 nan 1e1; do
	check "--speed $speed is refused, not read as the number it starts with" \
		refused "scripts/bench: --speed: '$speed' is not a decimal number from 0.015 to 120" \
		--speed "$speed" replay
done
check "a speed out of range is refused, the range given" \
	refused "scripts/bench: --speed: '200' is not a decimal number from 0.015 to 120" --speed 200 replay
check "a seed given twice is refused" \
	refused "scripts/bench: --seed: '7,7' names a seed twice" --seed 7,7 replay
check "--json into a directory that is not there is refused before the parts run" \
	refused "scripts/bench: --json: cannot write '$TMP/none/bench.json': No such file or directory" \
	--json "$TMP/none/bench.json" replay
check "--json naming a directory is refused before the parts run" \
	refused "scripts/bench: --json: cannot write '$TMP': Is a directory" --json "$TMP" replay
check "--json with an empty name is refused" \
	refused "scripts/bench: --json needs a value" --json "" replay
# The file checked writable before the run is not left behind.
refused "" --json "$TMP/left.json" --seed 7,7 replay >/dev/null || true
check "the check of a --json file leaves no file of its own" test ! -e "$TMP/left.json"
# Every program on the PATH but gnuplot.
mkdir "$TMP/bin"
IFS=: read -ra dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
	for f in "$dir"/*; do
		b=${f##*/}
		[ "$b" = gnuplot ] || [ -e "$TMP/bin/$b" ] || ln -s "$f" "$TMP/bin/$b"
	done
done
check "the policy part without gnuplot is refused before it runs" \
	env PATH="$TMP/bin" bash -c "$(declare -f refused has); BENCH='$BENCH'; refused \
		'scripts/bench: policy plots with gnuplot, which is not on the PATH' --quick policy"
mkdir "$TMP/called-from"
name=bench-$$.json
(cd "$TMP/called-from" && timeout -k 5 60 "$BENCH" --quick --seed 7 replay --json "$name") \
	>"$TMP/relative.log" 2>&1 || cat "$TMP/relative.log"
written_there() {
	python3 -c 'import json,sys; assert "replay" in json.load(open(sys.argv[1]))' \
		"$TMP/called-from/$name" && test ! -e "$ROOT/$name"
}
check "--json FILE, a relative name, is written where the bench was called from" written_there
finish
