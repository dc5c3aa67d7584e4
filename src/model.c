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
 * Every value is checked completely by one validator, model_check.c (plain
 * C, fuzzed under sanitizers by test/fuzz), before anything reads it: the
 * input function raises what it finds as 22P02, the receive function as
 * 22P03, and decoding a stored value (which passed input, so was damaged
 * since) as XX001.  ModelEncode checks what dltrain itself writes.
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

#include "jsonutil.h"
#include "model.h"
#include "version.h"

#define MODEL_MAGIC 0x4D544C44	/* "DLTM" little-endian */
#define MODEL_VERSION 3			/* with sections; 2 without; 1 is still read */
#define MODEL_HEADER 16

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
	if (m->ckpt)
	{
		n = add_size(n, 160);
		n = add_size(n, mul_size(m->ckpt->n_state, sizeof(float)));
		if (m->ckpt->last_params)
			n = add_size(n, mul_size(m->n_params, sizeof(float)));
	}
	return n;
}

/* Format 3's checkpoint section: its id, length and payload. */
static void
PutCheckpoint(StringInfo buf, const DltModel *m)
{
	const DltCheckpoint *ck = m->ckpt;
	int			lenpos;
	uint32		len;

	PUT(buf, uint32, 1);		/* sections */
	PUT(buf, uint32, DLT_SECTION_CHECKPOINT);
	lenpos = buf->len;
	PUT(buf, uint32, 0);
	PUT(buf, uint16, DLT_CHECKPOINT_VERSION);
	PUT(buf, int32, ck->epoch);
	PUT(buf, int64, ck->step);
	PUT(buf, int64, ck->n_state);
	PutBytes(buf, ck->state, sizeof(float) * ck->n_state);
	PUT(buf, int32, ck->since_best);
	PUT(buf, double, ck->best_vloss);
	PUT(buf, uint8, ck->last_params ? 1 : 0);
	if (ck->last_params)
		PutBytes(buf, ck->last_params, sizeof(float) * m->n_params);
	PUT(buf, uint8, ck->has_rng ? 1 : 0);
	PutBytes(buf, ck->rng, sizeof(ck->rng));
	PUT(buf, int64, ck->data_rows);
	PutBytes(buf, &ck->data_hash, 8);
	PUT(buf, int32, ck->threads);
	PutBytes(buf, ck->version, 16);
	PutBytes(buf, ck->device, 16);
	len = (uint32) (buf->len - lenpos - 4);
	memcpy(buf->data + lenpos, &len, 4);
}

bytea *
ModelEncodeRaw(const DltModel *m)
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
	/* a model without sections keeps format 2: the same bytes as before 0.2.0 */
	PUT(&buf, uint16, m->ckpt ? MODEL_VERSION : DLT_MODEL_VERSION_PLAIN);
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
	if (m->ckpt)
		PutCheckpoint(&buf, m);

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

/*
 * Encodes a model that dltrain computed, checking it as its readers will:
 * a failure is a bug in dltrain, caught before the value is stored.
 */
bytea *
ModelEncode(const DltModel *m)
{
	bytea	   *result = ModelEncodeRaw(m);
	DltCheckResult res;

	if (!ModelCheckBytes(VARDATA(result), VARSIZE(result) - VARHDRSZ, NULL, &res))
		elog(ERROR, "dltrain produced a model that fails its checks: %s", res.detail);
	return result;
}

/* ---- checking and reading ---- */

StaticAssertDecl(MODEL_MAGIC == DLT_MODEL_MAGIC && MODEL_VERSION == DLT_MODEL_VERSION &&
				 MODEL_HEADER == DLT_MODEL_HEADER,
				 "model_check.h reads the layout model.c writes");
StaticAssertDecl(DLT_OID_INT2 == INT2OID && DLT_OID_INT4 == INT4OID &&
				 DLT_OID_INT8 == INT8OID && DLT_OID_FLOAT4 == FLOAT4OID &&
				 DLT_OID_FLOAT8 == FLOAT8OID && DLT_OID_TEXT == TEXTOID &&
				 DLT_OID_BOOL == BOOLOID && DLT_OID_NUMERIC == NUMERICOID,
				 "model_check.h's type OIDs are pg_type.h's");
