/* The node's copy of the revocations on the bus side (docs/PROTOCOL.md,
 * "POST /api/revoke"): the API's post, the check workers ask, a record
 * applied from the control channel, and the whole hash read at link-up.
 * Calls nothing of bus_ctl.c, which drives it. */
#define GW_LOG_MODULE "ctl"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "alloc.h"
#include "bus_int.h"
#include "log.h"

bool gw_bus_revoked(struct gw_bus *bus, const char *sub, bool has_iat, int64_t iat)
{
    return sub && gw_revoke_refuses(&bus->revoked, sub, strlen(sub), has_iat, iat, (int64_t)time(NULL));
}

void gw_bus_revoke_apply(struct gw_bus *bus, const struct gw_ctl_msg *m)
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

size_t gw_bus_revoke_loaded(struct gw_bus *bus, uint64_t stamp, const struct redisReply *reply, const char **prune,
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
