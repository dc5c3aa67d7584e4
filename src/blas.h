/*
 * blas.h — OpenBLAS and dltrain's thread pool, opened on a backend's first
 * training or batched scoring (blas.c).
 */
#ifndef DLTRAIN_BLAS_H
#define DLTRAIN_BLAS_H

#include "postgres.h"

/*
 * Opens OpenBLAS (once per backend), and with threads >= 1 sets the pool
 * that runs the steps to that many threads; 0 only opens it (scoring).
 */
extern void DltBlasEnsure(int threads);
/* dltrain.threads, capped by dltrain.max_threads (with a NOTICE once per statement) */
extern int	DltThreads(void);
/* dltrain.threads and dltrain.max_threads */
extern void DltBlasInit(void);

#endif							/* DLTRAIN_BLAS_H */
