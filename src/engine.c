/*
 * engine.c — training K models from one row cache.
 *
 * Every training from the aggregate's row cache comes through DltTrainMany:
 * one train_mlp call is K = 1; sibling train_mlp calls of one statement
 * (merged at execution, train.c, or rewritten by the planner hook,
 * planner.c), train_mlp_multi and grid_search give K > 1.  The rows were
 * scanned and converted once; here they are put in canonical order once,
 * their statistics computed once, and the models train side by side.
 *
 * Streams.  Members whose batch stream would be the same when trained alone
 * (same shuffle, seed, batch size, normalization and validation fraction)
 * share one: one shuffle per epoch, one gather of each mini-batch, and, by
 * dltrain.fusion, one GEMM for the first layers of its members
 * (dlk_train_step_fused).  Each member keeps its own network, optimizer and
 * epoch count, so a member trains exactly as it would alone: unfused, the
 * bytes are the same; fused, OpenBLAS rounds some values of the wider GEMM
 * differently in the last bit.  "auto" fuses the models without hidden
 * layers, where the fused step was measured faster (the first layer is the
 * whole model and its small GEMMs cost mostly call overhead); with hidden
 * layers it was not faster (bench/RESULTS.md), so those stay byte-identical
 * to their separate training unless fusion is "on".
 *
 * Validation.  validation_fraction holds rows out by a hash of their content
 * (the same choice as fit()), so the split is reproducible and does not
 * depend on the order rows arrive in.  After every epoch each member's
 * validation loss and metric go into its model; early_stopping stops a
 * member after that many epochs without a lower validation loss and keeps
 * its best epoch's weights.
 *
 * Selection.  A member whose loss becomes NaN or infinite is dropped
 * (tolerant callers) or raises the usual error (a single train_mlp).
 * Successive halving (grid_search) keeps the best 1/eta of the members
 * still training after each rung of epochs and drops the rest.
 *
 * Spilled caches are read chunk by chunk with the two-level shuffle; there
 * every member reads the file itself (its own chunk order), one epoch of
 * each member after the other, so early stopping and halving work the same.
 *
 * Cancel.  Every loop over the rows checks for interrupts every
 * CFI_ROWS rows (or every chunk read); the passes on the pool's threads
 * (HashRange, QsumRange, StandardizeRange, GatherRange) poll the kernels'
 * abort callback (dlk_abort_poll) every POLL_FLOATS floats and
 * end early, and the glue then raises the cancel (DltKernelAborted); the
 * steps stop inside the kernels the same way.  A poll never changes what a
 * pass computes.  The sort of equal hashes checks in its comparator
 * (pg_qsort allocates nothing, so the error may leave it).
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "common/hashfn.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/memutils.h"

#include "dltrain.h"

int			dltrain_fusion = DLT_FUSION_AUTO;

/* May member m's first layer join its stream's fused step? */
static bool
Fusable(const DltModel *m)
{
	return dltrain_fusion == DLT_FUSION_ON ||
		(dltrain_fusion == DLT_FUSION_AUTO && m->arch.n_layers == 1);
}

#define SHUFFLE_STREAM_SALT UINT64CONST(0x53485546464c4521)

/* rows between two interrupt checks in a loop over the rows */
#define CFI_ROWS 1048576
#define CFI_DUE(i) (((i) & (CFI_ROWS - 1)) == 0)

/* floats of rows between two abort polls in a pass on the pool's threads */
#define POLL_FLOATS 1048576

/* Rows of D floats between two polls. */
static inline int64
PollRows(int D)
{
	return Max(1, POLL_FLOATS / Max(D, 1));
}

/* A pass on the pool's threads: an abort raises the pending cancel. */
static void
PoolFor(size_t n, size_t min_per_thread, dlk_range_fn fn, void *arg)
{
	if (dlk_pool_for(n, min_per_thread, fn, arg) != DLK_OK)
		DltKernelAborted();
}

/* ---- row hashes and canonical order ---- */

/* Is a row (by its content hash) held out for validation?  (fit() too.) */
bool
DltIsValidationRow(uint64 hash, double fraction)
{
	/* the top bits of a second mix, so the choice is independent of the hash order */
	uint64		h = hash_combine64(hash, UINT64CONST(0x76616c6964617465));

	return fraction > 0 &&
		(double) (h >> 11) < fraction * (double) (UINT64CONST(1) << 53);
}

/*
 * Appends a held-out row, doubling the arrays (from 1024 rows) as needed;
 * the rows held out are only known once counted (all copies of a row go
 * the same way), so the budget is checked as they grow.
 */
void
DltHeldOutAdd(DltHeldOut *v, const float *x, int64 y, uint64 h)
{
	if (v->n == v->cap)
	{
		int64		cap = Max(1024, v->cap * 2);
		Size		bytes = mul_size(cap, sizeof(float) * v->D + 8 + (v->keep_hash ? 8 : 0));

		DltBudgetCheck(v->root ? v->root : v->cxt, bytes - v->bytes,
					   "the held-out validation rows");
		if (v->x == NULL)
		{
			v->x = MemoryContextAllocHuge(v->cxt, sizeof(float) * v->D * cap);
			v->y = MemoryContextAllocHuge(v->cxt, sizeof(int64) * cap);
			if (v->keep_hash)
				v->h = MemoryContextAllocHuge(v->cxt, sizeof(uint64) * cap);
		}
		else
		{
			v->x = repalloc_huge(v->x, sizeof(float) * v->D * cap);
			v->y = repalloc_huge(v->y, sizeof(int64) * cap);
			if (v->keep_hash)
				v->h = repalloc_huge(v->h, sizeof(uint64) * cap);
		}
		v->cap = cap;
		v->bytes = bytes;
	}
	memcpy(v->x + v->n * v->D, x, sizeof(float) * v->D);
	v->y[v->n] = y;
	if (v->keep_hash)
		v->h[v->n] = h;
	v->n++;
}

/* A row's content hash: its float32 features and its label. */
static inline uint64
RowHash(const DltRows *rows, const float *x, int64 y)
{
	uint64		h = hash_bytes_extended((const unsigned char *) x,
										sizeof(float) * rows->cache.dim, 0);
	uint64		hy;

	if (rows->task == DLT_TASK_CLASSIFICATION)
		hy = rows->classes.chash[y];
	else
		hy = hash_bytes_extended((const unsigned char *) &y, sizeof(y), 1);
	return hash_combine64(h, hy);
}

typedef struct RowKey
{
	uint64		hash;
	uint32		row;
} RowKey;

static const DltRows *sort_rows;	/* for the tie-break comparator */
static uint32 sort_calls;		/* its calls, for interrupt checks */

