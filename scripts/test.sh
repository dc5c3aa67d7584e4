#!/usr/bin/env bash
# Runs every dltrain test: the C kernel tests (plain and under ASan/UBSan),
# the model validator's fuzz harness (ASan/UBSan), pg_regress and the
# isolation specs (installcheck mode, against this checkout's throwaway
# cluster; each test counts) and the shell tests in test/sh
# (pg_dump/restore, NOTICE output, thread and signal checks, the README's
# examples; python3-sklearn carries the digits data they run on).
# Installs packages and builds first (scripts/setup.sh).  Ends with one line
# "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH=$("$PG_CONFIG" --bindir):$PATH

DLTRAIN_EXTRA_PKGS="python3-torch python3-numpy python3-psycopg2 python3-matplotlib python3-sklearn ${DLTRAIN_EXTRA_PKGS:-}" scripts/setup.sh || { echo "tests: 0 passed, 1 failed"; exit 1; }
scripts/cluster.sh restart || { echo "tests: 0 passed, 1 failed"; exit 1; }
eval "$(scripts/cluster.sh env)"

passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
count() {
	# count NAME STATUS [PASSED FAILED]: adds a suite's own counts when it has them
	local p=${3:-} f=${4:-}
	if [ -z "$p" ]; then
		if [ "$2" = 0 ]; then p=1 f=0; else p=0 f=1; fi
	fi
	[ "$2" != 0 ] && [ "$f" = 0 ] && f=1
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$2" = 0 ]; then echo "ok: $1"; else echo "FAILED: $1"; fi
}

# counted NAME PREFIX COMMAND...: runs a suite that ends with "PREFIX: N passed, N failed"
counted() {
	local name=$1 prefix=$2 line rc
	shift 2
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E "^$prefix: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1)
	count "$name" $rc "$(echo "$line" | sed -E "s/^$prefix: ([0-9]+) passed.*/\1/")" \
		"$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')"
}

echo "== kernel tests"
counted "kernel tests" kernels make -s -C test/kernels check

echo "== kernel tests under ASan/UBSan"
make -s -C test/kernels check SANITIZE=1 2>&1 | tee "$log"
count "kernel tests (ASan/UBSan)" ${PIPESTATUS[0]}

echo "== model validator fuzz (ASan/UBSan)"
counted "model validator fuzz" fuzz make -s -C test/fuzz check

echo "== pg_regress and isolation specs"
make -s PG_CONFIG="$PG_CONFIG" installcheck 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ $rc != 0 ]; then
	for d in test/regress/out/regression.diffs test/isolation/out/regression.diffs; do
		[ -f "$d" ] && head -n 200 "$d"
	done
fi
count "pg_regress and isolation specs" $rc "$(grep -cE '^(ok|test) .* ok ' "$log")" "$(grep -cE '^(not ok|test) .* FAILED' "$log")"

for t in test/sh/*.sh; do
	[ -e "$t" ] || continue
	echo "== $t"
	bash "$t"
	count "$t" $?
done

echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
