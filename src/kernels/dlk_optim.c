/*
 * dlk_optim.c — optimizers: SGD with momentum, Adam and AdamW, as flat loops over the parameter buffer, cut over the pool.
 */
#include "dlk.h"
#include "dlk_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Optimizers: flat loops over n parameters
 * ------------------------------------------------------------------------ */

DLK_VECTOR static void
dlk_sgd_step_body(float *restrict p, const float *restrict g, float *restrict m,
			 size_t n,
			 float lr, float momentum, float weight_decay)
{
	size_t		k;

	if (momentum == 0.0f || m == NULL)
	{
		for (k = 0; k < n; k++)
			p[k] -= lr * (g[k] + weight_decay * p[k]);
		return;
	}
	for (k = 0; k < n; k++)
	{
		float		gk = g[k] + weight_decay * p[k];

		m[k] = momentum * m[k] + gk;
		p[k] -= lr * m[k];
	}
}

/* dlk_sgd_step in the kernels' floating-point mode (dlk_internal.h) */
void
dlk_sgd_step(float *restrict p, const float *restrict g, float *restrict m,
			 size_t n, float lr, float momentum, float weight_decay)
{
	dlk_fpmode	fp = dlk_fp_enter();

	dlk_sgd_step_body(p, g, m, n, lr, momentum, weight_decay);
	dlk_fp_leave(fp);
}

DLK_VECTOR static void
dlk_adam_step_body(float *restrict p, const float *restrict g, float *restrict m,
			  float *restrict v, size_t n,
			  float lr, float beta1, float beta2, float eps,
			  float weight_decay, long t, int decoupled)
{
	/* bias corrections in double: b^t for large t is tiny, 1 - b^t exact */
	float		inv_bc1 = (float) (1.0 / (1.0 - pow((double) beta1, (double) t)));
	float		inv_bc2 = (float) (1.0 / (1.0 - pow((double) beta2, (double) t)));
	float		one_b1 = 1.0f - beta1;
	float		one_b2 = 1.0f - beta2;
	float		decay = 1.0f - lr * weight_decay;
	size_t		k;

	if (t < 1)
		return;
	/* two loops, so that neither carries a branch (vectorizable) */
	if (decoupled)
	{
		for (k = 0; k < n; k++)
		{
			float		pk = p[k] * decay;
			float		gk = g[k];
			float		mk = beta1 * m[k] + one_b1 * gk;
			float		vk = beta2 * v[k] + one_b2 * gk * gk;

			m[k] = mk;
			v[k] = vk;
			p[k] = pk - lr * (mk * inv_bc1) / (sqrtf(vk * inv_bc2) + eps);
		}
	}
	else
	{
		for (k = 0; k < n; k++)
		{
			float		pk = p[k];
			float		gk = g[k] + weight_decay * pk;
			float		mk = beta1 * m[k] + one_b1 * gk;
			float		vk = beta2 * v[k] + one_b2 * gk * gk;

			m[k] = mk;
			v[k] = vk;
			p[k] = pk - lr * (mk * inv_bc1) / (sqrtf(vk * inv_bc2) + eps);
		}
	}
}

/* dlk_adam_step in the kernels' floating-point mode (dlk_internal.h) */
void
dlk_adam_step(float *restrict p, const float *restrict g, float *restrict m,
			  float *restrict v, size_t n, float lr, float beta1, float beta2,
			  float eps, float weight_decay, long t, int decoupled)
{
	dlk_fpmode	fp = dlk_fp_enter();

	dlk_adam_step_body(p, g, m, v, n, lr, beta1, beta2, eps, weight_decay, t, decoupled);
	dlk_fp_leave(fp);
}

/* Fewest parameters per thread worth a helper's wake-up (about 5 us of Adam). */
#define DLK_OPT_MIN_PER_THREAD 16384

typedef struct opt_job
{
	dlk_net    *net;
	const dlk_opt *opt;
	size_t		off;			/* the first parameter updated (frozen_off) */
} opt_job;

/* The optimizer step on parameters [lo, hi): the flat loop, cut. */
static void
opt_piece(const opt_job *j, size_t lo, size_t hi)
{
	dlk_net    *net = j->net;
	const dlk_opt *opt = j->opt;
	size_t		n = net->n_params;
	float	   *m = net->opt_state;

	switch (opt->kind)
	{
		case DLK_OPT_SGD:
			dlk_sgd_step_body(net->params + lo, net->grads + lo, m ? m + lo : NULL,
						 hi - lo, opt->lr, opt->momentum, opt->weight_decay);
			break;
		case DLK_OPT_ADAM:
		case DLK_OPT_ADAMW:
			/* dlk_net_bind zeroed m only: v starts at zero on step 1 */
			if (net->step == 1)
				memset(m + n + lo, 0, (hi - lo) * sizeof(float));
			dlk_adam_step_body(net->params + lo, net->grads + lo, m + lo, m + n + lo,
						  hi - lo, opt->lr, opt->beta1, opt->beta2, opt->eps,
						  opt->weight_decay, net->step, opt->kind == DLK_OPT_ADAMW);
			break;
	}
	/* consumed: zero them while they are in cache (see grads_zero) */
	memset(net->grads + lo, 0, (hi - lo) * sizeof(float));
}

/*
 * opt_piece over [off + lo, off + hi) in pieces (element-wise: the same
 * values wherever the cuts fall), polling
 */
static void
opt_range(void *arg, size_t lo, size_t hi)
{
	size_t		off = ((const opt_job *) arg)->off;

	lo += off;
	hi += off;
	for (size_t k = lo; k < hi; k += DLK_POLL_ELEMS)
	{
		if (dlk_abort_poll())
			return;
		opt_piece(arg, k, hi - k < DLK_POLL_ELEMS ? hi : k + DLK_POLL_ELEMS);
	}
}

static dlk_status
dlk_opt_step_body(dlk_net *net, const dlk_opt *opt)
{
	opt_job		job = {net, opt, net->frozen_off};
	dlk_status	st;

	if (net->grads == NULL || opt == NULL || net->frozen_off >= net->n_params)
		return DLK_EINVAL;
	if (opt->kind != DLK_OPT_SGD && net->opt_state == NULL)
		return DLK_EINVAL;
	net->step++;
	/*
	 * frozen layers: their parameters, gradients (zeros) and state are not
	 * touched, except that Adam's second slot, unset before step 1, reads
	 * zeros there as everywhere
	 */
	if (net->step == 1 && job.off > 0 && opt->kind != DLK_OPT_SGD)
		memset(net->opt_state + net->n_params, 0, job.off * sizeof(float));
	st = dlk_pool_for(net->n_params - job.off, DLK_OPT_MIN_PER_THREAD, opt_range, &job);
	net->grads_zero = st == DLK_OK;
	return st;
}

/* dlk_opt_step in the kernels' floating-point mode (dlk_internal.h) */
dlk_status
dlk_opt_step(dlk_net *net, const dlk_opt *opt)
{
	dlk_fpmode	fp = dlk_fp_enter();
	dlk_status	r;

	r = dlk_opt_step_body(net, opt);
	dlk_fp_leave(fp);
	return r;
}
