/*
 * dlk_loss.c — losses.  Softmax and cross-entropy are fused and stable (max
 * subtracted, loss from log-sum-exp, never log(p)), with a vectorized
 * exponential (exp_neg8); mean squared error; a row-wise softmax for
 * scoring.  Losses are accumulated in double.
 */
#include "dlk.h"
#include "dlk_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Losses
 * ------------------------------------------------------------------------ */

/*
 * e^x on eight lanes for x <= 0, the arguments of a softmax after the row
 * maximum is subtracted, in GCC vector extensions (libm's expf is one call
 * per element, and the compiler does not vectorize a scalar form's clamp
 * and bit tricks by itself): Cody-Waite reduction x = n ln2 + r with n
 * rounded by the 1.5 * 2^23 trick, a degree-6 polynomial for e^r on
 * [-ln2/2, ln2/2] (Cephes' expf coefficients), and 2^n built in the
 * exponent bits.  Relative error about 2 ulp.  Below -87.3 (e^x under
 * FLT_MIN) the argument is clamped: e^x is then 2^-126 instead of a
 * denormal or 0, which a sum of exponentials that includes e^0 = 1 cannot
 * tell apart.  NaN goes through the clamp as NaN (the comparison is false)
 * and stays NaN, so divergence is still seen.
 */
typedef int32_t dlk_v8si __attribute__((vector_size(32)));

static inline void
exp_neg8(dlk_v8sf *xp)
{
	dlk_v8sf	x = *xp;
	const dlk_v8sf lo = {-87.3f, -87.3f, -87.3f, -87.3f, -87.3f, -87.3f, -87.3f, -87.3f};
	dlk_v8si	below = x < lo;
	dlk_v8sf	n,
				r,
				p;
	dlk_v8si	i;

	x = (dlk_v8sf) (((dlk_v8si) x & ~below) | ((dlk_v8si) lo & below));
	n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
	r = x - n * 0.693359375f;
	r = r - n * -2.12194440e-4f;
	p = r * 1.9875691500e-4f + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	i = __builtin_convertvector(n, dlk_v8si) + 127;
	i = i & ~(i < 0);
	*xp = p * (dlk_v8sf) (i << 23);
}

DLK_VECTOR static void
exp_neg_inplace(float *restrict x, size_t n)
{
	size_t		k = 0;
	dlk_v8sf	v;

	for (; k + 8 <= n; k += 8)
	{
		memcpy(&v, x + k, sizeof(v));
		exp_neg8(&v);
		memcpy(x + k, &v, sizeof(v));
	}
	if (k < n)
	{
		dlk_v8sf	t = {0, 0, 0, 0, 0, 0, 0, 0};

		memcpy(&t, x + k, sizeof(float) * (n - k));
		exp_neg8(&t);
		memcpy(x + k, &t, sizeof(float) * (n - k));
	}
}

/* max of z[0..C), in two independent chains (a chain of C dependent maxss is
 * the critical path of a short row) */
static inline float
row_max(const float *z, int C)
{
	float		m0 = z[0];
	float		m1 = z[C > 1 ? 1 : 0];
	int			c;

	for (c = 2; c + 1 < C; c += 2)
	{
		m0 = z[c] > m0 ? z[c] : m0;
		m1 = z[c + 1] > m1 ? z[c + 1] : m1;
	}
	if (c < C)
		m0 = z[c] > m0 ? z[c] : m0;
	return m1 > m0 ? m1 : m0;
}

/* sum of e[0..C) in four independent chains, added pairwise (a fixed order) */
static inline float
row_sum(const float *e, int C)
{
	float		s0 = 0.0f,
				s1 = 0.0f,
				s2 = 0.0f,
				s3 = 0.0f;
	int			c = 0;

	for (; c + 4 <= C; c += 4)
	{
		s0 += e[c];
		s1 += e[c + 1];
		s2 += e[c + 2];
		s3 += e[c + 3];
	}
	for (; c < C; c++)
		s0 += e[c];
	return (s0 + s2) + (s1 + s3);
}

