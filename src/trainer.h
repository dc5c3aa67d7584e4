/*
 * trainer.h — one model's network and optimizer, stepping on mini-batches
 * (trainer.c).  Below the engine and the row sources, above the kernels.
 *
 * The trainer asks the kernels for everything through calls that do not
 * force a wait: a step returns nothing; its loss and whether it stayed
 * finite accumulate in the trainer, read by DltTrainerDiverged (after
 * every step on the CPU) and at the end of the epoch.  A model whose loss
 * became NaN or infinite takes no further step.
 */
#ifndef DLTRAIN_TRAINER_H
#define DLTRAIN_TRAINER_H

#include "postgres.h"

#include "portability/instr_time.h"

#include "kernels/dlk.h"
#include "kernels/dlk_device.h"
#include "blas.h"
#include "model.h"

extern bool dltrain_log_epochs;	/* dltrain.log_epochs */

/*
 * A mini-batch: rows the pipeline gathered (standardized when the model
 * normalizes), with class indices (classification) or targets (regression),
 * in host staging buffers of the device.  Several trainers may step on one
 * batch (members of a stream).  x, y and t are where the next rows go;
 * DltBatchUpload hands the rows to the device and may move them.
 */
typedef struct DltBatch
{
	int			cap;			/* rows it holds at most */
	int			D;
	int			C;				/* target width (regression) */
	float	   *x;				/* [cap x D] */
	int32	   *y;				/* [cap] class indices */
	float	   *t;				/* [cap x C] targets */
	const dlk_device *dev;
	dlk_batch  *kb;				/* the device's batch */
} DltBatch;

/* A batch on dev, in the current memory context. */
extern DltBatch *DltBatchCreate(const dlk_device *dev, int cap, int D, int C);
/* The rows written into x, y, t: to the device (the trainers step on them). */
extern void DltBatchUpload(DltBatch *b, int n);

typedef struct DltTrainer
{
	DltModel   *m;
	const dlk_device *dev;
	dlk_dnet   *net;			/* the network on the device */
	dlk_opt		opt;
	int			B;				/* rows per step at most */
	int			D;
	int			C;
	int			epoch;			/* 0-based */
	double		loss_sum;		/* this epoch (the device's counters) */
	int64		rows;
	int64		batches;
	int64		rows_expected;	/* for progress; -1 unknown */
	instr_time	t0;
	int			model_no;		/* trained with others: which one (NOTICEs) */
	int			n_models;
	bool		quiet;			/* the caller reports epochs itself (fit) */
	bool		diverged;		/* a step's loss was NaN or infinite */
} DltTrainer;

/* Bytes DltTrainerInit allocates for m at batch size B, with one batch. */
extern Size DltTrainerBytes(const DltModel *m, int B);
/*
 * Checks the budget and the model size, binds the network on dev (its
 * memory from the current memory context), opens BLAS and initializes the
 * parameters from the seed; m->params then point at them.
 */
extern void DltTrainerInit(DltTrainer *t, const dlk_device *dev, DltModel *m, int B,
						   MemoryContext root);
extern void DltTrainerEpochBegin(DltTrainer *t, int epoch, int64 rows_expected);
/* One optimizer step on the first bs rows of b (no-op once diverged). */
extern void DltTrainerStep(DltTrainer *t, const DltBatch *b, int bs);
/* Has a step's loss become NaN or infinite (that step made no update)? */
extern bool DltTrainerDiverged(DltTrainer *t);
/* Ends an epoch: records its mean training loss; returns its seconds. */
extern double DltTrainerEpochEnd(DltTrainer *t);
/*
 * Loss of the current network on the first bs rows of b, no update; *score
 * gets the number of correct predictions (classification) or the sum of
 * squared errors (regression).
 */
extern double DltTrainerEval(DltTrainer *t, const DltBatch *b, int bs, double *score);

/*
 * Classification: the steps from now on add the class they predict for each
 * row to counts[class] (NULL: no longer).
 */
extern void DltTrainerCountSteps(DltTrainer *t, int64 *counts);

/* Adds to counts[c] the rows of b the network predicts as class c. */
extern void DltTrainerCountPredictions(DltTrainer *t, const DltBatch *b, int bs, int64 *counts);

/*
 * Models that step together on one batch, their first layers in one
 * product (dltrain.fusion): set up for at most K trainers.
 */
typedef struct DltFusedStep DltFusedStep;
extern DltFusedStep *DltFusedCreate(DltTrainer *const *ts, int K, int B);
/* One step of the n trainers ts (n >= 1, none diverged) on b. */
extern void DltFusedRun(DltFusedStep *f, DltTrainer *const *ts, int n,
						const DltBatch *b, int bs);

/* dltrain.log_epochs */
extern void DltTrainerInitGucs(void);

#endif							/* DLTRAIN_TRAINER_H */
