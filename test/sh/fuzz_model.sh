#!/usr/bin/env bash
# In-server fuzz of the model type: forged values with valid checksums, fed
# to every consumer.
#
# Models trained here are the seeds of the standalone harness (test/fuzz),
# which writes their mutants (every field in turn, lengths, random bytes; the
# CRC-32C recomputed).
# Each mutant goes through:
#  - the text input function: accepted exactly when the harness's validator
#    accepts it, else 22P02;
#  - the binary receive function (binary COPY): the same, else 22P03;
#  - stored as is (a binary-coercible cast, as a damaged disk would): describe,
#    predict, predict_class, predict_proba, export, import(export()), evaluate
#    and predict_batch each give XX001 for a rejected value, and for a valid
#    one a result or an error without an XX code; results agree across
#    consumers (predict_batch and evaluate with predict_class, an
#    export/import round trip predicts the same).
# (evaluate's partitionwise combine over CRC-colliding models:
# fuzz_model_combine.sh.)
# The backend of each session survives (SELECT 1 on the same connection) and
# the postmaster is never restarted.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
db=dltrain_fuzz_test
out=$(mktemp -d /tmp/dltrain-fuzz.XXXXXX)
chmod 755 "$out"
trap '[ -n "${KEEP:-}" ] || rm -rf "$out"' EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 -d $db "$@"; }

fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "not ok: $1"; fail=1; fi; }

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" || exit 1
start=$(psql -X -qAt -d postgres -c "SELECT pg_postmaster_start_time()")

# ---- seeds: small models of every label kind, trained here ----
q <<'SQL' || exit 1
CREATE EXTENSION dltrain;
CREATE TABLE pts AS
SELECT i, ARRAY[i % 7, i % 5, (i * 3) % 11]::real[] AS x,
       (i % 2) AS y_int4, (i % 3)::smallint AS y_int2, (i % 2)::bigint * 1000000000000 AS y_int8,
       (i % 7 + 0.5 * (i % 5))::float8 AS y_float8, ((i % 3) * 0.5)::real AS y_real,
       (ARRAY['cat', 'dog', 'émeu'])[1 + i % 3] AS y_text
FROM generate_series(1, 40) i;
CREATE TABLE seeds (name text, m dltrain.model);
INSERT INTO seeds SELECT 'cls-int4', dltrain.train_mlp(x, y_int4, '{"hidden": [3], "epochs": 2}') FROM pts;
INSERT INTO seeds SELECT 'cls-int2-val', dltrain.train_mlp(x, y_int2, '{"hidden": [3], "epochs": 3, "validation_fraction": 0.25, "early_stopping": 2, "optimizer": "adamw"}') FROM pts;
INSERT INTO seeds SELECT 'reg-float8-val', dltrain.train_mlp(x, y_float8, '{"hidden": [3, 2], "epochs": 2, "validation_fraction": 0.2, "activation": "tanh"}') FROM pts;
INSERT INTO seeds SELECT 'cls-text', dltrain.train_mlp(x, y_text, '{"hidden": [3], "epochs": 1, "normalize": false, "optimizer": "sgd"}') FROM pts;
INSERT INTO seeds SELECT 'cls-real', dltrain.train_mlp(x, y_real, '{"hidden": [], "epochs": 1, "task": "classification"}') FROM pts;
INSERT INTO seeds SELECT 'cls-int8', dltrain.train_mlp(x, y_int8, '{"hidden": [2], "epochs": 1, "init": "pytorch", "activation": "sigmoid"}') FROM pts;
INSERT INTO seeds SELECT 'imported', dltrain.import(dltrain.export(m)) FROM seeds WHERE name = 'cls-int4';
SQL
mkdir -p "$out/seeds"
q -At -F $'\t' -c "SELECT name, encode(decode(m::text, 'base64'), 'hex') FROM seeds" |
	while IFS=$'\t' read -r name hex; do printf '%s\n' "$hex" >"$out/seeds/$name.hex"; done

# ---- mutants ----
make -s -C test/fuzz emit SANITIZE=0 DIR="$out/emit" SEEDS="$(ls "$out"/seeds/*.hex | tr '\n' ' ')" \
	>"$out/emit.log" 2>&1 || { cat "$out/emit.log"; echo "not ok: the harness wrote mutants"; exit 1; }
chmod -R a+rX "$out/emit"
# every valid mutant, and one in three of the others
awk -F'\t' '$4 == "valid" || $1 % 3 == 0' "$out/emit/mutants.tsv" >"$out/sample.tsv"
echo "mutants: $(wc -l <"$out/sample.tsv") of $(wc -l <"$out/emit/mutants.tsv") written, $(grep -c $'\tvalid\t' "$out/sample.tsv") valid"

