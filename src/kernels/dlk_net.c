/*
 * dlk_net.c — a network over the caller's buffers: architecture checks and
 * sizes, binding, and the whole network's forward pass, loss, backward pass,
 * gradient check and training step; status strings.
 *
 * Dimension letters (as in dlk.h): B batch rows, I a layer's inputs, O a
 * layer's outputs, D the network input width, C the network output width,
 * L the number of dense layers.  Row-major everywhere; W is [O x I], b [O].
 *
 * Buffers.  Nothing here allocates.  dlk_net_bind carves the caller's buffers:
 *   params/grads:  W_0 [O0 x I0], b_0 [O0], W_1, b_1, ... (same layout)
 *   opt_state:     SGD: momentum [n_params]; Adam(W): m [n_params], v [n_params]
 *   work:          act[0] [max_batch x dims[1]], ..., act[L-1] [max_batch x C],
 *                  dbuf[0], dbuf[1], each [max_batch x Hmax], where Hmax is
 *                  the widest layer OUTPUT (dims[1..L]).  The backward pass
 *                  ping-pongs the output gradient between the two dbufs; the
 *                  input gradient of layer 0 is never formed, so D does not
 *                  size them.
 * A batch of B <= max_batch rows uses the first B rows of each buffer, packed
 * (row stride = the width), so every matrix handed to a GEMM is dense; the
 * one exception is a fused step (dlk_fused.c), where act[0] is a column
 * block of the K networks' shared first-layer output (net->ld0).
 *
 * The network input X is not copied: dlk_loss_grad and dlk_train_step take it
 * as an argument and use it both for the forward pass and for layer 0's
 * weight gradient.  Losses are accumulated in double.
 */
#include "dlk.h"
#include "dlk_internal.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Architecture and sizes
 * ------------------------------------------------------------------------ */

dlk_status
dlk_arch_check(const dlk_arch *arch)
{
	int			l;

	if (arch == NULL)
		return DLK_EINVAL;
	if (arch->n_layers < 1 || arch->n_layers > DLK_MAX_LAYERS)
		return DLK_EINVAL;
	for (l = 0; l <= arch->n_layers; l++)
		if (arch->dims[l] < 1 || arch->dims[l] > DLK_MAX_WIDTH)
			return DLK_EINVAL;
	if ((int) arch->act < (int) DLK_ACT_RELU ||
		(int) arch->act > (int) DLK_ACT_IDENTITY)
		return DLK_EINVAL;
	if ((int) arch->loss < (int) DLK_LOSS_SOFTMAX_CE ||
		(int) arch->loss > (int) DLK_LOSS_MSE)
		return DLK_EINVAL;
	/* a softmax over one class is constant: nothing to learn */
	if (arch->loss == DLK_LOSS_SOFTMAX_CE && arch->dims[arch->n_layers] < 2)
		return DLK_EINVAL;
	return DLK_OK;
}

/* *acc += a * b, failing (returning 0) on size_t overflow. */
static int
add_mul(size_t *acc, size_t a, size_t b)
{
	size_t		p;

	if (a != 0 && b > SIZE_MAX / a)
		return 0;
	p = a * b;
	if (*acc > SIZE_MAX - p)
		return 0;
	*acc += p;
	return 1;
}

/* Widest layer output, dims[1..L]: the width of the backward buffers. */
static int
max_out_width(const dlk_arch *arch)
{
	int			w = 0;
	int			l;

	for (l = 1; l <= arch->n_layers; l++)
		if (arch->dims[l] > w)
			w = arch->dims[l];
	return w;
}

