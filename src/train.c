/*
 * train.c — the dltrain.train_mlp aggregate.
 *
 * Training is an aggregate.  The transition function only appends each row,
 * converted once to float32, to the row cache (cache.c); the final function
 * trains for every epoch from that cache, so multi-epoch training never runs
 * the query again.
 *
 * Reproducibility.  A scan does not promise an order (synchronized scans,
 * parallel plans), so before the seeded shuffle the final function puts the
 * rows in a canonical order: by a 64-bit hash of each row's content (its
 * float32 features and its label), ties broken by the content itself.  The
 * model then depends only on the multiset of rows, the options and the seed
 * (and on dltrain.threads, which can change BLAS summation order).
 * Normalization statistics are exact sums (ExactStats), so they do not depend
 * on the order either.  With
 * "shuffle": false rows are used in the order they arrived, which is what a
 * user asking for no shuffle (an ORDER BY, say) means.
 *
 * Class values are sorted (integers and floats numerically, text bytewise),
 * so class indices do not depend on arrival order either; that order is the
 * column order of predict_proba().
 *
 * Memory.  Everything a training allocates lives in one memory context under
 * the aggregate's context; the per-batch loop allocates nothing.  An error or
 * a cancel (CHECK_FOR_INTERRUPTS after every mini-batch) releases it all.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>
#include <signal.h>
#include <pthread.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "dltrain.h"


typedef struct TrainState
{
	MemoryContext mcxt;			/* owns the cache and everything of training */
	bool		consumed;		/* trained: mcxt is gone */
	DltCache	cache;
	Oid			feat_elemtype;
	Oid			label_type;
	DltLabelKind label_kind;
	DltTask		task;			/* resolved from the option and label type */
	bytea	   *options;		/* first row's options (a copy), or NULL */
	DltOptions	opts;
	int64		rows_seen;
	int64		rows_skipped;
	DltClassTable classes;
} TrainState;

/* ---- transition ---- */

static TrainState *
TrainStateCreate(FunctionCallInfo fcinfo, MemoryContext aggcxt)
{
	MemoryContext mcxt = AllocSetContextCreate(aggcxt, "dltrain training",
											   ALLOCSET_DEFAULT_SIZES);
	/* the state itself lives in the aggregate's context: see the final function */
	TrainState *st = MemoryContextAllocZero(aggcxt, sizeof(TrainState));
	Oid			feattype = get_fn_expr_argtype(fcinfo->flinfo, 1);
	Jsonb	   *jb = NULL;

	st->mcxt = mcxt;
	st->feat_elemtype = get_element_type(feattype);
	if (st->feat_elemtype != FLOAT4OID && st->feat_elemtype != FLOAT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("features must be real[] or double precision[], not %s",
						format_type_be(feattype))));
	st->label_type = get_fn_expr_argtype(fcinfo->flinfo, 2);
	st->label_kind = DltLabelKindOf(st->label_type);

	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		jb = PG_GETARG_JSONB_P(3);
		st->options = (bytea *) MemoryContextAlloc(mcxt, VARSIZE(jb));
		memcpy(st->options, jb, VARSIZE(jb));
	}
	DltOptionsParse(&st->opts, jb, false);

	st->task = st->opts.task;
	if (st->task == DLT_TASK_AUTO)
		st->task = st->label_kind == DLT_LABEL_FLOAT ?
			DLT_TASK_REGRESSION : DLT_TASK_CLASSIFICATION;
	if (st->task == DLT_TASK_REGRESSION && st->label_kind == DLT_LABEL_TEXT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("text labels cannot be used for regression"),
				 errhint("Use \"task\": \"classification\", or a numeric label.")));

	DltCacheInit(&st->cache, mcxt, DltBudgetBytes(), true);
	DltProgressStart(mcxt, "train_mlp", InvalidOid);
	DltProgressPhase(DLT_PHASE_CACHING);
	return st;
}

