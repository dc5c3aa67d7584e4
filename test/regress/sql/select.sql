-- Model selection: merged train_mlp calls, train_mlp_multi, fusion,
-- validation and early stopping, grid_search.
SET client_min_messages = warning;
CREATE TABLE sel AS
SELECT ARRAY[r * cos(a), r * sin(a), (i % 7)::float8 / 7]::real[] AS x,
       (r > 1.5)::int AS y, i
FROM (SELECT i, (i % 97)::float8 / 97 * 6.283 AS a, 1 + (i % 13)::float8 / 6.5 AS r
      FROM generate_series(1, 1500) i) s;

-- the planner hook (dltrain is preloaded here) shows the merge
EXPLAIN (VERBOSE, COSTS OFF)
SELECT dltrain.train_mlp(x, y, '{"lr": 0.01}'), dltrain.train_mlp(x, y, '{"lr": 0.001}'),
       dltrain.train_mlp(x, y) FROM sel;
-- calls nested in other expressions, in a subquery and in a CTE
EXPLAIN (VERBOSE, COSTS OFF)
SELECT dltrain.describe(dltrain.train_mlp(x, y, '{"lr": 0.01}'))->'rows_used',
       dltrain.train_mlp(x, y, '{"lr": 0.001}') IS NOT NULL FROM sel;
EXPLAIN (VERBOSE, COSTS OFF)
WITH m AS (SELECT dltrain.train_mlp(x, y, '{"seed": 1}') a, dltrain.train_mlp(x, y, '{"seed": 2}') b FROM sel)
SELECT a::text < b::text,
       (SELECT dltrain.train_mlp(x, y, '{"seed": 3}')::text < dltrain.train_mlp(x, y, '{"seed": 4}')::text FROM sel)
FROM m;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT q.a::text < q.b::text
FROM (SELECT dltrain.train_mlp(x, y, '{"seed": 5}') a, dltrain.train_mlp(x, y, '{"seed": 6}') b FROM sel) q;
-- not merged: different FILTER, different task, non-constant options
EXPLAIN (VERBOSE, COSTS OFF)
SELECT dltrain.train_mlp(x, y) FILTER (WHERE i > 10), dltrain.train_mlp(x, y) FROM sel;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT dltrain.train_mlp(x, y::float8, '{"task": "regression"}'), dltrain.train_mlp(x, y::float8, '{"task": "classification"}') FROM sel;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT dltrain.train_mlp(x, y, jsonb_build_object('seed', 1)), dltrain.train_mlp(x, y) FROM sel;
-- not merged either: volatile FILTER (each call samples for itself)
EXPLAIN (VERBOSE, COSTS OFF)
SELECT dltrain.train_mlp(x, y) FILTER (WHERE random() < 0.5), dltrain.train_mlp(x, y, '{"lr": 0.1}') FILTER (WHERE random() < 0.5) FROM sel;
-- nor at execution: a merged training says "training 2 models" at DEBUG1,
-- and none does here (the same calls without the FILTER do)
SET dltrain.enable_merge_rewrite = off;
SET client_min_messages = debug1;
SELECT i % 2 AS g, dltrain.train_mlp(x, y, '{"epochs": 1}') FILTER (WHERE random() < 0.5) IS NOT NULL AS a,
       dltrain.train_mlp(x, y, '{"epochs": 1, "lr": 0.1}') FILTER (WHERE random() < 0.5) IS NOT NULL AS b
FROM sel GROUP BY i % 2 ORDER BY 1;
SELECT i % 2 AS g, dltrain.train_mlp(x, y, '{"epochs": 1}') IS NOT NULL AS a,
       dltrain.train_mlp(x, y, '{"epochs": 1, "lr": 0.1}') IS NOT NULL AS b
FROM sel GROUP BY i % 2 ORDER BY 1;
RESET client_min_messages;
RESET dltrain.enable_merge_rewrite;
-- identical calls are one configuration (PostgreSQL computes them once)
EXPLAIN (VERBOSE, COSTS OFF)
SELECT dltrain.train_mlp(x, y, '{"lr": 0.1}'), dltrain.train_mlp(x, y), dltrain.train_mlp(x, y, '{"lr": 0.1}') FROM sel;
-- the GUCs turn the rewrite off
SET dltrain.enable_merge_rewrite = off;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT dltrain.train_mlp(x, y, '{"lr": 0.01}'), dltrain.train_mlp(x, y, '{"lr": 0.001}') FROM sel;
RESET dltrain.enable_merge_rewrite;
SET dltrain.enable_merge = off;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT dltrain.train_mlp(x, y, '{"lr": 0.01}'), dltrain.train_mlp(x, y, '{"lr": 0.001}') FROM sel;
RESET dltrain.enable_merge;

