/*
 * train.c — the dltrain.train_mlp aggregate, its multi-model sibling
 * train_mlp_multi, and the trainer (one model's network and optimizer).
 *
 * Training is an aggregate.  The transition function only appends each row,
 * converted once to float32, to the row cache (cache.c); the final function
 * trains every epoch from that cache (engine.c), so multi-epoch training
 * never runs the query again.
 *
 * Merging.  Several train_mlp calls of one Agg node over the same features
 * and label (the same expressions and FILTER; their options may differ)
 * share one row cache: the first of them (the leader) caches the rows, the
 * others (followers) only check their options, and the first final call
 * trains all of them side by side (DltTrainMany); each then returns its own
 * model.  This happens at execution, whether or not the planner hook
 * (planner.c) ran, and needs nothing from the planner: the executor calls
 * the transition functions of one input row for one group one after the
 * other in the order of the Agg node's transition states, so the leader's
 * state last touched is the group's.  It is limited to Agg nodes without
 * grouping sets and to calls without DISTINCT or ORDER BY (those run their
 * transitions aggregate by aggregate).  dltrain.enable_merge turns it off.
 *
 * Reproducibility.  A scan does not promise an order (synchronized scans,
 * parallel plans), so before the seeded shuffle the rows go into a canonical
 * order by content (engine.c); the model depends only on the multiset of
 * rows, the options and the seed (and on dltrain.threads, which can change
 * BLAS summation order).  With "shuffle": false rows are used in the order
 * they arrived, which is what a user asking for no shuffle means.
 *
 * Memory.  Everything a training allocates lives in one memory context under
 * the aggregate's context; the per-batch loop allocates nothing.  An error or
 * a cancel (CHECK_FOR_INTERRUPTS after every mini-batch, and inside a long
 * step the kernels' abort callback: DLK_EABORT, then DltKernelAborted)
 * releases it all.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>
#include <signal.h>
#include <pthread.h>

#include "catalog/pg_aggregate.h"
#include "catalog/pg_type.h"
#include "executor/nodeAgg.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "optimizer/optimizer.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "dltrain.h"
#include "version.h"

bool		dltrain_enable_merge = true;

/* one model trained from a state's cache */
typedef struct TrainMember
{
	DltOptions	opts;
	bytea	   *result;			/* encoded, in the aggregate's context */
	int			diverged_epoch; /* 0: trained */
} TrainMember;

typedef struct TrainState
{
	MemoryContext aggcxt;		/* holds this struct, options and results */
	MemoryContext mcxt;			/* owns the cache and everything of training */
	bool		consumed;		/* its final function ran */
	bool		trained;		/* its members are trained: mcxt is gone */
	bool		multi;			/* train_mlp_multi: one member per configuration */
	DltRows		rows;
	Jsonb	   *options;		/* first row's options (a copy), or NULL */
	DltOptions	opts;
	/* merging */
	struct TrainState *leader;	/* a follower: the state whose cache it shares */
	int			member_no;		/* a follower: its member in the leader */
	int			n_members;		/* the models this state's cache trains */
	int			max_members;
	TrainMember *members;
} TrainState;

/*
 * What a train_mlp transition function knows about its siblings
 * (fn_extra of its FmgrInfo, in the Agg node's lifetime).
 */
typedef struct MergeGroup
{
	TrainState *current;		/* the leader's state last called */
} MergeGroup;

typedef struct MergeSlot
{
	bool		follower;
	MergeGroup *group;			/* NULL: trains alone */
} MergeSlot;

PGDLLEXPORT Datum train_mlp_sfunc(PG_FUNCTION_ARGS);

/* ---- merging at execution ---- */

/*
 * A train_mlp call that can share: plain (no ORDER BY, DISTINCT), and
 * whose features, label and FILTER are not volatile (each call evaluates
 * them itself, so volatile ones could differ between siblings).
 */
static bool
Mergeable(AggStatePerTrans pt)
{
	Aggref	   *a = pt->aggref;

	return pt->transfn.fn_addr == train_mlp_sfunc &&
		a->aggorder == NIL && a->aggdistinct == NIL &&
		a->aggkind == AGGKIND_NORMAL && list_length(a->args) >= 2 &&
		!contain_volatile_functions((Node *) linitial(a->args)) &&
		!contain_volatile_functions((Node *) lsecond(a->args)) &&
		!contain_volatile_functions((Node *) a->aggfilter);
}