/* Options must be the same for every row of one training. */
static void
CheckSameOptions(TrainState *st, FunctionCallInfo fcinfo)
{
	bool		same;

	if (PG_NARGS() <= 3)
		return;
	if (PG_ARGISNULL(3))
		same = (st->options == NULL);
	else
	{
		Jsonb	   *jb = PG_GETARG_JSONB_P(3);

		same = st->options != NULL &&
			VARSIZE(jb) == VARSIZE(st->options) &&
			memcmp(jb, st->options, VARSIZE(jb)) == 0;
	}
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options of dltrain.train_mlp differ between rows"),
				 errdetail("Input row %lld has options different from the first row's.",
						   (long long) st->rows_seen),
				 errhint("Pass the options as a constant.")));
}

static int64
LabelSlot(TrainState *st, FunctionCallInfo fcinfo)
{
	Datum		d = PG_GETARG_DATUM(2);
	int64		v;

	if (st->label_type == TEXTOID)
	{
		text	   *t = DatumGetTextPP(d);

		return DltClassId(&st->classes, st->mcxt, 0, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	}
	v = DltLabelValue(d, st->label_type, st->task, st->rows_seen);
	/* regression keeps the value; classification stores its class id */
	if (st->task == DLT_TASK_REGRESSION)
		return v;
	return DltClassId(&st->classes, st->mcxt, v, NULL, 0);
}

/* Appends one row (features, label) to the training's row cache. */
PG_FUNCTION_INFO_V1(train_mlp_sfunc);
Datum
train_mlp_sfunc(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	TrainState *st;
	ArrayType  *arr;
	int			n;
	float	   *slot;
	int64	   *label;
	int			ctx = AggCheckCallContext(fcinfo, &aggcxt);

	if (ctx == 0)
		elog(ERROR, "train_mlp_sfunc called in non-aggregate context");
	if (ctx == AGG_CONTEXT_WINDOW)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("dltrain.train_mlp cannot be used as a window function")));

	if (PG_ARGISNULL(0))
		st = TrainStateCreate(fcinfo, aggcxt);
	else
	{
		st = (TrainState *) PG_GETARG_POINTER(0);
		if (st->consumed)
			elog(ERROR, "dltrain.train_mlp state was already finalized");
		CheckSameOptions(st, fcinfo);
	}
	st->rows_seen++;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
	{
		st->rows_skipped++;
		PG_RETURN_POINTER(st);
	}

	arr = PG_GETARG_ARRAYTYPE_P(1);
	n = CheckFeatureArray(arr, st->cache.dim, st->rows_seen);
	st->cache.dim = n;
	/* the label first: a bad label must not leave a half-written row */
	{
		int64		y = LabelSlot(st, fcinfo);

		slot = DltCacheAppend(&st->cache, &label);
		*label = y;
	}
	FeatureArrayToFloat(slot, arr, st->feat_elemtype, st->rows_seen);
	if (st->cache.fmin == NULL)
	{
		st->cache.fmin = MemoryContextAlloc(st->mcxt, sizeof(float) * n);
		st->cache.fmax = MemoryContextAlloc(st->mcxt, sizeof(float) * n);
		memcpy(st->cache.fmin, slot, sizeof(float) * n);
		memcpy(st->cache.fmax, slot, sizeof(float) * n);
	}
	dlk_minmax_accumulate(st->cache.fmin, st->cache.fmax, slot, n);
	if ((st->cache.n_rows & 4095) == 0)
		DltProgressRows(st->cache.n_rows, -1, NAN, 0);
	PG_RETURN_POINTER(st);
}

/* ---- canonical order ---- */

typedef struct RowKey
{
	uint64		hash;
	uint32		row;
} RowKey;

static const TrainState *sort_state;	/* for the tie-break comparator */

/*
 * Labels compared by content: class indices (ranks of the sorted values)
 * for classification, the value's bits for regression.
 */
static int
CompareLabelSlots(const TrainState *st, int64 a, int64 b)
{
	if (st->task == DLT_TASK_CLASSIFICATION)
	{
		a = st->classes.rank[a];
		b = st->classes.rank[b];
	}
	return (a > b) - (a < b);
}