q <<SQL >"$out/run.log" 2>&1
\set ON_ERROR_STOP 1
CREATE TABLE fz_in (id int, seed text, descr text, verdict text, hex text);
\copy fz_in FROM '$out/sample.tsv'
CREATE TABLE fz (id int PRIMARY KEY, seed text, descr text, valid bool, bytes bytea);
INSERT INTO fz SELECT id, seed, descr, verdict = 'valid', decode(hex, 'hex') FROM fz_in;
CREATE TABLE fz_res (id int, consumer text, state text, val text);

-- runs q, returning its SQLSTATE ('ok' when it succeeds) and its first value as text
CREATE FUNCTION try(q text, OUT state text, OUT val text) LANGUAGE plpgsql AS \$\$
BEGIN
    IF q LIKE 'COPY %' THEN
        EXECUTE q;
    ELSE
        EXECUTE q INTO val;
    END IF;
    state := 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
    val := NULL;
END \$\$;

-- the text input function
INSERT INTO fz_res SELECT id, 'input', t.state, NULL FROM fz,
    LATERAL try(format('SELECT %L::dltrain.model IS NOT NULL', encode(bytes, 'base64'))) t;

-- the binary receive function
CREATE TABLE fz_recv (m dltrain.model);
INSERT INTO fz_res SELECT id, 'recv', t.state, NULL FROM fz,
    LATERAL try(format('COPY fz_recv FROM %L (FORMAT binary)', '$out/emit/copy/' || id || '.bin')) t;
SELECT count(*) AS received FROM fz_recv;

-- stored as is
CREATE TABLE fz_stored (id int PRIMARY KEY, m dltrain.model);
CREATE CAST (bytea AS dltrain.model) WITHOUT FUNCTION;
INSERT INTO fz_stored SELECT id, bytes::dltrain.model FROM fz;
DROP CAST (bytea AS dltrain.model);
CREATE FUNCTION label_col(id int) RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE t text;
BEGIN
    SELECT dltrain.describe(m)->>'label_type' INTO t FROM fz_stored s WHERE s.id = label_col.id;
    RETURN CASE t WHEN 'smallint' THEN 'y_int2' WHEN 'bigint' THEN 'y_int8' WHEN 'real' THEN 'y_real'
        WHEN 'double precision' THEN 'y_float8' WHEN 'text' THEN 'y_text' ELSE 'y_int4' END;
EXCEPTION WHEN OTHERS THEN
    RETURN 'y_int4';
END \$\$;
CREATE TABLE consumers (consumer text, q text);
INSERT INTO consumers VALUES
 ('describe', 'SELECT dltrain.describe(m)::text FROM fz_stored WHERE id = %s'),
 ('predict', 'SELECT dltrain.predict(m, (SELECT x FROM pts WHERE i = 1))::text FROM fz_stored WHERE id = %s'),
 ('predict_class', 'SELECT dltrain.predict_class(m, (SELECT x FROM pts WHERE i = 1)) FROM fz_stored WHERE id = %s'),
 ('predict_proba', 'SELECT dltrain.predict_proba(m, (SELECT x FROM pts WHERE i = 1))::text FROM fz_stored WHERE id = %s'),
 ('export', 'SELECT dltrain.export(m)::text FROM fz_stored WHERE id = %s'),
 ('reimported_proba', 'SELECT dltrain.predict_proba(dltrain.import(dltrain.export(m)), (SELECT x FROM pts WHERE i = 1))::text FROM fz_stored WHERE id = %s'),
 ('reimported_predict', 'SELECT dltrain.predict(dltrain.import(dltrain.export(m)), (SELECT x FROM pts WHERE i = 1))::text FROM fz_stored WHERE id = %s'),
 ('evaluate', 'SELECT dltrain.evaluate(s.m, p.x, p.%2\$s)::text FROM fz_stored s, pts p WHERE s.id = %1\$s'),
 ('accuracy_by_predict_class', 'SELECT (count(*) FILTER (WHERE dltrain.predict_class(s.m, p.x) = p.%2\$s::text))::float8 / count(*) FROM fz_stored s, pts p WHERE s.id = %1\$s'),
 ('predict_batch', 'SELECT string_agg(key || '':'' || coalesce(class, prediction::text), '','' ORDER BY key::int) FROM fz_stored s, dltrain.predict_batch(s.m, ''pts'', ''x'', ''i'') WHERE s.id = %s'),
 ('predict_class_all', 'SELECT string_agg(p.i || '':'' || dltrain.predict_class(s.m, p.x), '','' ORDER BY p.i) FROM fz_stored s, pts p WHERE s.id = %s');
