/*
 * dltrain.h — shared declarations of dltrain's glue layer.
 *
 * The glue converts Datums to float32, parses options, owns the row cache,
 * drives training through the kernel library (src/kernels/, no postgres.h
 * there) and (de)serializes models.
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
#ifndef DLTRAIN_H
#define DLTRAIN_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "portability/instr_time.h"

#include "kernels/dlk.h"
#include "model_check.h"
#include "budget.h"

/* ---- GUCs (dltrain.c) ---- */
extern int	dltrain_threads;
extern int	dltrain_max_threads;
/* dltrain.threads, capped by dltrain.max_threads (with a NOTICE) */
extern int	DltThreads(void);
extern bool dltrain_verbose;
extern bool dltrain_enable_merge;	/* sibling train_mlp calls share one cache */
extern bool dltrain_enable_merge_rewrite;	/* ... and the planner hook shows it */
/* dltrain.fusion: first layers of K models in one GEMM */
typedef enum DltFusion
{
	DLT_FUSION_OFF = 0,
	DLT_FUSION_AUTO,			/* models without hidden layers */
	DLT_FUSION_ON
} DltFusion;
extern int	dltrain_fusion;

/*
 * dltrain.test_wait_point (superuser, tests only): at the point named, a
 * backend first takes the transaction-level advisory lock
 * DLT_TEST_WAIT_LOCK, so a test holding it sees the statement wait there.
 */
typedef enum DltWaitPoint
{
	DLT_WAIT_NONE = 0,
	DLT_WAIT_CACHING,			/* the aggregate's first row */
	DLT_WAIT_PREPARING,			/* before the passes over the row cache */
	DLT_WAIT_TRAINING,			/* before the first mini-batch */
	DLT_WAIT_EXPORT,			/* export(), the model decoded */
	DLT_WAIT_IMPORT,			/* import(), before the weights are read */
	DLT_WAIT_PREDICT_BATCH		/* predict_batch(), before the first batch */
} DltWaitPoint;
#define DLT_TEST_WAIT_LOCK INT64CONST(1684829298)
extern int	dltrain_test_wait_point;
extern void DltTestWaitPoint(DltWaitPoint point);

/*
 * After a kernel returned DLK_EABORT (its abort callback saw a pending
 * cancel or termination): CHECK_FOR_INTERRUPTS() raises it.
 */
extern pg_attribute_noreturn() void DltKernelAborted(void);

/* installs the planner hook that merges train_mlp calls (planner.c) */
extern void DltPlannerHookInstall(void);


/* ---- options (options.c) ---- */

typedef enum DltTask
{
	DLT_TASK_AUTO = 0,
	DLT_TASK_CLASSIFICATION = 1,
	DLT_TASK_REGRESSION = 2
} DltTask;

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
} DltOptions;

extern void DltOptionsDefault(DltOptions *opts);
extern void DltOptionsParse(DltOptions *opts, Jsonb *jb, bool fit);
extern const char *DltActName(dlk_act act);
extern const char *DltOptimizerName(dlk_opt_kind kind);
extern const char *DltTaskName(DltTask task);

/* ---- label kinds ---- */

typedef enum DltLabelKind
{
	DLT_LABEL_INT = 1,			/* smallint, integer, bigint */
	DLT_LABEL_FLOAT = 2,		/* real, double precision */
	DLT_LABEL_TEXT = 3
} DltLabelKind;

struct DltModel;

/* ---- labels (labels.c) ---- */

/* distinct classification labels, each with an id in arrival order */
typedef struct DltClassTable
{
	int			n;				/* distinct values */
	int			cap;			/* slots, a power of two */
	int32	   *slot;			/* id + 1, or 0 for empty */
	uint32	   *hash;			/* per id */
	int64	   *val;			/* per id: the integer, or the double's bits */
	int32		small[64];		/* id + 1 of the slot values 0..63 seen so far
								 * (0: not yet): the usual class labels skip
								 * the hash */
	char	  **str;			/* per id, text labels */
	int		   *len;
	int32	   *rank;			/* per id: class index, set by Finish */
	uint64	   *chash;			/* per id: content hash, set by Finish */
} DltClassTable;

