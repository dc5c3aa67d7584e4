/*
 * merge.c — which training calls may share their rows.
 *
 * Two mechanisms merge the train_mlp calls of one statement: the planner
 * hook rewrites them into one train_mlp_multi call (planner.c), visible in
 * EXPLAIN VERBOSE; and, when the library was not loaded at planning time
 * (the first call of a session without shared_preload_libraries), the
 * aggregate merges sibling calls of one Agg node at execution
 * (train_agg.c).  Both apply the rule here, and so will shared scans:
 *
 *   a call of dltrain.train_mlp, plain (no DISTINCT, no ORDER BY inside the
 *   call), whose arguments and FILTER contain nothing volatile (each call
 *   evaluates them itself: random() in a FILTER samples differently for
 *   each), may share its rows with the calls that have the same features,
 *   label and FILTER and train the same task ("auto" resolved for the
 *   label's type).  Options may differ: that is the point.
 *
 * The planner additionally needs constant options (it writes them into the
 * merged call); the executor checks the options of every row.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "commands/extension.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "labels.h"
#include "merge.h"

bool		dltrain_enable_merge = true;
bool		dltrain_enable_merge_rewrite = true;

DltTrainingAgg
DltTrainingAggregate(Oid fn)
{
	char	   *name = get_func_name(fn);
	DltTrainingAgg kind = DLT_AGG_NONE;

	if (name == NULL)
		return DLT_AGG_NONE;
	if (strcmp(name, "train_mlp") == 0)
		kind = DLT_AGG_TRAIN_MLP;
	else if (strcmp(name, "train_mlp_multi") == 0)
		kind = DLT_AGG_TRAIN_MLP_MULTI;
	pfree(name);
	if (kind == DLT_AGG_NONE ||
		get_func_namespace(fn) != get_namespace_oid("dltrain", true) ||
		!OidIsValid(get_extension_oid("dltrain", true)))
		return DLT_AGG_NONE;
	return kind;
}

bool
DltConstOptions(Aggref *a, Const **opts)
{
	*opts = NULL;
	if (list_length(a->args) == 2)
		return true;
	if (list_length(a->args) != 3)
		return false;
	*opts = (Const *) ((TargetEntry *) lthird(a->args))->expr;
	return IsA(*opts, Const) && (*opts)->consttype == JSONBOID;
}

bool
DltMergeableCall(Aggref *a, DltTask *task)
{
	Const	   *opts;
	Jsonb	   *jb = NULL;
	DltTask		asked;
	DltLabelKind kind;

	*task = DLT_TASK_AUTO;
	if (a->aggorder != NIL || a->aggdistinct != NIL || a->aggkind != AGGKIND_NORMAL ||
		list_length(a->args) < 2 ||
		contain_volatile_functions((Node *) a->args) ||
		contain_volatile_functions((Node *) a->aggfilter) ||
		DltTrainingAggregate(a->aggfnoid) != DLT_AGG_TRAIN_MLP)
		return false;
	/* options known now: their task; else the executor checks them */
	if (DltConstOptions(a, &opts) && opts != NULL && !opts->constisnull)
		jb = DatumGetJsonbP(opts->constvalue);
	if (!DltConstOptions(a, &opts) || !DltOptionsTask(jb, &asked))
		return true;
	if (!DltLabelKindKnown(exprType((Node *) ((TargetEntry *) lsecond(a->args))->expr), &kind))
		return false;
	*task = DltResolveTaskNoError(asked, kind);
	return true;
}

bool
DltSameTrainingRows(Aggref *a, DltTask ta, Aggref *b, DltTask tb)
{
	return equal(((TargetEntry *) linitial(a->args))->expr,
				 ((TargetEntry *) linitial(b->args))->expr) &&
		equal(((TargetEntry *) lsecond(a->args))->expr,
			  ((TargetEntry *) lsecond(b->args))->expr) &&
		equal(a->aggfilter, b->aggfilter) && ta == tb;
}

void
DltMergeInit(void)
{
	DefineCustomBoolVariable("dltrain.enable_merge",
							 "Lets train_mlp calls of one statement over the same rows share one scan and row cache.",
							 "Calls with the same features, label and FILTER train side by side from one cache; each still returns its own model.",
							 &dltrain_enable_merge,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("dltrain.enable_merge_rewrite",
							 "Lets the planner rewrite mergeable train_mlp calls into one train_mlp_multi call.",
							 "The rewrite shows the merge in EXPLAIN VERBOSE. It needs dltrain loaded at planning time (shared_preload_libraries or LOAD).",
							 &dltrain_enable_merge_rewrite,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
}
