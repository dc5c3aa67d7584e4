/*
 * dlk_gemm.c — exact small GEMMs for model selection (API: dlk_gemm.h).
 *
 * Why.  OpenBLAS sums an output element in an order that depends on where
 * the element falls (its column block, the tile edges, N, small-matrix
 * paths), so K models whose first layers are fused into one wider product
 * do not get the bits each would get trained alone.  Here every element of
 * C is ONE fused multiply-add chain over k = 0 .. K-1 in index order,
 * starting from 0, the bias or C (dlk_gemm.h).  Nothing else enters an
 * element: not its row or column, not M or N, not the block it falls in,
 * not the thread cut, not the vector width.  The chain is also the order
 * OpenBLAS's own micro-kernels use along k within a block, so it is as
 * accurate as what it replaces.
 *
 * How.  The chain runs down k, so the SIMD lanes hold different outputs:
 * a register block of MR rows x NV vectors of columns of C, each k step
 * one vector load of a row of B per vector, one broadcast of A per row and
 * MR x NV independent FMAs (dlk_gemm_template.h; AVX-512: 8 x 2 vectors of
 * 16, AVX2+FMA: 4 x 3 vectors of 8; the portable version the same loops in
 * fmaf).  The last vector of a panel is masked, so odd N costs no scalar
 * tail.  TN (B rows of X, A read by broadcast down a row of dY) and NN read
 * their operands in place; NT needs W's columns along the lanes, so it
 * copies a panel of W, transposed and zero-padded, into a 16 KB stack
 * buffer.  K is walked in blocks of GEMM_KC, the panel of B staying in L1:
 * the accumulators go to C between blocks and come back, which leaves the
 * chain unchanged (they are floats either way).
 *
 * Which SIMD path runs depends on the CPU only (picked once, or forced by
 * dlk_gemm_set_isa for tests); all paths give the same bits.  Results equal
 * the scalar reference loop s = fmaf(a, b, s) whatever MXCSR's FTZ/DAZ say,
 * as long as both run under the same MXCSR (this file leaves it alone).
 *
 * Threads and abort.  dlk_gemm_range computes a range of rows or of columns
 * of C (never a piece of K), so it plugs into dlk_pool_for with any cut.
 * Between pieces (a k block of a panel, at most GEMM_KC x 32 x GEMM_MC
 * multiply-adds) it counts work and, every GEMM_POLL_FLOPS or so, polls
 * dlk_abort_poll(); a poll only decides whether to go on.
 */
#include "dlk_gemm.h"
#include "dlk_internal.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define DLK_GEMM_X86 1
#include <immintrin.h>
#endif

#define GEMM_KC 128				/* k per block: a panel of B is <= 16 KB */
#define GEMM_MC 256				/* rows of C per pass over a panel */
#define GEMM_NR_MAX 32			/* widest panel (floats) */
#define GEMM_POLL_FLOPS ((size_t) 1 << 23)	/* about a millisecond */
#define GEMM_MIN_FLOPS_PER_THREAD 2000000

/* where a block's accumulators start */
#define GEMM_INIT_ZERO 0
#define GEMM_INIT_C 1
#define GEMM_INIT_BIAS 2

/* ------------------------------------------------------------------------
 * Micro-kernels
 * ------------------------------------------------------------------------ */

/*
 * The portable block: the same chains, stored in C as they go (a float in C
 * is the same float in a register).
 */
static void
block_scalar(int mr, int nc, int kc, const float *a, ptrdiff_t a_rs, ptrdiff_t a_ks,
			 const float *b, ptrdiff_t b_ks, float *c, ptrdiff_t ldc, int init,
			 const float *bias)
{
	for (int r = 0; r < mr; r++)
	{
		float	   *cr = c + r * ldc;
		const float *ar = a + r * a_rs;

		if (init == GEMM_INIT_ZERO)
			for (int j = 0; j < nc; j++)
				cr[j] = 0.0f;
		else if (init == GEMM_INIT_BIAS)
			for (int j = 0; j < nc; j++)
				cr[j] = bias[j];
		for (int k = 0; k < kc; k++)
		{
			float		av = ar[k * a_ks];
			const float *bk = b + k * b_ks;

			for (int j = 0; j < nc; j++)
				cr[j] = fmaf(av, bk[j], cr[j]);
		}
	}
}

#ifdef DLK_GEMM_X86