static int
CompareRowKeys(const void *pa, const void *pb)
{
	const RowKey *a = pa;
	const RowKey *b = pb;
	const DltCache *c = &sort_state->cache;
	int			r;

	if (a->hash != b->hash)
		return a->hash < b->hash ? -1 : 1;
	r = memcmp(DltCacheRow(c, a->row), DltCacheRow(c, b->row), sizeof(float) * c->dim);
	if (r)
		return r;
	return CompareLabelSlots(sort_state, *DltCacheLabel(c, a->row), *DltCacheLabel(c, b->row));
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
			count[(src[i].hash >> shift) & 0xFFFF]++;
		for (int b = 0; b < 65536; b++)
		{
			int64		c = count[b];

			count[b] = pos;
			pos += c;
		}
		for (int64 i = 0; i < n; i++)
			dst[count[(src[i].hash >> shift) & 0xFFFF]++] = src[i];
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
CanonicalOrder(const TrainState *st, uint32 *order)
{
	const DltCache *c = &st->cache;
	int64		n = c->n_rows;
	RowKey	   *keys = palloc_extended(sizeof(RowKey) * n, MCXT_ALLOC_HUGE);

	for (int64 r = 0; r < n; r++)
	{
		int64		y = *DltCacheLabel(c, r);
		uint64		h = hash_bytes_extended((const unsigned char *) DltCacheRow(c, r),
										   sizeof(float) * c->dim, 0);
		uint64		hy;

		if (st->task == DLT_TASK_CLASSIFICATION)
			hy = st->classes.chash[y];
		else
			hy = hash_bytes_extended((const unsigned char *) &y, sizeof(y), 1);
		keys[r].hash = hash_combine64(h, hy);
		keys[r].row = (uint32) r;
	}
	RadixSortKeys(keys, n);
	/* equal hashes (duplicate rows, or a collision): order by content */
	sort_state = st;
	for (int64 i = 0; i < n;)
	{
		int64		j = i + 1;

		while (j < n && keys[j].hash == keys[i].hash)
			j++;
		if (j - i > 1)
			qsort(keys + i, j - i, sizeof(RowKey), CompareRowKeys);
		i = j;
	}
	for (int64 i = 0; i < n; i++)
		order[i] = keys[i].row;
	pfree(keys);
}

/* ---- classes ---- */

/*
 * Sorts the distinct label values into the model's classes and writes every
 * row's class index to cls[row].
 */
static void
BuildClasses(TrainState *st, DltModel *m, int32 *cls)
{
	const DltCache *c = &st->cache;

	DltClassTableFinish(&st->classes, st->label_kind, m, c->n_rows);
	for (int64 r = 0; r < c->n_rows; r++)
		cls[r] = st->classes.rank[*DltCacheLabel(c, r)];
}

/*
 * Sets m's standardization from one pass of shifted moments over n rows:
 * mean, and scale = 1/std (population std), or 1 for a (near) constant
 * feature, so a zero-variance feature becomes 0 instead of dividing by zero.
 * fm and fs get the float32 versions that training and predict apply.
 */
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

/* ---- normalization ---- */

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

/*
 * Exact standardization statistics, in whatever order the rows are stored.
 * Two sequential passes of quantized sums (dlk_qsum_accumulate): the first
 * around the middle of each feature's range gives the mean, the second
 * around the mean the variance, with no cancellation.  The quantum of a
 * feature is its range (known from the transition) over 2^52/n, so every
 * partial sum is an exact integer in double: the result depends only on the
 * multiset of rows, without walking them in canonical order.  Relative
 * precision: range * 2^-(52 - log2 n), e.g. 2e-10 of the range at a million
 * rows.  row(arg, i) returns row i of a pass, i from 0 to n - 1 in turn.
 */
typedef const float *(*RowIter) (void *arg, int64 i);

static void
ExactStats(DltModel *m, int64 n, const float *fmin, const float *fmax,
		   RowIter row, void *arg, float *fm, float *fs)
{
	int			D = m->arch.dims[0];
	double	   *center = palloc(sizeof(double) * D);
	double	   *inv_q = palloc(sizeof(double) * D);
	double	   *acc = palloc0(sizeof(double) * D);
	double		levels = ldexp(1.0, 52);
	int			L = 0;

	while (L < 62 && ((int64) 1 << L) < n)
		L++;
	levels = ldexp(levels, -L);	/* 2^52 / 2^ceil(log2 n) per term */

	/* pass 1: the mean */
	for (int d = 0; d < D; d++)
	{
		double		half = ((double) fmax[d] - (double) fmin[d]) / 2;

		center[d] = ((double) fmax[d] + (double) fmin[d]) / 2;
		inv_q[d] = half > 0 ? levels / half : 0;
	}
	for (int64 i = 0; i < n; i++)
		dlk_qsum_accumulate(acc, row(arg, i), center, inv_q, D, 1);
	m->mean = palloc(sizeof(double) * D);
	m->scale = palloc(sizeof(double) * D);
	for (int d = 0; d < D; d++)
		m->mean[d] = center[d] + (inv_q[d] > 0 ? acc[d] / inv_q[d] / n : 0);

	/* pass 2: the variance around the mean */
	for (int d = 0; d < D; d++)
	{
		double		b = Max((double) fmax[d] - m->mean[d], m->mean[d] - (double) fmin[d]);

		center[d] = m->mean[d];
		inv_q[d] = b > 0 ? levels / (b * b) : 0;
		acc[d] = 0;
	}
	for (int64 i = 0; i < n; i++)
		dlk_qsum_accumulate(acc, row(arg, i), center, inv_q, D, 2);
	for (int d = 0; d < D; d++)
	{
		DltStatsFinishScale(m, d, m->mean[d], inv_q[d] > 0 ? acc[d] / inv_q[d] / n : 0);
		fm[d] = (float) m->mean[d];
		fs[d] = (float) m->scale[d];
	}
	m->normalized = true;
	pfree(center);
	pfree(inv_q);
	pfree(acc);
}

static const float *
CacheRowIter(void *arg, int64 i)
{
	return DltCacheRow((const DltCache *) arg, i);
}

/*
 * Standardizes the in-memory cache in place with exact statistics:
 * x = (x - mean) * scale, in float32 as predict does it.
 */
static void
Standardize(DltCache *c, DltModel *m)
{
	int			D = c->dim;
	float	   *fm = palloc(sizeof(float) * D);
	float	   *fs = palloc(sizeof(float) * D);

	ExactStats(m, c->n_rows, c->fmin, c->fmax, CacheRowIter, c, fm, fs);
	for (int64 r = 0; r < c->n_rows; r++)
		dlk_standardize(DltCacheRow(c, r), fm, fs, D);
	pfree(fm);
	pfree(fs);
}

/* ---- BLAS ---- */

static bool blas_ready = false;

/*
 * Opens OpenBLAS on the first training of this backend and sets its thread
 * count.  Signals are blocked around both calls, so any thread OpenBLAS
 * starts inherits a mask that keeps PostgreSQL's signals on the backend's
 * own thread.
 */
void
DltBlasEnsure(void)
{
	sigset_t	all,
				old;
	char		err[256] = "";
	dlk_status	s = DLK_OK;

	sigfillset(&all);
	if (!blas_ready)
	{
		/* start no worker thread at load; dltrain.threads decides later */
		setenv("OPENBLAS_NUM_THREADS", "1", 0);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		s = dlk_blas_open(NULL, err, sizeof(err));
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (s != DLK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("could not load OpenBLAS"),
					 errdetail("%s", err),
					 errhint("Install OpenBLAS (Debian: apt-get install libopenblas0-pthread).")));
		blas_ready = true;
	}
	pthread_sigmask(SIG_SETMASK, &all, &old);
	dlk_blas_set_threads(dltrain_threads);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---- training ---- */

static void
CheckModelBudget(Size need, Size budget)
{
	if (need > budget)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("training needs %zu bytes for parameters, gradients, optimizer state and batch buffers, more than the memory budget of %zu bytes",
						need, budget),
				 errdetail("The budget is the smaller of dltrain.cache_mem and dltrain.max_cache_mem."),
				 errhint("Use a smaller model or batch_size, or raise dltrain.cache_mem.")));
}