-- four models trained alone (the last two share seed and batch size: one
-- batch stream when merged)
CREATE TABLE alone AS
SELECT 1 AS k, dltrain.train_mlp(x, y, '{"lr": 0.01, "epochs": 4, "hidden": [16]}') AS m FROM sel
UNION ALL SELECT 2, dltrain.train_mlp(x, y, '{"lr": 0.003, "epochs": 3, "hidden": [8, 8], "optimizer": "sgd"}') FROM sel
UNION ALL SELECT 3, dltrain.train_mlp(x, y, '{"lr": 0.01, "epochs": 4, "hidden": [], "seed": 9, "batch_size": 64}') FROM sel
UNION ALL SELECT 4, dltrain.train_mlp(x, y, '{"lr": 0.05, "epochs": 4, "hidden": [], "seed": 9, "batch_size": 64}') FROM sel;
CREATE VIEW four AS
SELECT dltrain.train_mlp(x, y, '{"lr": 0.01, "epochs": 4, "hidden": [16]}') AS m1,
       dltrain.train_mlp(x, y, '{"lr": 0.003, "epochs": 3, "hidden": [8, 8], "optimizer": "sgd"}') AS m2,
       dltrain.train_mlp(x, y, '{"lr": 0.01, "epochs": 4, "hidden": [], "seed": 9, "batch_size": 64}') AS m3,
       dltrain.train_mlp(x, y, '{"lr": 0.05, "epochs": 4, "hidden": [], "seed": 9, "batch_size": 64}') AS m4
FROM sel;

-- fusion off: the merged models are byte for byte the ones trained alone,
-- through the planner's rewrite and through the executor's merge
SET dltrain.fusion = off;
CREATE TABLE merged AS SELECT * FROM four LIMIT 0;
-- one aggregate trains the four models (one DEBUG line)
SET client_min_messages = debug1;
INSERT INTO merged SELECT * FROM four;
SET client_min_messages = warning;
SELECT k, a.m::text = (ARRAY[b.m1, b.m2, b.m3, b.m4])[k]::text AS identical FROM alone a, merged b ORDER BY k;
SET dltrain.enable_merge_rewrite = off;
CREATE TABLE merged_exec AS SELECT * FROM four LIMIT 0;
SET client_min_messages = debug1;
INSERT INTO merged_exec SELECT * FROM four;
SET client_min_messages = warning;
RESET dltrain.enable_merge_rewrite;
SELECT k, a.m::text = (ARRAY[b.m1, b.m2, b.m3, b.m4])[k]::text AS identical FROM alone a, merged_exec b ORDER BY k;

-- held-out rows for the equivalence of fused models
CREATE TABLE held AS
SELECT ARRAY[r * cos(a), r * sin(a), (i % 7)::float8 / 7]::real[] AS x, (r > 1.5)::int AS y
FROM (SELECT i, random() * 6.283 AS a, 1 + random() * 2 AS r FROM generate_series(1, 2000) i) s;

-- fusion auto (the default): the two models without hidden layers share a
-- stream and are fused (whether their bytes match depends on the BLAS
-- kernel); the others are byte for byte the models alone
RESET dltrain.fusion;
CREATE TABLE fused_auto AS SELECT * FROM four;
SELECT k, CASE WHEN k <= 2 THEN a.m::text = fm::text END AS identical,
       (SELECT avg((dltrain.predict_class(a.m, h.x) = dltrain.predict_class(fm, h.x))::int) >= 0.999 FROM held h) AS same_predictions,
       (SELECT abs(avg((dltrain.predict_class(a.m, h.x) = h.y::text)::int) -
                   avg((dltrain.predict_class(fm, h.x) = h.y::text)::int)) <= 0.001 FROM held h) AS same_accuracy
FROM alone a, fused_auto f, LATERAL (SELECT (ARRAY[f.m1, f.m2, f.m3, f.m4])[a.k] AS fm) p
ORDER BY k;

-- fusion on: every model fused; the same predictions on held-out rows for at
-- least 99.9% of rows, and the same accuracy within 0.1 point
SET dltrain.fusion = on;
CREATE TABLE fused AS SELECT * FROM four;
RESET dltrain.fusion;
SELECT k,
       (SELECT avg((dltrain.predict_class(a.m, h.x) = dltrain.predict_class(fm, h.x))::int) >= 0.999 FROM held h) AS same_predictions,
       (SELECT abs(avg((dltrain.predict_class(a.m, h.x) = h.y::text)::int) -
                   avg((dltrain.predict_class(fm, h.x) = h.y::text)::int)) <= 0.001 FROM held h) AS same_accuracy
