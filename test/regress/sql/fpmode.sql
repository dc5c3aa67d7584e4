-- The kernels run with flush-to-zero and denormals-are-zero and restore the
-- caller's floating-point mode before they return, whatever the outcome: the
-- backend's own SQL keeps IEEE subnormals after a training that completes,
-- one that fails mid-epoch, and one that is cancelled.
SELECT '1e-40'::real * 1 AS real_subnormal, '1e-310'::float8 * 1 AS double_subnormal;

CREATE TABLE fp AS
SELECT ARRAY[(i % 7)::real, (i % 3)::real, (i % 5)::real] AS x, (i % 2) AS y
FROM generate_series(1, 100) i;
-- completes (a large learning rate: probabilities underflow)
SELECT dltrain.train_mlp(x, y, '{"epochs": 5, "lr": 1, "optimizer": "sgd", "hidden": []}') IS NOT NULL AS trained FROM fp;
SELECT '1e-40'::real * 1 AS real_subnormal, '1e-310'::float8 * 1 AS double_subnormal;

-- fails mid-epoch: fit reads a view whose label raises on the second pass
CREATE SEQUENCE fp_calls;
CREATE FUNCTION fp_label(int) RETURNS int LANGUAGE plpgsql VOLATILE AS
$$ BEGIN IF nextval('fp_calls') > 150 THEN RAISE EXCEPTION 'the label failed'; END IF; RETURN $1; END $$;
CREATE VIEW fp_view AS SELECT x, fp_label(y) AS y FROM fp;
SELECT count(*) FROM dltrain.fit('fp_view', '{x}', 'y', '{"epochs": 3}');
SELECT '1e-40'::real * 1 AS real_subnormal, '1e-310'::float8 * 1 AS double_subnormal;

-- cancelled by statement_timeout during the epochs
CREATE TABLE fp_big AS
SELECT ARRAY(SELECT ((i * 13 + d) % 17)::real FROM generate_series(1, 64) d) AS x, (i % 10) AS y
FROM generate_series(1, 20000) i;
SET statement_timeout = '300ms';
SELECT dltrain.train_mlp(x, y, '{"epochs": 1000, "hidden": [256, 256]}') FROM fp_big;
RESET statement_timeout;
SELECT '1e-40'::real * 1 AS real_subnormal, '1e-310'::float8 * 1 AS double_subnormal;

DROP VIEW fp_view;
DROP FUNCTION fp_label(int);
DROP SEQUENCE fp_calls;
DROP TABLE fp, fp_big;
