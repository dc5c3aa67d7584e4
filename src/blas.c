/*
 * blas.c — where the kernels run: the device, OpenBLAS and dltrain's
 * thread pool.
 *
 * dltrain.device picks the kernels' device interface (kernels/dlk_device.h)
 * for the trainings and scorers that start: "cpu" (OpenBLAS and the pool)
 * or "reference" (the plain reference kernels, for tests).  A CUDA device
 * will be one more, loaded from its own shared object when asked for.
 *
 * _PG_init does not open OpenBLAS: that happens in the first training (or
 * batched scoring) of a backend, so loading dltrain (even through
 * shared_preload_libraries) starts no thread in the postmaster or in
 * backends that never train.  dltrain.threads (capped by the superuser's
 * dltrain.max_threads) sets how many threads the steps of a training run
 * on; the pool's threads call nothing of PostgreSQL and have its signals
 * blocked.
 */
#include "postgres.h"

#include <signal.h>
#include <pthread.h>

#include "miscadmin.h"
#include "access/xact.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "blas.h"
#include "interrupt.h"
#include "kernels/dlk.h"

static int	dltrain_threads = 1;
static int	dltrain_max_threads = 16;

typedef enum DltDeviceKind
{
	DLT_DEVICE_CPU = 0,
	DLT_DEVICE_REFERENCE
} DltDeviceKind;

static int	dltrain_device = DLT_DEVICE_CPU;

const dlk_device *
DltDevice(void)
{
	return dltrain_device == DLT_DEVICE_REFERENCE ? &dlk_device_reference : &dlk_device_cpu;
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

static bool blas_ready = false;

/*
 * Opens OpenBLAS on the first training (or batched scoring) of this
 * backend; with threads >= 1 (a training's dltrain.threads) cuts the work
 * of the steps that follow into threads ranges, starting the helper
 * threads that needs.  Scoring passes 0: its networks never use the pool
 * (DLK_BLAS_UNCUT).  Signals are blocked around
 * both, so any thread OpenBLAS or the pool starts inherits a mask that
 * keeps PostgreSQL's signals on the backend's own thread.
 */
void
DltBlasEnsure(int threads)
{
	sigset_t	all,
				old;
	char		err[256] = "";
	dlk_status	s = DLK_OK;

	sigfillset(&all);
	if (!blas_ready)
	{
		/* start no worker thread at load; dltrain.threads decides later */
		setenv("OPENBLAS_NUM_THREADS", "1", 0);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		s = dlk_blas_open(NULL, err, sizeof(err));
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (s != DLK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("could not load OpenBLAS"),
					 errdetail("%s", err),
					 errhint("Install OpenBLAS (Debian: apt-get install libopenblas0-pthread).")));
		blas_ready = true;
	}
	/*
	 * dltrain's own threads (dlk_pool.c) run every parallel part of a step,
	 * the GEMMs included, each calling OpenBLAS single-threaded: one set of
	 * threads, none spinning against another.
	 */
	if (threads < 1)
		return;
	pthread_sigmask(SIG_SETMASK, &all, &old);
	dlk_blas_set_threads(1);
	s = dlk_pool_set_threads(threads);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (s != DLK_OK)
		elog(ERROR, "could not set %d training threads", threads);
}

/* ---- training ---- */


static void *
DeviceAlloc(void *ctx, size_t bytes)
{
	return MemoryContextAllocExtended((MemoryContext) ctx, bytes,
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

dlk_allocator
DltDeviceAllocator(void)
{
	dlk_allocator a = {CurrentMemoryContext, DeviceAlloc, NULL};

	return a;
}

void
DltDeviceFailed(dlk_status s, const char *what)
{
	if (s == DLK_EABORT)
		DltKernelAborted();
	if (s == DLK_ENOMEM)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("The device could not allocate %s.", what)));
	elog(ERROR, "dltrain: %s failed: %s", what, dlk_status_string(s));
}

void
DltBlasInit(void)
{
	static const struct config_enum_entry device_options[] = {
		{"cpu", DLT_DEVICE_CPU, false},
		{"reference", DLT_DEVICE_REFERENCE, false},
		{NULL, 0, false}
	};

	DefineCustomEnumVariable("dltrain.device",
							 "Sets where trainings and scorers run their kernels.",
							 "cpu runs them on OpenBLAS and dltrain's threads; reference runs the plain reference kernels, much slower, which the tests compare with.",
							 &dltrain_device,
							 DLT_DEVICE_CPU,
							 device_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

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
}
