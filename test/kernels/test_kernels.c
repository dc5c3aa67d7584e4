/*
 * test_kernels.c — standalone tests of dltrain's kernel library (no
 * PostgreSQL).  Built and run by `make -C test/kernels check`.
 *
 * Dimension letters as in dlk.h: B batch rows, I/O a layer's inputs/outputs,
 * D network input width, C network output width.
 *
 * Gradient checks.  Every backward is compared with central finite
 * differences of an INDEPENDENT double-precision re-implementation of the
 * forward pass written here (dense layer, activations, softmax-CE, MSE, the
 * whole network), evaluated at the same (float) point the kernel saw.  In
 * double, eps = 1e-6 gives a reference accurate to ~1e-9 (truncation
 * ~eps^2, rounding ~1e-16/eps), so the only disagreement left is the float32
 * rounding of the kernel itself: about 1e-6 relative to the magnitude of the
 * terms summed.  We accept |analytic - reference| <= 1e-3 |reference| + 1e-5,
 * two orders of magnitude above float noise and far below any real error
 * (a wrong index, a missing factor, a transposed matrix all give O(1)
 * relative errors).  ReLU inputs are kept away from the kink, and the data
 * are seeded, so the tests are deterministic.
 *
 * Output: one line per test, then "kernels: N passed, N failed[, N skipped]";
 * the exit status is nonzero if any test failed.
 */
#include "../../src/kernels/dlk.h"
#include "../../src/kernels/dlk_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

static int	n_passed = 0;
static int	n_failed = 0;
static int	n_skipped = 0;
static char msg[512];			/* failure detail of the current test */
static int	blas_ok = 0;

static int
fail(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return 0;
}

/* test functions return 1 pass, 0 fail (detail in msg), -1 skip (reason in msg) */
static void
run_test(const char *name, int (*fn) (void))
{
	int			r;

	msg[0] = '\0';
	r = fn();
	if (r > 0)
	{
		n_passed++;
		printf("ok    %s\n", name);
	}
	else if (r < 0)
	{
		n_skipped++;
		printf("skip  %s: %s\n", name, msg);
	}
	else
	{
		n_failed++;
		printf("FAIL  %s: %s\n", name, msg);
	}
	fflush(stdout);
}

/* ---- helpers ---- */

static dlk_rng test_rng;

static float
urand(float lo, float hi)
{
	return lo + (hi - lo) * (float) dlk_rng_uniform(&test_rng);
}

static void
fill(float *x, size_t n, float lo, float hi)
{
	size_t		k;

	for (k = 0; k < n; k++)
		x[k] = urand(lo, hi);
}

/* uniform in +-[0.1, 1): away from ReLU's kink at 0 */
static void
fill_away0(float *x, size_t n)
{
	size_t		k;

	for (k = 0; k < n; k++)
	{
		float		v = urand(0.1f, 1.0f);

		x[k] = dlk_rng_below(&test_rng, 2) ? v : -v;
	}
}

static int
grad_close(double analytic, double ref)
{
	return fabs(analytic - ref) <= 1e-3 * fabs(ref) + 1e-5;
}

static const double FD_EPS = 1e-6;

static double
act_d(double x, dlk_act act)
{
	switch (act)
	{
		case DLK_ACT_RELU:
			return x > 0 ? x : 0;
		case DLK_ACT_TANH:
			return tanh(x);
		case DLK_ACT_SIGMOID:
			return 1.0 / (1.0 + exp(-x));
		default:
			return x;
	}
}

static const char *
act_name(dlk_act a)
{
	static const char *names[] = {"relu", "tanh", "sigmoid", "identity"};

	return names[a];
}

/* softmax-CE of one batch in double: mean_r (logsumexp(z_r) - z_r[y_r]) */
static double
ce_d(const double *z, const int32_t *labels, int B, int C)
{
	double		total = 0;
	int			r,
				c;

	for (r = 0; r < B; r++)
	{
		const double *zr = z + (size_t) r * C;
		double		m = zr[0],
					s = 0;

		for (c = 1; c < C; c++)
			if (zr[c] > m)
				m = zr[c];
		for (c = 0; c < C; c++)
			s += exp(zr[c] - m);
		total += log(s) + m - zr[labels[r]];
	}
	return total / B;
}

static double
mse_d(const double *p, const float *t, int B, int C)
{
	double		total = 0;
	size_t		k,
				n = (size_t) B * C;

	for (k = 0; k < n; k++)
		total += (p[k] - t[k]) * (p[k] - t[k]);
	return total / (double) n;
}

/*
 * Whole-network loss in double.  params in dlk's layout
 * (W_0 [O x I], b_0 [O], W_1, ...).  Scratch: two buffers of B x maxwidth.
 */
#define NET_MAXW 64
static double
net_loss_d(const dlk_arch *a, const double *params, const float *X,
		   const int32_t *labels, const float *targets, int B)
{
	static double h0[64 * NET_MAXW],
				h1[64 * NET_MAXW];
	double	   *in = h0,
			   *out = h1;
	const double *p = params;
	int			L = a->n_layers;
	int			l,
				r,
				o,
				i;

	for (r = 0; r < B; r++)
		for (i = 0; i < a->dims[0]; i++)
			in[(size_t) r * a->dims[0] + i] = X[(size_t) r * a->dims[0] + i];
	for (l = 0; l < L; l++)
	{
		int			I = a->dims[l],
					O = a->dims[l + 1];
		const double *W = p,
				   *b = p + (size_t) O * I;
		double	   *tmp;

		for (r = 0; r < B; r++)
			for (o = 0; o < O; o++)
			{
				double		s = b[o];

				for (i = 0; i < I; i++)
					s += in[(size_t) r * I + i] * W[(size_t) o * I + i];
				out[(size_t) r * O + o] = l < L - 1 ? act_d(s, a->act) : s;
			}
		p += (size_t) O * (I + 1);
		tmp = in;
		in = out;
		out = tmp;
	}
	if (a->loss == DLK_LOSS_SOFTMAX_CE)
		return ce_d(in, labels, B, a->dims[L]);
	return mse_d(in, targets, B, a->dims[L]);
}

/* ---- architecture, sizes, bind ---- */

static int
test_arch_check(void)
{
	dlk_arch	a = {3, {4, 5, 6, 2}, DLK_ACT_RELU, DLK_LOSS_SOFTMAX_CE};
	dlk_arch	bad;

	if (dlk_arch_check(&a) != DLK_OK)
		return fail("valid arch rejected");
	if (dlk_arch_check(NULL) != DLK_EINVAL)
		return fail("NULL accepted");
	bad = a;
	bad.n_layers = 0;
	if (dlk_arch_check(&bad) != DLK_EINVAL)
		return fail("n_layers 0 accepted");
	bad = a;
	bad.n_layers = DLK_MAX_LAYERS + 1;
	if (dlk_arch_check(&bad) != DLK_EINVAL)
		return fail("n_layers 17 accepted");
	bad = a;
	bad.dims[2] = 0;
	if (dlk_arch_check(&bad) != DLK_EINVAL)
		return fail("width 0 accepted");
	bad = a;
	bad.dims[0] = -3;
	if (dlk_arch_check(&bad) != DLK_EINVAL)
		return fail("negative width accepted");
	bad = a;
	bad.dims[3] = DLK_MAX_WIDTH + 1;
	if (dlk_arch_check(&bad) != DLK_EINVAL)
		return fail("width > max accepted");
	bad = a;
	bad.act = (dlk_act) 7;
	if (dlk_arch_check(&bad) != DLK_EINVAL)
		return fail("bad act accepted");
	bad = a;
	bad.act = (dlk_act) -1;
	if (dlk_arch_check(&bad) != DLK_EINVAL)
		return fail("act -1 accepted");
	bad = a;
	bad.loss = (dlk_loss) 2;
	if (dlk_arch_check(&bad) != DLK_EINVAL)
		return fail("bad loss accepted");
	bad = a;
	bad.dims[3] = 1;
	if (dlk_arch_check(&bad) != DLK_EINVAL)
		return fail("softmax over 1 class accepted");
	bad.loss = DLK_LOSS_MSE;
	if (dlk_arch_check(&bad) != DLK_OK)
		return fail("MSE with 1 output rejected");
	bad = a;
	bad.n_layers = DLK_MAX_LAYERS;
	{
		int			l;

		for (l = 0; l <= DLK_MAX_LAYERS; l++)
			bad.dims[l] = l == 0 ? DLK_MAX_WIDTH : 3;
	}
	if (dlk_arch_check(&bad) != DLK_OK)
		return fail("16 layers, max width input rejected");
	return 1;
}

static int
test_sizes_bind(void)
{
	dlk_arch	a = {3, {4, 5, 6, 2}, DLK_ACT_RELU, DLK_LOSS_SOFTMAX_CE};
	dlk_sizes	s;
	dlk_net		net;
	float		params[75],
				grads[75],
				opt[150],
				work[250];
	int			k;

	if (dlk_sizes_for(&s, &a, 10, DLK_OPT_SGD) != DLK_OK)
		return fail("sizes_for failed");
	/* 5*4+5 + 6*5+6 + 2*6+2 = 75; work 10*(5+6+2) + 2*10*6 = 250 */
	if (s.n_params != 75 || s.n_opt_state != 75 || s.n_work != 250)
		return fail("sgd sizes %zu %zu %zu", s.n_params, s.n_opt_state, s.n_work);
	if (dlk_sizes_for(&s, &a, 10, DLK_OPT_ADAMW) != DLK_OK || s.n_opt_state != 150)
		return fail("adamw opt state size");
	if (dlk_sizes_for(&s, &a, 0, DLK_OPT_SGD) != DLK_EINVAL)
		return fail("max_batch 0 accepted");
	if (dlk_sizes_for(&s, &a, 10, (dlk_opt_kind) 9) != DLK_EINVAL)
		return fail("bad optimizer accepted");

	for (k = 0; k < 75; k++)
	{
		params[k] = 1.5f;
		grads[k] = 7.0f;
	}
	for (k = 0; k < 150; k++)
		opt[k] = 3.0f;
	if (dlk_net_bind(&net, &a, 10, 0, params, grads, opt, work) != DLK_OK)
		return fail("bind failed");
	if (net.W[0] != params || net.b[0] != params + 20 ||
		net.W[1] != params + 25 || net.b[1] != params + 55 ||
		net.W[2] != params + 61 || net.b[2] != params + 73 ||
		net.gW[1] != grads + 25 || net.gb[2] != grads + 73)
		return fail("parameter pointers wrong");
	if (net.act[0] != work || net.act[1] != work + 50 || net.act[2] != work + 110 ||
		net.dbuf[0] != work + 130 || net.dbuf[1] != work + 190)
		return fail("work pointers wrong");
	if (net.n_params != 75 || net.step != 0 || net.max_batch != 10)
		return fail("net fields wrong");
	for (k = 0; k < 75; k++)
		if (grads[k] != 0.0f || opt[k] != 0.0f || params[k] != 1.5f)
			return fail("bind did not zero grads/opt or touched params at %d", k);
	if (dlk_net_bind(&net, &a, 10, 0, params, NULL, NULL, work) != DLK_OK)
		return fail("inference-only bind failed");
	if (dlk_net_bind(&net, &a, 10, 0, params, grads, opt, NULL) != DLK_EINVAL)
		return fail("NULL work accepted");
	return 1;
}

/* ---- PRNG ---- */

static int
test_rng_known(void)
{
	/* xoshiro256** seeded by splitmix64, from an independent implementation */
	static const uint64_t want0[4] = {
		UINT64_C(0x99ec5f36cb75f2b4), UINT64_C(0xbf6e1f784956452a),
		UINT64_C(0x1a5f849d4933e6e0), UINT64_C(0x6aa594f1262d2d2c)};
	static const uint64_t want1[4] = {
		UINT64_C(0xbe6a36374160d49b), UINT64_C(0x214aaa0637a688c6),
		UINT64_C(0xf69d16de9954d388), UINT64_C(0x0c60048c4e96e033)};
	dlk_rng		r;
	int			k;

	dlk_rng_seed(&r, 0);
	for (k = 0; k < 4; k++)
		if (dlk_rng_next(&r) != want0[k])
			return fail("seed 0 output %d differs", k);
	dlk_rng_seed(&r, 12345);
	for (k = 0; k < 4; k++)
		if (dlk_rng_next(&r) != want1[k])
			return fail("seed 12345 output %d differs", k);
	return 1;
}

static int
test_rng_repeat(void)
{
	dlk_rng		a,
				b,
				c;
	int			k,
				diff = 0;

	dlk_rng_seed(&a, 42);
	dlk_rng_seed(&b, 42);
	dlk_rng_seed(&c, 43);
	for (k = 0; k < 1000; k++)
	{
		uint64_t	x = dlk_rng_next(&a);

		if (x != dlk_rng_next(&b))
			return fail("same seed diverged at %d", k);
		diff += x != dlk_rng_next(&c);
	}
	if (diff < 990)
		return fail("different seeds agree too often (%d differ)", diff);
	for (k = 0; k < 100000; k++)
	{
		double		u = dlk_rng_uniform(&a);

		if (!(u >= 0.0 && u < 1.0))
			return fail("uniform out of [0,1): %g", u);
	}
	return 1;
}

