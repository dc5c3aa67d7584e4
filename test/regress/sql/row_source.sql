-- The engine trains from a row-source interface (src/rowsource.h).  A
-- test-only source of generated rows (src/source_test.c) feeds it, and gives
-- the same model bytes as the aggregate's row cache over a table holding the
-- same rows: the seam carries everything a training needs.
CREATE FUNCTION dltrain_test_row_source(n bigint, d int, classes int, options jsonb)
RETURNS dltrain.model AS '$libdir/dltrain', 'dltrain_test_row_source' LANGUAGE C STRICT;

CREATE TABLE rs AS
SELECT i, ARRAY(SELECT ((i * 37 + d * 11) % 101)::real / 10::real - 5::real
                FROM generate_series(0, 5) d) AS x,
       ((i % 7 + (i / 7) % 3) % 3)::int AS y
FROM generate_series(0, 999) i;

-- logistic and hidden layers, SGD and Adam, normalized or not
SELECT o AS options,
       dltrain_test_row_source(1000, 6, 3, o)::text =
         (SELECT dltrain.train_mlp(x, y, o ORDER BY i)::text FROM rs) AS same_bytes
FROM (VALUES ('{"shuffle": false, "epochs": 3, "batch_size": 32}'::jsonb),
             ('{"shuffle": false, "epochs": 2, "hidden": [16, 8], "optimizer": "sgd", "momentum": 0.9}'),
             ('{"shuffle": false, "epochs": 2, "hidden": [5], "normalize": false, "batch_size": 7}')) v(o);

-- what it cannot do, it says
SELECT dltrain_test_row_source(1000, 6, 3, '{}');
SELECT dltrain_test_row_source(0, 6, 3, '{"shuffle": false}');

DROP TABLE rs;
DROP FUNCTION dltrain_test_row_source(bigint, int, int, jsonb);
