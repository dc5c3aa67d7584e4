/*
 * dlk.h — dltrain's kernel library: dense networks, losses and optimizers.
 *
 * This library includes no PostgreSQL header.  It never allocates, prints,
 * exits or longjmps: every buffer comes from the caller (the glue allocates it
 * in a memory context, so an error or a cancel releases it), and functions
 * report trouble through a dlk_status.
 *
 * A network is a stack of dense layers.  Layer l maps dims[l] inputs to
 * dims[l+1] outputs; every layer but the last is followed by the hidden
 * activation; the last layer's output is the logits (classification, fed to a
 * fused softmax cross-entropy) or the prediction (regression, fed to mean
 * squared error).
 *
 * Dimension letters: B batch rows, I a layer's inputs, O a layer's outputs,
 * D the network input width, C the network output width (classes or targets).
 * All matrices are row-major.  A layer's weight W is [O x I] (the layout of
 * PyTorch's nn.Linear.weight), its bias b is [O].  Activations are [B x width].
 *
 * Memory layout.  All parameters live in ONE contiguous float buffer:
 *     W_0, b_0, W_1, b_1, ..., W_{L-1}, b_{L-1}
 * The gradient buffer has exactly the same layout, and so does each slot of
 * the optimizer state (Adam: m then v, each n_params floats; SGD: one
 * momentum slot).  The optimizer is therefore one flat loop, and a model
 * serializes or copies in one piece.
 *
 * Products.  The fast path (use_blas 1 or DLK_BLAS_UNCUT) computes every
 * matrix product of a layer, forward, weight gradient and input gradient,
 * with the exact GEMMs of dlk_gemm.h: each output element is one fused
 * multiply-add chain down the reduction in index order.  So an element's
 * bits depend on that layer's own numbers only: not on the thread cut
 * (dltrain.threads), not on the other models' columns in a fused step, not
 * on the CPU's SIMD level, and nothing rests on a BLAS library's
 * internals.  Every other part of a step (bias gradients, activations,
 * losses, the optimizer) is element-wise or reduces in a fixed order per
 * model, so K networks stepped together (dlk_train_step_fused) get the
 * bits each gets alone, at any thread count.  Every kernel also has a
 * plain reference version (use_blas = 0) that the tests compare the fast
 * one with.  No training or scoring product uses OpenBLAS any more;
 * dlk_blas_open() still binds it (the glue opens it in a backend that
 * trains, with signals blocked) for callers that want cblas_sgemm, such as
 * benchmarks.
 *
 * Abort.  Long work stops early when the glue asks: dlk_set_abort() installs
 * a callback that runs on the calling (backend's) thread only, and says
 * whether to stop (the glue's checks a pending cancel or termination; it
 * neither raises an error nor longjmps).  The kernels poll it between
 * pieces of work of bounded size (about 2^23 flops of a GEMM, about 2^20
 * elements of an element-wise pass), and when
 * it says stop, raise a flag that the pool's helpers read between their
 * pieces; the call then returns DLK_EABORT (dlk_forward NULL) and leaves
 * its outputs and the network's buffers undefined.  The glue then lets PostgreSQL raise the
 * error.  The pieces are fixed by the shapes (a product is cut along the
 * rows or columns of its output, never along its reduction dimension), so
 * whether and where an abort was polled never changes a result.
 *
 * Floating-point mode.  The entry points that compute for training,
 * evaluation and scoring (dlk_forward, dlk_loss_grad, dlk_train_step, the
 * fused step, dlk_opt_step, the layer, activation, loss and optimizer
 * functions, and the device operations of dlk_device.h) run with
 * flush-to-zero and denormals-are-zero on x86-64, on the caller's thread
 * and on the pool's helpers, and give the caller's MXCSR back unchanged on
 * every return (dlk_internal.h).  Subnormal values (a confident softmax's
 * probabilities) are zeros there: the same model bits whatever the
 * caller's mode, at full speed.  The row operations (statistics,
 * conversion, standardization) keep the caller's mode.
 */
#ifndef DLK_H
#define DLK_H

#include <stddef.h>
#include <stdint.h>

#define DLK_MAX_LAYERS 16			/* dense layers, output layer included */
#define DLK_MAX_WIDTH  65536		/* any layer width */

