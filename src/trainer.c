/*
 * trainer.c — one model's network and optimizer, stepping on mini-batches.
 *
 * The engine (engine.c) runs one trainer per member; the row sources fill
 * the batches they step on (minibatch.h).  A trainer allocates its network
 * (parameters, gradients, optimizer state, work) in the current memory
 * context under the call's budget, so an error or a cancel frees it with
 * that context.  Steps run in the kernels (src/kernels), which return
 * DLK_EABORT when the abort callback saw a cancel (DltKernelAborted then
 * raises it) and DLK_ENONFINITE, without an update, when a loss or a
 * gradient is not finite: the trainer then marks itself diverged and takes
 * no further step; the engine reads that with DltTrainerDiverged.
 *
 * Fused steps (dltrain.fusion, engine.c): the networks of members that
 * step on one batch take one kernel call whose first layers are one wider
 * product.
 *
 * Device.  Everything goes through the device interface of the kernels
 * (kernels/dlk_device.h, chosen by dltrain.device): the network and the
 * batch buffers are bound on the device, their memory taken from the
 * current memory context through an allocator (so the context owns it and
 * an error or a cancel frees it), and a step returns nothing that forces a
 * wait: its loss and whether it stayed finite are read from the device's
 * counters (Account), after every step here, where an asynchronous device
 * could read them every N steps with the same outcome.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "blas.h"
#include "budget.h"
#include "interrupt.h"
#include "progress.h"
#include "trainer.h"

bool		dltrain_log_epochs = false;

DltBatch *
DltBatchCreate(const dlk_device *dev, int cap, int D, int C)
{
	DltBatch   *b = palloc0(sizeof(DltBatch));
	dlk_allocator a = DltDeviceAllocator();
	dlk_status	s;

	b->cap = cap;
	b->D = D;
	b->C = C;
	b->dev = dev;
	s = dev->batch_create(&a, cap, D, C, &b->kb);
	if (s != DLK_OK)
		DltDeviceFailed(s, "a batch buffer");
	b->x = b->kb->x;
	b->y = b->kb->y;
	b->t = b->kb->t;
	return b;
}

void
DltBatchUpload(DltBatch *b, int n)
{
	dlk_status	s = b->dev->batch_upload(b->kb, n);

	if (s != DLK_OK)
		DltDeviceFailed(s, "a batch upload");
	/* the device may hand out other staging buffers for the next rows */
	b->x = b->kb->x;
	b->y = b->kb->y;
	b->t = b->kb->t;
}

Size
DltTrainerBytes(const DltModel *m, int B)
{
	dlk_sizes	sz;
	int			D = m->arch.dims[0];
	int			C = m->arch.dims[m->arch.n_layers];

	if (dlk_sizes_for(&sz, &m->arch, B, m->opts.optimizer) != DLK_OK)
		elog(ERROR, "invalid network architecture");
	return mul_size(add_size(add_size(mul_size(2, sz.n_params), sz.n_opt_state),
							 add_size(sz.n_work, mul_size(B, D + C + 1))),
					sizeof(float));
}

void
DltTrainerInit(DltTrainer *t, const dlk_device *dev, DltModel *m, int B, MemoryContext root)
{
	const DltOptions *o = &m->opts;
	dlk_sizes	sz;
	Size		need;
	dlk_allocator a = DltDeviceAllocator();
	dlk_status	s;

	memset(t, 0, sizeof(*t));
	t->m = m;
	t->dev = dev;
	t->B = B;
	t->D = m->arch.dims[0];
	t->C = m->arch.dims[m->arch.n_layers];
	if (dlk_sizes_for(&sz, &m->arch, B, o->optimizer) != DLK_OK)
		elog(ERROR, "invalid network architecture");
	m->n_params = sz.n_params;

	/* size checks before any large allocation */
	need = DltTrainerBytes(m, B);
	DltBudgetCheck(root, need,
				   "a model's parameters, gradients, optimizer state and batch buffers");
	CheckModelSize(ModelEncodedSize(m));
	m->epoch_loss = palloc0(sizeof(float) * Max(o->epochs, 1));

	t->opt.kind = o->optimizer;
	t->opt.lr = (float) o->lr;
	t->opt.momentum = (float) o->momentum;
	t->opt.beta1 = 0.9f;
	t->opt.beta2 = 0.999f;
	t->opt.eps = 1e-8f;
	t->opt.weight_decay = (float) o->weight_decay;

	DltBlasEnsure(DltThreads());
	s = dev->net_bind(&a, &m->arch, B, &t->opt, &t->net);
	if (s != DLK_OK)
		DltDeviceFailed(s, "a network");
	s = dev->init_params(t->net, (uint64) o->seed,
						 o->init_pytorch ? DLK_INIT_FANIN : DLK_INIT_HE_GLOROT);
	if (s != DLK_OK)
		DltDeviceFailed(s, "the initialization of the parameters");
	m->params = dev->net_params(t->net);
	if (m->params == NULL)
		elog(ERROR, "dltrain: device \"%s\" keeps no parameters in host memory", dev->name);
}

void
DltTrainerEpochBegin(DltTrainer *t, int epoch, int64 rows_expected)
{
	dlk_status	s = t->dev->net_reset(t->net);

	if (s != DLK_OK)
		DltDeviceFailed(s, "a network's counters");
	t->epoch = epoch;
	t->loss_sum = 0;
	t->rows = 0;
	t->batches = 0;
	t->rows_expected = rows_expected;
	DltProgressEpoch(epoch + 1, t->m->opts.epochs);
	INSTR_TIME_SET_CURRENT(t->t0);
}

/*
 * Reads the device's counters after a step: the epoch's loss and rows so
 * far, whether the network diverged; the progress report every 16 steps.
 */
