/* Private to gateway/bus_ctl.c and gateway/bus_revoke.c: the control plane's
 * state and the few calls between the two. bus_ctl.c owns the control
 * channel (a command published to every node, each node's answer, the
 * asking node's wait, the recent commands); bus_revoke.c the revocations
 * (stored in Redis, announced through bus_ctl.c, loaded at link-up). The
 * revocations sit above the control plane: bus_revoke.c calls bus_ctl.c by
 * name, bus_ctl.c reaches it only through the bus_ctl_hooks it is handed.
 * Bus thread only. */
#ifndef GW_BUS_CTL_INT_H
#define GW_BUS_CTL_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "bus_int.h"
#include "ctl.h"
#include "dict.h"

/* The control plane's Redis names per mode (docs/PROTOCOL.md, "Control plane
 * per Redis mode"). Single Redis keeps the names of earlier versions. On a
 * cluster everything node-wide shares the {wsgate} hash tag, hence one slot
 * and one master: sharded pub/sub has no cluster-wide broadcast, so the
 * command channel and every reply channel live on that master, whose
 * subscribers are every node; the revocation hash and the recent commands
 * sit next to them. */
#define CTL_CLUSTER_CHANNEL "__wsgate:ctl:{wsgate}"
#define CTL_CLUSTER_REPLY_PREFIX "__wsgate:ctl:{wsgate}:"
#define CTL_RECENT_KEY "wsgate:ctl:recent"
#define CTL_CLUSTER_RECENT_KEY "{wsgate}:ctl:recent"
#define CTL_CLUSTER_REVOKE_HASH "{wsgate}:revoked"
#define CTL_REPLY_KEY_MAX (sizeof CTL_CLUSTER_REPLY_PREFIX + GW_CTL_NODE_MAX)

/* One request asked through this node's API, waiting for answers. */
struct ctl_origin {
    struct bus_ctl *ctl;
    uint64_t req;
    int worker;         /* the API request's worker */
    uint64_t api_id;    /* and its id there (api.h) */
    long long expected; /* nodes the publish reached; -1 until Redis says */
    int answered;
    uint64_t closed;
    struct event *timer;
    struct gw_ctl_msg msg; /* a revocation's: stored first, then announced */
};

/* What the control plane hands up to the revocations (bus_revoke.c's
 * gw_bus_revoke_hooks, given to gw_bus_ctl_new by bus.c). Bus thread. */
struct bus_ctl_hooks {
    /* A revocation or its lift read on the control channel: applied to the
     * node's copy before this node answers the origin. */
    void (*apply)(struct gw_bus *bus, const struct gw_ctl_msg *m);
    /* The link (or the {wsgate} master) is live again: the whole hash is
     * read back, before the recent commands. */
    void (*reload)(struct gw_bus *bus);
};

/* The token of one command on the link. */
enum ctl_token_kind {
    TOK_COMMAND, /* publish of this node's command on the control channel */
    TOK_ANSWER,  /* publish of a count to an origin */
    TOK_STORE,   /* HSET/HDEL of a revocation (bus_revoke.c) */
    TOK_LOAD,    /* HGETALL of the revocations at link-up (bus_revoke.c) */
    TOK_PRUNE,   /* any command whose answer is not needed */
    TOK_RECENT,  /* ZRANGEBYSCORE of the recent commands at link-up */
};

struct ctl_token {
    int kind;       /* enum ctl_token_kind; first, as bus_int.h's BUS_TOKEN_IDEM */
    uint64_t req;   /* COMMAND, STORE */
    uint64_t stamp; /* LOAD: the table's stamp when asked */
};

struct bus_ctl {
    struct gw_bus *bus;
    const struct bus_ctl_hooks *hooks; /* static, not owned */
    bool usable; /* the node id fits a control message */
    uint64_t next_req;
    uint32_t next_apply;
    struct gw_dict origins; /* req (8 bytes) -> struct ctl_origin * */
    struct gw_dict applies; /* id (4 bytes) -> struct ctl_apply * */
    /* This mode's names (above); read-only after gw_bus_ctl_new. */
    const char *chan_key, *reply_prefix, *recent_key, *revoke_key;
    size_t chan_len, recent_len, revoke_len;
    char reply_key[CTL_REPLY_KEY_MAX];
    size_t reply_len;
    /* Commands applied here ("<from> <req>" -> the wall-clock ms it is
     * forgotten): a command read back at link-up is not applied twice. */
    struct gw_dict seen;
};

/* bus_ctl.c */
/* A token of kind for req (gw_xmalloc: the reply's handler frees it). */
struct ctl_token *gw_bus_ctl_token_new(enum ctl_token_kind kind, uint64_t req);
/* A new origin for the API request (cmd's worker and id), in ctl->origins. */
struct ctl_origin *gw_bus_ctl_origin_new(struct bus_ctl *ctl, const struct bus_cmd *cmd);
struct ctl_origin *gw_bus_ctl_origin_find(struct bus_ctl *ctl, uint64_t req);
/* Answers the API request (ok: the counts are meaningful) and frees o. */
void gw_bus_ctl_origin_finish(struct ctl_origin *o, bool ok);
/* Publishes m on the control channel and waits for the nodes' answers. */
void gw_bus_ctl_origin_send(struct ctl_origin *o, const struct gw_ctl_msg *m);
/* A command routed by route (a key of the same slot as what it touches)
 * whose answer is not needed; a failure means it did not happen. */
void gw_bus_ctl_fire(struct bus_ctl *ctl, const char *route, size_t rlen, int argc, const char *const *argv,
                     const size_t *lens);

#endif
