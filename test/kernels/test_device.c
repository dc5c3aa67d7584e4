/*
 * test_device.c — the device interface (src/kernels/dlk_device.h).
 *
 * The "cpu" and "reference" devices give bit-identical results to the
 * direct kernel calls they wrap (SGD and Adam, classification and
 * regression, a fused step of K = 3), fused steps of K = 1..5 networks
 * give each the bits it gets alone at every thread count, the two devices
 * agree within a tolerance, and the asynchronous shape holds: the loss sum and the sticky
 * non-finite mark give the same outcome whether the counters are read after
 * every step or once at the end.  Also: the allocator (every block given
 * back, a refusal is DLK_ENOMEM), an abort, the device names, argmax.
 */
#include "dlk.h"
#include "dlk_device.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	n_passed = 0;
static int	n_failed = 0;
static char msg[512];

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
		printf("ok    %s\n", name);
		n_passed++;
	}
	else
	{
		printf("FAIL  %s: %s\n", name, msg);
		n_failed++;
	}
}

/* ---- a counting allocator over malloc ---- */

typedef struct counting
{
	long		allocs;
	long		frees;
	long		refuse_after;	/* refuse the allocation after this many; -1 never */
} counting;

static void *
c_alloc(void *ctx, size_t bytes)
{
	counting   *c = ctx;

	if (c->refuse_after >= 0 && c->allocs >= c->refuse_after)
		return NULL;
	c->allocs++;
	return malloc(bytes);
}

static void
c_free(void *ctx, void *p)
{
	counting   *c = ctx;

	c->frees++;
	free(p);
}

static counting cnt = {0, 0, -1};
static const dlk_allocator alloc = {&cnt, c_alloc, c_free};

/* ---- data ---- */

static dlk_rng rng;

static void
fill(float *x, size_t n, float s)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (float) ((2.0 * dlk_rng_uniform(&rng) - 1.0) * s);
}

/* batch data of step s: x [B x D], y [B], t [B x C] */
static void
make_batch(float *x, int32_t *y, float *t, int B, int D, int C, uint64_t s)
{
	dlk_rng_seed(&rng, 1000 + s);
	fill(x, (size_t) B * D, 2.0f);
	fill(t, (size_t) B * C, 1.0f);
	for (int i = 0; i < B; i++)
		y[i] = (int32_t) dlk_rng_below(&rng, (uint64_t) C);
}

static dlk_arch
arch_of(int D, int H, int C, dlk_loss loss, dlk_act act)
{
	dlk_arch	a;

	memset(&a, 0, sizeof(a));
	a.n_layers = H > 0 ? 2 : 1;
	a.dims[0] = D;
	if (H > 0)
		a.dims[1] = H;
	a.dims[a.n_layers] = C;
	a.act = act;
	a.loss = loss;
	return a;
}

static dlk_opt
opt_of(dlk_opt_kind k, float lr)
{
	dlk_opt		o = {k, lr, 0.9f, 0.9f, 0.999f, 1e-8f, 0.001f};

	return o;
}

/* A directly bound network (the calls the device wraps). */
typedef struct direct
{
	dlk_net		net;
	float	   *p,
			   *g,
			   *s,
			   *w;
} direct;

static dlk_status
direct_bind(direct *d, const dlk_arch *a, int B, int use_blas, dlk_opt_kind k)
{
	dlk_sizes	sz;

	dlk_sizes_for(&sz, a, B, k);
	d->p = calloc(sz.n_params, sizeof(float));
	d->g = calloc(sz.n_params, sizeof(float));
	d->s = calloc(sz.n_opt_state, sizeof(float));
	d->w = calloc(sz.n_work, sizeof(float));
	return dlk_net_bind(&d->net, a, B, use_blas, d->p, d->g, d->s, d->w);
}

static void
direct_free(direct *d)
{
	free(d->p);
	free(d->g);
	free(d->s);
	free(d->w);
}

/*
 * steps of a network through dev vs directly (use_blas), bit for bit: the
 * parameters after every step, the loss sum, eval and predict at the end
 */
