/*
 * dlk_pool.c — the helper threads of a training step.
 *
 * With dltrain.threads = T, a step runs on up to T threads: the caller and
 * T - 1 helpers.  dlk_pool_for(n, ...) cuts [0, n) into T ranges (fewer for
 * small n), which the caller and the helpers claim one at a time until
 * none is left, and returns when all are done.  dlk_dense.c cuts each GEMM this way
 * (ranges of columns or rows of the output, each computed by the exact
 * GEMM of dlk_gemm.c), and the flat loops of the optimizer and of the
 * gradient check; the glue cuts the batch gather.  One set of threads does
 * all the parallel work and none spins against another.
 *
 * The cut depends only on n, the job's minimum and T, never on the
 * machine: with fewer CPUs than T (the threads are capped at the CPUs the
 * process may run on) or fewer helpers than asked for, a thread runs
 * several ranges, one after the other.  So a model depends on
 * dltrain.threads, not on where it trains.  Element-wise loops give the
 * same bits for any cut (each range runs the same code as the whole), and
 * so do the GEMMs (each element is one chain over the whole reduction,
 * which is never cut): a model does not depend on dltrain.threads either.
 * No reduction is cut across threads.
 * Ranges start on multiples of 16 elements, so vector loops see the same
 * alignment as one whole pass.
 *
 * Threads.  Helpers are started by dlk_pool_set_threads(), which the glue
 * calls with every signal blocked (like dlk_blas_open), so they inherit a
 * mask that keeps PostgreSQL's signals on the backend's own thread.  They
 * only ever run the range functions handed to dlk_pool_for, which touch
 * memory: no PostgreSQL call, no error exit.  That rule
 * binds the caller's ranges too: a range that left dlk_pool_for by an
 * error (ereport's longjmp) would leave the others running while the next
 * job rewrites the fields they read.  Each helper
 * waits on its own word: a job wakes only the helpers it uses, without a
 * system call when they are still spinning.  A helper spins a little after
 * a job (the next one of a step follows within microseconds, and waking a
 * sleeping thread costs tens of them), then sleeps on a futex.  Helpers
 * live as long as the process (like OpenBLAS's); lowering T leaves the
 * extra ones asleep.  One job at a time: the pool belongs to the one thread
 * that trains (a backend is single-threaded).
 *
 * Floating point.  A helper runs each range with the FTZ and DAZ bits of
 * the caller's MXCSR at dlk_pool_for (on inside a kernel entry point, as
 * the caller has them: dlk_internal.h), and restores its own mode after
 * the range, so a range computes the same bits on whichever thread.
 *
 * Without Linux futexes (or with T = 1) the ranges run on the caller.
 *
 * Abort.  The glue's abort callback (dlk_set_abort) runs only on the
 * caller's thread: dlk_abort_poll() there asks it and, when it says stop,
 * raises abort_raised; on a helper dlk_abort_poll() only reads that flag.
 * The range functions poll between pieces of their range and return early;
 * a thread that claims a range after the flag is up skips it (but counts it
 * done), so the job still ends with every range accounted for and no helper
 * keeps a stale job.  While the caller waits for helpers' ranges it asks
 * the callback every few milliseconds too (it sleeps on the futex with a
 * timeout), so a helper's long range is stopped through the flag.  The flag
 * is lowered when the next job starts; dlk_pool_for returns DLK_EABORT when
 * it was raised during its job.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "dlk.h"
#include "dlk_internal.h"

#include <stddef.h>
#include <stdatomic.h>

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

/* The most ranges a job is cut into (claim packs counts in 16 bits). */
#define DLK_POOL_MAX 64
_Static_assert(DLK_POOL_MAX < 65536, "claim packs range counts in 16 bits");

/* Range starts are multiples of this many elements. */
#define DLK_POOL_ALIGN 16

static int	pool_parts = 1;		/* T: the ranges a job is cut into */

