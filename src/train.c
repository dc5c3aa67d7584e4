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
 * Normalization statistics are summed in the same canonical order.  With
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

#define MAX_CLASSES DLK_MAX_WIDTH

/*
 * ---- class labels ----
 * A classification label is stored in the cache as the id of its value in
 * this open-addressing table of distinct values (integers, the bits of a
 * float, or strings), filled in arrival order.  The final function sorts the
 * few distinct values once and maps ids to class indices (rank), so the
 * per-row work at the end is one array lookup.
 */
typedef struct ClassTable
{
	int			n;				/* distinct values */
	int			cap;			/* slots, a power of two */
	int32	   *slot;			/* id + 1, or 0 for empty */
	uint32	   *hash;			/* per id */
	int64	   *val;			/* per id: the integer, or the double's bits */
	char	  **str;			/* per id, text labels */
	int		   *len;
	int32	   *rank;			/* per id: class index, set by BuildClasses */
	uint64	   *chash;			/* per id: content hash, set by BuildClasses */
} ClassTable;

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
	ClassTable	classes;
} TrainState;

static void
ClassTableGrow(TrainState *st)
{
	ClassTable *t = &st->classes;
	int			newcap = t->cap ? t->cap * 2 : 64;
	int32	   *newslot = MemoryContextAllocZero(st->mcxt, sizeof(int32) * newcap);
	Size		per = newcap / 2;

	for (int k = 0; k < t->cap; k++)
	{
		if (t->slot[k])
		{
			uint32		j = t->hash[t->slot[k] - 1] & (newcap - 1);

			while (newslot[j])
				j = (j + 1) & (newcap - 1);
			newslot[j] = t->slot[k];
		}
	}
	if (t->slot)
	{
		pfree(t->slot);
		t->hash = repalloc(t->hash, sizeof(uint32) * per);
		t->val = repalloc(t->val, sizeof(int64) * per);
		t->str = repalloc(t->str, sizeof(char *) * per);
		t->len = repalloc(t->len, sizeof(int) * per);
	}
	else
	{
		t->hash = MemoryContextAlloc(st->mcxt, sizeof(uint32) * per);
		t->val = MemoryContextAlloc(st->mcxt, sizeof(int64) * per);
		t->str = MemoryContextAlloc(st->mcxt, sizeof(char *) * per);
		t->len = MemoryContextAlloc(st->mcxt, sizeof(int) * per);
	}
	t->slot = newslot;
	t->cap = newcap;
}

/* The id of a label value (s == NULL) or text label (s, len), added if new. */
static int32
ClassId(TrainState *st, int64 v, const char *s, int len)
{
	ClassTable *t = &st->classes;
	uint32		h = s ? hash_bytes((const unsigned char *) s, len) :
		hash_bytes((const unsigned char *) &v, sizeof(v));
	uint32		mask;
	uint32		i;

	if (t->cap == 0 || t->n * 2 >= t->cap)
		ClassTableGrow(st);
	mask = t->cap - 1;
	for (i = h & mask; t->slot[i]; i = (i + 1) & mask)
	{
		int32		id = t->slot[i] - 1;

		if (t->hash[id] != h)
			continue;
		if (s ? (t->len[id] == len && memcmp(t->str[id], s, len) == 0) : t->val[id] == v)
			return id;
	}
	if (t->n >= MAX_CLASSES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("label has more than %d distinct values, the most classes a model supports",
						MAX_CLASSES),
				 st->label_kind != DLT_LABEL_TEXT ?
				 errhint("For a numeric target, use \"task\": \"regression\".") : 0));
	if (s && len > 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("text label of %d bytes is longer than the maximum of 1024 bytes", len)));
	t->hash[t->n] = h;
	t->val[t->n] = v;
	t->str[t->n] = s ? MemoryContextStrdup(st->mcxt, pnstrdup(s, len)) : NULL;
	t->len[t->n] = s ? len : 0;
	t->slot[i] = t->n + 1;
	return t->n++;
}

/* ---- transition ---- */

