/*
 * retrain.c — dltrain.retrain(): continue a catalog model on the rows added
 * since it was trained.
 *
 * It reads the caller's newest catalog row of that name (latest_model's
 * rule: the caller's own rows only), and trains as fit() does (fit.h) on
 * the same relation, features and label, with the row's options under the
 * caller's, warm-started from the row's model (weights, statistics, classes,
 * and its optimizer state when it carries a checkpoint).  The source reads
 * through the executor with the caller's rights (RLS and MVCC apply) and a
 * filter built from quoted identifiers and parameters only (rowsource.h):
 *
 *   - by snapshot (default): a row is new when the current snapshot sees it
 *     and the recorded one did not see its inserting transaction, from the
 *     xmin column widened to 64 bits against the current next xid
 *     (dltrain.widen_xid); the training transaction's own xids count as old;
 *     a leaf partition the training did not know is new as a whole.  Refused,
 *     with the reason, when the rows' xmins may no longer mean that (another
 *     cluster, a re-created relation, a relfilenode that changed, 2^31
 *     transactions since, a snapshot the provenance lacks or that lies in
 *     the future), or for anything but tables and partitioned tables;
 *   - by key (since => column): a row is new when its key exceeds the
 *     maximum the training recorded (fit's option "since", or any retrain
 *     with since); without one, the maximum of the rows the snapshot rule
 *     calls old.
 *
 * replay mixes a seeded sample of the old rows in (by content hash, the same
 * rows in every pass).  The new row's provenance links the row it continued
 * ("continued_from") and records both snapshots or key ranges.
 */
#include "postgres.h"

#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/varlena.h"
#include "utils/xid8.h"

#include "fit.h"
#include "jsonutil.h"
#include "model.h"
#include "newrows.h"
#include "version.h"

/* the catalog row continued, copied out of SPI */
typedef struct Continued
{
	int64		id;
	char	   *relation;
	ArrayType  *features;
	char	   *label;
	Jsonb	   *options;		/* the row's (less warm_start, resume) under the caller's */
	struct varlena *model;
	bool		has_snapshot;
	Datum		snapshot;		/* pg_snapshot */
	char	   *snapshot_text;
	Datum		own_xids;		/* xid8[] */
	FullTransactionId xmin;
	FullTransactionId xmax;
	bool		has_relid;
	Oid			relid;
	char	   *sysid;
	char	   *since_column;	/* recorded key; NULL: none */
	char	   *since_max;		/* its maximum, JSON text; NULL: none */
	Jsonb	   *relfilenodes;
} Continued;

#define REFUSE_HINT "Retrain fully (dltrain.fit), or retrain by a monotonically increasing key (since => 'column')."

/* the memory of one retrain call: what is read from SPI is copied there */
static MemoryContext retrain_cxt;

/* SPI_execute_with_args, back in retrain_cxt after it (SPI leaves its own) */
static int
Exec(const char *q, int nargs, Oid *types, Datum *values, const char *nulls,
	 bool read_only, long count)
{
	int			rc = SPI_execute_with_args(q, nargs, types, values, nulls, read_only, count);

	MemoryContextSwitchTo(retrain_cxt);
	return rc;
}

static Datum
CopyCol(int col, Oid type, bool *isnull)
{
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);
	int16		len;
	bool		byval;

	if (*isnull)
		return (Datum) 0;
	get_typlenbyval(type, &len, &byval);
	return datumCopy(d, byval, len);
}

