#!/usr/bin/env bash
# The dltrain.training_progress view (needs dltrain in shared_preload_libraries):
#  - a running train_mlp shows one row: kind, phase 'training', epoch of
#    epochs, rows done of rows per epoch, loss, rows/s;
#  - like pg_stat_activity, a role without privileges sees another role's
#    pid but not its details; it sees its own; pg_read_all_stats sees all;
#  - a training cancelled by statement_timeout leaves no row while its
#    session lives on, nor does one that fails while caching rows (also
#    inside a savepoint, and a cursor's that failed inside one, before the
#    cursor is closed), nor a GROUP BY that trains one model per group.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
db=dltrain_progress_test
app=dltrain_progress_test
nopriv=dltrain_progress_nopriv
stats=dltrain_progress_stats
out=$(mktemp -d /tmp/dltrain-progress.XXXXXX)
bg=()
cleanup() {
	for p in "${bg[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
		-c "DROP ROLE IF EXISTS $nopriv" -c "DROP ROLE IF EXISTS $stats" >/dev/null 2>&1 || true
	rm -rf "$out"
}
trap cleanup EXIT

fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "not ok: $1"; fail=1; fi; }
q() { psql -X -q -At -d $db "$@"; }

if [ "$(psql -X -At -d postgres -c "SELECT current_setting('shared_preload_libraries') ~ '(^|[ ,])dltrain($|[ ,])'")" != t ]; then
	echo "not ok: dltrain is not in shared_preload_libraries of the test cluster"
	exit 1
fi

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "DROP ROLE IF EXISTS $nopriv" -c "DROP ROLE IF EXISTS $stats" \
	-c "CREATE DATABASE $db" -c "CREATE ROLE $nopriv LOGIN" -c "CREATE ROLE $stats LOGIN IN ROLE pg_read_all_stats"
q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION dltrain" -c "
CREATE TABLE pts AS SELECT ARRAY[i % 7, i % 5]::real[] AS x, i % 2 AS y FROM generate_series(1, 20000) i;
GRANT SELECT ON pts TO $nopriv;"

# two long trainings, one per role, cancelled by statement_timeout; each
# session then lives on for a few seconds
for role in postgres $nopriv; do
	PGAPPNAME=$app-$role psql -X -U $role -d $db >"$out/bg-$role.log" 2>&1 <<'SQL' &
SET statement_timeout = '6s';
SELECT dltrain.train_mlp(x, y, '{"epochs": 100000}') FROM pts;
RESET statement_timeout;
SELECT 'sleeping', pg_sleep(5);
SQL
	bg+=($!)
done

# the backends' pids
for _ in $(seq 1 50); do
	pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$app-postgres'")
	npid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$app-$nopriv'")
	[ -n "$pid" ] && [ -n "$npid" ] && break
	sleep 0.2
done
check "found the training backends" '[ -n "$pid" ] && [ -n "$npid" ]'

# poll until both report an epoch (at most 10 s)
row=
for _ in $(seq 1 50); do
	n=$(q -c "SELECT count(*) FROM dltrain.training_progress WHERE pid IN ($pid, $npid) AND phase = 'training' AND epoch >= 1")
	[ "$n" = 2 ] && break
	sleep 0.2
