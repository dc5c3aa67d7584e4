/*
 * step_speed.c — training speed of the kernel library through the device
 * interface (src/kernels/dlk_device.h, the "cpu" device), no PostgreSQL:
 * the time of one epoch of mini-batch steps (Adam, B = 128) of one model,
 * and of K = 8 models (logistic 784-10, and 64-128-64-10) fused
 * (train_step_fused) against the same 8 stepped one by one.  Built against any revision's kernels by
 * bench/step_speed.sh, which runs two builds interleaved and prints
 * medians; one run of this program is one repeat: one line per case,
 * "case ms_per_epoch".
 *
 *   step_speed [--scale S]   rows per epoch times S (default 1)
 */
#include "dlk.h"
#include "dlk_device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *
m_alloc(void *ctx, size_t bytes)
{
	(void) ctx;
	return malloc(bytes);
}

static void
m_free(void *ctx, void *p)
{
	(void) ctx;
	free(p);
}

static const dlk_allocator alloc = {NULL, m_alloc, m_free};

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static dlk_arch
arch3(int D, int H1, int H2, int C)
{
	dlk_arch	a;

	memset(&a, 0, sizeof(a));
	a.dims[0] = D;
	if (H1 == 0)
		a.n_layers = 1;
	else if (H2 == 0)
		a.n_layers = 2, a.dims[1] = H1;
	else
		a.n_layers = 3, a.dims[1] = H1, a.dims[2] = H2;
	a.dims[a.n_layers] = C;
	a.act = DLK_ACT_RELU;
	a.loss = DLK_LOSS_SOFTMAX_CE;
	return a;
}

enum {B = 128};

/* the data of an epoch: rows x D, labels in [0, C) */
static float *data_x;
static int32_t *data_y;
static size_t data_rows;

static void
make_data(size_t rows, int D, int C)
{
	dlk_rng		r;

	free(data_x);
	free(data_y);
	data_x = malloc(sizeof(float) * rows * D);
	data_y = malloc(sizeof(int32_t) * rows);
	dlk_rng_seed(&r, 42);
	for (size_t i = 0; i < rows * D; i++)
		data_x[i] = (float) (2.0 * dlk_rng_uniform(&r) - 1.0);
	for (size_t i = 0; i < rows; i++)
		data_y[i] = (int32_t) dlk_rng_below(&r, (uint64_t) C);
	data_rows = rows;
}

/* one epoch of K networks (fused, or one by one); ms */
static double
epoch(const dlk_arch *a, int K, int fused, int T)
{
	const dlk_device *dev = &dlk_device_cpu;
	dlk_opt		o = {DLK_OPT_ADAM, 1e-3f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.0f};
	dlk_dnet   *net[16];
	dlk_dfused *f = NULL;
	dlk_batch  *b;
	int			D = a->dims[0];
	double		t0,
				t1;

	dlk_pool_set_threads(T);
	for (int k = 0; k < K; k++)
	{
		o.lr = 1e-3f * (k + 1);
		if (dev->net_bind(&alloc, a, B, &o, &net[k]) != DLK_OK)
			exit(2);
		dev->init_params(net[k], 7 + k, DLK_INIT_HE_GLOROT);
	}
	if (fused && dev->fused_bind(&alloc, net, K, B, &f) != DLK_OK)
		exit(2);
	if (dev->batch_create(&alloc, B, D, a->dims[a->n_layers], &b) != DLK_OK)
		exit(2);
	t0 = now_ms();
	for (size_t r0 = 0; r0 + B <= data_rows; r0 += B)
	{
		memcpy(b->x, data_x + r0 * D, sizeof(float) * B * D);
		memcpy(b->y, data_y + r0, sizeof(int32_t) * B);
		dev->batch_upload(b, B);
		if (fused)
			dev->train_step_fused(f, net, K, b, B);
		else
			for (int k = 0; k < K; k++)
				dev->train_step(net[k], b, B);
	}
	for (int k = 0; k < K; k++)
	{
		dlk_progress p;

		dev->net_read(net[k], &p);
		if (p.nonfinite)
			fprintf(stderr, "network %d diverged\n", k);
	}
	t1 = now_ms();
	if (f)
		dev->fused_free(f);
	dev->batch_free(b);
	for (int k = 0; k < K; k++)
		dev->net_free(net[k]);
	return t1 - t0;
}

int
main(int argc, char **argv)
{
	char		err[256];
	double		scale = 1;
	dlk_arch	wide = arch3(784, 256, 128, 10),
				small = arch3(64, 128, 64, 10),
				logi = arch3(784, 0, 0, 10);

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc)
			scale = atof(argv[++i]);
	setenv("OPENBLAS_NUM_THREADS", "1", 0);
	if (dlk_blas_open(NULL, err, sizeof(err)) != DLK_OK)
		fprintf(stderr, "note: %s\n", err);
	dlk_blas_set_threads(1);	/* as the extension runs it */

	make_data((size_t) (25600 * scale), 784, 10);
	printf("wide_784-256-128-10_1t %.2f\n", epoch(&wide, 1, 0, 1));
	printf("wide_784-256-128-10_2t %.2f\n", epoch(&wide, 1, 0, 2));
	printf("logistic_784-10_1t %.2f\n", epoch(&logi, 1, 0, 1));
	printf("logistic_784-10_K8_fused_1t %.2f\n", epoch(&logi, 8, 1, 1));
	printf("logistic_784-10_K8_one_by_one_1t %.2f\n", epoch(&logi, 8, 0, 1));
	make_data((size_t) (102400 * scale), 64, 10);
	printf("small_64-128-64-10_1t %.2f\n", epoch(&small, 1, 0, 1));
	printf("small_64-128-64-10_2t %.2f\n", epoch(&small, 1, 0, 2));
	printf("small_64-128-64-10_K8_fused_1t %.2f\n", epoch(&small, 8, 1, 1));
	printf("small_64-128-64-10_K8_one_by_one_1t %.2f\n", epoch(&small, 8, 0, 1));
	return 0;
}
