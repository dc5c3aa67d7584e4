/*
 * relation.c — what the functions that take a relation (fit, grid_search)
 * share: locking it before its name is looked up, its schema-qualified
 * quoted name, the select list of its feature and label columns (quoted
 * identifiers, so the caller's search_path cannot change what is read),
 * and the insert of a trained model into dltrain.models through SPI, with
 * the caller's privileges.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "feature_array.h"
#include "model.h"
#include "relation.h"

void
DltLockRelation(Oid relid)
{
	LockRelationOid(relid, AccessShareLock);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
}

static char *
FeatureExpression(Oid relid, ArrayType *features, int *ncols, const char *caller)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	StringInfoData b;

	deconstruct_array(features, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s needs at least one feature column", caller)));
	initStringInfo(&b);
	for (int i = 0; i < n; i++)
	{
		char	   *col;
		AttrNumber	att;
		Oid			t;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("feature column names must not be NULL")));
		col = TextDatumGetCString(elems[i]);
		att = get_attnum(relid, col);
		if (att == InvalidAttrNumber || att < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							col, get_rel_name(relid))));
		t = get_atttype(relid, att);
		if (type_is_array(t))
			CheckFeatureArrayType(t, psprintf("feature column \"%s\"", col));
		if (n > 1 && type_is_array(t))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("array column \"%s\" must be the only feature column", col),
					 errdetail("%s takes either one array column or a list of numeric columns.", caller),
					 errhint("Pass '{%s}' alone, or list numeric columns only.", col)));
		if (n == 1 && type_is_array(t))
		{
			appendStringInfoString(&b, quote_identifier(col));
			*ncols = 1;
			return b.data;
		}
		if (t != INT2OID && t != INT4OID && t != INT8OID && t != FLOAT4OID &&
			t != FLOAT8OID && t != NUMERICOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("feature column \"%s\" has type %s", col, format_type_be(t)),
					 errdetail("Features are one array column of numbers, or columns of type smallint, integer, bigint, real, double precision or numeric."),
					 errhint("Leave the column out, or read the relation through a view that casts it to double precision.")));
		appendStringInfo(&b, "%s%s::pg_catalog.float8", i ? ", " : "ARRAY[", quote_identifier(col));
	}
	appendStringInfoChar(&b, ']');
	*ncols = n;
	return b.data;
}

char *
DltQualifiedName(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* The feature expression of a read of relid: one array column, or ARRAY[...]. */
char *
DltFeatureList(Oid relid, ArrayType *features, const char *caller)
{
	int			ncols;

	return FeatureExpression(relid, features, &ncols, caller);
}

/*
 * The select list "features, label" of a training read of relid: the
 * feature expression (one array column, or ARRAY[...] of numeric columns,
 * as float8) and the label column (text for varchar and char), all quoted.
 * *label_type gets the label's type.
 */
char *
DltSelectList(Oid relid, ArrayType *features, const char *label, Oid *label_type,
			  const char *caller)
{
	int			ncols;
	char	   *feat_expr = FeatureExpression(relid, features, &ncols, caller);
	AttrNumber	latt = get_attnum(relid, label);

	if (latt == InvalidAttrNumber || latt < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						label, get_rel_name(relid))));
	*label_type = get_atttype(relid, latt);
	if (*label_type == VARCHAROID || *label_type == BPCHAROID)
		*label_type = TEXTOID;
	return psprintf("%s, %s%s", feat_expr, quote_identifier(label),
					*label_type == TEXTOID ? "::pg_catalog.text" : "");
}

void
DltCatalogInsert(const DltCatalogRow *row)
{
	Oid			types[8] = {TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID, JSONBOID, JSONBOID, JSONBOID, InvalidOid};
	Datum		values[8];
	int			rc;

	types[7] = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("model"),
							   ObjectIdGetDatum(get_namespace_oid("dltrain", false)));
	values[0] = CStringGetTextDatum(row->name);
	values[1] = CStringGetTextDatum(row->relation);
	values[2] = PointerGetDatum(row->features);
	values[3] = CStringGetTextDatum(row->label);
	values[4] = row->options ? JsonbPGetDatum(row->options) :
		DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
	values[5] = DirectFunctionCall1(jsonb_in, CStringGetDatum(row->metrics));
	values[6] = DirectFunctionCall1(jsonb_in, CStringGetDatum(row->provenance));
	values[7] = PointerGetDatum(row->model);
	rc = SPI_execute_with_args("INSERT INTO dltrain.models (name, relation, features, label, options, metrics, provenance, model) "
							   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
							   8, types, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not store the model in dltrain.models: %s", SPI_result_code_string(rc));
}

struct DltModel *
DltCatalogModel(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	Datum		d;
	struct varlena *copy;
	MemoryContext cxt = CurrentMemoryContext;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	values[0] = CStringGetTextDatum(name);
	rc = SPI_execute_with_args("SELECT dltrain.latest_model($1)", 1, types, values, NULL,
							   true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not look up model \"%s\": %s", name, SPI_result_code_string(rc));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name)));
	/* out of SPI's memory, detoasted */
	{
		struct varlena *v = PG_DETOAST_DATUM_PACKED(d);
		Size		len = VARSIZE_ANY(v);

		copy = MemoryContextAlloc(cxt, len);
		memcpy(copy, v, len);
	}
	SPI_finish();
	return ModelDecode(copy);
}
