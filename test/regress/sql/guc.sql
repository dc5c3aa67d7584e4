-- Settings: defaults, ranges, and the superuser-only ceiling on the budget.
-- (a session knows dltrain's settings once the library is loaded)
LOAD 'dltrain';
SHOW dltrain.threads;
SHOW dltrain.cache_mem;
SHOW dltrain.max_cache_mem;
SHOW dltrain.log_epochs;
SET dltrain.threads = 0;
SET dltrain.threads = 65;
SET dltrain.nonexistent = 1;

-- ordinary users may set cache_mem, not its ceiling
CREATE ROLE dltrain_guc_user;
GRANT USAGE ON SCHEMA dltrain TO dltrain_guc_user;
SET ROLE dltrain_guc_user;
SET dltrain.cache_mem = '64MB';
SET dltrain.max_cache_mem = '16GB';
RESET ROLE;

-- the ceiling caps the budget a training gets
SET dltrain.max_cache_mem = '1MB';
SET dltrain.cache_mem = '1GB';
\set VERBOSITY terse
SELECT dltrain.train_mlp(ARRAY[i, i]::real[], i % 2, '{"hidden": [1024, 1024]}') FROM generate_series(1, 10) i;
\set VERBOSITY default
RESET dltrain.max_cache_mem;
RESET dltrain.cache_mem;
REVOKE USAGE ON SCHEMA dltrain FROM dltrain_guc_user;
DROP ROLE dltrain_guc_user;