/* Same features, label and FILTER (the options may differ)? */
static bool
SameInputs(AggStatePerTrans a, AggStatePerTrans b)
{
	return equal(linitial(a->aggref->args), linitial(b->aggref->args)) &&
		equal(lsecond(a->aggref->args), lsecond(b->aggref->args)) &&
		equal(a->aggref->aggfilter, b->aggref->aggfilter);
}

/*
 * Finds, on a transition function's first call, whether its aggregate
 * leads or follows a group of mergeable siblings in its Agg node.
 */
static MergeSlot *
GetMergeSlot(FunctionCallInfo fcinfo)
{
	FmgrInfo   *fl = fcinfo->flinfo;
	MergeSlot  *slot = (MergeSlot *) fl->fn_extra;
	AggState   *as;
	int			me = -1;

	if (slot != NULL)
		return slot;
	slot = MemoryContextAllocZero(fl->fn_mcxt, sizeof(MergeSlot));
	fl->fn_extra = slot;
	if (!dltrain_enable_merge || fcinfo->context == NULL || !IsA(fcinfo->context, AggState))
		return slot;
	as = (AggState *) fcinfo->context;
	if (((Agg *) as->ss.ps.plan)->groupingSets != NIL || as->aggstrategy == AGG_MIXED)
		return slot;
	for (int i = 0; i < as->numtrans; i++)
		if (&as->pertrans[i].transfn == fl)
			me = i;
	if (me < 0 || !Mergeable(&as->pertrans[me]))
		return slot;

	/* the leader is the first mergeable sibling with the same inputs */
	for (int i = 0; i < as->numtrans; i++)
	{
		AggStatePerTrans pt = &as->pertrans[i];

		if (i == me || !Mergeable(pt) || !SameInputs(pt, &as->pertrans[me]))
			continue;
		if (i < me)
		{
			MergeSlot  *ls = (MergeSlot *) pt->transfn.fn_extra;

			/*
			 * The leader's transition ran first, for this very row; it found
			 * no group when merging was off then (a volatile argument may
			 * switch dltrain.enable_merge between the calls): train alone.
			 */
			if (ls == NULL || ls->group == NULL)
				return slot;
			slot->follower = true;
			slot->group = ls->group;
			return slot;
		}
		/* a sibling comes later: this one leads */
		slot->group = MemoryContextAllocZero(fl->fn_mcxt, sizeof(MergeGroup));
		return slot;
	}
	return slot;
}

/* ---- transition ---- */

DltTask
DltResolveTask(const DltOptions *opts, DltLabelKind kind)
{
	DltTask		task = opts->task;

	if (task == DLT_TASK_AUTO)
		task = kind == DLT_LABEL_FLOAT ? DLT_TASK_REGRESSION : DLT_TASK_CLASSIFICATION;
	if (task == DLT_TASK_REGRESSION && kind == DLT_LABEL_TEXT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("text labels cannot be used for regression"),
				 errhint("Use \"task\": \"classification\", or a numeric label.")));
	return task;
}

void
DltRowsInit(DltRows *rows, MemoryContext mcxt, MemoryContext root, Oid feattype,
			Oid label_type, DltTask task)
{
	memset(rows, 0, sizeof(DltRows));
	rows->feat_elemtype = get_element_type(feattype);
	if (rows->feat_elemtype != FLOAT4OID && rows->feat_elemtype != FLOAT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("features must be real[] or double precision[], not %s",
						format_type_be(feattype))));
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

static void
AddMember(TrainState *st, const DltOptions *opts)
{
	if (st->n_members == st->max_members)
	{
		st->max_members = Max(4, st->max_members * 2);
		st->members = st->members == NULL ?
			MemoryContextAllocZero(st->aggcxt, sizeof(TrainMember) * st->max_members) :
			repalloc(st->members, sizeof(TrainMember) * st->max_members);
	}
	memset(&st->members[st->n_members], 0, sizeof(TrainMember));
	st->members[st->n_members].opts = *opts;
	st->n_members++;
}

/*
 * The configurations of train_mlp_multi: a JSON array of option objects
 * (an empty object: the defaults).
 */
