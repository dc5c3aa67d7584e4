/*
 * fuzz_model.c — structure-aware fuzzing of the model validator
 * (src/model_check.c), without a PostgreSQL server.
 *
 * Seeds are valid encoded models: built here with the layout ModelEncode
 * writes (every task, label kind, format 1 and 2, with and without
 * normalization and validation), plus the files named on the command line
 * (models a server trained, as hex).  The validator's field hook maps each
 * seed; then every field is mutated in turn with values chosen for its type
 * (zero, one, minus one, neighbours, extremes, NaN, infinities, values just
 * past each limit), every field boundary is cut, widened and shortened, and
 * random bytes are flipped.  The CRC-32C is recomputed after each mutation
 * (a checksum is easy to forge), so mutants reach the checks behind it.
 *
 * Each mutant goes to the validator.  One that passes is then consumed the
 * way the backend consumes it: every array copied into a buffer of exactly
 * its size (ASan sees any overrun), statistics rounded to float32 (UBSan's
 * float-cast-overflow), each class found again by binary search, and a
 * forward pass through the kernel library.  A rejected mutant must carry a
 * message in PostgreSQL's style.  The report counts, per check, the mutants
 * that reached it and those it stopped.
 *
 *   fuzz_model [seed.hex ...]             run, report, "fuzz: N passed, N failed"
 *   fuzz_model --emit DIR [seed.hex ...]  also write the mutants of the
 *                                         seeds given (DIR/mutants.tsv, one
 *                                         binary COPY file per mutant in
 *                                         DIR/copy/) for the in-server fuzz
 *                                         test (test/sh/fuzz_model.sh)
 *   fuzz_model --pairs DIR [seed.hex ...] also write every ordered pair of
 *                                         the seeds given, the second forged
 *                                         to the first's CRC (DIR/pairs.tsv),
 *                                         for test/sh/fuzz_model_combine.sh
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model_check.h"

/* ---- a growable byte buffer ---- */

typedef struct Buf
{
	uint8_t    *d;
	size_t		len;
	size_t		cap;
} Buf;

static void
BufPut(Buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap)
	{
		b->cap = (b->len + n) * 2 + 64;
		b->d = realloc(b->d, b->cap);
		if (!b->d)
		{
			perror("realloc");
			exit(2);
		}
	}
	memcpy(b->d + b->len, p, n);
	b->len += n;
}