static int
test_rng_below(void)
{
	dlk_rng		r;
	int			counts[7] = {0};
	int			k;
	uint64_t	big = (UINT64_C(1) << 63) + 1;

	dlk_rng_seed(&r, 7);
	for (k = 0; k < 100; k++)
		if (dlk_rng_below(&r, 1) != 0)
			return fail("below(1) != 0");
	for (k = 0; k < 70000; k++)
	{
		uint64_t	x = dlk_rng_below(&r, 7);

		if (x >= 7)
			return fail("below(7) gave %llu", (unsigned long long) x);
		counts[x]++;
	}
	for (k = 0; k < 7; k++)		/* expected 10000, sd ~93: 5 sd */
		if (counts[k] < 9500 || counts[k] > 10500)
			return fail("below(7) value %d drawn %d times of 70000", k, counts[k]);
	{
		/*
		 * n = 3 * 2^62: 2^64 mod n = 2^62, so a plain r % n would draw
		 * [0, 2^62) with probability 1/2 instead of 1/3.
		 */
		uint64_t	n3 = UINT64_C(3) << 62;
		int			low = 0;

		for (k = 0; k < 30000; k++)
		{
			uint64_t	x = dlk_rng_below(&r, n3);

			if (x >= n3)
				return fail("below(3*2^62) out of range");
			low += x < (UINT64_C(1) << 62);
		}
		/* expected 10000, sd ~82; biased 15000 */
		if (low < 9500 || low > 10500)
			return fail("below(3*2^62) biased: %d of 30000 below 2^62", low);
	}
	for (k = 0; k < 1000; k++)
		if (dlk_rng_below(&r, big) >= big)
			return fail("below(2^63+1) out of range");
	return 1;
}

static int
test_shuffle(void)
{
	enum
	{
		N = 1000
	};
	uint32_t	a[N],
				b[N];
	unsigned char seen[N];
	dlk_rng		r1,
				r2;
	int			k,
				moved = 0;

	for (k = 0; k < N; k++)
		a[k] = b[k] = (uint32_t) k;
	dlk_rng_seed(&r1, 99);
	dlk_rng_seed(&r2, 99);
	dlk_shuffle_u32(&r1, a, N);
	dlk_shuffle_u32(&r2, b, N);
	if (memcmp(a, b, sizeof(a)) != 0)
		return fail("same seed, different shuffles");
	memset(seen, 0, sizeof(seen));
	for (k = 0; k < N; k++)
	{
		if (a[k] >= N || seen[a[k]])
			return fail("not a permutation at %d", k);
		seen[a[k]] = 1;
		moved += a[k] != (uint32_t) k;
	}
	if (moved < N / 2)
		return fail("shuffle left %d of %d in place", N - moved, N);
	/* all 6 orders of 3 elements equally likely (60000 shuffles, sd ~91) */
	{
		int			cnt[27] = {0};

		for (k = 0; k < 60000; k++)
		{
			uint32_t	t[3] = {0, 1, 2};

			dlk_shuffle_u32(&r1, t, 3);
			cnt[t[0] * 9 + t[1] * 3 + t[2]]++;
		}
		for (k = 0; k < 27; k++)
		{
			int			a0 = k / 9,
						a1 = (k / 3) % 3,
						a2 = k % 3;
			int			perm = a0 != a1 && a1 != a2 && a0 != a2;

			if (perm ? (cnt[k] < 9500 || cnt[k] > 10500) : cnt[k] != 0)
				return fail("order %d%d%d drawn %d times of 60000", a0, a1, a2, cnt[k]);
		}
	}
	/* n = 0 and 1 are no-ops */
	dlk_shuffle_u32(&r1, a, 0);
	b[0] = 5;
	dlk_shuffle_u32(&r1, b, 1);
	if (b[0] != 5)
		return fail("shuffle of 1 element changed it");
	return 1;
}

static int
test_init(void)
{
	dlk_arch	a = {3, {20, 30, 10, 4}, DLK_ACT_RELU, DLK_LOSS_SOFTMAX_CE};
	dlk_sizes	s;
	static float p1[2000],
				p2[2000],
				work[2000];
	dlk_net		n1,
				n2;
	int			l;
	size_t		k;

	dlk_sizes_for(&s, &a, 1, DLK_OPT_SGD);
	if (s.n_params > 2000 || s.n_work > 2000)
		return fail("test buffers too small");
	for (l = 0; l < 2; l++)
	{
		a.act = l == 0 ? DLK_ACT_RELU : DLK_ACT_TANH;
		if (dlk_net_bind(&n1, &a, 1, 0, p1, NULL, NULL, work) != DLK_OK ||
			dlk_net_bind(&n2, &a, 1, 0, p2, NULL, NULL, work) != DLK_OK)
			return fail("bind");
		memset(p1, 0xff, sizeof(p1));
		dlk_init_params(&n1, 5);
		dlk_init_params(&n2, 5);
		if (memcmp(p1, p2, s.n_params * sizeof(float)) != 0)
			return fail("same seed, different init");
		for (k = 0; k < (size_t) a.n_layers; k++)
		{
			int			I = a.dims[k],
						O = a.dims[k + 1];
			double		bound = (a.act == DLK_ACT_RELU && k < 2) ?
				sqrt(6.0 / I) : sqrt(6.0 / (I + O));
			double		mx = 0,
						mean = 0;
			size_t		j;

			for (j = 0; j < (size_t) O * I; j++)
			{
				double		w = n1.W[k][j];

				if (fabs(w) > bound)
					return fail("%s layer %zu weight %g beyond bound %g",
								act_name(a.act), k, w, bound);
				if (fabs(w) > mx)
					mx = fabs(w);
				mean += w;
			}
			mean /= (double) O * I;
			if (mx < 0.9 * bound)
				return fail("%s layer %zu max |w| %g far below bound %g (wrong scheme?)",
							act_name(a.act), k, mx, bound);
			if (fabs(mean) > 0.2 * bound)
				return fail("layer %zu mean %g not near 0", k, mean);
			for (j = 0; j < (size_t) O; j++)
				if (n1.b[k][j] != 0.0f)
					return fail("bias not zero");
		}
		dlk_init_params(&n2, 6);
		if (memcmp(p1, p2, s.n_params * sizeof(float)) == 0)
			return fail("different seeds, same init");
	}
	return 1;
}

/* ---- dense layer ---- */

/*
 * L = sum dY .* Y, Y = X W^T + b, in double; dL/dW = dY^T X etc.  Checked
 * against every entry of gW, gb, dX.  Outputs pre-filled with NaN to check
 * that they are overwritten, not accumulated.
 */
static double
dense_L_d(const double *X, const double *W, const double *b, const float *G,
		  int B, int I, int O)
{
	double		L = 0;
	int			r,
				o,
				i;

	for (r = 0; r < B; r++)
		for (o = 0; o < O; o++)
		{
			double		s = b[o];

			for (i = 0; i < I; i++)
				s += X[r * I + i] * W[o * I + i];
			L += G[r * O + o] * s;
		}
	return L;
}

static int
dense_fd(int use_blas)
{
	enum
	{
		B = 3, I = 4, O = 5
	};
	float		X[B * I],
				W[O * I],
				b[O],
				G[B * O],
				Y[B * O],
				gW[O * I],
				gb[O],
				dX[B * I];
	double		Xd[B * I],
				Wd[O * I],
				bd[O];
	int			k,
				r,
				o;

	fill(X, B * I, -1, 1);
	fill(W, O * I, -1, 1);
	fill(b, O, -1, 1);
	fill(G, B * O, -1, 1);
	for (k = 0; k < B * I; k++)
		Xd[k] = X[k];
	for (k = 0; k < O * I; k++)
		Wd[k] = W[k];
	for (k = 0; k < O; k++)
		bd[k] = b[k];
	for (k = 0; k < B * O; k++)
		Y[k] = NAN;
	for (k = 0; k < O * I; k++)
		gW[k] = NAN;
	for (k = 0; k < O; k++)
		gb[k] = NAN;
	for (k = 0; k < B * I; k++)
		dX[k] = NAN;

	if (dlk_dense_forward(Y, X, W, b, B, I, O, use_blas) != DLK_OK)
		return fail("forward status");
	for (r = 0; r < B; r++)
		for (o = 0; o < O; o++)
		{
			double		s = bd[o];
			int			i;

			for (i = 0; i < I; i++)
				s += Xd[r * I + i] * Wd[o * I + i];
			if (!(fabs(Y[r * O + o] - s) <= 1e-5 * (1 + fabs(s))))
				return fail("Y[%d,%d] = %g, want %g", r, o, Y[r * O + o], s);
		}
	if (dlk_dense_backward(dX, gW, gb, G, X, W, B, I, O, use_blas) != DLK_OK)
		return fail("backward status");

#define FD(arr, idx, out, what) \
	do { \
		double save = arr[idx], lp, lm, ref; \
		arr[idx] = save + FD_EPS; \
		lp = dense_L_d(Xd, Wd, bd, G, B, I, O); \
		arr[idx] = save - FD_EPS; \
		lm = dense_L_d(Xd, Wd, bd, G, B, I, O); \
		arr[idx] = save; \
		ref = (lp - lm) / (2 * FD_EPS); \
		if (!grad_close(out[idx], ref)) \
			return fail("%s[%d] = %.8g, finite difference %.8g", what, idx, \
						(double) out[idx], ref); \
	} while (0)

	for (k = 0; k < O * I; k++)
		FD(Wd, k, gW, "gW");
	for (k = 0; k < O; k++)
		FD(bd, k, gb, "gb");
	for (k = 0; k < B * I; k++)
		FD(Xd, k, dX, "dX");
#undef FD

	/* dX = NULL: weight gradients only */
	for (k = 0; k < O * I; k++)
		gW[k] = NAN;
	if (dlk_dense_backward(NULL, gW, gb, G, X, W, B, I, O, use_blas) != DLK_OK)
		return fail("backward with dX NULL status");
	for (k = 0; k < O * I; k++)
		if (!isfinite(gW[k]))
			return fail("gW not written with dX NULL");
	if (dlk_dense_forward(Y, X, W, b, 0, I, O, use_blas) != DLK_EINVAL)
		return fail("B = 0 accepted");
	return 1;
}

static int
test_dense_fd_ref(void)
{
	return dense_fd(0);
}

static int
test_dense_fd_blas(void)
{
	return dense_fd(1);
}