/*
 * Labels compared by content: class indices (ranks of the sorted values)
 * for classification, the value's bits for regression.
 */
static int
CompareLabelSlots(const DltRows *rows, int64 a, int64 b)
{
	if (rows->task == DLT_TASK_CLASSIFICATION)
	{
		a = rows->classes.rank[a];
		b = rows->classes.rank[b];
	}
	return (a > b) - (a < b);
}

static int
CompareRowKeys(const void *pa, const void *pb)
{
	const RowKey *a = pa;
	const RowKey *b = pb;
	const DltCache *c = &sort_rows->cache;
	int			r;

	if ((++sort_calls & 65535) == 0)
		CHECK_FOR_INTERRUPTS();
	if (a->hash != b->hash)
		return a->hash < b->hash ? -1 : 1;
	r = memcmp(DltCacheRow(c, a->row), DltCacheRow(c, b->row), sizeof(float) * c->dim);
	if (r)
		return r;
	return CompareLabelSlots(sort_rows, *DltCacheLabel(c, a->row), *DltCacheLabel(c, b->row));
}

/*
 * LSD radix sort of keys by hash, 16 bits a pass (4 passes).  Unlike qsort it
 * costs a few sequential passes whatever n, and its result does not depend on
 * the input order except among equal hashes, which the caller then orders by
 * content.
 */
static void
RadixSortKeys(RowKey *keys, int64 n)
{
	RowKey	   *tmp = palloc_extended(sizeof(RowKey) * Max(n, 1), MCXT_ALLOC_HUGE);
	int64	   *count = palloc(sizeof(int64) * 65536);
	RowKey	   *src = keys,
			   *dst = tmp;

	for (int shift = 0; shift < 64; shift += 16)
	{
		int64		pos = 0;

		memset(count, 0, sizeof(int64) * 65536);
		for (int64 i = 0; i < n; i++)
		{
			if (CFI_DUE(i))
				CHECK_FOR_INTERRUPTS();
			count[(src[i].hash >> shift) & 0xFFFF]++;
		}
		for (int b = 0; b < 65536; b++)
		{
			int64		c = count[b];

			count[b] = pos;
			pos += c;
		}
		for (int64 i = 0; i < n; i++)
		{
			if (CFI_DUE(i))
				CHECK_FOR_INTERRUPTS();
			dst[count[(src[i].hash >> shift) & 0xFFFF]++] = src[i];
		}
		{
			RowKey	   *t = src;

			src = dst;
			dst = t;
		}
	}
	/* four passes: the result is back in keys */
	Assert(src == keys);
	pfree(tmp);
	pfree(count);
}

/* Fills order[] with the cache's rows in canonical (content hash) order. */
static void
CanonicalOrder(const DltRows *rows, const uint64 *hash, uint32 *order)
{
	const DltCache *c = &rows->cache;
	int64		n = c->n_rows;
	RowKey	   *keys = palloc_extended(sizeof(RowKey) * Max(n, 1), MCXT_ALLOC_HUGE);

	for (int64 r = 0; r < n; r++)
	{
		if (CFI_DUE(r))
			CHECK_FOR_INTERRUPTS();
		keys[r].hash = hash[r];
		keys[r].row = (uint32) r;
	}
	RadixSortKeys(keys, n);
	/* equal hashes (duplicate rows, or a collision): order by content */
	sort_rows = rows;
	for (int64 i = 0; i < n;)
	{
		int64		j = i + 1;

		while (j < n && keys[j].hash == keys[i].hash)
			j++;
		if (j - i > 1)
			qsort(keys + i, j - i, sizeof(RowKey), CompareRowKeys);
		if ((i >> 20) != (j >> 20))
			CHECK_FOR_INTERRUPTS();
		i = j;
	}
	for (int64 i = 0; i < n; i++)
	{
		if (CFI_DUE(i))
			CHECK_FOR_INTERRUPTS();
		order[i] = keys[i].row;
	}
	pfree(keys);
}

/* ---- normalization statistics ---- */

/*
 * scale = 1/std (population std), or 1 for a (near) constant feature, so a
 * zero-variance feature becomes 0 instead of dividing by zero.
 */
void
DltStatsFinishScale(DltModel *m, int d, double mean, double var)
{
	double		sd = sqrt(Max(var, 0.0));

	m->scale[d] = (sd > 1e-12 * Max(1.0, fabs(mean))) ? 1.0 / sd : 1.0;
}

/*
 * Sets m's standardization from one pass of shifted moments over n rows
 * (fit()): mean, and scale as DltStatsFinishScale.  fm and fs get the
 * float32 versions that training and predict apply.
 */
void
DltStatsFinish(DltModel *m, int64 n, const double *sum, const double *sq,
			   const float *shift, float *fm, float *fs)
{
	int			D = m->arch.dims[0];

	m->normalized = true;
	m->mean = palloc(sizeof(double) * D);
	m->scale = palloc(sizeof(double) * D);
	for (int d = 0; d < D; d++)
	{
		double		mu = sum[d] / n;

		m->mean[d] = shift[d] + mu;
		DltStatsFinishScale(m, d, m->mean[d], sq[d] / n - mu * mu);
		fm[d] = (float) m->mean[d];
		fs[d] = (float) m->scale[d];
	}
}

/*
 * Exact standardization statistics, in whatever order the rows are stored:
 * one sequential pass of quantized sums (dlk_qsum_accumulate) of each
 * feature's deviation from the middle of its range (known from the
 * transition) and of its square.  The quanta are the half range, and its
 * square, over 2^52/n, so every partial sum is an exact integer in double:
 * the result depends only on the multiset of rows, without walking them in
 * canonical order.  mean = center + E[v], var = E[v^2] - E[v]^2 with
 * v = x - center: both terms are at most half^2, so the subtraction loses
 * nothing next to the quantization, about half^2 * 2^-(52 - log2 n) (e.g.
 * 2e-10 of the half range squared at a million rows).  row(arg, i) returns
 * row i of the pass, i from 0 to n - 1 in turn.  The statistics are over
 * every cached row, validation rows included (they are part of the data the
 * model is for, and this keeps one set of statistics for all members).
 */
typedef const float *(*RowIter) (void *arg, int64 i);

static const float *CacheRowIter(void *arg, int64 i);

/*
 * The passes over a cache in memory run on the pool's threads
 * (dlk_pool_for): the statistics with features cut (each range walks every
 * row, in order, for its features: the same sums), the hashes and the
 * standardization with rows cut.  These range functions touch memory only.
 */
typedef struct QsumJob
{
	const DltCache *c;
	int64		n;
	const double *center;
	const double *inv_q1;
	const double *inv_q2;
	double	   *acc1;
	double	   *acc2;
} QsumJob;

