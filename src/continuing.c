/*
 * continuing.c — training that continues: a member's checkpoint section
 * ("checkpoint": true, and fit's periodic checkpoints), resume (the same
 * run on the same rows, verified, to the uninterrupted bytes) and warm
 * start (a new run from a model's weights, statistics and classes).  Part
 * of the engine (engine_int.h).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "blas.h"
#include "engine_int.h"

/*
 * The checkpoint section of a member's model ("checkpoint": true): the
 * optimizer's state, early stopping's, the source's shuffle state, and
 * what a resume verifies.  Before the best epoch's weights replace the last.
 */
DltCheckpoint *
MemberCheckpoint(Member *mb, DltRowSource *src, DltStream *s)
{
	DltModel   *m = mb->m;
	DltTrainer *t = &mb->t;
	DltCheckpoint *ck = palloc0(sizeof(DltCheckpoint));
	dlk_status	st;

	ck->epoch = m->epochs_run;
	ck->n_state = (int64) t->dev->n_opt_state(t->net);
	ck->state = palloc_extended(sizeof(float) * Max(ck->n_state, 1), MCXT_ALLOC_HUGE);
	st = t->dev->state_read(t->net, ck->state, &ck->step);
	if (st != DLK_OK)
		elog(ERROR, "dltrain: could not read the optimizer's state: %s", dlk_status_string(st));
	ck->since_best = mb->since_best;
	ck->best_vloss = m->rows_validation > 0 && m->epochs_run > 0 ? mb->best_vloss : NAN;
	if (m->best_epoch > 0 && m->best_epoch < m->epochs_run)
	{
		ck->last_params = palloc_extended(sizeof(float) * m->n_params, MCXT_ALLOC_HUGE);
		memcpy(ck->last_params, m->params, sizeof(float) * m->n_params);
	}
	if (src->ops->get_rng)
		ck->has_rng = src->ops->get_rng(src, s, ck->rng);
	ck->data_rows = src->data_rows;
	ck->data_hash = src->data_hash;
	ck->threads = DltThreads();
	strlcpy(ck->version, DLTRAIN_VERSION, sizeof(ck->version));
	strlcpy(ck->device, t->dev->name, sizeof(ck->device));
	return ck;
}

/*
 * A periodic checkpoint of a member that goes on: the model as a resume
 * needs it (the best epoch's weights when early stopping keeps them, the
 * last ones in the section), encoded; the member is left as it was.
 */
bytea *
MemberCheckpointModel(Member *mb, DltRowSource *src, DltStream *s)
{
	DltModel	copy = *mb->m;

	copy.ckpt = MemberCheckpoint(mb, src, s);
	if (copy.best_epoch > 0 && copy.best_epoch < copy.epochs_run)
		copy.params = mb->best_params;
	return ModelEncode(&copy);
}


/* The refusal of a resume that could not give the uninterrupted bytes. */
static void
ResumeRefused(int k, const char *what, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("cannot resume configuration %d: %s", k + 1, what),
			 detail ? errdetail_internal("%s", detail) : 0,
			 errhint("Resume continues the same run on the same rows; to start from a model's weights on other rows or options, train anew.")));
}

/* Can R's run continue here to the uninterrupted bytes? */
void
VerifyResume(int k, const DltModel *R, const DltOptions *o, const DltRowSource *src)
{
	const DltCheckpoint *ck = R->ckpt;
	const DltOptions *r = &R->opts;
	bool		same_hidden = r->n_hidden == o->n_hidden;

	if (ck == NULL)
		ResumeRefused(k, "the model carries no checkpoint",
					  "It was trained without the option \"checkpoint\": true.");
	for (int l = 0; same_hidden && l < o->n_hidden; l++)
		same_hidden = r->hidden[l] == o->hidden[l];
	if (!same_hidden || r->activation != o->activation || r->optimizer != o->optimizer ||
		r->lr != o->lr || r->momentum != o->momentum || r->weight_decay != o->weight_decay ||
		r->batch_size != o->batch_size || r->seed != o->seed || r->shuffle != o->shuffle ||
		r->normalize != o->normalize || r->task != o->task ||
		r->init_pytorch != o->init_pytorch ||
		r->validation_fraction != o->validation_fraction ||
		r->early_stopping != o->early_stopping)
		ResumeRefused(k, "its options differ from the checkpoint's",
					  "Only \"epochs\" may change (to at least the epochs done); every other option must be the checkpoint's, as dltrain.describe(model)->'options' shows them.");
	if (o->epochs < R->epochs_run)
		ResumeRefused(k, "fewer epochs than the checkpoint has done",
					  psprintf("The checkpoint is at epoch %d; \"epochs\" is %d.",
							   R->epochs_run, o->epochs));
	if (R->task != src->task || R->label_type != src->label_type ||
		R->arch.dims[0] != src->D)
		ResumeRefused(k, "the features or the label differ from the checkpoint's", NULL);
	if (ck->data_rows != src->data_rows || ck->data_hash != src->data_hash)
		ResumeRefused(k, "the rows changed since the checkpoint",
					  psprintf("The checkpoint read %lld rows (content %016llx); the rows now are %lld (content %016llx).",
							   (long long) ck->data_rows, (unsigned long long) ck->data_hash,
							   (long long) src->data_rows, (unsigned long long) src->data_hash));
	if (ck->threads != DltThreads())
		ResumeRefused(k, "dltrain.threads differs from the checkpoint's",
					  psprintf("The checkpoint was trained with %d threads; set dltrain.threads = %d.",
							   ck->threads, ck->threads));
	if (strcmp(ck->version, DLTRAIN_VERSION) != 0)
		ResumeRefused(k, "the checkpoint was written by another version of dltrain",
					  psprintf("It was written by %s; this is %s.", ck->version, DLTRAIN_VERSION));
	if (strcmp(ck->device, src->device->name) != 0)
		ResumeRefused(k, "dltrain.device differs from the checkpoint's",
					  psprintf("The checkpoint was trained on \"%s\".", ck->device));
	if (R->n_classes != src->classes.n_classes)
		ResumeRefused(k, "the label's classes differ from the checkpoint's", NULL);
}

