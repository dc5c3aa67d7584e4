/*
 * predict.c — predict(), predict_class() and predict_proba().
 *
 * Each call site keeps the decoded model for the whole query (DltModelCache
 * in score.c: a model read from a table is neither detoasted nor decoded
 * again per row) and scores its row with the reference kernels: no BLAS, so
 * scoring opens no library and starts no thread.  The functions are
 * PARALLEL SAFE: every worker keeps its own cache.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "budget.h"
#include "model.h"
#include "score.h"
#include "version.h"

typedef struct PredictCache
{
	DltModelCache mc;
	DltScorer	sc;				/* one row at a time */
} PredictCache;

/* Runs the network on argument 1 with the model of argument 0. */
static PredictCache *
Forward(FunctionCallInfo fcinfo)
{
	PredictCache *pc = (PredictCache *) fcinfo->flinfo->fn_extra;
	bool		changed;
	DltModel   *m;

	/* predict, predict_class and predict_proba start here */
	DltCheckSqlVersion();
	if (pc == NULL)
	{
		pc = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(PredictCache));
		DltModelCacheInit(&pc->mc, fcinfo->flinfo->fn_mcxt, NULL);
		pc->mc.arg_stable = get_fn_expr_arg_stable(fcinfo->flinfo, 0);
		fcinfo->flinfo->fn_extra = pc;
	}
	m = DltModelCacheGet(&pc->mc, PG_GETARG_DATUM(0), &changed);
	if (changed)
	{
		MemoryContext old = MemoryContextSwitchTo(pc->mc.mcxt);

		DltScorerInit(&pc->sc, m, 1, pc->mc.root);
		MemoryContextSwitchTo(old);
	}
	pc->sc.n = 0;
	DltScorerAddRow(&pc->sc, PG_GETARG_ARRAYTYPE_P(1));
	DltScorerRun(&pc->sc);
	return pc;
}

static void
RequireClassifier(const DltModel *m, const char *fn)
{
	if (m->task != DLT_TASK_CLASSIFICATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("dltrain.%s needs a classification model", fn),
				 errdetail("The model was trained for regression."),
				 errhint("Use dltrain.predict() for regression models.")));
}

/* Predicts the regression value, or the class of a numerically labelled model. */
PG_FUNCTION_INFO_V1(predict);
Datum
predict(PG_FUNCTION_ARGS)
{
	PredictCache *pc = Forward(fcinfo);
	DltModel   *m = pc->sc.m;
	int			k;

	if (m->task == DLT_TASK_REGRESSION)
		PG_RETURN_FLOAT8((double) pc->sc.out[0]);

	k = DltArgMax(pc->sc.out, m->n_classes);
	switch (m->label_kind)
	{
		case DLT_LABEL_INT:
			PG_RETURN_FLOAT8((double) m->class_int[k]);
		case DLT_LABEL_FLOAT:
			PG_RETURN_FLOAT8(m->class_float[k]);
		case DLT_LABEL_TEXT:
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("dltrain.predict cannot return a text class as double precision"),
			 errdetail("The model was trained on text labels."),
			 errhint("Use dltrain.predict_class() for models trained on text labels.")));
	PG_RETURN_NULL();
}

/* Predicts the class, as text in its original spelling. */
PG_FUNCTION_INFO_V1(predict_class);
Datum
predict_class(PG_FUNCTION_ARGS)
{
	PredictCache *pc = Forward(fcinfo);
	DltModel   *m = pc->sc.m;
	int			k;

	RequireClassifier(m, "predict_class");
	k = DltArgMax(pc->sc.out, m->n_classes);
	PG_RETURN_TEXT_P(DltClassText(m, k));
}

/* Class probabilities, in the class order that describe() lists. */
PG_FUNCTION_INFO_V1(predict_proba);
Datum
predict_proba(PG_FUNCTION_ARGS)
{
	PredictCache *pc = Forward(fcinfo);
	DltModel   *m = pc->sc.m;
	Datum	   *elems;

	RequireClassifier(m, "predict_proba");
	elems = palloc(sizeof(Datum) * m->n_classes);
	for (int i = 0; i < m->n_classes; i++)
		elems[i] = Float4GetDatum(pc->sc.out[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, m->n_classes, FLOAT4OID,
										  sizeof(float4), true, TYPALIGN_INT));
}
