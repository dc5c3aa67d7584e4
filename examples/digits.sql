-- dltrain demo: handwritten digits, trained and scored inside PostgreSQL.
-- Data: the UCI "Optical Recognition of Handwritten Digits" test set as
-- shipped by scikit-learn (1797 images of 8x8 pixels, values 0-16, 10 classes;
-- C. Kaynak and E. Alpaydin, UCI Machine Learning Repository, CC BY 4.0).
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
DROP TABLE IF EXISTS digits_raw, digits, digits_model;
RESET client_min_messages;

CREATE TABLE digits_raw (line text);
\copy digits_raw FROM PROGRAM 'zcat /usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz'
CREATE TABLE digits AS
SELECT row_number() OVER () AS id, v[1:64] AS pixels, v[65]::int AS digit
FROM (SELECT string_to_array(line, ',')::real[] AS v FROM digits_raw) s;
DROP TABLE digits_raw;

\echo
\echo '== data: 80% of the rows train, every fifth row is held out'
SELECT count(*) FILTER (WHERE id % 5 <> 0) AS train_rows,
       count(*) FILTER (WHERE id % 5 = 0) AS heldout_rows,
       count(DISTINCT digit) AS classes
FROM digits;

\echo '== training: one query, one NOTICE per epoch'
SET dltrain.log_epochs = on;
\timing on
CREATE TABLE digits_model AS
SELECT dltrain.train_mlp(pixels, digit, '{"hidden": [64], "epochs": 20, "lr": 0.003, "seed": 1}') AS model
FROM digits WHERE id % 5 <> 0;
\timing off
RESET dltrain.log_epochs;

\echo '== the model'
SELECT d->'layers' AS layers, d->>'activation' AS activation, d->'rows_used' AS rows,
       d->'epochs' AS epochs, round((d->'loss'->>0)::numeric, 4) AS first_loss,
       round((d->'loss'->>-1)::numeric, 4) AS final_loss
FROM (SELECT dltrain.describe(model) AS d FROM digits_model) s;

\echo '== held-out accuracy'
SELECT count(*) AS heldout_rows,
       round(100 * avg((dltrain.predict(model, pixels) = digit)::int), 1) AS accuracy_pct
FROM digits, digits_model WHERE id % 5 = 0;

\echo '== a few held-out predictions'
SELECT id, digit, dltrain.predict(model, pixels)::int AS predicted,
       round((SELECT max(p) FROM unnest(dltrain.predict_proba(model, pixels)) p)::numeric, 3) AS confidence
FROM digits, digits_model
WHERE id % 5 = 0 AND id <= 50
ORDER BY id;

\echo '== metrics on the held-out rows: dltrain.evaluate'
SELECT e->'accuracy' AS accuracy, round((e->>'log_loss')::numeric, 4) AS log_loss,
       round((e->>'macro_f1')::numeric, 4) AS macro_f1, e->'confusion_matrix'->0 AS zeros_predicted_as
FROM (SELECT dltrain.evaluate(model, pixels, digit) AS e FROM digits, digits_model WHERE id % 5 = 0) q;

\echo '== the same from the table, without caching it: dltrain.fit, stored in dltrain.models'
SELECT epoch, round(loss::numeric, 4) AS loss, round(validation_loss::numeric, 4) AS validation_loss,
       round(validation_metric::numeric, 4) AS validation_accuracy, rows
FROM dltrain.fit('digits', '{pixels}', 'digit',
                 '{"hidden": [64], "epochs": 10, "lr": 0.003, "seed": 1, "validation_fraction": 0.2}',
                 'digits-v1');
SELECT name, relation, features, label, provenance->'rows' AS rows, provenance->'validation_rows' AS held_out
FROM dltrain.models;

\echo '== model selection: three configurations in one statement share one scan and one row cache'
EXPLAIN (VERBOSE, COSTS OFF)
SELECT dltrain.train_mlp(pixels, digit, '{"lr": 0.01, "epochs": 20, "seed": 1}'),
       dltrain.train_mlp(pixels, digit, '{"lr": 0.001, "epochs": 20, "seed": 1}'),
       dltrain.train_mlp(pixels, digit, '{"hidden": [128, 64], "epochs": 20, "seed": 1}')
FROM digits WHERE id % 5 <> 0;
CREATE TEMP TABLE three AS
SELECT dltrain.train_mlp(pixels, digit, '{"lr": 0.01, "epochs": 20, "seed": 1}') AS fast,
       dltrain.train_mlp(pixels, digit, '{"lr": 0.001, "epochs": 20, "seed": 1}') AS slow,
       dltrain.train_mlp(pixels, digit, '{"hidden": [128, 64], "epochs": 20, "seed": 1}') AS deep
FROM digits WHERE id % 5 <> 0;
SELECT round(100 * avg((dltrain.predict(fast, pixels) = digit)::int), 1) AS fast_pct,
       round(100 * avg((dltrain.predict(slow, pixels) = digit)::int), 1) AS slow_pct,
       round(100 * avg((dltrain.predict(deep, pixels) = digit)::int), 1) AS deep_pct
FROM digits, three WHERE id % 5 = 0;

\echo '== grid search: 12 configurations, one read, successive halving, 20% held out for validation'
CREATE VIEW digits_train AS SELECT * FROM digits WHERE id % 5 <> 0;
SELECT rank, configuration->'lr' AS lr, configuration->'hidden' AS hidden,
       round(validation_metric::numeric, 4) AS val_accuracy, round(validation_loss::numeric, 4) AS val_loss,
       epochs, status
FROM dltrain.grid_search('digits_train', '{pixels}', 'digit', '{"epochs": 18, "seed": 1}',
                         '{"lr": [0.03, 0.01, 0.003, 0.001], "hidden": [[32], [64], [128, 64]]}',
                         halving_eta => 3, halving_min_epochs => 2, name => 'digits-grid');
\echo '== the winner (dltrain.latest_model) on the held-out rows'
SELECT round(100 * avg((dltrain.predict(dltrain.latest_model('digits-grid'), pixels) = digit)::int), 1) AS accuracy_pct
FROM digits WHERE id % 5 = 0;
