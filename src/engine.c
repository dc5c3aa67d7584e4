/*
 * engine.c — training K models from one row source.
 *
 * Every training comes through DltTrainMany: one train_mlp call or fit()
 * is K = 1; sibling train_mlp calls of one statement (merged at execution,
 * train_agg.c, or rewritten by the planner hook, planner.c),
 * train_mlp_multi and grid_search give K > 1.  The rows were read and
 * converted once; the source (rowsource.h) prepares what they determine
 * (classes, statistics) once, and the models train side by side.
 *
 * Streams.  Members whose batch stream would be the same when trained alone
 * (DltSameStream: shuffle, seed, batch size, normalization and validation
 * fraction) share one when the source allows it: one shuffle per epoch,
 * one gather of each mini-batch, and, by dltrain.fusion, one step for the
 * first layers of its members (DltFusedRun).  Each member keeps its own
 * network, optimizer and epoch count, and every product is the kernels'
 * exact GEMM (each element summed in one order, wherever it falls), so a
 * member is the same bytes fused, merged or alone.  "auto" fuses the
 * models without hidden layers, where the fused step was measured faster;
 * with hidden layers it was slower (bench/RESULTS.md), so those train
 * unfused unless fusion is "on".
 *
 * Validation.  The source holds rows out by their content (order.h), so the
 * split is reproducible and does not depend on the order rows arrive in.
 * After every epoch each member's validation loss and metric go into its
 * model; early_stopping stops a member after that many epochs without a
 * lower validation loss and keeps its best epoch's weights.
 *
 * Selection.  A member whose loss becomes NaN or infinite is dropped
 * (tolerant callers) or raises the usual error (fit).  Successive halving
 * (grid_search) keeps the best 1/eta of the members still training after
 * each rung of epochs and drops the rest.
 *
 * Memory.  Everything lives in the current memory context (the caller's
 * training context), so an error or a cancel frees it all; the source's
 * close() is the normal end of what it holds.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/guc.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "budget.h"
#include "engine.h"
#include "engine_int.h"
#include "materialize.h"
#include "interrupt.h"
#include "progress.h"
#include "score.h"
#include "trainer.h"

int			dltrain_fusion = DLT_FUSION_AUTO;

/* May member m's first layer join its stream's fused step? */
static bool
Fusable(const DltModel *m)
{
	/* a frozen network steps alone */
	return m->opts.freeze == 0 &&
		(dltrain_fusion == DLT_FUSION_ON ||
		 (dltrain_fusion == DLT_FUSION_AUTO && m->arch.n_layers == 1));
}

/* ---- members ---- */


static double
Elapsed(instr_time t0)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, t0);
	return INSTR_TIME_GET_DOUBLE(now);
}

/* A member's loss went NaN or infinite in epoch e (0-based). */
static void
MemberDiverged(Member *mb, int e, bool tolerate, instr_time t0)
{
	if (!tolerate)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("training diverged: the loss became NaN or infinite in epoch %d",
						e + 1),
				 errhint("Lower \"lr\", or enable \"normalize\".")));
	mb->active = false;
	mb->res->diverged = true;
	mb->res->diverged_epoch = e + 1;
	mb->res->epochs_trained = e;
	mb->res->seconds = Elapsed(t0);
	mb->m->epochs_run = e;
}

/* Epoch e is over for an active member: its losses, early stopping, the end. */
static void
MemberEpochDone(Member *mb, int e, const DltSelectConfig *cfg, instr_time t0,
				DltRowSource *src, DltStream *s)
{
	DltModel   *m = mb->m;
	const DltOptions *o = &m->opts;
	double		secs = DltTrainerEpochEnd(&mb->t);
	double		vloss = mb->vloss;

	mb->res->loss = m->epoch_loss[e];
	mb->res->epochs_trained = e + 1;
	if (m->rows_validation > 0)
	{
		m->val_loss[e] = (float) vloss;
		m->val_metric[e] = (float) mb->vscore;
		if (e == 0 || vloss < mb->best_vloss)
		{
			mb->best_vloss = vloss;
			mb->since_best = 0;
			if (o->early_stopping > 0)
			{
				m->best_epoch = e + 1;
				memcpy(mb->best_params, m->params, sizeof(float) * m->n_params);
			}
		}
		else
			mb->since_best++;
		mb->res->val_loss = vloss;
		mb->res->val_metric = mb->vscore;
	}
	if (e + 1 >= o->epochs ||
		(o->early_stopping > 0 && mb->since_best >= o->early_stopping))
	{
		if (e + 1 < o->epochs)
			mb->res->stopped_epoch = e + 1;
		mb->active = false;
		mb->res->seconds = Elapsed(t0);
	}
	if (cfg->epoch_done)
		cfg->epoch_done(cfg->arg, mb->res, e, mb->t.rows, secs);
	if (mb->active && cfg->checkpoint_due && cfg->checkpoint_due(cfg->arg, mb->res, e))
		cfg->checkpoint(cfg->arg, mb->res, e, MemberCheckpointModel(mb, src, s));
}

