/*
 * block_shuffle.c — the dltrain.block_shuffle TABLESAMPLE method.
 *
 *     SELECT ... FROM t TABLESAMPLE dltrain.block_shuffle(pages_per_range)
 *                       [REPEATABLE (seed)]
 *
 * This is the block-level half of CorgiPile's two-level shuffle: a full scan
 * of the table, not a sample, that reads every page exactly once but in a
 * random order of block ranges, so that any query (and dltrain's training)
 * can read a table stored in label or time order roughly shuffled, at close
 * to sequential-scan cost.
 *
 * Algorithm.  The table's nblocks pages are cut into
 * nranges = ceil(nblocks / pages_per_range) ranges of pages_per_range
 * consecutive pages (the last one may be shorter).  The range numbers
 * 0 .. nranges-1 are permuted by a Fisher-Yates shuffle driven by the kernel
 * library's xoshiro256** generator (dlk_rng_seed, dlk_rng_below; the same
 * loop as dlk_shuffle_u32, with interrupt checks), seeded with the scan's
 * seed.  Ranges are then visited in that order, the pages of a range in
 * ascending order, and on each page every line pointer 1 .. maxoffset in
 * offset order; the executor skips unused pointers and checks visibility.
 * pages_per_range must be a whole number >= 1; a value larger than the table
 * gives one range, i.e. a plain sequential read.
 *
 * Seed.  With REPEATABLE (x) the executor passes hashfloat8(x), which is the
 * same on every machine; without it, a random seed chosen once per query.
 * Our own generator (not PostgreSQL's pg_prng) turns it into the order, so
 * the order does not change with the PostgreSQL version.
 *
 * Repeatability contract.  The same seed, the same number of pages and the
 * same pages_per_range give the same page order, in every scan and every
 * query (repeatable_across_queries and repeatable_across_scans are both
 * true); rows within a page come in offset order.  Anything that changes the
 * table's size (inserts that extend it, VACUUM truncating it) changes the
 * order; updates can move rows between pages.  Since this runs inside the
 * executor, MVCC, privileges and row-level security apply as for any scan.
 *
 * The number of pages.  NextSampleBlock receives the scan descriptor's
 * rs_nblocks (tsm_system_rows reads the same field): the table size the
 * table AM fixed when the scan started, consistent with the scan's snapshot,
 * and the bound the AM enforces on the blocks we return.  The planner's
 * estimate (baserel->pages) may be stale, and the current size may have grown
 * since; pages added after the scan started hold no tuple its snapshot can
 * see.  The permutation is built once per query, on the first block request,
 * and kept over rescans (rebuilt only if the seed or pages_per_range change),
 * so a rescan visits the same pages in the same order; pages beyond a
 * rescan's rs_nblocks, should the table ever shrink under us (it cannot while
 * we hold our lock), are skipped.
 *
 * Memory.  The permutation is one uint32 per range, allocated in the
 * executor's per-query context (the context InitSampleScan runs in) and
 * freed with it.  A table of 2^32 - 1 pages at one page per range needs
 * 16 GB: that one array is a huge allocation (MemoryContextAllocHuge); use
 * larger ranges on huge tables.
 *
 * Errors.  A bad pages_per_range raises ERRCODE_INVALID_TABLESAMPLE_ARGUMENT,
 * the SQLSTATE PostgreSQL's own sampling methods use (a NULL argument is
 * rejected by the executor before we see it).
 */
#include "postgres.h"

#include <math.h>

#include "access/tsmapi.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "nodes/pathnodes.h"
#include "storage/block.h"
#include "storage/off.h"
#include "utils/float.h"
#include "utils/memutils.h"

#include "kernels/dlk.h"
#include "version.h"

