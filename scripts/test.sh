#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the Debian packages it needs, builds with
# -Werror, installs the extension, then runs the C++ unit tests, the emulator's tests, the pg_regress
# tests and the integration tests. Ends with one line "N passed, N failed".
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

"$ROOT/scripts/install-deps.sh"
make -j"$(nproc)" ERROR_ON_WARNING=1
make install >/dev/null

passed=0
failed=0
failed_stages=()
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# count_results STAGE: adds the counts that the stage's runner printed (in $log) to the totals.
count_results() {
	local stage="$1" p=0 f=0 line
	case "$stage" in
	unit)
		p=$(grep -oE '^\[  PASSED  \] [0-9]+ test' "$log" | grep -oE '[0-9]+' | tail -1 || true)
		f=$(grep -oE '^\[  FAILED  \] [0-9]+ test' "$log" | grep -oE '[0-9]+' | tail -1 || true)
		;;
	regress)
		line=$(grep -E 'tests? (passed|failed)' "$log" | tail -1 || true)
		if [[ "$line" =~ All\ ([0-9]+)\ tests\ passed ]]; then
			p=${BASH_REMATCH[1]}
		elif [[ "$line" =~ ([0-9]+)\ of\ ([0-9]+)\ tests\ failed ]]; then
			f=${BASH_REMATCH[1]}
			p=$((BASH_REMATCH[2] - f))
		fi
		;;
	*)
		line=$(grep -E '[0-9]+ (passed|failed)' "$log" | tail -1 || true)
		p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || true)
		for n in $(grep -oE '[0-9]+ (failed|errors?)' <<<"$line" | grep -oE '[0-9]+' || true); do
			f=$((f + n))
		done
		;;
	esac
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
}

run_stage() {
	local stage="$1"
	shift
	echo "=== $stage: $*"
	local status=0
	"$@" 2>&1 | tee "$log" || status=${PIPESTATUS[0]}
	count_results "$stage"
	if [ "$status" -ne 0 ]; then
		failed_stages+=("$stage")
		# A stage that failed without reporting a failed test still counts as one failure.
		grep -qE 'FAILED|failed|[0-9]+ error' "$log" || failed=$((failed + 1))
	fi
}

run_stage unit make -C test/unit
run_stage emulator "$PYTHON" -m pytest -q -p no:cacheprovider test/emulator
run_stage regress "$ROOT/scripts/run-regress.sh"
# Two workers, one file each at a time (each has its own cluster and emulator: conftest.py).
run_stage integration "$PYTHON" -m pytest -q -p no:cacheprovider -n 2 --dist loadfile test/integration
# Memory safety (docs/memory-safety.md): each fuzzer for a bounded time, then the regress tests and
# the integration tests on an ASan+UBSan build: every test of the engine and the kinds of sync, less
# the slow ones that mostly exercise SQL or wait on clocks (scheduler, lifecycle, continuous syncs,
# backups, upgrades, operability, recipes), which the stage above runs on the normal build.
run_stage fuzz make -C test/fuzz run SECONDS=15
run_stage sanitized "$ROOT/scripts/sanitized-tests.sh" -n 2 --dist loadfile -k 'not scheduler and not lifecycle and not continuous and not backup and not upgrade and not operability and not recipes'

echo
if [ ${#failed_stages[@]} -gt 0 ]; then
	echo "failed stages: ${failed_stages[*]}"
fi
echo "$passed passed, $failed failed"
[ ${#failed_stages[@]} -eq 0 ] && [ "$failed" -eq 0 ]