typedef enum dlk_status
{
	DLK_OK = 0,
	DLK_EINVAL,					/* bad argument (sizes, enum values) */
	DLK_ENOBLAS,				/* no longer returned: the fast path needs no BLAS */
	DLK_EBLASLOAD,				/* dlopen/dlsym of the BLAS library failed */
	DLK_ENONFINITE,				/* loss or gradients became NaN/Inf */
	DLK_EABORT,					/* stopped: the abort callback said so */
	DLK_ENOMEM					/* the glue's allocator had no memory (dlk_device.h) */
} dlk_status;

typedef enum dlk_act
{
	DLK_ACT_RELU = 0,
	DLK_ACT_TANH,
	DLK_ACT_SIGMOID,
	DLK_ACT_IDENTITY
} dlk_act;

typedef enum dlk_loss
{
	DLK_LOSS_SOFTMAX_CE = 0,	/* classification: logits -> softmax -> NLL */
	DLK_LOSS_MSE				/* regression: mean over B*C of (pred-target)^2 */
} dlk_loss;

typedef enum dlk_opt_kind
{
	DLK_OPT_SGD = 0,			/* SGD with (heavy-ball) momentum, L2 weight decay */
	DLK_OPT_ADAM,				/* Adam, L2 weight decay added to the gradient */
	DLK_OPT_ADAMW				/* Adam with decoupled weight decay */
} dlk_opt_kind;

typedef struct dlk_arch
{
	int			n_layers;		/* dense layers, >= 1 */
	int			dims[DLK_MAX_LAYERS + 1];	/* dims[0] = D, dims[n_layers] = C */
	dlk_act		act;			/* activation after every hidden layer */
	dlk_loss	loss;
} dlk_arch;

typedef struct dlk_opt
{
	dlk_opt_kind kind;
	float		lr;
	float		momentum;		/* SGD only */
	float		beta1;			/* Adam/AdamW */
	float		beta2;
	float		eps;
	float		weight_decay;
} dlk_opt;

/* Sizes, in floats, of the buffers a network needs. */
typedef struct dlk_sizes
{
	size_t		n_params;		/* parameters; gradients have the same size */
	size_t		n_opt_state;	/* optimizer state: SGD n_params, Adam(W) 2*n_params */
	size_t		n_work;			/* activations and backward scratch for max_batch rows */
} dlk_sizes;

/*
 * A network bound to caller-owned buffers.  Pointers in W/b/gW/gb point into
 * params/grads.  act[l] (l = 0..n_layers-1) is the output of layer l after its
 * activation (the last one holds logits / predictions), [B x dims[l+1]].
 */
/*
 * use_blas of a network or a layer call (the name is historical): 0 the
 * reference kernels, 1 the fast kernels (the exact GEMMs of dlk_gemm.h)
 * with each product cut over the pool's threads (dlk_pool_for), or
 * DLK_BLAS_UNCUT: the fast kernels with each product run on the caller,
 * whatever the pool.  1 and DLK_BLAS_UNCUT give the same bits (the cut is
 * over outputs only); neither needs a BLAS library bound.
 */
#define DLK_BLAS_UNCUT 2

typedef struct dlk_net
{
	dlk_arch	arch;
	int			max_batch;
	int			use_blas;
	float	   *params;
	float	   *grads;
	float	   *opt_state;
	float	   *work;
	size_t		n_params;
	float	   *W[DLK_MAX_LAYERS];
	float	   *b[DLK_MAX_LAYERS];
	float	   *gW[DLK_MAX_LAYERS];
	float	   *gb[DLK_MAX_LAYERS];
	float	   *act[DLK_MAX_LAYERS];
	float	   *dbuf[2];		/* two [max_batch x max width] backward buffers */
	int			ld0;			/* floats between rows of act[0]: dims[1], except
								 * inside a fused step */
	float	   *dact0;			/* inside a fused step: where dL/d(layer 0 out)
								 * goes (ld0 apart); NULL otherwise */
	long		step;			/* optimizer steps taken (Adam bias correction) */
	int			frozen;			/* layers 0..frozen-1 frozen (dlk_net_freeze) */
	int			start;			/* the layer the input X feeds: 0, or frozen
								 * (X holds the frozen layers' outputs) */
	size_t		frozen_off;		/* parameters of the frozen layers: the
								 * optimizer updates [frozen_off, n_params) */
	int			grads_zero;		/* grads hold zeros (after bind and after each
								 * optimizer step, which zeroes them as it reads
								 * them): the reference weight gradients then
								 * add onto them without zeroing them first
								 * (the fast ones overwrite: the same bits) */
	int64_t    *pred_counts;	/* classification: each training step adds the
								 * class it predicts for every row (the argmax
								 * of the logits before the update) to
								 * pred_counts[class]; NULL: not counted */
} dlk_net;

