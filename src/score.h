/*
 * score.h — running rows through a model: the decoded model of a call site
 * (decoded once per query) and a scorer that runs batches (score.c).
 */
#ifndef DLTRAIN_SCORE_H
#define DLTRAIN_SCORE_H

#include "postgres.h"

#include "utils/array.h"

#include "kernels/dlk.h"
#include "kernels/dlk_device.h"
#include "model.h"

/* the decoded model of a call site or aggregate, and what identifies it */
typedef struct DltModelCache
{
	MemoryContext mcxt;			/* holds the decoded model; reset on a new one */
	bool		valid;
	bool		ondisk;			/* known by its TOAST pointer */
	Oid			toastrelid;
	Oid			valueid;
	Size		rawlen;			/* else by its bytes */
	char	   *raw;
	bool		arg_stable;		/* the same value for the whole query */
	MemoryContext root;			/* the call's budget root */
	DltModel   *m;
	int64		decodes;		/* models decoded (a DEBUG2 line counts them) */
} DltModelCache;

/* root: the budget root of the call (NULL: the cache's own context) */
extern void DltModelCacheInit(DltModelCache *mc, MemoryContext parent, MemoryContext root);
/* The decoded model of datum d; *changed says whether it was decoded now. */
extern DltModel *DltModelCacheGet(DltModelCache *mc, Datum d, bool *changed);

/* a batch of rows run through a model in one forward pass */
typedef struct DltScorer
{
	DltModel   *m;
	int			D;
	int			C;
	int			max_batch;
	int			n;				/* rows in the current batch */
	const dlk_device *dev;		/* dltrain.device */
	dlk_dnet   *net;			/* inference-only, over m->params */
	dlk_batch  *batch;			/* rows, standardized */
	float	   *out;			/* [max_batch x C]: probabilities or values */
	float	   *fmean;			/* float32 statistics, as training used them */
	float	   *fscale;
} DltScorer;

/* Sets up a scorer (in the current memory context, under the budget root);
 * max_batch > 1 uses BLAS. */
extern void DltScorerInit(DltScorer *sc, DltModel *m, int max_batch, MemoryContext root);
/* Checks, converts and standardizes one feature array into the batch. */
extern float *DltScorerAddRow(DltScorer *sc, ArrayType *features);
/* Runs the batch; returns [n x C] outputs (the caller then sets n = 0). */
extern const float *DltScorerRun(DltScorer *sc);

/*
 * A NOTICE naming the classes the final model never predicts: counts[k]
 * rows of n_rows predicted as class k, on the held-out rows (held_out) or
 * in the last epoch's forward passes.
 */
extern void DltNoticeUnpredictedClasses(const DltModel *m, const int64 *counts,
										int64 n_rows, bool held_out);

#endif							/* DLTRAIN_SCORE_H */