#define PUT(b, type, v) do { type v_ = (v); BufPut((b), &v_, sizeof(type)); } while (0)

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t
Rand(void)
{
	uint64_t	x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/* Sets the header's length and checksum from the bytes. */
static void
Seal(uint8_t *d, size_t len)
{
	uint32_t	total = (uint32_t) len;
	uint32_t	crc = DltCrc32c(d + DLT_MODEL_HEADER, len - DLT_MODEL_HEADER);

	memcpy(d + 8, &total, 4);
	memcpy(d + 12, &crc, 4);
}

/* ---- seeds built here ---- */

typedef struct Spec
{
	const char *name;
	uint16_t	version;
	int			task;			/* 1 classification, 2 regression */
	int			label_kind;
	uint32_t	label_type;
	int			act;
	int			n_layers;
	int			dims[DLK_MAX_LAYERS + 1];
	int			optimizer;
	int			epochs;
	int			epochs_run;
	int64_t		rows_validation;
	int			best_epoch;
	int			early_stopping;
	double		validation_fraction;
	int			normalized;
} Spec;

static Buf
BuildSeed(const Spec *s)
{
	Buf			b = {0};
	int			D = s->dims[0];
	int			C = s->dims[s->n_layers];
	int64_t		np = 0;

	PUT(&b, uint32_t, DLT_MODEL_MAGIC);
	PUT(&b, uint16_t, s->version);
	PUT(&b, uint16_t, 0);
	PUT(&b, uint32_t, 0);
	PUT(&b, uint32_t, 0);
	PUT(&b, int32_t, s->task);
	PUT(&b, int32_t, s->label_kind);
	PUT(&b, uint32_t, s->label_type);
	PUT(&b, int32_t, s->act);
	PUT(&b, int32_t, s->n_layers);
	for (int l = 0; l <= s->n_layers; l++)
		PUT(&b, int32_t, s->dims[l]);
	PUT(&b, int32_t, s->optimizer);
	PUT(&b, double, 0.01);
	PUT(&b, double, 0.9);
	PUT(&b, double, s->optimizer == DLK_OPT_ADAMW ? 0.01 : 0.0);
	PUT(&b, int32_t, 32);
	PUT(&b, int32_t, s->epochs);
	PUT(&b, int64_t, 42);
	PUT(&b, uint8_t, 1);
	PUT(&b, uint8_t, (uint8_t) s->normalized);
	PUT(&b, uint8_t, (uint8_t) s->task);
	PUT(&b, uint8_t, 0);
	if (s->version >= 2)
	{
		PUT(&b, double, s->validation_fraction);
		PUT(&b, int32_t, s->early_stopping);
	}
	PUT(&b, int64_t, 1000);
	PUT(&b, int64_t, 3);
	PUT(&b, int32_t, s->epochs_run);
	for (int e = 0; e < s->epochs_run; e++)
		PUT(&b, float, 1.0f / (e + 1));
	if (s->version >= 2)
	{
		PUT(&b, int64_t, s->rows_validation);
		PUT(&b, int32_t, s->best_epoch);
		if (s->rows_validation > 0)
		{
			for (int e = 0; e < s->epochs_run; e++)
				PUT(&b, float, 1.5f / (e + 1));
			for (int e = 0; e < s->epochs_run; e++)
				PUT(&b, float, s->task == 1 ? 0.5f + 0.1f * e : 2.0f / (e + 1));
		}
	}
	PUT(&b, int32_t, s->normalized);
	if (s->normalized)
	{
		for (int d = 0; d < D; d++)
			PUT(&b, double, 0.5 * d - 1.0);
		for (int d = 0; d < D; d++)
			PUT(&b, double, 1.0 / (d + 1));
	}
	PUT(&b, int32_t, s->task == 1 ? C : 0);
	for (int k = 0; s->task == 1 && k < C; k++)
	{
		if (s->label_kind == 1 && s->label_type == DLT_OID_BOOL)
			PUT(&b, int64_t, (int64_t) k);	/* false, true */
		else if (s->label_kind == 1)
			PUT(&b, int64_t, (int64_t) k * 7 - 3);
		else if (s->label_kind == 2)
			PUT(&b, double, (double) k * 0.25 - 1.0);
		else
		{
			char		lab[16];
			int32_t		len = snprintf(lab, sizeof(lab), "c\xc3\xa9%c", 'a' + k);

			PUT(&b, int32_t, len);
			BufPut(&b, lab, (size_t) len);
		}
	}
	for (int l = 0; l < s->n_layers; l++)
		np += (int64_t) s->dims[l + 1] * (s->dims[l] + 1);
	PUT(&b, int64_t, np);
	for (int64_t i = 0; i < np; i++)
		PUT(&b, float, (float) ((int64_t) (Rand() % 2001) - 1000) / 1000.0f);
	Seal(b.d, b.len);
	return b;
}

static const Spec specs[] = {
	{"cls-int4-v2", 2, 1, 1, DLT_OID_INT4, 0, 2, {3, 4, 3}, 1, 3, 3, 0, 0, 0, 0, 1},
	{"cls-int2-v2-val", 2, 1, 1, DLT_OID_INT2, 1, 2, {4, 5, 2}, 2, 4, 3, 17, 2, 2, 0.2, 1},
	{"cls-int8-v1", 1, 1, 1, DLT_OID_INT8, 2, 1, {2, 3}, 0, 2, 2, 0, 0, 0, 0, 0},
	{"cls-text-v2", 2, 1, 3, DLT_OID_TEXT, 0, 3, {3, 3, 2, 4}, 1, 2, 2, 9, 0, 0, 0.1, 1},
	{"cls-real-v2", 2, 1, 2, DLT_OID_FLOAT4, 0, 1, {2, 3}, 1, 1, 1, 0, 0, 0, 0, 1},
	{"cls-float8-v1", 1, 1, 2, DLT_OID_FLOAT8, 1, 2, {2, 2, 2}, 0, 1, 1, 0, 0, 0, 0, 1},
	{"reg-float8-v2-val", 2, 2, 2, DLT_OID_FLOAT8, 0, 2, {3, 4, 1}, 1, 3, 3, 5, 0, 0, 0.3, 1},
	{"reg-int4-v1", 1, 2, 1, DLT_OID_INT4, 1, 1, {2, 1}, 0, 0, 0, 0, 0, 0, 0, 0},
	{"import-v2", 2, 1, 1, DLT_OID_INT8, 0, 2, {2, 3, 2}, 1, 0, 0, 0, 0, 0, 0, 0},
	/* 0.2.0's label types */
	{"cls-bool-v2", 2, 1, 1, DLT_OID_BOOL, 0, 2, {3, 4, 2}, 1, 3, 3, 0, 0, 0, 0, 1},
	{"cls-numeric-v2", 2, 1, 2, DLT_OID_NUMERIC, 1, 2, {2, 2, 3}, 0, 1, 1, 0, 0, 0, 0, 1},
	{"reg-numeric-v2-val", 2, 2, 2, DLT_OID_NUMERIC, 0, 2, {3, 4, 1}, 1, 3, 3, 5, 0, 0, 0.3, 1},
};

/* ---- seeds from files (hex, as encode(decode(m::text, 'base64'), 'hex') writes) ---- */

static Buf
ReadHexFile(const char *path)
{
	FILE	   *f = fopen(path, "r");
	Buf			b = {0};
	int			ch,
				hi = -1;

	if (!f)
	{
		perror(path);
		exit(2);
	}
	while ((ch = fgetc(f)) != EOF)
	{
		int			v;

		if (ch >= '0' && ch <= '9')
			v = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			v = ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			v = ch - 'A' + 10;
		else
			continue;
		if (hi < 0)
			hi = v;
		else
		{
			uint8_t		byte = (uint8_t) (hi * 16 + v);

			BufPut(&b, &byte, 1);
			hi = -1;
		}
	}
	fclose(f);
	return b;
}

/* ---- the field map of a seed ---- */

typedef struct Field
{
	const char *name;
	size_t		off;
	size_t		size;
	DltFieldKind kind;
	int			index;			/* element of an array (or repeated field) */
	DltCheckStage stage;
} Field;

typedef struct FieldMap
{
	Field	   *f;
	int			n;
	int			cap;
} FieldMap;

static void
MapField(void *arg, const char *name, size_t offset, size_t size, DltFieldKind kind,
		 DltCheckStage stage)
{
	FieldMap   *fm = arg;
	int			index = 0;

	for (int i = fm->n - 1; i >= 0 && i >= fm->n - 70000; i--)
		if (fm->f[i].name == name || strcmp(fm->f[i].name, name) == 0)
		{
			index = fm->f[i].index + 1;
			break;
		}
	if (fm->n == fm->cap)
	{
		fm->cap = fm->cap * 2 + 64;
		fm->f = realloc(fm->f, sizeof(Field) * fm->cap);
	}
	fm->f[fm->n++] = (Field) {name, offset, size, kind, index, stage};
}

/* ---- UTF-8 (what a UTF8 database accepts), for agreement with the server ---- */

static int
Utf8Ok(const char *s, int len, void *arg)
{
	const unsigned char *p = (const unsigned char *) s;
	int			i = 0;

	(void) arg;
	while (i < len)
	{
		unsigned char c = p[i];
		int			n;
		unsigned char lo = 0x80,
					hi = 0xBF;

		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1;
		else if (c >= 0xE0 && c <= 0xEF)
		{
			n = 2;
			if (c == 0xE0)
				lo = 0xA0;
			if (c == 0xED)
				hi = 0x9F;
		}
		else if (c >= 0xF0 && c <= 0xF4)
		{
			n = 3;
			if (c == 0xF0)
				lo = 0x90;
			if (c == 0xF4)
				hi = 0x8F;
		}
		else
			return 0;
		if (i + n >= len)
			return 0;
		if (p[i + 1] < lo || p[i + 1] > hi)
			return 0;
		for (int k = 2; k <= n; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xBF)
				return 0;
		i += n + 1;
	}
	return 1;
}

/* ---- consuming an accepted mutant as the backend would ---- */

static int consume_failures = 0;

static void
ConsumeFail(const char *what, const char *desc)
{
	if (consume_failures++ < 10)
		fprintf(stderr, "consumer: %s (%s)\n", what, desc);
}

static void *
Dup(const char *p, size_t n)
{
	void	   *d = malloc(n ? n : 1);

	if (n)
		memcpy(d, p, n);
	return d;
}

static void
Consume(const DltModelLayout *L, const char *desc)
{
	const dlk_arch *a = &L->arch;
	int			D = a->dims[0];
	int			C = a->dims[a->n_layers];
	dlk_sizes	sz;
	dlk_net		net;
	float	   *params,
			   *work,
				x[2 * 64],
			   *xx;
	float	   *el = Dup(L->epoch_loss, sizeof(float) * L->epochs_run);
	float	   *fmean = NULL,
			   *fscale = NULL;

	if (L->rows_validation > 0)
	{
		free(Dup(L->val_loss, sizeof(float) * L->epochs_run));
		free(Dup(L->val_metric, sizeof(float) * L->epochs_run));
	}
	if (L->normalized)
	{
		double	   *mean = Dup(L->mean, sizeof(double) * D);
		double	   *scale = Dup(L->scale, sizeof(double) * D);

		fmean = malloc(sizeof(float) * D);
		fscale = malloc(sizeof(float) * D);
		for (int d = 0; d < D; d++)
		{
			fmean[d] = (float) mean[d];
			fscale[d] = (float) scale[d];
			if (!isfinite(fmean[d]) || !isfinite(fscale[d]) || !(scale[d] > 0))
				ConsumeFail("statistics not finite in float32", desc);
		}
		free(mean);
		free(scale);
	}
	/* classes: each one found again by binary search, as evaluate() does */
	if (L->label_kind != 3)
	{
		int64_t    *ci = Dup(L->classes, 8 * (size_t) L->n_classes);
		double	   *cf = (double *) ci;

		for (int k = 0; k < L->n_classes; k++)
		{
			int			lo = 0,
						hi = L->n_classes - 1,
						found = -1;

			while (lo <= hi)
			{
				int			mid = (lo + hi) / 2;
				int			c = L->label_kind == 1 ?
					(ci[k] > ci[mid]) - (ci[k] < ci[mid]) :
					(cf[k] > cf[mid]) - (cf[k] < cf[mid]);

				if (c == 0)
				{
					found = mid;
					break;
				}
				if (c < 0)
					hi = mid - 1;
				else
					lo = mid + 1;
			}
			if (found != k)
				ConsumeFail("a class is not found at its index", desc);
		}
		free(ci);
	}
	else
	{
		const char *p = L->classes;

		for (int k = 0; k < L->n_classes; k++)
		{
			int32_t		len;
			char	   *s;

			memcpy(&len, p, 4);
			if (len < 0 || len > DLT_MAX_TEXT_LABEL)
			{
				ConsumeFail("a text class length out of range", desc);
				break;
			}
			s = malloc((size_t) len + 1);
			memcpy(s, p + 4, (size_t) len);
			s[len] = '\0';
			if (strlen(s) != (size_t) len)
				ConsumeFail("a text class holds NUL", desc);
			free(s);
			p += 4 + len;
		}
	}
	/* the network */
	if (dlk_sizes_for(&sz, a, 2, DLK_OPT_SGD) != DLK_OK || (int64_t) sz.n_params != L->n_params)
	{
		ConsumeFail("architecture refused by the kernels", desc);
		free(el);
		free(fmean);
		free(fscale);
		return;
	}
	params = Dup(L->params, sizeof(float) * sz.n_params);
	work = malloc(sizeof(float) * sz.n_work);
	xx = D <= 64 ? x : malloc(sizeof(float) * 2 * D);
	for (int i = 0; i < 2 * D; i++)
		xx[i] = (float) ((int) (Rand() % 61) - 30) / 10.0f;
	if (fmean)
	{
		dlk_standardize(xx, fmean, fscale, D);
		dlk_standardize(xx + D, fmean, fscale, D);
	}
	if (dlk_net_bind(&net, a, 2, 0, params, NULL, NULL, work) != DLK_OK)
		ConsumeFail("network refused by the kernels", desc);
	else
	{
		const float *y = dlk_forward(&net, xx, 2);
		float	   *out = malloc(sizeof(float) * 2 * C);

		if (y == NULL)
			ConsumeFail("forward pass failed", desc);
		else if (L->task == 1)
		{
			dlk_softmax_rows(out, y, 2, C);
			for (int r = 0; r < 2; r++)
			{
				int			best = 0;

				for (int k = 1; k < C; k++)
					if (out[r * C + k] > out[r * C + best])
						best = k;
				if (best < 0 || best >= L->n_classes)
					ConsumeFail("predicted class out of range", desc);
			}
		}
		free(out);
	}
	if (xx != x)
		free(xx);
	free(params);
	free(work);
	free(el);
	free(fmean);
	free(fscale);
}

/* ---- the run ---- */

typedef struct Stats
{
	long		mutants;
	long		accepted;
	long		reached[DLT_STAGE_COUNT + 1];
	long		stopped[DLT_STAGE_COUNT];
	long		past_header;
	long		bad_message;
} Stats;

static Stats st;
static FILE *emit_tsv = NULL;
static const char *emit_dir = NULL;
static int	emit_this_seed = 0;
static long emit_id = 0;

static int
MessageOk(const DltCheckResult *r)
{
	size_t		dl = strlen(r->detail);
	size_t		ml = strlen(r->message);

	return ml > 0 && r->message[0] >= 'a' && r->message[0] <= 'z' &&
		r->message[ml - 1] != '.' &&
		dl > 1 && r->detail[0] >= 'A' && r->detail[0] <= 'Z' && r->detail[dl - 1] == '.';
}

static void
WriteCopyFile(const uint8_t *d, size_t len, long id)
{
	char		path[4096];
	FILE	   *f;
	static const uint8_t sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xFF, '\r', '\n', 0};
	uint8_t		be[4];

	snprintf(path, sizeof(path), "%s/copy/%ld.bin", emit_dir, id);
	f = fopen(path, "wb");
	if (!f)
	{
		perror(path);
		exit(2);
	}
	fwrite(sig, 1, 11, f);
	fwrite("\0\0\0\0\0\0\0\0", 1, 8, f);	/* flags, header extension */
	fwrite("\0\1", 1, 2, f);	/* one field */
	be[0] = (uint8_t) (len >> 24);
	be[1] = (uint8_t) (len >> 16);
	be[2] = (uint8_t) (len >> 8);
	be[3] = (uint8_t) len;
	fwrite(be, 1, 4, f);
	fwrite(d, 1, len, f);
	fwrite("\xff\xff", 1, 2, f);	/* trailer */
	fclose(f);
}