INSERT INTO fz_res SELECT f.id, c.consumer, t.state, t.val
FROM fz f CROSS JOIN consumers c, LATERAL try(format(c.q, f.id, label_col(f.id))) t;
SELECT 'alive: ' || 1;
SQL
rc=$?
check "the session ran every consumer" '[ $rc = 0 ] && grep -q "alive: 1" "$out/run.log"'
[ $rc = 0 ] || tail -n 20 "$out/run.log"

sql() { q -At -c "$1" 2>&1; }
check "the input function accepts exactly the values the validator accepts" \
	'[ "$(sql "SELECT count(*) FROM fz JOIN fz_res r USING (id) WHERE r.consumer = '"'input'"' AND valid <> (r.state = '"'ok'"')")" = 0 ]'
check "the input function rejects every other value with 22P02" \
	'[ "$(sql "SELECT count(*) FROM fz JOIN fz_res r USING (id) WHERE r.consumer = '"'input'"' AND NOT valid AND r.state <> '"'22P02'"'")" = 0 ]'
check "the receive function accepts exactly the values the validator accepts" \
	'[ "$(sql "SELECT count(*) FROM fz JOIN fz_res r USING (id) WHERE r.consumer = '"'recv'"' AND valid <> (r.state = '"'ok'"')")" = 0 ]'
check "the receive function rejects every other value with 22P03" \
	'[ "$(sql "SELECT count(*) FROM fz JOIN fz_res r USING (id) WHERE r.consumer = '"'recv'"' AND NOT valid AND r.state <> '"'22P03'"'")" = 0 ]'
check "every consumer of a stored damaged value raises XX001" \
	'[ "$(sql "SELECT count(*) FROM fz JOIN fz_res r USING (id) WHERE r.consumer NOT IN ('"'input'"', '"'recv'"') AND NOT valid AND r.state <> '"'XX001'"'")" = 0 ]'
check "no consumer of a valid value raises an XX error" \
	'[ "$(sql "SELECT count(*) FROM fz JOIN fz_res r USING (id) WHERE valid AND r.state LIKE '"'XX%'"'")" = 0 ]'
check "describe, export and predict_batch succeed on every valid value" \
	'[ "$(sql "SELECT count(*) FROM fz JOIN fz_res r USING (id) WHERE valid AND r.consumer IN ('"'describe'"', '"'export'"', '"'predict_batch'"') AND r.state <> '"'ok'"'")" = 0 ]'
check "an export/import round trip predicts the same" \
	'[ "$(sql "SELECT count(*) FROM fz_res a JOIN fz_res b USING (id) WHERE (a.consumer, b.consumer) IN (('"'predict_proba'"', '"'reimported_proba'"'), ('"'predict'"', '"'reimported_predict'"')) AND (a.state, a.val) IS DISTINCT FROM (b.state, b.val)")" = 0 ]'
check "predict_batch gives the classes predict_class gives" \
	'[ "$(sql "SELECT count(*) FROM fz_res a JOIN fz_res b USING (id) WHERE a.consumer = '"'predict_batch'"' AND b.consumer = '"'predict_class_all'"' AND b.state = '"'ok'"' AND a.val IS DISTINCT FROM b.val")" = 0 ]'
check "evaluate's accuracy is the share of rows predict_class gets right" \
	'[ "$(sql "SELECT count(*) FROM fz_res a JOIN fz_res b USING (id) WHERE a.consumer = '"'evaluate'"' AND b.consumer = '"'accuracy_by_predict_class'"' AND a.state = '"'ok'"' AND a.val::jsonb ? '"'accuracy'"' AND abs((a.val::jsonb->>'"'accuracy'"')::float8 - b.val::float8) > 1e-9")" = 0 ]'
sql "SELECT consumer, state, count(*) FROM fz JOIN fz_res USING (id) GROUP BY valid, consumer, state ORDER BY consumer, state" \
	>"$out/states.txt"
echo "--- consumer states (valid and damaged values together)"
sed 's/^/    /' "$out/states.txt"

now=$(psql -X -qAt -d postgres -c "SELECT pg_postmaster_start_time()" 2>&1)
check "the server never restarted" '[ "$now" = "$start" ]'
if [ $fail = 0 ]; then
	psql -X -q -d postgres -c "DROP DATABASE $db"
else
	echo "--- run log (tail)"; tail -n 30 "$out/run.log"
	# the server may be in crash recovery: give it a moment before the next test
	for i in $(seq 1 30); do psql -X -qAt -d postgres -c "SELECT 1" >/dev/null 2>&1 && break; sleep 1; done
	[ -n "${KEEP:-}" ] || psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
fi
exit $fail