StaticAssertDecl(DLT_TASK_CLASSIFICATION == 1 && DLT_TASK_REGRESSION == 2 &&
				 DLT_LABEL_INT == 1 && DLT_LABEL_FLOAT == 2 && DLT_LABEL_TEXT == 3,
				 "model_check.c's task and label codes are dltrain.h's");

/* PostgreSQL's CRC-32C (hardware where there is one) for the check. */
static uint32_t
PgCrc32c(const void *data, size_t len)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, data, len);
	FIN_CRC32C(crc);
	return crc;
}

/* A class label must be valid text in the database encoding. */
static int
ClassTextOk(const char *s, int len, void *arg)
{
	return pg_verify_mbstr(GetDatabaseEncoding(), s, len, true);
}

static const DltCheckHooks model_check_hooks = {PgCrc32c, ClassTextOk, NULL, NULL};

/*
 * Checks len bytes of a model completely (model_check.c).  Returns true and
 * fills *layout (if not NULL), or false with *res saying what is wrong.
 */
bool
ModelCheckBytes(const char *data, Size len, DltModelLayout *layout, DltCheckResult *res)
{
	return DltModelCheck(data, len, &model_check_hooks, layout, res) == DLT_CHECK_OK;
}

/*
 * Checks the bytes of a model and raises what is wrong with sqlerrcode: the
 * input SQLSTATEs for the input and receive functions, DATA_CORRUPTED for a
 * stored value (it passed input, so it was damaged since).
 */
void
CheckModelBytes(const char *data, Size len, int sqlerrcode, DltModelLayout *layout)
{
	DltCheckResult res;

	if (ModelCheckBytes(data, len, layout, &res))
		return;
	ereport(ERROR,
			(errcode(sqlerrcode),
			 errmsg_internal("%s", res.message),
			 errdetail_internal("%s", res.detail),
			 res.hint ? errhint("%s", res.hint) : 0));
}

/* a palloc'd copy of n elements of size sz at p (unaligned) */
static void *
CopyArray(const char *p, Size n, Size sz)
{
	void	   *dst = palloc(n * sz);

	if (n > 0)
		memcpy(dst, p, n * sz);
	return dst;
}

DltModel *
ModelDecode(const struct varlena *v)
{
	DltModel   *m = palloc0(sizeof(DltModel));
	DltModelLayout L;
	int			D;

	CheckModelBytes(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v), ERRCODE_DATA_CORRUPTED, &L);
	m->version = L.version;
	m->crc = L.crc;
	m->task = (DltTask) L.task;
	m->label_kind = (DltLabelKind) L.label_kind;
	m->label_type = L.label_type;
	m->arch = L.arch;
	D = m->arch.dims[0];

	DltOptionsDefault(&m->opts);
	m->opts.optimizer = (dlk_opt_kind) L.optimizer;
	m->opts.lr = L.lr;
	m->opts.momentum = L.momentum;
	m->opts.weight_decay = L.weight_decay;
	m->opts.batch_size = L.batch_size;
	m->opts.epochs = L.epochs;
	m->opts.seed = L.seed;
	m->opts.shuffle = L.shuffle != 0;
	m->opts.normalize = L.normalize != 0;
	m->opts.task = (DltTask) L.task_option;
	m->opts.init_pytorch = L.init_pytorch != 0;
	m->opts.validation_fraction = L.validation_fraction;
	m->opts.early_stopping = L.early_stopping;
	m->opts.activation = m->arch.act;
	m->opts.n_hidden = m->arch.n_layers - 1;
	for (int l = 0; l < m->opts.n_hidden; l++)
		m->opts.hidden[l] = m->arch.dims[l + 1];

	m->rows_used = L.rows_used;
	m->rows_skipped = L.rows_skipped;
	m->epochs_run = L.epochs_run;
	m->epoch_loss = CopyArray(L.epoch_loss, L.epochs_run, sizeof(float));
	m->rows_validation = L.rows_validation;
	m->best_epoch = L.best_epoch;
	if (L.rows_validation > 0)
	{
		m->val_loss = CopyArray(L.val_loss, L.epochs_run, sizeof(float));
		m->val_metric = CopyArray(L.val_metric, L.epochs_run, sizeof(float));
	}
	m->normalized = L.normalized != 0;
	if (m->normalized)
	{
		m->mean = CopyArray(L.mean, D, sizeof(double));
		m->scale = CopyArray(L.scale, D, sizeof(double));
	}
	m->n_classes = L.n_classes;
	switch (m->label_kind)
	{
		case DLT_LABEL_INT:
			m->class_int = CopyArray(L.classes, L.n_classes, sizeof(int64));
			break;
		case DLT_LABEL_FLOAT:
			m->class_float = CopyArray(L.classes, L.n_classes, sizeof(double));
			break;
		case DLT_LABEL_TEXT:
			{
				const char *p = L.classes;

				m->class_text = palloc(sizeof(char *) * Max(L.n_classes, 1));
				for (int i = 0; i < L.n_classes; i++)
				{
					int32		len;

					memcpy(&len, p, sizeof(int32));
					m->class_text[i] = pnstrdup(p + sizeof(int32), len);
					p += sizeof(int32) + len;
				}
				break;
			}
	}
	m->n_params = (size_t) L.n_params;
	m->params = CopyArray(L.params, m->n_params, sizeof(float));
	if (L.ckpt)
	{
		DltCheckpoint *ck = palloc0(sizeof(DltCheckpoint));

		ck->epoch = L.ck_epoch;
		ck->step = L.ck_step;
		ck->n_state = L.ck_n_state;
		ck->state = CopyArray(L.ck_state, L.ck_n_state, sizeof(float));
		ck->since_best = L.ck_since_best;
		ck->best_vloss = L.ck_best_vloss;
		if (L.ck_last_params)
			ck->last_params = CopyArray(L.ck_last_params, m->n_params, sizeof(float));
		ck->has_rng = L.ck_has_rng != 0;
		memcpy(ck->rng, L.ck_rng, sizeof(ck->rng));
		ck->data_rows = L.ck_data_rows;
		ck->data_hash = L.ck_data_hash;
		ck->threads = L.ck_threads;
		memcpy(ck->version, L.ck_version, 16);
		memcpy(ck->device, L.ck_device, 16);
		m->ckpt = ck;
	}
	return m;
}

