#!/usr/bin/env bash
# Cancel latency per phase: how long a statement runs on after
# pg_cancel_backend() while it is in the middle of each phase (caching,
# preparing, training one large mini-batch, export, import, predict_batch).
#
#   bash bench/cancel.sh            # every phase, the cancel 1 s into it
#   DELAY=3 bash bench/cancel.sh    # the cancel 3 s into each phase
#   bash bench/cancel.sh training   # some phases only
#   THREADS=2 bash bench/cancel.sh  # with dltrain.threads = 2
#   MODE=timeout bash bench/cancel.sh   # statement_timeout instead (no wait
#                                   # point: works on builds without one)
#
# Each statement is stopped at the start of its phase by
# dltrain.test_wait_point (an advisory lock held by a second session);
# the lock is released, the script waits until the statement runs again,
# waits DELAY seconds, sends the cancel and times the statement's end (the
# time of the cancel to the end of the client's psql, a few milliseconds of
# which are psql itself).  It also prints how long the phase runs without a
# cancel ("uncancelled"), for the sizes used; with NOCANCEL=1 it only does
# that.  MODE=timeout sets statement_timeout to the time the phase starts
# (measured on this machine, TIMEOUT_<phase> in ms overrides it) plus DELAY
# and prints how long the statement ran past it.  Uses the throwaway cluster (scripts/cluster.sh) and the database
# dltrain_cancel_bench (recreated).  About two minutes on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH=$("$PG_CONFIG" --bindir):$PATH
scripts/cluster.sh start >/dev/null
eval "$(scripts/cluster.sh env)"
db=dltrain_cancel_bench
KEY=1684829298
DELAY=${DELAY:-1}
phases=${*:-caching preparing training export import predict_batch}
tmp=$(mktemp -d /tmp/dltrain-cancel.XXXXXX)
chmod 755 "$tmp"
holder=
cleanup() {
	[ -n "$holder" ] && kill "$holder" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d $db "$@"; }

psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
q <<'SQL'
CREATE EXTENSION dltrain;
-- preparing: 1.5M rows of 128 features (780 MB of cache)
CREATE TABLE prep AS
  SELECT array_fill((i % 97)::real, ARRAY[128]) AS x, i % 3 AS y
  FROM generate_series(1, 1500000) i;
-- training, predict_batch: 16384 rows of 16 features, and a 4096 x 4096
-- network (16.8M parameters); export, import: a 2048 x 2048 x 2048 network
-- (8.4M parameters: jsonb holds at most about 20M)
CREATE TABLE small AS
  SELECT i AS id, ARRAY(SELECT ((i * 31 + j) % 101)::real FROM generate_series(1, 16) j) AS x, i % 2 AS y
  FROM generate_series(1, 16384) i;
CREATE TABLE big_model (m dltrain.model);
ALTER TABLE big_model ALTER m SET STORAGE EXTERNAL;
INSERT INTO big_model
  SELECT dltrain.train_mlp(x, y, '{"hidden": [4096, 4096], "epochs": 0}') FROM small;
CREATE TABLE exp_model (m dltrain.model);
ALTER TABLE exp_model ALTER m SET STORAGE EXTERNAL;
INSERT INTO exp_model
  SELECT dltrain.train_mlp(x, y, '{"hidden": [2048, 2048, 2048], "epochs": 0}') FROM small;
CREATE TABLE exp_json (j jsonb);
ALTER TABLE exp_json ALTER j SET STORAGE EXTERNAL;
INSERT INTO exp_json SELECT dltrain.export(m) FROM exp_model;
VACUUM ANALYZE;
SQL

declare -A stmt=(
	[caching]="SELECT dltrain.train_mlp(x, y, '{\"epochs\": 1}') IS NULL FROM (SELECT ARRAY[1, 2, 3]::real[] AS x, generate_series(1, 1000000000) % 2 AS y) s"
	[preparing]="SELECT dltrain.train_mlp(x, y, '{\"epochs\": 1, \"validation_fraction\": 0.1}') IS NULL FROM prep"
	[training]="SET dltrain.cache_mem = '4GB'; SELECT dltrain.train_mlp(x, y, '{\"hidden\": [4096, 4096], \"batch_size\": 16384, \"epochs\": 1, \"optimizer\": \"sgd\"}') IS NULL FROM small"
	[export]="SELECT dltrain.export(m) IS NULL FROM exp_model"
	[import]="SELECT dltrain.import(j) IS NULL FROM exp_json"
	[predict_batch]="SELECT count(*) FROM big_model, dltrain.predict_batch(m, 'small'::regclass, 'x', 'id')"
)

