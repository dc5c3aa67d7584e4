/*
 * model.c — the dltrain.model type: binary layout, checks, text and binary
 * I/O, and describe().
 *
 * A model is a varlena holding only what training determines, so identical
 * training gives identical bytes (no timestamps, no timings):
 *
 *   header (16 bytes)  magic "DLTM", format version (uint16), flags (uint16),
 *                      total length (uint32), CRC-32C of the body (uint32)
 *   body               task, label kind and SQL type, activation, layer
 *                      dimensions, resolved options, rows used and skipped,
 *                      per-epoch training loss, (format 2) validation rows,
 *                      best epoch and per-epoch validation loss and metric,
 *                      normalization statistics,
 *                      class values, then all parameters in one float32 block
 *                      (the kernel library's layout: W_0, b_0, W_1, b_1, ...)
 *
 * Values are stored in the machine's byte order (little-endian on every
 * platform PostgreSQL commonly runs on); send/recv move the same bytes.
 * Decoding checks everything: magic, version, length (truncation), checksum
 * (corruption), then every count against the bytes that remain, so a bad
 * value always ends in an ERROR, never in a crash.
 *
 * Text form: base64 of the bytes, so pg_dump and restore keep models.  A
 * model whose text form would not fit in 1 GB is refused at training time
 * (CheckModelSize).
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/shortest_dec.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "port/pg_crc32c.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"

#include "dltrain.h"
#include "version.h"

#define MODEL_MAGIC 0x4D544C44	/* "DLTM" little-endian */
#define MODEL_VERSION 2			/* written; 1 is still read */
#define MODEL_HEADER 16
#define MAX_CLASS_LABEL_LEN 1024

/* ---- writing ---- */

static void
PutBytes(StringInfo buf, const void *p, Size n)
{
	appendBinaryStringInfoNT(buf, p, (int) n);
}

#define PUT(buf, type, value) \
	do { type v_ = (value); PutBytes((buf), &v_, sizeof(type)); } while (0)

static void
PutOptions(StringInfo buf, const DltOptions *o)
{
	PUT(buf, int32, o->optimizer);
	PUT(buf, double, o->lr);
	PUT(buf, double, o->momentum);
	PUT(buf, double, o->weight_decay);
	PUT(buf, int32, o->batch_size);
	PUT(buf, int32, o->epochs);
	PUT(buf, int64, o->seed);
	PUT(buf, uint8, o->shuffle ? 1 : 0);
	PUT(buf, uint8, o->normalize ? 1 : 0);
	PUT(buf, uint8, (uint8) o->task);
	PUT(buf, uint8, o->init_pytorch ? 1 : 0);	/* 0 in models before the option */
	/* format 2 */
	PUT(buf, double, o->validation_fraction);
	PUT(buf, int32, o->early_stopping);
}

static int	D(const DltModel *m)
{
	return m->arch.dims[0];
}

/* Text form length of a model of nbytes, checked against the 1 GB limit. */
void
CheckModelSize(Size nbytes)
{
	Size		textlen = (nbytes + 2) / 3 * 4 + 1;

	if (nbytes > MaxAllocSize - VARHDRSZ || textlen > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model of %zu bytes is too large to store", nbytes),
				 errdetail("Its text form (used by pg_dump) would take %zu bytes; the limit is %zu bytes.",
						   textlen, (Size) MaxAllocSize),
				 errhint("Use fewer or narrower hidden layers.")));
}

Size
ModelEncodedSize(const DltModel *m)
{
	Size		n = MODEL_HEADER + 64 + 8 * (DLK_MAX_LAYERS + 1) + 64;

	n = add_size(n, mul_size(m->epochs_run, 3 * sizeof(float)));
	if (m->normalized)
		n = add_size(n, mul_size(2 * sizeof(double), D(m)));
	if (m->label_kind == DLT_LABEL_TEXT)
	{
		for (int i = 0; i < m->n_classes; i++)
			n = add_size(n, 4 + strlen(m->class_text[i]));
	}
	else
		n = add_size(n, mul_size(8, m->n_classes));
	n = add_size(n, mul_size(m->n_params, sizeof(float)));
	return n;
}