/*
 * ---- the trainer: one model's network, optimizer and batch buffers ----
 * Shared by the aggregate (batches gathered from the row cache) and fit()
 * (batches from a shuffle buffer fed by a block-shuffled scan).
 */

/* Fills m->arch from m->opts for D inputs and C outputs. */
void
DltModelSetArch(DltModel *m, int D, int C)
{
	const DltOptions *o = &m->opts;

	m->arch.n_layers = o->n_hidden + 1;
	m->arch.dims[0] = D;
	for (int l = 0; l < o->n_hidden; l++)
		m->arch.dims[l + 1] = o->hidden[l];
	m->arch.dims[m->arch.n_layers] = C;
	m->arch.act = o->activation;
	m->arch.loss = m->task == DLT_TASK_CLASSIFICATION ? DLK_LOSS_SOFTMAX_CE : DLK_LOSS_MSE;
	if (dlk_arch_check(&m->arch) != DLK_OK)
		elog(ERROR, "invalid network architecture");
}

/*
 * Checks the budget and the model size, allocates everything (in the current
 * memory context), opens BLAS and initializes the parameters from the seed.
 * extra_bytes: what the caller holds besides (cache, buffers) to count in.
 */
void
DltTrainerInit(DltTrainer *t, DltModel *m, int B)
{
	const DltOptions *o = &m->opts;
	dlk_sizes	sz;
	Size		need;
	float	   *grads,
			   *state,
			   *work;
	dlk_status	s;

	memset(t, 0, sizeof(*t));
	t->m = m;
	t->B = B;
	t->D = m->arch.dims[0];
	t->C = m->arch.dims[m->arch.n_layers];
	if (dlk_sizes_for(&sz, &m->arch, B, o->optimizer) != DLK_OK)
		elog(ERROR, "invalid network architecture");
	m->n_params = sz.n_params;

	/* size checks before any large allocation */
	need = mul_size(add_size(add_size(mul_size(2, sz.n_params), sz.n_opt_state),
							 add_size(sz.n_work, mul_size(B, t->D + t->C + 1))),
					sizeof(float));
	CheckModelBudget(need, DltBudgetBytes());
	CheckModelSize(ModelEncodedSize(m));

	m->params = palloc_extended(sizeof(float) * sz.n_params, MCXT_ALLOC_HUGE);
	grads = palloc_extended(sizeof(float) * sz.n_params, MCXT_ALLOC_HUGE);
	state = palloc_extended(sizeof(float) * Max(sz.n_opt_state, 1), MCXT_ALLOC_HUGE);
	work = palloc_extended(sizeof(float) * sz.n_work, MCXT_ALLOC_HUGE);
	t->xb = palloc_extended(sizeof(float) * (Size) B * t->D, MCXT_ALLOC_HUGE);
	t->yb = palloc(sizeof(int32) * B);
	t->tb = palloc(sizeof(float) * B * t->C);
	m->epoch_loss = palloc0(sizeof(float) * Max(o->epochs, 1));

	DltBlasEnsure();
	s = dlk_net_bind(&t->net, &m->arch, B, 1, m->params, grads, state, work);
	if (s != DLK_OK)
		elog(ERROR, "could not set up network: %s", dlk_status_string(s));
	if (o->init_pytorch)
		dlk_init_params_fanin(&t->net, (uint64) o->seed);
	else
		dlk_init_params(&t->net, (uint64) o->seed);

	t->opt.kind = o->optimizer;
	t->opt.lr = (float) o->lr;
	t->opt.momentum = (float) o->momentum;
	t->opt.beta1 = 0.9f;
	t->opt.beta2 = 0.999f;
	t->opt.eps = 1e-8f;
	t->opt.weight_decay = (float) o->weight_decay;
}

