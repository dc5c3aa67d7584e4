/*
 * dlk_dense.c — dense layers.
 *
 * Each has a plain reference version (use_blas = 0; loops ordered so the
 * inner loop is contiguous), which the tests compare with, and a fast
 * version (use_blas = 1 or DLK_BLAS_UNCUT) whose three products are the
 * exact GEMMs of dlk_gemm.c:
 *   forward   Y = X W^T + b      dlk_gemm_nt, each chain starting from the
 *                                bias; the activation in one vectorized
 *                                pass (dlk_act_rows)
 *   backward  gW = dY^T X        dlk_gemm_tn
 *             dX = dY W          dlk_gemm_nn
 *             gb = column sums of dY (one contiguous pass, row by row)
 * Every element of a product is one fused multiply-add chain down the
 * reduction in index order, so its bits depend on the layer's own numbers
 * only: not on the thread cut (dltrain.threads), not on the columns beside
 * it (a fused step's concatenated first layers) and not on the CPU's SIMD
 * level.  No product goes through OpenBLAS.  Rows of every matrix are ld*
 * floats apart, so that a fused step reads and writes column blocks in
 * place.
 */
#include "dlk.h"
#include "dlk_internal.h"
#include "dlk_gemm.h"

#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Dense layer
 * ------------------------------------------------------------------------ */

/* y += b */
DLK_VECTOR static void
bias_row(float *restrict y, const float *restrict b, int O)
{
	for (int o = 0; o < O; o++)
		y[o] += b[o];
}

/*
 * A dot product in eight interleaved partial sums (lane j takes elements
 * j, j+8, ...), added pairwise at the end: a fixed order, so deterministic,
 * and eight independent chains the compiler turns into vector code instead
 * of one long chain of dependent additions (the scoring of one row, the
 * predict functions' case, is exactly that chain).
 */
