/*
 * planner_hook.h — the planner hook that merges train_mlp calls (planner.c).
 */
#ifndef DLTRAIN_PLANNER_HOOK_H
#define DLTRAIN_PLANNER_HOOK_H

extern void DltPlannerHookInstall(void);

#endif							/* DLTRAIN_PLANNER_HOOK_H */
