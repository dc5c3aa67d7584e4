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

#include "checkpoint_worker.h"
#include "engine.h"
#include "interrupt.h"
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

/* Trains on a relation, epoch by epoch, without caching it: one row per epoch. */
PG_FUNCTION_INFO_V1(fit);
Datum
fit(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt;
	MemoryContext old;
	Oid			relid;
	ArrayType  *features;
	char	   *label;
	Jsonb	   *options = NULL;
	char	   *name = NULL;
	DltOptions	opts;
	DltRowSource *src;
	DltSelectConfig cfg = {0};
	DltSelectResult res;
	FitOut		fo = {0};

	DltCheckSqlVersion();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dltrain.fit needs a relation, feature columns and a label column")));
	InitMaterializedSRF(fcinfo, 0);
	cxt = AllocSetContextCreate(rsinfo->econtext->ecxt_per_query_memory,
								"dltrain fit", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	relid = PG_GETARG_OID(0);
	features = PG_GETARG_ARRAYTYPE_P_COPY(1);
	label = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		options = PG_GETARG_JSONB_P_COPY(3);
	if (!PG_ARGISNULL(4))
		name = text_to_cstring(PG_GETARG_TEXT_PP(4));
	DltOptionsParse(&opts, options, true);
	if (opts.buffer_rows == 0)
		opts.buffer_rows = 65536;

	src = DltTableSourceCreate(relid, features, label, &opts, cxt);
	DltProgressStart(cxt, "fit", relid);
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
		if (name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("periodic checkpoints need a name"),
					 errhint("Pass name => '...': the checkpoints are stored as \"name#checkpoint\".")));
		fo.name = name;
		fo.opts = &opts;
		fo.info = DltTableSourceInfo(src);
		fo.features = features;
		fo.label = label;
		fo.options = options;
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
	if (name)
	{
		const DltTableInfo *info = DltTableSourceInfo(src);
		double		loss = opts.epochs > 0 ? res.m->epoch_loss[opts.epochs - 1] : NAN;
		DltCatalogRow row = {0};

		row.name = name;
		row.relation = info->relname;
		row.features = features;
		row.label = label;
		row.options = options;
		row.metrics = psprintf("{\"loss\": %s, \"validation_loss\": %s, \"validation_metric\": %s, \"epochs\": %d}",
							   isnan(loss) ? "null" : psprintf("%.9g", loss),
							   isnan(fo.vloss) ? "null" : psprintf("%.9g", fo.vloss),
							   isnan(fo.vmetric) ? "null" : psprintf("%.9g", fo.vmetric),
							   opts.epochs);
		row.provenance = psprintf("{\"rows\": %lld, \"validation_rows\": %lld, \"skipped\": %lld, \"snapshot_xmin\": %u, \"content_hash\": \"%016llx\"}",
								  (long long) info->rows, (long long) info->validation_rows,
								  (long long) info->skipped, info->snapshot_xmin,
								  (unsigned long long) info->content_hash);
		row.model = fo.model;
		DltCatalogInsert(&row);
	}

	SPI_finish();
	MemoryContextSwitchTo(old);
	/* the tuplestore holds copies: the working memory goes now */
	MemoryContextDelete(cxt);
	return (Datum) 0;
}