static void
QsumRange(void *arg, size_t lo, size_t hi)
{
	const QsumJob *j = arg;
	int64		pr = PollRows((int) (hi - lo));

	for (int64 i = 0; i < j->n; i++)
	{
		if (i % pr == 0 && dlk_abort_poll())
			return;
		dlk_qsum_accumulate(j->acc1 + lo, j->acc2 + lo, DltCacheRow(j->c, i) + lo,
							j->center + lo, j->inv_q1 + lo, j->inv_q2 + lo,
							(int) (hi - lo));
	}
}

typedef struct RowsJob
{
	const DltRows *rows;
	const DltCache *c;
	uint64	   *hash;			/* HashRange's output */
	const float *fm;			/* StandardizeRange's statistics */
	const float *fs;
} RowsJob;

static void
HashRange(void *arg, size_t lo, size_t hi)
{
	const RowsJob *j = arg;
	int64		pr = PollRows(j->c->dim);

	for (size_t r = lo; r < hi; r++)
	{
		if ((r - lo) % pr == 0 && dlk_abort_poll())
			return;
		j->hash[r] = RowHash(j->rows, DltCacheRow(j->c, r), *DltCacheLabel(j->c, r));
	}
}

static void
StandardizeRange(void *arg, size_t lo, size_t hi)
{
	const RowsJob *j = arg;
	int64		pr = PollRows(j->c->dim);

	for (size_t r = lo; r < hi; r++)
	{
		if ((r - lo) % pr == 0 && dlk_abort_poll())
			return;
		dlk_standardize(DltCacheRow(j->c, r), j->fm, j->fs, j->c->dim);
	}
}

/* rows a helper thread takes at least in the passes above */
#define PREP_MIN_ROWS 8192

static void
ExactStats(DltModel *m, int D, int64 n, const float *fmin, const float *fmax,
		   RowIter row, void *arg, float *fm, float *fs)
{
	double	   *center = palloc(sizeof(double) * D);
	double	   *inv_q1 = palloc(sizeof(double) * D);
	double	   *inv_q2 = palloc(sizeof(double) * D);
	double	   *acc1 = palloc0(sizeof(double) * D);
	double	   *acc2 = palloc0(sizeof(double) * D);
	double		levels = ldexp(1.0, 52);
	int			L = 0;

	while (L < 62 && ((int64) 1 << L) < n)
		L++;
	levels = ldexp(levels, -L);	/* 2^52 / 2^ceil(log2 n) per term */

	for (int d = 0; d < D; d++)
	{
		double		half = ((double) fmax[d] - (double) fmin[d]) / 2;

		center[d] = ((double) fmax[d] + (double) fmin[d]) / 2;
		inv_q1[d] = half > 0 ? levels / half : 0;
		inv_q2[d] = half > 0 ? levels / (half * half) : 0;
	}
	if (row == CacheRowIter)
	{
		/* rows in memory: features cut over the pool's threads */
		QsumJob		job = {(const DltCache *) arg, n, center, inv_q1, inv_q2, acc1, acc2};

		PoolFor((size_t) D, 16, QsumRange, &job);
	}
	else
	{
		/* spilled rows: the reader checks for interrupts at every chunk */
		for (int64 i = 0; i < n; i++)
			dlk_qsum_accumulate(acc1, acc2, row(arg, i), center, inv_q1, inv_q2, D);
	}

	m->mean = palloc(sizeof(double) * D);
	m->scale = palloc(sizeof(double) * D);
	for (int d = 0; d < D; d++)
	{
		double		e1 = inv_q1[d] > 0 ? acc1[d] / inv_q1[d] / n : 0;
		double		e2 = inv_q2[d] > 0 ? acc2[d] / inv_q2[d] / n : 0;

		m->mean[d] = center[d] + e1;
		DltStatsFinishScale(m, d, m->mean[d], e2 - e1 * e1);
		fm[d] = (float) m->mean[d];
		fs[d] = (float) m->scale[d];
	}
	m->normalized = true;
	pfree(center);
	pfree(inv_q1);
	pfree(inv_q2);
	pfree(acc1);
	pfree(acc2);
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

/* Starts loading a cached row that will be read soon (rows are scattered). */
static inline void
PrefetchRow(const DltCache *c, int64 r)
{
#ifdef __GNUC__
	const char *p = (const char *) DltCacheRow(c, r);
	Size		bytes = sizeof(float) * c->dim;

	for (Size off = 0; off < bytes; off += 64)
		__builtin_prefetch(p + off);
#endif
}

/* ---- members ---- */

typedef struct Member
{
	DltModel   *m;
	DltTrainer	t;
	DltSelectResult *res;
	int			stream;
	bool		active;			/* still training */
	bool		fuse;			/* may join its stream's fused step */
	double		best_vloss;
	int			since_best;
	float	   *best_params;
} Member;

/* A model with what the rows determine, for one member's options. */
static DltModel *
MemberModel(const DltRows *rows, const DltOptions *opts)
{
	DltModel   *m = palloc0(sizeof(DltModel));

	m->task = rows->task;
	m->label_kind = rows->label_kind;
	m->label_type = rows->label_type;
	m->opts = *opts;
	m->rows_used = rows->cache.n_rows;
	m->rows_skipped = rows->rows_skipped;
	m->epochs_run = 0;
	return m;
}

static double
Elapsed(instr_time t0)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, t0);
	return INSTR_TIME_GET_DOUBLE(now);
}

/* A member's loss went NaN or infinite in epoch e (0-based). */
static void
MemberDiverged(Member *mb, int e, bool tolerate, instr_time t0)
{
	if (!tolerate)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("training diverged: the loss became NaN or infinite in epoch %d",
						e + 1),
				 errhint("Lower \"lr\", or enable \"normalize\".")));
	mb->active = false;
	mb->res->diverged = true;
	mb->res->diverged_epoch = e + 1;
	mb->res->epochs_trained = e;
	mb->res->seconds = Elapsed(t0);
	mb->m->epochs_run = e;
}

