-- dltrain.retrain(): continue a catalog model on exactly the rows added since.
SET client_min_messages = warning;
SELECT setseed(0.17);
CREATE TABLE rt (id serial, x real[], y int, ts timestamptz);
INSERT INTO rt (x, y, ts)
SELECT ARRAY[a, b]::real[], (a * b > 0)::int, '2024-01-01'::timestamptz + i * interval '1 minute'
FROM (SELECT i, random() * 2 - 1 AS a, random() * 2 - 1 AS b FROM generate_series(1, 1000) i) s;

-- the first training, inside a transaction that also wrote rows: those count as old
BEGIN;
INSERT INTO rt (x, y, ts) SELECT x, y, ts + interval '1 year' FROM rt WHERE id <= 50;
SELECT count(*) AS epochs FROM dltrain.fit('rt', '{x}', 'y', '{"hidden": [8], "epochs": 2, "seed": 3, "checkpoint": true}', 'rt-m');
COMMIT;
SELECT provenance->'rows' AS rows, provenance ? 'snapshot' AS has_snapshot,
       (provenance->>'xid')::xid8 = ANY (ARRAY(SELECT jsonb_array_elements_text(provenance->'own_xids'))::xid8[]) AS xid_listed,
       provenance->>'relname' AS relname, (provenance->>'relid')::oid = 'rt'::regclass AS relid,
       provenance->'relfilenodes' ? ('rt'::regclass::oid)::text AS has_relfilenode,
       provenance->>'system_identifier' = (SELECT system_identifier::text FROM pg_control_system()) AS sysid
FROM dltrain.models WHERE name = 'rt-m';
-- the recorded snapshot has pg_current_snapshot()'s form, with 64-bit ids
SELECT (provenance->>'snapshot')::pg_snapshot IS NOT NULL AS parses,
       pg_snapshot_xmax((provenance->>'snapshot')::pg_snapshot) <= pg_snapshot_xmax(pg_current_snapshot()) AS before_now
FROM dltrain.models WHERE name = 'rt-m';

-- nothing new yet
SELECT * FROM dltrain.retrain('rt-m');

-- 30 inserted, 20 updated, in one transaction each; then VACUUM FREEZE: frozen rows keep their raw xmin
INSERT INTO rt (x, y, ts) SELECT x, y, ts + interval '2 years' FROM rt WHERE id BETWEEN 101 AND 130;
UPDATE rt SET y = 1 - y WHERE id BETWEEN 201 AND 220;
VACUUM FREEZE rt;
-- a row inserted and deleted since is not there
INSERT INTO rt (x, y, ts) VALUES ('{0.5, 0.5}', 1, '2030-01-01');
DELETE FROM rt WHERE ts = '2030-01-01';
SELECT epoch, rows FROM dltrain.retrain('rt-m', '{"epochs": 1}');
SELECT name, provenance->'rows' AS rows, provenance->'new_rows' AS new_rows, provenance->'replayed_rows' AS replayed,
       provenance->'new_rows_by' AS rule, (provenance->>'continued_from')::bigint = (SELECT min(id) FROM dltrain.models WHERE name = 'rt-m') AS linked,
       provenance->>'previous_snapshot' = (SELECT provenance->>'snapshot' FROM dltrain.models WHERE name = 'rt-m' ORDER BY id LIMIT 1) AS previous,
       options->'epochs' AS epochs, options->'checkpoint' AS checkpoint
FROM dltrain.models WHERE name = 'rt-m' ORDER BY id;
-- the retrained model continued the first one: same classes, its epochs only
SELECT dltrain.describe(dltrain.latest_model('rt-m'))->'epochs' AS epochs;
-- a retrain of the retrain sees only what came after it
INSERT INTO rt (x, y, ts) SELECT x, y, ts + interval '3 years' FROM rt WHERE id BETWEEN 301 AND 310;
SELECT epoch, rows FROM dltrain.retrain('rt-m', '{"epochs": 1}', new_name => 'rt-m2');
SELECT provenance->'new_rows' AS new_rows FROM dltrain.models WHERE name = 'rt-m2';

-- replay: a seeded sample of the old rows mixed in (the same sample every time)
SELECT epoch, rows FROM dltrain.retrain('rt-m2', '{"epochs": 1}', replay => 0.5, new_name => 'rt-replay');
SELECT provenance->'new_rows' AS new_rows, (provenance->>'replayed_rows')::int BETWEEN 450 AND 650 AS about_half,
       provenance->'replay' AS replay
FROM dltrain.models WHERE name = 'rt-replay';
SELECT count(*) AS epochs FROM dltrain.retrain('rt-m2', '{"epochs": 1}', replay => 0.5, new_name => 'rt-replay2');
SELECT (SELECT provenance->'replayed_rows' FROM dltrain.models WHERE name = 'rt-replay')
     = (SELECT provenance->'replayed_rows' FROM dltrain.models WHERE name = 'rt-replay2') AS same_sample;
SELECT * FROM dltrain.retrain('rt-m2', replay => 1.5);

