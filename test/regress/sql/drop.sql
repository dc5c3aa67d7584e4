-- The model type belongs to the extension: DROP EXTENSION needs CASCADE.
\set VERBOSITY terse
CREATE TABLE keep (m dltrain.model);
DROP EXTENSION dltrain;
DROP EXTENSION dltrain CASCADE;
\set VERBOSITY default
SELECT count(*) AS leftover FROM pg_proc WHERE proname LIKE 'train_mlp%' OR proname LIKE 'predict%';
SELECT to_regtype('dltrain.model') IS NULL AS type_gone;
-- and it installs again cleanly
CREATE EXTENSION dltrain;
SELECT count(*) AS aggregates FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'dltrain' AND p.prokind = 'a';
