/*
 * model_check.c — the complete check of a dltrain.model value, in one place.
 *
 * Every path that takes model bytes from outside runs this check before
 * anything else reads them: the text input function (22P02), the binary
 * receive function (22P03), import() (22023) and decoding of a stored value
 * (XX001: it passed input, so failing now means it was damaged).  The check
 * is plain C with no PostgreSQL header and no allocation: it reads the bytes
 * once, front to back, and either accepts the whole value or reports the
 * first problem as a code, the check that found it, and a message in
 * PostgreSQL's style that the glue raises.  The same file is linked into the
 * standalone fuzz harness (test/fuzz), which runs it under ASan and UBSan.
 *
 * The layout (all fields in the machine's byte order, unaligned):
 *
 *   header    magic "DLTM" (uint32), format version (uint16, 1 or 2),
 *             flags (uint16, 0), total length (uint32), CRC-32C of the body
 *   kind      task (int32), label kind (int32), label type OID (uint32)
 *   arch      activation (int32), layer count L (int32), L + 1 widths (int32)
 *   options   optimizer (int32), lr, momentum, weight_decay (double),
 *             batch_size, epochs (int32), seed (int64), shuffle, normalize,
 *             task option, init (uint8); format 2: validation_fraction
 *             (double), early_stopping (int32)
 *   record    rows used, rows skipped (int64), epochs run E (int32),
 *             E training losses (float); format 2: validation rows (int64),
 *             best epoch (int32) and, with validation rows, E validation
 *             losses and E validation metrics (float)
 *   stats     normalized (int32 0/1), then D means and D scales (double)
 *   classes   count (int32), then int64 / double values, or (int32 length,
 *             bytes) per text label
 *   weights   parameter count (int64), then the parameters (float), in the
 *             kernel library's layout W_0, b_0, W_1, b_1, ...
 *
 * The rules are what training (and import) can produce, so that a value
 * that passes is safe for every consumer, and a value training wrote always
 * passes: enums within their range; widths 1 to DLK_MAX_WIDTH; a classifier
 * has as many outputs as classes (at least two), a regression model one
 * output and no classes; options within the ranges options.c accepts;
 * counts never negative and every array within the bytes that remain;
 * losses never negative (training losses may be +inf once rounded to
 * float32; validation numbers may also be NaN); statistics finite, within
 * float32 range, scales positive; classes strictly ascending (so distinct,
 * and found by binary search), within the label type's range (real labels
 * exactly float32, no negative zero: training reads -0 as 0), text labels without NUL, at most DLT_MAX_TEXT_LABEL
 * bytes and valid in the database encoding (a hook); exactly the parameter
 * count of the architecture, every weight finite; no byte after the last.
 *
 * Every value that training wrote, in format 1 or 2, passes.  import() in
 * 0.1.0 checked less than this (class ranges, real classes that are not
 * float32 values, scales, means, text label lengths): a model imported then
 * with such values now fails, as XX001.
 */
#include "model_check.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *const DltCheckStageNames[DLT_STAGE_COUNT] = {
	"header", "checksum", "kind", "architecture", "options", "record",
	"statistics", "classes", "weights", "sections", "end"
};

typedef struct Checker
{
	const char *base;
	const char *p;
	const char *end;
	DltCheckStage stage;
	const DltCheckHooks *hooks;
	DltCheckResult *res;
} Checker;

/* ---- CRC-32C ---- */

static uint32_t crc_table[256];
static int	crc_table_ready = 0;

uint32_t
DltCrc32c(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint32_t	crc = 0xFFFFFFFFu;

	if (!crc_table_ready)
	{
		for (uint32_t i = 0; i < 256; i++)
		{
			uint32_t	c = i;

			for (int k = 0; k < 8; k++)
				c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
			crc_table[i] = c;
		}
		crc_table_ready = 1;
	}
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
	return crc ^ 0xFFFFFFFFu;
}

/* ---- failing ---- */

#if defined(__GNUC__)
#define DLT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DLT_PRINTF(f, a)
#endif

static int	Fail(Checker *c, DltCheckCode code, const char *message, const char *hint,
				 const char *fmt,...) DLT_PRINTF(5, 6);