extern DltLabelKind DltLabelKindOf(Oid type);
/* A numeric label as a 64-bit slot (the integer, or the double's bits), checked. */
extern int64 DltLabelValue(Datum d, Oid type, DltTask task, int64 row);
/* A slot back as a number. */
extern double DltLabelTarget(int64 v, DltLabelKind kind);
/* The id of a value (s == NULL) or text (s, len), added if new (in cxt). */
extern int32 DltClassId(DltClassTable *t, MemoryContext cxt, int64 v,
						const char *s, int len);
/* The id of a value already in the table, or -1 (adds nothing). */
extern int32 DltClassLookup(const DltClassTable *t, int64 v, const char *s, int len);
/* Sorts the values into m's classes; sets rank and chash per id. */
extern void DltClassTableFinish(DltClassTable *t, DltLabelKind kind, struct DltModel *m,
								int64 n_rows);
/* A WARNING when an integer label has so many values it looks like a quantity. */
extern void DltWarnManyClasses(int n_classes, int64 n_rows, DltLabelKind kind, DltTask asked);

/* ---- features (cache.c) ---- */

/*
 * Checks the shape of a real[] / double precision[] feature array: one
 * dimension, not empty, no NULL element, and expected_dim elements when
 * expected_dim > 0.  Returns the width.  row is the 1-based input row number
 * named in errors (0: the array passed to a predict function).
 */
extern int	CheckFeatureArray(ArrayType *arr, int expected_dim, int64 row);
/* Converts a checked array to float32, refusing NaN, Inf and float32 overflow. */
extern void FeatureArrayToFloat(float *out, ArrayType *arr, Oid elemtype, int64 row);

/*
 * The row cache: rows converted once to float32, in fixed-size chunks (no
 * per-row palloc).  Each row has dim features and one 64-bit label slot (an
 * integer label, the bits of a float label, or a text label's id).
 */
typedef struct DltCache
{
	MemoryContext mcxt;			/* owns the chunks */
	int			dim;			/* features per row, 0 before the first row */
	int			rows_per_chunk;
	int			n_chunks;
	int			max_chunks;
	float	  **chunk_x;		/* [n_chunks][rows_per_chunk * dim] */
	int64	  **chunk_y;		/* [n_chunks][rows_per_chunk] */
	int64		n_rows;
	char	   *slab_next;		/* free space in the current slab */
	Size		slab_left;
	Size		last_slab;		/* size of the last slab */
	Size		bytes;			/* bytes of slab memory allocated */
	Size		budget;			/* dltrain.cache_mem at the start */
	MemoryContext root;			/* the call's budget root (budget.c) */
	bool		spill;			/* past the budget: spill, or fail */
	/* spilled: every chunk is in the file; chunk buffers are a pool */
	struct BufFile *file;		/* NULL: not spilled, or released */
	struct DltResource *file_res;	/* who releases it (resource.c) */
	int64		n_file_chunks;
	int			stage_rows;		/* rows in buffer 0 not yet written */
	int			tail_rows;		/* rows in the last spilled chunk */
	float	   *fmin;			/* per feature, over every cached row */
	float	   *fmax;
} DltCache;

extern void DltCacheInit(DltCache *cache, MemoryContext mcxt, Size budget, bool spill);
extern void DltCacheFinishInput(DltCache *cache);
extern int	DltCacheReadChunk(DltCache *cache, int64 k, int c);
extern void DltCacheClose(DltCache *cache);
/* Room for one more row: returns its feature slot and sets *label. */
extern float *DltCacheAppend(DltCache *cache, int64 **label);

static inline float *
DltCacheRow(const DltCache *cache, int64 r)
{
	return cache->chunk_x[r / cache->rows_per_chunk] +
		(r % cache->rows_per_chunk) * (int64) cache->dim;
}

static inline int64 *
DltCacheLabel(const DltCache *cache, int64 r)
{
	return cache->chunk_y[r / cache->rows_per_chunk] + r % cache->rows_per_chunk;
}

/* ---- model (model.c) ---- */

/*
 * A decoded model.  Arrays are palloc'd (MAXALIGNed) in the context that
 * decoded it.
 */
