/* Private to gateway/link.c and gateway/link_cmd.c: the link's struct and
 * the few calls between the two files. link.c owns the connections, their
 * state and the heartbeat; link_cmd.c the commands of the wsgate Function
 * library (publish, read) and its loading. Nothing else includes this. */
#ifndef GW_LINK_INT_H
#define GW_LINK_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <hiredis/async.h>

#include "link.h"

enum link_state {
    LINK_DOWN = 0,   /* no connection; a retry timer may be armed */
    LINK_CONNECTING, /* connections opened, heartbeat echo not seen yet */
    LINK_LIVE,       /* heartbeat echo fresh: ready */
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

    /* Any thread. */
    atomic_bool ready;
    atomic_int_fast64_t echo_at_us; /* last heartbeat echo, for gw_link_ready */

    /* Bus thread only. */
    struct event *tick_ev, *retry_ev, *reset_ev;
    redisAsyncContext *sub, *pub;
    bool sub_up, pub_up;
    enum link_state state;
    int attempt;
    int64_t link_started_us;
    int64_t last_echo_us;
    int64_t last_hb_sent_us;
    int64_t last_tick_us;
    int64_t judge_from_us; /* the heartbeat timeout counts from here at the earliest */
    uint64_t hb_seq;
    uint64_t publish_errors; /* error replies to publishes: logged at each power of two */
    bool fn_ready; /* the library on this link's Redis is ours or newer */
    const char *reset_reason; /* static; non-NULL while a reset is scheduled */
    /* link.c's, for link_cmd.c: schedule a reset (safe inside hiredis
     * callbacks); the library is ready (go live once the echo came too). */
    void (*fail)(struct gw_link *link, const char *why);
    void (*fn_loaded)(struct gw_link *link);
};

/* link_cmd.c; it reaches link.c only through link->fail and link->fn_loaded. */
/* VERSION of the embedded library (aborts when the file has none). */
long long gw_link_fn_version(void);
/* Queues the version check (and, when needed, the load) on link->pub.
 * Returns 0, or -EIO after resetting the link. */
int gw_link_load_functions(struct gw_link *link);

#endif
