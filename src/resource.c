/*
 * resource.c — resources that a statement and a resource owner may both end.
 *
 * A training keeps what it holds beyond palloc'd memory (today: the spilled
 * row cache's temporary file) in a struct in its own memory context.  Two
 * things can end such a resource, in either order:
 *
 *   - the statement: the training finishes and releases it, or its memory
 *     context is deleted without training (a GROUP BY that stops early, a
 *     cursor closed before its end, a portal dropped at the end of the
 *     transaction);
 *   - the resource owner it was acquired under: PostgreSQL closes a temporary
 *     file's descriptors when that owner is released, at the abort of the
 *     (sub)transaction or at the release of a failed portal's owner.  When a
 *     FETCH from a cursor fails inside a savepoint, the cursor's owner is
 *     released with the savepoint while its memory (and so the BufFile that
 *     points at the closed descriptors) lives on until CLOSE or COMMIT.
 *
 * Whichever comes first releases the resource; the second finds it released
 * and does nothing.  Each resource is a DltResource on a backend-local list:
 * a resource-release callback (registered once per backend) forgets, after
 * an owner has closed its files, every live resource acquired under that
 * owner; a memory-context callback on the context that holds the pointers
 * releases a resource still live when that context goes; the normal path
 * calls DltResourceRelease.  Each of the three unlinks the resource and marks
 * it dead before it calls the release function, so that function runs once.
 *
 * How a resource is released depends on who ends it.  While the transaction
 * runs, the statement closes it (DLT_RELEASE_CLOSE: BufFileClose flushes and
 * closes).  When its owner has closed the descriptors, or is about to (the
 * memory context of an aborted portal is deleted during abort, before the
 * owners are released), it is only forgotten (DLT_RELEASE_FORGET): nothing
 * is written during an abort, and nothing touches a descriptor that another
 * file may already have taken.
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"

#include "resource.h"

/* resources not yet released, of any owner */
static dlist_head live_resources = DLIST_STATIC_INIT(live_resources);
static bool release_callback_registered = false;

static void
ResourceEnd(DltResource *r, DltReleaseHow how)
{
	if (!r->live)
		return;
	r->live = false;
	dlist_delete(&r->node);
	r->release(r->arg, how);
}

/*
 * A resource owner is being released.  PostgreSQL makes it
 * CurrentResourceOwner while it releases it, and closes its temporary files
 * in the AFTER_LOCKS phase before it calls us.
 */
static void
ResourceOwnerGone(ResourceReleasePhase phase, bool isCommit, bool isTopLevel,
				  void *arg)
{
	dlist_mutable_iter iter;

	if (phase != RESOURCE_RELEASE_AFTER_LOCKS)
		return;
	dlist_foreach_modify(iter, &live_resources)
	{
		DltResource *r = dlist_container(DltResource, node, iter.cur);

		if (r->owner == CurrentResourceOwner)
			ResourceEnd(r, DLT_RELEASE_FORGET);
	}
}

/* The context that holds the resource's pointers goes away. */
static void
ResourceContextGone(void *arg)
{
	DltResource *r = (DltResource *) arg;

	/*
	 * During an abort the owners are released after the portals' memory is
	 * freed: they close what the resource holds.
	 */
	ResourceEnd(r, IsTransactionState() ? DLT_RELEASE_CLOSE : DLT_RELEASE_FORGET);
}

DltResource *
DltResourceRegister(MemoryContext cxt, DltReleaseFn release, void *arg)
{
	DltResource *r;

	if (CurrentResourceOwner == NULL)
		elog(ERROR, "dltrain: no resource owner to acquire a resource under");
	if (!release_callback_registered)
	{
		RegisterResourceReleaseCallback(ResourceOwnerGone, NULL);
		release_callback_registered = true;
	}
	r = MemoryContextAllocZero(cxt, sizeof(DltResource));
	r->owner = CurrentResourceOwner;
	r->release = release;
	r->arg = arg;
	r->cb.func = ResourceContextGone;
	r->cb.arg = r;
	MemoryContextRegisterResetCallback(cxt, &r->cb);
	r->live = true;
	dlist_push_head(&live_resources, &r->node);
	return r;
}

void
DltResourceRelease(DltResource *r)
{
	if (r != NULL)
		ResourceEnd(r, DLT_RELEASE_CLOSE);
}
