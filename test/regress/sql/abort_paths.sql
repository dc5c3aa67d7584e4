-- Errors and cancels on every abort path, tried by an ordinary role: a
-- spilled row cache's temporary file is released exactly once, by whichever
-- of the statement or the resource owner ends first.  After each sequence:
-- no temporary file is left, no dltrain memory context survives, and
-- another role's table is intact in its data file (not only in shared
-- buffers: a stray write into a freed file descriptor would bypass them).
CREATE ROLE dlt_ap_attacker;
CREATE ROLE dlt_ap_owner;
GRANT CREATE ON SCHEMA public TO dlt_ap_attacker;
CREATE TABLE payroll (id integer, salary numeric, note text);
INSERT INTO payroll SELECT i, 1000 + i, repeat('x', 40) FROM generate_series(1, 20000) i;
ALTER TABLE payroll OWNER TO dlt_ap_owner;
GRANT SELECT ON payroll TO dlt_ap_attacker;
VACUUM FREEZE payroll;
CHECKPOINT;
SELECT md5(pg_read_binary_file(pg_relation_filepath('payroll'))) AS payroll_md5 \gset
-- the checks after each sequence (run as the superuser)
CREATE FUNCTION ap_check(payroll_md5 text) RETURNS TABLE (check_name text, ok boolean)
LANGUAGE sql AS $$
    SELECT 'payroll file intact', md5(pg_read_binary_file(pg_relation_filepath('payroll'))) = payroll_md5
    UNION ALL
    SELECT 'no temporary file', NOT EXISTS (SELECT FROM pg_ls_tmpdir())
    UNION ALL
    SELECT 'no dltrain memory context',
           NOT EXISTS (SELECT FROM pg_backend_memory_contexts WHERE name LIKE 'dltrain%')
$$;
SET ROLE dlt_ap_attacker;
-- 10000 rows of 8 features, the last one with a NaN: the cache has spilled
-- when the error comes
CREATE TABLE mine AS
SELECT i, array_fill((i % 7)::real, ARRAY[8]) AS x, i % 3 AS y FROM generate_series(1, 10000) i;
UPDATE mine SET x[1] = 'NaN' WHERE i = 10000;
CREATE TABLE clean AS SELECT * FROM mine WHERE i < 10000;
RESET ROLE;
\c
-- 1. a cursor's FETCH fails inside a savepoint; the cursor is closed later
SET ROLE dlt_ap_attacker;
SET dltrain.cache_mem = '256kB';
BEGIN;
DECLARE c CURSOR FOR SELECT dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [8], "batch_size": 16}') FROM mine;
SAVEPOINT s;
FETCH c;
ROLLBACK TO s;
SELECT count(*) FROM payroll;
CLOSE c;
COMMIT;
RESET ROLE;
SELECT * FROM ap_check(:'payroll_md5');
\c
-- 2. the same through PL/pgSQL: the error is caught by an exception block
SET ROLE dlt_ap_attacker;
SET dltrain.cache_mem = '256kB';
DO $$
DECLARE
    c refcursor := 'c2';
    r record;
    n bigint;
BEGIN
    OPEN c FOR SELECT dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [8], "batch_size": 16}') FROM mine;
    BEGIN
        FETCH c INTO r;
    EXCEPTION WHEN data_exception THEN
        RAISE NOTICE 'caught: %', SQLERRM;
    END;
    SELECT count(*) INTO n FROM payroll;
    CLOSE c;