/* Epoch e is over for an active member: its losses, early stopping, the end. */
static void
MemberEpochDone(Member *mb, int e, double vloss, double vmetric, instr_time t0)
{
	DltModel   *m = mb->m;
	const DltOptions *o = &m->opts;

	DltTrainerEpochEnd(&mb->t);
	mb->res->loss = m->epoch_loss[e];
	mb->res->epochs_trained = e + 1;
	if (m->rows_validation > 0)
	{
		m->val_loss[e] = (float) vloss;
		m->val_metric[e] = (float) vmetric;
		if (e == 0 || vloss < mb->best_vloss)
		{
			mb->best_vloss = vloss;
			mb->since_best = 0;
			if (o->early_stopping > 0)
			{
				m->best_epoch = e + 1;
				memcpy(mb->best_params, m->params, sizeof(float) * m->n_params);
			}
		}
		else
			mb->since_best++;
		mb->res->val_loss = vloss;
		mb->res->val_metric = vmetric;
	}
	if (e + 1 >= o->epochs ||
		(o->early_stopping > 0 && mb->since_best >= o->early_stopping))
	{
		if (e + 1 < o->epochs)
			mb->res->stopped_epoch = e + 1;
		mb->active = false;
		mb->res->seconds = Elapsed(t0);
	}
}

/* After training: the best epoch's weights, and the result's summary. */
static void
MemberFinish(Member *mb)
{
	DltModel   *m = mb->m;

	if (m->best_epoch > 0 && m->best_epoch < m->epochs_run)
		memcpy(m->params, mb->best_params, sizeof(float) * m->n_params);
	if (m->rows_validation > 0 && m->best_epoch > 0)
	{
		mb->res->val_loss = m->val_loss[m->best_epoch - 1];
		mb->res->val_metric = m->val_metric[m->best_epoch - 1];
	}
	mb->res->m = m;
}

/* Every member that did not diverge, at the end of training. */
static void
MembersFinish(Member *mem, int K, instr_time t0)
{
	for (int k = 0; k < K; k++)
	{
		if (mem[k].res->diverged)
			continue;
		if (mem[k].active)
			mem[k].res->seconds = Elapsed(t0);
		MemberFinish(&mem[k]);
	}
}

static int
CompareByValLoss(const void *pa, const void *pb)
{
	const Member *a = *(Member *const *) pa;
	const Member *b = *(Member *const *) pb;
	double		la = a->m->rows_validation > 0 ? a->res->val_loss : a->res->loss;
	double		lb = b->m->rows_validation > 0 ? b->res->val_loss : b->res->loss;

	/* a NaN loss ranks last, consistently */
	if (isnan(la))
		la = HUGE_VAL;
	if (isnan(lb))
		lb = HUGE_VAL;
	if (la != lb)
		return la < lb ? -1 : 1;
	return (a->res->index > b->res->index) - (a->res->index < b->res->index);
}

/*
 * Successive halving: after epoch e (0-based), at the end of a rung, keep
 * the best ceil(n / eta) of the n members still training (by validation
 * loss, else training loss), drop the rest.
 */
static void
Halve(Member *mem, int K, int e, const DltSelectConfig *cfg, instr_time t0)
{
	Member	  **act;
	int			n = 0;
	int			rung = cfg->min_epochs;
	int			keep;

	if (cfg->eta < 2)
		return;
	while (rung < e + 1)
		rung *= cfg->eta;
	if (rung != e + 1)
		return;
	act = palloc(sizeof(Member *) * K);
	for (int k = 0; k < K; k++)
		if (mem[k].active)
			act[n++] = &mem[k];
	keep = (n + cfg->eta - 1) / cfg->eta;
	if (n > 1)
	{
		qsort(act, n, sizeof(Member *), CompareByValLoss);
		for (int i = keep; i < n; i++)
		{
			act[i]->active = false;
			act[i]->res->pruned_epoch = e + 1;
			act[i]->res->seconds = Elapsed(t0);
		}
	}
	pfree(act);
}

/* Sets up member k: model, network, validation arrays. */
static void
MemberInit(Member *mb, const DltRows *rows, const DltOptions *opts, DltSelectResult *res,
		   int B, int64 n_train, int64 n_val)
{
	DltModel   *m = MemberModel(rows, opts);
	bool		cls = rows->task == DLT_TASK_CLASSIFICATION;

	memset(mb, 0, sizeof(*mb));
	mb->res = res;
	mb->m = m;
	mb->active = opts->epochs > 0;
	m->rows_used = n_train;
	m->rows_validation = n_val;
	if (cls)
	{
		/* the classes are the rows', the same for every member */
		m->n_classes = res->n_classes;
		m->class_int = res->class_int;
		m->class_float = res->class_float;
		m->class_text = res->class_text;
	}
	DltModelSetArch(m, rows->cache.dim, cls ? m->n_classes : 1);
	DltTrainerInit(&mb->t, m, B, rows->cache.root);
	mb->t.model_no = res->index;
	mb->t.n_models = res->n_models;
	if (n_val > 0)
	{
		m->val_loss = palloc0(sizeof(float) * Max(opts->epochs, 1));
		m->val_metric = palloc0(sizeof(float) * Max(opts->epochs, 1));
		if (opts->early_stopping > 0)
			mb->best_params = palloc_extended(sizeof(float) * m->n_params, MCXT_ALLOC_HUGE);
	}
	res->m = NULL;
}

/*
 * The buffers of all K models must fit the memory budget together, as one
 * model's must alone; checked before any of them is allocated.
 */
static void
CheckMembersBudget(const DltRows *rows, const DltOptions *opts, int K, const int *B,
				   const DltSelectResult *res)
{
	Size		total = 0;

	if (K < 2)
		return;
	for (int k = 0; k < K; k++)
	{
		DltModel	m;

		memset(&m, 0, sizeof(m));
		m.task = rows->task;
		m.opts = opts[k];
		DltModelSetArch(&m, rows->cache.dim,
						rows->task == DLT_TASK_CLASSIFICATION ? res[k].n_classes : 1);
		total = add_size(total, DltTrainerBytes(&m, B[k]));
	}
	DltBudgetCheck(rows->cache.root, total,
				   psprintf("training %d models together: their parameters, gradients, optimizer state and batch buffers", K));
}

/* Takes the standardization into a member's model. */
static void
MemberStats(Member *mb, const DltModel *stats, int D)
{
	DltModel   *m = mb->m;

	if (!m->opts.normalize)
		return;
	m->normalized = true;
	m->mean = palloc(sizeof(double) * D);
	m->scale = palloc(sizeof(double) * D);
	memcpy(m->mean, stats->mean, sizeof(double) * D);
	memcpy(m->scale, stats->scale, sizeof(double) * D);
}

static void
NoTrainingRows(int64 n, double fraction)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("validation_fraction %g leaves no training rows", fraction),
			 errdetail("All %lld rows were held out for validation.", (long long) n)));
}

/* ---- in memory ---- */