static int
same_as_direct(const dlk_device *dev, int use_blas, dlk_loss loss,
			   dlk_opt_kind ok, dlk_init init)
{
	enum
	{
	B = 48, D = 37, H = 20, STEPS = 5};
	int			C = loss == DLK_LOSS_MSE ? 3 : 6;
	dlk_arch	a = arch_of(D, H, C, loss, DLK_ACT_TANH);
	dlk_opt		o = opt_of(ok, ok == DLK_OPT_SGD ? 0.05f : 0.01f);
	direct		d;
	dlk_dnet   *net;
	dlk_batch  *b;
	dlk_progress pr;
	double		want_sum = 0;
	int			cls = loss == DLK_LOSS_SOFTMAX_CE;
	float	   *out1,
			   *out2;
	int			ret = 1;

	if (direct_bind(&d, &a, B, use_blas, ok) != DLK_OK)
		return fail("direct bind failed");
	if (dev->net_bind(&alloc, &a, B, &o, &net) != DLK_OK)
		return fail("device bind failed");
	if (dev->batch_create(&alloc, B, D, C, &b) != DLK_OK)
		return fail("batch create failed");
	if (init == DLK_INIT_FANIN)
		dlk_init_params_fanin(&d.net, 42);
	else
		dlk_init_params(&d.net, 42);
	if (dev->init_params(net, 42, init) != DLK_OK)
		return fail("init failed");
	if (memcmp(dev->net_params(net), d.p, d.net.n_params * sizeof(float)) != 0)
		return fail("initial parameters differ");

	for (int s = 0; s < STEPS && ret; s++)
	{
		int			n = B - 7 * (s % 2);
		double		lv;

		make_batch(b->x, b->y, b->t, n, D, C, (uint64_t) s);
		if (dev->batch_upload(b, n) != DLK_OK)
			return fail("upload failed");
		if (dlk_train_step(&d.net, b->x, cls ? b->y : NULL, cls ? NULL : b->t, n,
						   &o, &lv) != DLK_OK)
			return fail("direct step failed");
		want_sum += lv * n;
		if (dev->train_step(net, b, n) != DLK_OK)
			return fail("device step failed");
		if (memcmp(dev->net_params(net), d.p, d.net.n_params * sizeof(float)) != 0)
			ret = fail("parameters differ after step %d", s + 1);
	}
	if (ret && (dev->net_read(net, &pr) != DLK_OK || pr.loss_sum != want_sum ||
				pr.rows != (int64_t) (B * STEPS - 7 * (STEPS / 2)) || pr.steps != STEPS ||
				pr.nonfinite || pr.nonfinite_step != -1 || pr.submitted != STEPS))
		ret = fail("counters: loss_sum %.17g want %.17g, rows %lld, steps %lld",
				   pr.loss_sum, want_sum, (long long) pr.rows, (long long) pr.steps);
	/* eval and predict against the direct forward pass */
	if (ret)
	{
		double		l1,
					s1,
					l2,
					s2 = 0;
		const float *y;

		out1 = malloc(sizeof(float) * B * C);
		out2 = malloc(sizeof(float) * B * C);
		if (dev->net_eval(net, b, b->n, &l1, &s1) != DLK_OK)
			ret = fail("eval failed");
		y = dlk_forward(&d.net, b->x, b->n);
		if (cls)
		{
			dlk_softmax_ce(&l2, NULL, y, b->y, b->n, C);
			for (int i = 0; i < b->n; i++)
				s2 += dlk_argmax(y + (size_t) i * C, C) == b->y[i];
			dlk_softmax_rows(out2, y, b->n, C);
		}
		else
		{
			dlk_mse(&l2, NULL, y, b->t, b->n, C);
			s2 = l2 * b->n * C;
			memcpy(out2, y, sizeof(float) * b->n * C);
		}
		if (ret && (l1 != l2 || s1 != s2))
			ret = fail("eval: %.17g/%g vs %.17g/%g", l1, s1, l2, s2);
		if (ret && (dev->net_predict(net, b, b->n, out1) != DLK_OK ||
					memcmp(out1, out2, sizeof(float) * b->n * C) != 0))
			ret = fail("predict differs");
		free(out1);
		free(out2);
	}
	dev->batch_free(b);
	dev->net_free(net);
	direct_free(&d);
	return ret;
}

static int
test_cpu_same(void)
{
	for (int l = 0; l < 2; l++)
		for (int k = 0; k < 3; k++)
			if (!same_as_direct(&dlk_device_cpu, 1, (dlk_loss) l, (dlk_opt_kind) k,
								k == 1 ? DLK_INIT_FANIN : DLK_INIT_HE_GLOROT))
				return 0;
	return 1;
}

static int
test_reference_same(void)
{
	for (int l = 0; l < 2; l++)
		for (int k = 0; k < 3; k++)
			if (!same_as_direct(&dlk_device_reference, 0, (dlk_loss) l, (dlk_opt_kind) k,
								k == 2 ? DLK_INIT_FANIN : DLK_INIT_HE_GLOROT))
				return 0;
	return 1;
}

