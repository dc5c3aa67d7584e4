/*
 * train_agg.c — the dltrain.train_mlp aggregate and its multi-model
 * sibling train_mlp_multi.
 *
 * Training is an aggregate.  The transition function only appends each row,
 * converted once to float32, to the row cache (rows.c); the final function
 * trains every epoch from that cache (engine.c, through the cache row
 * source), so multi-epoch training never runs the query again.
 *
 * Merging.  Several train_mlp calls of one Agg node over the same features
 * and label (the same expressions and FILTER; their options may differ)
 * share one row cache: the first of them (the leader) caches the rows, the
 * others (followers) only check their options, and the first final call
 * trains all of them side by side (DltTrainMany); each then returns its own
 * model.  The planner hook (planner.c) shows the same merge in EXPLAIN by
 * rewriting the calls; this merge at execution is what merges them when
 * the library was not loaded at planning time (the session's first call,
 * without shared_preload_libraries).  Both apply one rule (merge.c).  It
 * needs nothing from the planner: the executor calls
 * the transition functions of one input row for one group one after the
 * other in the order of the Agg node's transition states, so the leader's
 * state last touched is the group's.  It is limited to Agg nodes without
 * grouping sets and to calls without DISTINCT or ORDER BY (those run their
 * transitions aggregate by aggregate).  dltrain.enable_merge turns it off.
 *
 * Reproducibility.  A scan does not promise an order (synchronized scans,
 * parallel plans), so before the seeded shuffle the rows go into a canonical
 * order by content (order.c); the model depends only on the multiset of
 * rows, the options and the seed (and on dltrain.threads, which can change
 * BLAS summation order).  With "shuffle": false rows are used in the order
 * they arrived, which is what a user asking for no shuffle means.
 *
 * Memory.  Everything a training allocates lives in one memory context under
 * the aggregate's context; the per-batch loop allocates nothing.  An error or
 * a cancel (CHECK_FOR_INTERRUPTS after every mini-batch, and inside a long
 * step the kernels' abort callback: DLK_EABORT, then DltKernelAborted)
 * releases it all.
 *
 * Outcomes.  The same whether a call trained alone or merged: a model whose
 * loss became NaN or infinite is NULL, with a WARNING (an aggregate over
 * many groups, or beside other models, goes on); a call with no rows, or
 * whose rows were all skipped, or (classification) with one class, raises
 * an error, as it would alone.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_aggregate.h"
#include "catalog/pg_type.h"
#include "executor/nodeAgg.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "engine.h"
#include "interrupt.h"
#include "merge.h"
#include "progress.h"
#include "rows.h"
#include "rowsource.h"
#include "version.h"

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

/* May the call of a transition state share its rows (merge.h)? */
static bool
Mergeable(AggStatePerTrans pt, DltTask *task)
{
	return pt->transfn.fn_addr == train_mlp_sfunc && DltMergeableCall(pt->aggref, task);
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
	DltTask		mytask;

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
	if (me < 0 || !Mergeable(&as->pertrans[me], &mytask))
		return slot;

	/*
	 * The leader is the first mergeable sibling with the same rows.  Options
	 * that are not constants have their task checked when the state is made
	 * (TrainStateCreate).
	 */
	for (int i = 0; i < as->numtrans; i++)
	{
		AggStatePerTrans pt = &as->pertrans[i];
		DltTask		task;

		if (i == me || !Mergeable(pt, &task) ||
			!DltSameTrainingRows(pt->aggref, task, as->pertrans[me].aggref, mytask))
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
	task = DltResolveTask(st->opts.task, DltLabelKindOf(label_type));

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
						   (long long) st->rows.rows_seen + 1),
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
	/* a diverged model is NULL, alone or merged */
	cfg.tolerate = true;
	cfg.class_notice = true;
	DltCacheFinishInput(&st->rows.cache);
	DltTrainMany(DltCacheSourceCreate(&st->rows), opts, K, &cfg, res);
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
		if (L->n_members > 1)
			ereport(WARNING,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("training diverged: the loss became NaN or infinite in epoch %d",
							mb->diverged_epoch),
					 errdetail("The statement trains %d models from one row cache; this one is NULL, the others are kept.",
							   L->n_members),
					 errhint("Lower \"lr\", or enable \"normalize\".")));
		else
			ereport(WARNING,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("training diverged: the loss became NaN or infinite in epoch %d",
							mb->diverged_epoch),
					 errdetail("dltrain.train_mlp returns NULL for this training."),
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
