/* Presence on the bus thread (docs/PROTOCOL.md "Presence"): this node's
 * members of channels that keep presence (--presence-channels), written to
 * Redis through the wsgate Function library (deploy/redis/wsgate.lua), the
 * presence and presence_stats reads of clients, and the removal of the
 * members of nodes that are gone.
 *
 * Owns: the table of this node's members (session id -> the channel keys it
 * is present in, with the user and info it joined with), the channels' local
 * member counts, this node's incarnation and its 1 s timer. Must not: touch a
 * session (replies go to the worker as GW_WMAIL_PRESENCE_RESULT mail through
 * the post callback), or keep anything on a Redis entry's behalf past a
 * reply: Redis is the truth, the table only what this node must re-register.
 *
 * Liveness without a per-member refresh: a node incarnation
 * "<node id>/<incarnation>" is alive while its key <ns>inc:<node id>/<inc>
 * exists (SET EX 5 every second, one per node). Its members are
 * "<node id>/<incarnation>/<session id>", and it lists the channels it has
 * members in under <ns>node:<node id>/<inc> and itself in <ns>nodes. Every
 * second each node checks that set: an incarnation whose key is gone
 * (SIGKILL, partition) is purged channel by channel (wsgate_presence_purge,
 * which decides who removed what, so the purging nodes report each departed
 * user once); its index and listing go only once every channel's purge
 * succeeded, so a purge that failed is tried again at the next check. A link
 * that comes back, a write that got no answer, or a refresh (SET XX) that
 * finds the key expired (the node was stopped past the TTL with its link up),
 * makes a new incarnation: members (delayed leaves included) are registered
 * under it first, then the old one is purged (its index and this node's
 * channels), so a returning node neither resurrects nor duplicates members,
 * and a user connected throughout never drops to zero connections.
 *
 * Every member in Redis is reachable by the purge of its incarnation, by
 * order alone (presence_chan.c): an incarnation's key and listing are
 * answered OK before any of its channels is listed in its index, a channel's
 * listing is answered OK before any member of it is joined under that
 * incarnation (joins held meanwhile, reads of the channel behind them; a
 * listing that fails drops the held joins, and the next incarnation lists and
 * joins everything again), and a channel leaves the index only after every
 * leave of its members was answered OK. The previous incarnation is purged
 * once every channel of the new one is listed and its members sent. So a
 * node that dies at any moment, even while its index write gets no answer,
 * leaves no member that no purge finds. The price: a channel's first member
 * on a node (and each new incarnation's) waits one round trip to the
 * node-wide keys' Redis; steady state costs nothing more.
 *
 * <ns> is "wsgate:presence:" with one Redis and "{wsgate}:presence:" on a
 * Redis Cluster: there the node-wide keys share one slot, so their commands
 * go in order on one connection (the key before the listing). Per-channel
 * commands go to the channel's master (routed by "{key}:presence"), each
 * FCALL naming one channel's keys; events go out with SPUBLISH ("shard").
 * <ns>channels (a sorted set: channel key -> when a node last listed it)
 * lists the channels whose {key}:events streams backends read (PROTOCOL.md).
 * Bus thread only. */
#ifndef GW_PRESENCE_H
#define GW_PRESENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"
#include "config.h"
#include "dict.h"
#include "list.h"
#include "clink.h"
#include "link.h"
#include "metrics.h"
#include "wmail.h"

struct event;
struct event_base;

enum gw_presence_op {
    GW_PRESENCE_JOIN = 1, /* a subscription to a presence channel went live */
    GW_PRESENCE_LEAVE,    /* that subscription ended */
    GW_PRESENCE_MEMBERS,  /* a client's presence request: one page */
    GW_PRESENCE_STATS,    /* a client's presence_stats request */
};

/* What a worker posts (gw_bus_post_presence); owned by the bus command. */
struct gw_presence_req {
    enum gw_presence_op op;
    bool has_id;
    int64_t id;
    int limit; /* MEMBERS */
    char cursor[GW_PRESENCE_CURSOR_MAX + 1]; /* MEMBERS */
    char *user; /* JOIN: the token's sub, owned; NULL: anonymous */
    char *info; /* JOIN: the token's info claim (compact JSON), owned; NULL: none */
};

