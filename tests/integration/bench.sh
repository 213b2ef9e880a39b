#!/usr/bin/env bash
# scripts/bench, the harness itself: bad arguments are refused before any
# part runs, each saying what is wrong.
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
finish
