/*
 * source_cache.c — the row source of a row cache (rows.h, cache.c): the
 * aggregate's and grid_search's rows, in memory or spilled.
 *
 * In memory.  prepare sorts the rows once into a canonical order by
 * content (order.c), so that the model depends only on the multiset of
 * rows, computes the statistics once (exact sums, stats.c) and, when every
 * member normalizes, standardizes the rows in place.  Each stream (members
 * with the same shuffle, seed, batch size, normalization and validation
 * fraction: DltSameStream) gets one permutation of the training rows,
 * shuffled every epoch from its seed as each member alone would, and its
 * batches are gathered from the cache on the pool's threads.  With
 * "shuffle": false rows are used in the order they arrived.
 *
 * Spilled.  CorgiPile's two-level shuffle over the spilled chunks: every
 * epoch visits the chunks in a new random order, G at a time (G chunk
 * buffers: the budget, or the buffer_rows option), and shuffles the rows
 * of those G chunks together before cutting them into mini-batches.
 * Chunks hold rows in arrival order, so unlike the in-memory path the model
 * depends on the order rows arrive in (an ORDER BY makes it reproducible).
 * Every member has its own stream (its own chunk order), and the streams
 * take their epochs one after the other through the one set of chunk
 * buffers; the validation rows (of the largest fraction) are read once
 * and kept in memory, within the budget.
 *
 * Cancel.  Every loop over the rows checks for interrupts every CFI_ROWS
 * rows (or every chunk read); the passes on the pool's threads poll the
 * kernels' abort callback and the glue raises the cancel afterwards
 * (DltKernelAborted).  A poll never changes what a pass computes.
 *
 * Resources.  Everything lives in the training's memory context; the
 * spill file has its own owner (cache.c), released by close() on the
 * normal path.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"

#include "blas.h"
#include "budget.h"
#include "interrupt.h"
#include "order.h"
#include "progress.h"
#include "rows.h"
#include "rowsource.h"
#include "stats.h"

/* rows between two interrupt checks in a loop over the rows */
#define CFI_ROWS 1048576
#define CFI_DUE(i) (((i) & (CFI_ROWS - 1)) == 0)

/* floats of rows between two abort polls in a pass on the pool's threads */
#define POLL_FLOATS 1048576
/* rows a helper thread takes at least in the passes over the rows */
#define PREP_MIN_ROWS 8192

typedef struct CacheSource
{
	DltRowSource pub;
	DltRows    *rows;
	DltCache   *c;
	/* in memory */
	uint64	   *hash;			/* per row: content hash (shuffle or validation) */
	uint32	   *canon;			/* rows in canonical order */
	bool		inplace;		/* rows standardized in place */
	/* spilled */
	DltHeldOut	val;			/* held-out rows of the largest fraction, raw */
	uint32	   *idx;			/* the rows of a chunk group */
	/* both: one batch's row pointers and label slots */
	const float **xp;
	int64	   *sp;
	int			max_B;
	/* a derived source of materialized features: row r is mat + r * D */
	float	   *mat;
} CacheSource;

/* a stream over the cache in memory */
typedef struct MemStream
{
	uint32	   *order;			/* training rows */
	uint32	   *val;			/* validation rows, canonical order */
	dlk_rng		rng;
	int64		pos;
	int64		vpos;
	bool		standardize;	/* at gather (not in place) */
} MemStream;

/* a stream over the spilled chunks (one member's) */
typedef struct SpillStream
{
	uint32	   *perm;			/* chunk order */
	dlk_rng		rng;
	int			G;				/* chunks shuffled together */
	int64		g;				/* next chunk of perm */
	int			nrows;			/* rows of the current group */
	int			start;			/* next of them */
	int64		vpos;
} SpillStream;

static uint64
LabelSlotHash(const DltRows *rows, int64 y)
{
	if (rows->task == DLT_TASK_CLASSIFICATION)
		return rows->classes.chash[y];
	return DltLabelHash(NULL, 0, y);
}

static inline uint64
CacheRowHash(const DltRows *rows, const float *x, int64 y)
{
	return DltRowHash(x, rows->cache.dim, LabelSlotHash(rows, y));
}

static void
NoTrainingRows(int64 n, double fraction)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("validation_fraction %g leaves no training rows", fraction),
			 errdetail("All %lld rows were held out for validation.", (long long) n)));
}