static int
test_dense_blas_vs_ref(void)
{
	static const int shapes[][3] = {
		{7, 13, 5}, {128, 64, 128}, {1, 1, 1}, {33, 17, 65}, {5, 300, 3}
	};
	static float X[128 * 300],
				W[300 * 128],
				b[128],
				dY[128 * 128],
				Y1[128 * 128],
				Y2[128 * 128],
				gW1[300 * 128],
				gW2[300 * 128],
				gb1[128],
				gb2[128],
				dX1[128 * 300],
				dX2[128 * 300];
	size_t		s;

	for (s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
	{
		int			B = shapes[s][0],
					I = shapes[s][1],
					O = shapes[s][2];
		int			k;

		fill(X, (size_t) B * I, -1, 1);
		fill(W, (size_t) O * I, -1, 1);
		fill(b, O, -1, 1);
		fill(dY, (size_t) B * O, -1, 1);
		if (dlk_dense_forward(Y1, X, W, b, B, I, O, 0) != DLK_OK ||
			dlk_dense_forward(Y2, X, W, b, B, I, O, 1) != DLK_OK)
			return fail("forward status");
		for (k = 0; k < B * O; k++)
			if (!(fabsf(Y1[k] - Y2[k]) <= 1e-5f * I))
				return fail("%dx%dx%d: Y[%d] ref %g blas %g", B, I, O, k, Y1[k], Y2[k]);
		for (k = 0; k < B * I; k++)
			dX2[k] = NAN;
		for (k = 0; k < O * I; k++)
			gW2[k] = NAN;
		if (dlk_dense_backward(dX1, gW1, gb1, dY, X, W, B, I, O, 0) != DLK_OK ||
			dlk_dense_backward(dX2, gW2, gb2, dY, X, W, B, I, O, 1) != DLK_OK)
			return fail("backward status");
		for (k = 0; k < O * I; k++)
			if (!(fabsf(gW1[k] - gW2[k]) <= 1e-5f * B))
				return fail("%dx%dx%d: gW[%d] ref %g blas %g", B, I, O, k, gW1[k], gW2[k]);
		for (k = 0; k < O; k++)
			if (!(fabsf(gb1[k] - gb2[k]) <= 1e-5f * B))
				return fail("%dx%dx%d: gb[%d]", B, I, O, k);
		for (k = 0; k < B * I; k++)
			if (!(fabsf(dX1[k] - dX2[k]) <= 1e-5f * O))
				return fail("%dx%dx%d: dX[%d] ref %g blas %g", B, I, O, k, dX1[k], dX2[k]);
	}
	return 1;
}

/* ---- activations ---- */

static int
test_act_fd(void)
{
	enum
	{
		N = 40
	};
	float		x[N],
				y[N],
				g[N],
				dx[N],
				tmp[N];
	int			a,
				k;

	for (a = DLK_ACT_RELU; a <= DLK_ACT_IDENTITY; a++)
	{
		fill_away0(x, N);
		x[0] = 30.0f;			/* saturated regions */
		x[1] = -30.0f;
		x[2] = -200.0f;			/* sigmoid: exp overflows, must give 0 */
		fill(g, N, -1, 1);
		dlk_act_forward(y, x, N, (dlk_act) a);
		for (k = 0; k < N; k++)
		{
			double		want = act_d(x[k], (dlk_act) a);

			if (!(fabs(y[k] - want) <= 1e-6 * (1 + fabs(want))))
				return fail("%s forward(%g) = %g, want %g", act_name(a), x[k], y[k], want);
		}
		dlk_act_backward(dx, g, y, N, (dlk_act) a);
		for (k = 0; k < N; k++)
		{
			double		ref = g[k] * (act_d((double) x[k] + FD_EPS, (dlk_act) a) -
									  act_d((double) x[k] - FD_EPS, (dlk_act) a)) / (2 * FD_EPS);

			if (!grad_close(dx[k], ref))
				return fail("%s backward at x=%g: %.8g, finite difference %.8g",
							act_name(a), x[k], dx[k], ref);
		}
		/* in place: Y == X forward, dX == dY backward */
		memcpy(tmp, x, sizeof(x));
		dlk_act_forward(tmp, tmp, N, (dlk_act) a);
		if (memcmp(tmp, y, sizeof(y)) != 0)
			return fail("%s in-place forward differs", act_name(a));
		memcpy(tmp, g, sizeof(g));
		dlk_act_backward(tmp, tmp, y, N, (dlk_act) a);
		if (memcmp(tmp, dx, sizeof(dx)) != 0)
			return fail("%s in-place backward differs", act_name(a));
	}
	return 1;
}

/* ---- losses ---- */

static int
test_softmax_ce_fd(void)
{
	enum
	{
		B = 4, C = 5
	};
	float		z[B * C],
				d[B * C];
	double		zd[B * C],
				loss,
				loss2;
	int32_t		y[B] = {0, 4, 2, 2};
	int			k;

	fill(z, B * C, -3, 3);
	for (k = 0; k < B * C; k++)
		zd[k] = z[k];
	if (dlk_softmax_ce(&loss, d, z, y, B, C) != DLK_OK)
		return fail("status");
	if (!(fabs(loss - ce_d(zd, y, B, C)) <= 1e-6 * (1 + loss)))
		return fail("loss %.9g, want %.9g", loss, ce_d(zd, y, B, C));
	for (k = 0; k < B * C; k++)
	{
		double		s = zd[k],
					lp,
					lm,
					ref;

		zd[k] = s + FD_EPS;
		lp = ce_d(zd, y, B, C);
		zd[k] = s - FD_EPS;
		lm = ce_d(zd, y, B, C);
		zd[k] = s;
		ref = (lp - lm) / (2 * FD_EPS);
		if (!grad_close(d[k], ref))
			return fail("dlogits[%d] = %.8g, finite difference %.8g", k, d[k], ref);
	}
	if (dlk_softmax_ce(&loss2, NULL, z, y, B, C) != DLK_OK || loss2 != loss)
		return fail("loss-only call differs");

	/* stability: huge logits */
	{
		float		zz[4] = {1000.0f, 0.0f, -1000.0f, 1000.0f};
		int32_t		yy[2] = {1, 0};
		float		dd[4];

		/* row 0: logsumexp(1000, 0) - 0 = 1000; row 1: 1000 - (-1000) = 2000 */
		if (dlk_softmax_ce(&loss, dd, zz, yy, 2, 2) != DLK_OK)
			return fail("status on large logits");
		if (!(fabs(loss - 1500.0) < 1e-3))
			return fail("large-logit loss %g, want 1500", loss);
		for (k = 0; k < 4; k++)
			if (!isfinite(dd[k]))
				return fail("non-finite gradient on large logits");
	}
	return 1;
}

static int
test_softmax_ce_labels(void)
{
	float		z[6] = {0, 1, 2, 3, 4, 5};
	float		d[6];
	double		loss;
	int32_t		neg[2] = {0, -1},
				high[2] = {3, 1},
				ok[2] = {2, 0};

	if (dlk_softmax_ce(&loss, d, z, neg, 2, 3) != DLK_EINVAL)
		return fail("label -1 accepted");
	if (dlk_softmax_ce(&loss, d, z, high, 2, 3) != DLK_EINVAL)
		return fail("label C accepted");
	if (dlk_softmax_ce(&loss, d, z, ok, 2, 3) != DLK_OK)
		return fail("valid labels rejected");
	return 1;
}

static int
test_mse_fd(void)
{
	enum
	{
		B = 3, C = 4
	};
	float		p[B * C],
				t[B * C],
				d[B * C];
	double		pd[B * C],
				loss;
	int			k;

	fill(p, B * C, -2, 2);
	fill(t, B * C, -2, 2);
	for (k = 0; k < B * C; k++)
		pd[k] = p[k];
	dlk_mse(&loss, d, p, t, B, C);
	if (!(fabs(loss - mse_d(pd, t, B, C)) <= 1e-6 * (1 + loss)))
		return fail("loss %.9g, want %.9g", loss, mse_d(pd, t, B, C));
	for (k = 0; k < B * C; k++)
	{
		double		s = pd[k],
					lp,
					lm,
					ref;

		pd[k] = s + FD_EPS;
		lp = mse_d(pd, t, B, C);
		pd[k] = s - FD_EPS;
		lm = mse_d(pd, t, B, C);
		pd[k] = s;
		ref = (lp - lm) / (2 * FD_EPS);
		if (!grad_close(d[k], ref))
			return fail("dpred[%d] = %.8g, finite difference %.8g", k, d[k], ref);
	}
	return 1;
}

static int
test_softmax_rows(void)
{
	float		z[6] = {1, 2, 3, 1000, 1000, -1000};
	float		p[6];
	int			r,
				c;

	dlk_softmax_rows(p, z, 2, 3);
	for (r = 0; r < 2; r++)
	{
		double		m = -INFINITY,
					s = 0;

		for (c = 0; c < 3; c++)
			m = fmax(m, z[r * 3 + c]);
		for (c = 0; c < 3; c++)
			s += exp(z[r * 3 + c] - m);
		for (c = 0; c < 3; c++)
		{
			double		want = exp(z[r * 3 + c] - m) / s;

			if (!(fabs(p[r * 3 + c] - want) <= 1e-6))
				return fail("P[%d,%d] = %g, want %g", r, c, p[r * 3 + c], want);
		}
	}
	dlk_softmax_rows(z, z, 2, 3);	/* in place */
	if (memcmp(z, p, sizeof(p)) != 0)
		return fail("in-place result differs");
	return 1;
}

/* ---- whole network gradient ---- */

/*
 * Frozen layers (dlk_net_freeze): with the first N layers frozen, the
 * gradients of layers N.. equal double-precision finite differences, those
 * of layers below N are exactly zero, and the same network fed the frozen
 * layers' outputs (start = N) gives the same loss and gradients, bit for
 * bit (reference and fast kernels, every activation).
 */
static int
test_frozen_grad(void)
{
	enum
	{
		B = 6, MAXP = 400, MAXWORK = 400
	};
	static float params[MAXP],
				grads[MAXP],
				grads2[MAXP],
				opt[2 * MAXP],
				work[MAXWORK],
				work2[MAXWORK];
	static double pd[MAXP];
	float		X[B * 5],
				F[B * 7];
	int32_t		y[B];

	for (int a = DLK_ACT_RELU; a <= DLK_ACT_IDENTITY; a++)
		for (int N = 1; N <= 2; N++)
			for (int path = 0; path <= 1; path++)
			{
				dlk_arch	arch = {3, {5, 7, 6, 3}, (dlk_act) a, DLK_LOSS_SOFTMAX_CE};
				dlk_sizes	sz;
				dlk_net		net,
							head;
				double		loss,
							loss2;
				const float *f;

				dlk_sizes_for(&sz, &arch, B, DLK_OPT_ADAM);
				if (dlk_net_bind(&net, &arch, B, path, params, grads, opt, work) != DLK_OK ||
					dlk_net_freeze(&net, N, 0) != DLK_OK)
					return fail("bind/freeze");
				dlk_init_params(&net, 2000 + a);
				dlk_rng_seed(&test_rng, 91 + a * 2 + N);
				for (int t = 0; t < arch.n_layers; t++)
					fill(net.b[t], arch.dims[t + 1], -0.3f, 0.3f);
				fill(X, B * 5, -1, 1);
				for (int t = 0; t < B; t++)
					y[t] = (int32_t) dlk_rng_below(&test_rng, 3);
				for (size_t k = 0; k < sz.n_params; k++)
					pd[k] = params[k];
				if (dlk_loss_grad(&net, X, y, NULL, B, &loss) != DLK_OK)
					return fail("loss_grad");
				for (size_t k = 0; k < net.frozen_off; k++)
					if (grads[k] != 0.0f)
						return fail("N=%d: frozen grad[%zu] = %g", N, k, grads[k]);
				for (size_t j = net.frozen_off; j < sz.n_params; j++)
				{
					double		s = pd[j],
								lp,
								lm,
								ref;

					pd[j] = s + FD_EPS;
					lp = net_loss_d(&arch, pd, X, y, NULL, B);
					pd[j] = s - FD_EPS;
					lm = net_loss_d(&arch, pd, X, y, NULL, B);
					pd[j] = s;
					ref = (lp - lm) / (2 * FD_EPS);
					if (!grad_close(grads[j], ref))
						return fail("%s N=%d blas=%d: grad[%zu] = %.8g, finite difference %.8g",
									act_name(a), N, path, j, grads[j], ref);
				}
				/* the frozen outputs as the input: the same bits */
				f = dlk_forward_to(&net, X, B, N);
				if (f == NULL)
					return fail("forward_to");
				memcpy(F, f, sizeof(float) * B * arch.dims[N]);
				if (dlk_net_bind(&head, &arch, B, path, params, grads2, NULL, work2) != DLK_OK ||
					dlk_net_freeze(&head, N, N) != DLK_OK)
					return fail("bind head");
				if (dlk_loss_grad(&head, F, y, NULL, B, &loss2) != DLK_OK)
					return fail("head loss_grad");
				if (loss2 != loss || memcmp(grads, grads2, sizeof(float) * sz.n_params) != 0)
					return fail("%s N=%d blas=%d: from the features differs", act_name(a), N, path);
				if (dlk_net_freeze(&net, 3, 0) != DLK_EINVAL || dlk_net_freeze(&net, 1, 2) != DLK_EINVAL)
					return fail("bad freeze accepted");
			}
	return 1;
}

/*
 * For each activation and loss: dlk_loss_grad's gradient on 60 random
 * parameters (and every bias of the first and last layer) against central
 * differences of net_loss_d.  Run on the reference path and, when BLAS is
 * there, on the BLAS path too (whose gradients must also match the
 * reference path's).
 */
static int
test_net_grad(void)
{
	enum
	{
		B = 6, MAXP = 400, MAXWORK = 400
	};
	static float params[MAXP],
				grads[MAXP],
				grads_ref[MAXP],
				opt[2 * MAXP],
				work[MAXWORK];
	static double pd[MAXP];
	float		X[B * 5],
				T[B * 3];
	int32_t		y[B];
	int			a,
				lossk,
				path;

	for (a = DLK_ACT_RELU; a <= DLK_ACT_IDENTITY; a++)
		for (lossk = DLK_LOSS_SOFTMAX_CE; lossk <= DLK_LOSS_MSE; lossk++)
			for (path = 0; path <= 1; path++)
			{
				dlk_arch	arch = {3, {5, 7, 6, 3}, (dlk_act) a, (dlk_loss) lossk};
				dlk_sizes	sz;
				dlk_net		net;
				double		loss,
							want;
				size_t		k,
							nchk;
				int			t;

				dlk_sizes_for(&sz, &arch, B, DLK_OPT_ADAM);
				if (sz.n_params > MAXP || sz.n_work > MAXWORK)
					return fail("test buffers too small");
				if (dlk_net_bind(&net, &arch, B, path, params, grads, opt, work) != DLK_OK)
					return fail("bind");
				dlk_init_params(&net, 1000 + a);
				/* nonzero biases, so their effect is tested too */
				dlk_rng_seed(&test_rng, 77 + a * 2 + lossk);
				for (t = 0; t < arch.n_layers; t++)
					fill(net.b[t], arch.dims[t + 1], -0.3f, 0.3f);
				fill(X, B * 5, -1, 1);
				fill(T, B * 3, -1, 1);
				for (t = 0; t < B; t++)
					y[t] = (int32_t) dlk_rng_below(&test_rng, 3);
				for (k = 0; k < sz.n_params; k++)
					pd[k] = params[k];

				if (dlk_loss_grad(&net, X, y, T, B, &loss) != DLK_OK)
					return fail("%s/%d: loss_grad status", act_name(a), lossk);
				want = net_loss_d(&arch, pd, X, y, T, B);
				if (!(fabs(loss - want) <= 1e-5 * (1 + fabs(want))))
					return fail("%s/%s/blas=%d: loss %.9g, double forward %.9g",
								act_name(a), lossk ? "mse" : "ce", path, loss, want);

				nchk = 60 + 7 + 3;
				for (k = 0; k < nchk; k++)
				{
					size_t		j;
					double		s,
								lp,
								lm,
								ref;

					if (k < 60)
						j = (size_t) dlk_rng_below(&test_rng, sz.n_params);
					else if (k < 67)
						j = (size_t) (net.b[0] - params) + (k - 60);
					else
						j = (size_t) (net.b[2] - params) + (k - 67);
					s = pd[j];
					pd[j] = s + FD_EPS;
					lp = net_loss_d(&arch, pd, X, y, T, B);
					pd[j] = s - FD_EPS;
					lm = net_loss_d(&arch, pd, X, y, T, B);
					pd[j] = s;
					ref = (lp - lm) / (2 * FD_EPS);
					if (!grad_close(grads[j], ref))
						return fail("%s/%s/blas=%d: grad[%zu] = %.8g, finite difference %.8g",
									act_name(a), lossk ? "mse" : "ce", path, j,
									grads[j], ref);
				}
				if (path == 0)
					memcpy(grads_ref, grads, sz.n_params * sizeof(float));
				else
					for (k = 0; k < sz.n_params; k++)
						if (!(fabsf(grads[k] - grads_ref[k]) <= 1e-5f + 1e-4f * fabsf(grads_ref[k])))
							return fail("%s: blas grad[%zu] %g vs ref %g",
										act_name(a), k, grads[k], grads_ref[k]);
				/* dlk_forward returns the same output as loss_grad's forward */
				{
					const float *out;
					float		saved[B * 3];

					memcpy(saved, net.act[2], sizeof(saved));
					out = dlk_forward(&net, X, B);
					if (out != net.act[2] || memcmp(out, saved, sizeof(saved)) != 0)
						return fail("dlk_forward output differs");
					if (dlk_forward(&net, X, B + 1) != NULL)
						return fail("dlk_forward accepted B > max_batch");
				}
			}
	return 1;
}

/* ---- optimizers ---- */

/*
 * p = [1, -2, 0.5], g1 = [0.5, 0.25, -1], g2 = [-0.3, 0.1, 0.2].  Expected
 * values from the update formulas evaluated in double by hand/script, e.g.
 * SGD momentum 0.9, wd 0.01, lr 0.1, element 0:
 *   g' = 0.5 + 0.01*1 = 0.51, m = 0.51, p = 1 - 0.051 = 0.949;
 *   g' = -0.3 + 0.01*0.949 = -0.29051, m = 0.459 - 0.29051 = 0.16849,
 *   p = 0.949 - 0.016849 = 0.932151.
 * Adam lr 0.01, b1 0.9, b2 0.999, eps 1e-8, element 0:
 *   t=1: m = 0.05, v = 2.5e-4, m^ = 0.5, v^ = 0.25, p = 1 - 0.01*0.5/0.5 = 0.99;
 *   t=2: m = 0.015, v = 3.3975e-4, m^ = 0.015/0.19, v^ = 3.3975e-4/0.001999,
 *        p = 0.99 - 0.01*0.0789474/0.412259 = 0.988085.
 */
static const float opt_p0[3] = {1.0f, -2.0f, 0.5f};
static const float opt_g[2][3] = {{0.5f, 0.25f, -1.0f}, {-0.3f, 0.1f, 0.2f}};

static int
check3(const char *what, const float *p, const double *want)
{
	int			k;

	for (k = 0; k < 3; k++)
		if (!(fabs(p[k] - want[k]) <= 2e-6 * (1 + fabs(want[k]))))
			return fail("%s: p[%d] = %.8f, want %.8f", what, k, p[k], want[k]);
	return 1;
}

static int
test_sgd(void)
{
	static const struct
	{
		const char *name;
		float		mom,
					wd;
		double		want[3];
	}			cases[] = {
		{"plain", 0.0f, 0.0f, {0.98, -2.035, 0.58}},
		{"momentum", 0.9f, 0.0f, {0.935, -2.0575, 0.67}},
		{"weight decay", 0.0f, 0.01f, {0.978051, -2.030977, 0.5789005}},
		{"momentum+wd", 0.9f, 0.01f, {0.932151, -2.051677, 0.6684505}},
	};
	size_t		c;

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		float		p[3],
					m[3] = {0, 0, 0};
		int			t;

		memcpy(p, opt_p0, sizeof(p));
		for (t = 0; t < 2; t++)
			dlk_sgd_step(p, opt_g[t], m, 3, 0.1f, cases[c].mom, cases[c].wd);
		if (!check3(cases[c].name, p, cases[c].want))
			return 0;
	}
	return 1;
}

