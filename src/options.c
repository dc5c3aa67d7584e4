/*
 * options.c — the jsonb options of a training.
 *
 * Options arrive as one jsonb object.  Every key is checked: an unknown key is
 * an error that lists the valid ones, and each value must have the right JSON
 * type and range.  The result is a DltOptions with every default resolved, so
 * the model stores (and describe() shows) exactly what training used.
 */
#include "postgres.h"

#include <math.h>

#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "jsonutil.h"
#include "model.h"
#include "model_check.h"
#include "options.h"
#include "relation.h"

#define VALID_OPTIONS "hidden, activation, optimizer, lr, momentum, weight_decay, batch_size, epochs, seed, shuffle, normalize, task, init, buffer_rows, validation_fraction, checkpoint, resume, warm_start, freeze"
#define AGG_OPTIONS ", early_stopping"
#define FIT_OPTIONS ", pages_per_range, checkpoint_every, checkpoint_minutes, checkpoint_keep, checkpoint_durable"

/* the limits live in model_check.h: the model check repeats them */
#define MAX_BATCH_SIZE DLT_MAX_BATCH_SIZE
#define MAX_EPOCHS DLT_MAX_EPOCHS

void
DltOptionsDefault(DltOptions *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->n_hidden = 1;
	opts->hidden[0] = 64;
	opts->activation = DLK_ACT_RELU;
	opts->optimizer = DLK_OPT_ADAM;
	opts->lr = 0.001;
	opts->momentum = 0.9;
	opts->weight_decay = 0.0;
	opts->batch_size = 128;
	opts->epochs = 10;
	opts->seed = 42;
	opts->shuffle = true;
	opts->normalize = true;
	opts->task = DLT_TASK_AUTO;
	opts->validation_fraction = 0;
	opts->buffer_rows = 0;		/* auto: the budget (aggregate), 65536 (fit) */
	opts->checkpoint_keep = 2;
	opts->pages_per_range = 32;
}

const char *
DltActName(dlk_act act)
{
	switch (act)
	{
		case DLK_ACT_RELU:
			return "relu";
		case DLK_ACT_TANH:
			return "tanh";
		case DLK_ACT_SIGMOID:
			return "sigmoid";
		case DLK_ACT_IDENTITY:
			return "identity";
	}
	return "?";
}

const char *
DltOptimizerName(dlk_opt_kind kind)
{
	switch (kind)
	{
		case DLK_OPT_SGD:
			return "sgd";
		case DLK_OPT_ADAM:
			return "adam";
		case DLK_OPT_ADAMW:
			return "adamw";
	}
	return "?";
}

const char *
DltTaskName(DltTask task)
{
	switch (task)
	{
		case DLT_TASK_AUTO:
			return "auto";
		case DLT_TASK_CLASSIFICATION:
			return "classification";
		case DLT_TASK_REGRESSION:
			return "regression";
	}
	return "?";
}

/* An option's value is out of its range (or not one of its names). */
static void
OptionTypeError(const char *key, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" must be %s", key, what)));
}

/* The JSON type of v, as an error message names it: "a string", "null". */
static const char *
JsonTypeName(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvArray:
			return "an array";
		case jbvObject:
			return "an object";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "an array" : "an object";
		default:
			return "another JSON value";
	}
}

/*
 * An option's value has the wrong JSON type: the error says what was given,
 * e.g. option "lr" must be a number, not a string.
 */
static void
OptionWrongType(const char *key, const char *expected, JsonbValue *v)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" must be %s, not %s", key, expected, JsonTypeName(v))));
}

/* A JSON number as a finite double, or an error naming the option. */
static double
OptionNumber(const char *key, JsonbValue *v, const char *what)
{
	double		d;

	if (v->type != jbvNumeric)
		OptionWrongType(key, "a number", v);
	d = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
										   NumericGetDatum(v->val.numeric)));
	if (!isfinite(d))
		OptionTypeError(key, what);
	return d;
}

/* A JSON integer within [lo, hi], or an error naming the option. */
static int64
OptionInteger(const char *key, JsonbValue *v, int64 lo, int64 hi, const char *what)
{
	double		d;

	if (v->type != jbvNumeric)
		OptionWrongType(key, "an integer", v);
	d = OptionNumber(key, v, what);

	if (d != floor(d) || d < (double) lo || d > (double) hi)
		OptionTypeError(key, what);
	return (int64) d;
}

