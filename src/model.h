/*
 * model.h — the model value: a decoded DltModel, its encoding as the
 * varlena payload of dltrain.model, and the checks every decoder applies
 * (model.c, model_check.c).
 */
#ifndef DLTRAIN_MODEL_H
#define DLTRAIN_MODEL_H

#include "postgres.h"

#include "lib/stringinfo.h"

#include "kernels/dlk.h"
#include "model_check.h"
#include "options.h"

/*
 * What continuing a training exactly needs beyond the model (format 3's
 * checkpoint section, written with the option "checkpoint").
 */
typedef struct DltCheckpoint
{
	int			epoch;			/* epochs completed (= epochs_run) */
	int64		step;			/* optimizer steps taken */
	int64		n_state;
	float	   *state;			/* the optimizer's state [n_state] */
	int			since_best;		/* early stopping: epochs without a better one */
	double		best_vloss;		/* NaN without validation */
	float	   *last_params;	/* the last weights when params hold the best
								 * epoch's; NULL otherwise */
	bool		has_rng;
	uint64		rng[4];			/* the row source's shuffle state (fit) */
	int64		data_rows;		/* rows the training read */
	uint64		data_hash;		/* the sum of their content hashes */
	int			threads;		/* dltrain.threads */
	char		version[16];	/* the library's */
	char		device[16];		/* dltrain.device */
} DltCheckpoint;

/*
 * A decoded model.  Arrays are palloc'd (MAXALIGNed) in the context that
 * decoded it.
 */
typedef struct DltModel
{
	int			version;
	DltTask		task;			/* classification or regression */
	DltLabelKind label_kind;
	Oid			label_type;		/* SQL type the labels came in as */
	dlk_arch	arch;
	DltOptions	opts;			/* resolved options */
	int64		rows_used;
	int64		rows_skipped;
	int			epochs_run;
	float	   *epoch_loss;		/* [epochs_run] */
	int64		rows_validation;	/* held out (format 2); 0: none */
	int			best_epoch;		/* 1-based epoch of the weights kept; 0: the last */
	float	   *val_loss;		/* [epochs_run] when rows_validation > 0 */
	float	   *val_metric;		/* accuracy, or RMSE for regression */
	bool		normalized;
	double	   *mean;			/* [D] or NULL */
	double	   *scale;			/* [D] 1/std (0-variance features: 1) or NULL */
	int			n_classes;		/* 0 for regression */
	int64	   *class_int;		/* DLT_LABEL_INT classes, ascending */
	double	   *class_float;	/* DLT_LABEL_FLOAT classes, ascending */
	char	  **class_text;		/* DLT_LABEL_TEXT classes, byte order */
	size_t		n_params;
	float	   *params;
	DltCheckpoint *ckpt;		/* NULL: the model cannot be continued */
	uint32		crc;
} DltModel;

/* a serialized model (the varlena payload of dltrain.model) */
extern bytea *ModelEncode(const DltModel *m);	/* checked: a failure is a bug */
extern bytea *ModelEncodeRaw(const DltModel *m);	/* unchecked: import() checks */
extern DltModel *ModelDecode(const struct varlena *v);	/* checked: XX001 */
/* A model from its text form (base64), checked as the input function does. */
extern DltModel *ModelFromText(const char *text);

/* the complete check of model bytes (model_check.c), with the backend's hooks */
extern bool ModelCheckBytes(const char *data, Size len, DltModelLayout *layout,
							DltCheckResult *res);
/* ... raising what is wrong with sqlerrcode (22P02, 22P03 or XX001) */
extern void CheckModelBytes(const char *data, Size len, int sqlerrcode,
							DltModelLayout *layout);
extern Size ModelEncodedSize(const DltModel *m);
extern void CheckModelSize(Size nbytes);

/* Fills m->arch from m->opts for D inputs and C outputs. */
extern void DltModelSetArch(DltModel *m, int D, int C);

/* a class for people: JSON (describe, evaluate) or text (predict) */
extern void DltAppendClassJson(StringInfo buf, const DltModel *m, int k);
extern text *DltClassText(const DltModel *m, int k);

/* The index of the first maximum of p[0..n). */
static inline int
DltArgMax(const float *p, int n)
{
	int			best = 0;

	for (int i = 1; i < n; i++)
		if (p[i] > p[best])
			best = i;
	return best;
}

#endif							/* DLTRAIN_MODEL_H */
