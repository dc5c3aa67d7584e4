/*
 * cache.h — the row cache: rows converted once to float32, in fixed-size
 * chunks, spilled whole to a temporary file past the budget (cache.c).
 */
#ifndef DLTRAIN_CACHE_H
#define DLTRAIN_CACHE_H

#include "postgres.h"

struct BufFile;
struct DltResource;

/*
 * Each row has dim features and one 64-bit label slot (an integer label,
 * the bits of a float label, or a text label's id).
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
/* Reads spilled chunk k into buffer c; returns its rows. */
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

#endif							/* DLTRAIN_CACHE_H */