typedef struct DltModel
{
	int			version;
	DltTask		task;			/* classification or regression */
	DltLabelKind label_kind;
	Oid			label_type;		/* SQL type the labels came in as */
	dlk_arch	arch;
	DltOptions	opts;			/* resolved options */
	int64		rows_used;
	int64		rows_skipped;
	int			epochs_run;
	float	   *epoch_loss;		/* [epochs_run] */
	int64		rows_validation;	/* held out (format 2); 0: none */
	int			best_epoch;		/* 1-based epoch of the weights kept; 0: the last */
	float	   *val_loss;		/* [epochs_run] when rows_validation > 0 */
	float	   *val_metric;		/* accuracy, or RMSE for regression */
	bool		normalized;
	double	   *mean;			/* [D] or NULL */
	double	   *scale;			/* [D] 1/std (0-variance features: 1) or NULL */
	int			n_classes;		/* 0 for regression */
	int64	   *class_int;		/* DLT_LABEL_INT classes, ascending */
	double	   *class_float;	/* DLT_LABEL_FLOAT classes, ascending */
	char	  **class_text;		/* DLT_LABEL_TEXT classes, byte order */
	size_t		n_params;
	float	   *params;
	uint32		crc;
} DltModel;

/* a serialized model (the varlena payload of dltrain.model) */
extern bytea *ModelEncode(const DltModel *m);	/* checked: a failure is a bug */
extern bytea *ModelEncodeRaw(const DltModel *m);	/* unchecked: import() checks */
extern DltModel *ModelDecode(const struct varlena *v);	/* checked: XX001 */

/* the complete check of model bytes (model_check.c), with the backend's hooks */
extern bool ModelCheckBytes(const char *data, Size len, DltModelLayout *layout,
							DltCheckResult *res);
/* ... raising what is wrong with sqlerrcode (22P02, 22P03 or XX001) */
extern void CheckModelBytes(const char *data, Size len, int sqlerrcode,
							DltModelLayout *layout);
extern Size ModelEncodedSize(const DltModel *m);
extern void CheckModelSize(Size nbytes);

/* JSON output shared by describe, evaluate and export: shortest exact
 * decimals, null for a non-finite value */
struct StringInfoData;
extern void DltAppendJsonDouble(struct StringInfoData *buf, double d);
extern void DltAppendJsonFloat(struct StringInfoData *buf, float f);
extern void DltAppendClassJson(struct StringInfoData *buf, const DltModel *m, int k);
extern text *DltClassText(const DltModel *m, int k);

/* ---- scoring (score.c) ---- */

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
	dlk_net		net;
	float	   *work;
	float	   *x;				/* [max_batch x D], standardized */
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
extern int	DltArgMax(const float *p, int n);
extern void DltLockRelation(Oid relid);

/* ---- progress reporting (progress.c) ---- */

typedef enum DltPhase
{
	DLT_PHASE_CACHING = 1,		/* the aggregate receives rows */
	DLT_PHASE_PREPARING,		/* canonical order, classes, statistics */
	DLT_PHASE_TRAINING,			/* epochs */
	DLT_PHASE_READING			/* fit(): a pass over the table */
} DltPhase;

/*
 * A backend reports one training at a time: the newest.  A DltProgressStart
 * while another training of the backend is alive (several groups of a
 * GROUP BY) takes the report over; the report ends when the last of them
 * ends.  DltProgressStart registers a callback on cxt, so a training ends
 * when that memory context is deleted or reset: at the end of the
 * training, or when an error or a cancel aborts it.  All calls are cheap
 * no-ops when dltrain is not in shared_preload_libraries.
 */
extern void DltProgressShmemInit(void);
extern void DltProgressStart(MemoryContext cxt, const char *kind, Oid relid);
extern void DltProgressPhase(DltPhase phase);
extern void DltProgressEpoch(int epoch, int epochs);
extern void DltProgressRows(int64 rows_done, int64 rows_total, double loss,
							double rows_per_sec);

/* ---- training (train.c) ---- */

extern void DltBlasEnsure(int threads);

/* what a training from cached rows reads: the cache, labels and counts */
typedef struct DltRows
{
	DltCache	cache;
	DltClassTable classes;
	Oid			feat_elemtype;	/* FLOAT4OID or FLOAT8OID */
	Oid			label_type;
	DltLabelKind label_kind;
	DltTask		task;			/* resolved from the option and label type */
	int64		rows_seen;
	int64		rows_skipped;
} DltRows;

/* ---- training K models from one cache (engine.c) ---- */