/* Private state of one sample scan node. */
typedef struct BlockShuffleState
{
	MemoryContext cxt;			/* per-query context: holds ranges */

	/* this scan's arguments, set by BeginSampleScan */
	uint32		seed;
	BlockNumber pages_per_range;	/* clamped to MaxBlockNumber + 1 */

	/* the permutation, built on the first block request of the query */
	bool		built;
	uint32		built_seed;
	BlockNumber built_ppr;
	BlockNumber nblocks;		/* pages the permutation covers */
	uint32		nranges;
	uint32	   *ranges;			/* permuted range numbers, nranges of them */

	/* position of this scan */
	uint32		next_range;		/* index into ranges of the next range */
	BlockNumber next_block;		/* next page of the current range */
	BlockNumber range_end;		/* end (exclusive) of the current range */
	OffsetNumber last_offset;	/* last offset returned on the current page */
} BlockShuffleState;

static void BlockShuffleGetSampleSize(PlannerInfo *root, RelOptInfo *baserel,
									  List *paramexprs, BlockNumber *pages,
									  double *tuples);
static void BlockShuffleInit(SampleScanState *node, int eflags);
static void BlockShuffleBegin(SampleScanState *node, Datum *params,
							  int nparams, uint32 seed);
static BlockNumber BlockShuffleNextBlock(SampleScanState *node,
										 BlockNumber nblocks);
static OffsetNumber BlockShuffleNextTuple(SampleScanState *node,
										  BlockNumber blockno,
										  OffsetNumber maxoffset);

/*
 * Checks a pages_per_range argument: a finite whole number >= 1.  Returns it
 * as a page count, values beyond any table's size clamped to the largest
 * possible one (they all mean "one range").
 */
static BlockNumber
CheckPagesPerRange(double value)
{
	if (isnan(value) || isinf(value) || value < 1.0 || value != floor(value))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLESAMPLE_ARGUMENT),
				 errmsg("invalid pages per range for tablesample method \"block_shuffle\": %s",
						float8out_internal(value)),
				 errdetail("Pages per range must be a whole number greater than or equal to 1.")));

	if (value >= (double) MaxBlockNumber + 1.0)
		return (BlockNumber) MaxBlockNumber + 1;
	return (BlockNumber) value;
}

/* TABLESAMPLE handler: every page once, in a seeded order of block ranges */
PG_FUNCTION_INFO_V1(block_shuffle_handler);
Datum
block_shuffle_handler(PG_FUNCTION_ARGS)
{
	TsmRoutine *tsm;

	DltCheckSqlVersion();
	tsm = makeNode(TsmRoutine);
	tsm->parameterTypes = list_make1_oid(FLOAT8OID);

	/* see the repeatability contract at the head of the file */
	tsm->repeatable_across_queries = true;
	tsm->repeatable_across_scans = true;

	tsm->SampleScanGetSampleSize = BlockShuffleGetSampleSize;
	tsm->InitSampleScan = BlockShuffleInit;
	tsm->BeginSampleScan = BlockShuffleBegin;
	tsm->NextSampleBlock = BlockShuffleNextBlock;
	tsm->NextSampleTuple = BlockShuffleNextTuple;
	tsm->EndSampleScan = NULL;

	PG_RETURN_POINTER(tsm);
}

/*
 * A full scan: every page and every tuple, whatever the argument.
 */
static void
BlockShuffleGetSampleSize(PlannerInfo *root, RelOptInfo *baserel,
						  List *paramexprs, BlockNumber *pages,
						  double *tuples)
{
	*pages = baserel->pages;
	*tuples = baserel->tuples;
}

/*
 * Executor setup: the state lives in the per-query context we are called in.
 */
static void
BlockShuffleInit(SampleScanState *node, int eflags)
{
	BlockShuffleState *state = palloc0(sizeof(BlockShuffleState));

	state->cxt = CurrentMemoryContext;
	node->tsm_state = state;
}

/*
 * Start (or restart) a scan: check the argument, rewind the position.
 */