static void
Try(const uint8_t *d, size_t len, const char *seed, const char *desc)
{
	DltCheckHooks hooks = {NULL, Utf8Ok, NULL, NULL};
	DltModelLayout L;
	DltCheckResult r;
	DltCheckCode code;
	uint8_t    *copy = Dup((const char *) d, len);	/* exactly len bytes: ASan */

	code = DltModelCheck(copy, len, &hooks, &L, &r);
	st.mutants++;
	if (code == DLT_CHECK_OK)
	{
		st.accepted++;
		for (int s = 0; s <= DLT_STAGE_COUNT; s++)
			st.reached[s]++;
		st.past_header++;
		Consume(&L, desc);
	}
	else
	{
		for (int s = 0; s <= (int) r.stage; s++)
			st.reached[s]++;
		st.stopped[r.stage]++;
		if (r.stage > DLT_STAGE_HEADER)
			st.past_header++;
		if (!MessageOk(&r) && st.bad_message++ < 5)
			fprintf(stderr, "badly formed message: \"%s\" / \"%s\" (%s)\n", r.message, r.detail, desc);
	}
	if (emit_tsv && emit_this_seed)
	{
		emit_id++;
		fprintf(emit_tsv, "%ld\t%s\t%s\t%s\t", emit_id, seed, desc,
				code == DLT_CHECK_OK ? "valid" : DltCheckStageNames[r.stage]);
		for (size_t i = 0; i < len; i++)
			fprintf(emit_tsv, "%02x", d[i]);
		fputc('\n', emit_tsv);
		WriteCopyFile(d, len, emit_id);
	}
	free(copy);
}