/* Records the first problem; returns 0 so that checks read "return Fail(...)". */
static int
Fail(Checker *c, DltCheckCode code, const char *message, const char *hint,
	 const char *fmt,...)
{
	va_list		ap;

	if (c->res->code != DLT_CHECK_OK)
		return 0;
	c->res->code = code;
	c->res->stage = c->stage;
	snprintf(c->res->message, sizeof(c->res->message), "%s", message);
	va_start(ap, fmt);
	vsnprintf(c->res->detail, sizeof(c->res->detail), fmt, ap);
	va_end(ap);
	c->res->hint = hint;
	return 0;
}

#define CORRUPT(c, ...) Fail((c), DLT_CHECK_CORRUPT, "dltrain model value is corrupt", NULL, __VA_ARGS__)

/* ---- reading ---- */

static size_t
Left(const Checker *c)
{
	return (size_t) (c->end - c->p);
}

/* Takes n bytes of field name; 0 when the value ends first. */
static int
Take(Checker *c, void *dst, size_t n, const char *name, DltFieldKind kind)
{
	if (Left(c) < n)
		return CORRUPT(c, "The value ends inside its %s.", name);
	if (c->hooks && c->hooks->field)
		c->hooks->field(c->hooks->arg, name, (size_t) (c->p - c->base), n, kind, c->stage);
	if (dst)
		memcpy(dst, c->p, n);
	c->p += n;
	return 1;
}

static int
TakeI32(Checker *c, int32_t *v, const char *name)
{
	return Take(c, v, sizeof(*v), name, DLT_FIELD_I32);
}

static int
TakeI64(Checker *c, int64_t *v, const char *name)
{
	return Take(c, v, sizeof(*v), name, DLT_FIELD_I64);
}

static int
TakeF64(Checker *c, double *v, const char *name)
{
	return Take(c, v, sizeof(*v), name, DLT_FIELD_F64);
}

static int
TakeU8(Checker *c, uint8_t *v, const char *name)
{
	return Take(c, v, sizeof(*v), name, DLT_FIELD_U8);
}

/*
 * Takes an array of n elements of size sz; *start points at its first
 * element.  Each element is one field for the field map.
 */
static int
TakeArray(Checker *c, const char **start, int64_t n, size_t sz, const char *name,
		  DltFieldKind kind)
{
	if (n < 0 || (uint64_t) n > Left(c) / sz)
		return CORRUPT(c, "Its %s (%lld values) run past the end of the value.",
					   name, (long long) n);
	*start = c->p;
	if (c->hooks && c->hooks->field)
	{
		for (int64_t i = 0; i < n; i++)
			c->hooks->field(c->hooks->arg, name, (size_t) (c->p - c->base) + i * sz, sz,
							kind, c->stage);
	}
	c->p += (size_t) n * sz;
	return 1;
}

static float
FloatAt(const char *p, int64_t i)
{
	float		f;

	memcpy(&f, p + i * sizeof(float), sizeof(float));
	return f;
}

static double
DoubleAt(const char *p, int64_t i)
{
	double		d;

	memcpy(&d, p + i * sizeof(double), sizeof(double));
	return d;
}

/* ---- small checks ---- */

static int
CheckIntRange(Checker *c, int64_t v, int64_t lo, int64_t hi, const char *what)
{
	if (v < lo || v > hi)
		return CORRUPT(c, "Its %s is %lld, outside %lld to %lld.",
					   what, (long long) v, (long long) lo, (long long) hi);
	return 1;
}

static int
CheckBool(Checker *c, int64_t v, const char *what)
{
	if (v != 0 && v != 1)
		return CORRUPT(c, "Its %s flag is %lld, not 0 or 1.", what, (long long) v);
	return 1;
}

/* lo <= v <= hi (or < hi when hi_open), and finite */
static int
CheckDoubleRange(Checker *c, double v, double lo, double hi, int hi_open,
				 const char *what)
{
	if (!isfinite(v) || v < lo || v > hi || (hi_open && v == hi))
		return CORRUPT(c, "Its %s is %g, outside %g to %g%s.", what, v, lo, hi,
					   hi_open ? " (exclusive)" : "");
	return 1;
}

/*
 * Per-epoch numbers: never negative; NaN only where nan_ok (validation);
 * at most max (accuracy: 1).
 */
