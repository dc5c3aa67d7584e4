/*
 * dlk_device_cpu.c — the host devices of dlk_device.h: "cpu" (the exact
 * GEMMs of dlk_gemm.c, each product cut over the pool's threads; fused
 * and alone give the same bits, at any thread count) and "reference" (the
 * plain reference kernels).  Both run today's kernels on the caller's thread and
 * the pool's helpers, synchronously: a step has finished when it returns,
 * batch_upload is a no-op, and net_read only copies the counters.
 *
 * Memory.  A network takes from the glue's allocator: its dlk_dnet (the
 * dlk_net, the optimizer, the counters), then its parameters, then one
 * block for the gradients, the optimizer state and the activations (the
 * sizes of dlk_sizes_for).  An inference network takes the dlk_dnet and
 * the activations only, and reads the caller's parameters in place.  A batch
 * takes one block; fused work one block.  Each *_free gives them back
 * through allocator->free when the glue supplied one; with a memory context
 * the glue may instead just reset the context.  Nothing else is held, so
 * an error or a cancel needs no other release.
 */
#include "dlk.h"
#include "dlk_device.h"
#include "dlk_internal.h"

#include <math.h>
#include <string.h>

struct dlk_dnet
{
	dlk_net		net;
	dlk_opt		opt;
	dlk_allocator alloc;
	const dlk_device *dev;
	int			train;			/* 1: gradients and optimizer state */
	float	   *params_mem;		/* what we allocated (NULL when borrowed) */
	float	   *state_mem;		/* grads, opt state and work, or work only */
	dlk_progress prog;
};

struct dlk_dfused
{
	dlk_allocator alloc;
	const dlk_device *dev;
	int			K;
	int			D;
	int			max_batch;
	size_t		work_floats;
	float	   *work;
	dlk_net   **nets;			/* [K]: the live networks of a step */
	const dlk_opt **opts;
	dlk_dnet  **who;
	double	   *losses;
	dlk_status *status;
	int64_t    *index;			/* each live network's step index */
};

typedef struct cpu_batch
{
	dlk_batch	b;				/* first: a dlk_batch * is a cpu_batch * */
	dlk_allocator alloc;
	void	   *mem;
} cpu_batch;

static void *
take(const dlk_allocator *a, size_t bytes)
{
	return a->alloc(a->ctx, bytes > 0 ? bytes : 1);
}

static void
give(const dlk_allocator *a, void *p)
{
	if (p != NULL && a->free != NULL)
		a->free(a->ctx, p);
}

/* bytes = sizeof(float) * floats, failing on overflow */
static int
float_bytes(size_t floats, size_t *bytes)
{
	if (floats > SIZE_MAX / sizeof(float))
		return 0;
	*bytes = floats * sizeof(float);
	return 1;
}

/* ---- sizes ---- */

/* Floats of the block after the parameters: grads, opt state, work. */
static dlk_status
block_floats(const dlk_arch *arch, int max_batch, const dlk_opt *opt,
			 size_t *params, size_t *block)
{
	dlk_sizes	sz;
	dlk_status	st;

	st = dlk_sizes_for(&sz, arch, max_batch, opt ? opt->kind : DLK_OPT_SGD);
	if (st != DLK_OK)
		return st;
	*params = sz.n_params;
	*block = sz.n_work;
	if (opt != NULL)
	{
		if (*block > SIZE_MAX - sz.n_params ||
			*block + sz.n_params > SIZE_MAX - sz.n_opt_state)
			return DLK_EINVAL;
		*block += sz.n_params + sz.n_opt_state;
	}
	return DLK_OK;
}

