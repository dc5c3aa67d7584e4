#!/usr/bin/env bash
# Installs, builds, starts the throwaway cluster, loads the digits sample and
# trains a model on it with SQL (examples/digits.sql).  Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DLTRAIN_EXTRA_PKGS=python3-sklearn scripts/setup.sh
scripts/cluster.sh restart
eval "$(scripts/cluster.sh env)"
psql -X -q -d postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'dltrain_demo'" | grep -q 1 ||
	psql -X -q -d postgres -c "CREATE DATABASE dltrain_demo"
psql -X -q -d dltrain_demo -c "CREATE EXTENSION IF NOT EXISTS dltrain"
psql -X -q -d dltrain_demo -f examples/digits.sql
echo
echo "Try it yourself: scripts/cluster.sh psql -d dltrain_demo   (stop with: scripts/cluster.sh stop)"