typedef struct Stream
{
	bool		shuffle;
	int64		seed;
	int			batch_size;
	int			B;
	bool		normalize;
	double		vfrac;
	uint32	   *order;			/* training rows */
	int64		n_train;
	uint32	   *val;			/* validation rows, canonical order */
	int64		n_val;
	dlk_rng		rng;
	float	   *xb;				/* the gathered batch, shared by the members */
	int32	   *yb;
	float	   *tb;
	float	   *fused_work;
	dlk_net   **nets;
	const dlk_opt **opts;
	Member	  **who;
	double	   *losses;
	dlk_status *status;
} Stream;

/*
 * One gather: rows idx[0..bs) of the cache into a stream's batch buffers.
 * Its rows are copied on the pool's threads (dlk_pool_for), which run only
 * this memory work: no PostgreSQL call happens in GatherRange.
 */
typedef struct GatherJob
{
	Stream	   *s;
	const DltCache *c;
	const uint32 *idx;
	const int32 *cls;
	const float *tgt;
	const float *fm;
	const float *fs;
	bool		standardize;
} GatherJob;

static void
GatherRange(void *arg, size_t lo, size_t hi)
{
	const GatherJob *j = arg;
	Stream	   *s = j->s;
	const DltCache *c = j->c;
	int			D = c->dim;
	int64		pr = PollRows(D);

	for (size_t i = lo; i < hi; i++)
	{
		uint32		r = j->idx[i];
		float	   *x = s->xb + (Size) i * D;

		if ((i - lo) % pr == 0 && dlk_abort_poll())
			return;
		if (i + 8 < hi)
			PrefetchRow(c, j->idx[i + 8]);
		memcpy(x, DltCacheRow(c, r), sizeof(float) * D);
		if (j->standardize)
			dlk_standardize(x, j->fm, j->fs, D);
		if (j->cls)
			s->yb[i] = j->cls[r];
		else
			s->tb[i] = j->tgt[r];
	}
}

/* the fewest floats of rows worth a helper thread's wake-up */
#define GATHER_MIN_FLOATS_PER_THREAD 16384

/* Gathers rows idx[0..bs) into the stream's batch buffers. */
static void
Gather(Stream *s, const DltCache *c, const uint32 *idx, int bs,
	   const int32 *cls, const float *tgt, const float *fm, const float *fs,
	   bool standardize)
{
	GatherJob	job = {s, c, idx, cls, tgt, fm, fs, standardize};

	PoolFor((size_t) bs, GATHER_MIN_FLOATS_PER_THREAD / c->dim + 1,
			GatherRange, &job);
}

/* Validation loss and metric of every active member of a stream. */
static void
ValidateStream(Stream *s, Member *mem, int K, int si, const DltCache *c,
			   const int32 *cls, const float *tgt, const float *fm, const float *fs,
			   bool standardize, double *vloss, double *vscore)
{
	for (int k = 0; k < K; k++)
		vloss[k] = vscore[k] = 0;
	for (int64 start = 0; start < s->n_val; start += s->B)
	{
		int			bs = (int) Min((int64) s->B, s->n_val - start);

		Gather(s, c, s->val + start, bs, cls, tgt, fm, fs, standardize);
		for (int k = 0; k < K; k++)
		{
			double		score;

			if (mem[k].stream != si || !mem[k].active)
				continue;
			vloss[k] += DltTrainerEval(&mem[k].t, bs, &score) * bs;
			vscore[k] += score;
		}
		CHECK_FOR_INTERRUPTS();
	}
	for (int k = 0; k < K; k++)
	{
		if (mem[k].stream != si || !mem[k].active)
			continue;
		vloss[k] /= s->n_val;
		vscore[k] = mem[k].m->task == DLT_TASK_CLASSIFICATION ?
			vscore[k] / s->n_val : sqrt(vscore[k] / s->n_val / mem[k].t.C);
	}
}

