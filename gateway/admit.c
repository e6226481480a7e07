/* Upgrade admission and connection slots. */
#include "admit.h"

#include <string.h>

bool gw_admit_upgrade(struct gw_node *node, struct lws *wsi, bool draining, bool *slot,
                      enum gw_refuse_reason *why)
{
    int max = node->cfg->max_connections;
    char uri[16];

    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0 || strcmp(uri, "/ws") != 0) {
        *why = GW_REFUSE_PATH;
        return false;
    }
    if (draining) {
        *why = GW_REFUSE_DRAINING;
        return false;
    }
    /* Take first, then check: a check followed by a later increment lets
     * every worker see room for the same last slot. */
    if (atomic_fetch_add(&node->connections, 1) >= max && max > 0) {
        atomic_fetch_sub(&node->connections, 1);
        *why = GW_REFUSE_LIMIT;
        return false;
    }
    *slot = true;
    return true;
}

void gw_admit_release(struct gw_node *node, bool *slot)
{
    if (!*slot)
        return;
    *slot = false;
    atomic_fetch_sub(&node->connections, 1);
}
