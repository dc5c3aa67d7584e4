/*
 * rows.h — row ingestion: a training's input rows (features and label
 * Datums) checked, converted once and appended to a row cache, with the
 * label's classes (rows.c).  The aggregate and grid_search fill one; the
 * cache row source (rowsource.h) trains from it.
 */
#ifndef DLTRAIN_ROWS_H
#define DLTRAIN_ROWS_H

#include "postgres.h"

#include "cache.h"
#include "labels.h"

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

/* rows cached in mcxt, within the budget of the call whose memory is under root */
extern void DltRowsInit(DltRows *rows, MemoryContext mcxt, MemoryContext root,
						Oid feat_type, Oid label_type, DltTask task);
extern void DltRowsAppend(DltRows *rows, MemoryContext mcxt, Datum x, bool xnull,
						  Datum y, bool ynull);
/* The NOTICE of the rows a training skipped for NULL features or label. */
extern void DltNoticeSkipped(const char *fname, int64 skipped, int64 used);

#endif							/* DLTRAIN_ROWS_H */