/* the same steps on both devices: parameters within a relative tolerance */
static int
test_reference_vs_cpu(void)
{
	enum
	{
	B = 64, D = 50, H = 32, STEPS = 8};
	const dlk_device *devs[2] = {&dlk_device_cpu, &dlk_device_reference};

	for (int l = 0; l < 2; l++)
		for (int k = 0; k < 2; k++)
		{
			int			C = l ? 2 : 5;
			dlk_arch	a = arch_of(D, H, C, (dlk_loss) l, DLK_ACT_RELU);
			dlk_opt		o = opt_of(k ? DLK_OPT_ADAM : DLK_OPT_SGD, 0.01f);
			dlk_dnet   *net[2];
			dlk_batch  *b;
			dlk_progress pr[2];
			double		maxd = 0;
			const float *p0,
					   *p1;

			dlk_device_cpu.batch_create(&alloc, B, D, C, &b);
			for (int v = 0; v < 2; v++)
			{
				if (devs[v]->net_bind(&alloc, &a, B, &o, &net[v]) != DLK_OK)
					return fail("bind failed");
				devs[v]->init_params(net[v], 3, DLK_INIT_HE_GLOROT);
			}
			for (int s = 0; s < STEPS; s++)
			{
				make_batch(b->x, b->y, b->t, B, D, C, (uint64_t) s);
				dlk_device_cpu.batch_upload(b, B);
				for (int v = 0; v < 2; v++)
					if (devs[v]->train_step(net[v], b, B) != DLK_OK)
						return fail("step failed");
			}
			p0 = dlk_device_cpu.net_params(net[0]);
			p1 = dlk_device_reference.net_params(net[1]);
			for (size_t i = 0; i < dlk_device_cpu.n_params(net[0]); i++)
			{
				double		dd = fabs((double) p0[i] - p1[i]) / (fabs(p1[i]) + 1e-3);

				if (dd > maxd)
					maxd = dd;
			}
			devs[0]->net_read(net[0], &pr[0]);
			devs[1]->net_read(net[1], &pr[1]);
			if (maxd > 1e-3)
				return fail("parameters differ by %g (relative)", maxd);
			if (fabs(pr[0].loss_sum - pr[1].loss_sum) > 1e-4 * fabs(pr[1].loss_sum))
				return fail("loss sums %g vs %g", pr[0].loss_sum, pr[1].loss_sum);
			for (int v = 0; v < 2; v++)
				devs[v]->net_free(net[v]);
			dlk_device_cpu.batch_free(b);
		}
	return 1;
}

/*
 * Model selection exactly through the device: K = 1..5 networks of the
 * "cpu" device stepped by train_step_fused (a diverging one among them,
 * at every position) end with the parameters and counters (loss sum,
 * rows, the non-finite mark and its step) of each stepped alone by
 * train_step, bit for bit, at every pool cut T = 1..4: logistic and
 * hidden-layer networks, SGD, Adam and AdamW, classification and
 * regression.
 */
enum {DXM = 5, DX_STEPS = 6};

static int
progress_same(const dlk_progress *x, const dlk_progress *y)
{
	return memcmp(&x->loss_sum, &y->loss_sum, sizeof(double)) == 0 &&
		x->rows == y->rows && x->steps == y->steps && x->nonfinite == y->nonfinite &&
		x->nonfinite_step == y->nonfinite_step && x->submitted == y->submitted;
}

