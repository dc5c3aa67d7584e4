/*
 * feature_array.c — feature arrays: shape checks and the conversion to float32.
 *
 * Shared by training (rows.c, source_table.c) and scoring (score.c), so the
 * same shape, NULL and finiteness rules apply when training and when
 * scoring.
 *
 * Element types: real and double precision (the fast paths), smallint,
 * integer and bigint (exact in double, rounded to float32), and numeric
 * (NaN and infinities refused like a float's; each element goes through
 * numeric's own conversion to double, which is much slower than the others:
 * the README's performance notes measure it).
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/tupmacs.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

#include "feature_array.h"
#include "kernels/dlk.h"

/* "row 12" in training, "the feature array" in prediction */
static const char *
RowName(int64 row)
{
	if (row <= 0)
		return "the feature array";
	return psprintf("the feature array of input row %lld", (long long) row);
}

int
CheckFeatureArray(ArrayType *arr, int expected_dim, int64 row)
{
	int			n;

	if (ARR_NDIM(arr) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s is empty", RowName(row))));
	if (ARR_NDIM(arr) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be one-dimensional", RowName(row)),
				 errdetail("It has %d dimensions.", ARR_NDIM(arr))));
	if (array_contains_nulls(arr))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s contains a NULL element", RowName(row)),
				 errhint("Replace NULL features with a value, or filter the rows out.")));
	n = ARR_DIMS(arr)[0];
	if (n > DLK_MAX_WIDTH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s has %d elements, more than the maximum of %d",
						RowName(row), n, DLK_MAX_WIDTH)));
	if (expected_dim > 0 && n != expected_dim)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg_plural("%s has %d element, expected %d",
							   "%s has %d elements, expected %d",
							   n, RowName(row), n, expected_dim),
				 row > 0 ?
				 errdetail("Every row must have as many features as the first one.") :
				 errdetail("The model was trained on %d features.", expected_dim)));
	return n;
}

static void
NonFiniteError(int64 row, int i, double v)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("%s has a non-finite value at element %d",
					RowName(row), i + 1),
			 errdetail("The value is %s.", isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity"))));
}

void
FeatureArrayToFloat(float *out, ArrayType *arr, Oid elemtype, int64 row)
{
	int			n = ARR_DIMS(arr)[0];

	if (elemtype == FLOAT4OID)
	{
		const float *src = (const float *) ARR_DATA_PTR(arr);

		/* copy and test in one vectorized pass; find the culprit afterwards */
		if (unlikely(!dlk_copy_finite_f32(out, src, n)))
		{
			for (int i = 0; i < n; i++)
				if (!isfinite(src[i]))
					NonFiniteError(row, i, src[i]);
		}
	}
	else if (elemtype == FLOAT8OID)
	{
		const double *src = (const double *) ARR_DATA_PTR(arr);

		if (unlikely(!dlk_convert_finite_f64(out, src, n)))
		{
			for (int i = 0; i < n; i++)
			{
				if (!isfinite(src[i]))
					NonFiniteError(row, i, src[i]);
				if (!isfinite((float) src[i]))
					ereport(ERROR,
							(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
							 errmsg("%s has a value out of range for real at element %d",
									RowName(row), i + 1),
							 errdetail("The value %g does not fit in single precision, which training uses.",
									   src[i])));
			}
		}
	}
	else if (elemtype == INT2OID)
	{
		const int16 *src = (const int16 *) ARR_DATA_PTR(arr);

		for (int i = 0; i < n; i++)
			out[i] = (float) src[i];
	}
	else if (elemtype == INT4OID)
	{
		const int32 *src = (const int32 *) ARR_DATA_PTR(arr);

		for (int i = 0; i < n; i++)
			out[i] = (float) src[i];
	}
	else if (elemtype == INT8OID)
	{
		const int64 *src = (const int64 *) ARR_DATA_PTR(arr);

		/* |int64| < 2^63 < FLT_MAX: always finite */
		for (int i = 0; i < n; i++)
			out[i] = (float) src[i];
	}
	else if (elemtype == NUMERICOID)
	{
		const char *p = ARR_DATA_PTR(arr);

		/* no NULL elements (CheckFeatureArray): varlenas one after another */
		for (int i = 0; i < n; i++)
		{
			Numeric		num = (Numeric) p;
			double		v;

			/* NaN and the infinities come back as the double's */
			v = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
												   NumericGetDatum(num)));
			if (isnan(v) || numeric_is_inf(num))
				NonFiniteError(row, i, v);
			if (!isfinite((float) v))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("%s has a value out of range for real at element %d",
								RowName(row), i + 1),
						 errdetail("The value %g does not fit in single precision, which training uses.",
								   v)));
			out[i] = (float) v;
			p = att_addlength_pointer(p, -1, p);
			p = (const char *) att_align_nominal(p, TYPALIGN_INT);
		}
	}
	else
		elog(ERROR, "unexpected feature element type %u", elemtype);
}

bool
DltFeatureElemTypeKnown(Oid elemtype)
{
	return elemtype == FLOAT4OID || elemtype == FLOAT8OID || elemtype == INT2OID ||
		elemtype == INT4OID || elemtype == INT8OID || elemtype == NUMERICOID;
}

void
CheckFeatureArrayType(Oid arraytype, const char *what)
{
	Oid			elemtype = get_element_type(arraytype);

	if (!OidIsValid(elemtype) || !DltFeatureElemTypeKnown(elemtype))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s must be an array of numbers, not %s", what, format_type_be(arraytype)),
				 errdetail("Features are real[], double precision[], smallint[], integer[], bigint[] or numeric[]."),
				 errhint("Cast the features to real[].")));
}