-- since: a key column (here a timestamp), exact whatever happened to the rows
SELECT count(*) AS epochs FROM dltrain.fit('rt', '{x}', 'y', '{"epochs": 1, "since": "ts"}', 'rt-key');
SELECT provenance->'since'->>'column' AS col, provenance->'since'->>'type' AS type,
       (provenance->'since'->>'max')::timestamptz = (SELECT max(ts) FROM rt) AS max_recorded
FROM dltrain.models WHERE name = 'rt-key';
INSERT INTO rt (x, y, ts) SELECT x, y, ts + interval '10 years' FROM rt WHERE id BETWEEN 401 AND 425;
-- TRUNCATE and reload: every row gets a new xmin, the key still tells
CREATE TABLE rt_copy AS SELECT * FROM rt;
TRUNCATE rt;
INSERT INTO rt SELECT * FROM rt_copy;
SELECT epoch, rows FROM dltrain.retrain('rt-key', '{"epochs": 1}', since => 'ts');
SELECT provenance->'new_rows' AS new_rows, provenance->'new_rows_by' AS rule,
       (provenance->'previous_since'->>'max')::timestamptz < (provenance->'since'->>'max')::timestamptz AS range_advanced
FROM dltrain.models WHERE name = 'rt-key' ORDER BY id DESC LIMIT 1;

-- the refusals, each naming why (terse where the detail names OIDs and xids)
\set VERBOSITY terse
-- TRUNCATE and reload changed the relfilenode
SELECT * FROM dltrain.retrain('rt-m');
-- VACUUM FULL too
SELECT count(*) FROM dltrain.fit('rt', '{x}', 'y', '{"epochs": 1}', 'rt-full');
VACUUM FULL rt;
SELECT * FROM dltrain.retrain('rt-full');
-- a re-created relation
SELECT count(*) FROM dltrain.fit('rt_copy', '{x}', 'y', '{"epochs": 1}', 'rt-copy');
ALTER TABLE rt_copy RENAME TO rt_copy_old;
CREATE TABLE rt_copy AS SELECT * FROM rt_copy_old;
SELECT * FROM dltrain.retrain('rt-copy');
-- another cluster (a forged system identifier: a role can forge its own rows only)
UPDATE dltrain.models SET provenance = jsonb_set(provenance, '{system_identifier}', '"1"') WHERE name = 'rt-full';
SELECT * FROM dltrain.retrain('rt-full');
-- a snapshot from the future
SELECT count(*) FROM dltrain.fit('rt', '{x}', 'y', '{"epochs": 1}', 'rt-forged');
UPDATE dltrain.models SET provenance = jsonb_set(provenance, '{snapshot}', '"4000000000:4000000000:"') WHERE name = 'rt-forged';
SELECT * FROM dltrain.retrain('rt-forged');
\set VERBOSITY default
-- no recorded snapshot (a model stored by hand)
INSERT INTO dltrain.models (name, relation, features, label, provenance, model)
SELECT 'rt-hand', relation, features, label, '{}', model FROM dltrain.models WHERE name = 'rt-forged';
SELECT * FROM dltrain.retrain('rt-hand');
-- a view: only tables keep their rows' xmin
CREATE VIEW rt_view AS SELECT * FROM rt;
SELECT count(*) FROM dltrain.fit('rt_view', '{x}', 'y', '{"epochs": 1}', 'rt-view');
SELECT * FROM dltrain.retrain('rt-view');
-- another role's model, and options that would start elsewhere
SELECT * FROM dltrain.retrain('no-such-model');
SELECT * FROM dltrain.retrain('rt-m', '{"warm_start": "rt-m"}');

-- partitions: each leaf's relfilenode is recorded; a partition created after is new as a whole
CREATE TABLE rtp (x real[], y int, k int) PARTITION BY RANGE (k);
CREATE TABLE rtp1 PARTITION OF rtp FOR VALUES FROM (0) TO (1000);
CREATE TABLE rtp2 PARTITION OF rtp FOR VALUES FROM (1000) TO (2000);
INSERT INTO rtp SELECT x, y, id FROM rt_copy_old WHERE id < 2000;
SELECT count(*) FROM dltrain.fit('rtp', '{x}', 'y', '{"epochs": 1}', 'rtp-m');
SELECT jsonb_object_keys(provenance->'relfilenodes')::oid::regclass AS leaf FROM dltrain.models WHERE name = 'rtp-m' ORDER BY 1;
CREATE TABLE rtp3 PARTITION OF rtp FOR VALUES FROM (2000) TO (3000);
INSERT INTO rtp SELECT x, y, 2000 + id FROM rt_copy_old WHERE id <= 15;
INSERT INTO rtp SELECT x, y, 500 + id FROM rt_copy_old WHERE id <= 5;
SELECT epoch, rows FROM dltrain.retrain('rtp-m', '{"epochs": 1}');
TRUNCATE rtp2;
\set VERBOSITY terse
SELECT * FROM dltrain.retrain('rtp-m');
\set VERBOSITY default
DROP VIEW rt_view;
DROP TABLE rt, rt_copy, rt_copy_old, rtp;
DELETE FROM dltrain.models WHERE name LIKE 'rt%';
RESET client_min_messages;