static int
device_alone_case(dlk_loss loss, int D, int H, int C)
{
	enum {B = 29};
	const dlk_device *dev = &dlk_device_cpu;
	dlk_arch	a[DXM];
	dlk_opt		o[DXM];
	float	   *want[DXM];
	dlk_progress want_pr[DXM];
	dlk_batch  *b;
	int			ret = 1;

	a[0] = arch_of(D, 0, C, loss, DLK_ACT_RELU);
	a[1] = arch_of(D, H, C, loss, DLK_ACT_RELU);
	a[2] = arch_of(D, H, C, loss, DLK_ACT_TANH);
	a[3] = arch_of(D, H, C, loss, DLK_ACT_RELU);
	a[4] = arch_of(D, 0, C, loss, DLK_ACT_SIGMOID);
	o[0] = opt_of(DLK_OPT_SGD, 0.05f);
	o[1] = opt_of(DLK_OPT_ADAM, 0.01f);
	o[2] = opt_of(DLK_OPT_ADAMW, 0.02f);
	o[3] = opt_of(DLK_OPT_SGD, 1e30f);	/* diverges */
	o[4] = opt_of(DLK_OPT_ADAMW, 0.05f);
	if (dev->batch_create(&alloc, B, D, C, &b) != DLK_OK)
		return fail("batch");
	for (int T = 1; ret && T <= 4; T++)
	{
		dlk_pool_configure(T, T);
		/* alone */
		for (int m = 0; ret && m < DXM; m++)
		{
			dlk_dnet   *net;
			dlk_progress pr;

			if (dev->net_bind(&alloc, &a[m], B, &o[m], &net) != DLK_OK)
				return fail("bind");
			dev->init_params(net, 40 + m, DLK_INIT_HE_GLOROT);
			for (int s = 0; s < DX_STEPS; s++)
			{
				int			n = s == 4 ? 1 : B - 2 * (s % 3);

				make_batch(b->x, b->y, b->t, n, D, C, (uint64_t) s + 70);
				dev->batch_upload(b, n);
				if (dev->train_step(net, b, n) != DLK_OK)
					ret = fail("step");
			}
			dev->net_read(net, &pr);
			if (T == 1)
			{
				want[m] = malloc(sizeof(float) * dev->n_params(net));
				memcpy(want[m], dev->net_params(net), sizeof(float) * dev->n_params(net));
				want_pr[m] = pr;
				if ((m == 3) != (pr.nonfinite != 0))
					ret = fail("member %d: non-finite mark %d", m, pr.nonfinite);
			}
			else if (memcmp(want[m], dev->net_params(net), sizeof(float) * dev->n_params(net)) != 0 ||
					 !progress_same(&want_pr[m], &pr))
				ret = fail("%d threads: member %d alone differs from 1 thread", T, m);
			dev->net_free(net);
		}
		/* fused, K members from every offset */
		for (int K = 1; ret && K <= DXM; K++)
			for (int off = 0; ret && off < DXM; off++)
			{
				dlk_dnet   *net[DXM];
				dlk_dfused *f;

				for (int j = 0; j < K; j++)
				{
					int			m = (off + j) % DXM;

					if (dev->net_bind(&alloc, &a[m], B, &o[m], &net[j]) != DLK_OK)
						return fail("bind");
					dev->init_params(net[j], 40 + m, DLK_INIT_HE_GLOROT);
				}
				if (dev->fused_bind(&alloc, net, K, B, &f) != DLK_OK)
					return fail("fused bind");
				for (int s = 0; s < DX_STEPS; s++)
				{
					int			n = s == 4 ? 1 : B - 2 * (s % 3);

					make_batch(b->x, b->y, b->t, n, D, C, (uint64_t) s + 70);
					dev->batch_upload(b, n);
					if (dev->train_step_fused(f, net, K, b, n) != DLK_OK)
						ret = fail("fused step");
				}
				for (int j = 0; j < K; j++)
				{
					int			m = (off + j) % DXM;
					dlk_progress pr;

					dev->net_read(net[j], &pr);
					if (ret && (memcmp(want[m], dev->net_params(net[j]),
									   sizeof(float) * dev->n_params(net[j])) != 0 ||
								!progress_same(&want_pr[m], &pr)))
						ret = fail("%d threads, K %d offset %d: member %d fused (loss sum %.17g) differs from alone (%.17g)",
								   T, K, off, m, pr.loss_sum, want_pr[m].loss_sum);
					dev->net_free(net[j]);
				}
				dev->fused_free(f);
			}
	}
	dlk_pool_configure(1, 1);
	for (int m = 0; m < DXM; m++)
		free(want[m]);
	dev->batch_free(b);
	return ret;
}

static int
test_fused_alone(void)
{
	return device_alone_case(DLK_LOSS_SOFTMAX_CE, 37, 16, 5) &&
		device_alone_case(DLK_LOSS_SOFTMAX_CE, 20, 16, 3) &&
		device_alone_case(DLK_LOSS_MSE, 20, 16, 3) &&
		device_alone_case(DLK_LOSS_MSE, 37, 16, 1);
}

/*
 * Fused K = 3 through the device against dlk_train_step_fused directly; with
 * poison > 0, network 1 has a learning rate that makes it diverge, and the
 * direct side leaves it out from then on as the glue used to (a plain step
 * when one network is left), while the device side never reads until the end.
 */
