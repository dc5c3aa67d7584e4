-- Training that continues: a model trained with "checkpoint": true carries
-- what continuing needs, and "resume" continues its run to the same bytes
-- as the uninterrupted training of the same total epochs.
CREATE TABLE ck AS
SELECT ARRAY[sin(i)::real, cos(i * 0.3)::real, ((i * 7) % 11)::real] AS x,
       (CASE WHEN sin(i) > cos(i * 0.3) THEN 1 ELSE 0 END + (i % 5 = 0)::int) AS y,
       (sin(i) + 0.5 * cos(i * 0.3))::float8 AS t
FROM generate_series(1, 900) i;

-- a model without the option stays as small as before, and says so
SELECT dltrain.describe(m)->'format_version' AS format, dltrain.describe(m)->'can_continue' AS can_continue
FROM (SELECT dltrain.train_mlp(x, y, '{"epochs": 1}') m FROM ck) s;
SELECT dltrain.describe(m)->'format_version' AS format, dltrain.describe(m)->'can_continue' AS can_continue,
       dltrain.describe(m)->'checkpoint'->'epoch' AS epoch,
       (dltrain.describe(m)->'checkpoint'->>'optimizer_steps')::int > 0 AS stepped
FROM (SELECT dltrain.train_mlp(x, y, '{"epochs": 2, "checkpoint": true}') m FROM ck) s;

-- 3 epochs, then 4 more, against 7 at once: SGD with momentum, Adam, AdamW;
-- with validation and early stopping; classification and regression
CREATE TABLE ck_cases (n int, o jsonb);
INSERT INTO ck_cases VALUES
  (1, '{"optimizer": "sgd", "momentum": 0.9, "lr": 0.05, "hidden": [8]}'),
  (2, '{"optimizer": "adam", "hidden": [8, 4], "validation_fraction": 0.2}'),
  (3, '{"optimizer": "adamw", "weight_decay": 0.01, "validation_fraction": 0.2, "early_stopping": 2}'),
  (4, '{"optimizer": "adam", "batch_size": 50, "shuffle": false}');
CREATE TABLE ck_first AS
SELECT n, (SELECT dltrain.train_mlp(x, y, o || '{"epochs": 3, "checkpoint": true}') FROM ck) AS m
FROM ck_cases;
SELECT c.n,
       (SELECT dltrain.train_mlp(x, y, c.o || jsonb_build_object('epochs', 7, 'resume', jsonb_build_object('model', f.m::text))) FROM ck)::text
     = (SELECT dltrain.train_mlp(x, y, c.o || '{"epochs": 7}') FROM ck)::text AS same_bytes
FROM ck_cases c JOIN ck_first f USING (n) ORDER BY n;
-- a continued checkpoint continues again: 3 + 2 (checkpoint) + 2 = 7
SELECT c.n,
       (SELECT dltrain.train_mlp(x, y, c.o || jsonb_build_object('epochs', 7, 'resume', jsonb_build_object('model', m5::text))) FROM ck)::text
     = (SELECT dltrain.train_mlp(x, y, c.o || '{"epochs": 7}') FROM ck)::text AS same_bytes
FROM ck_cases c JOIN ck_first f USING (n),
     LATERAL (SELECT dltrain.train_mlp(x, y, c.o || jsonb_build_object('epochs', 5, 'checkpoint', true, 'resume', jsonb_build_object('model', f.m::text))) m5 FROM ck) r
ORDER BY n;
-- regression
SELECT (SELECT dltrain.train_mlp(x, t, jsonb_build_object('epochs', 4, 'resume', jsonb_build_object('model', m::text))) FROM ck)::text
     = (SELECT dltrain.train_mlp(x, t, '{"epochs": 4}') FROM ck)::text AS regression_same_bytes
FROM (SELECT dltrain.train_mlp(x, t, '{"epochs": 2, "checkpoint": true}') m FROM ck) s;

-- merged: two resumed calls in one statement, each the bytes of its own
-- uninterrupted training
SET dltrain.fusion = off;
SELECT a::text = (SELECT dltrain.train_mlp(x, y, '{"epochs": 5, "lr": 0.01}') FROM ck)::text AS first_same,
       b::text = (SELECT dltrain.train_mlp(x, y, '{"epochs": 5, "lr": 0.003}') FROM ck)::text AS second_same