/*
 * sum_r log s_r as the log of one product: every s_r is in [1, C] (its
 * largest term is e^0), so the product in double, renormalized by frexp
 * now and then, loses nothing that matters and costs one log a batch.
 * A NaN stays NaN.
 */
static inline void
log_product_add(double *prod, int *exps, float s)
{
	*prod *= (double) s;
	if (*prod > 1e250 || !(*prod < HUGE_VAL))
	{
		int			ex;

		*prod = frexp(*prod, &ex);
		*exps += ex;
	}
}

static inline double
log_product(double prod, int exps)
{
	return log(prod) + exps * 0.69314718055994530942;
}

/*
 * Per row z = logits[r, :]: m = max z, s = sum exp(z - m),
 * loss_r = log s + m - z[y]; dlogits = (exp(z - m) / s - onehot(y)) / B.
 * Rows of logits and dlogits are ldz and ldd floats apart.  The differences
 * z - m become exponentials in one vectorized pass over a contiguous block:
 * dlogits itself when its rows are packed, else tmp [B x C] (a fused step's
 * column block, where one short call per row would cost more than the
 * exponentials), and are rescaled into dlogits.
 */
DLK_VECTOR dlk_status
dlk_softmax_ce_ld(double *loss, float *dlogits, int ldd, const float *logits, int ldz,
		   const int32_t *labels, int B, int C, float *tmp)
{
	double		total = 0.0;
	double		prod = 1.0;
	int			exps = 0;
	float		invB;
	int			pr;

	if (B < 1 || C < 1 || logits == NULL || labels == NULL)
		return DLK_EINVAL;
	for (int r = 0; r < B; r++)
		if (labels[r] < 0 || labels[r] >= C)
			return DLK_EINVAL;

	invB = 1.0f / (float) B;
	pr = dlk_poll_rows(C);
	if (dlogits == NULL)
	{
		/* the same arithmetic as below, one row at a time */
		for (int r = 0; r < B; r++)
		{
			const float *z = logits + (size_t) r * ldz;
			float		m = row_max(z, C);
			float		e[4] = {0.0f, 0.0f, 0.0f, 0.0f};
			int			c4 = C / 4 * 4;
			float		s;

			if (r % pr == pr - 1 && dlk_abort_poll())
				return DLK_EABORT;

			total += (double) (m - z[labels[r]]);
			/* eight exponentials at a time, summed as row_sum sums them */
			for (int c0 = 0; c0 < C; c0 += 8)
			{
				dlk_v8sf	t = {0, 0, 0, 0, 0, 0, 0, 0};
				int			w = C - c0 < 8 ? C - c0 : 8;

				for (int j = 0; j < w; j++)
					t[j] = z[c0 + j] - m;
				exp_neg8(&t);
				for (int j = 0; j < w; j++)
					e[c0 + j < c4 ? (c0 + j) % 4 : 0] += t[j];
			}
			s = (e[0] + e[2]) + (e[1] + e[3]);
			log_product_add(&prod, &exps, s);
		}
		total += log_product(prod, exps);
		if (loss != NULL)
			*loss = total / (double) B;
		return DLK_OK;
	}

	if (ldd == C)
		tmp = dlogits;
	for (int r = 0; r < B; r++)
	{
		const float *z = logits + (size_t) r * ldz;
		float	   *e = tmp + (size_t) r * C;
		float		m = row_max(z, C);

		if (r % pr == pr - 1 && dlk_abort_poll())
			return DLK_EABORT;
		/* m - z[y] >= 0, summed in float per row, in double over rows */
		total += (double) (m - z[labels[r]]);
		for (int c = 0; c < C; c++)
			e[c] = z[c] - m;
	}
	/* element-wise: the same values in pieces of whole rows */
	for (int r0 = 0; r0 < B; r0 += pr)
	{
		int			r1 = B - r0 < pr ? B : r0 + pr;

		if (dlk_abort_poll())
			return DLK_EABORT;
		exp_neg_inplace(tmp + (size_t) r0 * C, (size_t) (r1 - r0) * C);
	}
	for (int r = 0; r < B; r++)
	{
		const float *e = tmp + (size_t) r * C;
		float	   *d = dlogits + (size_t) r * ldd;
		float		s = row_sum(e, C);
		float		scale;

		if (r % pr == pr - 1 && dlk_abort_poll())
			return DLK_EABORT;

		scale = invB / s;
		for (int c = 0; c < C; c++)
			d[c] = e[c] * scale;
		d[labels[r]] -= invB;
		log_product_add(&prod, &exps, s);
	}
	total += log_product(prod, exps);
	if (loss != NULL)
		*loss = total / (double) B;
	return DLK_OK;
}

