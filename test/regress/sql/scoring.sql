-- predict_batch and evaluate take fit's feature forms; a catalog model is
-- scored by its name, with latest_model(name)'s trust rule
SET client_min_messages = warning;
CREATE TABLE sc AS
SELECT i AS id, ARRAY[i % 7, i % 5]::real[] AS x, (i % 7)::numeric AS a, i % 5 AS b, (i % 7 + i % 5) % 2 AS y
FROM generate_series(1, 200) i;
GRANT SELECT ON sc TO PUBLIC;
SELECT count(*) FROM dltrain.fit('sc', '{a,b}', 'y', '{"epochs": 20, "seed": 1}', name => 'sc-cols');
SELECT count(*) FROM dltrain.fit('sc', '{x}', 'y', '{"epochs": 20, "seed": 1}', name => 'sc-array');

-- a column list, the same as the array column
SELECT count(*) AS same
FROM dltrain.predict_batch(dltrain.latest_model('sc-cols'), 'sc', ARRAY['a', 'b'], 'id') p
JOIN dltrain.predict_batch(dltrain.latest_model('sc-cols'), 'sc', '{x}'::text[], 'id') q USING (key)
WHERE p.class = q.class;
SELECT dltrain.evaluate(dltrain.latest_model('sc-cols'), 'sc', ARRAY['a', 'b'], 'y') -> 'rows' AS rows,
       dltrain.evaluate(dltrain.latest_model('sc-cols'), 'sc', ARRAY['a', 'b'], 'y') =
       (SELECT dltrain.evaluate(dltrain.latest_model('sc-cols'), ARRAY[a, b]::float8[], y) FROM sc) AS same_as_aggregate;

-- by name: the relation and features its row records, or another relation
SELECT count(*), count(DISTINCT class) > 0 AS classes FROM dltrain.predict_batch('sc-cols', 'id');
SELECT count(*) FROM dltrain.predict_batch('sc-array', key => 'id', relation => 'sc');
SELECT dltrain.evaluate('sc-cols') = dltrain.evaluate(dltrain.latest_model('sc-cols'), 'sc', ARRAY['a', 'b'], 'y') AS same;
SELECT dltrain.evaluate('sc-array', 'sc') ->> 'task' AS task;
CREATE TABLE sc2 AS SELECT * FROM sc WHERE id <= 50;
SELECT dltrain.evaluate('sc-cols', 'sc2') -> 'rows' AS rows;

-- errors: a missing name; a name of another role only (the same error);
-- feature forms refused like fit's
SELECT dltrain.evaluate('no-such-model');
SELECT * FROM dltrain.predict_batch('no-such-model', 'id');
CREATE ROLE dltrain_scoring_other;
GRANT USAGE ON SCHEMA dltrain TO dltrain_scoring_other;
SET ROLE dltrain_scoring_other;
SELECT dltrain.evaluate('sc-cols');
SELECT * FROM dltrain.predict_batch('sc-cols', 'id');
RESET ROLE;
SELECT * FROM dltrain.predict_batch(dltrain.latest_model('sc-cols'), 'sc', ARRAY['x', 'a'], 'id');
SELECT * FROM dltrain.predict_batch(dltrain.latest_model('sc-cols'), 'sc', ARRAY['nope'], 'id');
SELECT dltrain.evaluate(dltrain.latest_model('sc-cols'), 'sc', ARRAY['a', 'b'], 'nope');

-- privileges and row-level security apply
ALTER TABLE sc2 ENABLE ROW LEVEL SECURITY;
CREATE POLICY sc2_some ON sc2 USING (id <= 10);
CREATE TABLE scm AS SELECT dltrain.latest_model('sc-cols') AS model;
GRANT SELECT ON sc2, scm TO dltrain_scoring_other;
SET ROLE dltrain_scoring_other;
SELECT dltrain.evaluate(model, 'sc2', ARRAY['a', 'b'], 'y') -> 'rows' AS rows FROM scm;
RESET ROLE;
REVOKE SELECT ON sc2 FROM dltrain_scoring_other;
SET ROLE dltrain_scoring_other;
SELECT count(*) FROM scm, dltrain.predict_batch(scm.model, 'sc2', ARRAY['a', 'b'], 'id');
RESET ROLE;

DELETE FROM dltrain.models WHERE name IN ('sc-cols', 'sc-array');
REVOKE SELECT ON scm FROM dltrain_scoring_other;
DROP TABLE sc, sc2, scm;
REVOKE USAGE ON SCHEMA dltrain FROM dltrain_scoring_other;
DROP ROLE dltrain_scoring_other;