static dlk_status
cpu_net_bytes(const dlk_arch *arch, int max_batch, const dlk_opt *opt,
			  size_t *bytes)
{
	size_t		np,
				nb,
				b1,
				b2;
	dlk_status	st;

	if (bytes == NULL)
		return DLK_EINVAL;
	if ((st = block_floats(arch, max_batch, opt, &np, &nb)) != DLK_OK)
		return st;
	if (!float_bytes(nb, &b2))
		return DLK_EINVAL;
	b1 = 0;
	if (opt != NULL && !float_bytes(np, &b1))
		return DLK_EINVAL;
	if (b1 > SIZE_MAX - b2 - sizeof(dlk_dnet))
		return DLK_EINVAL;
	*bytes = sizeof(dlk_dnet) + b1 + b2;
	return DLK_OK;
}

/* Layout of a batch block: x [cap x D], t [cap x C], y [cap]. */
static dlk_status
batch_floats(int cap, int D, int C, size_t *floats)
{
	size_t		w;

	if (cap < 1 || D < 1 || C < 1 || D > DLK_MAX_WIDTH || C > DLK_MAX_WIDTH)
		return DLK_EINVAL;
	w = (size_t) D + (size_t) C + 1;	/* int32 and float have one size */
	if ((size_t) cap > SIZE_MAX / sizeof(float) / w)
		return DLK_EINVAL;
	*floats = (size_t) cap * w;
	return DLK_OK;
}

static dlk_status
cpu_batch_bytes(int cap, int D, int C, size_t *bytes)
{
	size_t		f;
	dlk_status	st;

	if (bytes == NULL)
		return DLK_EINVAL;
	if ((st = batch_floats(cap, D, C, &f)) != DLK_OK)
		return st;
	*bytes = sizeof(cpu_batch) + f * sizeof(float);
	return DLK_OK;
}

/* ---- networks ---- */

static void
cpu_net_free(dlk_dnet *d)
{
	dlk_allocator a;

	if (d == NULL)
		return;
	a = d->alloc;
	give(&a, d->state_mem);
	give(&a, d->params_mem);
	give(&a, d);
}

/* use_blas of a training network, and of an inference one of max_batch rows */
static int
train_blas(const dlk_device *dev)
{
	return dev == &dlk_device_cpu ? 1 : 0;
}

static int
infer_blas(const dlk_device *dev, int max_batch)
{
	/* as the scorer did: one uncut product a batch, a single row by reference */
	return dev == &dlk_device_cpu && max_batch > 1 ? DLK_BLAS_UNCUT : 0;
}

static dlk_status
net_bind_common(const dlk_device *dev, const dlk_allocator *a,
				const dlk_arch *arch, int max_batch, const dlk_opt *opt,
				const float *params, dlk_dnet **out)
{
	size_t		np,
				nb,
				bytes;
	dlk_dnet   *d;
	float	   *grads = NULL,
			   *state = NULL,
			   *work;
	dlk_status	st;
	dlk_fpmode	fp;

	if (out == NULL || a == NULL || a->alloc == NULL)
		return DLK_EINVAL;
	*out = NULL;
	if (opt != NULL && ((int) opt->kind < (int) DLK_OPT_SGD ||
						(int) opt->kind > (int) DLK_OPT_ADAMW))
		return DLK_EINVAL;
	if ((st = block_floats(arch, max_batch, opt, &np, &nb)) != DLK_OK)
		return st;

	d = take(a, sizeof(*d));
	if (d == NULL)
		return DLK_ENOMEM;
	memset(d, 0, sizeof(*d));
	d->alloc = *a;
	d->dev = dev;
	d->train = opt != NULL;
	d->prog.nonfinite_step = -1;
	if (opt != NULL)
	{
		d->opt = *opt;
		if (!float_bytes(np, &bytes) || (d->params_mem = take(a, bytes)) == NULL)
		{
			cpu_net_free(d);
			return DLK_ENOMEM;
		}
		params = d->params_mem;
	}
	if (!float_bytes(nb, &bytes) || (d->state_mem = take(a, bytes)) == NULL)
	{
		cpu_net_free(d);
		return DLK_ENOMEM;
	}
	if (opt != NULL)
	{
		dlk_sizes	sz;

		(void) dlk_sizes_for(&sz, arch, max_batch, opt->kind);
		grads = d->state_mem;
		state = grads + sz.n_params;
		work = state + sz.n_opt_state;
	}
	else
		work = d->state_mem;

	fp = dlk_fp_enter();
	st = dlk_net_bind(&d->net, arch, max_batch,
					  opt != NULL ? train_blas(dev) : infer_blas(dev, max_batch),
					  (float *) params, grads, state, work);
	dlk_fp_leave(fp);
	if (st != DLK_OK)
	{
		cpu_net_free(d);
		return st;
	}
	*out = d;
	return DLK_OK;
}