static void
Account(DltTrainer *t)
{
	dlk_progress pr;
	dlk_status	s = t->dev->net_read(t->net, &pr);

	if (s != DLK_OK)
		DltDeviceFailed(s, "a training step");
	if (pr.nonfinite)
		t->diverged = true;
	if (pr.steps != t->batches)
	{
		t->loss_sum = pr.loss_sum;
		t->rows = pr.rows;
		t->batches = pr.steps;
		if ((t->batches & 15) == 0)
		{
			instr_time	now;
			double		secs;

			INSTR_TIME_SET_CURRENT(now);
			INSTR_TIME_SUBTRACT(now, t->t0);
			secs = INSTR_TIME_GET_DOUBLE(now);
			DltProgressRows(t->rows, t->rows_expected, t->loss_sum / t->rows,
							secs > 0 ? t->rows / secs : 0);
		}
	}
	CHECK_FOR_INTERRUPTS();
}

void
DltTrainerStep(DltTrainer *t, const DltBatch *b, int bs)
{
	dlk_status	s;

	if (t->diverged)
		return;
	s = t->dev->train_step(t->net, b->kb, bs);
	if (s != DLK_OK)
		DltDeviceFailed(s, "a training step");
	Account(t);
}

bool
DltTrainerDiverged(DltTrainer *t)
{
	return t->diverged;
}

double
DltTrainerEpochEnd(DltTrainer *t)
{
	instr_time	t1;
	double		secs;
	float		loss;

	Account(t);
	loss = t->rows ? (float) (t->loss_sum / t->rows) : 0;
	t->m->epoch_loss[t->epoch] = loss;
	t->m->epochs_run = t->epoch + 1;
	INSTR_TIME_SET_CURRENT(t1);
	INSTR_TIME_SUBTRACT(t1, t->t0);
	secs = INSTR_TIME_GET_DOUBLE(t1);
	/* progress at every epoch end too, whatever the batch count */
	DltProgressRows(t->rows, t->rows_expected, loss, secs > 0 ? t->rows / secs : 0);
	if (t->quiet)
		return secs;
	if (dltrain_log_epochs && t->n_models > 1)
		ereport(NOTICE,
				(errmsg("model %d of %d, epoch %d/%d: loss %.6f, %.0f rows/s",
						t->model_no + 1, t->n_models, t->epoch + 1, t->m->opts.epochs,
						loss, secs > 0 ? t->rows / secs : 0)));
	else if (dltrain_log_epochs)
		ereport(NOTICE,
				(errmsg("epoch %d/%d: loss %.6f, %.0f rows/s",
						t->epoch + 1, t->m->opts.epochs, loss,
						secs > 0 ? t->rows / secs : 0)));
	return secs;
}

double
DltTrainerEval(DltTrainer *t, const DltBatch *b, int bs, double *score)
{
	double		loss = 0;
	dlk_status	s = t->dev->net_eval(t->net, b->kb, bs, &loss, score);

	if (s == DLK_EINVAL)
		elog(ERROR, "dltrain: a validation label is out of range");
	if (s != DLK_OK)
		DltDeviceFailed(s, "an evaluation");
	return loss;
}

void
DltTrainerCountSteps(DltTrainer *t, int64 *counts)
{
	dlk_status	s = t->dev->net_count_predictions(t->net, (int64_t *) counts);

	if (s != DLK_OK)
		DltDeviceFailed(s, "the prediction counts of a network");
}

void
DltTrainerCountPredictions(DltTrainer *t, const DltBatch *b, int bs, int64 *counts)
{
	float	   *out = palloc_extended(sizeof(float) * (Size) bs * t->C, MCXT_ALLOC_HUGE);
	dlk_status	s = t->dev->net_predict(t->net, b->kb, bs, out);

	if (s != DLK_OK)
		DltDeviceFailed(s, "a prediction");
	for (int i = 0; i < bs; i++)
		counts[dlk_argmax(out + (Size) i * t->C, t->C)]++;
	pfree(out);
}

/* ---- fused steps ---- */

struct DltFusedStep
{
	const dlk_device *dev;
	int			K;
	dlk_dfused *f;
	dlk_dnet  **nets;
};

DltFusedStep *
DltFusedCreate(DltTrainer *const *ts, int K, int B)
{
	DltFusedStep *f = palloc0(sizeof(DltFusedStep));
	dlk_allocator a = DltDeviceAllocator();
	dlk_status	s;

	f->dev = ts[0]->dev;
	f->K = K;
	f->nets = palloc(sizeof(dlk_dnet *) * K);
	for (int k = 0; k < K; k++)
		f->nets[k] = ts[k]->net;
	s = f->dev->fused_bind(&a, f->nets, K, B, &f->f);
	if (s != DLK_OK)
		DltDeviceFailed(s, "the work buffers of a fused step");
	return f;
}

void
DltFusedRun(DltFusedStep *f, DltTrainer *const *ts, int n, const DltBatch *b, int bs)
{
	dlk_status	s;

	Assert(n >= 1 && n <= f->K);
	for (int j = 0; j < n; j++)
		f->nets[j] = ts[j]->net;
	s = f->dev->train_step_fused(f->f, f->nets, n, b->kb, bs);
	if (s != DLK_OK)
		DltDeviceFailed(s, "a fused training step");
	for (int j = 0; j < n; j++)
		Account(ts[j]);
}

void
DltTrainerInitGucs(void)
{
	DefineCustomBoolVariable("dltrain.log_epochs",
							 "Reports one NOTICE per training epoch.",
							 "Each line gives the epoch, the training loss and the rows per second.",
							 &dltrain_log_epochs,
							 false,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
}
