/*
 * dltrain.c — the module's entry point.
 *
 * _PG_init calls one Init per subsystem, each defining the GUCs of what it
 * controls, then reserves the prefix.  It opens no library and starts no
 * thread: OpenBLAS and the pool open on a backend's first training
 * (blas.c).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "blas.h"
#include "budget.h"
#include "engine.h"
#include "materialize.h"
#include "interrupt.h"
#include "merge.h"
#include "planner_hook.h"
#include "progress.h"
#include "trainer.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	DltBlasInit();
	DltBudgetInit();
	DltTrainerInitGucs();
	DltMergeInit();
	DltEngineInit();
	DltMaterializeInit();
	DltInterruptInit();
	MarkGUCPrefixReserved("dltrain");
	DltProgressShmemInit();
	DltPlannerHookInstall();
}
