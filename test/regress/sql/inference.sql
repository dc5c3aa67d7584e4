-- Inference and evaluation at scale: evaluate(), predict_batch(), parallel
-- plans, export() and import().
SET extra_float_digits = 0;
SELECT setseed(0.7);
CREATE TABLE ring AS
SELECT i, ARRAY[r * cos(a), r * sin(a)]::real[] AS x, (i % 2) AS y,
       (CASE WHEN i % 2 = 0 THEN 'in' ELSE 'out' END) AS s, r::float8 AS r
FROM (SELECT i, random() * 2 * pi() AS a,
             CASE WHEN i % 2 = 0 THEN random() * 0.8 ELSE 1.2 + random() * 0.8 END AS r
      FROM generate_series(1, 4000) i) q;
CREATE TABLE inf_models AS
SELECT dltrain.train_mlp(x, y, '{"hidden": [16], "epochs": 10, "lr": 0.01}') AS cls,
       dltrain.train_mlp(x, s, '{"hidden": [16], "epochs": 10, "lr": 0.01}') AS txt,
       dltrain.train_mlp(x, r, '{"hidden": [16], "epochs": 10, "lr": 0.01}') AS reg
FROM ring;

-- classification metrics agree with predict()
SELECT e->>'task' AS task, e->'rows' AS rows, e->'classes' AS classes,
       (e->>'accuracy')::float8 = (SELECT avg((dltrain.predict(cls, x) = y)::int) FROM ring, inf_models) AS accuracy_matches,
       (e->>'accuracy')::float8 > 0.95 AS accurate,
       (e->>'log_loss')::float8 BETWEEN 0 AND 0.3 AS low_log_loss,
       jsonb_array_length(e->'confusion_matrix') AS matrix_rows,
       (e->'support') AS support,
       abs((e->>'macro_f1')::float8 - ((e->'f1'->>0)::float8 + (e->'f1'->>1)::float8) / 2) < 1e-12 AS macro_is_mean
FROM (SELECT dltrain.evaluate(cls, x, y) AS e FROM ring, inf_models) q;
-- the confusion matrix: rows are true classes, columns predictions
SELECT (e->'confusion_matrix'->0->>0)::int + (e->'confusion_matrix'->0->>1)::int AS true_0,
       (e->'confusion_matrix'->0->>0)::int = (SELECT count(*) FROM ring, inf_models WHERE y = 0 AND dltrain.predict(cls, x) = 0) AS tn_matches
FROM (SELECT dltrain.evaluate(cls, x, y) AS e FROM ring, inf_models) q;
-- text labels, and labels the model never saw
SELECT e->'classes' AS classes, e->'rows' AS rows, e->'unseen_labels' AS unseen
FROM (SELECT dltrain.evaluate(txt, x, CASE WHEN i <= 10 THEN 'elsewhere' ELSE s END) AS e FROM ring, inf_models) q;
-- regression metrics
SELECT e->>'task' AS task,
       abs((e->>'rmse')::float8 - sqrt((e->>'mse')::float8)) < 1e-12 AS rmse_is_sqrt,
       abs((e->>'mse')::float8 - (SELECT avg((dltrain.predict(reg, x) - r) ^ 2) FROM ring, inf_models)) < 1e-6 AS mse_matches,
       (e->>'mae')::float8 <= sqrt((e->>'mse')::float8) AS mae_below_rmse,
       (e->>'r2')::float8 > 0.9 AS r2_high
FROM (SELECT dltrain.evaluate(reg, x, r) AS e FROM ring, inf_models) q;
-- NULL features or labels are skipped and counted
SELECT e->'rows' AS rows, e->'skipped' AS skipped
FROM (SELECT dltrain.evaluate(cls, CASE WHEN i % 100 = 0 THEN NULL ELSE x END, y) AS e FROM ring, inf_models) q;