bytea *
ModelEncode(const DltModel *m)
{
	StringInfoData buf;
	bytea	   *result;
	pg_crc32c	crc;
	uint32		total;

	CheckModelSize(ModelEncodedSize(m));

	initStringInfo(&buf);
	/* varlena header and model header, filled in below */
	PutBytes(&buf, "\0\0\0\0", VARHDRSZ);
	PUT(&buf, uint32, MODEL_MAGIC);
	PUT(&buf, uint16, MODEL_VERSION);
	PUT(&buf, uint16, 0);
	PUT(&buf, uint32, 0);		/* total length */
	PUT(&buf, uint32, 0);		/* crc */

	PUT(&buf, int32, m->task);
	PUT(&buf, int32, m->label_kind);
	PUT(&buf, uint32, m->label_type);
	PUT(&buf, int32, m->arch.act);
	PUT(&buf, int32, m->arch.n_layers);
	for (int l = 0; l <= m->arch.n_layers; l++)
		PUT(&buf, int32, m->arch.dims[l]);
	PutOptions(&buf, &m->opts);
	PUT(&buf, int64, m->rows_used);
	PUT(&buf, int64, m->rows_skipped);
	PUT(&buf, int32, m->epochs_run);
	PutBytes(&buf, m->epoch_loss, sizeof(float) * m->epochs_run);
	PUT(&buf, int64, m->rows_validation);
	PUT(&buf, int32, m->best_epoch);
	if (m->rows_validation > 0)
	{
		PutBytes(&buf, m->val_loss, sizeof(float) * m->epochs_run);
		PutBytes(&buf, m->val_metric, sizeof(float) * m->epochs_run);
	}
	PUT(&buf, int32, m->normalized ? 1 : 0);
	if (m->normalized)
	{
		PutBytes(&buf, m->mean, sizeof(double) * D(m));
		PutBytes(&buf, m->scale, sizeof(double) * D(m));
	}
	PUT(&buf, int32, m->n_classes);
	for (int i = 0; i < m->n_classes; i++)
	{
		switch (m->label_kind)
		{
			case DLT_LABEL_INT:
				PUT(&buf, int64, m->class_int[i]);
				break;
			case DLT_LABEL_FLOAT:
				PUT(&buf, double, m->class_float[i]);
				break;
			case DLT_LABEL_TEXT:
				{
					int32		len = (int32) strlen(m->class_text[i]);

					PUT(&buf, int32, len);
					PutBytes(&buf, m->class_text[i], len);
					break;
				}
		}
	}
	PUT(&buf, int64, (int64) m->n_params);
	PutBytes(&buf, m->params, sizeof(float) * m->n_params);

	result = (bytea *) buf.data;
	total = (uint32) (buf.len - VARHDRSZ);
	SET_VARSIZE(result, buf.len);
	memcpy(VARDATA(result) + 8, &total, sizeof(uint32));
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, VARDATA(result) + MODEL_HEADER, total - MODEL_HEADER);
	FIN_CRC32C(crc);
	memcpy(VARDATA(result) + 12, &crc, sizeof(uint32));
	return result;
}

/* ---- reading ---- */

typedef struct Reader
{
	const char *p;
	const char *end;
} Reader;

static void
CorruptModel(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("dltrain model value is corrupt"),
			 errdetail("%s", detail)));
}

static const void *
Take(Reader *r, Size n)
{
	const char *p = r->p;

	if ((Size) (r->end - r->p) < n)
		CorruptModel("The value ends before its contents do.");
	r->p += n;
	return p;
}

#define GET(r, type, dst) memcpy(&(dst), Take((r), sizeof(type)), sizeof(type))

