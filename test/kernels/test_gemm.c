/*
 * test_gemm.c — tests of the exact GEMMs (src/kernels/dlk_gemm.c).
 *
 * Every element of a product must be the chain s = fmaf(a, b, s) over k in
 * index order from 0, the bias or C: the tests compare bit for bit with a
 * plain loop written that way (ref_gemm), on every instruction set the CPU
 * has, odd shapes (1, 3, 7, 17, 100, 129 for each of M, N, K), leading
 * dimensions wider than the rows, subnormal operands, every thread count
 * 1..4, and the property model selection needs: a product's columns (NT,
 * NN) or rows (TN) have the same bits inside a wider product, at any
 * offset.  A double-precision product checks the reference itself within
 * the bound of a float dot product (|error| <= K eps sum |a b|).
 *
 * Output: one line per test, then "gemm: N passed, N failed"; test/kernels'
 * Makefile adds it to test_kernels' counts.
 */
#include "../../src/kernels/dlk.h"
#include "../../src/kernels/dlk_gemm.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	n_passed = 0;
static int	n_failed = 0;
static char msg[512];
static dlk_rng rng;

static int
fail(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return 0;
}

static void
run_test(const char *name, int (*fn) (void))
{
	msg[0] = '\0';
	if (fn())
	{
		n_passed++;
		printf("ok    %s\n", name);
	}
	else
	{
		n_failed++;
		printf("FAIL  %s: %s\n", name, msg);
	}
	fflush(stdout);
}

static const int dims[] = {1, 3, 7, 17, 100, 129};
#define NDIMS ((int) (sizeof(dims) / sizeof(dims[0])))

static float
uniform(float scale)
{
	return (float) ((2.0 * dlk_rng_uniform(&rng) - 1.0) * scale);
}

static float *
rand_buf(size_t n, float scale)
{
	float	   *p = malloc((n ? n : 1) * sizeof(float));

	for (size_t i = 0; i < n; i++)
		p[i] = uniform(scale);
	return p;
}

/* a(m, k) and b(k, n) of each operation, as stored */
static float
op_a(dlk_gemm_op op, const float *A, int lda, int m, int k)
{
	return op == DLK_GEMM_TN ? A[(size_t) k * lda + m] : A[(size_t) m * lda + k];
}

static float
op_b(dlk_gemm_op op, const float *B, int ldb, int k, int n)
{
	return op == DLK_GEMM_NT ? B[(size_t) n * ldb + k] : B[(size_t) k * ldb + n];
}

/* the definition: one fmaf chain per element, k in order */
static void
ref_gemm(dlk_gemm_op op, float *C, int ldc, const float *A, int lda, const float *B,
		 int ldb, const float *bias, int M, int N, int K, int add)
{
	for (int m = 0; m < M; m++)
		for (int n = 0; n < N; n++)
		{
			float		s = add ? C[(size_t) m * ldc + n] : bias ? bias[n] : 0.0f;

			for (int k = 0; k < K; k++)
				s = fmaf(op_a(op, A, lda, m, k), op_b(op, B, ldb, k, n), s);
			C[(size_t) m * ldc + n] = s;
		}
}

static dlk_status
call_gemm(dlk_gemm_op op, float *C, int ldc, const float *A, int lda, const float *B,
		  int ldb, const float *bias, int M, int N, int K, int flags)
{
	switch (op)
	{
		case DLK_GEMM_NT:
			return dlk_gemm_nt(C, ldc, A, lda, B, ldb, bias, M, N, K, flags);
		case DLK_GEMM_TN:
			return dlk_gemm_tn(C, ldc, A, lda, B, ldb, M, N, K, flags);
		case DLK_GEMM_NN:
			return dlk_gemm_nn(C, ldc, A, lda, B, ldb, M, N, K, flags);
	}
	return DLK_EINVAL;
}

static const char *op_name[] = {"NT", "TN", "NN"};

