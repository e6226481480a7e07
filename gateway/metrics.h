/* Counters and gauges for /metrics. Every field has exactly one writer
 * thread: the bus thread writes gw_bus_stats, each worker its own
 * gw_worker_stats. Writers use gw_stat_add() (a relaxed load+store, no locked
 * instruction, since nobody else writes); the scraper sums with relaxed loads.
 * So counting costs no cross-core traffic on the delivery path. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "jwt_reason.h"

typedef _Atomic uint64_t gw_stat;

static inline void gw_stat_add(gw_stat *s, int64_t delta)
{
    atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + (uint64_t)delta,
                          memory_order_relaxed);
}

static inline void gw_stat_set(gw_stat *s, uint64_t v)
{
    atomic_store_explicit(s, v, memory_order_relaxed);
}

static inline uint64_t gw_stat_get(const gw_stat *s)
{
    return atomic_load_explicit((gw_stat *)s, memory_order_relaxed);
}

enum gw_shed_reason { GW_SHED_SLOW_CONSUMER = 0, GW_SHED_IDLE_TIMEOUT, GW_SHED_API_DISCONNECT, GW_SHED__COUNT };
const char *gw_shed_reason_name(enum gw_shed_reason r);

/* Why a WebSocket upgrade was refused: not /ws, draining, --max-connections,
 * Origin not allowed (answered 403), --max-connections-per-ip. */
enum gw_refuse_reason {
    GW_REFUSE_PATH = 0,
    GW_REFUSE_DRAINING,
    GW_REFUSE_LIMIT,
    GW_REFUSE_ORIGIN,
    GW_REFUSE_PER_IP,
    GW_REFUSE_HANDSHAKE, /* no or malformed Sec-WebSocket-Key, a version other than 13 */
    GW_REFUSE__COUNT
};
const char *gw_refuse_reason_name(enum gw_refuse_reason r);

/* Why a connection was closed before lws saw it (intake.h): a request head
 * refused by common/httpreq (answered 400/414/431/505), a head or body not
 * in within --http-timeout, --max-http-connections, --max-http-connections-per-ip,
 * an accept that failed for lack of descriptors or memory (not a connection:
 * one count per failed accept4). */
enum gw_http_refuse {
    GW_HTTP_REFUSE_BAD_REQUEST = 0,
    GW_HTTP_REFUSE_TIMEOUT,
    GW_HTTP_REFUSE_LIMIT,
    GW_HTTP_REFUSE_PER_IP,
    GW_HTTP_REFUSE_ACCEPT_ERROR,
    GW_HTTP_REFUSE__COUNT
};
const char *gw_http_refuse_name(enum gw_http_refuse r);

/* Why a client failed to authenticate: the verifier's reasons, with the same
 * numbers as enum gw_jwt_reason (GW_JWT_OK unused), plus a client that sent
 * no valid token within --auth-timeout. */
#define GW_AUTH_FAIL_TIMEOUT (GW_JWT_REVOKED + 1)
#define GW_AUTH_FAIL__COUNT (GW_AUTH_FAIL_TIMEOUT + 1)
/* The HTTP statuses POST /api/publish answers with, in the order of
 * gw_worker_stats.api_requests (wsgate_api_requests_total{code}). */
#define GW_API_CODES 9
/* Index of status among them, or -1 when it is not one of them. */
int gw_api_code_index(unsigned int status);

/* Written only by one worker thread. Gauges wrap as uint64 (add -1). */
struct gw_worker_stats {
    gw_stat connections;
    gw_stat connections_accepted;
    gw_stat subscriptions;
    gw_stat messages_delivered; /* frames written to client sockets */
    gw_stat outq_bytes;
    gw_stat outq_messages;
    gw_stat shed[GW_SHED__COUNT];
    gw_stat upgrades_refused[GW_REFUSE__COUNT];
    gw_stat http_refused[GW_HTTP_REFUSE__COUNT];
    gw_stat http_connections; /* gauge: slots of intake.h held by this worker's connections */
    gw_stat client_errors[GW_ERR__COUNT];
    gw_stat auth_failures[GW_AUTH_FAIL__COUNT];
    gw_stat api_requests[GW_API_CODES];
};

/* The Redis link's states as /metrics names them
 * (wsgate_redis_link_state{state}); link.c's enum link_state follows this
 * order and takes its log names from here. */
#define GW_REDIS_LINK_STATES 7
extern const char *const gw_redis_link_state_names[GW_REDIS_LINK_STATES];
/* The link's connections by role (wsgate_redis_connection_ready{role}):
 * sentinel is the Sentinel watcher's (sentinel.h), 0 unless redis+sentinel://. */
enum gw_redis_role { GW_REDIS_ROLE_SUB = 0, GW_REDIS_ROLE_PUB, GW_REDIS_ROLE_SENTINEL, GW_REDIS_ROLE__COUNT };
extern const char *const gw_redis_role_names[GW_REDIS_ROLE__COUNT];