/* a MAXALIGNed copy of n elements of size sz */
static void *
TakeArray(Reader *r, Size n, Size sz)
{
	Size		bytes;
	void	   *dst;

	if (n > (Size) (r->end - r->p) / sz)
		CorruptModel("An array length exceeds the size of the value.");
	bytes = n * sz;
	dst = palloc(bytes);
	memcpy(dst, Take(r, bytes), bytes);
	return dst;
}

static void
CheckEnum(int32 v, int32 lo, int32 hi, const char *what)
{
	if (v < lo || v > hi)
		CorruptModel(psprintf("The %s code %d is unknown.", what, v));
}

/*
 * Checks the header of a model varlena (already detoasted) and returns its
 * payload length.  Truncation and checksum errors are told apart.
 */
static uint32
ModelCheckHeader(const struct varlena *v)
{
	Size		len = VARSIZE_ANY_EXHDR(v);
	const char *p = VARDATA_ANY(v);
	uint32		magic,
				total,
				crc;
	uint16		version;
	pg_crc32c	calc;

	if (len < MODEL_HEADER)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("dltrain model value is truncated"),
				 errdetail("It has %zu bytes, fewer than the %d-byte header.",
						   len, MODEL_HEADER)));
	memcpy(&magic, p, 4);
	memcpy(&version, p + 4, 2);
	memcpy(&total, p + 8, 4);
	memcpy(&crc, p + 12, 4);
	if (magic != MODEL_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("value is not a dltrain model"),
				 errdetail("Its first bytes are not the dltrain model signature.")));
	if (version < 1 || version > MODEL_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("dltrain model has unknown format version %u", version),
				 errdetail("This version of dltrain reads format versions 1 to %d.",
						   MODEL_VERSION),
				 errhint("Update the dltrain extension to read models written by a newer version.")));
	if (len < total)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("dltrain model value is truncated"),
				 errdetail("It has %zu of its %u bytes.", len, total)));
	if (len > total)
		CorruptModel(psprintf("It has %zu bytes, but its header says %u.", len, total));
	INIT_CRC32C(calc);
	COMP_CRC32C(calc, p + MODEL_HEADER, total - MODEL_HEADER);
	FIN_CRC32C(calc);
	if (calc != crc)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("dltrain model value is corrupt"),
				 errdetail("Its checksum is %08X, but its contents give %08X.", crc, calc)));
	return total;
}

