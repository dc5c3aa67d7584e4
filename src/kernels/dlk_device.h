/*
 * dlk_device.h — the device interface: everything the trainer and the scorer
 * ask of the kernels, behind one struct of function pointers.
 *
 * The glue picks a device by name (dlk_device_find) and from then on calls
 * only its operations: it binds networks and batch buffers through it, never
 * allocates a kernel buffer itself, and never touches a dlk_net.  Two
 * devices live in this library:
 *   "cpu"        the fast kernels: exact GEMMs (dlk_gemm.h) cut over the
 *                pool's threads (use_blas 1); inference binds run each
 *                product uncut on the caller (DLK_BLAS_UNCUT), whatever
 *                the pool, or the reference kernels for single rows (as
 *                the scorer did).  A model's bits depend neither on the
 *                thread count nor on the networks fused with it.
 *   "reference"  the plain reference kernels (use_blas 0) everywhere
 * A "cuda" device lives in a shared object of its own, loaded only when
 * asked for, and exports the same struct (its own dlk_device_find-like
 * entry point, resolved by dlsym).
 *
 * Ownership.  Every buffer a device needs is allocated by the device
 * through the dlk_allocator the glue passes in at bind: the CPU devices take
 * all their memory (the network object, parameters, gradients, optimizer
 * state, activations, batch staging) from it, so that the glue's memory
 * context owns it and an error or a cancel releases it with the context.
 * The allocator returns NULL on failure (palloc_extended with
 * MCXT_ALLOC_NO_OOM); the device then frees what it took and returns
 * DLK_ENOMEM, and the glue raises the error.  A device that holds memory
 * the allocator cannot give (GPU memory: cudaMalloc) frees it in net_free,
 * batch_free and fused_free; the glue registers those as release functions
 * with a resource owner (or a memory-context reset callback that only
 * frees), so that they run exactly once on success, error or cancel.  On the
 * CPU devices the *_free operations give the allocator's memory back
 * through allocator->free when it is not NULL, and do nothing otherwise.
 *
 * Parameters are host-readable and host-writable: net_params returns a host
 * pointer to them when the device keeps them in host memory (the CPU
 * devices: the glue may then encode the model straight from it), NULL
 * otherwise; params_read / params_write copy them out and in (n_params
 * floats, the layout of dlk.h) and are synchronous.
 *
 * Batches.  A dlk_batch is created through the device, with a capacity of
 * cap rows of D features, cap int32 class labels and cap x C targets.  The
 * glue writes n rows into the host staging buffers x, y and t, then calls
 * batch_upload(batch, n): a no-op on the CPU devices, a copy to the device
 * on others.  After batch_upload the device may point x, y and t at a
 * second set of staging buffers (double buffering: the next batch is
 * written while the previous one is in use), so the glue reads the
 * pointers again after every upload.  One batch may feed several networks
 * (the K members of a stream), and a step reads the batch last uploaded.
 *
 * Synchrony.  train_step, train_step_fused and batch_upload return nothing
 * that forces a wait: a step's loss and whether it stayed finite go into
 * the network's progress counters, which net_read returns (and where an
 * asynchronous device synchronizes).  Per network, since bind or the last
 * net_reset:
 *     loss_sum  += loss * rows     (double, step after step, in order)
 *     rows      += rows;  steps += 1
 * for every step whose loss and gradients were finite.  A step that finds
 * a non-finite loss or gradient leaves the network without an update and
 * marks it (nonfinite = 1, nonfinite_step = the 0-based index of that step
 * among all the steps asked of this network since bind); the mark is sticky:
 * every later step of that network is a no-op, and a fused step leaves it
 * out of the fused GEMMs exactly as if the glue had left it out.  So the
 * glue may call net_read after every step (the CPU devices: cheap) or every
 * N steps or at the end of an epoch (an asynchronous device) and gets the
 * same final model and counters.  net_reset zeroes loss_sum, rows and
 * steps (not the mark), in order with the steps.  net_eval and
 * net_predict, params_read/params_write and net_read are synchronous.
 *
 * Errors.  Every operation returns a dlk_status: DLK_EINVAL for arguments
 * that do not fit (sizes, a label out of range, networks that cannot be
 * fused), DLK_ENOMEM when the allocator said no,
 * DLK_EABORT when the abort callback (dlk_set_abort) said stop: polled on
 * the calling thread between pieces of work, as everywhere in the kernels.
 * After DLK_EABORT or any error from a step, the network's parameters and
 * state are undefined: the glue raises an error and frees it.  An
 * asynchronous device may report an error of an earlier step from a later
 * operation or from net_read.  DLK_ENONFINITE is never returned by a step:
 * it is the sticky mark above.
 *
 * Floating point.  Every operation that computes runs with flush-to-zero
 * and denormals-are-zero (x86-64 MXCSR) and restores the caller's mode
 * before it returns, whatever the outcome (dlk_internal.h).
 *
 * What a CUDA device must provide: every operation below; net_params may
 * return NULL (params_read/params_write then copy from and to the GPU);
 * batch_upload copies the staged rows (cudaMemcpyAsync from pinned staging)
 * and may swap staging buffers; train_step and train_step_fused enqueue work
 * and accumulate the loss and the non-finite mark on the device (the same
 * order of additions, in double); net_read synchronizes and copies the
 * counters back; it polls the abort callback while it waits (the callback
 * runs on the calling thread only); *_free releases device memory and may be
 * called at any time after a failed or aborted operation.
 */