static dlk_status
cpu_net_bind(const dlk_allocator *a, const dlk_arch *arch, int max_batch,
			 const dlk_opt *opt, dlk_dnet **out)
{
	if (opt == NULL)
		return DLK_EINVAL;
	return net_bind_common(&dlk_device_cpu, a, arch, max_batch, opt, NULL, out);
}

static dlk_status
ref_net_bind(const dlk_allocator *a, const dlk_arch *arch, int max_batch,
			 const dlk_opt *opt, dlk_dnet **out)
{
	if (opt == NULL)
		return DLK_EINVAL;
	return net_bind_common(&dlk_device_reference, a, arch, max_batch, opt, NULL, out);
}

static dlk_status
cpu_net_bind_infer(const dlk_allocator *a, const dlk_arch *arch, int max_batch,
				   const float *params, dlk_dnet **out)
{
	if (params == NULL)
		return DLK_EINVAL;
	return net_bind_common(&dlk_device_cpu, a, arch, max_batch, NULL, params, out);
}

static dlk_status
ref_net_bind_infer(const dlk_allocator *a, const dlk_arch *arch, int max_batch,
				   const float *params, dlk_dnet **out)
{
	if (params == NULL)
		return DLK_EINVAL;
	return net_bind_common(&dlk_device_reference, a, arch, max_batch, NULL, params, out);
}

static size_t
cpu_n_params(const dlk_dnet *d)
{
	return d ? d->net.n_params : 0;
}

static float *
cpu_net_params(dlk_dnet *d)
{
	return d ? d->net.params : NULL;
}

static dlk_status
cpu_params_read(dlk_dnet *d, float *dst)
{
	if (d == NULL || dst == NULL)
		return DLK_EINVAL;
	memcpy(dst, d->net.params, d->net.n_params * sizeof(float));
	return DLK_OK;
}

static dlk_status
cpu_params_write(dlk_dnet *d, const float *src)
{
	if (d == NULL || src == NULL || !d->train)
		return DLK_EINVAL;
	if (src != d->net.params)
		memcpy(d->net.params, src, d->net.n_params * sizeof(float));
	return DLK_OK;
}

static dlk_status
cpu_init_params(dlk_dnet *d, uint64_t seed, dlk_init kind)
{
	if (d == NULL || !d->train)
		return DLK_EINVAL;
	switch (kind)
	{
		case DLK_INIT_HE_GLOROT:
			return dlk_init_params(&d->net, seed);
		case DLK_INIT_FANIN:
			return dlk_init_params_fanin(&d->net, seed);
	}
	return DLK_EINVAL;
}

/* ---- batches ---- */

static dlk_status
cpu_batch_create(const dlk_allocator *a, int cap, int D, int C, dlk_batch **out)
{
	size_t		f;
	cpu_batch  *cb;
	float	   *mem;
	dlk_status	st;

	if (out == NULL || a == NULL || a->alloc == NULL)
		return DLK_EINVAL;
	*out = NULL;
	if ((st = batch_floats(cap, D, C, &f)) != DLK_OK)
		return st;
	if ((cb = take(a, sizeof(*cb))) == NULL)
		return DLK_ENOMEM;
	memset(cb, 0, sizeof(*cb));
	cb->alloc = *a;
	if ((mem = take(a, f * sizeof(float))) == NULL)
	{
		give(a, cb);
		return DLK_ENOMEM;
	}
	cb->mem = mem;
	cb->b.x = mem;
	cb->b.t = mem + (size_t) cap * D;
	cb->b.y = (int32_t *) (cb->b.t + (size_t) cap * C);
	cb->b.cap = cap;
	cb->b.D = D;
	cb->b.C = C;
	cb->b.n = 0;
	cb->b.priv = cb;
	*out = &cb->b;
	return DLK_OK;
}

