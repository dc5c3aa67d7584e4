/*
 * dlk_act.c — hidden activations (ReLU, tanh, sigmoid, identity), forward and backward, element-wise and over strided rows.
 */
#include "dlk.h"
#include "dlk_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Activations
 * ------------------------------------------------------------------------ */

static void
dlk_act_forward_body(float *Y, const float *X, size_t n, dlk_act act)
{
	size_t		k;

	switch (act)
	{
		case DLK_ACT_RELU:
			for (k = 0; k < n; k++)
				Y[k] = X[k] < 0.0f ? 0.0f : X[k];	/* NaN propagates */
			break;
		case DLK_ACT_TANH:
			for (k = 0; k < n; k++)
				Y[k] = tanhf(X[k]);
			break;
		case DLK_ACT_SIGMOID:
			/* exp(-x) overflows to inf for x << 0, giving exactly 0: no NaN */
			for (k = 0; k < n; k++)
				Y[k] = 1.0f / (1.0f + expf(-X[k]));
			break;
		case DLK_ACT_IDENTITY:
		default:
			if (Y != X)
				memmove(Y, X, n * sizeof(float));
			break;
	}
}

/* dlk_act_forward in the kernels' floating-point mode (dlk_internal.h) */
void
dlk_act_forward(float *Y, const float *X, size_t n, dlk_act act)
{
	dlk_fpmode	fp = dlk_fp_enter();

	dlk_act_forward_body(Y, X, n, act);
	dlk_fp_leave(fp);
}

/*
 * ReLU backward without a branch per element (the sign of a pre-activation is
 * a coin flip, so a branch mispredicts half the time) and with restrict
 * pointers, so that the compiler vectorizes both forms.
 */
DLK_VECTOR static void
relu_backward_inplace(float *restrict dX, const float *restrict Y, size_t n)
{
	for (size_t k = 0; k < n; k++)
	{
		float		d = dX[k];

		dX[k] = Y[k] > 0.0f ? d : 0.0f;
	}
}

DLK_VECTOR static void
relu_backward(float *restrict dX, const float *restrict dY,
			  const float *restrict Y, size_t n)
{
	for (size_t k = 0; k < n; k++)
	{
		float		d = dY[k];

		dX[k] = Y[k] > 0.0f ? d : 0.0f;
	}
}

static void
dlk_act_backward_body(float *dX, const float *dY, const float *Y, size_t n,
				 dlk_act act)
{
	size_t		k;

	switch (act)
	{
		case DLK_ACT_RELU:
			if (dX == dY)
				relu_backward_inplace(dX, Y, n);
			else
				relu_backward(dX, dY, Y, n);
			break;
		case DLK_ACT_TANH:
			for (k = 0; k < n; k++)
				dX[k] = dY[k] * (1.0f - Y[k] * Y[k]);
			break;
		case DLK_ACT_SIGMOID:
			for (k = 0; k < n; k++)
				dX[k] = dY[k] * Y[k] * (1.0f - Y[k]);
			break;
		case DLK_ACT_IDENTITY:
		default:
			if (dX != dY)
				memmove(dX, dY, n * sizeof(float));
			break;
	}
}

/* dlk_act_backward in the kernels' floating-point mode (dlk_internal.h) */
void
dlk_act_backward(float *dX, const float *dY, const float *Y, size_t n,
				 dlk_act act)
{
	dlk_fpmode	fp = dlk_fp_enter();

	dlk_act_backward_body(dX, dY, Y, n, act);
	dlk_fp_leave(fp);
}


/* y = max(y, 0) in place, NaN kept, without a branch (vectorized) */
DLK_VECTOR static void
relu_inplace(float *restrict y, size_t n)
{
	for (size_t k = 0; k < n; k++)
	{
		float		v = y[k];

		y[k] = v < 0.0f ? 0.0f : v;
	}
}

/*
 * The activation on B rows of O values, ld floats apart, in pieces of rows
 * with a poll before each (element-wise: the same values).
 */
dlk_status
dlk_act_rows(float *Y, int ld, int B, int O, dlk_act act)
{
	int			pr = dlk_poll_rows(O);

	for (int r0 = 0; r0 < B; r0 += pr)
	{
		int			r1 = B - r0 < pr ? B : r0 + pr;
		float	   *y = Y + (size_t) r0 * ld;

		if (dlk_abort_poll())
			return DLK_EABORT;
		if (ld == O)
		{
			if (act == DLK_ACT_RELU)
				relu_inplace(y, (size_t) (r1 - r0) * O);
			else
				dlk_act_forward_body(y, y, (size_t) (r1 - r0) * O, act);
			continue;
		}
		for (int r = r0; r < r1; r++)
		{
			if (act == DLK_ACT_RELU)
				relu_inplace(Y + (size_t) r * ld, O);
			else
				dlk_act_forward_body(Y + (size_t) r * ld, Y + (size_t) r * ld, O, act);
		}
	}
	return DLK_OK;
}

/* dX *= act'(Y) in place on B rows of I values, ldx and ldy floats apart. */
dlk_status
dlk_act_backward_rows(float *dX, int ldx, const float *Y, int ldy, int B, int I, dlk_act act)
{
	int			pr = dlk_poll_rows(I);

	for (int r0 = 0; r0 < B; r0 += pr)
	{
		int			r1 = B - r0 < pr ? B : r0 + pr;

		if (dlk_abort_poll())
			return DLK_EABORT;
		if (ldx == I && ldy == I)
		{
			dlk_act_backward_body(dX + (size_t) r0 * I, dX + (size_t) r0 * I,
							 Y + (size_t) r0 * I, (size_t) (r1 - r0) * I, act);
			continue;
		}
		for (int r = r0; r < r1; r++)
			dlk_act_backward_body(dX + (size_t) r * ldx, dX + (size_t) r * ldx,
							 Y + (size_t) r * ldy, I, act);
	}
	return DLK_OK;
}