dlk_status
dlk_sizes_for(dlk_sizes *out, const dlk_arch *arch, int max_batch,
			  dlk_opt_kind opt)
{
	size_t		np = 0;
	size_t		nw = 0;
	size_t		mb;
	int			l;
	dlk_status	st;

	if (out == NULL)
		return DLK_EINVAL;
	if ((st = dlk_arch_check(arch)) != DLK_OK)
		return st;
	if (max_batch < 1)
		return DLK_EINVAL;
	if ((int) opt < (int) DLK_OPT_SGD || (int) opt > (int) DLK_OPT_ADAMW)
		return DLK_EINVAL;

	mb = (size_t) max_batch;
	for (l = 0; l < arch->n_layers; l++)
	{
		size_t		in = (size_t) arch->dims[l];
		size_t		o = (size_t) arch->dims[l + 1];

		if (!add_mul(&np, o, in + 1))	/* W [O x I] and b [O] */
			return DLK_EINVAL;
		if (!add_mul(&nw, mb, o))	/* act[l] */
			return DLK_EINVAL;
	}
	if (!add_mul(&nw, 2 * mb, (size_t) max_out_width(arch)))	/* dbuf[0..1] */
		return DLK_EINVAL;

	out->n_params = np;
	out->n_opt_state = 0;
	if (!add_mul(&out->n_opt_state, opt == DLK_OPT_SGD ? 1 : 2, np))
		return DLK_EINVAL;
	out->n_work = nw;
	return DLK_OK;
}

/* Zeroes n floats, polling between pieces. */
dlk_status
dlk_zero_floats(float *p, size_t n)
{
	for (size_t k = 0; k < n; k += DLK_POLL_ELEMS)
	{
		size_t		m = n - k < DLK_POLL_ELEMS ? n - k : DLK_POLL_ELEMS;

		if (dlk_abort_poll())
			return DLK_EABORT;
		memset(p + k, 0, m * sizeof(float));
	}
	return DLK_OK;
}

dlk_status
dlk_net_bind(dlk_net *net, const dlk_arch *arch, int max_batch,
			 int use_blas, float *params, float *grads,
			 float *opt_state, float *work)
{
	dlk_sizes	sz;
	dlk_status	st;
	size_t		off = 0;
	size_t		hmax;
	int			l;

	if (net == NULL || params == NULL || work == NULL)
		return DLK_EINVAL;
	/* the optimizer kind is not known here; size for Adam, the larger */
	if ((st = dlk_sizes_for(&sz, arch, max_batch, DLK_OPT_ADAM)) != DLK_OK)
		return st;
	if (use_blas != 0 && use_blas != 1 && use_blas != DLK_BLAS_UNCUT)
		return DLK_EINVAL;

	memset(net, 0, sizeof(*net));
	net->arch = *arch;
	net->max_batch = max_batch;
	net->use_blas = use_blas;
	net->params = params;
	net->grads = grads;
	net->opt_state = opt_state;
	net->work = work;
	net->n_params = sz.n_params;
	net->step = 0;

	for (l = 0; l < arch->n_layers; l++)
	{
		size_t		in = (size_t) arch->dims[l];
		size_t		o = (size_t) arch->dims[l + 1];

		net->W[l] = params + off;
		net->b[l] = params + off + o * in;
		if (grads != NULL)
		{
			net->gW[l] = grads + off;
			net->gb[l] = grads + off + o * in;
		}
		off += o * (in + 1);
	}

	off = 0;
	for (l = 0; l < arch->n_layers; l++)
	{
		net->act[l] = work + off;
		off += (size_t) max_batch * (size_t) arch->dims[l + 1];
	}
	hmax = (size_t) max_batch * (size_t) max_out_width(arch);
	net->dbuf[0] = work + off;
	net->dbuf[1] = work + off + hmax;
	net->ld0 = arch->dims[1];
	net->dact0 = NULL;

	/*
	 * The optimizer state size depends on the optimizer, unknown here: zero
	 * the m slot always, and v only for Adam, whose dlk_sizes_for says 2 *
	 * n_params.  The caller passes a buffer of n_opt_state floats for its
	 * optimizer; SGD's is n_params, so we cannot touch the second half
	 * blindly.  dlk_opt_step zeroes v on Adam's first step instead.
	 */
	if (grads != NULL)
	{
		if (dlk_zero_floats(grads, sz.n_params) != DLK_OK)
			return DLK_EABORT;
		net->grads_zero = 1;
	}
	if (opt_state != NULL && dlk_zero_floats(opt_state, sz.n_params) != DLK_OK)
		return DLK_EABORT;
	return DLK_OK;
}