static bool
OptionBool(const char *key, JsonbValue *v)
{
	if (v->type != jbvBool)
		OptionWrongType(key, "a boolean", v);
	return v->val.boolean;
}

/* Matches a JSON string against names[]; returns the index. */
static int
OptionEnum(const char *key, JsonbValue *v, const char *const *names, int n,
		   const char *what)
{
	if (v->type != jbvString)
		OptionWrongType(key, what, v);
	else
	{
		for (int i = 0; i < n; i++)
		{
			if (strlen(names[i]) == (size_t) v->val.string.len &&
				memcmp(names[i], v->val.string.val, v->val.string.len) == 0)
				return i;
		}
	}
	OptionTypeError(key, what);
	return -1;					/* keep compiler quiet */
}

static void
ParseHidden(DltOptions *opts, JsonbValue *v)
{
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken tok;
	int			n = 0;
	const char *what = "an array of positive integer layer widths";

	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data) ||
		JsonContainerIsScalar(v->val.binary.data))
		OptionWrongType("hidden", what, v);

	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		int64		w;

		if (tok != WJB_ELEM)
			continue;
		if (n >= DLK_MAX_LAYERS - 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"hidden\" has more than %d layers",
							DLK_MAX_LAYERS - 1)));
		if (elem.type != jbvNumeric)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("layer widths in option \"hidden\" must be integers, not %s",
							JsonTypeName(&elem))));
		w = OptionInteger("hidden", &elem, PG_INT64_MIN, PG_INT64_MAX, what);
		if (w <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("layer width %lld in option \"hidden\" must be positive",
							(long long) w)));
		if (w > DLK_MAX_WIDTH)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("layer width %lld in option \"hidden\" exceeds the maximum of %d",
							(long long) w, DLK_MAX_WIDTH)));
		opts->hidden[n++] = (int) w;
	}
	opts->n_hidden = n;
}

/*
 * A run resumed by its catalog name is locked until the transaction ends
 * (an advisory lock on the role and the name), so that two sessions do not
 * continue it at once.
 */
static void
LockRun(const char *name)
{
	uint64		h = hash_bytes_extended((const unsigned char *) name, strlen(name),
										(uint64) GetUserId());
	/* the top bits mark the key as dltrain's resume locks */
	int64		key = (int64) ((h & UINT64CONST(0x0000FFFFFFFFFFFF)) | UINT64CONST(0x4C54000000000000));

	if (!DatumGetBool(DirectFunctionCall1(pg_try_advisory_xact_lock_int8, Int64GetDatum(key))))
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("run \"%s\" is being resumed by another session", name),
				 errhint("Wait for that training to end, then resume again.")));
}

/*
 * A model named by an option: a catalog name (the caller's newest model of
 * that name, as dltrain.latest_model finds it), or {"model": its text form}.
 */
static DltModel *
OptionModel(const char *key, JsonbValue *v)
{
	JsonbValue	mv;

	if (v->type == jbvString)
		return DltCatalogModel(pnstrdup(v->val.string.val, v->val.string.len));
	if (v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data) &&
		DltJsonbGet(v->val.binary.data, "model", &mv) != NULL && mv.type == jbvString)
		return ModelFromText(pnstrdup(mv.val.string.val, mv.val.string.len));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" must be a catalog model's name or {\"model\": a model's text form}, not %s",
					key, JsonTypeName(v)),
			 errhint("For a model value m: jsonb_build_object('%s', jsonb_build_object('model', m::text)).", key)));
	return NULL;				/* keep compiler quiet */
}

/*
 * Parses jb (NULL: all defaults) into opts.
 */