DltModel *
ModelDecode(const struct varlena *v)
{
	DltModel   *m = palloc0(sizeof(DltModel));
	uint32		total = ModelCheckHeader(v);
	Reader		r;
	int32		i32;
	uint8		u8;
	int64		np;
	uint16		version;
	dlk_sizes	sz;

	r.p = VARDATA_ANY(v) + MODEL_HEADER;
	r.end = VARDATA_ANY(v) + total;
	memcpy(&version, VARDATA_ANY(v) + 4, 2);
	m->version = version;
	memcpy(&m->crc, VARDATA_ANY(v) + 12, 4);

	GET(&r, int32, i32);
	CheckEnum(i32, DLT_TASK_CLASSIFICATION, DLT_TASK_REGRESSION, "task");
	m->task = (DltTask) i32;
	GET(&r, int32, i32);
	CheckEnum(i32, DLT_LABEL_INT, DLT_LABEL_TEXT, "label kind");
	m->label_kind = (DltLabelKind) i32;
	GET(&r, uint32, m->label_type);
	if (!(m->label_kind == DLT_LABEL_INT &&
		  (m->label_type == INT2OID || m->label_type == INT4OID || m->label_type == INT8OID)) &&
		!(m->label_kind == DLT_LABEL_FLOAT &&
		  (m->label_type == FLOAT4OID || m->label_type == FLOAT8OID)) &&
		!(m->label_kind == DLT_LABEL_TEXT && m->label_type == TEXTOID))
		CorruptModel("The label type does not match the label kind.");
	GET(&r, int32, i32);
	CheckEnum(i32, DLK_ACT_RELU, DLK_ACT_SIGMOID, "activation");
	m->arch.act = (dlk_act) i32;
	m->arch.loss = m->task == DLT_TASK_CLASSIFICATION ? DLK_LOSS_SOFTMAX_CE : DLK_LOSS_MSE;
	GET(&r, int32, m->arch.n_layers);
	if (m->arch.n_layers < 1 || m->arch.n_layers > DLK_MAX_LAYERS)
		CorruptModel("The layer count is out of range.");
	for (int l = 0; l <= m->arch.n_layers; l++)
		GET(&r, int32, m->arch.dims[l]);
	if (dlk_arch_check(&m->arch) != DLK_OK)
		CorruptModel("The layer widths are out of range.");

	DltOptionsDefault(&m->opts);
	GET(&r, int32, i32);
	CheckEnum(i32, DLK_OPT_SGD, DLK_OPT_ADAMW, "optimizer");
	m->opts.optimizer = (dlk_opt_kind) i32;
	GET(&r, double, m->opts.lr);
	GET(&r, double, m->opts.momentum);
	GET(&r, double, m->opts.weight_decay);
	GET(&r, int32, m->opts.batch_size);
	GET(&r, int32, m->opts.epochs);
	GET(&r, int64, m->opts.seed);
	GET(&r, uint8, u8);
	m->opts.shuffle = u8 != 0;
	GET(&r, uint8, u8);
	m->opts.normalize = u8 != 0;
	GET(&r, uint8, u8);
	CheckEnum(u8, DLT_TASK_AUTO, DLT_TASK_REGRESSION, "task option");
	m->opts.task = (DltTask) u8;
	GET(&r, uint8, u8);
	m->opts.init_pytorch = (u8 == 1);
	if (version >= 2)
	{
		GET(&r, double, m->opts.validation_fraction);
		GET(&r, int32, m->opts.early_stopping);
		if (!(m->opts.validation_fraction >= 0 && m->opts.validation_fraction < 1) ||
			m->opts.early_stopping < 0)
			CorruptModel("The validation options are out of range.");
	}
	m->opts.activation = m->arch.act;
	m->opts.n_hidden = m->arch.n_layers - 1;
	for (int l = 0; l < m->opts.n_hidden; l++)
		m->opts.hidden[l] = m->arch.dims[l + 1];

	GET(&r, int64, m->rows_used);
	GET(&r, int64, m->rows_skipped);
	GET(&r, int32, m->epochs_run);
	if (m->epochs_run < 0)
		CorruptModel("The epoch count is negative.");
	m->epoch_loss = TakeArray(&r, m->epochs_run, sizeof(float));
	if (version >= 2)
	{
		GET(&r, int64, m->rows_validation);
		GET(&r, int32, m->best_epoch);
		if (m->rows_validation < 0 || m->best_epoch < 0 || m->best_epoch > m->epochs_run)
			CorruptModel("The validation counts are out of range.");
		if (m->rows_validation > 0)
		{
			m->val_loss = TakeArray(&r, m->epochs_run, sizeof(float));
			m->val_metric = TakeArray(&r, m->epochs_run, sizeof(float));
		}
	}
	GET(&r, int32, i32);
	m->normalized = i32 != 0;
	if (m->normalized)
	{
		m->mean = TakeArray(&r, D(m), sizeof(double));
		m->scale = TakeArray(&r, D(m), sizeof(double));
	}
	GET(&r, int32, m->n_classes);
	if (m->task == DLT_TASK_CLASSIFICATION)
	{
		if (m->n_classes < 2 || m->n_classes != m->arch.dims[m->arch.n_layers])
			CorruptModel("The class count does not match the output layer.");
	}
	else if (m->n_classes != 0)
		CorruptModel("A regression model has classes.");
	switch (m->label_kind)
	{
		case DLT_LABEL_INT:
			m->class_int = TakeArray(&r, m->n_classes, sizeof(int64));
			break;
		case DLT_LABEL_FLOAT:
			m->class_float = TakeArray(&r, m->n_classes, sizeof(double));
			break;
		case DLT_LABEL_TEXT:
			if (m->task != DLT_TASK_CLASSIFICATION)
				CorruptModel("A text-labelled model is not a classifier.");
			m->class_text = palloc(sizeof(char *) * m->n_classes);
			for (int i = 0; i < m->n_classes; i++)
			{
				int32		len;

				GET(&r, int32, len);
				if (len < 0 || len > (r.end - r.p))
					CorruptModel("A class label length is out of range.");
				m->class_text[i] = pnstrdup(Take(&r, len), len);
				if (strlen(m->class_text[i]) != (size_t) len ||
					!pg_verify_mbstr(GetDatabaseEncoding(), m->class_text[i], len, true))
					CorruptModel("A class label is not valid text in the database encoding.");
			}
			break;
	}
	GET(&r, int64, np);
	if (dlk_sizes_for(&sz, &m->arch, 1, DLK_OPT_SGD) != DLK_OK ||
		np != (int64) sz.n_params)
		CorruptModel("The parameter count does not match the architecture.");
	m->n_params = (size_t) np;
	m->params = TakeArray(&r, m->n_params, sizeof(float));
	if (r.p != r.end)
		CorruptModel("The value has bytes after its contents.");
	return m;
}

