-- dltrain.training_progress (the cluster preloads dltrain): a training sees
-- its own row while it caches rows; none is left after it ends or fails.
-- peek() runs inside the aggregate's input and reports what the view shows.
CREATE FUNCTION peek(i integer) RETURNS real[] LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  SELECT count(*) OVER () AS n, * INTO r FROM dltrain.training_progress WHERE pid = pg_backend_pid();
  RAISE NOTICE 'rows: %, kind: %, relid: %, phase: %, epoch: %/%, rows_done: %, rows_total: %, loss: %, rows/s: %, own user: %, started: %',
    coalesce(r.n, 0), r.kind, r.relid, r.phase, r.epoch, r.epochs, r.rows_done, r.rows_total, r.loss,
    r.rows_per_sec, r.usesysid = (SELECT oid FROM pg_roles WHERE rolname = session_user), r.started BETWEEN now() AND clock_timestamp();
  RETURN ARRAY[i % 7, i % 5]::real[];
END $$;
SELECT count(*) FROM dltrain.training_progress WHERE pid = pg_backend_pid();
SELECT dltrain.describe(dltrain.train_mlp(CASE WHEN i = 5000 THEN peek(i) ELSE ARRAY[i % 7, i % 5]::real[] END, i % 2, '{"epochs": 1}'))->'rows_used'
FROM generate_series(1, 10000) i;
SELECT count(*) FROM dltrain.training_progress WHERE pid = pg_backend_pid();
-- a failing training leaves no row, in a savepoint as well
SELECT dltrain.train_mlp(CASE WHEN i = 9000 THEN ARRAY['NaN', 1]::real[] ELSE ARRAY[i % 7, i % 5]::real[] END, i % 2)
FROM generate_series(1, 10000) i;
SELECT count(*) FROM dltrain.training_progress WHERE pid = pg_backend_pid();
BEGIN;
SAVEPOINT s;
SELECT dltrain.train_mlp(CASE WHEN i = 9000 THEN ARRAY['NaN', 1]::real[] ELSE ARRAY[i % 7, i % 5]::real[] END, i % 2)
FROM generate_series(1, 10000) i;
ROLLBACK TO s;
SELECT count(*) FROM dltrain.training_progress WHERE pid = pg_backend_pid();
COMMIT;
-- the view's columns
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'dltrain.training_progress'::regclass AND attnum > 0 ORDER BY attnum;
DROP FUNCTION peek(integer);
