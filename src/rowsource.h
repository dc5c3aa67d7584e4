/*
 * rowsource.h — the seam between the engine and where rows come from.
 *
 * The engine (engine.c) trains K members from a DltRowSource and never
 * sees how rows are stored: it asks the source to prepare (classes and
 * statistics: what the rows determine for every member), to open one batch
 * stream per distinct stream key (the options that decide the order of the
 * batches), and then, per epoch, for the stream's mini-batches and its
 * validation rows.  Members of one stream step on the same batch.
 *
 * Implementations today:
 *   source_cache.c  the aggregate's and grid_search's row cache, in memory
 *                   (canonical order, one permutation per stream, gathers
 *                   on the pool's threads) or spilled to a temporary file
 *                   (CorgiPile's two-level shuffle over the chunks; one
 *                   stream per member);
 *   source_table.c  fit(): block-shuffled reads of a relation through SPI
 *                   every epoch, shuffled again in a bounded buffer;
 *   source_test.c   a test-only source of generated rows (regression test
 *                   row_source).
 *
 * Shaped for the sources to come (the shared scan's cache in dynamic shared
 * memory, filled by another backend or by parallel workers): a source owns
 * or only borrows its rows, and close() is the one place it lets go of
 * them (frees, or detaches and never frees what another process owns); a
 * source may present each consumer a subset of its rows (it builds its
 * streams' orders from its own membership test), may have grown since it
 * was created (n_rows is read at prepare), and may supply content hashes
 * and label slots it computed once (the cache source computes them in
 * prepare; a shared source would take them from the cache).  A source
 * allocates in the current memory context under its budget root, so an
 * error or a cancel releases it with the training's context; close() is
 * the normal path, and each resource beyond memory (the spill file) has
 * its own owner (resource.h).
 */
#ifndef DLTRAIN_ROWSOURCE_H
#define DLTRAIN_ROWSOURCE_H

#include "postgres.h"

#include "utils/array.h"

#include "minibatch.h"
#include "model.h"
#include "options.h"
#include "trainer.h"

typedef struct DltRowSource DltRowSource;

/* a stream of mini-batches, for every member whose stream key matches */
typedef struct DltStream
{
	DltOptions	key;			/* the options of its first member */
	int			start_epoch;	/* epochs its members completed before (resume) */
	const uint64 *resume_rng;	/* their source's shuffle state then, or NULL */
	const DltLabelMap *labels;	/* what label slots become (set by the engine) */
	const float *fm;			/* the standardization its members apply */
	const float *fs;
	int			B;				/* rows per batch */
	int64		n_train;		/* rows per epoch */
	int64		n_val;			/* held-out rows */
	DltBatch   *batch;			/* the source's batches go here */
	void	   *priv;			/* the source's state */
} DltStream;

typedef struct DltRowSourceOps
{
	/*
	 * Classes (classification), and statistics when a member normalizes:
	 * sets src->classes, src->stats, src->fm and src->fs.
	 */
	void		(*prepare) (DltRowSource *src, const DltOptions *opts, int K);
	/* Sets up s for s->key: n_train, n_val, B, batch. */
	void		(*open_stream) (DltRowSource *src, DltStream *s);
	/* Starts epoch e (0-based) of s. */
	void		(*begin_epoch) (DltRowSource *src, DltStream *s, int e);
	/* The epoch's next batch in s->batch: its rows, 0 at the end. */
	int			(*next_batch) (DltRowSource *src, DltStream *s);
	/* The held-out rows in batches (first: from the start); 0 at the end. */
	int			(*next_validation) (DltRowSource *src, DltStream *s, bool first);
	/* The normal end: lets go of the rows (frees, or detaches). */
	void		(*close) (DltRowSource *src);

	/*
	 * Checkpoints.  open_stream continues after s->start_epoch epochs, as the
	 * stream would be then: a source whose shuffle state follows from its
	 * seed replays it; one that cannot (get_rng non-NULL) saves its state at
	 * an epoch's end with get_rng and restores it from s->resume_rng.
	 */
	bool		(*get_rng) (DltRowSource *src, DltStream *s, uint64 *rng);

	/*
	 * Materialized features (NULL: the source does not offer them).  After
	 * prepare: a source over the same rows (the same count, content hashes,
	 * validation split, canonical order and shuffles, the same label slots)
	 * whose features are map's outputs, H wide: map receives the rows in
	 * batches of at most cap rows, standardized with fm/fs when fm is not
	 * NULL, exactly as a stream would gather them, and writes n x H floats.
	 * Its streams do not standardize again; its close lets go of the
	 * features only (the rows stay this source's).  The caller checked the
	 * budget for n_rows x H floats.
	 */
	DltRowSource *(*materialize) (DltRowSource *src, const float *fm, const float *fs,
								  int H, int cap,
								  void (*map) (void *arg, DltBatch *in, int n, float *out),
								  void *arg);
} DltRowSourceOps;