static void
ParseConfigs(TrainState *st, Jsonb *jb)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			k = 0;

	if (jb == NULL || !JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb) ||
		JB_ROOT_COUNT(jb) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("configurations must be a non-empty JSON array of option objects")));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		DltOptions	o;

		if (tok != WJB_ELEM)
			continue;
		k++;
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("configuration %d is not a JSON object", k)));
		DltOptionsParse(&o, JsonbValueToJsonb(&v), false);
		AddMember(st, &o);
	}
}

static TrainState *
TrainStateCreate(FunctionCallInfo fcinfo, MemoryContext aggcxt, MergeSlot *slot, bool multi)
{
	TrainState *st = MemoryContextAllocZero(aggcxt, sizeof(TrainState));
	Oid			feattype = get_fn_expr_argtype(fcinfo->flinfo, 1);
	Oid			label_type = get_fn_expr_argtype(fcinfo->flinfo, 2);
	Jsonb	   *jb = NULL;
	DltTask		task;
	MemoryContext old;

	st->aggcxt = aggcxt;
	st->multi = multi;
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		jb = PG_GETARG_JSONB_P(3);
		st->options = (Jsonb *) MemoryContextAlloc(aggcxt, VARSIZE(jb));
		memcpy(st->options, jb, VARSIZE(jb));
	}
	old = MemoryContextSwitchTo(aggcxt);
	if (multi)
	{
		ParseConfigs(st, jb);
		st->opts = st->members[0].opts;
	}
	else
		DltOptionsParse(&st->opts, jb, false);
	MemoryContextSwitchTo(old);
	task = DltResolveTask(&st->opts, DltLabelKindOf(label_type));

	/* a follower joins the leader's cache when it trains the same task */
	if (slot != NULL && slot->follower)
	{
		TrainState *L = slot->group->current;

		if (L != NULL && L->leader == NULL && !L->trained && L->rows.task == task)
		{
			st->leader = L;
			st->member_no = L->n_members;
			AddMember(L, &st->opts);
			return st;
		}
	}

	st->mcxt = AllocSetContextCreate(aggcxt, "dltrain training", ALLOCSET_DEFAULT_SIZES);
	/* one budget for the aggregate node: every group's training under aggcxt */
	DltRowsInit(&st->rows, st->mcxt, aggcxt, feattype, label_type, task);
	if (!multi)
		AddMember(st, &st->opts);
	DltProgressStart(st->mcxt, multi ? "train_mlp_multi" : "train_mlp", InvalidOid);
	DltProgressPhase(DLT_PHASE_CACHING);
	DltTestWaitPoint(DLT_WAIT_CACHING);
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
				 errmsg("options of dltrain.%s differ between rows",
						st->multi ? "train_mlp_multi" : "train_mlp"),
				 errdetail("Input row %lld has options different from the first row's.",
						   (long long) st->rows.rows_seen),
				 errhint("Pass the options as a constant.")));
}

/* The transition of train_mlp and train_mlp_multi. */
static Datum
Transition(FunctionCallInfo fcinfo, bool multi)
{
	MemoryContext aggcxt;
	TrainState *st;
	MergeSlot  *slot = NULL;
	int			ctx;

	/* train_mlp_sfunc and train_mlp_multi_sfunc start here */
	DltCheckSqlVersion();
	ctx = AggCheckCallContext(fcinfo, &aggcxt);
	if (ctx == 0)
		elog(ERROR, "train_mlp_sfunc called in non-aggregate context");
	if (ctx == AGG_CONTEXT_WINDOW)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("dltrain.%s cannot be used as a window function",
						multi ? "train_mlp_multi" : "train_mlp")));
	if (!multi)
		slot = GetMergeSlot(fcinfo);

	if (PG_ARGISNULL(0))
		st = TrainStateCreate(fcinfo, aggcxt, slot, multi);
	else
	{
		st = (TrainState *) PG_GETARG_POINTER(0);
		if (st->consumed || st->trained)
			elog(ERROR, "dltrain.train_mlp state was already finalized");
		CheckSameOptions(st, fcinfo);
	}
	if (slot != NULL && slot->group != NULL && !slot->follower)
		slot->group->current = st;
	if (st->leader != NULL)
	{
		/* a follower: the leader cached this row just before */
		if (slot == NULL || slot->group->current != st->leader)
			elog(ERROR, "dltrain: merged training lost its leader");
		st->rows.rows_seen++;
		PG_RETURN_POINTER(st);
	}
	DltRowsAppend(&st->rows, st->mcxt, PG_GETARG_DATUM(1), PG_ARGISNULL(1),
				  PG_GETARG_DATUM(2), PG_ARGISNULL(2));
	PG_RETURN_POINTER(st);
}

