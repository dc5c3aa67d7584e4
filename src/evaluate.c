/*
 * evaluate.c — the dltrain.evaluate(model, features, label) aggregate, and
 * dltrain.evaluate(model, relation, features, label) over it.
 *
 * Scores rows in batches of EVAL_BATCH (one GEMM per layer a batch) and keeps
 * only small accumulators: for classification a confusion matrix and the
 * summed log loss, for regression the summed squared and absolute errors and
 * the label's count, mean and sum of squared deviations (combined with Chan's
 * formula).  The state is small, so the aggregate is PARALLEL SAFE: workers
 * flush their batch and serialize their accumulators (with the model bytes,
 * so that any process can finish the job), the leader combines them.
 *
 * Labels are matched to the model's classes by value; a label the model
 * never saw counts as a wrong prediction (and in "unseen_labels"), and is
 * left out of the log loss.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "budget.h"
#include "jsonutil.h"
#include "labels.h"
#include "model.h"
#include "relation.h"
#include "score.h"
#include "version.h"

#define EVAL_BATCH 256

typedef struct EvalState
{
	MemoryContext root;			/* the aggregate node's context: its budget */
	MemoryContext mcxt;
	DltModelCache mc;
	DltModel   *m;
	DltScorer	sc;
	bool		scorer_ready;
	Oid			label_type;
	int32		pending_cls[EVAL_BATCH];	/* class index, -1 unseen */
	double		pending_y[EVAL_BATCH];	/* regression target */

	/* accumulators */
	int64		rows;
	int64		skipped;
	int64		unseen;
	int64	   *confusion;		/* [C x C]: true row, predicted column */
	double		logloss;		/* summed over rows with a known label */
	double		sse;
	double		sae;
	double		ymean;			/* label moments (Welford / Chan) */
	double		ym2;
} EvalState;

static void
EvalStateSetModel(EvalState *st, DltModel *m)
{
	MemoryContext old = MemoryContextSwitchTo(st->mc.mcxt);

	st->m = m;
	if (m->task == DLT_TASK_CLASSIFICATION)
	{
		Size		bytes = mul_size(mul_size(m->n_classes, m->n_classes), sizeof(int64));

		DltBudgetCheck(st->root, bytes,
					   psprintf("a confusion matrix of %d classes", m->n_classes));
		st->confusion = MemoryContextAllocHuge(CurrentMemoryContext, bytes);
		memset(st->confusion, 0, bytes);
	}
	MemoryContextSwitchTo(old);
}

static EvalState *
EvalStateCreate(MemoryContext aggcxt)
{
	MemoryContext mcxt = AllocSetContextCreate(aggcxt, "dltrain evaluate",
											   ALLOCSET_DEFAULT_SIZES);
	EvalState  *st = MemoryContextAllocZero(mcxt, sizeof(EvalState));

	st->mcxt = mcxt;
	st->root = aggcxt;
	DltModelCacheInit(&st->mc, mcxt, aggcxt);
	return st;
}

/* Runs the pending batch and adds its rows to the accumulators. */
static void
EvalFlush(EvalState *st)
{
	DltScorer  *sc = &st->sc;
	const float *out;
	int			C;

	if (!st->scorer_ready || sc->n == 0)
		return;
	out = DltScorerRun(sc);
	C = sc->C;
	for (int i = 0; i < sc->n; i++)
	{
		const float *o = out + (Size) i * C;

		if (st->m->task == DLT_TASK_CLASSIFICATION)
		{
			int			k = DltArgMax(o, C);
			int			y = st->pending_cls[i];

			if (y < 0)
				st->unseen++;
			else
			{
				st->confusion[(Size) y * C + k]++;
				st->logloss -= log(Max((double) o[y], 1e-15));
			}
		}
		else
		{
			double		e = (double) o[0] - st->pending_y[i];
			double		y = st->pending_y[i];
			int64		n = st->rows + i + 1;
			double		delta = y - st->ymean;

			st->sse += e * e;
			st->sae += fabs(e);
			st->ymean += delta / n;
			st->ym2 += delta * (y - st->ymean);
		}
	}
	st->rows += sc->n;
	sc->n = 0;
}

