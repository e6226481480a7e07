/* sweep: the many-channels scenario over a rising number of clients, each on its own
 * channel, measured at several fixed message rates per count. Runs on wsbench's thread. */
#ifndef WSBENCH_SWEEP_H
#define WSBENCH_SWEEP_H

#include "bench.h"

/* Turns --sweep into an ascending list of counts, resolving "max" from this process's
 * descriptor limit (raised to the hard limit), and sets o->conns to the largest. Call
 * before the descriptor limit is raised for o->conns. Dies when no count is left. */
void sweep_plan(struct bench *b);

/* Runs the sweep: connects the clients of each count on top of those already live,
 * then one phase per --rate. Emits one row per (count, rate). */
void sweep_run(struct bench *b);

#endif
