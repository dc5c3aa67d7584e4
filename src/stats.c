/*
 * stats.c — standardization statistics.
 *
 * Training standardizes each feature with the mean and 1/std of the
 * training data; the statistics travel in the model so that predict
 * applies the same.  Two ways to compute them: exact, order-independent
 * quantized sums over a row cache (DltExactStats: the model then depends
 * only on the multiset of rows), or shifted moments of one streamed pass
 * (DltStatsFinish: fit(), whose rows come in block-shuffled order).
 */
#include "postgres.h"

#include <math.h>

#include "budget.h"
#include "interrupt.h"
#include "kernels/dlk.h"
#include "stats.h"

/* floats of rows between two abort polls in a pass on the pool's threads */
#define POLL_FLOATS 1048576

/*
 * scale = 1/std (population std), or 1 for a (near) constant feature, so a
 * zero-variance feature becomes 0 instead of dividing by zero.
 */
static void
StatsFinishScale(DltModel *m, int d, double mean, double var)
{
	double		sd = sqrt(Max(var, 0.0));

	m->scale[d] = (sd > 1e-12 * Max(1.0, fabs(mean))) ? 1.0 / sd : 1.0;
}

/*
 * Sets m's standardization from one pass of shifted moments over n rows
 * (fit()): mean, and scale as StatsFinishScale.  fm and fs get the
 * float32 versions that training and predict apply.
 */
void
DltStatsFinish(DltModel *m, int64 n, const double *sum, const double *sq,
			   const float *shift, float *fm, float *fs)
{
	int			D = m->arch.dims[0];

	m->normalized = true;
	m->mean = palloc(sizeof(double) * D);
	m->scale = palloc(sizeof(double) * D);
	for (int d = 0; d < D; d++)
	{
		double		mu = sum[d] / n;

		m->mean[d] = shift[d] + mu;
		StatsFinishScale(m, d, m->mean[d], sq[d] / n - mu * mu);
		fm[d] = (float) m->mean[d];
		fs[d] = (float) m->scale[d];
	}
}

/*
 * Exact standardization statistics, in whatever order the rows are stored:
 * one sequential pass of quantized sums (dlk_qsum_accumulate) of each
 * feature's deviation from the middle of its range (known from the
 * transition) and of its square.  The quanta are the half range, and its
 * square, over 2^52/n, so every partial sum is an exact integer in double:
 * the result depends only on the multiset of rows, without walking them in
 * canonical order.  mean = center + E[v], var = E[v^2] - E[v]^2 with
 * v = x - center: both terms are at most half^2, so the subtraction loses
 * nothing next to the quantization, about half^2 * 2^-(52 - log2 n) (e.g.
 * 2e-10 of the half range squared at a million rows).  row(arg, i) returns
 * row i of the pass, i from 0 to n - 1 in turn.  The statistics are over
 * every cached row, validation rows included (they are part of the data the
 * model is for, and this keeps one set of statistics for all members).
 */

/*
 * Rows in memory: the sums run on the pool's threads (dlk_pool_for) with
 * features cut; each range walks every row, in order, for its features:
 * the same sums.  QsumRange touches memory only.
 */
typedef struct QsumJob
{
	DltRowIter	row;
	void	   *arg;
	int64		n;
	const double *center;
	const double *inv_q1;
	const double *inv_q2;
	double	   *acc1;
	double	   *acc2;
} QsumJob;

static void
QsumRange(void *arg, size_t lo, size_t hi)
{
	const QsumJob *j = arg;
	int64		pr = Max(1, POLL_FLOATS / Max((int) (hi - lo), 1));

	for (int64 i = 0; i < j->n; i++)
	{
		if (i % pr == 0 && dlk_abort_poll())
			return;
		dlk_qsum_accumulate(j->acc1 + lo, j->acc2 + lo, j->row(j->arg, i) + lo,
							j->center + lo, j->inv_q1 + lo, j->inv_q2 + lo,
							(int) (hi - lo));
	}
}

void
DltExactStats(DltModel *m, int D, int64 n, const float *fmin, const float *fmax,
			  DltRowIter row, void *arg, bool cut, float *fm, float *fs)
{
	double	   *center = palloc(sizeof(double) * D);
	double	   *inv_q1 = palloc(sizeof(double) * D);
	double	   *inv_q2 = palloc(sizeof(double) * D);
	double	   *acc1 = palloc0(sizeof(double) * D);
	double	   *acc2 = palloc0(sizeof(double) * D);
	double		levels = ldexp(1.0, 52);
	int			L = 0;

	while (L < 62 && ((int64) 1 << L) < n)
		L++;
	levels = ldexp(levels, -L);	/* 2^52 / 2^ceil(log2 n) per term */

	for (int d = 0; d < D; d++)
	{
		double		half = ((double) fmax[d] - (double) fmin[d]) / 2;

		center[d] = ((double) fmax[d] + (double) fmin[d]) / 2;
		inv_q1[d] = half > 0 ? levels / half : 0;
		inv_q2[d] = half > 0 ? levels / (half * half) : 0;
	}
	if (cut)
	{
		/* rows in memory: features cut over the pool's threads */
		QsumJob		job = {row, arg, n, center, inv_q1, inv_q2, acc1, acc2};

		if (dlk_pool_for((size_t) D, 16, QsumRange, &job) != DLK_OK)
			DltKernelAborted();
	}
	else
	{
		/* spilled rows: the reader checks for interrupts at every chunk */
		for (int64 i = 0; i < n; i++)
			dlk_qsum_accumulate(acc1, acc2, row(arg, i), center, inv_q1, inv_q2, D);
	}

	m->mean = palloc(sizeof(double) * D);
	m->scale = palloc(sizeof(double) * D);
	for (int d = 0; d < D; d++)
	{
		double		e1 = inv_q1[d] > 0 ? acc1[d] / inv_q1[d] / n : 0;
		double		e2 = inv_q2[d] > 0 ? acc2[d] / inv_q2[d] / n : 0;

		m->mean[d] = center[d] + e1;
		StatsFinishScale(m, d, m->mean[d], e2 - e1 * e1);
		fm[d] = (float) m->mean[d];
		fs[d] = (float) m->scale[d];
	}
	m->normalized = true;
	pfree(center);
	pfree(inv_q1);
	pfree(inv_q2);
	pfree(acc1);
	pfree(acc2);
}