#define GT_SUFFIX avx2
#define GT_TARGET "avx2,fma"
#define GT_V __m256
#define GT_W 8
#define GT_MR 4
#define GT_NV 3
#define GT_MASK_T __m256i
#define GT_MASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define GT_ZERO _mm256_setzero_ps()
#define GT_LOAD(p) _mm256_loadu_ps(p)
#define GT_LOADM(p, m) _mm256_maskload_ps((p), (m))
#define GT_STORE(p, v) _mm256_storeu_ps((p), (v))
#define GT_STOREM(p, m, v) _mm256_maskstore_ps((p), (m), (v))
#define GT_BCAST(p) _mm256_broadcast_ss(p)
#define GT_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define GT_CASES(X) \
	X(1, 1) X(1, 2) X(1, 3) X(2, 1) X(2, 2) X(2, 3) \
	X(3, 1) X(3, 2) X(3, 3) X(4, 1) X(4, 2) X(4, 3)
#include "dlk_gemm_template.h"

#define GT_SUFFIX avx512
#define GT_TARGET "avx512f"
#define GT_V __m512
#define GT_W 16
#define GT_MR 8
#define GT_NV 2
#define GT_MASK_T __mmask16
#define GT_MASK(n) ((__mmask16) ((1u << (n)) - 1u))
#define GT_ZERO _mm512_setzero_ps()
#define GT_LOAD(p) _mm512_loadu_ps(p)
#define GT_LOADM(p, m) _mm512_maskz_loadu_ps((m), (p))
#define GT_STORE(p, v) _mm512_storeu_ps((p), (v))
#define GT_STOREM(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
#define GT_BCAST(p) _mm512_set1_ps(*(p))
#define GT_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define GT_CASES(X) \
	X(1, 1) X(1, 2) X(2, 1) X(2, 2) X(3, 1) X(3, 2) X(4, 1) X(4, 2) \
	X(5, 1) X(5, 2) X(6, 1) X(6, 2) X(7, 1) X(7, 2) X(8, 1) X(8, 2)
#include "dlk_gemm_template.h"

#endif							/* DLK_GEMM_X86 */

/* ------------------------------------------------------------------------
 * Instruction set
 * ------------------------------------------------------------------------ */

static _Atomic int gemm_isa = DLK_GEMM_ISA_AUTO;

static int
isa_supported(int isa)
{
	if (isa == DLK_GEMM_ISA_SCALAR)
		return 1;
#ifdef DLK_GEMM_X86
	__builtin_cpu_init();
	if (isa == DLK_GEMM_ISA_AVX2)
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	if (isa == DLK_GEMM_ISA_AVX512)
		return __builtin_cpu_supports("avx512f");
#endif
	return 0;
}

int
dlk_gemm_isa(void)
{
	int			isa = atomic_load_explicit(&gemm_isa, memory_order_relaxed);

	if (isa == DLK_GEMM_ISA_AUTO)
	{
		isa = isa_supported(DLK_GEMM_ISA_AVX512) ? DLK_GEMM_ISA_AVX512 :
			isa_supported(DLK_GEMM_ISA_AVX2) ? DLK_GEMM_ISA_AVX2 : DLK_GEMM_ISA_SCALAR;
		atomic_store_explicit(&gemm_isa, isa, memory_order_relaxed);
	}
	return isa;
}

dlk_status
dlk_gemm_set_isa(int isa)
{
	if (isa == DLK_GEMM_ISA_AUTO)
	{
		atomic_store(&gemm_isa, DLK_GEMM_ISA_AUTO);
		(void) dlk_gemm_isa();
		return DLK_OK;
	}
	if (isa < DLK_GEMM_ISA_SCALAR || isa > DLK_GEMM_ISA_AVX512 || !isa_supported(isa))
		return DLK_EINVAL;
	atomic_store(&gemm_isa, isa);
	return DLK_OK;
}

const char *
dlk_gemm_isa_name(int isa)
{
	switch (isa)
	{
		case DLK_GEMM_ISA_SCALAR:
			return "scalar";
		case DLK_GEMM_ISA_AVX2:
			return "avx2+fma";
		case DLK_GEMM_ISA_AVX512:
			return "avx512f";
	}
	return "auto";
}

/* ------------------------------------------------------------------------
 * Driver
 * ------------------------------------------------------------------------ */

/* the panel shape of an instruction set: vectors of w floats, at most nv */
static void
isa_shape(int isa, int *w, int *nv)
{
	switch (isa)
	{
		case DLK_GEMM_ISA_AVX512:
			*w = 16, *nv = 2;
			break;
		case DLK_GEMM_ISA_AVX2:
			*w = 8, *nv = 3;
			break;
		default:
			*w = 32, *nv = 1;
			break;
	}
}

