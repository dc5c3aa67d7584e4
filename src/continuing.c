/*
 * continuing.c — what a training that continues from a model must agree
 * with: a resume's checkpoint (the same run, the same rows, options and
 * environment) and a warm start's model (its layers, activation, feature
 * width, task, label type and classes).  The engine (engine.c) asks before
 * it opens streams; each refusal names the configuration and the reason.
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "blas.h"
#include "continuing.h"
#include "version.h"

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
DltVerifyResume(int k, const DltModel *R, const DltOptions *o, const DltRowSource *src)
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
DltWarmOptions(int k, DltOptions *o, const DltRowSource *src)
{
	const DltModel *w = o->warm;
	bool		same = o->n_hidden == w->arch.n_layers - 1;

	for (int l = 0; same && l < o->n_hidden; l++)
		same = o->hidden[l] == w->arch.dims[l + 1];
	if (o->hidden_given && !same)
		WarmRefused(k, "\"hidden\" differs from the model's layers",
					"A warm start keeps the model's layers; leave \"hidden\" out.");
	if (o->activation_given && o->activation != w->arch.act)
		WarmRefused(k, "\"activation\" differs from the model's",
					"A warm start keeps the model's activation; leave \"activation\" out.");
	o->n_hidden = w->arch.n_layers - 1;
	for (int l = 0; l < o->n_hidden; l++)
		o->hidden[l] = w->arch.dims[l + 1];
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
DltWarmLabels(int k, const DltModel *w, const DltRowSource *src)
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