/* stored sizes of A and B, with their leading dimensions */
static void
op_sizes(dlk_gemm_op op, int M, int N, int K, int pad, int *lda, int *ldb,
		 size_t *na, size_t *nb)
{
	int			arows = op == DLK_GEMM_TN ? K : M,
				awide = op == DLK_GEMM_TN ? M : K,
				brows = op == DLK_GEMM_NT ? N : K,
				bwide = op == DLK_GEMM_NT ? K : N;

	*lda = awide + pad;
	*ldb = bwide + 2 * pad;
	*na = (size_t) arows * *lda;
	*nb = (size_t) brows * *ldb;
}

static int
bits_equal(const float *x, const float *y, int M, int N, int ldx, int ldy,
		   int *bm, int *bn)
{
	for (int m = 0; m < M; m++)
		for (int n = 0; n < N; n++)
			if (memcmp(&x[(size_t) m * ldx + n], &y[(size_t) m * ldy + n], sizeof(float)) != 0)
			{
				*bm = m;
				*bn = n;
				return 0;
			}
	return 1;
}

static const int isas[] = {DLK_GEMM_ISA_SCALAR, DLK_GEMM_ISA_AVX2, DLK_GEMM_ISA_AVX512};

/*
 * Every op, shape in dims^3 and instruction set, bit for bit against
 * ref_gemm; pads, the bias, ADD and the operand scale vary with the case.
 * scale_a small gives subnormal products and sums.
 */
static int
exact_cases(float scale_a, float scale_b)
{
	int			cases = 0;

	for (int op = 0; op < 3; op++)
		for (int im = 0; im < NDIMS; im++)
			for (int in = 0; in < NDIMS; in++)
				for (int ik = 0; ik < NDIMS; ik++)
				{
					int			M = dims[im],
								N = dims[in],
								K = dims[ik];
					int			variant = (im + 2 * in + 3 * ik + op) % 4;
					int			pad = variant * 3;
					int			ldc = N + pad + (variant & 1);
					int			lda,
								ldb;
					size_t		na,
								nb;
					int			add = variant == 1;
					int			use_bias = op == DLK_GEMM_NT && variant >= 2;
					float	   *A,
							   *B,
							   *C0,
							   *Cr,
							   *C,
							   *bias;
					int			ok = 1;

					op_sizes(op, M, N, K, pad, &lda, &ldb, &na, &nb);
					A = rand_buf(na, scale_a);
					B = rand_buf(nb, scale_b);
					C0 = rand_buf((size_t) M * ldc, scale_a * scale_b);
					bias = rand_buf((size_t) N, scale_a * scale_b);
					Cr = malloc((size_t) M * ldc * sizeof(float));
					C = malloc((size_t) M * ldc * sizeof(float));
					memcpy(Cr, C0, (size_t) M * ldc * sizeof(float));
					ref_gemm(op, Cr, ldc, A, lda, B, ldb, use_bias ? bias : NULL, M, N, K, add);
					for (int t = 0; t < 3 && ok; t++)
					{
						int			bm,
									bn;
						dlk_status	st;

						if (dlk_gemm_set_isa(isas[t]) != DLK_OK)
							continue;
						memcpy(C, C0, (size_t) M * ldc * sizeof(float));
						st = call_gemm(op, C, ldc, A, lda, B, ldb, use_bias ? bias : NULL,
									   M, N, K, add ? DLK_GEMM_ADD : 0);
						if (st != DLK_OK)
							ok = fail("%s %dx%dx%d %s: status %d", op_name[op], M, N, K,
									  dlk_gemm_isa_name(isas[t]), (int) st);
						else if (!bits_equal(C, Cr, M, N, ldc, ldc, &bm, &bn))
							ok = fail("%s M=%d N=%d K=%d %s: C[%d,%d] = %a, reference %a",
									  op_name[op], M, N, K, dlk_gemm_isa_name(isas[t]), bm, bn,
									  C[(size_t) bm * ldc + bn], Cr[(size_t) bm * ldc + bn]);
						/* the padding between rows is left alone */
						for (int m = 0; m < M && ok; m++)
							for (int n = N; n < ldc; n++)
								if (memcmp(&C[(size_t) m * ldc + n], &C0[(size_t) m * ldc + n],
										   sizeof(float)) != 0)
								{
									ok = fail("%s %dx%dx%d: wrote C[%d,%d] past N",
											  op_name[op], M, N, K, m, n);
									break;
								}
						cases++;
					}
					free(A);
					free(B);
					free(C0);
					free(Cr);
					free(C);
					free(bias);
					if (!ok)
					{
						dlk_gemm_set_isa(DLK_GEMM_ISA_AUTO);
						return 0;
					}
				}
	dlk_gemm_set_isa(DLK_GEMM_ISA_AUTO);
	return cases > 0;
}

