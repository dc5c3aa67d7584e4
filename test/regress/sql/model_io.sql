-- The model type: text and binary round trips, corruption, dependencies.
CREATE TABLE io_pts AS
SELECT i, ARRAY[i % 7, i % 5, i % 3]::real[] AS x, (i % 3 = 0)::int AS y FROM generate_series(1, 60) i;
CREATE TABLE io_models AS SELECT 1 AS id, dltrain.train_mlp(x, y, '{"hidden": [4], "epochs": 2}') AS m FROM io_pts;

-- text round trip keeps the bytes
SELECT (m::text)::dltrain.model::text = m::text AS text_round_trip FROM io_models;
SELECT length(m::text) AS text_length FROM io_models;

-- binary COPY round trip
SELECT '/tmp/dltrain_regress_' || pg_backend_pid() || '.bin' AS binfile \gset
COPY io_models TO :'binfile' WITH (FORMAT binary);
CREATE TABLE io_copy (id int, m dltrain.model);
COPY io_copy FROM :'binfile' WITH (FORMAT binary);
\setenv BINFILE :binfile
\! rm -f "$BINFILE"
SELECT a.m::text = b.m::text AS binary_round_trip FROM io_models a JOIN io_copy b USING (id);
SELECT dltrain.predict(m, ARRAY[1, 2, 0]::real[]) = (SELECT dltrain.predict(m, ARRAY[1, 2, 0]::real[]) FROM io_models)
  AS same_prediction FROM io_copy;
-- send/recv also check what they read
SELECT length(dltrain.model_send(m)) = length(decode(m::text, 'base64')) AS send_is_raw FROM io_models;

