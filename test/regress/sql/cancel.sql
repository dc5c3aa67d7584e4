-- Cancel and statement_timeout stop training promptly; the backend stays usable.
CREATE TABLE cn AS SELECT ARRAY[i % 13, i % 7, i % 3]::real[] AS x, i % 4 AS y FROM generate_series(1, 20000) i;
SET statement_timeout = '300ms';
SELECT dltrain.train_mlp(x, y, '{"hidden": [64, 64], "epochs": 100000}') FROM cn;
RESET statement_timeout;
-- the same session trains again afterwards
SELECT dltrain.describe(dltrain.train_mlp(x, y, '{"epochs": 1}'))->'rows_used' FROM cn;