void
DltOptionsParse(DltOptions *opts, Jsonb *jb, bool fit)
{
	static const char *const acts[] = {"relu", "tanh", "sigmoid"};
	static const char *const optimizers[] = {"sgd", "adam", "adamw"};
	static const char *const tasks[] = {"auto", "classification", "regression"};
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		wd_given = false;

	DltOptionsDefault(opts);
	if (jb == NULL)
		return;

	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object"),
				 errhint("Valid options are: %s%s.", VALID_OPTIONS, fit ? FIT_OPTIONS : AGG_OPTIONS)));

	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);

		if (strcmp(key, "hidden") == 0)
		{
			ParseHidden(opts, &v);
			opts->hidden_given = true;
		}
		else if (strcmp(key, "activation") == 0)
		{
			opts->activation = (dlk_act) OptionEnum(key, &v, acts, 3,
													"one of \"relu\", \"tanh\", \"sigmoid\"");
			opts->activation_given = true;
		}
		else if (strcmp(key, "optimizer") == 0)
			opts->optimizer = (dlk_opt_kind) OptionEnum(key, &v, optimizers, 3,
														"one of \"sgd\", \"adam\", \"adamw\"");
		else if (strcmp(key, "task") == 0)
			opts->task = (DltTask) OptionEnum(key, &v, tasks, 3,
											  "one of \"auto\", \"classification\", \"regression\"");
		else if (strcmp(key, "lr") == 0)
		{
			opts->lr = OptionNumber(key, &v, "a positive number");
			if (opts->lr <= 0 || opts->lr > DLT_MAX_LR)
				OptionTypeError(key, "a positive number");
		}
		else if (strcmp(key, "momentum") == 0)
		{
			opts->momentum = OptionNumber(key, &v, "a number in [0, 1)");
			if (opts->momentum < 0 || opts->momentum >= 1)
				OptionTypeError(key, "a number in [0, 1)");
		}
		else if (strcmp(key, "weight_decay") == 0)
		{
			opts->weight_decay = OptionNumber(key, &v, "a non-negative number");
			if (opts->weight_decay < 0 || opts->weight_decay > DLT_MAX_WEIGHT_DECAY)
				OptionTypeError(key, "a non-negative number");
			wd_given = true;
		}
		else if (strcmp(key, "batch_size") == 0)
			opts->batch_size = (int) OptionInteger(key, &v, 1, MAX_BATCH_SIZE,
												   "an integer between 1 and 1048576");
		else if (strcmp(key, "epochs") == 0)
			opts->epochs = (int) OptionInteger(key, &v, 0, MAX_EPOCHS,
											   "an integer between 0 and 1000000");
		else if (strcmp(key, "seed") == 0)
			opts->seed = OptionInteger(key, &v, -DLT_MAX_SEED, DLT_MAX_SEED,
									   "an integer of magnitude at most 2^53");
		else if (strcmp(key, "shuffle") == 0)
			opts->shuffle = OptionBool(key, &v);
		else if (strcmp(key, "checkpoint") == 0)
			opts->checkpoint = OptionBool(key, &v);
		else if (strcmp(key, "resume") == 0)
		{
			opts->resume = OptionModel(key, &v);
			if (v.type == jbvString)
				LockRun(pnstrdup(v.val.string.val, v.val.string.len));
		}
		else if (strcmp(key, "warm_start") == 0)
			opts->warm = OptionModel(key, &v);
		else if (strcmp(key, "freeze") == 0)
			opts->freeze = (int) OptionInteger(key, &v, 1, DLK_MAX_LAYERS - 1,
											   "an integer between 1 and 15");
		else if (strcmp(key, "normalize") == 0)
			opts->normalize = OptionBool(key, &v);
		else if (strcmp(key, "validation_fraction") == 0)
		{
			opts->validation_fraction = OptionNumber(key, &v, "a number in [0, 0.9]");
			if (opts->validation_fraction < 0 || opts->validation_fraction > DLT_MAX_VALIDATION_FRACTION)
				OptionTypeError(key, "a number in [0, 0.9]");
		}
		else if (strcmp(key, "init") == 0)
		{
			static const char *const inits[] = {"he", "pytorch"};

			opts->init_pytorch = OptionEnum(key, &v, inits, 2, "one of \"he\", \"pytorch\"") == 1;
		}
		else if (strcmp(key, "buffer_rows") == 0)
			opts->buffer_rows = (int) OptionInteger(key, &v, 1, 100000000,
													"an integer between 1 and 100000000");
		else if (!fit && strcmp(key, "early_stopping") == 0)
			opts->early_stopping = (int) OptionInteger(key, &v, 0, MAX_EPOCHS,
													   "an integer between 0 and 1000000");
		else if (fit && strcmp(key, "pages_per_range") == 0)
			opts->pages_per_range = (int) OptionInteger(key, &v, 1, 1000000,
														"an integer between 1 and 1000000");
		else if (fit && strcmp(key, "checkpoint_every") == 0)
			opts->checkpoint_every = (int) OptionInteger(key, &v, 1, MAX_EPOCHS,
														 "an integer between 1 and 1000000");
		else if (fit && strcmp(key, "checkpoint_minutes") == 0)
		{
			opts->checkpoint_minutes = OptionNumber(key, &v, "a positive number");
			if (!(opts->checkpoint_minutes > 0 && opts->checkpoint_minutes <= 525600))
				OptionTypeError(key, "a positive number of minutes, at most a year");
		}
		else if (fit && strcmp(key, "checkpoint_keep") == 0)
			opts->checkpoint_keep = (int) OptionInteger(key, &v, 1, 1000,
														"an integer between 1 and 1000");
		else if (fit && strcmp(key, "checkpoint_durable") == 0)
			opts->checkpoint_durable = OptionBool(key, &v);
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown option \"%s\"", key),
					 errhint("Valid options are: %s%s.", VALID_OPTIONS, fit ? FIT_OPTIONS : AGG_OPTIONS)));
		pfree(key);
	}

	if (opts->early_stopping > 0 && opts->validation_fraction == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"early_stopping\" needs a \"validation_fraction\" above 0"),
				 errdetail("Early stopping watches the loss on held-out validation rows.")));

	/* AdamW without an explicit decay uses PyTorch's default */
	if (opts->optimizer == DLK_OPT_ADAMW && !wd_given)
		opts->weight_decay = 0.01;

	if (opts->resume && opts->warm)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options \"resume\" and \"warm_start\" cannot be combined"),
				 errdetail("\"resume\" continues a checkpoint's run on the same rows; \"warm_start\" starts a new run from a model's weights.")));

	/* frozen layers are a warm start's, and never all of them */
	if (opts->freeze > 0 && opts->warm == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"freeze\" needs \"warm_start\""),
				 errdetail("\"freeze\" keeps the first layers of the warm-started model as they are.")));
	if (opts->freeze > 0 && opts->freeze >= opts->warm->arch.n_layers)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"freeze\" must be less than the model's %d layers",
						opts->warm->arch.n_layers),
				 errdetail("\"freeze\" is %d; at least the output layer trains.", opts->freeze)));
	if (opts->freeze > 0 &&
		(opts->checkpoint || opts->checkpoint_every > 0 || opts->checkpoint_minutes > 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options \"freeze\" and \"checkpoint\" cannot be combined"),
				 errdetail("A checkpoint does not record frozen layers, so a resume could not continue the same run.")));
}