#ifndef DLK_DEVICE_H
#define DLK_DEVICE_H

#include "dlk.h"

#include <stddef.h>
#include <stdint.h>

/* The version of this interface; a loaded device must report the same. */
#define DLK_DEVICE_ABI 2

/* Memory the device takes on the glue's behalf: alloc returns NULL on failure. */
typedef struct dlk_allocator
{
	void	   *ctx;
	void	   *(*alloc) (void *ctx, size_t bytes);
	void		(*free) (void *ctx, void *p);	/* may be NULL: the context frees */
} dlk_allocator;

/* Parameter initializations (dlk_init_params, dlk_init_params_fanin). */
typedef enum dlk_init
{
	DLK_INIT_HE_GLOROT = 0,		/* He for ReLU layers, Glorot otherwise; b = 0 */
	DLK_INIT_FANIN				/* PyTorch's nn.Linear: U(+-1/sqrt(fan_in)) */
} dlk_init;

/* A network on a device; opaque to the glue. */
typedef struct dlk_dnet dlk_dnet;
/* The work buffers of fused steps over a set of networks; opaque. */
typedef struct dlk_dfused dlk_dfused;

/* A batch: host staging the glue writes rows into, then uploads. */
typedef struct dlk_batch
{
	float	   *x;				/* [cap x D] features */
	int32_t    *y;				/* [cap] class labels (classification) */
	float	   *t;				/* [cap x C] targets (regression) */
	int			cap;
	int			D;
	int			C;
	int			n;				/* rows of the last upload */
	void	   *priv;			/* the device's */
} dlk_batch;

/* A network's progress counters (net_read). */
typedef struct dlk_progress
{
	double		loss_sum;		/* sum of loss * rows over finite steps */
	int64_t		rows;			/* rows of those steps */
	int64_t		steps;			/* those steps */
	int			nonfinite;		/* 1 once a step found a non-finite loss */
	int64_t		nonfinite_step; /* its index among all steps asked; -1 */
	int64_t		submitted;		/* steps asked of this network since bind */
} dlk_progress;

typedef struct dlk_device dlk_device;

struct dlk_device
{
	const char *name;
	int			abi;			/* DLK_DEVICE_ABI */

	/*
	 * Bytes the device takes through the allocator for a training network
	 * (opt non-NULL) or an inference one (opt NULL) of max_batch rows, and
	 * for a batch: the glue checks its budget with these before binding.
	 */
	dlk_status	(*net_bytes) (const dlk_arch *arch, int max_batch,
							  const dlk_opt *opt, size_t *bytes);
	dlk_status	(*batch_bytes) (int cap, int D, int C, size_t *bytes);

	/*
	 * A training network for batches of at most max_batch rows, with
	 * optimizer opt (copied).  Parameters are uninitialized: call
	 * init_params or params_write next.
	 */
	dlk_status	(*net_bind) (const dlk_allocator *a, const dlk_arch *arch,
							 int max_batch, const dlk_opt *opt, dlk_dnet **out);

	/*
	 * An inference-only network (no gradients, no optimizer state) over
	 * params, which the CPU devices use in place (it must then stay
	 * unchanged while the network lives) and others copy.
	 */
	dlk_status	(*net_bind_infer) (const dlk_allocator *a, const dlk_arch *arch,
								   int max_batch, const float *params,
								   dlk_dnet **out);
	void		(*net_free) (dlk_dnet *net);

	/* Number of parameters; a host pointer to them, or NULL. */
	size_t		(*n_params) (const dlk_dnet *net);
	float	   *(*net_params) (dlk_dnet *net);
	dlk_status	(*params_read) (dlk_dnet *net, float *dst);
	dlk_status	(*params_write) (dlk_dnet *net, const float *src);
	/* Initializes every parameter from seed. */
	dlk_status	(*init_params) (dlk_dnet *net, uint64_t seed, dlk_init kind);

	/* Batches. */
	dlk_status	(*batch_create) (const dlk_allocator *a, int cap, int D, int C,
								 dlk_batch **out);
	void		(*batch_free) (dlk_batch *b);
	dlk_status	(*batch_upload) (dlk_batch *b, int n);