static int
test_adam(void)
{
	static const struct
	{
		const char *name;
		float		wd;
		int			decoupled;
		double		want[3];
	}			cases[] = {
		{"adam", 0.0f, 0, {0.9880850198941775, -2.018985751173687, 0.5151102606009506}},
		{"adam wd", 0.1f, 0, {0.9860115861622782, -2.006302018016164, 0.5145763204468886}},
		{"adamw", 0.1f, 1, {0.9860960198939775, -2.014977751174087, 0.5141007606010506}},
	};
	size_t		c;

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		float		p[3],
					m[3] = {0, 0, 0},
					v[3] = {0, 0, 0};
		int			t;

		memcpy(p, opt_p0, sizeof(p));
		for (t = 0; t < 2; t++)
			dlk_adam_step(p, opt_g[t], m, v, 3, 0.01f, 0.9f, 0.999f, 1e-8f,
						  cases[c].wd, t + 1, cases[c].decoupled);
		if (!check3(cases[c].name, p, cases[c].want))
			return 0;
	}
	return 1;
}

/*
 * dlk_opt_step over a bound network equals the flat step on the whole
 * buffer (layout), increments step, and Adam's v starts at zero even when
 * the caller's opt_state buffer had garbage in its second half.
 */
static int
test_opt_step_net(void)
{
	dlk_arch	a = {2, {3, 4, 2}, DLK_ACT_TANH, DLK_LOSS_MSE};
	dlk_sizes	s;
	dlk_net		net;
	float		params[64],
				grads[64],
				opt[128],
				work[64],
				p2[64],
				m2[64],
				v2[64];
	dlk_opt		o = {DLK_OPT_ADAMW, 0.01f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.05f};
	size_t		k,
				n;
	int			t;

	dlk_sizes_for(&s, &a, 2, DLK_OPT_ADAMW);
	n = s.n_params;
	for (k = 0; k < 128; k++)
		opt[k] = 123.0f;
	if (dlk_net_bind(&net, &a, 2, 0, params, grads, opt, work) != DLK_OK)
		return fail("bind");
	dlk_init_params(&net, 3);
	memcpy(p2, params, n * sizeof(float));
	memset(m2, 0, sizeof(m2));
	memset(v2, 0, sizeof(v2));
	for (t = 1; t <= 3; t++)
	{
		float		g2[64];

		fill(grads, n, -1, 1);
		memcpy(g2, grads, n * sizeof(float));
		dlk_opt_step(&net, &o);
		dlk_adam_step(p2, g2, m2, v2, n, o.lr, o.beta1, o.beta2, o.eps,
					  o.weight_decay, t, 1);
		/* the step consumes the gradients: zeroed for the next backward */
		for (k = 0; k < n; k++)
			if (grads[k] != 0.0f || !net.grads_zero)
				return fail("gradient %zu not zeroed by the step", k);
		if (net.step != t)
			return fail("step = %ld after %d steps", net.step, t);
		if (memcmp(p2, params, n * sizeof(float)) != 0)
			return fail("opt_step differs from flat adam at step %d", t);
	}
	return 1;
}

/* ---- training ---- */

static const float xor_X[4 * 2] = {0, 0, 0, 1, 1, 0, 1, 1};
static const int32_t xor_y[4] = {0, 1, 1, 0};

/* 50 Adam steps on XOR; parameters to out; first and last losses */
static int
train_xor(float *out, size_t *np, uint64_t seed, int use_blas,
		  double *first, double *last)
{
	dlk_arch	a = {2, {2, 8, 2}, DLK_ACT_TANH, DLK_LOSS_SOFTMAX_CE};
	dlk_opt		o = {DLK_OPT_ADAM, 0.05f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f};
	dlk_sizes	s;
	dlk_net		net;
	static float grads[64],
				opt[128],
				work[256];
	int			t;

	dlk_sizes_for(&s, &a, 4, DLK_OPT_ADAM);
	if (s.n_params > 64 || s.n_work > 256)
		return 0;
	if (dlk_net_bind(&net, &a, 4, use_blas, out, grads, opt, work) != DLK_OK)
		return 0;
	dlk_init_params(&net, seed);
	for (t = 0; t < 50; t++)
	{
		double		loss;

		if (dlk_train_step(&net, xor_X, xor_y, NULL, 4, &o, &loss) != DLK_OK)
			return 0;
		if (t == 0)
			*first = loss;
		*last = loss;
	}
	*np = s.n_params;
	return 1;
}

static int
test_train_determinism(void)
{
	float		p1[64],
				p2[64],
				p3[64];
	size_t		n;
	double		f1,
				l1,
				f2,
				l2;
	int			path;

	for (path = 0; path <= 1; path++)
	{
		if (path)
			dlk_blas_set_threads(1);
		if (!train_xor(p1, &n, 42, path, &f1, &l1) ||
			!train_xor(p2, &n, 42, path, &f2, &l2) ||
			!train_xor(p3, &n, 43, path, &f2, &l2))
			return fail("training failed (blas=%d)", path);
		if (memcmp(p1, p2, n * sizeof(float)) != 0)
			return fail("same seed, different parameters (blas=%d)", path);
		if (memcmp(p1, p3, n * sizeof(float)) == 0)
			return fail("different seeds, same parameters (blas=%d)", path);
		if (!(l1 < 0.5 * f1))
			return fail("XOR loss did not decrease: %g -> %g (blas=%d)", f1, l1, path);
		printf("      xor blas=%d: loss %.4f -> %.4f\n", path, f1, l1);
	}
	return 1;
}

/* MSE regression on y = 2x - 1 with SGD momentum: the loss must drop */
static int
test_train_regression(void)
{
	dlk_arch	a = {2, {1, 8, 1}, DLK_ACT_RELU, DLK_LOSS_MSE};
	dlk_opt		o = {DLK_OPT_SGD, 0.05f, 0.9f, 0.9f, 0.999f, 1e-8f, 1e-4f};
	dlk_sizes	s;
	dlk_net		net;
	float		params[64],
				grads[64],
				opt[64],
				work[512],
				X[16],
				T[16];
	double		first = 0,
				loss = 0;
	int			t;

	for (t = 0; t < 16; t++)
	{
		X[t] = -1.0f + 2.0f * t / 15.0f;
		T[t] = 2.0f * X[t] - 1.0f;
	}
	dlk_sizes_for(&s, &a, 16, DLK_OPT_SGD);
	if (s.n_params > 64 || s.n_work > 512)
		return fail("buffers too small");
	if (dlk_net_bind(&net, &a, 16, 0, params, grads, opt, work) != DLK_OK)
		return fail("bind");
	dlk_init_params(&net, 11);
	for (t = 0; t < 200; t++)
	{
		if (dlk_train_step(&net, X, NULL, T, 16, &o, &loss) != DLK_OK)
			return fail("step %d status", t);
		if (t == 0)
			first = loss;
	}
	if (!(loss < 0.05 * first))
		return fail("MSE did not drop: %g -> %g", first, loss);
	if (dlk_train_step(&net, X, NULL, NULL, 16, &o, &loss) != DLK_EINVAL)
		return fail("regression step without targets accepted");
	return 1;
}

/*
 * The fused step of K networks (first layers in one GEMM) against K separate
 * steps from the same start: bit-identical, with the reference kernels and
 * on the fast path (dlk_gemm: every element one chain, whatever the
 * columns beside it).  Three shapes, one a logistic model (no hidden
 * layer), one SGD and one AdamW network, and a diverging network that must
 * drop out alone.
 */