FROM (SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', 5, 'lr', 0.01, 'resume', jsonb_build_object('model', m1::text))) a,
             dltrain.train_mlp(x, y, jsonb_build_object('epochs', 5, 'lr', 0.003, 'resume', jsonb_build_object('model', m2::text))) b
      FROM ck, (SELECT dltrain.train_mlp(x, y, '{"epochs": 2, "lr": 0.01, "checkpoint": true}') m1,
                       dltrain.train_mlp(x, y, '{"epochs": 2, "lr": 0.003, "checkpoint": true}') m2 FROM ck) c) s;
RESET dltrain.fusion;

-- spilled: the two-level shuffle continues where it was (DEBUG1 says it spills)
SET jit = off;
CREATE TABLE ck_big AS
SELECT ARRAY[sin(i)::real, cos(i * 0.3)::real, ((i * 7) % 11)::real] AS x, (i % 3) AS y
FROM generate_series(1, 6000) i;
SET dltrain.cache_mem = '256kB';
CREATE TEMP TABLE ck_spilled AS
SELECT dltrain.train_mlp(x, y, '{"epochs": 2, "batch_size": 16, "validation_fraction": 0.1, "checkpoint": true}') m FROM ck_big;
SET client_min_messages = debug1;
SELECT (SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', 4, 'batch_size', 16, 'validation_fraction', 0.1, 'resume', jsonb_build_object('model', m::text))) FROM ck_big)::text
     = (SELECT dltrain.train_mlp(x, y, '{"epochs": 4, "batch_size": 16, "validation_fraction": 0.1}') FROM ck_big)::text AS spilled_same_bytes
FROM ck_spilled;
RESET client_min_messages;
RESET dltrain.cache_mem;

-- fit: the block-shuffled reads and the shuffle buffer continue too
SELECT (SELECT model FROM dltrain.fit('ck', '{x}', 'y', jsonb_build_object('epochs', 5, 'buffer_rows', 100, 'validation_fraction', 0.2,
                                        'resume', jsonb_build_object('model', m::text))) WHERE model IS NOT NULL)::text
     = (SELECT model FROM dltrain.fit('ck', '{x}', 'y', '{"epochs": 5, "buffer_rows": 100, "validation_fraction": 0.2}') WHERE model IS NOT NULL)::text AS fit_same_bytes
FROM (SELECT model AS m FROM dltrain.fit('ck', '{x}', 'y', '{"epochs": 2, "buffer_rows": 100, "validation_fraction": 0.2, "checkpoint": true}') WHERE model IS NOT NULL) s;

-- resume by catalog name
SELECT count(*) FROM dltrain.fit('ck', '{x}', 'y', '{"epochs": 2, "checkpoint": true}', name => 'ck-run');
SELECT epoch FROM dltrain.fit('ck', '{x}', 'y', '{"epochs": 3, "resume": "ck-run"}') ORDER BY epoch;

-- refusals: what changed is named
SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', 4, 'resume', jsonb_build_object('model', m::text)))
FROM ck, (SELECT dltrain.train_mlp(x, y, '{"epochs": 2}') m FROM ck) s;
CREATE TEMP TABLE ck_m AS SELECT dltrain.train_mlp(x, y, '{"epochs": 2, "checkpoint": true}') m FROM ck;
SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', 4, 'lr', 0.5, 'resume', jsonb_build_object('model', m::text))) FROM ck, ck_m;
SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', 1, 'resume', jsonb_build_object('model', m::text))) FROM ck, ck_m;
SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', 4, 'resume', jsonb_build_object('model', m::text))) FROM ck, ck_m WHERE x[1] > -0.99;
SET dltrain.threads = 2;
SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', 4, 'resume', jsonb_build_object('model', m::text))) FROM ck, ck_m;
RESET dltrain.threads;
SELECT dltrain.train_mlp(x, y, '{"resume": 42}') FROM ck;
SELECT dltrain.train_mlp(x, y, '{"resume": "no such model"}') FROM ck;

-- warm start: a new run from a model's weights, statistics and classes
-- (and its optimizer state when it carries a checkpoint), on other rows
CREATE TEMP TABLE ck_base AS
SELECT dltrain.train_mlp(x, y, '{"epochs": 3, "hidden": [6]}') AS m FROM ck WHERE x[3] < 5;
SELECT dltrain.describe(w)->'layers' AS layers, dltrain.describe(w)->'epochs' AS epochs,
       dltrain.describe(w)->'feature_mean' = dltrain.describe(m)->'feature_mean' AS same_statistics,
       dltrain.describe(w)->'classes' AS classes
FROM ck_base, LATERAL (SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', 2, 'warm_start', jsonb_build_object('model', m::text))) w
                       FROM ck WHERE x[3] >= 5) s;
-- it starts where the model was: after 0 more epochs (epochs 0) the weights are the model's
SELECT (SELECT dltrain.predict_proba(w, ARRAY[0.1, 0.2, 3]::real[]) = dltrain.predict_proba(m, ARRAY[0.1, 0.2, 3]::real[])
        FROM (SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', 0, 'warm_start', jsonb_build_object('model', m::text))) w FROM ck) s) AS same_start
FROM ck_base;
-- by catalog name; a subset of the classes is fine, the model keeps all of them
SELECT count(*) FROM dltrain.fit('ck', '{x}', 'y', '{"epochs": 1, "hidden": [6]}', name => 'ck-base');
SELECT dltrain.describe(dltrain.train_mlp(x, y, '{"epochs": 1, "warm_start": "ck-base"}'))->'classes' AS classes
FROM ck WHERE y < 2;
SELECT (SELECT count(*) FROM dltrain.fit('ck', '{x}', 'y', '{"epochs": 2, "warm_start": "ck-base"}')) AS fit_rows;
-- a network imported from PyTorch's layout warm-starts too
CREATE TEMP TABLE ck_imported AS SELECT dltrain.import('{"format": "dltrain.mlp", "format_version": 1, "task": "classification",
  "activation": "relu", "inputs": 2, "outputs": 2, "label_type": "smallint",
  "layers": [{"in": 2, "out": 2, "weight": [[1, 0], [0, 1]], "bias": [0, 0]}],
  "normalization": {"mean": [0, 1], "scale": [1, 2]}, "classes": [-1, 7]}'::jsonb) AS m;
SELECT dltrain.describe(w)->'classes' AS classes, dltrain.describe(w)->'epochs' AS epochs,
       dltrain.describe(w)->'feature_scale' AS scale
FROM ck_imported, LATERAL (SELECT dltrain.train_mlp(x[1:2], (CASE WHEN y = 0 THEN -1 ELSE 7 END)::smallint,
                                                     jsonb_build_object('epochs', 2, 'warm_start', jsonb_build_object('model', m::text))) w
                           FROM ck) s;
-- what does not fit is named
SELECT dltrain.train_mlp(x[1:2], y, jsonb_build_object('warm_start', jsonb_build_object('model', m::text))) FROM ck, ck_base;
SELECT dltrain.train_mlp(x, t, jsonb_build_object('warm_start', jsonb_build_object('model', m::text))) FROM ck, ck_base;
SELECT dltrain.train_mlp(x, y::bigint, jsonb_build_object('warm_start', jsonb_build_object('model', m::text))) FROM ck, ck_base;
SELECT dltrain.train_mlp(x, y::text, jsonb_build_object('warm_start', jsonb_build_object('model', m::text))) FROM ck, ck_base;
SELECT dltrain.train_mlp(x, y + 5, jsonb_build_object('warm_start', jsonb_build_object('model', m::text))) FROM ck, ck_base;
SELECT dltrain.train_mlp(x, y, jsonb_build_object('hidden', '[3]'::jsonb, 'warm_start', jsonb_build_object('model', m::text))) FROM ck, ck_base;
SELECT dltrain.train_mlp(x, y, jsonb_build_object('resume', jsonb_build_object('model', m::text), 'warm_start', jsonb_build_object('model', m::text))) FROM ck, ck_base;

DELETE FROM dltrain.models WHERE name IN ('ck-run', 'ck-base');
DROP TABLE ck, ck_big, ck_cases, ck_first;
