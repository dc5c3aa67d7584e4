-- Bad input: one clear error each.
CREATE TABLE pts AS
SELECT i, ARRAY[i % 7, i % 5]::real[] AS x, i % 2 AS y FROM generate_series(1, 50) i;

-- empty input, and input whose rows are all skipped
SELECT dltrain.train_mlp(x, y) FROM pts WHERE false;
SELECT dltrain.train_mlp(NULL::real[], y) FROM pts;
-- feature arrays of different lengths
SELECT dltrain.train_mlp(CASE WHEN i = 3 THEN ARRAY[1, 2, 3]::real[] ELSE x END, y) FROM pts;
-- multidimensional and empty arrays
SELECT dltrain.train_mlp(ARRAY[[1, 2], [3, 4]]::real[], y) FROM pts;
SELECT dltrain.train_mlp('{}'::real[], y) FROM pts;
-- NULL elements
SELECT dltrain.train_mlp(ARRAY[1, NULL]::real[], y) FROM pts;
-- NaN and infinite features, and double precision values that overflow real
SELECT dltrain.train_mlp(CASE WHEN i = 5 THEN ARRAY[1, 'NaN']::real[] ELSE x END, y) FROM pts;
SELECT dltrain.train_mlp(ARRAY['Infinity', 1]::real[], y) FROM pts;
SELECT dltrain.train_mlp(ARRAY[1, '-Infinity']::float8[], y) FROM pts;
SELECT dltrain.train_mlp(ARRAY[1, 1e300]::float8[], y) FROM pts;
-- NaN and infinite labels
SELECT dltrain.train_mlp(x, CASE WHEN i = 4 THEN 'NaN'::float8 ELSE i END) FROM pts;
SELECT dltrain.train_mlp(x, 'Infinity'::real) FROM pts;
-- a regression label that does not fit in real
SELECT dltrain.train_mlp(x, 1e300::float8) FROM pts;
-- one class only, and more classes than a model supports
SELECT dltrain.train_mlp(x, 1) FROM pts;
SELECT dltrain.train_mlp(ARRAY[i]::real[], i) FROM generate_series(1, 70000) i;
SELECT dltrain.train_mlp(ARRAY[i]::real[], i::text) FROM generate_series(1, 70000) i;

-- options
SELECT dltrain.train_mlp(x, y, '{"epoch": 3}') FROM pts;
SELECT dltrain.train_mlp(x, y, '[1, 2]') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"lr": 0}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"lr": -0.1}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"lr": "fast"}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"batch_size": 0}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"batch_size": 2.5}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"epochs": -1}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"hidden": [8, 0]}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"hidden": [-4]}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"hidden": [100000000]}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"hidden": 16}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"hidden": ["wide"]}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"hidden": [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"activation": "gelu"}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"optimizer": "lbfgs"}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"momentum": 1}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"weight_decay": -1}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"shuffle": "yes"}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"normalize": 1}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"task": "clustering"}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"seed": 1e20}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"init": "xavier"}') FROM pts;
-- a value of the wrong JSON type: the error says what was given
SELECT dltrain.train_mlp(x, y, '{"lr": "0.01"}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"momentum": null}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"weight_decay": true}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"validation_fraction": "0.2"}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"batch_size": "128"}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"epochs": [10]}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"seed": "1"}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"buffer_rows": {"rows": 10}}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"early_stopping": false}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"normalize": "false"}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"hidden": "64"}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"hidden": [8, null]}') FROM pts;
SELECT dltrain.train_mlp(x, y, '{"activation": 1}') FROM pts;
SELECT * FROM dltrain.fit('pts', '{x}', 'y', '{"pages_per_range": "32"}');
-- options that differ between rows
SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', i % 2 + 1)) FROM pts;
SELECT dltrain.train_mlp(x, y, CASE WHEN i < 10 THEN '{}'::jsonb END) FROM pts;

-- a model whose buffers do not fit the budget, and one too large to store
SET dltrain.cache_mem = '2MB';
\set VERBOSITY terse
SELECT dltrain.train_mlp(x, y, '{"hidden": [4096, 4096]}') FROM pts;
\set VERBOSITY default
RESET dltrain.cache_mem;
SET dltrain.cache_mem = '8GB';
SELECT dltrain.train_mlp(x, y, '{"hidden": [65536, 4096]}') FROM pts;
RESET dltrain.cache_mem;
-- (a row cache over its budget spills to disk: see spill.sql)

-- training that diverges
SELECT dltrain.train_mlp(ARRAY[i * 1e18]::real[], (i * 1e18)::float8,
                         '{"normalize": false, "lr": 1000, "optimizer": "sgd", "epochs": 5}')
FROM generate_series(1, 20) i;

-- not as a window function
SELECT dltrain.train_mlp(x, y) OVER () FROM pts;

-- predict with a feature vector of the wrong length, or a bad one
CREATE TABLE pm AS SELECT dltrain.train_mlp(x, y, '{"epochs": 1}') AS m FROM pts;
SELECT dltrain.predict(m, ARRAY[1, 2, 3]::real[]) FROM pm;
SELECT dltrain.predict(m, ARRAY[1]::float8[]) FROM pm;
SELECT dltrain.predict(m, ARRAY[1, NULL]::real[]) FROM pm;
SELECT dltrain.predict_proba(m, ARRAY[1, 'NaN']::real[]) FROM pm;
SELECT dltrain.predict_class(m, ARRAY[[1, 2]]::real[]) FROM pm;
-- STRICT: NULL in, NULL out
SELECT dltrain.predict(m, NULL::real[]) IS NULL AS is_null FROM pm;

-- types 0.1.0 had no overload for
-- (0.2.0: boolean labels and integer[] features resolve; test types has every pair)
SELECT dltrain.train_mlp(x, y::boolean) IS NOT NULL AS trains FROM pts;
SELECT dltrain.train_mlp(x::int[], y) IS NOT NULL AS trains FROM pts;
