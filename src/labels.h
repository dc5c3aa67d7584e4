/*
 * labels.h — label values: their kinds, checks, and the table of distinct
 * classification labels a training collects (labels.c).
 */
#ifndef DLTRAIN_LABELS_H
#define DLTRAIN_LABELS_H

#include "postgres.h"

#include "options.h"

struct DltModel;

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
/* The same without an error: false for a type no label may have. */
extern bool DltLabelKindKnown(Oid type, DltLabelKind *kind);
/* A numeric label as a 64-bit slot (the integer, or the double's bits), checked. */
extern int64 DltLabelValue(Datum d, Oid type, DltTask task, int64 row);
/* A numeric as double precision (NaN, infinities: the double's). */
extern double DltNumericToDouble(Datum d);
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
/*
 * A label's content hash, part of a row's (order.h): a text label's bytes
 * (s, len), else its 64-bit slot v.
 */
extern uint64 DltLabelHash(const char *s, int len, int64 v);

#endif							/* DLTRAIN_LABELS_H */