/* Labels compared by content: class ranks, or the value's bits. */
static int
CompareRows(void *arg, uint32 a, uint32 b)
{
	const DltRows *rows = arg;
	const DltCache *c = &rows->cache;
	int64		ya = *DltCacheLabel(c, a);
	int64		yb = *DltCacheLabel(c, b);
	int			r = memcmp(DltCacheRow(c, a), DltCacheRow(c, b), sizeof(float) * c->dim);

	if (r)
		return r;
	if (rows->task == DLT_TASK_CLASSIFICATION)
	{
		ya = rows->classes.rank[ya];
		yb = rows->classes.rank[yb];
	}
	return (ya > yb) - (ya < yb);
}

/* ---- passes over the rows in memory, on the pool's threads ---- */

typedef struct RowsJob
{
	const DltRows *rows;
	uint64	   *hash;			/* HashRange's output */
	const float *fm;			/* StandardizeRange's statistics */
	const float *fs;
} RowsJob;

static void
HashRange(void *arg, size_t lo, size_t hi)
{
	const RowsJob *j = arg;
	const DltCache *c = &j->rows->cache;
	int64		pr = Max(1, POLL_FLOATS / Max(c->dim, 1));

	for (size_t r = lo; r < hi; r++)
	{
		if ((r - lo) % pr == 0 && dlk_abort_poll())
			return;
		j->hash[r] = CacheRowHash(j->rows, DltCacheRow(c, r), *DltCacheLabel(c, r));
	}
}

static void
StandardizeRange(void *arg, size_t lo, size_t hi)
{
	const RowsJob *j = arg;
	const DltCache *c = &j->rows->cache;
	int64		pr = Max(1, POLL_FLOATS / Max(c->dim, 1));

	for (size_t r = lo; r < hi; r++)
	{
		if ((r - lo) % pr == 0 && dlk_abort_poll())
			return;
		dlk_standardize(DltCacheRow(c, r), j->fm, j->fs, c->dim);
	}
}

static void
PoolFor(size_t n, size_t min_per_thread, dlk_range_fn fn, void *arg)
{
	if (dlk_pool_for(n, min_per_thread, fn, arg) != DLK_OK)
		DltKernelAborted();
}

static const float *
CacheRowIter(void *arg, int64 i)
{
	return DltCacheRow((const DltCache *) arg, i);
}

/* Rows of a spilled cache, chunk by chunk (sequential reads of the file). */
typedef struct SpillIter
{
	DltCache   *c;
	int64		chunk;			/* loaded in buffer 0 */
	int64		first;			/* row number of its first row */
	int			rows;
} SpillIter;

static const float *
SpillRowIter(void *arg, int64 i)
{
	SpillIter  *it = (SpillIter *) arg;
	DltCache   *c = it->c;

	if (i == 0)
	{
		it->chunk = -1;
		it->first = 0;
		it->rows = 0;
	}
	while (i >= it->first + it->rows)
	{
		it->first += it->rows;
		it->chunk++;
		it->rows = DltCacheReadChunk(c, it->chunk, 0);
		CHECK_FOR_INTERRUPTS();
	}
	return c->chunk_x[0] + (Size) (i - it->first) * c->dim;
}

/* ---- prepare ---- */

/* Classes first: the rows' content hashes use them. */
static void
PrepareClasses(CacheSource *cs)
{
	DltRows    *rows = cs->rows;

	cs->pub.labels.task = rows->task;
	cs->pub.labels.kind = rows->label_kind;
	if (rows->task == DLT_TASK_CLASSIFICATION)
	{
		DltClassTableFinish(&rows->classes, rows->label_kind, &cs->pub.classes,
							rows->cache.n_rows);
		cs->pub.labels.rank = rows->classes.rank;
	}
}

