-- Data larger than the budget: a spilled row cache and the two-level shuffle,
-- on a table stored in label order (fixed seeds, rounded accuracies).
SELECT setseed(0.11);
CREATE TABLE sorted AS
SELECT i, ARRAY[r * cos(a), r * sin(a), random() - 0.5]::real[] AS x, (i % 3) AS y
FROM (SELECT i, random() * 2 * pi() AS a, (i % 3) * 0.8 + random() * 0.6 AS r
      FROM generate_series(1, 9000) i) q
ORDER BY i % 3, i;
-- about 9000 x 20 bytes of cache; a 64 kB budget holds a small part of it
SET dltrain.cache_mem = '256kB';
CREATE TABLE spill_models AS
SELECT 'two-level' AS how, dltrain.train_mlp(x, y, '{"hidden": [16], "epochs": 12, "lr": 0.02, "seed": 3}') AS m FROM sorted
UNION ALL
SELECT 'spilled, no shuffle', dltrain.train_mlp(x, y, '{"hidden": [16], "epochs": 12, "lr": 0.02, "seed": 3, "shuffle": false}') FROM sorted
UNION ALL
SELECT 'small buffer', dltrain.train_mlp(x, y, '{"hidden": [16], "epochs": 12, "lr": 0.02, "seed": 3, "buffer_rows": 500}') FROM sorted;
RESET dltrain.cache_mem;
INSERT INTO spill_models
SELECT 'in memory', dltrain.train_mlp(x, y, '{"hidden": [16], "epochs": 12, "lr": 0.02, "seed": 3}') FROM sorted;
-- every path trains on every row
SELECT how, dltrain.describe(m)->'rows_used' AS rows FROM spill_models ORDER BY how;
-- no shuffle on label-ordered data is poor; the two-level shuffle matches the full one
CREATE TABLE spill_acc AS
SELECT how, round((dltrain.evaluate(m, x, y)->>'accuracy')::numeric, 2) AS accuracy
FROM spill_models, sorted GROUP BY how, m::text;
SELECT how, accuracy < 0.9 AS poor FROM spill_acc WHERE how = 'spilled, no shuffle';
SELECT abs(a.accuracy - b.accuracy) <= 0.01 AS within_1_point, a.accuracy > 0.9 AS good
FROM spill_acc a, spill_acc b WHERE a.how = 'two-level' AND b.how = 'in memory';
-- a buffer of 500 rows mixes less, but still far better than no shuffle
SELECT a.accuracy > b.accuracy AS small_buffer_helps
FROM spill_acc a, spill_acc b WHERE a.how = 'small buffer' AND b.how = 'spilled, no shuffle';
-- spilled training is reproducible for the same input order
SET dltrain.cache_mem = '256kB';
SELECT (SELECT dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [8], "batch_size": 32}')::text FROM (SELECT * FROM sorted ORDER BY i) s)
     = (SELECT dltrain.train_mlp(x, y, '{"epochs": 1, "hidden": [8], "batch_size": 32}')::text FROM (SELECT * FROM sorted ORDER BY i) s) AS reproducible;

-- merged calls over a spilled cache: one scan and one file, every model
-- trained from it exactly as alone (each reads the chunks in its own order)
CREATE TABLE spill_alone AS
SELECT 1 AS k, dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 3, "batch_size": 32}') AS m FROM sorted
UNION ALL SELECT 2, dltrain.train_mlp(x, y, '{"hidden": [], "epochs": 2, "batch_size": 64, "seed": 5}') FROM sorted
UNION ALL SELECT 3, dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 20, "batch_size": 32, "validation_fraction": 0.05, "early_stopping": 2}') FROM sorted;
CREATE TABLE spill_merged (m1 dltrain.model, m2 dltrain.model, m3 dltrain.model);
SET client_min_messages = debug1;
INSERT INTO spill_merged
SELECT dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 3, "batch_size": 32}'),
       dltrain.train_mlp(x, y, '{"hidden": [], "epochs": 2, "batch_size": 64, "seed": 5}'),
       dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 20, "batch_size": 32, "validation_fraction": 0.05, "early_stopping": 2}')