now() { date +%s.%N; }

# MODE=timeout: where each phase starts, in ms after the statement starts
declare -A start_ms=([caching]=0 [preparing]=${TIMEOUT_preparing:-3500} [training]=${TIMEOUT_training:-1000}
	[export]=0 [import]=0 [predict_batch]=0)

# timeout_phase PHASE: the statement with statement_timeout in the phase
timeout_phase() {
	local phase=$1 ms t0 t1
	ms=$(awk "BEGIN { print int(${start_ms[$phase]} + $DELAY * 1000) }")
	t0=$(now)
	psql -X -q -d $db -c "SET dltrain.threads = ${THREADS:-1}" -c "SET statement_timeout = $ms" -c "${stmt[$phase]}" >"$tmp/victim.log" 2>&1 || true
	t1=$(now)
	if ! grep -q "canceling statement due to statement timeout" "$tmp/victim.log"; then
		echo "$phase: the statement ended before its timeout:" >&2
		cat "$tmp/victim.log" >&2
	fi
	printf '%-14s statement_timeout %5d ms: ended %.3f s after it\n' "$phase" "$ms" \
		"$(awk "BEGIN { print $t1 - $t0 - $ms / 1000 }")"
}

# run_phase PHASE: prints the cancel latency in seconds
run_phase() {
	local phase=$1 vpid vb t0 t1
	rm -f "$tmp/fifo" "$tmp/end"
	mkfifo "$tmp/fifo"
	psql -X -q -d $db <"$tmp/fifo" >/dev/null 2>&1 &
	holder=$!
	exec 3>"$tmp/fifo"
	echo "SELECT pg_advisory_lock($KEY);" >&3
	until [ "$(q -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $KEY AND granted")" = 1 ]; do sleep 0.01; done
	(
		exec 3>&-				# the holder's input is not the victim's
		psql -X -q -d $db -c "SET dltrain.threads = ${THREADS:-1}" -c "SET dltrain.test_wait_point = '$phase'" -c "${stmt[$phase]}" >"$tmp/victim.log" 2>&1 || true
		now >"$tmp/end"
	) &
	vpid=$!
	until vb=$(q -c "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $KEY AND NOT granted") && [ -n "$vb" ]; do sleep 0.01; done
	echo "SELECT pg_advisory_unlock($KEY);" >&3
	exec 3>&-
	wait $holder || true
	holder=
	# running again: no longer waiting on the lock
	until [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE pid = $vb AND wait_event_type = 'Lock'")" = 0 ]; do sleep 0.01; done
	t0=$(now)
	if [ "${NOCANCEL:-0}" = 1 ]; then
		wait $vpid
		t1=$(cat "$tmp/end")
		echo "$phase uncancelled $(awk "BEGIN { print $t1 - $t0 }")"
		return
	fi
	sleep "$DELAY"
	t0=$(now)
	q -c "SELECT pg_cancel_backend($vb)" >/dev/null
	wait $vpid
	t1=$(cat "$tmp/end")
	if ! grep -q "canceling statement due to user request" "$tmp/victim.log"; then
		echo "$phase: the statement was not cancelled:" >&2
		cat "$tmp/victim.log" >&2
	fi
	printf '%-14s cancel after %ss: ended %.3f s after the cancel\n' "$phase" "$DELAY" "$(awk "BEGIN { print $t1 - $t0 }")"
}

echo "dltrain cancel latency ($(nproc) CPUs, dltrain.threads = ${THREADS:-1}, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
for p in $phases; do
	if [ "${MODE:-}" = timeout ]; then
		timeout_phase "$p"
	else
		run_phase "$p"
	fi
done
psql -X -q -d postgres -c "DROP DATABASE $db"
