/*
 * dlk_gemm.h — exact small GEMMs: every output element is one fused
 * multiply-add chain over the reduction in index order, whatever the shape
 * around it, the tiling, the SIMD width or the thread cut (dlk_gemm.c).
 *
 * Row-major throughout; ldX is the distance, in floats, between rows of X.
 * Letters: C [M x N] the output, K the reduction length.
 *
 *   NT  C[M x N] = A[M x K] * W[N x K]^T (+ bias[N])   dense forward
 *   TN  C[M x N] = A[K x M]^T * B[K x N]                weight gradient
 *   NN  C[M x N] = A[M x K] * B[K x N]                  input gradient
 *
 * Each element is, in exactly this order,
 *     s = s0;  for k = 0 .. K-1:  s = fmaf(a(m, k), b(k, n), s);  C[m, n] = s
 * with s0 = bias[n] (NT with a bias), C[m, n] (flag DLK_GEMM_ADD) or +0.
 * So adding onto a C that holds +0 gives the bits of overwriting it (the
 * network's grads_zero case), and a product computed alone gives, column
 * by column, the bits it has inside a product with more columns (K models'
 * weights concatenated) at any column offset, or inside one with more
 * rows.  The result does not depend on the CPU's SIMD level either (AVX-512,
 * AVX2+FMA and the portable version run the same chain).
 *
 * Like every kernel of the library these never allocate, print or longjmp.
 * They poll dlk_abort_poll() between pieces of at most a few million flops
 * and return DLK_EABORT, C then undefined.  Arguments: M, N, K >= 0,
 * leading dimensions at least the row widths (and >= 1); C must not
 * overlap the inputs.
 */
#ifndef DLK_GEMM_H
#define DLK_GEMM_H

#include "dlk.h"

#include <stddef.h>

/* flags */
#define DLK_GEMM_ADD	1		/* the chain starts from C instead of 0 */
#define DLK_GEMM_POOL	2		/* cut over the pool's threads (dlk_pool_for) */

typedef enum dlk_gemm_op
{
	DLK_GEMM_NT = 0,
	DLK_GEMM_TN,
	DLK_GEMM_NN
} dlk_gemm_op;

/* C[M x N] (+)= A[M x K] W[N x K]^T, + bias[N] (NULL: none; not with ADD) */
dlk_status	dlk_gemm_nt(float *C, int ldc, const float *A, int lda,
						const float *W, int ldw, const float *bias,
						int M, int N, int K, int flags);

/* C[M x N] (+)= A[K x M]^T B[K x N] */
dlk_status	dlk_gemm_tn(float *C, int ldc, const float *A, int lda,
						const float *B, int ldb, int M, int N, int K, int flags);

/* C[M x N] (+)= A[M x K] B[K x N] */
dlk_status	dlk_gemm_nn(float *C, int ldc, const float *A, int lda,
						const float *B, int ldb, int M, int N, int K, int flags);

/*
 * A product as a job for dlk_pool_for: dlk_gemm_job_init checks the
 * arguments as above; dlk_gemm_range computes rows (split_n = 0) or
 * columns (split_n = 1) [lo, hi) of C, all of K, polling for an abort
 * between pieces (it then returns early).  Any cut gives the same bits.
 * dlk_gemm_extent is the n to cut: N or M.
 */
typedef struct dlk_gemm_job
{
	dlk_gemm_op op;
	int			M,
				N,
				K;
	float	   *C;
	int			ldc;
	const float *A;
	int			lda;
	const float *B;				/* W for NT */
	int			ldb;
	const float *bias;
	int			add;
	int			split_n;		/* cut columns (N >= M by default) */
} dlk_gemm_job;

dlk_status	dlk_gemm_job_init(dlk_gemm_job *job, dlk_gemm_op op, float *C, int ldc,
							  const float *A, int lda, const float *B, int ldb,
							  const float *bias, int M, int N, int K, int flags);
void		dlk_gemm_range(void *job, size_t lo, size_t hi);
size_t		dlk_gemm_extent(const dlk_gemm_job *job);

/* Runs a job: on the pool (DLK_GEMM_POOL) or uncut on the caller. */
dlk_status	dlk_gemm_run(dlk_gemm_job *job, int flags);

/*
 * The code path (never the result): DLK_GEMM_ISA_AUTO picks the best the
 * CPU has, once.  dlk_gemm_set_isa (tests, benchmarks) returns DLK_EINVAL
 * for a level the CPU or the build lacks.
 */
#define DLK_GEMM_ISA_AUTO	(-1)
#define DLK_GEMM_ISA_SCALAR	0
#define DLK_GEMM_ISA_AVX2	1
#define DLK_GEMM_ISA_AVX512	2
dlk_status	dlk_gemm_set_isa(int isa);
int			dlk_gemm_isa(void);
const char *dlk_gemm_isa_name(int isa);

#endif							/* DLK_GEMM_H */
