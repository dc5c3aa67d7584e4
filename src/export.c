/*
 * export.c — weights that travel: dltrain.export(model) → jsonb and
 * dltrain.import(jsonb) → model.
 *
 * The layout (format "dltrain.mlp", format_version 1), documented in the
 * README with the PyTorch code that loads it:
 *
 *   {"format": "dltrain.mlp", "format_version": 1,
 *    "task": "classification" | "regression",
 *    "activation": "relu" | "tanh" | "sigmoid",   (after every hidden layer)
 *    "inputs": D, "outputs": C,
 *    "layers": [{"in": I, "out": O,
 *                "weight": [[O rows of I numbers]],  (nn.Linear.weight)
 *                "bias": [O numbers]}, ...],
 *    "normalization": {"mean": [D], "scale": [D]} or null,
 *                         (x' = (x - mean) * scale, in float32, before layer 0)
 *    "classes": [C class values, in output order] (classification),
 *    "label_type": "integer" | "bigint" | "smallint" | "text" | "real" |
 *                  "double precision"}
 *
 * Weights are float32 written in their shortest exact decimal form, so an
 * export/import round trip gives back the same bytes of weights.  Import
 * checks everything (shapes, finiteness, class order) and builds a model with
 * an empty training record (0 rows, no epochs).
 *
 * Both check for interrupts at every row of weights (at most 65536 numbers).
 * export parses the text it wrote into jsonb with PostgreSQL's JSON parser
 * and the semantic actions of jsonb_in, plus an interrupt check every 65536
 * values (jsonb_in itself has none and takes seconds on a large model);
 * only the final conversion of the parsed tree (JsonbValueToJsonb) runs
 * without one, about a second for the largest model jsonb can hold.
 */
#include "postgres.h"

#include <errno.h>
#include <float.h>
#include <stdlib.h>
#include <math.h>

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonfuncs.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "budget.h"
#include "interrupt.h"
#include "jsonutil.h"
#include "model.h"
#include "version.h"

/*
 * Text to jsonb, as jsonb_in (the same semantic actions), interruptible:
 * the parser calls the actions once per token.
 */
typedef struct JsonbBuild
{
	JsonbParseState *state;
	JsonbValue *res;
	uint32		tokens;
} JsonbBuild;

static void
JsonbBuildCheck(JsonbBuild *b)
{
	if ((++b->tokens & 65535) == 0)
		CHECK_FOR_INTERRUPTS();
}

static void
JsonbBuildObjectStart(void *arg)
{
	JsonbBuild *b = arg;

	b->res = pushJsonbValue(&b->state, WJB_BEGIN_OBJECT, NULL);
}

static void
JsonbBuildObjectEnd(void *arg)
{
	JsonbBuild *b = arg;

	b->res = pushJsonbValue(&b->state, WJB_END_OBJECT, NULL);
}

static void
JsonbBuildArrayStart(void *arg)
{
	JsonbBuild *b = arg;

	JsonbBuildCheck(b);
	b->res = pushJsonbValue(&b->state, WJB_BEGIN_ARRAY, NULL);
}

static void
JsonbBuildArrayEnd(void *arg)
{
	JsonbBuild *b = arg;

	b->res = pushJsonbValue(&b->state, WJB_END_ARRAY, NULL);
}

static void
JsonbBuildKey(void *arg, char *fname, bool isnull)
{
	JsonbBuild *b = arg;
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.len = strlen(fname);
	v.val.string.val = fname;
	b->res = pushJsonbValue(&b->state, WJB_KEY, &v);
}

