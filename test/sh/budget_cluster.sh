#!/usr/bin/env bash
# dltrain.max_total_mem caps what all dltrain calls of the cluster hold
# together: a training that would pass it fails while another holds memory,
# and every reservation is given back exactly once, whatever ended the call
# (success, error, cancel, a failed cursor inside a savepoint, a FATAL exit).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
db=dltrain_budget_cluster
fail=0
ok() { if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAILED: $1 (got '$2', expected '$3')"; fail=1; fi; }
q() { psql -X -At -d $db "$@" 2>&1; }
set_total() {
	psql -X -q -d postgres -c "ALTER SYSTEM SET dltrain.max_total_mem = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
	# wait until a new session sees it (the postmaster rereads the file asynchronously)
	for _ in $(seq 1 100); do
		[ "$(psql -X -At -d postgres -c 'SHOW dltrain.max_total_mem')" = "$1" ] && return 0
		psql -X -At -d postgres -c "SELECT pg_sleep(0.05)" >/dev/null
	done
	echo "FAILED: dltrain.max_total_mem did not become $1"; fail=1
}
cleanup() {
	psql -X -q -d postgres -c "ALTER SYSTEM RESET dltrain.max_total_mem" -c "SELECT pg_reload_conf()" >/dev/null
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
}
trap cleanup EXIT

psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
q -q -c "CREATE EXTENSION dltrain" \
	-c "CREATE TABLE big AS SELECT i, array_fill((i % 5)::real, ARRAY[256]) AS x, i % 3 AS y FROM generate_series(1, 20000) i" \
	-c "CREATE TABLE bad AS SELECT * FROM big" -c "UPDATE bad SET x[1] = 'NaN' WHERE i = 20000" >/dev/null
# one training of this table holds about 22 MB
train="SET dltrain.cache_mem = '64MB'; SELECT dltrain.describe(dltrain.train_mlp(x, y, '{\"epochs\": 1}'))->>'rows_used' FROM big"

set_total 8MB
out=$(q -c "$train")
ok "a training past the cluster's ceiling fails" \
	"$(echo "$out" | grep -c 'past dltrain.max_total_mem (8 MB)')" 1
set_total 32MB
ok "under the ceiling it trains" "$(q -c "$train" | tail -n 1)" 20000

# every way a call ends gives its reservation back: 16 calls, each of which
# needs more than half of the ceiling, ended by errors, cancels and cursors
for i in $(seq 1 4); do
	q -c "SET dltrain.cache_mem = '64MB'" -c "SELECT dltrain.train_mlp(x, y, '{\"epochs\": 1}') FROM bad" >/dev/null
	q -c "SET dltrain.cache_mem = '64MB'" -c "SET statement_timeout = '200ms'" \
		-c "SELECT dltrain.train_mlp(x, y, '{\"epochs\": 100000}') FROM big" >/dev/null
	q -c "SET dltrain.cache_mem = '64MB'" -c "BEGIN" \
		-c "DECLARE c CURSOR FOR SELECT dltrain.train_mlp(x, y, '{\"epochs\": 1}') FROM bad" \
		-c "SAVEPOINT s" -c "FETCH c" -c "ROLLBACK TO s" -c "CLOSE c" -c "COMMIT" >/dev/null
	q -c "SET dltrain.cache_mem = '64MB'" -c "BEGIN" \
		-c "DECLARE c CURSOR FOR SELECT dltrain.train_mlp(x, y, '{\"epochs\": 1}') FROM big" \
		-c "FETCH c" -c "COMMIT" >/dev/null
done
ok "after 16 ended calls, a training that needs more than half of the ceiling still fits" \
	"$(q -c "$train" | tail -n 1)" 20000

# a session that holds memory when it is terminated gives it back
q -c "SET dltrain.cache_mem = '64MB'" -c "SET application_name = 'dlt_victim'" \
	-c "SELECT dltrain.train_mlp(x, y, '{\"epochs\": 100000}') FROM big" >/dev/null &
victim=$!
for _ in $(seq 1 200); do
	n=$(q -c "SELECT count(*) FROM dltrain.training_progress p JOIN pg_stat_activity a USING (pid)
	          WHERE a.application_name = 'dlt_victim' AND p.phase = 'training'")
	[ "$n" = 1 ] && break
	q -c "SELECT pg_sleep(0.05)" >/dev/null
done
ok "a training holds its memory while it runs" "$n" 1
# while it runs, two more such trainings do not fit under 32 MB
out=$(q -c "SET dltrain.cache_mem = '64MB'" -c "SELECT dltrain.train_mlp(x, y, '{\"epochs\": 1}') FROM big")
ok "a second session's training does not fit beside it" \
	"$(echo "$out" | grep -c 'past dltrain.max_total_mem (32 MB)')" 1
q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'dlt_victim'" >/dev/null
wait $victim
ok "the terminated session's memory is free again" "$(q -c "$train" | tail -n 1)" 20000
exit $fail
