-- dltrain: train neural networks inside PostgreSQL
\echo Use "CREATE EXTENSION dltrain" to load this file. \quit

-- ---------------------------------------------------------------------------
-- The model type
-- ---------------------------------------------------------------------------

CREATE TYPE dltrain.model;

CREATE FUNCTION dltrain.model_in(cstring) RETURNS dltrain.model
    AS 'MODULE_PATHNAME', 'model_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dltrain.model_out(dltrain.model) RETURNS cstring
    AS 'MODULE_PATHNAME', 'model_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dltrain.model_recv(internal) RETURNS dltrain.model
    AS 'MODULE_PATHNAME', 'model_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dltrain.model_send(dltrain.model) RETURNS bytea
    AS 'MODULE_PATHNAME', 'model_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE dltrain.model (
    INPUT = dltrain.model_in,
    OUTPUT = dltrain.model_out,
    RECEIVE = dltrain.model_recv,
    SEND = dltrain.model_send,
    INTERNALLENGTH = VARIABLE,
    STORAGE = extended
);
COMMENT ON TYPE dltrain.model IS 'a trained dltrain network: architecture, classes, normalization, weights and training record';

COMMENT ON FUNCTION dltrain.model_in(cstring) IS 'reads a model from its base64 text form, checking it';
COMMENT ON FUNCTION dltrain.model_out(dltrain.model) IS 'writes a model as base64 text';
COMMENT ON FUNCTION dltrain.model_recv(internal) IS 'reads a model from its binary form, checking it';
COMMENT ON FUNCTION dltrain.model_send(dltrain.model) IS 'writes a model in binary form';

-- ---------------------------------------------------------------------------
-- Training: the train_mlp aggregate
-- ---------------------------------------------------------------------------

CREATE FUNCTION dltrain.train_mlp_sfunc(internal, "any", "any") RETURNS internal
    AS 'MODULE_PATHNAME', 'train_mlp_sfunc' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dltrain.train_mlp_sfunc(internal, "any", "any", jsonb) RETURNS internal
    AS 'MODULE_PATHNAME', 'train_mlp_sfunc' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dltrain.train_mlp_ffunc(internal) RETURNS dltrain.model
    AS 'MODULE_PATHNAME', 'train_mlp_ffunc' LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dltrain.train_mlp_sfunc(internal, "any", "any") IS 'train_mlp transition: appends a row to the row cache';
COMMENT ON FUNCTION dltrain.train_mlp_sfunc(internal, "any", "any", jsonb) IS 'train_mlp transition: appends a row to the row cache';
COMMENT ON FUNCTION dltrain.train_mlp_ffunc(internal) IS 'train_mlp final function: trains from the row cache';

CREATE AGGREGATE dltrain.train_mlp(real[], smallint) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(real[], smallint, jsonb) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(real[], integer) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(real[], integer, jsonb) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(real[], bigint) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(real[], bigint, jsonb) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(real[], text) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(real[], text, jsonb) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(real[], real) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(real[], real, jsonb) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(real[], double precision) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(real[], double precision, jsonb) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(double precision[], smallint) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(double precision[], smallint, jsonb) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(double precision[], integer) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(double precision[], integer, jsonb) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(double precision[], bigint) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(double precision[], bigint, jsonb) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(double precision[], text) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(double precision[], text, jsonb) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(double precision[], real) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(double precision[], real, jsonb) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(double precision[], double precision) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

CREATE AGGREGATE dltrain.train_mlp(double precision[], double precision, jsonb) (
    SFUNC = dltrain.train_mlp_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);