static dlk_status
dlk_softmax_ce_body(double *loss, float *dlogits, const float *logits,
			   const int32_t *labels, int B, int C)
{
	return dlk_softmax_ce_ld(loss, dlogits, C, logits, C, labels, B, C, NULL);
}

/* dlk_softmax_ce in the kernels' floating-point mode (dlk_internal.h) */
dlk_status
dlk_softmax_ce(double *loss, float *dlogits, const float *logits,
			   const int32_t *labels, int B, int C)
{
	dlk_fpmode	fp = dlk_fp_enter();
	dlk_status	r;

	r = dlk_softmax_ce_body(loss, dlogits, logits, labels, B, C);
	dlk_fp_leave(fp);
	return r;
}

/*
 * MSE with rows of pred ldp and of dpred ldd floats apart (targets dense):
 * the same additions in the same order, so the same bits, as over dense
 * rows (a fused logistic regression model reads its share of Ycat in
 * place and must get what it gets alone).
 */
void
dlk_mse_ld(double *loss, float *dpred, int ldd, const float *pred, int ldp,
		   const float *target, int B, int C)
{
	size_t		n = (size_t) B * (size_t) C;
	double		total = 0.0;
	float		scale;

	if (B < 1 || C < 1)
	{
		if (loss != NULL)
			*loss = 0.0;
		return;
	}
	scale = (float) (2.0 / (double) n);
	for (int r = 0; r < B; r++)
	{
		const float *p = pred + (size_t) r * ldp;
		const float *t = target + (size_t) r * C;

		for (int c = 0; c < C; c++)
		{
			double		e = (double) p[c] - (double) t[c];

			total += e * e;
		}
		if (dpred != NULL)
		{
			float	   *d = dpred + (size_t) r * ldd;

			for (int c = 0; c < C; c++)
				d[c] = scale * (p[c] - t[c]);
		}
	}
	if (loss != NULL)
		*loss = total / (double) n;
}

static void
dlk_mse_body(double *loss, float *dpred, const float *pred,
		const float *target, int B, int C)
{
	dlk_mse_ld(loss, dpred, C, pred, C, target, B, C);
}

/* dlk_mse in the kernels' floating-point mode (dlk_internal.h) */
void
dlk_mse(double *loss, float *dpred, const float *pred,
		const float *target, int B, int C)
{
	dlk_fpmode	fp = dlk_fp_enter();

	dlk_mse_body(loss, dpred, pred, target, B, C);
	dlk_fp_leave(fp);
}

static void
dlk_softmax_rows_body(float *P, const float *logits, int B, int C)
{
	int			r;
	int			c;

	for (r = 0; r < B; r++)
	{
		const float *z = logits + (size_t) r * C;
		float	   *p = P + (size_t) r * C;
		float		m = z[0];
		float		s = 0.0f;
		float		inv;

		for (c = 1; c < C; c++)
			m = z[c] > m ? z[c] : m;
		for (c = 0; c < C; c++)
		{
			p[c] = expf(z[c] - m);
			s += p[c];
		}
		inv = 1.0f / s;
		for (c = 0; c < C; c++)
			p[c] *= inv;
	}
}

/* dlk_softmax_rows in the kernels' floating-point mode (dlk_internal.h) */
void
dlk_softmax_rows(float *P, const float *logits, int B, int C)
{
	dlk_fpmode	fp = dlk_fp_enter();

	dlk_softmax_rows_body(P, logits, B, C);
	dlk_fp_leave(fp);
}

int
dlk_argmax(const float *p, int n)
{
	int			best = 0;

	for (int i = 1; i < n; i++)
		if (p[i] > p[best])
			best = i;
	return best;
}
