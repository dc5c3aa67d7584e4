/*
 * dlk_fused.c — model selection's fused step: K networks on one batch, their first layers as one GEMM.
 *
 * Exactness.  Each network gets the bits it gets alone (dlk_train_step):
 * the two fused products are exact GEMMs (dlk_gemm.c) on the fast path,
 * whose elements are one chain each whatever the columns beside them, or
 * the reference loops, per element as well; each network's bias gradient
 * is the column sums of its own block of dYcat, row by row as alone; its
 * activations, loss (softmax or MSE over strided rows, in the order of the
 * dense version) and optimizer step are its own.  Nothing depends on K,
 * on the order of the networks or on which ones dropped out.
 */
#include "dlk.h"
#include "dlk_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * K networks on one batch, first layers fused
 * ------------------------------------------------------------------------ */

/*
 * Model selection trains K networks with the same input width D on the same
 * batch.  Their first layers are one GEMM: stacking the K weight matrices
 * W0_k [O_k x D] gives Wcat [sum O x D], and X Wcat^T computes every first
 * layer at once into Ycat [B x sum O]; the weight gradients are one GEMM
 * too, dYcat^T X.  Each network reads its share of Ycat in place (rows
 * sum O floats apart: net->ld0) and writes dL/d(its layer 0 output) into its
 * share of dYcat (net->dact0), so nothing is scattered or gathered per row;
 * only the weights are stacked (sum O x D floats a step, small next to the
 * 2 B D sum O flops of each GEMM), which lets K change from step to step
 * (diverged or pruned networks drop out).
 *
 * Work: Wcat (reused for gWcat), bcat, Ycat and dYcat.
 */
/*
 * Floats between rows of Ycat and dYcat: sum O rounded up to 16, and moved
 * off multiples of 128 (512 bytes), whose rows would fall in the same cache
 * sets when the networks' next GEMMs read their column blocks.
 */
static int
fused_ld(int sum_o)
{
	int			ld = (sum_o + 15) & ~15;

	return (ld % 128 == 0) ? ld + 16 : ld;
}

size_t
dlk_fused_work_size(dlk_net *const *nets, int K, int B)
{
	size_t		sum_o = 0;

	for (int k = 0; k < K; k++)
		sum_o += (size_t) nets[k]->arch.dims[1];
	return sum_o * ((size_t) nets[0]->arch.dims[0] + 1) +
		2 * (size_t) B * (size_t) fused_ld((int) sum_o);
}

static dlk_status
dlk_train_step_fused_body(dlk_net *const *nets, const dlk_opt *const *opts, int K,
					 const float *X, const int32_t *labels,
					 const float *targets, int B, float *work,
					 double *losses, dlk_status *status)
{
	int			D;
	int			sum_o = 0;
	int			ld;
	int			off;
	float	   *Wcat = work;
	float	   *bcat;
	float	   *Ycat;
	float	   *dYcat;
	int			use_blas;
	dlk_status	st = DLK_OK;

	if (nets == NULL || opts == NULL || K < 1 || X == NULL || work == NULL)
		return DLK_EINVAL;
	D = nets[0]->arch.dims[0];
	use_blas = nets[0]->use_blas;
	for (int k = 0; k < K; k++)
	{
		const dlk_net *n = nets[k];

		if (n->arch.dims[0] != D || n->use_blas != use_blas || n->grads == NULL ||
			n->frozen != 0 ||
			B < 1 || B > n->max_batch)
			return DLK_EINVAL;
		sum_o += n->arch.dims[1];
	}
	ld = fused_ld(sum_o);
	bcat = Wcat + (size_t) sum_o * D;
	Ycat = bcat + sum_o;
	dYcat = Ycat + (size_t) B * ld;

	/* forward: every first layer in one GEMM */
	off = 0;
	for (int k = 0; k < K; k++)
	{
		int			O = nets[k]->arch.dims[1];

		memcpy(Wcat + (size_t) off * D, nets[k]->W[0], sizeof(float) * O * (size_t) D);
		memcpy(bcat + off, nets[k]->b[0], sizeof(float) * O);
		off += O;
	}
	if ((st = dlk_affine(Ycat, ld, X, D, Wcat, bcat, B, D, sum_o, use_blas)) != DLK_OK)
		return st;

	/* each network alone above its first layer, reading and writing in place */
	off = 0;
	for (int k = 0; k < K && st == DLK_OK; k++)
	{
		dlk_net    *n = nets[k];
		int			O = n->arch.dims[1];
		float	   *act0 = n->act[0];
		double		lv = 0.0;

		n->act[0] = Ycat + off;
		n->ld0 = ld;
		n->dact0 = dYcat + off;
		status[k] = DLK_OK;
		if ((st = dlk_net_forward_from(n, NULL, B)) == DLK_OK &&
			(st = dlk_net_loss(n, labels, targets, B, &lv)) == DLK_OK)
		{
			losses[k] = lv;
			if (!isfinite(lv))
				status[k] = DLK_ENONFINITE;
			else
				st = dlk_net_backward(n, X, B, 1);
		}
		/* a diverged network contributes zeros and takes no step */
		if (st == DLK_OK && status[k] != DLK_OK)
			for (int r = 0; r < B; r++)
				memset(dYcat + (size_t) r * ld + off, 0, sizeof(float) * O);
		if (st == DLK_OK && status[k] == DLK_OK)
			st = dlk_bias_grad(n->gb[0], dYcat + off, ld, B, O);
		n->act[0] = act0;
		n->ld0 = O;
		n->dact0 = NULL;
		off += O;
	}
	if (st != DLK_OK)
		return st;

	/* every first-layer weight gradient in one GEMM: gWcat = dYcat^T X */
	if ((st = dlk_weight_grad(Wcat, dYcat, ld, X, D, B, D, sum_o, use_blas, 0)) != DLK_OK)
		return st;

	/* each network's share, checked, then its step */
	off = 0;
	for (int k = 0; k < K; k++)
	{
		dlk_net    *n = nets[k];
		int			O = n->arch.dims[1];

		if (status[k] == DLK_OK)
		{
			memcpy(n->gW[0], Wcat + (size_t) off * D, sizeof(float) * O * (size_t) D);
			st = dlk_grads_finite(n);
			if (st == DLK_ENONFINITE)
				status[k] = DLK_ENONFINITE;
			else if (st != DLK_OK || (st = dlk_opt_step(n, opts[k])) != DLK_OK)
				return st;
		}
		off += O;
	}
	return DLK_OK;
}

/* dlk_train_step_fused in the kernels' floating-point mode (dlk_internal.h) */
dlk_status
dlk_train_step_fused(dlk_net *const *nets, const dlk_opt *const *opts, int K,
					 const float *X, const int32_t *labels,
					 const float *targets, int B, float *work,
					 double *losses, dlk_status *status)
{
	dlk_fpmode	fp = dlk_fp_enter();
	dlk_status	r;

	r = dlk_train_step_fused_body(nets, opts, K, X, labels, targets, B, work, losses, status);
	dlk_fp_leave(fp);
	return r;
}
