#!/usr/bin/env bash
# Frozen layers with materialized features (issue 18): K = 8 heads
# (learning rates 0.001 .. 0.1, SGD with momentum and Adam, four of them new
# heads of other widths: 32, 64, 128, 64-32) fine-tuned on
# the frozen 784-256-128 base of a trained 784-256-128-10 model
# ("freeze": 2), EPOCHS epochs, in one merged statement, with
# dltrain.materialize off and on; prints both times, the ratio, and whether
# the 8 models are the same bytes.
#
#   bash bench/frozen.sh                 # 20,000 generated rows x 784
#   ROWS=100000 bash bench/frozen.sh     # the size of bench_wide
#
# The table is generated in SQL (seeded: setseed), Fashion-MNIST-like in
# shape (784 features, 10 classes), in the database dltrain_frozen_bench
# (recreated) of the throwaway cluster (scripts/cluster.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH=$("$PG_CONFIG" --bindir):$PATH
scripts/cluster.sh start >/dev/null
eval "$(scripts/cluster.sh env)"
db=dltrain_frozen_bench
ROWS=${ROWS:-20000}
EPOCHS=${EPOCHS:-5}
THREADS=${THREADS:-1}
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
P="psql -X -q -At -d $db -v ON_ERROR_STOP=1"
$P >/dev/null <<SQL
CREATE EXTENSION dltrain;
SET dltrain.cache_mem = '2GB';
SELECT setseed(0.18);
CREATE TABLE fr AS
SELECT x, (abs(hashfloat4(x[1] + x[100] - x[400] + x[700])) % 10)::int AS y
FROM (SELECT i, array_agg(random()::real) AS x
      FROM generate_series(1, $ROWS) i, generate_series(1, 784) j GROUP BY i) s;
SQL
now() { date +%s.%N; }
t0=$(now)
$P >/dev/null <<SQL
SET dltrain.cache_mem = '2GB';
SET dltrain.threads = $THREADS;
SELECT count(*) FROM dltrain.fit('fr', '{x}', 'y', '{"hidden": [256, 128], "epochs": 1, "lr": 0.01}', name => 'fr-base');
SQL
t1=$(now)
heads() {
	local sel="" k=0
	# learning rates and head widths: four heads keep the model's 128 -> 10
	# layer, four are new heads on the frozen base (hidden goes on past it)
	for o in '"lr": 0.1' '"lr": 0.02' '"lr": 0.001, "optimizer": "adam"' '"lr": 0.05, "momentum": 0.9' \
		'"lr": 0.05, "hidden": [256, 128, 32]' '"lr": 0.01, "hidden": [256, 128, 64]' \
		'"lr": 0.003, "optimizer": "adam", "hidden": [256, 128, 128]' '"lr": 0.02, "hidden": [256, 128, 64, 32]'; do
		k=$((k + 1))
		[ $k -gt 1 ] && sel="$sel, "
		sel="$sel dltrain.train_mlp(x, y, '{\"epochs\": $EPOCHS, \"freeze\": 2, \"warm_start\": \"fr-base\", $o}') AS h$k"
	done
	echo "CREATE TABLE $1 AS SELECT $sel FROM fr;"
}
run() {
	$P <<SQL
SET dltrain.cache_mem = '2GB';
SET dltrain.threads = $THREADS;
SET dltrain.materialize = $1;
$(heads "heads_$1")
SQL
}
a=$(now); run off; b=$(now); run on; c=$(now)
same=$($P -c "SELECT bool_and(x) FROM (SELECT o.h1::text = n.h1::text AND o.h2::text = n.h2::text AND o.h3::text = n.h3::text AND o.h4::text = n.h4::text AND o.h5::text = n.h5::text AND o.h6::text = n.h6::text AND o.h7::text = n.h7::text AND o.h8::text = n.h8::text AS x FROM heads_off o, heads_on n) s")
python3 - "$ROWS" "$EPOCHS" "$THREADS" "$t0" "$t1" "$a" "$b" "$c" "$same" <<'PY'
import sys
rows, epochs, threads = sys.argv[1:4]
t0, t1, a, b, c = map(float, sys.argv[4:9])
off, on = b - a, c - b
print(f"frozen heads: {rows} rows x 784, K = 8 heads on a frozen 784-256-128 base, {epochs} epochs, dltrain.threads = {threads}")
print(f"  base model (784-256-128-10, 1 epoch, fit): {t1 - t0:.1f} s")
print(f"  materialize off: {off:.1f} s")
print(f"  materialize on:  {on:.1f} s")
print(f"  speed-up: {off / on:.1f}x   models the same bytes: {sys.argv[9] == 't'}")
PY