/* Mutant = seed with n bytes at off replaced by v, checksum recomputed. */
static void
TryReplace(const Buf *seed, const char *sname, const Field *f, const void *v, const char *what,
		   int reseal)
{
	uint8_t    *d = malloc(seed->len);
	char		desc[200];

	memcpy(d, seed->d, seed->len);
	memcpy(d + f->off, v, f->size);
	if (reseal)
	{
		uint32_t	crc = DltCrc32c(d + DLT_MODEL_HEADER, seed->len - DLT_MODEL_HEADER);

		memcpy(d + 12, &crc, 4);
	}
	snprintf(desc, sizeof(desc), "%s[%d] = %s", f->name, f->index, what);
	Try(d, seed->len, sname, desc);
	free(d);
}

/* Mutant = seed cut at off, with ins bytes of fill inserted and del bytes deleted. */
static void
TrySplice(const Buf *seed, const char *sname, size_t off, size_t del, size_t ins, uint8_t fill,
		  const char *what)
{
	size_t		len = seed->len - del + ins;
	uint8_t    *d = malloc(len + 1);
	char		desc[200];

	memcpy(d, seed->d, off);
	memset(d + off, fill, ins);
	memcpy(d + off + ins, seed->d + off + del, seed->len - off - del);
	if (len >= DLT_MODEL_HEADER)
		Seal(d, len);
	snprintf(desc, sizeof(desc), "%s at byte %zu", what, off);
	Try(d, len, sname, desc);
	free(d);
}

