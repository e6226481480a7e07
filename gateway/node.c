/* The questions asked of the node as a whole: drain, readiness and the
 * publish gate. */
#include "node.h"

#include <string.h>

#include "bus.h"
#include "channel.h"

bool gw_node_draining(const struct gw_node *node)
{
    return atomic_load(&((struct gw_node *)node)->draining);
}

bool gw_node_ready(const struct gw_node *node)
{
    return !gw_node_draining(node) && gw_bus_ready(node->bus);
}

enum gw_err gw_node_publish_once(const struct gw_node *node, int worker, uint64_t session_id, bool has_id,
                                 int64_t id, const char *channel, size_t channel_len, char *payload,
                                 size_t payload_len, const char *key, size_t klen)
{
    const char *prefix = node->cfg->channel_prefix;
    bool posted;

    if (gw_channel_reserved(prefix, strlen(prefix), channel, channel_len))
        return GW_ERR_FORBIDDEN;
    if (payload_len > node->cfg->max_message_bytes)
        return GW_ERR_MESSAGE_TOO_LARGE;
    if (!gw_node_ready(node))
        return GW_ERR_UNAVAILABLE;
    posted = key ? gw_bus_post_publish_once(node->bus, worker, session_id, channel, channel_len, payload, payload_len,
                                            key, klen)
                 : gw_bus_post_publish(node->bus, worker, session_id, has_id, id, channel, channel_len, payload,
                                       payload_len);
    return posted ? GW_ERR_NONE : GW_ERR_UNAVAILABLE;
}

enum gw_err gw_node_publish(const struct gw_node *node, int worker, uint64_t session_id, bool has_id, int64_t id,
                            const char *channel, size_t channel_len, char *payload, size_t payload_len)
{
    return gw_node_publish_once(node, worker, session_id, has_id, id, channel, channel_len, payload, payload_len,
                                NULL, 0);
}
