/*
 * checkpoint_worker.c — checkpoints that survive the training statement.
 *
 * fit(..., name) with "checkpoint_every" or "checkpoint_minutes" stores a
 * checkpoint of its run in dltrain.models as it trains.  The training
 * statement keeps its one snapshot and cannot commit between epochs, so
 * each checkpoint row is inserted and committed by a short-lived dynamic
 * background worker: it connects to the database as the session user
 * (PostgreSQL 15 connects a worker as a role that may log in), switches to
 * the caller's current user and security context, as parallel workers do,
 * inserts the row, deletes the run's checkpoints beyond the newest K in the
 * same transaction, and commits.  The statement waits for it (a cancel
 * during the wait stops the statement; the worker finishes on its own), so
 * a checkpoint reported stored is committed, and survives a cancel, an
 * error or a crash of the training statement.
 *
 * The row travels in a dynamic shared memory segment the leader creates
 * (its resource owner releases it on error); the worker attaches to it and
 * writes back whether it committed, or the message of its error.  When no
 * worker slot is free, DltStoreCheckpoint returns false: the caller says in
 * a NOTICE that the checkpoint is not durable and goes on, or fails when the
 * user asked for durable checkpoints.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "checkpoint_worker.h"

PGDLLEXPORT void dltrain_checkpoint_main(Datum main_arg);

#define CKPT_FIELDS 8			/* name, relation, features, label, options,
								 * metrics, provenance, model */

typedef struct CkptShared
{
	Oid			dboid;
	Oid			session_user;
	Oid			current_user;
	int			sec_context;
	int			keep;
	Size		off[CKPT_FIELDS];	/* from the start of the segment */
	Size		len[CKPT_FIELDS];
	bool		isnull[CKPT_FIELDS];
	volatile int status;		/* 0 not done, 1 committed, -1 failed */
	char		message[512];
} CkptShared;

/* ---- the worker ---- */

static Datum
FieldText(CkptShared *cs, int i)
{
	return PointerGetDatum(cstring_to_text_with_len((char *) cs + cs->off[i], (int) cs->len[i]));
}

