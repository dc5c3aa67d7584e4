/*
 * jsonutil.c — JSON helpers shared by describe, evaluate, export, import,
 * grid_search, the options parser and the planner hook.
 */
#include "postgres.h"

#include <math.h>

#include "common/shortest_dec.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"

#include "jsonutil.h"

void
DltAppendJsonDouble(StringInfo buf, double d)
{
	char		tmp[DOUBLE_SHORTEST_DECIMAL_LEN];

	if (!isfinite(d))
	{
		appendStringInfoString(buf, "null");
		return;
	}
	double_to_shortest_decimal_buf(d, tmp);
	appendStringInfoString(buf, tmp);
}

void
DltAppendJsonFloat(StringInfo buf, float f)
{
	char		tmp[FLOAT_SHORTEST_DECIMAL_LEN];

	if (!isfinite(f))
	{
		appendStringInfoString(buf, "null");
		return;
	}
	float_to_shortest_decimal_buf(f, tmp);
	appendStringInfoString(buf, tmp);
}


JsonbValue *
DltJsonbField(JsonbContainer *c, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(c, JB_FOBJECT, &k);
}

JsonbValue *
DltJsonbGet(JsonbContainer *c, const char *key, JsonbValue *out)
{
	JsonbValue *v = DltJsonbField(c, key);

	if (v == NULL)
		return NULL;
	*out = *v;
	pfree(v);
	return out;
}

Jsonb *
DltJsonbFromCString(const char *json)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}
