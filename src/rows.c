/*
 * rows.c — row ingestion: each input row of a training (features and label
 * Datums) checked once, converted once to float32 straight into the row
 * cache (cache.c), its label stored as a 64-bit slot: an integer, the bits
 * of a float, or a class id (labels.c).  Rows with NULL features or label
 * are skipped and counted.  The aggregate (train_agg.c) and grid_search
 * (grid.c) fill DltRows; the cache row source trains from them.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "budget.h"
#include "feature_array.h"
#include "progress.h"
#include "rows.h"

void
DltRowsInit(DltRows *rows, MemoryContext mcxt, MemoryContext root, Oid feattype,
			Oid label_type, DltTask task)
{
	memset(rows, 0, sizeof(DltRows));
	CheckFeatureArrayType(feattype, "features");
	rows->feat_elemtype = get_element_type(feattype);
	rows->label_type = label_type;
	rows->label_kind = DltLabelKindOf(label_type);
	rows->task = task;
	DltCacheInit(&rows->cache, mcxt, DltBudgetBytes(), true);
	rows->cache.root = root;
}

static int64
LabelSlot(DltRows *rows, MemoryContext mcxt, Datum d)
{
	int64		v;

	if (rows->label_type == TEXTOID)
	{
		text	   *t = DatumGetTextPP(d);

		return DltClassId(&rows->classes, mcxt, 0, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	}
	v = DltLabelValue(d, rows->label_type, rows->task, rows->rows_seen);
	/* regression keeps the value; classification stores its class id */
	if (rows->task == DLT_TASK_REGRESSION)
		return v;
	return DltClassId(&rows->classes, mcxt, v, NULL, 0);
}

/* Appends one input row (features x, label y) to the row cache. */
void
DltRowsAppend(DltRows *rows, MemoryContext mcxt, Datum x, bool xnull, Datum y, bool ynull)
{
	DltCache   *c = &rows->cache;
	ArrayType  *arr;
	int			n;
	float	   *slot;
	int64	   *label;
	int64		lv;

	rows->rows_seen++;
	if (xnull || ynull)
	{
		rows->rows_skipped++;
		return;
	}
	arr = DatumGetArrayTypeP(x);
	n = CheckFeatureArray(arr, c->dim, rows->rows_seen);
	c->dim = n;
	/* the label first: a bad label must not leave a half-written row */
	lv = LabelSlot(rows, mcxt, y);
	slot = DltCacheAppend(c, &label);
	*label = lv;
	if (likely(c->fmin != NULL && rows->feat_elemtype == FLOAT4OID))
	{
		/* copy, check and the feature ranges in one pass over the row */
		if (unlikely(!dlk_copy_finite_minmax_f32(slot, (const float *) ARR_DATA_PTR(arr),
												 n, c->fmin, c->fmax)))
			FeatureArrayToFloat(slot, arr, rows->feat_elemtype, rows->rows_seen);
	}
	else
	{
		FeatureArrayToFloat(slot, arr, rows->feat_elemtype, rows->rows_seen);
		if (c->fmin == NULL)
		{
			c->fmin = MemoryContextAlloc(mcxt, sizeof(float) * n);
			c->fmax = MemoryContextAlloc(mcxt, sizeof(float) * n);
			memcpy(c->fmin, slot, sizeof(float) * n);
			memcpy(c->fmax, slot, sizeof(float) * n);
		}
		dlk_minmax_accumulate(c->fmin, c->fmax, slot, n);
	}
	if ((c->n_rows & 4095) == 0)
		DltProgressRows(c->n_rows, -1, NAN, 0);
}


void
DltNoticeSkipped(const char *fname, int64 skipped, int64 used)
{
	if (skipped > 0)
		ereport(NOTICE,
				(errmsg("dltrain.%s skipped %lld of %lld input rows: their features or label were NULL",
						fname, (long long) skipped, (long long) (skipped + used)),
				 errdetail("dltrain.describe(model) counts them in \"rows_skipped\". A query says it once, with the counts of the first model that skipped rows."),
				 errhint("Filter such rows out, or replace the NULLs, to train on every row.")));
}