-- a parallel plan: partial aggregates in workers, the same metrics
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT dltrain.evaluate((SELECT cls FROM inf_models), x, y) FROM ring;
CREATE TEMP TABLE par AS SELECT dltrain.evaluate((SELECT cls FROM inf_models), x, y) AS e FROM ring;
EXPLAIN (COSTS OFF) SELECT dltrain.evaluate((SELECT reg FROM inf_models), x, r) FROM ring;
CREATE TEMP TABLE par_reg AS SELECT dltrain.evaluate((SELECT reg FROM inf_models), x, r) AS e FROM ring;
-- predict() is PARALLEL SAFE: it runs in the workers
EXPLAIN (COSTS OFF) SELECT count(*) FROM ring WHERE dltrain.predict((SELECT cls FROM inf_models), x) = 1;
SELECT count(*) = (SELECT count(*) FROM ring, inf_models WHERE dltrain.predict(cls, x) = 1) AS same_count
FROM ring WHERE dltrain.predict((SELECT cls FROM inf_models), x) = 1;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;
SELECT p.e->'confusion_matrix' = s.e->'confusion_matrix' AS same_matrix,
       abs((p.e->>'log_loss')::float8 - (s.e->>'log_loss')::float8) < 1e-9 AS same_log_loss
FROM par p, (SELECT dltrain.evaluate(cls, x, y) AS e FROM ring, inf_models) s;
SELECT abs((p.e->>'mse')::float8 - (s.e->>'mse')::float8) < 1e-9 AS same_mse,
       abs((p.e->>'r2')::float8 - (s.e->>'r2')::float8) < 1e-9 AS same_r2
FROM par_reg p, (SELECT dltrain.evaluate(reg, x, r) AS e FROM ring, inf_models) s;

-- evaluate errors
SELECT dltrain.evaluate(cls, x, s) FROM ring, inf_models;
SELECT dltrain.evaluate(txt, x, y) FROM ring, inf_models;
SELECT dltrain.evaluate(CASE WHEN i % 2 = 0 THEN cls ELSE reg END, x, y) FROM ring, inf_models;
SELECT dltrain.evaluate(NULL::dltrain.model, x, y) FROM ring;
SELECT dltrain.evaluate(cls, NULL::real[], y) FROM ring, inf_models;
SELECT dltrain.evaluate(cls, x, y) FROM ring, inf_models WHERE false;

-- predict_batch: the same predictions as predict(), in batches
SELECT count(*) AS rows,
       count(*) FILTER (WHERE b.prediction = dltrain.predict(m.cls, ring.x)) AS same_prediction,
       count(*) FILTER (WHERE b.class = dltrain.predict_class(m.cls, ring.x)) AS same_class,
       count(*) FILTER (WHERE abs(b.probability - (SELECT max(p) FROM unnest(dltrain.predict_proba(m.cls, ring.x)) p)) < 1e-6) AS same_probability
FROM inf_models m, dltrain.predict_batch(m.cls, 'ring', 'x', 'i') b JOIN ring ON ring.i = b.key::int;
SELECT count(*) FILTER (WHERE abs(b.prediction - dltrain.predict(m.reg, ring.x)) < 1e-6) AS same_value,
       count(*) FILTER (WHERE b.class IS NULL AND b.probability IS NULL) AS no_class
