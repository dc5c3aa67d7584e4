/*
 * dlk_internal.h — internals shared by the kernel library's own files only.
 *
 * The BLAS binding (dlk_blas.c) owns the function pointers that dlopen()
 * resolves (dlk_cblas_sgemm).  No kernel calls it any more: every product
 * of the fast path is an exact GEMM of dlk_gemm.c; the binding stays for
 * the glue, which opens OpenBLAS, and for benchmarks that compare with it.
 * We do not include cblas.h: the prototype below is the CBLAS one with the
 * enums spelled as int (same ABI), and the constant values are those fixed
 * by the CBLAS standard.  Nothing here is part of the public API (dlk.h).
 *
 * The library's files, one subsystem each (dlk.h is the public umbrella):
 *   dlk_net.c     architecture, sizes, binding buffers; the whole network:
 *                 forward, loss, backward, gradient check, training step
 *   dlk_rng.c     PRNG, shuffle, parameter initializers
 *   dlk_dense.c   dense layers (their products: dlk_gemm.c)
 *   dlk_gemm.c    the exact GEMMs: one FMA chain per element (dlk_gemm.h)
 *   dlk_act.c     activations, element-wise and over strided rows
 *   dlk_loss.c    softmax cross-entropy, MSE, row softmax
 *   dlk_optim.c   SGD, Adam(W), the optimizer step over the pool
 *   dlk_fused.c   K networks' fused step (model selection)
 *   dlk_rows.c    the glue's row operations (statistics, conversion)
 *   dlk_pool.c    helper threads, the abort flag
 *   dlk_blas.c    the run-time BLAS binding (used by no kernel)
 *
 * Determinism.  The PRNG is xoshiro256** seeded through splitmix64 and the
 * initializers draw parameters in buffer order, so a seed gives the same
 * model on every platform; all loops have a fixed order, and every
 * element of a product is one FMA chain in index order (dlk_gemm.c), so
 * training is bit-reproducible, and independent of the thread count, of
 * the CPU's SIMD level and of what a model is fused with.  Reductions are
 * never cut by threads: the pool cuts products over their outputs and
 * element-wise loops over elements; bias gradients, losses and softmax
 * reduce per model in a fixed order on the caller.
 *
 * Abort.  Every loop whose length the caller's sizes set polls
 * dlk_abort_poll() (dlk_pool.c) between pieces: a GEMM every 2^23 flops
 * or so, between blocks of a panel (dlk_gemm.c; the reduction is never
 * cut, and a poll only decides whether to go on, so it changes no bit),
 * an element-wise pass or a loop over rows every
 * DLK_POLL_ELEMS elements, the initializer and the shuffle every 2^20
 * draws.  A poll that says stop makes the function return DLK_EABORT at
 * once, through every caller; buffers it was writing are left half-written
 * (the glue then raises the error and drops them).
 */
#ifndef DLK_INTERNAL_H
#define DLK_INTERNAL_H

#include "dlk.h"

#include <stddef.h>
#include <stdint.h>

#define DLK_CBLAS_ROW_MAJOR	101
#define DLK_CBLAS_NO_TRANS	111
#define DLK_CBLAS_TRANS		112

/*
 * C[M x N] = alpha * op(A)[M x K] * op(B)[K x N] + beta * C, with
 * order/transA/transB as above and leading dimensions lda, ldb, ldc.
 */
typedef void (*dlk_sgemm_fn) (int order, int transA, int transB,
							  int M, int N, int K, float alpha,
							  const float *A, int lda,
							  const float *B, int ldb,
							  float beta, float *C, int ldc);

/* Bound by dlk_blas_open(); NULL until then. */
extern dlk_sgemm_fn dlk_cblas_sgemm;

/*
 * Abort (dlk_pool.c) for work that runs outside dlk_pool_for on the
 * caller's thread: dlk_abort_begin() lowers the helpers' flag, and
 * dlk_abort_status() says whether a poll since then raised it.
 */
extern void dlk_abort_begin(void);
extern dlk_status dlk_abort_status(void);

/* Elements of an element-wise pass between two polls (about a millisecond). */
#define DLK_POLL_ELEMS ((size_t) 1 << 20)

/*
 * Element-wise loops are also built for AVX2 and picked at load time (GCC
 * function multiversioning).  AVX2 without FMA: no contraction, so every
 * version computes bit-identical results; only the vector width differs.
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define DLK_VECTOR __attribute__((target_clones("avx2", "default")))
#else
#define DLK_VECTOR
#endif

/* Eight floats in GCC vector extensions (dot products, exponentials). */
typedef float dlk_v8sf __attribute__((vector_size(32)));

/* Rows of width floats between two polls. */
static inline int
dlk_poll_rows(int width)
{
	size_t		r = DLK_POLL_ELEMS / (size_t) (width > 0 ? width : 1);

	return r < 1 ? 1 : (int) r;
}

/* Fewest parameters per thread worth a helper's wake-up (about 5 us of Adam). */
#define DLK_OPT_MIN_PER_THREAD 16384

