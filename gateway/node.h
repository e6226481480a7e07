/* What every thread of one node may see: the read-only config, the bus, the
 * workers and the drain flag. Built by main before any thread starts and
 * freed after all have stopped. */
#ifndef GW_NODE_H
#define GW_NODE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"

struct gw_bus;
struct gw_worker;

struct gw_node {
    const struct gw_config *cfg;
    struct gw_bus *bus;
    struct gw_worker **workers;
    int nworkers;
    atomic_bool draining; /* set once by main on SIGTERM/SIGINT */
    atomic_int connections; /* open WebSocket sessions, all workers: --max-connections */
};

/* Ready = Redis link proven live (or standalone) and not draining. */
bool gw_node_ready(const struct gw_node *node);

#endif