static int
CheckEpochValues(Checker *c, const char *p, int32_t n, int nan_ok, double max,
				 const char *what)
{
	for (int32_t e = 0; e < n; e++)
	{
		float		f = FloatAt(p, e);

		if (isnan(f) ? !nan_ok : (f < 0 || f > max))
			return CORRUPT(c, "Its %s of epoch %d is %g.", what, e + 1, (double) f);
	}
	return 1;
}

/* ---- the parts ---- */

static int
CheckHeader(Checker *c, size_t len, uint16_t *version, uint32_t *crc)
{
	uint32_t	magic,
				total;
	uint16_t	flags;

	if (len < DLT_MODEL_HEADER)
		return Fail(c, DLT_CHECK_TRUNCATED, "dltrain model value is truncated", NULL,
					"It has %zu bytes, fewer than the %d-byte header.",
					len, DLT_MODEL_HEADER);
	if (!Take(c, &magic, 4, "signature", DLT_FIELD_U32) ||
		!Take(c, version, 2, "format version", DLT_FIELD_U16) ||
		!Take(c, &flags, 2, "flags", DLT_FIELD_U16) ||
		!Take(c, &total, 4, "length", DLT_FIELD_U32) ||
		!Take(c, crc, 4, "checksum", DLT_FIELD_U32))
		return 0;
	if (magic != DLT_MODEL_MAGIC)
		return Fail(c, DLT_CHECK_NOT_MODEL, "value is not a dltrain model", NULL,
					"Its first bytes are not the dltrain model signature.");
	if (*version < 1 || *version > DLT_MODEL_VERSION)
	{
		Fail(c, DLT_CHECK_VERSION, "",
			 "Update the dltrain extension to read models written by a newer version.",
			 "This version of dltrain reads format versions 1 to %d.", DLT_MODEL_VERSION);
		snprintf(c->res->message, sizeof(c->res->message),
				 "dltrain model has unknown format version %u", (unsigned) *version);
		return 0;
	}
	if (flags != 0)
		return CORRUPT(c, "Its header flags are %04X; format version %u has none.",
					   (unsigned) flags, (unsigned) *version);
	if (len < total)
		return Fail(c, DLT_CHECK_TRUNCATED, "dltrain model value is truncated", NULL,
					"It has %zu of its %u bytes.", len, (unsigned) total);
	if (len > total)
		return CORRUPT(c, "It has %zu bytes, but its header says %u.", len, (unsigned) total);
	return 1;
}

static int
CheckChecksum(Checker *c, uint32_t crc)
{
	const char *body = c->base + DLT_MODEL_HEADER;
	size_t		n = (size_t) (c->end - body);
	uint32_t	calc = c->hooks && c->hooks->crc32c ?
		c->hooks->crc32c(body, n) : DltCrc32c(body, n);

	if (calc != crc)
		return CORRUPT(c, "Its checksum is %08X, but its contents give %08X.",
					   (unsigned) crc, (unsigned) calc);
	return 1;
}

static int
CheckKind(Checker *c, DltModelLayout *m)
{
	uint32_t	t;
	int			ok;

	if (!TakeI32(c, &m->task, "task") ||
		!CheckIntRange(c, m->task, 1, 2, "task code") ||
		!TakeI32(c, &m->label_kind, "label kind") ||
		!CheckIntRange(c, m->label_kind, 1, 3, "label kind code") ||
		!Take(c, &m->label_type, 4, "label type", DLT_FIELD_U32))
		return 0;
	t = m->label_type;
	switch (m->label_kind)
	{
		case 1:
			ok = t == DLT_OID_INT2 || t == DLT_OID_INT4 || t == DLT_OID_INT8 ||
				t == DLT_OID_BOOL;
			break;
		case 2:
			ok = t == DLT_OID_FLOAT4 || t == DLT_OID_FLOAT8 || t == DLT_OID_NUMERIC;
			break;
		default:
			ok = t == DLT_OID_TEXT;
			break;
	}
	if (!ok)
		return CORRUPT(c, "Its label type %u does not match its label kind %d.",
					   (unsigned) t, (int) m->label_kind);
	if (m->label_kind == 3 && m->task != 1)
		return CORRUPT(c, "It is a regression model with text labels.");
	if (t == DLT_OID_BOOL && m->task != 1)
		return CORRUPT(c, "It is a regression model with boolean labels.");
	return 1;
}

