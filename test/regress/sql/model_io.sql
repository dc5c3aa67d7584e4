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
SELECT dltrain.predict(m, ARRAY[1, 2, 0]::real[]) FROM io_bad;

\set VERBOSITY default
-- predict decodes a model from a table once per query, however many rows
CREATE TABLE io_big AS SELECT dltrain.train_mlp(x, y, '{"hidden": [2048], "epochs": 1}') AS m FROM io_pts;
SELECT pg_column_size(m) > 8192 AS toasted FROM io_big;
SELECT count(DISTINCT dltrain.predict(m, x)) >= 1 AS scored FROM io_big, io_pts;