typedef struct DltSelectConfig
{
	bool		tolerate;		/* a diverged model is dropped, not an error */
	int			eta;			/* successive halving: keep 1/eta per rung; < 2 off */
	int			min_epochs;		/* the first rung */
} DltSelectConfig;

typedef struct DltSelectResult
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
	/* the classes, shared by every model (engine.c) */
	int			n_classes;
	int64	   *class_int;
	double	   *class_float;
	char	  **class_text;
} DltSelectResult;

extern bool DltIsValidationRow(uint64 hash, double fraction);

/* held-out validation rows, growing within the memory budget */
typedef struct DltHeldOut
{
	MemoryContext cxt;			/* where the arrays live */
	int			D;
	bool		keep_hash;		/* also keep each row's content hash */
	int64		n;
	int64		cap;
	float	   *x;				/* [cap x D] */
	int64	   *y;				/* label slots */
	uint64	   *h;				/* content hashes, with keep_hash */
	Size		bytes;			/* what cap rows take */
	MemoryContext root;			/* the call's budget root; NULL: cxt */
} DltHeldOut;

extern void DltHeldOutAdd(DltHeldOut *v, const float *x, int64 y, uint64 h);
extern void DltTrainMany(DltRows *rows, const DltOptions *opts, int K,
						 const DltSelectConfig *cfg, DltSelectResult *res);

/* ---- reading a relation (fit.c) ---- */

extern char *DltQualifiedName(Oid relid);
extern char *DltSelectList(Oid relid, ArrayType *features, const char *label,
						   Oid *label_type, const char *caller);

/* ---- the aggregate's rows, for callers outside the aggregate (train.c) ---- */

/* Resolves the task of options for a label type, checking the pair. */
extern DltTask DltResolveTask(const DltOptions *opts, DltLabelKind kind);
/* rows cached in mcxt, within the budget of the call whose memory is under root */
extern void DltRowsInit(DltRows *rows, MemoryContext mcxt, MemoryContext root,
						Oid feat_type, Oid label_type, DltTask task);
extern void DltRowsAppend(DltRows *rows, MemoryContext mcxt, Datum x, bool xnull,
						  Datum y, bool ynull);
/* The NOTICE of the rows a training skipped for NULL features or label. */
extern void DltNoticeSkipped(const char *fname, int64 skipped, int64 used);

/* one model's network, optimizer and batch buffers, for any row source */
typedef struct DltTrainer
{
	DltModel   *m;
	dlk_net		net;
	dlk_opt		opt;
	int			B;
	int			D;
	int			C;
	float	   *xb;				/* [B x D] the caller fills, standardized */
	int32	   *yb;				/* [B] class indices (classification) */
	float	   *tb;				/* [B] targets (regression) */
	int			epoch;			/* 0-based */
	double		loss_sum;		/* this epoch */
	int64		rows;
	int64		batches;
	int64		rows_expected;	/* for progress; -1 unknown */
	instr_time	t0;
	int			model_no;		/* trained with others: which one (NOTICEs) */
	int			n_models;
	bool		quiet;			/* the caller reports epochs itself (fit) */
} DltTrainer;

extern void DltModelSetArch(DltModel *m, int D, int C);
extern void DltStatsFinish(DltModel *m, int64 n, const double *sum, const double *sq,
						   const float *shift, float *fm, float *fs);
extern void DltStatsFinishScale(DltModel *m, int d, double mean, double var);
/* Bytes DltTrainerInit allocates for m at batch size B. */
extern Size DltTrainerBytes(const DltModel *m, int B);
extern void DltTrainerInit(DltTrainer *t, DltModel *m, int B, MemoryContext root);
extern void DltTrainerEpochBegin(DltTrainer *t, int epoch, int64 rows_expected);
extern void DltTrainerStep(DltTrainer *t, int bs);
/* The step without the error: DLK_ENONFINITE when the loss diverged. */
extern dlk_status DltTrainerTryStep(DltTrainer *t, int bs);
/* Counts a step taken elsewhere (a fused step) in the epoch's loss and progress. */
extern void DltTrainerAccount(DltTrainer *t, int bs, double loss);
extern double DltTrainerEpochEnd(DltTrainer *t);
extern double DltTrainerEval(DltTrainer *t, int bs, double *score);

#endif							/* DLTRAIN_H */