static int
FindClass(const DltModel *m, Oid type, Datum d)
{
	int			lo = 0,
				hi = m->n_classes - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			c;

		switch (m->label_kind)
		{
			case DLT_LABEL_INT:
				{
					int64		v = type == INT2OID ? DatumGetInt16(d) :
						type == INT4OID ? DatumGetInt32(d) :
						type == BOOLOID ? (DatumGetBool(d) ? 1 : 0) : DatumGetInt64(d);

					c = (v > m->class_int[mid]) - (v < m->class_int[mid]);
					break;
				}
			case DLT_LABEL_FLOAT:
				{
					double		v = type == FLOAT4OID ? DatumGetFloat4(d) :
						type == FLOAT8OID ? DatumGetFloat8(d) : DltNumericToDouble(d);

					if (isnan(v))
						return -1;	/* never a class */
					c = (v > m->class_float[mid]) - (v < m->class_float[mid]);
					break;
				}
			default:
				{
					text	   *t = DatumGetTextPP(d);
					int			len = VARSIZE_ANY_EXHDR(t);
					int			clen = strlen(m->class_text[mid]);

					c = memcmp(VARDATA_ANY(t), m->class_text[mid], Min(len, clen));
					if (c == 0)
						c = (len > clen) - (len < clen);
					break;
				}
		}
		if (c == 0)
			return mid;
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return -1;
}

/* Is a label of SQL type t comparable with the model's labels? */
static void
CheckLabelType(const DltModel *m, Oid t)
{
	bool		ok;

	if (m->task == DLT_TASK_REGRESSION)
		ok = (t == INT2OID || t == INT4OID || t == INT8OID || t == FLOAT4OID ||
			  t == FLOAT8OID || t == NUMERICOID);
	else if (m->label_type == BOOLOID)
		ok = (t == BOOLOID);
	else if (m->label_kind == DLT_LABEL_INT)
		ok = (t == INT2OID || t == INT4OID || t == INT8OID);
	else if (m->label_kind == DLT_LABEL_FLOAT)
		ok = (t == FLOAT4OID || t == FLOAT8OID || t == NUMERICOID);
	else
		ok = (t == TEXTOID);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("label of type %s does not match the model's %s labels",
						format_type_be(t), format_type_be(m->label_type)),
				 errhint("Cast the label to the type the model was trained on.")));
}

/* Scores one row and keeps its label for the metrics. */
PG_FUNCTION_INFO_V1(evaluate_sfunc);
Datum
evaluate_sfunc(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	EvalState  *st;
	DltModel   *m;
	bool		changed;
	int			i;

	DltCheckSqlVersion();
	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "evaluate_sfunc called in non-aggregate context");
	st = PG_ARGISNULL(0) ? EvalStateCreate(aggcxt) : (EvalState *) PG_GETARG_POINTER(0);

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dltrain.evaluate needs a model, not NULL")));
	if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
	{
		st->skipped++;
		PG_RETURN_POINTER(st);
	}

	m = DltModelCacheGet(&st->mc, PG_GETARG_DATUM(1), &changed);
	if (changed)
	{
		MemoryContext old;

		if (st->m != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("dltrain.evaluate received different models in one group"),
					 errhint("Evaluate one model per group, e.g. GROUP BY the model's name.")));
		st->label_type = get_fn_expr_argtype(fcinfo->flinfo, 3);
		CheckLabelType(m, st->label_type);
		EvalStateSetModel(st, m);
		old = MemoryContextSwitchTo(st->mc.mcxt);
		DltScorerInit(&st->sc, m, EVAL_BATCH, st->root);
		MemoryContextSwitchTo(old);
		st->scorer_ready = true;
	}

	i = st->sc.n;
	if (m->task == DLT_TASK_CLASSIFICATION)
		st->pending_cls[i] = FindClass(m, st->label_type, PG_GETARG_DATUM(3));
	else
	{
		Datum		d = PG_GETARG_DATUM(3);
		Oid			t = st->label_type;

		st->pending_y[i] = t == INT2OID ? DatumGetInt16(d) :
			t == INT4OID ? DatumGetInt32(d) :
			t == INT8OID ? (double) DatumGetInt64(d) :
			t == FLOAT4OID ? DatumGetFloat4(d) :
			t == FLOAT8OID ? DatumGetFloat8(d) : DltNumericToDouble(d);
		if (!isfinite(st->pending_y[i]))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("label of a row to evaluate is not finite")));
	}
	DltScorerAddRow(&st->sc, PG_GETARG_ARRAYTYPE_P(2));
	if (st->sc.n == EVAL_BATCH)
		EvalFlush(st);
	PG_RETURN_POINTER(st);
}