/* After training: the best epoch's weights, and the result's summary. */
static void
MemberFinish(Member *mb)
{
	DltModel   *m = mb->m;

	if (m->best_epoch > 0 && m->best_epoch < m->epochs_run)
		memcpy(m->params, mb->best_params, sizeof(float) * m->n_params);
	if (m->rows_validation > 0 && m->best_epoch > 0)
	{
		mb->res->val_loss = m->val_loss[m->best_epoch - 1];
		mb->res->val_metric = m->val_metric[m->best_epoch - 1];
	}
	mb->res->m = m;
}

static int
CompareByValLoss(const void *pa, const void *pb)
{
	const Member *a = *(Member *const *) pa;
	const Member *b = *(Member *const *) pb;
	double		la = a->m->rows_validation > 0 ? a->res->val_loss : a->res->loss;
	double		lb = b->m->rows_validation > 0 ? b->res->val_loss : b->res->loss;

	/* a NaN loss ranks last, consistently */
	if (isnan(la))
		la = HUGE_VAL;
	if (isnan(lb))
		lb = HUGE_VAL;
	if (la != lb)
		return la < lb ? -1 : 1;
	return (a->res->index > b->res->index) - (a->res->index < b->res->index);
}

/*
 * Successive halving: after epoch e (0-based), at the end of a rung, keep
 * the best ceil(n / eta) of the n members still training (by validation
 * loss, else training loss), drop the rest.
 */
static void
Halve(Member *mem, int K, int e, const DltSelectConfig *cfg, instr_time t0)
{
	Member	  **act;
	int			n = 0;
	int			rung = cfg->min_epochs;
	int			keep;

	if (cfg->eta < 2)
		return;
	while (rung < e + 1)
		rung *= cfg->eta;
	if (rung != e + 1)
		return;
	act = palloc(sizeof(Member *) * K);
	for (int k = 0; k < K; k++)
		if (mem[k].active && e >= mem[k].start)
			act[n++] = &mem[k];
	keep = (n + cfg->eta - 1) / cfg->eta;
	if (n > 1)
	{
		qsort(act, n, sizeof(Member *), CompareByValLoss);
		for (int i = keep; i < n; i++)
		{
			act[i]->active = false;
			act[i]->res->pruned_epoch = e + 1;
			act[i]->res->seconds = Elapsed(t0);
		}
	}
	pfree(act);
}

/* A model with what the rows determine, for one member's options. */
static DltModel *
MemberModel(const DltRowSource *src, const DltOptions *opts, const DltStream *s)
{
	DltModel   *m = palloc0(sizeof(DltModel));

	m->task = src->task;
	m->label_kind = src->label_kind;
	m->label_type = src->label_type;
	m->opts = *opts;
	m->rows_used = s->n_train;
	m->rows_skipped = src->rows_skipped;
	m->rows_validation = s->n_val;
	if (src->task == DLT_TASK_CLASSIFICATION)
	{
		/* the classes are the rows', or the warm-started model's */
		const DltModel *c = opts->warm ? opts->warm : &src->classes;

		m->n_classes = c->n_classes;
		m->class_int = c->class_int;
		m->class_float = c->class_float;
		m->class_text = c->class_text;
	}
	DltModelSetArch(m, src->D, src->task == DLT_TASK_CLASSIFICATION ? m->n_classes : 1);
	return m;
}