/* ---- architecture ---- */

/* Checks an architecture (layer count, widths, enums). */
dlk_status	dlk_arch_check(const dlk_arch *arch);

/* Buffer sizes for arch with batches of at most max_batch rows. */
dlk_status	dlk_sizes_for(dlk_sizes *out, const dlk_arch *arch, int max_batch,
						  dlk_opt_kind opt);

/*
 * Lays out a network over caller buffers of the sizes from dlk_sizes_for.
 * grads and opt_state may be NULL for an inference-only network; params and
 * work (n_work floats, the activations) may not.  Zeroes grads and the first
 * n_params floats of opt_state (Adam's second slot is zeroed by the first
 * dlk_opt_step); leaves params untouched.  May return DLK_EABORT.
 */
dlk_status	dlk_net_bind(dlk_net *net, const dlk_arch *arch, int max_batch,
						 int use_blas, float *params, float *grads,
						 float *opt_state, float *work);

/*
 * Freezes the first `frozen` layers (0 <= frozen < n_layers; 0 thaws):
 * backward stops at layer `frozen` (no gradient below it, not even layer
 * frozen's input gradient), and the optimizer updates only the parameters
 * [frozen_off, n_params), the contiguous range of the layers above, so a
 * frozen parameter keeps its bits whatever the weight decay or Adam's
 * state (which stays as it was for the frozen range).  With start =
 * frozen (materialized features) the network's input X is the output of
 * layer frozen-1 after its activation, [B x dims[frozen]]: forward, loss
 * and backward run layers frozen..L-1 only, and give the bits the same
 * rows give through the frozen layers (each row's products are its own
 * FMA chains, the activations element-wise).  start is 0 or frozen.
 */
dlk_status	dlk_net_freeze(dlk_net *net, int frozen, int start);

/*
 * The output of the first `layers` layers after the hidden activation
 * (1 <= layers < n_layers), [B x dims[layers]], from X [B x dims[start]]:
 * act[layers-1] of the network, returned; NULL for bad arguments or an abort.
 */
const float *dlk_forward_to(dlk_net *net, const float *X, int B, int layers);

/* ---- random numbers (also used by the glue for seeded shuffles) ---- */

typedef struct dlk_rng
{
	uint64_t	s[4];			/* xoshiro256** state */
} dlk_rng;

void		dlk_rng_seed(dlk_rng *rng, uint64_t seed);	/* splitmix64 expansion */
uint64_t	dlk_rng_next(dlk_rng *rng);
double		dlk_rng_uniform(dlk_rng *rng);	/* [0, 1) with 53 random bits */
uint64_t	dlk_rng_below(dlk_rng *rng, uint64_t n);	/* unbiased, [0, n) */
/* Fisher-Yates shuffle of idx[0..n); DLK_EABORT leaves it partly shuffled. */
dlk_status	dlk_shuffle_u32(dlk_rng *rng, uint32_t *idx, size_t n);

/* ---- conversion into the row cache ---- */

/* dst = src; returns 1 if every value is finite, else 0 (dst is then garbage). */
int			dlk_copy_finite_f32(float *dst, const float *src, int n);
/* dst = (float) src; returns 1 if every value is finite and fits a float. */
int			dlk_convert_finite_f64(float *dst, const double *src, int n);

/* ---- feature statistics (the glue standardizes with these) ---- */

/*
 * One pass of shifted moments, in double: v = x[d] - shift[d];
 * sum[d] += v; sq[d] += v * v.  With the shift a sample of the data, the
 * variance sq/n - (sum/n)^2 does not suffer from cancellation.
 */
void		dlk_moments_accumulate(double *sum, double *sq, const float *x,
								   const float *shift, int D);
/* dst = src and the running minimum and maximum, in one pass; 1 if all finite. */
int			dlk_copy_finite_minmax_f32(float *dst, const float *src, int n,
									   float *mn, float *mx);
/* Running per-feature minimum and maximum. */
void		dlk_minmax_accumulate(float *mn, float *mx, const float *x, int D);