/* Cluster mode: masters with series of their own in /metrics
 * (wsgate_redis_master_*{master="<index>"}); more are counted in the link-wide ones.
 * A master keeps its index while it stays in the map; one that leaves frees it
 * (its port reads 0 and its series are not shown) for a master that comes. */
#define GW_REDIS_MASTERS_MAX 16
/* One master's link state (clink_int.h's enum cshard_state, in its order). */
#define GW_REDIS_MASTER_STATES 6
extern const char *const gw_redis_master_state_names[GW_REDIS_MASTER_STATES];

/* Written only by the bus thread. */
struct gw_bus_stats {
    gw_stat redis_connected; /* gauge 0/1 */
    gw_stat redis_link_state; /* gauge: index into gw_redis_link_state_names */
    gw_stat redis_conn_ready[GW_REDIS_ROLE__COUNT]; /* gauge 0/1: AUTH/SELECT answered, not failed */
    gw_stat redis_reconnects;
    gw_stat redis_master_switches; /* a resolution confirmed another master than the last (sentinel.c) */
    gw_stat redis_messages_received;
    gw_stat redis_messages_dropped_too_large;
    gw_stat channels; /* gauge: channels this node holds a Redis subscription for */
    gw_stat publishes_ok;
    gw_stat publishes_failed;
    gw_stat heartbeat_rtt_us; /* gauge: last heartbeat echo round trip */
    gw_stat redis_redirects; /* cluster mode: MOVED and ASK answers followed */
    /* Cluster mode, per master of the current map (index: GW_REDIS_MASTERS_MAX
     * says how it is kept; the port says which master; port 0: index unused). */
    gw_stat redis_masters; /* gauge: masters the link connects to, 0 outside cluster mode */
    gw_stat master_port[GW_REDIS_MASTERS_MAX];
    gw_stat master_up[GW_REDIS_MASTERS_MAX]; /* gauge 0/1: its heartbeat echoes */
    gw_stat master_reconnects[GW_REDIS_MASTERS_MAX];
    gw_stat master_rtt_us[GW_REDIS_MASTERS_MAX]; /* last heartbeat echo round trip */
    gw_stat master_state[GW_REDIS_MASTERS_MAX]; /* gauge: index into gw_redis_master_state_names */
    gw_stat master_redirects[GW_REDIS_MASTERS_MAX]; /* its MOVED/ASK answers to commands, and its subscriptions
                                                        it dropped or refused (a slot moved) */
    gw_stat redis_map_queries; /* cluster mode: CLUSTER SHARDS queries started (shards.c) */
    gw_stat redis_map_hurried; /* gauge 0/1: the map is re-read every 250 ms (a slot waits for a live master) */
    gw_stat redis_slot_moves; /* slots that changed master in the maps taken while the link was live */
    gw_stat redis_messages_dropped_bad_envelope; /* reserved payload that is no envelope we read */
    gw_stat redis_messages_dropped_link_reset; /* read from the socket but not handled: the link was reset */
    gw_stat ctl_dropped; /* control-channel messages that are no command or answer we read (bus_ctl.c) */
    /* Node-side repair (repair.h). */
    gw_stat history_gaps;              /* offset jumps seen, each read back */
    gw_stat history_messages_repaired; /* messages passed on from a read-back */
    gw_stat history_messages_lost;     /* offsets reported as gaps: unrepairable */
    gw_stat history_duplicates;        /* live messages already passed on, dropped */
    gw_stat history_conflicts;         /* other content at an offset passed on: passed on without a position */
    gw_stat history_rewinds;           /* reads that found Redis's offset below the node's, same epoch */
    /* Client recoveries by result (bus.c). */
    gw_stat recoveries[4]; /* enum gw_recovery_result */
    gw_stat history_requests;
    gw_stat reads_dropped_left; /* client reads dropped unread: their client left */
    /* Memory bounds (--max-inbox-bytes). */
    gw_stat backpressure_pauses; /* times a worker inbox passed the bound */
    gw_stat backpressure_us;     /* time Redis reads were paused, ended pauses */
    /* Presence (presence.h). */
    gw_stat presence_write_errors;   /* join/leave/index writes Redis answered with an error */
    gw_stat presence_members_purged; /* members of departed node incarnations removed by this node */
};

/* How one client recovery ended; wsgate_recoveries_total{result}. */
enum gw_recovery_result {
    GW_RECOVERY_RECOVERED = 0, /* every missed message replayed */
    GW_RECOVERY_MISSED,        /* recovered:false: epoch changed, trimmed or too many */
    GW_RECOVERY_OVERLOAD,      /* recovered:false: over --max-recoveries, or the read failed */
    GW_RECOVERY_POSITION,      /* "recover": true, position only */
};

/* Appends the Prometheus text exposition (format 0.0.4) to a malloc'd buffer
 * returned in *out (caller frees) with its length. ready/draining are the
 * node's current state. Any thread. */
struct gw_worker_stats;
size_t gw_metrics_render(char **out, const struct gw_bus_stats *bus,
                         struct gw_worker_stats *const *workers, int nworkers,
                         int ready, int draining, const char *node_id);

#endif