/* Sets up a member: model, network, validation arrays, statistics. */
static void
MemberInit(Member *mb, const DltRowSource *src, const DltOptions *opts, DltSelectResult *res,
		   const DltStream *s, const DltSelectConfig *cfg)
{
	DltModel   *m = MemberModel(src, opts, s);
	int			D = src->D;

	memset(mb, 0, sizeof(*mb));
	mb->res = res;
	mb->m = m;
	mb->active = opts->epochs > 0;
	DltTrainerInit(&mb->t, src->device, m, s->B, src->root);
	if (opts->checkpoint)
	{
		/* the checkpoint must be storable: refused before training starts */
		size_t		per = opts->optimizer == DLK_OPT_SGD ? 1 : 2;

		CheckModelSize(add_size(ModelEncodedSize(m),
								mul_size(m->n_params, sizeof(float) * (per + 1))));
	}
	mb->t.model_no = res->index;
	mb->t.n_models = res->n_models;
	mb->t.quiet = cfg->quiet;
	if (s->n_val > 0)
	{
		m->val_loss = palloc0(sizeof(float) * Max(opts->epochs, 1));
		m->val_metric = palloc0(sizeof(float) * Max(opts->epochs, 1));
		if (opts->early_stopping > 0)
			mb->best_params = palloc_extended(sizeof(float) * m->n_params, MCXT_ALLOC_HUGE);
	}
	if (opts->resume)
		MemberResume(mb, src, opts, s);
	if (opts->warm)
		MemberWarmStart(mb, opts);
	else if (opts->normalize && src->stats != NULL)
	{
		m->normalized = true;
		m->mean = palloc(sizeof(double) * D);
		m->scale = palloc(sizeof(double) * D);
		memcpy(m->mean, src->stats->mean, sizeof(double) * D);
		memcpy(m->scale, src->stats->scale, sizeof(double) * D);
	}
	res->m = NULL;
	res->training = m;
}

/*
 * The buffers of all K models must fit the memory budget together, as one
 * model's must alone; checked before any of them is allocated.
 */
static void
CheckMembersBudget(const DltRowSource *src, const DltOptions *opts, int K,
				   const Stream *streams, const Member *mem)
{
	Size		total = 0;

	if (K < 2)
		return;
	for (int k = 0; k < K; k++)
	{
		DltModel	m;

		memset(&m, 0, sizeof(m));
		m.task = src->task;
		m.opts = opts[k];
		DltModelSetArch(&m, src->D,
						src->task != DLT_TASK_CLASSIFICATION ? 1 :
						opts[k].warm ? opts[k].warm->n_classes : src->classes.n_classes);
		total = add_size(total, DltTrainerBytes(&m, streams[mem[k].stream].s.B));
	}
	DltBudgetCheck(src->root, total,
				   psprintf("training %d models together: their parameters, gradients, optimizer state and batch buffers", K));
}

/* One epoch of the members of stream si: their steps, then their validation. */
static void
StreamEpoch(DltRowSource *src, Stream *st, int si, Member *mem, int K, int e,
			const DltSelectConfig *cfg, instr_time t0)
{
	DltStream  *s = &st->s;
	int			nact = 0;
	int			bs;

	for (int k = 0; k < K; k++)
		if (mem[k].stream == si && mem[k].active)
		{
			DltTrainerEpochBegin(&mem[k].t, e, s->n_train);
			if (mem[k].step_counts)
				memset(mem[k].step_counts, 0, sizeof(int64) * mem[k].t.C);
			nact++;
		}
	src->ops->begin_epoch(src, s, e);
	while (nact > 0 && (bs = src->ops->next_batch(src, s)) > 0)
	{
		int			ks = 0;

		/* the fusable members in one fused step, if two or more */
		if (st->fused != NULL)
		{
			for (int k = 0; k < K; k++)
				if (mem[k].stream == si && mem[k].active && Fusable(mem[k].m))
					st->who[ks++] = &mem[k].t;
			if (ks > 1)
				DltFusedRun(st->fused, st->who, ks, s->batch, bs);
			else
				ks = 0;
		}
		/* the others, one step each */
		for (int k = 0; k < K; k++)
		{
			if (mem[k].stream != si || !mem[k].active)
				continue;
			if (!(ks > 1 && Fusable(mem[k].m)))
				DltTrainerStep(&mem[k].t, s->batch, bs);
			if (DltTrainerDiverged(&mem[k].t))
			{
				MemberDiverged(&mem[k], e, cfg->tolerate, t0);
				nact--;
			}
		}
		CHECK_FOR_INTERRUPTS();
	}
	if (nact == 0)
		return;

	/* validation loss and metric of every active member */
	for (int k = 0; k < K; k++)
		mem[k].vloss = mem[k].vscore = 0;
	if (s->n_val > 0)
	{
		for (bool first = true;
			 (bs = src->ops->next_validation(src, s, first)) > 0;
			 first = false)
		{
			for (int k = 0; k < K; k++)
			{
				double		score;

				if (mem[k].stream != si || !mem[k].active)
					continue;
				mem[k].vloss += DltTrainerEval(&mem[k].t, s->batch, bs, &score) * bs;
				mem[k].vscore += score;
			}
			CHECK_FOR_INTERRUPTS();
		}
		for (int k = 0; k < K; k++)
		{
			if (mem[k].stream != si || !mem[k].active)
				continue;
			mem[k].vloss /= s->n_val;
			mem[k].vscore = mem[k].m->task == DLT_TASK_CLASSIFICATION ?
				mem[k].vscore / s->n_val : sqrt(mem[k].vscore / s->n_val / mem[k].t.C);
		}
	}
	for (int k = 0; k < K; k++)
		if (mem[k].stream == si && mem[k].active)
			MemberEpochDone(&mem[k], e, cfg, t0, src, s);
}

