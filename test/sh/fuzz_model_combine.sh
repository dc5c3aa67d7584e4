#!/usr/bin/env bash
# evaluate()'s partitionwise combine over forged models: two partitions hold
# two different models (a 2-class and a 3-class classifier, a classifier and
# a regression model, ...), the second forged to the first's CRC-32C by the
# fuzz harness (test/fuzz, --pairs), both valid models.  With
# enable_partitionwise_aggregate the partial evaluates of the partitions are
# combined: two different models must give a clean error (never a result, a
# crash or an XX code), and one model in both partitions the result of the
# plain aggregate (the same counts; the log loss may be summed in another
# order).  The backend survives (SELECT 1 on the same connection)
# and the postmaster is never restarted.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
db=dltrain_fuzz_combine_test
out=$(mktemp -d /tmp/dltrain-fuzz-combine.XXXXXX)
chmod 755 "$out"
trap '[ -n "${KEEP:-}" ] || rm -rf "$out"' EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 -d $db "$@"; }

fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "not ok: $1"; fail=1; fi; }

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" || exit 1
start=$(psql -X -qAt -d postgres -c "SELECT pg_postmaster_start_time()")

# models that all take an integer label
q <<'SQL' || exit 1
CREATE EXTENSION dltrain;
CREATE TABLE pts AS
SELECT i, ARRAY[i % 7, i % 5, (i * 3) % 11]::real[] AS x, (i % 2) AS y2, (i % 3) AS y3,
       (i % 7 + 0.5 * (i % 5))::float8 AS yr
FROM generate_series(1, 40) i;
CREATE TABLE seeds (name text, m dltrain.model);
INSERT INTO seeds SELECT 'two-classes', dltrain.train_mlp(x, y2, '{"hidden": [3], "epochs": 2}') FROM pts;
INSERT INTO seeds SELECT 'three-classes', dltrain.train_mlp(x, y3, '{"hidden": [3], "epochs": 2}') FROM pts;
INSERT INTO seeds SELECT 'three-classes-wide', dltrain.train_mlp(x, y3, '{"hidden": [16, 8], "epochs": 1}') FROM pts;
INSERT INTO seeds SELECT 'regression', dltrain.train_mlp(x, yr, '{"hidden": [3], "epochs": 2}') FROM pts;
SQL
mkdir -p "$out/seeds"
q -At -F $'\t' -c "SELECT name, encode(decode(m::text, 'base64'), 'hex') FROM seeds" |
	while IFS=$'\t' read -r name hex; do printf '%s\n' "$hex" >"$out/seeds/$name.hex"; done
make -s -C test/fuzz pairs SANITIZE=0 DIR="$out/emit" SEEDS="$(ls "$out"/seeds/*.hex | tr '\n' ' ')" \
	>"$out/emit.log" 2>&1 || { cat "$out/emit.log"; echo "not ok: the harness forged pairs"; exit 1; }
echo "pairs with one CRC: $(wc -l <"$out/emit/pairs.tsv")"

q <<SQL >"$out/combine.log" 2>&1
\set ON_ERROR_STOP 0
CREATE TABLE pairs (name text, a text, b text);
\copy pairs FROM '$out/emit/pairs.tsv'
SELECT count(*) AS same_crc FROM pairs
WHERE substring(decode(a, 'hex') FROM 13 FOR 4) = substring(decode(b, 'hex') FROM 13 FOR 4);
CREATE TABLE ev (part int, m dltrain.model, x real[], y int) PARTITION BY LIST (part);
CREATE TABLE ev_1 PARTITION OF ev FOR VALUES IN (1);
CREATE TABLE ev_2 PARTITION OF ev FOR VALUES IN (2);
SET enable_partitionwise_aggregate = on;
SET max_parallel_workers_per_gather = 0;
EXPLAIN (COSTS OFF) SELECT dltrain.evaluate(m, x, y) FROM ev;
-- one model in both partitions: the plain aggregate's result
INSERT INTO ev SELECT 1 + (i > 20)::int, s.m, x, y3 FROM pts, seeds s WHERE s.name = 'three-classes';
-- (the same counts; the summed log loss may round differently)
SELECT 'same model: ' || (a - 'log_loss' = b - 'log_loss' AND
    abs((a->>'log_loss')::float8 - (b->>'log_loss')::float8) < 1e-12) AS same
FROM (SELECT dltrain.evaluate(m, x, y) AS a FROM ev) pw,
     (SELECT dltrain.evaluate(m, x, y) AS b FROM (SELECT * FROM ev OFFSET 0) e) plain;
DO \$\$
DECLARE r record; st text; n int := 0; res jsonb;
BEGIN
    FOR r IN SELECT * FROM pairs LOOP
        TRUNCATE ev;
        INSERT INTO ev SELECT 1, encode(decode(r.a, 'hex'), 'base64')::dltrain.model, x, y3 FROM pts WHERE i <= 20;
        INSERT INTO ev SELECT 2, encode(decode(r.b, 'hex'), 'base64')::dltrain.model, x, y3 FROM pts WHERE i > 20;
        BEGIN
            SELECT dltrain.evaluate(m, x, y) INTO res FROM ev;
            RAISE NOTICE 'pair %: a result', r.name;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
            RAISE NOTICE 'pair %: %', r.name, st;
        END;
        n := n + 1;
    END LOOP;
    RAISE NOTICE 'pairs evaluated: %', n;
END \$\$;
SELECT 'alive: ' || 1;
SQL
sed -n '/QUERY PLAN/,/rows)/p' "$out/combine.log" | sed 's/^/    /'
grep -E "pair " "$out/combine.log" | sed 's/^.*NOTICE:  /    /'
check "the harness forged pairs of different models with one CRC" \
	'grep -A2 same_crc "$out/combine.log" | grep -qE "^ +[1-9]"'
check "the plan combines partial evaluates of the two partitions" 'grep -q "Partial Aggregate" "$out/combine.log"'
check "one model in both partitions: the plain aggregate's result" 'grep -q "same model: true" "$out/combine.log"'
check "two different models with one CRC are never combined into a result" \
	'grep -q "pairs evaluated: [1-9]" "$out/combine.log" && ! grep -q "a result" "$out/combine.log" && ! grep -qE "pair .*: XX" "$out/combine.log"'
check "the session survives" 'grep -q "alive: 1" "$out/combine.log"'
now=$(psql -X -qAt -d postgres -c "SELECT pg_postmaster_start_time()" 2>&1)
check "the server never restarted" '[ "$now" = "$start" ]'
if [ $fail != 0 ]; then
	echo "--- log (tail)"; tail -n 15 "$out/combine.log"
	# the server may be in crash recovery: give it a moment before the next test
	for i in $(seq 1 30); do psql -X -qAt -d postgres -c "SELECT 1" >/dev/null 2>&1 && break; sleep 1; done
fi
[ -n "${KEEP:-}" ] || psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
exit $fail
