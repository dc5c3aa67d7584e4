/*
 * source_test.c — a row source of generated rows, for tests only.
 *
 * It proves the row-source seam (rowsource.h): the engine trains from it
 * exactly as from the aggregate's cache.  Row i has features
 * x[d] = ((i * 37 + d * 11) % 101) / 10 - 5 (float32 arithmetic) and the
 * integer label (i % 7 + (i / 7) % 3) % classes, so that a table built
 * with the same SQL expressions trains, with "shuffle": false and no
 * validation, to the same model bytes through dltrain.train_mlp (test
 * row_source).  Rows are made in memory by prepare and read in their
 * order; statistics are the exact ones (stats.c), applied at gather.
 *
 * No SQL function of the extension calls it: the test creates one,
 * dltrain_test_row_source(n, d, classes, options), as a superuser, over
 * the C function of testing.c.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "budget.h"
#include "rowsource.h"
#include "stats.h"

typedef struct TestSource
{
	DltRowSource pub;
	int			n_classes;
	float	   *x;				/* [n x D] */
	int64	   *y;				/* class ids (the label's value: 0..classes-1) */
	DltClassTable classes;
	const float **xp;
	int64	   *sp;
} TestSource;

typedef struct TestStream
{
	int64		pos;
} TestStream;

static const float *
TestRow(void *arg, int64 i)
{
	TestSource *ts = arg;

	return ts->x + (Size) i * ts->pub.D;
}

static void
TestPrepare(DltRowSource *src, const DltOptions *opts, int K)
{
	TestSource *ts = (TestSource *) src;
	int64		n = src->n_rows;
	int			D = src->D;
	float	   *fmin = palloc(sizeof(float) * D);
	float	   *fmax = palloc(sizeof(float) * D);
	bool		any_norm = false;

	for (int k = 0; k < K; k++)
	{
		if (opts[k].validation_fraction > 0 || (opts[k].shuffle && opts[k].epochs > 0))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the test row source trains without shuffle and validation")));
		any_norm |= opts[k].normalize;
	}
	DltBudgetCheck(src->root, mul_size(n, sizeof(float) * D + sizeof(int64)),
				   "the test source's rows");
	ts->x = palloc_extended(sizeof(float) * (Size) n * D, MCXT_ALLOC_HUGE);
	ts->y = palloc_extended(sizeof(int64) * n, MCXT_ALLOC_HUGE);
	for (int64 i = 0; i < n; i++)
	{
		for (int d = 0; d < D; d++)
		{
			float		v = (float) ((i * 37 + d * 11) % 101) / 10.0f - 5.0f;

			ts->x[i * D + d] = v;
			if (i == 0 || v < fmin[d])
				fmin[d] = v;
			if (i == 0 || v > fmax[d])
				fmax[d] = v;
		}
		/* the label's value; its class id in the table, as the cache has it */
		ts->y[i] = DltClassId(&ts->classes, CurrentMemoryContext,
							  (i % 7 + (i / 7) % 3) % ts->n_classes, NULL, 0);
	}
	DltClassTableFinish(&ts->classes, DLT_LABEL_INT, &src->classes, n);
	src->labels.task = DLT_TASK_CLASSIFICATION;
	src->labels.kind = DLT_LABEL_INT;
	src->labels.rank = ts->classes.rank;
	src->fm = palloc(sizeof(float) * D);
	src->fs = palloc(sizeof(float) * D);
	if (any_norm)
	{
		src->stats = palloc0(sizeof(DltModel));
		DltExactStats(src->stats, D, n, fmin, fmax, TestRow, ts, false, src->fm, src->fs);
	}
}

static void
TestOpenStream(DltRowSource *src, DltStream *s)
{
	TestSource *ts = (TestSource *) src;

	s->priv = palloc0(sizeof(TestStream));
	s->n_train = src->n_rows;
	s->n_val = 0;
	s->B = (int) Min((int64) s->key.batch_size, s->n_train);
	s->batch = DltBatchCreate(src->device, s->B, src->D, 1);
	if (ts->xp == NULL)
	{
		ts->xp = palloc(sizeof(float *) * s->B);
		ts->sp = palloc(sizeof(int64) * s->B);
	}
	else
	{
		ts->xp = repalloc(ts->xp, sizeof(float *) * Max(s->B, 1));
		ts->sp = repalloc(ts->sp, sizeof(int64) * Max(s->B, 1));
	}
}

static void
TestBeginEpoch(DltRowSource *src, DltStream *s, int e)
{
	((TestStream *) s->priv)->pos = 0;
}

static int
TestNextBatch(DltRowSource *src, DltStream *s)
{
	TestSource *ts = (TestSource *) src;
	TestStream *st = s->priv;
	int			bs;

	if (st->pos >= s->n_train)
		return 0;
	bs = (int) Min((int64) s->B, s->n_train - st->pos);
	for (int i = 0; i < bs; i++)
	{
		ts->xp[i] = ts->x + (Size) (st->pos + i) * src->D;
		ts->sp[i] = ts->y[st->pos + i];
	}
	DltBatchGather(s->batch, bs, ts->xp, ts->sp, s->labels,
				   s->key.normalize ? s->fm : NULL, s->fs);
	st->pos += bs;
	return bs;
}

static int
TestNextValidation(DltRowSource *src, DltStream *s, bool first)
{
	return 0;
}

static void
TestClose(DltRowSource *src)
{
}

static const DltRowSourceOps test_ops = {
	TestPrepare, TestOpenStream, TestBeginEpoch, TestNextBatch, TestNextValidation, TestClose,
	NULL
};

DltRowSource *
DltTestSourceCreate(int64 n, int D, int classes, MemoryContext root)
{
	TestSource *ts = palloc0(sizeof(TestSource));
	DltRowSource *src = &ts->pub;

	if (n < 1 || D < 1 || D > 4096 || classes < 2 || classes > 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the test row source needs n >= 1, 1 <= d <= 4096 and 2 <= classes <= 1000")));
	src->ops = &test_ops;
	src->name = "test source";
	src->D = D;
	src->task = DLT_TASK_CLASSIFICATION;
	src->label_kind = DLT_LABEL_INT;
	src->label_type = INT4OID;
	src->n_rows = n;
	src->root = root;
	src->shared_streams = true;
	ts->n_classes = classes;
	return src;
}
