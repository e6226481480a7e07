/* What every thread of one node may see: the read-only config and access
 * rules, the drain flag, the connection counts (node-wide and per peer
 * address), the counters for /metrics and the bus; and the questions asked
 * of all of them together (ready? may this be published?). Built by main
 * before any thread starts and freed after all have stopped. */
#ifndef GW_NODE_H
#define GW_NODE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access.h"
#include "apikey.h"
#include "codec.h"
#include "config.h"
#include "ipcount.h"
#include "metrics.h"

struct gw_bus;

struct gw_node {
    const struct gw_config *cfg;
    const struct gw_access *access; /* keys and anonymous rights */
    const struct gw_apikeys *api_keys; /* from --api-key-file, owned by main; NULL = API off */
    struct gw_bus *bus; /* bus.h: its gw_bus_post_* calls are any thread's */
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

/* The one drain flag: true once main started the drain. Any thread. */
bool gw_node_draining(const struct gw_node *node);

/* The one readiness question, asked the same way by sessions, /readyz, the
 * admin entry, /metrics and the API: the Redis link is proven live (or the
 * node is standalone) and the node is not draining. Any thread. */
bool gw_node_ready(const struct gw_node *node);

/* The one gate in front of every publish, a client's or the HTTP API's: the
 * channel must not be one of the node's own (GW_CHANNEL_RESERVED, reachable
 * with an empty --channel-prefix: a forged heartbeat would fake liveness),
 * the payload must fit --max-message-bytes (every node would drop a larger
 * one unseen) and the node must be ready. Returns GW_ERR_NONE with payload moved
 * to the bus (the result comes back to worker's inbox under session_id), or
 * GW_ERR_FORBIDDEN / GW_ERR_MESSAGE_TOO_LARGE / GW_ERR_UNAVAILABLE with payload
 * still the caller's. Worker thread. */
enum gw_err gw_node_publish(const struct gw_node *node, int worker, uint64_t session_id, bool has_id, int64_t id,
                            const char *channel, size_t channel_len, char *payload, size_t payload_len);
/* As gw_node_publish, with an idempotency key (copied; NULL: none) for the
 * HTTP API: gw_bus_post_publish_once. */
enum gw_err gw_node_publish_once(const struct gw_node *node, int worker, uint64_t session_id, bool has_id,
                                 int64_t id, const char *channel, size_t channel_len, char *payload,
                                 size_t payload_len, const char *key, size_t klen);

#endif
