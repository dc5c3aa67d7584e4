/*
 * test_fpmode.c — the kernels' floating-point mode (dlk_internal.h): every
 * entry point that computes runs with flush-to-zero and denormals-are-zero
 * and gives the caller's MXCSR back unchanged, on every return path (OK,
 * non-finite, abort), nested or not; the pool's helpers run ranges in the
 * caller's mode and restore their own; and a step on subnormal-heavy data
 * gives the flushed result, whatever the caller's mode.  x86-64 only (the
 * mode is a no-op elsewhere: the tests are skipped).
 */
#include "dlk.h"
#include "dlk_device.h"
#include "dlk_internal.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && !defined(DLK_NO_FTZ)
#include <xmmintrin.h>

static int	n_passed = 0,
			n_failed = 0;
static char msg[256];

#define FAIL(...) (snprintf(msg, sizeof(msg), __VA_ARGS__), 0)

static void
run_test(const char *name, int (*fn) (void))
{
	msg[0] = 0;
	if (fn())
		printf("ok    %s\n", name), n_passed++;
	else
		printf("FAIL  %s: %s\n", name, msg), n_failed++;
}

static void *
m_alloc(void *ctx, size_t n)
{
	(void) ctx;
	return calloc(1, n);
}

static void
m_free(void *ctx, void *p)
{
	(void) ctx;
	free(p);
}

static const dlk_allocator alloc = {NULL, m_alloc, m_free};

static int	abort_now;
static int
abort_cb(void *a)
{
	(void) a;
	return abort_now;
}

/* the caller modes tried: default, default with status flags up, FTZ+DAZ already on */
static const unsigned modes[] = {0x1f80u, 0x1fa1u, 0x9fc0u};

#define CHECK_MODE(what, call) \
	do { \
		for (int mi_ = 0; mi_ < 3; mi_++) \
		{ \
			unsigned	after_; \
			_mm_setcsr(modes[mi_]); \
			call; \
			after_ = _mm_getcsr(); \
			_mm_setcsr(0x1f80u); \
			if (after_ != modes[mi_]) \
				return FAIL("%s: MXCSR %#x after, %#x before", what, after_, modes[mi_]); \
		} \
	} while (0)

static dlk_arch
arch_of(int D, int H, int C, dlk_loss l)
{
	dlk_arch	a;

	memset(&a, 0, sizeof(a));
	a.n_layers = H ? 2 : 1;
	a.dims[0] = D;
	if (H)
		a.dims[1] = H;
	a.dims[a.n_layers] = C;
	a.act = DLK_ACT_TANH;
	a.loss = l;
	return a;
}

