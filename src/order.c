/*
 * order.c — rows by content.
 *
 * A row's content hash (DltRowHash: its float32 features and its label) is
 * what makes training independent of the order rows arrive in: the cache
 * source sorts rows by it into a canonical order before the seeded
 * shuffle, and every training holds rows out for validation by it
 * (DltIsValidationRow), so that the aggregate, fit() and grid_search hold
 * out the same rows for the same data and fraction, in any physical order.
 * Rows with the same content are all held out or none.
 */
#include "postgres.h"

#include "miscadmin.h"

#include "budget.h"
#include "order.h"

/* rows between two interrupt checks in a loop over the rows */
#define CFI_ROWS 1048576
#define CFI_DUE(i) (((i) & (CFI_ROWS - 1)) == 0)

bool
DltIsValidationRow(uint64 hash, double fraction)
{
	/* the top bits of a second mix, so the choice is independent of the hash order */
	uint64		h = hash_combine64(hash, UINT64CONST(0x76616c6964617465));

	return fraction > 0 &&
		(double) (h >> 11) < fraction * (double) (UINT64CONST(1) << 53);
}

/*
 * Appends a held-out row, doubling the arrays (from 1024 rows) as needed;
 * the rows held out are only known once counted (all copies of a row go
 * the same way), so the budget is checked as they grow.
 */
void
DltHeldOutAdd(DltHeldOut *v, const float *x, int64 y, uint64 h)
{
	if (v->n == v->cap)
	{
		int64		cap = Max(1024, v->cap * 2);
		Size		bytes = mul_size(cap, sizeof(float) * v->D + 8 + (v->keep_hash ? 8 : 0));

		DltBudgetCheck(v->root ? v->root : v->cxt, bytes - v->bytes,
					   "the held-out validation rows");
		if (v->x == NULL)
		{
			v->x = MemoryContextAllocHuge(v->cxt, sizeof(float) * v->D * cap);
			v->y = MemoryContextAllocHuge(v->cxt, sizeof(int64) * cap);
			if (v->keep_hash)
				v->h = MemoryContextAllocHuge(v->cxt, sizeof(uint64) * cap);
		}
		else
		{
			v->x = repalloc_huge(v->x, sizeof(float) * v->D * cap);
			v->y = repalloc_huge(v->y, sizeof(int64) * cap);
			if (v->keep_hash)
				v->h = repalloc_huge(v->h, sizeof(uint64) * cap);
		}
		v->cap = cap;
		v->bytes = bytes;
	}
	memcpy(v->x + v->n * v->D, x, sizeof(float) * v->D);
	v->y[v->n] = y;
	if (v->keep_hash)
		v->h[v->n] = h;
	v->hash_sum += h;
	v->n++;
}


void
DltReportHeldOut(int64 n, uint64 hash_sum, double fraction)
{
	ereport(DEBUG1,
			(errmsg_internal("dltrain: validation_fraction %g holds out %lld rows (content %016llx)",
							 fraction, (long long) n, (unsigned long long) hash_sum)));
}

typedef struct RowKey
{
	uint64		hash;
	uint32		row;
} RowKey;

/* the tie-break comparator's row comparison, and its calls */
static DltRowCompare sort_compare;
static void *sort_arg;
static uint32 sort_calls;

static int
CompareRowKeys(const void *pa, const void *pb)
{
	const RowKey *a = pa;
	const RowKey *b = pb;

	if ((++sort_calls & 65535) == 0)
		CHECK_FOR_INTERRUPTS();
	if (a->hash != b->hash)
		return a->hash < b->hash ? -1 : 1;
	return sort_compare(sort_arg, a->row, b->row);
}

/*
 * LSD radix sort of keys by hash, 16 bits a pass (4 passes).  Unlike qsort it
 * costs a few sequential passes whatever n, and its result does not depend on
 * the input order except among equal hashes, which the caller then orders by
 * content.
 */
static void
RadixSortKeys(RowKey *keys, int64 n)
{
	RowKey	   *tmp = palloc_extended(sizeof(RowKey) * Max(n, 1), MCXT_ALLOC_HUGE);
	int64	   *count = palloc(sizeof(int64) * 65536);
	RowKey	   *src = keys,
			   *dst = tmp;

	for (int shift = 0; shift < 64; shift += 16)
	{
		int64		pos = 0;

		memset(count, 0, sizeof(int64) * 65536);
		for (int64 i = 0; i < n; i++)
		{
			if (CFI_DUE(i))
				CHECK_FOR_INTERRUPTS();
			count[(src[i].hash >> shift) & 0xFFFF]++;
		}
		for (int b = 0; b < 65536; b++)
		{
			int64		c = count[b];

			count[b] = pos;
			pos += c;
		}
		for (int64 i = 0; i < n; i++)
		{
			if (CFI_DUE(i))
				CHECK_FOR_INTERRUPTS();
			dst[count[(src[i].hash >> shift) & 0xFFFF]++] = src[i];
		}
		{
			RowKey	   *t = src;

			src = dst;
			dst = t;
		}
	}
	/* four passes: the result is back in keys */
	Assert(src == keys);
	pfree(tmp);
	pfree(count);
}

/* Fills order[] with the cache's rows in canonical (content hash) order. */

void
DltCanonicalOrder(const uint64 *hash, int64 n, uint32 *order,
				  DltRowCompare compare, void *arg)
{
	RowKey	   *keys = palloc_extended(sizeof(RowKey) * Max(n, 1), MCXT_ALLOC_HUGE);

	for (int64 r = 0; r < n; r++)
	{
		if (CFI_DUE(r))
			CHECK_FOR_INTERRUPTS();
		keys[r].hash = hash[r];
		keys[r].row = (uint32) r;
	}
	RadixSortKeys(keys, n);
	/* equal hashes (duplicate rows, or a collision): order by content */
	sort_compare = compare;
	sort_arg = arg;
	for (int64 i = 0; i < n;)
	{
		int64		j = i + 1;

		while (j < n && keys[j].hash == keys[i].hash)
			j++;
		if (j - i > 1)
			qsort(keys + i, j - i, sizeof(RowKey), CompareRowKeys);
		if ((i >> 20) != (j >> 20))
			CHECK_FOR_INTERRUPTS();
		i = j;
	}
	for (int64 i = 0; i < n; i++)
	{
		if (CFI_DUE(i))
			CHECK_FOR_INTERRUPTS();
		order[i] = keys[i].row;
	}
	pfree(keys);
}
