/*
 * materialize.c — frozen layers computed once: materialized features.
 *
 * A member that warm-starts with "freeze": N trains only the layers above
 * its model's first N; those N never change, so their outputs for a row are
 * the same every epoch and for every member whose first N layers and
 * normalization are the same bytes.  Instead of running them every step
 * for every such member, the engine can compute them once per row (the
 * features, H = dims[N] floats a row) and train the members' heads from a
 * derived row source whose rows are those features (the source's
 * materialize operation, rowsource.h): the same rows, validation split,
 * canonical order and shuffles, only the features differ.  Each member
 * keeps its whole network (model, optimizer state and checkpoints keep the
 * full layout) and steps it from layer N (the device's net_freeze with
 * from_features).
 *
 * Materializing never changes a model: the features are computed by the
 * device's net_forward_to, with the products a training step computes
 * (exact GEMMs: each output element one FMA chain in index order, so a
 * row's bits do not depend on the batch it is in or the thread cut; the
 * activations are element-wise), from rows gathered and standardized as a
 * stream gathers them (element-wise too).  Test "frozen" checks it, byte
 * for byte.
 *
 * When.  dltrain.materialize: off never; on whenever the source offers it
 * (the row cache in memory; not a spilled cache, not fit()'s table reads)
 * and the features fit the budget (an error if not); auto as on when it
 * pays: the frozen forward of a row would run more than once (the group's
 * epochs summed over its members exceed 1), the flops saved are at least
 * 8 times the extra bytes gathered when the features are wider than the
 * rows, and the features take at most half of what is left of the call's
 * memory budget (the members' networks come next).
 *
 * Memory.  The features and the frozen network that computes them live in
 * the training's memory context (an error or a cancel frees them); the
 * derived source's close frees the features on the normal path.
 */
#include "postgres.h"

#include "utils/guc.h"

#include "blas.h"
#include "budget.h"
#include "interrupt.h"
#include "materialize.h"

int			dltrain_materialize = DLT_MATERIALIZE_AUTO;

/* rows per batch of the frozen forward (more than one: the exact GEMMs) */
#define MAT_BATCH 512

typedef struct MapArg
{
	const dlk_device *dev;
	dlk_dnet   *net;			/* the warm model's network, inference */
	int			layers;
} MapArg;

static void
MapRows(void *arg, DltBatch *in, int n, float *out)
{
	MapArg	   *a = arg;
	dlk_status	st = a->dev->net_forward_to(a->net, in->kb, n, a->layers, out);

	if (st != DLK_OK)
		DltDeviceFailed(st, "the frozen layers' outputs");
}

/* Do members j and k freeze the same bytes (layers, weights, normalization)? */
static bool
SameBase(const DltOptions *a, const DltOptions *b, int D)
{
	const DltModel *u = a->warm;
	const DltModel *v = b->warm;
	int			N = a->freeze;
	size_t		off = 0;

	if (N != b->freeze || u->arch.act != v->arch.act || u->normalized != v->normalized)
		return false;
	for (int l = 0; l <= N; l++)
		if (u->arch.dims[l] != v->arch.dims[l])
			return false;
	for (int l = 0; l < N; l++)
		off += (size_t) u->arch.dims[l + 1] * (u->arch.dims[l] + 1);
	if (memcmp(u->params, v->params, sizeof(float) * off) != 0)
		return false;
	return !u->normalized ||
		(memcmp(u->mean, v->mean, sizeof(double) * D) == 0 &&
		 memcmp(u->scale, v->scale, sizeof(double) * D) == 0);
}

/* Does materializing pay for the group (auto)? */
static bool
Pays(const DltRowSource *src, const DltOptions *o, double runs, Size bytes)
{
	const dlk_arch *a = &o->warm->arch;
	double		flops = 0;
	double		extra = Max(0, a->dims[o->freeze] - src->D) * 4.0 * runs;
	Size		budget = DltBudgetBytes();
	Size		held = DltBudgetHeld(src->root);

	for (int l = 0; l < o->freeze; l++)
		flops += 2.0 * a->dims[l] * a->dims[l + 1];
	return runs > 1 && (runs - 1) * flops >= 8 * extra &&
		held < budget && bytes <= (budget - held) / 2;
}