static int
fused_case(int use_blas)
{
	enum {K = 4, D = 12, B = 9, STEPS = 5, CAP = 4096};
	dlk_arch	arch[K] = {
		{2, {D, 16, 3}, DLK_ACT_RELU, DLK_LOSS_SOFTMAX_CE},
		{1, {D, 3}, DLK_ACT_RELU, DLK_LOSS_SOFTMAX_CE},
		{3, {D, 7, 5, 3}, DLK_ACT_TANH, DLK_LOSS_SOFTMAX_CE},
		{2, {D, 16, 3}, DLK_ACT_RELU, DLK_LOSS_SOFTMAX_CE},
	};
	dlk_opt		opt[K] = {
		{DLK_OPT_ADAM, 0.01f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.0f},
		{DLK_OPT_SGD, 0.1f, 0.9f, 0.9f, 0.999f, 1e-8f, 1e-3f},
		{DLK_OPT_ADAMW, 0.01f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.01f},
		{DLK_OPT_SGD, 1e30f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f},	/* diverges */
	};
	static float buf[2][K][4][CAP];	/* [fused?][net][params grads state work] */
	static float fwork[CAP];
	dlk_net		net[2][K];
	dlk_net    *ptr[K];
	const dlk_opt *optp[K];
	float		X[B * D];
	int32_t		y[B];
	double		losses[K];
	dlk_status	st[K];
	int			diverged_at = -1;

	fill(X, B * D, -2, 2);
	for (int r = 0; r < B; r++)
		y[r] = r % 3;
	for (int f = 0; f < 2; f++)
		for (int k = 0; k < K; k++)
		{
			dlk_sizes	s;

			dlk_sizes_for(&s, &arch[k], B, DLK_OPT_ADAM);
			if (s.n_params > CAP || s.n_opt_state > CAP || s.n_work > CAP)
				return fail("buffers too small");
			if (dlk_net_bind(&net[f][k], &arch[k], B, use_blas, buf[f][k][0],
							 buf[f][k][1], buf[f][k][2], buf[f][k][3]) != DLK_OK)
				return fail("bind");
			dlk_init_params(&net[f][k], 100 + k);
		}
	for (int k = 0; k < K; k++)
	{
		ptr[k] = &net[1][k];
		optp[k] = &opt[k];
	}
	if (dlk_fused_work_size(ptr, K, B) > CAP)
		return fail("fused work too small");
	for (int t = 0, kk = K; t < STEPS; t++)
	{
		if (dlk_train_step_fused(ptr, optp, kk, X, y, NULL, B, fwork, losses, st) != DLK_OK)
			return fail("fused step %d failed", t);
		for (int k = 0; k < kk; k++)
		{
			double		l1;
			dlk_status	s1 = dlk_train_step(&net[0][k], X, y, NULL, B, &opt[k], &l1);

			if ((s1 == DLK_OK) != (st[k] == DLK_OK))
				return fail("step %d net %d: alone %d, fused %d", t, k, s1, st[k]);
			if (s1 != DLK_OK && k != K - 1)
				return fail("net %d diverged", k);
			if (s1 != DLK_OK)
				diverged_at = t;
			else if (l1 != losses[k])
				return fail("step %d net %d: loss %.17g alone, %.17g fused", t, k, l1, losses[k]);
		}
		/* the diverged network (the last) is left out from now on */
		if (diverged_at >= 0)
			kk = K - 1;
	}
	if (diverged_at < 0)
		return fail("the diverging network did not diverge");
	for (int k = 0; k < K - 1; k++)
		for (size_t i = 0; i < net[0][k].n_params; i++)
		{
			double		d = fabs((double) net[0][k].params[i] - net[1][k].params[i]);

			if (memcmp(&net[0][k].params[i], &net[1][k].params[i], sizeof(float)) != 0)
				return fail("net %d param %zu differs by %g", k, i, d);
		}
	return 1;
}

static int
test_fused_ref(void)
{
	return fused_case(0);
}

static int
test_fused_blas(void)
{
	return fused_case(1);
}

/*
 * Model selection exactly, on the fast path (dlk_gemm): K = 1..5 networks
 * stepped together by dlk_train_step_fused get, bit for bit, the losses,
 * statuses and parameters each gets stepped alone by dlk_train_step,
 * whatever is fused beside it: the members are taken from a list of six
 * at every offset, so the diverging one sits at every position, and it
 * drops out of the fused steps once it diverged.  Logistic and
 * hidden-layer networks (one and two hidden layers; ReLU, tanh, sigmoid),
 * SGD with momentum, Adam and AdamW, classification and regression, steps
 * of B, fewer and one row.  And every pool cut T = 1..4 (dltrain.threads;
 * at most as many threads as CPUs, the cut stays T) gives the bits of
 * T = 1, alone and fused: the products are cut over their outputs only and
 * every element is one chain.  The last family is wide enough (D = 300,
 * H = 256, B = 64) that its products are cut indeed.
 */
typedef struct xfamily
{
	int			D,
				H,
				C,
				B;
	dlk_loss	loss;
} xfamily;

typedef struct xmember
{
	int			layers;			/* 1 logistic, 2 one hidden layer of H, 3 H and 7 */
	dlk_act		act;
	dlk_opt		opt;
} xmember;

enum {XM = 6, XSTEPS = 5, XKMAX = 5};

static const xmember xmembers[XM] = {
	{1, DLK_ACT_RELU, {DLK_OPT_SGD, 0.1f, 0.9f, 0.9f, 0.999f, 1e-8f, 1e-3f}},
	{2, DLK_ACT_RELU, {DLK_OPT_ADAM, 0.01f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f}},
	{2, DLK_ACT_TANH, {DLK_OPT_ADAMW, 0.02f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.01f}},
	{2, DLK_ACT_RELU, {DLK_OPT_SGD, 1e30f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f}},	/* diverges */
	{1, DLK_ACT_RELU, {DLK_OPT_ADAMW, 0.05f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.01f}},
	{3, DLK_ACT_SIGMOID, {DLK_OPT_ADAM, 0.01f, 0.0f, 0.9f, 0.999f, 1e-8f, 1e-4f}},
};

/* rows of step s: B, B, B - 5, 1, B */
static int
xrows(const xfamily *f, int s)
{
	static const int less[XSTEPS] = {0, 0, 5, -1, 0};

	return less[s] < 0 ? 1 : f->B - less[s];
}

typedef struct xnet
{
	dlk_net		net;
	float	   *p,
			   *g,
			   *st,
			   *w;
} xnet;

static int
xbind(xnet *x, const xfamily *f, int m)
{
	dlk_arch	a;
	dlk_sizes	sz;

	memset(&a, 0, sizeof(a));
	a.n_layers = xmembers[m].layers;
	a.dims[0] = f->D;
	if (a.n_layers >= 2)
		a.dims[1] = f->H;
	if (a.n_layers == 3)
		a.dims[2] = 7;
	a.dims[a.n_layers] = f->C;
	a.act = xmembers[m].act;
	a.loss = f->loss;
	if (dlk_sizes_for(&sz, &a, f->B, DLK_OPT_ADAM) != DLK_OK)
		return 0;
	x->p = calloc(sz.n_params, sizeof(float));
	x->g = calloc(sz.n_params, sizeof(float));
	x->st = calloc(sz.n_opt_state, sizeof(float));
	x->w = calloc(sz.n_work, sizeof(float));
	return dlk_net_bind(&x->net, &a, f->B, 1, x->p, x->g, x->st, x->w) == DLK_OK &&
		dlk_init_params(&x->net, 300 + (uint64_t) m) == DLK_OK;
}

static void
xfree(xnet *x)
{
	free(x->p);
	free(x->g);
	free(x->st);
	free(x->w);
}

/* what member m gets alone: per step status and loss, final parameters */
typedef struct xalone
{
	dlk_status	st[XSTEPS];
	double		loss[XSTEPS];
	float	   *params;
	size_t		n;
} xalone;

static int
fused_exact_family(const xfamily *f)
{
	float	   *X = malloc(sizeof(float) * XSTEPS * f->B * f->D);
	float	   *T = malloc(sizeof(float) * XSTEPS * f->B * f->C);
	int32_t    *Y = malloc(sizeof(int32_t) * XSTEPS * f->B);
	int			cls = f->loss == DLK_LOSS_SOFTMAX_CE;
	xalone		ref[XM];
	int			ok = 1;
	int			diverged = 0;

	fill(X, (size_t) XSTEPS * f->B * f->D, -2, 2);
	fill(T, (size_t) XSTEPS * f->B * f->C, -1, 1);
	for (int r = 0; r < XSTEPS * f->B; r++)
		Y[r] = (int32_t) dlk_rng_below(&test_rng, (uint64_t) f->C);
	memset(ref, 0, sizeof(ref));
	for (int T_ = 1; ok && T_ <= 4; T_++)
	{
		dlk_pool_configure(T_, T_);
		/* each member alone */
		for (int m = 0; ok && m < XM; m++)
		{
			xnet		x;
			int			dead = 0;

			if (!xbind(&x, f, m))
				ok = fail("bind member %d", m);
			for (int s = 0; ok && s < XSTEPS; s++)
			{
				int			n = xrows(f, s);
				const float *Xs = X + (size_t) s * f->B * f->D;
				double		l = 0;
				dlk_status	st = DLK_ENONFINITE;

				if (!dead)
					st = dlk_train_step(&x.net, Xs, cls ? Y + s * f->B : NULL,
										cls ? NULL : T + (size_t) s * f->B * f->C,
										n, &xmembers[m].opt, &l);
				if (st != DLK_OK && st != DLK_ENONFINITE)
					ok = fail("member %d step %d: status %d", m, s, (int) st);
				dead = dead || st != DLK_OK;
				if (T_ == 1)
				{
					ref[m].st[s] = st;
					ref[m].loss[s] = l;
				}
				else if (st != ref[m].st[s] || (st == DLK_OK && l != ref[m].loss[s]))
					ok = fail("%d threads, member %d alone, step %d: status %d loss %.17g, 1 thread %d %.17g",
							  T_, m, s, (int) st, l, (int) ref[m].st[s], ref[m].loss[s]);
			}
			if (ok && T_ == 1)
			{
				ref[m].n = x.net.n_params;
				ref[m].params = malloc(sizeof(float) * ref[m].n);
				memcpy(ref[m].params, x.p, sizeof(float) * ref[m].n);
				diverged += dead;
			}
			else if (ok && memcmp(ref[m].params, x.p, sizeof(float) * ref[m].n) != 0)
				ok = fail("%d threads: member %d alone differs from 1 thread", T_, m);
			xfree(&x);
		}
		if (ok && T_ == 1 && diverged != 1)
			ok = fail("%d members diverged, want exactly one", diverged);
		/* K members fused, from every offset of the list */
		for (int K = 1; ok && K <= XKMAX; K++)
			for (int off = 0; ok && off < XM; off++)
			{
				xnet		x[XKMAX];
				int			alive[XKMAX];
				size_t		cap = 0;
				float	   *work;

				for (int j = 0; ok && j < K; j++)
				{
					if (!xbind(&x[j], f, (off + j) % XM))
						ok = fail("bind");
					alive[j] = 1;
				}
				{
					dlk_net    *all[XKMAX];

					for (int j = 0; j < K; j++)
						all[j] = &x[j].net;
					cap = dlk_fused_work_size(all, K, f->B);
				}
				work = malloc(sizeof(float) * cap);
				for (int s = 0; ok && s < XSTEPS; s++)
				{
					int			n = xrows(f, s);
					dlk_net    *nets[XKMAX];
					const dlk_opt *opts[XKMAX];
					int			who[XKMAX];
					double		losses[XKMAX];
					dlk_status	st[XKMAX];
					int			ks = 0;
					dlk_status	r;

					for (int j = 0; j < K; j++)
						if (alive[j])
						{
							who[ks] = j;
							nets[ks] = &x[j].net;
							opts[ks] = &xmembers[(off + j) % XM].opt;
							ks++;
						}
					if (ks == 0)
						break;
					r = dlk_train_step_fused(nets, opts, ks, X + (size_t) s * f->B * f->D,
											 cls ? Y + s * f->B : NULL,
											 cls ? NULL : T + (size_t) s * f->B * f->C,
											 n, work, losses, st);
					if (r != DLK_OK)
						ok = fail("K %d offset %d step %d: fused status %d", K, off, s, (int) r);
					for (int i = 0; ok && i < ks; i++)
					{
						int			m = (off + who[i]) % XM;

						if (st[i] != ref[m].st[s] ||
							(st[i] == DLK_OK && losses[i] != ref[m].loss[s]))
							ok = fail("%d threads, K %d offset %d, member %d step %d: fused %d %.17g, alone %d %.17g",
									  T_, K, off, m, s, (int) st[i], losses[i],
									  (int) ref[m].st[s], ref[m].loss[s]);
						if (st[i] != DLK_OK)
							alive[who[i]] = 0;
					}
				}
				for (int j = 0; j < K; j++)
				{
					int			m = (off + j) % XM;

					if (ok && memcmp(ref[m].params, x[j].p, sizeof(float) * ref[m].n) != 0)
						ok = fail("%d threads, K %d offset %d: member %d fused differs from alone",
								  T_, K, off, m);
					xfree(&x[j]);
				}
				free(work);
			}
	}
	dlk_pool_set_threads(1);
	for (int m = 0; m < XM; m++)
		free(ref[m].params);
	free(X);
	free(T);
	free(Y);
	return ok;
}

static int
test_fused_exact(void)
{
	static const xfamily fams[] = {
		{37, 16, 5, 23, DLK_LOSS_SOFTMAX_CE},
		{20, 16, 3, 23, DLK_LOSS_SOFTMAX_CE},
		{37, 16, 1, 23, DLK_LOSS_MSE},
		{20, 16, 3, 23, DLK_LOSS_MSE},
		{300, 256, 10, 64, DLK_LOSS_SOFTMAX_CE},
	};

	for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++)
		if (!fused_exact_family(&fams[i]))
		{
			char		m2[sizeof(msg)];

			snprintf(m2, sizeof(m2), "D %d H %d C %d %s: %.400s", fams[i].D, fams[i].H,
					 fams[i].C, fams[i].loss == DLK_LOSS_MSE ? "MSE" : "CE", msg);
			memcpy(msg, m2, sizeof(msg));
			return 0;
		}
	return 1;
}