/*
 * A member continuing R's run: its weights, optimizer state, record and
 * early stopping's state as R's checkpoint left them.
 */
void
MemberResume(Member *mb, const DltRowSource *src, const DltOptions *opts, const DltStream *s)
{
	const DltModel *R = opts->resume;
	const DltCheckpoint *ck = R->ckpt;
	DltModel   *m = mb->m;
	DltTrainer *t = &mb->t;
	int			e = R->epochs_run;
	dlk_status	st;

	if ((int64) t->dev->n_opt_state(t->net) != ck->n_state || R->n_params != m->n_params)
		elog(ERROR, "dltrain: the checkpoint's optimizer state does not fit the network");
	st = t->dev->params_write(t->net, ck->last_params ? ck->last_params : R->params);
	if (st == DLK_OK)
		st = t->dev->state_write(t->net, ck->state, ck->step);
	if (st != DLK_OK)
		elog(ERROR, "dltrain: could not restore the checkpoint: %s", dlk_status_string(st));
	memcpy(m->epoch_loss, R->epoch_loss, sizeof(float) * e);
	if (s->n_val > 0 && e > 0)
	{
		memcpy(m->val_loss, R->val_loss, sizeof(float) * e);
		memcpy(m->val_metric, R->val_metric, sizeof(float) * e);
	}
	m->epochs_run = e;
	m->best_epoch = R->best_epoch;
	mb->best_vloss = ck->best_vloss;
	mb->since_best = ck->since_best;
	if (mb->best_params && R->best_epoch > 0)
		memcpy(mb->best_params, R->params, sizeof(float) * m->n_params);
	mb->start = e;
	mb->res->epochs_trained = e;
	if (e > 0)
	{
		mb->res->loss = m->epoch_loss[e - 1];
		if (s->n_val > 0)
		{
			mb->res->val_loss = m->val_loss[e - 1];
			mb->res->val_metric = m->val_metric[e - 1];
		}
	}
	if (e >= opts->epochs ||
		(opts->early_stopping > 0 && mb->since_best >= opts->early_stopping))
	{
		if (e < opts->epochs)
			mb->res->stopped_epoch = e;
		mb->active = false;
	}
}

/* ---- warm start ---- */

static void
WarmRefused(int k, const char *what, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("cannot warm-start configuration %d: %s", k + 1, what),
			 detail ? errdetail_internal("%s", detail) : 0));
}

/*
 * The options a warm start trains with: the model's layers and activation
 * (an error if the options name others) and its normalization.
 */
void
WarmOptions(int k, DltOptions *o, const DltRowSource *src)
{
	const DltModel *w = o->warm;
	bool		same = o->n_hidden == w->arch.n_layers - 1;

	for (int l = 0; same && l < o->n_hidden; l++)
		same = o->hidden[l] == w->arch.dims[l + 1];
	if (o->hidden_given && !same && o->freeze > 0)
	{
		/*
		 * A new head on the frozen base: the first "freeze" widths must be
		 * the model's; the layers above them are new, from the seed.
		 */
		bool		base = o->n_hidden >= o->freeze;

		for (int l = 0; base && l < o->freeze; l++)
			base = o->hidden[l] == w->arch.dims[l + 1];
		if (!base)
			WarmRefused(k, "\"hidden\" does not start with the frozen layers' widths",
						psprintf("With \"freeze\": %d, the first %d widths of \"hidden\" are the model's; the rest is the new head.",
								 o->freeze, o->freeze));
	}
	else if (o->hidden_given && !same)
		WarmRefused(k, "\"hidden\" differs from the model's layers",
					"A warm start keeps the model's layers; leave \"hidden\" out, or freeze the base and give the new head's widths after the base's.");
	if (o->activation_given && o->activation != w->arch.act)
		WarmRefused(k, "\"activation\" differs from the model's",
					"A warm start keeps the model's activation; leave \"activation\" out.");
	if (!(o->hidden_given && !same && o->freeze > 0))
	{
		o->n_hidden = w->arch.n_layers - 1;
		for (int l = 0; l < o->n_hidden; l++)
			o->hidden[l] = w->arch.dims[l + 1];
	}
	o->activation = w->arch.act;
	o->normalize = w->normalized;
	if (w->arch.dims[0] != src->D)
		WarmRefused(k, "the feature width differs",
					psprintf("The model takes %d features; the rows have %d.",
							 w->arch.dims[0], src->D));
	if (w->task != src->task)
		WarmRefused(k, "the task differs",
					psprintf("The model is for %s; this training is %s.",
							 DltTaskName(w->task), DltTaskName(src->task)));
	if (w->label_type != src->label_type)
		WarmRefused(k, "the label type differs",
					psprintf("The model's labels are %s; these are %s.",
							 format_type_be(w->label_type), format_type_be(src->label_type)));
}

