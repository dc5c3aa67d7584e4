/*
 * dlk.c — dltrain's kernels: dense layers, activations, losses, optimizers,
 * the whole-network forward/backward/step, and the seeded PRNG.
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
 * (row stride = the width), so every matrix handed to sgemm is dense; the
 * one exception is a fused step (dlk_train_step_fused), where act[0] is a
 * column block of the K networks' shared first-layer output (net->ld0).
 *
 * The network input X is not copied: dlk_loss_grad and dlk_train_step take it
 * as an argument and use it both for the forward pass and for layer 0's
 * weight gradient.
 *
 * Dense layers.  Each has a plain reference version (use_blas = 0; loops
 * ordered so the inner loop is contiguous) and a BLAS version that calls
 * cblas_sgemm through the pointer bound by dlk_blas_open (dlk_blas.c):
 *   forward   Y = X W^T + b      the bias rows first, then sgemm(NoTrans,
 *                                Trans) with beta = 1; the activation in
 *                                one vectorized pass (act_rows)
 *   backward  gW = dY^T X        sgemm(Trans, NoTrans)
 *             dX = dY W          sgemm(NoTrans, NoTrans)
 *             gb = column sums of dY (one contiguous pass)
 * Softmax and cross-entropy are fused and stable (max subtracted, loss from
 * log-sum-exp, never log(p)), with a vectorized exponential (exp_neg8).
 * Losses are accumulated in double.
 *
 * Determinism.  The PRNG is xoshiro256** seeded through splitmix64 and the
 * initializer draws parameters in buffer order, so a seed gives the same
 * model on every platform; all loops here have a fixed order, so training is
 * bit-reproducible for a fixed BLAS and thread count.
 *
 * Abort.  Every loop whose length the caller's sizes set polls
 * dlk_abort_poll() (dlk_pool.c) between pieces: a GEMM between tiles of
 * C of at most about 2^30 flops and 2^22 elements (gemm_tiles: rows or
 * columns, 16 at least, at positions fixed by the shapes; K is never cut,
 * so a tile's elements are dot products over all of K as in an uncut
 * call, which OpenBLAS may round differently in the last bit, as with the
 * pool's cut), an element-wise pass or a loop
 * over rows every DLK_POLL_ELEMS elements, the initializer and the shuffle
 * every 2^20 draws.  A poll that says stop makes the function return
 * DLK_EABORT at once, through every caller; buffers it was writing are left
 * half-written (the glue then raises the error and drops them).
 */
#include "dlk.h"
#include "dlk_internal.h"

/*
 * Element-wise loops are also built for AVX2 and picked at load time (GCC
 * function multiversioning).  AVX2 without FMA: no contraction, so every
 * version computes bit-identical results; only the vector width differs.
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define DLK_VECTOR __attribute__((target_clones("avx2", "default")))
#else
#define DLK_VECTOR
#endif

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
static dlk_status
zero_floats(float *p, size_t n)
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
	if (use_blas && !dlk_blas_available())
		return DLK_ENOBLAS;

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
		if (zero_floats(grads, sz.n_params) != DLK_OK)
			return DLK_EABORT;
		net->grads_zero = 1;
	}
	if (opt_state != NULL && zero_floats(opt_state, sz.n_params) != DLK_OK)
		return DLK_EABORT;
	return DLK_OK;
}

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

/* ------------------------------------------------------------------------
 * Dense layer
 * ------------------------------------------------------------------------ */

/* y += b */
DLK_VECTOR static void
bias_row(float *restrict y, const float *restrict b, int O)
{
	for (int o = 0; o < O; o++)
		y[o] += b[o];
}

/*
 * A dot product in eight interleaved partial sums (lane j takes elements
 * j, j+8, ...), added pairwise at the end: a fixed order, so deterministic,
 * and eight independent chains the compiler turns into vector code instead
 * of one long chain of dependent additions (the scoring of one row, the
 * predict functions' case, is exactly that chain).
 */
typedef float dlk_v8sf __attribute__((vector_size(32)));