/*
 * The floating-point mode of a kernel entry point.  Subnormal floats (a
 * confident softmax's probabilities divided by B, and what they meet in
 * the weight-gradient GEMM) run some 70 times slower on x86-64 (measured
 * through OpenBLAS; the exact GEMM's FMAs take the same microcode assists);
 * flush-to-zero (results) and denormals-are-zero (operands) make them
 * zeros, which no model here can tell apart.  Every entry point that
 * does float work for training, evaluation or scoring calls dlk_fp_enter()
 * first, which saves the caller's MXCSR and sets FTZ (bit 15) and DAZ (bit
 * 6), and dlk_fp_leave(saved) on every return path, which restores it: so
 * a nested entry point restores its caller's mode (already FTZ) and the
 * outermost one the glue's.  Kernels never longjmp, so the mode cannot leak
 * through an error or a cancel.  The pool's helpers run each range in the
 * caller's FTZ/DAZ bits and restore their own afterwards (dlk_pool.c).
 * Elsewhere (other architectures, or built with -DDLK_NO_FTZ for the
 * before/after benchmark) these are no-ops.
 */
#if (defined(__x86_64__) || (defined(__i386__) && defined(__SSE2__))) && !defined(DLK_NO_FTZ)
#include <xmmintrin.h>
#define DLK_FP_FTZ_DAZ 0x8040u	/* MXCSR: FTZ (bit 15) | DAZ (bit 6) */
typedef unsigned int dlk_fpmode;

static inline dlk_fpmode
dlk_fp_get(void)
{
	return _mm_getcsr();
}

static inline void
dlk_fp_set(dlk_fpmode m)
{
	_mm_setcsr(m);
}
#else
#define DLK_FP_FTZ_DAZ 0u
typedef unsigned int dlk_fpmode;

static inline dlk_fpmode
dlk_fp_get(void)
{
	return 0;
}

static inline void
dlk_fp_set(dlk_fpmode m)
{
	(void) m;
}
#endif

/* Saves the caller's mode and turns FTZ and DAZ on. */
static inline dlk_fpmode
dlk_fp_enter(void)
{
	dlk_fpmode	saved = dlk_fp_get();

	if ((saved & DLK_FP_FTZ_DAZ) != DLK_FP_FTZ_DAZ)
		dlk_fp_set(saved | DLK_FP_FTZ_DAZ);
	return saved;
}

/* Restores the mode dlk_fp_enter saved (its status flags too). */
static inline void
dlk_fp_leave(dlk_fpmode saved)
{
	if (DLK_FP_FTZ_DAZ != 0 && dlk_fp_get() != saved)
		dlk_fp_set(saved);
}

/* ---- dlk_net.c ---- */

/* Zeroes n floats, polling between pieces. */
extern dlk_status dlk_zero_floats(float *p, size_t n);
/* Forward from X (or, X NULL, from layer 0's output already in act[0]). */
extern dlk_status dlk_net_forward_from(dlk_net *net, const float *X, int B);
/* The loss of act[L-1] and dL/d(output) into dbuf[0] (or dact0). */
extern dlk_status dlk_net_loss(dlk_net *net, const int32_t *labels,
							   const float *targets, int B, double *lv);
/* Backward from dbuf[0] through layers L-1 .. stop. */
extern dlk_status dlk_net_backward(dlk_net *net, const float *X, int B, int stop);
/* DLK_OK if every gradient is finite, else DLK_ENONFINITE (or DLK_EABORT). */
extern dlk_status dlk_grads_finite(const dlk_net *net);

/* ---- dlk_dense.c: rows of each matrix ld* floats apart ---- */

extern dlk_status dlk_affine(float *Y, int ldy, const float *X, int ldx,
							 const float *W, const float *b, int B, int I, int O,
							 int use_blas);
extern dlk_status dlk_bias_grad(float *gb, const float *dY, int ld, int B, int O);
extern dlk_status dlk_weight_grad(float *gW, const float *dY, int lddy,
								  const float *X, int ldx, int B, int I, int O,
								  int use_blas, int onto_zero);
extern dlk_status dlk_dense_backward_ld(float *dX, int lddx, float *gW, float *gb,
										const float *dY, int lddy, const float *X,
										int ldx, const float *W, int B, int I, int O,
										int use_blas, int gw_zero);

/* ---- dlk_act.c ---- */

extern dlk_status dlk_act_rows(float *Y, int ld, int B, int O, dlk_act act);
extern dlk_status dlk_act_backward_rows(float *dX, int ldx, const float *Y, int ldy,
										int B, int I, dlk_act act);

/* ---- dlk_loss.c ---- */

extern dlk_status dlk_softmax_ce_ld(double *loss, float *dlogits, int ldd,
									const float *logits, int ldz,
									const int32_t *labels, int B, int C, float *tmp);
/* dlk_mse over rows ldd (dpred) and ldp (pred) apart, bit for bit the same */
extern void dlk_mse_ld(double *loss, float *dpred, int ldd, const float *pred, int ldp,
					   const float *target, int B, int C);

#endif							/* DLK_INTERNAL_H */
