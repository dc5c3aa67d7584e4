/*
 * grid.c — dltrain.grid_search(): model selection over a relation in one
 * pass.
 *
 * The relation is read once, through an SPI cursor with the caller's
 * privileges (SELECT rights, row-level security and MVCC apply; the SQL is
 * built from quoted identifiers), into one row cache; every configuration
 * then trains from that cache, side by side (DltTrainMany): one canonical
 * order, one set of statistics, one shuffled batch stream per distinct
 * seed and batch size, and the first layers of the configurations that
 * share a stream in one GEMM.
 *
 * Configurations: a grid {"option": [values], ...} (the cartesian product,
 * in the order the keys sort, last key fastest), or with "samples": N that
 * many random configurations, each option drawn from a list of values or
 * from a range {"low": a, "high": b, "log": true|false} (log-uniform for
 * learning rates; integers when both bounds are integers and "log" is
 * false), from "seed".  Each configuration's options are the base options
 * with the configuration's values on top and the validation fraction.
 *
 * Successive halving (halving_eta >= 2): after rung epochs r, r*eta,
 * r*eta^2, ... (r = halving_min_epochs) only the best 1/eta of the
 * configurations still training go on; the others are reported as pruned.
 * This is approximate model selection: a configuration that starts slowly
 * may be dropped.
 *
 * A configuration whose loss becomes NaN or infinite is reported as
 * diverged, has no model, and does not disturb the others.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "budget.h"
#include "engine.h"
#include "jsonutil.h"
#include "progress.h"
#include "relation.h"
#include "rows.h"
#include "rowsource.h"
#include "version.h"

#define MAX_CONFIGURATIONS 10000
#define FETCH_ROWS 1024

/* one option of the grid: its name and its candidate values (JSON text) */
typedef struct GridKey
{
	char	   *key;
	int			n;
	char	  **values;			/* list mode */
	bool		range;			/* random mode: a range */
	double		low;
	double		high;
	bool		log;
	bool		integer;
} GridKey;

static void
GridError(const char *msg, const char *key)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg(msg, key),
			 errhint("A grid is a JSON object of option lists, e.g. {\"lr\": [0.01, 0.001], \"hidden\": [[32], [64, 32]]}, or {\"samples\": 8, \"lr\": {\"low\": 0.0001, \"high\": 0.1, \"log\": true}}.")));
}

static char *
ValueText(JsonbValue *v)
{
	Jsonb	   *j = JsonbValueToJsonb(v);

	return JsonbToCString(NULL, &j->root, VARSIZE(j));
}

static double
NumberOf(JsonbValue *v, const char *key)
{
	if (v == NULL || v->type != jbvNumeric)
		GridError("range of grid option \"%s\" needs numeric \"low\" and \"high\"", key);
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
}

