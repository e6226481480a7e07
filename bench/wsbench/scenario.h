/* Scenario dispatch: runs the scenario named in b->o.scenario against the target. */
#ifndef WSBENCH_SCENARIO_H
#define WSBENCH_SCENARIO_H

#include "bench.h"

/* Returns 0, or -1 when the scenario name is unknown. Emits rows as it goes. */
int scenario_run(struct bench *b);

#endif