static int
test_restore(void)
{
	enum
	{
	B = 8, D = 6, H = 5, C = 3};
	dlk_arch	a = arch_of(D, H, C, DLK_LOSS_SOFTMAX_CE);
	dlk_opt		o = {DLK_OPT_ADAM, 0.01f, 0.9f, 0.9f, 0.999f, 1e-8f, 0};
	dlk_sizes	sz;
	float	   *p,
			   *g,
			   *s,
			   *w,
			   *work;
	float		X[B * D],
				Y[B * C],
				T[B * C],
				dY[B * C],
				gW[C * D],
				gb[C];
	int32_t		lab[B];
	dlk_net		net,
				net2;
	dlk_net    *nets[2] = {&net, &net2};
	const dlk_opt *opts[2] = {&o, &o};
	double		loss,
				losses[2];
	dlk_status	st[2];
	const dlk_device *dev = &dlk_device_reference;
	dlk_dnet   *dn,
			   *dn2,
			   *inf;
	dlk_dnet   *dns[2];
	dlk_dfused *f;
	dlk_batch  *b;
	double		l2,
				sc;
	float		out[B * C];
	dlk_status	r = DLK_OK;
	float	   *p2;

	for (int i = 0; i < B * D; i++)
		X[i] = (float) ((i * 37) % 11) / 7.0f - 0.6f;
	for (int i = 0; i < B * C; i++)
		T[i] = (float) (i % 5) / 5.0f;
	for (int i = 0; i < B; i++)
		lab[i] = i % C;
	dlk_sizes_for(&sz, &a, B, DLK_OPT_ADAM);
	p = calloc(4 * sz.n_params, sizeof(float));
	g = p + sz.n_params;
	s = g + sz.n_params;
	w = calloc(2 * sz.n_work, sizeof(float));
	dlk_net_bind(&net, &a, B, 0, p, g, s, w);
	dlk_init_params(&net, 1);
	p2 = calloc(4 * sz.n_params, sizeof(float));
	{
		dlk_net_bind(&net2, &a, B, 0, p2, p2 + sz.n_params, p2 + 2 * sz.n_params, w + sz.n_work);
		dlk_init_params(&net2, 2);
	}
	work = calloc(dlk_fused_work_size(nets, 2, B), sizeof(float));

	CHECK_MODE("dlk_forward", (void) dlk_forward(&net, X, B));
	CHECK_MODE("dlk_train_step", r = dlk_train_step(&net, X, lab, NULL, B, &o, &loss));
	if (r != DLK_OK)
		return FAIL("step failed");
	CHECK_MODE("dlk_loss_grad", (void) dlk_loss_grad(&net, X, lab, NULL, B, &loss));
	CHECK_MODE("dlk_opt_step", (void) dlk_opt_step(&net, &o));
	CHECK_MODE("dlk_train_step_fused", (void) dlk_train_step_fused(nets, opts, 2, X, lab, NULL, B, work, losses, st));
	CHECK_MODE("dlk_dense_forward", (void) dlk_dense_forward(Y, X, net.W[0], net.b[0], B, D, C < H ? C : H, 0));
	CHECK_MODE("dlk_dense_backward", (void) dlk_dense_backward(NULL, gW, gb, T, X, gW, B, D, C, 0));
	CHECK_MODE("dlk_act_forward", dlk_act_forward(Y, T, B * C, DLK_ACT_SIGMOID));
	CHECK_MODE("dlk_act_backward", dlk_act_backward(dY, T, Y, B * C, DLK_ACT_TANH));
	CHECK_MODE("dlk_softmax_ce", (void) dlk_softmax_ce(&loss, dY, T, lab, B, C));
	CHECK_MODE("dlk_mse", dlk_mse(&loss, dY, T, Y, B, C));
	CHECK_MODE("dlk_softmax_rows", dlk_softmax_rows(Y, T, B, C));
	CHECK_MODE("dlk_sgd_step", dlk_sgd_step(gW, gb, NULL, C, 0.1f, 0, 0));
	CHECK_MODE("dlk_adam_step", dlk_adam_step(p, g, s, s + sz.n_params, sz.n_params, 0.01f, 0.9f, 0.999f, 1e-8f, 0, 3, 1));
	CHECK_MODE("dlk_dense_forward fast", (void) dlk_dense_forward(Y, X, net.W[0], net.b[0], B, D, 3, 1));

	/* non-finite and aborted steps */
	X[3] = NAN;
	CHECK_MODE("dlk_train_step (non-finite)", r = dlk_train_step(&net, X, lab, NULL, B, &o, &loss));
	if (r != DLK_ENONFINITE)
		return FAIL("NaN step: %s", dlk_status_string(r));
	X[3] = 0.5f;
	dlk_set_abort(abort_cb, NULL);
	abort_now = 1;
	CHECK_MODE("dlk_train_step (abort)", r = dlk_train_step(&net, X, lab, NULL, B, &o, &loss));
	if (r != DLK_EABORT)
		return FAIL("aborted step: %s", dlk_status_string(r));
	CHECK_MODE("dlk_train_step_fused (abort)", r = dlk_train_step_fused(nets, opts, 2, X, lab, NULL, B, work, losses, st));
	if (r != DLK_EABORT)
		return FAIL("aborted fused step: %s", dlk_status_string(r));
	CHECK_MODE("dlk_forward (abort)", (void) dlk_forward(&net, X, B));

	/* the device operations, aborted and not */
	abort_now = 0;
	dev->net_bind(&alloc, &a, B, &o, &dn);
	dev->net_bind(&alloc, &a, B, &o, &dn2);
	dev->init_params(dn, 1, DLK_INIT_HE_GLOROT);
	dev->init_params(dn2, 2, DLK_INIT_FANIN);
	dns[0] = dn;
	dns[1] = dn2;
	dev->fused_bind(&alloc, dns, 2, B, &f);
	dev->net_bind_infer(&alloc, &a, B, dev->net_params(dn), &inf);
	dev->batch_create(&alloc, B, D, C, &b);
	memcpy(b->x, X, sizeof(X));
	memcpy(b->y, lab, sizeof(lab));
	dev->batch_upload(b, B);
	for (int ab = 0; ab < 2; ab++)
	{
		abort_now = ab;
		CHECK_MODE("device train_step", (void) dev->train_step(dn, b, B));
		CHECK_MODE("device train_step_fused", (void) dev->train_step_fused(f, dns, 2, b, B));
		CHECK_MODE("device net_eval", (void) dev->net_eval(dn, b, B, &l2, &sc));
		CHECK_MODE("device net_predict", (void) dev->net_predict(inf, b, B, out));
	}
	abort_now = 0;
	b->x[0] = INFINITY;
	CHECK_MODE("device train_step (non-finite)", (void) dev->train_step(dn, b, B));
	dlk_set_abort(NULL, NULL);
	dev->batch_free(b);
	dev->net_free(inf);
	dev->fused_free(f);
	dev->net_free(dn2);
	dev->net_free(dn);
	free(work);
	free(p2);
	free(w);
	free(p);
	return 1;
}

