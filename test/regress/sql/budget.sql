-- One budget, one ceiling: dltrain.cache_mem bounds everything one call
-- holds together, checked before allocating.  (Errors are terse: their
-- DETAIL says what the call held, which depends on the allocator.)
\set VERBOSITY terse
CREATE TABLE bud AS
SELECT i, array_fill((i % 5)::real, ARRAY[784]) AS x, i % 10 AS y FROM generate_series(1, 3000) i;
CREATE TABLE bud_model AS SELECT dltrain.train_mlp(x, y, '{"hidden": [400], "epochs": 1}') AS m FROM bud;
SELECT pg_column_size(m) > 1000000 AS over_a_megabyte FROM bud_model;
-- predict_batch: a 1.2 MB model under a 64 kB budget is refused before it is decoded
SET dltrain.cache_mem = '64kB';
SELECT count(*) FROM bud_model, dltrain.predict_batch(m, 'bud', 'x', 'i');
-- ... and evaluate and predict
SELECT dltrain.evaluate(m, x, y) FROM bud_model, bud;
SELECT dltrain.predict_class(m, x) FROM bud_model, bud LIMIT 1;
RESET dltrain.cache_mem;
SELECT count(*) FROM bud_model, dltrain.predict_batch(m, 'bud', 'x', 'i');

-- grid_search with 10,000 configurations stops at the budget, not gigabytes past it
SET dltrain.cache_mem = '64MB';
SELECT count(*) FROM dltrain.grid_search('bud', '{x}', 'y', '{"epochs": 1}',
    jsonb_build_object('lr', (SELECT jsonb_agg(g * 0.0001) FROM generate_series(1, 10000) g)));
RESET dltrain.cache_mem;

-- ... and one whose grid values are large: refused as the configurations
-- are built (within the statement_timeout, which it used to ignore)
SET dltrain.cache_mem = '1MB';
SET statement_timeout = '10s';
SELECT count(*) FROM dltrain.grid_search('bud', '{x}', 'y', '{"epochs": 1}',
    jsonb_build_object('samples', 10000, 'activation', jsonb_build_array(repeat('r', 300000))));
RESET statement_timeout;
-- export counts its text and jsonb
SELECT dltrain.export(m) IS NOT NULL FROM bud_model;
SET dltrain.cache_mem = '8MB';
SELECT dltrain.export(m) IS NOT NULL FROM bud_model;
RESET dltrain.cache_mem;
SELECT dltrain.export(m) IS NOT NULL FROM bud_model;
-- fit counts the classes of a text label as it reads them
CREATE TABLE bud_text AS SELECT ARRAY[i % 7]::real[] AS x, repeat(md5(i::text), 16) AS t FROM generate_series(1, 5000) i;
SET dltrain.cache_mem = '1MB';
SELECT count(*) FROM dltrain.fit('bud_text', '{x}', 't', '{"epochs": 1, "hidden": []}');
RESET dltrain.cache_mem;
-- evaluate counts the metrics it writes: 1,000 classes x 1,000 counts
CREATE TABLE bud_many AS
SELECT dltrain.import(jsonb_build_object('format', 'dltrain.mlp', 'format_version', 1,
    'task', 'classification', 'activation', 'relu', 'inputs', 1, 'outputs', 1000, 'label_type', 'integer',
    'layers', jsonb_build_array(jsonb_build_object('in', 1, 'out', 1000,
        'weight', (SELECT jsonb_agg(jsonb_build_array(g * 0.001)) FROM generate_series(1, 1000) g),
        'bias', (SELECT jsonb_agg(0) FROM generate_series(1, 1000) g))),
    'normalization', NULL, 'classes', (SELECT jsonb_agg(g) FROM generate_series(0, 999) g))) AS m;
SET dltrain.cache_mem = '32MB';
SELECT dltrain.evaluate(m, ARRAY[g::real], g) IS NOT NULL FROM bud_many, generate_series(1, 10) g;
SET dltrain.cache_mem = '128MB';
SELECT (dltrain.evaluate(m, ARRAY[g::real], g)->>'rows')::int AS rows FROM bud_many, generate_series(1, 10) g;
RESET dltrain.cache_mem;

-- merged models that do not fit beside the cache: the call fails naming
-- both numbers; each fits alone
SET dltrain.cache_mem = '16MB';
SELECT dltrain.train_mlp(x, y, '{"hidden": [256], "epochs": 1}') IS NOT NULL AS alone FROM bud;
SELECT dltrain.train_mlp(x, y, '{"hidden": [256], "epochs": 1}') IS NOT NULL,
       dltrain.train_mlp(x, y, '{"hidden": [256], "epochs": 1, "lr": 0.1}') IS NOT NULL,
       dltrain.train_mlp(x, y, '{"hidden": [256], "epochs": 1, "lr": 0.01}') IS NOT NULL,
       dltrain.train_mlp(x, y, '{"hidden": [256], "epochs": 1, "lr": 0.001}') IS NOT NULL
FROM bud;
RESET dltrain.cache_mem;

-- one budget per aggregate node, not per group: 1,000 groups hashed at once
-- do not each get 1 MB; sorted, one group trains at a time and fits
CREATE TABLE bud_groups AS
SELECT i % 1000 AS k, ARRAY[i % 7, i % 3]::real[] AS x, (i / 1000) % 2 AS y FROM generate_series(1, 20000) i;
SET dltrain.cache_mem = '1MB';
SET enable_sort = off;
EXPLAIN (COSTS OFF) SELECT k, dltrain.train_mlp(x, y, '{"epochs": 1}') FROM bud_groups GROUP BY k;
SELECT count(m) FROM (SELECT k, dltrain.train_mlp(x, y, '{"epochs": 1}') AS m FROM bud_groups GROUP BY k) s;
RESET enable_sort;
SET enable_hashagg = off;
EXPLAIN (COSTS OFF) SELECT k, dltrain.train_mlp(x, y, '{"epochs": 1}') FROM bud_groups GROUP BY k;
SELECT count(m) FROM (SELECT k, dltrain.train_mlp(x, y, '{"epochs": 1}') AS m FROM bud_groups GROUP BY k) s;
RESET enable_hashagg;
RESET dltrain.cache_mem;

-- whether a cache spills is decided alone: a model trained merged with a
-- large one is the model trained alone (neither spills at 16 MB)
SET dltrain.cache_mem = '16MB';
SELECT a.m::text = b.m1::text AS merged_is_alone
FROM (SELECT dltrain.train_mlp(x, y, '{"epochs": 1}') AS m FROM bud) a,
     (SELECT dltrain.train_mlp(x, y, '{"epochs": 1}') AS m1,
             dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [128]}') AS m2 FROM bud) b;
RESET dltrain.cache_mem;

-- dltrain.max_threads caps dltrain.threads; only a superuser sets it
CREATE TEMP TABLE one_thread AS SELECT dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [64]}') AS m FROM bud;
SET dltrain.max_threads = 1;
SET dltrain.threads = 2;
SELECT dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [64]}')::text = (SELECT m::text FROM one_thread) AS capped_is_one_thread
FROM bud;
RESET dltrain.threads;
RESET dltrain.max_threads;
CREATE ROLE dltrain_bud_user;
SET ROLE dltrain_bud_user;
SET dltrain.max_threads = 4;
SET dltrain.max_total_mem = '1GB';
RESET ROLE;
DROP ROLE dltrain_bud_user;
SHOW dltrain.max_total_mem;
DROP TABLE bud, bud_model, bud_groups, bud_text, bud_many;
