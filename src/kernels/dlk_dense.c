/*
 * dlk_dense.c — dense layers.
 *
 * Each has a plain reference version (use_blas = 0; loops ordered so the
 * inner loop is contiguous) and a BLAS version that calls cblas_sgemm
 * through the pointer bound by dlk_blas_open (dlk_blas.c):
 *   forward   Y = X W^T + b      the bias rows first, then sgemm(NoTrans,
 *                                Trans) with beta = 1; the activation in
 *                                one vectorized pass (dlk_act_rows)
 *   backward  gW = dY^T X        sgemm(Trans, NoTrans)
 *             dX = dY W          sgemm(NoTrans, NoTrans)
 *             gb = column sums of dY (one contiguous pass)
 * The GEMMs are cut over the pool's threads and tiled between abort polls
 * (below).  Rows of every matrix are ld* floats apart, so that a fused step
 * reads and writes column blocks in place.
 */
#include "dlk.h"
#include "dlk_internal.h"

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
 * The GEMMs on the pool's threads.  OpenBLAS runs single-threaded; with
 * dltrain.threads = T, gemm() cuts C into T blocks of columns (or of rows,
 * when C has more rows than columns) and each thread computes its block
 * with one sgemm call: the same threads then run the element-wise work
 * too, and no second set of threads spins against them.  A block starts on
 * a multiple of 16 rows or columns.  Each element of C is one dot product
 * over K whatever the cut, computed by OpenBLAS's kernel; only the tile an
 * element falls in can change its rounding (as OpenBLAS's own threading
 * does).
 *
 * Each range is computed in tiles of at most about GEMM_TILE_FLOPS (tens of
 * milliseconds of one core) and GEMM_TILE_ELEMS elements of C, with an
 * abort poll before each: tiles of
 * cut rows or columns of the cut dimension, at multiples of cut from 0,
 * and, when 16 of those are already too much, of ocut of the other
 * dimension too.  Both follow from M, N and K only, so an uncut scoring
 * product is tiled the same whatever dltrain.threads.  A product of less
 * than those bounds is one tile per range, as before tiles existed.
 */
#define GEMM_MIN_FLOPS_PER_THREAD 2000000	/* about 30 us of one core */
#define GEMM_TILE_FLOPS ((size_t) 1 << 30)
#define GEMM_TILE_ELEMS ((size_t) 1 << 22)

typedef struct gemm_job
{
	int			transA,
				transB,
				M,
				N,
				K;
	const float *A;
	int			lda;
	const float *Bm;
	int			ldb;
	float		beta;
	float	   *C;
	int			ldc;
	int			split_n;		/* cut the columns of C (else its rows) */
	const float *bias;			/* if set: every row of C = bias first, beta 1 */
	size_t		cut;			/* tiles: rows or columns of the cut dimension */
	size_t		ocut;			/* and of the other one */
} gemm_job;

/* Rows [r0, r1) and columns [c0, c1) of C: one sgemm over the whole of K. */
static void
gemm_tile(const gemm_job *j, size_t r0, size_t r1, size_t c0, size_t c1)
{
	/* the bias rows of this tile, just before the product reads them */
	if (j->bias != NULL)
		for (size_t r = r0; r < r1; r++)
			memcpy(j->C + r * j->ldc + c0, j->bias + c0, sizeof(float) * (c1 - c0));
	dlk_cblas_sgemm(DLK_CBLAS_ROW_MAJOR, j->transA, j->transB, (int) (r1 - r0),
					(int) (c1 - c0), j->K, 1.0f,
					j->transA == DLK_CBLAS_NO_TRANS ? j->A + r0 * (size_t) j->lda : j->A + r0,
					j->lda,
					j->transB == DLK_CBLAS_NO_TRANS ? j->Bm + c0 : j->Bm + c0 * (size_t) j->ldb,
					j->ldb, j->beta, j->C + r0 * (size_t) j->ldc + c0, j->ldc);
}

/* Range [lo, hi) of the cut dimension, tile by tile, polling before each. */
static void
gemm_range(void *arg, size_t lo, size_t hi)
{
	const gemm_job *j = arg;
	size_t		other = (size_t) (j->split_n ? j->M : j->N);

	for (size_t t0 = lo; t0 < hi;)
	{
		size_t		t1 = (t0 / j->cut + 1) * j->cut;

		if (t1 > hi)
			t1 = hi;
		for (size_t u0 = 0; u0 < other; u0 += j->ocut)
		{
			size_t		u1 = other - u0 < j->ocut ? other : u0 + j->ocut;

			if (dlk_abort_poll())
				return;
			if (j->split_n)
				gemm_tile(j, u0, u1, t0, t1);
			else
				gemm_tile(j, t0, t1, u0, u1);
		}
		t0 = t1;
	}
}

