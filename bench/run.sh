#!/usr/bin/env bash
# dltrain benchmark: dltrain against PyTorch (and scikit-learn) on the CPU.
#
#   bash bench/run.sh            full run (3 repeats, 5 epochs; about 10 minutes on 2 cores)
#   bash bench/run.sh --quick    development run (fewer rows, 2 epochs, 1 repeat; under a minute)
#   bash bench/run.sh --help     every option of bench/bench.py
#
# It installs its Debian packages if they are missing (python3-torch,
# python3-psycopg2, python3-numpy, python3-sklearn), starts the throwaway
# cluster (scripts/cluster.sh), (re)creates the extension in the database
# dltrain_bench, creates the deterministic tables if they are missing
# (bench/datagen.py), compiles bench/sgemm_rate.c, then runs bench/bench.py
# with the arguments given.  The table goes to stdout and, with the raw
# figures as JSON, to bench/results/.  The extension must be built and
# installed (make && make install) first.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
DB=${DLTRAIN_BENCH_DB:-dltrain_bench}
# Debian's python3 (the apt packages live there), not whatever python3 is first in PATH
PY=/usr/bin/python3

for a in "$@"; do
	if [ "$a" = "--help" ] || [ "$a" = "-h" ]; then
		exec "$PY" "$BENCH/bench.py" --help
	fi
done

need=()
"$PY" -c 'import torch' 2>/dev/null || need+=(python3-torch)
"$PY" -c 'import psycopg2' 2>/dev/null || need+=(python3-psycopg2)
"$PY" -c 'import numpy' 2>/dev/null || need+=(python3-numpy)
"$PY" -c 'import sklearn' 2>/dev/null || need+=(python3-sklearn)
command -v cc >/dev/null || need+=(gcc libc6-dev)
[ -e /usr/lib/x86_64-linux-gnu/libopenblas.so.0 ] || ldconfig -p | grep -q 'libopenblas.so.0 ' || need+=(libopenblas0-pthread)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]} (apt)"
	SUDO=
	[ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null ||
		{ $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
fi

"$ROOT/scripts/cluster.sh" start >/dev/null
eval "$("$ROOT/scripts/cluster.sh" env)"
export PGDATABASE=$DB

if ! psql -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
	psql -d postgres -qc "CREATE DATABASE $DB"
fi
# the tables hold no model, so recreating the extension is free and picks up
# the SQL of the installed version
psql -qX -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
	-c "DROP EXTENSION IF EXISTS dltrain CASCADE" -c "CREATE EXTENSION dltrain"

"$PY" "$BENCH/datagen.py" --dbname "$DB"

if [ ! -x "$BENCH/sgemm_rate" ] || [ "$BENCH/sgemm_rate.c" -nt "$BENCH/sgemm_rate" ]; then
	cc -O2 -Wall -o "$BENCH/sgemm_rate" "$BENCH/sgemm_rate.c" -ldl
fi

# --select: the model-selection benchmark (bench/select.py) instead
if [ "${1:-}" = "--select" ]; then
	shift
	exec "$PY" "$BENCH/select.py" "$@"
fi
exec "$PY" "$BENCH/bench.py" "$@"
