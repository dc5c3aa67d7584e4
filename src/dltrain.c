/*
 * dltrain.c — module entry point and configuration (GUCs).
 *
 * _PG_init only defines GUCs.  It does not open OpenBLAS: that happens in
 * the first training of a backend (DltBlasEnsure in train.c), so loading
 * dltrain (even through shared_preload_libraries) starts no thread in the
 * postmaster or in backends that never train.
 *
 * Cancel.  _PG_init also gives the kernels their abort callback
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
#include <limits.h>

#include "miscadmin.h"
#include "utils/fmgrprotos.h"
#include "access/xact.h"
#include "utils/guc.h"

#include "dltrain.h"
#include "budget.h"

PG_MODULE_MAGIC;

int			dltrain_threads = 1;
int			dltrain_max_threads = 16;
bool		dltrain_verbose = false;
int			dltrain_test_wait_point = DLT_WAIT_NONE;

void		_PG_init(void);

static const struct config_enum_entry fusion_options[] = {
	{"off", DLT_FUSION_OFF, false},
	{"auto", DLT_FUSION_AUTO, false},
	{"on", DLT_FUSION_ON, false},
	{"false", DLT_FUSION_OFF, true},
	{"true", DLT_FUSION_ON, true},
	{NULL, 0, false}
};

static const struct config_enum_entry wait_point_options[] = {
	{"", DLT_WAIT_NONE, false},
	{"none", DLT_WAIT_NONE, true},
	{"caching", DLT_WAIT_CACHING, false},
	{"preparing", DLT_WAIT_PREPARING, false},
	{"training", DLT_WAIT_TRAINING, false},
	{"export", DLT_WAIT_EXPORT, false},
	{"import", DLT_WAIT_IMPORT, false},
	{"predict_batch", DLT_WAIT_PREDICT_BATCH, false},
	{NULL, 0, false}
};

static void
GucInit(void)
{
	DefineCustomIntVariable("dltrain.threads",
							"Sets the number of threads a training uses.",
							"They share each step's matrix products, optimizer update and batch copy; 1 keeps training on the backend's own thread.",
							&dltrain_threads,
							1, 1, 64,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("dltrain.max_threads",
							"Sets the ceiling on dltrain.threads that ordinary users cannot raise.",
							"A training asked to use more threads uses this many, with a NOTICE.",
							&dltrain_max_threads,
							16, 1, 64,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("dltrain.cache_mem",
							"Sets the memory budget of one dltrain call, for everything it holds together.",
							"The row cache, row indexes, held-out rows, the buffers of every model trained together, and scorers all count. A row cache that would not fit beside its indexes spills to temporary files; anything else over the budget is an error. It is capped by dltrain.max_cache_mem.",
							&dltrain_cache_mem_kb,
							1024 * 1024, 64, INT_MAX,
							PGC_USERSET, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("dltrain.max_cache_mem",
							"Sets the ceiling on dltrain.cache_mem that ordinary users cannot raise.",
							"The budget a training gets is the smaller of dltrain.cache_mem and this value.",
							&dltrain_max_cache_mem_kb,
							8 * 1024 * 1024, 64, INT_MAX,
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("dltrain.max_total_mem",
							"Sets the ceiling on the memory all dltrain calls of the cluster hold together.",
							"Each call reserves what it holds in shared memory before it allocates; a call that would pass the ceiling fails. -1 means half of the machine's physical memory. It needs dltrain in shared_preload_libraries.",
							&dltrain_max_total_mem_kb,
							-1, -1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("dltrain.log_epochs",
							 "Reports one NOTICE per training epoch.",
							 "Each line gives the epoch, the training loss and the rows per second.",
							 &dltrain_verbose,
							 false,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("dltrain.enable_merge",
							 "Lets train_mlp calls of one statement over the same rows share one scan and row cache.",
							 "Calls with the same features, label and FILTER train side by side from one cache; each still returns its own model.",
							 &dltrain_enable_merge,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("dltrain.enable_merge_rewrite",
							 "Lets the planner rewrite mergeable train_mlp calls into one train_mlp_multi call.",
							 "The rewrite shows the merge in EXPLAIN VERBOSE. It needs dltrain loaded at planning time (shared_preload_libraries or LOAD).",
							 &dltrain_enable_merge_rewrite,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("dltrain.fusion",
							 "Computes the first layers of models trained together in one matrix product.",
							 "auto fuses models without hidden layers, where it is faster; on fuses every model; off fuses none, so that every merged model is byte for byte the model trained alone.",
							 &dltrain_fusion,
							 DLT_FUSION_AUTO,
							 fusion_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("dltrain.test_wait_point",
							 "Makes statements wait on an advisory lock at a named point (for tests).",
							 "At the point named (caching, preparing, training, export, import or predict_batch), the backend first takes the transaction-level advisory lock 1684829298, so a test that holds it sees the statement wait there. Empty: no wait.",
							 &dltrain_test_wait_point,
							 DLT_WAIT_NONE,
							 wait_point_options,
							 PGC_SUSET, GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("dltrain");
}

int
DltThreads(void)
{
	static TimestampTz noticed = 0;	/* the statement that was told */

	if (dltrain_threads > dltrain_max_threads)
	{
		if (noticed != GetCurrentStatementStartTimestamp())
		{
			noticed = GetCurrentStatementStartTimestamp();
			ereport(NOTICE,
					(errmsg("dltrain.threads = %d is capped at dltrain.max_threads = %d",
							dltrain_threads, dltrain_max_threads)));
		}
		return dltrain_max_threads;
	}
	return dltrain_threads;
}

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
_PG_init(void)
{
	GucInit();
	DltBudgetInit();
	dlk_set_abort(DltAbortRequested, NULL);
	DltProgressShmemInit();
	DltPlannerHookInstall();
}