static void
MemPrepare(DltRowSource *src, const DltOptions *opts, int K)
{
	CacheSource *cs = (CacheSource *) src;
	DltRows    *rows = cs->rows;
	DltCache   *c = cs->c;
	int64		n = c->n_rows;
	int			D = c->dim;
	bool		any_norm = false,
				all_norm = true,
				any_shuffle = false,
				any_val = false;
	int			max_epochs = 0;

	for (int k = 0; k < K; k++)
	{
		any_norm |= opts[k].normalize;
		all_norm &= opts[k].normalize && opts[k].warm == NULL;
		any_shuffle |= opts[k].shuffle && opts[k].epochs > 0;
		any_val |= opts[k].validation_fraction > 0;
		max_epochs = Max(max_epochs, opts[k].epochs);
	}

	/*
	 * Per-row arrays beside the cache: labels, hashes, one order per stream,
	 * and the sort's keys and their radix buffer (2 x 16 bytes a row) while
	 * it runs.
	 */
	DltBudgetCheck(c->root, mul_size(n, DLT_ROW_INDEX_BYTES - 4 + 4 * (Size) K),
				   psprintf("the indexes of %lld rows", (long long) n));
	PrepareClasses(cs);

	DltProgressPhase(DLT_PHASE_PREPARING);
	DltTestWaitPoint(DLT_WAIT_PREPARING);
	DltProgressRows(n, n, NAN, 0);
	/* the passes below run on dltrain.threads threads, as the steps will */
	DltBlasEnsure(DltThreads());

	/* content hashes and the canonical order, before any standardization */
	if (any_shuffle || any_val)
	{
		RowsJob		job = {rows, NULL, NULL, NULL};

		cs->hash = palloc_extended(sizeof(uint64) * n, MCXT_ALLOC_HUGE);
		job.hash = cs->hash;
		PoolFor((size_t) n, PREP_MIN_ROWS, HashRange, &job);
		cs->canon = palloc_extended(sizeof(uint32) * n, MCXT_ALLOC_HUGE);
		DltCanonicalOrder(cs->hash, n, cs->canon, CompareRows, rows);
	}

	/* what a checkpoint records of the rows: their count and content */
	src->data_rows = n;
	if (src->want_hash)
	{
		uint64	   *h = cs->hash;

		if (h == NULL)
		{
			RowsJob		job = {rows, NULL, NULL, NULL};

			h = palloc_extended(sizeof(uint64) * Max(n, 1), MCXT_ALLOC_HUGE);
			job.hash = h;
			PoolFor((size_t) n, PREP_MIN_ROWS, HashRange, &job);
		}
		for (int64 r = 0; r < n; r++)
			src->data_hash += h[r];
		if (h != cs->hash)
			pfree(h);
	}

	/*
	 * statistics once; standardize in place when every member wants it and
	 * some epoch will read the rows
	 */
	src->fm = palloc(sizeof(float) * D);
	src->fs = palloc(sizeof(float) * D);
	if (any_norm)
	{
		src->stats = palloc0(sizeof(DltModel));
		DltExactStats(src->stats, D, n, c->fmin, c->fmax, CacheRowIter, c, true,
					  src->fm, src->fs);
	}
	cs->inplace = any_norm && all_norm && max_epochs > 0;
	if (cs->inplace)
	{
		RowsJob		job = {rows, NULL, src->fm, src->fs};

		PoolFor((size_t) n, PREP_MIN_ROWS, StandardizeRange, &job);
	}
}

static void
SpillPrepare(DltRowSource *src, const DltOptions *opts, int K)
{
	CacheSource *cs = (CacheSource *) src;
	DltRows    *rows = cs->rows;
	DltCache   *c = cs->c;
	int64		n = c->n_rows;
	int			D = c->dim;
	int			rpc = c->rows_per_chunk;
	int64		N = c->n_file_chunks;
	bool		any_norm = false;
	double		max_vfrac = 0;

	for (int k = 0; k < K; k++)
	{
		any_norm |= opts[k].normalize;
		max_vfrac = Max(max_vfrac, opts[k].validation_fraction);
	}
	PrepareClasses(cs);
	cs->val.cxt = CurrentMemoryContext;
	cs->val.D = D;
	cs->val.keep_hash = true;
	cs->val.root = c->root;
	/* a chunk's row indexes, and each member's chunk order */
	DltBudgetCheck(c->root, add_size(mul_size(sizeof(uint32), mul_size(c->n_chunks, rpc)),
									 mul_size(K, mul_size(sizeof(uint32), Max(N, 1)))),
				   "the chunk indexes of a spilled cache");
	cs->idx = palloc_extended(sizeof(uint32) * (Size) c->n_chunks * rpc, MCXT_ALLOC_HUGE);

	/* statistics: one sequential pass over the spilled chunks */
	DltProgressPhase(DLT_PHASE_PREPARING);
	DltTestWaitPoint(DLT_WAIT_PREPARING);
	src->fm = palloc(sizeof(float) * D);
	src->fs = palloc(sizeof(float) * D);
	if (any_norm)
	{
		SpillIter	it = {c, -1, 0, 0};

		src->stats = palloc0(sizeof(DltModel));
		DltExactStats(src->stats, D, n, c->fmin, c->fmax, SpillRowIter, &it, false,
					  src->fm, src->fs);
	}

	/*
	 * the validation rows: one sequential pass, kept in memory (rows with the
	 * same content are all held out or none, so their number is only known
	 * once counted: the buffers grow, within the budget)
	 */
	src->data_rows = n;
	if (max_vfrac > 0 || src->want_hash)
	{
		for (int64 k = 0; k < N; k++)
		{
			int			nr = DltCacheReadChunk(c, k, 0);

			for (int r = 0; r < nr; r++)
			{
				const float *x = c->chunk_x[0] + (Size) r * D;
				uint64		h = CacheRowHash(rows, x, c->chunk_y[0][r]);

				src->data_hash += h;
				if (DltIsValidationRow(h, max_vfrac))
					DltHeldOutAdd(&cs->val, x, c->chunk_y[0][r], h);
			}
			CHECK_FOR_INTERRUPTS();
		}
	}
}

