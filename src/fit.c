/*
 * fit.c — dltrain.fit(): train on a relation without caching all of it.
 *
 * Where the aggregate caches every row, fit() streams: its row source
 * (source_table.c) reads the relation again every epoch through the
 * executor, block-shuffled, and shuffles rows within a bounded buffer:
 * CorgiPile's two-level shuffle.  The engine (engine.c) trains the one
 * model; fit returns one row per epoch (loss, validation loss and metric,
 * rows, seconds) and the model in the last, and with a name stores the
 * model in dltrain.models with its provenance.
 *
 * Memory: the call's working memory (the buffer, the validation rows, the
 * trainer) lives in one context that fit deletes when it returns, so fit()
 * in a LATERAL join holds one call's memory at a time; the returned rows
 * are in the tuplestore.
 *
 * The provenance records what a later dltrain.retrain needs to tell the
 * rows added since (newrows.c): the snapshot with 64-bit xids, the
 * transaction's own xids, the relation, its storage and the cluster's
 * system identifier; with the option "since" (a column), the column's
 * maximum.  retrain.c runs its training through DltFitRun too.
 */
#include "postgres.h"

#include <math.h>

#include "executor/spi.h"
#include "funcapi.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "access/xact.h"

#include "checkpoint_worker.h"
#include "engine.h"
#include "fit.h"
#include "interrupt.h"
#include "jsonutil.h"
#include "newrows.h"
#include "progress.h"
#include "relation.h"
#include "rowsource.h"
#include "trainer.h"
#include "version.h"

typedef struct FitOut
{
	ReturnSetInfo *rsinfo;
	/* periodic checkpoints (with a name) */
	const char *name;
	const DltOptions *opts;
	const DltTableInfo *info;
	ArrayType  *features;
	const char *label;
	Jsonb	   *options;
	instr_time	last_checkpoint;
	DltTask		task;
	int			epochs;
	bytea	   *model;			/* the trained model, encoded */
	double		vloss;
	double		vmetric;
	bool		last;			/* the last epoch ran in this call */
	double		last_loss;
	int64		last_rows;
	double		last_secs;
} FitOut;

static void
EmitEpoch(ReturnSetInfo *rsinfo, int epoch, double loss, double vloss, double vmetric,
		  int64 rows, double secs, bytea *model)
{
	Datum		values[8];
	bool		nulls[8] = {false};

	values[0] = Int32GetDatum(epoch);
	values[1] = Float8GetDatum(loss);
	values[2] = Float8GetDatum(vloss);
	values[3] = Float8GetDatum(vmetric);
	nulls[2] = nulls[3] = isnan(vloss);
	values[4] = Int64GetDatum(rows);
	values[5] = Float8GetDatum(secs);
	values[6] = Float8GetDatum(secs > 0 ? rows / secs : 0);
	values[7] = PointerGetDatum(model);
	nulls[7] = (model == NULL);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* After every epoch: its row (and NOTICE with dltrain.log_epochs). */
static void
FitEpochDone(void *arg, const DltSelectResult *r, int e, int64 rows, double secs)
{
	FitOut	   *fo = arg;
	DltModel   *m = r->training;
	double		vloss = m->rows_validation > 0 ? m->val_loss[e] : NAN;
	double		vmetric = m->rows_validation > 0 ? m->val_metric[e] : NAN;

	/* the row holds the double the engine computed; the model its float */
	if (m->rows_validation > 0)
	{
		vloss = r->val_loss;
		vmetric = r->val_metric;
	}
	if (dltrain_log_epochs)		/* the rows returned say it all otherwise */
		ereport(NOTICE,
				(errmsg("epoch %d/%d: loss %.6f%s, %lld rows, %.0f rows/s",
						e + 1, fo->epochs, m->epoch_loss[e],
						isnan(vloss) ? "" : psprintf(", validation loss %.6f, validation %s %.4f",
													 vloss, fo->task == DLT_TASK_CLASSIFICATION ? "accuracy" : "RMSE",
													 vmetric),
						(long long) rows, secs > 0 ? rows / secs : 0)));
	fo->vloss = vloss;
	fo->vmetric = vmetric;
	if (e == fo->epochs - 1)
	{
		/* the last row carries the model: emitted once it is final */
		fo->last_loss = m->epoch_loss[e];
		fo->last_rows = rows;
		fo->last_secs = secs;
		fo->last = true;
		return;
	}
	EmitEpoch(fo->rsinfo, e + 1, m->epoch_loss[e], vloss, vmetric, rows, secs, NULL);
}

/* Is a checkpoint due after epoch e (0-based)? */
static bool
FitCheckpointDue(void *arg, const DltSelectResult *r, int e)
{
	FitOut	   *fo = arg;

	if (fo->opts->checkpoint_every > 0 && (e + 1) % fo->opts->checkpoint_every == 0)
		return true;
	if (fo->opts->checkpoint_minutes > 0)
	{
		instr_time	now;

		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, fo->last_checkpoint);
		return INSTR_TIME_GET_DOUBLE(now) >= fo->opts->checkpoint_minutes * 60;
	}
	return false;
}

