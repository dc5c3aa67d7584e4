/*
 * planner.c — the planner hook that merges train_mlp calls.
 *
 * Several dltrain.train_mlp calls of one query level over the same features
 * and label (the same expressions and FILTER), with constant options that
 * name the same task, become one multi-model aggregate:
 *
 *   train_mlp(x, y, o1), train_mlp(x, y, o2)
 *     -> (train_mlp_multi(x, y, '[o1, o2]'))[1], (train_mlp_multi(x, y, '[o1, o2]'))[2]
 *
 * The planner computes identical aggregate calls once, so the statement
 * scans, converts and caches the rows once and trains both models side by
 * side; EXPLAIN VERBOSE shows the merged call.  Without the hook (dltrain
 * not loaded at planning time) the executor merges the same calls anyway
 * (train_agg.c); the hook makes the merge visible and covers calls that the
 * executor cannot see as siblings.
 *
 * The hook chains to the previous planner_hook, keeps no state between
 * calls (so a planner call nested in another is safe), walks subqueries,
 * CTEs and sublinks, and steps aside when dltrain.enable_merge or
 * dltrain.enable_merge_rewrite is off, when the extension is not installed
 * in the current database, or when a call may not merge by the rule of
 * merge.c (DISTINCT, ORDER BY, volatile arguments or FILTER, another task)
 * or has options that are not constants.  Identical calls map to one
 * configuration, as PostgreSQL computes identical aggregates once.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "merge.h"
#include "planner_hook.h"

static planner_hook_type prev_planner_hook = NULL;

typedef struct Collect
{
	List	   *calls;
	List	   *tasks;			/* int list: each call's resolved task */
} Collect;

static bool
CollectCalls(Node *node, Collect *c)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
		return false;			/* a sublink's query: its own level */
	if (IsA(node, Aggref))
	{
		Aggref	   *a = (Aggref *) node;
		Const	   *opts;
		DltTask		task;

		/* the rule of merge.c; the rewrite writes the options into the call */
		if (a->agglevelsup == 0 && DltMergeableCall(a, &task) &&
			DltConstOptions(a, &opts))
		{
			c->calls = lappend(c->calls, a);
			c->tasks = lappend_int(c->tasks, (int) task);
		}
		return false;
	}
	return expression_tree_walker(node, CollectCalls, c);
}

typedef struct Replace
{
	List	   *from;			/* Aggrefs */
	List	   *to;				/* their replacements */
} Replace;

static Node *
ReplaceCalls(Node *node, Replace *r)
{
	ListCell   *f,
			   *t;

	if (node == NULL || IsA(node, Query))
		return node;
	forboth(f, r->from, t, r->to)
	{
		if (node == lfirst(f))
			return (Node *) lfirst(t);
	}
	return expression_tree_mutator(node, ReplaceCalls, r);
}