static int
test_exact(void)
{
	return exact_cases(1.0f, 1.0f);
}

/* subnormal operands and results (no FTZ/DAZ here: MXCSR as the process has it) */
static int
test_subnormal(void)
{
	int			ok;
	float		tiny = 1e-39f;	/* subnormal */
	float		x = tiny;

	if (fpclassify(x) != FP_SUBNORMAL)
		return fail("1e-39f is not subnormal here");
	ok = exact_cases(1e-20f, 1e-19f);	/* products ~1e-39: subnormal */
	if (ok)
		ok = exact_cases(1e-39f, 1.0f);	/* subnormal A */
	return ok;
}

/* the double-precision product, within a float dot product's error bound */
static int
test_double(void)
{
	for (int op = 0; op < 3; op++)
		for (int is = 0; is < NDIMS; is++)
		{
			int			M = dims[is],
						N = dims[(is + 2) % NDIMS],
						K = dims[(is + 4) % NDIMS] * 7;
			int			lda,
						ldb;
			size_t		na,
						nb;
			float	   *A,
					   *B,
					   *C;

			op_sizes(op, M, N, K, 1, &lda, &ldb, &na, &nb);
			A = rand_buf(na, 1.0f);
			B = rand_buf(nb, 1.0f);
			C = malloc((size_t) M * N * sizeof(float));
			if (call_gemm(op, C, N, A, lda, B, ldb, NULL, M, N, K, 0) != DLK_OK)
				return fail("status");
			for (int m = 0; m < M; m++)
				for (int n = 0; n < N; n++)
				{
					double		s = 0,
								mag = 0;

					for (int k = 0; k < K; k++)
					{
						double		p = (double) op_a(op, A, lda, m, k) *
							(double) op_b(op, B, ldb, k, n);

						s += p;
						mag += fabs(p);
					}
					if (fabs(C[(size_t) m * N + n] - s) > K * (double) FLT_EPSILON * mag + 1e-30)
						return fail("%s %dx%dx%d: C[%d,%d] = %.9g, double %.9g", op_name[op],
									M, N, K, m, n, C[(size_t) m * N + n], s);
				}
			free(A);
			free(B);
			free(C);
		}
	return 1;
}

/*
 * Model selection's property: NT with W's rows at an offset inside a
 * stacked W (columns of C), TN with dY's columns at an offset inside a
 * wider dY (rows of C), NN with rows of dY inside more rows: the product
 * alone and inside the bigger one agree bit for bit, on every ISA.
 */