/* ------------------------------------------------------------------------
 * Whole network
 * ------------------------------------------------------------------------ */


/*
 * Forward into act[start..to-1] from X, the input of layer start ([B x
 * dims[start]], rows packed); with X NULL (start 0 only), act[0] already
 * holds layer 0's output before its activation (the fused first layer).
 * Rows of act[0] are ld0 floats apart.  The activation follows every
 * layer but the network's last.
 */
static dlk_status
forward_range(dlk_net *net, const float *X, int B, int to)
{
	int			L = net->arch.n_layers;
	int			s0 = net->start;
	const float *in = X;
	int			ldin = net->arch.dims[s0];
	int			l;
	dlk_status	st;

	for (l = s0; l < to; l++)
	{
		int			I = net->arch.dims[l];
		int			O = net->arch.dims[l + 1];
		int			ldout = l == 0 ? net->ld0 : O;

		if (l > s0 || X != NULL)
		{
			st = dlk_affine(net->act[l], ldout, in, ldin, net->W[l], net->b[l], B, I, O,
						net->use_blas);
			if (st != DLK_OK)
				return st;
		}
		if (l < L - 1 &&
			(st = dlk_act_rows(net->act[l], ldout, B, O, net->arch.act)) != DLK_OK)
			return st;
		in = net->act[l];
		ldin = ldout;
	}
	return DLK_OK;
}

/* Forward into act[start..L-1] (see forward_range). */
dlk_status
dlk_net_forward_from(dlk_net *net, const float *X, int B)
{
	return forward_range(net, X, B, net->arch.n_layers);
}

dlk_status
dlk_net_freeze(dlk_net *net, int frozen, int start)
{
	size_t		off = 0;

	if (net == NULL || frozen < 0 || frozen >= net->arch.n_layers ||
		(start != 0 && start != frozen))
		return DLK_EINVAL;
	for (int l = 0; l < frozen; l++)
		off += (size_t) net->arch.dims[l + 1] * ((size_t) net->arch.dims[l] + 1);
	net->frozen = frozen;
	net->start = start;
	net->frozen_off = off;
	return DLK_OK;
}

static const float *
dlk_forward_to_body(dlk_net *net, const float *X, int B, int layers)
{
	if (net == NULL || X == NULL || B < 1 || B > net->max_batch ||
		layers <= net->start || layers >= net->arch.n_layers)
		return NULL;
	if (forward_range(net, X, B, layers) != DLK_OK)
		return NULL;
	return net->act[layers - 1];
}

/* dlk_forward_to in the kernels' floating-point mode (dlk_internal.h) */
const float *
dlk_forward_to(dlk_net *net, const float *X, int B, int layers)
{
	dlk_fpmode	fp = dlk_fp_enter();
	const float *r;

	r = dlk_forward_to_body(net, X, B, layers);
	dlk_fp_leave(fp);
	return r;
}

/* Forward into act[0..L-1]; X [B x D]. */
static dlk_status
net_forward(dlk_net *net, const float *X, int B)
{
	return dlk_net_forward_from(net, X, B);
}

static const float *
dlk_forward_body(dlk_net *net, const float *X, int B)
{
	if (net == NULL || X == NULL || B < 1 || B > net->max_batch)
		return NULL;
	if (net_forward(net, X, B) != DLK_OK)
		return NULL;
	return net->act[net->arch.n_layers - 1];
}

/* dlk_forward in the kernels' floating-point mode (dlk_internal.h) */
const float *
dlk_forward(dlk_net *net, const float *X, int B)
{
	dlk_fpmode	fp = dlk_fp_enter();
	const float *r;

	r = dlk_forward_body(net, X, B);
	dlk_fp_leave(fp);
	return r;
}

