/*
 * progress.c — the progress of running trainings, in shared memory, and the
 * dltrain.training_progress view over it.
 *
 * Slots.  With dltrain in shared_preload_libraries, shared memory holds one
 * DltProgressSlot per backend: MaxBackends of them (requested in the
 * shmem_request_hook, when MaxBackends is known), indexed by MyBackendId - 1
 * and zeroed in the shmem_startup_hook (a re-attaching EXEC_BACKEND child
 * finds them and leaves them alone).  A slot is in use while its pid is not
 * 0.  Both hooks chain to the previous ones.
 *
 * Who writes what.  Only the backend that owns a slot writes it, and there
 * is no lock: every write is bracketed by two increments of the slot's
 * changecount with write barriers in between (as PostgreSQL's
 * PGSTAT_BEGIN/END_WRITE_ACTIVITY do for PgBackendStatus), inside a critical
 * section of a few straight-line stores, so the per-batch update costs two
 * barriers and never waits.  Readers (training_progress) copy a slot between
 * two reads of its changecount with read barriers and retry until both reads
 * are equal and even, i.e. no write overlapped the copy.  A reader never
 * blocks a writer; a writer never fails.
 *
 * One report per backend.  A backend reports one training: the newest.  A
 * DltProgressStart while a training is already reported (several groups of a
 * GROUP BY each start one) takes the slot over (new kind, relation and start
 * time, counters reset); the later Phase/Epoch/Rows calls of any of them
 * update it.  Each Start counts one live training, which ends (resource.c)
 * when the memory context it is given is deleted or reset, or when the
 * resource owner it started under is released, whichever comes first; the
 * slot is cleared when the last live training ends, so a finished training
 * does not hide one that still runs, and no ended one leaves a row behind.
 *
 * Errors and cancels.  An error or a cancel deletes the training's memory
 * context with the query, or releases its resource owner (a cursor that
 * failed inside a savepoint keeps its memory until it is closed, but its
 * training ended with the savepoint), which clears the slot.  As a backstop, the end of
 * the top-level transaction (commit, abort or prepare: no training outlives
 * the statement that runs it) and the exit of the backend clear the slot
 * too; a generation number, bumped by such a forced clear, makes the reset
 * callbacks of trainings from before it do nothing.  A backend killed hard
 * restarts the cluster, which zeroes shared memory.
 *
 * Without preload.  No shared memory is requested: every DltProgress* call
 * returns after one test of a NULL pointer, and training_progress() raises
 * OBJECT_NOT_IN_PREREQUISITE_STATE with a hint.
 *
 * Privacy, as in pg_stat_activity: a caller sees every column of its own
 * rows, of the rows of roles it has the privileges of, and of every row if it
 * has the privileges of pg_read_all_stats; of other rows only pid, usesysid
 * and usename.  usesysid is the session user, as in pg_stat_activity.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "progress.h"
#include "resource.h"
#include "version.h"

#define DLT_KIND_LEN 32

typedef struct DltProgressSlot
{
	uint32		changecount;	/* odd while its backend writes it */
	int			pid;			/* 0: no training reported */
	Oid			userid;			/* the session user */
	Oid			relid;			/* InvalidOid: none (the aggregate) */
	int			phase;			/* a DltPhase, 0 before the first */
	int			epoch;			/* 1-based */
	int			epochs;			/* 0: not training yet */
	int64		rows_done;
	int64		rows_total;		/* -1: unknown */
	double		loss;			/* NaN: none yet */
	double		rows_per_sec;	/* 0: none yet */
	TimestampTz started;
	char		kind[DLT_KIND_LEN];
} DltProgressSlot;

/* the shared array, NULL without preload */
static DltProgressSlot *progress_slots = NULL;

/* this backend's slot while it reports a training, else NULL */
static DltProgressSlot *my_slot = NULL;
static int	live_trainings = 0;	/* registered contexts not yet gone */
static uint64 progress_generation = 0;	/* bumped by a forced clear */
static bool callbacks_registered = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* what the end of a training needs to know */
typedef struct DltProgressOwner
{
	uint64		generation;
} DltProgressOwner;