/* ---- streams ---- */

/* The gather arrays, for the largest batch. */
static void
EnsureGatherArrays(CacheSource *cs, int B)
{
	if (B <= cs->max_B)
		return;
	cs->xp = cs->xp ? repalloc(cs->xp, sizeof(float *) * B) : palloc(sizeof(float *) * B);
	cs->sp = cs->sp ? repalloc(cs->sp, sizeof(int64) * B) : palloc(sizeof(int64) * B);
	cs->max_B = B;
}

static void
MemOpenStream(DltRowSource *src, DltStream *s)
{
	CacheSource *cs = (CacheSource *) src;
	const DltOptions *o = &s->key;
	int64		n = cs->c->n_rows;
	bool		shuf = o->shuffle && o->epochs > 0;
	double		vfrac = o->validation_fraction;
	MemStream  *ms = palloc0(sizeof(MemStream));
	uint64		vsum = 0;

	s->priv = ms;
	ms->order = palloc_extended(sizeof(uint32) * n, MCXT_ALLOC_HUGE);
	if (vfrac > 0)
		ms->val = palloc_extended(sizeof(uint32) * n, MCXT_ALLOC_HUGE);
	for (int64 i = 0; i < n; i++)
	{
		/* shuffled: from the canonical order; else as rows arrived */
		uint32		r = shuf ? cs->canon[i] : (uint32) i;

		if (CFI_DUE(i))
			CHECK_FOR_INTERRUPTS();
		if (vfrac > 0 && DltIsValidationRow(cs->hash[r], vfrac))
			continue;
		ms->order[s->n_train++] = r;
	}
	if (vfrac > 0)
	{
		for (int64 i = 0; i < n; i++)
		{
			if (CFI_DUE(i))
				CHECK_FOR_INTERRUPTS();
			if (DltIsValidationRow(cs->hash[cs->canon[i]], vfrac))
			{
				ms->val[s->n_val++] = cs->canon[i];
				vsum += cs->hash[cs->canon[i]];
			}
		}
		DltReportHeldOut(s->n_val, vsum, vfrac);
	}
	if (s->n_train == 0)
		NoTrainingRows(n, vfrac);
	s->B = (int) Min((int64) o->batch_size, s->n_train);
	dlk_rng_seed(&ms->rng, (uint64) o->seed ^ DLT_SHUFFLE_SALT);
	/* continuing: the permutation as start_epoch epochs left it */
	for (int e = 0; shuf && e < s->start_epoch; e++)
	{
		if (dlk_shuffle_u32(&ms->rng, ms->order, (size_t) s->n_train) != DLK_OK)
			DltKernelAborted();
		CHECK_FOR_INTERRUPTS();
	}
	ms->standardize = o->normalize && !cs->inplace && cs->mat == NULL;
	s->batch = DltBatchCreate(src->device, s->B, src->D, 1);
	EnsureGatherArrays(cs, s->B);
}

