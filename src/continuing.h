/*
 * continuing.h — the checks and options of a resume and of a warm start
 * (continuing.c), for the engine.
 */
#ifndef DLTRAIN_CONTINUING_H
#define DLTRAIN_CONTINUING_H

#include "postgres.h"

#include "rowsource.h"

/* Can R's run continue here to the uninterrupted bytes?  An error if not. */
extern void DltVerifyResume(int k, const DltModel *R, const DltOptions *o,
							const DltRowSource *src);

/* The options a warm start of configuration k trains with (layers, activation). */
extern void DltWarmOptions(int k, DltOptions *o, const DltRowSource *src);

/* The label map of a warm start: the rows' classes as the model's indexes. */
extern DltLabelMap *DltWarmLabels(int k, const DltModel *w, const DltRowSource *src);

#endif							/* DLTRAIN_CONTINUING_H */
