/*
 * feature_array.h — feature arrays: their checks and the conversion to float32
 * that training and scoring both apply (feature_array.c).
 */
#ifndef DLTRAIN_FEATURES_H
#define DLTRAIN_FEATURES_H

#include "postgres.h"

#include "utils/array.h"

/*
 * Checks the shape of a feature array (of any element type below): one
 * dimension, not empty, no NULL element, and expected_dim elements when
 * expected_dim > 0.  Returns the width.  row is the 1-based input row number
 * named in errors (0: the array passed to a predict function).
 */
extern int	CheckFeatureArray(ArrayType *arr, int expected_dim, int64 row);
/*
 * Converts a checked array to float32, refusing NaN, Inf and float32
 * overflow.  elemtype is one DltFeatureElemTypeKnown() accepts.
 */
extern void FeatureArrayToFloat(float *out, ArrayType *arr, Oid elemtype, int64 row);

/* real, double precision, smallint, integer, bigint or numeric */
extern bool DltFeatureElemTypeKnown(Oid elemtype);
/* Refuses an array type whose elements are not one of those ("what" names it). */
extern void CheckFeatureArrayType(Oid arraytype, const char *what);

#endif							/* DLTRAIN_FEATURES_H */