static void
cpu_batch_free(dlk_batch *b)
{
	cpu_batch  *cb;
	dlk_allocator a;

	if (b == NULL)
		return;
	cb = (cpu_batch *) b;
	a = cb->alloc;
	give(&a, cb->mem);
	give(&a, cb);
}

static dlk_status
cpu_batch_upload(dlk_batch *b, int n)
{
	if (b == NULL || n < 0 || n > b->cap)
		return DLK_EINVAL;
	b->n = n;
	return DLK_OK;
}

/* ---- steps ---- */

static int
is_cls(const dlk_dnet *d)
{
	return d->net.arch.loss == DLK_LOSS_SOFTMAX_CE;
}

/* A step of d on b's first n rows fits? */
static int
step_fits(const dlk_dnet *d, const dlk_batch *b, int n)
{
	const dlk_arch *a = &d->net.arch;

	return d->train && b != NULL && n >= 1 && n <= b->n &&
		n <= d->net.max_batch && b->D == a->dims[d->net.start] &&
		(is_cls(d) || b->C == a->dims[a->n_layers]);
}

/* The outcome of step index idx of d: counted, marked, or an error. */
static dlk_status
account(dlk_dnet *d, dlk_status st, double loss, int n, int64_t idx)
{
	if (st == DLK_ENONFINITE)
	{
		d->prog.nonfinite = 1;
		d->prog.nonfinite_step = idx;
		return DLK_OK;
	}
	if (st != DLK_OK)
		return st;
	/* the glue's former loss_sum += loss * bs, step after step */
	d->prog.loss_sum += loss * n;
	d->prog.rows += n;
	d->prog.steps++;
	return DLK_OK;
}

/* One step, its index already taken; in the floating-point mode set. */
static dlk_status
step_one(dlk_dnet *d, dlk_batch *b, int n, int64_t idx)
{
	double		loss = 0;
	dlk_status	st;

	if (d->prog.nonfinite)
		return DLK_OK;
	st = dlk_train_step(&d->net, b->x, is_cls(d) ? b->y : NULL,
						is_cls(d) ? NULL : b->t, n, &d->opt, &loss);
	return account(d, st, loss, n, idx);
}

static dlk_status
cpu_train_step(dlk_dnet *d, dlk_batch *b, int n)
{
	dlk_fpmode	fp;
	dlk_status	st;

	if (d == NULL || !step_fits(d, b, n))
		return DLK_EINVAL;
	fp = dlk_fp_enter();
	st = step_one(d, b, n, d->prog.submitted++);
	dlk_fp_leave(fp);
	return st;
}

static void
cpu_fused_free(dlk_dfused *f)
{
	dlk_allocator a;

	if (f == NULL)
		return;
	a = f->alloc;
	give(&a, f->work);
	give(&a, f->nets);
	give(&a, f);
}

