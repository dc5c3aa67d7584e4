#!/usr/bin/env bash
# Retraining on 10% new rows (dltrain.retrain) against a full retrain from
# scratch on all rows, to the same held-out accuracy: time and accuracy.
#
#   bash bench/retrain.sh [rows] [epochs]     default 200000 rows, 5 epochs
#
# The table: rows of 16 features, a 4-class label from a fixed nonlinear rule;
# 90% are there when the first model is trained (fit, "checkpoint": true), 10%
# arrive after.  Compared, each scored on the same 20000 held-out rows:
#   full      dltrain.fit on all rows, from scratch, <epochs> epochs
#   retrain   dltrain.retrain on the 10% new rows, <epochs> epochs
#   replay    the same with replay => 0.1 (10% of the old rows mixed in)
# The extension must be installed; it uses the throwaway cluster
# (scripts/cluster.sh) and the database dltrain_retrain_bench.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-200000}
E=${2:-5}
DB=dltrain_retrain_bench
eval "$("$ROOT/scripts/cluster.sh" env)"
"$ROOT/scripts/cluster.sh" start >/dev/null
psql -XqAt -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
q() { psql -XqAt -d $DB -v ON_ERROR_STOP=1 "$@"; }
q -c "CREATE EXTENSION dltrain"
# deterministic rows: features from a seeded random(), label from a rule
q <<SQL
SELECT setseed(0.5);
CREATE TABLE pts AS
SELECT i, x, (CASE WHEN x[1] * x[2] + sin(3 * x[3]) > 0 THEN 1 ELSE 0 END
            + CASE WHEN x[4] + x[5] * x[6] - x[7] > 0 THEN 2 ELSE 0 END) AS y
FROM (SELECT i, ARRAY(SELECT (random() * 2 - 1)::real FROM generate_series(1, 16) WHERE i > 0) AS x
      FROM generate_series(1, $N + 20000) i) s;
CREATE TABLE held AS SELECT * FROM pts WHERE i > $N;
DELETE FROM pts WHERE i > $N;
CREATE TABLE train AS SELECT * FROM pts WHERE i <= $N * 0.9;
SQL
OPTS="{\"hidden\": [64, 64], \"epochs\": $E, \"lr\": 0.002, \"optimizer\": \"adam\", \"seed\": 1, \"checkpoint\": true}"
acc() { q -c "SELECT round((dltrain.evaluate(dltrain.latest_model('$1'), x, y)->>'accuracy')::numeric, 4) FROM held"; }
secs() { local t0 t1; t0=$(date +%s.%N); q -c "$1" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }

t_base=$(secs "SELECT count(*) FROM dltrain.fit('train', '{x}', 'y', '$OPTS', 'base')")
a_base=$(acc base)
q -c "INSERT INTO train SELECT * FROM pts WHERE i > $N * 0.9"
t_full=$(secs "SELECT count(*) FROM dltrain.fit('train', '{x}', 'y', '$OPTS', 'full')")
a_full=$(acc full)
t_re=$(secs "SELECT count(*) FROM dltrain.retrain('base', new_name => 'retrained')")
a_re=$(acc retrained)
t_rp=$(secs "SELECT count(*) FROM dltrain.retrain('base', replay => 0.1, new_name => 'replayed')")
a_rp=$(acc replayed)
rows() { q -c "SELECT provenance->>'rows' FROM dltrain.models WHERE name = '$1'"; }

printf '%-34s %10s %10s %10s\n' "run ($N rows, $E epochs)" "rows" "seconds" "accuracy"
printf '%-34s %10s %10.2f %10s\n' "first model (90% of the rows)" "$(rows base)" "$t_base" "$a_base"
printf '%-34s %10s %10.2f %10s\n' "full retrain from scratch (100%)" "$(rows full)" "$t_full" "$a_full"
printf '%-34s %10s %10.2f %10s\n' "retrain on the 10% new rows" "$(rows retrained)" "$t_re" "$a_re"
printf '%-34s %10s %10.2f %10s\n' "retrain, replay 0.1" "$(rows replayed)" "$t_rp" "$a_rp"
printf 'time ratio full/retrain: %.2fx; accuracy difference retrain - full: %s\n' \
	"$(echo "$t_full / $t_re" | bc -l)" "$(echo "$a_re - $a_full" | bc -l)"
psql -XqAt -d postgres -c "DROP DATABASE $DB"