done
row=$(q -F ' ' -c "SELECT kind, relid IS NULL, phase, epoch >= 1 AND epoch <= epochs, epochs, rows_done BETWEEN 0 AND rows_total,
	rows_total, loss IS NOT NULL AND loss >= 0, rows_per_sec > 0, usename, started <= now()
	FROM dltrain.training_progress WHERE pid = $pid")
check "a running training is reported with its epoch" '[ "$n" = 2 ]'
check "its row: kind, relid, phase, epoch of epochs, rows of rows_total, loss, rows/s, user, start" \
	'[ "$row" = "train_mlp t training t 100000 t 20000 t t postgres t" ]'

seen_nopriv=$(q -U $nopriv -F ' ' -c "SELECT pid = $pid, usename, kind IS NULL, phase IS NULL, epoch IS NULL, rows_done IS NULL, loss IS NULL, started IS NULL
	FROM dltrain.training_progress WHERE pid = $pid")
check "a role without privileges sees the pid and user of another role's training, nothing else" \
	'[ "$seen_nopriv" = "t postgres t t t t t t" ]'
own_nopriv=$(q -U $nopriv -F ' ' -c "SELECT usename, kind, phase, epochs FROM dltrain.training_progress WHERE pid = $npid")
check "the same role sees the details of its own training" '[ "$own_nopriv" = "$nopriv train_mlp training 100000" ]'
seen_stats=$(q -U $stats -c "SELECT string_agg(phase, ',' ORDER BY pid = $pid) FROM dltrain.training_progress WHERE pid IN ($pid, $npid)")
check "a member of pg_read_all_stats sees the details of all trainings" '[ "$seen_stats" = "training,training" ]'

# after the cancel, while both sessions sleep: no row
for _ in $(seq 1 75); do
	n=$(q -c "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '$app-%' AND query LIKE '%pg_sleep%' AND state = 'active'")
	[ "$n" = 2 ] && break
	sleep 0.2
done
left=$(q -c "SELECT count(*) FROM dltrain.training_progress WHERE pid IN ($pid, $npid)")
check "both sessions outlive the cancelled trainings" '[ "$n" = 2 ]'
check "a training cancelled by statement_timeout leaves no row" '[ "$left" = 0 ]'
for p in "${bg[@]}"; do wait "$p" || true; done
bg=()
check "the trainings were cancelled by statement_timeout" \
	'[ "$(cat "$out"/bg-*.log | grep -c "canceling statement due to statement timeout")" = 2 ]'

# failures and nesting in one session, each followed by a look at its own row
q >"$out/errors.log" 2>&1 <<'SQL' || true
SELECT dltrain.train_mlp(CASE WHEN i = 9000 THEN ARRAY['NaN', 1]::real[] ELSE ARRAY[i % 7, i % 5]::real[] END, i % 2)
FROM generate_series(1, 20000) i;
SELECT 'after error: ' || count(*) FROM dltrain.training_progress WHERE pid = pg_backend_pid();
BEGIN;
SAVEPOINT s;
SELECT dltrain.train_mlp(CASE WHEN i = 9000 THEN ARRAY['NaN', 1]::real[] ELSE ARRAY[i % 7, i % 5]::real[] END, i % 2)
FROM generate_series(1, 20000) i;
ROLLBACK TO s;
SELECT 'after savepoint: ' || count(*) FROM dltrain.training_progress WHERE pid = pg_backend_pid();
COMMIT;
BEGIN;
DECLARE c CURSOR FOR
SELECT dltrain.train_mlp(CASE WHEN i = 9000 THEN ARRAY['NaN', 1]::real[] ELSE ARRAY[i % 7, i % 5]::real[] END, i % 2)
FROM generate_series(1, 20000) i;
SAVEPOINT s;
FETCH c;
ROLLBACK TO s;
SELECT 'cursor after savepoint: ' || count(*) FROM dltrain.training_progress WHERE pid = pg_backend_pid();
CLOSE c;
COMMIT;
SELECT count(*) FROM (SELECT i % 3 AS g, dltrain.train_mlp(ARRAY[i % 7, i % 5]::real[], i % 2, '{"epochs": 2}')
	FROM generate_series(1, 9000) i GROUP BY 1) s;
SELECT 'after group by: ' || count(*) FROM dltrain.training_progress WHERE pid = pg_backend_pid();
SQL
check "errors while caching rows were raised" '[ "$(grep -c "non-finite value" "$out/errors.log")" = 3 ]'
check "a training that fails while caching leaves no row" 'grep -qx "after error: 0" "$out/errors.log"'
check "nor one that fails inside a savepoint, rolled back" 'grep -qx "after savepoint: 0" "$out/errors.log"'
check "nor a cursor's that failed inside a savepoint, before the cursor is closed" 'grep -qx "cursor after savepoint: 0" "$out/errors.log"'
check "nor a GROUP BY that trains one model per group" 'grep -qx "after group by: 0" "$out/errors.log"'

# an epoch of fewer than 16 mini-batches (the demo's 12) still publishes its
# loss and speed: at the end of every epoch
PGAPPNAME=$app-small psql -X -d $db >"$out/small.log" 2>&1 <<'SQL' &
SET statement_timeout = '20s';
SELECT dltrain.train_mlp(x, y, '{"epochs": 1000000, "batch_size": 64}') FROM (SELECT * FROM pts LIMIT 700) s;
SQL
bg+=($!)
for _ in $(seq 1 100); do
	n=$(q -c "SELECT count(*) FROM dltrain.training_progress p JOIN pg_stat_activity a USING (pid)
	          WHERE a.application_name = '$app-small' AND p.loss IS NOT NULL AND p.rows_per_sec > 0")
	[ "$n" = 1 ] && break
	sleep 0.1
done
check "a training of 11 mini-batches an epoch reports its loss and speed" '[ "$n" = 1 ]'
q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = '$app-small'" >/dev/null
for p in "${bg[@]}"; do wait "$p" || true; done
bg=()

[ $fail = 0 ] || { for f in "$out"/*.log; do echo "--- $f"; cat "$f"; done; }
exit $fail
