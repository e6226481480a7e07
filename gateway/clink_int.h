/* Private to the cluster link's files: its struct, one master's
 * connections, and the few calls between them. clink.c owns the whole
 * link's state, the map and what a new map changes (masters added and
 * removed, slots moved); clink_shard.c one master's connections, states and
 * heartbeat echo; clink_sub.c the subscriptions; clink_hb.c the heartbeats'
 * sending and judging; clink_cmd.c the commands (FCALLs, SPUBLISH) with
 * their redirections, and the library's loading. */
#ifndef GW_CLINK_INT_H
#define GW_CLINK_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/util.h>

#include "clink.h"
#include "dict.h"
#include "rconn.h"
#include "topo.h"

/* The whole link; every move goes through set_state (clink.c), logged. */
enum clink_state {
    CL_DOWN = 0,    /* no connection; the retry timer is armed unless stopping */
    CL_DISCOVERING, /* waiting for a slot map that serves at least one slot */
    CL_CONNECTING,  /* every master's connections opened; not every master live yet */
    CL_LIVE,        /* every master's first heartbeat echo came: ready */
    CL_RESETTING,   /* a failure or a new map was seen; the teardown runs from the loop */
};

/* One master's side of the link, walked in order. */
enum cshard_state {
    SH_CONNECTING = 0, /* both connections opened, every SSUBSCRIBE queued */
    SH_LOADING,        /* both ready; the function library is checked or loaded */
    SH_PROVING,        /* the first heartbeat is sent; no echo yet */
    SH_LIVE,           /* its heartbeat echoes */
    SH_RESETTING,      /* failed; its teardown runs from the loop, outside callbacks */
    SH_DOWN,           /* no connection; its retry timer is armed */
};

struct cshard {
    struct gw_clink *cl;
    char id[GW_TOPO_ID_LEN + 1];
    char host[GW_TOPO_HOST_MAX + 1];
    int port;
    struct gw_rconn *sub, *cmd; /* owned */
    enum cshard_state state;
    char hb[160]; /* "__wsgate:hb:{T}:<node_id>": T a hash tag of a slot this master owns */
    int64_t echo_due_us, echo_at_us, last_hb_sent_us;
    uint64_t hb_seq;
    struct event *retry_ev; /* SH_DOWN: reopens this master's connections */
    int attempt;
    int midx; /* its series in /metrics (metrics.h: master="<midx>"), -1: none */
    uint64_t lives; /* times it went SH_LIVE: 1 at the first echo of a master new to the link */
};

struct ccmd;

struct gw_clink {
    /* Read-only after gw_clink_new. */
    const struct gw_config *cfg;
    struct event_base *base;
    const struct gw_link_ops *ops;
    const struct gw_clink_ops *cops;
    const struct gw_clink_up *up; /* clink.c's table for the files below it */
    void *ctx;
    struct gw_bus_stats *stats; /* written by the bus thread only */
    long long fn_version;
    char history_size[16], history_ttl[16];
    int cmd_timeout_ms;

    /* Any thread. */
    atomic_bool ready;
    atomic_int_fast64_t echo_at_us; /* the oldest of the masters' last echoes */

    /* Bus thread only. */
    struct event *tick_ev, *retry_ev, *reset_ev;
    struct event *shard_ev; /* tears down the masters in SH_RESETTING */
    struct gw_shards *shards;
    struct ssl_ctx_st *tls_ctx; /* rediss+cluster://; owned */
    struct cshard **sh;         /* the masters of the current map, each owned */
    size_t nsh;
    enum clink_state state;
    int attempt;
    int64_t last_tick_us;
    bool paused;
    struct gw_dict unsubs; /* key -> SUNSUBSCRIBEs sent and not yet confirmed (uintptr_t) */
    struct ccmd *waiting;  /* commands waiting out a TRYAGAIN/CLUSTERDOWN pause */
    uint64_t redirects, publish_errors;
    /* Slot sets (bit s: slot s) of the moves (clink.c). lost: Redis dropped
     * a subscription of the slot (an unsolicited sunsubscribe, a refused
     * SSUBSCRIBE) and its keys are not yet told lost (move_ev does, outside
     * callbacks); moving: told lost, waiting for a map that names a master
     * to subscribe them on. */
    struct event *move_ev;
    uint8_t lost[GW_SLOT_COUNT / 8], moving[GW_SLOT_COUNT / 8];
    bool lost_any, moving_any;
};

/* What clink_cmd.c, clink_hb.c and clink_sub.c may ask of clink.c: given to
 * them in this table (cl->up), so that they sit below clink.c and never name
 * it; the inline wrappers below only read better at the call sites. */
struct gw_clink_up {
    /* Schedules a reset of the whole link (safe inside callbacks); why is static text. */
    void (*fail)(struct gw_clink *cl, const char *why);
    /* Schedules a reset of one master only once the link was live (before that,
     * of the whole link). Safe inside callbacks. */
    void (*shard_fail)(struct cshard *sh, const char *why);
    /* The master serving key on the map the link was opened on, or NULL. */
    struct cshard *(*owner)(struct gw_clink *cl, const char *key, size_t klen);
    /* The master at host:port, or NULL. */
    struct cshard *(*shard_at)(struct gw_clink *cl, const char *host, int port);
    /* The library is on sh's master (SH_LOADING -> SH_PROVING). */
    void (*fn_loaded)(struct cshard *sh);
    /* Asks shards.c for a fresh map (a MOVED, a CLUSTERDOWN). */
    void (*refresh)(struct gw_clink *cl, const char *why);
    /* Redis dropped or refused the subscriptions of slot on the master the
     * map names (why is static text): its keys are told lost and subscribed
     * again on the owner of the next map. Safe inside callbacks. */
    void (*slot_lost)(struct gw_clink *cl, unsigned slot, const char *why);
    /* A master's heartbeat echoed for the first time since its connections
     * opened: the whole link may go live. */
    void (*echoed)(struct gw_clink *cl);
};

