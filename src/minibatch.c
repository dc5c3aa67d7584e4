/*
 * minibatch.c — mini-batch assembly.
 *
 * Every row source (rowsource.h) fills its batches here: rows, wherever it
 * keeps them, copied into the batch, standardized when asked (sources that
 * standardized their rows already pass no statistics), and their label
 * slots turned into class indices or targets.  The copies run on the pool's
 * threads (dlk_pool_for), which run only this memory work: no PostgreSQL
 * call happens in GatherRange; it polls the kernels' abort callback, and
 * the glue raises the cancel afterwards.
 */
#include "postgres.h"

#include "interrupt.h"
#include "kernels/dlk.h"
#include "minibatch.h"

/* floats of rows between two abort polls in a pass on the pool's threads */
#define POLL_FLOATS 1048576

/* the fewest floats of rows worth a helper thread's wake-up */
#define GATHER_MIN_FLOATS_PER_THREAD 16384

typedef struct GatherJob
{
	DltBatch   *b;
	const float *const *x;
	const int64 *slot;
	const DltLabelMap *lm;
	const float *fm;
	const float *fs;
} GatherJob;

/* Starts loading a row that will be read soon (rows are scattered). */
static inline void
PrefetchRow(const float *p, int D)
{
#ifdef __GNUC__
	Size		bytes = sizeof(float) * D;

	for (Size off = 0; off < bytes; off += 64)
		__builtin_prefetch((const char *) p + off);
#endif
}

static void
GatherRange(void *arg, size_t lo, size_t hi)
{
	const GatherJob *j = arg;
	DltBatch   *b = j->b;
	int			D = b->D;
	int64		pr = Max(1, POLL_FLOATS / Max(D, 1));

	for (size_t i = lo; i < hi; i++)
	{
		float	   *x = b->x + (Size) i * D;

		if ((i - lo) % pr == 0 && dlk_abort_poll())
			return;
		if (i + 8 < hi)
			PrefetchRow(j->x[i + 8], D);
		memcpy(x, j->x[i], sizeof(float) * D);
		if (j->fm)
			dlk_standardize(x, j->fm, j->fs, D);
		DltBatchSetLabel(b, (int) i, j->slot[i], j->lm);
	}
}

void
DltBatchGather(DltBatch *b, int bs, const float *const *x, const int64 *slot,
			   const DltLabelMap *lm, const float *fm, const float *fs)
{
	GatherJob	job = {b, x, slot, lm, fm, fs};

	Assert(bs <= b->cap);
	if (dlk_pool_for((size_t) bs, GATHER_MIN_FLOATS_PER_THREAD / b->D + 1,
					 GatherRange, &job) != DLK_OK)
		DltKernelAborted();
	DltBatchUpload(b, bs);
}
