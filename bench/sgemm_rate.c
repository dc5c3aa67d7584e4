/*
 * sgemm_rate.c — OpenBLAS's own sgemm rate for the GEMM shapes of one MLP
 * training step, for the benchmark (bench/bench.py).
 *
 *   sgemm_rate [--lib libopenblas.so.0] [--threads T] [--seconds S] B d0 d1 ... dL
 *
 * For a network d0-d1-...-dL at batch B, one training step runs, per layer
 * l (in = d[l], out = d[l+1]), the same row-major products as dltrain's
 * kernels (src/kernels/dlk.c), forward over the layers and then backward:
 *
 *   forward       Y[B x out]  = X[B x in] . W^T       (NoTrans, Trans)
 *   weight grad   dW[out x in] = dY^T . X             (Trans, NoTrans)
 *   input grad    dX[B x in]  = dY[B x out] . W       (NoTrans, NoTrans), every layer but the first
 *
 * FLOPs per step = B * (2*sum(in*out) + 2*sum(in*out) + 2*sum_{l>0}(in*out)).
 * The program runs whole steps (all those GEMMs in training order, with the
 * activation and gradient buffers chained as in training) for about S seconds
 * per trial, 5 trials, and prints the median step rate as one JSON object,
 * with each product's own rate (run alone, in a loop) for reference.
 *
 * OpenBLAS is opened with dlopen, the way dltrain opens it, so the same
 * library (and the same OPENBLAS_* environment) is measured.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { RowMajor = 101, NoTrans = 111, Trans = 112 };
typedef void (*sgemm_fn) (int order, int ta, int tb, int m, int n, int k,
						  float alpha, const float *a, int lda,
						  const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*set_threads_fn) (int n);
typedef char *(*corename_fn) (void);
typedef char *(*config_fn) (void);

#define MAX_LAYERS 16
#define MAX_GEMMS (3 * MAX_LAYERS)
#define TRIALS 5

typedef struct
{
	int			ta, tb, m, n, k, lda, ldb, ldc;
	float	   *a, *b, *c;
	const char *what;
	int			layer;
} gemm;

static sgemm_fn sgemm;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *
buffer(size_t n)
{
	float	   *p = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);

	if (!p)
	{
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++)
		p[i] = (float) ((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
	return p;
}

static void
run(const gemm *g)
{
	sgemm(RowMajor, g->ta, g->tb, g->m, g->n, g->k, 1.0f, g->a, g->lda,
		  g->b, g->ldb, 0.0f, g->c, g->ldc);
}

static int
cmp(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* median seconds per call of gemms[0..n) run in sequence */
static double
time_seq(const gemm *g, int n, double seconds)
{
	double		t[TRIALS];
	long		iters = 1;
	double		t0,
				el;

	/* warm up and calibrate */
	for (;;)
	{
		t0 = now();
		for (long it = 0; it < iters; it++)
			for (int i = 0; i < n; i++)
				run(&g[i]);
		el = now() - t0;
		if (el > 0.05)
			break;
		iters *= 2;
	}
	iters = (long) (iters * seconds / el) + 1;
	for (int r = 0; r < TRIALS; r++)
	{
		t0 = now();
		for (long it = 0; it < iters; it++)
			for (int i = 0; i < n; i++)
				run(&g[i]);
		t[r] = (now() - t0) / iters;
	}
	qsort(t, TRIALS, sizeof(double), cmp);
	return t[TRIALS / 2];
}