/* Parses the grid; returns the keys, sets *samples (0: cartesian) and *seed. */
static GridKey *
ParseGrid(Jsonb *grid, int *nkeys, int *samples, int64 *seed)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	GridKey    *keys;
	int			n = 0;

	if (!JB_ROOT_IS_OBJECT(grid) || JB_ROOT_IS_SCALAR(grid))
		GridError("the grid must be a JSON object%s", "");
	keys = palloc0(sizeof(GridKey) * Max(JB_ROOT_COUNT(grid), 1));
	*samples = 0;
	*seed = 0;
	it = JsonbIteratorInit(&grid->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "samples") == 0 || strcmp(key, "seed") == 0)
		{
			double		d;

			if (v.type != jbvNumeric)
				GridError("grid entry \"%s\" must be an integer", key);
			d = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v.val.numeric)));
			if (d != floor(d) || fabs(d) > 9e15 ||
				(key[1] == 'a' && (d < 1 || d > MAX_CONFIGURATIONS)))
				GridError("grid entry \"%s\" is out of range", key);
			if (key[1] == 'a')
				*samples = (int) d;
			else
				*seed = (int64) d;
			continue;
		}
		if (strcmp(key, "validation_fraction") == 0)
			GridError("\"%s\" is an argument of grid_search, not a grid option", key);
		keys[n].key = key;
		if (v.type == jbvBinary && JsonContainerIsArray(v.val.binary.data))
		{
			JsonbIterator *it2 = JsonbIteratorInit(v.val.binary.data);
			JsonbValue	e;
			int			cap = JsonContainerSize(v.val.binary.data);

			if (cap == 0)
				GridError("grid option \"%s\" has no values", key);
			keys[n].values = palloc(sizeof(char *) * cap);
			while ((tok = JsonbIteratorNext(&it2, &e, true)) != WJB_DONE)
				if (tok == WJB_ELEM)
					keys[n].values[keys[n].n++] = ValueText(&e);
		}
		else if (v.type == jbvBinary && JsonContainerIsObject(v.val.binary.data))
		{
			JsonbValue *lg = DltJsonbField(v.val.binary.data, "log");

			keys[n].range = true;
			keys[n].low = NumberOf(DltJsonbField(v.val.binary.data, "low"), key);
			keys[n].high = NumberOf(DltJsonbField(v.val.binary.data, "high"), key);
			keys[n].log = lg != NULL && lg->type == jbvBool && lg->val.boolean;
			keys[n].integer = !keys[n].log && keys[n].low == floor(keys[n].low) &&
				keys[n].high == floor(keys[n].high) && keys[n].high - keys[n].low < 2147483648.0;
			if (!(keys[n].low <= keys[n].high) || (keys[n].log && keys[n].low <= 0))
				GridError("range of grid option \"%s\" needs low <= high (and low > 0 with \"log\")", key);
		}
		else
			GridError("grid option \"%s\" must be a list of values or a range", key);
		n++;
	}
	for (int i = 0; i < n; i++)
		if (keys[i].range && *samples == 0)
			GridError("grid option \"%s\" is a range: ranges need \"samples\"", keys[i].key);
	*nkeys = n;
	return keys;
}

/*
 * The share of rows held out: the argument, or else the options'
 * validation_fraction, or else 0.2.  Given in both, they must agree: one
 * silently overriding the other would train on other rows than asked.
 */
static double
ValidationFraction(Jsonb *options, bool arg_null, double arg)
{
	JsonbValue *v = NULL;
	double		opt;

	if (JB_ROOT_IS_OBJECT(options))
		v = getKeyJsonValueFromContainer(&options->root, "validation_fraction",
										 strlen("validation_fraction"), NULL);
	if (v == NULL)
		return arg_null ? 0.2 : arg;
	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"validation_fraction\" must be a number")));
	opt = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
	if (!arg_null && opt != arg)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("validation_fraction is %g in the options but %g as an argument", opt, arg),
				 errhint("Give it once: in the options, or as the argument validation_fraction.")));
	return opt;
}

/* The configurations, each a jsonb object of the grid's values. */
static Jsonb **
Configurations(GridKey *keys, int nkeys, int samples, int64 seed, int *K)
{
	Jsonb	  **cfg;
	double		total = 1;
	dlk_rng		rng;
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext scratch = AllocSetContextCreate(cxt, "dltrain grid_search scratch",
												  ALLOCSET_DEFAULT_SIZES);
	Jsonb	   *one;

	if (samples == 0)
	{
		for (int i = 0; i < nkeys; i++)
			total *= keys[i].n;
		if (total > MAX_CONFIGURATIONS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("the grid has %.0f configurations, more than the limit of %d",
							total, MAX_CONFIGURATIONS),
					 errhint("Use \"samples\" for a random search.")));
		*K = (int) total;
	}
	else
		*K = samples;
	dlk_rng_seed(&rng, (uint64) seed ^ UINT64CONST(0x47524944));
	cfg = palloc(sizeof(Jsonb *) * *K);
	for (int k = 0; k < *K; k++)
	{
		StringInfoData b;
		int			rest = k;

		initStringInfo(&b);
		appendStringInfoChar(&b, '{');
		/* mixed radix, last key fastest */
		for (int i = 0; i < nkeys; i++)
		{
			GridKey    *g = &keys[i];
			int			stride = 1;

			for (int j = i + 1; j < nkeys && samples == 0; j++)
				stride *= keys[j].n;
			if (i > 0)
				appendStringInfoString(&b, ", ");
			escape_json(&b, g->key);
			appendStringInfoString(&b, ": ");
			if (samples == 0)
			{
				appendStringInfoString(&b, g->values[rest / stride]);
				rest %= stride;
			}
			else if (!g->range)
				appendStringInfoString(&b, g->values[dlk_rng_below(&rng, g->n)]);
			else
			{
				double		u = dlk_rng_uniform(&rng);
				double		x;

				if (g->log)
					x = exp(log(g->low) + u * (log(g->high) - log(g->low)));
				else if (g->integer)
					x = g->low + (double) dlk_rng_below(&rng, (uint64) (g->high - g->low) + 1);
				else
					x = g->low + u * (g->high - g->low);
				if (g->integer)
					appendStringInfo(&b, "%.0f", x);
				else
					appendStringInfo(&b, "%.6g", x);
			}
		}
		appendStringInfoChar(&b, '}');
		/* the parser's garbage goes with scratch */
		CHECK_FOR_INTERRUPTS();
		MemoryContextSwitchTo(scratch);
		one = DltJsonbFromCString(b.data);
		MemoryContextSwitchTo(cxt);
		DltBudgetCheck(cxt, VARSIZE(one), psprintf("the %d configurations of the grid", *K));
		cfg[k] = palloc(VARSIZE(one));
		memcpy(cfg[k], one, VARSIZE(one));
		pfree(b.data);
		if (k % 64 == 63)
			MemoryContextReset(scratch);
	}
	MemoryContextDelete(scratch);
	return cfg;
}