FROM inf_models m, dltrain.predict_batch(m.reg, 'ring', 'x', 'i') b JOIN ring ON ring.i = b.key::int;
SELECT b.key, b.prediction, b.class FROM inf_models m, dltrain.predict_batch(m.txt, 'ring', 'x', 'i') b
ORDER BY b.key::int LIMIT 2;
-- NULL features give a row of NULLs; odd identifiers are quoted
CREATE TABLE "Odd Table" ("Key Col" text, "feat; drop" real[]);
INSERT INTO "Odd Table" VALUES ('a', ARRAY[0, 0]), ('b', NULL), (NULL, ARRAY[2, 0]);
SELECT b.* FROM inf_models m, dltrain.predict_batch(m.cls, '"Odd Table"', 'feat; drop', 'Key Col') b ORDER BY b.key;
SELECT * FROM dltrain.predict_batch((SELECT cls FROM inf_models), 'ring', 'nope', 'i');
SELECT * FROM dltrain.predict_batch((SELECT cls FROM inf_models), 'ring', 'y', 'i');
SELECT * FROM dltrain.predict_batch((SELECT cls FROM inf_models), 'ring', 'x', 'nope');
SELECT * FROM dltrain.predict_batch((SELECT cls FROM inf_models), 'no_such_table', 'x', 'i');
-- it reads with the caller's privileges
CREATE ROLE dltrain_inf_user;
GRANT SELECT ON inf_models TO dltrain_inf_user;
SET ROLE dltrain_inf_user;
SELECT count(*) FROM inf_models m, dltrain.predict_batch(m.cls, 'ring', 'x', 'i') b;
RESET ROLE;

-- export and import: the same network, the same predictions
SELECT e->>'format' AS format, e->'format_version' AS version, e->>'activation' AS activation,
       jsonb_array_length(e->'layers') AS layers, e->'layers'->0->'in' AS in0, e->'layers'->0->'out' AS out0,
       jsonb_array_length(e->'layers'->0->'weight') AS weight_rows,
       jsonb_array_length(e->'layers'->0->'weight'->0) AS weight_cols, e->'classes' AS classes
FROM (SELECT dltrain.export(cls) AS e FROM inf_models) q;
SELECT dltrain.export(dltrain.import(dltrain.export(cls))) = dltrain.export(cls) AS export_round_trip,
       dltrain.export(dltrain.import(dltrain.export(txt))) = dltrain.export(txt) AS text_round_trip,
       dltrain.export(dltrain.import(dltrain.export(reg))) = dltrain.export(reg) AS regression_round_trip
FROM inf_models;
SELECT count(*) FILTER (WHERE dltrain.predict_proba(dltrain.import(dltrain.export(cls)), x) = dltrain.predict_proba(cls, x)) AS same_probabilities
FROM ring, inf_models;
SELECT d->'rows_used' AS rows_used, d->'epochs' AS epochs, d->'classes' AS classes
FROM (SELECT dltrain.describe(dltrain.import(dltrain.export(txt))) AS d FROM inf_models) q;
-- import checks what it reads
SELECT dltrain.import('[]');
SELECT dltrain.import('{"format": "onnx", "format_version": 1}');
SELECT dltrain.import(jsonb_set(dltrain.export(cls), '{format_version}', '2')) FROM inf_models;
SELECT dltrain.import(jsonb_set(dltrain.export(cls), '{activation}', '"gelu"')) FROM inf_models;
SELECT dltrain.import(jsonb_set(dltrain.export(cls), '{layers,0,in}', '3')) FROM inf_models;
SELECT dltrain.import(jsonb_set(dltrain.export(cls), '{layers,0,bias}', '[1, 2]')) FROM inf_models;
SELECT dltrain.import(jsonb_set(dltrain.export(cls), '{layers,1,weight,0,0}', '"x"')) FROM inf_models;
SELECT dltrain.import(jsonb_set(dltrain.export(cls), '{classes}', '[1, 0]')) FROM inf_models;
SELECT dltrain.import(jsonb_set(dltrain.export(cls), '{classes}', '[0, 1, 2]')) FROM inf_models;
SELECT dltrain.import(jsonb_set(dltrain.export(cls), '{outputs}', '3')) FROM inf_models;
SELECT dltrain.import(dltrain.export(cls) - 'layers') FROM inf_models;
SELECT dltrain.import(jsonb_set(dltrain.export(cls), '{layers,0,weight,0,0}', '1e39')) FROM inf_models;
SELECT dltrain.import(jsonb_set(dltrain.export(reg), '{label_type}', '"text"')) FROM inf_models;
REVOKE SELECT ON inf_models FROM dltrain_inf_user;
DROP ROLE dltrain_inf_user;
