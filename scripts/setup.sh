#!/usr/bin/env bash
# Installs what dltrain needs from Debian's packages (root), then builds and
# installs the extension.  Idempotent: apt runs only for missing packages.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PKGS="postgresql-15 postgresql-server-dev-15 libopenblas0-pthread libopenblas-dev make gcc libc6-dev ${DLTRAIN_EXTRA_PKGS:-}"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# PG_CONFIG may name another (relocated) PostgreSQL 15 installation
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH=$("$PG_CONFIG" --bindir):$PATH
# one make: the build announces OpenBLAS and nvcc once
make -s PG_CONFIG="$PG_CONFIG" all install
