/*
 * model_check.h — the complete check of a dltrain.model value, in plain C.
 *
 * No PostgreSQL header: the same code runs in the backend (model.c raises
 * what it reports, with the SQLSTATE of the path that called it) and in the
 * standalone fuzz harness (test/fuzz), built with sanitizers.  See
 * model_check.c for the layout and the rules.
 */
#ifndef MODEL_CHECK_H
#define MODEL_CHECK_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/dlk.h"

#define DLT_MODEL_MAGIC 0x4D544C44	/* "DLTM" little-endian */
#define DLT_MODEL_VERSION 3		/* the newest; 2 is written without sections, 1 is read */
#define DLT_MODEL_VERSION_PLAIN 2	/* a model without sections */
#define DLT_MODEL_HEADER 16		/* magic, version, flags, length, CRC-32C */

/* limits that training enforces (options.c, labels.c) and the check repeats */
#define DLT_MAX_BATCH_SIZE 1048576
#define DLT_MAX_EPOCHS 1000000
#define DLT_MAX_LR 1e6
#define DLT_MAX_WEIGHT_DECAY 1e6
#define DLT_MAX_SEED (INT64_C(1) << 53)
#define DLT_MAX_VALIDATION_FRACTION 0.9
#define DLT_MAX_TEXT_LABEL 1024

/* the label types a model may name (pg_type.h's OIDs; model.c checks them) */
#define DLT_OID_BOOL 16			/* classes 0 (false) and 1 (true); 0.2.0 */
#define DLT_OID_INT8 20
#define DLT_OID_INT2 21
#define DLT_OID_INT4 23
#define DLT_OID_TEXT 25
#define DLT_OID_FLOAT4 700
#define DLT_OID_FLOAT8 701
#define DLT_OID_NUMERIC 1700		/* read as double precision; 0.2.0 */

/*
 * Does v round to a finite float32?  (Below FLT_MAX plus half an ulp; the
 * shortest decimal of FLT_MAX, 3.4028235e38, is above FLT_MAX as a double.)
 */
static inline int
DltFitsFloat32(double v)
{
	return isfinite(v) && fabs(v) < 0x1.ffffffp127;
}

/* what went wrong, as the glue maps it to an SQLSTATE */
typedef enum DltCheckCode
{
	DLT_CHECK_OK = 0,
	DLT_CHECK_TRUNCATED,		/* shorter than its header or its header's length */
	DLT_CHECK_NOT_MODEL,		/* no signature */
	DLT_CHECK_VERSION,			/* a format version this code does not read */
	DLT_CHECK_CORRUPT			/* anything else */
} DltCheckCode;

/* the checks, in the order they run (the fuzz harness counts them) */
typedef enum DltCheckStage
{
	DLT_STAGE_HEADER = 0,		/* length, signature, version, flags */
	DLT_STAGE_CHECKSUM,
	DLT_STAGE_KIND,				/* task, label kind and type */
	DLT_STAGE_ARCH,				/* activation, layers, widths, outputs */
	DLT_STAGE_OPTIONS,
	DLT_STAGE_RECORD,			/* row counts, per-epoch losses, validation */
	DLT_STAGE_STATS,			/* normalization statistics */
	DLT_STAGE_CLASSES,
	DLT_STAGE_WEIGHTS,
	DLT_STAGE_SECTIONS,			/* format 3: checkpoint, ... */
	DLT_STAGE_END,				/* no bytes after the contents */
	DLT_STAGE_COUNT
} DltCheckStage;

extern const char *const DltCheckStageNames[DLT_STAGE_COUNT];

typedef struct DltCheckResult
{
	DltCheckCode code;
	DltCheckStage stage;		/* the check that failed (DLT_STAGE_COUNT: none) */
	char		message[96];	/* errmsg: lowercase, no period */
	char		detail[320];	/* errdetail: a full sentence */
	const char *hint;			/* errhint or NULL */
} DltCheckResult;

/*
 * A checked value: its scalars, and where its arrays start (unaligned, in
 * the value's own bytes).  Text classes are laid out as int32 length then
 * the bytes, one after the other, from classes.
 */
