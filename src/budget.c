/*
 * budget.c — one memory budget for everything a call holds, and one ceiling
 * for every call of the cluster.
 *
 * What is counted.  Everything a dltrain call holds lives under one memory
 * context, its root: the aggregate node's context for train_mlp,
 * train_mlp_multi and evaluate (one per Agg node, shared by all its groups,
 * so a HashAggregate over 1,000 groups holds one budget, not 1,000), the
 * function's own context for fit, grid_search and predict_batch, the call
 * site's context for predict.  What the call holds is what PostgreSQL's
 * allocators hold under the root (MemoryContextMemAllocated, every block of
 * every descendant): the row cache, the row indexes, the held-out rows, the
 * model buffers of all K members, the per-stream arrays, the scorers and
 * their activations, fit's shuffle buffer, and every small allocation
 * beside them.  Nothing is counted twice and nothing needs to be refunded:
 * freeing is counted by the allocator.  What lives outside the tree is not
 * counted: OpenBLAS's own GEMM buffers (a few MB per thread, allocated once
 * per backend) and the helper threads' stacks.
 *
 * When it is checked.  Before every allocation whose size a user controls
 * (a cache slab, the row indexes, the members' buffers, the held-out rows
 * as they grow, a scorer, a decoded model), DltBudgetCheck adds the bytes
 * about to be allocated to what the root holds and compares the sum with
 * min(dltrain.cache_mem, dltrain.max_cache_mem).  The error names what was
 * about to be allocated, what the call already holds and the budget.
 *
 * Spilling is decided alone.  The row cache spills when its own rows and
 * their indexes would exceed the budget (cache.c), whatever else the call
 * holds: a training spills, and shuffles, as it would alone.  When the
 * members merged with it, or the other groups of the node, do not fit beside
 * it, the call fails naming both numbers; it never makes a member spill.
 *
 * The cluster's ceiling.  With dltrain in shared_preload_libraries, shared
 * memory holds the bytes all dltrain calls of the cluster have reserved
 * together.  A check that finds its root holding more than it has reserved
 * reserves the difference (rounded up to 1 MB) with a compare-and-swap that
 * refuses to pass dltrain.max_total_mem.  A root's reservation is kept in a
 * small record allocated in the root itself, whose reset callback gives the
 * reservation back when the root is reset or deleted (at the end of the
 * call, or when an error or a cancel frees its memory); the memory and its
 * reservation go together.  A backend that exits without freeing its
 * contexts (FATAL) gives back what it still holds in a before_shmem_exit
 * callback, after which the records' callbacks do nothing; a backend killed
 * hard restarts the cluster, which zeroes shared memory.  Without preload
 * there is no cluster-wide ceiling, only each call's budget.
 */
#include "postgres.h"

#include <limits.h>

#include <unistd.h>

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "budget.h"

#define RESERVE_QUANTUM ((Size) 1024 * 1024)

int			dltrain_cache_mem_kb = 1024 * 1024;	/* 1 GB */
int			dltrain_max_cache_mem_kb = 8 * 1024 * 1024;	/* 8 GB */
int			dltrain_max_total_mem_kb = -1;	/* half of the machine's memory */

typedef struct DltBudgetShared
{
	pg_atomic_uint64 reserved;	/* bytes all calls of the cluster reserved */
} DltBudgetShared;

static DltBudgetShared *budget_shared = NULL;
static uint64 my_reserved = 0;	/* what this backend's records reserved */
static bool exit_callback_registered = false;
static bool detached = false;	/* the backend gave everything back */

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* a root's reservation, in the root */
typedef struct Reservation
{
	MemoryContext root;
	Size		bytes;
	MemoryContextCallback cb;
	struct Reservation *next;
} Reservation;

static Reservation *reservations = NULL;	/* this backend's, by root */

Size
DltBudgetBytes(void)
{
	int64		kb = Min(dltrain_cache_mem_kb, dltrain_max_cache_mem_kb);

	return (Size) kb * 1024;
}

/* The cluster's ceiling in bytes; 0: none. */
static uint64
TotalLimit(void)
{
	if (dltrain_max_total_mem_kb >= 0)
		return (uint64) dltrain_max_total_mem_kb * 1024;
	else
	{
		long		pages = sysconf(_SC_PHYS_PAGES);
		long		pagesize = sysconf(_SC_PAGESIZE);

		if (pages <= 0 || pagesize <= 0)
			return 0;
		return (uint64) pages * (uint64) pagesize / 2;
	}
}

char *
DltFormatBytes(Size bytes)
{
	static const char *const units[] = {"bytes", "kB", "MB", "GB", "TB"};
	double		v = (double) bytes;
	int			u = 0;

	while (v >= 1024 && u < 4)
	{
		v /= 1024;
		u++;
	}
	if (u == 0)
		return psprintf("%zu bytes", bytes);
	if (v == (double) (int64) v)
		return psprintf("%lld %s", (long long) v, units[u]);
	return psprintf("%.1f %s", v, units[u]);
}

Size
DltBudgetHeld(MemoryContext root)
{
	return MemoryContextMemAllocated(root, true);
}

static void
GiveBack(uint64 bytes)
{
	if (bytes == 0 || detached || budget_shared == NULL)
		return;
	pg_atomic_sub_fetch_u64(&budget_shared->reserved, bytes);
	my_reserved -= bytes;
}