/* the abort callback, and the flag the caller raises for the helpers */
static dlk_abort_fn abort_fn = NULL;
static void *abort_arg = NULL;
static _Atomic int abort_raised = 0;
static _Thread_local int on_helper = 0;	/* 1 on the pool's helper threads */

void
dlk_set_abort(dlk_abort_fn fn, void *arg)
{
	abort_fn = fn;
	abort_arg = arg;
}

/*
 * The caller asks the callback every time (its answer is fresh: a flag left
 * up by an earlier call never stops a later one); a helper reads the flag.
 */
int
dlk_abort_poll(void)
{
	if (on_helper)
		return atomic_load_explicit(&abort_raised, memory_order_relaxed);
	if (abort_fn != NULL && abort_fn(abort_arg))
	{
		atomic_store(&abort_raised, 1);
		return 1;
	}
	return 0;
}

void
dlk_abort_begin(void)
{
	atomic_store(&abort_raised, 0);
}

/* A job's status: DLK_EABORT when the flag went up while it ran. */
dlk_status
dlk_abort_status(void)
{
	return atomic_load(&abort_raised) ? DLK_EABORT : DLK_OK;
}

#define job_status dlk_abort_status

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

/* The ranges a job of n elements is cut into: T, fewer for a small job. */
static int
job_parts(size_t n, size_t min_per_thread)
{
	int			P = pool_parts;

	if (min_per_thread > 0 && n / min_per_thread < (size_t) P)
		P = (int) (n / min_per_thread);
	return P < 1 ? 1 : P;
}

/* Runs the P ranges of [0, n) one after the other (until an abort). */
static void
run_parts(size_t n, int P, dlk_range_fn fn, void *arg)
{
	for (int p = 0; p < P; p++)
	{
		size_t		lo,
					hi;

		if (dlk_abort_poll())
			return;
		part_range(n, P, p, &lo, &hi);
		if (lo < hi)
			fn(arg, lo, hi);
	}
}

#ifdef DLK_POOL_THREADS

/*
 * How long a thread spins before it sleeps on the futex.  A helper between
 * two jobs of a step spins: waking a sleeping thread takes tens of
 * microseconds (more in a virtual machine, whose idle CPU halts), as long
 * as a small job.  After a training, helpers spin this long, then sleep.
 * The caller waits only for ranges already running (it takes the others
 * itself), at most one range long (a GEMM block is up to a millisecond
 * or so).  Spinning threads yield the CPU now and then:
 * with more runnable threads than CPUs (two trainings, each on all the
 * CPUs) a spinner gives its time slice to a thread with work.
 */
#define HELPER_SPIN_NS 200000
#define CALLER_SPIN_NS 1000000
/* how often a caller waiting for helpers asks the abort callback */
#define CALLER_POLL_NS 5000000

/* A word to wait on, and whether its waiter sleeps; one cache line each. */
typedef struct wait_word
{
	_Atomic uint32_t value;
	_Atomic uint32_t sleeping;	/* 1 while the waiter is (about to be) in futex_wait */
} __attribute__((aligned(64))) wait_word;

/*
 * The current job.  Its ranges are claimed, not assigned: every thread
 * called to it (the caller included) takes the next unclaimed range until
 * none is left, so a helper that wakes late, or is preempted, only means
 * that the others take more ranges; results do not depend on who ran a
 * range.  claim packs the job's sequence number (high 32 bits), its number
 * of ranges (16 bits) and the next range (low 16).  A helper claims with a
 * compare-and-swap that expects the sequence number it was called for, so
 * one that wakes after its job ended claims nothing and never reads the
 * fields of a later job.  The fields are written before claim publishes
 * the job and stay unchanged until every range is done, which cannot
 * happen while a claimed range runs.
 */
