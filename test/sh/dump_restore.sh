#!/usr/bin/env bash
# pg_dump and pg_restore keep models byte for byte, small and TOASTed ones,
# and the restored models predict the same.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
src=dltrain_dump_src
dst=dltrain_dump_dst
dump=$(mktemp /tmp/dltrain-dump.XXXXXX)
trap 'rm -f "$dump"' EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $src" -c "DROP DATABASE IF EXISTS $dst" \
	-c "CREATE DATABASE $src" -c "CREATE DATABASE $dst"
q -d $src <<'SQL'
CREATE EXTENSION dltrain;
CREATE TABLE pts AS
SELECT i, ARRAY[i % 7, i % 5, (i * 13) % 11]::real[] AS x, i % 3 AS y, (i % 7)::float8 AS t,
       (ARRAY['a', 'b', 'c'])[i % 3 + 1] AS s
FROM generate_series(1, 500) i;
CREATE TABLE models (name text PRIMARY KEY, m dltrain.model);
INSERT INTO models
SELECT 'small', dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 3}') FROM pts UNION ALL
SELECT 'text', dltrain.train_mlp(x, s, '{"hidden": [8], "epochs": 3}') FROM pts UNION ALL
SELECT 'regression', dltrain.train_mlp(x, t, '{"hidden": [8], "epochs": 3}') FROM pts UNION ALL
SELECT 'toasted', dltrain.train_mlp(x, y, '{"hidden": [1024, 256], "epochs": 1}') FROM pts;
SET client_min_messages = warning;
SELECT count(*) AS n FROM dltrain.fit('pts', '{x}', 'y', '{"epochs": 2, "hidden": [8]}', 'catalogued') \gset
SQL
sig="SELECT string_agg(name || ':' || md5(m::text), ',' ORDER BY name) FROM models"
pred="SELECT md5(string_agg(CASE WHEN name = 'regression' THEN dltrain.predict(m, x)::text
                                 ELSE dltrain.predict_class(m, x) END, ',' ORDER BY name, i)) FROM models, pts"
cat_sig="SELECT string_agg(name || ':' || owner || ':' || relation || ':' || (provenance->>'content_hash') || ':' || md5(model::text), ',') FROM dltrain.models"
cat_before=$(psql -X -At -d $src -c "$cat_sig")
before=$(psql -X -At -d $src -c "$sig")
pbefore=$(psql -X -At -d $src -c "$pred")
toasted=$(psql -X -At -d $src -c "SELECT pg_column_size(m) > 8000 FROM models WHERE name = 'toasted'")

pg_dump -Fc -d $src -f "$dump"
pg_restore -d $dst "$dump"
after=$(psql -X -At -d $dst -c "$sig")
cat_after=$(psql -X -At -d $dst -c "$cat_sig")
latest=$(psql -X -At -d $dst -c "SELECT dltrain.latest_model('catalogued') IS NOT NULL")
pafter=$(psql -X -At -d $dst -c "$pred")

q -d postgres -c "DROP DATABASE $src" -c "DROP DATABASE $dst"

fail=0
[ "$toasted" = t ] || { echo "the large model was not stored out of line"; fail=1; }
[ "$(echo "$before" | tr ',' '\n' | wc -l)" = 4 ] || { echo "expected 4 models, got: $before"; fail=1; }
[ "$before" = "$after" ] || { echo "models differ after restore:"; echo " before: $before"; echo " after:  $after"; fail=1; }
[ "$pbefore" = "$pafter" ] || { echo "predictions differ after restore"; fail=1; }
[ -n "$cat_before" ] && [ "$cat_before" = "$cat_after" ] || { echo "the model catalog differs after restore:"; echo " before: $cat_before"; echo " after:  $cat_after"; fail=1; }
[ "$latest" = t ] || { echo "latest_model() finds nothing after restore"; fail=1; }
[ $fail = 0 ] && echo "dump/restore: 4 models identical, predictions identical, catalog row kept"
exit $fail