	/*
	 * One training step on the first n rows of the uploaded batch: forward,
	 * loss, backward, finite check, optimizer update (asynchronous shape:
	 * see Synchrony).  Classification reads y, regression t.
	 */
	dlk_status	(*train_step) (dlk_dnet *net, dlk_batch *b, int n);

	/*
	 * Fused steps (model selection): work for up to K networks of nets
	 * (the same D, all bound on this device, all training) at batches of
	 * max_batch rows.  train_step_fused then steps any subset of them
	 * (K >= 1, in the order given) on one batch: the networks not marked
	 * non-finite, when two or more, take one fused step (dlk_train_step_fused),
	 * a single one a plain train_step; each network's counters as above.
	 */
	dlk_status	(*fused_bind) (const dlk_allocator *a, dlk_dnet *const *nets,
							   int K, int max_batch, dlk_dfused **out);
	void		(*fused_free) (dlk_dfused *f);
	dlk_status	(*train_step_fused) (dlk_dfused *f, dlk_dnet *const *nets, int K,
									 dlk_batch *b, int n);

	/* The progress counters (synchronizes); zeroing them (not the mark). */
	dlk_status	(*net_read) (dlk_dnet *net, dlk_progress *out);
	dlk_status	(*net_reset) (dlk_dnet *net);

	/*
	 * Evaluation on the first n rows of the uploaded batch, no update
	 * (synchronous): *loss the mean loss (softmax CE, or MSE over n x C),
	 * *score the correct predictions (classification: the first index of
	 * the largest output equals the label) or the sum of squared errors
	 * (regression: loss * n * C).
	 */
	dlk_status	(*net_eval) (dlk_dnet *net, dlk_batch *b, int n, double *loss,
							 double *score);

	/*
	 * Forward pass of the first n rows of the uploaded batch into out
	 * [n x C] (host): class probabilities (softmax) for classification,
	 * the outputs for regression.
	 */
	dlk_status	(*net_predict) (dlk_dnet *net, dlk_batch *b, int n, float *out);

	/*
	 * The optimizer's state of a training network (checkpoints): its size in
	 * floats (SGD one slot of n_params, Adam(W) two), and a copy out or in
	 * with the optimizer's step count (Adam's bias correction).  Before the
	 * first step the state is zeros.  Synchronous.
	 */
	/*
	 * Classification: every later training step adds the class it predicts
	 * for each row (before its update) to counts[class] (C int64s the glue
	 * owns and zeroes when it likes); NULL stops counting.  The glue reads
	 * counts after net_read (where an asynchronous device synchronizes).
	 */
	dlk_status	(*net_count_predictions) (dlk_dnet *net, int64_t *counts);

	size_t		(*n_opt_state) (const dlk_dnet *net);
	dlk_status	(*state_read) (dlk_dnet *net, float *dst, int64_t *step);
	dlk_status	(*state_write) (dlk_dnet *net, const float *src, int64_t step);

	/*
	 * Frozen layers (fine-tuning; ABI 2).  net_freeze on a training network,
	 * before its first step: its first `frozen` layers (1 <= frozen <
	 * n_layers; 0 thaws) take no gradient and no update: backward stops at
	 * layer `frozen`, and the optimizer updates only the parameters of the
	 * layers above, [offset of W_frozen, n_params), so weight decay and
	 * Adam's state never move a frozen parameter.  from_features 0: batches
	 * hold the network's inputs (D wide) and the frozen layers run forward
	 * every step (inference mode: the same forward, no gradient); 1: batches
	 * given to train_step, net_eval and net_predict hold the frozen layers'
	 * outputs (materialized features, dims[frozen] wide), and a step runs
	 * only the layers above, with the bits the same rows give through the
	 * frozen layers.  A frozen network takes no fused step (fused_bind and
	 * train_step_fused refuse it).
	 *
	 * net_forward_to: the outputs of the first `layers` layers after their
	 * activation (1 <= layers < n_layers), raw (no softmax), of the first n
	 * rows of the uploaded batch (D wide) into out [n x dims[layers]] (host),
	 * synchronous: the materialized features.  On a training or an
	 * inference network (of more than one row on "cpu": the exact GEMMs,
	 * the bits a training step computes).
	 */
	dlk_status	(*net_freeze) (dlk_dnet *net, int frozen, int from_features);
	dlk_status	(*net_forward_to) (dlk_dnet *net, dlk_batch *b, int n, int layers,
								   float *out);
};

/* The devices of this library: "cpu", "reference"; NULL for another name. */
const dlk_device *dlk_device_find(const char *name);

extern const dlk_device dlk_device_cpu;
extern const dlk_device dlk_device_reference;

#endif							/* DLK_DEVICE_H */
