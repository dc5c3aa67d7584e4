/*
 * source_table.c — the row source of dltrain.fit(): a relation read through
 * the executor every epoch, without caching it.
 *
 * prepare is a first pass (a plain scan): it counts the rows, collects the
 * classes, sums the feature moments for standardization and a content hash
 * of the training set (order-independent: a sum of row hashes), and keeps
 * the validation rows (held out by their content, order.h, so the same
 * rows whatever the order; standardized once).  Each epoch then reads the
 * relation again in block-shuffled order (TABLESAMPLE
 * dltrain.block_shuffle, a new seed each epoch) and shuffles rows within a
 * bounded buffer (option buffer_rows) before cutting it into mini-batches:
 * CorgiPile's two-level shuffle.  Memory is the buffer, the validation
 * rows and the model, whatever the size of the table.
 *
 * Every pass reads under one registered snapshot (cursors opened read-only
 * with it active), so the training set does not drift between epochs.  The
 * SQL is built from quoted identifiers and schema-qualified names
 * (relation.c), so the caller's search_path cannot change it, and it runs
 * with the caller's privileges: SELECT rights, row-level security and MVCC
 * apply.  The caller (fit.c) connects to SPI around the training.
 *
 * Partitioned tables: when neither the table nor any partition has row-level
 * security and the caller may read every partition, each partition gets its
 * own block-shuffled cursor and fetches interleave at random, rather than
 * reading the partitions one after the other.  Otherwise the table is read
 * through its parent (NOTICE).  Views cannot be block-sampled: they are read
 * in their own order and shuffled within the buffer only (NOTICE).
 *
 * Resources: the cursors are closed as they finish (SPI_finish closes any
 * left by an error); the snapshot is unregistered by close(), or by the
 * resource owner when an error aborts the transaction.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "budget.h"
#include "feature_array.h"
#include "interrupt.h"
#include "newrows.h"
#include "order.h"
#include "progress.h"
#include "relation.h"
#include "rows.h"
#include "rowsource.h"
#include "stats.h"

#define FETCH_ROWS 1024

/* the cursors of one pass: one per partition read directly, or one */
typedef struct Cursors
{
	int			n;
	Portal	   *portals;
	bool	   *done;
	int			live;
} Cursors;

typedef struct TableSource
{
	DltRowSource pub;
	DltTableInfo info;
	Oid			relid;
	char		relkind;
	char	   *select_list;	/* "features, label" */
	DltOptions	opts;
	Snapshot	snapshot;
	List	   *sources;		/* relations to open a cursor on (qualified names) */
	bool		block_shuffle;	/* TABLESAMPLE possible */

	DltClassTable classes;
	double	   *sum;			/* moments of the training rows (shifted) */
	double	   *sq;
	float	   *shift;
	DltHeldOut	val;			/* validation rows (label slots), standardized */

	/* dltrain.retrain: which rows are new (newrows.c), and the replay */
	const char *new_expr;		/* a boolean SQL expression; NULL: every row */
	int			nargs;			/* its parameters */
	Oid		   *argtypes;
	Datum	   *args;
	double		replay;			/* fraction of old rows mixed in (by content) */
	uint64		replay_salt;
	char	   *key_column;		/* record its maximum (info.key_max); NULL: none */

	float	   *row;			/* one row, converted */
	MemoryContext rowcxt;		/* detoasted arrays of one row; reset after it */

	/* the epoch's pass: its cursors, the SPI batch being read, the buffer */
	Cursors		cur;
	dlk_rng		rng;
	uint64		next;			/* next row of SPI_tuptable */
	uint64		fetched;		/* its rows; 0: none */
	bool		exhausted;
	int64		rowno;
	int			cap;
	float	   *buf_x;			/* [cap x D], standardized */
	int64	   *buf_y;
	uint32	   *perm;			/* the buffer's rows in shuffled order */
	int			bn;				/* rows in the buffer */
	int			bstart;			/* next of them */
	int64		vpos;
	const float **xp;
	int64	   *sp;
} TableSource;

