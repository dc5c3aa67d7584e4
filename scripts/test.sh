#!/usr/bin/env bash
# Runs every dltrain test: the C kernel tests, pg_regress (installcheck mode,
# against this checkout's throwaway cluster) and the shell tests in test/sh
# (pg_dump/restore, NOTICE output, thread and signal checks).
# Installs packages and builds first (scripts/setup.sh).  Ends with one line
# "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=/usr/lib/postgresql/15/bin:$PATH

scripts/setup.sh || { echo "tests: 0 passed, 1 failed"; exit 1; }
scripts/cluster.sh start || { echo "tests: 0 passed, 1 failed"; exit 1; }
eval "$(scripts/cluster.sh env)"

passed=0
failed=0
count() {
	# count NAME STATUS
	if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "ok: $1"; else failed=$((failed + 1)); echo "FAILED: $1"; fi
}

echo "== kernel tests"
make -s -C test/kernels check
count "kernel tests" $?

echo "== pg_regress"
make -s PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config installcheck
rc=$?
if [ $rc != 0 ] && [ -f test/regress/out/regression.diffs ]; then
	head -n 200 test/regress/out/regression.diffs
fi
count "pg_regress" $rc

for t in test/sh/*.sh; do
	[ -e "$t" ] || continue
	echo "== $t"
	bash "$t"
	count "$t" $?
done

echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