typedef struct Entry
{
	DltSelectResult *res;
	Jsonb	   *config;
	int			group;			/* 0 completed, 1 pruned, 2 diverged */
	double		key;			/* lower is better */
} Entry;

static int
CompareEntries(const void *pa, const void *pb)
{
	const Entry *a = pa;
	const Entry *b = pb;

	if (a->group != b->group)
		return a->group - b->group;
	if (a->group == 1 && a->res->pruned_epoch != b->res->pruned_epoch)
		return b->res->pruned_epoch - a->res->pruned_epoch;
	if (a->key != b->key)
	{
		if (isnan(a->key))
			return 1;
		if (isnan(b->key))
			return -1;
		return a->key < b->key ? -1 : 1;
	}
	return a->res->index - b->res->index;
}

static void
SaveModel(const char *name, const char *relname, ArrayType *features, const char *label,
		  Jsonb *options, bytea *model, const Entry *e, int rank, int64 skipped,
		  TransactionId xmin)
{
	DltModel   *m = e->res->m;
	DltCatalogRow row = {0};

	row.name = rank == 1 ? name : psprintf("%s#%d", name, rank);
	row.relation = relname;
	row.features = features;
	row.label = label;
	row.options = options;
	row.metrics = psprintf("{\"rank\": %d, \"loss\": %s, \"validation_loss\": %s, \"validation_metric\": %s, \"epochs\": %d}",
						   rank, isnan(e->res->loss) ? "null" : psprintf("%.9g", e->res->loss),
						   isnan(e->res->val_loss) ? "null" : psprintf("%.9g", e->res->val_loss),
						   isnan(e->res->val_metric) ? "null" : psprintf("%.9g", e->res->val_metric),
						   e->res->epochs_trained);
	row.provenance = psprintf("{\"rows\": %lld, \"validation_rows\": %lld, \"skipped\": %lld, \"snapshot_xmin\": %u, \"grid_search\": true}",
							  (long long) m->rows_used, (long long) m->rows_validation,
							  (long long) skipped, xmin);
	row.model = model;
	DltCatalogInsert(&row);
}