static int
test_concat(void)
{
	static const int Bs[] = {1, 7, 100, 128, 129};
	static const int Is[] = {64, 784, 17};
	static const int Os[] = {10, 3, 128};

	for (int t = 0; t < 3; t++)
	{
		if (dlk_gemm_set_isa(isas[t]) != DLK_OK)
			continue;
		for (int ib = 0; ib < 5; ib++)
			for (int ii = 0; ii < 3; ii++)
				for (int io = 0; io < 3; io++)
				{
					int			B = Bs[ib],
								I = Is[ii],
								O = Os[io];
					int			offs[] = {0, 10, 37, 80 - O > 0 ? 80 - O : 1};
					int			Ot = O + 80 + 13;	/* the wide product's columns */

					for (int io2 = 0; io2 < 4; io2++)
					{
						int			off = offs[io2];
						int			ldw = I + (io2 & 1);
						int			ld = Ot + 3;
						float	   *X = rand_buf((size_t) B * I, 1.0f);
						float	   *Wt = rand_buf((size_t) Ot * ldw, 1.0f);
						float	   *bt = rand_buf((size_t) Ot, 1.0f);
						float	   *dYt = rand_buf((size_t) B * ld, 1.0f);
						float	   *Yt = malloc((size_t) B * ld * sizeof(float));
						float	   *Y = malloc((size_t) B * O * sizeof(float));
						float	   *gWt = malloc((size_t) Ot * I * sizeof(float));
						float	   *gW = malloc((size_t) O * I * sizeof(float));
						float	   *dXt = malloc((size_t) B * I * sizeof(float));
						float	   *dX = malloc((size_t) (B > 1 ? B - 1 : 1) * I * sizeof(float));
						int			bm,
									bn,
									ok = 1;

						/* forward: Y alone (W's rows off.., packed C) vs inside Yt */
						dlk_gemm_nt(Yt, ld, X, I, Wt, ldw, bt, B, Ot, I, 0);
						dlk_gemm_nt(Y, O, X, I, Wt + (size_t) off * ldw, ldw, bt + off, B, O, I, 0);
						if (!bits_equal(Y, Yt + off, B, O, O, ld, &bm, &bn))
							ok = fail("NT B=%d I=%d O=%d at %d (%s): Y[%d,%d]", B, I, O, off,
									  dlk_gemm_isa_name(isas[t]), bm, bn);
						/* weight gradient: dY^T X, rows off.. of the wide one */
						memset(gW, 0, (size_t) O * I * sizeof(float));
						dlk_gemm_tn(gWt, I, dYt, ld, X, I, Ot, I, B, 0);
						dlk_gemm_tn(gW, I, dYt + off, ld, X, I, O, I, B, DLK_GEMM_ADD);
						if (ok && !bits_equal(gW, gWt + (size_t) off * I, O, I, I, I, &bm, &bn))
							ok = fail("TN B=%d I=%d O=%d at %d (%s): gW[%d,%d]", B, I, O, off,
									  dlk_gemm_isa_name(isas[t]), bm, bn);
						/* input gradient: dY W over all B rows vs rows 1.. alone */
						dlk_gemm_nn(dXt, I, dYt + off, ld, Wt, ldw, B, I, O, 0);
						if (B > 1)
						{
							dlk_gemm_nn(dX, I, dYt + off + ld, ld, Wt, ldw, B - 1, I, O, 0);
							if (ok && !bits_equal(dX, dXt + I, B - 1, I, I, I, &bm, &bn))
								ok = fail("NN B=%d I=%d O=%d (%s): dX[%d,%d]", B, I, O,
										  dlk_gemm_isa_name(isas[t]), bm, bn);
						}
						/* NN: a column block of dX alone */
						if (ok && I > 20)
						{
							dlk_gemm_nn(dX, I, dYt + off, ld, Wt + 13, ldw, B > 1 ? B - 1 : 1,
										I - 20, O, 0);
							if (!bits_equal(dX, dXt + 13, B > 1 ? B - 1 : 1, I - 20, I, I, &bm, &bn))
								ok = fail("NN columns B=%d I=%d O=%d: dX[%d,%d]", B, I, O, bm, bn);
						}
						free(X);
						free(Wt);
						free(bt);
						free(dYt);
						free(Yt);
						free(Y);
						free(gWt);
						free(gW);
						free(dXt);
						free(dX);
						if (!ok)
						{
							dlk_gemm_set_isa(DLK_GEMM_ISA_AUTO);
							return 0;
						}
					}
				}
	}
	dlk_gemm_set_isa(DLK_GEMM_ISA_AUTO);
	return 1;
}