static void
TrainInMemory(DltRows *rows, const DltOptions *opts, int K,
			  const DltSelectConfig *cfg, DltSelectResult *res)
{
	DltCache   *c = &rows->cache;
	int64		n = c->n_rows;
	int			D = c->dim;
	bool		classify = rows->task == DLT_TASK_CLASSIFICATION;
	int32	   *cls = NULL;
	float	   *tgt = NULL;
	uint64	   *hash = NULL;
	uint32	   *canon = NULL;
	bool		any_norm = false,
				all_norm = true,
				any_shuffle = false,
				any_val = false,
				inplace;
	int			max_epochs = 0;
	int			S = 0;
	Stream	   *streams = palloc0(sizeof(Stream) * K);
	Member	   *mem = palloc0(sizeof(Member) * K);
	DltModel   *stats = palloc0(sizeof(DltModel));
	float	   *fm = palloc(sizeof(float) * D);
	float	   *fs = palloc(sizeof(float) * D);
	double	   *vloss = palloc(sizeof(double) * K);
	double	   *vscore = palloc(sizeof(double) * K);
	instr_time	t0;

	INSTR_TIME_SET_CURRENT(t0);
	for (int k = 0; k < K; k++)
	{
		any_norm |= opts[k].normalize;
		all_norm &= opts[k].normalize;
		any_shuffle |= opts[k].shuffle && opts[k].epochs > 0;
		any_val |= opts[k].validation_fraction > 0;
		max_epochs = Max(max_epochs, opts[k].epochs);
	}

	/*
	 * Per-row arrays beside the cache: labels, hashes, one order per stream,
	 * and the sort's keys and their radix buffer (2 x 16 bytes a row) while
	 * it runs.
	 */
	DltBudgetCheck(rows->cache.root,
				   mul_size(n, DLT_ROW_INDEX_BYTES - 4 + 4 * (Size) K),
				   psprintf("the indexes of %lld rows", (long long) n));

	/* labels: class indices or float targets, indexed by cache row */
	if (classify)
	{
		cls = palloc_extended(sizeof(int32) * n, MCXT_ALLOC_HUGE);
		for (int64 r = 0; r < n; r++)
		{
			if (CFI_DUE(r))
				CHECK_FOR_INTERRUPTS();
			cls[r] = rows->classes.rank[*DltCacheLabel(c, r)];
		}
	}
	else
	{
		tgt = palloc_extended(sizeof(float) * n, MCXT_ALLOC_HUGE);
		for (int64 r = 0; r < n; r++)
		{
			if (CFI_DUE(r))
				CHECK_FOR_INTERRUPTS();
			tgt[r] = (float) DltLabelTarget(*DltCacheLabel(c, r), rows->label_kind);
		}
	}

	DltProgressPhase(DLT_PHASE_PREPARING);
	DltTestWaitPoint(DLT_WAIT_PREPARING);
	DltProgressRows(n, n, NAN, 0);
	/* the passes below run on dltrain.threads threads, as the steps will */
	DltBlasEnsure(DltThreads());

	/* content hashes and the canonical order, before any standardization */
	if (any_shuffle || any_val)
	{
		RowsJob		job = {rows, c, NULL, NULL, NULL};

		hash = palloc_extended(sizeof(uint64) * n, MCXT_ALLOC_HUGE);
		job.hash = hash;
		PoolFor((size_t) n, PREP_MIN_ROWS, HashRange, &job);
		canon = palloc_extended(sizeof(uint32) * n, MCXT_ALLOC_HUGE);
		CanonicalOrder(rows, hash, canon);
	}

	/*
	 * statistics once; standardize in place when every member wants it and
	 * some epoch will read the rows
	 */
	if (any_norm)
		ExactStats(stats, D, n, c->fmin, c->fmax, CacheRowIter, c, fm, fs);
	inplace = any_norm && all_norm && max_epochs > 0;
	if (inplace)
	{
		RowsJob		job = {rows, c, NULL, fm, fs};

		PoolFor((size_t) n, PREP_MIN_ROWS, StandardizeRange, &job);
	}

	/* streams */
	for (int k = 0; k < K; k++)
	{
		const DltOptions *o = &opts[k];
		bool		shuf = o->shuffle && o->epochs > 0;
		int			si;
		Stream	   *s;

		for (si = 0; si < S; si++)
		{
			s = &streams[si];
			if (s->shuffle == shuf && s->seed == o->seed &&
				s->normalize == o->normalize && s->vfrac == o->validation_fraction &&
				s->batch_size == o->batch_size)
				break;
		}
		if (si == S)
		{
			s = &streams[S++];
			s->shuffle = shuf;
			s->seed = o->seed;
			s->normalize = o->normalize;
			s->vfrac = o->validation_fraction;
			s->order = palloc_extended(sizeof(uint32) * n, MCXT_ALLOC_HUGE);
			if (s->vfrac > 0)
				s->val = palloc_extended(sizeof(uint32) * n, MCXT_ALLOC_HUGE);
			for (int64 i = 0; i < n; i++)
			{
				/* shuffled: from the canonical order; else as rows arrived */
				uint32		r = shuf ? canon[i] : (uint32) i;

				if (CFI_DUE(i))
					CHECK_FOR_INTERRUPTS();
				if (s->vfrac > 0 && DltIsValidationRow(hash[r], s->vfrac))
					continue;
				s->order[s->n_train++] = r;
			}
			if (s->vfrac > 0)
				for (int64 i = 0; i < n; i++)
				{
					if (CFI_DUE(i))
						CHECK_FOR_INTERRUPTS();
					if (DltIsValidationRow(hash[canon[i]], s->vfrac))
						s->val[s->n_val++] = canon[i];
				}
			if (s->n_train == 0)
				NoTrainingRows(n, s->vfrac);
			s->batch_size = o->batch_size;
			s->B = (int) Min((int64) o->batch_size, s->n_train);
			dlk_rng_seed(&s->rng, (uint64) o->seed ^ SHUFFLE_STREAM_SALT);
			s->xb = palloc_extended(sizeof(float) * (Size) s->B * D, MCXT_ALLOC_HUGE);
			s->yb = palloc(sizeof(int32) * s->B);
			s->tb = palloc(sizeof(float) * s->B);
		}
		mem[k].stream = si;
	}

	/* members: models, networks; the classes come from the rows */
	{
		int		   *bs = palloc(sizeof(int) * K);

		for (int k = 0; k < K; k++)
			bs[k] = streams[mem[k].stream].B;
		CheckMembersBudget(rows, opts, K, bs, res);
		pfree(bs);
	}
	for (int k = 0; k < K; k++)
	{
		Stream	   *s = &streams[mem[k].stream];
		int			si = mem[k].stream;

		MemberInit(&mem[k], rows, &opts[k], &res[k], s->B, s->n_train, s->n_val);
		mem[k].stream = si;
		if (any_norm)
			MemberStats(&mem[k], stats, D);
		/* the stream's gather buffers replace the trainer's own */
		pfree(mem[k].t.xb);
		pfree(mem[k].t.yb);
		pfree(mem[k].t.tb);
		mem[k].t.xb = s->xb;
		mem[k].t.yb = s->yb;
		mem[k].t.tb = s->tb;
	}

	/* fusion: per stream, the networks that step together */
	for (int si = 0; si < S; si++)
	{
		Stream	   *s = &streams[si];
		int			ks = 0;

		s->nets = palloc(sizeof(dlk_net *) * K);
		s->opts = palloc(sizeof(dlk_opt *) * K);
		s->who = palloc(sizeof(Member *) * K);
		s->losses = palloc(sizeof(double) * K);
		s->status = palloc(sizeof(dlk_status) * K);
		for (int k = 0; k < K; k++)
			if (mem[k].stream == si && Fusable(mem[k].m))
				s->nets[ks++] = &mem[k].t.net;
		if (ks > 1)
			s->fused_work = palloc_extended(sizeof(float) * dlk_fused_work_size(s->nets, ks, s->B),
											MCXT_ALLOC_HUGE);
	}

	DltProgressPhase(DLT_PHASE_TRAINING);
	DltTestWaitPoint(DLT_WAIT_TRAINING);
	for (int e = 0; e < max_epochs; e++)
	{
		bool		any = false;

		for (int si = 0; si < S; si++)
		{
			Stream	   *s = &streams[si];
			int			nact = 0;
			bool		standardize = s->normalize && !inplace;

			for (int k = 0; k < K; k++)
				if (mem[k].stream == si && mem[k].active)
					nact++;
			if (nact == 0)
				continue;
			any = true;

			/* the stream shuffles every epoch, as each member alone would */
			if (s->shuffle &&
				dlk_shuffle_u32(&s->rng, s->order, (size_t) s->n_train) != DLK_OK)
				DltKernelAborted();
			for (int k = 0; k < K; k++)
				if (mem[k].stream == si && mem[k].active)
					DltTrainerEpochBegin(&mem[k].t, e, s->n_train);

			for (int64 start = 0; start < s->n_train; start += s->B)
			{
				int			bs = (int) Min((int64) s->B, s->n_train - start);
				int			ks = 0;

				Gather(s, c, s->order + start, bs, cls, tgt, fm, fs,
					   standardize);
				/* the fusable members in one fused step, if two or more */
				for (int k = 0; k < K; k++)
				{
					if (mem[k].stream != si || !mem[k].active || !Fusable(mem[k].m))
						continue;
					s->who[ks] = &mem[k];
					s->nets[ks] = &mem[k].t.net;
					s->opts[ks] = &mem[k].t.opt;
					ks++;
				}
				if (s->fused_work != NULL && ks > 1)
				{
					dlk_status	st;

					st = dlk_train_step_fused(s->nets, s->opts, ks, s->xb,
											  classify ? s->yb : NULL,
											  classify ? NULL : s->tb, bs,
											  s->fused_work, s->losses, s->status);
					if (st == DLK_EABORT)
						DltKernelAborted();
					if (st != DLK_OK)
						elog(ERROR, "fused training step failed: %s", dlk_status_string(st));
					for (int j = 0; j < ks; j++)
					{
						if (s->status[j] == DLK_OK)
							DltTrainerAccount(&s->who[j]->t, bs, s->losses[j]);
						else
							MemberDiverged(s->who[j], e, cfg->tolerate, t0);
					}
				}
				else
					ks = 0;
				/* the others, one step each */
				for (int k = 0; k < K; k++)
				{
					if (mem[k].stream != si || !mem[k].active)
						continue;
					if (ks > 1 && Fusable(mem[k].m))
						continue;
					if (DltTrainerTryStep(&mem[k].t, bs) != DLK_OK)
						MemberDiverged(&mem[k], e, cfg->tolerate, t0);
				}
				CHECK_FOR_INTERRUPTS();
			}

			if (s->n_val > 0)
				ValidateStream(s, mem, K, si, c, cls, tgt, fm, fs, standardize, vloss, vscore);
			for (int k = 0; k < K; k++)
				if (mem[k].stream == si && mem[k].active)
					MemberEpochDone(&mem[k], e, vloss[k], vscore[k], t0);
		}
		if (!any)
			break;
		Halve(mem, K, e, cfg, t0);
	}
	MembersFinish(mem, K, t0);
}