FROM alone a, fused f, LATERAL (SELECT (ARRAY[f.m1, f.m2, f.m3, f.m4])[a.k] AS fm) p
ORDER BY k;

-- GROUP BY: each group trains its merged models from its own rows
SELECT i % 2 AS g,
       dltrain.describe(dltrain.train_mlp(x, y, '{"epochs": 1}'))->'rows_used' AS a,
       dltrain.describe(dltrain.train_mlp(x, y, '{"epochs": 1, "lr": 0.1}'))->'rows_used' AS b
FROM sel GROUP BY i % 2 ORDER BY 1;

-- a diverging configuration is NULL (with a WARNING); the others are kept
SET client_min_messages = warning;
SELECT dltrain.train_mlp(x, y, '{"optimizer": "sgd", "lr": 1000000, "epochs": 2}') IS NULL AS diverged,
       dltrain.train_mlp(x, y, '{"epochs": 2}') IS NOT NULL AS kept
FROM sel;
SET dltrain.enable_merge_rewrite = off;
SELECT dltrain.train_mlp(x, y, '{"optimizer": "sgd", "lr": 1000000, "epochs": 2}') IS NULL AS diverged,
       dltrain.train_mlp(x, y, '{"epochs": 2}') IS NOT NULL AS kept
FROM sel;
RESET dltrain.enable_merge_rewrite;
-- alone it is NULL with a WARNING too: the outcome does not depend on merging
SELECT dltrain.train_mlp(x, y, '{"optimizer": "sgd", "lr": 1000000, "epochs": 2}') FROM sel;

-- train_mlp_multi itself
SELECT array_length(ms, 1), ms[1] IS NULL AS first_null, dltrain.describe(ms[2])->'options'->'lr' AS lr2
FROM (SELECT dltrain.train_mlp_multi(x, y, '[{"optimizer": "sgd", "lr": 1000000, "epochs": 1}, {"lr": 0.05, "epochs": 1}]') ms FROM sel) s;
SELECT dltrain.train_mlp_multi(x, y, '{"lr": 0.1}') FROM sel;
SELECT dltrain.train_mlp_multi(x, y, '[]') FROM sel;
SELECT dltrain.train_mlp_multi(x, y, '[{}, 3]') FROM sel;
SELECT dltrain.train_mlp_multi(x, y, '[{}, {"epoch": 3}]') FROM sel;
SELECT dltrain.train_mlp_multi(x, y::float8, '[{"task": "regression"}, {"task": "classification"}]') FROM sel;

-- validation and early stopping in train_mlp
CREATE TABLE es AS
SELECT dltrain.train_mlp(x, y, '{"epochs": 40, "lr": 0.05, "validation_fraction": 0.25, "early_stopping": 2}') AS m FROM sel;
SELECT (d->>'epochs')::int < 40 AS stopped_early,
       (d->>'rows_used')::int + (d->>'validation_rows')::int = 1500 AS rows_add_up,
       (d->>'validation_rows')::int BETWEEN 300 AND 450 AS about_a_quarter,
       jsonb_array_length(d->'validation_loss') = (d->>'epochs')::int AS one_per_epoch,
       (d->>'best_epoch')::int = (d->>'epochs')::int - 2 AS best_is_patience_back,
       (d->'validation_loss'->((d->>'best_epoch')::int - 1))::float8 =
         (SELECT min(v::float8) FROM jsonb_array_elements_text(d->'validation_loss') v) AS best_is_lowest,
       (d->'validation_accuracy'->0)::float8 BETWEEN 0 AND 1 AS accuracy
FROM (SELECT dltrain.describe(m) d FROM es) s;
-- the same rows are held out whatever the order rows arrive in
SELECT (SELECT m::text FROM es) =
       (SELECT dltrain.train_mlp(x, y, '{"epochs": 40, "lr": 0.05, "validation_fraction": 0.25, "early_stopping": 2}')::text
        FROM (SELECT * FROM sel ORDER BY i DESC) s) AS order_independent;
SELECT dltrain.train_mlp(x, y, '{"early_stopping": 2}') FROM sel;
SELECT dltrain.train_mlp(x, y, '{"validation_fraction": 0.95}') FROM sel;