/*
 * Stores a checkpoint of the run as "name#checkpoint", committed by a
 * background worker (checkpoint_worker.c): "resume": "name#checkpoint"
 * continues the newest one.
 */
static void
FitCheckpoint(void *arg, const DltSelectResult *r, int e, bytea *model)
{
	FitOut	   *fo = arg;
	DltCatalogRow row = {0};
	char	   *why = NULL;

	row.name = psprintf("%s#checkpoint", fo->name);
	row.relation = fo->info->relname;
	row.features = fo->features;
	row.label = fo->label;
	row.options = fo->options;
	row.model = model;
	row.metrics = psprintf("{\"loss\": %.9g, \"epochs\": %d}", r->training->epoch_loss[e], e + 1);
	{
		StringInfoData b;

		initStringInfo(&b);
		appendStringInfo(&b, "{\"rows\": %lld, \"validation_rows\": %lld, \"skipped\": %lld, \"snapshot_xmin\": %u, \"content_hash\": \"%016llx\", \"checkpoint\": {\"run\": ",
						 (long long) fo->info->rows, (long long) fo->info->validation_rows,
						 (long long) fo->info->skipped, fo->info->snapshot_xmin,
						 (unsigned long long) fo->info->content_hash);
		escape_json(&b, fo->name);
		appendStringInfo(&b, ", \"epoch\": %d}}", e + 1);
		row.provenance = b.data;
	}
	if (!DltStoreCheckpoint(&row, fo->opts->checkpoint_keep, &why))
	{
		if (fo->opts->checkpoint_durable)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not store the checkpoint of epoch %d of \"%s\"", e + 1, fo->name),
					 errdetail("%s.", why),
					 errhint("Raise max_worker_processes, or leave \"checkpoint_durable\" out to train on without it.")));
		ereport(NOTICE,
				(errmsg("the checkpoint of epoch %d of \"%s\" is not durable", e + 1, fo->name),
				 errdetail("%s; training goes on.", why)));
	}
	INSTR_TIME_SET_CURRENT(fo->last_checkpoint);
	DltTestWaitPoint(DLT_WAIT_CHECKPOINT);
}


/* s as a JSON string */
static char *
JsonString(const char *s)
{
	StringInfoData b;

	initStringInfo(&b);
	escape_json(&b, s);
	return b.data;
}

/*
 * Takes "since" (a column whose maximum the provenance records) out of a
 * fit's options: the engine does not know it.
 */
static Jsonb *
TakeSince(Jsonb *options, char **since)
{
	JsonbValue	v;

	if (options == NULL || !JB_ROOT_IS_OBJECT(options) ||
		DltJsonbGet(&options->root, "since", &v) == NULL)
		return options;
	if (v.type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"since\" must be a column name")));
	*since = pnstrdup(v.val.string.val, v.val.string.len);
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(options),
											  CStringGetTextDatum("since")));
}

/*
 * The provenance of a training on a relation: the rows, the snapshot (also
 * 64-bit), the transaction's own xids, the relation and its storage
 * (newrows.h), the key's maximum with "since", and what the caller adds.
 */
static char *
Provenance(const DltFitCall *call, DltRowSource *src, const char *since)
{
	const DltTableInfo *info = DltTableSourceInfo(src);
	StringInfoData b;

	/* the transaction gets its xid now (the insert would give it one) */
	(void) GetTopFullTransactionId();
	initStringInfo(&b);
	appendStringInfo(&b, "{\"rows\": %lld, \"validation_rows\": %lld, \"skipped\": %lld, \"snapshot_xmin\": %u, \"content_hash\": \"%016llx\"",
					 (long long) info->rows, (long long) info->validation_rows,
					 (long long) info->skipped, info->snapshot_xmin,
					 (unsigned long long) info->content_hash);
	if (info->snapshot)
		appendStringInfo(&b, ", \"snapshot\": \"%s\"", info->snapshot);
	appendStringInfo(&b, ", \"xid\": " UINT64_FORMAT ", \"own_xids\": %s",
					 U64FromFullTransactionId(GetTopFullTransactionId()), DltOwnXidsJson());
	appendStringInfo(&b, ", \"relid\": %u, \"relname\": %s, %s",
					 call->relid, JsonString(info->relname), DltStorageJson(call->relid));
	if (since)
	{
		const char *max = info->key_max;
		Oid			type = info->key_type;

		appendStringInfo(&b, ", \"since\": {\"column\": %s, \"type\": %s, \"max\": %s}",
						 JsonString(since), JsonString(format_type_be(type)),
						 max ? max : "null");
	}
	if (info->filtered)
		appendStringInfo(&b, ", \"new_rows\": %lld, \"replayed_rows\": %lld",
						 (long long) (info->rows - info->replayed), (long long) info->replayed);
	if (call->provenance_extra)
		appendStringInfo(&b, ", %s", call->provenance_extra);
	appendStringInfoChar(&b, '}');
	return b.data;
}