#define BEGIN_SLOT_WRITE(s) \
	do { \
		START_CRIT_SECTION(); \
		(s)->changecount++; \
		pg_write_barrier(); \
	} while (0)

#define END_SLOT_WRITE(s) \
	do { \
		pg_write_barrier(); \
		(s)->changecount++; \
		Assert(((s)->changecount & 1) == 0); \
		END_CRIT_SECTION(); \
	} while (0)

static Size
ProgressShmemSize(void)
{
	return mul_size(MaxBackends, sizeof(DltProgressSlot));
}

static void
ProgressShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(ProgressShmemSize());
}

static void
ProgressShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	progress_slots = ShmemInitStruct("dltrain training progress",
									 ProgressShmemSize(), &found);
	if (!found)
		memset(progress_slots, 0, ProgressShmemSize());
	LWLockRelease(AddinShmemInitLock);
}

void
DltProgressShmemInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ProgressShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ProgressShmemStartup;
}

/* Empties this backend's slot and forgets every live training. */
static void
ProgressClear(void)
{
	if (my_slot != NULL)
	{
		volatile DltProgressSlot *s = my_slot;

		BEGIN_SLOT_WRITE(s);
		s->pid = 0;
		END_SLOT_WRITE(s);
		my_slot = NULL;
	}
	live_trainings = 0;
	progress_generation++;
}

/* A training ends: the slot empties with the last one. */
static void
ProgressOwnerGone(void *arg, DltReleaseHow how)
{
	DltProgressOwner *owner = (DltProgressOwner *) arg;

	if (owner->generation != progress_generation)
		return;					/* a forced clear already forgot it */
	if (--live_trainings <= 0)
		ProgressClear();
}

static void
ProgressXactEnd(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			if (live_trainings > 0 || my_slot != NULL)
				ProgressClear();
			break;
		default:
			break;
	}
}

static void
ProgressBackendExit(int code, Datum arg)
{
	ProgressClear();
}

void
DltProgressStart(MemoryContext cxt, const char *kind, Oid relid)
{
	DltProgressOwner *owner;
	volatile DltProgressSlot *s;
	Oid			userid;
	TimestampTz started;

	if (progress_slots == NULL)
		return;
	if (MyBackendId < 1 || MyBackendId > MaxBackends)
		return;					/* no backend id (InvalidBackendId is -1) */

	if (!callbacks_registered)
	{
		RegisterXactCallback(ProgressXactEnd, NULL);
		before_shmem_exit(ProgressBackendExit, (Datum) 0);
		callbacks_registered = true;
	}

	owner = MemoryContextAlloc(cxt, sizeof(DltProgressOwner));
	owner->generation = progress_generation;
	(void) DltResourceRegister(cxt, ProgressOwnerGone, owner);
	live_trainings++;

	userid = GetSessionUserId();
	started = GetCurrentTimestamp();
	my_slot = &progress_slots[MyBackendId - 1];
	s = my_slot;
	BEGIN_SLOT_WRITE(s);
	s->pid = MyProcPid;
	s->userid = userid;
	s->relid = relid;
	s->phase = 0;
	s->epoch = 0;
	s->epochs = 0;
	s->rows_done = 0;
	s->rows_total = -1;
	s->loss = NAN;
	s->rows_per_sec = 0;
	s->started = started;
	strlcpy((char *) s->kind, kind, DLT_KIND_LEN);
	END_SLOT_WRITE(s);
}

void
DltProgressPhase(DltPhase phase)
{
	volatile DltProgressSlot *s = my_slot;

	if (s == NULL)
		return;
	BEGIN_SLOT_WRITE(s);
	s->phase = phase;			/* the counters stay until the next Rows */
	END_SLOT_WRITE(s);
}

void
DltProgressEpoch(int epoch, int epochs)
{
	volatile DltProgressSlot *s = my_slot;

	if (s == NULL)
		return;
	BEGIN_SLOT_WRITE(s);
	s->epoch = epoch;
	s->epochs = epochs;
	s->rows_done = 0;			/* rows count within an epoch */
	END_SLOT_WRITE(s);
}

