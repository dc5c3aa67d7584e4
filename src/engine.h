/*
 * engine.h — training K models from one row source (engine.c): members,
 * their streams, early stopping, successive halving.
 */
#ifndef DLTRAIN_ENGINE_H
#define DLTRAIN_ENGINE_H

#include "postgres.h"

#include "model.h"
#include "options.h"
#include "rowsource.h"

/* dltrain.fusion: first layers of K models in one GEMM */
typedef enum DltFusion
{
	DLT_FUSION_OFF = 0,
	DLT_FUSION_AUTO,			/* models without hidden layers */
	DLT_FUSION_ON
} DltFusion;
extern int	dltrain_fusion;

typedef struct DltSelectResult DltSelectResult;

typedef struct DltSelectConfig
{
	bool		tolerate;		/* a diverged model is dropped, not an error */
	int			eta;			/* successive halving: keep 1/eta per rung; < 2 off */
	int			min_epochs;		/* the first rung */
	bool		quiet;			/* no per-epoch NOTICE (the caller reports) */
	bool		class_notice;	/* a NOTICE for classes a model never predicts */
	/* called after every epoch of every member (NULL: not) */
	void		(*epoch_done) (void *arg, const DltSelectResult *r, int epoch,
							   int64 rows, double seconds);
	/*
	 * Periodic checkpoints: after an epoch of a member that goes on, when
	 * checkpoint_due says so, checkpoint gets the model as it is then, with
	 * its checkpoint section (what "resume" continues), encoded.
	 */
	bool		(*checkpoint_due) (void *arg, const DltSelectResult *r, int epoch);
	void		(*checkpoint) (void *arg, const DltSelectResult *r, int epoch, bytea *model);
	void	   *arg;
} DltSelectConfig;

struct DltSelectResult
{
	int			index;			/* the configuration's position */
	int			n_models;		/* K */
	DltModel   *m;				/* NULL when it diverged */
	bool		diverged;
	int			diverged_epoch; /* 1-based */
	int			pruned_epoch;	/* dropped by successive halving after it; 0 not */
	int			stopped_epoch;	/* stopped early after it; 0 not */
	int			epochs_trained;
	double		seconds;		/* from the start of training to its end */
	double		loss;			/* last training loss */
	double		val_loss;		/* at the kept weights; NaN without validation */
	double		val_metric;
	DltModel   *training;		/* the model as it trains (epoch_done reads it) */
};

/*
 * Trains K models (options opts[k]) from the source; res[k] gets model k,
 * or m NULL and diverged set when its loss became NaN or infinite and
 * cfg->tolerate (else that is an error).  Allocates in the current memory
 * context; the caller encodes the models and then deletes it.  Closes the
 * source.
 */
extern void DltTrainMany(DltRowSource *src, const DltOptions *opts, int K,
						 const DltSelectConfig *cfg, DltSelectResult *res);

/* dltrain.fusion */
extern void DltEngineInit(void);

#endif							/* DLTRAIN_ENGINE_H */
