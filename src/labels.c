/*
 * labels.c — labels: their SQL types, their values, and the table of distinct
 * classification labels.
 *
 * A classification label is kept as the id of its value in an
 * open-addressing table of distinct values (integers, the bits of a float,
 * or strings), filled in arrival order.  When the rows are all in, the few
 * distinct values are sorted once (numbers ascending, text bytewise) and
 * each id gets its class index (rank), so mapping a row's label to its class
 * is one array lookup, and class indices do not depend on arrival order.
 * The aggregate and fit() share this.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "labels.h"
#include "model.h"

#define MAX_CLASSES DLK_MAX_WIDTH
#define MAX_TEXT_LABEL DLT_MAX_TEXT_LABEL	/* model_check.h: the model check repeats it */

bool
DltLabelKindKnown(Oid type, DltLabelKind *kind)
{
	switch (type)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case BOOLOID:			/* classes false (0) and true (1) */
			*kind = DLT_LABEL_INT;
			return true;
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:		/* read as double precision */
			*kind = DLT_LABEL_FLOAT;
			return true;
		case TEXTOID:
			*kind = DLT_LABEL_TEXT;
			return true;
	}
	return false;
}

DltLabelKind
DltLabelKindOf(Oid type)
{
	DltLabelKind kind;

	if (!DltLabelKindKnown(type, &kind))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("label type %s is not supported", format_type_be(type)),
				 errdetail("Labels are smallint, integer, bigint, boolean or text (classes), or real, double precision or numeric (a regression target, or classes with \"task\": \"classification\")."),
				 errhint("Cast the label to text for classes, or to double precision for a quantity.")));
	return kind;
}

int64
DltLabelValue(Datum d, Oid type, DltTask task, int64 row)
{
	int64		slot = 0;
	double		f;

	switch (type)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		case INT8OID:
			return DatumGetInt64(d);
		case BOOLOID:
			if (task == DLT_TASK_REGRESSION)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("a boolean label cannot be a regression target"),
						 errdetail("A boolean label is two classes, false and true."),
						 errhint("Drop \"task\": \"regression\", or cast the label to double precision for a 0/1 target.")));
			return DatumGetBool(d) ? 1 : 0;
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			f = type == FLOAT4OID ? DatumGetFloat4(d) :
				type == FLOAT8OID ? DatumGetFloat8(d) : DltNumericToDouble(d);
			if (!isfinite(f))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("label of input row %lld is %s", (long long) row,
								isnan(f) ? "NaN" : "infinite"),
						 errhint("Filter out or replace rows with non-finite labels.")));
			if (task == DLT_TASK_REGRESSION && fabs(f) > FLT_MAX)
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("label of input row %lld is out of range for real",
								(long long) row),
						 errdetail("Regression trains in single precision.")));
			if (f == 0)
				f = 0;			/* one zero: -0 and 0 are the same class */
			memcpy(&slot, &f, sizeof(double));
			return slot;
		default:
			elog(ERROR, "unexpected label type %u", type);
	}
	return 0;
}

/*
 * A numeric as double precision: NaN and the infinities come back as the
 * double's (the caller refuses them), a value beyond double's range as an
 * infinity.
 */
double
DltNumericToDouble(Datum d)
{
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, d));
}

double
DltLabelTarget(int64 v, DltLabelKind kind)
{
	double		f;

	if (kind == DLT_LABEL_INT)
		return (double) v;
	memcpy(&f, &v, sizeof(double));
	return f;
}

