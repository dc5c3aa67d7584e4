-- fit(), train_mlp and grid_search hold out exactly the same rows for the
-- same data and fraction (one rule: src/order.h), in any physical order,
-- in memory or spilled.  Each training names the rows it holds out at
-- DEBUG1: their count and the sum of their content hashes.
CREATE TABLE ho AS
SELECT ARRAY[(i % 17)::real, (i % 5)::real, (i % 3)::real] AS x, (i % 4)::int AS y,
       ARRAY[(i % 17)::real] AS v, (i % 3)::float8 AS t
FROM generate_series(1, 3000) i;
CREATE TABLE ho_reversed AS SELECT * FROM ho ORDER BY y DESC, x DESC;

SET client_min_messages = debug1;
-- classification
SELECT count(*) FROM dltrain.fit('ho', '{x}', 'y', '{"validation_fraction": 0.25, "epochs": 1}');
SELECT dltrain.train_mlp(x, y, '{"validation_fraction": 0.25, "epochs": 1}') IS NOT NULL FROM ho;
SELECT dltrain.train_mlp(x, y, '{"validation_fraction": 0.25, "epochs": 1}') IS NOT NULL FROM ho_reversed;
SELECT count(*) FROM dltrain.grid_search('ho', '{x}', 'y', '{"epochs": 1}', '{"lr": [0.01]}', 0.25);
-- a spilled cache (it says so at DEBUG1) holds out the same rows
SET dltrain.cache_mem = '384kB';
SELECT dltrain.train_mlp(x, y, '{"validation_fraction": 0.25, "epochs": 1}') IS NOT NULL FROM ho;
RESET dltrain.cache_mem;
-- regression: the label's value enters the hash the same way everywhere
SELECT count(*) FROM dltrain.fit('ho', '{v}', 't', '{"validation_fraction": 0.5, "epochs": 1}');
SELECT dltrain.train_mlp(v, t, '{"validation_fraction": 0.5, "epochs": 1}') IS NOT NULL FROM ho_reversed;
RESET client_min_messages;

-- a model that never predicts some class on the held-out rows says so (an
-- imbalanced table: 5% positives that the features barely tell apart), and
-- a balanced one does not
CREATE TABLE imb AS
SELECT ARRAY[((i * 7919) % 1000)::real / 1000, ((i * 104729) % 1000)::real / 1000] AS x,
       (i % 20 = 0)::int AS y
FROM generate_series(1, 4000) i;
SELECT dltrain.train_mlp(x, y, '{"epochs": 10, "lr": 0.05, "validation_fraction": 0.2, "hidden": []}') IS NOT NULL AS trained FROM imb;
SELECT count(*) AS epochs FROM dltrain.fit('imb', '{x}', 'y', '{"epochs": 10, "lr": 0.05, "validation_fraction": 0.2, "hidden": []}');
SELECT dltrain.train_mlp(x, y, '{"epochs": 2, "validation_fraction": 0.2}') IS NOT NULL AS trained FROM ho;
DROP TABLE imb;

DROP TABLE ho, ho_reversed;
