#!/usr/bin/env bash
# Upgrading from 0.1.0, as the README's "Upgrading" section says to:
#  - a database created at 0.1.0 works with this library before it is updated
#    (CREATE EXTENSION VERSION '0.1.0' looks up every C symbol its SQL names;
#    it then trains, fits, predicts, evaluates, exports with them);
#  - what 0.1.0 let a role plant in the catalog (a creation time of
#    'infinity' that made its row dltrain.latest_model(name) for a superuser,
#    an id chosen with OVERRIDING SYSTEM VALUE) is there before the update;
#  - the README's steps (the package is installed by the test command; restart
#    the server, since dltrain is preloaded; ALTER EXTENSION dltrain UPDATE)
#    bring it to 0.2.0, with a WARNING that counts the repaired rows;
#  - afterwards a model stored in a table and one in the catalog predict the
#    same as before (identical classes, values equal to 6 significant digits),
#    catalog rows keep their ids, owners and timestamps (the planted one gets
#    the update's time), new rows get ids after every id taken;
#  - the updated extension equals a fresh CREATE EXTENSION of 0.2.0, object by
#    object (test/sh/describe_extension.sql: functions with volatility,
#    parallel, strict, security; columns, types, order, defaults, identity;
#    ACLs including column privileges and pg_init_privs; policies; comments;
#    indexes; extconfig by name);
#  - the library refuses a database whose extension SQL is newer than itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
old=dltrain_upgrade_old
new=dltrain_upgrade_new
custom=dltrain_upgrade_custom
out=$(mktemp -d /tmp/dltrain-upgrade.XXXXXX)
drop_all() {
	psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $old" \
		-c "DROP DATABASE IF EXISTS $new" -c "DROP DATABASE IF EXISTS $custom" -c "DROP ROLE IF EXISTS dltrain_upg_planter" \
		-c "DROP ROLE IF EXISTS dltrain_upg_user" >/dev/null 2>&1 || true
}
trap 'drop_all; rm -rf "$out"' EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
fail=0
check() {
	# check WHAT EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then
		echo "ok: $1"
	else
		echo "FAILED: $1"
		echo "  expected: $2"
		echo "  got:      $3"
		fail=1
	fi
}

drop_all
q -d postgres -c "CREATE DATABASE $old" -c "CREATE DATABASE $new" -c "CREATE DATABASE $custom" \
	-c "CREATE ROLE dltrain_upg_planter" -c "CREATE ROLE dltrain_upg_user"

# ---- 0.1.0, with this library ----
q -d $old <<'SQL'
CREATE EXTENSION dltrain VERSION '0.1.0';
CREATE TABLE pts AS
SELECT i, ARRAY[i % 7, i % 5, (i * 13) % 11]::real[] AS x, i % 3 AS y, (i % 7) * 0.5 + (i % 5)::float8 AS t,
       (ARRAY['a', 'b', 'c'])[i % 3 + 1] AS s
FROM generate_series(1, 600) i;
GRANT SELECT ON pts TO PUBLIC;
-- models stored in a table
CREATE TABLE kept (name text PRIMARY KEY, m dltrain.model);
INSERT INTO kept
SELECT 'classes', dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 3, "seed": 1}') FROM pts UNION ALL
SELECT 'text', dltrain.train_mlp(x, s, '{"hidden": [8], "epochs": 3, "seed": 2}') FROM pts UNION ALL
SELECT 'regression', dltrain.train_mlp(x, t, '{"hidden": [8], "epochs": 3, "seed": 3}') FROM pts;
SET client_min_messages = warning;
-- models in the catalog: the superuser's and a role's
SELECT count(*) FROM dltrain.fit('pts', '{x}', 'y', '{"hidden": [8], "epochs": 2, "seed": 4}', 'upg-fit') \g /dev/null
SELECT count(*) FROM dltrain.grid_search('pts', '{x}', 'y', '{"epochs": 1}', '{"lr": [0.01, 0.1]}', name => 'upg-grid') \g /dev/null
SET ROLE dltrain_upg_user;
SELECT count(*) FROM dltrain.fit('pts', '{x}', 's', '{"hidden": [4], "epochs": 1, "seed": 5}', 'upg-user') \g /dev/null
-- 0.1.0 let a role choose created and id
SET ROLE dltrain_upg_planter;
INSERT INTO dltrain.models (name, created, model)
SELECT 'upg-fit', 'infinity', dltrain.train_mlp(x, t, '{"epochs": 1}') FROM pts;
INSERT INTO dltrain.models (id, name, model) OVERRIDING SYSTEM VALUE
SELECT 1000000, 'upg-reserved', dltrain.train_mlp(x, t, '{"epochs": 1}') FROM pts;
RESET ROLE;
-- the other symbols of 0.1.0's SQL, called through it
SELECT dltrain.evaluate((SELECT m FROM kept WHERE name = 'classes'), x, y) IS NOT NULL FROM pts \g /dev/null
SELECT count(*) FROM dltrain.predict_batch((SELECT m FROM kept WHERE name = 'classes'), 'pts', 'x', 'i') \g /dev/null
SELECT dltrain.import(dltrain.export(m))::text = m::text FROM kept \g /dev/null
SELECT dltrain.describe(m) IS NOT NULL FROM kept \g /dev/null
SELECT count(*) FROM dltrain.training_progress \g /dev/null
SELECT count(*) FROM pts TABLESAMPLE dltrain.block_shuffle(4) \g /dev/null
SELECT dltrain.train_mlp(x, y, '{"epochs": 1}') IS NOT NULL, dltrain.train_mlp(x, y, '{"epochs": 1, "lr": 0.1}') IS NOT NULL FROM pts \g /dev/null
SQL
check "0.1.0 created" "0.1.0" "$(q -At -d $old -c "SELECT extversion FROM pg_extension WHERE extname = 'dltrain'")"
# precondition: in 0.1.0 the planted row is what the superuser's latest_model returns
check "0.1.0: a role's row with created = infinity is latest_model() for a superuser" "dltrain_upg_planter" \
	"$(q -At -d $old -c "SELECT owner FROM dltrain.models WHERE name = 'upg-fit' AND model::text = dltrain.latest_model('upg-fit')::text")"