typedef struct DltModelLayout
{
	uint16_t	version;
	uint32_t	crc;
	int32_t		task;
	int32_t		label_kind;
	uint32_t	label_type;
	dlk_arch	arch;
	/* options */
	int32_t		optimizer;
	double		lr;
	double		momentum;
	double		weight_decay;
	int32_t		batch_size;
	int32_t		epochs;
	int64_t		seed;
	uint8_t		shuffle;
	uint8_t		normalize;
	uint8_t		task_option;
	uint8_t		init_pytorch;
	double		validation_fraction;	/* format 2; 0 before */
	int32_t		early_stopping;
	/* training record */
	int64_t		rows_used;
	int64_t		rows_skipped;
	int32_t		epochs_run;
	const char *epoch_loss;		/* float[epochs_run] */
	int64_t		rows_validation;
	int32_t		best_epoch;
	const char *val_loss;		/* float[epochs_run] or NULL */
	const char *val_metric;
	int32_t		normalized;
	const char *mean;			/* double[D] or NULL */
	const char *scale;
	int32_t		n_classes;
	const char *classes;
	int64_t		n_params;
	const char *params;			/* float[n_params] */
	/* format 3: the checkpoint section (ckpt NULL: none) */
	const char *ckpt;			/* the section's payload */
	int32_t		ck_epoch;		/* epochs completed (= epochs_run) */
	int64_t		ck_step;		/* optimizer steps taken */
	int64_t		ck_n_state;
	const char *ck_state;		/* float[ck_n_state]: the optimizer's state */
	int32_t		ck_since_best;
	double		ck_best_vloss;	/* NaN without validation */
	const char *ck_last_params; /* float[n_params]: the last weights, when
								 * params hold the best epoch's; or NULL */
	uint8_t		ck_has_rng;
	uint64_t	ck_rng[4];		/* a row source's shuffle state */
	int64_t		ck_data_rows;	/* rows the training read */
	uint64_t	ck_data_hash;	/* the sum of their content hashes */
	int32_t		ck_threads;		/* dltrain.threads */
	char		ck_version[16]; /* the library's version, NUL-padded */
	char		ck_device[16];	/* the device's name, NUL-padded */
} DltModelLayout;

/* section identifiers (format 3) */
#define DLT_SECTION_CHECKPOINT 0x54504B43	/* "CKPT" little-endian */
#define DLT_CHECKPOINT_VERSION 1

/* field kinds, for the fuzz harness's field map */
typedef enum DltFieldKind
{
	DLT_FIELD_U8,
	DLT_FIELD_U16,
	DLT_FIELD_I32,
	DLT_FIELD_U32,
	DLT_FIELD_I64,
	DLT_FIELD_F32,
	DLT_FIELD_F64,
	DLT_FIELD_BYTES
} DltFieldKind;

/*
 * What the caller plugs in; every member may be NULL:
 *   crc32c   the CRC-32C of a buffer (INIT, COMP and FIN as pg_crc32c.h);
 *            NULL: DltCrc32c (the backend passes its hardware version)
 *   text_ok  whether a class label is valid text (the database encoding);
 *            NULL: any bytes but NUL
 *   field    called for every field read, in order (the fuzz harness maps
 *            the layout with it)
 */
typedef struct DltCheckHooks
{
	uint32_t	(*crc32c) (const void *data, size_t len);
	int			(*text_ok) (const char *s, int len, void *arg);
	void		(*field) (void *arg, const char *name, size_t offset, size_t size,
						  DltFieldKind kind, DltCheckStage stage);
	void	   *arg;
} DltCheckHooks;

/*
 * Checks the len bytes of a model (the varlena payload, without its
 * header).  Returns DLT_CHECK_OK and fills *out (if not NULL), or the code
 * with *res describing the first problem.
 */
extern DltCheckCode DltModelCheck(const void *data, size_t len,
								  const DltCheckHooks *hooks,
								  DltModelLayout *out, DltCheckResult *res);

/* CRC-32C (Castagnoli), as PostgreSQL's pg_crc32c computes it, in plain C. */
extern uint32_t DltCrc32c(const void *data, size_t len);

#endif							/* MODEL_CHECK_H */
