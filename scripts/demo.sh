#!/usr/bin/env bash
# Installs, builds, starts the throwaway cluster, loads the digits sample and
# trains a model on it with SQL (examples/digits.sql).  Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DLTRAIN_EXTRA_PKGS=python3-sklearn scripts/setup.sh
scripts/cluster.sh restart
eval "$(scripts/cluster.sh env)"
# a fresh demo database each run
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS dltrain_demo" \
	-c "CREATE DATABASE dltrain_demo"
psql -X -q -d dltrain_demo -c "CREATE EXTENSION dltrain"
psql -X -q -d dltrain_demo -f examples/digits.sql
echo
echo "Try it yourself: scripts/cluster.sh psql -d dltrain_demo   (stop with: scripts/cluster.sh stop)"
