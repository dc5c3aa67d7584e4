-- The model catalog cannot be gamed by its own users: id, owner and created
-- are the system's (by privileges), and latest_model(name) trusts the
-- caller's own rows only, whoever the caller is.
CREATE TABLE cpts AS
SELECT i, ARRAY[i % 7, i % 5]::real[] AS x, i % 2 AS y FROM generate_series(1, 200) i;
CREATE ROLE dltrain_cat_a;
CREATE ROLE dltrain_cat_b;
CREATE ROLE dltrain_cat_c BYPASSRLS;
CREATE ROLE dltrain_cat_d;
CREATE ROLE "DltrainCatMixed";
CREATE ROLE dltraincatmixed;
GRANT SELECT ON cpts TO PUBLIC;
-- a model anyone may copy into a row
CREATE TABLE cmodel AS SELECT dltrain.train_mlp(x, y, '{"epochs": 0}') AS m FROM cpts;
GRANT SELECT ON cmodel TO PUBLIC;

-- what a role may write: the user columns only
SELECT attname,
       has_column_privilege('dltrain_cat_a', 'dltrain.models', attname, 'SELECT') AS "select",
       has_column_privilege('dltrain_cat_a', 'dltrain.models', attname, 'INSERT') AS "insert",
       has_column_privilege('dltrain_cat_a', 'dltrain.models', attname, 'UPDATE') AS "update"
FROM pg_attribute WHERE attrelid = 'dltrain.models'::regclass AND attnum > 0 ORDER BY attnum;
SELECT has_table_privilege('dltrain_cat_a', 'dltrain.models', 'DELETE') AS "delete",
       has_table_privilege('dltrain_cat_a', 'dltrain.models', 'TRUNCATE') AS "truncate",
       has_sequence_privilege('dltrain_cat_a', 'dltrain.models_id_seq', 'USAGE') AS seq_usage,
       has_sequence_privilege('dltrain_cat_a', 'dltrain.models_id_seq', 'UPDATE') AS seq_update;

SET ROLE dltrain_cat_a;
-- a role cannot choose created, id or owner
INSERT INTO dltrain.models (name, created, model) SELECT 'cat-m', 'infinity', m FROM cmodel;
INSERT INTO dltrain.models (id, name, model) OVERRIDING SYSTEM VALUE SELECT 900000001, 'cat-m', m FROM cmodel;
INSERT INTO dltrain.models (name, owner, model) SELECT 'cat-m', 'dltrain_cat_b', m FROM cmodel;
INSERT INTO dltrain.models OVERRIDING SYSTEM VALUE
SELECT 900000002, 'cat-m', 'dltrain_cat_a', 'infinity', NULL, NULL, NULL, NULL, NULL, NULL, m FROM cmodel;
SELECT nextval('dltrain.models_id_seq');
SELECT setval('dltrain.models_id_seq', 900000003);
-- a row gets them from the system
INSERT INTO dltrain.models (name, model) SELECT 'cat-m', m FROM cmodel;
SELECT name, owner, created BETWEEN now() - interval '10 minutes' AND now() AS created_just_now, id IS NOT NULL AS has_id FROM dltrain.models;
-- nor change them later
UPDATE dltrain.models SET created = 'infinity' WHERE name = 'cat-m';
UPDATE dltrain.models SET owner = 'dltrain_cat_b' WHERE name = 'cat-m';
UPDATE dltrain.models SET id = 900000004 WHERE name = 'cat-m';
-- the user columns stay the owner's to edit
UPDATE dltrain.models SET metrics = '{"note": "edited"}' WHERE name = 'cat-m';
SELECT name, metrics FROM dltrain.models;
-- fit and grid_search store rows with the caller's rights
SET client_min_messages = warning;
SELECT count(*) FROM dltrain.fit('cpts', '{x}', 'y', '{"epochs": 1, "seed": 1}', 'cat-fit');
SELECT count(*) FROM dltrain.grid_search('cpts', '{x}', 'y', '{"epochs": 1}', '{"lr": [0.01, 0.1]}', name => 'cat-grid');
RESET client_min_messages;
SELECT name, owner, created BETWEEN now() - interval '10 minutes' AND now() AS created_just_now FROM dltrain.models ORDER BY name;
RESET ROLE;

