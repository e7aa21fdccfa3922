#!/usr/bin/env bash
# Runs the libFuzzer targets (called by the Makefile: make -C test/fuzz run SECONDS=N).
#   run.sh --seconds N --build DIR [--artifacts DIR] TARGET...
# For each target: replays every file of regressions/TARGET/ (dotfiles excepted) one by one, then
# fuzzes for N seconds (N = 0: only executes the corpus) with corpus/TARGET/ and regressions/TARGET/
# as read-only seeds and dict/TARGET.dict (when present) as dictionary; the new inputs it finds and
# any crash go to the artifacts directory, never into the repository. Prints one summary line per
# target, then "fuzz: N passed, N failed" (targets), and exits non-zero if any target crashed (or
# leaked, timed out, ran out of memory, failed a check, or a sanitizer reported anything).
set -uo pipefail
cd "$(dirname "$0")"

seconds=30 build=build artifacts=""
while [ $# -gt 0 ]; do
	case "$1" in
	--seconds) seconds="$2"; shift 2 ;;
	--build) build="$2"; shift 2 ;;
	--artifacts) artifacts="$2"; shift 2 ;;
	*) break ;;
	esac
done
keep=1
if [ -z "$artifacts" ]; then
	artifacts="$(mktemp -d "${TMPDIR:-/tmp}/iterable_audience-fuzz.XXXXXX")"
	keep=0
fi
mkdir -p "$artifacts"

# Bounded resources: low priority, one process per target, inputs of at most 4 KiB.
FUZZ_OPTS=(-timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1)
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=()
for t in "$@"; do
	bin="$build/$t"
	log="$artifacts/$t.log"
	: >"$log"
	crashes=0
	# 1. Regressions: every kept crash input, replayed on its own.
	regressions=()
	if [ -d "regressions/$t" ]; then
		while IFS= read -r -d '' f; do regressions+=("$f"); done \
			< <(find "regressions/$t" -type f ! -name '.*' -print0 | sort -z)
	fi
	if [ ${#regressions[@]} -gt 0 ]; then
		if ! nice -n 10 "$bin" "${FUZZ_OPTS[@]}" "${regressions[@]}" >>"$log" 2>&1; then
			echo "$t: a regression input crashes again (log: $log)"
			crashes=$((crashes + 1))
		fi
	fi
	# 2. Fuzzing (or, with 0 seconds, one pass over the corpus).
	mkdir -p "$artifacts/corpus/$t"
	seeds=("$artifacts/corpus/$t" "corpus/$t")
	[ -d "regressions/$t" ] && seeds+=("regressions/$t")
	if [ "$seconds" -gt 0 ]; then run=(-max_total_time="$seconds"); else run=(-runs=0); fi
	start=$(date +%s)
	dict=()
	[ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
	if ! nice -n 10 "$bin" "${FUZZ_OPTS[@]}" "${dict[@]}" "${run[@]}" -artifact_prefix="$artifacts/$t-" "${seeds[@]}" \
		>>"$log" 2>&1; then
		crashes=$((crashes + 1))
	fi
	elapsed=$(($(date +%s) - start))
	execs=$(grep -oE '^stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
	seed_count=$(find "corpus/$t" -type f | wc -l)
	new_count=$(find "$artifacts/corpus/$t" -type f | wc -l)
	cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
	echo "$t: ${execs:-0} executions in ${elapsed} s, ${#regressions[@]} regression inputs replayed," \
		"${seed_count} seeds + ${new_count} new inputs, ${cov:-cov: ?}, $crashes crash(es)"
	if [ "$crashes" -gt 0 ]; then
		failed+=("$t")
		# The sanitizer or check report, and where the input was written.
		grep -E -A40 '^==[0-9]+==ERROR|FUZZ_CHECK failed|runtime error:|^SUMMARY:|deadly signal|uncaught exception|Test unit written to|ERROR: libFuzzer' "$log" | head -80
		echo "  full log: $log"
		echo "  keep the input as a regression case: cp $artifacts/$t-<crash-file> test/fuzz/regressions/$t/"
	fi
done

# A target counts as passed when it did not crash (the line scripts/test.sh counts).
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: crashes in ${failed[*]} (artifacts kept in $artifacts)"
	echo "fuzz: $(($# - ${#failed[@]})) passed, ${#failed[@]} failed"
	exit 1
fi
[ "$keep" = 0 ] && rm -rf "$artifacts"
echo "fuzz: $# passed, 0 failed"
exit 0