struct DltRowSource
{
	const DltRowSourceOps *ops;
	const char *name;			/* for DEBUG lines */
	int			D;
	DltTask		task;
	DltLabelKind label_kind;
	Oid			label_type;
	int64		n_rows;			/* rows presented (after prepare) */
	int64		rows_skipped;	/* NULL features or label */
	MemoryContext root;			/* the budget root of the call */
	const dlk_device *device;	/* where batches go (set by the engine) */
	bool		shared_streams; /* members with one key may share a stream */
	bool		want_hash;		/* prepare sets data_hash (checkpoints) */
	/* set by prepare */
	int64		data_rows;		/* rows read, held out ones included */
	uint64		data_hash;		/* the sum of their content hashes */
	DltModel	classes;		/* n_classes and the class arrays */
	DltModel   *stats;			/* mean, scale; NULL: no member normalizes */
	float	   *fm;				/* float32 statistics, as training applies */
	float	   *fs;
	DltLabelMap labels;			/* what label slots become */
};

/* Do two members' options give the same batch stream? */
static inline bool
DltSameStream(const DltOptions *a, const DltOptions *b)
{
	bool		sa = a->shuffle && a->epochs > 0;
	bool		sb = b->shuffle && b->epochs > 0;

	return sa == sb && a->seed == b->seed && a->normalize == b->normalize &&
		a->validation_fraction == b->validation_fraction &&
		a->batch_size == b->batch_size && a->buffer_rows == b->buffer_rows &&
		(a->resume ? a->resume->epochs_run : 0) == (b->resume ? b->resume->epochs_run : 0) &&
		(a->resume == NULL) == (b->resume == NULL) && a->warm == b->warm;
}

/* the seed salt of every shuffle stream */
#define DLT_SHUFFLE_SALT UINT64CONST(0x53485546464c4521)

/* ---- the implementations ---- */

struct DltRows;
/* The cache source of rows (in memory or spilled): source_cache.c */
extern DltRowSource *DltCacheSourceCreate(struct DltRows *rows);

/* The row source of fit(): a relation read every epoch (source_table.c). */
typedef struct DltTableInfo
{
	const char *relname;		/* qualified, quoted */
	int64		rows;			/* training rows */
	int64		validation_rows;
	int64		skipped;
	uint64		content_hash;	/* of the training rows, order-independent */
	TransactionId snapshot_xmin;
	char	   *snapshot;		/* 64-bit, "xmin:xmax:xip,..." (newrows.h); NULL: unknown */
	bool		filtered;		/* only new rows (dltrain.retrain) */
	int64		replayed;		/* of the training rows: old rows the replay mixed in */
	char	   *key_max;		/* to_jsonb(max(key column)) as text; NULL: none */
	Oid			key_type;
} DltTableInfo;

/*
 * Which rows dltrain.retrain trains on: new_expr, a boolean SQL expression
 * over the relation's columns (quoted identifiers and $n parameters only,
 * never a user's string), says a row is new.  With replay 0 it is the
 * passes' WHERE clause; above 0, each old row trains too when a seeded mix
 * of its content hash falls below replay (the same rows in every pass).
 */
typedef struct DltTableFilter
{
	const char *new_expr;
	int			nargs;
	Oid		   *argtypes;
	Datum	   *args;			/* alive as long as the source */
	double		replay;
	int64		seed;
} DltTableFilter;

extern DltRowSource *DltTableSourceCreate(Oid relid, ArrayType *features, const char *label,
										  const DltOptions *opts, MemoryContext root);
extern const DltTableInfo *DltTableSourceInfo(DltRowSource *src);
/* before prepare: train on the rows the filter keeps only */
extern void DltTableSourceSetFilter(DltRowSource *src, const DltTableFilter *f);
/*
 * Before prepare: record to_jsonb(max(column)) over the whole relation under
 * the passes' snapshot (info.key_max).
 */
extern void DltTableSourceRecordMax(DltRowSource *src, const char *column);

/* A test-only source of generated rows (source_test.c). */
extern DltRowSource *DltTestSourceCreate(int64 n, int D, int classes, MemoryContext root);

#endif							/* DLTRAIN_ROWSOURCE_H */
