/* The commands presence sends and the keys they name (presence.h has the
 * design): below presence.c, presence_chan.c and presence_node.c, which all
 * send through it; it calls none of them. Bus thread. */
#define GW_LOG_MODULE "presence"

#include "presence_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "log.h"

bool gw_presence_keys(const char *key, size_t klen, struct pkeys *k)
{
    if (klen + 24 > KEY_MAX)
        return false;
    k->slen = (size_t)snprintf(k->set, KEY_MAX, "{%.*s}:presence", (int)klen, key);
    k->ulen = (size_t)snprintf(k->users, KEY_MAX, "{%.*s}:presence:users", (int)klen, key);
    k->elen = (size_t)snprintf(k->events, KEY_MAX, "{%.*s}:events", (int)klen, key);
    return true;
}

size_t gw_presence_ns_key(const struct gw_presence *p, const char *name, const char *rest, size_t rlen, char *out)
{
    return (size_t)snprintf(out, KEY_MAX, "%s%s%.*s", p->ns, name, (int)rlen, rest);
}

size_t gw_presence_node_key(const struct gw_presence *p, const char *inc, char *out)
{
    return (size_t)snprintf(out, KEY_MAX, "%s" NODE_KEY "%s/%s", p->ns, p->cfg->node_id, inc);
}

int gw_presence_call(struct gw_presence *p, const char *route, size_t rlen, int argc, const char *const *argv,
                     const size_t *lens, gw_link_reply_fn cb, void *token)
{
    if (p->clink)
        return gw_clink_call(p->clink, route, rlen, argc, argv, lens, cb, token);
    if (p->link)
        return gw_link_call(p->link, argc, argv, lens, cb, token);
    return -ENOTCONN;
}

bool gw_presence_link_ready(const struct gw_presence *p)
{
    if (p->clink)
        return gw_clink_ready(p->clink);
    return p->link && gw_link_ready(p->link);
}

/* A write that could not even be queued is lost as one that got no answer. */
static void call_write(struct gw_presence *p, const char *route, size_t rlen, int argc, const char *const *argv,
                       const size_t *lens)
{
    if (gw_presence_call(p, route, rlen, argc, argv, lens, gw_presence_on_write, p) != 0 && p->inc_state != GW_PRESENCE_INC_NEW)
        p->dirty = true;
}

void gw_presence_on_write(void *token, const redisReply *reply)
{
    struct gw_presence *p = token;

    /* A write lost with the link, or with one master of a cluster, is made
     * good by the next incarnation (the 1 s check starts one: p->dirty); an
     * error reply (a full Redis, say) is counted, and logged at each power of two. */
    if (!reply) {
        if (p->inc_state != GW_PRESENCE_INC_NEW)
            p->dirty = true;
        return;
    }
    if (reply->type != REDIS_REPLY_ERROR)
        return;
    gw_stat_add(&p->stats->presence_write_errors, 1);
    uint64_t n = gw_stat_get(&p->stats->presence_write_errors);
    if ((n & (n - 1)) == 0)
        LOG_WARN("presence write failed error=\"%s\" errors=%" PRIu64, reply->str, n);
}

void gw_presence_call2(struct gw_presence *p, const char *cmd, const char *key, size_t klen, const char *member,
                       size_t mlen)
{
    const char *argv[] = { cmd, key, member };
    size_t lens[] = { strlen(cmd), klen, mlen };
    call_write(p, key, klen, 3, argv, lens);
}

/* FCALL wsgate_presence_join|leave for one member of this incarnation. */
bool gw_presence_fcall_member(struct gw_presence *p, bool join, uint64_t session_id, const struct pres_entry *e,
                              gw_link_reply_fn cb, void *token)
{
    struct pkeys k;
    char member[160], max[16];
    int rc;

    if (!cb) {
        cb = gw_presence_on_write;
        token = p;
    }
    if (p->inc_state != GW_PRESENCE_INC_LISTED || !gw_presence_keys(e->key, e->klen, &k))
        return false;
    int mlen = snprintf(member, sizeof member, "%s/%s/%" PRIx64, p->cfg->node_id, p->inc, session_id);
    int xlen = snprintf(max, sizeof max, "%d", p->cfg->presence_max_members);
    const char *user = e->user ? e->user : "", *info = e->info ? e->info : "";
    const char *mode = p->clink ? "shard" : ""; /* the events: SPUBLISH to sharded subscribers */
    if (join) {
        const char *argv[] = { "FCALL", "wsgate_presence_join", "3", k.set, k.users, k.events,
                               e->key, member, user, info, max, mode };
        size_t lens[] = { 5, 20, 1, k.slen, k.ulen, k.elen, e->klen, (size_t)mlen, strlen(user), strlen(info),
                          (size_t)xlen, strlen(mode) };
        rc = gw_presence_call(p, k.set, k.slen, 12, argv, lens, cb, token);
    } else {
        const char *argv[] = { "FCALL", "wsgate_presence_leave", "3", k.set, k.users, k.events, e->key, member, max,
                               mode };
        size_t lens[] = { 5, 21, 1, k.slen, k.ulen, k.elen, e->klen, (size_t)mlen, (size_t)xlen, strlen(mode) };
        rc = gw_presence_call(p, k.set, k.slen, 10, argv, lens, cb, token);
    }
    if (rc != 0)
        p->dirty = true;
    return rc == 0;
}

int gw_presence_fcall_purge(struct gw_presence *p, const char *key, size_t klen, const char *prefix, size_t plen,
                            gw_link_reply_fn cb, void *token)
{
    struct pkeys k;
    char max[16];
    const char *mode = p->clink ? "shard" : "";

    if (!gw_presence_keys(key, klen, &k))
        return -EINVAL;
    int xlen = snprintf(max, sizeof max, "%d", p->cfg->presence_max_members);
    const char *argv[] = { "FCALL", "wsgate_presence_purge", "3", k.set, k.users, k.events, key, prefix, max, mode };
    size_t lens[] = { 5, 21, 1, k.slen, k.ulen, k.elen, klen, plen, (size_t)xlen, strlen(mode) };
    return gw_presence_call(p, k.set, k.slen, 10, argv, lens, cb, token);
}