/*
 * The label map of a warm start: each class of the rows becomes the index
 * of the same value among the model's classes; a value the model never saw
 * is an error that names it.
 */
DltLabelMap *
WarmLabels(int k, const DltModel *w, const DltRowSource *src)
{
	const DltModel *rc = &src->classes;
	DltLabelMap *lm = palloc(sizeof(DltLabelMap));
	int32	   *pos = palloc(sizeof(int32) * Max(rc->n_classes, 1));
	int32	   *rank = palloc(sizeof(int32) * Max(rc->n_classes, 1));

	*lm = src->labels;
	if (src->task != DLT_TASK_CLASSIFICATION)
		return lm;
	for (int c = 0; c < rc->n_classes; c++)
	{
		pos[c] = -1;
		for (int j = 0; j < w->n_classes && pos[c] < 0; j++)
		{
			switch (w->label_kind)
			{
				case DLT_LABEL_INT:
					if (w->class_int[j] == rc->class_int[c])
						pos[c] = j;
					break;
				case DLT_LABEL_FLOAT:
					if (w->class_float[j] == rc->class_float[c])
						pos[c] = j;
					break;
				case DLT_LABEL_TEXT:
					if (strcmp(w->class_text[j], rc->class_text[c]) == 0)
						pos[c] = j;
					break;
			}
		}
		if (pos[c] < 0)
		{
			StringInfoData b;
			DltModel	named = *rc;

			named.label_kind = src->label_kind;
			named.label_type = src->label_type;
			initStringInfo(&b);
			DltAppendClassJson(&b, &named, c);
			WarmRefused(k, psprintf("the label %s does not occur in the model", b.data),
						"A warm start keeps the model's classes; train anew for new classes.");
		}
	}
	/* class id -> the rows' rank -> the model's index */
	for (int id = 0; id < rc->n_classes; id++)
		rank[id] = pos[src->labels.rank[id]];
	lm->rank = rank;
	return lm;
}

/* A warm-started member: the model's statistics, weights and optimizer state. */
void
MemberWarmStart(Member *mb, const DltOptions *opts)
{
	const DltModel *w = opts->warm;
	DltModel   *m = mb->m;
	DltTrainer *t = &mb->t;
	int			D = m->arch.dims[0];
	dlk_status	st;
	bool		same_arch;

	if (w->normalized)
	{
		m->normalized = true;
		m->mean = palloc(sizeof(double) * D);
		m->scale = palloc(sizeof(double) * D);
		memcpy(m->mean, w->mean, sizeof(double) * D);
		memcpy(m->scale, w->scale, sizeof(double) * D);
	}
	same_arch = w->arch.n_layers == m->arch.n_layers && w->n_params == m->n_params;
	for (int l = 0; same_arch && l <= m->arch.n_layers; l++)
		same_arch = w->arch.dims[l] == m->arch.dims[l];
	if (!same_arch)
	{
		/* a new head on a frozen base: the base's weights only */
		size_t		off = 0;
		float	   *p = palloc_extended(sizeof(float) * m->n_params, MCXT_ALLOC_HUGE);

		Assert(opts->freeze > 0);
		for (int l = 0; l < opts->freeze; l++)
			off += (size_t) w->arch.dims[l + 1] * (w->arch.dims[l] + 1);
		st = t->dev->params_read(t->net, p);
		if (st == DLK_OK)
		{
			memcpy(p, w->params, sizeof(float) * off);
			st = t->dev->params_write(t->net, p);
		}
		pfree(p);
	}
	else
	{
		st = t->dev->params_write(t->net, w->params);
		/* its optimizer's state too, when it carries one for this optimizer */
		if (st == DLK_OK && w->ckpt && w->opts.optimizer == opts->optimizer &&
			(int64) t->dev->n_opt_state(t->net) == w->ckpt->n_state)
			st = t->dev->state_write(t->net, w->ckpt->state, w->ckpt->step);
	}
	if (st != DLK_OK)
		elog(ERROR, "dltrain: could not load the warm-start model: %s", dlk_status_string(st));
}