/* rows [0, mc) of one k block of one panel */
static void
run_panel(int isa, int mc, int nc, int w, int kc, const float *a, ptrdiff_t a_rs,
		  ptrdiff_t a_ks, const float *b, ptrdiff_t b_ks, float *c, ptrdiff_t ldc,
		  int init, const float *bias)
{
	int			nv = (nc + w - 1) / w;
	int			nlast = nc - (nv - 1) * w;

	switch (isa)
	{
#ifdef DLK_GEMM_X86
		case DLK_GEMM_ISA_AVX512:
			panel_avx512(mc, nv, nlast, kc, a, a_rs, a_ks, b, b_ks, c, ldc, init, bias);
			return;
		case DLK_GEMM_ISA_AVX2:
			panel_avx2(mc, nv, nlast, kc, a, a_rs, a_ks, b, b_ks, c, ldc, init, bias);
			return;
#endif
		default:
			(void) nv;
			(void) nlast;
			block_scalar(mc, nc, kc, a, a_rs, a_ks, b, b_ks, c, ldc, init, bias);
			return;
	}
}

/*
 * W[n0 .. n0+nc, k0 .. k0+kc) transposed into buf[k][0 .. nr), the columns
 * past nc zero.
 */
static void
pack_nt(float *restrict buf, int nr, const float *restrict W, ptrdiff_t ldw,
		int n0, int nc, int k0, int kc)
{
	for (int j = 0; j < nc; j++)
	{
		const float *wr = W + (ptrdiff_t) (n0 + j) * ldw + k0;

		for (int k = 0; k < kc; k++)
			buf[k * nr + j] = wr[k];
	}
	if (nc < nr)
		for (int k = 0; k < kc; k++)
			for (int j = nc; j < nr; j++)
				buf[k * nr + j] = 0.0f;
}

/*
 * C[m0 .. m1, n0 .. n1): every element over all of K.  Returns 1 when a
 * poll said stop.
 */
static int
gemm_tile(const dlk_gemm_job *j, int m0, int m1, int n0, int n1)
{
	int			isa = dlk_gemm_isa();
	int			w,
				nvmax,
				nr;
	size_t		work = GEMM_POLL_FLOPS;	/* poll before the first piece */
	float		buf[GEMM_KC * GEMM_NR_MAX] __attribute__((aligned(64)));

	isa_shape(isa, &w, &nvmax);
	nr = w * nvmax;
	for (int mc0 = m0; mc0 < m1; mc0 += GEMM_MC)
	{
		int			mc = m1 - mc0 < GEMM_MC ? m1 - mc0 : GEMM_MC;

		for (int p0 = n0; p0 < n1; p0 += nr)
		{
			int			nc = n1 - p0 < nr ? n1 - p0 : nr;
			float	   *c = j->C + (ptrdiff_t) mc0 * j->ldc + p0;

			/* at least one block, so that K = 0 still writes C */
			for (int k0 = 0; k0 == 0 || k0 < j->K; k0 += GEMM_KC)
			{
				int			kc = j->K - k0 < GEMM_KC ? j->K - k0 : GEMM_KC;
				int			init = k0 > 0 || j->add ? GEMM_INIT_C :
					j->bias != NULL ? GEMM_INIT_BIAS : GEMM_INIT_ZERO;
				const float *bias = j->bias != NULL ? j->bias + p0 : NULL;

				if (work >= GEMM_POLL_FLOPS)
				{
					work = 0;
					if (dlk_abort_poll())
						return 1;
				}
				work += 2 * (size_t) mc * (size_t) nr * (size_t) (kc + 1);
				switch (j->op)
				{
					case DLK_GEMM_NT:
						pack_nt(buf, (nc + w - 1) / w * w, j->B, j->ldb, p0, nc, k0, kc);
						run_panel(isa, mc, nc, w, kc, j->A + (ptrdiff_t) mc0 * j->lda + k0,
								  j->lda, 1, buf, (nc + w - 1) / w * w, c, j->ldc,
								  init, bias);
						break;
					case DLK_GEMM_TN:
						run_panel(isa, mc, nc, w, kc, j->A + (ptrdiff_t) k0 * j->lda + mc0,
								  1, j->lda, j->B + (ptrdiff_t) k0 * j->ldb + p0, j->ldb,
								  c, j->ldc, init, bias);
						break;
					case DLK_GEMM_NN:
						run_panel(isa, mc, nc, w, kc, j->A + (ptrdiff_t) mc0 * j->lda + k0,
								  j->lda, 1, j->B + (ptrdiff_t) k0 * j->ldb + p0, j->ldb,
								  c, j->ldc, init, bias);
						break;
				}
			}
		}
	}
	return 0;
}

