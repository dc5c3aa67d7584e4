-- dltrain 0.1.0 -> 0.2.0
--
-- Every change of this version to the SQL surface, made to a database that
-- holds 0.1.0: afterwards it equals a fresh CREATE EXTENSION dltrain of 0.2.0
-- (sql/dltrain.sql), which test/sh/upgrade.sh checks object by object.
\echo Use "ALTER EXTENSION dltrain UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- The model catalog: id, owner and created are the system's
--
-- 0.1.0 granted INSERT and UPDATE on the whole table, so a role could choose
-- its rows' creation time ('infinity' made a row dltrain.latest_model(name)
-- for everyone who could see it) and their ids (OVERRIDING SYSTEM VALUE); and
-- the owner default looked the role up by its unquoted name, so role "Bob"
-- wrote rows owned by role bob.
-- ---------------------------------------------------------------------------

-- (first: ALTER TABLE holds the table's lock until the end of the update, so
-- no row is planted between the repair below and the new privileges)
ALTER TABLE dltrain.models
    ALTER COLUMN owner SET DEFAULT pg_catalog.to_regrole(pg_catalog.quote_ident(current_user));
ALTER POLICY models_owner ON dltrain.models
    WITH CHECK (owner = pg_catalog.to_regrole(pg_catalog.quote_ident(current_user)));
COMMENT ON TABLE dltrain.models IS 'trained models with their provenance; each role sees its own rows (and those of roles it is a member of); id, owner and created are set by the system';

-- Whoever holds INSERT or UPDATE on the table (PUBLIC, as 0.1.0 granted it,
-- or the roles a DBA chose instead) keeps it on the user columns only.
DO $privileges$
DECLARE
    g record;
    grantee_sql text;
BEGIN
    FOR g IN
        SELECT DISTINCT a.grantee, a.privilege_type
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid = 'dltrain.models'::pg_catalog.regclass
          AND a.privilege_type IN ('INSERT', 'UPDATE')
          AND a.grantee <> c.relowner
        ORDER BY a.grantee, a.privilege_type
    LOOP
        grantee_sql := CASE WHEN g.grantee = 0 THEN 'PUBLIC'
                        ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) END;
        EXECUTE pg_catalog.format('REVOKE %s ON dltrain.models FROM %s', g.privilege_type, grantee_sql);
        EXECUTE pg_catalog.format('GRANT %s (name, relation, features, label, options, metrics, provenance, model) '
                                  'ON dltrain.models TO %s', g.privilege_type, grantee_sql);
    END LOOP;
END
$privileges$;
REVOKE USAGE ON SEQUENCE dltrain.models_id_seq FROM PUBLIC;

-- What 0.1.0 let roles plant: creation times in the future get the time of
-- this update, and the identity continues after every id taken.  Said as
-- WARNINGs: during an extension script PostgreSQL raises client_min_messages
-- and log_min_messages to WARNING, so a NOTICE would reach nobody.
DO $repair$
DECLARE
    n bigint;
    max_id bigint;
    next_id bigint;
BEGIN
    UPDATE dltrain.models SET created = pg_catalog.now() WHERE created > pg_catalog.now();
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        RAISE WARNING 'the creation time of % in dltrain.models lay in the future and is now the time of this update',
                CASE WHEN n = 1 THEN '1 row' ELSE n || ' rows' END
            USING DETAIL = 'dltrain 0.1.0 let any role choose the creation time of its rows; 0.2.0 sets it.';
    END IF;

    SELECT pg_catalog.max(m.id) INTO max_id FROM dltrain.models m;
    SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END INTO next_id
    FROM dltrain.models_id_seq s;
    IF max_id >= next_id THEN
        PERFORM pg_catalog.setval('dltrain.models_id_seq', max_id, true);
        RAISE WARNING 'new rows of dltrain.models now get ids after %', max_id
            USING DETAIL = 'dltrain 0.1.0 let any role choose the ids of its rows; 0.2.0 sets them.';
    END IF;
END
$repair$;

-- latest_model(name) trusts the caller's own rows only; latest_model(name,
-- owner) trusts the role it names
CREATE OR REPLACE FUNCTION dltrain.latest_model(model_name text) RETURNS dltrain.model
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    result dltrain.model;
BEGIN
    SELECT m.model INTO result
    FROM dltrain.models m
    WHERE m.name = model_name
      AND m.owner = pg_catalog.to_regrole(pg_catalog.quote_ident(current_user))
    ORDER BY m.created DESC, m.id DESC
    LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" of role "%" does not exist', model_name, current_user
            USING ERRCODE = 'undefined_object',
                  HINT = 'dltrain.latest_model(name) reads the models of the current role only; dltrain.latest_model(name, owner) reads those of another role.';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION dltrain.latest_model(text) IS 'the newest model of that name in dltrain.models owned by the current role; an error if there is none';

