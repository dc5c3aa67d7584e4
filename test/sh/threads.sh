#!/usr/bin/env bash
# dltrain.threads under contention:
#  - a model trained with dltrain.threads = 2 is the same bytes whether its
#    session trains alone or next to another two-thread training (the ranges
#    of a step are claimed by whichever thread is free; the cut, and so the
#    result, depends on dltrain.threads only);
#  - two concurrent two-thread trainings both finish (no thread waits for a
#    helper that cannot run);
#  - the passes over the cache before training (content hashes, exact
#    statistics, in-place standardization) give the same bytes on two threads
#    as on one: a model whose products are too small to be cut, and a model
#    with no epoch, are identical at dltrain.threads 1 and 2.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
db=dltrain_threads_test
out=$(mktemp -d /tmp/dltrain-threads.XXXXXX)
trap 'rm -rf "$out"' EXIT
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
# 64 features, hidden 256: products and the optimizer are cut in two
psql -X -q -v ON_ERROR_STOP=1 -d $db -c "CREATE EXTENSION dltrain" -c "
CREATE TABLE pts AS
SELECT array_agg(((i * 7919 + d * 104729) % 1000) / 500.0 - 1.0 ORDER BY d)::real[] AS x, i % 10 AS y
FROM generate_series(1, 20000) i, generate_series(1, 64) d GROUP BY i;"

train() {
	psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "SET dltrain.threads = $1" \
		-c "SELECT md5(dltrain.train_mlp(x, y, '{\"hidden\": [256, 128], \"epochs\": 3, \"seed\": 5}')::text) FROM pts"
}

model() {
	psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "SET dltrain.threads = $1" \
		-c "SELECT md5(dltrain.train_mlp(x, y, '$2')::text) FROM pts"
}
logistic='{"hidden": [], "epochs": 2, "seed": 3, "validation_fraction": 0.1}'
no_epoch='{"hidden": [256, 128], "epochs": 0, "seed": 3}'
model 1 "$logistic" > "$out/logistic1"; model 2 "$logistic" > "$out/logistic2"
model 1 "$no_epoch" > "$out/none1"; model 2 "$no_epoch" > "$out/none2"

train 2 > "$out/alone"
train 1 > "$out/one_thread"
train 2 > "$out/a" & train 2 > "$out/b" & train 2 > "$out/c"; wait
psql -X -q -d postgres -c "DROP DATABASE $db"

fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "not ok: $1"; fail=1; fi; }
check "three concurrent two-thread trainings finish" '[ -s $out/a ] && [ -s $out/b ] && [ -s $out/c ]'
check "each is the model trained alone with two threads" 'cmp -s $out/alone $out/a && cmp -s $out/alone $out/b && cmp -s $out/alone $out/c'
check "one thread trains too" '[ -s $out/one_thread ]'
check "preparation on two threads: a logistic model is the same bytes" '[ -s $out/logistic1 ] && cmp -s $out/logistic1 $out/logistic2'
check "preparation on two threads: a model with no epoch is the same bytes" '[ -s $out/none1 ] && cmp -s $out/none1 $out/none2'
# every product is the exact GEMM: a model does not depend on dltrain.threads
check "one and two threads give the same bytes" 'cmp -s $out/alone $out/one_thread'
[ $fail = 0 ] || { head "$out"/*; }
exit $fail