static int
CheckArch(Checker *c, DltModelLayout *m)
{
	dlk_arch   *a = &m->arch;
	int32_t		v;
	int32_t		C;

	memset(a, 0, sizeof(*a));
	if (!TakeI32(c, &v, "activation") ||
		!CheckIntRange(c, v, DLK_ACT_RELU, DLK_ACT_SIGMOID, "activation code"))
		return 0;
	a->act = (dlk_act) v;
	a->loss = m->task == 1 ? DLK_LOSS_SOFTMAX_CE : DLK_LOSS_MSE;
	if (!TakeI32(c, &v, "layer count") ||
		!CheckIntRange(c, v, 1, DLK_MAX_LAYERS, "layer count"))
		return 0;
	a->n_layers = v;
	for (int l = 0; l <= a->n_layers; l++)
	{
		if (!TakeI32(c, &v, "layer width"))
			return 0;
		if (v < 1 || v > DLK_MAX_WIDTH)
		{
			if (l == 0)
				return CORRUPT(c, "Its input width is %d, outside 1 to %d.",
							   (int) v, DLK_MAX_WIDTH);
			return CORRUPT(c, "The output width of its layer %d is %d, outside 1 to %d.",
						   l, (int) v, DLK_MAX_WIDTH);
		}
		a->dims[l] = v;
	}
	C = a->dims[a->n_layers];
	if (m->task == 1 && C < 2)
		return CORRUPT(c, "It is a classifier with %d output; a classifier has at least two.",
					   (int) C);
	if (m->task == 2 && C != 1)
		return CORRUPT(c, "It is a regression model with %d outputs; a regression model has one.",
					   (int) C);
	return 1;
}

static int
CheckOptions(Checker *c, DltModelLayout *m)
{
	if (!TakeI32(c, &m->optimizer, "optimizer") ||
		!CheckIntRange(c, m->optimizer, DLK_OPT_SGD, DLK_OPT_ADAMW, "optimizer code") ||
		!TakeF64(c, &m->lr, "learning rate") ||
		!TakeF64(c, &m->momentum, "momentum") ||
		!TakeF64(c, &m->weight_decay, "weight decay") ||
		!TakeI32(c, &m->batch_size, "batch size") ||
		!TakeI32(c, &m->epochs, "epochs option") ||
		!TakeI64(c, &m->seed, "seed") ||
		!TakeU8(c, &m->shuffle, "shuffle option") ||
		!TakeU8(c, &m->normalize, "normalize option") ||
		!TakeU8(c, &m->task_option, "task option") ||
		!TakeU8(c, &m->init_pytorch, "init option"))
		return 0;
	if (m->version >= 2 &&
		(!TakeF64(c, &m->validation_fraction, "validation fraction") ||
		 !TakeI32(c, &m->early_stopping, "early stopping option")))
		return 0;

	if (!isfinite(m->lr) || m->lr <= 0 || m->lr > DLT_MAX_LR)
		return CORRUPT(c, "Its learning rate is %g, outside 0 (exclusive) to %g.",
					   m->lr, DLT_MAX_LR);
	if (!CheckDoubleRange(c, m->momentum, 0, 1, 1, "momentum") ||
		!CheckDoubleRange(c, m->weight_decay, 0, DLT_MAX_WEIGHT_DECAY, 0, "weight decay") ||
		!CheckIntRange(c, m->batch_size, 1, DLT_MAX_BATCH_SIZE, "batch size") ||
		!CheckIntRange(c, m->epochs, 0, DLT_MAX_EPOCHS, "epochs option") ||
		!CheckIntRange(c, m->seed, -DLT_MAX_SEED, DLT_MAX_SEED, "seed") ||
		!CheckBool(c, m->shuffle, "shuffle") ||
		!CheckBool(c, m->normalize, "normalize") ||
		!CheckBool(c, m->init_pytorch, "init") ||
		!CheckIntRange(c, m->task_option, 0, 2, "task option code") ||
		!CheckDoubleRange(c, m->validation_fraction, 0, DLT_MAX_VALIDATION_FRACTION, 0,
						  "validation fraction") ||
		!CheckIntRange(c, m->early_stopping, 0, DLT_MAX_EPOCHS, "early stopping option"))
		return 0;
	if (m->task_option != 0 && m->task_option != m->task)
		return CORRUPT(c, "Its task option %d differs from its task %d.",
					   (int) m->task_option, (int) m->task);
	if (m->early_stopping > 0 && m->validation_fraction == 0)
		return CORRUPT(c, "It stops early without a validation fraction.");
	return 1;
}

