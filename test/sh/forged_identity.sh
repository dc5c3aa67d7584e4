#!/usr/bin/env bash
# Models are told apart by their bytes, never by their checksum: well-formed
# models forged to carry another model's CRC-32C (forge_crc.py) are refused by
# evaluate's combine step (which used to crash the server on a classifier and
# a regressor with equal CRCs in two partitions) and never scored with
# another model's weights by predict's decoded-model cache.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
db=dltrain_forged
fail=0
ok() { if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAILED: $1 (got '$2', expected '$3')"; fail=1; fi; }
q() { psql -X -At -v ON_ERROR_STOP=1 -d $db "$@"; }
started=$(psql -X -At -d postgres -c "SELECT pg_postmaster_start_time()")

psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
q -q <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION dltrain;
CREATE TABLE pts AS
SELECT i, ARRAY[i % 7, i % 5, (i * 13) % 11]::real[] AS x, i % 3 AS y FROM generate_series(1, 600) i;
CREATE TABLE src (name text PRIMARY KEY, m dltrain.model);
INSERT INTO src
SELECT 'cls3', dltrain.train_mlp(x, y, '{"hidden": [4], "epochs": 2, "seed": 1001}') FROM pts UNION ALL
SELECT 'reg', dltrain.train_mlp(x, y::float8, '{"hidden": [4], "epochs": 2, "seed": 1002}') FROM pts UNION ALL
SELECT 'cls2', dltrain.train_mlp(x, y % 2, '{"hidden": [4], "epochs": 2, "seed": 1003}') FROM pts UNION ALL
SELECT 'cls3b', dltrain.train_mlp(x, y, '{"hidden": [4], "epochs": 2, "seed": 1004, "lr": 0.5}') FROM pts;
SQL
b64() { q -c "SELECT m::text FROM src WHERE name = '$1'"; }
forge() { python3 test/sh/forge_crc.py "$(b64 "$1")" "$(b64 "$2")" "$3"; }
reg=$(forge cls3 reg 1002)
cls2=$(forge cls3 cls2 1003)
cls3b=$(forge cls3 cls3b 1004)
q -q -c "INSERT INTO src VALUES ('forged reg', '$reg'), ('forged cls2', '$cls2'), ('forged cls3b', '$cls3b')"
ok "the forged models are well formed and carry the classifier's checksum" \
	"$(q -c "SELECT count(DISTINCT dltrain.describe(m)->>'checksum') FROM src WHERE name IN ('cls3', 'forged reg', 'forged cls2', 'forged cls3b')")" 1

# evaluate over two partitions, each with its own model, combined partitionwise
for other in 'forged reg' 'forged cls2' 'forged cls3b'; do
	out=$(q 2>&1 <<SQL
CREATE TABLE parted (p int, m dltrain.model, x real[], y int) PARTITION BY LIST (p);
CREATE TABLE parted1 PARTITION OF parted FOR VALUES IN (1);
CREATE TABLE parted2 PARTITION OF parted FOR VALUES IN (2);
INSERT INTO parted SELECT 1, (SELECT m FROM src WHERE name = 'cls3'), x, y FROM pts WHERE i <= 300;
INSERT INTO parted SELECT 2, (SELECT m FROM src WHERE name = '$other'), x, y FROM pts WHERE i > 300;
ANALYZE parted;
SET enable_partitionwise_aggregate = on;
SET parallel_setup_cost = 0;
SELECT dltrain.evaluate(m, x, y) FROM parted;
SQL
)
	q -q -c "DROP TABLE IF EXISTS parted"
	ok "evaluate refuses to combine cls3 with '$other'" \
		"$(echo "$out" | grep -c 'received different models in one group')" 1
done
# the same model in both partitions still combines
out=$(q -q 2>&1 <<'SQL'
CREATE TABLE parted (p int, m dltrain.model, x real[], y int) PARTITION BY LIST (p);
CREATE TABLE parted1 PARTITION OF parted FOR VALUES IN (1);
CREATE TABLE parted2 PARTITION OF parted FOR VALUES IN (2);
INSERT INTO parted SELECT 1 + (i > 300)::int, (SELECT m FROM src WHERE name = 'cls3'), x, y FROM pts;
SET enable_partitionwise_aggregate = on;
SELECT (dltrain.evaluate(m, x, y)->>'rows') = (SELECT dltrain.evaluate(m, x, y)->>'rows' FROM src, pts WHERE name = 'cls3')
FROM parted;
SQL
)
q -q -c "DROP TABLE IF EXISTS parted"
ok "one model in two partitions combines to the whole table's metrics" "$out" t

# predict: rows that alternate between two models of the same size and
# checksum, stored compressed inline (each detoasted into the same memory)
q -q -c "CREATE TABLE alt (k int, m dltrain.model, x real[])" \
	-c "ALTER TABLE alt ALTER COLUMN m SET STORAGE main" \
	-c "INSERT INTO alt SELECT i, (SELECT m FROM src WHERE name = CASE WHEN i % 2 = 0 THEN 'cls3' ELSE 'forged cls3b' END), x FROM pts WHERE i <= 200"
mixed=$(q -c "SELECT md5(string_agg(dltrain.predict_proba(m::text::dltrain.model, x)::text, ',' ORDER BY k)) FROM alt")
alone=$(q -c "SELECT md5(string_agg(p, ',' ORDER BY k)) FROM (
	SELECT k, (SELECT dltrain.predict_proba(s.m, a.x)::text FROM src s
	           WHERE s.name = CASE WHEN k % 2 = 0 THEN 'cls3' ELSE 'forged cls3b' END) AS p FROM alt a) s")
ok "predict scores each row with its own model" "$mixed" "$alone"
ok "the two models do predict differently" \
	"$(q -c "SELECT count(*) > 0 FROM pts, src a, src b WHERE a.name = 'cls3' AND b.name = 'forged cls3b' AND dltrain.predict_proba(a.m, x)::text <> dltrain.predict_proba(b.m, x)::text")" t

ok "the server did not restart" "$(psql -X -At -d postgres -c "SELECT pg_postmaster_start_time()")" "$started"
psql -X -q -d postgres -c "DROP DATABASE $db"
exit $fail