static void
MutateField(const Buf *seed, const char *sname, const Field *f)
{
	int			reseal = !(f->off == 12);	/* the checksum itself: not resealed */
	char		what[64];

	switch (f->kind)
	{
		case DLT_FIELD_U8:
			{
				static const uint8_t vals[] = {0, 1, 2, 3, 255};

				for (size_t i = 0; i < sizeof(vals); i++)
				{
					snprintf(what, sizeof(what), "%u", vals[i]);
					TryReplace(seed, sname, f, &vals[i], what, reseal);
				}
				break;
			}
		case DLT_FIELD_U16:
			{
				static const uint16_t vals[] = {0, 1, 2, 3, 0xFFFF};

				for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
				{
					snprintf(what, sizeof(what), "%u", vals[i]);
					TryReplace(seed, sname, f, &vals[i], what, reseal);
				}
				break;
			}
		case DLT_FIELD_I32:
		case DLT_FIELD_U32:
			{
				int32_t		v;
				int64_t		vals[] = {0, 1, -1, 2, 3, 0, 0, 0, INT32_MAX, INT32_MIN, 16, 17,
				65536, 65537, 1048577, 1000001, 20, 21, 23, 25, 700, 701, 1 << 20};

				memcpy(&v, seed->d + f->off, 4);
				vals[5] = (int64_t) v + 1;
				vals[6] = (int64_t) v - 1;
				vals[7] = -(int64_t) v;
				for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
				{
					int32_t		w = (int32_t) (uint32_t) vals[i];

					if (w == v)
						continue;
					snprintf(what, sizeof(what), "%d", w);
					TryReplace(seed, sname, f, &w, what, reseal);
				}
				break;
			}
		case DLT_FIELD_I64:
			{
				int64_t		v;
				int64_t		vals[] = {0, 1, -1, 0, 0, 0, INT64_MAX, INT64_MIN,
					INT64_C(1) << 53, (INT64_C(1) << 53) + 1, 32768, -32769,
				INT64_C(2147483648), 1000000000000};

				memcpy(&v, seed->d + f->off, 8);
				vals[3] = v + 1;
				vals[4] = v - 1;
				vals[5] = v == INT64_MIN ? 0 : -v;
				for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
				{
					if (vals[i] == v)
						continue;
					snprintf(what, sizeof(what), "%lld", (long long) vals[i]);
					TryReplace(seed, sname, f, &vals[i], what, reseal);
				}
				break;
			}
		case DLT_FIELD_F32:
			{
				float		v;
				float		vals[] = {0, -0.0f, 1, -1, NAN, INFINITY, -INFINITY, FLT_MAX,
				0, 0, 1e-45f, 2.0f};

				memcpy(&v, seed->d + f->off, 4);
				vals[8] = -v;
				vals[9] = v * 2;
				for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
				{
					snprintf(what, sizeof(what), "%g", (double) vals[i]);
					TryReplace(seed, sname, f, &vals[i], what, reseal);
				}
				break;
			}
		case DLT_FIELD_F64:
			{
				double		v;
				double		vals[] = {0, -0.0, 1, -1, NAN, INFINITY, -INFINITY, FLT_MAX,
					(double) FLT_MAX * 2, 1e300, 0, 0, 0, 0.95, 0.9, 1e-320, 1e12, 1e6 + 1,
				0.1, 0.5};

				memcpy(&v, seed->d + f->off, 8);
				vals[10] = -v;
				vals[11] = v + 1;
				vals[12] = v * 1.0000001;
				for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
				{
					snprintf(what, sizeof(what), "%g", vals[i]);
					TryReplace(seed, sname, f, &vals[i], what, reseal);
				}
				break;
			}
		case DLT_FIELD_BYTES:
			{
				static const uint8_t vals[] = {0x00, 0xFF, 0xC3, 'A', 'z', 0x80};

				for (size_t pos = 0; pos < f->size; pos++)
					for (size_t i = 0; i < sizeof(vals); i++)
					{
						Field		one = *f;

						one.off = f->off + pos;
						one.size = 1;
						one.index = (int) pos;
						snprintf(what, sizeof(what), "byte 0x%02x", vals[i]);
						TryReplace(seed, sname, &one, &vals[i], what, 1);
					}
				break;
			}
	}
}