static void
JsonbBuildScalar(void *arg, char *token, JsonTokenType tokentype)
{
	JsonbBuild *b = arg;
	JsonbValue	v;

	JsonbBuildCheck(b);
	switch (tokentype)
	{
		case JSON_TOKEN_STRING:
			v.type = jbvString;
			v.val.string.len = strlen(token);
			v.val.string.val = token;
			break;
		case JSON_TOKEN_NUMBER:
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(token),
																ObjectIdGetDatum(InvalidOid),
																Int32GetDatum(-1)));
			break;
		case JSON_TOKEN_TRUE:
			v.type = jbvBool;
			v.val.boolean = true;
			break;
		case JSON_TOKEN_FALSE:
			v.type = jbvBool;
			v.val.boolean = false;
			break;
		case JSON_TOKEN_NULL:
			v.type = jbvNull;
			break;
		default:
			elog(ERROR, "invalid json token type");
	}
	/* export writes an object: every scalar is in a container */
	b->res = pushJsonbValue(&b->state,
							b->state->contVal.type == jbvArray ? WJB_ELEM : WJB_VALUE, &v);
}

static Jsonb *
JsonbFromText(char *json, int len)
{
	JsonbBuild	b = {0};
	JsonSemAction sem = {0};

	sem.semstate = &b;
	sem.object_start = JsonbBuildObjectStart;
	sem.object_end = JsonbBuildObjectEnd;
	sem.array_start = JsonbBuildArrayStart;
	sem.array_end = JsonbBuildArrayEnd;
	sem.object_field_start = JsonbBuildKey;
	sem.scalar = JsonbBuildScalar;
	pg_parse_json_or_ereport(makeJsonLexContextCstringLen(json, len, GetDatabaseEncoding(), true),
							 &sem);
	CHECK_FOR_INTERRUPTS();
	return JsonbValueToJsonb(b.res);
}

/* The weights of a model as jsonb, in a layout PyTorch loads in a few lines. */
PG_FUNCTION_INFO_V1(export_model);
Datum
export_model(PG_FUNCTION_ARGS)
{
	DltModel   *m;
	const dlk_arch *a;
	StringInfoData b;
	const float *p;
	MemoryContext cxt;
	MemoryContext old;
	Jsonb	   *result;

	DltCheckSqlVersion();
	/*
	 * Everything export holds lives in a context of its own, the budget's
	 * root: the decoded model, the text (about 16 bytes a weight) and the
	 * parse tree jsonb is built from (about 64 more); the result stays in it,
	 * freed with the caller's context.
	 */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "dltrain export", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	DltBudgetCheck(cxt, mul_size(2, toast_raw_datum_size(PG_GETARG_DATUM(0))), "decoding a model");
	m = ModelDecode((struct varlena *) PG_GETARG_BYTEA_PP(0));
	a = &m->arch;
	p = m->params;
	DltBudgetCheck(cxt, mul_size(m->n_params, 80), "exporting a model as jsonb");
	DltTestWaitPoint(DLT_WAIT_EXPORT);
	initStringInfo(&b);
	appendStringInfo(&b, "{\"format\": \"dltrain.mlp\", \"format_version\": 1, \"task\": \"%s\", \"activation\": \"%s\", \"inputs\": %d, \"outputs\": %d, \"label_type\": ",
					 DltTaskName(m->task), DltActName(a->act), a->dims[0], a->dims[a->n_layers]);
	escape_json(&b, format_type_be(m->label_type));
	appendStringInfoString(&b, ", \"layers\": [");
	for (int l = 0; l < a->n_layers; l++)
	{
		int			I = a->dims[l];
		int			O = a->dims[l + 1];

		appendStringInfo(&b, "%s{\"in\": %d, \"out\": %d, \"weight\": [", l ? ", " : "", I, O);
		for (int o = 0; o < O; o++)
		{
			CHECK_FOR_INTERRUPTS();
			appendStringInfoString(&b, o ? ", [" : "[");
			for (int i = 0; i < I; i++)
			{
				if (i)
					appendStringInfoString(&b, ", ");
				DltAppendJsonFloat(&b, *p++);
			}
			appendStringInfoChar(&b, ']');
		}
		appendStringInfoString(&b, "], \"bias\": [");
		for (int o = 0; o < O; o++)
		{
			if (o)
				appendStringInfoString(&b, ", ");
			DltAppendJsonFloat(&b, *p++);
		}
		appendStringInfoString(&b, "]}");
	}
	appendStringInfoString(&b, "], \"normalization\": ");
	if (m->normalized)
	{
		appendStringInfoString(&b, "{\"mean\": [");
		for (int d = 0; d < a->dims[0]; d++)
		{
			if (d)
				appendStringInfoString(&b, ", ");
			DltAppendJsonDouble(&b, m->mean[d]);
		}
		appendStringInfoString(&b, "], \"scale\": [");
		for (int d = 0; d < a->dims[0]; d++)
		{
			if (d)
				appendStringInfoString(&b, ", ");
			DltAppendJsonDouble(&b, m->scale[d]);
		}
		appendStringInfoString(&b, "]}");
	}
	else
		appendStringInfoString(&b, "null");
	if (m->task == DLT_TASK_CLASSIFICATION)
	{
		appendStringInfoString(&b, ", \"classes\": [");
		for (int k = 0; k < m->n_classes; k++)
		{
			if (k)
				appendStringInfoString(&b, ", ");
			DltAppendClassJson(&b, m, k);
		}
		appendStringInfoChar(&b, ']');
	}
	appendStringInfoChar(&b, '}');
	result = JsonbFromText(b.data, b.len);
	MemoryContextSwitchTo(old);
	PG_RETURN_JSONB_P(result);
}

