/*
 * score.c — running a trained model: the decoded-model cache and the batched
 * scorer shared by predict*(), evaluate() and predict_batch().
 *
 * Model cache.  Scoring calls a function once per row with, usually, the same
 * model, and decoding one (checksum, copies, network set-up) costs far more
 * than a forward pass.  A DltModelCache remembers which model it decoded:
 *
 *  - a model stored out of line (TOAST on disk) is known by its TOAST pointer
 *    (toast relation, value id) before anything is fetched, so a model coming
 *    from a table row is neither detoasted nor decoded again per row;
 *  - any other value (small, or already in memory) is compared with a copy
 *    of the bytes it was decoded from, all of them: the same address may hold
 *    another value by the next row, and a checksum or a prefix is no
 *    identity (anyone can make two models with the same CRC);
 *  - a call site whose model argument is a constant or an external parameter
 *    (get_fn_expr_arg_stable) gets the same value for the whole query: it
 *    decodes once and compares nothing.
 *
 * Scorer.  Rows are gathered into a batch (standardized as training did,
 * with the same float32 arithmetic) and run through the network in one pass:
 * GEMMs when the batch is large (OpenBLAS, opened as training opens it),
 * the reference kernels for a single row (no library, no thread).  A long
 * forward pass stops for a cancel through the kernels' abort callback.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/syscache.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "blas.h"
#include "budget.h"
#include "feature_array.h"
#include "interrupt.h"
#include "score.h"

/* Is the model datum d the one in the cache?  May detoast it into *v. */
static bool
CacheHit(DltModelCache *mc, Datum d, struct varlena **v)
{
	struct varlena *raw = (struct varlena *) DatumGetPointer(d);
	struct varlena *dv;

	*v = NULL;
	if (!mc->valid)
		return false;
	if (VARATT_IS_EXTERNAL_ONDISK(raw))
	{
		struct varatt_external ext;

		VARATT_EXTERNAL_GET_POINTER(ext, raw);
		return mc->ondisk && mc->toastrelid == ext.va_toastrelid &&
			mc->valueid == ext.va_valueid;
	}
	if (mc->arg_stable)
		return true;
	dv = pg_detoast_datum_packed(raw);
	*v = dv;
	return !mc->ondisk && VARSIZE_ANY_EXHDR(dv) == mc->rawlen &&
		memcmp(VARDATA_ANY(dv), mc->raw, mc->rawlen) == 0;
}

void
DltModelCacheInit(DltModelCache *mc, MemoryContext parent, MemoryContext root)
{
	memset(mc, 0, sizeof(*mc));
	mc->mcxt = AllocSetContextCreate(parent, "dltrain model", ALLOCSET_SMALL_SIZES);
	mc->root = root ? root : mc->mcxt;
}

DltModel *
DltModelCacheGet(DltModelCache *mc, Datum d, bool *changed)
{
	struct varlena *raw = (struct varlena *) DatumGetPointer(d);
	struct varlena *v;
	MemoryContext old;

	if (CacheHit(mc, d, &v))
	{
		*changed = false;
		return mc->m;
	}
	*changed = true;
	mc->valid = false;
	MemoryContextReset(mc->mcxt);
	/* its bytes (detoasted) and the decoded copy */
	DltBudgetCheck(mc->root, mul_size(2, toast_raw_datum_size(d)), "decoding a model");
	old = MemoryContextSwitchTo(mc->mcxt);
	if (v == NULL)
		v = (struct varlena *) PG_DETOAST_DATUM(d);
	mc->m = ModelDecode(v);
	mc->ondisk = VARATT_IS_EXTERNAL_ONDISK(raw);
	if (mc->ondisk)
	{
		struct varatt_external ext;

		VARATT_EXTERNAL_GET_POINTER(ext, raw);
		mc->toastrelid = ext.va_toastrelid;
		mc->valueid = ext.va_valueid;
	}
	else
	{
		mc->rawlen = VARSIZE_ANY_EXHDR(v);
		mc->raw = palloc(mc->rawlen);
		memcpy(mc->raw, VARDATA_ANY(v), mc->rawlen);
	}
	MemoryContextSwitchTo(old);
	mc->valid = true;
	mc->decodes++;
	ereport(DEBUG1,
			(errmsg_internal("dltrain: decoded a model (%lld at this call site)",
							 (long long) mc->decodes)));
	return mc->m;
}

/* ---- the scorer ---- */