static void
ClassTableGrow(DltClassTable *t, MemoryContext cxt)
{
	int			newcap = t->cap ? t->cap * 2 : 64;
	int32	   *newslot = MemoryContextAllocZero(cxt, sizeof(int32) * newcap);
	Size		per = newcap / 2;

	for (int k = 0; k < t->cap; k++)
	{
		if (t->slot[k])
		{
			uint32		j = t->hash[t->slot[k] - 1] & (newcap - 1);

			while (newslot[j])
				j = (j + 1) & (newcap - 1);
			newslot[j] = t->slot[k];
		}
	}
	if (t->slot)
	{
		pfree(t->slot);
		t->hash = repalloc(t->hash, sizeof(uint32) * per);
		t->val = repalloc(t->val, sizeof(int64) * per);
		t->str = repalloc(t->str, sizeof(char *) * per);
		t->len = repalloc(t->len, sizeof(int) * per);
	}
	else
	{
		t->hash = MemoryContextAlloc(cxt, sizeof(uint32) * per);
		t->val = MemoryContextAlloc(cxt, sizeof(int64) * per);
		t->str = MemoryContextAlloc(cxt, sizeof(char *) * per);
		t->len = MemoryContextAlloc(cxt, sizeof(int) * per);
	}
	t->slot = newslot;
	t->cap = newcap;
}

/* DltClassId through the hash table. */
static int32
ClassIdHashed(DltClassTable *t, MemoryContext cxt, int64 v, const char *s, int len)
{
	uint32		h = s ? hash_bytes((const unsigned char *) s, len) :
		hash_bytes((const unsigned char *) &v, sizeof(v));
	uint32		mask;
	uint32		i;

	if (t->cap == 0 || t->n * 2 >= t->cap)
		ClassTableGrow(t, cxt);
	mask = t->cap - 1;
	for (i = h & mask; t->slot[i]; i = (i + 1) & mask)
	{
		int32		id = t->slot[i] - 1;

		if (t->hash[id] != h)
			continue;
		if (s ? (t->len[id] == len && memcmp(t->str[id], s, len) == 0) : t->val[id] == v)
			return id;
	}
	if (t->n >= MAX_CLASSES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("label has more than %d distinct values, the most classes a model supports",
						MAX_CLASSES),
				 s == NULL ?
				 errhint("For a numeric target, use \"task\": \"regression\".") : 0));
	if (s && len > MAX_TEXT_LABEL)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("text label of %d bytes is longer than the maximum of %d bytes",
						len, MAX_TEXT_LABEL)));
	t->hash[t->n] = h;
	t->val[t->n] = v;
	t->str[t->n] = s ? MemoryContextStrdup(cxt, pnstrdup(s, len)) : NULL;
	t->len[t->n] = s ? len : 0;
	t->slot[i] = t->n + 1;
	return t->n++;
}

/*
 * The id of a value (s == NULL) or text (s, len), added if new (in cxt).
 * Labels 0..63, the usual classes, are remembered in a direct table.
 */
int32
DltClassId(DltClassTable *t, MemoryContext cxt, int64 v, const char *s, int len)
{
	if (s == NULL && v >= 0 && v < (int64) lengthof(t->small))
	{
		if (t->small[v] == 0)
			t->small[v] = ClassIdHashed(t, cxt, v, NULL, 0) + 1;
		return t->small[v] - 1;
	}
	return ClassIdHashed(t, cxt, v, s, len);
}

int32
DltClassLookup(const DltClassTable *t, int64 v, const char *s, int len)
{
	uint32		h = s ? hash_bytes((const unsigned char *) s, len) :
		hash_bytes((const unsigned char *) &v, sizeof(v));
	uint32		mask;

	if (t->cap == 0)
		return -1;
	mask = t->cap - 1;
	for (uint32 i = h & mask; t->slot[i]; i = (i + 1) & mask)
	{
		int32		id = t->slot[i] - 1;

		if (t->hash[id] == h &&
			(s ? (t->len[id] == len && memcmp(t->str[id], s, len) == 0) : t->val[id] == v))
			return id;
	}
	return -1;
}

static const DltClassTable *sort_classes;
static DltLabelKind sort_kind;