static int
CheckRecord(Checker *c, DltModelLayout *m)
{
	int			cls = m->task == 1;

	if (!TakeI64(c, &m->rows_used, "row count") ||
		!CheckIntRange(c, m->rows_used, 0, INT64_MAX, "row count") ||
		!TakeI64(c, &m->rows_skipped, "skipped row count") ||
		!CheckIntRange(c, m->rows_skipped, 0, INT64_MAX, "skipped row count") ||
		!TakeI32(c, &m->epochs_run, "epoch count") ||
		!CheckIntRange(c, m->epochs_run, 0, m->epochs, "epoch count") ||
		!TakeArray(c, &m->epoch_loss, m->epochs_run, sizeof(float), "training losses",
				   DLT_FIELD_F32) ||
		!CheckEpochValues(c, m->epoch_loss, m->epochs_run, 0, INFINITY, "training loss"))
		return 0;
	if (m->version < 2)
		return 1;
	if (!TakeI64(c, &m->rows_validation, "validation row count") ||
		!CheckIntRange(c, m->rows_validation, 0, INT64_MAX, "validation row count") ||
		!TakeI32(c, &m->best_epoch, "best epoch") ||
		!CheckIntRange(c, m->best_epoch, 0, m->epochs_run, "best epoch"))
		return 0;
	if (m->rows_validation > 0 && m->validation_fraction == 0)
		return CORRUPT(c, "It has validation rows but no validation fraction.");
	if (m->best_epoch > 0 && (m->rows_validation == 0 || m->early_stopping == 0))
		return CORRUPT(c, "It names a best epoch without early stopping on validation rows.");
	if (m->rows_validation > 0)
	{
		if (!TakeArray(c, &m->val_loss, m->epochs_run, sizeof(float), "validation losses",
					   DLT_FIELD_F32) ||
			!CheckEpochValues(c, m->val_loss, m->epochs_run, 1, INFINITY, "validation loss") ||
			!TakeArray(c, &m->val_metric, m->epochs_run, sizeof(float), "validation metrics",
					   DLT_FIELD_F32) ||
			!CheckEpochValues(c, m->val_metric, m->epochs_run, 1, cls ? 1.0 : INFINITY,
							  cls ? "validation accuracy" : "validation RMSE"))
			return 0;
	}
	return 1;
}

static int
CheckStats(Checker *c, DltModelLayout *m)
{
	int			D = m->arch.dims[0];

	if (!TakeI32(c, &m->normalized, "normalization flag") ||
		!CheckBool(c, m->normalized, "normalization"))
		return 0;
	if (m->normalized != m->normalize)
		return CORRUPT(c, "Its normalization flag %d differs from its normalize option %d.",
					   (int) m->normalized, (int) m->normalize);
	if (!m->normalized)
		return 1;
	if (!TakeArray(c, &m->mean, D, sizeof(double), "feature means", DLT_FIELD_F64) ||
		!TakeArray(c, &m->scale, D, sizeof(double), "feature scales", DLT_FIELD_F64))
		return 0;
	for (int d = 0; d < D; d++)
	{
		double		mu = DoubleAt(m->mean, d);
		double		s = DoubleAt(m->scale, d);

		if (!DltFitsFloat32(mu))
			return CORRUPT(c, "The mean of feature %d is %g, outside the range of real.",
						   d + 1, mu);
		if (!DltFitsFloat32(s) || !(s > 0))
			return CORRUPT(c, "The scale of feature %d is %g; a scale is positive and within the range of real.",
						   d + 1, s);
	}
	return 1;
}

/* Compares text labels as PostgreSQL's C collation does: bytes, then length. */
static int
CompareText(const char *a, int32_t alen, const char *b, int32_t blen)
{
	int			r = memcmp(a, b, (size_t) (alen < blen ? alen : blen));

	return r != 0 ? r : (alen > blen) - (alen < blen);
}