COMMENT ON AGGREGATE dltrain.train_mlp(real[], smallint) IS 'trains a multilayer perceptron on the rows of a query with default options';
COMMENT ON AGGREGATE dltrain.train_mlp(real[], smallint, jsonb) IS 'trains a multilayer perceptron on the rows of a query with the given options';
COMMENT ON AGGREGATE dltrain.train_mlp(real[], integer) IS 'trains a multilayer perceptron on the rows of a query with default options';
COMMENT ON AGGREGATE dltrain.train_mlp(real[], integer, jsonb) IS 'trains a multilayer perceptron on the rows of a query with the given options';
COMMENT ON AGGREGATE dltrain.train_mlp(real[], bigint) IS 'trains a multilayer perceptron on the rows of a query with default options';
COMMENT ON AGGREGATE dltrain.train_mlp(real[], bigint, jsonb) IS 'trains a multilayer perceptron on the rows of a query with the given options';
COMMENT ON AGGREGATE dltrain.train_mlp(real[], text) IS 'trains a multilayer perceptron on the rows of a query with default options';
COMMENT ON AGGREGATE dltrain.train_mlp(real[], text, jsonb) IS 'trains a multilayer perceptron on the rows of a query with the given options';
COMMENT ON AGGREGATE dltrain.train_mlp(real[], real) IS 'trains a multilayer perceptron on the rows of a query with default options';
COMMENT ON AGGREGATE dltrain.train_mlp(real[], real, jsonb) IS 'trains a multilayer perceptron on the rows of a query with the given options';
COMMENT ON AGGREGATE dltrain.train_mlp(real[], double precision) IS 'trains a multilayer perceptron on the rows of a query with default options';
COMMENT ON AGGREGATE dltrain.train_mlp(real[], double precision, jsonb) IS 'trains a multilayer perceptron on the rows of a query with the given options';
COMMENT ON AGGREGATE dltrain.train_mlp(double precision[], smallint) IS 'trains a multilayer perceptron on the rows of a query with default options';
COMMENT ON AGGREGATE dltrain.train_mlp(double precision[], smallint, jsonb) IS 'trains a multilayer perceptron on the rows of a query with the given options';
COMMENT ON AGGREGATE dltrain.train_mlp(double precision[], integer) IS 'trains a multilayer perceptron on the rows of a query with default options';
COMMENT ON AGGREGATE dltrain.train_mlp(double precision[], integer, jsonb) IS 'trains a multilayer perceptron on the rows of a query with the given options';
COMMENT ON AGGREGATE dltrain.train_mlp(double precision[], bigint) IS 'trains a multilayer perceptron on the rows of a query with default options';
COMMENT ON AGGREGATE dltrain.train_mlp(double precision[], bigint, jsonb) IS 'trains a multilayer perceptron on the rows of a query with the given options';
COMMENT ON AGGREGATE dltrain.train_mlp(double precision[], text) IS 'trains a multilayer perceptron on the rows of a query with default options';
COMMENT ON AGGREGATE dltrain.train_mlp(double precision[], text, jsonb) IS 'trains a multilayer perceptron on the rows of a query with the given options';
COMMENT ON AGGREGATE dltrain.train_mlp(double precision[], real) IS 'trains a multilayer perceptron on the rows of a query with default options';
COMMENT ON AGGREGATE dltrain.train_mlp(double precision[], real, jsonb) IS 'trains a multilayer perceptron on the rows of a query with the given options';
COMMENT ON AGGREGATE dltrain.train_mlp(double precision[], double precision) IS 'trains a multilayer perceptron on the rows of a query with default options';
COMMENT ON AGGREGATE dltrain.train_mlp(double precision[], double precision, jsonb) IS 'trains a multilayer perceptron on the rows of a query with the given options';

-- ---------------------------------------------------------------------------
-- Model selection: train_mlp_multi trains one model per configuration from
-- one scan and one row cache.  The planner hook rewrites several train_mlp
-- calls over the same rows into one of these.
-- ---------------------------------------------------------------------------

CREATE FUNCTION dltrain.train_mlp_multi_sfunc(internal, "any", "any", jsonb) RETURNS internal
    AS 'MODULE_PATHNAME', 'train_mlp_multi_sfunc' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dltrain.train_mlp_multi_ffunc(internal) RETURNS dltrain.model[]
    AS 'MODULE_PATHNAME', 'train_mlp_multi_ffunc' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dltrain.train_mlp_multi_sfunc(internal, "any", "any", jsonb) IS 'train_mlp_multi transition: appends a row to the row cache';
COMMENT ON FUNCTION dltrain.train_mlp_multi_ffunc(internal) IS 'train_mlp_multi final function: trains every configuration from the row cache';