/* Appends one row (features, label) to the training's row cache. */
PG_FUNCTION_INFO_V1(train_mlp_sfunc);
Datum
train_mlp_sfunc(PG_FUNCTION_ARGS)
{
	return Transition(fcinfo, false);
}

PG_FUNCTION_INFO_V1(train_mlp_multi_sfunc);
Datum
train_mlp_multi_sfunc(PG_FUNCTION_ARGS)
{
	return Transition(fcinfo, true);
}

/* ---- final ---- */

/*
 * Trains every member of a leader (or multi) state from its cache and keeps
 * the encoded models in the aggregate's context; frees the cache.
 */
static void
TrainMembers(TrainState *st, const char *fname)
{
	MemoryContext traincxt;
	MemoryContext old;
	DltOptions *opts;
	DltSelectResult *res;
	DltSelectConfig cfg = {0};
	int			K = st->n_members;

	if (st->rows.cache.n_rows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("dltrain.%s has no rows to train on", fname),
				 errdetail("All %lld input rows were skipped because their features or label were NULL.",
						   (long long) st->rows.rows_skipped)));

	traincxt = AllocSetContextCreate(st->mcxt, "dltrain model buffers",
									 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(traincxt);
	opts = palloc(sizeof(DltOptions) * K);
	res = palloc(sizeof(DltSelectResult) * K);
	for (int k = 0; k < K; k++)
		opts[k] = st->members[k].opts;
	/* a single train_mlp fails on divergence; merged ones drop that model */
	cfg.tolerate = K > 1 || st->multi;
	DltCacheFinishInput(&st->rows.cache);
	DltTrainMany(&st->rows, opts, K, &cfg, res);
	DltCacheClose(&st->rows.cache);
	/* the models go to the aggregate's context; the buffers go with st->mcxt */
	MemoryContextSwitchTo(st->aggcxt);
	for (int k = 0; k < K; k++)
	{
		st->members[k].diverged_epoch = res[k].diverged_epoch;
		st->members[k].result = res[k].m ? ModelEncode(res[k].m) : NULL;
	}
	MemoryContextSwitchTo(old);

	/*
	 * Free the cache now, not at the end of the query (many groups may train
	 * one after the other).  It was normalized in place anyway, so it could
	 * not feed a second final call: FINALFUNC_MODIFY = READ_WRITE tells the
	 * planner so.
	 */
	MemoryContextDelete(st->mcxt);
	st->mcxt = NULL;
	st->trained = true;
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

/*
 * The NOTICE of the rows a training skipped, once per call site and query
 * (not once per group of a GROUP BY, nor per merged member: the training
 * that owns the cache says it).
 */
static void
ReportSkipped(FunctionCallInfo fcinfo, const char *fname, const TrainState *L)
{
	if (L->rows.rows_skipped == 0 || fcinfo->flinfo->fn_extra != NULL)
		return;
	fcinfo->flinfo->fn_extra = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, 1);
	DltNoticeSkipped(fname, L->rows.rows_skipped, L->rows.cache.n_rows);
}

static TrainState *
FinalState(FunctionCallInfo fcinfo, const char *fname)
{
	TrainState *st;
	MemoryContext aggcxt;

	/* train_mlp_ffunc and train_mlp_multi_ffunc start here */
	DltCheckSqlVersion();
	if (AggCheckCallContext(fcinfo, &aggcxt) == 0)
		elog(ERROR, "train_mlp_ffunc called in non-aggregate context");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("dltrain.%s received no rows", fname),
				 errhint("Check that the query feeding the aggregate returns rows.")));
	st = (TrainState *) PG_GETARG_POINTER(0);
	if (st->consumed)
		elog(ERROR, "dltrain.%s state was already finalized", fname);
	st->consumed = true;
	return st;
}