FROM sorted;
RESET client_min_messages;
SELECT k, a.m::text = (ARRAY[b.m1, b.m2, b.m3])[k]::text AS identical FROM spill_alone a, spill_merged b ORDER BY k;
-- validation in a spilled cache: the same rows held out as in memory (by content)
SELECT (d->>'validation_rows')::int BETWEEN 350 AND 550 AS about_5_percent,
       (d->>'rows_used')::int + (d->>'validation_rows')::int = 9000 AS rows_add_up,
       jsonb_array_length(d->'validation_loss') = (d->>'epochs')::int AS one_per_epoch,
       (d->'validation_loss'->((d->>'best_epoch')::int - 1))::float8 =
         (SELECT min(v::float8) FROM jsonb_array_elements_text(d->'validation_loss') v) AS best_is_lowest
FROM (SELECT dltrain.describe(m3) AS d FROM spill_merged) s;
RESET dltrain.cache_mem;
SELECT (SELECT dltrain.describe(m3)->'validation_rows' FROM spill_merged) =
       dltrain.describe(dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 1, "validation_fraction": 0.05}'))->'validation_rows'
       AS same_rows_held_out
FROM sorted;
SET dltrain.cache_mem = '256kB';
DROP TABLE spill_alone, spill_merged;

-- grid_search over a spilled cache, on data with many duplicate rows (held
-- out together, by content)
CREATE TABLE dups AS SELECT ARRAY[(i % 47)::real, (i % 47 % 5)::real]::real[] AS x, (i % 47) % 3 AS y
FROM generate_series(1, 9000) i;
SET dltrain.cache_mem = '256kB';
SELECT count(*) AS configurations, bool_and(model IS NOT NULL) AS trained,
       bool_and((dltrain.describe(model)->>'validation_rows')::int +
                (dltrain.describe(model)->>'rows_used')::int = 9000) AS rows_add_up
FROM dltrain.grid_search('dups', '{x}', 'y', '{"epochs": 2, "hidden": [8]}', '{"lr": [0.1, 0.01]}',
                         validation_fraction => 0.3);
SET dltrain.cache_mem = '256kB';
DROP TABLE dups;

-- temporary files: temp_file_limit applies, and nothing is left behind
SELECT count(*) AS temp_files FROM pg_ls_tmpdir();
SET temp_file_limit = '16kB';
SELECT dltrain.train_mlp(x, y, '{"hidden": [8], "batch_size": 32}') FROM sorted;
RESET temp_file_limit;
SELECT count(*) AS temp_files_after_error FROM pg_ls_tmpdir();
SET statement_timeout = '300ms';
SELECT dltrain.train_mlp(x, y, '{"hidden": [8], "batch_size": 32, "epochs": 100000}') FROM sorted;
RESET statement_timeout;
SELECT count(*) AS temp_files_after_cancel FROM pg_ls_tmpdir();
RESET dltrain.cache_mem;
-- too small a budget even to spill (rows of 40 kB)
SET dltrain.cache_mem = '64kB';
SELECT dltrain.train_mlp(array_fill(i::real, ARRAY[10000]), i % 2) FROM generate_series(1, 100) i;
RESET dltrain.cache_mem;

-- fit(): block-shuffled epochs and a shuffle buffer; without shuffle it is as poor
-- (its per-epoch NOTICEs carry timings)
SET client_min_messages = warning;
CREATE TABLE fit_acc AS
SELECT 'fit' AS how, round((dltrain.evaluate(f.model, s.x, s.y)->>'accuracy')::numeric, 2) AS accuracy
FROM dltrain.fit('sorted', '{x}', 'y', '{"hidden": [16], "epochs": 12, "lr": 0.02, "seed": 3, "buffer_rows": 1000, "pages_per_range": 4}') f,
     sorted s WHERE f.model IS NOT NULL GROUP BY 1
UNION ALL
SELECT 'fit, no shuffle', round((dltrain.evaluate(f.model, s.x, s.y)->>'accuracy')::numeric, 2)
FROM dltrain.fit('sorted', '{x}', 'y', '{"hidden": [16], "epochs": 12, "lr": 0.02, "seed": 3, "shuffle": false, "pages_per_range": 1000000}') f,
     sorted s WHERE f.model IS NOT NULL GROUP BY 1;
RESET client_min_messages;
SELECT how, accuracy < 0.9 AS poor FROM fit_acc WHERE how = 'fit, no shuffle';
SELECT abs(a.accuracy - b.accuracy) <= 0.01 AS within_1_point
FROM fit_acc a, spill_acc b WHERE a.how = 'fit' AND b.how = 'in memory';