static int
fused_case(const dlk_device *dev, int use_blas, dlk_loss loss, int poison)
{
	enum
	{
	K = 3, B = 40, D = 30, STEPS = 6};
	int			C = loss == DLK_LOSS_MSE ? 1 : 4;
	int			cls = loss == DLK_LOSS_SOFTMAX_CE;
	dlk_arch	a[K];
	dlk_opt		o[K];
	direct		d[K];
	dlk_dnet   *net[K];
	dlk_dfused *f;
	dlk_batch  *b;
	float	   *work;
	dlk_net    *np[K];
	const dlk_opt *op[K];
	double		want_sum[K] = {0};
	int			alive[K] = {1, 1, 1};
	long		diverged_at[K] = {-1, -1, -1};
	int			ret = 1;

	a[0] = arch_of(D, 0, C, loss, DLK_ACT_RELU);
	a[1] = arch_of(D, 12, C, loss, DLK_ACT_RELU);
	a[2] = arch_of(D, 9, C, loss, DLK_ACT_TANH);
	o[0] = opt_of(DLK_OPT_ADAM, 0.01f);
	o[1] = opt_of(DLK_OPT_SGD, poison ? 1e30f : 0.05f);
	o[2] = opt_of(DLK_OPT_ADAMW, 0.02f);
	for (int k = 0; k < K; k++)
	{
		if (direct_bind(&d[k], &a[k], B, use_blas, o[k].kind) != DLK_OK ||
			dev->net_bind(&alloc, &a[k], B, &o[k], &net[k]) != DLK_OK)
			return fail("bind failed");
		dlk_init_params(&d[k].net, 7 + k);
		dev->init_params(net[k], 7 + k, DLK_INIT_HE_GLOROT);
		np[k] = &d[k].net;
	}
	work = malloc(sizeof(float) * dlk_fused_work_size(np, K, B));
	if (dev->fused_bind(&alloc, net, K, B, &f) != DLK_OK ||
		dev->batch_create(&alloc, B, D, C, &b) != DLK_OK)
		return fail("fused bind or batch failed");

	for (int s = 0; s < STEPS; s++)
	{
		int			n = B - 3 * (s % 3);
		int			ks = 0;
		int			who[K];
		double		losses[K];
		dlk_status	status[K];

		make_batch(b->x, b->y, b->t, n, D, C, (uint64_t) s + 50);
		dev->batch_upload(b, n);
		for (int k = 0; k < K; k++)
			if (alive[k])
			{
				who[ks] = k;
				np[ks] = &d[k].net;
				op[ks] = &o[k];
				ks++;
			}
		if (ks > 1)
		{
			if (dlk_train_step_fused(np, op, ks, b->x, cls ? b->y : NULL,
									 cls ? NULL : b->t, n, work, losses, status) != DLK_OK)
				return fail("direct fused step failed");
		}
		else if (ks == 1)
			status[0] = dlk_train_step(np[0], b->x, cls ? b->y : NULL,
									   cls ? NULL : b->t, n, op[0], &losses[0]);
		for (int j = 0; j < ks; j++)
		{
			if (status[j] == DLK_OK)
				want_sum[who[j]] += losses[j] * n;
			else if (status[j] == DLK_ENONFINITE)
			{
				alive[who[j]] = 0;
				diverged_at[who[j]] = s;
			}
			else
				return fail("direct step failed");
		}
		if (dev->train_step_fused(f, net, K, b, n) != DLK_OK)
			return fail("device fused step failed");
	}
	for (int k = 0; k < K && ret; k++)
	{
		dlk_progress pr;

		dev->net_read(net[k], &pr);
		if (memcmp(dev->net_params(net[k]), d[k].p, d[k].net.n_params * sizeof(float)) != 0)
			ret = fail("network %d: parameters differ", k);
		else if (pr.loss_sum != want_sum[k] || pr.nonfinite != (diverged_at[k] >= 0) ||
				 pr.nonfinite_step != diverged_at[k] || pr.submitted != STEPS)
			ret = fail("network %d: loss sum %.17g want %.17g, mark %d at %lld want %ld",
					   k, pr.loss_sum, want_sum[k], pr.nonfinite,
					   (long long) pr.nonfinite_step, diverged_at[k]);
	}
	if (ret && poison && diverged_at[1] < 0)
		ret = fail("the poisoned network did not diverge");
	dev->fused_free(f);
	dev->batch_free(b);
	for (int k = 0; k < K; k++)
	{
		dev->net_free(net[k]);
		direct_free(&d[k]);
	}
	free(work);
	return ret;
}

static int
test_fused(void)
{
	for (int l = 0; l < 2; l++)
		for (int p = 0; p < 2; p++)
		{
			if (!fused_case(&dlk_device_reference, 0, (dlk_loss) l, p))
				return 0;
			if (!fused_case(&dlk_device_cpu, 1, (dlk_loss) l, p))
				return 0;
		}
	return 1;
}

/*
 * Non-finite: a NaN in step 2's batch marks the network; later steps are
 * no-ops; reading after every step or only at the end, the same outcome.
 */
