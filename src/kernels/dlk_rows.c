/*
 * dlk_rows.c — row operations for the glue's data path: feature moments, standardization, conversion and finite checks into the row cache, min/max, quantized sums.
 */
#include "dlk.h"
#include "dlk_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Feature statistics: separate loops the compiler vectorizes (float to
 * double conversion, no reduction across d, so no reassociation).
 * ------------------------------------------------------------------------ */

DLK_VECTOR void
dlk_moments_accumulate(double *restrict sum, double *restrict sq,
					   const float *restrict x, const float *restrict shift, int D)
{
	for (int d = 0; d < D; d++)
	{
		double		v = (double) x[d] - (double) shift[d];

		sum[d] += v;
		sq[d] += v * v;
	}
}

DLK_VECTOR void
dlk_standardize(float *restrict x, const float *restrict mean,
				const float *restrict scale, int D)
{
	for (int d = 0; d < D; d++)
		x[d] = (x[d] - mean[d]) * scale[d];
}

/* ------------------------------------------------------------------------
 * Conversion into the row cache: copy and check in one pass, with an integer
 * test on the exponent bits so that the loop vectorizes (isfinite() may not).
 * ------------------------------------------------------------------------ */

DLK_VECTOR int
dlk_copy_finite_f32(float *restrict dst, const float *restrict src, int n)
{
	uint32_t	bad = 0;

	for (int i = 0; i < n; i++)
	{
		uint32_t	u;

		memcpy(&u, &src[i], sizeof(u));
		bad |= (uint32_t) ((u & 0x7f800000u) == 0x7f800000u);
		dst[i] = src[i];
	}
	return bad == 0;
}

DLK_VECTOR int
dlk_convert_finite_f64(float *restrict dst, const double *restrict src, int n)
{
	uint32_t	bad = 0;

	for (int i = 0; i < n; i++)
	{
		double		v = src[i];
		float		f = (float) v;
		uint32_t	u;

		/* a double too large for a float converts to an infinity */
		memcpy(&u, &f, sizeof(u));
		bad |= (uint32_t) ((u & 0x7f800000u) == 0x7f800000u);
		dst[i] = f;
	}
	return bad == 0;
}

/*
 * The row cache's append in one pass: dst = src, the running minimum and
 * maximum per feature, and 1 if every value is finite (else 0; dst, mn and
 * mx are then garbage).
 */
DLK_VECTOR int
dlk_copy_finite_minmax_f32(float *restrict dst, const float *restrict src, int n,
						   float *restrict mn, float *restrict mx)
{
	uint32_t	bad = 0;

	for (int i = 0; i < n; i++)
	{
		float		v = src[i];
		uint32_t	u;

		memcpy(&u, &v, sizeof(u));
		bad |= (uint32_t) ((u & 0x7f800000u) == 0x7f800000u);
		dst[i] = v;
		mn[i] = v < mn[i] ? v : mn[i];
		mx[i] = v > mx[i] ? v : mx[i];
	}
	return bad == 0;
}

DLK_VECTOR void
dlk_minmax_accumulate(float *restrict mn, float *restrict mx, const float *restrict x, int D)
{
	for (int d = 0; d < D; d++)
	{
		float		v = x[d];

		mn[d] = v < mn[d] ? v : mn[d];
		mx[d] = v > mx[d] ? v : mx[d];
	}
}

DLK_VECTOR void
dlk_qsum_accumulate(double *restrict acc1, double *restrict acc2,
					const float *restrict x, const double *restrict center,
					const double *restrict inv_q1, const double *restrict inv_q2,
					int D)
{
	for (int d = 0; d < D; d++)
	{
		double		v = (double) x[d] - center[d];

		acc1[d] += rint(v * inv_q1[d]);
		acc2[d] += rint(v * v * inv_q2[d]);
	}
}