static dlk_status
cpu_fused_bind(const dlk_allocator *a, dlk_dnet *const *nets, int K,
			   int max_batch, dlk_dfused **out)
{
	dlk_dfused *f;
	dlk_net   **tmp;
	size_t		per,
				bytes;
	char	   *p;

	if (out == NULL || a == NULL || a->alloc == NULL || nets == NULL || K < 1 ||
		max_batch < 1)
		return DLK_EINVAL;
	*out = NULL;
	for (int k = 0; k < K; k++)
		if (nets[k] == NULL || !nets[k]->train || nets[k]->dev != nets[0]->dev ||
			nets[k]->net.arch.dims[0] != nets[0]->net.arch.dims[0] ||
			max_batch > nets[k]->net.max_batch || nets[k]->net.frozen != 0)
			return DLK_EINVAL;
	if ((f = take(a, sizeof(*f))) == NULL)
		return DLK_ENOMEM;
	memset(f, 0, sizeof(*f));
	f->alloc = *a;
	f->dev = nets[0]->dev;
	f->K = K;
	f->D = nets[0]->net.arch.dims[0];
	f->max_batch = max_batch;
	/* the per-network arrays in one block */
	per = sizeof(dlk_net *) + sizeof(dlk_opt *) + sizeof(dlk_dnet *) +
		sizeof(double) + sizeof(dlk_status) + sizeof(int64_t);
	if ((p = take(a, per * (size_t) K + 64)) == NULL)
	{
		cpu_fused_free(f);
		return DLK_ENOMEM;
	}
	f->nets = (dlk_net **) p;
	f->losses = (double *) (p + sizeof(dlk_net *) * (size_t) K);
	f->index = (int64_t *) (f->losses + K);
	f->opts = (const dlk_opt **) (f->index + K);
	f->who = (dlk_dnet **) (f->opts + K);
	f->status = (dlk_status *) (f->who + K);
	/* the work for all K at max_batch rows bounds that of any subset */
	tmp = f->nets;
	for (int k = 0; k < K; k++)
		tmp[k] = &nets[k]->net;
	f->work_floats = dlk_fused_work_size(tmp, K, max_batch);
	if (!float_bytes(f->work_floats, &bytes) || (f->work = take(a, bytes)) == NULL)
	{
		cpu_fused_free(f);
		return DLK_ENOMEM;
	}
	*out = f;
	return DLK_OK;
}

static dlk_status
cpu_train_step_fused(dlk_dfused *f, dlk_dnet *const *nets, int K,
					 dlk_batch *b, int n)
{
	int			ks = 0;
	dlk_status	st = DLK_OK;
	dlk_fpmode	fp;

	if (f == NULL || nets == NULL || K < 1 || K > f->K || n > f->max_batch)
		return DLK_EINVAL;
	for (int k = 0; k < K; k++)
		if (nets[k] == NULL || nets[k]->dev != f->dev ||
			nets[k]->net.arch.dims[0] != f->D || !step_fits(nets[k], b, n))
			return DLK_EINVAL;

	/* the networks still finite step; the marked ones are left out */
	for (int k = 0; k < K; k++)
	{
		int64_t		idx = nets[k]->prog.submitted++;

		if (nets[k]->prog.nonfinite)
			continue;
		f->who[ks] = nets[k];
		f->nets[ks] = &nets[k]->net;
		f->opts[ks] = &nets[k]->opt;
		f->index[ks] = idx;
		ks++;
	}
	if (ks == 0)
		return DLK_OK;
	fp = dlk_fp_enter();
	if (ks == 1)
		st = step_one(f->who[0], b, n, f->index[0]);
	else if (dlk_fused_work_size(f->nets, ks, n) > f->work_floats)
		st = DLK_EINVAL;
	else
	{
		st = dlk_train_step_fused(f->nets, f->opts, ks, b->x,
								  is_cls(f->who[0]) ? b->y : NULL,
								  is_cls(f->who[0]) ? NULL : b->t, n, f->work,
								  f->losses, f->status);
		for (int j = 0; j < ks && st == DLK_OK; j++)
			st = account(f->who[j], f->status[j], f->losses[j], n, f->index[j]);
	}
	dlk_fp_leave(fp);
	return st;
}

static dlk_status
cpu_net_read(dlk_dnet *d, dlk_progress *out)
{
	if (d == NULL || out == NULL)
		return DLK_EINVAL;
	*out = d->prog;
	return DLK_OK;
}

static dlk_status
cpu_net_reset(dlk_dnet *d)
{
	if (d == NULL)
		return DLK_EINVAL;
	d->prog.loss_sum = 0;
	d->prog.rows = 0;
	d->prog.steps = 0;
	return DLK_OK;
}

/* ---- evaluation and prediction ---- */