static int
CheckClasses(Checker *c, DltModelLayout *m)
{
	int32_t		C = m->arch.dims[m->arch.n_layers];
	const char *prev = NULL;
	int32_t		prevlen = 0;

	if (!TakeI32(c, &m->n_classes, "class count"))
		return 0;
	if (m->task == 1 && m->n_classes != C)
		return CORRUPT(c, "It has %d classes but %d outputs.", (int) m->n_classes, (int) C);
	if (m->task == 2 && m->n_classes != 0)
		return CORRUPT(c, "It is a regression model with %d classes.", (int) m->n_classes);
	m->classes = c->p;
	for (int32_t k = 0; k < m->n_classes; k++)
	{
		if (m->label_kind == 1)
		{
			int64_t		v,
						lo = INT64_MIN,
						hi = INT64_MAX,
						last;

			if (!TakeI64(c, &v, "class value"))
				return 0;
			if (m->label_type == DLT_OID_INT2)
				lo = INT16_MIN, hi = INT16_MAX;
			else if (m->label_type == DLT_OID_INT4)
				lo = INT32_MIN, hi = INT32_MAX;
			else if (m->label_type == DLT_OID_BOOL)
				lo = 0, hi = 1;
			if (v < lo || v > hi)
				return CORRUPT(c, "Its class %d is %lld, out of range for its label type.",
							   k + 1, (long long) v);
			if (k > 0)
			{
				memcpy(&last, c->p - 16, 8);
				if (last >= v)
					return CORRUPT(c, "Its classes are not distinct and in ascending order.");
			}
		}
		else if (m->label_kind == 2)
		{
			double		v,
						last;

			if (!TakeF64(c, &v, "class value"))
				return 0;
			if (!isfinite(v))
				return CORRUPT(c, "Its class %d is not finite.", k + 1);
			if (v == 0 && signbit(v))
				return CORRUPT(c, "Its class %d is negative zero, which training reads as zero.",
							   k + 1);
			if (m->label_type == DLT_OID_FLOAT4 &&
				(!DltFitsFloat32(v) || (double) (float) v != v))
				return CORRUPT(c, "Its class %d is %g, which is not a value of type real.",
							   k + 1, v);
			if (k > 0)
			{
				memcpy(&last, c->p - 16, 8);
				if (!(last < v))
					return CORRUPT(c, "Its classes are not distinct and in ascending order.");
			}
		}
		else
		{
			int32_t		len;
			const char *s;

			if (!TakeI32(c, &len, "class label length"))
				return 0;
			if (len < 0 || len > DLT_MAX_TEXT_LABEL)
				return CORRUPT(c, "Its class %d has length %d, outside 0 to %d.",
							   k + 1, (int) len, DLT_MAX_TEXT_LABEL);
			s = c->p;
			if (!Take(c, NULL, (size_t) len, "class label", DLT_FIELD_BYTES))
				return 0;
			if (memchr(s, '\0', (size_t) len) != NULL ||
				(c->hooks && c->hooks->text_ok &&
				 !c->hooks->text_ok(s, (int) len, c->hooks->arg)))
				return CORRUPT(c, "Its class %d is not valid text in the database encoding.",
							   k + 1);
			if (prev && CompareText(prev, prevlen, s, len) >= 0)
				return CORRUPT(c, "Its classes are not distinct and in ascending order.");
			prev = s;
			prevlen = len;
		}
	}
	return 1;
}

static int
CheckWeights(Checker *c, DltModelLayout *m)
{
	const dlk_arch *a = &m->arch;
	int64_t		want = 0;

	/* at most 16 layers of 65536 x 65537: no overflow in int64 */
	for (int l = 0; l < a->n_layers; l++)
		want += (int64_t) a->dims[l + 1] * (a->dims[l] + 1);
	if (!TakeI64(c, &m->n_params, "parameter count"))
		return 0;
	if (m->n_params != want)
		return CORRUPT(c, "It has %lld parameters; its layers have %lld.",
					   (long long) m->n_params, (long long) want);
	if (!TakeArray(c, &m->params, m->n_params, sizeof(float), "parameters", DLT_FIELD_F32))
		return 0;
	for (int64_t i = 0; i < m->n_params; i++)
	{
		if (!isfinite(FloatAt(m->params, i)))
			return CORRUPT(c, "Its parameter %lld is not finite.", (long long) i + 1);
	}
	return 1;
}