/* 1 if every one of x[0..n) is finite; bit test so the loop vectorizes. */
DLK_VECTOR static int
all_finite(const float *x, size_t n)
{
	uint32_t	bad = 0;
	size_t		k;

	for (k = 0; k < n; k++)
	{
		uint32_t	u;

		memcpy(&u, &x[k], sizeof(u));
		bad |= ((u & 0x7f800000u) == 0x7f800000u);
	}
	return bad == 0;
}

typedef struct finite_job
{
	const float *x;
	atomic_int	bad;
} finite_job;

static void
finite_range(void *arg, size_t lo, size_t hi)
{
	finite_job *j = arg;

	for (size_t k = lo; k < hi; k += DLK_POLL_ELEMS)
	{
		size_t		e = hi - k < DLK_POLL_ELEMS ? hi : k + DLK_POLL_ELEMS;

		if (dlk_abort_poll())
			return;
		if (!all_finite(j->x + k, e - k))
			atomic_store_explicit(&j->bad, 1, memory_order_relaxed);
	}
}

/*
 * DLK_OK if every gradient of net is finite, else DLK_ENONFINITE:
 * all_finite on the pool's threads (or DLK_EABORT).
 */
dlk_status
dlk_grads_finite(const dlk_net *net)
{
	finite_job	job = {.x = net->grads};
	dlk_status	st;

	atomic_init(&job.bad, 0);
	st = dlk_pool_for(net->n_params, 4 * DLK_OPT_MIN_PER_THREAD, finite_range, &job);
	if (st != DLK_OK)
		return st;
	return atomic_load_explicit(&job.bad, memory_order_relaxed) == 0 ? DLK_OK : DLK_ENONFINITE;
}

/*
 * The loss of act[L-1] and dL/d(output) into dbuf[0] (into dact0 for a
 * fused logistic model, whose output is act[0]).
 */
dlk_status
dlk_net_loss(dlk_net *net, const int32_t *labels, const float *targets, int B,
		 double *lv)
{
	int			L = net->arch.n_layers;
	int			C = net->arch.dims[L];
	int			ldz = L == 1 ? net->ld0 : C;
	float	   *d = (L == 1 && net->dact0) ? net->dact0 : net->dbuf[0];
	int			ldd = (L == 1 && net->dact0) ? net->ld0 : C;

	*lv = 0.0;
	if (net->arch.loss == DLK_LOSS_SOFTMAX_CE)
	{
		if (labels == NULL)
			return DLK_EINVAL;
		/* the predicted classes, before the loss overwrites anything */
		if (net->pred_counts)
			for (int i = 0; i < B; i++)
				net->pred_counts[dlk_argmax(net->act[L - 1] + (size_t) i * ldz, C)]++;
		/* a strided dlogits has dbuf[0] (unused then) for its exponentials */
		return dlk_softmax_ce_ld(lv, d, ldd, net->act[L - 1], ldz, labels, B, C, net->dbuf[0]);
	}
	if (targets == NULL)
		return DLK_EINVAL;
	/* strided for a fused regression model without hidden layers: same bits */
	dlk_mse_ld(lv, d, ldd, net->act[L - 1], ldz, targets, B, C);
	return DLK_OK;
}

/*
 * Backward from the loss gradient in dbuf[0] through layers L-1 .. stop.
 * dbuf[cur] holds dL/d(output of layer l) [B x O]; the input gradient goes
 * to dbuf[1 - cur] (to dact0 for layer 0's output in a fused step), through
 * the activation of layer l-1 (computed from its output act[l-1]) in place.
 */
