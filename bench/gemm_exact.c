/*
 * gemm_exact.c — the exact GEMMs (src/kernels/dlk_gemm.c) against OpenBLAS's
 * cblas_sgemm, single-threaded, for the products of model selection:
 *
 *   forward      NT  Y[B x O]  = X[B x I] W[O x I]^T     M=B  N=O  K=I
 *   weight grad  TN  gW[O x I] = dY[B x O]^T X[B x I]    M=O  N=I  K=B
 *   input grad   NN  dX[B x I] = dY[B x O] W[O x I]      M=B  N=I  K=O
 *
 * for a logistic model (O = 10), the hidden layers of the usual MLPs, and K
 * models fused (O = K * 10 or K * 128).  Prints GFLOP/s of ours (AVX-512 and
 * AVX2 paths) and OpenBLAS's, the ratio ours/OpenBLAS, then the time of
 * our kernel with subnormal operands with and without FTZ/DAZ in MXCSR.
 *
 *   bench/gemm_exact.sh [--lib libopenblas.so.0] [--seconds S] [--quick]
 *
 * Benchmarks are not tests: nothing here asserts.  Each figure is the
 * fastest of 5 runs of about S/5 seconds each (the machine may be shared: the fastest is the least disturbed) (default S = 0.5).
 */
#define _GNU_SOURCE
#include "../src/kernels/dlk.h"
#include "../src/kernels/dlk_gemm.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

enum
{
	RowMajor = 101, NoTrans = 111, Trans = 112
};
typedef void (*sgemm_fn) (int order, int ta, int tb, int m, int n, int k,
						  float alpha, const float *a, int lda,
						  const float *b, int ldb, float beta, float *c, int ldc);
static sgemm_fn sgemm;
static double seconds = 0.5;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct
{
	dlk_gemm_op op;
	int			M, N, K;
	float	   *A, *B, *C;
	int			lda, ldb, ldc;
	int			blas;			/* 1: OpenBLAS, 0: ours */
} prod;

