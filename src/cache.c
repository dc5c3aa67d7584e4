/*
 * cache.c — the row cache.
 *
 * The training aggregate's transition function does no training: it checks
 * each row once, converts its features to float32 straight into the cache and
 * stores its label in a 64-bit slot.  Rows live in chunks of about 256 kB, so
 * appending a row never pallocs; a new chunk is allocated only when the last
 * one is full, and only if the cache stays within its share of the call's
 * budget (CacheShare; budget.c).  Chunks come from slabs (CacheNewSlab).  The
 * final function then reads rows by index.

 */
#include "postgres.h"

#include <sys/mman.h>

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "access/xact.h"
#include "storage/buffile.h"
#include "utils/memutils.h"

#include "budget.h"
#include "cache.h"
#include "resource.h"

#define CHUNK_BYTES (256 * 1024)
#define SLAB_MAX (8 * 1024 * 1024)
#define SPILL_SEGMENT ((int64) 1024 * 1024 * 1024)	/* BufFile's segment size */

void
DltCacheInit(DltCache *cache, MemoryContext mcxt, Size budget, bool spill)
{
	memset(cache, 0, sizeof(*cache));
	cache->mcxt = mcxt;
	cache->budget = budget;
	cache->root = mcxt;
	cache->spill = spill;
}

/*
 * Chunks are carved out of slabs that double in size up to SLAB_MAX, so a
 * small input allocates little while a large one makes few, large
 * allocations.  Slabs use the kernel's normal pages: marking them for
 * transparent huge pages (MADV_HUGEPAGE) made the best cache builds faster
 * but the slow ones slower, and training from the cache of eight merged
 * logistic models about 10% slower (measured on the benchmark machine).
 * Each new slab is mapped in one madvise(MADV_POPULATE_WRITE) call (Linux
 * 5.14 and later; elsewhere a no-op) instead of one page fault per 4 kB
 * page: on the 784-wide table page-fault entries went from 5.2% to 1.7% of
 * the epochs-0 query.  The last slab is then mapped whole even if rows fill
 * only part of it (at most SLAB_MAX bytes).
 */
static void
CacheAllocSlab(DltCache *cache, Size slab)
{
	/* everything the call holds must fit beside it */
	DltBudgetCheck(cache->root, slab, "the row cache");
	cache->slab_next = MemoryContextAllocHuge(cache->mcxt, slab);
#ifdef MADV_POPULATE_WRITE
	{
		/* map the whole slab in one call rather than one page fault a page */
		uintptr_t	start = TYPEALIGN(4096, (uintptr_t) cache->slab_next);
		uintptr_t	end = TYPEALIGN_DOWN(4096, (uintptr_t) cache->slab_next + slab);

		if (end > start)
			(void) madvise((void *) start, end - start, MADV_POPULATE_WRITE);
	}
#endif
	cache->slab_left = slab;
	cache->last_slab = slab;
	cache->bytes = add_size(cache->bytes, slab);
}

/*
 * The cache's share of the budget: half of it, for its rows and the indexes
 * a training from memory keeps beside them, or for its pool of chunk
 * buffers once spilled.  The other half is for everything else the call
 * holds: the models' buffers, held-out rows, scorers.  Whether the cache
 * spills is decided from its own rows and this share alone, never from what
 * else the call holds (what is merged with it, other groups).
 */
static Size
CacheShare(const DltCache *cache)
{
	return cache->budget / 2;
}

