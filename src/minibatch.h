/*
 * minibatch.h — mini-batch assembly: rows (wherever a row source keeps
 * them) copied into a batch, standardized, with their labels (minibatch.c).
 * Every row source assembles its batches here, for training and
 * validation alike.
 */
#ifndef DLTRAIN_MINIBATCH_H
#define DLTRAIN_MINIBATCH_H

#include "postgres.h"

#include "labels.h"
#include "trainer.h"

/* what a label slot becomes in a batch */
typedef struct DltLabelMap
{
	DltTask		task;
	DltLabelKind kind;
	const int32 *rank;			/* classification: class index per class id */
} DltLabelMap;

/*
 * Copies rows x[0..bs) (D floats each) into b, standardized with fm/fs
 * unless they are NULL, and their label slots; on the pool's threads when
 * the batch is large enough; then uploads them (DltBatchUpload).  Raises a
 * pending cancel.
 */
extern void DltBatchGather(DltBatch *b, int bs, const float *const *x, const int64 *slot,
						   const DltLabelMap *lm, const float *fm, const float *fs);

/* One row's label slot into row i of b. */
static inline void
DltBatchSetLabel(DltBatch *b, int i, int64 slot, const DltLabelMap *lm)
{
	if (lm->task == DLT_TASK_CLASSIFICATION)
		b->y[i] = lm->rank[slot];
	else
		b->t[i] = (float) DltLabelTarget(slot, lm->kind);
}

#endif							/* DLTRAIN_MINIBATCH_H */