-- a role looked up by its quoted name: "DltrainCatMixed" writes its own
-- rows, not those of dltraincatmixed (0.1.0's to_regrole(current_user) did)
SET ROLE "DltrainCatMixed";
INSERT INTO dltrain.models (name, model) SELECT 'cat-mixed', m FROM cmodel;
SELECT name, owner FROM dltrain.models;
SELECT dltrain.latest_model('cat-mixed') IS NOT NULL AS found;
SET ROLE dltraincatmixed;
SELECT count(*) AS sees FROM dltrain.models;
RESET ROLE;

-- latest_model(name) returns the caller's newest model of that name, never
-- a newer one of another role
SET client_min_messages = warning;
SELECT count(*) FROM dltrain.fit('cpts', '{x}', 'y', '{"epochs": 1, "seed": 2}', 'cat-m');
RESET client_min_messages;
SET ROLE dltrain_cat_a;
INSERT INTO dltrain.models (name, model) SELECT 'cat-m', m FROM cmodel;
RESET ROLE;
-- a superuser sees every row, and latest_model still gives its own
SELECT count(*) AS rows_named_cat_m, count(DISTINCT owner) AS owners FROM dltrain.models WHERE name = 'cat-m';
SELECT owner FROM dltrain.models WHERE name = 'cat-m' AND model::text = dltrain.latest_model('cat-m')::text;
-- trusting another role is explicit
SELECT DISTINCT owner FROM dltrain.models
WHERE name = 'cat-m' AND model::text = dltrain.latest_model('cat-m', 'dltrain_cat_a')::text;
-- a member of a role sees its rows, and trusts them only when asked to
GRANT dltrain_cat_a TO dltrain_cat_b;
SET ROLE dltrain_cat_b;
INSERT INTO dltrain.models (name, metrics, model) SELECT 'cat-m', '{"mine": true}', m FROM cmodel;
UPDATE dltrain.models SET name = 'cat-m-renamed' WHERE owner = 'dltrain_cat_a'::regrole AND name = 'cat-m';
SELECT name, owner, metrics FROM dltrain.models WHERE name LIKE 'cat-m%' ORDER BY owner::text, name;
SELECT (SELECT metrics FROM dltrain.models WHERE model::text = dltrain.latest_model('cat-m')::text AND owner = 'dltrain_cat_b'::regrole) AS latest_mine;
SELECT dltrain.latest_model('cat-m', 'dltrain_cat_a') IS NOT NULL AS trusts_a;
RESET ROLE;
-- a role that bypasses row-level security sees every row, and still gets its own only
SET ROLE dltrain_cat_c;
SELECT count(*) > 1 AS sees_others FROM dltrain.models WHERE name = 'cat-m';
SELECT dltrain.latest_model('cat-m');
RESET ROLE;

-- a name that does not exist, and one that exists only for other roles,
-- give the same error
SET ROLE dltrain_cat_d;
SELECT dltrain.latest_model('cat-none');
SELECT dltrain.latest_model('cat-m');
SELECT dltrain.latest_model('cat-none', 'dltrain_cat_a');
SELECT dltrain.latest_model('cat-m', 'dltrain_cat_a');
SELECT dltrain.latest_model(NULL) IS NULL AS strict, dltrain.latest_model('cat-m', NULL) IS NULL AS strict_owner;
RESET ROLE;
SELECT dltrain.latest_model('cat-m', 'dltrain_cat_d');

-- a superuser (as pg_restore does) may write every column
INSERT INTO dltrain.models (id, name, owner, created, model) OVERRIDING SYSTEM VALUE
SELECT 900000005, 'cat-restored', 'dltrain_cat_d', '2020-01-01 00:00:00+00', m FROM cmodel;
SELECT id, name, owner, created FROM dltrain.models WHERE name = 'cat-restored';

DELETE FROM dltrain.models WHERE name LIKE 'cat-%';
DROP TABLE cpts, cmodel;
DROP ROLE dltrain_cat_a, dltrain_cat_b, dltrain_cat_c, dltrain_cat_d, "DltrainCatMixed", dltraincatmixed;