void
DltTrainerEpochBegin(DltTrainer *t, int epoch, int64 rows_expected)
{
	t->epoch = epoch;
	t->loss_sum = 0;
	t->rows = 0;
	t->batches = 0;
	t->rows_expected = rows_expected;
	DltProgressEpoch(epoch + 1, t->m->opts.epochs);
	INSTR_TIME_SET_CURRENT(t->t0);
}

/* One optimizer step on the first bs rows of xb (and yb or tb). */
void
DltTrainerStep(DltTrainer *t, int bs)
{
	bool		cls = t->m->task == DLT_TASK_CLASSIFICATION;
	double		loss;
	dlk_status	s;

	s = dlk_train_step(&t->net, t->xb, cls ? t->yb : NULL, cls ? NULL : t->tb,
					   bs, &t->opt, &loss);
	if (s == DLK_ENONFINITE)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("training diverged: the loss became NaN or infinite in epoch %d",
						t->epoch + 1),
				 errhint("Lower \"lr\", or enable \"normalize\".")));
	if (s != DLK_OK)
		elog(ERROR, "training step failed: %s", dlk_status_string(s));
	t->loss_sum += loss * bs;
	t->rows += bs;
	if ((++t->batches & 15) == 0)
	{
		instr_time	now;
		double		secs;

		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, t->t0);
		secs = INSTR_TIME_GET_DOUBLE(now);
		DltProgressRows(t->rows, t->rows_expected, t->loss_sum / t->rows,
						secs > 0 ? t->rows / secs : 0);
	}
	CHECK_FOR_INTERRUPTS();
}