dlk_status
dlk_net_backward(dlk_net *net, const float *X, int B, int stop)
{
	int			cur = 0;
	int			l;
	dlk_status	st;
	int			gz = net->grads_zero;

	/*
	 * from here on the gradients are being written: an abort leaves them
	 * marked as not zero, so a later backward overwrites them
	 */
	net->grads_zero = 0;
	/* frozen layers take no gradient; the lowest trained one no dX */
	if (stop < net->frozen)
		stop = net->frozen;
	for (l = net->arch.n_layers - 1; l >= stop; l--)
	{
		int			I = net->arch.dims[l];
		int			O = net->arch.dims[l + 1];
		const float *in = l > net->start ? net->act[l - 1] : X;
		int			ldin = l == 1 && net->start == 0 ? net->ld0 : I;
		float	   *dX = NULL;
		int			lddx = I;

		if (l == 1 && net->dact0 != NULL)
		{
			dX = net->dact0;
			lddx = net->ld0;
		}
		else if (l > net->frozen)
			dX = net->dbuf[1 - cur];
		st = dlk_dense_backward_ld(dX, lddx, net->gW[l], net->gb[l], net->dbuf[cur], O,
							in, ldin, net->W[l], B, I, O, net->use_blas, gz);
		if (st != DLK_OK)
			return st;
		if (dX != NULL)
		{
			st = dlk_act_backward_rows(dX, lddx, net->act[l - 1], ldin, B, I, net->arch.act);
			if (st != DLK_OK)
				return st;
			cur = 1 - cur;
		}
	}
	/* layers below stop keep their zeros; the fused step writes layer 0's */
	return DLK_OK;
}

static dlk_status
dlk_loss_grad_body(dlk_net *net, const float *X, const int32_t *labels,
			  const float *targets, int B, double *loss)
{
	double		lv = 0.0;
	dlk_status	st;

	if (net == NULL || X == NULL || net->grads == NULL ||
		B < 1 || B > net->max_batch)
		return DLK_EINVAL;
	if ((st = net_forward(net, X, B)) != DLK_OK)
		return st;
	st = dlk_net_loss(net, labels, targets, B, &lv);
	if (st != DLK_OK)
		return st;
	if (loss != NULL)
		*loss = lv;
	if (!isfinite(lv))
		return DLK_ENONFINITE;
	if ((st = dlk_net_backward(net, X, B, 0)) != DLK_OK)
		return st;
	return dlk_grads_finite(net);
}

/* dlk_loss_grad in the kernels' floating-point mode (dlk_internal.h) */
dlk_status
dlk_loss_grad(dlk_net *net, const float *X, const int32_t *labels,
			  const float *targets, int B, double *loss)
{
	dlk_fpmode	fp = dlk_fp_enter();
	dlk_status	r;

	r = dlk_loss_grad_body(net, X, labels, targets, B, loss);
	dlk_fp_leave(fp);
	return r;
}

static dlk_status
dlk_train_step_body(dlk_net *net, const float *X, const int32_t *labels,
			   const float *targets, int B, const dlk_opt *opt,
			   double *loss)
{
	dlk_status	st;

	if (opt == NULL || (int) opt->kind < (int) DLK_OPT_SGD ||
		(int) opt->kind > (int) DLK_OPT_ADAMW)
		return DLK_EINVAL;
	if (net != NULL && net->opt_state == NULL &&
		(opt->kind != DLK_OPT_SGD || opt->momentum != 0.0f))
		return DLK_EINVAL;
	if ((st = dlk_loss_grad_body(net, X, labels, targets, B, loss)) != DLK_OK)
		return st;
	return dlk_opt_step(net, opt);
}

/* dlk_train_step in the kernels' floating-point mode (dlk_internal.h) */
dlk_status
dlk_train_step(dlk_net *net, const float *X, const int32_t *labels,
			   const float *targets, int B, const dlk_opt *opt,
			   double *loss)
{
	dlk_fpmode	fp = dlk_fp_enter();
	dlk_status	r;

	r = dlk_train_step_body(net, X, labels, targets, B, opt, loss);
	dlk_fp_leave(fp);
	return r;
}

const char *
dlk_status_string(dlk_status st)
{
	switch (st)
	{
		case DLK_OK:
			return "ok";
		case DLK_EINVAL:
			return "invalid argument";
		case DLK_ENOBLAS:
			return "BLAS path requested but no BLAS library is bound (no longer returned)";
		case DLK_EBLASLOAD:
			return "could not load the BLAS library";
		case DLK_ENONFINITE:
			return "loss or gradients are not finite";
		case DLK_EABORT:
			return "stopped by the abort callback";
		case DLK_ENOMEM:
			return "out of memory";
	}
	return "unknown status";
}