static char *
CopyText(int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* Reads the caller's newest row named name; user_options go over its options. */
static void
ReadContinued(Continued *c, const char *name, Jsonb *user_options)
{
	Oid			types[2] = {TEXTOID, JSONBOID};
	Datum		values[2];
	bool		isnull;
	int			rc;

	values[0] = CStringGetTextDatum(name);
	values[1] = JsonbPGetDatum(user_options);
	rc = Exec(
							   "SELECT m.id, m.relation, m.features, m.label, "
							   "  (COALESCE(m.options, '{}') OPERATOR(pg_catalog.-) 'warm_start' OPERATOR(pg_catalog.-) 'resume') OPERATOR(pg_catalog.||) $2, "
							   "  m.model, (m.provenance OPERATOR(pg_catalog.->>) 'snapshot')::pg_catalog.pg_snapshot, "
							   "  m.provenance OPERATOR(pg_catalog.->>) 'snapshot', "
							   "  ARRAY(SELECT pg_catalog.jsonb_array_elements_text(COALESCE(m.provenance OPERATOR(pg_catalog.->) 'own_xids', '[]')))::pg_catalog.xid8[], "
							   "  (m.provenance OPERATOR(pg_catalog.->>) 'relid')::pg_catalog.oid, "
							   "  m.provenance OPERATOR(pg_catalog.->>) 'system_identifier', "
							   "  m.provenance OPERATOR(pg_catalog.#>>) '{since,column}', "
							   "  m.provenance OPERATOR(pg_catalog.#>) '{since,max}', "
							   "  m.provenance OPERATOR(pg_catalog.->) 'relfilenodes' "
							   "FROM dltrain.models m "
							   "WHERE m.name OPERATOR(pg_catalog.=) $1 "
							   "  AND m.owner OPERATOR(pg_catalog.=) pg_catalog.to_regrole(pg_catalog.quote_ident(current_user)) "
							   "ORDER BY m.created DESC, m.id DESC LIMIT 1",
							   2, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read model \"%s\": %s", name, SPI_result_code_string(rc));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" of role \"%s\" does not exist", name, GetUserNameFromId(GetUserId(), false)),
				 errhint("dltrain.retrain continues the current role's own models only.")));
	c->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	c->relation = CopyText(2);
	c->features = DatumGetArrayTypeP(CopyCol(3, TEXTARRAYOID, &isnull));
	if (isnull || c->relation == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" does not say which relation it was trained on", name),
				 errdetail("Its catalog row has no relation or features: it was inserted by hand, not by dltrain.fit."),
				 errhint("Train it with dltrain.fit(..., name => '%s').", name)));
	c->label = CopyText(4);
	c->options = DatumGetJsonbP(CopyCol(5, JSONBOID, &isnull));
	c->model = (struct varlena *) DatumGetPointer(CopyCol(6, SPI_gettypeid(SPI_tuptable->tupdesc, 6), &isnull));
	c->model = PG_DETOAST_DATUM_COPY(PointerGetDatum(c->model));
	c->snapshot = CopyCol(7, PG_SNAPSHOTOID, &isnull);
	c->has_snapshot = !isnull;
	c->snapshot_text = CopyText(8);
	c->own_xids = CopyCol(9, XID8ARRAYOID, &isnull);
	c->relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 10, &isnull));
	c->has_relid = !isnull;
	c->sysid = CopyText(11);
	c->since_column = CopyText(12);
	{
		Datum		m = CopyCol(13, JSONBOID, &isnull);

		c->since_max = isnull ? NULL : JsonbToCString(NULL, &DatumGetJsonbP(m)->root, 0);
	}
	{
		Datum		r = CopyCol(14, JSONBOID, &isnull);

		c->relfilenodes = isnull ? NULL : DatumGetJsonbP(r);
	}
	SPI_freetuptable(SPI_tuptable);
	if (c->has_snapshot)
	{
		/* its bounds, 64-bit */
		Oid			t[1] = {PG_SNAPSHOTOID};
		Datum		v[1] = {c->snapshot};

		if (Exec("SELECT pg_catalog.pg_snapshot_xmin($1), pg_catalog.pg_snapshot_xmax($1)",
								  1, t, v, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read a snapshot's bounds");
		c->xmin = DatumGetFullTransactionId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		c->xmax = DatumGetFullTransactionId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		SPI_freetuptable(SPI_tuptable);
	}
}

/* The relation the row names, by its recorded (qualified, quoted) name. */
static Oid
ResolveRelation(const Continued *c, const char *name)
{
	List	   *names = stringToQualifiedNameList(c->relation);
	Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(names), AccessShareLock, true);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation %s that model \"%s\" was trained on does not exist", c->relation, name)));
	return relid;
}

/* The recorded relfilenode of each leaf: a list of pairs (leaf oid, relfilenode). */
static void
RecordedStorage(const Continued *c, List **leaves, List **nodes)
{
	Oid			t[1] = {JSONBOID};
	Datum		v[1] = {JsonbPGetDatum(c->relfilenodes)};

	*leaves = *nodes = NIL;
	if (Exec("SELECT k.key::pg_catalog.oid, (k.value OPERATOR(pg_catalog.#>>) '{}')::pg_catalog.oid "
							  "FROM pg_catalog.jsonb_each($1) k",
							  1, t, v, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the recorded relfilenodes");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		*leaves = lappend_oid(*leaves, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)));
		*nodes = lappend_oid(*nodes, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull)));
	}
	SPI_freetuptable(SPI_tuptable);
}