/* Forward pass of b's first n rows; the output [n x C] or NULL (*st says). */
static const float *
forward_batch(dlk_dnet *d, dlk_batch *b, int n, dlk_status *st)
{
	if (d == NULL || b == NULL || n < 1 || n > b->n || n > d->net.max_batch ||
		b->D != d->net.arch.dims[d->net.start])
	{
		*st = DLK_EINVAL;
		return NULL;
	}
	if ((*st = dlk_net_forward_from(&d->net, b->x, n)) != DLK_OK)
		return NULL;
	return d->net.act[d->net.arch.n_layers - 1];
}

static dlk_status
cpu_net_eval(dlk_dnet *d, dlk_batch *b, int n, double *loss, double *score)
{
	const float *out;
	dlk_status	st;
	dlk_fpmode	fp;
	int			C;

	if (loss == NULL || score == NULL)
		return DLK_EINVAL;
	fp = dlk_fp_enter();
	out = forward_batch(d, b, n, &st);
	if (out != NULL)
	{
		C = d->net.arch.dims[d->net.arch.n_layers];
		*loss = 0;
		*score = 0;
		if (is_cls(d))
		{
			st = dlk_softmax_ce(loss, NULL, out, b->y, n, C);
			for (int i = 0; i < n && st == DLK_OK; i++)
				*score += dlk_argmax(out + (size_t) i * C, C) == b->y[i];
		}
		else if (b->C != C)
			st = DLK_EINVAL;
		else
		{
			dlk_mse(loss, NULL, out, b->t, n, C);
			*score = *loss * n * C;
		}
	}
	dlk_fp_leave(fp);
	return st;
}

static dlk_status
cpu_net_predict(dlk_dnet *d, dlk_batch *b, int n, float *dst)
{
	const float *out;
	dlk_status	st;
	dlk_fpmode	fp;
	int			C;

	if (dst == NULL)
		return DLK_EINVAL;
	fp = dlk_fp_enter();
	out = forward_batch(d, b, n, &st);
	if (out != NULL)
	{
		C = d->net.arch.dims[d->net.arch.n_layers];
		if (is_cls(d))
			dlk_softmax_rows(dst, out, n, C);
		else
			memcpy(dst, out, sizeof(float) * (size_t) n * C);
	}
	dlk_fp_leave(fp);
	return st;
}

/* ---- frozen layers ---- */

static dlk_status
cpu_net_freeze(dlk_dnet *d, int frozen, int from_features)
{
	if (d == NULL || !d->train || d->prog.submitted > 0)
		return DLK_EINVAL;
	return dlk_net_freeze(&d->net, frozen, from_features ? frozen : 0);
}

static dlk_status
cpu_net_forward_to(dlk_dnet *d, dlk_batch *b, int n, int layers, float *dst)
{
	const float *out;
	dlk_fpmode	fp;

	if (d == NULL || b == NULL || dst == NULL || n < 1 || n > b->n ||
		n > d->net.max_batch || d->net.start != 0 || b->D != d->net.arch.dims[0] ||
		layers < 1 || layers >= d->net.arch.n_layers)
		return DLK_EINVAL;
	fp = dlk_fp_enter();
	out = dlk_forward_to(&d->net, b->x, n, layers);
	if (out != NULL)
		memcpy(dst, out, sizeof(float) * (size_t) n * d->net.arch.dims[layers]);
	dlk_fp_leave(fp);
	/* the arguments were checked: NULL means the abort callback said stop */
	return out != NULL ? DLK_OK : DLK_EABORT;
}

/* ---- the devices ---- */

static dlk_status
cpu_net_count_predictions(dlk_dnet *d, int64_t *counts)
{
	if (d == NULL || !d->train || d->net.arch.loss != DLK_LOSS_SOFTMAX_CE)
		return DLK_EINVAL;
	d->net.pred_counts = counts;
	return DLK_OK;
}

static size_t
cpu_n_opt_state(const dlk_dnet *d)
{
	dlk_sizes	sz;

	if (d == NULL || !d->train ||
		dlk_sizes_for(&sz, &d->net.arch, d->net.max_batch, d->opt.kind) != DLK_OK)
		return 0;
	return sz.n_opt_state;
}

