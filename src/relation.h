/*
 * relation.h — what the functions that take a relation share: locking it,
 * its qualified name, the select list of its feature and label columns,
 * and the insert of a trained model into dltrain.models (relation.c).
 */
#ifndef DLTRAIN_RELATION_H
#define DLTRAIN_RELATION_H

#include "postgres.h"

#include "utils/array.h"
#include "utils/jsonb.h"

/*
 * Locks a relation given by OID for reading and checks that it exists, before
 * anything looks up its name.
 */
extern void DltLockRelation(Oid relid);
/* "schema"."name", quoted */
extern char *DltQualifiedName(Oid relid);
/*
 * "features, label" for SELECT: one array column, or ARRAY[col, ...] of
 * numeric columns; sets the label's type (varchar and char read as text).
 */
extern char *DltSelectList(Oid relid, ArrayType *features, const char *label,
						   Oid *label_type, const char *caller);

/* The feature part of that select list alone (predict_batch). */
extern char *DltFeatureList(Oid relid, ArrayType *features, const char *caller);

/* one row of dltrain.models, inserted through SPI (the caller connected) */
typedef struct DltCatalogRow
{
	const char *name;
	const char *relation;		/* qualified */
	ArrayType  *features;		/* text[] */
	const char *label;
	Jsonb	   *options;		/* NULL: {} */
	const char *metrics;		/* JSON text */
	const char *provenance;		/* JSON text */
	bytea	   *model;
} DltCatalogRow;

extern void DltCatalogInsert(const DltCatalogRow *row);

struct DltModel;
/*
 * The caller's newest catalog model of that name (dltrain.latest_model's
 * rule, so another role's row is never taken), decoded in the current
 * memory context; an error when there is none.
 */
extern struct DltModel *DltCatalogModel(const char *name);

#endif							/* DLTRAIN_RELATION_H */
