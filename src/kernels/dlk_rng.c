/*
 * dlk_rng.c — the seeded PRNG (splitmix64 seeding, xoshiro256**), the shuffle, and the two parameter initializers.
 */
#include "dlk.h"
#include "dlk_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Random numbers: splitmix64 seeding, xoshiro256** generator
 * ------------------------------------------------------------------------ */

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static inline uint64_t
rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void
dlk_rng_seed(dlk_rng *rng, uint64_t seed)
{
	uint64_t	x = seed;
	int			i;

	for (i = 0; i < 4; i++)
		rng->s[i] = splitmix64(&x);
}

uint64_t
dlk_rng_next(dlk_rng *rng)
{
	uint64_t   *s = rng->s;
	uint64_t	result = rotl64(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

double
dlk_rng_uniform(dlk_rng *rng)
{
	return (double) (dlk_rng_next(rng) >> 11) * 0x1.0p-53;
}

/*
 * Unbiased integer in [0, n): reject the lowest (2^64 mod n) values so that
 * the accepted range is a multiple of n, then reduce.  Expected draws < 2.
 */
uint64_t
dlk_rng_below(dlk_rng *rng, uint64_t n)
{
	uint64_t	threshold;
	uint64_t	r;

	if (n <= 1)
		return 0;
	threshold = (0 - n) % n;	/* = 2^64 mod n */
	do
		r = dlk_rng_next(rng);
	while (r < threshold);
	return r % n;
}

dlk_status
dlk_shuffle_u32(dlk_rng *rng, uint32_t *idx, size_t n)
{
	size_t		i;

	if (n < 2)
		return DLK_OK;
	for (i = n - 1; i > 0; i--)
	{
		size_t		j = (size_t) dlk_rng_below(rng, (uint64_t) i + 1);
		uint32_t	tmp = idx[i];

		if ((i & (DLK_POLL_ELEMS - 1)) == 0 && dlk_abort_poll())
			return DLK_EABORT;
		idx[i] = idx[j];
		idx[j] = tmp;
	}
	return DLK_OK;
}

/*
 * Layer by layer, W row-major then b: W ~ U(-a, a) with a = sqrt(6 / I)
 * (He) for a hidden layer followed by ReLU, a = sqrt(6 / (I + O)) (Glorot)
 * otherwise; b = 0.  Bounds and values are computed in double, so the model
 * depends on the seed only.
 */
dlk_status
dlk_init_params(dlk_net *net, uint64_t seed)
{
	dlk_rng		rng;
	int			L = net->arch.n_layers;
	int			l;

	dlk_rng_seed(&rng, seed);
	for (l = 0; l < L; l++)
	{
		int			in = net->arch.dims[l];
		int			o = net->arch.dims[l + 1];
		size_t		n = (size_t) o * (size_t) in;
		double		a;
		size_t		k;

		if (l < L - 1 && net->arch.act == DLK_ACT_RELU)
			a = sqrt(6.0 / (double) in);
		else
			a = sqrt(6.0 / (double) (in + o));
		for (k = 0; k < n; k++)
		{
			if ((k & (DLK_POLL_ELEMS - 1)) == 0 && dlk_abort_poll())
				return DLK_EABORT;
			net->W[l][k] = (float) ((2.0 * dlk_rng_uniform(&rng) - 1.0) * a);
		}
		memset(net->b[l], 0, (size_t) o * sizeof(float));
	}
	return DLK_OK;
}

dlk_status
dlk_init_params_fanin(dlk_net *net, uint64_t seed)
{
	dlk_rng		rng;

	dlk_rng_seed(&rng, seed);
	for (int l = 0; l < net->arch.n_layers; l++)
	{
		int			in = net->arch.dims[l];
		int			o = net->arch.dims[l + 1];
		size_t		n = (size_t) o * (size_t) in;
		double		a = 1.0 / sqrt((double) in);

		for (size_t k = 0; k < n; k++)
		{
			if ((k & (DLK_POLL_ELEMS - 1)) == 0 && dlk_abort_poll())
				return DLK_EABORT;
			net->W[l][k] = (float) ((2.0 * dlk_rng_uniform(&rng) - 1.0) * a);
		}
		for (int k = 0; k < o; k++)
			net->b[l][k] = (float) ((2.0 * dlk_rng_uniform(&rng) - 1.0) * a);
	}
	return DLK_OK;
}
