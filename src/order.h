/*
 * order.h — rows by content: a row's content hash, the canonical order
 * that makes training independent of the order rows arrive in, and the
 * one rule that holds rows out for validation (order.c).  Every training
 * (the aggregate, fit(), grid_search) holds out the same rows for the same
 * data and fraction because all of them ask DltIsValidationRow of
 * DltRowHash.
 */
#ifndef DLTRAIN_ORDER_H
#define DLTRAIN_ORDER_H

#include "postgres.h"

#include "common/hashfn.h"

/* A row's content hash: its float32 features and its label's hash (labels.h). */
static inline uint64
DltRowHash(const float *x, int D, uint64 label_hash)
{
	return hash_combine64(hash_bytes_extended((const unsigned char *) x,
											  sizeof(float) * D, 0),
						  label_hash);
}

/* Is a row (by its content hash) held out for validation? */
extern bool DltIsValidationRow(uint64 hash, double fraction);

/*
 * Fills order[0..n) with row numbers in canonical order: by hash, rows of
 * equal hash by content (same(a, b) compares rows a and b: memcmp of the
 * features, then the labels).
 */
typedef int (*DltRowCompare) (void *arg, uint32 a, uint32 b);
extern void DltCanonicalOrder(const uint64 *hash, int64 n, uint32 *order,
							  DltRowCompare compare, void *arg);

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
	uint64		hash_sum;		/* sum of the rows' hashes (order-independent) */
} DltHeldOut;

extern void DltHeldOutAdd(DltHeldOut *v, const float *x, int64 y, uint64 h);
/* The DEBUG1 line that names the held-out rows (tests compare it). */
extern void DltReportHeldOut(int64 n, uint64 hash_sum, double fraction);

#endif							/* DLTRAIN_ORDER_H */
