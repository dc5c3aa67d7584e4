/*
 * fit.c — dltrain.fit(): train on a table without caching all of it.
 *
 * Where the aggregate caches every row, fit() streams: every epoch reads the
 * relation again through the executor (an SPI cursor), in block-shuffled
 * order (TABLESAMPLE dltrain.block_shuffle, a new seed each epoch), and
 * shuffles rows within a bounded buffer (option buffer_rows) before cutting
 * it into mini-batches: CorgiPile's two-level shuffle.  Memory is the buffer,
 * the validation rows and the model, whatever the size of the table.
 *
 *  1. A first pass (plain scan) counts the rows, collects the classes,
 *     sums the feature moments for standardization and a content hash of the
 *     training set (order-independent: a sum of row hashes), and keeps the
 *     validation rows (a validation_fraction of rows, chosen by a hash of
 *     their content, so the same rows whatever the order).
 *  2. Each epoch: a block-shuffled pass feeding the shuffle buffer; then the
 *     validation loss and metric (accuracy, or RMSE for regression).
 *
 * Every pass reads under one registered snapshot (cursors opened read-only
 * with it active), so the training set does not drift between epochs.  The
 * SQL is built from quoted identifiers and schema-qualified names, so the
 * caller's search_path cannot change it, and it runs with the caller's
 * privileges: SELECT rights, row-level security and MVCC apply.
 *
 * Partitioned tables: when neither the table nor any partition has row-level
 * security and the caller may read every partition, each partition gets its
 * own block-shuffled cursor and fetches interleave at random, rather than
 * reading the partitions one after the other.  Otherwise the table is read
 * through its parent (NOTICE).  Views cannot be block-sampled: they are read
 * in their own order and shuffled within the buffer only (NOTICE).
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "dltrain.h"
#include "version.h"

#define FETCH_ROWS 1024

typedef struct FitRun
{
	MemoryContext cxt;
	Oid			relid;
	char		relkind;
	char	   *relname;		/* schema-qualified, quoted */
	char	   *select_list;	/* "features, label" */
	Oid			label_type;
	DltLabelKind label_kind;
	DltTask		task;
	DltOptions	opts;
	Snapshot	snapshot;
	List	   *sources;		/* relations to open a cursor on (qualified names) */
	bool		block_shuffle;	/* TABLESAMPLE possible */

	int			D;
	DltClassTable classes;
	int64		rows;			/* training rows */
	int64		skipped;
	uint64		content_hash;
	double	   *sum;			/* moments of the training rows (shifted) */
	double	   *sq;
	float	   *shift;
	float	   *fmean;
	float	   *fscale;

	/* validation rows, standardized */
	DltHeldOut	val;			/* validation rows (label slots) */

	/* one row, converted */
	float	   *row;
	MemoryContext rowcxt;		/* detoasted arrays of one fetch; reset after it */
} FitRun;

/* ---- reading ---- */

typedef struct RowSource
{
	int			n;
	Portal	   *portals;
	bool	   *done;
	int			live;
} RowSource;

static char *
FeatureExpression(Oid relid, ArrayType *features, int *ncols, const char *caller)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	StringInfoData b;

	deconstruct_array(features, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s needs at least one feature column", caller)));
	initStringInfo(&b);
	for (int i = 0; i < n; i++)
	{
		char	   *col;
		AttrNumber	att;
		Oid			t;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("feature column names must not be NULL")));
		col = TextDatumGetCString(elems[i]);
		att = get_attnum(relid, col);
		if (att == InvalidAttrNumber || att < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							col, get_rel_name(relid))));
		t = get_atttype(relid, att);
		if (n == 1 && (t == FLOAT4ARRAYOID || t == FLOAT8ARRAYOID))
		{
			appendStringInfoString(&b, quote_identifier(col));
			*ncols = 1;
			return b.data;
		}
		if (t != INT2OID && t != INT4OID && t != INT8OID && t != FLOAT4OID &&
			t != FLOAT8OID && t != NUMERICOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("feature column \"%s\" has type %s", col, format_type_be(t)),
					 errhint("Features are one real[] or double precision[] column, or numeric columns.")));
		appendStringInfo(&b, "%s%s::pg_catalog.float8", i ? ", " : "ARRAY[", quote_identifier(col));
	}
	appendStringInfoChar(&b, ']');
	*ncols = n;
	return b.data;
}

