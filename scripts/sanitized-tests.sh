#!/usr/bin/env bash
# Memory-safety stage (docs/memory-safety.md): builds the extension with AddressSanitizer and
# UndefinedBehaviorSanitizer (make SANITIZE=1) from a copy of the working tree, then runs the
# pg_regress tests and the integration tests with every PostgreSQL server process started under the
# sanitizer runtime (LD_PRELOAD of libasan; the postgres binary itself is not instrumented). Fails if
# a test fails or if any sanitizer report was written. Ends with "sanitized: N passed, N failed".
#
# The sanitized library never replaces the installed one, which other clusters on the machine load:
# the tests run in a private mount namespace (unshare -m) where the sanitized library and a copy of
# the extension directory are bind-mounted over the installed ones; the server processes started in
# there stay in there. Where unshare is not permitted, the sanitized build is installed for the
# duration of the tests and the normal build reinstalled afterwards (make install), even on failure.
#
# Usage: scripts/sanitized-tests.sh [PYTEST_ARGS...]
#   Without arguments the integration tests selected by $SANITIZED_PYTEST_ARGS run (default: all).
#   SANITIZED_KEEP=1 keeps the work directory (build, logs) for inspection.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

work="$(make_pg_tmpdir)"
tree="$work/tree"    # copy of the sources, built with SANITIZE=1
stage="$work/stage"  # DESTDIR of its make install
logs="$work/sanitizer-logs"
mkdir -p "$tree" "$stage" "$logs"
chmod 777 "$logs"  # written by the postgres OS user's processes