/* ---- SQL: type I/O ---- */

/* Parses the text form (base64) of a model. */
PG_FUNCTION_INFO_V1(model_in);
Datum
model_in(PG_FUNCTION_ARGS)
{
	char	   *in = PG_GETARG_CSTRING(0);
	char	   *str;
	int			len = 0;
	int			maxlen;
	bytea	   *result;
	int			n;

	DltCheckSqlVersion();
	str = palloc(strlen(in) + 1);
	/* base64 may come wrapped in lines (encode(..., 'base64') does that) */
	for (const char *p = in; *p; p++)
		if (!isspace((unsigned char) *p))
			str[len++] = *p;
	str[len] = '\0';
	maxlen = pg_b64_dec_len(len);
	result = palloc(VARHDRSZ + maxlen + 1);

	n = pg_b64_decode(str, len, VARDATA(result), maxlen + 1);
	if (n < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type dltrain.model"),
				 errdetail("The text form of a model is base64.")));
	SET_VARSIZE(result, VARHDRSZ + n);
	pfree(ModelDecode((struct varlena *) result));
	PG_RETURN_BYTEA_P(result);
}

/* Writes a model as base64 text. */
PG_FUNCTION_INFO_V1(model_out);
Datum
model_out(PG_FUNCTION_ARGS)
{
	bytea	   *v;
	int			len;
	int			outlen;
	char	   *out;
	int			n;

	DltCheckSqlVersion();
	v = PG_GETARG_BYTEA_PP(0);
	len = VARSIZE_ANY_EXHDR(v);
	outlen = pg_b64_enc_len(len);
	out = palloc(outlen + 1);
	n = pg_b64_encode(VARDATA_ANY(v), len, out, outlen);
	if (n < 0)
		elog(ERROR, "could not encode model as base64");
	out[n] = '\0';
	PG_RETURN_CSTRING(out);
}

/* Reads a model in binary COPY / protocol form (its raw bytes), checking it. */
PG_FUNCTION_INFO_V1(model_recv);
Datum
model_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf;
	int			n;
	bytea	   *result;

	DltCheckSqlVersion();
	buf = (StringInfo) PG_GETARG_POINTER(0);
	n = buf->len - buf->cursor;
	result = palloc(VARHDRSZ + n);
	SET_VARSIZE(result, VARHDRSZ + n);
	pq_copymsgbytes(buf, VARDATA(result), n);
	pfree(ModelDecode((struct varlena *) result));
	PG_RETURN_BYTEA_P(result);
}

