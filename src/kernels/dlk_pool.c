/*
 * dlk_pool.c — the helper threads of a training step.
 *
 * With dltrain.threads = T, a step runs on T threads: the caller and T - 1
 * helpers.  dlk_pool_for(n, ...) cuts [0, n) into T ranges, runs the first
 * on the calling thread and the others on the helpers, and returns when all
 * are done.  dlk.c cuts each GEMM this way (blocks of columns or rows, each
 * one single-threaded OpenBLAS call), and the flat loops of the optimizer
 * and of the gradient check; the glue cuts the batch gather.  OpenBLAS
 * itself runs single-threaded, so one set of threads does all the parallel
 * work and none spins against another on the same cores.
 *
 * Loops of element-wise work do not depend on T: each range is computed by
 * the same code as the whole, element by element, and the ranges start on
 * multiples of 16 elements (one 64-byte line of floats), so vector loops
 * see the same alignment and no two threads write one cache line.
 *
 * Threads.  T is capped at the CPUs the process may run on.  Helpers are
 * started by dlk_pool_set_threads(), which the glue
 * calls with every signal blocked (like dlk_blas_open), so they inherit a
 * mask that keeps PostgreSQL's signals on the backend's own thread.  They
 * only ever run the range functions handed to dlk_pool_for, which touch
 * memory only: no allocation, no PostgreSQL call, no error exit.  A helper
 * spins a little after a job (the next one of a step follows within
 * microseconds, and waking a sleeping thread costs tens of them), then
 * sleeps on a futex.  Helpers live as long as the process (like
 * OpenBLAS's); lowering T leaves the extra ones asleep.  One job at a time:
 * the pool belongs to the one thread that trains (a backend is
 * single-threaded).
 *
 * Without Linux futexes (or with T = 1) dlk_pool_for runs serially.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "dlk.h"

#include <limits.h>
#include <stddef.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#define DLK_POOL_THREADS 1
#endif

/* Range starts are multiples of this many elements. */
#define DLK_POOL_ALIGN 16

static int	pool_parts = 1;		/* threads a job uses, caller included */

/* Part p of P of [0, n): [*lo, *hi), boundaries on multiples of the alignment. */
static void
part_range(size_t n, int P, int p, size_t *lo, size_t *hi)
{
	size_t		blocks = (n + DLK_POOL_ALIGN - 1) / DLK_POOL_ALIGN;
	size_t		b0 = blocks * (size_t) p / (size_t) P;
	size_t		b1 = blocks * (size_t) (p + 1) / (size_t) P;

	*lo = b0 * DLK_POOL_ALIGN < n ? b0 * DLK_POOL_ALIGN : n;
	*hi = b1 * DLK_POOL_ALIGN < n ? b1 * DLK_POOL_ALIGN : n;
}

#ifdef DLK_POOL_THREADS

#define DLK_POOL_MAX 64

/*
 * How long a thread spins before it sleeps on the futex.  A helper between
 * two jobs of a step spins: waking a sleeping thread takes tens of
 * microseconds (more in a virtual machine, whose idle CPU halts), as long
 * as a small job.  After a training, helpers spin this long, then sleep.
 * The caller waits for helpers that run ranges as large as its own.
 */
#define HELPER_SPIN_NS 200000
#define CALLER_SPIN_NS 2000000

static struct
{
	_Atomic uint32_t gen;		/* bumped per job; helpers wait on it */
	_Atomic uint32_t pending;	/* helpers not yet done with this job */
	int			n_helpers;		/* started */
	uint32_t	gen0[DLK_POOL_MAX];	/* gen when helper i was created */
	/* the job, written before gen is bumped, read after */
	dlk_range_fn fn;
	void	   *arg;
	size_t		n;
	int			parts;
} pool;

