/*
 * stats.h — standardization statistics (stats.c): exact, order-independent
 * sums over a row cache, or shifted moments of one pass (fit()).
 */
#ifndef DLTRAIN_STATS_H
#define DLTRAIN_STATS_H

#include "postgres.h"

#include "model.h"

/* row i of a pass, i from 0 to n - 1 in turn */
typedef const float *(*DltRowIter) (void *arg, int64 i);

/*
 * Sets m's mean and scale, exactly (quantized sums between the per-feature
 * minimum and maximum), and fm/fs the float32 versions training applies.
 * cut: the rows are in memory and row(arg, i) may be called from the
 * pool's threads in any order (features are cut over them).
 */
extern void DltExactStats(DltModel *m, int D, int64 n, const float *fmin, const float *fmax,
						  DltRowIter row, void *arg, bool cut, float *fm, float *fs);
/* The same from one pass of shifted moments over n rows. */
extern void DltStatsFinish(DltModel *m, int64 n, const double *sum, const double *sq,
						   const float *shift, float *fm, float *fs);

#endif							/* DLTRAIN_STATS_H */