/* Orders class ids by value: numbers ascending, text bytewise. */
static int
CmpClassIds(const void *pa, const void *pb)
{
	int32		x = *(const int32 *) pa,
				y = *(const int32 *) pb;
	const DltClassTable *t = sort_classes;

	switch (sort_kind)
	{
		case DLT_LABEL_INT:
			return (t->val[x] > t->val[y]) - (t->val[x] < t->val[y]);
		case DLT_LABEL_FLOAT:
			{
				double		a = DltLabelTarget(t->val[x], DLT_LABEL_FLOAT),
							b = DltLabelTarget(t->val[y], DLT_LABEL_FLOAT);

				return (a > b) - (a < b);
			}
		case DLT_LABEL_TEXT:
			{
				int			c = memcmp(t->str[x], t->str[y], Min(t->len[x], t->len[y]));

				return c ? c : (t->len[x] > t->len[y]) - (t->len[x] < t->len[y]);
			}
	}
	return 0;
}

/*
 * An integer label with very many distinct values (an id, a price in cents)
 * is more likely a quantity than a class: say so, once per training, unless
 * the options asked for classification.
 */
#define MANY_CLASSES 1000
#define MANY_CLASSES_MIN 100	/* below it, 1% of the rows is no signal */

void
DltWarnManyClasses(int n_classes, int64 n_rows, DltLabelKind kind, DltTask asked)
{
	if (kind != DLT_LABEL_INT || asked != DLT_TASK_AUTO)
		return;
	if (n_classes > MANY_CLASSES ||
		(n_classes > MANY_CLASSES_MIN && (int64) n_classes * 100 > n_rows))
		ereport(WARNING,
				(errmsg("the integer label has %d distinct values in %lld rows: training a %d-class classifier",
						n_classes, (long long) n_rows, n_classes),
				 errdetail("An integer label is taken for classes; dltrain warns past %d classes, or past %d when they are more than 1%% of the rows.",
						   MANY_CLASSES, MANY_CLASSES_MIN),
				 errhint("For a quantity, use \"task\": \"regression\", or pass the label as double precision; \"task\": \"classification\" says the classes are meant.")));
}

void
DltClassTableFinish(DltClassTable *t, DltLabelKind kind, DltModel *m, int64 n_rows)
{
	int32	   *ids = palloc(sizeof(int32) * Max(t->n, 1));

	m->n_classes = t->n;
	if (t->n < 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("classification needs at least two distinct labels"),
				 errdetail("Every one of the %lld rows has the same label.",
						   (long long) n_rows)));
	for (int i = 0; i < t->n; i++)
		ids[i] = i;
	sort_classes = t;
	sort_kind = kind;
	qsort(ids, t->n, sizeof(int32), CmpClassIds);

	t->rank = palloc(sizeof(int32) * t->n);
	t->chash = palloc(sizeof(uint64) * t->n);
	if (kind == DLT_LABEL_TEXT)
		m->class_text = palloc(sizeof(char *) * t->n);
	else if (kind == DLT_LABEL_INT)
		m->class_int = palloc(sizeof(int64) * t->n);
	else
		m->class_float = palloc(sizeof(double) * t->n);
	for (int k = 0; k < t->n; k++)
	{
		int32		id = ids[k];

		t->rank[id] = k;
		if (kind == DLT_LABEL_TEXT)
		{
			m->class_text[k] = t->str[id];
			t->chash[id] = DltLabelHash(t->str[id], t->len[id], 0);
		}
		else
		{
			if (kind == DLT_LABEL_INT)
				m->class_int[k] = t->val[id];
			else
				m->class_float[k] = DltLabelTarget(t->val[id], DLT_LABEL_FLOAT);
			t->chash[id] = DltLabelHash(NULL, 0, t->val[id]);
		}
	}
	pfree(ids);
}

uint64
DltLabelHash(const char *s, int len, int64 v)
{
	if (s != NULL)
		return hash_bytes_extended((const unsigned char *) s, len, 1);
	return hash_bytes_extended((const unsigned char *) &v, sizeof(v), 1);
}