# predictions and catalog rows before the update
preds="SELECT k.name, p.i, CASE WHEN k.name = 'regression' THEN NULL ELSE dltrain.predict_class(k.m, p.x) END,
              CASE WHEN k.name = 'text' THEN NULL ELSE dltrain.predict(k.m, p.x) END,
              CASE WHEN k.name = 'regression' THEN NULL ELSE dltrain.predict_proba(k.m, p.x) END
       FROM (SELECT name, m FROM kept
             UNION ALL SELECT 'catalog', model FROM dltrain.models WHERE name = 'upg-fit' AND owner = 'postgres'::regrole) k,
            pts p"
q -d $old -c "CREATE TABLE preds_before AS $preds"
q -d $old -c "CREATE TABLE catalog_before AS SELECT id, name, owner::text AS owner, created, md5(model::text) AS model FROM dltrain.models"

# ---- the README's steps ----
# 1. install the package: done by the test command (scripts/setup.sh)
# 2. dltrain is in shared_preload_libraries: restart the server
scripts/cluster.sh restart >/dev/null
# 3. in each database
psql -X -v ON_ERROR_STOP=1 -d $old -c "ALTER EXTENSION dltrain UPDATE;" >"$out/update.log" 2>&1 ||
	{ cat "$out/update.log"; exit 1; }
cat "$out/update.log"
check "updated" "0.2.0" "$(q -At -d $old -c "SELECT extversion FROM pg_extension WHERE extname = 'dltrain'")"
check "the update counts the repaired creation times" "1" \
	"$(grep -c 'WARNING:  the creation time of 1 row in dltrain.models lay in the future and is now the time of this update' "$out/update.log" || true)"
check "the update says where ids continue" "1" \
	"$(grep -c 'WARNING:  new rows of dltrain.models now get ids after 1000000' "$out/update.log" || true)"

# ---- models predict the same ----
q -d $old -c "CREATE TABLE preds_after AS $preds"
check "predictions after the update: rows" "$(q -At -d $old -c "SELECT count(*) FROM preds_before")" \
	"$(q -At -d $old -c "SELECT count(*) FROM preds_before b JOIN preds_after a USING (name, i)")"
check "predictions after the update: same classes, values to 6 significant digits" "0" "$(q -At -d $old -c "
SELECT count(*) FROM preds_before b JOIN preds_after a USING (name, i)
WHERE b.predict_class IS DISTINCT FROM a.predict_class
   OR NOT (b.predict IS NULL AND a.predict IS NULL OR abs(b.predict - a.predict) <= 5e-6 * abs(b.predict))
   OR cardinality(b.predict_proba) IS DISTINCT FROM cardinality(a.predict_proba)
   OR EXISTS (SELECT 1 FROM unnest(b.predict_proba, a.predict_proba) u(pb, pa) WHERE abs(pb - pa) > 5e-6 * abs(pb))")"
check "the catalog model is latest_model() of its owner after the update" "t" \
	"$(q -At -d $old -c "SELECT dltrain.latest_model('upg-fit')::text = model::text FROM dltrain.models WHERE name = 'upg-fit' AND owner = 'postgres'::regrole")"

