#!/usr/bin/env bash
# An ordinary role runs the sequences that used to write a spilled cache's
# stale buffer into another relation's file (a failed FETCH inside a
# savepoint, the same in a PL/pgSQL exception block, statement_timeout inside
# a savepoint), then the server restarts (data checksums on: a stray write
# fails the first read of the page) and pg_amcheck and a full read of the
# victim table succeed; the victim's data file has the same bytes as before.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
db=dltrain_abort_restart
q() { psql -X -q -v ON_ERROR_STOP=1 -d $db "$@"; }
fail=0
ok() { if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAILED: $1 (got '$2', expected '$3')"; fail=1; fi; }

psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
q <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION dltrain;
CREATE EXTENSION amcheck;
DROP ROLE IF EXISTS dlt_ar_attacker;
CREATE ROLE dlt_ar_attacker LOGIN;
GRANT CREATE ON SCHEMA public TO dlt_ar_attacker;
CREATE TABLE payroll (id integer, salary numeric, note text);
INSERT INTO payroll SELECT i, 1000 + i, repeat('x', 40) FROM generate_series(1, 50000) i;
GRANT SELECT ON payroll TO dlt_ar_attacker;
VACUUM FREEZE payroll;
CHECKPOINT;
SQL
[ "$(psql -X -At -d postgres -c 'SHOW data_checksums')" = on ] || echo "note: this cluster has no data checksums"
md5_before=$(psql -X -At -d $db -c "SELECT md5(pg_read_binary_file(pg_relation_filepath('payroll')))")
sum_before=$(psql -X -At -d $db -c "SELECT sum(salary) FROM payroll")

# each sequence in a fresh session, as the attacker (errors are expected)
psql -X -q -d $db -U dlt_ar_attacker >/dev/null 2>&1 <<'SQL'
CREATE TABLE mine AS
SELECT i, array_fill((i % 7)::real, ARRAY[8]) AS x, i % 3 AS y FROM generate_series(1, 10000) i;
UPDATE mine SET x[1] = 'NaN' WHERE i = 10000;
SQL
for seq in \
	"BEGIN; DECLARE c CURSOR FOR SELECT dltrain.train_mlp(x, y, '{\"epochs\": 1, \"hidden\": [8], \"batch_size\": 16}') FROM mine; SAVEPOINT s; FETCH c; ROLLBACK TO s; SELECT count(*) FROM payroll; CLOSE c; COMMIT;" \
	"DO \$\$ DECLARE c refcursor := 'c'; r record; n bigint; BEGIN OPEN c FOR SELECT dltrain.train_mlp(x, y, '{\"epochs\": 1, \"hidden\": [8], \"batch_size\": 16}') FROM mine; BEGIN FETCH c INTO r; EXCEPTION WHEN data_exception THEN NULL; END; SELECT count(*) INTO n FROM payroll; CLOSE c; END \$\$;" \
	"BEGIN; DECLARE c CURSOR FOR SELECT dltrain.train_mlp(x, y, '{\"epochs\": 100000, \"hidden\": [8], \"batch_size\": 16}') FROM mine WHERE i < 10000; SAVEPOINT s; SET LOCAL statement_timeout = '300ms'; FETCH c; ROLLBACK TO s; SELECT count(*) FROM payroll; CLOSE c; COMMIT;"
do
	psql -X -q -d $db -U dlt_ar_attacker -c "SET dltrain.cache_mem = '256kB'" -c "$seq" >/dev/null 2>&1
done

md5_after=$(psql -X -At -d $db -c "SELECT md5(pg_read_binary_file(pg_relation_filepath('payroll')))")
ok "the victim's data file has the same bytes" "$md5_after" "$md5_before"
scripts/cluster.sh restart >/dev/null || { echo "FAILED: restart"; exit 1; }
eval "$(scripts/cluster.sh env)"
amcheck=$(pg_amcheck -d $db -t payroll 2>&1; echo "rc=$?")
ok "pg_amcheck finds nothing wrong after a restart" "$amcheck" "rc=0"
ok "a full read after the restart gives the same rows" \
	"$(psql -X -At -d $db -c 'SELECT sum(salary) FROM payroll' 2>&1)" "$sum_before"
ok "no temporary file is left" "$(psql -X -At -d $db -c 'SELECT count(*) FROM pg_ls_tmpdir()')" 0

psql -X -q -d postgres -c "DROP DATABASE $db" -c "DROP ROLE dlt_ar_attacker"
exit $fail
