-- dltrain.history(model): the training record, one row per epoch, with the
-- training loss drawn as a bar (40 cells at the model's largest loss, eighths
-- of a cell in Unicode block characters).
SET extra_float_digits = 0;

-- deterministic rows (no random()): two interleaved half-moons of a sort
CREATE TABLE hpts AS
SELECT i, ARRAY[(i % 17) / 8.0 - 1, ((i * 7) % 23) / 11.0 - 1]::real[] AS x
FROM generate_series(1, 400) i;
ALTER TABLE hpts ADD COLUMN y integer, ADD COLUMN t double precision;
UPDATE hpts SET y = (x[1] * x[2] > 0)::int, t = x[1] * 2 - x[2];

CREATE TABLE hmodels AS
SELECT dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 10, "lr": 0.05, "seed": 3}') AS plain,
       dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 10, "lr": 0.05, "seed": 3, "validation_fraction": 0.25}') AS validated,
       dltrain.train_mlp(x, t, '{"hidden": [8], "epochs": 6, "lr": 0.05, "seed": 3, "validation_fraction": 0.25}') AS regression
FROM hpts;

-- without validation: the losses and their bars, validation columns NULL
SELECT epoch, round(loss::numeric, 4) AS loss, validation_loss, validation_metric, bar
FROM hmodels, dltrain.history(plain);

-- with validation: classification reports the validation accuracy
SELECT epoch, round(loss::numeric, 4) AS loss, round(validation_loss::numeric, 4) AS validation_loss,
       round(validation_metric::numeric, 4) AS validation_accuracy, bar
FROM hmodels, dltrain.history(validated);

-- regression reports the validation RMSE (the square root of the validation loss)
SELECT epoch, round(loss::numeric, 4) AS loss, round(validation_loss::numeric, 4) AS validation_loss,
       round(validation_metric::numeric, 4) AS validation_rmse,
       abs(validation_metric - sqrt(validation_loss)) < 1e-5 AS is_rmse, bar
FROM hmodels, dltrain.history(regression);

-- the columns are describe()'s arrays, epoch by epoch, exactly
SELECT bool_and(h.loss = (d->'loss'->>(h.epoch - 1))::float8
                AND h.validation_loss = (d->'validation_loss'->>(h.epoch - 1))::float8
                AND h.validation_metric = (d->'validation_accuracy'->>(h.epoch - 1))::float8) AS same_as_describe,
       count(*) = (d->>'epochs')::int AS one_row_per_epoch
FROM hmodels, dltrain.describe(validated) AS d, dltrain.history(validated) AS h
GROUP BY d;

-- the bar: round(320 * loss / largest loss) eighths, whole cells first, then
-- the partial cell; the largest loss fills exactly 40 cells
SELECT bool_and(char_length(bar) = e / 8 + (e % 8 > 0)::int) AS lengths,
       bool_and(ltrim(bar, chr(9608)) = CASE WHEN e % 8 = 0 THEN '' ELSE chr(9616 - e % 8) END) AS partial_cells,
       bool_and(bar = repeat(chr(9608), 40) OR loss < largest) AS largest_is_40
FROM (SELECT h.*, round(320 * loss / max(loss) OVER ())::int AS e, max(loss) OVER () AS largest
      FROM hmodels, dltrain.history(regression) h) s;

-- early stopping: one row per epoch actually run
CREATE TABLE hstopped AS
SELECT dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 200, "lr": 0.2, "seed": 3, "validation_fraction": 0.25, "early_stopping": 2}') AS m
FROM hpts;
SELECT (SELECT count(*) FROM dltrain.history(m)) = (dltrain.describe(m)->>'epochs')::int AS rows_are_epochs_run,
       (SELECT count(*) FROM dltrain.history(m)) < 200 AS stopped_early
FROM hstopped;

-- fit's own per-epoch rows and the history of the model it returns agree
SET client_min_messages = warning;
CREATE TABLE hfit AS
SELECT * FROM dltrain.fit('hpts', '{x}', 'y', '{"hidden": [8], "epochs": 4, "lr": 0.05, "seed": 3, "validation_fraction": 0.25}');
RESET client_min_messages;
SELECT f.epoch, abs(f.loss - h.loss) < 1e-6 AS loss, abs(f.validation_loss - h.validation_loss) < 1e-6 AS validation_loss,
       abs(f.validation_metric - h.validation_metric) < 1e-6 AS validation_metric
FROM hfit f
FULL JOIN dltrain.history((SELECT model FROM hfit WHERE model IS NOT NULL)) h ON h.epoch = f.epoch
ORDER BY 1;

-- a model with no training record (imported) has no rows; NULL gives none
SELECT count(*) AS imported_rows
FROM hmodels, dltrain.history(dltrain.import(dltrain.export(plain)));
SELECT count(*) AS null_rows FROM dltrain.history(NULL);

-- how the function is declared
SELECT provolatile, proparallel, proisstrict, proretset, proconfig
FROM pg_proc WHERE oid = 'dltrain.history(dltrain.model)'::regprocedure;
SELECT obj_description('dltrain.history(dltrain.model)'::regprocedure, 'pg_proc') IS NOT NULL AS has_comment;

-- a database whose encoding has no block characters gets '#' in whole cells
-- (the extension script is ASCII, so CREATE EXTENSION works there too)
\set regress_db :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS regress_dltrain_latin1;
RESET client_min_messages;
CREATE DATABASE regress_dltrain_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c regress_dltrain_latin1
CREATE EXTENSION dltrain;
SELECT epoch, bar
FROM dltrain.history((SELECT dltrain.train_mlp(ARRAY[i % 5, i % 3]::real[], (i % 5 > 2)::int, '{"hidden": [4], "epochs": 4, "lr": 0.1, "seed": 1}')
                      FROM generate_series(1, 100) i));
\c :regress_db
DROP DATABASE regress_dltrain_latin1;

DROP TABLE hpts, hmodels, hstopped, hfit;