PG_FUNCTION_INFO_V1(grid_search);
Datum
grid_search(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt;
	MemoryContext old;
	Oid			relid;
	ArrayType  *features;
	char	   *label;
	Jsonb	   *base;
	Jsonb	   *grid;
	double		vfrac;
	int			eta = 0;
	int			min_epochs = 1;
	char	   *name = NULL;
	char	   *relname;
	char	   *select_list;
	Oid			label_type;
	GridKey    *keys;
	int			nkeys;
	int			samples;
	int64		seed;
	int			K;
	Jsonb	  **cfg;
	Jsonb	  **full;
	DltOptions *opts;
	DltSelectResult *res;
	DltSelectConfig sc = {0};
	DltRows    *rows;
	Entry	   *entries;
	Snapshot	snapshot;
	Portal		portal;
	char	   *sql;
	bool		classify;
	bool		started = false;
	DltTask		task;
	MemoryContext rowcxt;
	MemoryContext scratch;

	DltCheckSqlVersion();
	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("dltrain.grid_search needs a relation, feature columns, a label column, options and a grid")));
	InitMaterializedSRF(fcinfo, 0);
	cxt = AllocSetContextCreate(rsinfo->econtext->ecxt_per_query_memory,
								"dltrain grid_search", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	/* in cxt, not on the stack: the spill file's close callback points to it */
	rows = palloc0(sizeof(DltRows));
	relid = PG_GETARG_OID(0);
	features = PG_GETARG_ARRAYTYPE_P_COPY(1);
	label = text_to_cstring(PG_GETARG_TEXT_PP(2));
	base = PG_GETARG_JSONB_P_COPY(3);
	grid = PG_GETARG_JSONB_P_COPY(4);
	vfrac = ValidationFraction(base, PG_ARGISNULL(5), PG_ARGISNULL(5) ? 0 : PG_GETARG_FLOAT8(5));
	if (!PG_ARGISNULL(6))
		eta = PG_GETARG_INT32(6);
	if (!PG_ARGISNULL(7))
		min_epochs = PG_GETARG_INT32(7);
	if (!PG_ARGISNULL(8))
		name = text_to_cstring(PG_GETARG_TEXT_PP(8));
	if (!(vfrac >= 0 && vfrac <= 0.9))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("validation_fraction must be in [0, 0.9]")));
	if (eta == 1 || eta < 0 || eta > 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("halving_eta must be at least 2 (or NULL for no halving)")));
	if (min_epochs < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("halving_min_epochs must be at least 1")));

	/* the configurations and their full options */
	keys = ParseGrid(grid, &nkeys, &samples, &seed);
	cfg = Configurations(keys, nkeys, samples, seed, &K);
	full = palloc(sizeof(Jsonb *) * K);
	opts = palloc(sizeof(DltOptions) * K);
	res = palloc0(sizeof(DltSelectResult) * K);
	scratch = AllocSetContextCreate(cxt, "dltrain grid_search scratch", ALLOCSET_DEFAULT_SIZES);
	for (int k = 0; k < K; k++)
	{
		StringInfoData vb;
		Jsonb	   *vf;
		Jsonb	   *one;

		/* the configurations stay; what builds them goes every 64 */
		CHECK_FOR_INTERRUPTS();
		if (k % 64 == 0)
			MemoryContextReset(scratch);
		MemoryContextSwitchTo(scratch);
		initStringInfo(&vb);
		appendStringInfoString(&vb, "{\"validation_fraction\": ");
		DltAppendJsonDouble(&vb, vfrac);
		appendStringInfoChar(&vb, '}');
		vf = DltJsonbFromCString(vb.data);

		one = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(base),
												 JsonbPGetDatum(cfg[k])));
		one = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(one),
												 JsonbPGetDatum(vf)));
		MemoryContextSwitchTo(cxt);
		DltBudgetCheck(cxt, VARSIZE(one), psprintf("the options of %d configurations", K));
		full[k] = palloc(VARSIZE(one));
		memcpy(full[k], one, VARSIZE(one));
		DltOptionsParse(&opts[k], full[k], false);
	}
	MemoryContextDelete(scratch);

	/* one read of the relation into the row cache */
	DltLockRelation(relid);
	relname = DltQualifiedName(relid);
	select_list = DltSelectList(relid, features, label, &label_type, "dltrain.grid_search");
	task = DltResolveTask(opts[0].task, DltLabelKindOf(label_type));
	rowcxt = AllocSetContextCreate(cxt, "dltrain grid_search rows", ALLOCSET_DEFAULT_SIZES);
	DltProgressStart(cxt, "grid_search", relid);
	DltProgressPhase(DLT_PHASE_READING);
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sql = psprintf("SELECT %s FROM %s", select_list, relname);
	PushActiveSnapshot(snapshot);
	portal = SPI_cursor_open_with_args(NULL, sql, 0, NULL, NULL, NULL, true, 0);
	PopActiveSnapshot();
	for (;;)
	{
		SPI_cursor_fetch(portal, true, FETCH_ROWS);
		if (SPI_processed == 0)
			break;
		if (!started)
		{
			DltRowsInit(rows, cxt, cxt, SPI_gettypeid(SPI_tuptable->tupdesc, 1), label_type, task);
			started = true;
		}
		MemoryContextSwitchTo(rowcxt);
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool		xnull,
						ynull;
			Datum		x = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &xnull);
			Datum		y = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &ynull);

			/* a NULL element of ARRAY[col, ...]: the row is skipped */
			if (!xnull && array_contains_nulls(DatumGetArrayTypeP(x)))
				xnull = true;
			DltRowsAppend(rows, cxt, x, xnull, y, ynull);
		}
		MemoryContextSwitchTo(cxt);
		MemoryContextReset(rowcxt);
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	if (!started || rows->cache.n_rows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("relation %s has no rows to train on", relname),
				 errdetail("It returned %lld rows, all with NULL features or label.",
						   (long long) (started ? rows->rows_skipped : 0))));

	/* every configuration, side by side */
	sc.tolerate = true;
	sc.eta = eta;
	sc.min_epochs = min_epochs;
	DltCacheFinishInput(&rows->cache);
	DltTrainMany(DltCacheSourceCreate(rows), opts, K, &sc, res);
	DltNoticeSkipped("grid_search", rows->rows_skipped, rows->cache.n_rows);

	/* the leaderboard */
	classify = rows->task == DLT_TASK_CLASSIFICATION;
	entries = palloc(sizeof(Entry) * K);
	for (int k = 0; k < K; k++)
	{
		Entry	   *e = &entries[k];
		double		metric = res[k].val_metric;

		e->res = &res[k];
		e->config = full[k];
		e->group = res[k].diverged ? 2 : res[k].pruned_epoch > 0 ? 1 : 0;
		/* validation accuracy (higher is better), else the validation or training loss */
		if (vfrac > 0 && classify)
			e->key = -metric;
		else if (vfrac > 0)
			e->key = res[k].val_loss;
		else
			e->key = res[k].loss;
	}
	qsort(entries, K, sizeof(Entry), CompareEntries);
	for (int i = 0; i < K; i++)
	{
		Entry	   *e = &entries[i];
		DltSelectResult *r = e->res;
		Datum		values[9];
		bool		nulls[9] = {false};
		bytea	   *model = r->m ? ModelEncode(r->m) : NULL;
		char	   *status;

		if (r->diverged)
			status = psprintf("diverged in epoch %d", r->diverged_epoch);
		else if (r->pruned_epoch > 0)
			status = psprintf("pruned after epoch %d", r->pruned_epoch);
		else if (r->stopped_epoch > 0)
			status = psprintf("stopped early after epoch %d", r->stopped_epoch);
		else
			status = pstrdup("trained");
		values[0] = Int32GetDatum(i + 1);
		values[1] = JsonbPGetDatum(e->config);
		values[2] = Float8GetDatum(r->val_metric);
		nulls[2] = isnan(r->val_metric);
		values[3] = Float8GetDatum(r->val_loss);
		nulls[3] = isnan(r->val_loss);
		values[4] = Float8GetDatum(r->loss);
		nulls[4] = isnan(r->loss);
		values[5] = Int32GetDatum(r->epochs_trained);
		values[6] = CStringGetTextDatum(status);
		values[7] = Float8GetDatum(r->seconds);
		values[8] = PointerGetDatum(model);
		nulls[8] = model == NULL;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		if (name != NULL && model != NULL)
			SaveModel(name, relname, features, label, e->config, model, e, i + 1,
					  rows->rows_skipped, snapshot->xmin);
	}

	SPI_finish();
	UnregisterSnapshot(snapshot);
	MemoryContextSwitchTo(old);
	/* the tuplestore holds copies: free the cache and the models now */
	MemoryContextDelete(cxt);
	return (Datum) 0;
}