void
DltScorerInit(DltScorer *sc, DltModel *m, int max_batch, MemoryContext root)
{
	int			D = m->arch.dims[0];
	int			C = m->arch.dims[m->arch.n_layers];
	dlk_sizes	sz;
	dlk_status	s;
	dlk_allocator a = DltDeviceAllocator();

	memset(sc, 0, sizeof(*sc));
	sc->m = m;
	sc->max_batch = max_batch;
	sc->D = D;
	sc->C = C;
	sc->dev = DltDevice();
	if (max_batch > 1)
		DltBlasEnsure(0);	/* scores do not depend on dltrain.threads */
	if (dlk_sizes_for(&sz, &m->arch, max_batch, DLK_OPT_SGD) != DLK_OK)
		elog(ERROR, "invalid model architecture");
	DltBudgetCheck(root,
				   mul_size(sizeof(float),
							add_size(sz.n_work,
									 add_size(mul_size(max_batch, (Size) D + C), 2 * (Size) D))),
				   psprintf("scoring %d rows at a time", max_batch));
	s = sc->dev->net_bind_infer(&a, &m->arch, max_batch, m->params, &sc->net);
	if (s == DLK_OK)
		s = sc->dev->batch_create(&a, max_batch, D, C, &sc->batch);
	if (s != DLK_OK)
		DltDeviceFailed(s, "a scorer's buffers");
	sc->out = palloc_extended(sizeof(float) * (Size) max_batch * C, MCXT_ALLOC_HUGE);
	if (m->normalized)
	{
		sc->fmean = palloc(sizeof(float) * D);
		sc->fscale = palloc(sizeof(float) * D);
		for (int d = 0; d < D; d++)
		{
			sc->fmean[d] = (float) m->mean[d];
			sc->fscale[d] = (float) m->scale[d];
		}
	}
}

float *
DltScorerAddRow(DltScorer *sc, ArrayType *features)
{
	float	   *x;

	Assert(sc->n < sc->max_batch);
	CheckFeatureArray(features, sc->D, 0);
	x = sc->batch->x + (Size) sc->n * sc->D;
	FeatureArrayToFloat(x, features, ARR_ELEMTYPE(features), 0);
	if (sc->fmean)
		dlk_standardize(x, sc->fmean, sc->fscale, sc->D);
	sc->n++;
	return x;
}

const float *
DltScorerRun(DltScorer *sc)
{
	dlk_status	s;

	if (sc->n == 0)
		return sc->out;
	s = sc->dev->batch_upload(sc->batch, sc->n);
	if (s == DLK_OK)
		s = sc->dev->net_predict(sc->net, sc->batch, sc->n, sc->out);
	if (s != DLK_OK)
		DltDeviceFailed(s, "a prediction");
	return sc->out;
}

/*
 * The NOTICE that a trained classifier never predicts some class.
 *
 * counts[k] is how many of n_rows rows the final model predicts as class k
 * (argmax), counted on the held-out rows when there are some (held_out),
 * otherwise on the last epoch's forward passes: the training never reads the
 * rows again for it.  On imbalanced data the default model often predicts
 * only the majority class, and nothing else would hint at it.
 */
void
DltNoticeUnpredictedClasses(const DltModel *m, const int64 *counts, int64 n_rows,
							bool held_out)
{
	StringInfoData missing;
	int			n_missing = 0;
	int			first = -1;

	if (m->task != DLT_TASK_CLASSIFICATION || n_rows <= 0)
		return;
	initStringInfo(&missing);
	for (int k = 0; k < m->n_classes; k++)
	{
		if (counts[k] > 0)
			continue;
		if (n_missing++ < 5)
			appendStringInfo(&missing, "%s\"%s\"", n_missing > 1 ? ", " : "",
							 text_to_cstring(DltClassText(m, k)));
		if (first < 0)
			first = k;
	}
	if (n_missing == 0)
		return;
	if (n_missing > 5)
		appendStringInfo(&missing, " and %d more", n_missing - 5);
	ereport(NOTICE,
			(errmsg_plural("the model never predicts class %s",
						   "the model never predicts classes %s",
						   n_missing, missing.data),
			 errdetail("Counted on %s: %lld rows.",
					   held_out ? "the held-out rows" : "the last epoch's training rows",
					   (long long) n_rows),
			 errhint("The classes may be imbalanced: train for more epochs, with a larger \"lr\", or on rows sampled to balance the classes; dltrain.evaluate() shows the confusion matrix.")));
}
