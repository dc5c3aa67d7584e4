/*
 * blas.h — where the kernels run: the device (dltrain.device), OpenBLAS and
 * dltrain's thread pool, opened on a backend's first training or batched
 * scoring (blas.c).
 */
#ifndef DLTRAIN_BLAS_H
#define DLTRAIN_BLAS_H

#include "postgres.h"

#include "kernels/dlk_device.h"

/*
 * Opens OpenBLAS (once per backend), and with threads >= 1 sets the pool
 * that runs the steps to that many threads; 0 only opens it (scoring).
 */
extern void DltBlasEnsure(int threads);
/* dltrain.threads, capped by dltrain.max_threads (with a NOTICE once per statement) */
extern int	DltThreads(void);
/* The device of trainings and scorers that start now (dltrain.device). */
extern const dlk_device *DltDevice(void);
/*
 * What a device allocates takes the memory context current now (NULL on
 * failure: the device returns DLK_ENOMEM), so the context frees it.
 */
extern dlk_allocator DltDeviceAllocator(void);
/* A device status that is not DLK_OK for what: the pending cancel, or an error. */
extern pg_attribute_noreturn() void DltDeviceFailed(dlk_status s, const char *what);

/* dltrain.threads, dltrain.max_threads and dltrain.device */
extern void DltBlasInit(void);

#endif							/* DLTRAIN_BLAS_H */