void
DltFitRun(FunctionCallInfo fcinfo, const DltFitCall *call)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt;
	MemoryContext old;
	char	   *since = NULL;
	DltOptions	opts;
	DltRowSource *src;
	DltSelectConfig cfg = {0};
	DltSelectResult res;
	FitOut		fo = {0};

	InitMaterializedSRF(fcinfo, 0);
	cxt = AllocSetContextCreate(rsinfo->econtext->ecxt_per_query_memory,
								"dltrain fit", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	{
		Jsonb	   *engine_opts = TakeSince(call->options, &since);

		DltOptionsParse(&opts, engine_opts, true);
		if (call->since)		/* the caller's column wins over the option */
			since = pstrdup(call->since);
	}
	if (call->warm)
		opts.warm = call->warm;
	if (opts.buffer_rows == 0)
		opts.buffer_rows = 65536;

	src = DltTableSourceCreate(call->relid, call->features, call->label, &opts, cxt);
	if (call->filter)
		DltTableSourceSetFilter(src, call->filter);
	if (since)
		DltTableSourceRecordMax(src, since);
	DltProgressStart(cxt, call->caller, call->relid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	fo.rsinfo = rsinfo;
	fo.task = src->task;
	fo.epochs = opts.epochs;
	fo.vloss = fo.vmetric = NAN;
	cfg.tolerate = false;
	cfg.class_notice = true;
	cfg.quiet = true;			/* fit reports its epochs itself */
	cfg.epoch_done = FitEpochDone;
	cfg.arg = &fo;
	if (opts.checkpoint_every > 0 || opts.checkpoint_minutes > 0)
	{
		if (call->name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("periodic checkpoints need a name"),
					 errhint("Pass name => '...': the checkpoints are stored as \"name#checkpoint\".")));
		fo.name = call->name;
		fo.opts = &opts;
		fo.info = DltTableSourceInfo(src);
		fo.features = call->features;
		fo.label = call->label;
		fo.options = call->options;
		INSTR_TIME_SET_CURRENT(fo.last_checkpoint);
		cfg.checkpoint_due = FitCheckpointDue;
		cfg.checkpoint = FitCheckpoint;
	}
	DltTrainMany(src, &opts, 1, &cfg, &res);
	fo.model = ModelEncode(res.m);
	if (fo.last)
		EmitEpoch(rsinfo, opts.epochs, fo.last_loss, fo.vloss, fo.vmetric, fo.last_rows,
				  fo.last_secs, fo.model);
	else
		EmitEpoch(rsinfo, 0, NAN, NAN, NAN, 0, 0, fo.model);
	if (call->name)
	{
		const DltTableInfo *info = DltTableSourceInfo(src);
		double		loss = opts.epochs > 0 ? res.m->epoch_loss[opts.epochs - 1] : NAN;
		DltCatalogRow row = {0};

		row.name = call->name;
		row.relation = info->relname;
		row.features = call->features;
		row.label = call->label;
		row.options = call->options;
		row.metrics = psprintf("{\"loss\": %s, \"validation_loss\": %s, \"validation_metric\": %s, \"epochs\": %d}",
							   isnan(loss) ? "null" : psprintf("%.9g", loss),
							   isnan(fo.vloss) ? "null" : psprintf("%.9g", fo.vloss),
							   isnan(fo.vmetric) ? "null" : psprintf("%.9g", fo.vmetric),
							   opts.epochs);
		row.provenance = Provenance(call, src, since);
		row.model = fo.model;
		DltCatalogInsert(&row);
	}
	else if (call->filter)
	{
		const DltTableInfo *info = DltTableSourceInfo(src);

		ereport(DEBUG1,
				(errmsg("dltrain.retrain: %lld new rows, %lld replayed", (long long) (info->rows - info->replayed),
						(long long) info->replayed)));
	}

	SPI_finish();
	MemoryContextSwitchTo(old);
	/* the tuplestore holds copies: the working memory goes now */
	MemoryContextDelete(cxt);
}

/* Trains on a relation, epoch by epoch, without caching it: one row per epoch. */
PG_FUNCTION_INFO_V1(fit);
Datum
fit(PG_FUNCTION_ARGS)
{
	DltFitCall	call = {0};

	DltCheckSqlVersion();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dltrain.fit needs a relation, feature columns and a label column")));
	call.caller = "fit";
	call.relid = PG_GETARG_OID(0);
	call.features = PG_GETARG_ARRAYTYPE_P_COPY(1);
	call.label = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		call.options = PG_GETARG_JSONB_P_COPY(3);
	if (!PG_ARGISNULL(4))
		call.name = text_to_cstring(PG_GETARG_TEXT_PP(4));
	DltFitRun(fcinfo, &call);
	return (Datum) 0;
}