/* Arrays: the first two, the last and two random elements of each. */
static int
PickField(const FieldMap *fm, int i)
{
	const Field *f = &fm->f[i];
	int			last = 1;

	if (i + 1 < fm->n && strcmp(fm->f[i + 1].name, f->name) == 0 &&
		fm->f[i + 1].index == f->index + 1)
		last = 0;
	return f->index < 2 || last || Rand() % 64 == 0;
}

static void
FuzzSeed(const Buf *seed, const char *sname)
{
	FieldMap	fm = {0};
	DltCheckHooks hooks = {NULL, Utf8Ok, MapField, &fm};
	DltCheckResult r;
	int			picked = 0;

	DltModelCheck(seed->d, seed->len, &hooks, NULL, &r);
	for (int i = 0; i < fm.n; i++)
	{
		if (!PickField(&fm, i) || picked > 400)
			continue;
		picked++;
		MutateField(seed, sname, &fm.f[i]);
	}
	/* lengths: cut, widen and shorten at every field boundary; trailing bytes */
	for (int i = 0; i < fm.n; i++)
	{
		size_t		off = fm.f[i].off;

		if (!PickField(&fm, i))
			continue;
		TrySplice(seed, sname, off, seed->len - off, 0, 0, "cut");
		TrySplice(seed, sname, off, 0, 4, 0, "4 zero bytes inserted");
		TrySplice(seed, sname, off, 0, 8, 0xFF, "8 0xff bytes inserted");
		if (off + 4 <= seed->len && off >= DLT_MODEL_HEADER)
			TrySplice(seed, sname, off, 4, 0, 0, "4 bytes deleted");
	}
	TrySplice(seed, sname, seed->len, 0, 1, 0, "1 byte appended");
	TrySplice(seed, sname, seed->len, 0, 8, 0x41, "8 bytes appended");
	/* the header's length without the bytes */
	for (int delta = -2; delta <= 2; delta++)
	{
		uint32_t	t = (uint32_t) seed->len + delta;
		Field		lf = {"length", 8, 4, DLT_FIELD_U32, 0, DLT_STAGE_HEADER};
		char		what[32];

		if (delta == 0)
			continue;
		snprintf(what, sizeof(what), "%+d", delta);
		TryReplace(seed, sname, &lf, &t, what, 1);
	}
	/* random bytes of the body, checksum recomputed */
	for (int k = 0; k < 300; k++)
	{
		uint8_t    *d = malloc(seed->len);
		int			n = 1 + (int) (Rand() % 3);
		char		desc[64];

		memcpy(d, seed->d, seed->len);
		for (int j = 0; j < n; j++)
			d[DLT_MODEL_HEADER + Rand() % (seed->len - DLT_MODEL_HEADER)] ^= (uint8_t) (1 + Rand() % 255);
		Seal(d, seed->len);
		snprintf(desc, sizeof(desc), "random bytes %d", k);
		Try(d, seed->len, sname, desc);
		free(d);
	}
	free(fm.f);
}

