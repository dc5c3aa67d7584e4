/*
 * predict.c — predict(), predict_class() and predict_proba().
 *
 * Scoring a table calls these once per row with, usually, the same model.
 * Decoding a model (checksum, copies, network set-up) costs far more than one
 * forward pass, so each call site (FmgrInfo) caches the decoded model for the
 * whole query in fn_extra:
 *
 *  - a model stored out of line (TOAST on disk) is recognized by its TOAST
 *    pointer (toast relation, value id) before anything is fetched, so a model
 *    coming from a table row is neither detoasted nor decoded again per row;
 *  - any other model value (small, or already in memory) is recognized by
 *    its address and header, or else by its bytes (SameModel).
 *
 * The forward pass uses the kernel library's reference kernels on one row:
 * no BLAS, so scoring opens no library and starts no thread.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "dltrain.h"

typedef struct PredictCache
{
	MemoryContext mcxt;			/* holds m, net buffers; reset on a new model */
	bool		valid;
	bool		ondisk;			/* key kind */
	Oid			toastrelid;
	Oid			valueid;
	Size		rawlen;			/* in-line key: the model's bytes */
	char	   *raw;
	const void *lastptr;		/* address the bytes were last seen at */
	DltModel   *m;
	dlk_net		net;
	float	   *x;				/* [D] normalized input */
	float	   *fmean;			/* [D] float32 statistics, as training used them */
	float	   *fscale;
	float	   *out;			/* [C] output / probabilities */
} PredictCache;

/*
 * Is the model argument the one already decoded?  A model stored out of line
 * is known by its TOAST pointer, so nothing is fetched.  Any other value is
 * detoasted (it is small, or already in memory) and known by the same address
 * and header (length and CRC-32C of the contents) or, failing that, by
 * comparing its bytes with a copy of the decoded one.
 */
static bool
SameModel(PredictCache *pc, struct varlena *raw, struct varlena **detoasted)
{
	struct varlena *v;

	*detoasted = NULL;
	if (VARATT_IS_EXTERNAL_ONDISK(raw))
	{
		struct varatt_external ext;

		VARATT_EXTERNAL_GET_POINTER(ext, raw);
		return pc->valid && pc->ondisk &&
			pc->toastrelid == ext.va_toastrelid && pc->valueid == ext.va_valueid;
	}
	v = pg_detoast_datum_packed(raw);
	*detoasted = v;
	if (!pc->valid || pc->ondisk || VARSIZE_ANY_EXHDR(v) != pc->rawlen)
		return false;
	if (v == pc->lastptr && VARSIZE_ANY_EXHDR(v) >= 16 &&
		memcmp(VARDATA_ANY(v), pc->raw, 16) == 0)
		return true;
	if (memcmp(VARDATA_ANY(v), pc->raw, pc->rawlen) != 0)
		return false;
	pc->lastptr = v;
	return true;
}