static int
list_oid_index(List *l, Oid o)
{
	ListCell   *lc;

	foreach(lc, l)
		if (lfirst_oid(lc) == o)
			return foreach_current_index(lc);
	return -1;
}

/*
 * The snapshot rule's checks; returns the oid[] of the leaves whose rows the
 * xmin rule applies to (the recorded ones, unchanged).
 */
static Datum
CheckSnapshotRule(const Continued *c, Oid relid, const char *name)
{
	FullTransactionId next = ReadNextFullTransactionId();
	char	   *sysid = DltSystemIdentifier();
	List	   *rec_leaves;
	List	   *rec_nodes;
	List	   *now;
	ListCell   *lc;
	Datum	   *keep;
	int			nkeep = 0;
	char		kind = get_rel_relkind(relid);

	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot tell the new rows of \"%s\" by their transaction", get_rel_name(relid)),
				 errdetail("Only tables and partitioned tables keep the inserting transaction of their rows (xmin)."),
				 errhint("Retrain by a monotonically increasing key (since => 'column'), or retrain fully (dltrain.fit).")));
	if (!c->has_snapshot || !c->has_relid || c->sysid == NULL || c->relfilenodes == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" does not record the snapshot it was trained under", name),
				 errdetail("Its provenance lacks the snapshot, the relation's storage or the system identifier (a model trained before dltrain 0.2.0, stored by hand, or whose snapshot could not be recorded)."),
				 errhint(REFUSE_HINT)));
	if (strcmp(c->sysid, sysid) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" was trained in another cluster", name),
				 errdetail("The recorded system identifier is %s, this cluster's is %s: rows copied from another cluster (dump and restore, logical replication, pg_upgrade) have new transaction ids.",
						   c->sysid, sysid),
				 errhint(REFUSE_HINT)));
	if (c->relid != relid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("relation %s was re-created since model \"%s\" was trained", c->relation, name),
				 errdetail("It had OID %u, it has %u now: its rows were written again (a dump and restore, or DROP and CREATE).",
						   c->relid, relid),
				 errhint(REFUSE_HINT)));
	if (FullTransactionIdFollows(c->xmax, next))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the recorded snapshot of model \"%s\" lies in the future", name),
				 errdetail("Its xmax is " UINT64_FORMAT ", the next transaction id is " UINT64_FORMAT ": the provenance was edited, or comes from another cluster.",
						   U64FromFullTransactionId(c->xmax), U64FromFullTransactionId(next)),
				 errhint(REFUSE_HINT)));
	if (U64FromFullTransactionId(next) - U64FromFullTransactionId(c->xmin) >= (UINT64CONST(1) << 31))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("too many transactions have passed since model \"%s\" was trained", name),
				 errdetail("The recorded snapshot's xmin is " UINT64_FORMAT ", the next transaction id is " UINT64_FORMAT ": at 2^31 transactions or more, a row's 32-bit xmin no longer tells when it was written.",
						   U64FromFullTransactionId(c->xmin), U64FromFullTransactionId(next)),
				 errhint(REFUSE_HINT)));

	RecordedStorage(c, &rec_leaves, &rec_nodes);
	now = find_all_inheritors(relid, AccessShareLock, NULL);
	keep = palloc(sizeof(Datum) * (list_length(rec_leaves) + 1));
	foreach(lc, now)
	{
		Oid			leaf = lfirst_oid(lc);
		char		k = get_rel_relkind(leaf);
		int			i;

		if (k == RELKIND_PARTITIONED_TABLE)
			continue;
		if (k != RELKIND_RELATION)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("cannot tell the new rows of partition \"%s\" by their transaction", get_rel_name(leaf)),
					 errdetail("Only tables keep the inserting transaction of their rows (xmin)."),
					 errhint("Retrain by a monotonically increasing key (since => 'column'), or retrain fully (dltrain.fit).")));
		i = list_oid_index(rec_leaves, leaf);
		if (i < 0)
			continue;			/* a leaf the training did not know: all its rows are new */
		{
			Relation	r = RelationIdGetRelation(leaf);
			Oid			node = r->rd_rel->relfilenode;

			RelationClose(r);
			if (node != list_nth_oid(rec_nodes, i))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("relation \"%s\" was rewritten since model \"%s\" was trained", get_rel_name(leaf), name),
						 errdetail("Its relfilenode was %u, it is %u now: TRUNCATE, VACUUM FULL, CLUSTER or a rewriting ALTER TABLE may have given its rows new transaction ids.",
								   list_nth_oid(rec_nodes, i), node),
						 errhint(REFUSE_HINT)));
		}
		keep[nkeep++] = ObjectIdGetDatum(leaf);
	}
	return PointerGetDatum(construct_array(keep, nkeep, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

/* the xmin rule as an expression over $1 pg_snapshot, $2 xid8[], $3 oid[] */
#define NEW_BY_XMIN \
	"(tableoid OPERATOR(pg_catalog.<>) ALL ($3) OR " \
	"(NOT pg_catalog.pg_visible_in_snapshot(dltrain.widen_xid(xmin), $1) AND " \
	"dltrain.widen_xid(xmin) OPERATOR(pg_catalog.<>) ALL ($2)))"

/* The recorded maximum (JSON text) as a value of the column's type. */
static Datum
KeyValue(const char *json, Oid type)
{
	Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	JsonbValue	v;
	char	   *s;
	Oid			in;
	Oid			ioparam;

	if (!JsonbExtractScalar(&jb->root, &v))
		elog(ERROR, "a recorded key maximum is not a scalar");
	if (v.type == jbvString)
		s = pnstrdup(v.val.string.val, v.val.string.len);
	else if (v.type == jbvNumeric)
		s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
	else if (v.type == jbvBool)
		s = v.val.boolean ? "true" : "false";
	else
		return (Datum) 0;
	getTypeInputInfo(type, &in, &ioparam);
	return OidInputFunctionCall(in, s, ioparam, -1);
}

/* Continues a catalog model on the rows added since it was trained. */
PG_FUNCTION_INFO_V1(retrain);
Datum
retrain(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt;
	MemoryContext old;
	char	   *name;
	Jsonb	   *user_options;
	char	   *since = NULL;
	double		replay = 0;
	Continued	c = {0};
	DltFitCall	call = {0};
	DltTableFilter filter = {0};
	StringInfoData extra;
	Oid			relid;

	DltCheckSqlVersion();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dltrain.retrain needs the name of a catalog model")));
	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo))
		elog(ERROR, "dltrain.retrain called in a context that cannot accept a set");
	cxt = AllocSetContextCreate(rsinfo->econtext->ecxt_per_query_memory,
								"dltrain retrain", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	user_options = PG_ARGISNULL(1) ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))) :
		PG_GETARG_JSONB_P_COPY(1);
	if (!PG_ARGISNULL(2))
		since = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		replay = PG_GETARG_FLOAT8(3);
	if (!(replay >= 0 && replay <= 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("replay must be between 0 and 1, not %g", replay),
				 errdetail("replay is the fraction of the old rows mixed into the new ones.")));
	if (!JB_ROOT_IS_OBJECT(user_options) || JB_ROOT_IS_SCALAR(user_options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object")));
	{
		JsonbValue	v;

		if (DltJsonbGet(&user_options->root, "warm_start", &v) || DltJsonbGet(&user_options->root, "resume", &v))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("dltrain.retrain takes neither \"warm_start\" nor \"resume\""),
					 errdetail("It warm-starts from the catalog model it continues.")));
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	retrain_cxt = cxt;
	MemoryContextSwitchTo(cxt);	/* what is read stays until the training ends */
	ReadContinued(&c, name, user_options);
	relid = ResolveRelation(&c, name);

	initStringInfo(&extra);
	appendStringInfo(&extra, "\"continued_from\": " INT64_FORMAT ", \"replay\": %.17g", c.id, replay);
	if (since == NULL)
	{
		Datum	   *args = palloc(sizeof(Datum) * 3);
		Oid		   *types = palloc(sizeof(Oid) * 3);

		args[2] = CheckSnapshotRule(&c, relid, name);
		args[0] = c.snapshot;
		args[1] = c.own_xids;
		types[0] = PG_SNAPSHOTOID;
		types[1] = XID8ARRAYOID;
		types[2] = OIDARRAYOID;
		filter.new_expr = NEW_BY_XMIN;
		filter.nargs = 3;
		filter.argtypes = types;
		filter.args = args;
		appendStringInfo(&extra, ", \"new_rows_by\": \"snapshot\", \"previous_snapshot\": \"%s\"",
						 c.snapshot_text);
		/* a key the row recorded keeps being recorded */
		call.since = c.since_column;
	}
	else
	{
		AttrNumber	att = get_attnum(relid, since);
		Oid			type;
		char	   *max = NULL;
		StringInfoData js;

		if (att == InvalidAttrNumber || att < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist", since, get_rel_name(relid))));
		type = get_atttype(relid, att);
		if (c.since_column && strcmp(c.since_column, since) == 0)
			max = c.since_max;
		else
		{
			/* no recorded maximum: the largest key of the rows the snapshot calls old */
			Datum		args[3];
			Oid			types[3] = {PG_SNAPSHOTOID, XID8ARRAYOID, OIDARRAYOID};
			bool		isnull;
			Datum		d;

			args[2] = CheckSnapshotRule(&c, relid, name);
			args[0] = c.snapshot;
			args[1] = c.own_xids;
			if (Exec(psprintf("SELECT pg_catalog.to_jsonb(pg_catalog.max(%s))::pg_catalog.text FROM %s WHERE NOT %s",
											   quote_identifier(since), c.relation, NEW_BY_XMIN),
									  3, types, args, NULL, true, 1) != SPI_OK_SELECT)
				elog(ERROR, "could not read the maximum of column \"%s\"", since);
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			max = isnull ? NULL : TextDatumGetCString(d);
		}
		if (max == NULL || strcmp(max, "null") == 0)
			filter.new_expr = psprintf("%s IS NOT NULL", quote_identifier(since));
		else
		{
			Datum	   *args = palloc(sizeof(Datum));
			Oid		   *types = palloc(sizeof(Oid));

			args[0] = KeyValue(max, type);
			types[0] = type;
			filter.new_expr = psprintf("%s OPERATOR(pg_catalog.>) $1", quote_identifier(since));
			filter.nargs = 1;
			filter.argtypes = types;
			filter.args = args;
		}
		initStringInfo(&js);
		escape_json(&js, since);
		appendStringInfo(&extra, ", \"new_rows_by\": \"key\", \"previous_since\": {\"column\": %s, \"max\": %s}",
						 js.data, max ? max : "null");
		call.since = since;
	}
	SPI_finish();

	filter.replay = replay;
	filter.seed = 0;
	call.caller = "retrain";
	call.relid = relid;
	call.features = c.features;
	call.label = c.label;
	call.options = c.options;
	call.name = PG_ARGISNULL(4) ? name : text_to_cstring(PG_GETARG_TEXT_PP(4));
	call.warm = ModelDecode(c.model);
	call.filter = &filter;
	call.provenance_extra = extra.data;
	{
		DltOptions	opts;

		/* the replay's seed is the training's */
		DltOptionsDefault(&opts);
		filter.seed = opts.seed;
		{
			JsonbValue	v;

			if (DltJsonbGet(&c.options->root, "seed", &v) && v.type == jbvNumeric)
				filter.seed = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v.val.numeric)));
		}
	}
	MemoryContextSwitchTo(old);
	DltFitRun(fcinfo, &call);
	MemoryContextDelete(cxt);
	return (Datum) 0;
}

/* An xid (a row's xmin) as xid8, widened against the next xid of this scan. */
PG_FUNCTION_INFO_V1(widen_xid);
Datum
widen_xid(PG_FUNCTION_ARGS)
{
	FullTransactionId *next = fcinfo->flinfo->fn_extra;

	DltCheckSqlVersion();
	/*
	 * Read once per scan: every row the scan's snapshot sees was written
	 * before it, so before this next xid.
	 */
	if (next == NULL)
	{
		next = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(FullTransactionId));
		*next = ReadNextFullTransactionId();
		fcinfo->flinfo->fn_extra = next;
	}
	PG_RETURN_FULLTRANSACTIONID(DltWidenXid(PG_GETARG_TRANSACTIONID(0), *next));
}