# ---- catalog rows kept, planted ones repaired ----
check "catalog rows keep id, name, owner, model; created kept but for the planted row" "" "$(q -At -d $old -c "
SELECT string_agg(b.id || ' ' || b.name, ', ') FROM catalog_before b LEFT JOIN dltrain.models m ON m.id = b.id
WHERE m.id IS NULL OR m.name <> b.name OR m.owner::text <> b.owner OR md5(m.model::text) <> b.model
   OR (m.created <> b.created AND b.created <> 'infinity')")"
check "the planted creation time is the update's" "f" \
	"$(q -At -d $old -c "SELECT bool_or(created > now()) FROM dltrain.models")"
check "the planted row is no longer latest_model() for the superuser" "postgres" \
	"$(q -At -d $old -c "SELECT owner FROM dltrain.models WHERE name = 'upg-fit' AND model::text = dltrain.latest_model('upg-fit')::text")"
q -d $old -c "SET client_min_messages = warning" \
	-c "SELECT count(*) FROM dltrain.fit('pts', '{x}', 'y', '{\"epochs\": 1}', 'upg-after')" >/dev/null
check "new rows get ids after every id taken" "t" \
	"$(q -At -d $old -c "SELECT id > 1000000 FROM dltrain.models WHERE name = 'upg-after'")"
check "after the update a role cannot choose created" "ERROR:  permission denied for table models" \
	"$(psql -X -q -d $old -c "SET ROLE dltrain_upg_planter" \
		-c "INSERT INTO dltrain.models (name, created, model) SELECT 'x', 'infinity', dltrain.train_mlp(x, y, '{\"epochs\": 0}') FROM pts" 2>&1 | head -n 1)"

# ---- the updated extension equals a fresh 0.2.0 ----
q -d $new -c "CREATE EXTENSION dltrain"
check "fresh install" "0.2.0" "$(q -At -d $new -c "SELECT extversion FROM pg_extension WHERE extname = 'dltrain'")"
q -d $old -f test/sh/describe_extension.sql >"$out/updated.txt"
q -d $new -f test/sh/describe_extension.sql >"$out/fresh.txt"
if diff -u "$out/fresh.txt" "$out/updated.txt" >"$out/schema.diff"; then
	echo "ok: the updated extension equals a fresh 0.2.0 ($(grep -c '' "$out/fresh.txt") properties)"
else
	echo "FAILED: the updated extension differs from a fresh 0.2.0 (- fresh, + updated):"
	head -n 60 "$out/schema.diff"
	fail=1
fi

# ---- a DBA's own choice of who may write the catalog survives the update ----
q -d $custom -c "CREATE EXTENSION dltrain VERSION '0.1.0'" -c "REVOKE INSERT, UPDATE ON dltrain.models FROM PUBLIC" \
	-c "GRANT INSERT ON dltrain.models TO dltrain_upg_user"
q -d $custom -c "ALTER EXTENSION dltrain UPDATE"
check "a catalog closed by the DBA stays closed; the role it chose writes the user columns only" \
	"PUBLIC: f f, role: t f f f" "$(q -At -d $custom -c "
SELECT format('PUBLIC: %s %s, role: %s %s %s %s',
              has_column_privilege('dltrain_upg_planter', 'dltrain.models', 'name', 'INSERT'),
              has_column_privilege('dltrain_upg_planter', 'dltrain.models', 'name', 'UPDATE'),
              has_column_privilege('dltrain_upg_user', 'dltrain.models', 'name', 'INSERT'),
              has_column_privilege('dltrain_upg_user', 'dltrain.models', 'created', 'INSERT'),
              has_column_privilege('dltrain_upg_user', 'dltrain.models', 'id', 'INSERT'),
              has_column_privilege('dltrain_upg_user', 'dltrain.models', 'name', 'UPDATE'))")"

# ---- the library refuses SQL newer than itself ----
lib_version=$(sed -n 's/^EXTVERSION = //p' Makefile)
q -d $new -c "UPDATE pg_extension SET extversion = '99.0.0' WHERE extname = 'dltrain'"
refused=$(psql -X -q -d $new -c "\set VERBOSITY verbose" -c "SELECT dltrain.import('{}')" 2>&1 | grep -E '^ERROR' | head -n 1 || true)
q -d $new -c "UPDATE pg_extension SET extversion = '$lib_version' WHERE extname = 'dltrain'"
check "the library refuses newer SQL, naming both versions" \
	"ERROR:  55000: extension \"dltrain\" is at version 99.0.0 in this database, but the loaded library is version $lib_version" \
	"$refused"
check "and works again once they agree" "t" \
	"$(q -At -d $new -c "SELECT dltrain.describe(dltrain.import(dltrain.export(m))) IS NOT NULL FROM (SELECT dltrain.train_mlp(ARRAY[i]::real[], i % 2) FROM generate_series(1, 10) i) s(m)")"

[ $fail = 0 ] && echo "upgrade: 0.1.0 -> 0.2.0 keeps models and predictions, repairs planted rows, equals a fresh 0.2.0"
exit $fail