void
DltProgressRows(int64 rows_done, int64 rows_total, double loss, double rows_per_sec)
{
	volatile DltProgressSlot *s = my_slot;

	if (s == NULL)
		return;
	BEGIN_SLOT_WRITE(s);
	s->rows_done = rows_done;
	s->rows_total = rows_total;
	s->loss = loss;
	s->rows_per_sec = rows_per_sec;
	END_SLOT_WRITE(s);
}

/* Copies a slot as one consistent snapshot (see the header comment). */
static void
ProgressReadSlot(volatile DltProgressSlot *s, DltProgressSlot *copy)
{
	for (;;)
	{
		uint32		before = s->changecount;
		uint32		after;

		pg_read_barrier();
		memcpy(copy, (DltProgressSlot *) s, sizeof(DltProgressSlot));
		pg_read_barrier();
		after = s->changecount;
		if (before == after && (before & 1) == 0)
			break;
		CHECK_FOR_INTERRUPTS();
	}
}

static const char *
ProgressPhaseName(int phase)
{
	switch (phase)
	{
		case DLT_PHASE_CACHING:
			return "caching rows";
		case DLT_PHASE_PREPARING:
			return "preparing";
		case DLT_PHASE_TRAINING:
			return "training";
		case DLT_PHASE_READING:
			return "reading";
	}
	return NULL;
}

#define PROGRESS_COLS 13

/* One row per running training of the cluster (the dltrain.training_progress view). */
PG_FUNCTION_INFO_V1(training_progress);
Datum
training_progress(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		read_all;

	DltCheckSqlVersion();
	if (progress_slots == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("dltrain.training_progress requires dltrain in shared_preload_libraries"),
				 errhint("Add dltrain to shared_preload_libraries in postgresql.conf and restart the server.")));

	InitMaterializedSRF(fcinfo, 0);
	read_all = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	for (int i = 0; i < MaxBackends; i++)
	{
		DltProgressSlot slot;
		Datum		values[PROGRESS_COLS];
		bool		nulls[PROGRESS_COLS];
		char	   *usename;
		const char *phase;

		if (progress_slots[i].pid == 0)
			continue;			/* a cheap skip; the copy decides */
		ProgressReadSlot(&progress_slots[i], &slot);
		if (slot.pid == 0)
			continue;

		memset(nulls, true, sizeof(nulls));
		values[0] = Int32GetDatum(slot.pid);
		nulls[0] = false;
		values[1] = ObjectIdGetDatum(slot.userid);
		nulls[1] = false;
		usename = GetUserNameFromId(slot.userid, true);
		if (usename != NULL)
		{
			values[2] = DirectFunctionCall1(namein, CStringGetDatum(usename));
			nulls[2] = false;
		}

		if (read_all || has_privs_of_role(GetUserId(), slot.userid))
		{
			slot.kind[DLT_KIND_LEN - 1] = '\0';
			values[3] = CStringGetTextDatum(slot.kind);
			nulls[3] = false;
			if (OidIsValid(slot.relid))
			{
				values[4] = ObjectIdGetDatum(slot.relid);
				nulls[4] = false;
			}
			phase = ProgressPhaseName(slot.phase);
			if (phase != NULL)
			{
				values[5] = CStringGetTextDatum(phase);
				nulls[5] = false;
			}
			if (slot.epochs > 0)
			{
				values[6] = Int32GetDatum(slot.epoch);
				values[7] = Int32GetDatum(slot.epochs);
				nulls[6] = nulls[7] = false;
			}
			values[8] = Int64GetDatum(slot.rows_done);
			nulls[8] = false;
			if (slot.rows_total >= 0)
			{
				values[9] = Int64GetDatum(slot.rows_total);
				nulls[9] = false;
			}
			if (!isnan(slot.loss))
			{
				values[10] = Float8GetDatum(slot.loss);
				nulls[10] = false;
			}
			if (slot.rows_per_sec > 0)
			{
				values[11] = Float8GetDatum(slot.rows_per_sec);
				nulls[11] = false;
			}
			values[12] = TimestampTzGetDatum(slot.started);
			nulls[12] = false;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