/* Sends a model's raw bytes. */
PG_FUNCTION_INFO_V1(model_send);
Datum
model_send(PG_FUNCTION_ARGS)
{
	bytea	   *v;
	StringInfoData buf;

	DltCheckSqlVersion();
	v = PG_GETARG_BYTEA_PP(0);
	pq_begintypsend(&buf);
	pq_sendbytes(&buf, VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ---- SQL: describe ---- */

void
DltAppendJsonDouble(StringInfo buf, double d)
{
	char		tmp[DOUBLE_SHORTEST_DECIMAL_LEN];

	if (!isfinite(d))
	{
		appendStringInfoString(buf, "null");
		return;
	}
	double_to_shortest_decimal_buf(d, tmp);
	appendStringInfoString(buf, tmp);
}

void
DltAppendJsonFloat(StringInfo buf, float f)
{
	char		tmp[FLOAT_SHORTEST_DECIMAL_LEN];

	if (!isfinite(f))
	{
		appendStringInfoString(buf, "null");
		return;
	}
	float_to_shortest_decimal_buf(f, tmp);
	appendStringInfoString(buf, tmp);
}

/* The SQL name of a label type, for people. */
static const char *
LabelTypeName(Oid t)
{
	return format_type_be(t);
}

/* The class value k as text, in its original spelling. */
text *
DltClassText(const DltModel *m, int k)
{
	switch (m->label_kind)
	{
		case DLT_LABEL_INT:
			return cstring_to_text(psprintf(INT64_FORMAT, m->class_int[k]));
		case DLT_LABEL_FLOAT:
			{
				char		buf[DOUBLE_SHORTEST_DECIMAL_LEN];

				double_to_shortest_decimal_buf(m->class_float[k], buf);
				return cstring_to_text(buf);
			}
		case DLT_LABEL_TEXT:
			break;
	}
	return cstring_to_text(m->class_text[k]);
}

/* Appends the JSON value of class i (a number or a string). */
void
DltAppendClassJson(StringInfo buf, const DltModel *m, int i)
{
	switch (m->label_kind)
	{
		case DLT_LABEL_INT:
			appendStringInfo(buf, INT64_FORMAT, m->class_int[i]);
			break;
		case DLT_LABEL_FLOAT:
			DltAppendJsonDouble(buf, m->class_float[i]);
			break;
		case DLT_LABEL_TEXT:
			escape_json(buf, m->class_text[i]);
			break;
	}
}

/* Describes a model as jsonb: architecture, classes, options, training record. */
PG_FUNCTION_INFO_V1(describe);
Datum
describe(PG_FUNCTION_ARGS)
{
	bytea	   *v;
	DltModel   *m;
	StringInfoData b;
	const DltOptions *o;

	DltCheckSqlVersion();
	v = PG_GETARG_BYTEA_PP(0);
	m = ModelDecode((struct varlena *) v);
	o = &m->opts;
	initStringInfo(&b);
	appendStringInfo(&b, "{\"format_version\": %d", m->version);
	appendStringInfo(&b, ", \"task\": \"%s\"", DltTaskName(m->task));
	appendStringInfoString(&b, ", \"label_type\": ");
	escape_json(&b, LabelTypeName(m->label_type));
	appendStringInfo(&b, ", \"inputs\": %d, \"outputs\": %d",
					 m->arch.dims[0], m->arch.dims[m->arch.n_layers]);
	appendStringInfoString(&b, ", \"layers\": [");
	for (int l = 0; l <= m->arch.n_layers; l++)
		appendStringInfo(&b, "%s%d", l ? ", " : "", m->arch.dims[l]);
	appendStringInfo(&b, "], \"activation\": \"%s\"", DltActName(m->arch.act));
	appendStringInfo(&b, ", \"parameters\": %zu", m->n_params);
	if (m->task == DLT_TASK_CLASSIFICATION)
	{
		appendStringInfoString(&b, ", \"classes\": [");
		for (int i = 0; i < m->n_classes; i++)
		{
			if (i)
				appendStringInfoString(&b, ", ");
			DltAppendClassJson(&b, m, i);
		}
		appendStringInfoChar(&b, ']');
	}
	appendStringInfo(&b, ", \"rows_used\": " INT64_FORMAT
					 ", \"rows_skipped\": " INT64_FORMAT,
					 m->rows_used, m->rows_skipped);
	appendStringInfo(&b, ", \"epochs\": %d, \"loss\": [", m->epochs_run);
	for (int e = 0; e < m->epochs_run; e++)
	{
		if (e)
			appendStringInfoString(&b, ", ");
		DltAppendJsonFloat(&b, m->epoch_loss[e]);
	}
	appendStringInfoChar(&b, ']');
	if (m->rows_validation > 0)
	{
		appendStringInfo(&b, ", \"validation_rows\": " INT64_FORMAT ", \"validation_loss\": [",
						 m->rows_validation);
		for (int e = 0; e < m->epochs_run; e++)
		{
			if (e)
				appendStringInfoString(&b, ", ");
			DltAppendJsonFloat(&b, m->val_loss[e]);
		}
		appendStringInfo(&b, "], \"validation_%s\": [",
						 m->task == DLT_TASK_CLASSIFICATION ? "accuracy" : "rmse");
		for (int e = 0; e < m->epochs_run; e++)
		{
			if (e)
				appendStringInfoString(&b, ", ");
			DltAppendJsonFloat(&b, m->val_metric[e]);
		}
		appendStringInfoChar(&b, ']');
		if (m->best_epoch > 0)
			appendStringInfo(&b, ", \"best_epoch\": %d", m->best_epoch);
	}
	appendStringInfo(&b, ", \"normalized\": %s", m->normalized ? "true" : "false");
	if (m->normalized)
	{
		appendStringInfoString(&b, ", \"feature_mean\": [");
		for (int d = 0; d < D(m); d++)
		{
			if (d)
				appendStringInfoString(&b, ", ");
			DltAppendJsonDouble(&b, m->mean[d]);
		}
		appendStringInfoString(&b, "], \"feature_scale\": [");
		for (int d = 0; d < D(m); d++)
		{
			if (d)
				appendStringInfoString(&b, ", ");
			DltAppendJsonDouble(&b, m->scale[d]);
		}
		appendStringInfoChar(&b, ']');
	}
	appendStringInfoString(&b, ", \"options\": {\"hidden\": [");
	for (int l = 0; l < o->n_hidden; l++)
		appendStringInfo(&b, "%s%d", l ? ", " : "", o->hidden[l]);
	appendStringInfo(&b, "], \"activation\": \"%s\", \"optimizer\": \"%s\", \"lr\": ",
					 DltActName(o->activation), DltOptimizerName(o->optimizer));
	DltAppendJsonDouble(&b, o->lr);
	appendStringInfoString(&b, ", \"momentum\": ");
	DltAppendJsonDouble(&b, o->momentum);
	appendStringInfoString(&b, ", \"weight_decay\": ");
	DltAppendJsonDouble(&b, o->weight_decay);
	appendStringInfo(&b, ", \"batch_size\": %d, \"epochs\": %d, \"seed\": " INT64_FORMAT
					 ", \"shuffle\": %s, \"normalize\": %s, \"task\": \"%s\", \"init\": \"%s\"",
					 o->batch_size, o->epochs, o->seed,
					 o->shuffle ? "true" : "false", o->normalize ? "true" : "false",
					 DltTaskName(o->task), o->init_pytorch ? "pytorch" : "he");
	appendStringInfoString(&b, ", \"validation_fraction\": ");
	DltAppendJsonDouble(&b, o->validation_fraction);
	appendStringInfo(&b, ", \"early_stopping\": %d}", o->early_stopping);
	appendStringInfo(&b, ", \"checksum\": \"%08x\"}", m->crc);

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(b.data)));
}