void
DltTrainMany(DltRowSource *src, const DltOptions *given, int K,
			 const DltSelectConfig *cfg, DltSelectResult *res)
{
	DltOptions *opts = palloc(sizeof(DltOptions) * K);
	Stream	   *streams = palloc0(sizeof(Stream) * K);
	DltRowSource **msrc;
	Member	   *mem = palloc0(sizeof(Member) * K);
	int			S = 0;
	int			max_epochs = 0;
	instr_time	t0;

	memcpy(opts, given, sizeof(DltOptions) * K);
	for (int k = 0; k < K; k++)
	{
		DltTask		task = opts[k].task == DLT_TASK_AUTO ?
			DltResolveTaskNoError(DLT_TASK_AUTO, src->label_kind) : opts[k].task;

		if (task != src->task)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("configurations trained together must have the same task"),
					 errdetail("Configuration %d is for %s, the first for %s.",
							   k + 1, DltTaskName(task), DltTaskName(src->task))));
		memset(&res[k], 0, sizeof(DltSelectResult));
		res[k].index = k;
		res[k].n_models = K;
		res[k].loss = res[k].val_loss = res[k].val_metric = NAN;
		max_epochs = Max(max_epochs, opts[k].epochs);
	}
	if (K > 1)
		ereport(DEBUG1,
				(errmsg_internal("dltrain: training %d models from one %s of %lld rows",
								 K, src->name, (long long) src->n_rows)));

	/* one device for the whole training, whatever the GUC does meanwhile */
	src->device = DltDevice();
	for (int k = 0; k < K; k++)
		src->want_hash |= opts[k].checkpoint || opts[k].resume != NULL;

	/* what the rows determine: classes, statistics */
	INSTR_TIME_SET_CURRENT(t0);
	src->ops->prepare(src, opts, K);
	if (src->task == DLT_TASK_CLASSIFICATION)
		DltWarnManyClasses(src->classes.n_classes, src->n_rows, src->label_kind, opts[0].task);

	for (int k = 0; k < K; k++)
	{
		if (opts[k].resume)
			VerifyResume(k, opts[k].resume, &opts[k], src);
		if (opts[k].warm)
			WarmOptions(k, &opts[k], src);
	}

	/* frozen layers: their outputs computed once, where that pays */
	msrc = DltMaterialize(src, opts, K);

	/* streams */
	for (int k = 0; k < K; k++)
	{
		int			si = 0;

		if (src->shared_streams)
			for (si = 0; si < S; si++)
				if (DltSameStream(&streams[si].s.key, &opts[k]) && streams[si].src == msrc[k])
					break;
		if (!src->shared_streams || si == S)
		{
			si = S++;
			streams[si].src = msrc[k];
			streams[si].s.key = opts[k];
			streams[si].s.labels = &src->labels;
			streams[si].s.fm = src->fm;
			streams[si].s.fs = src->fs;
			if (opts[k].warm)
			{
				const DltModel *w = opts[k].warm;
				float	   *fm = palloc(sizeof(float) * src->D);
				float	   *fs = palloc(sizeof(float) * src->D);

				for (int d = 0; w->normalized && d < src->D; d++)
				{
					fm[d] = (float) w->mean[d];
					fs[d] = (float) w->scale[d];
				}
				streams[si].s.labels = WarmLabels(k, w, src);
				streams[si].s.fm = fm;
				streams[si].s.fs = fs;
			}
			if (opts[k].resume)
			{
				streams[si].s.start_epoch = opts[k].resume->epochs_run;
				if (opts[k].resume->ckpt->has_rng)
					streams[si].s.resume_rng = opts[k].resume->ckpt->rng;
			}
			msrc[k]->ops->open_stream(msrc[k], &streams[si].s);
		}
		mem[k].stream = si;
	}

	/* members: models, networks */
	CheckMembersBudget(src, opts, K, streams, mem);
	for (int k = 0; k < K; k++)
	{
		int			si = mem[k].stream;

		MemberInit(&mem[k], src, &opts[k], &res[k], &streams[si].s, cfg);
		mem[k].stream = si;
		if (opts[k].freeze > 0)
			DltMemberFreeze(&mem[k].t, opts[k].freeze, msrc[k] != src);
		/* no held-out rows: the last epoch's steps tell the classes predicted */
		if (cfg->class_notice && src->task == DLT_TASK_CLASSIFICATION &&
			streams[si].s.n_val == 0)
		{
			mem[k].step_counts = palloc0(sizeof(int64) * mem[k].t.C);
			DltTrainerCountSteps(&mem[k].t, mem[k].step_counts);
		}
	}

	/* fusion: per stream, the networks that step together */
	for (int si = 0; si < S; si++)
	{
		DltTrainer **ts = palloc(sizeof(DltTrainer *) * K);
		int			ks = 0;

		for (int k = 0; k < K; k++)
			if (mem[k].stream == si && Fusable(mem[k].m))
				ts[ks++] = &mem[k].t;
		if (ks > 1)
		{
			streams[si].fused = DltFusedCreate(ts, ks, streams[si].s.B);
			streams[si].who = ts;
		}
		else
			pfree(ts);
	}

	DltProgressPhase(DLT_PHASE_TRAINING);
	DltTestWaitPoint(DLT_WAIT_TRAINING);
	for (int e = 0; e < max_epochs; e++)
	{
		bool		any = false;

		for (int k = 0; k < K; k++)
			any |= mem[k].active;
		for (int si = 0; si < S; si++)
		{
			bool		live = false;

			/* a resumed stream starts at the epoch its checkpoint reached */
			for (int k = 0; k < K; k++)
				live |= mem[k].stream == si && mem[k].active && e >= mem[k].start;
			if (live)
				StreamEpoch(streams[si].src, &streams[si], si, mem, K, e, cfg, t0);
		}
		if (!any)
			break;
		Halve(mem, K, e, cfg, t0);
	}

	/* every member that did not diverge */
	for (int k = 0; k < K; k++)
	{
		if (mem[k].res->diverged)
			continue;
		if (mem[k].active)
			mem[k].res->seconds = Elapsed(t0);
		if (opts[k].checkpoint)
			mem[k].m->ckpt = MemberCheckpoint(&mem[k], src, &streams[mem[k].stream].s);
		MemberFinish(&mem[k]);
	}

	/*
	 * A model that never predicts some class on the held-out rows (the
	 * usual outcome of imbalanced classes) is told: one forward over the
	 * held-out rows in memory with the weights kept, no pass over the table.
	 */
	for (int k = 0; k < K && cfg->class_notice; k++)
	{
		Member	   *mb = &mem[k];
		DltStream  *s = &streams[mb->stream].s;
		int64	   *counts;
		int			bs;

		if (mb->res->diverged || src->task != DLT_TASK_CLASSIFICATION)
			continue;
		if (s->n_val == 0)
		{
			int64		n = 0;

			for (int c = 0; mb->step_counts && c < mb->t.C; c++)
				n += mb->step_counts[c];
			if (n > 0)
				DltNoticeUnpredictedClasses(mb->m, mb->step_counts, n, false);
			continue;
		}
		counts = palloc0(sizeof(int64) * mb->t.C);
		for (bool first = true;
			 (bs = streams[mb->stream].src->ops->next_validation(streams[mb->stream].src, s, first)) > 0;
			 first = false)
		{
			DltTrainerCountPredictions(&mb->t, s->batch, bs, counts);
			CHECK_FOR_INTERRUPTS();
		}
		DltNoticeUnpredictedClasses(mb->m, counts, s->n_val, true);
		pfree(counts);
	}
	DltMaterializeClose(msrc, K, src);
	src->ops->close(src);
}

void
DltEngineInit(void)
{
	static const struct config_enum_entry fusion_options[] = {
		{"off", DLT_FUSION_OFF, false},
		{"auto", DLT_FUSION_AUTO, false},
		{"on", DLT_FUSION_ON, false},
		{"false", DLT_FUSION_OFF, true},
		{"true", DLT_FUSION_ON, true},
		{NULL, 0, false}
	};

	DefineCustomEnumVariable("dltrain.fusion",
							 "Computes the first layers of models trained together in one matrix product.",
							 "auto fuses models without hidden layers, where it is faster; on fuses every model; off fuses none. The models are the same bytes in every case.",
							 &dltrain_fusion,
							 DLT_FUSION_AUTO,
							 fusion_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
}
