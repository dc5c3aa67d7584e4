-- Frozen layers: "freeze": N keeps the first N layers of a warm-started
-- model as they are and trains the layers above; their outputs may be
-- computed once per row (dltrain.materialize), which never changes a model.
CREATE TABLE fz AS
SELECT ARRAY[sin(i)::real, cos(i * 0.3)::real, ((i * 7) % 11)::real, (i % 13)::real] AS x,
       (CASE WHEN sin(i) > cos(i * 0.3) THEN 1 ELSE 0 END + (i % 5 = 0)::int) AS y
FROM generate_series(1, 1200) i;
CREATE TEMP TABLE fz_base AS
SELECT dltrain.train_mlp(x, y, '{"epochs": 3, "hidden": [16, 8], "seed": 1}') AS m FROM fz;

-- the frozen layers keep their bytes, the others train (SGD with momentum and
-- weight decay, Adam with weight decay, AdamW)
CREATE TEMP TABLE fz_cases (n int, o jsonb);
INSERT INTO fz_cases VALUES
  (1, '{"freeze": 1, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.01, "lr": 0.05}'),
  (2, '{"freeze": 2, "optimizer": "adam", "weight_decay": 0.01, "lr": 0.01}'),
  (3, '{"freeze": 2, "optimizer": "adamw", "lr": 0.01, "validation_fraction": 0.2}');
SET dltrain.materialize = off;
CREATE TEMP TABLE fz_off AS
SELECT c.n, (SELECT dltrain.train_mlp(x, y, c.o || jsonb_build_object('epochs', 3, 'warm_start', jsonb_build_object('model', b.m::text))) FROM fz) AS w
FROM fz_cases c, fz_base b;
SELECT o.n,
       dltrain.export(o.w)->'layers'->0 = dltrain.export(b.m)->'layers'->0 AS layer1_same,
       dltrain.export(o.w)->'layers'->1 = dltrain.export(b.m)->'layers'->1 AS layer2_same,
       dltrain.export(o.w)->'layers'->2 = dltrain.export(b.m)->'layers'->2 AS layer3_same,
       dltrain.describe(o.w)->'layers' AS layers
FROM fz_off o, fz_base b ORDER BY o.n;

-- materialized = not materialized, byte for byte: one head at a time
SET dltrain.materialize = on;
SELECT c.n, (SELECT dltrain.train_mlp(x, y, c.o || jsonb_build_object('epochs', 3, 'warm_start', jsonb_build_object('model', b.m::text))) FROM fz)::text
            = o.w::text AS same_bytes
FROM fz_cases c, fz_base b, fz_off o WHERE o.n = c.n ORDER BY c.n;

-- K heads merged in one call (different learning rates, one base): the
-- same bytes materialized, not materialized, and each alone
CREATE TEMP TABLE fz_k AS
SELECT b.m::text AS mt, 'k' AS k FROM fz_base b;
SET dltrain.materialize = off;
CREATE TEMP TABLE fz_merged_off AS
SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', 2, 'freeze', 1, 'lr', 0.1, 'warm_start', jsonb_build_object('model', k.mt))) AS a,
       dltrain.train_mlp(x, y, jsonb_build_object('epochs', 2, 'freeze', 1, 'lr', 0.02, 'warm_start', jsonb_build_object('model', k.mt))) AS b,
       dltrain.train_mlp(x, y, jsonb_build_object('epochs', 2, 'freeze', 2, 'lr', 0.05, 'optimizer', 'adam', 'warm_start', jsonb_build_object('model', k.mt))) AS c
FROM fz, fz_k k GROUP BY k.mt;
SET dltrain.materialize = on;
CREATE TEMP TABLE fz_merged_on AS
SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', 2, 'freeze', 1, 'lr', 0.1, 'warm_start', jsonb_build_object('model', k.mt))) AS a,
       dltrain.train_mlp(x, y, jsonb_build_object('epochs', 2, 'freeze', 1, 'lr', 0.02, 'warm_start', jsonb_build_object('model', k.mt))) AS b,
       dltrain.train_mlp(x, y, jsonb_build_object('epochs', 2, 'freeze', 2, 'lr', 0.05, 'optimizer', 'adam', 'warm_start', jsonb_build_object('model', k.mt))) AS c
