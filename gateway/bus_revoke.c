/* The revocations on the bus side (docs/PROTOCOL.md, "POST /api/revoke"):
 * the API's post, the check workers ask, a record stored in Redis (the hash
 * wsgate:revoked; {wsgate}:revoked on a cluster, bus_ctl_int.h) and then
 * announced to every node through the control channel (bus_ctl.c, below this
 * file, which hands the records and the link-ups up through
 * gw_bus_revoke_hooks), a record applied from it, and the whole hash read at
 * link-up. Bus thread, except gw_bus_revoked and the post. */
#define GW_LOG_MODULE "ctl"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "alloc.h"
#include "bus_ctl_int.h"
#include "bus_int.h"
#include "log.h"

/* A lifted revocation stays known as lifted this long, so that a reload
 * read before the lift cannot bring it back (revoke.h). */
#define LIFT_MARK_S 60
/* Expired revocations removed from the hash per load, at most. */
#define PRUNE_MAX 1024

bool gw_bus_revoked(struct gw_bus *bus, const char *sub, bool has_iat, int64_t iat)
{
    return sub && gw_revoke_refuses(&bus->revoked, sub, strlen(sub), has_iat, iat, (int64_t)time(NULL));
}

/* bus_ctl_hooks.apply; also a standalone node's own revocation. */
static void revoke_apply(struct gw_bus *bus, const struct gw_ctl_msg *m)
{
    gw_revoke_set(&bus->revoked, m->dis.user, m->dis.user_len, m->at, m->until, m->op == GW_CTL_UNREVOKE);
}

void gw_bus_post_revoke(struct gw_bus *bus, int worker, uint64_t api_id, const char *user, size_t len, int64_t keep,
                        bool lift)
{
    struct bus_cmd *cmd = gw_bus_cmd_new(CMD_REVOKE, worker, user, len);

    cmd->session_id = api_id;
    cmd->keep = keep;
    cmd->lift = lift;
    gw_bus_cmd_post(bus, cmd);
}

/* HGETALL's answer (NULL: failed) reloads bus->revoked; returns how many
 * fields (expired or malformed, at most max) to delete, pointing prune/plens
 * into reply. */
static size_t revoke_loaded(struct gw_bus *bus, uint64_t stamp, const struct redisReply *reply, const char **prune,
                            size_t *plens, size_t max)
{
    int64_t now = (int64_t)time(NULL);
    size_t n = 0, bad = 0, nprune = 0;
    struct gw_revoke_item *items;

    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        LOG_WARN("revocations not loaded reason=%s", reply ? "unexpected_reply" : "link_down");
        return 0;
    }
    items = gw_xmalloc(sizeof(*items) * (reply->elements / 2 + 1));
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        struct gw_revoke_item *it = &items[n];
        bool ok = k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING && k->len >= 1 &&
                  k->len <= GW_CTL_USER_MAX && gw_revoke_parse_value(v->str, v->len, &it->at, &it->until) == 0;
        if (!ok)
            bad++;
        if ((!ok || it->until <= now) && k->type == REDIS_REPLY_STRING && nprune < max) {
            prune[nprune] = k->str;
            plens[nprune++] = k->len;
        }
        if (ok && it->until > now) {
            it->user = k->str;
            it->len = k->len;
            n++;
        }
    }
    gw_revoke_reload(&bus->revoked, stamp, items, n, now);
    LOG_INFO("revocations loaded users=%zu malformed=%zu expired_removed=%zu", n, bad, nprune);
    free(items);
    return nprune;
}

