/*
 * fit.h — one training on a relation, streamed (fit.c), as dltrain.fit
 * and dltrain.retrain (retrain.c) run it.
 */
#ifndef DLTRAIN_FIT_H
#define DLTRAIN_FIT_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/array.h"
#include "utils/jsonb.h"

#include "rowsource.h"

struct DltModel;

typedef struct DltFitCall
{
	const char *caller;			/* "fit", "retrain": the progress view's kind */
	Oid			relid;
	ArrayType  *features;		/* text[] */
	const char *label;
	Jsonb	   *options;		/* as stored in the catalog; NULL: {} */
	const char *name;			/* NULL: not stored */
	struct DltModel *warm;		/* start from this model (retrain); NULL: options decide */
	const DltTableFilter *filter;	/* NULL: every row */
	const char *since;			/* record this column's maximum (or the option "since") */
	const char *provenance_extra;	/* JSON members appended to the provenance */
} DltFitCall;

/*
 * Trains as dltrain.fit does and fills fcinfo's result set (one row per
 * epoch); with a name, inserts the model into dltrain.models.
 */
extern void DltFitRun(FunctionCallInfo fcinfo, const DltFitCall *call);

#endif							/* DLTRAIN_FIT_H */