/* ---- parallel aggregation ---- */

/*
 * Do two partial states hold the same model?  Compared by their bytes: a
 * checksum is no identity (two models with equal CRCs are easy to make, and
 * combining a classifier's state with a regressor's, or a 2-class confusion
 * matrix with a 3-class one, would read past the smaller one).
 */
static bool
SameModel(const DltModel *a, const DltModel *b)
{
	bytea	   *ea;
	bytea	   *eb;
	bool		same;

	if (a == b)
		return true;
	if (a->task != b->task || a->n_classes != b->n_classes || a->n_params != b->n_params)
		return false;
	ea = ModelEncode(a);
	eb = ModelEncode(b);
	same = VARSIZE(ea) == VARSIZE(eb) && memcmp(ea, eb, VARSIZE(ea)) == 0;
	pfree(ea);
	pfree(eb);
	return same;
}

/* Combines two partial states (their batches already flushed). */
PG_FUNCTION_INFO_V1(evaluate_combine);
Datum
evaluate_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	EvalState  *a;
	EvalState  *b;

	DltCheckSqlVersion();
	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "evaluate_combine called in non-aggregate context");
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(PG_ARGISNULL(0) ? NULL : PG_GETARG_POINTER(0));
	b = (EvalState *) PG_GETARG_POINTER(1);
	a = PG_ARGISNULL(0) ? EvalStateCreate(aggcxt) : (EvalState *) PG_GETARG_POINTER(0);
	EvalFlush(a);
	EvalFlush(b);

	if (b->m != NULL)
	{
		if (a->m == NULL)
		{
			/* adopt b's model: copy its bytes into a's cache */
			bytea	   *bytes = ModelEncode(b->m);
			bool		changed;

			a->label_type = b->label_type;
			EvalStateSetModel(a, DltModelCacheGet(&a->mc, PointerGetDatum(bytes), &changed));
		}
		else if (!SameModel(a->m, b->m))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("dltrain.evaluate received different models in one group"),
					 errhint("Evaluate one model per group, e.g. GROUP BY the model's name.")));
		if (a->m->task == DLT_TASK_CLASSIFICATION)
		{
			int			C = a->m->n_classes;

			for (Size k = 0; k < (Size) C * C; k++)
				a->confusion[k] += b->confusion[k];
		}
		else if (b->rows > 0)
		{
			double		n = (double) a->rows + b->rows;
			double		delta = b->ymean - a->ymean;

			a->ym2 += b->ym2 + delta * delta * a->rows * b->rows / n;
			a->ymean += delta * b->rows / n;
		}
	}
	a->rows += b->rows;
	a->skipped += b->skipped;
	a->unseen += b->unseen;
	a->logloss += b->logloss;
	a->sse += b->sse;
	a->sae += b->sae;
	PG_RETURN_POINTER(a);
}