void gw_bus_cmd_revoke(struct gw_bus *bus, const struct bus_cmd *cmd)
{
    struct bus_ctl *ctl = bus->ctl;
    struct ctl_origin *o = gw_bus_ctl_origin_new(ctl, cmd);
    int64_t now = (int64_t)time(NULL);
    struct gw_ctl_msg *m = &o->msg;

    m->op = cmd->lift ? GW_CTL_UNREVOKE : GW_CTL_REVOKE;
    m->req = o->req;
    snprintf(m->from, sizeof m->from, "%s", bus->cfg->node_id);
    memcpy(m->dis.user, cmd->name, cmd->name_len);
    m->dis.user_len = cmd->name_len;
    m->at = now;
    m->until = now + (cmd->lift ? LIFT_MARK_S : cmd->keep);
    if (bus->standalone) {
        revoke_apply(bus, m);
        o->expected = o->answered = 1;
        gw_bus_ctl_origin_finish(o, true);
        return;
    }
    char value[48];
    size_t vlen = gw_revoke_format_value(value, m->at, m->until);
    const char *argv[] = { cmd->lift ? "HDEL" : "HSET", ctl->revoke_key, cmd->name, value };
    size_t lens[] = { 4, ctl->revoke_len, cmd->name_len, vlen };
    struct ctl_token *t = gw_bus_ctl_token_new(TOK_STORE, o->req);
    if (!ctl->usable ||
        bus_command(bus, ctl->revoke_key, ctl->revoke_len, cmd->lift ? 3 : 4, argv, lens, t) != 0) {
        free(t);
        gw_bus_ctl_origin_finish(o, false);
    }
}

/* TOK_STORE's answer for o: announces the stored revocation, or answers
 * the API as failed. */
static void revoke_stored(struct ctl_origin *o, const struct redisReply *reply)
{
    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        gw_bus_ctl_origin_finish(o, false);
        return;
    }
    /* Stored: the nodes apply it when the announcement comes and answer, so
     * the API's answer means every node that answered holds it. */
    gw_bus_ctl_origin_send(o, &o->msg);
}

/* bus_ctl_hooks.reload: asks for the whole hash (at link-up, or its
 * master's return). */
static void revoke_load(struct gw_bus *bus)
{
    struct bus_ctl *ctl = bus->ctl;
    const char *argv[] = { "HGETALL", ctl->revoke_key };
    size_t lens[] = { 7, ctl->revoke_len };
    struct ctl_token *t = gw_bus_ctl_token_new(TOK_LOAD, 0);

    t->stamp = gw_revoke_stamp(&bus->revoked);
    if (bus_command(bus, ctl->revoke_key, ctl->revoke_len, 2, argv, lens, t) != 0) {
        LOG_WARN("revocations not loaded reason=link_down");
        free(t);
    }
}

/* TOK_LOAD's answer (HGETALL's): reloads the node's copy, then the expired
 * records leave the hash. */
static void revoke_on_load(struct gw_bus *bus, uint64_t stamp, const struct redisReply *reply)
{
    struct bus_ctl *ctl = bus->ctl;
    const char *prune[PRUNE_MAX + 2] = { "HDEL", ctl->revoke_key };
    size_t plens[PRUNE_MAX + 2] = { 4, ctl->revoke_len };
    size_t n = revoke_loaded(bus, stamp, reply, prune + 2, plens + 2, PRUNE_MAX);

    if (n)
        gw_bus_ctl_fire(ctl, ctl->revoke_key, ctl->revoke_len, 2 + (int)n, prune, plens);
}

bool gw_bus_revoke_on_reply(struct gw_bus *bus, void *token, const struct redisReply *reply)
{
    struct ctl_token *t = token;
    struct ctl_origin *o;

    if (t->kind == TOK_LOAD) {
        revoke_on_load(bus, t->stamp, reply);
        free(t);
        return true;
    }
    if (t->kind != TOK_STORE)
        return false;
    o = gw_bus_ctl_origin_find(bus->ctl, t->req);
    free(t);
    if (o) /* NULL: answered already, the bus is stopping */
        revoke_stored(o, reply);
    return true;
}

const struct bus_ctl_hooks gw_bus_revoke_hooks = {
    .apply = revoke_apply,
    .reload = revoke_load,
};
