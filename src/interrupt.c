/*
 * interrupt.c — cancel inside kernel calls, and test wait points.
 *
 * DltInterruptInit gives the kernels their abort callback
 * (DltAbortRequested): it runs on the backend's thread, between pieces of
 * a long kernel call, and says "stop" exactly when CHECK_FOR_INTERRUPTS()
 * would raise an error now (a cancel, statement_timeout, a termination),
 * without raising it: the kernel returns DLK_EABORT, stopping the pool's
 * helpers through its flag, and the glue calls DltKernelAborted(), whose
 * CHECK_FOR_INTERRUPTS() raises the error outside the kernel.
 * dltrain.test_wait_point lets tests stop a backend at a named phase on an
 * advisory lock (a heavyweight lock, which isolationtester sees).
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"

#include "interrupt.h"
#include "kernels/dlk.h"

static int	dltrain_test_wait_point = DLT_WAIT_NONE;

static const struct config_enum_entry wait_point_options[] = {
	{"", DLT_WAIT_NONE, false},
	{"none", DLT_WAIT_NONE, true},
	{"caching", DLT_WAIT_CACHING, false},
	{"preparing", DLT_WAIT_PREPARING, false},
	{"training", DLT_WAIT_TRAINING, false},
	{"export", DLT_WAIT_EXPORT, false},
	{"import", DLT_WAIT_IMPORT, false},
	{"predict_batch", DLT_WAIT_PREDICT_BATCH, false},
	{"checkpoint", DLT_WAIT_CHECKPOINT, false},
	{NULL, 0, false}
};

/*
 * The kernels' abort callback: would CHECK_FOR_INTERRUPTS() raise an error
 * now?  Reads the backend's flags only (it runs on the backend's thread,
 * between pieces of kernel work); raises nothing.
 */
static int
DltAbortRequested(void *arg)
{
	if (!InterruptPending || InterruptHoldoffCount != 0 || CritSectionCount != 0)
		return 0;
	return ProcDiePending || ClientConnectionLost ||
		(QueryCancelPending && QueryCancelHoldoffCount == 0);
}

void
DltKernelAborted(void)
{
	CHECK_FOR_INTERRUPTS();
	elog(ERROR, "dltrain: a kernel stopped with no interrupt pending");
}

void
DltTestWaitPoint(DltWaitPoint point)
{
	if (dltrain_test_wait_point != point || point == DLT_WAIT_NONE)
		return;
	DirectFunctionCall1(pg_advisory_xact_lock_int8, Int64GetDatum(DLT_TEST_WAIT_LOCK));
}

void
DltInterruptInit(void)
{
	DefineCustomEnumVariable("dltrain.test_wait_point",
							 "Makes statements wait on an advisory lock at a named point (for tests).",
							 "At the point named (caching, preparing, training, export, import, predict_batch or checkpoint), the backend first takes the transaction-level advisory lock 1684829298, so a test that holds it sees the statement wait there. Empty: no wait.",
							 &dltrain_test_wait_point,
							 DLT_WAIT_NONE,
							 wait_point_options,
							 PGC_SUSET, GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
	dlk_set_abort(DltAbortRequested, NULL);
}