static void
MemBeginEpoch(DltRowSource *src, DltStream *s, int e)
{
	MemStream  *ms = s->priv;
	bool		shuf = s->key.shuffle && s->key.epochs > 0;

	/* the stream shuffles every epoch, as each member alone would */
	if (shuf && dlk_shuffle_u32(&ms->rng, ms->order, (size_t) s->n_train) != DLK_OK)
		DltKernelAborted();
	ms->pos = 0;
}

/* Gathers cache rows idx[0..bs) into the stream's batch. */
static void
MemGather(CacheSource *cs, DltStream *s, const uint32 *idx, int bs)
{
	MemStream  *ms = s->priv;
	const DltCache *c = cs->c;

	for (int i = 0; i < bs; i++)
	{
		cs->xp[i] = cs->mat ? cs->mat + (size_t) idx[i] * cs->pub.D : DltCacheRow(c, idx[i]);
		cs->sp[i] = *DltCacheLabel(c, idx[i]);
	}
	DltBatchGather(s->batch, bs, cs->xp, cs->sp, s->labels,
				   ms->standardize ? s->fm : NULL, s->fs);
}

static int
MemNextBatch(DltRowSource *src, DltStream *s)
{
	MemStream  *ms = s->priv;
	int			bs;

	if (ms->pos >= s->n_train)
		return 0;
	bs = (int) Min((int64) s->B, s->n_train - ms->pos);
	MemGather((CacheSource *) src, s, ms->order + ms->pos, bs);
	ms->pos += bs;
	return bs;
}

static int
MemNextValidation(DltRowSource *src, DltStream *s, bool first)
{
	MemStream  *ms = s->priv;
	int			bs;

	if (first)
		ms->vpos = 0;
	if (ms->vpos >= s->n_val)
		return 0;
	bs = (int) Min((int64) s->B, s->n_val - ms->vpos);
	MemGather((CacheSource *) src, s, ms->val + ms->vpos, bs);
	ms->vpos += bs;
	return bs;
}

/*
 * Continuing: the chunk order and the shuffle state as start_epoch epochs
 * left them, without training.  The row shuffle of a group draws as many
 * numbers as the group has training rows, so one pass counts each chunk's
 * training rows, and the epochs are replayed on those counts.
 */
static void
SpillReplay(CacheSource *cs, DltStream *s)
{
	SpillStream *ss = s->priv;
	const DltOptions *o = &s->key;
	DltCache   *c = cs->c;
	int64		N = c->n_file_chunks;
	int		   *count = palloc_extended(sizeof(int) * Max(N, 1), MCXT_ALLOC_HUGE);

	for (int64 k = 0; k < N; k++)
	{
		int			nr = DltCacheReadChunk(c, k, 0);

		count[k] = 0;
		for (int r = 0; r < nr; r++)
			if (!(o->validation_fraction > 0 &&
				  DltIsValidationRow(CacheRowHash(cs->rows, c->chunk_x[0] + (Size) r * c->dim,
												  c->chunk_y[0][r]),
									 o->validation_fraction)))
				count[k]++;
		CHECK_FOR_INTERRUPTS();
	}
	for (int e = 0; e < s->start_epoch && o->shuffle; e++)
	{
		if (dlk_shuffle_u32(&ss->rng, ss->perm, (size_t) N) != DLK_OK)
			DltKernelAborted();
		for (int64 g = 0; g < N; g += ss->G)
		{
			int			nrows = 0;

			for (int64 j = g; j < Min(N, g + ss->G); j++)
				nrows += count[ss->perm[j]];
			if (dlk_shuffle_u32(&ss->rng, cs->idx, nrows) != DLK_OK)
				DltKernelAborted();
		}
		CHECK_FOR_INTERRUPTS();
	}
	pfree(count);
}

