#!/usr/bin/env bash
# pg_dump and pg_restore keep models byte for byte, small and TOASTed ones,
# and the restored models predict the same.  The model catalog keeps its rows
# with their ids, owners and creation times (a superuser's restore writes the
# columns no other role may write), and new rows continue after the restored
# ids.  Twice: a dump of this version, and a dump of a 0.1.0 database restored
# into this version (the restore's CREATE EXTENSION installs the default
# version, then loads the catalog's rows into it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
src=dltrain_dump_src
dst=dltrain_dump_dst
role=dltrain_dump_role
dump=$(mktemp /tmp/dltrain-dump.XXXXXX)
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
drop_all() {
	q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $src" \
		-c "DROP DATABASE IF EXISTS $dst" -c "DROP ROLE IF EXISTS $role"
}
trap 'rm -f "$dump"; drop_all >/dev/null 2>&1 || true' EXIT
current=$(sed -n 's/^EXTVERSION = //p' Makefile)
fail=0

sig="SELECT string_agg(name || ':' || md5(m::text), ',' ORDER BY name) FROM models"
pred="SELECT md5(string_agg(CASE WHEN name = 'regression' THEN dltrain.predict(m, x)::text
                                 ELSE dltrain.predict_class(m, x) END, ',' ORDER BY name, i)) FROM models, pts"
cat_sig="SELECT string_agg(format('%s:%s:%s:%s:%s:%s:%s', id, name, owner, extract(epoch FROM created), relation,
                                  provenance->>'content_hash', md5(model::text)), ',' ORDER BY id)
         FROM dltrain.models"

run() {
	# run VERSION: a database created at VERSION, dumped, restored into a fresh one
	local version=$1 f=0
	drop_all
	q -d postgres -c "CREATE DATABASE $src" -c "CREATE DATABASE $dst" -c "CREATE ROLE $role"
	q -d $src -c "CREATE EXTENSION dltrain VERSION '$version'"
	q -d $src <<SQL
CREATE TABLE pts AS
SELECT i, ARRAY[i % 7, i % 5, (i * 13) % 11]::real[] AS x, i % 3 AS y, (i % 7)::float8 AS t,
       (ARRAY['a', 'b', 'c'])[i % 3 + 1] AS s
FROM generate_series(1, 500) i;
GRANT SELECT ON pts TO $role;
CREATE TABLE models (name text PRIMARY KEY, m dltrain.model);
INSERT INTO models
SELECT 'small', dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 3}') FROM pts UNION ALL
SELECT 'text', dltrain.train_mlp(x, s, '{"hidden": [8], "epochs": 3}') FROM pts UNION ALL
SELECT 'regression', dltrain.train_mlp(x, t, '{"hidden": [8], "epochs": 3}') FROM pts UNION ALL
SELECT 'toasted', dltrain.train_mlp(x, y, '{"hidden": [1024, 256], "epochs": 1}') FROM pts;
SET client_min_messages = warning;
SELECT count(*) AS n FROM dltrain.fit('pts', '{x}', 'y', '{"epochs": 2, "hidden": [8]}', 'catalogued') \gset
SELECT count(*) AS n FROM dltrain.grid_search('pts', '{x}', 'y', '{"epochs": 1}', '{"lr": [0.01, 0.1]}', name => 'grid') \gset
SET ROLE $role;
SELECT count(*) AS n FROM dltrain.fit('pts', '{x}', 's', '{"epochs": 1, "hidden": [4]}', 'of-a-role') \gset
RESET ROLE;
-- rows from earlier days, and ids with gaps
DELETE FROM dltrain.models WHERE name = 'grid#2';
UPDATE dltrain.models SET created = created - interval '3 days' WHERE name = 'grid';
SQL
	local cat_before before pbefore toasted maxid
	cat_before=$(q -At -d $src -c "$cat_sig")
	before=$(q -At -d $src -c "$sig")
	pbefore=$(q -At -d $src -c "$pred")
	toasted=$(q -At -d $src -c "SELECT pg_column_size(m) > 8000 FROM models WHERE name = 'toasted'")
	maxid=$(q -At -d $src -c "SELECT max(id) FROM dltrain.models")

	pg_dump -Fc -d $src -f "$dump"
	pg_restore -d $dst "$dump"
	local after cat_after latest pafter ext role_row newid
	ext=$(q -At -d $dst -c "SELECT extversion FROM pg_extension WHERE extname = 'dltrain'")
	after=$(q -At -d $dst -c "$sig")
	cat_after=$(q -At -d $dst -c "$cat_sig")
	latest=$(q -At -d $dst -c "SELECT dltrain.latest_model('catalogued')::text = model::text FROM dltrain.models WHERE name = 'catalogued'")
	role_row=$(q -At -d $dst -c "SET ROLE $role" -c "SELECT dltrain.latest_model('of-a-role') IS NOT NULL")
	pafter=$(q -At -d $dst -c "$pred")
	q -d $dst -c "SET client_min_messages = warning" \
		-c "SELECT count(*) FROM dltrain.fit('pts', '{x}', 'y', '{\"epochs\": 1}', 'after-restore')" >/dev/null
	newid=$(q -At -d $dst -c "SELECT id FROM dltrain.models WHERE name = 'after-restore'")
	local chosen
	chosen=$(psql -X -q -d $dst -c "SET ROLE $role" \
		-c "INSERT INTO dltrain.models (name, created, model) SELECT 'x', 'infinity', dltrain.train_mlp(x, y, '{\"epochs\": 0}') FROM pts" 2>&1 | head -n 1)
	local allowed
	allowed=$(psql -X -q -d $dst -c "SET ROLE $role" \
		-c "INSERT INTO dltrain.models (name, model) SELECT 'x', dltrain.train_mlp(x, y, '{\"epochs\": 0}') FROM pts" 2>&1 | head -n 1)

	[ "$ext" = "$current" ] || { echo "$version: restored as version $ext, not $current"; f=1; }
	[ "$toasted" = t ] || { echo "$version: the large model was not stored out of line"; f=1; }
	[ "$(echo "$before" | tr ',' '\n' | wc -l)" = 4 ] || { echo "$version: expected 4 models, got: $before"; f=1; }
	[ "$before" = "$after" ] || { echo "$version: models differ after restore:"; echo " before: $before"; echo " after:  $after"; f=1; }
	[ "$pbefore" = "$pafter" ] || { echo "$version: predictions differ after restore"; f=1; }
	[ "$(echo "$cat_before" | tr ',' '\n' | wc -l)" = 3 ] || { echo "$version: expected 3 catalog rows, got: $cat_before"; f=1; }
	[ "$cat_before" = "$cat_after" ] || { echo "$version: the model catalog differs after restore (id:name:owner:created:relation:hash:model):"; echo " before: $cat_before"; echo " after:  $cat_after"; f=1; }
	[ "$latest" = t ] || { echo "$version: latest_model() does not find the restored model"; f=1; }
	[ "$role_row" = t ] || { echo "$version: the role does not find its restored model"; f=1; }
	[ "$newid" -gt "$maxid" ] || { echo "$version: a new row got id $newid, not after the restored $maxid"; f=1; }
	[ "$chosen" = "ERROR:  permission denied for table models" ] || { echo "$version: after restore a role may choose created: $chosen"; f=1; }
	[ -z "$allowed" ] || { echo "$version: after restore a role cannot insert a model: $allowed"; f=1; }
	[ $f = 0 ] && echo "dump/restore from $version: 4 models identical, predictions identical, 3 catalog rows with ids, owners and times kept, ids continue"
	return $f
}

run "$current" || fail=1
run 0.1.0 || fail=1
exit $fail