static int
test_nonfinite(void)
{
	dlk_arch	a = {2, {2, 8, 2}, DLK_ACT_RELU, DLK_LOSS_SOFTMAX_CE};
	dlk_opt		o = {DLK_OPT_SGD, 0.1f, 0.9f, 0, 0, 0, 0};
	dlk_sizes	s;
	dlk_net		net;
	float		params[64],
				saved[64],
				grads[64],
				opt[64],
				work[256];
	float		X[8];
	int32_t		bad_y[4] = {0, 1, 2, 0};
	double		loss;

	memcpy(X, xor_X, sizeof(X));
	X[3] = NAN;
	if (dlk_sizes_for(&s, &a, 4, DLK_OPT_SGD) != DLK_OK ||
		s.n_params > 64 || s.n_work > 256)
		return fail("buffers too small");
	if (dlk_net_bind(&net, &a, 4, 0, params, grads, opt, work) != DLK_OK)
		return fail("bind");
	dlk_init_params(&net, 1);
	memcpy(saved, params, sizeof(saved));
	if (dlk_train_step(&net, X, xor_y, NULL, 4, &o, &loss) != DLK_ENONFINITE)
		return fail("NaN input did not give DLK_ENONFINITE");
	if (memcmp(saved, params, s.n_params * sizeof(float)) != 0 || net.step != 0)
		return fail("parameters updated despite non-finite loss");
	X[3] = INFINITY;
	if (dlk_train_step(&net, X, xor_y, NULL, 4, &o, &loss) != DLK_ENONFINITE)
		return fail("infinite input did not give DLK_ENONFINITE");
	if (memcmp(saved, params, s.n_params * sizeof(float)) != 0)
		return fail("parameters updated after infinite input");
	if (dlk_train_step(&net, xor_X, bad_y, NULL, 4, &o, &loss) != DLK_EINVAL)
		return fail("label out of range accepted by train_step");
	if (dlk_train_step(&net, xor_X, xor_y, NULL, 5, &o, &loss) != DLK_EINVAL)
		return fail("B > max_batch accepted");
	if (dlk_train_step(&net, xor_X, xor_y, NULL, 4, &o, &loss) != DLK_OK)
		return fail("a good step failed after bad ones");
	return 1;
}

/* ---- BLAS binding ---- */

static int
test_blas_missing(void)
{
	/* runs before dlk_blas_open: the fast path needs no BLAS library */
	dlk_arch	a = {1, {2, 2}, DLK_ACT_RELU, DLK_LOSS_SOFTMAX_CE};
	float		X[2] = {1, 2},
				W[4] = {1, 0, 0, 1},
				b[2] = {0.5f, 0},
				Y[2],
				work[16];
	dlk_net		net;
	char		err[256];

	if (dlk_blas_available())
		return fail("BLAS available before dlk_blas_open");
	if (dlk_dense_forward(Y, X, W, b, 1, 2, 2, 1) != DLK_OK || Y[0] != 1.5f || Y[1] != 2.0f)
		return fail("the fast forward without a BLAS library failed");
	if (dlk_net_bind(&net, &a, 1, 1, W, NULL, NULL, work) != DLK_OK ||
		dlk_net_bind(&net, &a, 1, DLK_BLAS_UNCUT, W, NULL, NULL, work) != DLK_OK)
		return fail("bind with use_blas and no BLAS library failed");
	err[0] = '\0';
	if (dlk_blas_open("/nonexistent/libnothing.so", err, sizeof(err)) != DLK_EBLASLOAD)
		return fail("bad path did not give DLK_EBLASLOAD");
	if (err[0] == '\0')
		return fail("no error message for bad path");
	if (dlk_blas_available())
		return fail("BLAS available after failed open");
	dlk_blas_set_threads(2);	/* no-op, must not crash */
	return 1;
}

static int
test_status_string(void)
{
	int			s,
				t;

	for (s = DLK_OK; s <= DLK_ENOMEM; s++)
	{
		if (dlk_status_string((dlk_status) s) == NULL)
			return fail("NULL string");
		for (t = 0; t < s; t++)
			if (strcmp(dlk_status_string((dlk_status) s),
					   dlk_status_string((dlk_status) t)) == 0)
				return fail("duplicate strings");
	}
	return 1;
}

/*
 * Feature statistics: sums and squared deviations in double against a plain
 * double loop, and standardization against the float32 formula that predict
 * relies on (exact equality: both sides must round the same way).
 */
static int
test_feature_stats(void)
{
	enum {N = 37, D = 13};
	float		x[N][D];
	double		sum[D] = {0},
				sq[D] = {0};
	float		fm[D],
				fs[D];

	for (int r = 0; r < N; r++)
		for (int d = 0; d < D; d++)
			x[r][d] = (float) (1000.0 + (dlk_rng_uniform(&test_rng) - 0.3) * (d + 1));
	/* shifted by the first row, as the glue does */
	for (int r = 0; r < N; r++)
		dlk_moments_accumulate(sum, sq, x[r], x[0], D);
	for (int d = 0; d < D; d++)
	{
		double		rs = 0,
					rq = 0,
					mean = 0,
					var = 0;

		for (int r = 0; r < N; r++)
		{
			double		v = (double) x[r][d] - (double) x[0][d];

			rs += v;
			rq += v * v;
			mean += x[r][d];
		}
		if (sum[d] != rs || sq[d] != rq)
			return fail("moments[%d] = (%.17g, %.17g), expected (%.17g, %.17g)",
						d, sum[d], sq[d], rs, rq);
		/* the variance from shifted moments matches the two-pass one */
		mean /= N;
		for (int r = 0; r < N; r++)
			var += (x[r][d] - mean) * (x[r][d] - mean);
		var /= N;
		if (fabs((sq[d] / N - (sum[d] / N) * (sum[d] / N)) - var) > 1e-9 * (1 + var))
			return fail("variance[%d] from shifted moments is %.17g, expected %.17g",
						d, sq[d] / N - (sum[d] / N) * (sum[d] / N), var);
		fm[d] = (float) mean;
		fs[d] = (float) (1.0 / sqrt(var));
	}
	for (int r = 0; r < N; r++)
	{
		float		before[D];

		memcpy(before, x[r], sizeof(before));
		dlk_standardize(x[r], fm, fs, D);
		for (int d = 0; d < D; d++)
		{
			float		want = (before[d] - fm[d]) * fs[d];

			if (x[r][d] != want)
				return fail("standardize row %d feature %d: %g, expected %g",
							r, d, x[r][d], want);
		}
	}
	return 1;
}

/* PyTorch's default init: W and b within +-1/sqrt(fan_in), spread out, seeded. */
static int
test_init_fanin(void)
{
	dlk_arch	a = {.n_layers = 2, .dims = {50, 20, 3}, .act = DLK_ACT_RELU, .loss = DLK_LOSS_SOFTMAX_CE};
	dlk_sizes	sz;
	float	   *p1,
			   *p2,
			   *work;
	dlk_net		n1,
				n2;
	int			ok = 1;

	if (dlk_sizes_for(&sz, &a, 4, DLK_OPT_SGD) != DLK_OK)
		return fail("sizes");
	p1 = calloc(sz.n_params, sizeof(float));
	p2 = calloc(sz.n_params, sizeof(float));
	work = calloc(sz.n_work, sizeof(float));
	dlk_net_bind(&n1, &a, 4, 0, p1, NULL, NULL, work);
	dlk_net_bind(&n2, &a, 4, 0, p2, NULL, NULL, work);
	dlk_init_params_fanin(&n1, 9);
	dlk_init_params_fanin(&n2, 9);
	if (memcmp(p1, p2, sz.n_params * sizeof(float)) != 0)
		ok = fail("same seed, different parameters");
	for (int l = 0; ok && l < 2; l++)
	{
		double		bound = 1.0 / sqrt((double) a.dims[l]);
		int			nw = a.dims[l] * a.dims[l + 1];
		double		maxabs = 0;

		for (int k = 0; k < nw; k++)
			maxabs = fmax(maxabs, fabs(n1.W[l][k]));
		for (int k = 0; k < a.dims[l + 1]; k++)
			maxabs = fmax(maxabs, fabs(n1.b[l][k]));
		if (maxabs > bound || maxabs < 0.8 * bound)
			ok = fail("layer %d: max |param| %g, bound %g", l, maxabs, bound);
	}
	dlk_init_params_fanin(&n2, 10);
	if (ok && memcmp(p1, p2, sz.n_params * sizeof(float)) == 0)
		ok = fail("different seeds, same parameters");
	free(p1);
	free(p2);
	free(work);
	return ok;
}

/*
 * Quantized sums: the same bits in any row order (that is the point), and
 * close to the double-precision mean and variance.
 */
static int
test_qsum_order(void)
{
	enum {N = 1000, D = 5};
	static float x[N][D];
	float		mn[D],
				mx[D];
	double		c1[D],
				q1[D],
				q2[D],
				a[D] = {0},
				b[D] = {0},
				a2[D] = {0},
				b2[D] = {0};
	double		levels = ldexp(1.0, 52 - 10);	/* n <= 2^10 */
	uint32_t	perm[N];

	for (int r = 0; r < N; r++)
		for (int d = 0; d < D; d++)
			x[r][d] = (float) ((dlk_rng_uniform(&test_rng) - 0.5) * pow(10.0, d - 2) + 1000.0 * (d == 4));
	memcpy(mn, x[0], sizeof(mn));
	memcpy(mx, x[0], sizeof(mx));
	for (int r = 0; r < N; r++)
		dlk_minmax_accumulate(mn, mx, x[r], D);
	for (int d = 0; d < D; d++)
	{
		float		tmn = x[0][d],
					tmx = x[0][d];

		for (int r = 0; r < N; r++)
		{
			tmn = fminf(tmn, x[r][d]);
			tmx = fmaxf(tmx, x[r][d]);
		}
		if (mn[d] != tmn || mx[d] != tmx)
			return fail("minmax of feature %d", d);
		c1[d] = ((double) mx[d] + mn[d]) / 2;
		q1[d] = levels / (((double) mx[d] - mn[d]) / 2);
		q2[d] = levels / pow(((double) mx[d] - mn[d]) / 2, 2);
	}
	for (int i = 0; i < N; i++)
		perm[i] = i;
	dlk_shuffle_u32(&test_rng, perm, N);
	for (int r = 0; r < N; r++)
	{
		dlk_qsum_accumulate(a, a2, x[r], c1, q1, q2, D);
		dlk_qsum_accumulate(b, b2, x[perm[r]], c1, q1, q2, D);
	}
	if (memcmp(a, b, sizeof(a)) != 0 || memcmp(a2, b2, sizeof(a2)) != 0)
		return fail("quantized sums differ between two row orders");
	for (int d = 0; d < D; d++)
	{
		double		mean = 0,
					var = 0,
					m1 = a[d] / q1[d] / N,
					got = c1[d] + m1,
					gotvar = a2[d] / q2[d] / N - m1 * m1;
		double		half = ((double) mx[d] - mn[d]) / 2;

		for (int r = 0; r < N; r++)
			mean += x[r][d];
		mean /= N;
		for (int r = 0; r < N; r++)
			var += (x[r][d] - mean) * (x[r][d] - mean);
		var /= N;
		if (fabs(got - mean) > 1e-9 * ((double) mx[d] - mn[d]))
			return fail("feature %d: mean %.17g, expected %.17g", d, got, mean);
		/* one quantum of the squares per term at most: half^2 * 2^-42 here */
		if (fabs(gotvar - var) > 1e-9 * half * half)
			return fail("feature %d: variance %.17g, expected %.17g", d, gotvar, var);
	}
	return 1;
}

/* The cache's append: a copy, the finite check and the ranges in one pass. */
static int
test_copy_minmax(void)
{
	enum {N = 37};
	float		src[N],
				dst[N],
				mn[N],
				mx[N],
				mn2[N],
				mx2[N];

	fill(src, N, -5, 5);
	fill(mn, N, -1, 1);
	memcpy(mx, mn, sizeof(mx));
	memcpy(mn2, mn, sizeof(mn));
	memcpy(mx2, mx, sizeof(mx));
	if (!dlk_copy_finite_minmax_f32(dst, src, N, mn, mx))
		return fail("finite row reported non-finite");
	dlk_minmax_accumulate(mn2, mx2, src, N);
	if (memcmp(dst, src, sizeof(dst)) != 0)
		return fail("copy differs");
	if (memcmp(mn, mn2, sizeof(mn)) != 0 || memcmp(mx, mx2, sizeof(mx)) != 0)
		return fail("ranges differ from dlk_minmax_accumulate");
	for (int bad = 0; bad < 3; bad++)
	{
		src[N - 1 - bad * 7] = bad == 0 ? NAN : (bad == 1 ? INFINITY : -INFINITY);
		if (dlk_copy_finite_minmax_f32(dst, src, N, mn, mx))
			return fail("non-finite value %d not reported", bad);
		src[N - 1 - bad * 7] = 0.5f;
	}
	return 1;
}