fallback_installed=0
cleanup() {
	if [ "$fallback_installed" = 1 ]; then
		echo "sanitized: reinstalling the normal build"
		make -C "$ROOT" -s install >/dev/null || echo "sanitized: REINSTALLING THE NORMAL BUILD FAILED: run make install" >&2
	fi
	if [ "${SANITIZED_KEEP:-0}" = 1 ]; then echo "sanitized: work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# 1. Build from a copy: the objects of the normal build in the working tree are left alone.
tar -C "$ROOT" --exclude='*.o' --exclude='*.bc' --exclude='*.so' --exclude='*.d' \
	-cf - Makefile iterable_audience.control src sql | tar -C "$tree" -xf -
echo "=== sanitized: building with -fsanitize=address,undefined"
# with_llvm=no: no JIT bitcode, which would not be instrumented anyway. No -Werror: the normal build
# enforces it, and gcc warns differently (maybe-uninitialized...) with the sanitizers' instrumentation.
nice -n 10 make -C "$tree" -s -j"$(nproc)" SANITIZE=1 with_llvm=no
make -C "$tree" -s SANITIZE=1 with_llvm=no install DESTDIR="$stage" >/dev/null

pkglibdir="$("$PG_CONFIG" --pkglibdir)"
sharedir="$("$PG_CONFIG" --sharedir)"
lib="$stage$pkglibdir/iterable_audience.so"
libasan="$(ldd "$lib" | awk '/libasan\.so/ { print $3 }')"
[ -f "$libasan" ] || { echo "sanitized: $lib does not link libasan" >&2; exit 1; }

# A small library preloaded after libasan (sanitizer_preload.c) makes the sanitizers work in
# PostgreSQL, whose postgres binary is not instrumented:
#  * libasan initializes itself on its first intercepted call. Under LD_PRELOAD its constructor runs
#    after those of the libraries PostgreSQL links, and libp11-kit's (via libldap -> gnutls) calls
#    newlocale(), which holds glibc's locale lock when it mallocs: libasan initializes there, looks up
#    swift_demangle with dlsym and calls dlerror(), whose gettext takes that lock again and corrupts
#    it; every PostgreSQL program then hangs in bindtextdomain(). A swift_demangle here (only ever
#    called for Swift names) makes the lookup succeed: dlerror() has nothing to translate.
#  * UBSan's runtime (libubsan, loaded with the extension) reads UBSAN_OPTIONS only then, from
#    /proc/self/environ, which PostgreSQL has overwritten with its process title by that time: it
#    would ignore halt_on_error and print_stacktrace. __ubsan_default_options() here gives it the
#    options captured at startup. Its log_path is ignored too (libubsan's call that sets it binds to
#    libasan's copy of the function), so the library calls libubsan's own copy.
cat >"$work/sanitizer_preload.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

char *swift_demangle(const char *name, size_t len, char *out, size_t *out_len, uint32_t flags)
{
	(void) name; (void) len; (void) out; (void) out_len; (void) flags;
	return NULL;
}

static char ubsan_options[4096];
static char ubsan_log_path[4096];

__attribute__((constructor)) static void capture_ubsan_options(void)
{
	const char *s = getenv("UBSAN_OPTIONS");
	const char *p;
	size_t n;

	if (s == NULL || strlen(s) >= sizeof ubsan_options)
		return;
	strcpy(ubsan_options, s);
	if ((p = strstr(s, "log_path=")) != NULL) {
		p += strlen("log_path=");
		n = strcspn(p, ":");
		memcpy(ubsan_log_path, p, n);
		ubsan_log_path[n] = '\0';
	}
}

const char *__ubsan_default_options(void)
{
	void *ubsan;
	void (*set_report_path)(const char *);

	if (ubsan_log_path[0] != '\0' && (ubsan = dlopen("libubsan.so.1", RTLD_LAZY | RTLD_NOLOAD)) != NULL) {
		set_report_path = (void (*)(const char *)) dlsym(ubsan, "__sanitizer_set_report_path");
		if (set_report_path != NULL)
			set_report_path(ubsan_log_path);
		dlclose(ubsan);
	}
	return ubsan_options;
}
EOF
gcc -shared -fPIC -O2 -Wall -Werror -o "$work/libsanitizer_preload.so" "$work/sanitizer_preload.c" -ldl

# 2. The server processes' environment (IA_PG_ENV: read by scripts/run-regress.sh and
#    test/integration/harness.py). detect_leaks=0: PostgreSQL's memory contexts and exit paths are
#    not leak-clean. abort_on_error=1: a report kills the process with SIGABRT, which the postmaster
#    treats as a crash (a plain exit(1) would pass for a FATAL error).
asan_options="detect_leaks=0:halt_on_error=1:abort_on_error=1:disable_coredump=1:log_path=$logs/asan"
ubsan_options="print_stacktrace=1:halt_on_error=1:abort_on_error=1:log_path=$logs/ubsan"
export IA_PG_ENV="LD_PRELOAD=$libasan:$work/libsanitizer_preload.so ASAN_OPTIONS=$asan_options UBSAN_OPTIONS=$ubsan_options"

# PostgreSQL runs under the runtime (a hang here would hang every server of the tests).
read -ra pg_env <<<"$IA_PG_ENV"
if ! version=$(as_pg_user timeout 30 env "${pg_env[@]}" "$(pg_bindir)/postgres" -V 2>&1); then
	echo "sanitized: postgres -V does not run under the sanitizer runtime: $version" >&2
	exit 1
fi
echo "sanitized: $version runs under $(basename "$libasan")"

# 3. The tests, as a script run either in the private namespace or after the fallback install.
cat >"$work/run-tests.sh" <<'EOF'
#!/usr/bin/env bash
# $1: mode (namespace | installed), then pytest arguments.
set -uo pipefail
mode="$1"; shift
if [ "$mode" = namespace ]; then
	set -e
	mount --bind "$SAN_LIB_SRC" "$SAN_LIB_DST"
	mount --bind "$SAN_EXT_SRC" "$SAN_EXT_DST"
	set +e
fi
status=0
echo "=== sanitized: regress (pg_regress under ASan/UBSan)"
"$SAN_ROOT/scripts/run-regress.sh" || status=1
echo "=== sanitized: integration (pytest $*)"
"$PYTHON" -m pytest -q -p no:cacheprovider "$SAN_ROOT/test/integration" "$@" || status=1
exit $status
EOF
chmod +x "$work/run-tests.sh"
export SAN_ROOT="$ROOT" PYTHON

if [ $# -gt 0 ]; then pytest_args=("$@"); else read -ra pytest_args <<<"${SANITIZED_PYTEST_ARGS:-}"; fi

status=0
log="$work/tests.log"
if [ "$(id -u)" = 0 ] && unshare -m --propagation private true 2>/dev/null; then
	# Over the installed library; without one (a bind mount needs an existing file), over the whole
	# library directory, with a copy of it.
	export SAN_LIB_SRC="$lib" SAN_LIB_DST="$pkglibdir/iterable_audience.so"
	if [ ! -e "$SAN_LIB_DST" ]; then
		cp -a "$pkglibdir" "$work/pkglib"
		cp "$lib" "$work/pkglib/"
		export SAN_LIB_SRC="$work/pkglib" SAN_LIB_DST="$pkglibdir"
	fi
	# The extension directory: the installed one plus this tree's control file and scripts.
	cp -a "$sharedir/extension" "$work/extension"
	cp "$stage$sharedir/extension/"* "$work/extension/"
	export SAN_EXT_SRC="$work/extension" SAN_EXT_DST="$sharedir/extension"
	echo "sanitized: private mount namespace; the installed library is not replaced"
	unshare -m --propagation private -- "$work/run-tests.sh" namespace "${pytest_args[@]}" 2>&1 | tee "$log" \
		|| status=$?
else
	echo "sanitized: WARNING: no private mount namespace (needs root and unshare -m): installing the" \
		"sanitized build for the duration of the tests; other clusters on this machine would load it"
	fallback_installed=1
	make -C "$tree" -s SANITIZE=1 with_llvm=no install >/dev/null
	"$work/run-tests.sh" installed "${pytest_args[@]}" 2>&1 | tee "$log" || status=$?
fi

# 4. Counts (pg_regress's "All N tests passed" / "N of M tests failed", pytest's summary line).
passed=0
failed=0
line=$(grep -E 'tests? (passed|failed)' "$log" | tail -1 || true)
if [[ "$line" =~ All\ ([0-9]+)\ tests\ passed ]]; then
	passed=${BASH_REMATCH[1]}
elif [[ "$line" =~ ([0-9]+)\ of\ ([0-9]+)\ tests\ failed ]]; then
	failed=${BASH_REMATCH[1]}
	passed=$((BASH_REMATCH[2] - failed))
fi
line=$(grep -E '[0-9]+ (passed|failed|errors?)' "$log" | grep -vE 'tests? (passed|failed)' | tail -1 || true)
p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || true)
passed=$((passed + ${p:-0}))
for n in $(grep -oE '[0-9]+ (failed|errors?)' <<<"$line" | grep -oE '[0-9]+' || true); do
	failed=$((failed + n))
done

# 5. Any sanitizer report fails the stage.
reports=("$logs"/*)
if [ -e "${reports[0]}" ]; then
	echo "sanitized: SANITIZER REPORTS (${#reports[@]} file(s)):"
	for f in "${reports[@]}"; do
		echo "--- $f"
		head -60 "$f"
	done
	failed=$((failed + ${#reports[@]}))
	status=1
else
	echo "sanitized: no sanitizer report"
fi
[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo "sanitized: $passed passed, $failed failed"
exit $status
