/*
 * options.h — a training's options (the JSON object of every training
 * call), the task and label kinds they are checked against.
 *
 * SQLSTATE map (every ereport in src/ follows it):
 *   bad options, option type or range     ERRCODE_INVALID_PARAMETER_VALUE
 *   NaN/Inf, dimension mismatch, label     ERRCODE_DATA_EXCEPTION (or the more
 *     or feature problems in the data        specific ARRAY_SUBSCRIPT_ERROR /
 *                                            NULL_VALUE_NOT_ALLOWED /
 *                                            NUMERIC_VALUE_OUT_OF_RANGE)
 *   no rows, too few classes               ERRCODE_DATA_EXCEPTION
 *   memory budget, size limits             ERRCODE_PROGRAM_LIMIT_EXCEEDED
 *   a model value that fails its checks    (one validator, model_check.c)
 *     in the text input function           ERRCODE_INVALID_TEXT_REPRESENTATION
 *     in the binary receive function       ERRCODE_INVALID_BINARY_REPRESENTATION
 *     in import()                          ERRCODE_INVALID_PARAMETER_VALUE
 *     stored (it passed input: damaged)    ERRCODE_DATA_CORRUPTED, the only XX
 *                                          code an error reachable from SQL has
 *   wrong use (window call, wrong task)    ERRCODE_FEATURE_NOT_SUPPORTED /
 *                                          ERRCODE_WRONG_OBJECT_TYPE
 *   OpenBLAS missing                       ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
 *   extension SQL newer than the library   ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
 *     (version.c)
 */
#ifndef DLTRAIN_OPTIONS_H
#define DLTRAIN_OPTIONS_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "kernels/dlk.h"

typedef enum DltTask
{
	DLT_TASK_AUTO = 0,
	DLT_TASK_CLASSIFICATION = 1,
	DLT_TASK_REGRESSION = 2
} DltTask;

/* what a label column holds, by its SQL type (labels.c) */
typedef enum DltLabelKind
{
	DLT_LABEL_INT = 1,			/* smallint, integer, bigint */
	DLT_LABEL_FLOAT = 2,		/* real, double precision */
	DLT_LABEL_TEXT = 3
} DltLabelKind;

typedef struct DltOptions
{
	int			n_hidden;
	int			hidden[DLK_MAX_LAYERS - 1];
	dlk_act		activation;
	dlk_opt_kind optimizer;
	double		lr;
	double		momentum;
	double		weight_decay;
	int			batch_size;
	int			epochs;
	int64		seed;
	bool		shuffle;
	bool		normalize;
	DltTask		task;
	bool		init_pytorch;	/* PyTorch's nn.Linear init instead of He/Xavier */
	double		validation_fraction;	/* rows held out, by content hash */
	int			early_stopping;	/* patience in epochs; 0: off (aggregate only) */
	/* fit() only */
	int			buffer_rows;	/* rows shuffled together */
	int			pages_per_range;	/* block_shuffle's range */
	/* continuing (not stored in models: a continued model is the same bytes) */
	bool		checkpoint;		/* the model carries what continuing needs */
	struct DltModel *resume;	/* continue this checkpoint's run; NULL: start */
	struct DltModel *warm;		/* start from this model's weights; NULL: seed */
	int			freeze;			/* warm start: its first layers stay as they are */
	/* fit() with a name: checkpoints stored in the catalog as it trains */
	int			checkpoint_every;	/* epochs; 0: not by epochs */
	double		checkpoint_minutes; /* 0: not by time */
	int			checkpoint_keep;	/* the newest kept (default 2) */
	bool		checkpoint_durable; /* no worker: an error, not a NOTICE */
	bool		hidden_given;	/* "hidden" / "activation" were in the options */
	bool		activation_given;
} DltOptions;

extern void DltOptionsDefault(DltOptions *opts);
extern void DltOptionsParse(DltOptions *opts, Jsonb *jb, bool fit);
extern const char *DltActName(dlk_act act);
extern const char *DltOptimizerName(dlk_opt_kind kind);
extern const char *DltTaskName(DltTask task);

/*
 * The task a training of a label kind runs: "auto" resolved (a float label
 * is a regression, any other a classification), the pair checked.  The
 * one rule the aggregate, fit(), grid_search and both merges apply.
 */
extern DltTask DltResolveTask(DltTask asked, DltLabelKind kind);
/* The same without an error: DLT_TASK_AUTO when the pair is refused. */
extern DltTask DltResolveTaskNoError(DltTask asked, DltLabelKind kind);
/*
 * The "task" option of an options object as it would parse, without an
 * error: false when it is not a valid task (the caller then does not
 * merge; the training itself reports the error).
 */
extern bool DltOptionsTask(Jsonb *jb, DltTask *task);

#endif							/* DLTRAIN_OPTIONS_H */