/* A copy of a member's model in the current context (and the original freed). */
static bytea *
TakeResult(TrainMember *mb)
{
	bytea	   *r = (bytea *) palloc(VARSIZE(mb->result));

	memcpy(r, mb->result, VARSIZE(mb->result));
	pfree(mb->result);
	mb->result = NULL;
	return r;
}

/* Trains the model from the cached rows and returns it. */
PG_FUNCTION_INFO_V1(train_mlp_ffunc);
Datum
train_mlp_ffunc(PG_FUNCTION_ARGS)
{
	TrainState *st = FinalState(fcinfo, "train_mlp");
	TrainState *L = st->leader ? st->leader : st;
	TrainMember *mb;

	if (!L->trained)
	{
		TrainMembers(L, "train_mlp");
		ReportSkipped(fcinfo, "train_mlp", L);
	}
	mb = &L->members[st->leader ? st->member_no : 0];
	if (mb->result == NULL)
	{
		ereport(WARNING,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("training diverged: the loss became NaN or infinite in epoch %d",
						mb->diverged_epoch),
				 errdetail("The statement trains %d models from one row cache; this one is NULL, the others are kept.",
						   L->n_members),
				 errhint("Lower \"lr\", or enable \"normalize\".")));
		PG_RETURN_NULL();
	}
	PG_RETURN_BYTEA_P(TakeResult(mb));
}

/* Trains one model per configuration; returns them as dltrain.model[]. */
PG_FUNCTION_INFO_V1(train_mlp_multi_ffunc);
Datum
train_mlp_multi_ffunc(PG_FUNCTION_ARGS)
{
	TrainState *st = FinalState(fcinfo, "train_mlp_multi");
	Oid			arraytype = get_fn_expr_rettype(fcinfo->flinfo);
	Oid			elemtype = get_element_type(arraytype);
	int			K;
	Datum	   *elems;
	bool	   *nulls;
	int			dims[1];
	int			lbs[1] = {1};
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (!OidIsValid(elemtype))
		elog(ERROR, "train_mlp_multi must return an array");
	if (!st->trained)
	{
		TrainMembers(st, "train_mlp_multi");
		ReportSkipped(fcinfo, "train_mlp_multi", st);
	}
	K = st->n_members;
	elems = palloc(sizeof(Datum) * K);
	nulls = palloc(sizeof(bool) * K);
	for (int k = 0; k < K; k++)
	{
		TrainMember *mb = &st->members[k];

		nulls[k] = mb->result == NULL;
		elems[k] = nulls[k] ? (Datum) 0 : PointerGetDatum(TakeResult(mb));
		if (nulls[k])
			ereport(WARNING,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("training of configuration %d diverged: the loss became NaN or infinite in epoch %d",
							k + 1, mb->diverged_epoch),
					 errdetail("Its element of the result is NULL; the other models are kept."),
					 errhint("Lower \"lr\", or enable \"normalize\".")));
	}
	dims[0] = K;
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	PG_RETURN_ARRAYTYPE_P(construct_md_array(elems, nulls, 1, dims, lbs, elemtype,
											 typlen, typbyval, typalign));
}

/* ---- BLAS ---- */

static bool blas_ready = false;

/*
 * Opens OpenBLAS on the first training (or batched scoring) of this
 * backend; with threads >= 1 (a training's dltrain.threads) cuts the work
 * of the steps that follow into threads ranges, starting the helper
 * threads that needs.  Scoring passes 0: its networks never use the pool
 * (DLK_BLAS_UNCUT).  Signals are blocked around
 * both, so any thread OpenBLAS or the pool starts inherits a mask that
 * keeps PostgreSQL's signals on the backend's own thread.
 */
void
DltBlasEnsure(int threads)
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
	/*
	 * dltrain's own threads (dlk_pool.c) run every parallel part of a step,
	 * the GEMMs included, each calling OpenBLAS single-threaded: one set of
	 * threads, none spinning against another.
	 */
	if (threads < 1)
		return;
	pthread_sigmask(SIG_SETMASK, &all, &old);
	dlk_blas_set_threads(1);
	s = dlk_pool_set_threads(threads);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (s != DLK_OK)
		elog(ERROR, "could not set %d training threads", threads);
}

/* ---- training ---- */

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

