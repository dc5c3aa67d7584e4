EXTENSION = dltrain
EXTVERSION = 0.2.0

MODULE_big = dltrain
OBJS = \
	src/dltrain.o \
	src/version.o \
	src/interrupt.o \
	src/blas.o \
	src/budget.o \
	src/resource.o \
	src/options.o \
	src/jsonutil.o \
	src/feature_array.o \
	src/labels.o \
	src/model.o \
	src/model_check.o \
	src/progress.o \
	src/relation.o \
	src/merge.o \
	src/trainer.o \
	src/score.o \
	src/cache.o \
	src/rows.o \
	src/order.o \
	src/stats.o \
	src/minibatch.o \
	src/source_cache.o \
	src/source_table.o \
	src/source_test.o \
	src/continuing.o \
	src/materialize.o \
	src/engine.o \
	src/train_agg.o \
	src/newrows.o \
	src/fit.o \
	src/checkpoint_worker.o \
	src/retrain.o \
	src/grid.o \
	src/predict.o \
	src/predict_batch.o \
	src/evaluate.o \
	src/export.o \
	src/planner.o \
	src/block_shuffle.o \
	src/testing.o \
	src/kernels/dlk_net.o \
	src/kernels/dlk_rng.o \
	src/kernels/dlk_dense.o \
	src/kernels/dlk_act.o \
	src/kernels/dlk_loss.o \
	src/kernels/dlk_optim.o \
	src/kernels/dlk_fused.o \
	src/kernels/dlk_rows.o \
	src/kernels/dlk_device_cpu.o \
	src/kernels/dlk_blas.o \
	src/kernels/dlk_gemm.o \
	src/kernels/dlk_pool.o

# sql/dltrain.sql is the full script of the version being built (copied to
# sql/dltrain--$(EXTVERSION).sql).  Released versions stay frozen in sql/ and
# are installed with every update script, so that a database created by any of
# them reaches this one through ALTER EXTENSION dltrain UPDATE (README,
# "Upgrading"; test/sh/upgrade.sh).
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = \
	sql/$(EXTENSION)--0.1.0.sql \
	sql/$(EXTENSION)--0.1.0--0.2.0.sql

# pg_regress reads sql/ and expected/ under --inputdir.  Tests run in
# installcheck mode against the throwaway cluster (scripts/cluster.sh).
REGRESS = train errors model_io guc block_shuffle inference progress spill fit catalog select cancel abort_paths budget history row_source holdout device types scoring checkpoint fpmode exact retrain frozen drop
REGRESS_OPTS = --inputdir=test/regress --outputdir=test/regress/out --load-extension=$(EXTENSION)

PG_CPPFLAGS = -DDLTRAIN_VERSION='"$(EXTVERSION)"'
# isolation specs (pg_isolation_regress, after pg_regress in installcheck):
# cancel at each phase, reached through dltrain.test_wait_point
ISOLATION = cancel_caching cancel_preparing cancel_training cancel_export cancel_predict_batch checkpoint_resume
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=test/isolation/out --load-extension=$(EXTENSION)

PG_CFLAGS = -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK = -ldl -lm -lpthread

# OpenBLAS is opened at run time (dlopen) by the first training in a backend,
# never at load time: see src/kernels/dlk.h.  The build only announces it.
OPENBLAS_SO := $(firstword $(wildcard /usr/lib/x86_64-linux-gnu/libopenblas.so.0 /usr/lib/*/libopenblas.so.0 /usr/lib64/libopenblas.so.0 /usr/lib/libopenblas.so.0))
ifeq ($(OPENBLAS_SO),)
$(info dltrain: OpenBLAS not found (training will fail until libopenblas0 is installed))
else
$(info dltrain: OpenBLAS found: $(OPENBLAS_SO))
endif
NVCC := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifeq ($(NVCC),)
$(info dltrain: nvcc not found (CUDA backend not built))
else
$(info dltrain: nvcc found: $(NVCC) (CUDA backend not yet part of this version))
endif

EXTRA_CLEAN = sql/$(EXTENSION)--$(EXTVERSION).sql test/regress/out test/isolation/out

# no JIT bitcode: it needs clang, which a fresh machine may lack
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql
	cp $< $@

.PHONY: kernel-check fuzz-check
kernel-check:
	$(MAKE) -C test/kernels check

# the model validator (src/model_check.c) fuzzed under ASan/UBSan, no server
fuzz-check:
	$(MAKE) -C test/fuzz check

# the kernels are hot loops: let the compiler vectorize them (no float result changes)
$(filter src/kernels/%.o,$(OBJS)): CFLAGS += -O3 -fno-math-errno

# every object depends on the headers (PGXS tracks no header dependencies)
$(OBJS): $(wildcard src/*.h src/kernels/*.h)