static PredictCache *
GetModel(FunctionCallInfo fcinfo)
{
	PredictCache *pc = (PredictCache *) fcinfo->flinfo->fn_extra;
	struct varlena *raw = (struct varlena *) DatumGetPointer(PG_GETARG_DATUM(0));
	struct varlena *v;
	MemoryContext old;
	dlk_sizes	sz;
	dlk_status	s;
	float	   *work;

	if (pc == NULL)
	{
		pc = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(PredictCache));
		pc->mcxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "dltrain predict",
										 ALLOCSET_SMALL_SIZES);
		fcinfo->flinfo->fn_extra = pc;
	}
	if (SameModel(pc, raw, &v))
		return pc;

	/* a different model: decode it into the cache's context */
	pc->valid = false;
	MemoryContextReset(pc->mcxt);
	old = MemoryContextSwitchTo(pc->mcxt);
	if (v == NULL)
		v = (struct varlena *) PG_DETOAST_DATUM(PG_GETARG_DATUM(0));
	pc->m = ModelDecode(v);
	if (dlk_sizes_for(&sz, &pc->m->arch, 1, DLK_OPT_SGD) != DLK_OK)
		elog(ERROR, "invalid model architecture");
	work = palloc(sizeof(float) * sz.n_work);
	s = dlk_net_bind(&pc->net, &pc->m->arch, 1, 0, pc->m->params, NULL, NULL, work);
	if (s != DLK_OK)
		elog(ERROR, "could not set up network: %s", dlk_status_string(s));
	pc->x = palloc(sizeof(float) * pc->m->arch.dims[0]);
	if (pc->m->normalized)
	{
		int			D = pc->m->arch.dims[0];

		pc->fmean = palloc(sizeof(float) * D);
		pc->fscale = palloc(sizeof(float) * D);
		for (int d = 0; d < D; d++)
		{
			pc->fmean[d] = (float) pc->m->mean[d];
			pc->fscale[d] = (float) pc->m->scale[d];
		}
	}
	pc->out = palloc(sizeof(float) * pc->m->arch.dims[pc->m->arch.n_layers]);

	pc->ondisk = VARATT_IS_EXTERNAL_ONDISK(raw);
	if (pc->ondisk)
	{
		struct varatt_external ext;

		VARATT_EXTERNAL_GET_POINTER(ext, raw);
		pc->toastrelid = ext.va_toastrelid;
		pc->valueid = ext.va_valueid;
	}
	else
	{
		pc->rawlen = VARSIZE_ANY_EXHDR(v);
		pc->raw = palloc(pc->rawlen);
		memcpy(pc->raw, VARDATA_ANY(v), pc->rawlen);
		pc->lastptr = v;
	}
	MemoryContextSwitchTo(old);
	pc->valid = true;
	return pc;
}

/* Runs the network on argument 1; leaves the output (probabilities) in pc->out. */
static PredictCache *
Forward(FunctionCallInfo fcinfo)
{
	PredictCache *pc = GetModel(fcinfo);
	DltModel   *m = pc->m;
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	int			D = m->arch.dims[0];
	int			C = m->arch.dims[m->arch.n_layers];
	const float *y;

	CheckFeatureArray(arr, D, 0);
	FeatureArrayToFloat(pc->x, arr, ARR_ELEMTYPE(arr), 0);
	if (m->normalized)
		dlk_standardize(pc->x, pc->fmean, pc->fscale, D);
	y = dlk_forward(&pc->net, pc->x, 1);
	if (m->task == DLT_TASK_CLASSIFICATION)
		dlk_softmax_rows(pc->out, y, 1, C);
	else
		memcpy(pc->out, y, sizeof(float) * C);
	return pc;
}

static int
ArgMax(const float *p, int n)
{
	int			best = 0;

	for (int i = 1; i < n; i++)
		if (p[i] > p[best])
			best = i;
	return best;
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
	DltModel   *m = pc->m;
	int			k;

	if (m->task == DLT_TASK_REGRESSION)
		PG_RETURN_FLOAT8((double) pc->out[0]);

	k = ArgMax(pc->out, m->n_classes);
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
	DltModel   *m = pc->m;
	int			k;

	RequireClassifier(m, "predict_class");
	k = ArgMax(pc->out, m->n_classes);
	switch (m->label_kind)
	{
		case DLT_LABEL_INT:
			PG_RETURN_TEXT_P(cstring_to_text(psprintf(INT64_FORMAT, m->class_int[k])));
		case DLT_LABEL_FLOAT:
			{
				char		buf[DOUBLE_SHORTEST_DECIMAL_LEN];

				double_to_shortest_decimal_buf(m->class_float[k], buf);
				PG_RETURN_TEXT_P(cstring_to_text(buf));
			}
		case DLT_LABEL_TEXT:
			PG_RETURN_TEXT_P(cstring_to_text(m->class_text[k]));
	}
	PG_RETURN_NULL();
}

/* Class probabilities, in the class order that describe() lists. */
PG_FUNCTION_INFO_V1(predict_proba);
Datum
predict_proba(PG_FUNCTION_ARGS)
{
	PredictCache *pc = Forward(fcinfo);
	DltModel   *m = pc->m;
	Datum	   *elems;

	RequireClassifier(m, "predict_proba");
	elems = palloc(sizeof(Datum) * m->n_classes);
	for (int i = 0; i < m->n_classes; i++)
		elems[i] = Float4GetDatum(pc->out[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, m->n_classes, FLOAT4OID,
										  sizeof(float4), true, TYPALIGN_INT));
}