static void
ReservationGone(void *arg)
{
	Reservation *r = (Reservation *) arg;

	for (Reservation **p = &reservations; *p != NULL; p = &(*p)->next)
		if (*p == r)
		{
			*p = r->next;
			break;
		}
	GiveBack(r->bytes);
	r->bytes = 0;
}

static void
BudgetBackendExit(int code, Datum arg)
{
	if (budget_shared != NULL && my_reserved > 0)
		pg_atomic_sub_fetch_u64(&budget_shared->reserved, my_reserved);
	my_reserved = 0;
	detached = true;
}

/* Reserves what root will hold (need bytes) in the cluster's total. */
static void
Reserve(MemoryContext root, Size need, const char *what)
{
	Reservation *r;
	uint64		limit = TotalLimit();
	uint64		extra;
	uint64		cur;

	if (budget_shared == NULL || detached || limit == 0)
		return;
	for (r = reservations; r != NULL; r = r->next)
		if (r->root == root)
			break;
	if (r != NULL && r->bytes >= need)
		return;
	if (!exit_callback_registered)
	{
		before_shmem_exit(BudgetBackendExit, (Datum) 0);
		exit_callback_registered = true;
	}
	if (r == NULL)
	{
		r = MemoryContextAllocZero(root, sizeof(Reservation));
		r->root = root;
		r->cb.func = ReservationGone;
		r->cb.arg = r;
		MemoryContextRegisterResetCallback(root, &r->cb);
		r->next = reservations;
		reservations = r;
		need += sizeof(Reservation);
	}
	extra = TYPEALIGN(RESERVE_QUANTUM, need - r->bytes);
	cur = pg_atomic_read_u64(&budget_shared->reserved);
	for (;;)
	{
		if (cur + extra > limit)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("%s would take the memory of all dltrain calls of the cluster past dltrain.max_total_mem (%s)",
							what, DltFormatBytes(limit)),
					 errdetail("The calls running now hold %s together; this one needs %s more.",
							   DltFormatBytes(cur), DltFormatBytes(extra)),
					 errhint("Retry when other trainings have finished, or ask a superuser to raise dltrain.max_total_mem.")));
		if (pg_atomic_compare_exchange_u64(&budget_shared->reserved, &cur, cur + extra))
			break;
	}
	r->bytes += extra;
	my_reserved += extra;
}

void
DltBudgetCheck(MemoryContext root, Size bytes, const char *what)
{
	Size		budget = DltBudgetBytes();
	Size		held = DltBudgetHeld(root);
	Size		need = add_size(held, bytes);

	if (need > budget && bytes == 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s took the call past its memory budget of %s",
						what, DltFormatBytes(budget)),
				 errdetail("The call holds %s. Its budget is the smaller of dltrain.cache_mem and dltrain.max_cache_mem, for everything it holds together.",
						   DltFormatBytes(held)),
				 errhint("Raise dltrain.cache_mem, or use less data, smaller models or fewer of them at once.")));
	if (need > budget)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s would take %s, more than is left of the memory budget of %s",
						what, DltFormatBytes(bytes), DltFormatBytes(budget)),
				 errdetail("The call already holds %s. Its budget is the smaller of dltrain.cache_mem and dltrain.max_cache_mem, for everything it holds together.",
						   DltFormatBytes(held)),
				 errhint("Raise dltrain.cache_mem, or use less data, smaller models or fewer of them at once.")));
	Reserve(root, need, what);
}

static Size
BudgetShmemSize(void)
{
	return sizeof(DltBudgetShared);
}

static void
BudgetShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(BudgetShmemSize());
}

static void
BudgetShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	budget_shared = ShmemInitStruct("dltrain memory budget", BudgetShmemSize(), &found);
	if (!found)
		pg_atomic_init_u64(&budget_shared->reserved, 0);
	LWLockRelease(AddinShmemInitLock);
}

void
DltBudgetInit(void)
{
	DefineCustomIntVariable("dltrain.cache_mem",
							"Sets the memory budget of one dltrain call, for everything it holds together.",
							"The row cache, row indexes, held-out rows, the buffers of every model trained together, and scorers all count. A row cache that would not fit beside its indexes spills to temporary files; anything else over the budget is an error. It is capped by dltrain.max_cache_mem.",
							&dltrain_cache_mem_kb,
							1024 * 1024, 64, INT_MAX,
							PGC_USERSET, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("dltrain.max_cache_mem",
							"Sets the ceiling on dltrain.cache_mem that ordinary users cannot raise.",
							"The budget a training gets is the smaller of dltrain.cache_mem and this value.",
							&dltrain_max_cache_mem_kb,
							8 * 1024 * 1024, 64, INT_MAX,
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("dltrain.max_total_mem",
							"Sets the ceiling on the memory all dltrain calls of the cluster hold together.",
							"Each call reserves what it holds in shared memory before it allocates; a call that would pass the ceiling fails. -1 means half of the machine's physical memory. It needs dltrain in shared_preload_libraries.",
							&dltrain_max_total_mem_kb,
							-1, -1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_KB,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = BudgetShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = BudgetShmemStartup;
}