char *
DltQualifiedName(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * The select list "features, label" of a training read of relid: the
 * feature expression (one array column, or ARRAY[...] of numeric columns,
 * as float8) and the label column (text for varchar and char), all quoted.
 * *label_type gets the label's type.
 */
char *
DltSelectList(Oid relid, ArrayType *features, const char *label, Oid *label_type,
			  const char *caller)
{
	int			ncols;
	char	   *feat_expr = FeatureExpression(relid, features, &ncols, caller);
	AttrNumber	latt = get_attnum(relid, label);

	if (latt == InvalidAttrNumber || latt < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						label, get_rel_name(relid))));
	*label_type = get_atttype(relid, latt);
	if (*label_type == VARCHAROID || *label_type == BPCHAROID)
		*label_type = TEXTOID;
	return psprintf("%s, %s%s", feat_expr, quote_identifier(label),
					*label_type == TEXTOID ? "::pg_catalog.text" : "");
}

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
OpenSources(FitRun *fr, RowSource *src, bool shuffled, int epoch)
{
	ListCell   *lc;
	int			i = 0;

	src->n = list_length(fr->sources);
	src->portals = palloc(sizeof(Portal) * src->n);
	src->done = palloc0(sizeof(bool) * src->n);
	src->live = src->n;
	PushActiveSnapshot(fr->snapshot);
	foreach(lc, fr->sources)
	{
		char	   *q;

		if (shuffled && fr->block_shuffle)
			q = psprintf("SELECT %s FROM %s TABLESAMPLE dltrain.block_shuffle(%d) REPEATABLE (%lld)",
						 fr->select_list, (char *) lfirst(lc), fr->opts.pages_per_range,
						 (long long) (fr->opts.seed + epoch));
		else
			q = psprintf("SELECT %s FROM %s", fr->select_list, (char *) lfirst(lc));
		src->portals[i++] = SPI_cursor_open_with_args(NULL, q, 0, NULL, NULL, NULL, true, 0);
	}
	PopActiveSnapshot();
}

/* Fetches the next rows from a random live source; false when all are done. */
static bool
FetchRows(RowSource *src, dlk_rng *rng)
{
	while (src->live > 0)
	{
		int			k = (int) dlk_rng_below(rng, src->live);
		int			i;

		/* the k-th live source */
		for (i = 0; i < src->n; i++)
			if (!src->done[i] && k-- == 0)
				break;
		SPI_cursor_fetch(src->portals[i], true, src->n > 1 ? 256 : FETCH_ROWS);
		if (SPI_processed > 0)
			return true;
		src->done[i] = true;
		SPI_cursor_close(src->portals[i]);
		src->live--;
	}
	return false;
}

/*
 * Converts row r of the SPI result into fr->row and returns its label slot
 * (class id or value); false for a row with NULL features or label.
 */
static bool
ReadRow(FitRun *fr, uint64 r, int64 *label, uint64 *hash, int64 rowno, bool first_pass)
{
	HeapTuple	tup = SPI_tuptable->vals[r];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	bool		isnull;
	Datum		f = SPI_getbinval(tup, desc, 1, &isnull);
	Datum		y;
	ArrayType  *arr;
	int			n;

	if (isnull)
		return false;
	y = SPI_getbinval(tup, desc, 2, &isnull);
	if (isnull)
		return false;
	arr = DatumGetArrayTypeP(f);
	if (array_contains_nulls(arr))
		return false;			/* a NULL feature column */
	n = CheckFeatureArray(arr, fr->D, rowno);
	if (fr->D == 0)
	{
		MemoryContext old = MemoryContextSwitchTo(fr->cxt);

		fr->D = n;
		fr->val.D = n;
		fr->row = palloc(sizeof(float) * n);
		MemoryContextSwitchTo(old);
	}
	FeatureArrayToFloat(fr->row, arr, ARR_ELEMTYPE(arr), rowno);

	*hash = hash_bytes_extended((const unsigned char *) fr->row, sizeof(float) * fr->D, 0);
	if (fr->label_type == TEXTOID)
	{
		text	   *t = DatumGetTextPP(y);

		*label = first_pass ?
			DltClassId(&fr->classes, fr->cxt, 0, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)) :
			DltClassLookup(&fr->classes, 0, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
		*hash = hash_combine64(*hash, hash_bytes_extended((const unsigned char *) VARDATA_ANY(t),
														  VARSIZE_ANY_EXHDR(t), 1));
	}
	else
	{
		int64		v = DltLabelValue(y, fr->label_type, fr->task, rowno);

		*hash = hash_combine64(*hash, hash_bytes_extended((const unsigned char *) &v, sizeof(v), 1));
		*label = fr->task == DLT_TASK_REGRESSION ? v : first_pass ?
			DltClassId(&fr->classes, fr->cxt, v, NULL, 0) :
			DltClassLookup(&fr->classes, v, NULL, 0);
	}
	if (!first_pass && fr->task == DLT_TASK_CLASSIFICATION && *label < 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("row %lld has a label the first pass over \"%s\" did not see",
						(long long) rowno, get_rel_name(fr->relid)),
				 errdetail("The relation returned different rows in different passes (a view with volatile expressions, or a foreign table)."),
				 errhint("Train on a table, or materialize the view.")));
	return true;
}