/* ---- import ---- */

static void
ImportError(const char *msg)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("cannot import model: %s", msg),
			 errhint("See the README for the layout dltrain.export() writes.")));
}

static bool
GetKey(JsonbContainer *c, const char *key, JsonbValue *out)
{
	JsonbValue *v = DltJsonbGet(c, key, out);

	return v != NULL && v->type != jbvNull;
}

static JsonbContainer *
GetContainer(JsonbContainer *c, const char *key, bool array, bool required)
{
	JsonbValue	v;

	if (!GetKey(c, key, &v))
	{
		if (required)
			ImportError(psprintf("key \"%s\" is missing", key));
		return NULL;
	}
	if (v.type != jbvBinary ||
		(array ? !JsonContainerIsArray(v.val.binary.data) : !JsonContainerIsObject(v.val.binary.data)))
		ImportError(psprintf("\"%s\" must be an %s", key, array ? "array" : "object"));
	return v.val.binary.data;
}

static char *
GetString(JsonbContainer *c, const char *key)
{
	JsonbValue	v;

	if (!GetKey(c, key, &v) || v.type != jbvString)
		ImportError(psprintf("\"%s\" must be a string", key));
	return pnstrdup(v.val.string.val, v.val.string.len);
}

static double
NumberOf(JsonbValue *v, const char *what)
{
	double		d;

	if (v->type != jbvNumeric)
		ImportError(psprintf("%s must be a number", what));
	d = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
	if (!isfinite(d))
		ImportError(psprintf("%s must be finite", what));
	return d;
}

static int
GetInt(JsonbContainer *c, const char *key)
{
	JsonbValue	v;
	double		d;

	if (!GetKey(c, key, &v))
		ImportError(psprintf("key \"%s\" is missing", key));
	d = NumberOf(&v, psprintf("\"%s\"", key));
	if (d != floor(d) || d < 1 || d > DLK_MAX_WIDTH)
		ImportError(psprintf("\"%s\" must be an integer between 1 and %d", key, DLK_MAX_WIDTH));
	return (int) d;
}