CREATE FUNCTION dltrain.latest_model(model_name text, model_owner regrole) RETURNS dltrain.model
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    result dltrain.model;
BEGIN
    SELECT m.model INTO result
    FROM dltrain.models m
    WHERE m.name = model_name
      AND m.owner = model_owner
    ORDER BY m.created DESC, m.id DESC
    LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" of role "%" does not exist', model_name, pg_get_userbyid(model_owner)
            USING ERRCODE = 'undefined_object',
                  HINT = 'A role sees the models of the roles whose privileges it has.';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION dltrain.latest_model(text, regrole) IS 'the newest model of that name in dltrain.models owned by the given role (trusting that role), if the caller may see it; an error if there is none';

-- ---------------------------------------------------------------------------
-- grid_search: validation_fraction defaults to the options' (else 0.2)
--
-- 0.1.0's DEFAULT 0.2 silently replaced a validation_fraction given in the
-- options.  Now NULL: the argument, else the options' value, else 0.2; given
-- in both, they must agree.
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION dltrain.grid_search(relation regclass, features text[], label text,
                                               options jsonb, grid jsonb,
                                               validation_fraction double precision DEFAULT NULL,
                                               halving_eta integer DEFAULT NULL,
                                               halving_min_epochs integer DEFAULT 1,
                                               name text DEFAULT NULL)
    RETURNS TABLE (rank integer, configuration jsonb, validation_metric double precision,
                   validation_loss double precision, loss double precision, epochs integer,
                   status text, seconds double precision, model dltrain.model)
    AS 'MODULE_PATHNAME', 'grid_search' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- ---------------------------------------------------------------------------
-- Using a model: dltrain.history, the training record one row per epoch
-- ---------------------------------------------------------------------------

