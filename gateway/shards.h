/* Redis Cluster discovery: keeps the cluster's slot map (common/topo.h)
 * current by asking CLUSTER SHARDS of the cluster's masters or, failing
 * them, its seed addresses (the last address that answered first), on a
 * timer (a shorter one while its owner hurries it) and whenever asked (a MOVED, an ASK,
 * an unsolicited sunsubscribe, a lost connection), with requests coalesced:
 * at most one query in flight, a request that comes during a query gets one
 * more query after it, and queries are spaced by at least min_gap_ms.
 *
 * It owns its map and the one short-lived connection (gateway/rconn) it
 * queries through; it publishes or subscribes nothing and knows no channel.
 * Its owner learns of every change of the map through gw_shards_ops.
 *
 * Bus thread only (the thread running its event_base); the struct is opaque. */
#ifndef GW_SHARDS_H
#define GW_SHARDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rconn.h"
#include "topo.h"

struct event_base;
struct gw_shards;

/* The one life cycle; every move goes through one transition function that
 * logs it with its reason. */
enum gw_shards_state {
    GW_SHARDS_NEW = 0,        /* made; nothing happens until gw_shards_start */
    GW_SHARDS_IDLE,           /* map as good as we know; the periodic timer runs */
    GW_SHARDS_SPACED,         /* a refresh is due once min_gap_ms since the last query passed */
    GW_SHARDS_QUERYING,       /* a query is in flight */
    GW_SHARDS_QUERYING_AGAIN, /* in flight, and a refresh was asked since it started */
    GW_SHARDS_STOPPED,        /* gw_shards_stop: nothing more happens; terminal */
};
const char *gw_shards_state_name(enum gw_shards_state s);

struct gw_shards_addr {
    const char *host; /* copied */
    int port;
};

struct gw_shards_opts {
    const struct gw_shards_addr *seeds; /* copied; at least one */
    size_t n_seeds;
    struct gw_rconn_opts conn; /* AUTH, TLS, timeouts of each query connection; copied by rconn */
    int refresh_ms;            /* periodic refresh, > 0 */
    int min_gap_ms;            /* least time between two queries' starts, >= 0 */
    int query_timeout_ms;      /* CLUSTER SHARDS' deadline, > 0 */
    int hurry_ms;              /* the periodic refresh while hurried (gw_shards_hurry), > 0 */
};

struct gw_shards_ops {
    /* The map changed (or is known for the first time: old is NULL). map and
     * old are borrowed for the call; d names the slots whose owner changed.
     * May call gw_shards_refresh, not gw_shards_free. */
    void (*on_map)(void *ctx, const struct gw_topo *old, const struct gw_topo *map,
                   const struct gw_topo_diff *d);
    /* A query failed on every address tried (why: the last reason); the map
     * is kept and the query retried after min(refresh_ms, 1 s). */
    void (*on_error)(void *ctx, const char *why);
    /* Optional (NULL: not called): an answer came and the map is the same,
     * so an owner waiting for a refresh hears of the answer even when nothing
     * moved (the answer may be to a query that started before its request:
     * the coalescing above always runs one more after it). */
    void (*on_same)(void *ctx, const struct gw_topo *map);
};

/* Allocates a NEW discoverer on base. Copies opts (the seeds' hosts and
 * conn's strings too; conn.tls_ctx is referenced by each connection made,
 * so it must outlive the discoverer); keeps base, ops and ctx, which must
 * outlive it. Aborts on OOM; returns NULL only for invalid opts (no seed,
 * refresh_ms, query_timeout_ms or hurry_ms <= 0, min_gap_ms < 0). */
struct gw_shards *gw_shards_new(struct event_base *base, const struct gw_shards_opts *opts,
                                const struct gw_shards_ops *ops, void *ctx);

/* Starts the first query. Returns 0, or -EINVAL when already started. */
int gw_shards_start(struct gw_shards *s);

/* Asks for a refresh as soon as the spacing allows; reason (static text) is
 * logged. Coalesced as the header says; a no-op when STOPPED. */
void gw_shards_refresh(struct gw_shards *s, const char *reason);

/* Hurried (on) or back to normal (off): while hurried, the periodic
 * refresh runs every hurry_ms instead of refresh_ms (still one query at a
 * time, spaced by min_gap_ms), for an owner that knows a slot has no live
 * master and waits for the cluster to promote one. Turning it on when the
 * last query started hurry_ms ago or more queries at once (spaced); turning
 * it off re-arms the normal period from the last query's start. Idempotent;
 * a no-op when NEW or STOPPED. */
void gw_shards_hurry(struct gw_shards *s, bool on);
bool gw_shards_hurried(const struct gw_shards *s);

/* The current map (empty before the first answer), borrowed until the next
 * on_map or gw_shards_free. */
const struct gw_topo *gw_shards_map(const struct gw_shards *s);
enum gw_shards_state gw_shards_state(const struct gw_shards *s);
/* Queries started, queries that failed on every address, maps that changed. */
uint64_t gw_shards_queries(const struct gw_shards *s);
uint64_t gw_shards_failures(const struct gw_shards *s);
uint64_t gw_shards_changes(const struct gw_shards *s);

/* Stops and frees: the query in flight is abandoned (no callback follows).
 * Not from inside on_map or on_error. NULL is a no-op. */
void gw_shards_free(struct gw_shards *s);

#endif