/* Ends an epoch: records its mean training loss; returns its seconds. */
double
DltTrainerEpochEnd(DltTrainer *t)
{
	instr_time	t1;
	double		secs;
	float		loss = t->rows ? (float) (t->loss_sum / t->rows) : 0;

	t->m->epoch_loss[t->epoch] = loss;
	t->m->epochs_run = t->epoch + 1;
	INSTR_TIME_SET_CURRENT(t1);
	INSTR_TIME_SUBTRACT(t1, t->t0);
	secs = INSTR_TIME_GET_DOUBLE(t1);
	if (dltrain_verbose)
		ereport(NOTICE,
				(errmsg("epoch %d/%d: loss %.6f, %.0f rows/s",
						t->epoch + 1, t->m->opts.epochs, loss,
						secs > 0 ? t->rows / secs : 0)));
	return secs;
}

/*
 * Loss of the current network on the first bs rows of xb (yb or tb), no
 * update; *score gets the number of correct predictions (classification) or
 * the sum of squared errors (regression).
 */
double
DltTrainerEval(DltTrainer *t, int bs, double *score)
{
	const float *out = dlk_forward(&t->net, t->xb, bs);
	double		loss = 0;

	if (out == NULL)
		elog(ERROR, "forward pass failed");
	*score = 0;
	if (t->m->task == DLT_TASK_CLASSIFICATION)
	{
		if (dlk_softmax_ce(&loss, NULL, out, t->yb, bs, t->C) != DLK_OK)
			elog(ERROR, "label out of range");
		for (int i = 0; i < bs; i++)
			*score += DltArgMax(out + (Size) i * t->C, t->C) == t->yb[i];
	}
	else
	{
		dlk_mse(&loss, NULL, out, t->tb, bs, t->C);
		*score = loss * bs * t->C;
	}
	return loss;
}

/*
 * Training from a spilled cache: CorgiPile's two-level shuffle.  Every epoch
 * visits the spilled chunks in a new random order, K at a time (K chunk
 * buffers: the budget, or the buffer_rows option), and shuffles the rows of
 * those K chunks together before cutting them into mini-batches.  The
 * standardization statistics come from two sequential passes over the file
 * (ExactStats).
 * Chunks hold rows in arrival order, so unlike the in-memory path the model
 * depends on the order rows arrive in (an ORDER BY makes it reproducible).
 */
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

/* A model with what the aggregate's state determines: task, labels, options, rows. */
static DltModel *
ModelFromState(const TrainState *st)
{
	DltModel   *m = palloc0(sizeof(DltModel));

	m->task = st->task;
	m->label_kind = st->label_kind;
	m->label_type = st->label_type;
	m->opts = st->opts;
	m->rows_used = st->cache.n_rows;
	m->rows_skipped = st->rows_skipped;
	m->epochs_run = st->opts.epochs;
	return m;
}

