/*
 * progress.h — dltrain.training_progress: what each backend's training is
 * doing, in shared memory (progress.c).
 */
#ifndef DLTRAIN_PROGRESS_H
#define DLTRAIN_PROGRESS_H

#include "postgres.h"

typedef enum DltPhase
{
	DLT_PHASE_CACHING = 1,		/* the aggregate receives rows */
	DLT_PHASE_PREPARING,		/* canonical order, classes, statistics */
	DLT_PHASE_TRAINING,			/* epochs */
	DLT_PHASE_READING			/* fit(): a pass over the table */
} DltPhase;

/*
 * A backend reports one training at a time: the newest.  A DltProgressStart
 * while another training of the backend is alive (several groups of a
 * GROUP BY) takes the report over; the report ends when the last of them
 * ends.  DltProgressStart registers a callback on cxt, so a training ends
 * when that memory context is deleted or reset: at the end of the
 * training, or when an error or a cancel aborts it.  All calls are cheap
 * no-ops when dltrain is not in shared_preload_libraries.
 */
extern void DltProgressShmemInit(void);
extern void DltProgressStart(MemoryContext cxt, const char *kind, Oid relid);
extern void DltProgressPhase(DltPhase phase);
extern void DltProgressEpoch(int epoch, int epochs);
extern void DltProgressRows(int64 rows_done, int64 rows_total, double loss,
							double rows_per_sec);

#endif							/* DLTRAIN_PROGRESS_H */