/* Builds the multi call and the subscripts replacing the calls of one group. */
static void
MergeGroup(List *group, Replace *r)
{
	Aggref	   *first = linitial(group);
	Oid			argtypes[3];
	Oid			multi_fn;
	Oid			model_type = first->aggtype;
	Oid			array_type = get_array_type(model_type);
	StringInfoData buf;
	Aggref	   *multi;
	TargetEntry *te;
	ListCell   *lc;
	int		   *slot;
	int			n_configs = 0;

	argtypes[0] = exprType((Node *) ((TargetEntry *) linitial(first->args))->expr);
	argtypes[1] = exprType((Node *) ((TargetEntry *) lsecond(first->args))->expr);
	argtypes[2] = JSONBOID;
	if (list_length(first->aggargtypes) >= 2)
	{
		argtypes[0] = linitial_oid(first->aggargtypes);
		argtypes[1] = lsecond_oid(first->aggargtypes);
	}
	multi_fn = LookupFuncName(list_make2(makeString("dltrain"), makeString("train_mlp_multi")),
							  3, argtypes, true);
	if (!OidIsValid(multi_fn) || !OidIsValid(array_type) ||
		get_func_rettype(multi_fn) != array_type)
		return;

	/*
	 * the configurations, in call order; an identical call (PostgreSQL would
	 * compute it once) takes the index of its first occurrence
	 */
	slot = palloc(sizeof(int) * list_length(group));
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	foreach(lc, group)
	{
		Const	   *opts;
		int			j = foreach_current_index(lc);

		slot[j] = -1;
		for (int p = 0; p < j; p++)
			if (equal(lfirst(lc), list_nth(group, p)))
			{
				slot[j] = slot[p];
				break;
			}
		if (slot[j] >= 0)
			continue;
		slot[j] = n_configs++;
		DltConstOptions(lfirst(lc), &opts);
		if (slot[j] > 0)
			appendStringInfoString(&buf, ", ");
		if (opts == NULL || opts->constisnull)
			appendStringInfoString(&buf, "{}");
		else
		{
			Jsonb	   *jb = DatumGetJsonbP(opts->constvalue);

			appendStringInfoString(&buf, JsonbToCString(NULL, &jb->root, VARSIZE(jb)));
		}
	}
	appendStringInfoChar(&buf, ']');
	if (n_configs < 2)
		return;					/* all identical: PostgreSQL shares them anyway */

	multi = copyObject(first);
	multi->aggfnoid = multi_fn;
	multi->aggtype = array_type;
	multi->aggargtypes = list_make3_oid(argtypes[0], argtypes[1], JSONBOID);
	te = makeTargetEntry((Expr *) makeConst(JSONBOID, -1, InvalidOid, -1,
											DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)),
											false, false),
						 3, NULL, false);
	multi->args = list_make3(copyObject(linitial(first->args)),
							 copyObject(lsecond(first->args)), te);

	foreach(lc, group)
	{
		SubscriptingRef *sr = makeNode(SubscriptingRef);

		sr->refcontainertype = array_type;
		sr->refelemtype = model_type;
		sr->refrestype = model_type;
		sr->reftypmod = -1;
		sr->refcollid = InvalidOid;
		sr->refupperindexpr = list_make1(makeConst(INT4OID, -1, InvalidOid, sizeof(int32),
												   Int32GetDatum(slot[foreach_current_index(lc)] + 1),
												   false, true));
		sr->reflowerindexpr = NIL;
		sr->refexpr = (Expr *) copyObject(multi);
		sr->refassgnexpr = NULL;
		r->from = lappend(r->from, lfirst(lc));
		r->to = lappend(r->to, sr);
	}
}

/* Merges the train_mlp calls of one query level. */
static void
MergeQuery(Query *q)
{
	Collect		c = {NIL, NIL};
	Replace		r = {NIL, NIL};
	List	   *groups = NIL;
	List	   *gtasks = NIL;
	ListCell   *lc;
	ListCell   *lt;

	if (q->groupingSets != NIL)
		return;
	CollectCalls((Node *) q->targetList, &c);
	CollectCalls(q->havingQual, &c);
	if (list_length(c.calls) < 2)
		return;

	/* group by rows (features, label, FILTER) and task */
	forboth(lc, c.calls, lt, c.tasks)
	{
		Aggref	   *a = lfirst(lc);
		DltTask		ta = (DltTask) lfirst_int(lt);
		ListCell   *g;
		ListCell   *gt;
		bool		placed = false;

		forboth(g, groups, gt, gtasks)
		{
			List	   *group = lfirst(g);

			if (DltSameTrainingRows(a, ta, linitial(group), (DltTask) lfirst_int(gt)))
			{
				lfirst(g) = lappend(group, a);
				placed = true;
				break;
			}
		}
		if (!placed)
		{
			groups = lappend(groups, list_make1(a));
			gtasks = lappend_int(gtasks, (int) ta);
		}
	}
	foreach(lc, groups)
	{
		if (list_length(lfirst(lc)) > 1)
			MergeGroup(lfirst(lc), &r);
	}
	if (r.from == NIL)
		return;
	q->targetList = (List *) ReplaceCalls((Node *) q->targetList, &r);
	q->havingQual = ReplaceCalls(q->havingQual, &r);
}

static bool
MergeWalker(Node *node, void *ctx)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *q = (Query *) node;

		if (q->hasAggs)
			MergeQuery(q);
		return query_tree_walker(q, MergeWalker, ctx, 0);
	}
	return expression_tree_walker(node, MergeWalker, ctx);
}

static PlannedStmt *
DltPlanner(Query *parse, const char *query_string, int cursorOptions,
		   ParamListInfo boundParams)
{
	if (dltrain_enable_merge && dltrain_enable_merge_rewrite && parse != NULL)
	{
		MergeWalker((Node *) parse, NULL);
	}
	if (prev_planner_hook)
		return prev_planner_hook(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
}

void
DltPlannerHookInstall(void)
{
	prev_planner_hook = planner_hook;
	planner_hook = DltPlanner;
}