/* The features of one group of members, whose first is opts[k]. */
static DltRowSource *
Materialize(DltRowSource *src, const DltOptions *o)
{
	const DltModel *w = o->warm;
	const dlk_device *dev = src->device;
	dlk_allocator al = DltDeviceAllocator();
	MapArg		arg = {dev, NULL, o->freeze};
	float	   *fm = NULL;
	float	   *fs = NULL;
	size_t		nb = 0;
	int			D = src->D;
	dlk_status	st;
	DltRowSource *d;

	st = dev->net_bytes(&w->arch, MAT_BATCH, NULL, &nb);
	if (st != DLK_OK)
		DltDeviceFailed(st, "the frozen layers' outputs");
	DltBudgetCheck(src->root, nb, "the frozen layers' network");
	if ((st = dev->net_bind_infer(&al, &w->arch, MAT_BATCH, w->params, &arg.net)) != DLK_OK)
		DltDeviceFailed(st, "the frozen layers' outputs");
	if (w->normalized)
	{
		/* as a warm-started stream standardizes (engine.c) */
		fm = palloc(sizeof(float) * D);
		fs = palloc(sizeof(float) * D);
		for (int i = 0; i < D; i++)
		{
			fm[i] = (float) w->mean[i];
			fs[i] = (float) w->scale[i];
		}
	}
	d = src->ops->materialize(src, fm, fs, w->arch.dims[o->freeze], MAT_BATCH, MapRows, &arg);
	dev->net_free(arg.net);
	return d;
}

DltRowSource **
DltMaterialize(DltRowSource *src, const DltOptions *opts, int K)
{
	DltRowSource **ms = palloc(sizeof(DltRowSource *) * K);
	bool	   *done = palloc0(sizeof(bool) * K);

	for (int k = 0; k < K; k++)
		ms[k] = src;
	if (dltrain_materialize == DLT_MATERIALIZE_OFF || src->ops->materialize == NULL)
		return ms;
	for (int k = 0; k < K; k++)
	{
		const DltOptions *o = &opts[k];
		double		runs = 0;
		int			members = 0;
		int			H;
		Size		bytes;
		DltRowSource *d;

		if (done[k] || o->freeze == 0 || o->epochs == 0)
			continue;
		for (int j = k; j < K; j++)
			if (!done[j] && opts[j].freeze > 0 && opts[j].epochs > 0 &&
				SameBase(o, &opts[j], src->D))
			{
				runs += opts[j].epochs;
				members++;
				done[j] = true;
			}
		H = o->warm->arch.dims[o->freeze];
		bytes = mul_size(mul_size(Max(src->n_rows, 1), H), sizeof(float));
		if (dltrain_materialize == DLT_MATERIALIZE_AUTO && !Pays(src, o, runs, bytes))
			continue;
		DltBudgetCheck(src->root, bytes,
					   psprintf("the outputs of %d frozen layers for %lld rows",
								o->freeze, (long long) src->n_rows));
		d = Materialize(src, o);
		ereport(DEBUG1,
				(errmsg_internal("dltrain: materialized the outputs of %d frozen layers (%lld rows x %d) for %d configurations",
								 o->freeze, (long long) src->n_rows, H, members)));
		for (int j = k; j < K; j++)
			if (opts[j].freeze > 0 && opts[j].epochs > 0 && SameBase(o, &opts[j], src->D))
				ms[j] = d;
	}
	pfree(done);
	return ms;
}

void
DltMaterializeClose(DltRowSource **ms, int K, DltRowSource *src)
{
	for (int k = 0; k < K; k++)
	{
		DltRowSource *d = ms[k];

		if (d == src)
			continue;
		d->ops->close(d);
		for (int j = k; j < K; j++)
			if (ms[j] == d)
				ms[j] = src;
	}
}

void
DltMemberFreeze(DltTrainer *t, int frozen, bool from_features)
{
	dlk_status	st = t->dev->net_freeze(t->net, frozen, from_features ? 1 : 0);

	if (st != DLK_OK)
		elog(ERROR, "dltrain: could not freeze %d layers: %s", frozen, dlk_status_string(st));
}

void
DltMaterializeInit(void)
{
	static const struct config_enum_entry materialize_options[] = {
		{"off", DLT_MATERIALIZE_OFF, false},
		{"auto", DLT_MATERIALIZE_AUTO, false},
		{"on", DLT_MATERIALIZE_ON, false},
		{"false", DLT_MATERIALIZE_OFF, true},
		{"true", DLT_MATERIALIZE_ON, true},
		{NULL, 0, false}
	};

	DefineCustomEnumVariable("dltrain.materialize",
							 "Computes the outputs of frozen layers once per row and trains the layers above from them.",
							 "auto materializes when the frozen layers would run more than once per row and the outputs fit half of what is left of the memory budget; on whenever the rows are in memory; off never. The models are the same bytes in every case.",
							 &dltrain_materialize,
							 DLT_MATERIALIZE_AUTO,
							 materialize_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
}
