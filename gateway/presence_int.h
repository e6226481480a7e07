/* Private to gateway/presence.c (members, reads, delayed leaves),
 * gateway/presence_node.c (this node's incarnations and the purge of departed
 * ones), presence_chan.c (the channels' counts and index) and presence_cmd.c
 * (the keys and the commands all of them send). Dependencies run
 * presence_node.c -> presence.c -> presence_chan.c -> presence_cmd.c; none
 * calls one above it: the two calls back of a channel's listing answered
 * (a member's entry, a held read sent) go through the gw_presence_chan_up
 * table presence.c hands over (p->up). Bus thread. Nothing else includes
 * this. */
#ifndef GW_PRESENCE_INT_H
#define GW_PRESENCE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presence.h"

/* The node-wide keys, after the namespace (p->ns: "wsgate:presence:" with one
 * Redis, "{wsgate}:presence:" on a cluster, so that all of them live on one
 * master and the commands a node sends them stay in order on one connection). */
#define NODES_SET "nodes"
#define INC_KEY "inc:"
#define NODE_KEY "node:"
#define CHANNELS_INDEX "channels" /* zset: channel key -> when a node last listed it (the events index) */
#define KEY_MAX 600
#define INC_TTL "5"
/* The timer: delayed leaves are due to about this, the incarnation key is
 * refreshed and the others checked every TICKS_PER_CHECK ticks (1 s). */
#define TICK_MS 100
#define TICKS_PER_CHECK 10
/* After this node could not reach the node-wide keys (its link or their
 * master down, a refresh unanswered), it purges no other node for this long:
 * the TTL plus two checks. Everyone's key may have expired meanwhile (an
 * outage past 5 s, or a failover of that master whose replica's copies
 * expired); the nodes that are alive notice at their own next refresh and
 * register again, and only the ones that do not are purged (a leave and a
 * join for every user otherwise). */
#define PURGE_HOLD_US 7000000

/* One channel this node's session is present in. */
struct pres_entry {
    char *key; /* the channel's Redis key (prefix included), owned */
    size_t klen;
    char *user, *info; /* as joined, owned; NULL: none */
};

/* The channels one session is present in. */
struct pres_sess {
    int n, cap;
    struct pres_entry *e; /* owned */
};

/* A channel's place in this incarnation's index (presence_chan.c): a member
 * is joined in Redis only once its channel is listed there, so that the purge
 * of the incarnation finds every member it has. */
enum pchan_state {
    PCHAN_IDLE,    /* not listed, nothing in flight: the next incarnation lists it and joins its members */
    PCHAN_WAITING, /* the incarnation's registration is in flight; the listing follows it */
    PCHAN_LISTING, /* the listing (SADD to the index) is in flight */
    PCHAN_LISTED,  /* answered: joins, leaves and reads go at once */
};

/* One channel this node has members in (the value of p->chans). */
struct pchan {
    size_t members;    /* this node's, leaves waiting their delay included */
    size_t leaving;    /* leaves sent, not answered yet */
    bool leave_failed; /* one of this incarnation's got no OK: the index keeps the channel */
    enum pchan_state state;
    size_t njoins, cap;
    uint64_t *joins;      /* WAITING/LISTING: sessions whose join waits for the listing, owned */
    struct gw_list reads; /* WAITING/LISTING: struct pres_read waiting behind those joins */
};

/* A client's presence read (presence.c); held by its channel while the
 * channel's joins are, so that a read after a subscribe sees its own join. */
struct pres_read {
    struct gw_list link; /* in its channel's reads while held */
    struct gw_presence *p;
    int worker;
    uint64_t session_id;
    enum gw_presence_op op;
    bool has_id;
    int64_t id;
    int limit;
    char cursor[GW_PRESENCE_CURSOR_MAX + 1];
    size_t nlen, klen;
    char name[]; /* client-facing channel name, '\0', then the channel key */
};

/* "{key}:presence", "{key}:presence:users" and "{key}:events" (wsgate.lua). */
struct pkeys {
    char set[KEY_MAX], users[KEY_MAX], events[KEY_MAX];
    size_t slen, ulen, elen;
};

/* presence_cmd.c: the keys and the commands. */
/* The three keys of channel key; false when key is too long. */
bool gw_presence_keys(const char *key, size_t klen, struct pkeys *k);
/* The node-wide key p->ns + name + rest into out (KEY_MAX); returns its length. */
size_t gw_presence_ns_key(const struct gw_presence *p, const char *name, const char *rest, size_t rlen, char *out);
/* <ns>node:<node id>/<inc> into out (KEY_MAX); returns its length. */
size_t gw_presence_node_key(const struct gw_presence *p, const char *inc, char *out);
/* One command to the master of route's slot (the one Redis in single mode):
 * gw_link_call's or gw_clink_call's contract (cb NULL: fire and forget).
 * -ENOTCONN without Redis. */
