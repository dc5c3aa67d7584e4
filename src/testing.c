/*
 * testing.c — C functions that only tests call.  The extension's SQL
 * script creates no function over them; a test creates one, as a
 * superuser, for its own use.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "engine.h"
#include "rowsource.h"
#include "version.h"

/* Trains one model from the test row source (tests only; see above). */
PG_FUNCTION_INFO_V1(dltrain_test_row_source);
Datum
dltrain_test_row_source(PG_FUNCTION_ARGS)
{
	MemoryContext cxt;
	MemoryContext old;
	DltOptions	opts;
	DltSelectConfig cfg = {0};
	DltSelectResult res;
	bytea	   *model;
	bytea	   *out;

	DltCheckSqlVersion();
	cxt = AllocSetContextCreate(CurrentMemoryContext, "dltrain test source",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	DltOptionsParse(&opts, PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), false);
	cfg.tolerate = false;
	DltTrainMany(DltTestSourceCreate(PG_GETARG_INT64(0), PG_GETARG_INT32(1),
									 PG_GETARG_INT32(2), cxt),
				 &opts, 1, &cfg, &res);
	model = ModelEncode(res.m);
	MemoryContextSwitchTo(old);
	out = palloc(VARSIZE(model));
	memcpy(out, model, VARSIZE(model));
	MemoryContextDelete(cxt);
	PG_RETURN_BYTEA_P(out);
}