/* Reads a JSON array of exactly n numbers into out (float or double). */
static void
GetNumbers(JsonbContainer *arr, int n, float *outf, double *outd, const char *what)
{
	JsonbIterator *it = JsonbIteratorInit(arr);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			k = 0;

	CHECK_FOR_INTERRUPTS();
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		double		d;

		if (tok != WJB_ELEM)
			continue;
		if (k >= n)
			ImportError(psprintf("%s has more than %d values", what, n));
		if (v.type != jbvNumeric)
			ImportError(psprintf("%s must hold only numbers", what));
		d = NumberOf(&v, what);
		if (outf)
		{
			/* 3.4028235e38, FLT_MAX's shortest decimal, is above FLT_MAX */
			if (!DltFitsFloat32(d))
				ImportError(psprintf("%s has a value out of range for real", what));
			outf[k] = (float) d;
		}
		else
			outd[k] = d;
		k++;
	}
	if (k != n)
		ImportError(psprintf("%s has %d values, expected %d", what, k, n));
}

static Oid
LabelTypeByName(const char *name)
{
	static const struct
	{
		const char *name;
		Oid			oid;
	}			types[] = {
		{"smallint", INT2OID}, {"integer", INT4OID}, {"bigint", INT8OID},
		{"real", FLOAT4OID}, {"double precision", FLOAT8OID}, {"text", TEXTOID},
		{"boolean", BOOLOID}, {"numeric", NUMERICOID}
	};

	for (int i = 0; i < lengthof(types); i++)
		if (strcmp(types[i].name, name) == 0)
			return types[i].oid;
	ImportError(psprintf("label_type \"%s\" is not one of smallint, integer, bigint, real, double precision, text, boolean, numeric", name));
	return InvalidOid;
}

/*
 * An integer class value, exactly (bigint classes beyond 2^53 do not survive
 * a trip through double).
 */
static int64
ClassInteger(JsonbValue *v)
{
	char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out,
														NumericGetDatum(v->val.numeric)));
	char	   *end;
	int64		r;

	errno = 0;
	r = strtoll(s, &end, 10);
	if (*end == '.')
		for (end++; *end == '0'; end++)
			;
	if (errno != 0 || end == s || *end != '\0')
		ImportError("\"classes\" must hold integers within the range of bigint for integer labels");
	return r;
}

static void
ImportClasses(DltModel *m, JsonbContainer *arr)
{
	JsonbIterator *it = JsonbIteratorInit(arr);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			C = m->n_classes;
	int			k = 0;

	if (m->label_kind == DLT_LABEL_INT)
		m->class_int = palloc(sizeof(int64) * C);
	else if (m->label_kind == DLT_LABEL_FLOAT)
		m->class_float = palloc(sizeof(double) * C);
	else
		m->class_text = palloc(sizeof(char *) * C);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (k >= C)
			ImportError("\"classes\" has more values than \"outputs\"");
		if (m->label_kind == DLT_LABEL_TEXT)
		{
			if (v.type != jbvString)
				ImportError("\"classes\" must hold strings for text labels");
			m->class_text[k] = pnstrdup(v.val.string.val, v.val.string.len);
			if (k > 0 && strcmp(m->class_text[k - 1], m->class_text[k]) >= 0)
				ImportError("\"classes\" must be distinct and in ascending (byte) order");
		}
		else if (m->label_type == BOOLOID)
		{
			if (v.type != jbvBool)
				ImportError("\"classes\" must hold false and true for boolean labels");
			m->class_int[k] = v.val.boolean ? 1 : 0;
			if (k > 0 && m->class_int[k - 1] >= m->class_int[k])
				ImportError("\"classes\" must be distinct and in ascending order");
		}
		else
		{
			double		d = NumberOf(&v, "a class value");

			if (m->label_kind == DLT_LABEL_INT)
			{
				m->class_int[k] = ClassInteger(&v);
				if (k > 0 && m->class_int[k - 1] >= m->class_int[k])
					ImportError("\"classes\" must be distinct and in ascending order");
			}
			else
			{
				/* a class of type real is a float32 value, as training reads it */
				if (m->label_type == FLOAT4OID)
				{
					if (!DltFitsFloat32(d))
						ImportError("\"classes\" has a value out of range for real");
					d = (double) (float) d;
				}
				m->class_float[k] = d;
				if (k > 0 && m->class_float[k - 1] >= m->class_float[k])
					ImportError("\"classes\" must be distinct and in ascending order");
			}
		}
		k++;
	}
	if (k != C)
		ImportError(psprintf("\"classes\" has %d values, but \"outputs\" is %d", k, C));
}