/* every thread count 1..4 and every ISA, through the pool: the same bits */
static int
test_threads(void)
{
	static const int shapes[][3] = {{128, 640, 784}, {640, 784, 128}, {129, 256, 128},
	{7, 100, 17}, {1, 80, 64}, {100, 10, 784}};
	int			ok = 1;

	for (int s = 0; s < 6 && ok; s++)
		for (int op = 0; op < 3 && ok; op++)
		{
			int			M = shapes[s][0],
						N = shapes[s][1],
						K = shapes[s][2];
			int			lda,
						ldb;
			size_t		na,
						nb;
			float	   *A,
					   *B,
					   *C1,
					   *C;

			op_sizes(op, M, N, K, 0, &lda, &ldb, &na, &nb);
			A = rand_buf(na, 1.0f);
			B = rand_buf(nb, 1.0f);
			C1 = malloc((size_t) M * N * sizeof(float));
			C = malloc((size_t) M * N * sizeof(float));
			dlk_pool_configure(1, 1);
			call_gemm(op, C1, N, A, lda, B, ldb, NULL, M, N, K, 0);
			for (int t = 1; t <= 4 && ok; t++)
				for (int i = 0; i < 3 && ok; i++)
				{
					int			bm,
								bn;
					dlk_status	st;

					if (dlk_gemm_set_isa(isas[i]) != DLK_OK)
						continue;
					if (dlk_pool_configure(t, t) != DLK_OK)
						ok = fail("pool_configure %d", t);
					memset(C, 0xff, (size_t) M * N * sizeof(float));
					st = call_gemm(op, C, N, A, lda, B, ldb, NULL, M, N, K, DLK_GEMM_POOL);
					if (ok && st != DLK_OK)
						ok = fail("status %d", (int) st);
					if (ok && !bits_equal(C, C1, M, N, N, N, &bm, &bn))
						ok = fail("%s %dx%dx%d, %d threads, %s: C[%d,%d]", op_name[op], M, N, K,
								  t, dlk_gemm_isa_name(isas[i]), bm, bn);
				}
			dlk_gemm_set_isa(DLK_GEMM_ISA_AUTO);
			dlk_pool_configure(1, 1);
			free(A);
			free(B);
			free(C1);
			free(C);
		}
	return ok;
}

/* adding onto +0 gives the bits of overwriting */
static int
test_add_onto_zero(void)
{
	int			M = 80,
				N = 100,
				K = 129;
	float	   *A = rand_buf((size_t) K * M, 1.0f);
	float	   *B = rand_buf((size_t) K * N, 1.0f);
	float	   *C1 = malloc((size_t) M * N * sizeof(float));
	float	   *C2 = calloc((size_t) M * N, sizeof(float));
	int			bm,
				bn,
				ok = 1;

	/* some products are -0: a(m, k) = -0 in column 0 */
	for (int k = 0; k < K; k++)
		A[(size_t) k * M] = -0.0f;
	dlk_gemm_tn(C1, N, A, M, B, N, M, N, K, 0);
	dlk_gemm_tn(C2, N, A, M, B, N, M, N, K, DLK_GEMM_ADD);
	if (!bits_equal(C1, C2, M, N, N, N, &bm, &bn))
		ok = fail("C[%d,%d]: %a vs %a", bm, bn, C1[bm * N + bn], C2[bm * N + bn]);
	free(A);
	free(B);
	free(C1);
	free(C2);
	return ok;
}

static int
test_args(void)
{
	float		a[16] = {0},
				c[16];

	if (dlk_gemm_nt(c, 4, a, 4, a, 4, NULL, 2, 4, 4, 0) != DLK_OK)
		return fail("valid call refused");
	if (dlk_gemm_nt(c, 3, a, 4, a, 4, NULL, 2, 4, 4, 0) != DLK_EINVAL)
		return fail("ldc < N accepted");
	if (dlk_gemm_nt(c, 4, a, 3, a, 4, NULL, 2, 4, 4, 0) != DLK_EINVAL)
		return fail("lda < K accepted");
	if (dlk_gemm_tn(c, 4, a, 1, a, 4, 2, 4, 4, 0) != DLK_EINVAL)
		return fail("TN lda < M accepted");
	if (dlk_gemm_nn(c, 4, a, 4, a, 3, 2, 4, 4, 0) != DLK_EINVAL)
		return fail("NN ldb < N accepted");
	if (dlk_gemm_nt(c, 4, a, 4, a, 4, a, 2, 4, 4, DLK_GEMM_ADD) != DLK_EINVAL)
		return fail("bias with ADD accepted");
	if (dlk_gemm_nn(c, 4, a, 4, a, 4, -1, 4, 4, 0) != DLK_EINVAL)
		return fail("M < 0 accepted");
	if (dlk_gemm_nn(c, 4, a, 4, a, 4, 2, 4, 4, 8) != DLK_EINVAL)
		return fail("unknown flag accepted");
	if (dlk_gemm_nn(NULL, 4, NULL, 4, NULL, 4, 0, 4, 4, 0) != DLK_OK)
		return fail("empty product refused");
	/* K = 0: C = bias, or 0, or left as it is with ADD */
	{
		float		bias[4] = {1, 2, 3, 4};

		c[0] = 9;
		if (dlk_gemm_nt(c, 4, NULL, 1, NULL, 1, bias, 2, 4, 0, 0) != DLK_OK ||
			c[5] != 2.0f)
			return fail("K = 0 with a bias");
		c[0] = 9;
		if (dlk_gemm_nn(c, 4, NULL, 1, NULL, 4, 2, 4, 0, DLK_GEMM_ADD) != DLK_OK ||
			c[0] != 9.0f)
			return fail("K = 0 with ADD");
		if (dlk_gemm_tn(c, 4, NULL, 2, NULL, 4, 2, 4, 0, 0) != DLK_OK || c[0] != 0.0f)
			return fail("K = 0");
	}
	if (dlk_gemm_set_isa(7) != DLK_EINVAL)
		return fail("bad ISA accepted");
	return 1;
}

