/* Private to gateway/link.c and gateway/link_cmd.c: the link's struct and
 * the few calls between the two files. link.c owns the connections, their
 * state and the heartbeat; link_cmd.c the commands of the wsgate Function
 * library (publish, read) and its loading. Nothing else includes this. */
#ifndef GW_LINK_INT_H
#define GW_LINK_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "link.h"
#include "rconn.h"

/* Where the link is; every move goes through set_state (link.c), logged
 * once with its reason. A fresh link walks them in order: the connections
 * (every subscription already queued), then the library, then the first
 * heartbeat, whose echo proves the subscriptions. */
enum link_state {
    LINK_DOWN = 0,   /* no connection; the retry timer is armed unless the bus is stopping */
    LINK_RESOLVING,  /* redis+sentinel://: no connection; the Sentinels are asked for the master */
    LINK_CONNECTING, /* both connections opened, AUTH/SELECT and every SUBSCRIBE queued */
    LINK_LOADING,    /* both ready; the function library is being checked or loaded */
    LINK_PROVING,    /* the first heartbeat is sent; no echo yet */
    LINK_LIVE,       /* the heartbeat echo came within the timeout: ready */
    LINK_RESETTING,  /* a failure was seen; the teardown runs from the loop, outside callbacks */
};

struct gw_link {
    /* Read-only after gw_link_new. */
    const struct gw_config *cfg;
    struct event_base *base;
    const struct gw_link_ops *ops;
    void *ctx;
    struct gw_bus_stats *stats; /* written by the bus thread only */
    char *hb_channel; /* "__wsgate:hb:<node_id>", outside the client prefix space */
    long long fn_version; /* VERSION of the embedded library */
    char history_size[16], history_ttl[16]; /* FCALL arguments, as text once */
    int cmd_timeout_ms; /* every command's deadline: the heartbeat timeout */

    /* Any thread. */
    atomic_bool ready;
    atomic_int_fast64_t echo_at_us; /* last heartbeat echo, for gw_link_ready */

    /* Bus thread only. */
    struct event *tick_ev, *retry_ev, *reset_ev;
    struct gw_rconn *sub, *pub; /* both NULL exactly when DOWN or RESOLVING */
    struct gw_sentinel *sentinel; /* redis+sentinel://: where the master is; owned, else NULL */
    struct ssl_ctx_st *tls_ctx; /* rediss://: made again on every open (certificates rotate); owned */
    enum link_state state;
    int attempt;
    int64_t echo_due_us; /* PROVING/LIVE: the next echo must come by then */
    int64_t last_hb_sent_us;
    int64_t last_tick_us;
    uint64_t hb_seq;
    uint64_t publish_errors; /* error replies to publishes: logged at each power of two */
    /* link.c's, for link_cmd.c: schedule a reset (safe inside callbacks);
     * the library is ready (LOADING → PROVING). */
    void (*fail)(struct gw_link *link, const char *why);
    void (*fn_loaded)(struct gw_link *link);
};

/* link_cmd.c; it reaches link.c only through link->fail and link->fn_loaded. */
/* VERSION of the embedded library (aborts when the file has none). */
long long gw_link_fn_version(void);
/* Queues the version check (and, when needed, the load) on link->pub.
 * Returns 0, or a negative errno after resetting the link. */
int gw_link_load_functions(struct gw_link *link);

#endif
