-- dltrain.fit(): table-level training, the model catalog, and what fit may read.
SELECT setseed(0.21);
CREATE TABLE fpts AS
SELECT i, ARRAY[random() * 2 - 1, random() * 2 - 1]::real[] AS x,
       random() * 2 - 1 AS a, random() * 2 - 1 AS b, 0 AS y, 0.0::float8 AS t, 'none'::text AS who
FROM generate_series(1, 3000) i;
UPDATE fpts SET y = (x[1] * x[2] > 0)::int, t = a * 2 + b, who = CASE WHEN i % 3 = 0 THEN 'dltrain_fit_b' ELSE 'dltrain_fit_a' END;

-- epochs 0: no per-epoch NOTICEs (they carry timings); the model still comes back
SELECT epoch, rows, model IS NOT NULL AS has_model FROM dltrain.fit('fpts', '{x}', 'y', '{"epochs": 0}');
-- without dltrain.log_epochs, fit sends no NOTICE per epoch either (its rows say it)
SELECT count(*) AS epochs FROM dltrain.fit('fpts', '{x}', 'y', '{"epochs": 2}');

SET client_min_messages = warning;
-- one row per epoch; the last one carries the model; validation rows are held out
CREATE TABLE fit_out AS
SELECT * FROM dltrain.fit('fpts', '{x}', 'y', '{"hidden": [16], "epochs": 8, "lr": 0.02, "validation_fraction": 0.2}', 'xor-v1');
RESET client_min_messages;
SELECT epoch, rows BETWEEN 2200 AND 2600 AS about_80_percent, loss > 0 AS has_loss,
       validation_loss IS NOT NULL AS has_validation, model IS NOT NULL AS has_model
FROM fit_out ORDER BY epoch;
SELECT (SELECT validation_metric FROM fit_out WHERE epoch = 8) > 0.9 AS validation_accuracy_high,
       (SELECT loss FROM fit_out WHERE epoch = 8) < (SELECT loss FROM fit_out WHERE epoch = 1) AS loss_fell;

-- the catalog: name, owner, relation, columns, options, metrics, provenance, model
SELECT name, owner = to_regrole(current_user) AS mine, relation, features, label, options->'epochs' AS epochs,
       metrics ? 'validation_metric' AS has_metrics,
       (provenance->>'rows')::int + (provenance->>'validation_rows')::int AS rows,
       provenance ? 'snapshot_xmin' AS has_xmin, length(provenance->>'content_hash') AS hash_len
FROM dltrain.models;
SELECT dltrain.latest_model('xor-v1')::text = (SELECT model::text FROM fit_out WHERE epoch = 8) AS latest_is_it;
-- a name the caller has no model of is an error
SELECT dltrain.latest_model('no such model');
-- the content hash does not depend on the order of the rows
CREATE TABLE fpts_reordered AS SELECT * FROM fpts ORDER BY md5(i::text);
SET client_min_messages = warning;
SELECT count(*) FROM dltrain.fit('fpts_reordered', '{x}', 'y', '{"hidden": [16], "epochs": 1, "validation_fraction": 0.2}', 'xor-v2');
RESET client_min_messages;
SELECT count(DISTINCT provenance->>'content_hash') AS distinct_hashes,
       count(DISTINCT (provenance->>'rows')) AS distinct_row_counts FROM dltrain.models;

-- several numeric columns as features, a regression label
SET client_min_messages = warning;
SELECT dltrain.describe(model)->'layers' AS layers, dltrain.describe(model)->>'task' AS task
FROM dltrain.fit('fpts', '{a, b}', 't', '{"hidden": [8], "epochs": 2}') WHERE model IS NOT NULL;
RESET client_min_messages;

-- views have no blocks to shuffle: said in a NOTICE
CREATE VIEW fpts_view AS SELECT x, y FROM fpts WHERE i % 2 = 0;
SELECT epoch, dltrain.describe(model)->'rows_used' AS rows_used FROM dltrain.fit('fpts_view', '{x}', 'y', '{"epochs": 0}');

-- partitioned tables: partitions interleave, unless row-level security forbids reading them directly
CREATE TABLE parts (i int, x real[], y int) PARTITION BY RANGE (i);
CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (1500);
CREATE TABLE parts_2 PARTITION OF parts FOR VALUES FROM (1500) TO (4000);
INSERT INTO parts SELECT i, x, y FROM fpts;
SELECT epoch, dltrain.describe(model)->'rows_used' AS rows_used FROM dltrain.fit('parts', '{x}', 'y', '{"epochs": 0}');
ALTER TABLE parts ENABLE ROW LEVEL SECURITY;
SELECT epoch, dltrain.describe(model)->'rows_used' AS rows_used FROM dltrain.fit('parts', '{x}', 'y', '{"epochs": 0}');