/*
 * Quantized sums, exact and so independent of the order rows come in, of
 * the deviations from a center and of their squares, in double:
 *   acc1[d] += rint((x[d] - center[d]) * inv_q1[d])
 *   acc2[d] += rint((x[d] - center[d])^2 * inv_q2[d])
 * With every term at most 2^52 / n in magnitude, every partial sum of n
 * terms is an integer below 2^53: exact, whatever the order of the rows.
 */
void		dlk_qsum_accumulate(double *acc1, double *acc2, const float *x,
								const double *center, const double *inv_q1,
								const double *inv_q2, int D);

/* x[d] = (x[d] - mean[d]) * scale[d] in float32 (training and predict alike). */
void		dlk_standardize(float *x, const float *mean, const float *scale, int D);

/*
 * Initializes every parameter from seed: He-uniform for ReLU layers,
 * Xavier (Glorot) uniform for tanh, sigmoid and the output layer; biases 0.
 */
dlk_status	dlk_init_params(dlk_net *net, uint64_t seed);

/*
 * PyTorch's nn.Linear default instead: weights and biases U(+-1/sqrt(fan_in)),
 * drawn layer by layer, W then b.
 */
dlk_status	dlk_init_params_fanin(dlk_net *net, uint64_t seed);

/* ---- layers: outputs first, then inputs, then sizes ---- */

/* Y[B x O] = X[B x I] * W^T + b */
dlk_status	dlk_dense_forward(float *Y, const float *X, const float *W,
							  const float *b, int B, int I, int O, int use_blas);

/*
 * Given dY[B x O]: gW[O x I] = dY^T X, gb[O] = column sums of dY (both
 * overwritten, not accumulated), and dX[B x I] = dY W unless dX is NULL.
 */
dlk_status	dlk_dense_backward(float *dX, float *gW, float *gb, const float *dY,
							   const float *X, const float *W, int B, int I,
							   int O, int use_blas);

/* Y = act(X) elementwise (Y may equal X). */
void		dlk_act_forward(float *Y, const float *X, size_t n, dlk_act act);

/* dX = dY * act'(.) computed from the activation OUTPUT Y (dX may equal dY). */
void		dlk_act_backward(float *dX, const float *dY, const float *Y, size_t n,
							 dlk_act act);

/*
 * Fused, numerically stable softmax + cross-entropy.  labels[B] in [0, C).
 * *loss = mean over the batch of -log p[label]; dlogits = (p - onehot) / B.
 * dlogits may be NULL (loss only).  Returns DLK_EINVAL for a label out of range.
 */
dlk_status	dlk_softmax_ce(double *loss, float *dlogits, const float *logits,
						   const int32_t *labels, int B, int C);

/* *loss = mean over B*C of (pred - target)^2; dpred = 2 (pred - target) / (B*C). */
void		dlk_mse(double *loss, float *dpred, const float *pred,
					const float *target, int B, int C);

/* Row-wise softmax of logits[B x C] into P (P may equal logits). */
void		dlk_softmax_rows(float *P, const float *logits, int B, int C);

/* The first index of the largest of p[0..n) (0 for n < 1; NaN never wins). */
int			dlk_argmax(const float *p, int n);

/* ---- optimizers: one flat loop over n parameters ---- */

/*
 * SGD: g' = g + wd*p; m = momentum*m + g'; p -= lr*m  (m unused when
 * momentum == 0; PyTorch's convention, dampening 0).
 */
void		dlk_sgd_step(float *p, const float *g, float *m, size_t n,
						 float lr, float momentum, float weight_decay);

/*
 * Adam (decoupled = 0): g' = g + wd*p, then the Adam update.
 * AdamW (decoupled = 1): p *= (1 - lr*wd) first, then the Adam update with g.
 * t is the 1-based step number for bias correction:
 *   m = b1 m + (1-b1) g';  v = b2 v + (1-b2) g'^2;
 *   p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 */
void		dlk_adam_step(float *p, const float *g, float *m, float *v, size_t n,
						  float lr, float beta1, float beta2, float eps,
						  float weight_decay, long t, int decoupled);

/*
 * Applies opt to the whole network (increments net->step first), then
 * zeroes the gradients it used (see grads_zero).  DLK_EABORT leaves the
 * network partly updated.
 */
dlk_status	dlk_opt_step(dlk_net *net, const dlk_opt *opt);

/* ---- whole network ---- */

/*
 * Forward pass of B <= max_batch rows X[B x D]; returns the output [B x C],
 * or NULL for bad arguments or an abort.
 */
const float *dlk_forward(dlk_net *net, const float *X, int B);