CREATE AGGREGATE dltrain.train_mlp_multi(real[], smallint, configurations jsonb) (
    SFUNC = dltrain.train_mlp_multi_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_multi_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE dltrain.train_mlp_multi(real[], smallint, jsonb) IS 'trains one multilayer perceptron per configuration (a JSON array of option objects) from one scan; returns them in order';

CREATE AGGREGATE dltrain.train_mlp_multi(real[], integer, configurations jsonb) (
    SFUNC = dltrain.train_mlp_multi_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_multi_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE dltrain.train_mlp_multi(real[], integer, jsonb) IS 'trains one multilayer perceptron per configuration (a JSON array of option objects) from one scan; returns them in order';

CREATE AGGREGATE dltrain.train_mlp_multi(real[], bigint, configurations jsonb) (
    SFUNC = dltrain.train_mlp_multi_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_multi_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE dltrain.train_mlp_multi(real[], bigint, jsonb) IS 'trains one multilayer perceptron per configuration (a JSON array of option objects) from one scan; returns them in order';

CREATE AGGREGATE dltrain.train_mlp_multi(real[], text, configurations jsonb) (
    SFUNC = dltrain.train_mlp_multi_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_multi_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE dltrain.train_mlp_multi(real[], text, jsonb) IS 'trains one multilayer perceptron per configuration (a JSON array of option objects) from one scan; returns them in order';

CREATE AGGREGATE dltrain.train_mlp_multi(real[], real, configurations jsonb) (
    SFUNC = dltrain.train_mlp_multi_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_multi_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE dltrain.train_mlp_multi(real[], real, jsonb) IS 'trains one multilayer perceptron per configuration (a JSON array of option objects) from one scan; returns them in order';

CREATE AGGREGATE dltrain.train_mlp_multi(real[], double precision, configurations jsonb) (
    SFUNC = dltrain.train_mlp_multi_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_multi_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE dltrain.train_mlp_multi(real[], double precision, jsonb) IS 'trains one multilayer perceptron per configuration (a JSON array of option objects) from one scan; returns them in order';

CREATE AGGREGATE dltrain.train_mlp_multi(double precision[], smallint, configurations jsonb) (
    SFUNC = dltrain.train_mlp_multi_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_multi_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE dltrain.train_mlp_multi(double precision[], smallint, jsonb) IS 'trains one multilayer perceptron per configuration (a JSON array of option objects) from one scan; returns them in order';

CREATE AGGREGATE dltrain.train_mlp_multi(double precision[], integer, configurations jsonb) (
    SFUNC = dltrain.train_mlp_multi_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_multi_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE dltrain.train_mlp_multi(double precision[], integer, jsonb) IS 'trains one multilayer perceptron per configuration (a JSON array of option objects) from one scan; returns them in order';

CREATE AGGREGATE dltrain.train_mlp_multi(double precision[], bigint, configurations jsonb) (
    SFUNC = dltrain.train_mlp_multi_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_multi_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE dltrain.train_mlp_multi(double precision[], bigint, jsonb) IS 'trains one multilayer perceptron per configuration (a JSON array of option objects) from one scan; returns them in order';

CREATE AGGREGATE dltrain.train_mlp_multi(double precision[], text, configurations jsonb) (
    SFUNC = dltrain.train_mlp_multi_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_multi_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE dltrain.train_mlp_multi(double precision[], text, jsonb) IS 'trains one multilayer perceptron per configuration (a JSON array of option objects) from one scan; returns them in order';

CREATE AGGREGATE dltrain.train_mlp_multi(double precision[], real, configurations jsonb) (
    SFUNC = dltrain.train_mlp_multi_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_multi_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE dltrain.train_mlp_multi(double precision[], real, jsonb) IS 'trains one multilayer perceptron per configuration (a JSON array of option objects) from one scan; returns them in order';

CREATE AGGREGATE dltrain.train_mlp_multi(double precision[], double precision, configurations jsonb) (
    SFUNC = dltrain.train_mlp_multi_sfunc, STYPE = internal,
    FINALFUNC = dltrain.train_mlp_multi_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE dltrain.train_mlp_multi(double precision[], double precision, jsonb) IS 'trains one multilayer perceptron per configuration (a JSON array of option objects) from one scan; returns them in order';


-- ---------------------------------------------------------------------------
-- Using a model
-- ---------------------------------------------------------------------------

CREATE FUNCTION dltrain.describe(dltrain.model) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'describe' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dltrain.describe(dltrain.model) IS 'what a model holds: architecture, classes (in predict_proba order), options, training record';

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

CREATE FUNCTION dltrain.predict(dltrain.model, real[]) RETURNS double precision
    AS 'MODULE_PATHNAME', 'predict' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dltrain.predict_class(dltrain.model, real[]) RETURNS text
    AS 'MODULE_PATHNAME', 'predict_class' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dltrain.predict_proba(dltrain.model, real[]) RETURNS real[]
    AS 'MODULE_PATHNAME', 'predict_proba' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dltrain.predict(dltrain.model, real[]) IS 'the regression value, or the predicted class of a model with numeric labels';
COMMENT ON FUNCTION dltrain.predict_class(dltrain.model, real[]) IS 'the predicted class, as text';
COMMENT ON FUNCTION dltrain.predict_proba(dltrain.model, real[]) IS 'class probabilities, in the class order of describe()';

CREATE FUNCTION dltrain.predict(dltrain.model, double precision[]) RETURNS double precision
    AS 'MODULE_PATHNAME', 'predict' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dltrain.predict_class(dltrain.model, double precision[]) RETURNS text
    AS 'MODULE_PATHNAME', 'predict_class' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dltrain.predict_proba(dltrain.model, double precision[]) RETURNS real[]
    AS 'MODULE_PATHNAME', 'predict_proba' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dltrain.predict(dltrain.model, double precision[]) IS 'the regression value, or the predicted class of a model with numeric labels';
COMMENT ON FUNCTION dltrain.predict_class(dltrain.model, double precision[]) IS 'the predicted class, as text';
COMMENT ON FUNCTION dltrain.predict_proba(dltrain.model, double precision[]) IS 'class probabilities, in the class order of describe()';

-- ---------------------------------------------------------------------------
-- Block-shuffled reads: a TABLESAMPLE method
-- ---------------------------------------------------------------------------

CREATE FUNCTION dltrain.block_shuffle(internal) RETURNS tsm_handler
    AS 'MODULE_PATHNAME', 'block_shuffle_handler' LANGUAGE C STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dltrain.block_shuffle(internal) IS
    'TABLESAMPLE method: every page of the table exactly once, in a seeded random order of block ranges (argument: pages per range)';

-- ---------------------------------------------------------------------------
-- Evaluation: the evaluate aggregate (parallel safe)
-- ---------------------------------------------------------------------------

CREATE FUNCTION dltrain.evaluate_sfunc(internal, dltrain.model, "any", "any") RETURNS internal
    AS 'MODULE_PATHNAME', 'evaluate_sfunc' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dltrain.evaluate_ffunc(internal) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'evaluate_ffunc' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dltrain.evaluate_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'evaluate_combine' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dltrain.evaluate_serialize(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'evaluate_serialize' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
CREATE FUNCTION dltrain.evaluate_deserialize(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'evaluate_deserialize' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION dltrain.evaluate_sfunc(internal, dltrain.model, "any", "any") IS 'evaluate transition: scores rows in batches';
COMMENT ON FUNCTION dltrain.evaluate_ffunc(internal) IS 'evaluate final function: the metrics as jsonb';
COMMENT ON FUNCTION dltrain.evaluate_combine(internal, internal) IS 'evaluate combine function: adds partial metrics';
COMMENT ON FUNCTION dltrain.evaluate_serialize(internal) IS 'evaluate: serializes a partial state';
COMMENT ON FUNCTION dltrain.evaluate_deserialize(bytea, internal) IS 'evaluate: deserializes a partial state';

CREATE AGGREGATE dltrain.evaluate(dltrain.model, real[], smallint) (
    SFUNC = dltrain.evaluate_sfunc, STYPE = internal,
    FINALFUNC = dltrain.evaluate_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    COMBINEFUNC = dltrain.evaluate_combine,
    SERIALFUNC = dltrain.evaluate_serialize, DESERIALFUNC = dltrain.evaluate_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dltrain.evaluate(dltrain.model, real[], smallint) IS 'metrics of a model on the rows of a query (accuracy, log loss, confusion matrix, precision/recall/F1; or MSE, RMSE, MAE, R2)';
CREATE AGGREGATE dltrain.evaluate(dltrain.model, real[], integer) (
    SFUNC = dltrain.evaluate_sfunc, STYPE = internal,
    FINALFUNC = dltrain.evaluate_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    COMBINEFUNC = dltrain.evaluate_combine,
    SERIALFUNC = dltrain.evaluate_serialize, DESERIALFUNC = dltrain.evaluate_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dltrain.evaluate(dltrain.model, real[], integer) IS 'metrics of a model on the rows of a query (accuracy, log loss, confusion matrix, precision/recall/F1; or MSE, RMSE, MAE, R2)';
CREATE AGGREGATE dltrain.evaluate(dltrain.model, real[], bigint) (
    SFUNC = dltrain.evaluate_sfunc, STYPE = internal,
    FINALFUNC = dltrain.evaluate_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    COMBINEFUNC = dltrain.evaluate_combine,
    SERIALFUNC = dltrain.evaluate_serialize, DESERIALFUNC = dltrain.evaluate_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dltrain.evaluate(dltrain.model, real[], bigint) IS 'metrics of a model on the rows of a query (accuracy, log loss, confusion matrix, precision/recall/F1; or MSE, RMSE, MAE, R2)';
CREATE AGGREGATE dltrain.evaluate(dltrain.model, real[], text) (
    SFUNC = dltrain.evaluate_sfunc, STYPE = internal,
    FINALFUNC = dltrain.evaluate_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    COMBINEFUNC = dltrain.evaluate_combine,
    SERIALFUNC = dltrain.evaluate_serialize, DESERIALFUNC = dltrain.evaluate_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dltrain.evaluate(dltrain.model, real[], text) IS 'metrics of a model on the rows of a query (accuracy, log loss, confusion matrix, precision/recall/F1; or MSE, RMSE, MAE, R2)';
CREATE AGGREGATE dltrain.evaluate(dltrain.model, real[], real) (
    SFUNC = dltrain.evaluate_sfunc, STYPE = internal,
    FINALFUNC = dltrain.evaluate_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    COMBINEFUNC = dltrain.evaluate_combine,
    SERIALFUNC = dltrain.evaluate_serialize, DESERIALFUNC = dltrain.evaluate_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dltrain.evaluate(dltrain.model, real[], real) IS 'metrics of a model on the rows of a query (accuracy, log loss, confusion matrix, precision/recall/F1; or MSE, RMSE, MAE, R2)';
CREATE AGGREGATE dltrain.evaluate(dltrain.model, real[], double precision) (
    SFUNC = dltrain.evaluate_sfunc, STYPE = internal,
    FINALFUNC = dltrain.evaluate_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    COMBINEFUNC = dltrain.evaluate_combine,
    SERIALFUNC = dltrain.evaluate_serialize, DESERIALFUNC = dltrain.evaluate_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dltrain.evaluate(dltrain.model, real[], double precision) IS 'metrics of a model on the rows of a query (accuracy, log loss, confusion matrix, precision/recall/F1; or MSE, RMSE, MAE, R2)';
CREATE AGGREGATE dltrain.evaluate(dltrain.model, double precision[], smallint) (
    SFUNC = dltrain.evaluate_sfunc, STYPE = internal,
    FINALFUNC = dltrain.evaluate_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    COMBINEFUNC = dltrain.evaluate_combine,
    SERIALFUNC = dltrain.evaluate_serialize, DESERIALFUNC = dltrain.evaluate_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dltrain.evaluate(dltrain.model, double precision[], smallint) IS 'metrics of a model on the rows of a query (accuracy, log loss, confusion matrix, precision/recall/F1; or MSE, RMSE, MAE, R2)';
CREATE AGGREGATE dltrain.evaluate(dltrain.model, double precision[], integer) (
    SFUNC = dltrain.evaluate_sfunc, STYPE = internal,
    FINALFUNC = dltrain.evaluate_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    COMBINEFUNC = dltrain.evaluate_combine,
    SERIALFUNC = dltrain.evaluate_serialize, DESERIALFUNC = dltrain.evaluate_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dltrain.evaluate(dltrain.model, double precision[], integer) IS 'metrics of a model on the rows of a query (accuracy, log loss, confusion matrix, precision/recall/F1; or MSE, RMSE, MAE, R2)';
CREATE AGGREGATE dltrain.evaluate(dltrain.model, double precision[], bigint) (
    SFUNC = dltrain.evaluate_sfunc, STYPE = internal,
    FINALFUNC = dltrain.evaluate_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    COMBINEFUNC = dltrain.evaluate_combine,
    SERIALFUNC = dltrain.evaluate_serialize, DESERIALFUNC = dltrain.evaluate_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dltrain.evaluate(dltrain.model, double precision[], bigint) IS 'metrics of a model on the rows of a query (accuracy, log loss, confusion matrix, precision/recall/F1; or MSE, RMSE, MAE, R2)';
CREATE AGGREGATE dltrain.evaluate(dltrain.model, double precision[], text) (
    SFUNC = dltrain.evaluate_sfunc, STYPE = internal,
    FINALFUNC = dltrain.evaluate_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    COMBINEFUNC = dltrain.evaluate_combine,
    SERIALFUNC = dltrain.evaluate_serialize, DESERIALFUNC = dltrain.evaluate_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dltrain.evaluate(dltrain.model, double precision[], text) IS 'metrics of a model on the rows of a query (accuracy, log loss, confusion matrix, precision/recall/F1; or MSE, RMSE, MAE, R2)';
CREATE AGGREGATE dltrain.evaluate(dltrain.model, double precision[], real) (
    SFUNC = dltrain.evaluate_sfunc, STYPE = internal,
    FINALFUNC = dltrain.evaluate_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    COMBINEFUNC = dltrain.evaluate_combine,
    SERIALFUNC = dltrain.evaluate_serialize, DESERIALFUNC = dltrain.evaluate_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dltrain.evaluate(dltrain.model, double precision[], real) IS 'metrics of a model on the rows of a query (accuracy, log loss, confusion matrix, precision/recall/F1; or MSE, RMSE, MAE, R2)';
CREATE AGGREGATE dltrain.evaluate(dltrain.model, double precision[], double precision) (
    SFUNC = dltrain.evaluate_sfunc, STYPE = internal,
    FINALFUNC = dltrain.evaluate_ffunc, FINALFUNC_MODIFY = READ_WRITE,
    COMBINEFUNC = dltrain.evaluate_combine,
    SERIALFUNC = dltrain.evaluate_serialize, DESERIALFUNC = dltrain.evaluate_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dltrain.evaluate(dltrain.model, double precision[], double precision) IS 'metrics of a model on the rows of a query (accuracy, log loss, confusion matrix, precision/recall/F1; or MSE, RMSE, MAE, R2)';

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
-- Batched inference
-- ---------------------------------------------------------------------------

CREATE FUNCTION dltrain.predict_batch(model dltrain.model, relation regclass, features text, key text)
    RETURNS TABLE (key text, prediction double precision, class text, probability real)
    AS 'MODULE_PATHNAME', 'predict_batch' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION dltrain.predict_batch(dltrain.model, regclass, text, text) IS
    'scores every row of a relation in batches (GEMMs): the key as text, the prediction, the class and its probability';

-- ---------------------------------------------------------------------------
-- Weights that travel
-- ---------------------------------------------------------------------------

CREATE FUNCTION dltrain.export(dltrain.model) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'export_model' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dltrain.import(jsonb) RETURNS dltrain.model
    AS 'MODULE_PATHNAME', 'import_model' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dltrain.export(dltrain.model) IS 'a model''s layers, weights, activation, normalization and classes as jsonb (format dltrain.mlp)';
COMMENT ON FUNCTION dltrain.import(jsonb) IS 'a model from the jsonb layout dltrain.export() writes (e.g. a network trained in PyTorch)';

-- dltrain's functions run with the caller's rights: everyone may use the schema
GRANT USAGE ON SCHEMA dltrain TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Progress of running trainings (needs shared_preload_libraries)
-- ---------------------------------------------------------------------------

CREATE FUNCTION dltrain.training_progress(
    OUT pid integer, OUT usesysid oid, OUT usename name, OUT kind text,
    OUT relid oid, OUT phase text, OUT epoch integer, OUT epochs integer,
    OUT rows_done bigint, OUT rows_total bigint, OUT loss double precision,
    OUT rows_per_sec double precision, OUT started timestamptz)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'training_progress' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION dltrain.training_progress() IS 'one row per running training (aggregate or fit), from shared memory';

CREATE VIEW dltrain.training_progress AS
    SELECT p.pid, p.usesysid, p.usename, p.kind, p.relid, p.phase, p.epoch, p.epochs,
           p.rows_done, p.rows_total, p.loss, p.rows_per_sec, p.started
    FROM dltrain.training_progress() p;
COMMENT ON VIEW dltrain.training_progress IS 'running trainings, in the style of pg_stat_progress_*';
GRANT SELECT ON dltrain.training_progress TO PUBLIC;

-- ---------------------------------------------------------------------------
-- The model catalog
--
-- Who may do what (README, "The model catalog"):
--   - a role reads the rows of the roles whose privileges it has (the policy),
--     and writes rows it owns;
--   - id, owner and created are the system's: the identity and the column
--     defaults set them, and INSERT and UPDATE are granted on the other
--     columns only, so that no role but a superuser (or the table's owner)
--     can choose them; a superuser's restore keeps them;
--   - latest_model(name) trusts the caller's own rows only, by a condition in
--     its query, not through the policy (which superusers, BYPASSRLS roles and
--     the table's owner skip); latest_model(name, owner) trusts that role.
-- Every change here goes into the update scripts too (test/sh/upgrade.sh).
-- ---------------------------------------------------------------------------

CREATE TABLE dltrain.models (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    owner regrole NOT NULL DEFAULT pg_catalog.to_regrole(pg_catalog.quote_ident(current_user)),
    created timestamptz NOT NULL DEFAULT now(),
    relation text,
    features text[],
    label text,
    options jsonb,
    metrics jsonb,
    provenance jsonb,
    model dltrain.model NOT NULL
);
CREATE INDEX models_name_created ON dltrain.models (name, created DESC);
COMMENT ON TABLE dltrain.models IS 'trained models with their provenance; each role sees its own rows (and those of roles it is a member of); id, owner and created are set by the system';

-- models memorize their training data: owners see their own rows only
ALTER TABLE dltrain.models ENABLE ROW LEVEL SECURITY;
-- (pg_has_role on an OID is NULL, so false, for a dropped role; the owner is
-- looked up by the quoted name: to_regrole('Bob') would find role bob)
CREATE POLICY models_owner ON dltrain.models
    USING (pg_catalog.pg_has_role(owner::oid, 'USAGE'))
    WITH CHECK (owner = pg_catalog.to_regrole(pg_catalog.quote_ident(current_user)));
GRANT SELECT, DELETE ON dltrain.models TO PUBLIC;
GRANT INSERT (name, relation, features, label, options, metrics, provenance, model),
      UPDATE (name, relation, features, label, options, metrics, provenance, model)
    ON dltrain.models TO PUBLIC;
-- (the identity needs no privilege on its sequence: nobody gets one)
SELECT pg_catalog.pg_extension_config_dump('dltrain.models', '');
SELECT pg_catalog.pg_extension_config_dump('dltrain.models_id_seq', '');

CREATE FUNCTION dltrain.latest_model(model_name text) RETURNS dltrain.model
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
-- Table-level training
-- ---------------------------------------------------------------------------

CREATE FUNCTION dltrain.fit(relation regclass, features text[], label text,
                            options jsonb DEFAULT '{}', name text DEFAULT NULL)
    RETURNS TABLE (epoch integer, loss double precision, validation_loss double precision,
                   validation_metric double precision, rows bigint, seconds double precision,
                   rows_per_sec double precision, model dltrain.model)
    AS 'MODULE_PATHNAME', 'fit' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dltrain.fit(regclass, text[], text, jsonb, text) IS
    'trains on a relation without caching it: block-shuffled reads each epoch, a shuffle buffer, one row per epoch; stores the model in dltrain.models when given a name';

-- ---------------------------------------------------------------------------
-- Model selection over a relation: one read, every configuration side by side
-- ---------------------------------------------------------------------------

CREATE FUNCTION dltrain.grid_search(relation regclass, features text[], label text,
                                    options jsonb, grid jsonb,
                                    validation_fraction double precision DEFAULT NULL,
                                    halving_eta integer DEFAULT NULL,
                                    halving_min_epochs integer DEFAULT 1,
                                    name text DEFAULT NULL)
    RETURNS TABLE (rank integer, configuration jsonb, validation_metric double precision,
                   validation_loss double precision, loss double precision, epochs integer,
                   status text, seconds double precision, model dltrain.model)
    AS 'MODULE_PATHNAME', 'grid_search' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dltrain.grid_search(regclass, text[], text, jsonb, jsonb, double precision, integer, integer, text) IS
    'trains every configuration of a grid (or random search) from one read of a relation; returns a leaderboard';

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