-- a model written by dltrain 0.1.0 (format 1) still reads and predicts
SELECT dltrain.describe(m)->'format_version' AS version, dltrain.predict_proba(m, ARRAY[0.3, 0.6]::real[])
FROM (SELECT 'RExUTQEAAAA0AQAASCPOIwEAAAABAAAAFwAAAAAAAAACAAAAAgAAAAQAAAADAAAAAQAAAPyp8dJNYlA/zczMzMzM7D8AAAAAAAAAAIAAAAADAAAABQAAAAAAAAABAQAAPAAAAAAAAAAAAAAAAAAAAAMAAAAHYJg/+CaYP0rulz8BAAAArKqqBrIf2z80MzOjmZnZP+XpGL86mwxAg8CD9cVIDEADAAAAAAAAAAAAAAABAAAAAAAAAAIAAAAAAAAAGwAAAAAAAAAb3zq/oIWzPgbaAz9xMY4/AnF5PSkWfT8mnys8a3qIP918RLs+hkS7WI9EOz7WRLslyYC+mKtevjYUbT9j6uq+ufWIviNI4j5g8+s9cX8vP5rQqT5nDxk/1t4dvSMDzz7AiEQ7ho5Eu+iFRLs='::dltrain.model AS m) s;

-- grid_search: a leaderboard from one read
SELECT rank, configuration->>'lr' AS lr, configuration->'hidden' AS hidden, epochs, status,
       model IS NOT NULL AS has_model, validation_metric BETWEEN 0 AND 1 AS metric_ok
FROM dltrain.grid_search('sel', '{x}', 'y', '{"epochs": 4}',
                         '{"lr": [0.05, 0.001], "hidden": [[16], [8, 8]]}', name => 'sel-grid')
ORDER BY rank;
-- the ranking follows the validation accuracy
SELECT bool_and(a >= b) AS ranked
FROM (SELECT validation_metric a, lead(validation_metric) OVER (ORDER BY rank) b
      FROM dltrain.grid_search('sel', '{x}', 'y', '{"epochs": 2}', '{"lr": [0.1, 0.01, 0.001]}')) s
WHERE b IS NOT NULL;
-- every model is in the catalog; the best under the name, the others name#rank
SELECT name, metrics->'rank' AS rank, (provenance->>'validation_rows')::int > 0 AS validated
FROM dltrain.models WHERE name LIKE 'sel-grid%' ORDER BY id;
SELECT dltrain.latest_model('sel-grid')::text =
       (SELECT model::text FROM dltrain.models WHERE name = 'sel-grid') AS latest_is_best;
-- successive halving and a diverging configuration
SELECT rank, configuration->>'lr' AS lr, epochs, status, model IS NOT NULL AS has_model
FROM dltrain.grid_search('sel', '{x}', 'y', '{"epochs": 4, "optimizer": "sgd"}',
                         '{"lr": [1000000, 0.1, 0.03, 0.01, 0.003, 0.001]}',
                         halving_eta => 2, halving_min_epochs => 1)
ORDER BY rank;
-- random search: reproducible from the seed, log-uniform learning rates in range
SELECT count(*) AS configurations,
       bool_and((configuration->>'lr')::float8 BETWEEN 0.0001 AND 0.1) AS lr_in_range,
       bool_and((configuration->>'batch_size')::int BETWEEN 16 AND 64) AS batch_in_range
FROM dltrain.grid_search('sel', '{x}', 'y', '{"epochs": 1}',
                         '{"samples": 5, "seed": 3, "lr": {"low": 0.0001, "high": 0.1, "log": true}, "batch_size": {"low": 16, "high": 64}}');
SELECT (SELECT array_agg(configuration ORDER BY configuration::text) FROM dltrain.grid_search('sel', '{x}', 'y', '{"epochs": 1}', '{"samples": 3, "seed": 3, "lr": {"low": 0.0001, "high": 0.1, "log": true}}')) =
       (SELECT array_agg(configuration ORDER BY configuration::text) FROM dltrain.grid_search('sel', '{x}', 'y', '{"epochs": 1}', '{"samples": 3, "seed": 3, "lr": {"low": 0.0001, "high": 0.1, "log": true}}')) AS reproducible;