/* ---- the task ---- */

DltTask
DltResolveTaskNoError(DltTask asked, DltLabelKind kind)
{
	if (asked == DLT_TASK_AUTO)
		return kind == DLT_LABEL_FLOAT ? DLT_TASK_REGRESSION : DLT_TASK_CLASSIFICATION;
	if (asked == DLT_TASK_REGRESSION && kind == DLT_LABEL_TEXT)
		return DLT_TASK_AUTO;
	return asked;
}

DltTask
DltResolveTask(DltTask asked, DltLabelKind kind)
{
	DltTask		task = DltResolveTaskNoError(asked, kind);

	if (task == DLT_TASK_AUTO)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("text labels cannot be used for regression"),
				 errhint("Use \"task\": \"classification\", or a numeric label.")));
	return task;
}

bool
DltOptionsTask(Jsonb *jb, DltTask *task)
{
	JsonbValue	v;
	JsonbValue *t;

	*task = DLT_TASK_AUTO;
	if (jb == NULL)
		return true;
	if (!JB_ROOT_IS_OBJECT(jb))
		return false;
	t = DltJsonbGet(&jb->root, "task", &v);
	if (t == NULL)
		return true;
	if (t->type != jbvString)
		return false;
	if (t->val.string.len == 4 && strncmp(t->val.string.val, "auto", 4) == 0)
		*task = DLT_TASK_AUTO;
	else if (t->val.string.len == 14 && strncmp(t->val.string.val, "classification", 14) == 0)
		*task = DLT_TASK_CLASSIFICATION;
	else if (t->val.string.len == 10 && strncmp(t->val.string.val, "regression", 10) == 0)
		*task = DLT_TASK_REGRESSION;
	else
		return false;
	return true;
}
