-- The types real tables have: every pair of a feature array type and a label
-- type resolves to one train_mlp (and train_mlp_multi, evaluate), and
-- predict takes every feature type.
SET client_min_messages = warning;
CREATE TABLE ty AS
SELECT i, ARRAY[i % 7, i % 5, (i * 13) % 11] AS xi, i % 2 AS c, (i % 7) * 0.5 + i % 5 AS t
FROM generate_series(1, 120) i;

-- every pair: the aggregate resolves, trains, and records the label type;
-- every feature type predicts and evaluates the model
DO $pairs$
DECLARE
    f text;
    l text;
    m dltrain.model;
    d jsonb;
    p boolean;
    e jsonb;
    n integer := 0;
BEGIN
    FOREACH f IN ARRAY ARRAY['real[]', 'double precision[]', 'smallint[]', 'integer[]', 'bigint[]', 'numeric[]'] LOOP
        FOREACH l IN ARRAY ARRAY['smallint', 'integer', 'bigint', 'text', 'real', 'double precision', 'numeric', 'boolean'] LOOP
            EXECUTE format('SELECT dltrain.train_mlp(xi::%s, %s::%s, ''{"epochs": 2, "hidden": [4]}'') FROM ty',
                           f, CASE WHEN l = 'boolean' THEN 'c::boolean' WHEN l IN ('real', 'double precision', 'numeric') THEN 't' ELSE 'c' END, l)
                INTO m;
            d := dltrain.describe(m);
            IF d ->> 'label_type' <> l THEN
                RAISE EXCEPTION 'train_mlp(%, %) recorded label type %', f, l, d ->> 'label_type';
            END IF;
            IF (d ->> 'task') <> (CASE WHEN l IN ('real', 'double precision', 'numeric') THEN 'regression' ELSE 'classification' END) THEN
                RAISE EXCEPTION 'train_mlp(%, %) trained %', f, l, d ->> 'task';
            END IF;
            EXECUTE format('SELECT (dltrain.train_mlp_multi(xi::%s, %s::%s, ''[{"epochs": 1}]''))[1] IS NOT NULL FROM ty',
                           f, CASE WHEN l = 'boolean' THEN 'c::boolean' WHEN l IN ('real', 'double precision', 'numeric') THEN 't' ELSE 'c' END, l);
            EXECUTE format('SELECT dltrain.%s($1, ARRAY[1, 2, 3]::%s) IS NOT NULL', CASE WHEN l = 'text' THEN 'predict_class' ELSE 'predict' END, f) INTO p USING m;
            EXECUTE format('SELECT dltrain.evaluate($1, xi::%s, %s::%s) FROM ty', f,
                           CASE WHEN l = 'boolean' THEN 'c::boolean' WHEN l IN ('real', 'double precision', 'numeric') THEN 't' ELSE 'c' END, l)
                INTO e USING m;
            IF (e ->> 'rows')::int <> 120 THEN
                RAISE EXCEPTION 'evaluate(%, %) counted % rows', f, l, e ->> 'rows';
            END IF;
            n := n + 1;
        END LOOP;
    END LOOP;
    RAISE WARNING '% pairs of feature and label type train, predict and evaluate', n;
END
$pairs$;

-- what resolves without casts: a list of numbers (psycopg2 sends numeric[]),
-- integer arrays, boolean and numeric labels
SELECT dltrain.describe(dltrain.train_mlp(ARRAY[i % 3, i % 5] , i % 2 = 0, '{"epochs": 1}')) -> 'classes' AS classes
FROM generate_series(1, 40) i;
SELECT dltrain.describe(dltrain.train_mlp(ARRAY[1.5, i % 5], (i % 4) * 0.25, '{"epochs": 1}')) ->> 'label_type' AS label_type
FROM generate_series(1, 40) i;
-- numeric labels are classes when asked
SELECT dltrain.describe(dltrain.train_mlp(ARRAY[1.5, i % 5], (i % 2) * 0.5, '{"epochs": 1, "task": "classification"}')) -> 'classes' AS classes
FROM generate_series(1, 40) i;

-- boolean labels: predict_class says false/true, predict 0/1
CREATE TABLE tyb AS
SELECT dltrain.train_mlp(xi, c = 1, '{"epochs": 30, "seed": 3}') AS m FROM ty;
SELECT dltrain.predict_class(m, ARRAY[1, 0, 4]) IN ('false', 'true') AS is_text_class,
       dltrain.predict(m, ARRAY[1, 0, 4]::numeric[]) IN (0, 1) AS is_0_1,
       array_length(dltrain.predict_proba(m, ARRAY[1, 0, 4]::bigint[]), 1) AS n_proba
FROM tyb;
SELECT dltrain.describe(dltrain.import(dltrain.export(m))) -> 'classes' AS reimported FROM tyb;

-- conversion errors name the row and element
SELECT dltrain.train_mlp(ARRAY[1, 'NaN']::numeric[], 1) FROM generate_series(1, 3);
SELECT dltrain.train_mlp(ARRAY[1, 'Infinity']::numeric[], 1) FROM generate_series(1, 3);
SELECT dltrain.train_mlp(ARRAY[1, 1e300]::numeric[], 1) FROM generate_series(1, 3);
SELECT dltrain.predict(m, ARRAY[1, 'NaN', 2]::numeric[]) FROM tyb;
-- refused: boolean regression, labels and features of other types (what to cast to)
SELECT dltrain.train_mlp(xi, c = 1, '{"task": "regression"}') FROM ty;
CREATE TABLE tyo AS SELECT i, ARRAY['a']::text[] AS s, now() AS ts, i % 2 AS c FROM generate_series(1, 4) i;
SELECT * FROM dltrain.fit('tyo', '{s}', 'c', '{"epochs": 1}');
SELECT * FROM dltrain.fit('tyo', '{i}', 'ts', '{"epochs": 1}');

-- fit takes integer and numeric array columns, boolean and numeric labels
CREATE TABLE tyf AS SELECT i, xi::numeric[] AS xn, c = 1 AS b, t::numeric AS tn FROM ty;
SELECT dltrain.describe(model) ->> 'label_type' AS label_type, dltrain.describe(model) ->> 'task' AS task
FROM dltrain.fit('tyf', '{xn}', 'b', '{"epochs": 2}') WHERE model IS NOT NULL;
SELECT dltrain.describe(model) ->> 'label_type' AS label_type, dltrain.describe(model) ->> 'task' AS task
FROM dltrain.fit('tyf', '{xn}', 'tn', '{"epochs": 2}') WHERE model IS NOT NULL;
SELECT dltrain.describe(model) ->> 'label_type' AS label_type, dltrain.describe(model) ->> 'task' AS task
FROM dltrain.fit('ty', '{xi}', 't', '{"epochs": 2}') WHERE model IS NOT NULL;
DROP TABLE ty, tyb, tyo, tyf;