/* ---- CRC collisions: B patched (its seed option's low 32 bits) to A's CRC ---- */

static int
ForgeCrc(Buf *b, uint32_t target)
{
	FieldMap	fm = {0};
	DltCheckHooks hooks = {NULL, Utf8Ok, MapField, &fm};
	DltCheckResult r;
	size_t		off = 0;
	uint32_t	cols[32],
				base;
	uint8_t    *body;
	size_t		n = b->len - DLT_MODEL_HEADER;

	DltModelCheck(b->d, b->len, &hooks, NULL, &r);
	for (int i = 0; i < fm.n; i++)
		if (strcmp(fm.f[i].name, "seed") == 0)
			off = fm.f[i].off;
	free(fm.f);
	if (off == 0)
		return 0;
	body = b->d + DLT_MODEL_HEADER;
	off -= DLT_MODEL_HEADER;
	memset(body + off, 0, 4);
	base = DltCrc32c(body, n);
	for (int bit = 0; bit < 32; bit++)
	{
		body[off + bit / 8] = (uint8_t) (1 << (bit % 8));
		cols[bit] = DltCrc32c(body, n) ^ base;
		body[off + bit / 8] = 0;
	}
	/* solve sum(x_bit * cols[bit]) = target ^ base over GF(2) */
	{
		uint32_t	rows[32];	/* row j: the bits of equation j, with the rhs in bit 32 */
		uint64_t	eq[32];
		uint32_t	rhs = target ^ base;
		uint32_t	x = 0;

		(void) rows;
		for (int j = 0; j < 32; j++)
		{
			eq[j] = (uint64_t) ((rhs >> j) & 1) << 32;
			for (int bit = 0; bit < 32; bit++)
				eq[j] |= (uint64_t) ((cols[bit] >> j) & 1) << bit;
		}
		for (int col = 0, row = 0; col < 32; col++, row++)
		{
			int			piv = -1;

			for (int j = row; j < 32; j++)
				if ((eq[j] >> col) & 1)
				{
					piv = j;
					break;
				}
			if (piv < 0)
				return 0;
			{
				uint64_t	t = eq[piv];

				eq[piv] = eq[row];
				eq[row] = t;
			}
			for (int j = 0; j < 32; j++)
				if (j != row && ((eq[j] >> col) & 1))
					eq[j] ^= eq[row];
		}
		for (int bit = 0; bit < 32; bit++)
			if ((eq[bit] >> 32) & 1)
				x |= 1u << bit;
		memcpy(body + off, &x, 4);
	}
	Seal(b->d, b->len);
	return DltCrc32c(body, n) == target;
}

static uint32_t
CrcOf(const Buf *b)
{
	uint32_t	c;

	memcpy(&c, b->d + 12, 4);
	return c;
}

static void
EmitPair(FILE *f, const char *name, const Buf *a, const Buf *b)
{
	fprintf(f, "%s\t", name);
	for (size_t i = 0; i < a->len; i++)
		fprintf(f, "%02x", a->d[i]);
	fputc('\t', f);
	for (size_t i = 0; i < b->len; i++)
		fprintf(f, "%02x", b->d[i]);
	fputc('\n', f);
}

/* ---- main ---- */

static int	passed = 0,
			failed = 0;

static void
Check(int ok, const char *what)
{
	printf("%s %s\n", ok ? "ok   " : "FAIL ", what);
	if (ok)
		passed++;
	else
		failed++;
}

