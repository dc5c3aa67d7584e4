/*
 * resource.h — resources released exactly once, by whichever of their
 * statement or their resource owner ends first (resource.c).
 */
#ifndef DLTRAIN_RESOURCE_H
#define DLTRAIN_RESOURCE_H

#include "postgres.h"

#include "lib/ilist.h"
#include "utils/resowner.h"

/*
 * How a resource ends.  DLT_RELEASE_CLOSE: release it now (the owner of what
 * it holds is alive).  DLT_RELEASE_FORGET: its resource owner has released,
 * or is about to release, what it holds (the temporary file's descriptors,
 * say); only forget the pointers to it.
 */
typedef enum DltReleaseHow
{
	DLT_RELEASE_CLOSE,
	DLT_RELEASE_FORGET
} DltReleaseHow;

typedef void (*DltReleaseFn) (void *arg, DltReleaseHow how);

typedef struct DltResource
{
	dlist_node	node;			/* in the backend's list of live resources */
	ResourceOwner owner;		/* CurrentResourceOwner when it was acquired */
	MemoryContextCallback cb;	/* the context that holds its pointers */
	DltReleaseFn release;
	void	   *arg;
	bool		live;
} DltResource;

/*
 * Registers a resource that is about to be acquired under
 * CurrentResourceOwner, whose pointers live in cxt.  Call it before
 * acquiring, so that no error can come between the two.
 */
extern DltResource *DltResourceRegister(MemoryContext cxt, DltReleaseFn release,
										void *arg);
/* The normal path: releases it now, unless something released it first. */
extern void DltResourceRelease(DltResource *r);

#endif							/* DLTRAIN_RESOURCE_H */