static void
BlockShuffleBegin(SampleScanState *node, Datum *params, int nparams,
				  uint32 seed)
{
	BlockShuffleState *state = (BlockShuffleState *) node->tsm_state;

	state->pages_per_range = CheckPagesPerRange(DatumGetFloat8(params[0]));
	state->seed = seed;

	state->next_range = 0;
	state->next_block = 0;
	state->range_end = 0;
	state->last_offset = InvalidOffsetNumber;

	/* we return every offset of a page: page-at-a-time visibility is best */
	node->use_pagemode = true;
}

/*
 * Builds the permutation of the ranges of nblocks pages for the current seed
 * and pages_per_range.
 */
static void
BuildRangeOrder(BlockShuffleState *state, BlockNumber nblocks)
{
	uint64		ppr = state->pages_per_range;
	uint64		nranges = ((uint64) nblocks + ppr - 1) / ppr;
	dlk_rng		rng;
	uint64		i;

	if (state->ranges != NULL)
		pfree(state->ranges);
	state->ranges = NULL;

	/* nranges <= nblocks <= MaxBlockNumber + 1, so it fits a uint32 */
	state->nranges = (uint32) nranges;
	if (nranges > 0)
	{
		state->ranges = (uint32 *)
			MemoryContextAllocHuge(state->cxt,
								   mul_size((Size) nranges, sizeof(uint32)));
		for (i = 0; i < nranges; i++)
			state->ranges[i] = (uint32) i;

		/* Fisher-Yates, exactly as dlk_shuffle_u32, but interruptible */
		dlk_rng_seed(&rng, (uint64) state->seed);
		for (i = nranges - 1; i > 0; i--)
		{
			uint64		j = dlk_rng_below(&rng, i + 1);
			uint32		tmp = state->ranges[i];

			state->ranges[i] = state->ranges[j];
			state->ranges[j] = tmp;
			if ((i & 0xFFFF) == 0)
				CHECK_FOR_INTERRUPTS();
		}
	}

	state->nblocks = nblocks;
	state->built_seed = state->seed;
	state->built_ppr = state->pages_per_range;
	state->built = true;
}

/*
 * Next page: the next one of the current range, else the first one of the
 * next range in the permuted order; InvalidBlockNumber at the end.
 * nblocks is the scan's rs_nblocks (see the head of the file).
 */
static BlockNumber
BlockShuffleNextBlock(SampleScanState *node, BlockNumber nblocks)
{
	BlockShuffleState *state = (BlockShuffleState *) node->tsm_state;

	if (!state->built ||
		state->built_seed != state->seed ||
		state->built_ppr != state->pages_per_range)
		BuildRangeOrder(state, nblocks);

	/* a new page: NextSampleTuple starts from its first offset */
	state->last_offset = InvalidOffsetNumber;

	for (;;)
	{
		if (state->next_block < state->range_end)
		{
			BlockNumber blockno = state->next_block++;

			if (blockno < nblocks)
				return blockno;
			continue;			/* the table shrank: skip (cannot happen) */
		}

		if (state->next_range >= state->nranges)
			return InvalidBlockNumber;

		{
			uint64		start = (uint64) state->ranges[state->next_range++] *
				state->pages_per_range;
			uint64		end = Min(start + state->pages_per_range,
								  (uint64) state->nblocks);

			state->next_block = (BlockNumber) start;
			state->range_end = (BlockNumber) end;
		}
	}
}

/*
 * Next tuple of the page: every offset from 1 to maxoffset in order, then
 * InvalidOffsetNumber.
 */
static OffsetNumber
BlockShuffleNextTuple(SampleScanState *node, BlockNumber blockno,
					  OffsetNumber maxoffset)
{
	BlockShuffleState *state = (BlockShuffleState *) node->tsm_state;
	OffsetNumber offset;

	if (state->last_offset == InvalidOffsetNumber)
		offset = FirstOffsetNumber;
	else
		offset = OffsetNumberNext(state->last_offset);

	if (offset > maxoffset)
		offset = InvalidOffsetNumber;

	state->last_offset = offset;
	return offset;
}