/* ---- the pool of helper threads (dlk_pool.c) ---- */

typedef struct cover_job
{
	unsigned char *hits;
	atomic_int	misaligned;
} cover_job;

static void
cover_range(void *arg, size_t lo, size_t hi)
{
	cover_job  *j = arg;

	if (lo % 16 != 0)
		atomic_store(&j->misaligned, 1);
	for (size_t i = lo; i < hi; i++)
		j->hits[i]++;
}

/* every element of [0, n) exactly once, ranges on multiples of 16, any T */
static int
test_pool_cover(void)
{
	static const size_t ns[] = {0, 1, 15, 16, 17, 100, 1000, 4099, 100000};
	static const size_t mins[] = {0, 1, 64, 5000};
	static unsigned char hits[100000];
	int			ok = 1;

	for (int t = 1; ok && t <= 4; t++)
	{
		/* t ranges whatever the CPUs; at most t threads run them */
		if (dlk_pool_set_threads(t) != DLK_OK || dlk_pool_parts() != t ||
			dlk_pool_threads() < 1 || dlk_pool_threads() > t)
			ok = fail("dlk_pool_set_threads(%d): %d ranges on %d threads", t,
					  dlk_pool_parts(), dlk_pool_threads());
		for (size_t a = 0; ok && a < sizeof(ns) / sizeof(ns[0]); a++)
			for (size_t b = 0; ok && b < sizeof(mins) / sizeof(mins[0]); b++)
			{
				cover_job	j = {.hits = hits};

				atomic_init(&j.misaligned, 0);
				memset(hits, 0, ns[a]);
				/* many jobs in a row: helpers must see each one exactly once */
				for (int rep = 0; rep < 50; rep++)
					dlk_pool_for(ns[a], mins[b], cover_range, &j);
				for (size_t i = 0; ok && i < ns[a]; i++)
					if (hits[i] != 50)
						ok = fail("T %d, n %zu, min %zu: element %zu done %d times in 50 jobs",
								  t, ns[a], mins[b], i, hits[i]);
				if (ok && atomic_load(&j.misaligned))
					ok = fail("T %d, n %zu: a range starts off a multiple of 16", t, ns[a]);
			}
	}
	if (ok && dlk_pool_set_threads(0) != DLK_EINVAL)
		ok = fail("0 threads accepted");
	dlk_pool_set_threads(1);
	return ok;
}

/*
 * Training on three threads: with the reference kernels (products on one
 * thread, optimizer and finite check cut across the pool) and on the fast
 * path (products cut too, over their outputs only) the parameters are
 * byte-identical to one thread's.  A NaN in the last gradient (a helper's
 * range) is still caught.
 */