DLK_VECTOR static float
dot8(const float *restrict x, const float *restrict w, int n)
{
	dlk_v8sf	acc = {0, 0, 0, 0, 0, 0, 0, 0};
	dlk_v8sf	a = {0, 0, 0, 0, 0, 0, 0, 0};
	dlk_v8sf	b = {0, 0, 0, 0, 0, 0, 0, 0};
	int			i = 0;

	for (; i + 8 <= n; i += 8)
	{
		memcpy(&a, x + i, sizeof(a));
		memcpy(&b, w + i, sizeof(b));
		acc += a * b;
	}
	if (i < n)
	{
		dlk_v8sf	ta = {0, 0, 0, 0, 0, 0, 0, 0};
		dlk_v8sf	tb = {0, 0, 0, 0, 0, 0, 0, 0};

		memcpy(&ta, x + i, sizeof(float) * (n - i));
		memcpy(&tb, w + i, sizeof(float) * (n - i));
		acc += ta * tb;
	}
	return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/*
 * The GEMMs on the pool's threads.  OpenBLAS runs single-threaded; with
 * dltrain.threads = T, gemm() cuts C into T blocks of columns (or of rows,
 * when C has more rows than columns) and each thread computes its block
 * with one sgemm call: the same threads then run the element-wise work
 * too, and no second set of threads spins against them.  A block starts on
 * a multiple of 16 rows or columns.  Each element of C is one dot product
 * over K whatever the cut, computed by OpenBLAS's kernel; only the tile an
 * element falls in can change its rounding (as OpenBLAS's own threading
 * does).
 *
 * Each range is computed in tiles of at most about GEMM_TILE_FLOPS (tens of
 * milliseconds of one core) and GEMM_TILE_ELEMS elements of C, with an
 * abort poll before each: tiles of
 * cut rows or columns of the cut dimension, at multiples of cut from 0,
 * and, when 16 of those are already too much, of ocut of the other
 * dimension too.  Both follow from M, N and K only, so an uncut scoring
 * product is tiled the same whatever dltrain.threads.  A product of less
 * than those bounds is one tile per range, as before tiles existed.
 */
#define GEMM_MIN_FLOPS_PER_THREAD 2000000	/* about 30 us of one core */
#define GEMM_TILE_FLOPS ((size_t) 1 << 30)
#define GEMM_TILE_ELEMS ((size_t) 1 << 22)

typedef struct gemm_job
{
	int			transA,
				transB,
				M,
				N,
				K;
	const float *A;
	int			lda;
	const float *Bm;
	int			ldb;
	float		beta;
	float	   *C;
	int			ldc;
	int			split_n;		/* cut the columns of C (else its rows) */
	const float *bias;			/* if set: every row of C = bias first, beta 1 */
	size_t		cut;			/* tiles: rows or columns of the cut dimension */
	size_t		ocut;			/* and of the other one */
} gemm_job;

/* Rows [r0, r1) and columns [c0, c1) of C: one sgemm over the whole of K. */
static void
gemm_tile(const gemm_job *j, size_t r0, size_t r1, size_t c0, size_t c1)
{
	/* the bias rows of this tile, just before the product reads them */
	if (j->bias != NULL)
		for (size_t r = r0; r < r1; r++)
			memcpy(j->C + r * j->ldc + c0, j->bias + c0, sizeof(float) * (c1 - c0));
	dlk_cblas_sgemm(DLK_CBLAS_ROW_MAJOR, j->transA, j->transB, (int) (r1 - r0),
					(int) (c1 - c0), j->K, 1.0f,
					j->transA == DLK_CBLAS_NO_TRANS ? j->A + r0 * (size_t) j->lda : j->A + r0,
					j->lda,
					j->transB == DLK_CBLAS_NO_TRANS ? j->Bm + c0 : j->Bm + c0 * (size_t) j->ldb,
					j->ldb, j->beta, j->C + r0 * (size_t) j->ldc + c0, j->ldc);
}

/* Range [lo, hi) of the cut dimension, tile by tile, polling before each. */
static void
gemm_range(void *arg, size_t lo, size_t hi)
{
	const gemm_job *j = arg;
	size_t		other = (size_t) (j->split_n ? j->M : j->N);

	for (size_t t0 = lo; t0 < hi;)
	{
		size_t		t1 = (t0 / j->cut + 1) * j->cut;

		if (t1 > hi)
			t1 = hi;
		for (size_t u0 = 0; u0 < other; u0 += j->ocut)
		{
			size_t		u1 = other - u0 < j->ocut ? other : u0 + j->ocut;

			if (dlk_abort_poll())
				return;
			if (j->split_n)
				gemm_tile(j, u0, u1, t0, t1);
			else
				gemm_tile(j, t0, t1, u0, u1);
		}
		t0 = t1;
	}
}

/*
 * The tiles of a product, from the shapes only: at most about
 * GEMM_TILE_FLOPS, and at most about GEMM_TILE_ELEMS elements of C (with
 * a short K, writing C is the cost).
 */
static void
gemm_tiles(gemm_job *j)
{
	size_t		other = (size_t) (j->split_n ? j->M : j->N);
	size_t		unit = 2 * (size_t) j->K * other + other;	/* one row or column */

	if (unit * 16 <= GEMM_TILE_FLOPS && other * 16 <= GEMM_TILE_ELEMS)
	{
		size_t		c1 = GEMM_TILE_FLOPS / unit,
					c2 = GEMM_TILE_ELEMS / other;

		j->cut = (c1 < c2 ? c1 : c2) / 16 * 16;
		j->ocut = other;
	}
	else
	{
		size_t		o1 = GEMM_TILE_FLOPS / ((2 * (size_t) j->K + 1) * 16),
					o2 = GEMM_TILE_ELEMS / 16,
					oc = (o1 < o2 ? o1 : o2) / 16 * 16;

		j->cut = 16;
		j->ocut = oc < 16 ? 16 : oc;
	}
}

/*
 * C[M x N] = op(A) op(B) + beta C, row-major, on the pool's threads; with a
 * bias [N], C = op(A) op(B) + bias instead (beta ignored).  DLK_EABORT
 * leaves C partly computed.
 */
static dlk_status
gemm(int transA, int transB, int M, int N, int K, const float *A, int lda,
	 const float *Bm, int ldb, float beta, float *C, int ldc, const float *bias,
	 int use_blas)
{
	gemm_job	j = {transA, transB, M, N, K, A, lda, Bm, ldb,
		bias ? 1.0f : beta, C, ldc, N >= M, bias, 0, 0};
	size_t		flops_per_unit = 2 * (size_t) K * (size_t) (j.split_n ? M : N);

	gemm_tiles(&j);
	if (use_blas == DLK_BLAS_UNCUT)
	{
		dlk_abort_begin();
		gemm_range(&j, 0, (size_t) (j.split_n ? N : M));
		return dlk_abort_status();
	}
	return dlk_pool_for(j.split_n ? N : M, GEMM_MIN_FLOPS_PER_THREAD / flops_per_unit + 1,
						gemm_range, &j);
}

/*
 * Y[B x O] = X[B x I] W[O x I]^T + b, rows of Y ldy floats apart and rows
 * of X ldx apart.  With BLAS the bias rows are written first and the GEMM
 * accumulates onto them (beta = 1): OpenBLAS then skips its pass that scales
 * C by beta = 0, and no second pass adds the bias.
 */
static dlk_status
affine(float *Y, int ldy, const float *X, int ldx, const float *W, const float *b,
	   int B, int I, int O, int use_blas)
{
	if (use_blas)
	{
		if (dlk_cblas_sgemm == NULL)
			return DLK_ENOBLAS;
		return gemm(DLK_CBLAS_NO_TRANS, DLK_CBLAS_TRANS, B, O, I, X, ldx, W, I,
					1.0f, Y, ldy, b, use_blas);
	}
	/* reference: one dot product of two contiguous rows per output */
	for (int r = 0; r < B; r++)
	{
		const float *x = X + (size_t) r * ldx;
		float	   *y = Y + (size_t) r * ldy;

		if (dlk_abort_poll())
			return DLK_EABORT;

		for (int o = 0; o < O; o++)
			y[o] = dot8(x, W + (size_t) o * I, I);
		bias_row(y, b, O);
	}
	return DLK_OK;
}


static int
dense_sizes_ok(int B, int I, int O)
{
	return B >= 1 && I >= 1 && O >= 1 && I <= DLK_MAX_WIDTH &&
		O <= DLK_MAX_WIDTH;
}

dlk_status
dlk_dense_forward(float *Y, const float *X, const float *W,
				  const float *b, int B, int I, int O, int use_blas)
{
	if (!dense_sizes_ok(B, I, O))
		return DLK_EINVAL;
	return affine(Y, O, X, I, W, b, B, I, O, use_blas);
}

/* Rows of width floats between two polls. */
static int
poll_rows(int width)
{
	size_t		r = DLK_POLL_ELEMS / (size_t) (width > 0 ? width : 1);

	return r < 1 ? 1 : (int) r;
}

/* gb[o] = sum_r dY[r, o]: row-wise accumulation, contiguous; rows ld apart */
static dlk_status
bias_grad(float *gb, const float *dY, int ld, int B, int O)
{
	int			pr = poll_rows(O);

	memcpy(gb, dY, (size_t) O * sizeof(float));
	for (int r = 1; r < B; r++)
	{
		const float *dy = dY + (size_t) r * ld;

		if (r % pr == 0 && dlk_abort_poll())
			return DLK_EABORT;
		for (int o = 0; o < O; o++)
			gb[o] += dy[o];
	}
	return DLK_OK;
}

/*
 * gW[O x I] = dY^T [O x B] X [B x I]; rows lddy and ldx apart.  Overwrites
 * gW, or, with onto_zero, adds onto a gW known to hold zeros (the same
 * result, without zeroing it first).
 */
static dlk_status
weight_grad(float *gW, const float *dY, int lddy, const float *X, int ldx, int B,
			int I, int O, int use_blas, int onto_zero)
{
	if (use_blas)
		return gemm(DLK_CBLAS_TRANS, DLK_CBLAS_NO_TRANS, O, I, B, dY, lddy, X, ldx,
					onto_zero ? 1.0f : 0.0f, gW, I, NULL, use_blas);
	/* reference: gW[o, :] += dY[r, o] * X[r, :] (axpy over rows of X) */
	if (!onto_zero && zero_floats(gW, (size_t) O * (size_t) I) != DLK_OK)
		return DLK_EABORT;
	for (int r = 0; r < B; r++)
	{
		const float *x = X + (size_t) r * ldx;
		const float *dy = dY + (size_t) r * lddy;

		if (dlk_abort_poll())
			return DLK_EABORT;

		for (int o = 0; o < O; o++)
		{
			float	   *gw = gW + (size_t) o * I;
			float		d = dy[o];

			for (int i = 0; i < I; i++)
				gw[i] += d * x[i];
		}
	}
	return DLK_OK;
}

/*
 * dY [B x O], X [B x I], W [O x I]  ->  gW [O x I], gb [O], dX [B x I];
 * rows of dX, dY and X are lddx, lddy and ldx floats apart.
 */
static dlk_status
dense_backward(float *dX, int lddx, float *gW, float *gb, const float *dY, int lddy,
			   const float *X, int ldx, const float *W, int B, int I, int O,
			   int use_blas, int gw_zero)
{
	dlk_status	st;

	if (use_blas && dlk_cblas_sgemm == NULL)
		return DLK_ENOBLAS;

	if ((st = bias_grad(gb, dY, lddy, B, O)) != DLK_OK ||
		(st = weight_grad(gW, dY, lddy, X, ldx, B, I, O, use_blas, gw_zero)) != DLK_OK)
		return st;
	if (dX == NULL)
		return DLK_OK;

	/* dX[B x I] = dY [B x O] W [O x I] */
	if (use_blas)
		return gemm(DLK_CBLAS_NO_TRANS, DLK_CBLAS_NO_TRANS, B, I, O, dY, lddy, W, I,
					0.0f, dX, lddx, NULL, use_blas);
	/* reference: dX[r, :] = sum_o dY[r, o] * W[o, :] */
	for (int r = 0; r < B; r++)
	{
		float	   *dx = dX + (size_t) r * lddx;
		const float *dy = dY + (size_t) r * lddy;

		if (dlk_abort_poll())
			return DLK_EABORT;

		memset(dx, 0, (size_t) I * sizeof(float));
		for (int o = 0; o < O; o++)
		{
			const float *w = W + (size_t) o * I;
			float		d = dy[o];

			for (int i = 0; i < I; i++)
				dx[i] += d * w[i];
		}
	}
	return DLK_OK;
}

dlk_status
dlk_dense_backward(float *dX, float *gW, float *gb, const float *dY,
				   const float *X, const float *W, int B, int I,
				   int O, int use_blas)
{
	if (!dense_sizes_ok(B, I, O))
		return DLK_EINVAL;
	return dense_backward(dX, I, gW, gb, dY, O, X, I, W, B, I, O, use_blas, 0);
}

/* ------------------------------------------------------------------------
 * Activations
 * ------------------------------------------------------------------------ */

void
dlk_act_forward(float *Y, const float *X, size_t n, dlk_act act)
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

void
dlk_act_backward(float *dX, const float *dY, const float *Y, size_t n,
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
DLK_VECTOR static dlk_status
softmax_ce(double *loss, float *dlogits, int ldd, const float *logits, int ldz,
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
	pr = poll_rows(C);
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

dlk_status
dlk_softmax_ce(double *loss, float *dlogits, const float *logits,
			   const int32_t *labels, int B, int C)
{
	return softmax_ce(loss, dlogits, C, logits, C, labels, B, C, NULL);
}

void
dlk_mse(double *loss, float *dpred, const float *pred,
		const float *target, int B, int C)
{
	size_t		n = (size_t) B * (size_t) C;
	double		total = 0.0;
	float		scale;
	size_t		k;

	if (B < 1 || C < 1)
	{
		if (loss != NULL)
			*loss = 0.0;
		return;
	}
	scale = (float) (2.0 / (double) n);
	for (k = 0; k < n; k++)
	{
		double		e = (double) pred[k] - (double) target[k];

		total += e * e;
	}
	if (dpred != NULL)
		for (k = 0; k < n; k++)
			dpred[k] = scale * (pred[k] - target[k]);
	if (loss != NULL)
		*loss = total / (double) n;
}

void
dlk_softmax_rows(float *P, const float *logits, int B, int C)
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

/* ------------------------------------------------------------------------
 * Optimizers: flat loops over n parameters
 * ------------------------------------------------------------------------ */

DLK_VECTOR void
dlk_sgd_step(float *restrict p, const float *restrict g, float *restrict m,
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

DLK_VECTOR void
dlk_adam_step(float *restrict p, const float *restrict g, float *restrict m,
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

/* Fewest parameters per thread worth a helper's wake-up (about 5 us of Adam). */
#define OPT_MIN_PER_THREAD 16384

typedef struct opt_job
{
	dlk_net    *net;
	const dlk_opt *opt;
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
			dlk_sgd_step(net->params + lo, net->grads + lo, m ? m + lo : NULL,
						 hi - lo, opt->lr, opt->momentum, opt->weight_decay);
			break;
		case DLK_OPT_ADAM:
		case DLK_OPT_ADAMW:
			/* dlk_net_bind zeroed m only: v starts at zero on step 1 */
			if (net->step == 1)
				memset(m + n + lo, 0, (hi - lo) * sizeof(float));
			dlk_adam_step(net->params + lo, net->grads + lo, m + lo, m + n + lo,
						  hi - lo, opt->lr, opt->beta1, opt->beta2, opt->eps,
						  opt->weight_decay, net->step, opt->kind == DLK_OPT_ADAMW);
			break;
	}
	/* consumed: zero them while they are in cache (see grads_zero) */
	memset(net->grads + lo, 0, (hi - lo) * sizeof(float));
}

/* opt_piece over [lo, hi) in pieces (element-wise: the same values), polling */
static void
opt_range(void *arg, size_t lo, size_t hi)
{
	for (size_t k = lo; k < hi; k += DLK_POLL_ELEMS)
	{
		if (dlk_abort_poll())
			return;
		opt_piece(arg, k, hi - k < DLK_POLL_ELEMS ? hi : k + DLK_POLL_ELEMS);
	}
}

dlk_status
dlk_opt_step(dlk_net *net, const dlk_opt *opt)
{
	opt_job		job = {net, opt};
	dlk_status	st;

	if (net->grads == NULL || opt == NULL)
		return DLK_EINVAL;
	if (opt->kind != DLK_OPT_SGD && net->opt_state == NULL)
		return DLK_EINVAL;
	net->step++;
	st = dlk_pool_for(net->n_params, OPT_MIN_PER_THREAD, opt_range, &job);
	net->grads_zero = st == DLK_OK;
	return st;
}

/* ------------------------------------------------------------------------
 * Whole network
 * ------------------------------------------------------------------------ */

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
static dlk_status
act_rows(float *Y, int ld, int B, int O, dlk_act act)
{
	int			pr = poll_rows(O);

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
				dlk_act_forward(y, y, (size_t) (r1 - r0) * O, act);
			continue;
		}
		for (int r = r0; r < r1; r++)
		{
			if (act == DLK_ACT_RELU)
				relu_inplace(Y + (size_t) r * ld, O);
			else
				dlk_act_forward(Y + (size_t) r * ld, Y + (size_t) r * ld, O, act);
		}
	}
	return DLK_OK;
}

/* dX *= act'(Y) in place on B rows of I values, ldx and ldy floats apart. */
static dlk_status
act_backward_rows(float *dX, int ldx, const float *Y, int ldy, int B, int I, dlk_act act)
{
	int			pr = poll_rows(I);

	for (int r0 = 0; r0 < B; r0 += pr)
	{
		int			r1 = B - r0 < pr ? B : r0 + pr;

		if (dlk_abort_poll())
			return DLK_EABORT;
		if (ldx == I && ldy == I)
		{
			dlk_act_backward(dX + (size_t) r0 * I, dX + (size_t) r0 * I,
							 Y + (size_t) r0 * I, (size_t) (r1 - r0) * I, act);
			continue;
		}
		for (int r = r0; r < r1; r++)
			dlk_act_backward(dX + (size_t) r * ldx, dX + (size_t) r * ldx,
							 Y + (size_t) r * ldy, I, act);
	}
	return DLK_OK;
}

/*
 * Forward into act[0..L-1] from X [B x D]; with X NULL, act[0] already
 * holds layer 0's output before its activation (the fused first layer).
 * Rows of act[0] are ld0 floats apart.
 */
static dlk_status
net_forward_from(dlk_net *net, const float *X, int B)
{
	int			L = net->arch.n_layers;
	const float *in = X;
	int			ldin = net->arch.dims[0];
	int			l;
	dlk_status	st;

	for (l = 0; l < L; l++)
	{
		int			I = net->arch.dims[l];
		int			O = net->arch.dims[l + 1];
		int			ldout = l == 0 ? net->ld0 : O;

		if (l > 0 || X != NULL)
		{
			st = affine(net->act[l], ldout, in, ldin, net->W[l], net->b[l], B, I, O,
						net->use_blas);
			if (st != DLK_OK)
				return st;
		}
		if (l < L - 1 &&
			(st = act_rows(net->act[l], ldout, B, O, net->arch.act)) != DLK_OK)
			return st;
		in = net->act[l];
		ldin = ldout;
	}
	return DLK_OK;
}

/* Forward into act[0..L-1]; X [B x D]. */
static dlk_status
net_forward(dlk_net *net, const float *X, int B)
{
	return net_forward_from(net, X, B);
}

const float *
dlk_forward(dlk_net *net, const float *X, int B)
{
	if (net == NULL || X == NULL || B < 1 || B > net->max_batch)
		return NULL;
	if (net_forward(net, X, B) != DLK_OK)
		return NULL;
	return net->act[net->arch.n_layers - 1];
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
static dlk_status
grads_finite(const dlk_net *net)
{
	finite_job	job = {.x = net->grads};
	dlk_status	st;

	atomic_init(&job.bad, 0);
	st = dlk_pool_for(net->n_params, 4 * OPT_MIN_PER_THREAD, finite_range, &job);
	if (st != DLK_OK)
		return st;
	return atomic_load_explicit(&job.bad, memory_order_relaxed) == 0 ? DLK_OK : DLK_ENONFINITE;
}

/*
 * The loss of act[L-1] and dL/d(output) into dbuf[0] (into dact0 for a
 * fused logistic model, whose output is act[0]).
 */
static dlk_status
net_loss(dlk_net *net, const int32_t *labels, const float *targets, int B,
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
		/* a strided dlogits has dbuf[0] (unused then) for its exponentials */
		return softmax_ce(lv, d, ldd, net->act[L - 1], ldz, labels, B, C, net->dbuf[0]);
	}
	if (targets == NULL)
		return DLK_EINVAL;
	if (ldz != C || ldd != C)
	{
		/* a fused regression model without hidden layers: row by row */
		double		t = 0;

		for (int r = 0; r < B; r++)
		{
			double		lr;

			dlk_mse(&lr, d + (size_t) r * ldd, net->act[L - 1] + (size_t) r * ldz,
					targets + (size_t) r * C, 1, C);
			t += lr;
			for (int c = 0; c < C; c++)
				d[(size_t) r * ldd + c] /= (float) B;
		}
		*lv = t / B;
		return DLK_OK;
	}
	dlk_mse(lv, d, net->act[L - 1], targets, B, C);
	return DLK_OK;
}

/*
 * Backward from the loss gradient in dbuf[0] through layers L-1 .. stop.
 * dbuf[cur] holds dL/d(output of layer l) [B x O]; the input gradient goes
 * to dbuf[1 - cur] (to dact0 for layer 0's output in a fused step), through
 * the activation of layer l-1 (computed from its output act[l-1]) in place.
 */
static dlk_status
net_backward(dlk_net *net, const float *X, int B, int stop)
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
	for (l = net->arch.n_layers - 1; l >= stop; l--)
	{
		int			I = net->arch.dims[l];
		int			O = net->arch.dims[l + 1];
		const float *in = l > 0 ? net->act[l - 1] : X;
		int			ldin = l == 1 ? net->ld0 : I;
		float	   *dX = NULL;
		int			lddx = I;

		if (l == 1 && net->dact0 != NULL)
		{
			dX = net->dact0;
			lddx = net->ld0;
		}
		else if (l > 0)
			dX = net->dbuf[1 - cur];
		st = dense_backward(dX, lddx, net->gW[l], net->gb[l], net->dbuf[cur], O,
							in, ldin, net->W[l], B, I, O, net->use_blas, gz);
		if (st != DLK_OK)
			return st;
		if (l > 0)
		{
			st = act_backward_rows(dX, lddx, net->act[l - 1], ldin, B, I, net->arch.act);
			if (st != DLK_OK)
				return st;
			cur = 1 - cur;
		}
	}
	/* layers below stop keep their zeros; the fused step writes layer 0's */
	return DLK_OK;
}

dlk_status
dlk_loss_grad(dlk_net *net, const float *X, const int32_t *labels,
			  const float *targets, int B, double *loss)
{
	double		lv = 0.0;
	dlk_status	st;

	if (net == NULL || X == NULL || net->grads == NULL ||
		B < 1 || B > net->max_batch)
		return DLK_EINVAL;
	if ((st = net_forward(net, X, B)) != DLK_OK)
		return st;
	st = net_loss(net, labels, targets, B, &lv);
	if (st != DLK_OK)
		return st;
	if (loss != NULL)
		*loss = lv;
	if (!isfinite(lv))
		return DLK_ENONFINITE;
	if ((st = net_backward(net, X, B, 0)) != DLK_OK)
		return st;
	return grads_finite(net);
}

dlk_status
dlk_train_step(dlk_net *net, const float *X, const int32_t *labels,
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
	if ((st = dlk_loss_grad(net, X, labels, targets, B, loss)) != DLK_OK)
		return st;
	return dlk_opt_step(net, opt);
}

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

dlk_status
dlk_train_step_fused(dlk_net *const *nets, const dlk_opt *const *opts, int K,
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
			B < 1 || B > n->max_batch)
			return DLK_EINVAL;
		sum_o += n->arch.dims[1];
	}
	if (use_blas && dlk_cblas_sgemm == NULL)
		return DLK_ENOBLAS;
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
	if ((st = affine(Ycat, ld, X, D, Wcat, bcat, B, D, sum_o, use_blas)) != DLK_OK)
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
		if ((st = net_forward_from(n, NULL, B)) == DLK_OK &&
			(st = net_loss(n, labels, targets, B, &lv)) == DLK_OK)
		{
			losses[k] = lv;
			if (!isfinite(lv))
				status[k] = DLK_ENONFINITE;
			else
				st = net_backward(n, X, B, 1);
		}
		/* a diverged network contributes zeros and takes no step */
		if (st == DLK_OK && status[k] != DLK_OK)
			for (int r = 0; r < B; r++)
				memset(dYcat + (size_t) r * ld + off, 0, sizeof(float) * O);
		if (st == DLK_OK && status[k] == DLK_OK)
			st = bias_grad(n->gb[0], dYcat + off, ld, B, O);
		n->act[0] = act0;
		n->ld0 = O;
		n->dact0 = NULL;
		off += O;
	}
	if (st != DLK_OK)
		return st;

	/* every first-layer weight gradient in one GEMM: gWcat = dYcat^T X */
	if ((st = weight_grad(Wcat, dYcat, ld, X, D, B, D, sum_o, use_blas, 0)) != DLK_OK)
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
			st = grads_finite(n);
			if (st == DLK_ENONFINITE)
				status[k] = DLK_ENONFINITE;
			else if (st != DLK_OK || (st = dlk_opt_step(n, opts[k])) != DLK_OK)
				return st;
		}
		off += O;
	}
	return DLK_OK;
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
			return "BLAS path requested but no BLAS library is bound";
		case DLK_EBLASLOAD:
			return "could not load the BLAS library";
		case DLK_ENONFINITE:
			return "loss or gradients are not finite";
		case DLK_EABORT:
			return "stopped by the abort callback";
	}
	return "unknown status";
}

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