static DltModel *
TrainSpilled(TrainState *st)
{
	DltCache   *c = &st->cache;
	const DltOptions *o = &st->opts;
	int64		n = c->n_rows;
	int			D = c->dim;
	int			rpc = c->rows_per_chunk;
	int			B = (int) Min((int64) o->batch_size, n);
	int64		N = c->n_file_chunks;
	int			K = c->n_chunks;
	DltModel   *m = ModelFromState(st);
	bool		cls = st->task == DLT_TASK_CLASSIFICATION;
	DltTrainer	t;
	dlk_rng		rng;
	uint32	   *perm;
	uint32	   *idx;
	float	   *fm = palloc(sizeof(float) * D);
	float	   *fs = palloc(sizeof(float) * D);

	if (o->buffer_rows > 0)
		K = (int) Max(1, Min((int64) K, ((int64) o->buffer_rows + rpc - 1) / rpc));
	if (cls)
		DltClassTableFinish(&st->classes, st->label_kind, m, n);
	DltModelSetArch(m, D, cls ? m->n_classes : 1);
	DltTrainerInit(&t, m, B);

	/* statistics: two sequential passes over the spilled chunks */
	DltProgressPhase(DLT_PHASE_PREPARING);
	if (o->normalize)
	{
		SpillIter	it = {c, -1, 0, 0};

		ExactStats(m, n, c->fmin, c->fmax, SpillRowIter, &it, fm, fs);
	}

	perm = palloc_extended(sizeof(uint32) * N, MCXT_ALLOC_HUGE);
	for (int64 k = 0; k < N; k++)
		perm[k] = (uint32) k;
	idx = palloc_extended(sizeof(uint32) * (Size) K * rpc, MCXT_ALLOC_HUGE);
	dlk_rng_seed(&rng, (uint64) o->seed ^ UINT64CONST(0x53485546464c4521));

	DltProgressPhase(DLT_PHASE_TRAINING);
	for (int e = 0; e < o->epochs; e++)
	{
		DltTrainerEpochBegin(&t, e, n);
		if (o->shuffle)
			dlk_shuffle_u32(&rng, perm, (size_t) N);	/* level one: chunks */
		for (int64 g = 0; g < N; g += K)
		{
			int			kk = (int) Min((int64) K, N - g);
			int			nrows = 0;

			for (int j = 0; j < kk; j++)
			{
				int			rows = DltCacheReadChunk(c, perm[g + j], j);

				for (int r = 0; r < rows; r++)
				{
					if (o->normalize)
						dlk_standardize(c->chunk_x[j] + (Size) r * D, fm, fs, D);
					idx[nrows++] = (uint32) j * rpc + r;
				}
			}
			if (o->shuffle)
				dlk_shuffle_u32(&rng, idx, nrows);	/* level two: rows */
			for (int start = 0; start < nrows; start += B)
			{
				int			bs = Min(B, nrows - start);

				for (int i = 0; i < bs; i++)
				{
					uint32		j = idx[start + i] / rpc;
					uint32		r = idx[start + i] % rpc;
					int64		y = c->chunk_y[j][r];

					memcpy(t.xb + (Size) i * D, c->chunk_x[j] + (Size) r * D, sizeof(float) * D);
					if (cls)
						t.yb[i] = st->classes.rank[y];
					else
						t.tb[i] = (float) DltLabelTarget(y, st->label_kind);
				}
				DltTrainerStep(&t, bs);
			}
		}
		DltTrainerEpochEnd(&t);
	}
	return m;
}