-- history: the training record as rows, one per epoch, with the training loss
-- drawn as a bar (40 cells at the model's largest loss, in eighths of a cell)
-- so that the curve can be read in psql.  The block characters are made with
-- chr() at run time, so the script stays ASCII: a database whose encoding has
-- no block characters gets a bar of '#' in whole cells.
CREATE FUNCTION dltrain.history(model dltrain.model)
    RETURNS TABLE (epoch integer, loss double precision, validation_loss double precision,
                   validation_metric double precision, bar text)
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    d jsonb := dltrain.describe(model);
    losses jsonb := d -> 'loss';
    validation_losses jsonb := d -> 'validation_loss';
    validation_metrics jsonb := coalesce(d -> 'validation_accuracy', d -> 'validation_rmse');
    largest double precision;
    unicode boolean := getdatabaseencoding() = 'UTF8';
    eighths integer;
BEGIN
    SELECT max(l::double precision) INTO largest FROM jsonb_array_elements_text(losses) AS l;
    FOR i IN 1 .. jsonb_array_length(losses) LOOP
        epoch := i;
        loss := (losses ->> (i - 1))::double precision;
        validation_loss := (validation_losses ->> (i - 1))::double precision;
        validation_metric := (validation_metrics ->> (i - 1))::double precision;
        eighths := CASE WHEN largest > 0 THEN round(320 * greatest(loss, 0) / largest)::integer ELSE 0 END;
        IF unicode THEN
            -- U+2588 full block, then U+258F (one eighth) .. U+2589 (seven eighths)
            bar := repeat(chr(9608), eighths / 8)
                   || CASE WHEN eighths % 8 > 0 THEN chr(9616 - eighths % 8) ELSE '' END;
        ELSE
            bar := repeat('#', (eighths + 4) / 8);
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION dltrain.history(dltrain.model) IS 'one row per epoch: training loss, validation loss and metric (NULL without validation), and the loss drawn as a bar';

-- ---------------------------------------------------------------------------
-- The types real tables have (0.2.0): every pair of a feature array type and
-- a label type, for train_mlp, train_mlp_multi, evaluate and the predict
-- functions.
--
-- Features: real[], double precision[], smallint[], integer[], bigint[],
-- numeric[] (psycopg2 sends a Python list of numbers as numeric[]).  Labels:
-- smallint, integer, bigint, text, real, double precision, numeric (read as
-- double precision: a regression target unless "task": "classification"),
-- boolean (classes false and true).  0.1.0 declared real[] and double
-- precision[] with the first six labels; the other pairs did not resolve
-- (numeric[] casts to both array types alike: "is not unique"; boolean casts
-- to none).  Exact overloads remove the ambiguity: the C functions behind
-- them take "any" and check the types, so every overload is the same code.
-- This block, identical in sql/dltrain.sql and sql/dltrain--0.1.0--0.2.0.sql,
-- creates the pairs 0.1.0 lacked.
-- ---------------------------------------------------------------------------

DO $overloads$
DECLARE
    f text;
    l text;
    sig text;
BEGIN
    FOREACH f IN ARRAY ARRAY['real[]', 'double precision[]', 'smallint[]', 'integer[]',
                             'bigint[]', 'numeric[]'] LOOP
        IF f NOT IN ('real[]', 'double precision[]') THEN
            EXECUTE pg_catalog.format(
                'CREATE FUNCTION dltrain.predict(dltrain.model, %1$s) RETURNS double precision '
                'AS %2$L, ''predict'' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE; '
                'CREATE FUNCTION dltrain.predict_class(dltrain.model, %1$s) RETURNS text '
                'AS %2$L, ''predict_class'' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE; '
                'CREATE FUNCTION dltrain.predict_proba(dltrain.model, %1$s) RETURNS real[] '
                'AS %2$L, ''predict_proba'' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE; '
                'COMMENT ON FUNCTION dltrain.predict(dltrain.model, %1$s) IS '
                '''the regression value, or the predicted class of a model with numeric labels''; '
                'COMMENT ON FUNCTION dltrain.predict_class(dltrain.model, %1$s) IS ''the predicted class, as text''; '
                'COMMENT ON FUNCTION dltrain.predict_proba(dltrain.model, %1$s) IS '
                '''class probabilities, in the class order of describe()''',
                f, 'MODULE_PATHNAME');
        END IF;
        FOREACH l IN ARRAY ARRAY['smallint', 'integer', 'bigint', 'text', 'real',
                                 'double precision', 'numeric', 'boolean'] LOOP
            CONTINUE WHEN f IN ('real[]', 'double precision[]') AND l NOT IN ('numeric', 'boolean');
            sig := f || ', ' || l;
            EXECUTE pg_catalog.format(
                'CREATE AGGREGATE dltrain.train_mlp(%1$s) (SFUNC = dltrain.train_mlp_sfunc, STYPE = internal, '
                'FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE, PARALLEL = UNSAFE); '
                'CREATE AGGREGATE dltrain.train_mlp(%1$s, jsonb) (SFUNC = dltrain.train_mlp_sfunc, STYPE = internal, '
                'FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE, PARALLEL = UNSAFE); '
                'COMMENT ON AGGREGATE dltrain.train_mlp(%1$s) IS '
                '''trains a multilayer perceptron on the rows of a query with default options''; '
                'COMMENT ON AGGREGATE dltrain.train_mlp(%1$s, jsonb) IS '
                '''trains a multilayer perceptron on the rows of a query with the given options''; '
                'CREATE AGGREGATE dltrain.train_mlp_multi(%1$s, configurations jsonb) ('
                'SFUNC = dltrain.train_mlp_multi_sfunc, STYPE = internal, '
                'FINALFUNC = dltrain.train_mlp_multi_ffunc, FINALFUNC_MODIFY = READ_WRITE, PARALLEL = UNSAFE); '
                'COMMENT ON AGGREGATE dltrain.train_mlp_multi(%1$s, jsonb) IS '
                '''trains one multilayer perceptron per configuration (a JSON array of option objects) from one scan; returns them in order''; '
                'CREATE AGGREGATE dltrain.evaluate(dltrain.model, %1$s) ('
                'SFUNC = dltrain.evaluate_sfunc, STYPE = internal, '
                'FINALFUNC = dltrain.evaluate_ffunc, FINALFUNC_MODIFY = READ_WRITE, '
                'COMBINEFUNC = dltrain.evaluate_combine, '
                'SERIALFUNC = dltrain.evaluate_serialize, DESERIALFUNC = dltrain.evaluate_deserialize, '
                'PARALLEL = SAFE); '
                'COMMENT ON AGGREGATE dltrain.evaluate(dltrain.model, %1$s) IS '
                '''metrics of a model on the rows of a query (accuracy, log loss, confusion matrix, precision/recall/F1; or MSE, RMSE, MAE, R2)''',
                sig);
        END LOOP;
    END LOOP;
END
$overloads$;

-- ---------------------------------------------------------------------------
-- Scoring a relation by its columns, and a catalog model by its name (0.2.0)
--
-- predict_batch and evaluate take the feature forms fit takes: one array
-- column, or a list of numeric columns.  By name, the newest model of that
-- name of the current role (dltrain.latest_model(name)'s rule: a name that
-- exists only for other roles is as missing as one that does not exist) is
-- scored on the relation and features its dltrain.models row records, or on
-- another relation with the same columns.
-- ---------------------------------------------------------------------------

CREATE FUNCTION dltrain.predict_batch(model dltrain.model, relation regclass, features text[], key text)
    RETURNS TABLE (key text, prediction double precision, class text, probability real)
    AS 'MODULE_PATHNAME', 'predict_batch' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION dltrain.predict_batch(dltrain.model, regclass, text[], text) IS
    'scores every row of a relation in batches, its features one array column or a list of numeric columns: the key as text, the prediction, the class and its probability';

CREATE FUNCTION dltrain.evaluate(model dltrain.model, relation regclass, features text[], label text)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'evaluate_relation' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION dltrain.evaluate(dltrain.model, regclass, text[], text) IS
    'metrics of a model on every row of a relation, its features one array column or a list of numeric columns';

-- the newest catalog row of that name of the current role (internal)
CREATE FUNCTION dltrain.model_row(model_name text)
    RETURNS TABLE (model dltrain.model, relation text, features text[], label text)
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    RETURN QUERY
    SELECT m.model, m.relation, m.features, m.label
    FROM dltrain.models m
    WHERE m.name = model_name
      AND m.owner = pg_catalog.to_regrole(pg_catalog.quote_ident(current_user))
    ORDER BY m.created DESC, m.id DESC
    LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" of role "%" does not exist', model_name, current_user
            USING ERRCODE = 'undefined_object',
                  HINT = 'dltrain.latest_model(name) reads the models of the current role only; dltrain.latest_model(name, owner) reads those of another role.';
    END IF;
END
$$;
COMMENT ON FUNCTION dltrain.model_row(text) IS 'the newest dltrain.models row of that name owned by the current role (model, relation, features, label); an error if there is none';

CREATE FUNCTION dltrain.predict_batch(model_name text, key text, relation regclass DEFAULT NULL)
    RETURNS TABLE (key text, prediction double precision, class text, probability real)
    LANGUAGE sql STABLE PARALLEL RESTRICTED
    SET search_path = pg_catalog, pg_temp
    -- $1..$3: the output column names hide the parameters' in the body
    AS $$
    SELECT p.*
    FROM dltrain.model_row($1) r,
         dltrain.predict_batch(r.model, coalesce($3, r.relation::pg_catalog.regclass), r.features, $2) p
$$;
COMMENT ON FUNCTION dltrain.predict_batch(text, text, regclass) IS
    'scores a catalog model (the current role''s newest of that name) on the relation and features its row records, or on the given relation';

CREATE FUNCTION dltrain.evaluate(model_name text, relation regclass DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    r record;
BEGIN
    IF model_name IS NULL THEN
        RAISE EXCEPTION 'dltrain.evaluate needs a model name, not NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO r FROM dltrain.model_row(model_name);
    IF r.features IS NULL OR r.label IS NULL OR (relation IS NULL AND r.relation IS NULL) THEN
        RAISE EXCEPTION 'model "%" records no %', model_name,
                CASE WHEN r.features IS NULL THEN 'features' WHEN r.label IS NULL THEN 'label' ELSE 'relation' END
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Evaluate it with dltrain.evaluate(model, relation, features, label).';
    END IF;
    RETURN dltrain.evaluate(r.model, coalesce(relation, r.relation::regclass), r.features, r.label);
END
$$;
COMMENT ON FUNCTION dltrain.evaluate(text, regclass) IS
    'metrics of a catalog model (the current role''s newest of that name) on every row of the relation its row records, or of the given relation';

-- Retraining on the rows added since (issue 17): dltrain.retrain
--
-- retrain continues a catalog model (warm start) on the rows added or updated
-- since it was trained: by the training's recorded snapshot (the xmin of each
-- row, widened to 64 bits by widen_xid) or by a key column (since).  It runs
-- with the caller's rights, reading the caller's own catalog rows only.
-- ---------------------------------------------------------------------------

CREATE FUNCTION dltrain.widen_xid(xid) RETURNS xid8
    AS 'MODULE_PATHNAME', 'widen_xid' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dltrain.widen_xid(xid) IS
    'a 32-bit xid seen now (a row''s xmin) as xid8, widened against the next transaction id (exact for xids issued less than 2^32 transactions ago)';

CREATE FUNCTION dltrain.retrain(name text, options jsonb DEFAULT '{}', since text DEFAULT NULL,
                                replay double precision DEFAULT 0, new_name text DEFAULT NULL)
    RETURNS TABLE (epoch integer, loss double precision, validation_loss double precision,
                   validation_metric double precision, rows bigint, seconds double precision,
                   rows_per_sec double precision, model dltrain.model)
    AS 'MODULE_PATHNAME', 'retrain' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dltrain.retrain(text, jsonb, text, double precision, text) IS
    'continues the caller''s catalog model on the rows added since it was trained (by snapshot, or by a key column with since), warm-started, with a replay fraction of old rows; stores the result under new_name (default: the same name)';