static int
pool_train(float *params, int T, int use_blas, int steps, int poison, int max_threads)
{
	/* 50986 parameters: three ranges of the optimizer's flat loop */
	dlk_arch	a = {.n_layers = 2, .dims = {520, 96, 10}, .act = DLK_ACT_RELU, .loss = DLK_LOSS_SOFTMAX_CE};
	enum {B = 64};
	static float X[B * 520];
	static int32_t y[B];
	dlk_opt		opt = {.kind = DLK_OPT_ADAMW, .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
	dlk_sizes	sz;
	float	   *g,
			   *st,
			   *w;
	dlk_net		net;
	dlk_rng		r;
	int			rc = 1;

	dlk_rng_seed(&r, 77);
	for (int k = 0; k < B * 520; k++)
		X[k] = (float) dlk_rng_uniform(&r) - 0.5f;
	for (int k = 0; k < B; k++)
		y[k] = (int32_t) dlk_rng_below(&r, 10);
	if (dlk_sizes_for(&sz, &a, B, opt.kind) != DLK_OK)
		return -1;
	g = calloc(sz.n_params, sizeof(float));
	st = calloc(sz.n_opt_state, sizeof(float));
	w = calloc(sz.n_work, sizeof(float));
	dlk_net_bind(&net, &a, B, use_blas, params, g, st, w);
	dlk_init_params(&net, 5);
	dlk_pool_configure(T, max_threads);
	for (int s = 0; s < steps && rc == 1; s++)
	{
		double		loss;

		if (poison && s == steps - 1)
		{
			dlk_status	stt;
			float		before = params[sz.n_params - 1];

			/* gradients from a NaN in the last row's last feature */
			X[B * 520 - 1] = NAN;
			stt = dlk_train_step(&net, X, y, NULL, B, &opt, &loss);
			X[B * 520 - 1] = 0.0f;
			rc = stt == DLK_ENONFINITE && params[sz.n_params - 1] == before ? 2 : 0;
			break;
		}
		if (dlk_train_step(&net, X, y, NULL, B, &opt, &loss) != DLK_OK)
			rc = 0;
	}
	dlk_pool_set_threads(1);
	free(g);
	free(st);
	free(w);
	return rc;
}

static int
test_pool_train(void)
{
	enum {NP = 520 * 96 + 96 + 96 * 10 + 10};
	static float p1[NP],
				p3[NP],
				q3[NP];

	if (pool_train(p1, 1, 0, 5, 0, 1) != 1 || pool_train(p3, 3, 0, 5, 0, 3) != 1)
		return fail("reference training failed");
	if (memcmp(p1, p3, sizeof(p1)) != 0)
		return fail("reference kernels: 3 threads changed the parameters");
	if (pool_train(p3, 3, 0, 3, 1, 3) != 2)
		return fail("a non-finite gradient was not caught on 3 threads");
	if (pool_train(p1, 1, 1, 5, 0, 1) != 1 || pool_train(p3, 3, 1, 5, 0, 3) != 1)
		return fail("fast training failed");
	for (int k = 0; k < NP; k++)
		if (memcmp(&p1[k], &p3[k], sizeof(float)) != 0)
			return fail("fast path: parameter %d is %.9g on 1 thread, %.9g on 3", k, p1[k], p3[k]);
	/* the cut is dltrain.threads', not the machine's: 3 ranges on 1 thread */
	if (pool_train(q3, 3, 1, 5, 0, 1) != 1)
		return fail("BLAS training, 3 ranges on 1 thread, failed");
	if (memcmp(p3, q3, sizeof(p3)) != 0)
		return fail("BLAS: 3 ranges on 1 thread differ from 3 ranges on up to 3 threads");
	if (pool_train(p3, 3, 1, 3, 1, 3) != 2)
		return fail("BLAS: a non-finite gradient was not caught on 3 threads");
	return 1;
}

/*
 * Weight gradients added onto zeroed gradients (after bind or a step) are
 * bit for bit those written over old ones.
 */
static int
test_grads_onto_zero(void)
{
	dlk_arch	a = {.n_layers = 3, .dims = {40, 32, 24, 5}, .act = DLK_ACT_RELU, .loss = DLK_LOSS_SOFTMAX_CE};
	enum {B = 16};
	static float X[B * 40],
				g1[4096],
				g2[4096];
	int32_t		y[B];
	dlk_sizes	sz;
	float	   *p,
			   *g,
			   *st,
			   *w;
	dlk_net		net;
	double		loss;
	int			ok = 1;

	fill(X, B * 40, -1, 1);
	for (int k = 0; k < B; k++)
		y[k] = k % 5;
	dlk_sizes_for(&sz, &a, B, DLK_OPT_ADAM);
	p = calloc(sz.n_params, sizeof(float));
	g = calloc(sz.n_params, sizeof(float));
	st = calloc(sz.n_opt_state, sizeof(float));
	w = calloc(sz.n_work, sizeof(float));
	for (int use_blas = 0; ok && use_blas <= 1; use_blas++)
	{
		dlk_net_bind(&net, &a, B, use_blas, p, g, st, w);
		dlk_init_params(&net, 8);
		if (!net.grads_zero || dlk_loss_grad(&net, X, y, NULL, B, &loss) != DLK_OK)
			ok = fail("first backward (blas=%d)", use_blas);
		memcpy(g1, g, sz.n_params * sizeof(float));
		if (ok && (net.grads_zero || dlk_loss_grad(&net, X, y, NULL, B, &loss) != DLK_OK))
			ok = fail("second backward (blas=%d)", use_blas);
		memcpy(g2, g, sz.n_params * sizeof(float));
		if (ok && memcmp(g1, g2, sz.n_params * sizeof(float)) != 0)
			ok = fail("gradients onto zeros differ from overwritten ones (blas=%d)", use_blas);
	}
	free(p);
	free(g);
	free(st);
	free(w);
	return ok;
}

/* A scoring network (DLK_BLAS_UNCUT) ignores the pool: the same bits at any T. */
static int
test_pool_uncut(void)
{
	dlk_arch	a = {.n_layers = 2, .dims = {300, 200, 10}, .act = DLK_ACT_RELU, .loss = DLK_LOSS_SOFTMAX_CE};
	enum {B = 256};
	static float X[B * 300],
				out1[B * 10];
	dlk_sizes	sz;
	float	   *p,
			   *w;
	dlk_net		net;
	const float *y;
	int			ok = 1;

	fill(X, B * 300, -1, 1);
	dlk_sizes_for(&sz, &a, B, DLK_OPT_SGD);
	p = calloc(sz.n_params, sizeof(float));
	w = calloc(sz.n_work, sizeof(float));
	if (dlk_net_bind(&net, &a, B, DLK_BLAS_UNCUT, p, NULL, NULL, w) != DLK_OK)
		ok = fail("bind with DLK_BLAS_UNCUT");
	dlk_init_params(&net, 4);
	dlk_pool_set_threads(1);
	if (ok && (y = dlk_forward(&net, X, B)) == NULL)
		ok = fail("forward on 1 thread");
	if (ok)
		memcpy(out1, y, sizeof(out1));
	dlk_pool_set_threads(3);
	if (ok && (y = dlk_forward(&net, X, B)) == NULL)
		ok = fail("forward with the pool at 3");
	if (ok && memcmp(out1, y, sizeof(out1)) != 0)
		ok = fail("an uncut network changed with the pool's thread count");
	if (ok && dlk_net_bind(&net, &a, B, 3, p, NULL, NULL, w) != DLK_EINVAL)
		ok = fail("use_blas 3 accepted");
	dlk_pool_set_threads(1);
	free(p);
	free(w);
	return ok;
}

/*
 * Products cut into 3 blocks against the reference: columns and rows,
 * with and without a transposed operand, with the bias copied per block.
 */
static int
test_pool_dense_blas(void)
{
	/* B, I, O: Y, gW and dX cut by columns; Y by rows (bias), dX by rows */
	static const int shapes[][3] = {{64, 800, 256}, {800, 64, 100}, {256, 64, 800}};
	enum {MAXN = 256 * 800};
	static float X[MAXN],
				W[MAXN],
				b[800],
				dY[MAXN],
				Y1[MAXN],
				Y2[MAXN],
				gW1[MAXN],
				gW2[MAXN],
				gb1[800],
				gb2[800],
				dX1[MAXN],
				dX2[MAXN];
	int			ok = 1;

	dlk_pool_set_threads(3);
	for (size_t sh = 0; ok && sh < sizeof(shapes) / sizeof(shapes[0]); sh++)
	{
		int			B = shapes[sh][0],
					I = shapes[sh][1],
					O = shapes[sh][2];

		fill(X, (size_t) B * I, -1, 1);
		fill(W, (size_t) O * I, -1, 1);
		fill(b, O, -1, 1);
		fill(dY, (size_t) B * O, -1, 1);
		if (dlk_dense_forward(Y1, X, W, b, B, I, O, 0) != DLK_OK ||
			dlk_dense_forward(Y2, X, W, b, B, I, O, 1) != DLK_OK ||
			dlk_dense_backward(dX1, gW1, gb1, dY, X, W, B, I, O, 0) != DLK_OK ||
			dlk_dense_backward(dX2, gW2, gb2, dY, X, W, B, I, O, 1) != DLK_OK)
			ok = fail("%dx%dx%d: status", B, I, O);
		for (int k = 0; ok && k < B * O; k++)
			if (!(fabsf(Y1[k] - Y2[k]) <= 1e-5f * I))
				ok = fail("%dx%dx%d: Y[%d] ref %g, 3 ranges %g", B, I, O, k, Y1[k], Y2[k]);
		for (int k = 0; ok && k < O * I; k++)
			if (!(fabsf(gW1[k] - gW2[k]) <= 1e-5f * B))
				ok = fail("%dx%dx%d: gW[%d] ref %g, 3 ranges %g", B, I, O, k, gW1[k], gW2[k]);
		for (int k = 0; ok && k < B * I; k++)
			if (!(fabsf(dX1[k] - dX2[k]) <= 1e-5f * O))
				ok = fail("%dx%dx%d: dX[%d] ref %g, 3 ranges %g", B, I, O, k, dX1[k], dX2[k]);
	}
	dlk_pool_set_threads(1);
	return ok;
}

/* ---- abort (dlk_set_abort) ---- */

static atomic_int abort_polls;	/* callback calls since abort_arm */
static int	abort_after = -1;	/* say stop from this call on; -1: never */

static int
abort_cb(void *arg)
{
	int			n = atomic_fetch_add(&abort_polls, 1);

	(void) arg;
	return abort_after >= 0 && n >= abort_after;
}

static void
abort_arm(int after)
{
	atomic_store(&abort_polls, 0);
	abort_after = after;
	dlk_set_abort(abort_cb, NULL);
}

static void
abort_off(void)
{
	dlk_set_abort(NULL, NULL);
}

/*
 * A product of 2^31 flops is computed in pieces with a poll between them:
 * polling changes no bit; a stop at the second poll returns DLK_EABORT; the
 * same call afterwards gives the same bits; and the product cut into three
 * ranges of columns gives the bits of the uncut one.
 */
static int
test_abort_gemm(void)
{
	enum {N = 1024};
	float	   *X = malloc(sizeof(float) * N * N),
			   *W = malloc(sizeof(float) * N * N),
			   *b = calloc(N, sizeof(float)),
			   *Y0 = malloc(sizeof(float) * N * N),
			   *Y1 = malloc(sizeof(float) * N * N),
			   *Y2 = malloc(sizeof(float) * N * N);
	int			ok = 1;

	fill(X, (size_t) N * N, -1, 1);
	fill(W, (size_t) N * N, -1, 1);
	abort_off();
	/* three ranges (on one thread) against the uncut product */
	dlk_pool_configure(3, 1);
	if (dlk_dense_forward(Y0, X, W, b, N, N, N, 1) != DLK_OK)
		ok = fail("forward in three ranges");
	dlk_pool_set_threads(1);
	if (ok && dlk_dense_forward(Y1, X, W, b, N, N, N, DLK_BLAS_UNCUT) != DLK_OK)
		ok = fail("forward without a callback");
	if (ok && memcmp(Y0, Y1, sizeof(float) * N * N) != 0)
		ok = fail("three ranges and the uncut product differ");
	abort_arm(-1);
	if (ok && dlk_dense_forward(Y2, X, W, b, N, N, N, 1) != DLK_OK)
		ok = fail("forward with a callback that never stops");
	if (ok && atomic_load(&abort_polls) < 2)
		ok = fail("%d polls in a product of two tiles", atomic_load(&abort_polls));
	if (ok && memcmp(Y1, Y2, sizeof(float) * N * N) != 0)
		ok = fail("polling changed the product");
	abort_arm(1);
	if (ok && dlk_dense_forward(Y2, X, W, b, N, N, N, 1) != DLK_EABORT)
		ok = fail("a stop at the second tile did not return DLK_EABORT");
	abort_off();
	if (ok && (dlk_dense_forward(Y2, X, W, b, N, N, N, 1) != DLK_OK ||
			   memcmp(Y1, Y2, sizeof(float) * N * N) != 0))
		ok = fail("the call after an abort differs");
	free(X);
	free(W);
	free(b);
	free(Y0);
	free(Y1);
	free(Y2);
	return ok;
}

/* a range that runs until dlk_abort_poll() says stop (or about 20 s) */
typedef struct long_job
{
	atomic_int	ran;
	atomic_int	timed_out;
} long_job;

static void
long_range(void *arg, size_t lo, size_t hi)
{
	long_job   *j = arg;
	volatile unsigned x = 0;

	(void) lo;
	(void) hi;
	atomic_fetch_add(&j->ran, 1);
	for (long k = 0; !dlk_abort_poll(); k++)
	{
		for (int i = 0; i < 10000; i++)
			x += i;
		if (k > 2000000)
		{
			atomic_store(&j->timed_out, 1);
			return;
		}
	}
}

/*
 * Helpers stop too: a job of two long ranges on two threads ends when the
 * callback says stop (the caller's wait polls it, the helper reads the
 * flag), returns DLK_EABORT, and the pool runs every range of the next job.
 */
static int
test_abort_pool(void)
{
	static unsigned char hits[5000];
	int			ok = 1;

	for (int t = 1; ok && t <= 2; t++)
	{
		long_job	j;
		cover_job	c = {.hits = hits};

		atomic_init(&j.ran, 0);
		atomic_init(&j.timed_out, 0);
		atomic_init(&c.misaligned, 0);
		dlk_pool_configure(t, t);
		abort_arm(1000);
		/*
		 * two ranges of 16 (range starts are multiples of 16: a job of 2
		 * would be one empty range and one long one, and a caller left
		 * waiting polls only every few milliseconds)
		 */
		if (dlk_pool_for(32, 16, long_range, &j) != DLK_EABORT)
			ok = fail("T %d: an aborted job did not return DLK_EABORT", t);
		if (ok && atomic_load(&j.timed_out))
			ok = fail("T %d: a range did not see the stop", t);
		abort_arm(-1);
		memset(hits, 0, sizeof(hits));
		for (int rep = 0; ok && rep < 20; rep++)
			if (dlk_pool_for(sizeof(hits), 1, cover_range, &c) != DLK_OK)
				ok = fail("T %d: a job after the abort returned an error", t);
		for (size_t i = 0; ok && i < sizeof(hits); i++)
			if (hits[i] != 20)
				ok = fail("T %d: after an abort, element %zu done %d times in 20 jobs",
						  t, i, hits[i]);
	}
	abort_off();
	dlk_pool_set_threads(1);
	return ok;
}

/*
 * A training step stopped at its first, second, ... poll returns
 * DLK_EABORT every time; a callback that never stops changes no bit of a
 * step; and a fresh network stepped after all those aborts gets the bytes
 * of one stepped without any (on two threads, with BLAS and without).
 */
static int
abort_step(float *params, int use_blas, int stop_at)
{
	dlk_arch	a = {.n_layers = 2, .dims = {520, 96, 10}, .act = DLK_ACT_RELU, .loss = DLK_LOSS_SOFTMAX_CE};
	enum {B = 64};
	static float X[B * 520];
	static int32_t y[B];
	dlk_opt		opt = {.kind = DLK_OPT_ADAM, .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
	dlk_sizes	sz;
	float	   *g,
			   *st,
			   *w;
	dlk_net		net;
	dlk_rng		r;
	double		loss;
	dlk_status	rc;

	dlk_rng_seed(&r, 77);
	for (int k = 0; k < B * 520; k++)
		X[k] = (float) dlk_rng_uniform(&r) - 0.5f;
	for (int k = 0; k < B; k++)
		y[k] = (int32_t) dlk_rng_below(&r, 10);
	dlk_sizes_for(&sz, &a, B, DLK_OPT_ADAM);
	g = malloc(sizeof(float) * sz.n_params);
	st = malloc(sizeof(float) * sz.n_opt_state);
	w = malloc(sizeof(float) * sz.n_work);
	abort_off();
	dlk_net_bind(&net, &a, B, use_blas, params, g, st, w);
	dlk_init_params(&net, 5);
	if (stop_at >= -1)
		abort_arm(stop_at);
	rc = dlk_train_step(&net, X, y, NULL, B, &opt, &loss);
	abort_off();
	free(g);
	free(st);
	free(w);
	return (int) rc;
}

static int
test_abort_step(void)
{
	dlk_arch	a = {.n_layers = 2, .dims = {520, 96, 10}};
	size_t		np = (size_t) 96 * 521 + 10 * 97;
	float	   *p0 = malloc(sizeof(float) * np),
			   *p1 = malloc(sizeof(float) * np);
	int			ok = 1;

	(void) a;
	dlk_pool_set_threads(2);
	for (int use_blas = 0; ok && use_blas <= 1; use_blas++)
	{
		int			stops = 0;

		if (abort_step(p0, use_blas, -2) != DLK_OK)	/* no callback */
			ok = fail("blas %d: a step without a callback failed", use_blas);
		if (ok && (abort_step(p1, use_blas, -1) != DLK_OK ||
				   memcmp(p0, p1, sizeof(float) * np) != 0))
			ok = fail("blas %d: polling changed the step", use_blas);
		for (int at = 0; ok && at < 10000; at++)
		{
			int			rc = abort_step(p1, use_blas, at);

			if (rc == DLK_OK)
				break;
			if (rc != DLK_EABORT)
				ok = fail("blas %d: a stop at poll %d returned %d", use_blas, at, rc);
			stops++;
		}
		if (ok && stops < 5)
			ok = fail("blas %d: only %d polls in a step", use_blas, stops);
		if (ok && (abort_step(p1, use_blas, -2) != DLK_OK ||
				   memcmp(p0, p1, sizeof(float) * np) != 0))
			ok = fail("blas %d: a step after %d aborted ones differs", use_blas, stops);
	}
	dlk_pool_set_threads(1);
	free(p0);
	free(p1);
	return ok;
}

/* The initializer and the shuffle stop too, and work again afterwards. */
static int
test_abort_init_shuffle(void)
{
	dlk_arch	a = {.n_layers = 1, .dims = {1100, 1000}, .act = DLK_ACT_RELU, .loss = DLK_LOSS_SOFTMAX_CE};
	enum {N = 3000000};
	uint32_t   *idx = malloc(sizeof(uint32_t) * N);
	dlk_sizes	sz;
	float	   *p,
			   *w;
	dlk_net		net;
	dlk_rng		r;
	int			ok = 1;

	dlk_sizes_for(&sz, &a, 1, DLK_OPT_SGD);
	p = malloc(sizeof(float) * sz.n_params);
	w = malloc(sizeof(float) * sz.n_work);
	dlk_net_bind(&net, &a, 1, 0, p, NULL, NULL, w);
	abort_arm(1);
	if (dlk_init_params(&net, 1) != DLK_EABORT || dlk_init_params_fanin(&net, 1) != DLK_EABORT)
		ok = fail("the initializer of %zu parameters did not stop", sz.n_params);
	for (uint32_t i = 0; i < N; i++)
		idx[i] = i;
	dlk_rng_seed(&r, 3);
	abort_arm(1);
	if (ok && dlk_shuffle_u32(&r, idx, N) != DLK_EABORT)
		ok = fail("a shuffle of %d did not stop", N);
	abort_off();
	if (ok && (dlk_init_params(&net, 1) != DLK_OK || dlk_shuffle_u32(&r, idx, N) != DLK_OK))
		ok = fail("the initializer or the shuffle failed after an abort");
	free(idx);
	free(p);
	free(w);
	return ok;
}

int
main(void)
{
	char		err[256];
	const char *blas_path;

	dlk_rng_seed(&test_rng, 20240601);

	/* DLK_TEST_BLAS overrides the library path (another BLAS, or a bad path) */
	blas_path = getenv("DLK_TEST_BLAS");

	run_test("blas_missing", test_blas_missing);
	blas_ok = dlk_blas_open(blas_path, err, sizeof(err)) == DLK_OK;
	if (!blas_ok)
		printf("note  BLAS library not available (%s): BLAS tests skipped\n", err);
	else if (dlk_blas_open(blas_path, err, sizeof(err)) != DLK_OK)	/* idempotent */
		blas_ok = 0;

	run_test("arch_check", test_arch_check);
	run_test("sizes_bind", test_sizes_bind);
	run_test("status_string", test_status_string);
	run_test("rng_known_answer", test_rng_known);
	run_test("rng_repeat", test_rng_repeat);
	run_test("rng_below", test_rng_below);
	run_test("shuffle", test_shuffle);
	run_test("init_params", test_init);
	run_test("init_params_fanin", test_init_fanin);
	run_test("dense_fd_ref", test_dense_fd_ref);
	run_test("dense_fd_blas", test_dense_fd_blas);
	run_test("dense_blas_vs_ref", test_dense_blas_vs_ref);
	run_test("act_fd", test_act_fd);
	run_test("softmax_ce_fd", test_softmax_ce_fd);
	run_test("softmax_ce_labels", test_softmax_ce_labels);
	run_test("mse_fd", test_mse_fd);
	run_test("softmax_rows", test_softmax_rows);
	run_test("net_grad_fd", test_net_grad);
	run_test("sgd_two_steps", test_sgd);
	run_test("adam_two_steps", test_adam);
	run_test("opt_step_net", test_opt_step_net);
	run_test("train_determinism_xor", test_train_determinism);
	run_test("train_regression_mse", test_train_regression);
	run_test("nonfinite", test_nonfinite);
	run_test("fused_step_ref", test_fused_ref);
	run_test("fused_step_blas", test_fused_blas);
	run_test("fused_exact_k1_5_threads1_4", test_fused_exact);
	run_test("feature_stats", test_feature_stats);
	run_test("qsum_order", test_qsum_order);
	run_test("copy_minmax", test_copy_minmax);
	run_test("grads_onto_zero", test_grads_onto_zero);
	run_test("pool_cover", test_pool_cover);
	run_test("pool_train", test_pool_train);
	run_test("pool_dense_blas", test_pool_dense_blas);
	run_test("pool_uncut", test_pool_uncut);
	run_test("abort_gemm", test_abort_gemm);
	run_test("abort_pool", test_abort_pool);
	run_test("abort_step", test_abort_step);
	run_test("frozen_grad_fd_and_features", test_frozen_grad);
	run_test("abort_init_shuffle", test_abort_init_shuffle);

	if (n_skipped > 0)
		printf("kernels: %d passed, %d failed, %d skipped\n",
			   n_passed, n_failed, n_skipped);
	else
		printf("kernels: %d passed, %d failed\n", n_passed, n_failed);
	return n_failed > 0 ? 1 : 0;
}
