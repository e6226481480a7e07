/* Admission of WebSocket upgrades: the path, the drain, and the node-wide
 * --max-connections slots, which are taken atomically at the upgrade itself
 * so concurrent upgrades on several workers cannot overshoot the limit. The
 * caller counts refusals. Any worker thread. */
#ifndef GW_ADMIT_H
#define GW_ADMIT_H

#include <stdbool.h>

#include <libwebsockets.h>

#include "metrics.h"
#include "node.h"

/* Decides whether the upgrade on wsi may proceed. On success takes one slot
 * of node->connections and sets *slot (the caller holds it until the wsi is
 * destroyed); otherwise returns false with the reason in *why. */
bool gw_admit_upgrade(struct gw_node *node, struct lws *wsi, bool draining, bool *slot,
                      enum gw_refuse_reason *why);

/* Gives back the slot taken by gw_admit_upgrade, if *slot; clears it. */
void gw_admit_release(struct gw_node *node, bool *slot);

#endif
