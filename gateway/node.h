/* What every thread of one node may see: the read-only config and access
 * rules, the drain flag, the connection counts (node-wide and per peer
 * address), the counters for /metrics and the bus, which main wires in as
 * callbacks so the workers never name the bus. Built by main before any
 * thread starts and freed after all have stopped. */
#ifndef GW_NODE_H
#define GW_NODE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "access.h"
#include "apikey.h"
#include "channel.h"
#include "config.h"
#include "ipcount.h"
#include "metrics.h"

/* The bus as the workers see it. Any thread; names are copied. */
struct gw_node_bus_ops {
    /* Publishes and new subscriptions can succeed now. */
    bool (*ready)(void *bus);
    /* Worker `worker` wants / no longer wants channel name (posted only on its
     * own 0->1 and 1->0 transitions). */
    void (*subscribe)(void *bus, int worker, const char *name, size_t len, uint32_t gen);
    void (*unsubscribe)(void *bus, int worker, const char *name, size_t len);
    /* Publishes; takes payload and returns true (the result comes back to
     * the worker's inbox), or false when the bus is full (payload kept). */
    bool (*publish)(void *bus, int worker, uint64_t session_id, bool has_id, int64_t id, const char *name,
                    size_t len, char *payload, size_t payload_len);
    /* One page of a recovery (bus.h gw_bus_post_recover); it comes back
     * to the worker's inbox tagged seq. */
    void (*recover)(void *bus, int worker, uint64_t session_id, uint32_t seq, const char *name, size_t len,
                    const struct gw_position *since, uint64_t target);
    /* The last cluster roster (gw_bus_cluster): malloc'd JSON. */
    char *(*cluster)(void *bus, size_t *len);
    /* A history request (since NULL: the latest); the reply frame comes back. */
    void (*history)(void *bus, int worker, uint64_t session_id, bool has_id, int64_t id, const char *name,
                    size_t len, const struct gw_position *since, int limit);
};

struct gw_node {
    const struct gw_config *cfg;
    const struct gw_access *access; /* keys and anonymous rights */
    const struct gw_apikeys *api_keys; /* from --api-key-file, owned by main; NULL = API off */
    const struct gw_node_bus_ops *bus_ops;
    void *bus;
    const struct gw_bus_stats *bus_stats;
    struct gw_worker_stats **worker_stats; /* nworkers entries */
    int nworkers;
    atomic_bool draining; /* set once by main on SIGTERM/SIGINT */
    atomic_int connections; /* WebSocket slots taken, all workers: --max-connections */
    struct gw_ipcount peers; /* slots per peer address, all workers: --max-connections-per-ip */
    /* Plain HTTP connections (intake.h): --max-http-connections and -per-ip. */
    atomic_int http_connections;
    struct gw_ipcount http_peers;
};

static inline bool gw_node_draining(const struct gw_node *node)
{
    return atomic_load(&((struct gw_node *)node)->draining);
}

/* Ready = Redis link proven live (or standalone) and not draining. Any thread. */
static inline bool gw_node_ready(const struct gw_node *node)
{
    return !gw_node_draining(node) && node->bus_ops->ready(node->bus);
}

/* The one gate in front of every publish, a client's or the HTTP API's: the
 * channel must not be one of the node's own (GW_CHANNEL_RESERVED, reachable
 * with an empty --channel-prefix: a forged heartbeat would fake liveness),
 * the payload must fit --max-message-bytes (every node would drop a larger
 * one unseen) and the node must be ready. Returns GW_ERR_NONE with payload moved
 * to the bus (the result comes back to the worker's inbox under
 * session_id), or GW_ERR_FORBIDDEN / GW_ERR_MESSAGE_TOO_LARGE / GW_ERR_UNAVAILABLE with payload
 * still the caller's. Worker thread. */
static inline enum gw_err gw_node_publish(const struct gw_node *node, int worker, uint64_t session_id, bool has_id,
                                          int64_t id, const char *channel, size_t channel_len, char *payload,
                                          size_t payload_len)
{
    const char *prefix = node->cfg->channel_prefix;
    if (gw_channel_reserved(prefix, strlen(prefix), channel, channel_len))
        return GW_ERR_FORBIDDEN;
    if (payload_len > node->cfg->max_message_bytes)
        return GW_ERR_MESSAGE_TOO_LARGE;
    if (!gw_node_ready(node))
        return GW_ERR_UNAVAILABLE;
    if (!node->bus_ops->publish(node->bus, worker, session_id, has_id, id, channel, channel_len, payload,
                                payload_len))
        return GW_ERR_UNAVAILABLE;
    return GW_ERR_NONE;
}

#endif