/* ---- spilled ---- */

/*
 * CorgiPile's two-level shuffle over the spilled chunks: every epoch visits
 * the chunks in a new random order, K at a time (K chunk buffers: the
 * budget, or the buffer_rows option), and shuffles the rows of those K
 * chunks together before cutting them into mini-batches.  Chunks hold rows
 * in arrival order, so unlike the in-memory path the model depends on the
 * order rows arrive in (an ORDER BY makes it reproducible).
 */
typedef struct SpillMember
{
	uint32	   *perm;			/* chunk order */
	dlk_rng		rng;
} SpillMember;

static void
SpillEpoch(DltRows *rows, Member *mb, SpillMember *sm, int e, const float *fm,
		   const float *fs, uint32 *idx, bool tolerate, instr_time t0)
{
	DltCache   *c = &rows->cache;
	const DltOptions *o = &mb->m->opts;
	DltTrainer *t = &mb->t;
	int			D = c->dim;
	int			rpc = c->rows_per_chunk;
	int64		N = c->n_file_chunks;
	int			K = c->n_chunks;
	bool		cls = rows->task == DLT_TASK_CLASSIFICATION;
	int			B = t->B;

	if (o->buffer_rows > 0)
		K = (int) Max(1, Min((int64) K, ((int64) o->buffer_rows + rpc - 1) / rpc));
	DltTrainerEpochBegin(t, e, mb->m->rows_used);
	/* level one: chunks */
	if (o->shuffle && dlk_shuffle_u32(&sm->rng, sm->perm, (size_t) N) != DLK_OK)
		DltKernelAborted();
	for (int64 g = 0; g < N; g += K)
	{
		int			kk = (int) Min((int64) K, N - g);
		int			nrows = 0;

		for (int j = 0; j < kk; j++)
		{
			int			nr = DltCacheReadChunk(c, sm->perm[g + j], j);

			CHECK_FOR_INTERRUPTS();
			for (int r = 0; r < nr; r++)
			{
				float	   *x = c->chunk_x[j] + (Size) r * D;

				if (o->validation_fraction > 0 &&
					DltIsValidationRow(RowHash(rows, x, c->chunk_y[j][r]),
									   o->validation_fraction))
					continue;
				if (o->normalize)
					dlk_standardize(x, fm, fs, D);
				idx[nrows++] = (uint32) j * rpc + r;
			}
		}
		/* level two: rows */
		if (o->shuffle && dlk_shuffle_u32(&sm->rng, idx, nrows) != DLK_OK)
			DltKernelAborted();
		for (int start = 0; start < nrows; start += B)
		{
			int			bs = Min(B, nrows - start);

			for (int i = 0; i < bs; i++)
			{
				uint32		j = idx[start + i] / rpc;
				uint32		r = idx[start + i] % rpc;
				int64		y = c->chunk_y[j][r];

				memcpy(t->xb + (Size) i * D, c->chunk_x[j] + (Size) r * D, sizeof(float) * D);
				if (cls)
					t->yb[i] = rows->classes.rank[y];
				else
					t->tb[i] = (float) DltLabelTarget(y, rows->label_kind);
			}
			if (DltTrainerTryStep(t, bs) != DLK_OK)
			{
				MemberDiverged(mb, e, tolerate, t0);
				return;
			}
			CHECK_FOR_INTERRUPTS();
		}
	}
}