-- corrupt, truncated, unknown version, not a model
-- (terse: a checksum's value depends on the trained bytes)
\set VERBOSITY terse
SELECT encode(set_byte(decode(m::text, 'base64'), 60, get_byte(decode(m::text, 'base64'), 60) # 1), 'base64')::dltrain.model
FROM io_models;
\set VERBOSITY default
SELECT encode(substring(decode(m::text, 'base64') FROM 1 FOR 100), 'base64')::dltrain.model FROM io_models;
SELECT encode(substring(decode(m::text, 'base64') FROM 1 FOR 10), 'base64')::dltrain.model FROM io_models;
SELECT encode(set_byte(decode(m::text, 'base64'), 4, 9), 'base64')::dltrain.model FROM io_models;
SELECT encode(decode(m::text, 'base64') || '\x00'::bytea, 'base64')::dltrain.model FROM io_models;
SELECT 'aGVsbG8gd29ybGQsIHRoaXMgaXMgbm90IGEgbW9kZWw='::dltrain.model;
SELECT '!!!'::dltrain.model;
-- the input function's errors are 22P02, as for PostgreSQL's own types
\echo :LAST_ERROR_SQLSTATE

-- the binary receive function checks the same, with 22P03
-- (a bytea column's binary COPY form is its bytes, as a model's is)
COPY (SELECT 1, set_byte(decode(m::text, 'base64'), 60, get_byte(decode(m::text, 'base64'), 60) # 1)
      FROM io_models) TO :'binfile' WITH (FORMAT binary);
\set VERBOSITY terse
COPY io_copy FROM :'binfile' WITH (FORMAT binary);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
COPY (SELECT 1, substring(decode(m::text, 'base64') FROM 1 FOR 100) FROM io_models) TO :'binfile' WITH (FORMAT binary);
COPY io_copy FROM :'binfile' WITH (FORMAT binary);
\echo :LAST_ERROR_SQLSTATE
\! rm -f "$BINFILE"

-- a corrupt model in a table is caught by the functions that read it
CREATE TABLE io_bad (m dltrain.model);
INSERT INTO io_bad SELECT m FROM io_models;
-- (a binary-coercible cast lets unchecked bytes in, as a damaged disk would)
CREATE CAST (bytea AS dltrain.model) WITHOUT FUNCTION;
INSERT INTO io_bad SELECT set_byte(decode(m::text, 'base64'), 60, get_byte(decode(m::text, 'base64'), 60) # 1)::dltrain.model
FROM io_models;
DROP CAST (bytea AS dltrain.model);
SELECT count(*) FROM io_bad;
\set VERBOSITY terse
SELECT dltrain.describe(m) IS NOT NULL FROM io_bad;
-- a stored value that fails its checks is data_corrupted (XX001)
\echo :LAST_ERROR_SQLSTATE
SELECT dltrain.predict(m, ARRAY[1, 2, 0]::real[]) FROM io_bad;
SELECT dltrain.export(m) IS NOT NULL FROM io_bad;
\echo :LAST_ERROR_SQLSTATE

\set VERBOSITY default
-- predict decodes a model from a table once per query, however many rows
CREATE TABLE io_big AS SELECT dltrain.train_mlp(x, y, '{"hidden": [2048], "epochs": 1}') AS m FROM io_pts;
SELECT pg_column_size(m) > 8192 AS toasted FROM io_big;
-- (each decode says so at DEBUG1: one line for the whole query)
SET client_min_messages = debug1;
SELECT count(DISTINCT dltrain.predict(m, x)) >= 1 AS scored, count(*) AS rows FROM io_big, io_pts;
RESET client_min_messages;

-- import() runs the same complete check (22023), beyond the layout it reads
CREATE TABLE io_json AS SELECT '{"format": "dltrain.mlp", "format_version": 1, "task": "classification",
  "activation": "relu", "inputs": 2, "outputs": 2, "label_type": "smallint",
  "layers": [{"in": 2, "out": 2, "weight": [[1, 0], [0, 1]], "bias": [0, 0]}],
  "normalization": {"mean": [0, 1], "scale": [1, 2]}, "classes": [-1, 7]}'::jsonb AS j;
SELECT dltrain.describe(dltrain.import(j))->'classes' AS classes FROM io_json;
SELECT dltrain.import(jsonb_set(j, '{classes}', '[0, 70000]')) FROM io_json;
\echo :LAST_ERROR_SQLSTATE
SELECT dltrain.import(jsonb_set(j, '{normalization,scale}', '[1, 0]')) FROM io_json;
SELECT dltrain.import(jsonb_set(j, '{normalization,mean}', '[1e39, 0]')) FROM io_json;
SELECT dltrain.import(jsonb_set(jsonb_set(j, '{label_type}', '"text"'), '{classes}',
                      to_jsonb(ARRAY['a', repeat('b', 1025)]))) FROM io_json;
SELECT dltrain.import(jsonb_set(j, '{task}', '"regression"') - 'classes') FROM io_json;
-- bigint classes survive exactly, and so does a weight of FLT_MAX (whose
-- shortest decimal, 3.4028235e38, is above FLT_MAX as a double)
SELECT dltrain.describe(dltrain.import(jsonb_set(jsonb_set(j, '{label_type}', '"bigint"'), '{classes}',
         '[-9223372036854775808, 9223372036854775807]')))->'classes' AS bigint_classes FROM io_json;
SELECT dltrain.export(dltrain.import(jsonb_set(j, '{layers,0,weight,0,0}', '3.4028235e38')))->'layers'->0->'weight'
  AS flt_max_weight FROM io_json;
SELECT dltrain.import(jsonb_set(j, '{layers,0,weight,0,0}', '3.4028236e38')) FROM io_json;
-- real classes are float32 values, as training reads them
SELECT dltrain.describe(dltrain.import(jsonb_set(jsonb_set(j, '{label_type}', '"real"'), '{classes}',
         '[0.1, 0.2]')))->'classes' AS real_classes FROM io_json;

-- format 1 (before validation records) is still read: a model in that layout,
-- as the fuzz harness builds it (test/fuzz: 2 inputs, 3 bigint classes, sigmoid)
CREATE TABLE io_v1 AS SELECT encode(decode('444c544d01000000c4000000c6f37e9301000000010000001400000002000000010000000200000003000000000000007b14ae47e17a843fcdccccccccccec3f000000000000000020000000020000002a0000000000000001000100e8030000000000000300000000000000020000000000803f0000003f0000000003000000fdffffffffffffff04000000000000000b0000000000000009000000000000006891ed3d5a645b3f96430bbffca9b13ec1ca21be7368913e79e946bf000020bf1b2f5d3d', 'hex'), 'base64')::dltrain.model AS m;
SELECT d->'format_version' AS format, d->'classes' AS classes, d->'options'->'activation' AS act,
       d->'epochs' AS epochs, d ? 'validation_rows' AS has_validation
FROM (SELECT dltrain.describe(m) AS d FROM io_v1) q;
SELECT dltrain.predict(m, ARRAY[1, 2]::real[]) AS v1_prediction FROM io_v1;
DROP TABLE io_v1;
