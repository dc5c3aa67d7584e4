/*
 * dlk_gemm_template.h — the SIMD micro-kernel of dlk_gemm.c, included once
 * per instruction set with these macros defined (then undefined here):
 *
 *   GT_SUFFIX    name suffix (avx2, avx512)
 *   GT_TARGET    the target attribute string
 *   GT_V, GT_W   vector type and its floats
 *   GT_MR, GT_NV rows and vectors of columns of the register block
 *   GT_MASK_T, GT_MASK(n)           mask of the first n lanes
 *   GT_ZERO, GT_LOAD(p), GT_LOADM(p, m), GT_STORE(p, v), GT_STOREM(p, m, v),
 *   GT_BCAST(p), GT_FMA(a, b, c)    (GT_FMA: a * b + c, one rounding)
 *   GT_CASES(X)  X(mr, nv) for every mr in 1..GT_MR, nv in 1..GT_NV
 *
 * The block: acc[r][v] (rows r, GT_W columns each) starts from 0, from C
 * or from the bias, takes kc fused multiply-adds in k order, and is stored
 * to C.  Nothing but k order is involved in any element, so the block
 * shape (MR, NV), the mask and the vector width never change a result.
 */
#define GT_CAT2(a, b) a##_##b
#define GT_CAT(a, b) GT_CAT2(a, b)
#define GT_FN(name) GT_CAT(name, GT_SUFFIX)

static inline __attribute__((always_inline, target(GT_TARGET))) void
GT_FN(ukr) (const int MR, const int NV, const int MASKED, int kc,
			const float *a, ptrdiff_t a_rs, ptrdiff_t a_ks,
			const float *b, ptrdiff_t b_ks, float *c, ptrdiff_t ldc,
			int init, const float *bias, int nlast)
{
	GT_V		acc[GT_MR][GT_NV];
	GT_MASK_T	mk = GT_MASK(nlast);

#pragma GCC unroll 8
	for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++)
		{
			if (init == GEMM_INIT_ZERO)
				acc[r][v] = GT_ZERO;
			else
			{
				const float *src = init == GEMM_INIT_C ? c + r * ldc + v * GT_W : bias + v * GT_W;

				acc[r][v] = (MASKED && v == NV - 1) ? GT_LOADM(src, mk) : GT_LOAD(src);
			}
		}
	for (int k = 0; k < kc; k++)
	{
		GT_V		bv[GT_NV];

#pragma GCC unroll 4
		for (int v = 0; v < NV; v++)
			bv[v] = (MASKED && v == NV - 1) ? GT_LOADM(b + v * GT_W, mk) : GT_LOAD(b + v * GT_W);
#pragma GCC unroll 8
		for (int r = 0; r < MR; r++)
		{
			GT_V		ar = GT_BCAST(a + r * a_rs);

#pragma GCC unroll 4
			for (int v = 0; v < NV; v++)
				acc[r][v] = GT_FMA(ar, bv[v], acc[r][v]);
		}
		a += a_ks;
		b += b_ks;
	}
#pragma GCC unroll 8
	for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++)
		{
			if (MASKED && v == NV - 1)
				GT_STOREM(c + r * ldc + v * GT_W, mk, acc[r][v]);
			else
				GT_STORE(c + r * ldc + v * GT_W, acc[r][v]);
		}
}

/* one register block of mr rows and nv vectors, the last one nlast wide */
static __attribute__((target(GT_TARGET))) void
GT_FN(block) (int mr, int nv, int nlast, int kc,
			  const float *a, ptrdiff_t a_rs, ptrdiff_t a_ks,
			  const float *b, ptrdiff_t b_ks, float *c, ptrdiff_t ldc,
			  int init, const float *bias)
{
	int			masked = nlast != GT_W;

#define GT_X(mr_, nv_) \
	case (mr_) * 16 + (nv_): \
		if (masked) \
			GT_FN(ukr) (mr_, nv_, 1, kc, a, a_rs, a_ks, b, b_ks, c, ldc, init, bias, nlast); \
		else \
			GT_FN(ukr) (mr_, nv_, 0, kc, a, a_rs, a_ks, b, b_ks, c, ldc, init, bias, nlast); \
		break;
	switch (mr * 16 + nv)
	{
			GT_CASES(GT_X)
	}
#undef GT_X
}

/* rows [0, M) of a panel of nv vectors: full register blocks, then the rest */
static __attribute__((target(GT_TARGET))) void
GT_FN(panel) (int M, int nv, int nlast, int kc,
			  const float *a, ptrdiff_t a_rs, ptrdiff_t a_ks,
			  const float *b, ptrdiff_t b_ks, float *c, ptrdiff_t ldc,
			  int init, const float *bias)
{
	int			m = 0;

	for (; m + GT_MR <= M; m += GT_MR)
		GT_FN(block) (GT_MR, nv, nlast, kc, a + m * a_rs, a_rs, a_ks, b, b_ks,
					  c + m * ldc, ldc, init, bias);
	if (m < M)
		GT_FN(block) (M - m, nv, nlast, kc, a + m * a_rs, a_rs, a_ks, b, b_ks,
					  c + m * ldc, ldc, init, bias);
}

#undef GT_CAT2
#undef GT_CAT
#undef GT_FN
#undef GT_SUFFIX
#undef GT_TARGET
#undef GT_V
#undef GT_W
#undef GT_MR
#undef GT_NV
#undef GT_MASK_T
#undef GT_MASK
#undef GT_ZERO
#undef GT_LOAD
#undef GT_LOADM
#undef GT_STORE
#undef GT_STOREM
#undef GT_BCAST
#undef GT_FMA
#undef GT_CASES