END
$$;
RESET ROLE;
SELECT * FROM ap_check(:'payroll_md5');
\c
-- 3. statement_timeout while a spilled training runs, inside a savepoint
SET ROLE dlt_ap_attacker;
SET dltrain.cache_mem = '256kB';
BEGIN;
DECLARE c CURSOR FOR SELECT dltrain.train_mlp(x, y, '{"epochs": 100000, "hidden": [8], "batch_size": 16}') FROM clean;
SAVEPOINT s;
SET LOCAL statement_timeout = '500ms';
FETCH c;
ROLLBACK TO s;
SELECT count(*) FROM payroll;
CLOSE c;
COMMIT;
RESET ROLE;
SELECT * FROM ap_check(:'payroll_md5');
\c
-- 4. a cursor WITH HOLD: its query runs at COMMIT, and fails there
SET ROLE dlt_ap_attacker;
SET dltrain.cache_mem = '256kB';
BEGIN;
DECLARE c CURSOR WITH HOLD FOR SELECT dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [8], "batch_size": 16}') FROM mine;
COMMIT;
SELECT count(*) FROM payroll;
-- ... and one that succeeds: the held model is read after the commit
BEGIN;
DECLARE h CURSOR WITH HOLD FOR SELECT dltrain.describe(dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [8], "batch_size": 16}'))->'rows_used' AS rows FROM clean;
COMMIT;
FETCH h;
CLOSE h;
RESET ROLE;
SELECT * FROM ap_check(:'payroll_md5');
\c
-- 5. a cursor left open when its subtransaction fails for another reason,
-- then closed in the parent; and a portal dropped only at the end of the
-- transaction
SET ROLE dlt_ap_attacker;
SET dltrain.cache_mem = '256kB';
BEGIN;
DECLARE a CURSOR FOR SELECT dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [8], "batch_size": 16}') FROM mine;
DECLARE b CURSOR FOR SELECT dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [8], "batch_size": 16}') IS NOT NULL AS trained FROM clean;
SAVEPOINT s;
FETCH b;
FETCH a;
ROLLBACK TO s;
SELECT count(*) FROM payroll;
FETCH b;
CLOSE a;
COMMIT;
RESET ROLE;
SELECT * FROM ap_check(:'payroll_md5');
\c
-- 6. nested SPI: a failing grid_search inside a savepoint, then a second one
SET ROLE dlt_ap_attacker;
SET dltrain.cache_mem = '256kB';
BEGIN;
SAVEPOINT s;
SELECT count(*) FROM dltrain.grid_search('mine', '{x}', 'y', '{"epochs": 1, "hidden": [8], "batch_size": 16}', '{"lr": [0.01, 0.1]}', validation_fraction => 0.02);
ROLLBACK TO s;
SELECT count(*) FROM payroll;
SELECT count(*) FROM dltrain.grid_search('clean', '{x}', 'y', '{"epochs": 1, "hidden": [8], "batch_size": 16}', '{"lr": [0.01, 0.1]}', validation_fraction => 0.02);
COMMIT;
-- two spilling trainings in one statement, one of which fails
SELECT dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [8], "batch_size": 16}') IS NOT NULL,
       (SELECT dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [8], "batch_size": 16}') FROM mine) IS NOT NULL
FROM clean;
RESET ROLE;
SELECT * FROM ap_check(:'payroll_md5');
\c
-- 7. nested SPI: fit reads a view whose query trains (and spills) a model
-- of its own, failing inside a savepoint, then succeeding
SET ROLE dlt_ap_attacker;
SET dltrain.cache_mem = '256kB';
CREATE VIEW nested_bad AS
SELECT x, y FROM clean
WHERE (SELECT dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [8], "batch_size": 16}') IS NOT NULL FROM mine);
CREATE VIEW nested_ok AS
SELECT x, y FROM clean
WHERE (SELECT dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [8], "batch_size": 16}') IS NOT NULL FROM clean);
BEGIN;
SAVEPOINT s;
SELECT count(*) FROM dltrain.fit('nested_bad', '{x}', 'y', '{"epochs": 1, "hidden": [8]}');
ROLLBACK TO s;
SELECT count(*) FROM payroll;
SET LOCAL client_min_messages = warning;
SELECT count(*) FROM dltrain.fit('nested_ok', '{x}', 'y', '{"epochs": 1, "hidden": [8], "buffer_rows": 1000}');
COMMIT;
DROP VIEW nested_bad, nested_ok;
RESET ROLE;
SELECT * FROM ap_check(:'payroll_md5');
-- clean up
DROP TABLE mine, clean, payroll;
DROP FUNCTION ap_check(text);
REVOKE CREATE ON SCHEMA public FROM dlt_ap_attacker;
DROP ROLE dlt_ap_attacker;
DROP ROLE dlt_ap_owner;
