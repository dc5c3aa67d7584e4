/*
 * checkpoint_worker.h — a checkpoint row committed while the training
 * statement goes on (checkpoint_worker.c).
 */
#ifndef DLTRAIN_CHECKPOINT_WORKER_H
#define DLTRAIN_CHECKPOINT_WORKER_H

#include "postgres.h"

#include "relation.h"

/*
 * Stores row in dltrain.models and keeps the newest keep rows of its name
 * (the caller's own), in a transaction of its own that a short-lived
 * background worker commits, as the session user switched to the current
 * user and security context.  Returns true once it is committed; false,
 * with *why set, when no worker could run it (no free slot) or it failed.
 */
extern bool DltStoreCheckpoint(const DltCatalogRow *row, int keep, char **why);

#endif							/* DLTRAIN_CHECKPOINT_WORKER_H */