int
main(int argc, char **argv)
{
	int			argi = 1;
	int			seeds_ok = 1;
	Buf			files[64];
	const char *fnames[64];
	int			nfiles = 0;
	DltCheckHooks hooks = {NULL, Utf8Ok, NULL, NULL};
	DltCheckResult r;

	if (argc > 2 && strcmp(argv[1], "--pairs") == 0)
	{
		emit_dir = argv[2];
		argi = 3;
		mkdir(emit_dir, 0755);
	}
	else if (argc > 2 && strcmp(argv[1], "--emit") == 0)
	{
		char		path[4096];

		emit_dir = argv[2];
		argi = 3;
		snprintf(path, sizeof(path), "%s/copy", emit_dir);
		mkdir(emit_dir, 0755);
		mkdir(path, 0755);
		snprintf(path, sizeof(path), "%s/mutants.tsv", emit_dir);
		emit_tsv = fopen(path, "w");
		if (!emit_tsv)
		{
			perror(path);
			return 2;
		}
	}
	for (; argi < argc && nfiles < 64; argi++)
	{
		const char *slash = strrchr(argv[argi], '/');

		files[nfiles] = ReadHexFile(argv[argi]);
		fnames[nfiles++] = slash ? slash + 1 : argv[argi];
	}

	Check(DltCrc32c("123456789", 9) == 0xE3069283u, "CRC-32C of \"123456789\" is E3069283");

	/* every seed passes */
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
	{
		Buf			b = BuildSeed(&specs[i]);

		if (DltModelCheck(b.d, b.len, &hooks, NULL, &r) != DLT_CHECK_OK)
		{
			seeds_ok = 0;
			fprintf(stderr, "seed %s refused: %s\n", specs[i].name, r.detail);
		}
		free(b.d);
	}
	for (int i = 0; i < nfiles; i++)
		if (DltModelCheck(files[i].d, files[i].len, &hooks, NULL, &r) != DLT_CHECK_OK)
		{
			seeds_ok = 0;
			fprintf(stderr, "seed %s refused: %s\n", fnames[i], r.detail);
		}
	Check(seeds_ok, "every seed (built here and from files) passes the check");

	/* the mutants */
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
	{
		Buf			b = BuildSeed(&specs[i]);

		emit_this_seed = 0;
		FuzzSeed(&b, specs[i].name);
		free(b.d);
	}
	for (int i = 0; i < nfiles; i++)
	{
		emit_this_seed = 1;
		FuzzSeed(&files[i], fnames[i]);
	}

	printf("mutants: %ld, accepted: %ld\n", st.mutants, st.accepted);
	printf("%-14s %9s %9s\n", "check", "reached", "stopped");
	for (int s = 0; s < DLT_STAGE_COUNT; s++)
		printf("%-14s %9ld %9ld\n", DltCheckStageNames[s], st.reached[s], st.stopped[s]);
	printf("%-14s %9ld\n", "(passed all)", st.accepted);
	Check(st.past_header * 2 >= st.mutants, "at least half of the mutants get past the header checks");
	{
		int			all = 1;

		for (int s = 0; s < DLT_STAGE_COUNT; s++)
			if (st.stopped[s] == 0)
				all = 0;
		Check(all, "every check stops some mutant");
	}
	Check(st.accepted > 0, "some mutants are valid models");
	Check(consume_failures == 0, "every accepted mutant is consumed safely (copies, classes, forward pass)");
	Check(st.bad_message == 0, "every rejection has a message in PostgreSQL's style");

	/* CRC collisions between different models (for the in-server combine test) */
	{
		Buf			a = BuildSeed(&specs[0]);	/* 3-class classifier */
		Buf			b = BuildSeed(&specs[6]);	/* regression */
		int			ok = ForgeCrc(&b, CrcOf(&a)) &&
			DltModelCheck(b.d, b.len, &hooks, NULL, &r) == DLT_CHECK_OK &&
			CrcOf(&a) == CrcOf(&b);

		Check(ok, "a regression model forged to a classifier's CRC passes the check");
		free(a.d);
		free(b.d);
	}
	if (emit_dir)
	{
		char		path[4096];
		FILE	   *pf;

		if (emit_tsv)
			fclose(emit_tsv);
		snprintf(path, sizeof(path), "%s/pairs.tsv", emit_dir);
		pf = fopen(path, "w");
		/* every ordered pair of file seeds of different bytes, B forged to A's CRC */
		for (int i = 0; i < nfiles; i++)
			for (int j = 0; j < nfiles; j++)
			{
				Buf			b = {0};
				char		name[300];

				if (i == j)
					continue;
				BufPut(&b, files[j].d, files[j].len);
				if (ForgeCrc(&b, CrcOf(&files[i])) &&
					DltModelCheck(b.d, b.len, &hooks, NULL, &r) == DLT_CHECK_OK)
				{
					snprintf(name, sizeof(name), "%s+%s", fnames[i], fnames[j]);
					EmitPair(pf, name, &files[i], &b);
				}
				free(b.d);
			}
		fclose(pf);
	}
	for (int i = 0; i < nfiles; i++)
		free(files[i].d);
	printf("fuzz: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