/* abort: a callback that says stop after n polls */
static int	polls_left;
static int	polls_seen;

static int
stop_after(void *arg)
{
	(void) arg;
	polls_seen++;
	return --polls_left < 0;
}

static int
test_abort(void)
{
	int			M = 128,
				N = 640,
				K = 784;
	float	   *A = rand_buf((size_t) M * K, 1.0f);
	float	   *W = rand_buf((size_t) N * K, 1.0f);
	float	   *C1 = malloc((size_t) M * N * sizeof(float));
	float	   *C2 = malloc((size_t) M * N * sizeof(float));
	int			ok = 1,
				bm,
				bn;
	dlk_status	st;

	dlk_gemm_nt(C1, N, A, K, W, K, NULL, M, N, K, 0);
	/* polls that say go on: counted, results unchanged */
	polls_left = 1 << 30;
	polls_seen = 0;
	dlk_set_abort(stop_after, NULL);
	st = dlk_gemm_nt(C2, N, A, K, W, K, NULL, M, N, K, 0);
	if (st != DLK_OK || polls_seen < 4)
		ok = fail("status %d, %d polls for 128 Mflop", (int) st, polls_seen);
	else if (!bits_equal(C1, C2, M, N, N, N, &bm, &bn))
		ok = fail("polling changed C[%d,%d]", bm, bn);
	for (int t = 1; t <= 2 && ok; t++)
	{
		dlk_pool_configure(t, t);
		/*
		 * on the pool, stop at the first poll: a helper may run every
		 * range before the caller, left waiting, polls a third time, or
		 * at all (on a busy machine): then nothing asked to stop
		 */
		polls_left = t == 1 ? 2 : 0;
		polls_seen = 0;
		st = dlk_gemm_nt(C2, N, A, K, W, K, NULL, M, N, K, DLK_GEMM_POOL);
		if (st != DLK_EABORT && (t == 1 || polls_seen > 0))
			ok = fail("%d threads: status %d after a stop", t, (int) st);
		polls_left = 0;
		st = dlk_gemm_tn(C2, N, A, M, W, N, M, N, K, 0);
		if (ok && st != DLK_EABORT)
			ok = fail("uncut TN: status %d after a stop", (int) st);
	}
	dlk_set_abort(NULL, NULL);
	dlk_pool_configure(1, 1);
	free(A);
	free(W);
	free(C1);
	free(C2);
	return ok;
}

int
main(void)
{
	dlk_rng_seed(&rng, 20250101);
	printf("note  gemm instruction set: %s\n", dlk_gemm_isa_name(dlk_gemm_isa()));
	run_test("gemm_args", test_args);
	run_test("gemm_exact_vs_reference", test_exact);
	run_test("gemm_subnormal", test_subnormal);
	run_test("gemm_vs_double", test_double);
	run_test("gemm_concat_offsets", test_concat);
	run_test("gemm_threads", test_threads);
	run_test("gemm_add_onto_zero", test_add_onto_zero);
	run_test("gemm_abort", test_abort);
	printf("gemm: %d passed, %d failed\n", n_passed, n_failed);
	return n_failed > 0 ? 1 : 0;
}