/* Is a row (by its content hash) held out for validation? */
static inline bool
IsValidation(const FitRun *fr, uint64 hash)
{
	return DltIsValidationRow(hash, fr->opts.validation_fraction);
}

/* Pass 1: counts, classes, moments, content hash, validation rows. */
static void
FirstPass(FitRun *fr)
{
	RowSource	src;
	dlk_rng		rng;
	int64		rowno = 0;

	dlk_rng_seed(&rng, 1);
	DltProgressPhase(DLT_PHASE_READING);
	OpenSources(fr, &src, false, 0);
	while (FetchRows(&src, &rng))
	{
		MemoryContext old = MemoryContextSwitchTo(fr->rowcxt);

		for (uint64 r = 0; r < SPI_processed; r++)
		{
			int64		label;
			uint64		hash;

			rowno++;
			if (!ReadRow(fr, r, &label, &hash, rowno, true))
			{
				fr->skipped++;
				continue;
			}
			if (IsValidation(fr, hash))
			{
				DltHeldOutAdd(&fr->val, fr->row, label, 0);
				continue;
			}
			if (fr->sum == NULL)
			{
				MemoryContext old = MemoryContextSwitchTo(fr->cxt);

				fr->sum = palloc0(sizeof(double) * fr->D);
				fr->sq = palloc0(sizeof(double) * fr->D);
				fr->shift = palloc(sizeof(float) * fr->D);
				memcpy(fr->shift, fr->row, sizeof(float) * fr->D);
				MemoryContextSwitchTo(old);
			}
			dlk_moments_accumulate(fr->sum, fr->sq, fr->row, fr->shift, fr->D);
			fr->content_hash += hash;	/* a sum: independent of the order */
			fr->rows++;
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(fr->rowcxt);
		SPI_freetuptable(SPI_tuptable);
		/* the classes (text labels up to 1 kB each) grow with the rows */
		DltBudgetCheck(fr->cxt, 0, "the label's classes and the held-out rows");
		DltProgressRows(rowno, -1, NAN, 0);
		CHECK_FOR_INTERRUPTS();
	}
	if (fr->rows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("dltrain.fit has no rows to train on"),
				 errdetail("The relation has %lld rows; %lld have NULL features or label, %lld are held out for validation.",
						   (long long) rowno, (long long) fr->skipped, (long long) fr->val.n)));
	DltNoticeSkipped("fit", fr->skipped, rowno - fr->skipped);
}

/* ---- the entry point ---- */

static void
CheckRelation(FitRun *fr)
{
	switch (fr->relkind)
	{
		case RELKIND_RELATION:
		case RELKIND_MATVIEW:
			fr->block_shuffle = true;
			fr->sources = list_make1(fr->relname);
			break;
		case RELKIND_PARTITIONED_TABLE:
			fr->block_shuffle = true;
			fr->sources = InterleavedPartitions(fr->relid);
			if (fr->sources == NIL)
			{
				ereport(NOTICE,
						(errmsg("partitioned table %s is read through its parent, one partition after the other",
								fr->relname),
						 errdetail("Row-level security, or a partition the caller may not read directly, rules out interleaving the partitions.")));
				fr->sources = list_make1(fr->relname);
			}
			break;
		case RELKIND_VIEW:
		case RELKIND_FOREIGN_TABLE:
			fr->block_shuffle = false;
			fr->sources = list_make1(fr->relname);
			ereport(NOTICE,
					(errmsg("%s is read in its own order, without the block-level shuffle",
							fr->relname),
					 errdetail("Only tables and materialized views can be read block-shuffled; rows are still shuffled within the buffer of %d rows.",
							   fr->opts.buffer_rows)));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("cannot train on \"%s\"", get_rel_name(fr->relid)),
					 errdetail("dltrain.fit reads tables, partitioned tables, materialized views, views and foreign tables.")));
	}
}