static void
run1(const prod *p)
{
	if (p->blas)
		switch (p->op)
		{
			case DLK_GEMM_NT:
				sgemm(RowMajor, NoTrans, Trans, p->M, p->N, p->K, 1.0f, p->A, p->lda,
					  p->B, p->ldb, 0.0f, p->C, p->ldc);
				break;
			case DLK_GEMM_TN:
				sgemm(RowMajor, Trans, NoTrans, p->M, p->N, p->K, 1.0f, p->A, p->lda,
					  p->B, p->ldb, 0.0f, p->C, p->ldc);
				break;
			case DLK_GEMM_NN:
				sgemm(RowMajor, NoTrans, NoTrans, p->M, p->N, p->K, 1.0f, p->A, p->lda,
					  p->B, p->ldb, 0.0f, p->C, p->ldc);
				break;
		}
	else
		switch (p->op)
		{
			case DLK_GEMM_NT:
				dlk_gemm_nt(p->C, p->ldc, p->A, p->lda, p->B, p->ldb, NULL, p->M, p->N, p->K, 0);
				break;
			case DLK_GEMM_TN:
				dlk_gemm_tn(p->C, p->ldc, p->A, p->lda, p->B, p->ldb, p->M, p->N, p->K, 0);
				break;
			case DLK_GEMM_NN:
				dlk_gemm_nn(p->C, p->ldc, p->A, p->lda, p->B, p->ldb, p->M, p->N, p->K, 0);
				break;
		}
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* seconds per call, the fastest of 5 */
static double
time_prod(const prod *p)
{
	double		t[5];
	double		flops = 2.0 * p->M * p->N * p->K;
	long		reps = (long) (seconds / 5 / (flops / 20e9)) + 1;

	run1(p);
	for (int i = 0; i < 5; i++)
	{
		double		t0 = now();

		for (long r = 0; r < reps; r++)
			run1(p);
		t[i] = (now() - t0) / reps;
	}
	qsort(t, 5, sizeof(double), cmp_double);
	return t[0];
}

static float *
buf(size_t n, float scale)
{
	float	   *p = malloc(n * sizeof(float));

	for (size_t i = 0; i < n; i++)
		p[i] = scale * (float) ((rand() / (double) RAND_MAX) * 2.0 - 1.0);
	return p;
}

/* a product of a layer B x I -> O */
static prod
make(dlk_gemm_op op, int B, int I, int O, float scale_a)
{
	prod		p = {op, 0, 0, 0, NULL, NULL, NULL, 0, 0, 0, 0};

	switch (op)
	{
		case DLK_GEMM_NT:
			p.M = B, p.N = O, p.K = I;
			p.A = buf((size_t) B * I, scale_a), p.lda = I;
			p.B = buf((size_t) O * I, 1.0f), p.ldb = I;
			break;
		case DLK_GEMM_TN:
			p.M = O, p.N = I, p.K = B;
			p.A = buf((size_t) B * O, scale_a), p.lda = O;
			p.B = buf((size_t) B * I, 1.0f), p.ldb = I;
			break;
		case DLK_GEMM_NN:
			p.M = B, p.N = I, p.K = O;
			p.A = buf((size_t) B * O, scale_a), p.lda = O;
			p.B = buf((size_t) O * I, 1.0f), p.ldb = I;
			break;
	}
	p.ldc = p.N;
	p.C = buf((size_t) p.M * p.N, 0.0f);
	return p;
}

static void
drop(prod *p)
{
	free(p->A);
	free(p->B);
	free(p->C);
}

static const char *op_what[] = {"NT fwd ", "TN gW  ", "NN dX  "};

static void
row(dlk_gemm_op op, int B, int I, int O, const char *label)
{
	prod		p = make(op, B, I, O, 1.0f);
	double		flops = 2.0 * p.M * p.N * p.K;
	double		g512 = 0,
				g2,
				gb;

	if (dlk_gemm_set_isa(DLK_GEMM_ISA_AVX512) == DLK_OK)
		g512 = flops / time_prod(&p) / 1e9;
	dlk_gemm_set_isa(DLK_GEMM_ISA_AVX2);
	g2 = flops / time_prod(&p) / 1e9;
	dlk_gemm_set_isa(DLK_GEMM_ISA_AUTO);
	p.blas = 1;
	gb = flops / time_prod(&p) / 1e9;
	printf("| %s | %4d | %4d | %4d | %-18s | %6.1f | %6.1f | %6.1f | %5.2f |\n",
		   op_what[op], B, I, O, label, g512, g2, gb, (g512 > g2 ? g512 : g2) / gb);
	fflush(stdout);
	drop(&p);
}

/* the layer shapes */
static void
layer(int B, int I, int O, const char *label, int first)
{
	row(DLK_GEMM_NT, B, I, O, label);
	row(DLK_GEMM_TN, B, I, O, label);
	if (!first)
		row(DLK_GEMM_NN, B, I, O, label);
}

static void
subnormal(dlk_gemm_op op, int B, int I, int O)
{
#if defined(__x86_64__)
	prod		p = make(op, B, I, O, 1e-39f);	/* subnormal A; products subnormal */
	prod		q = make(op, B, I, O, 1.0f);
	unsigned	csr = _mm_getcsr();
	double		tn,
				ts,
				tf,
				tb,
				tbf;

	tn = time_prod(&q);
	ts = time_prod(&p);
	_mm_setcsr(csr | 0x8040);	/* FTZ | DAZ */
	tf = time_prod(&p);
	_mm_setcsr(csr);
	p.blas = 1;
	tb = time_prod(&p);
	_mm_setcsr(csr | 0x8040);
	tbf = time_prod(&p);
	_mm_setcsr(csr);
	printf("| %s | %4d | %4d | %4d | %8.1f | %8.1f | %8.1f | %8.1f | %8.1f |\n", op_what[op],
		   B, I, O, tn * 1e6, ts * 1e6, tf * 1e6, tb * 1e6, tbf * 1e6);
	drop(&p);
	drop(&q);
#else
	(void) op, (void) B, (void) I, (void) O;
#endif
}

int
main(int argc, char **argv)
{
	const char *lib = "libopenblas.so.0";
	int			quick = 0;
	void	   *h;
	void		(*set_threads) (int);

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--lib") == 0 && i + 1 < argc)
			lib = argv[++i];
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else
		{
			fprintf(stderr, "usage: gemm_exact [--lib LIB] [--seconds S] [--quick]\n");
			return 2;
		}
	}
	h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL || (sgemm = (sgemm_fn) dlsym(h, "cblas_sgemm")) == NULL)
	{
		fprintf(stderr, "gemm_exact: cannot load %s: %s\n", lib, dlerror());
		return 1;
	}
	set_threads = (void (*) (int)) dlsym(h, "openblas_set_num_threads");
	if (set_threads)
		set_threads(1);
	srand(1);
	/* warm up: the clock ramps up, pages are touched */
	{
		prod		w = make(DLK_GEMM_NT, 128, 784, 80, 1.0f);
		double		t0 = now();

		while (now() - t0 < 0.5)
		{
			run1(&w);
			w.blas = !w.blas;
		}
		drop(&w);
	}
	printf("exact GEMM (dlk_gemm, %s by default) vs %s, 1 thread, GFLOP/s\n\n",
		   dlk_gemm_isa_name(dlk_gemm_isa()), lib);
	printf("| product | B | I | O | model | ours avx512 | ours avx2 | OpenBLAS | best/OB |\n");
	printf("|---|---|---|---|---|---|---|---|---|\n");
	layer(128, 784, 10, "logistic", 1);
	layer(128, 64, 10, "logistic", 1);
	layer(128, 784, 80, "fused K=8 logistic", 1);
	layer(128, 64, 80, "fused K=8 logistic", 1);
	layer(128, 784, 640, "fused K=64 logistic", 1);
	layer(128, 64, 640, "fused K=64 logistic", 1);
	layer(128, 784, 256, "hidden", 1);
	layer(128, 256, 128, "hidden", 0);
	layer(128, 128, 10, "output", 0);
	layer(128, 64, 128, "hidden", 1);
	layer(128, 128, 64, "hidden", 0);
	layer(128, 64, 10, "output", 0);
	if (!quick)
	{
		layer(128, 784, 1024, "fused K=8 x128", 1);
		layer(100, 784, 80, "fused K=8, B=100", 1);
		layer(129, 784, 80, "fused K=8, B=129", 1);
		layer(7, 784, 80, "fused K=8, B=7", 1);
		layer(1, 784, 80, "fused K=8, B=1", 1);
	}
	printf("\nsubnormal operands (A scaled by 1e-39), microseconds per call\n\n");
	printf("| product | B | I | O | ours normal | ours subnormal | ours FTZ/DAZ | OpenBLAS subnormal | OpenBLAS FTZ/DAZ |\n");
	printf("|---|---|---|---|---|---|---|---|---|\n");
	subnormal(DLK_GEMM_NT, 128, 784, 80);
	subnormal(DLK_GEMM_TN, 128, 784, 80);
	subnormal(DLK_GEMM_NN, 128, 256, 128);
	return 0;
}