static inline void gw_clink_fail(struct gw_clink *cl, const char *why)
{
    cl->up->fail(cl, why);
}

static inline void gw_clink_shard_fail(struct cshard *sh, const char *why)
{
    sh->cl->up->shard_fail(sh, why);
}

static inline struct cshard *gw_clink_owner(struct gw_clink *cl, const char *key, size_t klen)
{
    return cl->up->owner(cl, key, klen);
}

static inline struct cshard *gw_clink_shard_at(struct gw_clink *cl, const char *host, int port)
{
    return cl->up->shard_at(cl, host, port);
}

static inline void gw_clink_fn_loaded(struct cshard *sh)
{
    sh->cl->up->fn_loaded(sh);
}

static inline void gw_clink_refresh(struct gw_clink *cl, const char *why)
{
    cl->up->refresh(cl, why);
}

static inline void gw_clink_slot_lost(struct gw_clink *cl, unsigned slot, const char *why)
{
    cl->up->slot_lost(cl, slot, why);
}

/* sh's series in an array of per-master stats (metrics.h), or NULL. */
static inline gw_stat *gw_clink_master_stat(const struct cshard *sh, gw_stat *arr)
{
    return sh->midx >= 0 ? &arr[sh->midx] : NULL;
}

/* clink_shard.c: one master's side of the link. */
/* A master of map (node) as a new cshard in SH_DOWN, not connected, no retry armed, or NULL
 * when the node serves no slot, has no address or no heartbeat channel.
 * The caller owns it (gw_clink_shard_free). */
struct cshard *gw_clink_shard_new(struct gw_clink *cl, const struct gw_topo *map, const struct gw_topo_node *node);
/* Frees sh: its connections (pending commands get NULL, messages already
 * received are counted), its timer and its /metrics series. */
void gw_clink_shard_free(struct cshard *sh);
/* What gw_clink_up's shard_fail and fn_loaded do (clink.c's table names
 * them; the files below reach them through it). */
void gw_clink_shard_failed(struct cshard *sh, const char *why);
void gw_clink_shard_loaded(struct cshard *sh);
/* Does key belong to pctx, a struct cshard (gw_bus_key_pred)? */
bool gw_clink_owned_by(void *pctx, const char *key, size_t klen);
/* Does sh stand for node (same ID and address)? */
bool gw_clink_shard_is(const struct cshard *sh, const struct gw_clink *cl, const struct gw_topo_node *node);
/* Opens sh's two connections (SH_CONNECTING). */
void gw_clink_shard_open(struct cshard *sh);
/* SSUBSCRIBEs sh's heartbeat channel: last on fresh connections, so that
 * its first echo proves every subscription queued before it. */
void gw_clink_shard_subscribe_hb(struct cshard *sh);
/* Moves sh to SH_DOWN at once: its keys are told lost, its retry armed.
 * Not inside sh's own connection callbacks (gw_clink_shard_fail is). */
void gw_clink_shard_down(struct cshard *sh);
/* The connection options of every connection of the link (name: for logs). */
struct gw_rconn_opts gw_clink_conn_opts(const struct gw_clink *cl, const char *name);
/* A reconnect delay in ms for the attempt-th try (equal jitter, as link.c). */
int64_t gw_clink_backoff_ms(const struct gw_clink *cl, int attempt);

/* clink_hb.c */
/* The map's refresh period (shards.c's hurry_ms) while the link is live and a
 * master of it is not, or a slot has no master to subscribe on: checked each
 * tick (clink_hb.c). */
#define GW_CLINK_HURRY_MS 250
/* A heartbeat channel ("__wsgate:hb:{T}:<node_id>") whose slot master id owns
 * on map, into out (n bytes). False when none is found. */
bool gw_clink_hb_channel(const struct gw_clink *cl, const struct gw_topo *map, const char *id, char *out, size_t n);
/* SPUBLISHes sh's next heartbeat on sh->cmd; a refusal fails that master. */
void gw_clink_send_heartbeat(struct cshard *sh, int64_t now);
/* The link's 50 ms tick (an EV_PERSIST event, arg the link). */
void gw_clink_on_tick(evutil_socket_t fd, short what, void *arg);

/* clink_sub.c */
/* The reply callback of every SSUBSCRIBE and SUNSUBSCRIBE of keys (privdata:
 * their slot + 1, or NULL): an error reply (MOVED: the map is older than the
 * cluster) makes that slot lost (gw_clink_slot_lost); with privdata NULL, the
 * slot a MOVED names, else that master fails alone. */
void gw_clink_on_sub_done(struct gw_rconn *c, const struct redisReply *reply, void *privdata);
/* True when a sunsubscribe of key answers a SUNSUBSCRIBE we sent (counted
 * down); false for one Redis sent on its own. */
bool gw_clink_unsub_expected(struct gw_clink *cl, const char *key, size_t klen);

/* clink_cmd.c */
/* Queues the version check (and, when needed, the load) on sh->cmd. */
void gw_clink_load_functions(struct cshard *sh);
/* Fails every command waiting out a pause (stopping). */
void gw_clink_cmds_stop(struct gw_clink *cl);

#endif