static void
SpillOpenStream(DltRowSource *src, DltStream *s)
{
	CacheSource *cs = (CacheSource *) src;
	const DltOptions *o = &s->key;
	DltCache   *c = cs->c;
	int64		n = c->n_rows;
	int64		N = c->n_file_chunks;
	int			rpc = c->rows_per_chunk;
	SpillStream *ss = palloc0(sizeof(SpillStream));
	uint64		vsum = 0;

	s->priv = ss;
	if (o->validation_fraction > 0)
	{
		for (int64 i = 0; i < cs->val.n; i++)
		{
			if (CFI_DUE(i))
				CHECK_FOR_INTERRUPTS();
			if (DltIsValidationRow(cs->val.h[i], o->validation_fraction))
			{
				s->n_val++;
				vsum += cs->val.h[i];
			}
		}
		DltReportHeldOut(s->n_val, vsum, o->validation_fraction);
	}
	s->n_train = n - s->n_val;
	if (s->n_train == 0)
		NoTrainingRows(n, o->validation_fraction);
	s->B = (int) Min((int64) o->batch_size, s->n_train);
	ss->perm = palloc_extended(sizeof(uint32) * Max(N, 1), MCXT_ALLOC_HUGE);
	for (int64 i = 0; i < N; i++)
		ss->perm[i] = (uint32) i;
	dlk_rng_seed(&ss->rng, (uint64) o->seed ^ DLT_SHUFFLE_SALT);
	ss->G = c->n_chunks;
	if (o->buffer_rows > 0)
		ss->G = (int) Max(1, Min((int64) ss->G, ((int64) o->buffer_rows + rpc - 1) / rpc));
	s->batch = DltBatchCreate(src->device, s->B, src->D, 1);
	EnsureGatherArrays(cs, s->B);
	if (s->start_epoch > 0)
		SpillReplay(cs, s);
}

static void
SpillBeginEpoch(DltRowSource *src, DltStream *s, int e)
{
	SpillStream *ss = s->priv;
	CacheSource *cs = (CacheSource *) src;

	/* level one: chunks */
	if (s->key.shuffle &&
		dlk_shuffle_u32(&ss->rng, ss->perm, (size_t) cs->c->n_file_chunks) != DLK_OK)
		DltKernelAborted();
	ss->g = 0;
	ss->nrows = 0;
	ss->start = 0;
}

/* Reads the next group of chunks; false after the last. */
static bool
SpillNextGroup(CacheSource *cs, DltStream *s)
{
	SpillStream *ss = s->priv;
	const DltOptions *o = &s->key;
	DltCache   *c = cs->c;
	int64		N = c->n_file_chunks;
	int			D = c->dim;
	int			rpc = c->rows_per_chunk;
	int			kk;

	if (ss->g >= N)
		return false;
	kk = (int) Min((int64) ss->G, N - ss->g);
	ss->nrows = 0;
	ss->start = 0;
	for (int j = 0; j < kk; j++)
	{
		int			nr = DltCacheReadChunk(c, ss->perm[ss->g + j], j);

		CHECK_FOR_INTERRUPTS();
		for (int r = 0; r < nr; r++)
		{
			float	   *x = c->chunk_x[j] + (Size) r * D;

			if (o->validation_fraction > 0 &&
				DltIsValidationRow(CacheRowHash(cs->rows, x, c->chunk_y[j][r]),
								   o->validation_fraction))
				continue;
			if (o->normalize)
				dlk_standardize(x, s->fm, s->fs, D);
			cs->idx[ss->nrows++] = (uint32) j * rpc + r;
		}
	}
	ss->g += kk;
	/* level two: rows */
	if (o->shuffle && dlk_shuffle_u32(&ss->rng, cs->idx, ss->nrows) != DLK_OK)
		DltKernelAborted();
	return true;
}

static int
SpillNextBatch(DltRowSource *src, DltStream *s)
{
	CacheSource *cs = (CacheSource *) src;
	SpillStream *ss = s->priv;
	DltCache   *c = cs->c;
	int			rpc = c->rows_per_chunk;
	int			bs;

	while (ss->start >= ss->nrows)
	{
		if (!SpillNextGroup(cs, s))
			return 0;
	}
	bs = Min(s->B, ss->nrows - ss->start);
	for (int i = 0; i < bs; i++)
	{
		uint32		j = cs->idx[ss->start + i] / rpc;
		uint32		r = cs->idx[ss->start + i] % rpc;

		cs->xp[i] = c->chunk_x[j] + (Size) r * c->dim;
		cs->sp[i] = c->chunk_y[j][r];
	}
	DltBatchGather(s->batch, bs, cs->xp, cs->sp, s->labels, NULL, NULL);
	ss->start += bs;
	return bs;
}