static int
test_nonfinite_sticky(void)
{
	enum
	{
	B = 16, D = 8, C = 3, STEPS = 6};
	const dlk_device *dev = &dlk_device_reference;
	dlk_arch	a = arch_of(D, 5, C, DLK_LOSS_SOFTMAX_CE, DLK_ACT_RELU);
	dlk_opt		o = opt_of(DLK_OPT_ADAM, 0.01f);
	dlk_progress last[2];
	float	   *params[2];
	size_t		np = 0;

	for (int mode = 0; mode < 2; mode++)
	{
		dlk_dnet   *net;
		dlk_batch  *b;
		float	   *frozen = NULL;

		dev->net_bind(&alloc, &a, B, &o, &net);
		dev->batch_create(&alloc, B, D, C, &b);
		dev->init_params(net, 1, DLK_INIT_HE_GLOROT);
		np = dev->n_params(net);
		frozen = malloc(np * sizeof(float));
		for (int s = 0; s < STEPS; s++)
		{
			make_batch(b->x, b->y, b->t, B, D, C, (uint64_t) s);
			if (s == 2)
				b->x[5] = NAN;
			dev->batch_upload(b, B);
			if (dev->train_step(net, b, B) != DLK_OK)
				return fail("a step returned an error");
			if (mode == 0)
			{
				dlk_progress pr;

				dev->net_read(net, &pr);
				if (pr.nonfinite != (s >= 2))
					return fail("mark %d after step %d", pr.nonfinite, s);
				if (s == 2)
					memcpy(frozen, dev->net_params(net), np * sizeof(float));
				if (s > 2 && memcmp(frozen, dev->net_params(net), np * sizeof(float)) != 0)
					return fail("a marked network changed");
				if (pr.steps != (s < 2 ? s + 1 : 2) || pr.submitted != s + 1)
					return fail("steps %lld submitted %lld after step %d",
								(long long) pr.steps, (long long) pr.submitted, s);
			}
		}
		dev->net_read(net, &last[mode]);
		params[mode] = malloc(np * sizeof(float));
		dev->params_read(net, params[mode]);
		/* reset zeroes the sums, not the mark */
		dev->net_reset(net);
		{
			dlk_progress pr;

			dev->net_read(net, &pr);
			if (pr.loss_sum != 0 || pr.rows != 0 || pr.steps != 0 || !pr.nonfinite)
				return fail("reset");
		}
		free(frozen);
		dev->batch_free(b);
		dev->net_free(net);
	}
	if (memcmp(&last[0], &last[1], sizeof(dlk_progress)) != 0 ||
		memcmp(params[0], params[1], np * sizeof(float)) != 0)
		return fail("reading every step and once differ");
	if (last[0].nonfinite_step != 2 || last[0].rows != 2 * B)
		return fail("mark at %lld, rows %lld", (long long) last[0].nonfinite_step,
					(long long) last[0].rows);
	free(params[0]);
	free(params[1]);
	return 1;
}

/* every block is given back; a refused allocation is DLK_ENOMEM, leak-free */
static int
test_allocator(void)
{
	dlk_arch	a = arch_of(10, 4, 3, DLK_LOSS_MSE, DLK_ACT_RELU);
	dlk_opt		o = opt_of(DLK_OPT_SGD, 0.1f);
	const dlk_device *dev = &dlk_device_reference;
	dlk_dnet   *net = NULL,
			   *inf = NULL;
	dlk_batch  *b = NULL;
	dlk_dfused *f = NULL;
	counting	before = cnt;
	size_t		bytes;

	if (dev->net_bind(&alloc, &a, 8, &o, &net) != DLK_OK ||
		dev->net_bind_infer(&alloc, &a, 8, dev->net_params(net), &inf) != DLK_OK ||
		dev->batch_create(&alloc, 8, 10, 3, &b) != DLK_OK ||
		dev->fused_bind(&alloc, &net, 1, 8, &f) != DLK_OK)
		return fail("bind failed");
	if (dev->net_bytes(&a, 8, &o, &bytes) != DLK_OK || bytes < 4 * 80)
		return fail("net_bytes");
	if (dev->init_params(inf, 1, DLK_INIT_HE_GLOROT) != DLK_EINVAL ||
		dev->net_bind(&alloc, &a, 8, NULL, &inf) != DLK_EINVAL)
		return fail("an inference network accepted training calls");
	dev->fused_free(f);
	dev->batch_free(b);
	dev->net_free(inf);
	dev->net_free(net);
	if (cnt.allocs - before.allocs != cnt.frees - before.frees)
		return fail("%ld blocks taken, %ld given back", cnt.allocs - before.allocs,
					cnt.frees - before.frees);
	for (long r = 0; r < 3; r++)
	{
		before = cnt;
		cnt.refuse_after = cnt.allocs + r;
		net = (dlk_dnet *) 1;
		if (dev->net_bind(&alloc, &a, 8, &o, &net) != DLK_ENOMEM || net != NULL)
			return fail("refusal %ld: not DLK_ENOMEM", r);
		cnt.refuse_after = -1;
		if (cnt.allocs - before.allocs != cnt.frees - before.frees)
			return fail("refusal %ld leaked", r);
	}
	return 1;
}

static int	abort_now = 0;
static int
abort_cb(void *arg)
{
	(void) arg;
	return abort_now;
}

static int
test_abort(void)
{
	dlk_arch	a = arch_of(20, 8, 3, DLK_LOSS_SOFTMAX_CE, DLK_ACT_RELU);
	dlk_opt		o = opt_of(DLK_OPT_SGD, 0.1f);
	const dlk_device *dev = &dlk_device_reference;
	dlk_dnet   *net;
	dlk_batch  *b;
	double		l,
				s;
	int			ok = 1;

	dev->net_bind(&alloc, &a, 8, &o, &net);
	dev->batch_create(&alloc, 8, 20, 3, &b);
	dev->init_params(net, 1, DLK_INIT_HE_GLOROT);
	make_batch(b->x, b->y, b->t, 8, 20, 3, 1);
	dev->batch_upload(b, 8);
	dlk_set_abort(abort_cb, NULL);
	abort_now = 1;
	if (dev->train_step(net, b, 8) != DLK_EABORT)
		ok = fail("a step did not stop");
	if (ok && dev->net_eval(net, b, 8, &l, &s) != DLK_EABORT)
		ok = fail("eval did not stop");
	abort_now = 0;
	dlk_set_abort(NULL, NULL);
	dev->batch_free(b);
	dev->net_free(net);
	return ok;
}