/* Builds a model from dltrain.export()'s layout (e.g. written from PyTorch). */
PG_FUNCTION_INFO_V1(import_model);
Datum
import_model(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb;
	JsonbContainer *root;
	DltModel   *m;
	JsonbContainer *layers;
	JsonbContainer *norm;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *s;
	int			L = 0;
	int			D;
	int			C;
	dlk_sizes	sz;
	float	   *p;
	bytea	   *result;
	DltCheckResult res;

	DltCheckSqlVersion();
	jb = PG_GETARG_JSONB_P(0);
	root = &jb->root;
	m = palloc0(sizeof(DltModel));
	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ImportError("the value must be a JSON object");
	s = GetString(root, "format");
	if (strcmp(s, "dltrain.mlp") != 0)
		ImportError(psprintf("format \"%s\" is not \"dltrain.mlp\"", s));
	if (GetInt(root, "format_version") != 1)
		ImportError("only format_version 1 is known");

	s = GetString(root, "task");
	if (strcmp(s, "classification") == 0)
		m->task = DLT_TASK_CLASSIFICATION;
	else if (strcmp(s, "regression") == 0)
		m->task = DLT_TASK_REGRESSION;
	else
		ImportError(psprintf("task \"%s\" is not \"classification\" or \"regression\"", s));
	s = GetString(root, "activation");
	if (strcmp(s, "relu") == 0)
		m->arch.act = DLK_ACT_RELU;
	else if (strcmp(s, "tanh") == 0)
		m->arch.act = DLK_ACT_TANH;
	else if (strcmp(s, "sigmoid") == 0)
		m->arch.act = DLK_ACT_SIGMOID;
	else
		ImportError(psprintf("activation \"%s\" is not relu, tanh or sigmoid", s));
	m->arch.loss = m->task == DLT_TASK_CLASSIFICATION ? DLK_LOSS_SOFTMAX_CE : DLK_LOSS_MSE;
	D = GetInt(root, "inputs");
	C = GetInt(root, "outputs");

	/* layer shapes first, to size the parameter buffer */
	layers = GetContainer(root, "layers", true, true);
	m->arch.dims[0] = D;
	it = JsonbIteratorInit(layers);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		JsonbContainer *lc;

		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			ImportError("each layer must be an object");
		if (L >= DLK_MAX_LAYERS)
			ImportError(psprintf("a model has at most %d layers", DLK_MAX_LAYERS));
		lc = v.val.binary.data;
		if (GetInt(lc, "in") != m->arch.dims[L])
			ImportError(psprintf("layer %d has %d inputs, but the layer before gives %d",
								 L, GetInt(lc, "in"), m->arch.dims[L]));
		m->arch.dims[L + 1] = GetInt(lc, "out");
		L++;
	}
	if (L == 0)
		ImportError("\"layers\" is empty");
	m->arch.n_layers = L;
	if (m->arch.dims[L] != C)
		ImportError(psprintf("the last layer has %d outputs, but \"outputs\" is %d", m->arch.dims[L], C));
	if (m->task == DLT_TASK_REGRESSION && C != 1)
		ImportError("a regression model has exactly one output");
	if (dlk_arch_check(&m->arch) != DLK_OK ||
		dlk_sizes_for(&sz, &m->arch, 1, DLK_OPT_SGD) != DLK_OK)
		ImportError("the layer shapes are not supported");
	m->n_params = sz.n_params;
	CheckModelSize(mul_size(m->n_params, sizeof(float)));
	m->params = palloc_extended(sizeof(float) * m->n_params, MCXT_ALLOC_HUGE);

	/* then the weights, in the kernel library's layout: W_0, b_0, W_1, ... */
	DltTestWaitPoint(DLT_WAIT_IMPORT);
	p = m->params;
	L = 0;
	it = JsonbIteratorInit(layers);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		JsonbContainer *lc;
		JsonbContainer *w;
		JsonbIterator *rit;
		JsonbValue	row;
		int			I,
					O,
					r = 0;

		if (tok != WJB_ELEM)
			continue;
		lc = v.val.binary.data;
		I = m->arch.dims[L];
		O = m->arch.dims[L + 1];
		w = GetContainer(lc, "weight", true, true);
		rit = JsonbIteratorInit(w);
		while ((tok = JsonbIteratorNext(&rit, &row, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM)
				continue;
			if (r >= O)
				ImportError(psprintf("the weight of layer %d has more than %d rows", L, O));
			if (row.type != jbvBinary || !JsonContainerIsArray(row.val.binary.data))
				ImportError(psprintf("each row of the weight of layer %d must be an array", L));
			GetNumbers(row.val.binary.data, I, p + (Size) r * I, NULL,
					   psprintf("a row of the weight of layer %d", L));
			r++;
		}
		if (r != O)
			ImportError(psprintf("the weight of layer %d has %d rows, expected %d", L, r, O));
		p += (Size) O * I;
		GetNumbers(GetContainer(lc, "bias", true, true), O, p, NULL,
				   psprintf("the bias of layer %d", L));
		p += O;
		L++;
	}

	norm = GetContainer(root, "normalization", false, false);
	if (norm)
	{
		m->normalized = true;
		m->mean = palloc(sizeof(double) * D);
		m->scale = palloc(sizeof(double) * D);
		GetNumbers(GetContainer(norm, "mean", true, true), D, NULL, m->mean, "\"mean\"");
		GetNumbers(GetContainer(norm, "scale", true, true), D, NULL, m->scale, "\"scale\"");
	}

	if (GetKey(root, "label_type", &v))
		m->label_type = LabelTypeByName(GetString(root, "label_type"));
	else if (m->task == DLT_TASK_REGRESSION)
		m->label_type = FLOAT8OID;
	else
		m->label_type = INT8OID;
	m->label_kind = (m->label_type == TEXTOID) ? DLT_LABEL_TEXT :
		(m->label_type == FLOAT4OID || m->label_type == FLOAT8OID ||
		 m->label_type == NUMERICOID) ? DLT_LABEL_FLOAT : DLT_LABEL_INT;
	if (m->task == DLT_TASK_CLASSIFICATION)
	{
		if (C < 2)
			ImportError("a classifier has at least two outputs");
		m->n_classes = C;
		ImportClasses(m, GetContainer(root, "classes", true, true));
	}
	else if (m->label_kind == DLT_LABEL_TEXT)
		ImportError("a regression model cannot have text labels");

	DltOptionsDefault(&m->opts);
	m->opts.activation = m->arch.act;
	m->opts.n_hidden = L - 1;
	for (int l = 0; l < L - 1; l++)
		m->opts.hidden[l] = m->arch.dims[l + 1];
	m->opts.task = m->task;
	m->opts.normalize = m->normalized;
	m->opts.epochs = 0;
	m->epoch_loss = NULL;

	/*
	 * Then the complete check every model value passes (model_check.c): what
	 * the layout's reading above does not see (class ranges, statistics,
	 * text label lengths, ...) is refused here.
	 */
	result = ModelEncodeRaw(m);
	if (!ModelCheckBytes(VARDATA(result), VARSIZE(result) - VARHDRSZ, NULL, &res))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot import model: the values do not form a valid model"),
				 errdetail_internal("%s", res.detail),
				 errhint("See the README for the layout dltrain.export() writes.")));
	PG_RETURN_BYTEA_P(result);
}
