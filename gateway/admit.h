/* Admission of WebSocket upgrades, in the two places lws offers:
 * - HTTP_CONFIRM_UPGRADE, while the request can still get an HTTP answer:
 *   the handshake's key and version (ws6455.h), refused with 400 or 426, then
 *   the Origin check (origin.h), refused with 403;
 * - FILTER_PROTOCOL_CONNECTION, once lws has bound the connection's storage:
 *   the path, the drain, and the slots of --max-connections (node-wide) and
 *   --max-connections-per-ip (per TCP peer address), taken atomically at the
 *   upgrade itself so concurrent upgrades on several workers cannot overshoot.
 *   The Origin is checked again there for WebSocket over HTTP/2, which lws
 *   takes past HTTP_CONFIRM_UPGRADE. lws drops a connection refused at FILTER
 *   without an answer.
 * Refusals are counted into the calling worker's own refused[GW_REFUSE__COUNT]
 * counters. Any worker thread. */
#ifndef GW_ADMIT_H
#define GW_ADMIT_H

#include <stdbool.h>

#include <libwebsockets.h>

#include "ipcount.h"
#include "metrics.h"
#include "node.h"

/* The slots one upgraded connection holds, from FILTER to WSI_DESTROY. */
struct gw_admit_slot {
    bool node; /* one of node->connections */
    bool peer; /* one of key's slots in node->peers */
    struct gw_ipcount_key key; /* the peer address, kept: getpeername fails after a reset */
};

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE; upgrade is the callback's `in`. Returns
 * what the callback must return: 0 to let the upgrade go on, 1 after writing
 * a 400, 426 or 403 (lws then ends the transaction), -1 when even that failed. */
int gw_admit_confirm(const struct gw_node *node, struct lws *wsi, const char *upgrade, gw_stat *refused);

/* LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION. Returns 0 with the slots taken in
 * *slot (the caller holds them until the wsi is destroyed), or -1 with
 * nothing taken. */
int gw_admit_upgrade(struct gw_node *node, struct lws *wsi, bool draining, struct gw_admit_slot *slot,
                     gw_stat *refused);

/* Gives back what *slot holds and clears it; safe to call more than once. */
void gw_admit_release(struct gw_node *node, struct gw_admit_slot *slot);

#endif