void
dltrain_checkpoint_main(Datum main_arg)
{
	dsm_segment *seg;
	CkptShared *cs;
	Oid			types[CKPT_FIELDS] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, InvalidOid};
	Datum		values[CKPT_FIELDS];
	char		nulls[CKPT_FIELDS];
	Oid			dtypes[2] = {TEXTOID, INT4OID};
	Datum		dvalues[2];

	BackgroundWorkerUnblockSignals();
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "dltrain checkpoint worker");
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("dltrain checkpoint worker: the training ended before its checkpoint was stored")));
	cs = (CkptShared *) dsm_segment_address(seg);
	BackgroundWorkerInitializeConnectionByOid(cs->dboid, cs->session_user, 0);

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SetUserIdAndSecContext(cs->current_user, cs->sec_context);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
		types[7] = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("model"),
								   ObjectIdGetDatum(get_namespace_oid("dltrain", false)));
		for (int i = 0; i < CKPT_FIELDS; i++)
		{
			nulls[i] = cs->isnull[i] ? 'n' : ' ';
			values[i] = (Datum) 0;
			if (cs->isnull[i])
				continue;
			if (i == 7)
			{
				/* the model's bytes, as a varlena */
				bytea	   *m = palloc(VARHDRSZ + cs->len[i]);

				SET_VARSIZE(m, VARHDRSZ + cs->len[i]);
				memcpy(VARDATA(m), (char *) cs + cs->off[i], cs->len[i]);
				values[i] = PointerGetDatum(m);
			}
			else
				values[i] = FieldText(cs, i);
		}
		if (SPI_execute_with_args("INSERT INTO dltrain.models (name, relation, features, label, options, metrics, provenance, model) "
								  "VALUES ($1, $2, $3::pg_catalog.text[], $4, $5::pg_catalog.jsonb, $6::pg_catalog.jsonb, $7::pg_catalog.jsonb, $8)",
								  CKPT_FIELDS, types, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not store the checkpoint in dltrain.models");
		/* the run keeps its newest checkpoints */
		dvalues[0] = FieldText(cs, 0);
		dvalues[1] = Int32GetDatum(cs->keep);
		if (SPI_execute_with_args("DELETE FROM dltrain.models m WHERE m.name = $1 "
								  "AND m.owner = pg_catalog.to_regrole(pg_catalog.quote_ident(current_user)) "
								  "AND m.id NOT IN (SELECT k.id FROM dltrain.models k WHERE k.name = $1 "
								  "AND k.owner = pg_catalog.to_regrole(pg_catalog.quote_ident(current_user)) "
								  "ORDER BY k.created DESC, k.id DESC LIMIT $2)",
								  2, dtypes, dvalues, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete the run's older checkpoints");
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		cs->status = 1;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* what went wrong, for the training that waits; then the usual exit */
		HOLD_INTERRUPTS();
		edata = CopyErrorData();
		strlcpy(cs->message, edata->message ? edata->message : "unknown error", sizeof(cs->message));
		cs->status = -1;
		RESUME_INTERRUPTS();
		PG_RE_THROW();
	}
	PG_END_TRY();
	dsm_detach(seg);
}

/* ---- the training's side ---- */

bool
DltStoreCheckpoint(const DltCatalogRow *row, int keep, char **why)
{
	const char *text[CKPT_FIELDS];
	Size		len[CKPT_FIELDS];
	Size		total = MAXALIGN(sizeof(CkptShared));
	dsm_segment *seg;
	CkptShared *cs;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus st;
	char	   *p;
	bool		ok;

	text[0] = row->name;
	text[1] = row->relation;
	text[2] = NULL;
	if (row->features)
	{
		Oid			out;
		bool		isvarlena;

		getTypeOutputInfo(TEXTARRAYOID, &out, &isvarlena);
		text[2] = OidOutputFunctionCall(out, PointerGetDatum(row->features));
	}
	text[3] = row->label;
	text[4] = row->options ?
		DatumGetCString(DirectFunctionCall1(jsonb_out, JsonbPGetDatum(row->options))) : "{}";
	text[5] = row->metrics;
	text[6] = row->provenance;
	text[7] = VARDATA(row->model);
	for (int i = 0; i < CKPT_FIELDS; i++)
	{
		len[i] = text[i] == NULL ? 0 : i == 7 ? VARSIZE(row->model) - VARHDRSZ : strlen(text[i]);
		total = add_size(total, len[i]);
	}

	seg = dsm_create(total, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
	{
		*why = "no dynamic shared memory segment is free";
		return false;
	}
	cs = (CkptShared *) dsm_segment_address(seg);
	memset(cs, 0, sizeof(CkptShared));
	cs->dboid = MyDatabaseId;
	cs->session_user = GetSessionUserId();
	GetUserIdAndSecContext(&cs->current_user, &cs->sec_context);
	cs->keep = keep;
	p = (char *) cs + MAXALIGN(sizeof(CkptShared));
	for (int i = 0; i < CKPT_FIELDS; i++)
	{
		cs->isnull[i] = text[i] == NULL;
		cs->off[i] = p - (char *) cs;
		cs->len[i] = len[i];
		if (len[i] > 0)
			memcpy(p, text[i], len[i]);
		p += len[i];
	}

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "dltrain", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "dltrain_checkpoint_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "dltrain checkpoint", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "dltrain checkpoint", BGW_MAXLEN);
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		dsm_detach(seg);
		*why = "no background worker slot is free (max_worker_processes)";
		return false;
	}
	st = WaitForBackgroundWorkerShutdown(handle);
	ok = st == BGWH_STOPPED && cs->status == 1;
	if (!ok)
		*why = cs->status == -1 ? pstrdup(cs->message) :
			st == BGWH_POSTMASTER_DIED ? "the postmaster died" : "the worker ended without storing it";
	dsm_detach(seg);
	return ok;
}