/* May each partition be read directly with the same result as the parent? */
static List *
InterleavedPartitions(Oid relid)
{
	List	   *all = find_all_inheritors(relid, AccessShareLock, NULL);
	List	   *leaves = NIL;
	ListCell   *lc;

	foreach(lc, all)
	{
		Oid			part = lfirst_oid(lc);
		char		kind = get_rel_relkind(part);

		/* any row-level security makes a direct read differ from the parent's */
		{
			Relation	r = RelationIdGetRelation(part);
			bool		rls = r->rd_rel->relrowsecurity;

			RelationClose(r);
			if (rls)
				return NIL;
		}
		if (kind == RELKIND_PARTITIONED_TABLE)
			continue;
		if (kind != RELKIND_RELATION && kind != RELKIND_MATVIEW)
			return NIL;
		if (pg_class_aclcheck(part, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
			return NIL;
		leaves = lappend(leaves, DltQualifiedName(part));
	}
	return leaves;
}

static void
CheckRelation(TableSource *ts)
{
	const char *relname = ts->info.relname;

	switch (ts->relkind)
	{
		case RELKIND_RELATION:
		case RELKIND_MATVIEW:
			ts->block_shuffle = true;
			ts->sources = list_make1((char *) relname);
			break;
		case RELKIND_PARTITIONED_TABLE:
			ts->block_shuffle = true;
			ts->sources = InterleavedPartitions(ts->relid);
			if (ts->sources == NIL)
			{
				ereport(NOTICE,
						(errmsg("partitioned table %s is read through its parent, one partition after the other",
								relname),
						 errdetail("Row-level security, or a partition the caller may not read directly, rules out interleaving the partitions.")));
				ts->sources = list_make1((char *) relname);
			}
			break;
		case RELKIND_VIEW:
		case RELKIND_FOREIGN_TABLE:
			ts->block_shuffle = false;
			ts->sources = list_make1((char *) relname);
			ereport(NOTICE,
					(errmsg("%s is read in its own order, without the block-level shuffle",
							relname),
					 errdetail("Only tables and materialized views can be read block-shuffled; rows are still shuffled within the buffer of %d rows.",
							   ts->opts.buffer_rows)));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("cannot train on \"%s\"", get_rel_name(ts->relid)),
					 errdetail("dltrain.fit reads tables, partitioned tables, materialized views, views and foreign tables.")));
	}
}

static void
OpenCursors(TableSource *ts, Cursors *cur, bool shuffled, int epoch)
{
	ListCell   *lc;
	int			i = 0;

	cur->n = list_length(ts->sources);
	cur->portals = palloc(sizeof(Portal) * cur->n);
	cur->done = palloc0(sizeof(bool) * cur->n);
	cur->live = cur->n;
	PushActiveSnapshot(ts->snapshot);
	foreach(lc, ts->sources)
	{
		char	   *q;
		const char *sel = ts->select_list;
		const char *where = "";

		/* only new rows: a WHERE clause; with a replay, a third column says which */
		if (ts->new_expr && ts->replay > 0)
			sel = psprintf("%s, (%s)", ts->select_list, ts->new_expr);
		else if (ts->new_expr)
			where = psprintf(" WHERE %s", ts->new_expr);
		if (shuffled && ts->block_shuffle)
			q = psprintf("SELECT %s FROM %s TABLESAMPLE dltrain.block_shuffle(%d) REPEATABLE (%lld)%s",
						 sel, (char *) lfirst(lc), ts->opts.pages_per_range,
						 (long long) (ts->opts.seed + epoch), where);
		else
			q = psprintf("SELECT %s FROM %s%s", sel, (char *) lfirst(lc), where);
		cur->portals[i++] = SPI_cursor_open_with_args(NULL, q, ts->nargs, ts->argtypes, ts->args,
													  NULL, true, 0);
	}
	PopActiveSnapshot();
}

/* Fetches the next rows from a random live cursor; false when all are done. */
static bool
FetchRows(Cursors *cur, dlk_rng *rng)
{
	CHECK_FOR_INTERRUPTS();
	while (cur->live > 0)
	{
		int			k = (int) dlk_rng_below(rng, cur->live);
		int			i;

		/* the k-th live cursor */
		for (i = 0; i < cur->n; i++)
			if (!cur->done[i] && k-- == 0)
				break;
		SPI_cursor_fetch(cur->portals[i], true, cur->n > 1 ? 256 : FETCH_ROWS);
		if (SPI_processed > 0)
			return true;
		cur->done[i] = true;
		SPI_cursor_close(cur->portals[i]);
		cur->live--;
	}
	return false;
}