static bool
CacheNewSlab(DltCache *cache, Size chunk_bytes)
{
	Size		slab = Max(chunk_bytes, Min(cache->last_slab * 2, (Size) SLAB_MAX));
	Size		share = CacheShare(cache);

	/* a chunk's rows with the indexes a training from memory holds for them */
	Size		unit = add_size(chunk_bytes,
								mul_size(cache->rows_per_chunk, DLT_ROW_INDEX_BYTES));
	Size		held = add_size(cache->bytes,
								mul_size(cache->n_chunks, mul_size(cache->rows_per_chunk,
																   DLT_ROW_INDEX_BYTES)));

	slab = slab / chunk_bytes * chunk_bytes;
	if (add_size(held, slab / chunk_bytes * unit) > share)
	{
		/* the last slab may be cut down to what the share still allows */
		slab = (share - Min(share, held)) / unit * chunk_bytes;
		if (slab == 0 && cache->spill)
			return false;
		if (slab == 0)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("a row cache of %s would exceed its share of the memory budget (%s of %s)",
							DltFormatBytes(add_size(cache->bytes, chunk_bytes)),
							DltFormatBytes(share), DltFormatBytes(cache->budget)),
					 errdetail("%lld rows of %d features are cached so far. The budget is the smaller of dltrain.cache_mem and dltrain.max_cache_mem.",
							   (long long) cache->n_rows, cache->dim),
					 errhint("Raise dltrain.cache_mem, or train on fewer rows.")));
	}
	CacheAllocSlab(cache, slab);
	return true;
}

static bool
CacheAddChunk(DltCache *cache)
{
	Size		xbytes = mul_size(mul_size(cache->rows_per_chunk, cache->dim), sizeof(float));
	Size		ybytes = mul_size(cache->rows_per_chunk, sizeof(int64));
	Size		chunk_bytes = add_size(xbytes, ybytes);

	if (cache->slab_left < chunk_bytes && !CacheNewSlab(cache, chunk_bytes))
		return false;

	if (cache->n_chunks == cache->max_chunks)
	{
		int			newmax = Max(16, cache->max_chunks * 2);

		if (cache->chunk_x == NULL)
		{
			cache->chunk_x = MemoryContextAlloc(cache->mcxt, newmax * sizeof(float *));
			cache->chunk_y = MemoryContextAlloc(cache->mcxt, newmax * sizeof(int64 *));
		}
		else
		{
			cache->chunk_x = repalloc(cache->chunk_x, newmax * sizeof(float *));
			cache->chunk_y = repalloc(cache->chunk_y, newmax * sizeof(int64 *));
		}
		cache->max_chunks = newmax;
	}
	/* features first, then the labels (8-byte aligned: rows_per_chunk is even) */
	cache->chunk_x[cache->n_chunks] = (float *) cache->slab_next;
	cache->chunk_y[cache->n_chunks] = (int64 *) (cache->slab_next + xbytes);
	cache->slab_next += chunk_bytes;
	cache->slab_left -= chunk_bytes;
	cache->n_chunks++;
	return true;
}

/*
 * Past the budget the cache spills: every full chunk so far is written to a
 * temporary file (BufFile: temp_tablespaces and temp_file_limit apply, and
 * the file goes away at the end of the transaction, on error or cancel), and
 * the chunk buffers become a pool: one stages the rows still to come, and
 * during training the pool holds the chunks of one shuffle group.
 */
static void CacheWriteChunk(DltCache *cache, int c);

/*
 * The spill file is a DltResource (resource.c): the training closes it when
 * it is done, the cache's memory context when it goes first (a GROUP BY that
 * stops early, a cursor closed early), and the resource owner it was created
 * under when that owner is released first (an abort, or a failed cursor's
 * owner released with a savepoint): then the owner has closed the file's
 * descriptors, and only the pointer is forgotten.
 */
static void
CacheReleaseFile(void *arg, DltReleaseHow how)
{
	DltCache   *cache = (DltCache *) arg;
	BufFile    *file = cache->file;

	cache->file = NULL;
	cache->file_res = NULL;
	if (file != NULL && how == DLT_RELEASE_CLOSE)
		BufFileClose(file);
}

static void
CacheStartSpill(DltCache *cache)
{
	MemoryContext old;

	if (cache->n_chunks < 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the memory budget of %s is too small to spill the row cache",
						DltFormatBytes(cache->budget)),
				 errdetail("Spilling needs room for two chunks of %d rows of %d features.",
						   cache->rows_per_chunk, cache->dim),
				 errhint("Raise dltrain.cache_mem.")));
	old = MemoryContextSwitchTo(cache->mcxt);
	/* registered first: no error can come between the file and its record */
	cache->file_res = DltResourceRegister(cache->mcxt, CacheReleaseFile, cache);
	cache->file = BufFileCreateTemp(false);
	for (int c = 0; c < cache->n_chunks; c++)
		CacheWriteChunk(cache, c);
	cache->n_file_chunks = cache->n_chunks;
	cache->stage_rows = 0;
	MemoryContextSwitchTo(old);
	ereport(DEBUG1,
			(errmsg_internal("dltrain: the row cache spills to a temporary file after %lld rows",
							 (long long) cache->n_rows)));
}

