-- The trainer and the scorers reach the kernels through one device
-- interface (src/kernels/dlk_device.h).  dltrain.device picks the device:
-- "cpu" (OpenBLAS and the pool) or "reference" (the plain reference
-- kernels, which the kernel tests compare the fast ones with).  The
-- reference device trains end to end, through every row source, and gives
-- the models the cpu device gives up to float rounding.
SHOW dltrain.device;
CREATE TABLE dv AS
SELECT ARRAY[sin(i)::real, cos(i * 0.7)::real, (i % 13)::real / 13] AS x,
       (CASE WHEN sin(i) + cos(i * 0.7) > 0 THEN 1 ELSE 0 END) + (i % 3 = 0)::int AS y,
       (sin(i) * 2 + 1)::float8 AS t
FROM generate_series(1, 600) i;

CREATE TEMP TABLE dv_models AS
SELECT 'cpu' AS device,
       (SELECT dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 3, "validation_fraction": 0.2}') FROM dv) AS agg,
       (SELECT model FROM dltrain.fit('dv', '{x}', 't', '{"hidden": [4], "epochs": 2}') WHERE model IS NOT NULL) AS fitted;
SET dltrain.device = reference;
INSERT INTO dv_models
SELECT 'reference',
       (SELECT dltrain.train_mlp(x, y, '{"hidden": [8], "epochs": 3, "validation_fraction": 0.2}') FROM dv),
       (SELECT model FROM dltrain.fit('dv', '{x}', 't', '{"hidden": [4], "epochs": 2}') WHERE model IS NOT NULL);
-- merged, fused, spilled: every path runs on the reference device too
SET dltrain.fusion = on;
SELECT dltrain.train_mlp(x, y, '{"epochs": 2}') IS NOT NULL AS a,
       dltrain.train_mlp(x, y, '{"epochs": 2, "lr": 0.1}') IS NOT NULL AS b FROM dv;
RESET dltrain.fusion;
SET dltrain.cache_mem = '256kB';
SELECT dltrain.train_mlp(x, y, '{"epochs": 2}') IS NOT NULL AS spilled FROM dv;
RESET dltrain.cache_mem;

-- the same training on both devices: losses within float rounding, and the
-- same predictions, scored on either device
SELECT r.device,
       abs((dltrain.describe(r.agg)->'loss'->>(-1))::float8 - (dltrain.describe(c.agg)->'loss'->>(-1))::float8) < 1e-4 AS agg_loss_close,
       abs((dltrain.describe(r.fitted)->'loss'->>(-1))::float8 - (dltrain.describe(c.fitted)->'loss'->>(-1))::float8) < 1e-4 AS fit_loss_close,
       (SELECT count(*) FILTER (WHERE dltrain.predict(r.agg, x) = dltrain.predict(c.agg, x)) FROM dv) >= 590 AS same_classes
FROM dv_models r, dv_models c WHERE r.device = 'reference' AND c.device = 'cpu';
RESET dltrain.device;
SELECT (SELECT count(*) FILTER (WHERE dltrain.predict(r.agg, x) = dltrain.predict(c.agg, x)) FROM dv) >= 590 AS same_on_cpu
FROM dv_models r, dv_models c WHERE r.device = 'reference' AND c.device = 'cpu';

SET dltrain.device = 'gpu';
DROP TABLE dv;
