#!/usr/bin/env bash
# What a backend looks like from outside:
#  - a backend that loads dltrain but never trains neither maps OpenBLAS nor
#    runs extra threads (predict uses the reference kernels);
#  - a training with dltrain.threads = 2 opens OpenBLAS (single-threaded) and
#    starts one helper thread of dltrain's pool, with every signal blocked
#    (PostgreSQL's signals stay on the backend thread);
#  - statement_timeout stops a two-thread training, and the next one in the
#    same session trains on the same helper;
#  - dltrain.log_epochs reports one NOTICE per epoch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
db=dltrain_backend_test
out=$(mktemp -d /tmp/dltrain-backend.XXXXXX)
chmod 755 "$out"
trap 'rm -rf "$out"' EXIT
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
psql -X -q -v ON_ERROR_STOP=1 -d $db -c "CREATE EXTENSION dltrain" -c "
CREATE TABLE pts AS SELECT ARRAY[i % 7, i % 5]::real[] AS x, i % 2 AS y FROM generate_series(1, 20000) i;
CREATE TABLE m AS SELECT dltrain.train_mlp(x, y, '{\"epochs\": 1}') AS m FROM pts;"

# one session: predict only, then train with two threads
psql -X -q -v ON_ERROR_STOP=1 -d $db <<SQL >"$out/psql.log" 2>&1
SELECT pg_backend_pid() AS pid \gset
\setenv PID :pid
SELECT dltrain.predict(m, ARRAY[1, 2]::real[]) FROM m;
\! grep -c openblas /proc/\$PID/maps > $out/maps_before || true
\! grep '^Threads:' /proc/\$PID/status > $out/threads_before
SET dltrain.threads = 2;
SET dltrain.log_epochs = on;
SELECT dltrain.describe(dltrain.train_mlp(x, y, '{"epochs": 3, "hidden": [256, 256]}'))->'epochs' FROM pts;
\! grep -c openblas /proc/\$PID/maps > $out/maps_after || true
\! grep '^Threads:' /proc/\$PID/status > $out/threads_after
\! for t in /proc/\$PID/task/*; do [ "\$(basename \$t)" = "\$PID" ] || grep '^SigBlk:' \$t/status; done > $out/sigblk
SET dltrain.log_epochs = off;
SET statement_timeout = '300ms';
\set ON_ERROR_STOP 0
SELECT dltrain.train_mlp(x, y, '{"epochs": 1000, "hidden": [256, 256]}') IS NOT NULL FROM pts;
\set ON_ERROR_STOP 1
RESET statement_timeout;
SELECT 'again: ' || (dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [256, 256]}') IS NOT NULL) FROM pts;
\! grep '^Threads:' /proc/\$PID/status > $out/threads_end
SQL
psql -X -q -d postgres -c "DROP DATABASE $db"

fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "not ok: $1"; fail=1; fi; }
check "no OpenBLAS in a backend that only predicts" '[ "$(cat $out/maps_before)" = 0 ]'
check "one thread in a backend that only predicts" 'grep -q "Threads:[[:space:]]*1$" $out/threads_before'
check "OpenBLAS mapped after training" '[ "$(cat $out/maps_after)" -gt 0 ]'
check "one helper thread with dltrain.threads = 2" 'grep -q "Threads:[[:space:]]*2$" $out/threads_after'
check "worker threads block all signals" '[ -s $out/sigblk ] && ! grep -v "SigBlk:[[:space:]]*fffffffe7ffbfeff\|SigBlk:[[:space:]]*ffffffffffffffff" $out/sigblk'
check "statement_timeout stops a two-thread training" 'grep -q "canceling statement due to statement timeout" $out/psql.log'
check "the session trains again, on the same helper" 'grep -q "again: true" $out/psql.log && grep -q "Threads:[[:space:]]*2$" $out/threads_end'
check "one NOTICE per epoch" '[ "$(grep -cE "NOTICE:  epoch [1-3]/3: loss [0-9.]+, [0-9]+ rows/s" $out/psql.log)" = 3 ]'
[ $fail = 0 ] || { echo "--- psql log"; cat "$out/psql.log"; cat "$out"/sigblk; }
exit $fail