static void
futex_wait(_Atomic uint32_t *addr, uint32_t expected)
{
	syscall(SYS_futex, (uint32_t *) addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void
futex_wake(_Atomic uint32_t *addr, int n)
{
	syscall(SYS_futex, (uint32_t *) addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/*
 * Waits until *addr differs from value: spins for spin_ns (reading the
 * clock every 64 pauses), then sleeps on the futex.
 */
static uint32_t
wait_change(_Atomic uint32_t *addr, uint32_t value, uint64_t spin_ns)
{
	uint64_t	until = 0;
	uint32_t	v;
	unsigned	k = 0;

	while ((v = atomic_load_explicit(addr, memory_order_acquire)) == value)
	{
		if ((++k & 63) != 0)
			cpu_relax();
		else if (until == 0)
			until = now_ns() + spin_ns;
		else if (now_ns() > until)
			futex_wait(addr, value);
	}
	return v;
}

static void *
helper_main(void *argp)
{
	int			part = (int) (intptr_t) argp;

	/* the generation when this helper was created: later jobs are for it */
	uint32_t	seen = pool.gen0[part];

	for (;;)
	{
		seen = wait_change(&pool.gen, seen, HELPER_SPIN_NS);
		if (part < pool.parts)
		{
			size_t		lo,
						hi;

			part_range(pool.n, pool.parts, part, &lo, &hi);
			if (lo < hi)
				pool.fn(pool.arg, lo, hi);
		}
		if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1)
			futex_wake(&pool.pending, 1);
	}
	return NULL;
}

/*
 * CPUs this thread may run on (its affinity mask, so a cpuset counts).
 * More threads than that would spin against each other: each job waits
 * for its slowest range, and a range whose thread has no CPU waits for a
 * time slice.
 */
static int
usable_cpus(void)
{
	cpu_set_t	set;
	int			n;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return DLK_POOL_MAX;
	n = CPU_COUNT(&set);
	return n >= 1 ? n : 1;
}

dlk_status
dlk_pool_set_threads(int n)
{
	if (n < 1)
		return DLK_EINVAL;
	if (n > DLK_POOL_MAX)
		n = DLK_POOL_MAX;
	if (n > usable_cpus())
		n = usable_cpus();
	while (pool.n_helpers < n - 1)
	{
		pthread_t	t;
		pthread_attr_t attr;
		int			rc;

		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		/* helpers run flat loops: a small stack is plenty */
		pthread_attr_setstacksize(&attr, 256 * 1024);
		pool.gen0[pool.n_helpers + 1] = atomic_load(&pool.gen);
		rc = pthread_create(&t, &attr, helper_main,
							(void *) (intptr_t) (pool.n_helpers + 1));
		pthread_attr_destroy(&attr);
		if (rc != 0)
			break;				/* fewer helpers: the pool still works */
		pool.n_helpers++;
	}
	pool_parts = n < pool.n_helpers + 1 ? n : pool.n_helpers + 1;
	return DLK_OK;
}

void
dlk_pool_for(size_t n, size_t min_per_thread, dlk_range_fn fn, void *arg)
{
	int			P = pool_parts;
	size_t		lo,
				hi;
	uint32_t	left;

	if (min_per_thread > 0 && n / min_per_thread < (size_t) P)
		P = (int) (n / min_per_thread);
	if (P <= 1 || pool.n_helpers == 0)
	{
		if (n > 0)
			fn(arg, 0, n);
		return;
	}
	pool.fn = fn;
	pool.arg = arg;
	pool.n = n;
	pool.parts = P;
	atomic_store_explicit(&pool.pending, (uint32_t) pool.n_helpers, memory_order_relaxed);
	atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
	futex_wake(&pool.gen, INT_MAX);

	part_range(n, P, 0, &lo, &hi);
	if (lo < hi)
		fn(arg, lo, hi);

	/* pending only falls: wait for each change until it reaches 0 */
	while ((left = atomic_load_explicit(&pool.pending, memory_order_acquire)) != 0)
		wait_change(&pool.pending, left, CALLER_SPIN_NS);
}

#else							/* !DLK_POOL_THREADS */

dlk_status
dlk_pool_set_threads(int n)
{
	return n < 1 ? DLK_EINVAL : DLK_OK;
}

void
dlk_pool_for(size_t n, size_t min_per_thread, dlk_range_fn fn, void *arg)
{
	if (n > 0)
		fn(arg, 0, n);
}

#endif

int
dlk_pool_threads(void)
{
	return pool_parts;
}