static dlk_status
cpu_state_read(dlk_dnet *d, float *dst, int64_t *step)
{
	size_t		n = cpu_n_opt_state(d);

	if (n == 0 || dst == NULL || step == NULL)
		return DLK_EINVAL;
	*step = d->net.step;
	if (d->net.step == 0)
		memset(dst, 0, n * sizeof(float));	/* Adam's second slot is unset before step 1 */
	else
		memcpy(dst, d->net.opt_state, n * sizeof(float));
	return DLK_OK;
}

static dlk_status
cpu_state_write(dlk_dnet *d, const float *src, int64_t step)
{
	size_t		n = cpu_n_opt_state(d);

	if (n == 0 || src == NULL || step < 0)
		return DLK_EINVAL;
	memcpy(d->net.opt_state, src, n * sizeof(float));
	d->net.step = (long) step;
	return DLK_OK;
}

const dlk_device dlk_device_cpu = {
	.name = "cpu",
	.abi = DLK_DEVICE_ABI,
	.net_bytes = cpu_net_bytes,
	.batch_bytes = cpu_batch_bytes,
	.net_bind = cpu_net_bind,
	.net_bind_infer = cpu_net_bind_infer,
	.net_free = cpu_net_free,
	.n_params = cpu_n_params,
	.net_params = cpu_net_params,
	.params_read = cpu_params_read,
	.params_write = cpu_params_write,
	.init_params = cpu_init_params,
	.batch_create = cpu_batch_create,
	.batch_free = cpu_batch_free,
	.batch_upload = cpu_batch_upload,
	.train_step = cpu_train_step,
	.fused_bind = cpu_fused_bind,
	.fused_free = cpu_fused_free,
	.train_step_fused = cpu_train_step_fused,
	.net_read = cpu_net_read,
	.net_reset = cpu_net_reset,
	.net_eval = cpu_net_eval,
	.net_predict = cpu_net_predict,
	.net_count_predictions = cpu_net_count_predictions,
	.n_opt_state = cpu_n_opt_state,
	.state_read = cpu_state_read,
	.state_write = cpu_state_write,
	.net_freeze = cpu_net_freeze,
	.net_forward_to = cpu_net_forward_to,
};

const dlk_device dlk_device_reference = {
	.name = "reference",
	.abi = DLK_DEVICE_ABI,
	.net_bytes = cpu_net_bytes,
	.batch_bytes = cpu_batch_bytes,
	.net_bind = ref_net_bind,
	.net_bind_infer = ref_net_bind_infer,
	.net_free = cpu_net_free,
	.n_params = cpu_n_params,
	.net_params = cpu_net_params,
	.params_read = cpu_params_read,
	.params_write = cpu_params_write,
	.init_params = cpu_init_params,
	.batch_create = cpu_batch_create,
	.batch_free = cpu_batch_free,
	.batch_upload = cpu_batch_upload,
	.train_step = cpu_train_step,
	.fused_bind = cpu_fused_bind,
	.fused_free = cpu_fused_free,
	.train_step_fused = cpu_train_step_fused,
	.net_read = cpu_net_read,
	.net_reset = cpu_net_reset,
	.net_eval = cpu_net_eval,
	.net_predict = cpu_net_predict,
	.net_count_predictions = cpu_net_count_predictions,
	.n_opt_state = cpu_n_opt_state,
	.state_read = cpu_state_read,
	.state_write = cpu_state_write,
	.net_freeze = cpu_net_freeze,
	.net_forward_to = cpu_net_forward_to,
};

const dlk_device *
dlk_device_find(const char *name)
{
	if (name == NULL)
		return NULL;
	if (strcmp(name, dlk_device_cpu.name) == 0)
		return &dlk_device_cpu;
	if (strcmp(name, dlk_device_reference.name) == 0)
		return &dlk_device_reference;
	return NULL;
}