static void
TrainSpilled(DltRows *rows, const DltOptions *opts, int K,
			 const DltSelectConfig *cfg, DltSelectResult *res)
{
	DltCache   *c = &rows->cache;
	int64		n = c->n_rows;
	int			D = c->dim;
	int			rpc = c->rows_per_chunk;
	int64		N = c->n_file_chunks;
	bool		classify = rows->task == DLT_TASK_CLASSIFICATION;
	Member	   *mem = palloc0(sizeof(Member) * K);
	SpillMember *sm = palloc0(sizeof(SpillMember) * K);
	DltModel   *stats = palloc0(sizeof(DltModel));
	float	   *fm = palloc(sizeof(float) * D);
	float	   *fs = palloc(sizeof(float) * D);
	uint32	   *idx;
	bool		any_norm = false;
	double		max_vfrac = 0;
	int			max_epochs = 0;
	/* validation rows of the largest fraction (raw), for every member */
	DltHeldOut	val = {CurrentMemoryContext, c->dim, true};
	instr_time	t0;

	val.root = c->root;
	/* a chunk's row indexes, and each member's chunk order */
	DltBudgetCheck(c->root, add_size(mul_size(sizeof(uint32), mul_size(c->n_chunks, rpc)),
									 mul_size(K, mul_size(sizeof(uint32), Max(N, 1)))),
				   "the chunk indexes of a spilled cache");
	idx = palloc_extended(sizeof(uint32) * (Size) c->n_chunks * rpc, MCXT_ALLOC_HUGE);
	INSTR_TIME_SET_CURRENT(t0);
	for (int k = 0; k < K; k++)
	{
		any_norm |= opts[k].normalize;
		max_vfrac = Max(max_vfrac, opts[k].validation_fraction);
		max_epochs = Max(max_epochs, opts[k].epochs);
	}

	/* statistics: one sequential pass over the spilled chunks */
	DltProgressPhase(DLT_PHASE_PREPARING);
	DltTestWaitPoint(DLT_WAIT_PREPARING);
	if (any_norm)
	{
		SpillIter	it = {c, -1, 0, 0};

		ExactStats(stats, D, n, c->fmin, c->fmax, SpillRowIter, &it, fm, fs);
	}

	/*
	 * the validation rows: one sequential pass, kept in memory (rows with the
	 * same content are all held out or none, so their number is only known
	 * once counted: the buffers grow, within the budget)
	 */
	if (max_vfrac > 0)
	{
		for (int64 k = 0; k < N; k++)
		{
			int			nr = DltCacheReadChunk(c, k, 0);

			for (int r = 0; r < nr; r++)
			{
				const float *x = c->chunk_x[0] + (Size) r * D;
				uint64		h = RowHash(rows, x, c->chunk_y[0][r]);

				if (DltIsValidationRow(h, max_vfrac))
					DltHeldOutAdd(&val, x, c->chunk_y[0][r], h);
			}
			CHECK_FOR_INTERRUPTS();
		}
	}

	{
		int		   *bs = palloc(sizeof(int) * K);

		for (int k = 0; k < K; k++)
			bs[k] = (int) Min((int64) opts[k].batch_size, n);
		CheckMembersBudget(rows, opts, K, bs, res);
		pfree(bs);
	}
	for (int k = 0; k < K; k++)
	{
		const DltOptions *o = &opts[k];
		int64		nv = 0;
		int64		n_train;

		if (o->validation_fraction > 0)
			for (int64 i = 0; i < val.n; i++)
			{
				if (CFI_DUE(i))
					CHECK_FOR_INTERRUPTS();
				nv += DltIsValidationRow(val.h[i], o->validation_fraction);
			}
		n_train = n - nv;
		if (n_train == 0)
			NoTrainingRows(n, o->validation_fraction);
		MemberInit(&mem[k], rows, o, &res[k], (int) Min((int64) o->batch_size, n_train),
				   n_train, nv);
		if (any_norm)
			MemberStats(&mem[k], stats, D);
		sm[k].perm = palloc_extended(sizeof(uint32) * Max(N, 1), MCXT_ALLOC_HUGE);
		for (int64 i = 0; i < N; i++)
			sm[k].perm[i] = (uint32) i;
		dlk_rng_seed(&sm[k].rng, (uint64) o->seed ^ SHUFFLE_STREAM_SALT);
	}
	DltProgressPhase(DLT_PHASE_TRAINING);
	DltTestWaitPoint(DLT_WAIT_TRAINING);
	for (int e = 0; e < max_epochs; e++)
	{
		bool		any = false;

		for (int k = 0; k < K; k++)
		{
			Member	   *mb = &mem[k];
			const DltOptions *o = &mb->m->opts;
			double		vl = 0,
						vs = 0;

			if (!mb->active)
				continue;
			any = true;
			SpillEpoch(rows, mb, &sm[k], e, fm, fs, idx, cfg->tolerate, t0);
			if (!mb->active)
				continue;		/* diverged */
			if (mb->m->rows_validation > 0)
			{
				int			bs = 0;
				int64		seen = 0;

				for (int64 i = 0; i < val.n; i++)
				{
					double		score;

					if (!DltIsValidationRow(val.h[i], o->validation_fraction))
						continue;
					memcpy(mb->t.xb + (Size) bs * D, val.x + (Size) i * D, sizeof(float) * D);
					if (o->normalize)
						dlk_standardize(mb->t.xb + (Size) bs * D, fm, fs, D);
					if (classify)
						mb->t.yb[bs] = rows->classes.rank[val.y[i]];
					else
						mb->t.tb[bs] = (float) DltLabelTarget(val.y[i], rows->label_kind);
					bs++;
					seen++;
					if (bs == mb->t.B || seen == mb->m->rows_validation)
					{
						vl += DltTrainerEval(&mb->t, bs, &score) * bs;
						vs += score;
						bs = 0;
						CHECK_FOR_INTERRUPTS();
					}
				}
				vl /= mb->m->rows_validation;
				vs = classify ? vs / mb->m->rows_validation :
					sqrt(vs / mb->m->rows_validation / mb->t.C);
			}
			MemberEpochDone(mb, e, vl, vs, t0);
		}
		if (!any)
			break;
		Halve(mem, K, e, cfg, t0);
	}
	MembersFinish(mem, K, t0);
}

/*
 * Trains K models (options opts[k]) from the rows; res[k] gets model k, or
 * m NULL and diverged set when its loss became NaN or infinite and
 * cfg->tolerate (else that is an error).  Allocates in the current memory
 * context; the caller encodes the models and then deletes it.
 */
void
DltTrainMany(DltRows *rows, const DltOptions *opts, int K,
			 const DltSelectConfig *cfg, DltSelectResult *res)
{
	DltModel   *classes = palloc0(sizeof(DltModel));

	for (int k = 0; k < K; k++)
	{
		DltTask		task = opts[k].task == DLT_TASK_AUTO ?
			(rows->label_kind == DLT_LABEL_FLOAT ? DLT_TASK_REGRESSION : DLT_TASK_CLASSIFICATION) :
			opts[k].task;

		if (task != rows->task)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("configurations trained together must have the same task"),
					 errdetail("Configuration %d is for %s, the first for %s.",
							   k + 1, DltTaskName(task), DltTaskName(rows->task))));
		memset(&res[k], 0, sizeof(DltSelectResult));
		res[k].index = k;
		res[k].n_models = K;
		res[k].loss = res[k].val_loss = res[k].val_metric = NAN;
	}

	/* classes: sorted once, shared by every model */
	if (rows->task == DLT_TASK_CLASSIFICATION)
	{
		DltClassTableFinish(&rows->classes, rows->label_kind, classes, rows->cache.n_rows);
		DltWarnManyClasses(classes->n_classes, rows->cache.n_rows, rows->label_kind, opts[0].task);
		for (int k = 0; k < K; k++)
		{
			res[k].n_classes = classes->n_classes;
			res[k].class_int = classes->class_int;
			res[k].class_float = classes->class_float;
			res[k].class_text = classes->class_text;
		}
	}
	if (K > 1)
		ereport(DEBUG1,
				(errmsg_internal("dltrain: training %d models from one row cache of %lld rows",
								 K, (long long) rows->cache.n_rows)));
	if (rows->cache.file)
		TrainSpilled(rows, opts, K, cfg, res);
	else
		TrainInMemory(rows, opts, K, cfg, res);
}
