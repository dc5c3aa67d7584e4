/*
 * bench_ftz.c — figures, not a test: one training step of a 784 -> 10
 * logistic model at B = 128 whose softmax probabilities are subnormal (a
 * model made confident by a large learning rate), through the BLAS path on
 * one thread.  `make bench` runs it built with and without the kernels'
 * FTZ/DAZ mode (-DDLK_NO_FTZ).
 */
#include "dlk.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int
main(void)
{
	enum
	{
	B = 128, D = 784, C = 10, REPS = 200};
	dlk_arch	a = {1, {D, C}, DLK_ACT_RELU, DLK_LOSS_SOFTMAX_CE};
	dlk_opt		o = {DLK_OPT_SGD, 0.0f, 0, 0.9f, 0.999f, 1e-8f, 0};	/* lr 0: the same step each time */
	dlk_sizes	sz;
	dlk_net		net;
	float	   *p,
			   *g,
			   *s,
			   *w,
			   *X;
	int32_t		y[B];
	double		loss;
	char		err[200];
	struct timespec t0,
				t1;
	dlk_rng		r;

	if (dlk_blas_open(NULL, err, sizeof(err)) != DLK_OK)
	{
		printf("no BLAS: %s\n", err);
		return 0;
	}
	dlk_blas_set_threads(1);
	dlk_sizes_for(&sz, &a, B, DLK_OPT_SGD);
	p = calloc(sz.n_params, 4);
	g = calloc(sz.n_params, 4);
	s = calloc(sz.n_opt_state, 4);
	w = calloc(sz.n_work, 4);
	X = malloc(sizeof(float) * B * D);
	dlk_rng_seed(&r, 1);
	for (int i = 0; i < B * D; i++)
		X[i] = (float) dlk_rng_uniform(&r);	/* pixels in [0, 1) */
	for (int i = 0; i < B; i++)
		y[i] = i % C;
	dlk_net_bind(&net, &a, B, 1, p, g, s, w);
	/* class c's weights favour rows of label c by a wide margin */
	for (int c = 0; c < C; c++)
		for (int d = 0; d < D; d++)
			net.W[0][c * D + d] = (d % C == c) ? 3.0f : -3.0f;
	for (int i = 0; i < B; i++)
		for (int d = 0; d < D; d++)
			X[i * D + d] = (d % C == y[i]) ? 1.0f : X[i * D + d] * 0.01f;
	dlk_train_step(&net, X, y, NULL, B, &o, &loss);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int k = 0; k < REPS; k++)
		dlk_train_step(&net, X, y, NULL, B, &o, &loss);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%s: %.1f us per step (784->10 logistic, B=128, subnormal probabilities; loss %.3g)\n",
#ifdef DLK_NO_FTZ
		   "without FTZ/DAZ",
#else
		   "with FTZ/DAZ   ",
#endif
		   ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / REPS, loss);
	return 0;
}
