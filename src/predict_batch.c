/*
 * predict_batch.c — dltrain.predict_batch(): score a whole relation in batches.
 *
 * Row-by-row scoring (predict) is a matrix-vector product a row.  This
 * set-returning function reads the relation through an SPI cursor (so the
 * caller's privileges, row-level security and snapshot apply: it is SECURITY
 * INVOKER like everything in dltrain), PREDICT_BATCH rows at a time, runs each
 * batch through the network as GEMMs and returns (key, prediction, class,
 * probability) rows.  Identifiers are quoted and the query is schema-
 * qualified, so neither the caller's search_path nor odd names change it.
 *
 * The features are one array column (text), or one array column or a list
 * of numeric columns (text[], as fit() takes them: relation.c builds the
 * expression).  Scoring a catalog model by name is SQL over this
 * (sql/dltrain.sql, dltrain.predict_batch(model_name, key, relation)).
 *
 * Cancel: interrupts are checked after every fetch, and a batch's forward
 * pass stops inside the kernels (their abort callback) however large the
 * network.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "budget.h"
#include "feature_array.h"
#include "interrupt.h"
#include "model.h"
#include "relation.h"
#include "score.h"
#include "version.h"

#define PREDICT_BATCH 1024

/* Emits the scored batch: keys[i] with the outputs of row i. */
static void
EmitBatch(ReturnSetInfo *rsinfo, DltScorer *sc, Datum *keys, bool *keynull)
{
	const float *out = DltScorerRun(sc);
	const DltModel *m = sc->m;

	for (int i = 0; i < sc->n; i++)
	{
		const float *o = out + (Size) i * sc->C;
		Datum		values[4];
		bool		nulls[4] = {keynull[i], false, false, false};

		values[0] = keys[i];
		if (m->task == DLT_TASK_REGRESSION)
		{
			values[1] = Float8GetDatum((double) o[0]);
			nulls[2] = nulls[3] = true;
		}
		else
		{
			int			k = DltArgMax(o, sc->C);

			if (m->label_kind == DLT_LABEL_INT)
				values[1] = Float8GetDatum((double) m->class_int[k]);
			else if (m->label_kind == DLT_LABEL_FLOAT)
				values[1] = Float8GetDatum(m->class_float[k]);
			else
				nulls[1] = true;
			values[2] = PointerGetDatum(DltClassText(m, k));
			values[3] = Float4GetDatum(o[k]);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	sc->n = 0;
}

/* Scores every row of a relation in batches: (key, prediction, class, probability). */
PG_FUNCTION_INFO_V1(predict_batch);
Datum
predict_batch(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid;
	char	   *features = NULL;
	const char *feat_expr;
	char	   *key;
	MemoryContext scorecxt;
	MemoryContext batchcxt;
	MemoryContext old;
	DltModelCache mc;
	DltModel   *m;
	DltScorer	sc;
	bool		changed;
	char	   *relname;
	char	   *query;
	Portal		portal;
	Datum	   *keys;
	bool	   *keynull;
	Oid			feattype;
	AttrNumber	attnum;
	bool		list = get_fn_expr_argtype(fcinfo->flinfo, 2) == TEXTARRAYOID;

	DltCheckSqlVersion();
	relid = PG_GETARG_OID(1);
	if (!list)
		features = text_to_cstring(PG_GETARG_TEXT_PP(2));
	key = text_to_cstring(PG_GETARG_TEXT_PP(3));
	InitMaterializedSRF(fcinfo, 0);
	DltLockRelation(relid);

	/* the model and scorer live for the whole call, across SPI */
	scorecxt = AllocSetContextCreate(rsinfo->econtext->ecxt_per_query_memory,
									 "dltrain predict_batch", ALLOCSET_DEFAULT_SIZES);
	DltModelCacheInit(&mc, scorecxt, scorecxt);
	m = DltModelCacheGet(&mc, PG_GETARG_DATUM(0), &changed);
	old = MemoryContextSwitchTo(scorecxt);
	DltScorerInit(&sc, m, PREDICT_BATCH, scorecxt);
	keys = palloc(sizeof(Datum) * PREDICT_BATCH);
	keynull = palloc(sizeof(bool) * PREDICT_BATCH);
	MemoryContextSwitchTo(old);
	/* keys and detoasted features of the current batch */
	batchcxt = AllocSetContextCreate(scorecxt, "dltrain predict_batch rows",
									 ALLOCSET_DEFAULT_SIZES);

	/* the columns must exist and the features be an array of numbers */
	if (list)
		feat_expr = DltFeatureList(relid, PG_GETARG_ARRAYTYPE_P(2), "dltrain.predict_batch");
	else
	{
		attnum = get_attnum(relid, features);
		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							features, get_rel_name(relid))));
		feattype = get_atttype(relid, attnum);
		CheckFeatureArrayType(feattype, psprintf("column \"%s\"", features));
		feat_expr = quote_identifier(features);
	}
	if (get_attnum(relid, key) == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						key, get_rel_name(relid))));

	relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										 get_rel_name(relid));
	query = psprintf("SELECT %s::pg_catalog.text, %s FROM %s",
					 quote_identifier(key), feat_expr, relname);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL, query, 0, NULL, NULL, NULL, true, 0);
	DltTestWaitPoint(DLT_WAIT_PREDICT_BATCH);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, PREDICT_BATCH);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			Datum		k = SPI_getbinval(tup, desc, 1, &isnull);
			Datum		f;

			old = MemoryContextSwitchTo(batchcxt);
			keynull[sc.n] = isnull;
			keys[sc.n] = isnull ? (Datum) 0 : PointerGetDatum(PG_DETOAST_DATUM_COPY(k));
			f = SPI_getbinval(tup, desc, 2, &isnull);
			if (isnull)
			{
				/* no features, no prediction: the row comes back with NULLs */
				Datum		values[4] = {keys[sc.n], 0, 0, 0};
				bool		nulls[4] = {keynull[sc.n], true, true, true};

				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			}
			else
				DltScorerAddRow(&sc, DatumGetArrayTypeP(f));
			if (sc.n == PREDICT_BATCH)
				EmitBatch(rsinfo, &sc, keys, keynull);
			MemoryContextSwitchTo(old);
			/* nothing pending: what the batch context holds is in the tuplestore */
			if (sc.n == 0)
				MemoryContextReset(batchcxt);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	if (sc.n > 0)
	{
		old = MemoryContextSwitchTo(batchcxt);
		EmitBatch(rsinfo, &sc, keys, keynull);
		MemoryContextSwitchTo(old);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	/* the rows are in the tuplestore: the model and scorer go now, not at the query's end */
	MemoryContextDelete(scorecxt);
	return (Datum) 0;
}