/* inside, subnormal products flush (FTZ) and subnormal operands read as 0 (DAZ) */
static int
test_flush(void)
{
	float		X[16],
				W[16],
				b = 0,
				Y[1];

	for (int i = 0; i < 16; i++)
		X[i] = 1e-20f, W[i] = 1e-20f;
	_mm_setcsr(0x1f80u);
	if (dlk_dense_forward(Y, X, W, &b, 1, 16, 1, 0) != DLK_OK || Y[0] != 0.0f)
		return FAIL("FTZ: 16 x 1e-40 gave %g", Y[0]);
	for (int i = 0; i < 16; i++)
		X[i] = 1e-39f, W[i] = 1e10f;	/* X subnormal */
	if (dlk_dense_forward(Y, X, W, &b, 1, 16, 1, 0) != DLK_OK || Y[0] != 0.0f)
		return FAIL("DAZ: subnormal operands gave %g", Y[0]);
	/* and outside, the caller's mode is back: the same product is not flushed */
	{
		volatile float x = 1e-20f,
					y = 1e-20f;

		if (x * y == 0.0f)
			return FAIL("the caller's mode was not restored");
	}
	return 1;
}

/* helpers: the caller's FTZ/DAZ inside a range, their own afterwards */
static atomic_uint seen_or,
			seen_and;

static void
record(void *arg, size_t lo, size_t hi)
{
	unsigned	m = _mm_getcsr() & DLK_FP_FTZ_DAZ;

	(void) arg;
	(void) lo;
	(void) hi;
	atomic_fetch_or(&seen_or, m);
	atomic_fetch_and(&seen_and, m);
	for (volatile int k = 0; k < 20000; k++);	/* long enough for helpers to join */
}

static int
test_pool_mode(void)
{
	dlk_pool_configure(4, 4);
	for (int rep = 0; rep < 2; rep++)
	{
		for (int on = 1; on >= 0; on--)
		{
			atomic_store(&seen_or, 0);
			atomic_store(&seen_and, ~0u);
			_mm_setcsr(on ? 0x9fc0u : 0x1f80u);
			dlk_pool_for(64 * 16, 16, record, NULL);
			_mm_setcsr(0x1f80u);
			if (on && atomic_load(&seen_and) != DLK_FP_FTZ_DAZ)
				return FAIL("a range ran without FTZ/DAZ under a caller with them");
			if (!on && atomic_load(&seen_or) != 0)
				return FAIL("a helper kept FTZ/DAZ after its range");
		}
	}
	dlk_pool_configure(1, 1);
	return 1;
}

/*
 * A logistic step whose probabilities are subnormal: logits 200 apart, so
 * exp(z - m) clamps to 2^-126 and divided by B falls below FLT_MIN.  Every
 * label is the confident class, so dlogits are 0 or subnormal: flushed,
 * the gradients are exactly 0, whatever the caller's mode and the path.
 */
static int
test_subnormal_step(void)
{
	enum
	{
	B = 16, D = 4, C = 3};
	dlk_arch	a = arch_of(D, 0, C, DLK_LOSS_SOFTMAX_CE);
	dlk_sizes	sz;
	float	   *p,
			   *g,
			   *w,
				X[B * D];
	int32_t		lab[B];
	dlk_net		net;
	double		loss;
	volatile float tiny = 0x1p-126f;

	if (tiny / B == 0.0f)
		return FAIL("the test needs the caller's mode without FTZ");
	for (int i = 0; i < B * D; i++)
		X[i] = 1.0f;
	for (int i = 0; i < B; i++)
		lab[i] = 0;
	dlk_sizes_for(&sz, &a, B, DLK_OPT_SGD);
	for (int use_blas = 0; use_blas <= 1; use_blas++)
		for (int mi = 0; mi < 3; mi++)
		{
			p = calloc(sz.n_params, sizeof(float));
			g = calloc(sz.n_params, sizeof(float));
			w = calloc(sz.n_work, sizeof(float));
			dlk_net_bind(&net, &a, B, use_blas, p, g, NULL, w);
			for (int d = 0; d < D; d++)
				net.W[0][d] = 50.0f;	/* class 0: logit 200 */
			_mm_setcsr(modes[mi]);
			if (dlk_loss_grad(&net, X, lab, NULL, B, &loss) != DLK_OK)
				return FAIL("loss_grad failed");
			_mm_setcsr(0x1f80u);
			for (size_t k = 0; k < sz.n_params; k++)
				if (g[k] != 0.0f)
					return FAIL("blas %d mode %#x: gradient %zu is %g, not flushed",
								use_blas, modes[mi], k, g[k]);
			free(p);
			free(g);
			free(w);
		}
	return 1;
}

int
main(void)
{
	char		err[200];

	/* opened as the extension does; the fast kernels do not need it */
	(void) dlk_blas_open(getenv("DLK_TEST_BLAS"), err, sizeof(err));
	_mm_setcsr(0x1f80u);
	run_test("fpmode_restore", test_restore);
	run_test("fpmode_flush", test_flush);
	run_test("fpmode_pool", test_pool_mode);
	run_test("fpmode_subnormal_step", test_subnormal_step);
	printf("fpmode: %d passed, %d failed\n", n_passed, n_failed);
	return n_failed ? 1 : 0;
}

#else
int
main(void)
{
	printf("fpmode: skipped (not x86-64)\n");
	return 0;
}
#endif
