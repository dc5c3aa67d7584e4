-- Training end to end: tasks, label types, options, reproducibility.
SET extra_float_digits = 0;

-- concentric circles: class 0 inside radius 0.8, class 1 in the ring 1.2-2.0
SELECT setseed(0.42);
CREATE TABLE circles AS
SELECT i, ARRAY[r * cos(a), r * sin(a)]::real[] AS x, (i % 2) AS y
FROM (SELECT i, random() * 2 * pi() AS a,
             CASE WHEN i % 2 = 0 THEN random() * 0.8 ELSE 1.2 + random() * 0.8 END AS r
      FROM generate_series(1, 1000) i) s;

CREATE TABLE models (name text PRIMARY KEY, m dltrain.model);

INSERT INTO models
SELECT 'mlp', dltrain.train_mlp(x, y, '{"hidden": [16], "epochs": 30, "lr": 0.01, "seed": 7}') FROM circles;
INSERT INTO models
SELECT 'linear', dltrain.train_mlp(x, y, '{"hidden": [], "epochs": 30, "lr": 0.01, "seed": 7}') FROM circles;

-- the MLP learns the nonlinear boundary, a linear model cannot
SELECT name, avg((dltrain.predict(m, x) = y)::int) >= 0.95 AS above_95,
       avg((dltrain.predict(m, x) = y)::int) < 0.75 AS below_75
FROM circles, models GROUP BY name ORDER BY name;

-- what the model holds
SELECT d->'task' AS task, d->'layers' AS layers, d->'classes' AS classes,
       d->'rows_used' AS rows_used, d->'rows_skipped' AS rows_skipped,
       d->'epochs' AS epochs, jsonb_array_length(d->'loss') AS losses,
       d->'parameters' AS parameters, d->'label_type' AS label_type
FROM (SELECT dltrain.describe(m) AS d FROM models WHERE name = 'mlp') s;
SELECT dltrain.describe(m)->'options' FROM models WHERE name = 'mlp';
-- the loss goes down
SELECT (d->'loss'->>29)::float < (d->'loss'->>0)::float / 4 AS loss_fell
FROM (SELECT dltrain.describe(m) AS d FROM models WHERE name = 'mlp') s;

-- same rows in a different physical order: byte-identical model
CREATE TABLE circles_shuffled AS SELECT * FROM circles ORDER BY md5(i::text);
SELECT (SELECT dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 3}')::text FROM circles)
     = (SELECT dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 3}')::text FROM circles_shuffled)
  AS identical;
-- a different seed gives a different model
SELECT (SELECT dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 3, "seed": 1}')::text FROM circles)
     = (SELECT dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 3, "seed": 2}')::text FROM circles)
  AS identical;

-- every label type picks its task; classes keep their original values
CREATE TABLE labels AS
SELECT x,
       (CASE WHEN y = 0 THEN -3 ELSE 42 END)::smallint AS l_int2,
       (CASE WHEN y = 0 THEN 7 ELSE -3 END)::integer AS l_int4,
       (CASE WHEN y = 0 THEN 42 ELSE 9000000000 END)::bigint AS l_int8,
       (CASE WHEN y = 0 THEN 'inner' ELSE 'outer' END)::text AS l_text,
       (x[1] * 2 + 1)::real AS l_float4,
       (x[1] * 2 + 1)::double precision AS l_float8
FROM circles;
CREATE TABLE typed AS
SELECT 'smallint' AS t, dltrain.train_mlp(x, l_int2, '{"hidden": [16], "epochs": 20, "lr": 0.01}') AS m FROM labels
UNION ALL
SELECT 'integer', dltrain.train_mlp(x, l_int4, '{"hidden": [16], "epochs": 20, "lr": 0.01}') FROM labels
UNION ALL
SELECT 'bigint', dltrain.train_mlp(x, l_int8, '{"hidden": [16], "epochs": 20, "lr": 0.01}') FROM labels
UNION ALL
SELECT 'text', dltrain.train_mlp(x, l_text, '{"hidden": [16], "epochs": 20, "lr": 0.01}') FROM labels
UNION ALL
SELECT 'real', dltrain.train_mlp(x, l_float4, '{"hidden": [16], "epochs": 20, "lr": 0.01}') FROM labels
UNION ALL
SELECT 'double precision', dltrain.train_mlp(x, l_float8, '{"hidden": [16], "epochs": 20, "lr": 0.01}') FROM labels;
SELECT t, dltrain.describe(m)->>'task' AS task, dltrain.describe(m)->'classes' AS classes,
       dltrain.describe(m)->>'label_type' AS label_type
FROM typed ORDER BY t;

-- predict returns the original class values (not 0..k-1)
SELECT t, array_agg(DISTINCT dltrain.predict(m, x) ORDER BY dltrain.predict(m, x)) AS predicted
FROM typed, labels WHERE t IN ('smallint', 'integer', 'bigint') GROUP BY t ORDER BY t;
SELECT t, avg((dltrain.predict(m, x) = CASE t WHEN 'smallint' THEN l_int2
                                             WHEN 'integer' THEN l_int4
                                             ELSE l_int8 END)::int) > 0.95 AS accurate
