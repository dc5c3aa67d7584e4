/*
 * engine_int.h — the engine's members and streams, shared by engine.c and
 * continuing.c (checkpoints, resume, warm start).  Not for other layers.
 */
#ifndef DLTRAIN_ENGINE_INT_H
#define DLTRAIN_ENGINE_INT_H

#include "postgres.h"

#include "engine.h"
#include "trainer.h"

typedef struct Member
{
	int64	   *step_counts;	/* without held-out rows: the classes the last
								 * epoch's steps predicted (class_notice) */
	DltModel   *m;
	DltTrainer	t;
	DltSelectResult *res;
	int			stream;
	bool		active;			/* still training */
	int			start;			/* epochs done before this call (resume) */
	double		best_vloss;
	int			since_best;
	float	   *best_params;
	double		vloss;			/* this epoch's validation */
	double		vscore;
} Member;

/* a stream and the members that step on its batches */
typedef struct Stream
{
	DltRowSource *src;			/* its source: the call's, or materialized */
	DltStream	s;
	DltFusedStep *fused;		/* NULL: fewer than two fusable members */
	DltTrainer **who;			/* a fused step's trainers */
} Stream;

/* continuing.c */
extern DltCheckpoint *MemberCheckpoint(Member *mb, DltRowSource *src, DltStream *s);
extern bytea *MemberCheckpointModel(Member *mb, DltRowSource *src, DltStream *s);
extern void VerifyResume(int k, const DltModel *R, const DltOptions *o, const DltRowSource *src);
extern void MemberResume(Member *mb, const DltRowSource *src, const DltOptions *opts,
						 const DltStream *s);
extern void WarmOptions(int k, DltOptions *o, const DltRowSource *src);
extern DltLabelMap *WarmLabels(int k, const DltModel *w, const DltRowSource *src);
extern void MemberWarmStart(Member *mb, const DltOptions *opts);

#endif							/* DLTRAIN_ENGINE_INT_H */
