/*
 * merge.h — which training calls may share their rows: the one rule the
 * planner hook (planner.c), the merge at execution (train_agg.c) and
 * shared scans apply (merge.c).
 */
#ifndef DLTRAIN_MERGE_H
#define DLTRAIN_MERGE_H

#include "postgres.h"

#include "nodes/primnodes.h"

#include "options.h"

extern bool dltrain_enable_merge;	/* sibling train_mlp calls share one cache */
extern bool dltrain_enable_merge_rewrite;	/* ... and the planner hook shows it */

typedef enum DltTrainingAgg
{
	DLT_AGG_NONE = 0,
	DLT_AGG_TRAIN_MLP,			/* dltrain.train_mlp */
	DLT_AGG_TRAIN_MLP_MULTI		/* dltrain.train_mlp_multi */
} DltTrainingAgg;

/* Is fn a training aggregate of the dltrain extension installed here? */
extern DltTrainingAgg DltTrainingAggregate(Oid fn);

/*
 * May this call share its rows with sibling calls?  A training aggregate at
 * its own level, plain (no DISTINCT, ORDER BY), whose features, label and
 * FILTER are not volatile (each call evaluates those itself), and whose
 * options name a valid task (their resolved task, for the label's type, is
 * set in *task).
 */
extern bool DltMergeableCall(Aggref *a, DltTask *task);
/* Same features, label, FILTER and resolved task (options may differ)? */
extern bool DltSameTrainingRows(Aggref *a, DltTask ta, Aggref *b, DltTask tb);

/* the constant options argument of a call (NULL: none); false if not constant */
extern bool DltConstOptions(Aggref *a, Const **opts);

extern void DltMergeInit(void);

#endif							/* DLTRAIN_MERGE_H */
