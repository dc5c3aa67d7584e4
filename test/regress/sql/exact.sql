-- Exact model selection: every product is the exact GEMM (one summation
-- order per output element, whatever its position, the models beside it or
-- the thread cut), so a model is the same bytes trained alone, merged with
-- others, fused with them, at any dltrain.fusion and dltrain.threads, even
-- at a learning rate where training is chaotic.
CREATE TABLE ex AS
SELECT ARRAY(SELECT sin(i * 0.37 + d)::real FROM generate_series(1, 12) d) AS x,
       (i % 4) AS y
FROM generate_series(1, 1500) i;

CREATE TEMP TABLE ex_alone AS
SELECT k, (SELECT dltrain.train_mlp(x, y, o) FROM ex)::text AS m
FROM (VALUES (1, '{"hidden": [], "lr": 0.3, "epochs": 3, "seed": 5}'::jsonb),
             (2, '{"hidden": [], "lr": 0.001, "epochs": 3, "seed": 5}'),
             (3, '{"hidden": [16, 8], "lr": 0.3, "epochs": 3, "seed": 5}'),
             (4, '{"hidden": [16, 8], "lr": 0.01, "epochs": 3, "seed": 5}')) v(k, o);

-- merged by the planner, fused by every rule, and merged at execution
SET dltrain.fusion = on;
SELECT a::text = (SELECT m FROM ex_alone WHERE k = 1) AS l1, b::text = (SELECT m FROM ex_alone WHERE k = 2) AS l2,
       c::text = (SELECT m FROM ex_alone WHERE k = 3) AS h1, d::text = (SELECT m FROM ex_alone WHERE k = 4) AS h2
FROM (SELECT dltrain.train_mlp(x, y, '{"hidden": [], "lr": 0.3, "epochs": 3, "seed": 5}') a,
             dltrain.train_mlp(x, y, '{"hidden": [], "lr": 0.001, "epochs": 3, "seed": 5}') b,
             dltrain.train_mlp(x, y, '{"hidden": [16, 8], "lr": 0.3, "epochs": 3, "seed": 5}') c,
             dltrain.train_mlp(x, y, '{"hidden": [16, 8], "lr": 0.01, "epochs": 3, "seed": 5}') d FROM ex) s;
SET dltrain.fusion = auto;
SET dltrain.enable_merge_rewrite = off;
SELECT a::text = (SELECT m FROM ex_alone WHERE k = 1) AS l1, b::text = (SELECT m FROM ex_alone WHERE k = 2) AS l2,
       c::text = (SELECT m FROM ex_alone WHERE k = 3) AS h1, d::text = (SELECT m FROM ex_alone WHERE k = 4) AS h2
FROM (SELECT dltrain.train_mlp(x, y, '{"hidden": [], "lr": 0.3, "epochs": 3, "seed": 5}') a,
             dltrain.train_mlp(x, y, '{"hidden": [], "lr": 0.001, "epochs": 3, "seed": 5}') b,
             dltrain.train_mlp(x, y, '{"hidden": [16, 8], "lr": 0.3, "epochs": 3, "seed": 5}') c,
             dltrain.train_mlp(x, y, '{"hidden": [16, 8], "lr": 0.01, "epochs": 3, "seed": 5}') d FROM ex) s;
RESET dltrain.enable_merge_rewrite;
RESET dltrain.fusion;

-- threads: the same bytes at 1, 2 and 3 threads
SET dltrain.threads = 2;
SELECT k, (SELECT dltrain.train_mlp(x, y, o) FROM ex)::text = m AS two_threads
FROM ex_alone, (VALUES (1, '{"hidden": [], "lr": 0.3, "epochs": 3, "seed": 5}'::jsonb),
                       (3, '{"hidden": [16, 8], "lr": 0.3, "epochs": 3, "seed": 5}')) v(kk, o)
WHERE k = kk ORDER BY k;
SET dltrain.threads = 3;
SELECT k, (SELECT dltrain.train_mlp(x, y, o) FROM ex)::text = m AS three_threads
FROM ex_alone, (VALUES (3, '{"hidden": [16, 8], "lr": 0.3, "epochs": 3, "seed": 5}'::jsonb)) v(kk, o)
WHERE k = kk ORDER BY k;
RESET dltrain.threads;

-- grid_search trains the same configurations to the same bytes
SELECT count(*) FILTER (WHERE g.model::text = a.m) AS identical, count(*) AS models
FROM dltrain.grid_search('ex', '{x}', 'y', '{"epochs": 3, "seed": 5, "hidden": []}', '{"lr": [0.3, 0.001]}', 0) g,
     ex_alone a
WHERE a.k = CASE WHEN (g.configuration->>'lr')::float8 = 0.3 THEN 1 ELSE 2 END;

DROP TABLE ex;