/*
 * Converts row r of the SPI result into ts->row and returns its label slot
 * (class id or value); false for a row with NULL features or label.
 */
static bool
ReadRow(TableSource *ts, uint64 r, int64 *label, uint64 *hash, int64 rowno, bool first_pass)
{
	HeapTuple	tup = SPI_tuptable->vals[r];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	bool		isnull;
	Datum		f = SPI_getbinval(tup, desc, 1, &isnull);
	Datum		y;
	ArrayType  *arr;
	int			n;
	int			D = ts->pub.D;
	uint64		lh;

	if (isnull)
		return false;
	y = SPI_getbinval(tup, desc, 2, &isnull);
	if (isnull)
		return false;
	arr = DatumGetArrayTypeP(f);
	if (array_contains_nulls(arr))
		return false;			/* a NULL feature column */
	n = CheckFeatureArray(arr, D, rowno);
	if (D == 0)
	{
		MemoryContext old = MemoryContextSwitchTo(ts->val.cxt);

		ts->pub.D = D = n;
		ts->val.D = n;
		ts->row = palloc(sizeof(float) * n);
		MemoryContextSwitchTo(old);
	}
	FeatureArrayToFloat(ts->row, arr, ARR_ELEMTYPE(arr), rowno);

	if (ts->pub.label_type == TEXTOID)
	{
		text	   *t = DatumGetTextPP(y);

		*label = first_pass ?
			DltClassId(&ts->classes, ts->val.cxt, 0, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)) :
			DltClassLookup(&ts->classes, 0, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
		lh = DltLabelHash(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), 0);
	}
	else
	{
		int64		v = DltLabelValue(y, ts->pub.label_type, ts->pub.task, rowno);

		lh = DltLabelHash(NULL, 0, v);
		*label = ts->pub.task == DLT_TASK_REGRESSION ? v : first_pass ?
			DltClassId(&ts->classes, ts->val.cxt, v, NULL, 0) :
			DltClassLookup(&ts->classes, v, NULL, 0);
	}
	*hash = DltRowHash(ts->row, D, lh);
	if (!first_pass && ts->pub.task == DLT_TASK_CLASSIFICATION && *label < 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("row %lld has a label the first pass over \"%s\" did not see",
						(long long) rowno, get_rel_name(ts->relid)),
				 errdetail("The relation returned different rows in different passes (a view with volatile expressions, or a foreign table)."),
				 errhint("Train on a table, or materialize the view.")));
	return true;
}

/*
 * With a replay, row r of the SPI result is old (the third column false);
 * an old row trains only if the replay picks it: by its content hash and the
 * seed, so the same rows in any order and in every pass, and independent of
 * the validation rule's choice (another mix of the hash).
 */
static bool
RowIsOld(TableSource *ts, uint64 r)
{
	bool		isnull;
	Datum		d;

	if (ts->new_expr == NULL || ts->replay <= 0)
		return false;
	d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 3, &isnull);
	return isnull || !DatumGetBool(d);
}

static bool
ReplayPicks(TableSource *ts, uint64 hash)
{
	uint64		h = hash_combine64(hash, ts->replay_salt);

	return (double) (h >> 11) < ts->replay * (double) (UINT64CONST(1) << 53);
}

static void ReadKeyMax(TableSource *ts);