/*
 * One training step on a batch: forward, loss, backward, optimizer step.
 * Classification reads labels (targets NULL); regression reads targets[B x C]
 * (labels NULL).  *loss gets the batch's mean loss before the update.
 * Returns DLK_ENONFINITE (without updating) if the loss is not finite.
 */
dlk_status	dlk_train_step(dlk_net *net, const float *X, const int32_t *labels,
						   const float *targets, int B, const dlk_opt *opt,
						   double *loss);

/* Forward pass, then backward into net->grads (no update); *loss as above. */
dlk_status	dlk_loss_grad(dlk_net *net, const float *X, const int32_t *labels,
						  const float *targets, int B, double *loss);

/*
 * Model selection: K networks with the same input width D, each with its
 * own optimizer, take one step on the same batch X [B x D] (and labels or
 * targets [B x 1]), their first layers computed as one GEMM and their
 * first-layer weight gradients as another.  losses[k] and status[k] are
 * per network: DLK_ENONFINITE leaves network k without an update while the
 * others step.  work holds dlk_fused_work_size(nets, K, B) floats.  The
 * result is bit for bit that of K dlk_train_step calls, with the fast
 * kernels (each element of a product one chain, whatever the columns
 * beside it) as with the reference ones, at any thread count.  Returns
 * DLK_EINVAL for networks that do not fit together.
 */
size_t		dlk_fused_work_size(dlk_net *const *nets, int K, int B);
dlk_status	dlk_train_step_fused(dlk_net *const *nets, const dlk_opt *const *opts,
								 int K, const float *X, const int32_t *labels,
								 const float *targets, int B, float *work,
								 double *losses, dlk_status *status);

/* ---- BLAS binding ---- */

/*
 * Opens the BLAS library at path (NULL: "libopenblas.so.0") and binds
 * cblas_sgemm and openblas_set_num_threads.  Idempotent.  On failure writes a
 * message to errbuf.  The caller blocks signals around this call.
 */
dlk_status	dlk_blas_open(const char *path, char *errbuf, size_t errlen);
int			dlk_blas_available(void);
/* Sets the BLAS thread count (no-op without a bound BLAS). */
void		dlk_blas_set_threads(int n);

/* ---- helper threads: GEMM ranges and element-wise loops (dlk_pool.c) ---- */

/* Computes elements [lo, hi) of a job. */
typedef void (*dlk_range_fn) (void *arg, size_t lo, size_t hi);

/*
 * Cuts the jobs of dlk_pool_for into n ranges and runs them on up to n
 * threads, the caller included (starts the missing helpers; at most one
 * thread per CPU this process may run on, and fewer if the system refuses
 * threads: a thread then runs several ranges).  The caller blocks signals
 * around this call, as around dlk_blas_open.  1 (the start) runs everything
 * on the caller, uncut.
 */
dlk_status	dlk_pool_set_threads(int n);
/* The same with at most max_threads threads (tests: the cut stays n). */
dlk_status	dlk_pool_configure(int n, int max_threads);
/* The threads that run the ranges, and the ranges a job is cut into (n). */
int			dlk_pool_threads(void);
int			dlk_pool_parts(void);

/*
 * fn over [0, n) cut into dlk_pool_parts() ranges (fewer, so that each
 * has at least min_per_thread elements; starts on multiples of 16), run
 * on the pool's threads; returns when every range is done (or skipped,
 * after an abort: then DLK_EABORT).  A range function that runs long calls
 * dlk_abort_poll() between pieces of its range and returns when it says 1.
 */
dlk_status	dlk_pool_for(size_t n, size_t min_per_thread, dlk_range_fn fn, void *arg);

/* ---- abort (dlk_pool.c) ---- */

/*
 * Returns nonzero to stop.  Called only on the thread that calls the
 * kernels (never on a helper), so it may read that thread's state (the
 * glue: PostgreSQL's pending-interrupt flags); it must not longjmp.
 */
typedef int (*dlk_abort_fn) (void *arg);

/* Installs the abort callback (NULL: none). */
void		dlk_set_abort(dlk_abort_fn fn, void *arg);

/*
 * 1 when the current work should stop: on the calling thread it asks the
 * callback (and raises the flag for the helpers when it says stop); on a
 * helper it reads that flag.  Cheap: poll it every millisecond or so.
 */
int			dlk_abort_poll(void);

const char *dlk_status_string(dlk_status st);

#endif							/* DLK_H */