/* inference bind: predict equals dlk_forward of a network over the same params */
static int
test_infer(void)
{
	enum
	{
	B = 33, D = 12, C = 4};
	dlk_arch	a = arch_of(D, 7, C, DLK_LOSS_SOFTMAX_CE, DLK_ACT_SIGMOID);
	dlk_opt		o = opt_of(DLK_OPT_SGD, 0.1f);
	const dlk_device *devs[2] = {&dlk_device_reference, &dlk_device_cpu};

	for (int v = 0; v < 2; v++)
		for (int mb = 1; mb <= B; mb += B - 1)
		{
			const dlk_device *dev = devs[v];
			dlk_dnet   *tr,
					   *inf;
			dlk_batch  *b;
			direct		d;
			float		out[B * C],
						want[B * C];
			const float *y;

			dev->net_bind(&alloc, &a, B, &o, &tr);
			dev->init_params(tr, 9, DLK_INIT_FANIN);
			if (dev->net_bind_infer(&alloc, &a, mb, dev->net_params(tr), &inf) != DLK_OK)
				return fail("inference bind failed");
			dev->batch_create(&alloc, mb, D, C, &b);
			make_batch(b->x, b->y, b->t, mb, D, C, 4);
			dev->batch_upload(b, mb);
			if (dev->net_predict(inf, b, mb, out) != DLK_OK)
				return fail("predict failed");
			/* the scorer's former bind: uncut BLAS for batches, reference for one row */
			direct_bind(&d, &a, mb, v == 1 && mb > 1 ? DLK_BLAS_UNCUT : 0, DLK_OPT_SGD);
			memcpy(d.p, dev->net_params(tr), dev->n_params(tr) * sizeof(float));
			y = dlk_forward(&d.net, b->x, mb);
			dlk_softmax_rows(want, y, mb, C);
			if (memcmp(out, want, sizeof(float) * mb * C) != 0)
				return fail("%s, %d rows: predict differs", dev->name, mb);
			direct_free(&d);
			dev->batch_free(b);
			dev->net_free(inf);
			dev->net_free(tr);
		}
	return 1;
}

/*
 * Frozen layers through the device (net_freeze, net_forward_to): with SGD
 * (momentum and weight decay), Adam (weight decay) and AdamW, 1 or 2 of 3
 * layers frozen, on both devices and at 1 and 3 threads: the frozen
 * parameters keep their bits after 6 steps while the rest move, and a
 * second network stepped from the materialized features (from_features 1)
 * ends with the same parameters, optimizer state, loss sum and eval, bit
 * for bit.
 */