/* The first pass: counts, classes, moments, content hash, validation rows. */
static void
TablePrepare(DltRowSource *src, const DltOptions *opts, int K)
{
	TableSource *ts = (TableSource *) src;
	Cursors		cur;
	dlk_rng		rng;
	int64		rowno = 0;
	int			D;

	Assert(K == 1);
	if (ts->key_column)
		ReadKeyMax(ts);
	dlk_rng_seed(&rng, 1);
	DltProgressPhase(DLT_PHASE_READING);
	OpenCursors(ts, &cur, false, 0);
	while (FetchRows(&cur, &rng))
	{
		MemoryContext old = MemoryContextSwitchTo(ts->rowcxt);

		for (uint64 r = 0; r < SPI_processed; r++)
		{
			int64		label;
			uint64		hash;
			bool		old = RowIsOld(ts, r);

			rowno++;
			if (!ReadRow(ts, r, &label, &hash, rowno, true))
			{
				if (!old)
					ts->info.skipped++;
				continue;
			}
			if (old && !ReplayPicks(ts, hash))
				continue;
			if (DltIsValidationRow(hash, ts->opts.validation_fraction))
			{
				DltHeldOutAdd(&ts->val, ts->row, label, hash);
				continue;
			}
			if (ts->sum == NULL)
			{
				MemoryContext old2 = MemoryContextSwitchTo(ts->val.cxt);

				ts->sum = palloc0(sizeof(double) * src->D);
				ts->sq = palloc0(sizeof(double) * src->D);
				ts->shift = palloc(sizeof(float) * src->D);
				memcpy(ts->shift, ts->row, sizeof(float) * src->D);
				MemoryContextSwitchTo(old2);
			}
			dlk_moments_accumulate(ts->sum, ts->sq, ts->row, ts->shift, src->D);
			ts->info.content_hash += hash;	/* a sum: independent of the order */
			ts->info.rows++;
			if (old)
				ts->info.replayed++;
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(ts->rowcxt);
		SPI_freetuptable(SPI_tuptable);
		/* the classes (text labels up to 1 kB each) grow with the rows */
		DltBudgetCheck(src->root, 0, "the label's classes and the held-out rows");
		DltProgressRows(rowno, -1, NAN, 0);
	}
	if (ts->info.rows == 0 && ts->new_expr)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("dltrain.retrain has no new rows to train on"),
				 errdetail("%lld rows were read; none was added or updated since the model was trained, or all of them have NULL features or label (%lld) or are held out for validation (%lld).",
						   (long long) rowno, (long long) ts->info.skipped, (long long) ts->val.n)));
	if (ts->info.rows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("dltrain.fit has no rows to train on"),
				 errdetail("The relation has %lld rows; %lld have NULL features or label, %lld are held out for validation.",
						   (long long) rowno, (long long) ts->info.skipped, (long long) ts->val.n)));
	DltNoticeSkipped("fit", ts->info.skipped, rowno - ts->info.skipped);
	src->n_rows = ts->info.rows;
	src->rows_skipped = ts->info.skipped;
	src->data_rows = ts->info.rows + ts->val.n;
	src->data_hash = ts->info.content_hash + ts->val.hash_sum;
	ts->info.validation_rows = ts->val.n;
	D = src->D;

	/* classes, statistics */
	src->labels.task = src->task;
	src->labels.kind = src->label_kind;
	if (src->task == DLT_TASK_CLASSIFICATION)
	{
		DltClassTableFinish(&ts->classes, src->label_kind, &src->classes, ts->info.rows);
		src->labels.rank = ts->classes.rank;
	}
	src->fm = palloc(sizeof(float) * D);
	src->fs = palloc(sizeof(float) * D);
	if (ts->opts.warm && ts->opts.warm->normalized && ts->opts.warm->arch.dims[0] == D)
	{
		/* a warm start standardizes with the model's statistics */
		for (int d = 0; d < D; d++)
		{
			src->fm[d] = (float) ts->opts.warm->mean[d];
			src->fs[d] = (float) ts->opts.warm->scale[d];
		}
		for (int64 i = 0; i < ts->val.n; i++)
			dlk_standardize(ts->val.x + i * D, src->fm, src->fs, D);
	}
	else if (ts->opts.normalize && ts->opts.warm == NULL)
	{
		src->stats = palloc0(sizeof(DltModel));
		src->stats->arch.dims[0] = D;
		DltStatsFinish(src->stats, ts->info.rows, ts->sum, ts->sq, ts->shift, src->fm, src->fs);
		for (int64 i = 0; i < ts->val.n; i++)
		{
			if ((i & 65535) == 0)
				CHECK_FOR_INTERRUPTS();
			dlk_standardize(ts->val.x + i * D, src->fm, src->fs, D);
		}
	}
}