Size
DltTrainerBytes(const DltModel *m, int B)
{
	dlk_sizes	sz;
	int			D = m->arch.dims[0];
	int			C = m->arch.dims[m->arch.n_layers];

	if (dlk_sizes_for(&sz, &m->arch, B, m->opts.optimizer) != DLK_OK)
		elog(ERROR, "invalid network architecture");
	return mul_size(add_size(add_size(mul_size(2, sz.n_params), sz.n_opt_state),
							 add_size(sz.n_work, mul_size(B, D + C + 1))),
					sizeof(float));
}

/*
 * Checks the budget and the model size, allocates everything (in the current
 * memory context), opens BLAS and initializes the parameters from the seed.
 */
void
DltTrainerInit(DltTrainer *t, DltModel *m, int B, MemoryContext root)
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
	need = DltTrainerBytes(m, B);
	DltBudgetCheck(root, need,
				   "a model's parameters, gradients, optimizer state and batch buffers");
	CheckModelSize(ModelEncodedSize(m));

	m->params = palloc_extended(sizeof(float) * sz.n_params, MCXT_ALLOC_HUGE);
	grads = palloc_extended(sizeof(float) * sz.n_params, MCXT_ALLOC_HUGE);
	state = palloc_extended(sizeof(float) * Max(sz.n_opt_state, 1), MCXT_ALLOC_HUGE);
	work = palloc_extended(sizeof(float) * sz.n_work, MCXT_ALLOC_HUGE);
	t->xb = palloc_extended(sizeof(float) * (Size) B * t->D, MCXT_ALLOC_HUGE);
	t->yb = palloc(sizeof(int32) * B);
	t->tb = palloc(sizeof(float) * B * t->C);
	m->epoch_loss = palloc0(sizeof(float) * Max(o->epochs, 1));

	DltBlasEnsure(DltThreads());
	s = dlk_net_bind(&t->net, &m->arch, B, 1, m->params, grads, state, work);
	if (s == DLK_EABORT)
		DltKernelAborted();
	if (s != DLK_OK)
		elog(ERROR, "could not set up network: %s", dlk_status_string(s));
	if (o->init_pytorch)
		s = dlk_init_params_fanin(&t->net, (uint64) o->seed);
	else
		s = dlk_init_params(&t->net, (uint64) o->seed);
	if (s != DLK_OK)
		DltKernelAborted();

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

/* Counts a step of bs rows with mean loss in the epoch and the progress report. */
void
DltTrainerAccount(DltTrainer *t, int bs, double loss)
{
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

/*
 * One optimizer step on the first bs rows of xb (and yb or tb); returns
 * DLK_ENONFINITE, without an update, when the loss or gradients are not
 * finite.
 */
dlk_status
DltTrainerTryStep(DltTrainer *t, int bs)
{
	bool		cls = t->m->task == DLT_TASK_CLASSIFICATION;
	double		loss;
	dlk_status	s;

	s = dlk_train_step(&t->net, t->xb, cls ? t->yb : NULL, cls ? NULL : t->tb,
					   bs, &t->opt, &loss);
	if (s == DLK_EABORT)
		DltKernelAborted();
	if (s == DLK_ENONFINITE)
		return s;
	if (s != DLK_OK)
		elog(ERROR, "training step failed: %s", dlk_status_string(s));
	DltTrainerAccount(t, bs, loss);
	return DLK_OK;
}

/* DltTrainerTryStep, with divergence an error. */
void
DltTrainerStep(DltTrainer *t, int bs)
{
	if (DltTrainerTryStep(t, bs) != DLK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("training diverged: the loss became NaN or infinite in epoch %d",
						t->epoch + 1),
				 errhint("Lower \"lr\", or enable \"normalize\".")));
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
	/* progress at every epoch end too, whatever the batch count */
	DltProgressRows(t->rows, t->rows_expected, loss, secs > 0 ? t->rows / secs : 0);
	if (t->quiet)
		return secs;
	if (dltrain_verbose && t->n_models > 1)
		ereport(NOTICE,
				(errmsg("model %d of %d, epoch %d/%d: loss %.6f, %.0f rows/s",
						t->model_no + 1, t->n_models, t->epoch + 1, t->m->opts.epochs,
						loss, secs > 0 ? t->rows / secs : 0)));
	else if (dltrain_verbose)
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
	{
		CHECK_FOR_INTERRUPTS();	/* an abort */
		elog(ERROR, "forward pass failed");
	}
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