static void
EmitEpoch(ReturnSetInfo *rsinfo, int epoch, double loss, double vloss, double vmetric,
		  int64 rows, double secs, bytea *model)
{
	Datum		values[8];
	bool		nulls[8] = {false};

	values[0] = Int32GetDatum(epoch);
	values[1] = Float8GetDatum(loss);
	values[2] = Float8GetDatum(vloss);
	values[3] = Float8GetDatum(vmetric);
	nulls[2] = nulls[3] = isnan(vloss);
	values[4] = Int64GetDatum(rows);
	values[5] = Float8GetDatum(secs);
	values[6] = Float8GetDatum(secs > 0 ? rows / secs : 0);
	values[7] = PointerGetDatum(model);
	nulls[7] = (model == NULL);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* Validation loss and metric of the current network. */
static void
Validate(FitRun *fr, DltTrainer *t, double *vloss, double *vmetric)
{
	double		loss = 0,
				score = 0;

	if (fr->val.n == 0)
	{
		*vloss = *vmetric = NAN;
		return;
	}
	for (int64 start = 0; start < fr->val.n; start += t->B)
	{
		int			bs = (int) Min((int64) t->B, fr->val.n - start);
		double		s;

		memcpy(t->xb, fr->val.x + start * fr->D, sizeof(float) * bs * fr->D);
		for (int i = 0; i < bs; i++)
		{
			int64		y = fr->val.y[start + i];

			if (fr->task == DLT_TASK_CLASSIFICATION)
				t->yb[i] = fr->classes.rank[y];
			else
				t->tb[i] = (float) DltLabelTarget(y, fr->label_kind);
		}
		loss += DltTrainerEval(t, bs, &s) * bs;
		score += s;
		CHECK_FOR_INTERRUPTS();
	}
	*vloss = loss / fr->val.n;
	*vmetric = fr->task == DLT_TASK_CLASSIFICATION ? score / fr->val.n : sqrt(score / fr->val.n);
}

static void
SaveToCatalog(FitRun *fr, const char *name, ArrayType *features, const char *label,
			  Jsonb *options, bytea *model, double loss, double vloss, double vmetric)
{
	Oid			types[8] = {TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID, JSONBOID, JSONBOID, JSONBOID, InvalidOid};
	Datum		values[8];
	char		nulls[8] = "        ";
	char	   *metrics;
	char	   *provenance;
	int			rc;

	types[7] = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("model"),
							   ObjectIdGetDatum(get_namespace_oid("dltrain", false)));
	metrics = psprintf("{\"loss\": %s, \"validation_loss\": %s, \"validation_metric\": %s, \"epochs\": %d}",
					   isnan(loss) ? "null" : psprintf("%.9g", loss), isnan(vloss) ? "null" : psprintf("%.9g", vloss),
					   isnan(vmetric) ? "null" : psprintf("%.9g", vmetric), fr->opts.epochs);
	provenance = psprintf("{\"rows\": %lld, \"validation_rows\": %lld, \"skipped\": %lld, \"snapshot_xmin\": %u, \"content_hash\": \"%016llx\"}",
						  (long long) fr->rows, (long long) fr->val.n, (long long) fr->skipped,
						  fr->snapshot->xmin, (unsigned long long) fr->content_hash);
	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(fr->relname);
	values[2] = PointerGetDatum(features);
	values[3] = CStringGetTextDatum(label);
	values[4] = options ? JsonbPGetDatum(options) : DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
	values[5] = DirectFunctionCall1(jsonb_in, CStringGetDatum(metrics));
	values[6] = DirectFunctionCall1(jsonb_in, CStringGetDatum(provenance));
	values[7] = PointerGetDatum(model);
	rc = SPI_execute_with_args("INSERT INTO dltrain.models (name, relation, features, label, options, metrics, provenance, model) "
							   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
							   8, types, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not store the model in dltrain.models: %s", SPI_result_code_string(rc));
}

/* The second level of the shuffle: the buffer in random order, in mini-batches. */
static void
TrainBuffer(FitRun *fr, DltTrainer *t, dlk_rng *rng, const float *buf_x,
			const int64 *buf_y, int filled)
{
	uint32	   *perm = palloc(sizeof(uint32) * filled);

	for (int i = 0; i < filled; i++)
		perm[i] = i;
	if (fr->opts.shuffle && dlk_shuffle_u32(rng, perm, filled) != DLK_OK)
		DltKernelAborted();
	for (int start = 0; start < filled; start += t->B)
	{
		int			bs = Min(t->B, filled - start);

		for (int i = 0; i < bs; i++)
		{
			uint32		k = perm[start + i];

			memcpy(t->xb + (Size) i * fr->D, buf_x + (Size) k * fr->D, sizeof(float) * fr->D);
			if (fr->task == DLT_TASK_CLASSIFICATION)
				t->yb[i] = fr->classes.rank[buf_y[k]];
			else
				t->tb[i] = (float) DltLabelTarget(buf_y[k], fr->label_kind);
		}
		DltTrainerStep(t, bs);
	}
	pfree(perm);
}

/* Trains on a relation, epoch by epoch, without caching it: one row per epoch. */
PG_FUNCTION_INFO_V1(fit);
Datum
fit(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	FitRun	   *fr;
	MemoryContext cxt;
	MemoryContext old;
	ArrayType  *features;
	char	   *label;
	Jsonb	   *options = NULL;
	char	   *name = NULL;
	DltModel   *m;
	DltTrainer	t;
	dlk_rng		rng;
	float	   *buf_x;
	int64	   *buf_y;
	int			cap;
	bytea	   *model = NULL;
	double		vloss = NAN,
				vmetric = NAN;

	DltCheckSqlVersion();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dltrain.fit needs a relation, feature columns and a label column")));
	InitMaterializedSRF(fcinfo, 0);
	cxt = AllocSetContextCreate(rsinfo->econtext->ecxt_per_query_memory,
								"dltrain fit", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	fr = palloc0(sizeof(FitRun));
	fr->cxt = cxt;
	fr->val.cxt = cxt;
	fr->rowcxt = AllocSetContextCreate(cxt, "dltrain fit rows", ALLOCSET_DEFAULT_SIZES);
	fr->relid = PG_GETARG_OID(0);
	features = PG_GETARG_ARRAYTYPE_P_COPY(1);
	label = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		options = PG_GETARG_JSONB_P_COPY(3);
	if (!PG_ARGISNULL(4))
		name = text_to_cstring(PG_GETARG_TEXT_PP(4));
	DltOptionsParse(&fr->opts, options, true);
	if (fr->opts.buffer_rows == 0)
		fr->opts.buffer_rows = 65536;

	DltLockRelation(fr->relid);
	fr->relkind = get_rel_relkind(fr->relid);
	fr->relname = DltQualifiedName(fr->relid);
	fr->select_list = DltSelectList(fr->relid, features, label, &fr->label_type, "dltrain.fit");
	fr->label_kind = DltLabelKindOf(fr->label_type);
	fr->task = fr->opts.task;
	if (fr->task == DLT_TASK_AUTO)
		fr->task = fr->label_kind == DLT_LABEL_FLOAT ? DLT_TASK_REGRESSION : DLT_TASK_CLASSIFICATION;
	if (fr->task == DLT_TASK_REGRESSION && fr->label_kind == DLT_LABEL_TEXT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("text labels cannot be used for regression")));
	CheckRelation(fr);

	DltProgressStart(cxt, "fit", fr->relid);
	fr->snapshot = RegisterSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	FirstPass(fr);

	/* the model: classes, architecture, statistics */
	m = palloc0(sizeof(DltModel));
	m->task = fr->task;
	m->label_kind = fr->label_kind;
	m->label_type = fr->label_type;
	m->opts = fr->opts;
	m->rows_used = fr->rows;
	m->rows_skipped = fr->skipped;
	if (fr->task == DLT_TASK_CLASSIFICATION)
	{
		DltClassTableFinish(&fr->classes, fr->label_kind, m, fr->rows);
		DltWarnManyClasses(m->n_classes, fr->rows, fr->label_kind, fr->opts.task);
	}
	DltModelSetArch(m, fr->D, fr->task == DLT_TASK_CLASSIFICATION ? m->n_classes : 1);
	DltTrainerInit(&t, m, (int) Min((int64) fr->opts.batch_size, fr->rows), fr->cxt);
	t.quiet = true;				/* fit reports its epochs itself */
	m->rows_validation = fr->val.n;
	if (fr->val.n > 0)
	{
		m->val_loss = palloc0(sizeof(float) * Max(fr->opts.epochs, 1));
		m->val_metric = palloc0(sizeof(float) * Max(fr->opts.epochs, 1));
	}
	fr->fmean = palloc(sizeof(float) * fr->D);
	fr->fscale = palloc(sizeof(float) * fr->D);
	if (fr->opts.normalize)
	{
		DltStatsFinish(m, fr->rows, fr->sum, fr->sq, fr->shift, fr->fmean, fr->fscale);
		for (int64 i = 0; i < fr->val.n; i++)
		{
			if ((i & 65535) == 0)
				CHECK_FOR_INTERRUPTS();
			dlk_standardize(fr->val.x + i * fr->D, fr->fmean, fr->fscale, fr->D);
		}
	}

	/* the shuffle buffer */
	cap = (int) Min((int64) fr->opts.buffer_rows, fr->rows);
	DltBudgetCheck(fr->cxt, mul_size(cap, add_size(mul_size(fr->D, sizeof(float)), 8)),
				   psprintf("a shuffle buffer of %d rows", cap));
	buf_x = palloc_extended(sizeof(float) * (Size) cap * fr->D, MCXT_ALLOC_HUGE);
	buf_y = palloc_extended(sizeof(int64) * (Size) cap, MCXT_ALLOC_HUGE);
	dlk_rng_seed(&rng, (uint64) fr->opts.seed ^ UINT64CONST(0x53485546464c4521));

	for (int e = 0; e < fr->opts.epochs; e++)
	{
		RowSource	src;
		int			filled = 0;
		int64		rowno = 0;
		double		secs;

		DltProgressPhase(DLT_PHASE_TRAINING);
		DltTrainerEpochBegin(&t, e, fr->rows);
		OpenSources(fr, &src, true, e);
		while (FetchRows(&src, &rng))
		{
			for (uint64 r = 0; r < SPI_processed; r++)
			{
				int64		label_slot;
				uint64		hash;
				bool		use;
				MemoryContext old = MemoryContextSwitchTo(fr->rowcxt);

				rowno++;
				use = ReadRow(fr, r, &label_slot, &hash, rowno, false) && !IsValidation(fr, hash);
				MemoryContextSwitchTo(old);
				MemoryContextReset(fr->rowcxt);
				if (!use)
					continue;
				if (fr->opts.normalize)
					dlk_standardize(fr->row, fr->fmean, fr->fscale, fr->D);
				memcpy(buf_x + (Size) filled * fr->D, fr->row, sizeof(float) * fr->D);
				buf_y[filled++] = label_slot;
				if (filled == cap)
				{
					TrainBuffer(fr, &t, &rng, buf_x, buf_y, filled);
					filled = 0;
				}
			}
			SPI_freetuptable(SPI_tuptable);
		}
		if (filled > 0)
			TrainBuffer(fr, &t, &rng, buf_x, buf_y, filled);
		secs = DltTrainerEpochEnd(&t);
		Validate(fr, &t, &vloss, &vmetric);
		if (fr->val.n > 0)
		{
			m->val_loss[e] = (float) vloss;
			m->val_metric[e] = (float) vmetric;
		}
		if (dltrain_verbose)	/* the rows returned say it all otherwise */
			ereport(NOTICE,
					(errmsg("epoch %d/%d: loss %.6f%s, %lld rows, %.0f rows/s",
							e + 1, fr->opts.epochs, m->epoch_loss[e],
							isnan(vloss) ? "" : psprintf(", validation loss %.6f, validation %s %.4f",
														 vloss, fr->task == DLT_TASK_CLASSIFICATION ? "accuracy" : "RMSE",
														 vmetric),
							(long long) t.rows, secs > 0 ? t.rows / secs : 0)));
		if (e == fr->opts.epochs - 1)
			model = ModelEncode(m);
		EmitEpoch(rsinfo, e + 1, m->epoch_loss[e], vloss, vmetric, t.rows, secs, model);
	}
	if (model == NULL)
	{
		model = ModelEncode(m);
		EmitEpoch(rsinfo, 0, NAN, NAN, NAN, 0, 0, model);
	}
	if (name)
		SaveToCatalog(fr, name, features, label, options, model,
					  fr->opts.epochs > 0 ? m->epoch_loss[fr->opts.epochs - 1] : NAN, vloss, vmetric);

	SPI_finish();
	UnregisterSnapshot(fr->snapshot);
	MemoryContextSwitchTo(old);
	return (Datum) 0;
}