static void
TableOpenStream(DltRowSource *src, DltStream *s)
{
	TableSource *ts = (TableSource *) src;
	int			D = src->D;

	s->n_train = ts->info.rows;
	s->n_val = ts->val.n;
	s->B = (int) Min((int64) ts->opts.batch_size, ts->info.rows);
	if (ts->opts.validation_fraction > 0)
		DltReportHeldOut(ts->val.n, ts->val.hash_sum, ts->opts.validation_fraction);
	/* the shuffle buffer */
	ts->cap = (int) Min((int64) ts->opts.buffer_rows, ts->info.rows);
	DltBudgetCheck(src->root, mul_size(ts->cap, add_size(mul_size(D, sizeof(float)), 8)),
				   psprintf("a shuffle buffer of %d rows", ts->cap));
	ts->buf_x = palloc_extended(sizeof(float) * (Size) ts->cap * D, MCXT_ALLOC_HUGE);
	ts->buf_y = palloc_extended(sizeof(int64) * (Size) ts->cap, MCXT_ALLOC_HUGE);
	ts->perm = palloc_extended(sizeof(uint32) * (Size) ts->cap, MCXT_ALLOC_HUGE);
	dlk_rng_seed(&ts->rng, (uint64) ts->opts.seed ^ DLT_SHUFFLE_SALT);
	/* continuing: the shuffle state an epoch's end left (get_rng) */
	if (s->resume_rng)
		memcpy(ts->rng.s, s->resume_rng, sizeof(ts->rng.s));
	s->batch = DltBatchCreate(src->device, s->B, D, 1);
	ts->xp = palloc(sizeof(float *) * s->B);
	ts->sp = palloc(sizeof(int64) * s->B);
}

static void
TableBeginEpoch(DltRowSource *src, DltStream *s, int e)
{
	TableSource *ts = (TableSource *) src;

	DltProgressPhase(DLT_PHASE_TRAINING);
	OpenCursors(ts, &ts->cur, true, e);
	ts->next = ts->fetched = 0;
	ts->exhausted = false;
	ts->rowno = 0;
	ts->bn = ts->bstart = 0;
}

/* Fills the buffer from the pass and shuffles it; false at the end. */
static bool
FillBuffer(TableSource *ts)
{
	int			D = ts->pub.D;
	int			filled = 0;

	while (filled < ts->cap && !ts->exhausted)
	{
		int64		label;
		uint64		hash;
		bool		use;
		bool		is_old;
		MemoryContext old;

		if (ts->next >= ts->fetched)
		{
			if (ts->fetched > 0)
				SPI_freetuptable(SPI_tuptable);
			ts->next = ts->fetched = 0;
			if (!FetchRows(&ts->cur, &ts->rng))
			{
				ts->exhausted = true;
				break;
			}
			ts->fetched = SPI_processed;
		}
		old = MemoryContextSwitchTo(ts->rowcxt);
		ts->rowno++;
		is_old = RowIsOld(ts, ts->next);
		use = ReadRow(ts, ts->next++, &label, &hash, ts->rowno, false) &&
			(!is_old || ReplayPicks(ts, hash)) &&
			!DltIsValidationRow(hash, ts->opts.validation_fraction);
		MemoryContextSwitchTo(old);
		MemoryContextReset(ts->rowcxt);
		if (!use)
			continue;
		if (ts->opts.warm ? ts->opts.warm->normalized : ts->opts.normalize)
			dlk_standardize(ts->row, ts->pub.fm, ts->pub.fs, D);
		memcpy(ts->buf_x + (Size) filled * D, ts->row, sizeof(float) * D);
		ts->buf_y[filled++] = label;
	}
	if (filled == 0)
		return false;
	/* the second level of the shuffle: the buffer in random order */
	for (int i = 0; i < filled; i++)
		ts->perm[i] = i;
	if (ts->opts.shuffle && dlk_shuffle_u32(&ts->rng, ts->perm, filled) != DLK_OK)
		DltKernelAborted();
	ts->bn = filled;
	ts->bstart = 0;
	return true;
}

static int
TableNextBatch(DltRowSource *src, DltStream *s)
{
	TableSource *ts = (TableSource *) src;
	int			bs;

	if (ts->bstart >= ts->bn && !FillBuffer(ts))
		return 0;
	bs = Min(s->B, ts->bn - ts->bstart);
	for (int i = 0; i < bs; i++)
	{
		uint32		k = ts->perm[ts->bstart + i];

		ts->xp[i] = ts->buf_x + (Size) k * src->D;
		ts->sp[i] = ts->buf_y[k];
	}
	DltBatchGather(s->batch, bs, ts->xp, ts->sp, s->labels, NULL, NULL);
	ts->bstart += bs;
	return bs;
}

