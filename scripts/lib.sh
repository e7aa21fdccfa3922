# Shared by the scripts: PostgreSQL paths, running as the postgres OS user, free ports, the emulator.
# PostgreSQL refuses to run as root, so clusters run as $PG_OS_USER (default: postgres).

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_CONFIG="${PG_CONFIG:-pg_config}"
PG_OS_USER="${PG_OS_USER:-postgres}"
PYTHON="${PYTHON:-/usr/bin/python3}"

pg_bindir() { "$PG_CONFIG" --bindir; }

# Runs a command as the postgres OS user when we are root, as ourselves otherwise.
as_pg_user() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$PG_OS_USER" -- "$@"
	else
		"$@"
	fi
}

# A directory the postgres OS user can write.
make_pg_tmpdir() {
	local dir
	dir="$(mktemp -d "${TMPDIR:-/tmp}/iterable_audience.XXXXXX")"
	chmod 755 "$dir"
	[ "$(id -u)" = 0 ] && chown "$PG_OS_USER" "$dir"
	echo "$dir"
}

free_port() {
	"$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_emulator DIR: starts the Iterable emulator on a free loopback port; sets EMULATOR_PID and
# EMULATOR_URL. Its log is DIR/emulator.log.
start_emulator() {
	local dir="$1"
	"$PYTHON" "$ROOT/emulator/iterable_emulator.py" --host 127.0.0.1 --port 0 \
		--port-file "$dir/emulator.port" >"$dir/emulator.log" 2>&1 &
	EMULATOR_PID=$!
	for _ in $(seq 1 100); do
		[ -s "$dir/emulator.port" ] && break
		sleep 0.1
	done
	[ -s "$dir/emulator.port" ] || { cat "$dir/emulator.log" >&2; echo "the emulator did not start" >&2; return 1; }
	EMULATOR_URL="http://127.0.0.1:$(cat "$dir/emulator.port")"
}