static struct
{
	wait_word	job[DLK_POOL_MAX];	/* [i]: set to a job's sequence number to call helper i */
	wait_word	done;			/* ranges of the current job done; the caller waits */
	_Atomic uint64_t claim;		/* sequence number << 32 | ranges << 16 | next */
	uint32_t	seq;			/* the caller's job counter */
	int			n_helpers;		/* started: helpers 1..n_helpers */
	int			runners;		/* threads a job may use: min(T, CPUs, helpers + 1) */
	dlk_range_fn fn;
	void	   *arg;
	size_t		n;
	dlk_fpmode	fp_bits;		/* the caller's FTZ/DAZ bits: the helpers' too */
} pool;

/* Sleeps while *addr == expected, at most timeout_ns (0: no limit). */
static void
futex_wait(_Atomic uint32_t *addr, uint32_t expected, uint64_t timeout_ns)
{
	struct timespec ts = {(time_t) (timeout_ns / 1000000000u), (long) (timeout_ns % 1000000000u)};

	syscall(SYS_futex, (uint32_t *) addr, FUTEX_WAIT_PRIVATE, expected,
			timeout_ns ? &ts : NULL, NULL, 0);
}

static void
futex_wake(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, (uint32_t *) addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
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
 * Waits until w->value differs from value and returns it: spins for
 * spin_ns (every 64 pauses it reads the clock and yields the CPU to any
 * other runnable thread), then sleeps on the futex (with sleep_ns, at most
 * that long: the value returned may then still be value).  The waker stores the
 * value, then wakes the futex if w->sleeping is set; the waiter sets
 * w->sleeping, then reads the value again before it sleeps.  Both orders
 * are sequentially consistent, so one of the two sees the other's store:
 * no wake-up is lost, and a waker whose waiter still spins makes no system
 * call.
 */
static uint32_t
wait_change(wait_word *w, uint32_t value, uint64_t spin_ns, uint64_t sleep_ns)
{
	uint64_t	until = 0;
	uint32_t	v;
	unsigned	k = 0;

	while ((v = atomic_load(&w->value)) == value)
	{
		if ((++k & 63) != 0)
			cpu_relax();
		else if (until == 0)
			until = now_ns() + spin_ns;
		else if (now_ns() < until)
			sched_yield();
		else
		{
			atomic_store(&w->sleeping, 1);
			while ((v = atomic_load(&w->value)) == value)
			{
				futex_wait(&w->value, value, sleep_ns);
				if (sleep_ns)
				{
					v = atomic_load(&w->value);
					break;
				}
			}
			atomic_store(&w->sleeping, 0);
			break;
		}
	}
	return v;
}

/* Publishes a store to w->value (already made) to a waiter that may sleep. */
static void
wake_if_sleeping(wait_word *w)
{
	if (atomic_load(&w->sleeping))
		futex_wake(&w->value);
}

/* Claims and runs ranges of job seq until none is left (or the job is over). */
static void
work_on(uint32_t seq)
{
	for (;;)
	{
		uint64_t	c = atomic_load(&pool.claim);
		uint32_t	P = (uint32_t) (c >> 16) & 0xffff;
		uint32_t	next = (uint32_t) c & 0xffff;
		size_t		lo,
					hi;

		if ((uint32_t) (c >> 32) != seq || next >= P)
			return;
		if (!atomic_compare_exchange_weak(&pool.claim, &c, c + 1))
			continue;
		/* range next of job seq is ours: the job stays until we report it */
		part_range(pool.n, (int) P, (int) next, &lo, &hi);
		if (lo < hi && !atomic_load(&abort_raised) && !dlk_abort_poll())
		{
			/* a helper runs the range in the caller's FTZ/DAZ, then its own */
			dlk_fpmode	own = 0;

			if (on_helper)
			{
				own = dlk_fp_get();
				if ((own & DLK_FP_FTZ_DAZ) != pool.fp_bits)
					dlk_fp_set((own & ~DLK_FP_FTZ_DAZ) | pool.fp_bits);
			}
			pool.fn(pool.arg, lo, hi);
			if (on_helper)
				dlk_fp_leave(own);
		}
		if (atomic_fetch_add(&pool.done.value, 1) + 1 == P)
			wake_if_sleeping(&pool.done);
	}
}

static void *
helper_main(void *argp)
{
	int			t = (int) (intptr_t) argp;
	uint32_t	seen = 0;		/* job words start at 0; sequence numbers at 1 */

	on_helper = 1;
	for (;;)
	{
		seen = wait_change(&pool.job[t], seen, HELPER_SPIN_NS, 0);
		work_on(seen);
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
dlk_pool_configure(int n, int max_threads)
{
	int			want;
	int			cpus;

	if (n < 1 || max_threads < 1)
		return DLK_EINVAL;
	if (n > DLK_POOL_MAX)
		n = DLK_POOL_MAX;
	cpus = usable_cpus();

	pool_parts = n;
	want = n < max_threads ? n : max_threads;
	if (want > cpus)
		want = cpus;
	while (pool.n_helpers < want - 1)
	{
		pthread_t	t;
		pthread_attr_t attr;
		int			rc;

		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		rc = pthread_create(&t, &attr, helper_main,
							(void *) (intptr_t) (pool.n_helpers + 1));
		pthread_attr_destroy(&attr);
		if (rc != 0)
			break;				/* fewer helpers: the caller runs more ranges */
		pool.n_helpers++;
	}
	pool.runners = want < pool.n_helpers + 1 ? want : pool.n_helpers + 1;
	return DLK_OK;
}

dlk_status
dlk_pool_for(size_t n, size_t min_per_thread, dlk_range_fn fn, void *arg)
{
	int			P = job_parts(n, min_per_thread);
	int			S;
	uint32_t	seq,
				d;

	atomic_store(&abort_raised, 0);
	if (P == 1)
	{
		if (n > 0 && !dlk_abort_poll())
			fn(arg, 0, n);
		return job_status();
	}
	S = P < pool.runners ? P : pool.runners;
	if (S <= 1)
	{
		run_parts(n, P, fn, arg);
		return job_status();
	}
	/* sequence numbers skip 0, the helpers' start */
	seq = ++pool.seq;
	if (seq == 0)
		seq = ++pool.seq;
	pool.fn = fn;
	pool.arg = arg;
	pool.n = n;
	pool.fp_bits = dlk_fp_get() & DLK_FP_FTZ_DAZ;
	atomic_store(&pool.done.value, 0);
	atomic_store(&pool.claim, (uint64_t) seq << 32 | (uint64_t) P << 16);
	for (int t = 1; t < S; t++)
	{
		atomic_store(&pool.job[t].value, seq);
		wake_if_sleeping(&pool.job[t]);
	}
	work_on(seq);
	/*
	 * every range is claimed: wait for those still running elsewhere, asking
	 * the abort callback now and then (the helpers then cut their ranges
	 * short)
	 */
	while ((d = atomic_load(&pool.done.value)) != (uint32_t) P)
	{
		(void) dlk_abort_poll();
		wait_change(&pool.done, d, CALLER_SPIN_NS, CALLER_POLL_NS);
	}
	return job_status();
}

int
dlk_pool_threads(void)
{
	return pool.runners > 1 ? pool.runners : 1;
}

#else							/* !DLK_POOL_THREADS */

dlk_status
dlk_pool_configure(int n, int max_threads)
{
	if (n < 1 || max_threads < 1)
		return DLK_EINVAL;
	pool_parts = n < DLK_POOL_MAX ? n : DLK_POOL_MAX;
	return DLK_OK;
}

/* the same cut as with threads, every range on the caller */
dlk_status
dlk_pool_for(size_t n, size_t min_per_thread, dlk_range_fn fn, void *arg)
{
	atomic_store(&abort_raised, 0);
	run_parts(n, job_parts(n, min_per_thread), fn, arg);
	return job_status();
}

int
dlk_pool_threads(void)
{
	return 1;
}

#endif

dlk_status
dlk_pool_set_threads(int n)
{
	return dlk_pool_configure(n, n);
}

/* The ranges a job is cut into: dltrain.threads, whatever the machine. */
int
dlk_pool_parts(void)
{
	return pool_parts;
}
