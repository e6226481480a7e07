/* Private to gateway/presence.c (members, reads, delayed leaves) and
 * gateway/presence_node.c (this node's incarnations and the purge of departed
 * ones): the keys and the calls both make. Bus thread. Nothing else includes this. */
#ifndef GW_PRESENCE_INT_H
#define GW_PRESENCE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presence.h"

#define NODES_SET "wsgate:presence:nodes"
#define INC_KEY "wsgate:presence:inc:"
#define NODE_KEY "wsgate:presence:node:"
#define KEY_MAX 600
#define INC_TTL "5"
/* The timer: delayed leaves are due to about this, the incarnation key is
 * refreshed and the others checked every TICKS_PER_CHECK ticks (1 s). */
#define TICK_MS 100
#define TICKS_PER_CHECK 10

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

/* "{key}:presence", "{key}:presence:users" and "{key}:events" (wsgate.lua). */
struct pkeys {
    char set[KEY_MAX], users[KEY_MAX], events[KEY_MAX];
    size_t slen, ulen, elen;
};

/* The three keys of channel key; false when key is too long. */
bool gw_presence_keys(const char *key, size_t klen, struct pkeys *k);
/* wsgate:presence:node:<node id>/<inc> into out (KEY_MAX); returns its length. */
size_t gw_presence_node_key(const struct gw_presence *p, const char *inc, char *out);
/* gw_link_reply_fn of fire-and-forget writes (token: p): errors counted and logged. */
void gw_presence_on_write(void *token, const struct redisReply *reply);
/* cmd key member, fire and forget. */
void gw_presence_call2(struct gw_presence *p, const char *cmd, const char *key, size_t klen, const char *member,
                       size_t mlen);
/* FCALL wsgate_presence_join (join) or _leave of one member of this incarnation. */
void gw_presence_fcall_member(struct gw_presence *p, bool join, uint64_t session_id, const struct pres_entry *e);
void gw_presence_entry_free(struct pres_entry *e);
/* A new incarnation in p->inc, not yet registered. */
void gw_presence_new_incarnation(struct gw_presence *p);
/* presence.c: the delayed leaves that are due (all: every one). */
void gw_presence_leave_due(struct gw_presence *p, bool all);

#endif