static DltLabelKind
LabelKindOf(Oid type)
{
	switch (type)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			return DLT_LABEL_INT;
		case FLOAT4OID:
		case FLOAT8OID:
			return DLT_LABEL_FLOAT;
		case TEXTOID:
			return DLT_LABEL_TEXT;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("label type %s is not supported", format_type_be(type)),
					 errhint("Use smallint, integer, bigint or text labels for classification, real or double precision for regression.")));
	}
	return 0;					/* keep compiler quiet */
}

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
	st->label_kind = LabelKindOf(st->label_type);

	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		jb = PG_GETARG_JSONB_P(3);
		st->options = (bytea *) MemoryContextAlloc(mcxt, VARSIZE(jb));
		memcpy(st->options, jb, VARSIZE(jb));
	}
	DltOptionsParse(&st->opts, jb);

	st->task = st->opts.task;
	if (st->task == DLT_TASK_AUTO)
		st->task = st->label_kind == DLT_LABEL_FLOAT ?
			DLT_TASK_REGRESSION : DLT_TASK_CLASSIFICATION;
	if (st->task == DLT_TASK_REGRESSION && st->label_kind == DLT_LABEL_TEXT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("text labels cannot be used for regression"),
				 errhint("Use \"task\": \"classification\", or a numeric label.")));

	DltCacheInit(&st->cache, mcxt, DltBudgetBytes());
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
	int64		slot = 0;
	double		f;

	switch (st->label_type)
	{
		case INT2OID:
			slot = DatumGetInt16(d);
			break;
		case INT4OID:
			slot = DatumGetInt32(d);
			break;
		case INT8OID:
			slot = DatumGetInt64(d);
			break;
		case FLOAT4OID:
		case FLOAT8OID:
			f = st->label_type == FLOAT4OID ? DatumGetFloat4(d) : DatumGetFloat8(d);
			if (!isfinite(f))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("label of input row %lld is %s", (long long) st->rows_seen,
								isnan(f) ? "NaN" : "infinite"),
						 errhint("Filter out or replace rows with non-finite labels.")));
			if (st->task == DLT_TASK_REGRESSION && fabs(f) > FLT_MAX)
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("label of input row %lld is out of range for real",
								(long long) st->rows_seen),
						 errdetail("Regression trains in single precision.")));
			if (f == 0)
				f = 0;			/* one zero: -0 and 0 are the same class */
			memcpy(&slot, &f, sizeof(double));
			break;
		case TEXTOID:
			{
				text	   *t = DatumGetTextPP(d);

				return ClassId(st, 0, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
		default:
			elog(ERROR, "unexpected label type %u", st->label_type);
	}
	/* regression keeps the value; classification stores its class id */
	if (st->task == DLT_TASK_REGRESSION)
		return slot;
	return ClassId(st, slot, NULL, 0);
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

static const ClassTable *sort_classes;
static DltLabelKind sort_kind;

/* Orders class ids by value: numbers ascending, text bytewise. */
static int
CmpClassIds(const void *pa, const void *pb)
{
	int32		x = *(const int32 *) pa,
				y = *(const int32 *) pb;
	const ClassTable *t = sort_classes;

	switch (sort_kind)
	{
		case DLT_LABEL_INT:
			return (t->val[x] > t->val[y]) - (t->val[x] < t->val[y]);
		case DLT_LABEL_FLOAT:
			{
				double		a,
							b;

				memcpy(&a, &t->val[x], sizeof(double));
				memcpy(&b, &t->val[y], sizeof(double));
				return (a > b) - (a < b);
			}
		case DLT_LABEL_TEXT:
			{
				int			c = memcmp(t->str[x], t->str[y], Min(t->len[x], t->len[y]));

				return c ? c : (t->len[x] > t->len[y]) - (t->len[x] < t->len[y]);
			}
	}
	return 0;
}

/*
 * Sorts the distinct label values into the model's classes, sets each id's
 * class index (rank) and content hash, and writes every row's class index
 * to cls[row].
 */
static void
BuildClasses(TrainState *st, DltModel *m, int32 *cls)
{
	const DltCache *c = &st->cache;
	ClassTable *t = &st->classes;
	int32	   *ids = palloc(sizeof(int32) * Max(t->n, 1));

	m->n_classes = t->n;
	if (t->n < 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("classification needs at least two distinct labels"),
				 errdetail("Every one of the %lld rows has the same label.",
						   (long long) c->n_rows)));
	for (int i = 0; i < t->n; i++)
		ids[i] = i;
	sort_classes = t;
	sort_kind = st->label_kind;
	qsort(ids, t->n, sizeof(int32), CmpClassIds);

	t->rank = palloc(sizeof(int32) * t->n);
	t->chash = palloc(sizeof(uint64) * t->n);
	if (st->label_kind == DLT_LABEL_TEXT)
		m->class_text = palloc(sizeof(char *) * t->n);
	else if (st->label_kind == DLT_LABEL_INT)
		m->class_int = palloc(sizeof(int64) * t->n);
	else
		m->class_float = palloc(sizeof(double) * t->n);
	for (int k = 0; k < t->n; k++)
	{
		int32		id = ids[k];

		t->rank[id] = k;
		if (st->label_kind == DLT_LABEL_TEXT)
		{
			m->class_text[k] = t->str[id];
			t->chash[id] = hash_bytes_extended((const unsigned char *) t->str[id],
											   t->len[id], 1);
		}
		else
		{
			if (st->label_kind == DLT_LABEL_INT)
				m->class_int[k] = t->val[id];
			else
				memcpy(&m->class_float[k], &t->val[id], sizeof(double));
			t->chash[id] = hash_bytes_extended((const unsigned char *) &t->val[id],
											   sizeof(int64), 1);
		}
	}
	for (int64 r = 0; r < c->n_rows; r++)
		cls[r] = t->rank[*DltCacheLabel(c, r)];
	pfree(ids);
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
 * Standardizes the cached features in place: x = (x - mean) * scale with
 * scale = 1/std (population std), or 1 for a (near) constant feature, so a
 * zero-variance feature becomes 0 instead of dividing by zero.  The moments
 * are summed in one pass in the given row order (canonical when shuffling),
 * so the statistics are reproducible; the rows are scattered in memory in
 * that order, hence the prefetch.  predict applies the same float32
 * arithmetic (dlk_standardize).
 */
static void
Standardize(DltCache *c, const uint32 *order, DltModel *m)
{
	int			D = c->dim;
	int64		n = c->n_rows;
	double	   *sum = palloc0(sizeof(double) * D);
	double	   *sq = palloc0(sizeof(double) * D);
	float	   *fm = palloc(sizeof(float) * D);
	float	   *fs = palloc(sizeof(float) * D);
	float	   *shift = palloc(sizeof(float) * D);

	/* one pass of moments shifted by the first row (no cancellation) */
	memcpy(shift, DltCacheRow(c, order[0]), sizeof(float) * D);
	for (int64 i = 0; i < n; i++)
	{
		if (i + 16 < n)
			PrefetchRow(c, order[i + 16]);
		dlk_moments_accumulate(sum, sq, DltCacheRow(c, order[i]), shift, D);
	}
	m->mean = palloc(sizeof(double) * D);
	m->scale = palloc(sizeof(double) * D);
	for (int d = 0; d < D; d++)
	{
		double		mu = sum[d] / n;
		double		sd = sqrt(Max(sq[d] / n - mu * mu, 0.0));

		m->mean[d] = shift[d] + mu;
		m->scale[d] = (sd > 1e-12 * Max(1.0, fabs(m->mean[d]))) ? 1.0 / sd : 1.0;
		fm[d] = (float) m->mean[d];
		fs[d] = (float) m->scale[d];
	}
	/* in place, in physical order: the result does not depend on the order */
	for (int64 r = 0; r < n; r++)
		dlk_standardize(DltCacheRow(c, r), fm, fs, D);
	pfree(sum);
	pfree(sq);
	pfree(fm);
	pfree(fs);
	pfree(shift);
	m->normalized = true;
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

static bytea *
Train(TrainState *st, MemoryContext resultcxt)
{
	DltCache   *c = &st->cache;
	const DltOptions *o = &st->opts;
	int64		n = c->n_rows;
	int			D = c->dim;
	int			B = (int) Min((int64) o->batch_size, n);
	DltModel   *m = palloc0(sizeof(DltModel));
	uint32	   *order = palloc_extended(sizeof(uint32) * n, MCXT_ALLOC_HUGE);
	int32	   *cls = NULL;
	float	   *tgt = NULL;
	dlk_sizes	sz;
	dlk_net		net;
	dlk_opt		opt;
	dlk_rng		rng;
	float	   *params,
			   *grads,
			   *state,
			   *work,
			   *xb;
	int32	   *yb = NULL;
	float	   *tb = NULL;
	int			C;
	Size		need;
	dlk_status	s;
	bytea	   *result;
	MemoryContext old;

	m->task = st->task;
	m->label_kind = st->label_kind;
	m->label_type = st->label_type;
	m->opts = *o;
	m->rows_used = n;
	m->rows_skipped = st->rows_skipped;

	/* labels: class indices or float targets, indexed by cache row */
	if (m->task == DLT_TASK_CLASSIFICATION)
	{
		cls = palloc_extended(sizeof(int32) * n, MCXT_ALLOC_HUGE);
		BuildClasses(st, m, cls);
		C = m->n_classes;
	}
	else
	{
		tgt = palloc_extended(sizeof(float) * n, MCXT_ALLOC_HUGE);
		for (int64 r = 0; r < n; r++)
		{
			int64		y = *DltCacheLabel(c, r);
			double		f;

			if (st->label_kind == DLT_LABEL_INT)
				f = (double) y;
			else
				memcpy(&f, &y, sizeof(double));
			tgt[r] = (float) f;
		}
		C = 1;
	}

	/* architecture */
	m->arch.n_layers = o->n_hidden + 1;
	m->arch.dims[0] = D;
	for (int l = 0; l < o->n_hidden; l++)
		m->arch.dims[l + 1] = o->hidden[l];
	m->arch.dims[m->arch.n_layers] = C;
	m->arch.act = o->activation;
	m->arch.loss = m->task == DLT_TASK_CLASSIFICATION ? DLK_LOSS_SOFTMAX_CE : DLK_LOSS_MSE;
	if (dlk_arch_check(&m->arch) != DLK_OK ||
		dlk_sizes_for(&sz, &m->arch, B, o->optimizer) != DLK_OK)
		elog(ERROR, "invalid network architecture");
	m->n_params = sz.n_params;
	m->epochs_run = o->epochs;

	/* size checks before any large allocation */
	need = mul_size(add_size(add_size(mul_size(2, sz.n_params), sz.n_opt_state),
							 add_size(sz.n_work, mul_size(B, D + C + 1))),
					sizeof(float));
	CheckModelBudget(need, DltBudgetBytes());
	CheckModelSize(ModelEncodedSize(m));

	/* order: canonical then shuffled, or arrival order without shuffle */
	if (o->shuffle)
		CanonicalOrder(st, order);
	else
		for (int64 i = 0; i < n; i++)
			order[i] = (uint32) i;
	if (o->normalize)
		Standardize(c, order, m);

	params = palloc_extended(sizeof(float) * sz.n_params, MCXT_ALLOC_HUGE);
	grads = palloc_extended(sizeof(float) * sz.n_params, MCXT_ALLOC_HUGE);
	state = palloc_extended(sizeof(float) * Max(sz.n_opt_state, 1), MCXT_ALLOC_HUGE);
	work = palloc_extended(sizeof(float) * sz.n_work, MCXT_ALLOC_HUGE);
	xb = palloc_extended(sizeof(float) * (Size) B * D, MCXT_ALLOC_HUGE);
	if (cls)
		yb = palloc(sizeof(int32) * B);
	else
		tb = palloc(sizeof(float) * B);
	m->epoch_loss = palloc0(sizeof(float) * Max(o->epochs, 1));

	DltBlasEnsure();
	s = dlk_net_bind(&net, &m->arch, B, 1, params, grads, state, work);
	if (s != DLK_OK)
		elog(ERROR, "could not set up network: %s", dlk_status_string(s));
	dlk_init_params(&net, (uint64) o->seed);
	m->params = params;

	opt.kind = o->optimizer;
	opt.lr = (float) o->lr;
	opt.momentum = (float) o->momentum;
	opt.beta1 = 0.9f;
	opt.beta2 = 0.999f;
	opt.eps = 1e-8f;
	opt.weight_decay = (float) o->weight_decay;
	/* the shuffle stream is independent of the initialization stream */
	dlk_rng_seed(&rng, (uint64) o->seed ^ UINT64CONST(0x53485546464c4521));

	for (int e = 0; e < o->epochs; e++)
	{
		double		sum = 0;
		instr_time	t0,
					t1;

		INSTR_TIME_SET_CURRENT(t0);
		if (o->shuffle)
			dlk_shuffle_u32(&rng, order, (size_t) n);
		for (int64 start = 0; start < n; start += B)
		{
			int			bs = (int) Min((int64) B, n - start);
			double		loss;

			for (int i = 0; i < bs; i++)
			{
				uint32		r = order[start + i];

				if (start + i + 8 < n)
					PrefetchRow(c, order[start + i + 8]);

				memcpy(xb + (Size) i * D, DltCacheRow(c, r), sizeof(float) * D);
				if (yb)
					yb[i] = cls[r];
				else
					tb[i] = tgt[r];
			}
			s = dlk_train_step(&net, xb, yb, tb, bs, &opt, &loss);
			if (s == DLK_ENONFINITE)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("training diverged: the loss became NaN or infinite in epoch %d", e + 1),
						 errhint("Lower \"lr\", or enable \"normalize\".")));
			if (s != DLK_OK)
				elog(ERROR, "training step failed: %s", dlk_status_string(s));
			sum += loss * bs;
			CHECK_FOR_INTERRUPTS();
		}
		m->epoch_loss[e] = (float) (sum / n);
		INSTR_TIME_SET_CURRENT(t1);
		INSTR_TIME_SUBTRACT(t1, t0);
		if (dltrain_verbose)
		{
			double		secs = INSTR_TIME_GET_DOUBLE(t1);

			ereport(NOTICE,
					(errmsg("epoch %d/%d: loss %.6f, %.0f rows/s",
							e + 1, o->epochs, m->epoch_loss[e],
							secs > 0 ? n / secs : 0)));
		}
	}

	old = MemoryContextSwitchTo(resultcxt);
	result = ModelEncode(m);
	MemoryContextSwitchTo(old);
	return result;
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
	result = Train(st, resultcxt);
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