PGDLLEXPORT Datum model_in(PG_FUNCTION_ARGS);

DltModel *
ModelFromText(const char *text)
{
	Datum		d = DirectFunctionCall1(model_in, CStringGetDatum(text));

	return ModelDecode((struct varlena *) DatumGetPointer(d));
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
	CheckModelBytes(VARDATA(result), n, ERRCODE_INVALID_TEXT_REPRESENTATION, NULL);
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
	CheckModelBytes(VARDATA(result), n, ERRCODE_INVALID_BINARY_REPRESENTATION, NULL);
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

/* Fills m->arch from m->opts for D inputs and C outputs. */
void
DltModelSetArch(DltModel *m, int D, int C)
{
	const DltOptions *o = &m->opts;

	m->arch.n_layers = o->n_hidden + 1;
	m->arch.dims[0] = D;
	for (int l = 0; l < o->n_hidden; l++)
		m->arch.dims[l + 1] = o->hidden[l];
	m->arch.dims[m->arch.n_layers] = C;
	m->arch.act = o->activation;
	m->arch.loss = m->task == DLT_TASK_CLASSIFICATION ? DLK_LOSS_SOFTMAX_CE : DLK_LOSS_MSE;
	if (dlk_arch_check(&m->arch) != DLK_OK)
		elog(ERROR, "invalid network architecture");
}

/* ---- SQL: describe ---- */

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
			if (m->label_type == BOOLOID)
				return cstring_to_text(m->class_int[k] ? "true" : "false");
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
			if (m->label_type == BOOLOID)
				appendStringInfoString(buf, m->class_int[i] ? "true" : "false");
			else
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
	appendStringInfo(&b, ", \"can_continue\": %s", m->ckpt ? "true" : "false");
	if (m->ckpt)
	{
		const DltCheckpoint *ck = m->ckpt;

		appendStringInfo(&b, ", \"checkpoint\": {\"epoch\": %d, \"optimizer_steps\": " INT64_FORMAT
						 ", \"rows_read\": " INT64_FORMAT ", \"content_hash\": \"%016llx\""
						 ", \"threads\": %d, \"library_version\": ",
						 ck->epoch, ck->step, ck->data_rows,
						 (unsigned long long) ck->data_hash, ck->threads);
		escape_json(&b, ck->version);
		appendStringInfoString(&b, ", \"device\": ");
		escape_json(&b, ck->device);
		appendStringInfoChar(&b, '}');
	}
	appendStringInfo(&b, ", \"checksum\": \"%08x\"}", m->crc);

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(b.data)));
}