FROM fz, fz_k k GROUP BY k.mt;
SELECT f.a::text = n.a::text AS a_same, f.b::text = n.b::text AS b_same, f.c::text = n.c::text AS c_same,
       f.a::text <> f.b::text AS a_differs_from_b,
       f.b::text = (SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', 2, 'freeze', 1, 'lr', 0.02, 'warm_start', jsonb_build_object('model', k.mt))) FROM fz)::text AS b_alone
FROM fz_merged_on f, fz_merged_off n, fz_k k;
-- auto decides (here: materializes); the bytes are the same again
RESET dltrain.materialize;
SELECT (SELECT dltrain.train_mlp(x, y, c.o || jsonb_build_object('epochs', 3, 'warm_start', jsonb_build_object('model', b.m::text))) FROM fz)::text
       = o.w::text AS auto_same
FROM fz_cases c, fz_base b, fz_off o WHERE o.n = c.n AND c.n = 2;

-- the returned model is the whole network: predict uses it as usual
SELECT dltrain.predict(o.w, ARRAY[0.1, 0.2, 3, 4]::real[]) IS NOT NULL AS predicts,
       (dltrain.describe(o.w)->>'epochs')::int AS epochs
FROM fz_off o WHERE o.n = 1;

-- errors
SELECT dltrain.train_mlp(x, y, '{"freeze": 1}') FROM fz;
SELECT dltrain.train_mlp(x, y, jsonb_build_object('freeze', 3, 'warm_start', jsonb_build_object('model', m::text))) FROM fz, fz_base;
SELECT dltrain.train_mlp(x, y, jsonb_build_object('freeze', 0, 'warm_start', jsonb_build_object('model', m::text))) FROM fz, fz_base;
SELECT dltrain.train_mlp(x, y, jsonb_build_object('freeze', 'two', 'warm_start', jsonb_build_object('model', m::text))) FROM fz, fz_base;
SELECT dltrain.train_mlp(x, y, jsonb_build_object('freeze', 1, 'checkpoint', true, 'warm_start', jsonb_build_object('model', m::text))) FROM fz, fz_base;
SET dltrain.materialize = sometimes;
-- new heads on the frozen base: "hidden" starts with the base's widths and
-- goes on with the head's; heads of different widths share the base's
-- materialized outputs and are the bytes of their training without them
SET dltrain.materialize = off;
CREATE TEMP TABLE fz_heads_off AS
SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', 2, 'freeze', 1, 'hidden', '[16, 4]'::jsonb, 'warm_start', jsonb_build_object('model', b.m::text))) AS h4,
       dltrain.train_mlp(x, y, jsonb_build_object('epochs', 2, 'freeze', 1, 'hidden', '[16, 32, 8]'::jsonb, 'warm_start', jsonb_build_object('model', b.m::text))) AS h32
FROM fz, fz_base b;
SET dltrain.materialize = on;
SELECT dltrain.describe(h.h4)->'layers' AS head4, dltrain.describe(h.h32)->'layers' AS head32,
       dltrain.export(h.h32)->'layers'->0 = dltrain.export(b.m)->'layers'->0 AS base_kept,
       on4::text = h.h4::text AS same4, on32::text = h.h32::text AS same32
FROM fz_heads_off h, fz_base b,
     LATERAL (SELECT dltrain.train_mlp(x, y, jsonb_build_object('epochs', 2, 'freeze', 1, 'hidden', '[16, 4]'::jsonb, 'warm_start', jsonb_build_object('model', b.m::text))) AS on4,
                     dltrain.train_mlp(x, y, jsonb_build_object('epochs', 2, 'freeze', 1, 'hidden', '[16, 32, 8]'::jsonb, 'warm_start', jsonb_build_object('model', b.m::text))) AS on32
              FROM fz) s;
RESET dltrain.materialize;
SELECT dltrain.train_mlp(x, y, jsonb_build_object('freeze', 1, 'hidden', '[12, 4]'::jsonb, 'warm_start', jsonb_build_object('model', b.m::text))) FROM fz, fz_base b;

DROP TABLE fz;
