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
 * step on one batch take one kernel call (dlk_train_step_fused) whose
 * first layers are one wider GEMM.
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
DltBatchCreate(int cap, int D, int C)
{
	DltBatch   *b = palloc0(sizeof(DltBatch));

	b->cap = cap;
	b->D = D;
	b->C = C;
	b->x = palloc_extended(sizeof(float) * (Size) cap * D, MCXT_ALLOC_HUGE);
	b->y = palloc(sizeof(int32) * cap);
	b->t = palloc(sizeof(float) * (Size) cap * C);
	return b;
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
DltTrainerInit(DltTrainer *t, DltModel *m, int B, MemoryContext root)
{
	const DltOptions *o = &m->opts;
	dlk_sizes	sz;
	Size		need;
	float	   *grads,
			   *state,
			   *work;
	dlk_status	s;

	memset(t, 0, sizeof(*t));
	t->m = m;
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

	m->params = palloc_extended(sizeof(float) * sz.n_params, MCXT_ALLOC_HUGE);
	grads = palloc_extended(sizeof(float) * sz.n_params, MCXT_ALLOC_HUGE);
	state = palloc_extended(sizeof(float) * Max(sz.n_opt_state, 1), MCXT_ALLOC_HUGE);
	work = palloc_extended(sizeof(float) * sz.n_work, MCXT_ALLOC_HUGE);
	m->epoch_loss = palloc0(sizeof(float) * Max(o->epochs, 1));

	DltBlasEnsure(DltThreads());
	s = dlk_net_bind(&t->net, &m->arch, B, 1, m->params, grads, state, work);
	if (s == DLK_EABORT)
		DltKernelAborted();
	if (s != DLK_OK)
		elog(ERROR, "could not set up network: %s", dlk_status_string(s));
	if (o->init_pytorch)
		s = dlk_init_params_fanin(&t->net, (uint64) o->seed);
	else
		s = dlk_init_params(&t->net, (uint64) o->seed);
	if (s != DLK_OK)
		DltKernelAborted();

	t->opt.kind = o->optimizer;
	t->opt.lr = (float) o->lr;
	t->opt.momentum = (float) o->momentum;
	t->opt.beta1 = 0.9f;
	t->opt.beta2 = 0.999f;
	t->opt.eps = 1e-8f;
	t->opt.weight_decay = (float) o->weight_decay;
}

void
DltTrainerEpochBegin(DltTrainer *t, int epoch, int64 rows_expected)
{
	t->epoch = epoch;
	t->loss_sum = 0;
	t->rows = 0;
	t->batches = 0;
	t->rows_expected = rows_expected;
	DltProgressEpoch(epoch + 1, t->m->opts.epochs);
	INSTR_TIME_SET_CURRENT(t->t0);
}

/* Counts a step of bs rows with mean loss in the epoch and the progress report. */
static void
Account(DltTrainer *t, int bs, double loss)
{
	t->loss_sum += loss * bs;
	t->rows += bs;
	if ((++t->batches & 15) == 0)
	{
		instr_time	now;
		double		secs;

		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, t->t0);
		secs = INSTR_TIME_GET_DOUBLE(now);
		DltProgressRows(t->rows, t->rows_expected, t->loss_sum / t->rows,
						secs > 0 ? t->rows / secs : 0);
	}
	CHECK_FOR_INTERRUPTS();
}

void
DltTrainerStep(DltTrainer *t, const DltBatch *b, int bs)
{
	bool		cls = t->m->task == DLT_TASK_CLASSIFICATION;
	double		loss;
	dlk_status	s;

	if (t->diverged)
		return;
	s = dlk_train_step(&t->net, b->x, cls ? b->y : NULL, cls ? NULL : b->t,
					   bs, &t->opt, &loss);
	if (s == DLK_EABORT)
		DltKernelAborted();
	if (s == DLK_ENONFINITE)
	{
		t->diverged = true;
		return;
	}
	if (s != DLK_OK)
		elog(ERROR, "training step failed: %s", dlk_status_string(s));
	Account(t, bs, loss);
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
	float		loss = t->rows ? (float) (t->loss_sum / t->rows) : 0;

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
	const float *out = dlk_forward(&t->net, b->x, bs);
	double		loss = 0;

	if (out == NULL)
	{
		CHECK_FOR_INTERRUPTS();	/* an abort */
		elog(ERROR, "forward pass failed");
	}
	*score = 0;
	if (t->m->task == DLT_TASK_CLASSIFICATION)
	{
		if (dlk_softmax_ce(&loss, NULL, out, b->y, bs, t->C) != DLK_OK)
			elog(ERROR, "label out of range");
		for (int i = 0; i < bs; i++)
			*score += DltArgMax(out + (Size) i * t->C, t->C) == b->y[i];
	}
	else
	{
		dlk_mse(&loss, NULL, out, b->t, bs, t->C);
		*score = loss * bs * t->C;
	}
	return loss;
}

/* ---- fused steps ---- */

struct DltFusedStep
{
	int			K;
	dlk_net   **nets;
	const dlk_opt **opts;
	double	   *losses;
	dlk_status *status;
	float	   *work;
};

DltFusedStep *
DltFusedCreate(DltTrainer *const *ts, int K, int B)
{
	DltFusedStep *f = palloc0(sizeof(DltFusedStep));

	f->K = K;
	f->nets = palloc(sizeof(dlk_net *) * K);
	f->opts = palloc(sizeof(dlk_opt *) * K);
	f->losses = palloc(sizeof(double) * K);
	f->status = palloc(sizeof(dlk_status) * K);
	for (int k = 0; k < K; k++)
		f->nets[k] = &ts[k]->net;
	f->work = palloc_extended(sizeof(float) * dlk_fused_work_size(f->nets, K, B),
							  MCXT_ALLOC_HUGE);
	return f;
}

void
DltFusedRun(DltFusedStep *f, DltTrainer *const *ts, int n, const DltBatch *b, int bs)
{
	bool		cls = ts[0]->m->task == DLT_TASK_CLASSIFICATION;
	dlk_status	st;

	Assert(n >= 2 && n <= f->K);
	for (int j = 0; j < n; j++)
	{
		f->nets[j] = &ts[j]->net;
		f->opts[j] = &ts[j]->opt;
	}
	st = dlk_train_step_fused(f->nets, f->opts, n, b->x, cls ? b->y : NULL,
							  cls ? NULL : b->t, bs, f->work, f->losses, f->status);
	if (st == DLK_EABORT)
		DltKernelAborted();
	if (st != DLK_OK)
		elog(ERROR, "fused training step failed: %s", dlk_status_string(st));
	for (int j = 0; j < n; j++)
	{
		if (f->status[j] == DLK_OK)
			Account(ts[j], bs, f->losses[j]);
		else
			ts[j]->diverged = true;
	}
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