/* A NUL-padded name of printable ASCII, at least one character. */
static int
CheckName(Checker *c, const char *s, const char *what)
{
	int			n = 0;

	while (n < 16 && s[n] != '\0')
	{
		if (s[n] < 0x20 || s[n] > 0x7e)
			return CORRUPT(c, "Its checkpoint's %s has a byte that is not printable.", what);
		n++;
	}
	if (n == 0 || n == 16)
		return CORRUPT(c, "Its checkpoint's %s is not a name of 1 to 15 characters.", what);
	for (int i = n; i < 16; i++)
		if (s[i] != '\0')
			return CORRUPT(c, "Its checkpoint's %s is not NUL-padded.", what);
	return 1;
}

/*
 * The checkpoint section: what continuing the training exactly needs
 * (optimizer state, early stopping's state, a source's shuffle state) and
 * what a resume verifies (the rows, threads, library and device).
 */
static int
CheckCheckpoint(Checker *c, DltModelLayout *m, const char *end)
{
	uint16_t	sv;
	int64_t		per = m->optimizer == DLK_OPT_SGD ? 1 : 2;
	uint8_t		has_last;

	m->ckpt = c->p;
	if (!Take(c, &sv, 2, "checkpoint version", DLT_FIELD_U16))
		return 0;
	if (sv != DLT_CHECKPOINT_VERSION)
		return CORRUPT(c, "Its checkpoint has version %u; this dltrain reads %d.",
					   (unsigned) sv, DLT_CHECKPOINT_VERSION);
	if (!TakeI32(c, &m->ck_epoch, "checkpoint epoch") ||
		!TakeI64(c, &m->ck_step, "optimizer steps") ||
		!TakeI64(c, &m->ck_n_state, "optimizer state size"))
		return 0;
	if (m->ck_epoch != m->epochs_run)
		return CORRUPT(c, "Its checkpoint is at epoch %d, but it ran %d epochs.",
					   m->ck_epoch, m->epochs_run);
	if (m->ck_step < 0 || m->ck_step > (int64_t) m->ck_epoch * (INT64_C(1) << 40))
		return CORRUPT(c, "Its checkpoint counts %lld optimizer steps.", (long long) m->ck_step);
	if (m->ck_n_state != per * m->n_params)
		return CORRUPT(c, "Its optimizer state has %lld values; its optimizer keeps %lld.",
					   (long long) m->ck_n_state, (long long) (per * m->n_params));
	if (!TakeArray(c, &m->ck_state, m->ck_n_state, sizeof(float), "optimizer state",
				   DLT_FIELD_F32))
		return 0;
	for (int64_t i = 0; i < m->ck_n_state; i++)
		if (!isfinite(FloatAt(m->ck_state, i)))
			return CORRUPT(c, "Its optimizer state value %lld is not finite.", (long long) i + 1);
	if (!TakeI32(c, &m->ck_since_best, "epochs since the best") ||
		!TakeF64(c, &m->ck_best_vloss, "best validation loss") ||
		!TakeU8(c, &has_last, "last weights flag"))
		return 0;
	if (!CheckIntRange(c, m->ck_since_best, 0, m->ck_epoch, "epochs since the best") ||
		!CheckBool(c, has_last, "last weights flag"))
		return 0;
	if (!isnan(m->ck_best_vloss) && !(isfinite(m->ck_best_vloss) && m->ck_best_vloss >= 0))
		return CORRUPT(c, "Its best validation loss is %g.", m->ck_best_vloss);
	if (has_last)
	{
		if (m->best_epoch == 0 || m->best_epoch >= m->epochs_run)
			return CORRUPT(c, "Its checkpoint keeps the last weights apart, but its weights are the last epoch's.");
		if (!TakeArray(c, &m->ck_last_params, m->n_params, sizeof(float), "last weights",
					   DLT_FIELD_F32))
			return 0;
		for (int64_t i = 0; i < m->n_params; i++)
			if (!isfinite(FloatAt(m->ck_last_params, i)))
				return CORRUPT(c, "Its last weight %lld is not finite.", (long long) i + 1);
	}
	else if (m->best_epoch > 0 && m->best_epoch < m->epochs_run)
		return CORRUPT(c, "Its weights are epoch %d's, but its checkpoint has no last weights.",
					   m->best_epoch);
	if (!TakeU8(c, &m->ck_has_rng, "shuffle state flag") ||
		!CheckBool(c, m->ck_has_rng, "shuffle state flag") ||
		!Take(c, m->ck_rng, sizeof(m->ck_rng), "shuffle state", DLT_FIELD_BYTES) ||
		!TakeI64(c, &m->ck_data_rows, "rows read") ||
		!Take(c, &m->ck_data_hash, 8, "content hash", DLT_FIELD_BYTES) ||
		!TakeI32(c, &m->ck_threads, "threads") ||
		!Take(c, m->ck_version, 16, "library version", DLT_FIELD_BYTES) ||
		!Take(c, m->ck_device, 16, "device", DLT_FIELD_BYTES))
		return 0;
	if (m->ck_data_rows < 0 || m->rows_used > m->ck_data_rows ||
		m->rows_validation > m->ck_data_rows - m->rows_used)
		return CORRUPT(c, "Its checkpoint read %lld rows, fewer than it used.",
					   (long long) m->ck_data_rows);
	if (!CheckIntRange(c, m->ck_threads, 1, 64, "threads") ||
		!CheckName(c, m->ck_version, "library version") ||
		!CheckName(c, m->ck_device, "device"))
		return 0;
	if (c->p != end)
		return CORRUPT(c, "Its checkpoint section has %zu bytes after its contents.",
					   (size_t) (end - c->p));
	return 1;
}

