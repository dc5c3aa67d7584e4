/*
 * interrupt.h — cancel inside kernel calls, and the wait points tests stop
 * statements at (interrupt.c).
 */
#ifndef DLTRAIN_INTERRUPT_H
#define DLTRAIN_INTERRUPT_H

#include "postgres.h"

/*
 * dltrain.test_wait_point (superuser, tests only): at the point named, a
 * backend first takes the transaction-level advisory lock
 * DLT_TEST_WAIT_LOCK, so a test holding it sees the statement wait there.
 */
typedef enum DltWaitPoint
{
	DLT_WAIT_NONE = 0,
	DLT_WAIT_CACHING,			/* the aggregate's first row */
	DLT_WAIT_PREPARING,			/* before the passes over the row cache */
	DLT_WAIT_TRAINING,			/* before the first mini-batch */
	DLT_WAIT_EXPORT,			/* export(), the model decoded */
	DLT_WAIT_IMPORT,			/* import(), before the weights are read */
	DLT_WAIT_PREDICT_BATCH,		/* predict_batch(), before the first batch */
	DLT_WAIT_CHECKPOINT			/* fit(), after a checkpoint is stored */
} DltWaitPoint;
#define DLT_TEST_WAIT_LOCK INT64CONST(1684829298)

extern void DltTestWaitPoint(DltWaitPoint point);

/*
 * After a kernel returned DLK_EABORT (its abort callback saw a pending
 * cancel or termination): CHECK_FOR_INTERRUPTS() raises it.
 */
extern pg_attribute_noreturn() void DltKernelAborted(void);

/* the GUC, and the kernels' abort callback */
extern void DltInterruptInit(void);

#endif							/* DLTRAIN_INTERRUPT_H */
