/*
 * jsonutil.h — the JSON helpers of describe, evaluate, export, import,
 * grid_search, the options and the planner hook (jsonutil.c).
 */
#ifndef DLTRAIN_JSONUTIL_H
#define DLTRAIN_JSONUTIL_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

/* shortest exact decimals, null for a non-finite value */
extern void DltAppendJsonDouble(StringInfo buf, double d);
extern void DltAppendJsonFloat(StringInfo buf, float f);
/* The value of key in an object container (palloc'd), or NULL. */
extern JsonbValue *DltJsonbField(JsonbContainer *c, const char *key);
/* The same into out. */
extern JsonbValue *DltJsonbGet(JsonbContainer *c, const char *key, JsonbValue *out);
/* A jsonb value from JSON text (an error names what is wrong with it). */
extern Jsonb *DltJsonbFromCString(const char *json);

#endif							/* DLTRAIN_JSONUTIL_H */