/* Format 3: sections after the weights, each an id, a length and a payload. */
static int
CheckSections(Checker *c, DltModelLayout *m)
{
	uint32_t	n;

	if (m->version < 3)
		return 1;
	if (!Take(c, &n, 4, "section count", DLT_FIELD_U32))
		return 0;
	if (n < 1 || n > 16)
		return CORRUPT(c, "It has %u sections; format version 3 has 1 to 16.", (unsigned) n);
	for (uint32_t i = 0; i < n; i++)
	{
		uint32_t	id,
					len;

		if (!Take(c, &id, 4, "section id", DLT_FIELD_U32) ||
			!Take(c, &len, 4, "section length", DLT_FIELD_U32))
			return 0;
		if (len > Left(c))
			return CORRUPT(c, "Its section %u runs past the end of the value.", (unsigned) i + 1);
		if (id != DLT_SECTION_CHECKPOINT)
			return CORRUPT(c, "Its section %u has the unknown id %08X.", (unsigned) i + 1,
						   (unsigned) id);
		if (m->ckpt != NULL)
			return CORRUPT(c, "It has two checkpoint sections.");
		if (!CheckCheckpoint(c, m, c->p + len))
			return 0;
	}
	return 1;
}

DltCheckCode
DltModelCheck(const void *data, size_t len, const DltCheckHooks *hooks,
			  DltModelLayout *out, DltCheckResult *res)
{
	DltModelLayout m;
	Checker		c;

	memset(&m, 0, sizeof(m));
	memset(res, 0, sizeof(*res));
	res->code = DLT_CHECK_OK;
	res->stage = DLT_STAGE_COUNT;
	c.base = data;
	c.p = data;
	c.end = c.base + len;
	c.hooks = hooks;
	c.res = res;

	c.stage = DLT_STAGE_HEADER;
	if (!CheckHeader(&c, len, &m.version, &m.crc))
		return res->code;
	c.stage = DLT_STAGE_CHECKSUM;
	if (!CheckChecksum(&c, m.crc))
		return res->code;
	c.stage = DLT_STAGE_KIND;
	if (!CheckKind(&c, &m))
		return res->code;
	c.stage = DLT_STAGE_ARCH;
	if (!CheckArch(&c, &m))
		return res->code;
	c.stage = DLT_STAGE_OPTIONS;
	if (!CheckOptions(&c, &m))
		return res->code;
	c.stage = DLT_STAGE_RECORD;
	if (!CheckRecord(&c, &m))
		return res->code;
	c.stage = DLT_STAGE_STATS;
	if (!CheckStats(&c, &m))
		return res->code;
	c.stage = DLT_STAGE_CLASSES;
	if (!CheckClasses(&c, &m))
		return res->code;
	c.stage = DLT_STAGE_WEIGHTS;
	if (!CheckWeights(&c, &m))
		return res->code;
	c.stage = DLT_STAGE_SECTIONS;
	if (!CheckSections(&c, &m))
		return res->code;
	c.stage = DLT_STAGE_END;
	if (c.p != c.end)
	{
		CORRUPT(&c, "It has %zu bytes after its contents.", Left(&c));
		return res->code;
	}
	if (out)
		*out = m;
	return DLT_CHECK_OK;
}