void
dlk_gemm_range(void *arg, size_t lo, size_t hi)
{
	const dlk_gemm_job *j = arg;

	if (j->split_n)
		(void) gemm_tile(j, 0, j->M, (int) lo, (int) hi);
	else
		(void) gemm_tile(j, (int) lo, (int) hi, 0, j->N);
}

size_t
dlk_gemm_extent(const dlk_gemm_job *j)
{
	return (size_t) (j->split_n ? j->N : j->M);
}

dlk_status
dlk_gemm_job_init(dlk_gemm_job *j, dlk_gemm_op op, float *C, int ldc,
				  const float *A, int lda, const float *B, int ldb,
				  const float *bias, int M, int N, int K, int flags)
{
	int			add = (flags & DLK_GEMM_ADD) != 0;
	int			a_w,
				b_w;

	if (j == NULL || M < 0 || N < 0 || K < 0 || (int) op < 0 || op > DLK_GEMM_NN ||
		(flags & ~(DLK_GEMM_ADD | DLK_GEMM_POOL)) != 0 ||
		(bias != NULL && (op != DLK_GEMM_NT || add)))
		return DLK_EINVAL;
	/* row widths of A and B as stored */
	a_w = op == DLK_GEMM_TN ? M : K;
	b_w = op == DLK_GEMM_NT ? K : N;
	if (ldc < (N > 1 ? N : 1) || lda < (a_w > 1 ? a_w : 1) || ldb < (b_w > 1 ? b_w : 1))
		return DLK_EINVAL;
	if (M > 0 && N > 0 && (C == NULL || (K > 0 && (A == NULL || B == NULL))))
		return DLK_EINVAL;
	j->op = op;
	j->M = M;
	j->N = N;
	j->K = K;
	j->C = C;
	j->ldc = ldc;
	j->A = A;
	j->lda = lda;
	j->B = B;
	j->ldb = ldb;
	j->bias = bias;
	j->add = add;
	j->split_n = N >= M;
	return DLK_OK;
}

dlk_status
dlk_gemm_run(dlk_gemm_job *j, int flags)
{
	size_t		n = dlk_gemm_extent(j);
	size_t		other = (size_t) (j->split_n ? j->M : j->N);
	size_t		per_unit = 2 * ((size_t) j->K + 1) * (other > 0 ? other : 1);

	if (j->M == 0 || j->N == 0)
		return DLK_OK;
	if (flags & DLK_GEMM_POOL)
		return dlk_pool_for(n, GEMM_MIN_FLOPS_PER_THREAD / per_unit + 1, dlk_gemm_range, j);
	dlk_abort_begin();
	dlk_gemm_range(j, 0, n);
	return dlk_abort_status();
}

static dlk_status
gemm_op(dlk_gemm_op op, float *C, int ldc, const float *A, int lda, const float *B,
		int ldb, const float *bias, int M, int N, int K, int flags)
{
	dlk_gemm_job j;
	dlk_status	st = dlk_gemm_job_init(&j, op, C, ldc, A, lda, B, ldb, bias, M, N, K, flags);

	return st != DLK_OK ? st : dlk_gemm_run(&j, flags);
}

dlk_status
dlk_gemm_nt(float *C, int ldc, const float *A, int lda, const float *W, int ldw,
			const float *bias, int M, int N, int K, int flags)
{
	return gemm_op(DLK_GEMM_NT, C, ldc, A, lda, W, ldw, bias, M, N, K, flags);
}

dlk_status
dlk_gemm_tn(float *C, int ldc, const float *A, int lda, const float *B, int ldb,
			int M, int N, int K, int flags)
{
	return gemm_op(DLK_GEMM_TN, C, ldc, A, lda, B, ldb, NULL, M, N, K, flags);
}

dlk_status
dlk_gemm_nn(float *C, int ldc, const float *A, int lda, const float *B, int ldb,
			int M, int N, int K, int flags)
{
	return gemm_op(DLK_GEMM_NN, C, ldc, A, lda, B, ldb, NULL, M, N, K, flags);
}