int gw_presence_call(struct gw_presence *p, const char *route, size_t rlen, int argc, const char *const *argv,
                     const size_t *lens, gw_link_reply_fn cb, void *token);
/* Whether the link can carry commands (single: live; cluster: ready). */
bool gw_presence_link_ready(const struct gw_presence *p);
/* gw_link_reply_fn of fire-and-forget writes (token: p): errors counted and
 * logged; a write that got no answer (NULL) marks p->dirty. */
void gw_presence_on_write(void *token, const struct redisReply *reply);
/* cmd key member on key's master, fire and forget. */
void gw_presence_call2(struct gw_presence *p, const char *cmd, const char *key, size_t klen, const char *member,
                       size_t mlen);
/* FCALL wsgate_presence_join (join) or _leave of one member of this
 * incarnation (its channel listed: presence_chan.c); cb(token, reply)
 * follows when true is returned (cb NULL: gw_presence_on_write). False:
 * nothing sent (the incarnation not listed, or refused: then p->dirty). */
bool gw_presence_fcall_member(struct gw_presence *p, bool join, uint64_t session_id, const struct pres_entry *e,
                              gw_link_reply_fn cb, void *token);
/* FCALL wsgate_presence_purge of the members under prefix ("<node id>/<inc>/")
 * in channel key, on its master; cb(token, reply) follows as gw_link_call's. */
int gw_presence_fcall_purge(struct gw_presence *p, const char *key, size_t klen, const char *prefix, size_t plen,
                            gw_link_reply_fn cb, void *token);

/* What presence_chan.c asks of presence.c when a channel's listing is
 * answered, in the table presence.c gives it (p->up), so that presence_chan.c
 * sits below presence.c and never names it. */
struct gw_presence_chan_up {
    /* Session session_id's entry in channel key (a leave waiting its delay
     * included), borrowed until the next change of the table; NULL: none. */
    const struct pres_entry *(*member)(struct gw_presence *p, uint64_t session_id, const char *key, size_t klen);
    /* Sends read w (takes it): its answer goes to the worker exactly once. */
    void (*read_send)(struct gw_presence *p, struct pres_read *w);
};

/* presence.c: the members. */
void gw_presence_entry_free(struct pres_entry *e);
/* A new incarnation in p->inc, not yet registered. */
void gw_presence_new_incarnation(struct gw_presence *p);
/* The delayed leaves that are due (all: every one). */
void gw_presence_leave_due(struct gw_presence *p, bool all);
/* A new incarnation (its registration just sent): every channel waits for
 * it (gw_presence_chan_reindex) with every member (delayed leaves too) held
 * for its channel's listing; returns how many members. */
size_t gw_presence_rejoin(struct gw_presence *p);

/* presence_chan.c: the channels' counts and index (see there). */
/* A new member e: joined in Redis once its channel is listed (at once when it is). */
void gw_presence_chan_add(struct gw_presence *p, uint64_t session_id, const struct pres_entry *e);
/* Member e leaves (in Redis when it was joined there); key leaves the index
 * after its last member's leave. */
void gw_presence_chan_remove(struct gw_presence *p, uint64_t session_id, const struct pres_entry *e);
/* Holds read w (true: w kept and sent once its channel's listing is
 * answered) while channel key's joins are held; false: send it now. */
bool gw_presence_chan_hold_read(struct gw_presence *p, const char *key, size_t klen, struct pres_read *w);
/* A new incarnation, its registration sent: every channel waits for it,
 * its joins so far forgotten (gw_presence_chan_hold_join holds them again). */
void gw_presence_chan_reindex(struct gw_presence *p);
/* Holds session_id's join in channel key (which has a member here) for its listing. */
void gw_presence_chan_hold_join(struct gw_presence *p, uint64_t session_id, const char *key, size_t klen);
/* The registration of incarnation inc was answered (ok: both its key and its
 * listing): the waiting channels' listings go, or (not ok) every held join
 * is forgotten (the next incarnation makes them) and every held read sent. */
void gw_presence_chan_registered(struct gw_presence *p, bool ok);
/* Whether this incarnation's index lists every channel here and every
 * member here was sent (its earlier incarnations may be purged). */
bool gw_presence_chans_listed(const struct gw_presence *p);
void gw_presence_chans_free(struct gw_presence *p);

#endif