-- privileges, row-level security and MVCC apply to what fit reads
CREATE ROLE dltrain_fit_a;
CREATE ROLE dltrain_fit_b;
GRANT SELECT ON fpts TO dltrain_fit_a, dltrain_fit_b;
ALTER TABLE fpts ENABLE ROW LEVEL SECURITY;
CREATE POLICY fpts_who ON fpts USING (who = current_user);
SET ROLE dltrain_fit_a;
SELECT epoch, dltrain.describe(model)->'rows_used' AS rows_used FROM dltrain.fit('fpts', '{x}', 'y', '{"epochs": 0}', 'a-model');
SELECT epoch, dltrain.describe(model)->'rows_used' AS rows_used FROM dltrain.fit('fpts_reordered', '{x}', 'y', '{"epochs": 0}');
-- each owner sees its own models only
SELECT name, owner FROM dltrain.models ORDER BY name;
SET ROLE dltrain_fit_b;
SELECT epoch, dltrain.describe(model)->'rows_used' AS rows_used FROM dltrain.fit('fpts', '{x}', 'y', '{"epochs": 0}', 'b-model');
SELECT name, owner FROM dltrain.models ORDER BY name;
SELECT dltrain.latest_model('a-model', 'dltrain_fit_a');
-- nor write rows as someone else
INSERT INTO dltrain.models (name, owner, model) SELECT 'forged', 'dltrain_fit_a', dltrain.import(dltrain.export(dltrain.latest_model('b-model')));
RESET ROLE;
SELECT name, owner FROM dltrain.models ORDER BY name;
-- MVCC: fit reads the rows its snapshot sees
BEGIN;
DELETE FROM fpts WHERE i > 1000;
SELECT epoch, dltrain.describe(model)->'rows_used' AS rows_used FROM dltrain.fit('fpts', '{x}', 'y', '{"epochs": 0}');
ROLLBACK;

-- the SQL fit runs is immune to the caller's search_path and to odd names
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."My ""Table""" ("feat s" real[], "Label;" int);
INSERT INTO "Odd Schema"."My ""Table""" SELECT x, y FROM fpts;
CREATE FUNCTION public.block_shuffle(internal) RETURNS tsm_handler AS 'tsm_bernoulli_handler' LANGUAGE internal;
-- (public.block_shuffle here is BERNOULLI: an unqualified call would sample ~32% of the rows)
SET search_path = "Odd Schema", public;
SET client_min_messages = warning;
SELECT epoch, rows FROM dltrain.fit('"My ""Table"""', '{"feat s"}', 'Label;', '{"epochs": 1}');
RESET client_min_messages;
RESET search_path;

-- bad input
SELECT * FROM dltrain.fit('fpts', '{nope}', 'y');
SELECT * FROM dltrain.fit('fpts', '{x}', 'nope');
SELECT * FROM dltrain.fit('fpts', '{who}', 'y');
SELECT * FROM dltrain.fit('fpts', '{x, a}', 'y');
SELECT * FROM dltrain.fit('fpts', '{}', 'y');
SELECT * FROM dltrain.fit('fpts', '{x}', 'x');
SELECT * FROM dltrain.fit('fpts', '{x}', 'who', '{"task": "regression"}');
SELECT * FROM dltrain.fit('fpts', '{x}', 'y', '{"validation_fraction": 1}');
SELECT * FROM dltrain.fit('fpts', '{x}', 'y', '{"pages_per_range": 0}');
SELECT * FROM dltrain.fit('fpts', '{x}', 'y', '{"epoch": 1}');
SELECT * FROM dltrain.fit(NULL, '{x}', 'y');
SELECT * FROM dltrain.fit('pg_class_oid_index', '{x}', 'y');
SELECT * FROM dltrain.fit('fpts', '{x}', 'y', '{"early_stopping": 2}');

DROP POLICY fpts_who ON fpts;
DROP OWNED BY dltrain_fit_a, dltrain_fit_b;
DROP ROLE dltrain_fit_a;
DROP ROLE dltrain_fit_b;

-- rows of dropped roles do not break the catalog for anyone
CREATE ROLE dltrain_fit_c;
SET ROLE dltrain_fit_c;
SELECT count(*) AS visible FROM dltrain.models;
SELECT dltrain.latest_model('a-model');
RESET ROLE;
SELECT count(*) AS rows_of_dropped_roles FROM dltrain.models WHERE owner::text ~ '^[0-9]+$';
DROP ROLE dltrain_fit_c;

-- a regclass that names nothing
SELECT * FROM dltrain.fit(0::regclass, '{x}', 'y');
SELECT * FROM dltrain.predict_batch(dltrain.latest_model('xor-v1'), 0::regclass, 'x', 'i');