int
main(int argc, char **argv)
{
	const char *lib = "libopenblas.so.0";
	int			threads = 1;
	double		seconds = 0.4;
	int			B,
				nd = 0,
				d[MAX_LAYERS + 1],
				ng = 0;
	gemm		g[MAX_GEMMS];
	void	   *h;
	set_threads_fn set_threads;
	corename_fn corename;
	config_fn config;
	double		step_flops = 0,
				step_s;
	int			a = 1;

	for (; a < argc && strncmp(argv[a], "--", 2) == 0; a += 2)
	{
		if (a + 1 >= argc)
			break;
		if (strcmp(argv[a], "--lib") == 0)
			lib = argv[a + 1];
		else if (strcmp(argv[a], "--threads") == 0)
			threads = atoi(argv[a + 1]);
		else if (strcmp(argv[a], "--seconds") == 0)
			seconds = atof(argv[a + 1]);
		else
		{
			fprintf(stderr, "unknown option %s\n", argv[a]);
			return 2;
		}
	}
	if (argc - a < 3 || argc - a > MAX_LAYERS + 2)
	{
		fprintf(stderr, "usage: %s [--lib L] [--threads T] [--seconds S] B d0 d1 ... dL\n", argv[0]);
		return 2;
	}
	B = atoi(argv[a++]);
	for (; a < argc; a++)
		d[nd++] = atoi(argv[a]);

	h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h)
	{
		fprintf(stderr, "dlopen %s: %s\n", lib, dlerror());
		return 1;
	}
	*(void **) &sgemm = dlsym(h, "cblas_sgemm");
	*(void **) &set_threads = dlsym(h, "openblas_set_num_threads");
	*(void **) &corename = dlsym(h, "openblas_get_corename");
	*(void **) &config = dlsym(h, "openblas_get_config");
	if (!sgemm)
	{
		fprintf(stderr, "cblas_sgemm not found in %s\n", lib);
		return 1;
	}
	if (set_threads)
		set_threads(threads);

	/*
	 * The buffers flow as in training: A[l] is the input of layer l (A[0] the
	 * batch, A[l+1] its output), G[l] the gradient with respect to A[l].
	 * Forward runs layers 0..L-1, backward L-1..0 (weight grad, then input
	 * grad), so each product finds its operands where a training step would.
	 */
	{
		int			L = nd - 1;
		float	   *A[MAX_LAYERS + 1],
				   *G[MAX_LAYERS + 1],
				   *W[MAX_LAYERS],
				   *dW[MAX_LAYERS];

		for (int l = 0; l <= L; l++)
		{
			A[l] = buffer((size_t) B * d[l]);
			G[l] = buffer((size_t) B * d[l]);
		}
		for (int l = 0; l < L; l++)
		{
			W[l] = buffer((size_t) d[l + 1] * d[l]);
			dW[l] = buffer((size_t) d[l + 1] * d[l]);
			step_flops += 2.0 * B * d[l] * d[l + 1] * (l > 0 ? 3 : 2);
		}
		/* forward: A[l+1][B x out] = A[l][B x in] . W[l][out x in]^T */
		for (int l = 0; l < L; l++)
			g[ng++] = (gemm) {NoTrans, Trans, B, d[l + 1], d[l], d[l], d[l], d[l + 1],
				A[l], W[l], A[l + 1], "forward", l};
		for (int l = L - 1; l >= 0; l--)
		{
			/* weight grad: dW[l][out x in] = G[l+1][B x out]^T . A[l][B x in] */
			g[ng++] = (gemm) {Trans, NoTrans, d[l + 1], d[l], B, d[l + 1], d[l], d[l],
				G[l + 1], A[l], dW[l], "weight_grad", l};
			/* input grad: G[l][B x in] = G[l+1][B x out] . W[l][out x in] */
			if (l > 0)
				g[ng++] = (gemm) {NoTrans, NoTrans, B, d[l], d[l + 1], d[l + 1], d[l], d[l],
					G[l + 1], W[l], G[l], "input_grad", l};
		}
	}

	step_s = time_seq(g, ng, seconds);
	printf("{\"lib\": \"%s\", \"corename\": \"%s\", \"config\": \"%s\", \"threads\": %d, \"batch\": %d, "
		   "\"step_flops\": %.0f, \"step_seconds\": %.9g, \"gflops\": %.4f, \"shapes\": [",
		   lib, corename ? corename() : "?", config ? config() : "?", threads, B,
		   step_flops, step_s, step_flops / step_s / 1e9);
	for (int i = 0; i < ng; i++)
	{
		double		s = time_seq(&g[i], 1, seconds / 4);
		double		f = 2.0 * g[i].m * g[i].n * g[i].k;

		printf("%s{\"layer\": %d, \"gemm\": \"%s\", \"m\": %d, \"n\": %d, \"k\": %d, \"seconds\": %.9g, \"gflops\": %.4f}",
			   i ? ", " : "", g[i].layer, g[i].what, g[i].m, g[i].n, g[i].k, s, f / s / 1e9);
	}
	printf("]}\n");
	return 0;
}
