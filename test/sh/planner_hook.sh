#!/usr/bin/env bash
# The planner hook in databases where it must step aside:
#  - a database without the extension, with a look-alike dltrain.train_mlp
#    aggregate of its own: nothing is rewritten and the query runs as written;
#  - the extension installed but the calls in another schema's function of
#    the same name: not merged;
#  - with the extension: merged (EXPLAIN VERBOSE), and the hook chains with
#    auto_explain's executor hooks and with a nested planner call (a SQL
#    function planned inside the outer statement).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
db1=dltrain_hook_noext
db2=dltrain_hook_ext
for d in $db1 $db2; do
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS $d" -c "CREATE DATABASE $d"
done
trap 'psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db1" -c "DROP DATABASE IF EXISTS $db2" >/dev/null 2>&1 || true' EXIT

fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "not ok: $1"; fail=1; fi; }

# no extension: a schema named dltrain with an aggregate named train_mlp
out1=$(psql -X -q -v ON_ERROR_STOP=1 -At -d $db1 <<'SQL'
CREATE SCHEMA dltrain;
CREATE FUNCTION dltrain.cat(s real[], x real[], y int) RETURNS real[] LANGUAGE sql AS 'SELECT s || x';
CREATE AGGREGATE dltrain.train_mlp(real[], int) (SFUNC = dltrain.cat, STYPE = real[], INITCOND = '{}');
CREATE TABLE t AS SELECT ARRAY[i, i + 1]::real[] AS x, i % 2 AS y FROM generate_series(1, 3) i;
EXPLAIN (VERBOSE, COSTS OFF) SELECT dltrain.train_mlp(x, y), dltrain.train_mlp(x, y + 0) FROM t;
SELECT dltrain.train_mlp(x, y) FROM t;
SQL
)
check "no rewrite without the extension" '! grep -q train_mlp_multi <<<"$out1"'
check "the look-alike aggregate runs as written" 'grep -q "{1,2,2,3,3,4}" <<<"$out1"'

# with the extension
out2=$(psql -X -q -v ON_ERROR_STOP=1 -At -d $db2 <<'SQL'
CREATE EXTENSION dltrain;
CREATE SCHEMA other;
CREATE FUNCTION other.cat(s real[], x real[], y int) RETURNS real[] LANGUAGE sql AS 'SELECT s || x';
CREATE AGGREGATE other.train_mlp(real[], int) (SFUNC = other.cat, STYPE = real[], INITCOND = '{}');
CREATE TABLE t AS SELECT ARRAY[i % 7, i % 3]::real[] AS x, i % 2 AS y FROM generate_series(1, 300) i;
EXPLAIN (VERBOSE, COSTS OFF) SELECT other.train_mlp(x, y), other.train_mlp(x, y) FROM t;
EXPLAIN (VERBOSE, COSTS OFF) SELECT dltrain.train_mlp(x, y, '{"lr": 0.1}'), dltrain.train_mlp(x, y, '{"lr": 0.2}') FROM t;
CREATE FUNCTION two_models() RETURNS TABLE (a boolean, b boolean) LANGUAGE sql AS $$
  SELECT dltrain.train_mlp(x, y, '{"epochs": 1}') IS NOT NULL, dltrain.train_mlp(x, y, '{"epochs": 2}') IS NOT NULL FROM t $$;
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SELECT * FROM two_models();
SQL
)
check "a same-named aggregate of another schema is not rewritten" \
	'[ "$(grep -c "other.train_mlp(x, y)" <<<"$out2")" -ge 1 ] && ! grep -q "other.train_mlp_multi" <<<"$out2"'
check "the extension's calls are merged" 'grep -q "dltrain.train_mlp_multi(x, y, .\[{\"lr\": 0.1}, {\"lr\": 0.2}\]" <<<"$out2"'
check "nested planning through a SQL function, with auto_explain loaded" 'grep -q "^t|t$" <<<"$out2"'

[ $fail = 0 ] && echo "planner_hook: all checks passed"
exit $fail