/* Frees r and what it owns. NULL is a no-op. */
void gw_presence_req_free(struct gw_presence_req *r);

/* This node's current incarnation (presence_node.c). */
enum gw_presence_inc_state {
    GW_PRESENCE_INC_NEW,     /* made, nothing sent under it (the link was not live since) */
    GW_PRESENCE_INC_LISTING, /* its key and its listing in <ns>nodes sent, not both answered */
    GW_PRESENCE_INC_LISTED,  /* both answered OK: its channels may be indexed and their members joined */
    GW_PRESENCE_INC_FAILED,  /* one of them was not: nothing joined, the next check makes another */
};

struct gw_presence_chan_up;

struct gw_presence {
    const struct gw_config *cfg;
    const struct gw_presence_chan_up *up; /* presence.c's calls for presence_chan.c (presence_int.h) */
    struct gw_link *link;   /* single-Redis mode, else NULL */
    struct gw_clink *clink; /* Redis Cluster mode, else NULL; both NULL: standalone (reads answer unavailable) */
    char ns[24];            /* the node-wide keys' namespace (above) */
    bool dirty;             /* a write got no answer: register again under a new incarnation */
    unsigned relive_backoff, relive_at; /* checks between those while writes keep failing; the tick allowed next */
    int64_t purge_hold_until_us; /* no purge of other nodes before (presence_int.h PURGE_HOLD_US) */
    struct gw_bus_stats *stats; /* the bus's; presence_* counters written here */
    void (*post)(void *ctx, int worker, struct gw_wmail *m);
    void *ctx;
    struct event *tick_ev;
    char inc[40]; /* "<node id>/<incarnation>" is cfg->node_id + "/" + inc */
    enum gw_presence_inc_state inc_state;
    size_t unlisted; /* channels in chans not PCHAN_LISTED (presence_int.h) */
    char old_inc[40]; /* the previous incarnation, purged once this one is listed whole; "": none */
    struct gw_dict sessions; /* session id (8 bytes) -> struct pres_sess * */
    struct gw_dict chans; /* channel key -> struct pchan * (presence_int.h), owned */
    int sweeps_in_flight; /* the 1 s check waits for the last one */
    unsigned ticks;
    struct gw_list delayed; /* leaves waiting --presence-leave-delay, newest first */
    struct gw_dict delayed_by; /* session id + key -> its struct delayed */
};

/* Initialises p (link or clink: the bus's, kept, at most one; stats: the
 * bus's, kept). post(ctx, worker, mail) hands a reply to a worker. Never
 * fails. Any thread, before the bus thread starts. */
void gw_presence_init(struct gw_presence *p, const struct gw_config *cfg, struct gw_link *link, struct gw_clink *clink,
                      struct gw_bus_stats *stats, void (*post)(void *ctx, int worker, struct gw_wmail *m), void *ctx);
/* Starts the 1 s timer on base (bus thread); aborts when libevent cannot. */
void gw_presence_start(struct gw_presence *p, struct event_base *base);
/* Stops the timer. Bus thread. */
void gw_presence_stop(struct gw_presence *p);
/* Frees the table. After the link is stopped (its callbacks answered). */
void gw_presence_deinit(struct gw_presence *p);

/* One request of worker's session session_id on channel name (client-facing)
 * whose Redis key is key. Borrows everything. A read always answers exactly
 * once (frame NULL: unavailable). Bus thread. */
void gw_presence_handle(struct gw_presence *p, int worker, uint64_t session_id, const char *name, size_t nlen,
                        const char *key, size_t klen, const struct gw_presence_req *r);
/* Session session_id is gone: it leaves every channel it was present in. */
void gw_presence_left(struct gw_presence *p, uint64_t session_id);
/* The link went live: a new incarnation, every member registered under it,
 * then the previous one purged. Bus thread. */
void gw_presence_live(struct gw_presence *p);

#endif