static int
TableNextValidation(DltRowSource *src, DltStream *s, bool first)
{
	TableSource *ts = (TableSource *) src;
	int			bs;

	if (first)
		ts->vpos = 0;
	if (ts->vpos >= ts->val.n)
		return 0;
	bs = (int) Min((int64) s->B, ts->val.n - ts->vpos);
	for (int i = 0; i < bs; i++)
	{
		ts->xp[i] = ts->val.x + (Size) (ts->vpos + i) * src->D;
		ts->sp[i] = ts->val.y[ts->vpos + i];
	}
	DltBatchGather(s->batch, bs, ts->xp, ts->sp, s->labels, NULL, NULL);
	ts->vpos += bs;
	return bs;
}

static void
TableClose(DltRowSource *src)
{
	TableSource *ts = (TableSource *) src;

	if (ts->snapshot)
		UnregisterSnapshot(ts->snapshot);
	ts->snapshot = NULL;
}

/* At an epoch's end the pass holds nothing but its random state. */
static bool
TableGetRng(DltRowSource *src, DltStream *s, uint64 *rng)
{
	memcpy(rng, ((TableSource *) src)->rng.s, sizeof(((TableSource *) src)->rng.s));
	return true;
}

static const DltRowSourceOps table_ops = {
	TablePrepare, TableOpenStream, TableBeginEpoch, TableNextBatch, TableNextValidation,
	TableClose, TableGetRng
};

DltRowSource *
DltTableSourceCreate(Oid relid, ArrayType *features, const char *label,
					 const DltOptions *opts, MemoryContext root)
{
	TableSource *ts = palloc0(sizeof(TableSource));
	DltRowSource *src = &ts->pub;

	src->ops = &table_ops;
	src->name = "relation";
	src->root = root;
	src->shared_streams = false;
	ts->opts = *opts;
	ts->relid = relid;
	ts->val.cxt = CurrentMemoryContext;
	ts->val.root = root;
	ts->rowcxt = AllocSetContextCreate(CurrentMemoryContext, "dltrain fit rows",
									   ALLOCSET_DEFAULT_SIZES);
	DltLockRelation(relid);
	ts->relkind = get_rel_relkind(relid);
	ts->info.relname = DltQualifiedName(relid);
	ts->select_list = DltSelectList(relid, features, label, &src->label_type, "dltrain.fit");
	src->label_kind = DltLabelKindOf(src->label_type);
	src->task = DltResolveTask(opts->task, src->label_kind);
	CheckRelation(ts);
	ts->snapshot = RegisterSnapshot(GetTransactionSnapshot());
	ts->info.snapshot_xmin = ts->snapshot->xmin;
	ts->info.snapshot = DltSnapshotText(ts->snapshot);
	return src;
}

void
DltTableSourceSetFilter(DltRowSource *src, const DltTableFilter *f)
{
	TableSource *ts = (TableSource *) src;

	ts->new_expr = pstrdup(f->new_expr);
	ts->nargs = f->nargs;
	ts->argtypes = f->argtypes;
	ts->args = f->args;
	ts->replay = f->replay;
	ts->replay_salt = hash_combine64((uint64) f->seed, UINT64CONST(0x7265706c6179));
	ts->info.filtered = true;
}

void
DltTableSourceRecordMax(DltRowSource *src, const char *column)
{
	TableSource *ts = (TableSource *) src;
	AttrNumber	att = get_attnum(ts->relid, column);

	if (att == InvalidAttrNumber || att < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						column, get_rel_name(ts->relid))));
	ts->key_column = pstrdup(column);
	ts->info.key_type = get_atttype(ts->relid, att);
}

/* The key's maximum over the whole relation, under the passes' snapshot. */
static void
ReadKeyMax(TableSource *ts)
{
	char	   *q;
	bool		isnull;
	Datum		d;

	q = psprintf("SELECT pg_catalog.to_jsonb(pg_catalog.max(%s))::pg_catalog.text FROM %s",
				 quote_identifier(ts->key_column), ts->info.relname);
	PushActiveSnapshot(ts->snapshot);
	if (SPI_execute(q, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the maximum of column \"%s\"", ts->key_column);
	PopActiveSnapshot();
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		ts->info.key_max = MemoryContextStrdup(ts->val.cxt, TextDatumGetCString(d));
	SPI_freetuptable(SPI_tuptable);
}

const DltTableInfo *
DltTableSourceInfo(DltRowSource *src)
{
	return &((TableSource *) src)->info;
}
