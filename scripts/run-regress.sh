#!/usr/bin/env bash
# Runs the pg_regress tests (test/sql, test/expected) on a temporary instance, as the postgres OS
# user, with the emulator on a free port. The extension must be installed (make install).
# Prints the diffs on failure. Usage: scripts/run-regress.sh [test ...]
source "$(dirname "$0")/lib.sh"

work="$(make_pg_tmpdir)"
cleanup() {
	[ -n "${EMULATOR_PID:-}" ] && kill "$EMULATOR_PID" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

start_emulator "$work"
cp "$ROOT/test/regress.conf" "$work/regress.conf"
echo "regress.emulator_url = '$EMULATOR_URL'" >>"$work/regress.conf"
chmod 644 "$work/regress.conf"

pg_regress="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress"
if [ $# -gt 0 ]; then tests=("$@"); else tests=(--schedule="$ROOT/test/schedule"); fi
# IA_PG_ENV="KEY=VALUE ...": extra environment of pg_regress and the processes it starts (initdb,
# the temporary server, psql); scripts/sanitized-tests.sh passes LD_PRELOAD and ASAN_OPTIONS this
# way. Pairs are separated by whitespace; values cannot contain any.
read -ra pg_env <<<"${IA_PG_ENV:-}"
status=0
as_pg_user env "${pg_env[@]}" "$pg_regress" --inputdir="$ROOT/test" --outputdir="$work" --bindir="$(pg_bindir)" \
	--temp-instance="$work/instance" --temp-config="$work/regress.conf" --port="$(free_port)" \
	--load-extension=iterable_audience "${tests[@]}" || status=$?
if [ $status -ne 0 ] && [ -f "$work/regression.diffs" ]; then
	cat "$work/regression.diffs"
fi
# For writing expected files: REGRESS_RESULTS=DIR keeps a copy of the actual outputs.
if [ -n "${REGRESS_RESULTS:-}" ]; then
	mkdir -p "$REGRESS_RESULTS" && cp "$work"/results/*.out "$REGRESS_RESULTS"/
fi
exit $status