/* Appends chunk buffer c (rows_per_chunk rows) to the spill file. */
static void
CacheWriteChunk(DltCache *cache, int c)
{
	BufFileWrite(cache->file, cache->chunk_x[c],
				 sizeof(float) * (Size) cache->rows_per_chunk * cache->dim);
	BufFileWrite(cache->file, cache->chunk_y[c], sizeof(int64) * (Size) cache->rows_per_chunk);
}

/* Reads spilled chunk k into buffer c; returns its number of rows. */
int
DltCacheReadChunk(DltCache *cache, int64 k, int c)
{
	Size		xbytes = sizeof(float) * (Size) cache->rows_per_chunk * cache->dim;
	Size		ybytes = sizeof(int64) * (Size) cache->rows_per_chunk;
	int64		pos = k * (int64) (xbytes + ybytes);

	if (BufFileSeek(cache->file, (int) (pos / SPILL_SEGMENT), pos % SPILL_SEGMENT, SEEK_SET) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not seek in the spilled row cache")));
	if (BufFileRead(cache->file, cache->chunk_x[c], xbytes) != xbytes ||
		BufFileRead(cache->file, cache->chunk_y[c], ybytes) != ybytes)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read the spilled row cache")));
	return k == cache->n_file_chunks - 1 ? cache->tail_rows : cache->rows_per_chunk;
}

/* Ends the input: a spilled cache writes its last, partial chunk too. */
void
DltCacheFinishInput(DltCache *cache)
{
	if (cache->file == NULL)
		return;
	if (cache->stage_rows > 0)
	{
		CacheWriteChunk(cache, 0);
		cache->n_file_chunks++;
		cache->tail_rows = cache->stage_rows;
	}
	else
		cache->tail_rows = cache->rows_per_chunk;
	cache->stage_rows = 0;
}

void
DltCacheClose(DltCache *cache)
{
	DltResourceRelease(cache->file_res);
}

float *
DltCacheAppend(DltCache *cache, int64 **label)
{
	int64		r = cache->n_rows;

	Assert(cache->dim > 0);
	if (cache->rows_per_chunk == 0)
	{
		/*
		 * 16 chunks and their rows' indexes fill the cache's share: the pool
		 * of a spilled cache (the chunks filled before it spilled) is then 16
		 * chunks, its shuffle group, whatever the row width.
		 */
		Size		target = Min((Size) CHUNK_BYTES, CacheShare(cache) / 16);

		cache->rows_per_chunk = (int) Max(2, target / (cache->dim * sizeof(float) + sizeof(int64) +
													   DLT_ROW_INDEX_BYTES)) & ~1;
	}
	if (cache->file)
	{
		/* spilled: rows go to the staging chunk, written out when full */
		if (cache->stage_rows == cache->rows_per_chunk)
		{
			CacheWriteChunk(cache, 0);
			cache->n_file_chunks++;
			cache->stage_rows = 0;
		}
		cache->n_rows++;
		*label = cache->chunk_y[0] + cache->stage_rows;
		return cache->chunk_x[0] + (Size) cache->stage_rows++ * cache->dim;
	}
	if (r == (int64) cache->n_chunks * cache->rows_per_chunk)
	{
		if (r >= (int64) PG_UINT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("training input exceeds %u rows", PG_UINT32_MAX)));
		if (!CacheAddChunk(cache))
		{
			CacheStartSpill(cache);
			return DltCacheAppend(cache, label);
		}
	}
	cache->n_rows++;
	*label = DltCacheLabel(cache, r);
	return DltCacheRow(cache, r);
}
