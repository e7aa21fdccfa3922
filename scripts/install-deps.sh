#!/usr/bin/env bash
# Installs what building and testing need, from Debian packages. Safe to run again: when everything
# is present it does nothing.
set -euo pipefail

PACKAGES=(
	build-essential clang-14 llvm-14
	libclang-rt-14-dev libasan8 libubsan1
	postgresql-15 postgresql-server-dev-15 postgresql-15-cron
	libcurl4-openssl-dev nlohmann-json3-dev libgtest-dev
	python3 python3-pytest python3-pytest-xdist python3-psycopg2
	util-linux openssl
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all packages present"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages (${missing[*]}); run this script as root" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package starts a cluster of its own; the tests start their own clusters instead.
if command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q '^15 *main .*online'; then
	pg_ctlcluster 15 main stop || true
fi
echo "install-deps: done"