/*
 * The tiles of a product, from the shapes only: at most about
 * GEMM_TILE_FLOPS, and at most about GEMM_TILE_ELEMS elements of C (with
 * a short K, writing C is the cost).
 */
static void
gemm_tiles(gemm_job *j)
{
	size_t		other = (size_t) (j->split_n ? j->M : j->N);
	size_t		unit = 2 * (size_t) j->K * other + other;	/* one row or column */

	if (unit * 16 <= GEMM_TILE_FLOPS && other * 16 <= GEMM_TILE_ELEMS)
	{
		size_t		c1 = GEMM_TILE_FLOPS / unit,
					c2 = GEMM_TILE_ELEMS / other;

		j->cut = (c1 < c2 ? c1 : c2) / 16 * 16;
		j->ocut = other;
	}
	else
	{
		size_t		o1 = GEMM_TILE_FLOPS / ((2 * (size_t) j->K + 1) * 16),
					o2 = GEMM_TILE_ELEMS / 16,
					oc = (o1 < o2 ? o1 : o2) / 16 * 16;

		j->cut = 16;
		j->ocut = oc < 16 ? 16 : oc;
	}
}

/*
 * C[M x N] = op(A) op(B) + beta C, row-major, on the pool's threads; with a
 * bias [N], C = op(A) op(B) + bias instead (beta ignored).  DLK_EABORT
 * leaves C partly computed.
 */
static dlk_status
gemm(int transA, int transB, int M, int N, int K, const float *A, int lda,
	 const float *Bm, int ldb, float beta, float *C, int ldc, const float *bias,
	 int use_blas)
{
	gemm_job	j = {transA, transB, M, N, K, A, lda, Bm, ldb,
		bias ? 1.0f : beta, C, ldc, N >= M, bias, 0, 0};
	size_t		flops_per_unit = 2 * (size_t) K * (size_t) (j.split_n ? M : N);

	gemm_tiles(&j);
	if (use_blas == DLK_BLAS_UNCUT)
	{
		dlk_abort_begin();
		gemm_range(&j, 0, (size_t) (j.split_n ? N : M));
		return dlk_abort_status();
	}
	return dlk_pool_for(j.split_n ? N : M, GEMM_MIN_FLOPS_PER_THREAD / flops_per_unit + 1,
						gemm_range, &j);
}

/*
 * Y[B x O] = X[B x I] W[O x I]^T + b, rows of Y ldy floats apart and rows
 * of X ldx apart.  With BLAS the bias rows are written first and the GEMM
 * accumulates onto them (beta = 1): OpenBLAS then skips its pass that scales
 * C by beta = 0, and no second pass adds the bias.
 */
dlk_status
dlk_affine(float *Y, int ldy, const float *X, int ldx, const float *W, const float *b,
	   int B, int I, int O, int use_blas)
{
	if (use_blas)
	{
		if (dlk_cblas_sgemm == NULL)
			return DLK_ENOBLAS;
		return gemm(DLK_CBLAS_NO_TRANS, DLK_CBLAS_TRANS, B, O, I, X, ldx, W, I,
					1.0f, Y, ldy, b, use_blas);
	}
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
 * result, without zeroing it first).
 */
dlk_status
dlk_weight_grad(float *gW, const float *dY, int lddy, const float *X, int ldx, int B,
			int I, int O, int use_blas, int onto_zero)
{
	if (use_blas)
		return gemm(DLK_CBLAS_TRANS, DLK_CBLAS_NO_TRANS, O, I, B, dY, lddy, X, ldx,
					onto_zero ? 1.0f : 0.0f, gW, I, NULL, use_blas);
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

	if (use_blas && dlk_cblas_sgemm == NULL)
		return DLK_ENOBLAS;

	if ((st = dlk_bias_grad(gb, dY, lddy, B, O)) != DLK_OK ||
		(st = dlk_weight_grad(gW, dY, lddy, X, ldx, B, I, O, use_blas, gw_zero)) != DLK_OK)
		return st;
	if (dX == NULL)
		return DLK_OK;

	/* dX[B x I] = dY [B x O] W [O x I] */
	if (use_blas)
		return gemm(DLK_CBLAS_NO_TRANS, DLK_CBLAS_NO_TRANS, B, I, O, dY, lddy, W, I,
					0.0f, dX, lddx, NULL, use_blas);
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