-- errors
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{}', '[1]');
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{}', '{"lr": 0.1}');
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{}', '{"lr": []}');
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{}', '{"lr": {"low": 0.1, "high": 0.01}, "samples": 2}');
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{}', '{"lr": {"low": 0.1, "high": 0.2}}');
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{}', '{"validation_fraction": [0.1]}');
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{}', '{"lr": [0.1, "fast"]}');
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{}', '{"lr": [0.1]}', validation_fraction => 1);
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{"validation_fraction": 0.1}', '{"lr": [0.1]}', validation_fraction => 0.3);
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{"validation_fraction": "some"}', '{"lr": [0.1]}');
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{}', '{"lr": [0.1]}', halving_eta => 1);
SELECT * FROM dltrain.grid_search('sel', '{nope}', 'y', '{}', '{"lr": [0.1]}');
-- the models' buffers must fit the budget together
SET dltrain.cache_mem = '2MB';
\set VERBOSITY terse
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{"epochs": 1, "hidden": [256, 256]}', '{"lr": [0.1, 0.01, 0.001, 0.0001]}');
SELECT dltrain.train_mlp(x, y, '{"hidden": [256, 256]}'), dltrain.train_mlp(x, y, '{"hidden": [256, 256], "lr": 0.1}') FROM sel;
\set VERBOSITY default
RESET dltrain.cache_mem;
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{}', '{"a": [1,2,3,4,5,6,7,8,9,10], "b": [1,2,3,4,5,6,7,8,9,10], "c": [1,2,3,4,5,6,7,8,9,10], "d": [1,2,3,4,5,6,7,8,9,10,11]}');

-- the options' validation_fraction holds, unless the argument gives one (the same)
SELECT (SELECT round((dltrain.describe(model)->>'validation_rows')::numeric / 10) FROM dltrain.grid_search('sel', '{x}', 'y', '{"epochs": 1, "validation_fraction": 0.05}', '{"lr": [0.1]}')) AS from_options,
       (SELECT round((dltrain.describe(model)->>'validation_rows')::numeric / 10) FROM dltrain.grid_search('sel', '{x}', 'y', '{"epochs": 1}', '{"lr": [0.1]}', validation_fraction => 0.05)) AS from_argument,
       (SELECT (dltrain.describe(model)->>'validation_rows')::int > 0 FROM dltrain.grid_search('sel', '{x}', 'y', '{"epochs": 1}', '{"lr": [0.1]}')) AS default_holds_out;

-- grid_search reads as the caller: privileges and row-level security apply
CREATE ROLE dltrain_sel_a;
CREATE TABLE sel_rls AS SELECT x, y, CASE WHEN i % 3 = 0 THEN 'dltrain_sel_a' ELSE 'other' END AS who FROM sel;
ALTER TABLE sel_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY sel_rls_who ON sel_rls USING (who = current_user);
GRANT SELECT ON sel_rls TO dltrain_sel_a;
SET ROLE dltrain_sel_a;
SELECT (dltrain.describe(model)->>'rows_used')::int + (dltrain.describe(model)->>'validation_rows')::int AS rows_seen
FROM dltrain.grid_search('sel_rls', '{x}', 'y', '{"epochs": 1}', '{"lr": [0.01]}');
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{"epochs": 1}', '{"lr": [0.01]}');
RESET ROLE;
DROP TABLE sel_rls;
DROP ROLE dltrain_sel_a;

-- statement_timeout stops merged trainings and a grid search promptly
SET statement_timeout = '300ms';
SELECT dltrain.train_mlp(x, y, '{"epochs": 100000}') IS NULL, dltrain.train_mlp(x, y, '{"epochs": 100000, "lr": 0.1}') IS NULL FROM sel;
SELECT * FROM dltrain.grid_search('sel', '{x}', 'y', '{"epochs": 100000}', '{"lr": [0.1, 0.01]}');
RESET statement_timeout;

-- a volatile options argument that switches merging off and on between
-- sibling calls: the calls train alone, as they would without merging
SELECT dltrain.train_mlp(x, y, CASE WHEN set_config('dltrain.enable_merge', 'off', true) IS NOT NULL THEN '{"epochs": 1}'::jsonb END)::text
     = (SELECT dltrain.train_mlp(x, y, '{"epochs": 1}')::text FROM sel) AS first_alone,
       dltrain.train_mlp(x, y, CASE WHEN set_config('dltrain.enable_merge', 'on', true) IS NOT NULL THEN '{"epochs": 1, "lr": 0.1}'::jsonb END)::text
     = (SELECT dltrain.train_mlp(x, y, '{"epochs": 1, "lr": 0.1}')::text FROM sel) AS second_alone
FROM sel;
RESET dltrain.enable_merge;

DROP VIEW four;
DROP TABLE sel, alone, merged, merged_exec, fused_auto, fused, held, es;
DELETE FROM dltrain.models WHERE name LIKE 'sel-grid%';