/* Serializes a partial state: accumulators, then the model's bytes. */
PG_FUNCTION_INFO_V1(evaluate_serialize);
Datum
evaluate_serialize(PG_FUNCTION_ARGS)
{
	EvalState  *st;
	StringInfoData buf;

	DltCheckSqlVersion();
	st = (EvalState *) PG_GETARG_POINTER(0);
	EvalFlush(st);
	pq_begintypsend(&buf);
	pq_sendint64(&buf, st->rows);
	pq_sendint64(&buf, st->skipped);
	pq_sendint64(&buf, st->unseen);
	pq_sendfloat8(&buf, st->logloss);
	pq_sendfloat8(&buf, st->sse);
	pq_sendfloat8(&buf, st->sae);
	pq_sendfloat8(&buf, st->ymean);
	pq_sendfloat8(&buf, st->ym2);
	pq_sendint32(&buf, st->label_type);
	if (st->m == NULL)
		pq_sendint32(&buf, 0);
	else
	{
		bytea	   *model = ModelEncode(st->m);

		pq_sendint32(&buf, VARSIZE(model));
		pq_sendbytes(&buf, (char *) model, VARSIZE(model));
		if (st->m->task == DLT_TASK_CLASSIFICATION)
			for (Size k = 0; k < (Size) st->m->n_classes * st->m->n_classes; k++)
				pq_sendint64(&buf, st->confusion[k]);
	}
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* Rebuilds a partial state from evaluate_serialize's bytes. */
PG_FUNCTION_INFO_V1(evaluate_deserialize);
Datum
evaluate_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *b;
	MemoryContext aggcxt;
	EvalState  *st;
	StringInfoData buf;
	int32		mlen;

	DltCheckSqlVersion();
	b = PG_GETARG_BYTEA_PP(0);
	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "evaluate_deserialize called in non-aggregate context");
	st = EvalStateCreate(aggcxt);
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
	st->rows = pq_getmsgint64(&buf);
	st->skipped = pq_getmsgint64(&buf);
	st->unseen = pq_getmsgint64(&buf);
	st->logloss = pq_getmsgfloat8(&buf);
	st->sse = pq_getmsgfloat8(&buf);
	st->sae = pq_getmsgfloat8(&buf);
	st->ymean = pq_getmsgfloat8(&buf);
	st->ym2 = pq_getmsgfloat8(&buf);
	st->label_type = pq_getmsgint(&buf, 4);
	mlen = pq_getmsgint(&buf, 4);
	if (mlen > 0)
	{
		MemoryContext old = MemoryContextSwitchTo(st->mcxt);
		bytea	   *model = palloc(mlen);
		bool		changed;

		memcpy(model, pq_getmsgbytes(&buf, mlen), mlen);
		MemoryContextSwitchTo(old);
		EvalStateSetModel(st, DltModelCacheGet(&st->mc, PointerGetDatum(model), &changed));
		if (st->m->task == DLT_TASK_CLASSIFICATION)
			for (Size k = 0; k < (Size) st->m->n_classes * st->m->n_classes; k++)
				st->confusion[k] = pq_getmsgint64(&buf);
	}
	pq_getmsgend(&buf);
	PG_RETURN_POINTER(st);
}

/* ---- the result ---- */

static void
AppendClassification(StringInfo b, EvalState *st)
{
	const DltModel *m = st->m;
	int			C = m->n_classes;
	int64		correct = 0;
	int64		known = st->rows - st->unseen;
	double		mp = 0,
				mr = 0,
				mf = 0;
	StringInfoData prec,
				rec,
				f1,
				sup;

	initStringInfo(&prec);
	initStringInfo(&rec);
	initStringInfo(&f1);
	initStringInfo(&sup);
	for (int k = 0; k < C; k++)
		correct += st->confusion[(Size) k * C + k];
	appendStringInfoString(b, ", \"accuracy\": ");
	DltAppendJsonDouble(b, st->rows ? (double) correct / st->rows : NAN);
	appendStringInfoString(b, ", \"log_loss\": ");
	DltAppendJsonDouble(b, known ? st->logloss / known : NAN);
	appendStringInfo(b, ", \"unseen_labels\": " INT64_FORMAT ", \"classes\": [", st->unseen);
	for (int k = 0; k < C; k++)
	{
		if (k)
			appendStringInfoString(b, ", ");
		DltAppendClassJson(b, m, k);
	}
	appendStringInfoString(b, "], \"confusion_matrix\": [");
	for (int t = 0; t < C; t++)
	{
		appendStringInfoString(b, t ? ", [" : "[");
		for (int p = 0; p < C; p++)
			appendStringInfo(b, "%s" INT64_FORMAT, p ? ", " : "", st->confusion[(Size) t * C + p]);
		appendStringInfoChar(b, ']');
	}
	appendStringInfoChar(b, ']');

	for (int k = 0; k < C; k++)
	{
		int64		tp = st->confusion[(Size) k * C + k];
		int64		predicted = 0,
					actual = 0;
		double		p,
					r,
					f;

		for (int j = 0; j < C; j++)
		{
			predicted += st->confusion[(Size) j * C + k];
			actual += st->confusion[(Size) k * C + j];
		}
		/* no prediction or no example of a class: 0, as scikit-learn reports */
		p = predicted ? (double) tp / predicted : 0;
		r = actual ? (double) tp / actual : 0;
		f = (p + r) > 0 ? 2 * p * r / (p + r) : 0;
		mp += p;
		mr += r;
		mf += f;
		appendStringInfoString(&prec, k ? ", " : "");
		DltAppendJsonDouble(&prec, p);
		appendStringInfoString(&rec, k ? ", " : "");
		DltAppendJsonDouble(&rec, r);
		appendStringInfoString(&f1, k ? ", " : "");
		DltAppendJsonDouble(&f1, f);
		appendStringInfo(&sup, "%s" INT64_FORMAT, k ? ", " : "", actual);
	}
	appendStringInfo(b, ", \"precision\": [%s], \"recall\": [%s], \"f1\": [%s], \"support\": [%s]",
					 prec.data, rec.data, f1.data, sup.data);
	appendStringInfoString(b, ", \"macro_precision\": ");
	DltAppendJsonDouble(b, mp / C);
	appendStringInfoString(b, ", \"macro_recall\": ");
	DltAppendJsonDouble(b, mr / C);
	appendStringInfoString(b, ", \"macro_f1\": ");
	DltAppendJsonDouble(b, mf / C);
}