FROM typed, labels WHERE t IN ('smallint', 'integer', 'bigint') GROUP BY t ORDER BY t;
SELECT dltrain.predict_class(m, x) AS class, count(*) > 400 AS most_rows_right
FROM typed, labels WHERE t = 'text' AND dltrain.predict_class(m, x) = l_text GROUP BY 1 ORDER BY 1;
SELECT dltrain.predict_class(m, ARRAY[0.0, 0.1]::real[]) FROM typed WHERE t = 'bigint';
-- a text-labelled model cannot answer in double precision
SELECT dltrain.predict(m, ARRAY[0.0, 0.1]::real[]) FROM typed WHERE t = 'text';
-- probabilities follow describe()'s class order and sum to 1
SELECT array_length(p, 1) AS n, round((p[1] + p[2])::numeric, 5) AS total, p[1] > p[2] AS inner_first
FROM (SELECT dltrain.predict_proba(m, ARRAY[0.0, 0.1]::real[]) AS p FROM typed WHERE t = 'text') s;
-- regression fits the linear target
SELECT t, avg(abs(dltrain.predict(m, x) - l_float8)) < 0.1 AS close
FROM typed, labels WHERE t IN ('real', 'double precision') GROUP BY t ORDER BY t;
SELECT dltrain.predict_class(m, ARRAY[0.0, 0.1]::real[]) FROM typed WHERE t = 'real';
SELECT dltrain.predict_proba(m, ARRAY[0.0, 0.1]::real[]) FROM typed WHERE t = 'real';

-- an explicit task overrides the label type
SELECT dltrain.describe(dltrain.train_mlp(x, l_int4, '{"task": "regression", "epochs": 1}'))->>'task' FROM labels;
SELECT dltrain.describe(dltrain.train_mlp(x, (l_float8 > 1)::int::real, '{"task": "classification", "epochs": 1}'))->'classes' FROM labels;
SELECT dltrain.train_mlp(x, l_text, '{"task": "regression"}') FROM labels;

-- double precision[] features and the default options
SELECT dltrain.describe(dltrain.train_mlp(x::float8[], y))->'options' FROM circles;
SELECT dltrain.predict(m, ARRAY[0.0, 0.1]::float8[]) FROM models WHERE name = 'mlp';

-- rows with NULL features or label are skipped and counted
SELECT d->'rows_used' AS used, d->'rows_skipped' AS skipped
FROM (SELECT dltrain.describe(dltrain.train_mlp(CASE WHEN i % 10 = 0 THEN NULL ELSE x END,
                                                CASE WHEN i % 25 = 0 THEN NULL ELSE y END,
                                                '{"epochs": 1}')) AS d
      FROM circles) s;

-- zero-variance features do not divide by zero
SELECT d->'feature_scale' AS scale, d->'feature_mean' AS mean
FROM (SELECT dltrain.describe(dltrain.train_mlp(ARRAY[1.5, i % 2]::real[], i % 2, '{"epochs": 2, "hidden": []}')) AS d
      FROM generate_series(1, 100) i) s;

-- without normalization, no statistics are stored
SELECT dltrain.describe(dltrain.train_mlp(x, y, '{"normalize": false, "epochs": 1}')) ? 'feature_mean' FROM circles;

-- each optimizer and activation trains
CREATE TABLE opt_models AS
SELECT o, a, (SELECT dltrain.train_mlp(x, y, jsonb_build_object('optimizer', o, 'activation', a,
                  'hidden', '[16]'::jsonb, 'epochs', 40, 'lr', CASE o WHEN 'sgd' THEN 0.2 ELSE 0.01 END))
              FROM circles) AS m
FROM unnest(ARRAY['sgd', 'adam', 'adamw']) o, unnest(ARRAY['relu', 'tanh', 'sigmoid']) a;
SELECT o, a, avg((dltrain.predict(m, x) = y)::int) > 0.9 AS learned
FROM opt_models, circles GROUP BY o, a ORDER BY o, a;

-- many models in one query (GROUP BY), each on its own rows
SELECT g, dltrain.describe(dltrain.train_mlp(x, y, '{"epochs": 1}'))->'rows_used' AS rows
FROM (SELECT i % 3 AS g, x, y FROM circles) s GROUP BY g ORDER BY g;

-- PyTorch's nn.Linear initialization, for parity with PyTorch
SELECT dltrain.describe(m)->'options'->>'init' AS init, avg((dltrain.predict(m, x) = y)::int) > 0.95 AS learned
FROM (SELECT dltrain.train_mlp(x, y, '{"hidden": [16], "epochs": 30, "lr": 0.01, "init": "pytorch"}') AS m FROM circles) q, circles
GROUP BY 1;

-- rows skipped for NULL features or labels: one NOTICE per call site and
-- query, not one per group
SELECT count(m) AS groups FROM (
    SELECT g, dltrain.train_mlp(CASE WHEN i % 10 = 0 THEN NULL ELSE ARRAY[i % 7, i % 3]::real[] END,
                                (i / 3) % 2, '{"epochs": 1}') AS m
    FROM (SELECT i, i % 3 AS g FROM generate_series(1, 600) i) s GROUP BY g) q;
-- an integer label with very many values looks like a quantity: a WARNING
-- (not when classification is asked for)
SELECT dltrain.train_mlp(ARRAY[i % 7]::real[], i, '{"epochs": 1, "hidden": []}') IS NOT NULL AS trained
FROM generate_series(1, 1500) i;
SELECT dltrain.train_mlp(ARRAY[i % 7]::real[], i, '{"epochs": 1, "hidden": [], "task": "classification"}') IS NOT NULL AS trained
FROM generate_series(1, 1500) i;
SELECT dltrain.train_mlp(ARRAY[i % 7]::real[], i % 150, '{"epochs": 1, "hidden": []}') IS NOT NULL AS trained
FROM generate_series(1, 10000) i;