static int
test_frozen(void)
{
	enum
	{
		B = 9, D = 6, C = 3, STEPS = 6
	};
	const dlk_device *devs[2] = {&dlk_device_cpu, &dlk_device_reference};
	dlk_arch	a;
	float		x[B * D],
				t[B * C],
				f[B * 8];
	int32_t		y[B];

	memset(&a, 0, sizeof(a));
	a.n_layers = 3;
	a.dims[0] = D;
	a.dims[1] = 8;
	a.dims[2] = 5;
	a.dims[3] = C;
	a.act = DLK_ACT_TANH;
	a.loss = DLK_LOSS_SOFTMAX_CE;
	for (int di = 0; di < 2; di++)
		for (int ok = DLK_OPT_SGD; ok <= DLK_OPT_ADAMW; ok++)
			for (int N = 1; N <= 2; N++)
			{
				const dlk_device *dev = devs[di];
				dlk_opt		o = opt_of((dlk_opt_kind) ok, 0.05f);
				dlk_dnet   *full,
						   *head;
				dlk_batch  *bx,
						   *bf;
				float	   *p0,
						   *p1,
						   *p2,
						   *s1,
						   *s2;
				size_t		np,
							ns,
							off = 0;
				int64_t		st1,
							st2;
				dlk_progress g1,
							g2;
				double		l1,
							l2,
							c1,
							c2;

				o.weight_decay = 0.01f;
				if (dev->net_bind(&alloc, &a, B, &o, &full) != DLK_OK ||
					dev->net_bind(&alloc, &a, B, &o, &head) != DLK_OK ||
					dev->batch_create(&alloc, B, D, C, &bx) != DLK_OK ||
					dev->batch_create(&alloc, B, a.dims[N], C, &bf) != DLK_OK)
					return fail("bind");
				dev->init_params(full, 5, DLK_INIT_HE_GLOROT);
				np = dev->n_params(full);
				ns = dev->n_opt_state(full);
				p0 = malloc(np * sizeof(float));
				p1 = malloc(np * sizeof(float));
				p2 = malloc(np * sizeof(float));
				s1 = malloc(ns * sizeof(float));
				s2 = malloc(ns * sizeof(float));
				dev->params_read(full, p0);
				dev->params_write(head, p0);
				if (dev->net_freeze(full, N, 0) != DLK_OK || dev->net_freeze(head, N, 1) != DLK_OK)
					return fail("freeze");
				for (int l = 0; l < N; l++)
					off += (size_t) a.dims[l + 1] * (a.dims[l] + 1);
				for (int s = 0; s < STEPS; s++)
				{
					int			n = s == STEPS - 1 ? B - 2 : B;

					make_batch(x, y, t, B, D, C, 40 + s);
					memcpy(bx->x, x, sizeof(x));
					memcpy(bx->y, y, sizeof(y));
					dev->batch_upload(bx, n);
					if (dev->net_forward_to(full, bx, n, N, f) != DLK_OK)
						return fail("forward_to");
					memcpy(bf->x, f, sizeof(float) * n * a.dims[N]);
					memcpy(bf->y, y, sizeof(y));
					dev->batch_upload(bf, n);
					if (dev->train_step(full, bx, n) != DLK_OK || dev->train_step(head, bf, n) != DLK_OK)
						return fail("step");
				}
				dev->params_read(full, p1);
				dev->params_read(head, p2);
				dev->state_read(full, s1, &st1);
				dev->state_read(head, s2, &st2);
				dev->net_read(full, &g1);
				dev->net_read(head, &g2);
				dev->net_eval(full, bx, B, &l1, &c1);
				dev->net_eval(head, bf, B - 2, &l2, &c2);
				if (memcmp(p0, p1, off * sizeof(float)) != 0)
					return fail("%s opt %d N=%d: a frozen parameter moved", dev->name, ok, N);
				if (memcmp(p0 + off, p1 + off, (np - off) * sizeof(float)) == 0)
					return fail("%s opt %d N=%d: the head did not train", dev->name, ok, N);
				if (memcmp(p1, p2, np * sizeof(float)) != 0 || memcmp(s1, s2, ns * sizeof(float)) != 0 ||
					st1 != st2 || g1.loss_sum != g2.loss_sum || g1.rows != g2.rows)
					return fail("%s opt %d N=%d: from the features differs", dev->name, ok, N);
				{
					dlk_dfused *fz = NULL;

					if (dev->fused_bind(&alloc, &full, 1, B, &fz) != DLK_EINVAL || fz != NULL)
						return fail("fused_bind of a frozen network");
				}
				(void) l1; (void) l2; (void) c1; (void) c2;
				free(p0); free(p1); free(p2); free(s1); free(s2);
				dev->batch_free(bx);
				dev->batch_free(bf);
				dev->net_free(full);
				dev->net_free(head);
			}
	return 1;
}

static int
test_names_argmax(void)
{
	const float p[] = {1, 3, -2, 3, 0};

	if (dlk_device_find("cpu") != &dlk_device_cpu ||
		dlk_device_find("reference") != &dlk_device_reference ||
		dlk_device_find("cuda") != NULL || dlk_device_find(NULL) != NULL)
		return fail("dlk_device_find");
	if (dlk_device_cpu.abi != DLK_DEVICE_ABI)
		return fail("abi");
	if (dlk_argmax(p, 5) != 1 || dlk_argmax(p, 1) != 0 || dlk_argmax(p + 2, 3) != 1)
		return fail("argmax");
	return 1;
}

int
main(void)
{
	char		err[256];

	/* the cpu device needs no BLAS library; open it as the extension does */
	if (dlk_blas_open(getenv("DLK_TEST_BLAS"), err, sizeof(err)) != DLK_OK)
		printf("note  BLAS library not available (%s)\n", err);

	run_test("device_names_argmax", test_names_argmax);
	run_test("device_cpu_same_as_direct", test_cpu_same);
	run_test("device_reference_same_as_direct", test_reference_same);
	run_test("device_reference_vs_cpu", test_reference_vs_cpu);
	run_test("device_fused_k3", test_fused);
	run_test("device_fused_equals_alone_k1_5_threads1_4", test_fused_alone);
	dlk_pool_configure(3, 3);
	run_test("device_fused_k3_pool3", test_fused);
	run_test("device_cpu_same_as_direct_pool3", test_cpu_same);
	dlk_pool_configure(1, 1);
	run_test("device_nonfinite_sticky", test_nonfinite_sticky);
	run_test("device_allocator", test_allocator);
	run_test("device_abort", test_abort);
	run_test("device_infer", test_infer);
	run_test("device_frozen", test_frozen);
	dlk_pool_configure(3, 3);
	run_test("device_frozen_pool3", test_frozen);
	dlk_pool_configure(1, 1);

	printf("device: %d passed, %d failed\n", n_passed, n_failed);
	return n_failed > 0 ? 1 : 0;
}