/* Returns the metrics as jsonb. */
PG_FUNCTION_INFO_V1(evaluate_ffunc);
Datum
evaluate_ffunc(PG_FUNCTION_ARGS)
{
	EvalState  *st;
	StringInfoData b;

	DltCheckSqlVersion();
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (EvalState *) PG_GETARG_POINTER(0);
	EvalFlush(st);
	if (st->m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("dltrain.evaluate has no rows to score"),
				 errdetail("All %lld input rows were skipped because their features or label were NULL.",
						   (long long) st->skipped)));

	/*
	 * The result: a confusion matrix of C x C counts as text, then as jsonb
	 * (about 64 bytes a count), besides what the call holds.
	 */
	if (st->m->task == DLT_TASK_CLASSIFICATION)
		DltBudgetCheck(st->root, mul_size(mul_size(st->m->n_classes, st->m->n_classes), 64),
					   psprintf("the metrics of %d classes", st->m->n_classes));
	initStringInfo(&b);
	appendStringInfo(&b, "{\"task\": \"%s\", \"rows\": " INT64_FORMAT ", \"skipped\": " INT64_FORMAT,
					 DltTaskName(st->m->task), st->rows, st->skipped);
	if (st->m->task == DLT_TASK_CLASSIFICATION)
		AppendClassification(&b, st);
	else
	{
		double		n = (double) st->rows;
		double		mse = st->sse / n;

		appendStringInfoString(&b, ", \"mse\": ");
		DltAppendJsonDouble(&b, mse);
		appendStringInfoString(&b, ", \"rmse\": ");
		DltAppendJsonDouble(&b, sqrt(mse));
		appendStringInfoString(&b, ", \"mae\": ");
		DltAppendJsonDouble(&b, st->sae / n);
		appendStringInfoString(&b, ", \"r2\": ");
		/* a constant label has no variance to explain: R2 undefined (null) */
		DltAppendJsonDouble(&b, st->ym2 > 0 ? 1.0 - st->sse / st->ym2 : NAN);
	}
	appendStringInfoChar(&b, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(b.data)));
}

/*
 * Metrics of a model on every row of a relation, its features as fit()
 * takes them: the evaluate aggregate over a query built from quoted
 * identifiers (relation.c), run through SPI with the caller's privileges,
 * row-level security and snapshot; the model travels as a parameter.
 */
PG_FUNCTION_INFO_V1(evaluate_relation);
Datum
evaluate_relation(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(1);
	char	   *label = text_to_cstring(PG_GETARG_TEXT_PP(3));
	Oid			types[1] = {get_fn_expr_argtype(fcinfo->flinfo, 0)};
	Datum		values[1] = {PG_GETARG_DATUM(0)};
	Oid			label_type;
	char	   *query;
	bool		isnull;
	Datum		result;
	int			rc;

	DltCheckSqlVersion();
	DltLockRelation(relid);
	query = psprintf("SELECT dltrain.evaluate($1, %s) FROM %s",
					 DltSelectList(relid, PG_GETARG_ARRAYTYPE_P(2), label, &label_type,
								   "dltrain.evaluate"),
					 DltQualifiedName(relid));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args(query, 1, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not evaluate the model: %s", SPI_result_code_string(rc));
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	result = isnull ? (Datum) 0 : SPI_datumTransfer(result, false, -1);
	SPI_finish();
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}