DLK_VECTOR static float
dot8(const float *restrict x, const float *restrict w, int n)
{
	dlk_v8sf	acc = {0, 0, 0, 0, 0, 0, 0, 0};
	dlk_v8sf	a = {0, 0, 0, 0, 0, 0, 0, 0};
	dlk_v8sf	b = {0, 0, 0, 0, 0, 0, 0, 0};
	int			i = 0;

	for (; i + 8 <= n; i += 8)
	{
		memcpy(&a, x + i, sizeof(a));
		memcpy(&b, w + i, sizeof(b));
		acc += a * b;
	}
	if (i < n)
	{
		dlk_v8sf	ta = {0, 0, 0, 0, 0, 0, 0, 0};
		dlk_v8sf	tb = {0, 0, 0, 0, 0, 0, 0, 0};

		memcpy(&ta, x + i, sizeof(float) * (n - i));
		memcpy(&tb, w + i, sizeof(float) * (n - i));
		acc += ta * tb;
	}
	return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/*
 * The products of the fast path: the exact kernels of dlk_gemm.c, cut over
 * the pool's threads (use_blas 1) or run uncut on the caller
 * (DLK_BLAS_UNCUT: scoring).  Every element is one FMA chain down the
 * reduction in index order, so neither the cut nor the columns beside it
 * (a fused step's concatenated weights) change a bit.
 */
static int
gemm_flags(int use_blas)
{
	return use_blas == DLK_BLAS_UNCUT ? 0 : DLK_GEMM_POOL;
}

/*
 * Y[B x O] = X[B x I] W[O x I]^T + b, rows of Y ldy floats apart and rows
 * of X ldx apart.  The fast path starts each element's chain from its bias.
 */
dlk_status
dlk_affine(float *Y, int ldy, const float *X, int ldx, const float *W, const float *b,
	   int B, int I, int O, int use_blas)
{
	if (use_blas)
		return dlk_gemm_nt(Y, ldy, X, ldx, W, I, b, B, O, I, gemm_flags(use_blas));
	/* reference: one dot product of two contiguous rows per output */
	for (int r = 0; r < B; r++)
	{
		const float *x = X + (size_t) r * ldx;
		float	   *y = Y + (size_t) r * ldy;

		if (dlk_abort_poll())
			return DLK_EABORT;

		for (int o = 0; o < O; o++)
			y[o] = dot8(x, W + (size_t) o * I, I);
		bias_row(y, b, O);
	}
	return DLK_OK;
}


static int
dense_sizes_ok(int B, int I, int O)
{
	return B >= 1 && I >= 1 && O >= 1 && I <= DLK_MAX_WIDTH &&
		O <= DLK_MAX_WIDTH;
}

static dlk_status
dlk_dense_forward_body(float *Y, const float *X, const float *W,
				  const float *b, int B, int I, int O, int use_blas)
{
	if (!dense_sizes_ok(B, I, O))
		return DLK_EINVAL;
	return dlk_affine(Y, O, X, I, W, b, B, I, O, use_blas);
}

/* dlk_dense_forward in the kernels' floating-point mode (dlk_internal.h) */
dlk_status
dlk_dense_forward(float *Y, const float *X, const float *W,
				  const float *b, int B, int I, int O, int use_blas)
{
	dlk_fpmode	fp = dlk_fp_enter();
	dlk_status	r;

	r = dlk_dense_forward_body(Y, X, W, b, B, I, O, use_blas);
	dlk_fp_leave(fp);
	return r;
}

/* gb[o] = sum_r dY[r, o]: row-wise accumulation, contiguous; rows ld apart */
dlk_status
dlk_bias_grad(float *gb, const float *dY, int ld, int B, int O)
{
	int			pr = dlk_poll_rows(O);

	memcpy(gb, dY, (size_t) O * sizeof(float));
	for (int r = 1; r < B; r++)
	{
		const float *dy = dY + (size_t) r * ld;

		if (r % pr == 0 && dlk_abort_poll())
			return DLK_EABORT;
		for (int o = 0; o < O; o++)
			gb[o] += dy[o];
	}
	return DLK_OK;
}

/*
 * gW[O x I] = dY^T [O x B] X [B x I]; rows lddy and ldx apart.  Overwrites
 * gW, or, with onto_zero, adds onto a gW known to hold zeros (the same
 * result, without zeroing it first; the fast path always overwrites, whose
 * chains start from +0 as adding onto zeros would).
 */
dlk_status
dlk_weight_grad(float *gW, const float *dY, int lddy, const float *X, int ldx, int B,
			int I, int O, int use_blas, int onto_zero)
{
	if (use_blas)
		return dlk_gemm_tn(gW, I, dY, lddy, X, ldx, O, I, B, gemm_flags(use_blas));
	/* reference: gW[o, :] += dY[r, o] * X[r, :] (axpy over rows of X) */
	if (!onto_zero && dlk_zero_floats(gW, (size_t) O * (size_t) I) != DLK_OK)
		return DLK_EABORT;
	for (int r = 0; r < B; r++)
	{
		const float *x = X + (size_t) r * ldx;
		const float *dy = dY + (size_t) r * lddy;

		if (dlk_abort_poll())
			return DLK_EABORT;

		for (int o = 0; o < O; o++)
		{
			float	   *gw = gW + (size_t) o * I;
			float		d = dy[o];

			for (int i = 0; i < I; i++)
				gw[i] += d * x[i];
		}
	}
	return DLK_OK;
}

/*
 * dY [B x O], X [B x I], W [O x I]  ->  gW [O x I], gb [O], dX [B x I];
 * rows of dX, dY and X are lddx, lddy and ldx floats apart.
 */
dlk_status
dlk_dense_backward_ld(float *dX, int lddx, float *gW, float *gb, const float *dY, int lddy,
			   const float *X, int ldx, const float *W, int B, int I, int O,
			   int use_blas, int gw_zero)
{
	dlk_status	st;

	if ((st = dlk_bias_grad(gb, dY, lddy, B, O)) != DLK_OK ||
		(st = dlk_weight_grad(gW, dY, lddy, X, ldx, B, I, O, use_blas, gw_zero)) != DLK_OK)
		return st;
	if (dX == NULL)
		return DLK_OK;

	/* dX[B x I] = dY [B x O] W [O x I] */
	if (use_blas)
		return dlk_gemm_nn(dX, lddx, dY, lddy, W, I, B, I, O, gemm_flags(use_blas));
	/* reference: dX[r, :] = sum_o dY[r, o] * W[o, :] */
	for (int r = 0; r < B; r++)
	{
		float	   *dx = dX + (size_t) r * lddx;
		const float *dy = dY + (size_t) r * lddy;

		if (dlk_abort_poll())
			return DLK_EABORT;

		memset(dx, 0, (size_t) I * sizeof(float));
		for (int o = 0; o < O; o++)
		{
			const float *w = W + (size_t) o * I;
			float		d = dy[o];

			for (int i = 0; i < I; i++)
				dx[i] += d * w[i];
		}
	}
	return DLK_OK;
}

static dlk_status
dlk_dense_backward_body(float *dX, float *gW, float *gb, const float *dY,
				   const float *X, const float *W, int B, int I,
				   int O, int use_blas)
{
	if (!dense_sizes_ok(B, I, O))
		return DLK_EINVAL;
	return dlk_dense_backward_ld(dX, I, gW, gb, dY, O, X, I, W, B, I, O, use_blas, 0);
}

/* dlk_dense_backward in the kernels' floating-point mode (dlk_internal.h) */
dlk_status
dlk_dense_backward(float *dX, float *gW, float *gb, const float *dY,
				   const float *X, const float *W, int B, int I,
				   int O, int use_blas)
{
	dlk_fpmode	fp = dlk_fp_enter();
	dlk_status	r;

	r = dlk_dense_backward_body(dX, gW, gb, dY, X, W, B, I, O, use_blas);
	dlk_fp_leave(fp);
	return r;
}