static int
SpillNextValidation(DltRowSource *src, DltStream *s, bool first)
{
	CacheSource *cs = (CacheSource *) src;
	SpillStream *ss = s->priv;
	double		vfrac = s->key.validation_fraction;
	int			bs = 0;

	if (first)
		ss->vpos = 0;
	while (bs < s->B && ss->vpos < cs->val.n)
	{
		int64		i = ss->vpos++;

		if (!DltIsValidationRow(cs->val.h[i], vfrac))
			continue;
		cs->xp[bs] = cs->val.x + (Size) i * cs->val.D;
		cs->sp[bs] = cs->val.y[i];
		bs++;
	}
	if (bs > 0)
		DltBatchGather(s->batch, bs, cs->xp, cs->sp, s->labels,
					   s->key.normalize ? s->fm : NULL, s->fs);
	return bs;
}

static void
CacheClose(DltRowSource *src)
{
	CacheSource *cs = (CacheSource *) src;

	DltCacheClose(cs->c);
}

/* ---- materialized features (in memory) ---- */

static void
MatPrepare(DltRowSource *src, const DltOptions *opts, int K)
{
	/* prepared as the source it derives from was */
}

static void
MatClose(DltRowSource *src)
{
	CacheSource *cs = (CacheSource *) src;

	pfree(cs->mat);
	cs->mat = NULL;
}

static const DltRowSourceOps mat_ops = {
	MatPrepare, MemOpenStream, MemBeginEpoch, MemNextBatch, MemNextValidation, MatClose,
	NULL, NULL
};

/*
 * The features map gives every row, in the cache's row order (that of the
 * chunks), gathered and standardized as MemGather would: a row's outputs
 * are its own, whatever batch it is mapped in.
 */
static DltRowSource *
MemMaterialize(DltRowSource *src, const float *fm, const float *fs, int H, int cap,
			   void (*map) (void *arg, DltBatch *in, int n, float *out), void *arg)
{
	CacheSource *cs = (CacheSource *) src;
	CacheSource *d = palloc(sizeof(CacheSource));
	int64		n = cs->c->n_rows;
	DltBatch   *b;

	*d = *cs;
	d->pub.ops = &mat_ops;
	d->pub.D = H;
	d->pub.fm = d->pub.fs = NULL;
	d->pub.stats = NULL;
	d->inplace = false;
	d->xp = NULL;
	d->sp = NULL;
	d->max_B = 0;
	d->mat = palloc_extended(sizeof(float) * (size_t) Max(n, 1) * H, MCXT_ALLOC_HUGE);
	cap = (int) Min((int64) cap, Max(n, 1));
	b = DltBatchCreate(src->device, cap, src->D, 1);
	EnsureGatherArrays(cs, cap);
	for (int64 r0 = 0; r0 < n; r0 += cap)
	{
		int			bs = (int) Min((int64) cap, n - r0);

		for (int i = 0; i < bs; i++)
		{
			cs->xp[i] = DltCacheRow(cs->c, r0 + i);
			cs->sp[i] = *DltCacheLabel(cs->c, r0 + i);
		}
		DltBatchGather(b, bs, cs->xp, cs->sp, &src->labels,
					   fm != NULL && !cs->inplace ? fm : NULL, fs);
		map(arg, b, bs, d->mat + (size_t) r0 * H);
		CHECK_FOR_INTERRUPTS();
	}
	return &d->pub;
}

static const DltRowSourceOps mem_ops = {
	MemPrepare, MemOpenStream, MemBeginEpoch, MemNextBatch, MemNextValidation, CacheClose,
	NULL, MemMaterialize
};

static const DltRowSourceOps spill_ops = {
	SpillPrepare, SpillOpenStream, SpillBeginEpoch, SpillNextBatch, SpillNextValidation,
	CacheClose, NULL
};

DltRowSource *
DltCacheSourceCreate(DltRows *rows)
{
	CacheSource *cs = palloc0(sizeof(CacheSource));
	DltRowSource *src = &cs->pub;

	cs->rows = rows;
	cs->c = &rows->cache;
	src->ops = rows->cache.file ? &spill_ops : &mem_ops;
	src->name = "row cache";
	src->D = rows->cache.dim;
	src->task = rows->task;
	src->label_kind = rows->label_kind;
	src->label_type = rows->label_type;
	src->n_rows = rows->cache.n_rows;
	src->rows_skipped = rows->rows_skipped;
	src->root = rows->cache.root;
	/* spilled: every member reads the file itself, in its own chunk order */
	src->shared_streams = rows->cache.file == NULL;
	return src;
}
