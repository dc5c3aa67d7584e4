/*
 * budget.h — one memory budget for everything a call holds (budget.c).
 */
#ifndef DLTRAIN_BUDGET_H
#define DLTRAIN_BUDGET_H

#include "postgres.h"

/* bytes of per-row indexes a training from an in-memory cache holds beside
 * its rows when it trains alone: class or target (4), content hash (8),
 * canonical order (4), one stream's order (4), and the sort's keys and their
 * radix buffer while it runs (32) */
#define DLT_ROW_INDEX_BYTES 52

extern int	dltrain_cache_mem_kb;
extern int	dltrain_max_cache_mem_kb;
extern int	dltrain_max_total_mem_kb;

/* The budget of one call in bytes: min(dltrain.cache_mem, dltrain.max_cache_mem). */
extern Size DltBudgetBytes(void);

/*
 * Before allocating `bytes` more under `root` (the memory context that holds
 * everything the call holds: the aggregate node's context, the SRF's
 * context): raises PROGRAM_LIMIT_EXCEEDED, naming what and both numbers, when
 * the call would then hold more than its budget, or when every dltrain call
 * of the cluster would then hold more than dltrain.max_total_mem together.
 */
extern void DltBudgetCheck(MemoryContext root, Size bytes, const char *what);
/* What the call holds now. */
extern Size DltBudgetHeld(MemoryContext root);
/* "64 kB", "1.5 MB": a size for people */
extern char *DltFormatBytes(Size bytes);

extern void DltBudgetInit(void);

#endif							/* DLTRAIN_BUDGET_H */