static DltModel *
Train(TrainState *st)
{
	DltCache   *c = &st->cache;
	const DltOptions *o = &st->opts;
	int64		n = c->n_rows;
	int			D = c->dim;
	int			B = (int) Min((int64) o->batch_size, n);
	DltModel   *m = ModelFromState(st);
	uint32	   *order;
	int32	   *cls = NULL;
	float	   *tgt = NULL;
	DltTrainer	t;
	dlk_rng		rng;

	/*
	 * Per-row arrays beside the cache: order, labels, and the sort's keys and
	 * their radix buffer (2 x 16 bytes a row) while it runs.
	 */
	if (mul_size(n, 4 + 4 + 32) > DltBudgetBytes())
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("ordering %lld rows needs %zu bytes of row indexes, more than the memory budget of %zu bytes",
						(long long) n, mul_size(n, 40), DltBudgetBytes()),
				 errhint("Raise dltrain.cache_mem.")));
	order = palloc_extended(sizeof(uint32) * n, MCXT_ALLOC_HUGE);

	/* labels: class indices or float targets, indexed by cache row */
	if (m->task == DLT_TASK_CLASSIFICATION)
	{
		cls = palloc_extended(sizeof(int32) * n, MCXT_ALLOC_HUGE);
		BuildClasses(st, m, cls);
	}
	else
	{
		tgt = palloc_extended(sizeof(float) * n, MCXT_ALLOC_HUGE);
		for (int64 r = 0; r < n; r++)
			tgt[r] = (float) DltLabelTarget(*DltCacheLabel(c, r), st->label_kind);
	}
	DltModelSetArch(m, D, cls ? m->n_classes : 1);
	DltTrainerInit(&t, m, B);

	DltProgressPhase(DLT_PHASE_PREPARING);
	DltProgressRows(n, n, NAN, 0);

	/*
	 * order: canonical then shuffled, or arrival order without shuffle (and
	 * without epochs nothing needs an order: the statistics do not)
	 */
	if (o->shuffle && o->epochs > 0)
		CanonicalOrder(st, order);
	else
		for (int64 i = 0; i < n; i++)
			order[i] = (uint32) i;
	if (o->normalize)
		Standardize(c, m);

	/* the shuffle stream is independent of the initialization stream */
	dlk_rng_seed(&rng, (uint64) o->seed ^ UINT64CONST(0x53485546464c4521));

	DltProgressPhase(DLT_PHASE_TRAINING);
	for (int e = 0; e < o->epochs; e++)
	{
		DltTrainerEpochBegin(&t, e, n);
		if (o->shuffle)
			dlk_shuffle_u32(&rng, order, (size_t) n);
		for (int64 start = 0; start < n; start += B)
		{
			int			bs = (int) Min((int64) B, n - start);

			for (int i = 0; i < bs; i++)
			{
				uint32		r = order[start + i];

				if (start + i + 8 < n)
					PrefetchRow(c, order[start + i + 8]);
				memcpy(t.xb + (Size) i * D, DltCacheRow(c, r), sizeof(float) * D);
				if (cls)
					t.yb[i] = cls[r];
				else
					t.tb[i] = tgt[r];
			}
			DltTrainerStep(&t, bs);
		}
		DltTrainerEpochEnd(&t);
	}
	return m;
}

/* Trains the model from the cached rows and returns it. */
PG_FUNCTION_INFO_V1(train_mlp_ffunc);
Datum
train_mlp_ffunc(PG_FUNCTION_ARGS)
{
	TrainState *st;
	MemoryContext aggcxt;
	MemoryContext traincxt;
	MemoryContext resultcxt = CurrentMemoryContext;
	MemoryContext old;
	DltModel   *m;
	bytea	   *result;

	if (AggCheckCallContext(fcinfo, &aggcxt) == 0)
		elog(ERROR, "train_mlp_ffunc called in non-aggregate context");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("dltrain.train_mlp received no rows"),
				 errhint("Check that the query feeding the aggregate returns rows.")));
	st = (TrainState *) PG_GETARG_POINTER(0);
	if (st->consumed)
		elog(ERROR, "dltrain.train_mlp state was already finalized");
	if (st->cache.n_rows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("dltrain.train_mlp has no rows to train on"),
				 errdetail("All %lld input rows were skipped because their features or label were NULL.",
						   (long long) st->rows_skipped)));

	traincxt = AllocSetContextCreate(st->mcxt, "dltrain model buffers",
									 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(traincxt);
	DltCacheFinishInput(&st->cache);
	m = st->cache.file ? TrainSpilled(st) : Train(st);
	DltCacheClose(&st->cache);
	/* the model goes out in the caller's context; the buffers go with st->mcxt */
	MemoryContextSwitchTo(resultcxt);
	result = ModelEncode(m);
	MemoryContextSwitchTo(old);
	/*
	 * Free the cache now, not at the end of the query (many groups may train
	 * one after the other).  It was normalized in place anyway, so it could
	 * not feed a second final call: FINALFUNC_MODIFY = READ_WRITE tells the
	 * planner so.
	 */
	MemoryContextDelete(st->mcxt);
	st->mcxt = NULL;
	st->consumed = true;
	PG_RETURN_BYTEA_P(result);
}
