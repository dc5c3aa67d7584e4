/*
 * materialize.h — frozen layers computed once per row (materialize.c).
 */
#ifndef DLTRAIN_MATERIALIZE_H
#define DLTRAIN_MATERIALIZE_H

#include "postgres.h"

#include "rowsource.h"
#include "trainer.h"

/* dltrain.materialize */
typedef enum DltMaterializeMode
{
	DLT_MATERIALIZE_OFF = 0,
	DLT_MATERIALIZE_AUTO,
	DLT_MATERIALIZE_ON
} DltMaterializeMode;

extern int	dltrain_materialize;

/*
 * The source each of K members trains from, after prepare and the warm
 * starts' options: src, or a derived source of materialized features
 * shared by the members whose frozen layers and normalization are the same
 * bytes, when dltrain.materialize says so.
 */
extern DltRowSource **DltMaterialize(DltRowSource *src, const DltOptions *opts, int K);
/* Closes the derived sources (not src). */
extern void DltMaterializeClose(DltRowSource **ms, int K, DltRowSource *src);
/* Freezes a member's first layers; from_features: it trains from the features. */
extern void DltMemberFreeze(DltTrainer *t, int frozen, bool from_features);

extern void DltMaterializeInit(void);

#endif							/* DLTRAIN_MATERIALIZE_H */
