/*
 * dlk_internal.h — internals shared by the kernel library's own files only.
 *
 * The BLAS binding (dlk_blas.c) owns the function pointers that dlopen()
 * resolves; the kernels (dlk.c) call sgemm through dlk_cblas_sgemm.  We do not
 * include cblas.h: the prototype below is the CBLAS one with the enums spelled
 * as int (same ABI), and the constant values are those fixed by the CBLAS
 * standard.  Nothing here is part of the public API (dlk.h).
 */
#ifndef DLK_INTERNAL_H
#define DLK_INTERNAL_H

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

#endif							/* DLK_INTERNAL_H */
